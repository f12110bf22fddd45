/*
 * `mpb serve` and `mpb call` end to end: real processes, a config file,
 * lines in and JSON lines out in order; SIGTERM answers everything in
 * flight and exits 0; a second SIGINT exits at once.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool_helpers.h"

#include "mpbatch/client.h"

typedef struct serve_proc {
    char dir[64];
    char config[128];
    char endpoint[160];
    char log[128];
    pid_t pid;
} serve_proc;

/* The server a test started, killed by teardown if the test failed. */
static pid_t live_server;

static int
kill_live_server(void **state)
{
    (void)state;
    if (live_server > 0) {
        kill(live_server, SIGKILL);
        waitpid(live_server, NULL, 0);
        live_server = 0;
    }
    return 0;
}

/* Starts mpb serve over config_text and waits until it is ready. */
static void
serve_start(serve_proc *p, const char *config_text)
{
    snprintf(p->dir, sizeof p->dir, "/tmp/mpb-serve-test-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->config, sizeof p->config, "%s/p.yaml", p->dir);
    snprintf(p->endpoint, sizeof p->endpoint, "ipc://%s/serve.ipc", p->dir);
    snprintf(p->log, sizeof p->log, "%s/serve.log", p->dir);
    FILE *f = fopen(p->config, "w");
    fputs(config_text, f);
    fclose(f);
    char *mpb = tool_path("mpb");
    p->pid = fork();
    if (p->pid == 0) {
        setpgid(0, 0);                    /* a process group, as a shell gives a foreground job */
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        freopen(p->log, "w", stderr);
        execl(mpb, mpb, "serve", "--config", p->config, "--bind", p->endpoint, (char *)NULL);
        _exit(127);
    }
    free(mpb);
    live_server = p->pid;
    mpb_client *client = mpb_client_new();
    assert_int_equal(mpb_client_connect(client, p->endpoint, NULL, 0), 0);
    mpb_health health = {0};
    for (int i = 0; i < 100 && !health.ready; i++) {
        mpb_client_health(client, 100, &health);
    }
    mpb_client_destroy(&client);
    if (!health.ready) {
        kill(p->pid, SIGKILL);
        fail_msg("mpb serve did not become ready");
    }
}

static int
serve_wait(serve_proc *p, int timeout_ms)
{
    int status = 0;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            live_server = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10 * 1000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    live_server = 0;
    return -1;
}

static void
serve_clean(serve_proc *p)
{
    char *cmd = mpb_asprintf("rm -rf %s", p->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static char *
run_call(const serve_proc *p, const char *input, const char *flags, int *status)
{
    char *mpb = tool_path("mpb");
    char out[160];
    snprintf(out, sizeof out, "%s/out.jsonl", p->dir);
    char *cmd = mpb_asprintf("printf '%s' | %s call --connect %s %s > %s 2>/dev/null", input, mpb,
                             p->endpoint, flags, out);
    int rc = system(cmd);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    free(cmd);
    free(mpb);
    FILE *f = fopen(out, "r");
    char *text = mpb_calloc(1, 1 << 16);
    size_t len = fread(text, 1, (1 << 16) - 1, f);
    text[len] = '\0';
    fclose(f);
    return text;
}

static void
lines_in_results_out_in_order(void **state)
{
    (void)state;
    serve_proc p;
    serve_start(&p, "servlet:\n"
                    "  kind: ensemble\n"
                    "  name: models\n"
                    "  errors: in_place\n"
                    "  members:\n"
                    "    - {plugin: passthrough, name: same, workers: 2}\n"
                    "    - {plugin: fail, name: picky, kind: thread,\n"
                    "       options: {fail_prefix: bad}}\n");
    int status;
    char *out = run_call(&p, "one\\nbad two\\nthree\\n", "", &status);
    assert_int_equal(status, 0);
    char *save = NULL;
    const char *lines[3] = {strtok_r(out, "\n", &save), strtok_r(NULL, "\n", &save),
                            strtok_r(NULL, "\n", &save)};
    assert_string_equal(lines[0], "[\"one\", \"one\"]");
    assert_non_null(strstr(lines[1], "[\"bad two\", {\"error\": {\"type\": \"ValueError\""));
    assert_non_null(strstr(lines[1], "\"servlet\": \"models/picky\", \"worker\": \"picky-0\""));
    assert_string_equal(lines[2], "[\"three\", \"three\"]");
    free(out);
    /* mpb call as a streaming filter: each result before the next line */
    char *mpb = tool_path("mpb");
    char *argv[] = {mpb, "call", "--connect", p.endpoint, "--target", "models/same", NULL};
    int in;
    int from;
    pid_t call = spawn_with_pipes(argv, &in, &from);
    char buf[256];
    assert_int_equal(write(in, "first\n", 6), 6);
    assert_true(read_within(from, buf, sizeof buf, 10000) > 0);
    assert_string_equal(buf, "\"first\"\n");
    assert_int_equal(write(in, "second\n", 7), 7);
    close(in);
    assert_true(read_within(from, buf, sizeof buf, 10000) > 0);
    assert_string_equal(buf, "\"second\"\n");
    waitpid(call, &status, 0);
    assert_int_equal(WEXITSTATUS(status), 0);
    close(from);
    free(mpb);
    out = run_call(&p, "x\\n", "--target models/same", &status);
    assert_string_equal(out, "\"x\"\n");
    free(out);
    out = run_call(&p, "", "--health", &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "\"ready\": true, \"workers\": 3"));
    free(out);
    kill(p.pid, SIGTERM);
    assert_int_equal(serve_wait(&p, 10000), 0);
    serve_clean(&p);
}

typedef struct counter {
    uint64_t outputs;
    uint64_t errors;
} counter;

/* signal to the server (or with group, to its process group, as a
 * terminal's Ctrl-C does) while 40 calls are in flight: every call is
 * answered with its value, and the server exits 0. */
static void
drain_on(int sig, int group)
{
    serve_proc p;
    serve_start(&p, "servlet:\n"
                    "  plugin: sleep\n"
                    "  batch_size: 4\n"
                    "  options: {batch_cost_us: 50000, item_cost_us: 0}\n");
    mpb_client *client = mpb_client_new();
    assert_int_equal(mpb_client_connect(client, p.endpoint, NULL, 0), 0);
    /* 40 items at 50 ms per batch of 4: half a second of work in flight */
    index_stream calls = {.n = 40};
    mpb_client_stream_options opts = {.return_exceptions = 1, .window = 40};
    pid_t pid = group ? -p.pid : p.pid;
    /* the stream submits everything at once; the signal comes while it runs */
    if (fork() == 0) {
        usleep(150 * 1000);
        kill(pid, sig);
        _exit(0);
    }
    assert_int_equal(mpb_client_stream(client, index_next, index_output, &calls, &opts), 0);
    assert_int_equal(calls.outputs, 40);
    assert_int_equal(calls.errors, 0);
    assert_int_equal(calls.wrong_value, 0);
    mpb_client_destroy(&client);
    assert_int_equal(serve_wait(&p, 10000), 0);
    wait(NULL);
    serve_clean(&p);
}

static void
sigterm_answers_everything_in_flight(void **state)
{
    (void)state;
    drain_on(SIGTERM, 0);
}

static void
ctrl_c_on_the_group_answers_everything_in_flight(void **state)
{
    (void)state;
    drain_on(SIGINT, 1);
}

static void
a_second_sigint_exits_at_once(void **state)
{
    (void)state;
    serve_proc p;
    serve_start(&p, "servlet:\n"
                    "  plugin: sleep\n"
                    "  batch_size: 1\n"
                    "  options: {batch_cost_us: 5000000}\n"
                    "server:\n"
                    "  stop_timeout_ms: 30000\n");
    mpb_client *client = mpb_client_new();
    assert_int_equal(mpb_client_connect(client, p.endpoint, NULL, 0), 0);
    mpb_result *r = NULL;
    /* a call that would take 5 s keeps the server draining */
    mpb_client_call(client, NULL, "slow", 4, 200, &r);
    mpb_result_destroy(&r);
    kill(p.pid, SIGINT);
    usleep(100 * 1000);
    kill(p.pid, SIGINT);
    int64_t start = mpb_now_ns();
    assert_int_equal(serve_wait(&p, 3000), 130);
    assert_true(mpb_now_ns() - start < 2000 * 1000000LL);
    mpb_client_destroy(&client);
    serve_clean(&p);
}

/* While a slow worker starts, nothing is accepted yet: a signal ends
 * mpb serve at once (128 + the signal). */
static void
a_signal_while_starting_exits_at_once(void **state)
{
    (void)state;
    serve_proc p;
    snprintf(p.dir, sizeof p.dir, "/tmp/mpb-serve-test-XXXXXX");
    assert_non_null(mkdtemp(p.dir));
    char script[128];
    snprintf(script, sizeof script, "%s/slow-worker.sh", p.dir);
    char *worker = tool_path("mpb-worker");
    FILE *f = fopen(script, "w");
    fprintf(f, "#!/bin/sh\nsleep 20\nexec %s \"$@\"\n", worker);
    fclose(f);
    chmod(script, 0755);
    free(worker);
    snprintf(p.config, sizeof p.config, "%s/p.yaml", p.dir);
    f = fopen(p.config, "w");
    fprintf(f, "servlet:\n  plugin: passthrough\n  worker_exe: %s\n", script);
    fclose(f);
    snprintf(p.endpoint, sizeof p.endpoint, "ipc://%s/serve.ipc", p.dir);
    char *mpb = tool_path("mpb");
    p.pid = fork();
    if (p.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        freopen("/dev/null", "w", stderr);
        execl(mpb, mpb, "serve", "--config", p.config, "--bind", p.endpoint, (char *)NULL);
        _exit(127);
    }
    free(mpb);
    live_server = p.pid;
    usleep(500 * 1000);
    int64_t start = mpb_now_ns();
    kill(p.pid, SIGTERM);
    /* well before the worker could be ready (20 s), even under sanitizers */
    assert_int_equal(serve_wait(&p, 10000), 128 + SIGTERM);
    assert_true(mpb_now_ns() - start < 10000 * 1000000LL);
    serve_clean(&p);
}

static void
bad_config_exits_2(void **state)
{
    (void)state;
    char *mpb = tool_path("mpb");
    char *cmd = mpb_asprintf("%s serve --config /nonexistent.yaml 2>/dev/null", mpb);
    int rc = system(cmd);
    assert_int_equal(WEXITSTATUS(rc), 2);
    free(cmd);
    cmd = mpb_asprintf("%s serve 2>/dev/null", mpb);
    rc = system(cmd);
    assert_int_equal(WEXITSTATUS(rc), 2);
    free(cmd);
    /* front ends other hosts can reach need --insecure */
    char config[] = "/tmp/mpb-serve-exposed-XXXXXX";
    int fd = mkstemp(config);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "servlet: {plugin: passthrough}\n", 31), 31);
    close(fd);
    const char *exposed[] = {"--bind tcp://0.0.0.0:5555", "--bind ipc:///tmp/x.ipc --http 0.0.0.0:8000",
                             "--bind tcp://192.168.1.1:5555"};
    for (int i = 0; i < 3; i++) {
        cmd = mpb_asprintf("%s serve --config %s %s 2>/dev/null", mpb, config, exposed[i]);
        rc = system(cmd);
        assert_int_equal(WEXITSTATUS(rc), 2);
        free(cmd);
    }
    unlink(config);
    free(mpb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(lines_in_results_out_in_order, kill_live_server),
        cmocka_unit_test_teardown(sigterm_answers_everything_in_flight, kill_live_server),
        cmocka_unit_test_teardown(ctrl_c_on_the_group_answers_everything_in_flight,
                                  kill_live_server),
        cmocka_unit_test_teardown(a_second_sigint_exits_at_once, kill_live_server),
        cmocka_unit_test_teardown(a_signal_while_starting_exits_at_once, kill_live_server),
        cmocka_unit_test_teardown(bad_config_exits_2, kill_live_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
