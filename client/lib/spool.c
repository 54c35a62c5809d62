/* spool.c - libtally (client/lib/): the publisher's durable queue in a
 * directory.
 *
 * The spool is what makes "never lost, never counted twice" hold across
 * crashes: a submission is on disk before it is first sent and leaves the
 * disk only once the daemon has acknowledged it (or rejected it for good),
 * and the daemon de-duplicates resends by (client id, seq). */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "fsutil.h"
#include "tally_error.h"
#include "text.h"
#include "util.h"
#include "vec.h"

struct spool {
    char *path;
    int dirfd;
    int lockfd;
};

static int clean_tmp(spool_t *s, char *err, size_t errlen)
{
    int fd = dup(s->dirfd);
    if (fd < 0) {
        text_format(err, errlen, "cannot read directory %s: %s", s->path, strerror(errno));
        return TALLY_EIO;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        text_format(err, errlen, "cannot read directory %s: %s", s->path, strerror(errno));
        close(fd);
        return TALLY_EIO;
    }
    rewinddir(d);
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name), sl = strlen(ATOMIC_FILE_TMP_SUFFIX);
        if (n > sl && strcmp(e->d_name + n - sl, ATOMIC_FILE_TMP_SUFFIX) == 0) {
            /* We hold the lock, so no live writer owns this file: it is
             * what a crash mid-write left behind, and the rename that
             * would have published it never happened. */
            if (unlinkat(s->dirfd, e->d_name, 0) < 0 && errno != ENOENT) {
                text_format(err, errlen, "cannot remove stray %s/%s: %s", s->path, e->d_name,
                            strerror(errno));
                rc = TALLY_EIO;
                break;
            }
        }
    }
    closedir(d);
    return rc;
}

int spool_open(const char *dir, unsigned lock_timeout_ms, spool_t **out, char *err, size_t errlen)
{
    spool_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return TALLY_ENOMEM;
    s->dirfd = -1;
    s->lockfd = -1;
    s->path = strdup(dir);
    if (s->path == NULL) {
        free(s);
        return TALLY_ENOMEM;
    }
    int rc = fsutil_open_dir(dir, 1, err, errlen);
    if (rc < 0)
        goto fail;
    s->dirfd = rc;
    s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lockfd < 0) {
        text_format(err, errlen, "cannot open %s/lock: %s", dir, strerror(errno));
        rc = TALLY_EIO;
        goto fail;
    }
    rc = fsutil_lock(s->lockfd, lock_timeout_ms);
    if (rc == TALLY_EEXIST)
        text_format(err, errlen,
                    "spool directory %s is in use by another process, or another handle of this "
                    "one (%s/lock is locked)",
                    dir, dir);
    else if (rc < 0)
        text_format(err, errlen, "cannot lock %s/lock: %s", dir, strerror(errno));
    if (rc < 0)
        goto fail;
    rc = clean_tmp(s, err, errlen);
    if (rc < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    spool_close(&s);
    return rc;
}

void spool_close(spool_t **sp)
{
    spool_t *s = *sp;
    if (s == NULL)
        return;
    if (s->lockfd >= 0)
        close(s->lockfd); /* closing the last descriptor releases the flock */
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s->path);
    free(s);
    *sp = NULL;
}

const char *spool_path(const spool_t *s)
{
    return s->path;
}

void spool_sub_name(uint64_t seq, char *buf, size_t cap)
{
    snprintf(buf, cap, "%020" PRIu64 ".sub", seq);
}

/* Strip one trailing newline; the files are written with one so that
 * people can cat them. */
static size_t chomp(const uint8_t *buf, size_t len)
{
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    return len;
}

/* A decimal number of 1..20 digits that fits in 64 bits.  0 or
 * TALLY_EMALFORMED. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return TALLY_EMALFORMED;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TALLY_EMALFORMED;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return TALLY_EMALFORMED;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int spool_dirfd(const spool_t *s)
{
    return s->dirfd;
}

static int64_t mtime_of(spool_t *s, const char *name)
{
    struct stat st;
    if (fstatat(s->dirfd, name, &st, 0) < 0)
        return 0;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

int spool_load_legacy(spool_t *s, uint8_t id[16], bool *have_id, uint64_t *next_seq, bool *have_seq,
                      int64_t *mtime_ms, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    *have_id = *have_seq = false;
    *mtime_ms = 0;
    int rc = fsutil_read_all(s->dirfd, s->path, "client.id", 4096, &buf, &len, err, errlen);
    if (rc == 0) {
        rc = util_unhex((const char *)buf, chomp(buf, len), id, 16);
        free(buf);
        if (rc < 0) {
            text_format(err, errlen, "%s/client.id is corrupt: expected 32 hex digits", s->path);
            return TALLY_EMALFORMED;
        }
        *have_id = true;
        *mtime_ms = mtime_of(s, "client.id");
    } else if (rc != TALLY_ENOTFOUND) {
        return rc == TALLY_ETOOLARGE ? TALLY_EMALFORMED : rc;
    }
    rc = fsutil_read_all(s->dirfd, s->path, "client.seq", 4096, &buf, &len, err, errlen);
    if (rc == 0) {
        rc = parse_u64((const char *)buf, chomp(buf, len), next_seq);
        free(buf);
        if (rc < 0 || *next_seq == 0) {
            text_format(err, errlen, "%s/client.seq is corrupt: expected a number >= 1", s->path);
            return TALLY_EMALFORMED;
        }
        *have_seq = true;
        int64_t t = mtime_of(s, "client.seq");
        if (t > *mtime_ms)
            *mtime_ms = t;
    } else if (rc != TALLY_ENOTFOUND) {
        return rc == TALLY_ETOOLARGE ? TALLY_EMALFORMED : rc;
    }
    return 0;
}

int spool_remove_legacy(spool_t *s, char *err, size_t errlen)
{
    static const char *const names[] = {"client.seq", "client.id"};
    for (size_t i = 0; i < 2; i++)
        if (unlinkat(s->dirfd, names[i], 0) < 0 && errno != ENOENT) {
            text_format(err, errlen, "cannot remove %s/%s: %s", s->path, names[i], strerror(errno));
            return TALLY_EIO;
        }
    return 0;
}

/* Move submission seq, sent under client id, out of the queue into the
 * subdirectory sub (created if missing) as <id>-<seq>.sub, and make both
 * directories durable. */
static int move_aside(spool_t *s, const char *sub, uint64_t seq, const uint8_t id[16], char *path,
                      size_t cap, char *err, size_t errlen)
{
    char from[32], to[96], hex[33];
    spool_sub_name(seq, from, sizeof from);
    util_hex(id, 16, hex);
    /* The id is part of the name: a later id starts again at seq 1. */
    snprintf(to, sizeof to, "%s/%s-%s", sub, hex, from);
    path[0] = '\0';
    if (mkdirat(s->dirfd, sub, 0700) < 0 && errno != EEXIST) {
        text_format(err, errlen, "cannot create directory %s/%s: %s", s->path, sub,
                    strerror(errno));
        return TALLY_EIO;
    }
    if (renameat(s->dirfd, from, s->dirfd, to) < 0) {
        if (errno == ENOENT)
            return 0;
        text_format(err, errlen, "cannot move %s/%s to %s/%s: %s", s->path, from, s->path, to,
                    strerror(errno));
        return TALLY_EIO;
    }
    snprintf(path, cap, "%s/%s", s->path, to);
    /* Both directories on disk before the caller forgets the submission:
     * after a crash it is either still queued (and is set aside again) or
     * set aside, never lost. */
    int fd = openat(s->dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0 || fsync(s->dirfd) < 0) {
        text_format(err, errlen, "cannot sync %s/%s: %s", s->path, sub, strerror(errno));
        if (fd >= 0)
            close(fd);
        return TALLY_EIO;
    }
    close(fd);
    return 0;
}

int spool_move_unknown(spool_t *s, uint64_t seq, const uint8_t id[16], char *path, size_t cap,
                       char *err, size_t errlen)
{
    return move_aside(s, "unknown", seq, id, path, cap, err, errlen);
}

int spool_move_rejected(spool_t *s, uint64_t seq, const uint8_t id[16], char *path, size_t cap,
                        char *err, size_t errlen)
{
    return move_aside(s, "rejected", seq, id, path, cap, err, errlen);
}

int spool_write(spool_t *s, uint64_t seq, const void *body, size_t len, char *err, size_t errlen)
{
    char name[32];
    spool_sub_name(seq, name, sizeof name);
    return atomic_file_write(s->dirfd, s->path, name, body, len, NULL, err, errlen);
}

int spool_remove(spool_t *s, uint64_t seq, char *err, size_t errlen)
{
    char name[32];
    spool_sub_name(seq, name, sizeof name);
    if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT) {
        text_format(err, errlen, "cannot remove %s/%s: %s", s->path, name, strerror(errno));
        return TALLY_EIO;
    }
    /* No fsync of the directory here: if the unlink is lost in a crash the
     * submission is sent again and the daemon answers "duplicate". */
    return 0;
}

int spool_discard(spool_t *s, uint64_t seq, char *err, size_t errlen)
{
    char name[32];
    spool_sub_name(seq, name, sizeof name);
    if (unlinkat(s->dirfd, name, 0) < 0) {
        if (errno == ENOENT)
            return 0;
        text_format(err, errlen, "cannot remove %s/%s: %s", s->path, name, strerror(errno));
        return TALLY_EIO;
    }
    /* Unlike spool_remove's, this unlink is made durable: the submission
     * was never sent, and its figures are said not to be kept.  If the
     * fsync fails the file is gone all the same for every later run; only
     * a crash before the directory reaches the disk could bring it back,
     * and then the next run says it delivers it "left by an earlier run". */
    (void)fsync(s->dirfd);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int spool_list(spool_t *s, uint64_t **seqs, size_t *n, char *err, size_t errlen)
{
    *seqs = NULL;
    *n = 0;
    int fd = dup(s->dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        text_format(err, errlen, "cannot read directory %s: %s", s->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return TALLY_EIO;
    }
    rewinddir(d);
    size_t cap = 0;
    uint64_t *v = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        if (strlen(e->d_name) != 24 || strcmp(e->d_name + 20, ".sub") != 0 ||
            parse_u64(e->d_name, 20, &seq) < 0 || seq == 0)
            continue;
        if (VEC_RESERVE(v, cap, *n + 1) < 0) {
            free(v);
            closedir(d);
            *n = 0;
            return TALLY_ENOMEM;
        }
        v[(*n)++] = seq;
    }
    closedir(d);
    if (*n > 1)
        qsort(v, *n, sizeof *v, cmp_u64);
    *seqs = v;
    return 0;
}

int spool_read(spool_t *s, uint64_t seq, uint8_t **body, size_t *len, char *err, size_t errlen)
{
    char name[32];
    spool_sub_name(seq, name, sizeof name);
    return fsutil_read_all(s->dirfd, s->path, name, SPOOL_SUB_MAX, body, len, err, errlen);
}
