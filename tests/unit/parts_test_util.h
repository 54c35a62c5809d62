/* Fixtures shared by the unit tests of the daemon's parts (test_ingest.c,
 * test_request*.c, test_publish.c, test_reload_prepare.c, test_recover.c):
 * a fake clock, a sink that records and decodes what it is given, a
 * journal that hands out positions or fails on demand, the daemon's state
 * built from a configuration text, and SUBMIT bodies.  No sockets, no
 * threads.  Every function is static inline so that a test file that
 * leaves one unused still builds. */
#ifndef PARTS_TEST_UTIL_H
#define PARTS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog.h"
#include "config.h"
#include "dedup.h"
#include "engine.h"
#include "ingest.h"
#include "intern.h"
#include "log.h"
#include "proto.h"
#include "publish.h"
#include "ratelimit.h"
#include "sink.h"
#include "stats.h"

/* 2024-06-15T12:00:00Z */
#define T_NOW 1718452800000LL

/* ---- a clock the test moves ---- */

static int64_t t_now_ms = T_NOW;

static inline int64_t t_clock_now(void *ctx)
{
    (void)ctx;
    return t_now_ms;
}

static const tclock_t t_clock = {t_clock_now, NULL};

/* ---- a sink that records what it is sent ---- */

typedef struct t_msg {
    uint8_t head[256]; /* routing id or topic */
    size_t head_len;
    uint8_t *body; /* owned copy; m's strings point into it */
    size_t len;
    proto_msg_t m;
    int decoded; /* proto_decode's result */
} t_msg_t;

typedef struct t_sink {
    t_msg_t *v;
    size_t n, cap;
    int refuse;   /* return this code ... */
    int refuse_n; /* ... for this many more sends (-1: for ever) */
    size_t tries; /* sends attempted, refused ones included */
} t_sink_t;

static inline int t_sink_send(void *ctx, const void *const *bufs, const size_t *lens, int nparts)
{
    t_sink_t *s = ctx;
    s->tries++;
    assert_int_equal(nparts, 2);
    if (s->refuse_n != 0) {
        if (s->refuse_n > 0)
            s->refuse_n--;
        return s->refuse;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        assert_non_null(s->v);
    }
    t_msg_t *m = &s->v[s->n++];
    assert_true(lens[0] <= sizeof(m->head));
    memcpy(m->head, bufs[0], lens[0]);
    m->head_len = lens[0];
    m->body = malloc(lens[1] ? lens[1] : 1);
    assert_non_null(m->body);
    memcpy(m->body, bufs[1], lens[1]);
    m->len = lens[1];
    m->decoded = proto_decode(m->body, m->len, &m->m, NULL, 0, NULL);
    assert_int_equal(m->decoded, 0);
    return 0;
}

static inline sink_t t_sink_of(t_sink_t *s)
{
    return (sink_t){t_sink_send, s};
}

static inline void t_sink_clear(t_sink_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].body);
    s->n = 0;
}

static inline void t_sink_free(t_sink_t *s)
{
    t_sink_clear(s);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* The i-th message recorded; fails the test when there is none. */
static inline const proto_msg_t *t_sink_at(const t_sink_t *s, size_t i)
{
    assert_true(i < s->n);
    return &s->v[i].m;
}

/* ---- a journal that hands out positions, or fails on demand ---- */

typedef struct t_journal {
    uint64_t next; /* the position the next append gets */
    int fail;      /* non-zero: appends return it */
    const char *why;
    size_t appended;
    uint8_t last[65536]; /* the last record appended */
    size_t last_len;
} t_journal_t;

static inline int t_journal_append(void *ctx, const void *rec, size_t len, uint64_t *pos)
{
    t_journal_t *j = ctx;
    if (j->fail)
        return j->fail;
    if (j->next == 0)
        j->next = 1;
    *pos = j->next++;
    j->appended++;
    assert_true(len <= sizeof(j->last));
    memcpy(j->last, rec, len);
    j->last_len = len;
    return 0;
}

static inline const char *t_journal_error(void *ctx)
{
    t_journal_t *j = ctx;
    return j->why ? j->why : "";
}

/* ---- the daemon's state, from a configuration text ---- */

typedef struct t_state {
    tallyd_config_t cfg;
    intern_t towns, metrics;
    engine_t engine;
    dedup_t dedup;
    ratelimit_t rl;
    tallyd_stats_t stats;
    logger_t log;
    char *logbuf; /* what was logged, with open_memstream */
    size_t loglen;
} t_state_t;

/* Build the state as tallyd_start.c does, from conf (NULL: the built-in
 * defaults, open catalogs and the built-in ratios), at now_ms (the engine
 * starts there: a test's clock set earlier is a clock set back).  Logs go
 * to memory: t_logged() searches them. */
static inline void t_state_init_at(t_state_t *s, const char *conf, int64_t now_ms)
{
    memset(s, 0, sizeof(*s));
    t_now_ms = now_ms;
    char err[1024];
    /* No text: the built-in defaults, as tallyd without a file. */
    const char *text = conf ? conf : "";
    assert_int_equal(config_parse_text(text, strlen(text), "t.conf", &s->cfg, err, sizeof(err)), 0);
    log_init(&s->log, LOG_LEVEL_DEBUG);
    s->log.journal = false;
    s->log.out = open_memstream(&s->logbuf, &s->loglen);
    assert_non_null(s->log.out);
    engine_config_t ec;
    engine_config_from(&ec, &s->cfg);
    assert_int_equal(engine_init(&s->engine, &ec, &t_clock), 0);
    uint64_t metrics = (uint64_t)s->cfg.max_metrics + catalog_metric_names(&s->cfg) + 1;
    assert_int_equal(intern_init(&s->towns, (uint32_t)s->cfg.max_townships + 1), 0);
    assert_int_equal(intern_init(&s->metrics, (uint32_t)metrics), 0);
    assert_int_equal(dedup_init(&s->dedup, (uint32_t)s->cfg.max_clients), 0);
    assert_int_equal(ratelimit_init(&s->rl, s->cfg.rate, s->cfg.burst, s->towns.capacity), 0);
}

/* t_state_init_at(s, conf, T_NOW). */
static inline void t_state_init(t_state_t *s, const char *conf)
{
    t_state_init_at(s, conf, T_NOW);
}

/* Declare the configured catalog, as a start does after loading a
 * checkpoint (test_recover declares it itself, later). */
static inline void t_state_declare(t_state_t *s)
{
    catalog_target_t ct = {&s->towns, &s->metrics, &s->engine, "t-state"};
    char err[512];
    assert_int_equal(catalog_declare(&ct, &s->cfg, err, sizeof(err)), 0);
}

static inline void t_state_free(t_state_t *s)
{
    fclose(s->log.out);
    free(s->logbuf);
    engine_free(&s->engine);
    dedup_free(&s->dedup);
    ratelimit_free(&s->rl);
    intern_free(&s->towns);
    intern_free(&s->metrics);
    config_free(&s->cfg);
}

/* How the tests wire ingest to the state: a journal fake, replies into
 * replies, stops to stop(ctx), the configured limits. */
static inline ingest_config_t t_ingest_config(t_state_t *s, t_journal_t *j, t_sink_t *replies,
                                              void (*stop)(void *ctx, int code), void *ctx)
{
    ingest_config_t ic = {
        .engine = &s->engine,
        .towns = &s->towns,
        .metrics = &s->metrics,
        .dedup = &s->dedup,
        .rl = &s->rl,
        .journal = {t_journal_append, t_journal_error, j},
        .reply = t_sink_of(replies),
        .stop = stop,
        .stop_ctx = ctx,
        .stats = &s->stats,
        .log = &s->log,
        .clock = &t_clock,
        .limits = ingest_limits_from(&s->cfg),
    };
    return ic;
}

/* How the tests wire publish to the state: updates into pub, heartbeats
 * hourly (never, in a test), the first round numbered seq + 1. */
static inline publish_config_t t_publish_config(t_state_t *s, uv_loop_t *loop, t_sink_t *pub,
                                                int64_t interval_ms, uint64_t seq)
{
    publish_config_t pc = {
        .loop = loop,
        .engine = &s->engine,
        .towns = &s->towns,
        .metrics = &s->metrics,
        .pub = t_sink_of(pub),
        .stats = &s->stats,
        .log = &s->log,
        .clock = &t_clock,
        .interval_ms = interval_ms,
        .heartbeat_ms = 3600000,
        .seq = seq,
    };
    return pc;
}

/* True when the log holds text. */
static inline bool t_logged(t_state_t *s, const char *text)
{
    fflush(s->log.out);
    return s->logbuf != NULL && strstr(s->logbuf, text) != NULL;
}

/* The "total" column of (metric, town) ("" for the county); -1 when the
 * series does not exist.  Counters and gauges only. */
static inline int64_t t_total(const t_state_t *s, const char *metric, const char *town)
{
    int m = intern_find(&s->metrics, metric, strlen(metric));
    int t = town[0] ? intern_find(&s->towns, town, strlen(town)) : 0;
    engine_values_t v;
    if (m <= 0 || t < 0 || engine_read(&s->engine, (uint32_t)m, (uint32_t)t, &v) != 0)
        return -1;
    return v.col[v.ncols - 1].num;
}

/* ---- SUBMIT bodies ---- */

/* Encode a SUBMIT of client id byte cid (all 16 bytes), seq, township, time
 * and n samples "metric=value" into out (cleared first). */
static inline void t_submit(msgpack_sbuffer *out, uint8_t cid, uint64_t seq, const char *town,
                            int64_t time_ms, int n, ...)
{
    proto_sample_t smp[16];
    char names[16][PROTO_NAME_MAX + 1];
    assert_true(n >= 0 && n <= 16);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *spec = va_arg(ap, const char *);
        const char *eq = strchr(spec, '=');
        assert_non_null(eq);
        snprintf(names[i], sizeof(names[i]), "%.*s", (int)(eq - spec), spec);
        smp[i].metric = proto_str(names[i]);
        smp[i].value = strtoll(eq + 1, NULL, 10);
    }
    va_end(ap);
    proto_msg_t m = {.type = PROTO_SUBMIT};
    memset(m.u.submit.client_id, cid, PROTO_CLIENT_ID_LEN);
    m.u.submit.seq = seq;
    m.u.submit.township = proto_str(town);
    m.u.submit.time_ms = time_ms;
    m.u.submit.nsamples = (uint32_t)n;
    m.u.submit.samples = smp;
    msgpack_sbuffer_clear(out);
    assert_int_equal(proto_encode(out, &m), 0);
}

/* Encode any request message m into out (cleared first). */
static inline void t_encode(msgpack_sbuffer *out, const proto_msg_t *m)
{
    msgpack_sbuffer_clear(out);
    assert_int_equal(proto_encode(out, m), 0);
}

#endif
