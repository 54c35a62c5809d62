/* history.c - closed calendar periods in memory, and their writer (see
 * history.h). */
#include "history.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memhint.h"
#include "period.h"
#include "tally_error.h"

#define CELL_HAS   1 /* the cell has a value (always, for a counter) */
#define CELL_DIRTY 2 /* changed since the last batch */
#define CELL_GAUGE 4 /* followed by its event time's cell */

#define CELL_EVENT (UINT8_MAX - 1) /* type of a gauge's event time's cell */
#define CELL_GONE  UINT8_MAX       /* type of a cell dropped: of no series */

/* A turn of the pruning (prune_turn()) looks at this many cells and
 * drops at most so many: a few milliseconds of the loop. */
#define PRUNE_LOOK (1u << 18)
#define PRUNE_DROP (1u << 14)

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

/* A record's changes to closed periods of one series: bit t of mask for
 * period type t. */
struct history_change {
    uint32_t metric, town;
    uint8_t mask;
    int32_t key[CALPERIOD_YEAR + 1];
};

static uint32_t cell_hash(uint32_t metric, uint32_t town, uint8_t type, int32_t key)
{
    uint64_t k = ((uint64_t)metric << 32 | town) ^
                 ((uint64_t)(uint32_t)key << 2 | type) * 0x9e3779b97f4a7c15ULL;
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static uint32_t find_slot(const history_t *h, uint32_t metric, uint32_t town, uint8_t type,
                          int32_t key, bool *found)
{
    for (uint32_t i = cell_hash(metric, town, type, key) & h->mask;; i = (i + 1) & h->mask) {
        uint32_t v = h->index[i];
        if (v == 0) {
            *found = false;
            return i;
        }
        const history_cell_t *c = &h->cells[v - 1];
        if (c->metric == metric && c->town == town && c->type == type && c->key == key) {
            *found = true;
            return i;
        }
    }
}

/* The cell (metric, town, type, key) or NULL. */
static const history_cell_t *lookup(const history_t *h, uint32_t metric, uint32_t town,
                                    uint8_t type, int32_t key)
{
    if (h->ncells == 0)
        return NULL;
    bool found;
    uint32_t s = find_slot(h, metric, town, type, key, &found);
    return found ? &h->cells[h->index[s] - 1] : NULL;
}

/* Cells index_all() places together. */
#define INDEX_GROUP 32

/* Put every cell into the (empty) index.  The cells' keys are distinct,
 * so a cell takes the first free slot from its hash on without reading
 * the cells already there; with many cells each slot is a cache miss, so
 * the slots of a group of cells are fetched together before any is
 * written. */
static void index_all(history_t *h)
{
    uint32_t at[INDEX_GROUP], slot[INDEX_GROUP];
    for (uint32_t i = 0; i < h->ncells;) {
        uint32_t n = 0;
        for (; n < INDEX_GROUP && i < h->ncells; i += width(&h->cells[i])) {
            const history_cell_t *c = &h->cells[i];
            if (c->type == CELL_GONE)
                continue;
            at[n] = i;
            slot[n] = cell_hash(c->metric, c->town, c->type, c->key) & h->mask;
            __builtin_prefetch(&h->index[slot[n++]], 1);
        }
        for (uint32_t k = 0; k < n; k++) {
            uint32_t s = slot[k];
            while (h->index[s] != 0)
                s = (s + 1) & h->mask;
            h->index[s] = at[k] + 1;
        }
    }
}

/* The cells, their index and the dirty list are arrays of their own that
 * the checkpoint's child never reads (memhint_nofork_alloc()). */
static void free_index(history_t *h)
{
    memhint_nofork_free(h->index, h->index ? ((size_t)h->mask + 1) * sizeof(*h->index) : 0);
    h->index = NULL;
}

static void free_arrays(history_t *h)
{
    memhint_nofork_free(h->cells, (size_t)h->cap * sizeof(*h->cells));
    memhint_nofork_free(h->dirty, (size_t)h->dirty_cap * sizeof(*h->dirty));
    free_index(h);
    h->cells = NULL;
    h->dirty = NULL;
    h->populated = 0;
}

static int rehash(history_t *h, uint32_t slots)
{
    uint32_t *index = memhint_nofork_alloc((size_t)slots * sizeof(*index));
    if (index == NULL)
        return TALLY_ENOMEM;
    memhint_populate(index, (size_t)slots * sizeof(*index)); /* every page gets entries */
    free_index(h);
    h->index = index;
    h->mask = slots - 1;
    index_all(h);
    return 0;
}

static void account(history_t *h)
{
    h->mem = (size_t)h->cap * sizeof(*h->cells) + ((size_t)h->mask + 1) * sizeof(*h->index) +
             (size_t)h->dirty_cap * sizeof(*h->dirty) +
             HISTORY_RECENT * (sizeof(*h->recent) + sizeof(*h->pending_slots));
}

/* Cells moved or went: forget where they were (settle_all() first when
 * their pending sums still count). */
static void forget_recent(history_t *h)
{
    if (h->recent != NULL)
        memset(h->recent, 0, HISTORY_RECENT * sizeof(*h->recent));
    h->npending = 0;
}

/* Make room for extra more cells (and their dirty marks) so that adding
 * them cannot fail. */
static int reserve(history_t *h, uint32_t extra)
{
    uint64_t need = (uint64_t)h->ncells + extra;
    if (need > UINT32_MAX / 4)
        return TALLY_ENOMEM;
    if (need > h->cap) {
        uint32_t cap = h->cap ? h->cap : 1024;
        while (cap < need)
            cap *= 2;
        history_cell_t *cells = memhint_nofork_resize(h->cells, (size_t)h->cap * sizeof(*cells),
                                                      (size_t)cap * sizeof(*cells));
        if (cells == NULL)
            return TALLY_ENOMEM;
        h->cells = cells;
        h->cap = cap;
    }
    if (need > h->populated && h->populated < h->cap) {
        /* the places the next cells take, in steps of 2 MiB (the array's
         * capacity can be twice what it holds: not all of it) */
        uint32_t to = (uint32_t)need + HISTORY_POPULATE_CELLS;
        to = to < h->cap ? to : h->cap;
        uint32_t from = h->populated < h->ncells ? h->ncells : h->populated;
        memhint_populate(&h->cells[from], (size_t)(to - from) * sizeof(*h->cells));
        h->populated = to;
    }
    if (need * 2 > (uint64_t)h->mask + 1) {
        uint32_t slots = h->mask + 1 ? (h->mask + 1) * 2 : 2048;
        while ((uint64_t)slots < need * 2)
            slots *= 2;
        if (rehash(h, slots) != 0)
            return TALLY_ENOMEM;
    }
    if (need > h->dirty_cap) {
        uint32_t *dirty = memhint_nofork_resize(h->dirty, (size_t)h->dirty_cap * sizeof(*dirty),
                                                (size_t)h->cap * sizeof(*dirty));
        if (dirty == NULL)
            return TALLY_ENOMEM;
        h->dirty = dirty;
        h->dirty_cap = h->cap;
    }
    account(h);
    return 0;
}

/* The cell, added (empty) when missing, with its event time's cell for a
 * gauge; room was reserved.  A new cell takes a dropped day's place when
 * the free list has one on top (two side by side for a gauge's). */
static history_cell_t *cell(history_t *h, uint32_t metric, uint32_t town, uint8_t type, int32_t key,
                            bool gauge)
{
    bool found;
    uint32_t s = find_slot(h, metric, town, type, key, &found);
    if (found)
        return &h->cells[h->index[s] - 1];
    uint32_t at = h->ncells, top = h->free_head;
    if (!gauge && top != 0) {
        at = top - 1;
        h->free_head = (uint32_t)h->cells[at].value;
        h->nholes--;
    } else if (gauge && top >= 2 && h->cells[top - 1].value == top - 1) {
        /* the two places last freed lie side by side (a gauge's, as drop()
         * frees them) */
        at = top - 2;
        h->free_head = (uint32_t)h->cells[at].value;
        h->nholes -= 2;
    } else {
        h->ncells += gauge ? 2 : 1;
    }
    history_cell_t *c = &h->cells[at];
    *c = (history_cell_t){.metric = metric,
                          .town = town,
                          .key = key,
                          .type = type,
                          .flags = gauge ? CELL_GAUGE : CELL_HAS};
    h->index[s] = at + 1;
    if (type == CALPERIOD_DAY) {
        if (key < h->oldest_day && h->oldest_day != INT32_MIN)
            h->oldest_day = key;
        if (key < h->prune_oldest) /* perhaps where the pruning looked already */
            h->prune_oldest = key;
    }
    if (gauge) {
        c[1] = (history_cell_t){.type = CELL_EVENT};
        h->nevents++;
    }
    return c;
}

static void mark(history_t *h, history_cell_t *c)
{
    if (c->flags & CELL_DIRTY)
        return;
    c->flags |= CELL_DIRTY;
    h->dirty[h->ndirty++] = (uint32_t)(c - h->cells);
}

int history_init(history_t *h, const history_config_t *c)
{
    memset(h, 0, sizeof(*h));
    h->c = *c;
    if (h->c.days < HISTORY_DAYS_MIN || h->c.days > HISTORY_DAYS_MAX)
        h->c.days = HISTORY_DAYS_DEFAULT;
    h->db_open_from = HISTORY_DB_ALL_STORED;
    h->db_through = HISTORY_DB_NO_DAY;
    h->oldest_day = INT32_MIN;
    h->recent = calloc(HISTORY_RECENT, sizeof(*h->recent));
    h->pending_slots = calloc(HISTORY_RECENT, sizeof(*h->pending_slots));
    if (h->recent == NULL || h->pending_slots == NULL)
        return TALLY_ENOMEM;
    return reserve(h, 0);
}

static void preload_discard(history_t *h);

void history_free(history_t *h)
{
    preload_discard(h);
    if (h->sync_init) {
        uv_mutex_destroy(&h->mu);
        uv_cond_destroy(&h->cv);
    }
    if (h->db_open)
        history_db_close(&h->db);
    if (h->batch != NULL) {
        history_batch_free(h->batch);
        free(h->batch);
    }
    free_arrays(h);
    free(h->changes);
    free(h->recent);
    free(h->pending_slots);
    memset(h, 0, sizeof(*h));
}

/* The period keys of the local day holding t_ms into *day, unless it
 * holds them already.  Returns 0 or TALLY_ERANGE. */
static int day_of(struct history_day *day, int64_t t_ms)
{
    if (t_ms >= day->start_ms && t_ms < day->end_ms)
        return 0;
    period_day_t d;
    int rc = period_day_of(t_ms, &d);
    if (rc != 0)
        return rc;
    day->start_ms = d.start_ms;
    day->end_ms = d.end_ms;
    memcpy(day->keys, d.key, sizeof(day->keys));
    return 0;
}

/* The period keys of the local day holding t_ms: a two-day cache, the
 * day last used first (period_day_of costs a localtime and two mktimes).
 * Returns 0 or TALLY_ERANGE. */
static int locate(history_t *h, int64_t t_ms, int32_t keys[4])
{
    struct history_day *c = h->cached;
    if (!(t_ms >= c[0].start_ms && t_ms < c[0].end_ms)) {
        struct history_day swap = c[1];
        c[1] = c[0];
        c[0] = swap;
        int rc = day_of(&c[0], t_ms);
        if (rc != 0)
            return rc;
    }
    memcpy(keys, c[0].keys, sizeof(c[0].keys));
    return 0;
}

/* Today's period keys by the clock, cached in h->today while the clock
 * stays within that day: a miss costs period_day_of(), a localtime and two
 * mktimes, each of which re-reads the zone's rule (glibc parses the
 * POSIX rule of a zone file anew for every time after its last
 * transition), and a PERIOD answer asks for today twice per item. */
static void now_keys(history_t *h, int32_t keys[4])
{
    if (day_of(&h->today, clock_now_ms(h->c.clock)) != 0) {
        for (int t = 0; t < 4; t++)
            keys[t] = INT32_MAX;
        return;
    }
    memcpy(keys, h->today.keys, sizeof(h->today.keys));
}

int32_t history_today(history_t *h)
{
    int32_t k[4];
    now_keys(h, k);
    return k[CALPERIOD_DAY];
}

static int32_t first_kept_day(const history_t *h, int32_t today)
{
    return (int32_t)(today - h->c.days + 1);
}

bool history_expired(history_t *h, calperiod_t p)
{
    return p.type == CALPERIOD_DAY && p.key < first_kept_day(h, history_today(h));
}

void history_set_days(history_t *h, int64_t days)
{
    if (days >= HISTORY_DAYS_MIN && days <= HISTORY_DAYS_MAX)
        h->c.days = days;
}

void history_set_position(history_t *h, uint64_t pos)
{
    if (pos > h->applied_pos)
        h->applied_pos = pos;
}

/* Whether sum s of cell (what, metric) fits int64; if not, logged as
 * leaving part out of the period. */
static bool fits(history_t *h, __int128 s, const char *what, uint32_t metric, const char *part)
{
    if (s <= INT64_MAX && s >= INT64_MIN)
        return true;
    log_limited(h->c.log, clock_mono_ms(), LOG_LEVEL_ERROR,
                "history: %s %u would leave int64; %s is left out of the period", what, metric,
                part);
    return false;
}

/* Add v to a counter cell, exactly; a sum that would leave int64 (the
 * engine's bounds keep real figures far from it) is refused and logged.
 * v is a series' pending sum (settle()) or, for a day no longer kept, one
 * sample. */
static void add(history_t *h, history_cell_t *c, __int128 v)
{
    __int128 s = (__int128)c->value + v;
    if (!fits(h, s, "a cell of metric", c->metric, "that sample"))
        return;
    c->value = (int64_t)s;
    mark(h, c);
}

/* A gauge sample for a township: its cell t takes it when it is the
 * latest-stamped in the period, and the county's cell c of the same
 * period moves by the difference.  Returns true when something changed. */
static bool set_gauge(history_t *h, history_cell_t *t, history_cell_t *c, int64_t time_ms,
                      int64_t v)
{
    if ((t->flags & CELL_HAS) && time_ms < *event_ms(t))
        return false;
    int64_t old = (t->flags & CELL_HAS) ? t->value : 0;
    __int128 s = (__int128)((c->flags & CELL_HAS) ? c->value : 0) - old + v;
    if (!fits(h, s, "the county's gauge", c->metric, "that sample"))
        return false;
    bool changed = !(t->flags & CELL_HAS) || t->value != v;
    t->value = v;
    *event_ms(t) = time_ms;
    t->flags |= CELL_HAS;
    c->value = (int64_t)s;
    if (time_ms > *event_ms(c))
        *event_ms(c) = time_ms;
    c->flags |= CELL_HAS;
    mark(h, t);
    mark(h, c);
    return changed;
}

/* Add an entry's pending sum to its township's and its county's cells. */
/* v into the township's cells tc, then the county's cc: a batch's rows
 * come in runs of one series. */
static void add_cells(history_t *h, const uint32_t tc[4], const uint32_t cc[4], int64_t v)
{
    for (int t = 0; t < 4; t++)
        add(h, &h->cells[tc[t]], v);
    for (int t = 0; t < 4; t++)
        add(h, &h->cells[cc[t]], v);
}

static void settle(history_t *h, struct history_recent *r)
{
    int64_t v = r->pending;
    r->pending = 0;
    r->queued = false;
    if (v != 0)
        add_cells(h, r->cell, r->county, v);
}

/* Every pending sum into its cells: the cells are then exact. */
static void settle_all(history_t *h)
{
    for (uint32_t i = 0; i < h->npending; i++)
        settle(h, &h->recent[h->pending_slots[i]]);
    h->npending = 0;
}

/* Ask the CPU for the four cells of (metric, town) for the periods
 * keys[0..4) at once: their index slots, then the cells the slots name.
 * With many series they are rarely in its caches, and fetched together
 * they cost about two waits instead of eight in a row. */
static void fetch_cells(const history_t *h, uint32_t metric, uint32_t town, const int32_t keys[4])
{
    uint32_t slot[4];
    for (uint8_t t = 0; t < 4; t++) {
        slot[t] = cell_hash(metric, town, t, keys[t]) & h->mask;
        __builtin_prefetch(&h->index[slot[t]]);
    }
    for (uint8_t t = 0; t < 4; t++)
        if (h->index[slot[t]] != 0)
            __builtin_prefetch(&h->cells[h->index[slot[t]] - 1], 1);
}

/* Where the recent entries of (metric, town) for day go. */
static uint32_t recent_hash(uint32_t metric, uint32_t town, int32_t day)
{
    return metric * 0x9e3779b1u ^ town * 0x85ebca77u ^ (uint32_t)day * 0xc2b2ae3du;
}

static struct history_recent *recent_set(const history_t *h, uint32_t hash)
{
    return &h->recent[(hash ^ hash >> 15) & (HISTORY_RECENT - HISTORY_RECENT_WAYS)];
}

/* The recent entry of (metric, town) for day, with *hit set; or, with
 * *hit clear, the one to take for it: empty, of another day, or else one
 * of the set by the hash.  The set has four ways: a county's few hundred
 * series would otherwise collide often enough to evict each other on
 * every submission. */
static struct history_recent *recent_way(const history_t *h, uint32_t metric, uint32_t town,
                                         int32_t day, bool *hit)
{
    uint32_t hash = recent_hash(metric, town, day);
    struct history_recent *set = recent_set(h, hash), *r = NULL;
    *hit = false;
    for (uint32_t w = 0; w < HISTORY_RECENT_WAYS; w++) {
        struct history_recent *e = &set[w];
        if (e->metric == metric && e->town == town && e->day == day) {
            *hit = true;
            return e;
        }
        if (r == NULL && (e->metric == 0 || e->day != day))
            r = e; /* empty, or of another day */
    }
    return r != NULL ? r : &set[(hash >> 24) % HISTORY_RECENT_WAYS];
}

void history_prefetch(const history_t *h, uint32_t town, int64_t time_ms,
                      const engine_sample_t *samples, uint32_t n, int stage)
{
    const struct history_day *d = &h->cached[0];
    if (h->ncells == 0 || time_ms < d->start_ms || time_ms >= d->end_ms)
        return; /* nothing yet, or a day not at hand: no hint */
    for (uint32_t i = 0; i < n; i++) {
        uint32_t m = samples[i].metric;
        if (stage == 0) {
            const struct history_recent *set = recent_set(h, recent_hash(m, town, d->keys[0]));
            __builtin_prefetch(set);
            __builtin_prefetch((const char *)(set + HISTORY_RECENT_WAYS) - 1);
        } else {
            bool hit;
            (void)recent_way(h, m, town, d->keys[0], &hit);
            if (hit)
                continue;
        }
        for (uint8_t t = 0; t < 4; t++) {
            const uint32_t *slot = &h->index[cell_hash(m, town, t, d->keys[t]) & h->mask];
            if (stage == 0)
                __builtin_prefetch(slot);
            else if (*slot != 0)
                __builtin_prefetch(&h->cells[*slot - 1], 1);
        }
    }
}

/* The cells of (metric, town) and of its county (metric, 0) for the
 * periods keys[0..4) (day first), added when missing (room was reserved
 * for eight, and their event times'), in tc and cc. */
static void cells_of(history_t *h, uint32_t metric, uint32_t town, const int32_t keys[4],
                     bool gauge, uint32_t tc[4], uint32_t cc[4])
{
    fetch_cells(h, metric, town, keys);
    for (uint8_t t = 0; t < 4; t++) {
        tc[t] = (uint32_t)(cell(h, metric, town, t, keys[t], gauge) - h->cells);
        cc[t] = (uint32_t)(cell(h, metric, 0, t, keys[t], gauge) - h->cells);
    }
}

/* The recent entry that holds the cells of (metric, town) for the periods
 * keys[0..4) (cells_of()), which the day is kept for; or NULL when the
 * entry it would take still holds a pending sum.  Such an entry is left
 * as it is rather than settled: with many more series than entries (a
 * province's townships) nearly every sample misses, and settling the
 * entry it evicts would fetch that series' cells, cold by now, a second
 * time; the caller adds to the cells at once instead.  The entries are
 * free again once settle_all() has run (every batch, every read). */
static struct history_recent *recent_of(history_t *h, uint32_t metric, uint32_t town,
                                        const int32_t keys[4], bool gauge)
{
    bool hit;
    struct history_recent *r = recent_way(h, metric, town, keys[0], &hit);
    if (hit)
        return r;
    if (r->queued)
        return NULL;
    r->metric = metric;
    r->town = town;
    r->day = keys[0];
    cells_of(h, metric, town, keys, gauge, r->cell, r->county);
    return r;
}

/* A counter sample of a series whose day is kept: summed in its entry. */
static void add_pending(history_t *h, struct history_recent *r, int64_t v)
{
    int64_t sum;
    if (__builtin_add_overflow(r->pending, v, &sum)) {
        /* the sum so far goes to the cells (add() refuses what leaves
         * int64 there); v starts a new one */
        bool queued = r->queued;
        settle(h, r);
        r->queued = queued;
        sum = v;
    }
    r->pending = sum;
    if (!r->queued) {
        r->queued = true;
        h->pending_slots[h->npending++] = (uint32_t)(r - h->recent);
    }
}

static void note_change(history_t *h, uint32_t metric, uint32_t town, uint8_t type, int32_t key)
{
    for (uint32_t i = h->nchanges; i-- > 0;) {
        struct history_change *ch = &h->changes[i];
        if (ch->metric == metric && ch->town == town) {
            ch->mask |= (uint8_t)(1u << type);
            ch->key[type] = key;
            return;
        }
    }
    struct history_change *ch = &h->changes[h->nchanges++];
    memset(ch, 0, sizeof(*ch));
    ch->metric = metric;
    ch->town = town;
    ch->mask = (uint8_t)(1u << type);
    ch->key[type] = key;
}

static int reserve_changes(history_t *h, uint32_t n)
{
    if (n <= h->changes_cap)
        return 0;
    struct history_change *ch = realloc(h->changes, (size_t)n * sizeof(*ch));
    if (ch == NULL)
        return TALLY_ENOMEM;
    h->changes = ch;
    h->changes_cap = n;
    return 0;
}

static void report_changes(history_t *h)
{
    for (uint32_t i = 0; i < h->nchanges; i++) {
        const struct history_change *ch = &h->changes[i];
        calperiod_t p[4];
        uint32_t n = 0;
        for (int t = 0; t < 4; t++)
            if (ch->mask & (1u << t))
                p[n++] = (calperiod_t){t, ch->key[t]};
        h->c.on_changed(h->c.ctx, ch->metric, ch->town, p, n);
    }
    h->nchanges = 0;
}

int history_apply(history_t *h, uint64_t pos, uint32_t town, int64_t time_ms,
                  const engine_sample_t *samples, uint32_t n)
{
    if (pos <= h->applied_pos)
        return 0;
    int32_t keys[4], now[4];
    if (locate(h, time_ms, keys) != 0)
        return TALLY_ERANGE;
    if (reserve(h, n * 16) != 0 || reserve_changes(h, n * 2) != 0)
        return TALLY_ENOMEM;
    now_keys(h, now);
    int32_t first_day = first_kept_day(h, now[CALPERIOD_DAY]);
    bool report = h->live && h->c.on_changed != NULL;
    h->nchanges = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t m = samples[i].metric;
        int64_t v = samples[i].value;
        uint8_t kind = engine_metric_kind(h->c.engine, m);
        if (kind == PROTO_KIND_RATIO)
            continue;
        bool gauge = kind == PROTO_KIND_GAUGE, day_kept = keys[CALPERIOD_DAY] >= first_day;
        if (!gauge && day_kept) {
            /* the common case: one addition, the cells follow later */
            struct history_recent *r = recent_of(h, m, town, keys, false);
            if (r != NULL) {
                add_pending(h, r, v);
            } else {
                uint32_t tc[4], cc[4];
                cells_of(h, m, town, keys, false, tc, cc);
                add_cells(h, tc, cc, v);
            }
            if (report && v != 0)
                for (uint8_t t = 0; t < 4; t++)
                    if (keys[t] < now[t]) {
                        note_change(h, m, town, t, keys[t]);
                        note_change(h, m, 0, t, keys[t]);
                    }
            continue;
        }
        uint32_t tc[4], cc[4];
        struct history_recent *r = day_kept ? recent_of(h, m, town, keys, gauge) : NULL;
        if (r != NULL) {
            memcpy(tc, r->cell, sizeof(tc));
            memcpy(cc, r->county, sizeof(cc));
        } else if (day_kept) {
            cells_of(h, m, town, keys, gauge, tc, cc);
        } else {
            tc[CALPERIOD_DAY] = cc[CALPERIOD_DAY] = UINT32_MAX;
            for (uint8_t t = 1; t < 4; t++) {
                tc[t] = (uint32_t)(cell(h, m, town, t, keys[t], gauge) - h->cells);
                cc[t] = (uint32_t)(cell(h, m, 0, t, keys[t], gauge) - h->cells);
            }
        }
        for (uint8_t t = 0; t < 4; t++) {
            if (t == CALPERIOD_DAY && !day_kept)
                continue;
            history_cell_t *tcell = &h->cells[tc[t]], *ccell = &h->cells[cc[t]];
            bool changed;
            if (gauge) {
                changed = set_gauge(h, tcell, ccell, time_ms, v);
            } else {
                add(h, ccell, v);
                add(h, tcell, v);
                changed = v != 0;
            }
            if (report && changed && keys[t] < now[t]) {
                note_change(h, m, town, t, keys[t]);
                note_change(h, m, 0, t, keys[t]);
            }
        }
    }
    h->applied_pos = pos;
    if (report)
        report_changes(h);
    return 0;
}

static void read_cell(const history_t *h, uint32_t metric, uint32_t town, calperiod_t p,
                      engine_value_t *out)
{
    const history_cell_t *c = lookup(h, metric, town, (uint8_t)p.type, p.key);
    bool gauge = engine_metric_kind(h->c.engine, metric) == PROTO_KIND_GAUGE;
    out->den = 1;
    if (c == NULL) {
        out->present = !gauge;
        out->num = 0;
        return;
    }
    out->present = (c->flags & CELL_HAS) != 0;
    out->num = out->present ? c->value : 0;
}

void history_read(history_t *h, uint32_t metric, uint32_t town, calperiod_t p, engine_value_t *out)
{
    if (h->npending > 0)
        settle_all(h);
    uint32_t num, den;
    if (engine_ratio_operands(h->c.engine, metric, &num, &den) != 0) {
        read_cell(h, metric, town, p, out);
        return;
    }
    engine_value_t a, b;
    read_cell(h, num, town, p, &a);
    read_cell(h, den, town, p, &b);
    out->present = a.present && b.present && b.num != 0;
    out->num = out->present ? a.num : 0;
    out->den = out->present ? b.num : 0;
}

/* ---- loading the database ---- */

typedef struct load_ctx {
    history_t *h;
    intern_t *towns, *metrics;
    /* The ids in metrics and towns of the database's metrics and scopes,
     * by their ids in the database (0: not looked up yet): a name is
     * looked up once, not once a row. */
    struct load_ids {
        uint32_t *ids, cap;
    } by_db[2];
    uint32_t indexed; /* cells [0, indexed) are in the index */
    char err[256];
} load_ctx_t;

static int name_id(intern_t *names, const char *s, size_t len)
{
    int id = intern_find(names, s, len);
    return id > 0 ? id : intern_add(names, s, len);
}

/* The id in names of the name s (len bytes) that the database calls
 * db_id, from m once known.  Returns the id, or a negative code. */
static int loaded_id(intern_t *names, struct load_ids *m, uint32_t db_id, const char *s, size_t len)
{
    if (db_id < m->cap && m->ids[db_id] != 0)
        return (int)m->ids[db_id];
    if (history_ids_room(&m->ids, &m->cap, db_id) != 0)
        return TALLY_ENOMEM;
    int id = name_id(names, s, len);
    if (id > 0)
        m->ids[db_id] = (uint32_t)id;
    return id;
}

static void load_ctx_free(load_ctx_t *l)
{
    for (int k = 0; k < 2; k++) {
        free(l->by_db[k].ids);
        l->by_db[k] = (struct load_ids){0};
    }
}

/* Room for every cell of the database at once: growing by doublings
 * rehashed every cell loaded so far each time (a third of the load with
 * millions of cells). */
static int load_begin(void *ctx, uint64_t nrows)
{
    load_ctx_t *l = ctx;
    return reserve(l->h, nrows > UINT32_MAX ? UINT32_MAX : (uint32_t)nrows) != 0 ? TALLY_ENOMEM : 0;
}

#define INDEX_AHEAD 8 /* index_loaded(): slots looked up ahead */
#define INDEX_PROBE 4 /* and cells compared ahead */

/* Put the cells loaded since the last call into the index, in order: a
 * cell equal to one before it (two rows that name the same cell after
 * interning) takes its place, and that one goes, as when each row looked
 * its cell up and set it.  One insertion after the other, each one's
 * index slot and the cell there are cache misses: the slot of a cell
 * INDEX_AHEAD further on is fetched early, and INDEX_PROBE further on the
 * cell it holds, so that the misses overlap.  Room was reserved. */
static void index_loaded(history_t *h, load_ctx_t *l)
{
    uint32_t n = h->ncells, from = l->indexed, ahead[INDEX_AHEAD] = {0};
    bool gone = false;
    for (uint32_t i = from; i < n; i++) {
        uint32_t *slot = &ahead[i % INDEX_AHEAD];
        if (i + INDEX_AHEAD < n) {
            const history_cell_t *a = &h->cells[i + INDEX_AHEAD];
            *slot = cell_hash(a->metric, a->town, a->type, a->key) & h->mask;
            __builtin_prefetch(&h->index[*slot]);
        }
        if (i + INDEX_PROBE < n && i + INDEX_PROBE >= from + INDEX_AHEAD) {
            uint32_t v = h->index[ahead[(i + INDEX_PROBE) % INDEX_AHEAD]];
            if (v != 0)
                __builtin_prefetch(&h->cells[v - 1]);
        }
        const history_cell_t *c = &h->cells[i];
        if (c->type == CELL_EVENT)
            continue;
        bool found;
        uint32_t s = find_slot(h, c->metric, c->town, c->type, c->key, &found);
        if (found) {
            /* the earlier cell (and its event time's) goes */
            history_cell_t *e = &h->cells[h->index[s] - 1];
            if (e->flags & CELL_GAUGE)
                e[1].type = CELL_GONE;
            e->type = CELL_GONE;
            gone = true;
        }
        h->index[s] = i + 1;
    }
    l->indexed = n;
    if (!gone)
        return;
    /* Cells after a dropped one move down: index them all again. */
    uint32_t k = 0;
    h->nevents = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (h->cells[i].type == CELL_GONE)
            continue;
        h->nevents += h->cells[i].type == CELL_EVENT;
        h->cells[k++] = h->cells[i];
    }
    h->ncells = l->indexed = k;
    memset(h->index, 0, ((size_t)h->mask + 1) * sizeof(*h->index));
    index_all(h);
}

static int load_row(void *ctx, const history_db_cell_t *r)
{
    load_ctx_t *l = ctx;
    history_t *h = l->h;
    int m = loaded_id(l->metrics, &l->by_db[0], r->metric_id, r->metric, r->metric_len);
    int t = r->scope_len == 0
                ? 0
                : loaded_id(l->towns, &l->by_db[1], r->scope_id, r->scope, r->scope_len);
    if (m < 0 || t < 0) {
        snprintf(l->err, sizeof(l->err),
                 "no room for the name of metric '%s' or township '%s' of the database (raise "
                 "[limits] max_metrics or max_townships)",
                 r->metric, r->scope);
        return m < 0 ? m : t;
    }
    /* More rows than counted (a writer elsewhere): the index takes the
     * cells so far before reserve() rehashes it. */
    uint64_t need = (uint64_t)h->ncells + 2;
    if (need > h->cap || need > h->dirty_cap || need * 2 > (uint64_t)h->mask + 1) {
        index_loaded(h, l);
        if (reserve(h, 2) != 0)
            return TALLY_ENOMEM;
    }
    /* The cell goes into the index later (index_loaded()). */
    bool gauge = r->gauge;
    h->cells[h->ncells++] = (history_cell_t){
        .metric = (uint32_t)m,
        .town = (uint32_t)t,
        .key = r->period.key,
        .type = (uint8_t)r->period.type,
        .flags = (uint8_t)((gauge ? CELL_GAUGE : 0) | (r->has || !gauge ? CELL_HAS : 0)),
        .value = r->value,
    };
    if (gauge) {
        h->cells[h->ncells++] = (history_cell_t){.type = CELL_EVENT, .value = r->event_ms};
        h->nevents++;
    }
    return 0;
}

/* Forget every cell (a database that could not be read), and their
 * storage, which was sized for what the database claimed. */
static void clear_cells(history_t *h)
{
    forget_recent(h);
    free_arrays(h);
    h->ncells = h->cap = h->populated = h->mask = h->dirty_cap = h->nevents = 0;
    h->ndirty = h->nholes = h->free_head = 0;
    h->pruning = false;
    h->oldest_day = INT32_MIN;
    account(h);
}

/* ---- open periods (history_db.h) ---- */

/* The first and last days of the last month, quarter and year asked
 * about: a batch's cells name a handful of periods, over and over. */
typedef struct spans {
    bool set[CALPERIOD_YEAR + 1];
    int32_t key[CALPERIOD_YEAR + 1], first[CALPERIOD_YEAR + 1], last[CALPERIOD_YEAR + 1];
} spans_t;

/* Whether period (type, key) is a row of a database whose open periods
 * are those from open_from on not ended before through. */
static bool stored(spans_t *s, uint8_t type, int32_t key, int32_t open_from, int32_t through)
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

#define DERIVE_AHEAD 16 /* derive_open(): day cells whose periods' slots are fetched ahead */

/* Fetch early what cell() will read for the open months, quarters and
 * years of cell j, when it is a day cell of open_from or later: their
 * index slots (stage 0), or the cells those slots hold (stage 1, once the
 * slots are near).  The database gives the rows in period order, so one
 * day cell's series is not the next one's, and each lookup would be two
 * cache misses in a row (derive_open() took a third of a start with 1M
 * series). */
static void derive_prefetch(const history_t *h, uint32_t j, uint32_t n, int32_t open_from,
                            int stage)
{
    if (j >= n)
        return;
    const history_cell_t *c = &h->cells[j];
    if (c->type != CALPERIOD_DAY || c->key < open_from)
        return;
    for (uint8_t t = CALPERIOD_MONTH; t <= CALPERIOD_YEAR; t++) {
        uint32_t s = cell_hash(c->metric, c->town, t, calperiod_of_day(t, c->key).key) & h->mask;
        if (stage == 0)
            __builtin_prefetch(&h->index[s]);
        else if (h->index[s] != 0)
            __builtin_prefetch(&h->cells[h->index[s] - 1]);
    }
}

/* A database that stores open periods only once they end (open_from):
 * their cells from their days (history_db.h), after the rows are loaded
 * and indexed.  Not marked: the database holds them, as their days. */
static int derive_open(history_t *h, int32_t open_from, int32_t through)
{
    if (open_from == HISTORY_DB_ALL_STORED)
        return 0;
    spans_t s = {0};
    /* Rows of open periods cannot be there (they are dropped when the
     * rules begin); should one be, its days still decide. */
    for (uint32_t i = 0; i < h->ncells; i += width(&h->cells[i])) {
        history_cell_t *c = &h->cells[i];
        if (stored(&s, c->type, c->key, open_from, through))
            continue;
        c->value = 0;
        if (c->flags & CELL_GAUGE) {
            c->flags &= (uint8_t)~CELL_HAS;
            *event_ms(c) = 0;
        }
    }
    /* Counters from their days, the county's from its own; a township's
     * gauge from its latest-stamped day. */
    uint32_t n = h->ncells;
    for (uint32_t i = 0; i < n; i += width(&h->cells[i])) {
        if (reserve(h, 2 * CALPERIOD_YEAR) != 0)
            return TALLY_ENOMEM;
        derive_prefetch(h, i + DERIVE_AHEAD, n, open_from, 0);
        derive_prefetch(h, i + DERIVE_AHEAD / 2, n, open_from, 1);
        history_cell_t *c = &h->cells[i];
        bool gauge = (c->flags & CELL_GAUGE) != 0;
        if (c->type != CALPERIOD_DAY || c->key < open_from || (gauge && c->town == 0) ||
            !(c->flags & CELL_HAS))
            continue;
        for (uint8_t t = CALPERIOD_MONTH; t <= CALPERIOD_YEAR; t++) {
            calperiod_t p = calperiod_of_day(t, c->key);
            if (stored(&s, t, p.key, open_from, through))
                continue;
            history_cell_t *r = cell(h, c->metric, c->town, t, p.key, gauge);
            if (!gauge) {
                __int128 v = (__int128)r->value + c->value;
                if (fits(h, v, "a cell of metric", c->metric, "a day"))
                    r->value = (int64_t)v;
            } else if (!(r->flags & CELL_HAS) || *event_ms(c) >= *event_ms(r)) {
                r->value = c->value;
                *event_ms(r) = *event_ms(c);
                r->flags |= CELL_HAS;
            }
        }
    }
    /* The county's gauges: the sums of their townships'. */
    for (uint32_t i = 0; i < h->ncells; i += width(&h->cells[i])) {
        if (reserve(h, 2) != 0)
            return TALLY_ENOMEM;
        history_cell_t *c = &h->cells[i];
        if (!(c->flags & CELL_GAUGE) || !(c->flags & CELL_HAS) || c->town == 0 ||
            stored(&s, c->type, c->key, open_from, through))
            continue;
        int64_t v = c->value, t = *event_ms(c);
        history_cell_t *k = cell(h, c->metric, 0, c->type, c->key, true);
        __int128 sum = (__int128)((k->flags & CELL_HAS) ? k->value : 0) + v;
        if (!fits(h, sum, "the county's gauge", c->metric, "a township"))
            continue;
        k->value = (int64_t)sum;
        if (!(k->flags & CELL_HAS) || t > *event_ms(k))
            *event_ms(k) = t;
        k->flags |= CELL_HAS;
    }
    return 0;
}

/* ---- loading: history_preload() and history_open() ---- */

struct history_preload {
    history_t *h;
    intern_t towns, metrics; /* the database's names, ids in its order */
    load_ctx_t l;            /* reading into h with the two tables above */
    bool opened;             /* history_db_open() succeeded */
    int rc;                  /* history_db_open()'s, then history_db_load()'s */
    uint64_t pos;
    int32_t open_from, through; /* history_db_open_periods()'s */
    char err[512];
    uv_thread_t thread;
    bool threaded;
};

static void preload_main(void *arg)
{
    struct history_preload *p = arg;
    history_t *h = p->h;
    if (p->threaded)
        pthread_setname_np(pthread_self(), "tallyd-hload"); /* for top -H, ps -L */
    p->rc = history_db_open(&h->db, h->dir, p->err, sizeof(p->err));
    p->opened = p->rc == 0;
    if (p->opened)
        p->rc =
            history_db_load(&h->db, &p->pos, load_begin, load_row, &p->l, p->err, sizeof(p->err));
    if (p->opened && p->rc == 0)
        p->rc = history_db_open_periods(&h->db, &p->open_from, &p->through, p->err, sizeof(p->err));
}

static void preload_free(struct history_preload *p)
{
    load_ctx_free(&p->l);
    intern_free(&p->towns);
    intern_free(&p->metrics);
    free(p);
}

/* Wait for the reading, and take it out of h. */
static struct history_preload *preload_join(history_t *h)
{
    struct history_preload *p = h->preload;
    h->preload = NULL;
    if (p != NULL && p->threaded)
        uv_thread_join(&p->thread);
    return p;
}

/* A reading nobody took (the start failed before history_open()): wait
 * for it and close its database. */
static void preload_discard(history_t *h)
{
    struct history_preload *p = preload_join(h);
    if (p == NULL)
        return;
    if (p->opened)
        history_db_close(&h->db);
    preload_free(p);
}

int history_preload(history_t *h, const char *dir, const intern_t *towns, const intern_t *metrics)
{
    assert(h->preload == NULL);
    struct history_preload *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return TALLY_ENOMEM;
    if (intern_init(&p->towns, towns->capacity) != 0 ||
        intern_init(&p->metrics, metrics->capacity) != 0) {
        preload_free(p);
        return TALLY_ENOMEM;
    }
    p->h = h;
    p->l = (load_ctx_t){.h = h, .towns = &p->towns, .metrics = &p->metrics};
    h->dir = dir;
    h->preload = p;
    p->threaded = true;
    if (uv_thread_create(&p->thread, preload_main, p) != 0) {
        p->threaded = false;
        preload_main(p); /* here and now, then */
    }
    return 0;
}

/* The ids in towns and metrics of the names the reading found, for the
 * cells it read; then the index of every cell (the reading may have begun
 * one with its own ids).  Returns 0, TALLY_ENOMEM, or the code of a name
 * that does not fit (l->err says which). */
static int map_names(history_t *h, struct history_preload *p, load_ctx_t *l)
{
    uint32_t nm = intern_count(&p->metrics), nt = intern_count(&p->towns);
    uint32_t *mid = malloc(((size_t)nm + 1) * sizeof(*mid));
    uint32_t *tid = malloc(((size_t)nt + 1) * sizeof(*tid));
    int rc = mid != NULL && tid != NULL ? 0 : TALLY_ENOMEM;
    struct {
        const intern_t *from;
        intern_t *to;
        uint32_t *ids, n;
        const char *what, *limit;
    } sets[2] = {{&p->metrics, l->metrics, mid, nm, "metric", "max_metrics"},
                 {&p->towns, l->towns, tid, nt, "township", "max_townships"}};
    for (int k = 0; k < 2 && rc == 0; k++) {
        sets[k].ids[0] = 0; /* the county */
        for (uint32_t i = 1; i <= sets[k].n && rc == 0; i++) {
            uint32_t len;
            const char *name = intern_name(sets[k].from, i, &len);
            int id = name_id(sets[k].to, name, len);
            if (id < 0) {
                snprintf(l->err, sizeof(l->err),
                         "no room for the name of %s '%s' of the database (raise [limits] %s)",
                         sets[k].what, name, sets[k].limit);
                rc = id;
            } else {
                sets[k].ids[i] = (uint32_t)id;
            }
        }
    }
    if (rc == 0) {
        for (uint32_t i = 0; i < h->ncells; i++) {
            history_cell_t *c = &h->cells[i];
            if (c->type == CELL_EVENT)
                continue;
            c->metric = mid[c->metric];
            c->town = tid[c->town];
        }
        if (h->index != NULL) /* none before the first cell */
            memset(h->index, 0, ((size_t)h->mask + 1) * sizeof(*h->index));
        l->indexed = 0;
        index_loaded(h, l);
    }
    free(mid);
    free(tid);
    return rc;
}

int history_open(history_t *h, const char *dir, intern_t *towns, intern_t *metrics, bool *rebuilt)
{
    char err[512];
    *rebuilt = false;
    if (h->preload == NULL && history_preload(h, dir, towns, metrics) != 0) {
        log_error(h->c.log, "history: cannot load %s/%s: out of memory", dir, HISTORY_DB_FILE);
        return TALLY_ENOMEM;
    }
    struct history_preload *p = preload_join(h);
    h->dir = dir;
    int rc = p->rc;
    uint64_t pos = p->pos;
    int32_t open_from = p->open_from, through = p->through;
    snprintf(err, sizeof(err), "%s", p->err);
    load_ctx_t l = {.h = h, .towns = towns, .metrics = metrics};
    snprintf(l.err, sizeof(l.err), "%s", p->l.err);
    if (rc == 0)
        rc = map_names(h, p, &l);
    if (rc == 0)
        rc = derive_open(h, open_from, through);
    bool opened = p->opened;
    preload_free(p);
    if (rc == TALLY_EIO)
        l.err[0] = '\0'; /* damaged: whatever the rows made load_row() say */
    if (rc != 0 && l.err[0])
        snprintf(err, sizeof(err), "%s", l.err);
    if (rc != 0 && opened)
        history_db_close(&h->db);
    if (rc == TALLY_ENOMEM || (rc != 0 && l.err[0])) {
        log_error(h->c.log, "history: cannot load %s/%s: %s", dir, HISTORY_DB_FILE,
                  rc == TALLY_ENOMEM ? "out of memory" : err);
        return rc;
    }
    if (rc != 0) {
        char aside[128] = "";
        clear_cells(h);
        pos = 0;
        open_from = HISTORY_DB_ALL_STORED; /* a new database: no rows, no rules */
        through = HISTORY_DB_NO_DAY;
        if (history_db_set_aside(dir, aside, sizeof(aside)) != 0)
            snprintf(aside, sizeof(aside), "(could not be renamed: %s)", strerror(errno));
        log_error(h->c.log,
                  "history: %s/%s cannot be read (%s); it is set aside as %s and the history is "
                  "rebuilt from the journal",
                  dir, HISTORY_DB_FILE, err, aside);
        *rebuilt = true;
        rc = history_db_open(&h->db, dir, err, sizeof(err));
        if (rc != 0) {
            log_error(h->c.log, "history: cannot create %s/%s: %s", dir, HISTORY_DB_FILE, err);
            return TALLY_EIO;
        }
    }
    h->db_open = true;
    h->applied_pos = h->stored_pos = pos;
    h->loaded_pos = pos;
    h->db_open_from = open_from;
    h->db_through = through;
    h->db_empty = h->ncells == 0 && open_from == HISTORY_DB_ALL_STORED;
    h->oldest_day = INT32_MIN; /* the cells loaded: learnt by the next pruning */
    /* Cells loaded are stored already. */
    for (uint32_t i = 0; i < h->ncells; i++)
        h->cells[i].flags &= (uint8_t)~CELL_DIRTY;
    h->ndirty = 0;
    log_info(h->c.log, "history: %u cells from %s/%s, up to journal position %" PRIu64, h->ncells,
             dir, HISTORY_DB_FILE, pos);
    return 0;
}

/* ---- retention ---- */

/* Take the cell at `at` out of the index: its slot empties, and the
 * cells after it in the run of full slots that may move back into the
 * gap do (deletion under linear probing, no tombstones). */
static void unindex(history_t *h, uint32_t at)
{
    const history_cell_t *c = &h->cells[at];
    uint32_t s = cell_hash(c->metric, c->town, c->type, c->key) & h->mask;
    while (h->index[s] != at + 1)
        s = (s + 1) & h->mask;
    for (uint32_t j = (s + 1) & h->mask; h->index[j] != 0; j = (j + 1) & h->mask) {
        const history_cell_t *e = &h->cells[h->index[j] - 1];
        uint32_t home = cell_hash(e->metric, e->town, e->type, e->key) & h->mask;
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
static void drop(history_t *h, uint32_t at)
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
    settle_all(h);
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
    forget_recent(h);
    h->ncells = n;
    h->nholes = h->free_head = 0;
    h->ndirty = 0;
    for (uint32_t i = 0; i < n; i++)
        if (h->cells[i].flags & CELL_DIRTY)
            h->dirty[h->ndirty++] = i;
    memset(h->index, 0, ((size_t)h->mask + 1) * sizeof(*h->index));
    index_all(h);
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
    settle_all(h);
    uint32_t i = h->prune_at, end = h->ncells - i > PRUNE_LOOK ? i + PRUNE_LOOK : h->ncells;
    uint32_t dropped = 0;
    while (i < end && dropped < PRUNE_DROP) {
        history_cell_t *c = &h->cells[i];
        uint32_t w = width(c);
        if (c->type == CALPERIOD_DAY && c->key < h->prune_first) {
            drop(h, i);
            dropped++;
        } else if (c->type == CALPERIOD_DAY && c->key < h->prune_oldest) {
            h->prune_oldest = c->key;
        }
        i += w;
    }
    h->prune_at = i;
    if (dropped > 0)
        forget_recent(h); /* entries may name the dropped cells */
    return i >= h->ncells;
}

/* Begin or go on dropping the days before first, which left the
 * retention. */
static void prune(history_t *h, int32_t first)
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

/* ---- the writer ---- */

static void writer_main(void *arg)
{
    history_t *h = arg;
    pthread_setname_np(pthread_self(), "tallyd-history"); /* for top -H, ps -L */
    uv_mutex_lock(&h->mu);
    for (;;) {
        while (!h->quit && (h->batch == NULL || h->batch_done))
            uv_cond_wait(&h->cv, &h->mu);
        if (h->batch == NULL || h->batch_done)
            break; /* told to quit, and no batch waits (one handed over
                    * just before is written first: history_stop() would
                    * find it busy and store nothing) */
        history_batch_t *b = h->batch;
        uv_mutex_unlock(&h->mu);
        history_db_write(&h->db, b);
        uv_mutex_lock(&h->mu);
        h->batch_done = true;
        uv_async_send(&h->done);
    }
    uv_mutex_unlock(&h->mu);
}

/* build_batch() ran out of memory part-way, at the taken-th cell of the
 * dirty list: the cells taken so far are dirty again (the list still
 * holds them). */
static int batch_undo(history_t *h, history_batch_t *b, uint32_t taken)
{
    for (uint32_t j = 0; j < taken; j++)
        h->cells[h->dirty[j]].flags |= CELL_DIRTY;
    b->nrows = 0;
    return TALLY_ENOMEM;
}

/* Day keys of 2000..2099 fit a batch row's 24-bit key. */
_Static_assert((CALPERIOD_YEAR_MAX - 1969) * 366 < (1 << 23), "a day key fits 24 bits");

/* The open periods' rules for the next batch: from the day they began
 * while enough days are kept, none otherwise; stored through today.  They
 * begin today, so that periods begun before (whose first days a shorter
 * retention may have dropped) stay rows, or, in a database that never
 * held a row, on the first day there is. */
static void open_rules(const history_t *h, int32_t today, int32_t *open_from, int32_t *through)
{
    *open_from = h->db_open_from;
    *through = h->db_through;
    if (today == INT32_MAX)
        return; /* no day by the clock: as they were */
    if (today > *through)
        *through = today;
    if (h->c.days < HISTORY_OPEN_DAYS)
        *open_from = HISTORY_DB_ALL_STORED;
    else if (*open_from == HISTORY_DB_ALL_STORED)
        *open_from = h->db_empty ? calperiod_days_from_civil(CALPERIOD_YEAR_MIN, 1, 1) : today;
}

/* Whether a month (and so perhaps a quarter or a year) ended on a day in
 * [from, to): with the same open_from a later stored_through stores only
 * the periods that did, so on every other day the pass over all cells of
 * mark_newly_stored() is spared.  The first such month is the one holding
 * from. */
static bool month_ended(int32_t from, int32_t to)
{
    if (from == HISTORY_DB_NO_DAY || to <= from)
        return true; /* no day stored yet, or the clock went back: look */
    int32_t first, last;
    calperiod_days(calperiod_of_day(CALPERIOD_MONTH, from), &first, &last);
    return last < to;
}

/* Mark the cells that the rules (open_from, through) store and the
 * database's did not: the periods that ended since, or every open one
 * when the rules end. */
static void mark_newly_stored(history_t *h, int32_t open_from, int32_t through)
{
    if (open_from == h->db_open_from && through == h->db_through)
        return;
    if (open_from == h->db_open_from &&
        (open_from == HISTORY_DB_ALL_STORED || !month_ended(h->db_through, through)))
        return;
    spans_t now = {0}, was = {0};
    for (uint32_t i = 0; i < h->ncells; i += width(&h->cells[i])) {
        history_cell_t *c = &h->cells[i];
        if (c->type != CALPERIOD_DAY && c->type != CELL_GONE &&
            stored(&now, c->type, c->key, open_from, through) &&
            !stored(&was, c->type, c->key, h->db_open_from, h->db_through))
            mark(h, c);
    }
}

/* Fill b with the dirty cells (their marks cleared; those of open
 * periods left out), the position and the open periods' rules. */
static int build_batch(history_t *h, history_batch_t *b)
{
    settle_all(h);
    b->nrows = 0;
    b->prune = false;
    int32_t today = history_today(h);
    open_rules(h, today, &b->open_from, &b->through);
    b->drop_open = b->open_from != h->db_open_from && b->open_from != HISTORY_DB_ALL_STORED;
    mark_newly_stored(h, b->open_from, b->through);
    spans_t s = {0};
    int32_t first = first_kept_day(h, today);
    uint32_t events = h->nevents < h->ndirty ? h->nevents : h->ndirty;
    if (history_batch_reserve(b, h->ndirty + events) != 0)
        return TALLY_ENOMEM;
    /* The names go into the batch once per run of rows of the same series
     * (a series' cells are marked together). */
    b->nnames = 0;
    uint32_t last_m = 0, last_t = UINT32_MAX, names = 0;
    for (uint32_t i = 0; i < h->ndirty; i++) {
        uint32_t ci = h->dirty[i];
        history_cell_t *c = &h->cells[ci];
        if (c->type == CELL_GONE)
            continue; /* dropped (drop()) */
        if (c->type == CALPERIOD_DAY && c->key < first) {
            c->flags &= (uint8_t)~CELL_DIRTY; /* left the retention: dropped soon */
            continue;
        }
        if (!stored(&s, c->type, c->key, b->open_from, b->through)) {
            c->flags &= (uint8_t)~CELL_DIRTY; /* its day's row stands for it */
            continue;
        }
        if (c->metric != last_m || c->town != last_t) {
            uint32_t mlen = 0, tlen = 0;
            const char *m = intern_name(h->c.metrics, c->metric, &mlen);
            const char *t = c->town ? intern_name(h->c.towns, c->town, &tlen) : NULL;
            if (history_batch_names(b, c->metric, c->town, m ? m : "", m ? mlen : 0, t ? t : "",
                                    t ? tlen : 0, &names) != 0)
                return batch_undo(h, b, i);
            last_m = c->metric;
            last_t = c->town;
        }
        bool gauge = (c->flags & CELL_GAUGE) != 0;
        b->rows[b->nrows++] = (history_row_t){.value = c->value,
                                              .names = names,
                                              .key = c->key,
                                              .type = c->type,
                                              .gauge = gauge,
                                              .has = (c->flags & CELL_HAS) != 0};
        if (gauge)
            b->rows[b->nrows++] =
                (history_row_t){.value = *event_ms(c), .names = names, .event = 1};
        c->flags &= (uint8_t)~CELL_DIRTY;
    }
    h->ndirty = 0;
    b->prune = first > h->pruned_before;
    b->first_day = first;
    b->pos = h->applied_pos;
    return 0;
}

/* A batch came back.  When it failed, every cell is marked again: which
 * cells it held is not kept (4 bytes a row, and the batch after a start
 * holds millions), and storing them all again is the rare path. */
static void batch_back(history_t *h)
{
    history_batch_t *b = h->batch;
    if (b->rc == 0) {
        h->stored_pos = b->pos;
        h->db_open_from = b->open_from;
        h->db_through = b->through;
        h->db_empty = h->db_empty && b->nrows == 0;
        if (b->prune)
            h->pruned_before = b->first_day;
        if (h->failures_logged) {
            log_notice(h->c.log, "history: storing cells in %s/%s works again", h->dir,
                       HISTORY_DB_FILE);
            h->failures_logged = false;
        }
        return;
    }
    h->failures++;
    if (!h->failures_logged)
        log_error(h->c.log,
                  "history: %s; the cells stay in memory and are stored again later (the journal "
                  "is kept until they are)",
                  b->err);
    h->failures_logged = true;
    for (uint32_t i = 0; i < h->ncells; i += width(&h->cells[i]))
        if (h->cells[i].type != CELL_GONE)
            mark(h, &h->cells[i]);
}

static void on_done(uv_async_t *a)
{
    history_t *h = a->data;
    uv_mutex_lock(&h->mu);
    bool done = h->batch != NULL && h->batch_done;
    uv_mutex_unlock(&h->mu);
    if (!done)
        return;
    batch_back(h);
    int64_t now = clock_mono_ms();
    h->rest_until_ms = now + (now - h->batch_start_ms);
    uv_mutex_lock(&h->mu);
    h->batch_busy = false;
    uv_mutex_unlock(&h->mu);
}

/* Hand the dirty cells to the writer, unless it is busy or nothing
 * changed. */
static void flush(history_t *h)
{
    int32_t first = first_kept_day(h, history_today(h));
    prune(h, first);
    if (h->batch_busy)
        return;
    if (clock_mono_ms() < h->rest_until_ms)
        return; /* the writer rests (history_start()) */
    int32_t open_from, through;
    open_rules(h, history_today(h), &open_from, &through);
    if (h->ndirty == 0 && h->applied_pos == h->stored_pos && first <= h->pruned_before &&
        open_from == h->db_open_from && through == h->db_through)
        return;
    if (build_batch(h, h->batch) != 0) {
        log_limited(h->c.log, clock_mono_ms(), LOG_LEVEL_ERROR,
                    "history: out of memory building a batch; retried later");
        return;
    }
    h->batch_start_ms = clock_mono_ms();
    uv_mutex_lock(&h->mu);
    h->batch_done = false;
    h->batch_busy = true;
    uv_cond_signal(&h->cv);
    uv_mutex_unlock(&h->mu);
}

static void on_timer(uv_timer_t *t)
{
    flush(t->data);
}

int history_start(history_t *h, uv_loop_t *loop)
{
    h->loop = loop;
    h->batch = calloc(1, sizeof(*h->batch));
    if (h->batch == NULL)
        return TALLY_ENOMEM;
    if (uv_mutex_init(&h->mu) != 0)
        return TALLY_ENOMEM;
    if (uv_cond_init(&h->cv) != 0) {
        uv_mutex_destroy(&h->mu);
        return TALLY_ENOMEM;
    }
    h->sync_init = true;
    h->timer.data = h->done.data = h;
    if (uv_timer_init(loop, &h->timer) != 0 || uv_async_init(loop, &h->done, on_done) != 0)
        return TALLY_ESYS;
    h->open_handles = 2;
    h->started = true;
    h->batch_done = true; /* nothing for the writer yet */
    if (uv_thread_create(&h->thread, writer_main, h) != 0) {
        log_error(h->c.log, "history: cannot start the writer thread");
        return TALLY_ESYS;
    }
    h->thread_started = true;
    h->live = true;
    uv_timer_start(&h->timer, on_timer, HISTORY_FLUSH_MS, HISTORY_FLUSH_MS);
    return 0;
}

static void on_handle_closed(uv_handle_t *handle)
{
    history_t *h = handle->data;
    h->open_handles--;
}

void history_stop(history_t *h)
{
    if (!h->started)
        return;
    h->started = false;
    h->live = false;
    uv_timer_stop(&h->timer);
    if (h->thread_started) {
        uv_mutex_lock(&h->mu);
        h->quit = true;
        uv_cond_signal(&h->cv);
        uv_mutex_unlock(&h->mu);
        uv_thread_join(&h->thread);
        h->thread_started = false;
    }
    /* A batch the writer finished without the loop seeing it yet. */
    if (h->batch_busy && h->batch_done) {
        batch_back(h);
        h->batch_busy = false;
    }
    /* What is left, stored here on the loop thread: the writer is gone. */
    if (!h->batch_busy && h->db_open && build_batch(h, h->batch) == 0 &&
        (h->batch->nrows > 0 || h->batch->pos != h->stored_pos || h->batch->prune ||
         h->batch->open_from != h->db_open_from || h->batch->through != h->db_through)) {
        history_db_write(&h->db, h->batch);
        batch_back(h);
    }
    if (h->db_open) {
        history_db_close(&h->db);
        h->db_open = false;
    }
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
    uv_close((uv_handle_t *)&h->done, on_handle_closed);
}
