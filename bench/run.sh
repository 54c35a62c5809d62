#!/usr/bin/env bash
# run.sh - run tallyd's benchmark scenarios and print a Markdown table of
# medians, the raw libzmq baseline, journal recovery speed and memory per
# series.  Builds nothing: point --build at a build directory that has
# daemon/tallyd, web/tally-web and the programs of bench/.
#
#   bash bench/run.sh [--build DIR] [--duration SEC] [--reps N] [--smoke]
#                     [--transport tcp|ipc] [--only REGEX] [--skip-extras]
#                     [--results DIR] [--keep] [--against DIR] [--paired-baseline]
#
# Besides tallyd's scenarios it measures what WebSocket browsers on
# tally-web cost tallyd (web-*: 200 on the stream against none).
#
# --against DIR runs every scenario also with DIR/daemon/tallyd (another
# build, e.g. of an older commit), alternating with this one run by run,
# and adds the ratios of this build to it: samples/s and tallyd CPU per
# sample.  That is how a change's cost is measured on a noisy machine.
#
# --paired-baseline runs one raw libzmq baseline run right before every
# run of a flat-out scenario, and "vs zmq" becomes the median of each
# run's ratio to the baseline run beside it.  On a machine whose speed
# drifts within minutes that is the ratio to trust; without it "vs zmq"
# divides by the baselines measured after all scenarios.
#
# See bench/README.md for the scenarios and the meaning of every column.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=build
DURATION=10
WARMUP=1
REPS=3
SMOKE=0
TRANSPORT=tcp
ONLY=
EXTRAS=1
RESULTS=
KEEP=0
PAIRED=0
AGAINST=
CONNS=4
WINDOW=250
METRICS=20
RECOVERY_RECORDS=2000000
MEMORY_SERIES=200000
DENSE_TOWNS=1000
LARGE_TOWNS=40000
LARGE_METRICS=25
PROBE_S=12
HTOWNS=25
HMETRICS=25
HREADS=200

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --transport) TRANSPORT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --skip-extras) EXTRAS=0; shift ;;
    --results) RESULTS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --against) AGAINST=$2; shift 2 ;;
    --paired-baseline) PAIRED=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$TRANSPORT" in tcp | ipc) ;; *) echo "run.sh: --transport: '$TRANSPORT' is not tcp or ipc" >&2; exit 2 ;; esac

if [ "$SMOKE" = 1 ]; then
    # Only proves that everything runs end to end, in about 5 s.
    DURATION=0.5 WARMUP=0.25 REPS=1 RECOVERY_RECORDS=20000 MEMORY_SERIES=10000
    DENSE_TOWNS=50 LARGE_TOWNS=400 PROBE_S=4
    HTOWNS=5 HMETRICS=5 HREADS=5
fi

# A relative build directory is looked for here, then in the source tree.
if [ ! -d "$BUILD" ] && [ -d "$SRC/$BUILD" ]; then BUILD=$SRC/$BUILD; fi
ABS=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "run.sh: no build directory '$BUILD'" >&2; exit 2; }
BUILD=$ABS
TALLYD=$BUILD/daemon/tallyd
TALLYD_NOW=$TALLYD
if [ -n "$AGAINST" ]; then
    AGAINST=$(cd "$AGAINST" 2>/dev/null && pwd) || { echo "run.sh: --against: no directory" >&2; exit 2; }
    [ -x "$AGAINST/daemon/tallyd" ] || { echo "run.sh: --against: $AGAINST/daemon/tallyd is missing" >&2; exit 2; }
fi
BENCH=$BUILD/bench/tally-bench
BASELINE=$BUILD/bench/tally-zmq-baseline
HBENCH=$BUILD/bench/tally-bench-history
WEB=$BUILD/web/tally-web
WSBENCH=$BUILD/bench/tally-bench-ws
FSBENCH=$BUILD/bench/tally-bench-fsync
CLI=$BUILD/client/cli/tally
# The environment the systemd unit gives tallyd (glibc's tunables), for
# the large state's starts in it.
UNIT_TUNABLES=$(sed -n 's/^Environment=GLIBC_TUNABLES=//p' "$SRC/systemd/tallyd.service.in")
WSCLIENTS=200
for b in "$TALLYD" "$BENCH" "$BASELINE" "$HBENCH" "$WEB" "$WSBENCH" "$FSBENCH" "$CLI"; do
    [ -x "$b" ] || { echo "run.sh: $b is missing; build it first: cmake --build $BUILD" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "run.sh: python3 is needed for the table" >&2; exit 2; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tally-bench.XXXXXX")
[ -n "$RESULTS" ] || RESULTS=$TMP/results
mkdir -p "$RESULTS"
: >"$RESULTS/scenarios.jsonl"
: >"$RESULTS/baseline.jsonl"
: >"$RESULTS/recovery.jsonl"
: >"$RESULTS/memory.jsonl"
: >"$RESULTS/memory-dense.jsonl"
: >"$RESULTS/large.jsonl"
: >"$RESULTS/history.jsonl"
: >"$RESULTS/web.jsonl"
: >"$RESULTS/fsync.jsonl"
: >"$RESULTS/fsync-group.jsonl"
TPID=
WPID=
WSPID=
FAILED=0
NSTART=0

cleanup() {
    for p in $WSPID $WPID; do kill "$p" 2>/dev/null || true; done
    if [ -n "$TPID" ] && kill -0 "$TPID" 2>/dev/null; then
        kill -KILL "$TPID" 2>/dev/null || true
        wait "$TPID" 2>/dev/null || true
    fi
    if [ "$KEEP" = 1 ]; then echo "run.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf 'run.sh: %s\n' "$*" >&2; }

# endpoint NAME: where a socket of this run binds.
endpoint() {
    if [ "$TRANSPORT" = tcp ]; then echo 'tcp://127.0.0.1:*'; else echo "ipc://$TMP/$1"; fi
}

# write_config FILE STATE SYNC PUBLISH_MS [EXTRA_JOURNAL_LINES]
write_config() {
    cat >"$1" <<EOF
[tallyd]
state_dir = $2
publish_interval_ms = $4
log_level = info

[limits]
max_townships = 100000
max_series = 5000000
max_clients = 100000

[journal]
sync = $3
${5:-}
EOF
}

# start_tallyd CONF LOG: start it, wait for "ready", set TPID, REQ, PUB.
start_tallyd() {
    local conf=$1 logf=$2 line= i
    : >"$logf"
    # Endpoints on the command line: the configuration file refuses two
    # equal endpoints, and "tcp://127.0.0.1:*" twice is what we want (two
    # free ports, read back from the "ready" line).
    "$TALLYD_NOW" -c "$conf" -r "$(endpoint "req$NSTART")" -p "$(endpoint "pub$NSTART")" >>"$logf" 2>&1 &
    TPID=$!
    for i in $(seq 1 1200); do
        line=$(grep -m1 'ready: requests on' "$logf" || true)
        [ -n "$line" ] && break
        kill -0 "$TPID" 2>/dev/null || { log "tallyd exited during start-up:"; cat "$logf" >&2; TPID=; return 1; }
        sleep 0.05
    done
    [ -n "$line" ] || { log "tallyd not ready after 60 s"; cat "$logf" >&2; return 1; }
    REQ=$(sed -n 's/.*ready: requests on \([^,]*\), updates on \([^,]*\),.*/\1/p' <<<"$line")
    PUB=$(sed -n 's/.*ready: requests on \([^,]*\), updates on \([^,]*\),.*/\2/p' <<<"$line")
}

# start_in DIR LOG SYNC PUBLISH_MS [EXTRA_JOURNAL_LINES]: a configuration
# for a fresh state directory DIR/state, and tallyd started on it (as
# start_tallyd).
start_in() {
    NSTART=$((NSTART + 1))
    mkdir -p "$1"
    write_config "$1/tallyd.conf" "$1/state" "$3" "$4" "${5:-}"
    start_tallyd "$1/tallyd.conf" "$2"
}

# stop_tallyd [SIGNAL]: SIGTERM (clean) by default; waits up to 20 s.  Its
# stderr goes to /dev/null so that bash's "Killed" notice does too.
stop_tallyd() {
    local sig=${1:-TERM} i
    [ -n "$TPID" ] || return 0
    kill "-$sig" "$TPID" || true
    for i in $(seq 1 400); do
        kill -0 "$TPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$TPID" || true
    wait "$TPID" || true
    TPID=
} 2>/dev/null

# bench OUTFILE ARGS...: run tally-bench against the running tallyd; the
# JSON line goes to OUTFILE's .json twin, everything to OUTFILE.
bench() {
    local out=$1; shift
    if ! "$BENCH" -r "$REQ" -p "$PUB" --pid "$TPID" -n "$CONNS" -w "$WINDOW" -m "$METRICS" --json \
        "$@" >"$out" 2>&1; then
        log "tally-bench failed ($*):"; cat "$out" >&2
        FAILED=1
        return 1
    fi
    grep -v '^{' "$out" >&2 || true
    grep '^{' "$out" | tail -n 1
}

# zmq_baseline NAME FIELDS: one run of the raw libzmq baseline (same
# connections, window, duration and transport as the scenarios) on
# endpoint NAME; its JSON line, with FIELDS put first, goes to
# baseline.jsonl.
zmq_baseline() {
    local out
    if out=$("$BASELINE" -e "$(endpoint "$1")" -n "$CONNS" -w "$WINDOW" \
        -d "$DURATION" --warmup "$WARMUP" --json 2>&1); then
        grep -v '^{' <<<"$out" >&2 || true
        grep '^{' <<<"$out" | sed "s/^{/{$2/" >>"$RESULTS/baseline.jsonl"
    else
        log "tally-zmq-baseline failed: $out"; FAILED=1
    fi
}

# tallyd_stat NAME: the value of tallyd's counter NAME (empty when it cannot say).
tallyd_stat() {
    "$CLI" stats -s "$REQ" --timeout 5 2>/dev/null | awk -v n="$1" '$1 == n { print $2 }'
}

# thread_cpu PID NAME: CPU seconds the thread NAME of PID has used.
thread_cpu() {
    local t
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] || continue
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "$t/stat"
        return
    done
    echo null
}

# history_catch_up: wait (up to 10 minutes) until the history
# database holds every record applied; a JSON object with the wait after
# the fill in ms, the cells held and the writer thread's CPU seconds.
history_catch_up() {
    local t0 n wait_ms=null i
    t0=$(date +%s%N)
    for i in $(seq 1 1200); do
        n=$(tallyd_stat tallyd_history_unstored_records)
        if [ "$n" = 0 ]; then wait_ms=$((($(date +%s%N) - t0) / 1000000)); break; fi
        sleep 0.5
    done
    [ "$wait_ms" = null ] && log "large: the history database did not catch up"
    printf '{"wait_ms":%s,"cells":%s,"writer_cpu_s":%s}' "$wait_ms" \
        "$(n=$(tallyd_stat tallyd_history_cells); echo "${n:-null}")" "$(thread_cpu "$TPID" tallyd-history)"
}

# one_scope_us ARGS...: the median of 21 runs of `tally ARGS` against the
# running tallyd, in microseconds, each asking of a township picked at
# random among LARGE_TOWNS ({T} in ARGS); null when one fails.  The
# command's own start is in it: a STATS beside it says how much.
one_scope_us() {
    local i t0 t1 town times=()
    for i in $(seq 1 21); do
        town=$(printf 't%05u' $((RANDOM % LARGE_TOWNS)))
        t0=$(date +%s%N)
        "$CLI" "${@//\{T\}/$town}" -s "$REQ" --timeout 10 >/dev/null 2>&1 || { echo null; return; }
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n 11p
}

# time_starts NAME TUNABLES: REPS starts of tallyd on $dir's state with
# GLIBC_TUNABLES=TUNABLES (empty: glibc's defaults), each timed from
# launch to the ready line and killed; the times in ms, comma-separated,
# into STARTS_MS (logs DIR/NAME<rep>.log).
time_starts() {
    local rep t0 t1
    STARTS_MS=
    for rep in $(seq 1 "$REPS"); do
        NSTART=$((NSTART + 1))
        t0=$(date +%s%N)
        if GLIBC_TUNABLES=$2 start_tallyd "$dir/tallyd.conf" "$dir/$1$rep.log"; then
            t1=$(date +%s%N)
            stop_tallyd KILL
            STARTS_MS="$STARTS_MS${STARTS_MS:+,}$(((t1 - t0) / 1000000))"
            log "large: $series series, ready after $(((t1 - t0) / 1000000)) ms${2:+ with GLIBC_TUNABLES=$2}"
        else
            FAILED=1
        fi
    done
}

# fill_series OUTFILE TOWNS METRICS LABEL: one submission of every metric
# per township, so that every series exists (the JSON line on stdout).
fill_series() {
    bench "$1" -S "$3" -m "$3" -t "$2" --order seq --count "$2" --warmup 0 -d 3600 --drain 60 \
        --label "$4"
}

# ---- scenarios: name samples sync townships subscribers rate publish_ms [late_pct] ----
SCENARIOS=()
if [ "$SMOKE" = 1 ]; then
    SCENARIOS+=("s1-never-t25-sub1 1 never 25 1 0 100")
    SCENARIOS+=("lat50k-always 1 always 25 1 50000 0")
else
    for s in 1 20; do
        for sync in never always; do
            for t in 25 40000; do
                for subs in 1 100; do
                    SCENARIOS+=("s$s-$sync-t$t-sub$subs $s $sync $t $subs 0 100")
                done
            done
        done
    done
    SCENARIOS+=("lat50k-never 1 never 25 1 50000 0")
    SCENARIOS+=("lat50k-always 1 always 25 1 50000 0")
    # History (issue 15): 1% of the samples stamped in the previous month.
    SCENARIOS+=("s1-never-t25-sub1-late1 1 never 25 1 0 100 1")
    SCENARIOS+=("s20-never-t25-sub1-late1 20 never 25 1 0 100 1")
    # Scale (issue 18): 40,000 townships with every series there before
    # the measurement (the plain t40000 runs mostly create series).
    SCENARIOS+=("s1-never-t40000-sub1-full 1 never 40000 1 0 100 0 full")
    SCENARIOS+=("s20-never-t40000-sub1-full 20 never 40000 1 0 100 0 full")
fi

RUN=0
for sc in "${SCENARIOS[@]}"; do
    late=0 fill=
    read -r name samples sync towns subs rate pubms late fill <<<"$sc"
    if [ -n "$ONLY" ] && ! [[ $name =~ $ONLY ]]; then continue; fi
    [ "$sync" = always ] && ALWAYS_RAN=1
    for rep in $(seq 1 "$REPS"); do
      for variant in ${AGAINST:+against} this; do
        TALLYD_NOW=$TALLYD
        [ "$variant" = against ] && TALLYD_NOW=$AGAINST/daemon/tallyd
        RUN=$((RUN + 1))
        dir=$TMP/run$RUN
        if [ "$PAIRED" = 1 ] && [ "$rate" = 0 ] && [ "$variant" = this ]; then
            log "zmq baseline beside $name, run $rep of $REPS"
            zmq_baseline "pair$RUN" "\"scenario\":\"$name\",\"rep\":$rep,"
        fi
        start_in "$dir" "$dir/tallyd.log" "$sync" "$pubms" || { FAILED=1; continue; }
        log "$name, run $rep of $REPS${AGAINST:+, $variant} (tallyd pid $TPID)"
        # "full": one submission of every metric per township first, so
        # that every series exists (then the history writer stores them
        # while the measurement runs, as it would under a steady load).
        if [ "$fill" = full ] && ! fill_series "$dir/fill.out" "$towns" "$METRICS" fill >/dev/null; then
            stop_tallyd
            continue
        fi
        json=$(bench "$dir/bench.out" -S "$samples" -t "$towns" --subscribers "$subs" -R "$rate" \
            -d "$DURATION" --warmup "$WARMUP" --late-pct "${late:-0}" --label "$name") || json=
        stop_tallyd
        [ -n "$json" ] && printf '{"scenario":"%s","variant":"%s","rep":%d,"sync":"%s","publish_ms":%d,"run":%s}\n' \
            "$name" "$variant" "$rep" "$sync" "$pubms" "$json" >>"$RESULTS/scenarios.jsonl"
        [ "$KEEP" = 1 ] || rm -rf "$dir/state"
      done
    done
    TALLYD_NOW=$TALLYD
done

# ---- the disk: what one durable append costs, beside sync = always ----
# In the directory the state directories live in, once per rep, whenever
# a scenario with sync = always ran: lat50k-always's ack p99 is read
# against lat50k-never's plus this fdatasync p99.  Then again with both
# cores kept busy: on some virtual machines a sync on busy cores comes
# back much later (bench/README.md, "Durable-ack latency against the
# disk"), which the idle figure does not show.  Then group commit alone
# at lat50k's rate: one thread syncing whatever has arrived, nothing else
# of tallyd's, the least a durable ACK can wait on this disk at that rate.
if [ "${ALWAYS_RAN:-0}" = 1 ]; then
    for rep in $(seq 1 "$REPS"); do
        rc=0
        out=$("$FSBENCH" "$TMP" -r 50000 -d "$([ "$SMOKE" = 1 ] && echo 1 || echo 5)" --json 2>&1) || rc=$?
        if [ "$rc" = 0 ]; then
            grep -v '^{' <<<"$out" >&2 || true
            grep '^{' <<<"$out" | tail -n 1 >>"$RESULTS/fsync-group.jsonl"
        else
            log "tally-bench-fsync -r failed: $out"; FAILED=1
        fi
        for busy in 0 1; do
            spin=()
            if [ "$busy" = 1 ]; then
                for _ in 1 2; do (while :; do :; done) & spin+=($!); done
            fi
            rc=0
            out=$("$FSBENCH" "$TMP" -n "$([ "$SMOKE" = 1 ] && echo 200 || echo 2000)" --json 2>&1) || rc=$?
            if [ ${#spin[@]} -gt 0 ]; then kill "${spin[@]}"; wait "${spin[@]}" 2>/dev/null || true; fi
            if [ "$rc" = 0 ]; then
                grep -v '^{' <<<"$out" >&2 || true
                grep '^{' <<<"$out" | tail -n 1 | sed "s/^{/{\"busy\":$busy,/" >>"$RESULTS/fsync.jsonl"
            else
                log "tally-bench-fsync failed: $out"; FAILED=1
            fi
        done
    done
fi

# ---- tally-web with 200 browsers on its stream (issue 17) ----
# tallyd with tally-web following it, once with WSCLIENTS browsers on the
# stream (tally-bench-ws) and once with none, alternating; the same load
# from tally-bench: flat out, and at 50,000 submissions a second.
WEBSC=("web-s1-t25 0" "web-lat50k 50000")
[ "$SMOKE" = 1 ] && WEBSC=("web-s1-t25 0") WSCLIENTS=20
for sc in "${WEBSC[@]}"; do
    read -r wname wrate <<<"$sc"
    if [ -n "$ONLY" ] && ! [[ $wname =~ $ONLY ]]; then continue; fi
    for rep in $(seq 1 "$REPS"); do
      for nws in 0 "$WSCLIENTS"; do
        RUN=$((RUN + 1))
        dir=$TMP/run$RUN
        start_in "$dir" "$dir/tallyd.log" never 100 || { FAILED=1; continue; }
        "$WEB" --server "$REQ" --listen 127.0.0.1:0 --max-clients $((WSCLIENTS + 10)) \
            2>"$dir/web.log" &
        WPID=$!
        wport=
        for _ in $(seq 1 200); do
            wport=$(sed -n 's/.*ready: serving http:\/\/127\.0\.0\.1:\([0-9]*\)\/.*/\1/p' "$dir/web.log")
            [ -n "$wport" ] && break
            sleep 0.05
        done
        if [ -z "$wport" ]; then
            log "tally-web did not start:"; cat "$dir/web.log" >&2; FAILED=1
            kill "$WPID" 2>/dev/null || true; WPID=; stop_tallyd; continue
        fi
        wsjson=
        if [ "$nws" -gt 0 ]; then
            "$WSBENCH" --port "$wport" -n "$nws" -d "$(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN { print d + w + 0.5 }')" \
                --json >"$dir/ws.out" 2>&1 &
            WSPID=$!
            sleep 0.5
        fi
        log "$wname with $nws browsers on tally-web, run $rep of $REPS (tallyd pid $TPID)"
        json=$(bench "$dir/bench.out" -S 1 -t 25 --subscribers 1 -R "$wrate" \
            -d "$DURATION" --warmup "$WARMUP" --label "$wname-ws$nws") || json=
        if [ -n "$WSPID" ]; then
            wait "$WSPID" || { log "tally-bench-ws failed:"; cat "$dir/ws.out" >&2; FAILED=1; }
            WSPID=
            grep -v '^{' "$dir/ws.out" >&2 || true
            wsjson=$(grep '^{' "$dir/ws.out" | tail -n 1)
        fi
        # tally-web's CPU seconds (utime + stime, fields 14 and 15)
        webcpu=$(awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$WPID/stat" 2>/dev/null || echo null)
        kill "$WPID" 2>/dev/null || true
        wait "$WPID" 2>/dev/null || true
        WPID=
        stop_tallyd
        [ -n "$json" ] && printf '{"scenario":"%s","browsers":%d,"rep":%d,"web_cpu_s":%s,"run":%s,"ws":%s}\n' \
            "$wname" "$nws" "$rep" "${webcpu:-null}" "$json" "${wsjson:-null}" >>"$RESULTS/web.jsonl"
        [ "$KEEP" = 1 ] || rm -rf "$dir/state"
      done
    done
done

# [journal] lines that keep checkpoints out of a run (a journal to replay,
# or a state filled without one).
NO_CHECKPOINTS=$(printf 'snapshot_interval = 1d\nsnapshot_every_records = 1000000000000')

if [ "$EXTRAS" = 1 ]; then
    # ---- the raw libzmq baseline, same window, same transport ----
    for rep in $(seq 1 "$REPS"); do
        log "zmq baseline, run $rep of $REPS"
        zmq_baseline "baseline$rep" ""
    done

    # ---- recovery: journal records replayed per second at start-up ----
    # Filled with one-sample submissions under sync never, checkpoints
    # pushed out of reach so that the whole journal is replayed; tallyd is
    # killed (a crash, the case replay is for) rather than stopped, so no
    # shutdown work can shorten the replay.
    dir=$TMP/recovery
    if start_in "$dir" "$dir/fill.log" never 100 "$NO_CHECKPOINTS"; then
        log "recovery: filling the journal with $RECOVERY_RECORDS submissions"
        if bench "$dir/fill.out" -S 1 -t 25 --count "$RECOVERY_RECORDS" --warmup 0 -d 3600 \
            --drain 30 --label recovery-fill >/dev/null; then
            stop_tallyd KILL
            for rep in $(seq 1 "$REPS"); do
                t0=$(date +%s%N)
                if start_tallyd "$dir/tallyd.conf" "$dir/replay$rep.log"; then
                    t1=$(date +%s%N)
                    line=$(grep -m1 'recovered [0-9]* journal records' "$dir/replay$rep.log" || true)
                    stop_tallyd KILL
                    recs=$(sed -n 's/.*recovered \([0-9]*\) journal records from \([0-9]*\) segments in \([0-9]*\) ms.*/\1 \2 \3/p' <<<"$line")
                    if [ -n "$recs" ]; then
                        read -r n segs ms <<<"$recs"
                        log "recovery: $n records from $segs segments in $ms ms; ready after $(((t1 - t0) / 1000000)) ms"
                        printf '{"records":%d,"segments":%d,"replay_ms":%d,"ready_ms":%d}\n' \
                            "$n" "$segs" "$ms" "$(((t1 - t0) / 1000000))" >>"$RESULTS/recovery.jsonl"
                    else
                        log "recovery: no 'recovered N journal records' line in the log"; FAILED=1
                    fi
                else
                    FAILED=1
                fi
            done
        else
            stop_tallyd KILL
        fi
    else
        FAILED=1
    fi
    rm -rf "$dir/state"

    # ---- memory per series: one submission of all metrics per township ----
    mtowns=$(((MEMORY_SERIES + METRICS - 1) / METRICS))
    for rep in $(seq 1 "$REPS"); do
        dir=$TMP/memory$rep
        start_in "$dir" "$dir/tallyd.log" never 100 || { FAILED=1; continue; }
        log "memory: $mtowns townships x $METRICS metrics, run $rep of $REPS"
        json=$(bench "$dir/bench.out" -S "$METRICS" -t "$mtowns" --order seq --count "$mtowns" \
            --warmup 0 -d 3600 --label memory) || json=
        stop_tallyd
        [ -n "$json" ] && echo "$json" >>"$RESULTS/memory.jsonl"
        rm -rf "$dir/state"
    done

    # ---- memory per dense series: every window holds many buckets ----
    # DENSE_TOWNS x METRICS series, each given 8 samples stamped at random
    # in the last hour, 8 in the last day, 8 in the last week and 8 in the
    # last 30 days: more than 3 buckets in each of the default windows.
    for rep in $(seq 1 "$REPS"); do
        dir=$TMP/dense$rep
        start_in "$dir" "$dir/tallyd.log" never 100 || { FAILED=1; continue; }
        log "memory: $DENSE_TOWNS townships x $METRICS metrics, dense, run $rep of $REPS"
        json=
        for spread in 3600 86400 604800 2592000; do
            json=$(bench "$dir/bench.out" -S "$METRICS" -t "$DENSE_TOWNS" --order seq \
                --count $((8 * DENSE_TOWNS)) --spread "$spread" --warmup 0 -d 3600 \
                --label memory-dense) || { json=; break; }
        done
        stop_tallyd
        [ -n "$json" ] && echo "$json" >>"$RESULTS/memory-dense.jsonl"
        rm -rf "$dir/state"
    done

    # ---- a large state: LARGE_TOWNS x LARGE_METRICS series ----
    # Filled with one submission per township; the history writer's
    # catching up timed (until tallyd_history_unstored_records is 0) with
    # the CPU its thread took since the start, per cell stored; stopped
    # cleanly (a final checkpoint and the history written), then: REPS
    # starts, plain and as many in the unit's environment, each timed from
    # launch to the "ready" line and killed; and one run with a
    # checkpoint every 3 s under a probe of 2,000 one-sample submissions a
    # second, 10 in flight, whose slowest acknowledgement is the longest
    # any request waited for the loop (a checkpoint included).
    dir=$TMP/large
    if start_in "$dir" "$dir/fill.log" never 100 "$NO_CHECKPOINTS"; then
        log "large: filling $LARGE_TOWNS townships x $LARGE_METRICS metrics"
        if fill_series "$dir/fill.out" "$LARGE_TOWNS" "$LARGE_METRICS" large-fill >"$dir/fill.json"; then
            series=$(sed -n 's/.*"tallyd_series":\([0-9]*\).*/\1/p' "$dir/fill.json")
            hist=$(history_catch_up)
            # One township's questions among all these series: answered
            # by lookup, they cost what a STATS does.
            year=$(date -u -d '2 days ago' +%Y)
            scope=$(printf '{"snapshot_us":%s,"period_us":%s,"stats_us":%s}' \
                "$(one_scope_us get --town '{T}' --no-labels)" \
                "$(one_scope_us get --period "$year" --town '{T}' --no-labels)" \
                "$(one_scope_us stats)")
            kill -TERM "$TPID" 2>/dev/null || true
            wait "$TPID" 2>/dev/null || true # the final checkpoint and history: unbounded
            TPID=
            time_starts start ""
            readys=$STARTS_MS
            readys_unit=
            if [ -n "$UNIT_TUNABLES" ]; then
                time_starts unit "$UNIT_TUNABLES"
                readys_unit=$STARTS_MS
            fi
            NSTART=$((NSTART + 1))
            write_config "$dir/tallyd.conf" "$dir/state" never 100 \
                "$(printf 'snapshot_interval = 3s\nsnapshot_every_records = 1000000000000')"
            if start_tallyd "$dir/tallyd.conf" "$dir/probe.log"; then
                if probe=$("$BENCH" -r "$REQ" -p "$PUB" -n 1 -w 10 -S 1 -t 25 -R 2000 \
                    -d "$PROBE_S" --warmup 0.5 --json --label large-probe 2>&1 | grep '^{'); then
                    stop_tallyd KILL
                    ckps=$(grep -c 'checkpoint written' "$dir/probe.log" || true)
                    fork_us=$(sed -n 's/.*the fork held the loop \([0-9]*\) us.*/\1/p' "$dir/probe.log" |
                        sort -n | tail -n 1)
                    build_ms=$(sed -n 's/.*built in \([0-9]*\) ms by a child.*/\1/p' "$dir/probe.log" |
                        sort -n | tail -n 1)
                    printf '{"series":%s,"ready_ms":[%s],"ready_unit_ms":[%s],"checkpoints":%s,"fork_us_max":%s,"build_ms_max":%s,"history":%s,"scope":%s,"probe":%s}\n' \
                        "${series:-0}" "$readys" "$readys_unit" "${ckps:-0}" "${fork_us:-null}" "${build_ms:-null}" \
                        "${hist:-null}" "${scope:-null}" "$probe" >>"$RESULTS/large.jsonl"
                else
                    stop_tallyd KILL
                    log "large: the probe failed"; FAILED=1
                fi
            else
                FAILED=1
            fi
        else
            stop_tallyd KILL
        fi
    else
        FAILED=1
    fi
    [ "$KEEP" = 1 ] || rm -rf "$dir/state"

    # ---- history: reading a closed year; the database's bytes ----
    # One year of daily figures (HTOWNS townships x HMETRICS counters, one
    # submission per township and day), read back REPS x HREADS times;
    # history.db measured after a clean stop (its write-ahead log folded in).
    for rep in $(seq 1 "$REPS"); do
        dir=$TMP/history$rep
        start_in "$dir" "$dir/tallyd.log" never 100 || { FAILED=1; continue; }
        log "history: one year of daily figures, $HTOWNS townships x $HMETRICS metrics, run $rep of $REPS"
        if out=$("$HBENCH" -r "$REQ" --state "$dir/state" -t "$HTOWNS" -m "$HMETRICS" \
            --reads "$HREADS" --json 2>&1); then
            grep -v '^{' <<<"$out" >&2 || true
            json=$(grep '^{' <<<"$out" | tail -n 1)
            stop_tallyd
            printf '{"run":%s,"db_bytes":%d}\n' "$json" \
                "$(stat -c %s "$dir/state/history.db")" >>"$RESULTS/history.jsonl"
        else
            log "tally-bench-history failed: $out"; FAILED=1
            stop_tallyd KILL
        fi
        rm -rf "$dir/state"
    done
fi

# ---- the table ----
MACHINE="$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)"
MACHINE="$MACHINE; load average $LOAD0 before, $(cut -d' ' -f1-3 /proc/loadavg) after"
ZMQV=$(pkg-config --modversion libzmq 2>/dev/null || echo '?')
python3 - "$RESULTS" "$MACHINE" "$ZMQV" "$TRANSPORT" "$DURATION" "$REPS" "$CONNS" "$WINDOW" <<'EOF'
import json, os, statistics, sys

res, machine, zmqv, transport, duration, reps, conns, window = sys.argv[1:9]

def load(name):
    path = os.path.join(res, name)
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

def ms(us):
    if us is None:
        return "-"
    v = us / 1000.0
    return "%.3g" % v if v < 100 else "%.0f" % v

def count(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e3:
        return "%.0fk" % (v / 1e3)
    return "%.0f" % v

base = load("baseline.jsonl")
paired = {(b["scenario"], b["rep"]): b["msgs_per_s"] for b in base if "scenario" in b}
base = [b for b in base if "scenario" not in b]
base_rate = med([b["msgs_per_s"] for b in base])
runs = load("scenarios.jsonl")
order, by, other = [], {}, {}
for r in runs:
    if r.get("variant") == "against":
        other.setdefault(r["scenario"], []).append(r["run"])
        continue
    by.setdefault(r["scenario"], []).append(r)
    if r["scenario"] not in order:
        order.append(r["scenario"])

print("tallyd benchmark: %s; %s, %s x %s submissions in flight, %s s per run, "
      "median of %s runs" % (machine, "tcp loopback" if transport == "tcp" else "ipc sockets",
                             conns, window, duration, reps))
print()
def cpu_per_sample(rs):
    return med([r["tallyd_cpu_s"] / (r["samples_per_s"] * r["duration_s"]) for r in rs
                if r.get("tallyd_cpu_s") is not None and r["samples_per_s"] > 0])

print("| scenario | samples/s | submissions/s | ack p50 ms | ack p99 ms | ack p99.9 ms "
      "| pub p99 ms | tallyd CPU s | peak RSS MiB | vs zmq |%s" %
      (" samples/s vs --against | CPU/sample vs --against |" if other else ""))
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|%s" % ("---:|---:|" if other else ""))
notes = []
for name in order:
    rs = [r["run"] for r in by[name]]
    subs = med([r["submissions_per_s"] for r in rs])
    rss = med([r.get("tallyd_peak_rss_kib") for r in rs])
    flat_out = all(r["rate"] == 0 for r in rs)
    ratio = "%.2f" % (subs / base_rate) if base_rate and subs is not None and flat_out else "-"
    pr = [r2["run"]["submissions_per_s"] / paired[(name, r2["rep"])] for r2 in by[name]
          if (name, r2["rep"]) in paired]
    if pr and flat_out:
        ratio = "%.2f" % med(pr)
    vs = ""
    if other:
        o = other.get(name, [])
        osamp, ocpu, tcpu = med([r["samples_per_s"] for r in o]), cpu_per_sample(o), cpu_per_sample(rs)
        vs = " %s | %s |" % ("%.2f" % (med([r["samples_per_s"] for r in rs]) / osamp) if osamp else "-",
                             "%.2f" % (tcpu / ocpu) if ocpu and tcpu else "-")
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |%s" % (
        name, count(med([r["samples_per_s"] for r in rs])), count(subs),
        ms(med([r["ack_p50_us"] for r in rs])), ms(med([r["ack_p99_us"] for r in rs])),
        ms(med([r["ack_p999_us"] for r in rs])), ms(med([r.get("pub_p99_us") for r in rs])),
        "%.2f" % med([r.get("tallyd_cpu_s") for r in rs]) if rs[0].get("tallyd_cpu_s") is not None else "-",
        "%.0f" % (rss / 1024) if rss is not None else "-", ratio, vs))
    bad = sum(r["rejected"] + r["errors"] + r["unanswered"] for r in rs)
    gaps = sum(r.get("pub_gaps", 0) for r in rs)
    bench_cpu = med([r["bench_cpu_s"] / r["duration_s"] for r in rs])
    if bad:
        notes.append("%s: %d submissions rejected, failed or unanswered (first: %s)" % (
            name, bad, next((r["first_problem"] for r in rs if r["first_problem"]), "?")))
    if gaps:
        notes.append("%s: the timing subscriber missed %d updates (queue overflow); pub "
                     "latency there includes the wait for a later update" % (name, gaps))
    if bench_cpu is not None and bench_cpu > 0.9:
        notes.append("%s: tally-bench itself used %.2f cores (of the same %s)" % (
            name, bench_cpu, machine.split(",")[0]))
print()
# Where the machine's CPU goes, per submission acknowledged: tallyd's
# threads and the load generator's (which shares the cores), by thread name.
groups = [("loop", "t", lambda n: n == "tallyd"),
          ("journal", "t", lambda n: n == "tallyd-journal"),
          ("history", "t", lambda n: n == "tallyd-history"),
          ("ZeroMQ I/O", "t", lambda n: n.startswith("ZMQbg")),
          ("tally-bench", "b", lambda n: n == "tally-bench"),
          ("its ZeroMQ I/O", "b", lambda n: n.startswith("ZMQbg")),
          ("its other subscribers", "b", lambda n: n == "bench-drain")]
def by_group(r):
    t, b = r.get("tallyd_thread_us"), r.get("bench_thread_us")
    if not t or not b:
        return None
    out = [sum(v for n, v in (t if side == "t" else b).items() if match(n))
           for _, side, match in groups]
    return out + [sum(t.values()) + sum(b.values())]
rows = []
for name in order:
    rs = [r["run"] for r in by[name]]
    if not all(r["rate"] == 0 for r in rs):
        continue
    g = [x for x in (by_group(r) for r in rs) if x is not None]
    if g:
        rows.append((name, [med([x[i] for x in g]) for i in range(len(groups) + 1)],
                     med([r["submissions_per_s"] for r in rs])))
if rows:
    cores = os.cpu_count() or 1
    print("CPU per submission, us (medians; tallyd's threads, then tally-bench's), and the "
          "submissions/s the %d cores allow at that cost:" % cores)
    print()
    print("| scenario | %s | all | %d cores allow | reached |" % (" | ".join(g[0] for g in groups), cores))
    print("|---|%s---:|---:|---:|" % ("---:|" * len(groups)))
    for name, v, subs in rows:
        print("| %s | %s | %.2f | %s | %s |" % (name, " | ".join("%.2f" % x for x in v[:-1]), v[-1],
                                              count(cores * 1e6 / v[-1]) if v[-1] > 0 else "-",
                                              count(subs)))
    print()
if base:
    b = base[0]
    print("zmq baseline (raw DEALER->ROUTER, %d x %d in flight, %d-byte messages, %d-byte acks, "
          "same transport): %s msg/s, rtt p50 %s ms, p99 %s ms (median of %d)" % (
              b["connections"], b["window"], b["size"], b["ack"], count(base_rate),
              ms(med([x["rtt_p50_us"] for x in base])), ms(med([x["rtt_p99_us"] for x in base])),
              len(base)))
if paired:
    print("vs zmq: each run against the baseline run beside it (--paired-baseline; %d baseline "
          "runs, %s to %s msg/s)" % (len(paired), count(min(paired.values())),
                                     count(max(paired.values()))))
rec = load("recovery.jsonl")
if rec:
    rate = med([r["records"] * 1000.0 / max(r["replay_ms"], 1) for r in rec])
    print("recovery: %d journal records replayed in %s ms (median), %s records/s; ready "
          "after %s ms" % (rec[0]["records"], "%.0f" % med([r["replay_ms"] for r in rec]),
                           count(rate), "%.0f" % med([r["ready_ms"] for r in rec])))
def part(ms, key):
    return med([m.get(key, 0) / max(m.get("tallyd_series", 0), 1) for m in ms])
mem = load("memory.jsonl")
if mem:
    per_rss = med([(m["tallyd_rss_end_kib"] - m["tallyd_rss_start_kib"]) * 1024.0 /
                   max(m.get("tallyd_series", 0), 1) for m in mem])
    per_stat = med([m.get("tallyd_memory_bytes", 0) / max(m.get("tallyd_series", 0), 1)
                    for m in mem])
    print("memory per quiet series: %.0f bytes by RSS growth, %.0f bytes by tallyd_memory_bytes: "
          "engine %.0f, history %.0f (%d series, one sample each)" % (
              per_rss, per_stat, part(mem, "tallyd_memory_engine_bytes"),
              part(mem, "tallyd_memory_history_bytes"), mem[0].get("tallyd_series", 0)))
dense = load("memory-dense.jsonl")
if dense:
    print("memory per dense series: %.0f bytes by tallyd_memory_bytes: engine %.0f, history %.0f "
          "(%d series, 32 samples each spread over 30 days)" % (
              part(dense, "tallyd_memory_bytes"), part(dense, "tallyd_memory_engine_bytes"),
              part(dense, "tallyd_memory_history_bytes"), dense[0].get("tallyd_series", 0)))
large = load("large.jsonl")
if large:
    g = large[0]
    print("large state (%d series): ready after %s ms (median of %d starts); with a checkpoint "
          "every 3 s (%d taken, fork held the loop at most %s ms, image built in %s ms by the "
          "child), the slowest of %d probe acks took %s ms (p99.9 %s ms)" % (
              g["series"], "%.0f" % med(g["ready_ms"]) if g["ready_ms"] else "-",
              len(g["ready_ms"]), g["checkpoints"],
              "%.1f" % (g["fork_us_max"] / 1000.0) if g["fork_us_max"] is not None else "-",
              g["build_ms_max"] if g["build_ms_max"] is not None else "-",
              g["probe"].get("ack_count", 0), ms(g["probe"].get("ack_max_us")),
              ms(g["probe"].get("ack_p999_us"))))
    if g.get("ready_unit_ms"):
        print("large state: in the systemd unit's environment (glibc's heap in huge pages) "
              "ready after %.0f ms (median of %d starts)" % (med(g["ready_unit_ms"]),
                                                            len(g["ready_unit_ms"])))
    sc = g.get("scope") or {}
    if sc.get("snapshot_us") is not None and sc.get("period_us") is not None:
        print("large state: one township's tallies (tally get --town) in %s ms, its year (get "
              "--period) in %s ms, a STATS beside them in %s ms (medians of 21 commands, each "
              "one's start included)" % (ms(sc["snapshot_us"]), ms(sc["period_us"]),
                                         ms(sc.get("stats_us"))))
    h = g.get("history") or {}
    if h.get("wait_ms") is not None and h.get("cells") and h.get("writer_cpu_s") is not None:
        print("large state: the history database held every record %.1f s after the fill; its "
              "writer thread used %.1f CPU s for %d cells, %.2f us per cell" % (
                  h["wait_ms"] / 1000.0, h["writer_cpu_s"], h["cells"],
                  h["writer_cpu_s"] * 1e6 / h["cells"]))
web = load("web.jsonl")
if web:
    names = []
    for w in web:
        if w["scenario"] not in names:
            names.append(w["scenario"])
    for name in names:
        off = [w["run"] for w in web if w["scenario"] == name and w["browsers"] == 0]
        on = [w for w in web if w["scenario"] == name and w["browsers"] > 0]
        onr = [w["run"] for w in on]
        if not off or not onr:
            continue
        ws = [w["ws"] for w in on if w.get("ws")]
        msgs = med([x["messages"] / x["duration_s"] / x["clients"] for x in ws]) if ws else None
        mbs = med([x["bytes"] / x["duration_s"] / 1e6 for x in ws]) if ws else None
        print("%s: with %d browsers on tally-web's stream vs none: samples/s %s -> %s (%.2f), "
              "tallyd CPU per sample %.2f, ack p99 %s -> %s ms; each browser got %s messages/s, "
              "%s MB/s in all; tally-web used %s CPU s per run (%s without browsers)" % (
                  name, on[0]["browsers"], count(med([r["samples_per_s"] for r in off])),
                  count(med([r["samples_per_s"] for r in onr])),
                  med([r["samples_per_s"] for r in onr]) / med([r["samples_per_s"] for r in off]),
                  cpu_per_sample(onr) / cpu_per_sample(off),
                  ms(med([r["ack_p99_us"] for r in off])), ms(med([r["ack_p99_us"] for r in onr])),
                  "%.1f" % msgs if msgs is not None else "-", "%.1f" % mbs if mbs is not None else "-",
                  "%.2f" % med([w.get("web_cpu_s") for w in on]) if med([w.get("web_cpu_s") for w in on]) is not None else "-",
                  "%.2f" % med([w.get("web_cpu_s") for w in web if w["scenario"] == name and w["browsers"] == 0])
                  if med([w.get("web_cpu_s") for w in web if w["scenario"] == name and w["browsers"] == 0]) is not None else "-"))
fs = load("fsync.jsonl")
fs_busy = [f for f in fs if f.get("busy")]
fs = [f for f in fs if not f.get("busy")]
if fs:
    fp50, fp99 = med([f["p50_ms"] for f in fs]), med([f["p99_ms"] for f in fs])
    line = ("disk: append of %d bytes + fdatasync p50 %.3f ms, p99 %.3f ms (median of %d runs "
            "of %d)" % (fs[0]["size"], fp50, fp99, len(fs), fs[0]["count"]))
    if "lat50k-always" in by and "lat50k-never" in by:
        a99 = med([r["run"]["ack_p99_us"] for r in by["lat50k-always"]]) / 1000.0
        n99 = med([r["run"]["ack_p99_us"] for r in by["lat50k-never"]]) / 1000.0
        line += ("; lat50k-always ack p99 %.2f ms against lat50k-never's %.2f ms + fdatasync "
                 "p99 %.2f ms = %.2f ms: %+.2f ms" % (a99, n99, fp99, n99 + fp99, a99 - n99 - fp99))
    if fs_busy:
        line += ("; with both cores busy: fdatasync p50 %.3f ms, p99 %.3f ms, max %.1f ms" % (
            med([f["p50_ms"] for f in fs_busy]), med([f["p99_ms"] for f in fs_busy]),
            max(f["max_ms"] for f in fs_busy)))
    print(line)
fg = load("fsync-group.jsonl")
if fg:
    g99 = med([f["record_p99_ms"] for f in fg])
    line = ("disk, group commit alone at %.0f records/s of %d bytes (one thread appending and "
            "syncing whatever has arrived; median of %d runs): fdatasync p50 %.3f ms, p99 %.3f ms; "
            "record to durable p50 %.3f ms, p99 %.3f ms" % (
                fg[0]["rate"], fg[0]["size"], len(fg), med([f["sync_p50_ms"] for f in fg]),
                med([f["sync_p99_ms"] for f in fg]), med([f["record_p50_ms"] for f in fg]), g99))
    if "lat50k-always" in by and "lat50k-never" in by:
        a99 = med([r["run"]["ack_p99_us"] for r in by["lat50k-always"]]) / 1000.0
        n99 = med([r["run"]["ack_p99_us"] for r in by["lat50k-never"]]) / 1000.0
        line += ("; lat50k-always ack p99 %.2f ms against lat50k-never's %.2f ms + that record "
                 "p99 = %.2f ms: %+.2f ms" % (a99, n99, n99 + g99, a99 - n99 - g99))
    print(line)
hist = load("history.jsonl")
if hist:
    h0 = hist[0]["run"]
    rows = 365 + 12 + 4 + 1  # days, months, quarters, year
    print("history: one closed year of %d x %d series (%d with the county): PERIOD_REQ of "
          "the year p50 %.1f ms, p99 %.1f ms; RANGE_REQ of %d days p99 %.1f ms; "
          "history.db %.0f bytes per series per year of daily figures (%d rows each)"
          % (h0["towns"], h0["metrics"], h0["series"],
             med([h["run"]["period_p50_ms"] for h in hist]),
             med([h["run"]["period_p99_ms"] for h in hist]), h0["range_points"],
             med([h["run"]["range_p99_ms"] for h in hist]),
             med([h["db_bytes"] / h["run"]["series"] for h in hist]), rows))
print("machine: %s; libzmq %s" % (machine, zmqv))
for n in notes:
    print("note: " + n)
EOF

if [ "$FAILED" = 1 ]; then
    log "some runs failed; see above"
    exit 1
fi
