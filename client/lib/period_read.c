/* period_read.c - libtally (client/lib/): a period's or a span's tallies
 * under any prefix, read in parts when one answer of the daemon cannot
 * hold them (see tally.h, "History"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oneshot.h"
#include "proto.h"
#include "tally.h"
#include "text.h"
#include "vec.h"

typedef struct relabel {
    const char *name; /* the span as asked: FROM..TO */
    tally_tally_cb cb;
    void *ctx;
} relabel_t;

/* A span's tally: its one column ("span" on the wire) named as asked. */
static void on_relabel(void *ctx, const tally_tally_t *t)
{
    relabel_t *r = ctx;
    tally_tally_t c = *t;
    for (unsigned i = 0; i < c.nvalues && i < TALLY_COLUMNS_MAX; i++)
        c.values[i].column = r->name;
    r->cb(r->ctx, &c);
}

/* A period as the wire asks for it: a name (first, to NULL), or the
 * span FROM..TO (first FROM, to TO). */
typedef struct wire_period {
    const char *first;
    const char *to;
    char from[PROTO_PERIOD_TEXT_MAX + 1]; /* a span's FROM */
} wire_period_t;

static int wire_period(tally_request_t *req, const char *period, wire_period_t *w)
{
    if (period == NULL)
        return TALLY_EINVAL;
    const char *dots = strstr(period, "..");
    w->first = period;
    w->to = NULL;
    if (dots == NULL)
        return 0;
    if ((size_t)(dots - period) >= sizeof w->from) {
        if (req != NULL)
            text_format(req->errbuf, req->errbuf_len, "'%.40s' is not a span FROM..TO", period);
        return TALLY_EINVAL;
    }
    memcpy(w->from, period, (size_t)(dots - period));
    w->from[dots - period] = '\0';
    w->first = w->from;
    w->to = dots + 2;
    return 0;
}

/* period (a name, or FROM..TO) under prefix, as a one-shot request. */
static int read_one(const char *server, tally_request_t *req, const char *prefix,
                    const char *period, tally_tally_cb cb, void *ctx)
{
    wire_period_t w;
    int rc = wire_period(req, period, &w);
    if (rc != 0)
        return rc;
    if (w.to == NULL)
        return tally_period_req(server, req, prefix, period, cb, ctx);
    relabel_t r = {.name = period, .cb = cb, .ctx = ctx};
    return tally_span_req(server, req, prefix, w.first, w.to, on_relabel, &r);
}

int tally_period_read(const char *server, tally_request_t *req, const char *prefix,
                      const char *period, tally_tally_cb cb, void *ctx)
{
    return read_one(server, req, prefix, period, cb, ctx);
}

bool tally_period_splittable(const char *prefix)
{
    return prefix == NULL || strcmp(prefix, "") == 0 || strcmp(prefix, "u/") == 0 ||
           strcmp(prefix, "u/town/") == 0;
}

/* Keep name (len bytes) in the tally_townships_t ctx: 0 or TALLY_ENOMEM. */
static int add_name(void *ctx, const char *name, size_t len)
{
    tally_townships_t *l = ctx;
    if (l->oom)
        return TALLY_ENOMEM;
    /* A township's series mostly come together: a repeat is nearly always
     * the last one added; tally_townships_sort takes the rest. */
    if (l->n > 0 && strncmp(l->v[l->n - 1], name, len) == 0 && l->v[l->n - 1][len] == '\0')
        return 0;
    if (VEC_RESERVE(l->v, l->cap, l->n + 1) != 0 || (l->v[l->n] = strndup(name, len)) == NULL) {
        l->oom = true;
        return TALLY_ENOMEM;
    }
    l->n++;
    return 0;
}

void tally_townships_add(void *ctx, const tally_tally_t *t)
{
    if (t->scope != NULL && t->scope[0] != '\0')
        add_name(ctx, t->scope, strlen(t->scope));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void tally_townships_sort(tally_townships_t *l)
{
    if (l == NULL)
        return;
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (k > 0 && strcmp(l->v[i], l->v[k - 1]) == 0)
            free(l->v[i]);
        else
            l->v[k++] = l->v[i];
    }
    l->n = k;
}

void tally_townships_clear(tally_townships_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; l->v != NULL && i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

int tally_townships_req(const char *server, tally_request_t *req, tally_townships_t *out)
{
    if (out == NULL)
        return TALLY_EINVAL;
    memset(out, 0, sizeof(*out));
    tally_request_t none = {0};
    if (req == NULL)
        req = &none;
    int rc = oneshot_townships(server, req, add_name, out);
    if (rc == TALLY_ETYPE) { /* a daemon from before TOWNSHIPS_REQ: its snapshot */
        tally_townships_clear(out);
        rc = tally_get_req(server, req, "u/town/", tally_townships_add, out, NULL, NULL);
    }
    if (rc == 0 && out->oom)
        rc = TALLY_ENOMEM;
    if (rc != 0)
        tally_townships_clear(out);
    else
        tally_townships_sort(out);
    return rc;
}

/* The prefix of part k of a split read into part: the county's first
 * when county, then each township's.  0, or TALLY_EINVAL (a township too
 * long, said in req's errbuf). */
static int part_prefix(tally_request_t *req, bool county, const char *const *towns, size_t k,
                       char part[PROTO_PREFIX_MAX + 1])
{
    if (county && k == 0) {
        strcpy(part, "u/county/");
        return 0;
    }
    const char *town = towns[county ? k - 1 : k];
    if (snprintf(part, PROTO_PREFIX_MAX + 1, "u/town/%s/", town) > PROTO_PREFIX_MAX) {
        text_format(req->errbuf, req->errbuf_len, "township '%.64s' is too long", town);
        return TALLY_EINVAL;
    }
    return 0;
}

int tally_period_read_split(const char *server, tally_request_t *req, const char *prefix,
                            const char *period, const char *const *towns, size_t ntowns,
                            tally_tally_cb cb, void *ctx)
{
    tally_request_t none = {0};
    if (req == NULL)
        req = &none;
    if (!tally_period_splittable(prefix)) {
        text_format(req->errbuf, req->errbuf_len,
                    "prefix '%.64s' does not cover whole townships: it cannot be read township "
                    "by township",
                    prefix);
        return TALLY_EINVAL;
    }
    tally_townships_t found = {0};
    if (towns == NULL) {
        int rc = tally_townships_req(server, req, &found);
        if (rc != 0)
            return rc;
        towns = (const char *const *)found.v;
        ntowns = found.n;
    }
    wire_period_t w;
    int rc = wire_period(req, period, &w);
    if (rc != 0) {
        tally_townships_clear(&found);
        return rc;
    }
    /* One connection for every part, the next part asked for before the
     * answer to this one is read: tallyd works on it meanwhile. */
    bool county = prefix == NULL || strcmp(prefix, "u/town/") != 0;
    size_t nparts = (county ? 1 : 0) + ntowns;
    oneshot_periods_t *p = NULL;
    rc = oneshot_periods_open(server, req, &p);
    char part[PROTO_PREFIX_MAX + 1], next_err[256];
    if (rc == 0 && nparts > 0 && (rc = part_prefix(req, county, towns, 0, part)) == 0)
        rc = oneshot_periods_send(p, req, part, w.first, w.to);
    relabel_t r = {.name = period, .cb = cb, .ctx = ctx};
    for (size_t k = 0; rc == 0 && k < nparts; k++) {
        int next = 0;
        if (k + 1 < nparts && (next = part_prefix(req, county, towns, k + 1, part)) == 0)
            next = oneshot_periods_send(p, req, part, w.first, w.to);
        if (next != 0) /* said once this part is read, which clears errbuf */
            text_copy(next_err, sizeof next_err, req->errbuf_len > 0 ? req->errbuf : "",
                      req->errbuf_len > 0 ? strnlen(req->errbuf, req->errbuf_len) : 0);
        rc = w.to != NULL ? oneshot_periods_take(p, req, on_relabel, &r)
                          : oneshot_periods_take(p, req, cb, ctx);
        if (rc == TALLY_EUNKTOWN) { /* left the daemon in a reload: nothing to read */
            rc = 0;
            text_format(req->errbuf, req->errbuf_len, "%s", "");
        }
        if (rc == 0 && next != 0) {
            text_format(req->errbuf, req->errbuf_len, "%s", next_err);
            rc = next;
        }
    }
    oneshot_periods_close(p, req);
    tally_townships_clear(&found);
    return rc;
}
