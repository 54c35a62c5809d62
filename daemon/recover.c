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
    res->ckpt_version = meta.version;
    log_notice(st->log,
               "loaded the checkpoint holding the journal to position %" PRIu64
               ": %u series, %u clients in %" PRId64 " ms",
               meta.next_pos - 1, engine_series_count(st->engine), dedup_count(st->dedup),
               clock_mono_ms() - t0);
    return 0;
}

typedef struct replay_ctx {
    const recover_state_t *st;
    uint64_t below; /* history pass: records below it only (0: the engine's pass) */
    char why[768];
} replay_ctx_t;

static int on_record(const journal_record_t *r, void *ctx)
{
    replay_ctx_t *c = ctx;
    char why[600];
    if (c->below > 0 && r->pos >= c->below)
        return 0; /* the second pass applies it */
    int rc =
        ingest_replay_at(c->st->ingest, r->pos, c->below > 0, r->payload, r->len, why, sizeof(why));
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

/* What is missing between the checkpoint and the end of the journal,
 * described in why[0..len); returns how many positions (UINT64_MAX when
 * a missing file hides how many). */
static uint64_t describe_missing(const recover_state_t *st, const recover_result_t *res,
                                 const journal_replay_report_t *rep, char *why, size_t len)
{
    uint64_t lost = 0;
    size_t n = 0;
    why[0] = '\0';
    uint64_t expect = res->checkpoint ? res->ckpt_pos : 1;
    if (res->checkpoint && (rep->segments == 0 || rep->first_gen != res->ckpt_gen) &&
        (res->ckpt_version >= 2 || rep->segments > 0)) {
        /* A version 1 checkpoint (an older tallyd's last one at a clean
         * stop) may name a segment that was never created; a later one is
         * stored only once its segment exists. */
        char seg[JOURNAL_NAME_MAX], ckp[CHECKPOINT_NAME_MAX];
        journal_segment_name(seg, res->ckpt_gen);
        checkpoint_file_name(ckp, res->ckpt_gen);
        n += (size_t)snprintf(why + n, len - n,
                              "%s/%s, where the journal after checkpoint %s (position %" PRIu64
                              ") continues, is missing",
                              st->dir, seg, ckp, res->ckpt_pos);
        lost = UINT64_MAX;
    }
    if (rep->segments > 0 && rep->first_start_pos > expect && n < len) {
        char seg[JOURNAL_NAME_MAX];
        journal_segment_name(seg, rep->first_gen);
        n += (size_t)snprintf(why + n, len - n,
                              "%spositions %" PRIu64 "..%" PRIu64
                              " are missing: the journal begins at %s, position %" PRIu64,
                              n ? "; " : "", expect, rep->first_start_pos - 1, seg,
                              rep->first_start_pos);
        if (lost != UINT64_MAX)
            lost += rep->first_start_pos - expect;
    }
    if (rep->gap_positions > 0 && n < len) {
        snprintf(why + n, len - n,
                 "%s%" PRIu64 " positions are missing between segments, the first %" PRIu64
                 "..%" PRIu64 " before %s (a segment deleted?)",
                 n ? "; " : "", rep->gap_positions, rep->gap_first_from, rep->gap_first_to,
                 rep->gap_segment);
        if (lost != UINT64_MAX)
            lost += rep->gap_positions;
    }
    return lost;
}

/* Refuse to go on when the journal does not continue the checkpoint
 * (recover_replay), unless the operator accepted the loss.  Returns 0 or
 * TALLY_EIO (logged). */
static int check_continuity(const recover_state_t *st, recover_result_t *res,
                            const journal_replay_report_t *rep)
{
    if (rep->damaged_positions > 0)
        log_error(st->log,
                  "%" PRIu64 " journal records in damaged regions are lost (see the lines above)",
                  rep->damaged_positions);
    char why[1400];
    uint64_t lost = describe_missing(st, res, rep, why, sizeof(why));
    if (why[0] == '\0')
        return 0;
    char count[64];
    if (lost == UINT64_MAX)
        snprintf(count, sizeof(count), "an unknown number of");
    else
        snprintf(count, sizeof(count), "%" PRIu64, lost);
    if (st->accept_loss) {
        log_warning(st->log,
                    "starting with %s acknowledged journal records lost, as --accept-loss asks: "
                    "%s",
                    count, why);
        res->loss_accepted = true;
        return 0;
    }
    log_error(st->log,
              "refusing to start with %s acknowledged journal records missing: %s; restore the "
              "state directory from a backup, or start tallyd once with --accept-loss to go on "
              "without them",
              count, why);
    return TALLY_EIO;
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
    if (check_continuity(st, res, &rep) != 0)
        return TALLY_EIO;
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

int recover_history(const recover_state_t *st, const recover_result_t *res)
{
    uint64_t upto = res->checkpoint ? res->ckpt_pos : 0;
    if (st->history_from == 0 || st->history_from >= upto)
        return 0; /* the engine's replay brings the history along */
    replay_ctx_t c = {.st = st, .below = upto};
    journal_replay_opts_t ro = {
        .from_gen = 0,
        .from_pos = st->history_from,
        .on_record_at = on_record,
        .ctx = &c,
    };
    journal_replay_report_t rep;
    int64_t t0 = clock_mono_ms();
    int rc = journal_replay(st->dir, &ro, &rep);
    if (rc != 0 && c.why[0]) {
        log_error(st->log, "cannot rebuild the history: the journal record at %s", c.why);
        return rc;
    }
    if (rc != 0) {
        log_error(st->log, "cannot rebuild the history from the journal of %s: %s", st->dir,
                  rep.error);
        return rc;
    }
    uint64_t first = rep.segments > 0 ? rep.first_start_pos : upto;
    if (first > st->history_from)
        log_warning(st->log,
                    "history: journal positions %" PRIu64 "..%" PRIu64
                    " are no longer in the journal; their figures count in the tallies (the "
                    "checkpoint holds them) but not in the closed periods of the history",
                    st->history_from, (first < upto ? first : upto) - 1);
    log_notice(st->log,
               "history: brought up to the checkpoint from journal positions %" PRIu64 "..%" PRIu64
               " in %" PRId64 " ms",
               first > st->history_from ? first : st->history_from, upto - 1, clock_mono_ms() - t0);
    return 0;
}
