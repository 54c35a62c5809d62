/* catalog_view.c - the catalog as clients read it (see catalog_view.h). */
#include "catalog_view.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tally_error.h"
#include "vec.h"

void catalog_view_init(catalog_view_t *v)
{
    memset(v, 0, sizeof *v);
}

void catalog_view_free(catalog_view_t *v)
{
    free(v->held);
    free(v->order);
    free(v->towns);
    free(v->metrics);
    catalog_view_init(v);
}

uint32_t catalog_view_townships(const catalog_view_t *v)
{
    return v->cfg != NULL ? (uint32_t)(v->cfg->ntownships + v->nheld) : 0;
}

uint32_t catalog_view_metrics(const catalog_view_t *v)
{
    return (uint32_t)v->norder;
}

static proto_township_t township_of(const config_township_t *t)
{
    return (proto_township_t){proto_str(t->id), proto_str(t->name), (uint8_t)t->type};
}

/* Township i of the view: the catalog's, then those it no longer
 * declares. */
static proto_township_t township_at(const catalog_view_t *v, uint32_t i)
{
    if (i < v->cfg->ntownships)
        return township_of(&v->cfg->townships[i]);
    const struct catalog_view_held *h = &v->held[i - v->cfg->ntownships];
    return (proto_township_t){proto_str(h->id), proto_str(h->name), 0};
}

static proto_metric_info_t metric_of(const tallyd_config_t *cfg, int64_t i)
{
    if (i >= 0) {
        const config_metric_t *m = &cfg->metrics[i];
        return (proto_metric_info_t){proto_str(m->id),  (uint8_t)m->kind,    proto_str(m->unit),
                                     (uint8_t)m->scale, proto_str(m->label), proto_str(""),
                                     proto_str("")};
    }
    const config_ratio_t *r = &cfg->ratios[-i - 1];
    return (proto_metric_info_t){
        proto_str(r->id),        PROTO_KIND_RATIO,         proto_str(""), 0, proto_str(r->label),
        proto_str(r->numerator), proto_str(r->denominator)};
}

/* Each field with its length first, so that no two catalogs hash alike by
 * moving bytes from one field to the next. */
static void hash_str(crypto_generichash_state *h, proto_str_t s)
{
    uint8_t len[4] = {(uint8_t)(s.len >> 24), (uint8_t)(s.len >> 16), (uint8_t)(s.len >> 8),
                      (uint8_t)s.len};
    crypto_generichash_update(h, len, sizeof len);
    crypto_generichash_update(h, (const uint8_t *)s.ptr, s.len);
}

static uint64_t hash_catalog(const tallyd_config_t *cfg, const int64_t *order, size_t n)
{
    crypto_generichash_state h;
    uint8_t out[crypto_generichash_BYTES_MIN];
    crypto_generichash_init(&h, NULL, 0, sizeof out);
    hash_str(&h, proto_str("tally-catalog-1"));
    for (size_t i = 0; i < cfg->ntownships; i++) {
        proto_township_t t = township_of(&cfg->townships[i]);
        hash_str(&h, t.id);
        hash_str(&h, t.name);
        crypto_generichash_update(&h, &t.type, 1);
    }
    hash_str(&h, proto_str("metrics"));
    for (size_t i = 0; i < n; i++) {
        proto_metric_info_t m = metric_of(cfg, order[i]);
        uint8_t ks[2] = {m.kind, m.scale};
        hash_str(&h, m.id);
        crypto_generichash_update(&h, ks, sizeof ks);
        hash_str(&h, m.unit);
        hash_str(&h, m.label);
        hash_str(&h, m.numerator);
        hash_str(&h, m.denominator);
    }
    crypto_generichash_final(&h, out, sizeof out);
    uint64_t id = 0;
    for (size_t i = 0; i < 8; i++)
        id = id << 8 | out[i];
    return id;
}

int catalog_view_set(catalog_view_t *v, const tallyd_config_t *cfg)
{
    size_t n = cfg->nmetrics + cfg->nratios;
    int64_t *order = malloc((n ? n : 1) * sizeof *order);
    if (order == NULL || sodium_init() < 0) {
        /* The configuration shown before may be gone: show none. */
        free(order);
        free(v->order);
        v->order = NULL;
        v->norder = 0;
        v->cfg = NULL;
        v->id = v->cfg_id = 0;
        v->nheld = 0;
        v->held_stale = true;
        return TALLY_ENOMEM;
    }
    /* Merge the two lists, each in file order already, by line; on a tie
     * (the built-in catalog has no lines) metrics come first. */
    size_t i = 0, j = 0, k = 0;
    while (i < cfg->nmetrics || j < cfg->nratios) {
        bool metric =
            j == cfg->nratios || (i < cfg->nmetrics && cfg->metrics[i].line <= cfg->ratios[j].line);
        order[k++] = metric ? (int64_t)i++ : -(int64_t)(j++) - 1;
    }
    free(v->order);
    v->order = order;
    v->norder = n;
    v->cfg = cfg;
    v->id = v->cfg_id = hash_catalog(cfg, order, n);
    /* Found again for this catalog by the next catalog_view_held(). */
    v->nheld = 0;
    v->held_stale = true;
    return 0;
}

/* The suffix of the name a township no longer declared is listed with. */
#define HELD_SUFFIX " (no longer declared)"

/* The view's id with the townships no longer declared: that of the
 * catalog alone when there are none, so that it does not change for
 * daemons that have none. */
static uint64_t held_id(const catalog_view_t *v)
{
    if (v->nheld == 0)
        return v->cfg_id;
    crypto_generichash_state h;
    uint8_t out[crypto_generichash_BYTES_MIN], base[8];
    for (size_t i = 0; i < 8; i++)
        base[i] = (uint8_t)(v->cfg_id >> (56 - 8 * i));
    crypto_generichash_init(&h, NULL, 0, sizeof out);
    hash_str(&h, proto_str("tally-catalog-held-1"));
    crypto_generichash_update(&h, base, sizeof base);
    for (size_t i = 0; i < v->nheld; i++) {
        hash_str(&h, proto_str(v->held[i].id));
        hash_str(&h, proto_str(v->held[i].name));
    }
    crypto_generichash_final(&h, out, sizeof out);
    uint64_t id = 0;
    for (size_t i = 0; i < 8; i++)
        id = id << 8 | out[i];
    return id;
}

/* Whether a declared township's display name ends like the names given
 * to those no longer declared (then each is checked for a clash). */
static bool suffix_declared(const tallyd_config_t *cfg)
{
    size_t sl = strlen(HELD_SUFFIX);
    for (size_t i = 0; i < cfg->ntownships; i++) {
        size_t l = strlen(cfg->townships[i].name);
        if (l >= sl && strcmp(cfg->townships[i].name + l - sl, HELD_SUFFIX) == 0)
            return true;
    }
    return false;
}

/* Name h, a township no longer declared, unless the name would be too long
 * or (clash) already a declared township's. */
static void name_held(struct catalog_view_held *h, const tallyd_config_t *cfg, bool clash)
{
    int n = snprintf(h->name, sizeof h->name, "%s" HELD_SUFFIX, h->id);
    if (n < 0 || (size_t)n > CONFIG_TOWNSHIP_NAME_MAX || (size_t)n >= sizeof h->name) {
        h->name[0] = '\0';
        return;
    }
    for (size_t i = 0; clash && i < cfg->ntownships; i++)
        if (strcmp(cfg->townships[i].name, h->name) == 0)
            h->name[0] = '\0';
}

int catalog_view_held(catalog_view_t *v, const intern_t *towns, const townlist_t *has)
{
    if (!v->held_stale && has->seen == v->held_seen)
        return 0;
    const tallyd_config_t *cfg = v->cfg;
    struct catalog_view_held *held = NULL;
    size_t n = 0, cap = 0;
    if (cfg != NULL && cfg->catalog_closed_townships) {
        uint32_t count = intern_count(towns);
        uint8_t *declared = calloc((size_t)count + 1, 1);
        if (declared == NULL)
            return TALLY_ENOMEM;
        for (size_t i = 0; i < cfg->ntownships; i++) {
            int id = intern_find(towns, cfg->townships[i].id, strlen(cfg->townships[i].id));
            if (id > 0 && (uint32_t)id <= count)
                declared[id] = 1;
        }
        bool clash = suffix_declared(cfg);
        for (uint32_t id = 1; id <= count; id++) {
            if (declared[id] || !townlist_has(has, id))
                continue;
            if (VEC_RESERVE(held, cap, n + 1) < 0) {
                free(held);
                free(declared);
                return TALLY_ENOMEM;
            }
            snprintf(held[n].id, sizeof held[n].id, "%s", intern_name(towns, id, NULL));
            name_held(&held[n], cfg, clash);
            n++;
        }
        free(declared);
    }
    free(v->held);
    v->held = held;
    v->nheld = n;
    v->held_cap = cap;
    v->held_seen = has->seen;
    v->held_stale = false;
    v->id = held_id(v);
    return 0;
}

int catalog_view_page(catalog_view_t *v, uint64_t req_id, uint32_t townships_from,
                      uint32_t metrics_from, size_t max_bytes, proto_msg_t *m)
{
    uint32_t nt_total = catalog_view_townships(v), nm_total = catalog_view_metrics(v);
    if (townships_from > nt_total)
        townships_from = nt_total;
    if (metrics_from > nm_total)
        metrics_from = nm_total;
    size_t used = PROTO_CATALOG_HEAD_BYTES;
    uint32_t nt = 0, nm = 0;
    bool full = false;
    memset(m, 0, sizeof *m);
    m->type = PROTO_CATALOG;
    for (uint32_t i = townships_from; i < nt_total && !full; i++) {
        proto_township_t t = township_at(v, i);
        size_t sz = proto_catalog_township_size(&t);
        if (used + sz > max_bytes && nt > 0) {
            full = true;
            break;
        }
        if (VEC_RESERVE(v->towns, v->towns_cap, (size_t)nt + 1) < 0)
            return TALLY_ENOMEM;
        v->towns[nt++] = t;
        used += sz;
    }
    for (uint32_t i = metrics_from; i < nm_total && !full; i++) {
        proto_metric_info_t e = metric_of(v->cfg, v->order[i]);
        size_t sz = proto_catalog_metric_size(&e);
        if (used + sz > max_bytes && nt + nm > 0)
            break;
        if (VEC_RESERVE(v->metrics, v->metrics_cap, (size_t)nm + 1) < 0)
            return TALLY_ENOMEM;
        v->metrics[nm++] = e;
        used += sz;
    }
    m->u.catalog.req_id = req_id;
    m->u.catalog.catalog_id = v->id;
    m->u.catalog.townships_total = nt_total;
    m->u.catalog.metrics_total = nm_total;
    m->u.catalog.ntownships = nt;
    m->u.catalog.townships = v->towns;
    m->u.catalog.nmetrics = nm;
    m->u.catalog.metrics = v->metrics;
    return 0;
}
