/* fsutil.h - durable file helpers: atomic replace and whole-file read
 * (not public). */
#ifndef TALLY_CLIENT_FSUTIL_H
#define TALLY_CLIENT_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Replace the file name (relative to the directory dirfd) by len bytes of
 * data, atomically and durably: write name.tmp, fsync it, rename it over
 * name, fsync the directory.  After a crash the file holds either the old
 * or the new content, never a mix; a leftover name.tmp is garbage.
 * Returns 0 or TALLY_EIO (errno tells why; err gets a sentence). */
int fsutil_write_atomic(int dirfd, const char *dirpath, const char *name, const void *data,
                        size_t len, char *err, size_t errlen);

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

#endif
