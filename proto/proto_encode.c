/* proto_encode.c - the encoder for the tally wire protocol v1.
 *
 * The encoder uses msgpack-c's packer and checks every field against the same
 * ranges the decoder (proto_decode.c) enforces, so whatever it writes decodes
 * again.  The ranges and rules both sides apply come from proto.c through
 * proto_internal.h.
 */
#include "proto.h"
#include "proto_internal.h"

#include <assert.h>
#include <string.h>

#include <msgpack.h>

/* ---- encoder ------------------------------------------------------------ */

#define PK(expr)                                                                                   \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            return TALLY_ENOMEM;                                                                   \
    } while (0)
#define NEED(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return TALLY_EINVAL;                                                                   \
    } while (0)

static bool is_valid_view(proto_str_t s)
{
    return s.len == 0 || s.ptr != NULL;
}

static bool is_valid_text(proto_str_t s, uint32_t min, uint32_t max)
{
    return is_valid_view(s) && s.len >= min && s.len <= max && proto_utf8_valid(s.ptr, s.len);
}

static bool is_valid_name(proto_str_t s)
{
    return is_valid_view(s) && proto_name_check(s.ptr, s.len) == 0;
}

static int pk_str(msgpack_packer *pk, proto_str_t s)
{
    /* The sbuffer treats a NULL body as "nothing to write"; an empty view
     * may legitimately be {NULL, 0}. */
    PK(msgpack_pack_str_with_body(pk, s.len ? s.ptr : "", s.len));
    return 0;
}

static int pk_head(msgpack_packer *pk, uint32_t type)
{
    PK(msgpack_pack_array(pk, proto_msg_elems[type]));
    PK(msgpack_pack_uint64(pk, PROTO_VERSION));
    PK(msgpack_pack_uint64(pk, type));
    return 0;
}

static bool has_unique_keys(const proto_str_t *keys, size_t stride, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++) {
        const proto_str_t *k = (const proto_str_t *)((const char *)keys + stride * i);
        for (uint32_t j = 0; j < i; j++) {
            const proto_str_t *o = (const proto_str_t *)((const char *)keys + stride * j);
            if (o->len == k->len && (k->len == 0 || memcmp(o->ptr, k->ptr, k->len) == 0))
                return false;
        }
    }
    return true;
}

static int enc_submit(msgpack_packer *pk, const proto_submit_t *s)
{
    NEED(s->seq >= 1 && is_valid_name(s->township));
    NEED(s->time_ms >= PROTO_TIME_MIN && s->time_ms < PROTO_TIME_MAX);
    NEED(s->nsamples >= 1 && s->nsamples <= PROTO_SAMPLES_MAX && s->samples != NULL);
    TRY(pk_head(pk, PROTO_SUBMIT));
    PK(msgpack_pack_bin_with_body(pk, s->client_id, PROTO_CLIENT_ID_LEN));
    PK(msgpack_pack_uint64(pk, s->seq));
    TRY(pk_str(pk, s->township));
    PK(msgpack_pack_int64(pk, s->time_ms));
    PK(msgpack_pack_array(pk, s->nsamples));
    for (uint32_t i = 0; i < s->nsamples; i++) {
        NEED(is_valid_name(s->samples[i].metric));
        PK(msgpack_pack_array(pk, 2));
        TRY(pk_str(pk, s->samples[i].metric));
        PK(msgpack_pack_int64(pk, s->samples[i].value));
    }
    return 0;
}

static int enc_ack(msgpack_packer *pk, const proto_ack_t *a)
{
    NEED(a->seq >= 1 && a->status <= PROTO_ACK_REJECTED && a->code <= PROTO_CODE_MAX);
    NEED((a->status == PROTO_ACK_REJECTED) == (a->code != 0));
    NEED(a->sample >= -1 && a->sample <= PROTO_ACK_SAMPLE_MAX);
    NEED(is_valid_text(a->field, 0, PROTO_FIELD_MAX) &&
         is_valid_text(a->message, 0, PROTO_MESSAGE_MAX));
    TRY(pk_head(pk, PROTO_ACK));
    PK(msgpack_pack_uint64(pk, a->seq));
    PK(msgpack_pack_uint64(pk, a->status));
    PK(msgpack_pack_uint64(pk, a->code));
    PK(msgpack_pack_int64(pk, a->sample));
    TRY(pk_str(pk, a->field));
    return pk_str(pk, a->message);
}

static int enc_tally(msgpack_packer *pk, const proto_tally_t *t)
{
    NEED(is_valid_name(t->metric) && (t->scope.len == 0 || is_valid_name(t->scope)));
    NEED(t->kind <= PROTO_KIND_RATIO && t->nvalues <= PROTO_COLUMNS_MAX);
    for (uint32_t i = 0; i < t->nvalues; i++) {
        const proto_value_t *v = &t->values[i];
        NEED(is_valid_text(v->name, 1, PROTO_COLUMN_NAME_MAX));
        NEED(!v->present || t->kind != PROTO_KIND_RATIO || v->den != 0);
    }
    NEED(has_unique_keys(&t->values[0].name, sizeof t->values[0], t->nvalues));
    PK(msgpack_pack_array(pk, PROTO_TALLY_ELEMS));
    TRY(pk_str(pk, t->metric));
    TRY(pk_str(pk, t->scope));
    PK(msgpack_pack_uint64(pk, t->kind));
    PK(msgpack_pack_uint64(pk, t->seq));
    PK(msgpack_pack_int64(pk, t->time_ms));
    PK(msgpack_pack_map(pk, t->nvalues));
    for (uint32_t i = 0; i < t->nvalues; i++) {
        const proto_value_t *v = &t->values[i];
        TRY(pk_str(pk, v->name));
        if (!v->present) {
            PK(msgpack_pack_nil(pk));
        } else if (t->kind == PROTO_KIND_RATIO) {
            PK(msgpack_pack_array(pk, 2));
            PK(msgpack_pack_int64(pk, v->num));
            PK(msgpack_pack_int64(pk, v->den));
        } else {
            PK(msgpack_pack_int64(pk, v->num));
        }
    }
    return 0;
}

static int enc_backup_chunk(msgpack_packer *pk, const proto_msg_t *m)
{
    const __typeof__(m->u.backup_chunk) *c = &m->u.backup_chunk;
    uint64_t left = c->offset <= c->size ? c->size - c->offset : 0;
    NEED(c->files >= 1 && c->file < c->files && c->offset <= c->size);
    NEED(is_valid_view(c->file_name) &&
         proto_backup_file_name_valid(c->file_name.ptr, c->file_name.len));
    NEED(is_valid_view(c->data) &&
         c->data.len == (left < PROTO_CHUNK_MAX ? left : PROTO_CHUNK_MAX));
    TRY(pk_head(pk, m->type));
    PK(msgpack_pack_uint64(pk, c->req_id));
    PK(msgpack_pack_uint64(pk, c->files));
    PK(msgpack_pack_uint64(pk, c->file));
    TRY(pk_str(pk, c->file_name));
    PK(msgpack_pack_uint64(pk, c->size));
    PK(msgpack_pack_uint64(pk, c->offset));
    PK(msgpack_pack_bin_with_body(pk, c->data.ptr, c->data.len));
    return 0;
}

static int enc_welcome(msgpack_packer *pk, const proto_msg_t *m)
{
    const __typeof__(m->u.welcome) *w = &m->u.welcome;
    const char *const keys[] = {"max_samples", "max_name",   "max_msg",
                                "skew_ms",     "max_age_ms", "client_expiry_ms"};
    /* client_expiry_ms goes out only when set (> 0): a zeroed struct must
     * not announce that client ids expire at once. */
    const int64_t vals[] = {w->max_samples, w->max_name,
                            w->max_msg,     w->skew_ms,
                            w->max_age_ms,  w->client_expiry_ms > 0 ? w->client_expiry_ms : -1};
    uint32_t nlimits = 0;
    NEED(is_valid_text(w->server, 0, PROTO_TEXT_MAX) &&
         is_valid_text(w->pub_endpoint, 0, PROTO_ENDPOINT_MAX));
    NEED(w->ncolumns >= 1 && w->ncolumns <= PROTO_COLUMNS_MAX);
    for (uint32_t i = 0; i < w->ncolumns; i++)
        NEED(is_valid_text(w->columns[i], 1, PROTO_COLUMN_NAME_MAX));
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++)
        nlimits += vals[k] >= 0;
    TRY(pk_head(pk, PROTO_WELCOME));
    PK(msgpack_pack_uint64(pk, w->req_id));
    TRY(pk_str(pk, w->server));
    TRY(pk_str(pk, w->pub_endpoint));
    PK(msgpack_pack_uint64(pk, w->stream_id));
    PK(msgpack_pack_uint64(pk, w->seq));
    PK(msgpack_pack_array(pk, w->ncolumns));
    for (uint32_t i = 0; i < w->ncolumns; i++)
        TRY(pk_str(pk, w->columns[i]));
    PK(msgpack_pack_map(pk, nlimits));
    for (size_t k = 0; k < sizeof vals / sizeof vals[0]; k++) {
        if (vals[k] < 0)
            continue; /* a negative limit means "not sent" */
        TRY(pk_str(pk, proto_str(keys[k])));
        PK(msgpack_pack_int64(pk, vals[k]));
    }
    return 0;
}

static int enc_stats(msgpack_packer *pk, const proto_msg_t *m)
{
    uint32_t n = m->u.stats.n;
    NEED(n <= PROTO_STATS_MAX);
    for (uint32_t i = 0; i < n; i++)
        NEED(is_valid_text(m->u.stats.entries[i].name, 1, PROTO_STAT_NAME_MAX));
    NEED(has_unique_keys(&m->u.stats.entries[0].name, sizeof m->u.stats.entries[0], n));
    TRY(pk_head(pk, PROTO_STATS));
    PK(msgpack_pack_uint64(pk, m->u.stats.req_id));
    PK(msgpack_pack_map(pk, n));
    for (uint32_t i = 0; i < n; i++) {
        TRY(pk_str(pk, m->u.stats.entries[i].name));
        PK(msgpack_pack_int64(pk, m->u.stats.entries[i].value));
    }
    return 0;
}

static bool is_valid_operand(const proto_metric_info_t *e)
{
    if (e->kind == PROTO_KIND_RATIO)
        return is_valid_name(e->numerator) && is_valid_name(e->denominator);
    return e->numerator.len == 0 && e->denominator.len == 0;
}

static int enc_townships(msgpack_packer *pk, const proto_msg_t *m)
{
    const __typeof__(m->u.townships) *t = &m->u.townships;
    NEED(t->n == 0 || t->names != NULL);
    TRY(pk_head(pk, PROTO_TOWNSHIPS));
    PK(msgpack_pack_uint64(pk, t->req_id));
    PK(msgpack_pack_uint64(pk, t->next));
    PK(msgpack_pack_array(pk, t->n));
    for (uint32_t i = 0; i < t->n; i++) {
        NEED(is_valid_name(t->names[i]));
        TRY(pk_str(pk, t->names[i]));
    }
    return 0;
}

static int enc_backup_list(msgpack_packer *pk, const proto_msg_t *m)
{
    const __typeof__(m->u.backup_list) *b = &m->u.backup_list;
    NEED(is_valid_text(b->dir, 0, PROTO_PATH_MAX) && b->n <= PROTO_BACKUPS_MAX &&
         b->n <= b->total && (b->n == 0 || b->backups != NULL));
    TRY(pk_head(pk, PROTO_BACKUP_LIST));
    PK(msgpack_pack_uint64(pk, b->req_id));
    TRY(pk_str(pk, b->dir));
    PK(msgpack_pack_uint64(pk, b->total));
    PK(msgpack_pack_array(pk, b->n));
    for (uint32_t i = 0; i < b->n; i++) {
        const proto_backup_entry_t *e = &b->backups[i];
        NEED(is_valid_view(e->name) && proto_backup_name_valid(e->name.ptr, e->name.len));
        PK(msgpack_pack_array(pk, 4));
        TRY(pk_str(pk, e->name));
        PK(msgpack_pack_uint64(pk, e->files));
        PK(msgpack_pack_uint64(pk, e->bytes));
        PK(msgpack_pack_uint64(pk, e->sums ? 1 : 0));
    }
    return 0;
}

static int enc_catalog(msgpack_packer *pk, const proto_msg_t *m)
{
    const __typeof__(m->u.catalog) *c = &m->u.catalog;
    NEED(c->ntownships <= c->townships_total && c->nmetrics <= c->metrics_total);
    NEED(c->ntownships == 0 || c->townships != NULL);
    NEED(c->nmetrics == 0 || c->metrics != NULL);
    TRY(pk_head(pk, PROTO_CATALOG));
    PK(msgpack_pack_uint64(pk, c->req_id));
    PK(msgpack_pack_uint64(pk, c->catalog_id));
    PK(msgpack_pack_uint64(pk, c->townships_total));
    PK(msgpack_pack_uint64(pk, c->metrics_total));
    PK(msgpack_pack_array(pk, c->ntownships));
    for (uint32_t i = 0; i < c->ntownships; i++) {
        const proto_township_t *t = &c->townships[i];
        NEED(is_valid_name(t->id) && is_valid_text(t->name, 0, PROTO_TOWNSHIP_NAME_MAX));
        NEED(t->type <= PROTO_TOWNSHIP_TYPE_MAX);
        PK(msgpack_pack_array(pk, 3));
        TRY(pk_str(pk, t->id));
        TRY(pk_str(pk, t->name));
        PK(msgpack_pack_uint64(pk, t->type));
    }
    PK(msgpack_pack_array(pk, c->nmetrics));
    for (uint32_t i = 0; i < c->nmetrics; i++) {
        const proto_metric_info_t *e = &c->metrics[i];
        NEED(is_valid_name(e->id) && e->kind <= PROTO_KIND_RATIO && e->scale <= PROTO_SCALE_MAX);
        NEED(is_valid_text(e->unit, 0, PROTO_UNIT_MAX) &&
             is_valid_text(e->label, 0, PROTO_LABEL_MAX) && is_valid_operand(e));
        PK(msgpack_pack_array(pk, 7));
        TRY(pk_str(pk, e->id));
        PK(msgpack_pack_uint64(pk, e->kind));
        TRY(pk_str(pk, e->unit));
        PK(msgpack_pack_uint64(pk, e->scale));
        TRY(pk_str(pk, e->label));
        TRY(pk_str(pk, e->numerator));
        TRY(pk_str(pk, e->denominator));
    }
    return 0;
}

static bool is_period_text(proto_str_t s)
{
    return is_valid_text(s, 1, PROTO_PERIOD_TEXT_MAX);
}

static int enc_point(msgpack_packer *pk, uint8_t kind, const proto_value_t *v)
{
    NEED(is_period_text(v->name));
    NEED(!v->present || kind != PROTO_KIND_RATIO || v->den != 0);
    PK(msgpack_pack_array(pk, 2));
    TRY(pk_str(pk, v->name));
    if (!v->present) {
        PK(msgpack_pack_nil(pk));
    } else if (kind == PROTO_KIND_RATIO) {
        PK(msgpack_pack_array(pk, 2));
        PK(msgpack_pack_int64(pk, v->num));
        PK(msgpack_pack_int64(pk, v->den));
    } else {
        PK(msgpack_pack_int64(pk, v->num));
    }
    return 0;
}

static int enc_history(msgpack_packer *pk, const proto_msg_t *m)
{
    switch (m->type) {
    case PROTO_PERIOD_REQ:
        NEED(is_valid_text(m->u.period_req.prefix, 0, PROTO_PREFIX_MAX));
        NEED(is_period_text(m->u.period_req.period));
        TRY(pk_head(pk, m->type));
        PK(msgpack_pack_uint64(pk, m->u.period_req.req_id));
        TRY(pk_str(pk, m->u.period_req.prefix));
        return pk_str(pk, m->u.period_req.period);
    case PROTO_SPAN_REQ:
        NEED(is_valid_text(m->u.span_req.prefix, 0, PROTO_PREFIX_MAX));
        NEED(is_period_text(m->u.span_req.from) && is_period_text(m->u.span_req.to));
        TRY(pk_head(pk, m->type));
        PK(msgpack_pack_uint64(pk, m->u.span_req.req_id));
        TRY(pk_str(pk, m->u.span_req.prefix));
        TRY(pk_str(pk, m->u.span_req.from));
        return pk_str(pk, m->u.span_req.to);
    case PROTO_PERIOD:
        NEED(m->u.period.has_tally == (m->u.period.count > 0));
        NEED(m->u.period.count == 0 || m->u.period.index < m->u.period.count);
        NEED(m->u.period.count > 0 || m->u.period.index == 0);
        TRY(pk_head(pk, m->type));
        PK(msgpack_pack_uint64(pk, m->u.period.req_id));
        PK(msgpack_pack_uint64(pk, m->u.period.index));
        PK(msgpack_pack_uint64(pk, m->u.period.count));
        if (!m->u.period.has_tally) {
            PK(msgpack_pack_nil(pk));
            return 0;
        }
        return enc_tally(pk, &m->u.period.tally);
    case PROTO_RANGE_REQ:
        NEED(is_valid_name(m->u.range_req.metric));
        NEED(m->u.range_req.scope.len == 0 || is_valid_name(m->u.range_req.scope));
        NEED(is_period_text(m->u.range_req.by) && is_period_text(m->u.range_req.from) &&
             is_period_text(m->u.range_req.to));
        TRY(pk_head(pk, m->type));
        PK(msgpack_pack_uint64(pk, m->u.range_req.req_id));
        TRY(pk_str(pk, m->u.range_req.metric));
        TRY(pk_str(pk, m->u.range_req.scope));
        TRY(pk_str(pk, m->u.range_req.by));
        TRY(pk_str(pk, m->u.range_req.from));
        return pk_str(pk, m->u.range_req.to);
    case PROTO_RANGE: {
        const __typeof__(m->u.range) *r = &m->u.range;
        NEED(is_valid_name(r->metric) && (r->scope.len == 0 || is_valid_name(r->scope)));
        NEED(r->kind <= PROTO_KIND_RATIO && r->npoints <= PROTO_RANGE_CHUNK);
        NEED(r->total >= 1 && r->first < r->total && r->npoints <= r->total - r->first);
        TRY(pk_head(pk, m->type));
        PK(msgpack_pack_uint64(pk, r->req_id));
        TRY(pk_str(pk, r->metric));
        TRY(pk_str(pk, r->scope));
        PK(msgpack_pack_uint64(pk, r->kind));
        PK(msgpack_pack_uint64(pk, r->first));
        PK(msgpack_pack_uint64(pk, r->total));
        PK(msgpack_pack_array(pk, r->npoints));
        for (uint32_t i = 0; i < r->npoints; i++)
            TRY(enc_point(pk, r->kind, &r->points[i]));
        return 0;
    }
    case PROTO_PERIOD_CHANGED: {
        const __typeof__(m->u.period_changed) *c = &m->u.period_changed;
        NEED(is_valid_name(c->metric) && (c->scope.len == 0 || is_valid_name(c->scope)));
        NEED(c->nperiods >= 1 && c->nperiods <= PROTO_CHANGED_MAX);
        for (uint32_t i = 0; i < c->nperiods; i++)
            NEED(is_period_text(c->periods[i]));
        TRY(pk_head(pk, m->type));
        PK(msgpack_pack_uint64(pk, c->stream_id));
        PK(msgpack_pack_uint64(pk, c->seq));
        TRY(pk_str(pk, c->metric));
        TRY(pk_str(pk, c->scope));
        PK(msgpack_pack_array(pk, c->nperiods));
        for (uint32_t i = 0; i < c->nperiods; i++)
            TRY(pk_str(pk, c->periods[i]));
        return 0;
    }
    default:
        return TALLY_EINVAL;
    }
}

int proto_encode(msgpack_sbuffer *out, const proto_msg_t *msg)
{
    msgpack_packer pk;
    assert(out != NULL && msg != NULL);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    switch (msg->type) {
    case PROTO_SUBMIT:
        return enc_submit(&pk, &msg->u.submit);
    case PROTO_ACK:
        return enc_ack(&pk, &msg->u.ack);
    case PROTO_SNAPSHOT_REQ:
        NEED(is_valid_text(msg->u.snapshot_req.prefix, 0, PROTO_PREFIX_MAX));
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.snapshot_req.req_id));
        return pk_str(&pk, msg->u.snapshot_req.prefix);
    case PROTO_SNAPSHOT_ITEM:
    case PROTO_UPDATE:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.update.stream_id)); /* or snapshot_item.req_id */
        return enc_tally(&pk, msg->type == PROTO_UPDATE ? &msg->u.update.tally
                                                        : &msg->u.snapshot_item.tally);
    case PROTO_SNAPSHOT_END:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.snapshot_end.req_id));
        PK(msgpack_pack_uint64(&pk, msg->u.snapshot_end.stream_id));
        PK(msgpack_pack_uint64(&pk, msg->u.snapshot_end.seq));
        PK(msgpack_pack_uint64(&pk, msg->u.snapshot_end.count));
        return 0;
    case PROTO_HEARTBEAT:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.heartbeat.stream_id));
        PK(msgpack_pack_uint64(&pk, msg->u.heartbeat.seq));
        PK(msgpack_pack_int64(&pk, msg->u.heartbeat.time_ms));
        return 0;
    case PROTO_HELLO:
        NEED(is_valid_text(msg->u.hello.client, 0, PROTO_TEXT_MAX));
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.hello.req_id));
        return pk_str(&pk, msg->u.hello.client);
    case PROTO_WELCOME:
        return enc_welcome(&pk, msg);
    case PROTO_STATS_REQ:
    case PROTO_CLOCK_REQ:
    case PROTO_BACKUP_REQ:
    case PROTO_BACKUP_LIST_REQ:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.stats_req.req_id));
        return 0;
    case PROTO_CLOCK:
        NEED(is_valid_text(msg->u.clock.zone, 1, PROTO_ZONE_MAX));
        NEED(msg->u.clock.utc_offset_s >= -PROTO_UTC_OFFSET_MAX &&
             msg->u.clock.utc_offset_s <= PROTO_UTC_OFFSET_MAX);
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.clock.req_id));
        PK(msgpack_pack_int64(&pk, msg->u.clock.now_ms));
        TRY(pk_str(&pk, msg->u.clock.zone));
        PK(msgpack_pack_int64(&pk, msg->u.clock.utc_offset_s));
        return 0;
    case PROTO_BACKUP:
        NEED(is_valid_text(msg->u.backup.path, 1, PROTO_PATH_MAX) && msg->u.backup.files >= 1);
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.backup.req_id));
        TRY(pk_str(&pk, msg->u.backup.path));
        PK(msgpack_pack_uint64(&pk, msg->u.backup.files));
        PK(msgpack_pack_uint64(&pk, msg->u.backup.bytes));
        PK(msgpack_pack_uint64(&pk, msg->u.backup.ms));
        return 0;
    case PROTO_BACKUP_FETCH:
        NEED(is_valid_view(msg->u.backup_fetch.name) &&
             proto_backup_name_valid(msg->u.backup_fetch.name.ptr, msg->u.backup_fetch.name.len));
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.backup_fetch.req_id));
        TRY(pk_str(&pk, msg->u.backup_fetch.name));
        PK(msgpack_pack_uint64(&pk, msg->u.backup_fetch.file));
        PK(msgpack_pack_uint64(&pk, msg->u.backup_fetch.offset));
        return 0;
    case PROTO_BACKUP_CHUNK:
        return enc_backup_chunk(&pk, msg);
    case PROTO_BACKUP_LIST:
        return enc_backup_list(&pk, msg);
    case PROTO_STATS:
        return enc_stats(&pk, msg);
    case PROTO_PING:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.ping.req_id));
        PK(msgpack_pack_int64(&pk, msg->u.ping.time_ms));
        return 0;
    case PROTO_PONG:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.pong.req_id));
        PK(msgpack_pack_int64(&pk, msg->u.pong.time_ms));
        PK(msgpack_pack_uint64(&pk, msg->u.pong.seq));
        return 0;
    case PROTO_ERROR:
        NEED(msg->u.error.code >= 1 && msg->u.error.code <= PROTO_CODE_MAX);
        NEED(is_valid_text(msg->u.error.field, 0, PROTO_FIELD_MAX));
        NEED(is_valid_text(msg->u.error.message, 0, PROTO_MESSAGE_MAX));
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.error.req_id));
        PK(msgpack_pack_uint64(&pk, msg->u.error.code));
        TRY(pk_str(&pk, msg->u.error.field));
        return pk_str(&pk, msg->u.error.message);
    case PROTO_GOODBYE:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.goodbye.stream_id));
        PK(msgpack_pack_uint64(&pk, msg->u.goodbye.seq));
        return 0;
    case PROTO_CATALOG_REQ:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.catalog_req.req_id));
        PK(msgpack_pack_uint64(&pk, msg->u.catalog_req.townships_from));
        PK(msgpack_pack_uint64(&pk, msg->u.catalog_req.metrics_from));
        return 0;
    case PROTO_CATALOG:
        return enc_catalog(&pk, msg);
    case PROTO_TOWNSHIPS_REQ:
        TRY(pk_head(&pk, msg->type));
        PK(msgpack_pack_uint64(&pk, msg->u.townships_req.req_id));
        PK(msgpack_pack_uint64(&pk, msg->u.townships_req.from));
        return 0;
    case PROTO_TOWNSHIPS:
        return enc_townships(&pk, msg);
    case PROTO_PERIOD_REQ:
    case PROTO_SPAN_REQ:
    case PROTO_PERIOD:
    case PROTO_RANGE_REQ:
    case PROTO_RANGE:
    case PROTO_PERIOD_CHANGED:
        return enc_history(&pk, msg);
    default:
        return TALLY_EINVAL;
    }
}
