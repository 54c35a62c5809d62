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
    free(v->order);
    free(v->towns);
    free(v->metrics);
    catalog_view_init(v);
}

uint32_t catalog_view_townships(const catalog_view_t *v)
{
    return v->cfg != NULL ? (uint32_t)v->cfg->ntownships : 0;
}

uint32_t catalog_view_metrics(const catalog_view_t *v)
{
    return (uint32_t)v->norder;
}

static proto_township_t township_of(const config_township_t *t)
{
    return (proto_township_t){proto_str(t->id), proto_str(t->name), (uint8_t)t->type};
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
        v->id = 0;
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
    v->id = hash_catalog(cfg, order, n);
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
        proto_township_t t = township_of(&v->cfg->townships[i]);
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
