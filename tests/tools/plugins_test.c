/*
 * `mpb plugins` end to end: the real mpb binary lists the built plugins,
 * marks shadowed and broken files, shows one plugin's declarations as a
 * table and as JSON, and exits 1 or 2 with a reason when it cannot.
 */
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tool_helpers.h"

extern char **environ;

typedef struct output {
    int status;
    char *out;
    char *err;
} output;

/* Runs `mpb plugins ARGS...` with MPB_PLUGIN_PATH set to plugin_path
 * (unset when NULL); the caller frees out and err. */
static output
run_plugins(const char *plugin_path, const char *const *args)
{
    const char *build = getenv("MPB_BUILD_DIR");
    if (build == NULL) {
        skip();
    }
    char *mpb = mpb_asprintf("%s/bin/mpb", build);
    char *argv[16] = {mpb, "plugins"};
    int n = 2;
    for (; *args != NULL && n < 15; args++) {
        argv[n++] = (char *)*args;
    }
    argv[n] = NULL;
    char out_path[] = "/tmp/mpb-plugins-out-XXXXXX";
    char err_path[] = "/tmp/mpb-plugins-err-XXXXXX";
    close(mkstemp(out_path));
    close(mkstemp(err_path));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path, O_WRONLY | O_TRUNC, 0);
    posix_spawn_file_actions_addopen(&actions, 2, err_path, O_WRONLY | O_TRUNC, 0);
    if (plugin_path != NULL) {
        setenv("MPB_PLUGIN_PATH", plugin_path, 1);
    } else {
        unsetenv("MPB_PLUGIN_PATH");
    }
    pid_t pid = 0;
    assert_int_equal(posix_spawn(&pid, mpb, &actions, NULL, argv, environ), 0);
    unsetenv("MPB_PLUGIN_PATH");
    posix_spawn_file_actions_destroy(&actions);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    output o = {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out_path), slurp(err_path)};
    unlink(out_path);
    unlink(err_path);
    free(mpb);
    return o;
}

#define PLUGINS(path, ...) run_plugins((path), (const char *const[]){__VA_ARGS__, NULL})
#define PLUGINS_NO_ARGS(path) run_plugins((path), (const char *const[]){NULL})

static void
output_free(output *o)
{
    free(o->out);
    free(o->err);
}

/* The line of text that starts with prefix, copied (caller frees), or NULL. */
static char *
line_starting(const char *text, const char *prefix)
{
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            return mpb_strndup(line, len);
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

static void
assert_line(const char *text, const char *prefix, const char *needle)
{
    char *line = line_starting(text, prefix);
    if (line == NULL) {
        fail_msg("no line starts with '%s' in:\n%s", prefix, text);
    }
    if (strstr(line, needle) == NULL) {
        fail_msg("'%s' does not contain '%s'", line, needle);
    }
    free(line);
}

static void
the_list_shows_built_in_plugins(void **state)
{
    output o = PLUGINS_NO_ARGS(NULL);
    assert_int_equal(o.status, 0);
    assert_line(o.out, "NAME ", "DESCRIPTION");
    assert_line(o.out, "sleep ", "/lib/mpb_sleep.so");
    assert_line(o.out, "sleep ", "  3  ");
    assert_line(o.out, "combine ", "/lib/mpb_combine.so");
    assert_line(o.out, "combine ", "ensemble");
    assert_line(o.out, "passthrough ", "/lib/mpb_passthrough.so");
    output_free(&o);
}

static void
shadowed_and_broken_files_are_marked(void **state)
{
    char dir[] = "/tmp/mpb-plugins-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *build = mpb_asprintf("%s/lib/mpb_sleep.so", getenv("MPB_BUILD_DIR"));
    char *link = mpb_asprintf("%s/mpb_sleep.so", dir);
    char *broken = mpb_asprintf("%s/mpb_broken.so", dir);
    assert_int_equal(symlink(build, link), 0);
    FILE *f = fopen(broken, "w");
    fputs("not a shared object\n", f);
    fclose(f);
    output o = PLUGINS_NO_ARGS(dir);
    assert_int_equal(o.status, 0);
    assert_line(o.out, "broken ", "cannot load");
    assert_line(o.out, "sleep  ", link);                         /* the first one found is used */
    assert_line(o.out, "sleep (shadowed)", "/lib/mpb_sleep.so"); /* and hides the next */
    assert_line(o.out, "combine ", "/lib/mpb_combine.so");
    output_free(&o);
    o = PLUGINS(dir, "--json");
    assert_int_equal(o.status, 0);
    cJSON *root = cJSON_Parse(o.out);
    assert_non_null(root);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "search_path"), 0);
    assert_non_null(strstr(first->valuestring, "mpb-plugins-dir-"));
    int saw_broken = 0;
    cJSON *plugin;
    cJSON_ArrayForEach(plugin, cJSON_GetObjectItem(root, "plugins"))
    {
        if (strcmp(cJSON_GetObjectItem(plugin, "name")->valuestring, "broken") == 0) {
            saw_broken = 1;
            assert_true(cJSON_IsString(cJSON_GetObjectItem(plugin, "error")));
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(plugin, "abi_version")));
        }
    }
    assert_true(saw_broken);
    cJSON_Delete(root);
    output_free(&o);
    unlink(link);
    unlink(broken);
    rmdir(dir);
    free(broken);
    free(link);
    free(build);
}

static void
show_prints_options_inputs_and_outputs(void **state)
{
    output o = PLUGINS(NULL, "show", "sleep");
    assert_int_equal(o.status, 0);
    assert_line(o.out, "sleep: ", "known cost");
    assert_line(o.out, "batch_size:", "32");
    assert_line(o.out, "batch_cost_us ", "  int   1000 ");
    assert_line(o.out, "busy ", "  bool  false ");
    assert_line(o.out, "seed ", "  int   -  ");
    /* an echo has no fixed types: it declares none */
    assert_line(o.out, "inputs:", "not declared");
    output_free(&o);
    o = PLUGINS(NULL, "show", "mlp");
    assert_int_equal(o.status, 0);
    assert_line(o.out, "input_dim ", "256");
    assert_line(o.out, "output ", "FP32      [-1]");
    output_free(&o);
}

static cJSON *
find_named(cJSON *array, const char *name)
{
    cJSON *item;
    cJSON_ArrayForEach(item, array)
    {
        if (strcmp(cJSON_GetObjectItem(item, "name")->valuestring, name) == 0) {
            return item;
        }
    }
    fail_msg("no entry named %s", name);
    return NULL;
}

static void
json_output_parses(void **state)
{
    output o = PLUGINS(NULL, "--json");
    assert_int_equal(o.status, 0);
    cJSON *root = cJSON_Parse(o.out);
    assert_non_null(root);
    cJSON *combine = find_named(cJSON_GetObjectItem(root, "plugins"), "combine");
    assert_int_equal(cJSON_GetObjectItem(combine, "abi_version")->valueint, MPB_WORKER_ABI_VERSION);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(combine, "shadowed_by")));
    cJSON_Delete(root);
    output_free(&o);

    o = PLUGINS(NULL, "show", "--json", "sleep");
    assert_int_equal(o.status, 0);
    root = cJSON_Parse(o.out);
    assert_non_null(root);
    assert_int_equal(cJSON_GetObjectItem(root, "abi_version")->valueint, MPB_WORKER_ABI_VERSION);
    assert_int_equal(cJSON_GetObjectItem(root, "batch_size")->valueint, 32);
    cJSON *cost = find_named(cJSON_GetObjectItem(root, "options"), "batch_cost_us");
    assert_string_equal(cJSON_GetObjectItem(cost, "type")->valuestring, "int");
    assert_string_equal(cJSON_GetObjectItem(cost, "default")->valuestring, "1000");
    cJSON *seed = find_named(cJSON_GetObjectItem(root, "options"), "seed");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(seed, "default")));
    cJSON_Delete(root);
    output_free(&o);

    o = PLUGINS(NULL, "show", "--json", "mlp");
    root = cJSON_Parse(o.out);
    assert_non_null(root);
    cJSON *input = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "inputs"), 0);
    assert_string_equal(cJSON_GetObjectItem(input, "datatype")->valuestring, "FP32");
    cJSON_Delete(root);
    output_free(&o);

    o = PLUGINS(NULL, "show", "combine", "--json");
    root = cJSON_Parse(o.out);
    assert_non_null(root);
    cJSON *output_def = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "outputs"), 0);
    cJSON *shape = cJSON_GetObjectItem(output_def, "shape");
    assert_int_equal(cJSON_GetArraySize(shape), 1);
    assert_int_equal(cJSON_GetArrayItem(shape, 0)->valueint, -1);
    cJSON_Delete(root);
    output_free(&o);
}

static void
a_plugin_without_declarations_says_so(void **state)
{
    const char *dir = MPB_TEST_PLUGIN_DIR; /* mpb_abi1.so, from tests/core */
    output o = PLUGINS(dir, "show", "abi1");
    assert_int_equal(o.status, 0);
    assert_line(o.out, "abi:", "1");
    assert_line(o.out, "This plugin declares nothing", "its options are not checked");
    output_free(&o);
    o = PLUGINS(dir, "show", "abi1", "--json");
    cJSON *root = cJSON_Parse(o.out);
    assert_non_null(root);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "options")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(root, "doc")));
    cJSON_Delete(root);
    output_free(&o);
}

static void
failures_exit_1_and_bad_usage_exits_2(void **state)
{
    output o = PLUGINS(NULL, "show", "no-such-plugin");
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "mpb plugins: plugin 'no-such-plugin' not found"));
    assert_string_equal(o.out, "");
    output_free(&o);
    o = PLUGINS(NULL, "show", "/no/such/dir/mpb_x.so");
    assert_int_equal(o.status, 1);
    assert_non_null(strstr(o.err, "/no/such/dir/mpb_x.so"));
    output_free(&o);
    const char *const bad[][4] = {
        {"frobnicate", NULL, NULL}, {"show", NULL, NULL},    {"show", "a", "b"},
        {"--verbose", NULL, NULL},  {"list", "extra", NULL},
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        o = run_plugins(NULL, bad[i]);
        assert_int_equal(o.status, 2);
        assert_non_null(strstr(o.err, "usage: mpb plugins"));
        output_free(&o);
    }
    o = PLUGINS(NULL, "--help");
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.out, "usage: mpb plugins"));
    output_free(&o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_list_shows_built_in_plugins),
        cmocka_unit_test(shadowed_and_broken_files_are_marked),
        cmocka_unit_test(show_prints_options_inputs_and_outputs),
        cmocka_unit_test(json_output_parses),
        cmocka_unit_test(a_plugin_without_declarations_says_so),
        cmocka_unit_test(failures_exit_1_and_bad_usage_exits_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
