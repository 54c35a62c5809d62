/* peers.h - who is connected to one of tallyd's sockets, from its socket
 * monitor.
 *
 * libzmq tells a socket's connections only through a monitor: an inproc
 * PAIR socket that receives an event per accepted connection
 * (ZMQ_EVENT_ACCEPTED, with its descriptor) and per lost one
 * (ZMQ_EVENT_DISCONNECTED, the same descriptor).  A peers_t keeps the set
 * of descriptors connected, so the daemon can count subscribers and
 * connections (STATS) and refuse a connection beyond max_connections.
 *
 * Two gaps in what libzmq reports, and how they are covered:
 *   - a connection closed because its listener was unbound (the reload
 *     that cuts subscribers off) gets no DISCONNECTED: peers_forget_all()
 *     empties the set when the caller unbinds;
 *   - events arrive asynchronously: peers_drain() reads those queued now,
 *     which include the ACCEPTED of a connection whose handshake is being
 *     decided (libzmq reports the accept before it starts the handshake).
 *
 * Threading: the loop's thread only.  The struct is embedded by the
 * owner; its fields are private except those marked public.
 */
#ifndef TALLYD_PEERS_H
#define TALLYD_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "zsock.h"

typedef struct peers peers_t;

struct peers {
    /* private */
    void *sock; /* the socket watched (not owned) */
    void *pair; /* the monitor's receiving end; owned */
    zsock_t zs;
    bool zs_open;
    uint64_t *fds; /* bitmap of connected descriptors */
    size_t nwords;
    bool closed_seen; /* a listener of the socket was closed */
    void (*on_closed)(peers_t *p);
    /* public, read-only */
    size_t count;            /* connections now */
    uint64_t accepted_total; /* connections accepted since peers_init */
};

/* Watch sock (of zmq context zctx) through a monitor at inproc://<name>,
 * delivering events on loop.  Returns 0 or TALLY_ESYS (zmq_errno()
 * tells); on error nothing is left open. */
int peers_init(peers_t *p, void *zctx, void *sock, const char *name, uv_loop_t *loop);

/* Read every event queued now. */
void peers_drain(peers_t *p);

/* Forget every connection: the caller has unbound the socket's listener,
 * which closes them without a DISCONNECTED event. */
void peers_forget_all(peers_t *p);

/* Block until the monitor reports that a listener of the socket was
 * closed (ZMQ_EVENT_CLOSED or CLOSE_FAILED), at most timeout_ms; other
 * events are counted on the way.  For a reload's unbind, which must wait
 * for libzmq's I/O thread before binding again.  Returns whether it was
 * reported. */
bool peers_wait_listener_closed(peers_t *p, int timeout_ms);

/* Stop watching: close the loop handles (cb, which may be NULL, runs on
 * the loop once they are closed), stop the monitor and close its socket.
 * Before the socket watched is closed. */
void peers_close(peers_t *p, void (*cb)(peers_t *p));

#endif
