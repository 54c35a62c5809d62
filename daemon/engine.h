/* engine.h - the rolling-tally engine of tallyd: exact int64 tallies of
 * every (metric, township) series and of the county, over sliding windows,
 * calendar periods and all time.  Pure data structures: no sockets, no
 * configuration files, no I/O (except that engine_init looks up the time
 * zone file).  Single-threaded: call everything from the event loop.
 *
 * Ids.  Metrics and townships are named by interned ids (intern.h), > 0.
 * Township id 0 is the county: every metric has a county series next to
 * its township series, maintained on every apply.
 *
 * Kinds.  A metric is a counter unless declared otherwise
 * (engine_define_metric): samples add up.  A gauge keeps per township the
 * latest value by event time (a sample older than the latest is ignored;
 * equal times: the later arrival wins); the county gauge is the sum of the
 * townships' latest values.  A ratio (engine_define_ratio) is derived from
 * a numerator and a denominator metric and stores nothing.
 *
 * Columns.  In this order: the configured sliding windows (window.h), then
 * "today", "month", "quarter", "year" in the engine's time zone
 * (period.h), then "total".  Gauges have a value in "total" only (their
 * latest value); their other columns are "no value".  A ratio column is
 * [num, den] of its inputs' column values, "no value" when den is 0 or an
 * input has no value there; when the inputs have different decimal
 * scales (engine_ratio_set_scales) the pair is scaled so that num / den
 * is the ratio of the values they stand for (engine_ratio_value).  A
 * missing input series reads as 0 for a counter and "no value" for a
 * gauge.
 *
 * Time.  The engine has its own "now", which only moves forward: to the
 * clock's time at each engine_apply(), and to the argument of
 * engine_tick().  Values read are those at that now.  Event times before
 * now - window don't enter that window, times after now enter the current
 * bucket; calendar periods use the event time exactly, but only the
 * current and the next period of each kind are kept (see period.h).
 *
 * Exactness.  engine_apply() is atomic: it first checks that every value it
 * would touch (buckets, window sums, period slots, totals, county values),
 * step by step through the batch, stays within int64, and that the series
 * limit holds; on failure nothing changes.  (A window sum may still leave
 * int64 later, when a negative bucket leaves the window before positive
 * ones: that column then reads "no value" until it is back in range.)
 *
 * Memory.  A counter series takes about 2.3 KiB with 4 windows of 60
 * buckets (header 48 bytes, window rings 2080, calendar slots 128, index);
 * a gauge series about 60 bytes.  Storage grows in chunks as series are
 * created (max_series limits their creation, ENGINE_SERIES_MAX their
 * number) and is never given back before engine_free().
 *
 * Publishing.  Every series whose any column value changes (by apply or by
 * time passing) is marked dirty with the engine's now as its change time;
 * engine_drain_dirty() reports each dirty series and each ratio scope that
 * depends on one, once.
 *
 * Time zone.  engine_init() sets the PROCESS time zone: setenv("TZ", zone)
 * and tzset().  Every engine of a process must use the same zone, and
 * nothing else in the process may change TZ afterwards.
 */
#ifndef TALLYD_ENGINE_H
#define TALLYD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "period.h"
#include "proto.h"
#include "window.h"

#define ENGINE_WINDOWS_MAX     WINDOW_MAX /* 11: 16 columns minus 4 periods and total */
#define ENGINE_BUCKETS_MAX     WINDOW_BUCKETS_MAX
#define ENGINE_BUCKETS_DEFAULT 60
#define ENGINE_WINDOW_MS_MAX   WINDOW_MS_MAX
#define ENGINE_BATCH_MAX       PROTO_SAMPLES_MAX
#define ENGINE_SERIES_MAX      (1u << 26)
#define ENGINE_SERIES_DEFAULT  100000
#define ENGINE_ZONE_DEFAULT    "Asia/Shanghai"
#define ENGINE_COLUMNS_MAX     PROTO_COLUMNS_MAX
#define ENGINE_NONE            UINT32_MAX
#define ENGINE_SCALE_MAX       9 /* decimal places of a ratio's operand */

/* A window: column name (1..16 bytes, unique, not a calendar column or
 * "total") and width in ms (1..ENGINE_WINDOW_MS_MAX, a multiple of
 * buckets). */
typedef window_spec_t engine_window_config_t;

typedef struct engine_config {
    engine_window_config_t windows[ENGINE_WINDOWS_MAX];
    uint32_t nwindows;   /* 0..ENGINE_WINDOWS_MAX */
    uint32_t buckets;    /* per window, 1..ENGINE_BUCKETS_MAX */
    const char *zone;    /* IANA time zone name */
    uint32_t max_series; /* 1..ENGINE_SERIES_MAX; county series count too */
} engine_config_t;

typedef struct engine_sample {
    uint32_t metric;
    int64_t value;
} engine_sample_t;

/* One series or ratio scope, as reported by drain and foreach. */
typedef struct engine_item {
    uint32_t metric;
    uint32_t town;     /* 0 = county */
    uint8_t kind;      /* PROTO_KIND_* */
    int64_t change_ms; /* engine time of the last change */
    uint32_t sid;      /* the series (engine_read_item), ENGINE_NONE for a ratio scope */
} engine_item_t;

typedef struct engine_value {
    const char *name; /* column name, owned by the engine */
    bool present;     /* false = "no value" */
    int64_t num;
    int64_t den; /* 1 for counters and gauges */
} engine_value_t;

typedef struct engine_values {
    uint8_t kind;
    int64_t change_ms;
    uint32_t ncols;
    engine_value_t col[ENGINE_COLUMNS_MAX];
} engine_values_t;

/* Everything below is private to the engine (engine*.c); it is here so
 * the daemon can embed an engine_t. */
typedef struct engine_series {
    uint32_t metric;
    uint32_t town;
    uint32_t node;    /* counter: window/period node; gauge: ENGINE_NONE */
    uint32_t drained; /* drain pass that last reported it */
    uint8_t kind;
    uint8_t dirty;
    int64_t total; /* counter: all-time sum; gauge: latest (county: sum) */
    union {
        int64_t gauge_ms; /* gauge: event time of the latest value */
        /* counter: a bound on the magnitude of every cell of the series
         * (total, window sums and buckets, calendar slots), saturating at
         * INT64_MAX; see plan() in engine.c */
        int64_t mass;
    };
    int64_t change_ms; /* engine time of the last change */
} engine_series_t;

typedef struct engine_metric {
    uint8_t kind;     /* PROTO_KIND_* */
    uint8_t declared; /* by engine_define_metric or engine_define_ratio */
    int8_t shift;     /* kind ratio: den's decimal scale minus num's, 0 until set */
    uint8_t scale1;   /* declared counter or gauge: its decimal scale + 1, 0 unknown */
    uint32_t ratio;   /* kind ratio: index in ratios */
    uint32_t uses;    /* first ratio reading this metric, + 1 (0: none) */
} engine_metric_t;

typedef struct engine_ratio {
    uint32_t metric, num, den;
    uint32_t next_num; /* next ratio reading num, + 1 */
    uint32_t next_den; /* next ratio reading den (when den != num), + 1 */
} engine_ratio_t;

typedef struct engine_batch_entry engine_batch_entry_t;

typedef struct engine {
    const tclock_t *clock;
    int64_t now_ms;
    window_set_t win;
    period_set_t per;
    uint32_t nwin;
    const char *col_names[ENGINE_COLUMNS_MAX];
    /* series: headers in chunks, found through an open-addressing index */
    engine_series_t **chunks;
    uint32_t nchunks, maxchunks;
    uint32_t nseries, max_series;
    uint64_t *index; /* key hash << 32 | series id + 1; 0 = empty */
    uint32_t index_mask;
    uint64_t seed;
    uint32_t *node_series; /* counter node -> series id */
    uint32_t nnodes, node_cap;
    /* dirty series, in the order they changed: ids dirtyq[dq_head..dq_tail)
     * of dq_cap >= nseries (an array, not a list through the series, so
     * that engine_drain_dirty() can fetch the ones ahead); a mapping left
     * out of a checkpoint's fork (memhint.h), which only the loop writes */
    uint32_t *dirtyq;
    uint32_t dq_head, dq_tail, dq_cap, ndirty, drain_pass;
    /* metric catalog (kinds and ratios), grown only by the define calls */
    engine_metric_t *metrics;
    uint32_t nmetrics;
    size_t metrics_cap;
    engine_ratio_t *ratios;
    uint32_t nratios;
    size_t ratios_cap;
    /* scratch of one batch, allocated once */
    engine_batch_entry_t *ents;
    uint32_t *bmap; /* metric -> entry + 1, tagged with the batch generation */
    uint32_t *bgen;
    uint32_t gen;
    /* Batches checked and waiting to be applied (engine_pend): a bound on
     * how far they may move any cell, and the series they may create. */
    __int128 pend_mass;
    uint32_t pend_new;
    uint32_t last_nnew; /* series the last successful engine_check() would create */
    size_t mem;
    bool overflow_county; /* see engine_overflow_is_county() */
} engine_t;

typedef int (*engine_item_fn)(void *ctx, const engine_item_t *item);

/* Fill cfg with the defaults: windows "1h" (3600 s), "24h" (86400 s),
 * "7d" (604800 s), "30d" (2592000 s); 60 buckets; zone "Asia/Shanghai";
 * ENGINE_SERIES_DEFAULT series.  Names point to static strings. */
void engine_config_default(engine_config_t *cfg);

struct tallyd_config;
/* Fill cfg from tallyd.conf's settings (windows, buckets, timezone,
 * max_series), the rest as engine_config_default.  Names point into c,
 * which must outlive the use of cfg (engine_init copies them). */
void engine_config_from(engine_config_t *cfg, const struct tallyd_config *c);

/* Check cfg.  Returns 0, or TALLY_EINVAL with a sentence naming the field,
 * its value and the limit in msg (always NUL-terminated when msglen > 0;
 * msg may be NULL).  Invalid: more than ENGINE_WINDOWS_MAX windows; a
 * window name empty, longer than 16 bytes, repeated, or equal to "today",
 * "month", "quarter", "year" or "total"; a width outside
 * 1..ENGINE_WINDOW_MS_MAX ms or not a multiple of buckets (every bucket is
 * a whole number of milliseconds, so the window is exactly its width);
 * buckets 0 or above ENGINE_BUCKETS_MAX; a zone that is not an installed
 * IANA zone; max_series 0 or above ENGINE_SERIES_MAX.
 * Memory per counter series grows with windows * buckets: see window.h. */
int engine_config_check(const engine_config_t *cfg, char *msg, size_t msglen);

/* The calendar columns every counter tally carries after its windows, in
 * order, NULL-terminated: "today", "month", "quarter", "year", "total". */
extern const char *const engine_calendar_names[];

/* Initialise e from cfg (copied; cfg's strings may go away afterwards) with
 * clock as its source of time (borrowed: it must outlive e).  Sets the
 * process time zone (see above).  Returns 0, TALLY_EINVAL (see
 * engine_config_check), TALLY_ERANGE (the clock's time cannot be converted
 * to a local date), TALLY_ESYS or TALLY_ENOMEM. */
int engine_init(engine_t *e, const engine_config_t *cfg, const tclock_t *clock);

/* Free everything e holds. */
void engine_free(engine_t *e);

/* Declare metric's kind, PROTO_KIND_COUNTER or PROTO_KIND_GAUGE.
 * Returns 0 (also when repeating the same declaration), TALLY_EINVAL (id 0
 * or another kind), TALLY_EEXIST (the metric is a ratio, or already has
 * series of the other kind) or TALLY_ENOMEM. */
int engine_define_metric(engine_t *e, uint32_t metric, uint8_t kind);

/* Declare metric as the ratio num / den.  The series num and den have
 * already (a ratio a reload adds) are queued for the next drain as they
 * are, so that engine_drain_dirty() reports the ratio's scopes beside
 * them.  Returns 0, TALLY_EINVAL (an id is 0, metric equals num or den,
 * or num or den is a ratio), TALLY_EEXIST (metric was already declared or
 * has series) or TALLY_ENOMEM. */
int engine_define_ratio(engine_t *e, uint32_t metric, uint32_t num, uint32_t den);

/* Kind of metric (PROTO_KIND_*): counter unless declared otherwise. */
uint8_t engine_metric_kind(const engine_t *e, uint32_t metric);

/* The decimal scale (PROTOCOL.md 10.6) of declared counter or gauge
 * metric: its integers stand for v / 10^scale.  Saved with the state, so
 * that a start can refuse a catalog that would read the saved integers
 * at another scale.  engine_metric_scale gives 0 for a metric never
 * declared (an open catalog's, read as whole numbers), -1 for a declared
 * one whose scale is not known (a state saved before scales were). */
void engine_set_metric_scale(engine_t *e, uint32_t metric, uint8_t scale);
int engine_metric_scale(const engine_t *e, uint32_t metric);

/* The operands of ratio metric: 0, or TALLY_EINVAL when it is not a
 * ratio. */
int engine_ratio_operands(const engine_t *e, uint32_t metric, uint32_t *num, uint32_t *den);

/* Set the decimal scales of ratio metric's operands (PROTOCOL.md 10.6:
 * an integer v of an operand of scale s stands for v / 10^s), 0 until
 * set; not saved with the state: the catalog sets them at every start and
 * reload.  They can change only while an operand has no tallies
 * (catalog_check_scales), when the ratio has no value to report again.
 * Returns 0, or TALLY_EINVAL (metric is not a ratio, or a scale is above
 * ENGINE_SCALE_MAX). */
int engine_ratio_set_scales(engine_t *e, uint32_t metric, uint8_t num_scale, uint8_t den_scale);

/* The value of ratio metric from its operands' values num and den (of
 * one column, one period or one span) into *out (out->name is left as it
 * is; out may be num or den): "no value" when an operand has none or
 * den's is 0, else a pair out->num / out->den equal to
 * (num / 10^sn) / (den / 10^sd), sn and sd the operands' scales.  The pair
 * is num's and den's values when the scales are equal, else the side of
 * the smaller scale multiplied by 10^|sd - sn|, computed in 128 bits;
 * when that leaves int64, the pair in lowest terms; when that leaves it
 * too, p / q with q > 0 as large as keeps p within int64 (at most
 * INT64_MAX) and p the value times q rounded half away from zero: off by
 * less than 2^-62 of the value when |value| >= 1, by less than 2^-63
 * below; "no value" when |value| rounds beyond INT64_MAX.  metric not a
 * ratio: scales 0. */
void engine_ratio_value(const engine_t *e, uint32_t metric, const engine_value_t *num,
                        const engine_value_t *den, engine_value_t *out);

/* Check a batch as engine_apply() would, without applying it (time still
 * moves to the clock's now), allowing for the batches pending (see
 * engine_pend): a batch that passes can be applied after all of them.
 * Same returns as engine_apply() except that TALLY_ENOMEM cannot happen,
 * and TALLY_EBUSY: the batch would fit the tallies as they are, but the
 * pending batches might take that room (a cell within their reach of the
 * int64 edge, or max_series); retry once they are applied. */
int engine_check(engine_t *e, uint32_t town, int64_t time_ms, const engine_sample_t *samples,
                 uint32_t n, int32_t *bad);

/* A batch that engine_check() just passed is now pending: it will be
 * applied later, after those pending before it.  Later checks keep room
 * for it.  Returns what to hand engine_unpend() when it is applied. */
int64_t engine_pend(engine_t *e, uint32_t town, const engine_sample_t *samples, uint32_t n);

/* The oldest pending batch, whose engine_pend() returned mass, is about
 * to be applied: release its room.  nnew is what engine_pend() recorded
 * for it (engine_pend_new()). */
void engine_unpend(engine_t *e, int64_t mass, uint32_t nnew);

/* The series the last passed engine_check() would create (for
 * engine_unpend()). */
static inline uint32_t engine_pend_new(const engine_t *e)
{
    return e->last_nnew;
}

/* Apply a batch of n samples with event time time_ms from township town,
 * atomically (pending batches are not allowed for: apply them in the order
 * they were pended).  samples is only read.  *bad (when bad is not NULL) is set to
 * the 0-based index of the sample a failure is about, or -1.  Returns:
 *   0                   all applied;
 *   TALLY_EINVAL        town is 0, or a metric id is 0 (*bad says which);
 *   TALLY_EEMPTY        n is 0;
 *   TALLY_ETOOMANY      n above ENGINE_BATCH_MAX;
 *   TALLY_ERANGE        time_ms outside [PROTO_TIME_MIN, PROTO_TIME_MAX);
 *   TALLY_EKIND         sample *bad names a ratio;
 *   TALLY_EOVERFLOW     applying samples 0..*bad would leave int64;
 *   TALLY_ESERIESLIMIT  sample *bad needs a new series beyond max_series
 *                       (series that exist take samples whatever their
 *                       number);
 *   TALLY_ENOMEM        storage for new series could not be allocated.
 * On any failure nothing changed.  Allocates only when the batch creates
 * series and the storage in hand is full (whole chunks). */
int engine_apply(engine_t *e, uint32_t town, int64_t time_ms, const engine_sample_t *samples,
                 uint32_t n, int32_t *bad);

/* engine_apply() of a batch accepted before: one its journal holds,
 * applied once durable or replayed at start-up.  max_series limits the
 * series new submissions start, and it was checked when this one was let
 * in; lowered since (a reload, a start with another configuration), it
 * does not apply here: the series the batch needs are created beyond it,
 * up to ENGINE_SERIES_MAX (TALLY_ESERIESLIMIT only past that).  Same
 * returns otherwise. */
int engine_apply_accepted(engine_t *e, uint32_t town, int64_t time_ms,
                          const engine_sample_t *samples, uint32_t n, int32_t *bad);

/* The series from which fetching ahead pays: with fewer the state stays
 * in the CPU's caches, and the hints would only cost time. */
#define ENGINE_PREFETCH_SERIES 50000

/* Ask the CPU for the memory engine_apply() of township town's samples
 * will touch, one level of it per stage: 0 the series index's slots, 1
 * the series (reading the slots), 2 their windows and periods (reading
 * the series).  Only a hint, changing nothing: with many series each
 * level is a cache miss, and a caller applying records in a row calls
 * the stages for records a few places ahead (stage 2 nearest), so that
 * the misses of several records overlap instead of waiting one after
 * the other.  Each stage is cheap once the one before has arrived. */
void engine_prefetch(const engine_t *e, uint32_t town, const engine_sample_t *samples, uint32_t n,
                     int stage);

/* After engine_check() or engine_apply() returned TALLY_EOVERFLOW: true
 * when it is the county's tally of the sample's metric that would have
 * left int64 (the sum of every township's figures), false when it is the
 * submitting township's own. */
static inline bool engine_overflow_is_county(const engine_t *e)
{
    return e->overflow_county;
}

/* Move the engine's now to now_ms (earlier times are ignored): buckets
 * leave windows, periods end, and every series whose value changes becomes
 * dirty.  Cost: O(windows) plus the work of what actually changes (the
 * buckets that expire, the series holding a value of a period that ends),
 * whatever the number of series.  Values and dirty marks follow the clock
 * only through this call (and engine_apply), so call it from a timer:
 * every second, or at engine_next_tick_ms() (no value changes before). */
void engine_tick(engine_t *e, int64_t now_ms);

/* The earliest time at which engine_tick() may change a value: the next
 * bucket boundary of the finest window, or the next local midnight. */
int64_t engine_next_tick_ms(const engine_t *e);

/* Report up to max dirty series, oldest mark first, and each ratio scope
 * with an input among them, each once per call, to fn (its return value is
 * ignored), and clear their dirty marks.  A series marked again while
 * others wait goes behind them, so draining in rounds of max is fair.
 * fn may call engine_read() but must not change the engine.  Returns the
 * number of series still dirty. */
uint32_t engine_drain_dirty(engine_t *e, uint32_t max, engine_item_fn fn, void *ctx);

/* Number of series marked dirty (ratio scopes not counted). */
static inline uint32_t engine_dirty_count(const engine_t *e)
{
    return e->ndirty;
}

/* Report every series and every ratio scope to fn, stopping when fn
 * returns non-zero.  Returns 0 or fn's non-zero value.  fn may call
 * engine_read() but must not change the engine. */
int engine_foreach(const engine_t *e, engine_item_fn fn, void *ctx);

/* engine_foreach() of one scope: the series of town (0: the county's)
 * whose metric ids are first..last, and their ratio scopes, in metric
 * order.  One index lookup per metric id, not a walk over every series:
 * with a million series, what a question about one township costs. */
int engine_foreach_town(const engine_t *e, uint32_t town, uint32_t first, uint32_t last,
                        engine_item_fn fn, void *ctx);

/* engine_foreach() in steps: report the series with ids from .. from+max-1
 * (and their ratio scopes) to fn, whose return value is ignored.  Returns
 * the id to go on from: engine_series_count() once every series was
 * reported.  Series are never removed, so a walk in steps across changes
 * still reports every series that existed when it began (and those added
 * since, when it gets to them). */
uint32_t engine_foreach_from(const engine_t *e, uint32_t from, uint32_t max, engine_item_fn fn,
                             void *ctx);

/* The column values of (metric, town) now.  A ratio scope exists when
 * either input series does.  Returns 0 or TALLY_ENOTFOUND. */
int engine_read(const engine_t *e, uint32_t metric, uint32_t town, engine_values_t *out);

/* engine_read() of an item just reported to an engine_item_fn: a series
 * is read where it is, without the index (with many series a lookup
 * there is a cache miss); a ratio scope as engine_read(). */
int engine_read_item(const engine_t *e, const engine_item_t *item, engine_values_t *out);

/* Number of columns, and the name of column i (< engine_columns()), owned
 * by the engine. */
uint32_t engine_columns(const engine_t *e);
const char *engine_column_name(const engine_t *e, uint32_t i);

/* Number of series (township and county; ratio scopes are not stored). */
static inline uint32_t engine_series_count(const engine_t *e)
{
    return e->nseries;
}

/* Allow new series only while the engine holds fewer than max_series,
 * from now on (a reload).  Series that exist stay and take samples, also
 * when they are more than max_series; storage grows beyond what
 * engine_init() sized it for when the limit is raised. */
static inline void engine_set_max_series(engine_t *e, uint32_t max_series)
{
    e->max_series = max_series;
}

/* Bytes of memory the engine holds, all tables and scratch included. */
size_t engine_memory(const engine_t *e);

/* Tell fn of each large block of the engine's memory (series headers, the
 * index, the dirty array, window and calendar storage), so that after a
 * checkpoint's child has ended they can be made writable in one call each
 * (memhint_unshare()).  Blocks are told as they are now: the caller uses
 * the list before the engine next grows, or tolerates blocks gone. */
void engine_regions(const engine_t *e, memhint_region_fn fn, void *ctx);

/* The engine's now. */
static inline int64_t engine_now_ms(const engine_t *e)
{
    return e->now_ms;
}

/* ---- persistence (engine_persist.c) ---- */

/* Called by engine_save() with consecutive pieces of the serialized
 * engine; return 0 to go on, a negative code to stop (engine_save() then
 * returns it). */
typedef int (*engine_write_fn)(void *ctx, const void *buf, size_t len);

/* Serialize everything of e that affects values now or later: the window
 * configuration (checked by engine_load), the engine's now and the day it
 * falls on, the declared metric kinds and ratios, and every series (ids,
 * kind, total, gauge time, change time, its non-zero window buckets with
 * their positions and its non-zero calendar slots of the current and the
 * next period).  Zero buckets and slots are skipped, so a series costs
 * tens of bytes, not its 2 KiB in memory.  Dirty marks are not saved.
 * Reads e only (call it on the loop thread; it takes about a second per
 * million series), buffering 64 KiB between calls of write.  The format
 * is little-endian and independent of the host; it is versioned by the
 * checkpoint file that embeds it (checkpoint.h).
 * Returns 0, TALLY_ENOMEM, or write's negative code. */
int engine_save(const engine_t *e, engine_write_fn write, void *ctx);

/* Load what engine_save() wrote (len bytes at buf, only read) into e,
 * which must be freshly engine_init()ed with the same windows and bucket
 * count and hold no series; metric kinds and ratios already declared in e
 * are accepted when they agree with the saved ones.  Series beyond e's
 * max_series are loaded too (the limit was lowered since they were
 * created: it keeps new ones from being created, see
 * engine_set_max_series).  Afterwards e holds exactly the saved series,
 * definitions and now (the engine's now is set
 * back or forward to the saved now, whatever the clock says), with no
 * series dirty: the next engine_tick() or engine_apply() moves time on
 * and expires buckets and periods exactly as the saved engine would have.
 * err (errlen bytes, may be NULL) receives a sentence saying what was
 * wrong, or "" on success.  Returns:
 *   0                 loaded;
 *   TALLY_EINVAL      e already holds series (a programmer error);
 *   TALLY_ECONFIG     the saved windows (names, widths, buckets) differ
 *                     from e's, the saved day does not match e's time
 *                     zone, or a saved definition conflicts with one in e;
 *   TALLY_EIO         the data is malformed (truncated, an impossible
 *                     value, a duplicate series, more than
 *                     ENGINE_SERIES_MAX series);
 *   TALLY_ENOMEM.
 * On failure e holds an unspecified part of the data: engine_free() it. */
int engine_load(engine_t *e, const void *buf, size_t len, char *err, size_t errlen);

/* What a start checks a configuration against, of what engine_save()
 * wrote (len bytes at buf, only read), without the tallies: the saved
 * windows, buckets and day are checked against e's and the declarations
 * loaded, as engine_load() does, and of the series only the county-wide
 * ones are created, empty (what a declaration of another kind meets, see
 * engine_define_metric); every series is read through, nothing else is
 * kept.  For `tallyd --check-config -s` (statecheck.h): memory for the
 * declarations and one series per metric, whatever the state's size.
 * Same preconditions and returns as engine_load() (max_series does not
 * apply).  On failure engine_free() e. */
int engine_load_head(engine_t *e, const void *buf, size_t len, char *err, size_t errlen);

/* Internal to engine.c and engine_persist.c: series sid (< nseries); the
 * id of series (metric, town) or ENGINE_NONE; create series (metric,
 * town) of kind, not dirty, returning its id, or ENGINE_NONE when memory
 * runs out or the engine holds ENGINE_SERIES_MAX (max_series does not
 * apply: what is loaded was created before). */
engine_series_t *engine_series_at(const engine_t *e, uint32_t sid);
uint32_t engine_series_find(const engine_t *e, uint32_t metric, uint32_t town);
uint32_t engine_series_add(engine_t *e, uint32_t metric, uint32_t town, uint8_t kind);

/* m + |v|, saturating at INT64_MAX (m >= 0): how a counter series' mass
 * grows by a change of v. */
int64_t engine_mass_add(int64_t m, __int128 v);

#endif
