/*
 * The store contract: one suite, run unchanged against every backend in
 * `backends` (the file store and the SQLite store; a REST store is one more
 * entry whose start() launches a tracking server). Tests use only the public
 * mpb_store_* API: nothing here looks at a backend's files or tables.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "helpers.h"

/* How to make a fresh store of one backend inside a temp folder. */
typedef struct contract_backend {
    const char *name;
    /* Fills opts for a store living in dir; returns its URI (caller frees). */
    char *(*start)(const char *dir, mpb_store_open_opts *opts);
    /* Undoes start (a server to stop); may be NULL. */
    void (*stop)(const char *dir);
} contract_backend;

static char *
file_start(const char *dir, mpb_store_open_opts *opts)
{
    (void)opts;
    return th_pathf("file://%s/mlruns", dir);
}

static char *
sqlite_start(const char *dir, mpb_store_open_opts *opts)
{
    static char artifact_root[4096];
    snprintf(artifact_root, sizeof artifact_root, "%s/mlartifacts", dir);
    opts->artifact_root = artifact_root;
    return th_pathf("sqlite:///%s/mlflow.db", dir);
}

static const contract_backend backends[] = {
    {"file", file_start, NULL},
    {"sqlite", sqlite_start, NULL},
};

static const contract_backend *backend; /* the one being run */

typedef struct contract {
    char *dir;
    char *uri;
    mpb_store_open_opts opts;
    mpb_store *store;
    char *exp_id; /* experiment "contract" */
    char err[1024];
} contract;

static mpb_store *
open_store(contract *c)
{
    mpb_store *store = NULL;
    char err[1024] = "";
    if (mpb_store_open_with(c->uri, &c->opts, &store, err, sizeof err) != 0) {
        fail_msg("[%s] open %s: %s", backend->name, c->uri, err);
    }
    return store;
}

static int
setup(void **state)
{
    contract *c = mpb_calloc(1, sizeof *c);
    c->dir = th_tempdir();
    c->uri = backend->start(c->dir, &c->opts);
    c->store = open_store(c);
    c->exp_id = th_experiment(c->store, "contract");
    *state = c;
    return 0;
}

static int
teardown(void **state)
{
    contract *c = *state;
    mpb_store_destroy(&c->store);
    if (backend->stop != NULL) {
        backend->stop(c->dir);
    }
    th_cleanup(&c->dir);
    free(c->uri);
    free(c->exp_id);
    free(c);
    return 0;
}

static mpb_run *
get_run(contract *c, const char *run_id)
{
    mpb_run *run = NULL;
    if (mpb_store_get_run(c->store, run_id, &run, c->err, sizeof c->err) != 0) {
        fail_msg("[%s] get_run: %s", backend->name, c->err);
    }
    return run;
}

static void
assert_err(contract *c, const char *text)
{
    if (strstr(c->err, text) == NULL) {
        fail_msg("[%s] '%s' lacks '%s'", backend->name, c->err, text);
    }
}

/* ---- Experiments ---- */

static void
default_experiment_exists_and_data_outlives_the_store(void **state)
{
    contract *c = *state;
    mpb_experiment *experiment = NULL;
    assert_int_equal(mpb_store_get_experiment(c->store, "0", &experiment, c->err, sizeof c->err),
                     0);
    assert_string_equal(experiment->name, "Default");
    assert_string_equal(experiment->lifecycle_stage, "active");
    assert_true(experiment->creation_time > 0);
    assert_true(experiment->artifact_location[0] != '\0');
    mpb_experiment_free(&experiment);
    mpb_tag tags[] = {{"team", "vision"}};
    char *id = NULL;
    assert_int_equal(
        mpb_store_create_experiment(c->store, "kept", NULL, tags, 1, &id, c->err, sizeof c->err),
        0);
    char *run_id = th_run(c->store, id, "r");
    mpb_store_destroy(&c->store);

    /* Reopened by its resolved URI: everything is still there. */
    mpb_store *again = NULL;
    char *uri = NULL;
    c->store = open_store(c);
    uri = mpb_strdup(mpb_store_uri(c->store));
    assert_int_equal(mpb_store_open_with(uri, &c->opts, &again, c->err, sizeof c->err), 0);
    assert_int_equal(
        mpb_store_get_experiment_by_name(again, "kept", &experiment, c->err, sizeof c->err), 0);
    assert_string_equal(experiment->experiment_id, id);
    assert_int_equal(experiment->n_tags, 1);
    assert_string_equal(experiment->tags[0].value, "vision");
    mpb_experiment_free(&experiment);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(again, run_id, &run, c->err, sizeof c->err), 0);
    assert_string_equal(run->info.run_name, "r");
    mpb_run_free(&run);
    mpb_store_destroy(&again);
    free(uri);
    free(run_id);
    free(id);
}

static void
experiment_names_are_unique_and_lifecycle_is_enforced(void **state)
{
    contract *c = *state;
    char *id = NULL;
    assert_int_equal(
        mpb_store_create_experiment(c->store, "contract", NULL, NULL, 0, &id, c->err, sizeof c->err),
        MPB_EEXIST);
    mpb_experiment *experiment = NULL;
    assert_int_equal(mpb_store_get_experiment_by_name(c->store, "contract", &experiment, c->err,
                                                      sizeof c->err),
                     0);
    assert_string_equal(experiment->experiment_id, c->exp_id);
    mpb_experiment_free(&experiment);
    assert_int_equal(mpb_store_get_experiment_by_name(c->store, "nope", &experiment, c->err,
                                                      sizeof c->err),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_get_experiment(c->store, "4242", &experiment, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_int_equal(
        mpb_store_set_experiment_tag(c->store, c->exp_id, "k", "1", c->err, sizeof c->err), 0);
    assert_int_equal(
        mpb_store_set_experiment_tag(c->store, c->exp_id, "k", "2", c->err, sizeof c->err), 0);

    assert_int_equal(mpb_store_delete_experiment(c->store, c->exp_id, c->err, sizeof c->err), 0);
    assert_int_equal(
        mpb_store_get_experiment(c->store, c->exp_id, &experiment, c->err, sizeof c->err), 0);
    assert_string_equal(experiment->lifecycle_stage, "deleted");
    assert_int_equal(experiment->n_tags, 1);
    assert_string_equal(experiment->tags[0].value, "2");
    mpb_experiment_free(&experiment);
    assert_int_equal(mpb_store_delete_experiment(c->store, c->exp_id, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_int_equal(
        mpb_store_create_experiment(c->store, "contract", NULL, NULL, 0, &id, c->err, sizeof c->err),
        MPB_EEXIST);
    assert_err(c, "deleted state");
    assert_int_equal(
        mpb_store_set_experiment_tag(c->store, c->exp_id, "k", "3", c->err, sizeof c->err),
        MPB_EINVAL);
    char *run_id = NULL;
    assert_int_equal(mpb_store_create_run(c->store, c->exp_id, NULL, -1, NULL, NULL, 0, &run_id,
                                          c->err, sizeof c->err),
                     MPB_EINVAL);
    assert_err(c, "non-active experiment");
    assert_int_equal(mpb_store_create_run(c->store, "4242", NULL, -1, NULL, NULL, 0, &run_id,
                                          c->err, sizeof c->err),
                     MPB_ENOTFOUND);

    assert_int_equal(mpb_store_restore_experiment(c->store, c->exp_id, c->err, sizeof c->err), 0);
    assert_int_equal(mpb_store_restore_experiment(c->store, c->exp_id, c->err, sizeof c->err),
                     MPB_EINVAL);
    assert_int_equal(mpb_store_delete_experiment(c->store, "0", c->err, sizeof c->err),
                     MPB_EINVAL);
    assert_err(c, "default experiment");
}

static const char *
stage_of(contract *c, const char *run_id, char *buf, size_t len)
{
    mpb_run *run = get_run(c, run_id);
    snprintf(buf, len, "%s", run->info.lifecycle_stage);
    mpb_run_free(&run);
    return buf;
}

static void
restoring_an_experiment_brings_back_the_runs_deleted_with_it(void **state)
{
    contract *c = *state;
    char stage[16];
    char *kept = th_run(c->store, c->exp_id, "kept");
    char *earlier = th_run(c->store, c->exp_id, "deleted-earlier");
    assert_int_equal(mpb_store_delete_run(c->store, earlier, c->err, sizeof c->err), 0);
    struct timespec pause = {0, 5 * 1000 * 1000}; /* a later deletion time */
    nanosleep(&pause, NULL);
    assert_int_equal(mpb_store_delete_experiment(c->store, c->exp_id, c->err, sizeof c->err), 0);
    assert_string_equal(stage_of(c, kept, stage, sizeof stage), "deleted");
    assert_int_equal(mpb_store_restore_experiment(c->store, c->exp_id, c->err, sizeof c->err), 0);
    assert_string_equal(stage_of(c, kept, stage, sizeof stage), "active");
    assert_string_equal(stage_of(c, earlier, stage, sizeof stage), "deleted");
    free(kept);
    free(earlier);
}

/* ---- Runs ---- */

static void
runs_live_update_and_die(void **state)
{
    contract *c = *state;
    mpb_tag tags[] = {{"origin", "contract"}};
    char *run_id = NULL;
    assert_int_equal(mpb_store_create_run(c->store, c->exp_id, "tester", 1234, "first", tags, 1,
                                          &run_id, c->err, sizeof c->err),
                     0);
    assert_int_equal(strlen(run_id), 32);
    mpb_run *run = get_run(c, run_id);
    assert_string_equal(run->info.run_id, run_id);
    assert_string_equal(run->info.experiment_id, c->exp_id);
    assert_string_equal(run->info.run_name, "first");
    assert_string_equal(run->info.user_id, "tester");
    assert_int_equal(run->info.status, MPB_RUN_RUNNING);
    assert_int_equal(run->info.start_time, 1234);
    assert_int_equal(run->info.end_time, -1);
    assert_int_equal(run->info.deleted_time, -1);
    assert_string_equal(run->info.lifecycle_stage, "active");
    assert_non_null(strstr(run->info.artifact_uri, run_id));
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, "origin"), "contract");
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, MPB_TAG_RUN_NAME), "first");
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, MPB_TAG_USER), "tester");
    mpb_run_free(&run);

    assert_int_equal(mpb_store_update_run(c->store, run_id, MPB_RUN_FAILED, 5678, "renamed", c->err,
                                          sizeof c->err),
                     0);
    assert_int_equal(
        mpb_store_set_tag(c->store, run_id, MPB_TAG_RUN_NAME, "by-tag", c->err, sizeof c->err), 0);
    assert_int_equal(
        mpb_store_update_run(c->store, run_id, MPB_RUN_FINISHED, -1, NULL, c->err, sizeof c->err),
        0);
    run = get_run(c, run_id);
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    assert_int_equal(run->info.end_time, 5678);
    assert_string_equal(run->info.run_name, "by-tag");
    mpb_run_free(&run);

    int64_t before = mpb_wall_ms();
    assert_int_equal(mpb_store_delete_run(c->store, run_id, c->err, sizeof c->err), 0);
    run = get_run(c, run_id);
    assert_string_equal(run->info.lifecycle_stage, "deleted");
    assert_true(run->info.deleted_time >= before);
    mpb_run_free(&run);
    mpb_metric metric = {"m", 1, 1, 1};
    assert_int_equal(
        mpb_store_log_batch(c->store, run_id, &metric, 1, NULL, 0, NULL, 0, c->err, sizeof c->err),
        MPB_EINVAL);
    assert_err(c, "must be in the 'active' state");
    assert_int_equal(
        mpb_store_update_run(c->store, run_id, MPB_RUN_KILLED, -1, NULL, c->err, sizeof c->err),
        MPB_EINVAL);
    assert_int_equal(mpb_store_restore_run(c->store, run_id, c->err, sizeof c->err), 0);
    run = get_run(c, run_id);
    assert_string_equal(run->info.lifecycle_stage, "active");
    assert_int_equal(run->info.deleted_time, -1);
    mpb_run_free(&run);

    const char *ghost = "0123456789abcdef0123456789abcdef";
    assert_int_equal(mpb_store_get_run(c->store, ghost, &run, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_delete_run(c->store, ghost, c->err, sizeof c->err), MPB_ENOTFOUND);
    assert_int_equal(
        mpb_store_log_batch(c->store, ghost, &metric, 1, NULL, 0, NULL, 0, c->err, sizeof c->err),
        MPB_ENOTFOUND);
    free(run_id);
}

static void
params_are_immutable_and_a_refused_batch_writes_nothing(void **state)
{
    contract *c = *state;
    char *run_id = th_run(c->store, c->exp_id, "params");
    mpb_param first[] = {{"lr", "0.1"}, {"opt/name", "adam"}};
    assert_int_equal(
        mpb_store_log_batch(c->store, run_id, NULL, 0, first, 2, NULL, 0, c->err, sizeof c->err),
        0);
    assert_int_equal(
        mpb_store_log_batch(c->store, run_id, NULL, 0, first, 1, NULL, 0, c->err, sizeof c->err),
        0); /* the same value again is fine */
    mpb_param changed[] = {{"new", "1"}, {"lr", "0.2"}};
    mpb_metric metric = {"loss", 0.5, 10, 1};
    mpb_tag tag = {"t", "v"};
    assert_int_equal(mpb_store_log_batch(c->store, run_id, &metric, 1, changed, 2, &tag, 1, c->err,
                                         sizeof c->err),
                     MPB_EINVAL);
    assert_err(c, "Changing param values is not allowed");
    mpb_run *run = get_run(c, run_id);
    assert_int_equal(run->n_params, 2);
    assert_string_equal(mpb__param_find(run->params, run->n_params, "lr"), "0.1");
    assert_string_equal(mpb__param_find(run->params, run->n_params, "opt/name"), "adam");
    assert_null(mpb__param_find(run->params, run->n_params, "new"));
    assert_null(mpb__tag_find(run->tags, run->n_tags, "t"));
    assert_int_equal(run->n_metrics, 0);
    mpb_run_free(&run);
    free(run_id);
}

static void
tags_are_set_overwritten_and_deleted(void **state)
{
    contract *c = *state;
    char *run_id = th_run(c->store, c->exp_id, "tags");
    assert_int_equal(mpb_store_set_tag(c->store, run_id, "k", "1", c->err, sizeof c->err), 0);
    assert_int_equal(mpb_store_set_tag(c->store, run_id, "k", "2", c->err, sizeof c->err), 0);
    assert_int_equal(mpb_store_set_tag(c->store, run_id, "dir/k", "3", c->err, sizeof c->err), 0);
    mpb_run *run = get_run(c, run_id);
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, "k"), "2");
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, "dir/k"), "3");
    mpb_run_free(&run);
    assert_int_equal(mpb_store_delete_tag(c->store, run_id, "k", c->err, sizeof c->err), 0);
    assert_int_equal(mpb_store_delete_tag(c->store, run_id, "k", c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_err(c, "No tag with name: k");
    run = get_run(c, run_id);
    assert_null(mpb__tag_find(run->tags, run->n_tags, "k"));
    assert_non_null(mpb__tag_find(run->tags, run->n_tags, "dir/k"));
    mpb_run_free(&run);
    free(run_id);
}

/* ---- Metrics ---- */

static void
metrics_keep_history_and_the_latest_by_step_then_time_then_value(void **state)
{
    contract *c = *state;
    char *run_id = th_run(c->store, c->exp_id, "metrics");
    mpb_metric first[] = {
        {"loss", 0.9, 100, 2}, {"loss", 0.8, 101, 5}, {"acc", 0.1, 100, 0},
        {"tie", 0.3, 50, 1},   {"tie", 0.7, 50, 1},   {"train/loss", 1.5, 7, 0},
    };
    mpb_metric second[] = {{"loss", 0.7, 102, 3}, {"loss", 0.6, 99, 5}, {"tie", 0.5, 50, 1}};
    assert_int_equal(
        mpb_store_log_batch(c->store, run_id, first, 6, NULL, 0, NULL, 0, c->err, sizeof c->err),
        0);
    assert_int_equal(
        mpb_store_log_batch(c->store, run_id, second, 3, NULL, 0, NULL, 0, c->err, sizeof c->err),
        0);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(c->store, run_id, "loss", &history, c->err, sizeof c->err), 0);
    assert_string_equal(history->run_id, run_id);
    assert_int_equal(history->n_metrics, 4);
    const int64_t steps[] = {2, 5, 3, 5};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(history->metrics[i].step, steps[i]);
        assert_string_equal(history->metrics[i].key, "loss");
    }
    mpb_metric_history_free(&history);
    assert_int_equal(
        mpb_store_get_metric_history(c->store, run_id, "nope", &history, c->err, sizeof c->err), 0);
    assert_int_equal(history->n_metrics, 0);
    mpb_metric_history_free(&history);

    mpb_run *run = get_run(c, run_id);
    assert_int_equal(run->n_metrics, 4);
    const mpb_metric *loss = mpb__metric_find(run->metrics, run->n_metrics, "loss");
    assert_true(loss->value == 0.8); /* step 5 twice: the later timestamp wins */
    assert_int_equal(loss->timestamp_ms, 101);
    const mpb_metric *tie = mpb__metric_find(run->metrics, run->n_metrics, "tie");
    assert_true(tie->value == 0.7); /* same step and time: the greater value */
    assert_true(mpb__metric_find(run->metrics, run->n_metrics, "train/loss")->value == 1.5);
    mpb_run_free(&run);
    free(run_id);
}

static void
nan_and_infinities_round_trip(void **state)
{
    contract *c = *state;
    char *run_id = th_run(c->store, c->exp_id, "odd-values");
    mpb_metric values[] = {
        {"v", NAN, 10, 0}, {"v", INFINITY, 11, 1}, {"v", -INFINITY, 12, 2},
        {"v", -0.25, 13, 3}, {"n", NAN, 10, 0},   {"p", INFINITY, 10, 0},
    };
    assert_int_equal(
        mpb_store_log_batch(c->store, run_id, values, 6, NULL, 0, NULL, 0, c->err, sizeof c->err),
        0);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(c->store, run_id, "v", &history, c->err, sizeof c->err), 0);
    assert_int_equal(history->n_metrics, 4);
    assert_true(isnan(history->metrics[0].value));
    assert_true(isinf(history->metrics[1].value) && history->metrics[1].value > 0);
    assert_true(isinf(history->metrics[2].value) && history->metrics[2].value < 0);
    assert_true(history->metrics[3].value == -0.25);
    mpb_metric_history_free(&history);
    mpb_run *run = get_run(c, run_id);
    assert_true(mpb__metric_find(run->metrics, run->n_metrics, "v")->value == -0.25);
    assert_true(isnan(mpb__metric_find(run->metrics, run->n_metrics, "n")->value));
    assert_true(isinf(mpb__metric_find(run->metrics, run->n_metrics, "p")->value));
    mpb_run_free(&run);
    free(run_id);
}

/* ---- Search ---- */

#define N_SEARCH_RUNS 25

/* Runs r0..r24 with param i, metric m = i (step 0), tag parity; r3 deleted. */
static char **
make_search_runs(contract *c)
{
    char **ids = mpb_calloc(N_SEARCH_RUNS, sizeof *ids);
    for (int i = 0; i < N_SEARCH_RUNS; i++) {
        char name[16];
        char value[16];
        snprintf(name, sizeof name, "r%d", i);
        snprintf(value, sizeof value, "%d", i);
        assert_int_equal(mpb_store_create_run(c->store, c->exp_id, "tester", 1000 + i, name, NULL,
                                              0, &ids[i], c->err, sizeof c->err),
                         0);
        mpb_metric metric = {"m", i, 1000, 0};
        mpb_param param = {"i", value};
        mpb_tag tag = {"parity", i % 2 ? "odd" : "even"};
        assert_int_equal(mpb_store_log_batch(c->store, ids[i], &metric, 1, &param, 1, &tag, 1,
                                             c->err, sizeof c->err),
                         0);
    }
    assert_int_equal(mpb_store_delete_run(c->store, ids[3], c->err, sizeof c->err), 0);
    return ids;
}

static size_t
search_count(contract *c, const char *filter, mpb_view_type view)
{
    const char *ids[] = {c->exp_id};
    mpb_search_opts opts = {.filter = filter, .view_type = view};
    mpb_run_page *page = NULL;
    if (mpb_store_search_runs(c->store, ids, 1, &opts, &page, c->err, sizeof c->err) != 0) {
        fail_msg("[%s] search '%s': %s", backend->name, filter, c->err);
    }
    size_t n = page->n_runs;
    mpb_run_page_free(&page);
    return n;
}

static void
search_filters_and_view_types_agree(void **state)
{
    contract *c = *state;
    char **ids = make_search_runs(c);
    assert_int_equal(search_count(c, NULL, 0), N_SEARCH_RUNS - 1);
    assert_int_equal(search_count(c, NULL, MPB_VIEW_ALL), N_SEARCH_RUNS);
    assert_int_equal(search_count(c, NULL, MPB_VIEW_DELETED_ONLY), 1);
    assert_int_equal(search_count(c, "metrics.m >= 10 AND tags.parity = 'even'", 0), 8);
    assert_int_equal(search_count(c, "params.i IN ('1', '2', '3')", 0), 2);
    assert_int_equal(search_count(c, "attributes.run_name LIKE 'r1%'", 0), 11);
    assert_int_equal(search_count(c, "attributes.status = 'RUNNING'", 0), N_SEARCH_RUNS - 1);
    assert_int_equal(search_count(c, "attributes.start_time < 1005", MPB_VIEW_ALL), 5);
    assert_int_equal(search_count(c, "metrics.missing > 0", 0), 0);

    const char *exp_ids[] = {c->exp_id};
    const char *order[] = {"metrics.m DESC"};
    mpb_search_opts opts = {.filter = "tags.parity = 'odd'", .order_by = order, .n_order_by = 1};
    mpb_run_page *page = NULL;
    assert_int_equal(
        mpb_store_search_runs(c->store, exp_ids, 1, &opts, &page, c->err, sizeof c->err), 0);
    assert_int_equal(page->n_runs, 11); /* odd 1..23 without the deleted 3 */
    assert_string_equal(page->runs[0].info.run_name, "r23");
    assert_string_equal(page->runs[10].info.run_name, "r1");
    assert_null(page->next_page_token);
    mpb_run_page_free(&page);
    const char *ghost[] = {"4242"};
    assert_int_equal(mpb_store_search_runs(c->store, ghost, 1, NULL, &page, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    for (int i = 0; i < N_SEARCH_RUNS; i++) {
        free(ids[i]);
    }
    free(ids);
}

static void
pages_follow_the_backends_own_tokens(void **state)
{
    contract *c = *state;
    char **ids = make_search_runs(c);
    const char *exp_ids[] = {c->exp_id};
    const char *order[] = {"attributes.start_time ASC"};
    char seen[N_SEARCH_RUNS] = {0};
    char *token = NULL;
    size_t pages = 0;
    int previous = -1;
    do {
        mpb_search_opts opts = {
            .order_by = order, .n_order_by = 1, .max_results = 4, .page_token = token};
        mpb_run_page *page = NULL;
        assert_int_equal(
            mpb_store_search_runs(c->store, exp_ids, 1, &opts, &page, c->err, sizeof c->err), 0);
        free(token);
        token = page->next_page_token ? mpb_strdup(page->next_page_token) : NULL;
        assert_true(page->n_runs <= 4);
        for (size_t i = 0; i < page->n_runs; i++) {
            int n = atoi(page->runs[i].info.run_name + 1);
            assert_true(n > previous);
            assert_false(seen[n]);
            seen[n] = 1;
            previous = n;
        }
        mpb_run_page_free(&page);
        pages++;
    } while (token != NULL);
    assert_int_equal(pages, 6); /* 24 active runs, 4 a page */
    for (int i = 0; i < N_SEARCH_RUNS; i++) {
        assert_int_equal(seen[i], i != 3);
    }
    mpb_search_opts bad = {.page_token = "not a token"};
    mpb_run_page *page = NULL;
    assert_int_equal(
        mpb_store_search_runs(c->store, exp_ids, 1, &bad, &page, c->err, sizeof c->err),
        MPB_EINVAL);
    assert_null(page);

    /* Experiments page the same way. */
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "more-%d", i);
        free(th_experiment(c->store, name));
    }
    size_t found = 0;
    do {
        mpb_search_opts opts = {.filter = "name LIKE 'more-%'", .max_results = 2,
                                .page_token = token};
        mpb_experiment_page *experiments = NULL;
        assert_int_equal(mpb_store_search_experiments(c->store, &opts, &experiments, c->err,
                                                      sizeof c->err),
                         0);
        free(token);
        token = experiments->next_page_token ? mpb_strdup(experiments->next_page_token) : NULL;
        found += experiments->n_experiments;
        mpb_experiment_page_free(&experiments);
    } while (token != NULL);
    assert_int_equal(found, 5);
    for (int i = 0; i < N_SEARCH_RUNS; i++) {
        free(ids[i]);
    }
    free(ids);
}

/* ---- Registry helpers and artifacts ---- */

static void
registry_helpers_find_or_create(void **state)
{
    contract *c = *state;
    char *first = NULL;
    int created = -1;
    assert_int_equal(mpb_store_get_or_create_experiment(c->store, "models", &first, &created,
                                                        c->err, sizeof c->err),
                     0);
    assert_int_equal(created, 1);
    assert_int_equal(mpb_store_delete_experiment(c->store, first, c->err, sizeof c->err), 0);
    char *again = NULL;
    assert_int_equal(mpb_store_get_or_create_experiment(c->store, "models", &again, &created,
                                                        c->err, sizeof c->err),
                     0);
    assert_int_equal(created, 0);
    assert_string_equal(again, first);
    mpb_tag key[] = {{"model", "mlp"}, {"version", "it's 1"}};
    char *run_id = NULL;
    char *same = NULL;
    assert_int_equal(mpb_store_get_or_create_run(c->store, again, key, 2, &run_id, &created,
                                                 c->err, sizeof c->err),
                     0);
    assert_int_equal(created, 1);
    assert_int_equal(mpb_store_get_or_create_run(c->store, again, key, 2, &same, &created, c->err,
                                                 sizeof c->err),
                     0);
    assert_int_equal(created, 0);
    assert_string_equal(same, run_id);
    free(same);
    free(run_id);
    free(again);
    free(first);
}

static void
write_file(const char *path, const char *text)
{
    char *parent = mpb_strdup(path);
    *strrchr(parent, '/') = '\0';
    assert_int_equal(mpb__fs_mkdir_p(parent), 0);
    assert_int_equal(mpb__fs_write_atomic(parent, path, text, strlen(text)), 0);
    free(parent);
}

static void
artifacts_go_in_and_come_back(void **state)
{
    contract *c = *state;
    char *run_id = th_run(c->store, c->exp_id, "artifacts");
    char *model = th_pathf("%s/src/model.bin", c->dir);
    char *folder = th_pathf("%s/src/report", c->dir);
    char *deep = th_pathf("%s/deep/b.txt", folder);
    write_file(model, "weights");
    write_file(deep, "beta");
    assert_int_equal(
        mpb_store_log_artifact(c->store, run_id, model, "models", c->err, sizeof c->err), 0);
    assert_int_equal(
        mpb_store_log_artifact(c->store, run_id, folder, "report", c->err, sizeof c->err), 0);
    mpb_artifact_list *list = NULL;
    assert_int_equal(mpb_store_list_artifacts(c->store, run_id, NULL, &list, c->err, sizeof c->err),
                     0);
    assert_int_equal(list->n_files, 2);
    assert_string_equal(list->files[0].path, "models");
    assert_true(list->files[0].is_dir);
    assert_string_equal(list->files[1].path, "report");
    mpb_artifact_list_free(&list);
    assert_int_equal(
        mpb_store_list_artifacts(c->store, run_id, "models", &list, c->err, sizeof c->err), 0);
    assert_int_equal(list->n_files, 1);
    assert_string_equal(list->files[0].path, "models/model.bin");
    assert_int_equal(list->files[0].file_size, 7);
    mpb_artifact_list_free(&list);
    char *dst = th_pathf("%s/dst", c->dir);
    char *local = NULL;
    assert_int_equal(
        mpb_store_download_artifacts(c->store, run_id, "", dst, &local, c->err, sizeof c->err), 0);
    char *copy = th_pathf("%s/report/deep/b.txt", local);
    th_assert_file(copy, "beta");
    free(copy);
    free(local);
    assert_int_equal(
        mpb_store_list_artifacts(c->store, run_id, "../x", &list, c->err, sizeof c->err),
        MPB_EINVAL);
    assert_int_equal(mpb_store_log_artifact(c->store, "0123456789abcdef0123456789abcdef", model,
                                            NULL, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    free(dst);
    free(deep);
    free(folder);
    free(model);
    free(run_id);
}

static void
open_options_are_accepted_and_limits_hold(void **state)
{
    contract *c = *state;
    mpb_store_open_opts opts = c->opts;
    opts.timeout_ms = 5000;
    opts.max_retries = 2;
    opts.token = "unused-by-local-stores";
    opts.insecure_tls = 1;
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open_with(c->uri, &opts, &store, c->err, sizeof c->err), 0);
    char *run_id = th_run(store, c->exp_id, "opts");
    mpb_metric *many = mpb_calloc(MPB_MAX_METRICS_PER_BATCH + 1, sizeof *many);
    for (size_t i = 0; i <= MPB_MAX_METRICS_PER_BATCH; i++) {
        many[i] = (mpb_metric){"m", (double)i, 1, (int64_t)i};
    }
    assert_int_equal(mpb_store_log_batch(store, run_id, many, MPB_MAX_METRICS_PER_BATCH + 1, NULL,
                                         0, NULL, 0, c->err, sizeof c->err),
                     MPB_EINVAL);
    assert_int_equal(mpb_store_log_batch(store, run_id, many, MPB_MAX_METRICS_PER_BATCH, NULL, 0,
                                         NULL, 0, c->err, sizeof c->err),
                     0);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(c->store, run_id, "m", &history, c->err, sizeof c->err), 0);
    assert_int_equal(history->n_metrics, MPB_MAX_METRICS_PER_BATCH);
    mpb_metric_history_free(&history);
    mpb_store_destroy(&store);
    free(many);
    free(run_id);
}

int
main(void)
{
#define CONTRACT_TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(default_experiment_exists_and_data_outlives_the_store),
        CONTRACT_TEST(experiment_names_are_unique_and_lifecycle_is_enforced),
        CONTRACT_TEST(restoring_an_experiment_brings_back_the_runs_deleted_with_it),
        CONTRACT_TEST(runs_live_update_and_die),
        CONTRACT_TEST(params_are_immutable_and_a_refused_batch_writes_nothing),
        CONTRACT_TEST(tags_are_set_overwritten_and_deleted),
        CONTRACT_TEST(metrics_keep_history_and_the_latest_by_step_then_time_then_value),
        CONTRACT_TEST(nan_and_infinities_round_trip),
        CONTRACT_TEST(search_filters_and_view_types_agree),
        CONTRACT_TEST(pages_follow_the_backends_own_tokens),
        CONTRACT_TEST(registry_helpers_find_or_create),
        CONTRACT_TEST(artifacts_go_in_and_come_back),
        CONTRACT_TEST(open_options_are_accepted_and_limits_hold),
    };
    int failed = 0;
    for (size_t i = 0; i < MPB_ARRAY_LEN(backends); i++) {
        backend = &backends[i];
        failed += cmocka_run_group_tests_name(backend->name, tests, NULL, NULL);
    }
    return failed;
}
