/* Unit tests of the rolling-tally engine (engine.c, engine_read.c, window.c,
 * period.c), driven by a fake clock: columns, configuration, windows, the
 * calendar, gauges and ratios. Exactness, draining, limits, scale and the
 * brute-force model are in test_engine_model.c. */
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
#include "window.h"

/* ---- columns, config ---- */

static void test_columns_and_defaults(void **state)
{
    (void)state;
    engine_t e;
    init_at(&e, cst(2024, 5, 10, 12, 0, 0, 0));
    static const char *names[] = {"1h",    "24h",     "7d",   "30d",  "today",
                                  "month", "quarter", "year", "total"};
    assert_int_equal(engine_columns(&e), 9);
    for (uint32_t i = 0; i < 9; i++) {
        assert_string_equal(engine_column_name(&e, i), names[i]);
    }
    assert_null(engine_column_name(&e, 9));
    assert_int_equal(engine_series_count(&e), 0);
    assert_int_equal(engine_read(&e, 1, 1, &(engine_values_t){0}), TALLY_ENOTFOUND);
    engine_free(&e);
}

static void expect_bad_config(const engine_config_t *cfg, const char *needle)
{
    char msg[256];
    assert_int_equal(engine_config_check(cfg, msg, sizeof(msg)), TALLY_EINVAL);
    if (strstr(msg, needle) == NULL) {
        fail_msg("message '%s' does not name '%s'", msg, needle);
    }
    engine_t e;
    assert_int_equal(engine_init(&e, cfg, &fake_clock), TALLY_EINVAL);
}

static void test_config_invalid(void **state)
{
    (void)state;
    engine_config_t c;
    char msg[256];
    engine_config_default(&c);
    assert_int_equal(engine_config_check(&c, msg, sizeof(msg)), 0);
    assert_string_equal(msg, "");

    engine_config_default(&c);
    c.nwindows = ENGINE_WINDOWS_MAX + 1;
    expect_bad_config(&c, "windows: 12 windows exceed the limit of 11");
    engine_config_default(&c);
    c.buckets = 0;
    expect_bad_config(&c, "buckets: 0");
    c.buckets = ENGINE_BUCKETS_MAX + 1;
    expect_bad_config(&c, "buckets: 4097");
    engine_config_default(&c);
    c.windows[1].ms = 0;
    expect_bad_config(&c, "windows[1] '24h': width 0 ms");
    engine_config_default(&c);
    c.windows[0].ms = 3600001;
    expect_bad_config(&c, "not a multiple of buckets (60)");
    engine_config_default(&c);
    c.windows[2].name = "";
    expect_bad_config(&c, "windows[2].name");
    c.windows[2].name = NULL;
    expect_bad_config(&c, "windows[2].name");
    c.windows[2].name = "seventeen-bytes!!";
    expect_bad_config(&c, "17 bytes");
    c.windows[2].name = "today";
    expect_bad_config(&c, "calendar column");
    c.windows[2].name = "total";
    expect_bad_config(&c, "calendar column");
    c.windows[2].name = "1h";
    expect_bad_config(&c, "already the name of windows[0]");
    engine_config_default(&c);
    c.zone = "Mars/Olympus_Mons";
    expect_bad_config(&c, "zone: 'Mars/Olympus_Mons'");
    c.zone = "../../etc/passwd";
    expect_bad_config(&c, "zone");
    c.zone = "";
    expect_bad_config(&c, "zone");
    engine_config_default(&c);
    c.max_series = 0;
    expect_bad_config(&c, "max_series: 0");

    /* The largest valid shapes: 11 windows make 16 columns; no windows
     * leaves the calendar and total. */
    static char names[ENGINE_WINDOWS_MAX][16];
    engine_config_default(&c);
    c.nwindows = ENGINE_WINDOWS_MAX;
    for (uint32_t w = 0; w < c.nwindows; w++) {
        snprintf(names[w], sizeof(names[w]), "w%u", w + 1);
        c.windows[w].name = names[w];
        c.windows[w].ms = (w + 1) * HOUR_MS;
    }
    engine_t e;
    init_cfg(&e, &c, cst(2024, 5, 10, 12, 0, 0, 0));
    assert_int_equal(engine_columns(&e), PROTO_COLUMNS_MAX);
    assert_string_equal(engine_column_name(&e, 10), "w11");
    assert_string_equal(engine_column_name(&e, 15), "total");
    engine_free(&e);
    c.nwindows = 0;
    init_cfg(&e, &c, cst(2024, 5, 10, 12, 0, 0, 0));
    assert_int_equal(engine_columns(&e), 5);
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 4), 0);
    /* a node without windows: fetching ahead has only periods to ask for */
    engine_sample_t smp = {1, 4};
    for (int stage = 0; stage < 3; stage++) {
        engine_prefetch(&e, 1, &smp, 1, stage);
    }
    EXPECT(&e, 1, 1, "today", 4);
    EXPECT(&e, 1, 0, "total", 4);
    engine_free(&e);
}

static void test_bad_batches(void **state)
{
    (void)state;
    engine_t e;
    init_at(&e, cst(2024, 5, 10, 12, 0, 0, 0));
    engine_sample_t s[2] = {{1, 1}, {0, 1}};
    int32_t bad = 7;
    assert_int_equal(engine_apply(&e, 1, fake_ms, s, 0, &bad), TALLY_EEMPTY);
    assert_int_equal(bad, -1);
    assert_int_equal(engine_apply(&e, 1, fake_ms, s, ENGINE_BATCH_MAX + 1, &bad), TALLY_ETOOMANY);
    assert_int_equal(engine_apply(&e, 0, fake_ms, s, 1, &bad), TALLY_EINVAL);
    assert_int_equal(bad, -1);
    assert_int_equal(engine_apply(&e, 1, fake_ms, s, 2, &bad), TALLY_EINVAL);
    assert_int_equal(bad, 1);
    assert_int_equal(engine_apply(&e, 1, PROTO_TIME_MIN - 1, s, 1, &bad), TALLY_ERANGE);
    assert_int_equal(bad, -1);
    assert_int_equal(engine_apply(&e, 1, PROTO_TIME_MAX, s, 1, NULL), TALLY_ERANGE);
    assert_int_equal(engine_series_count(&e), 0);
    assert_int_equal(engine_dirty_count(&e), 0);
    engine_free(&e);
}

/* ---- windows ---- */

static void test_window_rolloff(void **state)
{
    (void)state;
    engine_t e;
    int64_t t0 = cst(2024, 5, 10, 10, 0, 30, 0);
    init_at(&e, t0);
    assert_int_equal(apply1(&e, 1, t0, 1, 5), 0);
    static const int64_t all5[9] = {5, 5, 5, 5, 5, 5, 5, 5, 5};
    expect_all(&e, 1, 1, all5);
    expect_all(&e, 1, 0, all5);
    assert_int_equal(drain(&e), 2);
    assert_int_equal(count_item(1, 1), 1);
    assert_int_equal(count_item(1, 0), 1);
    assert_int_equal(drained.items[0].kind, PROTO_KIND_COUNTER);
    assert_int_equal(drained.items[0].change_ms, t0);
    assert_int_equal(drain(&e), 0);

    /* 59 minutes later the sample is still in the last hour. */
    fake_ms = t0 + 59 * MIN_MS;
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 1, "1h", 5);
    assert_int_equal(drain(&e), 0);
    assert_int_equal(engine_next_tick_ms(&e), cst(2024, 5, 10, 11, 0, 0, 0));

    /* An hour later it has left "1h" but nothing else; the tick alone
     * marks both series changed. */
    fake_ms = t0 + 60 * MIN_MS;
    engine_tick(&e, fake_ms);
    static const int64_t gone1h[9] = {0, 5, 5, 5, 5, 5, 5, 5, 5};
    expect_all(&e, 1, 1, gone1h);
    expect_all(&e, 1, 0, gone1h);
    assert_int_equal(drain(&e), 2);
    assert_int_equal(count_item(1, 1), 1);
    assert_int_equal(count_item(1, 0), 1);
    assert_int_equal(drained.items[0].change_ms, fake_ms);

    /* A tick going back in time changes nothing. */
    engine_tick(&e, t0);
    assert_int_equal(engine_now_ms(&e), fake_ms);
    EXPECT(&e, 1, 1, "1h", 0);

    /* 40 days on, only the periods still holding it and total remain. */
    fake_ms = cst(2024, 6, 19, 10, 0, 0, 0);
    engine_tick(&e, fake_ms);
    static const int64_t later[9] = {0, 0, 0, 0, 0, 0, 5, 5, 5};
    expect_all(&e, 1, 1, later);
    assert_int_equal(drain(&e), 2);
    engine_free(&e);
}

/* Samples out of order: the wheel must relist a series under its oldest
 * bucket, or the early bucket would never leave the window. */
static void test_window_out_of_order(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_at(&e, now);
    assert_int_equal(apply1(&e, 3, now - 10 * MIN_MS, 1, 1), 0);
    assert_int_equal(apply1(&e, 3, now - 50 * MIN_MS, 1, 10), 0);
    assert_int_equal(apply1(&e, 3, now, 1, 100), 0);
    assert_int_equal(apply1(&e, 3, now - 70 * MIN_MS, 1, 1000), 0); /* older than 1h */
    /* From the future (clock skew): counted in the current bucket. */
    assert_int_equal(apply1(&e, 3, now + 2 * MIN_MS, 1, 10000), 0);
    EXPECT(&e, 1, 3, "1h", 10111);
    EXPECT(&e, 1, 3, "24h", 11111);
    EXPECT(&e, 1, 3, "total", 11111);
    EXPECT(&e, 1, 0, "1h", 10111);
    drain(&e);

    fake_ms = cst(2024, 5, 10, 12, 10, 30, 0);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 3, "1h", 10101);
    assert_int_equal(drain(&e), 2);
    fake_ms = cst(2024, 5, 10, 12, 50, 30, 0);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 3, "1h", 10100);
    assert_int_equal(drain(&e), 2);
    fake_ms = cst(2024, 5, 10, 12, 59, 59, 999);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 3, "1h", 10100);
    assert_int_equal(drain(&e), 0);
    fake_ms = cst(2024, 5, 10, 13, 0, 0, 0);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 3, "1h", 0);
    EXPECT(&e, 1, 3, "24h", 11111);
    assert_int_equal(drain(&e), 2);

    /* Samples that cancel out leave a bucket whose expiry changes nothing:
     * no update is published for it. */
    assert_int_equal(apply1(&e, 3, fake_ms, 2, 5), 0);
    assert_int_equal(apply1(&e, 3, fake_ms, 2, -5), 0);
    drain(&e);
    fake_ms += HOUR_MS;
    engine_tick(&e, fake_ms);
    EXPECT(&e, 2, 3, "1h", 0);
    assert_int_equal(drain(&e), 0);
    engine_free(&e);
}

/* A window's buckets in the node (up to WINDOW_SPARSE), then in a dense
 * ring from the pool, and back when expiry leaves few enough: sums,
 * expiry in time order, out-of-order samples and the checkpoint's list of
 * buckets stay exact through every change of representation. */
static int changes;
static void count_change(void *ctx, uint32_t node)
{
    (void)ctx;
    (void)node;
    changes++;
}

static void test_window_sparse_dense(void **state)
{
    (void)state;
    window_set_t ws;
    window_spec_t spec[1] = {{"10s", 10000}}; /* 10 buckets of 1 s */
    int64_t now = 1000000;
    assert_int_equal(window_set_init(&ws, spec, 1, 10, 4, now), 0);
    assert_int_equal(window_reserve(&ws, 2), 0);
    window_node_init(&ws, 0);
    window_node_init(&ws, 1);
    size_t quiet = window_memory(&ws);
    window_pos_t pos;
    int64_t v;
    uint32_t off[10];
    int64_t val[10];
    /* three buckets, one of them twice and out of order: still sparse */
    static const int64_t at[] = {-1500, -5500, -3500, -5200};
    for (int i = 0; i < 4; i++) {
        window_locate(&ws, now + at[i], &pos);
        window_add(&ws, 0, &pos, 10 + i);
    }
    assert_true(window_value(&ws, 0, 0, &v));
    assert_int_equal(v, 10 + 11 + 12 + 13);
    assert_int_equal(ws.ndfree, 0);
    assert_int_equal(window_memory(&ws), quiet); /* no ring taken */
    /* a fourth and fifth bucket: a dense ring, reserved beforehand */
    assert_int_equal(window_reserve_dense(&ws, 1), 0);
    uint32_t nfree = ws.ndfree;
    window_locate(&ws, now - 8500, &pos);
    window_add(&ws, 0, &pos, 100);
    window_locate(&ws, now, &pos);
    window_add(&ws, 0, &pos, 1000);
    assert_int_equal(ws.ndfree, nfree - 1);
    assert_true(window_value(&ws, 0, 0, &v));
    assert_int_equal(v, 1146);
    /* oldest first, as checkpoints store them: -8.5 s, -5.5 s (11 + 13),
     * -3.5 s, -1.5 s, now */
    assert_int_equal(window_buckets(&ws, 0, 0, off, val), 5);
    static const int64_t want[] = {100, 24, 12, 10, 1000};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(val[i], want[i]);
        assert_true(i == 0 || off[i] > off[i - 1]);
    }
    /* 4 s later the two oldest have left: 3 remain, the ring goes back */
    changes = 0;
    window_advance(&ws, now + 4000, count_change, NULL);
    assert_int_equal(changes, 1);
    assert_int_equal(ws.ndfree, nfree);
    assert_true(window_value(&ws, 0, 0, &v));
    assert_int_equal(v, 1022);
    assert_int_equal(window_buckets(&ws, 0, 0, off, val), 3);
    assert_int_equal(val[0], 12);
    assert_int_equal(val[2], 1000);
    /* the rest leave in time order (at +7 s the window starts 2 s before
     * now: -3.5 s has left, -1.5 s not yet), node 1 untouched throughout */
    window_advance(&ws, now + 7000, count_change, NULL);
    assert_true(window_value(&ws, 0, 0, &v));
    assert_int_equal(v, 1010);
    window_advance(&ws, now + 20000, count_change, NULL);
    assert_true(window_value(&ws, 0, 0, &v));
    assert_int_equal(v, 0);
    assert_true(window_value(&ws, 1, 0, &v));
    assert_int_equal(v, 0);
    assert_int_equal(changes, 3);

    /* Sparse buckets hold 32 bits: one bucket beyond int32 makes the
     * window dense however few buckets it has, and it goes back only once
     * every bucket left fits again. */
    now += 20000;
    assert_int_equal(window_reserve_dense(&ws, 1), 0);
    nfree = ws.ndfree;
    window_locate(&ws, now - 2500, &pos);
    window_add(&ws, 1, &pos, INT32_MAX);
    assert_int_equal(ws.ndfree, nfree); /* INT32_MAX itself still fits */
    window_add(&ws, 1, &pos, 1);
    assert_int_equal(ws.ndfree, nfree - 1);
    window_locate(&ws, now, &pos);
    window_add(&ws, 1, &pos, -5);
    assert_true(window_value(&ws, 1, 0, &v));
    assert_int_equal(v, (int64_t)INT32_MAX + 1 - 5);
    assert_int_equal(window_buckets(&ws, 1, 0, off, val), 2);
    assert_int_equal(val[0], (int64_t)INT32_MAX + 1);
    assert_int_equal(val[1], -5);
    /* the big bucket leaves: the ring goes back, the small one stays */
    window_advance(&ws, now + 8000, count_change, NULL);
    assert_int_equal(ws.ndfree, nfree);
    assert_true(window_value(&ws, 1, 0, &v));
    assert_int_equal(v, -5);
    /* a new sparse bucket below INT32_MIN on its own goes dense at once */
    window_locate(&ws, now + 8000, &pos);
    window_add(&ws, 1, &pos, (__int128)INT32_MIN - 1);
    assert_int_equal(ws.ndfree, nfree - 1);
    assert_true(window_value(&ws, 1, 0, &v));
    assert_int_equal(v, (int64_t)INT32_MIN - 1 - 5);
    window_set_free(&ws);
}

/* ---- calendar ---- */

static void test_day_of_shanghai(void **state)
{
    (void)state;
    engine_t e;
    init_at(&e, cst(2024, 1, 1, 0, 0, 0, 0)); /* sets TZ=Asia/Shanghai */
    /* 2023-12-31 23:59:59.999 +08:00 is 15:59:59.999Z, midnight 16:00Z. */
    int64_t before = cst(2023, 12, 31, 23, 59, 59, 999);
    int64_t after = cst(2024, 1, 1, 0, 0, 0, 0);
    assert_int_equal(before, 1704038399999LL);
    assert_int_equal(after, 1704038400000LL);
    period_day_t a, b;
    assert_int_equal(period_day_of(before, &a), 0);
    assert_int_equal(period_day_of(after, &b), 0);
    assert_int_equal(a.start_ms, cst(2023, 12, 31, 0, 0, 0, 0));
    assert_int_equal(a.end_ms, after);
    assert_int_equal(b.start_ms, after);
    assert_int_equal(b.end_ms, cst(2024, 1, 2, 0, 0, 0, 0));
    assert_int_equal(a.key[PERIOD_DAY], days_of(2023, 12, 31));
    assert_int_equal(b.key[PERIOD_DAY], days_of(2024, 1, 1));
    assert_int_equal(a.key[PERIOD_MONTH], 2023 * 12 + 11);
    assert_int_equal(b.key[PERIOD_MONTH], 2024 * 12 + 0);
    assert_int_equal(a.key[PERIOD_QUARTER], 2023 * 4 + 3);
    assert_int_equal(b.key[PERIOD_QUARTER], 2024 * 4 + 0);
    assert_int_equal(a.key[PERIOD_YEAR], 2023);
    assert_int_equal(b.key[PERIOD_YEAR], 2024);
    /* The leap day is a day of its own, of 24 hours. */
    period_day_t l;
    assert_int_equal(period_day_of(cst(2024, 2, 29, 12, 0, 0, 0), &l), 0);
    assert_int_equal(l.start_ms, cst(2024, 2, 29, 0, 0, 0, 0));
    assert_int_equal(l.end_ms - l.start_ms, DAY_MS);
    assert_int_equal(l.key[PERIOD_DAY], days_of(2024, 2, 29));
    assert_int_equal(l.key[PERIOD_MONTH], 2024 * 12 + 1);
    engine_free(&e);
}

static void test_midnight_year_end_by_samples(void **state)
{
    (void)state;
    engine_t e;
    int64_t t1 = cst(2023, 12, 31, 23, 59, 59, 999);
    int64_t t2 = cst(2024, 1, 1, 0, 0, 0, 0);
    init_at(&e, t1);
    assert_int_equal(apply1(&e, 1, t1, 1, 1), 0);
    static const int64_t first[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    expect_all(&e, 1, 1, first);
    fake_ms = t2;
    assert_int_equal(apply1(&e, 1, t2, 1, 10), 0);
    static const int64_t second[9] = {11, 11, 11, 11, 10, 10, 10, 10, 11};
    expect_all(&e, 1, 1, second);
    expect_all(&e, 1, 0, second);
    engine_free(&e);
}

/* Every calendar boundary of 2024 by ticks alone: "today" and friends
 * reset at local midnight without any input, and the series are marked. */
static void test_calendar_resets_on_tick(void **state)
{
    (void)state;
    engine_t e;
    init_at(&e, cst(2024, 5, 10, 23, 0, 0, 0));
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 7), 0);
    drain(&e);
    fake_ms = cst(2024, 5, 10, 23, 59, 59, 999);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 1, "today", 7);
    assert_int_equal(drain(&e), 0);
    assert_true(engine_next_tick_ms(&e) <= cst(2024, 5, 11, 0, 0, 0, 0));
    fake_ms = cst(2024, 5, 11, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 1, "today", 0);
    EXPECT(&e, 1, 0, "today", 0);
    EXPECT(&e, 1, 1, "month", 7);
    EXPECT(&e, 1, 1, "24h", 7);
    assert_int_equal(drain(&e), 2);

    /* Month end (May 31 -> June 1): today and month reset, quarter stays. */
    fake_ms = cst(2024, 5, 31, 23, 59, 59, 999);
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 3), 0);
    EXPECT(&e, 1, 1, "today", 3);
    EXPECT(&e, 1, 1, "month", 10);
    fake_ms = cst(2024, 6, 1, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    static const int64_t june[9] = {3, 3, 3, 10, 0, 0, 10, 10, 10};
    expect_all(&e, 1, 1, june);
    expect_all(&e, 1, 0, june);

    /* Quarter end (June 30 -> July 1). */
    fake_ms = cst(2024, 6, 30, 23, 59, 59, 999);
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 4), 0);
    EXPECT(&e, 1, 1, "quarter", 14);
    drain(&e);
    fake_ms = cst(2024, 7, 1, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    static const int64_t july[9] = {4, 4, 4, 4, 0, 0, 0, 14, 14};
    expect_all(&e, 1, 1, july);
    assert_int_equal(drain(&e), 2);

    /* Year end (Dec 31 -> Jan 1) after a long quiet stretch. */
    fake_ms = cst(2024, 12, 31, 23, 59, 59, 999);
    engine_tick(&e, fake_ms);
    static const int64_t quiet[9] = {0, 0, 0, 0, 0, 0, 0, 14, 14};
    expect_all(&e, 1, 1, quiet);
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 5), 0);
    EXPECT(&e, 1, 1, "year", 19);
    drain(&e);
    fake_ms = cst(2025, 1, 1, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    static const int64_t newyear[9] = {5, 5, 5, 5, 0, 0, 0, 0, 19};
    expect_all(&e, 1, 1, newyear);
    expect_all(&e, 1, 0, newyear);
    assert_int_equal(drain(&e), 2);
    engine_free(&e);
}

static void test_leap_day_and_quarter(void **state)
{
    (void)state;
    engine_t e;
    init_at(&e, cst(2024, 2, 28, 23, 59, 59, 999));
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 1), 0);
    fake_ms = cst(2024, 2, 29, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 1, "today", 0);
    EXPECT(&e, 1, 1, "month", 1);
    fake_ms = cst(2024, 2, 29, 12, 0, 0, 0);
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 2), 0);
    fake_ms = cst(2024, 2, 29, 23, 59, 59, 999);
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 4), 0);
    EXPECT(&e, 1, 1, "today", 6);
    EXPECT(&e, 1, 1, "month", 7);
    drain(&e);
    fake_ms = cst(2024, 3, 1, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 1, "today", 0);
    EXPECT(&e, 1, 1, "month", 0);
    EXPECT(&e, 1, 1, "quarter", 7);
    EXPECT(&e, 1, 1, "year", 7);
    assert_int_equal(drain(&e), 2);

    /* Quarter end in spring: March 31 -> April 1. */
    fake_ms = cst(2024, 3, 31, 23, 59, 59, 999);
    assert_int_equal(apply1(&e, 1, fake_ms, 1, 8), 0);
    EXPECT(&e, 1, 1, "quarter", 15);
    fake_ms = cst(2024, 4, 1, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 1, "today", 0);
    EXPECT(&e, 1, 1, "month", 0);
    EXPECT(&e, 1, 1, "quarter", 0);
    EXPECT(&e, 1, 1, "year", 15);
    EXPECT(&e, 1, 1, "1h", 8);
    engine_free(&e);
}

static void test_late_and_early_samples(void **state)
{
    (void)state;
    engine_t e;
    init_at(&e, cst(2024, 5, 10, 0, 10, 0, 0));
    /* Yesterday's sample arriving after midnight. */
    assert_int_equal(apply1(&e, 1, cst(2024, 5, 9, 23, 50, 0, 0), 1, 5), 0);
    static const int64_t yday[9] = {5, 5, 5, 5, 0, 5, 5, 5, 5};
    expect_all(&e, 1, 1, yday);
    expect_all(&e, 1, 0, yday);
    /* Older than 30 days: only the periods it belongs to and total. */
    assert_int_equal(apply1(&e, 1, cst(2024, 4, 1, 12, 0, 0, 0), 1, 100), 0);
    static const int64_t old[9] = {5, 5, 5, 5, 0, 5, 105, 105, 105};
    expect_all(&e, 1, 1, old);
    /* Last year's: total only. */
    assert_int_equal(apply1(&e, 1, cst(2023, 12, 1, 12, 0, 0, 0), 1, 1000), 0);
    static const int64_t lastyear[9] = {5, 5, 5, 5, 0, 5, 105, 105, 1105};
    expect_all(&e, 1, 1, lastyear);
    expect_all(&e, 1, 0, lastyear);

    /* Tomorrow's sample within the clock skew, before midnight: in the
     * windows now, in "today" once the day it belongs to begins. */
    fake_ms = cst(2024, 5, 10, 23, 58, 0, 0);
    assert_int_equal(apply1(&e, 1, cst(2024, 5, 11, 0, 2, 0, 0), 1, 7), 0);
    static const int64_t early[9] = {7, 7, 12, 12, 0, 12, 112, 112, 1112};
    expect_all(&e, 1, 1, early);
    drain(&e);
    fake_ms = cst(2024, 5, 11, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    static const int64_t tomorrow[9] = {7, 7, 12, 12, 7, 12, 112, 112, 1112};
    expect_all(&e, 1, 1, tomorrow);
    expect_all(&e, 1, 0, tomorrow);
    assert_int_equal(drain(&e), 2);
    /* Month end with a sample from the next month, before midnight. */
    fake_ms = cst(2024, 5, 31, 23, 59, 0, 0);
    assert_int_equal(apply1(&e, 2, cst(2024, 6, 1, 0, 1, 0, 0), 1, 50), 0);
    EXPECT(&e, 1, 2, "month", 0);
    EXPECT(&e, 1, 2, "quarter", 50);
    fake_ms = cst(2024, 6, 1, 0, 0, 0, 0);
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 2, "today", 50);
    EXPECT(&e, 1, 2, "month", 50);
    EXPECT(&e, 1, 0, "month", 50);
    engine_free(&e);
}

/* ---- gauges ---- */

static void test_gauges(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_at(&e, now);
    assert_int_equal(engine_define_metric(&e, 2, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_metric_kind(&e, 2), PROTO_KIND_GAUGE);
    assert_int_equal(engine_metric_kind(&e, 3), PROTO_KIND_COUNTER);
    assert_int_equal(apply1(&e, 1, now - 1000, 2, 23), 0);
    assert_int_equal(apply1(&e, 2, now, 2, 10), 0);
    EXPECT(&e, 2, 1, "total", 23);
    EXPECT(&e, 2, 2, "total", 10);
    EXPECT(&e, 2, 0, "total", 33);
    EXPECT_NONE(&e, 2, 1, "1h");
    EXPECT_NONE(&e, 2, 0, "today");
    EXPECT_NONE(&e, 2, 0, "year");
    engine_values_t v;
    assert_int_equal(engine_read(&e, 2, 0, &v), 0);
    assert_int_equal(v.kind, PROTO_KIND_GAUGE);
    assert_int_equal(drain(&e), 3);

    /* An older event does not replace the latest value, and changes
     * nothing to publish. */
    assert_int_equal(apply1(&e, 1, now - 5000, 2, 99), 0);
    EXPECT(&e, 2, 1, "total", 23);
    EXPECT(&e, 2, 0, "total", 33);
    assert_int_equal(drain(&e), 0);
    /* A newer one does, and the county follows. */
    assert_int_equal(apply1(&e, 1, now, 2, 30), 0);
    EXPECT(&e, 2, 1, "total", 30);
    EXPECT(&e, 2, 0, "total", 40);
    assert_int_equal(drain(&e), 2);
    /* Same event time: the later arrival wins. */
    assert_int_equal(apply1(&e, 1, now, 2, 31), 0);
    EXPECT(&e, 2, 1, "total", 31);
    EXPECT(&e, 2, 0, "total", 41);
    /* Twice in one batch: the last one wins. */
    engine_sample_t s[3] = {{2, 5}, {3, 1}, {2, 6}};
    assert_int_equal(engine_apply(&e, 2, now, s, 3, NULL), 0);
    EXPECT(&e, 2, 2, "total", 6);
    EXPECT(&e, 2, 0, "total", 37);
    EXPECT(&e, 3, 2, "total", 1);
    /* Negative values are values too. */
    assert_int_equal(apply1(&e, 2, now + 1, 2, -7), 0);
    EXPECT(&e, 2, 0, "total", 24);
    /* Time passing changes no gauge. */
    drain(&e);
    fake_ms = now + 40 * DAY_MS;
    engine_tick(&e, fake_ms);
    assert_int_equal(drain(&e), 2); /* the counter 3 only */
    assert_int_equal(count_item(3, 2), 1);
    assert_int_equal(count_item(3, 0), 1);
    EXPECT(&e, 2, 0, "total", 24);

    /* A kind cannot change once a metric has series. */
    assert_int_equal(engine_define_metric(&e, 2, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_define_metric(&e, 2, PROTO_KIND_COUNTER), TALLY_EEXIST);
    assert_int_equal(engine_define_metric(&e, 3, PROTO_KIND_GAUGE), TALLY_EEXIST);
    assert_int_equal(engine_define_metric(&e, 0, PROTO_KIND_GAUGE), TALLY_EINVAL);
    assert_int_equal(engine_define_metric(&e, 4, PROTO_KIND_RATIO), TALLY_EINVAL);
    engine_free(&e);
}

/* ---- ratios ---- */

enum { SCREENED = 8, RESOLVED = 9, RATE = 100 };

static void expect_ratio(const engine_t *e, uint32_t t, const char *col, int64_t num, int64_t den)
{
    engine_value_t v = value_of(e, RATE, t, col);
    if (!v.present || v.num != num || v.den != den) {
        fail_msg("ratio town %u %s: got %s[%lld, %lld], want [%lld, %lld]", t, col,
                 v.present ? "" : "(no value) ", (long long)v.num, (long long)v.den, (long long)num,
                 (long long)den);
    }
}

static int count_kind(uint8_t kind)
{
    int n = 0;
    for (int i = 0; i < drained.n; i++) {
        n += drained.items[i].kind == kind;
    }
    return n;
}

static int stop_after_three(void *ctx, const engine_item_t *it)
{
    (void)it;
    int *n = ctx;
    return ++*n == 3 ? 42 : 0;
}

static void test_ratios(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_at(&e, now);
    assert_int_equal(engine_define_ratio(&e, RATE, RESOLVED, SCREENED), 0);
    assert_int_equal(engine_metric_kind(&e, RATE), PROTO_KIND_RATIO);
    /* Gaoguan 2023: 216 of 219 disputes resolved, 98.6%. */
    engine_sample_t s[2] = {{SCREENED, 219}, {RESOLVED, 216}};
    assert_int_equal(engine_apply(&e, 1, now, s, 2, NULL), 0);
    engine_values_t v;
    assert_int_equal(engine_read(&e, RATE, 1, &v), 0);
    assert_int_equal(v.kind, PROTO_KIND_RATIO);
    assert_int_equal(v.ncols, 9);
    assert_int_equal(v.change_ms, now);
    for (uint32_t i = 0; i < v.ncols; i++) {
        assert_true(v.col[i].present);
        assert_int_equal(v.col[i].num, 216);
        assert_int_equal(v.col[i].den, 219);
    }
    assert_int_equal(v.col[8].num * 1000 / v.col[8].den, 986);
    expect_ratio(&e, 0, "total", 216, 219);
    expect_ratio(&e, 0, "1h", 216, 219);
    /* Each ratio scope is reported once though both inputs changed. */
    assert_int_equal(drain(&e), 6);
    assert_int_equal(count_item(RATE, 1), 1);
    assert_int_equal(count_item(RATE, 0), 1);
    assert_int_equal(count_kind(PROTO_KIND_RATIO), 2);

    /* Only the denominator in township 2. */
    assert_int_equal(apply1(&e, 2, now, SCREENED, 5), 0);
    expect_ratio(&e, 2, "total", 0, 5);
    expect_ratio(&e, 0, "total", 216, 224);
    assert_int_equal(drain(&e), 4);
    assert_int_equal(count_item(RATE, 2), 1);
    assert_int_equal(count_item(RATE, 0), 1);
    /* Only the numerator in township 3: zero denominator, no value. */
    assert_int_equal(apply1(&e, 3, now, RESOLVED, 3), 0);
    assert_int_equal(engine_read(&e, RATE, 3, &v), 0);
    for (uint32_t i = 0; i < v.ncols; i++) {
        assert_false(v.col[i].present);
    }
    assert_int_equal(drain(&e), 4);
    assert_int_equal(count_item(RATE, 3), 1);
    assert_int_equal(engine_read(&e, RATE, 4, &v), TALLY_ENOTFOUND);

    /* foreach: 6 series and 4 ratio scopes, each once. */
    drained.n = 0;
    assert_int_equal(engine_foreach(&e, collect, &drained), 0);
    assert_int_equal(drained.n, 10);
    assert_int_equal(count_kind(PROTO_KIND_RATIO), 4);
    for (uint32_t t = 0; t <= 3; t++) {
        assert_int_equal(count_item(RATE, t), 1);
    }
    /* An item reads as its metric and township do; a ratio scope has no
     * series of its own. */
    for (int i = 0; i < drained.n; i++) {
        const engine_item_t *it = &drained.items[i];
        engine_values_t a, b;
        assert_int_equal(engine_read_item(&e, it, &a), 0);
        assert_int_equal(engine_read(&e, it->metric, it->town, &b), 0);
        assert_int_equal(it->sid == ENGINE_NONE, it->kind == PROTO_KIND_RATIO);
        assert_int_equal(a.kind, b.kind);
        assert_int_equal(a.change_ms, b.change_ms);
        assert_int_equal(a.ncols, b.ncols);
        for (uint32_t c = 0; c < a.ncols; c++) {
            assert_int_equal(a.col[c].present, b.col[c].present);
            assert_int_equal(a.col[c].num, b.col[c].num);
            assert_int_equal(a.col[c].den, b.col[c].den);
        }
    }
    int seen = 0;
    assert_int_equal(engine_foreach(&e, stop_after_three, &seen), 42);
    assert_int_equal(seen, 3);

    /* foreach_town: the items of one scope, the same as foreach's, each
     * once (the ratio scope with its operands, though its id is past
     * max_metric); none for a township without series. */
    static drained_t all;
    all = drained;
    for (uint32_t t = 0; t <= 4; t++) {
        drained.n = 0;
        assert_int_equal(engine_foreach_town(&e, t, 0, RESOLVED, collect, &drained), 0);
        int want = 0;
        for (int i = 0; i < all.n; i++) {
            if (all.items[i].town == t) {
                want++;
                assert_int_equal(count_item(all.items[i].metric, t), 1);
            }
        }
        assert_int_equal(drained.n, want);
        assert_int_equal(want, t == 0 ? 3 : t == 4 ? 0 : t == 1 ? 3 : 2);
    }
    seen = 0;
    assert_int_equal(engine_foreach_town(&e, 0, 0, RESOLVED, stop_after_three, &seen), 42);
    assert_int_equal(seen, 3);

    /* A sample for a ratio is refused, and nothing of its batch applies. */
    engine_sample_t r[2] = {{SCREENED, 1}, {RATE, 1}};
    int32_t bad = -5;
    assert_int_equal(engine_apply(&e, 1, now, r, 2, &bad), TALLY_EKIND);
    assert_int_equal(bad, 1);
    EXPECT(&e, SCREENED, 1, "total", 219);
    assert_int_equal(engine_dirty_count(&e), 0);

    /* After an hour the window has nothing: no value there, total stays. */
    fake_ms = now + HOUR_MS;
    engine_tick(&e, fake_ms);
    assert_false(value_of(&e, RATE, 1, "1h").present);
    expect_ratio(&e, 1, "24h", 216, 219);
    expect_ratio(&e, 1, "total", 216, 219);
    drain(&e);
    assert_int_equal(count_item(RATE, 1), 1);

    /* Definitions that make no sense. */
    assert_int_equal(engine_define_ratio(&e, RATE, RESOLVED, SCREENED), TALLY_EEXIST);
    assert_int_equal(engine_define_ratio(&e, 101, RATE, SCREENED), TALLY_EINVAL);
    assert_int_equal(engine_define_ratio(&e, SCREENED, 1, 2), TALLY_EINVAL);
    assert_int_equal(engine_define_ratio(&e, 0, 1, 2), TALLY_EINVAL);
    assert_int_equal(engine_define_ratio(&e, 5, 5, 6), TALLY_EINVAL);
    assert_int_equal(apply1(&e, 1, fake_ms, 7, 1), 0);
    assert_int_equal(engine_define_ratio(&e, 7, 1, 2), TALLY_EEXIST);
    assert_int_equal(engine_define_metric(&e, RATE, PROTO_KIND_COUNTER), TALLY_EEXIST);

    /* A ratio of gauges has only a total. */
    assert_int_equal(engine_define_metric(&e, 20, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_define_metric(&e, 21, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_define_ratio(&e, 102, 20, 21), 0);
    engine_sample_t g[2] = {{20, 23}, {21, 33}};
    assert_int_equal(engine_apply(&e, 1, fake_ms, g, 2, NULL), 0);
    assert_int_equal(engine_read(&e, 102, 1, &v), 0);
    assert_false(v.col[0].present);
    assert_false(v.col[4].present);
    assert_true(v.col[8].present);
    assert_int_equal(v.col[8].num, 23);
    assert_int_equal(v.col[8].den, 33);
    engine_free(&e);
}
/* Another zone: the engine follows the zone it is given. */
static void test_zone_utc(void **state)
{
    (void)state;
    engine_config_t c;
    engine_config_default(&c);
    c.zone = "UTC";
    engine_t e;
    int64_t now = days_of(2024, 5, 10) * DAY_MS + 23 * HOUR_MS;
    init_cfg(&e, &c, now);
    assert_int_equal(apply1(&e, 1, now, 1, 3), 0);
    fake_ms = now + HOUR_MS - 1;
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 1, "today", 3);
    fake_ms = now + HOUR_MS;
    engine_tick(&e, fake_ms);
    EXPECT(&e, 1, 1, "today", 0);
    engine_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_and_defaults),
        cmocka_unit_test(test_config_invalid),
        cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_window_rolloff),
        cmocka_unit_test(test_window_out_of_order),
        cmocka_unit_test(test_window_sparse_dense),
        cmocka_unit_test(test_day_of_shanghai),
        cmocka_unit_test(test_midnight_year_end_by_samples),
        cmocka_unit_test(test_calendar_resets_on_tick),
        cmocka_unit_test(test_leap_day_and_quarter),
        cmocka_unit_test(test_late_and_early_samples),
        cmocka_unit_test(test_gauges),
        cmocka_unit_test(test_ratios),
        cmocka_unit_test(test_zone_utc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
