/* backup.h - a backup of the state directory taken while tallyd runs.
 *
 * What a backup holds.  A directory backup-<UTC time, YYYYMMDDTHHMMSSZ>
 * in the backup directory ([backup] dir, by default "backups" inside the
 * state directory) with the files a start needs: every checkpoint and
 * journal segment of the state directory at one moment, and history.db as
 * of one transaction.  Copied into an empty state directory, it starts
 * like a state directory after a power cut at that moment: the newest
 * checkpoint, the journal after it, the history and the records it does
 * not hold yet.  It carries no lock file, no SQLite -wal or -shm and no
 * checkpoint temporary files; it carries BLAKE2SUMS, the digests of its
 * files (step 3).
 *
 * How it stays consistent without stopping anything:
 *
 *  1. (a worker thread) history.db is opened on a connection of the
 *     backup's own and a read transaction begun: from then on that
 *     connection sees the database as of one transaction, holding every
 *     journal record up to its position P and none after (history_db.h).
 *     Before this the loop set the backup's hold (backup_hold_pos()) at
 *     the history's own hold, so that no journal segment holding a record
 *     after P can be deleted until step 2 is done (compaction asks for it
 *     through compact_config_t.hold_pos).
 *  2. (the loop) The checkpoints and sealed segments are hard-linked into
 *     the new directory; they never change once written.  The segment
 *     being appended to (the newest) is opened and copied in step 3.  A
 *     segment begun during the listing (it would be appended to, and must
 *     not be linked) and a checkpoint naming it are left out: records up
 *     to P are in the segments before it.  A
 *     hard link across file systems fails (a backup directory elsewhere):
 *     those files are opened too, and copied.  Records up to P were
 *     written before step 1, so these files hold all of them.  The hold
 *     is released.
 *  3. (a worker thread) The opened files are copied, history.db is copied
 *     from the read transaction with SQLite's online backup API, then the
 *     copy is checked as a start would read it: the newest checkpoint's
 *     CRC, every journal record's CRC, no positions missing, the journal
 *     reaching back to what the checkpoint and P need and on to P and to
 *     the segment the checkpoint names, and the segment copied mid-write
 *     cut at its last whole record.  BLAKE2SUMS is written: the
 *     BLAKE2b-512 of every file (b2sums.h), in b2sum's format, which
 *     restore and every copy check.  Everything is synced, the directory renamed from
 *     .partial-<name> into place, and the oldest backups beyond [backup]
 *     keep removed.  A failure removes the partial directory and changes
 *     nothing else.
 *
 * The loop's share is step 2: a directory listing and a link per file
 * (microseconds each).  One backup runs at a time.  Leftover partial
 * directories of a tallyd that died during a backup are removed by the
 * next backup.
 *
 * The schedule ([backup] interval) carries over restarts and reloads:
 * the next backup is due an interval after the newest one, that is the
 * newest written by this tallyd or, before it wrote one, the newest in the
 * backup directory at the start (by the time in its name).  One already
 * due, or none there at all, is begun BACKUP_START_DELAY_MS after the
 * start (or the reload), and none is ever due more than an interval
 * ahead (a clock set back, a backup named in the future).  Otherwise a
 * tallyd restarted more often than its interval would never write one.
 * A scheduled backup that fails, or cannot begin, is tried again an
 * interval later; a backup asked for (SIGUSR1, BACKUP_REQ) that was
 * written counts as the newest like any other.
 *
 * Threads.  Every function runs on the loop's thread; steps 1 and 3 run on
 * libuv's thread pool and touch only the backup's own files and fields.
 */
#ifndef TALLYD_BACKUP_H
#define TALLYD_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "log.h"

#define BACKUP_DIR_DEFAULT  "backups" /* inside the state directory */
#define BACKUP_KEEP_DEFAULT 7
#define BACKUP_NAME_MAX     64 /* "backup-YYYYMMDDTHHMMSSZ-NNN" with room to spare */
/* A scheduled backup already due at the start, or with none in the
 * backup directory, begins this long after the start or a reload (or
 * after the interval, when that is shorter): soon, yet not at every start
 * of a tallyd that stops again at once. */
#define BACKUP_START_DELAY_MS 2000

/* What reload may change. */
typedef struct backup_settings {
    char dir[CONFIG_PATH_MAX]; /* "" : BACKUP_DIR_DEFAULT; relative: to the state directory */
    int64_t keep;              /* backups kept; older ones are removed after a new one */
    int64_t interval_ms;       /* take one this often (0: only when asked) */
} backup_settings_t;

/* How a backup ended, for backup_config_t.on_end. */
typedef struct backup_end {
    uint64_t serial;  /* which backup: backup_ask() gave this number */
    int rc;           /* 0 written; TALLY_ECLOSED (tallyd stopping); another TALLY_E* */
    const char *err;  /* rc != 0: a sentence saying why */
    const char *path; /* rc == 0: the backup's directory, absolute when it could be resolved */
    uint32_t files;   /* rc == 0: files in it */
    uint64_t bytes;   /* ... their size together */
    uint64_t ms;      /* how long it took */
} backup_end_t;

typedef struct backup_config {
    uv_loop_t *loop;
    const char *state_dir; /* borrowed, absolute or relative to the working directory */
    logger_t *log;
    const tclock_t *clock; /* names the backups (UTC) */
    /* The first journal position the history database does not hold yet
     * (history_hold_pos()); NULL or UINT64_MAX: none is held. */
    uint64_t (*history_hold)(void *ctx);
    void *ctx;
    backup_settings_t settings;
    /* Optional: told of the end of every backup begun (whatever asked for
     * it), and of a backup asked for with backup_ask() that could not
     * begin. */
    void (*on_end)(void *ctx, const backup_end_t *end);
    void *end_ctx;
} backup_config_t;

/* A file of the state directory opened in step 2 and copied in step 3. */
typedef struct backup_file {
    char name[32];
    int fd;
} backup_file_t;

/* The part; embed it, its fields are private. */
typedef struct backup {
    backup_config_t c;
    uv_timer_t timer; /* the next scheduled backup (settings.interval_ms) */
    int64_t due_ms;   /* wall clock it is due at, 0: none scheduled */
    int64_t tried_ms; /* wall clock of the last scheduled one that failed */
    bool scheduled;   /* the backup under way is the timer's */
    uv_work_t work;
    bool running; /* a backup is between steps 1 and 3 */
    bool closing; /* backup_close() was called */
    void (*close_cb)(struct backup *b);
    int open_handles;
    _Atomic int cancel; /* set by backup_close(): the thread stops early */
    uint64_t hold;      /* backup_hold_pos() */
    /* The backup under way. */
    char root[CONFIG_PATH_MAX];                           /* the backup directory */
    char name[BACKUP_NAME_MAX];                           /* backup-... */
    char last_name[BACKUP_NAME_MAX];                      /* the name given last, never again */
    char partial[CONFIG_PATH_MAX + BACKUP_NAME_MAX + 16]; /* root/.partial-name */
    char final[CONFIG_PATH_MAX + BACKUP_NAME_MAX + 2];    /* its path once written */
    char why[64];                                         /* what asked for it, for the log */
    int step;                                             /* 1 or 3: what the queued work does */
    int64_t started_ms;                                   /* monotonic */
    int64_t wall_ms;                                      /* the wall clock then: the name */
    uint64_t loop_ns;                                     /* step 2's time on the loop */
    int64_t keep;                                         /* settings.keep when it began */
    sqlite3 *src;                                         /* history.db, in its read transaction */
    uint64_t db_pos;       /* the journal position history.db holds */
    backup_file_t *copies; /* opened in step 2 */
    size_t ncopies, copies_cap;
    unsigned linked, checkpoints, segments;
    uint64_t bytes_copied;
    uint64_t ckpt_pos;     /* the newest checkpoint's next position (0: none) */
    uint64_t ckpt_gen;     /* ... and the segment it names */
    uint64_t journal_last; /* the last journal position in the backup */
    unsigned removed;      /* old backups removed */
    uint32_t files;        /* in the backup written */
    uint64_t bytes;        /* their size together */
    uint64_t begun;        /* serial of the last backup begun (1, 2, ...) */
    bool again;            /* backup_ask() wants one more after the one under way */
    int rc;
    char err[768];
    /* Counters (STATS). */
    uint64_t done, failed;
    /* Wall clock of the newest backup, the time in its name (when it
     * began): the last this tallyd wrote, or before it wrote one the
     * newest in the backup directory (backup_newest()); 0: none. */
    int64_t last_ok_ms;
} backup_t;

/* Set the part up.  The backup directory is listed for its newest backup
 * (last_ok_ms; backup_newest()), and when settings.interval_ms > 0 the
 * next backup is scheduled from it (see the schedule above); nothing is
 * written until a backup is due or asked for.  A directory that cannot be
 * read is logged and taken as holding none.  Returns 0. */
int backup_init(backup_t *b, const backup_config_t *c);

/* The schedule's part of backup_init(): the newest backup read, the
 * first scheduled one set (backup_schedule.c). */
void backup_schedule_start(backup_t *b);

/* Set the timer of the next scheduled backup, not sooner than min_ms from
 * now (see the schedule above); none while a backup runs, whose end calls
 * this again (backup_schedule.c). */
void backup_schedule(backup_t *b, int64_t min_ms);

/* New settings (a reload): the next backup uses them.  When the backup
 * directory changed it is listed for its newest backup as at the start;
 * the next scheduled backup is due as the schedule says (a reload does not
 * put it off). */
void backup_set(backup_t *b, const backup_settings_t *s);

/* The newest backup in root: among the directories named like a backup,
 * the latest by the time in their names and then their -N suffix.  Its
 * name goes to name[0..cap) (may be NULL when cap is 0), its time (UTC,
 * milliseconds since the epoch) to *ms; "" and 0 when there is none or
 * root does not exist.  Returns 0 or an errno value (root cannot be
 * read; then *ms is 0). */
int backup_newest(const char *root, char *name, size_t cap, int64_t *ms);

/* Begin a backup, why naming what asked for it ("SIGUSR1") in the log.
 * Returns 0 (under way: its end is logged), TALLY_EBUSY (one is already
 * under way, logged) or TALLY_ECLOSED (closing). */
int backup_now(backup_t *b, const char *why);

/* Ask for a backup that holds everything written to the journal before
 * the call: begun now, or, when one is under way, right after it ends.
 * Requests made while one is under way share that next backup.  *serial
 * receives the number on_end will report it under.  Returns 0; TALLY_ECLOSED
 * (closing); or the failure of backup_now(), with its sentence in b->err
 * (then on_end is not called for it). */
int backup_ask(backup_t *b, uint64_t *serial);

/* The sentence of the last failure (backup_ask's, on_end's err). */
static inline const char *backup_errmsg(const backup_t *b)
{
    return b->err;
}

/* The backup directory of the settings in force (the last backup_set()):
 * [backup] dir when absolute, else that path (BACKUP_DIR_DEFAULT when
 * empty) inside the state directory; into out[0..cap), NUL-terminated.
 * Reads nothing on disk.  Returns 0, or TALLY_EINVAL when the path does
 * not fit (out is then cut). */
int backup_root(const backup_t *b, char *out, size_t cap);

/* The backups kept ([backup] keep in force). */
static inline int64_t backup_keep(const backup_t *b)
{
    return b->c.settings.keep;
}

/* The first journal position a backup under way needs kept, UINT64_MAX
 * when none (compact_config_t.hold_pos). */
static inline uint64_t backup_hold_pos(const backup_t *b)
{
    return b->hold;
}

/* Names of a directory, sorted (malloc'ed, each and the array). */
typedef struct backup_names {
    char **v;
    size_t n;
} backup_names_t;

/* The entries of dir that keep(name) accepts and whose type is kind
 * (S_IFREG, S_IFDIR; 0: any), sorted by name.  Returns 0 or an errno value
 * (out is then empty). */
int backup_list(const char *dir, bool (*keep)(const char *name), mode_t kind, backup_names_t *out);

/* Free what backup_list() gave; out is left empty. */
void backup_names_free(backup_names_t *ns);

/* True when name is a file of the state that a backup holds: a journal
 * segment, a checkpoint, history.db (or the -wal a reader of the copy
 * may have left beside it); what a restore copies in. */
bool backup_holds_state(const char *name);

/* True when name is a file a backup holds: backup_holds_state()'s, and
 * BLAKE2SUMS, the digests of those (b2sums.h). */
bool backup_holds(const char *name);

/* Copy the file open at in to the new file path (created with in's
 * mode; the call fails when path exists), read with pread from offset 0
 * to its end, then fsync it.  *bytes (may be NULL) grows by what was
 * copied; cancel (may be NULL) is looked at between MiBs.  Safe on any
 * thread.  Returns 0; TALLY_EIO (err names the file and the cause; path
 * is removed); TALLY_ECLOSED (cancelled; removed too); TALLY_ENOMEM. */
int backup_copy_fd(int in, const char *path, const _Atomic int *cancel, uint64_t *bytes, char *err,
                   size_t errlen);

/* Stop the timer; a backup under way stops at its next check and removes
 * its partial directory.  cb runs once nothing of the part is left open
 * (after the thread's step ended). */
void backup_close(backup_t *b, void (*cb)(backup_t *b));

#endif
