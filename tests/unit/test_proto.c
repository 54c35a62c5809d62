/* test_proto.c - unit tests of the wire codec (proto/) and tally_error: round
 * trips, the encoder, names and helpers.  The decoder's hand-written inputs and
 * rejections are tested in test_proto_decode.c. */
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
#include "proto_test_util.h"

static proto_sample_t g_in[PROTO_SAMPLES_MAX];
static proto_msg_t g_msg; /* large (STATS holds 256 entries): keep off the stack */
static proto_msg_t g_out;

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
    case PROTO_CATALOG_REQ:
        m->u.catalog_req.req_id = 11;
        m->u.catalog_req.townships_from = UINT32_MAX;
        m->u.catalog_req.metrics_from = 3;
        break;
    case PROTO_CATALOG: {
        static const proto_township_t towns[] = {{{"gaoguan", 7}, {"高观镇", 9}, 2}};
        static const proto_metric_info_t metrics[] = {
            {{"disputes.resolved", 17}, 0, {"件", 3}, 0, {"化解矛盾纠纷", 18}, {"", 0}, {"", 0}},
            {{"disputes.resolution_rate", 24},
             2,
             {"", 0},
             0,
             {"矛盾纠纷化解率", 21},
             {"disputes.resolved", 17},
             {"disputes.screened", 17}}};
        m->u.catalog.req_id = 11;
        m->u.catalog.catalog_id = UINT64_MAX;
        m->u.catalog.townships_total = 25;
        m->u.catalog.metrics_total = 2;
        m->u.catalog.ntownships = 1;
        m->u.catalog.townships = towns;
        m->u.catalog.nmetrics = 2;
        m->u.catalog.metrics = metrics;
        break;
    }
    case PROTO_PERIOD_REQ:
        m->u.period_req.req_id = 12;
        m->u.period_req.prefix = proto_str("u/town/gaoguan/");
        m->u.period_req.period = proto_str("2023-12-31");
        break;
    case PROTO_PERIOD:
        m->u.period.req_id = 13;
        m->u.period.index = 0;
        m->u.period.count = 1;
        m->u.period.has_tally = true;
        set_tally(&m->u.period.tally, PROTO_KIND_RATIO, "gaoguan");
        break;
    case PROTO_RANGE_REQ:
        m->u.range_req.req_id = 14;
        m->u.range_req.metric = proto_str("disputes.resolved");
        m->u.range_req.scope = proto_str("gaoguan");
        m->u.range_req.by = proto_str("month");
        m->u.range_req.from = proto_str("2023-01");
        m->u.range_req.to = proto_str("2023-12");
        break;
    case PROTO_RANGE:
        m->u.range.req_id = 15;
        m->u.range.metric = proto_str("disputes.resolution_rate");
        m->u.range.scope = proto_str("");
        m->u.range.kind = PROTO_KIND_RATIO;
        m->u.range.first = 10;
        m->u.range.total = 12;
        m->u.range.npoints = 2;
        m->u.range.points[0] = (proto_value_t){.name = proto_str("2023-11"), .present = false};
        m->u.range.points[1] =
            (proto_value_t){.name = proto_str("2023-12"), .present = true, .num = 216, .den = 219};
        break;
    case PROTO_PERIOD_CHANGED:
        m->u.period_changed.stream_id = 7;
        m->u.period_changed.seq = 1234;
        m->u.period_changed.metric = proto_str("disputes.resolved");
        m->u.period_changed.scope = proto_str("gaoguan");
        m->u.period_changed.nperiods = 2;
        m->u.period_changed.periods[0] = proto_str("2023-12-31");
        m->u.period_changed.periods[1] = proto_str("2023");
        break;
    case PROTO_CLOCK_REQ:
        m->u.clock_req.req_id = 16;
        break;
    case PROTO_CLOCK:
        m->u.clock.req_id = 16;
        m->u.clock.now_ms = 1701360000000;
        m->u.clock.zone = proto_str("Asia/Shanghai");
        m->u.clock.utc_offset_s = -PROTO_UTC_OFFSET_MAX;
        break;
    case PROTO_SPAN_REQ:
        m->u.span_req.req_id = 17;
        m->u.span_req.prefix = proto_str("u/county/");
        m->u.span_req.from = proto_str("2022");
        m->u.span_req.to = proto_str("2022-12-06");
        break;
    case PROTO_TOWNSHIPS_REQ:
        m->u.townships_req.req_id = 18;
        m->u.townships_req.from = UINT32_MAX;
        break;
    case PROTO_TOWNSHIPS: {
        static const proto_str_t names[] = {{"gaoguan", 7}, {"高观镇", 9}};
        m->u.townships.req_id = 18;
        m->u.townships.next = 4097;
        m->u.townships.n = 2;
        m->u.townships.names = names;
        break;
    }
    case PROTO_BACKUP_REQ:
        m->u.backup_req.req_id = 19;
        break;
    case PROTO_BACKUP:
        m->u.backup.req_id = 19;
        m->u.backup.path = proto_str("/var/lib/tallyd/backups/backup-20231130T160000Z");
        m->u.backup.files = UINT32_MAX;
        m->u.backup.bytes = UINT64_MAX;
        m->u.backup.ms = 127;
        break;
    case PROTO_BACKUP_FETCH:
        m->u.backup_fetch.req_id = 20;
        m->u.backup_fetch.name = proto_str("backup-20231130T160000Z-12");
        m->u.backup_fetch.file = UINT32_MAX;
        m->u.backup_fetch.offset = UINT64_MAX;
        break;
    case PROTO_BACKUP_CHUNK:
        m->u.backup_chunk.req_id = 21;
        m->u.backup_chunk.files = 3;
        m->u.backup_chunk.file = 2;
        m->u.backup_chunk.file_name = proto_str("state-0000000000000002.ckp");
        m->u.backup_chunk.size = 10;
        m->u.backup_chunk.offset = 4;
        m->u.backup_chunk.data = (proto_str_t){"abcdef", 6};
        break;
    case PROTO_BACKUP_LIST_REQ:
        m->u.backup_list_req.req_id = 22;
        break;
    case PROTO_BACKUP_LIST: {
        static const proto_backup_entry_t one[] = {
            {{"backup-20231130T160000Z-2", 25}, 5, 60000, true}};
        m->u.backup_list.req_id = 23;
        m->u.backup_list.dir = proto_str("/var/lib/tallyd/backups");
        m->u.backup_list.total = 2;
        m->u.backup_list.n = 1;
        m->u.backup_list.backups = one;
        break;
    }
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

    make_msg(PROTO_CLOCK_REQ, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.clock_req.req_id == 16);
    msgpack_sbuffer_destroy(&sb);

    make_msg(PROTO_CLOCK, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.clock.req_id == 16 && g_out.u.clock.now_ms == 1701360000000);
    assert_true(view_is(g_out.u.clock.zone, "Asia/Shanghai"));
    assert_int_equal(g_out.u.clock.utc_offset_s, -PROTO_UTC_OFFSET_MAX);
    msgpack_sbuffer_destroy(&sb);

    make_msg(PROTO_SPAN_REQ, &g_msg);
    roundtrip(&g_msg, &g_out, &sb);
    assert_true(g_out.u.span_req.req_id == 17 && view_is(g_out.u.span_req.prefix, "u/county/"));
    assert_true(view_is(g_out.u.span_req.from, "2022") &&
                view_is(g_out.u.span_req.to, "2022-12-06"));
    msgpack_sbuffer_destroy(&sb);
}

/* Every proper prefix of every message type is a truncated message. */
static void test_every_prefix_is_malformed(void **state)
{
    (void)state;
    for (uint32_t type = PROTO_SUBMIT; type <= PROTO_TYPE_LAST; type++) {
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

/* proto_decode_head() on an exact-size copy, so ASan sees a read past the
 * end; the copy lives until the next call (the views point into it). */
static int decode_head_exact(const void *bytes, size_t len, proto_msg_t *m, proto_error_t *err)
{
    free(g_copy);
    g_copy = malloc(len ? len : 1);
    assert_non_null(g_copy);
    if (len > 0)
        memcpy(g_copy, bytes, len);
    memset(m, 0xaa, sizeof *m);
    return proto_decode_head(g_copy, len, m, err);
}

/* The start of a body too large to decode whole: a SUBMIT's client_id,
 * seq and township, another message's req_id; whatever follows is not
 * read, and what was read before a failure is kept. */
static void test_decode_head(void **state)
{
    (void)state;
    proto_error_t err;
    for (uint32_t type = PROTO_SUBMIT; type <= PROTO_TYPE_LAST; type++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        make_msg(type, &g_msg);
        assert_int_equal(proto_encode(&sb, &g_msg), 0);
        /* Junk after the head is not looked at. */
        for (int i = 0; i < 300; i++)
            msgpack_sbuffer_write(&sb, "\xc1", 1);
        assert_int_equal(decode_head_exact(sb.data, sb.size, &g_out, &err), 0);
        assert_int_equal(g_out.type, type);
        assert_true(proto_req_id(&g_out) == proto_req_id(&g_msg));
        msgpack_sbuffer_destroy(&sb);
    }

    /* A SUBMIT: its head, and nothing of the rest; cut short, what was
     * read so far. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    make_msg(PROTO_SUBMIT, &g_msg);
    assert_int_equal(proto_encode(&sb, &g_msg), 0);
    size_t head = 0;
    for (size_t len = 0; len <= sb.size; len++) {
        int rc = decode_head_exact(sb.data, len, &g_out, &err);
        if (rc == 0 && head == 0)
            head = len;
        assert_int_equal(rc, head ? 0 : TALLY_EMALFORMED);
        if (rc == 0 || g_out.u.submit.seq != 0) {
            assert_int_equal(g_out.type, PROTO_SUBMIT);
            assert_true(g_out.u.submit.seq == 5);
            assert_memory_equal(g_out.u.submit.client_id, g_msg.u.submit.client_id,
                                PROTO_CLIENT_ID_LEN);
        }
    }
    /* [1, 1, bin 16, seq, "gaoguan"]: 3 + 18 + 1 + 8 bytes. */
    assert_int_equal(head, 30);
    assert_int_equal(decode_head_exact(sb.data, head - 1, &g_out, &err), TALLY_EMALFORMED);
    assert_true(g_out.u.submit.seq == 5);
    assert_int_equal(decode_head_exact(sb.data, sb.size, &g_out, &err), 0);
    assert_true(view_is(g_out.u.submit.township, "gaoguan"));
    assert_true(g_out.u.submit.time_ms == 0);
    assert_int_equal(g_out.u.submit.nsamples, 0);
    assert_null(g_out.u.submit.samples);
    /* More samples than a daemon takes: the head reads all the same. */
    g_msg.u.submit.nsamples = PROTO_SAMPLES_MAX;
    for (uint32_t i = 3; i < PROTO_SAMPLES_MAX; i++)
        g_in[i] = (proto_sample_t){proto_str("disputes.resolved"), 1};
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(proto_encode(&sb, &g_msg), 0);
    assert_int_equal(proto_decode(sb.data, sb.size, &g_out, g_samples, 1000, &err), TALLY_ETOOMANY);
    assert_int_equal(decode_head_exact(sb.data, sb.size, &g_out, &err), 0);
    assert_true(g_out.u.submit.seq == 5);
    msgpack_sbuffer_destroy(&sb);

    /* No head to read: the failure, as proto_decode() reports it. */
    assert_int_equal(decode_head_exact("\x90", 1, &g_out, &err), TALLY_EMALFORMED);
    assert_string_equal(err.field, "body");
    /* Nothing at all, and a byte MessagePack never uses, said as such. */
    assert_int_equal(proto_decode("", 0, &g_out, g_samples, 4, &err), TALLY_EMALFORMED);
    assert_string_equal(err.message,
                        "body: the message is empty (0 bytes): a message is a MessagePack array");
    assert_int_equal(proto_decode("\xc1\xc1", 2, &g_out, g_samples, 4, &err), TALLY_EMALFORMED);
    assert_string_equal(err.message, "body: a message is a MessagePack array, got byte 0xc1, "
                                     "which is not MessagePack");
    assert_int_equal(g_out.type, 0);
    assert_true(g_out.u.submit.seq == 0);
    /* A SUBMIT whose seq is 0: nothing to answer with. */
    static const char seq0[] = "\x97\x01\x01\xc4\x10"
                               "0123456789abcdef\x00";
    assert_int_equal(decode_head_exact(seq0, sizeof seq0 - 1, &g_out, &err), TALLY_ERANGE);
    assert_string_equal(err.field, "seq");
    assert_int_equal(g_out.type, PROTO_SUBMIT);
    assert_true(g_out.u.submit.seq == 0);
    /* A PING whose time_ms is not MessagePack: its req_id all the same. */
    static const char ping[] = "\x94\x01\x0c\x07\xc1";
    assert_int_equal(decode_head_exact(ping, sizeof ping - 1, &g_out, &err), 0);
    assert_int_equal(proto_req_id(&g_out), 7);
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
    g_msg.type = PROTO_TYPE_LAST + 1;
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
    msgpack_sbuffer_clear(&sb);
    make_msg(PROTO_CLOCK, &g_msg); /* PROTOCOL.md 8.23's example */
    g_msg.u.clock.req_id = 7;
    g_msg.u.clock.now_ms = 1701360000000;
    g_msg.u.clock.utc_offset_s = 28800;
    assert_int_equal(proto_encode(&sb, &g_msg), 0);
    assert_int_equal(sb.size, 30);
    assert_memory_equal(sb.data,
                        "\x96\x01\x18\x07\xcf\x00\x00\x01\x8c\x20\xf5\x5c\x00\xad"
                        "Asia/Shanghai\xcd\x70\x80",
                        30);
    msgpack_sbuffer_clear(&sb);
    make_msg(PROTO_SPAN_REQ, &g_msg); /* PROTOCOL.md 8.24's example */
    g_msg.u.span_req.req_id = 7;
    g_msg.u.span_req.from = proto_str("2023");
    g_msg.u.span_req.to = proto_str("2023-12-06");
    assert_int_equal(proto_encode(&sb, &g_msg), 0);
    assert_int_equal(sb.size, 30);
    assert_memory_equal(sb.data,
                        "\x96\x01\x19\x07\xa9u/county/\xa4"
                        "2023\xaa"
                        "2023-12-06",
                        30);
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

static bool possible(const char *prefix)
{
    return proto_topic_prefix_possible(prefix, strlen(prefix));
}

/* Every prefix of every kind of topic is possible; anything else is not. */
static void test_topic_prefix_possible(void **state)
{
    (void)state;
    const char *topics[] = {"h", "u/county/disputes.resolved/", "u/town/gaoguan/law_exam.takers/",
                            "u/town/" A64 "/" A64 "/", "u/town/高观镇/m/"};
    for (size_t t = 0; t < sizeof topics / sizeof *topics; t++)
        for (size_t n = 0; n <= strlen(topics[t]); n++)
            if (!proto_topic_prefix_possible(topics[t], n))
                fail_msg("prefix of %zu bytes of '%s' refused", n, topics[t]);
    const char *impossible[] = {
        "x",                  /* no topic starts so */
        "hh",                 /* the heartbeat topic is "h" */
        "u/x",                /* neither county nor town */
        "u/county//",         /* an empty metric */
        "u/county/m/x",       /* bytes after the metric's '/' */
        "u/town/t/m/n",       /* bytes after the metric's '/' */
        "u/town//m/",         /* an empty township */
        "u/town/a b/",        /* a space in a name */
        "u/county/\x7f",      /* DEL */
        "u/county/" A64 "x",  /* a 65-byte name */
        "u/town/t/" A64 "x/", /* a 65-byte metric */
    };
    for (size_t i = 0; i < sizeof impossible / sizeof *impossible; i++)
        if (possible(impossible[i]))
            fail_msg("'%s' accepted", impossible[i]);
    assert_false(proto_topic_prefix_possible("u/county/m\0", 11)); /* NUL */
    char big[PROTO_TOPIC_MAX + 2];
    memset(big, 'a', sizeof big);
    memcpy(big, "u/town/", 7);
    assert_false(proto_topic_prefix_possible(big, sizeof big));
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

    for (uint32_t type = 0; type <= PROTO_TYPE_LAST + 1; type++) {
        memset(&g_msg, 0, sizeof g_msg);
        g_msg.type = type;
        g_msg.u.stats_req.req_id = 99; /* the leading uint64 of every struct */
        bool has = (type >= PROTO_SNAPSHOT_REQ && type <= PROTO_ERROR && type != PROTO_UPDATE &&
                    type != PROTO_HEARTBEAT) ||
                   type == PROTO_CATALOG_REQ || type == PROTO_CATALOG ||
                   (type >= PROTO_PERIOD_REQ && type <= PROTO_RANGE) || type == PROTO_CLOCK_REQ ||
                   type == PROTO_CLOCK || type == PROTO_SPAN_REQ || type == PROTO_TOWNSHIPS_REQ ||
                   type == PROTO_TOWNSHIPS || type == PROTO_BACKUP_REQ || type == PROTO_BACKUP ||
                   type == PROTO_BACKUP_FETCH || type == PROTO_BACKUP_CHUNK ||
                   type == PROTO_BACKUP_LIST_REQ || type == PROTO_BACKUP_LIST;
        assert_true(proto_req_id(&g_msg) == (has ? 99u : 0u));
    }
}

/* A CLOCK whose zone is empty or whose offset is a day or more is
 * refused by the encoder and, naming the field, by the decoder. */
static void test_clock_bounds(void **state)
{
    (void)state;
    /* [1, 24, req_id 1, now_ms 0, zone "", utc_offset_s 0] */
    static const uint8_t empty_zone[] = {0x96, 0x01, 0x18, 0x01, 0x00, 0xa0, 0x00};
    /* [1, 24, 1, 0, "UTC", 86400] */
    static const uint8_t day_off[] = {0x96, 0x01, 0x18, 0x01, 0x00, 0xa3, 'U',
                                      'T',  'C',  0xce, 0x00, 0x01, 0x51, 0x80};
    proto_error_t err;
    assert_int_equal(decode_exact(empty_zone, sizeof empty_zone, &g_out, 0, &err), TALLY_ERANGE);
    assert_non_null(strstr(err.message, "zone"));
    assert_int_equal(decode_exact(day_off, sizeof day_off, &g_out, 0, &err), TALLY_ERANGE);
    assert_non_null(strstr(err.message, "utc_offset_s"));

    make_msg(PROTO_CLOCK, &g_msg);
    g_msg.u.clock.zone = proto_str("");
    expect_einval(&g_msg);
    make_msg(PROTO_CLOCK, &g_msg);
    g_msg.u.clock.utc_offset_s = PROTO_UTC_OFFSET_MAX + 1;
    expect_einval(&g_msg);
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
        "BAD_PERIOD",
        "PERIOD_EXPIRED",
        "NO_SUCH_BACKUP",
    };
    static const char *const local[] = {"NOMEM",  "IO",    "TIMEOUT", "AGAIN",
                                        "CLOSED", "INVAL", "EXISTS",  "NOTFOUND",
                                        "CONFIG", "SYS",   "DAMAGED", "IN_CALLBACK"};
    for (int i = 0; i <= -TALLY_EWIRE_LAST; i++) {
        assert_string_equal(tally_errname(-i), wire[i]);
        assert_string_not_equal(tally_strerror(-i), "unknown error");
        assert_true(tally_err_is_wire(-i) == (i != 0));
    }
    for (int i = 0; i < 12; i++) {
        assert_string_equal(tally_errname(TALLY_ENOMEM - i), local[i]);
        assert_string_not_equal(tally_strerror(TALLY_ENOMEM - i), "unknown error");
        assert_false(tally_err_is_wire(TALLY_ENOMEM - i));
    }
    assert_int_equal(TALLY_ENOMEM - 10, TALLY_EDAMAGED);
    assert_int_equal(TALLY_ENOMEM - 11, TALLY_ECALLBACK);
    static const int unknown[] = {1, 100, -29, -99, -112, -1000, INT32_MIN, INT32_MAX};
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
        cmocka_unit_test(test_decode_head),
        cmocka_unit_test(test_encoder_rejects),
        cmocka_unit_test(test_encoder_canonical),
        cmocka_unit_test(test_clock_bounds),
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_topic_prefix_possible),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_tally_error),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_group);
}
