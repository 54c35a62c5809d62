/* window.c - the sliding windows of the tally engine (see window.h). */
#include "window.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_error.h"

#define NIL                UINT32_MAX
#define WINDOW_CHUNK_SHIFT 7
#define WINDOW_CHUNK       (1u << WINDOW_CHUNK_SHIFT)

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static uint32_t ring_slot(int64_t idx, uint32_t n)
{
    int64_t r = idx % (int64_t)n;
    return (uint32_t)(r < 0 ? r + n : r);
}

#define WINDOW_DENSE_CHUNK 64 /* dense rings per pool allocation */

/* A node's storage: its nwin states. */
static inline uint8_t *block_of(const window_set_t *ws, uint32_t node)
{
    return ws->chunks[node >> WINDOW_CHUNK_SHIFT] +
           (size_t)(node & (WINDOW_CHUNK - 1)) * ws->block_size;
}

static inline window_state_t *state_of(const window_set_t *ws, uint32_t node, uint32_t w)
{
    return (window_state_t *)block_of(ws, node) + w;
}

static inline bool is_dense(const window_state_t *s)
{
    return s->dense;
}

static inline bool fits32(__int128 v)
{
    return v >= INT32_MIN && v <= INT32_MAX;
}

/* Dense block d (index + 1 in the pool): the window's sum, nwords mask
 * words, then nbuckets sums. */
static inline __int128 *dsum(const window_set_t *ws, uint32_t d)
{
    uint32_t i = d - 1;
    return (__int128 *)(void *)(ws->dchunks[i / WINDOW_DENSE_CHUNK] +
                                (size_t)(i % WINDOW_DENSE_CHUNK) * ws->dense_size);
}

static inline uint64_t *dmask(const window_set_t *ws, uint32_t d)
{
    return (uint64_t *)(dsum(ws, d) + 1);
}

static inline int64_t *dring(const window_set_t *ws, uint32_t d)
{
    return (int64_t *)(dmask(ws, d) + ws->nwords);
}

/* The first set bit of mask (which has one) at or after slot start,
 * walking the ring: the slot of the oldest non-empty bucket when start is
 * the slot of the window's oldest bucket. */
static uint32_t first_slot(const uint64_t *mask, uint32_t nwords, uint32_t start)
{
    uint32_t wi = start >> 6;
    uint64_t x = mask[wi] & (~0ULL << (start & 63));
    while (x == 0 && ++wi < nwords) {
        x = mask[wi];
    }
    if (x == 0) {
        for (wi = 0; (x = mask[wi]) == 0; wi++) {
        }
    }
    return wi * 64 + (uint32_t)__builtin_ctzll(x);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (msg != NULL && msglen > 0) {                                                           \
            snprintf(msg, msglen, __VA_ARGS__);                                                    \
        }                                                                                          \
        return TALLY_EINVAL;                                                                       \
    } while (0)

int window_check(const window_spec_t *spec, uint32_t nwin, uint32_t nbuckets,
                 const char *const *reserved, char *msg, size_t msglen)
{
    if (nwin > WINDOW_MAX) {
        FAIL("windows: %u windows exceed the limit of %u (%u columns minus today, month, quarter, "
             "year and total)",
             nwin, WINDOW_MAX, PROTO_COLUMNS_MAX);
    }
    if (nbuckets == 0 || nbuckets > WINDOW_BUCKETS_MAX) {
        FAIL("buckets: %u is outside 1..%u", nbuckets, WINDOW_BUCKETS_MAX);
    }
    for (uint32_t w = 0; w < nwin; w++) {
        const char *name = spec[w].name;
        size_t len = name ? strlen(name) : 0;
        if (len == 0 || len > WINDOW_NAME_MAX) {
            FAIL("windows[%u].name: '%s' is %zu bytes, outside 1..%u", w, name ? name : "", len,
                 WINDOW_NAME_MAX);
        }
        for (const char *const *r = reserved; r && *r; r++) {
            if (strcmp(name, *r) == 0) {
                FAIL("windows[%u].name: '%s' is the name of a calendar column", w, name);
            }
        }
        for (uint32_t v = 0; v < w; v++) {
            if (strcmp(spec[v].name, name) == 0) {
                FAIL("windows[%u].name: '%s' is already the name of windows[%u]", w, name, v);
            }
        }
        if (spec[w].ms < 1 || spec[w].ms > WINDOW_MS_MAX) {
            FAIL("windows[%u] '%s': width %" PRId64 " ms is outside 1..%" PRId64, w, name,
                 spec[w].ms, (int64_t)WINDOW_MS_MAX);
        }
        if (spec[w].ms % nbuckets != 0) {
            FAIL("windows[%u] '%s': width %" PRId64 " ms is not a multiple of buckets (%u), so "
                 "its buckets would not be whole milliseconds",
                 w, name, spec[w].ms, nbuckets);
        }
    }
    return 0;
}

#undef FAIL

int window_set_init(window_set_t *ws, const window_spec_t *spec, uint32_t nwin, uint32_t nbuckets,
                    uint32_t max_nodes, int64_t now_ms)
{
    memset(ws, 0, sizeof(*ws));
    if (window_check(spec, nwin, nbuckets, NULL, NULL, 0) != 0) {
        return TALLY_EINVAL;
    }
    ws->nwin = nwin;
    ws->nbuckets = nbuckets;
    ws->nwords = (nbuckets + 63) / 64;
    ws->now_ms = now_ms;
    ws->block_size = nwin * sizeof(window_state_t);
    /* a multiple of 16, so every block's sum is aligned */
    ws->dense_size =
        (sizeof(__int128) + (ws->nwords + (size_t)nbuckets) * sizeof(int64_t) + 15) & ~(size_t)15;
    for (uint32_t w = 0; w < nwin; w++) {
        window_def_t *d = &ws->win[w];
        memcpy(d->name, spec[w].name, strlen(spec[w].name) + 1);
        d->width_ms = spec[w].ms / nbuckets;
        d->cur = floor_div(now_ms, d->width_ms);
        d->heads = malloc(nbuckets * sizeof(uint32_t));
        if (d->heads == NULL) {
            window_set_free(ws);
            return TALLY_ENOMEM;
        }
        for (uint32_t s = 0; s < nbuckets; s++) {
            d->heads[s] = NIL;
        }
        ws->mem += nbuckets * sizeof(uint32_t);
    }
    ws->maxchunks = (uint32_t)(((uint64_t)max_nodes + WINDOW_CHUNK - 1) >> WINDOW_CHUNK_SHIFT);
    if (nwin > 0) {
        ws->chunks = calloc(ws->maxchunks ? ws->maxchunks : 1, sizeof(*ws->chunks));
        if (ws->chunks == NULL) {
            window_set_free(ws);
            return TALLY_ENOMEM;
        }
        ws->mem += (ws->maxchunks ? ws->maxchunks : 1) * sizeof(*ws->chunks);
    }
    return 0;
}

void window_set_regions(const window_set_t *ws, memhint_region_fn fn, void *ctx)
{
    for (uint32_t w = 0; w < ws->nwin; w++) {
        fn(ctx, ws->win[w].heads, ws->nbuckets * sizeof(uint32_t));
    }
    for (uint32_t i = 0; i < ws->nchunks; i++) {
        fn(ctx, ws->chunks[i], (size_t)WINDOW_CHUNK * ws->block_size);
    }
    for (uint32_t i = 0; i < ws->ndchunks; i++) {
        fn(ctx, ws->dchunks[i], (size_t)WINDOW_DENSE_CHUNK * ws->dense_size);
    }
}

void window_set_free(window_set_t *ws)
{
    for (uint32_t w = 0; w < ws->nwin; w++) {
        free(ws->win[w].heads);
    }
    for (uint32_t i = 0; i < ws->nchunks; i++) {
        free(ws->chunks[i]);
    }
    free(ws->chunks);
    for (uint32_t i = 0; i < ws->ndchunks; i++) {
        free(ws->dchunks[i]);
    }
    free(ws->dchunks);
    free(ws->dfree);
    memset(ws, 0, sizeof(*ws));
}

int window_reserve_dense(window_set_t *ws, uint32_t n)
{
    while (ws->ndfree < n) {
        if (ws->ndchunks == ws->dchunks_cap) {
            uint32_t cap = ws->dchunks_cap ? ws->dchunks_cap * 2 : 16;
            uint8_t **c = realloc(ws->dchunks, cap * sizeof(*c));
            if (c == NULL) {
                return TALLY_ENOMEM;
            }
            ws->mem += (cap - ws->dchunks_cap) * sizeof(*c);
            ws->dchunks = c;
            ws->dchunks_cap = cap;
        }
        /* Room to give every ring back: the free list can hold them all. */
        uint64_t total = ((uint64_t)ws->ndchunks + 1) * WINDOW_DENSE_CHUNK;
        if (total > UINT32_MAX - 1) {
            return TALLY_ENOMEM;
        }
        if (total > ws->dfree_cap) {
            uint32_t *f = realloc(ws->dfree, total * sizeof(*f));
            if (f == NULL) {
                return TALLY_ENOMEM;
            }
            ws->mem += (total - ws->dfree_cap) * sizeof(*f);
            ws->dfree = f;
            ws->dfree_cap = (uint32_t)total;
        }
        size_t bytes = (size_t)WINDOW_DENSE_CHUNK * ws->dense_size;
        uint8_t *c = malloc(bytes); /* malloc aligns to 16 on every target we build for */
        if (c == NULL) {
            return TALLY_ENOMEM;
        }
        ws->mem += bytes;
        uint32_t first = ws->ndchunks * WINDOW_DENSE_CHUNK;
        ws->dchunks[ws->ndchunks++] = c;
        for (uint32_t i = WINDOW_DENSE_CHUNK; i-- > 0;) {
            ws->dfree[ws->ndfree++] = first + i + 1;
        }
    }
    return 0;
}

/* A zeroed dense block from those window_reserve_dense() set aside. */
static uint32_t take_dense(window_set_t *ws)
{
    uint32_t d = ws->dfree[--ws->ndfree];
    memset(dsum(ws, d), 0, ws->dense_size);
    return d;
}

/* The sum of the buckets of s. */
static __int128 sum_of(const window_set_t *ws, const window_state_t *s)
{
    if (is_dense(s)) {
        return *dsum(ws, s->block);
    }
    __int128 sum = 0;
    for (uint32_t i = 0; i < s->nonempty; i++) {
        sum += s->val[i];
    }
    return sum;
}

int window_reserve(window_set_t *ws, uint32_t nodes)
{
    if (ws->nwin == 0) {
        return 0;
    }
    uint32_t need = (uint32_t)(((uint64_t)nodes + WINDOW_CHUNK - 1) >> WINDOW_CHUNK_SHIFT);
    if (need > ws->maxchunks) {
        /* More nodes than the set was first sized for (a limit raised):
         * only the table of chunks moves, never a node. */
        uint32_t had = ws->maxchunks ? ws->maxchunks : 1;
        uint64_t cap = (uint64_t)had * 2;
        cap = cap < need ? need : cap;
        uint8_t **c = realloc(ws->chunks, cap * sizeof(*c));
        if (c == NULL) {
            return TALLY_ENOMEM;
        }
        ws->mem += (cap - had) * sizeof(*c);
        ws->chunks = c;
        ws->maxchunks = (uint32_t)cap;
    }
    while (ws->nchunks < need) {
        size_t bytes = (size_t)WINDOW_CHUNK * ws->block_size;
        uint8_t *c = malloc(bytes);
        if (c == NULL) {
            return TALLY_ENOMEM;
        }
        memhint_populate(c, bytes); /* filled in order from now */
        ws->chunks[ws->nchunks++] = c;
        ws->mem += bytes;
    }
    return 0;
}

void window_node_init(window_set_t *ws, uint32_t node)
{
    if (ws->nwin == 0) {
        return;
    }
    uint8_t *b = block_of(ws, node);
    memset(b, 0, ws->block_size);
    for (uint32_t w = 0; w < ws->nwin; w++) {
        window_state_t *s = (window_state_t *)b + w;
        s->prev = s->next = NIL;
    }
}

/* The sum of the bucket in ring slot slot of s (0 when it is empty), and
 * whether it is non-empty. */
static int64_t cell_get(const window_set_t *ws, const window_state_t *s, uint32_t slot,
                        bool *present)
{
    if (is_dense(s)) {
        *present = (dmask(ws, s->block)[slot >> 6] >> (slot & 63)) & 1;
        return dring(ws, s->block)[slot];
    }
    for (uint32_t i = 0; i < s->nonempty; i++) {
        if (s->slot[i] == slot) {
            *present = true;
            return s->val[i];
        }
    }
    *present = false;
    return 0;
}

/* The ring slot of the oldest non-empty bucket of s (which has one), the
 * window's oldest bucket being in slot start. */
static uint32_t oldest_slot(const window_set_t *ws, const window_state_t *s, uint32_t start)
{
    if (is_dense(s)) {
        return first_slot(dmask(ws, s->block), ws->nwords, start);
    }
    uint32_t n = ws->nbuckets, best = s->slot[0], age = (best + n - start) % n;
    for (uint32_t i = 1; i < s->nonempty; i++) {
        uint32_t a = (s->slot[i] + n - start) % n;
        if (a < age) {
            age = a;
            best = s->slot[i];
        }
    }
    return best;
}

static void link_node(window_set_t *ws, uint32_t w, uint32_t node, uint32_t slot)
{
    window_state_t *s = state_of(ws, node, w);
    uint32_t head = ws->win[w].heads[slot];
    s->prev = NIL;
    s->next = head;
    if (head != NIL) {
        state_of(ws, head, w)->prev = node;
    }
    ws->win[w].heads[slot] = node;
}

static void unlink_node(window_set_t *ws, uint32_t w, uint32_t node, uint32_t slot)
{
    window_state_t *s = state_of(ws, node, w);
    if (s->prev != NIL) {
        state_of(ws, s->prev, w)->next = s->next;
    } else {
        ws->win[w].heads[slot] = s->next;
    }
    if (s->next != NIL) {
        state_of(ws, s->next, w)->prev = s->prev;
    }
    s->prev = s->next = NIL;
}

void window_locate(const window_set_t *ws, int64_t t_ms, window_pos_t *pos)
{
    /* A sample from the future goes into the current bucket: the ring has
     * no room for buckets past cur, and counting it now is what a reader
     * expects of a sample that is, by the daemon's clock, a little early. */
    int64_t t = t_ms > ws->now_ms ? ws->now_ms : t_ms;
    uint32_t n = ws->nbuckets;
    for (uint32_t w = 0; w < ws->nwin; w++) {
        const window_def_t *d = &ws->win[w];
        int64_t idx = floor_div(t, d->width_ms);
        int64_t oldest = d->cur - n + 1;
        if (idx < oldest) {
            pos->slot[w] = -1;
            pos->off[w] = 0;
        } else {
            pos->slot[w] = (int32_t)ring_slot(idx, n);
            pos->off[w] = (uint32_t)(idx - oldest);
        }
    }
}

static inline void narrow(__int128 cell, __int128 *lo, __int128 *hi)
{
    if ((__int128)INT64_MIN - cell > *lo) {
        *lo = (__int128)INT64_MIN - cell;
    }
    if ((__int128)INT64_MAX - cell < *hi) {
        *hi = (__int128)INT64_MAX - cell;
    }
}

void window_bounds(const window_set_t *ws, uint32_t node, const window_pos_t *pos, __int128 *lo,
                   __int128 *hi)
{
    if (ws->nwin == 0) {
        return;
    }
    for (uint32_t w = 0; w < ws->nwin; w++) {
        if (pos->slot[w] < 0) {
            continue;
        }
        const window_state_t *s = state_of(ws, node, w);
        bool present;
        narrow(sum_of(ws, s), lo, hi);
        narrow(cell_get(ws, s, (uint32_t)pos->slot[w], &present), lo, hi);
    }
}

/* A new non-empty bucket at slot (off buckets after the window's oldest)
 * for node in window w: the node must stay listed under its oldest
 * bucket, which changes if this one is older (an out-of-order sample) or
 * if the node was not listed at all.  Call before the bucket is added. */
static void relist_for(window_set_t *ws, uint32_t w, uint32_t node, const window_state_t *s,
                       uint32_t slot, uint32_t off)
{
    uint32_t n = ws->nbuckets;
    if (s->nonempty == 0) {
        link_node(ws, w, node, slot);
        return;
    }
    uint32_t start = ring_slot(ws->win[w].cur + 1, n);
    uint32_t first = oldest_slot(ws, s, start);
    if (off < (first + n - start) % n) {
        unlink_node(ws, w, node, first);
        link_node(ws, w, node, slot);
    }
}

/* Move the sparse window s into a block of the pool (one that
 * window_reserve_dense() set aside). */
static void to_dense(window_set_t *ws, window_state_t *s)
{
    uint32_t d = take_dense(ws);
    uint64_t *mask = dmask(ws, d);
    int64_t *ring = dring(ws, d);
    __int128 sum = 0;
    for (uint32_t i = 0; i < s->nonempty; i++) {
        mask[s->slot[i] >> 6] |= 1ULL << (s->slot[i] & 63);
        ring[s->slot[i]] = s->val[i];
        sum += s->val[i];
    }
    *dsum(ws, d) = sum;
    s->dense = 1;
    s->block = d; /* the entries are in the ring now */
}

void window_add(window_set_t *ws, uint32_t node, const window_pos_t *pos, __int128 v)
{
    if (ws->nwin == 0) {
        return;
    }
    for (uint32_t w = 0; w < ws->nwin; w++) {
        int32_t slot = pos->slot[w];
        if (slot < 0) {
            continue;
        }
        window_state_t *s = state_of(ws, node, w);
        if (!s->dense) {
            uint32_t i = 0;
            while (i < s->nonempty && s->slot[i] != (uint32_t)slot) {
                i++;
            }
            if (i < s->nonempty) {
                if (fits32(s->val[i] + v)) {
                    s->val[i] = (int32_t)(s->val[i] + v);
                    continue;
                }
            } else if (i < WINDOW_SPARSE && fits32(v)) {
                relist_for(ws, w, node, s, (uint32_t)slot, pos->off[w]);
                s->slot[i] = (uint16_t)slot;
                s->val[i] = (int32_t)v;
                s->nonempty++;
                continue;
            }
            /* One bucket too many, or one beyond int32. */
            to_dense(ws, s);
        }
        uint64_t *mask = dmask(ws, s->block);
        uint64_t bit = 1ULL << (slot & 63);
        if ((mask[slot >> 6] & bit) == 0) {
            relist_for(ws, w, node, s, (uint32_t)slot, pos->off[w]);
            mask[slot >> 6] |= bit;
            s->nonempty++;
        }
        *dsum(ws, s->block) += v;
        int64_t *cell = &dring(ws, s->block)[slot];
        *cell = (int64_t)(*cell + v);
    }
}

void window_prefetch(const window_set_t *ws, uint32_t node)
{
    if (ws->block_size == 0)
        return; /* no windows */
    const uint8_t *b = block_of(ws, node);
    for (size_t off = 0; off < ws->block_size; off += 64)
        __builtin_prefetch(b + off, 1);
    __builtin_prefetch(b + ws->block_size - 1, 1);
}

bool window_value(const window_set_t *ws, uint32_t node, uint32_t w, int64_t *out)
{
    __int128 sum = sum_of(ws, state_of(ws, node, w));
    if (sum < INT64_MIN || sum > INT64_MAX) {
        return false;
    }
    *out = (int64_t)sum;
    return true;
}

/* Remove from node every bucket of window w that is older than the new
 * oldest bucket, then list the node under its new oldest bucket; a dense
 * ring left with WINDOW_SPARSE buckets or fewer goes back to the pool.
 * start0/start1 are the ring slots of the oldest bucket before and after
 * the move, shift the number of buckets the window moved. */
static void expire_node(window_set_t *ws, uint32_t w, uint32_t node, uint32_t start0,
                        uint32_t start1, int64_t shift, window_changed_fn fn, void *ctx)
{
    uint32_t n = ws->nbuckets;
    window_state_t *s = state_of(ws, node, w);
    __int128 removed = 0;
    if (is_dense(s)) {
        uint32_t d = s->block;
        uint64_t *mask = dmask(ws, d);
        int64_t *ring = dring(ws, d);
        for (uint32_t wi = 0; wi < ws->nwords; wi++) {
            for (uint64_t m = mask[wi]; m != 0; m &= m - 1) {
                uint32_t slot = wi * 64 + (uint32_t)__builtin_ctzll(m);
                if ((slot + n - start0) % n < shift) {
                    removed += ring[slot];
                    ring[slot] = 0;
                    mask[wi] &= ~(1ULL << (slot & 63));
                    s->nonempty--;
                }
            }
        }
        *dsum(ws, d) -= removed;
        bool small = s->nonempty <= WINDOW_SPARSE;
        for (uint32_t wi = 0; small && wi < ws->nwords; wi++) {
            for (uint64_t m = mask[wi]; m != 0; m &= m - 1) {
                small = small && fits32(ring[wi * 64 + (uint32_t)__builtin_ctzll(m)]);
            }
        }
        if (small) {
            uint32_t k = 0;
            for (uint32_t wi = 0; wi < ws->nwords; wi++) {
                for (uint64_t m = mask[wi]; m != 0; m &= m - 1) {
                    uint32_t slot = wi * 64 + (uint32_t)__builtin_ctzll(m);
                    s->slot[k] = (uint16_t)slot;
                    s->val[k++] = (int32_t)ring[slot];
                }
            }
            s->dense = 0;
            ws->dfree[ws->ndfree++] = d;
        }
    } else {
        uint32_t k = 0;
        for (uint32_t i = 0; i < s->nonempty; i++) {
            if ((s->slot[i] + n - start0) % n < shift) {
                removed += s->val[i];
            } else {
                s->slot[k] = s->slot[i];
                s->val[k++] = s->val[i];
            }
        }
        s->nonempty = k & 0x1fff;
    }
    s->prev = s->next = NIL;
    if (removed != 0) {
        fn(ctx, node);
    }
    if (s->nonempty != 0) {
        link_node(ws, w, node, oldest_slot(ws, s, start1));
    }
}

void window_advance(window_set_t *ws, int64_t now_ms, window_changed_fn fn, void *ctx)
{
    if (now_ms <= ws->now_ms) {
        return;
    }
    ws->now_ms = now_ms;
    uint32_t n = ws->nbuckets;
    for (uint32_t w = 0; w < ws->nwin; w++) {
        window_def_t *d = &ws->win[w];
        int64_t c1 = floor_div(now_ms, d->width_ms);
        if (c1 == d->cur) {
            continue;
        }
        int64_t shift = c1 - d->cur;
        uint32_t k = shift < (int64_t)n ? (uint32_t)shift : n;
        uint32_t start0 = ring_slot(d->cur + 1, n);
        uint32_t start1 = ring_slot(c1 + 1, n);
        /* The k oldest buckets leave, oldest first.  A node visited here
         * loses all its buckets that left and is relisted under a bucket
         * that stays, whose list is not among those visited. */
        for (uint32_t j = 0; j < k; j++) {
            uint32_t slot = (start0 + j) % n;
            uint32_t node = d->heads[slot];
            d->heads[slot] = NIL;
            while (node != NIL) {
                uint32_t next = state_of(ws, node, w)->next;
                expire_node(ws, w, node, start0, start1, shift, fn, ctx);
                node = next;
            }
        }
        d->cur = c1;
    }
}

int64_t window_next_ms(const window_set_t *ws)
{
    int64_t next = INT64_MAX;
    for (uint32_t w = 0; w < ws->nwin; w++) {
        int64_t t = (ws->win[w].cur + 1) * ws->win[w].width_ms;
        if (t < next) {
            next = t;
        }
    }
    return next;
}

uint32_t window_buckets(const window_set_t *ws, uint32_t node, uint32_t w, uint32_t *off,
                        int64_t *val)
{
    uint32_t n = ws->nbuckets;
    const window_state_t *s = state_of(ws, node, w);
    uint32_t start = ring_slot(ws->win[w].cur + 1, n);
    uint32_t k = 0;
    if (!is_dense(s)) {
        /* at most WINDOW_SPARSE entries, in no order: sort them by age */
        for (uint32_t i = 0; i < s->nonempty; i++) {
            if (s->val[i] == 0) {
                continue;
            }
            uint32_t age = (s->slot[i] + n - start) % n, j = k++;
            while (j > 0 && off[j - 1] > age) {
                off[j] = off[j - 1];
                val[j] = val[j - 1];
                j--;
            }
            off[j] = age;
            val[j] = s->val[i];
        }
        return k;
    }
    uint32_t left = s->nonempty;
    const uint64_t *mask = dmask(ws, s->block);
    const int64_t *ring = dring(ws, s->block);
    for (uint32_t i = 0; i < n && left > 0; i++) {
        uint32_t slot = (start + i) % n;
        if ((mask[slot >> 6] >> (slot & 63)) & 1) {
            left--;
            if (ring[slot] != 0) {
                off[k] = i;
                val[k++] = ring[slot];
            }
        }
    }
    return k;
}
