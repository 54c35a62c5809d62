/* atomic_file.h - a whole file written so that a crash at any instant
 * leaves either no file or the complete one, never a torn one (part of
 * tallycommon, shared by the daemon and the client).
 *
 * The data goes to NAME.tmp in the same directory, which is fsync()ed and
 * renamed to NAME; then the directory is fsync()ed, since the rename is
 * durable only once the directory entry is.  A NAME.tmp found later is
 * what a crash left behind: its owner deletes it when it starts, never
 * reads it.
 */
#ifndef TALLY_ATOMIC_FILE_H
#define TALLY_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define ATOMIC_FILE_TMP_SUFFIX ".tmp"

/* Stand-ins for write(2) and fsync(2) on the new file, for tests that
 * make the disk fail on demand: write_fn returns the bytes written
 * (possibly fewer than len) or -1 with errno set; sync_fn returns 0 or -1
 * with errno set.  A NULL function means the real system call.  The
 * directory is always fsync()ed for real. */
typedef struct atomic_file_io {
    ssize_t (*write_fn)(void *ctx, int fd, const void *buf, size_t len);
    int (*sync_fn)(void *ctx, int fd);
    void *ctx;
} atomic_file_io_t;

typedef struct atomic_file_opts {
    unsigned mode;              /* permission bits of the new file; 0 means 0600 */
    bool exact_mode;            /* set mode with fchmod, whatever the umask says */
    bool no_replace;            /* never replace an existing NAME: TALLY_EEXIST */
    int *keep_fd;               /* not NULL: the file stays open for writing, *keep_fd
                                   gets its descriptor (positioned after the data,
                                   closed by the caller); otherwise it is closed */
    const atomic_file_io_t *io; /* NULL: the real system calls */
} atomic_file_opts_t;

/* Write len bytes of data as the file name in a directory: dirfd when it
 * is an open directory (O_DIRECTORY), else (dirfd < 0) the directory
 * dirpath, opened for the call.  dirpath names the directory in messages
 * either way ("" or NULL for the current one).  name is a file name, not a
 * path.  opts may be NULL for the defaults (mode 0600 under the umask,
 * replacing an existing file, closed afterwards).
 *
 * Without no_replace, an existing name is replaced atomically: readers
 * see the old content or the new.  With no_replace, the file appears
 * under name only if nothing had that name (renameat2 RENAME_NOREPLACE,
 * or link(2) on file systems without it).
 *
 * Returns 0 once file and directory are on disk; TALLY_EEXIST (no_replace
 * and name exists); TALLY_EIO (a step failed); TALLY_EINVAL (name empty,
 * too long or with a '/').  On failure err gets a sentence naming the
 * file, the step that failed and strerror ("spool/client.seq: cannot fsync
 * client.seq.tmp: Input/output error"), errno tells the cause, and no
 * temporary file is left.  Only the last step, the fsync of the directory,
 * can fail after the rename: with no_replace the new file is removed again
 * (nothing was there before); without, the new content stays under name,
 * the old being gone already. */
int atomic_file_write(int dirfd, const char *dirpath, const char *name, const void *data,
                      size_t len, const atomic_file_opts_t *opts, char *err, size_t errlen);

/* Remove the directory name (relative to dirfd, or a path with
 * AT_FDCWD) with the files in it, as a backup or a copy of one is made:
 * every entry is unlinked (a subdirectory makes it fail), then the
 * directory; a symbolic link named so is not followed.  It goes on past a
 * file it cannot remove.  Returns 0, or -1 with errno of the first
 * failure (ENOENT: there is no such directory; ENOTDIR: name is not
 * one). */
int atomic_dir_remove_flat(int dirfd, const char *name);

#endif
