/* period_read.c - libtally (client/lib/): a period's or a span's tallies
 * under any prefix, read in parts when one answer of the daemon cannot
 * hold them: scope by scope, and a scope too large for one answer metric
 * by metric (see tally.h, "History"). */
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

/* One read of a period under one prefix or several: where, how, the
 * period as asked (a name, or FROM..TO) and as the wire asks for it, and
 * whom the tallies go to. */
typedef struct reading {
    const char *server;
    tally_request_t *req;
    const char *period;
    wire_period_t w;
    tally_tally_cb cb;
    void *ctx;
} reading_t;

static int reading_init(reading_t *rd, const char *server, tally_request_t *req, const char *period,
                        tally_tally_cb cb, void *ctx)
{
    *rd = (reading_t){.server = server, .req = req, .period = period, .cb = cb, .ctx = ctx};
    return wire_period(req, period, &rd->w);
}

/* rd's period under prefix, as a one-shot request. */
static int read_one(const reading_t *rd, const char *prefix)
{
    if (rd->w.to == NULL)
        return tally_period_req(rd->server, rd->req, prefix, rd->period, rd->cb, rd->ctx);
    relabel_t r = {.name = rd->period, .cb = rd->cb, .ctx = rd->ctx};
    return tally_span_req(rd->server, rd->req, prefix, rd->w.first, rd->w.to, on_relabel, &r);
}

static int read_by_metric(const reading_t *rd, const char *prefix, const char *scope);

/* The scope prefix lies within ("u/county/" or "u/town/T/") into scope;
 * false when it may select several scopes ("", "u/", "u/town/", "u/town/T"
 * without its '/'). */
static bool scope_of(const char *prefix, char scope[PROTO_PREFIX_MAX + 1])
{
    if (prefix == NULL)
        return false;
    if (strncmp(prefix, "u/county/", 9) == 0) {
        strcpy(scope, "u/county/");
        return true;
    }
    if (strncmp(prefix, "u/town/", 7) != 0)
        return false;
    const char *end = strchr(prefix + 7, '/');
    if (end == NULL || end == prefix + 7 || (size_t)(end + 1 - prefix) > PROTO_PREFIX_MAX)
        return false;
    memcpy(scope, prefix, (size_t)(end + 1 - prefix));
    scope[end + 1 - prefix] = '\0';
    return true;
}

int tally_period_read(const char *server, tally_request_t *req, const char *prefix,
                      const char *period, tally_tally_cb cb, void *ctx)
{
    tally_request_t none = {0};
    if (req == NULL)
        req = &none;
    reading_t rd;
    int rc = reading_init(&rd, server, req, period, cb, ctx);
    if (rc != 0)
        return rc;
    rc = read_one(&rd, prefix);
    char scope[PROTO_PREFIX_MAX + 1];
    if (rc == TALLY_ETOOLARGE && scope_of(prefix, scope))
        rc = read_by_metric(&rd, prefix, scope);
    return rc;
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

/* Part k's prefix of a read in parts into part: 0, or TALLY_EINVAL (a
 * name too long, said in req's errbuf). */
typedef int (*part_fn)(const void *ctx, tally_request_t *req, size_t k,
                       char part[PROTO_PREFIX_MAX + 1]);

/* The parts of a split read: the county's first when county, then each
 * township's. */
typedef struct scopes {
    bool county;
    const char *const *towns;
} scopes_t;

static int scope_part(const void *ctx, tally_request_t *req, size_t k,
                      char part[PROTO_PREFIX_MAX + 1])
{
    const scopes_t *s = ctx;
    if (s->county && k == 0) {
        strcpy(part, "u/county/");
        return 0;
    }
    const char *town = s->towns[s->county ? k - 1 : k];
    if (snprintf(part, PROTO_PREFIX_MAX + 1, "u/town/%s/", town) > PROTO_PREFIX_MAX) {
        text_format(req->errbuf, req->errbuf_len, "township '%.64s' is too long", town);
        return TALLY_EINVAL;
    }
    return 0;
}

/* The parts of one scope read metric by metric: scope's series of each
 * metric. */
typedef struct metrics {
    const char *scope;
    const char *const *names;
} metrics_t;

static int metric_part(const void *ctx, tally_request_t *req, size_t k,
                       char part[PROTO_PREFIX_MAX + 1])
{
    const metrics_t *m = ctx;
    if (snprintf(part, PROTO_PREFIX_MAX + 1, "%s%s/", m->scope, m->names[k]) > PROTO_PREFIX_MAX) {
        text_format(req->errbuf, req->errbuf_len, "metric '%.64s' of %s is too long", m->names[k],
                    m->scope);
        return TALLY_EINVAL;
    }
    return 0;
}

/* rd's period under the n parts that name() gives, in this order.  One
 * connection for every part, the next part asked for before the answer
 * to this one is read: tallyd works on it meanwhile.  A part the daemon
 * no longer knows (removed in a reload) has nothing to read.  A part
 * that is one scope with more series than an answer holds (TOO_LARGE) is
 * read metric by metric (on a connection of its own, as the next part's
 * answer waits on this one) when by_metric. */
static int read_parts(const reading_t *rd, size_t n, part_fn name, const void *nctx, bool by_metric)
{
    tally_request_t *req = rd->req;
    oneshot_periods_t *p = NULL;
    int rc = oneshot_periods_open(rd->server, req, &p);
    char part[PROTO_PREFIX_MAX + 1], next_err[256];
    if (rc == 0 && n > 0 && (rc = name(nctx, req, 0, part)) == 0)
        rc = oneshot_periods_send(p, req, part, rd->w.first, rd->w.to);
    relabel_t r = {.name = rd->period, .cb = rd->cb, .ctx = rd->ctx};
    for (size_t k = 0; rc == 0 && k < n; k++) {
        int next = 0;
        if (k + 1 < n && (next = name(nctx, req, k + 1, part)) == 0)
            next = oneshot_periods_send(p, req, part, rd->w.first, rd->w.to);
        if (next != 0) /* said once this part is read, which clears errbuf */
            text_copy(next_err, sizeof next_err, req->errbuf_len > 0 ? req->errbuf : "",
                      req->errbuf_len > 0 ? strnlen(req->errbuf, req->errbuf_len) : 0);
        rc = rd->w.to != NULL ? oneshot_periods_take(p, req, on_relabel, &r)
                              : oneshot_periods_take(p, req, rd->cb, rd->ctx);
        char scope[PROTO_PREFIX_MAX + 1];
        if (rc == TALLY_ETOOLARGE && by_metric && name(nctx, req, k, scope) == 0)
            rc = read_by_metric(rd, scope, scope);
        if (rc == TALLY_EUNKTOWN || rc == TALLY_EUNKMETRIC) { /* gone in a reload */
            rc = 0;
            text_format(req->errbuf, req->errbuf_len, "%s", "");
        }
        if (rc == 0 && next != 0) {
            text_format(req->errbuf, req->errbuf_len, "%s", next_err);
            rc = next;
        }
    }
    oneshot_periods_close(p, req);
    return rc;
}

/* A tally_tally_cb: keep t's metric in the tally_townships_t ctx (here a
 * list of metric names). */
static void add_metric(void *ctx, const tally_tally_t *t)
{
    add_name(ctx, t->metric, strlen(t->metric));
}

/* rd's period under prefix, which lies within scope, metric by metric:
 * the metrics from a snapshot of prefix (not bounded as a PERIOD answer
 * is, and holding every series one can), then scope's series of each. */
static int read_by_metric(const reading_t *rd, const char *prefix, const char *scope)
{
    tally_townships_t names = {0};
    int rc = tally_get_req(rd->server, rd->req, prefix, add_metric, &names, NULL, NULL);
    if (rc == 0 && names.oom)
        rc = TALLY_ENOMEM;
    if (rc == 0) {
        tally_townships_sort(&names);
        metrics_t m = {.scope = scope, .names = (const char *const *)names.v};
        rc = read_parts(rd, names.n, metric_part, &m, false);
    }
    tally_townships_clear(&names);
    return rc;
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
    reading_t rd;
    int rc = reading_init(&rd, server, req, period, cb, ctx);
    if (rc == 0) {
        scopes_t s = {.county = prefix == NULL || strcmp(prefix, "u/town/") != 0, .towns = towns};
        rc = read_parts(&rd, (s.county ? 1 : 0) + ntowns, scope_part, &s, true);
    }
    tally_townships_clear(&found);
    return rc;
}
