/* ingest.c - decode is done by request.c; here a SUBMIT is authorized
 * (the key's township, then the catalog), de-duplicated by (client id,
 * seq), checked against the time rules and limits, rate limited per
 * township, applied atomically and acknowledged. */
#include "ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>
#include "tallyd.h"

/* ---- the de-duplication key (see ingest.h) ---- */

#define DEDUP_TAG "tally-dedup-1"

/* The key of s in the de-duplication table (see ingest.h). */
static void dedup_key(const tallyd_t *d, const proto_submit_t *s, uint8_t key[PROTO_CLIENT_ID_LEN])
{
    if (!d->secured) {
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
 * duplicate too.  Nothing but DEDUP_DUPLICATE is taken from that second
 * look: new submissions are recorded under the derived key only. */
static int dedup_lookup(const tallyd_t *d, const proto_submit_t *s,
                        uint8_t key[PROTO_CLIENT_ID_LEN])
{
    dedup_key(d, s, key);
    int rc = dedup_check(&d->dedup, key, s->seq);
    if (rc != DEDUP_DUPLICATE && d->secured &&
        dedup_check(&d->dedup, s->client_id, s->seq) == DEDUP_DUPLICATE)
        return DEDUP_DUPLICATE;
    return rc;
}

void ingest_ack(tallyd_t *d, const void *rid, size_t rid_len, uint64_t seq, int status, int code,
                int sample, const char *field, const char *message)
{
    proto_msg_t m = {.type = PROTO_ACK};
    m.u.ack.seq = seq;
    m.u.ack.status = (uint8_t)status;
    m.u.ack.code = (uint32_t)(code < 0 ? -code : code);
    m.u.ack.sample = sample;
    m.u.ack.field = proto_str(field);
    m.u.ack.message = proto_str(message);
    msgpack_sbuffer_clear(&d->out);
    if (proto_encode(&d->out, &m) != 0) {
        log_error(&d->log, "cannot encode the ACK of seq %" PRIu64, seq);
        return;
    }
    tallyd_reply(d, rid, rid_len, &d->out);
}

/* Count, log (rate limited) and answer one rejection. */
static void reject(tallyd_t *d, const void *rid, size_t rid_len, const proto_submit_t *s, int code,
                   int sample, const char *field, const char *message)
{
    stats_reject(&d->stats, code);
    log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                "rejected submission seq %" PRIu64 " of township '%.*s': %s (%s)", s->seq,
                (int)s->township.len, s->township.ptr, message, tally_errname(code));
    ingest_ack(d, rid, rid_len, s->seq, PROTO_ACK_REJECTED, code, sample, field, message);
}

void ingest_forbid_unknown(tallyd_t *d, const void *rid, size_t rid_len, uint64_t seq,
                           const char *user_id)
{
    stats_reject(&d->stats, TALLY_EFORBIDDEN);
    log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                "refused submission seq %" PRIu64 " from '%s': the key is no longer admitted", seq,
                user_id ? user_id : "?");
    ingest_ack(d, rid, rid_len, seq, PROTO_ACK_REJECTED, TALLY_EFORBIDDEN, -1, "",
               "this key is no longer admitted by the daemon (removed from its key directories); "
               "nothing was applied");
}

/* May the identity who submit for s->township?  Writes the reason into
 * msg when not. */
static bool authorized(const tallyd_t *d, const keyring_identity_t *who, const proto_submit_t *s,
                       char *msg, size_t len)
{
    if (!d->secured)
        return true;
    if (who == NULL) {
        snprintf(msg, len, "township: this connection has no identity the daemon admits");
        return false;
    }
    if (who->role != KEYS_ROLE_TOWNSHIP) {
        snprintf(msg, len,
                 "township: this key belongs to %s '%s', which may read tallies but not submit "
                 "figures",
                 keys_role_name(who->role), who->name);
        return false;
    }
    if (who->name_len != s->township.len || memcmp(who->name, s->township.ptr, who->name_len)) {
        snprintf(msg, len, "township: this key belongs to '%s', not '%.*s'", who->name,
                 (int)s->township.len, s->township.ptr);
        return false;
    }
    return true;
}

void ingest_reject_decode(tallyd_t *d, const void *rid, size_t rid_len, uint64_t seq,
                          const proto_error_t *err)
{
    stats_reject(&d->stats, err->code);
    log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                "rejected undecodable submission (seq %" PRIu64 "): %s (%s)", seq, err->message,
                tally_errname(err->code));
    ingest_ack(d, rid, rid_len, seq, PROTO_ACK_REJECTED, err->code, err->sample, err->field,
               err->message);
}

/* The township's id: declared in a closed catalog, or added to the open
 * one up to max_townships. */
static int town_id(tallyd_t *d, proto_str_t name, char *msg, size_t msglen)
{
    int id = intern_find(&d->towns, name.ptr, name.len);
    if (id > 0)
        return id;
    if (d->cfg.catalog_closed_townships) {
        snprintf(msg, msglen, "township '%.*s' is not in the catalog", (int)name.len, name.ptr);
        return TALLY_EUNKTOWN;
    }
    if (intern_count(&d->towns) >= (uint64_t)d->cfg.max_townships) {
        snprintf(msg, msglen, "township '%.*s' would exceed the limit of %" PRId64 " townships",
                 (int)name.len, name.ptr, d->cfg.max_townships);
        return TALLY_ESERIESLIMIT;
    }
    id = intern_add(&d->towns, name.ptr, name.len);
    if (id < 0) {
        snprintf(msg, msglen, "township '%.*s' cannot be added: %s", (int)name.len, name.ptr,
                 tally_strerror(id));
        return TALLY_ESERIESLIMIT;
    }
    return id;
}

static int metric_id(tallyd_t *d, uint32_t i, proto_str_t name, char *msg, size_t msglen)
{
    int id = intern_find(&d->metrics, name.ptr, name.len);
    if (id > 0) {
        if (engine_metric_kind(&d->engine, (uint32_t)id) == PROTO_KIND_RATIO) {
            snprintf(msg, msglen,
                     "samples[%u].metric: '%.*s' is a derived ratio; submit its numerator and "
                     "denominator instead",
                     i, (int)name.len, name.ptr);
            return TALLY_EKIND;
        }
        return id;
    }
    if (d->cfg.catalog_closed_metrics) {
        snprintf(msg, msglen, "samples[%u].metric: metric '%.*s' is not in the catalog", i,
                 (int)name.len, name.ptr);
        return TALLY_EUNKMETRIC;
    }
    if (intern_count(&d->metrics) >= (uint64_t)d->cfg.max_metrics) {
        snprintf(msg, msglen,
                 "samples[%u].metric: metric '%.*s' would exceed the limit of %" PRId64 " metrics",
                 i, (int)name.len, name.ptr, d->cfg.max_metrics);
        return TALLY_ESERIESLIMIT;
    }
    id = intern_add(&d->metrics, name.ptr, name.len);
    if (id < 0) {
        snprintf(msg, msglen, "samples[%u].metric: metric '%.*s' cannot be added: %s", i,
                 (int)name.len, name.ptr, tally_strerror(id));
        return TALLY_ESERIESLIMIT;
    }
    return id;
}

/* Undo the names a rejected submission added (see ingest_submit). */
static void forget_names(tallyd_t *d, uint32_t towns, uint32_t metrics)
{
    intern_truncate(&d->towns, towns);
    intern_truncate(&d->metrics, metrics);
}

static int check_time(tallyd_t *d, int64_t t, char *msg, size_t msglen)
{
    int64_t now = clock_now_ms(d->clock);
    if (t > now + d->cfg.skew_ms) {
        snprintf(msg, msglen,
                 "time_ms: %" PRId64 " is %" PRId64
                 " ms ahead of the daemon's clock; at most %" PRId64 " ms are allowed",
                 t, t - now, d->cfg.skew_ms);
        return TALLY_EFUTURE;
    }
    if (t < now - d->cfg.max_age_ms) {
        snprintf(msg, msglen,
                 "time_ms: %" PRId64 " is %" PRId64 " days old; samples older than %" PRId64
                 " days are not accepted",
                 t, (now - t) / 86400000, d->cfg.max_age_ms / 86400000);
        return TALLY_ETOOOLD;
    }
    return 0;
}

/* Queue an ACK behind the journal position pos, or send it now when
 * everything up to pos is durable already. */
static void ack_after(tallyd_t *d, const void *rid, size_t rid_len, uint64_t pos, uint64_t seq,
                      int status)
{
    if (pos <= d->durable_pos && ackq_count(&d->acks) == 0) {
        ingest_ack(d, rid, rid_len, seq, status, 0, -1, "", "");
        return;
    }
    if (ackq_push(&d->acks, pos, seq, (uint8_t)status, rid, rid_len) != 0)
        log_error(&d->log,
                  "out of memory queueing the ACK of seq %" PRIu64 "; the client will resend it",
                  seq);
}

void ingest_on_durable(tallyd_t *d, uint64_t upto)
{
    if (upto > d->durable_pos)
        d->durable_pos = upto;
    const ackq_entry_t *e;
    while ((e = ackq_ready(&d->acks, d->durable_pos)) != NULL) {
        ingest_ack(d, e->rid, e->rid_len, e->seq, e->status, 0, -1, "", "");
        ackq_pop(&d->acks);
    }
}

/* Take s's samples from the township's token bucket ([limits] rate and
 * burst).  False with the code in *code and the reason in msg when the
 * submission must wait. */
static bool rate_ok(tallyd_t *d, const proto_submit_t *s, uint32_t town, char *msg, size_t len,
                    int *code)
{
    if (d->rl.rate == 0)
        return true; /* no limit configured */
    int64_t wait_ms = 0;
    int rc = ratelimit_take(&d->rl, town, s->nsamples, clock_mono_ms(), &wait_ms);
    if (rc == 0)
        return true;
    if (rc == TALLY_ERATELIMIT) {
        *code = TALLY_ERATELIMIT;
        snprintf(msg, len,
                 "township '%.*s' exceeds %" PRId64 " samples/s (burst %" PRId64
                 "); this submission of %u samples may be resent in %" PRId64 " ms",
                 (int)s->township.len, s->township.ptr, d->rl.rate, d->rl.burst, s->nsamples,
                 wait_ms);
        return false;
    }
    /* Out of memory for a new bucket, or an id beyond the limiter (a bug):
     * ask for a resend rather than let the submission bypass the limit. */
    log_error(&d->log, "rate limit of township '%.*s' (id %u): %s", (int)s->township.len,
              s->township.ptr, town, tally_strerror(rc));
    *code = TALLY_EBUSY;
    snprintf(msg, len, "the daemon cannot account the rate of township '%.*s' (%s); resend later",
             (int)s->township.len, s->township.ptr, tally_strerror(rc));
    return false;
}

/* Explain an engine_check()/engine_apply() failure about sample b. */
static int explain_engine_error(tallyd_t *d, const proto_submit_t *s, int rc, int b, char *field,
                                size_t flen, char *msg, size_t mlen)
{
    proto_str_t mn = s->samples[b].metric;
    snprintf(field, flen, "samples[%d].value", b);
    switch (rc) {
    case TALLY_EOVERFLOW:
        snprintf(msg, mlen,
                 "samples[%d].value: adding %" PRId64 " to '%.*s' of '%.*s' would leave the "
                 "64-bit integer range; nothing of this submission was applied",
                 b, s->samples[b].value, (int)mn.len, mn.ptr, (int)s->township.len,
                 s->township.ptr);
        return rc;
    case TALLY_ESERIESLIMIT:
        snprintf(field, flen, "samples[%d].metric", b);
        snprintf(msg, mlen,
                 "samples[%d].metric: '%.*s' of '%.*s' would exceed the limit of %" PRId64
                 " series",
                 b, (int)mn.len, mn.ptr, (int)s->township.len, s->township.ptr, d->cfg.max_series);
        return rc;
    case TALLY_ENOMEM:
        snprintf(msg, mlen, "the daemon is out of memory; resend later");
        return TALLY_EBUSY;
    default:
        snprintf(msg, mlen, "samples[%d]: %s", b, tally_strerror(rc));
        return rc < 0 && rc >= TALLY_EWIRE_LAST ? rc : TALLY_EMALFORMED;
    }
}

void ingest_submit(tallyd_t *d, const void *rid, size_t rid_len, const void *body, size_t len,
                   const proto_submit_t *s, const keyring_identity_t *who)
{
    char msg[PROTO_MESSAGE_MAX];
    char field[PROTO_FIELD_MAX];

    if (d->stopping) {
        reject(d, rid, rid_len, s, TALLY_EUNAVAIL, -1, "",
               "the daemon is stopping; resend the submission later");
        return;
    }
    /* Authorization before de-duplication: a key must not learn, from
     * DUPLICATE answers, what another township has submitted. */
    if (!authorized(d, who, s, msg, sizeof(msg))) {
        reject(d, rid, rid_len, s, TALLY_EFORBIDDEN, -1, "township", msg);
        return;
    }
    /* De-duplicate first: a resend of something applied earlier is a
     * duplicate even if the catalog or the clock has moved on since, and
     * the client must hear that it was applied, not that it is invalid. */
    uint8_t key[PROTO_CLIENT_ID_LEN];
    int rc = dedup_lookup(d, s, key);
    if (rc == DEDUP_DUPLICATE) {
        d->stats.duplicates++;
        /* Its original may still be on its way to the disk. */
        ack_after(d, rid, rid_len, d->last_pos, s->seq, PROTO_ACK_DUPLICATE);
        return;
    }
    if (rc == TALLY_ESTALESEQ) {
        snprintf(msg, sizeof(msg),
                 "seq: %" PRIu64 " is more than %d below the highest sequence applied for this "
                 "client id; a client may keep at most %d submissions in flight",
                 s->seq, DEDUP_WINDOW, DEDUP_WINDOW);
        reject(d, rid, rid_len, s, rc, -1, "seq", msg);
        return;
    }
    if (rc == TALLY_ECLIENTLIMIT) {
        snprintf(msg, sizeof(msg),
                 "client_id: a new client id would exceed the limit of %" PRId64 " clients",
                 d->cfg.max_clients);
        reject(d, rid, rid_len, s, rc, -1, "client_id", msg);
        return;
    }

    /* In an open catalog the names below may be new.  A rejected
     * submission must not keep them: they would use up max_townships and
     * max_metrics for figures that were never counted. */
    uint32_t towns0 = intern_count(&d->towns), metrics0 = intern_count(&d->metrics);
    int town = town_id(d, s->township, msg, sizeof(msg));
    if (town < 0) {
        reject(d, rid, rid_len, s, town, -1, "township", msg);
        return;
    }
    rc = check_time(d, s->time_ms, msg, sizeof(msg));
    if (rc) {
        forget_names(d, towns0, metrics0);
        reject(d, rid, rid_len, s, rc, -1, "time_ms", msg);
        return;
    }
    for (uint32_t i = 0; i < s->nsamples; i++) {
        int id = metric_id(d, i, s->samples[i].metric, msg, sizeof(msg));
        if (id < 0) {
            forget_names(d, towns0, metrics0);
            snprintf(field, sizeof(field), "samples[%u].metric", i);
            reject(d, rid, rid_len, s, id, (int)i, field, msg);
            return;
        }
        d->esamples[i].metric = (uint32_t)id;
        d->esamples[i].value = s->samples[i].value;
    }

    int32_t bad = -1;
    rc = engine_check(&d->engine, (uint32_t)town, s->time_ms, d->esamples, s->nsamples, &bad);
    if (rc) {
        int b = bad < 0 ? 0 : bad;
        rc = explain_engine_error(d, s, rc, b, field, sizeof(field), msg, sizeof(msg));
        forget_names(d, towns0, metrics0);
        reject(d, rid, rid_len, s, rc, bad, field, msg);
        return;
    }
    /* Charged last, so only a submission that would be applied uses up
     * the township's rate. */
    if (!rate_ok(d, s, (uint32_t)town, msg, sizeof(msg), &rc)) {
        forget_names(d, towns0, metrics0);
        reject(d, rid, rid_len, s, rc, -1, "", msg);
        return;
    }
    uint64_t pos = 0;
    rc = journal_append(&d->journal, body, len, &pos);
    if (rc) {
        if (rc == TALLY_EBUSY) {
            snprintf(msg, sizeof(msg), "the journal is behind the disk; resend later");
        } else {
            rc = TALLY_EUNAVAIL;
            snprintf(msg, sizeof(msg), "the journal cannot be written (%s); resend later",
                     journal_errmsg(&d->journal)[0] ? journal_errmsg(&d->journal)
                                                    : "storage unavailable");
        }
        forget_names(d, towns0, metrics0);
        reject(d, rid, rid_len, s, rc, -1, "", msg);
        return;
    }
    d->last_pos = pos;
    rc = engine_apply(&d->engine, (uint32_t)town, s->time_ms, d->esamples, s->nsamples, &bad);
    if (rc) {
        /* engine_check() passed, so only memory can have failed.  The
         * record is in the journal: a restart replays it exactly, while
         * going on would leave the live tallies short of it. */
        log_error(&d->log,
                  "cannot apply journaled submission seq %" PRIu64 ": %s; stopping so that a "
                  "restart replays it",
                  s->seq, tally_strerror(rc));
        tallyd_stop(d, 1);
        return;
    }
    if (dedup_mark(&d->dedup, key, s->seq) != 0)
        log_error(&d->log, "out of memory recording seq %" PRIu64 " as applied", s->seq);
    d->stats.submissions_accepted++;
    d->stats.samples_accepted += s->nsamples;
    ack_after(d, rid, rid_len, pos, s->seq, PROTO_ACK_ACCEPTED);
}

/* Replay resolves names without the catalog's say: what was accepted
 * once is history and is applied even if the catalog changed since. */
static int replay_id(intern_t *in, proto_str_t name)
{
    int id = intern_find(in, name.ptr, name.len);
    return id > 0 ? id : intern_add(in, name.ptr, name.len);
}

int ingest_replay(tallyd_t *d, const void *body, size_t len, uint64_t pos)
{
    proto_msg_t m;
    proto_error_t err;
    int rc = proto_decode(body, len, &m, d->samples, PROTO_SAMPLES_MAX, &err);
    if (rc != 0 || m.type != PROTO_SUBMIT) {
        log_warning(&d->log, "journal record %" PRIu64 " is not a valid submission (%s); skipped",
                    pos, rc ? err.message : "wrong message type");
        return TALLY_EMALFORMED;
    }
    const proto_submit_t *s = &m.u.submit;
    uint8_t key[PROTO_CLIENT_ID_LEN];
    rc = dedup_lookup(d, s, key);
    if (rc == DEDUP_DUPLICATE)
        return 0; /* covered by the checkpoint already */
    int town = replay_id(&d->towns, s->township);
    if (town < 0)
        goto fail;
    for (uint32_t i = 0; i < s->nsamples; i++) {
        int id = replay_id(&d->metrics, s->samples[i].metric);
        if (id < 0) {
            rc = id;
            goto fail;
        }
        d->esamples[i].metric = (uint32_t)id;
        d->esamples[i].value = s->samples[i].value;
    }
    int32_t bad = -1;
    rc = engine_apply(&d->engine, (uint32_t)town, s->time_ms, d->esamples, s->nsamples, &bad);
    if (rc != 0)
        goto fail;
    if (dedup_mark(&d->dedup, key, s->seq) != 0)
        log_error(&d->log, "journal record %" PRIu64 ": cannot record seq %" PRIu64 " as applied",
                  pos, s->seq);
    return 0;
fail:
    log_error(&d->log,
              "journal record %" PRIu64 " (township '%.*s', seq %" PRIu64 ") cannot be applied: %s",
              pos, (int)s->township.len, s->township.ptr, s->seq, tally_strerror(rc));
    return rc;
}
