/* history_load.c - tallyd (daemon/): the history's cells loaded from its
 * database at start-up, on a thread of their own while the checkpoint
 * loads (history_preload()), then named and indexed on the loop
 * (history_open()), and the open months, quarters and years derived from
 * their days (history.h, history_db.h). */
#include "history.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history_impl.h"
#include "memhint.h"
#include "tally_error.h"

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
    return history_reserve(l->h, nrows > UINT32_MAX ? UINT32_MAX : (uint32_t)nrows) != 0
               ? TALLY_ENOMEM
               : 0;
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
            *slot = history_cell_hash(a->metric, a->town, a->type, a->key) & h->mask;
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
        uint32_t s = history_find_slot(h, c->metric, c->town, c->type, c->key, &found);
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
    history_index_all(h);
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
     * cells so far before history_reserve() rehashes it. */
    uint64_t need = (uint64_t)h->ncells + 2;
    if (need > h->cap || need > h->dirty_cap || need * 2 > (uint64_t)h->mask + 1) {
        index_loaded(h, l);
        if (history_reserve(h, 2) != 0)
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
    history_forget_recent(h);
    history_free_arrays(h);
    h->ncells = h->cap = h->populated = h->mask = h->dirty_cap = h->nevents = 0;
    h->ndirty = h->nholes = h->free_head = 0;
    h->pruning = false;
    h->oldest_day = INT32_MIN;
    history_account(h);
}

/* ---- open periods (history_db.h) ---- */

#define DERIVE_AHEAD 16 /* derive_open(): day cells whose periods' slots are fetched ahead */

/* Fetch early what history_cell() will read for the open months, quarters and
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
        uint32_t s =
            history_cell_hash(c->metric, c->town, t, calperiod_of_day(t, c->key).key) & h->mask;
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
        if (history_stored(&s, c->type, c->key, open_from, through))
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
        if (history_reserve(h, 2 * CALPERIOD_YEAR) != 0)
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
            if (history_stored(&s, t, p.key, open_from, through))
                continue;
            history_cell_t *r = history_cell(h, c->metric, c->town, t, p.key, gauge);
            if (!gauge) {
                __int128 v = (__int128)r->value + c->value;
                if (history_fits(h, v, "a cell of metric", c->metric, "a day"))
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
        if (history_reserve(h, 2) != 0)
            return TALLY_ENOMEM;
        history_cell_t *c = &h->cells[i];
        if (!(c->flags & CELL_GAUGE) || !(c->flags & CELL_HAS) || c->town == 0 ||
            history_stored(&s, c->type, c->key, open_from, through))
            continue;
        int64_t v = c->value, t = *event_ms(c);
        history_cell_t *k = history_cell(h, c->metric, 0, c->type, c->key, true);
        __int128 sum = (__int128)((k->flags & CELL_HAS) ? k->value : 0) + v;
        if (!history_fits(h, sum, "the county's gauge", c->metric, "a township"))
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
    int32_t open_from, through, kept_from; /* history_db_open_periods()'s */
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
        p->rc = history_db_open_periods(&h->db, &p->open_from, &p->through, &p->kept_from, p->err,
                                        sizeof(p->err));
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
void history_preload_discard(history_t *h)
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
    int32_t open_from = p->open_from, through = p->through, kept_from = p->kept_from;
    snprintf(err, sizeof(err), "%s", p->err);
    load_ctx_t l = {.h = h, .towns = towns, .metrics = metrics};
    snprintf(l.err, sizeof(l.err), "%s", p->l.err);
    if (rc == 0)
        rc = map_names(h, p, &l);
    if (rc == 0)
        rc = derive_open(h, open_from, through);
    bool opened = p->opened;
    preload_free(p);
    if (rc == TALLY_EDAMAGED || rc == TALLY_EIO)
        l.err[0] = '\0'; /* the file's verdict: whatever the rows made load_row() say */
    if (rc != 0 && l.err[0])
        snprintf(err, sizeof(err), "%s", l.err);
    if (rc != 0 && opened)
        history_db_close(&h->db);
    if (rc == TALLY_ENOMEM || (rc != 0 && l.err[0])) {
        log_error(h->c.log, "history: cannot load %s/%s: %s", dir, HISTORY_DB_FILE,
                  rc == TALLY_ENOMEM ? "out of memory" : err);
        return rc;
    }
    if (rc != 0 && rc != TALLY_EDAMAGED) {
        /* Not damaged, only not readable or writable now (history_db.h):
         * set aside, a sound file would take with it the closed periods
         * the journal no longer holds.  The start stops; the next one,
         * the cause gone, loads it whole. */
        log_error(h->c.log,
                  "history: %s/%s cannot be opened or read now (%s); it is kept as it is and "
                  "tallyd stops: free disk space on its file system, or check the disk and the "
                  "file (its owner and permissions, that it is the database), then start tallyd "
                  "again",
                  dir, HISTORY_DB_FILE, err);
        return TALLY_EIO;
    }
    if (rc != 0) {
        char aside[128] = "";
        clear_cells(h);
        pos = 0;
        open_from = HISTORY_DB_ALL_STORED; /* a new database: no rows, no rules */
        through = kept_from = HISTORY_DB_NO_DAY;
        if (history_db_set_aside(dir, aside, sizeof(aside)) != 0)
            snprintf(aside, sizeof(aside), "(could not be renamed: %s)", strerror(errno));
        log_error(h->c.log,
                  "history: %s/%s is damaged (%s); it is set aside as %s and the history is "
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
    if (kept_from != HISTORY_DB_NO_DAY)
        h->pruned_before = kept_from;
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
