#!/usr/bin/python3
"""Backups of a running tallyd (SIGUSR1, [backup] in tallyd.conf).

Usage: test_daemon_backup.py TALLYD TALLY

Each case starts the real tallyd on a fresh state directory (ipc://
endpoints in a temporary directory), pushes figures with the real `tally`
command, asks for backups and starts a second tallyd on a copy of a
backup, checking what it answers:

- a backup holds exactly the figures acknowledged before it was asked
  for, today's and a closed period's (history.db); later figures are not
  in it; [backup] keep removes the oldest; the live daemon keeps every
  figure across its own restart; STATS counts the backups;
- backups taken while figures keep arriving (checkpoints every few
  records, so that segments come and go meanwhile) each start cleanly,
  holding every figure acknowledged before the signal and none that was
  not acknowledged by the end of the backup;
- a backup directory that cannot be created fails the backup with a
  message naming it, counted, and tallyd keeps serving;
- [backup] interval takes backups by itself, and its schedule carries
  over restarts: a tallyd restarted more often than the interval still
  writes backups an interval apart, the first soon after the start, and
  STATS reports the newest backup's time from the start on;
- `tally backup` (BACKUP_REQ) answers with the path of a backup that holds
  every figure acknowledged before it, several at once each get one, a
  failed backup is reported with tallyd's reason, and with CURVE only an
  admin key ([security] admin_keys) may ask, until a reload revokes it;
- `tally backup --copy-to DIR` (BACKUP_FETCH) copies the backup to the
  client, file for file the same as on tallyd's side, across many
  pieces; a tallyd restored from the copy holds what the backup holds;
  `--name` copies a backup tallyd still keeps, and one it no longer
  keeps (or an existing target) is refused with nothing left behind;
  `--keep` removes the older copies; `--list` shows the backups kept,
  oldest first, and only an admin key may list them; the copy's BLAKE2SUMS lists every
  other file and `b2sum -c` agrees; `tally backup --verify` finds a copy
  whose history.db changed, and `tallyd --restore` refuses it;
  with CURVE only an admin key may copy;
- `tallyd --check-backup` passes a sound backup, leaving nothing beside
  it, and finds a history.db damaged before the digests were taken,
  which `--restore` then refuses but with `--accept-loss`, the start
  rebuilding the history from the journal.
Exit 0 when every check holds.
"""
import calendar
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TALLYD, TALLY = sys.argv[1:3]
# tests/integration/valgrind.sh points this at its valgrind wrapper.
TALLYD = os.environ.get("TALLY_TALLYD") or TALLYD


class Fail(Exception):
    pass


class Daemon:
    """A tallyd on state directory `state` with config text `conf`."""

    def __init__(self, tmp, name, state, conf, env=None):
        self.tmp, self.state = tmp, state
        self.req = "ipc://%s/%s-req" % (tmp, name)
        self.log = os.path.join(tmp, name + ".log")
        path = os.path.join(tmp, name + ".conf")
        with open(path, "w") as f:
            f.write(conf)
        self.p = subprocess.Popen([TALLYD, "-c", path, "-s", state, "-r", self.req, "-p",
                                   "ipc://%s/%s-pub" % (tmp, name), "-l", "info"],
                                  stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                  env=dict(os.environ, **(env or {})))
        self.wait_log("ready:", 30)

    def text(self):
        with open(self.log, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_log(self, needle, timeout, count=1):
        deadline = time.time() + timeout
        while self.text().count(needle) < count:
            if self.p.poll() is not None or time.time() > deadline:
                raise Fail("no %d x '%s' in tallyd's log within %d s:\n%s" %
                           (count, needle, timeout, self.text()[-4000:]))
            time.sleep(0.05)

    def tally(self, *args, check=True, keys=()):
        r = subprocess.run([TALLY, "-s", self.req] + list(keys) + list(args),
                           capture_output=True, text=True, timeout=60)
        if check and r.returncode != 0:
            raise Fail("tally %s: status %d: %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def push(self, town, value, when=None):
        args = ["push", "-q", "--town", town]
        if when:
            args += ["--time", when]
        self.tally(*(args + ["disputes.screened=%d" % value]))

    def value(self, scope, column, *args):
        out = json.loads(self.tally("get", "--all", "--json", *args).stdout)
        for t in out["tallies"]:
            if t["scope"] == scope and t["metric"] == "disputes.screened":
                return t["values"][column]
        return None

    def stats(self):
        return json.loads(self.tally("stats", "--json").stdout)

    def backup(self, count):
        """SIGUSR1, then wait for the count-th backup line; its directory."""
        self.p.send_signal(signal.SIGUSR1)
        self.wait_log("backup written to ", 60, count)
        return re.findall(r"backup written to (\S+) ", self.text())[count - 1]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                raise Fail("tallyd did not stop within 30 s of SIGTERM")
        if self.p.returncode != 0:
            raise Fail("tallyd exited with %d:\n%s" % (self.p.returncode, self.text()[-4000:]))


def kill_all(daemons):
    """The daemons a failed case left running."""
    for d in daemons:
        if d.p.poll() is None:
            d.p.kill()


def restore(tmp, backup, name, conf):
    """A tallyd started on a copy of the backup directory."""
    state = os.path.join(tmp, name + "-state")
    shutil.copytree(backup, state)
    d = Daemon(tmp, name, state, conf)
    bad = [w for w in ("missing", "damaged", "corrupt", "torn", "lost") if w in d.text()]
    if bad:
        raise Fail("the restored tallyd's log says %s:\n%s" % (bad, d.text()))
    return d


CONF = "[journal]\nsnapshot_every_records = 10\n[backup]\nkeep = 2\n"


def case_keeps_what_was_acknowledged(tmp):
    live = Daemon(tmp, "live", os.path.join(tmp, "state"), CONF)
    daemons = [live]
    try:
        for _ in range(30):
            live.push("t1", 1)
        live.push("t2", 7, "2025-05-01T10:00:00+08:00")
        live.backup(1)
        for _ in range(5):
            live.push("t1", 1)
        second = live.backup(2)
        for _ in range(5):
            live.push("t1", 1)
        third = live.backup(3)
        left = sorted(os.listdir(os.path.dirname(third)))
        if left != sorted([os.path.basename(second), os.path.basename(third)]):
            raise Fail("keep = 2: the backup directory holds %s after three backups" % left)
        st = live.stats()
        if st.get("tallyd_backups_total") != 3 or st.get("tallyd_backup_failures_total") != 0 or \
                not st.get("tallyd_backup_last_success_timestamp_seconds"):
            raise Fail("STATS after three backups: %s" % {k: v for k, v in st.items()
                                                          if "backup" in k})
        names = sorted(os.listdir(second))
        if "history.db" not in names or not any(n.startswith("journal-") for n in names) or \
                any(n.endswith(("-wal", "-shm", ".lock", ".tmp")) for n in names):
            raise Fail("backup %s holds %s" % (second, names))
        r = restore(tmp, second, "restored", CONF)
        daemons.append(r)
        for scope, col, args, want in [("t1", "total", (), 35), ("county", "total", (), 42),
                                       ("t2", "2025", ("--period", "2025"), 7),
                                       ("t2", "2025-05", ("--period", "2025-05"), 7)]:
            got = r.value(scope, col, *args)
            if got != want:
                raise Fail("restored from %s: %s %s is %r, expected %d" % (second, scope, col, got,
                                                                          want))
        # The restored daemon goes on as any other: a figure, a clean stop.
        r.push("t1", 1)
        r.stop()
        # The live daemon lost nothing to the backups, across its restart.
        live.stop()
        live = Daemon(tmp, "live2", os.path.join(tmp, "state"), CONF)
        daemons.append(live)
        if live.value("t1", "total") != 40 or live.value("t2", "2025", "--period", "2025") != 7:
            raise Fail("the live state after its restart: t1 total %r, t2 2025 %r" %
                       (live.value("t1", "total"), live.value("t2", "2025", "--period", "2025")))
        # A backup holding the checkpoint the stop wrote: the start from it
        # names the position --check-backup names (it said one more, the
        # checkpoint's next position).
        fourth = live.backup(1)
        check = run_tallyd("--check-backup", fourth)
        held = re.search(r"holds the journal to position (\d+)\.", check.stdout)
        if check.returncode != 0 or held is None:
            raise Fail("--check-backup %s: status %d: %s%s" % (fourth, check.returncode,
                                                              check.stdout, check.stderr))
        r = restore(tmp, fourth, "restored4", CONF)
        daemons.append(r)
        if "loaded the checkpoint holding the journal to position %s:" % held.group(1) \
                not in r.text():
            raise Fail("--check-backup said position %s; the start:\n%s"
                       % (held.group(1), r.text()))
        r.stop()
    finally:
        kill_all(daemons)


def case_under_load(tmp):
    conf = "[journal]\nsnapshot_every_records = 5\n[backup]\nkeep = 10\n"
    live = Daemon(tmp, "load", os.path.join(tmp, "load-state"), conf)
    daemons = [live]
    acked = [0]
    stop = threading.Event()
    errors = []

    def pusher():
        try:
            while not stop.is_set():
                live.push("t1", 1)
                acked[0] += 1
        except Exception as e:  # reported by the main thread
            errors.append(e)

    th = threading.Thread(target=pusher)
    th.start()
    try:
        windows = []
        for i in range(1, 4):
            time.sleep(0.7)
            before = acked[0]
            path = live.backup(i)
            windows.append((path, before, acked[0] + 1))
        stop.set()
        th.join(60)
        if errors:
            raise errors[0]
        for i, (path, lo, hi) in enumerate(windows):
            r = restore(tmp, path, "load-r%d" % i, conf)
            daemons.append(r)
            got = r.value("t1", "total")
            if got is None or not lo <= got <= hi:
                raise Fail("backup %s taken under load holds t1 total %r, expected %d..%d" %
                           (path, got, lo, hi))
            r.stop()
    finally:
        stop.set()
        th.join(60)
        kill_all(daemons)


def case_checkpoint_under_way(tmp):
    # The journal has moved to a new segment for a checkpoint whose image
    # is still being built (held back 3 s): only the segments before it
    # hold the figures, and the backup must carry them.
    conf = "[journal]\nsnapshot_every_records = 10\n"
    live = Daemon(tmp, "ckpt", os.path.join(tmp, "ckpt-state"), conf,
                  {"TALLYD_TEST_CHECKPOINT_CHILD_MS": "3000"})
    daemons = [live]
    try:
        for _ in range(12):
            live.push("t1", 1)
        state = os.path.join(tmp, "ckpt-state")
        deadline = time.time() + 20
        while sum(n.startswith("journal-") for n in os.listdir(state)) < 2:
            if time.time() > deadline:
                raise Fail("no second journal segment 20 s after 12 records:\n%s" % live.text())
            time.sleep(0.05)
        path = live.backup(1)
        if "checkpoint written" in live.text():
            raise Fail("the checkpoint was written before the backup: the case tests nothing")
        segs = [n for n in os.listdir(path) if n.startswith("journal-")]
        if len(segs) < 2:
            raise Fail("backup %s holds the segments %s, expected the sealed one too" % (path, segs))
        r = restore(tmp, path, "ckpt-r", conf)
        daemons.append(r)
        if r.value("t1", "total") != 12:
            raise Fail("restored from %s: t1 total %r, expected 12" % (path, r.value("t1", "total")))
        r.stop()
        live.stop()
    finally:
        kill_all(daemons)


def run_tallyd(*args):
    return subprocess.run([TALLYD] + list(args), capture_output=True, text=True, timeout=120)


def case_restore_command(tmp):
    state = os.path.join(tmp, "rs-state")
    live = Daemon(tmp, "rs", state, CONF)
    daemons = [live]
    try:
        for _ in range(10):
            live.push("t1", 1)
        live.push("t2", 7, "2025-05-01T10:00:00+08:00")
        backup = live.backup(1)
        for _ in range(5):
            live.push("t1", 1)
        r = run_tallyd("-s", state, "--restore", backup)
        if r.returncode != 1 or "in use by another tallyd" not in r.stderr:
            raise Fail("--restore beside a running tallyd: status %d: %s" % (r.returncode,
                                                                            r.stderr))
        live.stop()
        r = run_tallyd("-s", state, "--restore", tmp)
        if r.returncode != 2 or "is not a backup of tallyd's" not in r.stderr:
            raise Fail("--restore of a directory that is no backup: status %d: %s" %
                       (r.returncode, r.stderr))
        # A damaged copy of the backup is refused before anything moves.
        damaged = os.path.join(tmp, "damaged")
        shutil.copytree(backup, damaged)
        seg = sorted(n for n in os.listdir(damaged) if n.startswith("journal-"))[0]
        with open(os.path.join(damaged, seg), "r+b") as f:
            f.seek(60)
            b = f.read(1)
            f.seek(60)
            f.write(bytes([b[0] ^ 0xFF]))
        before = sorted(os.listdir(state))
        r = run_tallyd("-s", state, "--restore", damaged)
        if r.returncode != 1 or "damaged" not in r.stderr or sorted(os.listdir(state)) != before:
            raise Fail("--restore of a damaged backup: status %d: %s; the state directory %s -> %s"
                       % (r.returncode, r.stderr, before, sorted(os.listdir(state))))
        r = run_tallyd("-s", state, "--restore", backup)
        if r.returncode != 0 or "restored %s into %s" % (backup, state) not in r.stdout or \
                "Every file matched the backup's BLAKE2SUMS." not in r.stdout:
            raise Fail("--restore: status %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        aside = [n for n in os.listdir(state) if n.startswith("replaced-")]
        if len(aside) != 1 or "history.db" not in os.listdir(os.path.join(state, aside[0])):
            raise Fail("--restore left %s in the state directory" % sorted(os.listdir(state)))
        live = Daemon(tmp, "rs2", state, CONF)
        daemons.append(live)
        if live.value("t1", "total") != 10 or live.value("t2", "2025", "--period", "2025") != 7:
            raise Fail("after --restore: t1 total %r (expected 10), t2 2025 %r (expected 7)" %
                       (live.value("t1", "total"), live.value("t2", "2025", "--period", "2025")))
        live.stop()
    finally:
        kill_all(daemons)


def rewrite_sums(backup):
    """BLAKE2SUMS written again over the backup's files, as b2sum would:
    damage done before tallyd took the digests, which they cannot see."""
    path = os.path.join(backup, "BLAKE2SUMS")
    with open(path) as f:
        names = [line.split("  ", 1)[1].rstrip("\n") for line in f if line.strip()]
    with open(path, "w") as f:
        for n in names:
            with open(os.path.join(backup, n), "rb") as g:
                f.write("%s  %s\n" % (hashlib.blake2b(g.read()).hexdigest(), n))


def case_check_backup(tmp):
    """tallyd --check-backup: a backup checked as a start would read it,
    which finds a history.db damaged before the digests were taken;
    --restore refuses it but with --accept-loss, and the start then
    rebuilds the history from the journal."""
    state = os.path.join(tmp, "cb-state")
    live = Daemon(tmp, "cb", state, CONF)
    daemons = [live]
    try:
        for _ in range(3):
            live.push("t1", 1)
        live.push("t2", 7, "2025-05-01T10:00:00+08:00")
        deadline = time.time() + 30  # the history written, so that the backup's holds rows
        while live.stats().get("tallyd_history_unstored_records", 0) != 0:
            if time.time() > deadline:
                raise Fail("tallyd's history writer did not catch up within 30 s")
            time.sleep(0.1)
        backup = live.backup(1)
        live.stop()
        files = sorted(os.listdir(backup))
        r = run_tallyd("--check-backup", backup)
        if (r.returncode != 0 or "%s can be restored" % backup not in r.stdout
                or "Every file matched the backup's BLAKE2SUMS." not in r.stdout
                or not re.search(r"history.db is sound \(PRAGMA quick_check\): [1-9]\d* rows",
                                 r.stdout)):
            raise Fail("--check-backup of a sound backup: status %d: %s%s"
                       % (r.returncode, r.stdout, r.stderr))
        if sorted(os.listdir(backup)) != files:
            raise Fail("--check-backup changed the backup's files: %s -> %s"
                       % (files, sorted(os.listdir(backup))))
        r = run_tallyd("--check-backup", tmp)
        if r.returncode != 2 or "is not a backup of tallyd's" not in r.stderr:
            raise Fail("--check-backup of no backup: status %d: %s" % (r.returncode, r.stderr))
        damaged = os.path.join(tmp, "cb-damaged")
        shutil.copytree(backup, damaged)
        db = os.path.join(damaged, "history.db")
        if os.path.getsize(db) < 8192:
            raise Fail("the backup's history.db is %d bytes: too small to damage a page of"
                       % os.path.getsize(db))
        with open(db, "r+b") as f:
            f.seek(4096)
            f.write(b"\xa5" * 64)
        rewrite_sums(damaged)
        r = subprocess.run([TALLY, "backup", "--verify", damaged], capture_output=True, text=True)
        if r.returncode != 0:
            raise Fail("the damaged copy's rewritten digests do not match: %s" % r.stdout)
        r = run_tallyd("--check-backup", damaged)
        if r.returncode != 1 or "/history.db: " not in r.stderr or "--accept-loss" not in r.stderr:
            raise Fail("--check-backup of a damaged history.db: status %d: %s%s"
                       % (r.returncode, r.stdout, r.stderr))
        target = os.path.join(tmp, "cb-restored")
        r = run_tallyd("-s", target, "--restore", damaged)
        if r.returncode != 1 or "/history.db: " not in r.stderr or os.path.exists(target):
            raise Fail("--restore of a damaged history.db: status %d: %s" % (r.returncode,
                                                                           r.stderr))
        r = run_tallyd("-s", target, "--restore", damaged, "--accept-loss")
        if r.returncode != 0 or "Its history.db is damaged" not in r.stdout:
            raise Fail("--restore --accept-loss: status %d: %s%s" % (r.returncode, r.stdout,
                                                                    r.stderr))
        live = Daemon(tmp, "cb2", target, CONF)
        daemons.append(live)
        if "set aside" not in live.text() or "rebuilt from the journal" not in live.text():
            raise Fail("the restored tallyd did not rebuild its history:\n%s" % live.text())
        if live.value("t1", "total") != 3 or live.value("t2", "2025", "--period", "2025") != 7:
            raise Fail("after --restore --accept-loss: t1 total %r (expected 3), t2 2025 %r "
                       "(expected 7)" % (live.value("t1", "total"),
                                         live.value("t2", "2025", "--period", "2025")))
        live.stop()
    finally:
        kill_all(daemons)


def case_failure(tmp):
    blocker = os.path.join(tmp, "not-a-directory")
    open(blocker, "w").close()
    conf = "[backup]\ndir = %s/sub\n" % blocker
    live = Daemon(tmp, "fail", os.path.join(tmp, "fail-state"), conf)
    try:
        live.push("t1", 3)
        live.p.send_signal(signal.SIGUSR1)
        live.wait_log("backup (SIGUSR1) failed: cannot create the backup directory %s/sub" %
                      blocker, 30)
        r = live.tally("backup", check=False)
        if r.returncode != 1 or "cannot create the backup directory %s/sub" % blocker \
                not in r.stderr:
            raise Fail("tally backup of a failing backup: %d %s" % (r.returncode, r.stderr))
        live.push("t1", 4)
        st = live.stats()
        if st.get("tallyd_backup_failures_total") != 2 or st.get("tallyd_backups_total") != 0:
            raise Fail("STATS after a failed backup: %s" % {k: v for k, v in st.items()
                                                            if "backup" in k})
        if live.value("t1", "total") != 7:
            raise Fail("after a failed backup t1 total is %r, expected 7" %
                       live.value("t1", "total"))
        live.stop()
    finally:
        kill_all([live])


def backup_json(d, keys=()):
    """`tally backup --json`: its answer, checked against the directory."""
    out = json.loads(d.tally("backup", "--json", keys=keys).stdout)
    path = out["path"]
    if not os.path.isabs(path) or not os.path.isdir(path):
        raise Fail("tally backup gave %r, not an absolute directory" % path)
    names = [n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n))]
    size = sum(os.path.getsize(os.path.join(path, n)) for n in names)
    if out["files"] != len(names) or out["bytes"] != size or out["ms"] < 0:
        raise Fail("tally backup said %s; the directory holds %d files, %d bytes" %
                   (out, len(names), size))
    return path


def case_backup_command(tmp):
    conf = "[backup]\nkeep = 10\n"
    live = Daemon(tmp, "cmd", os.path.join(tmp, "cmd-state"), conf)
    daemons = [live]
    try:
        live.push("t1", 5)
        live.push("t2", 7, "2025-05-01T10:00:00+08:00")
        path = backup_json(live)
        live.push("t1", 100)
        line = live.tally("backup").stdout
        if not re.match(r"backup written: /\S+ \(\d+ files, [\d.]+ [kMG]?B, \d+ ms\)\n$", line):
            raise Fail("tally backup printed %r" % line)
        # Several at once: each answered with a backup begun after it asked.
        procs = [subprocess.Popen([TALLY, "-s", live.req, "backup", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        outs = [p.communicate(timeout=120) for p in procs]
        if any(p.returncode != 0 for p in procs):
            raise Fail("concurrent tally backup: %s" % [(p.returncode, e) for p, (_, e)
                                                        in zip(procs, outs)])
        for o, _ in outs:
            if not os.path.isdir(json.loads(o)["path"]):
                raise Fail("concurrent tally backup gave %s" % o)
        n = live.stats().get("tallyd_backups_total")
        if not 3 <= n <= 6:
            raise Fail("STATS after 2 + 4 requests (the 4 sharing at least one): %r" % n)
        if "(BACKUP_REQ)" not in live.text():
            raise Fail("the log does not say what asked for the backup:\n%s" % live.text())
        r = restore(tmp, path, "cmd-r", conf)
        daemons.append(r)
        if r.value("t1", "total") != 5 or r.value("t2", "total") != 7:
            raise Fail("restored from tally backup's %s: t1 %r, t2 %r, expected 5 and 7" %
                       (path, r.value("t1", "total"), r.value("t2", "total")))
        if r.value("t2", "2025", "--period", "2025") != 7:
            raise Fail("restored: t2's 2025 is %r, expected 7" %
                       r.value("t2", "2025", "--period", "2025"))
        r.stop()
        live.stop()
        gone = live.tally("backup", check=False)
        if gone.returncode != 3 or "cannot reach tallyd" not in gone.stderr:
            raise Fail("tally backup with tallyd stopped: %d %s" % (gone.returncode, gone.stderr))
    finally:
        kill_all(daemons)


def same_files(a, b):
    """Whether directories a and b hold the same files, byte for byte."""
    na, nb = sorted(os.listdir(a)), sorted(os.listdir(b))
    if na != nb:
        return False
    for n in na:
        with open(os.path.join(a, n), "rb") as fa, open(os.path.join(b, n), "rb") as fb:
            if fa.read() != fb.read():
                return False
    return True


def case_copy(tmp):
    conf = "[backup]\nkeep = 2\n"
    live = Daemon(tmp, "cp", os.path.join(tmp, "cp-state"), conf)
    daemons = [live]
    try:
        # Enough figures for a journal of several pieces (256 KiB each):
        # a file gives each metric once, so 1000 of them, pushed 6 times
        # (disputes.screened 1000 each time: 6000 a township).
        rows = os.path.join(tmp, "rows.csv")
        with open(rows, "w") as f:
            f.write("metric,value\ndisputes.screened,1000\n" +
                    "".join("bulk.m%04d,1\n" % i for i in range(999)))
        for town in ("t%d" % i for i in range(1, 9)):
            for _ in range(6):
                live.tally("push", "-q", "--town", town, "--file", rows)
        live.push("t9", 7, "2025-05-01T10:00:00+08:00")
        into = os.path.join(tmp, "offsite")
        out = json.loads(live.tally("backup", "--json", "--copy-to", into).stdout)
        path, copy = out["path"], out["copy"]
        name = os.path.basename(path)
        if copy["dir"] != os.path.join(into, name) or not same_files(path, copy["dir"]):
            raise Fail("tally backup --copy-to gave %s; %s and %s differ" %
                       (out, path, copy["dir"]))
        if copy["files"] != out["files"] or copy["bytes"] != out["bytes"] or \
                out["bytes"] < 2 * 262144 or copy["checked"] is not True:
            raise Fail("the copy's counts %s against the backup's %s" % (copy, out))
        # BLAKE2SUMS lists every other file, and coreutils' b2sum agrees.
        listed = sorted(line.split("  ", 1)[1].rstrip("\n") for line in
                        open(os.path.join(copy["dir"], "BLAKE2SUMS")))
        if listed != sorted(n for n in os.listdir(copy["dir"]) if n != "BLAKE2SUMS"):
            raise Fail("BLAKE2SUMS of %s lists %s" % (copy["dir"], listed))
        b2 = subprocess.run(["b2sum", "--strict", "-c", "BLAKE2SUMS"], cwd=copy["dir"],
                            capture_output=True, text=True)
        if b2.returncode != 0:
            raise Fail("b2sum -c in %s: %s%s" % (copy["dir"], b2.stdout, b2.stderr))
        if sorted(os.listdir(into)) != [name]:
            raise Fail("left in %s: %s" % (into, sorted(os.listdir(into))))
        if "being copied (BACKUP_FETCH)" not in live.text():
            raise Fail("the log does not say the backup was copied:\n%s" % live.text()[-3000:])
        live.push("t1", 100)
        # The same backup again, by name, into another directory: text output.
        other = os.path.join(tmp, "offsite2")
        line = live.tally("backup", "--name", name, "--copy-to", other).stdout
        form = (r"copied to %s \(\d+ files, [\d.]+ [kMG]?B, in (\d+ ms|[\d.]+ s); every file "
                r"matches its BLAKE2SUMS\)\n$")
        if not re.match(form % re.escape(os.path.join(other, name)), line):
            raise Fail("tally backup --name --copy-to printed %r" % line)
        if not same_files(path, os.path.join(other, name)):
            raise Fail("the second copy of %s differs" % name)
        # Refusals leave nothing behind.
        r = live.tally("backup", "--name", name, "--copy-to", into, check=False)
        if r.returncode != 1 or os.path.join(into, name) not in r.stderr:
            raise Fail("a copy onto an existing one: %d %s" % (r.returncode, r.stderr))
        r = live.tally("backup", "--name", "backup-20000101T000000Z", "--copy-to", into,
                       check=False)
        if r.returncode != 1 or "keep" not in r.stderr or sorted(os.listdir(into)) != [name]:
            raise Fail("a backup tallyd does not keep: %d %s; left %s" %
                       (r.returncode, r.stderr, sorted(os.listdir(into))))
        r = live.tally("backup", "--name", "../../etc", "--copy-to", into, check=False)
        if r.returncode != 2:
            raise Fail("--name ../../etc: %d %s" % (r.returncode, r.stderr))
        # keep = 2: two more backups push the first out; --list shows the
        # two kept, oldest first, each with BLAKE2SUMS, and their sizes.
        live.tally("backup")
        live.tally("backup")
        listed = json.loads(live.tally("backup", "--list", "--json").stdout)
        where = os.path.dirname(path)
        kept = sorted(n for n in os.listdir(where) if n.startswith("backup-"))
        if listed["dir"] != where or listed["total"] != 2 or \
                [b["name"] for b in listed["backups"]] != kept or \
                not all(b["checked"] for b in listed["backups"]) or \
                [b["bytes"] for b in listed["backups"]] != [
                    sum(os.path.getsize(os.path.join(where, k, f))
                        for f in os.listdir(os.path.join(where, k))) for k in kept]:
            raise Fail("tally backup --list --json: %s; kept %s" % (listed, kept))
        text = live.tally("backup", "--list").stdout
        if not text.startswith("tallyd keeps 2 backups in %s:\n" % where) or \
                text.count("BLAKE2SUMS") != 2:
            raise Fail("tally backup --list printed %r" % text)
        r = live.tally("backup", "--name", name, "--copy-to", os.path.join(tmp, "late"),
                       check=False)
        if r.returncode != 1 or "keep" not in r.stderr:
            raise Fail("a backup removed by keep: %d %s" % (r.returncode, r.stderr))
        # --keep 1: a new copy beside the second one, which goes.
        line = live.tally("backup", "--copy-to", other, "--keep", "1").stdout
        newest = re.findall(r"copied to %s/(backup-\S+) " % re.escape(other), line)
        if not line.endswith("removed 1 older copy from %s: %s\n" % (other, name)) or \
                sorted(os.listdir(other)) != newest:
            raise Fail("--keep 1 printed %r and left %s" % (line, sorted(os.listdir(other))))
        st = live.stats()
        if st.get("tallyd_backup_fetches_total", 0) < 2 * (out["bytes"] // 262144):
            raise Fail("STATS after two copies: %s" % {k: v for k, v in st.items()
                                                       if "backup" in k})
        # The copy starts a tallyd with what the backup held.
        r = restore(tmp, copy["dir"], "cp-r", conf)
        daemons.append(r)
        if r.value("t1", "total") != 6000 or r.value("t9", "2025", "--period", "2025") != 7:
            raise Fail("restored from the copy: t1 %r (expected 6000), t9's 2025 %r "
                       "(expected 7)" % (r.value("t1", "total"),
                                         r.value("t9", "2025", "--period", "2025")))
        r.stop()
        # A copy kept for months: checked without tallyd; a byte of its
        # history.db changed is found by --verify and refused by --restore.
        v = live.tally("backup", "--verify", into)
        if v.stdout != "%s: ok, BLAKE2SUMS and the %d files it lists (%s), each matching\n" % (
                copy["dir"], copy["files"] - 1, v.stdout.split("(")[1].split(")")[0]):
            raise Fail("tally backup --verify %s printed %r" % (into, v.stdout))
        with open(os.path.join(copy["dir"], "history.db"), "r+b") as f:
            f.seek(4096 + 100)
            b = f.read(1)
            f.seek(4096 + 100)
            f.write(bytes([b[0] ^ 0x01]))
        v = live.tally("backup", "--verify", into, check=False)
        if v.returncode != 1 or "DAMAGED: %s/history.db differs" % copy["dir"] not in v.stdout:
            raise Fail("--verify of a changed copy: %d %r" % (v.returncode, v.stdout))
        st2 = os.path.join(tmp, "cp-bad")
        bad = run_tallyd("-s", st2, "--restore", copy["dir"])
        if bad.returncode != 1 or "history.db differs from its digest" not in bad.stderr or \
                os.path.exists(os.path.join(st2, "history.db")):
            raise Fail("--restore of a changed copy: %d %s" % (bad.returncode, bad.stderr))
        live.stop()
        gone = live.tally("backup", "--name", name, "--copy-to", os.path.join(tmp, "g"),
                          check=False)
        if gone.returncode != 3:
            raise Fail("tally backup --copy-to with tallyd stopped: %d %s" %
                       (gone.returncode, gone.stderr))
    finally:
        kill_all(daemons)


def keygen(tmp, out, name):
    os.makedirs(os.path.join(tmp, out), exist_ok=True)
    subprocess.run([TALLY, "keygen", "--out", os.path.join(tmp, out), name + ".key"],
                   check=True, capture_output=True)


def case_backup_secured(tmp):
    keygen(tmp, "keys", "server")
    keygen(tmp, "towns", "t1")
    keygen(tmp, "subs", "screen")
    keygen(tmp, "admins", "ops")
    for d in ("towns", "subs", "admins"):  # the secrets stay with their owners
        for n in os.listdir(os.path.join(tmp, d)):
            if n.endswith("_secret"):
                os.rename(os.path.join(tmp, d, n), os.path.join(tmp, "keys", n))
    conf = ("[security]\nserver_secret_key = %s/keys/server.key_secret\n"
            "township_keys = %s/towns\nsubscriber_keys = %s/subs\nadmin_keys = %s/admins\n"
            % (tmp, tmp, tmp, tmp))
    live = Daemon(tmp, "sec", os.path.join(tmp, "sec-state"), conf)

    def as_(name):
        return ["--server-key", "%s/keys/server.key" % tmp,
                "--cert", "%s/keys/%s.key_secret" % (tmp, name)]
    try:
        if "1 admin keys" not in live.text():
            raise Fail("the start does not count the admin key:\n%s" % live.text())
        live.tally("push", "-q", "--town", "t1", "disputes.screened=3", keys=as_("t1"))
        for who in ("t1", "screen"):
            r = live.tally("backup", check=False, keys=as_(who))
            if r.returncode != 1 or "admin_keys" not in r.stderr:
                raise Fail("tally backup with %s's key: %d %s" % (who, r.returncode, r.stderr))
        path = backup_json(live, keys=as_("ops"))
        if "backup asked for by admin 'ops'" not in live.text():
            raise Fail("the log does not say which admin asked:\n%s" % live.text())
        name = os.path.basename(path)
        for who in ("t1", "screen"):
            r = live.tally("backup", "--name", name, "--copy-to", os.path.join(tmp, who),
                           check=False, keys=as_(who))
            if r.returncode != 1 or "admin_keys" not in r.stderr:
                raise Fail("tally backup --copy-to with %s's key: %d %s" %
                           (who, r.returncode, r.stderr))
        for who in ("t1", "screen"):
            r = live.tally("backup", "--list", check=False, keys=as_(who))
            if r.returncode != 1 or "admin_keys" not in r.stderr:
                raise Fail("tally backup --list with %s's key: %d %s" %
                           (who, r.returncode, r.stderr))
        listed = json.loads(live.tally("backup", "--list", "--json", keys=as_("ops")).stdout)
        if [b["name"] for b in listed["backups"]] != [name]:
            raise Fail("tally backup --list with the admin key: %s" % listed)
        live.tally("backup", "--name", name, "--copy-to", os.path.join(tmp, "ops"),
                   keys=as_("ops"))
        if not same_files(path, os.path.join(tmp, "ops", name)):
            raise Fail("the admin's copy of %s differs" % path)
        r = live.tally("get", "--all", check=False, keys=as_("ops"))
        if r.returncode != 1 or "ask for backups but not read" not in r.stderr:
            raise Fail("tally get with the admin key: %d %s" % (r.returncode, r.stderr))
        os.unlink(os.path.join(tmp, "admins", "ops.key"))
        live.p.send_signal(signal.SIGHUP)
        live.wait_log("1 admin key(s) revoked", 30)
        r = live.tally("backup", check=False, keys=as_("ops"))
        if r.returncode == 0:
            raise Fail("a revoked admin key still got a backup: %s" % r.stdout)
        if len(re.findall(r"backup written to ", live.text())) != 1:
            raise Fail("backups written: %s" % re.findall(r"backup written to \S+", live.text()))
        if not os.path.isdir(path):
            raise Fail("%s is gone" % path)
        live.stop()
    finally:
        kill_all([live])


def case_interval(tmp):
    # On another file system where there is one (/dev/shm), so that the
    # files are copied rather than linked.
    other = "/dev/shm" if os.path.isdir("/dev/shm") and \
        os.stat("/dev/shm").st_dev != os.stat(tmp).st_dev else tmp
    where = tempfile.mkdtemp(prefix="tally-backup.", dir=other)
    conf = "[backup]\ninterval = 1s\nkeep = 3\ndir = %s\n" % where
    live = Daemon(tmp, "every", os.path.join(tmp, "every-state"), conf)
    daemons = [live]
    try:
        live.push("t1", 5)
        if live.stats().get("tallyd_backup_interval_seconds") != 1:
            raise Fail("STATS with interval = 1s: %s" % {k: v for k, v in live.stats().items()
                                                         if "backup" in k})
        live.wait_log("(every [backup] interval)", 30, 4)
        left = sorted(n for n in os.listdir(where) if n.startswith("backup-"))
        if len(left) != 3:
            raise Fail("interval and keep = 3: %s" % left)
        if other != tmp and "0 files linked" not in live.text():
            raise Fail("backups on another file system were not copied:\n%s" % live.text())
        r = restore(tmp, os.path.join(where, left[-1]), "every-r", "")
        daemons.append(r)
        if r.value("t1", "total") != 5:
            raise Fail("restored from %s: t1 total %r, expected 5" % (left[-1],
                                                                     r.value("t1", "total")))
        r.stop()
        live.stop()
    finally:
        kill_all(daemons)
        shutil.rmtree(where, ignore_errors=True)


def case_reload(tmp):
    # [backup] applies at a reload: an interval set by SIGHUP starts taking
    # backups without a restart.
    live = Daemon(tmp, "rl", os.path.join(tmp, "rl-state"), "")
    try:
        live.push("t1", 2)
        if live.stats().get("tallyd_backup_interval_seconds") != 0:
            raise Fail("STATS without [backup] interval: %s" % live.stats())
        with open(os.path.join(tmp, "rl.conf"), "w") as f:
            f.write("[backup]\ninterval = 1s\nkeep = 2\n")
        live.p.send_signal(signal.SIGHUP)
        live.wait_log("(every [backup] interval)", 30, 3)
        if live.stats().get("tallyd_backup_interval_seconds") != 1:
            raise Fail("STATS after the reload set interval = 1s: %s" % live.stats())
        left = os.listdir(os.path.join(tmp, "rl-state", "backups"))
        if len(left) != 2:
            raise Fail("keep = 2 set by a reload: %s" % sorted(left))
        live.stop()
    finally:
        kill_all([live])


def backup_time(name):
    """The Unix time in a backup's name, backup-YYYYMMDDTHHMMSSZ[-N]."""
    return calendar.timegm(time.strptime(name[7:22], "%Y%m%dT%H%M%S"))


def backups_in(root):
    """The backups in root, oldest first (by the time, then the -N)."""
    names = [n for n in os.listdir(root) if re.fullmatch(r"backup-\d{8}T\d{6}Z(-\d+)?", n)] \
        if os.path.isdir(root) else []
    return sorted(names, key=lambda n: (n[:23], int(n[24:] or 0)))


def case_restarts(tmp):
    # [backup] interval carries over restarts: a tallyd restarted more
    # often than its interval still writes backups, an interval apart.
    # The first of a state with none comes soon after the start (2 s), not
    # a full interval after it; each start reports the newest backup in
    # STATS; one already due at a start comes soon after it.
    # Under valgrind (valgrind.sh sets TALLY_TALLYD) tallyd is 10-50 times
    # slower: longer lives, and an interval longer than each still.
    interval, life = (30, 20) if os.environ.get("TALLY_TALLYD") else (6, 4)
    state = os.path.join(tmp, "rs-state")
    root = os.path.join(state, "backups")
    conf = "[backup]\ninterval = %ds\nkeep = 10\n" % interval
    daemons = []
    try:
        for n in range(3):
            before = backups_in(root)
            d = Daemon(tmp, "rs%d" % n, state, conf)
            daemons.append(d)
            born = time.time()
            last = d.stats().get("tallyd_backup_last_success_timestamp_seconds")
            want = backup_time(before[-1]) if before else 0
            if last != want:
                raise Fail("start %d with backups %s: tallyd_backup_last_success_timestamp_seconds"
                           " is %r, expected %d (the newest's time)" % (n + 1, before, last, want))
            if n == 0:
                d.wait_log("(every [backup] interval)", life - 1)
            time.sleep(max(0, born + life - time.time()))
            d.stop()
        written = backups_in(root)
        if len(written) < 2:
            raise Fail("%d starts of %d s each with [backup] interval = %ds wrote %s" %
                       (n + 1, life, interval, written))
        times = [backup_time(b) for b in written]
        if any(b - a < interval - 1 for a, b in zip(times, times[1:])):
            raise Fail("backups closer together than [backup] interval = %ds: %s" %
                       (interval, written))
        # The metric after the last restart names the newest.
        d = Daemon(tmp, "rs-last", state, conf)
        daemons.append(d)
        last = d.stats().get("tallyd_backup_last_success_timestamp_seconds")
        if last != times[-1]:
            raise Fail("after a restart: tallyd_backup_last_success_timestamp_seconds is %r, "
                       "expected %d (%s)" % (last, times[-1], written[-1]))
        d.stop()
    finally:
        kill_all(daemons)


def main():
    failed = 0
    for case in (case_keeps_what_was_acknowledged, case_under_load, case_checkpoint_under_way,
                 case_restore_command, case_check_backup, case_failure, case_interval, case_reload,
                 case_restarts, case_backup_command, case_backup_secured, case_copy):
        tmp = tempfile.mkdtemp(prefix="tally-backup.")
        # Each case's pushes keep their client id and what they pushed
        # with --time in its own directory, not in the user's: the cases
        # push the same figures to daemons of their own.
        os.environ["XDG_STATE_HOME"] = tmp
        try:
            case(tmp)
            print("ok: %s" % case.__name__)
            shutil.rmtree(tmp, ignore_errors=True)
        except Fail as e:
            failed += 1
            print("FAIL: %s: %s (files kept in %s)" % (case.__name__, e, tmp), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
