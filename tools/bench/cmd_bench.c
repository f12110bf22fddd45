/*
 * mpb bench: sweeps kind x workers x batch size x wait x load over a model
 * (or a sweep file's servlet tree), each point measured next to baselines
 * from the same run; prints a table (or JSON lines), writes a CSV, JSON,
 * plots and the table into an output folder, and tracks the sweep as a
 * parent run with a nested run per point. docs/bench.md says how to read
 * the figures.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "mpbatch/tracking.h"
#include "mpbatch/worker.h"
#include "tools/bench/bench_int.h"
#include "tracking/fs_util.h"
#include "tools/commands.h"
#include "tools/interrupt.h"

#define RTT_CALLS 2000
#define CLOSED_AUTO_MAX (1 << 20) /* callers closed:auto keeps at most (as closed:N) */

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
    if (!s->plan->baselines || mpb__bench_interrupted(s->plan)) {
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
    /* raw echoes through as many processes as one pool's workers: a tree
     * has no one pool to compare with */
    if (b.raw_items_per_s == 0 && s->plan->plugin != NULL) {
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
    for (size_t l = 0; l < plan->n_loads && rc == 0 && !mpb__bench_interrupted(plan); l++) {
        bench_load load = plan->loads[l];
        double value = load.value;
        if (load.kind == LOAD_CLOSED && value == 0) {
            /* more than every worker's credit (8 x batch, at least 128) */
            double per = point.batch_size > 0 ? 8 * (double)point.batch_size : 8;
            value = (double)point.workers * (per > 128 ? per : 128);
            value = value < CLOSED_AUTO_MAX ? value : CLOSED_AUTO_MAX;
        }
        if (load.kind == LOAD_OPEN && load.share > 0) {
            /* whole items/s, for a short label (open:9000, not open:9000.123...) */
            value = load.share * capacity;
            value = value >= 1 ? round(value) : value;
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

/* results.csv and, when asked, the plots, added to files; 1 when plots
 * were drawn. */
static int
write_csv_and_plots(sweep *s, const char *out_dir, char ***files, size_t *n_files)
{
    char *csv = mpb_asprintf("%s/results.csv", out_dir);
    if (mpb__bench_write_csv(csv, s->plan, s->rows, s->n_rows) != 0) {
        fprintf(stderr, "mpb bench: cannot write %s\n", csv);
        free(csv);
        return 0;
    }
    add_artifact(files, n_files, csv);
    if (!s->plan->plots || s->n_rows == 0) {
        return 0;
    }
    char err[1024];
    char **plots = NULL;
    if (mpb__bench_plot(out_dir, csv, s->rows, s->n_rows, &plots, err, sizeof err) != 0) {
        fprintf(stderr, "mpb bench: %s\n", err);
    }
    int plotted = 0;
    for (size_t i = 0; plots != NULL && plots[i] != NULL; i++) {
        add_artifact(files, n_files, plots[i]);
        plotted = 1;
    }
    free(plots);
    return plotted;
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
                for (size_t t = 0; t < plan->n_waits && rc == 0 && !mpb__bench_interrupted(plan);
                     t++) {
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
    /* before any thread: they inherit the blocked signals */
    mpb__interrupt in;
    mpb__interrupt_start(&in, "mpb bench", "stopping after this load; writing what was measured");
    plan.interrupted = &in.signal;
    int parsed = mpb__bench_plan_from_args(argc, argv, &plan);
    if (parsed != 0) {
        mpb__bench_plan_free(&plan);
        mpb__interrupt_stop(&in);
        return parsed > 0 ? 0 : 2;
    }
    char err[1024];
    char *out_dir = plan.out_dir ? mpb_strdup(plan.out_dir) : default_out_dir();
    int made = mpb__fs_mkdir_p(out_dir);
    if (made != 0) {
        fprintf(stderr, "mpb bench: cannot make %s: %s\n", out_dir, mpb_strerror(made));
        free(out_dir);
        mpb__bench_plan_free(&plan);
        mpb__interrupt_stop(&in);
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
    int plotted = write_csv_and_plots(&s, out_dir, &files, &n_files);
    if (plan.recommend_p99_ms > 0) {
        const bench_row *best = mpb__bench_recommend(s.rows, s.n_rows, plan.recommend_p99_ms);
        mpb__bench_print_recommendation(plan.json ? stderr : stdout, &plan, best,
                                        plan.recommend_p99_ms);
    }
    int sig = mpb__interrupt_signal(&in);
    if (plan.track) {
        mpb__bench_track_end(files, sig       ? MPB_RUN_KILLED
                                    : rc == 0 ? MPB_RUN_FINISHED
                                              : MPB_RUN_FAILED);
    }
    fprintf(stderr, "mpb bench: %zu configurations; table, results.jsonl, results.csv%s in %s/\n",
            s.n_rows, plotted ? " and plots" : " (no plots)", out_dir);
    if (sig) {
        fprintf(stderr, "mpb bench: stopped by %s\n", strsignal(sig));
    }
    for (size_t i = 0; i < n_files; i++) {
        free(files[i]);
    }
    free(files);
    free(s.rows);
    free(out_dir);
    mpb__bench_plan_free(&plan);
    mpb__interrupt_stop(&in);
    return sig ? 128 + sig : rc == 0 ? 0 : 1;
}
