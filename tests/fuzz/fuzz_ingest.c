/* fuzz_ingest.c - libFuzzer target over tallyd's whole request path, in
 * one process and without sockets.
 *
 * Every input gets a fresh daemon state built the way tallyd_start.c builds it
 * (configuration, engine, name tables, catalog, de-duplication, and the
 * request, ingest and publish parts) and is fed, message by message, to
 * request_handle(), the function the socket adapter calls.  The parts are
 * handed sinks and a stop callback of this file, as tallyd_start.c hands them
 * the sockets' sinks: they decode every reply, update and snapshot message
 * and check it.  The journal is the real one (sync never, in a temporary
 * directory, on a libuv loop); it stays open across inputs, so accepted
 * submissions wait for it as in the daemon and their ACKs are released by
 * running the loop.
 *
 * Input: byte 0 picks the configuration: bits 0-1 the catalog (0 open, with
 * the built-in ratios; 1 and 3 closed townships and metrics; 2 closed
 * townships, open metrics, declared ratios), bit 2 tight limits (few series,
 * clients, names and samples).  Then records, each op:u8 len:u16le body:
 *   op % 12 in 0..7  a request (routing id, body) from peer op % 8
 *   op % 12 == 8     a request with no body frame (one frame in all)
 *   op % 12 == 9     a request with the body twice (three frames)
 *   op % 12 == 10    run the loop once without blocking (ACKs go out)
 *   op % 12 == 11    the clock moves on by body[0..4) (u32le ms), tick
 * The clock starts at FUZZ_NOW_MS; gen_ingest_corpus.c writes the seeds in
 * this format.
 *
 * Checked, beyond what the sanitizers catch: every request gets exactly one
 * reply of the right type (a snapshot: its items and one SNAPSHOT_END with
 * their count); a SUBMIT gets one ACK with its seq and routing id, now when
 * rejected, after the journal has it when accepted or duplicate; the verdict
 * matches a model of de-duplication, of the catalog and of the time rules;
 * accepted submissions change the township and county totals exactly as a
 * model of counters and gauges says, everything else changes nothing; every
 * published update and snapshot item carries the model's total.  The
 * history's requests are answered by recall over a history in memory that
 * ingest feeds as in tallyd_start.c: PERIOD_REQ and SPAN_REQ with one ERROR of
 * recall's codes, an empty PERIOD at once, or items sent by the loop in
 * order, oldest answer first, each of a series the model has, with the
 * period's (or "span") one column; RANGE_REQ with one ERROR or consecutive
 * chunks that add up to their total, every point named by a period.
 * CATALOG_REQ and CLOCK_REQ get their answer (the fuzz clock, the zone).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "calperiod.h"
#include "catalog.h"
#include "config.h"
#include "dedup.h"
#include "engine.h"
#include "history.h"
#include "ingest.h"
#include "intern.h"
#include "journal.h"
#include "publish.h"
#include "ratelimit.h"
#include "recall.h"
#include "request.h"
#include "snapshot.h"

/* assert() vanishes under NDEBUG; a fuzzer check must not. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_NOW_MS     1718452800000LL /* 2024-06-15T12:00:00Z; gen_ingest_corpus.c too */
#define JOURNAL_RESET   (8u << 20)      /* start a new journal after this many bytes */
#define MODEL_SLOTS     4096            /* > 2 * the series limit */
#define DRY_SAMPLES_MAX 64              /* predict verdicts up to this batch size */
#define FIFO_CAP        4096            /* ACKs waiting, a power of two */
#define NO_CREATE       0xff

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The daemon's state and parts, as tallyd_impl.h's struct holds them. */
typedef struct fuzz_daemon {
    tallyd_config_t cfg; /* a shallow copy of a template */
    logger_t log;
    tallyd_stats_t stats;
    intern_t towns, metrics;
    engine_t engine;
    dedup_t dedup;
    ratelimit_t rl;
    journal_t journal;
    bool journal_open;
    ingest_t ingest;
    publish_t publish;
    snapshot_t snapshot;
    history_t history; /* in memory only, as before history_open() */
    recall_t recall;
    request_t request;
} fuzz_daemon_t;

/* The closed catalog: townships of Chengkou county, metrics of the Gaoguan
 * report (counters and gauges) and ratios over both kinds; display names
 * and labels (gaoguan's name is also a township's id, which wins). */
static const char closed_conf[] = "[windows]\n1h = 1h\n24h = 24h\nbuckets = 12\n"
                                  "[township gaoguan]\nname = 高观镇\n"
                                  "[township gecheng]\nname = 葛城街道\n[township 高观镇]\n"
                                  "[metric disputes.screened]\nkind = counter\n"
                                  "label = 排查矛盾纠纷\n"
                                  "[metric disputes.resolved]\nkind = counter\n"
                                  "[metric law_exam.takers]\nkind = counter\n"
                                  "[metric law_exam.passed]\nkind = counter\n"
                                  "[metric grid.zones]\nkind = gauge\n"
                                  "[metric grid.notice_boards]\nkind = gauge\n"
                                  "[ratio disputes.resolution_rate]\n"
                                  "numerator = disputes.resolved\n"
                                  "denominator = disputes.screened\nlabel = 矛盾纠纷化解率\n"
                                  "[ratio grid.boards_per_zone]\n"
                                  "numerator = grid.notice_boards\ndenominator = grid.zones\n";

/* Closed townships, open metrics: the ratio names its inputs freely. */
static const char towns_conf[] = "[windows]\n1h = 1h\nbuckets = 6\n"
                                 "[township gaoguan]\n[township gecheng]\n"
                                 "[ratio law_exam.pass_rate]\n"
                                 "numerator = law_exam.passed\ndenominator = law_exam.takers\n";

typedef struct mser { /* one series of the model */
    uint8_t kind, tlen, mlen;
    char town[PROTO_NAME_MAX]; /* tlen 0: the county */
    char metric[PROTO_NAME_MAX];
    int64_t total;    /* counter: sum; gauge: latest (county: sum of latest) */
    int64_t gauge_ms; /* gauge: event time of the latest value */
} mser_t;

typedef struct rdef {
    const char *name, *num, *den;
} rdef_t;

typedef struct applied { /* a (client id, seq) the model saw accepted */
    uint8_t id[PROTO_CLIENT_ID_LEN];
    uint64_t seq;
} applied_t;

typedef struct expect { /* an ACK that waits for the journal */
    uint64_t seq;
    uint8_t status;
    uint8_t rid_len;
    uint8_t rid[8];
} expect_t;

typedef struct reply { /* what came back during one request_handle() */
    uint32_t n;        /* replies, snapshots and RANGE chunks aside */
    proto_msg_t m;     /* the first, decoded */
    uint32_t items;    /* SNAPSHOT_ITEMs */
    uint32_t ends;     /* SNAPSHOT_ENDs */
    uint32_t end_count;
    uint32_t chunks;      /* RANGE messages */
    uint32_t range_next;  /* the index the next RANGE chunk starts at */
    uint32_t range_total; /* the first chunk's total */
} reply_t;

typedef struct job { /* a PERIOD answer recall sends from its idle handle */
    uint8_t rid[8], rid_len;
    uint64_t req_id;
    char column[PROTO_PERIOD_TEXT_MAX + 1]; /* the period's name, or "span" */
    uint32_t next;                          /* the index of the next item */
} job_t;

#define JOBS_CAP 32 /* > RECALL_PENDING */

static struct {
    bool ready;
    fuzz_daemon_t *d;
    uv_loop_t loop;
    char dir[64];
    int64_t now;
    tclock_t clock;
    tallyd_config_t tpl_closed, tpl_towns, tpl_open;

    mser_t *slot[MODEL_SLOTS];
    mser_t series[MODEL_SLOTS / 2];
    uint32_t nseries;
    rdef_t ratios[8];
    uint32_t nratios;
    applied_t *applied;
    size_t napplied, applied_cap;
    applied_t clients[128]; /* seq: the highest applied */
    uint32_t nclients;
    expect_t fifo[FIFO_CAP];
    uint32_t fifo_head, fifo_n;
    job_t jobs[JOBS_CAP]; /* PERIOD answers under way, oldest first */
    uint32_t jobs_head, jobs_n;

    bool verbose;
    struct { /* what the inputs exercised, printed at exit */
        uint64_t inputs, requests, accepted, duplicates, rejected, errors, released, snapshots,
            updates, journals, periods, period_items, ranges;
    } n;
    bool in_call;
    reply_t r;
    uint64_t req_id;    /* of the request being handled */
    proto_str_t prefix; /* of the SNAPSHOT_REQ being handled */
    const uint8_t *rid;
    size_t rid_len;
    uint64_t pub_seq; /* last update sequence seen */
    /* Accepted submissions not yet acknowledged: ingest applies them only
     * once the journal has them, so the tallies lag the model (which
     * counts them at once) until then. */
    uint32_t unapplied;
    proto_sample_t samples[PROTO_SAMPLES_MAX];
} g;

static int64_t fuzz_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

/* ---- set-up, as tallyd_start.c does it (its functions are static) ---- */

static void setup_engine(fuzz_daemon_t *d)
{
    engine_config_t ec;
    engine_config_from(&ec, &d->cfg);
    CHECK(engine_config_check(&ec, NULL, 0) == 0);
    CHECK(engine_init(&d->engine, &ec, &g.clock) == 0);
}

static void model_ratio(const char *id, const char *num, const char *den)
{
    CHECK(g.nratios < sizeof(g.ratios) / sizeof(g.ratios[0]));
    g.ratios[g.nratios++] = (rdef_t){id, num, den};
}

static void setup_tables_and_catalog(fuzz_daemon_t *d)
{
    const tallyd_config_t *c = &d->cfg;
    uint64_t metrics = (uint64_t)c->max_metrics + catalog_metric_names(c) + 1;
    CHECK(intern_init(&d->towns, (uint32_t)c->max_townships + 1) == 0);
    CHECK(intern_init(&d->metrics, (uint32_t)metrics) == 0);
    CHECK(dedup_init(&d->dedup, (uint32_t)c->max_clients) == 0);
    /* rate 0 (the default): the limiter reads the real monotonic clock, so
     * a limit would make verdicts depend on timing. */
    CHECK(ratelimit_init(&d->rl, c->rate, c->burst, d->towns.capacity) == 0);
    catalog_target_t ct = {&d->towns, &d->metrics, &d->engine, "fuzz"};
    char err[512];
    if (catalog_declare(&ct, c, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_ingest: %s\n", err);
        abort();
    }
    g.nratios = 0;
    for (size_t i = 0; i < c->nratios; i++)
        model_ratio(c->ratios[i].id, c->ratios[i].numerator, c->ratios[i].denominator);
}

/* ---- the sinks and the stop request tallyd_start.c would hand the parts ---- */

static int reply_sink(void *ctx, const void *const *bufs, const size_t *lens, int nparts);
static int pub_sink(void *ctx, const void *const *bufs, const size_t *lens, int nparts);
static void report_stats(void *ctx, request_stat_fn fn, void *fn_ctx);

/* ingest stops the daemon only when engine_apply() fails after
 * engine_check() passed, which only memory exhaustion may cause. */
static void on_stop(void *ctx, int exit_code)
{
    (void)ctx;
    fprintf(stderr, "stop(%d) requested: engine_apply failed after engine_check passed\n",
            exit_code);
    abort();
}

static int journal_append_cb(void *ctx, const void *rec, size_t len, uint64_t *pos)
{
    fuzz_daemon_t *d = ctx;
    return journal_append(&d->journal, rec, len, pos);
}

static const char *journal_error_cb(void *ctx)
{
    fuzz_daemon_t *d = ctx;
    return journal_errmsg(&d->journal);
}

/* ingest applied a record: the history takes it too, as in tallyd_start.c. */
static int on_applied(void *ctx, uint64_t pos, uint32_t town, int64_t time_ms,
                      const engine_sample_t *samples, uint32_t n)
{
    fuzz_daemon_t *d = ctx;
    return history_apply(&d->history, pos, town, time_ms, samples, n);
}

static void setup_parts(fuzz_daemon_t *d)
{
    const tallyd_config_t *c = &d->cfg;
    history_config_t hc = {.engine = &d->engine,
                           .towns = &d->towns,
                           .metrics = &d->metrics,
                           .clock = &g.clock,
                           .log = &d->log,
                           .days = HISTORY_DAYS_DEFAULT};
    CHECK(history_init(&d->history, &hc) == 0);
    ingest_config_t ic = {
        .engine = &d->engine,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .dedup = &d->dedup,
        .rl = &d->rl,
        .journal = {journal_append_cb, journal_error_cb, d},
        .reply = {reply_sink, d},
        .stop = on_stop,
        .stop_ctx = d,
        .stats = &d->stats,
        .log = &d->log,
        .clock = &g.clock,
        .secured = false,
        .limits = ingest_limits_from(c),
        .on_applied = on_applied,
        .applied_ctx = d,
    };
    CHECK(ingest_init(&d->ingest, &ic) == 0);
    CHECK(ingest_set_catalog(&d->ingest, c) == 0);
    journal_stats_t st;
    journal_stats(&d->journal, &st);
    ingest_set_position(&d->ingest, st.next_pos - 1);
    /* Timers an hour apart: updates go out only when settle() asks. */
    publish_config_t pc = {
        .loop = &g.loop,
        .engine = &d->engine,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .pub = {pub_sink, d},
        .stats = &d->stats,
        .log = &d->log,
        .clock = &g.clock,
        .interval_ms = 3600000,
        .heartbeat_ms = 3600000,
        .seq = 0,
    };
    CHECK(publish_init(&d->publish, &pc) == 0);
    /* Few series: every snapshot is sent whole within its request. */
    snapshot_config_t sc = {
        .loop = &g.loop,
        .engine = &d->engine,
        .publish = &d->publish,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .reply = {reply_sink, d},
        .stats = &d->stats,
        .log = &d->log,
        .limits = {.max_streams = 16, .timeout_ms = 30000},
    };
    CHECK(snapshot_init(&d->snapshot, &sc) == 0);
    /* Tight limits: few series in one PERIOD answer (TOO_LARGE). */
    recall_config_t rcl = {
        .loop = &g.loop,
        .engine = &d->engine,
        .history = &d->history,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .publish = &d->publish,
        .clock = &g.clock,
        .reply = {reply_sink, d},
        .max_items = d->cfg.max_series < 100 ? 4 : 0,
    };
    CHECK(recall_init(&d->recall, &rcl) == 0);
    request_config_t rc = {
        .ingest = &d->ingest,
        .publish = &d->publish,
        .snapshot = &d->snapshot,
        .engine = &d->engine,
        .towns = &d->towns,
        .keys = NULL,
        .secured = false,
        .pub_endpoint = "tcp://127.0.0.1:7412",
        .reply = {reply_sink, d},
        .counters = &d->stats,
        .log = &d->log,
        .limits = request_limits_from(c),
        .clock = &g.clock,
        .zone = c->timezone,
        .recall = &d->recall,
    };
    rc.stats = report_stats;
    rc.stats_ctx = d;
    CHECK(request_init(&d->request, &rc) == 0);
    CHECK(request_set_catalog(&d->request, c) == 0);
}

/* STATS, as tallyd_start.c reports it (the gauges are not checked). */
static void report_stats(void *ctx, request_stat_fn fn, void *fn_ctx)
{
    fuzz_daemon_t *d = ctx;
    stats_gauges_t gauges = {.series = engine_series_count(&d->engine)};
    stats_foreach(&d->stats, &gauges, fn, fn_ctx);
}

/* ---- the journal, shared by all inputs ---- */

static void on_durable(journal_t *j, uint64_t upto, void *ctx)
{
    (void)j;
    fuzz_daemon_t *d = ctx;
    ingest_on_durable(&d->ingest, upto);
}

static void journal_start(void)
{
    journal_opts_t jo = {.sync = JOURNAL_SYNC_NEVER, .on_durable = on_durable, .ctx = g.d};
    CHECK(journal_open(&g.d->journal, &g.loop, g.dir, &jo, 1, 0) == 0);
    g.d->journal_open = true;
    g.n.journals++;
}

static void journal_finish(void)
{
    CHECK(journal_close(&g.d->journal, NULL) == 0);
    g.d->journal_open = false;
    uv_run(&g.loop, UV_RUN_DEFAULT); /* until the journal's handle is closed */
    CHECK(journal_remove_before(g.dir, UINT64_MAX, NULL) == 0);
}

/* LeakSanitizer checks at exit, after this. */
static void fuzz_fini(void)
{
    fprintf(stderr,
            "fuzz_ingest: %" PRIu64 " inputs, %" PRIu64 " requests: %" PRIu64 " accepted, %" PRIu64
            " duplicates, %" PRIu64 " rejected, %" PRIu64 " ERROR replies, %" PRIu64
            " snapshots, %" PRIu64 " PERIOD answers (%" PRIu64 " items), %" PRIu64
            " RANGE answers; %" PRIu64 " ACKs released by the journal, %" PRIu64
            " updates published, %" PRIu64 " journals\n",
            g.n.inputs, g.n.requests, g.n.accepted, g.n.duplicates, g.n.rejected, g.n.errors,
            g.n.snapshots, g.n.periods, g.n.period_items, g.n.ranges, g.n.released, g.n.updates,
            g.n.journals);
    journal_finish();
    rmdir(g.dir);
    CHECK(uv_loop_close(&g.loop) == 0);
    config_free(&g.tpl_open);
    config_free(&g.tpl_closed);
    config_free(&g.tpl_towns);
    free(g.applied);
    free(g.d);
}

static void fuzz_init(void)
{
    char err[1024];
    g.d = calloc(1, sizeof(*g.d));
    CHECK(g.d != NULL);
    fuzz_daemon_t *d = g.d;
    CHECK(uv_loop_init(&g.loop) == 0);
    g.clock = (tclock_t){fuzz_clock, &g.now};
    log_init(&d->log, LOG_LEVEL_ERROR);
    /* An empty file: the built-in defaults, catalog and all. */
    CHECK(config_parse_text("", 0, "open.conf", &g.tpl_open, err, sizeof(err)) == 0);
    if (config_parse_text(closed_conf, strlen(closed_conf), "closed.conf", &g.tpl_closed, err,
                          sizeof(err)) != 0 ||
        config_parse_text(towns_conf, strlen(towns_conf), "towns.conf", &g.tpl_towns, err,
                          sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_ingest: %s\n", err);
        abort();
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(g.dir, sizeof(g.dir), "%s/fuzz_ingest.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    CHECK(mkdtemp(g.dir) != NULL);
    journal_start();
    const char *v = getenv("FUZZ_INGEST_VERBOSE");
    g.verbose = v != NULL && v[0] == '1';
    atexit(fuzz_fini);
    g.ready = true;
}

/* One input's daemon state, from configuration byte flags. */
static void state_begin(uint8_t flags)
{
    fuzz_daemon_t *d = g.d;
    switch (flags & 3) {
    case 0:
        d->cfg = g.tpl_open; /* shallow: the templates own the catalogs */
        break;
    case 2:
        d->cfg = g.tpl_towns;
        break;
    default:
        d->cfg = g.tpl_closed;
        break;
    }
    bool tight = flags & 4;
    d->cfg.max_series = tight ? 12 : 1000;
    d->cfg.max_clients = tight ? 3 : 100;
    d->cfg.max_townships = tight ? 4 : 200;
    d->cfg.max_metrics = tight ? 8 : 200;
    d->cfg.max_samples = tight ? 8 : PROTO_SAMPLES_DEFAULT;
    d->cfg.rate = 0;
    g.now = FUZZ_NOW_MS;
    memset(&d->stats, 0, sizeof(d->stats));
    d->stats.started_mono_ms = clock_mono_ms();
    g.pub_seq = 0;
    setup_engine(d);
    setup_tables_and_catalog(d);
    setup_parts(d);
    for (uint32_t i = 0; i < MODEL_SLOTS; i++)
        g.slot[i] = NULL;
    g.nseries = 0;
    CHECK(g.unapplied == 0 && g.jobs_n == 0);
    g.napplied = 0;
    g.nclients = 0;
}

static void state_end(void)
{
    fuzz_daemon_t *d = g.d;
    request_free(&d->request);
    snapshot_close(&d->snapshot, NULL);
    publish_close(&d->publish, NULL);
    recall_close(&d->recall, NULL);
    uv_run(&g.loop, UV_RUN_NOWAIT); /* the publisher's and recall's handles close */
    recall_free(&d->recall);
    history_free(&d->history);
    ingest_free(&d->ingest);
    engine_free(&d->engine);
    dedup_free(&d->dedup);
    ratelimit_free(&d->rl);
    intern_free(&d->towns);
    intern_free(&d->metrics);
    memset(&d->engine, 0, sizeof(d->engine));
    /* Keep the temporary directory small: a fresh journal now and then. */
    journal_stats_t st;
    journal_stats(&d->journal, &st);
    if (st.bytes_written > JOURNAL_RESET) {
        journal_finish();
        journal_start();
    }
}

/* ---- the model of the tallies ---- */

static bool str_eq(proto_str_t a, const char *p, size_t len)
{
    return a.len == len && (len == 0 || memcmp(a.ptr, p, len) == 0);
}

static proto_str_t county(void)
{
    return (proto_str_t){"", 0};
}

static uint32_t key_hash(proto_str_t town, proto_str_t metric)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < town.len; i++)
        h = (h ^ (uint8_t)town.ptr[i]) * 16777619u;
    h = (h ^ 0x2f) * 16777619u;
    for (uint32_t i = 0; i < metric.len; i++)
        h = (h ^ (uint8_t)metric.ptr[i]) * 16777619u;
    return h;
}

/* The model's series (town, metric); created with kind unless kind is
 * NO_CREATE (then NULL when absent). */
static mser_t *model_find(proto_str_t town, proto_str_t metric, uint8_t kind)
{
    CHECK(town.len <= PROTO_NAME_MAX && metric.len >= 1 && metric.len <= PROTO_NAME_MAX);
    uint32_t i = key_hash(town, metric) & (MODEL_SLOTS - 1);
    for (; g.slot[i] != NULL; i = (i + 1) & (MODEL_SLOTS - 1)) {
        mser_t *s = g.slot[i];
        if (str_eq(town, s->town, s->tlen) && str_eq(metric, s->metric, s->mlen))
            return s;
    }
    if (kind == NO_CREATE)
        return NULL;
    CHECK(g.nseries < MODEL_SLOTS / 2);
    mser_t *s = &g.series[g.nseries++];
    memset(s, 0, sizeof(*s));
    s->kind = kind;
    s->tlen = (uint8_t)town.len;
    s->mlen = (uint8_t)metric.len;
    if (town.len)
        memcpy(s->town, town.ptr, town.len);
    memcpy(s->metric, metric.ptr, metric.len);
    s->gauge_ms = INT64_MIN; /* no value yet */
    g.slot[i] = s;
    return s;
}

static proto_str_t ser_town(const mser_t *s)
{
    return (proto_str_t){s->town, s->tlen};
}

static proto_str_t ser_metric(const mser_t *s)
{
    return (proto_str_t){s->metric, s->mlen};
}

/* Kind of a metric name: as declared, counter when unknown. */
static uint8_t metric_kind(proto_str_t metric)
{
    int id = intern_find(&g.d->metrics, metric.ptr, metric.len);
    return id > 0 ? engine_metric_kind(&g.d->engine, (uint32_t)id) : PROTO_KIND_COUNTER;
}

/* The engine's series (town, metric) must be the model's. */
static void compare(proto_str_t town, proto_str_t metric)
{
    fuzz_daemon_t *d = g.d;
    const mser_t *s = model_find(town, metric, NO_CREATE);
    int mid = intern_find(&d->metrics, metric.ptr, metric.len);
    int tid = town.len ? intern_find(&d->towns, town.ptr, town.len) : 0;
    if (mid <= 0 || tid < 0 || engine_metric_kind(&d->engine, (uint32_t)mid) == PROTO_KIND_RATIO) {
        CHECK(s == NULL);
        return;
    }
    engine_values_t v;
    int rc = engine_read(&d->engine, (uint32_t)mid, (uint32_t)tid, &v);
    if (s == NULL) {
        CHECK(rc == TALLY_ENOTFOUND);
        return;
    }
    CHECK(rc == 0 && v.kind == s->kind);
    const engine_value_t *total = &v.col[v.ncols - 1];
    if (!(total->present && total->num == s->total)) {
        fprintf(stderr, "series %.*s/%.*s: engine total %" PRId64 ", model %" PRId64 "\n",
                (int)s->mlen, s->metric, (int)s->tlen, s->town, total->num, s->total);
        abort();
    }
}

static const rdef_t *find_ratio(proto_str_t name)
{
    for (uint32_t i = 0; i < g.nratios; i++)
        if (str_eq(name, g.ratios[i].name, strlen(g.ratios[i].name)))
            return &g.ratios[i];
    return NULL;
}

/* A ratio input as the engine reads it: a missing counter reads 0, a
 * missing gauge reads "no value". */
static bool input_value(const char *name, proto_str_t scope, int64_t *v, bool *exists)
{
    proto_str_t m = proto_str(name);
    const mser_t *s = model_find(scope, m, NO_CREATE);
    *exists = s != NULL;
    *v = s ? s->total : 0;
    return s != NULL || metric_kind(m) == PROTO_KIND_COUNTER;
}

/* A published or snapshot tally must carry the model's total (once every
 * accepted submission is applied). */
static void check_tally(const proto_tally_t *t)
{
    CHECK(t->nvalues == engine_columns(&g.d->engine));
    const proto_value_t *total = &t->values[t->nvalues - 1];
    CHECK(proto_str_eq(total->name, "total"));
    if (g.unapplied > 0)
        return;
    const rdef_t *r = find_ratio(t->metric);
    if (r != NULL) {
        int64_t nv, dv;
        bool nex, dex;
        bool np = input_value(r->num, t->scope, &nv, &nex);
        bool dp = input_value(r->den, t->scope, &dv, &dex);
        CHECK(t->kind == PROTO_KIND_RATIO && (nex || dex));
        bool present = np && dp && dv != 0;
        CHECK(total->present == present);
        CHECK(!present || (total->num == nv && total->den == dv));
        return;
    }
    const mser_t *s = model_find(t->scope, t->metric, NO_CREATE);
    CHECK(s != NULL && t->kind == s->kind);
    CHECK(total->present && total->num == s->total && total->den == 1);
    if (s->kind == PROTO_KIND_GAUGE)
        for (uint32_t i = 0; i + 1 < t->nvalues; i++)
            CHECK(!t->values[i].present);
}

static bool topic_has_prefix(proto_str_t metric, proto_str_t scope, proto_str_t prefix)
{
    char topic[PROTO_TOPIC_MAX];
    int n = proto_topic(topic, sizeof(topic), metric, scope);
    CHECK(n > 0);
    return (uint32_t)n >= prefix.len &&
           (prefix.len == 0 || memcmp(topic, prefix.ptr, prefix.len) == 0);
}

/* Tallies a snapshot with this prefix must hold: every series, and every
 * ratio scope where an input series exists. */
static uint32_t snapshot_count(proto_str_t prefix)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < g.nseries; i++) {
        const mser_t *s = &g.series[i];
        n += topic_has_prefix(ser_metric(s), ser_town(s), prefix);
        for (uint32_t k = 0; k < g.nratios; k++) {
            const rdef_t *r = &g.ratios[k];
            proto_str_t name = proto_str(r->name);
            if (str_eq(ser_metric(s), r->num, strlen(r->num)))
                n += topic_has_prefix(name, ser_town(s), prefix);
            else if (str_eq(ser_metric(s), r->den, strlen(r->den)) &&
                     !model_find(ser_town(s), proto_str(r->num), NO_CREATE))
                n += topic_has_prefix(name, ser_town(s), prefix);
        }
    }
    return n;
}

/* The townships of the model's series, each once. */
static uint32_t model_towns(void)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < g.nseries; i++) {
        proto_str_t t = ser_town(&g.series[i]);
        bool seen = t.len == 0; /* the county is no township */
        for (uint32_t j = 0; j < i && !seen; j++)
            seen = str_eq(ser_town(&g.series[j]), t.ptr, t.len);
        n += !seen;
    }
    return n;
}

/* ---- the model of de-duplication ---- */

enum { V_NEW, V_DUP, V_STALE, V_CLIENTLIMIT };

static applied_t *model_client(const uint8_t id[PROTO_CLIENT_ID_LEN])
{
    for (uint32_t i = 0; i < g.nclients; i++)
        if (memcmp(g.clients[i].id, id, PROTO_CLIENT_ID_LEN) == 0)
            return &g.clients[i];
    return NULL;
}

static int model_dedup(const proto_submit_t *s)
{
    const applied_t *c = model_client(s->client_id);
    if (c == NULL)
        return g.nclients >= (uint64_t)g.d->cfg.max_clients ? V_CLIENTLIMIT : V_NEW;
    if (s->seq > c->seq)
        return V_NEW;
    if (c->seq - s->seq >= DEDUP_WINDOW)
        return V_STALE;
    for (size_t i = 0; i < g.napplied; i++)
        if (g.applied[i].seq == s->seq &&
            memcmp(g.applied[i].id, s->client_id, PROTO_CLIENT_ID_LEN) == 0)
            return V_DUP;
    return V_NEW;
}

static void model_mark(const proto_submit_t *s)
{
    applied_t *c = model_client(s->client_id);
    if (c == NULL) {
        CHECK(g.nclients < sizeof(g.clients) / sizeof(g.clients[0]));
        c = &g.clients[g.nclients++];
        memcpy(c->id, s->client_id, PROTO_CLIENT_ID_LEN);
        c->seq = 0;
    }
    if (s->seq > c->seq)
        c->seq = s->seq;
    if (g.napplied == g.applied_cap) {
        g.applied_cap = g.applied_cap ? 2 * g.applied_cap : 256;
        g.applied = realloc(g.applied, g.applied_cap * sizeof(*g.applied));
        CHECK(g.applied != NULL);
    }
    memcpy(g.applied[g.napplied].id, s->client_id, PROTO_CLIENT_ID_LEN);
    g.applied[g.napplied++].seq = s->seq;
}

/* ---- predicting ingest's verdict ---- */

#define UNKNOWN 1 /* the batch is too large to predict */

static bool same_metric_before(const proto_submit_t *s, uint32_t i)
{
    for (uint32_t j = 0; j < i; j++)
        if (str_eq(s->samples[j].metric, s->samples[i].metric.ptr, s->samples[i].metric.len))
            return true;
    return false;
}

/* Is name, not a known id, a declared township's display name (township)
 * or a metric's or ratio's label?  *ratio says which of the last two. */
static bool is_label(proto_str_t name, bool township, bool *ratio)
{
    const tallyd_config_t *c = &g.d->cfg;
    *ratio = false;
    for (size_t i = 0; township && i < c->ntownships; i++)
        if (c->townships[i].name[0] &&
            str_eq(name, c->townships[i].name, strlen(c->townships[i].name)))
            return true;
    for (size_t i = 0; !township && i < c->nmetrics; i++)
        if (c->metrics[i].label[0] &&
            str_eq(name, c->metrics[i].label, strlen(c->metrics[i].label)))
            return true;
    for (size_t i = 0; !township && i < c->nratios; i++)
        if (c->ratios[i].label[0] && str_eq(name, c->ratios[i].label, strlen(c->ratios[i].label)))
            return *ratio = true;
    return false;
}

/* The code ingest must reject a new submission with before the engine
 * sees it (catalog, limits on names, clock), or 0, or UNKNOWN. */
static int predict_precheck(const proto_submit_t *s)
{
    fuzz_daemon_t *d = g.d;
    const tallyd_config_t *c = &d->cfg;
    bool ratio;
    if (intern_find(&d->towns, s->township.ptr, s->township.len) <= 0) {
        if (is_label(s->township, true, &ratio))
            return TALLY_EUNKTOWN; /* a display name where the id belongs */
        if (c->catalog_closed_townships)
            return TALLY_EUNKTOWN;
        if (intern_count(&d->towns) >= (uint64_t)c->max_townships)
            return TALLY_ESERIESLIMIT;
    }
    if (s->time_ms > g.now + c->skew_ms)
        return TALLY_EFUTURE;
    if (s->time_ms < g.now - c->max_age_ms)
        return TALLY_ETOOOLD;
    if (s->nsamples > DRY_SAMPLES_MAX)
        return UNKNOWN;
    uint64_t names = intern_count(&d->metrics);
    for (uint32_t i = 0; i < s->nsamples; i++) {
        proto_str_t m = s->samples[i].metric;
        if (intern_find(&d->metrics, m.ptr, m.len) > 0) {
            if (metric_kind(m) == PROTO_KIND_RATIO)
                return TALLY_EKIND;
        } else if (!same_metric_before(s, i)) { /* else added by its first sample */
            if (is_label(m, false, &ratio))
                return ratio ? TALLY_EKIND : TALLY_EUNKMETRIC;
            if (c->catalog_closed_metrics)
                return TALLY_EUNKMETRIC;
            if (names >= (uint64_t)c->max_metrics + catalog_metric_names(c))
                return TALLY_ESERIESLIMIT;
            names++;
        }
        /* The sample's range: the declared one, else an undeclared
         * counter's 0..CONFIG_SAMPLE_LIMIT. */
        const config_metric_t *cm = config_find_metric(c, m.ptr, m.len);
        int64_t v = s->samples[i].value;
        if (v < (cm ? cm->min : 0) || v > (cm ? cm->max : CONFIG_SAMPLE_LIMIT))
            return TALLY_ERANGE;
    }
    return 0;
}

/* What the engine must do with a batch that passed the prechecks: the
 * series it adds, and whether a total would leave int64 (sample by sample,
 * as engine_apply() checks; it also checks window and period sums, so an
 * overflow here is sufficient for a rejection, not necessary). */
static void predict_engine(const proto_submit_t *s, uint32_t *nnew, bool *overflow, bool *gauges)
{
    typedef struct {
        __int128 town, cty;
        int64_t ms;
    } acc_t;
    acc_t acc[DRY_SAMPLES_MAX];
    *nnew = 0;
    *overflow = false;
    *gauges = true;
    for (uint32_t i = 0; i < s->nsamples; i++) {
        proto_str_t m = s->samples[i].metric;
        uint32_t f = 0;
        while (!str_eq(s->samples[f].metric, m.ptr, m.len))
            f++;
        const mser_t *ts = model_find(s->township, m, NO_CREATE);
        const mser_t *cs = model_find(county(), m, NO_CREATE);
        if (f == i) {
            *nnew += (ts == NULL) + (cs == NULL);
            acc[f] = (acc_t){ts ? ts->total : 0, cs ? cs->total : 0, ts ? ts->gauge_ms : INT64_MIN};
        }
        int64_t v = s->samples[i].value;
        if (metric_kind(m) == PROTO_KIND_COUNTER) {
            *gauges = false;
            acc[f].town += v;
            acc[f].cty += v;
        } else if (s->time_ms >= acc[f].ms) {
            acc[f].cty += (__int128)v - acc[f].town;
            acc[f].town = v;
            acc[f].ms = s->time_ms;
        }
        if (acc[f].town < INT64_MIN || acc[f].town > INT64_MAX || acc[f].cty < INT64_MIN ||
            acc[f].cty > INT64_MAX)
            *overflow = true;
    }
}

/* Apply an accepted batch to the model, as engine.h says. */
static void model_apply(const proto_submit_t *s)
{
    for (uint32_t i = 0; i < s->nsamples; i++) {
        proto_str_t m = s->samples[i].metric;
        uint8_t kind = metric_kind(m);
        mser_t *ts = model_find(s->township, m, kind);
        mser_t *cs = model_find(county(), m, kind);
        int64_t v = s->samples[i].value;
        if (kind == PROTO_KIND_COUNTER) {
            CHECK(!__builtin_add_overflow(ts->total, v, &ts->total));
            CHECK(!__builtin_add_overflow(cs->total, v, &cs->total));
        } else if (s->time_ms >= ts->gauge_ms) {
            __int128 c = (__int128)cs->total - ts->total + v;
            CHECK(c >= INT64_MIN && c <= INT64_MAX);
            cs->total = (int64_t)c;
            ts->total = v;
            ts->gauge_ms = s->time_ms;
        }
    }
}

/* ---- the sinks: replies, updates and snapshots ---- */

static void check_rid(const void *rid, size_t rid_len, const uint8_t *want, size_t want_len)
{
    CHECK(rid_len == want_len && memcmp(rid, want, rid_len) == 0);
}

static void check_text(proto_str_t field, proto_str_t message, bool need_message)
{
    CHECK(proto_utf8_valid(field.ptr, field.len) && proto_utf8_valid(message.ptr, message.len));
    CHECK(!need_message || message.len > 0);
}

/* A tally of a PERIOD answer: one column, named column, of a series the
 * model has (recall answers from the engine's series, which the model
 * holds from the moment they are accepted). */
static void check_period_tally(const proto_tally_t *t, const char *column)
{
    CHECK(t->nvalues == 1 && proto_str_eq(t->values[0].name, column));
    CHECK(!t->values[0].present || t->values[0].den != 0);
    if (find_ratio(t->metric) != NULL) {
        CHECK(t->kind == PROTO_KIND_RATIO);
        return;
    }
    const mser_t *s = model_find(t->scope, t->metric, NO_CREATE);
    CHECK(s != NULL && t->kind == s->kind);
    CHECK(s->kind != PROTO_KIND_COUNTER || t->values[0].den == 1);
}

/* An item of a PERIOD answer under way, sent from recall's idle handle:
 * the oldest answer's next item, to its peer. */
static void check_period_item(const void *rid, size_t rid_len, const proto_msg_t *m)
{
    CHECK(g.jobs_n > 0);
    job_t *j = &g.jobs[g.jobs_head];
    const __typeof__(m->u.period) *a = &m->u.period;
    check_rid(rid, rid_len, j->rid, j->rid_len);
    CHECK(a->req_id == j->req_id && a->index == j->next && a->index < a->count && a->has_tally);
    check_period_tally(&a->tally, j->column);
    g.n.period_items++;
    if (++j->next == a->count) {
        g.jobs_head = (g.jobs_head + 1) % JOBS_CAP;
        g.jobs_n--;
    }
}

/* A chunk of a RANGE answer, sent within the request: consecutive, the
 * request's series, a period name for every point. */
static void check_range(const void *rid, size_t rid_len, const proto_msg_t *m)
{
    const __typeof__(m->u.range) *a = &m->u.range;
    CHECK(g.in_call);
    check_rid(rid, rid_len, g.rid, g.rid_len);
    CHECK(a->req_id == g.req_id && a->npoints >= 1 && a->npoints <= PROTO_RANGE_CHUNK);
    if (g.r.chunks++ == 0)
        g.r.range_total = a->total;
    CHECK(a->first == g.r.range_next && a->total == g.r.range_total);
    CHECK(a->npoints <= a->total - a->first);
    g.r.range_next += a->npoints;
    for (uint32_t i = 0; i < a->npoints; i++) {
        calperiod_t p;
        CHECK(calperiod_parse(a->points[i].name.ptr, a->points[i].name.len, &p) == 0);
        CHECK(!a->points[i].present || a->points[i].den != 0);
    }
}

static int any_series(void *ctx, const engine_item_t *item)
{
    (void)ctx;
    return item->sid != ENGINE_NONE;
}

/* A TOWNSHIPS page: townships that have series, each a name the daemon
 * knows, a page within its bounds. */
static void check_townships(const proto_msg_t *m)
{
    fuzz_daemon_t *d = g.d;
    CHECK(m->u.townships.n <= REQUEST_TOWNSHIPS_PAGE);
    CHECK(m->u.townships.next <= intern_count(&d->towns));
    proto_townships_iter_t it;
    proto_str_t name;
    uint32_t n = 0;
    proto_townships_iter(&it, m);
    while (proto_townships_next(&it, &name)) {
        int town = intern_find(&d->towns, name.ptr, name.len);
        CHECK(town > 0);
        CHECK(engine_foreach_town(&d->engine, (uint32_t)town, 1, intern_count(&d->metrics),
                                  any_series, NULL) != 0);
        n++;
    }
    CHECK(n == m->u.townships.n);
}

/* A reply: an ACK, ERROR, WELCOME, PONG, STATS, CLOCK, CATALOG,
 * TOWNSHIPS, PERIOD or RANGE from ingest, request or recall. */
static void check_reply(const void *rid, size_t rid_len, const proto_msg_t *m)
{
    if (m->type == PROTO_RANGE) {
        check_range(rid, rid_len, m);
        return;
    }
    if (m->type == PROTO_PERIOD && !g.in_call) {
        check_period_item(rid, rid_len, m);
        return;
    }
    if (m->type == PROTO_ACK) {
        const proto_ack_t *a = &m->u.ack;
        bool rejected = a->status == PROTO_ACK_REJECTED;
        CHECK(a->status <= PROTO_ACK_REJECTED);
        CHECK(rejected ? (a->code >= 1 && a->code <= (uint32_t)-TALLY_EWIRE_LAST)
                       : (a->code == 0 && a->sample == -1));
        check_text(a->field, a->message, rejected);
    } else if (m->type == PROTO_ERROR) {
        CHECK(m->u.error.code >= 1 && m->u.error.code <= (uint32_t)-TALLY_EWIRE_LAST);
        check_text(m->u.error.field, m->u.error.message, true);
    } else if (m->type == PROTO_TOWNSHIPS) {
        check_townships(m);
    } else if (m->type == PROTO_PERIOD) {
        /* Within the request only the answer that no series matches. */
        CHECK(m->u.period.count == 0 && m->u.period.index == 0 && !m->u.period.has_tally);
    } else {
        CHECK(m->type == PROTO_WELCOME || m->type == PROTO_PONG || m->type == PROTO_STATS ||
              m->type == PROTO_CLOCK || m->type == PROTO_CATALOG);
    }
    if (g.in_call) {
        check_rid(rid, rid_len, g.rid, g.rid_len);
        if (g.r.n++ == 0)
            g.r.m = *m; /* its strings point into the sender's buffer, unchanged until its next
                           reply */
        return;
    }
    /* Outside request_handle() only the ACK queue replies, in its order
     * (and recall, above). */
    CHECK(m->type == PROTO_ACK && g.fifo_n > 0);
    const expect_t *e = &g.fifo[g.fifo_head];
    CHECK(m->u.ack.seq == e->seq && m->u.ack.status == e->status);
    check_rid(rid, rid_len, e->rid, e->rid_len);
    if (e->status == PROTO_ACK_ACCEPTED) {
        CHECK(g.unapplied > 0);
        g.unapplied--;
    }
    g.fifo_head = (g.fifo_head + 1) & (FIFO_CAP - 1);
    g.fifo_n--;
    g.n.released++;
}

/* A snapshot message, streamed by publish to the requester. */
static void check_snapshot(const void *rid, size_t rid_len, const proto_msg_t *m)
{
    fuzz_daemon_t *d = g.d;
    CHECK(g.in_call);
    check_rid(rid, rid_len, g.rid, g.rid_len);
    if (m->type == PROTO_SNAPSHOT_ITEM) {
        const proto_tally_t *t = &m->u.snapshot_item.tally;
        CHECK(g.r.ends == 0 && m->u.snapshot_item.req_id == g.req_id);
        CHECK(t->seq == publish_seq(&d->publish));
        CHECK(topic_has_prefix(t->metric, t->scope, g.prefix));
        check_tally(t);
        g.r.items++;
    } else {
        CHECK(m->type == PROTO_SNAPSHOT_END && m->u.snapshot_end.req_id == g.req_id);
        CHECK(m->u.snapshot_end.seq == publish_seq(&d->publish));
        CHECK(m->u.snapshot_end.stream_id == publish_stream_id(&d->publish));
        g.r.ends++;
        g.r.end_count = m->u.snapshot_end.count;
    }
}

/* The request socket's sink: routing id, body. */
static int reply_sink(void *ctx, const void *const *bufs, const size_t *lens, int nparts)
{
    static proto_msg_t m;
    proto_error_t err;
    CHECK(ctx == g.d && nparts == 2);
    if (proto_decode(bufs[1], lens[1], &m, NULL, 0, &err) != 0) {
        fprintf(stderr, "a reply does not decode: %s\n", err.message);
        abort();
    }
    if (m.type == PROTO_SNAPSHOT_ITEM || m.type == PROTO_SNAPSHOT_END)
        check_snapshot(bufs[0], lens[0], &m);
    else
        check_reply(bufs[0], lens[0], &m);
    return 0;
}

/* The publish socket's sink: topic, update. */
static int pub_sink(void *ctx, const void *const *bufs, const size_t *lens, int nparts)
{
    static proto_msg_t m;
    fuzz_daemon_t *d = ctx;
    CHECK(d == g.d && nparts == 2);
    CHECK(proto_decode(bufs[1], lens[1], &m, NULL, 0, NULL) == 0);
    const proto_tally_t *t = &m.u.update.tally;
    char topic[PROTO_TOPIC_MAX];
    CHECK(m.type == PROTO_UPDATE && m.u.update.stream_id == publish_stream_id(&d->publish));
    CHECK(t->seq == ++g.pub_seq);
    g.n.updates++;
    int n = proto_topic(topic, sizeof(topic), t->metric, t->scope);
    CHECK(n > 0 && (size_t)n == lens[0] && memcmp(topic, bufs[0], lens[0]) == 0);
    check_tally(t);
    return 0;
}

/* ---- driving request_handle ---- */

static void expect_ack_later(uint64_t seq, uint8_t status)
{
    CHECK(g.fifo_n < FIFO_CAP);
    expect_t *e = &g.fifo[(g.fifo_head + g.fifo_n++) & (FIFO_CAP - 1)];
    e->seq = seq;
    e->status = status;
    e->rid_len = (uint8_t)g.rid_len;
    memcpy(e->rid, g.rid, g.rid_len);
}

static void check_one(uint32_t type)
{
    if (g.r.n != 1 || g.r.m.type != type) {
        fprintf(stderr, "expected one reply of type %u, got %u (first of type %u)\n", type, g.r.n,
                g.r.n ? g.r.m.type : 0);
        abort();
    }
}

static void check_rejected(uint64_t seq, int code)
{
    check_one(PROTO_ACK);
    const proto_ack_t *a = &g.r.m.u.ack;
    CHECK(a->seq == seq && a->status == PROTO_ACK_REJECTED);
    if (code != 0 && a->code != (uint32_t)-code) {
        fprintf(stderr, "seq %" PRIu64 ": rejected with %s, expected %s\n", seq,
                tally_errname(-(int)a->code), tally_errname(code));
        abort();
    }
}

/* The answer to a resend of s, applied before: DUPLICATE, now or once
 * the journal is durable, nothing journaled. */
static void check_duplicate(const proto_submit_t *s, uint64_t last_pos, uint32_t queued)
{
    CHECK(ingest_last_pos(&g.d->ingest) == last_pos);
    if (g.r.n == 0) {
        expect_ack_later(s->seq, PROTO_ACK_DUPLICATE);
    } else {
        check_one(PROTO_ACK);
        CHECK(queued == 0 && g.r.m.u.ack.seq == s->seq);
        CHECK(g.r.m.u.ack.status == PROTO_ACK_DUPLICATE);
    }
}

/* Check the verdict on a decoded SUBMIT, s, against the models. */
static void after_submit(const proto_submit_t *s, const tallyd_stats_t *b, uint64_t last_pos,
                         uint32_t queued)
{
    fuzz_daemon_t *d = g.d;
    const tallyd_stats_t *a = &d->stats;
    uint64_t acc = a->submissions_accepted - b->submissions_accepted;
    uint64_t dup = a->duplicates - b->duplicates;
    uint64_t rej = a->rejected - b->rejected;
    CHECK(acc + dup + rej == 1);
    int verdict = model_dedup(s);
    if (verdict == V_DUP) {
        CHECK(dup == 1);
        check_duplicate(s, last_pos, queued);
        return;
    }
    CHECK(dup == 0);
    if (verdict != V_NEW) {
        check_rejected(s->seq, verdict == V_STALE ? TALLY_ESTALESEQ : TALLY_ECLIENTLIMIT);
        return;
    }
    int pre = predict_precheck(s);
    uint32_t nnew = 0;
    bool overflow = false, gauges = false;
    if (pre == 0)
        predict_engine(s, &nnew, &overflow, &gauges);
    bool over_limit = g.nseries + nnew > (uint64_t)d->cfg.max_series;
    if (rej) {
        CHECK(ingest_last_pos(&d->ingest) == last_pos);
        check_rejected(s->seq, pre == UNKNOWN ? 0 : pre);
        uint32_t code = g.r.m.u.ack.code;
        if (pre == 0 && code == (uint32_t)-TALLY_EBUSY) {
            /* Room kept for submissions waiting for the journal. */
            CHECK(g.unapplied > 0);
        } else if (pre == 0) {
            CHECK(code == (uint32_t)-TALLY_EOVERFLOW || code == (uint32_t)-TALLY_ESERIESLIMIT);
            CHECK(overflow || over_limit || !gauges);
            int32_t bad = g.r.m.u.ack.sample;
            CHECK(bad >= 0 && (uint32_t)bad < s->nsamples);
        }
        return;
    }
    if (pre != 0 && pre != UNKNOWN) {
        fprintf(stderr, "seq %" PRIu64 " accepted, expected %s\n", s->seq, tally_errname(pre));
        abort();
    }
    CHECK(!overflow && !over_limit);
    CHECK(g.r.n == 0 && ingest_last_pos(&d->ingest) == last_pos + 1);
    CHECK(a->samples_accepted - b->samples_accepted == s->nsamples);
    expect_ack_later(s->seq, PROTO_ACK_ACCEPTED);
    g.unapplied++;
    model_mark(s);
    model_apply(s);
}

/* A history request refused: one ERROR, with one of recall's codes. */
static void check_recall_error(const proto_msg_t *m)
{
    static const int codes[] = {TALLY_EBADPERIOD, TALLY_EEXPIRED,  TALLY_EUNKTOWN,
                                TALLY_EUNKMETRIC, TALLY_ETOOLARGE, TALLY_EBUSY};
    check_one(PROTO_ERROR);
    CHECK(g.r.m.u.error.req_id == proto_req_id(m));
    bool known = false;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        known |= g.r.m.u.error.code == (uint32_t)-codes[i];
    if (!known) {
        fprintf(stderr, "a history request refused with %s\n",
                tally_errname(-(int)g.r.m.u.error.code));
        abort();
    }
}

static void after_request(const proto_msg_t *m)
{
    fuzz_daemon_t *d = g.d;
    switch (m->type) {
    case PROTO_HELLO:
        check_one(PROTO_WELCOME);
        CHECK(g.r.m.u.welcome.req_id == m->u.hello.req_id);
        CHECK(g.r.m.u.welcome.ncolumns == engine_columns(&d->engine));
        CHECK(g.r.m.u.welcome.max_samples == d->cfg.max_samples);
        break;
    case PROTO_PING:
        check_one(PROTO_PONG);
        CHECK(g.r.m.u.pong.req_id == m->u.ping.req_id);
        CHECK(g.r.m.u.pong.time_ms == m->u.ping.time_ms &&
              g.r.m.u.pong.seq == publish_seq(&d->publish));
        break;
    case PROTO_STATS_REQ:
        check_one(PROTO_STATS);
        CHECK(g.r.m.u.stats.req_id == m->u.stats_req.req_id && g.r.m.u.stats.n > 0);
        CHECK(proto_str_eq(g.r.m.u.stats.entries[0].name, "tallyd_submissions_accepted_total"));
        CHECK(g.r.m.u.stats.entries[0].value == (int64_t)d->stats.submissions_accepted);
        break;
    case PROTO_SNAPSHOT_REQ:
        CHECK(g.r.n == 0 && g.r.ends == 1 && g.r.items == g.r.end_count);
        if (g.unapplied == 0 && g.r.items != snapshot_count(m->u.snapshot_req.prefix)) {
            fprintf(stderr, "snapshot of '%.*s': %u items, the model has %u\n",
                    (int)m->u.snapshot_req.prefix.len, m->u.snapshot_req.prefix.ptr, g.r.items,
                    snapshot_count(m->u.snapshot_req.prefix));
            abort();
        }
        break;
    case PROTO_CLOCK_REQ:
        check_one(PROTO_CLOCK);
        CHECK(g.r.m.u.clock.req_id == m->u.clock_req.req_id && g.r.m.u.clock.now_ms == g.now);
        CHECK(proto_str_eq(g.r.m.u.clock.zone, d->cfg.timezone));
        break;
    case PROTO_TOWNSHIPS_REQ:
        check_one(PROTO_TOWNSHIPS);
        CHECK(g.r.m.u.townships.req_id == m->u.townships_req.req_id);
        CHECK(g.r.m.u.townships.next == 0 || g.r.m.u.townships.next > m->u.townships_req.from);
        /* The whole list in one page: the model's townships. */
        if (g.unapplied == 0 && m->u.townships_req.from == 0 && g.r.m.u.townships.next == 0 &&
            g.r.m.u.townships.n != model_towns()) {
            fprintf(stderr, "township list: %u names, the model has %u townships\n",
                    g.r.m.u.townships.n, model_towns());
            abort();
        }
        break;
    case PROTO_CATALOG_REQ:
        check_one(PROTO_CATALOG);
        CHECK(g.r.m.u.catalog.req_id == m->u.catalog_req.req_id);
        CHECK(g.r.m.u.catalog.townships_total == d->cfg.ntownships);
        break;
    case PROTO_PERIOD_REQ:
    case PROTO_SPAN_REQ:
        if (g.r.n == 0) { /* under way: its items come from the loop */
            CHECK(g.jobs_n < JOBS_CAP);
            job_t *j = &g.jobs[(g.jobs_head + g.jobs_n++) % JOBS_CAP];
            memset(j, 0, sizeof(*j));
            memcpy(j->rid, g.rid, g.rid_len);
            j->rid_len = (uint8_t)g.rid_len;
            j->req_id = proto_req_id(m);
            calperiod_t p;
            if (m->type == PROTO_SPAN_REQ)
                snprintf(j->column, sizeof(j->column), "span");
            else
                CHECK(calperiod_parse(m->u.period_req.period.ptr, m->u.period_req.period.len, &p) ==
                          0 &&
                      calperiod_format(p, j->column, sizeof(j->column)) > 0);
            g.n.periods++;
            break;
        }
        if (g.r.m.type == PROTO_PERIOD) {
            check_one(PROTO_PERIOD);
            CHECK(g.r.m.u.period.req_id == proto_req_id(m));
            g.n.periods++;
            break;
        }
        check_recall_error(m);
        break;
    case PROTO_RANGE_REQ:
        if (g.r.n == 0) {
            CHECK(g.r.chunks > 0 && g.r.range_next == g.r.range_total);
            g.n.ranges++;
            break;
        }
        CHECK(g.r.chunks == 0);
        check_recall_error(m);
        break;
    default:
        check_one(PROTO_ERROR);
        CHECK(g.r.m.u.error.code == (uint32_t)-TALLY_ETYPE);
        CHECK(g.r.m.u.error.req_id == proto_req_id(m));
        break;
    }
}

/* FUZZ_INGEST_VERBOSE=1: one line per request, for reading a reproducer. */
static void trace(int nparts, int drc, const proto_msg_t *m)
{
    fprintf(stderr, "request: %d frames, type %u, decode %s", nparts, m->type,
            drc ? tally_errname(drc) : "ok");
    if (drc == 0 && m->type == PROTO_SUBMIT)
        fprintf(stderr, ", seq %" PRIu64 " '%.*s' %u samples", m->u.submit.seq,
                (int)m->u.submit.township.len, m->u.submit.township.ptr, m->u.submit.nsamples);
    fprintf(stderr, " -> %u replies", g.r.n);
    if (g.r.n && g.r.m.type == PROTO_ACK)
        fprintf(stderr, ", ACK status %u %s: %.*s", g.r.m.u.ack.status,
                tally_errname(-(int)g.r.m.u.ack.code), (int)g.r.m.u.ack.message.len,
                g.r.m.u.ack.message.ptr);
    else if (g.r.n)
        fprintf(stderr, ", type %u", g.r.m.type);
    if (g.r.ends)
        fprintf(stderr, ", snapshot of %u items", g.r.items);
    fprintf(stderr, "\n");
}

static void handle_request(int nparts, uint8_t peer, const uint8_t *body, size_t len)
{
    fuzz_daemon_t *d = g.d;
    uint8_t rid[8];
    size_t rid_len = 1u + peer % 8u;
    for (size_t i = 0; i < rid_len; i++)
        rid[i] = (uint8_t)(0xA0 + peer * 8 + i);

    /* Decode it as request.c will, for the expectations. */
    proto_msg_t m;
    proto_error_t err;
    int drc = proto_decode(body, len, &m, g.samples, (uint32_t)d->cfg.max_samples, &err);
    tallyd_stats_t before = d->stats;
    uint64_t last_pos = ingest_last_pos(&d->ingest);
    uint32_t queued = ingest_waiting(&d->ingest);
    uint32_t nseries = g.nseries;

    memset(&g.r, 0, sizeof(g.r));
    g.rid = rid;
    g.rid_len = rid_len;
    g.req_id = drc == 0 ? proto_req_id(&m) : 0;
    g.prefix = drc == 0 && m.type == PROTO_SNAPSHOT_REQ ? m.u.snapshot_req.prefix : county();
    g.in_call = true;
    request_handle(&d->request, rid, rid_len, nparts - 1, nparts > 1 ? body : NULL,
                   nparts > 1 ? len : 0, NULL);
    g.in_call = false;

    if (g.verbose)
        trace(nparts, drc, &m);
    g.n.requests++;
    g.n.accepted += d->stats.submissions_accepted - before.submissions_accepted;
    g.n.duplicates += d->stats.duplicates - before.duplicates;
    g.n.rejected += d->stats.rejected - before.rejected;
    g.n.errors += g.r.n && g.r.m.type == PROTO_ERROR;
    g.n.snapshots += g.r.ends;
    if (nparts != 2) {
        check_one(PROTO_ERROR);
        CHECK(g.r.m.u.error.code == (uint32_t)-TALLY_EMALFORMED && g.r.m.u.error.req_id == 0);
    } else if (drc != 0 && m.type == PROTO_SUBMIT && m.u.submit.seq != 0) {
        /* De-duplication before the refusal (PROTOCOL.md 11.2): a resend
         * of what was applied, whatever is wrong further on, is a
         * duplicate; one below the window is stale. */
        int verdict = model_dedup(&m.u.submit);
        if (verdict == V_DUP)
            check_duplicate(&m.u.submit, last_pos, queued);
        else
            check_rejected(m.u.submit.seq, verdict == V_STALE ? TALLY_ESTALESEQ : drc);
    } else if (drc != 0 && proto_type_name(m.type) != NULL && !proto_type_is_request(m.type)) {
        /* A type the daemon sends: UNKNOWN_TYPE, whatever else is wrong
         * with it (PROTOCOL.md 11.3). */
        check_one(PROTO_ERROR);
        CHECK(g.r.m.u.error.code == (uint32_t)-TALLY_ETYPE);
        CHECK(g.r.m.u.error.req_id == proto_req_id(&m));
    } else if (drc != 0) {
        check_one(PROTO_ERROR);
        CHECK(g.r.m.u.error.code == (uint32_t)-drc && g.r.m.u.error.req_id == proto_req_id(&m));
    } else if (m.type == PROTO_SUBMIT) {
        after_submit(&m.u.submit, &before, last_pos, queued);
    } else {
        after_request(&m);
    }
    if (nparts != 2 || drc != 0 || m.type != PROTO_SUBMIT)
        CHECK(ingest_last_pos(&d->ingest) == last_pos && g.nseries == nseries);
    if (drc == 0 && m.type == PROTO_SUBMIT && g.unapplied == 0)
        for (uint32_t i = 0; i < m.u.submit.nsamples; i++) {
            compare(m.u.submit.township, m.u.submit.samples[i].metric);
            compare(county(), m.u.submit.samples[i].metric);
        }
}

/* After every step: what was published, the queue and the series count
 * agree with the models. */
static void settle(void)
{
    fuzz_daemon_t *d = g.d;
    publish_changes(&d->publish);
    CHECK(publish_seq(&d->publish) == g.pub_seq);
    CHECK(ingest_waiting(&d->ingest) == g.fifo_n);
    CHECK(g.unapplied > 0 || engine_series_count(&d->engine) == g.nseries);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!g.ready)
        fuzz_init();
    state_begin(data[0]);
    g.n.inputs++;
    size_t off = 1;
    while (size - off >= 3) {
        uint8_t op = data[off];
        size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
        off += 3;
        if (len > size - off)
            len = size - off;
        const uint8_t *body = data + off;
        off += len;
        switch (op % 12) {
        case 8:
            handle_request(1, op % 8, body, len);
            break;
        case 9:
            handle_request(3, op % 8, body, len);
            break;
        case 10:
            uv_run(&g.loop, UV_RUN_NOWAIT);
            break;
        case 11: {
            uint32_t ms = 0;
            memcpy(&ms, body, len < 4 ? len : 4);
            g.now += ms;
            engine_tick(&g.d->engine, g.now);
            break;
        }
        default:
            handle_request(2, op % 8, body, len);
            break;
        }
        settle();
    }
    /* Every ACK still waiting goes out once the journal has its record,
     * and every PERIOD answer under way is sent whole. */
    while (g.fifo_n > 0 || g.jobs_n > 0)
        uv_run(&g.loop, UV_RUN_ONCE);
    settle();
    for (uint32_t i = 0; i < g.nseries; i++)
        compare(ser_town(&g.series[i]), ser_metric(&g.series[i]));
    state_end();
    return 0;
}
