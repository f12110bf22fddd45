/*
 * CURVE on tcp:// endpoints, with real worker processes and real keys
 * (mpb keygen's files): a worker whose certificate is in the clients
 * folder is served, one whose is not is refused and says so, a plain
 * worker never gets in, the allow list keeps other addresses out, the
 * coordinator's own workers use its key, clients of the ZeroMQ front end
 * need a key too, and the application's SIGINT handler survives czmq.
 * Joining workers take the servlet's settings (batch size) and a worker
 * of another plugin is refused.
 */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "support.h"

#include "core/curve.h"
#include "core/os/process.h"
#include "mpbatch/client.h"
#include "mpbatch/frontend.h"

typedef struct keys {
    char dir[64];
    char clients[96];
    char path[8][128];
} keys;

/* mpb keygen's pair NAME in dir; NAME.pub copied into the clients folder
 * when allowed. */
static void
make_key(keys *k, const char *name, int allowed)
{
    char base[128];
    char err[256];
    snprintf(base, sizeof base, "%s/%s", k->dir, name);
    assert_int_equal(mpb__curve_keygen(base, err, sizeof err), 0);
    if (allowed) {
        char *cmd = mpb_asprintf("cp %s.pub %s/", base, k->clients);
        assert_int_equal(system(cmd), 0);
        free(cmd);
    }
}

static void
keys_setup(keys *k)
{
    snprintf(k->dir, sizeof k->dir, "/tmp/mpb-curve-test-%d", (int)getpid());
    snprintf(k->clients, sizeof k->clients, "%s/clients", k->dir);
    assert_int_equal(mkdir(k->dir, 0700), 0);
    assert_int_equal(mkdir(k->clients, 0700), 0);
    make_key(k, "server", 0);
    make_key(k, "good", 1);
    make_key(k, "stranger", 0);
}

static void
keys_teardown(keys *k)
{
    char *cmd = mpb_asprintf("rm -rf %s", k->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static const char *
key_file(keys *k, int slot, const char *name, const char *ext)
{
    snprintf(k->path[slot], sizeof k->path[slot], "%s/%s.%s", k->dir, name, ext);
    return k->path[slot];
}

/* A loopback endpoint with a port nobody holds right now. */
static void
free_tcp_endpoint(char *out, size_t len)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    size_t size = len;
    assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, out, &size), 0);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static mpb_server *
curve_server(keys *k, const test_pool *tp, const char *allow)
{
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.curve.secret_file = key_file(k, 0, "server", "key");
    opts.curve.clients_dir = k->clients;
    opts.curve.allow = allow;
    opts.on_batch = tp->on_batch;
    opts.on_batch_ctx = tp->on_batch_ctx;
    mpb_servlet *root = test_pool_servlet(tp);
    return test_server_over(&root, &opts);
}

/* Keys, and a CURVE server whose passthrough pool has no workers of its
 * own, only those that join at endpoint (a free loopback port). */
static mpb_server *
joined_only_server(keys *k, char endpoint[64], const char *allow)
{
    keys_setup(k);
    free_tcp_endpoint(endpoint, 64);
    test_pool tp = {.kind = "process", .plugin = "passthrough", .joined_only = 1, .bind = endpoint};
    return curve_server(k, &tp, allow);
}

/* mpb-worker joining endpoint with the key pair `who` (NULL: no CURVE),
 * with stderr to err_path; extra: one more flag or NULL. */
static pid_t
spawn_worker(keys *k, const char *endpoint, const char *who, const char *extra,
             const char *err_path)
{
    char *dir = mpb__executable_dir();
    char *cmd = mpb_asprintf(
        "exec %s/../bin/mpb-worker --connect=%s --parent-pid=%d --coordinator-timeout-ms=3000 "
        "%s%s%s%s%s %s 2>%s",
        dir, endpoint, (int)getpid(), who ? "--curve-server-key=" : "",
        who ? key_file(k, 1, "server", "pub") : "", who ? " --curve-key=" : "",
        who ? key_file(k, 2, who, "key") : "", "", extra ? extra : "", err_path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid;
    int pidfd;
    char err[256];
    assert_int_equal(mpb__spawn("/bin/sh", argv, &pid, &pidfd, err, sizeof err), 0);
    if (pidfd >= 0) {
        close(pidfd);
    }
    free(cmd);
    free(dir);
    return pid;
}

static int
exit_status(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void
wait_for_workers(mpb_server *server, size_t n)
{
    for (int i = 0; i < 500 && mpb_server_workers(server, NULL, 0) < n; i++) {
        usleep(10000);
    }
    assert_int_equal(mpb_server_workers(server, NULL, 0), n);
}

static void
assert_file_mentions(const char *path, const char *text)
{
    char buf[4096] = "";
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    if (strstr(buf, text) == NULL) {
        fail_msg("%s does not mention '%s': %s", path, text, buf);
    }
}

static void
call_ok(mpb_server *server, const char *text)
{
    mpb_result *out = NULL;
    assert_int_equal(mpb_server_call(server, text, strlen(text), 5000, &out), 0);
    size_t len;
    const void *value = mpb_result_value(out, &len);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(value, text, len);
    mpb_result_destroy(&out);
}

static void
only_known_keys_join(void **state)
{
    (void)state;
    keys k;
    char endpoint[64];
    mpb_server *server = joined_only_server(&k, endpoint, NULL);
    char log[3][160];
    for (int i = 0; i < 3; i++) {
        snprintf(log[i], sizeof log[i], "%s/worker-%d.log", k.dir, i);
    }

    /* a key the folder does not hold: refused, and the worker says why */
    pid_t stranger = spawn_worker(&k, endpoint, "stranger", NULL, log[0]);
    assert_int_equal(exit_status(stranger), 1);
    assert_file_mentions(log[0], "refused this key");
    /* no CURVE at all: the handshake never completes, no settings come */
    pid_t plain = spawn_worker(&k, endpoint, NULL, NULL, log[1]);
    assert_int_equal(exit_status(plain), 1);
    assert_file_mentions(log[1], "no coordinator answered");
    assert_int_equal(mpb_server_workers(server, NULL, 0), 0);

    /* the known key: served */
    pid_t good = spawn_worker(&k, endpoint, "good", NULL, log[2]);
    wait_for_workers(server, 1);
    call_ok(server, "over curve");
    mpb_server_destroy(&server);
    assert_int_equal(exit_status(good), 0); /* left on SHUTDOWN */
    keys_teardown(&k);
}

static void
allow_list_keeps_other_addresses_out(void **state)
{
    (void)state;
    keys k;
    char endpoint[64];
    mpb_server *server = joined_only_server(&k, endpoint, "127.0.0.2, 10.9.9.9");
    char log[160];
    snprintf(log, sizeof log, "%s/worker.log", k.dir);
    pid_t good = spawn_worker(&k, endpoint, "good", NULL, log); /* from 127.0.0.1 */
    assert_int_equal(exit_status(good), 1);
    assert_file_mentions(log, "refused this key");
    assert_int_equal(mpb_server_workers(server, NULL, 0), 0);
    mpb_server_destroy(&server);
    keys_teardown(&k);
}

/* A thread pool bound on tcp:// connects its own workers through the
 * socket: they use the coordinator's key, which its ZAP handler knows. */
static void
own_workers_use_the_coordinators_key(void **state)
{
    (void)state;
    keys k;
    keys_setup(&k);
    char endpoint[64];
    free_tcp_endpoint(endpoint, sizeof endpoint);
    test_pool tp = {.kind = "thread", .plugin = "passthrough", .workers = 2, .bind = endpoint};
    /* the allow list names another host: the coordinator's own key gets in anyway */
    mpb_server *server = curve_server(&k, &tp, "10.9.9.9");
    assert_int_equal(mpb_server_workers(server, NULL, 0), 2);
    call_ok(server, "own");
    mpb_server_destroy(&server);
    keys_teardown(&k);
}

/* A stranger knocking on a pool's tcp socket between stop and destroy
 * (the socket is still open, the dispatcher gone) is kept out, not let in
 * by a context without a ZAP handler. */
static void
a_stopped_server_still_refuses_strangers(void **state)
{
    (void)state;
    keys k;
    char endpoint[64];
    mpb_server *server = joined_only_server(&k, endpoint, NULL);
    mpb_server_stop(server);
    void *ctx = zmq_ctx_new();
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    char err[512];
    int rc = mpb__curve_connect(ctx, dealer, endpoint, key_file(&k, 1, "server", "pub"),
                                key_file(&k, 2, "stranger", "key"), 700, NULL, err, sizeof err);
    assert_int_not_equal(rc, 0); /* no handshake: refused, or never answered */
    zmq_close(dealer);
    zmq_ctx_term(ctx);
    mpb_server_destroy(&server);
    keys_teardown(&k);
}

static void
front_end_clients_need_a_known_key(void **state)
{
    (void)state;
    keys k;
    keys_setup(&k);
    test_pool tp = {.kind = "thread", .plugin = "passthrough"};
    mpb_server *server = curve_server(&k, &tp, NULL);
    char bound[128];
    char err[512];
    assert_int_equal(mpb_server_serve_zmq(server, "tcp://127.0.0.1:*", NULL, bound, sizeof bound,
                                          err, sizeof err),
                     0);
    mpb_client *client = mpb_client_new();
    assert_int_equal(mpb_client_set_curve(client, key_file(&k, 1, "server", "pub"),
                                          key_file(&k, 2, "good", "key"), err, sizeof err),
                     0);
    assert_int_equal(mpb_client_connect(client, bound, err, sizeof err), 0);
    mpb_result *out = NULL;
    assert_int_equal(mpb_client_call(client, NULL, "hi", 2, 5000, &out), 0);
    mpb_result_destroy(&out);
    mpb_client_destroy(&client);

    const char *who[] = {"stranger", NULL};
    for (int i = 0; i < 2; i++) {
        client = mpb_client_new();
        if (who[i] != NULL) {
            assert_int_equal(mpb_client_set_curve(client, key_file(&k, 1, "server", "pub"),
                                                  key_file(&k, 2, who[i], "key"), err, sizeof err),
                             0);
        }
        assert_int_equal(mpb_client_connect(client, bound, err, sizeof err), 0);
        assert_int_equal(mpb_client_call(client, NULL, "hi", 2, 700, &out), MPB_ETIMEDOUT);
        mpb_result_destroy(&out);
        mpb_client_destroy(&client);
    }
    mpb_server_stats stats;
    mpb_server_stats_get(server, &stats);
    assert_int_equal(stats.completed, 1); /* only the known client's call got in */
    mpb_server_destroy(&server);
    keys_teardown(&k);
}

static volatile sig_atomic_t app_signals;

static void
app_handler(int sig)
{
    (void)sig;
    app_signals++;
}

static void
application_signal_handler_survives(void **state)
{
    (void)state;
    keys k;
    keys_setup(&k);
    struct sigaction mine = {.sa_handler = app_handler};
    struct sigaction old;
    sigemptyset(&mine.sa_mask);
    assert_int_equal(sigaction(SIGINT, &mine, &old), 0);
    test_pool tp = {.kind = "thread", .plugin = "passthrough"};
    mpb_server *server = curve_server(&k, &tp, NULL);
    struct sigaction now;
    assert_int_equal(sigaction(SIGINT, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, app_handler);
    assert_int_equal(sigaction(SIGTERM, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, SIG_DFL);
    raise(SIGINT);
    assert_int_equal(app_signals, 1);
    mpb_server_destroy(&server);
    assert_int_equal(sigaction(SIGINT, NULL, &now), 0);
    assert_ptr_equal(now.sa_handler, app_handler);
    sigaction(SIGINT, &old, NULL);
    keys_teardown(&k);
}

static void
bad_key_files_fail_start_with_the_reason(void **state)
{
    (void)state;
    keys k;
    keys_setup(&k);
    const char *secret = key_file(&k, 3, "server", "key");
    assert_int_equal(chmod(secret, 0644), 0);
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.curve.secret_file = secret;
    opts.curve.clients_dir = k.clients;
    test_pool tp = {.kind = "thread", .plugin = "passthrough"};
    mpb_servlet *root = test_pool_servlet(&tp);
    mpb_server *server = mpb_server_new(&root, &opts);
    char err[512] = "";
    assert_int_equal(mpb_server_start(server, err, sizeof err), MPB_EACCES);
    assert_non_null(strstr(err, "chmod 600"));
    mpb_server_destroy(&server);

    opts.curve.secret_file = key_file(&k, 3, "server", "pub"); /* no secret in it */
    root = test_pool_servlet(&tp);
    server = mpb_server_new(&root, &opts);
    assert_int_equal(mpb_server_start(server, err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "no secret key"));
    mpb_server_destroy(&server);

    opts.curve.secret_file = ""; /* an empty secret is an error, not "no CURVE" */
    root = test_pool_servlet(&tp);
    server = mpb_server_new(&root, &opts);
    assert_int_equal(mpb_server_start(server, err, sizeof err), MPB_EINVAL);
    assert_non_null(strstr(err, "secret is empty"));
    mpb_server_destroy(&server);
    keys_teardown(&k);
}

static void
note_largest(void *ctx, const mpb_batch_telemetry *t)
{
    uint32_t *largest = ctx;
    if (t->size > *largest) {
        *largest = t->size;
    }
}

/* Two workers started by hand with no settings of their own serve in the
 * servlet's batches of 16 (their own default is 64). */
static void
joined_workers_take_the_servlets_settings(void **state)
{
    (void)state;
    keys k;
    keys_setup(&k);
    char endpoint[64];
    free_tcp_endpoint(endpoint, sizeof endpoint);
    uint32_t largest = 0;
    test_pool tp = {.kind = "process",
                    .plugin = "passthrough",
                    .joined_only = 1,
                    .bind = endpoint,
                    .batch_size = 16,
                    .batch_wait_us = 2000,
                    .on_batch = note_largest,
                    .on_batch_ctx = &largest};
    mpb_server *server = curve_server(&k, &tp, NULL);
    char log[3][160];
    pid_t pids[2];
    for (int i = 0; i < 3; i++) {
        snprintf(log[i], sizeof log[i], "%s/worker-%d.log", k.dir, i);
    }
    for (int i = 0; i < 2; i++) {
        pids[i] = spawn_worker(&k, endpoint, "good", NULL, log[i]);
    }
    wait_for_workers(server, 2);
    mpb_worker_status workers[2];
    assert_int_equal(mpb_server_workers(server, workers, 2), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(workers[i].batch_size, 16);
        assert_int_equal(workers[i].batch_wait_us, 2000);
    }
    index_stream st = {.n = 20000};
    assert_int_equal(mpb_server_stream(server, index_next, index_output, &st, NULL), 0);
    assert_int_equal(st.outputs, st.n);
    assert_int_equal(largest, 16); /* full batches, never the workers' own 64 */

    /* another plugin is refused, with the reason */
    pid_t other = spawn_worker(&k, endpoint, "good", "--plugin=fail", log[2]);
    assert_int_equal(exit_status(other), 1);
    assert_file_mentions(log[2], "runs plugin passthrough");
    mpb_server_destroy(&server);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(exit_status(pids[i]), 0);
    }
    keys_teardown(&k);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_known_keys_join),
        cmocka_unit_test(allow_list_keeps_other_addresses_out),
        cmocka_unit_test(own_workers_use_the_coordinators_key),
        cmocka_unit_test(a_stopped_server_still_refuses_strangers),
        cmocka_unit_test(front_end_clients_need_a_known_key),
        cmocka_unit_test(application_signal_handler_survives),
        cmocka_unit_test(bad_key_files_fail_start_with_the_reason),
        cmocka_unit_test(joined_workers_take_the_servlets_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
