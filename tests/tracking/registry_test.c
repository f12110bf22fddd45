/*
 * Registry use (as ForML uses MLflow): get-or-create experiments and runs,
 * and artifacts logged into a run, listed and downloaded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"

static int
setup(void **state)
{
    *state = th_fixture_new("registry", NULL);
    return 0;
}

static void
get_or_create_experiment_creates_finds_and_restores(void **state)
{
    th_fixture *f = *state;
    char *first = NULL;
    int created = -1;
    assert_int_equal(mpb_store_get_or_create_experiment(f->store, "models", &first, &created,
                                                        f->err, sizeof f->err),
                     0);
    assert_int_equal(created, 1);
    char *again = NULL;
    assert_int_equal(mpb_store_get_or_create_experiment(f->store, "models", &again, &created,
                                                        f->err, sizeof f->err),
                     0);
    assert_int_equal(created, 0);
    assert_string_equal(again, first);
    free(again);
    assert_int_equal(mpb_store_delete_experiment(f->store, first, f->err, sizeof f->err), 0);
    assert_int_equal(mpb_store_get_or_create_experiment(f->store, "models", &again, &created,
                                                        f->err, sizeof f->err),
                     0);
    assert_int_equal(created, 0);
    assert_string_equal(again, first); /* the deleted one, restored */
    mpb_experiment *experiment = NULL;
    assert_int_equal(mpb_store_get_experiment(f->store, again, &experiment, f->err, sizeof f->err),
                     0);
    assert_string_equal(experiment->lifecycle_stage, "active");
    mpb_experiment_free(&experiment);
    free(again);
    free(first);
    assert_int_equal(
        mpb_store_get_or_create_experiment(f->store, "", &first, NULL, f->err, sizeof f->err),
        MPB_EINVAL);
}

static void
get_or_create_run_wants_zero_or_one_match(void **state)
{
    th_fixture *f = *state;
    mpb_tag key[] = {{"model", "mlp"}, {"version", "it's 1"}}; /* a quote in a value */
    char *first = NULL;
    int created = -1;
    assert_int_equal(mpb_store_get_or_create_run(f->store, f->exp_id, key, 2, &first, &created,
                                                 f->err, sizeof f->err),
                     0);
    assert_int_equal(created, 1);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, first, &run, f->err, sizeof f->err), 0);
    assert_string_equal(mpb__tag_find(run->tags, run->n_tags, "version"), "it's 1");
    mpb_run_free(&run);
    /* One match (extra tags on the run do not matter): the same run. */
    assert_int_equal(mpb_store_set_tag(f->store, first, "extra", "x", f->err, sizeof f->err), 0);
    char *again = NULL;
    assert_int_equal(mpb_store_get_or_create_run(f->store, f->exp_id, key, 2, &again, &created,
                                                 f->err, sizeof f->err),
                     0);
    assert_int_equal(created, 0);
    assert_string_equal(again, first);
    free(again);
    /* A different value is another run. */
    mpb_tag other[] = {{"model", "mlp"}, {"version", "2"}};
    assert_int_equal(mpb_store_get_or_create_run(f->store, f->exp_id, other, 2, &again, &created,
                                                 f->err, sizeof f->err),
                     0);
    assert_int_equal(created, 1);
    assert_string_not_equal(again, first);
    free(again);
    /* Two matches: an error, not a guess. */
    char *twin = NULL;
    assert_int_equal(mpb_store_create_run(f->store, f->exp_id, NULL, -1, NULL, key, 2, &twin,
                                          f->err, sizeof f->err),
                     0);
    assert_int_equal(mpb_store_get_or_create_run(f->store, f->exp_id, key, 2, &again, &created,
                                                 f->err, sizeof f->err),
                     MPB_EAMBIGUOUS);
    assert_non_null(strstr(f->err, "More than one"));
    /* Deleted runs do not count. */
    assert_int_equal(mpb_store_delete_run(f->store, twin, f->err, sizeof f->err), 0);
    assert_int_equal(mpb_store_get_or_create_run(f->store, f->exp_id, key, 2, &again, &created,
                                                 f->err, sizeof f->err),
                     0);
    assert_string_equal(again, first);
    free(again);
    free(twin);
    free(first);
    assert_int_equal(
        mpb_store_get_or_create_run(f->store, "4242", key, 2, &again, NULL, f->err, sizeof f->err),
        MPB_ENOTFOUND);
}

/* ---- Artifacts ---- */

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
artifacts_round_trip_files_and_folders(void **state)
{
    th_fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "artifacts");
    char *src = th_pathf("%s/src", f->dir);
    char *model = th_pathf("%s/model.bin", src);
    write_file(model, "weights");
    char *folder = th_pathf("%s/report", src);
    char *a = th_pathf("%s/a.txt", folder);
    char *b = th_pathf("%s/deep/b.txt", folder);
    write_file(a, "alpha");
    write_file(b, "beta");

    assert_int_equal(mpb_store_log_artifact(f->store, run_id, model, NULL, f->err, sizeof f->err),
                     0);
    assert_int_equal(
        mpb_store_log_artifact(f->store, run_id, model, "models/m1", f->err, sizeof f->err), 0);
    assert_int_equal(
        mpb_store_log_artifact(f->store, run_id, folder, "report", f->err, sizeof f->err), 0);

    mpb_artifact_list *list = NULL;
    assert_int_equal(mpb_store_list_artifacts(f->store, run_id, NULL, &list, f->err, sizeof f->err),
                     0);
    assert_int_equal(list->n_files, 3);
    assert_string_equal(list->files[0].path, "model.bin");
    assert_false(list->files[0].is_dir);
    assert_int_equal(list->files[0].file_size, 7);
    assert_string_equal(list->files[1].path, "models");
    assert_true(list->files[1].is_dir);
    assert_int_equal(list->files[1].file_size, -1);
    assert_string_equal(list->files[2].path, "report");
    mpb_artifact_list_free(&list);
    assert_int_equal(
        mpb_store_list_artifacts(f->store, run_id, "report", &list, f->err, sizeof f->err), 0);
    assert_int_equal(list->n_files, 2);
    assert_string_equal(list->files[0].path, "report/a.txt");
    assert_string_equal(list->files[1].path, "report/deep");
    mpb_artifact_list_free(&list);
    assert_int_equal(
        mpb_store_list_artifacts(f->store, run_id, "missing", &list, f->err, sizeof f->err), 0);
    assert_int_equal(list->n_files, 0);
    mpb_artifact_list_free(&list);

    char *dst = th_pathf("%s/dst", f->dir);
    char *local = NULL;
    assert_int_equal(mpb_store_download_artifacts(f->store, run_id, "models/m1/model.bin", dst,
                                                  &local, f->err, sizeof f->err),
                     0);
    char *expected = th_pathf("%s/model.bin", dst);
    assert_string_equal(local, expected);
    th_assert_file(local, "weights");
    free(expected);
    free(local);
    assert_int_equal(mpb_store_download_artifacts(f->store, run_id, "report", dst, &local, f->err,
                                                  sizeof f->err),
                     0);
    char *got_a = th_pathf("%s/a.txt", local);
    char *got_b = th_pathf("%s/deep/b.txt", local);
    th_assert_file(got_a, "alpha");
    th_assert_file(got_b, "beta");
    free(got_a);
    free(got_b);
    free(local);
    char *everything = th_pathf("%s/all", f->dir);
    assert_int_equal(mpb_store_download_artifacts(f->store, run_id, "", everything, &local, f->err,
                                                  sizeof f->err),
                     0);
    assert_string_equal(local, everything);
    char *deep = th_pathf("%s/report/deep/b.txt", everything);
    th_assert_file(deep, "beta");
    free(deep);
    free(local);
    free(everything);

    assert_int_equal(
        mpb_store_download_artifacts(f->store, run_id, "nope", dst, NULL, f->err, sizeof f->err),
        MPB_ENOTFOUND);
    assert_int_equal(
        mpb_store_log_artifact(f->store, run_id, model, "../escape", f->err, sizeof f->err),
        MPB_EINVAL);
    assert_int_equal(
        mpb_store_list_artifacts(f->store, run_id, "/etc", &list, f->err, sizeof f->err),
        MPB_EINVAL);
    char *missing = th_pathf("%s/no-such-file", f->dir);
    assert_int_equal(mpb_store_log_artifact(f->store, run_id, missing, NULL, f->err, sizeof f->err),
                     MPB_ENOENT);
    assert_int_equal(mpb_store_log_artifact(f->store, "0123456789abcdef0123456789abcdef", model,
                                            NULL, f->err, sizeof f->err),
                     MPB_ENOTFOUND);
    free(missing);
    free(dst);
    free(a);
    free(b);
    free(folder);
    free(model);
    free(src);
    free(run_id);
}

/* The run's artifact folder on disk (its artifact URI). */
static char *
artifacts_dir(th_fixture *f, const char *run_id)
{
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    const char *uri = run->info.artifact_uri;
    char *dir = strncmp(uri, "file:", 5) == 0 ? mpb__file_uri_to_path(uri) : mpb_strdup(uri);
    mpb_run_free(&run);
    return dir;
}

static void
symbolic_links_in_artifacts_lead_nowhere(void **state)
{
    /* links put into a run's artifact folder (by hand, or by whoever can
     * write there) must not make reads or writes reach outside it */
    th_fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "links");
    char *model = th_pathf("%s/weights.bin", f->dir);
    write_file(model, "weights");
    assert_int_equal(
        mpb_store_log_artifact(f->store, run_id, model, "model", f->err, sizeof f->err), 0);
    char *outside = th_pathf("%s/outside", f->dir);
    char *secret = th_pathf("%s/secret.txt", outside);
    write_file(secret, "not an artifact");
    char *art = artifacts_dir(f, run_id);
    char *link_in_folder = th_pathf("%s/model/leak", art);
    char *link_at_top = th_pathf("%s/out", art);
    assert_int_equal(symlink(secret, link_in_folder), 0);
    assert_int_equal(symlink(outside, link_at_top), 0);
    char *dst = th_pathf("%s/dst", f->dir);
    /* through a link: refused */
    assert_int_equal(mpb_store_download_artifacts(f->store, run_id, "out/secret.txt", dst, NULL,
                                                  f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "symbolic link"));
    assert_int_equal(
        mpb_store_log_artifact(f->store, run_id, model, "out", f->err, sizeof f->err), MPB_EINVAL);
    char *written = th_pathf("%s/weights.bin", outside);
    assert_int_equal(access(written, F_OK), -1);
    /* a folder holding a link: not listed, and not copied out */
    mpb_artifact_list *list = NULL;
    assert_int_equal(
        mpb_store_list_artifacts(f->store, run_id, "model", &list, f->err, sizeof f->err), 0);
    assert_int_equal(list->n_files, 1);
    assert_string_equal(list->files[0].path, "model/weights.bin");
    mpb_artifact_list_free(&list);
    assert_int_not_equal(
        mpb_store_download_artifacts(f->store, run_id, "model", dst, NULL, f->err, sizeof f->err),
        0);
    char *copied = th_pathf("%s/model/leak", dst);
    assert_int_equal(access(copied, F_OK), -1);
    free(copied);
    free(written);
    free(dst);
    free(link_at_top);
    free(link_in_folder);
    free(art);
    free(secret);
    free(outside);
    free(model);
    free(run_id);
}

static void
folder_digests_tell_trees_apart(void **state)
{
    /* m/a = "x" against m = "a\0x" hashed alike when names and contents
     * were simply run together */
    th_fixture *f = *state;
    char *one = th_pathf("%s/h1/m/a", f->dir);
    write_file(one, "x");
    char *two = th_pathf("%s/h2/m", f->dir);
    char *h2_dir = th_pathf("%s/h2", f->dir);
    assert_int_equal(mpb__fs_mkdir_p(h2_dir), 0);
    free(h2_dir);
    FILE *out = fopen(two, "w");
    fwrite("a\0x", 1, 3, out);
    fclose(out);
    char *h1 = th_pathf("%s/h1", f->dir);
    char *h2 = th_pathf("%s/h2", f->dir);
    char d1[65];
    char d2[65];
    assert_int_equal(mpb_model_sha256(h1, d1, f->err, sizeof f->err), 0);
    assert_int_equal(mpb_model_sha256(h2, d2, f->err, sizeof f->err), 0);
    assert_string_not_equal(d1, d2);
    /* a file alone is what sha256sum prints: here of "x" */
    assert_int_equal(mpb_model_sha256(one, d1, f->err, sizeof f->err), 0);
    assert_string_equal(d1, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    free(h1);
    free(h2);
    free(one);
    free(two);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(get_or_create_experiment_creates_finds_and_restores, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(get_or_create_run_wants_zero_or_one_match, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(symbolic_links_in_artifacts_lead_nowhere, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(folder_digests_tell_trees_apart, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(artifacts_round_trip_files_and_folders, setup,
                                        th_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
