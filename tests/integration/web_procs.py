"""web_procs.py - the processes of the tally-web tests (test_web.py,
test_web_api.py, test_web_keys.py, test_web_display.py): tallyd and
tally-web started with their output in a log each, waited for by what they
log, stopped at the end, and killed when the test ends however it ends;
fail(), which stops the test and prints those logs; the tally command and
plain HTTP GETs.  Each test runs as a process of its own, so PROCS is that
test's."""

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

PROCS = []  # (process, log) of every start(), for reap() and fail()
LOG_TAIL = None  # fail() prints the last LOG_TAIL characters of each log, or all of it


@atexit.register
def reap():
    """The daemons still running, killed: by fail(), and at exit, so that a
    run that ended on an exception does not leave them running."""
    for p, _ in PROCS:
        if p.poll() is None:
            p.kill()


def fail(msg):
    """Says msg, prints the log of every process started and stops the
    test: status 1."""
    print("FAIL: " + msg, file=sys.stderr)
    reap()  # all of them first: printing may fail (a closed pipe)
    for _, log in PROCS:
        print("---- " + log, file=sys.stderr)
        sys.stderr.write(text(log)[-LOG_TAIL:] if LOG_TAIL else text(log))
    sys.exit(1)


def temp_dir(prefix):
    """A new temporary directory for the test's files: its path.  tally
    push keeps its client id there too (XDG_STATE_HOME), not in the
    user's home."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.environ["XDG_STATE_HOME"] = tmp
    return tmp


def start(args, log, env=None, append=False):
    """args started with stdout and stderr in the file log (added to its
    end when append is true, as a daemon started again), killed at exit."""
    f = open(log, "a" if append else "w")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=env)
    PROCS.append((p, log))
    return p


def text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def wait_for(path, pattern, timeout=20, every=0.05, count=1):
    """The count-th match of pattern in the file path, read again every
    `every` seconds until it is there; fail() when it is not within
    timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = list(re.finditer(pattern, text(path)))
        if len(found) >= count:
            return found[count - 1]
        time.sleep(every)
    if count == 1:
        fail("%s: no %r within %ds" % (path, pattern, timeout))
    fail("%s: no %d x %r within %ds" % (path, count, pattern, timeout))


def tally(binary, req, *args):
    """The output of the tally command binary run with args against
    tallyd's requests at req; fail() unless it exits with 0."""
    r = subprocess.run([binary, "-s", req] + list(args), capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        fail("tally %s: %d %s" % (" ".join(args), r.returncode, r.stderr))
    return r.stdout


def get(url, headers=None):
    """GET url: (status, body), those of an HTTP error (4xx, 5xx) too."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_tallyd(tallyd, conf, req, pub, log, *args):
    """tallyd (the binary) started with the configuration conf, its
    requests at req, its stream at pub and args, its output in the file
    log; returned once it logged that it is ready."""
    p = start([tallyd, "-c", conf, "-r", req, "-p", pub] + list(args), log)
    wait_for(log, r"ready: requests")
    return p


def start_example(tallyd, tally_bin, src, tmp):
    """tallyd (the binary) started with the example configuration
    (systemd/tallyd.conf.example, copied to tmp), its requests at
    ipc://TMP/req and 高观镇's report of 2023 pushed with tally_bin:
    (process, configuration, requests' address)."""
    conf = os.path.join(tmp, "tallyd.conf")
    shutil.copy(os.path.join(src, "systemd", "tallyd.conf.example"), conf)
    req = "ipc://%s/req" % tmp
    p = start_tallyd(tallyd, conf, req, "ipc://%s/pub" % tmp, os.path.join(tmp, "tallyd.log"),
                     "-s", os.path.join(tmp, "state"))
    tally(tally_bin, req, "push", "--town", "gaoguan", "--time", "2023-12-31", "--file",
          os.path.join(src, "client", "demo", "gaoguan-2023.csv"))
    return p, conf, req


def stop_web(web):
    """tally-web (the process web) stopped by SIGTERM; fail() unless it
    exits with 0 within 10 s."""
    web.terminate()
    if web.wait(10) != 0:
        fail("tally-web did not stop cleanly on SIGTERM")


def finish(tallyd, tmp, name):
    """The end of the test name, all its checks passed: tallyd (the
    process) stopped and the temporary directory tmp removed."""
    tallyd.terminate()
    tallyd.wait(20)
    shutil.rmtree(tmp, ignore_errors=True)
    print("%s: all checks passed" % name)
