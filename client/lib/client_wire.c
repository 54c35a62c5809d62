/* client_wire.c - libtally (client/lib/): the publisher on the wire,
 * HELLO first, then sending within the in-flight window, resending on
 * jittered exponential backoff, and acting on ACKs.
 *
 * Nothing is submitted before the daemon has answered HELLO: its WELCOME
 * says how long it remembers a client id, and a spooled submission sent
 * under an id it has forgotten would count twice (client_expiry.c).
 *
 * The daemon remembers the last 1024 seqs per client, so a submission may
 * only be sent while its seq is within max_in_flight of the oldest
 * unacknowledged one; otherwise a long-unacknowledged submission could fall
 * out of the daemon's window and be refused as STALE_SEQUENCE. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "client_impl.h"
#include "text.h"
#include "util.h"

#ifndef TALLY_VERSION
#define TALLY_VERSION "0.0.0"
#endif

#define HELLO_BACKOFF_MAX 5000 /* PROTOCOL.md 11.4: HELLO timeout */

uint32_t client_jitter(tally_client_t *c, uint32_t backoff)
{
    /* "Equal jitter": half fixed, half random, so clients that lost the
     * daemon together do not come back in lockstep, yet none retries much
     * earlier than its backoff. */
    uint32_t half = backoff / 2;
    return half + (uint32_t)(util_rand_next(&c->rng) % ((uint64_t)backoff - half + 1));
}

static void schedule(tally_client_t *c, client_pending_t *p, int64_t now)
{
    p->due_ms = now + client_jitter(c, p->backoff_ms);
    uint64_t next = (uint64_t)p->backoff_ms * 2;
    p->backoff_ms = next > c->backoff_max_ms ? c->backoff_max_ms : (uint32_t)next;
}

/* Send HELLO when it is due.  0 or TALLY_ESYS. */
static int hello(tally_client_t *c, int64_t now)
{
    if (c->hello_req != 0 && now < c->hello_due_ms)
        return 0;
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_HELLO;
    m.u.hello.req_id = c->hello_req + 1;
    m.u.hello.client = proto_str("libtally/" TALLY_VERSION);
    msgpack_sbuffer_clear(&c->sbuf);
    int rc = proto_encode(&c->sbuf, &m);
    if (rc < 0)
        return rc;
    if (zmq_send(c->dealer, c->sbuf.data, c->sbuf.size, ZMQ_DONTWAIT) < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            c->blocked = true; /* no connection yet: when it is writable */
            return 0;
        }
        client_seterr(c, "cannot send HELLO to %s: %s", c->endpoint, zmq_strerror(errno));
        return TALLY_ESYS;
    }
    c->blocked = false;
    c->hello_req++;
    c->hello_due_ms = now + client_jitter(c, c->hello_backoff_ms);
    uint32_t next = c->hello_backoff_ms * 2;
    c->hello_backoff_ms = next > HELLO_BACKOFF_MAX ? HELLO_BACKOFF_MAX : next;
    return 0;
}

int client_wire_pump(tally_client_t *c, int64_t now)
{
    if (!c->welcomed)
        return c->head != NULL || c->hello_wanted ? hello(c, now) : 0;
    if (c->head == NULL) {
        c->blocked = false;
        return 0;
    }
    /* A failure here is in c->err; sending nothing under an id that may
     * be forgotten is the rule, so it waits for the next attempt. */
    if (client_expiry_check(c, util_real_ms()) < 0 || c->head == NULL)
        return 0;
    uint64_t limit = c->head->seq + c->max_in_flight;
    for (client_pending_t *p = c->head; p != NULL && p->seq < limit; p = p->next) {
        if (p->due_ms > now)
            continue;
        if (zmq_send(c->dealer, p->body, p->len, ZMQ_DONTWAIT) < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                /* With ZMQ_IMMEDIATE a DEALER refuses to queue while no
                 * connection is up: we keep the submission due and wait
                 * for the socket to become writable instead of piling up
                 * copies that would all be delivered on reconnect. */
                c->blocked = true;
                return 0;
            }
            client_seterr(c, "cannot send submission %" PRIu64 " to %s: %s", p->seq, c->endpoint,
                          zmq_strerror(errno));
            return TALLY_ESYS;
        }
        p->sends++;
        schedule(c, p, now);
    }
    c->blocked = false;
    return 0;
}

int client_wire_reconnect(tally_client_t *c)
{
    /* The daemon's ROUTER routes each reply to the connection its request
     * came on; with that connection gone, ZeroMQ drops the reply. */
    if (zmq_disconnect(c->dealer, c->endpoint) < 0 && errno != ENOENT) {
        client_seterr(c, "cannot disconnect from %s: %s", c->endpoint, zmq_strerror(errno));
        return TALLY_ESYS;
    }
    if (util_connect(c->dealer, c->endpoint) < 0) {
        client_seterr(c, "cannot connect to %s: %s", c->endpoint, zmq_strerror(errno));
        return TALLY_ESYS;
    }
    return 0;
}

int client_wire_next_timeout(const tally_client_t *c, int64_t now)
{
    if (!c->welcomed && (c->head != NULL || c->hello_wanted)) {
        if (c->blocked || c->hello_req == 0)
            return c->blocked ? 100 : 0;
        int64_t t = c->hello_due_ms - now;
        return t < 0 ? 0 : t > INT32_MAX ? INT32_MAX : (int)t;
    }
    if (c->head == NULL)
        return -1;
    uint64_t limit = c->head->seq + c->max_in_flight;
    int64_t best = -1;
    for (const client_pending_t *p = c->head; p != NULL && p->seq < limit; p = p->next) {
        int64_t t = p->due_ms - now;
        if (t <= 0)
            t = c->blocked ? 100 : 0; /* blocked: wait for writability, poll now and then */
        if (best < 0 || t < best)
            best = t;
    }
    if (best > INT32_MAX)
        best = INT32_MAX;
    return (int)best;
}

static client_pending_t *find(tally_client_t *c, uint64_t seq)
{
    for (client_pending_t *p = c->head; p != NULL; p = p->next) {
        if (p->seq == seq)
            return p;
        if (p->seq > seq)
            break; /* the queue is in seq order */
    }
    return NULL;
}

/* Settled: off the spool and out of the queue. */
static void settle(tally_client_t *c, client_pending_t *p)
{
    if (c->spool != NULL) {
        char err[512];
        /* A failed unlink only costs a resend answered "duplicate" by the
         * next run, so it is reported but not fatal. */
        if (spool_remove(c->spool, p->seq, err, sizeof err) < 0)
            client_seterr(c, "%s", err);
    }
    client_queue_drop(c, p);
}

/* Rejected for good: settled.  A submission an earlier run left in the
 * spool is moved to SPOOL/rejected/ instead of deleted, as whoever made it
 * may no longer have its figures; on_reject can read where it went and
 * what it holds (tally_client_rejected_earlier).  Should the move fail, it
 * is deleted all the same: left in the queue, the next run would send it
 * again by itself, and count it if the daemon then took it, after its user
 * had perhaps pushed the figures again.  Its figures then reach on_reject
 * alone. */
static void reject(tally_client_t *c, client_pending_t *p, int code, int sample, const char *field,
                   const char *message)
{
    uint64_t seq = p->seq;
    tally_rejected_t r;
    client_figures_t *fig = NULL;
    char path[4200] = "";
    bool aside = p->earlier && c->spool != NULL;
    if (aside) {
        memset(&r, 0, sizeof r);
        r.seq = seq;
        r.township = "";
        r.path = path;
        memcpy(r.client_id, c->id, sizeof r.client_id);
        fig = malloc(sizeof *fig);
        if (fig != NULL && client_figures_decode(fig, p->body, p->len)) {
            memcpy(r.client_id, fig->msg.u.submit.client_id, sizeof r.client_id);
            r.township = fig->township;
            r.time_ms = fig->time_ms;
            r.nsamples = fig->nsamples;
            r.samples = fig->out;
        }
        char err[512];
        /* Moved but not synced (path set): kept, as far as anyone can do. */
        if (spool_move_rejected(c->spool, seq, r.client_id, path, sizeof path, err, sizeof err) <
                0 &&
            path[0] == '\0') {
            size_t len = strlen(c->err);
            snprintf(c->err + len, sizeof c->err - len,
                     "; it could not be kept in %s/rejected/ and is deleted (%s)",
                     spool_path(c->spool), err);
        }
    }
    settle(c, p); /* the file is gone already once moved */
    if (c->on_reject != NULL && !c->doomed) {
        c->in_cb = true;
        c->rejected = aside ? &r : NULL;
        c->on_reject(c->cb_ctx, seq, code, sample, field, message);
        c->rejected = NULL;
        c->in_cb = false;
    }
    free(fig);
}

static void on_ack(tally_client_t *c, const proto_ack_t *ack)
{
    client_pending_t *p = find(c, ack->seq);
    if (p == NULL)
        return; /* an answer to a resend of something already settled */
    if (ack->status == PROTO_ACK_ACCEPTED || ack->status == PROTO_ACK_DUPLICATE) {
        /* The daemon has touched the id now: the expiry rule counts from
         * here. */
        client_state_acked(c, util_real_ms());
        uint64_t seq = p->seq;
        uint32_t n = p->nsamples;
        settle(c, p);
        if (c->on_ack != NULL && !c->doomed) {
            c->in_cb = true;
            c->on_ack(c->cb_ctx, seq,
                      ack->status == PROTO_ACK_ACCEPTED ? TALLY_ACK_ACCEPTED : TALLY_ACK_DUPLICATE,
                      n);
            c->in_cb = false;
        }
        return;
    }
    int code = ack->code >= 1 && ack->code <= 99 ? -(int)ack->code : TALLY_EMALFORMED;
    char field[PROTO_FIELD_MAX + 1], message[PROTO_MESSAGE_MAX + 1];
    text_copy(field, sizeof field, ack->field.ptr, ack->field.len);
    text_copy(message, sizeof message, ack->message.ptr, ack->message.len);
    if (message[0] == '\0')
        text_copy(message, sizeof message, tally_strerror(code), strlen(tally_strerror(code)));
    /* The daemon's messages usually start with the field already. */
    const char *shown = strncmp(message, field, strlen(field)) == 0 ? "" : field;
    if (tally_err_retryable(code)) {
        /* The daemon asks us to come back later: same bytes, same seq. */
        schedule(c, p, util_mono_ms());
        c->retry_code = code;
        c->retry_seq = p->seq;
        snprintf(c->retry_msg, sizeof c->retry_msg, "%s%s%s", shown, shown[0] ? ": " : "", message);
        client_seterr(c, "submission %" PRIu64 " will be retried: %s%s%s (%s)", p->seq, shown,
                      shown[0] ? ": " : "", message, tally_errname(code));
        return;
    }
    client_seterr(c, "submission %" PRIu64 " rejected: %s%s%s (%s)", p->seq, shown,
                  shown[0] ? ": " : "", message, tally_errname(code));
    reject(c, p, code, ack->sample, field, message);
}

/* What the daemon says of itself: its limits and how long it remembers a
 * client id, kept with the identity for the runs that cannot ask. */
static void on_welcome(tally_client_t *c, const proto_msg_t *m)
{
    if (m->u.welcome.req_id == 0 || m->u.welcome.req_id > c->hello_req)
        return; /* not an answer to our HELLO */
    c->welcomed = true;
    int64_t samples = m->u.welcome.max_samples, msg = m->u.welcome.max_msg;
    int64_t expiry = m->u.welcome.client_expiry_ms;
    bool changed = false;
    /* A missing or negative limit means "the protocol default" for the
     * limits, and for the expiry "keep what was learned last". */
    samples = samples > 0 ? samples : -1;
    msg = msg > 0 ? msg : -1;
    if (samples != c->max_samples || msg != c->max_msg) {
        c->max_samples = samples;
        c->max_msg = msg;
        changed = true;
    }
    if (expiry > 0 && expiry != c->expiry_ms) {
        c->expiry_ms = expiry;
        changed = true;
    }
    if (changed && client_state_save(c, c->next_seq) < 0)
        return; /* c->err says why; the state keeps the older values */
    client_expiry_check(c, util_real_ms());
}

/* An ERROR answering HELLO: retry later when the daemon asks for it,
 * otherwise go on without what WELCOME would have said. */
static void on_hello_error(tally_client_t *c, int code)
{
    if (tally_err_retryable(code)) {
        c->hello_due_ms = util_mono_ms() + client_jitter(c, c->hello_backoff_ms);
        return;
    }
    c->welcomed = true;
}

static void handle_reply(tally_client_t *c, const void *data, size_t len)
{
    proto_msg_t msg;
    proto_error_t perr;
    if (proto_decode(data, len, &msg, NULL, 0, &perr) < 0) {
        client_seterr(c, "ignored an undecodable reply from %s: %s", c->endpoint, perr.message);
        return;
    }
    if (msg.type == PROTO_ACK) {
        on_ack(c, &msg.u.ack);
    } else if (msg.type == PROTO_WELCOME) {
        on_welcome(c, &msg);
    } else if (msg.type == PROTO_ERROR) {
        int code = msg.u.error.code >= 1 && msg.u.error.code <= 99 ? -(int)msg.u.error.code
                                                                   : TALLY_EMALFORMED;
        client_seterr(c, "the daemon reported an error: %.*s%s%.*s (%s)",
                      (int)msg.u.error.field.len, msg.u.error.field.ptr,
                      msg.u.error.field.len ? ": " : "", (int)msg.u.error.message.len,
                      msg.u.error.message.ptr, tally_errname(code));
        if (!c->welcomed && msg.u.error.req_id != 0 && msg.u.error.req_id <= c->hello_req)
            on_hello_error(c, code);
    }
    /* Other types are not for a publisher; ignoring them keeps the client
     * compatible with daemons that say more. */
}

int client_wire_drain(tally_client_t *c)
{
    /* Once a callback has destroyed the client, what is left on the socket
     * is left to the daemon's resends and the next run's spool. */
    while (!c->doomed) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->dealer, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            if (e == EAGAIN || e == EINTR)
                return 0;
            client_seterr(c, "cannot receive from %s: %s", c->endpoint, zmq_strerror(e));
            return TALLY_ESYS;
        }
        bool multi = zmq_msg_more(&m);
        if (!multi)
            handle_reply(c, zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
        /* Every reply is one frame; a multi-frame message is not ours to
         * interpret, so all of its frames are dropped. */
        while (multi) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->dealer, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            multi = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
    }
    return 0;
}
