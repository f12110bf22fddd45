/*
 * The store contract, part 2: search (filters, order, view types, paging by
 * the backend's own tokens), the registry helpers, artifacts, open options
 * and batch limits, threads sharing one store; run unchanged on every
 * backend of store_contract.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "store_contract.h"

/* ---- Search ---- */

#define N_SEARCH_RUNS 25

/* Runs r0..r24 with param i, metric m = i (step 0), tag parity; r3 deleted. */
static char **
make_search_runs(contract *c)
{
    char **ids = mpb_calloc(N_SEARCH_RUNS, sizeof *ids);
    for (int i = 0; i < N_SEARCH_RUNS; i++) {
        char name[16];
        char value[16];
        snprintf(name, sizeof name, "r%d", i);
        snprintf(value, sizeof value, "%d", i);
        assert_int_equal(mpb_store_create_run(c->store, c->exp_id, "tester", 1000 + i, name, NULL,
                                              0, &ids[i], c->err, sizeof c->err),
                         0);
        mpb_metric metric = {"m", i, 1000, 0};
        mpb_param param = {"i", value};
        mpb_tag tag = {"parity", i % 2 ? "odd" : "even"};
        assert_int_equal(mpb_store_log_batch(c->store, ids[i], &metric, 1, &param, 1, &tag, 1,
                                             c->err, sizeof c->err),
                         0);
    }
    assert_int_equal(mpb_store_delete_run(c->store, ids[3], c->err, sizeof c->err), 0);
    return ids;
}

static size_t
search_count(contract *c, const char *filter, mpb_view_type view)
{
    const char *ids[] = {c->exp_id};
    mpb_search_opts opts = {.filter = filter, .view_type = view};
    mpb_run_page *page = NULL;
    if (mpb_store_search_runs(c->store, ids, 1, &opts, &page, c->err, sizeof c->err) != 0) {
        fail_msg("[%s] search '%s': %s", backend->name, filter, c->err);
    }
    size_t n = page->n_runs;
    mpb_run_page_free(&page);
    return n;
}

static void
search_filters_and_view_types_agree(void **state)
{
    contract *c = *state;
    char **ids = make_search_runs(c);
    assert_int_equal(search_count(c, NULL, 0), N_SEARCH_RUNS - 1);
    assert_int_equal(search_count(c, NULL, MPB_VIEW_ALL), N_SEARCH_RUNS);
    assert_int_equal(search_count(c, NULL, MPB_VIEW_DELETED_ONLY), 1);
    assert_int_equal(search_count(c, "metrics.m >= 10 AND tags.parity = 'even'", 0), 8);
    char *in_list = mpb_asprintf("attributes.run_id IN ('%s', '%s', '%s')", ids[1], ids[2], ids[3]);
    assert_int_equal(search_count(c, in_list, 0), 2);
    free(in_list);
    assert_int_equal(search_count(c, "attributes.run_name LIKE 'r1%'", 0), 11);
    assert_int_equal(search_count(c, "attributes.status = 'RUNNING'", 0), N_SEARCH_RUNS - 1);
    assert_int_equal(search_count(c, "attributes.start_time < 1005", MPB_VIEW_ALL), 5);
    assert_int_equal(search_count(c, "metrics.missing > 0", 0), 0);

    const char *exp_ids[] = {c->exp_id};
    const char *order[] = {"metrics.m DESC"};
    mpb_search_opts opts = {.filter = "tags.parity = 'odd'", .order_by = order, .n_order_by = 1};
    mpb_run_page *page = NULL;
    assert_int_equal(
        mpb_store_search_runs(c->store, exp_ids, 1, &opts, &page, c->err, sizeof c->err), 0);
    assert_int_equal(page->n_runs, 11); /* odd 1..23 without the deleted 3 */
    assert_string_equal(page->runs[0].info.run_name, "r23");
    assert_string_equal(page->runs[10].info.run_name, "r1");
    assert_null(page->next_page_token);
    mpb_run_page_free(&page);
    /* an experiment named twice is searched once: no run comes back twice */
    const char *twice[] = {c->exp_id, c->exp_id};
    assert_int_equal(mpb_store_search_runs(c->store, twice, 2, NULL, &page, c->err, sizeof c->err),
                     0);
    assert_int_equal(page->n_runs, N_SEARCH_RUNS - 1);
    mpb_run_page_free(&page);
    const char *ghost[] = {"4242"};
    assert_int_equal(mpb_store_search_runs(c->store, ghost, 1, NULL, &page, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    for (int i = 0; i < N_SEARCH_RUNS; i++) {
        free(ids[i]);
    }
    free(ids);
}

/* Experiment ids sort as the numbers they are (MLflow's SQL schema keeps
 * them as INTEGER): with a dozen experiments, "10" comes after "9". */
static void
experiments_sort_by_id_as_numbers(void **state)
{
    contract *c = *state;
    for (int i = 0; i < 12; i++) {
        char name[32];
        snprintf(name, sizeof name, "numbered-%02d", i);
        free(th_experiment(c->store, name));
    }
    const char *directions[] = {"experiment_id ASC", "experiment_id DESC"};
    for (int d = 0; d < 2; d++) {
        mpb_search_opts opts = {.order_by = &directions[d], .n_order_by = 1,
                                .view_type = MPB_VIEW_ALL};
        mpb_experiment_page *page = NULL;
        assert_int_equal(
            mpb_store_search_experiments(c->store, &opts, &page, c->err, sizeof c->err), 0);
        assert_true(page->n_experiments >= 13);
        for (size_t i = 1; i < page->n_experiments; i++) {
            unsigned long long before = strtoull(page->experiments[i - 1].experiment_id, NULL, 10);
            unsigned long long after = strtoull(page->experiments[i].experiment_id, NULL, 10);
            if (d == 0 ? before >= after : before <= after) {
                fail_msg("[%s] %s: %s then %s", backend->name, directions[d],
                         page->experiments[i - 1].experiment_id,
                         page->experiments[i].experiment_id);
            }
        }
        mpb_experiment_page_free(&page);
    }
}

static void
pages_follow_the_backends_own_tokens(void **state)
{
    contract *c = *state;
    char **ids = make_search_runs(c);
    const char *exp_ids[] = {c->exp_id};
    const char *order[] = {"attributes.start_time ASC"};
    char seen[N_SEARCH_RUNS] = {0};
    char *token = NULL;
    size_t pages = 0;
    int previous = -1;
    do {
        mpb_search_opts opts = {
            .order_by = order, .n_order_by = 1, .max_results = 4, .page_token = token};
        mpb_run_page *page = NULL;
        assert_int_equal(
            mpb_store_search_runs(c->store, exp_ids, 1, &opts, &page, c->err, sizeof c->err), 0);
        free(token);
        token = page->next_page_token ? mpb_strdup(page->next_page_token) : NULL;
        assert_true(page->n_runs <= 4);
        for (size_t i = 0; i < page->n_runs; i++) {
            int n = atoi(page->runs[i].info.run_name + 1);
            assert_true(n > previous);
            assert_false(seen[n]);
            seen[n] = 1;
            previous = n;
        }
        mpb_run_page_free(&page);
        pages++;
    } while (token != NULL);
    assert_int_equal(pages, 6); /* 24 active runs, 4 a page */
    for (int i = 0; i < N_SEARCH_RUNS; i++) {
        assert_int_equal(seen[i], i != 3);
    }
    mpb_search_opts bad = {.page_token = "not a token"};
    mpb_run_page *page = NULL;
    assert_int_equal(
        mpb_store_search_runs(c->store, exp_ids, 1, &bad, &page, c->err, sizeof c->err),
        MPB_EINVAL);
    assert_null(page);

    /* Experiments page the same way. */
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "more-%d", i);
        free(th_experiment(c->store, name));
    }
    size_t found = 0;
    do {
        mpb_search_opts opts = {
            .filter = "name LIKE 'more-%'", .max_results = 2, .page_token = token};
        mpb_experiment_page *experiments = NULL;
        assert_int_equal(
            mpb_store_search_experiments(c->store, &opts, &experiments, c->err, sizeof c->err), 0);
        free(token);
        token = experiments->next_page_token ? mpb_strdup(experiments->next_page_token) : NULL;
        found += experiments->n_experiments;
        mpb_experiment_page_free(&experiments);
    } while (token != NULL);
    assert_int_equal(found, 5);
    for (int i = 0; i < N_SEARCH_RUNS; i++) {
        free(ids[i]);
    }
    free(ids);
}

/* ---- Registry helpers and artifacts ---- */

static void
registry_helpers_find_or_create(void **state)
{
    contract *c = *state;
    char *first = NULL;
    int created = -1;
    assert_int_equal(mpb_store_get_or_create_experiment(c->store, "models", &first, &created,
                                                        c->err, sizeof c->err),
                     0);
    assert_int_equal(created, 1);
    assert_int_equal(mpb_store_delete_experiment(c->store, first, c->err, sizeof c->err), 0);
    char *again = NULL;
    assert_int_equal(mpb_store_get_or_create_experiment(c->store, "models", &again, &created,
                                                        c->err, sizeof c->err),
                     0);
    assert_int_equal(created, 0);
    assert_string_equal(again, first);
    mpb_tag key[] = {{"model", "mlp"}, {"version", "it's 1"}};
    char *run_id = NULL;
    char *same = NULL;
    assert_int_equal(mpb_store_get_or_create_run(c->store, again, key, 2, &run_id, &created, c->err,
                                                 sizeof c->err),
                     0);
    assert_int_equal(created, 1);
    assert_int_equal(mpb_store_get_or_create_run(c->store, again, key, 2, &same, &created, c->err,
                                                 sizeof c->err),
                     0);
    assert_int_equal(created, 0);
    assert_string_equal(same, run_id);
    free(same);
    free(run_id);
    free(again);
    free(first);
}

static void
artifacts_go_in_and_come_back(void **state)
{
    contract *c = *state;
    char *run_id = th_run(c->store, c->exp_id, "artifacts");
    char *model = th_pathf("%s/src/model.bin", c->dir);
    char *folder = th_pathf("%s/src/report", c->dir);
    char *deep = th_pathf("%s/deep/b.txt", folder);
    write_file(model, "weights");
    write_file(deep, "beta");
    assert_int_equal(
        mpb_store_log_artifact(c->store, run_id, model, "models", c->err, sizeof c->err), 0);
    assert_int_equal(
        mpb_store_log_artifact(c->store, run_id, folder, "report", c->err, sizeof c->err), 0);
    mpb_artifact_list *list = NULL;
    assert_int_equal(mpb_store_list_artifacts(c->store, run_id, NULL, &list, c->err, sizeof c->err),
                     0);
    assert_int_equal(list->n_files, 2);
    assert_string_equal(list->files[0].path, "models");
    assert_true(list->files[0].is_dir);
    assert_string_equal(list->files[1].path, "report");
    mpb_artifact_list_free(&list);
    assert_int_equal(
        mpb_store_list_artifacts(c->store, run_id, "models", &list, c->err, sizeof c->err), 0);
    assert_int_equal(list->n_files, 1);
    assert_string_equal(list->files[0].path, "models/model.bin");
    assert_int_equal(list->files[0].file_size, 7);
    mpb_artifact_list_free(&list);
    char *dst = th_pathf("%s/dst", c->dir);
    char *local = NULL;
    assert_int_equal(
        mpb_store_download_artifacts(c->store, run_id, "", dst, &local, c->err, sizeof c->err), 0);
    char *copy = th_pathf("%s/report/deep/b.txt", local);
    th_assert_file(copy, "beta");
    free(copy);
    free(local);
    assert_int_equal(
        mpb_store_list_artifacts(c->store, run_id, "../x", &list, c->err, sizeof c->err),
        MPB_EINVAL);
    assert_int_equal(mpb_store_log_artifact(c->store, "0123456789abcdef0123456789abcdef", model,
                                            NULL, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    free(dst);
    free(deep);
    free(folder);
    free(model);
    free(run_id);
}

static void
open_options_are_accepted_and_limits_hold(void **state)
{
    contract *c = *state;
    mpb_store_open_opts opts = c->opts;
    opts.timeout_ms = 5000;
    opts.max_retries = 2;
    opts.token = "unused-by-local-stores";
    opts.insecure_tls = 1;
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open_with(c->uri, &opts, &store, c->err, sizeof c->err), 0);
    char *run_id = th_run(store, c->exp_id, "opts");
    mpb_metric *many = mpb_calloc(MPB_MAX_METRICS_PER_BATCH + 1, sizeof *many);
    for (size_t i = 0; i <= MPB_MAX_METRICS_PER_BATCH; i++) {
        many[i] = (mpb_metric){"m", (double)i, 1, (int64_t)i};
    }
    assert_int_equal(mpb_store_log_batch(store, run_id, many, MPB_MAX_METRICS_PER_BATCH + 1, NULL,
                                         0, NULL, 0, c->err, sizeof c->err),
                     MPB_EINVAL);
    assert_int_equal(mpb_store_log_batch(store, run_id, many, MPB_MAX_METRICS_PER_BATCH, NULL, 0,
                                         NULL, 0, c->err, sizeof c->err),
                     0);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(c->store, run_id, "m", &history, c->err, sizeof c->err), 0);
    assert_int_equal(history->n_metrics, MPB_MAX_METRICS_PER_BATCH);
    mpb_metric_history_free(&history);
    mpb_store_destroy(&store);
    free(many);
    free(run_id);
}

/* ---- Threads ---- */

#define N_THREADS 4
#define N_BATCHES 25

typedef struct thread_job {
    contract *c;
    const char *shared_run;
    char *own_run;
    int index;
    int status;
} thread_job;

static void *
log_from_thread(void *arg)
{
    thread_job *job = arg;
    char err[512] = "";
    job->status = mpb_store_create_run(job->c->store, job->c->exp_id, "tester", -1, NULL, NULL, 0,
                                       &job->own_run, err, sizeof err);
    for (int b = 0; job->status == 0 && b < N_BATCHES; b++) {
        mpb_metric metrics[10];
        for (int k = 0; k < 10; k++) {
            metrics[k] = (mpb_metric){"m", b * 10 + k, 1000 + b, b * 10 + k};
        }
        job->status = mpb_store_log_batch(job->c->store, job->own_run, metrics, 10, NULL, 0, NULL,
                                          0, err, sizeof err);
        mpb_metric shared = {"shared", job->index, 1000, job->index * 1000 + b};
        if (job->status == 0) {
            job->status = mpb_store_log_batch(job->c->store, job->shared_run, &shared, 1, NULL, 0,
                                              NULL, 0, err, sizeof err);
        }
    }
    if (job->status != 0) {
        print_error("thread %d: %s\n", job->index, err);
    }
    return NULL;
}

static void
threads_share_one_store(void **state)
{
    contract *c = *state;
    char *shared = th_run(c->store, c->exp_id, "shared");
    pthread_t threads[N_THREADS];
    thread_job jobs[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        jobs[i] = (thread_job){.c = c, .shared_run = shared, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, log_from_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        assert_int_equal(jobs[i].status, 0);
        mpb_metric_history *history = NULL;
        assert_int_equal(mpb_store_get_metric_history(c->store, jobs[i].own_run, "m", &history,
                                                      c->err, sizeof c->err),
                         0);
        assert_int_equal(history->n_metrics, N_BATCHES * 10);
        mpb_metric_history_free(&history);
        free(jobs[i].own_run);
    }
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(c->store, shared, "shared", &history, c->err, sizeof c->err),
        0);
    assert_int_equal(history->n_metrics, N_THREADS * N_BATCHES);
    mpb_metric_history_free(&history);
    mpb_run *run = get_run(c, shared);
    const mpb_metric *latest = mpb__metric_find(run->metrics, run->n_metrics, "shared");
    assert_int_equal(latest->step, (N_THREADS - 1) * 1000 + N_BATCHES - 1);
    mpb_run_free(&run);
    free(shared);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(search_filters_and_view_types_agree),
        CONTRACT_TEST(experiments_sort_by_id_as_numbers),
        CONTRACT_TEST(pages_follow_the_backends_own_tokens),
        CONTRACT_TEST(registry_helpers_find_or_create),
        CONTRACT_TEST(artifacts_go_in_and_come_back),
        CONTRACT_TEST(open_options_are_accepted_and_limits_hold),
        CONTRACT_TEST(threads_share_one_store),
    };
    int failed = 0;
    for (size_t i = 0; i < MPB_ARRAY_LEN(backends); i++) {
        backend = &backends[i];
        failed += cmocka_run_group_tests_name(backend->name, tests, NULL, NULL);
    }
    return failed;
}
