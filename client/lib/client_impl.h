/* client_impl.h - libtally (client/lib/): the publisher's internals,
 * shared by client.c (API, batches), client_state.c (identity, spool
 * loading) and client_wire.c (sending, acknowledgements).  Private to
 * the library. */
#ifndef TALLY_CLIENT_IMPL_H
#define TALLY_CLIENT_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack/sbuffer.h>

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
} client_pending_t;

struct tally_client {
    void *zctx;
    bool own_ctx;
    void *dealer;
    char endpoint[TALLY_ENDPOINT_MAX];
    char township[PROTO_NAME_MAX + 1];

    unsigned max_in_flight;
    unsigned backoff_initial_ms;
    unsigned backoff_max_ms;
    unsigned batch_limit;
    tally_reject_cb on_reject;
    tally_ack_cb on_ack;
    void *cb_ctx;

    uint8_t id[PROTO_CLIENT_ID_LEN];
    uint64_t next_seq;
    spool_t *spool;   /* NULL without a spool dir */
    char *state_dir;  /* without a spool: the state file's directory */
    char *state_name; /* ... and its name in it; NULL without a state file */
    int state_dirfd;  /* -1 when unused */
    int state_lockfd; /* flock()ed "<state>.lock"; -1 when unused */

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
    uint64_t rng;
    char err[CLIENT_ERR_MAX];
};

/* Set c->err from a format. */
void client_seterr(tally_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Load or create the identity: with a spool (c->spool set by the caller),
 * client id, next seq and the spooled submissions (queued on c); with a
 * state file, id and next seq; otherwise a fresh random id.  err gets the
 * reason on failure.  Returns 0, TALLY_EMALFORMED, TALLY_EIO, TALLY_EEXIST,
 * TALLY_ENOMEM or TALLY_ESYS. */
int client_state_open(tally_client_t *c, const char *spool_dir, const char *state_file, char *err,
                      size_t errlen);

/* Release what client_state_open acquired. */
void client_state_close(tally_client_t *c);

/* Persist next_seq (spool or state file; no-op without either).
 * 0 or TALLY_EIO (reason in c->err). */
int client_state_save_seq(tally_client_t *c, uint64_t next_seq);

/* Append a pending submission (takes ownership of body). */
void client_queue_append(tally_client_t *c, client_pending_t *p);

/* Send what is due and allowed by the in-flight window.  0 or TALLY_ESYS. */
int client_wire_pump(tally_client_t *c, int64_t now);

/* Read and handle every waiting reply.  0 or TALLY_ESYS. */
int client_wire_drain(tally_client_t *c);

/* Milliseconds until the next timer (see tally_client_next_timeout_ms). */
int client_wire_next_timeout(const tally_client_t *c, int64_t now);

/* A jittered delay in [backoff/2, backoff]. */
uint32_t client_jitter(tally_client_t *c, uint32_t backoff);

#endif
