/* compact.h - journal compaction: checkpoints of the whole state taken
 * while the daemon runs, after which the journal segments they cover are
 * removed, and one last checkpoint at a clean stop.
 *
 * A checkpoint is taken when snapshot_every_records records were appended
 * since the last one, or snapshot_interval has passed with at least one.
 * The journal is rotated, and once the tallies hold exactly the records
 * below the new segment, the daemon forks: the child process sees that
 * state copy-on-write, builds the image and hands it back in a memory file
 * (memfd), while the loop goes on serving; a libuv work thread then
 * writes it.  The loop pauses only for the fork itself (page tables,
 * ~8 ms per GB of state), not for the build.  Where fork() fails the image
 * is built on the loop, as before.  Compaction reads the state it is
 * handed and never changes it.
 */
#ifndef TALLYD_COMPACT_H
#define TALLYD_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "checkpoint.h"
#include "clock.h"
#include "dedup.h"
#include "engine.h"
#include "ingest.h"
#include "intern.h"
#include "journal.h"
#include "log.h"
#include "publish.h"

typedef struct compact_config {
    uv_loop_t *loop;
    const char *dir;    /* the state directory; borrowed */
    journal_t *journal; /* rotated before each checkpoint */
    const intern_t *towns;
    const intern_t *metrics;
    const engine_t *engine;
    const dedup_t *dedup;
    ingest_t *ingest;         /* the last position appended; when it is applied */
    const publish_t *publish; /* the sequence number saved */
    logger_t *log;
    const tclock_t *clock;
    int64_t interval_ms;   /* snapshot_interval */
    int64_t every_records; /* snapshot_every_records */
    uint64_t journal_gen;  /* the segment being appended to (from recovery) */
    uint64_t covered_pos;  /* first position no checkpoint covers (from recovery) */
    bool checkpoint_now;   /* take one at the first tick, whatever the policy */
    /* Optional: the first journal position another part still needs the
     * records of (history: the first one its database does not hold).
     * Old segments are removed only once it has reached the checkpoint's
     * position, so that part can always be rebuilt from the journal. */
    uint64_t (*hold_pos)(void *ctx);
    void *hold_ctx;
    bool fork;            /* build images in a child process (else on the loop) */
    int child_delay_ms;   /* tests: the child waits this long before building */
    int64_t child_max_ms; /* a child not done by then is killed (0: 10 minutes) */
} compact_config_t;

/* The part; embed it, its fields are private. */
typedef struct compact {
    compact_config_t c;
    uv_timer_t timer;
    uv_timer_t wait;        /* the image waits for its segment to exist */
    uv_timer_t child_timer; /* polls for the end of the child building the image */
    uv_work_t work;
    bool busy;          /* a checkpoint is being built, waits or is stored */
    bool storing;       /* the work request is queued */
    uint64_t final_gen; /* the segment the final checkpoint names (0: none due) */
    int open_handles;
    uint64_t ckpt_gen;    /* journal generation the last checkpoint starts */
    int64_t ckpt_mono_ms; /* when it was taken */
    void *buf;            /* the image being stored */
    size_t len;
    bool mapped;               /* buf is the child's memory file, mapped */
    int child;                 /* pid of the child building the image, or 0 */
    int child_rfd;             /* its result pipe, or -1 */
    int memfd;                 /* its memory file, or -1 */
    int64_t fork_us;           /* how long the last fork() held the loop */
    uint64_t build_us;         /* how long the last child took to build its image */
    int64_t child_mono_ms;     /* when the child was forked */
    uint64_t prev_covered_pos; /* covered_pos before the checkpoint under way */
    int rc;
    unsigned removed;
    bool may_remove;             /* hold_pos allows removing segments below the checkpoint */
    uint64_t deferred_keep;      /* segments below it are to go once hold_pos reaches */
    uint64_t deferred_pos;       /* ... this position (deferred_keep 0: nothing deferred) */
    checkpoint_unmark_t *unmark; /* marks to leave out of the image */
    size_t nunmark, unmark_cap;
    char err[512];
    /* After the child: the engine's blocks, made writable again a slice
     * at a time (memhint_unshare()) */
    uv_timer_t rewarm_timer;
    bool rewarming; /* a sweep is under way */
    struct compact_region {
        void *p;
        size_t len;
    } * regions;
    size_t nregions, regions_cap;
    size_t rewarm_at;       /* the region the sweep is in */
    size_t rewarm_off;      /* and how far into it */
    uint64_t rewarm_us;     /* the loop's time the sweep has taken */
    int64_t rewarm_mono_ms; /* when it began */
    bool rewarm_refused;    /* the kernel or a filter refused: no more sweeps */
    void (*on_closed)(struct compact *k);
} compact_t;

/* Start checking, every second, whether a checkpoint is due.  Returns 0. */
int compact_init(compact_t *k, const compact_config_t *c);

/* Take checkpoints by these rules from now on (a reload). */
void compact_set_policy(compact_t *k, int64_t interval_ms, int64_t every_records);

/* Take a checkpoint at the next tick (within a second), whatever the
 * policy: the state as it is now must be what a start checks against. */
void compact_request(compact_t *k);

/* At a clean stop, before the journal is closed: when a last checkpoint
 * is due, start the segment it will name (journal_rotate), which the
 * journal creates while it closes.  A checkpoint is stored only once the
 * segment it names exists, so that recovery can tell a missing segment
 * from one never written. */
void compact_final_begin(compact_t *k);

/* At a clean stop, with the journal closed and every ACK sent: write the
 * last checkpoint (blocking), so the next start loads it instead of
 * replaying the journal.  Logs the outcome. */
void compact_final(compact_t *k);

/* Stop the timer; cb (may be NULL) runs on the loop once it is closed and
 * no checkpoint is being stored, after which k may be freed. */
void compact_close(compact_t *k, void (*cb)(compact_t *k));

#endif
