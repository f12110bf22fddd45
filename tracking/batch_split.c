#include "tracking/batch_split_int.h"

#include "mpbatch/store.h"

static size_t
min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

void
mpb__batch_split_init(mpb__batch_split *self, size_t n_metrics, size_t n_params, size_t n_tags)
{
    *self = (mpb__batch_split){.n_metrics = n_metrics, .n_params = n_params, .n_tags = n_tags};
}

int
mpb__batch_split_next(mpb__batch_split *self, mpb__batch_part *part)
{
    size_t params_left = self->n_params - self->params_done;
    size_t tags_left = self->n_tags - self->tags_done;
    size_t metrics_left = self->n_metrics - self->metrics_done;
    if (params_left == 0 && tags_left == 0 && metrics_left == 0) {
        return 0;
    }
    part->param_first = self->params_done;
    part->n_params = min_size(params_left, MPB_MAX_PARAMS_TAGS_PER_BATCH);
    part->tag_first = self->tags_done;
    part->n_tags = min_size(tags_left, MPB_MAX_PARAMS_TAGS_PER_BATCH);
    size_t metric_room = min_size(MPB_MAX_ENTITIES_PER_BATCH - part->n_params - part->n_tags,
                                  MPB_MAX_METRICS_PER_BATCH);
    part->metric_first = self->metrics_done;
    part->n_metrics = min_size(metrics_left, metric_room);
    self->params_done += part->n_params;
    self->tags_done += part->n_tags;
    self->metrics_done += part->n_metrics;
    return 1;
}

int
mpb__batch_fits_one_call(size_t n_metrics, size_t n_params, size_t n_tags)
{
    return n_params <= MPB_MAX_PARAMS_TAGS_PER_BATCH && n_tags <= MPB_MAX_PARAMS_TAGS_PER_BATCH &&
           n_metrics <= MPB_MAX_METRICS_PER_BATCH &&
           n_metrics + n_params + n_tags <= MPB_MAX_ENTITIES_PER_BATCH;
}
