/* history_prune.c - the history's retention (see history.h): the day
 * cells older than [history] days dropped from memory a turn at a time,
 * their places reused by new cells, and closed up (compact()) once half
 * the places are free.  The database drops them with a batch of the
 * writer (history_writer.c). */
#include "history.h"

#include <string.h>

#include "history_impl.h"

/* A turn of the pruning (prune_turn()) looks at this many cells and
 * drops at most so many: a few milliseconds of the loop. */
#define PRUNE_LOOK (1u << 18)
#define PRUNE_DROP (1u << 14)

/* Take the cell at `at` out of the index: its slot empties, and the
 * cells after it in the run of full slots that may move back into the
 * gap do (deletion under linear probing, no tombstones). */
static void unindex(history_t *h, uint32_t at)
{
    const history_cell_t *c = &h->cells[at];
    uint32_t s = history_cell_hash(c->metric, c->town, c->type, c->key) & h->mask;
    while (h->index[s] != at + 1)
        s = (s + 1) & h->mask;
    for (uint32_t j = (s + 1) & h->mask; h->index[j] != 0; j = (j + 1) & h->mask) {
        const history_cell_t *e = &h->cells[h->index[j] - 1];
        uint32_t home = history_cell_hash(e->metric, e->town, e->type, e->key) & h->mask;
        if (((j - home) & h->mask) >= ((j - s) & h->mask)) { /* the gap is on its way */
            h->index[s] = h->index[j];
            s = j;
        }
    }
    h->index[s] = 0;
}

/* Drop the day cell at `at`, with a gauge's event time after it: out of
 * the index, and its places free for the next counters' cells, unless
 * the dirty list still names it (it changed just before its day left the
 * retention, and no batch was built since): such a place stays unused
 * until compact(). */
void history_drop(history_t *h, uint32_t at)
{
    history_cell_t *c = &h->cells[at];
    uint32_t w = width(c);
    bool listed = (c->flags & CELL_DIRTY) != 0;
    unindex(h, at);
    h->nevents -= w - 1;
    h->nholes += w;
    for (uint32_t k = 0; k < w; k++) {
        c[k] = (history_cell_t){.type = CELL_GONE};
        if (!listed) {
            c[k].value = h->free_head;
            h->free_head = at + k + 1;
        }
    }
}

/* Close the places of dropped cells: the cells move, so the index, the
 * dirty list and the recent entries are made again, a pause of the loop
 * in proportion to the cells (over 100 ms at five million).  Done when
 * half the places are free, which new days' cells normally take first. */
static void compact(history_t *h)
{
    history_settle_all(h);
    uint32_t n = 0;
    for (uint32_t i = 0, w; i < h->ncells; i += w) {
        const history_cell_t *c = &h->cells[i];
        w = width(c);
        if (c->type == CELL_GONE)
            continue;
        if (n != i)
            memmove(&h->cells[n], c, w * sizeof(*c));
        n += w;
    }
    history_forget_recent(h);
    h->ncells = n;
    h->nholes = h->free_head = 0;
    h->ndirty = 0;
    for (uint32_t i = 0; i < n; i++)
        if (h->cells[i].flags & CELL_DIRTY)
            h->dirty[h->ndirty++] = i;
    memset(h->index, 0, ((size_t)h->mask + 1) * sizeof(*h->index));
    history_index_all(h);
}

/* One turn of the pass that drops the day cells before prune_first from
 * memory (the database drops them with a batch): it looks at PRUNE_LOOK
 * cells and drops PRUNE_DROP at most, so that at millions of cells the
 * day leaving the retention costs the loop a few milliseconds a turn,
 * where moving every cell at once took over 100 ms.  Returns whether the
 * pass has looked at every cell. */
static bool prune_turn(history_t *h, int32_t first)
{
    if (first < h->prune_first)
        h->prune_first = first; /* the clock went back: those days are kept again */
    history_settle_all(h);
    uint32_t i = h->prune_at, end = h->ncells - i > PRUNE_LOOK ? i + PRUNE_LOOK : h->ncells;
    uint32_t dropped = 0;
    while (i < end && dropped < PRUNE_DROP) {
        history_cell_t *c = &h->cells[i];
        uint32_t w = width(c);
        if (c->type == CALPERIOD_DAY && c->key < h->prune_first) {
            history_drop(h, i);
            dropped++;
        } else if (c->type == CALPERIOD_DAY && c->key < h->prune_oldest) {
            h->prune_oldest = c->key;
        }
        i += w;
    }
    h->prune_at = i;
    if (dropped > 0)
        history_forget_recent(h); /* entries may name the dropped cells */
    return i >= h->ncells;
}

/* Begin or go on dropping the days before first, which left the
 * retention. */
void history_prune(history_t *h, int32_t first)
{
    if (!h->pruning && first > h->pruned_mem) {
        /* Until the retention is first reached (three years by default)
         * no day is old enough, and the least day key says so. */
        if (h->oldest_day >= first) {
            h->pruned_mem = first;
            return;
        }
        h->pruning = true;
        h->prune_at = 0;
        h->prune_first = first;
        h->prune_oldest = INT32_MAX;
    }
    if (!h->pruning || !prune_turn(h, first))
        return;
    h->pruning = false;
    h->pruned_mem = h->prune_first;
    h->oldest_day = h->prune_oldest;
    if (h->nholes > h->ncells / 2)
        compact(h);
}
