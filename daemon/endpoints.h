/* endpoints.h - the socket adapter: tallyd's two ZeroMQ sockets on the
 * loop.
 *
 * The request socket (ROUTER) takes every request and carries the
 * replies; the publish socket (XPUB) carries updates and tells of
 * subscriptions.  This part creates both, sets their limits, binds them,
 * and then hands every incoming message to the handlers it was given; the
 * other parts send through the sinks it offers.
 *
 * It is also where one peer is kept from exhausting the daemon at the
 * socket level (PROTOCOL.md, security):
 *   - every handshake goes through the ZAP handler (zap.h): CURVE keys
 *     when the daemon has them, and on each socket at most
 *     max_connections connections (counted by peers.h's monitors);
 *   - the publish socket is in manual mode, and each subscription is
 *     applied only if subscriptions.h admits it for its connection;
 *   - each request connection queues at most max_inbound_bytes of
 *     requests (in messages of max_msg_bytes) and max_reply_queue
 *     replies; each subscriber max_subscriber_queue updates;
 *   - handshakes must end within ENDPOINTS_HANDSHAKE_MS;
 *   - the process's descriptor limit is raised to its hard limit, and
 *     max_connections lowered to what it allows, with a warning naming
 *     both numbers and the LimitNOFILE= that would fit it.
 *
 * While a request or a subscription is handed over, the logger knows its
 * peer (log_set_peer: its address, or pid and uid over ipc://, its CURVE
 * User-Id, its routing id), so every rate-limited line about it says who
 * sent it; and this part's timer writes the logger's pending summaries
 * (log_flush) within LOG_FLUSH_MS of a burst.
 */
#ifndef TALLYD_ENDPOINTS_H
#define TALLYD_ENDPOINTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "keys.h"
#include "log.h"
#include "peers.h"
#include "proto.h"
#include "sink.h"
#include "stats.h"
#include "subscriptions.h"
#include "zap.h"
#include "zsock.h"

#define ENDPOINTS_HANDSHAKE_MS 5000 /* ZMQ_HANDSHAKE_IVL */
/* Descriptors kept for everything but connections (journal, checkpoints,
 * ZeroMQ's own, the log) when max_connections is fitted to the limit. */
#define ENDPOINTS_FD_RESERVE 256

/* Where incoming messages go. */
typedef struct endpoints_handlers {
    /* A request from the peer rid[0..rid_len): nframes frames after the
     * routing id, the first being body[0..len) (NULL when there is none);
     * user_id is the connection's ZAP User-Id or NULL. */
    void (*request)(void *ctx, const void *rid, size_t rid_len, int nframes, const void *body,
                    size_t len, const char *user_id);
    /* A subscribe (data[0] == 1) or unsubscribe (0) of the prefix
     * data[1..len), applied (a refused one is not reported). */
    void (*subscription)(void *ctx, const void *data, size_t len);
    void *ctx;
} endpoints_handlers_t;

/* The limits of [limits] this part enforces (tallyd.conf(5)). */
typedef struct endpoints_limits {
    int64_t max_msg_bytes;        /* the request socket takes frames of up to twice this */
    int64_t max_subscriber_queue; /* messages queued per subscriber */
    int64_t max_connections;      /* per socket */
    int64_t max_subscriptions;    /* prefixes per subscriber connection */
    int64_t max_subscription_bytes;
    int64_t max_inbound_bytes; /* requests queued per connection */
    int64_t max_reply_queue;   /* replies queued per connection */
} endpoints_limits_t;

endpoints_limits_t endpoints_limits_from(const tallyd_config_t *cfg);

/* The request socket's receive queue, in messages, for lim: as many
 * messages of max_msg_bytes as max_inbound_bytes holds, at least 2. */
int64_t endpoints_inbound_messages(const endpoints_limits_t *lim);

typedef struct endpoints_config {
    uv_loop_t *loop;
    logger_t *log;
    tallyd_stats_t *stats; /* connections_refused, subscriptions_refused */
    const char *request;   /* endpoints to bind */
    const char *publish;
    endpoints_limits_t lim;
    const keys_server_t *server; /* secured: CURVE servers with this key pair */
    const keyring_t *keys;       /* the keyring the ZAP handler answers from (secured) */
    endpoints_handlers_t on;
} endpoints_config_t;

/* The part; embed it, its fields are private. */
typedef struct endpoints {
    endpoints_config_t c;
    void *zctx;
    void *router_sock;
    void *pub_sock;
    zsock_t router;
    zsock_t pub;
    bool router_open, pub_open; /* their zsocks are set up */
    zap_t zap;
    bool zap_open;
    peers_t router_peers, pub_peers;
    bool router_peers_open, pub_peers_open;
    subscriptions_t subs;
    int64_t fd_limit;                          /* RLIMIT_NOFILE after raising it; 0 = unknown */
    int64_t asked_connections;                 /* max_connections as configured, before fitting */
    char req_endpoint[PROTO_ENDPOINT_MAX + 1]; /* as bound (ZMQ_LAST_ENDPOINT) */
    char pub_endpoint[PROTO_ENDPOINT_MAX + 1];
    uv_timer_t log_timer; /* log_flush() after a burst of rate-limited lines */
    bool log_timer_open;
    int open_handles;
    void (*on_closed)(struct endpoints *e);
} endpoints_t;

/* The largest request frame ZeroMQ delivers on the request socket
 * (ZMQ_MAXMSGSIZE): twice max_msg_bytes.  A frame above max_msg_bytes but
 * within this gets TOO_LARGE (an ACK for a SUBMIT, DUPLICATE for a resend
 * of one applied before max_msg was lowered) and is counted, so a client
 * that misjudged its size hears why; a larger one makes ZeroMQ drop the
 * connection before tallyd sees it, so no peer makes tallyd hold much more
 * than max_msg_bytes per message. */
static inline int64_t endpoints_frame_limit(int64_t max_msg_bytes)
{
    return 2 * max_msg_bytes;
}

/* True when the endpoint ep can be reached from this machine only: ipc://
 * and inproc://, or tcp://, ws:// and wss:// on a loopback address
 * (127.x.y.z, ::1, localhost, the interface lo).  Anything else (another
 * address, a wildcard, an interface name, tipc://, vmci://) is reachable
 * from elsewhere, and a daemon without keys warns about it. */
bool endpoints_is_local(const char *ep);

/* Raise the process's descriptor limit (RLIMIT_NOFILE) to its hard limit
 * and return it (0 when it cannot be read). */
int64_t endpoints_raise_fd_limit(void);

/* max_connections as the descriptor limit fd_limit allows for two sockets
 * (0: no limit known): at most (fd_limit - ENDPOINTS_FD_RESERVE) / 2, and
 * at least 1. */
int64_t endpoints_fit_connections(int64_t max_connections, int64_t fd_limit);

/* Create both sockets, secure them (with a server key pair) and bind
 * them; messages are not delivered before endpoints_start().  The secret
 * key in c->server is handed to ZeroMQ and not kept.  Returns 0, or
 * TALLY_ESYS after logging what failed (a bind names the endpoint and
 * ZeroMQ's reason); endpoints_close() then endpoints_free() either way. */
int endpoints_open(endpoints_t *e, const endpoints_config_t *c);

/* Start delivering messages to the handlers, and writing the logger's
 * pending summaries on a timer (log_set_pending, until
 * endpoints_close()).  Returns 0 or a negative code (logged). */
int endpoints_start(endpoints_t *e);

/* The sinks of the request socket's replies and of the publish socket. */
sink_t endpoints_reply_sink(endpoints_t *e);
sink_t endpoints_pub_sink(endpoints_t *e);

/* The endpoints as bound (a wildcard port resolved). */
static inline const char *endpoints_request(const endpoints_t *e)
{
    return e->req_endpoint;
}
static inline const char *endpoints_publish(const endpoints_t *e)
{
    return e->pub_endpoint;
}

/* New limits (a reload), in force at once for what comes next: frames,
 * handshakes, subscriptions.  A new max_msg_bytes unbinds the request
 * socket and binds it again, since ZeroMQ gives a connection the frame
 * limit of its socket's bind: its clients reconnect.  The queues
 * (max_inbound_bytes, max_reply_queue, max_subscriber_queue) keep the
 * values of the start (a restart changes them; see the function).  Call
 * it before endpoints_cut_subscribers(). */
void endpoints_set_limits(endpoints_t *e, const endpoints_limits_t *lim);

/* Connections now on the request socket and on the publish socket. */
size_t endpoints_connections(const endpoints_t *e);
size_t endpoints_subscribers(const endpoints_t *e);

/* Connections the request socket has accepted since the start (a
 * one-shot client's request is one each). */
uint64_t endpoints_connections_accepted(const endpoints_t *e);

/* Answer handshakes from kr from now on (a reload). */
void endpoints_set_keyring(endpoints_t *e, const keyring_t *kr);

/* Close every subscriber connection, so that subscribers whose keys were
 * revoked are cut off; the others reconnect through a new handshake and
 * re-snapshot.  Blocks the loop for the milliseconds ZeroMQ takes to
 * release the endpoint. */
void endpoints_cut_subscribers(endpoints_t *e);

/* Report the ZAP handler's counters (secured daemons) to fn. */
void endpoints_stats(const endpoints_t *e, void (*fn)(const char *name, int64_t value, void *ctx),
                     void *ctx);

/* Stop delivering messages, write the logger's pending summaries and close
 * the loop handles; cb (may be NULL) runs on the loop once they are
 * closed.  Nothing more is sent. */
void endpoints_close(endpoints_t *e, void (*cb)(endpoints_t *e));

/* Close the sockets and end the ZeroMQ context (lingering at most a few
 * seconds for replies still queued).  After endpoints_close()'s callback,
 * or when the loop never ran. */
void endpoints_free(endpoints_t *e);

#endif
