#!/usr/bin/python3
"""A state directory written by an earlier tallyd loads in this one.

Usage: test_state_compat.py TALLYD TALLY SOURCE_DIR

For every tests/fixtures/state-<version>/ (written by
tests/fixtures/make-state.sh with that version: a checkpoint from a clean
stop, two journal records after it from a killed run, history.db), a copy
is started with tests/fixtures/state-compat.conf, and the test checks
that tallyd loaded the checkpoint, replayed the two records, and answers
every figure make-state.sh pushed: the totals, the gauges' latest values,
and the closed periods of 2023 from the history.  Exit 0 when all hold.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TALLYD, TALLY, SRC = sys.argv[1:4]
CONF = os.path.join(SRC, "tests", "fixtures", "state-compat.conf")

# What make-state.sh pushed, as (scope, metric, value): totals, then
# closed periods of 2023 (period, scope, metric, value).
TOTALS = [
    ("gaoguan", "disputes.screened", 219), ("gaoguan", "disputes.resolved", 219),
    ("gaoguan", "grid.zones", 25), ("bashan", "disputes.screened", 50),
    ("bashan", "disputes.resolved", 44), ("bashan", "grid.zones", 7),
    ("county", "disputes.screened", 269), ("county", "disputes.resolved", 263),
    ("county", "grid.zones", 32),
]
PERIODS = [
    ("2023", "gaoguan", "disputes.resolved", 219), ("2023-Q2", "gaoguan", "disputes.resolved", 3),
    ("2023-12", "gaoguan", "disputes.resolved", 216), ("2023-11", "bashan", "disputes.screened", 10),
    ("2023", "county", "disputes.screened", 269), ("2023-12-31", "gaoguan", "grid.zones", 25),
    ("2023-12", "county", "grid.zones", 32),
]


def fail(msg, log=None):
    print("FAIL: " + msg, file=sys.stderr)
    if log:
        sys.stderr.write(open(log, encoding="utf-8", errors="replace").read())
    sys.exit(1)


def values(req, *args):
    r = subprocess.run([TALLY, "-s", req, "get", "--all", "--json"] + list(args), capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        fail("tally get %s: %s" % (" ".join(args), r.stderr))
    return {(t["scope"], t["metric"]): t for t in json.loads(r.stdout)["tallies"]}


fixtures = sorted(glob.glob(os.path.join(SRC, "tests", "fixtures", "state-*")))
fixtures = [f for f in fixtures if os.path.isdir(f)]
if not fixtures:
    fail("no tests/fixtures/state-*/ directory")
for fx in fixtures:
    tmp = tempfile.mkdtemp(prefix="tally-state-compat.")
    state = os.path.join(tmp, "state")
    shutil.copytree(fx, state)
    log = os.path.join(tmp, "tallyd.log")
    req = "ipc://%s/req" % tmp
    # A file giving a metric with tallies a decimal scale: a state of a
    # format before scales were saved takes it, and says so.
    scaled = os.path.join(tmp, "scaled.conf")
    with open(CONF) as f:
        text = f.read()
    with open(scaled, "w") as f:
        f.write(text.replace("[metric disputes.screened]\n", "[metric disputes.screened]\nscale = 1\n", 1))
    chk = subprocess.run([TALLYD, "--check-config", scaled, "-s", state], capture_output=True,
                         text=True)
    if chk.returncode != 0 or "metric 'disputes.screened' has tallies saved by an older tallyd, " \
            "without their decimal scale: they are read at scale 1" not in chk.stdout + chk.stderr:
        fail("%s: --check-config with a scale added: status %d\n%s%s" % (
            os.path.basename(fx), chk.returncode, chk.stdout, chk.stderr))
    p = subprocess.Popen([TALLYD, "-c", CONF, "-s", state, "-r", req, "-p", "ipc://%s/pub" % tmp],
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while "ready:" not in open(log).read():
            if p.poll() is not None or time.time() > deadline:
                fail("%s: tallyd did not start" % os.path.basename(fx), log)
            time.sleep(0.05)
        text = open(log).read()
        if not re.search(r"loaded the checkpoint holding the journal to position \d+", text) or \
                not re.search(r"recovered 2 journal records", text):
            fail("%s: expected a checkpoint loaded and 2 journal records replayed" %
                 os.path.basename(fx), log)
        now = values(req)
        for scope, metric, want in TOTALS:
            t = now.get((scope, metric))
            got = t and t["values"]["total"]
            if got != want:
                fail("%s: %s %s total %r, expected %d" % (os.path.basename(fx), scope, metric, got,
                                                          want), log)
        for period, scope, metric, want in PERIODS:
            t = values(req, "--period", period).get((scope, metric))
            got = t and t["values"][period]
            if got != want:
                fail("%s: %s %s in %s: %r, expected %d" % (os.path.basename(fx), scope, metric,
                                                          period, got, want), log)
    finally:
        p.terminate()
        p.wait(20)
    # Its clean stop saved the scales (0) with the state: the scaled file
    # is refused now, naming the scale to put back.
    chk = subprocess.run([TALLYD, "--check-config", scaled, "-s", state], capture_output=True,
                         text=True)
    if chk.returncode != 2 or "holds its tallies at scale 0, which they keep" not in chk.stderr:
        fail("%s: --check-config with a scale added after a start: status %d\n%s%s" % (
            os.path.basename(fx), chk.returncode, chk.stdout, chk.stderr))
    shutil.rmtree(tmp, ignore_errors=True)
    print("%s: loaded, every figure as written" % os.path.basename(fx))
print("test_state_compat: all checks passed")
