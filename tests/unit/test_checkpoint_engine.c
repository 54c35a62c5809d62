/* Unit tests of engine serialization (engine_persist.c): engine_save and
 * engine_load round trips, configuration and definition mismatches and
 * malformed blobs, driven by a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "tally_error.h"

#include "checkpoint_test_util.h"

/* ---- helpers ---- */

static void init_default(engine_t *e, int64_t now)
{
    engine_config_t cfg;
    engine_config_default(&cfg);
    init_engine(e, &cfg, now);
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

static mem_t save(const engine_t *e)
{
    mem_t m = {NULL, 0};
    assert_int_equal(engine_save(e, to_mem, &m), 0);
    return m;
}

/* ---- engine round trip ---- */

static void test_engine_round_trip_and_future(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 12, 31, 23, 40, 0));
    declare(&a);
    fill(&a);
    assert_true(engine_series_count(&a) > 20);
    mem_t m = save(&a);

    /* The new engine starts two hours later, as after a restart: the load
     * puts it back at the saved now. */
    init_default(&b, cst(2025, 1, 1, 1, 40, 0));
    declare(&b); /* identical declarations are accepted */
    char err[512];
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(engine_dirty_count(&b), 0);
    assert_int_equal(engine_metric_kind(&b, M_STAFF), PROTO_KIND_GAUGE);
    assert_int_equal(engine_metric_kind(&b, M_UNUSED_GAUGE), PROTO_KIND_GAUGE);
    assert_int_equal(engine_metric_kind(&b, M_RATE), PROTO_KIND_RATIO);
    same_engines(&a, &b);
    same_values(&a, &b, M_RATE, 0);
    same_values(&a, &b, M_STAFF_RATE, 4);
    free(drained(&a).v); /* the saved engine's marks from fill() */
    assert_int_equal(engine_next_tick_ms(&a), engine_next_tick_ms(&b));

    /* Through window expiry and midnight, the two stay identical, and the
     * same series become dirty at the same moments. */
    static const int64_t steps[] = {
        1000,        5 * MIN_MS, 10 * MIN_MS, 15 * MIN_MS, 21 * MIN_MS,  30 * MIN_MS,
        50 * MIN_MS, HOUR_MS,    2 * HOUR_MS, 6 * HOUR_MS, 19 * HOUR_MS, DAY_MS,
        3 * DAY_MS,  8 * DAY_MS, 31 * DAY_MS, 95 * DAY_MS, 400 * DAY_MS,
    };
    int64_t t0 = engine_now_ms(&a);
    size_t changes = 0;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        fake_ms = t0 + steps[i];
        engine_tick(&a, fake_ms);
        engine_tick(&b, fake_ms);
        changes += same_dirty(&a, &b);
        same_engines(&a, &b);
        if (i == 4) {
            /* New samples after the load: as in journal replay. */
            put1(&a, 2, fake_ms - 3 * MIN_MS, M_CASES, 5);
            put1(&b, 2, fake_ms - 3 * MIN_MS, M_CASES, 5);
            put1(&a, 6, fake_ms, M_STAFF, 8);
            put1(&b, 6, fake_ms, M_STAFF, 8);
            changes += same_dirty(&a, &b);
            same_engines(&a, &b);
        }
    }
    assert_true(changes > 30); /* expiry and period ends did happen */
    free(m.p);
    engine_free(&a);
    engine_free(&b);
}

/* The midnight rollover moves the "tomorrow" sample into today. */
static void test_next_period_slots_survive(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 12, 31, 23, 50, 0));
    put1(&a, 1, cst(2025, 1, 1, 0, 1, 0), M_CASES, 42);
    mem_t m = save(&a);
    init_default(&b, fake_ms);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    engine_tick(&b, cst(2025, 1, 1, 0, 2, 0));
    engine_values_t v;
    assert_int_equal(engine_read(&b, M_CASES, 1, &v), 0);
    for (uint32_t c = 4; c < 8; c++) { /* today, month, quarter, year */
        assert_true(v.col[c].present);
        assert_int_equal(v.col[c].num, 42);
    }
    free(m.p);
    engine_free(&a);
    engine_free(&b);
}

/* A loaded counter judges overflow exactly as the saved one did, with
 * large values both inside and past its bound on the cells. */
static void test_overflow_after_load(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 6, 1, 10, 0, 0));
    int64_t now = fake_ms;
    put1(&a, 1, now, M_CASES, INT64_MAX / 16);
    put1(&a, 1, now - 3 * DAY_MS, M_CASES, -(INT64_MAX / 16));
    put1(&a, 2, now, M_NEG, INT64_MIN / 2);
    mem_t m = save(&a);
    init_default(&b, now);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    static const struct {
        uint32_t town, metric;
        int64_t back_ms, v;
        int want;
    } probe[] = {
        {1, M_CASES, 0, INT64_MAX / 2, 0},                  /* past the bound, fits */
        {1, M_CASES, 0, INT64_MAX / 2, TALLY_EOVERFLOW},    /* "1h" would overflow */
        {1, M_CASES, 0, INT64_MAX / 2 - INT64_MAX / 16, 0}, /* fits exactly */
        {1, M_CASES, 0, 1, 0},
        {1, M_CASES, 0, 1, TALLY_EOVERFLOW},
        {1, M_CASES, 3 * DAY_MS, INT64_MAX / 2, TALLY_EOVERFLOW}, /* total, not 1h */
        {1, M_CASES, 3 * DAY_MS, -1, 0},
        {2, M_NEG, 0, INT64_MIN / 2, 0},
        {2, M_NEG, 0, -1, TALLY_EOVERFLOW},
        {2, M_NEG, 0, INT64_MAX, 0},
    };
    for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]); i++) {
        engine_sample_t s = {probe[i].metric, probe[i].v};
        int64_t t = now - probe[i].back_ms;
        int ra = engine_apply(&a, probe[i].town, t, &s, 1, NULL);
        int rb = engine_apply(&b, probe[i].town, t, &s, 1, NULL);
        if (ra != probe[i].want || rb != probe[i].want) {
            fail_msg("probe %zu: %d before the save, %d after the load, want %d", i, ra, rb,
                     probe[i].want);
        }
    }
    same_engines(&a, &b);
    free(m.p);
    engine_free(&a);
    engine_free(&b);
}

static void test_empty_engine_and_no_windows(void **state)
{
    (void)state;
    engine_config_t cfg;
    engine_config_default(&cfg);
    cfg.nwindows = 0;
    engine_t a, b;
    init_engine(&a, &cfg, cst(2024, 6, 1, 12, 0, 0));
    mem_t m = save(&a);
    init_engine(&b, &cfg, fake_ms);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    assert_int_equal(engine_series_count(&b), 0);
    free(m.p);
    put1(&a, 1, fake_ms, M_CASES, 3);
    m = save(&a);
    engine_free(&b);
    init_engine(&b, &cfg, fake_ms);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    same_engines(&a, &b);
    free(m.p);
    engine_free(&a);
    engine_free(&b);
}

static void expect_load_fails(const mem_t *m, const engine_config_t *cfg, int want,
                              const char *needle)
{
    engine_t b;
    init_engine(&b, cfg, fake_ms);
    char err[600];
    assert_int_equal(engine_load(&b, m->p, m->n, err, sizeof(err)), want);
    if (strstr(err, needle) == NULL) {
        fail_msg("message '%s' does not say '%s'", err, needle);
    }
    engine_free(&b);
}

static void test_window_config_mismatch(void **state)
{
    (void)state;
    engine_t a;
    init_default(&a, cst(2024, 6, 1, 12, 0, 0));
    fill(&a);
    mem_t m = save(&a);
    engine_config_t cfg;
    engine_config_default(&cfg);
    cfg.buckets = 30;
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "windows changed");
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "with 60 buckets each, the configuration has");
    engine_config_default(&cfg);
    cfg.windows[1].name = "day";
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "day=86400000ms");
    engine_config_default(&cfg);
    cfg.windows[3].ms = 2 * 2592000000LL;
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "30d=5184000000ms");
    engine_config_default(&cfg);
    cfg.nwindows = 3;
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "windows changed");
    cfg.nwindows = 4;
    /* Local days end at another moment in another zone. */
    engine_config_default(&cfg);
    cfg.zone = "UTC";
    expect_load_fails(&m, &cfg, TALLY_ECONFIG, "time zone changed");
    engine_config_default(&cfg);
    engine_t b;
    init_engine(&b, &cfg, fake_ms); /* back to Asia/Shanghai for the other tests */
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    engine_free(&b);
    free(m.p);
    engine_free(&a);
}

/* A state holding more series than max_series allows (lowered since)
 * loads whole: the limit keeps new series from being created, and the
 * series held take samples. */
static void test_load_above_max_series(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 6, 1, 12, 0, 0));
    fill(&a);
    uint32_t n = engine_series_count(&a);
    assert_true(n > 5);
    mem_t m = save(&a);
    engine_config_t cfg;
    engine_config_default(&cfg);
    cfg.max_series = 5;
    init_engine(&b, &cfg, fake_ms);
    char err[600];
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), 0);
    assert_int_equal(engine_series_count(&b), n);
    engine_values_t v;
    assert_int_equal(engine_read(&b, M_CASES, 0, &v), 0);
    int64_t county = v.col[v.ncols - 1].num;
    engine_sample_t held = {M_CASES, 1}, fresh = {999, 1};
    int32_t bad = -1;
    assert_int_equal(engine_apply(&b, 1, fake_ms, &held, 1, &bad), 0);
    assert_int_equal(engine_read(&b, M_CASES, 0, &v), 0);
    assert_int_equal(v.col[v.ncols - 1].num, county + 1);
    assert_int_equal(engine_apply(&b, 1, fake_ms, &fresh, 1, &bad), TALLY_ESERIESLIMIT);
    assert_int_equal(engine_series_count(&b), n);
    engine_free(&b);
    free(m.p);
    engine_free(&a);
}

static void test_definition_conflicts(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 6, 1, 12, 0, 0));
    declare(&a);
    fill(&a);
    mem_t m = save(&a);
    char err[512];

    init_default(&b, fake_ms);
    assert_int_equal(engine_define_metric(&b, M_STAFF, PROTO_KIND_COUNTER), 0);
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), TALLY_ECONFIG);
    assert_non_null(strstr(err, "metric id 3: declared a counter before loading, but a gauge"));
    engine_free(&b);

    init_default(&b, fake_ms);
    assert_int_equal(engine_define_ratio(&b, M_RATE, M_CASES, M_RESOLVED), 0);
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), TALLY_ECONFIG);
    assert_non_null(strstr(err, "ratio 1 / 2 before loading, but 2 / 1"));
    engine_free(&b);

    /* A metric with saved (counter) series cannot be a ratio now. */
    init_default(&b, fake_ms);
    assert_int_equal(engine_define_ratio(&b, M_NEG, M_CASES, M_RESOLVED), 0);
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), TALLY_ECONFIG);
    assert_non_null(strstr(err, "is a counter, but the metric is declared a ratio"));
    engine_free(&b);

    /* Loading twice into the same engine is a programmer error. */
    init_default(&b, fake_ms);
    assert_int_equal(engine_load(&b, m.p, m.n, NULL, 0), 0);
    assert_int_equal(engine_load(&b, m.p, m.n, err, sizeof(err)), TALLY_EINVAL);
    engine_free(&b);
    free(m.p);
    engine_free(&a);
}

/* Every truncation and many corruptions of the blob are refused cleanly
 * (no crash, no sanitizer report), never half-accepted as success. */
static void test_malformed_blob(void **state)
{
    (void)state;
    engine_t a, b;
    init_default(&a, cst(2024, 6, 1, 12, 0, 0));
    declare(&a);
    fill(&a);
    mem_t m = save(&a);
    for (size_t len = 0; len < m.n; len += (len < 300 ? 1 : 97)) {
        init_default(&b, fake_ms);
        int rc = engine_load(&b, m.p, len, NULL, 0);
        assert_true(rc == TALLY_EIO || rc == TALLY_ECONFIG);
        engine_free(&b);
    }
    uint8_t *copy = malloc(m.n);
    int accepted = 0;
    for (size_t at = 0; at < m.n; at += 7) {
        memcpy(copy, m.p, m.n);
        copy[at] ^= 0x5a;
        init_default(&b, fake_ms);
        int rc = engine_load(&b, copy, m.n, NULL, 0);
        assert_true(rc == 0 || rc == TALLY_EIO || rc == TALLY_ECONFIG || rc == TALLY_ENOMEM);
        accepted += rc == 0;
        engine_free(&b);
    }
    /* Value bytes may flip into other valid values; that is what the
     * checkpoint's CRC is for.  Structure bytes must not pass. */
    assert_true(accepted < (int)(m.n / 7));
    free(copy);
    free(m.p);
    engine_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_round_trip_and_future),
        cmocka_unit_test(test_next_period_slots_survive),
        cmocka_unit_test(test_overflow_after_load),
        cmocka_unit_test(test_empty_engine_and_no_windows),
        cmocka_unit_test(test_window_config_mismatch),
        cmocka_unit_test(test_load_above_max_series),
        cmocka_unit_test(test_definition_conflicts),
        cmocka_unit_test(test_malformed_blob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
