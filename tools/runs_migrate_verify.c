/*
 * The check after `mpb runs migrate` copied a store: for every experiment,
 * its lifecycle and tags, and over its copied runs the params, tags,
 * metric points and artifact files, counted on both sides through the
 * store API and printed side by side; a difference is a mismatch. The
 * listings it counts with (every experiment, artifact files) serve the copy
 * too, so the arrows run one way: cmd_runs_migrate.c -> here.
 */
#include <stdio.h>
#include <string.h>

#include "mpbatch/store.h"
#include "tools/runs_migrate_int.h"
#include "tracking/store_int.h"

typedef struct run_counts {
    size_t params;
    size_t tags;
    size_t points;
    size_t files;
} run_counts;

/* Every experiment of store, all lifecycles, in one page. */
int
mpb__migrate_all_experiments(mpb_store *store, mpb_experiment_page **out, char *err, size_t err_len)
{
    mpb_search_opts opts = {.view_type = MPB_VIEW_ALL,
                            .max_results = MPB_SEARCH_MAX_RESULTS_THRESHOLD};
    return mpb_store_search_experiments(store, &opts, out, err, err_len);
}

/* Number of artifact files under path (recursively). */
int
mpb__migrate_count_artifacts(mpb_store *store, const char *run_id, const char *path, size_t *count,
                             char *err, size_t err_len)
{
    mpb_artifact_list *list = NULL;
    int rc = mpb_store_list_artifacts(store, run_id, path, &list, err, err_len);
    for (size_t i = 0; rc == 0 && i < list->n_files; i++) {
        if (list->files[i].is_dir) {
            rc = mpb__migrate_count_artifacts(store, run_id, list->files[i].path, count, err,
                                              err_len);
        } else {
            (*count)++;
        }
    }
    mpb_artifact_list_free(&list);
    return rc;
}

/* Params, tags, metric points and artifact files of one run. */
static int
count_run(mpb_store *store, const mpb_run *run, run_counts *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    out->params = run->n_params;
    out->tags = run->n_tags;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < run->n_metrics; i++) {
        mpb_metric_history *history = NULL;
        rc = mpb_store_get_metric_history(store, run->info.run_id, run->metrics[i].key, &history,
                                          err, err_len);
        if (rc == 0) {
            out->points += history->n_metrics;
        }
        mpb_metric_history_free(&history);
    }
    return rc < 0 ? rc
                  : mpb__migrate_count_artifacts(store, run->info.run_id, NULL, &out->files, err,
                                                 err_len);
}

static int
report_line(const char *what, size_t src, size_t dst)
{
    printf("  %-16s %8zu %8zu%s\n", what, src, dst, src == dst ? "" : "  MISMATCH");
    return src != dst;
}

/* Counts each copied run on both sides; returns the number of mismatches or
 * a negative status. */
static int
verify_experiment(migration *m, const experiment_copy *copy)
{
    run_counts src_total = {0};
    run_counts dst_total = {0};
    size_t copied = 0;
    size_t found = 0;
    int rc = 0;
    for (size_t r = 0; rc == 0 && r < copy->n_runs; r++) {
        if (copy->map[r].dst == NULL) {
            continue;
        }
        copied++;
        run_counts src;
        run_counts dst;
        mpb_run *target = NULL;
        rc = count_run(m->from, &copy->runs[r], &src, m->err, sizeof m->err);
        if (rc == 0) {
            rc = mpb_store_get_run(m->to, copy->map[r].dst, &target, m->err, sizeof m->err);
        }
        if (rc == 0) {
            found += strcmp(target->info.experiment_id, copy->dst_id) == 0;
            rc = count_run(m->to, target, &dst, m->err, sizeof m->err);
            /* The target may add system tags: count the source's it holds. */
            dst.tags = 0;
            for (size_t i = 0; i < copy->runs[r].n_tags; i++) {
                dst.tags +=
                    mpb__tag_find(target->tags, target->n_tags, copy->runs[r].tags[i].key) != NULL;
            }
        }
        mpb_run_free(&target);
        if (rc == 0) {
            src_total.params += src.params;
            src_total.tags += src.tags;
            src_total.points += src.points;
            src_total.files += src.files;
            dst_total.params += dst.params;
            dst_total.tags += dst.tags;
            dst_total.points += dst.points;
            dst_total.files += dst.files;
        }
    }
    if (rc < 0) {
        return rc;
    }
    mpb_experiment *target = NULL;
    rc = mpb_store_get_experiment(m->to, copy->dst_id, &target, m->err, sizeof m->err);
    if (rc < 0) {
        return rc;
    }
    printf("experiment '%s' (%s -> %s, %s)\n", copy->src->name, copy->src->experiment_id,
           copy->dst_id, copy->src->lifecycle_stage);
    printf("  %-16s %8s %8s\n", "", "source", "target");
    int bad = strcmp(target->lifecycle_stage, copy->src->lifecycle_stage) != 0;
    if (bad) {
        printf("  lifecycle        %8s %8s  MISMATCH\n", copy->src->lifecycle_stage,
               target->lifecycle_stage);
    }
    bad += report_line("experiment tags", copy->src->n_tags, target->n_tags);
    mpb_experiment_free(&target);
    bad += report_line("runs copied", copied, found);
    bad += report_line("params", src_total.params, dst_total.params);
    bad += report_line("tags", src_total.tags, dst_total.tags);
    bad += report_line("metric points", src_total.points, dst_total.points);
    bad += report_line("artifact files", src_total.files, dst_total.files);
    if (copied < copy->n_runs) {
        printf("  %zu run(s) already in the target, skipped\n", copy->n_runs - copied);
    }
    return bad;
}

int
mpb__migrate_verify(migration *m, int *out_bad)
{
    mpb_experiment_page *page = NULL;
    int rc = mpb__migrate_all_experiments(m->to, &page, m->err, sizeof m->err);
    if (rc < 0) {
        return rc;
    }
    printf("experiments: %zu source, %zu target\n", m->n_experiments, page->n_experiments);
    int bad = page->n_experiments < m->n_experiments;
    mpb_experiment_page_free(&page);
    for (size_t e = 0; e < m->n_experiments; e++) {
        rc = verify_experiment(m, &m->experiments[e]);
        if (rc < 0) {
            return rc;
        }
        bad += rc;
    }
    *out_bad = bad;
    return 0;
}
