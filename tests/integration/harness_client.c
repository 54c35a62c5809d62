/* harness_client.c - the request client of the harness (SUBMIT, PING,
 * STATS, raw bytes), the tally table and snapshots into it (see harness.h).
 * Sockets come from the registry in harness.c (harness_internal.h). */
#include "harness.h"
#include "harness_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <zmq.h>

/* ---- the request client ----------------------------------------------- */

int harness_client_open(harness_t *h, harness_client_t *c)
{
    return harness_client_open_curve(h, c, h->curve_server[0] ? h->curve_server : NULL,
                                     h->curve_public, h->curve_secret);
}

int harness_client_open_curve(harness_t *h, harness_client_t *c, const char *server_pub,
                              const char *client_pub, const char *client_sec)
{
    memset(c, 0, sizeof(*c));
    c->h = h;
    c->next_req_id = 1;
    if (getrandom(c->client_id, sizeof(c->client_id), 0) != (ssize_t)sizeof(c->client_id))
        return TALLY_ESYS;
    c->sock = harness_open_socket(h, ZMQ_DEALER);
    if (c->sock == NULL)
        return TALLY_ESYS;
    int hwm = 100000;
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    int rc = harness_socket_curve(c->sock, server_pub, client_pub, client_sec);
    if (rc != 0) {
        harness_close_socket(h, c->sock);
        c->sock = NULL;
        return rc;
    }
    if (zmq_connect(c->sock, h->req_endpoint) != 0) {
        harness_say("connect %s: %s", h->req_endpoint, zmq_strerror(zmq_errno()));
        harness_close_socket(h, c->sock);
        c->sock = NULL;
        return TALLY_ESYS;
    }
    return 0;
}

void harness_client_close(harness_client_t *c)
{
    if (c->sock != NULL)
        harness_close_socket(c->h, c->sock);
    c->sock = NULL;
}

int harness_send_frames(harness_client_t *c, const void *const *bufs, const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (zmq_send(c->sock, bufs[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) < 0) {
            harness_say("zmq_send: %s", zmq_strerror(zmq_errno()));
            return TALLY_EIO;
        }
    }
    return 0;
}

int harness_send_raw(harness_client_t *c, const void *bytes, size_t len)
{
    return harness_send_frames(c, &bytes, &len, 1);
}

long harness_recv_raw(harness_client_t *c, void *buf, size_t cap, int timeout_ms)
{
    zmq_msg_t part;
    int n = harness_recv_parts(c->sock, &part, 1, harness_mono_ms() + timeout_ms);
    if (n <= 0)
        return TALLY_ETIMEDOUT;
    size_t len = zmq_msg_size(&part);
    memcpy(buf, zmq_msg_data(&part), len < cap ? len : cap);
    zmq_msg_close(&part);
    return (long)len;
}

/* Receive one reply and decode it.  The caller closes *part when the
 * result is > 0.  Returns 1, 0 on timeout, or -1 for a message that does
 * not decode (already closed and counted). */
static int recv_msg(harness_client_t *c, zmq_msg_t *part, proto_msg_t *m, int64_t deadline)
{
    int n = harness_recv_parts(c->sock, part, 1, deadline);
    if (n <= 0)
        return 0;
    proto_error_t err;
    if (n != 1 || proto_decode(zmq_msg_data(part), zmq_msg_size(part), m, NULL, 0, &err) != 0) {
        harness_say("undecodable reply (%d frames): %s", n, n == 1 ? err.message : "");
        harness_close_parts(part, n, 1);
        c->ignored++;
        return -1;
    }
    return 1;
}

static void copy_str(char *dst, size_t cap, proto_str_t s)
{
    snprintf(dst, cap, "%.*s", (int)s.len, s.ptr);
}

static void fill_reply(harness_ack_t *r, const proto_msg_t *m)
{
    memset(r, 0, sizeof(*r));
    r->type = m->type;
    if (m->type == PROTO_ACK) {
        r->seq = m->u.ack.seq;
        r->status = m->u.ack.status;
        r->code = (int)m->u.ack.code;
        r->sample = m->u.ack.sample;
        copy_str(r->field, sizeof(r->field), m->u.ack.field);
        copy_str(r->message, sizeof(r->message), m->u.ack.message);
    } else {
        r->seq = m->u.error.req_id;
        r->status = -1;
        r->code = (int)m->u.error.code;
        r->sample = -1;
        copy_str(r->field, sizeof(r->field), m->u.error.field);
        copy_str(r->message, sizeof(r->message), m->u.error.message);
    }
}

int harness_recv_reply(harness_client_t *c, harness_ack_t *r, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        zmq_msg_t part;
        proto_msg_t m;
        int got = recv_msg(c, &part, &m, deadline);
        if (got == 0)
            return TALLY_ETIMEDOUT;
        if (got < 0)
            return TALLY_EMALFORMED;
        bool mine = m.type == PROTO_ACK || m.type == PROTO_ERROR;
        if (mine)
            fill_reply(r, &m);
        else
            c->ignored++;
        zmq_msg_close(&part);
        if (mine)
            return 0;
    }
}

int harness_encode_submit(const harness_client_t *c, msgpack_sbuffer *out, uint64_t seq,
                          const char *township, int64_t time_ms, const harness_sample_t *samples,
                          uint32_t n)
{
    proto_sample_t ps[PROTO_SAMPLES_MAX];
    if (n > PROTO_SAMPLES_MAX)
        return TALLY_EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        ps[i].metric = proto_str(samples[i].metric);
        ps[i].value = samples[i].value;
    }
    proto_msg_t m = {.type = PROTO_SUBMIT};
    memcpy(m.u.submit.client_id, c->client_id, PROTO_CLIENT_ID_LEN);
    m.u.submit.seq = seq;
    m.u.submit.township = proto_str(township);
    m.u.submit.time_ms = time_ms;
    m.u.submit.nsamples = n;
    m.u.submit.samples = ps;
    return proto_encode(out, &m) == 0 ? 0 : TALLY_EINVAL;
}

int harness_send_submit(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                        const harness_sample_t *samples, uint32_t n)
{
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = harness_encode_submit(c, &b, seq, township, time_ms, samples, n);
    if (rc == 0)
        rc = harness_send_raw(c, b.data, b.size);
    else
        harness_say("the codec refuses this SUBMIT (seq %" PRIu64 ")", seq);
    msgpack_sbuffer_destroy(&b);
    return rc;
}

int harness_wait_ack(harness_client_t *c, uint64_t seq, harness_ack_t *ack, int timeout_ms)
{
    int64_t deadline = harness_mono_ms() + timeout_ms;
    for (;;) {
        harness_ack_t r;
        int64_t left = deadline - harness_mono_ms();
        int rc = harness_recv_reply(c, &r, left > 0 ? (int)left : 0);
        if (rc == TALLY_ETIMEDOUT) {
            harness_say("no ACK for seq %" PRIu64 " within %d ms", seq, timeout_ms);
            return rc;
        }
        if (rc != 0)
            continue;
        if ((r.type == PROTO_ACK && r.seq == seq) || (r.type == PROTO_ERROR && r.seq == 0)) {
            *ack = r;
            return 0;
        }
        c->ignored++;
    }
}

int harness_submit(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                   const harness_sample_t *samples, uint32_t n, harness_ack_t *ack)
{
    int rc = harness_send_submit(c, seq, township, time_ms, samples, n);
    if (rc == 0)
        rc = harness_wait_ack(c, seq, ack, HARNESS_REPLY_TIMEOUT_MS);
    return rc;
}

int harness_submit_one(harness_client_t *c, uint64_t seq, const char *township, int64_t time_ms,
                       const char *metric, int64_t value, harness_ack_t *ack)
{
    harness_sample_t s = {metric, value};
    return harness_submit(c, seq, township, time_ms, &s, 1, ack);
}

const char *harness_ack_str(const harness_ack_t *a, char *buf, size_t len)
{
    static const char *const status[] = {"accepted", "duplicate", "rejected"};
    if (a->type == PROTO_ACK)
        snprintf(buf, len, "ACK seq %" PRIu64 " %s code %d %s sample %d field '%s': %s", a->seq,
                 a->status >= 0 && a->status <= 2 ? status[a->status] : "status?", a->code,
                 a->code ? tally_errname(-a->code) : "", a->sample, a->field, a->message);
    else if (a->type == PROTO_ERROR)
        snprintf(buf, len, "ERROR req_id %" PRIu64 " code %d %s field '%s': %s", a->seq, a->code,
                 tally_errname(-a->code), a->field, a->message);
    else
        snprintf(buf, len, "no reply (type %u)", a->type);
    return buf;
}

/* Encode and send a request of type with a fresh req_id. */
static int send_request(harness_client_t *c, proto_msg_t *m, uint64_t *req_id)
{
    *req_id = c->next_req_id++;
    m->u.stats_req.req_id = *req_id; /* every request starts with req_id */
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    int rc = proto_encode(&b, m) == 0 ? harness_send_raw(c, b.data, b.size) : TALLY_EINVAL;
    msgpack_sbuffer_destroy(&b);
    return rc;
}

/* Wait for a reply of type want (or ERROR) carrying req_id.  On 1 the
 * caller owns *part. */
static int await_reply(harness_client_t *c, uint64_t req_id, uint32_t want, zmq_msg_t *part,
                       proto_msg_t *m, int64_t deadline)
{
    for (;;) {
        int got = recv_msg(c, part, m, deadline);
        if (got == 0)
            return 0;
        if (got < 0)
            continue;
        if ((m->type == want || m->type == PROTO_ERROR) && proto_req_id(m) == req_id)
            return 1;
        c->ignored++;
        zmq_msg_close(part);
    }
}

int harness_ping(harness_client_t *c, uint64_t *seq)
{
    proto_msg_t m = {.type = PROTO_PING};
    m.u.ping.time_ms = harness_now_ms();
    uint64_t req_id;
    int rc = send_request(c, &m, &req_id);
    if (rc != 0)
        return rc;
    zmq_msg_t part;
    if (await_reply(c, req_id, PROTO_PONG, &part, &m,
                    harness_mono_ms() + HARNESS_REPLY_TIMEOUT_MS) == 0)
        return TALLY_ETIMEDOUT;
    rc = m.type == PROTO_PONG ? 0 : -(int)m.u.error.code;
    if (rc == 0 && seq != NULL)
        *seq = m.u.pong.seq;
    zmq_msg_close(&part);
    return rc;
}

int64_t harness_stats(harness_client_t *c, const char *name)
{
    proto_msg_t *m = malloc(sizeof(*m)); /* a STATS body is 6 KiB */
    if (m == NULL)
        return -1;
    memset(m, 0, sizeof(*m));
    m->type = PROTO_STATS_REQ;
    uint64_t req_id;
    int64_t value = -1;
    zmq_msg_t part;
    if (send_request(c, m, &req_id) != 0) {
        free(m);
        return -1;
    }
    if (await_reply(c, req_id, PROTO_STATS, &part, m,
                    harness_mono_ms() + HARNESS_REPLY_TIMEOUT_MS) == 0) {
        harness_say("no STATS reply within %d ms", HARNESS_REPLY_TIMEOUT_MS);
        free(m);
        return -1;
    }
    if (m->type == PROTO_STATS) {
        for (uint32_t i = 0; i < m->u.stats.n; i++)
            if (proto_str_eq(m->u.stats.entries[i].name, name))
                value = m->u.stats.entries[i].value;
    } else {
        harness_say("STATS_REQ answered with ERROR %u", m->u.error.code);
    }
    zmq_msg_close(&part);
    free(m);
    return value;
}

/* ---- tallies ----------------------------------------------------------- */

void harness_table_init(harness_table_t *t)
{
    memset(t, 0, sizeof(*t));
}

void harness_table_clear(harness_table_t *t)
{
    t->n = 0;
    t->stream_id = t->seq = 0;
    t->count = 0;
}

void harness_table_free(harness_table_t *t)
{
    free(t->rows);
    harness_table_init(t);
}

void harness_row_from(harness_row_t *out, const proto_tally_t *tally)
{
    memset(out, 0, sizeof(*out));
    copy_str(out->metric, sizeof(out->metric), tally->metric);
    copy_str(out->scope, sizeof(out->scope), tally->scope);
    out->kind = tally->kind;
    out->seq = tally->seq;
    out->time_ms = tally->time_ms;
    out->ncols = tally->nvalues;
    for (uint32_t i = 0; i < tally->nvalues && i < PROTO_COLUMNS_MAX; i++) {
        copy_str(out->col[i], sizeof(out->col[i]), tally->values[i].name);
        out->val[i].present = tally->values[i].present;
        out->val[i].num = tally->values[i].num;
        out->val[i].den = tally->values[i].den;
    }
}

static harness_row_t *find_row(const harness_table_t *t, const char *metric, const char *scope)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].metric, metric) == 0 && strcmp(t->rows[i].scope, scope) == 0)
            return &t->rows[i];
    return NULL;
}

int harness_table_put(harness_table_t *t, const harness_row_t *row)
{
    harness_row_t *r = find_row(t, row->metric, row->scope);
    if (r == NULL) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 64;
            harness_row_t *rows = realloc(t->rows, cap * sizeof(*rows));
            if (rows == NULL)
                return TALLY_ENOMEM;
            t->rows = rows;
            t->cap = cap;
        }
        r = &t->rows[t->n++];
    }
    *r = *row;
    return 0;
}

const harness_row_t *harness_table_find(const harness_table_t *t, const char *metric,
                                        const char *scope)
{
    return find_row(t, metric, scope);
}

static const harness_value_t *row_col(const harness_row_t *r, const char *column)
{
    for (uint32_t i = 0; i < r->ncols; i++)
        if (strcmp(r->col[i], column) == 0)
            return &r->val[i];
    return NULL;
}

bool harness_table_get(const harness_table_t *t, const char *metric, const char *scope,
                       const char *column, harness_value_t *out)
{
    const harness_row_t *r = find_row(t, metric, scope);
    const harness_value_t *v = r != NULL ? row_col(r, column) : NULL;
    if (v == NULL)
        return false;
    *out = *v;
    return true;
}

static bool value_eq(const harness_value_t *a, const harness_value_t *b)
{
    if (a->present != b->present)
        return false;
    return !a->present || (a->num == b->num && a->den == b->den);
}

/* Does every row of a exist in b with the same content? */
static bool table_covers(const harness_table_t *a, const harness_table_t *b, const char *an,
                         const char *bn, char *diff, size_t len)
{
    for (size_t i = 0; i < a->n; i++) {
        const harness_row_t *ra = &a->rows[i], *rb = find_row(b, ra->metric, ra->scope);
        if (rb == NULL) {
            snprintf(diff, len, "%s has %s/'%s', %s does not", an, ra->metric, ra->scope, bn);
            return false;
        }
        if (ra->kind != rb->kind || ra->ncols != rb->ncols) {
            snprintf(diff, len, "%s/'%s': kind %d vs %d, %u vs %u columns", ra->metric, ra->scope,
                     ra->kind, rb->kind, ra->ncols, rb->ncols);
            return false;
        }
        for (uint32_t c = 0; c < ra->ncols; c++) {
            const harness_value_t *vb = row_col(rb, ra->col[c]);
            if (vb == NULL || !value_eq(&ra->val[c], vb)) {
                snprintf(diff, len,
                         "%s/'%s' column %s: %s has %s%" PRId64 "/%" PRId64 ", %s has %s%" PRId64
                         "/%" PRId64,
                         ra->metric, ra->scope, ra->col[c], an, ra->val[c].present ? "" : "nil ",
                         ra->val[c].num, ra->val[c].den, bn,
                         vb == NULL    ? "no column "
                         : vb->present ? ""
                                       : "nil ",
                         vb ? vb->num : 0, vb ? vb->den : 0);
                return false;
            }
        }
    }
    return true;
}

bool harness_table_equal(const harness_table_t *a, const harness_table_t *b, char *diff, size_t len)
{
    char scratch[8];
    if (diff == NULL || len == 0) {
        diff = scratch;
        len = sizeof(scratch);
    }
    diff[0] = '\0';
    return table_covers(a, b, "first", "second", diff, len) &&
           table_covers(b, a, "second", "first", diff, len);
}

int harness_snapshot(harness_client_t *c, const char *prefix, harness_table_t *out)
{
    proto_msg_t m = {.type = PROTO_SNAPSHOT_REQ};
    m.u.snapshot_req.prefix = proto_str(prefix);
    uint64_t req_id;
    harness_table_clear(out);
    int rc = send_request(c, &m, &req_id);
    if (rc != 0)
        return rc;
    int64_t deadline = harness_mono_ms() + 2 * HARNESS_REPLY_TIMEOUT_MS;
    uint32_t items = 0;
    for (;;) {
        zmq_msg_t part;
        int got = recv_msg(c, &part, &m, deadline);
        if (got == 0) {
            harness_say("snapshot '%s': no SNAPSHOT_END within %d ms (%u items)", prefix,
                        2 * HARNESS_REPLY_TIMEOUT_MS, items);
            return TALLY_ETIMEDOUT;
        }
        if (got < 0)
            continue;
        rc = 1;
        if (proto_req_id(&m) != req_id) {
            c->ignored++;
        } else if (m.type == PROTO_SNAPSHOT_ITEM) {
            harness_row_t row;
            harness_row_from(&row, &m.u.snapshot_item.tally);
            items++;
            if (harness_table_put(out, &row) != 0)
                rc = TALLY_ENOMEM;
        } else if (m.type == PROTO_SNAPSHOT_END) {
            out->stream_id = m.u.snapshot_end.stream_id;
            out->seq = m.u.snapshot_end.seq;
            out->count = m.u.snapshot_end.count;
            rc = 0;
            if (items != out->count) {
                harness_say("snapshot '%s': %u items arrived, SNAPSHOT_END says %u", prefix, items,
                            out->count);
                rc = TALLY_EMALFORMED;
            }
        } else if (m.type == PROTO_ERROR) {
            harness_say("snapshot '%s': ERROR %u %.*s", prefix, m.u.error.code,
                        (int)m.u.error.message.len, m.u.error.message.ptr);
            rc = -(int)m.u.error.code;
        } else {
            c->ignored++;
        }
        zmq_msg_close(&part);
        if (rc <= 0)
            return rc;
    }
}

int64_t harness_county_total(harness_client_t *c, const char *metric, harness_table_t *t)
{
    harness_value_t v;
    if (harness_snapshot(c, "", t) != 0 || !harness_table_get(t, metric, "", "total", &v) ||
        !v.present)
        return -1;
    return v.num;
}
