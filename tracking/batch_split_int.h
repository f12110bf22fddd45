/*
 * Splitting a batch into store calls within MLflow's limits, the way
 * MLflow's clients chunk log_batch: params and tags by 100 side by side, each
 * part filled with metrics up to 1000 entities, then the remaining metrics by
 * 1000.
 * Threading: pure functions on caller-owned state. Processes: n/a.
 * Ownership: the splitter is a plain value the caller owns.
 */
#ifndef MPB_TRACKING_BATCH_SPLIT_INT_H
#define MPB_TRACKING_BATCH_SPLIT_INT_H

#include <stddef.h>

/* One store call's slice of a batch: [first, first + count) of each array. */
typedef struct mpb__batch_part {
    size_t metric_first;
    size_t n_metrics;
    size_t param_first;
    size_t n_params;
    size_t tag_first;
    size_t n_tags;
} mpb__batch_part;

typedef struct mpb__batch_split {
    size_t n_metrics;
    size_t n_params;
    size_t n_tags;
    size_t metrics_done;
    size_t params_done;
    size_t tags_done;
} mpb__batch_split;

void
mpb__batch_split_init(mpb__batch_split *self, size_t n_metrics, size_t n_params, size_t n_tags);

/* Fills *part with the next slice and returns 1; returns 0 when nothing is
 * left (an empty batch yields no part). */
int
mpb__batch_split_next(mpb__batch_split *self, mpb__batch_part *part);

/* True when the counts fit one store call. */
int
mpb__batch_fits_one_call(size_t n_metrics, size_t n_params, size_t n_tags);

#endif
