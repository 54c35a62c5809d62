/* oneshot.c - libtally (client/lib/): single request/reply exchanges,
 * tally_get (one snapshot), tally_stats, tally_clock_req,
 * tally_backup_req, tally_catalog_req (page by page), tally_period_req,
 * tally_span_req, tally_range_req and the township list (page by page),
 * saying why one failed: the daemon's ERROR, or what the connection
 * showed.  The connection itself is oneshot_conn.c's. */
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "oneshot.h"
#include "oneshot_impl.h"
#include "text.h"
#include "util.h"

static int send_snapshot_req(oneshot_t *o, uint64_t req_id, const char *prefix)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_SNAPSHOT_REQ;
    m.u.snapshot_req.req_id = req_id;
    m.u.snapshot_req.prefix = proto_str(prefix);
    return oneshot_send(o, &m);
}

/* A request without its options: as tally_get() and tally_stats() were. */
static tally_request_t plain(const tally_curve_t *curve, int timeout_ms)
{
    return (tally_request_t){.curve = curve, .timeout_ms = timeout_ms};
}

static int get(const char *server, tally_request_t *req, bool early, const char *prefix,
               tally_tally_cb cb, void *ctx, uint64_t *seq, uint64_t *stream_id)
{
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    if (prefix == NULL)
        prefix = "";
    if (cb == NULL || strlen(prefix) > PROTO_PREFIX_MAX) {
        text_format(req->errbuf, req->errbuf_len, "no callback, or a prefix longer than %d bytes",
                    PROTO_PREFIX_MAX);
        return TALLY_EINVAL;
    }
    oneshot_t *o;
    int rc = oneshot_open(server, req, early, &o);
    if (rc < 0)
        return rc;
    kept_t it = {0};
    uint64_t req_id = 1;
    rc = send_snapshot_req(o, req_id, prefix);
    while (rc == 0 && (rc = oneshot_recv(o)) == 0) {
        const proto_msg_t *m = &o->msg;
        if (m->type == PROTO_SNAPSHOT_ITEM && m->u.snapshot_item.req_id == req_id) {
            rc = oneshot_kept_take(&it, o);
        } else if (m->type == PROTO_SNAPSHOT_END && m->u.snapshot_end.req_id == req_id) {
            if (m->u.snapshot_end.count != it.n) {
                /* Items were dropped on the way: ask again while time
                 * remains. */
                oneshot_kept_clear(&it);
                rc = send_snapshot_req(o, ++req_id, prefix);
                continue;
            }
            if (seq != NULL)
                *seq = m->u.snapshot_end.seq;
            if (stream_id != NULL)
                *stream_id = m->u.snapshot_end.stream_id;
            sub_entry_t *e = NULL;
            for (size_t i = 0; rc == 0 && i < it.n; i++)
                rc = oneshot_kept_deliver(o, &it, i, &e, cb, ctx);
            free(e);
            break;
        } else if (m->type == PROTO_ERROR && m->u.error.req_id == req_id) {
            rc = oneshot_wire_error(m, req);
        }
    }
    if (rc < 0 && !tally_err_is_wire(rc))
        oneshot_failed(o, req, rc);
    oneshot_kept_free(&it);
    oneshot_close(o, req);
    return rc;
}

/* Send q (req_id 1) and hand its answer, the first reply of type want
 * with req_id 1, to take, whose return (0 or a TALLY_E* code) is the
 * request's.  An ERROR for it, or UNKNOWN_TYPE from a daemon that does
 * not know q's type (req_id 0), ends it with its code. */
static int ask_one(const char *server, tally_request_t *req, bool early, proto_msg_t *q,
                   uint32_t want, int (*take)(const proto_msg_t *m, void *ctx), void *ctx)
{
    oneshot_t *o;
    int rc = oneshot_open(server, req, early, &o);
    if (rc < 0)
        return rc;
    q->u.stats_req.req_id = 1; /* req_id leads every request's struct */
    rc = oneshot_send(o, q);
    while (rc == 0 && (rc = oneshot_recv(o)) == 0) {
        const proto_msg_t *m = &o->msg;
        if (m->type == want && proto_req_id(m) == 1) {
            rc = take(m, ctx);
            break;
        }
        if (m->type == PROTO_ERROR &&
            (m->u.error.req_id == 1 || (m->u.error.req_id == 0 && m->u.error.code == -TALLY_ETYPE)))
            rc = oneshot_wire_error(m, req);
    }
    if (rc < 0 && !tally_err_is_wire(rc))
        oneshot_failed(o, req, rc);
    oneshot_close(o, req);
    return rc;
}

typedef struct stats_take {
    tally_stat_cb cb;
    void *ctx;
} stats_take_t;

static int take_stats(const proto_msg_t *m, void *ctx)
{
    const stats_take_t *t = ctx;
    for (uint32_t i = 0; i < m->u.stats.n; i++) {
        char name[PROTO_NAME_MAX + 1];
        text_copy(name, sizeof name, m->u.stats.entries[i].name.ptr,
                  m->u.stats.entries[i].name.len);
        t->cb(t->ctx, name, m->u.stats.entries[i].value);
    }
    return 0;
}

static int stats(const char *server, tally_request_t *req, bool early, tally_stat_cb cb, void *ctx)
{
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    if (cb == NULL) {
        text_format(req->errbuf, req->errbuf_len, "no callback");
        return TALLY_EINVAL;
    }
    proto_msg_t q;
    memset(&q, 0, sizeof q);
    q.type = PROTO_STATS_REQ;
    stats_take_t t = {cb, ctx};
    return ask_one(server, req, early, &q, PROTO_STATS, take_stats, &t);
}

static int send_catalog_req(oneshot_t *o, uint64_t req_id, uint32_t towns_from,
                            uint32_t metrics_from)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_CATALOG_REQ;
    m.u.catalog_req.req_id = req_id;
    m.u.catalog_req.townships_from = towns_from;
    m.u.catalog_req.metrics_from = metrics_from;
    return oneshot_send(o, &m);
}

/* Add the entries of page m to *cat, starting a new catalog when m's id
 * differs from *cat's (a reload between pages: read it from the start). */
static int catalog_page(const proto_msg_t *m, tally_catalog_t **cat, uint32_t *tf, uint32_t *mf)
{
    if (*cat == NULL || tally_catalog_id(*cat) != m->u.catalog.catalog_id) {
        bool restart = *cat != NULL && (*tf > 0 || *mf > 0);
        tally_catalog_destroy(cat);
        if ((*cat = catalog_new(m->u.catalog.catalog_id)) == NULL)
            return TALLY_ENOMEM;
        *tf = *mf = 0;
        if (restart)
            return TALLY_EAGAIN; /* this page is not the first of its catalog */
    }
    proto_catalog_iter_t it;
    proto_township_t t;
    proto_metric_info_t e;
    int rc = 0;
    proto_catalog_iter(&it, m);
    while (rc == 0 && proto_catalog_next_township(&it, &t))
        if ((rc = catalog_add_township(*cat, &t)) == 0)
            ++*tf;
    while (rc == 0 && proto_catalog_next_metric(&it, &e))
        if ((rc = catalog_add_metric(*cat, &e)) == 0)
            ++*mf;
    return rc;
}

static int catalog_req(const char *server, tally_request_t *req, tally_catalog_t **out)
{
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    if (out == NULL) {
        text_format(req->errbuf, req->errbuf_len, "nowhere to put the catalog");
        return TALLY_EINVAL;
    }
    *out = NULL;
    oneshot_t *o;
    int rc = oneshot_open(server, req, true, &o);
    if (rc < 0)
        return rc;
    tally_catalog_t *cat = NULL;
    uint64_t req_id = 1;
    uint32_t tf = 0, mf = 0;
    rc = send_catalog_req(o, req_id, 0, 0);
    while (rc == 0 && (rc = oneshot_recv(o)) == 0) {
        const proto_msg_t *m = &o->msg;
        if (m->type == PROTO_ERROR && m->u.error.req_id == req_id) {
            rc = oneshot_wire_error(m, req);
        } else if (m->type == PROTO_ERROR && m->u.error.req_id == 0 &&
                   m->u.error.code == -TALLY_ETYPE) {
            rc = oneshot_wire_error(m, req); /* a daemon from before CATALOG_REQ */
        } else if (m->type == PROTO_CATALOG && m->u.catalog.req_id == req_id) {
            uint32_t tf0 = tf, mf0 = mf;
            rc = catalog_page(m, &cat, &tf, &mf);
            if (rc == TALLY_EAGAIN) {
                rc = send_catalog_req(o, ++req_id, 0, 0);
                continue;
            }
            if (rc < 0)
                break;
            if (tf >= m->u.catalog.townships_total && mf >= m->u.catalog.metrics_total) {
                rc = catalog_finish(cat);
                break;
            }
            if (tf == tf0 && mf == mf0) {
                text_format(req->errbuf, req->errbuf_len,
                            "the daemon sent a catalog page without entries before the end");
                rc = TALLY_EMALFORMED;
                break;
            }
            rc = send_catalog_req(o, ++req_id, tf, mf);
        }
    }
    if (rc < 0 && !tally_err_is_wire(rc))
        oneshot_failed(o, req, rc);
    if (rc < 0)
        tally_catalog_destroy(&cat);
    *out = cat;
    oneshot_close(o, req);
    return rc;
}

/* ---- the townships that have tallies (PROTOCOL.md 8.25) ---- */

static int send_townships_req(oneshot_t *o, uint64_t req_id, uint32_t from)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_TOWNSHIPS_REQ;
    m.u.townships_req.req_id = req_id;
    m.u.townships_req.from = from;
    return oneshot_send(o, &m);
}

int oneshot_townships(const char *server, tally_request_t *req,
                      int (*add)(void *ctx, const char *name, size_t len), void *ctx)
{
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    oneshot_t *o;
    int rc = oneshot_open(server, req, true, &o);
    if (rc < 0)
        return rc;
    uint64_t req_id = 1;
    uint32_t from = 0;
    rc = send_townships_req(o, req_id, from);
    while (rc == 0 && (rc = oneshot_recv(o)) == 0) {
        const proto_msg_t *m = &o->msg;
        if (m->type == PROTO_ERROR &&
            (m->u.error.req_id == req_id ||
             (m->u.error.req_id == 0 && m->u.error.code == -TALLY_ETYPE))) {
            rc = oneshot_wire_error(m, req);
        } else if (m->type == PROTO_TOWNSHIPS && m->u.townships.req_id == req_id) {
            proto_townships_iter_t it;
            proto_str_t name;
            proto_townships_iter(&it, m);
            while (rc == 0 && proto_townships_next(&it, &name))
                rc = add(ctx, name.ptr, name.len);
            if (rc < 0 || m->u.townships.next == 0)
                break;
            if (m->u.townships.next <= from) {
                text_format(req->errbuf, req->errbuf_len,
                            "the daemon's township list went back from position %u to %u", from,
                            m->u.townships.next);
                rc = TALLY_EMALFORMED;
                break;
            }
            from = m->u.townships.next;
            rc = send_townships_req(o, ++req_id, from);
        }
    }
    if (rc < 0 && !tally_err_is_wire(rc))
        oneshot_failed(o, req, rc);
    oneshot_close(o, req);
    return rc;
}

/* ---- history: PERIOD_REQ and RANGE_REQ (PROTOCOL.md 8.18-8.21) ---- */

/* Whether a PERIOD_REQ or SPAN_REQ's arguments can go on the wire, and
 * (has_cb) its answer somewhere to go. */
static int period_args(tally_request_t *req, const char *prefix, const char *period_name,
                       const char *to, bool has_cb)
{
    if (!has_cb || period_name == NULL || strlen(prefix) > PROTO_PREFIX_MAX ||
        strlen(period_name) == 0 || strlen(period_name) > PROTO_PERIOD_TEXT_MAX ||
        (to != NULL && (strlen(to) == 0 || strlen(to) > PROTO_PERIOD_TEXT_MAX))) {
        text_format(req->errbuf, req->errbuf_len,
                    "no callback, no period, a period longer than %d bytes or a prefix longer "
                    "than %d bytes",
                    PROTO_PERIOD_TEXT_MAX, PROTO_PREFIX_MAX);
        return TALLY_EINVAL;
    }
    return 0;
}

/* Send PERIOD_REQ for period_name, or SPAN_REQ from period_name to to
 * when to is not NULL, on o as request req_id: both are answered with
 * PERIOD messages. */
static int period_send(oneshot_t *o, uint64_t req_id, const char *prefix, const char *period_name,
                       const char *to)
{
    proto_msg_t q;
    memset(&q, 0, sizeof q);
    if (to == NULL) {
        q.type = PROTO_PERIOD_REQ;
        q.u.period_req.req_id = req_id;
        q.u.period_req.prefix = proto_str(prefix);
        q.u.period_req.period = proto_str(period_name);
    } else {
        q.type = PROTO_SPAN_REQ;
        q.u.span_req.req_id = req_id;
        q.u.span_req.prefix = proto_str(prefix);
        q.u.span_req.from = proto_str(period_name);
        q.u.span_req.to = proto_str(to);
    }
    return oneshot_send(o, &q);
}

/* The answer to one PERIOD_REQ or SPAN_REQ as its replies come. */
typedef struct collect {
    uint64_t req_id;
    kept_t kept;
    uint32_t *at; /* by index: the kept reply's number + 1, 0 = none yet */
    uint32_t count;
    bool sized;
} collect_t;

/* Take reply m (its bytes raw, len) into c.  1 when the answer is whole,
 * 0 while more is to come (m not of it included), or a negative code:
 * the daemon's ERROR (its message in req's errbuf), TALLY_ENOMEM. */
static int collect_one(collect_t *c, tally_request_t *req, const proto_msg_t *m, const uint8_t *raw,
                       size_t len)
{
    if (m->type == PROTO_ERROR && (m->u.error.req_id == c->req_id || m->u.error.req_id == 0))
        return oneshot_wire_error(m, req);
    if (m->type != PROTO_PERIOD || m->u.period.req_id != c->req_id)
        return 0;
    if (!c->sized) {
        c->count = m->u.period.count;
        c->sized = true;
        if (c->count > 0 && (c->at = calloc(c->count, sizeof(*c->at))) == NULL)
            return TALLY_ENOMEM;
    }
    if (c->count == 0)
        return 1;
    uint32_t i = m->u.period.index;
    if (m->u.period.count != c->count || i >= c->count || !m->u.period.has_tally)
        return 0; /* not of this answer */
    if (c->at[i] == 0) {
        if (oneshot_kept_put(&c->kept, raw, len) != 0)
            return TALLY_ENOMEM;
        c->at[i] = (uint32_t)c->kept.n;
        if (c->kept.n == c->count)
            return 1;
    }
    return 0;
}

/* The answer to request req_id on o, with req's whole timeout, handed to
 * cb once whole.  Replies of request ahead_id (0: none), sent before this
 * one was read, are kept in *ahead; those *ahead holds already, of this
 * request, are taken first.  Replies to other requests (a part before it
 * that timed out) are passed over. */
static int period_collect(oneshot_t *o, tally_request_t *req, uint64_t req_id, uint64_t ahead_id,
                          kept_t *ahead, tally_tally_cb cb, void *ctx)
{
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    o->deadline = util_mono_ms() + (req->timeout_ms > 0 ? req->timeout_ms : ONESHOT_TIMEOUT);
    collect_t c = {.req_id = req_id};
    int rc = 0, done = 0;
    for (size_t i = 0; ahead != NULL && i < ahead->n && done == 0; i++) {
        uint32_t size;
        memcpy(&size, ahead->at[i], sizeof size);
        const uint8_t *raw = ahead->at[i] + sizeof size;
        if (proto_decode(raw, size, &o->msg, NULL, 0, NULL) == 0)
            done = collect_one(&c, req, &o->msg, raw, size);
    }
    if (ahead != NULL)
        oneshot_kept_clear(ahead);
    while (done == 0 && (rc = oneshot_recv(o)) == 0) {
        const proto_msg_t *m = &o->msg;
        uint64_t id = m->type == PROTO_PERIOD  ? m->u.period.req_id
                      : m->type == PROTO_ERROR ? m->u.error.req_id
                                               : 0;
        if (ahead_id != 0 && id == ahead_id)
            done = oneshot_kept_take(ahead, o);
        else
            done = collect_one(&c, req, m, zmq_msg_data(&o->cur), zmq_msg_size(&o->cur));
    }
    if (done < 0)
        rc = done;
    sub_entry_t *e = NULL;
    for (uint32_t i = 0; rc == 0 && i < c.count; i++)
        rc = oneshot_kept_deliver(o, &c.kept, c.at[i] - 1, &e, cb, ctx);
    free(e);
    oneshot_kept_free(&c.kept);
    free(c.at);
    if (rc < 0 && !tally_err_is_wire(rc))
        oneshot_failed(o, req, rc);
    return rc;
}

static int period(const char *server, tally_request_t *req, const char *prefix,
                  const char *period_name, const char *to, tally_tally_cb cb, void *ctx)
{
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    if (prefix == NULL)
        prefix = "";
    int rc = period_args(req, prefix, period_name, to, cb != NULL);
    oneshot_t *o;
    if (rc < 0 || (rc = oneshot_open(server, req, true, &o)) < 0)
        return rc;
    o->deadline = util_mono_ms() + (req->timeout_ms > 0 ? req->timeout_ms : ONESHOT_TIMEOUT);
    rc = period_send(o, 1, prefix, period_name, to);
    if (rc < 0)
        oneshot_failed(o, req, rc);
    else
        rc = period_collect(o, req, 1, 0, NULL, cb, ctx);
    oneshot_close(o, req);
    return rc;
}

/* ---- several PERIOD_REQs on one connection (oneshot.h) ---- */

struct oneshot_periods {
    oneshot_t *o;
    uint64_t next_id;  /* the next request's */
    uint64_t taken_id; /* the last request whose answer was read (or given up) */
    kept_t ahead;      /* replies of the request after it, come meanwhile */
};

int oneshot_periods_open(const char *server, tally_request_t *req, oneshot_periods_t **out)
{
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    oneshot_periods_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return TALLY_ENOMEM;
    int rc = oneshot_open(server, req, true, &p->o);
    if (rc < 0) {
        free(p);
        return rc;
    }
    p->next_id = 1;
    *out = p;
    return 0;
}

int oneshot_periods_send(oneshot_periods_t *p, tally_request_t *req, const char *prefix,
                         const char *period_name, const char *to)
{
    if (prefix == NULL)
        prefix = "";
    /* The callback comes with oneshot_periods_take. */
    int rc = period_args(req, prefix, period_name, to, true);
    if (rc < 0)
        return rc;
    if (p->next_id > p->taken_id + 2) {
        text_format(req->errbuf, req->errbuf_len, "two requests are waiting for their answers");
        return TALLY_EINVAL;
    }
    p->o->deadline = util_mono_ms() + (req->timeout_ms > 0 ? req->timeout_ms : ONESHOT_TIMEOUT);
    rc = period_send(p->o, p->next_id, prefix, period_name, to);
    if (rc < 0) {
        oneshot_failed(p->o, req, rc);
        return rc;
    }
    p->next_id++;
    return 0;
}

int oneshot_periods_take(oneshot_periods_t *p, tally_request_t *req, tally_tally_cb cb, void *ctx)
{
    if (p->taken_id + 1 >= p->next_id) {
        text_format(req->errbuf, req->errbuf_len, "no request is waiting for its answer");
        return TALLY_EINVAL;
    }
    if (cb == NULL) {
        text_format(req->errbuf, req->errbuf_len, "no callback");
        return TALLY_EINVAL;
    }
    uint64_t id = ++p->taken_id;
    uint64_t ahead_id = id + 1 < p->next_id ? id + 1 : 0;
    return period_collect(p->o, req, id, ahead_id, &p->ahead, cb, ctx);
}

void oneshot_periods_close(oneshot_periods_t *p, tally_request_t *req)
{
    if (p == NULL)
        return;
    oneshot_close(p->o, req);
    oneshot_kept_free(&p->ahead);
    free(p);
}

typedef struct point {
    char period[PROTO_PERIOD_TEXT_MAX + 1];
    tally_value_t v;
    bool have;
} point_t;

static int range(const char *server, tally_request_t *req, const char *metric, const char *scope,
                 const char *by, const char *from, const char *to, tally_point_cb cb, void *ctx)
{
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    if (scope == NULL)
        scope = "";
    if (cb == NULL || metric == NULL || by == NULL || from == NULL || to == NULL) {
        text_format(req->errbuf, req->errbuf_len, "no callback, metric, by, from or to");
        return TALLY_EINVAL;
    }
    oneshot_t *o;
    int rc = oneshot_open(server, req, true, &o);
    if (rc < 0)
        return rc;
    proto_msg_t q;
    memset(&q, 0, sizeof q);
    q.type = PROTO_RANGE_REQ;
    q.u.range_req.req_id = 1;
    q.u.range_req.metric = proto_str(metric);
    q.u.range_req.scope = proto_str(scope);
    q.u.range_req.by = proto_str(by);
    q.u.range_req.from = proto_str(from);
    q.u.range_req.to = proto_str(to);
    rc = oneshot_send(o, &q);
    if (rc == TALLY_EINVAL)
        text_format(req->errbuf, req->errbuf_len,
                    "metric, township, by, from or to is not a valid name or period text");
    point_t *pts = NULL;
    uint32_t total = 0, got = 0;
    int kind = 0;
    while (rc == 0 && (rc = oneshot_recv(o)) == 0) {
        const proto_msg_t *m = &o->msg;
        if (m->type == PROTO_ERROR && (m->u.error.req_id == 1 || m->u.error.req_id == 0)) {
            rc = oneshot_wire_error(m, req);
            break;
        }
        if (m->type != PROTO_RANGE || m->u.range.req_id != 1)
            continue;
        if (pts == NULL) {
            total = m->u.range.total;
            kind = m->u.range.kind;
            if ((pts = calloc(total, sizeof(*pts))) == NULL) {
                rc = TALLY_ENOMEM;
                break;
            }
        }
        if (m->u.range.total != total)
            continue;
        for (uint32_t j = 0; j < m->u.range.npoints; j++) {
            uint32_t i = m->u.range.first + j;
            if (i >= total || pts[i].have)
                continue;
            const proto_value_t *pv = &m->u.range.points[j];
            text_copy(pts[i].period, sizeof(pts[i].period), pv->name.ptr, pv->name.len);
            pts[i].v = (tally_value_t){
                .column = pts[i].period, .present = pv->present, .num = pv->num, .den = pv->den};
            pts[i].have = true;
            got++;
        }
        if (got == total)
            break;
    }
    if (rc == 0)
        for (uint32_t i = 0; i < total; i++)
            cb(ctx, kind, &pts[i].v);
    free(pts);
    if (rc < 0 && !tally_err_is_wire(rc))
        oneshot_failed(o, req, rc);
    oneshot_close(o, req);
    return rc;
}

/* The entry points.  The older ones keep waiting for their whole timeout
 * whatever the connection shows, as they always did. */

int tally_get(const char *server, const char *prefix, int timeout_ms, tally_tally_cb cb, void *ctx,
              uint64_t *seq, uint64_t *stream_id)
{
    tally_request_t req = plain(NULL, timeout_ms);
    return get(server, &req, false, prefix, cb, ctx, seq, stream_id);
}

int tally_get_curve(const char *server, const tally_curve_t *curve, const char *prefix,
                    int timeout_ms, tally_tally_cb cb, void *ctx, uint64_t *seq,
                    uint64_t *stream_id)
{
    tally_request_t req = plain(curve, timeout_ms);
    return get(server, &req, false, prefix, cb, ctx, seq, stream_id);
}

int tally_get_req(const char *server, tally_request_t *req, const char *prefix, tally_tally_cb cb,
                  void *ctx, uint64_t *seq, uint64_t *stream_id)
{
    tally_request_t none = plain(NULL, 0);
    return get(server, req != NULL ? req : &none, true, prefix, cb, ctx, seq, stream_id);
}

int tally_stats(const char *server, int timeout_ms, tally_stat_cb cb, void *ctx)
{
    tally_request_t req = plain(NULL, timeout_ms);
    return stats(server, &req, false, cb, ctx);
}

int tally_stats_curve(const char *server, const tally_curve_t *curve, int timeout_ms,
                      tally_stat_cb cb, void *ctx)
{
    tally_request_t req = plain(curve, timeout_ms);
    return stats(server, &req, false, cb, ctx);
}

int tally_stats_req(const char *server, tally_request_t *req, tally_stat_cb cb, void *ctx)
{
    tally_request_t none = plain(NULL, 0);
    return stats(server, req != NULL ? req : &none, true, cb, ctx);
}

_Static_assert(TALLY_ZONE_MAX == PROTO_ZONE_MAX, "tally_clock_t holds any zone CLOCK carries");

/* A request whose answer fills a struct of the caller's: q_type (its
 * struct holds only req_id) answered by want, handed to take with out
 * (size bytes, cleared first; what names it when it is NULL). */
static int ask_into(const char *server, tally_request_t *req, uint32_t q_type, uint32_t want,
                    int (*take)(const proto_msg_t *m, void *ctx), void *out, size_t size,
                    const char *what)
{
    tally_request_t none = plain(NULL, 0);
    if (req == NULL)
        req = &none;
    text_format(req->errbuf, req->errbuf_len, "%s", "");
    req->link = TALLY_LINK_UNKNOWN;
    if (out == NULL) {
        text_format(req->errbuf, req->errbuf_len, "nowhere to put the %s", what);
        return TALLY_EINVAL;
    }
    memset(out, 0, size);
    proto_msg_t q;
    memset(&q, 0, sizeof q);
    q.type = q_type;
    return ask_one(server, req, true, &q, want, take, out);
}

static int take_clock(const proto_msg_t *m, void *ctx)
{
    tally_clock_t *out = ctx;
    out->now_ms = m->u.clock.now_ms;
    text_copy(out->zone, sizeof out->zone, m->u.clock.zone.ptr, m->u.clock.zone.len);
    out->utc_offset_s = m->u.clock.utc_offset_s;
    return 0;
}

int tally_clock_req(const char *server, tally_request_t *req, tally_clock_t *out)
{
    return ask_into(server, req, PROTO_CLOCK_REQ, PROTO_CLOCK, take_clock, out, sizeof *out,
                    "clock");
}

_Static_assert(TALLY_PATH_MAX == PROTO_PATH_MAX,
               "tally_backup_info_t holds any path BACKUP carries");

static int take_backup(const proto_msg_t *m, void *ctx)
{
    tally_backup_info_t *out = ctx;
    text_copy(out->path, sizeof out->path, m->u.backup.path.ptr, m->u.backup.path.len);
    out->files = m->u.backup.files;
    out->bytes = m->u.backup.bytes;
    out->ms = m->u.backup.ms;
    return 0;
}

int tally_backup_req(const char *server, tally_request_t *req, tally_backup_info_t *out)
{
    /* A backup is answered once it is written: the other requests' default
     * wait would give up on most. */
    tally_request_t none = plain(NULL, TALLY_BACKUP_TIMEOUT_MS);
    if (req == NULL)
        req = &none;
    int asked = req->timeout_ms;
    if (asked <= 0)
        req->timeout_ms = TALLY_BACKUP_TIMEOUT_MS;
    int rc = ask_into(server, req, PROTO_BACKUP_REQ, PROTO_BACKUP, take_backup, out, sizeof *out,
                      "backup's path");
    req->timeout_ms = asked;
    return rc;
}

_Static_assert(TALLY_BACKUP_NAME_MAX == PROTO_BACKUP_NAME_MAX,
               "tally_backup_entry_t holds any name BACKUP_LIST carries");

/* The BACKUP_LIST m into the tally_backup_list_t ctx, whose backups it
 * allocates.  0 or TALLY_ENOMEM. */
static int take_backup_list(const proto_msg_t *m, void *ctx)
{
    tally_backup_list_t *out = ctx;
    const __typeof__(m->u.backup_list) *b = &m->u.backup_list;
    text_copy(out->dir, sizeof out->dir, b->dir.ptr, b->dir.len);
    out->total = b->total;
    if (b->n == 0)
        return 0;
    if ((out->backups = calloc(b->n, sizeof *out->backups)) == NULL)
        return TALLY_ENOMEM;
    proto_backups_iter_t it;
    proto_backup_entry_t e;
    proto_backups_iter(&it, m);
    while (out->n < b->n && proto_backups_next(&it, &e)) {
        tally_backup_entry_t *t = &out->backups[out->n++];
        text_copy(t->name, sizeof t->name, e.name.ptr, e.name.len);
        t->files = e.files;
        t->bytes = e.bytes;
        t->checked = e.sums;
    }
    return 0;
}

int tally_backup_list_req(const char *server, tally_request_t *req, tally_backup_list_t *out)
{
    int rc = ask_into(server, req, PROTO_BACKUP_LIST_REQ, PROTO_BACKUP_LIST, take_backup_list, out,
                      sizeof *out, "list of backups");
    if (rc < 0 && out != NULL)
        tally_backup_list_clear(out);
    return rc;
}

void tally_backup_list_clear(tally_backup_list_t *list)
{
    if (list == NULL)
        return;
    free(list->backups);
    memset(list, 0, sizeof *list);
}

int tally_catalog_req(const char *server, tally_request_t *req, tally_catalog_t **out)
{
    tally_request_t none = plain(NULL, 0);
    return catalog_req(server, req != NULL ? req : &none, out);
}

int tally_period_req(const char *server, tally_request_t *req, const char *prefix,
                     const char *period_name, tally_tally_cb cb, void *ctx)
{
    tally_request_t none = plain(NULL, 0);
    return period(server, req != NULL ? req : &none, prefix, period_name, NULL, cb, ctx);
}

int tally_span_req(const char *server, tally_request_t *req, const char *prefix, const char *from,
                   const char *to, tally_tally_cb cb, void *ctx)
{
    tally_request_t none = plain(NULL, 0);
    return period(server, req != NULL ? req : &none, prefix, from, to != NULL ? to : "", cb, ctx);
}

int tally_range_req(const char *server, tally_request_t *req, const char *metric, const char *scope,
                    const char *by, const char *from, const char *to, tally_point_cb cb, void *ctx)
{
    tally_request_t none = plain(NULL, 0);
    return range(server, req != NULL ? req : &none, metric, scope, by, from, to, cb, ctx);
}
