/* Unit tests of the subscriber and the one-shot requests against a fake
 * daemon: a ZMQ_ROUTER (requests) and a ZMQ_XPUB (updates) in the test
 * process, on ipc:// in a temporary directory. */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "proto.h"
#include "tally.h"

#define STREAM 7

typedef struct fixture {
    char dir[64];
    char req_ep[160];
    char pub_ep[160];
    void *zctx;
    void *router;
    void *xpub;
    char ev[128][128];
    int nev;
    tally_sub_t *sub;
    uint8_t id[256]; /* routing id of the subscriber's request socket */
    size_t idlen;
    uint8_t body[65536]; /* the last request received, views point here */
    size_t len;
    proto_msg_t msg;
    /* secure(): a ZAP handler on its own thread, refusing the publish
     * socket's handshakes while refuse_pub is set. */
    void *zap;
    pthread_t zap_thread;
    bool zap_running;
    atomic_int zap_stop, refuse_pub, pub_refusals, refuse_req, req_refusals;
    char cert[128];                           /* the subscriber's secret certificate */
    char server_pub[TALLY_CURVE_KEY_LEN + 1]; /* the fake daemon's public key */
} fixture_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_reset(void *ctx)
{
    fixture_t *f = ctx;
    snprintf(f->ev[f->nev++], 128, "reset");
}

static void on_tally(void *ctx, const tally_tally_t *t)
{
    fixture_t *f = ctx;
    const tally_value_t *v = tally_tally_value(t, "total");
    snprintf(f->ev[f->nev++], 128, "tally %s %llu %lld", t->topic, (unsigned long long)t->seq,
             v && v->present ? (long long)v->num : -1LL);
}

static void on_synced(void *ctx, uint64_t seq, uint64_t stream_id)
{
    fixture_t *f = ctx;
    snprintf(f->ev[f->nev++], 128, "synced %llu %llu", (unsigned long long)seq,
             (unsigned long long)stream_id);
}

static void on_period_changed(void *ctx, const char *metric, const char *scope,
                              const char *const *periods, size_t n)
{
    fixture_t *f = ctx;
    int k = snprintf(f->ev[f->nev], 128, "changed %s '%s'", metric, scope);
    for (size_t i = 0; i < n && k > 0 && k < 128; i++)
        k += snprintf(f->ev[f->nev] + k, 128 - (size_t)k, " %s", periods[i]);
    f->nev++;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/tally-sub-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->req_ep, sizeof f->req_ep, "ipc://%s/req.sock", f->dir);
    snprintf(f->pub_ep, sizeof f->pub_ep, "ipc://%s/pub.sock", f->dir);
    f->zctx = zmq_ctx_new();
    f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
    f->xpub = zmq_socket(f->zctx, ZMQ_XPUB);
    int zero = 0;
    zmq_setsockopt(f->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(f->xpub, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(f->router, f->req_ep) != 0 || zmq_bind(f->xpub, f->pub_ep) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tally_sub_destroy(&f->sub);
    if (f->zap_running) {
        atomic_store(&f->zap_stop, 1);
        pthread_join(f->zap_thread, NULL);
    }
    if (f->zap != NULL)
        zmq_close(f->zap);
    zmq_close(f->router);
    zmq_close(f->xpub);
    zmq_ctx_term(f->zctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void new_sub(fixture_t *f, const char *prefix, unsigned hb_ms, const char *pub)
{
    tally_sub_callbacks_t cb = {on_reset, on_tally, on_synced, f};
    tally_sub_opts_t o = {.heartbeat_ms = hb_ms, .snapshot_timeout_ms = 5000, .pub_endpoint = pub};
    assert_int_equal(tally_sub_new(f->req_ep, prefix, &cb, &o, &f->sub), 0);
}

/* Drive the subscriber until cond holds (or 3 s pass). */
#define PUMP_UNTIL(f, cond)                                                                        \
    do {                                                                                           \
        int64_t end_ = mono_ms() + 3000;                                                           \
        while (!(cond) && mono_ms() < end_) {                                                      \
            assert_int_equal(tally_sub_process((f)->sub), 0);                                      \
            usleep(1000);                                                                          \
        }                                                                                          \
    } while (0)

static void pump(fixture_t *f, int ms)
{
    int64_t end = mono_ms() + ms;
    do {
        assert_int_equal(tally_sub_process(f->sub), 0);
        usleep(2000);
    } while (mono_ms() < end);
}

/* Drive the subscriber until a request of type arrives at the fake
 * daemon; false on timeout. */
static bool expect_req(fixture_t *f, uint32_t type, int timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    while (mono_ms() < end) {
        assert_int_equal(tally_sub_process(f->sub), 0);
        zmq_pollitem_t item = {.socket = f->router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 5) <= 0)
            continue;
        int n = zmq_recv(f->router, f->id, sizeof f->id, 0);
        assert_true(n > 0);
        f->idlen = (size_t)n;
        n = zmq_recv(f->router, f->body, sizeof f->body, 0);
        assert_true(n > 0);
        f->len = (size_t)n;
        assert_int_equal(proto_decode(f->body, f->len, &f->msg, NULL, 0, NULL), 0);
        if (f->msg.type == type)
            return true;
    }
    return false;
}

static void reply(fixture_t *f, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), 0);
    assert_int_equal(zmq_send(f->router, f->id, f->idlen, ZMQ_SNDMORE), (int)f->idlen);
    assert_int_equal(zmq_send(f->router, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void publish(fixture_t *f, const char *topic, const proto_msg_t *m)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(proto_encode(&sb, m), 0);
    assert_int_equal(zmq_send(f->xpub, topic, strlen(topic), ZMQ_SNDMORE), (int)strlen(topic));
    assert_int_equal(zmq_send(f->xpub, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static proto_tally_t tally(const char *metric, const char *scope, uint64_t seq, int64_t total)
{
    proto_tally_t t;
    memset(&t, 0, sizeof t);
    t.metric = proto_str(metric);
    t.scope = proto_str(scope);
    t.kind = PROTO_KIND_COUNTER;
    t.seq = seq;
    t.time_ms = 1703995200000LL;
    t.nvalues = 2;
    t.values[0] = (proto_value_t){proto_str("1h"), true, total, 1};
    t.values[1] = (proto_value_t){proto_str("total"), true, total, 1};
    return t;
}

static void publish_update(fixture_t *f, uint64_t stream, const proto_tally_t *t)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_UPDATE;
    m.u.update.stream_id = stream;
    m.u.update.tally = *t;
    char topic[PROTO_TOPIC_MAX + 1];
    assert_true(proto_topic(topic, sizeof topic, t->metric, t->scope) > 0);
    publish(f, topic, &m);
}

static void publish_heartbeat(fixture_t *f, uint64_t stream, uint64_t seq)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_HEARTBEAT;
    m.u.heartbeat.stream_id = stream;
    m.u.heartbeat.seq = seq;
    m.u.heartbeat.time_ms = 1703995200000LL;
    publish(f, "h", &m);
}

/* Answer the pending SNAPSHOT_REQ in f->msg with items and an END. */
static void answer_snapshot(fixture_t *f, const proto_tally_t *items, uint32_t n, uint64_t stream,
                            uint64_t seq, uint32_t count)
{
    uint64_t req = f->msg.u.snapshot_req.req_id;
    proto_msg_t m;
    for (uint32_t i = 0; i < n; i++) {
        memset(&m, 0, sizeof m);
        m.type = PROTO_SNAPSHOT_ITEM;
        m.u.snapshot_item.req_id = req;
        m.u.snapshot_item.tally = items[i];
        reply(f, &m);
    }
    memset(&m, 0, sizeof m);
    m.type = PROTO_SNAPSHOT_END;
    m.u.snapshot_end.req_id = req;
    m.u.snapshot_end.stream_id = stream;
    m.u.snapshot_end.seq = seq;
    m.u.snapshot_end.count = count;
    reply(f, &m);
}

/* Receive subscription messages at the XPUB until both wanted topics
 * are subscribed. */
static void wait_subscribed(fixture_t *f, const char *prefix)
{
    bool got_prefix = false, got_h = false;
    int64_t end = mono_ms() + 3000;
    while (!(got_prefix && got_h) && mono_ms() < end) {
        assert_int_equal(tally_sub_process(f->sub), 0);
        char buf[512];
        int n = zmq_recv(f->xpub, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n <= 0) {
            usleep(2000);
            continue;
        }
        if (buf[0] == 1 && (size_t)n - 1 == strlen(prefix) && memcmp(buf + 1, prefix, n - 1) == 0)
            got_prefix = true;
        if (buf[0] == 1 && n == 2 && buf[1] == 'h')
            got_h = true;
    }
    assert_true(got_prefix && got_h);
}

static bool has_event(const fixture_t *f, const char *ev)
{
    for (int i = 0; i < f->nev; i++)
        if (strcmp(f->ev[i], ev) == 0)
            return true;
    return false;
}

/* Answer the subscriber's HELLO with the fake daemon's publish endpoint. */
static void welcome(fixture_t *f)
{
    assert_true(expect_req(f, PROTO_HELLO, 3000));
    proto_msg_t w;
    memset(&w, 0, sizeof w);
    w.type = PROTO_WELCOME;
    w.u.welcome.req_id = f->msg.u.hello.req_id;
    w.u.welcome.server = proto_str("tallyd/test");
    w.u.welcome.pub_endpoint = proto_str(f->pub_ep);
    w.u.welcome.stream_id = STREAM;
    w.u.welcome.seq = 10;
    w.u.welcome.ncolumns = 1;
    w.u.welcome.columns[0] = proto_str("total");
    w.u.welcome.max_samples = w.u.welcome.max_name = w.u.welcome.max_msg = -1;
    w.u.welcome.skew_ms = w.u.welcome.max_age_ms = -1;
    reply(f, &w);
}

/* HELLO/WELCOME, subscription, snapshot: up to a synced table at seq 10
 * with u/county/a/ = 100 (seq 9) and u/county/b/ = 3 (seq 8). */
static void sync_first(fixture_t *f, const char *prefix, bool check_wait)
{
    welcome(f);
    wait_subscribed(f, prefix);
    assert_string_equal(tally_sub_pub_endpoint(f->sub), f->pub_ep);
    /* No snapshot before the subscription has shown traffic (unless the
     * heartbeat interval is so short that the wait already timed out). */
    if (check_wait)
        assert_false(expect_req(f, PROTO_SNAPSHOT_REQ, 100));
    publish_heartbeat(f, STREAM, 10);
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
    assert_true(proto_str_eq(f->msg.u.snapshot_req.prefix, prefix));
}

static void test_snapshot_then_updates(void **state)
{
    fixture_t *f = *state;
    new_sub(f, "u/", 1000, NULL);
    sync_first(f, "u/", true);
    /* Published while the snapshot is being taken: seq 10 is already in
     * it, seq 11 is not. */
    proto_tally_t a10 = tally("a", "", 10, 100), b11 = tally("b", "", 11, 5);
    publish_update(f, STREAM, &a10);
    publish_update(f, STREAM, &b11);
    pump(f, 200); /* let them arrive and be buffered */
    assert_false(tally_sub_synced(f->sub));
    proto_tally_t items[2] = {tally("a", "", 9, 100), tally("b", "", 8, 3)};
    answer_snapshot(f, items, 2, STREAM, 10, 2);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
    assert_int_equal(f->nev, 5);
    assert_string_equal(f->ev[0], "reset");
    assert_true(has_event(f, "tally u/county/a/ 9 100"));
    assert_true(has_event(f, "tally u/county/b/ 8 3"));
    assert_string_equal(f->ev[3], "tally u/county/b/ 11 5");
    assert_string_equal(f->ev[4], "synced 11 7");
    assert_int_equal(tally_sub_seq(f->sub), 11);
    assert_int_equal(tally_sub_stream_id(f->sub), STREAM);
    assert_int_equal(tally_sub_count(f->sub), 2);

    /* Live. */
    proto_tally_t a12 = tally("a", "", 12, 101);
    publish_update(f, STREAM, &a12);
    PUMP_UNTIL(f, f->nev == 6);
    assert_int_equal(f->nev, 6);
    assert_string_equal(f->ev[5], "tally u/county/a/ 12 101");
    publish_heartbeat(f, STREAM, 12);
    pump(f, 50);
    assert_true(tally_sub_synced(f->sub));
    assert_false(expect_req(f, PROTO_SNAPSHOT_REQ, 100));

    /* A gap (13 missing) in "everything" mode: re-snapshot. */
    proto_tally_t b14 = tally("b", "", 14, 9);
    publish_update(f, STREAM, &b14);
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
    assert_false(tally_sub_synced(f->sub));
    assert_int_equal(f->nev, 6); /* the update after the gap was not applied */
    proto_tally_t items2[2] = {tally("a", "", 12, 101), tally("b", "", 14, 9)};
    f->nev = 0;
    answer_snapshot(f, items2, 2, STREAM, 14, 2);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
    assert_string_equal(f->ev[0], "reset");
    assert_string_equal(f->ev[f->nev - 1], "synced 14 7");
    assert_int_equal(tally_sub_seq(f->sub), 14);

    /* A new stream id (the daemon restarted): re-snapshot. */
    publish_heartbeat(f, STREAM + 1, 3);
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
    f->nev = 0;
    proto_tally_t items3[1] = {tally("a", "", 2, 101)};
    answer_snapshot(f, items3, 1, STREAM + 1, 3, 1);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
    assert_int_equal(f->nev, 3);
    assert_string_equal(f->ev[1], "tally u/county/a/ 2 101");
    assert_string_equal(f->ev[2], "synced 3 8");
    assert_int_equal(tally_sub_count(f->sub), 1); /* b is gone with the old table */
    /* An update of the old stream arriving late also forces a snapshot. */
    proto_tally_t old = tally("a", "", 4, 1);
    publish_update(f, STREAM, &old);
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
}

/* A subscriber to prefix, synchronised on a snapshot at seq 10 of one
 * tally. */
static void synced_on(fixture_t *f, const char *prefix, proto_tally_t item)
{
    new_sub(f, prefix, 1000, NULL);
    sync_first(f, prefix, true);
    answer_snapshot(f, &item, 1, STREAM, 10, 1);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
}

/* The columns of a table's tally, as "name=num,..." */
static void columns_of(void *ctx, const tally_tally_t *t)
{
    char *out = ctx;
    size_t n = strlen(out);
    n += (size_t)snprintf(out + n, 600 - n, "%s:", t->topic);
    for (unsigned i = 0; i < t->nvalues && n < 600; i++)
        n += (size_t)snprintf(out + n, 600 - n, "%s=%lld,", t->values[i].column,
                              (long long)t->values[i].num);
}

/* An update with more and longer column names than its series had: the
 * table's entry grows (it keeps its strings at their length) and holds the
 * new columns, still one entry for the topic. */
static void test_update_grows_entry(void **state)
{
    fixture_t *f = *state;
    synced_on(f, "u/", tally("a", "", 9, 7));
    proto_tally_t wide = tally("a", "", 11, 8);
    const char *names[] = {
        "1h", "24h", "7d", "30d", "today", "month", "quarter", "year", "a_long_column_16", "total"};
    wide.nvalues = 10;
    for (int i = 0; i < 10; i++)
        wide.values[i] = (proto_value_t){proto_str(names[i]), true, 100 + i, 1};
    publish_update(f, STREAM, &wide);
    PUMP_UNTIL(f, has_event(f, "tally u/county/a/ 11 109"));
    assert_true(has_event(f, "tally u/county/a/ 11 109"));
    assert_int_equal(tally_sub_count(f->sub), 1);
    char got[600] = "";
    tally_sub_foreach(f->sub, columns_of, got);
    assert_string_equal(got, "u/county/a/:1h=100,24h=101,7d=102,30d=103,today=104,month=105,"
                             "quarter=106,year=107,a_long_column_16=108,total=109,");
    /* And back to two columns: the entry keeps its room. */
    proto_tally_t narrow = tally("a", "", 12, 9);
    publish_update(f, STREAM, &narrow);
    PUMP_UNTIL(f, has_event(f, "tally u/county/a/ 12 9"));
    got[0] = '\0';
    tally_sub_foreach(f->sub, columns_of, got);
    assert_string_equal(got, "u/county/a/:1h=9,total=9,");
}

/* A filtered view cannot see gaps in the global seq: jumps are normal. */
static void test_filtered_prefix(void **state)
{
    fixture_t *f = *state;
    synced_on(f, "u/county/b/", tally("b", "", 8, 3));
    proto_tally_t b15 = tally("b", "", 15, 4);
    publish_update(f, STREAM, &b15);
    publish_heartbeat(f, STREAM, 40);
    assert_false(expect_req(f, PROTO_SNAPSHOT_REQ, 200));
    PUMP_UNTIL(f, tally_sub_seq(f->sub) == 40);
    assert_true(tally_sub_synced(f->sub));
    assert_string_equal(f->ev[f->nev - 1], "tally u/county/b/ 15 4");
    assert_int_equal(tally_sub_seq(f->sub), 40);
}

static void publish_changed(fixture_t *f, uint64_t stream, const char *metric, const char *scope,
                            const char *p1, const char *p2)
{
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_PERIOD_CHANGED;
    m.u.period_changed.stream_id = stream;
    m.u.period_changed.seq = 12;
    m.u.period_changed.metric = proto_str(metric);
    m.u.period_changed.scope = proto_str(scope);
    m.u.period_changed.periods[m.u.period_changed.nperiods++] = proto_str(p1);
    if (p2 != NULL)
        m.u.period_changed.periods[m.u.period_changed.nperiods++] = proto_str(p2);
    char topic[PROTO_TOPIC_MAX + 1];
    assert_true(
        proto_topic(topic, sizeof topic, m.u.period_changed.metric, m.u.period_changed.scope) > 0);
    publish(f, topic, &m);
}

/* PERIOD_CHANGED reaches tally_sub_on_period_changed's callback with
 * NUL-terminated names, only for the stream the table is synchronised
 * with; without a callback it is ignored. */
static void test_period_changed(void **state)
{
    fixture_t *f = *state;
    new_sub(f, "u/", 1000, NULL);
    sync_first(f, "u/", true);
    answer_snapshot(f, NULL, 0, STREAM, 10, 0);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    publish_changed(f, STREAM, "disputes.resolved", "gaoguan", "2023-12", "2023");
    pump(f, 100); /* no callback yet: nothing */
    assert_false(has_event(f, "changed disputes.resolved 'gaoguan' 2023-12 2023"));
    assert_int_equal(tally_sub_on_period_changed(f->sub, on_period_changed, f), 0);
    assert_int_equal(tally_sub_on_period_changed(NULL, on_period_changed, f), TALLY_EINVAL);
    publish_changed(f, STREAM + 1, "x", "", "2023", NULL); /* another daemon run: ignored */
    publish_changed(f, STREAM, "disputes.resolved", "gaoguan", "2023-12", "2023");
    publish_changed(f, STREAM, "disputes.resolved", "", "2023-12-31", NULL);
    PUMP_UNTIL(f, has_event(f, "changed disputes.resolved '' 2023-12-31"));
    assert_true(has_event(f, "changed disputes.resolved 'gaoguan' 2023-12 2023"));
    assert_false(has_event(f, "changed x '' 2023"));
}

/* Silence for 3 heartbeat intervals: unsynced; the next message brings a
 * new snapshot. */
static void test_heartbeat_loss(void **state)
{
    fixture_t *f = *state;
    new_sub(f, "u/", 50, NULL);
    sync_first(f, "u/", false);
    answer_snapshot(f, NULL, 0, STREAM, 10, 0);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
    pump(f, 250);
    assert_false(tally_sub_synced(f->sub));
    publish_heartbeat(f, STREAM, 10);
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
    answer_snapshot(f, NULL, 0, STREAM, 10, 0);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
}

/* Fewer items than END announces: the snapshot is incomplete; ask again
 * and keep the old table meanwhile. */
static void test_incomplete_snapshot(void **state)
{
    fixture_t *f = *state;
    new_sub(f, "u/", 1000, NULL);
    sync_first(f, "u/", true);
    uint64_t first = f->msg.u.snapshot_req.req_id;
    proto_tally_t items[1] = {tally("a", "", 9, 100)};
    answer_snapshot(f, items, 1, STREAM, 10, 2);
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
    assert_true(f->msg.u.snapshot_req.req_id > first);
    assert_int_equal(f->nev, 0);
    assert_false(tally_sub_synced(f->sub));
    /* A late answer to the old request is ignored. */
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = PROTO_SNAPSHOT_END;
    m.u.snapshot_end.req_id = first;
    m.u.snapshot_end.stream_id = STREAM;
    reply(f, &m);
    pump(f, 50);
    assert_false(tally_sub_synced(f->sub));
    answer_snapshot(f, items, 1, STREAM, 10, 1);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
    assert_int_equal(tally_sub_count(f->sub), 1);
}

/* With opts.pub_endpoint there is no HELLO; run() returns on stop from a
 * callback. */
static void stop_on_synced(void *ctx, uint64_t seq, uint64_t stream_id)
{
    fixture_t *f = ctx;
    on_synced(ctx, seq, stream_id);
    tally_sub_stop(f->sub);
}

static void test_pub_endpoint_and_run(void **state)
{
    fixture_t *f = *state;
    tally_sub_callbacks_t cb = {on_reset, on_tally, stop_on_synced, f};
    tally_sub_opts_t o = {.pub_endpoint = f->pub_ep};
    assert_int_equal(tally_sub_new(f->req_ep, "u/county/", &cb, &o, &f->sub), 0);
    int fds[2];
    assert_int_equal(tally_sub_poll_fds(f->sub, fds), 0);
    assert_true(fds[0] >= 0 && fds[1] >= 0 && fds[0] != fds[1]);
    wait_subscribed(f, "u/county/");
    assert_false(expect_req(f, PROTO_HELLO, 100));
    publish_heartbeat(f, STREAM, 10);
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
    answer_snapshot(f, NULL, 0, STREAM, 10, 0);
    assert_int_equal(tally_sub_run(f->sub, 3000), 0);
    assert_true(tally_sub_synced(f->sub));
    assert_int_equal(tally_sub_run(f->sub, 50), TALLY_ETIMEDOUT);
}

/* on_reset refuses the calls that would run callbacks within callbacks;
 * on_tally destroys the subscriber at the snapshot's first tally. */
static int reset_process_rc, reset_run_rc;
static char reset_why[256];

static void reset_refused(void *ctx)
{
    fixture_t *f = ctx;
    on_reset(ctx);
    reset_process_rc = tally_sub_process(f->sub);
    reset_run_rc = tally_sub_run(f->sub, 10);
    snprintf(reset_why, sizeof reset_why, "%s", tally_sub_last_error(f->sub));
}

static void tally_then_destroy(void *ctx, const tally_tally_t *t)
{
    fixture_t *f = ctx;
    on_tally(ctx, t);
    tally_sub_destroy(&f->sub);
}

/* A callback may destroy its subscriber: f->sub is NULL at once, no
 * further callback runs (the snapshot's second tally, on_synced), and the
 * running call frees it and returns TALLY_ECLOSED. */
static void test_destroy_in_callback(void **state)
{
    fixture_t *f = *state;
    tally_sub_callbacks_t cb = {reset_refused, tally_then_destroy, on_synced, f};
    tally_sub_opts_t o = {.heartbeat_ms = 1000, .snapshot_timeout_ms = 5000};
    assert_int_equal(tally_sub_new(f->req_ep, "u/", &cb, &o, &f->sub), 0);
    sync_first(f, "u/", true);
    proto_tally_t items[2] = {tally("a", "", 9, 100), tally("b", "", 8, 3)};
    answer_snapshot(f, items, 2, STREAM, 10, 2);
    tally_sub_t *s = f->sub;
    int rc = 0;
    int64_t end = mono_ms() + 3000;
    while (rc == 0 && mono_ms() < end) {
        rc = tally_sub_run(s, 20);
        if (rc == TALLY_ETIMEDOUT)
            rc = 0;
    }
    assert_int_equal(rc, TALLY_ECLOSED);
    assert_null(f->sub);
    assert_int_equal(f->nev, 2);
    assert_string_equal(f->ev[0], "reset");
    assert_true(strncmp(f->ev[1], "tally u/county/", 15) == 0);
    assert_int_equal(reset_process_rc, TALLY_ECALLBACK);
    assert_int_equal(reset_run_rc, TALLY_ECALLBACK);
    assert_non_null(strstr(reset_why, "tally_sub_run called from within"));
}

static void test_bad_arguments(void **state)
{
    fixture_t *f = *state;
    char err[256];
    char prefix[300];
    memset(prefix, 'x', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    tally_sub_opts_t o = {.errbuf = err, .errbuf_len = sizeof err};
    tally_sub_t *s = NULL;
    assert_int_equal(tally_sub_new(f->req_ep, prefix, NULL, &o, &s), TALLY_EINVAL);
    assert_non_null(strstr(err, "255"));
    assert_int_equal(tally_sub_new("bad:port", "", NULL, &o, &s), TALLY_EINVAL);
    assert_null(s);
}

/* The one-shot requests block, so the fake daemon answers from a thread
 * with its own socket. */
typedef struct oneshot_server {
    void *zctx;
    char ep[160];
    int answer_count; /* END count to announce */
} oneshot_server_t;

/* Encode m and send it to the peer id (sb is left empty). */
static void send_reply(void *router, const uint8_t *id, int idlen, msgpack_sbuffer *sb,
                       const proto_msg_t *m)
{
    proto_encode(sb, m);
    zmq_send(router, id, (size_t)idlen, ZMQ_SNDMORE);
    zmq_send(router, sb->data, sb->size, 0);
    msgpack_sbuffer_clear(sb);
}

/* Item index of a 3-item PERIOD answer to req_id, its total 100 + index
 * + 10 * other (other: added to req_id, 0 for the request's own). */
static void period_item(proto_msg_t *m, uint64_t req_id, uint64_t other, uint32_t index)
{
    memset(m, 0, sizeof *m);
    m->type = PROTO_PERIOD;
    m->u.period.req_id = req_id + other;
    m->u.period.index = index;
    m->u.period.count = 3;
    m->u.period.has_tally = true;
    m->u.period.tally = tally("disputes.resolved", "高观镇", 5, 100 + index + 10 * (int64_t)other);
}

static void *serve_once(void *arg)
{
    oneshot_server_t *s = arg;
    void *router = zmq_socket(s->zctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_bind(router, s->ep);
    for (bool done = false; !done;) {
        uint8_t id[256], body[4096];
        zmq_pollitem_t item = {.socket = router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 3000) <= 0)
            break;
        int idlen = zmq_recv(router, id, sizeof id, 0);
        int len = zmq_recv(router, body, sizeof body, 0);
        proto_msg_t *req = malloc(sizeof *req), *m = malloc(sizeof *m);
        if (idlen <= 0 || len <= 0 || proto_decode(body, (size_t)len, req, NULL, 0, NULL) != 0) {
            free(req);
            free(m);
            break;
        }
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (req->type == PROTO_SNAPSHOT_REQ) {
            memset(m, 0, sizeof *m);
            m->type = PROTO_SNAPSHOT_ITEM;
            m->u.snapshot_item.req_id = req->u.snapshot_req.req_id;
            m->u.snapshot_item.tally = tally("disputes.resolved", "高观镇", 5, 216);
            send_reply(router, id, idlen, &sb, m);
            memset(m, 0, sizeof *m);
            m->type = PROTO_SNAPSHOT_END;
            m->u.snapshot_end.req_id = req->u.snapshot_req.req_id;
            m->u.snapshot_end.stream_id = 99;
            m->u.snapshot_end.seq = 5;
            m->u.snapshot_end.count = (uint32_t)s->answer_count;
            s->answer_count = 1; /* a retry gets a complete answer */
        } else if (req->type == PROTO_PERIOD_REQ) {
            /* Index 2, then 0 twice, then one of another request, then 1
             * (below): the client hands them over in index order, once
             * each, and only this answer's. */
            const uint32_t index[] = {2, 0, 0, 1};
            const uint64_t other[] = {0, 0, 0, 7};
            for (int k = 0; k < 4; k++) {
                period_item(m, req->u.period_req.req_id, other[k], index[k]);
                send_reply(router, id, idlen, &sb, m);
            }
            period_item(m, req->u.period_req.req_id, 0, 1);
        } else if (req->type == PROTO_STATS_REQ) {
            memset(m, 0, sizeof *m);
            m->type = PROTO_STATS;
            m->u.stats.req_id = req->u.stats_req.req_id;
            m->u.stats.n = 2;
            m->u.stats.entries[0] = (proto_stat_t){proto_str("tallyd_submits_total"), 42};
            m->u.stats.entries[1] = (proto_stat_t){proto_str("tallyd_clients"), -1};
        } else {
            memset(m, 0, sizeof *m);
            m->type = PROTO_ERROR;
            m->u.error.req_id = proto_req_id(req);
            m->u.error.code = 3;
            m->u.error.field = proto_str("type");
            m->u.error.message = proto_str("unknown");
        }
        send_reply(router, id, idlen, &sb, m);
        msgpack_sbuffer_destroy(&sb);
        done = req->type == PROTO_STATS_REQ; /* the test's last request */
        free(req);
        free(m);
    }
    zmq_close(router);
    return NULL;
}

typedef struct got {
    char text[8][160];
    int n;
} got_t;

static void got_tally(void *ctx, const tally_tally_t *t)
{
    got_t *g = ctx;
    snprintf(g->text[g->n++], 160, "%s|%s|%s|%lld", t->topic, t->metric, t->scope,
             (long long)tally_tally_value(t, "total")->num);
}

static void got_stat(void *ctx, const char *name, int64_t value)
{
    got_t *g = ctx;
    snprintf(g->text[g->n++], 160, "%s=%lld", name, (long long)value);
}

static void test_get_and_stats(void **state)
{
    fixture_t *f = *state;
    oneshot_server_t srv = {.zctx = f->zctx, .answer_count = 3};
    snprintf(srv.ep, sizeof srv.ep, "ipc://%s/oneshot.sock", f->dir);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, serve_once, &srv), 0);
    got_t g = {.n = 0};
    uint64_t seq = 0, stream = 0;
    /* The first answer announces 3 items but carries 1: the client asks
     * again and delivers only the complete second answer. */
    assert_int_equal(tally_get(srv.ep, "u/town/高观镇/", 3000, got_tally, &g, &seq, &stream), 0);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.text[0], "u/town/高观镇/disputes.resolved/|disputes.resolved|高观镇|216");
    assert_int_equal(seq, 5);
    assert_int_equal(stream, 99);
    g.n = 0;
    char err[200];
    tally_request_t req = {.timeout_ms = 3000, .errbuf = err, .errbuf_len = sizeof err};
    assert_int_equal(tally_period_req(srv.ep, &req, "u/town/高观镇/", "2025", got_tally, &g), 0);
    assert_int_equal(g.n, 3);
    for (int i = 0; i < 3; i++) {
        char want[160];
        snprintf(want, sizeof want, "u/town/高观镇/disputes.resolved/|disputes.resolved|高观镇|%d",
                 100 + i);
        assert_string_equal(g.text[i], want);
    }
    g.n = 0;
    assert_int_equal(tally_stats(srv.ep, 3000, got_stat, &g), 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.text[0], "tallyd_submits_total=42");
    assert_string_equal(g.text[1], "tallyd_clients=-1");
    pthread_join(th, NULL);
    /* Nobody there: a timeout, no callback. */
    g.n = 0;
    int64_t t = mono_ms();
    assert_int_equal(tally_get(srv.ep, "", 200, got_tally, &g, NULL, NULL), TALLY_ETIMEDOUT);
    assert_true(mono_ms() - t >= 190);
    assert_int_equal(tally_stats(srv.ep, 100, got_stat, &g), TALLY_ETIMEDOUT);
    assert_int_equal(g.n, 0);
    /* Connections refused, with refused_ms: the wait ends after it, long
     * before timeout_ms, and says that nothing listens; without it, the
     * whole timeout_ms is waited for a daemon that may yet start. */
    req = (tally_request_t){
        .timeout_ms = 60000, .errbuf = err, .errbuf_len = sizeof err, .refused_ms = 300};
    t = mono_ms();
    assert_int_equal(tally_get_req(srv.ep, &req, "", got_tally, &g, NULL, NULL), TALLY_ETIMEDOUT);
    int64_t waited = mono_ms() - t;
    assert_true(waited >= 300 && waited < 30000);
    assert_int_equal(req.link, TALLY_LINK_NO_CONNECTION);
    assert_string_equal(err, "nothing accepts connections there (refused for 300 ms)");
    t = mono_ms();
    assert_int_equal(tally_period_req(srv.ep, &req, "", "2025", got_tally, &g), TALLY_ETIMEDOUT);
    assert_true(mono_ms() - t < 30000);
    assert_int_equal(req.link, TALLY_LINK_NO_CONNECTION);
    req.refused_ms = 0;
    req.timeout_ms = 400;
    t = mono_ms();
    assert_int_equal(tally_stats_req(srv.ep, &req, got_stat, &g), TALLY_ETIMEDOUT);
    assert_true(mono_ms() - t >= 390);
    assert_string_equal(err, "no answer in time");
    assert_int_equal(g.n, 0);
}

/* The fake daemon's ZAP handler (RFC 27): admits every key, but refuses
 * all on the publish socket (domain "pub") while refuse_pub is set, as
 * tallyd refuses a subscriber key a reload revoked, and on the request
 * socket while refuse_req is set. */
static void *zap_serve(void *arg)
{
    fixture_t *f = arg;
    while (!atomic_load(&f->zap_stop)) {
        zmq_pollitem_t item = {.socket = f->zap, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 20) <= 0)
            continue;
        char frame[8][128];
        int len[8] = {0}, n = 0, more = 1;
        while (more) {
            char scratch[128];
            int got = zmq_recv(f->zap, n < 8 ? frame[n] : scratch, sizeof scratch, 0);
            if (n < 8)
                len[n++] = got < 0 ? 0 : got > 128 ? 128 : got;
            size_t sz = sizeof more;
            zmq_getsockopt(f->zap, ZMQ_RCVMORE, &more, &sz);
        }
        /* version, request id, domain, address, routing id, mechanism... */
        bool pub = len[2] == 3 && memcmp(frame[2], "pub", 3) == 0;
        bool refuse = atomic_load(pub ? &f->refuse_pub : &f->refuse_req);
        if (refuse)
            atomic_fetch_add(pub ? &f->pub_refusals : &f->req_refusals, 1);
        zmq_send(f->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(f->zap, frame[1], (size_t)len[1], ZMQ_SNDMORE);
        zmq_send(f->zap, refuse ? "400" : "200", 3, ZMQ_SNDMORE);
        zmq_send(f->zap, refuse ? "revoked" : "OK", refuse ? 7 : 2, ZMQ_SNDMORE);
        zmq_send(f->zap, "screen", 6, ZMQ_SNDMORE);
        zmq_send(f->zap, "", 0, 0);
    }
    return NULL;
}

/* Make the fake daemon a secured one: its two sockets CURVE servers on
 * new endpoints (domains "req" and "pub"), a ZAP handler, and a key pair
 * for the subscriber in f->cert. */
static void secure(fixture_t *f)
{
    char server_sec[TALLY_CURVE_KEY_LEN + 1], pub[TALLY_CURVE_KEY_LEN + 1],
        sec[TALLY_CURVE_KEY_LEN + 1];
    assert_int_equal(zmq_curve_keypair(f->server_pub, server_sec), 0);
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(f->cert, sizeof f->cert, "%s/screen.key_secret", f->dir);
    int fd = open(f->cert, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char text[256];
    int n = snprintf(text, sizeof text,
                     "metadata\n    name = \"screen\"\ncurve\n    public-key = \"%s\"\n"
                     "    secret-key = \"%s\"\n",
                     pub, sec);
    assert_int_equal(write(fd, text, (size_t)n), n);
    close(fd);

    f->zap = zmq_socket(f->zctx, ZMQ_REP);
    assert_int_equal(zmq_bind(f->zap, "inproc://zeromq.zap.01"), 0);
    assert_int_equal(pthread_create(&f->zap_thread, NULL, zap_serve, f), 0);
    f->zap_running = true;
    zmq_close(f->router);
    zmq_close(f->xpub);
    f->router = zmq_socket(f->zctx, ZMQ_ROUTER);
    f->xpub = zmq_socket(f->zctx, ZMQ_XPUB);
    void *socks[2] = {f->router, f->xpub};
    const char *domains[2] = {"req", "pub"};
    int zero = 0, one = 1;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero), 0);
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_CURVE_SERVER, &one, sizeof one), 0);
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_CURVE_SECRETKEY, server_sec, 40), 0);
        assert_int_equal(zmq_setsockopt(socks[i], ZMQ_ZAP_DOMAIN, domains[i], 3), 0);
    }
    snprintf(f->req_ep, sizeof f->req_ep, "ipc://%s/req-curve.sock", f->dir);
    snprintf(f->pub_ep, sizeof f->pub_ep, "ipc://%s/pub-curve.sock", f->dir);
    assert_int_equal(zmq_bind(f->router, f->req_ep), 0);
    assert_int_equal(zmq_bind(f->xpub, f->pub_ep), 0);
}

/* Drive the subscriber until no request of type has come for quiet_ms;
 * f->id and the request id of the last one in *req_id.  False if none. */
static bool last_req(fixture_t *f, uint32_t type, int quiet_ms, uint64_t *req_id)
{
    bool any = false;
    while (expect_req(f, type, quiet_ms)) {
        any = true;
        *req_id = f->msg.u.snapshot_req.req_id;
    }
    return any;
}

/* A daemon that refuses the subscription's key while it answers requests
 * (what a reload that revoked the key does: tallyd cuts the subscription
 * and refuses it anew, the request connection stays): the link says so
 * although the request connection is up, a snapshot answered meanwhile
 * is not taken for synchronised, and once the key is admitted again the
 * subscriber connects the subscription again by itself (ZeroMQ never
 * retries a handshake the daemon refused) and synchronises. */
static void test_pub_key_refused(void **state)
{
    fixture_t *f = *state;
    secure(f);
    atomic_store(&f->refuse_pub, 1);
    tally_sub_callbacks_t cb = {on_reset, on_tally, on_synced, f};
    tally_curve_t curve = {.server_key = f->server_pub, .cert = f->cert};
    tally_sub_opts_t o = {.heartbeat_ms = 200, .snapshot_timeout_ms = 5000, .curve = &curve};
    assert_int_equal(tally_sub_new(f->req_ep, "u/", &cb, &o, &f->sub), 0);
    welcome(f);
    PUMP_UNTIL(f, tally_sub_link(f->sub) == TALLY_LINK_KEY_REFUSED);
    assert_int_equal(tally_sub_link(f->sub), TALLY_LINK_KEY_REFUSED);

    /* No traffic for 3 heartbeats: a snapshot all the same, applied, but
     * nothing keeps it current. */
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
    answer_snapshot(f, NULL, 0, STREAM, 10, 0);
    PUMP_UNTIL(f, has_event(f, "synced 10 7"));
    assert_true(has_event(f, "synced 10 7"));
    assert_false(tally_sub_synced(f->sub));
    assert_int_equal(tally_sub_link(f->sub), TALLY_LINK_KEY_REFUSED);

    /* Refused again and again: the subscriber keeps trying. */
    PUMP_UNTIL(f, atomic_load(&f->pub_refusals) >= 2);
    assert_true(atomic_load(&f->pub_refusals) >= 2);
    pump(f, 300);
    assert_false(tally_sub_synced(f->sub));
    assert_int_equal(tally_sub_link(f->sub), TALLY_LINK_KEY_REFUSED);

    /* Admitted again: subscribed anew, then a snapshot after the first
     * message, and live updates. */
    atomic_store(&f->refuse_pub, 0);
    wait_subscribed(f, "u/");
    publish_heartbeat(f, STREAM, 10);
    uint64_t req = 0;
    assert_true(last_req(f, PROTO_SNAPSHOT_REQ, 300, &req));
    f->msg.u.snapshot_req.req_id = req;
    proto_tally_t items[1] = {tally("a", "", 9, 100)};
    answer_snapshot(f, items, 1, STREAM, 10, 1);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
    assert_int_equal(tally_sub_link(f->sub), TALLY_LINK_UP);
    proto_tally_t a11 = tally("a", "", 11, 101);
    publish_update(f, STREAM, &a11);
    PUMP_UNTIL(f, has_event(f, "tally u/county/a/ 11 101"));
    assert_true(has_event(f, "tally u/county/a/ 11 101"));
    assert_true(tally_sub_synced(f->sub));
}

/* A key refused on the request socket (a subscriber started, or its
 * connection made again, while its key is not admitted): said, and tried
 * again until the daemon admits it (ZeroMQ would not). */
static void test_req_key_refused(void **state)
{
    fixture_t *f = *state;
    secure(f);
    atomic_store(&f->refuse_req, 1);
    tally_sub_callbacks_t cb = {on_reset, on_tally, on_synced, f};
    tally_curve_t curve = {.server_key = f->server_pub, .cert = f->cert};
    tally_sub_opts_t o = {.heartbeat_ms = 200, .curve = &curve};
    assert_int_equal(tally_sub_new(f->req_ep, "u/", &cb, &o, &f->sub), 0);
    PUMP_UNTIL(f, atomic_load(&f->req_refusals) >= 2);
    assert_true(atomic_load(&f->req_refusals) >= 2);
    assert_int_equal(tally_sub_link(f->sub), TALLY_LINK_KEY_REFUSED);
    atomic_store(&f->refuse_req, 0);
    welcome(f);
    wait_subscribed(f, "u/");
    publish_heartbeat(f, STREAM, 10);
    assert_true(expect_req(f, PROTO_SNAPSHOT_REQ, 3000));
    answer_snapshot(f, NULL, 0, STREAM, 10, 0);
    PUMP_UNTIL(f, tally_sub_synced(f->sub));
    assert_true(tally_sub_synced(f->sub));
    assert_int_equal(tally_sub_link(f->sub), TALLY_LINK_UP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_then_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filtered_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_grows_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_period_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pub_endpoint_and_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_in_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_and_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pub_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_req_key_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
