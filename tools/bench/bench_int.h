/*
 * `mpb bench`: the pieces and what they share.
 *
 *   cmd_bench.c   the sweep's order, progress, output files
 *   args.c        the command line -> a plan
 *   plan.c        axes from the command line or a sweep file -> points
 *   load.c        one point: a server, a load (closed or open), figures
 *   baselines.c   bare (the plugin in-process), raw (a ZeroMQ echo through
 *                 as many processes), rtt (one ZeroMQ ipc round trip)
 *   report.c      table, JSON, CSV, the recommendation
 *   plots.c       gnuplot PNGs from the CSV
 *   track.c       the sweep as a parent run, each point a nested run
 *
 * Threading: the sweep runs on the main thread; load.c adds a feeder thread
 * and records latencies from the server's dispatcher thread.
 */
#ifndef MPB_TOOLS_BENCH_INT_H
#define MPB_TOOLS_BENCH_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mpbatch/config.h"

typedef enum bench_load_kind { LOAD_CLOSED, LOAD_OPEN } bench_load_kind;

/* closed:N keeps N items in flight (callers each waiting for their
 * result; N 0: enough to saturate); open:R offers R items/s with Poisson
 * arrivals (R 0 with share > 0: that share of the point's closed-loop
 * items/s, measured first). */
typedef struct bench_load {
    bench_load_kind kind;
    double value;
    double share;
} bench_load;

/* One configuration of the sweep. */
typedef struct bench_point {
    const char *kind; /* "process" | "thread" */
    long long workers;
    long long batch_size;
    long long wait_us; /* MPB_BATCH_WAIT_AUTO: auto */
    bench_load load;
} bench_point;

typedef struct bench_figures {
    double offered_per_s; /* open loop: the rate asked for; closed: 0 */
    double concurrency;   /* closed loop: items kept in flight */
    double seconds;
    uint64_t items;
    uint64_t errors;
    double items_per_s;
    double p50_us, p90_us, p99_us, p999_us, mean_us, max_us;
    uint64_t batches;
    double mean_batch;
    uint64_t closed_full, closed_timer, closed_drained;
    double first_wait_us; /* mean per batch */
    double compute_us;    /* mean per batch */
    double cpu_coordinator_s;
    double cpu_workers_s; /* process pools only; thread pools count as coordinator */
} bench_figures;

typedef struct bench_baselines {
    double bare_items_per_s; /* 0: not measured */
    double raw_items_per_s;
    double rtt_p50_us;
    double rtt_p99_us;
} bench_baselines;

/* One measured point and its baselines. */
typedef struct bench_row {
    bench_point point;
    bench_figures fig;
    bench_baselines base;
    char load_text[48]; /* "closed:256", "open:12000" */
} bench_row;

typedef struct bench_plan {
    /* what is benched: a config (a sweep file's servlet:, or one made from
     * --model/--option); model names it in reports */
    mpb_config *config;
    char *model;
    char *plugin;          /* single-pool configs: the plugin (bare, raw baselines), else NULL */
    char **plugin_options; /* "key=value", NULL-terminated, for the bare baseline */
    size_t item_bytes;
    unsigned char *item; /* every item sent (a float32 vector by default) */
    /* axes */
    const char **kinds;
    size_t n_kinds;
    long long *workers;
    size_t n_workers;
    long long *batch_sizes;
    size_t n_batch_sizes;
    long long *waits;
    size_t n_waits;
    bench_load *loads;
    size_t n_loads;
    /* per load */
    double seconds;  /* of each load, after a warm-up */
    long long items; /* or this many items (0: use seconds) */
    /* outputs */
    int json;      /* JSON lines on stdout instead of the table */
    int baselines; /* measure bare, raw and rtt */
    int plots;
    int track;
    const char *out_dir;     /* NULL: no files */
    double recommend_p99_ms; /* > 0: pick a configuration within it */
    int progress;            /* a progress line on stderr */
    atomic_int *interrupted; /* a signal's number once one came (loads end early), or NULL */
} bench_plan;

/* 1 once a signal asked the sweep to stop. */
static inline int
mpb__bench_interrupted(const bench_plan *plan)
{
    return plan->interrupted != NULL && atomic_load(plan->interrupted) != 0;
}

/* args.c: the plan the command line asks for: 0, 1 when --help was
 * printed, -1 after an error was printed. */
int mpb__bench_plan_from_args(int argc, char **argv, bench_plan *plan);

/* plan.c */
/* Axis bounds: a pool's, as a config file's (servlets/config_pool.c). */
#define MPB_BENCH_MAX_WORKERS 4096
#define MPB_BENCH_MAX_BATCH (1 << 20)
#define MPB_BENCH_MAX_WAIT_US (3600LL * 1000000)

/* A list of values and ranges, each from min to max, into *out (once each). */
int mpb__bench_parse_list(const char *text, const char *flag, long long min, long long max,
                          long long **out, size_t *n, char *err, size_t err_len);
int mpb__bench_parse_loads(const char *text, bench_load **out, size_t *n, char *err,
                           size_t err_len);
/* "process,thread" into plan->kinds (once each); flag names it in errors. */
int mpb__bench_parse_kinds(bench_plan *plan, const char *text, const char *flag, char *err,
                           size_t err_len);
int mpb__bench_parse_waits(const char *text, long long **out, size_t *n, char *err, size_t err_len);
int mpb__bench_load_sweep_file(bench_plan *plan, const char *path, char *err, size_t err_len);
/* dim: floats per item from --dim, 0 when not given (input_dim from the
 * options, else 256). */
int mpb__bench_model_config(bench_plan *plan, const char *model, const char *const *options,
                            size_t dim, char *err, size_t err_len);
void mpb__bench_load_text(const bench_load *load, double value, char *out, size_t len);
/* Seconds of a load, "0.5" (above 0, at most an hour): 0, or MPB_EINVAL. */
int mpb__bench_parse_seconds(const char *text, double *seconds);
void mpb__bench_plan_free(bench_plan *plan);

/* load.c: starts a server for the point's settings (its load ignored)... */
typedef struct bench_server bench_server;
int mpb__bench_server_start(const bench_plan *plan, const bench_point *point, bench_server **out,
                            char *err, size_t err_len);
/* ...runs one load against it... */
int mpb__bench_run_load(bench_server *server, const bench_plan *plan, const bench_load *load,
                        double rate, bench_figures *fig, char *err, size_t err_len);
/* ...and stops it. */
void mpb__bench_server_stop(bench_server **server);

/* baselines.c */
double mpb__bench_bare(const bench_plan *plan, long long batch_size, char *err, size_t err_len);
double mpb__bench_raw(const bench_plan *plan, long long workers, long long batch_size, char *err,
                      size_t err_len);
int mpb__bench_rtt(int calls, double *p50_us, double *p99_us, char *err, size_t err_len);
/* The echo process the raw and rtt baselines talk to (mpb bench --echo). */
int mpb__bench_echo(const char *endpoint);

/* report.c */
void mpb__bench_table_header(FILE *out, int baselines);
void mpb__bench_table_row(FILE *out, const bench_plan *plan, const bench_row *row);
void mpb__bench_json_rows(FILE *out, const bench_plan *plan, const bench_row *row);
int mpb__bench_write_csv(const char *path, const bench_plan *plan, const bench_row *rows, size_t n);
/* The best row for a p99 budget: the highest items/s whose p99 stays in
 * it; NULL when none does. */
const bench_row *mpb__bench_recommend(const bench_row *rows, size_t n, double p99_ms);
void mpb__bench_print_recommendation(FILE *out, const bench_plan *plan, const bench_row *row,
                                     double p99_ms);

/* plots.c: PNGs next to the CSV; names of the files made, NULL-terminated. */
int mpb__bench_plot(const char *dir, const char *csv, const bench_row *rows, size_t n,
                    char ***files, char *err, size_t err_len);

/* track.c */
int mpb__bench_track_begin(const bench_plan *plan, char *err, size_t err_len);
void mpb__bench_track_row(const bench_plan *plan, const bench_row *row);
/* Logs files as the parent's artifacts and ends it with status (an
 * mpb_run_status). */
void mpb__bench_track_end(char **files, int status);

#endif
