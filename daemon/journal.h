/* journal.h - the daemon's durable journal (write-ahead log).
 *
 * Every submission tallyd accepts is appended here before it is
 * acknowledged; the acknowledgement is released when the journal reports the
 * record durable.  The payload is an opaque byte string (tallyd stores the
 * SUBMIT body it accepted); the journal never interprets it.
 *
 * Files.  The journal lives in one state directory as segment files named
 * journal-<gen as 16 lower-case hex digits>.tj.  The caller chooses the
 * generation numbers (they only have to grow); journal_rotate() starts a new
 * segment, journal_remove_before() deletes old ones once a checkpoint
 * covers them.  Little-endian layout:
 *
 *   segment header, 48 bytes:
 *     0  "TALLYJNL"          magic
 *     8  u32 version         JOURNAL_FORMAT_VERSION (1)
 *     12 u32 header size     48
 *     16 u64 gen             must match the file name
 *     24 u64 start position  position of the first record of this segment
 *     32 i64 created         Unix time in ms
 *     40 u32 flags           0
 *     44 u32 CRC-32C of bytes 0..43
 *   then records, back to back:
 *     0  u32 magic           JOURNAL_RECORD_MAGIC (bytes C1 7A 4A 52)
 *     4  u32 payload length  at most JOURNAL_MAX_PAYLOAD
 *     8  u32 CRC-32C over the bytes of length, position and payload
 *     12 u64 position
 *     20 payload
 *
 * Every version of the format, present and future, starts with the magic
 * and the version, has the header size at offset 12 and ends its header
 * with a CRC-32C of all the header bytes before it, so a reader tells a
 * damaged header (the CRC does not hold) from an intact one of a newer
 * version (it does, and the version is unknown).
 *
 * A new segment file is written under a temporary name, synced and renamed
 * into place, so a segment either exists with a complete header or not at
 * all.
 *
 * Positions.  Every record gets a position: a record number, strictly
 * increasing, never reused, continuing across segments and restarts.  The
 * position is stored in the record, so replay knows the exact position of
 * every record even after skipping a damaged region.  On start the caller
 * replays the journal and opens it with the position that follows the last
 * one (journal_replay_report_t.next_pos).
 *
 * Threads.  A journal_t belongs to one libuv loop.  Every function except
 * journal_replay() and journal_remove_before() must be called on that
 * loop's thread, and every callback runs on it.  Internally a writer thread
 * does the file I/O that may wait for the disk (syncs, new segments,
 * retries); journal_append() only copies bytes into memory.
 *
 * Group commit.  Appends go into an in-memory buffer.  When the writer
 * thread is idle it takes the whole buffer (a "group"), and the loop keeps
 * appending into a second buffer meanwhile.  An idle writer is woken once
 * per loop iteration, before the loop polls (a uv_prepare handle), so what
 * one iteration appends becomes one group; the loop must run for appended
 * records to be written (journal_close() writes whatever is left).  The writer writes the group
 * with one write() and, under JOURNAL_SYNC_ALWAYS, one fdatasync(); then it
 * wakes the loop (uv_async_send) and on_durable reports the highest
 * position now durable.  Submissions arriving while a sync is in flight are
 * written and synced together in the next group, so the sync rate stays
 * bounded by the disk, not by the submission rate.
 *
 * Inline groups.  Under JOURNAL_SYNC_NEVER and JOURNAL_SYNC_INTERVAL a
 * group is durable once write() returns, which takes microseconds while
 * the data goes to the page cache.  There the loop writes an iteration's
 * group itself, in the same uv_prepare callback, when the writer is idle,
 * the group holds no segment switch and the journal is not failed; then
 * it calls on_durable at once.  That saves the two thread wake-ups of a
 * round trip through the writer (1-sample submissions: 1.14 times the
 * throughput, bench/README.md).  A write that fails hands the group to the writer, which retries
 * it as described under Failure; a write that takes longer than
 * JOURNAL_INLINE_SLOW_MS (the kernel throttling a writer while the disk
 * lags) sends the groups of the next JOURNAL_INLINE_PAUSE_MS to the
 * writer, so that a slow disk delays acknowledgements, not the loop.
 *
 * Sync policies:
 *   JOURNAL_SYNC_ALWAYS    durable = written and fdatasync()ed.  Nothing
 *                          acknowledged is ever lost.
 *   JOURNAL_SYNC_INTERVAL  durable = written (in the page cache); the writer
 *                          fdatasync()s every interval_ms.  Acknowledgements
 *                          may precede the sync: a machine crash or power
 *                          loss may lose up to interval_ms of acknowledged
 *                          records; a crash of tallyd alone loses nothing,
 *                          the data is already in the kernel.
 *   JOURNAL_SYNC_NEVER     durable = written; the journal syncs only on
 *                          journal_rotate() and journal_close().  For tests
 *                          and for data that may be lost on a machine crash.
 *
 * Failure.  When a write or sync fails (disk full, I/O error), the journal
 * enters the failed state: on_error runs once with the cause, appends
 * return TALLY_EUNAVAIL (a retryable code the daemon passes on to clients),
 * and the records of the failed group are not reported durable.  The writer
 * retries every retry_ms: it truncates the segment back to the end of the
 * last successful write and rewrites the group from memory, so the file
 * never holds a record twice.  When that succeeds, on_durable reports the
 * group and on_recovered runs; appends work again.  Records appended before
 * the failure stay queued and are written after the recovery, in order.
 *
 * Under JOURNAL_SYNC_INTERVAL a failed periodic fdatasync() also enters the
 * failed state, but the records written since the last good sync were
 * already acknowledged and their buffers reused: the retry can only sync
 * again.  Linux may by then have dropped the failed pages, so such records
 * must be treated as suspect; on_error says so.
 */
#ifndef TALLYD_JOURNAL_H
#define TALLYD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "tally_error.h"

#define JOURNAL_FORMAT_VERSION  1
#define JOURNAL_RECORD_MAGIC    0x524A7AC1u
#define JOURNAL_HEADER_SIZE     48
#define JOURNAL_RECORD_OVERHEAD 20                    /* bytes before each payload */
#define JOURNAL_MAX_PAYLOAD     (16u * 1024u * 1024u) /* largest payload, 16 MiB */
#define JOURNAL_NAME_MAX        32                    /* "journal-<16 hex>.tj" + NUL */
#define JOURNAL_INLINE_SLOW_MS  5                     /* an inline write slower than this ... */
#define JOURNAL_INLINE_PAUSE_MS 1000 /* ... sends groups to the writer for this long */

enum journal_sync {
    JOURNAL_SYNC_ALWAYS = 0,
    JOURNAL_SYNC_INTERVAL = 1,
    JOURNAL_SYNC_NEVER = 2,
};

typedef struct journal journal_t;

/* I/O hooks, for fault injection in tests.  Both run on the writer thread,
 * write_fn also on the loop's thread for an inline group (see above).
 * write_fn behaves like write(2): it returns the bytes written (possibly
 * fewer than len) or -1 with errno set.  sync_fn behaves like fdatasync(2):
 * 0 or -1 with errno set.  NULL means the real system call.  The journal
 * uses them for every write and sync of segment files (headers included);
 * directory syncs and truncation use the system calls directly. */
typedef struct journal_io {
    ssize_t (*write_fn)(void *ctx, int fd, const void *buf, size_t len);
    int (*sync_fn)(void *ctx, int fd);
    void *ctx;
} journal_io_t;

typedef struct journal_opts {
    int sync;             /* enum journal_sync */
    uint32_t interval_ms; /* JOURNAL_SYNC_INTERVAL period; 0 means 100 */
    uint32_t retry_ms;    /* retry period in the failed state; 0 means 1000 */
    /* Most bytes waiting in the buffer the loop appends to; beyond it
     * journal_append() returns TALLY_EBUSY.  0 means 256 MiB.  The group
     * being written is not counted, so up to twice this may be held.  One
     * record is always accepted into an empty buffer, whatever its size. */
    size_t max_pending;

    /* Runs on the loop thread when records up to and including upto_pos are
     * durable.  upto_pos only grows.  May be NULL. */
    void (*on_durable)(journal_t *j, uint64_t upto_pos, void *ctx);
    /* Runs on the loop thread when the journal enters the failed state;
     * code is TALLY_EIO and what a full sentence naming the file, the
     * operation and strerror(errno) (valid during the call).  Runs once per
     * failure episode, not once per retry.  May be NULL. */
    void (*on_error)(journal_t *j, int code, const char *what, void *ctx);
    /* Runs on the loop thread when a retry succeeded and appends are
     * accepted again (after on_durable reported the recovered records).
     * May be NULL. */
    void (*on_recovered)(journal_t *j, void *ctx);
    void *ctx; /* passed to the three callbacks */

    journal_io_t io; /* test hooks; zero for the real system calls */
} journal_opts_t;

/* Counters for metrics (tallyd_journal_*) and tests; see journal_stats(). */
typedef struct journal_stats {
    uint64_t gen;           /* segment appends go to (after pending rotations) */
    uint64_t next_pos;      /* position the next append gets */
    uint64_t durable_pos;   /* highest durable position (0 = none yet) */
    uint64_t appended;      /* records accepted since open */
    uint64_t groups;        /* groups written successfully */
    uint64_t groups_inline; /* of which the loop wrote itself (see Inline groups) */
    uint64_t syncs;         /* successful data syncs */
    uint64_t bytes_written; /* record bytes written successfully */
    uint64_t pending_bytes; /* bytes appended, not yet written */
    uint64_t segment_gen;   /* the newest segment the writer has created (its file exists) */
    uint64_t failures;      /* failure episodes */
    bool failed;            /* in the failed state now */
} journal_stats_t;

typedef struct journal_buf {
    uint8_t *data;
    size_t len, cap;
    uint64_t last_pos;   /* position of the last record in data */
    bool rotate;         /* a segment break lies in this buffer: */
    size_t rotate_off;   /* bytes before it go to the old segment, */
    uint64_t rotate_gen; /* the rest to segment rotate_gen, */
    uint64_t rotate_pos; /* whose first record has this position */
} journal_buf_t;

/* The journal.  Embed it in the daemon's state; all fields are private. */
struct journal {
    uv_loop_t *loop;
    char *dir;
    journal_opts_t opts;
    uv_async_t async;
    uv_prepare_t kick; /* wakes the writer once per loop iteration */
    uv_idle_t turn;    /* a poll without waiting after an inline group */
    int handles;       /* of async, kick and turn, not yet closed */
    void (*user_close_cb)(journal_t *j);
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    uv_sem_t *started; /* journal_open() waits for the writer's first hold of mu */

    /* Loop thread only. */
    uint64_t next_pos;
    uint64_t gen_appending; /* newest segment, pending rotations included */
    uint64_t reported_pos;  /* last upto_pos given to on_durable */
    uint32_t seen_fail, seen_recover;
    bool open, closing;
    bool appended_since_kick;
    uint64_t inline_pause_until_ns; /* groups go to the writer until then */
    char errmsg[512];

    /* Shared, under mu. */
    journal_buf_t bufs[2];
    int cur;       /* index of the buffer the loop appends to */
    bool g_active; /* the writer owns bufs[cur ^ 1], the active group */
    bool g_inline; /* ... no, the loop does, and the file with it */
    bool t_io;     /* the writer is syncing outside a group (INTERVAL) */
    bool stop;     /* journal_close() asked the writer to finish */
    bool failed;
    bool lost; /* the writer gave up at close with records not durable */
    uint32_t fail_seq, recover_seq;
    uint64_t durable_pos;
    uint64_t created_gen; /* the newest segment whose file exists */
    uint64_t appended, groups, groups_inline, syncs, bytes_written, failures;
    char t_err[512]; /* cause of the current failure */

    /* Writer thread only (and the loop before it starts, after it ends,
     * and while g_inline holds). */
    int fd;
    uint64_t gen;        /* segment being written */
    uint64_t file_off;   /* end of the good part of the segment */
    uint64_t synced_off; /* end of the last successful sync */
    uint64_t w_bytes, w_syncs;
    size_t g_done;         /* bytes of the active group written */
    bool g_switched;       /* the active group's rotation is done */
    bool sync_failed;      /* a periodic sync failed; retry it */
    uint64_t next_sync_ns; /* JOURNAL_SYNC_INTERVAL deadline, 0 = none */
    uint64_t next_retry_ns;
};

/* Open segment gen in directory dir for appending, and start the writer
 * thread.  If the segment exists it is checked (header, and every record,
 * so the end of the file is a clean record boundary) and appends continue
 * at its end; if it does not exist it is created (header written, synced,
 * renamed into place, directory synced).  gen must not be below the
 * newest segment of the directory.
 *
 * next_pos is the position of the first record appended; 0 means "the one
 * after the last record of the segment, or its start position", which is
 * right when the segment exists, and 1 for a new journal.  A nonzero
 * next_pos lower than that would reuse positions and is refused.  For a new
 * segment, next_pos is written in its header as the start position.
 *
 * j is caller-owned memory, initialised here; opts is copied (NULL means
 * all defaults) and dir is copied.  loop must outlive the journal.
 *
 * Returns 0; TALLY_EINVAL (bad option, next_pos too low, or a segment
 * newer than gen exists); TALLY_EIO
 * (cannot create, read or sync the segment; a damaged header; a torn or
 * damaged tail: run journal_replay() first, it repairs torn tails);
 * TALLY_ECONFIG (the segment has a newer format version); TALLY_ENOMEM;
 * TALLY_ESYS (thread or libuv setup failed).  journal_errmsg() then tells
 * what went wrong, naming the file.  Nothing needs closing, except that
 * after TALLY_ESYS j must stay valid until the loop has run once (its
 * async handle was being closed). */
int journal_open(journal_t *j, uv_loop_t *loop, const char *dir, const journal_opts_t *opts,
                 uint64_t gen, uint64_t next_pos);

/* Append one record: copy payload (len bytes; payload may be NULL when len
 * is 0) into the current group and assign it the next position, stored in
 * *pos_out (may be NULL).  Never blocks on disk; the record becomes durable
 * later, reported by on_durable.  The caller keeps ownership of payload.
 *
 * Returns 0; TALLY_EINVAL (len > JOURNAL_MAX_PAYLOAD, or payload NULL
 * with len > 0); TALLY_EUNAVAIL (the
 * journal is in the failed state; retry later); TALLY_EBUSY (more than
 * max_pending bytes wait for the disk); TALLY_ENOMEM; TALLY_ECLOSED (after
 * journal_close()).  On error nothing was appended and no position used. */
int journal_append(journal_t *j, const void *payload, size_t len, uint64_t *pos_out);

/* Start a new segment new_gen: records appended before this call go to the
 * current segment, records appended after it to new_gen.  The writer
 * thread syncs and closes the current segment (whatever the sync policy)
 * and creates the new one; it does not block the loop.  *start_pos_out (may
 * be NULL) receives the position of the first record of the new segment,
 * i.e. the next position to be appended.  Positions below it stay in the
 * old segment; once on_durable reports start_pos or beyond, the new segment
 * exists and the old one is complete and synced.
 *
 * Returns 0; TALLY_EINVAL (new_gen not above the current gen); TALLY_EEXIST
 * (a file for new_gen already exists); TALLY_EAGAIN (the previous rotation
 * is still queued behind the group being written; retry a little later);
 * TALLY_EUNAVAIL (failed state); TALLY_ECLOSED. */
int journal_rotate(journal_t *j, uint64_t new_gen, uint64_t *start_pos_out);

/* Flush and stop.  Everything appended is written and synced (whatever the
 * policy), on_durable is delivered for it before this returns, the writer
 * thread is joined (this blocks the loop for that final write), and then
 * the async handle is closed with uv_close().  close_cb (may be NULL) runs
 * from the loop when the handle is closed; the caller must run the loop
 * until then and must not free or reuse j before (with a NULL close_cb:
 * until uv_run() has processed close callbacks once more).  Appends made
 * from callbacks during the close return TALLY_ECLOSED.
 *
 * If the journal is in the failed state, one last attempt is made; if it
 * fails too, the records not yet durable are abandoned (never reported
 * durable) and TALLY_EIO is returned.  Otherwise returns 0.  Calling it on
 * a journal that is not open is a programmer error. */
int journal_close(journal_t *j, void (*close_cb)(journal_t *j));

/* Fill *st with the current counters.  Loop thread only. */
void journal_stats(journal_t *j, journal_stats_t *st);

/* The message of the last failed journal_open(), or of the last failure
 * reported through on_error; "" if none.  Owned by j. */
const char *journal_errmsg(const journal_t *j);

/* The file name (not the path) of segment gen, "journal-<16 hex>.tj", into
 * out (at least JOURNAL_NAME_MAX bytes). */
void journal_segment_name(char out[JOURNAL_NAME_MAX], uint64_t gen);

/* Delete every segment of dir whose gen is below gen (and leftover
 * temporary files of such segments), then fsync dir.  Call it once a
 * checkpoint covers those segments, and never with a gen above the segment
 * being appended to.  May run on any thread.  *removed (may be NULL)
 * receives the number of segments deleted.
 *
 * Returns 0; TALLY_EIO (dir unreadable, a file could not be deleted or dir
 * not synced; the deletions that worked stay done); TALLY_ENOMEM. */
int journal_remove_before(const char *dir, uint64_t gen, unsigned *removed);

/* ---- Recovery ---- */

/* Called once per record, in position order.  payload (len bytes) is valid
 * only during the call.  Return 0 to continue; a negative code stops the
 * replay, which then returns that code. */
typedef int (*journal_replay_fn)(const void *payload, size_t len, uint64_t pos, void *ctx);

/* One record as replay found it, with where it lies, for messages that
 * must name the file and offset of a record. */
typedef struct journal_record {
    const void *payload; /* valid only during the call */
    size_t len;
    uint64_t pos;
    const char *segment; /* the segment's file name, "journal-<16 hex>.tj" */
    uint64_t offset;     /* of the record's first byte in that file */
} journal_record_t;

/* Like journal_replay_fn, with the record's place. */
typedef int (*journal_record_fn)(const journal_record_t *rec, void *ctx);

typedef struct journal_replay_opts {
    uint64_t from_gen;              /* segments with a lower gen are ignored */
    uint64_t from_pos;              /* records below it are checked but not delivered */
    journal_replay_fn on_record;    /* may be NULL (only check) */
    journal_record_fn on_record_at; /* used instead of on_record when set */
    /* Called once per problem found (torn tail, corrupt region, position
     * gap) with a full sentence naming the file and offsets; may be NULL. */
    void (*on_note)(const char *line, void *ctx);
    void *ctx;      /* passed to on_record and on_note */
    bool read_only; /* report a torn tail but do not truncate it */
} journal_replay_opts_t;

typedef struct journal_replay_report {
    uint64_t records;   /* records delivered to on_record */
    uint64_t skipped;   /* valid records below from_pos */
    uint64_t bytes;     /* payload bytes delivered */
    uint32_t segments;  /* segment files read */
    uint64_t first_gen; /* gen of the first segment read (0 if none) */
    uint64_t last_gen;  /* gen of the last segment read (0 if none) */
    uint64_t last_pos;  /* highest position seen (0 if none) */
    /* Position for journal_open(): max(last_pos + 1, start position of the
     * last segment, 1).  Take the max with the checkpoint's next position
     * when the segments it covers have been removed. */
    uint64_t next_pos;
    bool torn_tail;             /* the last segment ended in a torn record */
    uint64_t torn_offset;       /* its offset: the file was cut to this size */
    uint64_t torn_bytes;        /* bytes cut off (or that would be, read_only) */
    uint64_t corrupt_regions;   /* damaged regions skipped (not truncated) */
    uint64_t corrupt_bytes;     /* bytes in them */
    uint64_t corrupt_first_gen; /* where the first one starts */
    uint64_t corrupt_first_offset;
    uint64_t pos_gaps; /* places where positions jump forward */
    /* Positions missing where no damaged region explains them (a segment
     * deleted between two others): how many, the first such range and the
     * segment where the jump was seen. */
    uint64_t gap_positions;
    uint64_t gap_first_from, gap_first_to;
    char gap_segment[JOURNAL_NAME_MAX];
    /* Positions missing right after a damaged region (the records it held). */
    uint64_t damaged_positions;
    uint64_t first_start_pos; /* start position in the first segment's header */
    char first_note[320];     /* the first problem sentence, "" if none */
    char error[512];          /* why replay failed, "" on success */
} journal_replay_report_t;

/* Read every segment of dir with gen >= ro->from_gen, in gen order, check
 * each header and record (magic, length, CRC-32C, increasing position) and
 * hand each valid record to ro->on_record.  Reads large chunks; no system
 * call per record.  Must not run while a journal_t appends to dir.
 *
 * Damage is handled so that no valid record is dropped silently:
 * - a torn or corrupt record at the tail of the LAST segment (no valid
 *   record after it) is what a crash during a write leaves: it is reported
 *   (file, offset) and cut off with ftruncate + fsync, so appends continue
 *   on a clean boundary (unless ro->read_only);
 * - a damaged region followed by valid records (in any segment), or at the
 *   tail of a segment that is not the last one, is reported as
 *   "journal-...: corrupt record at offset X; skipped N bytes; resumed at
 *   offset Y" and skipped; the scan resumes at the next record whose magic,
 *   CRC and position check out.  The file is left untouched.
 * An empty directory (no segments) is not an error.
 *
 * ro->read_only aside, rep (required) is filled in on success and failure.
 * Returns 0; TALLY_EIO (a segment unreadable, a header damaged or naming
 * another gen, truncation failed); TALLY_ECONFIG (a segment has a format
 * version this build does not know: it is refused, never misread);
 * TALLY_ENOMEM; TALLY_EINVAL (ro NULL); or the code on_record returned.
 * rep->error names the file and the problem. */
int journal_replay(const char *dir, const journal_replay_opts_t *ro, journal_replay_report_t *rep);

#endif
