/*
 * A sweep in the tracking store: a parent run (the sweep: model, axes) and
 * a nested run per point (its settings as params, its figures, baselines
 * and ratios as metrics), then the CSV, JSON and plots as artifacts of
 * the parent. The store is mpb_store_default_uri()'s (MLFLOW_TRACKING_URI,
 * else sqlite:///mlflow.db or an existing ./mlruns); the
 * experiment MLFLOW_EXPERIMENT_NAME's, else "mpb-bench".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/tracking.h"
#include "mpbatch/worker.h"
#include "tools/bench/bench_int.h"

static void
log_number_param(const char *key, long long value)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", value);
    mpb_tracking_log_param(key, text);
}

static void
log_list_param(const char *key, const long long *values, size_t n)
{
    char text[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof text - 24; i++) {
        if (values[i] == MPB_BATCH_WAIT_AUTO) {
            len += (size_t)snprintf(text + len, sizeof text - len, "%sauto", i ? "," : "");
        } else {
            len +=
                (size_t)snprintf(text + len, sizeof text - len, "%s%lld", i ? "," : "", values[i]);
        }
    }
    mpb_tracking_log_param(key, text);
}

int
mpb__bench_track_begin(const bench_plan *plan, char *err, size_t err_len)
{
    const char *name = getenv("MLFLOW_EXPERIMENT_NAME");
    const char *id = getenv("MLFLOW_EXPERIMENT_ID");
    if ((name == NULL || *name == '\0') && (id == NULL || *id == '\0') &&
        mpb_tracking_set_experiment("mpb-bench", err, err_len) != 0) {
        return -1;
    }
    char run_name[160];
    snprintf(run_name, sizeof run_name, "bench %s", plan->model);
    char run_id[64];
    if (mpb_tracking_start_run(run_name, run_id, sizeof run_id, err, err_len) != 0) {
        return -1;
    }
    mpb_tracking_set_tag("mpb.bench", "sweep");
    mpb_tracking_log_param("model", plan->model);
    char kinds[64] = "";
    for (size_t i = 0; i < plan->n_kinds; i++) {
        strncat(kinds, i ? "," : "", sizeof kinds - strlen(kinds) - 1);
        strncat(kinds, plan->kinds[i], sizeof kinds - strlen(kinds) - 1);
    }
    mpb_tracking_log_param("kind", kinds);
    log_list_param("workers", plan->workers, plan->n_workers);
    log_list_param("batch_size", plan->batch_sizes, plan->n_batch_sizes);
    log_list_param("batch_wait_us", plan->waits, plan->n_waits);
    log_number_param("item_bytes", (long long)plan->item_bytes);
    if (plan->items > 0) {
        log_number_param("items_per_load", plan->items);
    } else {
        char seconds[32];
        snprintf(seconds, sizeof seconds, "%g", plan->seconds);
        mpb_tracking_log_param("seconds_per_load", seconds);
    }
    for (size_t i = 0; plan->plugin_options != NULL && plan->plugin_options[i] != NULL; i++) {
        const char *eq = strchr(plan->plugin_options[i], '=');
        char key[128];
        snprintf(key, sizeof key, "option.%.*s", (int)(eq - plan->plugin_options[i]),
                 plan->plugin_options[i]);
        mpb_tracking_log_param(key, eq + 1);
    }
    return 0;
}

void
mpb__bench_track_row(const bench_plan *plan, const bench_row *row)
{
    (void)plan;
    const bench_point *p = &row->point;
    char wait[24];
    if (p->wait_us == MPB_BATCH_WAIT_AUTO) {
        snprintf(wait, sizeof wait, "auto");
    } else {
        snprintf(wait, sizeof wait, "%lld", p->wait_us);
    }
    char name[160];
    snprintf(name, sizeof name, "%s w%lld b%lld wait %s %s", p->kind, p->workers, p->batch_size,
             wait, row->load_text);
    char run_id[64];
    if (mpb_tracking_start_run(name, run_id, sizeof run_id, NULL, 0) != 0) {
        return;
    }
    mpb_tracking_log_param("kind", p->kind);
    log_number_param("workers", p->workers);
    log_number_param("batch_size", p->batch_size);
    mpb_tracking_log_param("batch_wait_us", wait);
    mpb_tracking_log_param("load", row->load_text);
    const bench_figures *f = &row->fig;
    const bench_baselines *b = &row->base;
    struct {
        const char *key;
        double value;
    } metrics[] = {
        {"items_per_s", f->items_per_s},
        {"offered_per_s", f->offered_per_s},
        {"items", (double)f->items},
        {"errors", (double)f->errors},
        {"p50_us", f->p50_us},
        {"p90_us", f->p90_us},
        {"p99_us", f->p99_us},
        {"p999_us", f->p999_us},
        {"mean_us", f->mean_us},
        {"mean_batch", f->mean_batch},
        {"closed_full", (double)f->closed_full},
        {"closed_timer", (double)f->closed_timer},
        {"closed_drained", (double)f->closed_drained},
        {"first_wait_us", f->first_wait_us},
        {"compute_us", f->compute_us},
        {"cpu_coordinator_s", f->cpu_coordinator_s},
        {"cpu_workers_s", f->cpu_workers_s},
        {"bare_items_per_s", b->bare_items_per_s},
        {"raw_items_per_s", b->raw_items_per_s},
        {"rtt_p50_us", b->rtt_p50_us},
        {"ratio_bare", b->bare_items_per_s > 0 ? f->items_per_s / b->bare_items_per_s : 0},
        {"ratio_raw", b->raw_items_per_s > 0 ? f->items_per_s / b->raw_items_per_s : 0},
        {"ratio_rtt", b->rtt_p50_us > 0 ? f->p50_us / b->rtt_p50_us : 0},
    };
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        mpb_tracking_log_metric(metrics[i].key, metrics[i].value, 0);
    }
    mpb_tracking_end_run(f->errors ? MPB_RUN_FAILED : MPB_RUN_FINISHED, NULL, 0);
}

void
mpb__bench_track_end(const char *dir, char **files, int status)
{
    for (size_t i = 0; files != NULL && files[i] != NULL; i++) {
        char err[256];
        if (mpb_tracking_log_artifact(files[i], NULL, err, sizeof err) != 0) {
            fprintf(stderr, "mpb bench: tracking: %s\n", err);
        }
    }
    (void)dir;
    char run_id[64] = "";
    mpb_tracking_active_run_id(run_id, sizeof run_id);
    char err[256];
    if (mpb_tracking_end_run(status == 0 ? MPB_RUN_FINISHED : MPB_RUN_FAILED, err, sizeof err) !=
        0) {
        fprintf(stderr, "mpb bench: tracking: %s\n", err);
        return;
    }
    fprintf(stderr,
            "mpb bench: tracked as run %s (experiment mpb-bench unless "
            "MLFLOW_EXPERIMENT_NAME says otherwise)\n",
            run_id);
}
