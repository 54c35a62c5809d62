/* Unit tests of request: message frames in, replies out through a
 * recording sink; ingest and publish are the real parts behind it. */
#include "parts_test_util.h"

#include <ftw.h>
#include <uv.h>

#include "backup.h"
#include "backup_fetch.h"

#include "ingest.h"
#include "keys.h"
#include "publish.h"
#include "request.h"
#include "snapshot.h"

typedef struct fx {
    t_state_t st;
    uv_loop_t loop;
    t_sink_t replies, pub;
    t_journal_t journal;
    keyring_t keys;
    ingest_t in;
    publish_t p;
    snapshot_t snap;
    request_t r;
    backup_t b;           /* behind BACKUP_REQ, on an empty state directory */
    backup_fetch_t fetch; /* behind BACKUP_FETCH, in b's backup directory */
    char state_dir[64];
    msgpack_sbuffer buf;
    int stat_calls;
} fx_t;

static void on_stop(void *ctx, int code)
{
    (void)ctx;
    (void)code;
    fail_msg("ingest asked the daemon to stop");
}

static void report_stats(void *ctx, request_stat_fn fn, void *fn_ctx)
{
    fx_t *f = ctx;
    f->stat_calls++;
    stats_gauges_t g = {.series = engine_series_count(&f->st.engine), .seq = 42};
    stats_foreach(&f->st.stats, &g, fn, fn_ctx);
}

static void fx_init(fx_t *f, bool secured)
{
    memset(f, 0, sizeof(*f));
    t_state_init(&f->st, NULL);
    t_state_declare(&f->st);
    msgpack_sbuffer_init(&f->buf);
    keyring_init(&f->keys);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    ingest_config_t ic = t_ingest_config(&f->st, &f->journal, &f->replies, on_stop, NULL);
    ic.secured = secured;
    assert_int_equal(ingest_init(&f->in, &ic), 0);
    publish_config_t pc = t_publish_config(&f->st, &f->loop, &f->pub, 3600000, 41);
    assert_int_equal(publish_init(&f->p, &pc), 0);
    snapshot_config_t sc = {
        .loop = &f->loop,
        .engine = &f->st.engine,
        .publish = &f->p,
        .towns = &f->st.towns,
        .metrics = &f->st.metrics,
        .reply = t_sink_of(&f->replies),
        .stats = &f->st.stats,
        .log = &f->st.log,
        .limits = {.max_streams = 4, .timeout_ms = 30000},
    };
    assert_int_equal(snapshot_init(&f->snap, &sc), 0);
    snprintf(f->state_dir, sizeof(f->state_dir), "/tmp/tally-request-XXXXXX");
    assert_non_null(mkdtemp(f->state_dir));
    backup_config_t bc = {.loop = &f->loop,
                          .state_dir = f->state_dir,
                          .log = &f->st.log,
                          .clock = &t_clock,
                          .settings = {.keep = 7}};
    assert_int_equal(backup_init(&f->b, &bc), 0);
    backup_fetch_config_t fc = {.loop = &f->loop, .backup = &f->b};
    assert_int_equal(backup_fetch_init(&f->fetch, &fc), 0);
    request_config_t rc = {
        .ingest = &f->in,
        .publish = &f->p,
        .snapshot = &f->snap,
        .backup = &f->b,
        .fetch = &f->fetch,
        .engine = &f->st.engine,
        .towns = &f->st.towns,
        .keys = &f->keys,
        .secured = secured,
        .pub_endpoint = "tcp://127.0.0.1:7412",
        .reply = t_sink_of(&f->replies),
        .stats = report_stats,
        .stats_ctx = f,
        .counters = &f->st.stats,
        .log = &f->st.log,
        .limits = {.max_samples = 8,
                   .max_msg_bytes = 4096,
                   .skew_ms = f->st.cfg.skew_ms,
                   .max_age_ms = f->st.cfg.max_age_ms},
        .clock = &t_clock,
        .zone = f->st.cfg.timezone,
    };
    assert_int_equal(request_init(&f->r, &rc), 0);
}

static int setup(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, false);
    *state = f;
    return 0;
}

static uint8_t key_town[KEYS_KEY_BYTES], key_sub[KEYS_KEY_BYTES], key_admin[KEYS_KEY_BYTES];

static int setup_secured(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, true);
    memset(key_town, 0x11, sizeof(key_town));
    memset(key_sub, 0x22, sizeof(key_sub));
    assert_int_equal(keyring_add(&f->keys, key_town, KEYS_ROLE_TOWNSHIP, "gaoguan", 7, NULL), 0);
    assert_int_equal(keyring_add(&f->keys, key_sub, KEYS_ROLE_SUBSCRIBER, "screen", 6, NULL), 0);
    memset(key_admin, 0x33, sizeof(key_admin));
    assert_int_equal(keyring_add(&f->keys, key_admin, KEYS_ROLE_ADMIN, "ops", 3, NULL), 0);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    backup_fetch_close(&f->fetch, NULL);
    request_free(&f->r);
    backup_close(&f->b, NULL);
    snapshot_close(&f->snap, NULL);
    publish_close(&f->p, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    ingest_free(&f->in);
    keyring_free(&f->keys);
    t_sink_free(&f->replies);
    t_sink_free(&f->pub);
    msgpack_sbuffer_destroy(&f->buf);
    t_state_free(&f->st);
    nftw(f->state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Hand f->buf in as one frame from peer "R1" with user_id. */
static void send_req(fx_t *f, const char *user_id)
{
    request_handle(&f->r, "R1", 2, 1, f->buf.data, f->buf.size, user_id);
}

/* The one reply is an ERROR with code and req_id; returns its message. */
static const char *expect_error(fx_t *f, int code, uint64_t req_id)
{
    static char msg[PROTO_MESSAGE_MAX + 1];
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_ERROR);
    assert_int_equal(m->u.error.code, -code);
    assert_int_equal(m->u.error.req_id, req_id);
    assert_memory_equal(f->replies.v[0].head, "R1", 2);
    snprintf(msg, sizeof(msg), "%.*s", (int)m->u.error.message.len, m->u.error.message.ptr);
    t_sink_clear(&f->replies);
    return msg;
}

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
    assert_non_null(strstr(expect_error(f, TALLY_ETYPE, 5), "not a request the daemon answers"));
    /* Likewise the newest reply type, CLOCK. */
    proto_msg_t clock = {.type = PROTO_CLOCK};
    clock.u.clock.req_id = 6;
    clock.u.clock.zone = proto_str("UTC");
    t_encode(&f->buf, &clock);
    send_req(f, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_ETYPE, 6), "not a request the daemon answers"));
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
/* BACKUP_REQ from peer rid with req_id. */
static void ask_backup(fx_t *f, const char *rid, uint64_t req_id, const char *user_id)
{
    proto_msg_t q = {.type = PROTO_BACKUP_REQ};
    q.u.backup_req.req_id = req_id;
    t_encode(&f->buf, &q);
    request_handle(&f->r, rid, strlen(rid), 1, f->buf.data, f->buf.size, user_id);
}

/* A backup ended as backup_config_t.on_end tells it. */
static void end_backup(fx_t *f, uint64_t serial, int rc, const char *path_or_err)
{
    backup_end_t e = {.serial = serial, .rc = rc, .files = 5, .bytes = 1048576, .ms = 127};
    if (rc == 0)
        e.path = path_or_err;
    else
        e.err = path_or_err;
    request_backup_end(&f->r, &e);
}

/* BACKUP_REQ waits for its backup: the first begins one, a second while
 * it runs waits for the next; each is answered when its backup ends,
 * BACKUP with the path or ERROR UNAVAILABLE with the backup's sentence
 * (escaped where it is not UTF-8); a path that is not UTF-8 is sent as the
 * backup's name; the 17th waiting is BUSY; a stop answers the rest. */
static void test_backup(void **state)
{
    fx_t *f = *state;
    ask_backup(f, "R1", 5, NULL);
    assert_int_equal(f->replies.n, 0);
    ask_backup(f, "R2", 6, NULL);
    assert_int_equal(f->replies.n, 0);
    end_backup(f, 1, 0, "/srv/backups/backup-20240615T120000Z");
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_memory_equal(f->replies.v[0].head, "R1", 2);
    assert_int_equal(m->type, PROTO_BACKUP);
    assert_int_equal(m->u.backup.req_id, 5);
    assert_int_equal(m->u.backup.path.len, strlen("/srv/backups/backup-20240615T120000Z"));
    assert_memory_equal(m->u.backup.path.ptr, "/srv/backups/backup-20240615T120000Z",
                        m->u.backup.path.len);
    assert_int_equal(m->u.backup.files, 5);
    assert_int_equal(m->u.backup.bytes, 1048576);
    assert_int_equal(m->u.backup.ms, 127);
    t_sink_clear(&f->replies);
    end_backup(f, 2, TALLY_EIO, "copying history.db to /srv/\xff/x: No space left on device");
    end_backup(f, 2, TALLY_EIO, "told once only");
    assert_int_equal(f->replies.n, 1);
    assert_memory_equal(f->replies.v[0].head, "R2", 2);
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_ERROR);
    assert_int_equal(m->u.error.code, -TALLY_EUNAVAIL);
    assert_int_equal(m->u.error.req_id, 6);
    assert_true(m->u.error.message.len > 0);
    char msg[PROTO_MESSAGE_MAX + 1];
    snprintf(msg, sizeof(msg), "%.*s", (int)m->u.error.message.len, m->u.error.message.ptr);
    assert_string_equal(msg, "the backup failed: copying history.db to /srv/\\xff/x: No space "
                             "left on device");
    t_sink_clear(&f->replies);
    /* Bytes that are not UTF-8, in the error and in the path. */
    ask_backup(f, "R3", 7, NULL);
    end_backup(f, 3, TALLY_EIO, "writing /srv/\xff: I/O error");
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_ERROR);
    t_sink_clear(&f->replies);
    ask_backup(f, "R3", 8, NULL);
    end_backup(f, 4, 0, "/srv/\xff/backup-20240615T120000Z-4");
    m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->type, PROTO_BACKUP);
    assert_int_equal(m->u.backup.path.len, strlen("backup-20240615T120000Z-4"));
    t_sink_clear(&f->replies);
    /* Sixteen wait; the seventeenth is told to retry. */
    for (int i = 0; i < REQUEST_BACKUP_WAITERS; i++)
        ask_backup(f, "R4", 100 + (uint64_t)i, NULL);
    assert_int_equal(f->replies.n, 0);
    ask_backup(f, "R1", 200, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_EBUSY, 200), "16 requests wait"));
    request_backup_abandon(&f->r);
    assert_int_equal(f->replies.n, REQUEST_BACKUP_WAITERS);
    for (size_t i = 0; i < f->replies.n; i++) {
        m = t_sink_at(&f->replies, i);
        assert_int_equal(m->type, PROTO_ERROR);
        assert_int_equal(m->u.error.code, -TALLY_EUNAVAIL);
        assert_int_equal(m->u.error.req_id, 100 + i);
    }
    t_sink_clear(&f->replies);
    /* The backups this test began on an empty directory end (failed). */
    while (f->b.running)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Only an admin key may ask for a backup; an admin key may neither read
 * nor submit. */
static void test_backup_secured(void **state)
{
    fx_t *f = *state;
    const char *town = keyring_lookup(&f->keys, key_town)->user_id;
    const char *sub = keyring_lookup(&f->keys, key_sub)->user_id;
    const char *admin = keyring_lookup(&f->keys, key_admin)->user_id;
    assert_non_null(strstr(admin, "admin:ops:"));
    ask_backup(f, "R1", 3, town);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 3),
                           "township 'gaoguan', which may not ask for backups; use an admin key"));
    ask_backup(f, "R1", 4, sub);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 4), "subscriber 'screen'"));
    ask_backup(f, "R1", 5, admin);
    assert_int_equal(f->replies.n, 0);
    end_backup(f, 1, 0, "/srv/b");
    assert_int_equal(t_sink_at(&f->replies, 0)->type, PROTO_BACKUP);
    t_sink_clear(&f->replies);
    proto_msg_t sreq = {.type = PROTO_STATS_REQ};
    sreq.u.stats_req.req_id = 6;
    t_encode(&f->buf, &sreq);
    send_req(f, admin);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 6),
                           "admin 'ops', which may ask for backups but not read"));
    t_submit(&f->buf, 1, 1, "gaoguan", T_NOW, 1, "disputes.screened=4");
    send_req(f, admin);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->u.ack.code, -TALLY_EFORBIDDEN);
    char msg[PROTO_MESSAGE_MAX + 1];
    snprintf(msg, sizeof(msg), "%.*s", (int)m->u.ack.message.len, m->u.ack.message.ptr);
    assert_non_null(strstr(msg, "admin 'ops', which may ask for backups but not submit figures"));
    t_sink_clear(&f->replies);
    while (f->b.running)
        uv_run(&f->loop, UV_RUN_ONCE);
}

#define BK "backup-20240615T120000Z"

static uint8_t bk_byte(uint64_t i)
{
    return (uint8_t)(i * 131 + (i >> 9));
}

/* A backup in the backup directory: history.db of 300000 bytes, and a
 * journal segment of 3. */
static void make_backup(fx_t *f)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/backups", f->state_dir);
    assert_int_equal(mkdir(p, 0750), 0);
    snprintf(p, sizeof(p), "%s/backups/" BK, f->state_dir);
    assert_int_equal(mkdir(p, 0750), 0);
    snprintf(p, sizeof(p), "%s/backups/" BK "/journal-0000000000000001.tj", f->state_dir);
    FILE *out = fopen(p, "w");
    assert_non_null(out);
    fputs("abc", out);
    fclose(out);
    snprintf(p, sizeof(p), "%s/backups/" BK "/history.db", f->state_dir);
    assert_non_null(out = fopen(p, "w"));
    for (uint64_t i = 0; i < 300000; i++)
        fputc(bk_byte(i), out);
    fclose(out);
}

/* BACKUP_FETCH from peer rid. */
static void ask_fetch(fx_t *f, const char *rid, uint64_t req_id, const char *name, uint32_t file,
                      uint64_t offset, const char *user_id)
{
    proto_msg_t q = {.type = PROTO_BACKUP_FETCH};
    q.u.backup_fetch.req_id = req_id;
    q.u.backup_fetch.name = proto_str(name);
    q.u.backup_fetch.file = file;
    q.u.backup_fetch.offset = offset;
    t_encode(&f->buf, &q);
    request_handle(&f->r, rid, strlen(rid), 1, f->buf.data, f->buf.size, user_id);
}

/* Run the loop until every fetch begun is answered. */
static void drain_fetches(fx_t *f)
{
    while (backup_fetch_active(&f->fetch) > 0)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Reply i is a BACKUP_CHUNK to rid for req_id: file (of 2) from offset,
 * with the file's bytes; returns the length of its data. */
static size_t expect_chunk(fx_t *f, size_t i, const char *rid, uint64_t req_id, uint32_t file,
                           uint64_t offset)
{
    assert_int_equal(f->replies.v[i].head_len, strlen(rid));
    assert_memory_equal(f->replies.v[i].head, rid, strlen(rid));
    const proto_msg_t *m = t_sink_at(&f->replies, i);
    assert_int_equal(m->type, PROTO_BACKUP_CHUNK);
    assert_int_equal(m->u.backup_chunk.req_id, req_id);
    assert_int_equal(m->u.backup_chunk.files, 2);
    assert_int_equal(m->u.backup_chunk.file, file);
    const char *name = file == 0 ? "history.db" : "journal-0000000000000001.tj";
    assert_int_equal(m->u.backup_chunk.file_name.len, strlen(name));
    assert_memory_equal(m->u.backup_chunk.file_name.ptr, name, strlen(name));
    uint64_t size = file == 0 ? 300000 : 3;
    assert_int_equal(m->u.backup_chunk.size, size);
    assert_int_equal(m->u.backup_chunk.offset, offset);
    size_t len = m->u.backup_chunk.data.len;
    assert_int_equal(len, size - offset < PROTO_CHUNK_MAX ? size - offset : PROTO_CHUNK_MAX);
    for (size_t j = 0; j < len; j++)
        assert_int_equal((uint8_t)m->u.backup_chunk.data.ptr[j],
                         file == 0 ? bk_byte(offset + j) : (uint8_t) "abc"[offset + j]);
    return len;
}

/* The one reply is an ERROR naming field; returns its message. */
static const char *expect_error_in(fx_t *f, int code, uint64_t req_id, const char *field)
{
    assert_int_equal(f->replies.n, 1);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    assert_int_equal(m->u.error.field.len, strlen(field));
    assert_true(strncmp(m->u.error.field.ptr ? m->u.error.field.ptr : "", field, strlen(field)) ==
                0);
    return expect_error(f, code, req_id);
}

/* How many times the log holds text. */
static int logged_times(fx_t *f, const char *text)
{
    int n = 0;
    fflush(f->st.log.out);
    for (const char *p = f->st.logbuf; p != NULL && (p = strstr(p, text)) != NULL; p++)
        n++;
    return n;
}

/* BACKUP_FETCH is read off the loop and answered BACKUP_CHUNK to the peer
 * that asked, with its req_id, in whatever order the reads end; a copy
 * beginning is logged once; errors name their field, a missing backup is
 * not counted as a bad request; 32 at once, then BUSY; a stop answers
 * those being read, and those after it, UNAVAILABLE. */
static void test_backup_fetch(void **state)
{
    fx_t *f = *state;
    make_backup(f);
    ask_fetch(f, "R7", 9, BK, 0, 0, NULL);
    ask_fetch(f, "R8", 10, BK, 0, PROTO_CHUNK_MAX, NULL);
    assert_int_equal(f->replies.n, 0);
    drain_fetches(f);
    assert_int_equal(f->replies.n, 2);
    size_t r7 = f->replies.v[0].head[1] == '7' ? 0 : 1;
    assert_int_equal(expect_chunk(f, r7, "R7", 9, 0, 0), PROTO_CHUNK_MAX);
    assert_int_equal(expect_chunk(f, 1 - r7, "R8", 10, 0, PROTO_CHUNK_MAX),
                     300000 - PROTO_CHUNK_MAX);
    t_sink_clear(&f->replies);
    ask_fetch(f, "R1", 11, BK, 1, 0, NULL);
    drain_fetches(f);
    ask_fetch(f, "R1", 12, BK, 1, 3, NULL);
    drain_fetches(f);
    assert_int_equal(expect_chunk(f, 0, "R1", 11, 1, 0), 3);
    assert_int_equal(expect_chunk(f, 1, "R1", 12, 1, 3), 0);
    t_sink_clear(&f->replies);
    assert_int_equal(logged_times(f, "backup " BK " being copied (BACKUP_FETCH)"), 1);
    proto_msg_t sreq = {.type = PROTO_STATS_REQ};
    t_encode(&f->buf, &sreq);
    send_req(f, NULL);
    const proto_msg_t *m = t_sink_at(&f->replies, 0);
    int64_t fetches = -1, bytes = -1;
    for (uint32_t i = 0; i < m->u.stats.n; i++) {
        if (proto_str_eq(m->u.stats.entries[i].name, "tallyd_backup_fetches_total"))
            fetches = m->u.stats.entries[i].value;
        if (proto_str_eq(m->u.stats.entries[i].name, "tallyd_backup_fetch_bytes_total"))
            bytes = m->u.stats.entries[i].value;
    }
    assert_int_equal(fetches, 4);
    assert_int_equal(bytes, 300003);
    t_sink_clear(&f->replies);
    ask_fetch(f, "R1", 13, BK, 2, 0, NULL);
    drain_fetches(f);
    assert_string_equal(expect_error_in(f, TALLY_ERANGE, 13, "file"),
                        "file 2 asked for, the backup holds 2 files");
    ask_fetch(f, "R1", 14, BK, 1, 4, NULL);
    drain_fetches(f);
    assert_string_equal(expect_error_in(f, TALLY_ERANGE, 14, "offset"),
                        "offset 4 is past the end of journal-0000000000000001.tj, 3 bytes");
    assert_int_equal(f->st.stats.bad_requests, 2);
    ask_fetch(f, "R1", 15, BK "-2", 0, 0, NULL);
    drain_fetches(f);
    const char *msg = expect_error_in(f, TALLY_ENOBACKUP, 15, "name");
    assert_non_null(strstr(msg, "no backup named " BK "-2 in /"));
    assert_non_null(strstr(msg, "/backups (never written, or removed since: [backup] keep is 7)"));
    assert_int_equal(f->st.stats.bad_requests, 2);
    assert_true(t_logged(&f->st, "backup fetch refused: no backup named " BK "-2"));
    /* 32 read at once; the 33rd is told to retry. */
    for (uint64_t i = 0; i < BACKUP_FETCH_MAX; i++)
        ask_fetch(f, "R4", 100 + i, BK, 1, i % 4, NULL);
    assert_int_equal(f->replies.n, 0);
    ask_fetch(f, "R1", 200, BK, 0, 0, NULL);
    assert_non_null(strstr(expect_error(f, TALLY_EBUSY, 200), "32 fetches of backup files"));
    drain_fetches(f);
    assert_int_equal(f->replies.n, BACKUP_FETCH_MAX);
    for (size_t i = 0; i < f->replies.n; i++) {
        uint64_t id = t_sink_at(&f->replies, i)->u.backup_chunk.req_id;
        assert_in_range(id, 100, 100 + BACKUP_FETCH_MAX - 1);
        expect_chunk(f, i, "R4", id, 1, (id - 100) % 4);
    }
    t_sink_clear(&f->replies);
    assert_int_equal(f->st.stats.backup_fetches, 4 + BACKUP_FETCH_MAX);
    /* tallyd stops. */
    ask_fetch(f, "R1", 300, BK, 0, 0, NULL);
    backup_fetch_close(&f->fetch, NULL);
    assert_string_equal(expect_error(f, TALLY_EUNAVAIL, 300), "tallyd is stopping");
    ask_fetch(f, "R1", 301, BK, 0, 0, NULL);
    assert_string_equal(expect_error(f, TALLY_EUNAVAIL, 301), "tallyd is stopping");
    assert_int_equal(f->st.stats.bad_requests, 3); /* the BUSY */
}

/* Only an admin key may copy a backup. */
static void test_backup_fetch_secured(void **state)
{
    fx_t *f = *state;
    make_backup(f);
    ask_fetch(f, "R1", 3, BK, 0, 0, keyring_lookup(&f->keys, key_town)->user_id);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 3),
                           "this key belongs to township 'gaoguan', which may not copy backups; "
                           "use an admin key ([security] admin_keys)"));
    ask_fetch(f, "R1", 4, BK, 0, 0, keyring_lookup(&f->keys, key_sub)->user_id);
    assert_non_null(strstr(expect_error(f, TALLY_EFORBIDDEN, 4),
                           "subscriber 'screen', which may not copy backups; use an admin key"));
    assert_int_equal(backup_fetch_active(&f->fetch), 0);
    ask_fetch(f, "R1", 5, BK, 0, 0, keyring_lookup(&f->keys, key_admin)->user_id);
    drain_fetches(f);
    expect_chunk(f, 0, "R1", 5, 0, 0);
    t_sink_clear(&f->replies);
    assert_true(t_logged(&f->st, "backup " BK " being copied by admin 'ops'"));
}

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
        cmocka_unit_test_setup_teardown(test_townships, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secured, setup_secured, teardown),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_secured, setup_secured, teardown),
        cmocka_unit_test_setup_teardown(test_backup_fetch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_fetch_secured, setup_secured, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
