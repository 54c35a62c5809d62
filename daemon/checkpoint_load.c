/* checkpoint_load.c - checking and loading checkpoint files (see
 * checkpoint.h); checkpoint.c builds and stores them. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_impl.h"
#include "crc32c.h"
#include "tally_error.h"
#include "vec.h"

/* ---- loading ---- */

/* Open file name of dfd (AT_FDCWD: name is a path) and give its size.
 * Returns the descriptor, or -1 with why set. */
static int open_sized(int dfd, const char *name, size_t *size, char *why, size_t whylen)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, whylen, "cannot open it: %s", strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *size = (size_t)st.st_size;
    return fd;
}

/* Read file name of dfd whole into *out (malloc()ed) and *len.  Returns 0,
 * or TALLY_EIO / TALLY_ENOMEM with why set. */
static int read_file(int dfd, const char *name, uint8_t **out, size_t *len, char *why,
                     size_t whylen)
{
    *out = NULL;
    size_t size = 0, got = 0;
    int fd = open_sized(dfd, name, &size, why, whylen);
    if (fd < 0) {
        return TALLY_EIO;
    }
    uint8_t *p = malloc(size ? size : 1);
    if (p == NULL) {
        close(fd);
        snprintf(why, whylen, "no memory to read its %zu bytes", size);
        return TALLY_ENOMEM;
    }
    while (got < size) {
        ssize_t r = read(fd, p + got, size - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            snprintf(why, whylen, "cannot read it: %s", r < 0 ? strerror(errno) : "short read");
            free(p);
            close(fd);
            return TALLY_EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    *out = p;
    *len = size;
    return 0;
}

/* verify()'s first check, of a file of len bytes beginning with p (at
 * least its first 8 bytes when len allows). */
static int verify_magic(const uint8_t *p, size_t len, char *why, size_t whylen)
{
    if (len < CHECKPOINT_HEADER_SIZE + TRAILER || memcmp(p, MAGIC, 8) != 0) {
        snprintf(why, whylen, "%s (%zu bytes)",
                 len >= 8 && memcmp(p, MAGIC, 8) == 0 ? "truncated, shorter than its header"
                                                      : "not a checkpoint: no TALLYCKP magic",
                 len);
        return TALLY_EIO;
    }
    return 0;
}

/* The CRC did not hold: say whether the file is torn or damaged. */
static int crc_mismatch(const uint8_t *p, size_t len, char *why, size_t whylen)
{
    uint64_t size = rd64(p + 16);
    if (size != len) {
        snprintf(why, whylen, "truncated or torn: %zu bytes on disk, its header says %" PRIu64, len,
                 size);
    } else {
        snprintf(why, whylen, "CRC-32C mismatch: the contents are damaged");
    }
    return TALLY_EIO;
}

/* verify()'s checks of the header, once the CRC held: p holds the header
 * of a file of len bytes. */
static int verify_header(const uint8_t *p, size_t len, char *why, size_t whylen)
{
    uint32_t version = rd32(p + 8);
    if (version < CHECKPOINT_FORMAT_OLDEST || version > CHECKPOINT_FORMAT_VERSION) {
        snprintf(why, whylen,
                 "has format version %u; this tallyd reads versions %u to %u (written by a newer "
                 "tallyd? upgrade, or move the file away to fall back on older state)",
                 version, CHECKPOINT_FORMAT_OLDEST, CHECKPOINT_FORMAT_VERSION);
        return TALLY_ECONFIG;
    }
    if (rd32(p + 12) != CHECKPOINT_HEADER_SIZE || rd64(p + 16) != len ||
        rd32(p + 56) != NSECTIONS) {
        snprintf(why, whylen, "malformed header (size, length or section count)");
        return TALLY_EIO;
    }
    return 0;
}

/* Check that p[0..len) is an intact checkpoint file: 0, TALLY_EIO with
 * why set (damage), or TALLY_ECONFIG (intact, another format version). */
static int verify(const uint8_t *p, size_t len, char *why, size_t whylen)
{
    int rc = verify_magic(p, len, why, whylen);
    if (rc != 0) {
        return rc;
    }
    if (crc32c(0, p, len - TRAILER) != rd32(p + len - TRAILER)) {
        return crc_mismatch(p, len, why, whylen);
    }
    return verify_header(p, len, why, whylen);
}

int checkpoint_check_file(const char *dir, const char *name, checkpoint_meta_t *meta, char *why,
                          size_t whylen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        snprintf(why, whylen, "the path is too long");
        return TALLY_EINVAL;
    }
    size_t size = 0;
    int fd = open_sized(AT_FDCWD, path, &size, why, whylen);
    if (fd < 0) {
        return TALLY_EIO;
    }
    /* verify(), with the CRC computed a chunk at a time: a checkpoint may be
     * hundreds of MB. */
    uint8_t head[CHECKPOINT_HEADER_SIZE];
    size_t n = size < sizeof(head) ? size : sizeof(head);
    int rc = 0;
    if (pread(fd, head, n, 0) != (ssize_t)n) {
        snprintf(why, whylen, "cannot read it: %s", strerror(errno));
        rc = TALLY_EIO;
    }
    if (rc == 0) {
        rc = verify_magic(head, size, why, whylen);
    }
    uint8_t *buf = rc == 0 ? malloc(1 << 20) : NULL;
    if (rc == 0 && buf == NULL) {
        snprintf(why, whylen, "no memory to read it");
        rc = TALLY_ENOMEM;
    }
    uint32_t crc = 0;
    for (size_t at = 0; rc == 0 && at < size - TRAILER;) {
        size_t want = size - TRAILER - at < (1u << 20) ? size - TRAILER - at : (1u << 20);
        ssize_t r = pread(fd, buf, want, (off_t)at);
        if (r <= 0) {
            snprintf(why, whylen, "cannot read it: %s", r < 0 ? strerror(errno) : "short read");
            rc = TALLY_EIO;
            break;
        }
        crc = crc32c(crc, buf, (size_t)r);
        at += (size_t)r;
    }
    uint8_t tail[TRAILER];
    if (rc == 0 && pread(fd, tail, TRAILER, (off_t)(size - TRAILER)) != TRAILER) {
        snprintf(why, whylen, "cannot read its last bytes");
        rc = TALLY_EIO;
    }
    if (rc == 0) {
        rc = crc != rd32(tail) ? crc_mismatch(head, size, why, whylen)
                               : verify_header(head, size, why, whylen);
    }
    free(buf);
    close(fd);
    if (rc == 0 && meta != NULL) {
        meta->created_ms = (int64_t)rd64(head + 24);
        meta->journal_gen = rd64(head + 32);
        meta->next_pos = rd64(head + 40);
        meta->publish_seq = rd64(head + 48);
    }
    return rc;
}

/* Add the names of a TOWN or METR section to the empty table in. */
static int load_names(const uint8_t *p, size_t len, intern_t *in, const char *what, char *why,
                      size_t whylen)
{
    if (len < 4) {
        snprintf(why, whylen, "the %s section is truncated", what);
        return TALLY_EIO;
    }
    uint32_t n = rd32(p);
    size_t at = 4;
    for (uint32_t id = 1; id <= n; id++) {
        if (at >= len || len - at - 1 < p[at]) {
            snprintf(why, whylen, "the %s section ends inside name %u of %u", what, id, n);
            return TALLY_EIO;
        }
        uint8_t l = p[at];
        int got = intern_add(in, (const char *)p + at + 1, l);
        if (got == TALLY_ESERIESLIMIT) {
            snprintf(why, whylen, "it holds %u %s names, above the configured limit of %u", n, what,
                     in->capacity);
            return TALLY_ECONFIG;
        }
        if (got != (int)id) {
            snprintf(
                why, whylen, "%s name %u ('%.*s') %s", what, id, (int)l, (const char *)p + at + 1,
                got == TALLY_ENOMEM ? "cannot be stored: out of memory" : "is invalid or repeated");
            return got == TALLY_ENOMEM ? got : TALLY_EIO;
        }
        at += 1 + (size_t)l;
    }
    if (at != len) {
        snprintf(why, whylen, "the %s section has %zu bytes after its last name", what, len - at);
        return TALLY_EIO;
    }
    return 0;
}

typedef struct ids {
    uint32_t ntowns, nmetrics;
    engine_item_t bad;
} ids_t;

static int check_ids(void *ctx, const engine_item_t *it)
{
    ids_t *c = ctx;
    if (it->metric > c->nmetrics || it->town > c->ntowns) {
        c->bad = *it;
        return TALLY_EIO;
    }
    return 0;
}

/* The DDUP section of a file of format version; a version 1 record has
 * no last submission time: created_ms (the checkpoint's) stands for it,
 * which is no earlier than the client's last submission. */
static int load_clients(const uint8_t *p, size_t len, uint32_t version, int64_t created_ms,
                        dedup_t *dd, char *why, size_t whylen)
{
    size_t rec = version >= 2 ? DEDUP_REC : DEDUP_REC_V1;
    uint32_t n = len >= 4 ? rd32(p) : 0;
    if (len < 4 || (len - 4) / rec != n || (len - 4) % rec != 0) {
        snprintf(why, whylen, "the DDUP section's %zu bytes do not hold its %u clients", len, n);
        return TALLY_EIO;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *r = p + 4 + (size_t)i * rec;
        dedup_entry_t en;
        memcpy(en.id, r, PROTO_CLIENT_ID_LEN);
        r += PROTO_CLIENT_ID_LEN;
        en.high = rd64(r);
        r += 8;
        en.last_ms = created_ms;
        if (version >= 2) {
            en.last_ms = (int64_t)rd64(r);
            r += 8;
        }
        for (int w = 0; w < DEDUP_WORDS; w++)
            en.bits[w] = rd64(r + 8 * w);
        int rc = en.high == 0 ? TALLY_EINVAL : dedup_restore(dd, &en);
        if (rc == TALLY_ECLIENTLIMIT) {
            snprintf(why, whylen, "it tracks %u client ids, above max_clients (%u)", n, dd->max);
            return TALLY_ECONFIG;
        }
        if (rc != 0) {
            snprintf(why, whylen, "client %u of %u cannot be restored: %s", i + 1, n,
                     tally_strerror(rc));
            return rc == TALLY_ENOMEM ? rc : TALLY_EIO;
        }
    }
    return 0;
}

/* The sections of the verified image p[0..len): the payload of each and its
 * length.  Returns 0 or TALLY_EIO with why set. */
static int split(const uint8_t *p, size_t len, const uint8_t *sec[NSECTIONS],
                 size_t seclen[NSECTIONS], char *why, size_t whylen)
{
    size_t at = CHECKPOINT_HEADER_SIZE, end = len - TRAILER;
    for (int i = 0; i < NSECTIONS; i++) {
        if (end - at < SECTION_HDR || memcmp(p + at, checkpoint_tags[i], 4) != 0 ||
            rd64(p + at + 4) > end - at - SECTION_HDR) {
            snprintf(why, whylen, "section %d is not a whole \"%s\" section", i + 1,
                     checkpoint_tags[i]);
            return TALLY_EIO;
        }
        seclen[i] = (size_t)rd64(p + at + 4);
        sec[i] = p + at + SECTION_HDR;
        at += SECTION_HDR + seclen[i];
    }
    if (at != end) {
        snprintf(why, whylen, "%zu stray bytes after the last section", end - at);
        return TALLY_EIO;
    }
    return 0;
}

/* Load the verified image p[0..len) into the empty structures. */
static int load_image(const uint8_t *p, size_t len, checkpoint_meta_t *meta, intern_t *towns,
                      intern_t *metrics, engine_t *e, dedup_t *dd, char *why, size_t whylen)
{
    const uint8_t *sec[NSECTIONS];
    size_t seclen[NSECTIONS];
    if (split(p, len, sec, seclen, why, whylen) != 0)
        return TALLY_EIO;
    int rc = load_names(sec[0], seclen[0], towns, "township", why, whylen);
    if (rc == 0) {
        rc = load_names(sec[1], seclen[1], metrics, "metric", why, whylen);
    }
    if (rc == 0) {
        rc = engine_load(e, sec[2], seclen[2], why, whylen);
    }
    if (rc != 0) {
        return rc;
    }
    /* Every id the engine uses must have a name, or publishing would meet
     * a series it cannot name. */
    ids_t c = {intern_count(towns), intern_count(metrics), {0}};
    bool defs_ok = e->nmetrics <= c.nmetrics + 1;
    if (!defs_ok || engine_foreach(e, check_ids, &c) != 0) {
        snprintf(why, whylen,
                 "the engine uses metric id %u / township id %u, but only %u metric and %u "
                 "township names are saved",
                 defs_ok ? c.bad.metric : e->nmetrics - 1, defs_ok ? c.bad.town : 0, c.nmetrics,
                 c.ntowns);
        return TALLY_EIO;
    }
    rc = load_clients(sec[3], seclen[3], rd32(p + 8), (int64_t)rd64(p + 24), dd, why, whylen);
    if (rc != 0) {
        return rc;
    }
    meta->created_ms = (int64_t)rd64(p + 24);
    meta->journal_gen = rd64(p + 32);
    meta->next_pos = rd64(p + 40);
    meta->publish_seq = rd64(p + 48);
    meta->version = rd32(p + 8);
    return 0;
}

/* Append "; " and line to the notes. */
static void note(char *notes, size_t len, const char *line)
{
    size_t used = strlen(notes);
    snprintf(notes + used, len - used, "%s%s", used ? "; " : "", line);
}

int checkpoint_load_latest(const char *dir, checkpoint_meta_t *meta, intern_t *towns,
                           intern_t *metrics, engine_t *e, dedup_t *dd, char *err, size_t errlen)
{
    clear(err, errlen);
    if (intern_count(towns) != 0 || intern_count(metrics) != 0 || engine_series_count(e) != 0 ||
        dedup_count(dd) != 0) {
        SAY("checkpoint_load_latest: load into empty tables (%u townships, %u metrics, %u series, "
            "%u clients held); declare the catalog after loading",
            intern_count(towns), intern_count(metrics), engine_series_count(e), dedup_count(dd));
        return TALLY_EINVAL;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int rc = errno == ENOENT ? TALLY_ENOTFOUND : TALLY_EIO;
        SAY("checkpoint: cannot open the state directory %s: %s", dir, strerror(errno));
        return rc;
    }
    checkpoint_remove_temps(dfd);
    uint64_t *gens;
    size_t n;
    int rc = checkpoint_list_gens(dfd, &gens, &n);
    if (rc != 0) {
        SAY("checkpoint: cannot list the state directory %s: %s", dir,
            rc == TALLY_ENOMEM ? "out of memory" : strerror(errno));
        free(gens);
        close(dfd);
        return rc;
    }
    char notes[1024] = "";
    char why[512];
    rc = TALLY_ENOTFOUND;
    size_t i = 0;
    for (; i < n; i++) {
        char name[CHECKPOINT_NAME_MAX];
        checkpoint_file_name(name, gens[i]);
        uint8_t *p;
        size_t len;
        why[0] = '\0';
        rc = read_file(dfd, name, &p, &len, why, sizeof(why));
        bool damaged = false;
        if (rc == 0) {
            rc = verify(p, len, why, sizeof(why));
            damaged = rc == TALLY_EIO;
        }
        if (rc == 0) {
            rc = load_image(p, len, meta, towns, metrics, e, dd, why, sizeof(why));
            free(p);
            if (rc != 0) {
                SAY("checkpoint %s/%s: %s", dir, name, why);
                break;
            }
            if (notes[0] != '\0') {
                SAY("%s; loaded %s/%s instead", notes, dir, name);
            }
            break;
        }
        free(p);
        if (rc != TALLY_EIO) {
            /* A newer format version, or no memory: older files would be
             * no better, and loading one would go back in time. */
            SAY("checkpoint %s/%s%s%s", dir, name, rc == TALLY_ECONFIG ? " " : ": ", why);
            break;
        }
        /* Falling back loses nothing: the journal is kept from the older
         * checkpoint on (see checkpoint_store).  A damaged file is set
         * aside under another name, so that it is never read again nor
         * kept as the fallback of a later checkpoint, but stays for
         * inspection; one that could not be read is left where it is. */
        char aside[CHECKPOINT_NAME_MAX + sizeof(DAMAGED_SUFFIX)];
        snprintf(aside, sizeof(aside), "%s" DAMAGED_SUFFIX, name);
        bool moved = damaged && renameat(dfd, name, dfd, aside) == 0;
        char line[sizeof(why) + 128];
        int k = snprintf(line, sizeof(line), "skipped %s checkpoint %s: %s",
                         damaged ? "damaged" : "unreadable", name, why);
        if (moved && k > 0 && (size_t)k < sizeof(line)) {
            snprintf(line + k, sizeof(line) - (size_t)k, " (renamed to %s)", aside);
        }
        note(notes, sizeof(notes), line);
    }
    if (n == 0) {
        SAY("no checkpoint in %s", dir);
    } else if (i == n) {
        SAY("no usable checkpoint in %s: %s", dir, notes);
        rc = TALLY_EIO;
    }
    free(gens);
    close(dfd);
    return rc;
}

void checkpoint_image_free(checkpoint_image_t *img)
{
    free(img->buf);
    memset(img, 0, sizeof(*img));
}

int checkpoint_read_latest(const char *dir, checkpoint_image_t *img, intern_t *towns,
                           intern_t *metrics, char *err, size_t errlen)
{
    clear(err, errlen);
    memset(img, 0, sizeof(*img));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int rc = errno == ENOENT ? TALLY_ENOTFOUND : TALLY_EIO;
        SAY("cannot open the state directory %s: %s", dir, strerror(errno));
        return rc;
    }
    uint64_t *gens;
    size_t n;
    int rc = checkpoint_list_gens(dfd, &gens, &n);
    if (rc != 0) {
        SAY("cannot list the state directory %s: %s", dir,
            rc == TALLY_ENOMEM ? "out of memory" : strerror(errno));
        free(gens);
        close(dfd);
        return rc;
    }
    /* As checkpoint_load_latest() goes, newest first past damaged files,
     * but changing nothing: a tallyd may be writing the next one. */
    char notes[1024] = "", why[512];
    rc = TALLY_ENOTFOUND;
    size_t i = 0;
    for (; i < n; i++) {
        checkpoint_file_name(img->name, gens[i]);
        why[0] = '\0';
        rc = read_file(dfd, img->name, &img->buf, &img->len, why, sizeof(why));
        if (rc == 0) {
            rc = verify(img->buf, img->len, why, sizeof(why));
        }
        if (rc == 0) {
            /* An intact file the start would take: what is wrong in it
             * now stops the start too (checkpoint_load_latest). */
            const uint8_t *sec[NSECTIONS];
            size_t seclen[NSECTIONS];
            rc = split(img->buf, img->len, sec, seclen, why, sizeof(why));
            if (rc == 0) {
                rc = load_names(sec[0], seclen[0], towns, "township", why, sizeof(why));
            }
            if (rc == 0) {
                rc = load_names(sec[1], seclen[1], metrics, "metric", why, sizeof(why));
            }
            if (rc != 0) {
                SAY("checkpoint %s/%s: %s", dir, img->name, why);
                break;
            }
            img->engine = sec[2];
            img->engine_len = seclen[2];
            if (notes[0] != '\0') {
                SAY("%s; read %s/%s instead", notes, dir, img->name);
            }
            break;
        }
        free(img->buf);
        img->buf = NULL;
        if (rc != TALLY_EIO) {
            SAY("checkpoint %s/%s%s%s", dir, img->name, rc == TALLY_ECONFIG ? " " : ": ", why);
            break;
        }
        /* A file removed meanwhile (a newer checkpoint was stored) reads
         * as unreadable, as a damaged one does: the next is tried. */
        char line[sizeof(why) + 64];
        snprintf(line, sizeof(line), "skipped checkpoint %s: %s", img->name, why);
        note(notes, sizeof(notes), line);
    }
    if (n == 0) {
        SAY("no checkpoint in %s", dir);
    } else if (i == n) {
        SAY("no usable checkpoint in %s: %s", dir, notes);
        rc = TALLY_EIO;
    }
    free(gens);
    close(dfd);
    if (rc != 0) {
        checkpoint_image_free(img);
    }
    return rc;
}
