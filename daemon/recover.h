/* recover.h - start-up recovery: the newest usable checkpoint, then the
 * journal written after it, so every submission acknowledged before a
 * crash counts again, exactly once.
 *
 * A torn journal tail is cut off and logged with its offset; damage in the
 * middle is logged and skipped without dropping what follows.  A record
 * that cannot be applied stops the start with the segment file, the offset
 * and what was wrong: starting without it would lose figures silently.
 *
 * Recovery fills the state it is handed (name tables, engine,
 * de-duplication table) and replays records through ingest_replay(); it
 * opens nothing that outlives it.
 */
#ifndef TALLYD_RECOVER_H
#define TALLYD_RECOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "dedup.h"
#include "engine.h"
#include "ingest.h"
#include "intern.h"
#include "log.h"

typedef struct recover_state {
    const char *dir; /* the state directory */
    intern_t *towns; /* empty, as are metrics, engine and dedup */
    intern_t *metrics;
    engine_t *engine;
    dedup_t *dedup;
    ingest_t *ingest; /* replays journal records into the above */
    logger_t *log;
    bool accept_loss; /* start even with journal records missing (logged) */
    /* The first journal position the history database lacks (0: no
     * history).  Records from there up to the checkpoint are replayed to
     * ingest's on_applied only, to bring the history up to date. */
    uint64_t history_from;
} recover_state_t;

/* Where the recovered state stands. */
typedef struct recover_result {
    bool checkpoint;       /* a checkpoint was loaded */
    uint64_t ckpt_gen;     /* its journal generation (0 without one) */
    uint64_t ckpt_pos;     /* the first position it does not cover (0 without one) */
    uint64_t publish_seq;  /* the publisher's sequence number it saved */
    uint32_t ckpt_version; /* its format version */
    bool loss_accepted;    /* records were missing and st->accept_loss let the start go on */
    uint64_t journal_gen;  /* the segment to append to */
    uint64_t next_pos;     /* the position the next record gets */
} recover_result_t;

/* Load the newest usable checkpoint of st->dir into the empty state
 * (before the catalog is declared on top of it).  Fills res (zeroed when
 * there is none).  Returns 0 (also when there is none), TALLY_ECONFIG when
 * the state cannot be used with this configuration or build (windows
 * changed, newer format), or TALLY_EIO when it cannot be read (damaged
 * with no fallback: tallyd must not start empty then, or it would lose
 * data).  Logs what it found. */
int recover_load(const recover_state_t *st, recover_result_t *res);

/* Replay the journal of st->dir from where the checkpoint in res ends, and
 * set res->journal_gen and res->next_pos for appending.
 *
 * The journal must continue the checkpoint without a gap: the segment the
 * checkpoint names must exist (a checkpoint is stored only once it does),
 * the first segment must begin at the checkpoint's position (at 1 without
 * one), and no positions may be missing between segments.  Records lost in
 * a damaged region are logged with their count; anything else missing
 * stops the start, naming the positions and files, unless st->accept_loss
 * is set: then it is logged with the count, res->loss_accepted is set, and
 * the caller should write a checkpoint at once so that the next start does
 * not meet the gap again.
 *
 * Returns 0, or a negative code after logging why tallyd cannot start: a
 * segment that cannot be read or has a newer format (TALLY_EIO,
 * TALLY_ECONFIG), a record that cannot be applied (its code; the log names
 * the segment file, the offset and the reason), or records missing
 * (TALLY_EIO). */
int recover_replay(const recover_state_t *st, recover_result_t *res);

/* Before recover_replay(): replay the records from st->history_from up to
 * the checkpoint's position to the history only (ingest_replay_at with
 * only_hook).  Records no longer in the journal are logged as what the
 * history could not rebuild.  Returns 0, or the code of a record that
 * could not be handed over (logged). */
int recover_history(const recover_state_t *st, const recover_result_t *res);

#endif
