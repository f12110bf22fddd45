#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/tracking.h"
#include "tools/tool_tracking.h"

/* A count of the tracking: section; a bad one is reported and left at its default. */
static void
config_count(const mpb_config *config, const char *key, const char *tool, uint64_t *value)
{
    const char *text = mpb_config_get(config, key);
    if (text == NULL) {
        return;
    }
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] == '-' || end == text || *end != '\0') {
        fprintf(stderr, "%s: %s: '%s' is not a count; using %llu\n", tool, key, text,
                (unsigned long long)*value);
        return;
    }
    *value = v;
}

static int
config_flag(const mpb_config *config, const char *key, int fallback)
{
    const char *text = mpb_config_get(config, key);
    if (text == NULL) {
        return fallback;
    }
    return strcmp(text, "true") == 0 || strcmp(text, "yes") == 0 || strcmp(text, "1") == 0;
}

/* tracking.items (default true), items_first, items_every, items_max,
 * log_payloads, payload_max: the per-item records (docs/metrics.md). */
static void
tracker_options(const mpb_config *config, const char *tool, mpb_server_tracker_options *o)
{
    mpb_server_tracker_options_init(o);
    config_count(config, "tracking.items_first", tool, &o->items_first);
    config_count(config, "tracking.items_every", tool, &o->items_every);
    config_count(config, "tracking.items_max", tool, &o->items_max);
    uint64_t payload = o->payload_max;
    config_count(config, "tracking.payload_max", tool, &payload);
    o->payload_max = (size_t)payload;
    o->log_payloads = config_flag(config, "tracking.log_payloads", 0);
    if (!config_flag(config, "tracking.items", 1)) {
        o->items_first = o->items_max = 0;
    }
}

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
    mpb__tool_tag_models();
    /* every servlet setting of the tree, by its path below servlet. */
    for (size_t i = 0; i < mpb_config_count(config); i++) {
        const char *path = mpb_config_key(config, i);
        if (strncmp(path, "servlet.", 8) == 0) {
            mpb_tracking_log_param(path + 8, mpb_config_value(config, i));
        }
    }
    mpb_server_tracker_options options;
    tracker_options(config, tool, &options);
    mpb_server_tracker *tracker =
        mpb_server_tracker_new_with(mpb_tracking_store(NULL, 0), run_id, &options);
    if (mpb_server_tracker_start(tracker, err, sizeof err) != 0) {
        fprintf(stderr, "%s: tracking: %s\n", tool, err);
        mpb_server_tracker_destroy(&tracker);
    }
    return tracker;
}

void
mpb__tool_tracking_finish(mpb_server_tracker *tracker, mpb_server *server, int64_t start_ns,
                          mpb_run_status end, const char *tool)
{
    /* the serving time, before the tracker writes what it holds */
    double seconds = (double)(mpb_now_ns() - start_ns) / 1e9;
    char err[256];
    if (mpb_server_tracker_finish(tracker, err, sizeof err) != 0) {
        fprintf(stderr, "%s: tracking: %s\n", tool, err);
    }
    mpb_server_tracker_destroy(&tracker);
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    mpb_tracking_log_metric("items", (double)stats.completed, 0);
    mpb_tracking_log_metric("errors", (double)stats.errors, 0);
    mpb_tracking_log_metric("items_per_s", seconds > 0 ? (double)stats.completed / seconds : 0, 0);
    mpb_tracking_log_metric(
        "mean_batch_size",
        stats.batches ? (double)stats.batched_items / (double)stats.batches : 0.0, 0);
    char run_id[64] = "";
    mpb_tracking_active_run_id(run_id, sizeof run_id);
    if (mpb_tracking_end_run(end, err, sizeof err) != 0) {
        fprintf(stderr, "%s: tracking: %s\n", tool, err);
        return;
    }
    fprintf(stderr, "%s: tracked as run %s (%s)\n", tool, run_id, mpb_run_status_name(end));
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
        options.on_item = mpb_server_tracker_on_item;
        options.on_item_ctx = *tracker;
        options.on_interval = mpb_server_tracker_on_interval;
        options.on_interval_ctx = *tracker;
        uint64_t interval_ms = 1000;
        config_count(config, "tracking.interval_ms", tool, &interval_ms);
        options.interval_ms = interval_ms > 0 && interval_ms < 3600000 ? (int)interval_ms : 1000;
    }
    mpb_servlet *servlet = mpb_config_servlet(config);
    return mpb_server_new(&servlet, &options);
}
