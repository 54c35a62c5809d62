/* checkpoint.c - durable snapshots of tallyd's state (see checkpoint.h).
 *
 * All file work goes through a descriptor of the state directory (openat,
 * renameat, unlinkat), so the directory is named once and a path is only
 * ever put together for a message.
 */
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

#include "atomic_file.h"
#include "crc32c.h"
#include "tally_error.h"
#include "vec.h"
#include "checkpoint_impl.h"

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

void checkpoint_file_name(char out[CHECKPOINT_NAME_MAX], uint64_t gen)
{
    snprintf(out, CHECKPOINT_NAME_MAX, "state-%016" PRIx64 ".ckp", gen);
}

bool checkpoint_parse_name(const char *name, const char *suffix, uint64_t *gen)
{
    if (strncmp(name, "state-", 6) != 0 || strncmp(name + 22, ".ckp", 4) != 0 ||
        strcmp(name + NAME_LEN, suffix) != 0) {
        return false;
    }
    uint64_t g = 0;
    for (int i = 6; i < 22; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) {
            return false;
        }
        g = g << 4 | (uint64_t)d;
    }
    *gen = g;
    return true;
}

const char checkpoint_tags[NSECTIONS][5] = {"TOWN", "METR", "ENGN", "DDUP"};

/* ---- building ---- */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} buf_t;

static void put(buf_t *b, const void *src, size_t k)
{
    if (b->oom) {
        return;
    }
    if (VEC_RESERVE(b->p, b->cap, b->n + k) != 0) {
        b->oom = true;
        return;
    }
    memcpy(b->p + b->n, src, k);
    b->n += k;
}

static void put32(buf_t *b, uint32_t v)
{
    uint8_t x[4];
    wr32(x, v);
    put(b, x, 4);
}

static void put64(buf_t *b, uint64_t v)
{
    uint8_t x[8];
    wr64(x, v);
    put(b, x, 8);
}

/* Start a section; returns where its length goes. */
static size_t section_begin(buf_t *b, int i)
{
    put(b, checkpoint_tags[i], 4);
    size_t at = b->n;
    put64(b, 0);
    return at;
}

static void section_end(buf_t *b, size_t at)
{
    if (!b->oom) {
        wr64(b->p + at, b->n - at - 8);
    }
}

static void put_names(buf_t *b, const intern_t *in)
{
    uint32_t n = intern_count(in);
    put32(b, n);
    for (uint32_t id = 1; id <= n; id++) {
        uint32_t len;
        const char *s = intern_name(in, id, &len);
        uint8_t l = (uint8_t)len;
        put(b, &l, 1);
        put(b, s, len);
    }
}

static int engine_sink(void *ctx, const void *p, size_t len)
{
    buf_t *b = ctx;
    put(b, p, len);
    return b->oom ? TALLY_ENOMEM : 0;
}

typedef struct clients_out {
    buf_t *b;
    const checkpoint_unmark_t *unmark; /* sorted by key */
    size_t nunmark;
} clients_out_t;

static int cmp_unmark(const void *a, const void *b)
{
    return memcmp(((const checkpoint_unmark_t *)a)->key, ((const checkpoint_unmark_t *)b)->key,
                  PROTO_CLIENT_ID_LEN);
}

/* en without the marks to leave out, into *out. */
static const dedup_entry_t *without_unmarked(const clients_out_t *c, const dedup_entry_t *en,
                                             dedup_entry_t *out)
{
    size_t lo = 0, hi = c->nunmark;
    while (lo < hi) { /* the first unmark with key >= en->id */
        size_t mid = (lo + hi) / 2;
        if (memcmp(c->unmark[mid].key, en->id, PROTO_CLIENT_ID_LEN) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->nunmark || memcmp(c->unmark[lo].key, en->id, PROTO_CLIENT_ID_LEN) != 0)
        return en;
    *out = *en;
    for (; lo < c->nunmark && memcmp(c->unmark[lo].key, en->id, PROTO_CLIENT_ID_LEN) == 0; lo++) {
        uint64_t seq = c->unmark[lo].seq;
        if (seq <= out->high && out->high - seq < DEDUP_WINDOW) {
            uint64_t off = out->high - seq;
            out->bits[off / 64] &= ~(1ULL << (off % 64));
        }
    }
    return out;
}

static void put_client(const dedup_entry_t *en, void *ctx)
{
    const clients_out_t *c = ctx;
    buf_t *b = c->b;
    dedup_entry_t copy;
    en = without_unmarked(c, en, &copy);
    put(b, en->id, PROTO_CLIENT_ID_LEN);
    put64(b, en->high);
    put64(b, (uint64_t)en->last_ms);
    for (int i = 0; i < DEDUP_WORDS; i++) {
        put64(b, en->bits[i]);
    }
}

int checkpoint_build(const checkpoint_meta_t *meta, const intern_t *towns, const intern_t *metrics,
                     const engine_t *e, const dedup_t *dd, void **buf_out, size_t *len_out,
                     char *err, size_t errlen)
{
    return checkpoint_build_except(meta, towns, metrics, e, dd, NULL, 0, buf_out, len_out, err,
                                   errlen);
}

int checkpoint_build_except(const checkpoint_meta_t *meta, const intern_t *towns,
                            const intern_t *metrics, const engine_t *e, const dedup_t *dd,
                            checkpoint_unmark_t *unmark, size_t n, void **buf_out, size_t *len_out,
                            char *err, size_t errlen)
{
    if (n > 1)
        qsort(unmark, n, sizeof(*unmark), cmp_unmark);
    clear(err, errlen);
    /* A guess at the size, so a large state is not copied a dozen times
     * while it grows: ~40 bytes per series, a record per client. */
    buf_t b = {NULL, 0,
               65536 + (size_t)engine_series_count(e) * 48 + (size_t)dedup_count(dd) * DEDUP_REC +
                   ((size_t)intern_count(towns) + intern_count(metrics)) * 24,
               false};
    b.p = malloc(b.cap);
    if (b.p == NULL) {
        SAY("no memory for a checkpoint of %zu bytes", b.cap);
        return TALLY_ENOMEM;
    }
    uint8_t h[CHECKPOINT_HEADER_SIZE] = {0};
    memcpy(h, MAGIC, 8);
    wr32(h + 8, CHECKPOINT_FORMAT_VERSION);
    wr32(h + 12, CHECKPOINT_HEADER_SIZE);
    wr64(h + 24, (uint64_t)meta->created_ms);
    wr64(h + 32, meta->journal_gen);
    wr64(h + 40, meta->next_pos);
    wr64(h + 48, meta->publish_seq);
    wr32(h + 56, NSECTIONS);
    put(&b, h, sizeof(h));
    size_t at = section_begin(&b, 0);
    put_names(&b, towns);
    section_end(&b, at);
    at = section_begin(&b, 1);
    put_names(&b, metrics);
    section_end(&b, at);
    at = section_begin(&b, 2);
    int rc = engine_save(e, engine_sink, &b);
    section_end(&b, at);
    at = section_begin(&b, 3);
    put32(&b, dedup_count(dd));
    clients_out_t co = {&b, unmark, n};
    dedup_foreach(dd, put_client, &co);
    section_end(&b, at);
    if (!b.oom) {
        wr64(b.p + 16, b.n + TRAILER);
    }
    put32(&b, b.oom ? 0 : crc32c(0, b.p, b.n));
    if (rc != 0 || b.oom) {
        free(b.p);
        SAY("no memory for a checkpoint of %zu bytes and more", b.n);
        return TALLY_ENOMEM;
    }
    *buf_out = b.p;
    *len_out = b.n;
    return 0;
}

/* ---- storing ---- */

/* A directory stream of dfd, from its first entry (the stream shares its
 * position with dfd and every other stream of it), or NULL. */
static DIR *open_stream(int dfd)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    rewinddir(d);
    return d;
}

void checkpoint_remove_temps(int dfd)
{
    DIR *d = open_stream(dfd);
    if (d == NULL) {
        return;
    }
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        uint64_t gen;
        if (checkpoint_parse_name(de->d_name, ".tmp", &gen)) {
            unlinkat(dfd, de->d_name, 0);
        }
    }
    closedir(d);
}

int checkpoint_list_gens(int dfd, uint64_t **gens, size_t *n)
{
    *gens = NULL;
    *n = 0;
    DIR *d = open_stream(dfd);
    if (d == NULL) {
        return TALLY_EIO;
    }
    size_t cap = 0;
    int rc = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        uint64_t gen;
        if (!checkpoint_parse_name(de->d_name, "", &gen)) {
            continue;
        }
        if (VEC_RESERVE(*gens, cap, *n + 1) != 0) {
            rc = TALLY_ENOMEM;
            break;
        }
        /* Insertion keeps the list sorted newest first; there are few. */
        size_t i = (*n)++;
        for (; i > 0 && (*gens)[i - 1] < gen; i--) {
            (*gens)[i] = (*gens)[i - 1];
        }
        (*gens)[i] = gen;
    }
    closedir(d);
    return rc;
}

/* Write, sync and rename the image into place, and sync the directory.
 * Returns 0 or TALLY_EIO with err set; no temporary file is left either
 * way, and a failed sync of the directory leaves the new file in place. */
static int store_file(const char *dir, int dfd, uint64_t gen, const void *buf, size_t len,
                      char *err, size_t errlen)
{
    char name[CHECKPOINT_NAME_MAX], why[PATH_MAX + 2 * CHECKPOINT_NAME_MAX + 128];
    checkpoint_file_name(name, gen);
    const atomic_file_opts_t opts = {.mode = 0640};
    int rc = atomic_file_write(dfd, dir, name, buf, len, &opts, why, sizeof(why));
    if (rc != 0) {
        SAY("checkpoint %s", why);
    }
    return rc;
}

/* Delete the checkpoints older than the newest one below gen.  Sets
 * *keep_from to the oldest gen kept; a file that cannot be deleted is
 * reported in err (a warning: the new checkpoint is in place). */
static void prune(const char *dir, int dfd, uint64_t gen, uint64_t *keep_from, char *err,
                  size_t errlen)
{
    uint64_t *gens;
    size_t n;
    *keep_from = gen;
    if (checkpoint_list_gens(dfd, &gens, &n) != 0) {
        SAY("checkpoint: cannot list %s to delete old checkpoints: %s", dir, strerror(errno));
        free(gens);
        return;
    }
    bool kept_prev = false, removed = false;
    for (size_t i = 0; i < n; i++) {
        if (gens[i] >= gen) {
            continue;
        }
        if (!kept_prev) {
            kept_prev = true;
            *keep_from = gens[i];
            continue;
        }
        char name[CHECKPOINT_NAME_MAX];
        checkpoint_file_name(name, gens[i]);
        if (unlinkat(dfd, name, 0) != 0) {
            SAY("checkpoint: cannot delete the old checkpoint %s/%s: %s", dir, name,
                strerror(errno));
        }
        removed = true;
    }
    if (removed && fsync(dfd) != 0) {
        SAY("checkpoint: cannot fsync %s after deleting old checkpoints: %s", dir, strerror(errno));
    }
    free(gens);
}

int checkpoint_store(const char *dir, const void *buf, size_t len, uint64_t *keep_from_gen,
                     char *err, size_t errlen)
{
    clear(err, errlen);
    const uint8_t *p = buf;
    if (len < CHECKPOINT_HEADER_SIZE + TRAILER || memcmp(p, MAGIC, 8) != 0 || rd64(p + 16) != len) {
        SAY("checkpoint_store: the buffer of %zu bytes is not a checkpoint image", len);
        return TALLY_EINVAL;
    }
    uint64_t gen = rd64(p + 32);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        SAY("checkpoint: cannot open the state directory %s: %s", dir, strerror(errno));
        return TALLY_EIO;
    }
    checkpoint_remove_temps(dfd);
    int rc = store_file(dir, dfd, gen, buf, len, err, errlen);
    uint64_t keep = gen;
    if (rc == 0) {
        prune(dir, dfd, gen, &keep, err, errlen);
    }
    close(dfd);
    if (rc == 0 && keep_from_gen != NULL) {
        *keep_from_gen = keep;
    }
    return rc;
}

int checkpoint_write(const char *dir, const checkpoint_meta_t *meta, const intern_t *towns,
                     const intern_t *metrics, const engine_t *e, const dedup_t *dd,
                     uint64_t *keep_from_gen, char *err, size_t errlen)
{
    void *buf;
    size_t len;
    int rc = checkpoint_build(meta, towns, metrics, e, dd, &buf, &len, err, errlen);
    if (rc == 0) {
        rc = checkpoint_store(dir, buf, len, keep_from_gen, err, errlen);
        free(buf);
    }
    return rc;
}
