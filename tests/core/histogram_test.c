/*
 * The latency histogram: exact below 128, within 1/128 above; quantiles
 * agree with a sorted copy of the same values to that precision; merging
 * two is recording both; the extremes of uint64 fit.
 */
#include <math.h>

#include "support.h"

#include "core/histogram.h"

static int
compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void
small_values_are_exact_and_large_ones_close(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < 128; v++) {
        assert_int_equal(mpb__histogram_bucket_top(mpb__histogram_bucket(v)), v);
    }
    uint64_t seed = 88172645463325252ULL;
    for (int i = 0; i < 100000; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        uint64_t v = seed >> (seed % 60); /* every magnitude */
        unsigned b = mpb__histogram_bucket(v);
        assert_true(b < MPB_HISTOGRAM_BUCKETS);
        uint64_t top = mpb__histogram_bucket_top(b);
        assert_true(top >= v);
        assert_true((double)(top - v) <= (double)v / 128.0);
        /* the bucket's top is in the bucket, the next value is not */
        assert_int_equal(mpb__histogram_bucket(top), b);
        if (top != UINT64_MAX) {
            assert_int_equal(mpb__histogram_bucket(top + 1), b + 1);
        }
    }
    assert_int_equal(mpb__histogram_bucket(UINT64_MAX), MPB_HISTOGRAM_BUCKETS - 1);
    assert_true(mpb__histogram_bucket_top(MPB_HISTOGRAM_BUCKETS - 1) == UINT64_MAX);
}

static void
quantiles_match_a_sorted_copy(void **state)
{
    (void)state;
    mpb__histogram *h = mpb_malloc(sizeof *h);
    mpb__histogram_reset(h);
    enum { N = 20000 };
    uint64_t *values = mpb_malloc(N * sizeof *values);
    uint64_t seed = 1234567;
    long double sum = 0;
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        /* a latency-like spread: mostly 50-150 us, a tail to 20 ms */
        uint64_t v = 50000 + (seed >> 33) % 100000;
        if (i % 100 == 0) {
            v = 1000000 + (seed >> 40) % 19000000;
        }
        values[i] = v;
        sum += v;
        mpb__histogram_record(h, v);
    }
    qsort(values, N, sizeof *values, compare_u64);
    double qs[] = {0.5, 0.9, 0.99, 0.999, 1.0};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        size_t rank = (size_t)ceil(qs[k] * N);
        uint64_t exact = values[rank - 1];
        uint64_t got = mpb__histogram_quantile(h, qs[k]);
        assert_true(got >= exact);
        assert_true((double)(got - exact) <= (double)exact / 128.0);
    }
    assert_int_equal(mpb__histogram_quantile(h, 0), values[0]);
    assert_int_equal(mpb__histogram_quantile(h, 1), values[N - 1]);
    assert_true(fabs(mpb__histogram_mean(h) - (double)(sum / N)) < 1.0);
    free(values);
    free(h);
}

static void
merging_is_recording_both(void **state)
{
    (void)state;
    mpb__histogram *a = mpb_malloc(sizeof *a);
    mpb__histogram *b = mpb_malloc(sizeof *b);
    mpb__histogram *both = mpb_malloc(sizeof *both);
    mpb__histogram_reset(a);
    mpb__histogram_reset(b);
    mpb__histogram_reset(both);
    for (uint64_t v = 1; v < 5000; v += 7) {
        mpb__histogram_record(v % 2 ? a : b, v * 1000);
        mpb__histogram_record(both, v * 1000);
    }
    mpb__histogram_merge(a, b);
    assert_int_equal(a->count, both->count);
    assert_int_equal(a->min, both->min);
    assert_int_equal(a->max, both->max);
    assert_memory_equal(a->buckets, both->buckets, sizeof a->buckets);
    mpb__histogram_reset(b);
    assert_int_equal(mpb__histogram_quantile(b, 0.5), 0); /* empty */
    mpb__histogram_merge(a, b);
    assert_int_equal(a->count, both->count);
    free(a);
    free(b);
    free(both);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_values_are_exact_and_large_ones_close),
        cmocka_unit_test(quantiles_match_a_sorted_copy),
        cmocka_unit_test(merging_is_recording_both),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
