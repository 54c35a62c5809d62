/* zsock.h - a ZeroMQ socket driven by a libuv loop.
 *
 * A zsock watches one ZeroMQ socket from a uv_loop_t: it delivers every
 * whole incoming multipart message to a callback, sends without blocking,
 * and tells its owner when a socket that refused a send can take one again.
 *
 * Why this needs care: ZMQ_FD is not a readiness signal for messages.  It
 * becomes readable only when the socket's internal command queue may have
 * changed ZMQ_EVENTS, and ANY zmq call on the socket (send, receive,
 * ZMQ_EVENTS) may consume that signal.  So after each wake-up, and after
 * every send or receive on the socket made from anywhere, ZMQ_EVENTS has to
 * be checked again and incoming messages drained until EAGAIN, or a wake-up
 * is lost for good and the socket goes deaf.  A zsock does the check itself
 * after its own wake-ups and its own sends (zsock_send, zsock_send_buf);
 * an owner that calls zmq directly on the socket must call zsock_kick().
 *
 * Fairness: one drain delivers at most `budget` messages (default
 * ZSOCK_DEFAULT_BUDGET) and then returns to the loop; the rest is delivered
 * from a uv_idle handle on the following loop iterations, so a busy socket
 * neither starves the loop's other work nor lets the loop block while
 * messages wait.
 *
 * Threading: a zsock and its ZeroMQ socket belong to the loop's thread; every
 * function here must be called on that thread.  One zsock per ZeroMQ socket
 * (libuv cannot poll one descriptor from two handles).  Thread-safe socket
 * types without ZMQ_FD (CLIENT, SERVER, ...) are not supported.
 *
 * Life cycle and shutdown order:
 *   zsock_init(&zs, loop, sock, on_msg, ctx);   owner keeps owning `sock`
 *   ... uv_run() ...
 *   zsock_close(&zs, on_closed);   no zmq call on `sock` after this returns
 *   zmq_close(sock);               allowed right away (or in on_closed)
 *   run the loop until on_closed has been called; only then free `zs`
 *   zmq_ctx_term(ctx);             after every socket of the context is closed
 * The ZeroMQ socket is never closed by this module.
 *
 * The struct is defined here so owners can embed it (libuv style); its
 * fields are private except `stats` and `last_errno`, which may be read.
 */
#ifndef TALLYD_ZSOCK_H
#define TALLYD_ZSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>
#include <zmq.h>

#include "tally_error.h"

/* Most parts a delivered message can have.  A longer message is read whole,
 * dropped and counted in stats.dropped_oversized. */
#define ZSOCK_MAX_PARTS 4

/* Messages one drain delivers before yielding to the loop, unless changed
 * with zsock_set_budget(). */
#define ZSOCK_DEFAULT_BUDGET 256

typedef struct zsock zsock_t;

/* One whole incoming message of nparts (1 .. ZSOCK_MAX_PARTS) parts.  The
 * parts belong to the zsock and are closed when the callback returns; the
 * callback may take one over with zmq_msg_move()/zmq_msg_copy(), or pass the
 * array to zsock_send() (which empties the parts it sends).  The callback may
 * call any zsock function on zs, including zsock_pause() (no further message
 * is delivered until zsock_resume()) and zsock_close() (none at all). */
typedef void (*zsock_msg_cb)(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx);

/* The socket can take a message again (ZMQ_EVENTS has ZMQ_POLLOUT); see
 * zsock_want_write().  May call any zsock function on zs. */
typedef void (*zsock_writable_cb)(zsock_t *zs, void *ctx);

/* The zsock stopped because the socket failed: code is TALLY_ECLOSED (the
 * ZeroMQ context is being terminated), TALLY_EIO (another zmq error,
 * zmq_errno holds errno, name it with zmq_strerror()) or TALLY_ESYS (libuv
 * reported an error polling ZMQ_FD; zmq_errno holds the positive errno).
 * Nothing more is delivered; the owner should zsock_close() it. */
typedef void (*zsock_error_cb)(zsock_t *zs, int code, int zmq_errno, void *ctx);

/* Called once both libuv handles are closed; zs may be freed from here on. */
typedef void (*zsock_close_cb)(zsock_t *zs);

/* Counters since zsock_init(); read them directly from zs->stats. */
typedef struct zsock_stats {
    uint64_t msgs_in;           /* whole messages delivered to the callback */
    uint64_t msgs_out;          /* whole messages sent by zsock_send*() */
    uint64_t send_eagain;       /* zsock_send*() calls refused with TALLY_EAGAIN */
    uint64_t dropped_oversized; /* messages of more than ZSOCK_MAX_PARTS parts, dropped */
    uint64_t budget_yields;     /* drains that stopped at the budget with work left */
    uint64_t errors;            /* failed zmq calls other than EAGAIN (see last_errno) */
} zsock_stats_t;

struct zsock {
    /* private */
    uv_poll_t poll; /* ZMQ_FD, readable only */
    uv_idle_t idle; /* runs the next drain without letting the loop block */
    void *sock;
    zsock_msg_cb on_msg;
    zsock_writable_cb on_writable;
    zsock_error_cb on_error;
    zsock_close_cb on_closed;
    void *ctx;
    unsigned budget;
    int open_handles; /* counts down in the close callbacks */
    bool paused;
    bool closing;
    bool failed;
    /* public, read-only */
    zsock_stats_t stats;
    int last_errno; /* errno of the last failed zmq call other than EAGAIN, else 0 */
};

/* Attach the ZeroMQ socket `sock` (not owned: the caller closes it after
 * zsock_close(), see the top of this file) to `loop` and start watching it.
 * on_msg receives every incoming message with `ctx`; pass NULL for a socket
 * that only sends (PUSH, PUB), whose receive side is then never touched.
 * Messages already queued are delivered on the next loop iteration.
 * zs is caller memory that must stay in place until the close callback.
 * Returns 0, TALLY_EINVAL (sock has no ZMQ_FD: not a socket, or a
 * thread-safe type), TALLY_ECLOSED (its context is being terminated) or
 * TALLY_ESYS (libuv refused to poll the descriptor, e.g. because another
 * handle of this loop polls it already).  On error the caller has nothing to
 * close, but zs must stay valid until the loop has run once more. */
int zsock_init(zsock_t *zs, uv_loop_t *loop, void *sock, zsock_msg_cb on_msg, void *ctx);

/* The ZeroMQ socket given to zsock_init(). */
static inline void *zsock_socket(const zsock_t *zs)
{
    return zs->sock;
}

/* Deliver at most `msgs` messages per drain before yielding to the loop
 * (msgs >= 1; an oversized message that is dropped counts as one). */
void zsock_set_budget(zsock_t *zs, unsigned msgs);

/* Call cb (NULL: nobody) when the zsock stops on a socket error. */
void zsock_set_error_cb(zsock_t *zs, zsock_error_cb cb);

/* Send one message of nparts (>= 1) parts without blocking, all parts but
 * the last with ZMQ_SNDMORE; ZeroMQ delivers the parts all or none.
 * Ownership: on success every part has been emptied by ZeroMQ; on error the
 * parts not sent are untouched.  Either way the caller still closes all
 * parts with zmq_msg_close() (harmless on an emptied part), or reuses them.
 * Returns
 *   0                 sent (stats.msgs_out counts it);
 *   TALLY_EAGAIN      nothing sent: the socket is at its high-water mark or
 *                     has no peer; retry later, e.g. from zsock_want_write();
 *   TALLY_ENOTFOUND   a ROUTER with ZMQ_ROUTER_MANDATORY has no peer with
 *                     the routing id in parts[0] (EHOSTUNREACH); nothing sent;
 *   TALLY_ECLOSED     zsock_close() was called, or the context is being
 *                     terminated;
 *   TALLY_EIO         any other zmq error (errno in zs->last_errno).  If it
 *                     came after the first part (which ZeroMQ does not do
 *                     short of termination) the message is half sent and
 *                     the socket should be closed.
 * Whatever the outcome, the zsock rechecks ZMQ_EVENTS before the loop
 * blocks again, since the send may have consumed a ZMQ_FD wake-up.  No
 * zsock callback runs inside this call. */
int zsock_send(zsock_t *zs, zmq_msg_t *parts, int nparts);

/* Like zsock_send(), but part i is the lens[i] bytes at bufs[i], copied by
 * ZeroMQ before the call returns (bufs[i] may be NULL when lens[i] is 0).
 * Same return codes. */
int zsock_send_buf(zsock_t *zs, const void *const *bufs, const size_t *lens, int nparts);

/* Call cb once, on the loop, as soon as ZMQ_EVENTS shows ZMQ_POLLOUT (which
 * may be on the next loop iteration if the socket is writable already).
 * Typically after a send returned TALLY_EAGAIN.  A new call replaces the
 * pending callback; NULL cancels it.  The callback is one-shot: call again
 * from inside it to keep waiting. */
void zsock_want_write(zsock_t *zs, zsock_writable_cb cb);

/* The owner made a zmq call on the socket outside this module (zmq_send,
 * zmq_recv, zmq_getsockopt ZMQ_EVENTS ...): recheck ZMQ_EVENTS and drain
 * before the loop blocks again (never from inside this call).  Cheap; call
 * it after every such call. */
void zsock_kick(zsock_t *zs);

/* Stop delivering messages (backpressure: they wait in ZeroMQ's queue and,
 * once its high-water mark is reached, push back on the senders).  Takes
 * effect at once, even inside the message callback.  zsock_send() and
 * zsock_want_write() keep working.  Idempotent. */
void zsock_pause(zsock_t *zs);

/* Deliver messages again, starting with the oldest queued one, from the
 * next loop iteration.  Idempotent. */
void zsock_resume(zsock_t *zs);

/* True between zsock_pause() and zsock_resume(). */
static inline bool zsock_paused(const zsock_t *zs)
{
    return zs->paused;
}

/* Stop watching the socket and close the libuv handles; cb (may be NULL)
 * runs on the loop once they are closed, after which zs may be freed.  No
 * message, writable or error callback runs after this call, and the zsock
 * makes no further zmq call, so the owner may zmq_close() the socket as
 * soon as this returns.  Safe from inside any zsock callback.  Call exactly once per zsock_init();
 * do not close the embedded handles any other way (e.g. uv_walk). */
void zsock_close(zsock_t *zs, zsock_close_cb cb);

#endif
