/* stats.c - naming and walking the daemon's counters. */
#include "stats.h"

#include <ctype.h>
#include <stdio.h>

void stats_reject(tallyd_stats_t *s, int code)
{
    s->rejected++;
    if (!tally_err_retryable(code))
        s->rejected_for_good++;
    if (code < 0 && code >= TALLY_EWIRE_LAST)
        s->rejected_by[-code]++;
}

void stats_bad_request(tallyd_stats_t *s, int code)
{
    s->bad_requests++;
    if (code < 0 && code >= TALLY_EWIRE_LAST)
        s->rejected_by[-code]++;
}

static int64_t clamp(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

void stats_foreach(const tallyd_stats_t *s, const stats_gauges_t *g,
                   void (*fn)(const char *name, int64_t value, void *ctx), void *ctx)
{
    fn("tallyd_submissions_accepted_total", clamp(s->submissions_accepted), ctx);
    fn("tallyd_samples_accepted_total", clamp(s->samples_accepted), ctx);
    fn("tallyd_duplicates_total", clamp(s->duplicates), ctx);
    fn("tallyd_rejected_total", clamp(s->rejected), ctx);
    fn("tallyd_submissions_refused_for_good_total", clamp(s->rejected_for_good), ctx);
    for (int c = 1; c < STATS_CODES; c++) {
        char name[80];
        const char *reason = tally_errname(-c);
        int n = snprintf(name, sizeof(name), "tallyd_rejected_");
        for (const char *p = reason; *p && n < (int)sizeof(name) - 8; p++)
            name[n++] = (char)tolower((unsigned char)*p);
        snprintf(name + n, sizeof(name) - (size_t)n, "_total");
        fn(name, clamp(s->rejected_by[c]), ctx);
    }
    fn("tallyd_bad_requests_total", clamp(s->bad_requests), ctx);
    fn("tallyd_updates_published_total", clamp(s->updates_published), ctx);
    fn("tallyd_heartbeats_total", clamp(s->heartbeats), ctx);
    fn("tallyd_snapshots_total", clamp(s->snapshots), ctx);
    fn("tallyd_snapshot_items_total", clamp(s->snapshot_items), ctx);
    fn("tallyd_snapshots_refused_total", clamp(s->snapshots_refused), ctx);
    fn("tallyd_snapshots_abandoned_total", clamp(s->snapshots_abandoned), ctx);
    fn("tallyd_subscriptions_refused_total", clamp(s->subscriptions_refused), ctx);
    fn("tallyd_connections_refused_total", clamp(s->connections_refused), ctx);
    fn("tallyd_prompt_heartbeats_skipped_total", clamp(s->prompt_heartbeats_skipped), ctx);
    fn("tallyd_unroutable_replies_total", clamp(s->unroutable_replies), ctx);
    fn("tallyd_clients_expired_total", clamp(s->clients_expired), ctx);
    fn("tallyd_period_changes_published_total", clamp(s->period_changes_published), ctx);
    fn("tallyd_period_requests_total", clamp(s->period_requests), ctx);
    fn("tallyd_township_pages_total", clamp(s->township_pages), ctx);
    fn("tallyd_series", clamp(g->series), ctx);
    fn("tallyd_clients", clamp(g->clients), ctx);
    fn("tallyd_townships", clamp(g->townships), ctx);
    fn("tallyd_metrics", clamp(g->metrics), ctx);
    fn("tallyd_subscribers", clamp(g->subscribers), ctx);
    fn("tallyd_connections", clamp(g->connections), ctx);
    fn("tallyd_connections_accepted_total", clamp(g->connections_accepted), ctx);
    fn("tallyd_snapshots_active", clamp(g->snapshots_active), ctx);
    fn("tallyd_sequence", clamp(g->seq), ctx);
    fn("tallyd_uptime_seconds", clamp(g->uptime_s), ctx);
    fn("tallyd_memory_bytes", clamp(g->memory_bytes), ctx);
    fn("tallyd_memory_engine_bytes", clamp(g->memory_engine_bytes), ctx);
    fn("tallyd_memory_history_bytes", clamp(g->memory_history_bytes), ctx);
    fn("tallyd_history_cells", clamp(g->history_cells), ctx);
    fn("tallyd_history_store_failures_total", clamp(g->history_store_failures), ctx);
    fn("tallyd_history_unstored_records", clamp(g->history_unstored_records), ctx);
    fn("tallyd_backups_total", clamp(g->backups), ctx);
    fn("tallyd_backup_failures_total", clamp(g->backup_failures), ctx);
    fn("tallyd_backup_last_success_timestamp_seconds", clamp(g->backup_last_s), ctx);
    fn("tallyd_backup_interval_seconds", clamp(g->backup_interval_s), ctx);
    fn("tallyd_backup_fetches_total", clamp(s->backup_fetches), ctx);
    fn("tallyd_backup_fetch_bytes_total", clamp(s->backup_fetch_bytes), ctx);
    fn("tallyd_config_last_reload_successful", s->config_reload_refused ? 0 : 1, ctx);
    fn("tallyd_config_last_reload_success_timestamp_seconds",
       s->config_loaded_ms > 0 ? s->config_loaded_ms / 1000 : 0, ctx);
    fn("tallyd_config_reloads_total", clamp(s->config_reloads), ctx);
    fn("tallyd_config_reload_failures_total", clamp(s->config_reload_failures), ctx);
    fn("tallyd_config_next_start_refused", s->config_start_refused ? 1 : 0, ctx);
}
