/* web_stats.c - tally-web (web/): Prometheus metrics. */
#include "web_stats.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "text.h"
#include "web_feed.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool web_stats_name_ok(const char *name)
{
    if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return false;
    }
    return true;
}

static void collect(void *ctx, const char *name, int64_t value)
{
    web_stats_set_t *set = ctx;
    /* A name Prometheus cannot take, or one past the protocol's limit,
     * is left out rather than served broken. */
    if (set->n == WEB_STATS_MAX || strlen(name) > WEB_STATS_NAME_MAX || !web_stats_name_ok(name))
        return;
    snprintf(set->v[set->n].name, sizeof set->v[set->n].name, "%s", name);
    set->v[set->n].value = value;
    set->n++;
}

/* The display's catalog JSON (see web_stats_catalog), or NULL. */
static char *catalog_to_json(const tally_catalog_t *cat)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    fputs("{\"available\":true,\"metrics\":[", f);
    for (size_t i = 0; i < tally_catalog_metrics(cat); i++) {
        const tally_metric_info_t *m = tally_catalog_metric(cat, i);
        fputs(i ? ",{\"id\":" : "{\"id\":", f);
        text_json_string(f, m->id, strlen(m->id));
        fputs(",\"label\":", f);
        text_json_string(f, m->label, strlen(m->label));
        fputs(",\"unit\":", f);
        text_json_string(f, m->unit, strlen(m->unit));
        fprintf(f, ",\"kind\":\"%s\",\"scale\":%d", tally_kind_name(m->kind), m->scale);
        if (m->numerator[0] != '\0') { /* a ratio: what it divides */
            fputs(",\"numerator\":", f);
            text_json_string(f, m->numerator, strlen(m->numerator));
            fputs(",\"denominator\":", f);
            text_json_string(f, m->denominator, strlen(m->denominator));
        }
        fputc('}', f);
    }
    fputs("],\"townships\":[", f);
    for (size_t i = 0; i < tally_catalog_townships(cat); i++) {
        const tally_township_info_t *t = tally_catalog_township(cat, i);
        fputs(i ? ",{\"id\":" : "{\"id\":", f);
        text_json_string(f, t->id, strlen(t->id));
        fputs(",\"label\":", f);
        text_json_string(f, t->name, strlen(t->name));
        fprintf(f, ",\"type\":%d}", t->type);
    }
    fputs("]}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* On a worker thread: only s->polling and the read-only settings. */
static void do_poll(uv_work_t *w)
{
    web_stats_t *s = w->data;
    web_stats_set_t *set = &s->polling;
    set->n = 0;
    set->err[0] = '\0';
    tally_request_t req = {.curve = s->curve,
                           .timeout_ms = WEB_STATS_TIMEOUT_MS,
                           .errbuf = set->err,
                           .errbuf_len = sizeof set->err};
    set->rc = tally_stats_req(s->server, &req, collect, set);
    free(set->catalog_json);
    set->catalog_json = NULL;
    tally_catalog_destroy(&set->catalog);
    if (set->rc != 0)
        return;
    char err[256];
    req.errbuf = err;
    req.errbuf_len = sizeof err;
    if (tally_catalog_req(s->server, &req, &set->catalog) == 0) {
        set->catalog_json = catalog_to_json(set->catalog);
        if (set->catalog_json == NULL)
            tally_catalog_destroy(&set->catalog); /* the two go together */
    }
    int64_t asked = wall_ms();
    set->have_clock = tally_clock_req(s->server, &req, &set->clock) == 0;
    /* Half-way through the round trip: off by at most half of it. */
    set->clock_skew_ms = set->clock.now_ms - (asked + wall_ms()) / 2;
}

static void after_poll(uv_work_t *w, int status)
{
    web_stats_t *s = w->data;
    s->busy = false;
    if (s->stopping) {
        free(s->polling.catalog_json); /* shutting down: nobody to give it to */
        s->polling.catalog_json = NULL;
        tally_catalog_destroy(&s->polling.catalog);
        return;
    }
    s->polls++;
    s->last_rc = status == 0 ? s->polling.rc : TALLY_ESYS;
    if (status == 0 && s->polling.rc == 0) {
        char *cat = s->polling.catalog_json;
        s->polling.catalog_json = NULL;
        if (cat != NULL) {
            free(s->catalog_json);
            s->catalog_json = cat;
            tally_catalog_destroy(&s->catalog);
            s->catalog = s->polling.catalog;
            s->polling.catalog = NULL;
        }
        if (s->polling.have_clock) {
            s->clock = s->polling.clock;
            s->clock_skew_ms = s->polling.clock_skew_ms;
            s->have_clock = true;
        }
        s->last = s->polling;
        s->last.catalog_json = NULL;
        s->last.catalog = NULL;
        s->have_last = true;
        s->last_ok_ms = wall_ms();
    } else {
        s->failures++;
    }
}

void web_stats_clock_json(const web_stats_t *s, char *buf, size_t cap)
{
    if (!s->have_clock) {
        snprintf(buf, cap, "{\"available\":false}\n");
        return;
    }
    FILE *f = fmemopen(buf, cap, "w");
    if (f == NULL) {
        snprintf(buf, cap, "{\"available\":false}\n");
        return;
    }
    fputs("{\"available\":true,\"zone\":", f);
    text_json_string(f, s->clock.zone, strlen(s->clock.zone));
    fprintf(f, ",\"utc_offset_s\":%" PRId32 ",\"now_ms\":%" PRId64 "}\n", s->clock.utc_offset_s,
            s->clock.now_ms);
    fclose(f);
}

static void on_timer(uv_timer_t *t)
{
    web_stats_t *s = t->data;
    if (s->busy)
        return; /* the last poll is still waiting for tallyd */
    s->busy = true;
    s->work.data = s;
    if (uv_queue_work(s->loop, &s->work, do_poll, after_poll) != 0)
        s->busy = false;
}

int web_stats_start(web_stats_t *s, uv_loop_t *loop, const char *server, const tally_curve_t *curve)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->server = server;
    s->curve = curve;
    if (uv_timer_init(loop, &s->timer) != 0)
        return TALLY_ESYS;
    s->timer.data = s;
    uv_timer_start(&s->timer, on_timer, 0, WEB_STATS_INTERVAL_MS);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    web_stats_t *s = h->data;
    s->closed = true;
    free(s->catalog_json);
    s->catalog_json = NULL;
    tally_catalog_destroy(&s->catalog);
    if (!s->busy) { /* what a poll that failed left (a running one frees its own) */
        free(s->polling.catalog_json);
        s->polling.catalog_json = NULL;
        tally_catalog_destroy(&s->polling.catalog);
    }
}

void web_stats_stop(web_stats_t *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}

bool web_stats_busy(const web_stats_t *s)
{
    return s->busy;
}

/* What each of tallyd's STATS counters is, for its HELP line, and its
 * TYPE.  A row whose name ends in '_' is a family: tallyd_rejected_
 * REASON_total for every wire code, tallyd_zap_denied_VERDICT_total; the
 * help is completed by what the name's part says.  A name not here (from
 * a newer tallyd) gets a line saying only that, and a TYPE by its suffix:
 * "_total" a counter, else a gauge. */
typedef struct stat_help {
    const char *name;
    bool counter;
    const char *help;
} stat_help_t;

static const stat_help_t stat_helps[] = {
    {"tallyd_submissions_accepted_total", true,
     "Submissions tallyd accepted (each acknowledged once in its journal)."},
    {"tallyd_samples_accepted_total", true, "Samples in the submissions tallyd accepted."},
    {"tallyd_duplicates_total", true,
     "Submissions sent again with a seq tallyd had accepted already: acknowledged, not counted "
     "twice."},
    {"tallyd_rejected_total", true,
     "Submissions tallyd refused, whatever the reason (BUSY, RATE_LIMITED and UNAVAILABLE, which "
     "clients resend, included)."},
    {"tallyd_submissions_refused_for_good_total", true,
     "Submissions tallyd refused with a code clients do not resend (an unknown township or "
     "metric, a bad time or value...): figures never counted unless sent again, fixed."},
    {"tallyd_rejected_", true,
     "Submissions tallyd refused, and other requests it answered ERROR (reads of the history by "
     "tally-web and tally get, snapshots, backups), with code"},
    {"tallyd_bad_requests_total", true,
     "Requests other than submissions that tallyd answered ERROR (reads of the history, "
     "snapshots, backups...)."},
    {"tallyd_updates_published_total", true, "UPDATE messages tallyd published to subscribers."},
    {"tallyd_heartbeats_total", true, "Heartbeats tallyd published to subscribers."},
    {"tallyd_snapshots_total", true,
     "Snapshots tallyd sent to subscribers (tally-web, tally watch)."},
    {"tallyd_snapshot_items_total", true, "Tallies tallyd sent in snapshots."},
    {"tallyd_snapshots_refused_total", true,
     "Snapshot requests tallyd refused BUSY: [limits] max_snapshots under way, or one under way "
     "on that connection."},
    {"tallyd_snapshots_abandoned_total", true,
     "Snapshots tallyd gave up: the subscriber gone, or not reading for [limits] "
     "snapshot_timeout."},
    {"tallyd_subscriptions_refused_total", true,
     "Subscriptions tallyd did not apply: a prefix no topic begins with, or beyond [limits] "
     "max_subscriptions or max_subscription_bytes."},
    {"tallyd_connections_refused_total", true,
     "Connections tallyd refused at the handshake: beyond [limits] max_connections."},
    {"tallyd_prompt_heartbeats_skipped_total", true,
     "Heartbeats for new subscribers folded into one already due (one per 100 ms at most)."},
    {"tallyd_unroutable_replies_total", true,
     "Replies tallyd dropped: the peer gone before its reply, or its [limits] max_reply_queue "
     "full."},
    {"tallyd_clients_expired_total", true,
     "Client ids tallyd forgot after [limits] client_expiry without a submission."},
    {"tallyd_period_changes_published_total", true,
     "PERIOD_CHANGED messages tallyd published: a late figure changed closed periods."},
    {"tallyd_period_requests_total", true,
     "Reads of the history tallyd answered (PERIOD_REQ, RANGE_REQ, SPAN_REQ: tally-web's "
     "/api/v1/period and /api/v1/range, tally get --period, tally history)."},
    {"tallyd_township_pages_total", true, "Pages of its township list tallyd answered."},
    {"tallyd_series", false, "Series (a metric of the county or of a township) tallied now."},
    {"tallyd_clients", false, "Client ids in tallyd's de-duplication table now."},
    {"tallyd_townships", false, "Townships tallyd knows now."},
    {"tallyd_metrics", false, "Metrics tallyd knows now."},
    {"tallyd_subscribers", false, "Connections to tallyd's publish socket now."},
    {"tallyd_connections", false, "Connections to tallyd's request socket now."},
    {"tallyd_connections_accepted_total", true,
     "Connections tallyd admitted on its request socket since it started."},
    {"tallyd_snapshots_active", false, "Snapshots tallyd is sending now."},
    {"tallyd_sequence", false, "tallyd's seq: the number of its last update."},
    {"tallyd_uptime_seconds", false, "Seconds since tallyd started."},
    {"tallyd_memory_bytes", false,
     "Memory tallyd's tallies, de-duplication table, names and history take, as it counts them."},
    {"tallyd_memory_engine_bytes", false, "Of tallyd_memory_bytes: the live tallies."},
    {"tallyd_memory_history_bytes", false,
     "Of tallyd_memory_bytes: the history of closed periods."},
    {"tallyd_history_cells", false, "Cells of closed periods tallyd holds."},
    {"tallyd_history_store_failures_total", true,
     "Writes to history.db that failed (tallyd's log says why)."},
    {"tallyd_history_unstored_records", false,
     "Journal records applied but not yet stored in history.db."},
    {"tallyd_backups_total", true,
     "Backups tallyd wrote since it started (asked for, on SIGUSR1, or every [backup] "
     "interval)."},
    {"tallyd_backup_failures_total", true, "Backups that failed since tallyd started."},
    {"tallyd_backup_last_success_timestamp_seconds", false,
     "Unix time of the last backup tallyd wrote; 0: none since it started."},
    {"tallyd_backup_interval_seconds", false,
     "[backup] interval in force, in seconds; 0: backups only when asked."},
    {"tallyd_backup_fetches_total", true,
     "Pieces of backups tallyd sent for tally backup --copy-to (BACKUP_FETCH)."},
    {"tallyd_backup_fetch_bytes_total", true, "Bytes of backup files in those pieces."},
    {"tallyd_config_last_reload_successful", false,
     "1 unless tallyd refused the last reload (SIGHUP) of its configuration file, and kept the "
     "previous configuration in force, the file's key revocations too; 0 until a reload "
     "succeeds."},
    {"tallyd_config_last_reload_success_timestamp_seconds", false,
     "Unix time the configuration in force was read: tallyd's start, or the last reload it "
     "accepted."},
    {"tallyd_config_reloads_total", true,
     "Reloads (SIGHUP) whose configuration file tallyd put in force since it started."},
    {"tallyd_config_reload_failures_total", true,
     "Reloads (SIGHUP) tallyd refused since it started (its log says why)."},
    {"tallyd_config_next_start_refused", false,
     "1 when the configuration file tallyd read at the last reload holds what its next start "
     "would refuse against the state (windows, buckets or time zone changed, a metric's kind its "
     "tallies contradict, a file that does not load): a restart would fail with exit status 2."},
    {"tallyd_zap_allowed_total", true, "Handshakes tallyd's key check ([security]) admitted."},
    {"tallyd_zap_denied_", true, "Handshakes tallyd's key check ([security]) refused:"},
};

/* What tallyd_zap_denied_VERDICT_total counts (daemon/zap.c). */
static const char *zap_verdict(const char *v)
{
    static const char *const why[][2] = {
        {"mechanism", "not CURVE (a client without keys)"},
        {"unknown_key", "a key in none of its key directories"},
        {"domain", "a key whose role may not use that socket (a township's or admin's on the "
                   "publish socket)"},
        {"malformed", "not a ZAP request"},
        {"full", "the socket at [limits] max_connections"},
    };
    for (size_t i = 0; i < sizeof why / sizeof why[0]; i++)
        if (strcmp(v, why[i][0]) == 0)
            return why[i][1];
    return v;
}

/* Write the help of tallyd's name (without the newline); *counter: its
 * TYPE. */
static void stat_help(FILE *out, const char *name, bool *counter)
{
    size_t len = strlen(name);
    *counter = len > 6 && strcmp(name + len - 6, "_total") == 0;
    for (size_t i = 0; i < sizeof stat_helps / sizeof stat_helps[0]; i++) {
        const stat_help_t *h = &stat_helps[i];
        size_t n = strlen(h->name);
        if (h->name[n - 1] != '_') {
            if (strcmp(name, h->name) != 0)
                continue;
            *counter = h->counter;
            fputs(h->help, out);
            return;
        }
        if (strncmp(name, h->name, n) != 0 || !*counter || len <= n + 6)
            continue;
        /* The family's part: a reason (a wire code's name in lower case)
         * or a verdict. */
        char part[WEB_STATS_NAME_MAX + 1];
        snprintf(part, sizeof part, "%.*s", (int)(len - n - 6), name + n);
        *counter = h->counter;
        if (strcmp(h->name, "tallyd_zap_denied_") == 0) {
            fprintf(out, "%s %s.", h->help, zap_verdict(part));
            return;
        }
        for (int code = -1; code >= TALLY_EWIRE_LAST; code--) {
            const char *e = tally_errname(code);
            if (strcasecmp(e, part) == 0) {
                fprintf(out, "%s %s: %s.", h->help, e, tally_strerror(code));
                return;
            }
        }
        fprintf(out, "%s %s.", h->help, part);
        return;
    }
    fprintf(out, "tallyd's STATS value %s (one this tally-web does not know).", name);
}

static void metric(FILE *out, const char *name, const char *type, const char *help, uint64_t v)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, v);
}

void web_stats_write(const web_stats_t *s, const web_counters_t *c, const web_stats_feed_t *feed,
                     FILE *out)
{
    metric(out, "tally_web_browsers", "gauge", "WebSocket clients connected now.", c->browsers);
    metric(out, "tally_web_browsers_refused_total", "counter",
           "WebSocket upgrades refused with 503 because --max-clients were connected.",
           c->browsers_refused);
    metric(out, "tally_web_ws_messages_sent_total", "counter",
           "WebSocket messages sent to browsers (snapshots, updates, status).", c->ws_messages);
    metric(out, "tally_web_http_requests_total", "counter", "HTTP requests answered.",
           c->http_requests);
    metric(out, "tally_web_http_unauthorized_total", "counter",
           "HTTP requests answered 401 (no or a wrong token).", c->http_unauthorized);
    metric(out, "tally_web_history_reads_total", "counter",
           "Questions about closed periods asked of tallyd for /api/v1/period and "
           "/api/v1/range (a county read township by township counts twice).",
           c->history_reads);
    metric(out, "tally_web_history_shared_total", "counter",
           "History requests answered by a read asked for another request: running, or kept "
           "since tallyd's closed periods last changed.",
           c->history_shared);
    metric(out, "tally_web_synced", "gauge",
           "1 while the picture is consistent with tallyd and its live stream keeps it "
           "current, else 0 (also while the stream is refused or silent).",
           feed->synced ? 1 : 0);
    metric(out, "tally_web_resyncs_total", "counter",
           "Snapshots taken again after a gap, a daemon restart, GOODBYE or silence.",
           feed->resyncs);
    metric(out, "tally_web_tallies", "gauge", "Tallies in the picture.", feed->tallies);
    metric(out, "tally_web_seq", "gauge", "tallyd's sequence number the picture reflects.",
           feed->seq);
    metric(out, "tally_web_stats_polls_total", "counter", "STATS requests made to tallyd.",
           s->polls);
    metric(out, "tally_web_stats_failures_total", "counter",
           "STATS requests to tallyd that failed or went unanswered.", s->failures);
    metric(out, "tally_web_tallyd_up", "gauge",
           "1 when the last STATS request to tallyd was answered, else 0 (no tallyd_* "
           "series are served then).",
           s->polls > 0 && s->last_rc == 0 ? 1 : 0);
    fputs("# HELP tally_web_tallyd_link The subscriber's connection to tallyd: 1 for the state "
          "it is in (refused: nothing accepts connections at tallyd's address; unreachable: the "
          "network does not reach it, or its name does not resolve; handshake_failed: tallyd "
          "refuses the security handshake of the request connection or of the subscription, "
          "e.g. for a key a reload revoked).\n"
          "# TYPE tally_web_tallyd_link gauge\n",
          out);
    for (int l = WEB_LINK_CONNECTING; l <= WEB_LINK_HANDSHAKE; l++)
        fprintf(out, "tally_web_tallyd_link{state=\"%s\"} %d\n", web_feed_link_name(l),
                feed->link == l);
    if (s->have_clock)
        fprintf(out,
                "# HELP tally_web_tallyd_clock_offset_seconds tallyd's clock minus this machine's, "
                "at the last clock request (a submission dated more than tallyd's [limits] skew "
                "ahead of its clock is refused).\n"
                "# TYPE tally_web_tallyd_clock_offset_seconds gauge\n"
                "tally_web_tallyd_clock_offset_seconds %.3f\n"
                "# HELP tally_web_tallyd_utc_offset_seconds The offset from UTC of tallyd's "
                "calendar zone (its today, month and year), east positive.\n"
                "# TYPE tally_web_tallyd_utc_offset_seconds gauge\n"
                "tally_web_tallyd_utc_offset_seconds %" PRId32 "\n",
                (double)s->clock_skew_ms / 1000.0, s->clock.utc_offset_s);
    if (!s->have_last)
        return;
    int64_t age = wall_ms() - s->last_ok_ms;
    fprintf(out,
            "# HELP tally_web_stats_age_seconds Seconds since tallyd last answered STATS; its "
            "tallyd_* series are served only while the last request was answered.\n"
            "# TYPE tally_web_stats_age_seconds gauge\n"
            "tally_web_stats_age_seconds %.3f\n",
            (double)age / 1000.0);
    /* tallyd's values are known only while it answers: after a request
     * that failed they are left out (Prometheus marks them stale) rather
     * than served frozen, as if tallyd still ran. */
    if (s->last_rc != 0)
        return;
    for (size_t i = 0; i < s->last.n; i++) {
        const web_stat_t *st = &s->last.v[i];
        bool counter;
        fprintf(out, "# HELP %s ", st->name);
        stat_help(out, st->name, &counter);
        fprintf(out, "\n# TYPE %s %s\n%s %" PRId64 "\n", st->name, counter ? "counter" : "gauge",
                st->name, st->value);
    }
}
