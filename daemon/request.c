/* request.c - decode every request, check who sent it (in a secured
 * daemon) and hand it to its handler. */
#include "request.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "tallyd.h"

static void send_error(tallyd_t *d, const void *rid, size_t rid_len, uint64_t req_id, int code,
                       const char *field, const char *message)
{
    stats_bad_request(&d->stats, code);
    proto_msg_t m = {.type = PROTO_ERROR};
    m.u.error.req_id = req_id;
    m.u.error.code = (uint32_t)(code < 0 ? -code : code);
    m.u.error.field = proto_str(field);
    m.u.error.message = proto_str(message);
    msgpack_sbuffer_clear(&d->out);
    if (proto_encode(&d->out, &m) == 0)
        tallyd_reply(d, rid, rid_len, &d->out);
}

static void reply_welcome(tallyd_t *d, const void *rid, size_t rid_len, uint64_t req_id)
{
    proto_msg_t m = {.type = PROTO_WELCOME};
    m.u.welcome.req_id = req_id;
    m.u.welcome.server = proto_str("tallyd/" TALLY_VERSION);
    m.u.welcome.pub_endpoint = proto_str(d->pub_endpoint);
    m.u.welcome.stream_id = d->publish.stream_id;
    m.u.welcome.seq = d->publish.seq;
    uint32_t n = engine_columns(&d->engine);
    m.u.welcome.ncolumns = n;
    for (uint32_t i = 0; i < n; i++)
        m.u.welcome.columns[i] = proto_str(engine_column_name(&d->engine, i));
    m.u.welcome.max_samples = d->cfg.max_samples;
    m.u.welcome.max_name = PROTO_NAME_MAX;
    m.u.welcome.max_msg = d->cfg.max_msg_bytes;
    m.u.welcome.skew_ms = d->cfg.skew_ms;
    m.u.welcome.max_age_ms = d->cfg.max_age_ms;
    msgpack_sbuffer_clear(&d->out);
    if (proto_encode(&d->out, &m) == 0)
        tallyd_reply(d, rid, rid_len, &d->out);
}

typedef struct stats_fill {
    proto_msg_t m;
    char names[PROTO_STATS_MAX][80];
} stats_fill_t;

/* stats_foreach builds some names in a buffer it reuses: copy each one at
 * once. */
static void add_stat(const char *name, int64_t value, void *ctx)
{
    stats_fill_t *f = ctx;
    uint32_t n = f->m.u.stats.n;
    if (n >= PROTO_STATS_MAX)
        return;
    snprintf(f->names[n], sizeof(f->names[n]), "%s", name);
    f->m.u.stats.entries[n].name = proto_str(f->names[n]);
    f->m.u.stats.entries[n].value = value;
    f->m.u.stats.n = n + 1;
}

static void reply_stats(tallyd_t *d, const void *rid, size_t rid_len, uint64_t req_id)
{
    stats_fill_t *f = calloc(1, sizeof(*f));
    if (!f)
        return;
    f->m.type = PROTO_STATS;
    f->m.u.stats.req_id = req_id;
    stats_gauges_t g = {
        .series = engine_series_count(&d->engine),
        .clients = dedup_count(&d->dedup),
        .townships = intern_count(&d->towns),
        .metrics = intern_count(&d->metrics),
        .subscribers = d->publish.subscribers,
        .seq = d->publish.seq,
        .uptime_s = (uint64_t)((clock_mono_ms() - d->stats.started_mono_ms) / 1000),
        .memory_bytes = engine_memory(&d->engine) + dedup_memory(&d->dedup) +
                        intern_memory(&d->towns) + intern_memory(&d->metrics),
    };
    stats_foreach(&d->stats, &g, add_stat, f);
    if (d->secured)
        zap_stats_foreach(&d->zap, add_stat, f);
    msgpack_sbuffer_clear(&d->out);
    if (proto_encode(&d->out, &f->m) == 0)
        tallyd_reply(d, rid, rid_len, &d->out);
    else
        log_error(&d->log, "cannot encode the STATS reply");
    free(f);
}

static void reply_pong(tallyd_t *d, const void *rid, size_t rid_len, const proto_msg_t *in)
{
    proto_msg_t m = {.type = PROTO_PONG};
    m.u.pong.req_id = in->u.ping.req_id;
    m.u.pong.time_ms = in->u.ping.time_ms;
    m.u.pong.seq = d->publish.seq;
    msgpack_sbuffer_clear(&d->out);
    if (proto_encode(&d->out, &m) == 0)
        tallyd_reply(d, rid, rid_len, &d->out);
}

/* In a secured daemon: may the identity who (NULL: its key is no longer
 * in the keyring) have the request m answered?  Townships submit and
 * subscribers read; both may say HELLO and PING.  Answers a refusal
 * itself and returns false. */
static bool allowed(tallyd_t *d, const void *rid, size_t rid_len, const proto_msg_t *m,
                    const keyring_identity_t *who, const char *user_id)
{
    if (who == NULL) {
        log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_NOTICE,
                    "refused a request from '%s': the key is no longer admitted",
                    user_id ? user_id : "?");
        send_error(d, rid, rid_len, proto_req_id(m), TALLY_EFORBIDDEN, "",
                   "this key is no longer admitted by the daemon (removed from its key "
                   "directories)");
        return false;
    }
    bool reads = m->type == PROTO_SNAPSHOT_REQ || m->type == PROTO_STATS_REQ;
    if (reads && who->role != KEYS_ROLE_SUBSCRIBER) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "this key belongs to %s '%s', which may submit figures but not read tallies or "
                 "counters; use a subscriber key",
                 keys_role_name(who->role), who->name);
        log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_NOTICE, "refused a request: %s", msg);
        send_error(d, rid, rid_len, proto_req_id(m), TALLY_EFORBIDDEN, "type", msg);
        return false;
    }
    return true;
}

void request_on_msg(zsock_t *zs, zmq_msg_t *parts, int nparts, void *ctx)
{
    (void)zs;
    tallyd_t *d = ctx;
    const void *rid = zmq_msg_data(&parts[0]);
    size_t rid_len = zmq_msg_size(&parts[0]);
    if (nparts != 2) {
        char msg[128];
        snprintf(msg, sizeof(msg), "a request is one frame (after the routing id); this one had %d",
                 nparts - 1);
        log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_NOTICE, "bad request: %s", msg);
        send_error(d, rid, rid_len, 0, TALLY_EMALFORMED, "frames", msg);
        return;
    }
    const void *body = zmq_msg_data(&parts[1]);
    size_t len = zmq_msg_size(&parts[1]);
    /* The identity comes from the User-Id our ZAP handler gave the
     * connection, checked against the keyring in force on every message,
     * so a key revoked by a reload stops being served at once.  Never
     * from the payload or the routing id. */
    const keyring_identity_t *who = NULL;
    const char *user_id = NULL;
    if (d->secured) {
        user_id = zmq_msg_gets(&parts[1], "User-Id");
        who = keyring_lookup_user_id(&d->keys, user_id);
    }
    if (len > (uint64_t)d->cfg.max_msg_bytes) {
        /* Not decoded: its req_id is unknown, and a key that is not
         * admitted hears nothing, as for any other request. */
        if (d->secured && who == NULL)
            return;
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "body: the request is %zu bytes, above the limit of %" PRId64
                 " bytes (max_msg); split the submission",
                 len, d->cfg.max_msg_bytes);
        log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_NOTICE, "bad request: %s", msg);
        send_error(d, rid, rid_len, 0, TALLY_ETOOLARGE, "body", msg);
        return;
    }
    proto_msg_t m;
    proto_error_t err;
    int rc = proto_decode(body, len, &m, d->samples, (uint32_t)d->cfg.max_samples, &err);
    if (d->secured && who == NULL) {
        /* Not even decoding errors for a key that is not admitted. */
        if (m.type == PROTO_SUBMIT && m.u.submit.seq != 0)
            ingest_forbid_unknown(d, rid, rid_len, m.u.submit.seq, user_id);
        else
            allowed(d, rid, rid_len, &m, NULL, user_id);
        return;
    }
    if (d->secured && rc == 0 && !allowed(d, rid, rid_len, &m, who, user_id))
        return;
    if (rc != 0) {
        if (m.type == PROTO_SUBMIT && m.u.submit.seq != 0) {
            ingest_reject_decode(d, rid, rid_len, m.u.submit.seq, &err);
        } else {
            log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_NOTICE, "bad request: %s (%s)",
                        err.message, tally_errname(err.code));
            send_error(d, rid, rid_len, proto_req_id(&m), err.code, err.field, err.message);
        }
        return;
    }
    switch (m.type) {
    case PROTO_SUBMIT:
        ingest_submit(d, rid, rid_len, body, len, &m.u.submit, who);
        break;
    case PROTO_HELLO:
        reply_welcome(d, rid, rid_len, m.u.hello.req_id);
        break;
    case PROTO_PING:
        reply_pong(d, rid, rid_len, &m);
        break;
    case PROTO_STATS_REQ:
        reply_stats(d, rid, rid_len, m.u.stats_req.req_id);
        break;
    case PROTO_SNAPSHOT_REQ:
        if (publish_snapshot(d, rid, rid_len, m.u.snapshot_req.req_id, m.u.snapshot_req.prefix.ptr,
                             m.u.snapshot_req.prefix.len) != 0)
            send_error(d, rid, rid_len, m.u.snapshot_req.req_id, TALLY_EBUSY, "",
                       "the daemon is out of memory for this snapshot; retry later");
        break;
    default: {
        char msg[160];
        snprintf(msg, sizeof(msg), "type: message type %u is not a request the daemon answers",
                 m.type);
        send_error(d, rid, rid_len, proto_req_id(&m), TALLY_ETYPE, "type", msg);
        break;
    }
    }
}
