/*
 * `mpb runs migrate` end to end: a file store with two experiments, a
 * deleted experiment, nested and deleted runs, NaN/inf metric histories and
 * artifacts in folders is migrated to SQLite and back to a new file store by
 * the real mpb binary; each copy is compared with the original through the
 * store API. A second migrate is refused, and with --into-existing copies
 * nothing twice.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <spawn.h>

#include "tracking/fs_util.h"
#include "tracking/helpers.h"

extern char **environ;

typedef struct fixture {
    char *dir;
    mpb_store *source;
    char *out;
    char *err;
    char msg[1024];
} fixture;

/* Runs `mpb runs ARGS...`; returns the exit status, output in f->out/f->err. */
static int
run_mpb(fixture *f, const char *const *args)
{
    return th_mpb_runs(f->dir, args, 60000, &f->out, &f->err);
}

#define MPB(f, ...) run_mpb((f), (const char *const[]){__VA_ARGS__, NULL})

static char *
make_run(fixture *f, const char *exp_id, const char *name, int64_t start, const mpb_tag *tags,
         size_t n_tags)
{
    char *id = NULL;
    assert_int_equal(mpb_store_create_run(f->source, exp_id, "alice", start, name, tags, n_tags,
                                          &id, f->msg, sizeof f->msg),
                     0);
    return id;
}

/* Artifacts: model/weights.bin, model/config/params.json, notes.txt. */
static void
log_artifacts(fixture *f, const char *run_id)
{
    char *src = th_pathf("%s/artifact-src", f->dir);
    char *config = th_pathf("%s/model/config", src);
    assert_int_equal(mpb__fs_mkdir_p(config), 0);
    char *files[] = {th_pathf("%s/model/weights.bin", src), th_pathf("%s/params.json", config),
                     th_pathf("%s/notes.txt", src)};
    for (size_t i = 0; i < MPB_ARRAY_LEN(files); i++) {
        FILE *file = fopen(files[i], "w");
        assert_non_null(file);
        fprintf(file, "content %zu\n", i);
        fclose(file);
        free(files[i]);
    }
    assert_int_equal(mpb_store_log_artifact(f->source, run_id, src, NULL, f->msg, sizeof f->msg),
                     0);
    (void)mpb__fs_rm_rf(src);
    free(config);
    free(src);
}

static int
setup(void **state)
{
    fixture *f = mpb_calloc(1, sizeof *f);
    f->dir = th_tempdir();
    f->source = th_open(f->dir);
    char *a = th_experiment(f->source, "exp-a");
    char *b = th_experiment(f->source, "exp-b");
    char *gone = th_experiment(f->source, "exp-gone");
    assert_int_equal(
        mpb_store_set_experiment_tag(f->source, a, "team", "vision", f->msg, sizeof f->msg), 0);
    char *parent = make_run(f, a, "parent", 1000, NULL, 0);
    mpb_tag child_tags[] = {{MPB_TAG_PARENT_RUN_ID, parent}, {"stage", "train"}};
    char *child = make_run(f, a, "child", 2000, child_tags, 2);
    char *deleted = make_run(f, a, "deleted", 3000, NULL, 0);
    char *odd = make_run(f, b, "odd-values", 4000, NULL, 0);
    char *in_default = make_run(f, MPB_DEFAULT_EXPERIMENT_ID, "in-default", 5000, NULL, 0);
    char *in_gone = make_run(f, gone, "in-gone", 6000, NULL, 0);
    mpb_param params[] = {{"lr", "0.1"}, {"opt/name", "adam"}};
    mpb_metric metrics[] = {{"loss", 0.09090909090909091, 10, 0},
                            {"loss", NAN, 11, 1},
                            {"loss", INFINITY, 12, 2},
                            {"loss", -INFINITY, 13, 3},
                            {"loss", 0.25, 14, 9007199254740993},
                            {"train/acc", 0.5, 15, 0}};
    const char *with_data[] = {child, odd, deleted, in_default, in_gone};
    for (size_t i = 0; i < MPB_ARRAY_LEN(with_data); i++) {
        assert_int_equal(mpb_store_log_batch(f->source, with_data[i], metrics, 6, params, 2, NULL,
                                             0, f->msg, sizeof f->msg),
                         0);
    }
    log_artifacts(f, child);
    log_artifacts(f, deleted);
    assert_int_equal(mpb_store_update_run(f->source, parent, MPB_RUN_FINISHED, 9000, NULL, f->msg,
                                          sizeof f->msg),
                     0);
    assert_int_equal(
        mpb_store_update_run(f->source, child, MPB_RUN_FAILED, 8000, NULL, f->msg, sizeof f->msg),
        0);
    assert_int_equal(mpb_store_delete_run(f->source, deleted, f->msg, sizeof f->msg), 0);
    assert_int_equal(mpb_store_delete_experiment(f->source, gone, f->msg, sizeof f->msg), 0);
    free(a);
    free(b);
    free(gone);
    free(parent);
    free(child);
    free(deleted);
    free(odd);
    free(in_default);
    free(in_gone);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    mpb_store_destroy(&f->source);
    th_cleanup(&f->dir);
    free(f->out);
    free(f->err);
    free(f);
    return 0;
}

static mpb_run_page *
runs_of(mpb_store *store, const char *exp_id)
{
    const char *ids[] = {exp_id};
    const char *order[] = {"attributes.start_time ASC"};
    mpb_search_opts opts = {.view_type = MPB_VIEW_ALL, .order_by = order, .n_order_by = 1};
    mpb_run_page *page = NULL;
    char err[512];
    if (mpb_store_search_runs(store, ids, 1, &opts, &page, err, sizeof err) != 0) {
        fail_msg("search: %s", err);
    }
    return page;
}

static void
assert_same_values(const mpb_tag *a, size_t n_a, const mpb_tag *b, size_t n_b)
{
    assert_int_equal(n_a, n_b);
    for (size_t i = 0; i < n_a; i++) {
        const char *value = mpb__tag_find(b, n_b, a[i].key);
        if (value == NULL || strcmp(value, a[i].value) != 0) {
            fail_msg("key %s: '%s' vs '%s'", a[i].key, a[i].value, value ? value : "(none)");
        }
    }
}

static void
assert_same_history(mpb_store *a, const char *run_a, mpb_store *b, const char *run_b,
                    const char *key)
{
    char err[512];
    mpb_metric_history *ha = NULL;
    mpb_metric_history *hb = NULL;
    assert_int_equal(mpb_store_get_metric_history(a, run_a, key, &ha, err, sizeof err), 0);
    assert_int_equal(mpb_store_get_metric_history(b, run_b, key, &hb, err, sizeof err), 0);
    assert_int_equal(ha->n_metrics, hb->n_metrics);
    for (size_t i = 0; i < ha->n_metrics; i++) {
        const mpb_metric *x = &ha->metrics[i];
        const mpb_metric *y = &hb->metrics[i];
        assert_int_equal(x->step, y->step);
        assert_int_equal(x->timestamp_ms, y->timestamp_ms);
        assert_true((isnan(x->value) && isnan(y->value)) || x->value == y->value);
    }
    mpb_metric_history_free(&ha);
    mpb_metric_history_free(&hb);
}

static void
artifact_paths(mpb_store *store, const char *run_id, const char *path, mpb__strbuf *out)
{
    char err[512];
    mpb_artifact_list *list = NULL;
    assert_int_equal(mpb_store_list_artifacts(store, run_id, path, &list, err, sizeof err), 0);
    for (size_t i = 0; i < list->n_files; i++) {
        mpb__strbuf_printf(out, "%s:%" PRId64 ";", list->files[i].path, list->files[i].file_size);
        if (list->files[i].is_dir) {
            artifact_paths(store, run_id, list->files[i].path, out);
        }
    }
    mpb_artifact_list_free(&list);
}

static void
assert_same_artifacts(mpb_store *a, const char *run_a, mpb_store *b, const char *run_b)
{
    mpb__strbuf pa = {0};
    mpb__strbuf pb = {0};
    mpb__strbuf_append(&pa, "", 0);
    mpb__strbuf_append(&pb, "", 0);
    artifact_paths(a, run_a, NULL, &pa);
    artifact_paths(b, run_b, NULL, &pb);
    char *sa = mpb__strbuf_take(&pa);
    char *sb = mpb__strbuf_take(&pb);
    assert_string_equal(sa, sb);
    free(sa);
    free(sb);
}

/* Run ids of the parent run of each store, to check mlflow.parentRunId. */
static void
assert_same_run(mpb_store *a, const mpb_run *x, mpb_store *b, const mpb_run *y,
                const char *parent_a, const char *parent_b)
{
    assert_string_equal(x->info.run_name, y->info.run_name);
    assert_string_equal(x->info.user_id, y->info.user_id);
    assert_int_equal(x->info.status, y->info.status);
    assert_int_equal(x->info.start_time, y->info.start_time);
    assert_int_equal(x->info.end_time, y->info.end_time);
    assert_string_equal(x->info.lifecycle_stage, y->info.lifecycle_stage);
    assert_same_values((const mpb_tag *)x->params, x->n_params, (const mpb_tag *)y->params,
                       y->n_params);
    assert_int_equal(x->n_tags, y->n_tags);
    for (size_t i = 0; i < x->n_tags; i++) {
        const char *value = mpb__tag_find(y->tags, y->n_tags, x->tags[i].key);
        assert_non_null(value);
        if (strcmp(x->tags[i].key, MPB_TAG_PARENT_RUN_ID) == 0) {
            assert_string_equal(x->tags[i].value, parent_a);
            assert_string_equal(value, parent_b);
        } else {
            assert_string_equal(value, x->tags[i].value);
        }
    }
    assert_int_equal(x->n_metrics, y->n_metrics);
    for (size_t i = 0; i < x->n_metrics; i++) {
        assert_same_history(a, x->info.run_id, b, y->info.run_id, x->metrics[i].key);
    }
    assert_same_artifacts(a, x->info.run_id, b, y->info.run_id);
}

/* Every experiment (by name) and run (by name) of a is in b, equal. */
static void
assert_same_store(mpb_store *a, mpb_store *b)
{
    char err[512];
    mpb_search_opts all = {.view_type = MPB_VIEW_ALL};
    mpb_experiment_page *ea = NULL;
    mpb_experiment_page *eb = NULL;
    assert_int_equal(mpb_store_search_experiments(a, &all, &ea, err, sizeof err), 0);
    assert_int_equal(mpb_store_search_experiments(b, &all, &eb, err, sizeof err), 0);
    assert_int_equal(ea->n_experiments, eb->n_experiments);
    for (size_t e = 0; e < ea->n_experiments; e++) {
        const mpb_experiment *x = &ea->experiments[e];
        mpb_experiment *y = NULL;
        assert_int_equal(mpb_store_get_experiment_by_name(b, x->name, &y, err, sizeof err), 0);
        assert_string_equal(x->lifecycle_stage, y->lifecycle_stage);
        assert_same_values(x->tags, x->n_tags, y->tags, y->n_tags);
        mpb_run_page *ra = runs_of(a, x->experiment_id);
        mpb_run_page *rb = runs_of(b, y->experiment_id);
        assert_int_equal(ra->n_runs, rb->n_runs);
        const char *parent_a = ra->n_runs ? ra->runs[0].info.run_id : "";
        const char *parent_b = rb->n_runs ? rb->runs[0].info.run_id : "";
        for (size_t r = 0; r < ra->n_runs; r++) {
            assert_same_run(a, &ra->runs[r], b, &rb->runs[r], parent_a, parent_b);
        }
        mpb_run_page_free(&ra);
        mpb_run_page_free(&rb);
        mpb_experiment_free(&y);
    }
    mpb_experiment_page_free(&ea);
    mpb_experiment_page_free(&eb);
}

static void
file_to_sqlite_and_back(void **state)
{
    fixture *f = *state;
    char *sqlite = th_pathf("sqlite:///%s/copy.db", f->dir);
    char *back = th_pathf("file:%s/back", f->dir);
    char *artifacts = th_pathf("%s/copy-artifacts", f->dir);
    const char *from = mpb_store_uri(f->source);
    int status = MPB(f, "migrate", "--from", from, "--to", sqlite, "--artifact-root", artifacts);
    if (status != 0) {
        fail_msg("migrate exited %d: %s%s", status, f->out, f->err);
    }
    assert_non_null(strstr(f->out, "OK: 4 experiment(s), 6 run(s)"));
    assert_null(strstr(f->out, "MISMATCH"));
    assert_non_null(strstr(f->out, "metric points"));
    assert_non_null(strstr(f->err, "migrate: run 6/6"));
    mpb_store *copy = NULL;
    assert_int_equal(mpb_store_open(sqlite, &copy, f->msg, sizeof f->msg), 0);
    assert_same_store(f->source, copy);
    mpb_run_page *runs = runs_of(copy, MPB_DEFAULT_EXPERIMENT_ID);
    assert_int_equal(runs->n_runs, 1);
    /* Artifacts went under --artifact-root. */
    assert_non_null(strstr(runs->runs[0].info.artifact_uri, "/copy-artifacts/"));
    mpb_run_page_free(&runs);
    mpb_store_destroy(&copy);

    /* A second run refuses a target that is not empty... */
    assert_int_equal(MPB(f, "migrate", "--from", from, "--to", sqlite), 1);
    assert_non_null(strstr(f->err, "--into-existing"));
    /* ...and with --into-existing copies nothing twice. */
    assert_int_equal(MPB(f, "migrate", "--from", from, "--to", sqlite, "--into-existing",
                         "--artifact-root", artifacts),
                     0);
    assert_non_null(strstr(f->err, "exists in the target, skipped"));
    assert_int_equal(mpb_store_open(sqlite, &copy, f->msg, sizeof f->msg), 0);
    assert_same_store(f->source, copy);
    mpb_store_destroy(&copy);

    /* SQLite back to a new file store: equal to the original. */
    assert_int_equal(MPB(f, "--tracking-uri", sqlite, "migrate", "--to", back), 0);
    mpb_store *round = NULL;
    assert_int_equal(mpb_store_open(back, &round, f->msg, sizeof f->msg), 0);
    assert_same_store(f->source, round);
    mpb_store_destroy(&round);
    free(artifacts);
    free(back);
    free(sqlite);
}

static void
usage_errors(void **state)
{
    fixture *f = *state;
    assert_int_equal(MPB(f, "migrate", "--help"), 0);
    assert_true(strncmp(f->out, "usage: mpb runs migrate", 23) == 0);
    assert_int_equal(MPB(f, "migrate", "--to", "x"), 2);
    assert_non_null(strstr(f->err, "--from URI and --to URI"));
    assert_int_equal(MPB(f, "migrate", "--from", "nosuch://x", "--to", "y"), 1);
    assert_non_null(strstr(f->err, "not supported"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(file_to_sqlite_and_back, setup, teardown),
        cmocka_unit_test_setup_teardown(usage_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
