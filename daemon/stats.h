/* stats.h - the daemon's counters for ops (STATS request, STATUS= lines).
 *
 * Names follow tallyd_<what>_<unit>[_total]; counters only grow.
 */
#ifndef TALLYD_STATS_H
#define TALLYD_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "tally_error.h"

#define STATS_CODES (-TALLY_EWIRE_LAST + 1)

typedef struct tallyd_stats {
    uint64_t submissions_accepted;
    uint64_t samples_accepted;
    uint64_t duplicates;
    uint64_t rejected;                 /* all rejected submissions */
    uint64_t rejected_for_good;        /* ... with a code a client does not resend */
    uint64_t rejected_by[STATS_CODES]; /* by wire code (positive) */
    uint64_t bad_requests;             /* answered with ERROR */
    uint64_t updates_published;
    uint64_t heartbeats;
    uint64_t snapshots;
    uint64_t snapshot_items;
    uint64_t snapshots_refused;         /* BUSY: too many at once, or one per connection */
    uint64_t snapshots_abandoned;       /* peer gone, or not reading for snapshot_timeout */
    uint64_t subscriptions_refused;     /* prefixes no topic can match, or over a limit */
    uint64_t connections_refused;       /* over max_connections, at the handshake */
    uint64_t prompt_heartbeats_skipped; /* a joiner's heartbeat folded into one already due */
    uint64_t unroutable_replies;        /* peer gone before its reply */
    uint64_t clients_expired;           /* client ids forgotten after client_expiry */
    uint64_t period_changes_published;  /* PERIOD_CHANGED sent */
    uint64_t period_requests;           /* PERIOD_REQ and RANGE_REQ answered */
    uint64_t township_pages;            /* TOWNSHIPS answered (a page each) */
    uint64_t backup_fetches;            /* BACKUP_CHUNK sent (BACKUP_FETCH answered) */
    uint64_t backup_fetch_bytes;        /* bytes of backup files in them */
    int64_t started_mono_ms;
    /* Reloads (SIGHUP), as Prometheus counts its own: */
    uint64_t config_reloads;         /* files put in force */
    uint64_t config_reload_failures; /* files refused: the previous configuration stays */
    bool config_reload_refused;      /* the last reload was refused (0 until one is) */
    bool config_start_refused;       /* the file last read by a reload holds what the next start
                                        would refuse against the state (tallyd(8), SIGHUP) */
    int64_t config_loaded_ms;        /* wall-clock time the configuration in force was read: the
                                        start, or the last reload put in force */
} tallyd_stats_t;

/* Gauges that live elsewhere, read when stats are reported. */
typedef struct stats_gauges {
    uint64_t series, clients, townships, metrics, subscribers, seq, uptime_s;
    uint64_t connections, connections_accepted, snapshots_active;
    uint64_t memory_bytes;
    uint64_t memory_engine_bytes, memory_history_bytes; /* parts of memory_bytes */
    uint64_t history_cells, history_store_failures;
    uint64_t history_unstored_records; /* applied, not yet in history.db */
    uint64_t backups, backup_failures; /* backups written, and failed (backup.h) */
    uint64_t backup_last_s;            /* Unix time of the newest backup (on disk), 0: none */
    uint64_t backup_interval_s;        /* [backup] interval in force, 0: only when asked */
} stats_gauges_t;

/* Count one rejection with code (a negative TALLY_E* wire code). */
void stats_reject(tallyd_stats_t *s, int code);

/* Count one request answered with ERROR code (not a submission). */
void stats_bad_request(tallyd_stats_t *s, int code);

/* Call fn(name, value, ctx) for every counter and gauge, in a fixed order.
 * Rejections are reported per reason as
 * tallyd_rejected_<reason>_total (reason = lower-case tally_errname). */
void stats_foreach(const tallyd_stats_t *s, const stats_gauges_t *g,
                   void (*fn)(const char *name, int64_t value, void *ctx), void *ctx);

#endif
