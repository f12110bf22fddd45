/*
 * What the bench programs share: a monotonic clock in seconds, and medians
 * and percentiles of measured rounds (sorting in place).
 */
#ifndef MPB_BENCH_BENCH_UTIL_H
#define MPB_BENCH_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

static inline double
bench_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static inline int
bench_compare_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The value at p (0..1) of n values, nearest rank. */
static inline double
bench_percentile(double *values, size_t n, double p)
{
    qsort(values, n, sizeof *values, bench_compare_double);
    return values[(size_t)(p * (double)(n - 1) + 0.5)];
}

/* The median; the mean of the middle two when n is even. */
static inline double
bench_median(double *values, size_t n)
{
    qsort(values, n, sizeof *values, bench_compare_double);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

#endif
