/*
 * `mpb bench` end to end, the real executable: a configuration's JSON rows
 * (one per baseline) and their ratios, the CSV and the tracked runs;
 * latencies that mean what they say (a model that sleeps 2 ms shows 2 ms);
 * an open loop that charges a late server for the wait; a sweep file with
 * its plots; the recommendation; and bad arguments refused.
 */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_helpers.h"

static void
one_configuration_prints_a_row_per_baseline(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    assert_int_equal(bench(&d, "--model passthrough --workers 2 --batch-size 8 --seconds 0.3 "
                               "--json --out res"),
                     0);
    char *out = slurp(d.out);
    char *save = NULL;
    const char *expect[] = {"bare", "raw", "rtt"};
    int rows = 0;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *row = cJSON_Parse(line);
        assert_non_null(row);
        assert_true(rows < 3);
        assert_string_equal(cJSON_GetObjectItem(row, "baseline")->valuestring, expect[rows]);
        assert_string_equal(cJSON_GetObjectItem(row, "model")->valuestring, "passthrough");
        assert_string_equal(cJSON_GetObjectItem(row, "kind")->valuestring, "process");
        assert_int_equal((int)number(row, "workers"), 2);
        assert_int_equal((int)number(row, "batch_size"), 8);
        assert_string_equal(cJSON_GetObjectItem(row, "load")->valuestring, "closed:256");
        assert_true(number(row, "items") > 1000);
        assert_true(number(row, "errors") == 0);
        assert_true(number(row, "items_per_s") > 0);
        assert_true(number(row, "p50_us") > 0);
        assert_true(number(row, "p50_us") <= number(row, "p99_us"));
        assert_true(number(row, "p99_us") <= number(row, "p999_us"));
        assert_true(number(row, "mean_batch") > 0 && number(row, "mean_batch") <= 8);
        double base = number(row, "baseline_items_per_s");
        assert_true(base > 0);
        double ratio = number(row, "ratio");
        double expected = rows < 2 ? number(row, "items_per_s") / base
                                   : number(row, "p50_us") / number(row, "baseline_p50_us");
        assert_true(ratio > 0.99 * expected && ratio < 1.01 * expected);
        cJSON_Delete(row);
        rows++;
    }
    assert_int_equal(rows, 3);
    free(out);

    char path[256];
    snprintf(path, sizeof path, "%s/res/results.csv", d.path);
    char *csv = slurp(path);
    assert_int_equal(count_lines(csv), 2); /* header and the one point */
    assert_non_null(strstr(csv, "passthrough,process,2,8,auto,closed:256,closed,"));
    free(csv);

    /* the sweep as a parent run, the point as a nested run, the files as
     * the parent's artifacts */
    char *err = slurp(d.err);
    char *at = strstr(err, "tracked as run ");
    assert_non_null(at);
    char run_id[33];
    memcpy(run_id, at + strlen("tracked as run "), 32);
    run_id[32] = '\0';
    free(err);
    char *uri = mpb_asprintf("file:%s/mlruns", d.path);
    mpb_store *store = NULL;
    char msg[256];
    assert_int_equal(mpb_store_open(uri, &store, msg, sizeof msg), 0);
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(store, run_id, &run, msg, sizeof msg), 0);
    assert_int_equal(run->info.status, MPB_RUN_FINISHED);
    int saw_model = 0;
    for (size_t i = 0; i < run->n_params; i++) {
        saw_model |= strcmp(run->params[i].key, "model") == 0 &&
                     strcmp(run->params[i].value, "passthrough") == 0;
    }
    assert_true(saw_model);
    const char *artifacts = run->info.artifact_uri;
    if (strncmp(artifacts, "file://", 7) == 0) {
        artifacts += 7;
    }
    snprintf(path, sizeof path, "%s/results.csv", artifacts);
    assert_true(exists(path));
    char filter[128];
    snprintf(filter, sizeof filter, "tags.mlflow.parentRunId = '%s'", run_id);
    mpb_search_opts opts = {.filter = filter, .max_results = 10};
    const char *experiments[] = {run->info.experiment_id};
    mpb_run_page *page = NULL;
    assert_int_equal(mpb_store_search_runs(store, experiments, 1, &opts, &page, msg, sizeof msg),
                     0);
    assert_int_equal(page->n_runs, 1);
    int saw_rate = 0;
    for (size_t i = 0; i < page->runs[0].n_metrics; i++) {
        saw_rate |= strcmp(page->runs[0].metrics[i].key, "items_per_s") == 0 &&
                    page->runs[0].metrics[i].value > 0;
    }
    assert_true(saw_rate);
    /* every figure of the JSON row, the rtt's p99 too, and the sweep's loads */
    const char *figures[] = {"max_us", "seconds", "batches", "concurrency", "rtt_p99_us"};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        if (!has_metric(&page->runs[0], figures[i])) {
            fail_msg("the point's run has no %s", figures[i]);
        }
    }
    assert_non_null(param(run, "load"));
    assert_string_equal(param(run, "load"), "closed:auto");
    mpb_run_page_free(&page);
    mpb_run_free(&run);
    mpb_store_destroy(&store);
    free(uri);
    remove_dir(&d);
}

static cJSON *
only_row(const bench_dir *d)
{
    char *out = slurp(d->out);
    cJSON *row = cJSON_Parse(out);
    free(out);
    assert_non_null(row);
    return row;
}

/* A model that sleeps 2 ms a batch, one caller: every latency is one
 * batch, so p50 is 2 ms and a bit, and items/s about 500. */
static void
latencies_mean_what_they_say(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    assert_int_equal(bench(&d, "--model sleep --option batch_cost_us=2000 --option item_cost_us=0 "
                               "--workers 1 --batch-size 1 --load closed:1 --seconds 0.5 --json "
                               "--no-baselines --no-track --no-plots --out res"),
                     0);
    cJSON *row = only_row(&d);
    double p50 = number(row, "p50_us");
    assert_true(p50 >= 2000 && p50 < 5000);
    double rate = number(row, "items_per_s");
    assert_true(rate > 150 && rate <= 500);
    assert_true(number(row, "mean_batch") == 1);
    cJSON_Delete(row);
    remove_dir(&d);
}

/* An open loop past the server's capacity: items queue, and each one's
 * latency counts from when it was due, not from when the feeder got to it:
 * p99 grows to a large part of the run. Below capacity it stays a batch. */
static void
an_open_loop_charges_the_wait(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    const char *model = "--model sleep --option batch_cost_us=1000 --option item_cost_us=0 "
                        "--workers 1 --batch-size 1 --seconds 0.5 --json --no-baselines "
                        "--no-track --no-plots --out res";
    char args[512];
    snprintf(args, sizeof args, "%s --load open:100", model);
    assert_int_equal(bench(&d, args), 0);
    cJSON *row = only_row(&d);
    assert_true(number(row, "offered_per_s") == 100);
    assert_true(number(row, "items") >= 20 && number(row, "items") <= 100);
    assert_true(number(row, "p50_us") >= 1000 && number(row, "p50_us") < 20000);
    cJSON_Delete(row);
    /* three times what one worker at 1 ms an item can do */
    snprintf(args, sizeof args, "%s --load open:3000", model);
    assert_int_equal(bench(&d, args), 0);
    row = only_row(&d);
    assert_true(number(row, "items_per_s") < 1200);
    assert_true(number(row, "p99_us") > 200000);
    cJSON_Delete(row);
    remove_dir(&d);
}

static void
a_sweep_file_runs_every_point_and_plots(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    char path[256];
    snprintf(path, sizeof path, "%s/sweep.yaml", d.path);
    FILE *f = fopen(path, "w");
    fputs("servlet:\n  plugin: passthrough\nsweep:\n  workers: 1\n  batch_size: [4, 16]\n"
          "  load: [closed, open:auto]\n  seconds: 0.2\n  dim: 4\n",
          f);
    fclose(f);
    assert_int_equal(bench(&d, "--config sweep.yaml --no-baselines --no-track --out res"), 0);
    snprintf(path, sizeof path, "%s/res/results.csv", d.path);
    char *csv = slurp(path);
    assert_int_equal(count_lines(csv), 1 + 2 * 5); /* 2 points x (closed + 4 open) */
    assert_non_null(strstr(csv, "passthrough,process,1,16,auto,open:"));
    /* baselines not measured: their seven cells are empty, not 0 */
    assert_non_null(strstr(csv, ",,,,,,,\n"));
    free(csv);
    if (access("/usr/bin/gnuplot", X_OK) == 0) {
        snprintf(path, sizeof path, "%s/res/throughput.png", d.path);
        assert_true(exists(path));
        snprintf(path, sizeof path, "%s/res/latency.png", d.path);
        assert_true(exists(path));
    }
    remove_dir(&d);
}

static void
recommend_prints_a_servlet_block(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    const char *sweep = "--model passthrough --workers 1 --batch-size 2,8 --seconds 0.2 "
                        "--no-baselines --no-track --no-plots --out res --recommend";
    char args[512];
    snprintf(args, sizeof args, "%s --p99-ms 10000", sweep);
    assert_int_equal(bench(&d, args), 0);
    char *out = slurp(d.out);
    assert_non_null(strstr(out, "servlet:\n  plugin: passthrough\n  kind: process\n"
                                "  workers: 1\n  batch_size: "));
    free(out);
    snprintf(args, sizeof args, "%s --p99-ms 0.0001", sweep);
    assert_int_equal(bench(&d, args), 0);
    out = slurp(d.out);
    assert_non_null(strstr(out, "no configuration kept p99 within"));
    free(out);
    remove_dir(&d);
}

/* mlp told its input_dim by --option gets items of that many floats */
static void
items_match_the_models_input_dim(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    assert_int_equal(bench(&d, "--model mlp --option input_dim=8 --option hidden_dim=8 "
                               "--option output_dim=2 --workers 1 --batch-size 4 --load closed:2 "
                               "--seconds 0.2 --json --no-baselines --no-track --no-plots "
                               "--out res"),
                     0);
    cJSON *row = only_row(&d);
    assert_true(number(row, "items") > 0);
    assert_true(number(row, "errors") == 0);
    cJSON_Delete(row);
    remove_dir(&d);
}

/* Open loads too slow for any item in the window: each keeps its own
 * label, a duration of the window (not negative), no plot is claimed,
 * and the baselines skipped are not logged as 0. */
static void
loads_that_answer_nothing_are_reported_honestly(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    assert_int_equal(bench(&d, "--model passthrough --workers 1 --batch-size 1 "
                               "--load open:0.0001,open:0.0002 --seconds 0.2 --json --no-baselines "
                               "--out res"),
                     0);
    char *out = slurp(d.out);
    assert_int_equal(count_lines(out), 2);
    char *save = NULL;
    const char *labels[] = {"open:0.0001", "open:0.0002"};
    int rows = 0;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *row = cJSON_Parse(line);
        assert_non_null(row);
        assert_string_equal(cJSON_GetObjectItem(row, "load")->valuestring, labels[rows++]);
        assert_true(number(row, "items") == 0);
        assert_true(number(row, "seconds") >= 0.15);
        cJSON_Delete(row);
    }
    free(out);
    char *err = slurp(d.err);
    assert_non_null(strstr(err, "(no plots)"));
    free(err);
    char path[256];
    snprintf(path, sizeof path, "%s/res/latency.png", d.path);
    assert_false(access(path, F_OK) == 0);

    mpb_store *store = NULL;
    mpb_run *run = tracked_run(&d, &store);
    const char *artifacts = run->info.artifact_uri;
    artifacts += strncmp(artifacts, "file://", 7) == 0 ? 7 : 0;
    snprintf(path, sizeof path, "%s/latency.png", artifacts);
    assert_false(access(path, F_OK) == 0);
    mpb_run_page *page = nested_runs(store, run);
    assert_int_equal(page->n_runs, 2);
    assert_false(has_metric(&page->runs[0], "bare_items_per_s"));
    assert_false(has_metric(&page->runs[0], "ratio_raw"));
    mpb_run_page_free(&page);
    mpb_run_free(&run);
    mpb_store_destroy(&store);
    remove_dir(&d);
}

/* closed:1 and closed:4 are two throughput curves, and a value given
 * twice is one point */
static void
closed_loads_are_separate_curves(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    assert_int_equal(bench(&d, "--model passthrough --workers 1 --batch-size 1,2,2 "
                               "--load closed:1,closed:4,closed:4 --items 200 --no-baselines "
                               "--no-track --out res"),
                     0);
    char path[256];
    snprintf(path, sizeof path, "%s/res/results.csv", d.path);
    char *csv = slurp(path);
    assert_int_equal(count_lines(csv), 1 + 2 * 2);
    free(csv);
    snprintf(path, sizeof path, "%s/res/plots.dat", d.path);
    char *dat = slurp(path);
    assert_non_null(strstr(dat, "closed:1\"\n1 "));
    assert_non_null(strstr(dat, "closed:4\"\n1 "));
    free(dat);
    remove_dir(&d);
}

/* A model and no axis: the default points, each with the closed loop
 * alone (open loops too only with no arguments at all, as docs/bench.md
 * says) */
static void
the_default_load_is_closed(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    assert_int_equal(bench(&d, "--model passthrough --items 50 --json --no-baselines --no-track "
                               "--no-plots --out res"),
                     0);
    char *out = slurp(d.out);
    assert_int_equal(count_lines(out), 2 * 4); /* workers 1, 2 x batch sizes 1, 8, 32, 128 */
    assert_null(strstr(out, "\"load\": \"open:"));
    free(out);
    remove_dir(&d);
}

/* SIGINT mid-sweep: what was measured is written, the parent run ends
 * KILLED, and the exit status says which signal. Its 256 waits are a
 * param in full (not cut at 490 characters). */
static void
an_interrupted_sweep_keeps_what_it_measured(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    char *mpb = tool_path("mpb");
    char *cmd = mpb_asprintf("cd %s && MLFLOW_TRACKING_URI=file:%s/mlruns exec %s bench "
                             "--model passthrough --workers 1 --batch-size 1 --seconds 2 "
                             "--wait-us 1000000000..1000000255:1 --no-baselines --no-plots "
                             "--out res > %s 2> %s",
                             d.path, d.path, mpb, d.out, d.err);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    struct timespec wait = {2, 0};
    nanosleep(&wait, NULL);
    kill(pid, SIGINT);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 130);
    free(cmd);
    free(mpb);
    char path[256];
    snprintf(path, sizeof path, "%s/res/results.csv", d.path);
    char *csv = slurp(path);
    assert_true(count_lines(csv) >= 2 && count_lines(csv) < 5);
    free(csv);
    mpb_store *store = NULL;
    mpb_run *run = tracked_run(&d, &store);
    assert_int_equal(run->info.status, MPB_RUN_KILLED);
    const char *waits = param(run, "batch_wait_us");
    assert_non_null(waits);
    assert_int_equal(strlen(waits), 256 * 10 + 255);
    assert_non_null(strstr(waits, ",1000000255"));
    mpb_run_free(&run);
    mpb_store_destroy(&store);
    remove_dir(&d);
}

/* A sweep file for passthrough with one more line under sweep:. */
static void
write_sweep(const bench_dir *d, const char *name, const char *line)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", d->path, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "servlet:\n  plugin: passthrough\nsweep:\n  %s\n", line);
    fclose(f);
}

static void
bad_arguments_are_refused(void **state)
{
    (void)state;
    bench_dir d;
    make_dir(&d);
    struct {
        const char *args;
        const char *says;
    } cases[] = {
        {"--batch-size 8,x", "--batch-size: 'x' is not a value"},
        {"--workers 0", "--workers: '0' is not a value from 1 to 4096"},
        {"--batch-size 1..2000000", "--batch-size: '1..2000000' is not a value from 0 to"},
        {"--load open:", "load: 'open:' is not"},
        {"--load sideways", "load: 'sideways' is not"},
        {"--wait-us soon", "'soon' is not a value"},
        {"--kind fork", "--kind: 'fork' is not process or thread"},
        {"--recommend", "--recommend and --p99-ms go together"},
        {"--model nosuchplugin --no-track", "nosuchplugin"},
        {"--config nosuchfile.yaml", "nosuchfile.yaml"},
        {"--config x.yaml --model mlp", "do not go with it"},
        {"--config x.yaml --dim 4", "--dim do not go with it"},
        {"--model mlp --option input_dim=8 --dim 4", "--dim 4 and --option input_dim=8 disagree"},
        {"--load open:inf", "load: 'open:inf' is not"},
        {"--load open:1e300", "load: 'open:1e300' is not"},
        {"--load open:1e-300", "load: 'open:1e-300' is not"},
        {"--load closed:2.7", "load: 'closed:2.7' is not"},
        {"--seconds nan", "--seconds expects"},
        {"--seconds 1 --items 5", "--seconds and --items do not go together"},
        /* ranges past a pool's bounds are refused (once, they overflowed) */
        {"--batch-size 1..9223372036854775807", "'1..9223372036854775807' is not a value from"},
        {"--wait-us 1..9223372036854775807:4611686018427387904", "is not a value from 0 to"},
        {"--config seconds-unit.yaml", "sweep.seconds must be a number of seconds"},
        {"--config seconds-long.yaml", "sweep.seconds must be a number of seconds"},
    };
    write_sweep(&d, "seconds-unit.yaml", "seconds: 2s");
    write_sweep(&d, "seconds-long.yaml", "seconds: 7200");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(bench(&d, cases[i].args), 2);
        char *err = slurp(d.err);
        if (strstr(err, cases[i].says) == NULL) {
            fail_msg("mpb bench %s said '%s', not '%s'", cases[i].args, err, cases[i].says);
        }
        free(err);
    }
    remove_dir(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_configuration_prints_a_row_per_baseline),
        cmocka_unit_test(latencies_mean_what_they_say),
        cmocka_unit_test(an_open_loop_charges_the_wait),
        cmocka_unit_test(a_sweep_file_runs_every_point_and_plots),
        cmocka_unit_test(recommend_prints_a_servlet_block),
        cmocka_unit_test(items_match_the_models_input_dim),
        cmocka_unit_test(loads_that_answer_nothing_are_reported_honestly),
        cmocka_unit_test(closed_loads_are_separate_curves),
        cmocka_unit_test(the_default_load_is_closed),
        cmocka_unit_test(an_interrupted_sweep_keeps_what_it_measured),
        cmocka_unit_test(bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
