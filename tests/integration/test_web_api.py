#!/usr/bin/python3
"""Integration test of tally-web's start-up and API edges against the real
tallyd over real sockets.

Usage: test_web_api.py TALLYD TALLY TALLY_WEB SOURCE_DIR

Starts tallyd (the example catalog, ipc:// endpoints in a temporary
directory) and checks, with the Python standard library:
--listen with a host name (localhost) listens on an address it resolves
to, and an IPv4 address only on that address (not [::]); a host name that
does not resolve or an address not of this machine stops tally-web with
status 1 and no "ready"; /api/v1/range is `tally history --json`'s
document (a ratio's value, "through" for the point holding tallyd's
today); /api/v1/tallies refuses what /api/v1/period refuses (an unknown
name, a label or township name with the id to ask for) in the same
words, and both explain a prefix that begins no topic alike; an empty
period named as such; /api/v1/period and /api/v1/range with nothing
listening at tallyd's address: 503 within 3 s saying that it is not
reachable; WebSocket upgrades with POST (405, Allow: GET) and malformed
ones (400 with a reason, Sec-WebSocket-Version: 13 for a wrong
version); a configuration file with a token that other users can read is
refused (status 2), one of mode 0600 is not; every option of --help is
in tally-web(1)'s SYNOPSIS and OPTIONS; and the unit's IPAddressAllow=
comes with an IPAddressDeny= (alone it filters nothing).
Exit 0 when all hold.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse

import web_procs
from web_procs import fail, get, start, wait_for

TALLYD, TALLY, WEB, SRC = sys.argv[1:5]
TMP = web_procs.temp_dir("tally-web-api-test.")


def tally(*args):
    return web_procs.tally(TALLY, REQ, *args)


def http(path, port=None, host="127.0.0.1"):
    return get("http://%s:%d%s" % (host, port or PORT, urllib.parse.quote(path, safe="/?=&%.:")))


def run_web(args, timeout=10):
    """tally-web run with args until it exits: (status, stderr); status
    "still running" when it had not exited after timeout seconds (it
    started when it should not have)."""
    try:
        r = subprocess.run([WEB] + args, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        return "still running", err or ""


def error_of(body):
    return json.loads(body).get("error", "")


def listening(port):
    """The local addresses of the sockets listening on TCP port, from
    /proc/net/tcp and tcp6 (hexadecimal, as the kernel writes them)."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        with open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                addr, p = fields[1].split(":")
                if fields[3] == "0A" and int(p, 16) == port:
                    found.append(addr)
    return found


tallyd, _, REQ = web_procs.start_example(TALLYD, TALLY, SRC, TMP)
# Figures of today, so that the current month has a ratio's value.
tally("push", "--town", "gaoguan", "disputes.screened=53", "disputes.resolved=35")

# ---- --listen ----------------------------------------------------------
# An IPv4 address is listened on alone: libwebsockets 4.1 given it for an
# IPv6 socket bound [::], every address of the machine.
weblog = os.path.join(TMP, "web.log")
web = start([WEB, "-s", REQ, "--listen", "127.0.0.1:0"], weblog)
PORT = int(wait_for(weblog, r"serving http://127\.0\.0\.1:(\d+)/ for").group(1))
wait_for(weblog, r"synchronised with tallyd")
if listening(PORT) != ["0100007F"]:
    fail("--listen 127.0.0.1:%d listens on %s, expected 127.0.0.1 (0100007F) alone"
         % (PORT, listening(PORT)))

# A host name is resolved: localhost is served on a loopback address.
loglh = os.path.join(TMP, "web-localhost.log")
weblh = start([WEB, "-s", REQ, "--listen", "localhost:0"], loglh)
m = wait_for(loglh, r"(ready: .*)|(cannot listen.*)")
m = re.search(r"ready: serving http://localhost:(\d+)/ \(on (127\.0\.0\.1|::1)\) for", m.group(0))
if m is None:
    fail("--listen localhost:0: %s" % open(loglh, encoding="utf-8").read())
portlh, addr = int(m.group(1)), m.group(2)
want = ["0100007F"] if addr == "127.0.0.1" else ["00000000000000000000000001000000"]
if listening(portlh) != want:
    fail("--listen localhost:0 said %s:%d, listens on %s" % (addr, portlh, listening(portlh)))
st, body = http("/healthz", port=portlh, host=addr if ":" not in addr else "[%s]" % addr)
if st not in (200, 503) or b'"status"' not in body:
    fail("--listen localhost: /healthz on %s:%d: %d %r" % (addr, portlh, st, body[:100]))
weblh.terminate()
if weblh.wait(10) != 0:
    fail("tally-web --listen localhost did not stop cleanly on SIGTERM")

# Nowhere to listen: status 1 at start, never "ready".
for listen, says in (("nosuch-host.invalid:0", "cannot listen on nosuch-host.invalid:0"),
                     ("203.0.113.7:0", "cannot listen on 203.0.113.7:0")):
    rc, err = run_web(["-s", REQ, "--insecure", "--listen", listen])
    if rc != 1 or says not in err or "ready:" in err:
        fail("--listen %s: exit %s, %s (expected 1 and %r)" % (listen, rc, err, says))

# ---- /api/v1/range: tally history --json's document ---------------------
deadline = time.time() + 15
while True:
    clock = json.loads(http("/api/v1/clock")[1])
    catalog = json.loads(http("/api/v1/catalog")[1])
    if clock.get("available") and catalog.get("available"):
        break
    if time.time() > deadline:
        fail("tallyd's clock and catalog not read within 15 s: %s %s" % (clock, catalog))
    time.sleep(0.2)
now = time.gmtime(clock["now_ms"] / 1000 + clock["utc_offset_s"])
this_month = "%04d-%02d" % (now.tm_year, now.tm_mon)
last_month = ("%04d-%02d" % (now.tm_year, now.tm_mon - 1) if now.tm_mon > 1
              else "%04d-12" % (now.tm_year - 1))
today = "%04d-%02d-%02d" % (now.tm_year, now.tm_mon, now.tm_mday)
for metric, by, frm, to in (("disputes.resolution_rate", "month", last_month, this_month),
                            ("disputes.resolved", "month", last_month, this_month),
                            ("disputes.resolution_rate", "quarter", "2023", "2023"),
                            ("disputes.resolved", "year", "2023", "2023")):
    st, body = http("/api/v1/range?metric=%s&by=%s&from=%s&to=%s" % (metric, by, frm, to))
    api = json.loads(body)
    cli = json.loads(tally("history", "-m", metric, "--by", by, "--from", frm, "--to", to,
                           "--json"))
    if st != 200 or api != cli:
        fail("/api/v1/range of %s by %s %s..%s differs from tally history --json:\n%s\n%s"
             % (metric, by, frm, to, body.decode()[:400], json.dumps(cli)[:400]))
st, body = http("/api/v1/range?metric=disputes.resolution_rate&by=month&from=%s&to=%s"
                % (last_month, this_month))
rng = json.loads(body)
last = rng["points"][-1]["value"]
if (rng.get("through") != today or not isinstance(last, dict)
        or abs(last.get("value", -1) - last["num"] / last["den"]) > 1e-9):
    fail("/api/v1/range of this month: no through %s or no ratio value: %s" % (today, body[:300]))

# ---- names in prefixes: /api/v1/tallies as /api/v1/period ---------------
for prefix, says in (("u/county/nosuch/", "metric 'nosuch'"),
                     ("u/county/化解矛盾纠纷/", "ask for its id 'disputes.resolved'"),
                     ("u/town/高观镇/", "ask for its id 'gaoguan'"),
                     ("u/town/nosuch/", "township 'nosuch'"),
                     ("u/town/gaoguan/化解矛盾纠纷/", "ask for its id 'disputes.resolved'")):
    st, body = http("/api/v1/tallies?prefix=" + prefix)
    pst, pbody = http("/api/v1/period?period=2023&prefix=" + prefix)
    if st != 400 or says not in error_of(body) or pst != 400 \
            or error_of(body) != error_of(pbody):
        fail("/api/v1/tallies?prefix=%s: %d %s; /api/v1/period: %d %s (expected both 400 with "
             "the same words, saying %r)" % (prefix, st, body.decode()[:200], pst,
                                             pbody.decode()[:200], says))
# A declared township without tallies: an empty list; a part of a name:
# the tallies of the names it begins.
for prefix, some in (("u/town/bashan/", False), ("u/town/gaoguan/disputes.res", True),
                     ("u/county/disputes.", True)):
    st, body = http("/api/v1/tallies?prefix=" + prefix)
    pst, _ = http("/api/v1/period?period=2023&prefix=" + prefix)
    if st != 200 or pst != 200 or bool(json.loads(body)["tallies"]) != some:
        fail("/api/v1/tallies?prefix=%s: %d %s (period: %d)" % (prefix, st, body[:200], pst))
# A prefix that begins no topic: the forms it takes, from both routes.
st, body = http("/api/v1/tallies?prefix=disputes.screened")
pst, pbody = http("/api/v1/period?period=2023&prefix=disputes.screened")
if st != 400 or pst != 400 or '"u/town/TOWNSHIP/"' not in error_of(body) \
        or error_of(body) != error_of(pbody):
    fail("a prefix beginning no topic: %d %s; period: %d %s" % (st, body[:300], pst, pbody[:300]))

# ---- an empty period -----------------------------------------------------
for path in ("/api/v1/period?period=", "/api/v1/period?period=&prefix=u/county/"):
    st, body = http(path)
    e = error_of(body)
    if st != 400 or not e.startswith("period: empty") or "2023-Q4" not in e or "callback" in e:
        fail("%s: %d %s" % (path, st, body[:200]))
for path, says in (("/api/v1/period?period=..2023", "period: '..2023' is not a period"),
                   ("/api/v1/range?metric=disputes.resolved&by=month&from=", "from: empty")):
    st, body = http(path)
    if st != 400 or not error_of(body).startswith(says):
        fail("%s: %d %s, expected 400 saying %r" % (path, st, body[:200], says))

# ---- WebSocket upgrades refused with an answer ---------------------------
def raw(head):
    """The status line and headers answered to head (a whole request), or
    None when the connection was closed without an answer."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    try:
        s.sendall(head.encode())
        got = b""
        while b"\r\n\r\n" not in got:
            c = s.recv(4096)
            if not c:
                return None
            got += c
        return got.split(b"\r\n\r\n")[0].decode().lower()
    finally:
        s.close()


KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
UP = "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
for what, head, status, header in (
        ("POST", "POST /api/v1/stream HTTP/1.1\r\n" + UP + KEY + "Sec-WebSocket-Version: 13\r\n",
         405, "allow: get"),
        ("version 8", "GET /api/v1/stream HTTP/1.1\r\n" + UP + KEY + "Sec-WebSocket-Version: 8\r\n",
         400, "sec-websocket-version: 13"),
        ("no version", "GET /api/v1/stream HTTP/1.1\r\n" + UP + KEY, 400,
         "sec-websocket-version: 13"),
        ("no key", "GET /api/v1/stream HTTP/1.1\r\n" + UP + "Sec-WebSocket-Version: 13\r\n", 400,
         None),
        ("a short key", "GET /api/v1/stream HTTP/1.1\r\n" + UP +
         "Sec-WebSocket-Key: abc\r\nSec-WebSocket-Version: 13\r\n", 400, None),
        ("no Connection: Upgrade", "GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
         "Upgrade: websocket\r\n" + KEY + "Sec-WebSocket-Version: 13\r\n", 400, None)):
    got = raw(head + "\r\n")
    if got is None or not re.match(r"http/1\.[01] %d " % status, got) \
            or (header and header not in got.split("\r\n")):
        fail("a WebSocket upgrade with %s: %r, expected %d%s" % (what, got, status,
                                                                 header and " and " + header))
got = raw("GET /api/v1/stream HTTP/1.1\r\n" + UP + KEY + "Sec-WebSocket-Version: 13\r\n\r\n")
if got is None or not got.startswith("http/1.1 101 "):
    fail("a well-formed WebSocket upgrade: %r" % got)
if http("/healthz")[0] != 200:
    fail("the server stopped answering after refused upgrades")

# ---- tallyd not running: 503 saying so, without the whole wait ----------
lognone = os.path.join(TMP, "web-none.log")
webnone = start([WEB, "-s", "ipc://%s/nothing" % TMP, "--listen", "127.0.0.1:0"], lognone)
portnone = int(wait_for(lognone, r"serving http://127\.0\.0\.1:(\d+)/ for").group(1))
for path in ("/api/v1/period?period=2023", "/api/v1/range?metric=disputes.resolved&by=year"
             "&from=2023"):
    t0 = time.time()
    st, body = http(path, port=portnone)
    took = time.time() - t0
    e = error_of(body)
    if st != 503 or "is not reachable" not in e or "refused" not in e or took > 3:
        fail("%s with nothing at tallyd's address: %d %s after %.1f s" % (path, st, body[:200],
                                                                          took))
webnone.terminate()
if webnone.wait(10) != 0:
    fail("tally-web (no tallyd) did not stop cleanly on SIGTERM")

# ---- a configuration file's token -----------------------------------------
cfg = os.path.join(TMP, "web.conf")
with open(cfg, "w") as f:
    f.write("[web]\ntoken = s3cret-token-0123456789\n")
os.chmod(cfg, 0o644)
rc, err = run_web(["-c", cfg, "-s", REQ, "--listen", "127.0.0.1:0"])
if rc != 2 or "mode 0644" not in err or "token" not in err:
    fail("a token in a file of mode 0644: exit %s %s (expected 2, naming the mode)" % (rc, err))
os.chmod(cfg, 0o600)
logc = os.path.join(TMP, "web-config.log")
webc = start([WEB, "-c", cfg, "-s", REQ, "--listen", "127.0.0.1:0"], logc)
wait_for(logc, r"ready: .*\(token required\)")
webc.terminate()
if webc.wait(10) != 0:
    fail("tally-web with a token from a file of mode 0600 did not stop cleanly")

# ---- tally-web(1) has every option of --help -----------------------------
r = subprocess.run([WEB, "--help"], capture_output=True, text=True, timeout=10)
opts = set(re.findall(r"^\s+(?:(-\w), )?(--[\w-]+)", r.stdout, re.M))
with open(os.path.join(SRC, "web", "tally-web.1"), encoding="utf-8") as f:
    man = f.read().replace("\\-", "-")
synopsis = man.split(".SH SYNOPSIS")[1].split(".SH ")[0]
options = man.split(".SH OPTIONS")[1].split(".SH ")[0]
def has(text, opt):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), text) is not None


# Each option in OPTIONS, as --help writes it; in SYNOPSIS, either form.
missing = [o for pair in opts for o in pair if o and not has(options, o)]
missing += [long for short, long in opts if not has(synopsis, long)
            and not (short and has(synopsis, short))]
if len(opts) < 10 or missing:
    fail("tally-web(1): options of --help missing from SYNOPSIS or OPTIONS: %s" % missing)

# ---- the unit: IPAddressAllow= only with IPAddressDeny= -------------------
with open(os.path.join(SRC, "systemd", "tally-web.service.in"), encoding="utf-8") as f:
    unit = [l.strip() for l in f if not l.lstrip().startswith("#")]
if any(l.startswith("IPAddressAllow=") for l in unit) and \
        not any(l.startswith("IPAddressDeny=") for l in unit):
    fail("tally-web.service: IPAddressAllow= without IPAddressDeny= filters nothing")

web_procs.stop_web(web)
web_procs.finish(tallyd, TMP, "test_web_api")
