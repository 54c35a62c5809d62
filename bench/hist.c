/* hist.c - log-linear latency histogram (see hist.h). */
#include "hist.h"

#include <string.h>

/* Bucket of v: values below 128 map to themselves; above, v's top seven
 * bits (64..127) select one of 64 buckets of its power of two. */
static uint32_t bucket_of(uint64_t v)
{
    if (v >= HIST_MAX_NS)
        v = HIST_MAX_NS;
    if (v < 128)
        return (uint32_t)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - 6;
    uint32_t idx = 128 + (uint32_t)(shift - 1) * HIST_SUB + (uint32_t)((v >> shift) - HIST_SUB);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Lowest value and width of bucket i, the inverse of bucket_of. */
static void bucket_range(uint32_t i, uint64_t *lo, uint64_t *width)
{
    if (i < 128) {
        *lo = i;
        *width = 1;
        return;
    }
    uint32_t shift = (i - 128) / HIST_SUB + 1;
    uint64_t sub = (i - 128) % HIST_SUB + HIST_SUB;
    *lo = sub << shift;
    *width = 1ULL << shift;
}

void hist_init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_record(hist_t *h, int64_t ns)
{
    uint64_t v = ns < 0 ? 0 : (uint64_t)ns;
    h->counts[bucket_of(v)]++;
    h->n++;
    h->sum_ns += v;
    if (v > h->max_ns)
        h->max_ns = v;
}

void hist_merge(hist_t *dst, const hist_t *src)
{
    for (uint32_t i = 0; i < HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->n += src->n;
    dst->sum_ns += src->sum_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

uint64_t hist_percentile(const hist_t *h, double p)
{
    if (h->n == 0)
        return 0;
    if (p > 100.0)
        p = 100.0;
    /* The rank of the wanted value, 1-based, rounded up so that p99 of 100
     * values is the 99th, not the 98th. */
    double r = p / 100.0 * (double)h->n;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo, width;
            bucket_range(i, &lo, &width);
            uint64_t mid = lo + width / 2;
            return mid > h->max_ns ? h->max_ns : mid;
        }
    }
    return h->max_ns;
}

uint64_t hist_count(const hist_t *h)
{
    return h->n;
}

uint64_t hist_max(const hist_t *h)
{
    return h->max_ns;
}

uint64_t hist_mean(const hist_t *h)
{
    return h->n ? h->sum_ns / h->n : 0;
}
