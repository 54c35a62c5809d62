/* b2sums.c - BLAKE2SUMS, the digests of a backup's files (see b2sums.h). */
#include "b2sums.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "atomic_file.h"
#include "text.h"

#define READ_CHUNK (1u << 20) /* bytes per read while hashing */

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > B2SUMS_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/' || s[i] == '\0' || s[i] == '\n' || s[i] == '\r')
            return false;
    return true;
}

bool b2sums_name_valid(const char *name)
{
    return name != NULL && name_ok(name, strnlen(name, B2SUMS_NAME_MAX + 1));
}

/* BLAKE2b-512 of what fd holds from its current position to its end. */
static int hash_fd(int fd, uint8_t out[B2SUMS_BYTES], uint64_t *size, const _Atomic int *cancel)
{
    if (sodium_init() < 0) {
        errno = ENOSYS;
        return -1;
    }
    uint8_t *buf = malloc(READ_CHUNK);
    if (buf == NULL)
        return -1;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, B2SUMS_BYTES);
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        if (cancel != NULL && *cancel) {
            errno = ECANCELED;
            rc = -1;
            break;
        }
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -1;
        if (n <= 0)
            break;
        crypto_generichash_update(&st, buf, (unsigned long long)n);
        total += (uint64_t)n;
    }
    int saved = errno;
    free(buf);
    if (rc == 0)
        crypto_generichash_final(&st, out, B2SUMS_BYTES);
    if (size != NULL)
        *size = total;
    errno = saved;
    return rc;
}

/* The regular file name in dirfd, opened for reading without following
 * a link or blocking on a FIFO.  The descriptor, or -1 with errno
 * (EINVAL: not a regular file). */
static int open_regular(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    int e = fstat(fd, &st) != 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL;
    if (e != 0) {
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int digest_bytes(int dirfd, const char *name, uint8_t out[B2SUMS_BYTES], uint64_t *size,
                        const _Atomic int *cancel)
{
    int fd = open_regular(dirfd, name);
    if (fd < 0)
        return -1;
    int rc = hash_fd(fd, out, size, cancel);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int b2sums_digest(int dirfd, const char *name, char hex[B2SUMS_HEX + 1], uint64_t *size,
                  const _Atomic int *cancel)
{
    uint8_t sum[B2SUMS_BYTES];
    if (digest_bytes(dirfd, name, sum, size, cancel) != 0)
        return -1;
    sodium_bin2hex(hex, B2SUMS_HEX + 1, sum, sizeof sum);
    return 0;
}

int b2sums_write(int dirfd, const char *dirpath, char *const *names, size_t n,
                 const _Atomic int *cancel, b2sums_count_t *count, char *err, size_t errlen)
{
    const char *dp = dirpath != NULL ? dirpath : ".";
    b2sums_count_t c = {0};
    size_t line_max = B2SUMS_HEX + 2 + B2SUMS_NAME_MAX + 1;
    char *text = malloc(n * line_max + 1);
    if (text == NULL) {
        text_format(err, errlen, "out of memory for %s/%s", dp, B2SUMS_FILE);
        return -1;
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!b2sums_name_valid(names[i])) {
            text_format(err, errlen, "%s/%s cannot list the file name '%s'", dp, B2SUMS_FILE,
                        names[i]);
            free(text);
            errno = EINVAL;
            return -1;
        }
        char hex[B2SUMS_HEX + 1];
        uint64_t size;
        if (b2sums_digest(dirfd, names[i], hex, &size, cancel) != 0) {
            int e = errno;
            text_format(err, errlen, "cannot read %s/%s for its digest: %s", dp, names[i],
                        e == EINVAL ? "not a regular file" : strerror(e));
            free(text);
            errno = e;
            return -1;
        }
        len += (size_t)sprintf(text + len, "%s  %s\n", hex, names[i]);
        c.files++;
        c.bytes += size;
    }
    atomic_file_opts_t o = {.mode = 0640};
    int rc = atomic_file_write(dirfd, dp, B2SUMS_FILE, text, len, &o, err, errlen);
    int e = errno;
    free(text);
    if (rc != 0) {
        errno = e;
        return -1;
    }
    if (count != NULL)
        *count = c;
    return 0;
}

/* ---- checking ---- */

typedef struct entry {
    const char *name; /* in the file's text, NUL-terminated */
    unsigned line;
    uint8_t sum[B2SUMS_BYTES];
} entry_t;

typedef struct sums {
    char *text;
    entry_t *v;
    size_t n;
} sums_t;

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->name, ((const entry_t *)b)->name);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* One line "<hex>  <name>" (or b2sum's binary-mode "<hex> *<name>"),
 * without its newline, NUL-terminated in place. */
static bool parse_line(char *s, size_t len, entry_t *e)
{
    if (len < B2SUMS_HEX + 3 || s[B2SUMS_HEX] != ' ' ||
        (s[B2SUMS_HEX + 1] != ' ' && s[B2SUMS_HEX + 1] != '*'))
        return false;
    for (size_t i = 0; i < B2SUMS_BYTES; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        e->sum[i] = (uint8_t)(hi << 4 | lo);
    }
    char *name = s + B2SUMS_HEX + 2;
    size_t nlen = len - (B2SUMS_HEX + 2);
    if (!name_ok(name, nlen))
        return false;
    name[nlen] = '\0';
    e->name = name;
    return true;
}

/* Read and parse dirfd's BLAKE2SUMS.  A B2SUMS_* code (err set unless
 * B2SUMS_OK or B2SUMS_NONE). */
static int read_sums(int dirfd, const char *dp, sums_t *s, char *err, size_t errlen)
{
    int fd = open_regular(dirfd, B2SUMS_FILE);
    if (fd < 0) {
        if (errno == ENOENT)
            return B2SUMS_NONE;
        if (errno == EINVAL || errno == ELOOP) {
            text_format(err, errlen, "%s/%s is not a regular file", dp, B2SUMS_FILE);
            return B2SUMS_DAMAGED;
        }
        text_format(err, errlen, "cannot read %s/%s: %s", dp, B2SUMS_FILE, strerror(errno));
        return B2SUMS_EIO;
    }
    s->text = malloc(B2SUMS_FILE_MAX + 1);
    size_t len = 0;
    int rc = s->text == NULL ? B2SUMS_EIO : B2SUMS_OK;
    while (rc == B2SUMS_OK) {
        ssize_t n = read(fd, s->text + len, B2SUMS_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            text_format(err, errlen, "cannot read %s/%s: %s", dp, B2SUMS_FILE, strerror(errno));
            rc = B2SUMS_EIO;
        }
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len > B2SUMS_FILE_MAX) {
            text_format(err, errlen,
                        "%s/%s is larger than %u bytes: not a list of a backup's files", dp,
                        B2SUMS_FILE, B2SUMS_FILE_MAX);
            rc = B2SUMS_DAMAGED;
        }
    }
    close(fd);
    if (s->text == NULL)
        text_format(err, errlen, "out of memory for %s/%s", dp, B2SUMS_FILE);
    if (rc != B2SUMS_OK)
        return rc;
    s->text[len] = '\0';
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += s->text[i] == '\n';
    s->v = calloc(lines + 1, sizeof *s->v);
    if (s->v == NULL) {
        text_format(err, errlen, "out of memory for %s/%s", dp, B2SUMS_FILE);
        return B2SUMS_EIO;
    }
    unsigned lineno = 0;
    for (size_t at = 0; at < len;) {
        char *nl = memchr(s->text + at, '\n', len - at);
        size_t llen = nl != NULL ? (size_t)(nl - (s->text + at)) : len - at;
        entry_t *e = &s->v[s->n];
        e->line = ++lineno;
        if (!parse_line(s->text + at, llen, e)) {
            text_format(err, errlen,
                        "%s/%s, line %u: not \"<128 hex digits of BLAKE2b-512>  <file name>\"", dp,
                        B2SUMS_FILE, lineno);
            return B2SUMS_DAMAGED;
        }
        s->n++;
        at += llen + 1;
    }
    if (s->n == 0) {
        text_format(err, errlen, "%s/%s lists no file", dp, B2SUMS_FILE);
        return B2SUMS_DAMAGED;
    }
    qsort(s->v, s->n, sizeof *s->v, entry_cmp);
    for (size_t i = 1; i < s->n; i++) {
        const entry_t *a = &s->v[i - 1], *b = &s->v[i];
        if (strcmp(a->name, b->name) != 0)
            continue;
        unsigned first = a->line < b->line ? a->line : b->line;
        text_format(err, errlen, "%s/%s lists %s twice (lines %u and %u)", dp, B2SUMS_FILE, a->name,
                    first, a->line + b->line - first);
        return B2SUMS_DAMAGED;
    }
    return B2SUMS_OK;
}

/* Every regular file of the directory that counted() takes is listed. */
static int none_unlisted(int dirfd, const char *dp, const sums_t *s,
                         bool (*counted)(const char *name), char *err, size_t errlen)
{
    int dfd = dup(dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        text_format(err, errlen, "cannot read the directory %s: %s", dp, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return B2SUMS_EIO;
    }
    rewinddir(d); /* the duplicate shares the original's position */
    int rc = B2SUMS_OK;
    struct dirent *de;
    while (rc == B2SUMS_OK && (de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        struct stat st;
        if (name[0] == '.' || strcmp(name, B2SUMS_FILE) == 0 ||
            (counted != NULL && !counted(name)) ||
            fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        entry_t key = {.name = name};
        if (bsearch(&key, s->v, s->n, sizeof *s->v, entry_cmp) == NULL) {
            text_format(err, errlen,
                        "%s/%s is not in %s: it was not part of the backup (added since, or "
                        "left by a program that opened the copy); move it away",
                        dp, name, B2SUMS_FILE);
            rc = B2SUMS_DAMAGED;
        }
    }
    closedir(d);
    return rc;
}

int b2sums_check(int dirfd, const char *dirpath, bool (*counted)(const char *name),
                 const _Atomic int *cancel, b2sums_count_t *count, char *err, size_t errlen)
{
    const char *dp = dirpath != NULL ? dirpath : ".";
    text_format(err, errlen, "%s", "");
    sums_t s = {0};
    b2sums_count_t c = {0};
    int rc = read_sums(dirfd, dp, &s, err, errlen);
    if (rc == B2SUMS_OK)
        rc = none_unlisted(dirfd, dp, &s, counted, err, errlen);
    for (size_t i = 0; rc == B2SUMS_OK && i < s.n; i++) {
        const entry_t *e = &s.v[i];
        uint8_t sum[B2SUMS_BYTES];
        uint64_t size = 0;
        if (digest_bytes(dirfd, e->name, sum, &size, cancel) != 0) {
            if (errno == ECANCELED) {
                rc = B2SUMS_CANCELLED;
                text_format(err, errlen, "checking %s was cancelled", dp);
            } else if (errno == ENOENT) {
                rc = B2SUMS_DAMAGED;
                text_format(err, errlen, "%s/%s is missing (%s lists it)", dp, e->name,
                            B2SUMS_FILE);
            } else if (errno == EINVAL || errno == ELOOP) {
                rc = B2SUMS_DAMAGED;
                text_format(err, errlen, "%s/%s is not a regular file", dp, e->name);
            } else {
                rc = B2SUMS_EIO;
                text_format(err, errlen, "cannot read %s/%s: %s", dp, e->name, strerror(errno));
            }
        } else if (memcmp(sum, e->sum, sizeof sum) != 0) {
            rc = B2SUMS_DAMAGED;
            text_format(err, errlen,
                        "%s/%s differs from its digest in %s (%llu bytes): damaged, or changed "
                        "since the backup was written",
                        dp, e->name, B2SUMS_FILE, (unsigned long long)size);
        } else {
            c.files++;
            c.bytes += size;
        }
    }
    free(s.v);
    free(s.text);
    if (count != NULL)
        *count = rc == B2SUMS_OK ? c : (b2sums_count_t){0};
    return rc;
}
