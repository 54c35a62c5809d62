/* ingest.c - decode is done by request.c; here a SUBMIT is authorized
 * against the catalog, checked against the time rules and limits,
 * de-duplicated by (client id, seq), applied atomically and acknowledged. */
#include "ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tallyd.h"

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

void ingest_submit(tallyd_t *d, const void *rid, size_t rid_len, const proto_submit_t *s)
{
    char msg[PROTO_MESSAGE_MAX];
    char field[PROTO_FIELD_MAX];

    if (d->stopping) {
        reject(d, rid, rid_len, s, TALLY_EUNAVAIL, -1, "",
               "the daemon is stopping; resend the submission later");
        return;
    }
    /* De-duplicate first: a resend of something applied earlier is a
     * duplicate even if the catalog or the clock has moved on since, and
     * the client must hear that it was applied, not that it is invalid. */
    int rc = dedup_check(&d->dedup, s->client_id, s->seq);
    if (rc == DEDUP_DUPLICATE) {
        d->stats.duplicates++;
        ingest_ack(d, rid, rid_len, s->seq, PROTO_ACK_DUPLICATE, 0, -1, "", "");
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

    int town = town_id(d, s->township, msg, sizeof(msg));
    if (town < 0) {
        reject(d, rid, rid_len, s, town, -1, "township", msg);
        return;
    }
    rc = check_time(d, s->time_ms, msg, sizeof(msg));
    if (rc) {
        reject(d, rid, rid_len, s, rc, -1, "time_ms", msg);
        return;
    }
    for (uint32_t i = 0; i < s->nsamples; i++) {
        int id = metric_id(d, i, s->samples[i].metric, msg, sizeof(msg));
        if (id < 0) {
            snprintf(field, sizeof(field), "samples[%u].metric", i);
            reject(d, rid, rid_len, s, id, (int)i, field, msg);
            return;
        }
        d->esamples[i].metric = (uint32_t)id;
        d->esamples[i].value = s->samples[i].value;
    }

    int32_t bad = -1;
    rc = engine_apply(&d->engine, (uint32_t)town, s->time_ms, d->esamples, s->nsamples, &bad);
    if (rc) {
        int b = bad < 0 ? 0 : bad;
        proto_str_t mn = s->samples[b].metric;
        snprintf(field, sizeof(field), "samples[%d].value", b);
        switch (rc) {
        case TALLY_EOVERFLOW:
            snprintf(msg, sizeof(msg),
                     "samples[%d].value: adding %" PRId64 " to '%.*s' of '%.*s' would leave the "
                     "64-bit integer range; nothing of this submission was applied",
                     b, s->samples[b].value, (int)mn.len, mn.ptr, (int)s->township.len,
                     s->township.ptr);
            break;
        case TALLY_ESERIESLIMIT:
            snprintf(field, sizeof(field), "samples[%d].metric", b);
            snprintf(
                msg, sizeof(msg),
                "samples[%d].metric: '%.*s' of '%.*s' would exceed the limit of %" PRId64 " series",
                b, (int)mn.len, mn.ptr, (int)s->township.len, s->township.ptr, d->cfg.max_series);
            break;
        case TALLY_ENOMEM:
            rc = TALLY_EBUSY;
            snprintf(msg, sizeof(msg), "the daemon is out of memory; resend later");
            break;
        default:
            snprintf(msg, sizeof(msg), "samples[%d]: %s", b, tally_strerror(rc));
            break;
        }
        reject(d, rid, rid_len, s, rc, bad, field, msg);
        return;
    }
    if (dedup_mark(&d->dedup, s->client_id, s->seq) != 0)
        log_error(&d->log, "out of memory recording seq %" PRIu64 " as applied", s->seq);
    d->stats.submissions_accepted++;
    d->stats.samples_accepted += s->nsamples;
    ingest_ack(d, rid, rid_len, s->seq, PROTO_ACK_ACCEPTED, 0, -1, "", "");
}
