/* recover.c - journal replay at start-up, and the journal's callbacks. */
#include "recover.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "checkpoint.h"
#include "ingest.h"
#include "tallyd.h"

static void on_durable(journal_t *j, uint64_t upto, void *ctx)
{
    (void)j;
    ingest_on_durable(ctx, upto);
}

static void on_error(journal_t *j, int code, const char *what, void *ctx)
{
    (void)j;
    (void)code;
    tallyd_t *d = ctx;
    /* Once per episode: submissions are refused as retryable meanwhile,
     * reads and subscribers are served as usual. */
    log_error(&d->log, "journal write failed: %s; refusing submissions (retryable) until it works",
              what);
}

static void on_recovered(journal_t *j, void *ctx)
{
    (void)j;
    tallyd_t *d = ctx;
    log_notice(&d->log, "journal writes work again; accepting submissions");
}

static int on_record(const void *payload, size_t len, uint64_t pos, void *ctx)
{
    tallyd_t *d = ctx;
    ingest_replay(d, payload, len, pos);
    return 0;
}

static void on_note(const char *line, void *ctx)
{
    tallyd_t *d = ctx;
    log_warning(&d->log, "%s", line);
}

int recover_load(tallyd_t *d)
{
    checkpoint_meta_t meta = {0};
    char err[1024] = "";
    int64_t t0 = clock_mono_ms();
    int rc = checkpoint_load_latest(d->cfg.state_dir, &meta, &d->towns, &d->metrics, &d->engine,
                                    &d->dedup, err, sizeof(err));
    if (rc == TALLY_ENOTFOUND) {
        if (err[0])
            log_info(&d->log, "%s", err);
        return 0;
    }
    if (rc == TALLY_EIO && intern_count(&d->towns) == 0 && intern_count(&d->metrics) == 0 &&
        engine_series_count(&d->engine) == 0 && dedup_count(&d->dedup) == 0) {
        /* Every checkpoint is damaged (and set aside).  The journal may
         * still hold everything: recover_start() replays it and refuses
         * to go on if it does not begin at position 1. */
        log_error(&d->log, "%s; recovering from the journal alone", err);
        return 0;
    }
    if (rc != 0) {
        log_error(&d->log, "cannot load the state in %s: %s", d->cfg.state_dir,
                  err[0] ? err : tally_strerror(rc));
        return rc == TALLY_ECONFIG ? 2 : 1;
    }
    if (err[0])
        log_warning(&d->log, "%s", err);
    d->journal_gen = meta.journal_gen;
    d->ckpt_pos = meta.next_pos;
    d->publish.seq = meta.publish_seq;
    log_notice(&d->log,
               "loaded the checkpoint of journal position %" PRIu64
               ": %u series, %u clients in %" PRId64 " ms",
               meta.next_pos, engine_series_count(&d->engine), dedup_count(&d->dedup),
               clock_mono_ms() - t0);
    return 0;
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a > b ? a : b;
    return m > c ? m : c;
}

int recover_start(tallyd_t *d)
{
    journal_replay_opts_t ro = {
        .from_gen = d->journal_gen,
        .from_pos = d->ckpt_pos,
        .on_record = on_record,
        .on_note = on_note,
        .ctx = d,
    };
    journal_replay_report_t rep;
    int64_t t0 = clock_mono_ms();
    int rc = journal_replay(d->cfg.state_dir, &ro, &rep);
    if (rc != 0) {
        log_error(&d->log, "cannot recover the state in %s: %s", d->cfg.state_dir, rep.error);
        return rc;
    }
    /* Without a checkpoint the journal must begin at position 1: if it
     * begins later, the checkpoint that covered the positions before it is
     * gone (damaged, deleted), and starting would silently drop figures
     * and forget which were applied. */
    if (d->ckpt_pos == 0 && rep.records > 0 && rep.corrupt_regions == 0 &&
        rep.next_pos - 1 > rep.records) {
        log_error(&d->log,
                  "the journal in %s holds positions up to %" PRIu64 " but only %" PRIu64
                  " records and no checkpoint covers the rest (damaged or deleted; see "
                  "state-*.ckp.damaged); refusing to start with figures missing: restore the "
                  "state directory from a backup",
                  d->cfg.state_dir, rep.next_pos - 1, rep.records);
        return TALLY_EIO;
    }
    int64_t ms = clock_mono_ms() - t0;
    if (rep.segments > 0)
        log_notice(&d->log,
                   "recovered %" PRIu64 " journal records from %u segments in %" PRId64 " ms%s%s",
                   rep.records, rep.segments, ms, rep.torn_tail ? "; cut a torn tail" : "",
                   rep.corrupt_regions ? "; skipped damaged regions (see above)" : "");
    d->journal_gen = max3(rep.last_gen, d->journal_gen, 1);
    uint64_t next = max3(rep.next_pos, d->ckpt_pos, 1);
    /* Everything replayed is on disk already. */
    d->durable_pos = d->last_pos = next - 1;
    if (d->ckpt_pos == 0)
        d->ckpt_pos = 1;
    d->ckpt_mono_ms = clock_mono_ms();

    static const int policies[] = {
        [CONFIG_SYNC_ALWAYS] = JOURNAL_SYNC_ALWAYS,
        [CONFIG_SYNC_INTERVAL] = JOURNAL_SYNC_INTERVAL,
        [CONFIG_SYNC_NEVER] = JOURNAL_SYNC_NEVER,
    };
    journal_opts_t jo = {
        .sync = policies[d->cfg.sync],
        .interval_ms = (uint32_t)d->cfg.sync_interval_ms,
        .on_durable = on_durable,
        .on_error = on_error,
        .on_recovered = on_recovered,
        .ctx = d,
    };
    rc = journal_open(&d->journal, d->loop, d->cfg.state_dir, &jo, d->journal_gen, next);
    if (rc != 0) {
        log_error(&d->log, "cannot open the journal: %s", journal_errmsg(&d->journal));
        return rc;
    }
    d->journal_open = true;
    d->open_handles++;
    return 0;
}

/* ---- checkpoints ---- */

static void store_work(uv_work_t *w)
{
    tallyd_t *d = w->data;
    uint64_t keep = 0;
    d->ckpt_removed = 0;
    d->ckpt_rc = checkpoint_store(d->cfg.state_dir, d->ckpt_buf, d->ckpt_len, &keep, d->ckpt_err,
                                  sizeof(d->ckpt_err));
    /* Only segments older than the oldest checkpoint kept may go, and only
     * when an older one is kept at all: if the newest is found damaged
     * later, the one before it plus the journal still hold everything, and
     * with a single checkpoint the whole journal does. */
    if (d->ckpt_rc == 0 && keep > 0 && keep < d->ckpt_gen)
        journal_remove_before(d->cfg.state_dir, keep, &d->ckpt_removed);
}

static void store_done(uv_work_t *w, int status)
{
    tallyd_t *d = w->data;
    free(d->ckpt_buf);
    d->ckpt_buf = NULL;
    d->ckpt_busy = false;
    if (status != 0 || d->ckpt_rc != 0) {
        log_error(&d->log, "checkpoint failed: %s; the journal keeps everything meanwhile",
                  d->ckpt_rc ? d->ckpt_err : uv_strerror(status));
        return;
    }
    log_info(&d->log, "checkpoint written (%zu bytes, %u series); %u old journal segments removed",
             d->ckpt_len, engine_series_count(&d->engine), d->ckpt_removed);
}

/* Rotate the journal and build the image on the loop: the state then
 * reflects exactly the records below the new segment's first position.
 * The file is written off the loop. */
static void take_checkpoint(tallyd_t *d)
{
    uint64_t start = 0;
    int rc = journal_rotate(&d->journal, d->journal_gen + 1, &start);
    if (rc == TALLY_EAGAIN)
        return; /* the previous rotation is still queued; next tick */
    if (rc != 0) {
        log_limited(&d->log, clock_mono_ms(), LOG_LEVEL_WARNING,
                    "checkpoint postponed: cannot rotate the journal: %s", tally_strerror(rc));
        return;
    }
    d->journal_gen++;
    checkpoint_meta_t meta = {clock_now_ms(d->clock), d->journal_gen, start, d->publish.seq};
    rc = checkpoint_build(&meta, &d->towns, &d->metrics, &d->engine, &d->dedup, &d->ckpt_buf,
                          &d->ckpt_len, d->ckpt_err, sizeof(d->ckpt_err));
    if (rc != 0) {
        log_error(&d->log, "cannot build a checkpoint: %s", d->ckpt_err);
        return;
    }
    d->ckpt_pos = start;
    d->ckpt_gen = d->journal_gen;
    d->ckpt_mono_ms = clock_mono_ms();
    d->ckpt_busy = true;
    d->ckpt_work.data = d;
    if (uv_queue_work(d->loop, &d->ckpt_work, store_work, store_done) != 0) {
        free(d->ckpt_buf);
        d->ckpt_buf = NULL;
        d->ckpt_busy = false;
    }
}

static void on_ckpt_timer(uv_timer_t *t)
{
    tallyd_t *d = t->data;
    if (d->ckpt_busy || d->stopping || !d->journal_open)
        return;
    uint64_t records = d->last_pos + 1 > d->ckpt_pos ? d->last_pos + 1 - d->ckpt_pos : 0;
    if (records == 0)
        return;
    if ((int64_t)records < d->cfg.snapshot_every_records &&
        clock_mono_ms() - d->ckpt_mono_ms < d->cfg.snapshot_interval_ms)
        return;
    take_checkpoint(d);
}

static void on_timer_closed(uv_handle_t *h)
{
    tallyd_t *d = h->data;
    d->open_handles--;
}

void recover_start_checkpoints(tallyd_t *d)
{
    uv_timer_init(d->loop, &d->ckpt_timer);
    d->ckpt_timer.data = d;
    d->open_handles++;
    uv_timer_start(&d->ckpt_timer, on_ckpt_timer, 1000, 1000);
}

/* At a clean stop, with the journal closed: one last checkpoint, so the
 * next start loads it instead of replaying the journal. */
static void final_checkpoint(tallyd_t *d)
{
    if (d->ckpt_busy || d->last_pos + 1 <= d->ckpt_pos)
        return;
    checkpoint_meta_t meta = {clock_now_ms(d->clock), d->journal_gen + 1, d->last_pos + 1,
                              d->publish.seq};
    uint64_t keep = 0;
    int rc = checkpoint_write(d->cfg.state_dir, &meta, &d->towns, &d->metrics, &d->engine,
                              &d->dedup, &keep, d->ckpt_err, sizeof(d->ckpt_err));
    if (rc != 0) {
        log_error(&d->log, "final checkpoint failed: %s; the journal keeps everything",
                  d->ckpt_err);
        return;
    }
    unsigned removed = 0;
    if (keep > 0 && keep < meta.journal_gen) /* see store_work() */
        journal_remove_before(d->cfg.state_dir, keep, &removed);
    log_notice(&d->log, "final checkpoint written; %u old journal segments removed", removed);
}

static void on_journal_closed(journal_t *j)
{
    tallyd_t *d = (tallyd_t *)((char *)j - offsetof(tallyd_t, journal));
    d->open_handles--;
}

void recover_stop(tallyd_t *d)
{
    if (!d->journal_open)
        return;
    d->journal_open = false;
    if (journal_close(&d->journal, on_journal_closed) != 0)
        log_error(&d->log, "journal: %s; submissions not acknowledged were not stored",
                  journal_errmsg(&d->journal));
    if (ackq_count(&d->acks) > 0)
        log_warning(&d->log, "%u acknowledgements could not be sent", ackq_count(&d->acks));
    else
        final_checkpoint(d);
    if (uv_is_active((uv_handle_t *)&d->ckpt_timer) || d->ckpt_timer.data == d)
        uv_close((uv_handle_t *)&d->ckpt_timer, on_timer_closed);
}
