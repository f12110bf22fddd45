/*
 * Prometheus metrics (GET /metrics), scraped over real TCP on 127.0.0.1
 * while items flow through a two-stage tree of real workers: every scrape
 * is well-formed and consistent (cumulative buckets, +Inf equal to the
 * count, a stage never ahead of the one before it), and once the items are
 * answered the numbers add up (items, errors by type, batch sizes within
 * the limit, restarts after a crash).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "http_helpers.h"

/* The value of the sample named exactly key (name and labels), or -1. */
static double
sample(const char *text, const char *key)
{
    size_t key_len = strlen(key);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ' ') {
            return strtod(line + key_len + 1, NULL);
        }
    }
    return -1;
}

static double
sample_of(const char *text, const char *name, const char *labels)
{
    char *key = mpb_asprintf("%s%s", name, labels);
    double value = sample(text, key);
    free(key);
    return value;
}

/* Every line a comment (HELP, TYPE) or `name[{labels}] number`, and every
 * sample's family declared by a TYPE line before it. */
static void
assert_well_formed(const char *text)
{
    char family[128] = "";
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        assert_non_null(end); /* every line ends with a newline */
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s", family), 1);
        } else if (line[0] != '#') {
            size_t name_len = strcspn(line, "{ ");
            assert_true(name_len > 0 && strlen(family) > 0);
            assert_true(strncmp(line, family, strlen(family)) == 0);
            const char *value = memchr(line, ' ', (size_t)(end - line));
            if (line[name_len] == '{') {
                const char *close = memchr(line, '}', (size_t)(end - line));
                assert_non_null(close);
                value = close + 1;
            }
            assert_non_null(value);
            char *after = NULL;
            strtod(value + 1, &after);
            assert_true(after == end);
        }
        line = end + 1;
    }
}

/* A histogram's buckets never fall, and +Inf holds its count. */
static void
assert_histogram(const char *text, const char *name, const char *servlet)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s_bucket{servlet=\"%s\",le=\"", name, servlet);
    double last = 0;
    int buckets = 0;
    for (const char *p = strstr(text, prefix); p != NULL; p = strstr(p + 1, prefix)) {
        const char *value = strchr(p, ' ');
        double v = strtod(value + 1, NULL);
        assert_true(v >= last);
        last = v;
        buckets++;
    }
    assert_true(buckets > 2);
    char labels[160];
    snprintf(labels, sizeof labels, "{servlet=\"%s\"}", servlet);
    char inf[200];
    snprintf(inf, sizeof inf, "{servlet=\"%s\",le=\"+Inf\"}", servlet);
    char bucket_name[128];
    snprintf(bucket_name, sizeof bucket_name, "%s_bucket", name);
    char count_name[128];
    snprintf(count_name, sizeof count_name, "%s_count", name);
    assert_true(sample_of(text, bucket_name, inf) == sample_of(text, count_name, labels));
    assert_true(last == sample_of(text, count_name, labels));
}

static char *
scrape(const char *address)
{
    http_reply r = http(address, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    assert_well_formed(r.body);
    return r.body;
}

typedef struct flow {
    mpb_server *server;
    const char **inputs;
    size_t n;
    atomic_int done;
} flow;

static void *
stream_all(void *arg)
{
    flow *f = arg;
    free_results(stream_strings(f->server, f->inputs, f->n), f->n);
    atomic_store(&f->done, 1);
    return NULL;
}

#define A "{servlet=\"pipe/a\"}"
#define B "{servlet=\"pipe/b\"}"

static void
numbers_add_up_while_items_flow(void **state)
{
    (void)state;
    enum { N = 6000, BAD_EVERY = 10 };
    test_pool b = {.kind = "process",
                   .plugin = "fail",
                   .name = "b",
                   .workers = 2,
                   .batch_size = 8,
                   .batch_wait_us = 500,
                   .options = {"fail_prefix=bad"}};
    mpb_servlet *stages[2] = {tag_pool("thread", "a", 1, NULL), test_pool_servlet(&b)};
    mpb_servlet *root = mpb_sequential_servlet_new(stages, 2);
    mpb_servlet_rename(root, "pipe");
    mpb_server *server = test_server_over(&root, NULL);
    char address[128];
    char err[256];
    if (mpb_server_serve_metrics(server, "127.0.0.1:0", address, sizeof address, err, sizeof err) !=
        0) {
        fail_msg("serve_metrics: %s", err);
    }
    const char **inputs = mpb_calloc(N, sizeof *inputs);
    char(*texts)[16] = mpb_calloc(N, sizeof *texts);
    for (size_t i = 0; i < N; i++) {
        snprintf(texts[i], sizeof texts[i], "%s%zu", i % BAD_EVERY == 0 ? "bad" : "ok", i);
        inputs[i] = texts[i];
    }
    flow f = {.server = server, .inputs = inputs, .n = N};
    pthread_t thread;
    pthread_create(&thread, NULL, stream_all, &f);
    double last_b = 0;
    int scrapes = 0;
    while (!atomic_load(&f.done)) {
        char *text = scrape(address);
        double a = sample_of(text, "mpb_items_total", A);
        double items_b = sample_of(text, "mpb_items_total", B);
        double served = sample(text, "mpb_server_items_total");
        /* a stage is never behind the next, nor the server ahead of the last */
        assert_true(a >= items_b && items_b >= served && served >= 0);
        assert_true(items_b >= last_b && items_b <= N);
        last_b = items_b;
        assert_histogram(text, "mpb_latency_seconds", "pipe/b");
        assert_histogram(text, "mpb_batch_size", "pipe/b");
        free(text);
        scrapes++;
    }
    pthread_join(thread, NULL);
    assert_true(scrapes > 0);

    /* batch telemetry may trail the last results by a moment */
    char *text = NULL;
    for (int tries = 0; tries < 200; tries++) {
        free(text);
        text = scrape(address);
        if (sample_of(text, "mpb_batch_size_sum", B) == N) {
            break;
        }
        usleep(10000);
    }
    assert_true(sample_of(text, "mpb_items_total", A) == N);
    assert_true(sample_of(text, "mpb_items_total", B) == N);
    assert_true(sample_of(text, "mpb_errors_total", "{servlet=\"pipe/b\",type=\"ValueError\"}") ==
                N / BAD_EVERY);
    assert_null(strstr(text, "mpb_errors_total{servlet=\"pipe/a\""));
    assert_true(sample(text, "mpb_server_items_total") == N);
    assert_true(sample(text, "mpb_server_errors_total{type=\"ValueError\"}") == N / BAD_EVERY);
    assert_true(sample(text, "mpb_server_latency_seconds_count") == N);
    /* every item rode in exactly one batch of at most 8 */
    assert_true(sample_of(text, "mpb_batch_size_sum", B) == N);
    assert_true(sample_of(text, "mpb_batches_total", B) ==
                sample_of(text, "mpb_batch_size_count", B));
    assert_true(sample_of(text, "mpb_batch_size_bucket", "{servlet=\"pipe/b\",le=\"8\"}") ==
                sample_of(text, "mpb_batch_size_count", B));
    assert_true(sample_of(text, "mpb_batch_size_bucket", "{servlet=\"pipe/b\",le=\"4\"}") <
                sample_of(text, "mpb_batch_size_count", B));
    assert_true(sample_of(text, "mpb_compute_seconds_count", B) ==
                sample_of(text, "mpb_batches_total", B));
    assert_true(sample_of(text, "mpb_latency_seconds_count", B) == N);
    assert_histogram(text, "mpb_queue_wait_seconds", "pipe/b");
    assert_histogram(text, "mpb_compute_seconds", "pipe/b");
    assert_true(sample_of(text, "mpb_queue_depth", B) == 0);
    assert_true(sample_of(text, "mpb_in_flight", B) == 0);
    assert_true(sample(text, "mpb_server_in_flight") == 0);
    assert_true(sample(text, "mpb_server_rejected_total") ==
                0); /* the stream waits, never refused */
    assert_true(sample_of(text, "mpb_workers_alive", B) == 2);
    assert_true(sample_of(text, "mpb_workers_wanted", B) == 2);
    assert_true(sample_of(text, "mpb_workers_resident_memory_bytes", B) > 0);
    assert_true(sample_of(text, "mpb_workers_resident_memory_bytes", A) == 0); /* threads */
    assert_true(sample_of(text, "mpb_worker_restarts_total", B) == 0);
    assert_true(sample(text, "process_resident_memory_bytes") > 0);
    free(text);
    free(inputs);
    free(texts);
    mpb_server_destroy(&server);
}

static void
restarts_and_other_paths(void **state)
{
    (void)state;
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .name = "c",
                    .workers = 1,
                    .batch_size = 1,
                    .options = {"exit_prefix=die"}};
    mpb_server *server = test_server_start(&tp);
    char address[128];
    char http_address[128];
    char err[256];
    assert_int_equal(
        mpb_server_serve_metrics(server, "127.0.0.1:0", address, sizeof address, err, sizeof err),
        0);
    assert_int_equal(mpb_server_serve_http(server, "127.0.0.1:0", NULL, http_address,
                                           sizeof http_address, err, sizeof err),
                     0);
    mpb_result *r = NULL;
    mpb_server_call(server, "die", 3, 10000, &r);
    assert_true(mpb_result_is_error(r));
    mpb_result_destroy(&r);
    /* the pool relaunches the worker: alive again, one restart counted */
    char *text = NULL;
    for (int tries = 0; tries < 500; tries++) {
        free(text);
        text = scrape(address);
        if (sample(text, "mpb_workers_alive{servlet=\"c\"}") == 1) {
            break;
        }
        usleep(10000);
    }
    assert_true(sample(text, "mpb_workers_alive{servlet=\"c\"}") == 1);
    assert_true(sample(text, "mpb_worker_restarts_total{servlet=\"c\"}") == 1);
    assert_true(sample(text, "mpb_items_total{servlet=\"c\"}") == 1);
    assert_true(sample(text, "mpb_errors_total{servlet=\"c\",type=\"WorkerCrashed\"}") == 1);
    free(text);
    assert_int_equal(mpb_server_call(server, "fine", 4, 10000, &r), 0);
    mpb_result_destroy(&r);
    /* the HTTP front end answers /metrics too; the metrics address nothing else */
    http_reply reply = http(http_address, "GET", "/metrics", NULL);
    assert_int_equal(reply.status, 200);
    assert_well_formed(reply.body);
    assert_true(sample(reply.body, "mpb_items_total{servlet=\"c\"}") == 2);
    free(reply.body);
    expect(address, "GET", "/v2/health/live", NULL, 404, "/metrics only");
    expect(address, "POST", "/metrics", "x", 405, "GET");
    mpb_server_destroy(&server);
}

static void
bad_address_is_refused(void **state)
{
    (void)state;
    test_pool tp = {.kind = "thread", .plugin = "passthrough"};
    mpb_server *server = test_server_start(&tp);
    char err[256] = "";
    assert_int_not_equal(mpb_server_serve_metrics(server, "", NULL, 0, err, sizeof err), 0);
    assert_non_null(strstr(err, "address"));
    assert_int_not_equal(mpb_server_serve_metrics(server, "nowhere", NULL, 0, err, sizeof err), 0);
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numbers_add_up_while_items_flow),
        cmocka_unit_test(restarts_and_other_paths),
        cmocka_unit_test(bad_address_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
