/* zap.h - the daemon's ZAP handler (ZeroMQ RFC 27): who may connect.
 *
 * Every connection to tallyd's sockets goes through this handler, which
 * answers on the daemon's own libuv loop.  With CURVE configured, every
 * connection is a CURVE handshake, and libzmq asks whether to admit the
 * client's public key; the handler answers from a keyring (keys.h):
 *
 *   mechanism CURVE, key in the keyring, role allowed on the domain
 *       -> 200, User-Id "town:<township>:<key>" or "sub:<name>:<key>";
 *   mechanism CURVE, key not in the keyring            -> 400;
 *   a township key on the publish domain, or a domain
 *   that is neither of ours                             -> 400;
 *   mechanism NULL, PLAIN or GSSAPI                     -> 400 (a secured
 *       tallyd speaks CURVE only);
 *   not a ZAP 1.0 request                               -> 500.
 * Without keys (an "open" handler, keyring NULL) the sockets speak the NULL
 * mechanism with a ZAP domain set, which makes libzmq ask here too: NULL
 * is admitted with an empty User-Id, anything else refused.
 *
 * Either way, before admitting, the handler asks the owner's admission
 * callback (zap_set_admit) whether the socket of the domain may take
 * another connection; when it may not, the answer is 300 "Connection
 * limit", RFC 27's temporary failure.  libzmq tells the client nothing
 * then: its handshake stalls until the socket's ZMQ_HANDSHAKE_IVL ends it,
 * and the client reconnects by itself, as it should when room may come.
 * (A 400 or 500 would reach the client as an ERROR command, after which
 * libzmq 4.3 never reconnects.)  Every admitted
 * connection gets a number of its own, unique in the process, as the
 * connection's metadata property ZAP_CONN_PROPERTY ("X-Tally-Conn", in
 * decimal), which ZeroMQ attaches to every message of the connection, the
 * subscriptions of the publish socket included: that is how the daemon
 * tells one subscriber connection from another.
 * Domains: the request socket is ZAP_DOMAIN_REQUEST, open to townships and
 * subscribers (these send SNAPSHOT_REQ, HELLO, PING, STATS_REQ there; the
 * daemon refuses their SUBMITs as FORBIDDEN); the publish socket is
 * ZAP_DOMAIN_PUBLISH, open to subscribers only.
 *
 * ZeroMQ attaches the User-Id to every message of an admitted connection:
 * read it with zmq_msg_gets(&body, "User-Id") on the body frame (NULL
 * means no User-Id: a connection not authenticated by this handler).  ZAP
 * runs only at the handshake, so a key removed by a reload
 * keeps its open connection: check every message with
 * keyring_lookup_user_id() against the keyring in force.
 *
 * Wiring (see the report of the module for the daemon's full sequence):
 *   zap_init(&z, zctx, loop, &keys);          binds ZAP_ENDPOINT in zctx
 *   zap_secure_socket(router, sec, ZAP_DOMAIN_REQUEST);   before zmq_bind
 *   zap_secure_socket(xpub, sec, ZAP_DOMAIN_PUBLISH);
 *   zmq_bind(...) ...
 * zap_secure_socket() sets ZMQ_ZAP_ENFORCE_DOMAIN, so a CURVE socket whose
 * context has no ZAP handler refuses every client instead of admitting any
 * key (libzmq's default for that case): bind order cannot open a hole, but
 * clients are refused until zap_init() has run.
 *
 * The ZAP socket is not driven by a zsock: a CURVE request is 7 frames and
 * a PLAIN one 8, more than ZSOCK_MAX_PARTS, and a REP socket that dropped
 * a request without replying would wedge.  So this module watches its
 * socket itself: every zmq call on it is made here, and each wake-up ends
 * with a ZMQ_EVENTS check, so no wake-up is lost (see zsock.h for why that
 * matters).
 *
 * Threading: everything here runs on the loop's thread.  The struct is
 * embedded by the owner; fields are private except `stats`.
 */
#ifndef TALLYD_ZAP_H
#define TALLYD_ZAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "keys.h"
#include "log.h"

#define ZAP_ENDPOINT       "inproc://zeromq.zap.01" /* fixed by RFC 27 */
#define ZAP_DOMAIN_REQUEST "tally-req"
#define ZAP_DOMAIN_PUBLISH "tally-pub"
#define ZAP_FRAMES_MAX     8  /* frames of a request looked at; more: 500 */
#define ZAP_BUDGET         64 /* requests answered per wake-up before yielding */
#define ZAP_CONN_PROPERTY  "X-Tally-Conn"

/* What the handler decided about one request. */
enum zap_verdict {
    ZAP_ALLOW = 0,
    ZAP_DENY_MECHANISM = 1,   /* not CURVE */
    ZAP_DENY_UNKNOWN_KEY = 2, /* CURVE key not in the keyring */
    ZAP_DENY_DOMAIN = 3,      /* role not admitted on this domain, or unknown domain */
    ZAP_DENY_MALFORMED = 4,   /* not a ZAP 1.0 request (answered 500) */
    ZAP_DENY_FULL = 5,        /* the socket is at its connection limit (answered 300) */
    ZAP_VERDICTS = 6
};

/* May the socket of domain (ZAP_DOMAIN_REQUEST or ZAP_DOMAIN_PUBLISH) take
 * one more connection? */
typedef bool (*zap_admit_fn)(void *ctx, const char *domain, size_t domain_len);

typedef struct zap_stats {
    uint64_t requests;             /* requests answered */
    uint64_t allowed;              /* answered 200 */
    uint64_t denied[ZAP_VERDICTS]; /* by verdict; [ZAP_ALLOW] stays 0 */
    uint64_t errors;               /* failed zmq calls on the ZAP socket */
} zap_stats_t;

typedef struct zap zap_t;

/* Called once the handler's libuv handles are closed; z may be freed. */
typedef void (*zap_close_cb)(zap_t *z);

struct zap {
    /* private */
    uv_poll_t poll;      /* ZMQ_FD of the ZAP socket */
    uv_idle_t idle;      /* runs the next drain without blocking first */
    void *sock;          /* ZMQ_REP bound to ZAP_ENDPOINT; owned */
    const keyring_t *kr; /* NULL: open */
    logger_t *log;
    zap_admit_fn admit;
    void *admit_ctx;
    uint64_t next_conn;
    zap_close_cb on_closed;
    int open_handles;
    bool closing;
    bool failed;
    /* public, read-only */
    zap_stats_t stats;
};

/* Create the ZAP socket in zmq_ctx, bind it to ZAP_ENDPOINT and answer
 * requests on loop from kr (not owned; it must stay valid until
 * zap_set_keyring() replaces it or zap_close()), or as an open handler
 * when kr is NULL.  Call before binding any
 * CURVE socket of the context.  z is caller memory that must stay in place
 * until the close callback.  Returns 0, TALLY_EEXIST (the context has a
 * ZAP handler already), TALLY_ECLOSED (the context is terminating) or
 * TALLY_ESYS (another zmq or libuv failure; errno/zmq_errno() tells).  On
 * error nothing is left open, but z must stay valid until the loop has run
 * once more. */
int zap_init(zap_t *z, void *zmq_ctx, uv_loop_t *loop, const keyring_t *kr);

/* Answer from kr from now on (a reload; NULL: open).  Handshakes already
 * admitted are not revisited: see keyring_lookup_user_id() and
 * keyring_revoked(). */
void zap_set_keyring(zap_t *z, const keyring_t *kr);

/* Ask fn(ctx, domain) before admitting a connection (NULL, the default:
 * admit every connection the keyring admits). */
void zap_set_admit(zap_t *z, zap_admit_fn fn, void *ctx);

/* Make sock (not yet bound) ask this context's ZAP handler about its
 * NULL-mechanism connections, in domain: what an open handler needs.
 * Returns 0, TALLY_EINVAL or TALLY_ESYS (zmq_errno() tells). */
int zap_open_socket(void *sock, const char *domain);

/* Log every decision to log (NULL, the default: no logging): refusals at
 * NOTICE, admissions at INFO, both through log_limited(). */
void zap_set_logger(zap_t *z, logger_t *log);

/* Stop answering, close the ZAP socket and the libuv handles; cb (may be
 * NULL) runs on the loop once they are closed.  Handshakes that start
 * afterwards fail on sockets set up by zap_secure_socket().  Call exactly
 * once per successful zap_init(), before zmq_ctx_term(). */
void zap_close(zap_t *z, zap_close_cb cb);

/* Make sock (not yet bound) a CURVE server with the daemon's 32-byte
 * secret key, authenticated through ZAP in domain (ZAP_DOMAIN_REQUEST or
 * ZAP_DOMAIN_PUBLISH; any non-empty name up to 254 bytes is taken), with
 * ZMQ_ZAP_ENFORCE_DOMAIN on.  Returns 0, TALLY_EINVAL (domain NULL, empty
 * or too long) or TALLY_ESYS (libzmq has no CURVE support, or refused an
 * option; zmq_errno() tells). */
int zap_secure_socket(void *sock, const uint8_t server_secret[KEYS_KEY_BYTES], const char *domain);

/* The decision of the keyring kr (NULL: open) for one request, without
 * sockets and before the admission callback: domain, mechanism and the
 * credential frames as ZAP carries them.  *who (may be NULL) is set to the
 * identity admitted (always NULL when open), else NULL.  Returns an enum
 * zap_verdict. */
int zap_decide(const keyring_t *kr, const char *domain, size_t domain_len, const char *mechanism,
               size_t mechanism_len, const void *const *creds, const size_t *cred_lens, int ncreds,
               const keyring_identity_t **who);

/* Short name of a verdict for logs and metrics ("unknown_key"). */
const char *zap_verdict_name(int verdict);

/* Call fn(name, value, ctx) for the handler's counters, named for ops:
 * tallyd_zap_allowed_total and tallyd_zap_denied_<verdict>_total (those of
 * the mechanism and the keyring only when the handler has a keyring). */
void zap_stats_foreach(const zap_t *z, void (*fn)(const char *name, int64_t value, void *ctx),
                       void *ctx);

#endif
