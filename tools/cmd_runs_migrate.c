/*
 * `mpb runs migrate --from URI --to URI`: copies every experiment, run,
 * param, tag, metric point and artifact file from one store to another
 * through the public store API only (so any pair of backends works, REST
 * included once it exists), then counts both sides and exits 1 on any
 * difference.
 *
 * DESIGN: the target makes its own ids (stores do not take ids from outside),
 * so the copy keeps a source -> target id map: pass 1 creates every
 * experiment and run (runs active, so they accept data), pass 2 fills each
 * run (params, tags with mlflow.parentRunId re-pointed through the map, full
 * metric histories, artifacts through a local temp folder), sets its status
 * and end time, and deletes it when the source run is deleted; pass 3
 * deletes the experiments deleted in the source. Deletion times become the
 * migration's time. Progress goes to stderr; the counts of both sides
 * (tools/runs_migrate_verify.c) to stdout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tools/runs_int.h"
#include "tools/runs_migrate_int.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"

static const char migrate_usage[] =
    "usage: mpb runs migrate --from URI --to URI [--into-existing] [--artifact-root DIR]\n"
    "  Copies every experiment (name, tags, lifecycle; artifact location made\n"
    "  by the target), run (name, user, status, start/end, lifecycle, params,\n"
    "  tags, full metric histories, artifacts) from one store to another, then\n"
    "  counts both sides and exits 1 on any difference. Run and experiment ids\n"
    "  are the target's own; mlflow.parentRunId follows them.\n"
    "  --into-existing  allow a target that already holds runs or experiments:\n"
    "                   a source run whose experiment (same name) already has a\n"
    "                   run of the same name and start time is skipped, so a\n"
    "                   second migrate copies only what is new\n"
    "  --artifact-root  where a SQLite target keeps new experiments' artifacts\n"
    "                   (default ./mlruns, as MLflow's)\n"
    "  --from defaults to the global --tracking-uri.\n";

/* ---- reading a store ---- */

/* Every run of one experiment, every lifecycle, oldest first; *out_runs is
 * the caller's (each mpb__run_clear, then free). */
static int
all_runs(mpb_store *store, const char *experiment_id, mpb_run **out_runs, size_t *out_n, char *err,
         size_t err_len)
{
    const char *ids[] = {experiment_id};
    const char *order[] = {"attributes.start_time ASC"};
    mpb_run *runs = NULL;
    size_t n = 0;
    char *token = NULL;
    int rc;
    do {
        mpb_search_opts opts = {.order_by = order,
                                .n_order_by = 1,
                                .view_type = MPB_VIEW_ALL,
                                .max_results = MPB_SEARCH_MAX_RESULTS_DEFAULT,
                                .page_token = token};
        mpb_run_page *page = NULL;
        rc = mpb_store_search_runs(store, ids, 1, &opts, &page, err, err_len);
        free(token);
        token = NULL;
        if (rc < 0) {
            break;
        }
        runs = mpb_realloc(runs, (n + page->n_runs + 1) * sizeof *runs);
        memcpy(runs + n, page->runs, page->n_runs * sizeof *runs);
        n += page->n_runs;
        page->n_runs = 0; /* moved */
        token = page->next_page_token ? mpb_strdup(page->next_page_token) : NULL;
        mpb_run_page_free(&page);
    } while (token != NULL);
    *out_runs = runs;
    *out_n = n;
    return rc;
}

static void
runs_free(mpb_run *runs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mpb__run_clear(&runs[i]);
    }
    free(runs);
}

/* ---- pass 1: experiments and empty runs ---- */

/* 1 when the store holds nothing but an empty Default experiment. */
static int
store_is_empty(mpb_store *store, char *err, size_t err_len, int *out_empty)
{
    mpb_experiment_page *page = NULL;
    int rc = mpb__migrate_all_experiments(store, &page, err, err_len);
    *out_empty = rc == 0;
    for (size_t i = 0; rc == 0 && *out_empty && i < page->n_experiments; i++) {
        const mpb_experiment *e = &page->experiments[i];
        mpb_run *runs = NULL;
        size_t n = 0;
        rc = all_runs(store, e->experiment_id, &runs, &n, err, err_len);
        *out_empty = strcmp(e->experiment_id, MPB_DEFAULT_EXPERIMENT_ID) == 0 && n == 0;
        runs_free(runs, n);
    }
    mpb_experiment_page_free(&page);
    return rc;
}

/* The target experiment for a source one: Default is Default; else the one
 * of the same name (with --into-existing), else a new one. */
static int
target_experiment(migration *m, const mpb_experiment *src, char **out_id)
{
    if (strcmp(src->experiment_id, MPB_DEFAULT_EXPERIMENT_ID) == 0) {
        *out_id = mpb_strdup(MPB_DEFAULT_EXPERIMENT_ID);
        for (size_t i = 0; i < src->n_tags; i++) {
            int rc = mpb_store_set_experiment_tag(m->to, *out_id, src->tags[i].key,
                                                  src->tags[i].value, m->err, sizeof m->err);
            if (rc < 0) {
                return rc;
            }
        }
        return 0;
    }
    mpb_experiment *existing = NULL;
    int rc = mpb_store_get_experiment_by_name(m->to, src->name, &existing, NULL, 0);
    if (rc == 0) {
        *out_id = mpb_strdup(existing->experiment_id);
        int deleted = strcmp(existing->lifecycle_stage, "active") != 0;
        mpb_experiment_free(&existing);
        /* Runs go into an active experiment; pass 3 deletes it again. */
        return deleted ? mpb_store_restore_experiment(m->to, *out_id, m->err, sizeof m->err) : 0;
    }
    return mpb_store_create_experiment(m->to, src->name, NULL, src->tags, src->n_tags, out_id,
                                       m->err, sizeof m->err);
}

/* 1 when the target experiment has a run of this name and start time. */
static int
already_copied(const mpb_run *target_runs, size_t n, const mpb_run_info *src)
{
    for (size_t i = 0; i < n; i++) {
        if (target_runs[i].info.start_time == src->start_time &&
            strcmp(target_runs[i].info.run_name, src->run_name) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
create_runs(migration *m, experiment_copy *copy)
{
    mpb_run *existing = NULL;
    size_t n_existing = 0;
    int rc = all_runs(m->to, copy->dst_id, &existing, &n_existing, m->err, sizeof m->err);
    copy->map = mpb_calloc(copy->n_runs + 1, sizeof *copy->map);
    for (size_t r = 0; rc == 0 && r < copy->n_runs; r++) {
        const mpb_run_info *info = &copy->runs[r].info;
        copy->map[r].src = mpb_strdup(info->run_id);
        if (already_copied(existing, n_existing, info)) {
            continue;
        }
        const mpb_tag system[] = {
            {MPB_TAG_RUN_NAME, info->run_name},
            {MPB_TAG_USER, info->user_id},
        };
        rc = mpb_store_create_run(m->to, copy->dst_id, info->user_id, info->start_time,
                                  info->run_name, system, 2, &copy->map[r].dst, m->err,
                                  sizeof m->err);
    }
    runs_free(existing, n_existing);
    return rc;
}

static int
create_all(migration *m)
{
    mpb_experiment_page *page = NULL;
    int rc = mpb__migrate_all_experiments(m->from, &page, m->err, sizeof m->err);
    if (rc < 0) {
        return rc;
    }
    m->n_experiments = page->n_experiments;
    m->experiments = mpb_calloc(page->n_experiments + 1, sizeof *m->experiments);
    for (size_t i = 0; rc == 0 && i < page->n_experiments; i++) {
        experiment_copy *copy = &m->experiments[i];
        copy->src = mpb_calloc(1, sizeof *copy->src);
        *copy->src = page->experiments[i];
        memset(&page->experiments[i], 0, sizeof page->experiments[i]); /* moved */
        rc = all_runs(m->from, copy->src->experiment_id, &copy->runs, &copy->n_runs, m->err,
                      sizeof m->err);
        if (rc == 0) {
            rc = target_experiment(m, copy->src, &copy->dst_id);
        }
        if (rc == 0) {
            rc = create_runs(m, copy);
        }
        m->n_runs_total += copy->n_runs;
    }
    mpb_experiment_page_free(&page);
    return rc;
}

/* ---- pass 2: run contents ---- */

static const char *
mapped_run_id(const migration *m, const char *src)
{
    for (size_t e = 0; e < m->n_experiments; e++) {
        const experiment_copy *copy = &m->experiments[e];
        for (size_t r = 0; r < copy->n_runs; r++) {
            if (copy->map[r].dst != NULL && strcmp(copy->map[r].src, src) == 0) {
                return copy->map[r].dst;
            }
        }
    }
    return src;
}

static int
copy_params_tags(migration *m, const mpb_run *run, const char *dst)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < run->n_params; i += MPB_MAX_PARAMS_TAGS_PER_BATCH) {
        size_t n = run->n_params - i;
        n = n < MPB_MAX_PARAMS_TAGS_PER_BATCH ? n : MPB_MAX_PARAMS_TAGS_PER_BATCH;
        rc = mpb_store_log_batch(m->to, dst, NULL, 0, run->params + i, n, NULL, 0, m->err,
                                 sizeof m->err);
    }
    mpb_tag *tags = mpb_calloc(run->n_tags + 1, sizeof *tags);
    for (size_t i = 0; i < run->n_tags; i++) {
        tags[i] = run->tags[i];
        if (strcmp(tags[i].key, MPB_TAG_PARENT_RUN_ID) == 0) {
            tags[i].value = mapped_run_id(m, tags[i].value);
        }
    }
    for (size_t i = 0; rc == 0 && i < run->n_tags; i += MPB_MAX_PARAMS_TAGS_PER_BATCH) {
        size_t n = run->n_tags - i;
        n = n < MPB_MAX_PARAMS_TAGS_PER_BATCH ? n : MPB_MAX_PARAMS_TAGS_PER_BATCH;
        rc = mpb_store_log_batch(m->to, dst, NULL, 0, NULL, 0, tags + i, n, m->err, sizeof m->err);
    }
    free(tags);
    return rc;
}

static int
copy_metrics(migration *m, const mpb_run *run, const char *dst)
{
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < run->n_metrics; k++) {
        mpb_metric_history *history = NULL;
        rc = mpb_store_get_metric_history(m->from, run->info.run_id, run->metrics[k].key, &history,
                                          m->err, sizeof m->err);
        for (size_t i = 0; rc == 0 && i < history->n_metrics; i += MPB_MAX_METRICS_PER_BATCH) {
            size_t n = history->n_metrics - i;
            n = n < MPB_MAX_METRICS_PER_BATCH ? n : MPB_MAX_METRICS_PER_BATCH;
            rc = mpb_store_log_batch(m->to, dst, history->metrics + i, n, NULL, 0, NULL, 0, m->err,
                                     sizeof m->err);
        }
        mpb_metric_history_free(&history);
    }
    return rc;
}

/* Artifacts: the whole tree downloaded to a temp folder, logged as a folder. */
static int
copy_artifacts(migration *m, const mpb_run *run, const char *dst)
{
    size_t files = 0;
    int rc = mpb__migrate_count_artifacts(m->from, run->info.run_id, NULL, &files, m->err,
                                          sizeof m->err);
    if (rc < 0 || files == 0) {
        return rc;
    }
    const char *base = getenv("TMPDIR");
    char *tmp = mpb_asprintf("%s/mpb-migrate-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmp) == NULL) {
        rc = mpb__set_error(m->err, sizeof m->err, -errno, "cannot make a temp folder: %s",
                            mpb_strerror(-errno));
        free(tmp);
        return rc;
    }
    char *local = NULL;
    rc = mpb_store_download_artifacts(m->from, run->info.run_id, NULL, tmp, &local, m->err,
                                      sizeof m->err);
    if (rc == 0) {
        rc = mpb_store_log_artifact(m->to, dst, local, NULL, m->err, sizeof m->err);
    }
    free(local);
    (void)mpb__fs_rm_rf(tmp);
    free(tmp);
    return rc;
}

static int
fill_run(migration *m, const mpb_run *run, const char *dst)
{
    int rc = copy_params_tags(m, run, dst);
    if (rc == 0) {
        rc = copy_metrics(m, run, dst);
    }
    if (rc == 0) {
        rc = copy_artifacts(m, run, dst);
    }
    if (rc == 0 && (run->info.status != MPB_RUN_RUNNING || run->info.end_time >= 0)) {
        rc = mpb_store_update_run(m->to, dst, run->info.status, run->info.end_time, NULL, m->err,
                                  sizeof m->err);
    }
    if (rc == 0 && strcmp(run->info.lifecycle_stage, "deleted") == 0) {
        rc = mpb_store_delete_run(m->to, dst, m->err, sizeof m->err);
    }
    return rc;
}

static int
fill_all(migration *m)
{
    size_t done = 0;
    int rc = 0;
    for (size_t e = 0; rc == 0 && e < m->n_experiments; e++) {
        experiment_copy *copy = &m->experiments[e];
        for (size_t r = 0; rc == 0 && r < copy->n_runs; r++) {
            done++;
            if (copy->map[r].dst == NULL) {
                fprintf(stderr, "migrate: run %zu/%zu %s exists in the target, skipped\n", done,
                        m->n_runs_total, copy->map[r].src);
                continue;
            }
            fprintf(stderr, "migrate: run %zu/%zu %s -> %s (experiment '%s')\n", done,
                    m->n_runs_total, copy->map[r].src, copy->map[r].dst, copy->src->name);
            rc = fill_run(m, &copy->runs[r], copy->map[r].dst);
        }
        /* pass 3 for this experiment: its lifecycle. */
        if (rc == 0 && strcmp(copy->src->lifecycle_stage, "deleted") == 0) {
            rc = mpb_store_delete_experiment(m->to, copy->dst_id, m->err, sizeof m->err);
        }
    }
    return rc;
}

/* ---- verification ---- */

static void
migration_clear(migration *m)
{
    for (size_t e = 0; e < m->n_experiments; e++) {
        experiment_copy *copy = &m->experiments[e];
        mpb_experiment_free(&copy->src);
        free(copy->dst_id);
        for (size_t r = 0; copy->map != NULL && r < copy->n_runs; r++) {
            free(copy->map[r].src);
            free(copy->map[r].dst);
        }
        free(copy->map);
        runs_free(copy->runs, copy->n_runs);
    }
    free(m->experiments);
    mpb_store_destroy(&m->from);
    mpb_store_destroy(&m->to);
}

static int
migrate(migration *m, const char *from, const char *to)
{
    int rc = mpb_store_open(from, &m->from, m->err, sizeof m->err);
    if (rc == 0) {
        mpb_store_open_opts opts = {.artifact_root = m->artifact_root};
        rc = mpb_store_open_with(to, &opts, &m->to, m->err, sizeof m->err);
    }
    int empty = 0;
    if (rc == 0) {
        rc = store_is_empty(m->to, m->err, sizeof m->err, &empty);
    }
    if (rc == 0 && !empty && !m->into_existing) {
        rc = mpb__set_error(m->err, sizeof m->err, MPB_EEXIST,
                            "target %s already holds runs or experiments; pass --into-existing "
                            "to copy into it (runs already there are skipped)",
                            mpb_store_uri(m->to));
    }
    if (rc == 0) {
        rc = create_all(m);
    }
    if (rc == 0) {
        rc = fill_all(m);
    }
    return rc;
}

int
mpb_runs_migrate(runs_cli *cli, int argc, char **argv)
{
    const char *from = NULL;
    const char *to = NULL;
    migration m = {0};
    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (mpb_runs_is_help(argv[i])) {
            fputs(migrate_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--into-existing") == 0) {
            m.into_existing = 1;
        } else if (strcmp(argv[i], "--from") == 0 && value != NULL) {
            from = argv[++i];
        } else if (strcmp(argv[i], "--to") == 0 && value != NULL) {
            to = argv[++i];
        } else if (strcmp(argv[i], "--artifact-root") == 0 && value != NULL) {
            m.artifact_root = argv[++i];
        } else {
            return mpb_runs_usage_error(migrate_usage, "bad argument '%s'", argv[i]);
        }
    }
    from = from ? from : cli->uri;
    if (from == NULL || to == NULL) {
        return mpb_runs_usage_error(migrate_usage, "%s", "migrate needs --from URI and --to URI");
    }
    int rc = migrate(&m, from, to);
    int bad = 0;
    if (rc == 0) {
        rc = mpb__migrate_verify(&m, &bad);
    }
    if (rc < 0) {
        fprintf(stderr, "mpb runs migrate: %s\n", m.err[0] ? m.err : mpb_strerror(rc));
    } else {
        printf("%s: %zu experiment(s), %zu run(s) from %s to %s\n", bad ? "MISMATCH" : "OK",
               m.n_experiments, m.n_runs_total, mpb_store_uri(m.from), mpb_store_uri(m.to));
    }
    migration_clear(&m);
    return rc < 0 || bad ? 1 : 0;
}
