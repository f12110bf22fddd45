/*
 * mpb run --config pipeline.yaml [--input FILE]: streams each input line as
 * one item through the configured servlet and prints one JSON line per item,
 * in input order; an item's error prints in its place as {"error": {...}}.
 * io.format in the config says how lines become items: text (the line's
 * bytes) or f32 (a JSON array of numbers, sent as float32).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "mpbatch/config.h"
#include "mpbatch/error.h"
#include "mpbatch/server.h"
#include "mpbatch/server_tracker.h"
#include "mpbatch/tracking.h"
#include "tools/commands.h"
#include "tools/json_out.h"

typedef struct run_io {
    FILE *in;
    FILE *out;
    int f32;
    char *line;
    size_t line_cap;
    float *vector;
    size_t vector_cap;
    uint64_t read;
    uint64_t errors;
    char bad_input[256];
    int64_t start_ns;
    int64_t last_progress_ns;
    int progress;
    mpb_server *server;
} run_io;

/* Parses a JSON array of numbers into io->vector; 0 or MPB_EINVAL. */
static int
parse_f32(run_io *io, const char *line, size_t *count)
{
    cJSON *json = cJSON_Parse(line);
    if (json == NULL || !cJSON_IsArray(json)) {
        cJSON_Delete(json);
        return MPB_EINVAL;
    }
    size_t n = (size_t)cJSON_GetArraySize(json);
    if (n > io->vector_cap) {
        io->vector_cap = n * 2;
        io->vector = mpb_realloc(io->vector, io->vector_cap * sizeof(float));
    }
    size_t i = 0;
    for (cJSON *e = json->child; e != NULL; e = e->next) {
        if (!cJSON_IsNumber(e)) {
            cJSON_Delete(json);
            return MPB_EINVAL;
        }
        io->vector[i++] = (float)e->valuedouble;
    }
    cJSON_Delete(json);
    *count = n;
    return 0;
}

static int
next_line(void *ctx, const void **data, size_t *len)
{
    run_io *io = ctx;
    ssize_t got = getline(&io->line, &io->line_cap, io->in);
    if (got < 0) {
        return 0;
    }
    while (got > 0 && (io->line[got - 1] == '\n' || io->line[got - 1] == '\r')) {
        io->line[--got] = '\0';
    }
    io->read++;
    if (!io->f32) {
        *data = io->line;
        *len = (size_t)got;
        return 1;
    }
    size_t n = 0;
    if (parse_f32(io, io->line, &n) != 0) {
        snprintf(io->bad_input, sizeof io->bad_input,
                 "input line %llu is not a JSON array of numbers (io.format: f32)",
                 (unsigned long long)io->read);
        return MPB_EINVAL;
    }
    *data = io->vector;
    *len = n * sizeof(float);
    return 1;
}

static void
show_progress(run_io *io, uint64_t done)
{
    int64_t now = mpb_now_ns();
    if (!io->progress || now - io->last_progress_ns < 1000000000) {
        return;
    }
    io->last_progress_ns = now;
    double seconds = (double)(now - io->start_ns) / 1e9;
    fprintf(stderr, "\rmpb run: %llu items, %.0f items/s, %llu errors ", (unsigned long long)done,
            (double)done / seconds, (unsigned long long)io->errors);
}

static int
write_output(void *ctx, uint64_t index, const mpb_result *result)
{
    run_io *io = ctx;
    io->errors += mpb_result_is_error(result);
    mpb__json_write_result(io->out, result, io->f32);
    fputc('\n', io->out);
    show_progress(io, index + 1);
    return ferror(io->out) ? MPB_EIO : 0;
}

/* With a tracking: section, the run, its parameters and every batch's
 * telemetry go to the store it names. NULL when not asked for or failed. */
static mpb_server_tracker *
start_tracking(const mpb_config *config)
{
    const char *uri = mpb_config_get(config, "tracking.uri");
    const char *experiment = mpb_config_get(config, "tracking.experiment");
    if (uri == NULL && experiment == NULL) {
        return NULL;
    }
    char err[512] = "";
    char run_id[64];
    const char *run_name = mpb_config_get(config, "tracking.run_name");
    if ((uri != NULL && mpb_tracking_set_tracking_uri(uri, err, sizeof err) != 0) ||
        (experiment != NULL && mpb_tracking_set_experiment(experiment, err, sizeof err) != 0) ||
        mpb_tracking_start_run(run_name ? run_name : "mpb-run", run_id, sizeof run_id, err,
                               sizeof err) != 0) {
        fprintf(stderr, "mpb run: tracking: %s\n", err);
        return NULL;
    }
    /* every servlet setting of the tree, by its path below servlet. */
    for (size_t i = 0; i < mpb_config_count(config); i++) {
        const char *path = mpb_config_key(config, i);
        if (strncmp(path, "servlet.", 8) == 0) {
            mpb_tracking_log_param(path + 8, mpb_config_value(config, i));
        }
    }
    mpb_server_tracker *tracker = mpb_server_tracker_new(mpb_tracking_store(NULL, 0), run_id);
    if (mpb_server_tracker_start(tracker, err, sizeof err) != 0) {
        fprintf(stderr, "mpb run: tracking: %s\n", err);
        mpb_server_tracker_destroy(&tracker);
    }
    return tracker;
}

static void
finish_tracking(mpb_server_tracker *tracker, run_io *io, int status)
{
    mpb_server_tracker_destroy(&tracker);
    mpb_server_stats stats;
    mpb_server_stats_get(io->server, &stats);
    double seconds = (double)(mpb_now_ns() - io->start_ns) / 1e9;
    mpb_tracking_log_metric("items", (double)stats.completed, 0);
    mpb_tracking_log_metric("errors", (double)stats.errors, 0);
    mpb_tracking_log_metric("items_per_s", seconds > 0 ? (double)stats.completed / seconds : 0, 0);
    mpb_tracking_log_metric(
        "mean_batch_size",
        stats.batches ? (double)stats.batched_items / (double)stats.batches : 0.0, 0);
    char run_id[64] = "";
    mpb_tracking_active_run_id(run_id, sizeof run_id);
    char err[256];
    if (mpb_tracking_end_run(status == 0 ? MPB_RUN_FINISHED : MPB_RUN_FAILED, err, sizeof err) !=
        0) {
        fprintf(stderr, "mpb run: tracking: %s\n", err);
        return;
    }
    fprintf(stderr, "mpb run: tracked as run %s\n", run_id);
}

static void
usage(FILE *out)
{
    fprintf(out, "usage: mpb run --config pipeline.yaml [--input FILE] [--stop-on-error]\n"
                 "  Streams each line of FILE (default: standard input) through the servlet\n"
                 "  the config describes; prints one JSON line per input line, in order.\n"
                 "  --stop-on-error   stop at the first item error instead of printing it\n"
                 "                    in place (exit status 3)\n");
}

static int
print_summary(run_io *io, int rc)
{
    double seconds = (double)(mpb_now_ns() - io->start_ns) / 1e9;
    mpb_server_stats stats;
    mpb_server_stats_get(io->server, &stats);
    double mean = stats.batches ? (double)stats.batched_items / (double)stats.batches : 0.0;
    fprintf(stderr,
            "%smpb run: %llu items in %.2f s (%.0f items/s), %llu errors, %llu batches "
            "(mean size %.1f)\n",
            io->progress ? "\r" : "", (unsigned long long)stats.completed, seconds,
            seconds > 0 ? (double)stats.completed / seconds : 0.0, (unsigned long long)io->errors,
            (unsigned long long)stats.batches, mean);
    if (io->bad_input[0] != '\0') {
        fprintf(stderr, "mpb run: %s\n", io->bad_input);
        return 1;
    }
    if (rc == MPB_EITEM) {
        return 3;
    }
    if (rc != 0) {
        fprintf(stderr, "mpb run: stopped: %s\n", mpb_strerror(rc));
        return 1;
    }
    return 0;
}

int
mpb_cmd_run(int argc, char **argv)
{
    static const struct option options[] = {{"config", required_argument, NULL, 'c'},
                                            {"input", required_argument, NULL, 'i'},
                                            {"stop-on-error", no_argument, NULL, 's'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *config_path = NULL;
    const char *input_path = NULL;
    int stop_on_error = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:i:h", options, NULL)) != -1) {
        if (opt == 'c') {
            config_path = optarg;
        } else if (opt == 'i') {
            input_path = optarg;
        } else if (opt == 's') {
            stop_on_error = 1;
        } else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (config_path == NULL) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    mpb_config *config = NULL;
    if (mpb_config_load(config_path, &config, err, sizeof err) != 0) {
        fprintf(stderr, "mpb run: %s\n", err);
        return 2;
    }
    run_io io = {.in = stdin, .out = stdout};
    const char *format = mpb_config_get(config, "io.format");
    io.f32 = format != NULL && strcmp(format, "f32") == 0;
    if (input_path != NULL && (io.in = fopen(input_path, "r")) == NULL) {
        fprintf(stderr, "mpb run: %s: %s\n", input_path, strerror(errno));
        mpb_config_destroy(&config);
        return 2;
    }
    mpb_server_options server_options;
    mpb_config_server_options(config, &server_options);
    mpb_server_tracker *tracker = start_tracking(config);
    if (tracker != NULL) {
        server_options.on_batch = mpb_server_tracker_on_batch;
        server_options.on_batch_ctx = tracker;
    }
    mpb_servlet *servlet = mpb_config_servlet(config);
    io.server = mpb_server_new(&servlet, &server_options);
    int status = 1;
    if (mpb_server_start(io.server, err, sizeof err) != 0) {
        fprintf(stderr, "mpb run: %s\n", err);
        goto out;
    }
    io.progress = isatty(STDERR_FILENO);
    io.start_ns = mpb_now_ns();
    io.last_progress_ns = io.start_ns;
    mpb_stream_options stream = {.return_exceptions = !stop_on_error};
    int rc = mpb_server_stream(io.server, next_line, write_output, &io, &stream);
    fflush(io.out);
    mpb_server_stop(io.server);
    status = print_summary(&io, rc);
    if (tracker != NULL) {
        finish_tracking(tracker, &io, status);
        tracker = NULL;
    }
out:
    if (tracker != NULL) {
        mpb_server_tracker_destroy(&tracker);
        mpb_tracking_shutdown(1, NULL, 0);
    }
    mpb_server_destroy(&io.server);
    mpb_config_destroy(&config);
    if (io.in != stdin) {
        fclose(io.in);
    }
    free(io.line);
    free(io.vector);
    return status;
}
