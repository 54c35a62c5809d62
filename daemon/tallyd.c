/* tallyd.c - the wiring (see tallyd.h): configuration and keys in, the
 * parts created and connected, the loop run, everything closed in order. */
#include "tallyd.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog.h"
#include "clock.h"
#include "compact.h"
#include "dedup.h"
#include "endpoints.h"
#include "engine.h"
#include "ingest.h"
#include "history.h"
#include "intern.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "notify.h"
#include "publish.h"
#include "ratelimit.h"
#include "recall.h"
#include "recover.h"
#include "reload.h"
#include "request.h"
#include "snapshot.h"
#include "statedir.h"
#include "stats.h"

typedef struct tallyd {
    uv_loop_t *loop;
    logger_t log;
    tallyd_config_t cfg;
    config_overrides_t opts;   /* the command line, applied again at every reload */
    clock_cache_t clock_cache; /* the system clock, read once per loop iteration */
    const tclock_t *clock;     /* &clock_cache.clock */
    tallyd_stats_t stats;
    notify_t notify;

    /* the state, owned here and lent to the parts */
    intern_t towns;   /* township names -> ids (0 is the county) */
    intern_t metrics; /* metric and ratio names -> ids */
    engine_t engine;
    dedup_t dedup;
    ratelimit_t rl;
    statedir_t statedir;  /* locked for this process from start-up on */
    keys_server_t server; /* the daemon's key pair (secret wiped once the sockets have it) */
    keyring_t keys;       /* the clients admitted; endpoints and request read it in place */

    /* the parts, in the order data flows through them */
    endpoints_t ep;
    request_t request;
    ingest_t ingest;
    journal_t journal;
    publish_t publish;
    snapshot_t snapshot;
    compact_t compact;
    history_t history; /* closed periods, mirrored into history.db */
    recall_t recall;   /* PERIOD_REQ and RANGE_REQ */
    bool ep_open, request_open, ingest_open, journal_open, publish_open, snapshot_open,
        compact_open, history_open, history_started, recall_open;

    uv_timer_t tick_timer;     /* time moves the tallies on */
    uv_timer_t watchdog_timer; /* WATCHDOG=1 at half of $WATCHDOG_USEC */
    uv_timer_t status_timer;   /* periodic STATUS= line */
    uv_prepare_t iter_prepare; /* expire clock_cache before polling */
    uv_check_t iter_check;     /* and after the I/O callbacks, before timers */
    uv_signal_t sigint, sigterm, sighup;
    bool handles_open;
    int open_handles; /* closes still to come before the loop may end */
    uint64_t status_last_accepted;

    int test_stall_ms;            /* TALLYD_TEST_STALL_MS: stall the loop once (tests) */
    int test_checkpoint_child_ms; /* TALLYD_TEST_CHECKPOINT_CHILD_MS: checkpoint children wait
                                     (tests) */
    bool serving;                 /* recovery completed and the loop ran */
    bool stopping;
    int exit_code;
} tallyd_t;

/* ---- callbacks the parts are handed ---- */

static void stop(tallyd_t *d, int exit_code);

static void on_stop_request(void *ctx, int exit_code)
{
    stop(ctx, exit_code);
}

static int journal_append_cb(void *ctx, const void *rec, size_t len, uint64_t *pos)
{
    tallyd_t *d = ctx;
    return journal_append(&d->journal, rec, len, pos);
}

static const char *journal_error_cb(void *ctx)
{
    tallyd_t *d = ctx;
    return journal_errmsg(&d->journal);
}

static void on_durable(journal_t *j, uint64_t upto, void *ctx)
{
    (void)j;
    tallyd_t *d = ctx;
    ingest_on_durable(&d->ingest, upto);
}

static void on_journal_error(journal_t *j, int code, const char *what, void *ctx)
{
    (void)j;
    (void)code;
    tallyd_t *d = ctx;
    /* Once per episode: submissions are refused as retryable meanwhile,
     * reads and subscribers are served as usual. */
    log_error(&d->log, "journal write failed: %s; refusing submissions (retryable) until it works",
              what);
}

static void on_journal_recovered(journal_t *j, void *ctx)
{
    (void)j;
    tallyd_t *d = ctx;
    log_notice(&d->log, "journal writes work again; accepting submissions");
}

static void on_request(void *ctx, const void *rid, size_t rid_len, int nframes, const void *body,
                       size_t len, const char *user_id)
{
    tallyd_t *d = ctx;
    request_handle(&d->request, rid, rid_len, nframes, body, len, user_id);
}

/* ingest applied a record: the history takes it too. */
static int on_applied(void *ctx, uint64_t pos, uint32_t town, int64_t time_ms,
                      const engine_sample_t *samples, uint32_t n)
{
    tallyd_t *d = ctx;
    return d->history_open ? history_apply(&d->history, pos, town, time_ms, samples, n) : 0;
}

static void on_prefetch(void *ctx, uint32_t town, int64_t time_ms, const engine_sample_t *samples,
                        uint32_t n, int stage)
{
    tallyd_t *d = ctx;
    if (d->history_open)
        history_prefetch(&d->history, town, time_ms, samples, n, stage);
}

static uint64_t history_hold(void *ctx)
{
    tallyd_t *d = ctx;
    return d->history_open ? history_hold_pos(&d->history) : UINT64_MAX;
}

/* A submission changed closed periods of (metric, town): subscribers of
 * the series hear of it (PROTOCOL.md 8.22). */
static void on_period_changed(void *ctx, uint32_t metric, uint32_t town, const calperiod_t *p,
                              uint32_t n)
{
    tallyd_t *d = ctx;
    if (d->publish_open)
        publish_period_changed(&d->publish, metric, town, p, n);
}

static void on_subscription(void *ctx, const void *data, size_t len)
{
    tallyd_t *d = ctx;
    publish_on_subscription(&d->publish, data, len);
}

static void report_stats(void *ctx, request_stat_fn fn, void *fn_ctx)
{
    tallyd_t *d = ctx;
    stats_gauges_t g = {
        .series = engine_series_count(&d->engine),
        .clients = dedup_count(&d->dedup),
        .townships = intern_count(&d->towns),
        .metrics = intern_count(&d->metrics),
        .subscribers = endpoints_subscribers(&d->ep),
        .connections = endpoints_connections(&d->ep),
        .connections_accepted = endpoints_connections_accepted(&d->ep),
        .snapshots_active = snapshot_active(&d->snapshot),
        .seq = publish_seq(&d->publish),
        .uptime_s = (uint64_t)((clock_mono_ms() - d->stats.started_mono_ms) / 1000),
        .memory_bytes = engine_memory(&d->engine) + dedup_memory(&d->dedup) +
                        intern_memory(&d->towns) + intern_memory(&d->metrics) +
                        (d->history_open ? history_memory(&d->history) : 0),
        .memory_engine_bytes = engine_memory(&d->engine),
        .memory_history_bytes = d->history_open ? history_memory(&d->history) : 0,
        .history_cells = d->history_open ? history_cells(&d->history) : 0,
        .history_store_failures = d->history_open ? d->history.failures : 0,
        .history_unstored_records = d->history_open ? history_unstored(&d->history) : 0,
    };
    stats_foreach(&d->stats, &g, fn, fn_ctx);
    endpoints_stats(&d->ep, fn, fn_ctx);
}

static snapshot_limits_t snapshot_limits_of(const tallyd_config_t *c)
{
    return (snapshot_limits_t){(uint32_t)c->max_snapshots, c->snapshot_timeout_ms};
}

/* ---- start-up ---- */

static int load_config(tallyd_t *d)
{
    char err[1024];
    if (config_load(d->opts.config_path, &d->cfg, err, sizeof(err)) != 0 ||
        config_apply_overrides(&d->cfg, &d->opts, err, sizeof(err)) != 0) {
        log_error(&d->log, "%s", err);
        return TALLY_ECONFIG;
    }
    d->log.level = d->cfg.log_level;
    return 0;
}

static int setup_engine(tallyd_t *d)
{
    engine_config_t ec;
    engine_config_from(&ec, &d->cfg);
    char msg[256];
    if (engine_config_check(&ec, msg, sizeof(msg)) != 0) {
        log_error(&d->log, "invalid tally settings: %s", msg);
        return TALLY_ECONFIG;
    }
    int rc = engine_init(&d->engine, &ec, d->clock);
    if (rc != 0) {
        log_error(&d->log, "cannot set up the tally engine: %s", tally_strerror(rc));
        return TALLY_ECONFIG;
    }
    return 0;
}

/* Read the server's secret key and the client keys before the state is
 * recovered, so that a key problem stops the start with status 2 and a
 * line naming the file, not after a long journal replay. */
static int setup_security(tallyd_t *d)
{
    char err[1200];
    if (keys_load_config(&d->cfg, &d->server, &d->keys, err, sizeof(err)) != 0) {
        log_error(&d->log, "%s", err);
        return TALLY_ECONFIG;
    }
    if (!d->server.secured)
        return 0;
    char pub[KEYS_Z85_LEN + 1];
    keys_z85_encode(d->server.pub, pub);
    log_notice(&d->log,
               "secured with CURVE: %zu township keys, %zu subscriber keys; server public key %s",
               d->keys.ntownships, d->keys.nsubscribers, pub);
    if (d->keys.ntownships == 0)
        log_warning(&d->log, "[security] no township key in '%s': nobody can submit figures",
                    d->cfg.township_keys);
    if (d->keys.nsubscribers == 0)
        log_warning(&d->log,
                    "[security] no subscriber key in '%s': nobody can read tallies or subscribe",
                    d->cfg.subscriber_keys);
    return 0;
}

/* The name and de-duplication tables, empty: a checkpoint loads into
 * them before the catalog is declared. */
static int setup_tables(tallyd_t *d)
{
    const tallyd_config_t *c = &d->cfg;
    uint64_t metrics = (uint64_t)c->max_metrics + catalog_metric_names(c) + 1;
    int rc = intern_init(&d->towns, (uint32_t)c->max_townships + 1);
    if (rc == 0)
        rc = intern_init(&d->metrics, (uint32_t)metrics);
    if (rc == 0)
        rc = dedup_init(&d->dedup, (uint32_t)c->max_clients);
    /* One bucket per township id; id 0 (the county) is never charged. */
    if (rc == 0)
        rc = ratelimit_init(&d->rl, c->rate, c->burst, d->towns.capacity);
    if (rc != 0)
        log_error(&d->log, "cannot allocate the name tables: %s", tally_strerror(rc));
    return rc;
}

static int open_endpoints(tallyd_t *d)
{
    endpoints_config_t ec = {
        .loop = d->loop,
        .log = &d->log,
        .stats = &d->stats,
        .request = d->cfg.request,
        .publish = d->cfg.publish,
        .lim = endpoints_limits_from(&d->cfg),
        .server = &d->server,
        .keys = &d->keys,
        .on = {on_request, on_subscription, d},
    };
    d->ep_open = true;
    int rc = endpoints_open(&d->ep, &ec);
    /* libzmq keeps its own copy; ours is of no further use. */
    explicit_bzero(d->server.sec, sizeof(d->server.sec));
    return rc;
}

/* Take the state directory for this process before anything in it is
 * read or written. */
static int lock_state(tallyd_t *d)
{
    char err[CONFIG_PATH_MAX * 2 + 200];
    int rc = statedir_lock(&d->statedir, d->cfg.state_dir, err, sizeof(err));
    if (rc != 0)
        log_error(&d->log, "%s", err);
    return rc;
}

static int setup_ingest(tallyd_t *d)
{
    ingest_config_t ic = {
        .engine = &d->engine,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .dedup = &d->dedup,
        .rl = &d->rl,
        .journal = {journal_append_cb, journal_error_cb, d},
        .reply = endpoints_reply_sink(&d->ep),
        .stop = on_stop_request,
        .stop_ctx = d,
        .stats = &d->stats,
        .log = &d->log,
        .clock = d->clock,
        .secured = d->server.secured,
        .limits = ingest_limits_from(&d->cfg),
        .on_applied = on_applied,
        .prefetch = on_prefetch,
        .applied_ctx = d,
    };
    int rc = ingest_init(&d->ingest, &ic);
    d->ingest_open = rc == 0;
    return rc;
}

/* The checkpoint first (names keep their ids), then the catalog on top of
 * it, then the journal written after the checkpoint.  Returns 0,
 * TALLY_ECONFIG (the state does not fit this configuration) or another
 * negative code (logged). */
static int recover_state(tallyd_t *d, recover_result_t *res)
{
    notify_send(&d->notify, "STATUS=recovering the state in %s", d->cfg.state_dir);
    recover_state_t st = {
        .dir = d->cfg.state_dir,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .engine = &d->engine,
        .dedup = &d->dedup,
        .ingest = &d->ingest,
        .log = &d->log,
        .accept_loss = d->opts.accept_loss,
    };
    /* The history database is read on a thread of its own while the
     * checkpoint loads (a third of the start with a million series); its
     * names get their ids after the checkpoint's and the catalog's, in
     * history_open(). */
    history_config_t hc = {
        .engine = &d->engine,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .clock = d->clock,
        .log = &d->log,
        .days = d->cfg.history_days,
        .on_changed = on_period_changed,
        .ctx = d,
    };
    int rc = history_init(&d->history, &hc);
    if (rc != 0)
        return rc;
    d->history_open = true;
    if ((rc = history_preload(&d->history, d->cfg.state_dir, &d->towns, &d->metrics)) != 0) {
        log_error(&d->log, "history: cannot load %s/%s: out of memory", d->cfg.state_dir,
                  HISTORY_DB_FILE);
        return rc;
    }
    if ((rc = recover_load(&st, res)) != 0)
        return rc;
    catalog_target_t ct = {&d->towns, &d->metrics, &d->engine, d->cfg.state_dir};
    char msg[768];
    if (catalog_declare(&ct, &d->cfg, msg, sizeof(msg)) != 0) {
        log_error(&d->log, "%s", msg);
        return TALLY_ECONFIG;
    }
    if (msg[0])
        log_warning(&d->log, "%s", msg);
    if (ingest_set_catalog(&d->ingest, &d->cfg) != 0)
        return TALLY_ENOMEM;
    /* The history after the checkpoint (names keep their ids), before the
     * journal: records its database lacks are replayed to it. */
    bool rebuilt = false;
    if ((rc = history_open(&d->history, d->cfg.state_dir, &d->towns, &d->metrics, &rebuilt)) != 0)
        return rc;
    st.history_from = history_hold_pos(&d->history);
    if ((rc = recover_history(&st, res)) != 0)
        return rc;
    rc = recover_replay(&st, res);
    if (rc != 0)
        return rc;
    /* Everything replayed is on disk already. */
    ingest_set_position(&d->ingest, res->next_pos - 1);
    history_set_position(&d->history, res->next_pos - 1);
    return 0;
}

static int open_journal(tallyd_t *d, const recover_result_t *res)
{
    static const int policies[] = {
        [CONFIG_SYNC_ALWAYS] = JOURNAL_SYNC_ALWAYS,
        [CONFIG_SYNC_INTERVAL] = JOURNAL_SYNC_INTERVAL,
        [CONFIG_SYNC_NEVER] = JOURNAL_SYNC_NEVER,
    };
    journal_opts_t jo = {
        .sync = policies[d->cfg.sync],
        .interval_ms = (uint32_t)d->cfg.sync_interval_ms,
        .on_durable = on_durable,
        .on_error = on_journal_error,
        .on_recovered = on_journal_recovered,
        .ctx = d,
    };
    int rc =
        journal_open(&d->journal, d->loop, d->cfg.state_dir, &jo, res->journal_gen, res->next_pos);
    if (rc != 0) {
        log_error(&d->log, "cannot open the journal: %s", journal_errmsg(&d->journal));
        return rc;
    }
    d->journal_open = true;
    return 0;
}

static int setup_parts(tallyd_t *d, const recover_result_t *res)
{
    publish_config_t pc = {
        .loop = d->loop,
        .engine = &d->engine,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .pub = endpoints_pub_sink(&d->ep),
        .stats = &d->stats,
        .log = &d->log,
        .clock = d->clock,
        .interval_ms = d->cfg.publish_interval_ms,
        .heartbeat_ms = d->cfg.heartbeat_ms,
        .seq = res->publish_seq,
    };
    int rc = publish_init(&d->publish, &pc);
    if (rc != 0)
        return rc;
    d->publish_open = true;
    snapshot_config_t sc = {
        .loop = d->loop,
        .engine = &d->engine,
        .publish = &d->publish,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .reply = endpoints_reply_sink(&d->ep),
        .stats = &d->stats,
        .log = &d->log,
        .limits = snapshot_limits_of(&d->cfg),
    };
    if ((rc = snapshot_init(&d->snapshot, &sc)) != 0)
        return rc;
    d->snapshot_open = true;
    recall_config_t rcl = {
        .loop = d->loop,
        .engine = &d->engine,
        .history = &d->history,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .publish = &d->publish,
        .clock = d->clock,
        .reply = endpoints_reply_sink(&d->ep),
        /* Half the peer's reply queue: the answer fits beside other replies. */
        .max_items = (uint32_t)(d->cfg.max_reply_queue / 2),
    };
    if ((rc = recall_init(&d->recall, &rcl)) != 0)
        return rc;
    d->recall_open = true;
    request_config_t rc_cfg = {
        .ingest = &d->ingest,
        .publish = &d->publish,
        .snapshot = &d->snapshot,
        .recall = &d->recall,
        .engine = &d->engine,
        .keys = &d->keys,
        .secured = d->server.secured,
        .pub_endpoint = endpoints_publish(&d->ep),
        .reply = endpoints_reply_sink(&d->ep),
        .stats = report_stats,
        .stats_ctx = d,
        .counters = &d->stats,
        .log = &d->log,
        .limits = request_limits_from(&d->cfg),
        .clock = d->clock,
        .zone = d->cfg.timezone, /* a reload keeps it (reload.c) */
    };
    if ((rc = request_init(&d->request, &rc_cfg)) != 0)
        return rc;
    d->request_open = true;
    if ((rc = request_set_catalog(&d->request, &d->cfg)) != 0)
        return rc;
    compact_config_t kc = {
        .loop = d->loop,
        .dir = d->cfg.state_dir,
        .journal = &d->journal,
        .towns = &d->towns,
        .metrics = &d->metrics,
        .engine = &d->engine,
        .dedup = &d->dedup,
        .ingest = &d->ingest,
        .publish = &d->publish,
        .log = &d->log,
        .clock = d->clock,
        .interval_ms = d->cfg.snapshot_interval_ms,
        .every_records = d->cfg.snapshot_every_records,
        .journal_gen = res->journal_gen,
        .covered_pos = res->ckpt_pos,
        /* After a loss was accepted, a checkpoint at once puts the gap
         * behind it, so that the next start does not refuse again. */
        .checkpoint_now = res->loss_accepted,
        .hold_pos = history_hold,
        .hold_ctx = d,
        .fork = true,
        .child_delay_ms = d->test_checkpoint_child_ms,
    };
    if ((rc = compact_init(&d->compact, &kc)) != 0)
        return rc;
    d->compact_open = true;
    if ((rc = history_start(&d->history, d->loop)) != 0)
        return rc;
    d->history_started = true;
    return endpoints_start(&d->ep);
}

/* ---- the loop's own handles ---- */

static void on_tick(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    int64_t now = clock_now_ms(d->clock);
    engine_tick(&d->engine, now);
    ingest_tick(&d->ingest, now);
}

static void on_watchdog(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    if (d->test_stall_ms > 0) {
        /* Test hook (TALLYD_TEST_STALL_MS): stall the loop once, so tests
         * can see that a stuck loop sends no WATCHDOG=1. */
        uv_sleep((unsigned)d->test_stall_ms);
        d->test_stall_ms = 0;
    }
    notify_send(&d->notify, "WATCHDOG=1");
}

static void on_status(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    uint64_t n = d->stats.submissions_accepted - d->status_last_accepted;
    d->status_last_accepted = d->stats.submissions_accepted;
    notify_send(&d->notify,
                "STATUS=serving: %u series, %u clients, %" PRIu64 " subscribers, %.1f "
                "submissions/s",
                engine_series_count(&d->engine), dedup_count(&d->dedup),
                endpoints_subscribers(&d->ep), (double)n / 10.0);
}

/* SIGHUP: read the file again; the parts take what concerns them. */
static int reload(tallyd_t *d)
{
    reload_target_t t = {&d->cfg,     &d->opts, &d->engine,        &d->towns,
                         &d->metrics, &d->keys, d->server.secured, &d->log};
    tallyd_config_t next;
    keyring_t keys;
    int rc = reload_prepare(&t, &next, &keys);
    if (rc == TALLY_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    reload_apply_catalog(&t, &next);
    if (ingest_set_catalog(&d->ingest, &next) != 0)
        log_error(&d->log, "reload: out of memory for the catalog's bounds and names; the old "
                           "stay");
    endpoints_limits_t el = endpoints_limits_from(&next);
    endpoints_set_limits(&d->ep, &el);
    if (d->server.secured) {
        size_t cut = reload_report_keys(&t, &keys);
        keyring_free(&d->keys);
        d->keys = keys; /* a struct copy moves a keyring (keys.h) */
        endpoints_set_keyring(&d->ep, &d->keys);
        if (cut > 0)
            endpoints_cut_subscribers(&d->ep);
    } else {
        keyring_free(&keys);
    }
    /* The range was checked by config.c; ratelimit_set() refuses only
     * values outside it. */
    if (ratelimit_set(&d->rl, next.rate, next.burst, d->towns.capacity) != 0)
        log_error(&d->log, "reload: rate %" PRId64 " / burst %" PRId64 " refused; the old stay",
                  next.rate, next.burst);
    dedup_set_max(&d->dedup, (uint32_t)next.max_clients);
    engine_set_max_series(&d->engine, (uint32_t)next.max_series);
    ingest_limits_t il = ingest_limits_from(&next);
    request_limits_t rl = request_limits_from(&next);
    ingest_set_limits(&d->ingest, &il);
    request_set_limits(&d->request, &rl);
    compact_set_policy(&d->compact, next.snapshot_interval_ms, next.snapshot_every_records);
    history_set_days(&d->history, next.history_days);
    snapshot_limits_t sl = snapshot_limits_of(&next);
    snapshot_set_limits(&d->snapshot, &sl);
    if (next.publish_interval_ms != d->cfg.publish_interval_ms ||
        next.heartbeat_ms != d->cfg.heartbeat_ms)
        publish_set_timing(&d->publish, next.publish_interval_ms, next.heartbeat_ms);
    config_free(&d->cfg);
    d->cfg = next;
    /* d->cfg is where it was, its catalog arrays are new. */
    if (request_set_catalog(&d->request, &d->cfg) != 0)
        log_error(&d->log, "reload: out of memory for the catalog clients read; they read none");
    d->log.level = next.log_level;
    log_notice(&d->log,
               "reloaded %s: %zu townships, %zu metrics, %zu ratios declared; tallies kept",
               d->opts.config_path, next.ntownships, next.nmetrics, next.nratios);
    return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
    tallyd_t *d = s->data;
    if (signum == SIGHUP) {
        log_notice(&d->log, "SIGHUP: reloading the configuration");
        notify_send(&d->notify, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
                    (unsigned long long)(uv_hrtime() / 1000),
                    d->opts.config_path ? d->opts.config_path : "");
        int rc = reload(d);
        notify_send(&d->notify, "READY=1\nSTATUS=%s",
                    rc == 0 ? "reloaded; serving"
                            : "reload refused (see the log); "
                              "serving the previous config");
        return;
    }
    log_notice(&d->log, "%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    stop(d, 0);
}

static void on_iter_prepare(uv_prepare_t *h)
{
    tallyd_t *d = h->data;
    clock_cache_expire(&d->clock_cache);
}

static void on_iter_check(uv_check_t *h)
{
    tallyd_t *d = h->data;
    clock_cache_expire(&d->clock_cache);
}

static void start_handles(tallyd_t *d)
{
    uv_timer_init(d->loop, &d->tick_timer);
    d->tick_timer.data = d;
    uv_timer_start(&d->tick_timer, on_tick, 1000, 1000);
    /* From here on the clock is read once per loop iteration. */
    uv_prepare_init(d->loop, &d->iter_prepare);
    uv_check_init(d->loop, &d->iter_check);
    d->iter_prepare.data = d->iter_check.data = d;
    uv_prepare_start(&d->iter_prepare, on_iter_prepare);
    uv_check_start(&d->iter_check, on_iter_check);
    uv_unref((uv_handle_t *)&d->iter_prepare);
    uv_unref((uv_handle_t *)&d->iter_check);
    clock_cache_activate(&d->clock_cache, 1);
    /* The watchdog timer runs on the loop: if the loop stalls, systemd
     * stops hearing from us and restarts the service. */
    uv_timer_init(d->loop, &d->watchdog_timer);
    uv_timer_init(d->loop, &d->status_timer);
    d->watchdog_timer.data = d->status_timer.data = d;
    uint64_t wd_ms = notify_watchdog_usec(&d->notify) / 2000;
    if (wd_ms > 0)
        uv_timer_start(&d->watchdog_timer, on_watchdog, wd_ms, wd_ms);
    if (notify_enabled(&d->notify))
        uv_timer_start(&d->status_timer, on_status, 10000, 10000);
    uv_signal_t *sigs[] = {&d->sigint, &d->sigterm, &d->sighup};
    int nums[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(d->loop, sigs[i]);
        sigs[i]->data = d;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    d->handles_open = true;
}

/* ---- stopping ---- */

static void on_handle_closed(uv_handle_t *h)
{
    tallyd_t *d = h->data;
    d->open_handles--;
}

static void on_journal_closed(journal_t *j)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)j - offsetof(tallyd_t, journal));
    d->open_handles--;
}

static void on_publish_closed(publish_t *p)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)p - offsetof(tallyd_t, publish));
    d->open_handles--;
}

static void on_recall_closed(recall_t *r)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)r - offsetof(tallyd_t, recall));
    d->open_handles--;
}

static void on_snapshot_closed(snapshot_t *s)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)s - offsetof(tallyd_t, snapshot));
    d->open_handles--;
}

static void on_compact_closed(compact_t *k)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)k - offsetof(tallyd_t, compact));
    d->open_handles--;
}

static void on_endpoints_closed(endpoints_t *e)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)e - offsetof(tallyd_t, ep));
    d->open_handles--;
}

/* Flush the journal (its callback sends the ACKs that waited for it while
 * the request socket is still open) and, after a clean run with every ACK
 * sent, write a last checkpoint.  A start that failed writes nothing. */
static void close_journal(tallyd_t *d)
{
    if (!d->journal_open)
        return;
    d->journal_open = false;
    if (d->serving && d->compact_open)
        compact_final_begin(&d->compact);
    d->open_handles++;
    if (journal_close(&d->journal, on_journal_closed) != 0)
        log_error(&d->log, "journal: %s; submissions not acknowledged were not stored",
                  journal_errmsg(&d->journal));
    /* Every record is applied now: the history stores the rest before the
     * final checkpoint decides which segments may go. */
    if (d->history_started) {
        history_stop(&d->history);
        d->history_started = false;
    }
    if (ingest_waiting(&d->ingest) > 0)
        log_warning(&d->log, "%u acknowledgements could not be sent", ingest_waiting(&d->ingest));
    else if (d->serving && d->compact_open)
        compact_final(&d->compact);
}

/* Close whatever is open, in the order data flows: no new submissions,
 * the journal flushed, goodbye to subscribers, then the sockets and the
 * loop's own handles.  The loop then ends. */
static void stop(tallyd_t *d, int exit_code)
{
    if (d->stopping)
        return;
    d->stopping = true;
    d->exit_code = exit_code;
    notify_send(&d->notify, "STOPPING=1\nSTATUS=stopping: flushing the journal");
    if (d->ingest_open)
        ingest_stop_accepting(&d->ingest);
    close_journal(d);
    if (d->history_started) { /* no journal to close: a failed start */
        history_stop(&d->history);
        d->history_started = false;
    }
    if (d->publish_open) {
        if (d->serving)
            publish_goodbye(&d->publish);
        d->open_handles++;
        publish_close(&d->publish, on_publish_closed);
    }
    if (d->snapshot_open) {
        d->open_handles++;
        snapshot_close(&d->snapshot, on_snapshot_closed);
    }
    if (d->recall_open) {
        d->open_handles++;
        recall_close(&d->recall, on_recall_closed);
    }
    if (d->compact_open) {
        d->open_handles++;
        compact_close(&d->compact, on_compact_closed);
    }
    if (d->ep_open) {
        d->open_handles++;
        endpoints_close(&d->ep, on_endpoints_closed);
    }
    if (d->handles_open) {
        uv_handle_t *hs[] = {
            (uv_handle_t *)&d->tick_timer,   (uv_handle_t *)&d->iter_prepare,
            (uv_handle_t *)&d->iter_check,   (uv_handle_t *)&d->watchdog_timer,
            (uv_handle_t *)&d->status_timer, (uv_handle_t *)&d->sigint,
            (uv_handle_t *)&d->sigterm,      (uv_handle_t *)&d->sighup,
        };
        for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
            hs[i]->data = d;
            d->open_handles++;
            uv_close(hs[i], on_handle_closed);
        }
        d->handles_open = false;
    }
    clock_cache_activate(&d->clock_cache, 0);
}

static void free_all(tallyd_t *d)
{
    if (d->ep_open)
        endpoints_free(&d->ep);
    if (d->request_open)
        request_free(&d->request);
    if (d->ingest_open)
        ingest_free(&d->ingest);
    if (d->recall_open)
        recall_free(&d->recall);
    if (d->history_open)
        history_free(&d->history);
    engine_free(&d->engine);
    dedup_free(&d->dedup);
    keyring_free(&d->keys);
    ratelimit_free(&d->rl);
    explicit_bzero(&d->server, sizeof(d->server));
    intern_free(&d->towns);
    intern_free(&d->metrics);
    config_free(&d->cfg);
    notify_close(&d->notify);
    statedir_unlock(&d->statedir);
}

/* Everything up to serving.  Returns 0, TALLY_ECONFIG (the configuration,
 * its keys, or a state it cannot use) or another negative code; each
 * failure is logged where it happens. */
static int start(tallyd_t *d)
{
    int rc;
    if ((rc = load_config(d)) != 0 || (rc = setup_engine(d)) != 0 ||
        (rc = setup_security(d)) != 0 || (rc = setup_tables(d)) != 0)
        return rc;
    /* The state directory is locked before anything in it is read, and the
     * sockets are bound before the state is touched: a second daemon on
     * the same directory, or one that cannot listen, changes nothing. */
    if ((rc = lock_state(d)) != 0 || (rc = open_endpoints(d)) != 0 || (rc = setup_ingest(d)) != 0)
        return rc;
    recover_result_t res;
    if ((rc = recover_state(d, &res)) != 0 || (rc = open_journal(d, &res)) != 0 ||
        (rc = setup_parts(d, &res)) != 0)
        return rc;
    start_handles(d);
    return 0;
}

int tallyd_main(const config_overrides_t *o)
{
    tallyd_t *d = calloc(1, sizeof(*d));
    uv_loop_t loop;
    if (!d || uv_loop_init(&loop) != 0) {
        fprintf(stderr, "tallyd: out of memory\n");
        free(d);
        return 1;
    }
    d->loop = &loop;
    d->opts = *o;
    clock_cache_init(&d->clock_cache, &clock_system);
    d->clock = &d->clock_cache.clock;
    d->stats.started_mono_ms = clock_mono_ms();
    keyring_init(&d->keys);
    d->statedir.lock_fd = -1;
    log_init(&d->log, LOG_LEVEL_INFO);
    int nrc = notify_init_env(&d->notify);
    if (nrc != 0)
        log_warning(&d->log, "NOTIFY_SOCKET/WATCHDOG_USEC unusable (%s); not notifying systemd",
                    tally_strerror(nrc));
    const char *stall = getenv("TALLYD_TEST_STALL_MS");
    if (stall)
        d->test_stall_ms = atoi(stall);
    const char *child = getenv("TALLYD_TEST_CHECKPOINT_CHILD_MS");
    if (child)
        d->test_checkpoint_child_ms = atoi(child);
    notify_send(&d->notify, "STATUS=starting: loading the configuration");
    int rc = start(d);
    /* Exit status 2 for what the operator must fix in the configuration,
     * 1 for everything else (tallyd(8)). */
    int status = rc == 0 ? 0 : rc == TALLY_ECONFIG ? 2 : 1;
    if (rc == 0) {
        d->serving = true;
        notify_send(&d->notify,
                    "READY=1\nSTATUS=serving: requests on %s, updates on %s, %u series, %u "
                    "townships",
                    endpoints_request(&d->ep), endpoints_publish(&d->ep),
                    engine_series_count(&d->engine), intern_count(&d->towns));
        /* The two halves of the catalog close apart: a file may declare
         * its townships and keep the built-in, open, metrics. */
        unsigned towns = intern_count(&d->towns), metrics = intern_count(&d->metrics);
        log_notice(&d->log,
                   "tallyd %s ready: requests on %s, updates on %s, state in %s, %u township%s "
                   "(%s), %u metric%s (%s), %s",
                   TALLY_VERSION, endpoints_request(&d->ep), endpoints_publish(&d->ep),
                   d->cfg.state_dir, towns, towns == 1 ? "" : "s",
                   d->cfg.catalog_closed_townships ? "closed" : "open", metrics,
                   metrics == 1 ? "" : "s", d->cfg.catalog_closed_metrics ? "closed" : "open",
                   d->server.secured ? "secured with CURVE" : "plaintext");
        uv_run(d->loop, UV_RUN_DEFAULT);
        status = d->exit_code;
        log_notice(&d->log,
                   "stopped: %" PRIu64 " submissions accepted, %" PRIu64 " duplicates, %" PRIu64
                   " rejected",
                   d->stats.submissions_accepted, d->stats.duplicates, d->stats.rejected);
    }
    /* After a failed start, or a stop that left something open: close it
     * and let the loop run the close callbacks. */
    stop(d, status);
    uv_run(d->loop, UV_RUN_DEFAULT);
    free_all(d);
    uv_loop_close(d->loop);
    free(d);
    return status;
}
