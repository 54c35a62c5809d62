/* Unit tests of request: message frames in, replies out through a
 * recording sink; ingest and publish are the real parts behind it.
 * BACKUP_REQ and BACKUP_FETCH are test_request_backup.c's. */
#include "request_test_util.h"
static void test_frames_and_size(void **state)
{
    fx_t *f = *state;
    proto_msg_t ping = {.type = PROTO_PING};
    ping.u.ping.req_id = 3;
    t_encode(&f->buf, &ping);
    request_handle(&f->r, "R1", 2, 2, f->buf.data, f->buf.size, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_EMALFORMED, 0), "this one had 2"));
    request_handle(&f->r, "R1", 2, 0, NULL, 0, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_EMALFORMED, 0), "this one had 0"));
    char big[5000];
    memset(big, 0xc0, sizeof(big));
    request_handle(&f->r, "R1", 2, 1, big, sizeof(big), NULL);
    assert_non_null(strstr(expect_error(f, TALLY_ETOOLARGE, 0), "5000 bytes, above the limit"));
    assert_int_equal(f->st.stats.bad_requests, 3);
}

static void test_undecodable(void **state)
{
    fx_t *f = *state;
    /* Not MessagePack at all. */
    request_handle(&f->r, "R1", 2, 1, "\xc1", 1, NULL);
    expect_error(f, TALLY_EMALFORMED, 0);
    /* A SUBMIT whose seq was read: an ACK for that seq names the field. */
    t_submit(&f->buf, 1, 77, "gaoguan", T_NOW, 9, "a=1", "b=1", "c=1", "d=1", "e=1", "f=1", "g=1",
             "h=1", "i=1");
    send_req(f, NULL);
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_ACK);
    assert_int_equal(m->u.ack.seq, 77);
    assert_int_equal(m->u.ack.status, PROTO_ACK_REJECTED);
    assert_int_equal(m->u.ack.code, -TALLY_ETOOMANY);
    t_sink_clear(&f->replies);
    /* A reply type sent as a request. */
    proto_msg_t pong = {.type = PROTO_PONG};
    pong.u.pong.req_id = 5;
    t_encode(&f->buf, &pong);
    send_req(f, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_ETYPE, 5),
                           "type: 13 (PONG) is sent by the daemon, not a request"));
    /* Likewise the newest reply type, CLOCK. */
    proto_msg_t clock = {.type = PROTO_CLOCK};
    clock.u.clock.req_id = 6;
    clock.u.clock.zone = proto_str("UTC");
    t_encode(&f->buf, &clock);
    send_req(f, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_ETYPE, 6),
                           "type: 24 (CLOCK) is sent by the daemon, not a request"));
    /* An ACK that does not even decode as one: its type is what is wrong,
     * not its number of elements. */
    request_handle(&f->r, "R1", 2, 1, "\x94\x01\x02\x03\xa1x", 6, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_ETYPE, 0),
                           "type: 2 (ACK) is sent by the daemon, not a request"));
}

static void test_hello_ping_stats(void **state)
{
    fx_t *f = *state;
    proto_msg_t hello = {.type = PROTO_HELLO};
    hello.u.hello.req_id = 9;
    hello.u.hello.client = proto_str("test/1");
    t_encode(&f->buf, &hello);
    send_req(f, NULL);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_WELCOME);
    assert_int_equal(m->u.welcome.req_id, 9);
    assert_true(proto_str_eq(m->u.welcome.pub_endpoint, "tcp://127.0.0.1:7412"));
    assert_int_equal(m->u.welcome.stream_id, publish_stream_id(&f->p));
    assert_int_equal(m->u.welcome.seq, 41);
    assert_int_equal(m->u.welcome.ncolumns, 9);
    assert_true(proto_str_eq(m->u.welcome.columns[8], "total"));
    assert_int_equal(m->u.welcome.max_samples, 8);
    assert_int_equal(m->u.welcome.max_msg, 4096);
    t_sink_clear(&f->replies);

    proto_msg_t ping = {.type = PROTO_PING};
    ping.u.ping.req_id = 10;
    ping.u.ping.time_ms = 123;
    t_encode(&f->buf, &ping);
    send_req(f, NULL);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_PONG);
    assert_int_equal(m->u.pong.req_id, 10);
    assert_int_equal(m->u.pong.time_ms, 123);
    assert_int_equal(m->u.pong.seq, 41);
    t_sink_clear(&f->replies);

    proto_msg_t sreq = {.type = PROTO_STATS_REQ};
    sreq.u.stats_req.req_id = 11;
    t_encode(&f->buf, &sreq);
    send_req(f, NULL);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_STATS);
    assert_int_equal(f->stat_calls, 1);
    bool seen = false;
    for (uint32_t i = 0; i < m->u.stats.n; i++)
        if (proto_str_eq(m->u.stats.entries[i].name, "tallyd_sequence"))
            seen = m->u.stats.entries[i].value == 42;
    assert_true(seen);
}

/* CLOCK_REQ: the daemon's clock, its zone's name and that zone's offset
 * at the clock's instant (a zone with summer time has two). */
static const proto_msg_t *ask_clock(fx_t *f, uint64_t req_id)
{
    proto_msg_t q = {.type = PROTO_CLOCK_REQ};
    q.u.clock_req.req_id = req_id;
    t_encode(&f->buf, &q);
    t_sink_clear(&f->replies);
    send_req(f, NULL);
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_CLOCK);
    assert_int_equal(m->u.clock.req_id, req_id);
    return m;
}

static void test_clock(void **state)
{
    fx_t *f = *state;
    const proto_msg_t *m = ask_clock(f, 13);
    assert_true(proto_str_eq(m->u.clock.zone, "Asia/Shanghai"));
    assert_int_equal(m->u.clock.now_ms, T_NOW);
    assert_int_equal(m->u.clock.utc_offset_s, 8 * 3600);

    assert_int_equal(period_zone_apply("America/New_York"), 0);
    f->r.c.zone = "America/New_York";
    t_now_ms = 1704067200000LL; /* 2024-01-01T00:00Z: EST */
    m = ask_clock(f, 14);
    assert_true(proto_str_eq(m->u.clock.zone, "America/New_York"));
    assert_int_equal(m->u.clock.now_ms, 1704067200000LL);
    assert_int_equal(m->u.clock.utc_offset_s, -5 * 3600);
    t_now_ms = 1719792000000LL; /* 2024-07-01T00:00Z: EDT */
    m = ask_clock(f, 15);
    assert_int_equal(m->u.clock.utc_offset_s, -4 * 3600);
    t_now_ms = T_NOW;
    assert_int_equal(period_zone_apply("Asia/Shanghai"), 0);
}

/* CATALOG_REQ: empty until the daemon hands request a catalog, then the
 * built-in one in pages from where the client asks. */
static void test_catalog(void **state)
{
    fx_t *f = *state;
    proto_msg_t q = {.type = PROTO_CATALOG_REQ};
    q.u.catalog_req.req_id = 12;
    t_encode(&f->buf, &q);
    send_req(f, NULL);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_CATALOG);
    assert_int_equal(m->u.catalog.req_id, 12);
    assert_int_equal(m->u.catalog.townships_total, 0);
    assert_int_equal(m->u.catalog.metrics_total, 0);
    t_sink_clear(&f->replies);

    assert_int_equal(request_set_catalog(&f->r, &f->st.cfg), 0);
    t_encode(&f->buf, &q);
    send_req(f, NULL);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_CATALOG);
    uint32_t total = m->u.catalog.metrics_total;
    uint64_t id = m->u.catalog.catalog_id;
    assert_true(total >= 3); /* the built-in ratios at least */
    assert_int_equal(m->u.catalog.nmetrics, total);
    proto_catalog_iter_t it;
    proto_metric_info_t e;
    uint32_t ratios = 0;
    proto_catalog_iter(&it, m);
    while (proto_catalog_next_metric(&it, &e))
        if (e.kind == PROTO_KIND_RATIO && proto_str_eq(e.id, "disputes.resolution_rate")) {
            assert_true(proto_str_eq(e.numerator, "disputes.resolved"));
            ratios++;
        }
    assert_int_equal(ratios, 1);
    t_sink_clear(&f->replies);

    /* From the last metric on: one entry, same catalog. */
    q.u.catalog_req.metrics_from = total - 1;
    t_encode(&f->buf, &q);
    send_req(f, NULL);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->u.catalog.nmetrics, 1);
    assert_int_equal(m->u.catalog.catalog_id, id);
    t_sink_clear(&f->replies);
    /* Beyond the end: empty. */
    q.u.catalog_req.metrics_from = total + 5;
    t_encode(&f->buf, &q);
    send_req(f, NULL);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->u.catalog.nmetrics, 0);
}

static void test_submit_and_snapshot(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "talks=4");
    send_req(f, NULL);
    assert_int_equal(f->replies.n, 0); /* waits for the journal */
    ingest_on_durable(&f->in, 1);
    assert_int_equal(t_sink_at(&f->replies, 0)->u.ack.status, PROTO_ACK_ACCEPTED);
    t_sink_clear(&f->replies);
    proto_msg_t snap = {.type = PROTO_SNAPSHOT_REQ};
    snap.u.snapshot_req.req_id = 12;
    snap.u.snapshot_req.prefix = proto_str("u/town/");
    t_encode(&f->buf, &snap);
    send_req(f, NULL);
    /* The pending change is published first, then the snapshot names it. */
    assert_int_equal(f->pub.n, 2);
    assert_int_equal(f->replies.n, 2);
    const proto_msg_t *item = t_sink_at(&f->replies, 0);
    assert_int_equal(item->type, PROTO_SNAPSHOT_ITEM);
    assert_true(proto_str_eq(item->u.snapshot_item.tally.scope, "gaoguan"));
    const proto_msg_t *end = t_sink_at(&f->replies, 1);
    assert_int_equal(end->type, PROTO_SNAPSHOT_END);
    assert_int_equal(end->u.snapshot_end.count, 1);
    assert_int_equal(end->u.snapshot_end.seq, 43);
}

/* A snapshot of the townships' series, which must be gaoguan's one: its
 * "today" and "month" columns are today and month. */
static void expect_day_month(fx_t *f, int64_t today, int64_t month)
{
    proto_msg_t snap = {.type = PROTO_SNAPSHOT_REQ};
    snap.u.snapshot_req.req_id = 13;
    snap.u.snapshot_req.prefix = proto_str("u/town/");
    t_encode(&f->buf, &snap);
    t_sink_clear(&f->replies);
    send_req(f, NULL);
    assert_int_equal(f->replies.n, 2);
    const proto_tally_t *t = &t_sink_at(&f->replies, 0)->u.snapshot_item.tally;
    int64_t got[2] = {-1, -1};
    for (uint32_t i = 0; i < t->nvalues; i++) {
        if (proto_str_eq(t->values[i].name, "today"))
            got[0] = t->values[i].num;
        if (proto_str_eq(t->values[i].name, "month"))
            got[1] = t->values[i].num;
    }
    assert_int_equal(got[0], today);
    assert_int_equal(got[1], month);
}

/* A read after a boundary the daemon's tick timer has not reached yet
 * (a midnight, here): the request ticks the engine to the clock first, so
 * the new day reads empty at once and the month keeps the figure.  Before
 * the next boundary, and with a clock set back, a read moves nothing. */
static void test_read_ticks_first(void **state)
{
    fx_t *f = *state;
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "talks=4");
    send_req(f, NULL);
    ingest_on_durable(&f->in, 1);
    /* 20:00:00.010 in Shanghai: the next boundary is a minute's bucket. */
    t_now_ms = T_NOW + 10;
    expect_day_month(f, 4, 4);
    assert_int_equal(engine_now_ms(&f->st.engine), T_NOW);
    /* 00:00:00.001 on 16 June, and no tick since the figure. */
    t_now_ms = T_NOW + 4 * 3600000 + 1;
    expect_day_month(f, 0, 4);
    assert_int_equal(engine_now_ms(&f->st.engine), t_now_ms);
    t_now_ms = T_NOW;
    expect_day_month(f, 0, 4);
    assert_int_equal(engine_now_ms(&f->st.engine), T_NOW + 4 * 3600000 + 1);
}

/* TOWNSHIPS_REQ from position from: the one reply, a TOWNSHIPS. */
static const proto_msg_t *ask_townships(fx_t *f, uint64_t req_id, uint32_t from)
{
    proto_msg_t q = {.type = PROTO_TOWNSHIPS_REQ};
    q.u.townships_req.req_id = req_id;
    q.u.townships_req.from = from;
    t_encode(&f->buf, &q);
    t_sink_clear(&f->replies);
    send_req(f, NULL);
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_TOWNSHIPS);
    assert_true(m->u.townships.req_id == req_id);
    return m;
}

/* Read the whole list page by page into seen[] (by township number),
 * checking each page's bounds; returns the pages asked. */
static int read_townships(fx_t *f, uint8_t *seen, uint32_t ntowns, uint32_t *empty)
{
    uint32_t from = 0, pages = 0;
    *empty = 0;
    do {
        const proto_msg_t *m = ask_townships(f, 100 + pages, from);
        pages++;
        assert_true(m->u.townships.n <= REQUEST_TOWNSHIPS_PAGE);
        assert_true(m->u.townships.next == 0 || m->u.townships.next > from);
        *empty += m->u.townships.n == 0;
        size_t bytes = PROTO_TOWNSHIPS_HEAD_BYTES;
        proto_townships_iter_t it;
        proto_str_t name;
        proto_townships_iter(&it, m);
        while (proto_townships_next(&it, &name)) {
            unsigned k;
            char text[PROTO_NAME_MAX + 1];
            snprintf(text, sizeof text, "%.*s", (int)name.len, name.ptr); /* a view */
            assert_int_equal(sscanf(text, "t%u-", &k), 1);
            assert_true(k < ntowns && seen[k] == 0);
            seen[k] = 1;
            bytes += proto_townships_name_size(name.len);
        }
        assert_true(bytes <= PROTO_TOWNSHIPS_BYTES);
        from = m->u.townships.next;
    } while (from != 0);
    return (int)pages;
}

/* TOWNSHIPS: every township that has a series, once, in pages bounded in
 * names, bytes and the ids looked at; not the county, not a township
 * only named. */
static void test_townships(void **state)
{
    fx_t *f = *state;
    uint32_t empty = 0;
    /* Nothing yet: one page, empty and complete. */
    const proto_msg_t *m = ask_townships(f, 1, 0);
    assert_int_equal(m->u.townships.n, 0);
    assert_int_equal(m->u.townships.next, 0);

    int metric = intern_add(&f->st.metrics, "talks", 5);
    assert_true(metric > 0);
    /* 30,000 names, of which every 10th (and the last) has a series, in
     * 64 bytes: more than one page's bytes. */
    enum { N = 30000 };
    char name[PROTO_NAME_MAX + 1];
    for (uint32_t k = 0; k < N; k++) {
        int len = snprintf(name, sizeof name, "t%u-", k);
        if (k % 10 == 0) { /* filled up to 64 bytes */
            memset(name + len, 'x', PROTO_NAME_MAX - (size_t)len);
            name[PROTO_NAME_MAX] = '\0';
        }
        int town = intern_add(&f->st.towns, name, strlen(name));
        assert_true(town > 0);
        if (k % 10 == 0 || k == N - 1)
            assert_int_not_equal(
                engine_series_add(&f->st.engine, (uint32_t)metric, (uint32_t)town, 0), ENGINE_NONE);
    }
    assert_int_not_equal(engine_series_add(&f->st.engine, (uint32_t)metric, 0, 0), ENGINE_NONE);
    static uint8_t seen[N];
    memset(seen, 0, sizeof seen);
    int pages = read_townships(f, seen, N, &empty);
    for (uint32_t k = 0; k < N; k++)
        assert_int_equal(seen[k], k % 10 == 0 || k == N - 1);
    assert_true(pages >= 4); /* 3,001 names of 64 bytes, 992 a page */
    assert_int_equal(empty, 0);

    /* A township that gets its first series later is listed from then on;
     * a page from beyond the last position is empty and complete. */
    int town = intern_find(&f->st.towns, "t5-", 3);
    assert_true(town > 0);
    assert_int_not_equal(engine_series_add(&f->st.engine, (uint32_t)metric, (uint32_t)town, 0),
                         ENGINE_NONE);
    memset(seen, 0, sizeof seen);
    read_townships(f, seen, N, &empty);
    assert_int_equal(seen[5], 1);
    m = ask_townships(f, 2, N + 1);
    assert_int_equal(m->u.townships.n, 0);
    assert_int_equal(m->u.townships.next, 0);

    /* 66,000 more names without series: a page looks at 65,536 ids at
     * most, so one comes back empty but not complete. */
    for (uint32_t k = N; k < N + 66000; k++) {
        snprintf(name, sizeof name, "u%u", k);
        assert_true(intern_add(&f->st.towns, name, strlen(name)) > 0);
    }
    m = ask_townships(f, 3, N + 2);
    assert_int_equal(m->u.townships.n, 0);
    assert_int_equal(m->u.townships.next, N + 2 + REQUEST_TOWNSHIPS_SCAN);
    m = ask_townships(f, 4, N + 2 + REQUEST_TOWNSHIPS_SCAN);
    assert_int_equal(m->u.townships.next, 0);
}

/* A secured daemon: the keyring in force decides on every message. */
static void test_secured(void **state)
{
    fx_t *f = *state;
    char uid_town[KEYRING_USER_ID_MAX + 1], uid_sub[KEYRING_USER_ID_MAX + 1];
    snprintf(uid_town, sizeof(uid_town), "%s", keyring_lookup(&f->keys, key_town)->user_id);
    snprintf(uid_sub, sizeof(uid_sub), "%s", keyring_lookup(&f->keys, key_sub)->user_id);
    proto_msg_t sreq = {.type = PROTO_STATS_REQ};
    sreq.u.stats_req.req_id = 2;
    t_encode(&f->buf, &sreq);
    send_req(f, uid_town);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 2), "use a subscriber key"));
    send_req(f, uid_sub);
    assert_int_equal(t_sink_at(&f->replies, 0)->type, PROTO_STATS);
    t_sink_clear(&f->replies);
    /* Nor may a township read tallies of the history (a period, a range,
     * a span) or the list of townships that have tallies. */
    proto_msg_t reads[4] = {{.type = PROTO_PERIOD_REQ},
                            {.type = PROTO_RANGE_REQ},
                            {.type = PROTO_SPAN_REQ},
                            {.type = PROTO_TOWNSHIPS_REQ}};
    reads[0].u.period_req.period = proto_str("2023");
    reads[1].u.range_req.metric = proto_str("talks");
    reads[1].u.range_req.by = proto_str("year");
    reads[1].u.range_req.from = reads[1].u.range_req.to = proto_str("2023");
    reads[2].u.span_req.from = reads[2].u.span_req.to = proto_str("2023");
    for (int i = 0; i < 4; i++) {
        reads[i].u.stats_req.req_id = 3; /* the leading req_id of each */
        t_encode(&f->buf, &reads[i]);
        send_req(f, uid_town);
        assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 3), "use a subscriber key"));
    }
    /* A subscriber may not submit; a township may. */
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.screened=4");
    send_req(f, uid_sub);
    assert_int_equal(t_sink_at(&f->replies, 0)->u.ack.code, -TALLY_EFORBIDDEN);
    t_sink_clear(&f->replies);
    send_req(f, uid_town);
    ingest_on_durable(&f->in, 1);
    assert_int_equal(t_sink_at(&f->replies, 0)->u.ack.status, PROTO_ACK_ACCEPTED);
    t_sink_clear(&f->replies);
    /* A key the keyring no longer holds: its SUBMIT is refused, its other
     * requests get ERROR FORBIDDEN, even undecodable ones. */
    keyring_free(&f->keys);
    t_submit(&f->buf, 1, 2, "gaoguan", T_NOW, 1, "disputes.screened=4");
    send_req(f, uid_town);
    assert_int_equal(t_sink_at(&f->replies, 0)->u.ack.code, -TALLY_EFORBIDDEN);
    t_sink_clear(&f->replies);
    request_handle(&f->r, "R1", 2, 1, "\xc1", 1, uid_sub);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 0), "no longer admitted"));
    assert_int_equal(t_total(&f->st, "disputes.screened", ""), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_frames_and_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undecodable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_ping_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_and_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_ticks_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_townships, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secured, setup_secured, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
