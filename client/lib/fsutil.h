/* fsutil.h - libtally (client/lib/, private): whole-file read and
 * directory open.  Files are written with tallycommon's
 * atomic_file_write (proto/atomic_file.h). */
#ifndef TALLY_CLIENT_FSUTIL_H
#define TALLY_CLIENT_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Read the whole file name (relative to dirfd) into a malloc'ed buffer
 * (*data, freed by the caller; one extra NUL byte is appended, not counted
 * in *len).  Files larger than max bytes are refused.
 * Returns 0; TALLY_ENOTFOUND when the file does not exist; TALLY_ETOOLARGE;
 * TALLY_ENOMEM; TALLY_EIO. */
int fsutil_read_all(int dirfd, const char *dirpath, const char *name, size_t max, uint8_t **data,
                    size_t *len, char *err, size_t errlen);

/* Open a directory for use as dirfd (O_DIRECTORY|O_CLOEXEC), creating it
 * with mode 0700 first when create is set and it does not exist.
 * Returns the fd (>= 0) or TALLY_EIO. */
int fsutil_open_dir(const char *path, int create, char *err, size_t errlen);

/* flock(fd, LOCK_EX), waiting up to timeout_ms (0: not at all) while
 * another open file description holds the lock.  Returns 0; TALLY_EEXIST
 * when it is still held; TALLY_EIO (errno tells why). */
int fsutil_lock(int fd, unsigned timeout_ms);

#endif
