#!/usr/bin/python3
"""The Prometheus alerting rules (systemd/tally.rules.yml), alert by alert.

Usage: test_alert_rules.py SOURCE_DIR

`promtool check rules` on the file, then `promtool test rules` on cases
written here: for each alert, series of the metrics it reads (named as
tally-web's /metrics names them; test_web checks that every name the rules
use is one /metrics serves) that make it fire, and the moments before it
may (its `for:`) or once the trouble is over, when it must not; the
labels and annotations expected are the rule's own with the series'.
Exit 0 when all hold, 77 (skipped) without promtool.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

SRC = os.path.abspath(sys.argv[1])
RULES = os.path.join(SRC, "systemd", "tally.rules.yml")
W = {"job": "tally-web", "instance": "wall:7480"}

# tallyd_uptime_seconds of a tallyd restarted every 20 h, for 5 days, a
# sample every 10 minutes.
RESTARTS_20H = " ".join(["0+600x119"] * 6)

# alert -> (input series [(selector, values)], [(eval time, extra labels or
# None when the alert must not fire)]), or a list of such cases, each
# tested apart.  One sample a minute, and the rules evaluated as often;
# a case spanning days may end with its own interval for both ("10m"), so
# that promtool does not evaluate every rule each minute of them.
CASES = {
    "TallyWebDown": ([("up", "1 1 0 0 0 0 1")],
                     [("2m", None), ("3m", None), ("4m", {}), ("6m", None)]),
    "TallydNotRunning": ([('tally_web_tallyd_link{state="refused"}', "0 0 1 1 1 0")],
                         [("2m", None), ("3m", {"state": "refused"}), ("5m", None)]),
    "TallydUnreachable": ([('tally_web_tallyd_link{state="unreachable"}', "0 1 1 1 1")],
                          [("2m", None), ("3m", {"state": "unreachable"})]),
    "TallydKeysRefused": ([('tally_web_tallyd_link{state="handshake_failed"}', "1 1 1")],
                          [("0m", None), ("1m", {"state": "handshake_failed"})]),
    # Not synchronised while connected: an alert; while tallyd is down, the
    # link's own alerts say it, not this one.
    "TallyWebNotSynchronised": [
        ([("tally_web_synced", "1 0 0 0 0 0 0 0 0 0 0 0 0 0"),
          ('tally_web_tallyd_link{state="up"}', "1 1 1 1 1 1 1 1 0 0 0 0 0 0")],
         [("5m", None), ("6m", {}), ("8m", None), ("13m", None)]),
        # Two walls, each its own link: the second, out of sync because
        # its link is refused, is not this alert's (its link's alert says
        # it) although the first's link is up; the first, out of sync with
        # its link up, is.
        ([("tally_web_synced", "1x14"),
          ('tally_web_tallyd_link{state="up"}', "1x14"),
          ('tally_web_synced{instance="wall2:7480"}', "0x14"),
          ('tally_web_tallyd_link{state="up",instance="wall2:7480"}', "0x14"),
          ('tally_web_tallyd_link{state="refused",instance="wall2:7480"}', "1x14")],
         [("6m", None), ("10m", None)]),
        ([("tally_web_synced", "0x14"),
          ('tally_web_tallyd_link{state="up"}', "1x14"),
          ('tally_web_synced{instance="wall2:7480"}', "1x14"),
          ('tally_web_tallyd_link{state="up",instance="wall2:7480"}', "0x14"),
          ('tally_web_tallyd_link{state="refused",instance="wall2:7480"}', "1x14")],
         [("4m", None), ("6m", {})]),
    ],
    "TallydJournalRefusing": ([("tallyd_rejected_unavailable_total", "0+0x5 0+100x12")],
                              [("6m", None), ("12m", {}), ("16m", {})]),
    "TallydBusy": ([("tallyd_rejected_busy_total", "0+10x20")],
                   [("5m", None), ("16m", {})]),
    # For 45 minutes only refusals that clients resend (BUSY, RATE_LIMITED,
    # UNAVAILABLE, 2 a minute each): none; then one a minute for good as
    # well: an alert half an hour later.
    # Refusals clients resend (BUSY, RATE_LIMITED, UNAVAILABLE) are not in
    # tallyd_submissions_refused_for_good_total: tallyd counts it apart.
    "TallydRejectingFigures": ([("tallyd_submissions_refused_for_good_total", "0x45 1+1x50")],
                               [("44m", None), ("70m", None), ("90m", {})]),
    # A township over its rate for 5 minutes, from minute 7 to 31: pending
    # from minute 7, an alert from 22 until the refusals stop.
    "TallydRateLimiting": ([("tallyd_rejected_rate_limited_total", "0x5 0+30x25 750x20")],
                           [("5m", None), ("21m", None), ("23m", {}), ("40m", None)]),
    # A reload refused at minute 2, one accepted at minute 9.
    "TallydConfigReloadFailed": ([("tallyd_config_last_reload_successful",
                                   "1 1 0 0 0 0 0 0 0 1 1")],
                                 [("6m", None), ("8m", {}), ("9m", None)]),
    # A file the next start refuses, read by a reload that was accepted:
    # an alert after 10 minutes; read by one that was refused: the reload's
    # own alert says it, not this one.
    "TallydNextStartRefused": [
        ([("tallyd_config_next_start_refused", "0 1x15"),
          ("tallyd_config_last_reload_successful", "1x16")],
         [("10m", None), ("12m", {})]),
        ([("tallyd_config_next_start_refused", "0 1x15"),
          ("tallyd_config_last_reload_successful", "1 0x15")],
         [("12m", None)]),
    ],
    "TallydHistoryNotStored": ([("tallyd_history_store_failures_total", "0 0 0 1 1 1")],
                               [("2m", None), ("3m", {})]),
    "TallydHistoryBehind": ([("tallyd_history_unstored_records",
                              "0 5 9 3 0 7 8 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9")],
                            [("10m", None), ("19m", None), ("20m", {})]),
    "TallydBackupFailed": ([("tallyd_backup_failures_total", "0 0 1 1")],
                           [("1m", None), ("2m", {})]),
    # time() counts from 0 at the test's start.  Backups only on request
    # (tallyd's default: interval 0): one at 1 s, or none, is no alert, at
    # any age.  A backup a day: one at 1 s is not late at 24 h, and is at
    # 26 h; none at all since a start at 0 s is late at 26 h too.
    "TallydBackupStale": [
        ([("tallyd_backup_last_success_timestamp_seconds", "1x3000"),
          ("tallyd_uptime_seconds", "0+60x3000"),
          ("tallyd_backup_interval_seconds", "0x3000")],
         [("24h", None), ("26h", None), ("49h", None)]),
        ([("tallyd_backup_last_success_timestamp_seconds", "0x3000"),
          ("tallyd_uptime_seconds", "0+60x3000"),
          ("tallyd_backup_interval_seconds", "0x3000")],
         [("26h", None), ("49h", None)]),
        ([("tallyd_backup_last_success_timestamp_seconds", "1x1600"),
          ("tallyd_uptime_seconds", "0+60x1600"),
          ("tallyd_backup_interval_seconds", "86400x1600")],
         [("24h", None), ("26h", {})]),
        ([("tallyd_backup_last_success_timestamp_seconds", "0x1600"),
          ("tallyd_uptime_seconds", "0+60x1600"),
          ("tallyd_backup_interval_seconds", "86400x1600")],
         [("24h", None), ("26h", {})]),
        # Days of it, sampled and evaluated every 10 minutes.  Restarted
        # every 20 h for 5 days, a backup a day, and none ever written
        # (each start reports 0): late at 26 h, however short each uptime.
        ([("tallyd_backup_last_success_timestamp_seconds", "0x720"),
          ("tallyd_uptime_seconds", RESTARTS_20H),
          ("tallyd_backup_interval_seconds", "86400x720")],
         [("24h", None), ("26h", {}), ("50h", {}), ("119h", {})], "10m"),
        # The same with one backup at 1 s that a tallyd older than the
        # schedule across restarts forgot (0) at its next start.
        ([("tallyd_backup_last_success_timestamp_seconds", "1x119 0x600"),
          ("tallyd_uptime_seconds", RESTARTS_20H),
          ("tallyd_backup_interval_seconds", "86400x720")],
         [("24h", None), ("26h", {}), ("119h", {})], "10m"),
        # Restarted every 20 h, each start reporting the newest backup:
        # one written a day (5 s after 0 h, 24 h, 48 h, ...) is no alert;
        # none after the one of 24 h is late from 50 h on.
        ([("tallyd_backup_last_success_timestamp_seconds",
           "5x143 86405x143 172805x143 259205x143 345605x144"),
          ("tallyd_uptime_seconds", RESTARTS_20H),
          ("tallyd_backup_interval_seconds", "86400x720")],
         [("25h30m", None), ("49h", None), ("73h30m", None), ("119h", None)], "10m"),
        ([("tallyd_backup_last_success_timestamp_seconds", "5x143 86405x576"),
          ("tallyd_uptime_seconds", RESTARTS_20H),
          ("tallyd_backup_interval_seconds", "86400x720")],
         [("49h", None), ("50h", {}), ("119h", {})], "10m"),
        # A backup a day set by a reload at 48 h on a tallyd up since 0 h
        # without backups: its first, 2 s later, comes before the alert;
        # with none, the alert is there 10 minutes later (tallyd has been
        # up longer than a day) and stays.
        ([("tallyd_backup_last_success_timestamp_seconds", "0x288 172802x200"),
          ("tallyd_uptime_seconds", "0+600x488"),
          ("tallyd_backup_interval_seconds", "0x287 86400x200")],
         [("48h", None), ("48h10m", None), ("48h30m", None), ("72h", None)], "10m"),
        ([("tallyd_backup_last_success_timestamp_seconds", "0x488"),
          ("tallyd_uptime_seconds", "0+600x488"),
          ("tallyd_backup_interval_seconds", "0x287 86400x200")],
         [("48h", None), ("48h10m", {}), ("74h", {})], "10m"),
    ],
    "TallydClockOff": ([("tally_web_tallyd_clock_offset_seconds",
                         "0 -200 -200 -200 -200 -200 -200 -200 -200 -200 -200 -200 1")],
                       [("10m", None), ("11m", {}), ("12m", None)]),
    # STATS unanswered while the link to tallyd is up: an alert; while
    # tallyd is not running (or out of reach, or refusing the keys), the
    # link's own alert says it, not this one.
    "TallyWebStatsStale": [
        ([("tally_web_stats_age_seconds", "3 90 90 90 90 90 90 4"),
          ('tally_web_tallyd_link{state="up"}', "1x7")],
         [("5m", None), ("6m", {}), ("7m", None)]),
        ([("tally_web_stats_age_seconds", "3 90 90 90 90 90 90 90 90"),
          ('tally_web_tallyd_link{state="refused"}', "0 1 1 1 1 1 1 1 1"),
          ('tally_web_tallyd_link{state="up"}', "1 0 0 0 0 0 0 0 0")],
         [("6m", None), ("8m", None)]),
    ],
}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def with_labels(selector, labels):
    """selector with labels added, but for those it has: 'm{a="b"}' or 'm'
    (a series of another tally-web names its own instance)."""
    extra = ",".join('%s="%s"' % kv for kv in sorted(labels.items())
                     if '%s="' % kv[0] not in selector)
    if "{" in selector:
        return selector[:-1] + "," + extra + "}"
    return selector + "{" + extra + "}"


def rule_test(name, rule, series, evals, every="1m"):
    """One of promtool's tests: the series, one sample each `every`, and at
    each moment the alert expected (the rule's labels and annotations with
    the series') or none."""
    checks = []
    for at, extra in evals:
        exp = []
        if extra is not None:
            labels = dict(W, **rule.get("labels", {}))
            labels.update(extra)
            exp.append({"exp_labels": labels, "exp_annotations": rule["annotations"]})
        checks.append({"eval_time": at, "alertname": name, "exp_alerts": exp})
    return {"interval": every,
            "input_series": [{"series": with_labels(s, W), "values": v} for s, v in series],
            "alert_rule_test": checks}


def main():
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not installed (Debian's prometheus package): skipped")
        return 77
    r = subprocess.run([promtool, "check", "rules", RULES], capture_output=True, text=True)
    if r.returncode != 0:
        fail("promtool check rules: %s%s" % (r.stdout, r.stderr))
    with open(RULES, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    rules = {ru["alert"]: ru for g in doc["groups"] for ru in g["rules"] if "alert" in ru}
    if sorted(rules) != sorted(CASES):
        fail("alerts without a case here, or cases of no alert: %s"
             % sorted(set(rules) ^ set(CASES)))
    tests = {}  # evaluation interval -> promtool's tests
    for name, cases in CASES.items():
        for case in cases if isinstance(cases, list) else [cases]:
            every = case[2] if len(case) > 2 else "1m"
            tests.setdefault(every, []).append(rule_test(name, rules[name], case[0], case[1],
                                                         every))
    # A failure leaves the cases in tmp, for promtool test rules by hand.
    tmp = tempfile.mkdtemp(prefix="tally-rules.")
    for every, group in sorted(tests.items()):
        path = os.path.join(tmp, "tally.rules.test.%s.json" % every)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"rule_files": [RULES], "evaluation_interval": every, "tests": group}, f,
                      ensure_ascii=False, indent=1)
        r = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True)
        if r.returncode != 0:
            fail("promtool test rules (cases in %s):\n%s%s" % (path, r.stdout, r.stderr))
    shutil.rmtree(tmp)
    tests = [t for group in tests.values() for t in group]
    print("ok: %d alerts, %d cases, %d checks"
          % (len(CASES), len(tests), sum(len(t["alert_rule_test"]) for t in tests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
