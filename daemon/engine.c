/* engine.c - the rolling-tally engine of tallyd (see engine.h).
 *
 * Layout.  A series is a 48-byte header (engine_series_t) in chunks of
 * SER_CHUNK, found by (metric, town) through an open-addressing index of
 * series ids.  A counter series also owns a node in the window set (its
 * rings) and in the period set (its calendar slots); gauges own no node.
 *
 * Applying a batch is two passes.  The plan pass finds or counts the series
 * each distinct metric needs and, per metric, the range [lo, hi] within
 * which the batch's running sum for that metric may move without any
 * touched cell leaving int64; it checks each sample against that range.
 * Only when the whole batch passes does the commit pass create series and
 * add each metric's net sum once.
 *
 * Computing that range exactly reads every touched cell of two series.
 * Each counter series therefore keeps a mass: a bound on |cell| for all of
 * its cells, grown by |net sum| at every commit (every cell is a sum of a
 * subset of the deltas applied to it, or of a loaded cell plus later
 * deltas).  While |acc| <= INT64_MAX - mass no cell can leave int64, so
 * the plan starts from that range and reads the cells only when a running
 * sum leaves it, or when the mass has saturated at INT64_MAX and bounds
 * nothing; the outcome is the same as the exact check's.
 *
 * Reading values and reporting changed series are in engine_read.c, saving
 * and loading in engine_persist.c, the settings in engine_config.c;
 * engine_internal.h holds the series lookup that engine.c and
 * engine_read.c share.
 */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "config.h"
#include "engine_internal.h"
#include "memhint.h"
#include "tally_error.h"
#include "vec.h"

#define INDEX_MIN  64
#define BMAP_BITS  13 /* 2 * ENGINE_BATCH_MAX slots */
#define BMAP_SIZE  (1u << BMAP_BITS)
#define WIDE_LIMIT ((__int128)1 << 100) /* "unbounded" for [lo, hi] */

typedef __int128 i128;

/* Per distinct metric of the batch being planned. */
struct engine_batch_entry {
    uint32_t metric;
    uint32_t tsid; /* township series, ENGINE_NONE until created */
    uint32_t csid; /* county series, likewise */
    uint8_t kind;
    bool set; /* gauge: a sample of the batch replaces the latest */
    bool has_latest;
    i128 acc;       /* counter: running sum of the batch's samples */
    i128 lo, hi;    /* counter: acc must stay within */
    bool exact;     /* counter: lo and hi come from the cells, not the mass */
    i128 county;    /* gauge: the county's value after the batch so far */
    int64_t latest; /* gauge: the township's latest value so far */
    int64_t latest_ms;
};

uint8_t engine_metric_kind(const engine_t *e, uint32_t metric)
{
    return metric_kind(e, metric);
}

int engine_ratio_operands(const engine_t *e, uint32_t metric, uint32_t *num, uint32_t *den)
{
    if (metric_kind(e, metric) != PROTO_KIND_RATIO)
        return TALLY_EINVAL;
    const engine_ratio_t *r = &e->ratios[e->metrics[metric].ratio];
    *num = r->num;
    *den = r->den;
    return 0;
}

static void *alloc_counted(engine_t *e, size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p != NULL) {
        e->mem += n * size;
    }
    return p;
}

int engine_init(engine_t *e, const engine_config_t *cfg, const tclock_t *clock)
{
    memset(e, 0, sizeof(*e));
    int rc = engine_config_check(cfg, NULL, 0);
    if (rc == 0) {
        rc = period_zone_apply(cfg->zone);
    }
    if (rc != 0) {
        return rc;
    }
    e->clock = clock;
    e->now_ms = clock_now_ms(clock);
    e->max_series = cfg->max_series;
    e->nwin = cfg->nwindows;
    rc = window_set_init(&e->win, cfg->windows, e->nwin, cfg->buckets, e->max_series, e->now_ms);
    if (rc == 0) {
        rc = period_set_init(&e->per, e->max_series, e->now_ms);
    }
    if (rc != 0) {
        engine_free(e);
        return rc;
    }
    for (uint32_t w = 0; w < e->nwin; w++) {
        e->col_names[w] = window_name(&e->win, w);
    }
    for (uint32_t p = 0; p <= PERIOD_COUNT; p++) {
        e->col_names[e->nwin + p] = engine_calendar_names[p];
    }
    e->maxchunks = (e->max_series + SER_CHUNK - 1) >> SER_CHUNK_SHIFT;
    e->chunks = alloc_counted(e, e->maxchunks, sizeof(*e->chunks));
    e->index = alloc_counted(e, INDEX_MIN, sizeof(uint64_t));
    e->index_mask = INDEX_MIN - 1;
    e->ents = alloc_counted(e, ENGINE_BATCH_MAX, sizeof(*e->ents));
    e->bmap = alloc_counted(e, BMAP_SIZE, sizeof(uint32_t));
    e->bgen = alloc_counted(e, BMAP_SIZE, sizeof(uint32_t));
    if (!e->chunks || !e->index || !e->ents || !e->bmap || !e->bgen) {
        engine_free(e);
        return TALLY_ENOMEM;
    }
    if (getrandom(&e->seed, sizeof(e->seed), 0) != (ssize_t)sizeof(e->seed)) {
        e->seed = (uint64_t)(uintptr_t)e ^ 0x9E3779B97F4A7C15ULL;
    }
    return 0;
}

void engine_free(engine_t *e)
{
    window_set_free(&e->win);
    period_set_free(&e->per);
    for (uint32_t i = 0; i < e->nchunks; i++) {
        free(e->chunks[i]);
    }
    free(e->chunks);
    free(e->index);
    free(e->node_series);
    free(e->metrics);
    free(e->ratios);
    free(e->ents);
    free(e->bmap);
    free(e->bgen);
    memhint_nofork_free(e->dirtyq, (size_t)e->dq_cap * sizeof(*e->dirtyq));
    memset(e, 0, sizeof(*e));
}

size_t engine_memory(const engine_t *e)
{
    return e->mem + window_memory(&e->win) + period_memory(&e->per);
}

void engine_regions(const engine_t *e, memhint_region_fn fn, void *ctx)
{
    for (uint32_t i = 0; i < e->nchunks; i++) {
        fn(ctx, e->chunks[i], SER_CHUNK * sizeof(**e->chunks));
    }
    if (e->index != NULL) {
        fn(ctx, e->index, ((size_t)e->index_mask + 1) * sizeof(*e->index));
    }
    window_set_regions(&e->win, fn, ctx);
    period_set_regions(&e->per, fn, ctx);
}

/* ---- metric catalog ---- */

static int ensure_metric(engine_t *e, uint32_t metric)
{
    if (metric < e->nmetrics) {
        return 0;
    }
    uint32_t n = metric + 1;
    size_t cap = e->metrics_cap;
    if (VEC_RESERVE(e->metrics, e->metrics_cap, n) != 0) {
        return TALLY_ENOMEM;
    }
    memset(e->metrics + e->nmetrics, 0, (n - e->nmetrics) * sizeof(*e->metrics));
    e->mem += (e->metrics_cap - cap) * sizeof(*e->metrics);
    e->nmetrics = n;
    return 0;
}

int engine_define_metric(engine_t *e, uint32_t metric, uint8_t kind)
{
    if (metric == 0 || (kind != PROTO_KIND_COUNTER && kind != PROTO_KIND_GAUGE)) {
        return TALLY_EINVAL;
    }
    if (engine_metric_kind(e, metric) == PROTO_KIND_RATIO) {
        return TALLY_EEXIST;
    }
    uint32_t county = find(e, metric, 0);
    if (county != ENGINE_NONE && ser(e, county)->kind != kind) {
        return TALLY_EEXIST;
    }
    int rc = ensure_metric(e, metric);
    if (rc != 0) {
        return rc;
    }
    e->metrics[metric].kind = kind;
    e->metrics[metric].declared = 1;
    return 0;
}

void engine_set_metric_scale(engine_t *e, uint32_t metric, uint8_t scale)
{
    if (metric < e->nmetrics && e->metrics[metric].declared && scale <= PROTO_SCALE_MAX) {
        e->metrics[metric].scale1 = (uint8_t)(scale + 1);
    }
}

int engine_metric_scale(const engine_t *e, uint32_t metric)
{
    if (metric >= e->nmetrics || !e->metrics[metric].declared)
        return 0;
    return e->metrics[metric].scale1 > 0 ? e->metrics[metric].scale1 - 1 : -1;
}

static void queue_dirty(engine_t *e, uint32_t sid);

int engine_define_ratio(engine_t *e, uint32_t metric, uint32_t num, uint32_t den)
{
    if (metric == 0 || num == 0 || den == 0 || metric == num || metric == den ||
        engine_metric_kind(e, num) == PROTO_KIND_RATIO ||
        engine_metric_kind(e, den) == PROTO_KIND_RATIO ||
        (metric < e->nmetrics && e->metrics[metric].uses != 0)) {
        return TALLY_EINVAL;
    }
    if ((metric < e->nmetrics && e->metrics[metric].declared) ||
        find(e, metric, 0) != ENGINE_NONE) {
        return TALLY_EEXIST;
    }
    uint32_t top = metric > num ? metric : num;
    top = top > den ? top : den;
    int rc = ensure_metric(e, top);
    if (rc != 0) {
        return rc;
    }
    size_t cap = e->ratios_cap;
    if (VEC_RESERVE(e->ratios, e->ratios_cap, (size_t)e->nratios + 1) != 0) {
        return TALLY_ENOMEM;
    }
    e->mem += (e->ratios_cap - cap) * sizeof(*e->ratios);
    /* Each input keeps a list of the ratios that read it, for publishing. */
    uint32_t ri = e->nratios++;
    e->ratios[ri] = (engine_ratio_t){metric, num, den, e->metrics[num].uses, 0};
    e->metrics[num].uses = ri + 1;
    if (den != num) {
        e->ratios[ri].next_den = e->metrics[den].uses;
        e->metrics[den].uses = ri + 1;
    }
    e->metrics[metric].kind = PROTO_KIND_RATIO;
    e->metrics[metric].declared = 1;
    e->metrics[metric].ratio = ri;
    /* Defined while its operands have series (a reload): its scopes are
     * new to the subscribers, who learn of them only in updates.  The
     * operands' series are queued again, as they are, so that the next
     * drain reports them and the ratio's scopes beside them. */
    for (uint32_t sid = 0; sid < e->nseries; sid++) {
        uint32_t m = ser(e, sid)->metric;
        if (m == num || m == den) {
            queue_dirty(e, sid);
        }
    }
    return 0;
}

/* ---- dirty marks and time ---- */

/* Queue series sid for the next drain, unless it is queued already. */
static void queue_dirty(engine_t *e, uint32_t sid)
{
    engine_series_t *s = ser(e, sid);
    if (!s->dirty) {
        s->dirty = 1;
        if (e->dq_tail == e->dq_cap) {
            /* s is not in the queue, so it holds fewer than dq_cap ids */
            memmove(e->dirtyq, e->dirtyq + e->dq_head, (size_t)e->ndirty * sizeof(uint32_t));
            e->dq_head = 0;
            e->dq_tail = e->ndirty;
        }
        e->dirtyq[e->dq_tail++] = sid;
        e->ndirty++;
    }
}

static void mark_dirty(engine_t *e, uint32_t sid)
{
    ser(e, sid)->change_ms = e->now_ms;
    queue_dirty(e, sid);
}

static void node_changed(void *ctx, uint32_t node)
{
    engine_t *e = ctx;
    mark_dirty(e, e->node_series[node]);
}

static void advance(engine_t *e, int64_t now_ms)
{
    if (now_ms <= e->now_ms) {
        return;
    }
    e->now_ms = now_ms;
    window_advance(&e->win, now_ms, node_changed, e);
    /* period_advance fails only for a time the C library cannot convert;
     * the periods then stay where they were, which is all that can be
     * done, and the next representable time catches up. */
    (void)period_advance(&e->per, now_ms, node_changed, e);
}

void engine_tick(engine_t *e, int64_t now_ms)
{
    advance(e, now_ms);
}

int64_t engine_next_tick_ms(const engine_t *e)
{
    int64_t w = window_next_ms(&e->win);
    int64_t p = period_next_ms(&e->per);
    return w < p ? w : p;
}

/* ---- series storage ---- */

static int grow_index(engine_t *e, uint32_t count)
{
    uint64_t slots = (uint64_t)e->index_mask + 1;
    if ((uint64_t)count * 2 <= slots) {
        return 0;
    }
    while ((uint64_t)count * 2 > slots) {
        slots *= 2;
    }
    uint64_t *index = calloc(slots, sizeof(uint64_t));
    if (index == NULL) {
        return TALLY_ENOMEM;
    }
    memhint_huge(index, slots * sizeof(uint64_t));
    memhint_populate(index, slots * sizeof(uint64_t)); /* every page gets entries */
    uint32_t mask = (uint32_t)(slots - 1);
    for (uint32_t i = 0; i <= e->index_mask; i++) {
        uint64_t v = e->index[i];
        if (v == 0) {
            continue;
        }
        uint32_t j = (uint32_t)(v >> 32) & mask;
        while (index[j] != 0) {
            j = (j + 1) & mask;
        }
        index[j] = v;
    }
    e->mem += (slots - (uint64_t)e->index_mask - 1) * sizeof(uint64_t);
    free(e->index);
    e->index = index;
    e->index_mask = mask;
    return 0;
}

/* Grow an array of series or node ids to hold need.  Not vec_reserve:
 * growth stops at max_series, where a doubling could allocate up to twice
 * what the limit lets the engine use.  nofork: an array of
 * memhint_nofork_alloc(), which a checkpoint's child never sees. */
static int grow_ids(engine_t *e, uint32_t **ids, uint32_t *cap_io, uint32_t need, bool nofork)
{
    if (need <= *cap_io) {
        return 0;
    }
    uint64_t cap = *cap_io ? (uint64_t)*cap_io * 2 : 1024;
    /* Series beyond max_series (it was lowered, see engine_apply_accepted)
     * grow by doubling as well, up to the most there can be. */
    uint64_t top = need <= e->max_series ? e->max_series : ENGINE_SERIES_MAX;
    cap = cap > top ? top : cap;
    cap = cap < need ? need : cap;
    uint32_t *p = nofork ? memhint_nofork_resize(*ids, (size_t)*cap_io * sizeof(uint32_t),
                                                 cap * sizeof(uint32_t))
                         : realloc(*ids, cap * sizeof(uint32_t));
    if (p == NULL) {
        return TALLY_ENOMEM;
    }
    e->mem += (cap - *cap_io) * sizeof(uint32_t);
    *ids = p;
    *cap_io = (uint32_t)cap;
    return 0;
}

/* Room in the table of chunks for need chunks: engine_init() sized it for
 * max_series, which a reload may raise. */
static int grow_chunk_table(engine_t *e, uint32_t need)
{
    if (need <= e->maxchunks) {
        return 0;
    }
    uint64_t cap = (uint64_t)e->maxchunks * 2;
    cap = cap < need ? need : cap;
    engine_series_t **c = realloc(e->chunks, cap * sizeof(*c));
    if (c == NULL) {
        return TALLY_ENOMEM;
    }
    e->mem += (cap - e->maxchunks) * sizeof(*c);
    e->chunks = c;
    e->maxchunks = (uint32_t)cap;
    return 0;
}

/* Make room for nnew more series, so that creating them cannot fail.  Only
 * capacity changes: nothing a reader can see. */
static int reserve(engine_t *e, uint32_t nnew)
{
    uint32_t count = e->nseries + nnew;
    if (count > ENGINE_SERIES_MAX) {
        return TALLY_ESERIESLIMIT;
    }
    int rc = grow_chunk_table(e, (count + SER_CHUNK - 1) >> SER_CHUNK_SHIFT);
    if (rc != 0) {
        return rc;
    }
    while (e->nchunks << SER_CHUNK_SHIFT < count) {
        engine_series_t *c = malloc(SER_CHUNK * sizeof(*c));
        if (c == NULL) {
            return TALLY_ENOMEM;
        }
        memhint_populate(c, SER_CHUNK * sizeof(*c)); /* filled in order from now */
        e->chunks[e->nchunks++] = c;
        e->mem += SER_CHUNK * sizeof(*c);
    }
    rc = grow_index(e, count);
    if (rc != 0) {
        return rc;
    }
    uint32_t nodes = e->nnodes + nnew;
    /* room for every series in the dirty queue: marking never fails */
    rc = grow_ids(e, &e->dirtyq, &e->dq_cap, count, true);
    if (rc == 0) {
        rc = grow_ids(e, &e->node_series, &e->node_cap, nodes, false);
    }
    if (rc != 0) {
        return rc;
    }
    rc = window_reserve(&e->win, nodes);
    return rc != 0 ? rc : period_reserve(&e->per, nodes);
}

/* Create a series; reserve() made room for it. */
static uint32_t create(engine_t *e, uint32_t metric, uint32_t town, uint8_t kind)
{
    uint32_t sid = e->nseries++;
    engine_series_t *s = ser(e, sid);
    memset(s, 0, sizeof(*s));
    s->metric = metric;
    s->town = town;
    s->kind = kind;
    s->node = ENGINE_NONE;
    if (kind == PROTO_KIND_COUNTER) {
        s->node = e->nnodes++;
        e->node_series[s->node] = sid;
        window_node_init(&e->win, s->node);
        period_node_init(&e->per, s->node);
    }
    uint32_t h = key_hash(e, metric, town);
    uint32_t i = h & e->index_mask;
    while (e->index[i] != 0) {
        i = (i + 1) & e->index_mask;
    }
    e->index[i] = slot_of(h, sid);
    return sid;
}

/* ---- apply ---- */

static inline void narrow(i128 cell, i128 *lo, i128 *hi)
{
    if ((i128)INT64_MIN - cell > *lo) {
        *lo = (i128)INT64_MIN - cell;
    }
    if ((i128)INT64_MAX - cell < *hi) {
        *hi = (i128)INT64_MAX - cell;
    }
}

/* Narrow a counter entry's range by every cell the batch touches in sid (a
 * missing series has only zero cells). */
static void counter_bounds(const engine_t *e, uint32_t sid, const window_pos_t *wpos,
                           const period_pos_t *ppos, engine_batch_entry_t *en)
{
    if (sid == ENGINE_NONE) {
        narrow(0, &en->lo, &en->hi);
        return;
    }
    const engine_series_t *s = ser(e, sid);
    narrow(s->total, &en->lo, &en->hi);
    window_bounds(&e->win, s->node, wpos, &en->lo, &en->hi);
    period_bounds(&e->per, s->node, ppos, &en->lo, &en->hi);
}

/* The batch entry of metric, created if the batch has not seen it. */
static engine_batch_entry_t *entry_of(engine_t *e, uint32_t metric, uint32_t *nent, bool *fresh)
{
    uint32_t i = (metric * 0x9E3779B1u) >> (32 - BMAP_BITS);
    for (;; i = (i + 1) & (BMAP_SIZE - 1)) {
        if (e->bgen[i] != e->gen) {
            break;
        }
        engine_batch_entry_t *en = &e->ents[e->bmap[i]];
        if (en->metric == metric) {
            *fresh = false;
            return en;
        }
    }
    e->bgen[i] = e->gen;
    e->bmap[i] = (*nent)++;
    *fresh = true;
    return &e->ents[e->bmap[i]];
}

/* The verdict on a result that left [lo + margin, hi - margin]: an
 * overflow when it left [lo, hi] as well, else the pending batches' room. */
static int out_of_room(i128 v, i128 lo, i128 hi)
{
    return v < lo || v > hi ? TALLY_EOVERFLOW : TALLY_EBUSY;
}

/* margin: how far the batches pending before this one may move any cell,
 * pend_new: how many series they may create (both 0 when applying);
 * limit: the series there may be once the batch has created its own. */
static int plan(engine_t *e, uint32_t town, int64_t t, const engine_sample_t *smp, uint32_t n,
                const window_pos_t *wpos, const period_pos_t *ppos, i128 margin, uint32_t pend_new,
                uint32_t limit, int32_t *bad, uint32_t *nent_out, uint32_t *nnew_out)
{
    if (++e->gen == 0) {
        /* The generation tag wrapped: forget every tag once. */
        memset(e->bgen, 0, BMAP_SIZE * sizeof(uint32_t));
        e->gen = 1;
    }
    uint32_t nent = 0, nnew = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t metric = smp[i].metric;
        int64_t v = smp[i].value;
        if (metric == 0) {
            *bad = (int32_t)i;
            return TALLY_EINVAL;
        }
        bool fresh;
        engine_batch_entry_t *en = entry_of(e, metric, &nent, &fresh);
        if (fresh) {
            en->metric = metric;
            en->kind = engine_metric_kind(e, metric);
            if (en->kind == PROTO_KIND_RATIO) {
                *bad = (int32_t)i;
                return TALLY_EKIND;
            }
            en->tsid = find(e, metric, town);
            en->csid = find(e, metric, 0);
            uint32_t add = (en->tsid == ENGINE_NONE) + (en->csid == ENGINE_NONE);
            nnew += add;
            /* The limit is on creating series: those held take samples
             * whatever their number (a limit lowered below it). */
            if (add > 0 && (uint64_t)e->nseries + nnew > limit) {
                *bad = (int32_t)i;
                return TALLY_ESERIESLIMIT;
            }
            /* Series the pending batches may create count too. */
            if (add > 0 && pend_new > 0 && (uint64_t)e->nseries + nnew + pend_new > limit) {
                *bad = (int32_t)i;
                return TALLY_EBUSY;
            }
            en->set = false;
            en->acc = 0;
            if (en->kind == PROTO_KIND_COUNTER) {
                int64_t tm = en->tsid != ENGINE_NONE ? ser(e, en->tsid)->mass : 0;
                int64_t cm = en->csid != ENGINE_NONE ? ser(e, en->csid)->mass : 0;
                i128 m = (i128)(tm > cm ? tm : cm) + margin;
                /* A saturated mass bounds nothing (a window sum may even
                 * be past int64): read the cells. */
                en->exact = m >= INT64_MAX;
                en->hi = en->exact ? WIDE_LIMIT : (i128)INT64_MAX - m;
                en->lo = -en->hi;
                if (en->exact) {
                    counter_bounds(e, en->tsid, wpos, ppos, en);
                    counter_bounds(e, en->csid, wpos, ppos, en);
                }
            } else {
                en->has_latest = en->tsid != ENGINE_NONE;
                en->latest = en->has_latest ? ser(e, en->tsid)->total : 0;
                en->latest_ms = en->has_latest ? ser(e, en->tsid)->gauge_ms : 0;
                en->county = en->csid != ENGINE_NONE ? ser(e, en->csid)->total : 0;
            }
        }
        if (en->kind == PROTO_KIND_COUNTER) {
            en->acc += v;
            if ((en->acc < en->lo || en->acc > en->hi) && !en->exact) {
                en->lo = -WIDE_LIMIT;
                en->hi = WIDE_LIMIT;
                en->exact = true;
                counter_bounds(e, en->tsid, wpos, ppos, en);
                counter_bounds(e, en->csid, wpos, ppos, en);
            }
            /* In exact mode [lo, hi] comes from the cells as they are;
             * the pending batches may move them by up to margin. */
            i128 lo = en->exact ? en->lo + margin : en->lo;
            i128 hi = en->exact ? en->hi - margin : en->hi;
            if (en->acc < lo || en->acc > hi) {
                int rc = out_of_room(en->acc, en->lo, en->hi);
                if (rc == TALLY_EOVERFLOW) {
                    /* Whose cells: the township's own, or only the
                     * county's? */
                    engine_batch_entry_t own = {.lo = -WIDE_LIMIT, .hi = WIDE_LIMIT};
                    counter_bounds(e, en->tsid, wpos, ppos, &own);
                    e->overflow_county = en->acc >= own.lo && en->acc <= own.hi;
                }
                *bad = (int32_t)i;
                return rc;
            }
        } else if (!en->has_latest || t >= en->latest_ms) {
            i128 county = en->county - en->latest + v;
            if (county < (i128)INT64_MIN + margin || county > (i128)INT64_MAX - margin) {
                e->overflow_county = true; /* a gauge's own value is just v */
                *bad = (int32_t)i;
                return out_of_room(county, INT64_MIN, INT64_MAX);
            }
            en->county = county;
            en->latest = v;
            en->latest_ms = t;
            en->has_latest = true;
            en->set = true;
        }
    }
    *nent_out = nent;
    *nnew_out = nnew;
    return 0;
}

int64_t engine_mass_add(int64_t m, i128 v)
{
    i128 r = (i128)m + (v < 0 ? -v : v);
    return r > INT64_MAX ? INT64_MAX : (int64_t)r;
}

static void counter_add(engine_t *e, uint32_t sid, const window_pos_t *wpos,
                        const period_pos_t *ppos, i128 delta)
{
    engine_series_t *s = ser(e, sid);
    s->total = (int64_t)(s->total + delta);
    s->mass = engine_mass_add(s->mass, delta);
    window_add(&e->win, s->node, wpos, delta);
    period_add(&e->per, s->node, ppos, delta);
    mark_dirty(e, sid);
}

static void commit(engine_t *e, uint32_t town, const window_pos_t *wpos, const period_pos_t *ppos,
                   uint32_t nent)
{
    for (uint32_t i = 0; i < nent; i++) {
        engine_batch_entry_t *en = &e->ents[i];
        if (en->kind == PROTO_KIND_GAUGE && !en->set) {
            continue; /* every sample was older than the latest value */
        }
        if (en->tsid == ENGINE_NONE) {
            en->tsid = create(e, en->metric, town, en->kind);
        }
        if (en->csid == ENGINE_NONE) {
            en->csid = create(e, en->metric, 0, en->kind);
        }
        if (en->kind == PROTO_KIND_COUNTER) {
            counter_add(e, en->tsid, wpos, ppos, en->acc);
            counter_add(e, en->csid, wpos, ppos, en->acc);
        } else {
            engine_series_t *ts = ser(e, en->tsid);
            ts->total = en->latest;
            ts->gauge_ms = en->latest_ms;
            ser(e, en->csid)->total = (int64_t)en->county;
            mark_dirty(e, en->tsid);
            mark_dirty(e, en->csid);
        }
    }
}

/* Check a batch, and apply it too when apply is set (a check allows for
 * the pending batches, an apply does not: it comes after those before it),
 * creating series up to limit. */
static int run(engine_t *e, uint32_t town, int64_t t, const engine_sample_t *smp, uint32_t n,
               int32_t *bad, bool apply, uint32_t limit)
{
    int32_t ignored;
    bad = bad != NULL ? bad : &ignored;
    *bad = -1;
    if (n == 0) {
        return TALLY_EEMPTY;
    }
    if (n > ENGINE_BATCH_MAX) {
        return TALLY_ETOOMANY;
    }
    if (town == 0) {
        return TALLY_EINVAL;
    }
    if (t < PROTO_TIME_MIN || t >= PROTO_TIME_MAX) {
        return TALLY_ERANGE;
    }
    advance(e, clock_now_ms(e->clock));
    window_pos_t wpos;
    period_pos_t ppos;
    window_locate(&e->win, t, &wpos);
    period_locate(&e->per, t, &ppos);
    uint32_t nent, nnew;
    i128 margin = apply ? 0 : e->pend_mass;
    uint32_t pend_new = apply ? 0 : e->pend_new;
    int rc = plan(e, town, t, smp, n, &wpos, &ppos, margin, pend_new, limit, bad, &nent, &nnew);
    if (rc == 0 && apply && nnew > 0) {
        rc = reserve(e, nnew);
    }
    if (rc == 0 && apply) {
        /* Every window of every series the batch adds to (a township's and
         * the county's per entry) may need its dense ring (window.h). */
        rc = window_reserve_dense(&e->win, 2 * nent * e->win.nwin);
    }
    if (rc == 0 && apply) {
        /* ... and an entry in the ahead table per period in which the
         * sample is early (period.h). */
        uint32_t early = 0;
        for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
            early += ppos.slot[p] == 1;
        }
        if (early > 0) {
            rc = period_reserve_ahead(&e->per, 2 * nent * early);
        }
    }
    if (rc == 0 && apply) {
        commit(e, town, &wpos, &ppos, nent);
    } else if (rc == 0) {
        e->last_nnew = nnew;
    }
    return rc;
}

int engine_check(engine_t *e, uint32_t town, int64_t time_ms, const engine_sample_t *samples,
                 uint32_t n, int32_t *bad)
{
    return run(e, town, time_ms, samples, n, bad, false, e->max_series);
}

int engine_apply(engine_t *e, uint32_t town, int64_t time_ms, const engine_sample_t *samples,
                 uint32_t n, int32_t *bad)
{
    return run(e, town, time_ms, samples, n, bad, true, e->max_series);
}

int engine_apply_accepted(engine_t *e, uint32_t town, int64_t time_ms,
                          const engine_sample_t *samples, uint32_t n, int32_t *bad)
{
    return run(e, town, time_ms, samples, n, bad, true, ENGINE_SERIES_MAX);
}

int64_t engine_pend(engine_t *e, uint32_t town, const engine_sample_t *samples, uint32_t n)
{
    /* How far this batch may move a cell: |v| for a counter sample; for a
     * gauge sample the county moves by v minus the township's latest, so
     * |v| + |latest|. */
    i128 m = 0;
    for (uint32_t i = 0; i < n; i++) {
        int64_t v = samples[i].value;
        m += v < 0 ? -(i128)v : v;
        if (metric_kind(e, samples[i].metric) == PROTO_KIND_GAUGE) {
            uint32_t sid = find(e, samples[i].metric, town);
            int64_t latest = sid != ENGINE_NONE ? ser(e, sid)->total : 0;
            m += latest < 0 ? -(i128)latest : latest;
        }
    }
    int64_t mass = m > INT64_MAX ? INT64_MAX : (int64_t)m;
    e->pend_mass += mass;
    e->pend_new += e->last_nnew;
    return mass;
}

void engine_unpend(engine_t *e, int64_t mass, uint32_t nnew)
{
    e->pend_mass -= mass;
    e->pend_new -= nnew;
}

/* ---- for engine_persist.c (declared in engine.h) ---- */

engine_series_t *engine_series_at(const engine_t *e, uint32_t sid)
{
    return ser(e, sid);
}

void engine_prefetch(const engine_t *e, uint32_t town, const engine_sample_t *samples, uint32_t n,
                     int stage)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t metric = samples[i].metric, h = key_hash(e, metric, town);
        const uint64_t *slot = &e->index[h & e->index_mask];
        if (stage == 0) {
            __builtin_prefetch(slot);
            continue;
        }
        /* the first probe only: most keys sit in their own slot */
        uint64_t v = *slot;
        if (v == 0 || (uint32_t)(v >> 32) != h)
            continue;
        const engine_series_t *s = ser(e, (uint32_t)v - 1);
        if (stage == 1) {
            __builtin_prefetch(s, 1);
            __builtin_prefetch((const char *)(s + 1) - 1, 1);
        } else if (s->metric == metric && s->town == town && s->node != ENGINE_NONE) {
            window_prefetch(&e->win, s->node);
            period_prefetch(&e->per, s->node);
        }
    }
}

uint32_t engine_series_find(const engine_t *e, uint32_t metric, uint32_t town)
{
    return find(e, metric, town);
}

uint32_t engine_series_add(engine_t *e, uint32_t metric, uint32_t town, uint8_t kind)
{
    bool room = reserve(e, 1) == 0;
    return room ? create(e, metric, town, kind) : ENGINE_NONE;
}
