/*
 * Plots of a sweep, drawn by gnuplot (a separate program; without it the
 * sweep still writes its table, JSON and CSV, and says so):
 *
 *   throughput.png  closed-loop items/s against batch size, a line per
 *                   kind, worker count, wait and closed load
 *   latency.png     open-loop p99 against offered items/s, a line per
 *                   configuration, its knee marked: the last load before
 *                   p99 first exceeds twice its value at the lowest load
 *                   (beyond it, queueing takes over)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/os/process.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/worker.h"
#include "tools/bench/bench_int.h"

#define KNEE_FACTOR 2.0

/* 1 when the row is a point of a kind's plot: an open load that answered
 * nothing has no latency to draw. */
static int
plotted(const bench_row *r, bench_load_kind kind)
{
    return r->point.load.kind == kind && (kind == LOAD_CLOSED || r->fig.items > 0);
}

/* Closed loops of different concurrency (closed:1, closed:64) are
 * different curves; open loops' rates are the x of one curve. */
static int
same_curve(const bench_row *a, const bench_row *b, int with_batch)
{
    return strcmp(a->point.kind, b->point.kind) == 0 && a->point.workers == b->point.workers &&
           a->point.wait_us == b->point.wait_us &&
           (!with_batch || a->point.batch_size == b->point.batch_size) &&
           (a->point.load.kind == LOAD_OPEN || a->point.load.value == b->point.load.value);
}

/* What every row shares (said once, in the plot's title) and what tells
 * curves apart (said in each line's title). */
typedef struct shared {
    int kind;
    int wait;
    int closed_load; /* every closed loop has the same concurrency */
    char text[96];
} shared;

static void
wait_text(long long wait_us, char *out, size_t len)
{
    if (wait_us == MPB_BATCH_WAIT_AUTO) {
        snprintf(out, len, "auto");
    } else {
        snprintf(out, len, "%lld us", wait_us);
    }
}

static void
find_shared(const bench_row *rows, size_t n, shared *sh)
{
    sh->kind = 1;
    sh->wait = 1;
    sh->closed_load = 1;
    const bench_row *first_closed = NULL;
    for (size_t i = 0; i < n; i++) {
        sh->kind &= strcmp(rows[i].point.kind, rows[0].point.kind) == 0;
        sh->wait &= rows[i].point.wait_us == rows[0].point.wait_us;
        if (rows[i].point.load.kind == LOAD_CLOSED) {
            first_closed = first_closed ? first_closed : &rows[i];
            sh->closed_load &= rows[i].point.load.value == first_closed->point.load.value;
        }
    }
    char wait[24];
    wait_text(n ? rows[0].point.wait_us : 0, wait, sizeof wait);
    snprintf(sh->text, sizeof sh->text, "%s%s%s%s%s", sh->kind && n ? rows[0].point.kind : "",
             sh->kind && n ? " workers" : "", sh->kind && sh->wait && n ? ", " : "",
             sh->wait && n ? "wait " : "", sh->wait && n ? wait : "");
}

static void
curve_title(const bench_row *r, int with_batch, const shared *sh, char *out, size_t len)
{
    char wait[24];
    wait_text(r->point.wait_us, wait, sizeof wait);
    int at = 0;
    if (with_batch) {
        at = snprintf(out, len, "batch %lld, ", r->point.batch_size);
    }
    at += snprintf(out + at, len - (size_t)at, "%lld%s%s worker%s", r->point.workers,
                   sh->kind ? "" : " ", sh->kind ? "" : r->point.kind,
                   r->point.workers == 1 ? "" : "s");
    if (!sh->wait) {
        at += snprintf(out + at, len - (size_t)at, ", wait %s", wait);
    }
    if (!sh->closed_load && r->point.load.kind == LOAD_CLOSED) {
        if (r->point.load.value > 0) {
            snprintf(out + at, len - (size_t)at, ", closed:%.0f", r->point.load.value);
        } else {
            snprintf(out + at, len - (size_t)at, ", closed:auto");
        }
    }
}

/* Writes the rows of one load kind as gnuplot data blocks, one per curve
 * (in first-seen order), each with its title as a header line. Returns the
 * number of blocks. */
static int
write_blocks(FILE *out, const bench_row *rows, size_t n, bench_load_kind kind, int with_batch,
             const shared *sh, FILE *knees)
{
    int *done = mpb_calloc(n ? n : 1, sizeof *done);
    int blocks = 0;
    for (size_t i = 0; i < n; i++) {
        if (done[i] || !plotted(&rows[i], kind)) {
            continue;
        }
        char title[160];
        curve_title(&rows[i], with_batch, sh, title, sizeof title);
        fprintf(out, "%s\"%s\"\n", blocks ? "\n\n" : "", title);
        double low_load = -1;
        double low_p99 = 0;
        double knee_x = -1;
        double knee_y = 0;
        int past_knee = 0;
        /* points of this curve in x order (insertion sort over what is left) */
        for (;;) {
            size_t pick = n;
            for (size_t j = i; j < n; j++) {
                if (!done[j] && plotted(&rows[j], kind) &&
                    same_curve(&rows[i], &rows[j], with_batch)) {
                    double xj = kind == LOAD_CLOSED ? (double)rows[j].point.batch_size
                                                    : rows[j].fig.offered_per_s;
                    double xp = pick < n
                                    ? (kind == LOAD_CLOSED ? (double)rows[pick].point.batch_size
                                                           : rows[pick].fig.offered_per_s)
                                    : 0;
                    if (pick == n || xj < xp) {
                        pick = j;
                    }
                }
            }
            if (pick == n) {
                break;
            }
            done[pick] = 1;
            const bench_figures *f = &rows[pick].fig;
            if (kind == LOAD_CLOSED) {
                fprintf(out, "%lld %.1f\n", rows[pick].point.batch_size, f->items_per_s);
                continue;
            }
            fprintf(out, "%.1f %.4f\n", f->offered_per_s, f->p99_us / 1e3);
            if (low_load < 0) {
                low_load = f->offered_per_s;
                low_p99 = f->p99_us;
            }
            if (f->p99_us > KNEE_FACTOR * low_p99) {
                past_knee = 1;
            } else if (!past_knee) {
                knee_x = f->offered_per_s;
                knee_y = f->p99_us / 1e3;
            }
        }
        if (knees != NULL && knee_x >= 0) {
            fprintf(knees, "%.1f %.4f\n", knee_x, knee_y);
        }
        blocks++;
    }
    free(done);
    return blocks;
}

/* Distinct x values among the rows of one load kind (batch sizes for
 * closed loops, offered rates for open ones). */
static size_t
distinct_x(const bench_row *rows, size_t n, bench_load_kind kind)
{
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        if (!plotted(&rows[i], kind)) {
            continue;
        }
        double x =
            kind == LOAD_CLOSED ? (double)rows[i].point.batch_size : rows[i].fig.offered_per_s;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            seen =
                plotted(&rows[j], kind) && (kind == LOAD_CLOSED ? (double)rows[j].point.batch_size
                                                                : rows[j].fig.offered_per_s) == x;
        }
        distinct += !seen;
    }
    return distinct;
}

/* Runs plots.gp in dir (its file names are relative: `cd DIR && gnuplot
 * plots.gp` draws them again). */
static int
run_gnuplot(const char *dir, char *err, size_t err_len)
{
    char *cd = mpb_asprintf("cd '%s'", dir);
    char *argv[] = {"gnuplot", "-e", cd, "plots.gp", NULL};
    const char *candidates[] = {"/usr/bin/gnuplot", "/usr/local/bin/gnuplot"};
    const char *exe = NULL;
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (access(candidates[i], X_OK) == 0) {
            exe = candidates[i];
            break;
        }
    }
    if (exe == NULL) {
        free(cd);
        return mpb__set_error(err, err_len, MPB_ENOENT,
                              "gnuplot not found (scripts/install-deps installs it); no plots");
    }
    pid_t pid;
    int pidfd = -1;
    int rc = mpb__spawn(exe, argv, &pid, &pidfd, err, err_len);
    free(cd);
    if (rc != 0) {
        return rc;
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        return mpb__set_error(err, err_len, MPB_EIO, "gnuplot failed on %s/plots.gp", dir);
    }
    return 0;
}

static void
add_file(char ***files, size_t *n, char *path)
{
    *files = mpb_realloc(*files, (*n + 2) * sizeof **files);
    (*files)[(*n)++] = path;
    (*files)[*n] = NULL;
}

/* Runs plots.gp when it draws anything; files gets the PNGs it made (none
 * when gnuplot failed; never an empty file). Old PNGs go first, so none
 * is taken for this sweep's. */
static int
draw(const char *dir, int throughput, int latency, char ***files, char *err, size_t err_len)
{
    const char *names[] = {"throughput.png", "latency.png"};
    const int wanted[] = {throughput, latency};
    char *paths[2];
    for (size_t i = 0; i < 2; i++) {
        paths[i] = mpb_asprintf("%s/%s", dir, names[i]);
        unlink(paths[i]);
    }
    int rc = throughput || latency ? run_gnuplot(dir, err, err_len) : 0;
    size_t n_files = 0;
    for (size_t i = 0; i < 2; i++) {
        struct stat st;
        if (rc == 0 && wanted[i] && stat(paths[i], &st) == 0 && st.st_size > 0) {
            add_file(files, &n_files, paths[i]);
        } else {
            unlink(paths[i]); /* a half-drawn plot */
            free(paths[i]);
        }
    }
    return rc;
}

int
mpb__bench_plot(const char *dir, const char *csv, const bench_row *rows, size_t n, char ***files,
                char *err, size_t err_len)
{
    (void)csv;
    *files = NULL;
    char *data = mpb_asprintf("%s/plots.dat", dir);
    char *knees = mpb_asprintf("%s/knees.dat", dir);
    char *script = mpb_asprintf("%s/plots.gp", dir);
    FILE *d = fopen(data, "w");
    FILE *k = fopen(knees, "w");
    FILE *s = fopen(script, "w");
    int rc = 0;
    if (d == NULL || k == NULL || s == NULL) {
        rc = mpb__set_error(err, err_len, MPB_EIO, "cannot write plot files in %s", dir);
        goto out;
    }
    shared sh;
    find_shared(rows, n, &sh);
    /* a plot needs two points on a line at least */
    int closed_blocks = distinct_x(rows, n, LOAD_CLOSED) >= 2
                            ? write_blocks(d, rows, n, LOAD_CLOSED, 0, &sh, NULL)
                            : 0;
    int min_batch = 1;
    for (size_t i = 0; i < n; i++) {
        min_batch &= rows[i].point.batch_size >= 1;
    }
    fprintf(d, "\n\n");
    int open_blocks =
        distinct_x(rows, n, LOAD_OPEN) >= 2 ? write_blocks(d, rows, n, LOAD_OPEN, 1, &sh, k) : 0;
    fprintf(s, "set terminal pngcairo size 1000,600 noenhanced\nset grid\n"
               "set key outside right top\n"
               "set format x '%%.1s%%c'\nset format y '%%.1s%%c'\n");
    if (closed_blocks > 0) {
        fprintf(s,
                "set output '%s'\nset title 'Throughput against batch size (closed loop%s%s)'\n"
                "set xlabel 'batch size'\nset ylabel 'items/s'\nset format x '%%g'\n%s"
                "plot for [i=0:%d] '%s' index i using 1:2 with linespoints title "
                "columnheader(1)\nunset logscale\n",
                "throughput.png", sh.text[0] ? "; " : "", sh.text,
                min_batch ? "set logscale x 2\n" : "", closed_blocks - 1, "plots.dat");
    }
    if (open_blocks > 0) {
        fprintf(s,
                "set output '%s'\nset title 'p99 latency against offered load (open "
                "loop%s%s)'\nset xlabel 'offered items/s'\nset ylabel 'p99 (ms)'\n"
                "set format x '%%.1s%%c'\nset format y '%%g'\nset logscale y 10\nplot for "
                "[i=%d:%d] '%s' index i using 1:2 with linespoints "
                "title columnheader(1), '%s' using 1:2 with points pointtype 7 pointsize 2 "
                "title 'knee'\n",
                "latency.png", sh.text[0] ? "; " : "", sh.text, closed_blocks,
                closed_blocks + open_blocks - 1, "plots.dat", "knees.dat");
    }
    fclose(s);
    s = NULL;
    fclose(d);
    d = NULL;
    fclose(k);
    k = NULL;
    rc = draw(dir, closed_blocks > 0, open_blocks > 0, files, err, err_len);
out:
    if (d != NULL) {
        fclose(d);
    }
    if (k != NULL) {
        fclose(k);
    }
    if (s != NULL) {
        fclose(s);
    }
    free(data);
    free(knees);
    free(script);
    return rc;
}
