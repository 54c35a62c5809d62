/* window.h - the sliding windows of the tally engine ("1h", "24h", ...).
 *
 * A window of width W is a ring of N buckets of width W/N.  Buckets are
 * named by their absolute index floor(t_ms / bucket_width); the window's
 * value at "now" is the sum of the buckets from cur - N + 1 to cur, where
 * cur is the index of the bucket holding now.  A sample lands in the bucket
 * of its event time; a sample from the future (clock skew) lands in the
 * current bucket; a sample older than the window does not enter it.
 *
 * Every counter series owns one node of the set: per window its non-empty
 * buckets.  Most series change a few times a day by small amounts, so a
 * window holds up to WINDOW_SPARSE buckets in the node itself (their ring
 * slots and 32-bit values, unordered), and its value is their sum; a
 * window that needs more, or a bucket beyond int32, takes a dense block
 * from the set's pool: the running sum, a bit mask and a ring of N 64-bit
 * sums, and gives it back when expiry leaves it WINDOW_SPARSE buckets or
 * fewer, all within int32.  Sums are taken in 128 bits (expiry removes buckets
 * in time order, not in the order they were added, so partial sums of
 * mixed-sign samples may leave int64 for a while; window_value() reports
 * such a sum as "no value").  A bucket counts
 * as non-empty from its first sample until it expires, even if its
 * samples sum to 0.
 *
 * Buckets leave a window eagerly: each window keeps a timing wheel of N
 * lists, and a node is listed under its oldest non-empty bucket.  When the
 * window moves on (window_advance), only the lists of the buckets that left
 * it are visited, so the cost is proportional to the buckets that expire,
 * and a step in which nothing expires costs O(number of windows).  Because
 * of that invariant every bucket a node holds is inside the window, so no
 * bucket index needs to be stored.
 *
 * Memory per node: nwin * 28 bytes (112 for 4 windows), plus
 * 16 + 8 * (N + ceil(N / 64)) bytes rounded up to 16 (512 for N = 60) for
 * each window that holds more than WINDOW_SPARSE buckets at the moment.
 */
#ifndef TALLYD_WINDOW_H
#define TALLYD_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memhint.h"
#include "proto.h"

#define WINDOW_MAX         (PROTO_COLUMNS_MAX - 5) /* the calendar periods and total take 5 */
#define WINDOW_BUCKETS_MAX 4096                    /* buckets per window */
#define WINDOW_NAME_MAX    PROTO_COLUMN_NAME_MAX
#define WINDOW_MS_MAX      (3660LL * 86400000) /* 3660 days, the daemon's default max_age */

/* A window as configured: its column name and its width. */
typedef struct window_spec {
    const char *name; /* 1..WINDOW_NAME_MAX bytes, unique */
    int64_t ms;       /* width, 1..WINDOW_MS_MAX, a multiple of the bucket count */
} window_spec_t;

#define WINDOW_SPARSE 3 /* buckets a window holds in the node itself */
_Static_assert(WINDOW_BUCKETS_MAX < (1 << 13), "window_state_t.nonempty has 13 bits");

/* Per node and window (28 bytes).  A sparse window holds its buckets
 * here, as 32-bit sums; its value is their sum.  A window with more than
 * WINDOW_SPARSE non-empty buckets, or a bucket outside int32, is dense:
 * its sum and buckets are in a block of the pool. */
typedef struct window_state {
    uint32_t prev; /* links in the wheel list of the oldest non-empty bucket */
    uint32_t next;
    uint16_t nonempty : 13;       /* non-empty buckets (at most WINDOW_BUCKETS_MAX) */
    uint16_t dense : 1;           /* the buckets are in pool block `block` */
    uint16_t slot[WINDOW_SPARSE]; /* sparse: ring slots of entries 0..nonempty-1 */
    union {
        int32_t val[WINDOW_SPARSE]; /* sparse: their sums */
        uint32_t block;             /* dense: the pool block (index + 1) */
    };
} window_state_t;

typedef struct window_def {
    char name[WINDOW_NAME_MAX + 1];
    int64_t width_ms; /* bucket width */
    int64_t cur;      /* absolute index of the bucket holding now */
    uint32_t *heads;  /* wheel: nbuckets list heads, by ring slot */
} window_def_t;

typedef struct window_set {
    window_def_t win[WINDOW_MAX];
    uint32_t nwin;
    uint32_t nbuckets;
    uint32_t nwords; /* uint64_t words of a bucket mask */
    int64_t now_ms;
    size_t block_size; /* bytes per node */
    uint8_t **chunks;  /* node storage, WINDOW_CHUNK nodes each */
    uint32_t nchunks;
    uint32_t maxchunks;
    /* The pool of dense blocks: the window's 128-bit sum, nwords mask
     * words, then nbuckets sums; WINDOW_DENSE_CHUNK per allocation, and
     * the free ones. */
    size_t dense_size;
    uint8_t **dchunks;
    uint32_t ndchunks, dchunks_cap;
    uint32_t *dfree;
    uint32_t ndfree, dfree_cap;
    size_t mem;
} window_set_t;

/* Where a sample lands: per window its ring slot, or -1 when it is older
 * than the window, and its offset from the window's oldest bucket. */
typedef struct window_pos {
    int32_t slot[WINDOW_MAX];
    uint32_t off[WINDOW_MAX];
} window_pos_t;

/* Called for each node whose value of some window changed. */
typedef void (*window_changed_fn)(void *ctx, uint32_t node);

/* Check nwin windows of nbuckets buckets each: nwin <= WINDOW_MAX, nbuckets
 * 1..WINDOW_BUCKETS_MAX, names of 1..WINDOW_NAME_MAX bytes, unique and not
 * in the NULL-terminated list reserved, widths 1..WINDOW_MS_MAX and a
 * multiple of nbuckets (so every bucket is a whole number of milliseconds
 * and the window exactly its width).  Returns 0, or TALLY_EINVAL with a
 * sentence naming the field, the value and the limit in msg (when msg is
 * not NULL and msglen > 0). */
int window_check(const window_spec_t *spec, uint32_t nwin, uint32_t nbuckets,
                 const char *const *reserved, char *msg, size_t msglen);

/* Initialise an empty set of the nwin windows of spec (copied), which
 * window_check() accepted, with nbuckets buckets each.  The set's "now" is
 * now_ms; it is sized for max_nodes nodes (window_reserve() grows it
 * beyond).  Returns 0, TALLY_EINVAL
 * (window_check fails) or TALLY_ENOMEM. */
int window_set_init(window_set_t *ws, const window_spec_t *spec, uint32_t nwin, uint32_t nbuckets,
                    uint32_t max_nodes, int64_t now_ms);

/* Column name of window w (< nwin), owned by the set. */
static inline const char *window_name(const window_set_t *ws, uint32_t w)
{
    return ws->win[w].name;
}

/* Free the set's storage. */
void window_set_free(window_set_t *ws);

/* Tell fn of each block of memory the set holds (memhint_unshare()). */
void window_set_regions(const window_set_t *ws, memhint_region_fn fn, void *ctx);

/* Make sure node ids < nodes have storage (allocates whole chunks).
 * Returns 0 or TALLY_ENOMEM; beyond max_nodes, the table of chunks grows
 * too (nodes never move). */
int window_reserve(window_set_t *ws, uint32_t nodes);

/* Reset node (storage reserved) to empty.  A node is never freed. */
void window_node_init(window_set_t *ws, uint32_t node);

/* Where a sample with event time t_ms lands, relative to the set's now. */
void window_locate(const window_set_t *ws, int64_t t_ms, window_pos_t *pos);

/* Narrow [*lo, *hi] so that adding any delta in it to node at pos keeps
 * each touched bucket and each touched window's sum within int64. */
void window_bounds(const window_set_t *ws, uint32_t node, const window_pos_t *pos, __int128 *lo,
                   __int128 *hi);

/* Make sure the pool has n free dense rings, so that the next n
 * window_add() calls that may each need one cannot fail.  Returns 0 or
 * TALLY_ENOMEM. */
int window_reserve_dense(window_set_t *ws, uint32_t n);

/* Add v to node at pos.  v is 128 bits so a batch's net sum can be added
 * at once; the caller checked the bounds, so every result fits int64.  A
 * window that needs a dense ring takes one window_reserve_dense() set
 * aside: no allocation. */
void window_add(window_set_t *ws, uint32_t node, const window_pos_t *pos, __int128 v);

/* Value of window w of node: true and *out set, or false when the sum is
 * outside int64 (see above). */
bool window_value(const window_set_t *ws, uint32_t node, uint32_t w, int64_t *out);

/* Ask the CPU for node's states (engine_prefetch()). */
void window_prefetch(const window_set_t *ws, uint32_t node);

/* The non-zero buckets of window w of node, oldest first, for checkpoints:
 * stores in off[k] how many buckets bucket k comes after the window's
 * oldest bucket (0..nbuckets-1, increasing) and in val[k] its value, and
 * returns the count k.  off and val need room for nbuckets entries.
 * Adding each (off, val) back with window_add() at a window_pos_t of slot
 * (oldest + off) mod nbuckets rebuilds the window exactly, expiry included. */
uint32_t window_buckets(const window_set_t *ws, uint32_t node, uint32_t w, uint32_t *off,
                        int64_t *val);

/* Move the set's now forward to now_ms (earlier times are ignored): expire
 * the buckets that leave each window, calling fn for each node whose
 * window value changed.  Cost: O(nwin + buckets expiring), see above. */
void window_advance(window_set_t *ws, int64_t now_ms, window_changed_fn fn, void *ctx);

/* The earliest time at which some bucket may leave some window (the start
 * of the next bucket of the window with the finest buckets), or INT64_MAX
 * without windows. */
int64_t window_next_ms(const window_set_t *ws);

/* Bytes of memory the set holds. */
static inline size_t window_memory(const window_set_t *ws)
{
    return ws->mem;
}

#endif
