/* history.c - closed calendar periods in memory: the cells, applying
 * journal records to them and reading them (see history.h; loading the
 * database is history_load.c's, storing it history_writer.c's, dropping
 * the days that left the retention history_prune.c's). */
#include "history.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "history_impl.h"
#include "memhint.h"
#include "period.h"
#include "tally_error.h"

/* A record's changes to closed periods of one series: bit t of mask for
 * period type t. */
struct history_change {
    uint32_t metric, town;
    uint8_t mask;
    int32_t key[CALPERIOD_YEAR + 1];
};

static uint32_t find_slot(const history_t *h, uint32_t metric, uint32_t town, uint8_t type,
                          int32_t key, bool *found)
{
    for (uint32_t i = history_cell_hash(metric, town, type, key) & h->mask;;
         i = (i + 1) & h->mask) {
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

/* Cells history_index_all() places together. */
#define INDEX_GROUP 32

/* Put every cell into the (empty) index.  The cells' keys are distinct,
 * so a cell takes the first free slot from its hash on without reading
 * the cells already there; with many cells each slot is a cache miss, so
 * the slots of a group of cells are fetched together before any is
 * written. */
void history_index_all(history_t *h)
{
    uint32_t at[INDEX_GROUP], slot[INDEX_GROUP];
    for (uint32_t i = 0; i < h->ncells;) {
        uint32_t n = 0;
        for (; n < INDEX_GROUP && i < h->ncells; i += width(&h->cells[i])) {
            const history_cell_t *c = &h->cells[i];
            if (c->type == CELL_GONE)
                continue;
            at[n] = i;
            slot[n] = history_cell_hash(c->metric, c->town, c->type, c->key) & h->mask;
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

void history_free_arrays(history_t *h)
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
    history_index_all(h);
    return 0;
}

void history_account(history_t *h)
{
    h->mem = (size_t)h->cap * sizeof(*h->cells) + ((size_t)h->mask + 1) * sizeof(*h->index) +
             (size_t)h->dirty_cap * sizeof(*h->dirty) +
             HISTORY_RECENT * (sizeof(*h->recent) + sizeof(*h->pending_slots));
}

/* Cells moved or went: forget where they were (history_settle_all() first when
 * their pending sums still count). */
void history_forget_recent(history_t *h)
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
    history_account(h);
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
        /* the two places last freed lie side by side (a gauge's, as history_drop()
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

/* find_slot(), reserve() and cell() for history_load.c; those here stay
 * inlined in the hot path. */
uint32_t history_find_slot(const history_t *h, uint32_t metric, uint32_t town, uint8_t type,
                           int32_t key, bool *found)
{
    return find_slot(h, metric, town, type, key, found);
}

int history_reserve(history_t *h, uint32_t extra)
{
    return reserve(h, extra);
}

history_cell_t *history_cell(history_t *h, uint32_t metric, uint32_t town, uint8_t type,
                             int32_t key, bool gauge)
{
    return cell(h, metric, town, type, key, gauge);
}

void history_mark(history_t *h, history_cell_t *c)
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

void history_free(history_t *h)
{
    history_preload_discard(h);
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
    history_free_arrays(h);
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
 * transition), and a PERIOD answer asks for today twice per item.  Never
 * a day before the engine's: a clock set back (by hand, or a restart on a
 * machine whose clock is behind) leaves the engine's periods where they
 * were (time only moves forward there), and the day the engine holds as
 * today must not be read, or closed, as an earlier one. */
static void now_keys(history_t *h, int32_t keys[4])
{
    int64_t now = clock_now_ms(h->c.clock), engine_now = engine_now_ms(h->c.engine);
    if (day_of(&h->today, now > engine_now ? now : engine_now) != 0) {
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

bool history_expired(history_t *h, calperiod_t p)
{
    return p.type == CALPERIOD_DAY && p.key < history_first_kept_day(h, history_today(h));
}

void history_set_days(history_t *h, int64_t days)
{
    if (days < HISTORY_DAYS_MIN || days > HISTORY_DAYS_MAX || days == h->c.days)
        return;
    int32_t today = history_today(h), was = history_first_kept_day(h, today);
    int64_t before = h->c.days;
    h->c.days = days;
    int32_t first = history_first_kept_day(h, today);
    char from[CALPERIOD_NAME_MAX] = "?";
    calperiod_format((calperiod_t){CALPERIOD_DAY, first}, from, sizeof from);
    if (first > was)
        log_warning(h->c.log,
                    "history: days %" PRId64 " -> %" PRId64 ": the days before %s are dropped now "
                    "and do not come back if more days are kept later",
                    before, days, from);
    else
        log_info(h->c.log,
                 "history: days %" PRId64 " -> %" PRId64 ": the days from %s on are kept (days "
                 "dropped earlier do not come back)",
                 before, days, from);
}

void history_set_position(history_t *h, uint64_t pos)
{
    if (pos > h->applied_pos)
        h->applied_pos = pos;
}

bool history_fits(history_t *h, __int128 s, const char *what, uint32_t metric, const char *part)
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
    if (!history_fits(h, s, "a cell of metric", c->metric, "that sample"))
        return;
    c->value = (int64_t)s;
    history_mark(h, c);
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
    if (!history_fits(h, s, "the county's gauge", c->metric, "that sample"))
        return false;
    bool changed = !(t->flags & CELL_HAS) || t->value != v;
    t->value = v;
    *event_ms(t) = time_ms;
    t->flags |= CELL_HAS;
    c->value = (int64_t)s;
    if (time_ms > *event_ms(c))
        *event_ms(c) = time_ms;
    c->flags |= CELL_HAS;
    history_mark(h, t);
    history_mark(h, c);
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
void history_settle_all(history_t *h)
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
        slot[t] = history_cell_hash(metric, town, t, keys[t]) & h->mask;
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
            const uint32_t *slot = &h->index[history_cell_hash(m, town, t, d->keys[t]) & h->mask];
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
 * free again once history_settle_all() has run (every batch, every read). */
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
    int32_t first_day = history_first_kept_day(h, now[CALPERIOD_DAY]);
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
        history_settle_all(h);
    uint32_t num, den;
    if (engine_ratio_operands(h->c.engine, metric, &num, &den) != 0) {
        read_cell(h, metric, town, p, out);
        return;
    }
    engine_value_t a, b;
    read_cell(h, num, town, p, &a);
    read_cell(h, den, town, p, &b);
    engine_ratio_value(h->c.engine, metric, &a, &b, out);
}
