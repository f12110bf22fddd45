/*
 * mpb bench: sweeps kind x workers x batch size x wait x load over a model
 * (or a sweep file's servlet tree), each point measured next to baselines
 * from the same run; prints a table (or JSON lines), writes a CSV, JSON,
 * plots and the table into an output folder, and tracks the sweep as a
 * parent run with a nested run per point. docs/bench.md says how to read
 * the figures.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/tracking.h"
#include "mpbatch/worker.h"
#include "tools/bench/bench_int.h"
#include "tracking/fs_util.h"
#include "tools/commands.h"

#define MAX_OPTIONS 64
#define RTT_CALLS 2000

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
            "                    MLFLOW_TRACKING_URI, else ./mlruns; experiment mpb-bench)\n"
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
    int any_axis;
} args;

static int
parse_kinds(bench_plan *plan, const char *text, char *err, size_t err_len)
{
    for (const char *k = text; *k;) {
        size_t len = strcspn(k, ",");
        const char *kind = len == 7 && strncmp(k, "process", 7) == 0  ? "process"
                           : len == 6 && strncmp(k, "thread", 6) == 0 ? "thread"
                                                                      : NULL;
        if (kind == NULL) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "--kind: '%.*s' is not process or thread", (int)len, k);
        }
        plan->kinds = mpb_realloc(plan->kinds, (plan->n_kinds + 1) * sizeof(char *));
        plan->kinds[plan->n_kinds++] = kind;
        k += len + (k[len] == ',');
    }
    return 0;
}

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
            a->any_axis = 1;
            break;
        case OPT_WORKERS:
            a->workers = optarg;
            a->any_axis = 1;
            break;
        case OPT_BATCH:
            a->batch = optarg;
            a->any_axis = 1;
            break;
        case OPT_WAIT:
            a->wait = optarg;
            a->any_axis = 1;
            break;
        case OPT_LOAD:
            a->load = optarg;
            a->any_axis = 1;
            break;
        case OPT_SECONDS:
            plan->seconds = strtod(optarg, &end);
            if (*end != '\0' || plan->seconds <= 0 || plan->seconds > 3600) {
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
            if (*end != '\0' || plan->recommend_p99_ms <= 0) {
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
    if (a->config != NULL && (a->model != NULL || a->n_options > 0)) {
        fprintf(stderr, "mpb bench: --config names the servlet; --model and --option do not "
                        "go with it\n");
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
        rc = parse_kinds(plan, a->kinds, err, err_len);
    }
    if (rc == 0 && a->workers != NULL) {
        rc = mpb__bench_parse_list(a->workers, "--workers", 1, &plan->workers, &plan->n_workers,
                                   err, err_len);
    }
    if (rc == 0 && a->batch != NULL) {
        rc = mpb__bench_parse_list(a->batch, "--batch-size", 0, &plan->batch_sizes,
                                   &plan->n_batch_sizes, err, err_len);
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
        rc = mpb__bench_model_config(plan, a->model ? a->model : "mlp", a->options,
                                     a->dim ? (size_t)a->dim : 256, err, err_len);
    }
    if (rc != 0) {
        return rc;
    }
    if (plan->n_kinds == 0) {
        parse_kinds(plan, "process", NULL, 0);
    }
    if (plan->n_workers == 0) {
        mpb__bench_parse_list("1,2", "", 1, &plan->workers, &plan->n_workers, NULL, 0);
    }
    if (plan->n_batch_sizes == 0) {
        mpb__bench_parse_list("1,8,32,128", "", 0, &plan->batch_sizes, &plan->n_batch_sizes, NULL,
                              0);
    }
    if (plan->n_waits == 0) {
        mpb__bench_parse_waits("auto", &plan->waits, &plan->n_waits, NULL, 0);
    }
    if (plan->n_loads == 0) {
        mpb__bench_parse_loads(no_arguments || (!a->any_axis && a->config == NULL)
                                   ? "closed:auto,open:auto"
                                   : "closed:auto",
                               &plan->loads, &plan->n_loads, NULL, 0);
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

typedef struct progress {
    int on;
    size_t done;
    size_t total;
    int64_t start_ns;
} progress;

static void
show_progress(progress *p, const char *what)
{
    if (!p->on) {
        return;
    }
    int width = 24;
    int filled = p->total ? (int)((double)p->done / (double)p->total * width) : 0;
    char bar[32];
    for (int i = 0; i < width; i++) {
        bar[i] = i < filled ? '#' : '.';
    }
    bar[width] = '\0';
    double elapsed = (double)(mpb_now_ns() - p->start_ns) / 1e9;
    double left = p->done ? elapsed / (double)p->done * (double)(p->total - p->done) : 0;
    fprintf(stderr, "\r[%s] %zu/%zu  %-40.40s  %02d:%02d left ", bar, p->done, p->total, what,
            (int)left / 60, (int)left % 60);
    fflush(stderr);
}

typedef struct sweep {
    bench_plan *plan;
    bench_row *rows;
    size_t n_rows;
    FILE *table; /* the table file, or NULL */
    FILE *jsonl; /* results.jsonl, or NULL */
    progress prog;
    double rtt_p50, rtt_p99;
} sweep;

static void
emit(sweep *s, bench_row *row)
{
    bench_plan *plan = s->plan;
    if (s->prog.on) {
        fprintf(stderr, "\r%*s\r", 100, "");
    }
    if (plan->json) {
        mpb__bench_json_rows(stdout, plan, row);
        fflush(stdout);
    } else {
        mpb__bench_table_row(stdout, plan, row);
        fflush(stdout);
    }
    if (s->table != NULL) {
        mpb__bench_table_row(s->table, plan, row);
    }
    if (s->jsonl != NULL) {
        mpb__bench_json_rows(s->jsonl, plan, row);
    }
    if (plan->track) {
        mpb__bench_track_row(plan, row);
    }
}

static bench_baselines
baselines_for(sweep *s, const bench_point *p)
{
    bench_baselines b = {0, 0, s->rtt_p50, s->rtt_p99};
    if (!s->plan->baselines) {
        return b;
    }
    /* the same model and batch size measured once per sweep */
    for (size_t i = 0; i < s->n_rows; i++) {
        const bench_row *r = &s->rows[i];
        if (r->point.batch_size == p->batch_size && r->base.bare_items_per_s > 0) {
            b.bare_items_per_s = r->base.bare_items_per_s;
        }
        if (r->point.batch_size == p->batch_size && r->point.workers == p->workers &&
            r->base.raw_items_per_s > 0) {
            b.raw_items_per_s = r->base.raw_items_per_s;
        }
    }
    char err[256] = "";
    if (b.bare_items_per_s == 0 && s->plan->plugin != NULL) {
        show_progress(&s->prog, "bare model");
        b.bare_items_per_s = mpb__bench_bare(s->plan, p->batch_size, err, sizeof err);
        if (b.bare_items_per_s == 0 && err[0] != '\0') {
            fprintf(stderr, "\rmpb bench: bare baseline: %s\n", err);
        }
    }
    if (b.raw_items_per_s == 0) {
        show_progress(&s->prog, "raw ZeroMQ echo");
        b.raw_items_per_s = mpb__bench_raw(s->plan, p->workers, p->batch_size, err, sizeof err);
    }
    return b;
}

/* One point's server and its loads. */
static int
run_point(sweep *s, bench_point point)
{
    bench_plan *plan = s->plan;
    char err[1024];
    bench_server *server = NULL;
    char what[96];
    snprintf(what, sizeof what, "%s w%lld b%lld: starting", point.kind, point.workers,
             point.batch_size);
    show_progress(&s->prog, what);
    if (mpb__bench_server_start(plan, &point, &server, err, sizeof err) != 0) {
        fprintf(stderr, "\rmpb bench: %s\n", err);
        return MPB_EINVAL;
    }
    double capacity = 0; /* the last closed loop's items/s */
    int rc = 0;
    size_t first = s->n_rows;
    for (size_t l = 0; l < plan->n_loads && rc == 0; l++) {
        bench_load load = plan->loads[l];
        double value = load.value;
        if (load.kind == LOAD_CLOSED && value == 0) {
            /* more than every worker's credit (6 x batch, at least 64) */
            long long per = point.batch_size > 0 ? 8 * point.batch_size : 8;
            value = (double)(point.workers * (per > 128 ? per : 128));
        }
        if (load.kind == LOAD_OPEN && load.share > 0) {
            value = load.share * capacity;
        }
        bench_row row = {.point = point};
        row.point.load = load;
        mpb__bench_load_text(&load, value, row.load_text, sizeof row.load_text);
        snprintf(what, sizeof what, "%s w%lld b%lld %s", point.kind, point.workers,
                 point.batch_size, row.load_text);
        show_progress(&s->prog, what);
        if (value <= 0) {
            fprintf(stderr, "\rmpb bench: %s: no rate to offer (the closed loop served none)\n",
                    what);
            s->prog.done++;
            continue;
        }
        rc = mpb__bench_run_load(server, plan, &load, value, &row.fig, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "\rmpb bench: %s: %s\n", what, err);
            break;
        }
        if (load.kind == LOAD_CLOSED) {
            capacity = row.fig.items_per_s;
        }
        s->prog.done++;
        s->rows = mpb_realloc(s->rows, (s->n_rows + 1) * sizeof *s->rows);
        s->rows[s->n_rows] = row;
        s->n_rows++;
    }
    mpb__bench_server_stop(&server);
    /* baselines after the server is gone, so they have the machine alone */
    for (size_t i = first; i < s->n_rows; i++) {
        s->rows[i].base = baselines_for(s, &s->rows[i].point);
        emit(s, &s->rows[i]);
    }
    return rc;
}

static char *
default_out_dir(void)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char name[64];
    strftime(name, sizeof name, "mpb-bench-%Y%m%d-%H%M%S", &tm);
    return mpb_strdup(name);
}

static FILE *
open_in(const char *dir, const char *name, char **path_out)
{
    char *path = mpb_asprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        free(path);
        return NULL;
    }
    *path_out = path;
    return f;
}

static void
add_artifact(char ***files, size_t *n, char *path)
{
    *files = mpb_realloc(*files, (*n + 2) * sizeof **files);
    (*files)[(*n)++] = path;
    (*files)[*n] = NULL;
}

static int
sweep_all(sweep *s)
{
    bench_plan *plan = s->plan;
    size_t points = plan->n_kinds * plan->n_workers * plan->n_batch_sizes * plan->n_waits;
    s->prog.total = points * plan->n_loads;
    s->prog.start_ns = mpb_now_ns();
    if (plan->baselines) {
        char err[256] = "";
        show_progress(&s->prog, "ZeroMQ round trip");
        if (mpb__bench_rtt(RTT_CALLS, &s->rtt_p50, &s->rtt_p99, err, sizeof err) != 0) {
            fprintf(stderr, "\rmpb bench: rtt baseline: %s\n", err);
        }
    }
    int rc = 0;
    for (size_t k = 0; k < plan->n_kinds && rc == 0; k++) {
        for (size_t w = 0; w < plan->n_workers && rc == 0; w++) {
            for (size_t b = 0; b < plan->n_batch_sizes && rc == 0; b++) {
                for (size_t t = 0; t < plan->n_waits && rc == 0; t++) {
                    bench_point p = {plan->kinds[k], plan->workers[w], plan->batch_sizes[b],
                                     plan->waits[t], plan->loads[0]};
                    rc = run_point(s, p);
                }
            }
        }
    }
    if (s->prog.on) {
        fprintf(stderr, "\r%*s\r", 100, "");
    }
    return rc;
}

int
mpb_cmd_bench(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--echo") == 0) {
        return mpb__bench_echo(argv[2]);
    }
    signal(SIGPIPE, SIG_IGN);
    bench_plan plan = {.baselines = 1, .plots = 1, .track = 1};
    args a = {0};
    int parsed = parse_args(argc, argv, &plan, &a);
    if (parsed != 0) {
        mpb__bench_plan_free(&plan);
        return parsed > 0 ? 0 : 2;
    }
    char err[1024];
    if (build_plan(&plan, &a, argc == 1, err, sizeof err) != 0) {
        fprintf(stderr, "mpb bench: %s\n", err);
        mpb__bench_plan_free(&plan);
        return 2;
    }
    closed_first(&plan);
    char *out_dir = plan.out_dir ? mpb_strdup(plan.out_dir) : default_out_dir();
    int made = mpb__fs_mkdir_p(out_dir);
    if (made != 0) {
        fprintf(stderr, "mpb bench: cannot make %s: %s\n", out_dir, mpb_strerror(made));
        free(out_dir);
        mpb__bench_plan_free(&plan);
        return 2;
    }
    if (plan.track && mpb__bench_track_begin(&plan, err, sizeof err) != 0) {
        fprintf(stderr, "mpb bench: tracking: %s (going on without it)\n", err);
        plan.track = 0;
    }
    sweep s = {.plan = &plan};
    s.prog.on = isatty(STDERR_FILENO);
    char **files = NULL;
    size_t n_files = 0;
    char *table_path = NULL;
    char *json_path = NULL;
    s.table = open_in(out_dir, "table.txt", &table_path);
    s.jsonl = open_in(out_dir, "results.jsonl", &json_path);
    if (s.table != NULL) {
        mpb__bench_table_header(s.table, plan.baselines);
    }
    if (!plan.json) {
        mpb__bench_table_header(stdout, plan.baselines);
    }
    int rc = sweep_all(&s);
    if (s.table != NULL) {
        fclose(s.table);
        add_artifact(&files, &n_files, table_path);
    }
    if (s.jsonl != NULL) {
        fclose(s.jsonl);
        add_artifact(&files, &n_files, json_path);
    }
    char *csv = mpb_asprintf("%s/results.csv", out_dir);
    if (mpb__bench_write_csv(csv, &plan, s.rows, s.n_rows) == 0) {
        add_artifact(&files, &n_files, csv);
    } else {
        fprintf(stderr, "mpb bench: cannot write %s\n", csv);
        free(csv);
        csv = NULL;
    }
    if (plan.plots && csv != NULL && s.n_rows > 0) {
        char **plots = NULL;
        if (mpb__bench_plot(out_dir, csv, s.rows, s.n_rows, &plots, err, sizeof err) != 0) {
            fprintf(stderr, "mpb bench: %s\n", err);
        }
        for (size_t i = 0; plots != NULL && plots[i] != NULL; i++) {
            add_artifact(&files, &n_files, plots[i]);
        }
        free(plots);
    }
    if (plan.recommend_p99_ms > 0) {
        const bench_row *best = mpb__bench_recommend(s.rows, s.n_rows, plan.recommend_p99_ms);
        mpb__bench_print_recommendation(plan.json ? stderr : stdout, &plan, best,
                                        plan.recommend_p99_ms);
    }
    if (plan.track) {
        mpb__bench_track_end(out_dir, files, rc);
    }
    fprintf(stderr, "mpb bench: %zu configurations; table, results.jsonl, results.csv%s in %s/\n",
            s.n_rows, plan.plots ? " and plots" : "", out_dir);
    for (size_t i = 0; i < n_files; i++) {
        free(files[i]);
    }
    free(files);
    free(s.rows);
    free(out_dir);
    mpb__bench_plan_free(&plan);
    return rc == 0 ? 0 : 1;
}
