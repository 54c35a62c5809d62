/* Helpers shared by the engine unit tests (test_engine.c,
 * test_engine_model.c): Shanghai wall-clock times (the fake clock and the
 * calendar are calendar_test_util.h's), and shorthands to apply, read and
 * drain.  Every function is static inline so that a test file that leaves
 * one unused still builds. */
#ifndef ENGINE_TEST_UTIL_H
#define ENGINE_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "calendar_test_util.h"
#include "engine.h"

/* UTC milliseconds of a wall-clock time in Asia/Shanghai (UTC+8, no DST
 * since 1991). */
static inline int64_t cst(int y, int mo, int d, int h, int mi, int s, int ms)
{
    return ((days_of(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) - 8 * 3600) * 1000 + ms;
}

/* ---- engine helpers ---- */

static inline void init_cfg(engine_t *e, const engine_config_t *cfg, int64_t now)
{
    fake_ms = now;
    assert_int_equal(engine_init(e, cfg, &fake_clock), 0);
}

static inline void init_at(engine_t *e, int64_t now)
{
    engine_config_t cfg;
    engine_config_default(&cfg);
    init_cfg(e, &cfg, now);
}

static inline int apply1(engine_t *e, uint32_t town, int64_t t, uint32_t metric, int64_t v)
{
    engine_sample_t s = {metric, v};
    int32_t bad = 99;
    int rc = engine_apply(e, town, t, &s, 1, &bad);
    assert_int_equal(bad, rc == 0 || rc == TALLY_ERANGE || rc == TALLY_EINVAL ? -1 : 0);
    return rc;
}

static inline int col_index(const engine_t *e, const char *name)
{
    for (uint32_t i = 0; i < engine_columns(e); i++) {
        if (strcmp(engine_column_name(e, i), name) == 0) {
            return (int)i;
        }
    }
    fail_msg("no column %s", name);
    return -1;
}

static inline engine_value_t value_of(const engine_t *e, uint32_t m, uint32_t t, const char *col)
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
static inline void expect_all(const engine_t *e, uint32_t m, uint32_t t, const int64_t want[9])
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

static inline int collect(void *ctx, const engine_item_t *it)
{
    drained_t *d = ctx;
    assert_true(d->n < 4096);
    d->items[d->n++] = *it;
    return 0;
}

static drained_t drained;

static inline int drain(engine_t *e)
{
    drained.n = 0;
    engine_drain_dirty(e, UINT32_MAX, collect, &drained);
    assert_int_equal(engine_dirty_count(e), 0);
    return drained.n;
}

static inline int count_item(uint32_t m, uint32_t t)
{
    int n = 0;
    for (int i = 0; i < drained.n; i++) {
        n += drained.items[i].metric == m && drained.items[i].town == t;
    }
    return n;
}

#endif
