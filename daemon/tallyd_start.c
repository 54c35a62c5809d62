/* tallyd_start.c - the start-up half of the wiring (see tallyd.h and
 * tallyd_impl.h): the callbacks each part is handed, the configuration
 * and keys read, the sockets bound, the state recovered and the parts
 * created, in that order. */
#include "tallyd_impl.h"

#include <string.h>

#include "catalog.h"
#include "recover.h"

/* ---- callbacks the parts are handed ---- */

static void on_stop_request(void *ctx, int exit_code)
{
    tallyd_stop(ctx, exit_code);
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
    /* systemctl status is the documented health check: it said "serving"
     * while every submission was refused. */
    d->journal_failing = true;
    snprintf(d->journal_why, sizeof(d->journal_why), "%s", what);
    notify_send(&d->notify,
                "STATUS=refusing submissions (retryable): the journal cannot be written (%s)",
                d->journal_why);
}

static void on_journal_recovered(journal_t *j, void *ctx)
{
    (void)j;
    tallyd_t *d = ctx;
    log_notice(&d->log, "journal writes work again; accepting submissions");
    d->journal_failing = false;
    notify_send(&d->notify, "STATUS=serving: journal writes work again");
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

/* A backup ended: the BACKUP_REQs waiting for it hear how. */
static void on_backup_end(void *ctx, const backup_end_t *e)
{
    tallyd_t *d = ctx;
    if (d->request_open)
        request_backup_end(&d->request, e);
}

/* What compaction must keep: what the history database lacks, and what a
 * backup under way may still need (backup.h). */
static uint64_t journal_hold(void *ctx)
{
    tallyd_t *d = ctx;
    uint64_t h = history_hold(d);
    uint64_t b = d->backup_open ? backup_hold_pos(&d->backup) : UINT64_MAX;
    return b < h ? b : h;
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

static const char *named(const void *ctx, proto_str_t name, bool township)
{
    return ingest_named(ctx, name, township);
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
        .backups = d->backup_open ? d->backup.done : 0,
        .backup_failures = d->backup_open ? d->backup.failed : 0,
        .backup_last_s = d->backup_open ? (uint64_t)(d->backup.last_ok_ms / 1000) : 0,
        .backup_interval_s =
            d->backup_open ? (uint64_t)(d->backup.c.settings.interval_ms / 1000) : 0,
    };
    stats_foreach(&d->stats, &g, fn, fn_ctx);
    endpoints_stats(&d->ep, fn, fn_ctx);
}

backup_settings_t tallyd_backup_settings(const tallyd_config_t *c)
{
    backup_settings_t s = {.keep = c->backup_keep, .interval_ms = c->backup_interval_ms};
    snprintf(s.dir, sizeof(s.dir), "%s", c->backup_dir);
    return s;
}

snapshot_limits_t tallyd_snapshot_limits(const tallyd_config_t *c)
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

static void warn_key(void *ctx, const char *text)
{
    log_warning(ctx, "%s", text);
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
               "secured with CURVE: %zu township keys, %zu subscriber keys, %zu admin keys; "
               "server public key %s",
               d->keys.ntownships, d->keys.nsubscribers, d->keys.nadmins, pub);
    if (d->keys.ntownships == 0)
        log_warning(&d->log, "[security] no township key in '%s': nobody can submit figures",
                    d->cfg.township_keys);
    if (d->keys.nsubscribers == 0)
        log_warning(&d->log,
                    "[security] no subscriber key in '%s': nobody can read tallies or subscribe",
                    d->cfg.subscriber_keys);
    keys_check_townships(&d->keys, &d->cfg, warn_key, &d->log);
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
    char err[CONFIG_PATH_MAX * 2 + 200], note[CONFIG_PATH_MAX + 200];
    int rc = statedir_adopt_owner(d->cfg.state_dir, note, sizeof(note), err, sizeof(err));
    if (rc == 0 && note[0] != '\0')
        log_notice(&d->log, "%s", note);
    if (rc == 0)
        rc = statedir_lock(&d->statedir, d->cfg.state_dir, err, sizeof(err));
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
    /* Named as a reload names it: the file is what the operator mends
     * (the built-in catalog's words name themselves). */
    const char *file = d->opts.config_path ? d->opts.config_path : "";
    const char *colon = file[0] ? ": " : "";
    if (catalog_declare(&ct, &d->cfg, msg, sizeof(msg)) != 0) {
        log_error(&d->log, "%s%s%s", file, colon, msg);
        return TALLY_ECONFIG;
    }
    if (msg[0])
        log_warning(&d->log, "%s%s%s", file, colon, msg);
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
    /* The checkpoint left the engine at the time it was written, and only
     * a replayed record moves it on (engine_apply() moves time first).  A
     * live daemon would have slid its windows and ended its periods as
     * the clock passed their boundaries during the downtime: do that now,
     * before anything is served or published, so that no request,
     * snapshot or question about today meets the figures of a day gone
     * by.  The series that change are marked dirty and published, as
     * those of a live midnight are. */
    engine_tick(&d->engine, clock_now_ms(d->clock));
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
        .limits = tallyd_snapshot_limits(&d->cfg),
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
        .named = named,
        .named_ctx = &d->ingest,
    };
    if ((rc = recall_init(&d->recall, &rcl)) != 0)
        return rc;
    d->recall_open = true;
    request_config_t rc_cfg = {
        .ingest = &d->ingest,
        .publish = &d->publish,
        .snapshot = &d->snapshot,
        .recall = &d->recall,
        .backup = &d->backup,
        .fetch = &d->fetch,
        .engine = &d->engine,
        .towns = &d->towns,
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
        .hold_pos = journal_hold,
        .hold_ctx = d,
        .fork = true,
        .child_delay_ms = d->test_checkpoint_child_ms,
        .child_max_ms = d->test_checkpoint_child_max_ms,
    };
    if ((rc = compact_init(&d->compact, &kc)) != 0)
        return rc;
    d->compact_open = true;
    if ((rc = history_start(&d->history, d->loop)) != 0)
        return rc;
    d->history_started = true;
    backup_config_t bc = {
        .loop = d->loop,
        .state_dir = d->cfg.state_dir,
        .log = &d->log,
        .clock = d->clock,
        .history_hold = history_hold,
        .ctx = d,
        .settings = tallyd_backup_settings(&d->cfg),
        .on_end = on_backup_end,
        .end_ctx = d,
    };
    if ((rc = backup_init(&d->backup, &bc)) != 0)
        return rc;
    d->backup_open = true;
    /* Reads the backup part's settings at each fetch: a reload that
     * changes [backup] dir (backup_set) moves the fetches with it. */
    backup_fetch_config_t fc = {.loop = d->loop, .backup = &d->backup};
    if ((rc = backup_fetch_init(&d->fetch, &fc)) != 0)
        return rc;
    d->fetch_open = true;
    return endpoints_start(&d->ep);
}

int tallyd_start_parts(tallyd_t *d)
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
    if ((rc = recover_state(d, &res)) != 0 || (rc = open_journal(d, &res)) != 0)
        return rc;
    return setup_parts(d, &res);
}
