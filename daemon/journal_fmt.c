/* journal_fmt.c - on-disk format and segment files of the journal. */
#include "journal_fmt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "crc32c.h"
#include "vec.h"

/* Header layout offsets; see journal.h. */
enum {
    HDR_VERSION = 8,
    HDR_SIZE = 12,
    HDR_GEN = 16,
    HDR_START = 24,
    HDR_CREATED = 32,
    HDR_FLAGS = 40,
    HDR_CRC = 44,
};

void journal_fmt_header_encode(uint8_t out[JOURNAL_HEADER_SIZE], uint64_t gen, uint64_t start_pos,
                               int64_t created_ms)
{
    memcpy(out, JOURNAL_MAGIC, 8);
    journal_fmt_put32(out + HDR_VERSION, JOURNAL_FORMAT_VERSION);
    journal_fmt_put32(out + HDR_SIZE, JOURNAL_HEADER_SIZE);
    journal_fmt_put64(out + HDR_GEN, gen);
    journal_fmt_put64(out + HDR_START, start_pos);
    journal_fmt_put64(out + HDR_CREATED, (uint64_t)created_ms);
    journal_fmt_put32(out + HDR_FLAGS, 0);
    journal_fmt_put32(out + HDR_CRC, crc32c(0, out, HDR_CRC));
}

int journal_fmt_header_decode(const uint8_t *buf, size_t n, const char *name, uint64_t gen,
                              journal_fmt_header_t *h, char *err, size_t errlen)
{
    if (n < 12 || memcmp(buf, JOURNAL_MAGIC, 8) != 0) {
        snprintf(err, errlen, "%s: not a tally journal segment (%s)", name,
                 n < 12 ? "shorter than its header" : "bad magic");
        return TALLY_EIO;
    }
    /* Any version keeps the header size at offset 12 and a CRC of the
     * header in its last 4 bytes (journal.h): the CRC is checked first, so
     * damage is reported as damage, and only an intact header's version is
     * judged. */
    uint32_t size = journal_fmt_get32(buf + HDR_SIZE);
    if (size < 16 || size > JOURNAL_HEADER_MAX || size > n) {
        snprintf(err, errlen,
                 "%s: the header is damaged (its size field says %" PRIu32
                 " bytes, the file holds %zu)",
                 name, size, n);
        return TALLY_EIO;
    }
    uint32_t want = journal_fmt_get32(buf + size - 4);
    uint32_t got = crc32c(0, buf, size - 4);
    if (want != got) {
        snprintf(err, errlen,
                 "%s: header checksum mismatch (stored 0x%08" PRIx32 ", computed 0x%08" PRIx32
                 "): the header is damaged",
                 name, want, got);
        return TALLY_EIO;
    }
    h->version = journal_fmt_get32(buf + HDR_VERSION);
    if (h->version != JOURNAL_FORMAT_VERSION) {
        snprintf(err, errlen,
                 "%s: format version %" PRIu32 " is %s; this tallyd reads version %d only and "
                 "refuses to misread it",
                 name, h->version, h->version > JOURNAL_FORMAT_VERSION ? "newer" : "unknown",
                 JOURNAL_FORMAT_VERSION);
        return TALLY_ECONFIG;
    }
    h->gen = journal_fmt_get64(buf + HDR_GEN);
    h->start_pos = journal_fmt_get64(buf + HDR_START);
    h->created_ms = (int64_t)journal_fmt_get64(buf + HDR_CREATED);
    if (size != JOURNAL_HEADER_SIZE) {
        snprintf(err, errlen, "%s: header size %" PRIu32 " (expected %d for version %d)", name,
                 size, JOURNAL_HEADER_SIZE, JOURNAL_FORMAT_VERSION);
        return TALLY_EIO;
    }
    if (h->gen != gen) {
        snprintf(err, errlen,
                 "%s: header says generation %016" PRIx64 ", the file name %016" PRIx64
                 "; the file was renamed or copied",
                 name, h->gen, gen);
        return TALLY_EIO;
    }
    return 0;
}

uint32_t journal_fmt_record_crc(const uint8_t *hdr, const void *payload, uint32_t len)
{
    uint32_t c = crc32c(0, hdr + 4, 4); /* length */
    c = crc32c(c, hdr + 12, 8);         /* position */
    return crc32c(c, payload, len);
}

void journal_fmt_record_header(uint8_t *out, const void *payload, uint32_t len, uint64_t pos)
{
    journal_fmt_put32(out, JOURNAL_RECORD_MAGIC);
    journal_fmt_put32(out + 4, len);
    journal_fmt_put64(out + 12, pos);
    journal_fmt_put32(out + 8, journal_fmt_record_crc(out, payload, len));
}

void journal_segment_name(char out[JOURNAL_NAME_MAX], uint64_t gen)
{
    snprintf(out, JOURNAL_NAME_MAX, "journal-%016" PRIx64 ".tj", gen);
}

bool journal_fmt_parse_name(const char *name, uint64_t *gen)
{
    /* Exactly "journal-" + 16 hex digits + ".tj": temporary files and files
     * an operator moved aside (".tj.bad") must never be read as segments. */
    if (strlen(name) != 27 || memcmp(name, "journal-", 8) != 0 || strcmp(name + 24, ".tj") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 8; i < 24; i++) {
        char c = name[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *gen = v;
    return true;
}

int journal_fmt_path(char *out, size_t n, const char *dir, uint64_t gen, const char *suffix)
{
    char name[JOURNAL_NAME_MAX];
    journal_segment_name(name, gen);
    int w = snprintf(out, n, "%s/%s%s", dir, name, suffix ? suffix : "");
    return (w < 0 || (size_t)w >= n) ? TALLY_EINVAL : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int journal_fmt_list(const char *dir, uint64_t **gens, size_t *count, char *err, size_t errlen)
{
    *gens = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "journal directory %s: %s", dir, strerror(errno));
        return TALLY_EIO;
    }
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        uint64_t g;
        if (!journal_fmt_parse_name(e->d_name, &g))
            continue;
        if (VEC_RESERVE(v, cap, n + 1) != 0) {
            free(v);
            closedir(d);
            snprintf(err, errlen, "journal directory %s: out of memory listing segments", dir);
            return TALLY_ENOMEM;
        }
        v[n++] = g;
    }
    int rerr = errno;
    closedir(d);
    if (rerr != 0) {
        free(v);
        snprintf(err, errlen, "journal directory %s: %s", dir, strerror(rerr));
        return TALLY_EIO;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_u64);
    *gens = v;
    *count = n;
    return 0;
}

int journal_fmt_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* One file remove_before() deletes: a segment or its temporary file. */
typedef struct doomed {
    uint64_t gen;
    bool tmp;
} doomed_t;

int journal_remove_before(const char *dir, uint64_t gen, unsigned *removed)
{
    if (removed)
        *removed = 0;
    DIR *d = opendir(dir);
    if (!d)
        return TALLY_EIO;
    /* Names are collected first and deleted afterwards, because POSIX
     * leaves readdir() unspecified while the directory changes. */
    doomed_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char name[JOURNAL_NAME_MAX];
        size_t len = strlen(e->d_name);
        /* Temporary files of older segments can only be the remains of a
         * crash while that segment was being created: they go too. */
        bool tmp = len == 27 + strlen(JOURNAL_TMP_SUFFIX) &&
                   strcmp(e->d_name + 27, JOURNAL_TMP_SUFFIX) == 0;
        if (len != 27 && !tmp)
            continue;
        memcpy(name, e->d_name, 27);
        name[27] = '\0';
        uint64_t g;
        if (!journal_fmt_parse_name(name, &g) || g >= gen)
            continue;
        if (VEC_RESERVE(v, cap, n + 1) != 0) {
            rc = TALLY_ENOMEM;
            break;
        }
        v[n++] = (doomed_t){g, tmp};
    }
    closedir(d);
    unsigned count = 0;
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        if (journal_fmt_path(path, sizeof(path), dir, v[i].gen,
                             v[i].tmp ? JOURNAL_TMP_SUFFIX : NULL) != 0 ||
            (unlink(path) != 0 && errno != ENOENT)) {
            rc = rc ? rc : TALLY_EIO;
            continue;
        }
        count += !v[i].tmp;
    }
    free(v);
    if (n > 0 && journal_fmt_sync_dir(dir) != 0)
        rc = rc ? rc : TALLY_EIO;
    if (removed)
        *removed = count;
    return rc;
}
