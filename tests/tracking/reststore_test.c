/*
 * The REST store against the test tracking server (rest_test_server.h):
 * MLflow's retry policy (429, 503, Retry-After, exhausted retries), the
 * per-request timeout, permanent errors, credentials, log-batch split to the
 * server's limits, exact int64 and NaN/Inf on the wire, metric history
 * paging and its stuck-token guard, unknown endpoints, artifacts through the
 * proxy or a local path, and the async logging queue writing through it.
 * The contract suite (store_contract*_test.c) covers every slot's meaning.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "mpbatch/logging_queue.h"
#include "tracking/helpers.h"
#include "tracking/rest_test_server.h"
#include "tracking/reststore_int.h"

typedef struct fixture {
    char *dir;
    rest_server *server;
    mpb_store *store;
    char *exp_id;
    char err[1024];
} fixture;

static mpb_store *
open_rest(fixture *f, const mpb_store_open_opts *opts)
{
    mpb_store *store = NULL;
    if (mpb_store_open_with(rest_server_url(f->server), opts, &store, f->err, sizeof f->err) != 0) {
        fail_msg("open: %s", f->err);
    }
    return store;
}

static int
setup(void **state)
{
    fixture *f = mpb_calloc(1, sizeof *f);
    f->dir = th_tempdir();
    f->server = rest_server_start(f->dir);
    mpb_store_open_opts opts = {.timeout_ms = 10000};
    f->store = open_rest(f, &opts);
    f->exp_id = th_experiment(f->store, "rest");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    mpb_store_destroy(&f->store);
    rest_server_stop(&f->server);
    th_cleanup(&f->dir);
    free(f->exp_id);
    free(f);
    return 0;
}

static int64_t
elapsed_ms(int64_t start_ns)
{
    return (mpb_now_ns() - start_ns) / 1000000;
}

/* ---- Retries and timeouts ---- */

static void
retries_429_and_503_then_succeeds(void **state)
{
    fixture *f = *state;
    rest_server_fail_next(f->server, 2, 429, NULL);
    char *id = NULL;
    assert_int_equal(mpb_store_create_experiment(f->store, "after-429", NULL, NULL, 0, &id, f->err,
                                                 sizeof f->err),
                     0);
    assert_int_equal(rest_server_requests(f->server, "experiments/create"), 2 + 2);
    char *run_id = th_run(f->store, id, "r");
    rest_server_fail_next(f->server, 3, 503, NULL);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_string_equal(run->info.run_name, "r");
    assert_int_equal(rest_server_requests(f->server, "runs/get"), 3 + 1);
    mpb_run_free(&run);
    free(run_id);
    free(id);
}

static void
retry_after_is_honoured(void **state)
{
    fixture *f = *state;
    rest_server_fail_next(f->server, 1, 429, "1");
    int64_t start = mpb_now_ns();
    mpb_experiment *experiment = NULL;
    assert_int_equal(
        mpb_store_get_experiment(f->store, f->exp_id, &experiment, f->err, sizeof f->err), 0);
    assert_true(elapsed_ms(start) >= 950); /* the backoff alone is ~0 in these tests */
    mpb_experiment_free(&experiment);
}

static void
retries_stop_at_max_retries(void **state)
{
    fixture *f = *state;
    mpb_store_open_opts opts = {.max_retries = 2};
    mpb_store *store = open_rest(f, &opts);
    rest_server_fail_next(f->server, 10, 503, NULL);
    mpb_experiment *experiment = NULL;
    int before = rest_server_requests(f->server, "experiments/get");
    assert_int_equal(mpb_store_get_experiment(store, f->exp_id, &experiment, f->err, sizeof f->err),
                     MPB_EBUSY);
    assert_int_equal(rest_server_requests(f->server, "experiments/get") - before, 3);
    assert_non_null(strstr(f->err, "injected failure"));
    assert_non_null(strstr(f->err, "TEMPORARILY_UNAVAILABLE"));
    rest_server_fail_next(f->server, 0, 0, NULL);
    mpb_store_destroy(&store);
}

static void
a_slow_download_that_keeps_moving_is_not_cut_off(void **state)
{
    /* the timeout bounds each wait for bytes, not the whole transfer (as
     * MLflow's client's read timeout): 20 bytes at one per 100 ms take 2 s
     * against a 1 s timeout, and must arrive whole, in one attempt */
    fixture *f = *state;
    mpb_store_open_opts opts = {.timeout_ms = 1000, .max_retries = 2};
    mpb_store *store = open_rest(f, &opts);
    char *run_id = th_run(store, f->exp_id, "slow-link");
    char *file = th_pathf("%s/slow.bin", f->dir);
    FILE *out = fopen(file, "w");
    fputs("0123456789abcdefghij", out);
    fclose(out);
    assert_int_equal(mpb_store_log_artifact(store, run_id, file, NULL, f->err, sizeof f->err), 0);
    char *dest = th_pathf("%s/down", f->dir);
    assert_int_equal(mpb__fs_mkdir_p(dest), 0);
    /* the requests a download takes at full speed */
    int before = rest_server_requests(f->server, "mlflow-artifacts");
    char *local = NULL;
    assert_int_equal(mpb_store_download_artifacts(store, run_id, "slow.bin", dest, &local, f->err,
                                                  sizeof f->err),
                     0);
    free(local);
    int fast = rest_server_requests(f->server, "mlflow-artifacts") - before;
    rest_server_trickle(f->server, 100);
    before = rest_server_requests(f->server, "mlflow-artifacts");
    local = NULL;
    int rc = mpb_store_download_artifacts(store, run_id, "slow.bin", dest, &local, f->err,
                                          sizeof f->err);
    rest_server_trickle(f->server, 0);
    if (rc != 0) {
        fail_msg("download: %s", f->err);
    }
    assert_int_equal(rest_server_requests(f->server, "mlflow-artifacts") - before, fast); /* no retry */
    char *got = th_read(local);
    assert_string_equal(got, "0123456789abcdefghij");
    free(got);
    free(local);
    free(dest);
    free(file);
    free(run_id);
    mpb_store_destroy(&store);
}

static void
a_slow_answer_times_out_after_the_request_timeout(void **state)
{
    fixture *f = *state;
    mpb_store_open_opts opts = {.timeout_ms = 300, .max_retries = -1};
    mpb_store *store = open_rest(f, &opts);
    rest_server_slow_next(f->server, 1, 5000);
    mpb_experiment *experiment = NULL;
    int64_t start = mpb_now_ns();
    assert_int_equal(mpb_store_get_experiment(store, f->exp_id, &experiment, f->err, sizeof f->err),
                     MPB_ETIMEDOUT);
    assert_true(elapsed_ms(start) < 3000); /* 10x the timeout; the server waits 5 s */
    assert_non_null(strstr(f->err, "300 ms"));
    mpb_store_destroy(&store);

    /* A timeout is retried like a 5xx: one retry, two requests, then the error. */
    opts.max_retries = 1;
    store = open_rest(f, &opts);
    int before = rest_server_requests(f->server, "experiments/get");
    rest_server_slow_next(f->server, 2, 5000);
    assert_int_equal(mpb_store_get_experiment(store, f->exp_id, &experiment, f->err, sizeof f->err),
                     MPB_ETIMEDOUT);
    assert_int_equal(rest_server_requests(f->server, "experiments/get") - before, 2);
    mpb_store_destroy(&store);
}

static void
a_changed_param_is_final_even_as_a_500(void **state)
{
    fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "params");
    mpb_param first = {"lr", "0.1"};
    mpb_param changed = {"lr", "0.2"};
    assert_int_equal(
        mpb_store_log_batch(f->store, run_id, NULL, 0, &first, 1, NULL, 0, f->err, sizeof f->err),
        0);
    const int statuses[] = {400, 500};
    for (int i = 0; i < 2; i++) {
        rest_server_param_change_status(f->server, statuses[i]);
        int before = rest_server_requests(f->server, "runs/log-batch");
        assert_int_equal(mpb_store_log_batch(f->store, run_id, NULL, 0, &changed, 1, NULL, 0,
                                             f->err, sizeof f->err),
                         MPB_EINVAL);
        assert_non_null(strstr(f->err, "Changing param values is not allowed"));
        assert_int_equal(rest_server_requests(f->server, "runs/log-batch") - before, 1);
    }
    free(run_id);
}

static void
unknown_endpoints_and_dead_servers_fail_clearly(void **state)
{
    fixture *f = *state;
    char *uri = mpb_asprintf("%s/not-mlflow", rest_server_url(f->server));
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open(uri, &store, f->err, sizeof f->err), 0);
    mpb_experiment *experiment = NULL;
    assert_int_equal(mpb_store_get_experiment(store, "0", &experiment, f->err, sizeof f->err),
                     MPB_ENOTSUP);
    assert_non_null(strstr(f->err, "ENDPOINT_NOT_FOUND"));
    mpb_store_destroy(&store);
    free(uri);

    /* Nothing listens on the port of a stopped server. */
    rest_server *gone = rest_server_start(f->dir);
    uri = mpb_strdup(rest_server_url(gone));
    rest_server_stop(&gone);
    mpb_store_open_opts opts = {.max_retries = -1};
    assert_int_equal(mpb_store_open_with(uri, &opts, &store, f->err, sizeof f->err), 0);
    assert_int_equal(mpb_store_get_experiment(store, "0", &experiment, f->err, sizeof f->err),
                     MPB_ECONNREFUSED);
    mpb_store_destroy(&store);
    free(uri);
}

/* ---- Credentials ---- */

static void
credentials_go_in_headers_and_never_in_messages(void **state)
{
    fixture *f = *state;
    rest_server_require_auth(f->server, "Bearer s3cret-token");
    mpb_experiment *experiment = NULL;
    assert_int_equal(mpb_store_get_experiment(f->store, "0", &experiment, f->err, sizeof f->err),
                     MPB_EACCES);
    assert_non_null(strstr(f->err, "401"));

    mpb_store_open_opts opts = {.token = "s3cret-token"};
    mpb_store *store = open_rest(f, &opts);
    assert_int_equal(mpb_store_get_experiment(store, "0", &experiment, f->err, sizeof f->err), 0);
    mpb_experiment_free(&experiment);
    char *auth = rest_server_last_authorization(f->server);
    assert_string_equal(auth, "Bearer s3cret-token");
    free(auth);
    mpb_store_destroy(&store);

    /* From the environment too; a wrong secret is refused and never echoed. */
    setenv("MLFLOW_TRACKING_TOKEN", "wrong-secret", 1);
    store = open_rest(f, NULL);
    assert_int_equal(mpb_store_get_experiment(store, "0", &experiment, f->err, sizeof f->err),
                     MPB_EACCES);
    assert_null(strstr(f->err, "wrong-secret"));
    mpb_store_destroy(&store);
    unsetenv("MLFLOW_TRACKING_TOKEN");

    /* Basic wins over a token when both are given (MLflow's order). */
    rest_server_require_auth(f->server, "Basic YW5uOnB3"); /* ann:pw */
    opts = (mpb_store_open_opts){.username = "ann", .password = "pw", .token = "ignored"};
    store = open_rest(f, &opts);
    assert_int_equal(mpb_store_get_experiment(store, "0", &experiment, f->err, sizeof f->err), 0);
    mpb_experiment_free(&experiment);
    auth = rest_server_last_authorization(f->server);
    assert_string_equal(auth, "Basic YW5uOnB3");
    free(auth);
    mpb_store_destroy(&store);
    rest_server_require_auth(f->server, NULL);

    /* Credentials in the URI are refused without repeating them. */
    assert_int_equal(
        mpb_store_open("http://ann:topsecret@127.0.0.1:1", &store, f->err, sizeof f->err),
        MPB_EINVAL);
    assert_null(strstr(f->err, "topsecret"));
}

/* ---- What goes over the wire ---- */

static void
a_large_batch_is_split_in_order_within_the_limits(void **state)
{
    fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "big");
    enum { N_METRICS = 2500, N_PARAMS = 150, N_TAGS = 30 };
    mpb_metric *metrics = mpb_calloc(N_METRICS, sizeof *metrics);
    mpb_param *params = mpb_calloc(N_PARAMS, sizeof *params);
    char(*names)[16] = mpb_calloc(N_PARAMS, sizeof *names);
    for (int i = 0; i < N_METRICS; i++) {
        metrics[i] = (mpb_metric){"m", i * 0.5, 1000 + i, i};
    }
    for (int i = 0; i < N_PARAMS; i++) {
        snprintf(names[i], sizeof names[i], "p%03d", i);
        params[i] = (mpb_param){names[i], "v"};
    }
    mpb_tag tags[N_TAGS];
    for (int i = 0; i < N_TAGS; i++) {
        tags[i] = (mpb_tag){names[i], "t"};
    }
    char **bodies = NULL;
    size_t first = rest_server_log_batch_bodies(f->server, &bodies);
    /* Past the public call's limits: the slot itself splits. */
    assert_int_equal(f->store->ops->log_batch(f->store->backend, run_id, metrics, N_METRICS, params,
                                              N_PARAMS, tags, N_TAGS, f->err, sizeof f->err),
                     0);
    size_t n = rest_server_log_batch_bodies(f->server, &bodies);
    assert_true(n - first >= 3);
    int64_t next_step = 0;
    int params_seen = 0;
    int tags_seen = 0;
    for (size_t i = first; i < n; i++) {
        cJSON *body = mpb__rest_json_parse(bodies[i], strlen(bodies[i]));
        int n_m = cJSON_GetArraySize(cJSON_GetObjectItem(body, "metrics"));
        int n_p = cJSON_GetArraySize(cJSON_GetObjectItem(body, "params"));
        int n_t = cJSON_GetArraySize(cJSON_GetObjectItem(body, "tags"));
        assert_true(n_m <= 1000 && n_p <= 100 && n_t <= 100 && n_m + n_p + n_t <= 1000);
        const cJSON *metric = NULL;
        cJSON_ArrayForEach(metric, cJSON_GetObjectItem(body, "metrics"))
        {
            int64_t step = -1;
            assert_int_equal(mpb__rest_json_int64(metric, "step", &step), 1);
            assert_int_equal(step, next_step++);
        }
        params_seen += n_p;
        tags_seen += n_t;
        cJSON_Delete(body);
    }
    assert_int_equal(next_step, N_METRICS);
    assert_int_equal(params_seen, N_PARAMS);
    assert_int_equal(tags_seen, N_TAGS);
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, "m", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, N_METRICS);
    assert_int_equal(history->metrics[N_METRICS - 1].step, N_METRICS - 1);
    mpb_metric_history_free(&history);
    free(names);
    free(params);
    free(metrics);
    free(run_id);
}

static void
int64_and_non_finite_values_travel_exactly(void **state)
{
    fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "exact");
    const int64_t big = INT64_C(9007199254740993); /* 2^53 + 1: no double holds it */
    mpb_metric metrics[] = {
        {"big", 1.5, big + 2, big}, {"odd", NAN, 1, 0}, {"odd", INFINITY, 2, 1},
        {"odd", -INFINITY, 3, 2},   {"odd", 0.1, 4, 3},
    };
    char **bodies = NULL;
    assert_int_equal(
        mpb_store_log_batch(f->store, run_id, metrics, 5, NULL, 0, NULL, 0, f->err, sizeof f->err),
        0);
    size_t n = rest_server_log_batch_bodies(f->server, &bodies);
    const char *body = bodies[n - 1];
    assert_non_null(strstr(body, "\"step\":9007199254740993"));
    assert_non_null(strstr(body, "\"timestamp\":9007199254740995"));
    assert_non_null(strstr(body, "\"value\":\"NaN\""));
    assert_non_null(strstr(body, "\"value\":\"Infinity\""));
    assert_non_null(strstr(body, "\"value\":\"-Infinity\""));

    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, "big", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, 1);
    assert_true(history->metrics[0].step == big);
    assert_true(history->metrics[0].timestamp_ms == big + 2);
    mpb_metric_history_free(&history);
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, "odd", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, 4);
    assert_true(isnan(history->metrics[0].value));
    assert_true(isinf(history->metrics[1].value) && history->metrics[1].value > 0);
    assert_true(isinf(history->metrics[2].value) && history->metrics[2].value < 0);
    assert_true(history->metrics[3].value == 0.1);
    mpb_metric_history_free(&history);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_true(mpb__metric_find(run->metrics, run->n_metrics, "big")->step == big);
    mpb_run_free(&run);

    /* A number past int64 is refused, not rounded. */
    cJSON *json = mpb__rest_json_parse("{\"step\": 99999999999999999999}", 30);
    int64_t step = 0;
    assert_int_equal(mpb__rest_json_int64(json, "step", &step), MPB_EINVAL);
    cJSON_Delete(json);
    free(run_id);
}

static void
metric_history_follows_pages_and_stops_on_a_stuck_token(void **state)
{
    fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "pages");
    mpb_metric metrics[5];
    for (int i = 0; i < 5; i++) {
        metrics[i] = (mpb_metric){"m", i, 10 + i, i};
    }
    assert_int_equal(
        mpb_store_log_batch(f->store, run_id, metrics, 5, NULL, 0, NULL, 0, f->err, sizeof f->err),
        0);
    rest_server_history_pages(f->server, 2, 0);
    int before = rest_server_requests(f->server, "metrics/get-history");
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, "m", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(history->metrics[i].step, i);
    }
    mpb_metric_history_free(&history);
    assert_int_equal(rest_server_requests(f->server, "metrics/get-history") - before, 3);

    rest_server_history_pages(f->server, 2, 1);
    before = rest_server_requests(f->server, "metrics/get-history");
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, "m", &history, f->err, sizeof f->err),
        MPB_ESTORE);
    assert_null(history);
    assert_non_null(strstr(f->err, "page token"));
    assert_int_equal(rest_server_requests(f->server, "metrics/get-history") - before, 2);
    free(run_id);
}

/* ---- Artifacts ---- */

static void
artifacts_use_the_proxy_or_a_local_path(void **state)
{
    fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "art");
    char *src = th_pathf("%s/src/model.bin", f->dir);
    assert_int_equal(mpb__fs_mkdir_parent(src), 0);
    assert_int_equal(mpb__fs_write_atomic(f->dir, src, "weights", 7), 0);
    assert_int_equal(mpb_store_log_artifact(f->store, run_id, src, "m dir", f->err, sizeof f->err),
                     0);
    /* Through the proxy: the file is in the server's artifact folder. */
    char *stored =
        th_pathf("%s/mlartifacts/%s/%s/artifacts/m dir/model.bin", f->dir, f->exp_id, run_id);
    th_assert_file(stored, "weights");
    assert_true(rest_server_requests(f->server, "mlflow-artifacts") >= 1);
    char *dst = th_pathf("%s/dst", f->dir);
    char *local = NULL;
    assert_int_equal(mpb_store_download_artifacts(f->store, run_id, "m dir/model.bin", dst, &local,
                                                  f->err, sizeof f->err),
                     0);
    th_assert_file(local, "weights");
    free(local);
    assert_int_equal(mpb_store_download_artifacts(f->store, run_id, "m dir/none", dst, &local,
                                                  f->err, sizeof f->err),
                     MPB_ENOTFOUND);

    /* An experiment on a shared folder: read and written directly. */
    char *folder = th_pathf("%s/shared", f->dir);
    char *shared_exp = NULL;
    assert_int_equal(mpb_store_create_experiment(f->store, "shared", folder, NULL, 0, &shared_exp,
                                                 f->err, sizeof f->err),
                     0);
    char *shared_run = th_run(f->store, shared_exp, "s");
    assert_int_equal(mpb_store_log_artifact(f->store, shared_run, src, NULL, f->err, sizeof f->err),
                     0);
    char *direct = th_pathf("%s/%s/artifacts/model.bin", folder, shared_run);
    th_assert_file(direct, "weights");

    /* Other schemes are not reachable from here. */
    char *s3_exp = NULL;
    assert_int_equal(mpb_store_create_experiment(f->store, "s3", "s3://bucket/x", NULL, 0, &s3_exp,
                                                 f->err, sizeof f->err),
                     0);
    char *s3_run = th_run(f->store, s3_exp, "s3");
    assert_int_equal(mpb_store_log_artifact(f->store, s3_run, src, NULL, f->err, sizeof f->err),
                     MPB_ENOTSUP);
    assert_non_null(strstr(f->err, "s3://bucket/x"));
    free(s3_run);
    free(s3_exp);
    free(direct);
    free(shared_run);
    free(shared_exp);
    free(folder);
    free(dst);
    free(stored);
    free(src);
    free(run_id);
}

/* ---- The async logging queue over REST ---- */

static void
the_logging_queue_writes_through_rest(void **state)
{
    fixture *f = *state;
    char *run_id = th_run(f->store, f->exp_id, "queued");
    mpb_logging_queue_options options = {.no_exit_drain = 1};
    mpb_logging_queue *queue = mpb_logging_queue_new(f->store, &options);
    assert_int_equal(mpb_logging_queue_start(queue, f->err, sizeof f->err), 0);
    rest_server_fail_next(f->server, 1, 503, NULL); /* retried under the queue's writer */
    for (int i = 0; i < 300; i++) {
        mpb_metric m = {"loss", 1.0 / (i + 1), 1000 + i, i};
        assert_int_equal(mpb_logging_queue_log_batch(queue, run_id, &m, 1, NULL, 0, NULL, 0, NULL),
                         0);
    }
    mpb_param param = {"lr", "0.1"};
    assert_int_equal(mpb_logging_queue_log_batch(queue, run_id, NULL, 0, &param, 1, NULL, 0, NULL),
                     0);
    assert_int_equal(mpb_logging_queue_update_run(queue, run_id, MPB_RUN_FINISHED, 5000, NULL), 0);
    assert_int_equal(mpb_logging_queue_flush(queue, 20000), 0);
    mpb_logging_stats stats;
    mpb_logging_queue_stats(queue, &stats);
    assert_int_equal(stats.failed, 0);
    assert_true(stats.store_calls < 300); /* merged into fewer requests */
    assert_int_equal(mpb_logging_queue_shutdown(queue, 20000, f->err, sizeof f->err), 0);
    mpb_logging_queue_destroy(&queue);

    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, run_id, "loss", &history, f->err, sizeof f->err), 0);
    assert_int_equal(history->n_metrics, 300);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(history->metrics[i].step, i);
    }
    mpb_metric_history_free(&history);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, f->err, sizeof f->err), 0);
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    assert_string_equal(mpb__param_find(run->params, run->n_params, "lr"), "0.1");
    mpb_run_free(&run);
    free(run_id);
}

int
main(void)
{
    /* MLflow's backoff (2 s factor, 1 s jitter) made quick for tests. */
    setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.005", 1);
    setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0", 1);
    unsetenv("MLFLOW_TRACKING_TOKEN");
    unsetenv("MLFLOW_TRACKING_USERNAME");
    unsetenv("MLFLOW_TRACKING_PASSWORD");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(retries_429_and_503_then_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(retry_after_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(retries_stop_at_max_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(a_slow_download_that_keeps_moving_is_not_cut_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_slow_answer_times_out_after_the_request_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_changed_param_is_final_even_as_a_500, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_endpoints_and_dead_servers_fail_clearly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(credentials_go_in_headers_and_never_in_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_large_batch_is_split_in_order_within_the_limits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(int64_and_non_finite_values_travel_exactly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(metric_history_follows_pages_and_stops_on_a_stuck_token,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(artifacts_use_the_proxy_or_a_local_path, setup, teardown),
        cmocka_unit_test_setup_teardown(the_logging_queue_writes_through_rest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
