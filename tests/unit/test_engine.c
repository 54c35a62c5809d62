/* Unit tests of the rolling-tally engine (engine.c, engine_read.c, window.c,
 * period.c), driven by a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"

/* ---- fake clock and calendar helpers ---- */

static int64_t fake_ms;

static int64_t fake_now(void *ctx)
{
    (void)ctx;
    return fake_ms;
}

static const tclock_t fake_clock = {fake_now, NULL};

/* Written independently of period.c: days from 1970-01-01 by counting. */
static int64_t days_of(int y, int m, int d)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t days = 0;
    for (int yy = 1970; yy < y; yy++) {
        bool leap = (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0;
        days += leap ? 366 : 365;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    for (int mm = 1; mm < m; mm++) {
        days += mdays[mm - 1] + (mm == 2 && leap);
    }
    return days + d - 1;
}

/* UTC milliseconds of a wall-clock time in Asia/Shanghai (UTC+8, no DST
 * since 1991). */
static int64_t cst(int y, int mo, int d, int h, int mi, int s, int ms)
{
    return ((days_of(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) - 8 * 3600) * 1000 + ms;
}

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

/* ---- engine helpers ---- */

static void init_cfg(engine_t *e, const engine_config_t *cfg, int64_t now)
{
    fake_ms = now;
    assert_int_equal(engine_init(e, cfg, &fake_clock), 0);
}

static void init_at(engine_t *e, int64_t now)
{
    engine_config_t cfg;
    engine_config_default(&cfg);
    init_cfg(e, &cfg, now);
}

static int apply1(engine_t *e, uint32_t town, int64_t t, uint32_t metric, int64_t v)
{
    engine_sample_t s = {metric, v};
    int32_t bad = 99;
    int rc = engine_apply(e, town, t, &s, 1, &bad);
    assert_int_equal(bad, rc == 0 || rc == TALLY_ERANGE || rc == TALLY_EINVAL ? -1 : 0);
    return rc;
}

static int col_index(const engine_t *e, const char *name)
{
    for (uint32_t i = 0; i < engine_columns(e); i++) {
        if (strcmp(engine_column_name(e, i), name) == 0) {
            return (int)i;
        }
    }
    fail_msg("no column %s", name);
    return -1;
}

static engine_value_t value_of(const engine_t *e, uint32_t m, uint32_t t, const char *col)
{
    engine_values_t v;
    assert_int_equal(engine_read(e, m, t, &v), 0);
    return v.col[col_index(e, col)];
}

#define EXPECT(e, m, t, col, want)                                                                 \
    do {                                                                                           \
        engine_value_t v_ = value_of((e), (m), (t), (col));                                        \
        if (!v_.present || v_.num != (want) || v_.den != 1) {                                      \
            fail_msg("metric %u town %u %s: got %s%lld, want %lld", (unsigned)(m), (unsigned)(t),  \
                     (col), v_.present ? "" : "(no value) ", (long long)v_.num,                    \
                     (long long)(want));                                                           \
        }                                                                                          \
    } while (0)

#define EXPECT_NONE(e, m, t, col) assert_false(value_of((e), (m), (t), (col)).present)

/* Counter expected in every column: windows w1h..w30d, periods, total. */
static void expect_all(const engine_t *e, uint32_t m, uint32_t t, const int64_t want[9])
{
    static const char *cols[9] = {"1h",    "24h",     "7d",   "30d",  "today",
                                  "month", "quarter", "year", "total"};
    for (int i = 0; i < 9; i++) {
        EXPECT(e, m, t, cols[i], want[i]);
    }
}

typedef struct drained {
    int n;
    engine_item_t items[4096];
} drained_t;

static int collect(void *ctx, const engine_item_t *it)
{
    drained_t *d = ctx;
    assert_true(d->n < 4096);
    d->items[d->n++] = *it;
    return 0;
}

static drained_t drained;

static int drain(engine_t *e)
{
    drained.n = 0;
    engine_drain_dirty(e, UINT32_MAX, collect, &drained);
    assert_int_equal(engine_dirty_count(e), 0);
    return drained.n;
}

static int count_item(uint32_t m, uint32_t t)
{
    int n = 0;
    for (int i = 0; i < drained.n; i++) {
        n += drained.items[i].metric == m && drained.items[i].town == t;
    }
    return n;
}

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
    int seen = 0;
    assert_int_equal(engine_foreach(&e, stop_after_three, &seen), 42);
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
 * a series marked again goes behind the ones still waiting. */
static void test_drain_in_rounds(void **state)
{
    (void)state;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_at(&e, now);
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

static void test_series_limit(void **state)
{
    (void)state;
    engine_config_t c;
    engine_config_default(&c);
    c.max_series = 5;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_cfg(&e, &c, now);
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

/* ---- scale ---- */

static int count_items(void *ctx, const engine_item_t *it)
{
    (void)it;
    (*(uint32_t *)ctx)++;
    return 0;
}

static void test_many_series(void **state)
{
    (void)state;
    enum { METRICS = 100, TOWNS = 999 };
    engine_config_t c;
    engine_config_default(&c);
    c.max_series = 200000;
    engine_t e;
    int64_t now = cst(2024, 5, 10, 12, 0, 0, 0);
    init_cfg(&e, &c, now);
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
        cmocka_unit_test(test_day_of_shanghai),
        cmocka_unit_test(test_midnight_year_end_by_samples),
        cmocka_unit_test(test_calendar_resets_on_tick),
        cmocka_unit_test(test_leap_day_and_quarter),
        cmocka_unit_test(test_late_and_early_samples),
        cmocka_unit_test(test_gauges),
        cmocka_unit_test(test_ratios),
        cmocka_unit_test(test_overflow_second_sample),
        cmocka_unit_test(test_overflow_same_metric_twice),
        cmocka_unit_test(test_overflow_past_the_mass_bound),
        cmocka_unit_test(test_drain_in_rounds),
        cmocka_unit_test(test_apply_after_check),
        cmocka_unit_test(test_series_limit),
        cmocka_unit_test(test_many_series),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_zone_utc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
