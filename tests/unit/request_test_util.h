/* request_test_util.h - the fixture of request's unit tests
 * (test_request.c, test_request_backup.c): a request part with the real
 * ingest, publish, snapshot, backup and backup_fetch parts behind it, an
 * empty state directory of its own, and a recording sink for the
 * replies.  Every function is static inline so that a test file that
 * leaves one unused still builds. */
#ifndef REQUEST_TEST_UTIL_H
#define REQUEST_TEST_UTIL_H

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

static inline void on_stop(void *ctx, int code)
{
    (void)ctx;
    (void)code;
    fail_msg("ingest asked the daemon to stop");
}

static inline void report_stats(void *ctx, request_stat_fn fn, void *fn_ctx)
{
    fx_t *f = ctx;
    f->stat_calls++;
    stats_gauges_t g = {.series = engine_series_count(&f->st.engine), .seq = 42};
    stats_foreach(&f->st.stats, &g, fn, fn_ctx);
}

static inline void fx_init(fx_t *f, bool secured)
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

static inline int setup(void **state)
{
    fx_t *f = malloc(sizeof(*f));
    fx_init(f, false);
    *state = f;
    return 0;
}

static uint8_t key_town[KEYS_KEY_BYTES], key_sub[KEYS_KEY_BYTES], key_admin[KEYS_KEY_BYTES];

static inline int setup_secured(void **state)
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

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline int teardown(void **state)
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
static inline void send_req(fx_t *f, const char *user_id)
{
    request_handle(&f->r, "R1", 2, 1, f->buf.data, f->buf.size, user_id);
}

/* The one reply is an ERROR with code and req_id; returns its message. */
static inline const char *expect_error(fx_t *f, int code, uint64_t req_id)
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

#endif
