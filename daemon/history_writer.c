/* history_writer.c - tallyd (daemon/): the history's writer.  Every
 * HISTORY_FLUSH_MS the loop builds a batch of the changed cells and hands
 * it to a thread that stores it in the database (history_db.h) in one
 * transaction; the loop takes it back when the thread is done (see
 * history.h, Storage and Threads). */
#include "history.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "history_impl.h"
#include "tally_error.h"

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
            history_stored(&now, c->type, c->key, open_from, through) &&
            !history_stored(&was, c->type, c->key, h->db_open_from, h->db_through))
            history_mark(h, c);
    }
}

/* Fill b with the dirty cells (their marks cleared; those of open
 * periods left out), the position and the open periods' rules. */
static int build_batch(history_t *h, history_batch_t *b)
{
    history_settle_all(h);
    b->nrows = 0;
    b->prune = false;
    int32_t today = history_today(h);
    open_rules(h, today, &b->open_from, &b->through);
    b->drop_open = b->open_from != h->db_open_from && b->open_from != HISTORY_DB_ALL_STORED;
    mark_newly_stored(h, b->open_from, b->through);
    spans_t s = {0};
    int32_t first = history_first_kept_day(h, today);
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
            continue; /* dropped (history_drop()) */
        if (c->type == CALPERIOD_DAY && c->key < first) {
            c->flags &= (uint8_t)~CELL_DIRTY; /* left the retention: dropped soon */
            continue;
        }
        if (!history_stored(&s, c->type, c->key, b->open_from, b->through)) {
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
            log_notice(h->c.log,
                       "history: storing cells in %s/%s works again; the cells held in memory "
                       "since it failed are stored, up to journal position %" PRIu64,
                       h->dir, HISTORY_DB_FILE, b->pos);
            h->failures_logged = false;
        }
        return;
    }
    h->failures++;
    /* At the stop (not live), history_stop() says what becomes of them. */
    if (!h->failures_logged && h->live)
        log_error(h->c.log,
                  "history: %s; the cells stay in memory and are stored again later (the journal "
                  "is kept until they are)",
                  b->err);
    h->failures_logged = true;
    for (uint32_t i = 0; i < h->ncells; i += width(&h->cells[i]))
        if (h->cells[i].type != CELL_GONE)
            history_mark(h, &h->cells[i]);
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
    int32_t first = history_first_kept_day(h, history_today(h));
    history_prune(h, first);
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
        if (h->batch->rc != 0)
            log_error(h->c.log,
                      "history: %s at the stop; the journal keeps the records from position "
                      "%" PRIu64 " on, and the next start stores them in %s",
                      h->batch->err, h->stored_pos + 1, HISTORY_DB_FILE);
    }
    if (h->db_open) {
        history_db_close(&h->db);
        h->db_open = false;
    }
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
    uv_close((uv_handle_t *)&h->done, on_handle_closed);
}
