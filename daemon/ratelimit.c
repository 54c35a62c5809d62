/* ratelimit.c - token buckets per township, in thousandths of a sample. */
#include "ratelimit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tally_error.h"
#include "vec.h"

/* A rate in samples per second is the same number of thousandths of a
 * sample per millisecond: that is why tokens are kept in thousandths. */
#define MILLI 1000

static bool valid(int64_t rate, int64_t burst, uint32_t max_keys)
{
    return rate >= 0 && rate <= RATELIMIT_RATE_MAX && burst >= 1 && burst <= RATELIMIT_BURST_MAX &&
           max_keys > 0;
}

int ratelimit_init(ratelimit_t *rl, int64_t rate_per_s, int64_t burst, uint32_t max_keys)
{
    memset(rl, 0, sizeof(*rl));
    if (!valid(rate_per_s, burst, max_keys))
        return TALLY_EINVAL;
    rl->rate = rate_per_s;
    rl->burst = burst;
    rl->max_keys = max_keys;
    return 0;
}

int ratelimit_set(ratelimit_t *rl, int64_t rate_per_s, int64_t burst, uint32_t max_keys)
{
    if (!valid(rate_per_s, burst, max_keys))
        return TALLY_EINVAL;
    rl->rate = rate_per_s;
    rl->burst = burst;
    if (max_keys > rl->max_keys)
        rl->max_keys = max_keys;
    int64_t cap = burst * MILLI;
    for (uint32_t i = 0; i < rl->nbuckets; i++)
        if (rl->buckets[i].tokens > cap)
            rl->buckets[i].tokens = cap;
    return 0;
}

void ratelimit_free(ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    free(rl->buckets);
    rl->buckets = NULL;
    rl->nbuckets = 0;
    rl->cap = 0;
}

/* Set up the buckets up to id: the array doubles, so a county of N
 * townships costs log N allocations in all, each when a new township first
 * submits. */
static int grow(ratelimit_t *rl, uint32_t id)
{
    if (VEC_RESERVE(rl->buckets, rl->cap, (size_t)id + 1) != 0)
        return TALLY_ENOMEM;
    for (uint32_t i = rl->nbuckets; i <= id; i++) {
        rl->buckets[i].tokens = 0;
        rl->buckets[i].last_ms = INT64_MIN;
    }
    rl->nbuckets = id + 1;
    return 0;
}

static void refill(const ratelimit_t *rl, ratelimit_bucket_t *b, int64_t now_ms, int64_t cap)
{
    if (b->last_ms == INT64_MIN) {
        b->tokens = cap;
        b->last_ms = now_ms;
        return;
    }
    if (now_ms <= b->last_ms)
        return;
    int64_t elapsed = now_ms - b->last_ms;
    b->last_ms = now_ms;
    /* Compare before multiplying: a bucket idle for days would overflow
     * elapsed * rate. */
    int64_t missing = cap - b->tokens;
    if (missing <= 0)
        return;
    if (elapsed >= (missing + rl->rate - 1) / rl->rate)
        b->tokens = cap;
    else
        b->tokens += elapsed * rl->rate;
}

int ratelimit_take(ratelimit_t *rl, uint32_t township_id, uint32_t n_samples, int64_t now_ms,
                   int64_t *wait_ms)
{
    if (wait_ms != NULL)
        *wait_ms = 0;
    if (township_id >= rl->max_keys)
        return TALLY_EINVAL;
    if (rl->rate == 0)
        return 0;
    if (township_id >= rl->nbuckets) {
        int rc = grow(rl, township_id);
        if (rc != 0)
            return rc;
    }
    ratelimit_bucket_t *b = &rl->buckets[township_id];
    int64_t cap = rl->burst * MILLI;
    refill(rl, b, now_ms, cap);
    int64_t need = (int64_t)n_samples * MILLI;
    /* More than the bucket holds can only ever fit a full bucket. */
    int64_t required = need < cap ? need : cap;
    if (b->tokens >= required) {
        b->tokens -= need;
        return 0;
    }
    rl->limited++;
    if (wait_ms != NULL)
        *wait_ms = (required - b->tokens + rl->rate - 1) / rl->rate;
    return TALLY_ERATELIMIT;
}
