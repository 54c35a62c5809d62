/* tallyd_impl.h - tallyd (daemon/, private to the wiring): the daemon's
 * one struct, shared by tallyd.c (the loop, its timers and signals,
 * reload, stopping) and tallyd_start.c (the callbacks each part is handed,
 * and the start-up that creates the parts and recovers the state).
 * Nothing else includes it; no part sees the struct. */
#ifndef TALLYD_TALLYD_IMPL_H
#define TALLYD_TALLYD_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "backup.h"
#include "backup_fetch.h"
#include "clock.h"
#include "compact.h"
#include "config.h"
#include "dedup.h"
#include "endpoints.h"
#include "engine.h"
#include "history.h"
#include "ingest.h"
#include "intern.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "notify.h"
#include "publish.h"
#include "ratelimit.h"
#include "recall.h"
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
    history_t history;    /* closed periods, mirrored into history.db */
    recall_t recall;      /* PERIOD_REQ and RANGE_REQ */
    backup_t backup;      /* SIGUSR1 and [backup] interval */
    backup_fetch_t fetch; /* BACKUP_FETCH: backups' files read for copies, in backup's dir */
    bool ep_open, request_open, ingest_open, journal_open, publish_open, snapshot_open,
        compact_open, history_open, history_started, recall_open, backup_open, fetch_open;

    uv_timer_t tick_timer;     /* time moves the tallies on: at each boundary, at least each
                                  second (tallyd.c arm_tick) */
    uv_timer_t watchdog_timer; /* WATCHDOG=1 at half of $WATCHDOG_USEC */
    uv_timer_t status_timer;   /* periodic STATUS= line */
    uv_prepare_t iter_prepare; /* expire clock_cache before polling */
    uv_check_t iter_check;     /* and after the I/O callbacks, before timers */
    uv_signal_t sigint, sigterm, sighup, sigusr1;
    bool handles_open;
    int open_handles; /* closes still to come before the loop may end */
    uint64_t status_last_accepted;
    int64_t reload_refused_ms; /* wall-clock time of the last reload refused (STATUS=) */

    int test_stall_ms;                /* TALLYD_TEST_STALL_MS: stall the loop once (tests) */
    int test_checkpoint_child_max_ms; /* TALLYD_TEST_CHECKPOINT_CHILD_MAX_MS: children killed
                                         after this long (tests; 0: compact.h's default) */
    int test_checkpoint_child_ms;     /* TALLYD_TEST_CHECKPOINT_CHILD_MS: checkpoint children wait
                                         (tests) */
    bool serving;                     /* recovery completed and the loop ran */
    bool journal_failing;             /* a journal write failed: submissions refused */
    char journal_why[256];            /* ... what failed, for the STATUS line */
    bool stopping;
    int exit_code;
} tallyd_t;

/* tallyd_start.c: everything up to the loop's own handles: the
 * configuration and keys read, the sockets bound, the state recovered, the
 * parts created.  Returns 0, TALLY_ECONFIG (the configuration, its keys,
 * or a state it cannot use) or another negative code; each failure is
 * logged where it happens, and what was opened is marked in d for
 * tallyd_stop(). */
int tallyd_start_parts(tallyd_t *d);

/* The backup settings of a configuration (start-up and reload). */
backup_settings_t tallyd_backup_settings(const tallyd_config_t *c);

/* The snapshot limits of a configuration (start-up and reload). */
snapshot_limits_t tallyd_snapshot_limits(const tallyd_config_t *c);

/* tallyd.c: close whatever is open, in the order data flows; the loop then
 * ends and tallyd_main() returns exit_code.  A second call does nothing. */
void tallyd_stop(tallyd_t *d, int exit_code);

#endif
