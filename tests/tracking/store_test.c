/*
 * The store API on a real file store: opening by tracking URI (and
 * MLFLOW_TRACKING_URI, else the default rule: ./mlruns if it holds
 * experiments, else sqlite:///mlflow.db), experiments with delete to .trash and restore, runs
 * through their life, tags, metric history.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <limits.h>

#include "helpers.h"

static void
assert_open_fails(const char *uri, int status, const char *text)
{
    mpb_store *store = NULL;
    char err[512] = "";
    assert_int_equal(mpb_store_open(uri, &store, err, sizeof err), status);
    assert_null(store);
    if (strstr(err, text) == NULL) {
        fail_msg("open '%s': '%s' lacks '%s'", uri, err, text);
    }
}

static void
open_resolves_tracking_uris(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    char *forms[] = {
        th_pathf("%s/plain", dir),
        th_pathf("file:%s/scheme", dir),
        th_pathf("file://%s/slashes", dir),
        th_pathf("file://localhost%s/local", dir),
        th_pathf("file://%s/with%%20space", dir),
    };
    const char *leaf[] = {"plain", "scheme", "slashes", "local", "with space"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(forms); i++) {
        mpb_store *store = NULL;
        char err[512] = "";
        assert_int_equal(mpb_store_open(forms[i], &store, err, sizeof err), 0);
        char *folder = th_pathf("%s/%s", dir, leaf[i]);
        char *meta = th_pathf("%s/0/meta.yaml", folder);
        assert_true(mpb__fs_is_file(meta));
        char *trash = th_pathf("%s/.trash", folder);
        assert_true(mpb__fs_is_dir(trash));
        char real[PATH_MAX];
        assert_non_null(realpath(folder, real));
        char *uri = mpb__path_to_file_uri(real);
        assert_string_equal(mpb_store_uri(store), uri);
        free(uri);
        free(trash);
        free(meta);
        free(folder);
        mpb_store_destroy(&store);
        mpb_store_destroy(&store); /* idempotent */
        free(forms[i]);
    }
    assert_open_fails("sqlite://", MPB_EINVAL, "names no database file");
    assert_open_fails("sqlite:///x.db?mode=ro", MPB_EINVAL, "names no database file");
    assert_open_fails("sqlite://host/x.db", MPB_EINVAL, "names no database file");
    assert_open_fails("https://user:pw@mlflow.example.com", MPB_EINVAL, "without credentials");
    assert_open_fails("ftp://host/x", MPB_ENOTSUP, "'ftp' is not supported");
    assert_open_fails("file://otherhost/x", MPB_EINVAL, "names no local folder");
    assert_open_fails("", MPB_EINVAL, "empty");
    /* An unwritable place, even for root: a clear error naming the folder. */
    assert_open_fails("/proc/mpb-no-such/mlruns", MPB_ENOENT, "/proc/mpb-no-such/mlruns");
    th_cleanup(&dir);
}

/* Opens the default store from inside `dir`; returns its URI (caller frees). */
static char *
open_default_in(const char *dir)
{
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    char *uri = mpb_store_default_uri();
    mpb_store *store = NULL;
    char err[512] = "";
    int rc = mpb_store_open(NULL, &store, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    if (rc != 0) {
        fail_msg("open the default store in %s: %s", dir, err);
    }
    char *resolved = mpb_strdup(mpb_store_uri(store));
    mpb_store_destroy(&store);
    free(uri);
    return resolved;
}

static void
null_uri_uses_env_then_the_default_rule(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    char *env_root = th_pathf("%s/from-env", dir);
    assert_int_equal(setenv("MLFLOW_TRACKING_URI", env_root, 1), 0);
    char *uri = mpb_store_default_uri();
    assert_string_equal(uri, env_root);
    free(uri);
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open(NULL, &store, NULL, 0), 0);
    assert_non_null(strstr(mpb_store_uri(store), "/from-env"));
    mpb_store_destroy(&store);
    assert_true(mpb__fs_is_dir(env_root));

    /* Unset (or empty), in a folder without mlruns/: sqlite:///mlflow.db there. */
    assert_int_equal(setenv("MLFLOW_TRACKING_URI", "", 1), 0);
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    uri = mpb_store_default_uri();
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(uri, "sqlite:///mlflow.db");
    free(uri);
    char real[PATH_MAX];
    assert_non_null(realpath(dir, real));
    char *resolved = open_default_in(dir);
    char *expected = th_pathf("sqlite:///%s/mlflow.db", real);
    assert_string_equal(resolved, expected);
    free(expected);
    free(resolved);
    char *db = th_pathf("%s/mlflow.db", dir);
    assert_true(mpb__fs_is_file(db));
    free(db);

    /* An mlruns/ without experiments (only .trash, or artifacts) changes nothing. */
    char *trash = th_pathf("%s/mlruns/.trash", dir);
    char *artifacts = th_pathf("%s/mlruns/1/abc/artifacts", dir);
    assert_int_equal(mpb__fs_mkdir_p(trash), 0);
    assert_int_equal(mpb__fs_mkdir_p(artifacts), 0);
    resolved = open_default_in(dir);
    assert_non_null(strstr(resolved, "sqlite:///"));
    free(resolved);

    /* mlruns/ holding an experiment (a folder with meta.yaml): the file store there. */
    char *exp_dir = th_pathf("%s/mlruns/0", dir);
    char *meta = th_pathf("%s/meta.yaml", exp_dir);
    assert_int_equal(mpb__fs_mkdir_p(exp_dir), 0);
    assert_int_equal(mpb__fs_write_atomic(exp_dir, meta,
                                          "artifact_location: x\nexperiment_id: '0'\n"
                                          "lifecycle_stage: active\nname: Default\n",
                                          78),
                     0);
    assert_int_equal(chdir(dir), 0);
    uri = mpb_store_default_uri();
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(uri, "./mlruns");
    free(uri);
    resolved = open_default_in(dir);
    expected = th_pathf("file://%s/mlruns", real);
    assert_string_equal(resolved, expected);
    free(expected);
    free(resolved);
    unsetenv("MLFLOW_TRACKING_URI");
    free(meta);
    free(exp_dir);
    free(artifacts);
    free(trash);
    free(env_root);
    th_cleanup(&dir);
}

/* Default experiment only in a root that holds nothing yet (as MLflow). */
static void
default_experiment_comes_with_a_new_root_only(void **state)
{
    (void)state;
    char *dir = th_tempdir();
    char *notes = th_pathf("%s/notes.txt", dir);
    assert_int_equal(mpb__fs_write_atomic(dir, notes, "x", 1), 0);
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open(dir, &store, NULL, 0), 0);
    char *zero = th_pathf("%s/0", dir);
    assert_false(mpb__fs_is_dir(zero));
    mpb_store_destroy(&store);
    th_cleanup(&dir);
    free(zero);
    free(notes);

    dir = th_tempdir();
    store = th_open(dir);
    mpb_experiment *experiment = NULL;
    char err[512];
    assert_int_equal(mpb_store_get_experiment(store, "0", &experiment, err, sizeof err), 0);
    assert_string_equal(experiment->name, "Default");
    assert_string_equal(experiment->lifecycle_stage, "active");
    mpb_experiment_free(&experiment);
    mpb_experiment_free(&experiment);
    mpb_store_destroy(&store);
    store = th_open(dir); /* reopening changes nothing */
    mpb_experiment_page *page = NULL;
    assert_int_equal(mpb_store_search_experiments(store, NULL, &page, err, sizeof err), 0);
    assert_int_equal(page->n_experiments, 1);
    mpb_experiment_page_free(&page);
    assert_int_equal(mpb_store_delete_experiment(store, "0", err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "default experiment"));
    mpb_store_destroy(&store);
    th_cleanup(&dir);
}

static int
setup(void **state)
{
    *state = th_fixture_new("life", NULL);
    return 0;
}

static const char *
run_stage(th_fixture *f, const char *run_id, char *buf, size_t len)
{
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    snprintf(buf, len, "%s", run->info.lifecycle_stage);
    mpb_run_free(&run);
    return buf;
}

static void
delete_moves_experiment_to_trash_and_restore_brings_it_back(void **state)
{
    th_fixture *f = *state;
    char stage[16];
    char *kept = th_run(f->store, f->exp_id, "kept");
    char *earlier = th_run(f->store, f->exp_id, "deleted-earlier");
    assert_int_equal(mpb_store_delete_run(f->store, earlier, f->err, sizeof f->err), 0);
    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, f->exp_id, "k", "v", f->err, sizeof f->err), 0);
    /* Let the experiment's deletion time be later than the run's. */
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);

    assert_int_equal(mpb_store_delete_experiment(f->store, f->exp_id, f->err, sizeof f->err), 0);
    char *active_dir = th_pathf("%s/%s", f->root, f->exp_id);
    char *trash_dir = th_pathf("%s/.trash/%s", f->root, f->exp_id);
    assert_false(mpb__fs_is_dir(active_dir));
    assert_true(mpb__fs_is_dir(trash_dir));
    char *meta_path = th_pathf("%s/meta.yaml", trash_dir);
    char *meta = th_read(meta_path);
    assert_non_null(strstr(meta, "lifecycle_stage: \"deleted\"\n"));
    free(meta);
    mpb_experiment *experiment = NULL;
    assert_int_equal(
        mpb_store_get_experiment(f->store, f->exp_id, &experiment, f->err, sizeof f->err), 0);
    assert_string_equal(experiment->lifecycle_stage, "deleted");
    assert_int_equal(experiment->n_tags, 1);
    mpb_experiment_free(&experiment);
    assert_string_equal(run_stage(f, kept, stage, sizeof stage), "deleted");

    /* A deleted experiment takes no runs or tags and keeps its name. */
    char *run_id = NULL;
    assert_int_equal(mpb_store_create_run(f->store, f->exp_id, NULL, -1, NULL, NULL, 0, &run_id,
                                          f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "non-active experiment"));
    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, f->exp_id, "k", "w", f->err, sizeof f->err),
        MPB_EINVAL);
    char *id = NULL;
    assert_int_equal(
        mpb_store_create_experiment(f->store, "life", NULL, NULL, 0, &id, f->err, sizeof f->err),
        MPB_EEXIST);
    assert_non_null(strstr(f->err, "deleted state"));
    assert_int_equal(mpb_store_delete_experiment(f->store, f->exp_id, f->err, sizeof f->err),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_delete_experiment(f->store, "4242", f->err, sizeof f->err),
                     MPB_ENOTFOUND);

    assert_int_equal(mpb_store_restore_experiment(f->store, f->exp_id, f->err, sizeof f->err), 0);
    assert_true(mpb__fs_is_dir(active_dir));
    assert_false(mpb__fs_is_dir(trash_dir));
    assert_int_equal(
        mpb_store_get_experiment(f->store, f->exp_id, &experiment, f->err, sizeof f->err), 0);
    assert_string_equal(experiment->lifecycle_stage, "active");
    mpb_experiment_free(&experiment);
    /* The run the deletion took is back; the one deleted before stays deleted. */
    assert_string_equal(run_stage(f, kept, stage, sizeof stage), "active");
    assert_string_equal(run_stage(f, earlier, stage, sizeof stage), "deleted");
    assert_int_equal(mpb_store_restore_experiment(f->store, f->exp_id, f->err, sizeof f->err),
                     MPB_EINVAL);
    free(meta_path);
    free(trash_dir);
    free(active_dir);
    free(kept);
    free(earlier);
}

static void
runs_update_status_end_time_and_name(void **state)
{
    th_fixture *f = *state;
    int64_t before = mpb_wall_ms();
    char *run_id = th_run(f->store, f->exp_id, "before");
    assert_int_equal(mpb_store_update_run(f->store, run_id, MPB_RUN_FAILED, 123456, "after", f->err,
                                          sizeof f->err),
                     0);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_int_equal(run->info.status, MPB_RUN_FAILED);
    assert_int_equal(run->info.end_time, 123456);
    assert_true(run->info.start_time >= before && run->info.start_time <= mpb_wall_ms());
    assert_string_equal(run->info.run_name, "after");
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, MPB_TAG_RUN_NAME), "after");
    assert_string_equal(run->info.user_id, "tester");
    assert_string_equal(run->info.experiment_id, f->exp_id);
    assert_non_null(strstr(run->info.artifact_uri, "/artifacts"));
    mpb_run_free(&run);
    /* Setting the mlflow.runName tag renames the run too. */
    assert_int_equal(
        mpb_store_set_tag(f->store, run_id, MPB_TAG_RUN_NAME, "by-tag", f->err, sizeof f->err), 0);
    assert_int_equal(
        mpb_store_update_run(f->store, run_id, MPB_RUN_FINISHED, -1, NULL, f->err, sizeof f->err),
        0);
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_string_equal(run->info.run_name, "by-tag");
    assert_int_equal(run->info.end_time, 123456); /* -1 kept the end time */
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    assert_string_equal(mpb_run_status_name(run->info.status), "FINISHED");
    mpb_run_free(&run);
    free(run_id);
}

static void
run_names_and_users_default_like_mlflow(void **state)
{
    th_fixture *f = *state;
    assert_int_equal(setenv("LOGNAME", "alice", 1), 0);
    char *run_id = NULL;
    assert_int_equal(mpb_store_create_run(f->store, f->exp_id, NULL, 42, NULL, NULL, 0, &run_id,
                                          f->err, sizeof f->err),
                     0);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_string_equal(run->info.user_id, "alice");
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, MPB_TAG_USER), "alice");
    assert_int_equal(run->info.start_time, 42);
    assert_int_equal(run->info.end_time, -1);
    /* Random name adjective-noun-NNN, at most 20 characters, also as tag. */
    const char *name = run->info.run_name;
    assert_true(strlen(name) <= 20);
    const char *dash = strchr(name, '-');
    assert_non_null(dash);
    assert_non_null(strchr(dash + 1, '-'));
    assert_true(isdigit((unsigned char)name[strlen(name) - 1]));
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, MPB_TAG_RUN_NAME), name);
    mpb_run_free(&run);
    free(run_id);
    unsetenv("LOGNAME");

    mpb_tag tags[] = {{MPB_TAG_RUN_NAME, "from-tag"}, {MPB_TAG_USER, "bob"}};
    assert_int_equal(mpb_store_create_run(f->store, f->exp_id, NULL, -1, NULL, tags, 2, &run_id,
                                          f->err, sizeof f->err),
                     0);
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_string_equal(run->info.run_name, "from-tag");
    assert_string_equal(run->info.user_id, "bob");
    assert_int_equal(run->n_tags, 2);
    mpb_run_free(&run);
    free(run_id);
    assert_int_equal(mpb_store_create_run(f->store, f->exp_id, NULL, -1, "other", tags, 2, &run_id,
                                          f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "Both 'run_name' argument and 'mlflow.runName' tag"));
}

static void
tags_are_set_overwritten_and_deleted(void **state)
{
    th_fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "tags");
    assert_int_equal(mpb_store_set_tag(f->store, run_id, "k", "1", f->err, sizeof f->err), 0);
    assert_int_equal(mpb_store_set_tag(f->store, run_id, "k", "2", f->err, sizeof f->err), 0);
    assert_int_equal(mpb_store_set_tag(f->store, run_id, "dir/k", "3", f->err, sizeof f->err), 0);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, "k"), "2");
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, "dir/k"), "3");
    mpb_run_free(&run);
    assert_int_equal(mpb_store_delete_tag(f->store, run_id, "k", f->err, sizeof f->err), 0);
    assert_int_equal(mpb_store_delete_tag(f->store, run_id, "k", f->err, sizeof f->err),
                     MPB_ENOTFOUND);
    assert_non_null(strstr(f->err, "No tag with name: k"));
    assert_int_equal(mpb_store_delete_tag(f->store, run_id, "dir", f->err, sizeof f->err),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_null(mpb__tag_find(run->tags, run->n_tags, "k"));
    assert_non_null(mpb__tag_find(run->tags, run->n_tags, "dir/k"));
    mpb_run_free(&run);
    free(run_id);

    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, f->exp_id, "owner", "me", f->err, sizeof f->err), 0);
    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, f->exp_id, "owner", "you", f->err, sizeof f->err),
        0);
    mpb_experiment *experiment = NULL;
    assert_int_equal(
        mpb_store_get_experiment(f->store, f->exp_id, &experiment, f->err, sizeof f->err), 0);
    assert_int_equal(experiment->n_tags, 1);
    assert_string_equal(experiment->tags[0].value, "you");
    mpb_experiment_free(&experiment);
}

static void
metric_history_keeps_file_order_and_latest_is_max_step(void **state)
{
    th_fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "history");
    mpb_metric first[] = {{"loss", 0.9, 100, 2}, {"loss", 0.8, 101, 5}, {"acc", 0.1, 100, 0}};
    mpb_metric second[] = {{"loss", 0.7, 102, 3}, {"loss", 0.6, 99, 5}};
    assert_int_equal(
        mpb_store_log_batch(f->store, run_id, first, 3, NULL, 0, NULL, 0, f->err, sizeof f->err),
        0);
    assert_int_equal(
        mpb_store_log_batch(f->store, run_id, second, 2, NULL, 0, NULL, 0, f->err, sizeof f->err),
        0);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, "loss", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, 4);
    const int64_t steps[] = {2, 5, 3, 5};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(history->metrics[i].step, steps[i]);
        assert_string_equal(history->metrics[i].key, "loss");
    }
    assert_string_equal(history->run_id, run_id);
    mpb_metric_history_free(&history);
    mpb_metric_history_free(&history);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    const mpb_metric *loss = mpb__metric_find(run->metrics, run->n_metrics, "loss");
    /* max by (step, timestamp): step 5 twice, the later timestamp 101 wins */
    assert_true(loss->value == 0.8);
    assert_int_equal(loss->timestamp_ms, 101);
    assert_int_equal(run->n_metrics, 2);
    mpb_run_free(&run);
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, "nope", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, 0);
    mpb_metric_history_free(&history);
    assert_int_equal(mpb_store_get_metric_history(f->store, "0123456789abcdef0123456789abcdef",
                                                  "loss", &history, f->err, sizeof f->err),
                     MPB_ENOTFOUND);
    free(run_id);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_resolves_tracking_uris),
        cmocka_unit_test(null_uri_uses_env_then_the_default_rule),
        cmocka_unit_test(default_experiment_comes_with_a_new_root_only),
        cmocka_unit_test_setup_teardown(delete_moves_experiment_to_trash_and_restore_brings_it_back,
                                        setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(runs_update_status_end_time_and_name, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(run_names_and_users_default_like_mlflow, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(tags_are_set_overwritten_and_deleted, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(metric_history_keeps_file_order_and_latest_is_max_step,
                                        setup, th_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
