/* Black-box tests of tallyd across its downtime: the daemon runs under
 * libfaketime (LD_PRELOAD, FAKETIME as an offset from the real clock, so
 * its time runs on as usual), is stopped, and starts again with its clock
 * moved past a midnight, a year end or a few hours.  What it serves at
 * once (a snapshot, a period, a range of days) must be what a daemon that
 * ran through the downtime would serve: old buckets out of the sliding
 * windows, the periods that ended back at 0, the figures of the journal
 * replayed where their event times put them.  Three ways to stop:
 * SIGTERM (a final checkpoint), and SIGKILL after a checkpoint with
 * journal records after it or with none.  And a midnight passed while it
 * runs, read at once.  Skipped when libfaketime is not
 * installed (apt-get install faketime); TALLY_FAKETIME_LIB names it when
 * it is somewhere else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <glob.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tally.h"

#define METRIC "disputes.screened"
#define TOWN   "gaoguan"

/* What the tests ask of a daemon: the county's and gaoguan's tallies. */
static const char *const scopes[] = {"", TOWN};

typedef struct fx {
    harness_t h;
    harness_table_t t;
    harness_client_t c;
    bool client_open;
    int64_t offset_ms; /* the daemon's clock minus the real one */
    uint64_t seq;
    char lib[512]; /* libfaketime */
} fx_t;

/* libfaketime's thread-safe build where there is one (tallyd has
 * threads), found under the usual library directories. */
static bool find_faketime(char *out, size_t len)
{
    const char *env = getenv("TALLY_FAKETIME_LIB");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, len, "%s", env);
        return access(out, R_OK) == 0;
    }
    static const char *const patterns[] = {
        "/usr/lib/*/faketime/libfaketimeMT.so.1",     "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1", "/usr/lib/*/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",         "/usr/local/lib/faketime/libfaketime.so.1",
    };
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        glob_t g;
        if (glob(patterns[i], 0, NULL, &g) == 0 && g.gl_pathc > 0) {
            snprintf(out, len, "%s", g.gl_pathv[0]);
            globfree(&g);
            return true;
        }
        globfree(&g);
    }
    return false;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    if (f == NULL || harness_init(&f->h) != 0)
        return -1;
    harness_table_init(&f->t);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->client_open)
        harness_client_close(&f->c);
    /* A clean exit is part of every test (leaks in the sanitizer build). */
    int rc = harness_finish(&f->h) == 0 ? 0 : -1;
    harness_table_free(&f->t);
    harness_cleanup(&f->h);
    free(f);
    return rc;
}

/* Local time in Asia/Shanghai (UTC+8, no daylight saving time, the
 * daemon's default zone) in ms since the epoch. */
static int64_t cst_ms(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return ((int64_t)timegm(&tm) - 8 * 3600) * 1000;
}

/* The daemon's clock now. */
static int64_t daemon_now(const fx_t *f)
{
    return harness_now_ms() + f->offset_ms;
}

/* Set name to value, or unset it when value is NULL. */
static void put_env(const char *name, const char *value)
{
    if (value != NULL)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

/* Start tallyd (config: harness_start's; restart: again with the same
 * configuration, after a stop if it still runs) with its clock at
 * when_ms, running on from there.  Only the daemon runs under
 * libfaketime: the environment is put back once it has started. */
static void start_at(fx_t *f, int64_t when_ms, const char *config, bool restart)
{
    if (f->lib[0] == '\0' && !find_faketime(f->lib, sizeof(f->lib)))
        skip(); /* libfaketime is not installed */
    if (f->client_open) {
        harness_client_close(&f->c);
        f->client_open = false;
    }
    char *saved_preload = getenv("LD_PRELOAD") ? strdup(getenv("LD_PRELOAD")) : NULL;
    char *saved_asan = getenv("ASAN_OPTIONS") ? strdup(getenv("ASAN_OPTIONS")) : NULL;
    char preload[1200], asan[1200], offset[64];
    snprintf(preload, sizeof(preload), "%s%s%s", f->lib, saved_preload ? " " : "",
             saved_preload ? saved_preload : "");
    /* The sanitizer build: libfaketime comes before ASan's runtime. */
    snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0", saved_asan ? saved_asan : "",
             saved_asan ? ":" : "");
    f->offset_ms = when_ms - harness_now_ms();
    snprintf(offset, sizeof(offset), "%+.3f", (double)f->offset_ms / 1000.0);
    put_env("LD_PRELOAD", preload);
    put_env("ASAN_OPTIONS", asan);
    put_env("FAKETIME", offset);
    /* libuv's timers keep the real monotonic clock. */
    put_env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    int rc = restart ? harness_restart(&f->h, NULL) : harness_start(&f->h, config, NULL);
    put_env("LD_PRELOAD", saved_preload);
    put_env("ASAN_OPTIONS", saved_asan);
    unsetenv("FAKETIME");
    unsetenv("FAKETIME_DONT_FAKE_MONOTONIC");
    free(saved_preload);
    free(saved_asan);
    if (rc != 0)
        fail_msg("tallyd did not start at %" PRId64 ": %s", when_ms, tally_strerror(rc));
    assert_int_equal(harness_client_open(&f->h, &f->c), 0);
    f->client_open = true;
}

/* Submit value of METRIC for TOWN with event time t_ms; accepted. */
static void submit(fx_t *f, int64_t t_ms, int64_t value)
{
    harness_ack_t a;
    char buf[800];
    assert_int_equal(harness_submit_one(&f->c, ++f->seq, TOWN, t_ms, METRIC, value, &a), 0);
    if (a.type != PROTO_ACK || a.status != PROTO_ACK_ACCEPTED)
        fail_msg("submission of %" PRId64 " at %" PRId64 ": %s", value, t_ms,
                 harness_ack_str(&a, buf, sizeof(buf)));
}

/* The columns of a snapshot, in the order of WELCOME's defaults. */
static const char *const columns[] = {"1h",    "24h",     "7d",   "30d",  "today",
                                      "month", "quarter", "year", "total"};
#define NCOLUMNS (sizeof(columns) / sizeof(columns[0]))

/* A snapshot taken now holds want[i] in columns[i] of the county and of
 * gaoguan (only gaoguan submits). */
static void expect_snapshot(fx_t *f, const int64_t want[NCOLUMNS], const char *when)
{
    assert_int_equal(harness_snapshot(&f->c, "", &f->t), 0);
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < NCOLUMNS; i++) {
            harness_value_t v;
            if (!harness_table_get(&f->t, METRIC, scopes[s], columns[i], &v))
                fail_msg("%s: no column %s of %s in scope '%s'", when, columns[i], METRIC,
                         scopes[s]);
            if (!v.present || v.num != want[i])
                fail_msg("%s: %s '%s' %s: expected %" PRId64 ", got %s%" PRId64, when, METRIC,
                         scopes[s], columns[i], want[i], v.present ? "" : "nil ", v.num);
        }
}

typedef struct got {
    int64_t value[2];
    bool seen[2];
} got_t;

static void on_tally(void *ctx, const tally_tally_t *t)
{
    got_t *g = ctx;
    for (size_t s = 0; s < 2; s++)
        if (strcmp(t->metric, METRIC) == 0 && strcmp(t->scope, scopes[s]) == 0 && t->nvalues == 1 &&
            t->values[0].present) {
            g->value[s] = t->values[0].num;
            g->seen[s] = true;
        }
}

/* `tally get --period period`: want for the county and gaoguan. */
static void expect_period(fx_t *f, const char *period, int64_t want)
{
    static const char *const prefixes[] = {"u/county/" METRIC "/", "u/town/" TOWN "/" METRIC "/"};
    for (size_t s = 0; s < 2; s++) {
        got_t g = {0};
        char err[512] = "";
        tally_request_t req = {.timeout_ms = 10000, .errbuf = err, .errbuf_len = sizeof(err)};
        int rc = tally_period_req(f->h.req_endpoint, &req, prefixes[s], period, on_tally, &g);
        if (rc != 0)
            fail_msg("period %s of %s: %s: %s", period, prefixes[s], tally_strerror(rc), err);
        if (!g.seen[s] || g.value[s] != want)
            fail_msg("period %s, %s '%s': expected %" PRId64 ", got %s%" PRId64, period, METRIC,
                     scopes[s], want, g.seen[s] ? "" : "nothing ", g.value[s]);
    }
}

typedef struct points {
    char name[8][16];
    int64_t value[8];
    size_t n;
} points_t;

static void on_point(void *ctx, int kind, const tally_value_t *v)
{
    (void)kind;
    points_t *p = ctx;
    if (p->n < 8) {
        snprintf(p->name[p->n], sizeof(p->name[0]), "%s", v->column);
        p->value[p->n++] = v->present ? v->num : INT64_MIN;
    }
}

/* `tally history -m METRIC --by day --from from --to to` of the county:
 * the n days from from hold want[0..n). */
static void expect_days(fx_t *f, const char *from, const char *to, const int64_t *want, size_t n)
{
    points_t p = {0};
    char err[512] = "";
    tally_request_t req = {.timeout_ms = 10000, .errbuf = err, .errbuf_len = sizeof(err)};
    int rc = tally_range_req(f->h.req_endpoint, &req, METRIC, NULL, "day", from, to, on_point, &p);
    if (rc != 0)
        fail_msg("days %s..%s: %s: %s", from, to, tally_strerror(rc), err);
    assert_int_equal(p.n, n);
    for (size_t i = 0; i < n; i++)
        if (p.value[i] != want[i])
            fail_msg("day %s of %s..%s: expected %" PRId64 ", got %" PRId64, p.name[i], from, to,
                     want[i], p.value[i]);
}

/* 1. The audit's case: 8 screened at 23:50 on 31 December, SIGTERM (a
 * checkpoint), start at 08:30 on 1 January.  Nothing of 2027 yet: today,
 * month, quarter, year and the 1h window are 0 at once, 24h and more
 * keep the 8, and so does the closed day. */
static void test_sigterm_across_year_end(void **state)
{
    fx_t *f = *state;
    start_at(f, cst_ms(2026, 12, 31, 23, 50), NULL, false);
    submit(f, daemon_now(f), 8);
    const int64_t before[NCOLUMNS] = {8, 8, 8, 8, 8, 8, 8, 8, 8};
    expect_snapshot(f, before, "before the stop");
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);
    assert_non_null(strstr(harness_log(&f->h), "final checkpoint written"));

    start_at(f, cst_ms(2027, 1, 1, 8, 30), NULL, true);
    const int64_t after[NCOLUMNS] = {0, 8, 8, 8, 0, 0, 0, 0, 8};
    expect_snapshot(f, after, "started on 1 January");
    expect_period(f, "2027", 0);
    expect_period(f, "2027-Q1", 0);
    expect_period(f, "2027-01", 0);
    expect_period(f, "2027-01-01", 0);
    expect_period(f, "2026", 8);
    expect_period(f, "2026-12-31", 8);
    const int64_t days[] = {8, 0};
    expect_days(f, "2026-12-31", "2027-01-01", days, 2);
}

/* 2. A restart later the same day: the figure of two hours ago is out of
 * the 1h window at once, and still in every other column. */
static void test_sigterm_same_day(void **state)
{
    fx_t *f = *state;
    start_at(f, cst_ms(2027, 3, 10, 10, 0), NULL, false);
    submit(f, daemon_now(f), 5);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);

    start_at(f, cst_ms(2027, 3, 10, 12, 0), NULL, true);
    const int64_t after[NCOLUMNS] = {0, 5, 5, 5, 5, 5, 5, 5, 5};
    expect_snapshot(f, after, "started two hours later");
    expect_period(f, "2027-03-10", 5);
    expect_period(f, "2027", 5);
}

/* 3. SIGKILL after a checkpoint with journal records after it, across
 * the year end: 5 at 21:00 (in the checkpoint of a SIGTERM), then 3 at
 * 23:40 and a late 2 stamped 30 December at noon (in the journal only),
 * killed, started at 00:20 on 1 January.  The records replayed land by
 * their event times: the 3 in 1h, the 5 and the 3 in 24h, all in 7d. */
static void test_kill_journal_after_checkpoint(void **state)
{
    fx_t *f = *state;
    start_at(f, cst_ms(2026, 12, 31, 21, 0), NULL, false);
    submit(f, daemon_now(f), 5);
    assert_int_equal(harness_stop(&f->h, SIGTERM), 0);

    start_at(f, cst_ms(2026, 12, 31, 23, 40), NULL, true);
    submit(f, daemon_now(f), 3);
    submit(f, cst_ms(2026, 12, 30, 12, 0), 2);
    const int64_t before[NCOLUMNS] = {3, 8, 10, 10, 8, 10, 10, 10, 10};
    expect_snapshot(f, before, "before the kill");
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);

    start_at(f, cst_ms(2027, 1, 1, 0, 20), NULL, true);
    const int64_t after[NCOLUMNS] = {3, 8, 10, 10, 0, 0, 0, 0, 10};
    expect_snapshot(f, after, "started on 1 January");
    expect_period(f, "2027", 0);
    expect_period(f, "2027-01-01", 0);
    expect_period(f, "2026", 10);
    expect_period(f, "2026-12-31", 8);
    const int64_t days[] = {2, 8, 0};
    expect_days(f, "2026-12-30", "2027-01-01", days, 3);
}

/* 4. SIGKILL after a checkpoint that holds every record (one after each
 * record), so that the start replays nothing: 4 at 23:30 on 31 December,
 * started at 00:10 on 1 January.  Still in 1h (40 minutes ago), out of
 * today and the year. */
static void test_kill_checkpoint_only(void **state)
{
    fx_t *f = *state;
    start_at(f, cst_ms(2026, 12, 31, 23, 30), "[journal]\nsnapshot_every_records = 1\n", false);
    submit(f, daemon_now(f), 4);
    assert_int_equal(harness_wait_log(&f->h, "checkpoint written (", 10000), 0);
    assert_int_equal(harness_stop(&f->h, SIGKILL), 128 + SIGKILL);

    start_at(f, cst_ms(2027, 1, 1, 0, 10), NULL, true);
    const int64_t after[NCOLUMNS] = {4, 4, 4, 4, 0, 0, 0, 0, 4};
    expect_snapshot(f, after, "started on 1 January");
    expect_period(f, "2027", 0);
    expect_period(f, "2026-12-31", 4);
}

/* 5. A midnight passed while the daemon runs: 6 screened a second before
 * midnight on 14 March, then read 5 ms into the 15th.  The new day is
 * empty at once; the month, quarter and year keep the 6.  The daemon
 * starts 1.5 s before midnight, so that a tick timer running every second
 * from its start would come half a second from midnight either way: only
 * a tick at the boundary itself, or one the read makes, can have ended
 * the day by then. */
static void test_midnight_while_running(void **state)
{
    fx_t *f = *state;
    int64_t midnight = cst_ms(2027, 3, 15, 0, 0);
    start_at(f, midnight - 1500, NULL, false);
    submit(f, midnight - 1000, 6);
    int64_t wait_ms = midnight + 5 - daemon_now(f);
    if (wait_ms > 0)
        nanosleep(&(struct timespec){wait_ms / 1000, (long)(wait_ms % 1000) * 1000000}, NULL);
    const int64_t after[NCOLUMNS] = {6, 6, 6, 6, 0, 6, 6, 6, 6};
    expect_snapshot(f, after, "at midnight");
    expect_period(f, "2027-03-15", 0);
    expect_period(f, "2027-03", 6);
    expect_period(f, "2027", 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigterm_across_year_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_same_day, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_journal_after_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_checkpoint_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_midnight_while_running, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
