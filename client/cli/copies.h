/* copies.h - the tally command (client/cli/, private): the copies of
 * backups that `tally backup --copy-to DIR` keeps in DIR, the oldest of
 * them removed beyond --keep, and each checked against its BLAKE2SUMS
 * (--verify).
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
#include <stdint.h>

/* Names of copies, oldest first. */
typedef struct copies_names {
    char **names;
    size_t n;
} copies_names_t;

/* The copies in dir, oldest first, into *out (free it with
 * copies_names_free()).  Returns 0, or -1 with a sentence in err (dir
 * cannot be read; out of memory). */
int copies_list(const char *dir, copies_names_t *out, char *err, size_t errlen);

/* Keep at most keep (>= 1) copies in dir, counting spare, the copy just
 * made, which is never removed whatever its age: remove the oldest of the
 * others until keep are left.  *out lists the copies removed (free it
 * with copies_names_free(), also after a failure).  Returns 0; or -1
 * with a sentence in err naming what could not be read or removed (the
 * copies removed before that are in *out), a directory named like a
 * copy that holds something else being left alone without failing. */
int copies_prune(const char *dir, unsigned keep, const char *spare, copies_names_t *out, char *err,
                 size_t errlen);

void copies_names_free(copies_names_t *r);

/* What copies_check() found in one copy. */
typedef struct copies_check {
    int status;     /* B2SUMS_OK, _NONE, _DAMAGED or _EIO (b2sums.h) */
    unsigned files; /* B2SUMS_OK: the files checked */
    uint64_t bytes; /* ... and their bytes */
    char err[1200]; /* _DAMAGED, _EIO: which file, and how */
} copies_check_t;

/* Check the backup or copy in dir against its BLAKE2SUMS, every regular
 * file of it (b2sums_check()). */
void copies_check(const char *dir, copies_check_t *out);

#endif
