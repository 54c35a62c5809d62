/* copies.h - the tally command (client/cli/, private): the copies of
 * backups that `tally backup --copy-to DIR` keeps in DIR, and the oldest
 * of them removed beyond --keep.
 *
 * A copy is a directory DIR/NAME, NAME a backup's name
 * (backup-YYYYMMDDTHHMMSSZ, optionally -N: proto_backup_name_valid()),
 * holding only regular files whose names a copy may take
 * (proto_backup_file_name_valid()).  Copies are ordered by NAME's time,
 * then by N (none first), which is the order tallyd wrote the backups
 * in.  Nothing else in DIR is ever touched: other files and directories,
 * symbolic links named like a backup, partial copies (.partial-NAME) of a
 * copy that may still be running, and a directory named like a backup
 * that holds anything a copy does not. */
#ifndef TALLY_CLIENT_COPIES_H
#define TALLY_CLIENT_COPIES_H

#include <stddef.h>

/* The copies removed by copies_prune(), oldest first. */
typedef struct copies_removed {
    char **names;
    size_t n;
} copies_removed_t;

/* Keep at most keep (>= 1) copies in dir, counting spare, the copy just
 * made, which is never removed whatever its age: remove the oldest of the
 * others until keep are left.  *out lists the copies removed (free it
 * with copies_removed_free(), also after a failure).  Returns 0; or -1
 * with a sentence in err naming what could not be read or removed (the
 * copies removed before that are in *out), a directory named like a
 * copy that holds something else being left alone without failing. */
int copies_prune(const char *dir, unsigned keep, const char *spare, copies_removed_t *out,
                 char *err, size_t errlen);

void copies_removed_free(copies_removed_t *r);

#endif
