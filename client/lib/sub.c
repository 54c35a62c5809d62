/* sub.c - libtally (client/lib/): the subscriber (tally_sub_*), the clone
 * pattern over a SUB and a DEALER socket.
 *
 * States: HELLO (asking the daemon for its publish endpoint) -> WAIT_SUB
 * (subscribed; waiting for the first message on the subscription, which
 * proves the daemon applies our filter, so no update can fall between the
 * snapshot and the subscription) -> SNAPSHOT (snapshot requested; live
 * messages are buffered) -> SYNCED (snapshot applied, then the buffered and
 * live updates newer than it).  Any inconsistency sends us back to
 * WAIT_SUB or SNAPSHOT; the table is only replaced when a complete new
 * snapshot has arrived, so callers always see a consistent table.
 *
 * Both sockets are watched with a socket monitor.  ZeroMQ never connects
 * a socket again once a handshake failed on a protocol error or on the
 * daemon's refusal of the key (a reload that revoked it): the subscriber
 * does, with a backoff, so that it recovers by itself once the key is
 * admitted again.  The same goes for a subscription that stays silent
 * while the request socket works. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "calperiod.h"
#include "curve.h"
#include "monitor.h"
#include "sub_store.h"
#include "text.h"
#include "util.h"

#define HELLO_BACKOFF_MIN 500
#define HELLO_BACKOFF_MAX 5000
/* Connecting a socket again after ZeroMQ gave it up: as soon as the
 * first time, then at most as often as ZeroMQ's own reconnection
 * (ZMQ_RECONNECT_IVL_MAX), which a revoked key costs the daemon a ZAP
 * refusal each. */
#define RETRY_BACKOFF_MIN 500
#define RETRY_BACKOFF_MAX 5000
#define BUFFER_MAX        200000 /* live messages held during a snapshot */

#ifndef TALLY_VERSION
#define TALLY_VERSION "0.0.0"
#endif

enum sub_state { S_HELLO, S_WAIT_SUB, S_SNAPSHOT, S_SYNCED };

/* One of the two sockets, as far as connecting it again goes. */
typedef struct retry {
    int64_t due_ms;   /* when to connect again; 0: not due */
    unsigned backoff; /* the wait before the next attempt */
} retry_t;

typedef struct buffered {
    struct buffered *next;
    size_t len;
    uint8_t data[];
} buffered_t;

struct tally_sub {
    void *zctx;
    bool own_ctx;
    void *sub;
    void *dealer;
    bool sub_connected;
    char server[TALLY_ENDPOINT_MAX];
    char pub[TALLY_ENDPOINT_MAX];
    char prefix[PROTO_PREFIX_MAX + 1];
    bool everything; /* prefix "" or "u/": every update is ours, so seq gaps are visible */
    tally_sub_callbacks_t cb;
    tally_period_changed_cb on_period_changed;
    void *period_ctx;
    unsigned hb_ms;
    unsigned snap_timeout_ms;

    enum sub_state state;
    int64_t due_ms; /* the current state's timer */
    int64_t last_rx_ms;
    unsigned hello_backoff;
    uint64_t last_req_id;
    uint64_t snap_req_id;
    uint32_t snap_items;

    sub_store_t table;
    sub_store_t staging;
    buffered_t *buf_head, *buf_tail;
    size_t nbuf;

    bool synced;
    uint64_t seq;      /* highest server seq the table reflects */
    uint64_t snap_seq; /* seq of the snapshot the table was built from */
    uint64_t stream_id;
    volatile sig_atomic_t stop;
    bool in_cb;      /* one of the application's callbacks is running */
    bool doomed;     /* destroyed from within a callback: freed once the call
                        that ran it returns, and no callback runs before */
    proto_msg_t msg; /* decode scratch: big, so not on the stack */
    char err[512];
    monitor_t mon;    /* what the request connection showed */
    monitor_t pubmon; /* what the subscription's connection showed */
    retry_t req_retry, pub_retry;
    bool pub_refused; /* the subscription's handshake failed: no live stream */
    bool blind;       /* the snapshot under way or applied was asked for
                         without traffic on the subscription (WAIT_SUB timed
                         out), and none has come since */
    int refusal;      /* the daemon's last ERROR to our requests; 0: none */
    char refusal_msg[PROTO_MESSAGE_MAX + 1];
};

static void seterr(tally_sub_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Every callback runs through here: none once a callback has destroyed
 * the subscriber, and the calls that must not run within one can tell. */
#define SUB_CALLBACK(s, call)                                                                      \
    do {                                                                                           \
        if (!(s)->doomed) {                                                                        \
            (s)->in_cb = true;                                                                     \
            call;                                                                                  \
            (s)->in_cb = false;                                                                    \
        }                                                                                          \
    } while (0)
static void seterr(tally_sub_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
}

static void buffer_clear(tally_sub_t *s)
{
    buffered_t *b = s->buf_head;
    while (b != NULL) {
        buffered_t *next = b->next;
        free(b);
        b = next;
    }
    s->buf_head = s->buf_tail = NULL;
    s->nbuf = 0;
}

static int send_msg(tally_sub_t *s, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = proto_encode(&sb, m);
    if (rc == 0 && zmq_send(s->dealer, sb.data, sb.size, ZMQ_DONTWAIT) < 0)
        rc = errno == EAGAIN || errno == EINTR ? TALLY_EAGAIN : TALLY_ESYS;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void send_hello(tally_sub_t *s, int64_t now)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.req_id = ++s->last_req_id;
    m.u.hello.client = proto_str("libtally/" TALLY_VERSION);
    /* A failed send is simply retried when the timer fires. */
    send_msg(s, &m);
    s->due_ms = now + s->hello_backoff;
    s->hello_backoff =
        s->hello_backoff * 2 > HELLO_BACKOFF_MAX ? HELLO_BACKOFF_MAX : s->hello_backoff * 2;
}

static void start_snapshot(tally_sub_t *s, int64_t now)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_SNAPSHOT_REQ;
    m.u.snapshot_req.req_id = s->snap_req_id = ++s->last_req_id;
    m.u.snapshot_req.prefix = proto_str(s->prefix);
    sub_store_clear(&s->staging);
    s->snap_items = 0;
    s->state = S_SNAPSHOT;
    s->synced = false;
    int rc = send_msg(s, &m);
    s->due_ms = now + (rc == 0 ? (int64_t)s->snap_timeout_ms : 200);
}

/* Start over from the subscription: after silence we cannot know whether
 * the subscription is still in place, so wait for traffic first. */
static void resync_wait(tally_sub_t *s, int64_t now)
{
    s->state = S_WAIT_SUB;
    s->synced = false;
    s->due_ms = now + 3 * (int64_t)s->hb_ms;
    buffer_clear(s);
}

static bool handshake_failed(int link)
{
    return link == TALLY_LINK_MECHANISM || link == TALLY_LINK_HANDSHAKE ||
           link == TALLY_LINK_KEY_REFUSED;
}

/* Have a socket connected again once r's backoff has passed (unless an
 * attempt is already due), and wait longer before the one after. */
static void retry_schedule(retry_t *r, int64_t now)
{
    if (r->due_ms != 0)
        return;
    r->due_ms = now + r->backoff;
    r->backoff = r->backoff * 2 > RETRY_BACKOFF_MAX ? RETRY_BACKOFF_MAX : r->backoff * 2;
}

/* The connection brought something: the next failure is retried soon. */
static void retry_reset(retry_t *r)
{
    r->backoff = RETRY_BACKOFF_MIN;
}

/* Connect sock to endpoint anew: drop what is left of the connection
 * ZeroMQ gave up (ENOENT: nothing), then connect.  The same socket, so
 * that its ZMQ_FD, which the caller polls (tally_sub_poll_fds), stays;
 * a SUB socket sends its subscriptions again on the new connection. */
static int reconnect(void *sock, const char *endpoint)
{
    if (zmq_disconnect(sock, endpoint) != 0 && errno != ENOENT)
        return -1;
    return util_connect(sock, endpoint);
}

static int connect_sub(tally_sub_t *s, int64_t now)
{
    if (util_connect(s->sub, s->pub) < 0) {
        seterr(s, "cannot connect to the publish endpoint '%s': %s", s->pub, zmq_strerror(errno));
        return TALLY_EINVAL;
    }
    s->sub_connected = true;
    resync_wait(s, now);
    s->last_rx_ms = now;
    return 0;
}

static int buffer_add(tally_sub_t *s, const void *data, size_t len, int64_t now)
{
    if (s->nbuf >= BUFFER_MAX) {
        /* The snapshot is too slow for the update rate: start again rather
         * than grow without bound. */
        buffer_clear(s);
        start_snapshot(s, now);
        return 0;
    }
    buffered_t *b = malloc(sizeof *b + len);
    if (b == NULL)
        return TALLY_ENOMEM;
    b->next = NULL;
    b->len = len;
    memcpy(b->data, data, len);
    if (s->buf_tail != NULL)
        s->buf_tail->next = b;
    else
        s->buf_head = b;
    s->buf_tail = b;
    s->nbuf++;
    return 0;
}

/* Hand a PERIOD_CHANGED to its callback, with NUL-terminated names. */
static void period_changed(tally_sub_t *s, const proto_msg_t *m)
{
    char metric[PROTO_NAME_MAX + 1], scope[PROTO_NAME_MAX + 1];
    char names[PROTO_CHANGED_MAX][CALPERIOD_NAME_MAX];
    const char *periods[PROTO_CHANGED_MAX];
    proto_str_t ms = m->u.period_changed.metric, ss = m->u.period_changed.scope;
    if (ms.len > PROTO_NAME_MAX || ss.len > PROTO_NAME_MAX)
        return; /* the decoder's limits make this impossible */
    memcpy(metric, ms.ptr, ms.len);
    metric[ms.len] = '\0';
    memcpy(scope, ss.ptr, ss.len);
    scope[ss.len] = '\0';
    size_t n = 0;
    for (uint32_t i = 0; i < m->u.period_changed.nperiods && i < PROTO_CHANGED_MAX; i++) {
        proto_str_t p = m->u.period_changed.periods[i];
        if (p.len >= CALPERIOD_NAME_MAX)
            continue;
        memcpy(names[n], p.ptr, p.len);
        names[n][p.len] = '\0';
        periods[n] = names[n];
        n++;
    }
    if (n > 0)
        SUB_CALLBACK(s, s->on_period_changed(s->period_ctx, metric, scope, periods, n));
}

/* A live message while SYNCED (or replayed from the buffer).  When it
 * shows that the table can no longer be trusted it starts a
 * re-synchronisation: s->state then leaves S_SYNCED. */
static void apply_live(tally_sub_t *s, const proto_msg_t *m, int64_t now)
{
    switch (m->type) {
    case PROTO_UPDATE: {
        const proto_tally_t *t = &m->u.update.tally;
        if (m->u.update.stream_id != s->stream_id) {
            start_snapshot(s, now); /* the daemon restarted: nothing before holds */
            return;
        }
        if (t->seq <= s->snap_seq)
            return; /* already in the snapshot */
        if (s->everything && t->seq > s->seq + 1) {
            start_snapshot(s, now); /* an update was lost (HWM, reconnect) */
            return;
        }
        sub_entry_t *e;
        if (sub_store_put(&s->table, t, &e) < 0) {
            seterr(s, "out of memory: re-synchronising");
            start_snapshot(s, now);
            return;
        }
        if (t->seq > s->seq)
            s->seq = t->seq;
        if (s->cb.on_tally != NULL)
            SUB_CALLBACK(s, s->cb.on_tally(s->cb.ctx, &e->pub));
        return;
    }
    case PROTO_HEARTBEAT:
        if (m->u.heartbeat.stream_id != s->stream_id) {
            start_snapshot(s, now);
            return;
        }
        /* The heartbeat follows every update published before it, so in
         * "everything" mode a higher seq than ours means updates were
         * lost.  For a filtered view it tells how current the table is. */
        if (s->everything && m->u.heartbeat.seq > s->seq) {
            start_snapshot(s, now);
            return;
        }
        if (m->u.heartbeat.seq > s->seq)
            s->seq = m->u.heartbeat.seq;
        return;
    case PROTO_GOODBYE:
        if (m->u.goodbye.stream_id == s->stream_id) {
            resync_wait(s, now); /* the next daemon's first message restarts us */
            return;
        }
        return;
    case PROTO_PERIOD_CHANGED:
        if (m->u.period_changed.stream_id == s->stream_id && s->on_period_changed != NULL)
            period_changed(s, m);
        return;
    default:
        return;
    }
}

static uint64_t msg_stream(const proto_msg_t *m)
{
    switch (m->type) {
    case PROTO_UPDATE:
        return m->u.update.stream_id;
    case PROTO_HEARTBEAT:
        return m->u.heartbeat.stream_id;
    case PROTO_GOODBYE:
        return m->u.goodbye.stream_id;
    default:
        return 0;
    }
}

/* on_tally for one tally of a new table. */
static void each_tally(void *ctx, const tally_tally_t *t)
{
    tally_sub_t *s = ctx;
    SUB_CALLBACK(s, s->cb.on_tally(s->cb.ctx, t));
}

static void apply_snapshot(tally_sub_t *s, uint64_t stream_id, uint64_t seq, int64_t now)
{
    s->stream_id = stream_id;
    s->seq = s->snap_seq = seq;
    if (s->cb.on_reset != NULL)
        SUB_CALLBACK(s, s->cb.on_reset(s->cb.ctx));
    sub_store_swap(&s->table, &s->staging);
    sub_store_clear(&s->staging);
    s->refusal = 0;
    s->state = S_SYNCED;
    s->synced = true;
    s->last_rx_ms = now;
    if (s->cb.on_tally != NULL)
        sub_store_foreach(&s->table, each_tally, s);
    /* Replay what arrived meanwhile.  Messages of another stream before the
     * first one of the snapshot's stream predate a daemon restart and are
     * dropped; one after it means the daemon restarted again. */
    buffered_t *b = s->buf_head;
    s->buf_head = s->buf_tail = NULL;
    s->nbuf = 0;
    bool seen = false;
    while (b != NULL) {
        buffered_t *next = b->next;
        if (s->state == S_SYNCED && proto_decode(b->data, b->len, &s->msg, NULL, 0, NULL) == 0) {
            uint64_t st = msg_stream(&s->msg);
            if (st == stream_id)
                seen = true;
            if (st == stream_id || seen)
                apply_live(s, &s->msg, now);
        }
        free(b);
        b = next;
    }
    if (s->state == S_SYNCED && s->cb.on_synced != NULL)
        SUB_CALLBACK(s, s->cb.on_synced(s->cb.ctx, s->seq, s->stream_id));
}

static void on_pub_message(tally_sub_t *s, const void *data, size_t len, int64_t now)
{
    s->last_rx_ms = now;
    s->blind = false;
    retry_reset(&s->pub_retry);
    switch (s->state) {
    case S_HELLO:
        return;
    case S_WAIT_SUB:
        /* Traffic proves the subscription is active: snapshot now, and
         * keep this message for after the snapshot. */
        start_snapshot(s, now);
        buffer_add(s, data, len, now);
        return;
    case S_SNAPSHOT:
        if (buffer_add(s, data, len, now) < 0) {
            seterr(s, "out of memory while buffering updates: re-synchronising");
            buffer_clear(s);
            resync_wait(s, now);
        }
        return;
    case S_SYNCED:
        if (proto_decode(data, len, &s->msg, NULL, 0, NULL) != 0)
            return;
        apply_live(s, &s->msg, now);
        if (s->state == S_SNAPSHOT)
            buffer_add(s, data, len, now); /* it belongs after the new snapshot */
        return;
    }
}

static void on_welcome(tally_sub_t *s, int64_t now)
{
    char adv[PROTO_ENDPOINT_MAX + 1];
    text_copy(adv, sizeof adv, s->msg.u.welcome.pub_endpoint.ptr,
              s->msg.u.welcome.pub_endpoint.len);
    if (tally_endpoint_pub(s->server, adv, s->pub, sizeof s->pub) < 0) {
        seterr(s, "cannot derive a publish endpoint from server '%s' and advertised '%s'",
               s->server, adv);
        return; /* HELLO is retried; an operator may fix the daemon's config */
    }
    connect_sub(s, now);
}

static void on_reply(tally_sub_t *s, const void *data, size_t len, int64_t now)
{
    proto_error_t perr;
    if (proto_decode(data, len, &s->msg, NULL, 0, &perr) < 0) {
        seterr(s, "ignored an undecodable reply: %s", perr.message);
        return;
    }
    const proto_msg_t *m = &s->msg;
    retry_reset(&s->req_retry);
    switch (m->type) {
    case PROTO_WELCOME:
        if (s->state == S_HELLO)
            on_welcome(s, now);
        break;
    case PROTO_SNAPSHOT_ITEM:
        if (s->state == S_SNAPSHOT && m->u.snapshot_item.req_id == s->snap_req_id) {
            s->snap_items++;
            if (sub_store_put(&s->staging, &m->u.snapshot_item.tally, NULL) < 0) {
                seterr(s, "out of memory while taking a snapshot");
                start_snapshot(s, now);
            }
        }
        break;
    case PROTO_SNAPSHOT_END:
        if (s->state != S_SNAPSHOT || m->u.snapshot_end.req_id != s->snap_req_id)
            break;
        if (m->u.snapshot_end.count != s->snap_items) {
            /* Items were lost on the way (a full queue drops messages):
             * the snapshot is incomplete, so ask again. */
            seterr(s,
                   "snapshot %" PRIu64 " announced %" PRIu32 " items but %" PRIu32
                   " arrived; asking again",
                   s->snap_req_id, m->u.snapshot_end.count, s->snap_items);
            start_snapshot(s, now);
            break;
        }
        apply_snapshot(s, m->u.snapshot_end.stream_id, m->u.snapshot_end.seq, now);
        break;
    case PROTO_ERROR:
        seterr(s, "the daemon refused request %" PRIu64 ": %.*s%s%.*s", m->u.error.req_id,
               (int)m->u.error.field.len, m->u.error.field.ptr, m->u.error.field.len ? ": " : "",
               (int)m->u.error.message.len, m->u.error.message.ptr);
        if (m->u.error.req_id != 0 && m->u.error.req_id <= s->last_req_id) {
            s->refusal = m->u.error.code >= 1 && m->u.error.code <= 99 ? -(int)m->u.error.code
                                                                       : TALLY_EMALFORMED;
            text_copy(s->refusal_msg, sizeof s->refusal_msg, m->u.error.message.ptr,
                      m->u.error.message.len);
        }
        break;
    default:
        break;
    }
}

/* Receive one message of up to two frames into f0 and f1; *nframes gets
 * the number of frames it had (3 for "more than two").  Returns 0;
 * TALLY_EAGAIN when none is waiting; TALLY_ESYS (errno tells why). */
static int recv_frames(void *sock, zmq_msg_t *f0, zmq_msg_t *f1, int *nframes)
{
    *nframes = 0;
    if (zmq_msg_recv(f0, sock, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN || errno == EINTR ? TALLY_EAGAIN : TALLY_ESYS;
    *nframes = 1;
    bool more = zmq_msg_more(f0);
    if (more) {
        if (zmq_msg_recv(f1, sock, 0) < 0)
            return TALLY_ESYS;
        *nframes = 2;
        more = zmq_msg_more(f1);
    }
    while (more) { /* frames beyond the layout carry nothing for us */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        if (zmq_msg_recv(&extra, sock, 0) < 0) {
            int e = errno;
            zmq_msg_close(&extra);
            errno = e;
            return TALLY_ESYS;
        }
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        *nframes = 3;
    }
    return 0;
}

static int drain(tally_sub_t *s, void *sock, bool pub)
{
    for (;;) {
        zmq_msg_t f0, f1;
        zmq_msg_init(&f0);
        zmq_msg_init(&f1);
        int n;
        int rc = recv_frames(sock, &f0, &f1, &n);
        if (rc == 0) {
            int64_t now = util_mono_ms();
            if (pub && n == 2)
                on_pub_message(s, zmq_msg_data(&f1), zmq_msg_size(&f1), now);
            else if (!pub && n == 1)
                on_reply(s, zmq_msg_data(&f0), zmq_msg_size(&f0), now);
        }
        int e = errno;
        zmq_msg_close(&f0);
        zmq_msg_close(&f1);
        if (rc == TALLY_EAGAIN)
            return 0;
        if (rc < 0) {
            seterr(s, "cannot receive: %s", zmq_strerror(e));
            return rc;
        }
        if (s->stop || s->doomed)
            return 0; /* leave the rest for the next call */
    }
}

static void timers(tally_sub_t *s, int64_t now)
{
    switch (s->state) {
    case S_HELLO:
        if (now >= s->due_ms)
            send_hello(s, now);
        break;
    case S_WAIT_SUB:
        if (now >= s->due_ms) {
            start_snapshot(s, now); /* no traffic: the daemon may be down; try anyway */
            s->blind = true;
        }
        break;
    case S_SNAPSHOT:
        if (now >= s->due_ms)
            start_snapshot(s, now);
        break;
    case S_SYNCED:
        if (now - s->last_rx_ms > 3 * (int64_t)s->hb_ms) {
            /* Silence after a snapshot taken without traffic: the daemon
             * answers requests, but its stream does not reach us, in a
             * way ZeroMQ does not mend (nor, without the monitor, say). */
            if (s->blind)
                retry_schedule(&s->pub_retry, now);
            resync_wait(s, now);
        }
        break;
    }
}

static void destroy_now(tally_sub_t *s);

/* The guard of the calls that run callbacks: not from within one (they
 * would run callbacks within callbacks, and change the table the running
 * call walks). */
static int refuse_in_callback(tally_sub_t *s, const char *call)
{
    seterr(s,
           "%s called from within one of this subscriber's callbacks: use tally_sub_stop "
           "there, and call again once the running call has returned",
           call);
    return TALLY_ECALLBACK;
}

/* The end of the calls that run callbacks: a subscriber its callback
 * destroyed is freed here, and the call says it is gone. */
static int api_leave(tally_sub_t *s, int rc)
{
    if (!s->doomed)
        return rc;
    destroy_now(s);
    return TALLY_ECLOSED;
}

/* A socket ZeroMQ gave up is connected again when its retry falls due.
 * The subscription's handshake refused, the live stream is broken:
 * re-synchronise from the subscription (the snapshots taken meanwhile are
 * blind, and tally_sub_synced() says false). */
static void follow_sockets(tally_sub_t *s, int64_t now)
{
    if (monitor_given_up(&s->mon))
        retry_schedule(&s->req_retry, now);
    if (s->req_retry.due_ms != 0 && now >= s->req_retry.due_ms) {
        s->req_retry.due_ms = 0;
        if (reconnect(s->dealer, s->server) == 0) {
            monitor_reconnected(&s->mon);
            /* The request under way went with the old connection: ask
             * again now, to be answered once the handshake succeeds. */
            if (s->state == S_HELLO || s->state == S_SNAPSHOT)
                s->due_ms = now;
        } else {
            seterr(s, "cannot connect to '%s' again: %s", s->server, zmq_strerror(errno));
        }
    }
    if (!s->sub_connected)
        return;
    bool refused = handshake_failed(monitor_poll(&s->pubmon));
    if (refused && !s->pub_refused) {
        seterr(s,
               "the security handshake failed on the publish endpoint '%s': no live updates "
               "until it succeeds; connecting again",
               s->pub);
        if (s->state == S_SYNCED || s->state == S_SNAPSHOT)
            resync_wait(s, now);
        /* No traffic will come to wait for: the snapshot is asked at
         * once (blind), and the daemon's answer says whether it lets this
         * key read at all (FORBIDDEN for a township's key, or one no longer
         * admitted), which tally_sub_refusal() then tells. */
        if (s->state == S_WAIT_SUB)
            s->due_ms = now;
    }
    s->pub_refused = refused;
    if (monitor_given_up(&s->pubmon))
        retry_schedule(&s->pub_retry, now);
    if (s->pub_retry.due_ms != 0 && now >= s->pub_retry.due_ms) {
        s->pub_retry.due_ms = 0;
        if (reconnect(s->sub, s->pub) != 0) {
            seterr(s, "cannot connect to the publish endpoint '%s' again: %s", s->pub,
                   zmq_strerror(errno));
            return;
        }
        monitor_reconnected(&s->pubmon);
        resync_wait(s, now);
        s->last_rx_ms = now;
    }
}

static int process(tally_sub_t *s)
{
    monitor_poll(&s->mon); /* kept drained, so that its last event is the latest */
    follow_sockets(s, util_mono_ms());
    int rc = drain(s, s->dealer, false);
    if (rc == 0 && s->sub_connected && !s->doomed)
        rc = drain(s, s->sub, true);
    if (rc < 0 || s->doomed)
        return rc;
    timers(s, util_mono_ms());
    return 0;
}

int tally_sub_process(tally_sub_t *s)
{
    if (s == NULL)
        return TALLY_EINVAL;
    if (s->in_cb)
        return refuse_in_callback(s, "tally_sub_process");
    return api_leave(s, process(s));
}

int tally_sub_next_timeout_ms(const tally_sub_t *s)
{
    if (s == NULL)
        return INT32_MAX; /* nothing will be due */
    int64_t now = util_mono_ms();
    int64_t due = s->state == S_SYNCED ? s->last_rx_ms + 3 * (int64_t)s->hb_ms + 1 : s->due_ms;
    if (s->req_retry.due_ms != 0 && s->req_retry.due_ms < due)
        due = s->req_retry.due_ms;
    if (s->pub_retry.due_ms != 0 && s->pub_retry.due_ms < due)
        due = s->pub_retry.due_ms;
    int64_t t = due - now;
    if (t < 0)
        t = 0;
    return t > INT32_MAX ? INT32_MAX : (int)t;
}

static int run(tally_sub_t *s, int timeout_ms)
{
    int64_t deadline = timeout_ms > 0 ? util_mono_ms() + timeout_ms : INT64_MAX;
    for (;;) {
        int rc = process(s);
        if (rc < 0 || s->doomed)
            return rc;
        if (s->stop) {
            s->stop = 0;
            return 0;
        }
        int64_t now = util_mono_ms();
        if (now >= deadline)
            return TALLY_ETIMEDOUT;
        int64_t wait = tally_sub_next_timeout_ms(s);
        if (deadline - now < wait)
            wait = deadline - now;
        zmq_pollitem_t items[2] = {{.socket = s->dealer, .events = ZMQ_POLLIN},
                                   {.socket = s->sub, .events = ZMQ_POLLIN}};
        if (zmq_poll(items, s->sub_connected ? 2 : 1, (long)wait) < 0 && errno != EINTR) {
            seterr(s, "cannot poll: %s", zmq_strerror(errno));
            return TALLY_ESYS;
        }
    }
}

int tally_sub_run(tally_sub_t *s, int timeout_ms)
{
    if (s == NULL)
        return TALLY_EINVAL;
    if (s->in_cb)
        return refuse_in_callback(s, "tally_sub_run");
    return api_leave(s, run(s, timeout_ms));
}

void tally_sub_stop(tally_sub_t *s)
{
    if (s == NULL)
        return;
    s->stop = 1;
}

int tally_sub_poll_fds(tally_sub_t *s, int fds[2])
{
    if (s == NULL || fds == NULL)
        return TALLY_EINVAL;
    size_t len = sizeof(int);
    if (zmq_getsockopt(s->sub, ZMQ_FD, &fds[0], &len) < 0)
        return TALLY_ESYS;
    len = sizeof(int);
    if (zmq_getsockopt(s->dealer, ZMQ_FD, &fds[1], &len) < 0)
        return TALLY_ESYS;
    return 0;
}

static int open_sockets(tally_sub_t *s, void *zctx, const curve_keys_t *keys, char *err,
                        size_t errlen)
{
    if (zctx != NULL) {
        s->zctx = zctx;
    } else {
        s->zctx = zmq_ctx_new();
        if (s->zctx == NULL) {
            text_format(err, errlen, "cannot create a ZeroMQ context: %s", zmq_strerror(errno));
            return TALLY_ESYS;
        }
        s->own_ctx = true;
    }
    s->dealer = zmq_socket(s->zctx, ZMQ_DEALER);
    s->sub = zmq_socket(s->zctx, ZMQ_SUB);
    if (s->dealer == NULL || s->sub == NULL) {
        text_format(err, errlen, "cannot create a ZeroMQ socket: %s", zmq_strerror(errno));
        return TALLY_ESYS;
    }
    int64_t maxmsg = 1 << 20;
    /* RCVHWM 0 on the request socket: a snapshot may be large and we read
     * it as fast as it comes.  The subscription queue is bounded but deep;
     * an overflow shows as a gap or a stale table and re-synchronises.  A
     * small SNDHWM bounds the requests queued while the daemon is down. */
    if (util_setsockopt_int(s->dealer, ZMQ_LINGER, 0) < 0 ||
        util_setsockopt_int(s->sub, ZMQ_LINGER, 0) < 0 ||
        util_setsockopt_int(s->dealer, ZMQ_RCVHWM, 0) < 0 ||
        util_setsockopt_int(s->sub, ZMQ_RCVHWM, 100000) < 0 ||
        util_setsockopt_int(s->dealer, ZMQ_SNDHWM, 8) < 0 ||
        util_setsockopt_int(s->dealer, ZMQ_RECONNECT_IVL, 100) < 0 ||
        util_setsockopt_int(s->sub, ZMQ_RECONNECT_IVL, 100) < 0 ||
        util_setsockopt_int(s->dealer, ZMQ_RECONNECT_IVL_MAX, 5000) < 0 ||
        util_setsockopt_int(s->sub, ZMQ_RECONNECT_IVL_MAX, 5000) < 0 ||
        util_setsockopt_int(s->dealer, ZMQ_HEARTBEAT_IVL, 1000) < 0 ||
        util_setsockopt_int(s->dealer, ZMQ_HEARTBEAT_TIMEOUT, 3000) < 0 ||
        zmq_setsockopt(s->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        zmq_setsockopt(s->sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, s->prefix, strlen(s->prefix)) < 0 ||
        zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, PROTO_TOPIC_HEARTBEAT, 1) < 0) {
        text_format(err, errlen, "cannot set ZeroMQ socket options: %s", zmq_strerror(errno));
        return TALLY_ESYS;
    }
    /* Both sockets: the subscription and the snapshots it asks for. */
    if (curve_apply(s->dealer, keys) < 0 || curve_apply(s->sub, keys) < 0) {
        text_format(err, errlen, "cannot set the CURVE keys: %s", zmq_strerror(errno));
        return TALLY_ESYS;
    }
    monitor_open(&s->mon, s->zctx, s->dealer, s->server); /* without it, only less is said */
    /* The subscription's: its handshake, which the daemon may refuse
     * while it answers requests (a reload that revoked our key cuts the
     * subscription only).  Its failures to connect the request
     * socket's probes tell. */
    monitor_open(&s->pubmon, s->zctx, s->sub, NULL);
    if (util_connect(s->dealer, s->server) < 0) {
        text_format(err, errlen, "cannot connect to '%s': %s", s->server, zmq_strerror(errno));
        return TALLY_EINVAL;
    }
    return 0;
}

int tally_sub_new(const char *server_endpoint, const char *prefix, const tally_sub_callbacks_t *cb,
                  const tally_sub_opts_t *opts, tally_sub_t **out)
{
    static const tally_sub_opts_t defaults;
    const tally_sub_opts_t *o = opts ? opts : &defaults;
    char *err = o->errbuf;
    size_t errlen = o->errbuf_len;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (server_endpoint == NULL || out == NULL) {
        text_format(err, errlen, "tally_sub_new: server_endpoint and out are required");
        return TALLY_EINVAL;
    }
    if (prefix == NULL)
        prefix = "";
    if (strlen(prefix) > PROTO_PREFIX_MAX) {
        text_format(err, errlen, "prefix is %zu bytes, more than the limit of %d", strlen(prefix),
                    PROTO_PREFIX_MAX);
        return TALLY_EINVAL;
    }
    tally_sub_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return TALLY_ENOMEM;
    sub_store_init(&s->table);
    sub_store_init(&s->staging);
    strcpy(s->prefix, prefix);
    s->everything = prefix[0] == '\0' || strcmp(prefix, "u/") == 0;
    if (cb != NULL)
        s->cb = *cb;
    s->hb_ms = o->heartbeat_ms ? o->heartbeat_ms : 1000;
    s->snap_timeout_ms = o->snapshot_timeout_ms ? o->snapshot_timeout_ms : 5000;
    s->hello_backoff = HELLO_BACKOFF_MIN;
    s->req_retry.backoff = s->pub_retry.backoff = RETRY_BACKOFF_MIN;
    char why[256];
    int rc = tally_endpoint_parse(server_endpoint, s->server, sizeof s->server, why, sizeof why);
    if (rc < 0) {
        text_format(err, errlen, "server address '%s' is not valid: %s", server_endpoint, why);
        rc = TALLY_EINVAL;
        goto fail;
    }
    curve_keys_t keys;
    rc = curve_load(o->curve, &keys, err, errlen);
    if (rc < 0)
        goto fail;
    rc = open_sockets(s, o->zmq_ctx, &keys, err, errlen);
    curve_wipe(&keys);
    if (rc < 0)
        goto fail;
    int64_t now = util_mono_ms();
    if (o->pub_endpoint != NULL && o->pub_endpoint[0] != '\0') {
        rc = tally_endpoint_normalize(o->pub_endpoint, s->pub, sizeof s->pub);
        if (rc == 0)
            rc = connect_sub(s, now);
        if (rc < 0) {
            text_format(err, errlen, "publish endpoint '%s' is not valid", o->pub_endpoint);
            goto fail;
        }
    } else {
        s->state = S_HELLO;
        s->due_ms = now; /* HELLO goes out with the first process() */
    }
    *out = s;
    return 0;
fail:
    tally_sub_destroy(&s);
    return rc;
}

static void destroy_now(tally_sub_t *s)
{
    monitor_close(&s->pubmon, s->sub);
    if (s->sub != NULL)
        zmq_close(s->sub);
    monitor_close(&s->mon, s->dealer);
    if (s->dealer != NULL)
        zmq_close(s->dealer);
    if (s->own_ctx)
        zmq_ctx_term(s->zctx);
    sub_store_clear(&s->table);
    sub_store_clear(&s->staging);
    buffer_clear(s);
    free(s);
}

void tally_sub_destroy(tally_sub_t **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    tally_sub_t *s = *sp;
    *sp = NULL;
    /* From within one of its callbacks the subscriber is still in use by
     * the call that runs the callback, which frees it on its way out. */
    if (s->in_cb) {
        s->doomed = true;
        return;
    }
    destroy_now(s);
}

bool tally_sub_synced(const tally_sub_t *s)
{
    if (s == NULL)
        return false;
    /* A blind snapshot is consistent, but nothing says that it is kept
     * current: the stream may be refused or broken. */
    return s->synced && !s->blind;
}

uint64_t tally_sub_seq(const tally_sub_t *s)
{
    if (s == NULL)
        return 0;
    return s->seq;
}

uint64_t tally_sub_stream_id(const tally_sub_t *s)
{
    if (s == NULL)
        return 0;
    return s->stream_id;
}

size_t tally_sub_count(const tally_sub_t *s)
{
    if (s == NULL)
        return 0;
    return s->table.n;
}

const char *tally_sub_last_error(const tally_sub_t *s)
{
    if (s == NULL)
        return "";
    return s->err;
}

void tally_sub_foreach(const tally_sub_t *s, tally_tally_cb fn, void *ctx)
{
    if (s == NULL || fn == NULL)
        return;
    sub_store_foreach(&s->table, fn, ctx);
}

int tally_sub_on_period_changed(tally_sub_t *s, tally_period_changed_cb fn, void *ctx)
{
    if (s == NULL)
        return TALLY_EINVAL;
    s->on_period_changed = fn;
    s->period_ctx = ctx;
    return 0;
}

const char *tally_sub_pub_endpoint(const tally_sub_t *s)
{
    if (s == NULL)
        return "";
    return s->pub;
}

int tally_sub_link(tally_sub_t *s)
{
    if (s == NULL)
        return TALLY_LINK_UNKNOWN;
    int link = monitor_poll(&s->mon);
    if (handshake_failed(link) || !s->sub_connected)
        return link;
    /* A refused subscription says more than a request socket that works,
     * which a reload that revoked our key leaves connected. */
    int sub = monitor_poll(&s->pubmon);
    return handshake_failed(sub) ? sub : link;
}

int64_t tally_sub_refused_ms(tally_sub_t *s)
{
    if (s == NULL)
        return 0;
    return monitor_refused_ms(&s->mon);
}

const char *tally_sub_link_why(tally_sub_t *s)
{
    if (s == NULL)
        return "";
    monitor_poll(&s->mon);
    return monitor_why(&s->mon);
}

int tally_sub_refusal(const tally_sub_t *s, const char **message)
{
    if (s == NULL) {
        if (message != NULL)
            *message = "";
        return 0;
    }
    if (message != NULL)
        *message = s->refusal ? s->refusal_msg : "";
    return s->refusal;
}
