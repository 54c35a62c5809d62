/* restore.h - `tallyd --restore BACKUP`: a backup (backup.h) put in place
 * of the state directory's files, while no tallyd runs there.
 *
 * A restore by hand is easy to get wrong: a newer checkpoint or journal
 * segment left beside the backup's files wins at the next start, and
 * copies made as root are unreadable to a service running as its own
 * user.  So the command:
 *
 *  1. checks every file of the backup against its BLAKE2SUMS (b2sums.h:
 *     a file changed, cut, missing or added since the backup was
 *     written; a backup of a tallyd that wrote none is not), and the
 *     backup as a start would read it (its newest checkpoint's CRC,
 *     every journal record's, no positions missing), and refuses a
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
    uint64_t journal_last;                   /* the backup's last journal position */
    bool sums;                               /* every file matched the backup's BLAKE2SUMS */
} restore_report_t;

/* Restore backup (a directory backup-* written by tallyd) into state_dir
 * (created when missing).  now_ms names the replaced-* directory (UTC).
 * Returns 0; TALLY_EEXIST (a tallyd holds state_dir: err names its PID);
 * TALLY_EINVAL (backup is not a backup: err says why); TALLY_EIO (the
 * backup is damaged, or a file could not be moved or copied: err names
 * it; the state directory is as it was). */
int restore_run(const char *backup, const char *state_dir, int64_t now_ms, restore_report_t *rep,
                char *err, size_t errlen);

#endif
