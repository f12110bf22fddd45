#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "servlets/metrics.h"

mpb__metrics *
mpb__metrics_new(void)
{
    mpb__metrics *m = mpb_calloc(1, sizeof *m);
    mpb__histogram_reset(&m->latency);
    mpb__histogram_reset(&m->batch_size);
    mpb__histogram_reset(&m->first_wait);
    mpb__histogram_reset(&m->compute);
    return m;
}

void
mpb__metrics_free(mpb__metrics **metrics_p)
{
    free(*metrics_p);
    *metrics_p = NULL;
}

static void
count_error(mpb__metrics *m, const char *type)
{
    size_t max = sizeof m->by_type[0].type - 1;
    for (size_t i = 0; i < m->n_types; i++) {
        if (strncmp(m->by_type[i].type, type, max) == 0) {
            m->by_type[i].count++;
            return;
        }
    }
    if (m->n_types < MPB_METRICS_ERROR_TYPES) {
        mpb__error_count *e = &m->by_type[m->n_types++];
        snprintf(e->type, sizeof e->type, "%s", type);
        e->count = 1;
        return;
    }
    m->other_errors++;
}

void
mpb__metrics_answer(mpb__metrics *m, int64_t start_ns, int64_t now_ns, const mpb_result *result)
{
    m->items++;
    mpb__histogram_record(&m->latency, (uint64_t)(now_ns > start_ns ? now_ns - start_ns : 0));
    if (result != NULL && mpb_result_is_error(result)) {
        m->errors++;
        const mpb_item_error *e = mpb_result_error(result);
        count_error(m, e && e->type ? e->type : "Unknown");
    }
}

void
mpb__metrics_batch(mpb__metrics *m, const mpb_batch_telemetry *t)
{
    m->batches++;
    m->batched_items += t->size;
    mpb__histogram_record(&m->batch_size, t->size);
    mpb__histogram_record(&m->first_wait,
                          (uint64_t)(t->first_wait_us > 0 ? t->first_wait_us : 0) * 1000);
    mpb__histogram_record(&m->compute, (uint64_t)(t->compute_us > 0 ? t->compute_us : 0) * 1000);
}
