/* Helpers shared by the checkpoint unit tests (test_checkpoint.c,
 * test_checkpoint_engine.c): a filled engine and engine comparisons (the
 * fake clock is calendar_test_util.h's).  Static inline so that each
 * test uses what it needs. */
#ifndef TALLY_CHECKPOINT_TEST_UTIL_H
#define TALLY_CHECKPOINT_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "calendar_test_util.h"
#include "checkpoint.h"

/* UTC ms of a wall-clock time in Asia/Shanghai (UTC+8). */
static inline int64_t cst(int y, int mo, int d, int h, int mi, int s)
{
    return ((days_of(y, mo, d) * 86400 + h * 3600 + mi * 60 + s) - 8 * 3600) * 1000;
}

/* Metric ids of the fixture. */
enum { M_CASES = 1, M_RESOLVED, M_STAFF, M_NEG, M_RATE, M_STAFF_RATE, M_UNUSED_GAUGE };

/* ---- helpers ---- */

static inline void init_engine(engine_t *e, const engine_config_t *cfg, int64_t now)
{
    fake_ms = now;
    assert_int_equal(engine_init(e, cfg, &fake_clock), 0);
}

static inline void declare(engine_t *e)
{
    assert_int_equal(engine_define_metric(e, M_STAFF, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_define_metric(e, M_UNUSED_GAUGE, PROTO_KIND_GAUGE), 0);
    assert_int_equal(engine_define_metric(e, M_CASES, PROTO_KIND_COUNTER), 0);
    assert_int_equal(engine_define_ratio(e, M_RATE, M_RESOLVED, M_CASES), 0);
    assert_int_equal(engine_define_ratio(e, M_STAFF_RATE, M_CASES, M_STAFF), 0);
}

static inline void put1(engine_t *e, uint32_t town, int64_t t, uint32_t metric, int64_t v)
{
    engine_sample_t s = {metric, v};
    assert_int_equal(engine_apply(e, town, t, &s, 1, NULL), 0);
}

/* A mix of counters and gauges over five townships and many times, the
 * clock standing at 23:40 on New Year's Eve so that samples from just
 * after midnight sit in the next day, month, quarter and year. */
static inline void fill(engine_t *e)
{
    int64_t now = fake_ms;
    for (uint32_t town = 1; town <= 5; town++) {
        put1(e, town, now, M_CASES, 10 * town);
        put1(e, town, now - 10 * MIN_MS, M_RESOLVED, 3 * town);
        put1(e, town, now - 50 * MIN_MS, M_CASES, 7);
        put1(e, town, now - 5 * HOUR_MS, M_CASES, 100 + town);
        put1(e, town, now - 20 * HOUR_MS, M_RESOLVED, 11);     /* yesterday */
        put1(e, town, now - 3 * DAY_MS, M_CASES, -4);          /* in 7d, 30d */
        put1(e, town, now - 40 * DAY_MS, M_CASES, 1000);       /* total, year */
        put1(e, town, now + 30 * 1000, M_CASES, 2);            /* slightly early */
        put1(e, town, cst(2025, 1, 1, 0, 5, 0), M_CASES, 500); /* tomorrow */
        put1(e, town, now - 2 * MIN_MS, M_STAFF, 20 + town);
        put1(e, town, now - 30 * MIN_MS, M_STAFF, 99); /* older: ignored */
        put1(e, town, now - 7 * HOUR_MS, M_NEG, -(int64_t)town * 1000000007LL);
    }
    put1(e, 3, now - 59 * MIN_MS, M_NEG, INT64_MAX / 4);
    put1(e, 2, now - 61 * MIN_MS, M_NEG, INT64_MIN / 4);
}

typedef struct items {
    engine_item_t *v;
    size_t n, cap;
} items_t;

static inline int collect(void *ctx, const engine_item_t *it)
{
    items_t *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = realloc(c->v, c->cap * sizeof(*c->v));
        assert_non_null(c->v);
    }
    c->v[c->n++] = *it;
    return 0;
}

static inline int by_key(const void *a, const void *b)
{
    const engine_item_t *x = a, *y = b;
    if (x->metric != y->metric) {
        return x->metric < y->metric ? -1 : 1;
    }
    if (x->town != y->town) {
        return x->town < y->town ? -1 : 1;
    }
    return (int)x->kind - (int)y->kind;
}

static inline items_t all_items(const engine_t *e)
{
    items_t c = {0};
    assert_int_equal(engine_foreach(e, collect, &c), 0);
    if (c.n > 0) {
        qsort(c.v, c.n, sizeof(*c.v), by_key);
    }
    return c;
}

static inline items_t drained(engine_t *e)
{
    items_t c = {0};
    engine_drain_dirty(e, UINT32_MAX, collect, &c);
    if (c.n > 0) {
        qsort(c.v, c.n, sizeof(*c.v), by_key);
    }
    return c;
}

static inline void same_values(const engine_t *a, const engine_t *b, uint32_t metric, uint32_t town)
{
    engine_values_t va, vb;
    assert_int_equal(engine_read(a, metric, town, &va), 0);
    assert_int_equal(engine_read(b, metric, town, &vb), 0);
    assert_int_equal(va.kind, vb.kind);
    assert_int_equal(va.change_ms, vb.change_ms);
    assert_int_equal(va.ncols, vb.ncols);
    for (uint32_t i = 0; i < va.ncols; i++) {
        const engine_value_t *x = &va.col[i], *y = &vb.col[i];
        assert_string_equal(x->name, y->name);
        if (x->present != y->present || x->num != y->num || x->den != y->den) {
            fail_msg("metric %u town %u column %s: %s%lld/%lld vs %s%lld/%lld", metric, town,
                     x->name, x->present ? "" : "(none) ", (long long)x->num, (long long)x->den,
                     y->present ? "" : "(none) ", (long long)y->num, (long long)y->den);
        }
    }
}

/* Every series and ratio scope of a exists in b with the same values in
 * every column, and b has no others. */
static inline void same_engines(const engine_t *a, const engine_t *b)
{
    assert_int_equal(engine_now_ms(a), engine_now_ms(b));
    assert_int_equal(engine_series_count(a), engine_series_count(b));
    items_t ia = all_items(a), ib = all_items(b);
    assert_int_equal(ia.n, ib.n);
    for (size_t i = 0; i < ia.n; i++) {
        assert_int_equal(by_key(&ia.v[i], &ib.v[i]), 0);
        assert_int_equal(ia.v[i].change_ms, ib.v[i].change_ms);
        same_values(a, b, ia.v[i].metric, ia.v[i].town);
    }
    free(ia.v);
    free(ib.v);
}

/* Both engines report the same dirty series and scopes, with the same
 * change times; returns how many. */
static inline size_t same_dirty(engine_t *a, engine_t *b)
{
    items_t da = drained(a), db = drained(b);
    assert_int_equal(da.n, db.n);
    for (size_t i = 0; i < da.n; i++) {
        assert_int_equal(by_key(&da.v[i], &db.v[i]), 0);
        assert_int_equal(da.v[i].change_ms, db.v[i].change_ms);
    }
    free(da.v);
    free(db.v);
    return da.n;
}

#endif
