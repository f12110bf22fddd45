/*
 * Loading plugins (core/plugin.c): the search directories in lookup order,
 * the find-once cache, and a plugin built for worker ABI 1 (tests/core/
 * abi1_plugin.c) that loads with its newer fields zero and runs in a
 * thread servlet with its options unchecked.
 */
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "support.h"

#include "core/os/process.h"
#include "core/options.h"
#include "core/plugin.h"

#ifndef MPB_TEST_PLUGIN_DIR
#error "MPB_TEST_PLUGIN_DIR: where tests/core/CMakeLists.txt puts mpb_abi1.so"
#endif
#define ABI1_PLUGIN MPB_TEST_PLUGIN_DIR "/mpb_abi1.so"

static size_t
index_of(char **dirs, const char *dir)
{
    for (size_t i = 0; dirs[i] != NULL; i++) {
        if (strcmp(dirs[i], dir) == 0) {
            return i;
        }
    }
    fail_msg("%s is not on the search path", dir);
    return 0;
}

static void
search_dirs_are_listed_in_lookup_order_without_repeats(void **state)
{
    char *plugin_dir = realpath(MPB_TEST_PLUGIN_DIR, NULL);
    assert_non_null(plugin_dir);
    char *env = mpb_asprintf("%s:/no/such/mpb-dir::%s/", plugin_dir, plugin_dir);
    setenv("MPB_PLUGIN_PATH", env, 1);
    size_t n = 0;
    char **dirs = mpb__plugin_search_dirs(&n);
    assert_true(n >= 3);
    assert_null(dirs[n]);
    assert_string_equal(dirs[0], plugin_dir);
    assert_string_equal(dirs[1], "/no/such/mpb-dir");
    /* Next to this executable (build/tests/../lib), after the environment. */
    char *exe_dir = mpb__executable_dir();
    char *lib = mpb_asprintf("%s/../lib", exe_dir);
    char *lib_dir = realpath(lib, NULL);
    assert_non_null(lib_dir);
    assert_true(index_of(dirs, lib_dir) > 1);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            assert_string_not_equal(dirs[i], dirs[j]);
        }
    }
    /* resolve walks the same list. */
    char *path = NULL;
    assert_int_equal(mpb__plugin_resolve("abi1", &path, NULL, 0), 0);
    char *expect = mpb_asprintf("%s/mpb_abi1.so", plugin_dir);
    assert_string_equal(path, expect);
    free(expect);
    free(path);
    unsetenv("MPB_PLUGIN_PATH");
    mpb__plugin_search_dirs_free(&dirs);
    assert_null(dirs);
    free(lib_dir);
    free(lib);
    free(exe_dir);
    free(env);
    free(plugin_dir);
}

static void *
find_passthrough(void *arg)
{
    const mpb__plugin **out = arg;
    char err[256];
    assert_int_equal(mpb__plugin_find("passthrough", out, err, sizeof err), 0);
    return NULL;
}

static void
short_names_drop_only_the_ending(void **state)
{
    (void)state;
    char name[64];
    mpb__plugin_short_name("/x/mpb_mlp.so", name, sizeof name);
    assert_string_equal(name, "mlp");
    /* ".so" inside the name is part of it: this file is good.sorted, not good */
    mpb__plugin_short_name("/x/mpb_good.sorted.so", name, sizeof name);
    assert_string_equal(name, "good.sorted");
    mpb__plugin_short_name("mlp", name, sizeof name);
    assert_string_equal(name, "mlp");
}

/* init of a bundled plugin with these options (key=value, NULL ended);
 * its status, and the message in err. */
static int
init_with(const char *plugin, const char *const *pairs, char *err, size_t err_len)
{
    const mpb__plugin *p = NULL;
    assert_int_equal(mpb__plugin_find(plugin, &p, err, err_len), 0);
    mpb_options *options = mpb__options_new();
    for (size_t i = 0; pairs[i] != NULL; i++) {
        assert_int_equal(mpb__options_set_pair(options, pairs[i]), 0);
    }
    mpb_worker_info info = {.name = "t-0"};
    void *state = NULL;
    int rc = p->def->init(&info, options, &state, err, err_len);
    if (rc == 0) {
        p->def->cleanup(state);
    }
    mpb__options_destroy(&options);
    return rc;
}

static void
bundled_plugins_refuse_options_out_of_range(void **state)
{
    (void)state;
    char err[256] = "";
    const char *negative[] = {"batch_cost_us=-5000", NULL};
    assert_int_not_equal(init_with("sleep", negative, err, sizeof err), 0);
    assert_non_null(strstr(err, "0.."));
    const char *huge[] = {"batch_cost_us=9223372036854775807", "item_cost_us=1", NULL};
    assert_int_not_equal(init_with("sleep", huge, err, sizeof err), 0);
    const char *fine[] = {"batch_cost_us=10", "jitter_us=5", NULL};
    assert_int_equal(init_with("sleep", fine, err, sizeof err), 0);
}

static void
find_loads_each_file_once(void **state)
{
    const mpb__plugin *by_name = NULL;
    const mpb__plugin *by_path = NULL;
    char err[512];
    assert_int_equal(mpb__plugin_find("sleep", &by_name, err, sizeof err), 0);
    assert_string_equal(by_name->def->name, "sleep");
    assert_non_null(by_name->def->options);
    assert_int_equal(mpb__plugin_find(by_name->path, &by_path, err, sizeof err), 0);
    assert_ptr_equal(by_name, by_path);
    /* A different spelling of the same file is the same plugin. */
    char *exe_dir = mpb__executable_dir();
    char *roundabout = mpb_asprintf("%s/../lib/./mpb_sleep.so", exe_dir);
    assert_int_equal(mpb__plugin_find(roundabout, &by_path, err, sizeof err), 0);
    assert_ptr_equal(by_name, by_path);
    free(roundabout);
    free(exe_dir);
    /* From several threads at once: one plugin. */
    pthread_t threads[4];
    const mpb__plugin *found[4] = {NULL};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&threads[i], NULL, find_passthrough, &found[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        assert_non_null(found[i]);
        assert_ptr_equal(found[i], found[0]);
    }
    const mpb__plugin *missing = by_name;
    assert_int_equal(mpb__plugin_find("no-such-plugin", &missing, err, sizeof err), MPB_ENOENT);
    assert_null(missing);
    assert_non_null(strstr(err, "plugin 'no-such-plugin' not found"));
}

static void
an_abi1_plugin_loads_with_newer_fields_zero(void **state)
{
    mpb__plugin *plugin = NULL;
    char err[512];
    assert_int_equal(mpb__plugin_load(ABI1_PLUGIN, &plugin, err, sizeof err), 0);
    const mpb_worker_def *def = plugin->def;
    assert_int_equal(def->abi_version, 1);
    assert_string_equal(def->name, "abi1");
    assert_non_null(def->init);
    assert_non_null(def->call);
    assert_null(def->preprocess);
    assert_int_equal(def->batch_size, 4);
    assert_int_equal(def->batch_wait_us, 500);
    assert_null(def->options);
    assert_null(def->inputs);
    assert_null(def->outputs);
    assert_null(def->doc);
    /* Nothing declared, nothing checked. */
    assert_int_equal(mpb__plugin_check_option(def, "anything", "at all", err, sizeof err), 0);
    mpb__plugin_unload(&plugin);
    assert_null(plugin);
}

/* Starts a server over two abi1 workers with stderr sent to log_path. */
static mpb_server *
start_abi1_logging_to(const char *log_path)
{
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.plugin = ABI1_PLUGIN;
    cfg.workers = 2;
    const char *options[] = {"prefix=v1:", "not_declared=anywhere", NULL};
    cfg.options = options;
    mpb_servlet *servlet = mpb_thread_servlet_new(&cfg);
    mpb_server *server = mpb_server_new(&servlet, NULL);
    int log_fd = open(log_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(log_fd >= 0);
    fflush(stderr);
    int saved_stderr = dup(2);
    dup2(log_fd, 2);
    char err[512] = "";
    int rc = mpb_server_start(server, err, sizeof err);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    close(log_fd);
    if (rc != 0) {
        fail_msg("start: %s", err);
    }
    return server;
}

static void
an_abi1_plugin_runs_with_options_unchecked(void **state)
{
    char log_path[] = "/tmp/mpb-plugin-test-XXXXXX";
    int fd = mkstemp(log_path);
    assert_true(fd >= 0);
    close(fd);
    mpb_server *server = start_abi1_logging_to(log_path);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "item", 4, 5000, &r), 0);
    size_t len = 0;
    const char *value = mpb_result_value(r, &len);
    assert_int_equal(len, 7);
    assert_memory_equal(value, "v1:item", 7);
    mpb_result_destroy(&r);
    /* Both options reached init, the undeclared one included. */
    assert_int_equal(mpb_server_call(server, "options?", 8, 5000, &r), 0);
    value = mpb_result_value(r, &len);
    assert_int_equal(len, 1);
    assert_memory_equal(value, "2", 1);
    mpb_result_destroy(&r);
    /* The v1 table's batching defaults apply. */
    mpb_worker_status workers[2];
    assert_int_equal(mpb_server_workers(server, workers, 2), 2);
    assert_int_equal(workers[0].batch_size, 4);
    assert_int_equal(workers[0].batch_wait_us, 500);
    mpb_server_destroy(&server);
    /* One warning for the servlet, not one per worker. */
    FILE *log = fopen(log_path, "r");
    char text[4096] = "";
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    unlink(log_path);
    const char *warning =
        "plugin abi1 declares no options, so its 2 option(s) are passed unchecked";
    const char *first = strstr(text, warning);
    assert_non_null(first);
    assert_null(strstr(first + 1, warning));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(search_dirs_are_listed_in_lookup_order_without_repeats),
        cmocka_unit_test(find_loads_each_file_once),
        cmocka_unit_test(short_names_drop_only_the_ending),
        cmocka_unit_test(bundled_plugins_refuse_options_out_of_range),
        cmocka_unit_test(an_abi1_plugin_loads_with_newer_fields_zero),
        cmocka_unit_test(an_abi1_plugin_runs_with_options_unchecked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
