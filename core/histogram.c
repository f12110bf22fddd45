#include <string.h>

#include "core/histogram.h"

void
mpb__histogram_reset(mpb__histogram *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

unsigned
mpb__histogram_bucket(uint64_t value)
{
    if (value < MPB_HISTOGRAM_SUB) {
        return (unsigned)value;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(value);
    unsigned shift = msb - MPB_HISTOGRAM_SUB_BITS;
    /* the top SUB_BITS + 1 bits pick the bucket inside the octave */
    return (shift + 1) * MPB_HISTOGRAM_SUB + (unsigned)((value >> shift) - MPB_HISTOGRAM_SUB);
}

uint64_t
mpb__histogram_bucket_top(unsigned bucket)
{
    if (bucket < MPB_HISTOGRAM_SUB) {
        return bucket;
    }
    unsigned shift = bucket / MPB_HISTOGRAM_SUB - 1;
    uint64_t low = (uint64_t)(MPB_HISTOGRAM_SUB + bucket % MPB_HISTOGRAM_SUB) << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

void
mpb__histogram_record(mpb__histogram *h, uint64_t value)
{
    h->buckets[mpb__histogram_bucket(value)]++;
    h->count++;
    h->sum += value;
    if (value < h->min) {
        h->min = value;
    }
    if (value > h->max) {
        h->max = value;
    }
}

void
mpb__histogram_merge(mpb__histogram *dst, const mpb__histogram *src)
{
    if (src->count == 0) {
        return;
    }
    for (unsigned i = 0; i < MPB_HISTOGRAM_BUCKETS; i++) {
        dst->buckets[i] += src->buckets[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

void
mpb__histogram_diff(mpb__histogram *out, const mpb__histogram *now, const mpb__histogram *before)
{
    mpb__histogram_reset(out);
    unsigned first = MPB_HISTOGRAM_BUCKETS;
    unsigned last = 0;
    for (unsigned i = 0; i < MPB_HISTOGRAM_BUCKETS; i++) {
        uint64_t n = now->buckets[i] - before->buckets[i];
        out->buckets[i] = n;
        if (n > 0) {
            first = first < i ? first : i;
            last = i;
        }
    }
    out->count = now->count - before->count;
    out->sum = now->sum - before->sum;
    if (first < MPB_HISTOGRAM_BUCKETS) {
        out->min = first == 0 ? 0 : mpb__histogram_bucket_top(first - 1) + 1;
        uint64_t top = mpb__histogram_bucket_top(last);
        out->max = top < now->max ? top : now->max;
    }
}

uint64_t
mpb__histogram_quantile(const mpb__histogram *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    if (q <= 0) {
        return h->min;
    }
    /* the rank of the value asked for, counted from 1 */
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > h->count) {
        rank = h->count;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < MPB_HISTOGRAM_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t top = mpb__histogram_bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}

double
mpb__histogram_mean(const mpb__histogram *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0;
}
