#!/usr/bin/python3
"""A township computer whose network link is down, then back.

Usage: test_link_down.py TALLYD TALLY

The script runs itself again in a network namespace of its own (`unshare
-n`, which needs root or unprivileged user namespaces), where only the
loopback interface exists and starts down: a connection to 127.0.0.1 then
fails at once with ENETUNREACH, as on a computer whose link is down, while
the real tallyd listens on tcp://*:7411 of that namespace.  Bringing the
interface up is the link coming back.  Checks:

- `tally push` with the link down is not taken for a tallyd that is not
  running: it waits its --timeout, then says that the network does not
  reach tallyd (exit 3, nothing sent); with --spool the figures are kept;
- a push whose link comes back during its wait (after 2 s, when a refusal
  would have ended it after 1) delivers, and so does the spooled one;
- `tally get` says the same of the network; `tally watch` waits,
  says so once on standard error, and shows the county once the link
  is up;
- with the link up and tallyd stopped, a push still ends early, saying
  that nothing accepts connections there.
Exit 0 when every check holds; 77 (skipped) where no network namespace
can be made.
"""
import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

TALLYD, TALLY = sys.argv[1:3]
SERVER = "tcp://127.0.0.1:7411"
MARK = "TALLY_TEST_IN_NETNS"


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def set_loopback(up):
    """The link: lo up or down (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = fcntl.ioctl(s, 0x8913, struct.pack("16sh", b"lo", 0))
        flags = struct.unpack("16sh", ifr[:18])[1]
        flags = flags | 1 if up else flags & ~1
        fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags))
    finally:
        s.close()


def tally(*args, timeout=60):
    return subprocess.run([TALLY, "-s", SERVER] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def start_tallyd(tmp):
    log = os.path.join(tmp, "tallyd.log")
    p = subprocess.Popen([TALLYD, "-s", os.path.join(tmp, "state"), "-r", "tcp://*:7411",
                          "-p", "tcp://*:7412", "-l", "info"],
                         stdout=open(log, "a"), stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while "ready:" not in open(log).read():
        check(p.poll() is None and time.time() < deadline,
              "tallyd did not get ready:\n" + open(log).read()[-3000:])
        time.sleep(0.05)
    return p


def watch_until(watch, pred, timeout):
    """Read `tally watch --json` lines until one satisfies pred."""
    deadline = time.time() + timeout
    fd, buf = watch.stdout.fileno(), b""
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if chunk == b"":
            return False
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if pred(json.loads(line)):
                return True
    return False


def unreachable_said(stderr):
    return ("cannot reach tallyd at %s: the network does not reach it (Network is "
            "unreachable); is this computer's network link up" % SERVER in stderr and
            "nothing accepts connections" not in stderr)


def run(tmp):
    set_loopback(False)
    d = start_tallyd(tmp)
    try:
        # The link is down: the whole --timeout is waited, and said so.
        r = tally("push", "--town", "gaoguan", "--timeout", "3", "disputes.screened=1")
        check(r.returncode == 3, "push with the link down: status %d: %s" %
              (r.returncode, r.stderr))
        check(unreachable_said(r.stderr) and "nothing was sent" in r.stderr,
              "push with the link down said: " + r.stderr)
        spool = os.path.join(tmp, "spool")
        r = tally("push", "--spool", spool, "--town", "gaoguan", "--timeout", "3",
                  "disputes.screened=2")
        check(r.returncode == 3 and unreachable_said(r.stderr) and
              "1 submission (1 sample) kept in %s" % spool in r.stderr,
              "spooled push with the link down: %d: %s" % (r.returncode, r.stderr))
        r = tally("get", "--timeout", "2")
        check(r.returncode == 3 and unreachable_said(r.stderr),
              "get with the link down: %d: %s" % (r.returncode, r.stderr))

        # The link comes back while a push waits, and while a watch does.
        push = subprocess.Popen([TALLY, "-s", SERVER, "push", "--town", "bashan", "--timeout",
                                 "20", "disputes.screened=5"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        watch = subprocess.Popen([TALLY, "-s", SERVER, "watch", "--json", "--metric",
                                  "disputes.screened"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2)
        if push.poll() is not None:
            raise Fail("push gave up within 2 s of the link down: " + push.communicate()[1])
        check(watch.poll() is None, "watch gave up with the link down")
        set_loopback(True)
        out, err = push.communicate(timeout=30)
        check(push.returncode == 0 and "accepted 1 sample for bashan" in out,
              "push after the link came back: %d: %s%s" % (push.returncode, out, err))
        r = tally("push", "--spool", spool, "--flush")
        check(r.returncode == 0 and "delivered 1 submission (1 sample)" in r.stdout,
              "the spooled figures: %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        # The watch shows the county's 7, in its snapshot or as a change.
        check(watch_until(watch, lambda t: t["scope"] == "county" and
                          t["values"]["total"] == 7, 30),
              "watch never showed the county's total of 7")
        watch.terminate()
        err = watch.communicate(timeout=30)[1].decode()
        check(watch.returncode == 0, "watch after SIGTERM: %d: %s" % (watch.returncode, err))
        check(err.count("the network does not reach it") == 1 and
              "Waiting for it" in err, "watch's standard error: " + err)
        got = json.loads(tally("get", "--json", "--metric", "disputes.screened").stdout)
        totals = [t["values"]["total"] for t in got["tallies"] if t["scope"] == "county"]
        check(totals == [7], "county total after the link came back: %s" % totals)
    finally:
        d.terminate()
        d.wait(30)

    # The link up and no tallyd: a refusal still ends a push early.
    start = time.monotonic()
    r = tally("push", "--town", "gaoguan", "--timeout", "30", "disputes.screened=1")
    check(r.returncode == 3 and "nothing accepts connections there" in r.stderr,
          "push with tallyd stopped: %d: %s" % (r.returncode, r.stderr))
    check(time.monotonic() - start < 25, "push with tallyd stopped waited its whole timeout")


def main():
    if os.environ.get(MARK) != "1":
        if shutil.which("unshare") is None:
            print("test_link_down: no unshare(1); skipped")
            return 77
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
        if probe.returncode != 0:
            print("test_link_down: no network namespace to be had (%s); skipped" %
                  probe.stderr.decode().strip())
            return 77
        env = dict(os.environ, **{MARK: "1"})
        env.pop("TALLY_SERVER", None)
        return subprocess.run(["unshare", "-n", sys.executable] + sys.argv,
                              env=env).returncode
    tmp = tempfile.mkdtemp(prefix="test_link_down.")
    os.environ["XDG_STATE_HOME"] = tmp  # the client ids of pushes without --spool
    try:
        run(tmp)
    except Fail as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_link_down: every check held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
