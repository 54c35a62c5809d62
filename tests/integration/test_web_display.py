#!/usr/bin/python3
"""The wall display in a real browser: headless Chromium driven by Selenium.

Usage: test_web_display.py TALLYD TALLY TALLY_WEB SOURCE_DIR

Starts tallyd (the example catalog) and tally-web, opens / at 1920x1080,
and checks that the display goes live with the catalog's labels and the
pushed figures, that a new push appears without a reload, that the
connection indicator turns stale when tallyd stops (GOODBYE) and live
again when it is back.  Exits 77 (skipped) when Chromium, chromedriver or
python3-selenium is missing.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:
    print("skipped: python3-selenium is not installed")
    sys.exit(77)

DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
if not os.path.exists(DRIVER) or BROWSER is None:
    print("skipped: chromium and chromium-driver are not installed")
    sys.exit(77)

TALLYD, TALLY, WEB, SRC = sys.argv[1:5]
TMP = tempfile.mkdtemp(prefix="tally-web-display.")
PROCS = []


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    for p, log in PROCS:
        if p.poll() is None:
            p.kill()
        with open(log, encoding="utf-8", errors="replace") as f:
            sys.stderr.write("---- %s\n%s" % (log, f.read()))
    sys.exit(1)


def start(args, log):
    p = subprocess.Popen(args, stdout=open(log, "a"), stderr=subprocess.STDOUT)
    PROCS.append((p, log))
    return p


def wait_log(path, pattern, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, open(path, encoding="utf-8", errors="replace").read())
        if m:
            return m
        time.sleep(0.05)
    fail("%s: no %r" % (path, pattern))


def until(cond, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if cond():
                return
        except Exception:  # the page is redrawing
            pass
        time.sleep(0.2)
    fail("the display never showed " + what)


conf = os.path.join(TMP, "tallyd.conf")
shutil.copy(os.path.join(SRC, "systemd", "tallyd.conf.example"), conf)
REQ = "ipc://%s/req" % TMP
tallyd_args = [TALLYD, "-c", conf, "-r", REQ, "-p", "ipc://%s/pub" % TMP, "-s",
               os.path.join(TMP, "state")]
dlog = os.path.join(TMP, "tallyd.log")
tallyd = start(tallyd_args, dlog)
wait_log(dlog, r"ready: requests")


def push(*args):
    r = subprocess.run([TALLY, "-s", REQ, "push", "--town", "gaoguan"] + list(args),
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        fail("tally push: " + r.stderr)


push("--file", os.path.join(SRC, "client", "demo", "gaoguan-2023.csv"))
wlog = os.path.join(TMP, "web.log")
web = start([WEB, "-s", REQ, "--listen", "127.0.0.1:0"], wlog)
port = int(wait_log(wlog, r"serving http://127\.0\.0\.1:(\d+)/").group(1))

opts = webdriver.ChromeOptions()
opts.binary_location = BROWSER
for a in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1920,1080",
          "--disable-dev-shm-usage"):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
try:
    driver.get("http://127.0.0.1:%d/" % port)
    conn = lambda: driver.find_element(By.ID, "conn").get_attribute("data-state")
    kpis = lambda: driver.find_element(By.ID, "kpis").text
    until(lambda: conn() == "live", "the live indicator")
    until(lambda: "化解矛盾纠纷" in kpis() and "216" in kpis(), "化解矛盾纠纷 216")
    until(lambda: "98.6%" in driver.find_element(By.ID, "ratios").text, "the ratio 98.6%")
    until(lambda: "高观镇" in driver.find_element(By.ID, "towns").text, "高观镇 in the table")
    push("disputes.screened=3", "disputes.resolved=2")
    until(lambda: "218" in kpis(), "the pushed figure (218) without a reload")
    tallyd.terminate()
    tallyd.wait(20)
    until(lambda: conn() == "stale", "the stale indicator after tallyd stopped", 30)
    tallyd = start(tallyd_args, dlog)
    until(lambda: conn() == "live", "the live indicator after tallyd came back", 40)
    until(lambda: "218" in kpis(), "the figures after the resync")
    driver.save_screenshot(os.path.join(TMP, "wall.png"))
finally:
    driver.quit()
web.terminate()
web.wait(10)
tallyd.terminate()
tallyd.wait(20)
shutil.rmtree(TMP, ignore_errors=True)
print("test_web_display: all checks passed")
