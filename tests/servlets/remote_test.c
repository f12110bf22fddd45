/*
 * Workers that join by themselves over tcp:// (as on another host): they
 * say READY, get items, and leave on SHUTDOWN like local ones.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#include "core/os/process.h"

typedef struct seen {
    unsigned local;
    unsigned remote;
} seen;

static void
who_batched(void *ctx, const mpb_batch_telemetry *t)
{
    seen *s = ctx;
    if (strncmp(t->worker, "remote", 6) == 0) {
        s->remote += t->size;
    } else {
        s->local += t->size;
    }
}

static pid_t
start_remote_worker(const char *endpoint, const char *name)
{
    char *dir = mpb__executable_dir();
    char *exe = mpb_asprintf("%s/../bin/mpb-worker", dir);
    char *connect = mpb_asprintf("--connect=%s", endpoint);
    char *name_arg = mpb_asprintf("--name=%s", name);
    char *plugin = mpb_asprintf("--plugin=%s/../lib/mpb_passthrough.so", dir);
    char *parent = mpb_asprintf("--parent-pid=%d", (int)getpid()); /* dies with the test */
    char *argv[] = {exe, connect, name_arg, plugin, parent, "--batch-size=16", NULL};
    pid_t pid;
    int pidfd;
    char err[256];
    assert_int_equal(mpb__spawn(exe, argv, &pid, &pidfd, err, sizeof err), 0);
    if (pidfd >= 0) {
        close(pidfd);
    }
    free(parent);
    free(plugin);
    free(name_arg);
    free(connect);
    free(exe);
    free(dir);
    return pid;
}

static void
tcp_endpoint(char *out, size_t len)
{
    snprintf(out, len, "tcp://127.0.0.1:%d", 20000 + (int)(getpid() % 20000));
}

static void
wait_for_workers(mpb_server *server, size_t n)
{
    mpb_worker_status workers[8];
    for (int i = 0; i < 500 && mpb_server_workers(server, workers, 8) < n; i++) {
        usleep(10000);
    }
    assert_int_equal(mpb_server_workers(server, workers, 8), n);
}

static void
remote_worker_joins_and_shares_the_load(void **state)
{
    char endpoint[64];
    tcp_endpoint(endpoint, sizeof endpoint);
    seen s = {0};
    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .workers = 1,
                    .batch_size = 16,
                    .bind = endpoint,
                    .on_batch = who_batched,
                    .on_batch_ctx = &s};
    mpb_server *server = test_server_start(&tp);
    pid_t remote = start_remote_worker(endpoint, "remote-1");
    wait_for_workers(server, 2);
    index_stream st = {.n = 50000};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &st, NULL), 0);
    assert_int_equal(st.outputs, st.n);
    assert_int_equal(st.wrong_value, 0);
    assert_int_equal(s.local + s.remote, st.n);
    assert_true(s.remote > 0);
    assert_true(s.local > 0);
    mpb_server_destroy(&server);
    int status;
    assert_int_equal(waitpid(remote, &status, 0), remote);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* left on SHUTDOWN */
}

static void
pool_without_local_workers_waits_for_one(void **state)
{
    char endpoint[64];
    tcp_endpoint(endpoint, sizeof endpoint);
    test_pool tp = {.kind = "process", .plugin = "passthrough", .joined_only = 1, .bind = endpoint};
    mpb_server *server = test_server_start(&tp);
    assert_int_equal(mpb_server_workers(server, NULL, 0), 0);
    pid_t remote = start_remote_worker(endpoint, "remote-2");
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "late", 4, 20000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
    waitpid(remote, NULL, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(remote_worker_joins_and_shares_the_load),
        cmocka_unit_test(pool_without_local_workers_waits_for_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
