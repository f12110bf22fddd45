/*
 * Write failures: through the fault-injection seam (every writing file
 * operation after the first k fails, for each k in turn) and, when not root,
 * through a real read-only folder. Whatever fails, the store stays readable:
 * no half-made run or experiment is visible, no partial metric line, no temp
 * file left behind, and the caller gets the error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <spawn.h>
#include <sys/stat.h>

extern char **environ;

#include "helpers.h"

static int
setup(void **state)
{
    *state = th_fixture_new("faults", NULL);
    return 0;
}

static int
teardown(void **state)
{
    mpb__fs_fault_disarm();
    return th_fixture_teardown(state);
}

static int
count_temp_files(const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    if (mpb__fs_list(dir, 0, &names, &n) < 0) {
        return 0;
    }
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        char *child = mpb__path_join(dir, names[i]);
        count += strncmp(names[i], MPB__TMP_PREFIX, strlen(MPB__TMP_PREFIX)) == 0;
        if (mpb__fs_is_dir(child)) {
            count += count_temp_files(child);
        }
        free(child);
    }
    mpb__fs_names_free(names, n);
    return count;
}

static size_t
count_runs(th_fixture *f)
{
    const char *ids[] = {f->exp_id};
    mpb_search_opts opts = {.view_type = MPB_VIEW_ALL};
    mpb_run_page *page = NULL;
    assert_int_equal(mpb_store_search_runs(f->store, ids, 1, &opts, &page, f->err, sizeof f->err),
                     0);
    size_t n = page->n_runs;
    mpb_run_page_free(&page);
    return n;
}

static size_t
count_subdirs(const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(mpb__fs_list(dir, 1, &names, &n), 0);
    mpb__fs_names_free(names, n);
    return n;
}

static void
create_run_failing_anywhere_leaves_no_run(void **state)
{
    th_fixture *f = *state;
    char *exp_dir = th_pathf("%s/%s", f->root, f->exp_id);
    int failures = 0;
    for (int k = 0;; k++) {
        mpb__fs_fault_arm(k, MPB_ENOSPC);
        char *run_id = NULL;
        int rc = mpb_store_create_run(f->store, f->exp_id, "u", -1, "r", NULL, 0, &run_id, f->err,
                                      sizeof f->err);
        mpb__fs_fault_disarm();
        if (rc == 0) {
            free(run_id);
            break;
        }
        failures++;
        assert_int_equal(rc, MPB_ENOSPC);
        assert_non_null(strstr(f->err, "no space left"));
        assert_null(run_id);
        assert_int_equal(count_runs(f), 0);
        assert_int_equal(count_subdirs(exp_dir), 0); /* not even a half-made folder */
        assert_int_equal(count_temp_files(f->root), 0);
        assert_true(k < 100);
    }
    assert_true(failures >= 8); /* mkdirs, two tags, meta: every step was hit */
    assert_int_equal(count_runs(f), 1);
    free(exp_dir);
}

static void
create_experiment_failing_anywhere_leaves_no_experiment(void **state)
{
    th_fixture *f = *state;
    mpb_tag tags[] = {{"a", "1"}, {"b/c", "2"}};
    for (int k = 0;; k++) {
        mpb__fs_fault_arm(k, MPB_EIO);
        char *id = NULL;
        int rc =
            mpb_store_create_experiment(f->store, "new", NULL, tags, 2, &id, f->err, sizeof f->err);
        mpb__fs_fault_disarm();
        if (rc == 0) {
            free(id);
            break;
        }
        assert_int_equal(rc, MPB_EIO);
        assert_int_equal(count_subdirs(f->root), 3); /* .trash, 0, faults */
        mpb_experiment *experiment = NULL;
        assert_int_equal(mpb_store_get_experiment_by_name(f->store, "new", &experiment, NULL, 0),
                         MPB_ENOTFOUND);
        assert_int_equal(count_temp_files(f->root), 0);
        assert_true(k < 100);
    }
    mpb_experiment *experiment = NULL;
    assert_int_equal(mpb_store_get_experiment_by_name(f->store, "new", &experiment, NULL, 0), 0);
    assert_int_equal(experiment->n_tags, 2);
    mpb_experiment_free(&experiment);
}

/* Every metric file holds only whole lines, every param its whole value. */
static void
assert_run_readable(th_fixture *f, const char *run_id)
{
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    for (size_t i = 0; i < run->n_params; i++) {
        assert_string_equal(run->params[i].value, "value-of-a-param");
    }
    mpb_run_free(&run);
    const char *keys[] = {"m", "n/o"};
    for (size_t i = 0; i < 2; i++) {
        mpb_metric_history *history = NULL;
        assert_int_equal(mpb_store_get_metric_history(f->store, run_id, keys[i], &history, f->err,
                                                      sizeof f->err),
                         0);
        for (size_t k = 0; k < history->n_metrics; k++) {
            assert_true(history->metrics[k].value == 1.5);
        }
        mpb_metric_history_free(&history);
    }
}

static void
log_batch_failing_anywhere_leaves_the_run_readable(void **state)
{
    th_fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "r");
    int failures = 0;
    for (int k = 0;; k++) {
        char key_a[32];
        char key_b[32];
        snprintf(key_a, sizeof key_a, "p%d/a", k);
        snprintf(key_b, sizeof key_b, "p%d/b", k);
        mpb_param params[] = {{key_a, "value-of-a-param"}, {key_b, "value-of-a-param"}};
        mpb_metric metrics[] = {{"m", 1.5, 1, 0}, {"n/o", 1.5, 1, 1}, {"m", 1.5, 1, 2}};
        mpb_tag tags[] = {{"t", "x"}, {MPB_TAG_RUN_NAME, "renamed"}};
        mpb__fs_fault_arm(k, MPB_EROFS);
        int rc = mpb_store_log_batch(f->store, run_id, metrics, 3, params, 2, tags, 2, f->err,
                                     sizeof f->err);
        mpb__fs_fault_disarm();
        assert_int_equal(count_temp_files(f->root), 0);
        assert_run_readable(f, run_id);
        if (rc == 0) {
            break;
        }
        failures++;
        assert_int_equal(rc, MPB_EROFS);
        assert_non_null(strstr(f->err, "read-only"));
        assert_true(k < 100);
    }
    assert_true(failures >= 6);
    free(run_id);
}

static void
delete_experiment_failing_keeps_it_findable(void **state)
{
    th_fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "r");
    for (int k = 0;; k++) {
        mpb__fs_fault_arm(k, MPB_EIO);
        int rc = mpb_store_delete_experiment(f->store, f->exp_id, f->err, sizeof f->err);
        mpb__fs_fault_disarm();
        mpb_experiment *experiment = NULL;
        assert_int_equal(
            mpb_store_get_experiment(f->store, f->exp_id, &experiment, f->err, sizeof f->err), 0);
        mpb_run *run = NULL;
        assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
        mpb_run_free(&run);
        if (rc == 0) {
            assert_string_equal(experiment->lifecycle_stage, "deleted");
            mpb_experiment_free(&experiment);
            break;
        }
        assert_int_equal(rc, MPB_EIO);
        assert_string_equal(experiment->lifecycle_stage, "active");
        mpb_experiment_free(&experiment);
        assert_true(k < 100);
    }
    free(run_id);
}

/* Child: drops root to nobody (so permissions apply), then logs to a run it
 * may not write. Exit 0 when it got MPB_EACCES with a message. */
static int
read_only_child(const char *root, const char *run_id)
{
    if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0)) {
        return 2;
    }
    mpb_store *store = NULL;
    char err[512] = "";
    if (mpb_store_open(root, &store, err, sizeof err) < 0) {
        fprintf(stderr, "child: open: %s\n", err);
        return 1;
    }
    mpb_metric metric = {"m", 1, 1, 0};
    mpb_param param = {"p", "v"};
    int rc = mpb_store_log_batch(store, run_id, &metric, 1, &param, 1, NULL, 0, err, sizeof err);
    mpb_store_destroy(&store);
    if (rc != MPB_EACCES || strstr(err, "permission denied") == NULL) {
        fprintf(stderr, "child: log_batch gave %s: %s\n", mpb_err_name(rc), err);
        return 1;
    }
    return 0;
}

/* A real read-only store: as root, a child running as nobody (files stay
 * root's, 0755); otherwise the run folder made 0555. */
static void
read_only_run_folder_fails_cleanly(void **state)
{
    th_fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "r");
    char *run_dir = th_pathf("%s/%s/%s", f->root, f->exp_id, run_id);
    char *metrics = th_pathf("%s/metrics", run_dir);
    int as_root = geteuid() == 0;
    assert_int_equal(chmod(f->dir, 0755), 0); /* nobody may look inside */
    if (!as_root) {
        assert_int_equal(chmod(metrics, 0555), 0);
        assert_int_equal(chmod(run_dir, 0555), 0);
    }
    char *argv[] = {"/proc/self/exe", "--child-readonly", f->root, run_id, NULL};
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
    assert_int_equal(th_wait_child(pid, 30000), 0);
    if (!as_root) {
        assert_int_equal(chmod(run_dir, 0755), 0);
        assert_int_equal(chmod(metrics, 0755), 0);
    }
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_int_equal(run->n_params, 0);
    assert_int_equal(run->n_metrics, 0);
    mpb_run_free(&run);
    assert_int_equal(count_temp_files(f->root), 0);
    free(metrics);
    free(run_dir);
    free(run_id);
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child-readonly") == 0) {
        return read_only_child(argv[2], argv[3]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_run_failing_anywhere_leaves_no_run, setup, teardown),
        cmocka_unit_test_setup_teardown(create_experiment_failing_anywhere_leaves_no_experiment,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(log_batch_failing_anywhere_leaves_the_run_readable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(delete_experiment_failing_keeps_it_findable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(read_only_run_folder_fails_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
