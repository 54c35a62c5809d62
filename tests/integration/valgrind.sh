#!/usr/bin/env bash
# valgrind.sh - run the integration tests with every tallyd under valgrind.
#
#   tests/integration/valgrind.sh BUILD_DIR [CTEST_ARGS...]
#
# BUILD_DIR is a normal build (not TALLY_SANITIZE, not TALLY_FUZZ: ASan and
# valgrind do not mix) with the integration tests built.  The tests start
# tallyd through $TALLY_TALLYD when it is set (harness_tallyd(), harness.c),
# so it points at a wrapper that execs valgrind's memcheck on the real
# tallyd with one log per process.  CTEST_ARGS go after
# `ctest --test-dir BUILD_DIR -L integration`, e.g. -R '^test_daemon_' to
# run fewer tests: tallyd runs 10-50 times slower under valgrind and the
# tests keep their own timeouts.
#
# Fails (exit 1) when a test fails, or when a log reports "definitely lost"
# or "indirectly lost" bytes or a non-zero ERROR SUMMARY; the offending
# logs are printed.  A log without a summary belongs to a tallyd the test
# killed on purpose (SIGKILL leaves valgrind no time to report); those are
# counted, not failed.  Exit 77 when valgrind is not installed, 2 on usage
# errors.  The logs stay in a temporary directory when something failed or
# VALGRIND_KEEP_LOGS is set (TALLY_KEEP_TMP keeps the tests' own
# directories, as always).
set -uo pipefail

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
build=$(cd "$1" 2>/dev/null && pwd) || { echo "valgrind.sh: no build directory '$1'" >&2; exit 2; }
shift

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind.sh: valgrind is not installed (apt-get install -y valgrind); skipped" >&2
    exit 77
fi
tallyd=$build/daemon/tallyd
if [ ! -x "$tallyd" ]; then
    echo "valgrind.sh: $tallyd is missing; build the tree first" >&2
    exit 2
fi
if grep -Eq '^TALLY_(SANITIZE|FUZZ):BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
    echo "valgrind.sh: $build is a sanitizer or fuzzing build; valgrind needs a normal one" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tally-valgrind.XXXXXX") || exit 2
logs=$work/logs
mkdir -p "$logs"
wrapper=$work/tallyd
# --error-exitcode makes a leak or a memory error visible to the test as
# well (tallyd exits 99), --child-silent-after-fork keeps libraries that
# fork from writing into the log.
cat >"$wrapper" <<EOF
#!/bin/sh
exec valgrind --leak-check=full --show-leak-kinds=definite,indirect \\
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \\
    --num-callers=40 --child-silent-after-fork=yes \\
    --log-file='$logs/vg.%p.log' '$tallyd' "\$@"
EOF
chmod +x "$wrapper"

echo "valgrind.sh: tallyd under valgrind via $wrapper; logs in $logs"
start=$(date +%s)
TALLY_TALLYD=$wrapper ctest --test-dir "$build" -L integration --output-on-failure "$@"
ctest_rc=$?
echo "valgrind.sh: ctest finished with status $ctest_rc after $(($(date +%s) - start)) s"

total=0 incomplete=0 bad=0
for log in "$logs"/vg.*.log; do
    [ -e "$log" ] || continue
    total=$((total + 1))
    if ! grep -q 'ERROR SUMMARY:' "$log"; then
        incomplete=$((incomplete + 1))
        continue
    fi
    if grep -Eq '(definitely|indirectly) lost: [1-9]|ERROR SUMMARY: [1-9]' "$log"; then
        bad=$((bad + 1))
        echo "==== $log"
        # The command line, then every error and leak with its stack.
        grep -m1 'Command:' "$log"
        sed -n '/^==[0-9]*== *$/,$p' "$log" | head -n 300
    fi
done
echo "valgrind.sh: $total tallyd processes logged; $bad with errors or leaks;" \
    "$incomplete without a summary (killed by their test)"

if [ "$total" -eq 0 ]; then
    echo "valgrind.sh: no tallyd ran under valgrind; do the selected tests start one?" >&2
    bad=1
fi
if [ "$bad" -ne 0 ] || [ "$ctest_rc" -ne 0 ]; then
    echo "valgrind.sh: FAILED; logs kept in $logs" >&2
    exit 1
fi
if [ -n "${VALGRIND_KEEP_LOGS:-}" ]; then
    echo "valgrind.sh: logs kept in $logs"
else
    rm -rf "$work"
fi
exit 0
