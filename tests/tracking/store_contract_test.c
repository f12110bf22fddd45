/*
 * The store contract, part 1: experiments, runs, params, tags and metrics,
 * run unchanged on every backend of store_contract.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "store_contract.h"

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
    assert_int_equal(mpb_store_create_experiment(c->store, "contract", NULL, NULL, 0, &id, c->err,
                                                 sizeof c->err),
                     MPB_EEXIST);
    mpb_experiment *experiment = NULL;
    assert_int_equal(
        mpb_store_get_experiment_by_name(c->store, "contract", &experiment, c->err, sizeof c->err),
        0);
    assert_string_equal(experiment->experiment_id, c->exp_id);
    mpb_experiment_free(&experiment);
    assert_int_equal(
        mpb_store_get_experiment_by_name(c->store, "nope", &experiment, c->err, sizeof c->err),
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
    assert_int_equal(mpb_store_create_experiment(c->store, "contract", NULL, NULL, 0, &id, c->err,
                                                 sizeof c->err),
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
    assert_int_equal(mpb_store_delete_experiment(c->store, "0", c->err, sizeof c->err), MPB_EINVAL);
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
    assert_true(backend->lacks_deleted_time ? run->info.deleted_time == -1
                                            : run->info.deleted_time >= before);
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

/* "a" and "a/b" in one batch: rows in MLflow's SQL store and server, so
 * both are taken there; a file and a folder of one name in the file store,
 * so refused there (as a whole). */
static void
a_key_and_its_folder_depend_on_the_backend(void **state)
{
    contract *c = *state;
    char *run_id = th_run(c->store, c->exp_id, "folders");
    mpb_metric metrics[] = {{"loss", 1, 1, 0}, {"loss/val", 2, 1, 0}};
    mpb_param params[] = {{"p", "1"}, {"p/q", "2"}};
    mpb_tag tags[] = {{"t", "x"}, {"t/u", "y"}};
    int file = strcmp(backend->name, "file") == 0;
    assert_int_equal(mpb_store_log_batch(c->store, run_id, metrics, 2, params, 2, tags, 2, c->err,
                                         sizeof c->err),
                     file ? MPB_EINVAL : 0);
    mpb_run *run = get_run(c, run_id);
    assert_int_equal(run->n_metrics, file ? 0 : 2);
    assert_int_equal(run->n_params, file ? 0 : 2);
    assert_true((mpb__tag_find(run->tags, run->n_tags, "t/u") != NULL) == !file);
    mpb_run_free(&run);
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
        {"v", NAN, 10, 0},   {"v", INFINITY, 11, 1}, {"v", -INFINITY, 12, 2},
        {"v", -0.25, 13, 3}, {"n", NAN, 10, 0},      {"p", INFINITY, 10, 0},
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(default_experiment_exists_and_data_outlives_the_store),
        CONTRACT_TEST(experiment_names_are_unique_and_lifecycle_is_enforced),
        CONTRACT_TEST(restoring_an_experiment_brings_back_the_runs_deleted_with_it),
        CONTRACT_TEST(runs_live_update_and_die),
        CONTRACT_TEST(params_are_immutable_and_a_refused_batch_writes_nothing),
        CONTRACT_TEST(a_key_and_its_folder_depend_on_the_backend),
        CONTRACT_TEST(tags_are_set_overwritten_and_deleted),
        CONTRACT_TEST(metrics_keep_history_and_the_latest_by_step_then_time_then_value),
        CONTRACT_TEST(nan_and_infinities_round_trip),
    };
    int failed = 0;
    for (size_t i = 0; i < MPB_ARRAY_LEN(backends); i++) {
        backend = &backends[i];
        failed += cmocka_run_group_tests_name(backend->name, tests, NULL, NULL);
    }
    return failed;
}
