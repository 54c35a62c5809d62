/* catalog.c - libtally (client/lib/): the daemon's catalog as read by
 * tally_catalog_req: entries in catalog order, each string its own
 * allocation, and an index sorted by id for the lookups. */
#include "catalog.h"

#include <stdlib.h>
#include <string.h>

#include "vec.h"

struct tally_catalog {
    uint64_t id;
    tally_township_info_t *towns;
    size_t ntowns, towns_cap;
    tally_metric_info_t *metrics;
    size_t nmetrics, metrics_cap;
    size_t *town_idx, *metric_idx; /* positions sorted by id */
};

tally_catalog_t *catalog_new(uint64_t id)
{
    tally_catalog_t *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->id = id;
    return c;
}

static char *dup_str(proto_str_t s)
{
    char *d = malloc((size_t)s.len + 1);
    if (d != NULL) {
        if (s.len > 0)
            memcpy(d, s.ptr, s.len);
        d[s.len] = '\0';
    }
    return d;
}

int catalog_add_township(tally_catalog_t *c, const proto_township_t *t)
{
    if (VEC_RESERVE(c->towns, c->towns_cap, c->ntowns + 1) < 0)
        return TALLY_ENOMEM;
    tally_township_info_t *e = &c->towns[c->ntowns];
    e->id = dup_str(t->id);
    e->name = dup_str(t->name);
    e->type = t->type;
    if (e->id == NULL || e->name == NULL) {
        free((char *)e->id);
        free((char *)e->name);
        return TALLY_ENOMEM;
    }
    c->ntowns++;
    return 0;
}

int catalog_add_metric(tally_catalog_t *c, const proto_metric_info_t *m)
{
    if (VEC_RESERVE(c->metrics, c->metrics_cap, c->nmetrics + 1) < 0)
        return TALLY_ENOMEM;
    tally_metric_info_t *e = &c->metrics[c->nmetrics];
    e->id = dup_str(m->id);
    e->kind = m->kind;
    e->unit = dup_str(m->unit);
    e->scale = m->scale;
    e->label = dup_str(m->label);
    e->numerator = dup_str(m->numerator);
    e->denominator = dup_str(m->denominator);
    if (!e->id || !e->unit || !e->label || !e->numerator || !e->denominator) {
        free((char *)e->id);
        free((char *)e->unit);
        free((char *)e->label);
        free((char *)e->numerator);
        free((char *)e->denominator);
        return TALLY_ENOMEM;
    }
    c->nmetrics++;
    return 0;
}

/* qsort has no context argument: the array being sorted is named here
 * for the comparisons (the library sorts on one thread at a time per
 * catalog, and catalog_finish is not reentrant across threads). */
static _Thread_local const tally_catalog_t *sorting;

static int cmp_town(const void *a, const void *b)
{
    return strcmp(sorting->towns[*(const size_t *)a].id, sorting->towns[*(const size_t *)b].id);
}

static int cmp_metric(const void *a, const void *b)
{
    return strcmp(sorting->metrics[*(const size_t *)a].id, sorting->metrics[*(const size_t *)b].id);
}

static size_t *sorted(const tally_catalog_t *c, size_t n, int (*cmp)(const void *, const void *))
{
    size_t *v = malloc((n > 0 ? n : 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = i;
    sorting = c;
    qsort(v, n, sizeof *v, cmp);
    sorting = NULL;
    return v;
}

int catalog_finish(tally_catalog_t *c)
{
    c->town_idx = sorted(c, c->ntowns, cmp_town);
    c->metric_idx = sorted(c, c->nmetrics, cmp_metric);
    return c->town_idx && c->metric_idx ? 0 : TALLY_ENOMEM;
}

void tally_catalog_destroy(tally_catalog_t **cp)
{
    tally_catalog_t *c = cp != NULL ? *cp : NULL;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->ntowns; i++) {
        free((char *)c->towns[i].id);
        free((char *)c->towns[i].name);
    }
    for (size_t i = 0; i < c->nmetrics; i++) {
        tally_metric_info_t *e = &c->metrics[i];
        free((char *)e->id);
        free((char *)e->unit);
        free((char *)e->label);
        free((char *)e->numerator);
        free((char *)e->denominator);
    }
    free(c->towns);
    free(c->metrics);
    free(c->town_idx);
    free(c->metric_idx);
    free(c);
    *cp = NULL;
}

uint64_t tally_catalog_id(const tally_catalog_t *c)
{
    return c != NULL ? c->id : 0;
}

size_t tally_catalog_townships(const tally_catalog_t *c)
{
    return c != NULL ? c->ntowns : 0;
}

const tally_township_info_t *tally_catalog_township(const tally_catalog_t *c, size_t i)
{
    return c != NULL && i < c->ntowns ? &c->towns[i] : NULL;
}

size_t tally_catalog_metrics(const tally_catalog_t *c)
{
    return c != NULL ? c->nmetrics : 0;
}

const tally_metric_info_t *tally_catalog_metric(const tally_catalog_t *c, size_t i)
{
    return c != NULL && i < c->nmetrics ? &c->metrics[i] : NULL;
}

/* Binary search of idx (positions sorted by the id at_id returns). */
static bool search(const size_t *idx, size_t n, const char *id,
                   const char *(*at_id)(const tally_catalog_t *, size_t), const tally_catalog_t *c,
                   size_t *pos)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(at_id(c, idx[mid]), id);
        if (r == 0) {
            *pos = idx[mid];
            return true;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static const char *town_id(const tally_catalog_t *c, size_t i)
{
    return c->towns[i].id;
}

static const char *metric_id(const tally_catalog_t *c, size_t i)
{
    return c->metrics[i].id;
}

const tally_township_info_t *tally_catalog_find_township(const tally_catalog_t *c, const char *id,
                                                         size_t *index)
{
    size_t pos;
    if (c == NULL || id == NULL || c->town_idx == NULL ||
        !search(c->town_idx, c->ntowns, id, town_id, c, &pos))
        return NULL;
    if (index != NULL)
        *index = pos;
    return &c->towns[pos];
}

const tally_metric_info_t *tally_catalog_find_metric(const tally_catalog_t *c, const char *id,
                                                     size_t *index)
{
    size_t pos;
    if (c == NULL || id == NULL || c->metric_idx == NULL ||
        !search(c->metric_idx, c->nmetrics, id, metric_id, c, &pos))
        return NULL;
    if (index != NULL)
        *index = pos;
    return &c->metrics[pos];
}
