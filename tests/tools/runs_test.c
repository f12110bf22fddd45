/*
 * `mpb runs` end to end: the real mpb binary run on a store made through the
 * API (every test once on a file store, once on a SQLite store), output
 * captured to files, every subcommand in table, CSV and JSON form, exact
 * JSON numbers, --help, and errors with their exit status.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>

#include "tracking/helpers.h"

extern char **environ;

typedef struct fixture {
    char *dir;
    char *uri;
    mpb_store *store;
    char *exp_id;
    char *runs[3];
    char *out; /* stdout of the last command */
    char *err; /* stderr of the last command */
    int sqlite;
    int uri_from_env; /* pass the store as MLFLOW_TRACKING_URI, not an option */
} fixture;

/* Runs `mpb runs --tracking-uri <store> ARGS...` (--uri on the file store:
 * the alias; MLFLOW_TRACKING_URI with uri_from_env); returns the exit status. */
static int
run_mpb(fixture *f, const char *const *args)
{
    const char *argv[24] = {f->sqlite ? "--tracking-uri" : "--uri", f->uri};
    int n = 2;
    if (f->uri_from_env) {
        n = 0;
        setenv("MLFLOW_TRACKING_URI", f->uri, 1);
    }
    for (; *args != NULL && n < 23; args++) {
        argv[n++] = *args;
    }
    argv[n] = NULL;
    int status = th_mpb_runs(f->dir, argv, 30000, &f->out, &f->err);
    unsetenv("MLFLOW_TRACKING_URI");
    assert_non_null(f->out);
    assert_non_null(f->err);
    return status;
}

#define MPB(f, ...) run_mpb((f), (const char *const[]){__VA_ARGS__, NULL})

static int
setup_store(void **state, int sqlite)
{
    fixture *f = mpb_calloc(1, sizeof *f);
    f->dir = th_tempdir();
    f->sqlite = sqlite;
    if (sqlite) {
        char *uri = th_pathf("sqlite:///%s/mlflow.db", f->dir);
        char err[512] = "";
        if (mpb_store_open(uri, &f->store, err, sizeof err) != 0) {
            fail_msg("mpb_store_open(%s): %s", uri, err);
        }
        free(uri);
    } else {
        f->store = th_open(f->dir);
    }
    f->uri = mpb_strdup(mpb_store_uri(f->store));
    f->exp_id = th_experiment(f->store, "sweep");
    char err[512];
    for (int r = 0; r < 3; r++) {
        char name[16];
        char lr[16];
        snprintf(name, sizeof name, "run-%d", r);
        snprintf(lr, sizeof lr, "0.%d", r + 1);
        assert_int_equal(mpb_store_create_run(f->store, f->exp_id, "me", 1000000 + r, name, NULL, 0,
                                              &f->runs[r], err, sizeof err),
                         0);
        mpb_param params[] = {{"lr", lr}, {"batch", "64"}};
        mpb_metric metrics[] = {{"loss", 1.0 / (r + 1), 10, 0},
                                {"loss", 0.5 / (r + 1), 20, 1},
                                {"acc", r == 2 ? NAN : 0.75, 10, 0}};
        assert_int_equal(mpb_store_log_batch(f->store, f->runs[r], metrics, 3, params,
                                             r == 1 ? 1 : 2, NULL, 0, err, sizeof err),
                         0);
    }
    assert_int_equal(mpb_store_update_run(f->store, f->runs[0], MPB_RUN_FINISHED, 1065000, NULL,
                                          err, sizeof err),
                     0);
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    return setup_store(state, 0);
}

static int
setup_sqlite(void **state)
{
    return setup_store(state, 1);
}

static int
teardown(void **state)
{
    fixture *f = *state;
    for (int r = 0; r < 3; r++) {
        free(f->runs[r]);
    }
    mpb_store_destroy(&f->store);
    th_cleanup(&f->dir);
    free(f->uri);
    free(f->exp_id);
    free(f->out);
    free(f->err);
    free(f);
    return 0;
}

static int
count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++) {
        n += *text == '\n';
    }
    return n;
}

static void
experiments_lists_tables_and_json(void **state)
{
    fixture *f = *state;
    assert_int_equal(MPB(f, "experiments"), 0);
    assert_int_equal(count_lines(f->out), 3); /* header, sweep, Default */
    assert_true(strncmp(f->out, "ID", 2) == 0);
    assert_non_null(strstr(f->out, f->exp_id));
    assert_non_null(strstr(f->out, "sweep"));
    assert_non_null(strstr(f->out, "Default"));
    assert_int_equal(MPB(f, "--json", "experiments"), 0);
    cJSON *root = cJSON_Parse(f->out);
    assert_non_null(root);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "experiments")), 2);
    cJSON_Delete(root);
    char err[512];
    assert_int_equal(mpb_store_delete_experiment(f->store, f->exp_id, err, sizeof err), 0);
    assert_int_equal(MPB(f, "experiments", "--deleted"), 0);
    assert_int_equal(count_lines(f->out), 2);
    assert_non_null(strstr(f->out, "deleted"));
}

static void
list_filters_orders_and_limits(void **state)
{
    fixture *f = *state;
    assert_int_equal(MPB(f, "list"), 0);
    assert_int_equal(count_lines(f->out), 4);
    /* newest first: run-2 started last */
    const char *r2 = strstr(f->out, "run-2");
    const char *r0 = strstr(f->out, "run-0");
    assert_true(r2 != NULL && r0 != NULL && r2 < r0);
    assert_non_null(strstr(f->out, "FINISHED"));
    assert_non_null(strstr(f->out, "1m05s"));
    assert_int_equal(MPB(f, "list", "--experiment", "sweep", "--filter", "metrics.loss < 0.4",
                         "--order-by", "metrics.loss"),
                     0);
    assert_int_equal(count_lines(f->out), 3);
    r2 = strstr(f->out, "run-2");
    const char *r1 = strstr(f->out, "run-1");
    assert_true(r2 != NULL && r1 != NULL && r2 < r1);
    assert_null(strstr(f->out, "run-0"));
    assert_int_equal(MPB(f, "list", "--experiment", f->exp_id, "--max", "2", "--json"), 0);
    cJSON *root = cJSON_Parse(f->out);
    cJSON *runs = cJSON_GetObjectItem(root, "runs");
    assert_int_equal(cJSON_GetArraySize(runs), 2);
    cJSON *info = cJSON_GetObjectItem(cJSON_GetArrayItem(runs, 0), "info");
    assert_string_equal(cJSON_GetObjectItem(info, "run_id")->valuestring, f->runs[2]);
    assert_string_equal(cJSON_GetObjectItem(info, "status")->valuestring, "RUNNING");
    cJSON_Delete(root);
}

static void
show_prints_a_run(void **state)
{
    fixture *f = *state;
    assert_int_equal(MPB(f, "show", f->runs[0]), 0);
    assert_non_null(strstr(f->out, f->runs[0]));
    assert_non_null(strstr(f->out, "(sweep)"));
    assert_non_null(strstr(f->out, "FINISHED"));
    assert_non_null(strstr(f->out, "  lr     0.1"));
    assert_non_null(strstr(f->out, "  loss  0.5"));
    assert_non_null(strstr(f->out, "mlflow.runName"));
    assert_int_equal(MPB(f, "show", f->runs[2], "--json"), 0);
    cJSON *root = cJSON_Parse(f->out);
    cJSON *data = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "run"), "data");
    cJSON *metrics = cJSON_GetObjectItem(data, "metrics");
    int saw_nan = 0;
    cJSON *metric;
    cJSON_ArrayForEach(metric, metrics)
    {
        cJSON *value = cJSON_GetObjectItem(metric, "value");
        saw_nan |= cJSON_IsString(value) && strcmp(value->valuestring, "NaN") == 0;
    }
    assert_true(saw_nan);
    cJSON_Delete(root);
}

static void
metrics_prints_the_history_as_csv(void **state)
{
    fixture *f = *state;
    assert_int_equal(MPB(f, "metrics", f->runs[1], "loss"), 0);
    assert_string_equal(f->out, "step,timestamp,value\n0,10,0.5\n1,20,0.25\n");
    assert_int_equal(MPB(f, "--json", "metrics", f->runs[1], "loss"), 0);
    cJSON *root = cJSON_Parse(f->out);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "metrics")), 2);
    cJSON_Delete(root);
}

static void
compare_puts_runs_side_by_side(void **state)
{
    fixture *f = *state;
    assert_int_equal(MPB(f, "compare", f->runs[0], f->runs[1]), 0);
    assert_non_null(strstr(f->out, "run-0 ("));
    assert_non_null(strstr(f->out, "run-1 ("));
    /* run-1 has no batch param: '-' */
    const char *batch = strstr(f->out, "params.batch");
    assert_non_null(batch);
    const char *end = strchr(batch, '\n');
    char *row = mpb_strndup(batch, (size_t)(end - batch));
    assert_non_null(strstr(row, "64"));
    assert_non_null(strstr(row, " -"));
    free(row);
    assert_non_null(strstr(f->out, "metrics.loss"));
    assert_int_equal(MPB(f, "compare", "--json", f->runs[0], f->runs[1], f->runs[2]), 0);
    cJSON *root = cJSON_Parse(f->out);
    cJSON *lr = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "params"), "lr");
    assert_int_equal(cJSON_GetArraySize(lr), 3);
    assert_string_equal(cJSON_GetArrayItem(lr, 2)->valuestring, "0.3");
    cJSON *batch_json = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "params"), "batch");
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(batch_json, 1)));
    cJSON_Delete(root);
}

static void
help_and_errors(void **state)
{
    fixture *f = *state;
    const char *commands[] = {"experiments", "list", "show", "metrics", "compare"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(commands); i++) {
        assert_int_equal(MPB(f, commands[i], "--help"), 0);
        assert_true(strncmp(f->out, "usage: mpb runs ", 16) == 0);
    }
    assert_int_equal(MPB(f, "--help"), 0);
    assert_non_null(strstr(f->out, "compare RUN_ID..."));
    assert_int_equal(MPB(f, "bogus"), 2);
    assert_non_null(strstr(f->err, "unknown command 'bogus'"));
    assert_int_equal(MPB(f, "list", "--filter", "metrics.loss <> 1"), 1);
    assert_non_null(strstr(f->err, "at offset 13"));
    assert_int_equal(MPB(f, "show", "0123456789abcdef0123456789abcdef"), 1);
    assert_non_null(strstr(f->err, "not found"));
    assert_int_equal(MPB(f, "show"), 2);
    assert_int_equal(MPB(f, "list", "--experiment", "nope"), 1);
    assert_non_null(strstr(f->err, "nope"));
    assert_int_equal(strlen(f->out), 0);
}

/* Values JSON printers get wrong: 16 and 17 significant digits, an int64
 * past 2^53, the largest double (which SQLite stores for inf), subnormals. */
static const mpb_metric exact_metrics[] = {
    {"x", 0.09090909090909091, 1795645240031, 9007199254740993},
    {"x", 0.1, 1795645240032, -9223372036854775807LL - 1},
    {"x", 1e300 * 1e10, 1795645240033, 2},
    {"x", -1e300 * 1e10, 1795645240034, 3},
    {"x", NAN, 1795645240035, 4},
    {"x", 4.9406564584124654e-324, 1795645240036, 5},
    {"x", 123456789012345680.0, 1795645240037, 6},
    {"x", -0.30000000000000004, 1795645240038, 9223372036854775807LL},
};

static const char *const exact_texts[] = {
    "\"value\":0.09090909090909091,\"timestamp\":1795645240031,\"step\":9007199254740993",
    "\"value\":0.1,\"timestamp\":1795645240032,\"step\":-9223372036854775808",
    "\"value\":\"Infinity\",\"timestamp\":1795645240033,\"step\":2",
    "\"value\":\"-Infinity\",\"timestamp\":1795645240034,\"step\":3",
    "\"value\":\"NaN\",\"timestamp\":1795645240035,\"step\":4",
    "\"value\":5e-324,\"timestamp\":1795645240036,\"step\":5",
    "\"value\":1.2345678901234568e+17,\"timestamp\":1795645240037,\"step\":6",
    "\"value\":-0.30000000000000004,\"timestamp\":1795645240038,\"step\":9223372036854775807",
};

/* The JSON text without blanks, so the checks do not depend on indentation. */
static char *
squeeze(const char *text)
{
    char *out = mpb_malloc(strlen(text) + 1);
    size_t n = 0;
    for (; *text; text++) {
        if (*text != ' ' && *text != '\t' && *text != '\n') {
            out[n++] = *text;
        }
    }
    out[n] = '\0';
    return out;
}

static void
assert_json_value(const cJSON *value, double expected)
{
    if (isnan(expected)) {
        assert_true(cJSON_IsString(value));
        assert_string_equal(value->valuestring, "NaN");
    } else if (isinf(expected)) {
        assert_true(cJSON_IsString(value));
        assert_string_equal(value->valuestring, expected > 0 ? "Infinity" : "-Infinity");
    } else {
        assert_true(cJSON_IsNumber(value));
        assert_memory_equal(&value->valuedouble, &expected, sizeof expected);
    }
}

static void
json_numbers_are_exact(void **state)
{
    fixture *f = *state;
    char err[512];
    size_t n = MPB_ARRAY_LEN(exact_metrics);
    assert_int_equal(mpb_store_log_batch(f->store, f->runs[0], exact_metrics, n, NULL, 0, NULL, 0,
                                         err, sizeof err),
                     0);
    assert_int_equal(MPB(f, "--json", "metrics", f->runs[0], "x"), 0);
    char *text = squeeze(f->out);
    for (size_t i = 0; i < n; i++) {
        if (strstr(text, exact_texts[i]) == NULL) {
            fail_msg("missing %s in %s", exact_texts[i], text);
        }
    }
    cJSON *root = cJSON_Parse(f->out);
    cJSON *list = cJSON_GetObjectItem(root, "metrics");
    assert_int_equal(cJSON_GetArraySize(list), (int)n);
    for (size_t i = 0; i < n; i++) {
        cJSON *metric = cJSON_GetArrayItem(list, (int)i);
        assert_json_value(cJSON_GetObjectItem(metric, "value"), exact_metrics[i].value);
        assert_true(cJSON_GetObjectItem(metric, "timestamp")->valuedouble ==
                    (double)exact_metrics[i].timestamp_ms);
    }
    cJSON_Delete(root);
    free(text);
    /* The latest value (largest step) in show, start_time as an integer. */
    assert_int_equal(MPB(f, "show", "--json", f->runs[0]), 0);
    text = squeeze(f->out);
    assert_non_null(strstr(text, exact_texts[n - 1]));
    assert_non_null(strstr(text, "\"start_time\":1000000,"));
    assert_non_null(strstr(text, "\"end_time\":1065000,"));
    free(text);
    assert_int_equal(MPB(f, "compare", "--json", f->runs[0]), 0);
    text = squeeze(f->out);
    assert_non_null(strstr(text, "\"x\":[-0.30000000000000004]"));
    free(text);
    assert_int_equal(MPB(f, "--json", "experiments"), 0);
    root = cJSON_Parse(f->out);
    cJSON *experiment = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "experiments"), 0);
    assert_true(cJSON_GetObjectItem(experiment, "creation_time")->valuedouble > 1.7e12);
    cJSON_Delete(root);
    /* The CSV keeps the same digits. */
    assert_int_equal(MPB(f, "metrics", f->runs[0], "x"), 0);
    assert_non_null(strstr(f->out, "9007199254740993,1795645240031,0.09090909090909091\n"));
}

static void
tracking_uri_from_the_environment(void **state)
{
    fixture *f = *state;
    f->uri_from_env = 1;
    assert_int_equal(MPB(f, "list", "--experiment", "sweep"), 0);
    assert_int_equal(count_lines(f->out), 4);
    assert_int_equal(MPB(f, "show", f->runs[1]), 0);
    assert_non_null(strstr(f->out, "run-1"));
    /* An option wins over the environment. */
    char *other = th_pathf("sqlite:///%s/other.db", f->dir);
    setenv("MLFLOW_TRACKING_URI", other, 1);
    f->uri_from_env = 0;
    assert_int_equal(MPB(f, "show", f->runs[1]), 0);
    assert_non_null(strstr(f->out, "run-1"));
    free(other);
}

/* A run's folder in the file store (its artifact URI's parent). */
static char *
run_folder(fixture *f, const char *run_id)
{
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, run_id, &run, NULL, 0), 0);
    const char *uri = run->info.artifact_uri;
    char *artifacts = strncmp(uri, "file:", 5) == 0 ? mpb__file_uri_to_path(uri) : mpb_strdup(uri);
    mpb_run_free(&run);
    char *slash = strrchr(artifacts, '/');
    *slash = '\0';
    return artifacts;
}

static void
json_output_is_valid_whatever_the_store_holds(void **state)
{
    fixture *f = *state;
    /* a param file holding bytes that are not UTF-8 (written by hand, or
     * by another program): shown as U+FFFD, and the output parses */
    char *folder = run_folder(f, f->runs[0]);
    char *param = th_pathf("%s/params/lr", folder);
    FILE *out = fopen(param, "w");
    fputs("bad\xff\xfe", out);
    fclose(out);
    assert_int_equal(MPB(f, "--json", "show", f->runs[0]), 0);
    assert_null(strchr(f->out, '\xff'));
    assert_non_null(strstr(f->out, "bad\xef\xbf\xbd\xef\xbf\xbd"));
    cJSON *json = cJSON_Parse(f->out);
    assert_non_null(json);
    cJSON_Delete(json);
    /* names with quotes and backslashes, escaped */
    char *odd = th_pathf("%s/we\"ird\\name.bin", f->dir);
    out = fopen(odd, "w");
    fputs("x", out);
    fclose(out);
    assert_int_equal(MPB(f, "--json", "log-artifact", f->runs[1], odd, "sub dir"), 0);
    json = cJSON_Parse(f->out);
    assert_non_null(json);
    assert_string_equal(cJSON_GetObjectItem(json, "artifact_path")->valuestring,
                        "sub dir/we\"ird\\name.bin");
    cJSON_Delete(json);
    /* create answers in JSON too */
    assert_int_equal(MPB(f, "--json", "create", "--experiment", "made", "--name", "held"), 0);
    json = cJSON_Parse(f->out);
    assert_non_null(json);
    assert_int_equal(strlen(cJSON_GetObjectItem(json, "run_id")->valuestring), 32);
    cJSON_Delete(json);
    /* every active experiment is listed, however many */
    for (int e = 0; e < 70; e++) {
        char name[32];
        snprintf(name, sizeof name, "many-%d", e);
        char *exp = th_experiment(f->store, name);
        free(th_run(f->store, exp, name));
        free(exp);
    }
    assert_int_equal(MPB(f, "--json", "list"), 0);
    json = cJSON_Parse(f->out);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(json, "runs")), 3 + 70 + 1);
    cJSON_Delete(json);
    free(odd);
    free(param);
    free(folder);
}

#define BOTH(test)                                                                                 \
    cmocka_unit_test_setup_teardown(test, setup, teardown),                                        \
        cmocka_unit_test_setup_teardown(test, setup_sqlite, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(experiments_lists_tables_and_json),
        BOTH(list_filters_orders_and_limits),
        BOTH(show_prints_a_run),
        BOTH(metrics_prints_the_history_as_csv),
        BOTH(compare_puts_runs_side_by_side),
        BOTH(help_and_errors),
        BOTH(json_numbers_are_exact),
        BOTH(tracking_uri_from_the_environment),
        cmocka_unit_test_setup_teardown(json_output_is_valid_whatever_the_store_holds, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
