/* history.h - closed calendar periods: the value of every series for
 * every day, month, quarter and year, kept after the period ends
 * (PROTOCOL.md 10.8).
 *
 * Cells.  One cell per (metric, township, period), township 0 being the
 * county.  Counter: the sum of the samples whose event time lies in the
 * period.  Gauge: per township the value of the latest-stamped sample in
 * the period (equal times: the later applied wins); the county's cell is
 * the sum of the townships' cells of that period.  Ratios have no cells:
 * history_read() derives them from their operands, as the engine does.
 * Periods are those of the engine's time zone (the process's, period.h).
 *
 * Exactly once.  history_apply() is called with every journal record the
 * moment the engine applies it, live or replayed, with the record's
 * journal position; the cells then reflect exactly the records up to
 * history_position().  A record at or below that position is skipped, so
 * a record replayed after a crash is never counted twice.
 *
 * Storage.  The cells live in memory (reads never touch the disk) and are
 * mirrored into an SQLite database in the state directory
 * (history_db.h): a writer thread stores the changed cells, as absolute
 * values, together with the journal position they reflect, in one
 * transaction, so the database always holds exactly the records up to the
 * position it records; a month, quarter or year not yet ended is stored
 * as its days only (history_db.h, open periods).  At start-up the
 * database is loaded, those periods are derived from their days, and the
 * journal records after its position are applied again.
 *
 * Threads.  Everything here runs on the loop thread, except the writer's
 * work inside history_db.c, which touches only the batch it is handed.
 */
#ifndef TALLYD_HISTORY_H
#define TALLYD_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "calperiod.h"
#include "clock.h"
#include "engine.h"
#include "history_db.h"
#include "intern.h"
#include "log.h"

#define HISTORY_DAYS_DEFAULT   1100
#define HISTORY_DAYS_MIN       1
#define HISTORY_DAYS_MAX       36600
#define HISTORY_FLUSH_MS       500   /* how often changed cells are stored */
#define HISTORY_RECENT         4096  /* series whose cells are remembered */
#define HISTORY_RECENT_WAYS    4     /* ... in sets of four (a power of 2) */
#define HISTORY_POPULATE_CELLS 87381 /* cells made resident ahead: 2 MiB */
/* Kept this many days or more, every open month, quarter and year (from
 * the day the database began so) has all its days in the database, which
 * then stores it only once it has ended (history_db.h, open periods). */
#define HISTORY_OPEN_DAYS 366

/* A sample changed closed periods of series (metric, town): periods[0..n)
 * (1..4, day first).  Called after the record is applied, only once the
 * history is live (history_start). */
typedef void (*history_changed_fn)(void *ctx, uint32_t metric, uint32_t town,
                                   const calperiod_t *periods, uint32_t n);

typedef struct history_config {
    const engine_t *engine;  /* metric kinds and ratios, read */
    const intern_t *towns;   /* names for the database, read */
    const intern_t *metrics; /* read */
    const tclock_t *clock;   /* "now": which periods are closed, retention */
    logger_t *log;
    int64_t days;                  /* days kept (HISTORY_DAYS_MIN..MAX) */
    history_changed_fn on_changed; /* may be NULL */
    void *ctx;
} history_config_t;

/* A period's value of a series: 24 bytes.  A gauge's cell is followed by
 * a second one, of no period, whose value is the event time of the
 * gauge's value (most cells are counters', which need none). */
typedef struct history_cell {
    uint32_t metric;
    uint32_t town;
    int32_t key;   /* the period's key (calperiod.h) */
    uint8_t type;  /* enum calperiod_type, or a mark (history_impl.h) */
    uint8_t flags; /* CELL_* (history_impl.h) */
    int64_t value;
} history_cell_t;

/* The part; embed it, its fields are private. */
typedef struct history {
    history_config_t c;
    history_cell_t *cells;
    uint32_t ncells, cap;
    uint32_t populated; /* cells below it are resident (memhint_populate) */
    uint32_t nevents;   /* of the cells, gauges' event times */
    uint32_t *index;    /* cell + 1, 0 = empty; open addressing */
    uint32_t mask;
    uint32_t *dirty; /* cells changed since the last batch */
    uint32_t ndirty, dirty_cap;
    uint64_t applied_pos; /* the last journal position applied */
    uint64_t stored_pos;  /* the position the database holds */
    bool live;
    /* changed past periods of the record being applied */
    struct history_change *changes;
    uint32_t nchanges, changes_cap;
    /* Local days whose period keys are known: two event days (most
     * samples are of today, some late), and today by the clock. */
    struct history_day {
        int64_t start_ms, end_ms;
        int32_t keys[4];
    } cached[2], today;
    /* The four cells (day first) of recently written series and of
     * their county, by their day: a sample of a series finds its cells
     * without the index.  A counter's samples are summed in pending and
     * added to the eight cells later (history_settle_all() in history.c: before
     * every read, batch and pruning), so a sample costs one addition
     * instead of eight.  An entry with a pending sum is never taken by
     * another series: that series' samples go to its cells at once
     * (recent_of() in history.c). */
    struct history_recent {
        uint32_t metric, town; /* metric 0: empty */
        int32_t day;
        bool queued;     /* in pending_slots */
        int64_t pending; /* counter samples not yet in the cells */
        uint32_t cell[4], county[4];
    } * recent;
    uint32_t *pending_slots; /* recent entries with a pending sum */
    uint32_t npending;
    /* the database and its writer */
    history_db_t db;
    bool db_open;
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_async_t done;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    history_batch_t *batch; /* handed to the writer; NULL when idle */
    bool batch_done, quit, started, thread_started;
    int open_handles;
    uint64_t failures; /* batches the database refused */
    bool failures_logged;
    bool batch_busy;       /* the writer holds batch (loop thread only) */
    bool sync_init;        /* mu and cv exist */
    const char *dir;       /* the state directory (borrowed) */
    uint64_t loaded_pos;   /* the position the database held at the start */
    int32_t pruned_before; /* days before it are gone from the database */
    int32_t db_open_from;  /* the database's open periods (history_db.h): */
    int32_t db_through;    /* ... its meta rows as day keys */
    bool db_empty;         /* it has never held a row: the rules may begin at any day */
    int32_t pruned_mem;    /* ... and from memory */
    int32_t oldest_day;    /* the least day key of the day cells in memory (INT32_MAX: none),
                              or INT32_MIN: not known yet */
    /* The cells of dropped days, which no series holds any more: the
     * free ones chained through their values from free_head (cell + 1,
     * 0: none) for the next new cells. */
    uint32_t nholes, free_head;
    /* A pass dropping the days before prune_first, in turns of the
     * writer's timer: the next cell to look at, and the least day key
     * kept so far (history_prune.c, prune_turn()). */
    bool pruning;
    uint32_t prune_at;
    int32_t prune_first, prune_oldest;
    size_t mem;
    int64_t batch_start_ms;          /* when the writer was handed batch */
    int64_t rest_until_ms;           /* no batch before it: the writer rests */
    struct history_preload *preload; /* history_preload()'s reading, until history_open() */
} history_t;

/* Set h up, empty, from c (copied; pointers borrowed).  Returns 0 or
 * TALLY_ENOMEM. */
int history_init(history_t *h, const history_config_t *c);

/* Free everything (history_stop() first when started); waits for a
 * reading history_preload() began. */
void history_free(history_t *h);

/* Begin history_open()'s reading of history.db in dir on a thread of its
 * own (tallyd-hload), so that it runs beside the checkpoint's load: the
 * database is opened (created when missing) and its cells read into h
 * with their names in tables of the thread's own, sized like towns and
 * metrics, which are not touched.  history_open() waits for it and gives
 * the names their ids.  Nothing else may use h meanwhile.  Returns 0 or
 * TALLY_ENOMEM; whatever the reading met, history_open() reports. */
int history_preload(history_t *h, const char *dir, const intern_t *towns, const intern_t *metrics);

/* Open or create the database history.db in dir and load its cells (or
 * take those history_preload() read); the names it holds are added to
 * towns and metrics (the tables history was configured with) when
 * missing, in the order the database holds them.  A damaged database
 * (history_db_open(), history_db_load(): TALLY_EDAMAGED) is set aside as
 * history.db.damaged-<time> with a message saying so, and a new one is
 * begun (history_position() is then 0, and *rebuilt is set).  One that
 * cannot be opened or read now (a full disk, an I/O error: TALLY_EIO) is
 * left as it is.  Returns 0; TALLY_EIO (logged) when the database cannot
 * be opened or read now, or not even a new one can be created;
 * TALLY_ENOMEM, or a code of a name the tables have no room for (logged). */
int history_open(history_t *h, const char *dir, intern_t *towns, intern_t *metrics, bool *rebuilt);

/* The last journal position the cells reflect. */
static inline uint64_t history_position(const history_t *h)
{
    return h->applied_pos;
}

/* After replay: the journal's records up to pos are all applied (some
 * positions hold no submission). */
void history_set_position(history_t *h, uint64_t pos);

/* Apply the record at journal position pos: n samples (metric ids and
 * values, as handed to engine_apply) of township town with event time
 * time_ms.  A record at or below history_position() is skipped.  Returns
 * 0 or TALLY_ENOMEM (nothing changed). */
int history_apply(history_t *h, uint64_t pos, uint32_t town, int64_t time_ms,
                  const engine_sample_t *samples, uint32_t n);

/* history_apply()'s engine_prefetch() (engine.h), for a record of
 * township town with event time time_ms: stage 0 the recent entries' set
 * and the index slots of the township's four cells, 1 the cells the
 * slots name.  Only a hint, changing nothing; a record of a day other
 * than the last one applied gets none. */
void history_prefetch(const history_t *h, uint32_t town, int64_t time_ms,
                      const engine_sample_t *samples, uint32_t n, int stage);

/* The value of (metric, town) in period p: a counter without samples
 * there reads 0, a gauge without one "no value", a ratio [num, den] or
 * "no value" (engine.h's rules).  out->name is not set.  Not const: the
 * counter sums still pending are added to the cells first. */
void history_read(history_t *h, uint32_t metric, uint32_t town, calperiod_t p, engine_value_t *out);

/* True when day cells of p are no longer kept (p is a day older than the
 * configured days). */
bool history_expired(history_t *h, calperiod_t p);

/* Today's day key in the engine's time zone, by the clock (the day's
 * bounds are cached, hence the non-const h). */
int32_t history_today(history_t *h);

/* Start storing changed cells every HISTORY_FLUSH_MS through a writer
 * thread, which rests at least as long as its last batch took: under a
 * load it cannot keep up with, it takes half a core at most, and each
 * batch gathers more changes (which then cost less each: changes spread
 * at random rewrite much the same pages of the database whatever their
 * number).  Drop days older than the configured days; from now on
 * changes to closed periods are reported to on_changed.  Returns 0 or a
 * negative code (logged). */
int history_start(history_t *h, uv_loop_t *loop);

/* Keep days for days from now on (a reload). */
void history_set_days(history_t *h, int64_t days);

/* At a stop: store what is left, stop the writer, close the database
 * (synchronously), then close the handles; on_closed is called once they
 * are closed. */
void history_stop(history_t *h);

/* Handles still open after history_stop() (the wiring waits for 0). */
static inline int history_open_handles(const history_t *h)
{
    return h->open_handles;
}

/* The first journal position the database does not hold yet: the
 * journal must keep the records from there on (compact.h, hold_pos). */
static inline uint64_t history_hold_pos(const history_t *h)
{
    return h->stored_pos + 1;
}

/* Bytes of memory the cells hold. */
static inline size_t history_memory(const history_t *h)
{
    return h->mem;
}

/* Number of periods' values held. */
static inline uint32_t history_cells(const history_t *h)
{
    return h->ncells - h->nevents - h->nholes;
}

/* Journal records applied to the cells that the database does not hold
 * yet (how far the writer is behind). */
static inline uint64_t history_unstored(const history_t *h)
{
    return h->applied_pos > h->stored_pos ? h->applied_pos - h->stored_pos : 0;
}

#endif
