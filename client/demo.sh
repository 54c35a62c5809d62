#!/usr/bin/env bash
# The quick-start demo: start tallyd on its built-in defaults, push 高观镇's
# 2023 figures (stamped 2023-12-31, so they count in the total column), let
# the other 24 townships of 城口县 report live figures and, in the
# background, last year's (simulated, a push a month: the wall's past year
# and its 同比 have something to show), serve the wall display with
# tally-web, and watch the county's tallies move.  Ctrl-C stops everything.
#
#   bash client/demo.sh [BUILD_DIR]      (default build/)
#   DEMO_SECONDS=N   stop after N seconds (default: until Ctrl-C on a
#                    terminal, 15 s otherwise)
#   DEMO_WEB=HOST:PORT   where tally-web listens (default 127.0.0.1:7480;
#                    another free port when that one is taken)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
tallyd=$build/daemon/tallyd
tally=$build/client/cli/tally
web=$build/web/tally-web
data=client/demo
for b in "$tallyd" "$tally"; do
    [ -x "$b" ] || { echo "demo: $b not found; build first (bash .ci/setup build)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/tally-demo.XXXXXX)
export TALLY_SERVER=ipc://$work/req
# The demo's pushes keep their client id and what they pushed in the
# demo's directory: a second demo pushes 高观镇's report to a new tallyd,
# which a push remembering the first would refuse as counted already.
export XDG_STATE_HOME=$work/client-state
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

echo "== starting tallyd (built-in defaults; state in $work/state, log in $work/tallyd.log)"
"$tallyd" -r "$TALLY_SERVER" -p "ipc://$work/pub" -s "$work/state" 2>"$work/tallyd.log" &
pids+=($!)
for _ in $(seq 50); do
    "$tally" stats >/dev/null 2>&1 && break
    sleep 0.1
done

echo "== pushing 高观镇 (gaoguan) 2023 figures from $data/gaoguan-2023.csv, stamped 2023-12-31"
# A past year's report: stamped at its date, it counts in 'total' and in
# 2023's closed periods, not in the windows and today's columns, which the
# simulated townships below fill.
"$tally" push --town gaoguan --time 2023-12-31 --file "$data/gaoguan-2023.csv"
echo "== its 2023 report read back from tallyd's history (tally report --period 2023)"
"$tally" report --period 2023 --town gaoguan --format md

if [ -x "$web" ]; then
    listen=${DEMO_WEB:-127.0.0.1:7480}
    "$web" --server "$TALLY_SERVER" --listen "$listen" 2>"$work/web.log" &
    wpid=$!
    url=""
    for _ in $(seq 50); do
        url=$(sed -n 's/.*ready: serving \(http[^ ]*\) .*/\1/p' "$work/web.log")
        [ -n "$url" ] && break
        kill -0 "$wpid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$url" ] && [ -z "${DEMO_WEB:-}" ]; then
        # 7480 is taken (another tally-web?): any free port will do
        "$web" --server "$TALLY_SERVER" --listen 127.0.0.1:0 2>"$work/web.log" &
        wpid=$!
        for _ in $(seq 50); do
            url=$(sed -n 's/.*ready: serving \(http[^ ]*\) .*/\1/p' "$work/web.log")
            [ -n "$url" ] && break
            sleep 0.1
        done
    fi
    pids+=($wpid)
    if [ -n "$url" ]; then
        echo "== the wall display (tally-web): open $url in a browser (log in $work/web.log)"
    else
        echo "== tally-web did not start: $(tail -n 1 "$work/web.log")" >&2
    fi
else
    echo "== no $web: the wall display is not built (bash .ci/setup build)"
fi

last=$(($(date +%Y) - 1))
echo "== simulating the other 24 townships: live figures, and in the background $last's (a push"
echo "   a month each, for the wall's ${last}年 column and the 同比 of 本月, 本季度 and 本年)"
mapfile -t towns < <(tail -n +2 "$data/chengkou-townships.csv" | cut -d, -f1 | grep -vx gaoguan)
# The simulations push in the background and wait for it, so that their
# trap stops the push in flight with them (left alone it would wait for
# the stopped tallyd until its timeout).
simulating='kill $! 2>/dev/null; exit 0'
(
    trap "$simulating" TERM
    # About what 高观镇 reported a month in 2023 (219 disputes a year),
    # stamped on the 3rd, so that the first days of a month compare too.
    for m in 01 02 03 04 05 06 07 08 09 10 11 12; do
        for t in "${towns[@]}"; do
            screened=$((10 + RANDOM % 16))
            "$tally" push -q --town "$t" --time "$last-$m-03T10:00:00" \
                disputes.screened=$screened disputes.resolved=$((screened - RANDOM % 3)) \
                talks.people_received=$((RANDOM % 5)) patrols=$((2 + RANDOM % 5)) \
                >/dev/null 2>&1 &
            wait $! || true
        done
    done
) &
pids+=($!)
(
    trap "$simulating" TERM
    while :; do
        t=${towns[RANDOM % ${#towns[@]}]}
        screened=$((1 + RANDOM % 5))
        resolved=$((screened - (RANDOM % 4 == 0 ? 1 : 0)))
        "$tally" push --town "$t" disputes.screened=$screened disputes.resolved=$resolved \
            talks.people_received=$((RANDOM % 3)) patrols=$((RANDOM % 2)) >/dev/null 2>&1 &
        wait $! || true
        sleep 0.3
    done
) &
pids+=($!)

secs=${DEMO_SECONDS:-}
[ -n "$secs" ] || { [ -t 1 ] && secs=0 || secs=15; }
echo "== watching the county (tally watch); Ctrl-C to stop"
# In the background, waited for: a SIGTERM to this script stops the demo
# at once (bash runs a trap only once its foreground command is done).
if [ "$secs" -gt 0 ]; then
    "$tally" watch --duration "$secs" &
else
    "$tally" watch &
fi
wpid=$!
pids+=($wpid)
wait "$wpid" || true
if [ "$secs" -gt 0 ]; then
    echo "== final county tallies"
    "$tally" get
fi
