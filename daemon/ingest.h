/* ingest.h - submissions in: authorize, de-duplicate, validate, journal,
 * apply, acknowledge.
 *
 * For every SUBMIT the daemon sends exactly one ACK: accepted, duplicate
 * (applied before, not applied again) or rejected with the wire code, the
 * field, the sample and a sentence naming the value and the limit.  An
 * accepted submission is journaled at once and applied to the tallies,
 * and acknowledged, only when its journal record is durable
 * (ingest_on_durable): nothing a crash could take back is ever counted.
 *
 * Ingest is handed, when it is created, the state it changes (the engine,
 * the name tables, the de-duplication table, the rate limiter), how to
 * append to the journal, where replies go and how to ask the daemon to
 * stop.  It calls nothing above it: the wiring (tallyd_start.c) connects
 * the journal's durability reports to ingest_on_durable(), and unit tests
 * drive it with a journal and a reply sink of their own.
 *
 * De-duplication key: without CURVE the client id itself.  With CURVE the
 * first 16 bytes of SHA-256("tally-dedup-1", township, client id), so that
 * one identity cannot use another's client id to make the daemon answer
 * the other's real submissions DUPLICATE (PROTOCOL.md 19); since the
 * township in an accepted SUBMIT is its key's township, journal replay
 * derives the same key from the record alone.  A secured daemon also
 * answers DUPLICATE for a (client id, seq) recorded under the plain client
 * id, so turning CURVE on never applies a resend twice.
 */
#ifndef TALLYD_INGEST_H
#define TALLYD_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "ackq.h"
#include "catalog.h"
#include "clock.h"
#include "config.h"
#include "dedup.h"
#include "engine.h"
#include "intern.h"
#include "keys.h"
#include "log.h"
#include "pending.h"
#include "proto.h"
#include "ratelimit.h"
#include "sink.h"
#include "stats.h"

/* How ingest appends to the journal.  append copies rec[0..len) into the
 * journal and stores the record's position in *pos; it returns 0,
 * TALLY_EBUSY (the journal is behind the disk: retry later) or another
 * negative code (the journal cannot be written; error() then says why in
 * a sentence, or returns ""). */
typedef struct ingest_journal {
    int (*append)(void *ctx, const void *rec, size_t len, uint64_t *pos);
    const char *(*error)(void *ctx);
    void *ctx;
} ingest_journal_t;

/* The settings ingest reads, from the configuration; replaced as a whole
 * by ingest_set_limits() when the configuration is reloaded. */
typedef struct ingest_limits {
    bool closed_townships; /* only townships already named are accepted */
    bool closed_metrics;   /* likewise metrics */
    int64_t max_townships, max_metrics, max_series, max_clients;
    uint32_t catalog_metric_names; /* names the catalog declares: max_metrics comes on top */
    int64_t skew_ms;               /* accepted lead of event time over now */
    int64_t max_age_ms;            /* accepted lag of event time behind now */
    int64_t client_expiry_ms;      /* a client id idle this long is forgotten; 0: never */
} ingest_limits_t;

/* The limits a configuration sets. */
ingest_limits_t ingest_limits_from(const tallyd_config_t *cfg);

typedef struct ingest_config {
    /* The state ingest changes; owned by the creator, outliving ingest. */
    engine_t *engine;
    intern_t *towns;
    intern_t *metrics;
    dedup_t *dedup;
    ratelimit_t *rl; /* a limiter with rate 0 limits nothing */
    ingest_journal_t journal;
    sink_t reply;                           /* ACKs: head is the peer's routing id */
    void (*stop)(void *ctx, int exit_code); /* the daemon cannot go on */
    void *stop_ctx;
    tallyd_stats_t *stats;
    logger_t *log;
    const tclock_t *clock; /* event times are checked against it */
    bool secured;          /* CURVE: submissions need a township key */
    ingest_limits_t limits;
    /* Optional: told of every record the moment it is applied to the
     * engine (live, or replayed), with its journal position; history keeps
     * the closed periods with it.  A non-zero return stops the daemon (a
     * restart replays the record). */
    int (*on_applied)(void *ctx, uint64_t pos, uint32_t town, int64_t time_ms,
                      const engine_sample_t *samples, uint32_t n);
    /* Optional: on_applied's engine_prefetch() (engine.h), stages 0 and
     * 1, called for records a few places ahead of the one applied. */
    void (*prefetch)(void *ctx, uint32_t town, int64_t time_ms, const engine_sample_t *samples,
                     uint32_t n, int stage);
    void *applied_ctx;
} ingest_config_t;

/* The part; embed it, its fields are private. */
typedef struct ingest {
    ingest_config_t c;
    ackq_t acks;          /* ACKs waiting for the journal */
    pending_t pending;    /* submissions journaled, applied once durable */
    uint64_t last_pos;    /* position of the last record appended */
    uint64_t durable_pos; /* everything up to here is durable */
    uint64_t applied_pos; /* ... and applied */
    uint64_t barrier_pos; /* ingest_at_applied() */
    void (*barrier_fn)(void *ctx);
    void *barrier_ctx;
    bool stopping;
    engine_sample_t *esamples; /* one submission's samples by id */
    proto_sample_t *replay_samples;
    msgpack_sbuffer out;    /* the ACK being encoded */
    uint32_t expiry_cursor; /* where the sweep of idle client ids goes on */
    /* The range of a sample's value, by metric id (declared metrics; an
     * undeclared counter takes 0..CONFIG_SAMPLE_LIMIT, 10^12). */
    struct ingest_bounds {
        int64_t min, max;
        uint8_t scale; /* the metric's decimal places, for messages */
        bool set;
    } * bounds;
    uint32_t nbounds;
    /* The catalog's townships by display name and its metrics and ratios
     * by label (ingest_set_catalog): a name that is not an id but one of
     * these is refused, naming the id, also in an open catalog; an
     * office's own sheet names its figures by their labels, and counting
     * them under the label would split a series in two.  Hashed, as a
     * flood of unknown names against a country's catalog must not cost a
     * pass over 40,000 townships each. */
    struct ingest_names {
        intern_t text;                  /* names or labels; empty: no table */
        char (*id)[PROTO_NAME_MAX + 1]; /* by text's id - 1 */
        bool *ratio;                    /* labels: a ratio's */
        bool ready;
    } towns_by_name, metrics_by_label;
    /* The names the catalog declares (ingest_set_catalog): in a closed
     * catalog a name the name tables hold only because the state does (a
     * township or metric dropped from the file, with its tallies) is
     * refused as an unknown one. */
    catalog_declared_t declared;
} ingest_t;

/* The id whose catalog name (township) or label (metric or ratio) name
 * is, else NULL: for messages of other requests that take ids. */
const char *ingest_named(const ingest_t *in, proto_str_t name, bool township);

/* Set in up from c (copied; the pointers in it are borrowed).  Returns 0
 * or TALLY_ENOMEM (nothing to free then). */
int ingest_init(ingest_t *in, const ingest_config_t *c);

/* Free what ingest_init() allocated; ACKs still waiting are dropped. */
void ingest_free(ingest_t *in);

/* Use l from the next submission on. */
void ingest_set_limits(ingest_t *in, const ingest_limits_t *l);

/* Accept for metric (an id of the metric name table) only samples whose
 * value lies in min..max, from the next submission on (the catalog's
 * [metric] min, max and negative; config_metric_bounds()); a refusal
 * shows the values with the metric's scale too.  Returns 0 or
 * TALLY_ENOMEM. */
int ingest_set_bounds(ingest_t *in, uint32_t metric, int64_t min, int64_t max, int scale);

/* The catalog of cfg, from the next submission on: ingest_set_bounds()
 * for every metric cfg declares (looked up in the metric name table, where
 * the catalog is declared already), its townships' display names and its
 * metrics' and ratios' labels (copied), and which names it declares: in a
 * closed catalog a township or metric it does not declare is refused
 * (UNKNOWN_TOWNSHIP, UNKNOWN_METRIC) though the name tables hold it with
 * its tallies.  Returns 0 or TALLY_ENOMEM (the names and labels in force
 * stay). */
int ingest_set_catalog(ingest_t *in, const tallyd_config_t *cfg);

/* After start-up recovery: every journal position up to last_pos is
 * durable already, and the next append gets a higher one. */
void ingest_set_position(ingest_t *in, uint64_t last_pos);

/* The position of the last record appended (0: none yet). */
static inline uint64_t ingest_last_pos(const ingest_t *in)
{
    return in->last_pos;
}

/* Number of ACKs waiting for the journal. */
static inline uint32_t ingest_waiting(const ingest_t *in)
{
    return ackq_count(&in->acks);
}

/* From now on reject every SUBMIT as UNAVAILABLE (retryable): the daemon
 * is stopping.  ACKs already waiting still go out when durable. */
void ingest_stop_accepting(ingest_t *in);

/* Time passes (call it every second or so): forget client ids idle for
 * longer than limits.client_expiry_ms, a bounded part of the table per
 * call.  Returns how many were forgotten (counted and logged). */
uint32_t ingest_tick(ingest_t *in, int64_t now_ms);

/* Handle a decoded SUBMIT from the peer rid[0..rid_len).  body[0..len) is
 * the frame it was decoded from (journaled as it is); the message's string
 * views point into it, valid during the call.  who is the identity the
 * connection authenticated as (keys.h; not owned, valid during the call),
 * or NULL in a daemon without CURVE.  In a secured daemon a submission is
 * accepted only when who is a township key of exactly s->township; any
 * other is rejected FORBIDDEN before de-duplication (PROTOCOL.md 11.2).
 * Exactly one ACK is sent through the reply sink, now (rejected) or once
 * the journal is durable up to the record (accepted, duplicate). */
void ingest_submit(ingest_t *in, const void *rid, size_t rid_len, const void *body, size_t len,
                   const proto_submit_t *s, const keyring_identity_t *who);

/* Reject a SUBMIT that failed to decode; err says why, seq >= 1: ACK
 * REJECTED, counted and logged, without looking at de-duplication. */
void ingest_reject_decode(ingest_t *in, const void *rid, size_t rid_len, uint64_t seq,
                          const proto_error_t *err);

/* Refuse a SUBMIT that failed to decode, or was too large to be decoded
 * whole (proto_decode_head); err says why.  s holds what could be read of
 * it (not owned, valid during the call): its client_id and seq (>= 1), and
 * its township when that was read.  De-duplication comes before the
 * refusal (PROTOCOL.md 11.2): when who may submit for s->township (always
 * in a daemon without CURVE) and (client id, seq) was applied before, or
 * is journaled and waiting, it is answered DUPLICATE as ingest_submit()
 * answers a resend, once the journal is durable; a resend of what was
 * applied before a reload lowered max_samples or max_msg is never told
 * it was rejected; a seq below the window is STALE_SEQUENCE (whether it
 * was applied cannot be told).  Otherwise as ingest_reject_decode(). */
void ingest_refuse(ingest_t *in, const void *rid, size_t rid_len, const proto_submit_t *s,
                   const keyring_identity_t *who, const proto_error_t *err);

/* Reject the SUBMIT with seq (>= 1) from a connection whose User-Id (may
 * be NULL) the keyring no longer admits, a key revoked by a reload: ACK
 * FORBIDDEN, counted and logged. */
void ingest_forbid_unknown(ingest_t *in, const void *rid, size_t rid_len, uint64_t seq,
                           const char *user_id);

/* The journal reports every record up to upto durable: apply the
 * submissions that waited for it, in journal order, then send their ACKs. */
void ingest_on_durable(ingest_t *in, uint64_t upto);

/* Call fn(ctx) once, at the moment the tallies hold exactly the records up
 * to journal position pos and none after it: at once when that is so
 * already (nothing after pos appended), else from ingest_on_durable().
 * For checkpoints: the state then reflects the records below pos + 1.  A
 * new call replaces one not yet made; fn NULL cancels it. */
void ingest_at_applied(ingest_t *in, uint64_t pos, void (*fn)(void *ctx), void *ctx);

/* Number of submissions journaled and not yet applied. */
static inline size_t ingest_pending_count(const ingest_t *in)
{
    return pending_count(&in->pending);
}

/* Call fn for each submission journaled and not yet applied, oldest
 * first (their de-duplication marks are in the table already). */
void ingest_pending_foreach(const ingest_t *in, void (*fn)(const pending_entry_t *e, void *ctx),
                            void *ctx);

/* Apply one journal record (a SUBMIT body accepted earlier) at start-up,
 * decoding it once, without the catalog and time checks of live ingest:
 * what was accepted once is applied even if the catalog changed since.
 * Records the checkpoint covers already are recognised by de-duplication
 * and skipped.  Returns 0, or a negative code with a sentence in
 * why[0..whylen) saying what was wrong (not a submission, a limit that no
 * longer holds it, out of memory): the state may then hold part of the
 * record, and the start must not go on. */
int ingest_replay(ingest_t *in, const void *body, size_t len, char *why, size_t whylen);

/* ingest_replay() of the record at journal position pos, handed to
 * on_applied too.  With only_hook set the record is older than the
 * checkpoint: the engine and de-duplication hold it already, and it goes
 * to on_applied only (history rebuilding what its database lacks). */
int ingest_replay_at(ingest_t *in, uint64_t pos, bool only_hook, const void *body, size_t len,
                     char *why, size_t whylen);

#endif
