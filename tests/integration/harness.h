/* harness.h - black-box test harness for tallyd: run the real daemon binary
 * on ipc:// endpoints in a private temporary directory and talk to it over
 * real ZeroMQ sockets with the wire codec (proto.h).
 *
 * Three pieces:
 *   - harness_t: one daemon process, its directory, its log, and the ZeroMQ
 *     context every client and subscriber of the test uses (and, for a
 *     daemon secured with CURVE, the keys harness_start and the plain
 *     *_open functions use: harness_set_curve);
 *   - harness_client_t: a DEALER with its own random client_id, for
 *     SUBMIT, SNAPSHOT_REQ, STATS_REQ, PING and raw bytes;
 *   - harness_sub_t: a subscriber implementing the clone pattern of
 *     PROTOCOL.md section 16 (SUB, first heartbeat, snapshot, then updates
 *     newer than the snapshot), keeping a table of tallies by topic.
 *
 * Conventions.  Functions returning int give 0 on success or a negative
 * TALLY_E* code (tally_error.h); TALLY_ETIMEDOUT when a deadline passed.
 * Failures are also explained on stderr, prefixed "harness:", so a failed
 * assertion in a test comes with the reason (and, for the daemon, its log).
 * Every socket is created in the harness's context and registered with it:
 * harness_cleanup() closes whatever a failed test left open, so it never
 * hangs in zmq_ctx_term.  A harness_t may be used from several threads only
 * through distinct clients (the registry is locked; a client is not).
 *
 * Paths baked in at build time (compile definitions of the tally_harness
 * target, see daemon.cmake, also visible to the tests): TALLYD_BIN (the
 * daemon under test), TALLY_SHARED_DATA (shared/data) and TALLY_SOURCE_DIR
 * (the source tree, for systemd/tallyd.conf.example); the same strings are
 * harness_tallyd_bin, harness_shared_data and harness_source_dir.
 * Environment: TALLY_KEEP_TMP set keeps the temporary directory after
 * harness_cleanup() (its path is printed); TALLY_TALLYD, when set, is the
 * daemon to run instead of TALLYD_BIN (e.g. an installed or patched one).
 */
#ifndef TALLY_HARNESS_H
#define TALLY_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define HARNESS_DIR_MAX          128 /* the temporary directory; ipc paths are short */
#define HARNESS_PATH_MAX         256
#define HARNESS_ARGS_MAX         32
#define HARNESS_SOCKS_MAX        64
#define HARNESS_START_TIMEOUT_MS 10000
#define HARNESS_STOP_TIMEOUT_MS  10000
#define HARNESS_REPLY_TIMEOUT_MS 5000
#define HARNESS_Z85_LEN          40 /* a CURVE key in Z85, without the NUL */

extern const char *const harness_tallyd_bin;  /* the tallyd executable built */
extern const char *const harness_shared_data; /* .../shared/data */
extern const char *const harness_source_dir;  /* the project's source tree */

typedef struct harness {
    char dir[HARNESS_DIR_MAX];           /* private temporary directory */
    char req_endpoint[HARNESS_PATH_MAX]; /* ipc://DIR/req */
    char pub_endpoint[HARNESS_PATH_MAX]; /* ipc://DIR/pub */
    char state_dir[HARNESS_PATH_MAX];    /* DIR/state, kept across restarts */
    char log_path[HARNESS_PATH_MAX];     /* DIR/tallyd.log (stdout and stderr) */
    char config_path[HARNESS_PATH_MAX];  /* DIR/tallyd.conf, "" without config */
    char *extra[HARNESS_ARGS_MAX];       /* copies of the extra arguments */
    size_t nextra;
    pid_t pid;       /* the running daemon, 0 when none */
    int last_status; /* what the last harness_stop returned */
    void *zctx;
    pthread_mutex_t lock; /* guards socks */
    void *socks[HARNESS_SOCKS_MAX];
    char *log_text; /* owned; returned by harness_log */

    /* CURVE keys in Z85 ("" = plaintext), see harness_set_curve. */
    char curve_server[HARNESS_Z85_LEN + 1]; /* the daemon's public key */
    char curve_public[HARNESS_Z85_LEN + 1]; /* the client's pair */
    char curve_secret[HARNESS_Z85_LEN + 1];

    /* From the WELCOME of the last successful start. */
    uint64_t stream_id;
    uint64_t seq;
    uint32_t ncolumns;
    char columns[PROTO_COLUMNS_MAX][PROTO_COLUMN_NAME_MAX + 1];
    int64_t max_samples, max_msg, skew_ms, max_age_ms;
} harness_t;

/* ---- the daemon process ---------------------------------------------- */

/* The daemon the harness runs: $TALLY_TALLYD or harness_tallyd_bin. */
const char *harness_tallyd(void);

/* Prepare h: zero it, create the temporary directory (under $TMPDIR or
 * /tmp) and the ZeroMQ context.  harness_start calls it when needed; call
 * it yourself to use the directory before a start (harness_write_file).
 * Returns 0 or TALLY_ESYS.  Release with harness_cleanup(). */
int harness_init(harness_t *h);

/* Write text to DIR/name; the full path goes into path[0..len) when path
 * is not NULL.  Returns 0, TALLY_ETOOLONG or TALLY_EIO. */
int harness_write_file(harness_t *h, const char *name, const char *text, char *path, size_t len);

/* Start tallyd: when config_text is not NULL write it to DIR/tallyd.conf;
 * spawn harness_tallyd() -r ipc://DIR/req -p ipc://DIR/pub -s DIR/state
 * [-c DIR/tallyd.conf] followed by extra_args (NULL-terminated array, may
 * be NULL; copied), with stdout and stderr appended to DIR/tallyd.log; then
 * send HELLO until a WELCOME arrives.  The daemon is killed if the thread
 * that started it dies (so that a crashed test leaves no daemon behind:
 * start daemons from the main thread).  Returns 0; TALLY_ECLOSED if the daemon exited first,
 * TALLY_ETIMEDOUT after HARNESS_START_TIMEOUT_MS (the daemon is then
 * killed), TALLY_ESYS/TALLY_EINVAL on local failures.  On failure the
 * daemon's log is printed to stderr. */
int harness_start(harness_t *h, const char *config_text, const char *const *extra_args);

/* Send sig to the daemon and wait up to HARNESS_STOP_TIMEOUT_MS for it to
 * exit.  Returns its exit status (0..255), 128 + the signal number if a
 * signal ended it, or -1 if it did not exit in time (it is then killed
 * with SIGKILL).  Without a running daemon, returns the last status. */
int harness_stop(harness_t *h, int sig);

/* End of a test: stop a daemon still running with SIGTERM and check that
 * it exits with status 0 (under the sanitizers this also catches leaks and
 * memory errors found at exit).  Returns 0 when it did or no daemon was
 * running, else the status (see harness_stop), after printing the log. */
int harness_finish(harness_t *h);

/* Stop the daemon with SIGTERM (when running) and start it again with the
 * same configuration file and extra arguments, keeping the state
 * directory and appending to the log.  *stop_status (may be NULL) gets
 * harness_stop's result.  Returns as harness_start. */
int harness_restart(harness_t *h, int *stop_status);

/* True while the daemon process exists (reaps it when it has exited,
 * recording its status in last_status). */
bool harness_running(harness_t *h);

/* Kill a daemon still running, close every socket still registered,
 * terminate the context, remove the directory (unless TALLY_KEEP_TMP is
 * set) and free what h owns.  Safe on a zeroed or already cleaned h.
 * Clients and subscribers of h must not be used afterwards; close
 * subscribers before (harness_sub_close frees their tables). */
void harness_cleanup(harness_t *h);

/* The daemon's log as it is now (NUL-terminated, owned by h, valid until
 * the next harness_log or harness_cleanup); "" when unreadable. */
const char *harness_log(harness_t *h);

/* Wait until the log contains needle.  Returns 0 or TALLY_ETIMEDOUT. */
int harness_wait_log(harness_t *h, const char *needle, int timeout_ms);

/* How many times needle occurs in hay (a log, say), without overlaps. */
size_t harness_count_in(const char *hay, const char *needle);

/* Run tallyd with args (NULL-terminated, not including argv[0]) to
 * completion, for command-line tests: stdout and stderr together go into
 * out[0..cap) (NUL-terminated, truncated).  Returns the exit status as
 * harness_stop does, -1 on timeout (killed) or spawn failure. */
int harness_run(const char *const *args, char *out, size_t cap, int timeout_ms);

/* Wall-clock milliseconds since the epoch, and a monotonic clock in ms. */
int64_t harness_now_ms(void);
int64_t harness_mono_ms(void);

/* Read a whole file into a malloc'd NUL-terminated buffer (caller frees).
 * Returns NULL on failure. */
char *harness_read_file(const char *path);

/* ---- CURVE ------------------------------------------------------------ */

/* A new CURVE key pair, each key 40 characters of Z85 and a NUL.  Returns
 * 0 or TALLY_ESYS (libzmq without CURVE). */
int harness_curve_keypair(char pub[HARNESS_Z85_LEN + 1], char sec[HARNESS_Z85_LEN + 1]);

/* Write a ZeroMQ certificate (the format of `tally keygen`, read by
 * tallyd's keys.c) to DIR/name, creating missing directories under DIR
 * (mode 0700): a public one when sec is NULL (mode 0644), else a secret
 * one holding both keys (mode 0600).  The full path goes into path[0..len)
 * when path is not NULL.  Returns 0, TALLY_ETOOLONG or TALLY_EIO. */
int harness_write_cert(harness_t *h, const char *name, const char *pub, const char *sec, char *path,
                       size_t len);

/* Create the directory DIR/name and its missing parents (mode 0700); the
 * full path goes into path[0..len) when path is not NULL.  Returns 0,
 * TALLY_ETOOLONG or TALLY_EIO. */
int harness_mkdir(harness_t *h, const char *name, char *path, size_t len);

/* Keys for a daemon secured with CURVE: server_pub is its public key,
 * client_pub/client_sec the pair harness_start (its HELLO),
 * harness_client_open and harness_sub_open use from now on (Z85, 40
 * characters each).  server_pub NULL goes back to plaintext.  Call it after
 * harness_init (which clears the keys) and before harness_start.  Returns
 * 0 or TALLY_EINVAL (a key that is not 40 characters). */
int harness_set_curve(harness_t *h, const char *server_pub, const char *client_pub,
                      const char *client_sec);

/* ---- a request client ------------------------------------------------- */

typedef struct harness_client {
    harness_t *h;
    void *sock; /* DEALER connected to h->req_endpoint */
    uint8_t client_id[PROTO_CLIENT_ID_LEN];
    uint64_t next_req_id;
    uint64_t ignored; /* replies that did not belong to what was awaited */
} harness_client_t;

typedef struct harness_sample {
    const char *metric;
    int64_t value;
} harness_sample_t;

/* An ACK, or the ERROR that came instead. */
typedef struct harness_ack {
    uint32_t type; /* PROTO_ACK or PROTO_ERROR */
    uint64_t seq;  /* ACK: seq; ERROR: req_id */
    int status;    /* ACK: enum proto_ack_status; ERROR: -1 */
    int code;      /* wire code, positive; 0 for accepted/duplicate */
    int sample;    /* ACK: -1 or sample index; ERROR: -1 */
    char field[PROTO_FIELD_MAX + 1];
    char message[PROTO_MESSAGE_MAX + 1];
} harness_ack_t;

/* Open a DEALER to h's request endpoint with a random client_id, with the
 * keys of harness_set_curve if any.  Returns 0 or TALLY_ESYS.  Close with
 * harness_client_close (or harness_cleanup). */
int harness_client_open(harness_t *h, harness_client_t *c);

/* The same with these CURVE keys (Z85): server_pub NULL means plaintext
 * (whatever harness_set_curve said), else client_pub and client_sec are
 * the client's pair.  A key the daemon does not admit gives an open client
 * that never gets a reply.  Returns 0, TALLY_EINVAL (bad key) or
 * TALLY_ESYS. */
int harness_client_open_curve(harness_t *h, harness_client_t *c, const char *server_pub,
                              const char *client_pub, const char *client_sec);
void harness_client_close(harness_client_t *c);

/* Send SUBMIT(c->client_id, seq, township, time_ms, samples[0..n)) and wait
 * up to HARNESS_REPLY_TIMEOUT_MS for its ACK (or an ERROR with req_id 0,
 * which is what a SUBMIT gets when its seq could not be read), copied into
 * *ack.  Returns 0, TALLY_EINVAL if the codec refuses to encode it, or
 * TALLY_ETIMEDOUT. */
int harness_submit(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                   const harness_sample_t *samples, uint32_t n, harness_ack_t *ack);

/* The two halves of harness_submit, for pipelining.  harness_wait_ack
 * drops (and counts in c->ignored) replies other than the ACK of seq. */
int harness_send_submit(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                        const harness_sample_t *samples, uint32_t n);
int harness_wait_ack(harness_client_t *c, uint64_t seq, harness_ack_t *ack, int timeout_ms);

/* harness_submit of one sample. */
int harness_submit_one(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                       const char *metric, int64_t value, harness_ack_t *ack);

/* Describe a reply for a failure message ("ACK seq 3 rejected code 13
 * UNKNOWN_METRIC sample 1 field 'samples[1].metric': ...").  Returns buf. */
const char *harness_ack_str(const harness_ack_t *a, char *buf, size_t len);

/* Encode SUBMIT as harness_send_submit would, appending to out (for tests
 * that alter the bytes).  Returns 0 or TALLY_EINVAL. */
int harness_encode_submit(const harness_client_t *c, msgpack_sbuffer *out, uint64_t seq,
                          const char *township, int64_t time_ms, const harness_sample_t *samples,
                          uint32_t n);

/* Send arbitrary bytes as one frame, or several frames.  Returns 0 or
 * TALLY_EIO. */
int harness_send_raw(harness_client_t *c, const void *bytes, size_t len);
int harness_send_frames(harness_client_t *c, const void *const *bufs, const size_t *lens, size_t n);

/* Receive one message into buf[0..cap).  Returns its length (which may
 * exceed cap: the message was truncated), or TALLY_ETIMEDOUT. */
long harness_recv_raw(harness_client_t *c, void *buf, size_t cap, int timeout_ms);

/* Receive until an ACK or ERROR arrives (other replies are counted in
 * c->ignored).  Returns 0, TALLY_EMALFORMED if it does not decode, or
 * TALLY_ETIMEDOUT. */
int harness_recv_reply(harness_client_t *c, harness_ack_t *r, int timeout_ms);

/* Send PING; *seq (may be NULL) gets the PONG's seq.  Returns 0, the wire
 * code of an ERROR (negative), or TALLY_ETIMEDOUT. */
int harness_ping(harness_client_t *c, uint64_t *seq);

/* ---- tallies ----------------------------------------------------------- */

typedef struct harness_value {
    bool present; /* false: nil, "no value" */
    int64_t num;
    int64_t den; /* 1 for counters and gauges */
} harness_value_t;

/* One series as last seen: an owned copy of a proto_tally_t. */
typedef struct harness_row {
    char metric[PROTO_NAME_MAX + 1];
    char scope[PROTO_NAME_MAX + 1]; /* "" = county */
    int kind;                       /* enum proto_kind */
    uint64_t seq;
    int64_t time_ms;
    uint32_t ncols;
    char col[PROTO_COLUMNS_MAX][PROTO_COLUMN_NAME_MAX + 1];
    harness_value_t val[PROTO_COLUMNS_MAX];
} harness_row_t;

/* Tallies keyed by (metric, scope), plus the SNAPSHOT_END that completed a
 * snapshot into it. */
typedef struct harness_table {
    harness_row_t *rows;
    size_t n, cap;
    uint64_t stream_id, seq;
    uint32_t count;
} harness_table_t;

void harness_table_init(harness_table_t *t);
void harness_table_clear(harness_table_t *t); /* keeps the storage */
void harness_table_free(harness_table_t *t);

/* Copy tally into a row (out must not be NULL). */
void harness_row_from(harness_row_t *out, const proto_tally_t *tally);

/* Insert row, or replace the row of the same (metric, scope).  Returns 0 or
 * TALLY_ENOMEM. */
int harness_table_put(harness_table_t *t, const harness_row_t *row);

/* The row of (metric, scope) or NULL. */
const harness_row_t *harness_table_find(const harness_table_t *t, const char *metric,
                                        const char *scope);

/* Column `column` of (metric, scope) into *out.  Returns true when both the
 * row and the column exist (the value may still be nil: out->present). */
bool harness_table_get(const harness_table_t *t, const char *metric, const char *scope,
                       const char *column, harness_value_t *out);

/* True when a and b hold the same series with the same kinds, columns and
 * values (seq and time_ms are not compared).  Otherwise describes the first
 * difference in diff[0..len) (diff may be NULL). */
bool harness_table_equal(const harness_table_t *a, const harness_table_t *b, char *diff,
                         size_t len);

/* Take a snapshot of prefix ("" = all) into *out (cleared first), including
 * the SNAPSHOT_END's stream_id, seq and count; checks that count items
 * arrived.  Returns 0, the negative wire code of an ERROR reply,
 * TALLY_EMALFORMED (bad reply or wrong count) or TALLY_ETIMEDOUT. */
int harness_snapshot(harness_client_t *c, const char *prefix, harness_table_t *out);

/* The county's total of metric, from a snapshot of everything taken into
 * *t (a scratch table): -1 when the snapshot fails or the total is
 * absent or nil (the assertions compare it with counts >= 0). */
int64_t harness_county_total(harness_client_t *c, const char *metric, harness_table_t *t);

/* The value of one STATS counter, or -1 when it is absent or the STATS
 * request failed (explained on stderr). */
int64_t harness_stats(harness_client_t *c, const char *name);

/* ---- a subscriber (clone pattern) -------------------------------------- */

typedef struct harness_sub harness_sub_t;

typedef struct harness_event {
    uint32_t type;     /* PROTO_UPDATE, PROTO_HEARTBEAT, PROTO_GOODBYE or PROTO_PERIOD_CHANGED */
    const char *topic; /* the topic frame, NUL-terminated copy */
    const harness_row_t *row; /* UPDATE: the tally; else NULL */
    uint64_t stream_id;
    uint64_t seq;    /* UPDATE: tally seq; HEARTBEAT/GOODBYE: seq */
    int64_t mono_ms; /* when it was received (harness_mono_ms) */
    bool applied;    /* UPDATE: it changed the table */
    /* PERIOD_CHANGED: the series and its periods, comma-separated
     * ("2023-06-30,2023-06,2023-Q2,2023"); else NULL. */
    const char *metric, *scope, *periods;
} harness_event_t;

/* Called for every message the subscriber processes once it is synced
 * (after the snapshot), including buffered updates as they are applied. */
typedef void harness_event_fn(harness_sub_t *s, const harness_event_t *ev, void *ctx);

struct harness_sub {
    harness_t *h;
    void *sock;           /* SUB */
    harness_client_t cli; /* for the snapshot */
    char prefix[PROTO_PREFIX_MAX + 1];
    bool unfiltered; /* prefix "" or "u/": seq gaps are detectable */
    harness_table_t table;
    harness_event_fn *on_event;
    void *ctx;

    uint64_t stream_id;
    uint64_t snap_seq; /* S of the snapshot */
    uint64_t last_seq; /* unfiltered: S or the last applied update's seq */
    bool synced;

    /* What was seen since synced. */
    uint64_t updates;      /* UPDATEs received */
    uint64_t applied;      /* ... that changed the table */
    uint64_t gaps;         /* unfiltered: update seq != last + 1, heartbeat seq > last */
    uint64_t bad_messages; /* undecodable, wrong frame count, topic not matching tally */
    uint64_t other_stream; /* messages of another stream_id */
    uint64_t heartbeats;
    uint64_t hb_seq; /* of the last heartbeat */
    bool goodbye;
    uint64_t goodbye_seq;
    uint64_t period_changes; /* PERIOD_CHANGED received (of this stream) */

    harness_row_t *pending; /* updates buffered before the snapshot */
    size_t npending, cappending;
};

/* Join: SUB connected to h's publish endpoint, subscribe prefix then "h",
 * wait for the first heartbeat (buffering updates), snapshot prefix through
 * an own DEALER, apply the buffered updates newer than the snapshot.
 * on_event (may be NULL) sees every later message.  Returns 0,
 * TALLY_ETIMEDOUT (no heartbeat within 3 s, or no snapshot) or another
 * harness error.  Close with harness_sub_close (or harness_cleanup). */
int harness_sub_open(harness_t *h, harness_sub_t *s, const char *prefix, harness_event_fn *on_event,
                     void *ctx);

/* harness_sub_open with these CURVE keys (as harness_client_open_curve)
 * for both its SUB and its snapshot DEALER. */
int harness_sub_open_curve(harness_t *h, harness_sub_t *s, const char *prefix,
                           harness_event_fn *on_event, void *ctx, const char *server_pub,
                           const char *client_pub, const char *client_sec);
void harness_sub_close(harness_sub_t *s);

/* Process messages for up to timeout_ms, returning after the first batch
 * (all that are queued once one arrived).  Returns the number processed
 * (0 on timeout). */
int harness_sub_poll(harness_sub_t *s, int timeout_ms);

/* Process messages until cond(s, ctx) is true (checked first, then after
 * every batch).  Returns 0 or TALLY_ETIMEDOUT. */
int harness_sub_until(harness_sub_t *s, bool (*cond)(harness_sub_t *s, void *ctx), void *ctx,
                      int timeout_ms);

/* Wait until the stream is quiet: for an unfiltered subscriber, a
 * heartbeat received after this call whose seq equals last_seq; for a
 * filtered one, two consecutive heartbeats with the same seq.  Returns 0 or
 * TALLY_ETIMEDOUT. */
int harness_sub_wait_stable(harness_sub_t *s, int timeout_ms);

#endif
