/* proto_decode.c - the strict decoder for the tally wire protocol v1.
 *
 * The decoder is a cursor over the raw bytes instead of msgpack_unpack:
 * msgpack-c's object unpacker allocates storage sized by counts read from the
 * wire before it can know they are honest, and allocates per object.  This
 * reader allocates nothing, checks every declared count against the bytes
 * that remain before using it, and never recurses: the schema is fixed, so a
 * container where a scalar belongs is a type error on the spot, however deep
 * the input nests.
 *
 * It does not use msgpack-c at all.  The cursor and its error reports are
 * proto_reader.h's; CATALOG, TOWNSHIPS, RANGE and PERIOD_CHANGED are decoded in
 * proto_decode_reads.c; this file holds the other messages and the
 * envelope.  The name rules it applies, and
 * the limits it shares with the encoder (proto_encode.c), come from
 * proto.c through proto_internal.h.
 */
#include "proto_reader.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The name of each type for error reports, indexed by enum proto_type. */
static const char *const msg_names[PROTO_TYPE_LAST + 1] = {
    "body",         "SUBMIT",         "ACK",
    "SNAPSHOT_REQ", "SNAPSHOT_ITEM",  "SNAPSHOT_END",
    "UPDATE",       "HEARTBEAT",      "HELLO",
    "WELCOME",      "STATS_REQ",      "STATS",
    "PING",         "PONG",           "ERROR",
    "GOODBYE",      "CATALOG_REQ",    "CATALOG",
    "PERIOD_REQ",   "PERIOD",         "RANGE_REQ",
    "RANGE",        "PERIOD_CHANGED", "CLOCK_REQ",
    "CLOCK",        "SPAN_REQ",       "TOWNSHIPS_REQ",
    "TOWNSHIPS",    "BACKUP_REQ",     "BACKUP",
    "BACKUP_FETCH", "BACKUP_CHUNK",   "BACKUP_LIST_REQ",
    "BACKUP_LIST"};

const char *proto_type_name(uint32_t type)
{
    return type >= PROTO_SUBMIT && type <= PROTO_TYPE_LAST ? msg_names[type] : NULL;
}

bool proto_type_is_request(uint32_t type)
{
    switch (type) {
    case PROTO_SUBMIT:
    case PROTO_SNAPSHOT_REQ:
    case PROTO_HELLO:
    case PROTO_STATS_REQ:
    case PROTO_PING:
    case PROTO_CATALOG_REQ:
    case PROTO_PERIOD_REQ:
    case PROTO_RANGE_REQ:
    case PROTO_CLOCK_REQ:
    case PROTO_SPAN_REQ:
    case PROTO_TOWNSHIPS_REQ:
    case PROTO_BACKUP_REQ:
    case PROTO_BACKUP_FETCH:
    case PROTO_BACKUP_LIST_REQ:
        return true;
    default:
        return false;
    }
}

/* ---- message bodies ----------------------------------------------------- */

/* What identifies a SUBMIT: client_id, seq and township. */
static int dec_submit_head(rd_t *r, proto_submit_t *s)
{
    proto_str_t cid = {0};
    uint64_t seq = 0;
    TRY(rd_bytes(r, FLD("client_id"), true, &cid));
    if (cid.len != PROTO_CLIENT_ID_LEN)
        return proto_rd_fail(r->err, TALLY_ERANGE, FLD("client_id"),
                             "bin of %" PRIu32 " bytes, must be exactly %d bytes", cid.len,
                             PROTO_CLIENT_ID_LEN);
    memcpy(s->client_id, cid.ptr, PROTO_CLIENT_ID_LEN);
    TRY(rd_u64(r, FLD("seq"), 1, UINT64_MAX, &seq));
    s->seq = seq;
    return rd_name(r, FLD("township"), &s->township);
}

static int dec_submit(rd_t *r, proto_submit_t *s, proto_sample_t *samples, uint32_t cap)
{
    uint32_t n = 0;
    TRY(dec_submit_head(r, s));
    ival_t t = {0};
    TRY(rd_int(r, FLD("time_ms"), &t));
    if (t.neg || t.u < (uint64_t)PROTO_TIME_MIN || t.u >= (uint64_t)PROTO_TIME_MAX) {
        char vs[24];
        return proto_rd_fail(
            r->err, TALLY_ERANGE, FLD("time_ms"),
            "%s is out of range (allowed %lld..%lld, 2000-01-01 to 2100-01-01 UTC)",
            proto_rd_ival_str(&t, vs), PROTO_TIME_MIN, PROTO_TIME_MAX - 1);
    }
    s->time_ms = (int64_t)t.u;
    TRY(rd_array(r, FLD("samples"), &n));
    if (n == 0)
        return proto_rd_fail(r->err, TALLY_EEMPTY, FLD("samples"),
                             "a submission needs at least 1 sample");
    if (n > cap)
        return proto_rd_fail(r->err, TALLY_ETOOMANY, FLD("samples"),
                             "%" PRIu32 " samples exceed the limit of %" PRIu32, n, cap);
    s->samples = samples;
    for (uint32_t i = 0; i < n; i++) {
        fld_t f = {"", (int32_t)i, -1, NULL, 0};
        uint32_t m = 2;
        if (r->p < r->end && *r->p == 0x92) /* the usual case, fixarray of 2 */
            r->p++;
        else
            TRY(rd_array(r, &f, &m));
        if (m != 2)
            return proto_rd_fail(
                r->err, TALLY_EMALFORMED, &f,
                "sample is an array of %" PRIu32 " elements, expected 2 [metric, value]", m);
        f.name = "metric";
        TRY(rd_name(r, &f, &samples[i].metric));
        f.name = "value";
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &samples[i].value));
    }
    s->nsamples = n;
    return 0;
}

static int dec_values(rd_t *r, proto_tally_t *t)
{
    uint32_t n = 0;
    t->nvalues = 0;
    TRY(rd_map(r, FLD("values"), &n));
    if (n > PROTO_COLUMNS_MAX)
        return proto_rd_fail(r->err, TALLY_ETOOMANY, FLD("values"),
                             "%" PRIu32 " columns exceed the limit of %d", n, PROTO_COLUMNS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        proto_value_t *v = &t->values[i];
        TRY(proto_rd_text(r, FLD("values"), 1, PROTO_COLUMN_NAME_MAX, &v->name));
        TRY(proto_rd_chk_dup(r, FLD("values"), &t->values[0].name, sizeof *v, i));
        fld_t f = {"values", -1, -1, v->name.ptr, v->name.len};
        v->num = 0, v->den = 0;
        v->present = !is_nil(r);
        if (!v->present)
            continue;
        TRY(rd_value(r, &f, t->kind, v));
    }
    t->nvalues = n;
    return 0;
}

static int dec_tally(rd_t *r, proto_tally_t *t)
{
    uint32_t n = 0;
    uint64_t kind = 0;
    TRY(rd_array(r, FLD("tally"), &n));
    if (n != PROTO_TALLY_ELEMS)
        return proto_rd_fail(r->err, TALLY_EMALFORMED, FLD("tally"),
                             "array of %" PRIu32 " elements, expected %d", n, PROTO_TALLY_ELEMS);
    TRY(rd_name(r, FLD("metric"), &t->metric));
    TRY(rd_bytes(r, FLD("scope"), false, &t->scope));
    if (t->scope.len > 0)
        TRY(chk_name(r, FLD("scope"), t->scope));
    TRY(rd_u64(r, FLD("kind"), 0, PROTO_KIND_RATIO, &kind));
    t->kind = (uint8_t)kind;
    TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &t->seq));
    TRY(rd_i64(r, FLD("time_ms"), INT64_MIN, INT64_MAX, &t->time_ms));
    return dec_values(r, t);
}

static int dec_ack(rd_t *r, proto_ack_t *a)
{
    uint64_t status = 0, code = 0;
    int64_t sample = 0;
    TRY(rd_u64(r, FLD("seq"), 1, UINT64_MAX, &a->seq));
    TRY(rd_u64(r, FLD("status"), 0, PROTO_ACK_REJECTED, &status));
    a->status = (uint8_t)status;
    TRY(rd_u64(r, FLD("code"), 0, PROTO_CODE_MAX, &code));
    if ((status == PROTO_ACK_REJECTED) != (code != 0))
        return proto_rd_fail(r->err, TALLY_ERANGE, FLD("code"),
                             "code %" PRIu64 " with status %" PRIu64
                             " (the code is non-zero exactly when status is 2, rejected)",
                             code, status);
    a->code = (uint32_t)code;
    TRY(rd_i64(r, FLD("sample"), -1, PROTO_ACK_SAMPLE_MAX, &sample));
    a->sample = (int32_t)sample;
    TRY(proto_rd_text(r, FLD("field"), 0, PROTO_FIELD_MAX, &a->field));
    return proto_rd_text(r, FLD("message"), 0, PROTO_MESSAGE_MAX, &a->message);
}

static int dec_welcome(rd_t *r, proto_msg_t *m)
{
    __typeof__(m->u.welcome) *w = &m->u.welcome;
    static const char *const keys[] = {"max_samples", "max_name",   "max_msg",
                                       "skew_ms",     "max_age_ms", "client_expiry_ms"};
    int64_t *dst[] = {&w->max_samples, &w->max_name,   &w->max_msg,
                      &w->skew_ms,     &w->max_age_ms, &w->client_expiry_ms};
    proto_str_t seen[PROTO_LIMITS_MAX];
    uint32_t n = 0;
    TRY(proto_rd_text(r, FLD("server"), 0, PROTO_TEXT_MAX, &w->server));
    TRY(proto_rd_text(r, FLD("pub_endpoint"), 0, PROTO_ENDPOINT_MAX, &w->pub_endpoint));
    TRY(rd_u64(r, FLD("stream_id"), 0, UINT64_MAX, &w->stream_id));
    TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &w->seq));
    TRY(rd_array(r, FLD("columns"), &n));
    if (n == 0 || n > PROTO_COLUMNS_MAX)
        return proto_rd_fail(r->err, n ? TALLY_ETOOMANY : TALLY_ERANGE, FLD("columns"),
                             "%" PRIu32 " columns, allowed 1..%d", n, PROTO_COLUMNS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        fld_t f = {"columns", -1, (int32_t)i, NULL, 0};
        TRY(proto_rd_text(r, &f, 1, PROTO_COLUMN_NAME_MAX, &w->columns[i]));
    }
    w->ncolumns = n;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        *dst[k] = -1;
    TRY(rd_map(r, FLD("limits"), &n));
    if (n > PROTO_LIMITS_MAX)
        return proto_rd_fail(r->err, TALLY_ETOOMANY, FLD("limits"),
                             "%" PRIu32 " entries exceed the limit of %d", n, PROTO_LIMITS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        int64_t val = 0;
        TRY(proto_rd_text(r, FLD("limits"), 0, UINT32_MAX, &seen[i]));
        TRY(proto_rd_chk_dup(r, FLD("limits"), seen, sizeof seen[0], i));
        fld_t f = {"limits", -1, -1, seen[i].ptr, seen[i].len};
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &val));
        /* Unknown keys are skipped so a newer daemon can add limits. */
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (proto_str_eq(seen[i], keys[k]))
                *dst[k] = val < 0 ? -1 : val; /* negative means "not sent" */
    }
    return 0;
}

static int dec_stats(rd_t *r, proto_msg_t *m)
{
    uint32_t n = 0;
    m->u.stats.n = 0;
    TRY(rd_map(r, FLD("counters"), &n));
    if (n > PROTO_STATS_MAX)
        return proto_rd_fail(r->err, TALLY_ETOOMANY, FLD("counters"),
                             "%" PRIu32 " entries exceed the limit of %d", n, PROTO_STATS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        proto_stat_t *e = &m->u.stats.entries[i];
        TRY(proto_rd_text(r, FLD("counters"), 1, PROTO_STAT_NAME_MAX, &e->name));
        TRY(proto_rd_chk_dup(r, FLD("counters"), &m->u.stats.entries[0].name, sizeof *e, i));
        fld_t f = {"counters", -1, -1, e->name.ptr, e->name.len};
        TRY(rd_i64(r, &f, INT64_MIN, INT64_MAX, &e->value));
    }
    m->u.stats.n = n;
    return 0;
}

static int dec_backup_fetch(rd_t *r, proto_msg_t *m)
{
    uint64_t u = 0;
    proto_str_t *name = &m->u.backup_fetch.name;
    TRY(proto_rd_text(r, FLD("name"), 0, PROTO_BACKUP_NAME_MAX, name));
    if (!proto_backup_name_valid(name->ptr, name->len))
        return proto_rd_fail(r->err, TALLY_EBADNAME, FLD("name"),
                             "not a backup's name: backup-YYYYMMDDTHHMMSSZ, optionally followed "
                             "by -N (1 to 3 digits)");
    TRY(rd_u64(r, FLD("file"), 0, UINT32_MAX, &u));
    m->u.backup_fetch.file = (uint32_t)u;
    return rd_u64(r, FLD("offset"), 0, UINT64_MAX, &m->u.backup_fetch.offset);
}

static int dec_backup_chunk(rd_t *r, proto_msg_t *m)
{
    uint64_t u = 0;
    __typeof__(m->u.backup_chunk) *c = &m->u.backup_chunk;
    TRY(rd_u64(r, FLD("files"), 1, UINT32_MAX, &u));
    c->files = (uint32_t)u;
    TRY(rd_u64(r, FLD("file"), 0, c->files - 1, &u));
    c->file = (uint32_t)u;
    TRY(proto_rd_text(r, FLD("file_name"), 0, PROTO_BACKUP_NAME_MAX, &c->file_name));
    if (!proto_backup_file_name_valid(c->file_name.ptr, c->file_name.len))
        return proto_rd_fail(r->err, TALLY_EBADNAME, FLD("file_name"),
                             "not a file name a copy may take: ASCII letters, digits, '.', '-' "
                             "and '_', not beginning with '.'");
    TRY(rd_u64(r, FLD("size"), 0, UINT64_MAX, &c->size));
    TRY(rd_u64(r, FLD("offset"), 0, c->size, &c->offset));
    TRY(rd_bytes(r, FLD("data"), true, &c->data));
    uint64_t left = c->size - c->offset, want = left < PROTO_CHUNK_MAX ? left : PROTO_CHUNK_MAX;
    if (c->data.len != want)
        return proto_rd_fail(r->err, TALLY_ERANGE, FLD("data"),
                             "bin of %" PRIu32 " bytes, must be %" PRIu64 " (the file's %" PRIu64
                             " bytes from offset %" PRIu64 ", at most %d a chunk)",
                             c->data.len, want, c->size, c->offset, PROTO_CHUNK_MAX);
    return 0;
}

static int dec_period(rd_t *r, proto_msg_t *m)
{
    uint64_t u = 0;
    TRY(rd_u64(r, FLD("index"), 0, UINT32_MAX, &u));
    m->u.period.index = (uint32_t)u;
    TRY(rd_u64(r, FLD("count"), 0, UINT32_MAX, &u));
    m->u.period.count = (uint32_t)u;
    if (m->u.period.count == 0 && m->u.period.index != 0)
        return proto_rd_fail(r->err, TALLY_ERANGE, FLD("index"),
                             "%" PRIu32 " in an answer of no items (it must be 0)",
                             m->u.period.index);
    if (m->u.period.count > 0 && m->u.period.index >= m->u.period.count)
        return proto_rd_fail(r->err, TALLY_ERANGE, FLD("index"),
                             "item %" PRIu32 " of an answer of %" PRIu32 " items",
                             m->u.period.index, m->u.period.count);
    m->u.period.has_tally = !is_nil(r);
    if (m->u.period.has_tally != (m->u.period.count > 0))
        return proto_rd_fail(r->err, TALLY_EMALFORMED, FLD("tally"),
                             "a tally must be nil exactly when count is 0 (count %" PRIu32 ")",
                             m->u.period.count);
    return m->u.period.has_tally ? dec_tally(r, &m->u.period.tally) : 0;
}

/* Every request and reply but SUBMIT/ACK starts with req_id or stream_id at
 * offset 0 of its struct, which the union lets us fill in one place. */
static int dec_req_id(rd_t *r, proto_msg_t *m)
{
    bool stream = m->type == PROTO_UPDATE || m->type == PROTO_HEARTBEAT ||
                  m->type == PROTO_GOODBYE || m->type == PROTO_PERIOD_CHANGED;
    return rd_u64(r, FLD(stream ? "stream_id" : "req_id"), 0, UINT64_MAX, &m->u.stats_req.req_id);
}

static int dec_body(rd_t *r, proto_msg_t *m, proto_sample_t *samples, uint32_t cap)
{
    uint64_t u = 0;
    if (m->type == PROTO_SUBMIT)
        return dec_submit(r, &m->u.submit, samples, cap);
    if (m->type == PROTO_ACK)
        return dec_ack(r, &m->u.ack);
    TRY(dec_req_id(r, m));
    switch (m->type) {
    case PROTO_SNAPSHOT_REQ:
        return proto_rd_text(r, FLD("prefix"), 0, PROTO_PREFIX_MAX, &m->u.snapshot_req.prefix);
    case PROTO_SNAPSHOT_ITEM:
        return dec_tally(r, &m->u.snapshot_item.tally);
    case PROTO_SNAPSHOT_END:
        TRY(rd_u64(r, FLD("stream_id"), 0, UINT64_MAX, &m->u.snapshot_end.stream_id));
        TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &m->u.snapshot_end.seq));
        TRY(rd_u64(r, FLD("count"), 0, UINT32_MAX, &u));
        m->u.snapshot_end.count = (uint32_t)u;
        return 0;
    case PROTO_UPDATE:
        return dec_tally(r, &m->u.update.tally);
    case PROTO_HEARTBEAT:
        TRY(rd_u64(r, FLD("seq"), 0, UINT64_MAX, &m->u.heartbeat.seq));
        return rd_i64(r, FLD("time_ms"), INT64_MIN, INT64_MAX, &m->u.heartbeat.time_ms);
    case PROTO_HELLO:
        return proto_rd_text(r, FLD("client"), 0, PROTO_TEXT_MAX, &m->u.hello.client);
    case PROTO_WELCOME:
        return dec_welcome(r, m);
    case PROTO_STATS:
        return dec_stats(r, m);
    case PROTO_PING:
        return rd_i64(r, FLD("time_ms"), INT64_MIN, INT64_MAX, &m->u.ping.time_ms);
    case PROTO_PONG:
        TRY(rd_i64(r, FLD("time_ms"), INT64_MIN, INT64_MAX, &m->u.pong.time_ms));
        return rd_u64(r, FLD("seq"), 0, UINT64_MAX, &m->u.pong.seq);
    case PROTO_ERROR:
        TRY(rd_u64(r, FLD("code"), 1, PROTO_CODE_MAX, &u));
        m->u.error.code = (uint32_t)u;
        TRY(proto_rd_text(r, FLD("field"), 0, PROTO_FIELD_MAX, &m->u.error.field));
        return proto_rd_text(r, FLD("message"), 0, PROTO_MESSAGE_MAX, &m->u.error.message);
    case PROTO_GOODBYE:
        return rd_u64(r, FLD("seq"), 0, UINT64_MAX, &m->u.goodbye.seq);
    case PROTO_CATALOG_REQ:
        TRY(rd_u64(r, FLD("townships_from"), 0, UINT32_MAX, &u));
        m->u.catalog_req.townships_from = (uint32_t)u;
        TRY(rd_u64(r, FLD("metrics_from"), 0, UINT32_MAX, &u));
        m->u.catalog_req.metrics_from = (uint32_t)u;
        return 0;
    case PROTO_CATALOG:
        return proto_dec_catalog(r, m);
    case PROTO_TOWNSHIPS_REQ:
        TRY(rd_u64(r, FLD("from"), 0, UINT32_MAX, &u));
        m->u.townships_req.from = (uint32_t)u;
        return 0;
    case PROTO_TOWNSHIPS:
        return proto_dec_townships(r, m);
    case PROTO_PERIOD_REQ:
        TRY(proto_rd_text(r, FLD("prefix"), 0, PROTO_PREFIX_MAX, &m->u.period_req.prefix));
        return rd_period_text(r, "period", &m->u.period_req.period);
    case PROTO_SPAN_REQ:
        TRY(proto_rd_text(r, FLD("prefix"), 0, PROTO_PREFIX_MAX, &m->u.span_req.prefix));
        TRY(rd_period_text(r, "from", &m->u.span_req.from));
        return rd_period_text(r, "to", &m->u.span_req.to);
    case PROTO_PERIOD:
        return dec_period(r, m);
    case PROTO_RANGE_REQ:
        TRY(rd_name(r, FLD("metric"), &m->u.range_req.metric));
        TRY(rd_scope(r, &m->u.range_req.scope));
        TRY(rd_period_text(r, "by", &m->u.range_req.by));
        TRY(rd_period_text(r, "from", &m->u.range_req.from));
        return rd_period_text(r, "to", &m->u.range_req.to);
    case PROTO_RANGE:
        return proto_dec_range(r, m);
    case PROTO_PERIOD_CHANGED:
        return proto_dec_changed(r, m);
    case PROTO_CLOCK: {
        int64_t off = 0;
        TRY(rd_i64(r, FLD("now_ms"), INT64_MIN, INT64_MAX, &m->u.clock.now_ms));
        TRY(proto_rd_text(r, FLD("zone"), 1, PROTO_ZONE_MAX, &m->u.clock.zone));
        TRY(rd_i64(r, FLD("utc_offset_s"), -PROTO_UTC_OFFSET_MAX, PROTO_UTC_OFFSET_MAX, &off));
        m->u.clock.utc_offset_s = (int32_t)off;
        return 0;
    }
    case PROTO_BACKUP:
        TRY(proto_rd_text(r, FLD("path"), 1, PROTO_PATH_MAX, &m->u.backup.path));
        TRY(rd_u64(r, FLD("files"), 1, UINT32_MAX, &u));
        m->u.backup.files = (uint32_t)u;
        TRY(rd_u64(r, FLD("bytes"), 0, UINT64_MAX, &m->u.backup.bytes));
        return rd_u64(r, FLD("ms"), 0, UINT64_MAX, &m->u.backup.ms);
    case PROTO_BACKUP_FETCH:
        return dec_backup_fetch(r, m);
    case PROTO_BACKUP_CHUNK:
        return dec_backup_chunk(r, m);
    case PROTO_BACKUP_LIST:
        return proto_dec_backup_list(r, m);
    default: /* STATS_REQ, CLOCK_REQ, BACKUP_REQ, BACKUP_LIST_REQ: nothing after req_id */
        return 0;
    }
}

/* Start r on buf[0..len) and zero what the caller may read after a
 * failure (type, submit.seq and the leading req_id), not the whole union:
 * a STATS body is 6 KiB. */
static void dec_start(rd_t *r, const void *buf, size_t len, proto_msg_t *msg, proto_error_t *err)
{
    static const uint8_t none[1];
    assert(msg != NULL);
    const uint8_t *p = buf != NULL ? buf : none;
    *r = (rd_t){p, p, p + (buf != NULL ? len : 0), err};
    msg->version = 0;
    msg->type = 0;
    memset(&msg->u, 0, sizeof msg->u.submit);
}

/* The envelope: an array of the type's element count starting with
 * version 1 and a known type, which go into msg. */
static int dec_envelope(rd_t *r, proto_msg_t *msg)
{
    ival_t v = {0};
    uint32_t n = 0;
    char vs[24];
    proto_error_t *err = r->err;

    if (r->p == r->end)
        return proto_rd_fail(err, TALLY_EMALFORMED, FLD("body"),
                             "the message is empty (0 bytes): a message is a MessagePack array");
    if ((*r->p & 0xf0) != 0x90 && *r->p != 0xdc && *r->p != 0xdd)
        return proto_rd_fail(err, TALLY_EMALFORMED, FLD("body"),
                             "a message is a MessagePack array, got %s", proto_rd_type_name(*r->p));
    TRY(rd_array(r, FLD("body"), &n));
    if (n < 2)
        return proto_rd_fail(err, TALLY_EMALFORMED, FLD("body"),
                             "array of %" PRIu32 " elements, a message starts with [version, type]",
                             n);
    TRY(rd_int(r, FLD("version"), &v));
    if (v.neg || v.u != PROTO_VERSION) {
        msg->version = !v.neg && v.u <= UINT32_MAX ? (uint32_t)v.u : 0;
        return proto_rd_fail(err, TALLY_EVERSION, FLD("version"),
                             "%s is not supported, this codec speaks version %d",
                             proto_rd_ival_str(&v, vs), PROTO_VERSION);
    }
    msg->version = PROTO_VERSION;
    TRY(rd_int(r, FLD("type"), &v));
    if (v.neg || v.u < PROTO_SUBMIT || v.u > PROTO_TYPE_LAST)
        return proto_rd_fail(err, TALLY_ETYPE, FLD("type"),
                             "%s is not a known message type (%d..%d)", proto_rd_ival_str(&v, vs),
                             PROTO_SUBMIT, PROTO_TYPE_LAST);
    msg->type = (uint32_t)v.u;
    if (n != proto_msg_elems[msg->type])
        return proto_rd_fail(err, TALLY_EMALFORMED, FLD(msg_names[msg->type]),
                             "%s is an array of %" PRIu32 " elements, expected %d",
                             msg_names[msg->type], n, proto_msg_elems[msg->type]);
    return 0;
}

int proto_decode(const void *buf, size_t len, proto_msg_t *msg, proto_sample_t *samples,
                 uint32_t samples_cap, proto_error_t *err)
{
    rd_t r;
    dec_start(&r, buf, len, msg, err);
    if (samples == NULL || samples_cap > PROTO_SAMPLES_MAX)
        samples_cap = samples == NULL ? 0 : PROTO_SAMPLES_MAX;
    TRY(dec_envelope(&r, msg));
    TRY(dec_body(&r, msg, samples, samples_cap));
    if (r.p != r.end)
        return proto_rd_fail(err, TALLY_ETRAILING, FLD("body"),
                             "%td bytes follow the end of the %s message", r.end - r.p,
                             msg_names[msg->type]);
    return 0;
}

int proto_decode_head(const void *buf, size_t len, proto_msg_t *msg, proto_error_t *err)
{
    rd_t r;
    dec_start(&r, buf, len, msg, err);
    TRY(dec_envelope(&r, msg));
    if (msg->type == PROTO_SUBMIT)
        return dec_submit_head(&r, &msg->u.submit);
    if (msg->type == PROTO_ACK)
        return 0;
    return dec_req_id(&r, msg);
}
