#!/usr/bin/python3
"""web_screens.py: many wall screens asking tally-web the same history
questions at once, and what that costs tallyd.

Usage: web_screens.py [--web URL] [--server ADDR] [--tally PATH]
                      [--screens N] [--rounds R] [--period P]

Each of N threads (a screen) waits for the others, then asks tally-web
the two questions the wall asks for its 同比 (the county's series and
the townships', for the days P, a span of last year by default), one
after the other.  Per round it prints the time until every screen has
both answers, how many were 200, and how much tallyd's PERIOD requests
and TOO_LARGE refusals grew meanwhile (from `tally stats --json` against
--server).  Run it against a tally-web and the tallyd it follows, on a
county of more series than one answer of tallyd holds (bench/README.md,
"The wall's history questions").
"""
import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--web", default="http://127.0.0.1:7480")
    ap.add_argument("--server", default="tcp://127.0.0.1:7411")
    ap.add_argument("--tally", default="build/client/cli/tally")
    ap.add_argument("--screens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--period", default="2025-01-01..2025-12-07")
    a = ap.parse_args()

    def tallyd():
        r = subprocess.run([a.tally, "-s", a.server, "stats", "--json"], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            sys.exit("web_screens.py: tally stats: " + r.stderr.strip())
        d = json.loads(r.stdout)
        return d["tallyd_period_requests_total"], d["tallyd_rejected_too_large_total"]

    questions = ["%s/api/v1/period?prefix=%s&period=%s" % (a.web, p, a.period)
                 for p in ("u/county/", "u/town/")]
    for rnd in range(a.rounds):
        gate = threading.Barrier(a.screens)
        codes = []

        def screen():
            gate.wait()
            for q in questions:
                try:
                    with urllib.request.urlopen(q, timeout=60) as resp:
                        resp.read()
                        codes.append(resp.status)
                except OSError as e:
                    codes.append(getattr(e, "code", 0))

        (asked0, refused0), t0 = tallyd(), time.monotonic()
        threads = [threading.Thread(target=screen) for _ in range(a.screens)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        asked1, refused1 = tallyd()
        print("round %d: %d screens, %.2f s, %d of %d answers 200, tallyd period requests %d, "
              "refused whole %d" % (rnd, a.screens, took, codes.count(200), len(codes),
                                    asked1 - asked0, refused1 - refused0))


if __name__ == "__main__":
    main()
