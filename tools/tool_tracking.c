#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/tracking.h"
#include "tools/tool_tracking.h"

mpb_server_tracker *
mpb__tool_tracking_start(const mpb_config *config, const char *tool)
{
    const char *uri = mpb_config_get(config, "tracking.uri");
    const char *experiment = mpb_config_get(config, "tracking.experiment");
    if (uri == NULL && experiment == NULL) {
        return NULL;
    }
    char err[512] = "";
    char run_id[64];
    const char *run_name = mpb_config_get(config, "tracking.run_name");
    char default_name[64];
    snprintf(default_name, sizeof default_name, "%s", tool);
    for (char *c = default_name; *c; c++) {
        *c = *c == ' ' ? '-' : *c;
    }
    if ((uri != NULL && mpb_tracking_set_tracking_uri(uri, err, sizeof err) != 0) ||
        (experiment != NULL && mpb_tracking_set_experiment(experiment, err, sizeof err) != 0) ||
        mpb_tracking_start_run(run_name ? run_name : default_name, run_id, sizeof run_id, err,
                               sizeof err) != 0) {
        fprintf(stderr, "%s: tracking: %s\n", tool, err);
        return NULL;
    }
    /* every servlet setting of the tree, by its path below servlet. */
    for (size_t i = 0; i < mpb_config_count(config); i++) {
        const char *path = mpb_config_key(config, i);
        if (strncmp(path, "servlet.", 8) == 0) {
            mpb_tracking_log_param(path + 8, mpb_config_value(config, i));
        }
    }
    mpb_server_tracker *tracker = mpb_server_tracker_new(mpb_tracking_store(NULL, 0), run_id);
    if (mpb_server_tracker_start(tracker, err, sizeof err) != 0) {
        fprintf(stderr, "%s: tracking: %s\n", tool, err);
        mpb_server_tracker_destroy(&tracker);
    }
    return tracker;
}

void
mpb__tool_tracking_finish(mpb_server_tracker *tracker, mpb_server *server, int64_t start_ns,
                          int status, const char *tool)
{
    mpb_server_tracker_destroy(&tracker);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    double seconds = (double)(mpb_now_ns() - start_ns) / 1e9;
    mpb_tracking_log_metric("items", (double)stats.completed, 0);
    mpb_tracking_log_metric("errors", (double)stats.errors, 0);
    mpb_tracking_log_metric("items_per_s", seconds > 0 ? (double)stats.completed / seconds : 0, 0);
    mpb_tracking_log_metric(
        "mean_batch_size",
        stats.batches ? (double)stats.batched_items / (double)stats.batches : 0.0, 0);
    char run_id[64] = "";
    mpb_tracking_active_run_id(run_id, sizeof run_id);
    char err[256];
    if (mpb_tracking_end_run(status == 0 ? MPB_RUN_FINISHED : MPB_RUN_FAILED, err, sizeof err) !=
        0) {
        fprintf(stderr, "%s: tracking: %s\n", tool, err);
        return;
    }
    fprintf(stderr, "%s: tracked as run %s\n", tool, run_id);
}

mpb_server *
mpb__tool_server_new(const mpb_config *config, const char *tool, mpb_server_tracker **tracker)
{
    mpb_server_options options;
    mpb_config_server_options(config, &options);
    *tracker = mpb__tool_tracking_start(config, tool);
    if (*tracker != NULL) {
        options.on_batch = mpb_server_tracker_on_batch;
        options.on_batch_ctx = *tracker;
    }
    mpb_servlet *servlet = mpb_config_servlet(config);
    return mpb_server_new(&servlet, &options);
}
