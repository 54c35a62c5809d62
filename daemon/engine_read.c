/* engine_read.c - the reading side of the tally engine (see engine.h):
 * column values of a series or ratio scope (engine_read), a ratio's value
 * from its operands' values and decimal scales (engine_ratio_value), the
 * column names, and the reports of changed series to the publisher
 * (engine_drain_dirty) and of every series to a snapshot (engine_foreach).
 * Storage, time and applying batches are in engine.c.
 */
#include "engine.h"

#include "engine_internal.h"
#include "tally_error.h"

/* ---- ratios ---- */

/* The scales only change how a ratio reads, so they live with the
 * reading side; applying a batch never looks at them. */
int engine_ratio_set_scales(engine_t *e, uint32_t metric, uint8_t num_scale, uint8_t den_scale)
{
    if (metric_kind(e, metric) != PROTO_KIND_RATIO || num_scale > ENGINE_SCALE_MAX ||
        den_scale > ENGINE_SCALE_MAX) {
        return TALLY_EINVAL;
    }
    e->metrics[metric].shift = (int8_t)(den_scale - num_scale);
    return 0;
}

typedef unsigned __int128 u128;

static u128 gcd128(u128 a, u128 b)
{
    while (b != 0) {
        u128 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* a * b / c rounded half away from zero; a * b < 2^128, c > 0. */
static u128 mul_div_round(u128 a, u128 b, u128 c)
{
    u128 p = a * b, q = p / c, r = p % c;
    return r >= c - r ? q + 1 : q;
}

/* The pair [num * 10^shift, den] (shift >= 0) or [num, den * 10^-shift]
 * into *pn, *pd, as engine_ratio_value() says; false when its value is
 * beyond int64.  den != 0. */
static bool ratio_pair(int shift, int64_t num, int64_t den, int64_t *pn, int64_t *pd)
{
    static const int64_t tens[ENGINE_SCALE_MAX + 1] = {
        1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000};
    if (shift == 0) {
        *pn = num;
        *pd = den;
        return true;
    }
    /* One side grows by at most 10^9 < 2^30: |n|, |d| < 2^93. */
    __int128 n = (__int128)num * (shift > 0 ? tens[shift] : 1);
    __int128 d = (__int128)den * (shift < 0 ? tens[-shift] : 1);
    if (n >= INT64_MIN && n <= INT64_MAX && d >= INT64_MIN && d <= INT64_MAX) {
        *pn = (int64_t)n;
        *pd = (int64_t)d;
        return true;
    }
    /* Beyond int64: magnitudes, the sign goes to the numerator. */
    bool neg = (n < 0) != (d < 0);
    u128 a = n < 0 ? (u128)-n : (u128)n, b = d < 0 ? (u128)-d : (u128)d;
    u128 g = gcd128(a, b), max = INT64_MAX, p, q;
    a /= g;
    b /= g;
    if (a <= max && b <= max) {
        p = a;
        q = b;
    } else if (a > b) {
        /* A value above 1 with a > INT64_MAX, so b <= 2^63 (b is the side
         * not multiplied, or a is -2^63 not multiplied and b < a).  q is
         * the largest with a * q / b <= INT64_MAX - 1, so that p stays
         * within int64 once rounded (1 when the value is that large
         * already); a = (a / b) * b + a % b keeps every product below
         * 2^127. */
        q = (max - 1) * b / a;
        if (q == 0) {
            q = 1;
        }
        p = a / b * q + mul_div_round(a % b, q, b);
        if (p > max) {
            return false;
        }
    } else {
        /* A value below 1 with b > INT64_MAX, so a <= 2^63 and a * q <
         * 2^126: the largest q. */
        q = max;
        p = mul_div_round(a, q, b);
    }
    *pn = neg ? -(int64_t)p : (int64_t)p;
    *pd = (int64_t)q;
    return true;
}

/* The ratio of column values num / den with the given shift into *out
 * (which may be num or den). */
static void ratio_value(int shift, const engine_value_t *num, const engine_value_t *den,
                        engine_value_t *out)
{
    int64_t n = num->num, d = den->num;
    bool present = num->present && den->present && d != 0;
    out->present = present && ratio_pair(shift, n, d, &out->num, &out->den);
    if (!out->present) {
        out->num = 0;
        out->den = 0;
    }
}

void engine_ratio_value(const engine_t *e, uint32_t metric, const engine_value_t *num,
                        const engine_value_t *den, engine_value_t *out)
{
    ratio_value(metric_kind(e, metric) == PROTO_KIND_RATIO ? e->metrics[metric].shift : 0, num, den,
                out);
}

/* ---- reading ---- */

uint32_t engine_columns(const engine_t *e)
{
    return e->nwin + PERIOD_COUNT + 1;
}

const char *engine_column_name(const engine_t *e, uint32_t i)
{
    return i < engine_columns(e) ? e->col_names[i] : NULL;
}

/* Columns of series sid, or of a missing series of the given kind. */
static void read_series(const engine_t *e, uint32_t sid, uint8_t kind, engine_values_t *out)
{
    const engine_series_t *s = sid != ENGINE_NONE ? ser(e, sid) : NULL;
    uint32_t ncols = engine_columns(e);
    out->kind = kind;
    out->change_ms = s ? s->change_ms : 0;
    out->ncols = ncols;
    for (uint32_t i = 0; i < ncols; i++) {
        engine_value_t *c = &out->col[i];
        c->name = e->col_names[i];
        c->den = 1;
        c->num = 0;
        c->present = kind == PROTO_KIND_COUNTER;
    }
    engine_value_t *total = &out->col[ncols - 1];
    if (s == NULL) {
        return;
    }
    if (kind == PROTO_KIND_GAUGE) {
        total->present = true;
        total->num = s->total;
        return;
    }
    for (uint32_t w = 0; w < e->nwin; w++) {
        out->col[w].present = window_value(&e->win, s->node, w, &out->col[w].num);
    }
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        out->col[e->nwin + p].num = period_value(&e->per, s->node, p);
    }
    total->num = s->total;
}

int engine_read(const engine_t *e, uint32_t metric, uint32_t town, engine_values_t *out)
{
    uint8_t kind = metric_kind(e, metric);
    if (kind != PROTO_KIND_RATIO) {
        uint32_t sid = find(e, metric, town);
        if (sid == ENGINE_NONE) {
            return TALLY_ENOTFOUND;
        }
        read_series(e, sid, ser(e, sid)->kind, out);
        return 0;
    }
    const engine_ratio_t *r = &e->ratios[e->metrics[metric].ratio];
    uint32_t nsid = find(e, r->num, town);
    uint32_t dsid = find(e, r->den, town);
    if (nsid == ENGINE_NONE && dsid == ENGINE_NONE) {
        return TALLY_ENOTFOUND;
    }
    engine_values_t den;
    read_series(e, nsid, nsid != ENGINE_NONE ? ser(e, nsid)->kind : metric_kind(e, r->num), out);
    read_series(e, dsid, dsid != ENGINE_NONE ? ser(e, dsid)->kind : metric_kind(e, r->den), &den);
    out->kind = PROTO_KIND_RATIO;
    out->change_ms = out->change_ms > den.change_ms ? out->change_ms : den.change_ms;
    for (uint32_t i = 0; i < out->ncols; i++) {
        ratio_value(e->metrics[metric].shift, &out->col[i], &den.col[i], &out->col[i]);
    }
    return 0;
}

int engine_read_item(const engine_t *e, const engine_item_t *item, engine_values_t *out)
{
    if (item->sid == ENGINE_NONE) {
        return engine_read(e, item->metric, item->town, out);
    }
    read_series(e, item->sid, item->kind, out);
    return 0;
}

/* ---- iteration ---- */

static engine_item_t ratio_item(const engine_t *e, const engine_ratio_t *r, uint32_t town)
{
    uint32_t nsid = find(e, r->num, town);
    uint32_t dsid = find(e, r->den, town);
    int64_t a = nsid != ENGINE_NONE ? ser(e, nsid)->change_ms : 0;
    int64_t b = dsid != ENGINE_NONE ? ser(e, dsid)->change_ms : 0;
    return (engine_item_t){r->metric, town, PROTO_KIND_RATIO, a > b ? a : b, ENGINE_NONE};
}

static engine_item_t series_item(const engine_t *e, uint32_t sid)
{
    const engine_series_t *s = ser(e, sid);
    return (engine_item_t){s->metric, s->town, s->kind, s->change_ms, sid};
}

/* Report the ratio scopes that read series s, each scope once across a
 * pass over many series: a scope goes with its numerator series, or with
 * its denominator when the numerator series is not in the pass.  pass is 0
 * for engine_foreach (every series is in it), else the drain pass. */
static int report_ratios(const engine_t *e, const engine_series_t *s, uint32_t pass,
                         engine_item_fn fn, void *ctx)
{
    uint32_t use = s->metric < e->nmetrics ? e->metrics[s->metric].uses : 0;
    for (const engine_ratio_t *r; use != 0; use = r->num == s->metric ? r->next_num : r->next_den) {
        r = &e->ratios[use - 1];
        if (r->num != s->metric) {
            uint32_t nsid = find(e, r->num, s->town);
            if (nsid != ENGINE_NONE &&
                (pass == 0 || ser(e, nsid)->dirty || ser(e, nsid)->drained == pass)) {
                continue;
            }
        }
        engine_item_t it = ratio_item(e, r, s->town);
        int rc = fn(ctx, &it);
        if (rc != 0 && pass == 0) {
            return rc;
        }
    }
    return 0;
}

#define DRAIN_AHEAD 4

uint32_t engine_drain_dirty(engine_t *e, uint32_t max, engine_item_fn fn, void *ctx)
{
    if (++e->drain_pass == 0) {
        /* The pass number wrapped: a stale mark equal to a new pass would
         * hide a ratio scope, so forget every mark once. */
        for (uint32_t sid = 0; sid < e->nseries; sid++) {
            ser(e, sid)->drained = 0;
        }
        e->drain_pass = 1;
    }
    bool ahead = e->nseries >= ENGINE_PREFETCH_SERIES;
    for (uint32_t n = 0; n < max && e->dq_head < e->dq_tail; n++) {
        /* with many series each is a cache miss, and so are its windows:
         * ask for the series eight ahead, and for the windows of the one
         * four ahead, whose series has come by now */
        uint32_t i = e->dq_head++;
        if (ahead && i + DRAIN_AHEAD * 2 < e->dq_tail) {
            __builtin_prefetch(ser(e, e->dirtyq[i + DRAIN_AHEAD * 2]));
        }
        if (ahead && i + DRAIN_AHEAD < e->dq_tail) {
            const engine_series_t *a = ser(e, e->dirtyq[i + DRAIN_AHEAD]);
            if (a->node != ENGINE_NONE) {
                window_prefetch(&e->win, a->node);
                period_prefetch(&e->per, a->node);
            }
        }
        engine_series_t *s = ser(e, e->dirtyq[i]);
        s->dirty = 0;
        s->drained = e->drain_pass;
        e->ndirty--;
        engine_item_t it = series_item(e, e->dirtyq[i]);
        fn(ctx, &it);
        report_ratios(e, s, e->drain_pass, fn, ctx);
    }
    if (e->dq_head == e->dq_tail) {
        e->dq_head = e->dq_tail = 0;
    }
    return e->ndirty;
}

int engine_foreach(const engine_t *e, engine_item_fn fn, void *ctx)
{
    for (uint32_t sid = 0; sid < e->nseries; sid++) {
        const engine_series_t *s = ser(e, sid);
        engine_item_t it = series_item(e, sid);
        int rc = fn(ctx, &it);
        if (rc == 0) {
            rc = report_ratios(e, s, 0, fn, ctx);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int engine_foreach_town(const engine_t *e, uint32_t town, uint32_t first, uint32_t last,
                        engine_item_fn fn, void *ctx)
{
    for (uint32_t m = first; m <= last && m >= first; m++) {
        uint32_t sid = find(e, m, town);
        if (sid == ENGINE_NONE) {
            continue;
        }
        engine_item_t it = series_item(e, sid);
        int rc = fn(ctx, &it);
        if (rc == 0) {
            /* every series of the town is in this pass: as engine_foreach */
            rc = report_ratios(e, ser(e, sid), 0, fn, ctx);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

uint32_t engine_foreach_from(const engine_t *e, uint32_t from, uint32_t max, engine_item_fn fn,
                             void *ctx)
{
    uint32_t end = from + max < from || from + max > e->nseries ? e->nseries : from + max;
    for (uint32_t sid = from; sid < end; sid++) {
        const engine_series_t *s = ser(e, sid);
        engine_item_t it = series_item(e, sid);
        fn(ctx, &it);
        report_ratios(e, s, 0, fn, ctx);
    }
    return end > from ? end : from;
}
