/* cli_support.h - what the integration tests of the `tally` command need
 * beyond the daemon harness (harness.h): running the real command as a
 * child process, and a table of tallies rebuilt from `tally get --json` or
 * `tally watch --json` (read with cli_json.h).
 *
 * Paths baked in at build time (compile definitions, see cli.cmake):
 * TALLY_BIN (the `tally` command built), TALLYD_BIN and TALLY_SHARED_DATA.
 * Environment: TALLY_CLI, when set, is the command to run instead of
 * TALLY_BIN.
 *
 * Conventions as in harness.h: functions returning int give 0 on success
 * or a negative TALLY_E* code; failures are explained in an err buffer the
 * caller prints, so a failed assertion comes with its reason.
 */
#ifndef TALLY_CLI_SUPPORT_H
#define TALLY_CLI_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli_json.h"
#include "harness.h"

/* ---- running the command ------------------------------------------------ */

#define CLI_ARGS_MAX 32

/* The command under test: $TALLY_CLI or TALLY_BIN (static storage). */
const char *cli_bin(void);

/* What one finished run left: its exit status as harness_stop reports it
 * (0..255, 128 + signal, -1 when it was killed at the timeout), its
 * standard output and error (owned, NUL-terminated) and how long it ran. */
typedef struct cli_result {
    int status;
    char *out;
    char *err;
    int64_t ms;
} cli_result_t;

/* Start the command with args (NULL-terminated, not including argv[0]) and
 * TALLY_SERVER=server in its environment (server NULL: TALLY_SERVER
 * removed), XDG_STATE_HOME set to DIR/xdg-state where DIR is out_path's
 * directory (so `tally push` keeps its client state there), standard
 * input from /dev/null and standard output and error appended to out_path
 * and err_path.  The child is killed when the calling
 * thread dies.  Returns the pid, or -1 (errno set). */
pid_t cli_spawn(const char *server, const char *const *args, const char *out_path,
                const char *err_path);

/* The same for any executable: argv[0] is the program (execv, no PATH
 * search); env_server as for cli_spawn. */
pid_t cli_spawn_argv(const char *server, const char *const *argv, const char *out_path,
                     const char *err_path);

/* Wait up to timeout_ms for pid to exit.  Returns its status as in
 * cli_result_t, or -2 when it is still running (not killed). */
int cli_wait(pid_t pid, int timeout_ms);

/* Run the command to completion in directory dir (for its output files
 * dir/cli-N.out and .err), killing it after timeout_ms.  *r owns the
 * output afterwards; release it with cli_result_free.  Returns 0, or -1
 * when it could not be started (r->err then says why). */
int cli_run(const char *dir, const char *server, const char *const *args, int timeout_ms,
            cli_result_t *r);
void cli_result_free(cli_result_t *r);

struct harness;

/* Run the command against h's daemon (in h's directory, 30 s at most)
 * and fail the test, quoting the command, its output and the daemon's
 * log, unless it exits with status.  The result is the caller's to free. */
cli_result_t cli_expect(struct harness *h, int status, const char *const *args);

/* Number of directory entries of dir whose name ends with suffix, -1 when
 * dir cannot be read. */
int cli_count_files(const char *dir, const char *suffix);

/* ---- tables of tallies ---------------------------------------------------- */

#define CLI_COLS_MAX 16
#define CLI_NAME_MAX 64

typedef struct cli_val {
    bool present; /* false: null, "no value" */
    int64_t num;
    int64_t den;  /* 1 for counters and gauges */
    double value; /* ratios: the "value" member; else num */
} cli_val_t;

typedef struct cli_tally {
    char metric[CLI_NAME_MAX + 1];
    char scope[CLI_NAME_MAX + 1]; /* "county" or a township */
    char kind[16];                /* "counter", "gauge", "ratio" */
    uint64_t seq;                 /* watch lines: the tally's seq; get: 0 */
    size_t ncols;
    char col[CLI_COLS_MAX][CLI_NAME_MAX + 1];
    cli_val_t val[CLI_COLS_MAX];
} cli_tally_t;

typedef struct cli_tab {
    cli_tally_t *v;
    size_t n, cap;
    uint64_t seq, stream_id; /* get: the document's; watch: the largest line seq */
    size_t lines;            /* watch: lines applied */
} cli_tab_t;

void cli_tab_init(cli_tab_t *t);
void cli_tab_free(cli_tab_t *t);

/* A test's state: its daemon (harness.h) and a table.  cli_fixture_setup
 * and cli_fixture_teardown are cmocka's setup and teardown for it. */
typedef struct cli_fixture {
    harness_t h;
    cli_tab_t t;
} cli_fixture_t;

int cli_fixture_setup(void **state);
int cli_fixture_teardown(void **state);

/* Read the whole output of `tally get --json` into t (emptied first),
 * checking the shape tally(1) documents: {"seq":N,"stream_id":N,
 * "tallies":[...]}, each tally with metric, scope, kind and values, values
 * integers or null (counters, gauges) or {"num","den","value"} objects
 * (ratios, value within 1e-12 of num/den).  Returns 0 or TALLY_EMALFORMED
 * (err names the problem). */
int cli_tab_from_get(cli_tab_t *t, const char *text, char *err, size_t errlen);

/* Apply the lines of `tally watch --json` output to t in order, the last
 * line of a (metric, scope) replacing earlier ones; each line must be one
 * tally object whose first member is "seq".  An unterminated last line
 * (still being written) is ignored.  Returns 0 or TALLY_EMALFORMED. */
int cli_tab_from_watch(cli_tab_t *t, const char *text, char *err, size_t errlen);

const cli_tally_t *cli_tab_find(const cli_tab_t *t, const char *metric, const char *scope);

/* Column of (metric, scope) into *out; false when the tally or the column
 * is missing. */
bool cli_tab_get(const cli_tab_t *t, const char *metric, const char *scope, const char *column,
                 cli_val_t *out);

/* True when a and b hold the same tallies (metric, scope, kind) with the
 * same columns and values (seq not compared); otherwise the first
 * difference is described in diff. */
bool cli_tab_equal(const cli_tab_t *a, const cli_tab_t *b, char *diff, size_t len);

/* ---- shortcuts ---------------------------------------------------------- */

/* Run `tally get --json` followed by extra (NULL-terminated, may be NULL)
 * against server and read its output into t.  Returns 0, or TALLY_EIO
 * (the command failed: err gives its status and standard error) or
 * TALLY_EMALFORMED (its output is not the documented JSON). */
int cli_get_tab(const char *dir, const char *server, const char *const *extra, cli_tab_t *t,
                char *err, size_t errlen);

/* Run `tally stats --json` and store the counter name in *value.  Returns
 * 0, TALLY_EIO (the command failed), TALLY_EMALFORMED (not a flat object
 * of integers) or TALLY_ENOTFOUND (no such counter). */
int cli_stat(const char *dir, const char *server, const char *name, int64_t *value, char *err,
             size_t errlen);

#endif
