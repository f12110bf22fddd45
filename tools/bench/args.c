/*
 * mpb bench's command line: its flags (usage), lists and ranges of each
 * axis, a sweep file or a model, turned into a plan with the defaults of
 * the default sweep; open loads at a share of capacity get a closed-loop
 * load in front of them.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/worker.h"
#include "tools/bench/bench_int.h"

#define MAX_OPTIONS 64

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: mpb bench [--model PLUGIN [--option KEY=VALUE]... [--dim N] | --config "
            "SWEEP.yaml]\n"
            "                 [--kind process,thread] [--workers LIST] [--batch-size LIST]\n"
            "                 [--wait-us LIST] [--load LOADS] [--seconds S | --items N]\n"
            "                 [--out DIR] [--json] [--no-baselines] [--no-plots] [--no-track]\n"
            "                 [--recommend --p99-ms MS]\n"
            "  With no arguments: the default sweep (mlp; 1 and 2 process workers; batch sizes\n"
            "  1, 8, 32, 128; wait auto; closed loop and open loop at 25-90 %% of capacity).\n"
            "  LIST: values and ranges, e.g. 1,8,32 or 1..128 (doubling) or 0..2000:500;\n"
            "        --wait-us also takes auto.\n"
            "  LOADS: closed[:N|auto] (N callers each waiting for its result), open:RATE\n"
            "        (Poisson arrivals, items/s), open:P%% or open:auto (25, 50, 75, 90 %% of\n"
            "        the closed-loop items/s); default closed:auto.\n"
            "  --seconds S       length of each load (default 2); --items N: N items instead\n"
            "  --out DIR         where the table, results.jsonl, results.csv and plots go\n"
            "                    (default: mpb-bench-DATE-TIME)\n"
            "  --json            JSON lines on standard output (one per point and baseline)\n"
            "  --no-baselines    skip bare (the plugin in-process), raw (a ZeroMQ echo) and\n"
            "                    rtt (one ZeroMQ round trip)\n"
            "  --no-track        do not record the sweep in the tracking store (default:\n"
            "                    MLFLOW_TRACKING_URI, else sqlite:///mlflow.db or an existing\n"
            "                    ./mlruns; experiment mpb-bench)\n"
            "  --recommend --p99-ms MS  print the configuration with the most items/s whose\n"
            "                    p99 stayed within MS, as a servlet: block\n");
}

enum {
    OPT_MODEL = 1000,
    OPT_OPTION,
    OPT_DIM,
    OPT_CONFIG,
    OPT_KIND,
    OPT_WORKERS,
    OPT_BATCH,
    OPT_WAIT,
    OPT_LOAD,
    OPT_SECONDS,
    OPT_ITEMS,
    OPT_OUT,
    OPT_JSON,
    OPT_NO_BASELINES,
    OPT_NO_PLOTS,
    OPT_NO_TRACK,
    OPT_RECOMMEND,
    OPT_P99,
    OPT_ECHO,
};

static const struct option long_options[] = {
    {"model", required_argument, NULL, OPT_MODEL},
    {"option", required_argument, NULL, OPT_OPTION},
    {"dim", required_argument, NULL, OPT_DIM},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"kind", required_argument, NULL, OPT_KIND},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"batch-size", required_argument, NULL, OPT_BATCH},
    {"wait-us", required_argument, NULL, OPT_WAIT},
    {"load", required_argument, NULL, OPT_LOAD},
    {"seconds", required_argument, NULL, OPT_SECONDS},
    {"items", required_argument, NULL, OPT_ITEMS},
    {"out", required_argument, NULL, OPT_OUT},
    {"json", no_argument, NULL, OPT_JSON},
    {"no-baselines", no_argument, NULL, OPT_NO_BASELINES},
    {"no-plots", no_argument, NULL, OPT_NO_PLOTS},
    {"no-track", no_argument, NULL, OPT_NO_TRACK},
    {"recommend", no_argument, NULL, OPT_RECOMMEND},
    {"p99-ms", required_argument, NULL, OPT_P99},
    {"echo", required_argument, NULL, OPT_ECHO},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct args {
    const char *model;
    const char *options[MAX_OPTIONS + 1];
    size_t n_options;
    long long dim;
    const char *config;
    const char *kinds;
    const char *workers;
    const char *batch;
    const char *wait;
    const char *load;
    int recommend;
} args;

/* 0 to go on, 1 to exit 0 (help), -1 on a bad argument (printed). */
static int
parse_args(int argc, char **argv, bench_plan *plan, args *a)
{
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case OPT_MODEL:
            a->model = optarg;
            break;
        case OPT_OPTION:
            if (a->n_options == MAX_OPTIONS) {
                fprintf(stderr, "mpb bench: at most %d --option\n", MAX_OPTIONS);
                return -1;
            }
            a->options[a->n_options++] = optarg;
            break;
        case OPT_DIM:
            a->dim = strtoll(optarg, &end, 10);
            if (*end != '\0' || a->dim < 1 || a->dim > 1 << 24) {
                fprintf(stderr, "mpb bench: --dim expects 1..%d\n", 1 << 24);
                return -1;
            }
            break;
        case OPT_CONFIG:
            a->config = optarg;
            break;
        case OPT_KIND:
            a->kinds = optarg;
            break;
        case OPT_WORKERS:
            a->workers = optarg;
            break;
        case OPT_BATCH:
            a->batch = optarg;
            break;
        case OPT_WAIT:
            a->wait = optarg;
            break;
        case OPT_LOAD:
            a->load = optarg;
            break;
        case OPT_SECONDS:
            if (mpb__bench_parse_seconds(optarg, &plan->seconds) != 0) {
                fprintf(stderr, "mpb bench: --seconds expects a number in (0, 3600]\n");
                return -1;
            }
            break;
        case OPT_ITEMS:
            plan->items = strtoll(optarg, &end, 10);
            if (*end != '\0' || plan->items < 1) {
                fprintf(stderr, "mpb bench: --items expects an integer >= 1\n");
                return -1;
            }
            break;
        case OPT_OUT:
            plan->out_dir = optarg;
            break;
        case OPT_JSON:
            plan->json = 1;
            break;
        case OPT_NO_BASELINES:
            plan->baselines = 0;
            break;
        case OPT_NO_PLOTS:
            plan->plots = 0;
            break;
        case OPT_NO_TRACK:
            plan->track = 0;
            break;
        case OPT_RECOMMEND:
            a->recommend = 1;
            break;
        case OPT_P99:
            plan->recommend_p99_ms = strtod(optarg, &end);
            if (*end != '\0' || !(plan->recommend_p99_ms > 0 && isfinite(plan->recommend_p99_ms))) {
                fprintf(stderr, "mpb bench: --p99-ms expects a number above 0\n");
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mpb bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (a->recommend != (plan->recommend_p99_ms > 0)) {
        fprintf(stderr, "mpb bench: --recommend and --p99-ms go together\n");
        return -1;
    }
    if (a->config != NULL && (a->model != NULL || a->n_options > 0 || a->dim != 0)) {
        fprintf(stderr, "mpb bench: --config names the servlet and its items; --model, --option "
                        "and --dim do not go with it (the file's sweep.dim or sweep.item does)\n");
        return -1;
    }
    if (plan->seconds > 0 && plan->items > 0) {
        fprintf(stderr, "mpb bench: --seconds and --items do not go together: give one\n");
        return -1;
    }
    return 0;
}

/* Axes from the arguments, then the sweep file, then the defaults. */
static int
build_plan(bench_plan *plan, const args *a, int no_arguments, char *err, size_t err_len)
{
    int rc = 0;
    if (a->kinds != NULL) {
        rc = mpb__bench_parse_kinds(plan, a->kinds, "--kind", err, err_len);
    }
    if (rc == 0 && a->workers != NULL) {
        rc = mpb__bench_parse_list(a->workers, "--workers", 1, MPB_BENCH_MAX_WORKERS,
                                   &plan->workers, &plan->n_workers, err, err_len);
    }
    if (rc == 0 && a->batch != NULL) {
        rc = mpb__bench_parse_list(a->batch, "--batch-size", 0, MPB_BENCH_MAX_BATCH,
                                   &plan->batch_sizes, &plan->n_batch_sizes, err, err_len);
    }
    if (rc == 0 && a->wait != NULL) {
        rc = mpb__bench_parse_waits(a->wait, &plan->waits, &plan->n_waits, err, err_len);
    }
    if (rc == 0 && a->load != NULL) {
        rc = mpb__bench_parse_loads(a->load, &plan->loads, &plan->n_loads, err, err_len);
    }
    if (rc == 0 && a->config != NULL) {
        rc = mpb__bench_load_sweep_file(plan, a->config, err, err_len);
    } else if (rc == 0) {
        rc = mpb__bench_model_config(plan, a->model ? a->model : "mlp", a->options, (size_t)a->dim,
                                     err, err_len);
    }
    if (rc != 0) {
        return rc;
    }
    if (plan->n_kinds == 0) {
        mpb__bench_parse_kinds(plan, "process", "", NULL, 0);
    }
    if (plan->n_workers == 0) {
        mpb__bench_parse_list("1,2", "", 1, MPB_BENCH_MAX_WORKERS, &plan->workers, &plan->n_workers,
                              NULL, 0);
    }
    if (plan->n_batch_sizes == 0) {
        mpb__bench_parse_list("1,8,32,128", "", 0, MPB_BENCH_MAX_BATCH, &plan->batch_sizes,
                              &plan->n_batch_sizes, NULL, 0);
    }
    if (plan->n_waits == 0) {
        mpb__bench_parse_waits("auto", &plan->waits, &plan->n_waits, NULL, 0);
    }
    if (plan->n_loads == 0) {
        mpb__bench_parse_loads(no_arguments ? "closed:auto,open:auto" : "closed:auto", &plan->loads,
                               &plan->n_loads, NULL, 0);
    }
    if (plan->seconds <= 0) {
        plan->seconds = 2;
    }
    return 0;
}

/* An open load at a share of capacity needs the closed-loop figure first:
 * put a closed:auto in front when there is no closed load. */
static void
closed_first(bench_plan *plan)
{
    int any_closed = 0;
    int any_share = 0;
    for (size_t i = 0; i < plan->n_loads; i++) {
        any_closed |= plan->loads[i].kind == LOAD_CLOSED;
        any_share |= plan->loads[i].share > 0;
    }
    if (any_share && !any_closed) {
        plan->loads = mpb_realloc(plan->loads, (plan->n_loads + 1) * sizeof *plan->loads);
        memmove(plan->loads + 1, plan->loads, plan->n_loads * sizeof *plan->loads);
        plan->loads[0] = (bench_load){LOAD_CLOSED, 0, 0};
        plan->n_loads++;
    }
    /* closed loads first: shares refer to the last closed figure */
    for (size_t i = 1; i < plan->n_loads; i++) {
        for (size_t j = i;
             j > 0 && plan->loads[j].kind == LOAD_CLOSED && plan->loads[j - 1].kind == LOAD_OPEN;
             j--) {
            bench_load t = plan->loads[j];
            plan->loads[j] = plan->loads[j - 1];
            plan->loads[j - 1] = t;
        }
    }
}

int
mpb__bench_plan_from_args(int argc, char **argv, bench_plan *plan)
{
    args a = {0};
    int parsed = parse_args(argc, argv, plan, &a);
    if (parsed != 0) {
        return parsed > 0 ? 1 : -1;
    }
    char err[1024];
    if (build_plan(plan, &a, argc == 1, err, sizeof err) != 0) {
        fprintf(stderr, "mpb bench: %s\n", err);
        return -1;
    }
    closed_first(plan);
    return 0;
}
