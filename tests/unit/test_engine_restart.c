/* Unit tests of the tally engine across a restart (engine.c,
 * engine_persist.c), driven by a fake clock: an engine saved at a
 * checkpoint, loaded later, given the journal's records and moved to the
 * clock's now with one engine_tick() (what tallyd does at start-up,
 * tallyd_start.c) holds exactly what an engine that ran through the
 * downtime holds, ticking at every bucket boundary and midnight: the same
 * values in every column of every series, and the series whose values
 * changed are the dirty ones, as at a live midnight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"
#include "engine_test_util.h"
#include "tally_error.h"

#define M_GAUGE 3 /* metrics 1 and 2 are counters */

/* A submission: when it arrives (ms from the checkpoint), its event time
 * (ms from its arrival), township, metric, value. */
typedef struct sub {
    int64_t arrive, stamp;
    uint32_t town, metric;
    int64_t value;
} sub_t;

/* Before the checkpoint: recent and older figures, a late one, one
 * stamped a few minutes ahead (within the clock skew: across a midnight
 * it goes to the next day), a negative correction, gauges. */
static const sub_t before[] = {
    {-47 * HOUR_MS, 0, 1, 1, 7},
    {-40 * HOUR_MS, -30 * DAY_MS, 3, 2, 4},
    {-25 * HOUR_MS, -2 * HOUR_MS, 2, 1, 3},
    {-5 * HOUR_MS, 0, 1, M_GAUGE, 100},
    {-3 * HOUR_MS, 0, 1, 2, 11},
    {-90 * MIN_MS, 0, 3, 1, -2},
    {-HOUR_MS, 0, 2, M_GAUGE, 50},
    {-50 * MIN_MS, 0, 2, 1, 5},
    {-10 * MIN_MS, 0, 1, 1, 8},
    {-2 * MIN_MS, 4 * MIN_MS, 2, 2, 6},
    {-MIN_MS, 0, 3, 1, 1},
};

/* After it, in the journal only: a figure, a late one, a gauge, a new
 * series. */
static const sub_t journal[] = {
    {3 * MIN_MS, 0, 1, 1, 2},
    {4 * MIN_MS, -26 * HOUR_MS, 3, 2, 9},
    {5 * MIN_MS, 0, 1, M_GAUGE, 120},
    {6 * MIN_MS, -MIN_MS, 2, 2, 13},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void apply_sub(engine_t *e, int64_t t0, const sub_t *s)
{
    engine_sample_t smp = {s->metric, s->value};
    int32_t bad = 0;
    int64_t at = t0 + s->arrive;
    fake_ms = at;
    assert_int_equal(engine_apply_accepted(e, s->town, at + s->stamp, &smp, 1, &bad), 0);
}

typedef struct mem {
    uint8_t *p;
    size_t n;
} mem_t;

static int to_mem(void *ctx, const void *buf, size_t len)
{
    mem_t *m = ctx;
    m->p = realloc(m->p, m->n + len);
    assert_non_null(m->p);
    memcpy(m->p + m->n, buf, len);
    m->n += len;
    return 0;
}

/* Move e's now to until the way a live daemon does: a tick at every time
 * a value may change (engine_next_tick_ms), then at until. */
static void run_live(engine_t *e, int64_t until)
{
    for (int64_t t = engine_next_tick_ms(e); t <= until; t = engine_next_tick_ms(e)) {
        fake_ms = t;
        engine_tick(e, t);
    }
    fake_ms = until;
    engine_tick(e, until);
}

/* Every series of e reads as in other, column by column. */
static void expect_same(const engine_t *e, const engine_t *other, const char *what)
{
    assert_int_equal(engine_series_count(e), engine_series_count(other));
    for (uint32_t m = 1; m <= M_GAUGE; m++) {
        for (uint32_t t = 0; t <= 3; t++) {
            engine_values_t a, b;
            int ra = engine_read(e, m, t, &a), rb = engine_read(other, m, t, &b);
            assert_int_equal(ra, rb);
            if (ra != 0) {
                continue;
            }
            assert_int_equal(a.ncols, b.ncols);
            for (uint32_t i = 0; i < a.ncols; i++) {
                if (a.col[i].present != b.col[i].present || a.col[i].num != b.col[i].num) {
                    fail_msg("%s: metric %u town %u %s: restarted %s%lld, ran through %s%lld", what,
                             m, t, engine_column_name(e, i), a.col[i].present ? "" : "(none) ",
                             (long long)a.col[i].num, b.col[i].present ? "" : "(none) ",
                             (long long)b.col[i].num);
                }
            }
        }
    }
}

/* The checkpoint at t0, the journal's records (with_journal) arriving
 * after it, the daemon down until t2.  want is the county's metric 1 in
 * each column at t2, from the calendar (so that the comparison is not one
 * between two equally wrong engines). */
static void restart_case(int64_t t0, int64_t t2, bool with_journal, const int64_t want[9])
{
    engine_t live, up;
    init_at(&live, t0 - 3 * DAY_MS);
    assert_int_equal(engine_define_metric(&live, M_GAUGE, PROTO_KIND_GAUGE), 0);
    for (size_t i = 0; i < N(before); i++) {
        run_live(&live, t0 + before[i].arrive);
        apply_sub(&live, t0, &before[i]);
    }
    run_live(&live, t0);
    mem_t img = {NULL, 0};
    assert_int_equal(engine_save(&live, to_mem, &img), 0);
    for (size_t i = 0; with_journal && i < N(journal); i++) {
        run_live(&live, t0 + journal[i].arrive);
        apply_sub(&live, t0, &journal[i]);
    }
    run_live(&live, t2);
    drain(&live);

    /* The start: the engine made at the clock's now, the checkpoint loaded
     * (back at t0), the journal replayed with the clock at t2. */
    init_at(&up, t2);
    assert_int_equal(engine_define_metric(&up, M_GAUGE, PROTO_KIND_GAUGE), 0);
    char err[256];
    assert_int_equal(engine_load(&up, img.p, img.n, err, sizeof(err)), 0);
    free(img.p);
    assert_int_equal(engine_now_ms(&up), t0);
    assert_int_equal(engine_dirty_count(&up), 0);
    /* Values before the catch-up, to see which change. */
    static engine_values_t was[M_GAUGE + 1][4];
    for (uint32_t m = 1; m <= M_GAUGE; m++) {
        for (uint32_t t = 0; t <= 3; t++) {
            if (engine_read(&up, m, t, &was[m][t]) != 0) {
                was[m][t].ncols = 0;
            }
        }
    }
    for (size_t i = 0; with_journal && i < N(journal); i++) {
        engine_sample_t smp = {journal[i].metric, journal[i].value};
        fake_ms = t2;
        assert_int_equal(engine_apply_accepted(&up, journal[i].town,
                                               t0 + journal[i].arrive + journal[i].stamp, &smp, 1,
                                               NULL),
                         0);
    }
    fake_ms = t2;
    engine_tick(&up, t2);
    assert_int_equal(engine_now_ms(&up), t2);
    expect_same(&up, &live, with_journal ? "with the journal" : "checkpoint only");
    expect_all(&up, 1, 0, want);

    /* Without records replayed, the series marked dirty are exactly those
     * whose value the downtime changed, each once. */
    drain(&up);
    for (uint32_t m = 1; m <= M_GAUGE && !with_journal; m++) {
        for (uint32_t t = 0; t <= 3; t++) {
            engine_values_t now;
            if (engine_read(&up, m, t, &now) != 0) {
                continue;
            }
            bool changed = false;
            for (uint32_t i = 0; i < now.ncols; i++) {
                changed |= now.col[i].present != was[m][t].col[i].present ||
                           now.col[i].num != was[m][t].col[i].num;
            }
            if (count_item(m, t) != (changed ? 1 : 0)) {
                fail_msg("metric %u town %u: %s, reported %d times", m, t,
                         changed ? "changed" : "unchanged", count_item(m, t));
            }
        }
    }
    engine_free(&live);
    engine_free(&up);
}

/* County, metric 1, stamped before the checkpoint at t0: 7 (t0 - 47 h),
 * 3 (t0 - 27 h), -2 (t0 - 90 min), 5 (t0 - 50 min), 8 (t0 - 10 min), 1
 * (t0 - 1 min); in the journal 2 more (t0 + 3 min). */

/* 1. Stopped at 23:58 on 31 December, started at 08:30 on 1 January:
 * the day, month, quarter and year begin again (metric 2's figure
 * stamped 00:00, within the skew, goes into them), the 1h window is
 * empty, the 24h one keeps what is younger than a day. */
static void test_across_year_end(void **state)
{
    (void)state;
    int64_t t0 = cst(2026, 12, 31, 23, 58, 0, 0), t2 = cst(2027, 1, 1, 8, 30, 0, 0);
    static const int64_t plain[9] = {0, 12, 22, 22, 0, 0, 0, 0, 22};
    static const int64_t replayed[9] = {0, 14, 24, 24, 2, 2, 2, 2, 24};
    restart_case(t0, t2, false, plain);
    restart_case(t0, t2, true, replayed);
}

/* 2. Two hours later the same day: out of the 1h window only. */
static void test_same_day(void **state)
{
    (void)state;
    int64_t t0 = cst(2027, 3, 10, 10, 0, 0, 0), t2 = cst(2027, 3, 10, 12, 0, 0, 0);
    static const int64_t plain[9] = {0, 12, 22, 22, 12, 22, 22, 22, 22};
    static const int64_t replayed[9] = {0, 14, 24, 24, 14, 24, 24, 24, 24};
    restart_case(t0, t2, false, plain);
    restart_case(t0, t2, true, replayed);
}

/* 3. Forty days down, from the last minute of March: every window and
 * every period but the year emptied, except that the journal's figure of
 * 1 April stays in the second quarter. */
static void test_forty_days(void **state)
{
    (void)state;
    int64_t t0 = cst(2027, 3, 31, 23, 59, 0, 0), t2 = cst(2027, 5, 10, 9, 0, 0, 0);
    static const int64_t plain[9] = {0, 0, 0, 0, 0, 0, 0, 22, 22};
    static const int64_t replayed[9] = {0, 0, 0, 0, 0, 0, 2, 24, 24};
    restart_case(t0, t2, false, plain);
    restart_case(t0, t2, true, replayed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_across_year_end),
        cmocka_unit_test(test_same_day),
        cmocka_unit_test(test_forty_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
