/* tally.h - libtally, the client library of tally.
 *
 * Township offices push figures (samples: metric name + int64 value at an
 * event time) to tallyd with a publisher (tally_client_*); dashboards follow
 * the county's rolling tallies with a subscriber (tally_sub_*), or take one
 * snapshot with tally_get().  Everything speaks the tally wire protocol v1
 * over ZeroMQ.
 *
 * Conventions shared by every function here:
 * - Errors: functions return int, 0 on success and a negative TALLY_E* code
 *   from <tally_error.h> on failure; tally_strerror() and tally_errname()
 *   describe a code.  Codes -1 .. -99 are the daemon's wire codes, -100 and
 *   below are local (TALLY_ENOMEM, TALLY_EIO, TALLY_ETIMEDOUT ...).
 * - Handles are opaque; x_new() creates one and x_destroy(&x) frees it and
 *   sets the caller's pointer to NULL (destroying NULL is a no-op).
 * - Strings passed in are copied unless stated otherwise; strings handed to
 *   callbacks are owned by the library and valid only during the callback.
 * - No global state: every handle owns its own ZeroMQ context unless the
 *   caller passes one in the options.  A handle must be used by one thread
 *   at a time; different handles may be used from different threads, and
 *   the one-shot requests (tally_get, tally_period_req, tally_catalog_req
 *   and the others that take a server address rather than a handle) may
 *   run on several threads at once: each has a connection of its own.
 * - Timeouts: 0 means "do not wait" for a handle's calls
 *   (tally_client_flush, tally_client_hello) and "no limit" for
 *   tally_sub_run, as each says; the one-shot requests take 0 or less as
 *   their default of 10 s.
 * - A NULL handle is refused with TALLY_EINVAL by calls that return int,
 *   and read as empty (0, false, "") by the accessors; tally_sub_stop(NULL)
 *   does nothing, so a signal handler may call it after the handle is
 *   gone.
 * - Server addresses: "tcp://host:port", "ipc:///path", or the short forms
 *   "host:port" and "host" (port 7411), see tally_endpoint_normalize().
 * - Security: a tallyd configured with keys speaks only CURVE (ZeroMQ's
 *   encryption and authentication).  Give every handle a tally_curve_t
 *   naming the daemon's public key and this client's key pair; see
 *   "CURVE" below.  Without one, handles speak plaintext.
 */
#ifndef TALLY_H
#define TALLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tally_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TALLY_API __attribute__((visibility("default")))
#else
#define TALLY_API
#endif

#define TALLY_DEFAULT_PORT    7411
#define TALLY_DEFAULT_SERVER  "tcp://127.0.0.1:7411"
#define TALLY_ENDPOINT_MAX    512 /* buffer size that holds any endpoint */
#define TALLY_COLUMNS_MAX     16  /* value columns in one tally */
#define TALLY_CLIENT_ID_LEN   16
#define TALLY_MAX_IN_FLIGHT   1024 /* protocol limit of unacked submissions */
#define TALLY_BATCH_LIMIT_MAX 4096 /* protocol limit of samples per submission */
#define TALLY_ERRBUF_MIN      256  /* recommended size of an errbuf */
#define TALLY_ZONE_MAX        128  /* bytes in the daemon's zone name (CLOCK) */

/* The library's version, e.g. "0.2.0" (static storage). */
TALLY_API const char *tally_version(void);

/* ------------------------------------------------------------------ */
/* Endpoints                                                          */
/* ------------------------------------------------------------------ */

/* Turn a user-given server address into a ZeroMQ endpoint in out (cap
 * bytes, NUL-terminated).  "tcp://...", "ipc://..." and any other
 * "scheme://..." pass through unchanged; "host:port" becomes
 * "tcp://host:port"; "host" becomes "tcp://host:7411"; an IPv6 address may
 * be given as "[::1]:7411", "[::1]" or bare "::1"; an empty host (":7411")
 * means 127.0.0.1.
 * Returns 0; TALLY_EINVAL when in is NULL or empty, the port is not a
 * number in 1..65535 or a bracket is unbalanced; TALLY_ETOOLONG when the
 * result does not fit in cap bytes. */
TALLY_API int tally_endpoint_normalize(const char *in, char *out, size_t cap);

/* tally_endpoint_normalize(), checking what ZeroMQ would only refuse at
 * connect time, for addresses typed by people: a "scheme://" other than
 * tcp://, ipc:// and inproc:// is refused, tcp:// needs HOST:PORT with a
 * port in 1..65535, a short form with several colons must be a bare
 * IPv6 address, and no address holds a control character nor, but for
 * an ipc:// or inproc:// path, a space.  Returns 0 (out as for tally_endpoint_normalize);
 * TALLY_EINVAL; TALLY_ETOOLONG.  On failure errbuf (may be NULL) holds a
 * sentence saying which part is wrong, without repeating in: "the port
 * 'notaport' is not a number from 1 to 65535", "'http://' is not a
 * transport tallyd listens on: ...". */
TALLY_API int tally_endpoint_parse(const char *in, char *out, size_t cap, char *errbuf,
                                   size_t errbuf_len);

/* Derive the publish endpoint a subscriber connects to.
 * server: the (normalized) request endpoint the client uses.
 * advertised: the pub_endpoint the daemon sent in WELCOME, or NULL/"" when
 * unknown.  When advertised is given it is used, except that a wildcard
 * host ("*", "0.0.0.0", "[::]", "::") is replaced by the host of server
 * (127.0.0.1 when server is not tcp).  Without advertised, the convention
 * applies: same host as server, port + 1 (tcp only).
 * Returns 0; TALLY_EINVAL when server is not a parseable tcp endpoint and
 * there is no usable advertised endpoint, or the server port is 65535;
 * TALLY_ETOOLONG when the result does not fit in cap bytes. */
TALLY_API int tally_endpoint_pub(const char *server, const char *advertised, char *out, size_t cap);

/* ------------------------------------------------------------------ */
/* CURVE                                                              */
/* ------------------------------------------------------------------ */

#define TALLY_CURVE_KEY_LEN 40 /* a CURVE key in Z85 text */

/* The keys to talk to a tallyd secured with CURVE (tallyd.conf
 * [security]).  The daemon admits this client's public key as a township
 * (which may submit for that township only) or as a subscriber (which may
 * read tallies and subscribe); tally keygen writes key pairs.  Both
 * strings are read when the handle is created and not kept. */
typedef struct tally_curve {
    /* The daemon's public key: its 40 characters of Z85, or the path of a
     * certificate holding it (the NAME file of `tally keygen NAME`, or the
     * daemon's NAME_secret: only the public key is read).  NULL or "":
     * plaintext, and cert is ignored. */
    const char *server_key;
    /* The path of this client's secret certificate (NAME_secret of `tally
     * keygen NAME`: both its public and its secret key).  Required with
     * server_key. */
    const char *cert;
} tally_curve_t;

/* Check that curve names usable keys (reading the files it names), as the
 * handles will when they are created.  curve NULL or without server_key
 * is plaintext and valid.  Returns 0; TALLY_EINVAL (cert missing, a key
 * or file that is not a CURVE key or certificate, a secret key that does
 * not belong to its public key); TALLY_EIO (a file that cannot be read);
 * TALLY_ESYS (libzmq without CURVE support).  On failure errbuf (may be
 * NULL) holds a sentence naming the file or key and the problem. */
TALLY_API int tally_curve_check(const tally_curve_t *curve, char *errbuf, size_t errbuf_len);

/* ------------------------------------------------------------------ */
/* Connections                                                        */
/* ------------------------------------------------------------------ */

/* What the last attempt to reach the daemon showed, for saying why a
 * request went unanswered (tally_client_link, tally_sub_link,
 * tally_request_t.link).  A failed handshake is kept until a handshake
 * succeeds: the reconnection attempts that follow it tell less. */
enum tally_link {
    TALLY_LINK_UNKNOWN = 0,   /* nothing known yet (connecting), or the connection was lost */
    TALLY_LINK_NO_CONNECTION, /* the connection could not be made: nothing listens there
                                 (the host refused it), or why is not known yet */
    TALLY_LINK_MECHANISM,     /* connected, but the daemon speaks another security
                                 mechanism: CURVE to a plaintext handle, or plaintext
                                 to a CURVE handle */
    TALLY_LINK_HANDSHAKE,     /* connected, but the security handshake failed: for a
                                 plaintext handle most likely a daemon that speaks CURVE
                                 (over ipc:// ZeroMQ cannot always tell this from
                                 TALLY_LINK_MECHANISM), for a CURVE handle most likely
                                 the wrong server key */
    TALLY_LINK_KEY_REFUSED,   /* CURVE: the daemon does not admit this handle's key */
    TALLY_LINK_UP,            /* connected, handshake done */
    TALLY_LINK_UNREACHABLE,   /* the connection could not be made, and not for want of
                                 a daemon: the network does not reach the address (no
                                 route, the link is down), the host did not answer, or
                                 its name does not resolve.  Found by a connection of
                                 the library's own beside ZeroMQ's attempts; a client
                                 waits for a weak link to come back rather than give
                                 up early.  *_link_why() says which. */
};

/* ------------------------------------------------------------------ */
/* Publisher                                                          */
/* ------------------------------------------------------------------ */

typedef struct tally_client tally_client_t;

enum tally_ack_status {
    TALLY_ACK_ACCEPTED = 0,  /* applied now */
    TALLY_ACK_DUPLICATE = 1, /* the daemon had applied it before (a resend) */
};

/* Called once when the daemon finally rejects submission seq (a code that
 * is not retryable).  code is the negative TALLY_E* code (e.g.
 * TALLY_EUNKMETRIC); sample is the 0-based index of the offending sample or
 * -1; field (e.g. "samples[3].metric") and message are the daemon's words,
 * possibly "" but never NULL, valid during the call only.  The submission
 * has left the spool's queue: it will not be sent again.  One that an
 * earlier run left in the spool is not deleted but moved to
 * SPOOL/rejected/, since nobody at hand may have its figures any more:
 * tally_client_rejected_earlier() says where, and what it holds. */
typedef void (*tally_reject_cb)(void *ctx, uint64_t seq, int code, int sample, const char *field,
                                const char *message);

/* Called once when submission seq is acknowledged; status is
 * TALLY_ACK_ACCEPTED or TALLY_ACK_DUPLICATE (both mean "delivered, counted
 * exactly once"); nsamples is the number of samples it carried.
 *
 * When the publisher's callbacks run (on_ack, on_reject, on_unknown):
 * inside any call that reads the daemon's answers, that is
 * tally_client_hello, tally_client_send, tally_client_flush,
 * tally_client_process, and tally_client_add when the sample closes a
 * batch; never on another thread.  A callback may read the client's
 * accessors and may destroy it: tally_client_destroy from a callback sets
 * the caller's pointer to NULL at once, no further callback runs, and the
 * client is freed as the call that ran the callback returns, which then
 * returns TALLY_ECLOSED (so the loop around it ends; a tally_client_add
 * that returns it did not take its sample).  tally_client_add,
 * tally_client_send, tally_client_flush, tally_client_hello and
 * tally_client_process from a callback of the same client do nothing and
 * return TALLY_ECALLBACK (they would run callbacks within callbacks);
 * note what is needed and act once the running call has returned. */
typedef void (*tally_ack_cb)(void *ctx, uint64_t seq, int status, uint32_t nsamples);

/* A sample as libtally hands it back (in tally_unknown_t). */
typedef struct tally_sample {
    const char *metric;
    int64_t value;
} tally_sample_t;

/* A submission of unknown fate: it was sent under a client id that has
 * expired (see "Client ids expire" below) and never acknowledged, so the
 * daemon may or may not have counted it.  libtally never resends it.
 * Every pointer is owned by the library and valid during the callback
 * only. */
typedef struct tally_unknown {
    uint8_t client_id[TALLY_CLIENT_ID_LEN]; /* the id it was sent under */
    uint64_t seq;                           /* its sequence number under that id */
    const char *township;
    int64_t time_ms; /* its event time */
    uint32_t nsamples;
    const tally_sample_t *samples; /* nsamples figures, as sent */
    /* With a spool: the file that now holds it, byte for byte as sent,
     * SPOOL/unknown/<client id in hex>-<seq in 20 digits>.sub.  Without
     * one: "". */
    const char *path;
} tally_unknown_t;

/* A submission an earlier run left in the spool (the client found it there
 * when it was created) that the daemon has now rejected for good, as
 * tally_client_rejected_earlier() describes it during on_reject.  Every
 * pointer is owned by the library and valid during that on_reject call
 * only. */
typedef struct tally_rejected {
    uint8_t client_id[TALLY_CLIENT_ID_LEN]; /* the id it was sent under */
    uint64_t seq;
    const char *township; /* "" if its figures could not be read */
    int64_t time_ms;      /* its event time */
    uint32_t nsamples;
    const tally_sample_t *samples; /* nsamples figures, as sent */
    /* The file that now holds it, byte for byte as sent,
     * SPOOL/rejected/<client id in hex>-<seq in 20 digits>.sub; "" when it
     * could not be moved there (tally_client_last_error() says why): then
     * it was deleted, as it must not be sent again, and the figures above
     * are all that is left of it. */
    const char *path;
} tally_rejected_t;

/* Called once for each submission found to be of unknown fate; it has left
 * the queue (and the spool's queue) already.  The application must tell
 * its user, who checks the daemon's tallies (tally get) and, if the
 * figures are missing, sends them again as new submissions. */
typedef void (*tally_unknown_cb)(void *ctx, const tally_unknown_t *u);

/* Client ids expire.  A daemon may forget a client id that has submitted
 * nothing for a while (its WELCOME announces how long: client_expiry_ms),
 * after which a resend under that id would be counted again.  So libtally
 * keeps, with the client id, the time of the last acknowledgement received
 * under it (or of the id's creation), by this machine's clock, and the
 * last client_expiry_ms the daemon announced.  Before it encodes or sends
 * anything under the id, if more than client_expiry_ms minus one hour has
 * passed since then, it takes a new client id (seq 1) and sets every
 * submission still unacknowledged aside as of unknown fate: on_unknown is
 * called for each, with a spool it is moved to SPOOL/unknown/, and it is
 * never resent.  A daemon that never announced client_expiry_ms: the last
 * value learned from an earlier WELCOME holds (kept in the state), or ids
 * do not expire.  Without a spool or state file a fresh id is taken at
 * every tally_client_new() anyway.
 *
 * Limits.  The daemon's WELCOME also announces max_samples and max_msg;
 * libtally says HELLO on its first send, submits nothing before the
 * answer (or an ERROR refusing HELLO), keeps what it learned in the state
 * and splits every batch it closes afterwards so that no submission has
 * more samples or a larger body than the daemon takes.  Call
 * tally_client_hello() before adding samples to know them beforehand. */

/* Publisher options.  Zero-initialise and set what you need: every zero
 * field means "the default". */
typedef struct tally_client_opts {
    /* Directory holding the durable queue (created if missing, mode 0700).
     * NULL: submissions live in memory only and are lost if the process
     * exits before they are acknowledged. */
    const char *spool_dir;
    /* Without a spool: a file keeping the client id, the next sequence
     * number, the time of the last acknowledgement and the daemon's limits
     * across runs (written atomically; its directory must exist; locked
     * through "<state_file>.lock").  NULL with no spool: a new random
     * client id for every tally_client_new().  Ignored with a spool, which
     * keeps the same in SPOOL/client.state. */
    const char *state_file;
    unsigned max_in_flight;      /* unacked submissions, 1..1024 (default 1024) */
    unsigned backoff_initial_ms; /* first resend delay, 1..3600000 (default 100) */
    unsigned backoff_max_ms;     /* resend delay cap, >= initial (default 30000) */
    unsigned batch_limit;        /* samples per submission, 1..4096 (default 1000) */
    tally_reject_cb on_reject;   /* optional */
    tally_ack_cb on_ack;         /* optional */
    void *cb_ctx;                /* passed to on_reject / on_ack */
    void *zmq_ctx;               /* a ZeroMQ context to use (not owned); NULL: own one */
    char *errbuf;                /* optional: receives the reason when tally_client_new fails */
    size_t errbuf_len;
    /* Keys for a secured daemon (see tally_curve_t; read at creation, not
     * kept); NULL: plaintext.  The key must be the township's own: the
     * daemon rejects submissions for any other township (FORBIDDEN) and
     * refuses unknown keys at the handshake (nothing is answered, so
     * submissions stay pending). */
    const tally_curve_t *curve;
    /* How long tally_client_new() waits for the spool's or the state
     * file's lock while another process holds it, in milliseconds; 0:
     * fail at once with TALLY_EEXIST. */
    unsigned lock_timeout_ms;
    /* Optional: submissions of unknown fate (see "Client ids expire"),
     * called with cb_ctx.  Without it they are still set aside and never
     * resent, but nobody hears of them. */
    tally_unknown_cb on_unknown;
} tally_client_opts_t;

/* Create a publisher for township (1..64 bytes of UTF-8, the protocol's
 * name rules; not "county", which names the county-wide tallies) that
 * submits to server_endpoint (any form accepted by
 * tally_endpoint_normalize).  opts may be NULL (all defaults).  township
 * NULL: a client that only delivers what its spool holds (each spooled
 * submission names its own township); tally_client_add() then fails with
 * TALLY_EINVAL.
 *
 * With a spool directory the client locks it (SPOOL/lock; one process per
 * spool), loads its persistent client id, next sequence number, last
 * acknowledgement time and learned limits (SPOOL/client.state; the
 * SPOOL/client.id and SPOOL/client.seq of an older libtally are read and
 * replaced by it), deletes stray temporary files and queues every
 * submission left in SPOOL/<seq in 20 digits>.sub by an earlier run, in
 * sequence order;
 * they are sent by the next tally_client_send(), tally_client_flush() or
 * tally_client_process().  Nothing is sent by this call and it does not
 * wait for the daemon, except for a lock held by another process (see
 * lock_timeout_ms).
 *
 * On success *out owns a new client (free with tally_client_destroy).
 * Returns 0; TALLY_EINVAL (NULL endpoint or out, bad endpoint, option out
 * of range);
 * TALLY_EBADNAME (township, also "county"), TALLY_ETOOLONG or TALLY_EUTF8
 * (township); TALLY_EEXIST
 * (the spool or state file is locked by another process, still after
 * lock_timeout_ms); TALLY_EIO (spool or state file
 * unreadable/unwritable); TALLY_EMALFORMED (a spool file or the state file
 * is corrupt: the message names it); TALLY_ENOMEM; TALLY_ESYS (ZeroMQ
 * failure); the codes of tally_curve_check() for opts->curve.  On failure
 * *out is untouched and opts->errbuf, if given, holds a sentence naming
 * the problem. */
TALLY_API int tally_client_new(const char *server_endpoint, const char *township,
                               const tally_client_opts_t *opts, tally_client_t **out);

/* Close the connection, release the spool lock and free the client; *c is
 * set to NULL.  Does not wait: submissions not yet acknowledged stay in the
 * spool (and are delivered by the next client on it) or, without a spool,
 * are lost.  Call tally_client_flush() first to deliver them.  From
 * within one of the client's callbacks, the client is freed only once the
 * call that runs the callback returns (see tally_ack_cb). */
TALLY_API void tally_client_destroy(tally_client_t **c);

/* Append one sample (metric, value) with event time time_ms (milliseconds
 * since 1970-01-01 UTC) to the current batch.  time_ms 0 means now: the
 * clock is read when such a sample opens a batch, and later samples with
 * time_ms 0 join that batch with the same time.  A submission
 * carries one event time, so a sample with a different time first closes
 * the current batch (as tally_client_send); so does a full batch
 * (batch_limit samples, or a body near the 64 KiB message limit).
 * Returns 0; TALLY_EINVAL (NULL argument, or a client made without a
 * township); TALLY_EBADNAME, TALLY_ETOOLONG, TALLY_EUTF8 (metric breaks
 * the name rules); TALLY_ERANGE (time outside
 * 2000-01-01 .. 2100-01-01); or an error of tally_client_send when a batch
 * had to be closed (the new sample is then not added). */
TALLY_API int tally_client_add(tally_client_t *c, const char *metric, int64_t value,
                               int64_t time_ms);

/* Close the current batch (if it holds samples) into submissions: one,
 * or several when it has more samples or a larger body than the daemon's
 * limits allow (as learned from WELCOME; see "Limits").  For each, apply
 * the expiry rule (see "Client ids expire"), assign the next sequence
 * number, persist the new next-seq (spool or state file) and, with a
 * spool, write the encoded submission to the spool, all before the first
 * send attempt; then send what the in-flight window allows, without
 * waiting.  Returns 0 (also when the batch was empty); TALLY_EIO (could
 * not persist: the message names the file; the submissions closed before
 * the failure are pending as usual); TALLY_ENOMEM; TALLY_ESYS.
 * A submission whose file or next sequence number could not be written
 * is undone whole: its file is removed from the spool again, its samples
 * and those after it stay in the batch, and nothing of them was sent or
 * kept.  Only when that file cannot be removed either (the message then
 * says so) does it stay in the spool, as a submission of its own that the
 * next client on the spool delivers (not this one, which never sends it);
 * its samples leave the batch, and the next sequence number is not used
 * again. */
TALLY_API int tally_client_send(tally_client_t *c);

/* tally_client_send(), then send and resend until every submission is
 * acknowledged or finally rejected, or timeout_ms passes (< 0: no limit;
 * 0: send what is due and return at once, TALLY_ETIMEDOUT if anything is
 * still pending).
 * Rejections and acks are reported through the callbacks as they come.
 * Returns 0 when nothing is pending any more (even if some submissions
 * were rejected: see on_reject / tally_client_last_error); TALLY_ETIMEDOUT
 * when submissions are still pending (nothing is lost: they stay queued and
 * spooled and will be resent); or an error of tally_client_send. */
TALLY_API int tally_client_flush(tally_client_t *c, int timeout_ms);

/* Say HELLO to the daemon and wait up to timeout_ms (< 0: no limit; 0: do
 * not wait) for
 * its WELCOME, which tells its limits and client_expiry_ms (see "Limits"
 * and "Client ids expire"; the expiry rule is applied as soon as it
 * arrives).  Meanwhile acknowledgements are handled as by
 * tally_client_process(), but nothing is submitted before the answer.
 * Returns 0 once the daemon has answered (also when it answered HELLO
 * with an ERROR: then nothing was learned, and tally_client_last_error()
 * says why); TALLY_ETIMEDOUT (no answer: what earlier runs learned, kept
 * in the state, still applies); TALLY_ESYS. */
TALLY_API int tally_client_hello(tally_client_t *c, int timeout_ms);

/* Do what is due without blocking: read every acknowledgement waiting on
 * the socket (running the callbacks) and send or resend what the timers
 * allow.  For callers with their own event loop (see tally_client_fd).
 * Returns 0 or TALLY_ESYS (ZeroMQ failure, message in last_error). */
TALLY_API int tally_client_process(tally_client_t *c);

/* Store in *fd a file descriptor to poll for reading: when it is readable
 * (or when tally_client_next_timeout_ms expires) call tally_client_process.
 * It is ZeroMQ's ZMQ_FD: edge-like, so always call process after a wake-up.
 * Returns 0, TALLY_EINVAL or TALLY_ESYS. */
TALLY_API int tally_client_fd(tally_client_t *c, int *fd);

/* Milliseconds until the next resend timer (0: something is due now), or
 * -1 when nothing is pending. */
TALLY_API int tally_client_next_timeout_ms(const tally_client_t *c);

/* Number of submissions neither acknowledged nor finally rejected
 * (including the ones waiting behind the in-flight window; not counting the
 * open batch). */
TALLY_API size_t tally_client_pending(const tally_client_t *c);

/* Number of samples in those pending submissions. */
TALLY_API size_t tally_client_pending_samples(const tally_client_t *c);

/* Number of samples in the open batch (not yet closed by send). */
TALLY_API size_t tally_client_batch_size(const tally_client_t *c);

/* What the connection to the daemon showed last (enum tally_link); for
 * saying why tally_client_hello() or tally_client_flush() timed out.
 * Reads the connection's events, so it takes a non-const client. */
TALLY_API int tally_client_link(tally_client_t *c);

/* For how many milliseconds every attempt to connect to the daemon has
 * been refused (TALLY_LINK_NO_CONNECTION throughout: nothing listens at
 * the address), or the address's host name been unknown to the name
 * server (TALLY_LINK_UNREACHABLE, "its name does not resolve"); 0 while
 * connections are not refused, and while they fail because the network
 * does not reach the address (TALLY_LINK_UNREACHABLE).
 * For giving up, or saying so, sooner than a timeout when no daemon is
 * there. */
TALLY_API int64_t tally_client_refused_ms(tally_client_t *c);

/* When tally_client_link() is TALLY_LINK_UNREACHABLE, a clause saying
 * why, to follow "cannot reach tallyd at ADDRESS: ": "the network does not
 * reach it (No route to host)", "its name does not resolve (Name or
 * service not known)", "its host does not answer connections (...)"; "" otherwise.
 * Valid until the next call on c. */
TALLY_API const char *tally_client_link_why(tally_client_t *c);

/* Copy the 16-byte client id into id.  It changes only when the expiry
 * rule takes a new one. */
TALLY_API void tally_client_id(const tally_client_t *c, uint8_t id[TALLY_CLIENT_ID_LEN]);

/* The sequence number the next submission will get (>= 1). */
TALLY_API uint64_t tally_client_next_seq(const tally_client_t *c);

/* Within on_reject, when the submission rejected was left in the spool by
 * an earlier run: where it is kept now (SPOOL/rejected/, never sent
 * again) and what it holds, for the application to tell its user, who
 * corrects the figures and sends them again as a new submission.  NULL
 * otherwise: the submission was made by this client (its figures are the
 * application's), there is no spool, or no on_reject call is running. */
TALLY_API const tally_rejected_t *tally_client_rejected_earlier(const tally_client_t *c);

/* The last error or final rejection as a sentence ("" if none); owned by
 * the client, valid until the next call on it. */
TALLY_API const char *tally_client_last_error(const tally_client_t *c);

/* The daemon's last refusal for now of a submission still pending: the
 * retryable code it answered (TALLY_ERATELIMIT, TALLY_EUNAVAIL or
 * TALLY_EBUSY), with that submission's seq in *seq and the daemon's words
 * ("field: message") in *message (owned by the client, valid until the
 * next call on it).  A refused submission was not counted at that
 * attempt; libtally sends it again after a backoff.  Returns 0 (and
 * *message "") when the submission last refused so is settled, set aside
 * or was never refused.  seq and message may be NULL. */
TALLY_API int tally_client_last_refusal(const tally_client_t *c, uint64_t *seq,
                                        const char **message);

/* ------------------------------------------------------------------ */
/* Tallies                                                            */
/* ------------------------------------------------------------------ */

enum tally_kind {
    TALLY_KIND_COUNTER = 0,
    TALLY_KIND_GAUGE = 1,
    TALLY_KIND_RATIO = 2,
};

/* One column of a tally.  present == false means "no value" (a ratio with a
 * zero denominator, a gauge never set).  Counters and gauges use num (den is
 * 1); ratios are num/den with den != 0 when present. */
typedef struct tally_value {
    const char *column; /* "1h", "24h", "7d", "30d", "today", ..., "total" */
    bool present;
    int64_t num;
    int64_t den;
} tally_value_t;

/* A rolling tally of one metric for the county (scope "") or a township.
 * All strings are NUL-terminated and owned by the library. */
typedef struct tally_tally {
    const char *metric;
    const char *scope; /* "" = county-wide, else the township name */
    const char *topic; /* "u/county/<metric>/" or "u/town/<scope>/<metric>/" */
    int kind;          /* enum tally_kind (other values: a newer daemon) */
    uint64_t seq;      /* server sequence number: of its last change in an update, of the
                          snapshot in a snapshot's items (PROTOCOL.md 16.1) */
    int64_t time_ms;   /* server time of the last change */
    unsigned nvalues;
    tally_value_t values[TALLY_COLUMNS_MAX];
} tally_tally_t;

/* The value of column in t, or NULL when t has no such column. */
TALLY_API const tally_value_t *tally_tally_value(const tally_tally_t *t, const char *column);

/* "counter", "gauge", "ratio", or "unknown" (static storage). */
TALLY_API const char *tally_kind_name(int kind);

/* Called for each tally; t is valid during the call only. */
typedef void (*tally_tally_cb)(void *ctx, const tally_tally_t *t);

/* ------------------------------------------------------------------ */
/* Subscriber (live tallies, clone pattern)                            */
/* ------------------------------------------------------------------ */

typedef struct tally_sub tally_sub_t;

/* Callbacks of a subscriber; any may be NULL.  They run inside
 * tally_sub_process / tally_sub_run; they may call tally_sub_stop and the
 * read-only tally_sub_* accessors.  tally_sub_process and tally_sub_run
 * from a callback of the same subscriber do nothing and return
 * TALLY_ECALLBACK.  tally_sub_destroy from a callback sets the caller's
 * pointer to NULL at once, no further callback runs, and the subscriber is
 * freed as the running tally_sub_process or tally_sub_run returns, which
 * then returns TALLY_ECLOSED. */
typedef struct tally_sub_callbacks {
    /* A new snapshot is about to replace the whole table; on_tally follows
     * for every tally of the new table (and for the updates newer than the
     * snapshot that arrived while it was taken), then on_synced.  During
     * on_reset, tally_sub_seq() and tally_sub_stream_id() already return
     * the new snapshot's values (tally_sub_foreach still sees the old
     * table). */
    void (*on_reset)(void *ctx);
    /* Tally t was added or changed (from a snapshot or a live update). */
    void (*on_tally)(void *ctx, const tally_tally_t *t);
    /* The table is consistent with server sequence seq of stream
     * stream_id (called after each snapshot is applied; see
     * tally_sub_synced for whether it is kept current). */
    void (*on_synced)(void *ctx, uint64_t seq, uint64_t stream_id);
    void *ctx;
} tally_sub_callbacks_t;

/* Subscriber options; zero fields mean the defaults. */
typedef struct tally_sub_opts {
    /* Publish endpoint to use instead of asking the daemon (HELLO/WELCOME). */
    const char *pub_endpoint;
    unsigned heartbeat_ms;        /* daemon's heartbeat interval (default 1000);
                                     silence for 3 x this re-synchronises */
    unsigned snapshot_timeout_ms; /* resend a snapshot request after (default 5000) */
    void *zmq_ctx;                /* a ZeroMQ context to use (not owned); NULL: own one */
    char *errbuf;                 /* optional: receives the reason when tally_sub_new fails */
    size_t errbuf_len;
    /* Keys for a secured daemon, used on both sockets (see tally_curve_t);
     * NULL: plaintext.  Reading tallies and subscribing need a subscriber
     * key: with any other the subscriber never synchronises. */
    const tally_curve_t *curve;
} tally_sub_opts_t;

/* Create a subscriber for the tallies whose topic starts with prefix
 * ("u/" or "" = everything, "u/county/" = county-wide, "u/town/gaoguan/",
 * "u/county/disputes.resolved/"; at most 255 bytes).  It asks the daemon
 * at server_endpoint for its publish endpoint (HELLO, unless
 * opts->pub_endpoint is set), subscribes, waits for the first message on
 * the subscription (so no update can slip between snapshot and
 * subscription), takes a snapshot, applies the updates that are newer,
 * and from then on keeps the table current.  It re-synchronises by itself
 * (on_reset, a new snapshot) when the daemon's stream id changes, when the
 * daemon is silent for 3 heartbeat intervals, and, for the "everything"
 * prefixes, when an update's sequence number shows a gap.  When the
 * daemon refuses the security handshake on either socket (a key it does
 * not admit, e.g. one a reload revoked: it then cuts the subscription and
 * refuses it, while the request connection stays), ZeroMQ never connects
 * that socket again; the subscriber does, every 0.5 s at first, then
 * every 5 s, so that it synchronises again by itself once the key is
 * admitted.  It also connects the subscription again when a snapshot
 * was answered but the subscription stays silent.  Nothing happens
 * until tally_sub_process or tally_sub_run is called.  cb and opts may be
 * NULL.  On success *out owns the subscriber.
 * Returns 0; TALLY_EINVAL (NULL endpoint/out, bad endpoint, prefix too
 * long); TALLY_ENOMEM; TALLY_ESYS (ZeroMQ failure); the codes of
 * tally_curve_check() for opts->curve; on failure opts->errbuf (if given)
 * holds the reason. */
TALLY_API int tally_sub_new(const char *server_endpoint, const char *prefix,
                            const tally_sub_callbacks_t *cb, const tally_sub_opts_t *opts,
                            tally_sub_t **out);

/* Close the sockets and free the subscriber and its table; *s = NULL.
 * From within one of its callbacks, the subscriber is freed only once the
 * call that runs the callback returns (see tally_sub_callbacks_t). */
TALLY_API void tally_sub_destroy(tally_sub_t **s);

/* Store the two file descriptors to poll for reading (the subscription
 * socket's and the request socket's ZMQ_FD) in fds[0] and fds[1].  When
 * either is readable, or tally_sub_next_timeout_ms expires, call
 * tally_sub_process.  They stay the same for the subscriber's life (a
 * socket connected again is the same socket).  Returns 0, TALLY_EINVAL or
 * TALLY_ESYS. */
TALLY_API int tally_sub_poll_fds(tally_sub_t *s, int fds[2]);

/* Do what is due without blocking: drain both sockets, apply what they
 * bring (running the callbacks), handle timers (HELLO and snapshot
 * resends, heartbeat loss, connecting a refused socket again).  Returns
 * 0; TALLY_ESYS (ZeroMQ failure, reason in tally_sub_last_error);
 * TALLY_ECALLBACK, TALLY_ECLOSED (see tally_sub_callbacks_t). */
TALLY_API int tally_sub_process(tally_sub_t *s);

/* Milliseconds until tally_sub_process must run again even if no fd is
 * readable (0: now), never negative. */
TALLY_API int tally_sub_next_timeout_ms(const tally_sub_t *s);

/* Run until tally_sub_stop is called (returns 0) or timeout_ms passes
 * (returns TALLY_ETIMEDOUT; 0 or negative timeout_ms = no limit).  Returns
 * TALLY_ESYS on ZeroMQ failure (reason in tally_sub_last_error);
 * TALLY_ECALLBACK, TALLY_ECLOSED (see tally_sub_callbacks_t).  A signal
 * interrupting the wait is not an error: the loop re-checks the stop flag
 * and goes on. */
TALLY_API int tally_sub_run(tally_sub_t *s, int timeout_ms);

/* Ask tally_sub_run to return; only sets a flag, so it is safe from a
 * callback and from a signal handler.  The flag is cleared when
 * tally_sub_run returns because of it. */
TALLY_API void tally_sub_stop(tally_sub_t *s);

/* True when the table is consistent with the daemon and kept current (a
 * snapshot has been applied and no re-synchronisation is under way).
 * False after a snapshot asked for while the subscription brought nothing
 * (its handshake refused, or its connection broken), until the
 * subscription brings something: on_synced has run, but nothing keeps the
 * table current. */
TALLY_API bool tally_sub_synced(const tally_sub_t *s);

/* Server sequence number the table reflects (0 before the first snapshot). */
TALLY_API uint64_t tally_sub_seq(const tally_sub_t *s);

/* Stream id of the daemon run the table comes from (0 before the first
 * snapshot). */
TALLY_API uint64_t tally_sub_stream_id(const tally_sub_t *s);

/* Number of tallies in the table. */
TALLY_API size_t tally_sub_count(const tally_sub_t *s);

/* The last failure of the subscriber as a sentence ("" if none; a
 * re-synchronisation's reason, a ZeroMQ error, a call refused within a
 * callback); owned by the subscriber, valid until the next call on it. */
TALLY_API const char *tally_sub_last_error(const tally_sub_t *s);

/* Call fn for every tally in the table (in no particular order); t is
 * valid until the next tally_sub_process/run. */
TALLY_API void tally_sub_foreach(const tally_sub_t *s, tally_tally_cb fn, void *ctx);

/* Submissions changed closed periods of series (metric, scope; scope ""
 * is the county): periods[0..n) name them ("2023", "2023-Q4", "2023-12",
 * "2023-12-31"), and a reader of history re-reads them (PERIOD_CHANGED,
 * PROTOCOL.md 8.22).  The strings are valid during the call. */
typedef void (*tally_period_changed_cb)(void *ctx, const char *metric, const char *scope,
                                        const char *const *periods, size_t n);

/* Have fn called with ctx, inside tally_sub_process/run, for every
 * PERIOD_CHANGED of a series under the subscriber's prefix that comes
 * from the daemon run the table is synchronised with (fn NULL: no
 * longer).  Like updates these notices may be lost; a new snapshot
 * (on_reset) is the moment to re-read everything.  Returns 0 or
 * TALLY_EINVAL. */
TALLY_API int tally_sub_on_period_changed(tally_sub_t *s, tally_period_changed_cb fn, void *ctx);

/* The publish endpoint in use ("" while still asking the daemon). */
TALLY_API const char *tally_sub_pub_endpoint(const tally_sub_t *s);

/* What the connections to the daemon showed last (enum tally_link), for
 * saying why the subscriber does not synchronise: the request
 * connection's state, or the subscription's when its security handshake
 * failed (TALLY_LINK_KEY_REFUSED, _HANDSHAKE, _MECHANISM) while the
 * request connection's did not, as after a reload that revoked the key:
 * the daemon refuses the subscription's new connection, while the
 * request connection made before stays up (its requests refused with
 * TALLY_EFORBIDDEN, see tally_sub_refusal). */
TALLY_API int tally_sub_link(tally_sub_t *s);

/* As tally_client_refused_ms, for the subscriber's request connection. */
TALLY_API int64_t tally_sub_refused_ms(tally_sub_t *s);

/* As tally_client_link_why, for the subscriber's request connection. */
TALLY_API const char *tally_sub_link_why(tally_sub_t *s);

/* The daemon's last refusal of this subscriber's requests (an ERROR
 * answering HELLO or a snapshot request, e.g. TALLY_EFORBIDDEN for a key
 * that may not read): its negative TALLY_E* code, or 0 when there was
 * none since the last snapshot applied.  *message (message may be NULL)
 * receives the daemon's words, "" if it gave none, valid until the next
 * tally_sub_process/run.  The subscriber goes on asking; a caller that
 * takes a refusal as final stops it. */
TALLY_API int tally_sub_refusal(const tally_sub_t *s, const char **message);

/* ------------------------------------------------------------------ */
/* One-shot requests                                                  */
/* ------------------------------------------------------------------ */

/* Take one snapshot of the tallies under prefix (as for tally_sub_new)
 * from the daemon at server, waiting at most timeout_ms (<= 0: 10000).
 * The items are collected first and cb runs for each only once the
 * snapshot is complete, so cb sees all tallies or none.  On success
 * *seq and *stream_id (either may be NULL) receive the snapshot's
 * sequence number and stream id.
 * Returns 0; TALLY_EINVAL (NULL server/cb, bad endpoint, prefix longer
 * than 255 bytes); TALLY_ETIMEDOUT (no complete answer in time: the
 * daemon is not running, unreachable or overloaded); a negative wire code
 * when the daemon answered with an ERROR; TALLY_ENOMEM; TALLY_ESYS. */
TALLY_API int tally_get(const char *server, const char *prefix, int timeout_ms, tally_tally_cb cb,
                        void *ctx, uint64_t *seq, uint64_t *stream_id);

/* Called for each counter of the daemon; name is valid during the call. */
typedef void (*tally_stat_cb)(void *ctx, const char *name, int64_t value);

/* Ask the daemon at server for its counters (STATS) and call cb for each,
 * in the daemon's order, waiting at most timeout_ms (<= 0: 10000).
 * Returns 0; TALLY_EINVAL; TALLY_ETIMEDOUT; a negative wire code when the
 * daemon answered with an ERROR; TALLY_ENOMEM; TALLY_ESYS. */
TALLY_API int tally_stats(const char *server, int timeout_ms, tally_stat_cb cb, void *ctx);

/* How to make a one-shot request, and what became of it. */
typedef struct tally_request {
    const tally_curve_t *curve; /* keys for a secured daemon; NULL: plaintext */
    int timeout_ms;             /* <= 0: 10000 */
    /* Optional: on failure, a sentence saying why; for an ERROR answer,
     * the daemon's own message ("" if it gave none). */
    char *errbuf;
    size_t errbuf_len;
    int link; /* out: what the connection showed (enum tally_link) */
    /* Optional: > 0 ends the wait early, with TALLY_ETIMEDOUT and link
     * TALLY_LINK_NO_CONNECTION, once nothing has accepted a connection at
     * the address for this many milliseconds (a refused connection: no
     * daemon listens there), or its host name has not resolved for as
     * long (the name server knows no such name: link
     * TALLY_LINK_UNREACHABLE, errbuf says so).  A host that does not
     * answer at all, or that the network does not reach, is waited for
     * until timeout_ms: link TALLY_LINK_UNREACHABLE then, and errbuf says
     * why.  0 waits the whole timeout_ms, for a daemon that may yet
     * start. */
    int refused_ms;
} tally_request_t;

/* tally_get() and tally_stats() with the options of req (NULL: as
 * tally_get and tally_stats), which also receives why a request failed.
 * A failed security handshake (TALLY_LINK_MECHANISM, TALLY_LINK_HANDSHAKE,
 * TALLY_LINK_KEY_REFUSED) ends the wait at once with TALLY_ECLOSED, since
 * no answer can come through it; the other returns are those of
 * tally_get and tally_stats. */
TALLY_API int tally_get_req(const char *server, tally_request_t *req, const char *prefix,
                            tally_tally_cb cb, void *ctx, uint64_t *seq, uint64_t *stream_id);
TALLY_API int tally_stats_req(const char *server, tally_request_t *req, tally_stat_cb cb,
                              void *ctx);

/* tally_get() and tally_stats() with CURVE keys (curve may be NULL:
 * plaintext), for a secured daemon, which answers them only for a
 * subscriber key (a township key gets TALLY_EFORBIDDEN; an unknown key
 * gets no answer: TALLY_ETIMEDOUT).  Also return the codes of
 * tally_curve_check(). */
TALLY_API int tally_get_curve(const char *server, const tally_curve_t *curve, const char *prefix,
                              int timeout_ms, tally_tally_cb cb, void *ctx, uint64_t *seq,
                              uint64_t *stream_id);
TALLY_API int tally_stats_curve(const char *server, const tally_curve_t *curve, int timeout_ms,
                                tally_stat_cb cb, void *ctx);

/* ------------------------------------------------------------------ */
/* History: closed periods (PROTOCOL.md 10.8)                         */
/* ------------------------------------------------------------------ */

/* The tallies under prefix (as for tally_get) for one calendar period of
 * the daemon's zone, closed or current: period is "2023", "2023-Q4",
 * "2023-12" or "2023-12-31".  cb receives each tally once the whole
 * answer is in, with exactly one column, named after the period (its
 * value follows the rules of tally_value_t).  Returns 0 (also when
 * nothing matches: cb is not called); TALLY_EINVAL (bad arguments);
 * TALLY_EBADPERIOD (not a period, or one that has not begun);
 * TALLY_EEXPIRED (a day older than the daemon keeps); TALLY_EUNKTOWN,
 * TALLY_EUNKMETRIC (the prefix names one the daemon has no tallies of);
 * TALLY_ETYPE (a daemon from before history); otherwise the returns of
 * tally_get_req. */
TALLY_API int tally_period_req(const char *server, tally_request_t *req, const char *prefix,
                               const char *period, tally_tally_cb cb, void *ctx);

/* The tallies under prefix for a span of days of the daemon's zone: from
 * the first day of from to the last day of to (period names of any type:
 * from "2023", to "2023-11-30" is 1 January to 30 November 2023).  As
 * tally_period_req, except that the one column is named "span": a
 * counter's sum over the span, a gauge's latest value in it (the
 * county's: the sum of its townships' latest), a ratio from its
 * operands over the span.  Returns the codes of tally_period_req
 * (TALLY_EBADPERIOD also when from begins after to ends; TALLY_EEXPIRED
 * when the span needs a day older than the daemon keeps: whole months
 * are kept for good); TALLY_ETYPE from a daemon from before SPAN_REQ. */
TALLY_API int tally_span_req(const char *server, tally_request_t *req, const char *prefix,
                             const char *from, const char *to, tally_tally_cb cb, void *ctx);

/* The tallies under prefix for period, a period name ("2023-12", as
 * tally_period_req) or a span of days "FROM..TO" ("2023-01..2023-11", as
 * tally_span_req, with the one column named period, not "span").  The
 * daemon may bound one answer (PROTOCOL.md 8.18) below the series that
 * match; a prefix within one scope ("u/county/", "u/town/T/", or
 * narrower) is then read metric by metric: its metrics from a snapshot
 * of prefix (tally_get_req, which no such bound limits), then one
 * request per metric, all on one connection, cb receiving each metric's
 * tallies once that metric's answer is in (those of the metrics before
 * a failing one included).  Returns the codes of tally_period_req and
 * tally_get_req; TALLY_ETOOLARGE when a prefix over several scopes ("",
 * "u/", "u/town/", "u/town/gao") matches more than an answer holds: then
 * read them with tally_period_read_split if tally_period_splittable. */
TALLY_API int tally_period_read(const char *server, tally_request_t *req, const char *prefix,
                                const char *period, tally_tally_cb cb, void *ctx);

/* Whether prefix covers whole townships ("" or NULL, "u/", "u/town/"), so
 * that its tallies can be read township by township. */
TALLY_API bool tally_period_splittable(const char *prefix);

/* tally_period_read for a splittable prefix, in parts, each far below
 * the daemon's bound: the county's tallies first ("u/county/", unless
 * prefix is "u/town/"), then "u/town/T/" for each township T of
 * towns[0..ntowns), or, when towns is NULL, of the townships that have
 * tallies now (tally_townships_req).  cb receives each part's tallies
 * once that part is in, in this order; a township the daemon no longer
 * knows (removed in a reload) is skipped.  One request per part, all on
 * one connection: about 0.25 ms a township (40,000 townships of 25
 * metrics in 10 s on a 2-core VM).  A part with more series than an
 * answer holds (the county, or one township, of more metrics than that:
 * an open catalog takes up to tallyd's max_metrics) is read metric by
 * metric as tally_period_read reads it, on a connection of its own.
 * Returns 0; TALLY_EINVAL (prefix not splittable); otherwise the first
 * failing part's code (or, for a part read metric by metric, its
 * snapshot's or its first failing metric's), cb having received what
 * came before it. */
TALLY_API int tally_period_read_split(const char *server, tally_request_t *req, const char *prefix,
                                      const char *period, const char *const *towns, size_t ntowns,
                                      tally_tally_cb cb, void *ctx);

/* A list of township ids (v[0..n)), as tally_townships_req gives it or
 * as any walk over tallies collects it: start it zeroed, pass
 * tally_townships_add as the walk's callback with the list as its
 * context, then tally_townships_sort.  Free with tally_townships_clear. */
typedef struct tally_townships {
    char **v;
    size_t n, cap;
    bool oom; /* a name could not be kept: the list lacks it */
} tally_townships_t;

/* A tally_tally_cb: keep t's township (not the county's) in the
 * tally_townships_t ctx. */
TALLY_API void tally_townships_add(void *ctx, const tally_tally_t *t);

/* Sort the list by id, each once. */
TALLY_API void tally_townships_sort(tally_townships_t *l);

/* Free the list's names and array, and zero it. */
TALLY_API void tally_townships_clear(tally_townships_t *l);

/* The townships that have tallies at the daemon now, each once, sorted
 * by id, into *out: the daemon's township list (TOWNSHIPS_REQ,
 * PROTOCOL.md 8.25), a few pages of names however many series it keeps;
 * from a daemon that predates it, a snapshot of u/town/ (every township
 * series, so it costs what tally_get_req of u/town/ does).  An open
 * catalog (PROTOCOL.md 8.17) does not list them.  Returns 0,
 * TALLY_ENOMEM or the codes of tally_get_req; *out is empty on
 * failure. */
TALLY_API int tally_townships_req(const char *server, tally_request_t *req, tally_townships_t *out);

/* Called for each period of a range, in order: value->column is the
 * period's name; kind is the metric's (enum tally_kind). */
typedef void (*tally_point_cb)(void *ctx, int kind, const tally_value_t *value);

/* One series (metric, scope: NULL or "" for the county, else a township)
 * period by period: by is "day", "month", "quarter" or "year"; the range
 * runs from the period of type by holding the first day of from to the
 * one holding the last day of to (from and to are period names of any
 * type: by "month", from "2023", to "2023" is the twelve months of 2023).
 * At most 10,000 periods.  cb runs for each once the whole answer is in.
 * Returns 0 or the codes of tally_period_req. */
TALLY_API int tally_range_req(const char *server, tally_request_t *req, const char *metric,
                              const char *scope, const char *by, const char *from, const char *to,
                              tally_point_cb cb, void *ctx);

/* ------------------------------------------------------------------ */
/* The daemon's clock                                                 */
/* ------------------------------------------------------------------ */

/* What CLOCK_REQ answers (PROTOCOL.md 8.23): the daemon's clock and the
 * time zone its calendar periods (today, month, year, closed periods)
 * are in. */
typedef struct tally_clock {
    int64_t now_ms;                /* the daemon's clock when it answered, ms since the epoch */
    char zone[TALLY_ZONE_MAX + 1]; /* the zone's name as configured, e.g. "Asia/Shanghai" */
    int32_t utc_offset_s;          /* its offset from UTC at now_ms, east positive (28800) */
} tally_clock_t;

/* Ask the daemon at server for its clock and calendar zone into *out.
 * Returns 0; TALLY_EINVAL (out NULL, bad endpoint); TALLY_ETYPE (a daemon
 * from before CLOCK_REQ); otherwise the returns of tally_get_req.  Any
 * admitted key may ask, a township's as well as a subscriber's. */
TALLY_API int tally_clock_req(const char *server, tally_request_t *req, tally_clock_t *out);

/* ------------------------------------------------------------------ */
/* A backup of the daemon's state (PROTOCOL.md 8.26)                  */
/* ------------------------------------------------------------------ */

#define TALLY_PATH_MAX          1024   /* bytes in a backup's path */
#define TALLY_BACKUP_TIMEOUT_MS 120000 /* tally_backup_req's wait by default */

/* A backup the daemon has written. */
typedef struct tally_backup_info {
    char path[TALLY_PATH_MAX + 1]; /* its directory on the daemon's host */
    uint32_t files;                /* files in it */
    uint64_t bytes;                /* their size together */
    uint64_t ms;                   /* how long the daemon took to write it */
} tally_backup_info_t;

/* Ask the daemon at server to back its state up now, and wait until the
 * backup is written and checked: at most req->timeout_ms, or
 * TALLY_BACKUP_TIMEOUT_MS when that is <= 0 or req is NULL (a backup
 * takes as long as copying the state does, seconds for a large one).  The
 * backup holds every submission the daemon acknowledged before it
 * received the request.  A secured daemon answers admin keys only.
 * Returns 0 with *out filled; TALLY_EINVAL (out NULL, bad endpoint);
 * TALLY_EFORBIDDEN (not an admin key); TALLY_EUNAVAIL (the backup failed,
 * or the daemon is stopping: req->errbuf has the daemon's sentence);
 * TALLY_EBUSY (too many requests wait for a backup already); TALLY_ETYPE
 * (a daemon from before BACKUP_REQ); otherwise the returns of
 * tally_get_req. */
TALLY_API int tally_backup_req(const char *server, tally_request_t *req, tally_backup_info_t *out);

/* ---- The backups the daemon keeps (PROTOCOL.md 8.28) ---- */

#define TALLY_BACKUP_NAME_MAX 64 /* bytes in a backup's name */

/* A backup the daemon keeps on its host. */
typedef struct tally_backup_entry {
    /* "backup-YYYYMMDDTHHMMSSZ", maybe "-N" after it: the name that
     * tally_backup_fetch_req takes */
    char name[TALLY_BACKUP_NAME_MAX + 1];
    uint32_t files; /* files in it, BLAKE2SUMS among them */
    uint64_t bytes; /* their size together */
    /* It holds BLAKE2SUMS, so a copy of it is checked; a backup written by
     * a daemon from before them has none. */
    bool checked;
} tally_backup_entry_t;

/* What tally_backup_list_req found. */
typedef struct tally_backup_list {
    /* The backup directory on the daemon's host; "" when its path is not
     * UTF-8 or is longer than TALLY_PATH_MAX bytes. */
    char dir[TALLY_PATH_MAX + 1];
    uint32_t total; /* backups in it */
    uint32_t n;     /* of them in backups: the newest, at most 1000 */
    /* n of them, oldest first (NULL when n is 0); free with
     * tally_backup_list_clear */
    tally_backup_entry_t *backups;
} tally_backup_list_t;

/* Ask the daemon at server which backups it keeps in its backup directory
 * (tallyd.conf [backup] dir): those written on its schedule, on a signal
 * or for tally_backup_req, while it keeps them ([backup] keep).  Their
 * names are what tally_backup_fetch_req takes; a backup listed may be
 * removed before it is fetched (TALLY_ENOBACKUP then).  When the daemon
 * keeps more than 1000, out->total says how many and out->backups holds
 * the newest 1000.  Waits at most req->timeout_ms (<= 0 or req NULL:
 * 10000).  A secured daemon answers admin keys only.  *out is zeroed
 * first; on success it owns out->backups, which the caller frees with
 * tally_backup_list_clear; on failure it holds nothing to free.
 * Returns 0 with *out filled (n may be 0: no backup kept, or none ever
 * written); TALLY_EINVAL (out NULL, bad endpoint); TALLY_EFORBIDDEN (not
 * an admin key); TALLY_EUNAVAIL (the daemon could not read its backup
 * directory, or is stopping: req->errbuf has the daemon's sentence);
 * TALLY_EBUSY (the daemon reads as many backups and lists as it will at
 * once); TALLY_ETYPE (a daemon from before BACKUP_LIST_REQ); TALLY_ENOMEM;
 * otherwise the returns of tally_get_req. */
TALLY_API int tally_backup_list_req(const char *server, tally_request_t *req,
                                    tally_backup_list_t *out);

/* Free list->backups and zero *list (list NULL, or already cleared: nothing
 * to do). */
TALLY_API void tally_backup_list_clear(tally_backup_list_t *list);

/* ---- A backup copied to this machine (PROTOCOL.md 8.27) ---- */

#define TALLY_FETCH_TIMEOUT_MS 60000 /* tally_backup_fetch_req's wait without progress */

/* A copy tally_backup_fetch_req has made. */
typedef struct tally_backup_copy {
    char dir[TALLY_PATH_MAX + 1]; /* INTO/NAME: the directory holding the copy */
    uint32_t files;               /* files in it */
    uint64_t bytes;               /* their size together */
    uint64_t ms;                  /* how long the copy took */
} tally_backup_copy_t;

/* How far a copy has come, handed to a tally_backup_progress_cb. */
typedef struct tally_backup_progress {
    uint32_t files;       /* files in the backup (0 until the daemon's first answer) */
    uint32_t files_sized; /* files whose size is known */
    uint32_t files_done;  /* files written whole and synced */
    uint64_t bytes;       /* the known files' sizes together: the total once
                             files_sized == files */
    uint64_t bytes_done;  /* bytes written */
} tally_backup_progress_t;

/* Called after each piece of a copy is written; p is valid during the
 * call only.  It runs between network waits, so it should be quick. */
typedef void (*tally_backup_progress_cb)(void *ctx, const tally_backup_progress_t *p);

/* Copy the backup called name ("backup-YYYYMMDDTHHMMSSZ", optionally
 * "-N": the last part of a tally_backup_info_t's path), which the daemon
 * at server keeps on its host, into the directory INTO/NAME on this
 * machine, over the request socket.  into is created (mode 0700) if it
 * does not exist; its parent must.  The files go first into
 * INTO/.partial-NAME (a leftover of that name, from a copy that was
 * interrupted, is removed first), mode 0600 in a directory of mode 0700;
 * each is fsync()ed once whole, then the directory, which is renamed to
 * INTO/NAME only when every file holds all its bytes, and INTO is
 * fsync()ed.  On any failure the partial directory is removed, and INTO
 * too when this call created it, so that no INTO/NAME is ever incomplete.
 * A backup carries BLAKE2SUMS (the BLAKE2b-512 of each of its files, in
 * the format of coreutils' b2sum; daemons since BACKUP_FETCH write it):
 * every file of the copy is read back and checked against it before the
 * rename, so a copy that holds a BLAKE2SUMS matched it byte for byte.  A
 * backup without one (an older daemon's) is copied unchecked.
 *
 * The copy is read in pieces of 256 KiB, four asked for at a time; a
 * piece not answered within 10 s is asked for again (the environment
 * variable TALLY_FETCH_RESEND_MS, read by each call, sets another number
 * of milliseconds, for tests); a BUSY daemon is asked again every 200 ms.
 * req->timeout_ms (or TALLY_FETCH_TIMEOUT_MS when it is <= 0 or req is
 * NULL) is the longest wait without progress: the copy ends with
 * TALLY_ETIMEDOUT (or TALLY_EBUSY when the daemon was answering BUSY)
 * once no piece has come for that long, however long the whole copy
 * takes.  A secured daemon answers admin keys only.
 *
 * out->dir is set to INTO/NAME as soon as the arguments are found
 * valid, also when the copy then fails (to name an existing directory);
 * the rest of *out is set on success only.
 *
 * Returns 0 with *out filled; TALLY_EINVAL (out, name or into NULL,
 * name not a backup's name, INTO/NAME longer than TALLY_PATH_MAX bytes,
 * a bad endpoint); TALLY_EEXIST (INTO/NAME exists already: nothing is
 * written); TALLY_EIO (a directory or file of the copy could not be
 * created, written, synced, renamed or removed: req->errbuf names the
 * path and the cause); TALLY_EFORBIDDEN (not an admin key);
 * TALLY_ENOBACKUP (the daemon keeps no backup of that name: never
 * written, or removed since, as it keeps only its newest few, tallyd.conf
 * [backup] keep); TALLY_EUNAVAIL (a file of the backup could not be read,
 * or the daemon is stopping: req->errbuf has the daemon's sentence);
 * TALLY_EBUSY (see above); TALLY_EBADNAME, TALLY_ERANGE (the daemon
 * refused a fetch's name, file or offset); TALLY_EMALFORMED (the
 * daemon's answers disagree with each other or with what was asked:
 * another number of files or size of a file, one file name for two
 * files; req->errbuf says which); TALLY_EDAMAGED (a file of the copy
 * does not match the backup's BLAKE2SUMS, is missing from it or not
 * listed: the backup is damaged on the daemon's host, or was changed
 * after it was written; req->errbuf names the file); TALLY_ETYPE (a daemon from before
 * BACKUP_FETCH: copy the backup from its host some other way);
 * TALLY_ENOMEM; otherwise the returns of tally_get_req. */
TALLY_API int tally_backup_fetch_req(const char *server, tally_request_t *req, const char *name,
                                     const char *into, tally_backup_copy_t *out);

/* tally_backup_fetch_req, calling progress (may be NULL) with ctx as the
 * copy goes.  The same returns. */
TALLY_API int tally_backup_fetch_progress_req(const char *server, tally_request_t *req,
                                              const char *name, const char *into,
                                              tally_backup_progress_cb progress, void *ctx,
                                              tally_backup_copy_t *out);

/* ------------------------------------------------------------------ */
/* The catalog                                                        */
/* ------------------------------------------------------------------ */

/* A township of the daemon's catalog (PROTOCOL.md 8.17). */
typedef struct tally_township_info {
    const char *id;   /* the name used on the wire, e.g. "gaoguan" */
    const char *name; /* the name people use, e.g. "高观镇"; "" when none */
    int type;         /* 0 unspecified, 1 subdistrict, 2 town, 3 township */
} tally_township_info_t;

/* A metric of the daemon's catalog, ratios included. */
typedef struct tally_metric_info {
    const char *id;                      /* e.g. "disputes.resolved" */
    int kind;                            /* enum tally_kind */
    const char *unit;                    /* e.g. "件"; "" when none */
    int scale;                           /* decimal places: a value v means v / 10^scale */
    const char *label;                   /* e.g. "化解矛盾纠纷"; "" when none */
    const char *numerator, *denominator; /* a ratio's operands; "" otherwise */
} tally_metric_info_t;

typedef struct tally_catalog tally_catalog_t;

/* Read the catalog of the daemon at server (CATALOG_REQ, every page) into
 * a new *out, with the options of req (NULL: defaults).  Returns 0;
 * TALLY_ETYPE when the daemon predates the request (show ids then);
 * otherwise the returns of tally_get_req. */
TALLY_API int tally_catalog_req(const char *server, tally_request_t *req, tally_catalog_t **out);

/* Free the catalog; *c = NULL.  Every pointer read from it goes with it. */
TALLY_API void tally_catalog_destroy(tally_catalog_t **c);

/* The catalog's id: it changes when a reload changes the catalog. */
TALLY_API uint64_t tally_catalog_id(const tally_catalog_t *c);

/* Townships and metrics in catalog order: the counts, and entry i (NULL
 * when i is out of range). */
TALLY_API size_t tally_catalog_townships(const tally_catalog_t *c);
TALLY_API const tally_township_info_t *tally_catalog_township(const tally_catalog_t *c, size_t i);
TALLY_API size_t tally_catalog_metrics(const tally_catalog_t *c);
TALLY_API const tally_metric_info_t *tally_catalog_metric(const tally_catalog_t *c, size_t i);

/* The entry with this id, or NULL (c may be NULL).  *index, when not
 * NULL, receives its position in catalog order. */
TALLY_API const tally_township_info_t *tally_catalog_find_township(const tally_catalog_t *c,
                                                                   const char *id, size_t *index);
TALLY_API const tally_metric_info_t *tally_catalog_find_metric(const tally_catalog_t *c,
                                                               const char *id, size_t *index);

#ifdef __cplusplus
}
#endif

#endif
