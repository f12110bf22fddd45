/*
 * Several processes (this test binary re-executed with --child) and several
 * threads logging to one file store at once: all data present, no torn or
 * duplicated lines, each writer's lines in the order it logged them, params
 * immutable across processes, one experiment per name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <spawn.h>

#include "helpers.h"

extern char **environ;

enum { BATCHES = 200, PER_BATCH = 10, DEADLINE_MS = 60000 };

/* ---- Child side ---- */

/* Logs BATCHES batches: PER_BATCH metrics of `key` (timestamp = writer id,
 * steps counting up), one new param and tag `last`. */
static int
log_batches(mpb_store *store, const char *run_id, const char *key, int writer, char *err,
            size_t err_len)
{
    for (int i = 0; i < BATCHES; i++) {
        mpb_metric metrics[PER_BATCH];
        for (int j = 0; j < PER_BATCH; j++) {
            int step = i * PER_BATCH + j;
            metrics[j] = (mpb_metric){key, step * 0.5, writer, step};
        }
        char param_key[64];
        char value[32];
        snprintf(param_key, sizeof param_key, "%s-p%d", key, i);
        snprintf(value, sizeof value, "%d", i);
        mpb_param param = {param_key, value};
        char tag_key[64];
        snprintf(tag_key, sizeof tag_key, "%s-last", key);
        mpb_tag tag = {tag_key, value};
        int rc = mpb_store_log_batch(store, run_id, metrics, PER_BATCH, &param, 1, &tag, 1, err,
                                     err_len);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int
child_main(int argc, char **argv)
{
    char err[512] = "";
    mpb_store *store = NULL;
    if (argc < 4 || mpb_store_open(argv[3], &store, err, sizeof err) < 0) {
        fprintf(stderr, "child: cannot open store: %s\n", err);
        return 1;
    }
    int rc = 0;
    const char *mode = argv[2];
    if (strcmp(mode, "log") == 0 && argc == 7) {
        rc = log_batches(store, argv[4], argv[5], atoi(argv[6]), err, sizeof err);
    } else if (strcmp(mode, "param") == 0 && argc == 7) {
        mpb_param param = {argv[5], argv[6]};
        rc = mpb_store_log_batch(store, argv[4], NULL, 0, &param, 1, NULL, 0, err, sizeof err);
        if (rc == MPB_EINVAL) {
            mpb_store_destroy(&store);
            return 3;
        }
    } else if (strcmp(mode, "create") == 0 && argc == 6) {
        for (int i = 0; rc == 0 && i < atoi(argv[5]); i++) {
            char *run_id = NULL;
            rc = mpb_store_create_run(store, argv[4], NULL, -1, NULL, NULL, 0, &run_id, err,
                                      sizeof err);
            free(run_id);
            char *exp_id = NULL;
            char name[32];
            snprintf(name, sizeof name, "shared-%d", i);
            if (rc == 0) {
                rc =
                    mpb_store_get_or_create_experiment(store, name, &exp_id, NULL, err, sizeof err);
            }
            free(exp_id);
        }
    } else {
        fprintf(stderr, "child: bad arguments\n");
        rc = MPB_EINVAL;
    }
    if (rc < 0) {
        fprintf(stderr, "child %s: %s (%s)\n", mode, err, mpb_err_name(rc));
    }
    mpb_store_destroy(&store);
    return rc < 0 ? 1 : 0;
}

/* ---- Parent side ---- */

static pid_t
spawn_child(const char *const *args)
{
    char *argv[10] = {"/proc/self/exe", "--child"};
    int n = 2;
    for (; args[n - 2] != NULL; n++) {
        argv[n] = (char *)args[n - 2];
    }
    argv[n] = NULL;
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ), 0);
    return pid;
}

/* Runs two children at once; both must succeed. */
static void
run_children_together(const char *const *args_a, const char *const *args_b)
{
    pid_t a = spawn_child(args_a);
    pid_t b = spawn_child(args_b);
    assert_int_equal(th_wait_child(a, DEADLINE_MS), 0);
    assert_int_equal(th_wait_child(b, DEADLINE_MS), 0);
}

static int
setup(void **state)
{
    *state = th_fixture_new("concurrency", NULL);
    return 0;
}

/* Every line of `key` present once; for each writer (timestamp), steps
 * 0..BATCHES*PER_BATCH-1 in file order. */
static void
check_history(th_fixture *f, const char *run_id, const char *key, int writers)
{
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, key, &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, (size_t)writers * BATCHES * PER_BATCH);
    int64_t next_step[8] = {0};
    for (size_t i = 0; i < history->n_metrics; i++) {
        const mpb_metric *m = &history->metrics[i];
        assert_true(m->timestamp_ms >= 0 && m->timestamp_ms < writers);
        assert_int_equal(m->step, next_step[m->timestamp_ms]++);
        assert_true(m->value == m->step * 0.5);
    }
    mpb_metric_history_free(&history);
}

static void
check_params_and_tag(th_fixture *f, const char *run_id, const char *key)
{
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    size_t params = 0;
    for (size_t i = 0; i < run->n_params; i++) {
        params += strncmp(run->params[i].key, key, strlen(key)) == 0;
    }
    assert_int_equal(params, BATCHES);
    char *tag_key = mpb_asprintf("%s-last", key);
    char *last = mpb_asprintf("%d", BATCHES - 1);
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, tag_key), last);
    free(last);
    free(tag_key);
    mpb_run_free(&run);
}

/* What `writers` writers of log_batches left under `key` in a run: every
 * metric line in order, the params and the last tag. */
static void
check_run(th_fixture *f, const char *run_id, const char *key, int writers)
{
    check_history(f, run_id, key, writers);
    check_params_and_tag(f, run_id, key);
}

static void
two_processes_log_to_different_runs(void **state)
{
    th_fixture *f = *state;
    char *runs[2] = {th_run(f->store, f->exp_id, "a"), th_run(f->store, f->exp_id, "b")};
    const char *args_a[] = {"log", f->root, runs[0], "m", "0", NULL};
    const char *args_b[] = {"log", f->root, runs[1], "m", "0", NULL};
    run_children_together(args_a, args_b);
    for (int i = 0; i < 2; i++) {
        check_run(f, runs[i], "m", 1);
        free(runs[i]);
    }
}

/* Two processes on ONE run: the run lock serialises them; nothing is torn. */
static void
two_processes_share_one_run(void **state)
{
    th_fixture *f = *state;
    char *run = th_run(f->store, f->exp_id, "shared");
    const char *args_a[] = {"log", f->root, run, "shared", "0", NULL};
    const char *args_b[] = {"log", f->root, run, "shared", "1", NULL};
    run_children_together(args_a, args_b);
    check_run(f, run, "shared", 2);
    free(run);
}

static void
params_stay_immutable_across_processes(void **state)
{
    th_fixture *f = *state;
    char *run = th_run(f->store, f->exp_id, "contested");
    for (int round = 0; round < 5; round++) {
        char key[32];
        snprintf(key, sizeof key, "p%d", round);
        const char *args_x[] = {"param", f->root, run, key, "x", NULL};
        const char *args_y[] = {"param", f->root, run, key, "y", NULL};
        pid_t x = spawn_child(args_x);
        pid_t y = spawn_child(args_y);
        int status_x = th_wait_child(x, DEADLINE_MS);
        int status_y = th_wait_child(y, DEADLINE_MS);
        /* Exactly one wins; the loser gets MLflow's "Changing param values" error. */
        assert_true((status_x == 0 && status_y == 3) || (status_x == 3 && status_y == 0));
        mpb_run *got = NULL;
        assert_int_equal(mpb_store_get_run(f->store, run, &got, f->err, sizeof f->err), 0);
        assert_string_equal(mpb__param_find(got->params, got->n_params, key),
                            status_x == 0 ? "x" : "y");
        mpb_run_free(&got);
    }
    free(run);
}

static void
processes_create_runs_and_one_experiment_per_name(void **state)
{
    th_fixture *f = *state;
    const char *args[] = {"create", f->root, f->exp_id, "40", NULL};
    run_children_together(args, args);
    const char *ids[] = {f->exp_id};
    mpb_run_page *page = NULL;
    assert_int_equal(mpb_store_search_runs(f->store, ids, 1, NULL, &page, f->err, sizeof f->err),
                     0);
    assert_int_equal(page->n_runs, 80);
    mpb_run_page_free(&page);
    /* Both raced to get-or-create shared-0..39: each exists exactly once. */
    mpb_search_opts opts = {.filter = "name LIKE 'shared-%'", .view_type = MPB_VIEW_ALL};
    mpb_experiment_page *experiments = NULL;
    assert_int_equal(
        mpb_store_search_experiments(f->store, &opts, &experiments, f->err, sizeof f->err), 0);
    assert_int_equal(experiments->n_experiments, 40);
    mpb_experiment_page_free(&experiments);
}

typedef struct thread_job {
    mpb_store *store;
    const char *run_id;
    const char *key;
    int writer;
    int rc;
    char err[512];
} thread_job;

static void *
thread_main(void *arg)
{
    thread_job *job = arg;
    job->rc =
        log_batches(job->store, job->run_id, job->key, job->writer, job->err, sizeof job->err);
    return NULL;
}

static void
run_threads(thread_job *jobs, int n)
{
    pthread_t threads[8];
    for (int i = 0; i < n; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < n; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        if (jobs[i].rc != 0) {
            fail_msg("thread %d: %s", i, jobs[i].err);
        }
    }
}

static void
threads_log_to_different_runs(void **state)
{
    th_fixture *f = *state;
    thread_job jobs[4];
    char *runs[4];
    for (int i = 0; i < 4; i++) {
        runs[i] = th_run(f->store, f->exp_id, "t");
        jobs[i] = (thread_job){.store = f->store, .run_id = runs[i], .key = "m", .writer = 0};
    }
    run_threads(jobs, 4);
    for (int i = 0; i < 4; i++) {
        check_run(f, runs[i], "m", 1);
        free(runs[i]);
    }
}

static void
threads_share_one_run(void **state)
{
    th_fixture *f = *state;
    char *run = th_run(f->store, f->exp_id, "t");
    thread_job jobs[4];
    const char *keys[] = {"m", "m", "n", "n"};
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){.store = f->store, .run_id = run, .key = keys[i], .writer = i % 2};
    }
    /* Two threads append to each key; both log the same params (same values). */
    run_threads(jobs, 4);
    check_run(f, run, "m", 2);
    check_history(f, run, "n", 2);
    free(run);
}

typedef struct churn_job {
    mpb_store *store;
    const char *run_id;
    int ok;
    int refused;
    int other;
    char err[512];
} churn_job;

static void *
churn_logger(void *arg)
{
    churn_job *job = arg;
    for (int i = 0; i < BATCHES; i++) {
        mpb_metric metric = {"m", i, 0, i};
        char err[512];
        int rc = mpb_store_log_batch(job->store, job->run_id, &metric, 1, NULL, 0, NULL, 0, err,
                                     sizeof err);
        if (rc == 0) {
            job->ok++;
        } else if (rc == MPB_EINVAL && strstr(err, "'active' state") != NULL) {
            job->refused++; /* the experiment was deleted at that moment */
        } else {
            job->other++;
            snprintf(job->err, sizeof job->err, "%s: %.400s", mpb_err_name(rc), err);
        }
    }
    return NULL;
}

/* The experiment moves to .trash and back while a thread logs to its run:
 * each batch is written or refused as deleted, never lost in between. */
static void
logging_while_the_experiment_moves_to_trash_and_back(void **state)
{
    th_fixture *f = *state;
    char *run = th_run(f->store, f->exp_id, "moving");
    churn_job job = {.store = f->store, .run_id = run};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, churn_logger, &job), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(mpb_store_delete_experiment(f->store, f->exp_id, f->err, sizeof f->err),
                         0);
        assert_int_equal(mpb_store_restore_experiment(f->store, f->exp_id, f->err, sizeof f->err),
                         0);
    }
    assert_int_equal(pthread_join(thread, NULL), 0);
    if (job.other != 0) {
        fail_msg("%d batches failed otherwise, last: %s", job.other, job.err);
    }
    assert_int_equal(job.ok + job.refused, BATCHES);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run, "m", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, (size_t)job.ok);
    mpb_metric_history_free(&history);
    free(run);
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child") == 0) {
        return child_main(argc, argv);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(two_processes_log_to_different_runs, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(two_processes_share_one_run, setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(params_stay_immutable_across_processes, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(processes_create_runs_and_one_experiment_per_name, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(threads_log_to_different_runs, setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(threads_share_one_run, setup, th_fixture_teardown),
        cmocka_unit_test_setup_teardown(logging_while_the_experiment_moves_to_trash_and_back, setup,
                                        th_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
