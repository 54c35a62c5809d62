/* recover.c - the checkpoint and the journal replayed at start-up (see
 * recover.h). */
#include "recover.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "clock.h"
#include "journal.h"

int recover_load(const recover_state_t *st, recover_result_t *res)
{
    memset(res, 0, sizeof(*res));
    checkpoint_meta_t meta = {0};
    char err[1024] = "";
    int64_t t0 = clock_mono_ms();
    int rc = checkpoint_load_latest(st->dir, &meta, st->towns, st->metrics, st->engine, st->dedup,
                                    err, sizeof(err));
    if (rc == TALLY_ENOTFOUND) {
        if (err[0])
            log_info(st->log, "%s", err);
        return 0;
    }
    if (rc == TALLY_EIO && intern_count(st->towns) == 0 && intern_count(st->metrics) == 0 &&
        engine_series_count(st->engine) == 0 && dedup_count(st->dedup) == 0) {
        /* Every checkpoint is damaged (and set aside).  The journal may
         * still hold everything: recover_replay() replays it and refuses
         * to go on if it does not begin at position 1. */
        log_error(st->log, "%s; recovering from the journal alone", err);
        return 0;
    }
    if (rc != 0) {
        log_error(st->log, "cannot load the state in %s: %s", st->dir,
                  err[0] ? err : tally_strerror(rc));
        return rc == TALLY_ECONFIG ? TALLY_ECONFIG : TALLY_EIO;
    }
    if (err[0])
        log_warning(st->log, "%s", err);
    res->checkpoint = true;
    res->ckpt_gen = res->journal_gen = meta.journal_gen;
    res->ckpt_pos = meta.next_pos;
    res->publish_seq = meta.publish_seq;
    log_notice(st->log,
               "loaded the checkpoint of journal position %" PRIu64
               ": %u series, %u clients in %" PRId64 " ms",
               meta.next_pos, engine_series_count(st->engine), dedup_count(st->dedup),
               clock_mono_ms() - t0);
    return 0;
}

typedef struct replay_ctx {
    const recover_state_t *st;
    char why[768];
} replay_ctx_t;

static int on_record(const journal_record_t *r, void *ctx)
{
    replay_ctx_t *c = ctx;
    char why[600];
    int rc = ingest_replay(c->st->ingest, r->payload, r->len, why, sizeof(why));
    if (rc != 0)
        snprintf(c->why, sizeof(c->why),
                 "%s/%s, offset %" PRIu64 " (journal position %" PRIu64 "): %s", c->st->dir,
                 r->segment, r->offset, r->pos, why);
    return rc;
}

static void on_note(const char *line, void *ctx)
{
    replay_ctx_t *c = ctx;
    log_warning(c->st->log, "%s", line);
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a > b ? a : b;
    return m > c ? m : c;
}

int recover_replay(const recover_state_t *st, recover_result_t *res)
{
    replay_ctx_t c = {.st = st};
    journal_replay_opts_t ro = {
        .from_gen = res->journal_gen,
        .from_pos = res->ckpt_pos,
        .on_record_at = on_record,
        .on_note = on_note,
        .ctx = &c,
    };
    journal_replay_report_t rep;
    int64_t t0 = clock_mono_ms();
    int rc = journal_replay(st->dir, &ro, &rep);
    if (rc != 0 && c.why[0]) {
        log_error(st->log,
                  "cannot recover the state: the journal record at %s; refusing to start without "
                  "it",
                  c.why);
        return rc;
    }
    if (rc != 0) {
        log_error(st->log, "cannot recover the state in %s: %s", st->dir, rep.error);
        return rc;
    }
    /* Without a checkpoint the journal must begin at position 1: if it
     * begins later, the checkpoint that covered the positions before it is
     * gone (damaged, deleted), and starting would silently drop figures
     * and forget which were applied. */
    if (res->ckpt_pos == 0 && rep.records > 0 && rep.corrupt_regions == 0 &&
        rep.next_pos - 1 > rep.records) {
        log_error(st->log,
                  "the journal in %s holds positions up to %" PRIu64 " but only %" PRIu64
                  " records and no checkpoint covers the rest (damaged or deleted; see "
                  "state-*.ckp.damaged); refusing to start with figures missing: restore the "
                  "state directory from a backup",
                  st->dir, rep.next_pos - 1, rep.records);
        return TALLY_EIO;
    }
    int64_t ms = clock_mono_ms() - t0;
    if (rep.segments > 0)
        log_notice(st->log,
                   "recovered %" PRIu64 " journal records from %u segments in %" PRId64 " ms%s%s",
                   rep.records, rep.segments, ms, rep.torn_tail ? "; cut a torn tail" : "",
                   rep.corrupt_regions ? "; skipped damaged regions (see above)" : "");
    res->journal_gen = max3(rep.last_gen, res->journal_gen, 1);
    res->next_pos = max3(rep.next_pos, res->ckpt_pos, 1);
    return 0;
}
