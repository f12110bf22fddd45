/*
 * `mpb runs gc` on a file store and on a SQLite store: deleted runs and
 * experiments disappear with their artifacts, active ones stay, --older-than
 * keeps what was deleted recently, explicit ids must be deleted; a backend
 * without the purge slots answers MPB_ENOTSUP.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <spawn.h>

#include "tracking/fs_util.h"
#include "tracking/helpers.h"
#include "tracking/store_int.h"

extern char **environ;

typedef struct fixture {
    char *dir;
    char *uri;
    mpb_store *store;
    char *keep;
    char *gone_run;
    char *gone_run_artifacts;
    char *gone_exp;
    char *in_gone_exp;
    char *out;
    char *err;
    char msg[1024];
} fixture;

static int
run_mpb(fixture *f, const char *const *args)
{
    const char *argv[16] = {"--tracking-uri", f->uri};
    int n = 2;
    for (; *args != NULL && n < 15; args++) {
        argv[n++] = *args;
    }
    argv[n] = NULL;
    return th_mpb_runs(f->dir, argv, 30000, &f->out, &f->err);
}

#define MPB(f, ...) run_mpb((f), (const char *const[]){__VA_ARGS__, NULL})

static char *
run_with_artifact(fixture *f, const char *exp_id, const char *name)
{
    char *id = th_run(f->store, exp_id, name);
    char *file = th_pathf("%s/model.bin", f->dir);
    FILE *out = fopen(file, "w");
    assert_non_null(out);
    fputs("weights", out);
    fclose(out);
    assert_int_equal(mpb_store_log_artifact(f->store, id, file, "model", f->msg, sizeof f->msg), 0);
    mpb_metric metric = {"loss", 0.5, 1, 0};
    mpb_param param = {"lr", "0.1"};
    assert_int_equal(
        mpb_store_log_batch(f->store, id, &metric, 1, &param, 1, NULL, 0, f->msg, sizeof f->msg),
        0);
    free(file);
    return id;
}

static char *
artifact_dir(fixture *f, const char *run_id)
{
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->msg, sizeof f->msg), 0);
    const char *uri = run->info.artifact_uri;
    char *path = uri[0] == '/' ? mpb_strdup(uri) : mpb__file_uri_to_path(uri);
    mpb_run_free(&run);
    assert_non_null(path);
    return path;
}

static int
setup_store(void **state, int sqlite)
{
    fixture *f = mpb_calloc(1, sizeof *f);
    f->dir = th_tempdir();
    if (sqlite) {
        f->uri = th_pathf("sqlite:///%s/gc.db", f->dir);
        char *artifacts = th_pathf("%s/artifacts", f->dir);
        mpb_store_open_opts opts = {.artifact_root = artifacts};
        assert_int_equal(mpb_store_open_with(f->uri, &opts, &f->store, f->msg, sizeof f->msg), 0);
        free(artifacts);
    } else {
        f->store = th_open(f->dir);
        f->uri = mpb_strdup(mpb_store_uri(f->store));
    }
    char *exp = th_experiment(f->store, "exp");
    f->gone_exp = th_experiment(f->store, "gone");
    f->keep = run_with_artifact(f, exp, "keep");
    f->gone_run = run_with_artifact(f, exp, "gone-run");
    f->in_gone_exp = run_with_artifact(f, f->gone_exp, "in-gone");
    f->gone_run_artifacts = artifact_dir(f, f->gone_run);
    assert_true(mpb__fs_is_dir(f->gone_run_artifacts));
    assert_int_equal(mpb_store_delete_run(f->store, f->gone_run, f->msg, sizeof f->msg), 0);
    assert_int_equal(mpb_store_delete_experiment(f->store, f->gone_exp, f->msg, sizeof f->msg), 0);
    free(exp);
    *state = f;
    return 0;
}

static int
setup_file(void **state)
{
    return setup_store(state, 0);
}

static int
setup_sqlite(void **state)
{
    return setup_store(state, 1);
}

static int
teardown(void **state)
{
    fixture *f = *state;
    mpb_store_destroy(&f->store);
    th_cleanup(&f->dir);
    free(f->uri);
    free(f->keep);
    free(f->gone_run);
    free(f->gone_run_artifacts);
    free(f->gone_exp);
    free(f->in_gone_exp);
    free(f->out);
    free(f->err);
    free(f);
    return 0;
}

static void
gc_removes_deleted_runs_and_experiments(void **state)
{
    fixture *f = *state;
    /* Deleted a moment ago: not older than a day. */
    assert_int_equal(MPB(f, "gc", "--older-than", "1d"), 0);
    assert_non_null(strstr(f->out, "gc: 0 run(s), 0 experiment(s) removed"));
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->gone_run, &run, f->msg, sizeof f->msg), 0);
    mpb_run_free(&run);
    /* An active run named explicitly is refused. */
    assert_int_equal(MPB(f, "gc", "--run-ids", f->keep), 1);
    assert_non_null(strstr(f->err, "not in the deleted lifecycle stage"));
    assert_int_equal(MPB(f, "gc", "--older-than", "0s"), 0);
    /* The deleted experiment's run is a deleted run too. */
    assert_non_null(strstr(f->out, "gc: 2 run(s), 1 experiment(s) removed"));
    assert_int_equal(mpb_store_get_run(f->store, f->gone_run, &run, f->msg, sizeof f->msg),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_get_run(f->store, f->in_gone_exp, &run, f->msg, sizeof f->msg),
                     MPB_ENOTFOUND);
    mpb_experiment *e = NULL;
    assert_int_equal(mpb_store_get_experiment(f->store, f->gone_exp, &e, f->msg, sizeof f->msg),
                     MPB_ENOTFOUND);
    assert_false(mpb__fs_is_dir(f->gone_run_artifacts));
    /* What is active stays, artifacts included. */
    assert_int_equal(mpb_store_get_run(f->store, f->keep, &run, f->msg, sizeof f->msg), 0);
    assert_int_equal(run->n_params, 1);
    mpb_run_free(&run);
    char *keep_artifacts = artifact_dir(f, f->keep);
    assert_true(mpb__fs_is_dir(keep_artifacts));
    free(keep_artifacts);
    /* Nothing left to do. */
    assert_int_equal(MPB(f, "gc"), 0);
    assert_non_null(strstr(f->out, "gc: 0 run(s), 0 experiment(s) removed"));
}

/* An experiment's artifact location may be a folder others use too: gc
 * removes its runs' artifacts, never the location (as mlflow gc). */
static void
gc_keeps_an_experiments_own_artifact_location(void **state)
{
    fixture *f = *state;
    char *shared = th_pathf("%s/shared", f->dir);
    assert_int_equal(mpb__fs_mkdir_p(shared), 0);
    char *other = th_pathf("%s/other-team-model.bin", shared);
    FILE *out = fopen(other, "w");
    assert_non_null(out);
    fputs("theirs", out);
    fclose(out);
    char *id = NULL;
    assert_int_equal(mpb_store_create_experiment(f->store, "sharing", shared, NULL, 0, &id, f->msg,
                                                 sizeof f->msg),
                     0);
    char *run = run_with_artifact(f, id, "in-shared");
    assert_int_equal(mpb_store_delete_experiment(f->store, id, f->msg, sizeof f->msg), 0);
    assert_int_equal(MPB(f, "gc", "--experiment-ids", id), 0);
    assert_true(mpb__fs_is_file(other));
    free(run);
    free(id);
    free(other);
    free(shared);
}

static void
gc_takes_explicit_ids(void **state)
{
    fixture *f = *state;
    /* a list that names nothing, or a sum of durations past what a time
     * holds, is a usage error: it must never mean "every deleted run" */
    assert_int_equal(MPB(f, "gc", "--run-ids", ","), 2);
    assert_int_equal(MPB(f, "gc", "--experiment-ids", ""), 2);
    assert_int_equal(MPB(f, "gc", "--older-than", "53375995583d53375995583d53375995583d"), 2);
    mpb_run *still = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->gone_run, &still, f->msg, sizeof f->msg), 0);
    mpb_run_free(&still);
    assert_int_equal(MPB(f, "gc", "--run-ids", f->gone_run), 0);
    assert_non_null(strstr(f->out, "gc: 1 run(s), 0 experiment(s) removed"));
    mpb_experiment *e = NULL;
    assert_int_equal(mpb_store_get_experiment(f->store, f->gone_exp, &e, f->msg, sizeof f->msg), 0);
    mpb_experiment_free(&e);
    assert_int_equal(MPB(f, "gc", "--experiment-ids", f->gone_exp), 0);
    assert_non_null(strstr(f->out, "gc: 0 run(s), 1 experiment(s) removed"));
    assert_int_equal(MPB(f, "--json", "gc", "--older-than", "30d"), 0); /* nothing that old */
    assert_non_null(strstr(f->out, "\"runs_removed\":\t0"));
    assert_int_equal(MPB(f, "gc", "--experiment-ids", "0"), 1);
    assert_int_equal(MPB(f, "gc", "--older-than", "3x"), 2);
    assert_non_null(strstr(f->err, "bad duration"));
}

static void
a_backend_without_purge_slots_answers_enotsup(void **state)
{
    (void)state;
    static const mpb__store_ops bare = {.name = "bare"};
    struct mpb_store store = {.ops = &bare};
    char err[256] = "";
    assert_int_equal(mpb__store_purge_run(&store, "abc", err, sizeof err), MPB_ENOTSUP);
    assert_non_null(strstr(err, "bare"));
    assert_int_equal(mpb__store_purge_experiment(&store, "1", err, sizeof err), MPB_ENOTSUP);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(gc_removes_deleted_runs_and_experiments, setup_file,
                                        teardown),
        cmocka_unit_test_setup_teardown(gc_removes_deleted_runs_and_experiments, setup_sqlite,
                                        teardown),
        cmocka_unit_test_setup_teardown(gc_keeps_an_experiments_own_artifact_location, setup_file,
                                        teardown),
        cmocka_unit_test_setup_teardown(gc_takes_explicit_ids, setup_file, teardown),
        cmocka_unit_test_setup_teardown(gc_keeps_an_experiments_own_artifact_location, setup_sqlite,
                                        teardown),
        cmocka_unit_test_setup_teardown(gc_takes_explicit_ids, setup_sqlite, teardown),
        cmocka_unit_test(a_backend_without_purge_slots_answers_enotsup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
