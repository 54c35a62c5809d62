/* dedup.c - open-addressing table of client ids with anti-replay bitmaps. */
#include "dedup.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "tally_error.h"

#define INITIAL_SLOTS 64

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* A keyed mix of the id's two halves.  Ids are meant to be random, but a
 * hostile client could pick colliding ones; the per-process seed stops it
 * from predicting which. */
static uint64_t hash_id(const dedup_t *d, const uint8_t *id)
{
    uint64_t a = rd64(id) ^ d->seed[0];
    uint64_t b = rd64(id + 8) ^ d->seed[1];
    uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) * 0xC2B2AE3D27D4EB4FULL;
    h ^= h >> 31;
    h *= 0xD6E8FEB86659FD93ULL;
    h ^= h >> 32;
    return h;
}

int dedup_init(dedup_t *d, uint32_t max_clients)
{
    memset(d, 0, sizeof(*d));
    if (max_clients == 0)
        return TALLY_EINVAL;
    d->max = max_clients;
    if (getrandom(d->seed, sizeof(d->seed), 0) != (ssize_t)sizeof(d->seed)) {
        /* Without entropy the table still works; only the collision
         * resistance against chosen ids is weaker. */
        d->seed[0] = (uint64_t)(uintptr_t)d ^ 0x5851F42D4C957F2DULL;
        d->seed[1] = 0x14057B7EF767814FULL;
    }
    d->slots = calloc(INITIAL_SLOTS, sizeof(*d->slots));
    if (!d->slots)
        return TALLY_ENOMEM;
    d->mask = INITIAL_SLOTS - 1;
    return 0;
}

void dedup_free(dedup_t *d)
{
    free(d->slots);
    memset(d, 0, sizeof(*d));
}

/* This table is its own, not an intern_t, because every submission probes
 * it (ingest's anti-replay check) and the slot holds the client's whole
 * entry, window bitmap included, so a check touches one slot and nothing
 * else.
 *
 * The slot holding id, or the empty slot where it would go. */
static dedup_entry_t *find_slot(const dedup_t *d, const uint8_t *id)
{
    uint32_t i = (uint32_t)hash_id(d, id) & d->mask;
    for (;;) {
        dedup_entry_t *e = &d->slots[i];
        if (e->high == 0 || memcmp(e->id, id, PROTO_CLIENT_ID_LEN) == 0)
            return e;
        i = (i + 1) & d->mask;
    }
}

static int grow(dedup_t *d)
{
    uint32_t ncap = (d->mask + 1) * 2;
    dedup_entry_t *old = d->slots;
    uint32_t ocap = d->mask + 1;
    d->slots = calloc(ncap, sizeof(*d->slots));
    if (!d->slots) {
        d->slots = old;
        return TALLY_ENOMEM;
    }
    d->mask = ncap - 1;
    for (uint32_t i = 0; i < ocap; i++)
        if (old[i].high != 0)
            *find_slot(d, old[i].id) = old[i];
    free(old);
    return 0;
}

static int bit_test(const dedup_entry_t *e, uint64_t seq)
{
    uint64_t off = e->high - seq;
    return (e->bits[off / 64] >> (off % 64)) & 1;
}

int dedup_check(const dedup_t *d, const uint8_t id[PROTO_CLIENT_ID_LEN], uint64_t seq)
{
    const dedup_entry_t *e = find_slot(d, id);
    if (e->high == 0)
        return d->count >= d->max ? TALLY_ECLIENTLIMIT : 0;
    if (seq > e->high)
        return 0;
    if (e->high - seq >= DEDUP_WINDOW)
        return TALLY_ESTALESEQ;
    return bit_test(e, seq) ? TALLY_EEXIST : 0;
}

/* Move the window up by n sequences: bit k becomes bit k + n. */
static void shift_window(dedup_entry_t *e, uint64_t n)
{
    if (n >= DEDUP_WINDOW) {
        memset(e->bits, 0, sizeof(e->bits));
        return;
    }
    unsigned words = (unsigned)(n / 64), bits = (unsigned)(n % 64);
    for (int i = DEDUP_WORDS - 1; i >= 0; i--) {
        uint64_t v = 0;
        int src = i - (int)words;
        if (src >= 0) {
            v = e->bits[src] << bits;
            if (bits && src > 0)
                v |= e->bits[src - 1] >> (64 - bits);
        }
        e->bits[i] = v;
    }
}

int dedup_mark(dedup_t *d, const uint8_t id[PROTO_CLIENT_ID_LEN], uint64_t seq)
{
    dedup_entry_t *e = find_slot(d, id);
    if (e->high == 0) {
        if (d->count >= d->max)
            return TALLY_ECLIENTLIMIT;
        /* Keep the load factor under 1/2 so probes stay short. */
        if ((uint64_t)(d->count + 1) * 2 > (uint64_t)d->mask + 1) {
            int rc = grow(d);
            if (rc)
                return rc;
            e = find_slot(d, id);
        }
        memcpy(e->id, id, PROTO_CLIENT_ID_LEN);
        memset(e->bits, 0, sizeof(e->bits));
        e->last_ms = 0;
        e->high = seq;
        e->bits[0] = 1;
        d->count++;
        return 0;
    }
    if (seq > e->high) {
        shift_window(e, seq - e->high);
        e->high = seq;
        e->bits[0] |= 1;
    } else if (e->high - seq < DEDUP_WINDOW) {
        uint64_t off = e->high - seq;
        e->bits[off / 64] |= 1ULL << (off % 64);
    }
    return 0;
}

void dedup_touch(dedup_t *d, const uint8_t id[PROTO_CLIENT_ID_LEN], int64_t now_ms)
{
    dedup_entry_t *e = find_slot(d, id);
    if (e->high != 0 && now_ms > e->last_ms)
        e->last_ms = now_ms;
}

/* Empty slot i, moving later entries of its probe run back so that every
 * entry stays reachable from its home slot (linear probing has no
 * tombstones). */
static void remove_at(dedup_t *d, uint32_t i)
{
    uint32_t j = i;
    for (uint32_t k = (j + 1) & d->mask; d->slots[k].high != 0; k = (k + 1) & d->mask) {
        uint32_t home = (uint32_t)hash_id(d, d->slots[k].id) & d->mask;
        /* The entry at k may fill the hole at j only if its home does not
         * lie cyclically in (j, k]. */
        bool stays = j <= k ? (home > j && home <= k) : (home > j || home <= k);
        if (stays)
            continue;
        d->slots[j] = d->slots[k];
        j = k;
    }
    memset(&d->slots[j], 0, sizeof(d->slots[j]));
    d->count--;
}

uint32_t dedup_expire(dedup_t *d, int64_t before_ms, uint32_t *cursor, uint32_t max_slots)
{
    uint32_t removed = 0, i = *cursor & d->mask;
    for (uint32_t n = 0; n < max_slots && n <= d->mask; n++) {
        dedup_entry_t *e = &d->slots[i];
        if (e->high != 0 && e->last_ms < before_ms) {
            remove_at(d, i);
            removed++;
            /* Slot i may hold an entry moved back into it: look again. */
            if (d->slots[i].high != 0)
                continue;
        }
        i = (i + 1) & d->mask;
    }
    *cursor = i;
    return removed;
}

void dedup_foreach(const dedup_t *d, void (*fn)(const dedup_entry_t *e, void *ctx), void *ctx)
{
    for (uint32_t i = 0; i <= d->mask; i++)
        if (d->slots[i].high != 0)
            fn(&d->slots[i], ctx);
}

int dedup_restore(dedup_t *d, const dedup_entry_t *src)
{
    if (src->high == 0)
        return TALLY_EINVAL;
    dedup_entry_t *e = find_slot(d, src->id);
    if (e->high == 0) {
        if (d->count >= d->max)
            return TALLY_ECLIENTLIMIT;
        if ((uint64_t)(d->count + 1) * 2 > (uint64_t)d->mask + 1) {
            int rc = grow(d);
            if (rc)
                return rc;
            e = find_slot(d, src->id);
        }
        d->count++;
    }
    *e = *src;
    return 0;
}

size_t dedup_memory(const dedup_t *d)
{
    return ((size_t)d->mask + 1) * sizeof(dedup_entry_t);
}
