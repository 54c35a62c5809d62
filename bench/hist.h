/* hist.h - a latency histogram with log-linear buckets (HdrHistogram-like).
 *
 * Values are nanoseconds.  Below 128 ns every value has its own bucket;
 * above, each power of two is split into 64 equal buckets, so a bucket is at
 * most 1/64 of its lower bound wide and a percentile read back as the
 * bucket's midpoint is within 0.8% of the recorded value.  Values above
 * HIST_MAX_NS (10 s) are counted in the last bucket (and hist_max reports the
 * true maximum).  Recording is a few instructions and allocates nothing.
 *
 * A hist_t is a plain struct of fixed size (about 15 KiB): embed it or
 * allocate it, zero it with hist_init, and merge several with hist_merge.
 * Not thread-safe; give each thread its own.
 */
#ifndef TALLY_BENCH_HIST_H
#define TALLY_BENCH_HIST_H

#include <stdint.h>

#define HIST_MAX_NS  10000000000ULL /* 10 s */
#define HIST_SUB     64             /* buckets per power of two */
#define HIST_BUCKETS (128 + 28 * HIST_SUB)

typedef struct hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
    uint64_t max_ns;
    uint64_t sum_ns; /* for the mean; wraps after 584 years of latency */
} hist_t;

/* Zero *h. */
void hist_init(hist_t *h);

/* Count one value of ns nanoseconds (negative values are counted as 0). */
void hist_record(hist_t *h, int64_t ns);

/* Add every count of src to dst. */
void hist_merge(hist_t *dst, const hist_t *src);

/* The value at percentile p (0 < p <= 100), in nanoseconds: the midpoint
 * of the bucket holding the ceil(p/100 * n)-th smallest value, never above
 * hist_max.  Returns 0 for an empty histogram. */
uint64_t hist_percentile(const hist_t *h, double p);

/* Number of values counted, largest value, mean (0 when empty); ns. */
uint64_t hist_count(const hist_t *h);
uint64_t hist_max(const hist_t *h);
uint64_t hist_mean(const hist_t *h);

#endif
