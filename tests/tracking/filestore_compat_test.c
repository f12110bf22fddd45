/*
 * The file store and MLflow reading each other's files: values as raw files
 * and slash keys as folders, YAML strings that survive a round trip, files as
 * MLflow (PyYAML) writes them, MLflow's refusal of a run folder without
 * metrics/, and tools/check-mlruns.py over a store we wrote.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "helpers.h"
#include "tracking/text.h"

/* <run>/<rel> holds exactly `expected`. */
static void
assert_run_file(const char *run, const char *rel, const char *expected)
{
    char *path = th_pathf("%s/%s", run, rel);
    th_assert_file(path, expected);
    free(path);
}

static void
values_are_raw_files_and_slash_keys_are_folders(void **state)
{
    th_fixture *f = *state;
    char err[512] = "";
    mpb_param param = {"opt/name", "adam\nw"};
    mpb_tag tag = {"note", "two words "};
    mpb_metric metric = {"train/acc", 0.25, 7, 0};
    assert_int_equal(
        mpb_store_log_batch(f->store, f->run_id, &metric, 1, &param, 1, &tag, 1, err, sizeof err),
        0);
    char *run = th_pathf("%s/%s/%s", f->root, f->exp_id, f->run_id);
    assert_run_file(run, "params/opt/name", "adam\nw");
    assert_run_file(run, "tags/note", "two words ");
    assert_run_file(run, "metrics/train/acc", "7 0.25 0\n");
    assert_run_file(run, "params/lr", "0.1");
    free(run);
}

/* Names YAML would retype if unquoted survive a round trip. */
static void
yaml_strings_are_quoted_and_round_trip(void **state)
{
    th_fixture *f = *state;
    const char *names[] = {"yes",        "null",       "123",
                           "a: b",       "say \"hi\"", "back\\slash",
                           "new\nline",  "tab\there",  "caf\xc3\xa9 \xe2\x9c\x93",
                           "- item",     "#hash",      "  padded  ",
                           "\xc2\x85nel"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(names); i++) {
        char *id = th_experiment(f->store, names[i]);
        mpb_experiment *experiment = NULL;
        char err[512] = "";
        assert_int_equal(mpb_store_get_experiment(f->store, id, &experiment, err, sizeof err), 0);
        assert_string_equal(experiment->name, names[i]);
        mpb_experiment_free(&experiment);
        assert_int_equal(
            mpb_store_get_experiment_by_name(f->store, names[i], &experiment, err, sizeof err), 0);
        assert_string_equal(experiment->experiment_id, id);
        mpb_experiment_free(&experiment);
        free(id);
    }
    mpb_experiment *yes = NULL;
    assert_int_equal(mpb_store_get_experiment_by_name(f->store, "yes", &yes, NULL, 0), 0);
    char *meta = th_pathf("%s/%s/meta.yaml", f->root, yes->experiment_id);
    char *text = th_read(meta);
    assert_non_null(strstr(text, "name: \"yes\"\n"));
    free(text);
    free(meta);
    mpb_experiment_free(&yes);
}

/* Files as MLflow (PyYAML) writes them are read: single quotes, plain
 * strings, int experiment_id, no run_uuid, 2- and 5-field metric lines. */
static void
reads_what_mlflow_writes(void **state)
{
    th_fixture *f = *state;
    char *exp = th_pathf("%s/123456789012345678", f->root);
    char *run = th_pathf("%s/0123456789abcdef0123456789abcdef", exp);
    assert_int_equal(mpb__fs_mkdir_p(run), 0);
    const char *subdirs[] = {"metrics", "params", "artifacts", "tags"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(subdirs); i++) {
        char *sub = mpb__path_join(run, subdirs[i]);
        assert_int_equal(mpb__fs_mkdir(sub), 0);
        free(sub);
    }
    const char *exp_meta = "artifact_location: file:///somewhere/123456789012345678\n"
                           "creation_time: 1795645240031\n"
                           "experiment_id: 123456789012345678\n"
                           "last_update_time: 1795645240031\n"
                           "lifecycle_stage: active\n"
                           "name: from-mlflow\n"
                           "tags: {}\n"
                           "trace_location: null\n"
                           "workspace: default\n";
    const char *run_meta = "artifact_uri: file:///somewhere/artifacts\n"
                           "end_time: null\n"
                           "entry_point_name: ''\n"
                           "experiment_id: '123456789012345678'\n"
                           "lifecycle_stage: active\n"
                           "run_id: 0123456789abcdef0123456789abcdef\n"
                           "run_name: ''\n"
                           "source_name: ''\n"
                           "source_type: 4\n"
                           "source_version: ''\n"
                           "start_time: 1795645240034\n"
                           "status: 3\n"
                           "tags: []\n"
                           "user_id: tester\n";
    char *path = th_pathf("%s/meta.yaml", exp);
    assert_int_equal(mpb__fs_write_atomic(exp, path, exp_meta, strlen(exp_meta)), 0);
    free(path);
    path = th_pathf("%s/meta.yaml", run);
    assert_int_equal(mpb__fs_write_atomic(run, path, run_meta, strlen(run_meta)), 0);
    free(path);
    path = th_pathf("%s/tags/mlflow.runName", run);
    assert_int_equal(mpb__fs_write_atomic(run, path, "named-by-tag", 12), 0);
    free(path);
    path = th_pathf("%s/metrics/m", run);
    const char *lines = "100 1.5\n200 -nan 3\n150 2.5 7 ds abc123\n300 9";
    assert_int_equal(mpb__fs_write_atomic(run, path, lines, strlen(lines)), 0);
    free(path);

    char err[512] = "";
    mpb_run *got = NULL;
    assert_int_equal(
        mpb_store_get_run(f->store, "0123456789abcdef0123456789abcdef", &got, err, sizeof err), 0);
    assert_string_equal(got->info.experiment_id, "123456789012345678");
    assert_string_equal(got->info.run_name, "named-by-tag");
    assert_int_equal(got->info.status, MPB_RUN_FINISHED);
    assert_int_equal(got->info.end_time, -1);
    assert_int_equal(got->n_metrics, 1);
    /* Latest = max (step, timestamp, value); the unterminated line is ignored. */
    assert_int_equal(got->metrics[0].step, 7);
    assert_true(got->metrics[0].value == 2.5);
    mpb_run_free(&got);
    mpb_experiment *experiment = NULL;
    assert_int_equal(
        mpb_store_get_experiment_by_name(f->store, "from-mlflow", &experiment, err, sizeof err), 0);
    assert_string_equal(experiment->experiment_id, "123456789012345678");
    mpb_experiment_free(&experiment);
    free(run);
    free(exp);
}

/* MLflow refuses a run folder without metrics/ (path-traversal defence). */
static void
run_folder_without_metrics_is_not_found(void **state)
{
    th_fixture *f = *state;
    char *metrics = th_pathf("%s/%s/%s/metrics", f->root, f->exp_id, f->run_id);
    assert_int_equal(mpb__fs_rm_rf(metrics), 0);
    mpb_run *run = NULL;
    char err[512] = "";
    assert_int_equal(mpb_store_get_run(f->store, f->run_id, &run, err, sizeof err), MPB_ENOTFOUND);
    assert_null(run);
    assert_non_null(strstr(err, "not found"));
    free(metrics);
}

/* The checker script reads the store the way MLflow would (when python3
 * with PyYAML is there). */
static void
python_checker_accepts_the_store(void **state)
{
    th_fixture *f = *state;
    if (system("python3 -c 'import yaml' >/dev/null 2>&1") != 0) {
        skip();
    }
    const char *source = getenv("MPB_SOURCE_DIR");
    if (source == NULL) {
        skip();
    }
    char err[512] = "";
    mpb_metric odd[] = {{"nan", NAN, 1, 0}, {"inf", INFINITY, 1, 0}, {"neg", -INFINITY, 1, 0}};
    assert_int_equal(
        mpb_store_log_batch(f->store, f->run_id, odd, 3, NULL, 0, NULL, 0, err, sizeof err), 0);
    char *id = th_experiment(f->store, "yes");
    free(id);
    char *cmd = th_pathf("python3 %s/tools/check-mlruns.py %s >/dev/null", source, f->root);
    assert_int_equal(system(cmd), 0);
    /* ...and it does catch what MLflow would choke on: a quoted status. */
    char *meta = th_pathf("%s/%s/%s/meta.yaml", f->root, f->exp_id, f->run_id);
    char *text = th_read(meta);
    char *status = strstr(text, "status: 1\n");
    assert_non_null(status);
    mpb__strbuf broken = {0};
    mpb__strbuf_append(&broken, text, (size_t)(status - text));
    mpb__strbuf_puts(&broken, "status: \"1\"\n");
    mpb__strbuf_puts(&broken, status + strlen("status: 1\n"));
    assert_int_equal(mpb__fs_write_atomic(f->dir, meta, broken.text, broken.len), 0);
    assert_int_not_equal(system(cmd), 0);
    mpb__strbuf_clear(&broken);
    free(text);
    free(meta);
    free(cmd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(values_are_raw_files_and_slash_keys_are_folders,
                                        th_sample_setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(yaml_strings_are_quoted_and_round_trip, th_sample_setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(reads_what_mlflow_writes, th_sample_setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(run_folder_without_metrics_is_not_found, th_sample_setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(python_checker_accepts_the_store, th_sample_setup,
                                        th_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
