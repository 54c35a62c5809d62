/* client_impl.h - libtally (client/lib/): the publisher's internals,
 * shared by client.c (API, batches), client_state.c (identity, spool
 * loading), client_expiry.c (the client-id expiry rule) and client_wire.c
 * (HELLO, sending, acknowledgements).  Private to the library. */
#ifndef TALLY_CLIENT_IMPL_H
#define TALLY_CLIENT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack/sbuffer.h>

#include "monitor.h"
#include "proto.h"
#include "spool.h"
#include "tally.h"

#define CLIENT_ERR_MAX 1024
/* Closing a batch before its encoded body could pass this size keeps every
 * submission under the protocol's default 64 KiB message limit. */
#define CLIENT_BODY_LIMIT (PROTO_MSG_MAX_DEFAULT - 256)

/* One submission waiting for its acknowledgement.  The body is the exact
 * SUBMIT bytes, so every resend is byte-identical. */
typedef struct client_pending {
    struct client_pending *next, *prev;
    uint64_t seq;
    uint8_t *body;
    size_t len;
    uint32_t nsamples;
    int64_t due_ms;      /* monotonic time of the next (re)send; 0 = now */
    uint32_t backoff_ms; /* the delay after the next send */
    uint32_t sends;
    bool earlier; /* an earlier run left it in the spool (client_state_open) */
} client_pending_t;

/* A submission's figures decoded for the application (tally_unknown_t,
 * tally_rejected_t); large, so malloc'ed. */
typedef struct client_figures {
    proto_msg_t msg;
    proto_sample_t samples[PROTO_SAMPLES_MAX];
    tally_sample_t out[PROTO_SAMPLES_MAX]; /* nsamples of them, pointing into names */
    char names[PROTO_SAMPLES_MAX][PROTO_NAME_MAX + 1];
    char township[PROTO_NAME_MAX + 1];
    int64_t time_ms;
    uint32_t nsamples;
} client_figures_t;

struct tally_client {
    void *zctx;
    bool own_ctx;
    void *dealer;
    monitor_t mon; /* what the dealer's connection showed */
    char endpoint[TALLY_ENDPOINT_MAX];
    char township[PROTO_NAME_MAX + 1];

    unsigned max_in_flight;
    unsigned backoff_initial_ms;
    unsigned backoff_max_ms;
    unsigned batch_limit;
    tally_reject_cb on_reject;
    tally_ack_cb on_ack;
    void *cb_ctx;

    tally_unknown_cb on_unknown;

    /* The identity and what was learned about the daemon, kept together in
     * one state file (client_state.c): SPOOL/client.state with a spool,
     * the state_file option without. */
    uint8_t id[PROTO_CLIENT_ID_LEN];
    uint64_t next_seq;
    int64_t acked_ms;       /* wall clock: the last ACK under id, or id's creation */
    int64_t saved_acked_ms; /* acked_ms as the state file has it */
    int64_t expiry_ms;      /* the daemon's client_expiry_ms last learned; -1: none */
    int64_t max_samples;    /* WELCOME limits last learned; -1: none */
    int64_t max_msg;
    spool_t *spool;    /* NULL without a spool dir */
    char *state_dir;   /* the state file's directory (the spool's with one) */
    char *state_name;  /* ... and its name in it; NULL: nothing is persisted */
    int state_dirfd;   /* -1 when unused */
    int state_lockfd;  /* without a spool: flock()ed "<state>.lock"; else -1 */
    bool state_loaded; /* client_state_open succeeded: the file may be written */

    /* HELLO/WELCOME: nothing is submitted before the daemon has said its
     * limits and client_expiry_ms (or refused to). */
    bool welcomed;
    bool hello_wanted;  /* tally_client_hello() waits for WELCOME */
    uint64_t hello_req; /* the last HELLO's req_id; 0: none sent yet */
    int64_t hello_due_ms;
    uint32_t hello_backoff_ms;

    /* The open batch: samples point into names (one slot per sample). */
    int64_t batch_time;
    bool batch_now; /* batch_time was taken from the clock (time_ms 0) */
    uint32_t batch_n;
    size_t batch_bytes;
    proto_sample_t *samples;
    char *names;
    msgpack_sbuffer sbuf;

    client_pending_t *head, *tail;
    size_t npending;
    size_t pending_samples;
    bool blocked; /* the last send attempt met a full or absent connection */
    /* The daemon's last refusal for now (a retryable code) of a pending
     * submission: retry_code 0 once that submission is settled. */
    int retry_code;
    uint64_t retry_seq;
    char retry_msg[PROTO_FIELD_MAX + PROTO_MESSAGE_MAX + 3];
    /* During on_reject: the rejected submission an earlier run left in the
     * spool, set aside (tally_client_rejected_earlier); NULL otherwise. */
    const tally_rejected_t *rejected;
    bool in_cb;  /* one of the application's callbacks is running */
    bool doomed; /* destroyed from within a callback: freed once the call
                    that ran it returns, and no callback runs before */
    uint64_t rng;
    char err[CLIENT_ERR_MAX];
};

/* Set c->err from a format. */
void client_seterr(tally_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Load or create the identity: with a spool, the state and the spooled
 * submissions (queued on c); with a state file, the state; otherwise a
 * fresh random id.  Waits up to lock_timeout_ms for the lock.  err gets
 * the reason on failure.  Returns 0, TALLY_EMALFORMED, TALLY_EIO,
 * TALLY_EEXIST, TALLY_ENOMEM or TALLY_ESYS. */
int client_state_open(tally_client_t *c, const char *spool_dir, const char *state_file,
                      unsigned lock_timeout_ms, char *err, size_t errlen);

/* Release what client_state_open acquired. */
void client_state_close(tally_client_t *c);

/* Persist the state with next_seq as the next sequence number (no-op
 * without a spool or state file).  0 or TALLY_EIO (reason in c->err). */
int client_state_save(tally_client_t *c, uint64_t next_seq);

/* An ACK (accepted or duplicate) arrived at wall-clock time now: note it,
 * and persist it now and then (an older time on disk only makes the
 * expiry rule act sooner). */
void client_state_acked(tally_client_t *c, int64_t now);

/* The expiry rule (PROTOCOL.md 14.3), before anything is sent or encoded
 * under c->id: when more than client_expiry_ms minus an hour has passed
 * since c->acked_ms, take a new client id at seq 1 and set every pending
 * submission aside as of unknown fate (moved to SPOOL/unknown/, reported
 * through on_unknown, never resent).  now is the wall clock.  Returns 0;
 * TALLY_EIO (a file could not be moved or the new state not written:
 * c->err says which; what was moved stays moved); TALLY_ENOMEM;
 * TALLY_ESYS. */
int client_expiry_check(tally_client_t *c, int64_t now);

/* Decode body (a SUBMIT) into f.  false when it does not (every queued
 * body was encoded here or checked when the spool was loaded, so it
 * should): then f says a township "" and no samples. */
bool client_figures_decode(client_figures_t *f, const uint8_t *body, size_t len);

/* Unlink p from the queue (not from the spool) and free it. */
void client_queue_drop(tally_client_t *c, client_pending_t *p);

/* The most samples, and the most bytes of encoded body, one submission may
 * have: the options' and the protocol's, lowered by what the daemon said
 * in WELCOME. */
uint32_t client_limit_samples(const tally_client_t *c);
size_t client_limit_bytes(const tally_client_t *c);

/* Append a pending submission (takes ownership of body). */
void client_queue_append(tally_client_t *c, client_pending_t *p);

/* Say HELLO when due, and once welcomed send what is due and allowed by
 * the in-flight window.  0 or TALLY_ESYS. */
int client_wire_pump(tally_client_t *c, int64_t now);

/* Read and handle every waiting reply.  0 or TALLY_ESYS. */
int client_wire_drain(tally_client_t *c);

/* Drop the connection and make a new one: answers still on their way to
 * the old one are lost with it.  0 or TALLY_ESYS. */
int client_wire_reconnect(tally_client_t *c);

/* Milliseconds until the next timer (see tally_client_next_timeout_ms). */
int client_wire_next_timeout(const tally_client_t *c, int64_t now);

/* A jittered delay in [backoff/2, backoff]. */
uint32_t client_jitter(tally_client_t *c, uint32_t backoff);

#endif
