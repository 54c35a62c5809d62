/* b2sums.h - BLAKE2SUMS, the digests of a backup's files (part of
 * tallycommon: tallyd writes it into every backup; `tallyd --restore`,
 * libtally's copies and `tally backup --verify` check it).
 *
 * The file is in the format of coreutils' b2sum: one line per file,
 * "<128 lower-case hex digits of its BLAKE2b-512>  <file name>\n", in
 * the order of the names.  So `cd backup-X && b2sum -c BLAKE2SUMS`
 * checks a backup, or a copy of one, on any machine without tally.
 *
 * A backup's own checks (checkpoint and journal CRCs) say whether its
 * records are whole, not whether a copy is the backup tallyd wrote:
 * history.db has no checksum of its own, and a file cut or flipped on a
 * copy's disk may still parse.  The digests cover every byte of every
 * file.  BLAKE2b comes from libsodium (already tallyd's hash), and is
 * fast enough that checking is bound by reading the files.
 *
 * The names are plain file names: 1 to B2SUMS_NAME_MAX bytes, no '/',
 * no NUL or newline, not beginning with '.' (so never "." or "..");
 * b2sum's escaped lines (a leading '\') are not taken.  Checking reads
 * at most B2SUMS_FILE_MAX bytes of BLAKE2SUMS. */
#ifndef TALLY_B2SUMS_H
#define TALLY_B2SUMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define B2SUMS_FILE     "BLAKE2SUMS"
#define B2SUMS_BYTES    64 /* BLAKE2b-512, b2sum's default */
#define B2SUMS_HEX      (2 * B2SUMS_BYTES)
#define B2SUMS_NAME_MAX 255
#define B2SUMS_FILE_MAX (4u << 20) /* ~25,000 files */

/* What b2sums_check() found. */
enum {
    B2SUMS_OK = 0,      /* every file listed has its digest, none is missing or extra */
    B2SUMS_NONE = 1,    /* the directory holds no BLAKE2SUMS */
    B2SUMS_DAMAGED = 2, /* a file differs, is missing or not listed; or BLAKE2SUMS is malformed */
    B2SUMS_EIO = 3,     /* a file or the directory could not be read (errno) */
    B2SUMS_CANCELLED = 4,
};

/* The files checked or listed, and their bytes together. */
typedef struct b2sums_count {
    unsigned files;
    uint64_t bytes;
} b2sums_count_t;

/* True when name may be listed (see above). */
bool b2sums_name_valid(const char *name);

/* The BLAKE2b-512 of the regular file name in the directory dirfd (a
 * symbolic link is not followed), as 128 lower-case hex digits and a
 * NUL; *size (may be NULL) gets its bytes.  cancel (may be NULL) is
 * looked at between MiBs.  Safe on any thread.  Returns 0, or -1 with
 * errno (ELOOP or EINVAL: not a regular file; ECANCELED; ENOMEM; what
 * open or read said). */
int b2sums_digest(int dirfd, const char *name, char hex[B2SUMS_HEX + 1], uint64_t *size,
                  const _Atomic int *cancel);

/* Write BLAKE2SUMS into the directory dirfd (dirpath names it in err)
 * for the files names[0..n), valid names of regular files there, in
 * their order; the file is written atomically and synced
 * (atomic_file_write, mode 0640 under the umask).  *count (may be NULL)
 * gets the files and their bytes.  Returns 0, or -1 with errno and a
 * sentence in err naming the file that failed. */
int b2sums_write(int dirfd, const char *dirpath, char *const *names, size_t n,
                 const _Atomic int *cancel, b2sums_count_t *count, char *err, size_t errlen);

/* Check the directory dirfd (dirpath names it in err) against its
 * BLAKE2SUMS: every line well-formed, no name twice, every file listed a
 * regular file with that digest, and every regular file of the
 * directory whose name counted() accepts (NULL: every name not
 * beginning with '.') listed, BLAKE2SUMS itself aside.  *count (may be
 * NULL) gets the files listed and their bytes.  Returns B2SUMS_OK;
 * B2SUMS_NONE (no BLAKE2SUMS there: nothing was checked); B2SUMS_DAMAGED
 * (err says which file and how: differs, missing, not a regular file,
 * not listed; which line of BLAKE2SUMS is malformed); B2SUMS_EIO (err
 * names what could not be read, errno why); B2SUMS_CANCELLED. */
int b2sums_check(int dirfd, const char *dirpath, bool (*counted)(const char *name),
                 const _Atomic int *cancel, b2sums_count_t *count, char *err, size_t errlen);

#endif
