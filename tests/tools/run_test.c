/*
 * `mpb run` end to end: the real executable, real worker processes, a
 * config file and an input file; JSON lines come back in input order.
 */
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tool_helpers.h"

#include "mpbatch/store.h"

typedef struct run_dir {
    char path[64];
    char config[128];
    char input[128];
    char output[128];
    char errors[128];
} run_dir;

static void
make_dir(run_dir *d, const char *config_text)
{
    snprintf(d->path, sizeof d->path, "/tmp/mpb-run-test-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    snprintf(d->config, sizeof d->config, "%s/p.yaml", d->path);
    snprintf(d->input, sizeof d->input, "%s/in.txt", d->path);
    snprintf(d->output, sizeof d->output, "%s/out.jsonl", d->path);
    snprintf(d->errors, sizeof d->errors, "%s/err.txt", d->path);
    FILE *f = fopen(d->config, "w");
    fputs(config_text, f);
    fclose(f);
}

static int
run_mpb(const run_dir *d)
{
    char *mpb = tool_path("mpb");
    char *cmd = mpb_asprintf("%s run --config %s --input %s > %s 2> %s", mpb, d->config, d->input,
                             d->output, d->errors);
    int status = shell_status(cmd);
    free(cmd);
    free(mpb);
    return status;
}

static void
clean(run_dir *d)
{
    unlink(d->config);
    unlink(d->input);
    unlink(d->output);
    unlink(d->errors);
    rmdir(d->path);
}

static void
text_lines_come_back_in_order_with_errors_in_place(void **state)
{
    run_dir d;
    make_dir(&d, "servlet:\n  plugin: fail\n  workers: 2\n  batch_size: 8\n"
                 "  options:\n    fail_prefix: bad\n");
    FILE *in = fopen(d.input, "w");
    for (int i = 0; i < 3000; i++) {
        fprintf(in, i % 10 == 9 ? "bad %d\n" : "line \"%d\"\n", i);
    }
    fclose(in);
    assert_int_equal(run_mpb(&d), 0);
    char *out = slurp(d.output);
    char *save = NULL;
    int i = 0;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        cJSON *json = cJSON_Parse(line);
        assert_non_null(json);
        if (i % 10 == 9) {
            cJSON *error = cJSON_GetObjectItem(json, "error");
            assert_non_null(error);
            assert_string_equal(cJSON_GetObjectItem(error, "type")->valuestring, "ValueError");
            assert_true(cJSON_GetObjectItem(error, "pid")->valuedouble > 0);
        } else {
            char expect[64];
            snprintf(expect, sizeof expect, "line \"%d\"", i);
            assert_true(cJSON_IsString(json));
            assert_string_equal(json->valuestring, expect);
        }
        cJSON_Delete(json);
    }
    assert_int_equal(i, 3000);
    free(out);
    char *err = slurp(d.errors);
    assert_non_null(strstr(err, "3000 items"));
    assert_non_null(strstr(err, "300 errors"));
    free(err);
    clean(&d);
}

static void
f32_vectors_through_the_mlp(void **state)
{
    run_dir d;
    make_dir(&d, "servlet:\n  plugin: mlp\n  workers: 2\n  batch_size: 4\n"
                 "  options:\n    input_dim: 3\n    hidden_dim: 5\n    output_dim: 2\n"
                 "io:\n  format: f32\n");
    FILE *in = fopen(d.input, "w");
    fprintf(in, "[1, 2, 3]\n[0.5, -1, 2e-3]\n[1, 2]\n[1, 2, 3]\n");
    fclose(in);
    assert_int_equal(run_mpb(&d), 0);
    char *out = slurp(d.output);
    char *lines[4];
    char *save = NULL;
    lines[0] = strtok_r(out, "\n", &save);
    for (int i = 1; i < 4; i++) {
        lines[i] = strtok_r(NULL, "\n", &save);
        assert_non_null(lines[i]);
    }
    for (int i = 0; i < 4; i++) {
        cJSON *json = cJSON_Parse(lines[i]);
        if (i == 2) {
            /* Two numbers where three are expected: an error in place. */
            assert_non_null(cJSON_GetObjectItem(json, "error"));
        } else {
            assert_true(cJSON_IsArray(json));
            assert_int_equal(cJSON_GetArraySize(json), 2);
        }
        cJSON_Delete(json);
    }
    /* Same input, same output: rows were not mixed up inside the batch. */
    assert_string_equal(lines[0], lines[3]);
    assert_string_not_equal(lines[0], lines[1]);
    free(out);
    clean(&d);
}

/* An ensemble's result prints as a JSON array of its members, errors
 * (with errors: in_place) in their members' places. */
static void
ensemble_results_print_as_arrays(void **state)
{
    run_dir d;
    make_dir(&d, "servlet:\n  kind: ensemble\n  name: models\n  errors: in_place\n"
                 "  members:\n"
                 "    - {plugin: passthrough, name: same, kind: thread}\n"
                 "    - {plugin: fail, name: picky, options: {fail_prefix: bad}}\n");
    FILE *in = fopen(d.input, "w");
    fprintf(in, "good\nbad one\n");
    fclose(in);
    assert_int_equal(run_mpb(&d), 0);
    char *out = slurp(d.output);
    char *save = NULL;
    cJSON *first = cJSON_Parse(strtok_r(out, "\n", &save));
    cJSON *second = cJSON_Parse(strtok_r(NULL, "\n", &save));
    assert_true(cJSON_IsArray(first));
    assert_int_equal(cJSON_GetArraySize(first), 2);
    assert_string_equal(cJSON_GetArrayItem(first, 0)->valuestring, "good");
    assert_string_equal(cJSON_GetArrayItem(first, 1)->valuestring, "good");
    assert_string_equal(cJSON_GetArrayItem(second, 0)->valuestring, "bad one");
    cJSON *error = cJSON_GetObjectItem(cJSON_GetArrayItem(second, 1), "error");
    assert_non_null(error);
    assert_string_equal(cJSON_GetObjectItem(error, "servlet")->valuestring, "models/picky");
    cJSON_Delete(first);
    cJSON_Delete(second);
    free(out);
    clean(&d);
}

/* mpb run as a streaming filter: one line in, its result out, before the
 * next line comes. */
static void
each_result_comes_before_the_next_line(void **state)
{
    run_dir d;
    make_dir(&d, "servlet:\n  plugin: passthrough\n  batch_size: 8\n");
    char *mpb = tool_path("mpb");
    char *argv[] = {mpb, "run", "--config", d.config, NULL};
    int in;
    int out;
    pid_t pid = spawn_with_pipes(argv, &in, &out);
    assert_int_equal(write(in, "first\n", 6), 6);
    char buf[256] = "";
    assert_true(read_within(out, buf, sizeof buf, 10000) > 0); /* out while input waits */
    assert_string_equal(buf, "\"first\"\n");
    assert_int_equal(write(in, "second\n", 7), 7);
    close(in);
    assert_true(read_within(out, buf, sizeof buf, 10000) > 0);
    assert_string_equal(buf, "\"second\"\n");
    int status;
    waitpid(pid, &status, 0);
    assert_int_equal(WEXITSTATUS(status), 0);
    close(out);
    free(mpb);
    clean(&d);
}

static void
empty_input_ends_at_once(void **state)
{
    run_dir d;
    make_dir(&d, "servlet:\n  plugin: passthrough\n");
    FILE *in = fopen(d.input, "w");
    fclose(in);
    assert_int_equal(run_mpb(&d), 0);
    char *out = slurp(d.output);
    assert_string_equal(out, "");
    free(out);
    clean(&d);
}

static void
a_line_longer_than_a_read_from_a_file(void **state)
{
    /* a 300 000-byte line in a regular file: more than one read, and a
     * file cannot be watched with epoll (it once hung waiting on it) */
    run_dir d;
    make_dir(&d, "servlet:\n  plugin: passthrough\n");
    FILE *in = fopen(d.input, "w");
    for (int i = 0; i < 300000; i++) {
        fputc('x', in);
    }
    fputs("\nshort\n", in);
    fclose(in);
    assert_int_equal(run_mpb(&d), 0);
    char *out = slurp(d.output);
    assert_int_equal(strlen(out), 300000 + 3 + 8);
    assert_non_null(strstr(out, "\"short\"\n"));
    free(out);
    clean(&d);
}

/* `mpb run ... ARGS`, its input d->input, output to `out`; the status */
static int
run_mpb_to(const run_dir *d, const char *extra, const char *out)
{
    char *mpb = tool_path("mpb");
    char *cmd = mpb_asprintf("%s run --config %s %s < %s > %s 2> %s", mpb, d->config, extra,
                             d->input, out, d->errors);
    int status = shell_status(cmd);
    free(cmd);
    free(mpb);
    return status;
}

static void
failures_of_the_command_line_and_the_output_are_not_success(void **state)
{
    run_dir d;
    make_dir(&d, "servlet:\n  plugin: passthrough\n  kind: thread\nio:\n  format: f32\n");
    FILE *in = fopen(d.input, "w");
    fputs("[1, 2]\n[3] and more\n[4]\n", in);
    fclose(in);
    /* text after a vector is not a vector */
    assert_int_equal(run_mpb_to(&d, "", d.output), 1);
    char *out = slurp(d.output);
    assert_string_equal(out, "[1, 2]\n");
    free(out);
    char *errors = slurp(d.errors);
    assert_non_null(strstr(errors, "input line 2 is not a JSON array of numbers"));
    free(errors);
    /* an argument that is not an option: the input is --input or stdin */
    assert_int_equal(run_mpb_to(&d, "in.txt", d.output), 2);
    errors = slurp(d.errors);
    assert_non_null(strstr(errors, "unexpected argument 'in.txt'"));
    free(errors);
    /* the output cannot be written, though every write fit in a buffer */
    in = fopen(d.input, "w");
    fputs("[1]\n[2]\n", in);
    fclose(in);
    assert_int_equal(run_mpb_to(&d, "", "/dev/full"), 1);
    errors = slurp(d.errors);
    assert_non_null(strstr(errors, "stopped: i/o error"));
    free(errors);
    clean(&d);
}

static void
bad_config_exits_2_naming_file_and_line(void **state)
{
    run_dir d;
    make_dir(&d, "servlet:\n  plugin: mlp\n  wrokers: 2\n");
    FILE *in = fopen(d.input, "w");
    fclose(in);
    assert_int_equal(run_mpb(&d), 2);
    char *err = slurp(d.errors);
    char expect[200];
    snprintf(expect, sizeof expect,
             "%s:3:3: unknown field servlet.wrokers (did you mean "
             "workers?)",
             d.config);
    assert_non_null(strstr(err, expect));
    free(err);
    clean(&d);
}

static void
tracking_section_records_the_run(void **state)
{
    run_dir d;
    char config[512];
    char dir[] = "/tmp/mpb-run-track-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(config, sizeof config,
             "servlet:\n  plugin: passthrough\n  workers: 2\n  batch_size: 8\n"
             "tracking:\n  uri: file:%s/mlruns\n  experiment: cli\n  run_name: nightly\n"
             "  interval_ms: 200\n  log_payloads: true\n",
             dir);
    make_dir(&d, config);
    FILE *in = fopen(d.input, "w");
    for (int i = 0; i < 500; i++) {
        fprintf(in, "%d\n", i);
    }
    fclose(in);
    assert_int_equal(run_mpb(&d), 0);
    char *err = slurp(d.errors);
    char *at = strstr(err, "tracked as run ");
    assert_non_null(at);
    char run_id[33];
    memcpy(run_id, at + strlen("tracked as run "), 32);
    run_id[32] = '\0';
    free(err);

    char *uri = mpb_asprintf("file:%s/mlruns", dir);
    mpb_store *store = NULL;
    char msg[256];
    assert_int_equal(mpb_store_open(uri, &store, msg, sizeof msg), 0);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(store, run_id, &run, msg, sizeof msg), 0);
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    assert_string_equal(run->info.run_name, "nightly");
    int saw_items = 0;
    for (size_t i = 0; i < run->n_metrics; i++) {
        if (strcmp(run->metrics[i].key, "items") == 0) {
            saw_items = run->metrics[i].value == 500.0;
        }
    }
    assert_true(saw_items);
    int saw_plugin = 0;
    for (size_t i = 0; i < run->n_params; i++) {
        saw_plugin |= strcmp(run->params[i].key, "plugin") == 0 &&
                      strcmp(run->params[i].value, "passthrough") == 0;
    }
    assert_true(saw_plugin);
    mpb_metric_history *sizes = NULL;
    assert_int_equal(mpb_store_get_metric_history(store, run_id, "passthrough/batch_size", &sizes,
                                                  msg, sizeof msg),
                     0);
    double items = 0;
    for (size_t i = 0; i < sizes->n_metrics; i++) {
        items += sizes->metrics[i].value;
    }
    assert_true(items == 500.0);
    mpb_metric_history_free(&sizes);
    /* the config's tracking keys reach the tracker: every item in the
     * table, with payloads; intervals (the last one at stop) count them */
    char *table_path =
        mpb_asprintf("%s/mlruns/%s/%s/artifacts/items.json", dir, run->info.experiment_id, run_id);
    char *table = slurp(table_path);
    assert_non_null(strstr(table, "\"columns\": [\"index\", \"servlet\", \"status\", "
                                  "\"error_type\", \"latency_us\", \"batch\", \"input\", "
                                  "\"value\"]"));
    assert_non_null(strstr(table, ", \"499\", \"499\"]")); /* input and value of item 499 */
    free(table);
    free(table_path);
    mpb_metric_history *per_second = NULL;
    assert_int_equal(mpb_store_get_metric_history(store, run_id, "server/interval/items_per_s",
                                                  &per_second, msg, sizeof msg),
                     0);
    assert_true(per_second->n_metrics >= 1);
    mpb_metric_history_free(&per_second);
    mpb_run_free(&run);
    mpb_store_destroy(&store);
    free(uri);
    clean(&d);
    char *rm = mpb_asprintf("rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
    free(rm);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_lines_come_back_in_order_with_errors_in_place),
        cmocka_unit_test(f32_vectors_through_the_mlp),
        cmocka_unit_test(ensemble_results_print_as_arrays),
        cmocka_unit_test(each_result_comes_before_the_next_line),
        cmocka_unit_test(empty_input_ends_at_once),
        cmocka_unit_test(a_line_longer_than_a_read_from_a_file),
        cmocka_unit_test(failures_of_the_command_line_and_the_output_are_not_success),
        cmocka_unit_test(bad_config_exits_2_naming_file_and_line),
        cmocka_unit_test(tracking_section_records_the_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
