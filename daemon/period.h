/* period.h - calendar periods of the tally engine: "today", "month",
 * "quarter" and "year" in the engine's time zone.
 *
 * A period is named by its absolute index (its "key"): the day key is the
 * number of local calendar days since 1970-01-01, the month key
 * year * 12 + month (0..11), the quarter key year * 4 + quarter (0..3), the
 * year key the year.  The local calendar comes from localtime_r()/mktime()
 * in the process time zone, which period_zone_apply() sets.
 *
 * Every counter series owns one node of the set: per period one slot (a
 * sum and the key of the period it belongs to; a slot with an older key
 * reads 0).  A sample from the next period (from tomorrow, within the clock
 * skew) goes to the set's "ahead" table, keyed by node and period, which
 * holds such sums until their period begins; it is rare and small.  A
 * sample whose period is neither the current nor the next one does not
 * enter that period; it still counts in the other columns it belongs to.
 *
 * The set keeps, per period, a list of the nodes whose slot holds the
 * current period, so that when a period ends (period_advance) exactly the
 * nodes whose value changes are reported, in time proportional to their
 * number and the ahead table's.
 *
 * Memory per node: 64 bytes (16 per period).
 */
#ifndef TALLYD_PERIOD_H
#define TALLYD_PERIOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memhint.h"

#define PERIOD_COUNT    4
#define PERIOD_ZONE_MAX 255 /* bytes in an IANA zone name */

enum period_id {
    PERIOD_DAY = 0, /* column "today" */
    PERIOD_MONTH = 1,
    PERIOD_QUARTER = 2,
    PERIOD_YEAR = 3,
};

/* One local calendar day: [start_ms, end_ms) in UTC milliseconds, and the
 * keys of the periods it belongs to (indexed by enum period_id). */
typedef struct period_day {
    int64_t start_ms;
    int64_t end_ms;
    int32_t key[PERIOD_COUNT];
} period_day_t;

/* Per node and period. */
typedef struct period_slot {
    int64_t sum;
    int32_t key;   /* INT32_MIN = never used */
    uint32_t next; /* link in the set's list of the current period */
} period_slot_t;

/* A sum of the next period, in the ahead table. */
typedef struct period_ahead {
    int64_t sum;
    uint32_t node;
    int32_t key;
    uint32_t p;
} period_ahead_t;

/* Where a sample lands: per period its key and slot 0 (the current
 * period), 1 (the next one) or -1 (neither). */
typedef struct period_pos {
    int32_t key[PERIOD_COUNT];
    int8_t slot[PERIOD_COUNT];
} period_pos_t;

typedef struct period_set {
    period_day_t today;           /* the day holding the set's "now" */
    period_day_t other;           /* cache: the last other day looked up */
    uint32_t heads[PERIOD_COUNT]; /* nodes whose slot holds the current period */
    period_slot_t **chunks;       /* node storage, PERIOD_CHUNK nodes each */
    uint32_t nchunks;
    uint32_t maxchunks;
    /* the ahead table: entries, and an open-addressing index of entry + 1 */
    period_ahead_t *ahead;
    uint32_t nahead, ahead_cap;
    uint32_t *aindex;
    uint32_t amask; /* index slots - 1 (0: no index yet) */
    size_t mem;
} period_set_t;

/* Called for each node whose value of some period changed. */
typedef void (*period_changed_fn)(void *ctx, uint32_t node);

/* Column name of a period: "today", "month", "quarter", "year" (static
 * storage).  p must be < PERIOD_COUNT. */
const char *period_name(uint32_t p);

/* Check that zone names an installed IANA time zone (a file under $TZDIR or
 * /usr/share/zoneinfo; plain names only: no leading '/', no "..").
 * Returns 0 or TALLY_EINVAL. */
int period_zone_check(const char *zone);

/* Make zone the time zone of the whole process: setenv("TZ", zone, 1) and
 * tzset().  This is process-wide: every localtime()/mktime() in the process
 * uses it afterwards, so all engines of one process must share one zone.
 * Returns 0, TALLY_EINVAL (period_zone_check failed) or TALLY_ESYS. */
int period_zone_apply(const char *zone);

/* The local calendar day holding t_ms, in the process time zone.  Returns 0
 * or TALLY_ERANGE (the C library cannot represent the time). */
int period_day_of(int64_t t_ms, period_day_t *out);

/* Initialise an empty set whose "now" is now_ms, sized for max_nodes
 * nodes (period_reserve() grows it beyond).  Returns 0, TALLY_ERANGE (now_ms not representable) or
 * TALLY_ENOMEM. */
int period_set_init(period_set_t *ps, uint32_t max_nodes, int64_t now_ms);

/* Free the set's storage. */
void period_set_free(period_set_t *ps);

/* Tell fn of each block of memory the set holds (memhint_unshare()). */
void period_set_regions(const period_set_t *ps, memhint_region_fn fn, void *ctx);

/* Make sure node ids < nodes have storage (allocates whole chunks; never
 * needed on the per-sample path once a node exists).  Returns 0 or
 * TALLY_ENOMEM; beyond max_nodes, the table of chunks grows too (nodes
 * never move). */
int period_reserve(period_set_t *ps, uint32_t nodes);

/* Reset node (storage reserved) to empty.  A node is never freed. */
void period_node_init(period_set_t *ps, uint32_t node);

/* Where a sample with event time t_ms lands.  Uses a two-day cache and
 * calls localtime_r() only for a time outside both cached days. */
void period_locate(period_set_t *ps, int64_t t_ms, period_pos_t *pos);

/* Narrow [*lo, *hi] so that adding any delta in it to every slot pos
 * touches in node keeps that slot within int64. */
void period_bounds(const period_set_t *ps, uint32_t node, const period_pos_t *pos, __int128 *lo,
                   __int128 *hi);

/* Make room for n more entries of the ahead table, so that the next
 * period_add() calls that create at most n of them cannot fail.  Returns 0
 * or TALLY_ENOMEM. */
int period_reserve_ahead(period_set_t *ps, uint32_t n);

/* Add v to the slots pos touches in node.  The caller checked the bounds,
 * and reserved the ahead entries the sample may need (one per period it
 * lands in the next period of), so every result fits int64 and nothing
 * is allocated. */
void period_add(period_set_t *ps, uint32_t node, const period_pos_t *pos, __int128 v);

/* The node's value of period p now (0 when it has nothing for it). */
int64_t period_value(const period_set_t *ps, uint32_t node, uint32_t p);

/* Ask the CPU for node's slots (engine_prefetch()). */
void period_prefetch(const period_set_t *ps, uint32_t node);

/* The node's value of period p for the period key key (0 when it has
 * nothing for it), for checkpoints: with the current key and the next one
 * this is everything period_advance() can still report. */
int64_t period_value_at(const period_set_t *ps, uint32_t node, uint32_t p, int32_t key);

/* Move the set's "now" forward to now_ms (earlier times are ignored).  For
 * each period that ends, calls fn for each node whose value of that period
 * changes.  Returns 0 or TALLY_ERANGE (now_ms not representable; nothing
 * changed). */
int period_advance(period_set_t *ps, int64_t now_ms, period_changed_fn fn, void *ctx);

/* UTC milliseconds at which the current local day ends: the earliest time
 * at which period_advance() has work to do. */
static inline int64_t period_next_ms(const period_set_t *ps)
{
    return ps->today.end_ms;
}

/* Bytes of memory the set holds. */
static inline size_t period_memory(const period_set_t *ps)
{
    return ps->mem;
}

#endif
