/* ratelimit.h - a token bucket per township: [limits] rate and burst.
 *
 * Each township (by its dense intern id) has a bucket of at most `burst`
 * samples that refills at `rate` samples per second; a submission of n
 * samples takes n tokens.  A township seen for the first time starts with a
 * full bucket.  Tokens are counted in thousandths of a sample, so any rate
 * from 1 to 10^9 per second refills exactly per millisecond, with integer
 * arithmetic only.
 *
 * A submission larger than the whole bucket (n > burst, possible when burst
 * is below max_samples) would never fit; it is let through when the bucket
 * is full and drives the bucket into debt, which later submissions wait
 * out.  So every submission gets through eventually and the long-run rate
 * still holds.
 *
 * Time is whatever monotonic milliseconds the caller passes (tests pass a
 * fake clock); time that goes backwards refills nothing.
 *
 * Cost: ratelimit_take() is O(1).  It allocates only when a township id
 * beyond the array is first seen (amortised doubling, up to max_keys), so
 * not per sample.  Rate 0 means no limit: nothing is counted or allocated.
 */
#ifndef TALLYD_RATELIMIT_H
#define TALLYD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_RATE_MAX  1000000000 /* samples per second, as config_keys.c allows */
#define RATELIMIT_BURST_MAX 1000000000 /* samples */

typedef struct ratelimit_bucket {
    int64_t tokens;  /* thousandths of a sample; may be negative (debt) */
    int64_t last_ms; /* time of the last refill; INT64_MIN: never seen */
} ratelimit_bucket_t;

typedef struct ratelimit {
    ratelimit_bucket_t *buckets; /* by township id */
    uint32_t nbuckets;           /* set up: ids 0 .. nbuckets-1 */
    size_t cap;                  /* allocated */
    uint32_t max_keys;           /* ids 0 .. max_keys-1 are accepted */
    int64_t rate;                /* samples per second; 0 = unlimited */
    int64_t burst;               /* samples */
    uint64_t limited;            /* ratelimit_take() calls refused */
} ratelimit_t;

/* Set up an empty limiter for township ids 0 .. max_keys-1 (the daemon
 * passes max_townships + 1: id 0 is the county).  rate 0 = unlimited.
 * Returns 0 or TALLY_EINVAL (rate outside 0..RATELIMIT_RATE_MAX, burst
 * outside 1..RATELIMIT_BURST_MAX, max_keys 0). */
int ratelimit_init(ratelimit_t *rl, int64_t rate_per_s, int64_t burst, uint32_t max_keys);

/* Change rate and burst (a reload).  Buckets keep their tokens, cut to the
 * new burst; a bucket in debt stays in debt.  max_keys may grow, not
 * shrink (a smaller value is ignored: ids already handed out stay valid).
 * Returns 0 or TALLY_EINVAL (as ratelimit_init; nothing changed then). */
int ratelimit_set(ratelimit_t *rl, int64_t rate_per_s, int64_t burst, uint32_t max_keys);

/* Take n_samples tokens from township_id's bucket at now_ms.  Returns 0
 * (taken; *wait_ms = 0), TALLY_ERATELIMIT (nothing taken; *wait_ms is how
 * many ms until the same call would succeed, >= 1), TALLY_EINVAL
 * (township_id >= max_keys; a programmer error the daemon should never
 * make) or TALLY_ENOMEM (the array could not grow).  wait_ms may be NULL. */
int ratelimit_take(ratelimit_t *rl, uint32_t township_id, uint32_t n_samples, int64_t now_ms,
                   int64_t *wait_ms);

/* Release the buckets; rl may be initialised again afterwards.  NULL is
 * ignored. */
void ratelimit_free(ratelimit_t *rl);

#endif
