/*
 * The tools' security end to end, with real processes: `mpb keygen`
 * writes a certificate pair (secret 0600) and never overwrites one;
 * `mpb serve` with a curve: section serves `mpb call` and a joined
 * `mpb-worker` that hold known keys, and nobody else; and it refuses
 * endpoints other hosts could reach without authentication.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "tool_helpers.h"

typedef struct sandbox {
    char dir[64];
    char *mpb;
    char *worker;
} sandbox;

static void
sandbox_open(sandbox *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/mpb-security-test-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    s->mpb = tool_path("mpb");
    s->worker = tool_path("mpb-worker");
}

static void
sandbox_close(sandbox *s)
{
    char *cmd = mpb_asprintf("rm -rf %s", s->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(s->mpb);
    free(s->worker);
}

/* Runs `cd dir && fmt...` and returns its exit status. */
static int
run_in(const sandbox *s, const char *command)
{
    char *cmd = mpb_asprintf("cd %s && %s", s->dir, command);
    int rc = shell_status(cmd);
    free(cmd);
    return rc;
}

static mode_t
mode_of(const sandbox *s, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static void
keygen_writes_a_pair_once(void **state)
{
    (void)state;
    sandbox s;
    sandbox_open(&s);
    char *cmd = mpb_asprintf("%s keygen node >/dev/null", s.mpb);
    assert_int_equal(run_in(&s, cmd), 0);
    assert_int_equal(mode_of(&s, "node.key"), 0600);
    assert_int_equal(mode_of(&s, "node.pub") & 0600, 0600);
    char path[128];
    snprintf(path, sizeof path, "%s/node.key", s.dir);
    char *secret = slurp(path);
    snprintf(path, sizeof path, "%s/node.pub", s.dir);
    char *public = slurp(path);
    assert_non_null(strstr(secret, "secret-key"));
    assert_null(strstr(public, "secret-key"));
    /* the same public key in both files */
    const char *pk = strstr(secret, "public-key");
    assert_non_null(pk);
    char *line = mpb_strndup(pk, 54);
    assert_non_null(strstr(public, line));
    free(line);
    /* never overwrites; a name is required */
    char *again = mpb_asprintf("%s keygen node 2>err.txt", s.mpb);
    assert_int_equal(run_in(&s, again), 1);
    snprintf(path, sizeof path, "%s/err.txt", s.dir);
    char *err = slurp(path);
    assert_non_null(strstr(err, "already exists"));
    snprintf(path, sizeof path, "%s/node.key", s.dir);
    char *after = slurp(path);
    assert_string_equal(after, secret); /* untouched */
    char *bare = mpb_asprintf("%s keygen 2>/dev/null", s.mpb);
    assert_int_equal(run_in(&s, bare), 2);
    free(bare);
    free(after);
    free(err);
    free(again);
    free(public);
    free(secret);
    free(cmd);
    sandbox_close(&s);
}

static int
free_port(void)
{
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_ROUTER);
    assert_int_equal(zmq_bind(sock, "tcp://127.0.0.1:*"), 0);
    char last[64];
    size_t size = sizeof last;
    assert_int_equal(zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, last, &size), 0);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return atoi(strrchr(last, ':') + 1);
}

static void
write_file(const sandbox *s, const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* `mpb call` of two lines with key NAME.key (NULL: no CURVE) into out. */
static char *
call_command(const sandbox *s, int port, int timeout_ms, const char *key, const char *out)
{
    char *keys = key != NULL ? mpb_asprintf("--curve-server-key server.pub --curve-key %s.key", key)
                             : mpb_strdup("");
    char *cmd = mpb_asprintf("printf 'a\\nb\\n' | %s call --connect tcp://127.0.0.1:%d "
                             "--timeout-ms %d %s > %s 2>/dev/null",
                             s->mpb, port, timeout_ms, keys, out);
    free(keys);
    return cmd;
}

static void
serve_with_curve_takes_known_keys_only(void **state)
{
    (void)state;
    sandbox s;
    sandbox_open(&s);
    char *keys = mpb_asprintf("mkdir clients && { %s keygen server && %s keygen client && %s "
                              "keygen stranger; } >/dev/null && cp client.pub clients/",
                              s.mpb, s.mpb, s.mpb);
    assert_int_equal(run_in(&s, keys), 0);
    int pool_port = free_port();
    int serve_port = free_port();
    char *config = mpb_asprintf("servlet: {plugin: passthrough, workers: 0, batch_size: 8,\n"
                                "          bind: 'tcp://127.0.0.1:%d'}\n"
                                "curve: {secret: server.key, clients: clients}\n",
                                pool_port);
    write_file(&s, "p.yaml", config);
    pid_t server = fork();
    if (server == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        assert_int_equal(chdir(s.dir), 0);
        char bind[64];
        snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", serve_port);
        if (freopen("serve.log", "w", stderr) == NULL) {
            _exit(126);
        }
        execl(s.mpb, s.mpb, "serve", "--config", "p.yaml", "--bind", bind, (char *)NULL);
        _exit(127);
    }
    pid_t worker = fork();
    if (worker == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        assert_int_equal(chdir(s.dir), 0);
        if (freopen("worker.log", "w", stderr) == NULL) {
            _exit(126);
        }
        char connect[64];
        snprintf(connect, sizeof connect, "--connect=tcp://127.0.0.1:%d", pool_port);
        execl(s.worker, s.worker, connect, "--curve-server-key=server.pub",
              "--curve-key=client.key", (char *)NULL);
        _exit(127);
    }
    /* calls with the known key are answered once the worker is in */
    char *good = call_command(&s, serve_port, 10000, "client", "good.jsonl");
    assert_int_equal(run_in(&s, good), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/good.jsonl", s.dir);
    char *out = slurp(path);
    assert_string_equal(out, "\"a\"\n\"b\"\n");
    free(out);
    /* a key the folder does not hold, and no key at all: no answer */
    char *stranger = call_command(&s, serve_port, 1000, "stranger", "/dev/null");
    assert_int_equal(run_in(&s, stranger), 1);
    char *plain = call_command(&s, serve_port, 1000, NULL, "/dev/null");
    assert_int_equal(run_in(&s, plain), 1);
    kill(server, SIGTERM);
    int status;
    assert_int_equal(waitpid(server, &status, 0), server);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(waitpid(worker, &status, 0), worker); /* left on SHUTDOWN */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    free(plain);
    free(stranger);
    free(good);
    free(config);
    free(keys);
    sandbox_close(&s);
}

/* Refused before anything binds (no test ever binds a non-loopback
 * address): exit 2 with what to do. */
static void
serve_refuses_unauthenticated_exposure(void **state)
{
    (void)state;
    sandbox s;
    sandbox_open(&s);
    write_file(&s, "plain.yaml", "servlet: {plugin: passthrough}\n");
    write_file(&s, "pool.yaml",
               "servlet: {plugin: passthrough, workers: 0, bind: 'tcp://0.0.0.0:5999'}\n");
    write_file(&s, "empty.yaml",
               "servlet: {plugin: passthrough, workers: 0, bind: 'tcp://0.0.0.0:5999'}\n"
               "curve: {secret: ''}\n");
    write_file(&s, "tipc.yaml",
               "servlet: {plugin: passthrough}\n"
               "curve: {secret: x.key, clients: .}\n");
    const struct {
        const char *args;
        const char *says;
    } cases[] = {
        {"--config plain.yaml --bind tcp://0.0.0.0:5999", "curve: section"},
        {"--config pool.yaml --bind ipc://x.ipc", "servlet.bind"},
        {"--config plain.yaml --bind ipc://x.ipc --http 0.0.0.0:8999", "--http-token-file"},
        {"--config plain.yaml --bind ipc://x.ipc --metrics 0.0.0.0:9999", "--metrics"},
        {"--config plain.yaml --bind ipc://x.ipc --http :::8999", "--http-token-file"},
        {"--config plain.yaml --bind ipc://x.ipc --metrics [::]:9999", "--metrics"},
        {"--config plain.yaml --bind tcp://[::ffff:10.0.0.1]:5999", "curve: section"},
        {"--config empty.yaml --bind ipc://x.ipc", "servlet.bind"},
        {"--config tipc.yaml --bind tipc://{5560,0,0}", "--bind"},
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(cases); i++) {
        char *cmd = mpb_asprintf("%s serve %s 2>err.txt", s.mpb, cases[i].args);
        assert_int_equal(run_in(&s, cmd), 2);
        char path[128];
        snprintf(path, sizeof path, "%s/err.txt", s.dir);
        char *err = slurp(path);
        if (strstr(err, cases[i].says) == NULL || strstr(err, "--insecure") == NULL) {
            fail_msg("mpb serve %s: %s", cases[i].args, err);
        }
        free(err);
        free(cmd);
    }
    sandbox_close(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keygen_writes_a_pair_once),
        cmocka_unit_test(serve_with_curve_takes_known_keys_only),
        cmocka_unit_test(serve_refuses_unauthenticated_exposure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
