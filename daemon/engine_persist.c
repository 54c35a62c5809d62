/* engine_persist.c - serialization of the tally engine for checkpoints
 * (engine_save and engine_load, see engine.h).
 *
 * Layout, little-endian; "uv" is an unsigned LEB128 varint, "sv" a signed
 * one (zigzag), so small values and time differences take a byte or two:
 *
 *   "TENG"                          magic
 *   i64 now_ms                      the engine's now
 *   u32 nwin, u32 buckets           window configuration, then per window:
 *     u8 name length, name, i64 width in ms
 *   i64 day start, i64 day end,     the local day holding now, and its
 *   i32 key[4]                      period keys (a time zone check)
 *   uv n, n x (uv metric, u8 kind)  declared counter and gauge metrics; the
 *                                   kind's high four bits hold the metric's
 *                                   decimal scale + 1 (0: not known, as in
 *                                   checkpoints before format version 3)
 *   uv n, n x (uv metric, uv num, uv den)   ratios, in declaration order
 *   uv nseries, then per series in id order:
 *     uv metric, uv town, u8 kind, sv total, sv (now - change_ms)
 *     gauge:   sv (now - gauge_ms)
 *     counter: per window: uv count, count x (uv offset step, sv value)
 *              u8 period mask, then sv values (see below)
 *   "DNET"                          end magic
 *
 * A window's buckets are saved by their offset from the window's oldest
 * bucket at the saved now (the first offset as is, each next one as the
 * step from the previous minus one).  Loading sets the engine's now back
 * to the saved now before adding them, so every bucket lands in the ring
 * slot it had and leaves the window at the same tick as in the engine
 * that was saved.  Bit 2p of the period mask says the series has a
 * non-zero value for the current period p, bit 2p + 1 for the next one
 * (a sample from tomorrow within the clock skew); older period keys can
 * never be read again and are not saved.
 */
#include "engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "tally_error.h"

#define OUT_CAP   65536
#define MAGIC     "TENG"
#define END_MAGIC "DNET"
/* Ids come from intern.h tables, which never give out more than this; a
 * larger id in the data is damage, and must not size any allocation. */
#define ID_MAX INTERN_CAPACITY_MAX

/* ---- writing ---- */

typedef struct out {
    engine_write_fn write;
    void *ctx;
    int rc;
    size_t n;
    uint8_t buf[OUT_CAP];
} out_t;

static void flush(out_t *o)
{
    if (o->rc == 0 && o->n > 0) {
        o->rc = o->write(o->ctx, o->buf, o->n);
    }
    o->n = 0;
}

static inline void room(out_t *o, size_t k)
{
    if (o->n + k > OUT_CAP) {
        flush(o);
    }
}

static void put_bytes(out_t *o, const void *p, size_t k)
{
    room(o, k);
    memcpy(o->buf + o->n, p, k);
    o->n += k;
}

static void put_u8(out_t *o, uint8_t v)
{
    room(o, 1);
    o->buf[o->n++] = v;
}

static void put_u32(out_t *o, uint32_t v)
{
    room(o, 4);
    for (int i = 0; i < 4; i++) {
        o->buf[o->n++] = (uint8_t)(v >> (8 * i));
    }
}

static void put_i64(out_t *o, int64_t v)
{
    room(o, 8);
    for (int i = 0; i < 8; i++) {
        o->buf[o->n++] = (uint8_t)((uint64_t)v >> (8 * i));
    }
}

static void put_uv(out_t *o, uint64_t v)
{
    room(o, 10);
    while (v >= 0x80) {
        o->buf[o->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    o->buf[o->n++] = (uint8_t)v;
}

static void put_sv(out_t *o, int64_t v)
{
    put_uv(o, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* a - b without signed overflow: the saved time differences wrap the same
 * way on both sides. */
static inline int64_t diff(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a - (uint64_t)b);
}

static void save_header(const engine_t *e, out_t *o)
{
    const window_set_t *ws = &e->win;
    put_bytes(o, MAGIC, 4);
    put_i64(o, e->now_ms);
    put_u32(o, ws->nwin);
    put_u32(o, ws->nbuckets);
    for (uint32_t w = 0; w < ws->nwin; w++) {
        size_t len = strlen(ws->win[w].name);
        put_u8(o, (uint8_t)len);
        put_bytes(o, ws->win[w].name, len);
        put_i64(o, ws->win[w].width_ms * ws->nbuckets);
    }
    put_i64(o, e->per.today.start_ms);
    put_i64(o, e->per.today.end_ms);
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        put_u32(o, (uint32_t)e->per.today.key[p]);
    }
    uint32_t ndefs = 0;
    for (uint32_t m = 0; m < e->nmetrics; m++) {
        ndefs += e->metrics[m].declared && e->metrics[m].kind != PROTO_KIND_RATIO;
    }
    put_uv(o, ndefs);
    for (uint32_t m = 0; m < e->nmetrics; m++) {
        if (e->metrics[m].declared && e->metrics[m].kind != PROTO_KIND_RATIO) {
            put_uv(o, m);
            put_u8(o, (uint8_t)(e->metrics[m].kind | e->metrics[m].scale1 << 4));
        }
    }
    put_uv(o, e->nratios);
    for (uint32_t r = 0; r < e->nratios; r++) {
        put_uv(o, e->ratios[r].metric);
        put_uv(o, e->ratios[r].num);
        put_uv(o, e->ratios[r].den);
    }
}

static void save_counter(const engine_t *e, const engine_series_t *s, uint32_t *off, int64_t *val,
                         out_t *o)
{
    for (uint32_t w = 0; w < e->win.nwin; w++) {
        uint32_t k = window_buckets(&e->win, s->node, w, off, val);
        put_uv(o, k);
        for (uint32_t i = 0; i < k; i++) {
            put_uv(o, i == 0 ? off[0] : off[i] - off[i - 1] - 1);
            put_sv(o, val[i]);
        }
    }
    int64_t v[2 * PERIOD_COUNT];
    uint8_t mask = 0;
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        for (uint32_t j = 0; j < 2; j++) {
            v[2 * p + j] = period_value_at(&e->per, s->node, p, e->per.today.key[p] + (int32_t)j);
            mask |= (uint8_t)((v[2 * p + j] != 0) << (2 * p + j));
        }
    }
    put_u8(o, mask);
    for (uint32_t i = 0; i < 2 * PERIOD_COUNT; i++) {
        if (v[i] != 0) {
            put_sv(o, v[i]);
        }
    }
}

int engine_save(const engine_t *e, engine_write_fn write, void *ctx)
{
    out_t *o = malloc(sizeof(*o));
    uint32_t nb = e->win.nbuckets ? e->win.nbuckets : 1;
    uint32_t *off = malloc(nb * sizeof(*off));
    int64_t *val = malloc(nb * sizeof(*val));
    if (o == NULL || off == NULL || val == NULL) {
        free(o);
        free(off);
        free(val);
        return TALLY_ENOMEM;
    }
    o->write = write;
    o->ctx = ctx;
    o->rc = 0;
    o->n = 0;
    save_header(e, o);
    put_uv(o, e->nseries);
    for (uint32_t sid = 0; sid < e->nseries && o->rc == 0; sid++) {
        const engine_series_t *s = engine_series_at(e, sid);
        put_uv(o, s->metric);
        put_uv(o, s->town);
        put_u8(o, s->kind);
        put_sv(o, s->total);
        put_sv(o, diff(e->now_ms, s->change_ms));
        if (s->kind == PROTO_KIND_GAUGE) {
            put_sv(o, diff(e->now_ms, s->gauge_ms));
        } else {
            save_counter(e, s, off, val, o);
        }
    }
    put_bytes(o, END_MAGIC, 4);
    flush(o);
    int rc = o->rc;
    free(o);
    free(off);
    free(val);
    return rc;
}

/* ---- reading ---- */

typedef struct in {
    const uint8_t *p, *end, *start;
    bool bad; /* ran past the end or met an overlong varint */
} in_t;

static bool take(in_t *in, size_t k)
{
    if (in->bad || (size_t)(in->end - in->p) < k) {
        in->bad = true;
        return false;
    }
    return true;
}

static uint8_t get_u8(in_t *in)
{
    return take(in, 1) ? *in->p++ : 0;
}

static uint32_t get_u32(in_t *in)
{
    uint32_t v = 0;
    if (take(in, 4)) {
        for (int i = 0; i < 4; i++) {
            v |= (uint32_t)*in->p++ << (8 * i);
        }
    }
    return v;
}

static int64_t get_i64(in_t *in)
{
    uint64_t v = 0;
    if (take(in, 8)) {
        for (int i = 0; i < 8; i++) {
            v |= (uint64_t)*in->p++ << (8 * i);
        }
    }
    return (int64_t)v;
}

static uint64_t get_uv(in_t *in)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (!take(in, 1)) {
            return 0;
        }
        uint8_t b = *in->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            return v;
        }
    }
    in->bad = true;
    return 0;
}

static int64_t get_sv(in_t *in)
{
    uint64_t u = get_uv(in);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* An id in 0..ID_MAX (0 only where allow_zero), else damage. */
static uint32_t get_id(in_t *in, bool allow_zero)
{
    uint64_t v = get_uv(in);
    if (v > ID_MAX || (v == 0 && !allow_zero)) {
        in->bad = true;
        return 0;
    }
    return (uint32_t)v;
}

#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        if (err != NULL && errlen > 0) {                                                           \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
        }                                                                                          \
        return (code);                                                                             \
    } while (0)

#define TRUNCATED(in, what)                                                                        \
    FAIL(TALLY_EIO, "engine state: %s is malformed (at byte %zu of %zu)", (what),                  \
         (size_t)((in)->p - (in)->start), (size_t)((in)->end - (in)->start))

/* "1h=3600000ms 24h=86400000ms" into buf. */
static void describe(char *buf, size_t len, const window_spec_t *spec, uint32_t nwin)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t w = 0; w < nwin && used < len; w++) {
        int n = snprintf(buf + used, len - used, "%s%s=%" PRId64 "ms", w ? " " : "", spec[w].name,
                         spec[w].ms);
        used += n > 0 ? (size_t)n : 0;
    }
    if (nwin == 0) {
        snprintf(buf, len, "none");
    }
}

/* Read the saved window configuration, refuse it unless it is e's, and
 * set e's windows and periods back (or forward) to the saved now. */
static int load_config(engine_t *e, in_t *in, int64_t now, char *err, size_t errlen)
{
    uint32_t nwin = get_u32(in);
    uint32_t nb = get_u32(in);
    if (in->bad || nwin > WINDOW_MAX) {
        TRUNCATED(in, "the window count");
    }
    char names[WINDOW_MAX][WINDOW_NAME_MAX + 1];
    window_spec_t saved[WINDOW_MAX], mine[WINDOW_MAX];
    for (uint32_t w = 0; w < nwin; w++) {
        uint8_t len = get_u8(in);
        if (len > WINDOW_NAME_MAX || !take(in, len)) {
            TRUNCATED(in, "a window name");
        }
        memcpy(names[w], in->p, len);
        names[w][len] = '\0';
        in->p += len;
        saved[w] = (window_spec_t){names[w], get_i64(in)};
    }
    if (in->bad) {
        TRUNCATED(in, "a window width");
    }
    const window_set_t *ws = &e->win;
    bool same = nwin == ws->nwin && nb == ws->nbuckets;
    for (uint32_t w = 0; w < ws->nwin; w++) {
        mine[w] = (window_spec_t){ws->win[w].name, ws->win[w].width_ms * ws->nbuckets};
        same = same && w < nwin && strcmp(saved[w].name, mine[w].name) == 0 &&
               saved[w].ms == mine[w].ms;
    }
    if (!same) {
        char a[WINDOW_MAX * 40], b[WINDOW_MAX * 40];
        describe(a, sizeof(a), saved, nwin);
        describe(b, sizeof(b), mine, ws->nwin);
        FAIL(TALLY_ECONFIG,
             "windows changed: the saved state has windows %s with %u buckets each, the "
             "configuration has %s with %u buckets each; the saved buckets cannot be placed in "
             "other windows (restore the old windows, or move the state away to start empty)",
             a, nb, b, ws->nbuckets);
    }
    /* The sets hold nothing yet, so rebuilding them at the saved now is
     * the whole of moving their time. */
    for (uint32_t w = 0; w < nwin; w++) {
        saved[w].name = names[w];
    }
    window_set_free(&e->win);
    int rc = window_set_init(&e->win, saved, nwin, nb, e->max_series, now);
    if (rc != 0) {
        FAIL(rc, "engine state: cannot rebuild the windows: %s", tally_strerror(rc));
    }
    for (uint32_t w = 0; w < nwin; w++) {
        e->col_names[w] = window_name(&e->win, w);
    }
    period_set_free(&e->per);
    rc = period_set_init(&e->per, e->max_series, now);
    if (rc != 0) {
        FAIL(rc == TALLY_ERANGE ? TALLY_EIO : rc, "engine state: the saved now %" PRId64 ": %s",
             now, tally_strerror(rc));
    }
    period_day_t day;
    day.start_ms = get_i64(in);
    day.end_ms = get_i64(in);
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        day.key[p] = (int32_t)get_u32(in);
    }
    if (in->bad) {
        TRUNCATED(in, "the saved day");
    }
    const period_day_t *t = &e->per.today;
    if (day.start_ms != t->start_ms || day.end_ms != t->end_ms ||
        memcmp(day.key, t->key, sizeof(day.key)) != 0) {
        FAIL(TALLY_ECONFIG,
             "time zone changed: at the saved now (%" PRId64 " ms) the saved state's local day "
             "ran from %" PRId64 " to %" PRId64 " ms (day %d), in this time zone it runs from "
             "%" PRId64 " to %" PRId64 " ms (day %d); calendar periods cannot be carried over",
             now, day.start_ms, day.end_ms, day.key[PERIOD_DAY], t->start_ms, t->end_ms,
             t->key[PERIOD_DAY]);
    }
    e->now_ms = now;
    return 0;
}

static const char *kind_name(uint8_t kind)
{
    return kind == PROTO_KIND_GAUGE ? "gauge" : kind == PROTO_KIND_RATIO ? "ratio" : "counter";
}

/* Declare the saved kinds and ratios in e, accepting what e already has
 * when it agrees. */
static int load_defs(engine_t *e, in_t *in, char *err, size_t errlen)
{
    uint64_t ndefs = get_uv(in);
    for (uint64_t i = 0; i < ndefs && !in->bad; i++) {
        uint32_t m = get_id(in, false);
        uint8_t byte = get_u8(in), kind = byte & 0x0F, scale1 = byte >> 4;
        if (in->bad || (kind != PROTO_KIND_COUNTER && kind != PROTO_KIND_GAUGE) ||
            scale1 > PROTO_SCALE_MAX + 1) {
            TRUNCATED(in, "a metric declaration");
        }
        if (m < e->nmetrics && e->metrics[m].declared && e->metrics[m].kind != kind) {
            FAIL(TALLY_ECONFIG,
                 "metric id %u: declared a %s before loading, but a %s in the saved state", m,
                 kind_name(e->metrics[m].kind), kind_name(kind));
        }
        int rc = engine_define_metric(e, m, kind);
        if (rc != 0) {
            FAIL(rc == TALLY_ENOMEM ? rc : TALLY_EIO, "engine state: metric id %u as a %s: %s", m,
                 kind_name(kind), tally_strerror(rc));
        }
        if (scale1 > 0) {
            engine_set_metric_scale(e, m, (uint8_t)(scale1 - 1));
        }
    }
    uint64_t nratios = get_uv(in);
    for (uint64_t i = 0; i < nratios && !in->bad; i++) {
        uint32_t m = get_id(in, false);
        uint32_t num = get_id(in, false);
        uint32_t den = get_id(in, false);
        if (in->bad) {
            TRUNCATED(in, "a ratio declaration");
        }
        if (engine_metric_kind(e, m) == PROTO_KIND_RATIO) {
            const engine_ratio_t *r = &e->ratios[e->metrics[m].ratio];
            if (r->num == num && r->den == den) {
                continue;
            }
            FAIL(TALLY_ECONFIG,
                 "metric id %u: declared the ratio %u / %u before loading, but %u / %u in the "
                 "saved state",
                 m, r->num, r->den, num, den);
        }
        int rc = engine_define_ratio(e, m, num, den);
        if (rc != 0) {
            FAIL(rc == TALLY_ENOMEM ? rc : TALLY_ECONFIG,
                 "metric id %u: the saved ratio %u / %u cannot be declared here (%s)", m, num, den,
                 tally_strerror(rc));
        }
    }
    if (in->bad) {
        TRUNCATED(in, "the declarations");
    }
    return 0;
}

/* The buckets and calendar slots of counter series s, and its mass: every
 * later cell is a loaded cell, or a sum of loaded buckets, plus later
 * deltas, so the sum of the magnitudes of what is loaded bounds them. */
static bool load_counter(engine_t *e, in_t *in, engine_series_t *s)
{
    s->mass = engine_mass_add(0, s->total);
    window_set_t *ws = &e->win;
    uint32_t n = ws->nbuckets;
    window_pos_t wpos;
    for (uint32_t w = 0; w < ws->nwin; w++) {
        wpos.slot[w] = -1;
    }
    for (uint32_t w = 0; w < ws->nwin; w++) {
        uint64_t k = get_uv(in);
        uint64_t off = 0;
        for (uint64_t i = 0; i < k && !in->bad; i++) {
            uint64_t step = get_uv(in);
            int64_t v = get_sv(in);
            if (k > n || step >= n || (off += step + (i > 0)) >= n || v == 0) {
                return false;
            }
            int64_t slot = (ws->win[w].cur + 1 + (int64_t)off) % (int64_t)n;
            wpos.slot[w] = (int32_t)(slot < 0 ? slot + n : slot);
            wpos.off[w] = (uint32_t)off;
            window_add(ws, s->node, &wpos, v);
            s->mass = engine_mass_add(s->mass, v);
        }
        wpos.slot[w] = -1;
    }
    uint8_t mask = get_u8(in);
    period_pos_t ppos;
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        ppos.slot[p] = -1;
    }
    for (uint32_t p = 0; p < PERIOD_COUNT; p++) {
        for (uint32_t j = 0; j < 2; j++) {
            if ((mask >> (2 * p + j)) & 1) {
                int64_t v = get_sv(in);
                if (v == 0) {
                    return false;
                }
                ppos.key[p] = e->per.today.key[p] + (int32_t)j;
                ppos.slot[p] = (int8_t)j; /* the ahead entry is reserved */
                period_add(&e->per, s->node, &ppos, v);
                s->mass = engine_mass_add(s->mass, v);
                ppos.slot[p] = -1;
            }
        }
    }
    return !in->bad;
}

static int load_series(engine_t *e, in_t *in, char *err, size_t errlen)
{
    uint64_t nseries = get_uv(in);
    if (in->bad) {
        TRUNCATED(in, "the series count");
    }
    /* More than max_series is no reason to refuse: the limit was lowered
     * since, and keeps new series from being created (engine.h). */
    if (nseries > ENGINE_SERIES_MAX) {
        FAIL(TALLY_EIO, "engine state: %" PRIu64 " series, more than the %u an engine holds",
             nseries, ENGINE_SERIES_MAX);
    }
    for (uint64_t i = 0; i < nseries; i++) {
        uint32_t metric = get_id(in, false);
        uint32_t town = get_id(in, true);
        uint8_t kind = get_u8(in);
        int64_t total = get_sv(in);
        int64_t change = diff(e->now_ms, get_sv(in));
        if (in->bad || (kind != PROTO_KIND_COUNTER && kind != PROTO_KIND_GAUGE)) {
            TRUNCATED(in, "a series");
        }
        if (engine_metric_kind(e, metric) != kind) {
            FAIL(TALLY_ECONFIG,
                 "series %" PRIu64 " (metric id %u, township id %u) is a %s, but the metric is "
                 "declared a %s",
                 i, metric, town, kind_name(kind), kind_name(engine_metric_kind(e, metric)));
        }
        if (engine_series_find(e, metric, town) != ENGINE_NONE) {
            FAIL(TALLY_EIO,
                 "engine state: series %" PRIu64 " (metric id %u, township id %u) is "
                 "saved twice",
                 i, metric, town);
        }
        uint32_t sid = engine_series_add(e, metric, town, kind);
        /* Each window of a counter may need a dense ring (window.h), each
         * period an entry of the ahead table (period.h). */
        if (sid != ENGINE_NONE && kind == PROTO_KIND_COUNTER &&
            (window_reserve_dense(&e->win, e->win.nwin) != 0 ||
             period_reserve_ahead(&e->per, PERIOD_COUNT) != 0)) {
            sid = ENGINE_NONE;
        }
        if (sid == ENGINE_NONE) {
            FAIL(TALLY_ENOMEM, "engine state: no memory for series %" PRIu64 " of %" PRIu64, i,
                 nseries);
        }
        engine_series_t *s = engine_series_at(e, sid);
        s->total = total;
        s->change_ms = change;
        if (kind == PROTO_KIND_GAUGE) {
            s->gauge_ms = diff(e->now_ms, get_sv(in));
        } else if (!load_counter(e, in, s)) {
            in->bad = true;
        }
        if (in->bad) {
            FAIL(TALLY_EIO,
                 "engine state: series %" PRIu64 " (metric id %u, township id %u) is malformed "
                 "(at byte %zu of %zu)",
                 i, metric, town, (size_t)(in->p - in->start), (size_t)(in->end - in->start));
        }
    }
    return 0;
}

/* What engine_load and engine_load_head read alike: the magic, the saved
 * now, the configuration and the definitions, into the empty engine e
 * (call names the function for the message). */
static int load_head(engine_t *e, in_t *in, const char *call, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (e->nseries != 0) {
        FAIL(TALLY_EINVAL, "%s: the engine already holds %u series", call, e->nseries);
    }
    if (!take(in, 4) || memcmp(in->p, MAGIC, 4) != 0) {
        FAIL(TALLY_EIO, "engine state: does not begin with \"" MAGIC "\"");
    }
    in->p += 4;
    int64_t now = get_i64(in);
    if (in->bad) {
        TRUNCATED(in, "the saved now");
    }
    int rc = load_config(e, in, now, err, errlen);
    return rc == 0 ? load_defs(e, in, err, errlen) : rc;
}

int engine_load(engine_t *e, const void *buf, size_t len, char *err, size_t errlen)
{
    in_t in = {buf, (const uint8_t *)buf + len, buf, false};
    int rc = load_head(e, &in, "engine_load", err, errlen);
    if (rc == 0) {
        rc = load_series(e, &in, err, errlen);
    }
    if (rc != 0) {
        return rc;
    }
    if (!take(&in, 4) || memcmp(in.p, END_MAGIC, 4) != 0 || in.p + 4 != in.end) {
        TRUNCATED(&in, "the end of the series");
    }
    return 0;
}

/* Step over the body of a counter series (see load_counter) without
 * placing anything. */
static bool skip_counter(const engine_t *e, in_t *in)
{
    uint32_t n = e->win.nbuckets;
    for (uint32_t w = 0; w < e->win.nwin && !in->bad; w++) {
        uint64_t k = get_uv(in);
        if (k > n) {
            return false;
        }
        for (uint64_t i = 0; i < k && !in->bad; i++) {
            get_uv(in);
            get_sv(in);
        }
    }
    uint8_t mask = get_u8(in);
    for (uint32_t b = 0; b < 2 * PERIOD_COUNT; b++) {
        if ((mask >> b) & 1) {
            get_sv(in);
        }
    }
    return !in->bad;
}

int engine_load_head(engine_t *e, const void *buf, size_t len, char *err, size_t errlen)
{
    in_t in = {buf, (const uint8_t *)buf + len, buf, false};
    int rc = load_head(e, &in, "engine_load_head", err, errlen);
    if (rc != 0) {
        return rc;
    }
    uint64_t nseries = get_uv(&in);
    for (uint64_t i = 0; i < nseries && !in.bad; i++) {
        uint32_t metric = get_id(&in, false);
        uint32_t town = get_id(&in, true);
        uint8_t kind = get_u8(&in);
        get_sv(&in);
        get_sv(&in);
        if (in.bad || (kind != PROTO_KIND_COUNTER && kind != PROTO_KIND_GAUGE)) {
            TRUNCATED(&in, "a series");
        }
        if (kind == PROTO_KIND_GAUGE) {
            get_sv(&in);
        } else if (!skip_counter(e, &in)) {
            in.bad = true;
        }
        if (in.bad) {
            TRUNCATED(&in, "a series");
        }
        if (town != 0) {
            continue;
        }
        /* The county's series of a metric is what a declaration of
         * another kind meets (engine_define_metric). */
        if (engine_metric_kind(e, metric) != kind ||
            engine_series_find(e, metric, 0) != ENGINE_NONE) {
            FAIL(TALLY_EIO,
                 "engine state: series %" PRIu64 " (metric id %u, the county) is a %s, saved "
                 "twice or against its metric's declaration",
                 i, metric, kind_name(kind));
        }
        if (engine_series_add(e, metric, 0, kind) == ENGINE_NONE) {
            FAIL(TALLY_ENOMEM, "engine state: no memory for series %" PRIu64, i);
        }
    }
    if (!take(&in, 4) || memcmp(in.p, END_MAGIC, 4) != 0 || in.p + 4 != in.end) {
        TRUNCATED(&in, "the end of the series");
    }
    return 0;
}
