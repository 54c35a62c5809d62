/* compact.c - checkpoints while running, and at the stop (see compact.h). */
#include "compact.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "vec.h"

static void maybe_closed(compact_t *k)
{
    if (k->on_closed && !k->storing && k->open_handles == 0) {
        void (*cb)(compact_t *) = k->on_closed;
        k->on_closed = NULL;
        cb(k);
    }
}

static void on_wait(uv_timer_t *t);

/* The first position another part still needs (hold_pos), or "none". */
static uint64_t held_back(const compact_t *k)
{
    return k->c.hold_pos != NULL ? k->c.hold_pos(k->c.hold_ctx) : UINT64_MAX;
}

static void store_work(uv_work_t *w)
{
    compact_t *k = w->data;
    uint64_t keep = 0;
    k->removed = 0;
    k->rc = checkpoint_store(k->c.dir, k->buf, k->len, &keep, k->err, sizeof(k->err));
    /* Only segments older than the oldest checkpoint kept may go, and only
     * when an older one is kept at all: if the newest is found damaged
     * later, the one before it plus the journal still hold everything, and
     * with a single checkpoint the whole journal does. */
    if (k->rc == 0 && keep > 0 && keep < k->ckpt_gen) {
        if (k->may_remove)
            journal_remove_before(k->c.dir, keep, &k->removed);
        else
            k->deferred_keep = keep; /* once hold_pos has caught up (on_timer) */
    }
}

static void store_done(uv_work_t *w, int status)
{
    compact_t *k = w->data;
    free(k->buf);
    k->buf = NULL;
    k->busy = k->storing = false;
    if (status != 0 || k->rc != 0)
        log_error(k->c.log, "checkpoint failed: %s; the journal keeps everything meanwhile",
                  k->rc ? k->err : uv_strerror(status));
    else
        log_info(k->c.log,
                 "checkpoint written (%zu bytes, %u series); %u old journal segments removed",
                 k->len, engine_series_count(k->c.engine), k->removed);
    maybe_closed(k);
}

/* Queue the image for storing, once the segment it names exists: a
 * checkpoint on disk whose segment does not would look, after a crash,
 * like a segment deleted (recover.h). */
static void store_when_segment_exists(compact_t *k)
{
    journal_stats_t st;
    journal_stats(k->c.journal, &st);
    if (st.segment_gen < k->ckpt_gen) {
        if (!uv_is_active((uv_handle_t *)&k->wait))
            uv_timer_start(&k->wait, on_wait, 2, 2);
        return;
    }
    uv_timer_stop(&k->wait);
    k->may_remove = held_back(k) >= k->c.covered_pos;
    k->deferred_pos = k->c.covered_pos;
    k->storing = true;
    k->work.data = k;
    if (uv_queue_work(k->c.loop, &k->work, store_work, store_done) != 0) {
        free(k->buf);
        k->buf = NULL;
        k->busy = k->storing = false;
    }
}

static void on_wait(uv_timer_t *t)
{
    store_when_segment_exists(t->data);
}

static void collect_unmark(const pending_entry_t *e, void *ctx)
{
    compact_t *k = ctx;
    checkpoint_unmark_t *u = &k->unmark[k->nunmark++];
    memcpy(u->key, e->key, sizeof(u->key));
    u->seq = e->seq;
}

/* The tallies hold exactly the records below the new segment's first
 * position: build the image now, leaving out the de-duplication marks of
 * the submissions journaled after it and not yet applied. */
static void on_applied(void *ctx)
{
    compact_t *k = ctx;
    k->nunmark = 0;
    size_t need = ingest_pending_count(k->c.ingest);
    if (need > 0 && vec_reserve(&k->unmark, &k->unmark_cap, need, sizeof(*k->unmark)) != 0) {
        log_error(k->c.log, "checkpoint postponed: out of memory");
        k->busy = false;
        return;
    }
    ingest_pending_foreach(k->c.ingest, collect_unmark, k);
    checkpoint_meta_t meta = {.created_ms = clock_now_ms(k->c.clock),
                              .journal_gen = k->ckpt_gen,
                              .next_pos = k->c.covered_pos,
                              .publish_seq = publish_seq(k->c.publish)};
    int rc =
        checkpoint_build_except(&meta, k->c.towns, k->c.metrics, k->c.engine, k->c.dedup, k->unmark,
                                k->nunmark, &k->buf, &k->len, k->err, sizeof(k->err));
    if (rc != 0) {
        log_error(k->c.log, "cannot build a checkpoint: %s", k->err);
        k->busy = false;
        return;
    }
    store_when_segment_exists(k);
}

/* Rotate the journal; once the tallies hold exactly the records below the
 * new segment, build the image on the loop (on_applied), and write it off
 * the loop once the new segment exists. */
static void take_checkpoint(compact_t *k)
{
    uint64_t start = 0;
    int rc = journal_rotate(k->c.journal, k->c.journal_gen + 1, &start);
    if (rc == TALLY_EAGAIN)
        return; /* the previous rotation is still queued; next tick */
    if (rc != 0) {
        log_limited(k->c.log, clock_mono_ms(), LOG_LEVEL_WARNING,
                    "checkpoint postponed: cannot rotate the journal: %s", tally_strerror(rc));
        return;
    }
    k->c.journal_gen++;
    k->c.covered_pos = start;
    k->ckpt_gen = k->c.journal_gen;
    k->ckpt_mono_ms = clock_mono_ms();
    k->busy = true;
    ingest_at_applied(k->c.ingest, start - 1, on_applied, k);
}

/* Records appended since the last checkpoint. */
static uint64_t uncovered(const compact_t *k)
{
    uint64_t next = ingest_last_pos(k->c.ingest) + 1;
    return next > k->c.covered_pos ? next - k->c.covered_pos : 0;
}

static void on_timer(uv_timer_t *t)
{
    compact_t *k = t->data;
    if (k->busy)
        return;
    /* Segments a checkpoint covered but hold_pos still needed then: gone
     * once the part holding them back has caught up (a few unlinks). */
    if (k->deferred_keep > 0 && held_back(k) >= k->deferred_pos) {
        unsigned removed = 0;
        journal_remove_before(k->c.dir, k->deferred_keep, &removed);
        if (removed > 0)
            log_info(k->c.log, "%u old journal segments removed", removed);
        k->deferred_keep = 0;
    }
    if (k->c.checkpoint_now) {
        k->c.checkpoint_now = false;
        take_checkpoint(k);
        return;
    }
    uint64_t records = uncovered(k);
    if (records == 0)
        return;
    if ((int64_t)records < k->c.every_records &&
        clock_mono_ms() - k->ckpt_mono_ms < k->c.interval_ms)
        return;
    take_checkpoint(k);
}

int compact_init(compact_t *k, const compact_config_t *c)
{
    k->c = *c;
    if (k->c.covered_pos == 0)
        k->c.covered_pos = 1;
    k->busy = k->storing = false;
    k->final_gen = 0;
    k->buf = NULL;
    k->unmark = NULL;
    k->nunmark = k->unmark_cap = 0;
    k->on_closed = NULL;
    k->ckpt_mono_ms = clock_mono_ms();
    uv_timer_init(c->loop, &k->timer);
    uv_timer_init(c->loop, &k->wait);
    k->timer.data = k->wait.data = k;
    k->open_handles = 2;
    uv_timer_start(&k->timer, on_timer, 1000, 1000);
    return 0;
}

void compact_set_policy(compact_t *k, int64_t interval_ms, int64_t every_records)
{
    k->c.interval_ms = interval_ms;
    k->c.every_records = every_records;
}

void compact_final_begin(compact_t *k)
{
    k->final_gen = 0;
    /* checkpoint_now still pending: a loss accepted at start-up must be
     * put behind a checkpoint even if nothing came since. */
    if (k->busy || (uncovered(k) == 0 && !k->c.checkpoint_now))
        return;
    int rc = journal_rotate(k->c.journal, k->c.journal_gen + 1, NULL);
    if (rc == 0)
        k->c.journal_gen++;
    else if (rc != TALLY_EAGAIN)
        return; /* no segment for it to name: the journal keeps everything */
    /* TALLY_EAGAIN: a rotation to journal_gen is queued already; the
     * journal creates that segment while it closes. */
    k->final_gen = k->c.journal_gen;
}

void compact_final(compact_t *k)
{
    if (k->final_gen == 0)
        return;
    journal_stats_t st;
    journal_stats(k->c.journal, &st);
    if (st.segment_gen < k->final_gen) {
        log_error(k->c.log, "final checkpoint skipped: the journal could not start its segment; "
                            "the journal keeps everything");
        return;
    }
    checkpoint_meta_t meta = {.created_ms = clock_now_ms(k->c.clock),
                              .journal_gen = k->final_gen,
                              .next_pos = ingest_last_pos(k->c.ingest) + 1,
                              .publish_seq = publish_seq(k->c.publish)};
    uint64_t keep = 0;
    int rc = checkpoint_write(k->c.dir, &meta, k->c.towns, k->c.metrics, k->c.engine, k->c.dedup,
                              &keep, k->err, sizeof(k->err));
    if (rc != 0) {
        log_error(k->c.log, "final checkpoint failed: %s; the journal keeps everything", k->err);
        return;
    }
    unsigned removed = 0;
    if (keep > 0 && keep < meta.journal_gen && held_back(k) >= meta.next_pos) /* store_work() */
        journal_remove_before(k->c.dir, keep, &removed);
    k->c.covered_pos = meta.next_pos;
    log_notice(k->c.log, "final checkpoint written; %u old journal segments removed", removed);
}

static void on_handle_closed(uv_handle_t *h)
{
    compact_t *k = h->data;
    k->open_handles--;
    maybe_closed(k);
}

void compact_close(compact_t *k, void (*cb)(compact_t *k))
{
    k->on_closed = cb;
    /* An image still waiting for its segment (or for the tallies to reach
     * its position) is dropped: the journal keeps everything it would have
     * covered. */
    if (k->busy && !k->storing) {
        ingest_at_applied(k->c.ingest, UINT64_MAX, NULL, NULL);
        free(k->buf);
        k->buf = NULL;
        k->busy = false;
    }
    free(k->unmark);
    k->unmark = NULL;
    k->unmark_cap = 0;
    uv_close((uv_handle_t *)&k->timer, on_handle_closed);
    uv_close((uv_handle_t *)&k->wait, on_handle_closed);
}
