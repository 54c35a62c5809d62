/* ingest.c - a decoded SUBMIT is authorized (the key's township, then the
 * catalog), de-duplicated by (client id, seq), checked against the time
 * rules and limits, rate limited per township (those checks are
 * ingest_check.c's), journaled, applied atomically and acknowledged once
 * the journal has it (see ingest.h). */
#include "ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "catalog.h"
#include "ingest_check.h"
#include "vec.h"

ingest_limits_t ingest_limits_from(const tallyd_config_t *c)
{
    return (ingest_limits_t){
        .closed_townships = c->catalog_closed_townships,
        .closed_metrics = c->catalog_closed_metrics,
        .max_townships = c->max_townships,
        .max_metrics = c->max_metrics,
        .catalog_metric_names = (uint32_t)catalog_metric_names(c),
        .max_series = c->max_series,
        .max_clients = c->max_clients,
        .skew_ms = c->skew_ms,
        .max_age_ms = c->max_age_ms,
        .client_expiry_ms = c->client_expiry_ms,
    };
}

int ingest_init(ingest_t *in, const ingest_config_t *c)
{
    memset(in, 0, sizeof(*in));
    in->c = *c;
    msgpack_sbuffer_init(&in->out);
    /* libsodium picks its SHA-256 implementation here; safe to repeat. */
    if (sodium_init() < 0)
        return TALLY_ESYS;
    ackq_init(&in->acks);
    pending_init(&in->pending);
    /* Replay decodes with the protocol's maximum: the limit may have been
     * lowered since a record was accepted. */
    in->esamples = calloc(PROTO_SAMPLES_MAX, sizeof(*in->esamples));
    in->replay_samples = calloc(PROTO_SAMPLES_MAX, sizeof(*in->replay_samples));
    if (!in->esamples || !in->replay_samples) {
        ingest_free(in);
        return TALLY_ENOMEM;
    }
    return 0;
}

void ingest_free(ingest_t *in)
{
    ingest_check_free(in);
    free(in->bounds);
    in->bounds = NULL;
    in->nbounds = 0;
    free(in->esamples);
    free(in->replay_samples);
    in->esamples = NULL;
    in->replay_samples = NULL;
    ackq_free(&in->acks);
    pending_free(&in->pending);
    msgpack_sbuffer_destroy(&in->out);
    msgpack_sbuffer_init(&in->out);
}

void ingest_set_limits(ingest_t *in, const ingest_limits_t *l)
{
    in->c.limits = *l;
}

int ingest_set_bounds(ingest_t *in, uint32_t metric, int64_t min, int64_t max, int scale)
{
    if (metric >= in->nbounds) {
        size_t cap = in->nbounds;
        if (vec_reserve(&in->bounds, &cap, (size_t)metric + 1, sizeof(*in->bounds)) != 0)
            return TALLY_ENOMEM;
        memset(in->bounds + in->nbounds, 0, (cap - in->nbounds) * sizeof(*in->bounds));
        in->nbounds = (uint32_t)cap;
    }
    in->bounds[metric] = (struct ingest_bounds){min, max, (uint8_t)scale, true};
    return 0;
}

void ingest_set_position(ingest_t *in, uint64_t last_pos)
{
    in->last_pos = in->durable_pos = in->applied_pos = last_pos;
}

void ingest_stop_accepting(ingest_t *in)
{
    in->stopping = true;
}

/* ---- the de-duplication key (see ingest.h) ---- */

#define DEDUP_TAG "tally-dedup-1"

static void dedup_key(const ingest_t *in, const proto_submit_t *s, uint8_t key[PROTO_CLIENT_ID_LEN])
{
    if (!in->c.secured) {
        memcpy(key, s->client_id, PROTO_CLIENT_ID_LEN);
        return;
    }
    /* tag, NUL, township length, township, client id: unambiguous. */
    uint8_t msg[sizeof(DEDUP_TAG) + 1 + PROTO_NAME_MAX + PROTO_CLIENT_ID_LEN];
    size_t n = 0;
    memcpy(msg, DEDUP_TAG, sizeof(DEDUP_TAG));
    n += sizeof(DEDUP_TAG);
    size_t tl = s->township.len <= PROTO_NAME_MAX ? s->township.len : PROTO_NAME_MAX;
    msg[n++] = (uint8_t)tl;
    memcpy(msg + n, s->township.ptr, tl);
    n += tl;
    memcpy(msg + n, s->client_id, PROTO_CLIENT_ID_LEN);
    n += PROTO_CLIENT_ID_LEN;
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, msg, n);
    memcpy(key, digest, PROTO_CLIENT_ID_LEN);
}

/* dedup_check() under the key of s; in a secured daemon a submission
 * recorded under its plain client id (before CURVE was turned on) is a
 * duplicate too.  Nothing but TALLY_EEXIST is taken from that second
 * look: new submissions are recorded under the derived key only. */
static int dedup_lookup(const ingest_t *in, const proto_submit_t *s,
                        uint8_t key[PROTO_CLIENT_ID_LEN])
{
    dedup_key(in, s, key);
    int rc = dedup_check(in->c.dedup, key, s->seq);
    if (rc != TALLY_EEXIST && in->c.secured &&
        dedup_check(in->c.dedup, s->client_id, s->seq) == TALLY_EEXIST)
        return TALLY_EEXIST;
    return rc;
}

/* ---- replies ---- */

static void send_ack(ingest_t *in, const void *rid, size_t rid_len, uint64_t seq, int status,
                     int code, int sample, const char *field, const char *message)
{
    /* Only the ACK member is set: zeroing the whole union (10 KB, the
     * largest message) on every acknowledgement cost more than the rest
     * of sending it. */
    proto_msg_t m;
    m.version = 0;
    m.type = PROTO_ACK;
    m.u.ack = (proto_ack_t){.seq = seq,
                            .status = (uint8_t)status,
                            .code = (uint32_t)(code < 0 ? -code : code),
                            .sample = sample,
                            .field = proto_str(field),
                            .message = proto_str(message)};
    msgpack_sbuffer_clear(&in->out);
    if (proto_encode(&in->out, &m) != 0) {
        log_error(in->c.log, "cannot encode the ACK of seq %" PRIu64, seq);
        return;
    }
    int rc = sink_send(&in->c.reply, rid, rid_len, in->out.data, in->out.size);
    if (rc != 0) {
        /* The peer left, or is not reading its replies: it will resend
         * what it has no ACK for, and de-duplication keeps that exact.
         * The line says so in those terms; a client that timed out and
         * resent on a new connection leaves one such ACK per attempt, all
         * due at once when the journal catches up, and log_limited()
         * counts identical lines instead of repeating them. */
        in->c.stats->unroutable_replies++;
        const char *why = rc == TALLY_ENOTFOUND
                              ? "the client that sent it disconnected before its ACK"
                          : rc == TALLY_EAGAIN ? "the client that sent it is not reading its "
                                                 "replies ([limits] max_reply_queue is full)"
                                               : tally_strerror(rc);
        if (status == PROTO_ACK_REJECTED)
            log_limited(in->c.log, clock_mono_ms(), LOG_LEVEL_INFO,
                        "ACK of seq %" PRIu64 " not delivered: %s; the submission was refused "
                        "(%s) and nothing of it counted, and a resend is checked anew",
                        seq, why, tally_errname(code));
        else
            log_limited(in->c.log, clock_mono_ms(), LOG_LEVEL_INFO,
                        "ACK of seq %" PRIu64 " not delivered: %s; the submission is counted, "
                        "and a resend will be answered DUPLICATE",
                        seq, why);
    }
}

static bool debugging(const ingest_t *in)
{
    return in->c.log->level >= LOG_LEVEL_DEBUG;
}

/* The client id as 32 hex digits, for debug lines. */
static const char *client_hex(const uint8_t id[PROTO_CLIENT_ID_LEN], char out[33])
{
    for (int i = 0; i < PROTO_CLIENT_ID_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
    return out;
}

/* Count, log and answer one rejection: every one at debug level, else
 * rate limited, so a misbehaving client cannot flood the log. */
static void reject(ingest_t *in, const void *rid, size_t rid_len, const proto_submit_t *s, int code,
                   int sample, const char *field, const char *message)
{
    stats_reject(in->c.stats, code);
    char hex[33];
    if (debugging(in))
        log_debug(in->c.log,
                  "rejected client %s seq %" PRIu64 " township '%.*s', %u samples: %s (%s)",
                  client_hex(s->client_id, hex), s->seq, (int)s->township.len, s->township.ptr,
                  s->nsamples, message, tally_errname(code));
    else
        log_limited(in->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                    "rejected submission seq %" PRIu64 " of township '%.*s': %s (%s)", s->seq,
                    (int)s->township.len, s->township.ptr, message, tally_errname(code));
    send_ack(in, rid, rid_len, s->seq, PROTO_ACK_REJECTED, code, sample, field, message);
}

void ingest_forbid_unknown(ingest_t *in, const void *rid, size_t rid_len, uint64_t seq,
                           const char *user_id)
{
    stats_reject(in->c.stats, TALLY_EFORBIDDEN);
    log_limited(in->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                "refused submission seq %" PRIu64 " from '%s': the key is no longer admitted", seq,
                user_id ? user_id : "?");
    send_ack(in, rid, rid_len, seq, PROTO_ACK_REJECTED, TALLY_EFORBIDDEN, -1, "",
             "this key is no longer admitted by the daemon (removed from its key directories); "
             "nothing was applied");
}

void ingest_reject_decode(ingest_t *in, const void *rid, size_t rid_len, uint64_t seq,
                          const proto_error_t *err)
{
    stats_reject(in->c.stats, err->code);
    log_limited(in->c.log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                "rejected undecodable submission (seq %" PRIu64 "): %s (%s)", seq, err->message,
                tally_errname(err->code));
    send_ack(in, rid, rid_len, seq, PROTO_ACK_REJECTED, err->code, err->sample, err->field,
             err->message);
}

/* Queue an ACK behind the journal position pos, or send it now when
 * everything up to pos is durable already. */
static void ack_after(ingest_t *in, const void *rid, size_t rid_len, uint64_t pos, uint64_t seq,
                      int status)
{
    if (pos <= in->durable_pos && ackq_count(&in->acks) == 0) {
        send_ack(in, rid, rid_len, seq, status, 0, -1, "", "");
        return;
    }
    if (ackq_push(&in->acks, pos, seq, (uint8_t)status, rid, rid_len) != 0)
        log_error(in->c.log,
                  "out of memory queueing the ACK of seq %" PRIu64 "; the client will resend it",
                  seq);
}

/* A resend of a (client id, seq) recorded already: counted and answered
 * DUPLICATE, not applied again. */
static void answer_duplicate(ingest_t *in, const void *rid, size_t rid_len, const proto_submit_t *s,
                             const uint8_t key[PROTO_CLIENT_ID_LEN])
{
    in->c.stats->duplicates++;
    char hex[33];
    if (debugging(in))
        log_debug(in->c.log,
                  "duplicate client %s seq %" PRIu64 " township '%.*s', %u samples: applied "
                  "before, not again",
                  client_hex(s->client_id, hex), s->seq, (int)s->township.len, s->township.ptr,
                  s->nsamples);
    dedup_touch(in->c.dedup, key, clock_now_ms(in->c.clock));
    /* Its original may still be on its way to the disk. */
    ack_after(in, rid, rid_len, in->last_pos, s->seq, PROTO_ACK_DUPLICATE);
}

/* STALE_SEQUENCE for s: its seq is below the de-duplication window, so
 * whether it was applied cannot be told. */
static void reject_stale(ingest_t *in, const void *rid, size_t rid_len, const proto_submit_t *s)
{
    char msg[PROTO_MESSAGE_MAX];
    snprintf(msg, sizeof(msg),
             "seq: %" PRIu64 " is more than %d below the highest sequence applied for this "
             "client id; a client may keep at most %d submissions in flight",
             s->seq, DEDUP_WINDOW, DEDUP_WINDOW);
    reject(in, rid, rid_len, s, TALLY_ESTALESEQ, -1, "seq", msg);
}

void ingest_refuse(ingest_t *in, const void *rid, size_t rid_len, const proto_submit_t *s,
                   const keyring_identity_t *who, const proto_error_t *err)
{
    /* Authorization first, as in ingest_submit(); then de-duplication,
     * before the refusal: a limit lowered since the original was applied
     * (max_samples, max_msg) must not turn a resend into "rejected", which
     * the clerk would answer by submitting the figures again. */
    char msg[PROTO_MESSAGE_MAX];
    uint8_t key[PROTO_CLIENT_ID_LEN];
    int rc = ingest_check_authorized(in, who, s, msg, sizeof(msg)) ? dedup_lookup(in, s, key) : 0;
    if (rc == TALLY_EEXIST) {
        answer_duplicate(in, rid, rid_len, s, key);
        return;
    }
    if (rc == TALLY_ESTALESEQ) { /* applied or not, it cannot be told */
        reject_stale(in, rid, rid_len, s);
        return;
    }
    ingest_reject_decode(in, rid, rid_len, s->seq, err);
}

/* Call the barrier callback armed by ingest_at_applied(), once. */
static void fire_barrier(ingest_t *in)
{
    void (*fn)(void *) = in->barrier_fn;
    in->barrier_fn = NULL;
    fn(in->barrier_ctx);
}

/* Records between the prefetch stages of apply_durable(). */
#define APPLY_AHEAD 2

/* engine_prefetch() stage for the pending record k places after the
 * head, and on_applied's (the history's) for stages 0 and 1. */
static void prefetch_ahead(const ingest_t *in, size_t k, int stage)
{
    const pending_t *p = &in->pending;
    if (p->head + k >= p->tail)
        return;
    const pending_entry_t *e = &p->v[p->head + k];
    const engine_sample_t *smp = pending_samples(p, e);
    engine_prefetch(in->c.engine, e->town, smp, e->nsamples, stage);
    if (in->c.prefetch != NULL && stage < 2)
        in->c.prefetch(in->c.applied_ctx, e->town, e->time_ms, smp, e->nsamples, stage);
}

/* Apply the pending submissions up to position upto, in journal order.
 * With many series nearly every record's series, windows and history
 * cells are cache misses, each level known only once the one before has
 * arrived; the records a few places ahead are fetched a level a record
 * (prefetch_ahead()), so that their misses overlap. */
static void apply_durable(ingest_t *in, uint64_t upto)
{
    const pending_entry_t *e;
    bool ahead = engine_series_count(in->c.engine) >= ENGINE_PREFETCH_SERIES;
    for (size_t k = 0; ahead && k < 3 * APPLY_AHEAD; k++)
        prefetch_ahead(in, k, 0);
    for (size_t k = 0; ahead && k < 2 * APPLY_AHEAD; k++)
        prefetch_ahead(in, k, 1);
    for (size_t k = 0; ahead && k < APPLY_AHEAD; k++)
        prefetch_ahead(in, k, 2);
    while ((e = pending_head(&in->pending)) != NULL && e->pos <= upto) {
        if (ahead) {
            prefetch_ahead(in, 3 * APPLY_AHEAD, 0);
            prefetch_ahead(in, 2 * APPLY_AHEAD, 1);
            prefetch_ahead(in, APPLY_AHEAD, 2);
        }
        if (in->barrier_fn && e->pos > in->barrier_pos)
            fire_barrier(in);
        engine_unpend(in->c.engine, e->mass, e->nnew);
        int32_t bad = -1;
        /* Accepted: a max_series lowered by a reload since does not
         * apply to the series it starts. */
        int rc = engine_apply_accepted(in->c.engine, e->town, e->time_ms,
                                       pending_samples(&in->pending, e), e->nsamples, &bad);
        if (rc != 0) {
            /* engine_check() kept room for it, so only memory can have
             * failed.  The record is durable: a restart replays it. */
            log_error(in->c.log,
                      "cannot apply journaled submission seq %" PRIu64 " (journal position %" PRIu64
                      "): %s; stopping so that a restart replays it",
                      e->seq, e->pos, tally_strerror(rc));
            in->c.stop(in->c.stop_ctx, 1);
            return;
        }
        if (in->c.on_applied != NULL &&
            (rc = in->c.on_applied(in->c.applied_ctx, e->pos, e->town, e->time_ms,
                                   pending_samples(&in->pending, e), e->nsamples)) != 0) {
            log_error(in->c.log,
                      "cannot record journaled submission seq %" PRIu64
                      " (journal position %" PRIu64
                      ") in the history: %s; stopping so that a restart replays it",
                      e->seq, e->pos, tally_strerror(rc));
            in->c.stop(in->c.stop_ctx, 1);
            return;
        }
        in->applied_pos = e->pos;
        pending_pop(&in->pending);
    }
    if (pending_head(&in->pending) == NULL && upto > in->applied_pos)
        in->applied_pos = upto < in->last_pos ? upto : in->last_pos;
    if (in->barrier_fn && in->applied_pos >= in->barrier_pos)
        fire_barrier(in);
}

void ingest_at_applied(ingest_t *in, uint64_t pos, void (*fn)(void *ctx), void *ctx)
{
    in->barrier_pos = pos;
    in->barrier_fn = fn;
    in->barrier_ctx = ctx;
    if (fn != NULL && in->applied_pos >= pos)
        fire_barrier(in);
}

void ingest_pending_foreach(const ingest_t *in, void (*fn)(const pending_entry_t *e, void *ctx),
                            void *ctx)
{
    pending_foreach(&in->pending, fn, ctx);
}

void ingest_on_durable(ingest_t *in, uint64_t upto)
{
    if (upto > in->durable_pos)
        in->durable_pos = upto;
    apply_durable(in, in->durable_pos);
    const ackq_entry_t *e;
    while ((e = ackq_ready(&in->acks, in->durable_pos)) != NULL) {
        send_ack(in, e->rid, e->rid_len, e->seq, e->status, 0, -1, "", "");
        ackq_pop(&in->acks);
    }
}

void ingest_submit(ingest_t *in, const void *rid, size_t rid_len, const void *body, size_t len,
                   const proto_submit_t *s, const keyring_identity_t *who)
{
    char msg[PROTO_MESSAGE_MAX];
    char field[PROTO_FIELD_MAX];

    if (in->stopping) {
        reject(in, rid, rid_len, s, TALLY_EUNAVAIL, -1, "",
               "the daemon is stopping; resend the submission later");
        return;
    }
    /* Authorization before de-duplication: a key must not learn, from
     * DUPLICATE answers, what another township has submitted. */
    if (!ingest_check_authorized(in, who, s, msg, sizeof(msg))) {
        reject(in, rid, rid_len, s, TALLY_EFORBIDDEN, -1, "township", msg);
        return;
    }
    /* De-duplicate first: a resend of something applied earlier is a
     * duplicate even if the catalog or the clock has moved on since, and
     * the client must hear that it was applied, not that it is invalid. */
    uint8_t key[PROTO_CLIENT_ID_LEN];
    int rc = dedup_lookup(in, s, key);
    if (rc == TALLY_EEXIST) {
        answer_duplicate(in, rid, rid_len, s, key);
        return;
    }
    if (rc == TALLY_ESTALESEQ) {
        reject_stale(in, rid, rid_len, s);
        return;
    }
    if (rc == TALLY_ECLIENTLIMIT) {
        snprintf(msg, sizeof(msg),
                 "client_id: a new client id would exceed the limit of %" PRId64 " clients",
                 in->c.limits.max_clients);
        reject(in, rid, rid_len, s, rc, -1, "client_id", msg);
        return;
    }
    int sample;
    uint32_t towns0 = intern_count(in->c.towns), metrics0 = intern_count(in->c.metrics);
    int town = ingest_check_validate(in, s, field, sizeof(field), msg, sizeof(msg), &sample);
    if (town < 0) {
        reject(in, rid, rid_len, s, town, sample, field, msg);
        return;
    }
    uint64_t pos = 0;
    rc = in->c.journal.append(in->c.journal.ctx, body, len, &pos);
    if (rc != 0) {
        const char *why = in->c.journal.error ? in->c.journal.error(in->c.journal.ctx) : "";
        if (rc == TALLY_EBUSY) {
            snprintf(msg, sizeof(msg), "the journal is behind the disk; resend later");
        } else {
            rc = TALLY_EUNAVAIL;
            snprintf(msg, sizeof(msg), "the journal cannot be written (%s); resend later",
                     why[0] ? why : "storage unavailable");
        }
        ingest_check_forget_names(in, towns0, metrics0);
        reject(in, rid, rid_len, s, rc, -1, "", msg);
        return;
    }
    in->last_pos = pos;
    /* Applied once the journal has it (ingest_on_durable), so that nothing
     * is shown, published or checkpointed that a crash could take back;
     * until then later checks keep room for it. */
    pending_entry_t pe = {.pos = pos,
                          .seq = s->seq,
                          .time_ms = s->time_ms,
                          .town = (uint32_t)town,
                          .nsamples = s->nsamples,
                          .nnew = engine_pend_new(in->c.engine)};
    memcpy(pe.key, key, sizeof(pe.key));
    pe.mass = engine_pend(in->c.engine, (uint32_t)town, in->esamples, s->nsamples);
    if (pending_push(&in->pending, &pe, in->esamples) != 0) {
        engine_unpend(in->c.engine, pe.mass, pe.nnew);
        /* The record is in the journal: a restart applies it, while going
         * on would leave the tallies short of it. */
        log_error(in->c.log,
                  "out of memory keeping journaled submission seq %" PRIu64 " until it is "
                  "durable; stopping so that a restart applies it",
                  s->seq);
        in->c.stop(in->c.stop_ctx, 1);
        return;
    }
    /* Recorded now, so that a resend while it waits is a duplicate; a
     * checkpoint taken meanwhile leaves such marks out (ingest_at_applied). */
    if (dedup_mark(in->c.dedup, key, s->seq) != 0)
        log_error(in->c.log, "out of memory recording seq %" PRIu64 " as applied", s->seq);
    dedup_touch(in->c.dedup, key, clock_now_ms(in->c.clock));
    in->c.stats->submissions_accepted++;
    in->c.stats->samples_accepted += s->nsamples;
    char hex[33];
    if (debugging(in))
        log_debug(in->c.log,
                  "accepted client %s seq %" PRIu64 " township '%.*s', %u samples at %" PRId64
                  ", journal position %" PRIu64,
                  client_hex(s->client_id, hex), s->seq, (int)s->township.len, s->township.ptr,
                  s->nsamples, s->time_ms, pos);
    ack_after(in, rid, rid_len, pos, s->seq, PROTO_ACK_ACCEPTED);
}

/* Slots of the de-duplication table looked at per tick: a sweep of a
 * million-client table takes a few minutes and never a noticeable pause. */
#define EXPIRY_SLOTS_PER_TICK 16384

uint32_t ingest_tick(ingest_t *in, int64_t now_ms)
{
    int64_t horizon = in->c.limits.client_expiry_ms;
    if (horizon <= 0 || dedup_count(in->c.dedup) == 0)
        return 0;
    uint32_t n =
        dedup_expire(in->c.dedup, now_ms - horizon, &in->expiry_cursor, EXPIRY_SLOTS_PER_TICK);
    if (n > 0) {
        in->c.stats->clients_expired += n;
        log_info(in->c.log, "forgot %u client ids idle for more than %" PRId64 " days", n,
                 horizon / 86400000);
    }
    return n;
}

/* ---- replay ---- */

/* Replay resolves names without the catalog's say. */
static int replay_id(intern_t *names, proto_str_t name)
{
    int id = intern_find(names, name.ptr, name.len);
    return id > 0 ? id : intern_add(names, name.ptr, name.len);
}

int ingest_replay(ingest_t *in, const void *body, size_t len, char *why, size_t whylen)
{
    return ingest_replay_at(in, 0, false, body, len, why, whylen);
}

int ingest_replay_at(ingest_t *in, uint64_t pos, bool only_hook, const void *body, size_t len,
                     char *why, size_t whylen)
{
    proto_msg_t m;
    proto_error_t err;
    int rc = proto_decode(body, len, &m, in->replay_samples, PROTO_SAMPLES_MAX, &err);
    if (rc != 0 || m.type != PROTO_SUBMIT) {
        snprintf(why, whylen, "the record is not a valid submission: %s",
                 rc != 0 ? err.message : "wrong message type");
        return rc != 0 ? rc : TALLY_EMALFORMED;
    }
    const proto_submit_t *s = &m.u.submit;
    uint8_t key[PROTO_CLIENT_ID_LEN];
    const char *what = "";
    int32_t bad = -1;
    if (!only_hook) {
        rc = dedup_lookup(in, s, key);
        if (rc == TALLY_EEXIST)
            return 0; /* covered by the checkpoint already */
        if (rc == TALLY_ECLIENTLIMIT)
            what = " (raise [limits] max_clients)";
        if (rc != 0)
            goto fail;
    }
    int town = replay_id(in->c.towns, s->township);
    if (town < 0) {
        rc = town;
        what = " (township names: raise [limits] max_townships)";
        goto fail;
    }
    for (uint32_t i = 0; i < s->nsamples; i++) {
        int id = replay_id(in->c.metrics, s->samples[i].metric);
        if (id < 0) {
            rc = id;
            bad = (int32_t)i;
            what = " (metric names: raise [limits] max_metrics)";
            goto fail;
        }
        in->esamples[i].metric = (uint32_t)id;
        in->esamples[i].value = s->samples[i].value;
    }
    if (!only_hook) {
        /* Accepted once: applied whatever max_series says now, which
         * limits only the series new submissions start. */
        rc = engine_apply_accepted(in->c.engine, (uint32_t)town, s->time_ms, in->esamples,
                                   s->nsamples, &bad);
        if (rc == TALLY_ESERIESLIMIT)
            what = " (the most series a tallyd holds)";
        if (rc != 0)
            goto fail;
        rc = dedup_mark(in->c.dedup, key, s->seq);
        if (rc != 0)
            goto fail;
        /* The record's arrival time is not journaled; the time of the
         * replay is later, so the client id is kept at least as long as it
         * must be. */
        dedup_touch(in->c.dedup, key, clock_now_ms(in->c.clock));
    }
    if (in->c.on_applied != NULL && pos > 0 &&
        (rc = in->c.on_applied(in->c.applied_ctx, pos, (uint32_t)town, s->time_ms, in->esamples,
                               s->nsamples)) != 0) {
        what = " (recording it in the history)";
        goto fail;
    }
    return 0;
fail:
    if (bad >= 0)
        snprintf(why, whylen,
                 "submission seq %" PRIu64 " of township '%.*s', sample %d (metric '%.*s'), "
                 "cannot be applied: %s%s",
                 s->seq, (int)s->township.len, s->township.ptr, bad,
                 (int)s->samples[bad].metric.len, s->samples[bad].metric.ptr, tally_strerror(rc),
                 what);
    else
        snprintf(why, whylen,
                 "submission seq %" PRIu64 " of township '%.*s' cannot be applied: %s%s", s->seq,
                 (int)s->township.len, s->township.ptr, tally_strerror(rc), what);
    return rc;
}
