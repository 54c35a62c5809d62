/* zsock.c - a ZeroMQ socket driven by a libuv loop. */
#include "zsock.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

/* The outcome of receiving one message. */
enum {
    RECV_NONE,  /* EAGAIN: the queue is empty */
    RECV_DONE,  /* one message delivered or dropped */
    RECV_RETRY, /* interrupted; try again on the next iteration */
    RECV_FAIL,  /* hard error, the zsock has stopped */
};

static void on_poll(uv_poll_t *h, int status, int events);
static void on_idle(uv_idle_t *h);

/* Stop watching after an error, so a dead socket cannot spin the loop, and
 * tell the owner. */
static void fail(zsock_t *zs, int code, int err)
{
    zs->stats.errors++;
    zs->last_errno = err;
    zs->failed = true;
    uv_poll_stop(&zs->poll);
    uv_idle_stop(&zs->idle);
    if (zs->on_error != NULL)
        zs->on_error(zs, code, err, zs->ctx);
}

static int zmq_code(int err)
{
    return err == ETERM ? TALLY_ECLOSED : TALLY_EIO;
}

/* Make the next loop iteration run a drain without blocking first.  The idle
 * handle, rather than a direct drain, keeps callbacks from nesting. */
static void schedule(zsock_t *zs)
{
    if (!zs->closing && !zs->failed)
        uv_idle_start(&zs->idle, on_idle);
}

int zsock_init(zsock_t *zs, uv_loop_t *loop, void *sock, zsock_msg_cb on_msg, void *ctx)
{
    assert(zs != NULL && loop != NULL);
    memset(zs, 0, sizeof(*zs));
    zmq_fd_t fd;
    size_t len = sizeof(fd);
    if (sock == NULL || zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
        return sock != NULL && errno == ETERM ? TALLY_ECLOSED : TALLY_EINVAL;
    /* uv_poll_init, not uv_poll_init_socket: ZMQ_FD is ZeroMQ's internal
     * signaler (an eventfd on Linux), not a socket. */
    if (uv_poll_init(loop, &zs->poll, fd) != 0)
        return TALLY_ESYS;
    uv_idle_init(loop, &zs->idle);
    zs->poll.data = zs;
    zs->idle.data = zs;
    zs->open_handles = 2;
    zs->sock = sock;
    zs->on_msg = on_msg;
    zs->ctx = ctx;
    zs->budget = ZSOCK_DEFAULT_BUDGET;
    /* ZMQ_FD only ever signals readable; polling for writable would wake
     * the loop forever. */
    int rc = uv_poll_start(&zs->poll, UV_READABLE, on_poll);
    if (rc != 0) {
        /* The handles are initialised and must go through uv_close; the
         * caller learns of it through the return code only. */
        zsock_close(zs, NULL);
        return TALLY_ESYS;
    }
    /* The owner's zmq calls before now (bind, connect, setsockopt) may have
     * consumed the descriptor's signal for messages already queued. */
    schedule(zs);
    return 0;
}

void zsock_set_budget(zsock_t *zs, unsigned msgs)
{
    assert(msgs >= 1);
    zs->budget = msgs;
}

void zsock_set_error_cb(zsock_t *zs, zsock_error_cb cb)
{
    zs->on_error = cb;
}

/* Map a failed send of part `part` to a tally code. */
static int send_error(zsock_t *zs, int err, int part)
{
    if (err == EAGAIN && part == 0) {
        zs->stats.send_eagain++;
        return TALLY_EAGAIN;
    }
    zs->last_errno = err;
    zs->stats.errors++;
    if (err == EHOSTUNREACH && part == 0)
        return TALLY_ENOTFOUND;
    if (err == ETERM)
        return TALLY_ECLOSED;
    return TALLY_EIO;
}

int zsock_send(zsock_t *zs, zmq_msg_t *parts, int nparts)
{
    assert(parts != NULL && nparts >= 1);
    if (zs->closing)
        return TALLY_ECLOSED;
    int rc = 0;
    for (int i = 0; i < nparts && rc == 0; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < nparts ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&parts[i], zs->sock, flags) < 0)
            rc = send_error(zs, errno, i);
    }
    if (rc == 0)
        zs->stats.msgs_out++;
    /* Even a refused send may have processed the command that made ZMQ_FD
     * readable, so ZMQ_EVENTS must be looked at again. */
    schedule(zs);
    return rc;
}

int zsock_send_buf(zsock_t *zs, const void *const *bufs, const size_t *lens, int nparts)
{
    assert(bufs != NULL && lens != NULL && nparts >= 1);
    if (zs->closing)
        return TALLY_ECLOSED;
    int rc = 0;
    for (int i = 0; i < nparts && rc == 0; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < nparts ? ZMQ_SNDMORE : 0);
        if (zmq_send(zs->sock, bufs[i], lens[i], flags) < 0)
            rc = send_error(zs, errno, i);
    }
    if (rc == 0)
        zs->stats.msgs_out++;
    schedule(zs);
    return rc;
}

void zsock_want_write(zsock_t *zs, zsock_writable_cb cb)
{
    if (zs->closing)
        return;
    zs->on_writable = cb;
    if (cb != NULL)
        schedule(zs);
}

void zsock_kick(zsock_t *zs)
{
    schedule(zs);
}

void zsock_pause(zsock_t *zs)
{
    zs->paused = true;
}

void zsock_resume(zsock_t *zs)
{
    if (!zs->paused)
        return;
    zs->paused = false;
    schedule(zs);
}

static void on_handle_closed(uv_handle_t *h)
{
    zsock_t *zs = h->data;
    if (--zs->open_handles == 0 && zs->on_closed != NULL)
        zs->on_closed(zs);
}

void zsock_close(zsock_t *zs, zsock_close_cb cb)
{
    assert(!zs->closing);
    zs->closing = true;
    zs->on_closed = cb;
    zs->on_writable = NULL;
    /* libuv removes the descriptor from its poll set inside uv_close, so
     * the owner may close the ZeroMQ socket as soon as this returns. */
    uv_close((uv_handle_t *)&zs->poll, on_handle_closed);
    uv_close((uv_handle_t *)&zs->idle, on_handle_closed);
}

static void close_parts(zmq_msg_t *parts, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

/* Receive one whole message and deliver it, or read and drop it when it has
 * too many parts.  ZeroMQ delivers multipart messages atomically, so once
 * the first part is in, the others are too, and a failure after the first
 * part is a hard error rather than EAGAIN. */
static int recv_one(zsock_t *zs)
{
    zmq_msg_t parts[ZSOCK_MAX_PARTS];
    zmq_msg_init(&parts[0]);
    if (zmq_msg_recv(&parts[0], zs->sock, ZMQ_DONTWAIT) < 0) {
        int err = errno;
        zmq_msg_close(&parts[0]);
        if (err == EAGAIN)
            return RECV_NONE;
        if (err == EINTR)
            return RECV_RETRY;
        fail(zs, zmq_code(err), err);
        return RECV_FAIL;
    }
    int n = 1;
    bool more = zmq_msg_more(&parts[0]);
    bool oversized = false;
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *dst = n < ZSOCK_MAX_PARTS ? &parts[n] : &extra;
        zmq_msg_init(dst);
        if (zmq_msg_recv(dst, zs->sock, ZMQ_DONTWAIT) < 0) {
            int err = errno;
            zmq_msg_close(dst);
            close_parts(parts, n);
            fail(zs, zmq_code(err), err);
            return RECV_FAIL;
        }
        more = zmq_msg_more(dst);
        if (dst == &extra) {
            zmq_msg_close(&extra);
            oversized = true;
        } else {
            n++;
        }
    }
    if (oversized) {
        zs->stats.dropped_oversized++;
    } else {
        zs->stats.msgs_in++;
        zs->on_msg(zs, parts, n, zs->ctx);
    }
    close_parts(parts, n);
    return RECV_DONE;
}

/* Deliver up to a budget of messages, then look at ZMQ_EVENTS once to
 * decide whether another drain is due and whether the socket is writable.
 * Receiving until EAGAIN and checking ZMQ_EVENTS once afterwards costs half
 * as much as checking ZMQ_EVENTS before every receive.  The check is made
 * even when the budget stopped the drain, so that a socket busy with
 * incoming traffic still reports writability to a waiting sender. */
static void drain(zsock_t *zs)
{
    /* libuv runs no callback of a closed or stopped handle. */
    assert(!zs->closing && !zs->failed);
    bool again = false; /* stopped with work left: run on the next iteration */
    unsigned n = 0;
    while (zs->on_msg != NULL && !zs->paused) {
        int r = recv_one(zs);
        if (r == RECV_FAIL || zs->closing)
            return;
        if (r == RECV_NONE)
            break;
        if (r == RECV_RETRY || ++n >= zs->budget) {
            if (r == RECV_DONE)
                zs->stats.budget_yields++;
            again = true;
            break;
        }
    }
    /* This call also consumes the descriptor's pending signal, so while
     * paused the poll handle does not keep firing. */
    int events = 0;
    size_t len = sizeof(events);
    if (zmq_getsockopt(zs->sock, ZMQ_EVENTS, &events, &len) != 0) {
        int err = errno;
        if (err != EINTR) {
            fail(zs, zmq_code(err), err);
            return;
        }
        again = true;
    }
    /* Messages can be waiting with ZMQ_FD silent (a send from a callback
     * may have consumed the signal), so ZMQ_POLLIN alone keeps us going. */
    bool want_in = zs->on_msg != NULL && !zs->paused;
    if (want_in && (again || (events & ZMQ_POLLIN)))
        uv_idle_start(&zs->idle, on_idle);
    else
        uv_idle_stop(&zs->idle);
    /* Last, because the callback may send and so restart the idle handle. */
    if (zs->on_writable != NULL && (events & ZMQ_POLLOUT)) {
        zsock_writable_cb cb = zs->on_writable;
        zs->on_writable = NULL;
        cb(zs, zs->ctx);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    zsock_t *zs = h->data;
    if (status < 0) {
        fail(zs, TALLY_ESYS, -status);
        return;
    }
    drain(zs);
}

static void on_idle(uv_idle_t *h)
{
    drain(h->data);
}
