/*
 * mpb call --connect ENDPOINT: sends each input line as one item to a
 * running `mpb serve` (the client protocol, pipelined) and prints one JSON
 * line per item in input order, exactly as `mpb run` does; --health asks
 * the server how it is instead.
 */
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/client.h"
#include "mpbatch/error.h"
#include "tools/commands.h"
#include "tools/json_out.h"
#include "tools/line_input.h"

typedef struct call_io {
    mpb__line_input input;
    int f32;
    uint64_t items;
    uint64_t errors;
} call_io;

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: mpb call --connect ENDPOINT [--format text|f32] [--target PATH]\n"
            "                [--timeout-ms N] [--window N] [--stop-on-error] [--input FILE]\n"
            "       mpb call --connect ENDPOINT --health [--timeout-ms N]\n"
            "  Sends each line of FILE (default: standard input) as one item to a running\n"
            "  `mpb serve` and prints one JSON line per item, in input order.\n"
            "  --format text    each line's bytes are an item (default); f32: a JSON array\n"
            "                   of numbers sent as float32\n"
            "  --target PATH    call one servlet of the tree (pipeline/models/a)\n"
            "  --timeout-ms N   per-item deadline; also how long to wait for the server\n"
            "  --window N       items in flight (default 256)\n"
            "  --health         print the server's health as JSON; exit 0 when ready\n"
            "  --curve-server-key FILE  the server's certificate (.pub): call over CURVE\n"
            "  --curve-key FILE         this client's secret certificate (mpb keygen's .key)\n");
}

static int
next_line(void *ctx, const void **data, size_t *len)
{
    return mpb__line_input_next(&((call_io *)ctx)->input, data, len);
}

/* Before waiting for input, what was printed goes out. */
static int
input_ready(void *ctx, int *wait_fd)
{
    if (mpb__line_input_ready(&((call_io *)ctx)->input, wait_fd)) {
        return 1;
    }
    fflush(stdout);
    return 0;
}

static int
write_output(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)index;
    call_io *io = ctx;
    io->items++;
    io->errors += mpb_result_is_error(result);
    mpb__json_write_result(stdout, result, io->f32);
    fputc('\n', stdout);
    return ferror(stdout) ? MPB_EIO : 0;
}

static int
print_health(mpb_client *client, int timeout_ms)
{
    mpb_health health;
    int rc = mpb_client_health(client, timeout_ms > 0 ? timeout_ms : 5000, &health);
    if (rc != 0) {
        fprintf(stderr, "mpb call: no answer to a health request: %s\n", mpb_strerror(rc));
        return 1;
    }
    printf("{\"live\": %s, \"ready\": %s, \"workers\": %llu, \"in_flight\": %llu, "
           "\"capacity\": %llu}\n",
           health.live ? "true" : "false", health.ready ? "true" : "false",
           (unsigned long long)health.workers, (unsigned long long)health.in_flight,
           (unsigned long long)health.capacity);
    return health.ready ? 0 : 1;
}

int
mpb_cmd_call(int argc, char **argv)
{
    static const struct option options[] = {{"connect", required_argument, NULL, 'c'},
                                            {"format", required_argument, NULL, 'F'},
                                            {"target", required_argument, NULL, 't'},
                                            {"timeout-ms", required_argument, NULL, 'T'},
                                            {"window", required_argument, NULL, 'w'},
                                            {"stop-on-error", no_argument, NULL, 's'},
                                            {"input", required_argument, NULL, 'i'},
                                            {"health", no_argument, NULL, 'H'},
                                            {"curve-server-key", required_argument, NULL, 'S'},
                                            {"curve-key", required_argument, NULL, 'K'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *server_key = NULL;
    const char *own_key = NULL;
    const char *endpoint = NULL;
    const char *input_path = NULL;
    mpb_client_stream_options opts = {.return_exceptions = 1};
    call_io io = {0};
    int health = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:i:h", options, NULL)) != -1) {
        if (opt == 'c') {
            endpoint = optarg;
        } else if (opt == 'F' && (strcmp(optarg, "text") == 0 || strcmp(optarg, "f32") == 0)) {
            io.f32 = strcmp(optarg, "f32") == 0;
        } else if (opt == 't') {
            opts.target = optarg;
        } else if (opt == 'T' && atoi(optarg) > 0) {
            opts.item_timeout_ms = atoi(optarg);
            opts.idle_timeout_ms = atoi(optarg);
        } else if (opt == 'w' && atoi(optarg) > 0) {
            opts.window = (size_t)atoi(optarg);
        } else if (opt == 's') {
            opts.return_exceptions = 0;
        } else if (opt == 'i') {
            input_path = optarg;
        } else if (opt == 'H') {
            health = 1;
        } else if (opt == 'S') {
            server_key = optarg;
        } else if (opt == 'K') {
            own_key = optarg;
        } else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (endpoint == NULL || optind < argc) {
        usage(stderr);
        return 2;
    }
    if ((server_key == NULL) != (own_key == NULL)) {
        fprintf(stderr, "mpb call: --curve-server-key and --curve-key go together\n");
        return 2;
    }
    int fd = input_path ? open(input_path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fd < 0) {
        fprintf(stderr, "mpb call: %s: %s\n", input_path, strerror(errno));
        return 2;
    }
    mpb__line_input_init(&io.input, fd, io.f32);
    opts.input_ready = input_ready;
    mpb__line_output_setup(stdout);
    char err[512];
    mpb_client *client = mpb_client_new();
    int status = 1;
    if (server_key != NULL &&
        mpb_client_set_curve(client, server_key, own_key, err, sizeof err) != 0) {
        fprintf(stderr, "mpb call: %s\n", err);
    } else if (mpb_client_connect(client, endpoint, err, sizeof err) != 0) {
        fprintf(stderr, "mpb call: %s\n", err);
    } else if (health) {
        status = print_health(client, opts.item_timeout_ms);
    } else {
        int rc = mpb_client_stream(client, next_line, write_output, &io, &opts);
        fflush(stdout);
        status = rc == 0 ? 0 : rc == MPB_EITEM ? 3 : 1;
        if (io.input.bad_input[0] != '\0') {
            fprintf(stderr, "mpb call: %s\n", io.input.bad_input);
        } else if (rc != 0 && rc != MPB_EITEM) {
            fprintf(stderr, "mpb call: stopped: %s\n",
                    rc == MPB_ETIMEDOUT ? "no answer from the server (is mpb serve running?)"
                                        : mpb_strerror(rc));
        }
        fprintf(stderr, "mpb call: %llu items, %llu errors\n", (unsigned long long)io.items,
                (unsigned long long)io.errors);
    }
    mpb_client_destroy(&client);
    if (fd != STDIN_FILENO) {
        close(fd);
    }
    mpb__line_input_free(&io.input);
    return status;
}
