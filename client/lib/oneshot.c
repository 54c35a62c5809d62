/* oneshot.c - libtally (client/lib/): single request/reply exchanges,
 * tally_get (one snapshot) and tally_stats. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "curve.h"
#include "sub_store.h"
#include "text.h"
#include "util.h"
#include "vec.h"

#define DEFAULT_TIMEOUT 10000

typedef struct oneshot {
    void *zctx;
    void *dealer;
    int64_t deadline;
    zmq_msg_t cur; /* the last reply: o->msg's string views point into it */
    proto_msg_t msg;
} oneshot_t;

static void oneshot_close(oneshot_t *o)
{
    zmq_msg_close(&o->cur);
    if (o->dealer != NULL)
        zmq_close(o->dealer);
    if (o->zctx != NULL)
        zmq_ctx_term(o->zctx);
    free(o);
}

static int oneshot_open(const char *server, const tally_curve_t *curve, int timeout_ms,
                        oneshot_t **out)
{
    char ep[TALLY_ENDPOINT_MAX];
    if (server == NULL || tally_endpoint_normalize(server, ep, sizeof ep) < 0)
        return TALLY_EINVAL;
    curve_keys_t keys;
    int rc = curve_load(curve, &keys, NULL, 0);
    if (rc < 0)
        return rc;
    oneshot_t *o = calloc(1, sizeof *o);
    if (o == NULL) {
        curve_wipe(&keys);
        return TALLY_ENOMEM;
    }
    zmq_msg_init(&o->cur);
    o->deadline = util_mono_ms() + (timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT);
    o->zctx = zmq_ctx_new();
    o->dealer = o->zctx ? zmq_socket(o->zctx, ZMQ_DEALER) : NULL;
    int zero = 0;
    int64_t maxmsg = 1 << 20;
    if (o->dealer == NULL || zmq_setsockopt(o->dealer, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(o->dealer, ZMQ_RCVHWM, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(o->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        curve_apply(o->dealer, &keys) < 0) {
        curve_wipe(&keys);
        oneshot_close(o);
        return TALLY_ESYS;
    }
    curve_wipe(&keys);
    if (zmq_connect(o->dealer, ep) < 0) {
        oneshot_close(o);
        return TALLY_EINVAL;
    }
    *out = o;
    return 0;
}

static int oneshot_send(oneshot_t *o, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = proto_encode(&sb, m);
    /* Without ZMQ_IMMEDIATE the request waits in the socket until the
     * connection is up, so a daemon started a moment later still answers. */
    if (rc == 0 && zmq_send(o->dealer, sb.data, sb.size, ZMQ_DONTWAIT) < 0)
        rc = TALLY_ESYS;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Wait for the next single-frame reply and decode it into o->msg (views
 * valid until the next call).  Returns 0, TALLY_ETIMEDOUT, TALLY_EAGAIN
 * (undecodable or multi-frame: skip it) or TALLY_ESYS. */
static int recv_one(oneshot_t *o)
{
    for (;;) {
        int64_t left = o->deadline - util_mono_ms();
        if (left <= 0)
            return TALLY_ETIMEDOUT;
        zmq_pollitem_t item = {.socket = o->dealer, .events = ZMQ_POLLIN};
        int n = zmq_poll(&item, 1, (long)left);
        if (n < 0 && errno != EINTR)
            return TALLY_ESYS;
        if (n > 0)
            break;
    }
    zmq_msg_close(&o->cur);
    zmq_msg_init(&o->cur);
    if (zmq_msg_recv(&o->cur, o->dealer, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN || errno == EINTR ? TALLY_EAGAIN : TALLY_ESYS;
    bool more = zmq_msg_more(&o->cur);
    int rc = TALLY_EAGAIN;
    if (!more &&
        proto_decode(zmq_msg_data(&o->cur), zmq_msg_size(&o->cur), &o->msg, NULL, 0, NULL) == 0)
        rc = 0;
    while (more) { /* replies are one frame; drop the rest of anything else */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        if (zmq_msg_recv(&extra, o->dealer, 0) < 0)
            more = false;
        else
            more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
    }
    return rc;
}

/* recv_one until a reply decodes.  0, TALLY_ETIMEDOUT or TALLY_ESYS. */
static int oneshot_recv(oneshot_t *o)
{
    int rc;
    do
        rc = recv_one(o);
    while (rc == TALLY_EAGAIN);
    return rc;
}

static int wire_error(const proto_msg_t *m)
{
    return m->u.error.code >= 1 && m->u.error.code <= 99 ? -(int)m->u.error.code : TALLY_EMALFORMED;
}

typedef struct items {
    sub_entry_t **v;
    size_t n, cap;
} items_t;

static void items_clear(items_t *it)
{
    for (size_t i = 0; i < it->n; i++)
        free(it->v[i]);
    it->n = 0;
}

static int items_add(items_t *it, const proto_tally_t *t)
{
    if (VEC_RESERVE(it->v, it->cap, it->n + 1) < 0)
        return TALLY_ENOMEM;
    sub_entry_t *e = malloc(sizeof *e);
    if (e == NULL)
        return TALLY_ENOMEM;
    sub_entry_set(e, t);
    it->v[it->n++] = e;
    return 0;
}

static int send_snapshot_req(oneshot_t *o, uint64_t req_id, const char *prefix)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_SNAPSHOT_REQ;
    m.u.snapshot_req.req_id = req_id;
    m.u.snapshot_req.prefix = proto_str(prefix);
    return oneshot_send(o, &m);
}

int tally_get(const char *server, const char *prefix, int timeout_ms, tally_tally_cb cb, void *ctx,
              uint64_t *seq, uint64_t *stream_id)
{
    return tally_get_curve(server, NULL, prefix, timeout_ms, cb, ctx, seq, stream_id);
}

int tally_get_curve(const char *server, const tally_curve_t *curve, const char *prefix,
                    int timeout_ms, tally_tally_cb cb, void *ctx, uint64_t *seq,
                    uint64_t *stream_id)
{
    if (prefix == NULL)
        prefix = "";
    if (cb == NULL || strlen(prefix) > PROTO_PREFIX_MAX)
        return TALLY_EINVAL;
    oneshot_t *o;
    int rc = oneshot_open(server, curve, timeout_ms, &o);
    if (rc < 0)
        return rc;
    items_t it = {0};
    uint64_t req_id = 1;
    rc = send_snapshot_req(o, req_id, prefix);
    while (rc == 0 && (rc = oneshot_recv(o)) == 0) {
        const proto_msg_t *m = &o->msg;
        if (m->type == PROTO_SNAPSHOT_ITEM && m->u.snapshot_item.req_id == req_id) {
            rc = items_add(&it, &m->u.snapshot_item.tally);
        } else if (m->type == PROTO_SNAPSHOT_END && m->u.snapshot_end.req_id == req_id) {
            if (m->u.snapshot_end.count != it.n) {
                /* Items were dropped on the way: ask again while time
                 * remains. */
                items_clear(&it);
                rc = send_snapshot_req(o, ++req_id, prefix);
                continue;
            }
            if (seq != NULL)
                *seq = m->u.snapshot_end.seq;
            if (stream_id != NULL)
                *stream_id = m->u.snapshot_end.stream_id;
            for (size_t i = 0; i < it.n; i++)
                cb(ctx, &it.v[i]->pub);
            break;
        } else if (m->type == PROTO_ERROR && m->u.error.req_id == req_id) {
            rc = wire_error(m);
        }
    }
    items_clear(&it);
    free(it.v);
    oneshot_close(o);
    return rc;
}

int tally_stats(const char *server, int timeout_ms, tally_stat_cb cb, void *ctx)
{
    return tally_stats_curve(server, NULL, timeout_ms, cb, ctx);
}

int tally_stats_curve(const char *server, const tally_curve_t *curve, int timeout_ms,
                      tally_stat_cb cb, void *ctx)
{
    if (cb == NULL)
        return TALLY_EINVAL;
    oneshot_t *o;
    int rc = oneshot_open(server, curve, timeout_ms, &o);
    if (rc < 0)
        return rc;
    proto_msg_t req;
    memset(&req, 0, sizeof req);
    req.type = PROTO_STATS_REQ;
    req.u.stats_req.req_id = 1;
    rc = oneshot_send(o, &req);
    while (rc == 0 && (rc = oneshot_recv(o)) == 0) {
        const proto_msg_t *m = &o->msg;
        if (m->type == PROTO_STATS && m->u.stats.req_id == 1) {
            for (uint32_t i = 0; i < m->u.stats.n; i++) {
                char name[PROTO_NAME_MAX + 1];
                text_copy(name, sizeof name, m->u.stats.entries[i].name.ptr,
                          m->u.stats.entries[i].name.len);
                cb(ctx, name, m->u.stats.entries[i].value);
            }
            break;
        }
        if (m->type == PROTO_ERROR && m->u.error.req_id == 1)
            rc = wire_error(m);
    }
    oneshot_close(o);
    return rc;
}
