/*
 * TEMPORARY: stand-ins for the store contract (include/mpbatch/store.h) until
 * branch tracking-store is merged; every call fails with MPB_ENOTSUP. Removed
 * by the merge.
 */
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"

int
mpb_store_create_run(mpb_store *self, const char *experiment_id, const char *user_id,
                     int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                     size_t n_tags, char **out_run_id, char *err, size_t err_len)
{
    return mpb__set_error(err, err_len, MPB_ENOTSUP, "no store yet");
}

int
mpb_store_update_run(mpb_store *self, const char *run_id, mpb_run_status status,
                     int64_t end_time_ms, const char *run_name, char *err, size_t err_len)
{
    return mpb__set_error(err, err_len, MPB_ENOTSUP, "no store yet");
}

int
mpb_store_log_batch(mpb_store *self, const char *run_id, const mpb_metric *metrics,
                    size_t n_metrics, const mpb_param *params, size_t n_params, const mpb_tag *tags,
                    size_t n_tags, char *err, size_t err_len)
{
    return mpb__set_error(err, err_len, MPB_ENOTSUP, "no store yet");
}
