#!/usr/bin/python3
"""Integration test of tally-web against the real tallyd over real sockets.

Usage: test_web.py TALLYD TALLY TALLY_WEB SOURCE_DIR

Starts tallyd (the example catalog, ipc:// endpoints in a temporary
directory) and tally-web on an ephemeral port, pushes 高观镇's report with
the `tally` command and checks, with the Python standard library (and
PyYAML, to read the alerting rules):
/healthz; /api/v1/tallies against `tally get --json`, and after tallyd
stopped the figures held, marked stale (503 only before any); /api/v1/period
and /api/v1/range against `tally get --period` (a county too large for
one answer of tallyd too, read township by township) and `tally
history`; /api/v1/catalog's labels; /api/v1/clock (tallyd's zone, its offset and clock); the WebSocket /api/v1/stream (a snapshot, then a sequenced update
after a push); 404 and 400, malformed targets (a line break: 400;
libwebsockets' own answers to a bad %-escape, a %00 and too many parts, as
tally-web(1) says); /metrics with `promtool check metrics` when
promtool is installed, a HELP of its own and the right TYPE for each of
tallyd's metrics, none of them served once tallyd stopped, and that it
serves every metric the alerting rules (systemd/tally.rules.yml) read; that a non-loopback --listen without --token is
refused unless --insecure; the bearer token; and that SIGTERM stops it
cleanly with other threads at work (under strace, and while a metrics
poll and a history read wait for a stopped tallyd: 503 meanwhile).
Exit 0 when all hold.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import web_procs
from web_procs import fail, get, start, start_tallyd, wait_for
import ws_client

import yaml

TALLYD, TALLY, WEB, SRC = sys.argv[1:5]
TMP = web_procs.temp_dir("tally-web-test.")


def tally(*args):
    return web_procs.tally(TALLY, REQ, *args)


def http(path, token=None, port=None):
    headers = {"Authorization": "Bearer " + token} if token else {}
    return get("http://127.0.0.1:%d%s" % (port or PORT, path), headers)


def http_quiet(path, port):
    """http(), for a server that may close the connection (it stops)."""
    try:
        http(path, port=port)
    except OSError:
        pass


def ws_open(path):
    return ws_client.ws_open(PORT, path, fail)


def ws_message(s):
    return ws_client.ws_message(s, fail)


tallyd, conf, REQ = web_procs.start_example(TALLYD, TALLY, SRC, TMP)

weblog = os.path.join(TMP, "web.log")
web = start([WEB, "-s", REQ, "--listen", "127.0.0.1:0"], weblog)
PORT = int(wait_for(weblog, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
wait_for(weblog, r"synchronised with tallyd")

# /healthz
st, body = http("/healthz")
h = json.loads(body)
if st != 200 or not h.get("synced") or h.get("tallyd") != "up" or "tallyd_why" in h:
    fail("/healthz: %d %s" % (st, body))

# /api/v1/tallies is `tally get --json`'s shape and figures.
st, body = http("/api/v1/tallies?prefix=u/town/gaoguan/")
api = json.loads(body)
cli = json.loads(tally("get", "--town", "gaoguan", "--json"))
def table(doc):
    return {(t["metric"], t["scope"]): t["values"] for t in doc["tallies"]}
if st != 200 or table(api) != table(cli) or len(api["tallies"]) != 25:
    fail("/api/v1/tallies differs from tally get --json:\n%s\n%s" % (body[:300], cli))

# History: one period, and a range, as tally get --period and tally history.
st, body = http("/api/v1/period?period=2023&prefix=u/town/gaoguan/")
per = json.loads(body)
cli = json.loads(tally("get", "--period", "2023", "--town", "gaoguan", "--json"))
if st != 200 or per["period"] != "2023" or table(per) != table(cli) or len(per["tallies"]) != 25:
    fail("/api/v1/period differs from tally get --period --json:\n%s" % body[:300])
# A span of days (SPAN_REQ) as tally get --period FROM..TO: its column
# named as asked.
st, body = http("/api/v1/period?period=2023-10..2023-12-31&prefix=u/town/gaoguan/")
span = json.loads(body)
cli = json.loads(tally("get", "--period", "2023-10..2023-12-31", "--town", "gaoguan", "--json"))
if (st != 200 or table(span) != table(cli) or len(span["tallies"]) != 25
        or table(span)[("disputes.resolved", "gaoguan")] != {"2023-10..2023-12-31": 216}):
    fail("/api/v1/period of a span differs from tally get --period FROM..TO --json:\n%s"
         % body[:300])
st, body = http("/api/v1/range?metric=disputes.resolved&scope=gaoguan&by=quarter&from=2023")
rng = json.loads(body)
if st != 200 or [p["value"] for p in rng["points"]] != [0, 0, 0, 216]:
    fail("/api/v1/range: %s" % body[:300])
# Every screen of the wall asks the same questions: one read of tallyd
# answers them all, and the answer about periods that are over is kept
# until tallyd says closed periods changed (PERIOD_CHANGED), so a late
# figure shows at once; a period not over yet is asked of tallyd each
# time.
def tallyd_stat(name, req=None):
    r = subprocess.run([TALLY, "-s", req or REQ, "stats", "--json"], capture_output=True,
                       text=True, timeout=30)
    return json.loads(r.stdout).get(name, 0)


def web_metric(name, port=None):
    st, body = http("/metrics", port=port)
    m = re.search(r"^%s (\d+)$" % name, body.decode(), re.M)
    return int(m.group(1)) if m else None


def banners(path):
    st, body = http(path)
    if st != 200:
        fail("%s: %d %s" % (path, st, body[:200]))
    return json.loads(body)["tallies"], body


Q4 = "/api/v1/period?period=2023-Q4&prefix=u/town/gaoguan/"
asked, shared = tallyd_stat("tallyd_period_requests_total"), web_metric(
    "tally_web_history_shared_total")
gate, bodies = threading.Barrier(16), []
def screen():
    gate.wait()
    bodies.append(http(Q4))
screens = [threading.Thread(target=screen) for _ in range(16)]
for t in screens:
    t.start()
for t in screens:
    t.join()
if len(bodies) != 16 or {st for st, _ in bodies} != {200} or len({b for _, b in bodies}) != 1:
    fail("16 screens asking %s at once: %r" % (Q4, [(st, b[:80]) for st, b in bodies][:3]))
if (tallyd_stat("tallyd_period_requests_total") - asked != 1
        or web_metric("tally_web_history_shared_total") - shared != 15):
    fail("16 screens asking %s at once cost tallyd %d period requests (want 1), %d shared"
         % (Q4, tallyd_stat("tallyd_period_requests_total") - asked,
            web_metric("tally_web_history_shared_total") - shared))
tally("push", "--town", "gaoguan", "--time", "2023-12-31", "banners=1")
deadline = time.time() + 10  # well inside the minute a kept answer lives at most
while True:
    t, body = banners(Q4)
    if table({"tallies": t})[("banners", "gaoguan")] == {"2023-Q4": 20}:
        break
    if time.time() > deadline:
        fail("a late figure of 2023-Q4 (banners 19 + 1) not shown by %s: %s" % (Q4, body[:300]))
    time.sleep(0.1)
st, body = http("/api/v1/clock")
clock = json.loads(body)
year = time.gmtime(clock["now_ms"] / 1000 + clock["utc_offset_s"]).tm_year
NOW = "/api/v1/period?period=%d&prefix=u/town/gaoguan/" % year
was = table({"tallies": banners(NOW)[0]})[("banners", "gaoguan")][str(year)] or 0
tally("push", "--town", "gaoguan", "banners=1")
if table({"tallies": banners(NOW)[0]})[("banners", "gaoguan")][str(year)] != was + 1:
    fail("%s kept an answer about a year not over: banners %s, want %d"
         % (NOW, table({"tallies": banners(NOW)[0]}), was + 1))
# Arguments too long are refused, not read as absent (a prefix read as
# absent would have meant every series).
for path, says in (("/api/v1/period?period=2023&prefix=u/" + "x" * 300,
                    b"prefix: longer than 255 bytes"),
                   ("/api/v1/range?metric=disputes.resolved&by=year&from=2023&scope=" + "y" * 80,
                    b"scope: longer than 64 bytes")):
    st, body = http(path)
    if st != 400 or says not in body:
        fail("%s...: %d %s, expected 400 saying %s" % (path[:40], st, body[:100], says))
for path, want in (("/api/v1/period?period=2023-13", 400), ("/api/v1/period", 400),
                   ("/api/v1/period?period=2023-12..2023-11", 400),
                   ("/api/v1/range?metric=no.such&by=year&from=2023", 400),
                   ("/api/v1/range?metric=disputes.resolved&by=week&from=2023", 400)):
    st, body = http(path)
    if st != want or b"error" not in body:
        fail("%s: %d %s, expected %d" % (path, st, body[:100], want))

# A county too large for one answer of tallyd (more tallies than half its
# [limits] max_reply_queue, 512 at the least) is read township by
# township, the townships those of the live feed, in slices of 256 (a
# stop ends the read between two): the whole county as `tally get
# --period --all --json` has it, the county's tallies once.
REQ_BIG = "ipc://%s/req-big" % TMP
conf_big = os.path.join(TMP, "tallyd-big.conf")
with open(conf_big, "w") as f:
    f.write("[tallyd]\nstate_dir = %s\n[limits]\nmax_reply_queue = 1024\n"
            % os.path.join(TMP, "state-big"))
big = start_tallyd(TALLYD, conf_big, REQ_BIG, "ipc://%s/pub-big" % TMP,
                   os.path.join(TMP, "tallyd-big.log"))
NBIG = 300  # two slices


def push_towns(first, step):
    """tally push of townships first, first + step, ...: 2 metrics each."""
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(TMP, "pusher%d" % first))
    for i in range(first, NBIG, step):
        if subprocess.run([TALLY, "-s", REQ_BIG, "push", "-q", "--town", "t%03d" % i, "--time",
                           "2023-06-01", "m0=%d" % i, "m1=1"], env=env, timeout=60).returncode:
            return False
    return True


pushers = [threading.Thread(target=lambda k=k: ok.__setitem__(k, push_towns(k, 4)))
           for k in range(4)]
ok = [False] * 4
for t in pushers:
    t.start()
for t in pushers:
    t.join()
if ok != [True] * 4:
    fail("pushing %d townships x 2 metrics" % NBIG)
logb = os.path.join(TMP, "web-big.log")
webb = start([WEB, "-s", REQ_BIG, "--listen", "127.0.0.1:0"], logb)
portb = int(wait_for(logb, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
wait_for(logb, r"synchronised with tallyd")
st, body = http("/api/v1/period?period=2023", port=portb)
r = subprocess.run([TALLY, "-s", REQ_BIG, "get", "--period", "2023", "--all", "--json"],
                   capture_output=True, text=True, timeout=60)
got, want = json.loads(body), json.loads(r.stdout)
if (st != 200 or len(got["tallies"]) != 2 * (NBIG + 1) or table(got) != table(want)
        or table(got)[("m0", "t299")] != {"2023": 299}
        or table(got)[("m0", "county")] != {"2023": sum(range(NBIG))}
        or table(got)[("m1", "county")] != {"2023": NBIG}):
    fail("/api/v1/period of %d townships x 2 metrics: %d, %d tallies (want %d)\n%s"
         % (NBIG, st, len(got.get("tallies", [])), 2 * (NBIG + 1), body[:300]))
said = json.loads(subprocess.run([TALLY, "-s", REQ_BIG, "stats", "--json"], capture_output=True,
                                 text=True, timeout=30).stdout)
if said.get("tallyd_rejected_too_large_total", 0) < 1:
    fail("the %d townships' year was not refused whole first: not read township by township"
         % NBIG)
# The next read of the county goes township by township at once: tallyd
# refuses (and counts, and logs) the whole county's only once.
st, body = http("/api/v1/period?period=2023-06", port=portb)
if st != 200 or len(json.loads(body)["tallies"]) != 2 * (NBIG + 1):
    fail("/api/v1/period?period=2023-06 of %d townships: %d %s" % (NBIG, st, body[:200]))
if tallyd_stat("tallyd_rejected_too_large_total", REQ_BIG) != said["tallyd_rejected_too_large_total"]:
    fail("a second read of the %d townships was refused whole again" % NBIG)
# tallyd stopped: its values are no longer known, and /metrics leaves them
# out (Prometheus marks them stale) rather than serving them frozen; what
# says STATS is down (tally_web_tallyd_up 0) and how old the last answer
# is stay.
if web_metric("tallyd_uptime_seconds", port=portb) is None:
    fail("/metrics of the %d townships' tally-web has no tallyd_uptime_seconds" % NBIG)
st, body = http("/api/v1/tallies?prefix=u/town/t299/", port=portb)
live_t299 = json.loads(body)
if (st != 200 or live_t299.get("stale") is not False or len(live_t299["tallies"]) != 2
        or abs(live_t299.get("as_of_ms", 0) - time.time() * 1000) > 5000):
    fail("/api/v1/tallies while synchronised: %d %s, expected stale false as of now"
         % (st, body[:300]))
big_stopped_ms = time.time() * 1000
big.terminate()
big.wait(20)
deadline = time.time() + 20  # a poll every 5 s, each waiting 2 s at most
while web_metric("tally_web_tallyd_up", port=portb) != 0:
    if time.time() > deadline:
        fail("tally-web's /metrics: tally_web_tallyd_up not 0 20 s after tallyd stopped")
    time.sleep(0.2)
st, body = http("/metrics", port=portb)
text = body.decode()
frozen = re.findall(r"^(?:# (?:HELP|TYPE) )?(tallyd_\w+)", text, re.M)
if st != 200 or frozen or not re.search(r"^tally_web_stats_age_seconds \d", text, re.M):
    fail("/metrics with tallyd stopped: %d, tallyd_* served %s\n%s"
         % (st, sorted(set(frozen))[:5], text[:600]))
if shutil.which("promtool"):
    r = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=body,
                       capture_output=True)
    if r.returncode != 0:
        fail("promtool check metrics with tallyd stopped: %s" % (r.stdout + r.stderr))
# The figures tally-web held when tallyd stopped are still served (a wall
# opened during the outage shows them, dimmed), marked stale, as of when
# it lost tallyd; /healthz and the link metric say that tallyd is down.
deadline = time.time() + 20
while True:
    st, body = http("/api/v1/tallies?prefix=u/town/t299/", port=portb)
    held = json.loads(body)
    if (st == 200 and held.get("stale") is True) or time.time() > deadline:
        break
    time.sleep(0.2)
if (st != 200 or held.get("stale") is not True or table(held) != table(live_t299)
        or held["stream_id"] != live_t299["stream_id"]
        or not big_stopped_ms - 5000 <= held.get("as_of_ms", 0) <= time.time() * 1000):
    fail("/api/v1/tallies with tallyd stopped: %d %s, expected the figures held (%s) marked "
         "stale as of when it stopped (%d)" % (st, body[:300], table(live_t299), big_stopped_ms))
# The link's state goes from connecting to refused with each attempt of
# tally-web's subscriber: wait for refused, as an alert's 'for' would.
deadline = time.time() + 20
while True:
    st, body = http("/healthz", port=portb)
    h = json.loads(body)
    states = re.findall(r'^tally_web_tallyd_link\{state="(\w+)"\} 1$',
                        http("/metrics", port=portb)[1].decode(), re.M)
    if (h.get("tallyd") == "refused" and states == ["refused"]) or time.time() > deadline:
        break
    time.sleep(0.2)
if st != 503 or h.get("synced") is not False or h.get("tallyd") != "refused":
    fail("/healthz with tallyd stopped and figures held: %d %s" % (st, body))
if states != ["refused"]:
    fail("/metrics with tallyd stopped and figures held: tally_web_tallyd_link %s" % states)
webb.terminate()
if webb.wait(10) != 0:
    fail("tally-web (%d townships) did not stop cleanly on SIGTERM" % NBIG)

# The catalog's labels reach the display.
st, body = http("/api/v1/catalog")
deadline = time.time() + 12
while json.loads(body).get("available") is not True and time.time() < deadline:
    time.sleep(0.5)
    st, body = http("/api/v1/catalog")
cat = json.loads(body)
labels = {m["id"]: m["label"] for m in cat["metrics"]}
towns = {t["id"]: t["label"] for t in cat["townships"]}
if labels.get("disputes.resolved") != "化解矛盾纠纷" or towns.get("gaoguan") != "高观镇":
    fail("/api/v1/catalog: %s" % body[:300])
# The ratios are metrics of kind ratio, as tally-web(1) says; an always
# empty "ratios" list beside them misled a reader of the API.
kinds = {m["id"]: m["kind"] for m in cat["metrics"]}
if "ratios" in cat or kinds.get("disputes.resolution_rate") != "ratio":
    fail("/api/v1/catalog: the ratios not as metrics of kind ratio: %s" % body[:400])

# tallyd's calendar zone (CLOCK_REQ) reaches the display: read in the same
# poll as the catalog, so it is there by now.
st, body = http("/api/v1/clock")
clock = json.loads(body)
if (st != 200 or clock.get("available") is not True or clock.get("zone") != "Asia/Shanghai"
        or clock.get("utc_offset_s") != 8 * 3600
        or abs(clock.get("now_ms", 0) - time.time() * 1000) > 60000):
    fail("/api/v1/clock: %d %s" % (st, body[:300]))

# The stream: a snapshot, then the update of a push with a higher seq.
s = ws_open("/api/v1/stream")
first = ws_message(s)
if first.get("type") != "snapshot" or not first.get("tallies") or first.get("tallyd") != "up":
    fail("stream: first message %s" % json.dumps(first)[:200])
seq0 = first.get("seq", 0)
tally("push", "--town", "gaoguan", "disputes.screened=3", "disputes.resolved=2")
deadline = time.time() + 10
seen = None
while time.time() < deadline and seen is None:
    m = ws_message(s)
    for t in m.get("tallies", []):
        if t["metric"] == "disputes.resolved" and t["scope"] == "gaoguan" \
                and t["values"]["total"] == 218:
            seen = m
if seen is None or seen.get("seq", 0) <= seq0 or seen.get("stream_id") != first.get("stream_id"):
    fail("stream: no update with the new total after seq %d: %s" % (seq0, json.dumps(seen)))
s.close()

# Bad requests get their status and the server goes on.
for path, want in (("/nope", 404), ("/api/v1/tallies?prefix=" + "x" * 300, 400),
                   ("/api/v1/tallies?prefix=%FF", 400)):
    st, _ = http(path)
    if st != want:
        fail("%s: %d, expected %d" % (path, st, want))


def raw_request(head, timeout=10):
    """Send head (a whole request) on a new connection; the status code
    answered, or None when the server closed without an answer."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    try:
        s.sendall(head)
        got = b""
        while b"\r\n" not in got:
            c = s.recv(4096)
            if not c:
                break
            got += c
    except (ConnectionResetError, BrokenPipeError):
        got = b""
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", got)
    return int(m.group(1)) if m else None


# Oversized requests: a long target 414, long headers 431, over HTTP and
# on the WebSocket path; what does not fit libwebsockets' buffer at all
# is closed.
base = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n"
upgrade = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
           "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
for what, head, want in (
        ("a 3000-byte target", base % ("/api/v1/tallies?prefix=" + "a" * 3000, ""), 414),
        ("a 10000-byte cookie", base % ("/healthz", "Cookie: c=" + "b" * 10000 + "\r\n"), 431),
        ("many headers", base % ("/healthz", "".join(
            "Accept-Language: zh-CN%d\r\nUser-Agent: %s\r\n" % (i, "u" * 300)
            for i in range(30))), 431),
        ("a long cookie on the stream", base % ("/api/v1/stream",
                                              upgrade + "Cookie: c=" + "b" * 10000 + "\r\n"), 431),
        ("a small request", base % ("/healthz", ""), 200)):
    st = raw_request(head.encode())
    if st != want:
        fail("%s: status %s, expected %d" % (what, st, want))
if raw_request(("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n"
                % ("z" * 40000)).encode()) is not None:
    fail("a 40000-byte header was answered: expected the connection closed")
# A header libwebsockets does not know by name is not counted (it keeps no
# list of them): 30000 bytes of one are served, as tally-web(1) says.
if raw_request(("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n"
                % ("z" * 30000)).encode()) != 200:
    fail("a 30000-byte header of a name libwebsockets does not know: not 200 as documented")

# Malformed targets.  A line break (%0D, %0A), which libwebsockets takes
# for the end of the request line: 400, JSON for the API, a line of text
# for a page (prefix=%0A used to be read as "prefix=": every series).
for path, api in (("/api/v1/tallies?prefix=%0A", True),
                  ("/api/v1/period?period=2023%0D%0A&prefix=u/", True),
                  ("/?column=%0D%0A", False)):
    st, body = http(path)
    said = (json.loads(body).get("error", "") if api and body.startswith(b"{")
            else body.decode(errors="replace"))
    if st != 400 or "line break" not in said or (not api and not said.startswith("400 ")):
        fail("%s: %d %r, expected 400 saying it holds a line break" % (path, st, body[:200]))
# libwebsockets answers a % not followed by two hexadecimal digits itself,
# before tally-web sees the request: 403 and its page, whose stylesheet
# tally-web serves, saying what was wrong.
for path in ("/?column=%", "/api/v1/tallies?prefix=%zz", "/api/v1/period?x=%"):
    st, body = http(path)
    if st != 403 or b'href="/error.css"' not in body:
        fail("%s: %d %r, expected libwebsockets' 403 page" % (path, st, body[:200]))
st, body = http("/error.css")
if st != 200 or b"two hexadecimal digits" not in body:
    fail("/error.css: %d %r" % (st, body[:200]))
# Requests libwebsockets closes without an answer: a %00 in the target,
# more than 94 parts (path, arguments, version, known header lines).
if raw_request(b"GET /api/v1/tallies?prefix=%00 HTTP/1.1\r\nHost: x\r\n\r\n") is not None:
    fail("a %00 in the target was answered: expected the connection closed")
for nargs, want in ((91, 200), (92, None)):  # + the path, the version, Host
    target = "/healthz?" + "&".join("a%d=1" % i for i in range(nargs))
    if raw_request(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target).encode()) != want:
        fail("a request of %d parts: expected %s" % (nargs + 3, want or "the connection closed"))
if http("/healthz")[0] != 200:
    fail("the server stopped answering after bad requests")

# /metrics: tallyd's counters and tally-web's own, valid exposition.
st, body = http("/metrics")
text = body.decode()
if st != 200 or "tallyd_submissions_accepted_total" not in text or \
        "# TYPE tally_web_browsers gauge" not in text or \
        re.findall(r'^tally_web_tallyd_link\{state="(\w+)"\} 1$', text, re.M) != ["up"]:
    fail("/metrics: %s" % text[:300])
# tallyd runs on this machine: its clock is ours, give or take the round
# trip; its zone is the example's Asia/Shanghai.
m = re.search(r"^tally_web_tallyd_clock_offset_seconds (-?[0-9.]+)$", text, re.M)
if m is None or abs(float(m.group(1))) > 2 or \
        not re.search(r"^tally_web_tallyd_utc_offset_seconds 28800$", text, re.M):
    fail("/metrics: tallyd's clock offset and zone: %s" % text[:600])
# Each of tallyd's metrics with a HELP that says what it is (tally stats
# lists every name this tallyd has) and the right TYPE: "_total" counters,
# the others gauges (tallyd names them so).
helps = dict(re.findall(r"^# HELP (tallyd_\w+) (.*)$", text, re.M))
types = dict(re.findall(r"^# TYPE (tallyd_\w+) (\w+)$", text, re.M))
names = set(json.loads(tally("stats", "--json")))
vague = sorted(n for n, h in helps.items() if "STATS counter" in h or "does not know" in h)
if set(helps) != names or set(types) != names or vague:
    fail("/metrics: tallyd's metrics without a HELP of their own: %s"
         % (vague or sorted(names ^ set(helps))))
wrong = sorted(n for n, t in types.items() if t != ("counter" if n.endswith("_total") else "gauge"))
if wrong or "TIME_IN_FUTURE" not in helps["tallyd_rejected_time_in_future_total"] or \
        "gauge" != types["tallyd_uptime_seconds"]:
    fail("/metrics: TYPE or HELP of tallyd's metrics wrong: %s %s"
         % (wrong, helps.get("tallyd_rejected_time_in_future_total")))
m = re.search(r"^# HELP tally_web_tallyd_clock_offset_seconds (.*)$", text, re.M)
if m is None or "skew_ms" in m.group(1) or "[limits] skew" not in m.group(1):
    fail("/metrics: the clock offset's HELP names tallyd's key wrong: %s" % (m and m.group(1)))
promtool = shutil.which("promtool")
if promtool:
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    if r.returncode != 0:
        fail("promtool check metrics: %s" % r.stdout + r.stderr)
else:
    print("note: promtool not installed; /metrics not checked with it")
# Every metric the alerting rules (systemd/tally.rules.yml) read is one
# /metrics serves (promtool's tests of the rules cannot know the names).
with open(os.path.join(SRC, "systemd", "tally.rules.yml"), encoding="utf-8") as f:
    exprs = " ".join(r["expr"] for g in yaml.safe_load(f)["groups"] for r in g["rules"])
used = set(re.findall(r"\b(tally(?:d|_web)_[a-z_]+)", exprs))
served = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
if not used or used - served:
    fail("tally.rules.yml reads metrics /metrics does not serve: %s" % sorted(used - served))

# A port in use (the first tally-web's): a clear error and exit 1, not a
# server that says it is ready and serves nothing.
r = subprocess.run([WEB, "-s", REQ, "--listen", "127.0.0.1:%d" % PORT], capture_output=True,
                   text=True, timeout=20)
if r.returncode != 1 or "Address already in use" not in r.stderr or "ready:" in r.stderr:
    fail("a second tally-web on port %d: %d %s" % (PORT, r.returncode, r.stderr))
if http("/healthz")[0] != 200:
    fail("the first tally-web stopped answering after the second one's attempt")

# Elsewhere than loopback: a token, or --insecure.
r = subprocess.run([WEB, "-s", REQ, "--listen", "0.0.0.0:0"], capture_output=True, text=True,
                   timeout=20)
if r.returncode == 0 or "--token" not in r.stderr:
    fail("a non-loopback --listen without --token started: %d %s" % (r.returncode, r.stderr))
tok = "s3cret-token-0123456789"
log2 = os.path.join(TMP, "web2.log")
web2 = start([WEB, "-s", REQ, "--listen", "127.0.0.1:0", "--token", tok], log2)
port2 = int(wait_for(log2, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
# Synchronised first: until then the API answers 503 to anyone, which the
# token checks below would take for a wrong answer (seen on a loaded
# machine).
wait_for(log2, r"synchronised with tallyd")
if http("/api/v1/tallies", port=port2)[0] != 401 or http("/metrics", port=port2)[0] != 401:
    fail("with --token, the API and /metrics answered without it")
if http("/api/v1/tallies", token=tok, port=port2)[0] != 200 or \
        http("/api/v1/tallies", token="wrong-token-000000000", port=port2)[0] != 401:
    fail("the bearer token was not checked")
web2.terminate()
if web2.wait(10) != 0:
    fail("tally-web did not stop cleanly on SIGTERM")

# Stopping while other threads open descriptors (the subscriber's ZeroMQ
# threads, a metrics poll on a worker thread).  libwebsockets closes one
# of its own descriptors twice on the way out, so tally-web destroys its
# server only once nothing else can be given that number (web/main.c).
# strace's slowness widens the window between the two closes, and a
# tallyd with nothing in it lets tally-web synchronise while its first
# metrics poll (three requests, each with its own ZeroMQ context) is still
# under way: with the server destroyed first, 12 of 20 such stops aborted
# in ZeroMQ ("Bad file descriptor (src/epoll.cpp:100)") or hung.
STRACE = shutil.which("strace")
if STRACE and subprocess.run([STRACE, "-o", os.devnull, "true"],
                             capture_output=True).returncode == 0:
    REQ_EMPTY = "ipc://%s/req-empty" % TMP
    empty = start_tallyd(TALLYD, conf, REQ_EMPTY, "ipc://%s/pub-empty" % TMP,
                         os.path.join(TMP, "tallyd-empty.log"), "-s",
                         os.path.join(TMP, "state-empty"))
    # (LeakSanitizer cannot work under ptrace: in the ASan build it is off
    # for these runs; the other runs of tally-web here keep it.)
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    for i in range(8):
        logs = os.path.join(TMP, "web-stop%d.log" % i)
        ws = start([STRACE, "-f", "-o", os.devnull, "-e", "trace=close", WEB, "-s", REQ_EMPTY,
                    "--listen", "127.0.0.1:0"], logs, env)
        wait_for(logs, r"synchronised with tallyd", every=0.005)
        with open("/proc/%d/task/%d/children" % (ws.pid, ws.pid)) as f:
            os.kill(int(f.read().split()[0]), signal.SIGTERM)  # tally-web, not strace
        try:
            rc = ws.wait(30)
        except subprocess.TimeoutExpired:
            rc = "none (still running 30 s after SIGTERM)"
        with open(logs, encoding="utf-8", errors="replace") as f:
            said = f.read()
        if rc != 0 or "tally-web: stopped" not in said:
            fail("tally-web under strace, stop %d: exit %s\n%s" % (i, rc, said))
    empty.terminate()
    empty.wait(20)
else:
    print("note: strace not usable here; stopping under load not checked")

# Stopping while a metrics poll and a history read wait for a tallyd that
# does not answer (stopped with SIGSTOP): requests are answered 503
# meanwhile, and tally-web exits 0 once both have timed out.
REQ_STOPPED = "ipc://%s/req-stopped" % TMP
stopped = start_tallyd(TALLYD, conf, REQ_STOPPED, "ipc://%s/pub-stopped" % TMP,
                       os.path.join(TMP, "tallyd-stopped.log"), "-s",
                       os.path.join(TMP, "state-stopped"))
os.kill(stopped.pid, signal.SIGSTOP)
log5 = os.path.join(TMP, "web5.log")
web5 = start([WEB, "-s", REQ_STOPPED, "--listen", "127.0.0.1:0"], log5)
port5 = int(wait_for(log5, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
reader = threading.Thread(target=http_quiet, args=("/api/v1/period?period=2023", port5))
reader.start()
time.sleep(0.3)  # its first poll and the read are waiting for tallyd
web5.terminate()
wait_for(log5, r"SIGTERM: stopping")
status, body = http("/healthz", port=port5)
if status != 503 or b"stopping" not in body:
    fail("tally-web while stopping answered %d %r" % (status, body[:80]))
try:
    rc5 = web5.wait(15)
except subprocess.TimeoutExpired:
    rc5 = "none (still running 15 s after SIGTERM)"
if rc5 != 0 or "tally-web: stopped" not in open(log5, encoding="utf-8").read():
    fail("tally-web while a poll and a read waited for tallyd, SIGTERM: exit %s" % rc5)
reader.join(15)
os.kill(stopped.pid, signal.SIGCONT)
stopped.terminate()
stopped.wait(20)

# Why tallyd is out of reach, in /healthz, the stream and the log: an
# address where nothing listens (refused), and one the network does not
# reach (TCP to the broadcast address: ENETUNREACH on every Linux).
for name, server, word, said in (
        ("refused", "ipc://%s/req-nothing" % TMP, "refused",
         "tally-web: tallyd at ipc://%s/req-nothing: nothing accepts connections there" % TMP),
        ("unreachable", "tcp://255.255.255.255:7411", "unreachable",
         "tally-web: cannot reach tallyd at tcp://255.255.255.255:7411: the network does not "
         "reach it (Network is unreachable); waiting for it")):
    logn = os.path.join(TMP, "web-%s.log" % name)
    webn = start([WEB, "-s", server, "--listen", "127.0.0.1:0"], logn)
    portn = int(wait_for(logn, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
    deadline = time.time() + 30
    while True:
        status, body = http("/healthz", port=portn)
        h = json.loads(body)
        if h.get("tallyd") == word or time.time() > deadline:
            break
        time.sleep(0.1)
    if status != 503 or h.get("tallyd") != word or h.get("synced"):
        fail("/healthz with tallyd %s: %d %s" % (name, status, body))
    if word == "unreachable" and h.get("tallyd_why") != \
            "the network does not reach it (Network is unreachable)":
        fail("/healthz's tallyd_why: %s" % body)
    if word != "unreachable" and "tallyd_why" in h:
        fail("/healthz with tallyd %s has a tallyd_why: %s" % (name, body))
    # Never synchronised: no figures to serve, stale or not.
    status, body = http("/api/v1/tallies", port=portn)
    if status != 503 or b"not synchronised with tallyd yet" not in body:
        fail("/api/v1/tallies with tallyd %s from the start: %d %s" % (name, status, body[:200]))
    PORT_SAVED, PORT = PORT, portn
    sn = ws_open("/api/v1/stream")
    PORT = PORT_SAVED
    m = ws_message(sn)
    if m.get("type") != "status" or m.get("tallyd") != word or m.get("synced"):
        fail("the stream with tallyd %s: %s" % (name, json.dumps(m)[:200]))
    sn.close()
    status, body = http("/metrics", port=portn)
    states = re.findall(r'^tally_web_tallyd_link\{state="(\w+)"\} (\d)$', body.decode(), re.M)
    if status != 200 or [s for s, v in states if v == "1"] != [word] or len(states) != 5:
        fail("/metrics with tallyd %s: %s" % (name, states))
    if shutil.which("promtool"):
        r = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=body,
                           capture_output=True)
        if r.returncode != 0:
            fail("promtool check metrics with tallyd %s: %s" % (name, r.stdout + r.stderr))
    wait_for(logn, re.escape(said))
    webn.terminate()
    if webn.wait(15) != 0 or open(logn, encoding="utf-8").read().count(said) != 1:
        fail("tally-web with tallyd %s: exit %s, log:\n%s" %
             (name, webn.returncode, open(logn, encoding="utf-8").read()))

# More WebSocket browsers than --max-clients: 503 for the one too many.
log3 = os.path.join(TMP, "web3.log")
web3 = start([WEB, "-s", REQ, "--listen", "127.0.0.1:0", "--max-clients", "1"], log3)
PORT_MAIN, PORT = PORT, int(wait_for(log3, r"serving http://127\.0\.0\.1:(\d+)/").group(1))
wait_for(log3, r"synchronised with tallyd")
first = ws_open("/api/v1/stream")
ws_message(first)
s2 = socket.create_connection(("127.0.0.1", PORT), timeout=10)
s2.sendall(("GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % base64.b64encode(os.urandom(16)).decode()).encode())
reply = s2.recv(200)
if not re.match(rb"HTTP/1\.[01] 503 ", reply):
    fail("a browser beyond --max-clients 1 got %r" % reply[:40])
s2.close()
first.close()
if http("/healthz")[0] != 200:
    fail("the server stopped answering after refusing a browser")
web3.terminate()
web3.wait(10)
PORT = PORT_MAIN

# HTTPS with a certificate and key (self-signed, made here).
openssl = shutil.which("openssl")
if openssl:
    crt, key = os.path.join(TMP, "web.crt"), os.path.join(TMP, "web.key")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    log4 = os.path.join(TMP, "web4.log")
    web4 = start([WEB, "-s", REQ, "--listen", "127.0.0.1:0", "--tls-cert", crt, "--tls-key", key],
                 log4)
    port4 = int(wait_for(log4, r"serving https://127\.0\.0\.1:(\d+)/").group(1))
    wait_for(log4, r"synchronised with tallyd")  # /healthz is 503 until then
    import ssl
    ctx = ssl.create_default_context(cafile=crt)
    ctx.check_hostname = False
    with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % port4, context=ctx,
                                timeout=10) as r:
        if r.status != 200 or b'"status"' not in r.read():
            fail("HTTPS /healthz")
    web4.terminate()
    web4.wait(10)
else:
    print("note: openssl not installed; HTTPS not checked")

web_procs.stop_web(web)
web_procs.finish(tallyd, TMP, "test_web")
