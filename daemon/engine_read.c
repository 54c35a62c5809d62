/* engine_read.c - the reading side of the tally engine (see engine.h):
 * column values of a series or ratio scope (engine_read), the column
 * names, and the reports of changed series to the publisher
 * (engine_drain_dirty) and of every series to a snapshot (engine_foreach).
 * Storage, time and applying batches are in engine.c.
 */
#include "engine.h"

#include "engine_internal.h"
#include "tally_error.h"

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
        engine_value_t *c = &out->col[i];
        c->den = den.col[i].num;
        c->present = c->present && den.col[i].present && c->den != 0;
        if (!c->present) {
            c->num = 0;
            c->den = 0;
        }
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
