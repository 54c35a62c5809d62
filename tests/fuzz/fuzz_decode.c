/* fuzz_decode.c - libFuzzer target for proto_decode and proto_decode_head.
 *
 * Any input must be decoded or rejected cleanly (the sanitizers catch the
 * rest).  A rejected input must come with a consistent report.  An accepted
 * input must be one valid MessagePack value by msgpack-c's own parser, must
 * re-encode, and the re-encoded bytes must decode to the same message: the
 * encoder and decoder agree on every range, and a canonical encoding is a
 * fixed point.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto.h"

/* assert() vanishes under NDEBUG; a fuzzer check must not. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_same(proto_str_t a, proto_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool tally_same(const proto_tally_t *a, const proto_tally_t *b)
{
    if (!str_same(a->metric, b->metric) || !str_same(a->scope, b->scope) || a->kind != b->kind ||
        a->seq != b->seq || a->time_ms != b->time_ms || a->nvalues != b->nvalues)
        return false;
    for (uint32_t i = 0; i < a->nvalues; i++) {
        const proto_value_t *x = &a->values[i], *y = &b->values[i];
        if (!str_same(x->name, y->name) || x->present != y->present || x->num != y->num ||
            x->den != y->den)
            return false;
    }
    return true;
}

/* Two decoded CATALOGs: the same head, and entry by entry the same. */
static bool catalog_same(const proto_msg_t *a, const proto_msg_t *b)
{
    const __typeof__(a->u.catalog) *x = &a->u.catalog, *y = &b->u.catalog;
    if (x->req_id != y->req_id || x->catalog_id != y->catalog_id ||
        x->townships_total != y->townships_total || x->metrics_total != y->metrics_total ||
        x->ntownships != y->ntownships || x->nmetrics != y->nmetrics)
        return false;
    proto_catalog_iter_t i, j;
    proto_township_t t, u;
    proto_metric_info_t e, f;
    proto_catalog_iter(&i, a);
    proto_catalog_iter(&j, b);
    for (uint32_t k = 0; k < x->ntownships; k++) {
        CHECK(proto_catalog_next_township(&i, &t) && proto_catalog_next_township(&j, &u));
        if (!str_same(t.id, u.id) || !str_same(t.name, u.name) || t.type != u.type)
            return false;
    }
    for (uint32_t k = 0; k < x->nmetrics; k++) {
        CHECK(proto_catalog_next_metric(&i, &e) && proto_catalog_next_metric(&j, &f));
        if (!str_same(e.id, f.id) || e.kind != f.kind || !str_same(e.unit, f.unit) ||
            e.scale != f.scale || !str_same(e.label, f.label) ||
            !str_same(e.numerator, f.numerator) || !str_same(e.denominator, f.denominator))
            return false;
    }
    return !proto_catalog_next_metric(&i, &e) && !proto_catalog_next_metric(&j, &f);
}

/* Two decoded TOWNSHIPS: the same head and names. */
static bool townships_same(const proto_msg_t *a, const proto_msg_t *b)
{
    const __typeof__(a->u.townships) *x = &a->u.townships, *y = &b->u.townships;
    if (x->req_id != y->req_id || x->next != y->next || x->n != y->n)
        return false;
    proto_townships_iter_t i, j;
    proto_str_t s, t;
    proto_townships_iter(&i, a);
    proto_townships_iter(&j, b);
    for (uint32_t k = 0; k < x->n; k++) {
        CHECK(proto_townships_next(&i, &s) && proto_townships_next(&j, &t));
        if (!str_same(s, t))
            return false;
    }
    return !proto_townships_next(&i, &s) && !proto_townships_next(&j, &t);
}

/* Two decoded BACKUP_LISTs: the same head and backups. */
static bool backup_list_same(const proto_msg_t *a, const proto_msg_t *b)
{
    const __typeof__(a->u.backup_list) *x = &a->u.backup_list, *y = &b->u.backup_list;
    if (x->req_id != y->req_id || !str_same(x->dir, y->dir) || x->total != y->total || x->n != y->n)
        return false;
    proto_backups_iter_t i, j;
    proto_backup_entry_t s, t;
    proto_backups_iter(&i, a);
    proto_backups_iter(&j, b);
    for (uint32_t k = 0; k < x->n; k++) {
        CHECK(proto_backups_next(&i, &s) && proto_backups_next(&j, &t));
        if (!str_same(s.name, t.name) || s.files != t.files || s.bytes != t.bytes ||
            s.sums != t.sums)
            return false;
    }
    return !proto_backups_next(&i, &s) && !proto_backups_next(&j, &t);
}

/* A decoded CATALOG's entries, a TOWNSHIPS' names and a BACKUP_LIST's
 * backups stay in the input: hand them to the encoder as arrays. */
static void decoded_arrays(proto_msg_t *m)
{
    static proto_township_t towns[PROTO_CATALOG_BYTES / 4];
    static proto_metric_info_t metrics[PROTO_CATALOG_BYTES / 8];
    static proto_str_t names[1u << 19]; /* a name takes 2 bytes at least */
    static proto_backup_entry_t backups[PROTO_BACKUPS_MAX];
    if (m->type == PROTO_BACKUP_LIST) {
        proto_backups_iter_t it;
        uint32_t n = 0;
        proto_backups_iter(&it, m);
        while (n < PROTO_BACKUPS_MAX && proto_backups_next(&it, &backups[n]))
            n++;
        CHECK(n == m->u.backup_list.n);
        m->u.backup_list.backups = backups;
        return;
    }
    if (m->type == PROTO_TOWNSHIPS) {
        proto_townships_iter_t it;
        uint32_t n = 0;
        proto_townships_iter(&it, m);
        while (n < sizeof names / sizeof names[0] && proto_townships_next(&it, &names[n]))
            n++;
        CHECK(n == m->u.townships.n);
        m->u.townships.names = names;
        return;
    }
    if (m->type != PROTO_CATALOG)
        return;
    proto_catalog_iter_t it;
    proto_catalog_iter(&it, m);
    uint32_t nt = 0, nm = 0;
    while (nt < sizeof towns / sizeof towns[0] && proto_catalog_next_township(&it, &towns[nt]))
        nt++;
    while (nm < sizeof metrics / sizeof metrics[0] && proto_catalog_next_metric(&it, &metrics[nm]))
        nm++;
    CHECK(nt == m->u.catalog.ntownships && nm == m->u.catalog.nmetrics);
    m->u.catalog.townships = towns;
    m->u.catalog.metrics = metrics;
}

static bool msg_same(const proto_msg_t *a, const proto_msg_t *b)
{
    if (a->version != b->version || a->type != b->type)
        return false;
    switch (a->type) {
    case PROTO_SUBMIT: {
        const proto_submit_t *x = &a->u.submit, *y = &b->u.submit;
        if (memcmp(x->client_id, y->client_id, PROTO_CLIENT_ID_LEN) != 0 || x->seq != y->seq ||
            !str_same(x->township, y->township) || x->time_ms != y->time_ms ||
            x->nsamples != y->nsamples)
            return false;
        for (uint32_t i = 0; i < x->nsamples; i++)
            if (!str_same(x->samples[i].metric, y->samples[i].metric) ||
                x->samples[i].value != y->samples[i].value)
                return false;
        return true;
    }
    case PROTO_ACK:
        return a->u.ack.seq == b->u.ack.seq && a->u.ack.status == b->u.ack.status &&
               a->u.ack.code == b->u.ack.code && a->u.ack.sample == b->u.ack.sample &&
               str_same(a->u.ack.field, b->u.ack.field) &&
               str_same(a->u.ack.message, b->u.ack.message);
    case PROTO_SNAPSHOT_REQ:
        return a->u.snapshot_req.req_id == b->u.snapshot_req.req_id &&
               str_same(a->u.snapshot_req.prefix, b->u.snapshot_req.prefix);
    case PROTO_SNAPSHOT_ITEM:
        return a->u.snapshot_item.req_id == b->u.snapshot_item.req_id &&
               tally_same(&a->u.snapshot_item.tally, &b->u.snapshot_item.tally);
    case PROTO_SNAPSHOT_END:
        return memcmp(&a->u.snapshot_end, &b->u.snapshot_end, 3 * sizeof(uint64_t)) == 0 &&
               a->u.snapshot_end.count == b->u.snapshot_end.count;
    case PROTO_UPDATE:
        return a->u.update.stream_id == b->u.update.stream_id &&
               tally_same(&a->u.update.tally, &b->u.update.tally);
    case PROTO_HEARTBEAT:
        return a->u.heartbeat.stream_id == b->u.heartbeat.stream_id &&
               a->u.heartbeat.seq == b->u.heartbeat.seq &&
               a->u.heartbeat.time_ms == b->u.heartbeat.time_ms;
    case PROTO_HELLO:
        return a->u.hello.req_id == b->u.hello.req_id &&
               str_same(a->u.hello.client, b->u.hello.client);
    case PROTO_WELCOME: {
        const __typeof__(a->u.welcome) *x = &a->u.welcome, *y = &b->u.welcome;
        if (x->req_id != y->req_id || !str_same(x->server, y->server) ||
            !str_same(x->pub_endpoint, y->pub_endpoint) || x->stream_id != y->stream_id ||
            x->seq != y->seq || x->ncolumns != y->ncolumns || x->max_samples != y->max_samples ||
            x->max_name != y->max_name || x->max_msg != y->max_msg || x->skew_ms != y->skew_ms ||
            x->max_age_ms != y->max_age_ms)
            return false;
        for (uint32_t i = 0; i < x->ncolumns; i++)
            if (!str_same(x->columns[i], y->columns[i]))
                return false;
        return true;
    }
    case PROTO_STATS_REQ:
    case PROTO_CLOCK_REQ:
    case PROTO_BACKUP_REQ:
    case PROTO_BACKUP_LIST_REQ:
        return a->u.stats_req.req_id == b->u.stats_req.req_id;
    case PROTO_BACKUP_LIST:
        return backup_list_same(a, b);
    case PROTO_BACKUP:
        return a->u.backup.req_id == b->u.backup.req_id &&
               str_same(a->u.backup.path, b->u.backup.path) &&
               a->u.backup.files == b->u.backup.files && a->u.backup.bytes == b->u.backup.bytes &&
               a->u.backup.ms == b->u.backup.ms;
    case PROTO_BACKUP_FETCH:
        return a->u.backup_fetch.req_id == b->u.backup_fetch.req_id &&
               str_same(a->u.backup_fetch.name, b->u.backup_fetch.name) &&
               a->u.backup_fetch.file == b->u.backup_fetch.file &&
               a->u.backup_fetch.offset == b->u.backup_fetch.offset;
    case PROTO_BACKUP_CHUNK: {
        const __typeof__(a->u.backup_chunk) *x = &a->u.backup_chunk, *y = &b->u.backup_chunk;
        return x->req_id == y->req_id && x->files == y->files && x->file == y->file &&
               str_same(x->file_name, y->file_name) && x->size == y->size &&
               x->offset == y->offset && str_same(x->data, y->data);
    }
    case PROTO_CLOCK:
        return a->u.clock.req_id == b->u.clock.req_id && a->u.clock.now_ms == b->u.clock.now_ms &&
               str_same(a->u.clock.zone, b->u.clock.zone) &&
               a->u.clock.utc_offset_s == b->u.clock.utc_offset_s;
    case PROTO_STATS:
        if (a->u.stats.req_id != b->u.stats.req_id || a->u.stats.n != b->u.stats.n)
            return false;
        for (uint32_t i = 0; i < a->u.stats.n; i++)
            if (!str_same(a->u.stats.entries[i].name, b->u.stats.entries[i].name) ||
                a->u.stats.entries[i].value != b->u.stats.entries[i].value)
                return false;
        return true;
    case PROTO_PING:
        return a->u.ping.req_id == b->u.ping.req_id && a->u.ping.time_ms == b->u.ping.time_ms;
    case PROTO_PONG:
        return a->u.pong.req_id == b->u.pong.req_id && a->u.pong.time_ms == b->u.pong.time_ms &&
               a->u.pong.seq == b->u.pong.seq;
    case PROTO_ERROR:
        return a->u.error.req_id == b->u.error.req_id && a->u.error.code == b->u.error.code &&
               str_same(a->u.error.field, b->u.error.field) &&
               str_same(a->u.error.message, b->u.error.message);
    case PROTO_GOODBYE:
        return a->u.goodbye.stream_id == b->u.goodbye.stream_id &&
               a->u.goodbye.seq == b->u.goodbye.seq;
    case PROTO_CATALOG_REQ:
        return memcmp(&a->u.catalog_req, &b->u.catalog_req, sizeof a->u.catalog_req) == 0;
    case PROTO_CATALOG:
        return catalog_same(a, b);
    case PROTO_TOWNSHIPS_REQ:
        return a->u.townships_req.req_id == b->u.townships_req.req_id &&
               a->u.townships_req.from == b->u.townships_req.from;
    case PROTO_TOWNSHIPS:
        return townships_same(a, b);
    case PROTO_SPAN_REQ:
        return a->u.span_req.req_id == b->u.span_req.req_id &&
               str_same(a->u.span_req.prefix, b->u.span_req.prefix) &&
               str_same(a->u.span_req.from, b->u.span_req.from) &&
               str_same(a->u.span_req.to, b->u.span_req.to);
    case PROTO_PERIOD_REQ:
        return a->u.period_req.req_id == b->u.period_req.req_id &&
               str_same(a->u.period_req.prefix, b->u.period_req.prefix) &&
               str_same(a->u.period_req.period, b->u.period_req.period);
    case PROTO_PERIOD: {
        const __typeof__(a->u.period) *x = &a->u.period, *y = &b->u.period;
        return x->req_id == y->req_id && x->index == y->index && x->count == y->count &&
               x->has_tally == y->has_tally && (!x->has_tally || tally_same(&x->tally, &y->tally));
    }
    case PROTO_RANGE_REQ: {
        const __typeof__(a->u.range_req) *x = &a->u.range_req, *y = &b->u.range_req;
        return x->req_id == y->req_id && str_same(x->metric, y->metric) &&
               str_same(x->scope, y->scope) && str_same(x->by, y->by) &&
               str_same(x->from, y->from) && str_same(x->to, y->to);
    }
    case PROTO_RANGE: {
        const __typeof__(a->u.range) *x = &a->u.range, *y = &b->u.range;
        if (x->req_id != y->req_id || !str_same(x->metric, y->metric) ||
            !str_same(x->scope, y->scope) || x->kind != y->kind || x->first != y->first ||
            x->total != y->total || x->npoints != y->npoints)
            return false;
        for (uint32_t i = 0; i < x->npoints; i++) {
            const proto_value_t *p = &x->points[i], *q = &y->points[i];
            if (!str_same(p->name, q->name) || p->present != q->present ||
                (p->present && (p->num != q->num || p->den != q->den)))
                return false;
        }
        return true;
    }
    case PROTO_PERIOD_CHANGED: {
        const __typeof__(a->u.period_changed) *x = &a->u.period_changed, *y = &b->u.period_changed;
        if (x->stream_id != y->stream_id || x->seq != y->seq || !str_same(x->metric, y->metric) ||
            !str_same(x->scope, y->scope) || x->nperiods != y->nperiods)
            return false;
        for (uint32_t i = 0; i < x->nperiods; i++)
            if (!str_same(x->periods[i], y->periods[i]))
                return false;
        return true;
    }
    default:
        return false;
    }
}

static void check_report(int rc, const proto_error_t *err)
{
    CHECK(rc < 0 && tally_err_is_wire(rc) && err->code == rc);
    size_t flen = strnlen(err->field, sizeof err->field);
    size_t mlen = strnlen(err->message, sizeof err->message);
    CHECK(flen > 0 && flen < sizeof err->field && mlen < sizeof err->message);
    CHECK(proto_utf8_valid(err->field, flen) && proto_utf8_valid(err->message, mlen));
    /* The sentence starts by naming the field. */
    CHECK(strncmp(err->message, err->field, flen) == 0);
    CHECK(err->sample >= -1 && err->sample < PROTO_SAMPLES_MAX);
}

/* msgpack-c's parser must agree that the input is exactly one value. */
static void check_msgpack(const uint8_t *data, size_t size)
{
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return ret = msgpack_unpack_next(&u, (const char *)data, size, &off);
    CHECK(ret == MSGPACK_UNPACK_SUCCESS && off == size);
    CHECK(u.data.type == MSGPACK_OBJECT_ARRAY);
    msgpack_unpacked_destroy(&u);
}

/* proto_decode_head (what tallyd reads of a body over max_msg) on any
 * input: a clean answer, and when the whole message decoded (full_rc 0),
 * success with the same type and what names the message: a SUBMIT's
 * client_id, seq and township, another request's req_id. */
static void check_head(const uint8_t *data, size_t size, int full_rc, const proto_msg_t *full)
{
    static proto_msg_t h;
    proto_error_t err;
    memset(&err, 0x55, sizeof err);
    int rc = proto_decode_head(data, size, &h, &err);
    if (rc != 0) {
        check_report(rc, &err);
        CHECK(full_rc != 0);
        return;
    }
    if (full_rc != 0)
        return;
    CHECK(h.type == full->type);
    if (h.type == PROTO_SUBMIT) {
        CHECK(h.u.submit.seq == full->u.submit.seq);
        CHECK(memcmp(h.u.submit.client_id, full->u.submit.client_id, PROTO_CLIENT_ID_LEN) == 0);
        CHECK(str_same(h.u.submit.township, full->u.submit.township));
    } else if (h.type != PROTO_ACK) {
        CHECK(proto_req_id(&h) == proto_req_id(full));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static proto_sample_t s1[PROTO_SAMPLES_MAX], s2[PROTO_SAMPLES_MAX];
    static proto_msg_t m1, m2;
    proto_error_t err;

    memset(&err, 0x55, sizeof err);
    int rc = proto_decode(data, size, &m1, s1, PROTO_SAMPLES_MAX, &err);
    check_head(data, size, rc, &m1);
    if (rc != 0) {
        check_report(rc, &err);
        /* The same input without a report must fail the same way. */
        CHECK(proto_decode(data, size, &m2, s2, PROTO_SAMPLES_MAX, NULL) == rc);
        return 0;
    }
    check_msgpack(data, size);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    decoded_arrays(&m1);
    CHECK(proto_encode(&sb, &m1) == 0);
    rc = proto_decode(sb.data, sb.size, &m2, s2, PROTO_SAMPLES_MAX, &err);
    if (rc != 0)
        fprintf(stderr, "re-decode failed: %s\n", err.message);
    CHECK(rc == 0);
    CHECK(msg_same(&m1, &m2));
    CHECK(size >= sb.size); /* the encoder's output is minimal */

    /* A second encode of the re-decoded message is byte-identical. */
    msgpack_sbuffer sb2;
    msgpack_sbuffer_init(&sb2);
    decoded_arrays(&m2);
    CHECK(proto_encode(&sb2, &m2) == 0);
    CHECK(sb2.size == sb.size && memcmp(sb2.data, sb.data, sb.size) == 0);
    msgpack_sbuffer_destroy(&sb2);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
