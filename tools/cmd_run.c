/*
 * DESIGN
 * mpb run --config pipeline.yaml [--input FILE]: streams each input line as
 * one item through the configured servlet and prints one JSON line per item,
 * in input order; an item's error prints in its place as {"error": {...}}.
 * io.format in the config says how lines become items: text (the line's
 * bytes) or f32 (a JSON array of numbers, sent as float32).
 *
 * Ending early: SIGINT and SIGTERM are blocked in every thread and taken by
 * a watcher thread. The first stops the input (the stream's wait includes
 * an eventfd the watcher writes), every item already in goes on to be
 * answered and printed, the workers stop, the tracking run ends KILLED and
 * the tool exits 128 + the signal. A closed output (a reader such as
 * `head` went away: EPIPE, SIGPIPE being ignored) stops the input the same
 * way and exits 141. A second signal exits at once, after removing the ipc
 * files (workers die with the process, PR_SET_PDEATHSIG).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "mpbatch/config.h"
#include "mpbatch/error.h"
#include "mpbatch/server.h"
#include "mpbatch/server_tracker.h"
#include "mpbatch/tracking.h"
#include "tools/commands.h"
#include "tools/interrupt.h"
#include "tools/json_out.h"
#include "tools/line_input.h"
#include "tools/tool_tracking.h"

#define EXIT_OUTPUT_CLOSED (128 + SIGPIPE)

typedef struct run_io {
    mpb__line_input input;
    mpb__interrupt *interrupt;
    int wait_fd;       /* an epoll set of the input and interrupt->wake_fd, or -1 */
    int no_epoll;      /* the input cannot be in one (a regular file): wait on it alone */
    int output_closed; /* a write failed with EPIPE */
    FILE *out;
    int f32;
    uint64_t errors;
    int64_t start_ns;
    int64_t last_progress_ns;
    int progress;
    mpb_server *server;
} run_io;

/* 1 once the input must stop: a signal came, or nobody reads the output. */
static int
stopping(const run_io *io)
{
    return mpb__interrupt_signal(io->interrupt) != 0 || io->output_closed;
}

/* Notes a failed write; EPIPE means the reader went away. */
static int
check_output(run_io *io)
{
    if (!ferror(io->out)) {
        return 0;
    }
    io->output_closed |= errno == EPIPE;
    return MPB_EIO;
}

static int
next_line(void *ctx, const void **data, size_t *len)
{
    run_io *io = ctx;
    if (stopping(io)) {
        return 0; /* the end of input, as far as the stream is concerned */
    }
    return mpb__line_input_next(&io->input, data, len);
}

/* Before the stream waits for input, what was printed goes out: a reader
 * downstream sees each result while no new line comes. The wait also ends
 * at the first signal. */
static int
input_ready(void *ctx, int *wait_fd)
{
    run_io *io = ctx;
    if (stopping(io) || mpb__line_input_ready(&io->input, wait_fd)) {
        return 1;
    }
    fflush(io->out);
    if (check_output(io) != 0) {
        return 1; /* next_line ends the input */
    }
    if (*wait_fd >= 0 && !io->no_epoll) {
        if (io->wait_fd < 0) {
            io->wait_fd = epoll_create1(EPOLL_CLOEXEC);
            struct epoll_event in = {.events = EPOLLIN, .data.fd = *wait_fd};
            struct epoll_event wake = {.events = EPOLLIN, .data.fd = io->interrupt->wake_fd};
            if (io->wait_fd < 0 || epoll_ctl(io->wait_fd, EPOLL_CTL_ADD, *wait_fd, &in) != 0) {
                /* a regular file (EPERM): it never blocks, so wait on it alone */
                if (io->wait_fd >= 0) {
                    close(io->wait_fd);
                }
                io->wait_fd = -1;
                io->no_epoll = 1;
                return 0;
            }
            epoll_ctl(io->wait_fd, EPOLL_CTL_ADD, io->interrupt->wake_fd, &wake);
        }
        *wait_fd = io->wait_fd; /* readable when either is */
    }
    return 0;
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
    return check_output(io);
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

/* The exit status, after the summary line. */
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
    int sig = mpb__interrupt_signal(io->interrupt);
    if (sig != 0) {
        fprintf(stderr, "mpb run: stopped by %s\n", strsignal(sig));
        return 128 + sig;
    }
    if (io->output_closed) {
        fprintf(stderr, "mpb run: output closed; stopped reading input\n");
        return EXIT_OUTPUT_CLOSED;
    }
    if (io->input.bad_input[0] != '\0') {
        fprintf(stderr, "mpb run: %s\n", io->input.bad_input);
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
    if (config_path == NULL || optind < argc) {
        if (optind < argc) {
            fprintf(stderr, "mpb run: unexpected argument '%s' (input comes from --input or "
                            "standard input)\n",
                    argv[optind]);
        }
        usage(stderr);
        return 2;
    }
    char err[1024];
    mpb_config *config = NULL;
    if (mpb_config_load(config_path, &config, err, sizeof err) != 0) {
        fprintf(stderr, "mpb run: %s\n", err);
        return 2;
    }
    if (mpb__tool_resolve_models(config, "mpb run") != 0) {
        mpb_config_destroy(&config);
        return 2;
    }
    run_io io = {.out = stdout};
    const char *format = mpb_config_get(config, "io.format");
    io.f32 = format != NULL && strcmp(format, "f32") == 0;
    int fd = input_path ? open(input_path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fd < 0) {
        fprintf(stderr, "mpb run: %s: %s\n", input_path, strerror(errno));
        mpb_config_destroy(&config);
        return 2;
    }
    mpb__line_input_init(&io.input, fd, io.f32);
    /* signals go to the watcher alone (threads made from here on inherit
     * the mask); a closed output is an error to handle, not a death */
    mpb__interrupt in;
    mpb__interrupt_start(&in, "mpb run", "reading no more input; answering what is in flight");
    signal(SIGPIPE, SIG_IGN);
    io.interrupt = &in;
    io.wait_fd = -1;
    mpb_server_tracker *tracker = NULL;
    io.server = mpb__tool_server_new(config, "mpb run", &tracker);
    int status = 1;
    if (mpb_server_start(io.server, err, sizeof err) != 0) {
        fprintf(stderr, "mpb run: %s\n", err);
        goto out;
    }
    mpb__line_output_setup(stdout);
    io.progress = isatty(STDERR_FILENO);
    io.start_ns = mpb_now_ns();
    io.last_progress_ns = io.start_ns;
    mpb_stream_options stream = {.return_exceptions = !stop_on_error, .input_ready = input_ready};
    int rc = mpb_server_stream(io.server, next_line, write_output, &io, &stream);
    fflush(io.out);
    if (check_output(&io) != 0 && rc == 0) {
        rc = MPB_EIO; /* the last writes failed when flushed: say so */
    }
    mpb_server_stop(io.server);
    status = print_summary(&io, rc);
    if (tracker != NULL) {
        int stopped = mpb__interrupt_signal(&in) != 0 || io.output_closed;
        mpb_run_status end = status == 0 ? MPB_RUN_FINISHED
                             : stopped   ? MPB_RUN_KILLED
                                         : MPB_RUN_FAILED;
        mpb__tool_tracking_finish(tracker, io.server, io.start_ns, end, "mpb run");
        tracker = NULL;
    }
out:
    if (tracker != NULL) {
        mpb_server_tracker_destroy(&tracker);
        mpb_tracking_shutdown(1, NULL, 0);
    }
    mpb_server_destroy(&io.server);
    mpb_config_destroy(&config);
    if (fd != STDIN_FILENO) {
        close(fd);
    }
    mpb__line_input_free(&io.input);
    mpb__interrupt_stop(&in);
    if (io.wait_fd >= 0) {
        close(io.wait_fd);
    }
    return status;
}
