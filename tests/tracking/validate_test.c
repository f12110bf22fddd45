/*
 * Validation with MLflow's rules, through the public store API on a real file
 * store: key rules and lengths, values, batch limits, duplicate and immutable
 * params, whole-batch validation before any write.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sys/stat.h>

#include "helpers.h"
#include "tracking/validate.h"

static int
setup(void **state)
{
    *state = th_fixture_new("validation", "r");
    return 0;
}

static char *
repeat(const char *unit, size_t times)
{
    mpb__strbuf buf = {0};
    for (size_t i = 0; i < times; i++) {
        mpb__strbuf_puts(&buf, unit);
    }
    return mpb__strbuf_take(&buf);
}

static int
log_param(th_fixture *f, const char *key, const char *value)
{
    mpb_param param = {key, value};
    f->err[0] = '\0';
    return mpb_store_log_batch(f->store, f->run_id, NULL, 0, &param, 1, NULL, 0, f->err,
                               sizeof f->err);
}

static int
log_metric(th_fixture *f, const char *key, double value)
{
    mpb_metric metric = {key, value, 1000, 0};
    f->err[0] = '\0';
    return mpb_store_log_batch(f->store, f->run_id, &metric, 1, NULL, 0, NULL, 0, f->err,
                               sizeof f->err);
}

static int
set_tag(th_fixture *f, const char *key, const char *value)
{
    f->err[0] = '\0';
    return mpb_store_set_tag(f->store, f->run_id, key, value, f->err, sizeof f->err);
}

static void
key_length_boundary_is_250(void **state)
{
    th_fixture *f = *state;
    char *k250 = repeat("k", 250);
    char *k251 = repeat("k", 251);
    assert_int_equal(log_param(f, k250, "v"), 0);
    assert_int_equal(log_param(f, k251, "v"), MPB_EINVAL);
    assert_non_null(strstr(f->err, "exceeded length limit of 250"));
    assert_int_equal(log_metric(f, k250, 1), 0);
    assert_int_equal(log_metric(f, k251, 1), MPB_EINVAL);
    assert_int_equal(set_tag(f, k250, "v"), 0);
    assert_int_equal(set_tag(f, k251, "v"), MPB_EINVAL);
    free(k250);
    free(k251);
}

static void
key_rule_follows_mlflow(void **state)
{
    th_fixture *f = *state;
    const char *good[] = {"a", "b/c", "a b", "a.b-c:d_e", "a..b", "x/y/z", "1"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(good); i++) {
        if (log_metric(f, good[i], 1) != 0) {
            fail_msg("key '%s' rejected: %s", good[i], f->err);
        }
    }
    const char *bad[] = {"",     "a//b", "a/./b", "a/",   "/a",          "../a",   "..a", ".",
                         "a/..", "a\tb", "a*b",   "a\\b", "caf\xc3\xa9", "a/../b", "./a", "..."};
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        if (log_metric(f, bad[i], 1) != MPB_EINVAL) {
            fail_msg("key '%s' accepted", bad[i]);
        }
        assert_non_null(strstr(f->err, "Invalid metric name"));
    }
    assert_int_equal(log_param(f, "a*b", "v"), MPB_EINVAL);
    assert_non_null(strstr(f->err,
                           "Names may only contain alphanumerics, underscores (_), "
                           "dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."));
}

static void
value_lengths_count_code_points(void **state)
{
    th_fixture *f = *state;
    char *p6000 = repeat("\xc3\xa9", 6000); /* 6000 characters, 12000 bytes */
    char *p6001 = repeat("\xc3\xa9", 6001);
    assert_int_equal(log_param(f, "p6000", p6000), 0);
    assert_int_equal(log_param(f, "p6001", p6001), MPB_EINVAL);
    assert_non_null(strstr(f->err, "exceeded length limit of 6000"));
    char *t8000 = repeat("t", 8000);
    char *t8001 = repeat("t", 8001);
    assert_int_equal(set_tag(f, "t8000", t8000), 0);
    assert_int_equal(set_tag(f, "t8001", t8001), MPB_EINVAL);
    assert_non_null(strstr(f->err, "exceeded length limit of 8000"));
    assert_int_equal(log_param(f, "bad-utf8", "\xff\xfe"), MPB_EINVAL);
    assert_non_null(strstr(f->err, "UTF-8"));
    assert_int_equal(log_param(f, "overlong", "\xc0\xaf"), MPB_EINVAL);
    assert_int_equal(log_param(f, "null", NULL), MPB_EINVAL);
    /* Nothing of the rejected values reached the disk. */
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->run_id, &run, f->err, sizeof f->err), 0);
    assert_int_equal(run->n_params, 1);
    assert_string_equal(run->params[0].value, p6000);
    mpb_run_free(&run);
    free(p6000);
    free(p6001);
    free(t8000);
    free(t8001);
}

static mpb_param *
make_params(size_t n, char ***keys)
{
    mpb_param *params = mpb_calloc(n, sizeof *params);
    *keys = mpb_calloc(n, sizeof **keys);
    for (size_t i = 0; i < n; i++) {
        (*keys)[i] = mpb_asprintf("p%zu", i);
        params[i] = (mpb_param){(*keys)[i], "v"};
    }
    return params;
}

static void
free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
}

static void
params_and_tags_per_batch_are_at_most_100(void **state)
{
    th_fixture *f = *state;
    char **keys = NULL;
    mpb_param *params = make_params(101, &keys);
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, NULL, 0, params, 101, NULL, 0, f->err,
                                         sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "at most 100 params. Got 101"));
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, NULL, 0, params, 99, NULL, 0, f->err,
                                         sizeof f->err),
                     0);
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, NULL, 0, params, 100, NULL, 0, f->err,
                                         sizeof f->err),
                     0);
    mpb_tag *tags = (mpb_tag *)params; /* same layout: key, value */
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, NULL, 0, NULL, 0, tags, 101, f->err,
                                         sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "at most 100 tags"));
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, NULL, 0, NULL, 0, tags, 100, f->err,
                                         sizeof f->err),
                     0);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->run_id, &run, f->err, sizeof f->err), 0);
    assert_int_equal(run->n_params, 100);
    assert_int_equal(run->n_tags, 100 + 2); /* + mlflow.runName, mlflow.user */
    mpb_run_free(&run);
    free(params);
    free_keys(keys, 101);
}

static void
entities_per_batch_are_at_most_1000(void **state)
{
    th_fixture *f = *state;
    mpb_metric *metrics = mpb_calloc(1001, sizeof *metrics);
    for (size_t i = 0; i < 1001; i++) {
        metrics[i] = (mpb_metric){"m", (double)i, 1000, (int64_t)i};
    }
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, metrics, 1001, NULL, 0, NULL, 0,
                                         f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "at most 1000 metrics. Got 1001"));
    char **keys = NULL;
    mpb_param *params = make_params(100, &keys);
    /* 900 metrics + 100 params = 1000 entities: fine; one tag more is 1001. */
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, metrics, 900, params, 100, NULL, 0,
                                         f->err, sizeof f->err),
                     0);
    mpb_tag tag = {"t", "v"};
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, metrics, 900, params, 100, &tag, 1,
                                         f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "at most 1000 total entities"));
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, metrics, 999, NULL, 0, NULL, 0,
                                         f->err, sizeof f->err),
                     0);
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, metrics, 1000, NULL, 0, NULL, 0,
                                         f->err, sizeof f->err),
                     0);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, f->run_id, "m", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, 900 + 999 + 1000);
    mpb_metric_history_free(&history);
    free(params);
    free_keys(keys, 100);
    free(metrics);
}

static void
duplicate_param_keys_in_a_batch_are_rejected(void **state)
{
    th_fixture *f = *state;
    mpb_param params[] = {{"a", "1"}, {"b", "1"}, {"a", "1"}, {"c", "2"}, {"c", "3"}};
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, NULL, 0, params, 5, NULL, 0, f->err,
                                         sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "Duplicate parameter keys have been submitted: ['a', 'c']"));
}

static void
params_are_immutable(void **state)
{
    th_fixture *f = *state;
    assert_int_equal(log_param(f, "lr", "0.1"), 0);
    assert_int_equal(log_param(f, "lr", "0.1"), 0); /* same value again: fine */
    assert_int_equal(log_param(f, "lr", "0.2"), MPB_EINVAL);
    char *expected = mpb_asprintf("Changing param values is not allowed. Param with key='lr' was "
                                  "already logged with value='0.1' for run ID='%s'. Attempted "
                                  "logging new value '0.2'.",
                                  f->run_id);
    assert_string_equal(f->err, expected);
    free(expected);
    /* The rejected batch wrote none of its other entities either. */
    mpb_param params[] = {{"other", "x"}, {"lr", "0.3"}};
    mpb_metric metric = {"seen", 1, 1, 0};
    mpb_tag tag = {"seen", "x"};
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, &metric, 1, params, 2, &tag, 1,
                                         f->err, sizeof f->err),
                     MPB_EINVAL);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->run_id, &run, f->err, sizeof f->err), 0);
    assert_int_equal(run->n_params, 1);
    assert_string_equal(run->params[0].value, "0.1");
    assert_null(mpb__metric_find(run->metrics, run->n_metrics, "seen"));
    assert_null(mpb__tag_find(run->tags, run->n_tags, "seen"));
    mpb_run_free(&run);
}

static void
whole_batch_is_validated_before_writing(void **state)
{
    th_fixture *f = *state;
    mpb_metric metrics[] = {{"good", 1, 1, 0}, {"also-good", 2, 1, 0}};
    mpb_param params[] = {{"fine", "x"}, {"bad//key", "y"}};
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, metrics, 2, params, 2, NULL, 0,
                                         f->err, sizeof f->err),
                     MPB_EINVAL);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->run_id, &run, f->err, sizeof f->err), 0);
    assert_int_equal(run->n_metrics, 0);
    assert_int_equal(run->n_params, 0);
    mpb_run_free(&run);
}

static void
nan_and_infinities_are_metrics_negative_timestamps_are_not(void **state)
{
    th_fixture *f = *state;
    mpb_metric metrics[] = {{"x", NAN, 1, 0}, {"y", INFINITY, 1, 0}, {"z", -INFINITY, 1, -5}};
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, metrics, 3, NULL, 0, NULL, 0, f->err,
                                         sizeof f->err),
                     0);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->run_id, &run, f->err, sizeof f->err), 0);
    assert_true(isnan(mpb__metric_find(run->metrics, run->n_metrics, "x")->value));
    assert_true(mpb__metric_find(run->metrics, run->n_metrics, "y")->value == INFINITY);
    assert_true(mpb__metric_find(run->metrics, run->n_metrics, "z")->value == -INFINITY);
    assert_int_equal(mpb__metric_find(run->metrics, run->n_metrics, "z")->step, -5);
    mpb_run_free(&run);
    mpb_metric negative = {"t", 1, -1, 0};
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, &negative, 1, NULL, 0, NULL, 0,
                                         f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "Timestamp must be a nonnegative"));
}

/* "a" and "a/b" would need one name to be a file and a folder. */
static void
file_and_folder_keys_cannot_coexist(void **state)
{
    th_fixture *f = *state;
    mpb_metric pair[] = {{"a", 1, 1, 0}, {"a/b", 1, 1, 0}};
    assert_int_equal(
        mpb_store_log_batch(f->store, f->run_id, pair, 2, NULL, 0, NULL, 0, f->err, sizeof f->err),
        MPB_EINVAL);
    assert_int_equal(log_metric(f, "a/b", 1), 0);
    assert_int_equal(log_metric(f, "a", 1), MPB_EINVAL);
    assert_non_null(strstr(f->err, "clashes"));
    assert_int_equal(log_param(f, "p", "1"), 0);
    assert_int_equal(log_param(f, "p/q", "1"), MPB_EINVAL);
    assert_int_equal(set_tag(f, "t/u", "1"), 0);
    assert_int_equal(set_tag(f, "t", "1"), MPB_EINVAL);
}

static void
deleted_runs_refuse_writes(void **state)
{
    th_fixture *f = *state;
    assert_int_equal(mpb_store_delete_run(f->store, f->run_id, f->err, sizeof f->err), 0);
    assert_int_equal(log_metric(f, "m", 1), MPB_EINVAL);
    assert_non_null(strstr(f->err, "must be in the 'active' state"));
    assert_int_equal(set_tag(f, "t", "v"), MPB_EINVAL);
    assert_int_equal(
        mpb_store_update_run(f->store, f->run_id, MPB_RUN_FINISHED, 1, NULL, f->err, sizeof f->err),
        MPB_EINVAL);
    assert_int_equal(mpb_store_restore_run(f->store, f->run_id, f->err, sizeof f->err), 0);
    assert_int_equal(log_metric(f, "m", 1), 0);
}

static void
experiment_names_and_tags_follow_mlflow(void **state)
{
    th_fixture *f = *state;
    char *n500 = repeat("n", 500);
    char *n501 = repeat("n", 501);
    char *id = NULL;
    assert_int_equal(
        mpb_store_create_experiment(f->store, n500, NULL, NULL, 0, &id, f->err, sizeof f->err), 0);
    free(id);
    assert_int_equal(
        mpb_store_create_experiment(f->store, n501, NULL, NULL, 0, &id, f->err, sizeof f->err),
        MPB_EINVAL);
    assert_int_equal(
        mpb_store_create_experiment(f->store, "", NULL, NULL, 0, &id, f->err, sizeof f->err),
        MPB_EINVAL);
    assert_int_equal(mpb_store_create_experiment(f->store, "validation", NULL, NULL, 0, &id, f->err,
                                                 sizeof f->err),
                     MPB_EEXIST);
    assert_string_equal(f->err, "Experiment 'validation' already exists.");
    char *v5000 = repeat("v", 5000);
    char *v5001 = repeat("v", 5001);
    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, f->exp_id, "k", v5000, f->err, sizeof f->err), 0);
    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, f->exp_id, "k", v5001, f->err, sizeof f->err),
        MPB_EINVAL);
    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, f->exp_id, "a//b", "v", f->err, sizeof f->err),
        MPB_EINVAL);
    free(n500);
    free(n501);
    free(v5000);
    free(v5001);
}

static void
ids_that_are_no_folder_names_are_rejected(void **state)
{
    th_fixture *f = *state;
    mpb_run *run = NULL;
    const char *bad_runs[] = {"../x", "", "a/b", "-a", "a b"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad_runs); i++) {
        assert_int_equal(mpb_store_get_run(f->store, bad_runs[i], &run, f->err, sizeof f->err),
                         MPB_EINVAL);
    }
    assert_int_equal(mpb_store_get_run(f->store, "0123456789abcdef0123456789abcdef", &run, f->err,
                                       sizeof f->err),
                     MPB_ENOTFOUND);
    mpb_experiment *experiment = NULL;
    assert_int_equal(mpb_store_get_experiment(f->store, "..", &experiment, f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_int_equal(mpb_store_get_experiment(f->store, "42", &experiment, f->err, sizeof f->err),
                     MPB_ENOTFOUND);
    char *run_id = NULL;
    assert_int_equal(mpb_store_create_run(f->store, "42", NULL, -1, NULL, NULL, 0, &run_id, f->err,
                                          sizeof f->err),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_update_run(f->store, f->run_id, (mpb_run_status)9, -1, NULL, f->err,
                                          sizeof f->err),
                     MPB_EINVAL);
}

static void
artifact_paths_stay_inside_the_run(void **state)
{
    (void)state;
    assert_int_equal(mpb__validate_artifact_path(NULL, NULL, 0), 0);
    assert_int_equal(mpb__validate_artifact_path("", NULL, 0), 0);
    assert_int_equal(mpb__validate_artifact_path("models/m1", NULL, 0), 0);
    const char *bad[] = {"/etc", "../x", "a/../../x", "a//b", "./a", "a/."};
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        assert_int_equal(mpb__validate_artifact_path(bad[i], NULL, 0), MPB_EINVAL);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(key_length_boundary_is_250, setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(key_rule_follows_mlflow, setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(value_lengths_count_code_points, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(params_and_tags_per_batch_are_at_most_100, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(entities_per_batch_are_at_most_1000, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(duplicate_param_keys_in_a_batch_are_rejected, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(params_are_immutable, setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(whole_batch_is_validated_before_writing, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(nan_and_infinities_are_metrics_negative_timestamps_are_not,
                                        setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(file_and_folder_keys_cannot_coexist, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(deleted_runs_refuse_writes, setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(experiment_names_and_tags_follow_mlflow, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(ids_that_are_no_folder_names_are_rejected, setup,
                                        th_fixture_teardown),
        cmocka_unit_test(artifact_paths_stay_inside_the_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
