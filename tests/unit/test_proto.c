/* test_proto.c - unit tests of the wire codec (proto/) and tally_error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proto.h"

static proto_sample_t g_samples[PROTO_SAMPLES_MAX];
static proto_sample_t g_in[PROTO_SAMPLES_MAX];
static proto_msg_t g_msg; /* large (STATS holds 256 entries): keep off the stack */
static proto_msg_t g_out;

#define A16 "aaaaaaaaaaaaaaaa"
#define A64 A16 A16 A16 A16

static bool view_is(proto_str_t v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.ptr, s, v.len) == 0;
}

/* Decode from an exact-size heap copy so ASan sees any read past the end.
 * The copy lives until the next call because the decoded views point into
 * it. */
static void *g_copy;

static int decode_exact(const void *bytes, size_t len, proto_msg_t *m, uint32_t cap,
                        proto_error_t *err)
{
    static proto_msg_t m2;
    free(g_copy);
    g_copy = malloc(len ? len : 1);
    assert_non_null(g_copy);
    if (len > 0)
        memcpy(g_copy, bytes, len);
    /* Without a report the result must be the same. */
    int rc = proto_decode(g_copy, len, &m2, g_samples, cap, NULL);
    assert_int_equal(proto_decode(g_copy, len, m, g_samples, cap, err), rc);
    return rc;
}

static int teardown_group(void **state)
{
    (void)state;
    free(g_copy);
    g_copy = NULL;
    return 0;
}

/* Encode in, decode into out; the sbuffer keeps the bytes the views use. */
static void roundtrip(const proto_msg_t *in, proto_msg_t *out, msgpack_sbuffer *sb)
{
    proto_error_t err;
    msgpack_sbuffer_init(sb);
    assert_int_equal(proto_encode(sb, in), 0);
    memset(out, 0xaa, sizeof *out);
    int rc = proto_decode(sb->data, sb->size, out, g_samples, PROTO_SAMPLES_MAX, &err);
    if (rc != 0)
        print_message("decode failed: %s\n", err.message);
    assert_int_equal(rc, 0);
    assert_int_equal(out->version, PROTO_VERSION);
    assert_int_equal(out->type, in->type);
}

static void set_tally(proto_tally_t *t, uint8_t kind, const char *scope)
{
    static const char *cols[] = {"1h",    "24h",     "7d",   "30d",  "today",
                                 "month", "quarter", "year", "total"};
    memset(t, 0, sizeof *t);
    t->metric = proto_str("disputes.resolved");
    t->scope = proto_str(scope);
    t->kind = kind;
    t->seq = UINT64_MAX;
    t->time_ms = INT64_MIN;
    t->nvalues = 9;
    for (uint32_t i = 0; i < t->nvalues; i++) {
        proto_value_t *v = &t->values[i];
        v->name = proto_str(cols[i]);
        v->present = i != 3;
        v->num = i == 0 ? INT64_MIN : i == 1 ? INT64_MAX : (int64_t)i * 1000 - 5000;
        v->den = kind == PROTO_KIND_RATIO ? (i == 0 ? INT64_MAX : i == 1 ? -7 : INT64_MIN) : 1;
    }
}

static void check_tally(const proto_tally_t *a, const proto_tally_t *b)
{
    assert_true(view_is(b->metric, "disputes.resolved"));
    assert_int_equal(a->scope.len, b->scope.len);
    assert_memory_equal(a->scope.ptr, b->scope.ptr, a->scope.len);
    assert_int_equal(b->kind, a->kind);
    assert_true(b->seq == UINT64_MAX);
    assert_true(b->time_ms == INT64_MIN);
    assert_int_equal(b->nvalues, a->nvalues);
    for (uint32_t i = 0; i < a->nvalues; i++) {
        const proto_value_t *x = &a->values[i], *y = &b->values[i];
        assert_int_equal(x->name.len, y->name.len);
        assert_memory_equal(x->name.ptr, y->name.ptr, x->name.len);
        assert_int_equal(y->present, x->present);
        if (!x->present) {
            assert_true(y->num == 0 && y->den == 0);
            continue;
        }
        assert_true(y->num == x->num);
        assert_true(y->den == (a->kind == PROTO_KIND_RATIO ? x->den : 1));
    }
}

/* A valid message of each type, used for the round trips and prefixes. */
static void make_msg(uint32_t type, proto_msg_t *m)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    switch (type) {
    case PROTO_SUBMIT:
        for (int i = 0; i < 16; i++)
            m->u.submit.client_id[i] = (uint8_t)(i * 17);
        m->u.submit.seq = 5;
        m->u.submit.township = proto_str("gaoguan");
        m->u.submit.time_ms = 1700000000000;
        m->u.submit.samples = g_in;
        m->u.submit.nsamples = 3;
        g_in[0] = (proto_sample_t){proto_str("disputes.resolved"), 3};
        g_in[1] = (proto_sample_t){proto_str("人口.总数"), -1};
        g_in[2] = (proto_sample_t){proto_str(A64), INT64_MIN};
        break;
    case PROTO_ACK:
        m->u.ack = (proto_ack_t){42,
                                 PROTO_ACK_REJECTED,
                                 13,
                                 2,
                                 proto_str("samples[2].metric"),
                                 proto_str("samples[2].metric: metric 'x' is not in the catalog")};
        break;
    case PROTO_SNAPSHOT_REQ:
        m->u.snapshot_req.req_id = 9;
        m->u.snapshot_req.prefix = proto_str("u/town/gaoguan/");
        break;
    case PROTO_SNAPSHOT_ITEM:
        m->u.snapshot_item.req_id = 9;
        set_tally(&m->u.snapshot_item.tally, PROTO_KIND_COUNTER, "gaoguan");
        break;
    case PROTO_SNAPSHOT_END:
        m->u.snapshot_end.req_id = 9;
        m->u.snapshot_end.stream_id = UINT64_MAX;
        m->u.snapshot_end.seq = 0;
        m->u.snapshot_end.count = UINT32_MAX;
        break;
    case PROTO_UPDATE:
        m->u.update.stream_id = 0x0123456789abcdefULL;
        set_tally(&m->u.update.tally, PROTO_KIND_RATIO, "高观镇");
        break;
    case PROTO_HEARTBEAT:
        m->u.heartbeat.stream_id = 1;
        m->u.heartbeat.seq = UINT64_MAX;
        m->u.heartbeat.time_ms = INT64_MAX;
        break;
    case PROTO_HELLO:
        m->u.hello.req_id = UINT64_MAX;
        m->u.hello.client = proto_str(A64);
        break;
    case PROTO_WELCOME:
        m->u.welcome.req_id = 1;
        m->u.welcome.server = proto_str("tallyd/0.1.0");
        m->u.welcome.pub_endpoint = proto_str("tcp://*:7412");
        m->u.welcome.stream_id = 77;
        m->u.welcome.seq = 1234;
        m->u.welcome.ncolumns = PROTO_COLUMNS_MAX;
        for (int i = 0; i < PROTO_COLUMNS_MAX; i++)
            m->u.welcome.columns[i] = (proto_str_t){&A64[i], PROTO_COLUMN_NAME_MAX};
        m->u.welcome.max_samples = 1000;
        m->u.welcome.max_name = -7; /* negative: not sent */
        m->u.welcome.max_msg = 65536;
        m->u.welcome.skew_ms = 0;
        m->u.welcome.max_age_ms = INT64_MAX;
        break;
    case PROTO_STATS_REQ:
        m->u.stats_req.req_id = 3;
        break;
    case PROTO_STATS:
        m->u.stats.req_id = 3;
        m->u.stats.n = 2;
        m->u.stats.entries[0] = (proto_stat_t){proto_str("tallyd_samples_total"), INT64_MAX};
        m->u.stats.entries[1] = (proto_stat_t){proto_str("tallyd_clients"), -4};
        break;
    case PROTO_PING:
        m->u.ping.req_id = 5;
        m->u.ping.time_ms = INT64_MIN;
        break;
    case PROTO_PONG:
        m->u.pong.req_id = 5;
        m->u.pong.time_ms = -1;
        m->u.pong.seq = UINT64_MAX;
        break;
    case PROTO_ERROR:
        m->u.error.req_id = 0;
        m->u.error.code = 3;
        m->u.error.field = proto_str("type");
        m->u.error.message = proto_str("type: 99 is not a known message type (1..15)");
        break;
    case PROTO_GOODBYE:
        m->u.goodbye.stream_id = 77;
        m->u.goodbye.seq = 4242;
        break;
    default:
        fail();
    }
}

/* ---- round trips -------------------------------------------------------- */

static void test_roundtrip_submit_boundaries(void **state)
{
    (void)state;
    static char names[PROTO_SAMPLES_MAX][24];
    msgpack_sbuffer sb;
    make_msg(PROTO_SUBMIT, &g_msg);
    g_msg.u.submit.seq = UINT64_MAX;
    g_msg.u.submit.township = proto_str(A64);
    g_msg.u.submit.time_ms = PROTO_TIME_MAX - 1;
    g_msg.u.submit.nsamples = PROTO_SAMPLES_MAX;
    static const int64_t vals[] = {INT64_MIN, INT64_MAX, 0,      -1,     127,
                                   128,       -32,       -33,    255,    256,
                                   65535,     65536,     -32768, -32769, 4294967296LL};
    for (uint32_t i = 0; i < PROTO_SAMPLES_MAX; i++) {
        if (i >= 3) {
            snprintf(names[i], sizeof names[i], "metric.%u", i);
            g_in[i].metric = proto_str(names[i]);
        }
        g_in[i].value = i < 15 ? vals[i] : (int64_t)i * -1000003;
    }
    roundtrip(&g_msg, &g_out, &sb);
    const proto_submit_t *s = &g_out.u.submit;
    for (int i = 0; i < 16; i++)
        assert_int_equal(s->client_id[i], i * 17);
    assert_true(s->seq == UINT64_MAX);
    assert_true(view_is(s->township, A64));
    assert_true(s->time_ms == PROTO_TIME_MAX - 1);
    assert_int_equal(s->nsamples, PROTO_SAMPLES_MAX);
    assert_ptr_equal(s->samples, g_samples);
    assert_true(view_is(s->samples[1].metric, "人口.总数"));
    assert_true(view_is(s->samples[2].metric, A64));
    for (uint32_t i = 0; i < PROTO_SAMPLES_MAX; i++) {
        assert_true(s->samples[i].value == g_in[i].value);
        if (i >= 3)
            assert_true(view_is(s->samples[i].metric, names[i]));
    }
    /* The same bytes exceed a smaller configured limit. */
    proto_error_t err;
    assert_int_equal(proto_decode(sb.data, sb.size, &g_out, g_samples, 4095, &err), TALLY_ETOOMANY);
    assert_string_equal(err.message, "samples: 4096 samples exceed the limit of 4095");
    msgpack_sbuffer_destroy(&sb);

    /* A UTF-8 township and the lowest accepted time. */
    make_msg(PROTO_SUBMIT, &g_msg);
    g_msg.u.submit.township = proto_str("高观镇");
    g_msg.u.submit.time_ms = PROTO_TIME_MIN;
    g_msg.u.submit.seq = 1;
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(view_is(g_out.u.submit.township, "高观镇"));
    assert_true(g_out.u.submit.time_ms == PROTO_TIME_MIN);
    assert_true(g_out.u.submit.seq == 1);
    assert_int_equal(g_out.u.submit.nsamples, 3);
    assert_true(view_is(g_out.u.submit.samples[0].metric, "disputes.resolved"));
    assert_true(g_out.u.submit.samples[0].value == 3);
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_replies(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    for (uint8_t status = 0; status <= PROTO_ACK_REJECTED; status++) {
        make_msg(PROTO_ACK, &g_msg);
        g_msg.u.ack.status = status;
        g_msg.u.ack.code = status == PROTO_ACK_REJECTED ? 99 : 0;
        g_msg.u.ack.sample = status == 0 ? -1 : PROTO_SAMPLES_MAX - 1;
        g_msg.u.ack.seq = status == 1 ? UINT64_MAX : 1;
        g_msg.u.ack.field = status == 0 ? proto_str("") : proto_str(A64);
        roundtrip(&g_msg, &g_out, &sb);
        assert_true(g_out.u.ack.seq == g_msg.u.ack.seq);
        assert_int_equal(g_out.u.ack.status, status);
        assert_true(g_out.u.ack.code == g_msg.u.ack.code);
        assert_int_equal(g_out.u.ack.sample, g_msg.u.ack.sample);
        assert_true(view_is(g_out.u.ack.field, status == 0 ? "" : A64));
        assert_true(view_is(g_out.u.ack.message, "samples[2].metric: metric 'x' is not in the "
                                                 "catalog"));
        msgpack_sbuffer_destroy(&sb);
    }

    make_msg(PROTO_ERROR, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.error.req_id == 0);
    assert_int_equal(g_out.u.error.code, 3);
    assert_true(view_is(g_out.u.error.field, "type"));
    assert_true(view_is(g_out.u.error.message, "type: 99 is not a known message type (1..15)"));
    msgpack_sbuffer_destroy(&sb);

    /* A message of exactly PROTO_MESSAGE_MAX bytes. */
    static char longmsg[PROTO_MESSAGE_MAX + 1];
    memset(longmsg, 'm', PROTO_MESSAGE_MAX);
    g_msg.u.error.message = proto_str(longmsg);
    g_msg.u.error.code = 99;
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(view_is(g_out.u.error.message, longmsg));
    assert_true(g_out.u.error.code == 99);
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_snapshot(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    static char prefix[PROTO_PREFIX_MAX + 1];
    make_msg(PROTO_SNAPSHOT_REQ, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.snapshot_req.req_id == 9);
    assert_true(view_is(g_out.u.snapshot_req.prefix, "u/town/gaoguan/"));
    msgpack_sbuffer_destroy(&sb);
    memset(prefix, 'p', PROTO_PREFIX_MAX);
    for (int k = 0; k < 2; k++) {
        g_msg.u.snapshot_req.prefix = proto_str(k ? prefix : "");
        roundtrip(&g_msg, &g_out, &sb);
        assert_true(view_is(g_out.u.snapshot_req.prefix, k ? prefix : ""));
        msgpack_sbuffer_destroy(&sb);
    }

    make_msg(PROTO_SNAPSHOT_ITEM, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.snapshot_item.req_id == 9);
    check_tally(&g_msg.u.snapshot_item.tally, &g_out.u.snapshot_item.tally);
    msgpack_sbuffer_destroy(&sb);

    /* County-wide gauge with no values at all. */
    g_msg.u.snapshot_item.tally.scope = proto_str("");
    g_msg.u.snapshot_item.tally.kind = PROTO_KIND_GAUGE;
    g_msg.u.snapshot_item.tally.nvalues = 0;
    roundtrip(&g_msg, &g_out, &sb);
    check_tally(&g_msg.u.snapshot_item.tally, &g_out.u.snapshot_item.tally);
    msgpack_sbuffer_destroy(&sb);

    make_msg(PROTO_SNAPSHOT_END, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.snapshot_end.req_id == 9);
    assert_true(g_out.u.snapshot_end.stream_id == UINT64_MAX);
    assert_true(g_out.u.snapshot_end.seq == 0);
    assert_true(g_out.u.snapshot_end.count == UINT32_MAX);
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_publish(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    make_msg(PROTO_UPDATE, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.update.stream_id == 0x0123456789abcdefULL);
    check_tally(&g_msg.u.update.tally, &g_out.u.update.tally);
    assert_true(view_is(g_out.u.update.tally.scope, "高观镇"));
    msgpack_sbuffer_destroy(&sb);

    /* Sixteen columns of sixteen bytes, the maxima. */
    proto_tally_t *t = &g_msg.u.update.tally;
    t->nvalues = PROTO_COLUMNS_MAX;
    for (int i = 0; i < PROTO_COLUMNS_MAX; i++) {
        t->values[i] = (proto_value_t){{&A64[0], (uint32_t)(i + 1)}, true, i, -i - 1};
    }
    roundtrip(&g_msg, &g_out, &sb);
    check_tally(t, &g_out.u.update.tally);
    msgpack_sbuffer_destroy(&sb);

    make_msg(PROTO_HEARTBEAT, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.heartbeat.stream_id == 1);
    assert_true(g_out.u.heartbeat.seq == UINT64_MAX);
    assert_true(g_out.u.heartbeat.time_ms == INT64_MAX);
    msgpack_sbuffer_destroy(&sb);

    make_msg(PROTO_GOODBYE, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.goodbye.stream_id == 77);
    assert_true(g_out.u.goodbye.seq == 4242);
    msgpack_sbuffer_destroy(&sb);
}

static void test_roundtrip_session(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    make_msg(PROTO_HELLO, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.hello.req_id == UINT64_MAX);
    assert_true(view_is(g_out.u.hello.client, A64));
    msgpack_sbuffer_destroy(&sb);

    make_msg(PROTO_WELCOME, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.welcome.req_id == 1);
    assert_true(view_is(g_out.u.welcome.server, "tallyd/0.1.0"));
    assert_true(view_is(g_out.u.welcome.pub_endpoint, "tcp://*:7412"));
    assert_true(g_out.u.welcome.stream_id == 77);
    assert_true(g_out.u.welcome.seq == 1234);
    assert_int_equal(g_out.u.welcome.ncolumns, PROTO_COLUMNS_MAX);
    for (int i = 0; i < PROTO_COLUMNS_MAX; i++) {
        assert_int_equal(g_out.u.welcome.columns[i].len, PROTO_COLUMN_NAME_MAX);
        assert_memory_equal(g_out.u.welcome.columns[i].ptr, A16, PROTO_COLUMN_NAME_MAX);
    }
    assert_true(g_out.u.welcome.max_samples == 1000);
    assert_true(g_out.u.welcome.max_name == -1);
    assert_true(g_out.u.welcome.max_msg == 65536);
    assert_true(g_out.u.welcome.skew_ms == 0);
    assert_true(g_out.u.welcome.max_age_ms == INT64_MAX);
    msgpack_sbuffer_destroy(&sb);

    /* Unknown keys of any length are skipped; a negative limit is "not sent". */
    static const char lim[] = "\x99\x01\x09\x01\xa0\xa0\x01\x01\x91\xa1x\x84\xa0\x05\xa8"
                              "max_name"
                              "\xd0\xfb\xa7"
                              "skew_ms"
                              "\xcd\x01\x00\xd9\x50" A64 A16 "\x07";
    assert_int_equal(decode_exact(lim, sizeof lim - 1, &g_out, 0, NULL), 0);
    assert_true(g_out.u.welcome.max_name == -1);
    assert_true(g_out.u.welcome.skew_ms == 256);
    assert_true(g_out.u.welcome.max_samples == -1 && g_out.u.welcome.max_msg == -1 &&
                g_out.u.welcome.max_age_ms == -1);
    assert_int_equal(g_out.u.welcome.ncolumns, 1);
    assert_true(view_is(g_out.u.welcome.columns[0], "x"));

    make_msg(PROTO_STATS_REQ, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.stats_req.req_id == 3);
    msgpack_sbuffer_destroy(&sb);

    /* A full STATS map. */
    static char names[PROTO_STATS_MAX][16];
    make_msg(PROTO_STATS, &g_msg);
    g_msg.u.stats.n = PROTO_STATS_MAX;
    for (int i = 2; i < PROTO_STATS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "c%d", i);
        g_msg.u.stats.entries[i] = (proto_stat_t){proto_str(names[i]), -i};
    }
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.stats.req_id == 3);
    assert_int_equal(g_out.u.stats.n, PROTO_STATS_MAX);
    assert_true(view_is(g_out.u.stats.entries[0].name, "tallyd_samples_total"));
    assert_true(g_out.u.stats.entries[0].value == INT64_MAX);
    assert_true(g_out.u.stats.entries[1].value == -4);
    for (int i = 2; i < PROTO_STATS_MAX; i++) {
        assert_true(view_is(g_out.u.stats.entries[i].name, names[i]));
        assert_true(g_out.u.stats.entries[i].value == -i);
    }
    msgpack_sbuffer_destroy(&sb);

    make_msg(PROTO_PING, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.ping.req_id == 5 && g_out.u.ping.time_ms == INT64_MIN);
    msgpack_sbuffer_destroy(&sb);

    make_msg(PROTO_PONG, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.pong.req_id == 5 && g_out.u.pong.time_ms == -1);
    assert_true(g_out.u.pong.seq == UINT64_MAX);
    msgpack_sbuffer_destroy(&sb);
}

/* Every proper prefix of every message type is a truncated message. */
static void test_every_prefix_is_malformed(void **state)
{
    (void)state;
    for (uint32_t type = PROTO_SUBMIT; type <= PROTO_GOODBYE; type++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        make_msg(type, &g_msg);
        assert_int_equal(proto_encode(&sb, &g_msg), 0);
        for (size_t len = 0; len < sb.size; len++) {
            proto_error_t err;
            int rc = decode_exact(sb.data, len, &g_out, PROTO_SAMPLES_MAX, &err);
            if (rc != TALLY_EMALFORMED)
                print_message("type %u prefix %zu: %s\n", type, len, err.message);
            assert_int_equal(rc, TALLY_EMALFORMED);
            assert_int_equal(err.code, TALLY_EMALFORMED);
        }
        assert_int_equal(decode_exact(sb.data, sb.size, &g_out, PROTO_SAMPLES_MAX, NULL), 0);
        msgpack_sbuffer_destroy(&sb);
    }
}

/* ---- hand-written inputs ------------------------------------------------ */

/* Pieces of a valid SUBMIT; a hex escape is always closed by ending the
 * literal, so "\xa3" "abc" is not read as one escape. */
#define CID                                                                                        \
    "\xc4\x10"                                                                                     \
    "0123456789abcdef"
#define SEQ "\x05"
#define TOWN                                                                                       \
    "\xa7"                                                                                         \
    "gaoguan"
#define TIME "\xcf\x00\x00\x01\x8b\xcf\xe5\x68\x00"
#define SAMP                                                                                       \
    "\x91\x92\xa3"                                                                                 \
    "abc"                                                                                          \
    "\x01"
#define SUB(cid, seq, town, time, samples) "\x97\x01\x01" cid seq town time samples
#define TALLY(kind, values)                "\x96\xa1m\xa0" kind "\x01\x01" values
#define UPD(tally)                         "\x94\x01\x06\x07" tally

typedef struct row {
    const char *desc;
    const char *bytes;
    size_t len;
    int code;
    const char *field;
    int sample;
} row_t;

#define ROW(desc, lit, code, field)                                                                \
    {                                                                                              \
        desc, lit, sizeof(lit) - 1, code, field, -1                                                \
    }
#define ROWS(desc, lit, code, field, s)                                                            \
    {                                                                                              \
        desc, lit, sizeof(lit) - 1, code, field, s                                                 \
    }

static const row_t rows[] = {
    /* shape */
    ROW("empty input", "", TALLY_EMALFORMED, "body"),
    ROW("top-level map", "\x82\x01\x01\x02\x02", TALLY_EMALFORMED, "body"),
    ROW("top-level nil", "\xc0", TALLY_EMALFORMED, "body"),
    ROW("top-level 0xc1", "\xc1", TALLY_EMALFORMED, "body"),
    ROW("top-level array of 1", "\x91\x01", TALLY_EMALFORMED, "body"),
    ROW("array32 of 2^32-1 elements", "\xdd\xff\xff\xff\xff\x01\x01", TALLY_EMALFORMED, "body"),
    ROW("array32 declares 3, 2 bytes follow", "\xdd\x00\x00\x00\x03\x01\x0a", TALLY_EMALFORMED,
        "body"),
    ROW("array16 header cut", "\xdc\x00", TALLY_EMALFORMED, "body"),
    ROW("version 2", "\x93\x02\x0a\x00", TALLY_EVERSION, "version"),
    ROW("version 2 beats unknown type", "\x93\x02\x63\x00", TALLY_EVERSION, "version"),
    ROW("version -1", "\x93\xff\x0a\x00", TALLY_EVERSION, "version"),
    ROW("version uint64 max", "\x93\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x0a\x00", TALLY_EVERSION,
        "version"),
    ROW("version as string",
        "\x93\xa1"
        "1"
        "\x0a\x00",
        TALLY_EBADTYPE, "version"),
    ROW("unknown type 99", "\x93\x01\x63\x00", TALLY_ETYPE, "type"),
    ROW("type 0", "\x93\x01\x00\x00", TALLY_ETYPE, "type"),
    ROW("type 16", "\x93\x01\x10\x00", TALLY_ETYPE, "type"),
    ROW("type -3", "\x93\x01\xfd\x00", TALLY_ETYPE, "type"),
    ROW("type as nil", "\x93\x01\xc0\x00", TALLY_EBADTYPE, "type"),
    ROW("SUBMIT of 6 elements", "\x96\x01\x01" CID SEQ TOWN TIME, TALLY_EMALFORMED, "SUBMIT"),
    ROW("STATS_REQ of 4 elements", "\x94\x01\x0a\x01\x02", TALLY_EMALFORMED, "STATS_REQ"),
    ROW("trailing nil", "\x93\x01\x0a\x01\xc0", TALLY_ETRAILING, "body"),
    ROW("trailing after SUBMIT", SUB(CID, SEQ, TOWN, TIME, SAMP) "\x00", TALLY_ETRAILING, "body"),
    ROW("nested arrays at top", "\x91\x91\x91\x91\x91\x91\x91\x90", TALLY_EMALFORMED, "body"),
    /* SUBMIT fields */
    ROW("client_id of 15 bytes",
        SUB("\xc4\x0f"
            "0123456789abcde",
            SEQ, TOWN, TIME, SAMP),
        TALLY_ERANGE, "client_id"),
    ROW("client_id of 17 bytes",
        SUB("\xc4\x11"
            "0123456789abcdefg",
            SEQ, TOWN, TIME, SAMP),
        TALLY_ERANGE, "client_id"),
    ROW("client_id as str",
        SUB("\xb0"
            "0123456789abcdef",
            SEQ, TOWN, TIME, SAMP),
        TALLY_EBADTYPE, "client_id"),
    ROW("client_id bin32 of 4 GB",
        SUB("\xc6\xff\xff\xff\xff"
            "0123456789abcdef",
            SEQ, TOWN, TIME, SAMP),
        TALLY_EMALFORMED, "client_id"),
    ROW("client_id nested arrays",
        SUB("\x91\x91\x91\x91\x91\x91\x91\x91\x91\x90", SEQ, TOWN, TIME, SAMP), TALLY_EBADTYPE,
        "client_id"),
    ROW("seq 0", SUB(CID, "\x00", TOWN, TIME, SAMP), TALLY_ERANGE, "seq"),
    ROW("seq -1", SUB(CID, "\xff", TOWN, TIME, SAMP), TALLY_ERANGE, "seq"),
    ROW("seq int64 min", SUB(CID, "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", TOWN, TIME, SAMP),
        TALLY_ERANGE, "seq"),
    ROW("seq as str",
        SUB(CID,
            "\xa1"
            "5",
            TOWN, TIME, SAMP),
        TALLY_EBADTYPE, "seq"),
    ROW("seq as nil", SUB(CID, "\xc0", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq as true", SUB(CID, "\xc3", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq as float64", SUB(CID, "\xcb\x40\x14\x00\x00\x00\x00\x00\x00", TOWN, TIME, SAMP),
        TALLY_EBADTYPE, "seq"),
    ROW("seq as array", SUB(CID, "\x91\x05", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq as map", SUB(CID, "\x81\x05\x05", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq as ext", SUB(CID, "\xd4\x01\x05", TOWN, TIME, SAMP), TALLY_EBADTYPE, "seq"),
    ROW("seq 0xc1", SUB(CID, "\xc1", TOWN, TIME, SAMP), TALLY_EMALFORMED, "seq"),
    ROW("seq uint64 cut", SUB(CID, "\xcf\x00\x00", "", "", ""), TALLY_EMALFORMED, "seq"),
    ROW("township as bin",
        SUB(CID, SEQ,
            "\xc4\x07"
            "gaoguan",
            TIME, SAMP),
        TALLY_EBADTYPE, "township"),
    ROW("township as int", SUB(CID, SEQ, "\x07", TIME, SAMP), TALLY_EBADTYPE, "township"),
    ROW("township empty", SUB(CID, SEQ, "\xa0", TIME, SAMP), TALLY_EBADNAME, "township"),
    ROW("township with space",
        SUB(CID, SEQ,
            "\xa3"
            "a b",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with slash",
        SUB(CID, SEQ,
            "\xa3"
            "a/b",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with DEL",
        SUB(CID, SEQ,
            "\xa3"
            "a\x7f"
            "b",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with newline",
        SUB(CID, SEQ,
            "\xa3"
            "a\nb",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with NUL",
        SUB(CID, SEQ,
            "\xa3"
            "a\0b",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township with C1 U+0085",
        SUB(CID, SEQ,
            "\xa3"
            "a\xc2\x85",
            TIME, SAMP),
        TALLY_EBADNAME, "township"),
    ROW("township of 65 bytes", SUB(CID, SEQ, "\xd9\x41" A64 "a", TIME, SAMP), TALLY_ETOOLONG,
        "township"),
    ROW("township overlong 2-byte",
        SUB(CID, SEQ,
            "\xa3"
            "a\xc0\x80",
            TIME, SAMP),
        TALLY_EUTF8, "township"),
    ROW("township overlong 3-byte", SUB(CID, SEQ, "\xa3\xe0\x80\xaf", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township overlong 4-byte", SUB(CID, SEQ, "\xa4\xf0\x80\x80\xaf", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township surrogate", SUB(CID, SEQ, "\xa3\xed\xa0\x80", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township above U+10FFFF", SUB(CID, SEQ, "\xa4\xf4\x90\x80\x80", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township lead byte 0xf5", SUB(CID, SEQ, "\xa4\xf5\x80\x80\x80", TIME, SAMP), TALLY_EUTF8,
        "township"),
    ROW("township truncated sequence",
        SUB(CID, SEQ,
            "\xa3"
            "a\xe9\xab",
            TIME, SAMP),
        TALLY_EUTF8, "township"),
    ROW("township lone continuation",
        SUB(CID, SEQ,
            "\xa2"
            "a\x80",
            TIME, SAMP),
        TALLY_EUTF8, "township"),
    ROW("township str32 of 4 GB",
        SUB(CID, SEQ,
            "\xdb\xff\xff\xff\xff"
            "ab",
            "", ""),
        TALLY_EMALFORMED, "township"),
    ROW("township str8 past the end",
        SUB(CID, SEQ,
            "\xd9\x10"
            "gaoguan",
            "", ""),
        TALLY_EMALFORMED, "township"),
    ROW("time_ms before 2000", SUB(CID, SEQ, TOWN, "\xcf\x00\x00\x00\xdc\x6a\xcf\xab\xff", SAMP),
        TALLY_ERANGE, "time_ms"),
    ROW("time_ms at 2100", SUB(CID, SEQ, TOWN, "\xcf\x00\x00\x03\xbb\x2c\xc3\xd8\x00", SAMP),
        TALLY_ERANGE, "time_ms"),
    ROW("time_ms negative", SUB(CID, SEQ, TOWN, "\xd0\x80", SAMP), TALLY_ERANGE, "time_ms"),
    ROW("time_ms as str",
        SUB(CID, SEQ, TOWN,
            "\xa1"
            "1",
            SAMP),
        TALLY_EBADTYPE, "time_ms"),
    ROW("samples as map", SUB(CID, SEQ, TOWN, TIME, "\x81\xa1m\x01"), TALLY_EBADTYPE, "samples"),
    ROW("samples as int", SUB(CID, SEQ, TOWN, TIME, "\x01"), TALLY_EBADTYPE, "samples"),
    ROW("samples empty", SUB(CID, SEQ, TOWN, TIME, "\x90"), TALLY_EEMPTY, "samples"),
    ROW("samples array32 of 2^32-1", SUB(CID, SEQ, TOWN, TIME, "\xdd\xff\xff\xff\xff\x92\xa1m\x01"),
        TALLY_EMALFORMED, "samples"),
    ROWS("samples declares 2, holds 1", SUB(CID, SEQ, TOWN, TIME, "\x92\x92\xa1m\x01"),
         TALLY_EMALFORMED, "samples[1]", 1),
    ROWS("sample not an array", SUB(CID, SEQ, TOWN, TIME, "\x91\x05"), TALLY_EBADTYPE, "samples[0]",
         0),
    ROWS("sample of 3 elements", SUB(CID, SEQ, TOWN, TIME, "\x91\x93\xa1m\x01\x02"),
         TALLY_EMALFORMED, "samples[0]", 0),
    ROWS("sample of 1 element", SUB(CID, SEQ, TOWN, TIME, "\x91\x91\xa1m"), TALLY_EMALFORMED,
         "samples[0]", 0),
    ROWS("sample as array16 of 2", SUB(CID, SEQ, TOWN, TIME, "\x91\xdc\x00\x02\xa1m\xa1m"),
         TALLY_EBADTYPE, "samples[0].value", 0),
    ROWS("metric with space",
         SUB(CID, SEQ, TOWN, TIME,
             "\x91\x92\xb1"
             "disputes resolved"
             "\x01"),
         TALLY_EBADNAME, "samples[0].metric", 0),
    ROWS("metric as int", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\x01\x01"), TALLY_EBADTYPE,
         "samples[0].metric", 0),
    ROWS("metric as bin", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xc4\x01m\x01"), TALLY_EBADTYPE,
         "samples[0].metric", 0),
    ROWS("value uint64 above INT64_MAX",
         SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xcf\x80\x00\x00\x00\x00\x00\x00\x00"),
         TALLY_ERANGE, "samples[0].value", 0),
    ROWS("value as str",
         SUB(CID, SEQ, TOWN, TIME,
             "\x91\x92\xa1m\xa1"
             "1"),
         TALLY_EBADTYPE, "samples[0].value", 0),
    ROWS("value as nil", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xc0"), TALLY_EBADTYPE,
         "samples[0].value", 0),
    ROWS("value as float32", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xca\x3f\x80\x00\x00"),
         TALLY_EBADTYPE, "samples[0].value", 0),
    ROWS("value int64 cut", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xd3\x00\x00"),
         TALLY_EMALFORMED, "samples[0].value", 0),
    ROWS("value nested arrays", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\x91\x91\x91\x91\x91\x90"),
         TALLY_EBADTYPE, "samples[0].value", 0),
    ROWS("value 0xc1", SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m\xc1"), TALLY_EMALFORMED,
         "samples[0].value", 0),
    ROWS("fourth metric with slash",
         SUB(CID, SEQ, TOWN, TIME,
             "\x94\x92\xa1m\x01\x92\xa1m\x02\x92\xa1m\x03\x92\xa3"
             "a/b"
             "\x04"),
         TALLY_EBADNAME, "samples[3].metric", 3),
    /* other types */
    ROW("ACK status 3", "\x98\x01\x02\x05\x03\x00\xff\xa0\xa0", TALLY_ERANGE, "status"),
    ROW("ACK accepted with code", "\x98\x01\x02\x05\x00\x05\xff\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("ACK rejected without code", "\x98\x01\x02\x05\x02\x00\xff\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("ACK sample -2", "\x98\x01\x02\x05\x00\x00\xfe\xa0\xa0", TALLY_ERANGE, "sample"),
    ROW("ACK sample 4096", "\x98\x01\x02\x05\x00\x00\xcd\x10\x00\xa0\xa0", TALLY_ERANGE, "sample"),
    ROW("ACK field of 65 bytes",
        "\x98\x01\x02\x05\x00\x00\xff\xd9\x41" A64 "a"
        "\xa0",
        TALLY_ETOOLONG, "field"),
    ROW("ACK message bad UTF-8",
        "\x98\x01\x02\x05\x00\x00\xff\xa0\xa2"
        "a\xff",
        TALLY_EUTF8, "message"),
    ROW("HELLO client of 65 bytes", "\x94\x01\x08\x01\xd9\x41" A64 "a", TALLY_ETOOLONG, "client"),
    ROW("HELLO client as bin",
        "\x94\x01\x08\x01\xc4\x01"
        "a",
        TALLY_EBADTYPE, "client"),
    ROW("HELLO req_id negative", "\x94\x01\x08\xff\xa0", TALLY_ERANGE, "req_id"),
    ROW("SNAPSHOT_END count 2^32", "\x96\x01\x05\x01\x01\x01\xcf\x00\x00\x00\x01\x00\x00\x00\x00",
        TALLY_ERANGE, "count"),
    ROW("HEARTBEAT stream_id -1", "\x95\x01\x07\xff\x01\x01", TALLY_ERANGE, "stream_id"),
    ROW("PING time_ms above INT64_MAX", "\x94\x01\x0c\x01\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
        TALLY_ERANGE, "time_ms"),
    ROW("ERROR code 0", "\x96\x01\x0e\x00\x00\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("ERROR code 100", "\x96\x01\x0e\x00\x64\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("ACK seq 0", "\x98\x01\x02\x00\x00\x00\xff\xa0\xa0", TALLY_ERANGE, "seq"),
    ROW("ACK rejected with code 100", "\x98\x01\x02\x05\x02\x64\xff\xa0\xa0", TALLY_ERANGE, "code"),
    ROW("UPDATE tally as int", UPD("\x01"), TALLY_EBADTYPE, "tally"),
    ROW("UPDATE tally of 5", UPD("\x95\xa1m\xa0\x00\x01\x01"), TALLY_EMALFORMED, "tally"),
    ROW("UPDATE metric empty", UPD("\x96\xa0\xa0\x00\x01\x01\x80"), TALLY_EBADNAME, "metric"),
    ROW("UPDATE scope with space",
        UPD("\x96\xa1m\xa3"
            "a b"
            "\x00\x01\x01\x80"),
        TALLY_EBADNAME, "scope"),
    ROW("UPDATE kind 3", UPD(TALLY("\x03", "\x80")), TALLY_ERANGE, "kind"),
    ROW("UPDATE values as array", UPD(TALLY("\x00", "\x90")), TALLY_EBADTYPE, "values"),
    ROW("UPDATE duplicate column",
        UPD(TALLY("\x00", "\x82\xa3"
                          "24h"
                          "\x01\xa3"
                          "24h"
                          "\x02")),
        TALLY_EMALFORMED, "values"),
    ROW("UPDATE 17 columns",
        UPD(TALLY("\x00", "\xde\x00\x11\xa1"
                          "a"
                          "\x01\xa1"
                          "b"
                          "\x01\xa1"
                          "c"
                          "\x01\xa1"
                          "d"
                          "\x01\xa1"
                          "e"
                          "\x01\xa1"
                          "f"
                          "\x01\xa1"
                          "g\x01\xa1h\x01\xa1i\x01\xa1j"
                          "\x01\xa1k\x01\xa1l\x01\xa1m\x01\xa1n\x01\xa1o\x01\xa1p\x01\xa1q\x01")),
        TALLY_ETOOMANY, "values"),
    ROW("UPDATE column name of 17 bytes",
        UPD(TALLY("\x00", "\x81\xb1" A16 "a"
                          "\x01")),
        TALLY_ETOOLONG, "values"),
    ROW("UPDATE column name empty", UPD(TALLY("\x00", "\x81\xa0\x01")), TALLY_ERANGE, "values"),
    ROW("UPDATE column name as int", UPD(TALLY("\x00", "\x81\x01\x01")), TALLY_EBADTYPE, "values"),
    ROW("UPDATE ratio den 0",
        UPD(TALLY("\x02", "\x81\xa3"
                          "24h"
                          "\x92\x05\x00")),
        TALLY_ERANGE, "values.24h"),
    ROW("UPDATE ratio as int",
        UPD(TALLY("\x02", "\x81\xa3"
                          "24h"
                          "\x05")),
        TALLY_EBADTYPE, "values.24h"),
    ROW("UPDATE ratio of 1",
        UPD(TALLY("\x02", "\x81\xa3"
                          "24h"
                          "\x91\x05")),
        TALLY_EMALFORMED, "values.24h"),
    ROW("UPDATE counter as array",
        UPD(TALLY("\x00", "\x81\xa3"
                          "24h"
                          "\x92\x05\x01")),
        TALLY_EBADTYPE, "values.24h"),
    ROW("UPDATE counter above INT64_MAX",
        UPD(TALLY("\x00", "\x81\xa3"
                          "24h"
                          "\xcf\xff\xff\xff\xff\xff\xff\xff\xff")),
        TALLY_ERANGE, "values.24h"),
    ROW("WELCOME no columns", "\x99\x01\x09\x01\xa0\xa0\x01\x01\x90\x80", TALLY_ERANGE, "columns"),
    ROW("WELCOME column 1 too long",
        "\x99\x01\x09\x01\xa0\xa0\x01\x01\x92\xa1x\xb1" A16 "a"
        "\x80",
        TALLY_ETOOLONG, "columns[1]"),
    ROW("WELCOME duplicate limit",
        "\x99\x01\x09\x01\xa0\xa0\x01\x01\x91\xa1x\x82\xa1k\x01\xa1k\x02", TALLY_EMALFORMED,
        "limits"),
    ROW("WELCOME limit as str",
        "\x99\x01\x09\x01\xa0\xa0\x01\x01\x91\xa1x\x81\xab"
        "max_samples"
        "\xa1"
        "1",
        TALLY_EBADTYPE, "limits.max_samples"),
    ROW("STATS empty name", "\x94\x01\x0b\x01\x81\xa0\x01", TALLY_ERANGE, "counters"),
    ROW("STATS value above INT64_MAX",
        "\x94\x01\x0b\x01\x81\xa1x\xcf\x80\x00\x00\x00\x00\x00\x00\x00", TALLY_ERANGE,
        "counters.x"),
    ROW("STATS duplicate name", "\x94\x01\x0b\x01\x82\xa1x\x01\xa1x\x01", TALLY_EMALFORMED,
        "counters"),
};

static void check_row(const row_t *r, const void *bytes, size_t len, uint32_t cap)
{
    proto_error_t err;
    memset(&err, 0, sizeof err);
    memset(&g_out, 0xaa, sizeof g_out);
    int rc = decode_exact(bytes, len, &g_out, cap, &err);
    if (rc != r->code || strcmp(err.field, r->field) != 0 || err.sample != r->sample) {
        print_message("row '%s': got %s field '%s' sample %d (%s), want %s field '%s' sample %d\n",
                      r->desc, tally_errname(rc), err.field, err.sample, err.message,
                      tally_errname(r->code), r->field, r->sample);
        fail();
    }
    assert_int_equal(err.code, rc);
    /* The sentence names the field first. */
    assert_int_equal(strncmp(err.message, err.field, strlen(err.field)), 0);
    assert_true(proto_utf8_valid(err.message, strlen(err.message)));
}

static void test_malformed_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(&rows[i], rows[i].bytes, rows[i].len, PROTO_SAMPLES_DEFAULT);
}

/* Inputs too big to write as literals. */
static void test_malformed_generated(void **state)
{
    (void)state;
    static uint8_t buf[200000];
    size_t n;

    /* 100000 nested arrays, at the top and inside a field. */
    memset(buf, 0x91, 100000);
    buf[100000] = 0x90;
    check_row(&(row_t){"100000 nested arrays", NULL, 0, TALLY_EMALFORMED, "body", -1}, buf, 100001,
              PROTO_SAMPLES_DEFAULT);
    static const char head[] = SUB(CID, SEQ, TOWN, TIME, "\x91\x92\xa1m");
    memcpy(buf, head, sizeof head - 1);
    memset(buf + sizeof head - 1, 0x91, 100000);
    buf[sizeof head - 1 + 100000] = 0x01;
    check_row(&(row_t){"value nested 100000 deep", NULL, 0, TALLY_EBADTYPE, "samples[0].value", 0},
              buf, sizeof head - 1 + 100001, PROTO_SAMPLES_DEFAULT);

    /* Too many samples for the configured limit, and for no storage. */
    static const char sub[] = SUB(CID, SEQ, TOWN, TIME, "\xdc\x03\xe9");
    memcpy(buf, sub, sizeof sub - 1);
    n = sizeof sub - 1;
    for (int i = 0; i < 1001; i++) {
        memcpy(buf + n, "\x92\xa1m\x01", 4);
        n += 4;
    }
    row_t r = {"1001 samples", NULL, 0, TALLY_ETOOMANY, "samples", -1};
    check_row(&r, buf, n, PROTO_SAMPLES_DEFAULT);
    proto_error_t err;
    assert_int_equal(proto_decode(buf, n, &g_out, NULL, 0, &err), TALLY_ETOOMANY);
    assert_int_equal(proto_decode(buf, n, &g_out, g_samples, 1001, &err), 0);
    assert_int_equal(g_out.u.submit.nsamples, 1001);

    /* A prefix of 256 bytes is one too many. */
    memcpy(buf, "\x94\x01\x03\x01\xda\x01\x00", 7);
    memset(buf + 7, 'p', 256);
    check_row(&(row_t){"prefix of 256", NULL, 0, TALLY_ETOOLONG, "prefix", -1}, buf, 7 + 256,
              PROTO_SAMPLES_DEFAULT);
    buf[5] = 0x00, buf[6] = 0xff; /* 255 bytes + 1 trailing */
    check_row(&(row_t){"prefix of 255 + 1", NULL, 0, TALLY_ETRAILING, "body", -1}, buf, 7 + 256,
              PROTO_SAMPLES_DEFAULT);
}

/* Integers in every MessagePack width decode to the same value. */
static void test_noncanonical_ints(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        int64_t value;
    } ints[] = {
        {"\x05", 1, 5},
        {"\xcc\x05", 2, 5},
        {"\xcd\x00\x05", 3, 5},
        {"\xce\x00\x00\x00\x05", 5, 5},
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 9, 5},
        {"\xd0\x05", 2, 5},
        {"\xd1\x00\x05", 3, 5},
        {"\xd2\x00\x00\x00\x05", 5, 5},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x05", 9, 5},
        {"\xff", 1, -1},
        {"\xd0\xff", 2, -1},
        {"\xd1\xff\xff", 3, -1},
        {"\xd2\xff\xff\xff\xff", 5, -1},
        {"\xd3\xff\xff\xff\xff\xff\xff\xff\xff", 9, -1},
        {"\xe0", 1, -32},
        {"\xd0\x80", 2, -128},
        {"\xd1\x80\x00", 3, -32768},
        {"\xd2\x80\x00\x00\x00", 5, INT32_MIN},
        {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, INT64_MIN},
        {"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9, INT64_MAX},
        {"\xce\xff\xff\xff\xff", 5, UINT32_MAX},
    };
    static const char head[] = "\x97\x01\x01" CID;
    static const char mid[] = TOWN TIME "\x91\x92\xa1m";
    uint8_t buf[128];
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        for (int as_seq = 0; as_seq < 2; as_seq++) {
            size_t n = sizeof head - 1;
            memcpy(buf, head, n);
            const char *seq = as_seq ? ints[i].bytes : "\x07";
            size_t seqlen = as_seq ? ints[i].len : 1;
            memcpy(buf + n, seq, seqlen), n += seqlen;
            memcpy(buf + n, mid, sizeof mid - 1), n += sizeof mid - 1;
            memcpy(buf + n, as_seq ? "\x01" : ints[i].bytes, as_seq ? 1 : ints[i].len);
            n += as_seq ? 1 : ints[i].len;
            proto_error_t err;
            int rc = decode_exact(buf, n, &g_out, PROTO_SAMPLES_DEFAULT, &err);
            if (as_seq && ints[i].value < 1) {
                assert_int_equal(rc, TALLY_ERANGE);
                assert_string_equal(err.field, "seq");
                continue;
            }
            assert_int_equal(rc, 0);
            if (as_seq)
                assert_true(g_out.u.submit.seq == (uint64_t)ints[i].value);
            else
                assert_true(g_out.u.submit.samples[0].value == ints[i].value);
        }
    }

    /* Wide containers and strings everywhere: array32, bin32, str32, array16. */
    static const char wide[] = "\xdd\x00\x00\x00\x07\xd3\x00\x00\x00\x00\x00\x00\x00\x01"
                               "\xd2\x00\x00\x00\x01\xc6\x00\x00\x00\x10"
                               "0123456789abcdef"
                               "\xcf\x00\x00\x00\x00\x00\x00\x00\x05"
                               "\xdb\x00\x00\x00\x07"
                               "gaoguan"
                               "\xd3\x00\x00\x01\x8b\xcf\xe5\x68\x00"
                               "\xdc\x00\x01\xdc\x00\x02\xda\x00\x01m\xd0\x80";
    assert_int_equal(decode_exact(wide, sizeof wide - 1, &g_out, 10, NULL), 0);
    assert_int_equal(g_out.type, PROTO_SUBMIT);
    assert_memory_equal(g_out.u.submit.client_id, "0123456789abcdef", 16);
    assert_true(g_out.u.submit.seq == 5);
    assert_true(view_is(g_out.u.submit.township, "gaoguan"));
    assert_true(g_out.u.submit.time_ms == 1700000000000);
    assert_int_equal(g_out.u.submit.nsamples, 1);
    assert_true(view_is(g_out.u.submit.samples[0].metric, "m"));
    assert_true(g_out.u.submit.samples[0].value == -128);

    /* A map16 of values and a ratio in int8/uint16, nil for a missing value. */
    static const char upd[] = UPD("\x96\xa1m\xa3"
                                  "abc"
                                  "\xcc\x02\x01\x01\xde\x00\x02\xa2"
                                  "1h"
                                  "\x92\xd0\xfe\xcd\x01\x00"
                                  "\xa3"
                                  "24h"
                                  "\xc0");
    assert_int_equal(decode_exact(upd, sizeof upd - 1, &g_out, 0, NULL), 0);
    const proto_tally_t *t = &g_out.u.update.tally;
    assert_int_equal(t->kind, PROTO_KIND_RATIO);
    assert_int_equal(t->nvalues, 2);
    assert_true(t->values[0].present && t->values[0].num == -2 && t->values[0].den == 256);
    assert_false(t->values[1].present);
    assert_true(view_is(t->values[1].name, "24h"));
}

/* ---- error reports and partial results ---------------------------------- */

static void test_error_messages(void **state)
{
    (void)state;
    proto_error_t err;
    static const char space[] = SUB(CID, SEQ, TOWN, TIME,
                                    "\x94\x92\xa1m\x01\x92\xa1m\x02\x92\xa1m\x03\x92\xb1"
                                    "disputes resolved"
                                    "\x04");
    assert_int_equal(decode_exact(space, sizeof space - 1, &g_out, 1000, &err), TALLY_EBADNAME);
    assert_string_equal(err.message, "samples[3].metric: name 'disputes resolved' contains a "
                                     "forbidden character (space) at byte 8");
    assert_int_equal(err.sample, 3);

    static const char bin[] = SUB(CID, SEQ,
                                  "\xa4"
                                  "a\xff'\\",
                                  TIME, SAMP);
    assert_int_equal(decode_exact(bin, sizeof bin - 1, &g_out, 1000, &err), TALLY_EUTF8);
    assert_string_equal(err.message,
                        "township: name 'a\\xff\\x27\\x5c' is not valid UTF-8 at byte 1");

    static const char c1[] = SUB(CID, SEQ,
                                 "\xa8"
                                 "高观\xc2\x9f",
                                 TIME, SAMP);
    assert_int_equal(decode_exact(c1, sizeof c1 - 1, &g_out, 1000, &err), TALLY_EBADNAME);
    assert_string_equal(err.message, "township: name '高观\\xc2\\x9f' contains a forbidden "
                                     "character (C1 control U+009F) at byte 6");

    static const char lng[] = SUB(CID, SEQ, "\xd9\x64" A64 A16 A16 "bbbb", TIME, SAMP);
    assert_int_equal(decode_exact(lng, sizeof lng - 1, &g_out, 1000, &err), TALLY_ETOOLONG);
    assert_string_equal(err.message, "township: name '" A16 A16 A16 "...' is 100 bytes, over "
                                     "the limit of 64 bytes");

    static const char seq0[] = SUB(CID, "\x00", TOWN, TIME, SAMP);
    assert_int_equal(decode_exact(seq0, sizeof seq0 - 1, &g_out, 1000, &err), TALLY_ERANGE);
    assert_string_equal(err.message, "seq: 0 is out of range (allowed 1..18446744073709551615)");

    static const char old[] = SUB(CID, SEQ, TOWN, "\xd0\x80", SAMP);
    assert_int_equal(decode_exact(old, sizeof old - 1, &g_out, 1000, &err), TALLY_ERANGE);
    assert_string_equal(err.message, "time_ms: -128 is out of range (allowed "
                                     "946684800000..4102444799999, 2000-01-01 to 2100-01-01 UTC)");

    static const char map[] = "\x99\x01\x09\x01\xa0\xa0\x01\x01\x91\xa1x\x82\xa1k\x01";
    assert_int_equal(decode_exact(map, sizeof map - 1, &g_out, 0, &err), TALLY_EMALFORMED);
    assert_string_equal(err.message,
                        "limits: map of 2 entries declared but only 3 bytes remain (truncated)");

    static const char cid[] = SUB("\xc4\x0f"
                                  "0123456789abcde",
                                  SEQ, TOWN, TIME, SAMP);
    assert_int_equal(decode_exact(cid, sizeof cid - 1, &g_out, 1000, &err), TALLY_ERANGE);
    assert_string_equal(err.message, "client_id: bin of 15 bytes, must be exactly 16 bytes");

    static const char big[] = SUB(CID, SEQ,
                                  "\xdb\xff\xff\xff\xff"
                                  "ab",
                                  "", "");
    assert_int_equal(decode_exact(big, sizeof big - 1, &g_out, 1000, &err), TALLY_EMALFORMED);
    assert_string_equal(err.message, "township: string of 4294967295 bytes declared but only 2 "
                                     "bytes remain (truncated)");

    static const char ver[] = "\x93\x07\x0a\x00";
    assert_int_equal(decode_exact(ver, sizeof ver - 1, &g_out, 0, &err), TALLY_EVERSION);
    assert_string_equal(err.message, "version: 7 is not supported, this codec speaks version 1");
    assert_int_equal(g_out.version, 7);

    static const char typ[] = "\x93\x01\x1e\x00";
    assert_int_equal(decode_exact(typ, sizeof typ - 1, &g_out, 0, &err), TALLY_ETYPE);
    assert_string_equal(err.message, "type: 30 is not a known message type (1..15)");

    static const char bad[] = SUB(CID,
                                  "\xa1"
                                  "5",
                                  TOWN, TIME, SAMP);
    assert_int_equal(decode_exact(bad, sizeof bad - 1, &g_out, 1000, &err), TALLY_EBADTYPE);
    assert_string_equal(err.message, "seq: expected an integer, got a string");

    static const char col[] = UPD(TALLY("\x02", "\x81\xa3"
                                                "24h"
                                                "\x92\x05\x00"));
    assert_int_equal(decode_exact(col, sizeof col - 1, &g_out, 0, &err), TALLY_ERANGE);
    assert_string_equal(err.message,
                        "values.24h: ratio 5/0 has a zero denominator (send nil instead)");

    /* 5000 samples, each a minimal 4-byte sample. */
    static uint8_t buf[30000];
    static const char sub[] = SUB(CID, SEQ, TOWN, TIME, "\xdc\x13\x88");
    size_t n = sizeof sub - 1;
    memcpy(buf, sub, n);
    for (int i = 0; i < 5000; i++, n += 4)
        memcpy(buf + n, "\x92\xa1m\x01", 4);
    assert_int_equal(decode_exact(buf, n, &g_out, 1000, &err), TALLY_ETOOMANY);
    assert_string_equal(err.message, "samples: 5000 samples exceed the limit of 1000");
    assert_string_equal(err.field, "samples");
    assert_int_equal(err.sample, -1);
}

static void test_partial_results(void **state)
{
    (void)state;
    static const char town[] = SUB(CID, "\xcd\x01\x00",
                                   "\xa3"
                                   "a b",
                                   TIME, SAMP);
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(town, sizeof town - 1, &g_out, 1000, NULL), TALLY_EBADNAME);
    assert_int_equal(g_out.type, PROTO_SUBMIT);
    assert_true(g_out.u.submit.seq == 256);

    static const char seq[] = SUB(CID, "\xc0", TOWN, TIME, SAMP);
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(seq, sizeof seq - 1, &g_out, 1000, NULL), TALLY_EBADTYPE);
    assert_int_equal(g_out.type, PROTO_SUBMIT);
    assert_true(g_out.u.submit.seq == 0);

    static const char ping[] = "\x94\x01\x0c\x4d\xa1x";
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(ping, sizeof ping - 1, &g_out, 0, NULL), TALLY_EBADTYPE);
    assert_int_equal(g_out.type, PROTO_PING);
    assert_true(proto_req_id(&g_out) == 77);

    static const char shape[] = "\x95\x01\x0a\x4d\x01\x02";
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(shape, sizeof shape - 1, &g_out, 0, NULL), TALLY_EMALFORMED);
    assert_int_equal(g_out.type, PROTO_STATS_REQ);
    assert_true(proto_req_id(&g_out) == 0);

    static const char typ[] = "\x93\x01\x63\x01";
    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(decode_exact(typ, sizeof typ - 1, &g_out, 0, NULL), TALLY_ETYPE);
    assert_int_equal(g_out.type, 0);
    assert_int_equal(g_out.version, 1);
    assert_true(proto_req_id(&g_out) == 0);

    memset(&g_out, 0xaa, sizeof g_out);
    assert_int_equal(proto_decode(NULL, 0, &g_out, NULL, 0, NULL), TALLY_EMALFORMED);
    assert_int_equal(g_out.type, 0);
    assert_true(g_out.u.submit.seq == 0);
}

/* ---- encoder ------------------------------------------------------------ */

static void expect_einval(const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), TALLY_EINVAL);
    msgpack_sbuffer_destroy(&sb);
}

static void test_encoder_rejects(void **state)
{
    (void)state;
    static const char bad_utf8[] = "a\xff";
    make_msg(PROTO_SUBMIT, &g_msg);
    g_msg.u.submit.seq = 0;
    expect_einval(&g_msg);
    make_msg(PROTO_SUBMIT, &g_msg);
    g_msg.u.submit.township = proto_str("gao guan");
    expect_einval(&g_msg);
    g_msg.u.submit.township = proto_str("");
    expect_einval(&g_msg);
    g_msg.u.submit.township = proto_str(A64 "a");
    expect_einval(&g_msg);
    g_msg.u.submit.township = (proto_str_t){NULL, 3};
    expect_einval(&g_msg);
    make_msg(PROTO_SUBMIT, &g_msg);
    g_in[1].metric = proto_str("a/b");
    expect_einval(&g_msg);
    make_msg(PROTO_SUBMIT, &g_msg);
    g_in[2].metric = proto_str(bad_utf8);
    expect_einval(&g_msg);
    make_msg(PROTO_SUBMIT, &g_msg);
    g_msg.u.submit.nsamples = 0;
    expect_einval(&g_msg);
    g_msg.u.submit.nsamples = PROTO_SAMPLES_MAX + 1;
    expect_einval(&g_msg);
    g_msg.u.submit.nsamples = 1;
    g_msg.u.submit.samples = NULL;
    expect_einval(&g_msg);
    make_msg(PROTO_SUBMIT, &g_msg);
    g_msg.u.submit.time_ms = PROTO_TIME_MAX;
    expect_einval(&g_msg);
    g_msg.u.submit.time_ms = PROTO_TIME_MIN - 1;
    expect_einval(&g_msg);

    make_msg(PROTO_ACK, &g_msg);
    g_msg.u.ack.status = 3;
    expect_einval(&g_msg);
    g_msg.u.ack.status = PROTO_ACK_ACCEPTED; /* code 13 with accepted */
    expect_einval(&g_msg);
    g_msg.u.ack.status = PROTO_ACK_REJECTED;
    g_msg.u.ack.code = 0;
    expect_einval(&g_msg);
    make_msg(PROTO_ACK, &g_msg);
    g_msg.u.ack.sample = -2;
    expect_einval(&g_msg);
    g_msg.u.ack.sample = PROTO_SAMPLES_MAX;
    expect_einval(&g_msg);
    make_msg(PROTO_ACK, &g_msg);
    g_msg.u.ack.field = proto_str(A64 "a");
    expect_einval(&g_msg);
    make_msg(PROTO_ACK, &g_msg);
    g_msg.u.ack.seq = 0;
    expect_einval(&g_msg);
    make_msg(PROTO_ACK, &g_msg);
    g_msg.u.ack.code = 100;
    expect_einval(&g_msg);

    make_msg(PROTO_UPDATE, &g_msg);
    g_msg.u.update.tally.values[0].den = 0;
    expect_einval(&g_msg);
    make_msg(PROTO_UPDATE, &g_msg);
    g_msg.u.update.tally.values[4].name = proto_str("1h");
    expect_einval(&g_msg);
    make_msg(PROTO_UPDATE, &g_msg);
    g_msg.u.update.tally.nvalues = PROTO_COLUMNS_MAX + 1;
    expect_einval(&g_msg);
    make_msg(PROTO_UPDATE, &g_msg);
    g_msg.u.update.tally.kind = 3;
    expect_einval(&g_msg);
    make_msg(PROTO_SNAPSHOT_ITEM, &g_msg);
    g_msg.u.snapshot_item.tally.scope = proto_str("a b");
    expect_einval(&g_msg);
    make_msg(PROTO_SNAPSHOT_ITEM, &g_msg);
    g_msg.u.snapshot_item.tally.values[0].name = proto_str(A16 "a");
    expect_einval(&g_msg);

    make_msg(PROTO_WELCOME, &g_msg);
    g_msg.u.welcome.ncolumns = 0;
    expect_einval(&g_msg);
    g_msg.u.welcome.ncolumns = PROTO_COLUMNS_MAX + 1;
    expect_einval(&g_msg);
    make_msg(PROTO_WELCOME, &g_msg);
    g_msg.u.welcome.pub_endpoint = proto_str(bad_utf8);
    expect_einval(&g_msg);
    make_msg(PROTO_STATS, &g_msg);
    g_msg.u.stats.n = PROTO_STATS_MAX + 1;
    expect_einval(&g_msg);
    make_msg(PROTO_STATS, &g_msg);
    g_msg.u.stats.entries[1].name = proto_str("tallyd_samples_total");
    expect_einval(&g_msg);
    make_msg(PROTO_HELLO, &g_msg);
    g_msg.u.hello.client = proto_str(A64 "a");
    expect_einval(&g_msg);
    make_msg(PROTO_ERROR, &g_msg);
    g_msg.u.error.code = 0;
    expect_einval(&g_msg);
    g_msg.u.error.code = 100;
    expect_einval(&g_msg);
    make_msg(PROTO_ERROR, &g_msg);
    g_msg.u.error.message = proto_str(bad_utf8);
    expect_einval(&g_msg);
    g_msg.type = 0;
    expect_einval(&g_msg);
    g_msg.type = 16;
    expect_einval(&g_msg);
}

/* The encoder writes the smallest encodings (the decoder accepts others). */
static void test_encoder_canonical(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    make_msg(PROTO_PING, &g_msg);
    g_msg.u.ping.req_id = 200;
    g_msg.u.ping.time_ms = -33;
    assert_int_equal(proto_encode(&sb, &g_msg), 0);
    assert_int_equal(sb.size, 7);
    assert_memory_equal(sb.data, "\x94\x01\x0c\xcc\xc8\xd0\xdf", 7);
    msgpack_sbuffer_clear(&sb);
    make_msg(PROTO_STATS_REQ, &g_msg);
    assert_int_equal(proto_encode(&sb, &g_msg), 0);
    assert_int_equal(sb.size, 4);
    assert_memory_equal(sb.data, "\x93\x01\x0a\x03", 4);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- names, UTF-8 and helpers ------------------------------------------- */

static void test_name_check(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        int rc;
    } names[] = {
        {"gaoguan", 7, 0},
        {"disputes.resolved", 17, 0},
        {"高观镇", 9, 0},
        {"a-b_c:d~e", 9, 0},
        {A64, 64, 0},
        {"\xf4\x8f\xbf\xbf", 4, 0},
        {"\xc2\xa0", 2, 0},
        {"", 0, TALLY_EBADNAME},
        {A64 "a", 65, TALLY_ETOOLONG},
        {"a b", 3, TALLY_EBADNAME},
        {"a/b", 3, TALLY_EBADNAME},
        {"a\x7f", 2, TALLY_EBADNAME},
        {"a\x1f", 2, TALLY_EBADNAME},
        {"a\0b", 3, TALLY_EBADNAME},
        {"\xc2\x80", 2, TALLY_EBADNAME},
        {"\xc2\x9f", 2, TALLY_EBADNAME},
        {"\xc0\xaf", 2, TALLY_EUTF8},
        {"\xe0\x9f\xbf", 3, TALLY_EUTF8},
        {"\xed\xbf\xbf", 3, TALLY_EUTF8},
        {"\xf0\x8f\xbf\xbf", 4, TALLY_EUTF8},
        {"\xf4\x90\x80\x80", 4, TALLY_EUTF8},
        {"\xe9\xab", 2, TALLY_EUTF8},
        {"\xbf", 1, TALLY_EUTF8},
        {"\xfe", 1, TALLY_EUTF8},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rc = proto_name_check(names[i].s, names[i].len);
        if (rc != names[i].rc)
            print_message("name %zu: got %d want %d\n", i, rc, names[i].rc);
        assert_int_equal(rc, names[i].rc);
        if (rc != TALLY_EUTF8 && names[i].len <= 64)
            assert_true(proto_utf8_valid(names[i].s, names[i].len));
        if (rc == TALLY_EUTF8)
            assert_false(proto_utf8_valid(names[i].s, names[i].len));
    }
    assert_true(proto_utf8_valid(NULL, 0));
    assert_true(proto_utf8_valid("\x7f\x01 /", 4)); /* text may hold what names may not */
}

static void test_topic(void **state)
{
    (void)state;
    char buf[PROTO_TOPIC_MAX + 1];
    assert_int_equal(proto_topic(buf, sizeof buf, proto_str("disputes.resolved"), proto_str("")),
                     27);
    assert_string_equal(buf, "u/county/disputes.resolved/");
    assert_int_equal(
        proto_topic(buf, sizeof buf, proto_str("disputes.resolved"), proto_str("gaoguan")), 33);
    assert_string_equal(buf, "u/town/gaoguan/disputes.resolved/");
    assert_int_equal(proto_topic(buf, sizeof buf, proto_str(A64), proto_str(A64)),
                     7 + 64 + 1 + 64 + 1);
    assert_int_equal(proto_topic(buf, 6, proto_str("m"), proto_str("")), TALLY_ETOOLONG);
    assert_int_equal(proto_topic(buf, 12, proto_str("m"), proto_str("")), 11);
    assert_string_equal(buf, "u/county/m/");
    assert_int_equal(proto_topic(buf, 11, proto_str("m"), proto_str("")), TALLY_ETOOLONG);
}

static void test_helpers(void **state)
{
    (void)state;
    proto_str_t e = proto_str(NULL);
    assert_int_equal(e.len, 0);
    assert_non_null(e.ptr);
    assert_true(proto_str_eq(e, ""));
    assert_true(proto_str_eq(e, NULL));
    assert_true(proto_str_eq(proto_str("abc"), "abc"));
    assert_false(proto_str_eq(proto_str("abc"), "abd"));
    assert_false(proto_str_eq(proto_str("abc"), "ab"));
    assert_false(proto_str_eq((proto_str_t){"abc", 2}, "abc"));

    for (uint32_t type = 0; type <= 16; type++) {
        memset(&g_msg, 0, sizeof g_msg);
        g_msg.type = type;
        g_msg.u.stats_req.req_id = 99; /* the leading uint64 of every struct */
        bool has = type >= PROTO_SNAPSHOT_REQ && type <= PROTO_ERROR && type != PROTO_UPDATE &&
                   type != PROTO_HEARTBEAT;
        assert_true(proto_req_id(&g_msg) == (has ? 99u : 0u));
    }
}

static void test_tally_error(void **state)
{
    (void)state;
    static const char *const wire[] = {
        "OK",
        "MALFORMED",
        "UNSUPPORTED_VERSION",
        "UNKNOWN_TYPE",
        "BAD_TYPE",
        "OUT_OF_RANGE",
        "TOO_LONG",
        "BAD_UTF8",
        "BAD_NAME",
        "EMPTY_BATCH",
        "TOO_MANY_SAMPLES",
        "TRAILING_DATA",
        "UNKNOWN_TOWNSHIP",
        "UNKNOWN_METRIC",
        "TIME_IN_FUTURE",
        "TIME_TOO_OLD",
        "OVERFLOW",
        "FORBIDDEN",
        "RATE_LIMITED",
        "TOO_MANY_SERIES",
        "TOO_MANY_CLIENTS",
        "UNAVAILABLE",
        "TOO_LARGE",
        "KIND_MISMATCH",
        "BUSY",
        "STALE_SEQUENCE",
    };
    static const char *const local[] = {"NOMEM", "IO",     "TIMEOUT",  "AGAIN",  "CLOSED",
                                        "INVAL", "EXISTS", "NOTFOUND", "CONFIG", "SYS"};
    for (int i = 0; i <= -TALLY_EWIRE_LAST; i++) {
        assert_string_equal(tally_errname(-i), wire[i]);
        assert_string_not_equal(tally_strerror(-i), "unknown error");
        assert_true(tally_err_is_wire(-i) == (i != 0));
    }
    for (int i = 0; i < 10; i++) {
        assert_string_equal(tally_errname(TALLY_ENOMEM - i), local[i]);
        assert_string_not_equal(tally_strerror(TALLY_ENOMEM - i), "unknown error");
        assert_false(tally_err_is_wire(TALLY_ENOMEM - i));
    }
    assert_int_equal(TALLY_ENOMEM - 9, TALLY_ESYS);
    static const int unknown[] = {1, 100, -26, -99, -110, -1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(tally_errname(unknown[i]), "UNKNOWN");
        assert_string_equal(tally_strerror(unknown[i]), "unknown error");
        assert_false(tally_err_is_wire(unknown[i]));
        assert_false(tally_err_retryable(unknown[i]));
    }
    int retry = 0;
    for (int c = 0; c >= -120; c--)
        retry += tally_err_retryable(c);
    assert_int_equal(retry, 7);
    assert_true(tally_err_retryable(TALLY_ERATELIMIT) && tally_err_retryable(TALLY_EUNAVAIL) &&
                tally_err_retryable(TALLY_EBUSY) && tally_err_retryable(TALLY_ETIMEDOUT) &&
                tally_err_retryable(TALLY_EAGAIN) && tally_err_retryable(TALLY_EIO) &&
                tally_err_retryable(TALLY_ECLOSED));
    assert_false(tally_err_retryable(TALLY_ESERIESLIMIT) || tally_err_retryable(TALLY_EMALFORMED));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_submit_boundaries),
        cmocka_unit_test(test_roundtrip_replies),
        cmocka_unit_test(test_roundtrip_snapshot),
        cmocka_unit_test(test_roundtrip_publish),
        cmocka_unit_test(test_roundtrip_session),
        cmocka_unit_test(test_every_prefix_is_malformed),
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_malformed_generated),
        cmocka_unit_test(test_noncanonical_ints),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_partial_results),
        cmocka_unit_test(test_encoder_rejects),
        cmocka_unit_test(test_encoder_canonical),
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_tally_error),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_group);
}
