/* Unit tests of the rolling-tally engine (engine.c, engine_read.c, window.c,
 * period.c), driven by a fake clock: overflow exactness, draining in rounds,
 * apply after check, the series limit, scale, and a brute-force model
 * compared column by column. The rest is in test_engine.c. */
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

/* ---- exactness ---- */

static void test_overflow_second_sample(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_at(&e, now);
    assert_int_equal(apply1(&e, 1, now, 1, INT64_MAX - 10), 0);
    drain(&e);
    engine_sample_t s[2] = {{2, 5}, {1, 11}};
    int32_t bad = -1;
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), TALLY_EOVERFLOW);
    assert_int_equal(bad, 1);
    engine_values_t v;
    assert_int_equal(engine_read(&e, 2, 1, &v), TALLY_ENOTFOUND);
    assert_int_equal(engine_read(&e, 2, 0, &v), TALLY_ENOTFOUND);
    assert_int_equal(engine_series_count(&e), 2);
    assert_int_equal(engine_dirty_count(&e), 0);
    static const int64_t same[9] = {INT64_MAX - 10, INT64_MAX - 10, INT64_MAX - 10,
                                    INT64_MAX - 10, INT64_MAX - 10, INT64_MAX - 10,
                                    INT64_MAX - 10, INT64_MAX - 10, INT64_MAX - 10};
    expect_all(&e, 1, 1, same);
    expect_all(&e, 1, 0, same);
    /* engine_check says the same without applying. */
    bad = -1;
    assert_int_equal(engine_check(&e, 1, now, s, 2, &bad), TALLY_EOVERFLOW);
    assert_int_equal(bad, 1);
    s[1].value = 10;
    assert_int_equal(engine_check(&e, 1, now, s, 2, &bad), 0);
    assert_int_equal(engine_series_count(&e), 2);
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), 0);
    EXPECT(&e, 1, 1, "total", INT64_MAX);
    EXPECT(&e, 2, 1, "total", 5);
    /* Every step counts, not only the net sum. */
    engine_sample_t steps[3] = {{1, -1}, {1, 1}, {1, 1}};
    assert_int_equal(engine_apply(&e, 1, now, steps, 3, &bad), TALLY_EOVERFLOW);
    assert_int_equal(bad, 2);
    engine_sample_t updown[2] = {{1, 1}, {1, -1}};
    assert_int_equal(engine_apply(&e, 1, now, updown, 2, &bad), TALLY_EOVERFLOW);
    assert_int_equal(bad, 0);
    EXPECT(&e, 1, 1, "total", INT64_MAX);
    engine_free(&e);
}

static void test_overflow_same_metric_twice(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_at(&e, now);
    engine_sample_t s[3] = {{3, INT64_MAX}, {3, 1}, {3, 0}};
    int32_t bad = -1;
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), TALLY_EOVERFLOW);
    assert_int_equal(bad, 1);
    assert_int_equal(engine_series_count(&e), 0);
    s[0].value = INT64_MIN;
    s[1].value = -1;
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), TALLY_EOVERFLOW);
    assert_int_equal(bad, 1);
    /* Down and back up within range is fine. */
    s[0].value = INT64_MAX;
    s[1].value = -5;
    s[2].value = 5;
    assert_int_equal(engine_apply(&e, 1, now, s, 3, &bad), 0);
    EXPECT(&e, 3, 1, "total", INT64_MAX);
    EXPECT(&e, 3, 0, "1h", INT64_MAX);

    /* The county overflows while the township would not. */
    assert_int_equal(apply1(&e, 1, now, 4, INT64_MAX), 0);
    assert_int_equal(apply1(&e, 2, now, 4, 1), TALLY_EOVERFLOW);
    assert_int_equal(engine_read(&e, 4, 2, &(engine_values_t){0}), TALLY_ENOTFOUND);

    /* A window would overflow while total would not: an old negative
     * sample is in total but no longer in "1h". */
    assert_int_equal(apply1(&e, 1, now - 2 * DAY_MS, 5, -10), 0);
    assert_int_equal(apply1(&e, 1, now, 5, INT64_MAX), 0);
    EXPECT(&e, 5, 1, "total", INT64_MAX - 10);
    assert_int_equal(apply1(&e, 1, now, 5, 1), TALLY_EOVERFLOW);
    EXPECT(&e, 5, 1, "total", INT64_MAX - 10);
    EXPECT(&e, 5, 1, "1h", INT64_MAX);
    /* And the other way: a window sum that left int64 after a negative
     * bucket expired reads "no value" instead of a wrong number. */
    assert_int_equal(apply1(&e, 1, now - 59 * MIN_MS, 6, -10), 0);
    assert_int_equal(apply1(&e, 1, now, 6, INT64_MAX), 0);
    assert_int_equal(apply1(&e, 1, now, 6, 5), TALLY_EOVERFLOW); /* its bucket */
    assert_int_equal(apply1(&e, 1, now - 30 * MIN_MS, 6, 5), 0);
    EXPECT(&e, 6, 1, "1h", INT64_MAX - 5);
    drain(&e);
    fake_ms = now + 2 * MIN_MS;
    engine_tick(&e, fake_ms);
    EXPECT_NONE(&e, 6, 1, "1h");
    EXPECT(&e, 6, 1, "24h", INT64_MAX - 5);
    EXPECT(&e, 6, 1, "total", INT64_MAX - 5);
    assert_int_equal(drain(&e), 2);
    assert_int_equal(count_item(6, 1), 1);
    /* Until it is back in range, only samples that bring it back fit. */
    assert_int_equal(apply1(&e, 1, fake_ms, 6, 0), TALLY_EOVERFLOW);
    assert_int_equal(apply1(&e, 1, fake_ms, 6, -5), 0);
    EXPECT(&e, 6, 1, "1h", INT64_MAX);
    EXPECT(&e, 6, 1, "total", INT64_MAX - 10);

    /* Gauges: the county sum is checked too. */
    assert_int_equal(engine_define_metric(&e, 7, PROTO_KIND_GAUGE), 0);
    assert_int_equal(apply1(&e, 1, fake_ms, 7, INT64_MAX), 0);
    assert_int_equal(apply1(&e, 2, fake_ms, 7, 1), TALLY_EOVERFLOW);
    assert_int_equal(apply1(&e, 2, fake_ms, 7, -1), 0);
    EXPECT(&e, 7, 0, "total", INT64_MAX - 1);
    /* Replacing MAX by MIN moves the county by more than any int64, yet
     * the result is exact or refused. */
    assert_int_equal(apply1(&e, 1, fake_ms, 7, INT64_MIN), TALLY_EOVERFLOW);
    assert_int_equal(apply1(&e, 1, fake_ms, 7, INT64_MIN + 1), 0);
    EXPECT(&e, 7, 0, "total", INT64_MIN);
    EXPECT(&e, 7, 1, "total", INT64_MIN + 1);
    engine_free(&e);
}

/* The overflow check starts from a bound kept per series (the sum of the
 * magnitudes applied) and reads the cells only when a sample leaves it:
 * what it accepts and rejects must not depend on that shortcut. */
static void test_overflow_past_the_mass_bound(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_at(&e, now);
    /* Up and down again: every cell is 0, but the series has seen
     * INT64_MAX - 1 of change, which leaves the bound only 1 of room. */
    assert_int_equal(apply1(&e, 1, now, 3, INT64_MAX / 2), 0);
    assert_int_equal(apply1(&e, 1, now, 3, -(INT64_MAX / 2)), 0);
    EXPECT(&e, 3, 1, "total", 0);
    assert_int_equal(apply1(&e, 1, now, 3, INT64_MAX - 7), 0);
    EXPECT(&e, 3, 1, "total", INT64_MAX - 7);
    EXPECT(&e, 3, 0, "1h", INT64_MAX - 7);
    assert_int_equal(apply1(&e, 1, now, 3, 8), TALLY_EOVERFLOW);
    assert_int_equal(apply1(&e, 1, now, 3, 7), 0);
    EXPECT(&e, 3, 1, "total", INT64_MAX);
    /* Saturated: still exact, both ways. */
    assert_int_equal(apply1(&e, 1, now, 3, INT64_MIN), 0);
    EXPECT(&e, 3, 1, "total", -1);
    assert_int_equal(apply1(&e, 1, now, 3, INT64_MIN), TALLY_EOVERFLOW);
    assert_int_equal(apply1(&e, 1, now, 3, INT64_MIN + 1), 0);
    EXPECT(&e, 3, 1, "today", INT64_MIN);
    assert_int_equal(apply1(&e, 1, now, 3, 5), 0);
    EXPECT(&e, 3, 1, "today", INT64_MIN + 5);

    /* Within one batch: the running sum leaves the bound halfway. */
    assert_int_equal(apply1(&e, 2, now, 4, INT64_MAX / 4), 0);
    engine_sample_t s[3] = {{4, INT64_MAX / 2}, {4, INT64_MAX / 4}, {4, -(INT64_MAX / 2)}};
    int32_t bad = -1;
    assert_int_equal(engine_apply(&e, 2, now, s, 3, &bad), 0);
    EXPECT(&e, 4, 2, "total", 2 * (INT64_MAX / 4));
    s[0].value = INT64_MAX / 2 + 3;
    assert_int_equal(engine_apply(&e, 2, now, s, 3, &bad), TALLY_EOVERFLOW);
    assert_int_equal(bad, 0);
    /* Halfway at INT64_MAX - 1, then back. */
    s[0].value = INT64_MAX / 2 + 1;
    s[1].value = -(INT64_MAX / 2);
    assert_int_equal(engine_apply(&e, 2, now, s, 2, &bad), 0);
    EXPECT(&e, 4, 2, "total", 2 * (INT64_MAX / 4) + 1);
    engine_free(&e);
}

/* Draining in rounds: oldest mark first, at most max series per call, and
 * a series marked again goes behind the ones still waiting.  With state
 * set, max_series is the 4 series used, so the queue of dirty series is
 * exactly that long and the second mark finds its end taken (the ids
 * still waiting move to its front). */
static void test_drain_in_rounds(void **state)
{
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    engine_config_t cfg;
    engine_config_default(&cfg);
    if (*state != NULL)
        cfg.max_series = 4;
    init_cfg(&e, &cfg, now);
    for (uint32_t t = 1; t <= 3; t++) {
        assert_int_equal(apply1(&e, t, now, 5, 1), 0); /* marks (5, t), then (5, 0) */
    }
    assert_int_equal(engine_dirty_count(&e), 4);
    drained.n = 0;
    assert_int_equal(engine_drain_dirty(&e, 2, collect, &drained), 2);
    assert_int_equal(drained.n, 2);
    assert_int_equal(drained.items[0].town, 1);
    assert_int_equal(drained.items[1].town, 0);
    /* (5, 1) again: behind (5, 2) and (5, 3); (5, 0) too. */
    assert_int_equal(apply1(&e, 1, now, 5, 1), 0);
    drained.n = 0;
    assert_int_equal(engine_drain_dirty(&e, 3, collect, &drained), 1);
    assert_int_equal(drained.n, 3);
    assert_int_equal(drained.items[0].town, 2);
    assert_int_equal(drained.items[1].town, 3);
    assert_int_equal(drained.items[2].town, 1);
    drained.n = 0;
    assert_int_equal(engine_drain_dirty(&e, 3, collect, &drained), 0);
    assert_int_equal(drained.n, 1);
    assert_int_equal(drained.items[0].town, 0);
    assert_int_equal(engine_drain_dirty(&e, 3, collect, &drained), 0);
    assert_int_equal(drained.n, 1);
    engine_free(&e);
}

/* engine_apply() after engine_check() of the same batch reuses the check's
 * plan; anything in between that could change the outcome must not let it:
 * other contents at the same address, another batch, time moving on. */
static void test_apply_after_check(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_at(&e, now);
    engine_sample_t s[2] = {{3, 5}, {4, 7}};
    int32_t bad = 99;
    /* The plain case, creating four series. */
    assert_int_equal(engine_check(&e, 1, now, s, 2, &bad), 0);
    assert_int_equal(engine_series_count(&e), 0);
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), 0);
    assert_int_equal(engine_series_count(&e), 4);
    EXPECT(&e, 3, 1, "total", 5);
    EXPECT(&e, 4, 0, "1h", 7);
    /* Same address, other contents: the new contents count. */
    assert_int_equal(engine_check(&e, 1, now, s, 2, &bad), 0);
    s[1] = (engine_sample_t){5, 11};
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), 0);
    EXPECT(&e, 3, 1, "total", 10);
    EXPECT(&e, 4, 1, "total", 7);
    EXPECT(&e, 5, 1, "total", 11);
    /* Another batch applied in between brings the total to the edge: the
     * checked batch no longer fits. */
    engine_sample_t big = {3, INT64_MAX - 12};
    assert_int_equal(engine_check(&e, 2, now, s, 2, &bad), 0);
    assert_int_equal(engine_apply(&e, 1, now, &big, 1, &bad), 0);
    assert_int_equal(engine_apply(&e, 2, now, s, 2, &bad), TALLY_EOVERFLOW);
    assert_int_equal(bad, 0);
    EXPECT(&e, 3, 0, "total", INT64_MAX - 2);
    /* Time moves on between check and apply: an hour later the sample is
     * out of "1h" and must not land in it. */
    engine_sample_t one = {6, 1};
    assert_int_equal(engine_check(&e, 1, now, &one, 1, &bad), 0);
    fake_ms = now + HOUR_MS;
    assert_int_equal(engine_apply(&e, 1, now, &one, 1, &bad), 0);
    EXPECT(&e, 6, 1, "total", 1);
    EXPECT(&e, 6, 1, "24h", 1);
    EXPECT(&e, 6, 1, "1h", 0);
    engine_free(&e);
}

/* An engine of the default configuration holding at most max_series. */
static void init_limited(engine_t *e, uint32_t max_series, int64_t now)
{
    engine_config_t c;
    engine_config_default(&c);
    c.max_series = max_series;
    init_cfg(e, &c, now);
}

static void test_series_limit(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_limited(&e, 5, now);
    assert_int_equal(apply1(&e, 1, now, 1, 1), 0);
    assert_int_equal(engine_series_count(&e), 2); /* township and county */
    assert_int_equal(apply1(&e, 2, now, 1, 1), 0);
    assert_int_equal(engine_series_count(&e), 3);
    drain(&e);
    engine_sample_t s[3] = {{1, 1}, {2, 1}, {3, 1}};
    int32_t bad = -1;
    assert_int_equal(engine_apply(&e, 1, now, s, 3, &bad), TALLY_ESERIESLIMIT);
    assert_int_equal(bad, 2);
    assert_int_equal(engine_series_count(&e), 3);
    assert_int_equal(engine_dirty_count(&e), 0);
    assert_int_equal(engine_read(&e, 2, 1, &(engine_values_t){0}), TALLY_ENOTFOUND);
    EXPECT(&e, 1, 1, "total", 1);
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), 0);
    assert_int_equal(engine_series_count(&e), 5);
    EXPECT(&e, 1, 1, "total", 2);
    assert_int_equal(apply1(&e, 3, now, 1, 1), TALLY_ESERIESLIMIT);
    /* Existing series still take samples. */
    assert_int_equal(apply1(&e, 2, now, 2, 1), TALLY_ESERIESLIMIT);
    assert_int_equal(apply1(&e, 1, now, 2, 1), 0);
    EXPECT(&e, 2, 0, "total", 2);
    engine_free(&e);
}

/* max_series lowered below the series held (a reload, or a start with a
 * lower limit than the state's): the series held take samples, checked
 * or applied; only a new series is refused.  Raised again, far beyond
 * what the engine was first sized for, new series are created. */
static void test_series_limit_lowered(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_limited(&e, 6, now);
    engine_sample_t s[3] = {{1, 1}, {2, 1}, {3, 1}};
    int32_t bad = -1;
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), 0);
    assert_int_equal(engine_apply(&e, 2, now, s, 2, &bad), 0);
    assert_int_equal(engine_series_count(&e), 6);
    engine_set_max_series(&e, 2);
    assert_int_equal(engine_check(&e, 1, now, s, 2, &bad), 0);
    assert_int_equal(engine_apply(&e, 1, now, s, 2, &bad), 0);
    assert_int_equal(apply1(&e, 2, now, 2, 5), 0);
    EXPECT(&e, 1, 0, "total", 3);
    EXPECT(&e, 2, 0, "total", 8);
    /* A new series, alone or after series held in one batch. */
    assert_int_equal(apply1(&e, 3, now, 1, 1), TALLY_ESERIESLIMIT);
    assert_int_equal(engine_check(&e, 1, now, s, 3, &bad), TALLY_ESERIESLIMIT);
    assert_int_equal(bad, 2);
    assert_int_equal(engine_apply(&e, 1, now, s, 3, &bad), TALLY_ESERIESLIMIT);
    assert_int_equal(bad, 2);
    EXPECT(&e, 1, 0, "total", 3);
    assert_int_equal(engine_series_count(&e), 6);
    /* A batch accepted before the limit was lowered (the journal's)
     * creates its series beyond it. */
    assert_int_equal(engine_apply_accepted(&e, 3, now, s, 1, &bad), 0);
    assert_int_equal(engine_series_count(&e), 7);
    EXPECT(&e, 1, 3, "total", 1);
    assert_int_equal(apply1(&e, 3, now, 1, 1), 0);

    /* Raised far beyond the first sizing (chunks of series, windows and
     * periods all grow). */
    enum { TOWNS = 6000 };
    engine_set_max_series(&e, 3 * TOWNS + 3);
    for (uint32_t t = 1; t <= TOWNS; t++)
        assert_int_equal(engine_apply(&e, t, now, s, 3, &bad), 0);
    assert_int_equal(engine_series_count(&e), 3 * TOWNS + 3);
    EXPECT(&e, 3, 0, "total", TOWNS);
    EXPECT(&e, 1, TOWNS, "1h", 1);
    EXPECT(&e, 2, TOWNS - 1, "today", 1);
    EXPECT(&e, 1, 1, "total", 3);
    engine_free(&e);
}

/* ---- scale ---- */

static int count_items(void *ctx, const engine_item_t *it)
{
    (void)it;
    (*(uint32_t *)ctx)++;
    return 0;
}

typedef struct regions_seen {
    struct {
        const char *p;
        size_t len;
    } r[4096];
    size_t n, bytes;
} regions_seen_t;

static void note_region(void *ctx, void *p, size_t len)
{
    regions_seen_t *rs = ctx;
    assert_true(rs->n < sizeof(rs->r) / sizeof(rs->r[0]));
    assert_non_null(p);
    assert_true(len > 0);
    rs->r[rs->n].p = p;
    rs->r[rs->n++].len = len;
    rs->bytes += len;
}

static bool in_regions(const regions_seen_t *rs, const void *p, size_t len)
{
    for (size_t i = 0; i < rs->n; i++)
        if ((const char *)p >= rs->r[i].p && (const char *)p + len <= rs->r[i].p + rs->r[i].len)
            return true;
    return false;
}

/* engine_regions() tells of the engine's large blocks, as
 * memhint_unshare() needs them after a checkpoint's child: every series
 * header among them, and most of the memory the engine counts, no more. */
static void test_regions_cover_the_state(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_limited(&e, 100000, now);
    engine_sample_t s[20];
    for (uint32_t t = 1; t <= 500; t++) {
        for (uint32_t m = 0; m < 20; m++)
            s[m] = (engine_sample_t){m + 1, (int64_t)t};
        /* every fifth township a minute apart, so some rings go dense */
        for (int k = 0; k < (t % 5 == 0 ? 12 : 1); k++)
            assert_int_equal(engine_apply(&e, t, now - k * 5 * MIN_MS, s, 20, NULL), 0);
    }
    regions_seen_t *rs = calloc(1, sizeof(*rs));
    assert_non_null(rs);
    engine_regions(&e, note_region, rs);
    uint32_t n = engine_series_count(&e);
    assert_true(n >= 20 * 500);
    for (uint32_t sid = 0; sid < n; sid++)
        assert_true(in_regions(rs, engine_series_at(&e, sid), sizeof(engine_series_t)));
    size_t mem = engine_memory(&e);
    assert_true(rs->bytes <= mem);
    assert_true(rs->bytes >= mem / 2);
    free(rs);
    engine_free(&e);
}

static void test_many_series(void **state)
{
    (void)state;
    enum { METRICS = 100, TOWNS = 999 };
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_limited(&e, 200000, now);
    size_t mem0 = engine_memory(&e);
    engine_sample_t s[METRICS];
    for (uint32_t t = 1; t <= TOWNS; t++) {
        for (uint32_t m = 0; m < METRICS; m++) {
            s[m] = (engine_sample_t){m + 1, (int64_t)t};
        }
        assert_int_equal(engine_apply(&e, t, now, s, METRICS, NULL), 0);
    }
    uint32_t n = engine_series_count(&e);
    assert_int_equal(n, METRICS * (TOWNS + 1));
    size_t mem = engine_memory(&e);
    printf("engine: %u series in %zu bytes: %zu bytes per series (empty engine %zu bytes)\n", n,
           mem, mem / n, mem0);
    assert_true(mem / n <= 4096);
    EXPECT(&e, 1, 0, "total", (int64_t)TOWNS * (TOWNS + 1) / 2);
    EXPECT(&e, 100, 0, "1h", (int64_t)TOWNS * (TOWNS + 1) / 2);
    EXPECT(&e, 50, 777, "today", 777);
    uint32_t items = 0;
    engine_drain_dirty(&e, UINT32_MAX, count_items, &items);
    assert_int_equal(items, n);

    /* Throughput of the apply path on existing series (printed only). */
    int64_t t0 = clock_mono_ms();
    uint64_t samples = 0;
    for (int round = 0; round < 20; round++) {
        for (uint32_t t = 1; t <= TOWNS; t++) {
            assert_int_equal(engine_apply(&e, t, now, s, METRICS, NULL), 0);
            samples += METRICS;
        }
    }
    int64_t dt = clock_mono_ms() - t0;
    printf("engine: %llu samples applied in %lld ms (%.1f million/s, batches of %d)\n",
           (unsigned long long)samples, (long long)dt,
           dt > 0 ? (double)samples / (double)dt / 1000.0 : 0.0, METRICS);
    EXPECT(&e, 1, 1, "total", 1 + 20 * TOWNS);

    /* Prefetching (a hint) changes nothing, for series there or not. */
    for (uint32_t t = 0; t <= TOWNS + 5; t++) {
        for (int stage = 0; stage < 3; stage++) {
            engine_prefetch(&e, t, s, METRICS, stage);
        }
    }
    EXPECT(&e, 1, 1, "total", 1 + 20 * TOWNS);
    EXPECT(&e, 50, 777, "today", 777 + 20 * TOWNS);
    items = 0;
    engine_drain_dirty(&e, UINT32_MAX, count_items, &items);
    assert_int_equal(items, n);

    /* Ticks with nothing to expire report nothing. */
    for (int i = 1; i <= 50; i++) {
        engine_tick(&e, now + i);
    }
    assert_int_equal(engine_dirty_count(&e), 0);
    /* An hour later every series' "1h" changed. */
    t0 = clock_mono_ms();
    engine_tick(&e, now + HOUR_MS);
    dt = clock_mono_ms() - t0;
    printf("engine: tick expiring %u series took %lld ms\n", n, (long long)dt);
    assert_int_equal(engine_dirty_count(&e), n);
    EXPECT(&e, 1, 0, "1h", 0);
    EXPECT(&e, 1, 0, "24h", (int64_t)TOWNS * (TOWNS + 1) / 2 + 20 * TOWNS * TOWNS);
    items = 0;
    engine_drain_dirty(&e, UINT32_MAX, count_items, &items);
    assert_int_equal(items, n);
    items = 0;
    assert_int_equal(engine_foreach(&e, count_items, &items), 0);
    assert_int_equal(items, n);
    engine_free(&e);
}

/* ---- a brute-force model, compared column by column ---- */

#define MODEL_TOWNS   3
#define MODEL_METRICS 3 /* 1 and 2 counters, 3 a gauge */
#define MODEL_SAMPLES 3000

typedef struct msample {
    int64_t t, ins, v;
    int32_t ks[4], kins[4]; /* period keys of t and of the time of arrival */
} msample_t;

typedef struct model {
    int n;
    msample_t s[MODEL_SAMPLES];
    int64_t latest[MODEL_METRICS + 1][MODEL_TOWNS + 1];
    int64_t latest_t[MODEL_METRICS + 1][MODEL_TOWNS + 1];
    bool has[MODEL_METRICS + 1][MODEL_TOWNS + 1];
    uint32_t town[MODEL_SAMPLES], metric[MODEL_SAMPLES];
} model_t;

static model_t model;

/* Keys of the local (UTC+8) day, month, quarter, year of t, computed by
 * walking years and months rather than as period.c does. */
static void model_keys(int64_t t, int32_t key[4])
{
    int64_t local = t + 8 * HOUR_MS;
    int64_t days = local / DAY_MS - (local % DAY_MS < 0);
    int y = 1970;
    while (days_of(y + 1, 1, 1) <= days) {
        y++;
    }
    int m = 1;
    while (m < 12 && days_of(y, m + 1, 1) <= days) {
        m++;
    }
    key[0] = (int32_t)days;
    key[1] = y * 12 + m - 1;
    key[2] = y * 4 + (m - 1) / 3;
    key[3] = y;
}

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)((rng_state >> 33) % n);
}

static void model_columns(const engine_config_t *c, uint32_t metric, uint32_t town, int64_t now,
                          engine_values_t *out)
{
    uint32_t nw = c->nwindows;
    out->ncols = nw + 5;
    for (uint32_t i = 0; i < out->ncols; i++) {
        out->col[i].present = metric != 3;
        out->col[i].num = 0;
        out->col[i].den = 1;
    }
    if (metric == 3) {
        out->col[nw + 4].present = true;
        if (town != 0) {
            out->col[nw + 4].num = model.latest[3][town];
        } else {
            for (uint32_t t = 1; t <= MODEL_TOWNS; t++) {
                out->col[nw + 4].num += model.latest[3][t];
            }
        }
        return;
    }
    int32_t know[4];
    model_keys(now, know);
    for (int i = 0; i < model.n; i++) {
        const msample_t *s = &model.s[i];
        if (model.metric[i] != metric || (town != 0 && model.town[i] != town)) {
            continue;
        }
        for (uint32_t w = 0; w < nw; w++) {
            int64_t bw = c->windows[w].ms / c->buckets;
            int64_t teff = s->t < s->ins ? s->t : s->ins;
            if (teff / bw >= now / bw - (int64_t)c->buckets + 1) {
                out->col[w].num += s->v;
            }
        }
        for (int p = 0; p < 4; p++) {
            if (s->ks[p] == know[p] && s->ks[p] <= s->kins[p] + 1) {
                out->col[nw + p].num += s->v;
            }
        }
        out->col[nw + 4].num += s->v;
    }
}

static bool same_values(const engine_values_t *a, const engine_values_t *b)
{
    if (a->ncols != b->ncols) {
        return false;
    }
    for (uint32_t i = 0; i < a->ncols; i++) {
        if (a->col[i].present != b->col[i].present ||
            (a->col[i].present && a->col[i].num != b->col[i].num)) {
            return false;
        }
    }
    return true;
}

static void run_model(uint32_t buckets)
{
    engine_config_t c;
    engine_config_default(&c);
    static const char *names[4] = {"10m", "1h", "1d", "30d"};
    static const int64_t ms[4] = {10 * MIN_MS, HOUR_MS, DAY_MS, 30 * DAY_MS};
    for (int w = 0; w < 4; w++) {
        c.windows[w].name = names[w];
        c.windows[w].ms = ms[w];
    }
    c.buckets = buckets;
    engine_t e;
    int64_t now = cst(2023, 12, 20, 9, 0, 0, 0);
    init_cfg(&e, &c, now);
    assert_int_equal(engine_define_metric(&e, 3, PROTO_KIND_GAUGE), 0);
    memset(&model, 0, sizeof(model));
    static engine_values_t before[MODEL_METRICS + 1][MODEL_TOWNS + 1];
    for (int step = 0; step < 2500; step++) {
        uint32_t what = rnd(10);
        if (what < 6 && model.n < MODEL_SAMPLES) {
            uint32_t town = 1 + rnd(MODEL_TOWNS);
            uint32_t metric = 1 + rnd(MODEL_METRICS);
            int64_t t;
            uint32_t age = rnd(20);
            if (age < 10) {
                t = now - rnd(3600) * 1000; /* the last hour */
            } else if (age < 16) {
                t = now - (int64_t)rnd(45 * 24) * HOUR_MS - rnd(3600000);
            } else if (age < 19) {
                t = now + rnd(300000); /* clock skew */
            } else {
                t = now + (int64_t)rnd(3 * 24) * HOUR_MS; /* far ahead */
            }
            int64_t v = (int64_t)rnd(2001) - 1000;
            assert_int_equal(apply1(&e, town, t, metric, v), 0);
            if (metric == 3) {
                if (!model.has[3][town] || t >= model.latest_t[3][town]) {
                    model.latest[3][town] = v;
                    model.latest_t[3][town] = t;
                    model.has[3][town] = true;
                }
            } else {
                msample_t *sm = &model.s[model.n];
                sm->t = t;
                sm->ins = now;
                sm->v = v;
                model_keys(t, sm->ks);
                model_keys(now, sm->kins);
                model.town[model.n] = town;
                model.metric[model.n] = metric;
                model.n++;
            }
        } else {
            static const int64_t steps[] = {1000,    10000,       MIN_MS, 7 * MIN_MS,
                                            HOUR_MS, 5 * HOUR_MS, DAY_MS, 3 * DAY_MS};
            /* Everything read now is what the model said after the last
             * drain; a tick must report exactly the series that change. */
            drain(&e);
            for (uint32_t m = 1; m <= MODEL_METRICS; m++) {
                for (uint32_t t = 0; t <= MODEL_TOWNS; t++) {
                    if (engine_read(&e, m, t, &before[m][t]) != 0) {
                        before[m][t].ncols = 0;
                    }
                }
            }
            now += steps[rnd(8)] / (1 + rnd(4)) + rnd(1000);
            fake_ms = now;
            engine_tick(&e, now);
            drain(&e);
            for (uint32_t m = 1; m <= MODEL_METRICS; m++) {
                for (uint32_t t = 0; t <= MODEL_TOWNS; t++) {
                    engine_values_t got;
                    if (engine_read(&e, m, t, &got) != 0) {
                        continue;
                    }
                    bool changed = !same_values(&got, &before[m][t]);
                    assert_int_equal(count_item(m, t), changed ? 1 : 0);
                }
            }
        }
        if (step % 7 == 0 || step > 2400) {
            for (uint32_t m = 1; m <= MODEL_METRICS; m++) {
                for (uint32_t t = 0; t <= MODEL_TOWNS; t++) {
                    engine_values_t got, want;
                    if (engine_read(&e, m, t, &got) != 0) {
                        continue;
                    }
                    model_columns(&c, m, t, now, &want);
                    for (uint32_t i = 0; i < want.ncols; i++) {
                        if (got.col[i].present != want.col[i].present ||
                            got.col[i].num != want.col[i].num) {
                            fail_msg("buckets %u step %d metric %u town %u column %s: got "
                                     "%lld, want %lld",
                                     buckets, step, m, t, engine_column_name(&e, i),
                                     (long long)got.col[i].num, (long long)want.col[i].num);
                        }
                    }
                }
            }
        }
    }
    engine_free(&e);
}

static void test_model(void **state)
{
    (void)state;
    static const uint32_t buckets[] = {60, 1, 3, 64, 100, 200};
    for (size_t i = 0; i < sizeof(buckets) / sizeof(buckets[0]); i++) {
        run_model(buckets[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_second_sample),
        cmocka_unit_test(test_overflow_same_metric_twice),
        cmocka_unit_test(test_overflow_past_the_mass_bound),
        cmocka_unit_test_prestate(test_drain_in_rounds, NULL),
        cmocka_unit_test_prestate(test_drain_in_rounds, "a queue of 4"),
        cmocka_unit_test(test_apply_after_check),
        cmocka_unit_test(test_series_limit),
        cmocka_unit_test(test_series_limit_lowered),
        cmocka_unit_test(test_many_series),
        cmocka_unit_test(test_regions_cover_the_state),
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
