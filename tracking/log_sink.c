/*
 * The default sink of the logging queue: the mpb_store_* functions, with the
 * store as context.
 */
#include "mpbatch/store.h"
#include "tracking/logging_queue_int.h"

static int
store_create_run(void *ctx, const char *experiment_id, const char *user_id, int64_t start_time_ms,
                 const char *run_name, const mpb_tag *tags, size_t n_tags, char **out_run_id,
                 char *err, size_t err_len)
{
    return mpb_store_create_run(ctx, experiment_id, user_id, start_time_ms, run_name, tags, n_tags,
                                out_run_id, err, err_len);
}

static int
store_log_batch(void *ctx, const char *run_id, const mpb_metric *metrics, size_t n_metrics,
                const mpb_param *params, size_t n_params, const mpb_tag *tags, size_t n_tags,
                char *err, size_t err_len)
{
    return mpb_store_log_batch(ctx, run_id, metrics, n_metrics, params, n_params, tags, n_tags, err,
                               err_len);
}

static int
store_update_run(void *ctx, const char *run_id, mpb_run_status status, int64_t end_time_ms,
                 char *err, size_t err_len)
{
    return mpb_store_update_run(ctx, run_id, status, end_time_ms, NULL, err, err_len);
}

const mpb__log_sink mpb__store_log_sink = {
    .create_run = store_create_run,
    .log_batch = store_log_batch,
    .update_run = store_update_run,
};
