/*
 * The logging queue and the queueing client writing real files through the
 * file store: what ends on disk, after threads, after a process returns from
 * main without flushing, and when the store refuses to write.
 */
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/logging_queue.h"
#include "mpbatch/queueing_client.h"
#include "tracking/helpers.h"
#include "tracking/test_child.h"

#define HANG_MS 30000

static int
setup(void **state)
{
    *state = th_fixture_new(NULL, NULL);
    return 0;
}

/* Checks that metrics/<key> of a run holds steps 0..count-1, once each, in order. */
static void
assert_metric_file(const char *root, const char *run_id, const char *key, int64_t count)
{
    char *path = mpb_asprintf("%s/0/%s/metrics/%s", root, run_id, key);
    char *text = th_read(path);
    assert_non_null(text);
    int64_t expected = 0;
    char *line = text;
    while (*line != '\0') {
        long long timestamp = 0;
        double value = 0;
        long long step = -1;
        assert_int_equal(sscanf(line, "%lld %lf %lld", &timestamp, &value, &step), 3);
        assert_int_equal(step, expected);
        assert_true(value == (double)expected);
        expected++;
        char *newline = strchr(line, '\n');
        assert_non_null(newline);
        line = newline + 1;
    }
    assert_int_equal(expected, count);
    free(text);
    free(path);
}

typedef struct producer {
    mpb_logging_queue *queue;
    const char *run_id;
    int count;
    int failures;
} producer;

static void *
produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < p->count; i++) {
        mpb_metric m = {"loss", (double)i, 1700000000000 + i, i};
        if (mpb_logging_queue_log_batch(p->queue, p->run_id, &m, 1, NULL, 0, NULL, 0, NULL) != 0) {
            p->failures++;
        }
    }
    return NULL;
}

/* 4 threads x 50k metrics: all on disk, none twice, each run in order. */
static void
four_threads_end_on_disk_in_order(void **state)
{
    th_fixture *f = *state;
    mpb_logging_queue *queue = mpb_logging_queue_new(f->store, NULL);
    assert_int_equal(mpb_logging_queue_start(queue, NULL, 0), 0);
    char *run_ids[4];
    producer producers[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        run_ids[t] = th_run(f->store, MPB_DEFAULT_EXPERIMENT_ID, NULL);
        producers[t] = (producer){.queue = queue, .run_id = run_ids[t], .count = 50000};
        pthread_create(&threads[t], NULL, produce, &producers[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(producers[t].failures, 0);
    }
    assert_int_equal(mpb_logging_queue_flush(queue, HANG_MS), 0);
    mpb_logging_stats stats;
    mpb_logging_queue_stats(queue, &stats);
    assert_int_equal(stats.written, 200000);
    assert_int_equal(stats.failed, 0);
    for (int t = 0; t < 4; t++) {
        assert_metric_file(f->root, run_ids[t], "loss", 50000);
        free(run_ids[t]);
    }
    mpb_logging_queue_destroy(&queue);
}

/* The child logs, ends the run and returns from main: no flush, no destroy. */
static int
child_logs_and_returns(const char *root, const char *run_id)
{
    mpb_store *store = NULL;
    if (mpb_store_open(root, &store, NULL, 0) != 0) {
        return 2;
    }
    mpb_logging_queue *queue = mpb_logging_queue_new(store, NULL);
    if (mpb_logging_queue_start(queue, NULL, 0) != 0) {
        return 3;
    }
    for (int i = 0; i < 20000; i++) {
        mpb_metric m = {"loss", (double)i, 1700000000000 + i, i};
        mpb_param p = {"param", "value"};
        if (mpb_logging_queue_log_batch(queue, run_id, &m, 1, &p, i == 0, NULL, 0, NULL) != 0) {
            return 4;
        }
    }
    mpb_logging_queue_update_run(queue, run_id, MPB_RUN_FINISHED, mpb_wall_ms(), NULL);
    return 0;
}

static void
child_returning_from_main_leaves_everything_on_disk(void **state)
{
    th_fixture *f = *state;
    char *run_id = th_run(f->store, MPB_DEFAULT_EXPERIMENT_ID, "child");
    const char *args[] = {"--child-returns", f->root, run_id, NULL};
    assert_int_equal(test_child_run(args, NULL, NULL, HANG_MS), 0);
    assert_metric_file(f->root, run_id, "loss", 20000);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, NULL, 0), 0);
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    assert_true(run->info.end_time > 0);
    assert_int_equal(run->n_params, 1);
    mpb_run_free(&run);
    free(run_id);
}

static void
make_tree_writable(const char *path, int writable)
{
    chmod(path, writable ? 0755 : 0555);
}

/* A run folder the process may not write to: every handle reports it. */
static void
read_only_store_fails_every_handle(void **state)
{
    if (geteuid() == 0) {
        skip(); /* root writes through permissions; the fault-seam tests cover this */
    }
    th_fixture *f = *state;
    char *run_id = th_run(f->store, MPB_DEFAULT_EXPERIMENT_ID, "read-only");
    const char *parts[] = {"metrics", "params", "tags", ""};
    char *paths[4];
    for (int i = 0; i < 4; i++) {
        paths[i] = mpb_asprintf("%s/0/%s/%s", f->root, run_id, parts[i]);
        make_tree_writable(paths[i], 0);
    }
    mpb_logging_queue *queue = mpb_logging_queue_new(f->store, NULL);
    assert_int_equal(mpb_logging_queue_start(queue, NULL, 0), 0);
    enum { N = 50 };
    mpb_logging_handle *handles[N];
    for (int i = 0; i < N; i++) {
        mpb_metric m = {"loss", (double)i, 1700000000000, i};
        mpb_param p = {"p", "v"};
        assert_int_equal(
            mpb_logging_queue_log_batch(queue, run_id, &m, 1, &p, i % 2, NULL, 0, &handles[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        char err[512] = "";
        assert_int_not_equal(mpb_logging_handle_wait(handles[i], HANG_MS, err, sizeof err), 0);
        assert_true(err[0] != '\0');
        mpb_logging_handle_release(&handles[i]);
    }
    mpb_logging_stats stats;
    mpb_logging_queue_stats(queue, &stats);
    assert_int_equal(stats.written, 0);
    mpb_logging_queue_destroy(&queue);
    for (int i = 0; i < 4; i++) {
        make_tree_writable(paths[i], 1);
        free(paths[i]);
    }
    free(run_id);
}

static int
has_tag(const mpb_run *run, const char *key, const char *value)
{
    for (size_t i = 0; i < run->n_tags; i++) {
        if (strcmp(run->tags[i].key, key) == 0) {
            return value == NULL || strcmp(run->tags[i].value, value) == 0;
        }
    }
    return 0;
}

/* The queueing client's chunks are accepted by the real store. */
static void
queueing_client_writes_a_run(void **state)
{
    th_fixture *f = *state;
    mpb_logging_queue *queue = mpb_logging_queue_new(f->store, NULL);
    assert_int_equal(mpb_logging_queue_start(queue, NULL, 0), 0);
    mpb_queueing_client *client = mpb_queueing_client_new(queue);
    mpb_tag tag = {"origin", "client"};
    mpb_pending_run *run = mpb_queueing_client_create_run(client, "0", "queued-run", 0, &tag, 1);
    char names[101][16];
    mpb_param params[101];
    for (int i = 0; i < 101; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i);
        params[i] = (mpb_param){names[i], "v"};
    }
    mpb_metric *metrics = mpb_calloc(1001, sizeof *metrics);
    for (int i = 0; i < 1001; i++) {
        metrics[i] = (mpb_metric){"loss", (double)i, 0, i};
    }
    mpb_queueing_client_log_params(client, run, params, 101);
    mpb_queueing_client_log_metrics(client, run, metrics, 1001);
    mpb_queueing_client_set_terminated(client, run, MPB_RUN_FINISHED, 0);
    char err[1024] = "";
    assert_int_equal(mpb_queueing_client_flush_sync(client, HANG_MS, err, sizeof err), 0);

    const char *run_id = mpb_pending_run_id(run);
    assert_non_null(run_id);
    mpb_run *stored = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &stored, err, sizeof err), 0);
    assert_int_equal(stored->n_params, 101);
    assert_int_equal(stored->info.status, MPB_RUN_FINISHED);
    assert_string_equal(stored->info.run_name, "queued-run");
    assert_true(has_tag(stored, "origin", "client"));
    assert_metric_file(f->root, run_id, "loss", 1001);
    mpb_run_free(&stored);
    free(metrics);
    mpb_queueing_client_destroy(&client);
    mpb_logging_queue_destroy(&queue);
}

int
main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--child-returns") == 0) {
        return child_logs_and_returns(argv[2], argv[3]);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(four_threads_end_on_disk_in_order, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(child_returning_from_main_leaves_everything_on_disk, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(read_only_store_fails_every_handle, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(queueing_client_writes_a_run, setup, th_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
