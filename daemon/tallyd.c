/* tallyd.c - the wiring (see tallyd.h): the parts created and connected
 * (tallyd_start.c), the loop run with its timers and signals, a reload
 * handed to the parts, everything closed in order. */
#include "tallyd.h"

#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reload.h"
#include "tallyd_impl.h"
#include "text.h"

/* ---- the loop's own handles ---- */

static void on_tick(uv_timer_t *t);

/* The tick runs at the engine's next boundary (a midnight, a window's
 * bucket), so that the UPDATEs of a new day go out at once, and at least
 * every second for ingest's client expiry.  Requests that read tallies
 * tick the engine themselves when they come first (request.c). */
static void arm_tick(tallyd_t *d, int64_t now)
{
    /* At most the second: a wall clock set back leaves the engine's next
     * boundary far ahead (the engine ignores earlier times).  Never 0, a
     * timer that would fire again at once: a boundary the engine could
     * not pass (a time the C library cannot convert) waits the second
     * too. */
    int64_t wait = engine_next_tick_ms(&d->engine) - now;
    if (wait <= 0 || wait > 1000)
        wait = 1000;
    uv_timer_start(&d->tick_timer, on_tick, (uint64_t)wait, 0);
}

static void on_tick(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    int64_t now = clock_now_ms(d->clock);
    engine_tick(&d->engine, now);
    ingest_tick(&d->ingest, now);
    arm_tick(d, now);
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

/* What systemctl status should keep saying about the configuration until
 * a reload changes it: that the last reload was refused, so the one in
 * force is the previous one, and that the file would stop the next start.
 * "" when all is well. */
static const char *config_status(const tallyd_t *d, char *buf, size_t len)
{
    buf[0] = '\0';
    if (d->stats.config_reload_refused) {
        char when[32] = "";
        time_t t = (time_t)(d->reload_refused_ms / 1000);
        struct tm tm;
        if (localtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), " at %F %T", &tm);
        snprintf(buf, len,
                 "the reload%s was refused (see the log): the configuration in force is the "
                 "previous one; ",
                 when);
    }
    if (d->stats.config_start_refused) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "%s would be refused by the next start (see the log); ",
                 d->opts.config_path ? d->opts.config_path : "the configuration file");
    }
    return buf;
}

static void on_status(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    uint64_t n = d->stats.submissions_accepted - d->status_last_accepted;
    d->status_last_accepted = d->stats.submissions_accepted;
    char cs[CONFIG_PATH_MAX + 200];
    if (d->journal_failing) {
        notify_send(&d->notify,
                    "STATUS=%srefusing submissions (retryable): the journal cannot be written "
                    "(%s); %u series, %u clients, %" PRIu64 " subscribers served",
                    config_status(d, cs, sizeof(cs)), d->journal_why,
                    engine_series_count(&d->engine), dedup_count(&d->dedup),
                    endpoints_subscribers(&d->ep));
        return;
    }
    notify_send(&d->notify,
                "STATUS=%sserving: %u series, %u clients, %" PRIu64 " subscribers, %.1f "
                "submissions/s",
                config_status(d, cs, sizeof(cs)), engine_series_count(&d->engine),
                dedup_count(&d->dedup), endpoints_subscribers(&d->ep), (double)n / 10.0);
}

/* max_series below the series held (lowered at a reload, or a start with
 * a state holding more): nothing fails, the series held take samples,
 * but a sample that would start a new series is refused; said at each. */
static void warn_series_limit(tallyd_t *d, const char *when)
{
    uint32_t held = engine_series_count(&d->engine);
    if ((int64_t)held <= d->cfg.max_series)
        return;
    log_warning(&d->log,
                "%sthe state holds %u series, more than [limits] max_series (%" PRId64
                "): samples of the series held are accepted, but no new series will be created "
                "until their count is below the limit; series are never removed, so raise "
                "max_series above %u to let new ones start",
                when, held, d->cfg.max_series, held);
}

/* "25 townships (open)"; of a closed catalog, the names it declares and
 * those only the state knows, which it refuses: "1 township (closed; 1
 * more known from the state, refused)". */
static void names_count(char *buf, size_t len, uint32_t known, size_t declared, bool closed,
                        const char *what)
{
    size_t n = closed ? declared : known;
    int w =
        snprintf(buf, len, "%zu %s%s (%s", n, what, n == 1 ? "" : "s", closed ? "closed" : "open");
    if (w > 0 && (size_t)w < len && closed && known > declared)
        w += snprintf(buf + w, len - (size_t)w, "; %zu more known from the state, refused",
                      (size_t)known - declared);
    if (w > 0 && (size_t)w < len)
        snprintf(buf + w, len - (size_t)w, ")");
}

/* SIGHUP: read the file again; the parts take what concerns them. */
static int reload(tallyd_t *d)
{
    bool start_refuses = false;
    reload_target_t t = {&d->cfg,  &d->opts,          &d->engine, &d->towns,     &d->metrics,
                         &d->keys, d->server.secured, &d->log,    &start_refuses};
    tallyd_config_t next;
    keyring_t keys;
    int rc = reload_prepare(&t, &next, &keys);
    if (rc == TALLY_ENOTFOUND)
        return 0;
    /* Counted as Prometheus counts its own reloads, for an alert: a
     * refused reload leaves everything of the file out, a key it revokes
     * too. */
    d->stats.config_start_refused = start_refuses;
    d->stats.config_reload_refused = rc != 0;
    if (rc != 0) {
        d->stats.config_reload_failures++;
        d->reload_refused_ms = clock_now_ms(d->clock);
        /* The next start checks the file against the last checkpoint, and
         * a metric whose first tallies came since is not in it: without a
         * checkpoint now, a crash and a start with this file would replay
         * those tallies at the scale or kind the reload refused. */
        if (start_refuses)
            compact_request(&d->compact);
        return rc;
    }
    d->stats.config_reloads++;
    d->stats.config_loaded_ms = clock_now_ms(d->clock);
    reload_apply_catalog(&t, &next);
    if (ingest_set_catalog(&d->ingest, &next) != 0)
        log_error(&d->log, "reload: out of memory for the catalog's bounds and names; the old "
                           "stay");
    /* The keyring first: a request socket bound again for a new frame
     * limit takes its clients' handshakes with the keys now in force. */
    size_t cut = 0;
    if (d->server.secured) {
        cut = reload_report_keys(&t, &keys);
        keyring_free(&d->keys);
        d->keys = keys; /* a struct copy moves a keyring (keys.h) */
        endpoints_set_keyring(&d->ep, &d->keys);
    } else {
        keyring_free(&keys);
    }
    endpoints_limits_t el = endpoints_limits_from(&next);
    endpoints_set_limits(&d->ep, &el);
    if (cut > 0)
        endpoints_cut_subscribers(&d->ep);
    /* The range was checked by config_keys.c; ratelimit_set() refuses only
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
    /* backup_fetch reads these from the backup part at each fetch. */
    backup_settings_t bs = tallyd_backup_settings(&next);
    backup_set(&d->backup, &bs);
    snapshot_limits_t sl = tallyd_snapshot_limits(&next);
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
    warn_series_limit(d, "reload: ");
    log_notice(&d->log,
               "reloaded %s: %zu township%s, %zu metric%s, %zu ratio%s declared; tallies kept",
               d->opts.config_path, next.ntownships, TEXT_PLURAL(next.ntownships), next.nmetrics,
               TEXT_PLURAL(next.nmetrics), next.nratios, TEXT_PLURAL(next.nratios));
    return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
    tallyd_t *d = s->data;
    if (signum == SIGUSR1) {
        log_notice(&d->log, "SIGUSR1: writing a backup");
        backup_now(&d->backup, "SIGUSR1");
        return;
    }
    if (signum == SIGHUP) {
        log_notice(&d->log, "SIGHUP: reloading the configuration");
        notify_send(&d->notify, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
                    (unsigned long long)(uv_hrtime() / 1000),
                    d->opts.config_path ? d->opts.config_path : "");
        reload(d);
        char cs[CONFIG_PATH_MAX + 200];
        config_status(d, cs, sizeof(cs));
        notify_send(&d->notify, "READY=1\nSTATUS=%sserving", cs[0] ? cs : "reloaded; ");
        return;
    }
    log_notice(&d->log, "%s: stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    tallyd_stop(d, 0);
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
    arm_tick(d, clock_now_ms(d->clock));
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
    uv_signal_t *sigs[] = {&d->sigint, &d->sigterm, &d->sighup, &d->sigusr1};
    int nums[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
    for (int i = 0; i < 4; i++) {
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

static void on_backup_closed(backup_t *b)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)b - offsetof(tallyd_t, backup));
    d->open_handles--;
}

static void on_fetch_closed(backup_fetch_t *f)
{
    tallyd_t *d = (tallyd_t *)(void *)((char *)f - offsetof(tallyd_t, fetch));
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
void tallyd_stop(tallyd_t *d, int exit_code)
{
    if (d->stopping)
        return;
    d->stopping = true;
    d->exit_code = exit_code;
    if (d->serving)
        notify_send(&d->notify, "STOPPING=1\nSTATUS=stopping: flushing the journal");
    else /* a failed start: its last STATUS would have said stopping */
        notify_send(&d->notify, "STOPPING=1\nSTATUS=the start failed (exit status %d): see the log",
                    exit_code);
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
    if (d->fetch_open) {
        /* The fetches being read are answered UNAVAILABLE now, while the
         * request socket can still send (request.c's callback). */
        d->open_handles++;
        backup_fetch_close(&d->fetch, on_fetch_closed);
    }
    if (d->backup_open) {
        if (d->request_open)
            request_backup_abandon(&d->request);
        d->open_handles++;
        backup_close(&d->backup, on_backup_closed);
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
            (uv_handle_t *)&d->sigusr1,
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

/* Everything up to serving (tallyd_start_parts), then the loop's own
 * handles. */
static int start(tallyd_t *d)
{
    int rc = tallyd_start_parts(d);
    if (rc == 0)
        start_handles(d);
    return rc;
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
    const char *child_max = getenv("TALLYD_TEST_CHECKPOINT_CHILD_MAX_MS");
    if (child_max)
        d->test_checkpoint_child_max_ms = atoi(child_max);
    notify_send(&d->notify, "STATUS=starting: loading the configuration");
    int rc = start(d);
    /* Exit status 2 for what the operator must fix in the configuration,
     * 1 for everything else (tallyd(8)). */
    int status = rc == 0 ? 0 : rc == TALLY_ECONFIG ? 2 : 1;
    if (rc == 0) {
        d->serving = true;
        d->stats.config_loaded_ms = clock_now_ms(d->clock);
        notify_send(&d->notify,
                    "READY=1\nSTATUS=serving: requests on %s, updates on %s, %u series, %u "
                    "townships",
                    endpoints_request(&d->ep), endpoints_publish(&d->ep),
                    engine_series_count(&d->engine), intern_count(&d->towns));
        /* The two halves of the catalog close apart: a file may declare
         * its townships and keep the built-in, open, metrics. */
        char towns[96], metrics[96];
        names_count(towns, sizeof(towns), intern_count(&d->towns), d->cfg.ntownships,
                    d->cfg.catalog_closed_townships, "township");
        /* Ratios are named among the metrics but counted apart, as
         * --check-config counts them; every ratio is declared. */
        names_count(metrics, sizeof(metrics), intern_count(&d->metrics) - (uint32_t)d->cfg.nratios,
                    d->cfg.nmetrics, d->cfg.catalog_closed_metrics, "metric");
        warn_series_limit(d, "");
        log_notice(&d->log,
                   "tallyd %s ready: requests on %s, updates on %s, state in %s, %s, %s, %zu "
                   "ratio%s, %s",
                   TALLY_VERSION, endpoints_request(&d->ep), endpoints_publish(&d->ep),
                   d->cfg.state_dir, towns, metrics, d->cfg.nratios, TEXT_PLURAL(d->cfg.nratios),
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
    tallyd_stop(d, status);
    uv_run(d->loop, UV_RUN_DEFAULT);
    free_all(d);
    uv_loop_close(d->loop);
    free(d);
    return status;
}
