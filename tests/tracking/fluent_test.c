/*
 * The fluent API on a real file store: runs, nesting, experiments, artifacts,
 * failures, shutdown status; the environment variables and the exit path in
 * re-executed child processes (the fluent state is per process).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/server_tracker.h"
#include "mpbatch/tracking.h"
#include "tracking/helpers.h"
#include "tracking/test_child.h"

#define HANG_MS 30000

/* The fixture's store is a second handle on the fluent API's folder, for reading. */
static int
setup(void **state)
{
    th_fixture *f = th_fixture_new(NULL, NULL);
    *state = f;
    char err[512] = "";
    if (mpb_tracking_set_tracking_uri(f->root, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    mpb_tracking_shutdown(0, NULL, 0);
    return th_fixture_teardown(state);
}

static mpb_run *
get_run(th_fixture *f, const char *run_id)
{
    mpb_run *run = NULL;
    char err[512] = "";
    if (mpb_store_get_run(f->store, run_id, &run, err, sizeof err) != 0) {
        fail_msg("get_run %s: %s", run_id, err);
    }
    return run;
}

static const char *
tag_of(const mpb_run *run, const char *key)
{
    for (size_t i = 0; i < run->n_tags; i++) {
        if (strcmp(run->tags[i].key, key) == 0) {
            return run->tags[i].value;
        }
    }
    return NULL;
}

static void
a_run_from_start_to_end(void **state)
{
    th_fixture *f = *state;
    char run_id[64];
    char err[512] = "";
    assert_int_equal(mpb_tracking_start_run("first", run_id, sizeof run_id, err, sizeof err), 0);
    char active[64];
    assert_int_equal(mpb_tracking_active_run_id(active, sizeof active), 0);
    assert_string_equal(active, run_id);
    assert_int_equal(mpb_tracking_active_run_id(active, 4), MPB_ERANGE);
    assert_int_equal(mpb_tracking_log_param("lr", "0.01"), 0);
    for (int step = 0; step < 3; step++) {
        assert_int_equal(mpb_tracking_log_metric("loss", 1.0 / (step + 1), step), 0);
    }
    assert_int_equal(mpb_tracking_set_tag("team", "a"), 0);
    assert_int_equal(mpb_tracking_end_run(MPB_RUN_FINISHED, err, sizeof err), 0);
    assert_int_equal(mpb_tracking_active_run_id(active, sizeof active), MPB_ENOTFOUND);
    assert_int_equal(mpb_tracking_end_run(MPB_RUN_FINISHED, NULL, 0), MPB_ENOTFOUND);

    /* end_run waited: everything is on disk now */
    mpb_run *run = get_run(f, run_id);
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    assert_true(run->info.end_time > 0);
    assert_string_equal(run->info.experiment_id, "0");
    assert_int_equal(run->n_params, 1);
    assert_int_equal(run->n_metrics, 1);
    assert_true(run->metrics[0].step == 2);
    assert_string_equal(tag_of(run, "mlflow.runName"), "first");
    assert_string_equal(tag_of(run, "mlflow.source.type"), "LOCAL");
    assert_non_null(strstr(tag_of(run, "mlflow.source.name"), "fluent"));
    assert_non_null(tag_of(run, "mlflow.user"));
    assert_string_equal(tag_of(run, "team"), "a");
    assert_null(tag_of(run, "mlflow.parentRunId"));
    mpb_run_free(&run);
}

static void
nested_runs_name_their_parent(void **state)
{
    th_fixture *f = *state;
    char outer[64];
    char inner[64];
    char active[64];
    assert_int_equal(mpb_tracking_start_run("outer", outer, sizeof outer, NULL, 0), 0);
    assert_int_equal(mpb_tracking_start_run("inner", inner, sizeof inner, NULL, 0), 0);
    assert_int_equal(mpb_tracking_log_metric("depth", 2, 0), 0);
    assert_int_equal(mpb_tracking_end_run(MPB_RUN_KILLED, NULL, 0), 0);
    assert_int_equal(mpb_tracking_active_run_id(active, sizeof active), 0);
    assert_string_equal(active, outer);
    assert_int_equal(mpb_tracking_log_metric("depth", 1, 0), 0);
    assert_int_equal(mpb_tracking_end_run(MPB_RUN_FINISHED, NULL, 0), 0);

    mpb_run *child = get_run(f, inner);
    assert_string_equal(tag_of(child, "mlflow.parentRunId"), outer);
    assert_int_equal(child->info.status, MPB_RUN_KILLED);
    assert_true(child->metrics[0].value == 2);
    mpb_run *parent = get_run(f, outer);
    assert_null(tag_of(parent, "mlflow.parentRunId"));
    assert_int_equal(parent->info.status, MPB_RUN_FINISHED);
    assert_true(parent->metrics[0].value == 1);
    mpb_run_free(&child);
    mpb_run_free(&parent);
}

/* Logging without a run starts one; shutdown(nonzero) ends it FAILED. */
static void
logging_starts_a_run_and_shutdown_fails_it(void **state)
{
    th_fixture *f = *state;
    assert_int_equal(mpb_tracking_log_metric("x", 1, 0), 0);
    char run_id[64];
    assert_int_equal(mpb_tracking_active_run_id(run_id, sizeof run_id), 0);
    assert_int_equal(mpb_tracking_shutdown(1, NULL, 0), 0);
    mpb_run *run = get_run(f, run_id);
    assert_int_equal(run->info.status, MPB_RUN_FAILED);
    assert_int_equal(run->n_metrics, 1);
    assert_non_null(tag_of(run, "mlflow.runName")); /* the store named it */
    mpb_run_free(&run);
    /* and the API starts afresh */
    assert_int_equal(mpb_tracking_start_run(NULL, NULL, 0, NULL, 0), 0);
    assert_int_equal(mpb_tracking_end_run(MPB_RUN_FINISHED, NULL, 0), 0);
}

static void
experiments_are_created_and_deleted_ones_refused(void **state)
{
    th_fixture *f = *state;
    char err[512] = "";
    assert_int_equal(mpb_tracking_set_experiment("fluent-exp", err, sizeof err), 0);
    char run_id[64];
    assert_int_equal(mpb_tracking_start_run(NULL, run_id, sizeof run_id, NULL, 0), 0);
    char busy[256] = "";
    assert_int_equal(mpb_tracking_set_tracking_uri("/elsewhere", busy, sizeof busy), MPB_EBUSY);
    assert_int_equal(mpb_tracking_end_run(MPB_RUN_FINISHED, NULL, 0), 0);
    mpb_experiment *exp = NULL;
    assert_int_equal(mpb_store_get_experiment_by_name(f->store, "fluent-exp", &exp, NULL, 0), 0);
    mpb_run *run = get_run(f, run_id);
    assert_string_equal(run->info.experiment_id, exp->experiment_id);
    mpb_run_free(&run);

    assert_int_equal(mpb_store_delete_experiment(f->store, exp->experiment_id, NULL, 0), 0);
    assert_int_equal(mpb_tracking_set_experiment("fluent-exp", err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "deleted"));
    mpb_experiment_free(&exp);
}

static void
artifacts_are_copied_into_the_run(void **state)
{
    th_fixture *f = *state;
    char *file = mpb_asprintf("%s/model.txt", f->dir);
    FILE *out = fopen(file, "w");
    fputs("weights\n", out);
    fclose(out);
    char run_id[64];
    char err[512] = "";
    assert_int_equal(mpb_tracking_start_run("art", run_id, sizeof run_id, NULL, 0), 0);
    assert_int_equal(mpb_tracking_log_artifact(file, "models", err, sizeof err), 0);
    assert_int_equal(mpb_tracking_end_run(MPB_RUN_FINISHED, NULL, 0), 0);
    mpb_artifact_list *list = NULL;
    assert_int_equal(mpb_store_list_artifacts(f->store, run_id, "models", &list, NULL, 0), 0);
    assert_int_equal(list->n_files, 1);
    assert_string_equal(list->files[0].path, "models/model.txt");
    mpb_artifact_list_free(&list);
    free(file);
}

/* A write the store refuses shows up at the next flush. */
static void
flush_reports_failed_writes(void **state)
{
    assert_int_equal(mpb_tracking_start_run(NULL, NULL, 0, NULL, 0), 0);
    assert_int_equal(mpb_tracking_log_param("p", "1"), 0);
    assert_int_equal(mpb_tracking_flush(HANG_MS), 0);
    assert_int_equal(mpb_tracking_log_param("p", "2"), 0); /* params are immutable */
    assert_int_equal(mpb_tracking_flush(HANG_MS), MPB_EINVAL);
    assert_int_equal(mpb_tracking_flush(HANG_MS), 0);
    assert_non_null(mpb_tracking_queue(NULL, 0));
    assert_non_null(mpb_tracking_store(NULL, 0));
    assert_int_equal(mpb_tracking_end_run(MPB_RUN_FINISHED, NULL, 0), 0);
}

static void
a_refused_end_status_leaves_the_run_active_and_shutdown_writes_it(void **state)
{
    th_fixture *f = *state;
    char id[64];
    assert_int_equal(mpb_tracking_start_run("kept", id, sizeof id, NULL, 0), 0);
    /* the queue refuses from here on (as when full or failed) */
    mpb_logging_queue *queue = mpb_tracking_queue(NULL, 0);
    assert_int_equal(mpb_logging_queue_shutdown(queue, HANG_MS, NULL, 0), 0);
    char err[512] = "";
    assert_int_not_equal(mpb_tracking_end_run(MPB_RUN_FINISHED, err, sizeof err), 0);
    assert_non_null(strstr(err, "still active"));
    char active[64] = "";
    assert_int_equal(mpb_tracking_active_run_id(active, sizeof active), 0);
    assert_string_equal(active, id);
    /* shutdown writes the end status to the store itself */
    assert_int_equal(mpb_tracking_shutdown(0, err, sizeof err), 0);
    mpb_run *run = get_run(f, id);
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    assert_true(run->info.end_time > 0);
    mpb_run_free(&run);
}

/* ---- children: environment variables and exit ---------------------------------------------- */

/* A fluent run, and a server tracker writing to it through the fluent
 * store; returns from main with the tracker's metrics still queued. */
static int
child_tracker_and_returns(void)
{
    char id[64];
    char err[512] = "";
    if (mpb_tracking_start_run("tracked", id, sizeof id, err, sizeof err) != 0) {
        fprintf(stderr, "start_run: %s\n", err);
        return 2;
    }
    static mpb_server_tracker *t; /* left to the exit drain, reachable */
    t = mpb_server_tracker_new(mpb_tracking_store(NULL, 0), id);
    if (mpb_server_tracker_start(t, err, sizeof err) != 0) {
        fprintf(stderr, "tracker: %s\n", err);
        return 2;
    }
    for (uint32_t i = 0; i < 20000; i++) {
        mpb_batch_telemetry b = {.size = 4, .compute_us = i};
        mpb_server_tracker_on_batch(t, &b);
    }
    mpb_server_tracker_flush(t, 0);
    return 0; /* the exit drain writes the rest through the fluent store */
}

static void
the_store_outlives_trackers_at_exit(void **state)
{
    th_fixture *f = *state;
    char *uri = mpb_asprintf("MLFLOW_TRACKING_URI=file:%s", f->root);
    const char *env[] = {uri, NULL};
    const char *args[] = {"--child-tracker", NULL};
    /* a store freed before the tracker's queue drained: a use after free
     * (the sanitizer build's child dies of it) */
    assert_int_equal(test_child_run(args, env, NULL, HANG_MS), 0);
    free(uri);
}



/* Starts an outer and an inner run, logs, and returns from main. */
static int
child_runs_and_returns(const char *out_path)
{
    char outer[64];
    char inner[64];
    char err[512] = "";
    if (mpb_tracking_start_run("outer", outer, sizeof outer, err, sizeof err) != 0 ||
        mpb_tracking_start_run("inner", inner, sizeof inner, err, sizeof err) != 0) {
        fprintf(stderr, "start_run: %s\n", err);
        return 2;
    }
    for (int i = 0; i < 1000; i++) {
        mpb_tracking_log_metric("loss", i, i);
    }
    FILE *out = fopen(out_path, "w");
    fprintf(out, "%s %s", outer, inner);
    fclose(out);
    return 0;
}

static void
run_child(th_fixture *f, const char *const *env, char *outer, char *inner)
{
    char *out_path = mpb_asprintf("%s/ids", f->dir);
    const char *args[] = {"--child-runs", out_path, NULL};
    assert_int_equal(test_child_run(args, env, NULL, HANG_MS), 0);
    char *ids = th_read(out_path);
    assert_non_null(ids);
    assert_int_equal(sscanf(ids, "%63s %63s", outer, inner), 2);
    free(ids);
    free(out_path);
}

static void
exit_ends_runs_and_drains(void **state)
{
    th_fixture *f = *state;
    char *uri = mpb_asprintf("MLFLOW_TRACKING_URI=file:%s", f->root);
    const char *env[] = {uri, NULL};
    char outer[64];
    char inner[64];
    run_child(f, env, outer, inner);
    mpb_run *in = get_run(f, inner);
    mpb_run *out = get_run(f, outer);
    assert_int_equal(in->info.status, MPB_RUN_FINISHED);
    assert_int_equal(out->info.status, MPB_RUN_FINISHED);
    assert_true(in->metrics[0].step == 999);
    assert_string_equal(tag_of(in, "mlflow.parentRunId"), outer);
    mpb_run_free(&in);
    mpb_run_free(&out);
    free(uri);
}

static void
experiment_name_and_id_from_the_environment(void **state)
{
    th_fixture *f = *state;
    char *uri = mpb_asprintf("MLFLOW_TRACKING_URI=%s", f->root);
    char outer[64];
    char inner[64];
    const char *by_name[] = {uri, "MLFLOW_EXPERIMENT_NAME=from-env", NULL};
    run_child(f, by_name, outer, inner);
    mpb_experiment *exp = NULL;
    assert_int_equal(mpb_store_get_experiment_by_name(f->store, "from-env", &exp, NULL, 0), 0);
    mpb_run *run = get_run(f, outer);
    assert_string_equal(run->info.experiment_id, exp->experiment_id);
    mpb_run_free(&run);

    char *id_entry = mpb_asprintf("MLFLOW_EXPERIMENT_ID=%s", exp->experiment_id);
    const char *by_id[] = {uri, id_entry, NULL};
    run_child(f, by_id, outer, inner);
    run = get_run(f, inner);
    assert_string_equal(run->info.experiment_id, exp->experiment_id);
    mpb_run_free(&run);
    mpb_experiment_free(&exp);
    free(id_entry);
    free(uri);
}

static void
run_id_from_the_environment_is_resumed(void **state)
{
    th_fixture *f = *state;
    char *existing = NULL;
    assert_int_equal(
        mpb_store_create_run(f->store, "0", "me", -1, "earlier", NULL, 0, &existing, NULL, 0), 0);
    assert_int_equal(
        mpb_store_update_run(f->store, existing, MPB_RUN_FAILED, mpb_wall_ms(), NULL, NULL, 0), 0);
    char *uri = mpb_asprintf("MLFLOW_TRACKING_URI=%s", f->root);
    char *run_entry = mpb_asprintf("MLFLOW_RUN_ID=%s", existing);
    const char *env[] = {uri, run_entry, NULL};
    char outer[64];
    char inner[64];
    run_child(f, env, outer, inner);
    assert_string_equal(outer, existing);
    mpb_run *run = get_run(f, existing);
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    mpb_run_free(&run);
    run = get_run(f, inner);
    assert_string_equal(tag_of(run, "mlflow.parentRunId"), existing);
    mpb_run_free(&run);
    free(run_entry);
    free(uri);
    free(existing);
}

int
main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--child-runs") == 0) {
        return child_runs_and_returns(argv[2]);
    }
    if (argc >= 2 && strcmp(argv[1], "--child-tracker") == 0) {
        return child_tracker_and_returns();
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_run_from_start_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(nested_runs_name_their_parent, setup, teardown),
        cmocka_unit_test_setup_teardown(logging_starts_a_run_and_shutdown_fails_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(experiments_are_created_and_deleted_ones_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(artifacts_are_copied_into_the_run, setup, teardown),
        cmocka_unit_test_setup_teardown(flush_reports_failed_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_refused_end_status_leaves_the_run_active_and_shutdown_writes_it, setup, teardown),
        cmocka_unit_test_setup_teardown(exit_ends_runs_and_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(the_store_outlives_trackers_at_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(experiment_name_and_id_from_the_environment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(run_id_from_the_environment_is_resumed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
