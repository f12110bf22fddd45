/*
 * `mpb run` ended early, as users end it: the reader of its output goes
 * away (`| head -1`), SIGTERM or Ctrl-C comes, twice if they are in a
 * hurry. Real processes and pipes; afterwards there must be no ipc file
 * in its runtime folder, no worker left behind, and the tracking run must
 * say KILLED; every item it read is answered, in order.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool_helpers.h"

#include "mpbatch/store.h"

extern char **environ;

typedef struct running {
    char dir[64];
    pid_t pid;
    int in;  /* its standard input, ours to write */
    int out; /* its standard output, ours to read */
    char errors[128];
} running;

static void
start(running *r, const char *servlet_yaml)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/mpb-signals-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    char *config = mpb_asprintf("%s/p.yaml", r->dir);
    FILE *f = fopen(config, "w");
    fprintf(f, "%stracking:\n  uri: file:%s/mlruns\n  experiment: signals\n", servlet_yaml, r->dir);
    fclose(f);
    char *runtime = mpb_asprintf("%s/runtime", r->dir);
    assert_int_equal(mkdir(runtime, 0700), 0);
    setenv("MPB_RUNTIME_DIR", runtime, 1); /* where its ipc files go */
    snprintf(r->errors, sizeof r->errors, "%s/err.txt", r->dir);
    int in[2];
    int out[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, r->errors, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    char *exe = tool_path("mpb");
    char *argv[] = {exe, "run", "--config", config, NULL};
    assert_int_equal(posix_spawn(&r->pid, exe, &actions, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    unsetenv("MPB_RUNTIME_DIR");
    close(in[0]);
    close(out[1]);
    r->in = in[1];
    r->out = out[0];
    free(exe);
    free(runtime);
    free(config);
}

static void
write_lines(running *r, int from, int to)
{
    char line[32];
    for (int i = from; i < to; i++) {
        int n = snprintf(line, sizeof line, "%d\n", i);
        assert_int_equal(write(r->in, line, (size_t)n), n);
    }
}

/* Reads output up to one more line than *have, into buf (appending). */
static size_t
read_lines(running *r, char *buf, size_t cap, size_t *len, size_t want_lines)
{
    size_t lines = 0;
    for (size_t i = 0; i < *len; i++) {
        lines += buf[i] == '\n';
    }
    while (lines < want_lines) {
        ssize_t got = read(r->out, buf + *len, cap - *len - 1);
        if (got <= 0) {
            break;
        }
        for (ssize_t i = 0; i < got; i++) {
            lines += buf[*len + (size_t)i] == '\n';
        }
        *len += (size_t)got;
    }
    buf[*len] = '\0';
    return lines;
}

static int
wait_exit(running *r, int timeout_ms)
{
    int status;
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            return status;
        }
        usleep(10000);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &status, 0);
    fail_msg("mpb run did not exit within %d ms", timeout_ms);
    return status;
}

/* Processes started with --parent-pid=pid still alive. */
static int
workers_of(pid_t pid)
{
    char needle[64];
    int n_needle = snprintf(needle, sizeof needle, "--parent-pid=%d", (int)pid);
    DIR *proc = opendir("/proc");
    struct dirent *e;
    int found = 0;
    while ((e = readdir(proc)) != NULL) {
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        char cmd[4096];
        size_t len = fread(cmd, 1, sizeof cmd, f);
        fclose(f);
        for (size_t i = 0; i + (size_t)n_needle <= len; i++) {
            if (memcmp(cmd + i, needle, (size_t)n_needle) == 0) {
                char stat_path[300];
                snprintf(stat_path, sizeof stat_path, "/proc/%s/stat", e->d_name);
                FILE *s = fopen(stat_path, "r");
                char state = 'Z';
                if (s != NULL) {
                    if (fscanf(s, "%*d (%*[^)]) %c", &state) != 1) {
                        state = 'Z';
                    }
                    fclose(s);
                }
                found += state != 'Z' && state != 'X';
                break;
            }
        }
    }
    closedir(proc);
    return found;
}

static int
workers_gone(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (workers_of(pid) == 0) {
            return 1;
        }
        usleep(20000);
    }
    return 0;
}

static int
runtime_files(const running *r)
{
    char path[128];
    snprintf(path, sizeof path, "%s/runtime", r->dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* The run named on stderr ("tracked as run ID (STATUS)") has status. */
static void
assert_run_status(const running *r, const char *errors, mpb_run_status status)
{
    const char *at = strstr(errors, "tracked as run ");
    if (at == NULL) {
        fail_msg("no tracked run in: %s", errors);
    }
    char run_id[33];
    memcpy(run_id, at + strlen("tracked as run "), 32);
    run_id[32] = '\0';
    char *uri = mpb_asprintf("file:%s/mlruns", r->dir);
    mpb_store *store = NULL;
    char err[256];
    assert_int_equal(mpb_store_open(uri, &store, err, sizeof err), 0);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(store, run_id, &run, err, sizeof err), 0);
    assert_int_equal(run->info.status, status);
    mpb_run_free(&run);
    mpb_store_destroy(&store);
    free(uri);
}

/* The answers are "0", "1", ... in order, as many as mpb run says it answered. */
static void
assert_outputs_in_order(const char *out, const char *errors)
{
    unsigned long long answered = 0;
    int found = 0;
    for (const char *at = strstr(errors, "mpb run: "); at != NULL && !found;
         at = strstr(at + 1, "mpb run: ")) {
        found = sscanf(at, "mpb run: %llu items in", &answered) == 1;
    }
    assert_true(found); /* the summary line */
    unsigned long long line = 0;
    for (const char *p = out; *p; line++) {
        char expect[32];
        int n = snprintf(expect, sizeof expect, "\"%llu\"\n", line);
        if (strncmp(p, expect, (size_t)n) != 0) {
            fail_msg("output line %llu is not %s", line, expect);
        }
        p += n;
    }
    assert_int_equal(line, answered);
    assert_true(answered > 0);
}

/* It exited with status, said needle, left no ipc file and no worker, and
 * its tracking run says KILLED. Returns its standard error (caller frees). */
static char *
assert_ended_cleanly(running *r, int status, int expected_exit, const char *needle)
{
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), expected_exit);
    char *errors = slurp(r->errors);
    assert_non_null(strstr(errors, needle));
    assert_run_status(r, errors, MPB_RUN_KILLED);
    assert_int_equal(runtime_files(r), 0);
    assert_true(workers_gone(r->pid, 3000));
    return errors;
}

static void
finish(running *r)
{
    close(r->in);
    close(r->out);
    char *rm = mpb_asprintf("rm -rf %s", r->dir);
    assert_int_equal(system(rm), 0);
    free(rm);
}

static const char *const passthrough = "servlet:\n  plugin: passthrough\n  workers: 2\n";

static void
a_closed_output_stops_it_cleanly(void **state)
{
    (void)state;
    running r;
    start(&r, passthrough);
    write_lines(&r, 0, 2000);
    char buf[256];
    size_t len = 0;
    read_lines(&r, buf, sizeof buf, &len, 1);
    close(r.out); /* as `head -1` does */
    r.out = open("/dev/null", O_RDONLY);
    write_lines(&r, 2000, 4000);
    char *errors = assert_ended_cleanly(&r, wait_exit(&r, 20000), 128 + SIGPIPE, "output closed");
    free(errors);
    finish(&r);
}

static void
sigterm_answers_what_it_read_then_stops(void **state)
{
    (void)state;
    running r;
    start(&r, passthrough);
    write_lines(&r, 0, 500); /* the input stays open: only the signal ends it */
    static char out[1 << 20];
    size_t len = 0;
    read_lines(&r, out, sizeof out, &len, 500);
    write_lines(&r, 500, 700);
    kill(r.pid, SIGTERM);
    read_lines(&r, out, sizeof out, &len, (size_t)-1); /* to EOF */
    char *errors = assert_ended_cleanly(&r, wait_exit(&r, 20000), 128 + SIGTERM, "stopped by");
    assert_outputs_in_order(out, errors);
    free(errors);
    finish(&r);
}

static void
a_second_sigint_exits_at_once(void **state)
{
    (void)state;
    running r;
    /* each batch takes 3 s: items stay in flight */
    start(&r, "servlet:\n  plugin: sleep\n  workers: 1\n  batch_size: 4\n"
              "  options:\n    batch_cost_us: 3000000\n");
    write_lines(&r, 0, 8);
    usleep(500000); /* they went in */
    kill(r.pid, SIGINT);
    usleep(100000);
    int64_t t0 = mpb_now_ns();
    kill(r.pid, SIGINT);
    int status = wait_exit(&r, 20000);
    assert_true((mpb_now_ns() - t0) / 1000000 < 2000); /* not after the batch */
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 128 + SIGINT);
    assert_int_equal(runtime_files(&r), 0);
    assert_true(workers_gone(r.pid, 3000)); /* killed by the kernel with it */
    finish(&r);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_closed_output_stops_it_cleanly),
        cmocka_unit_test(sigterm_answers_what_it_read_then_stops),
        cmocka_unit_test(a_second_sigint_exits_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
