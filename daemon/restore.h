/* restore.h - `tallyd --restore BACKUP`: a backup (backup.h) put in place
 * of the state directory's files, while no tallyd runs there.
 *
 * A restore by hand is easy to get wrong: a newer checkpoint or journal
 * segment left beside the backup's files wins at the next start, and
 * copies made as root are unreadable to a service running as its own
 * user.  So the command:
 *
 *  1. checks the backup (restore_check: every file against its
 *     BLAKE2SUMS, and the backup as a start would read it) and refuses a
 *     damaged one before touching anything;
 *  2. takes the state directory's lock (statedir.h), so that it refuses
 *     while a tallyd uses the directory;
 *  3. moves the state files there (journal segments, checkpoints,
 *     history.db and its -wal and -shm) into replaced-<UTC time>/ beside
 *     them, so that nothing is lost;
 *  4. copies the backup's files in (each under a temporary name, synced,
 *     renamed), owned like the state directory when run as root, and
 *     syncs the directory.
 * A failure in 3 or 4 puts the replaced files back.  Other entries of the
 * state directory (backups/, earlier replaced-* directories, the lock
 * file) are left alone.
 */
#ifndef TALLYD_RESTORE_H
#define TALLYD_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct restore_report {
    unsigned files;                          /* copied in */
    uint64_t bytes;                          /* ... their bytes */
    unsigned replaced;                       /* state files moved aside */
    char replaced_dir[CONFIG_PATH_MAX + 32]; /* where, "" when none were */
    uint64_t journal_first;                  /* the backup's first journal position */
    uint64_t journal_last;                   /* ... and its last */
    bool sums;                               /* every file matched the backup's BLAKE2SUMS */
    unsigned backup_files;                   /* the backup's state files */
    uint64_t backup_bytes;                   /* ... their bytes */
    char checkpoint[64];                     /* the checkpoint a start loads, "" when none */
    uint64_t checkpoint_pos; /* ... the first journal position it does not reflect */
    bool history;            /* the backup holds history.db */
    uint64_t history_cells;  /* ... with so many rows of figures */
    bool history_damaged;    /* ... which its check found damaged (err says why); not
                                one that merely could not be read */
} restore_report_t;

/* Check backup (a directory backup-* written by tallyd) without writing
 * anything (`tallyd --check-backup`, and step 1 of restore_run): every
 * file against its BLAKE2SUMS (b2sums.h: a file changed, cut, missing or
 * added since the backup was written; a backup of a tallyd that wrote
 * none is not), then as a start would read it, which also finds damage
 * done before the digests were taken: its newest checkpoint's CRC, every
 * journal record's, no positions missing, and history.db's PRAGMA
 * quick_check (a start would set a damaged one aside and rebuild the
 * history from the journal alone, losing what is older).  Fills rep but
 * for files, bytes and replaced.  Returns 0; TALLY_EINVAL (not a
 * backup: err says why); TALLY_EIO (damaged or unreadable: err names the
 * file; rep->history_damaged when it is history.db alone). */
int restore_check(const char *backup, restore_report_t *rep, char *err, size_t errlen);

/* Restore backup (a directory backup-* written by tallyd) into state_dir
 * (created when missing).  now_ms names the replaced-* directory (UTC).
 * accept_loss restores a backup whose history.db alone is damaged
 * (rep->history_damaged, its sentence in err): the start that follows
 * sets it aside and rebuilds the history from the journal.
 * Returns 0; TALLY_EEXIST (a tallyd holds state_dir: err names its PID);
 * TALLY_EINVAL (backup is not a backup: err says why); TALLY_EIO (the
 * backup is damaged, or a file could not be moved or copied: err names
 * it; the state directory is as it was). */
int restore_run(const char *backup, const char *state_dir, int64_t now_ms, bool accept_loss,
                restore_report_t *rep, char *err, size_t errlen);

#endif
