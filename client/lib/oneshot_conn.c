/* oneshot_conn.c - libtally (client/lib/): the connection of a one-shot
 * request (oneshot_impl.h): set up with the caller's keys and rules,
 * a request sent and its replies read until the deadline, watched by
 * the monitor so that a failure says why (refused, a failed handshake,
 * no answer), and the replies of a long answer kept until it is whole. */
#include "oneshot_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "curve.h"
#include "text.h"
#include "util.h"
#include "vec.h"

void oneshot_close(oneshot_t *o, tally_request_t *req)
{
    if (req != NULL)
        req->link = monitor_poll(&o->mon);
    zmq_msg_close(&o->cur);
    monitor_close(&o->mon, o->dealer);
    if (o->dealer != NULL)
        zmq_close(o->dealer);
    if (o->zctx != NULL)
        zmq_ctx_term(o->zctx);
    free(o);
}

int oneshot_open(const char *server, tally_request_t *req, bool early, oneshot_t **out)
{
    char ep[TALLY_ENDPOINT_MAX], why[256];
    if (server == NULL || tally_endpoint_parse(server, ep, sizeof ep, why, sizeof why) < 0) {
        text_format(req->errbuf, req->errbuf_len, "server address '%s' is not valid: %s",
                    server ? server : "(null)", server ? why : "none given");
        return TALLY_EINVAL;
    }
    curve_keys_t keys;
    int rc = curve_load(req->curve, &keys, req->errbuf, req->errbuf_len);
    if (rc < 0)
        return rc;
    oneshot_t *o = calloc(1, sizeof *o);
    if (o == NULL) {
        curve_wipe(&keys);
        return TALLY_ENOMEM;
    }
    zmq_msg_init(&o->cur);
    o->mon.link = TALLY_LINK_UNKNOWN;
    o->early = early;
    o->deadline = util_mono_ms() + (req->timeout_ms > 0 ? req->timeout_ms : ONESHOT_TIMEOUT);
    o->refused_ms = req->refused_ms > 0 ? req->refused_ms : 0;
    o->zctx = zmq_ctx_new();
    o->dealer = o->zctx ? zmq_socket(o->zctx, ZMQ_DEALER) : NULL;
    int zero = 0;
    int64_t maxmsg = 1 << 20;
    if (o->dealer == NULL || zmq_setsockopt(o->dealer, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(o->dealer, ZMQ_RCVHWM, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(o->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        curve_apply(o->dealer, &keys) < 0) {
        curve_wipe(&keys);
        oneshot_close(o, NULL);
        text_format(req->errbuf, req->errbuf_len, "cannot set up a ZeroMQ socket: %s",
                    zmq_strerror(errno));
        return TALLY_ESYS;
    }
    curve_wipe(&keys);
    monitor_open(&o->mon, o->zctx, o->dealer, ep); /* without it, only less is said */
    if (util_connect(o->dealer, ep) < 0) {
        text_format(req->errbuf, req->errbuf_len, "cannot connect to '%s': %s", ep,
                    zmq_strerror(errno));
        oneshot_close(o, NULL);
        return TALLY_EINVAL;
    }
    *out = o;
    return 0;
}

/* A failed handshake is answered by no one: waiting longer is pointless. */
static bool handshake_failed(int link)
{
    return link == TALLY_LINK_MECHANISM || link == TALLY_LINK_HANDSHAKE ||
           link == TALLY_LINK_KEY_REFUSED;
}

/* Whether to stop waiting, from what the connection shows now: 0 (wait
 * on), TALLY_ECLOSED (the handshake failed) or TALLY_ETIMEDOUT (nothing
 * has accepted a connection for refused_ms).  ZeroMQ retries a refused
 * connection every 100 ms, each retry an event on the monitor, so a
 * poll that watches the monitor comes back here at that pace. */
static int hopeless(oneshot_t *o)
{
    int64_t refused = monitor_refused_ms(&o->mon);
    if (handshake_failed(o->mon.link) && o->early)
        return TALLY_ECLOSED;
    return o->refused_ms > 0 && refused >= o->refused_ms ? TALLY_ETIMEDOUT : 0;
}

/* How long a poll may wait: until the deadline, but no more than 100 ms
 * while refusals are being timed. */
static long poll_wait(const oneshot_t *o, int64_t left)
{
    return o->refused_ms > 0 && left > 100 ? 100 : (long)left;
}

int oneshot_send(oneshot_t *o, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = proto_encode(&sb, m);
    /* Without ZMQ_IMMEDIATE the request waits in the socket until the
     * connection is up, so a daemon started a moment later still answers.
     * Between a connection that failed (a refused handshake) and the next
     * attempt the socket has no pipe and refuses at once: wait for room
     * then, until the deadline or the connection says it is hopeless. */
    while (rc == 0 && zmq_send(o->dealer, sb.data, sb.size, ZMQ_DONTWAIT) < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            rc = TALLY_ESYS;
            break;
        }
        int64_t left = o->deadline - util_mono_ms();
        if (left <= 0) {
            rc = TALLY_ETIMEDOUT;
            break;
        }
        if ((rc = hopeless(o)) != 0)
            break;
        zmq_pollitem_t items[2] = {{.socket = o->dealer, .events = ZMQ_POLLOUT},
                                   {.socket = o->mon.pair, .events = ZMQ_POLLIN}};
        if (zmq_poll(items, o->mon.pair != NULL ? 2 : 1, left < 100 ? (long)left : 100) < 0 &&
            errno != EINTR) {
            rc = TALLY_ESYS;
            break;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Wait for the next single-frame reply and decode it into o->msg (views
 * valid until the next call).  A reply already queued is taken at once:
 * the items of a long answer arrive in a burst, and a poll (a system call
 * and a look at the monitor) before each would cost more than reading
 * it.  Returns 0, TALLY_ETIMEDOUT, TALLY_ECLOSED (the handshake failed),
 * TALLY_EAGAIN (undecodable or multi-frame: skip it) or TALLY_ESYS. */
static int recv_one(oneshot_t *o)
{
    zmq_msg_close(&o->cur);
    zmq_msg_init(&o->cur);
    for (;;) {
        int64_t left = o->deadline - util_mono_ms();
        if (left <= 0)
            return TALLY_ETIMEDOUT;
        if (zmq_msg_recv(&o->cur, o->dealer, ZMQ_DONTWAIT) >= 0)
            break;
        if (errno != EAGAIN && errno != EINTR)
            return TALLY_ESYS;
        zmq_pollitem_t items[2] = {{.socket = o->dealer, .events = ZMQ_POLLIN},
                                   {.socket = o->mon.pair, .events = ZMQ_POLLIN}};
        if (zmq_poll(items, o->mon.pair != NULL ? 2 : 1, poll_wait(o, left)) < 0 && errno != EINTR)
            return TALLY_ESYS;
        int why = hopeless(o);
        if (why != 0)
            return why;
    }
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
int oneshot_recv(oneshot_t *o)
{
    int rc;
    do
        rc = recv_one(o);
    while (rc == TALLY_EAGAIN);
    return rc;
}

/* The daemon's ERROR as a code, its message into the caller's errbuf. */
int oneshot_wire_error(const proto_msg_t *m, tally_request_t *req)
{
    text_copy(req->errbuf, req->errbuf_len, m->u.error.message.ptr, m->u.error.message.len);
    return m->u.error.code >= 1 && m->u.error.code <= 99 ? -(int)m->u.error.code : TALLY_EMALFORMED;
}

/* Why a request ended without its answer, for the caller's errbuf. */
void oneshot_failed(oneshot_t *o, tally_request_t *req, int rc)
{
    if (rc == TALLY_ETIMEDOUT && monitor_poll(&o->mon) == TALLY_LINK_UNREACHABLE)
        text_format(req->errbuf, req->errbuf_len, "%s", monitor_why(&o->mon));
    else if (rc == TALLY_ETIMEDOUT && o->refused_ms > 0 &&
             monitor_refused_ms(&o->mon) >= o->refused_ms)
        text_format(req->errbuf, req->errbuf_len,
                    "nothing accepts connections there (refused for %d ms)", o->refused_ms);
    else if (rc == TALLY_ETIMEDOUT)
        text_format(req->errbuf, req->errbuf_len, "no answer in time");
    else if (rc == TALLY_ECLOSED)
        text_format(req->errbuf, req->errbuf_len, "the connection's security handshake failed");
    else if (rc == TALLY_ENOMEM)
        text_format(req->errbuf, req->errbuf_len, "out of memory");
    else if (rc == TALLY_ESYS)
        text_format(req->errbuf, req->errbuf_len, "ZeroMQ failed: %s", zmq_strerror(errno));
}

int oneshot_kept_take(kept_t *k, oneshot_t *o)
{
    return oneshot_kept_put(k, zmq_msg_data(&o->cur), zmq_msg_size(&o->cur));
}

int oneshot_kept_put(kept_t *k, const void *data, size_t size)
{
    size_t need = sizeof(uint32_t) + size;
    if (size > UINT32_MAX || VEC_RESERVE(k->at, k->cap, k->n + 1) < 0)
        return TALLY_ENOMEM;
    if (k->nchunks == 0 || need > k->last - k->used) {
        /* a new chunk; a reply larger than one gets its own */
        size_t len = need > KEPT_CHUNK ? need : KEPT_CHUNK;
        uint8_t *c = NULL;
        if (VEC_RESERVE(k->chunks, k->chunks_cap, k->nchunks + 1) < 0 || (c = malloc(len)) == NULL)
            return TALLY_ENOMEM;
        k->chunks[k->nchunks++] = c;
        k->last = len;
        k->used = 0;
    }
    uint8_t *p = k->chunks[k->nchunks - 1] + k->used;
    uint32_t len32 = (uint32_t)size;
    memcpy(p, &len32, sizeof len32);
    memcpy(p + sizeof len32, data, size);
    k->used += need;
    k->at[k->n++] = p;
    return 0;
}

void oneshot_kept_clear(kept_t *k)
{
    for (size_t c = 0; c < k->nchunks; c++)
        free(k->chunks[c]);
    k->nchunks = 0;
    k->used = k->last = 0;
    k->n = 0;
}

void oneshot_kept_free(kept_t *k)
{
    oneshot_kept_clear(k);
    free(k->chunks);
    free(k->at);
    *k = (kept_t){0};
}

/* Decode kept reply i (a SNAPSHOT_ITEM or a PERIOD item, as it was when
 * it came) into o->msg again and hand its tally to cb through *e (one
 * entry for them all, grown as needed; free it with free()).  Returns 0,
 * TALLY_EMALFORMED or TALLY_ENOMEM. */
int oneshot_kept_deliver(oneshot_t *o, const kept_t *k, size_t i, sub_entry_t **e,
                         tally_tally_cb cb, void *ctx)
{
    uint32_t size;
    memcpy(&size, k->at[i], sizeof size);
    if (proto_decode(k->at[i] + sizeof size, size, &o->msg, NULL, 0, NULL) != 0)
        return TALLY_EMALFORMED;
    const proto_msg_t *d = &o->msg;
    sub_entry_t *n =
        sub_entry_put(*e, d->type == PROTO_PERIOD ? &d->u.period.tally : &d->u.snapshot_item.tally);
    if (n == NULL)
        return TALLY_ENOMEM;
    *e = n;
    cb(ctx, &n->pub);
    return 0;
}
