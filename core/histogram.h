/*
 * A log-linear histogram of non-negative integers (latencies in ns): exact
 * below 128, and within 1/128 (0.8 %) of the true value above, as
 * HdrHistogram with two significant digits; any uint64 fits. Recording is
 * an index computation and an increment; percentiles walk the buckets.
 *
 * Threading: none inside; one writer at a time, or merge per-thread copies.
 * Processes: plain memory. Ownership: the caller owns the struct (about
 * 60 KB: keep it off small stacks).
 */
#ifndef MPB_CORE_HISTOGRAM_H
#define MPB_CORE_HISTOGRAM_H

#include <stdint.h>

#define MPB_HISTOGRAM_SUB_BITS 7
#define MPB_HISTOGRAM_SUB (1u << MPB_HISTOGRAM_SUB_BITS)
#define MPB_HISTOGRAM_BUCKETS ((64 - MPB_HISTOGRAM_SUB_BITS + 1) * MPB_HISTOGRAM_SUB)

typedef struct mpb__histogram {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t sum; /* wraps past 1.8e19: 584 years of ns */
    uint64_t buckets[MPB_HISTOGRAM_BUCKETS];
} mpb__histogram;

void mpb__histogram_reset(mpb__histogram *h);
void mpb__histogram_record(mpb__histogram *h, uint64_t value);
/* Adds every value of src to dst. */
void mpb__histogram_merge(mpb__histogram *dst, const mpb__histogram *src);

/* out = the values recorded in now since it was before (an earlier copy of
 * the same histogram); min and max to within their buckets. */
void mpb__histogram_diff(mpb__histogram *out, const mpb__histogram *now,
                         const mpb__histogram *before);

/* The value at quantile q (0..1): the largest value of the bucket holding
 * it, never above the largest recorded; 0 when empty. */
uint64_t mpb__histogram_quantile(const mpb__histogram *h, double q);
double mpb__histogram_mean(const mpb__histogram *h);

/* Bucket helpers (for exporting): the bucket a value falls in, and the
 * largest value a bucket holds. */
unsigned mpb__histogram_bucket(uint64_t value);
uint64_t mpb__histogram_bucket_top(unsigned bucket);

#endif
