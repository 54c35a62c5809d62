#!/usr/bin/python3
"""tally-web against a tallyd secured with CURVE, over real sockets.

Usage: test_web_keys.py TALLYD TALLY TALLY_WEB SOURCE_DIR

A subscriber key revoked by a reload, then admitted again: while it is
revoked /metrics says tally_web_tallyd_link{state="handshake_failed"} 1
(the critical alert TallydKeysRefused reads it) and tally_web_synced 0,
steadily, and the log says why in words that are true of a subscriber;
once it is admitted again tally-web synchronises by itself (tallyd cuts
the subscription and refuses its new connection, which ZeroMQ never
retries), stays synchronised, and a figure pushed afterwards reaches the
browsers as a live update, not a new snapshot.  tally-web runs with
JOURNAL_STREAM set, as under systemd: every line of its log carries its
syslog priority prefix (sd-daemon(3)), and none without it.  Also: -V
prints tallyd's version; the unit and tally-web(1) tell how a dynamic user
gets its secret keys (LoadCredential=).
Exit 0 when all hold.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import web_procs
from web_procs import fail, get, start, start_tallyd, text, wait_for
import ws_client

TALLYD, TALLY, WEB, SRC = sys.argv[1:5]
TMP = web_procs.temp_dir("tally-web-keys.")
os.environ.pop("JOURNAL_STREAM", None)  # set only where a test says so
# The logs grow long here (tallyd at info, a refused key tried again): fail()
# prints the end of each.
web_procs.LOG_TAIL = 6000


def http(path):
    return get("http://127.0.0.1:%d%s" % (PORT, path))


def metrics():
    st, body = http("/metrics")
    if st != 200:
        fail("/metrics: %d %s" % (st, body[:200]))
    body = body.decode()
    links = dict(re.findall(r'^tally_web_tallyd_link\{state="(\w+)"\} (\d+)$', body, re.M))
    synced = re.search(r"^tally_web_synced (\d+)$", body, re.M)
    resyncs = re.search(r"^tally_web_resyncs_total (\d+)$", body, re.M)
    return ({s for s, v in links.items() if v == "1"}, synced and int(synced.group(1)),
            resyncs and int(resyncs.group(1)))


def healthz():
    st, body = http("/healthz")
    return st, json.loads(body)


def ws_open(path):
    return ws_client.ws_open(PORT, path, fail)


def ws_message(s):
    return ws_client.ws_message(s, fail)


# ---- -V: tallyd's version ---------------------------------------------------
r = subprocess.run([WEB, "-V"], capture_output=True, text=True, timeout=10)
d = subprocess.run([TALLYD, "-V"], capture_output=True, text=True, timeout=10)
if r.returncode != 0 or d.returncode != 0 or \
        r.stdout != d.stdout.replace("tallyd", "tally-web", 1) or r.stderr:
    fail("tally-web -V: %d %r, tallyd -V: %r" % (r.returncode, r.stdout + r.stderr, d.stdout))
r2 = subprocess.run([WEB, "--version"], capture_output=True, text=True, timeout=10)
if r2.returncode != 0 or r2.stdout != r.stdout:
    fail("tally-web --version: %d %r" % (r2.returncode, r2.stdout + r2.stderr))

# ---- priorities under journald, none elsewhere -----------------------------
for env, want in ((None, "tally-web: unknown option '--bogus'\nTry 'tally-web --help'.\n"),
                  ({"JOURNAL_STREAM": "8:12345"},
                   "<3>unknown option '--bogus'\n<3>Try 'tally-web --help'.\n")):
    r = subprocess.run([WEB, "--bogus"], capture_output=True, text=True, timeout=10,
                       env=dict(os.environ, **(env or {})))
    if r.returncode != 2 or r.stderr != want:
        fail("tally-web --bogus with %s: %d %r, want %r" % (env, r.returncode, r.stderr, want))

# ---- LoadCredential=: the unit and the manual -------------------------------
unit = text(os.path.join(SRC, "systemd", "tally-web.service.in"))
creds = dict(re.findall(r"^#\s*LoadCredential=([\w.-]+):(/\S+)$", unit, re.M))
used = set(re.findall(r"/run/credentials/tally-web\.service/([\w.-]+)", unit))
if "DynamicUser=yes" not in unit or len(creds) < 2 or not used or used - set(creds) or \
        not re.search(r"--cert\s+/run/credentials/tally-web\.service/", unit) and \
        not re.search(r"TALLY_CERT=/run/credentials/tally-web\.service/", unit) or \
        not re.search(r"--tls-key\s+/run/credentials/tally-web\.service/", unit):
    fail("tally-web.service.in: no LoadCredential= for --cert and --tls-key, or paths under "
         "/run/credentials/tally-web.service/ it does not load: %s, %s" % (creds, used))
if re.search(r"--(?:tls-key|cert)\s+/etc/", unit):
    fail("tally-web.service.in still points a secret key at /etc, which its dynamic user "
         "cannot read")
man = text(os.path.join(SRC, "web", "tally-web.1"))
if "LoadCredential=" not in man or "/run/credentials/tally\\-web.service/" not in man:
    fail("tally-web(1) says nothing of LoadCredential= and /run/credentials/tally-web.service/")
if not re.search(r'^\.BR \\-V ", " \\-\\-version', man, re.M):
    fail("tally-web(1) has no -V, --version")

# ---- a secured tallyd, tally-web with a subscriber key ----------------------
def keygen(out, name):
    os.makedirs(os.path.join(TMP, out), exist_ok=True)
    subprocess.run([TALLY, "keygen", "--out", os.path.join(TMP, out), name + ".key"],
                   check=True, capture_output=True)


keygen("keys", "server")
keygen("towns", "gaoguan")
keygen("subs", "screen")
for d in ("towns", "subs"):  # the secrets stay with their owners
    for n in os.listdir(os.path.join(TMP, d)):
        if n.endswith("_secret"):
            os.rename(os.path.join(TMP, d, n), os.path.join(TMP, "keys", n))
conf = os.path.join(TMP, "tallyd.conf")
shutil.copy(os.path.join(SRC, "systemd", "tallyd.conf.example"), conf)
with open(conf, "a") as f:
    f.write("\n[security]\nserver_secret_key = %s/keys/server.key_secret\n"
            "township_keys = %s/towns\nsubscriber_keys = %s/subs\n" % (TMP, TMP, TMP))
REQ = "ipc://%s/req" % TMP
tlog = os.path.join(TMP, "tallyd.log")
tallyd = start_tallyd(TALLYD, conf, REQ, "ipc://%s/pub" % TMP, tlog, "-s",
                      os.path.join(TMP, "state"), "-l", "info")
SERVER_KEY = os.path.join(TMP, "keys", "server.key")


def push(*samples):
    r = subprocess.run([TALLY, "-s", REQ, "--server-key", SERVER_KEY, "--cert",
                        os.path.join(TMP, "keys", "gaoguan.key_secret"), "push", "-q", "--town",
                        "gaoguan"] + list(samples), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        fail("tally push %s: %d %s" % (samples, r.returncode, r.stderr))


def reload(n):
    tallyd.send_signal(signal.SIGHUP)
    wait_for(tlog, r"reload: keys in force", count=n)


push("disputes.resolved=5")
wlog = os.path.join(TMP, "web.log")
web = start([WEB, "-s", REQ, "--server-key", SERVER_KEY, "--cert",
             os.path.join(TMP, "keys", "screen.key_secret"), "--listen", "127.0.0.1:0"], wlog,
            env=dict(os.environ, JOURNAL_STREAM="8:12345"))
PORT = int(wait_for(wlog, r"(?m)^<5>ready: serving http://127\.0\.0\.1:(\d+)/").group(1))
wait_for(wlog, r"(?m)^<5>synchronised with tallyd")
links, synced, _ = metrics()
if links != {"up"} or synced != 1:
    fail("/metrics before the revocation: %s, synced %s" % (links, synced))

# Revoked: the subscription is cut and its new connection refused, the
# request connection stays (its requests refused).
os.rename(os.path.join(TMP, "subs", "screen.key"), os.path.join(TMP, "screen.key"))
reload(1)
deadline = time.time() + 15
while metrics()[0] != {"handshake_failed"}:
    if time.time() > deadline:
        fail("/metrics 15 s after the revocation: link %s, not handshake_failed" % metrics()[0])
    time.sleep(0.2)
end = time.time() + 8  # steadily: no flapping to "up" or to synced
while time.time() < end:
    links, synced, _ = metrics()
    st, h = healthz()
    if links != {"handshake_failed"} or synced != 0 or st != 503 or \
            h.get("tallyd") != "handshake_failed" or h.get("synced"):
        fail("while revoked: /metrics link %s synced %s, /healthz %d %s" % (links, synced, st, h))
    time.sleep(0.3)
said = text(wlog)
handshake = ("<3>the security handshake with tallyd at %s failed: tallyd does not admit this "
             "subscriber's key (--cert)" % REQ)
refusal = ("<3>tallyd refuses this subscriber's requests (FORBIDDEN): this key is no longer "
           "admitted by the daemon")
if said.count(handshake) != 1 or refusal not in said or "may not submit" in said:
    fail("tally-web's log while revoked: want one %r and %r, nothing of submitting:\n%s"
         % (handshake, refusal, said))
if said.count("<4>lost synchronisation with tallyd") != 1 or said.count("synchronised with") != 1:
    fail("tally-web's log while revoked: synchronisation lost not once and for good:\n%s" % said)

# Admitted again: synchronised by itself, and it stays so.
os.rename(os.path.join(TMP, "screen.key"), os.path.join(TMP, "subs", "screen.key"))
reload(2)
deadline = time.time() + 20
while healthz()[0] != 200:
    if time.time() > deadline:
        fail("not synchronised 20 s after the key was admitted again: %s %s"
             % (healthz(), metrics()))
    time.sleep(0.2)
_, _, resyncs = metrics()
end = time.time() + 10
while time.time() < end:
    links, synced, r = metrics()
    st, h = healthz()
    if links != {"up"} or synced != 1 or r != resyncs or st != 200 or h.get("tallyd") != "up":
        fail("after the key was admitted again: /metrics link %s synced %s resyncs %s (was %s), "
             "/healthz %d %s" % (links, synced, r, resyncs, st, h))
    time.sleep(0.25)
# A new figure arrives through the live stream: an update, no new snapshot.
s = ws_open("/api/v1/stream")
first = ws_message(s)
if first.get("type") != "snapshot" or first.get("tallyd") != "up":
    fail("stream after the key was admitted again: %s" % json.dumps(first)[:200])
push("disputes.resolved=2")
deadline = time.time() + 10
seen = None
while seen is None and time.time() < deadline:
    m = ws_message(s)
    for t in m.get("tallies", []):
        if t["metric"] == "disputes.resolved" and t["scope"] == "gaoguan" \
                and t["values"]["total"] == 7:
            seen = m
if seen is None or seen.get("type") != "update" or seen.get("stream_id") != first["stream_id"]:
    fail("the figure pushed after the key was admitted again: %s" % json.dumps(seen)[:300])
s.close()
if metrics()[2] != resyncs:
    fail("the figure pushed after the key was admitted again came by a new snapshot")
said = text(wlog)
if "<5>the security handshake with tallyd at %s succeeds again" % REQ not in said:
    fail("tally-web's log does not say the handshake succeeds again:\n%s" % said)

web_procs.stop_web(web)
bare = [l for l in text(wlog).splitlines() if not re.match(r"<[0-7]>\S", l)]
if bare or "<5>stopped" not in text(wlog):
    fail("tally-web's lines under journald without a priority prefix: %s" % bare)
web_procs.finish(tallyd, TMP, "test_web_keys")
