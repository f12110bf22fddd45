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

/* MLflow keeps a param value up to 6000 characters; a longer list is cut
 * there, and its end says so. */
#define PARAM_MAX 6000

static void
log_list_param(const char *key, const long long *values, size_t n)
{
    char text[PARAM_MAX + 1] = "";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        char value[32];
        if (values[i] == MPB_BATCH_WAIT_AUTO) {
            snprintf(value, sizeof value, "%sauto", i ? "," : "");
        } else {
            snprintf(value, sizeof value, "%s%lld", i ? "," : "", values[i]);
        }
        /* room for this value, and for "..." after it should more follow */
        if (len + strlen(value) + (i + 1 < n ? 3 : 0) > PARAM_MAX) {
            strcpy(text + len, "...");
            break;
        }
        strcpy(text + len, value);
        len += strlen(value);
    }
    mpb_tracking_log_param(key, text);
}

static void
log_loads_param(const bench_plan *plan)
{
    char text[PARAM_MAX + 1] = "";
    size_t len = 0;
    for (size_t i = 0; i < plan->n_loads && len < PARAM_MAX; i++) {
        const bench_load *l = &plan->loads[i];
        char one[64];
        if (l->kind == LOAD_CLOSED && l->value == 0) {
            snprintf(one, sizeof one, "closed:auto");
        } else if (l->kind == LOAD_OPEN && l->share > 0) {
            snprintf(one, sizeof one, "open:%g%%", l->share * 100);
        } else {
            mpb__bench_load_text(l, l->value, one, sizeof one);
        }
        len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? "," : "", one);
    }
    mpb_tracking_log_param("load", text);
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
    log_loads_param(plan);
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

typedef struct metric {
    const char *key;
    double value;
} metric;

static void
log_metrics(const metric *metrics, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mpb_tracking_log_metric(metrics[i].key, metrics[i].value, 0);
    }
}

static void
log_figures(const bench_figures *f)
{
    const metric metrics[] = {
        {"items_per_s", f->items_per_s},
        {"offered_per_s", f->offered_per_s},
        {"concurrency", f->concurrency},
        {"seconds", f->seconds},
        {"items", (double)f->items},
        {"errors", (double)f->errors},
        {"p50_us", f->p50_us},
        {"p90_us", f->p90_us},
        {"p99_us", f->p99_us},
        {"p999_us", f->p999_us},
        {"mean_us", f->mean_us},
        {"max_us", f->max_us},
        {"batches", (double)f->batches},
        {"mean_batch", f->mean_batch},
        {"closed_full", (double)f->closed_full},
        {"closed_timer", (double)f->closed_timer},
        {"closed_drained", (double)f->closed_drained},
        {"first_wait_us", f->first_wait_us},
        {"compute_us", f->compute_us},
        {"cpu_coordinator_s", f->cpu_coordinator_s},
        {"cpu_workers_s", f->cpu_workers_s},
    };
    log_metrics(metrics, sizeof metrics / sizeof metrics[0]);
}

/* Only the baselines measured: one never measured has no value (null in
 * the JSON), not 0. */
static void
log_baselines(const bench_figures *f, const bench_baselines *b)
{
    if (b->bare_items_per_s > 0) {
        const metric bare[] = {{"bare_items_per_s", b->bare_items_per_s},
                               {"ratio_bare", f->items_per_s / b->bare_items_per_s}};
        log_metrics(bare, 2);
    }
    if (b->raw_items_per_s > 0) {
        const metric raw[] = {{"raw_items_per_s", b->raw_items_per_s},
                              {"ratio_raw", f->items_per_s / b->raw_items_per_s}};
        log_metrics(raw, 2);
    }
    if (b->rtt_p50_us > 0) {
        const metric rtt[] = {{"rtt_p50_us", b->rtt_p50_us},
                              {"rtt_p99_us", b->rtt_p99_us},
                              {"ratio_rtt", f->p50_us / b->rtt_p50_us}};
        log_metrics(rtt, 3);
    }
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
    log_figures(&row->fig);
    log_baselines(&row->fig, &row->base);
    mpb_tracking_end_run(row->fig.errors ? MPB_RUN_FAILED : MPB_RUN_FINISHED, NULL, 0);
}

void
mpb__bench_track_end(char **files, int status)
{
    for (size_t i = 0; files != NULL && files[i] != NULL; i++) {
        char err[256];
        if (mpb_tracking_log_artifact(files[i], NULL, err, sizeof err) != 0) {
            fprintf(stderr, "mpb bench: tracking: %s\n", err);
        }
    }
    char run_id[64] = "";
    mpb_tracking_active_run_id(run_id, sizeof run_id);
    char err[256];
    if (mpb_tracking_end_run((mpb_run_status)status, err, sizeof err) != 0) {
        fprintf(stderr, "mpb bench: tracking: %s\n", err);
        return;
    }
    fprintf(stderr,
            "mpb bench: tracked as run %s (experiment mpb-bench unless "
            "MLFLOW_EXPERIMENT_NAME says otherwise)\n",
            run_id);
}
