/* history_impl.h - tallyd (daemon/, private to the history module):
 * what history.c (the cells, applying records, reading), history_prune.c
 * (the retention), history_load.c (loading the database at start-up) and
 * history_writer.c (the writer thread and its batches) share of the
 * cells' layout and of each other's helpers.  Nothing outside those four
 * files includes it; the rest of the daemon uses history.h. */
#ifndef TALLYD_HISTORY_IMPL_H
#define TALLYD_HISTORY_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "calperiod.h"
#include "history.h"

#define CELL_HAS   1 /* the cell has a value (always, for a counter) */
#define CELL_DIRTY 2 /* changed since the last batch */
#define CELL_GAUGE 4 /* followed by its event time's cell */

#define CELL_EVENT (UINT8_MAX - 1) /* type of a gauge's event time's cell */
#define CELL_GONE  UINT8_MAX       /* type of a cell dropped: of no series */

/* The event time of gauge cell c's value: the value of the cell after it. */
static inline int64_t *event_ms(history_cell_t *c)
{
    return &c[1].value;
}

/* Cells a cell takes in the array: two for a gauge's. */
static inline uint32_t width(const history_cell_t *c)
{
    return (c->flags & CELL_GAUGE) ? 2 : 1;
}

/* The hash of a cell's key, for the index. */
static inline uint32_t history_cell_hash(uint32_t metric, uint32_t town, uint8_t type, int32_t key)
{
    uint64_t k = ((uint64_t)metric << 32 | town) ^
                 ((uint64_t)(uint32_t)key << 2 | type) * 0x9e3779b97f4a7c15ULL;
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

/* The first and last days of the last month, quarter and year asked
 * about: a batch's cells name a handful of periods, over and over. */
typedef struct spans {
    bool set[CALPERIOD_YEAR + 1];
    int32_t key[CALPERIOD_YEAR + 1], first[CALPERIOD_YEAR + 1], last[CALPERIOD_YEAR + 1];
} spans_t;

/* Whether period (type, key) is a row of a database whose open periods
 * are those from open_from on not ended before through. */
static inline bool history_stored(spans_t *s, uint8_t type, int32_t key, int32_t open_from,
                                  int32_t through)
{
    if (type == CALPERIOD_DAY || open_from == HISTORY_DB_ALL_STORED)
        return true;
    if (!s->set[type] || s->key[type] != key) {
        calperiod_days((calperiod_t){type, key}, &s->first[type], &s->last[type]);
        s->key[type] = key;
        s->set[type] = true;
    }
    return s->first[type] < open_from || s->last[type] < through;
}

/* ---- history.c ---- */

/* The slot of cell (metric, town, type, key) in the index: its own, with
 * *found set, or the empty one where it would go. */
uint32_t history_find_slot(const history_t *h, uint32_t metric, uint32_t town, uint8_t type,
                           int32_t key, bool *found);

/* Put every cell into the (empty) index. */
void history_index_all(history_t *h);

/* Free the cells, their index and the dirty list. */
void history_free_arrays(history_t *h);

/* Count the memory of the arrays into h->mem. */
void history_account(history_t *h);

/* Forget where recently written series' cells are (cells moved or went). */
void history_forget_recent(history_t *h);

/* Make room for extra more cells so that adding them cannot fail.
 * Returns 0 or TALLY_ENOMEM. */
int history_reserve(history_t *h, uint32_t extra);

/* The cell (metric, town, type, key), added empty when missing (with its
 * event time's cell for a gauge); room was reserved. */
history_cell_t *history_cell(history_t *h, uint32_t metric, uint32_t town, uint8_t type,
                             int32_t key, bool gauge);

/* Put cell c on the dirty list for the next batch (once). */
void history_mark(history_t *h, history_cell_t *c);

/* The first day kept when today is today ([history] days).  Days already
 * dropped, from the database or from memory, stay dropped when more days
 * are kept later (a reload raising days): they read as no longer kept,
 * not as days without figures, and a late figure stamped there counts in
 * its month, quarter and year only, as it would before. */
static inline int32_t history_first_kept_day(const history_t *h, int32_t today)
{
    int32_t first = (int32_t)(today - h->c.days + 1);
    if (first < h->pruned_before)
        first = h->pruned_before;
    return first < h->pruned_mem ? h->pruned_mem : first;
}

/* Whether sum s of cell (what, metric) fits int64; if not, logged as
 * leaving part out of the period. */
bool history_fits(history_t *h, __int128 s, const char *what, uint32_t metric, const char *part);

/* Add every pending sum to its cells: the cells are then exact. */
void history_settle_all(history_t *h);

/* ---- history_prune.c ---- */

/* Drop the cell at `at` (and its event time's cell) from memory. */
void history_drop(history_t *h, uint32_t at);

/* Begin or go on dropping the days before first, which left the
 * retention. */
void history_prune(history_t *h, int32_t first);

/* ---- history_load.c ---- */

/* Wait for a reading of history_preload() that nobody took and close its
 * database (the start failed before history_open()). */
void history_preload_discard(history_t *h);

#endif
