/* intern.c - interning of names to dense ids (see intern.h). */
#include "intern.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tally_error.h"
#include "vec.h"

#define INTERN_CHUNK     16384 /* arena chunk; a record never straddles two */
#define INTERN_SLOTS_MIN 16
#define REC_HEAD         5 /* a record: the id (4 bytes), the length, the name, NUL */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

/* Eight bytes per step, keyed by the table's seed: names are short, so
 * this beats byte-at-a-time FNV-1a, and the seed keeps collisions out of
 * a client's reach. */
static uint32_t name_hash(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
    }
    return (uint32_t)mix64(h);
}

int intern_init(intern_t *in, uint32_t capacity)
{
    memset(in, 0, sizeof(*in));
    if (capacity == 0 || capacity > INTERN_CAPACITY_MAX) {
        return TALLY_EINVAL;
    }
    in->capacity = capacity;
    in->slots = calloc(INTERN_SLOTS_MIN, sizeof(uint64_t));
    if (in->slots == NULL) {
        return TALLY_ENOMEM;
    }
    in->mask = INTERN_SLOTS_MIN - 1;
    in->mem = INTERN_SLOTS_MIN * sizeof(uint64_t);
    if (getrandom(&in->seed, sizeof(in->seed), 0) != (ssize_t)sizeof(in->seed)) {
        /* Without entropy the table still works; only collision
         * resistance against chosen names is lost. */
        in->seed = (uint64_t)(uintptr_t)in ^ 0x2545F4914F6CDD1DULL;
    }
    return 0;
}

void intern_free(intern_t *in)
{
    for (uint32_t i = 0; i < in->nchunks; i++) {
        free(in->chunks[i]);
    }
    free(in->chunks);
    free(in->slots);
    free(in->names);
    free(in->lens);
    free(in->hashes);
    free(in->recs);
    memset(in, 0, sizeof(*in));
}

/* intern_t is the daemon's general table of names (config_parse.c uses it
 * too), built for its hot path, every submission looking up its township
 * and metric names: a seeded hash of 8 bytes a step, and slots that hold
 * the hash beside the place of the name's record in the arena.
 *
 * The slot holds the hash, so only a probe whose hash matches reads a
 * record; the record holds the id and the length before the name, so a
 * lookup with many names costs two cache misses (the slot, the record)
 * rather than three (the slot, the id's length and name pointer, the
 * name). */
static const unsigned char *record(const intern_t *in, uint32_t at)
{
    return (const unsigned char *)in->chunks[at / INTERN_CHUNK] + at % INTERN_CHUNK;
}

static int lookup(const intern_t *in, const char *s, size_t len, uint32_t h)
{
    for (uint32_t i = h & in->mask;; i = (i + 1) & in->mask) {
        uint64_t v = in->slots[i];
        if (v == 0) {
            return TALLY_ENOTFOUND;
        }
        if ((uint32_t)(v >> 32) != h) {
            continue;
        }
        const unsigned char *r = record(in, (uint32_t)v - 1);
        if (r[4] == len && memcmp(r + REC_HEAD, s, len) == 0) {
            uint32_t id;
            memcpy(&id, r, sizeof(id));
            return (int)id;
        }
    }
}

int intern_find(const intern_t *in, const char *s, size_t len)
{
    if (len == 0 || len > INTERN_NAME_MAX || in->count == 0) {
        return TALLY_ENOTFOUND;
    }
    return lookup(in, s, len, name_hash(in->seed, s, len));
}

/* Room for one more id in the per-id arrays.  Not vec_reserve: the three
 * arrays share one capacity, and it stops at capacity + 1 ids, so a table
 * sized for the catalog holds no slack. */
static int grow_ids(intern_t *in)
{
    if (in->count + 1 < in->ids_cap) {
        return 0;
    }
    uint64_t cap = in->ids_cap ? (uint64_t)in->ids_cap * 2 : 64;
    if (cap > (uint64_t)in->capacity + 1) {
        cap = (uint64_t)in->capacity + 1;
    }
    const char **names = realloc(in->names, cap * sizeof(*names));
    if (names == NULL) {
        return TALLY_ENOMEM;
    }
    in->names = names;
    uint8_t *lens = realloc(in->lens, cap * sizeof(*lens));
    if (lens == NULL) {
        return TALLY_ENOMEM;
    }
    in->lens = lens;
    uint32_t *hashes = realloc(in->hashes, cap * sizeof(*hashes));
    if (hashes == NULL) {
        return TALLY_ENOMEM;
    }
    in->hashes = hashes;
    uint32_t *recs = realloc(in->recs, cap * sizeof(*recs));
    if (recs == NULL) {
        return TALLY_ENOMEM;
    }
    in->recs = recs;
    in->mem +=
        (cap - in->ids_cap) * (sizeof(*names) + sizeof(*lens) + sizeof(*hashes) + sizeof(*recs));
    in->ids_cap = (uint32_t)cap;
    return 0;
}

/* Keep the load factor at or below 1/2 after one more name. */
static int grow_slots(intern_t *in)
{
    uint64_t nslots = (uint64_t)in->mask + 1;
    if ((uint64_t)(in->count + 1) * 2 <= nslots) {
        return 0;
    }
    uint64_t n2 = nslots * 2;
    uint64_t *slots = calloc(n2, sizeof(uint64_t));
    if (slots == NULL) {
        return TALLY_ENOMEM;
    }
    uint32_t mask = (uint32_t)(n2 - 1);
    for (uint32_t id = 1; id <= in->count; id++) {
        uint32_t i = in->hashes[id] & mask;
        while (slots[i] != 0) {
            i = (i + 1) & mask;
        }
        slots[i] = (uint64_t)in->hashes[id] << 32 | in->recs[id];
    }
    free(in->slots);
    in->slots = slots;
    in->mask = mask;
    in->mem += (n2 - nslots) * sizeof(uint64_t);
    return 0;
}

/* Arena room for a record of a len-byte name; returns where it goes (and
 * its place, plus 1, in *at), or NULL. */
static char *arena_take(intern_t *in, size_t len, uint32_t *at)
{
    size_t size = REC_HEAD + len + 1;
    if (in->nchunks == 0 || in->chunk_used + size > INTERN_CHUNK) {
        if ((uint64_t)(in->nchunks + 1) * INTERN_CHUNK >= UINT32_MAX) {
            return NULL; /* places are 32-bit (a full table needs about 1.2 GB) */
        }
        size_t cap = in->chunks_cap;
        if (VEC_RESERVE(in->chunks, in->chunks_cap, (size_t)in->nchunks + 1) != 0) {
            return NULL;
        }
        in->mem += (in->chunks_cap - cap) * sizeof(*in->chunks);
        char *c = malloc(INTERN_CHUNK);
        if (c == NULL) {
            return NULL;
        }
        in->chunks[in->nchunks++] = c;
        in->chunk_used = 0;
        in->mem += INTERN_CHUNK;
    }
    char *p = in->chunks[in->nchunks - 1] + in->chunk_used;
    *at = (uint32_t)((size_t)(in->nchunks - 1) * INTERN_CHUNK + in->chunk_used) + 1;
    in->chunk_used += size;
    return p;
}

int intern_add(intern_t *in, const char *s, size_t len)
{
    if (len == 0 || len > INTERN_NAME_MAX) {
        return TALLY_EINVAL;
    }
    uint32_t h = name_hash(in->seed, s, len);
    if (in->count > 0) {
        int id = lookup(in, s, len, h);
        if (id > 0) {
            return id;
        }
    }
    if (in->count >= in->capacity) {
        return TALLY_ESERIESLIMIT;
    }
    /* Grow everything first, so a failure leaves the table as it was. */
    int rc = grow_ids(in);
    if (rc == 0) {
        rc = grow_slots(in);
    }
    uint32_t at = 0;
    char *rec = rc == 0 ? arena_take(in, len, &at) : NULL;
    if (rec == NULL) {
        return TALLY_ENOMEM;
    }
    uint32_t id = ++in->count;
    memcpy(rec, &id, sizeof(id));
    rec[4] = (char)len;
    memcpy(rec + REC_HEAD, s, len);
    rec[REC_HEAD + len] = '\0';
    in->names[id] = rec + REC_HEAD;
    in->lens[id] = (uint8_t)len;
    in->hashes[id] = h;
    in->recs[id] = at;
    uint32_t i = h & in->mask;
    while (in->slots[i] != 0) {
        i = (i + 1) & in->mask;
    }
    in->slots[i] = (uint64_t)h << 32 | at;
    return (int)id;
}

void intern_truncate(intern_t *in, uint32_t count)
{
    while (in->count > count) {
        uint32_t id = in->count;
        uint32_t i = in->hashes[id] & in->mask;
        while ((uint32_t)in->slots[i] != in->recs[id]) {
            i = (i + 1) & in->mask;
        }
        /* Emptying the slot leaves no name unreachable, because names go
         * newest first.  Every name placed (or re-placed by grow_slots, in
         * id order) before this one took the first free slot from its
         * home while this slot was still free, so none of them sits past
         * this slot with its home at or before it. */
        in->slots[i] = 0;
        /* Names take arena bytes in order, so the newest one ends the
         * last chunk: give its bytes back.  A name left in an earlier
         * chunk (the last one was opened after it) keeps its few bytes
         * until intern_free(). */
        size_t size = REC_HEAD + (size_t)in->lens[id] + 1;
        char *last = in->chunks[in->nchunks - 1];
        if (in->chunk_used >= size && in->names[id] - REC_HEAD == last + in->chunk_used - size) {
            in->chunk_used -= size;
        }
        in->names[id] = NULL;
        in->count--;
    }
}

const char *intern_name(const intern_t *in, uint32_t id, uint32_t *len)
{
    if (id == 0 || id > in->count) {
        return NULL;
    }
    if (len != NULL) {
        *len = in->lens[id];
    }
    return in->names[id];
}
