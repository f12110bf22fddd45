/*
 * DESIGN
 * Renders the metrics the dispatcher keeps (servlets/metrics.h) as
 * Prometheus text. Each family is written once, with a sample per pool
 * labelled by its servlet path; composites have no figures of their own
 * (their members' add up to them, and the server's mpb_server_* figures
 * are the root's end to end). Histogram buckets are sums of the log-linear
 * histogram's buckets that end at or below each bound, so a count may miss
 * values within 1/128 below a bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/histogram.h"
#include "core/os/process.h"
#include "core/util.h"
#include "frontends/prometheus.h"
#include "servlets/metrics.h"

static const double seconds_bounds[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                        0.0025,  0.005,    0.01,    0.025,  0.05,    0.1,    0.25,
                                        0.5,     1,        2.5,     5,      10};
static const double size_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

typedef struct family {
    const char *name;
    const char *type;
    const char *help;
} family;

typedef struct render {
    FILE *out;
    mpb_servlet **pools;
    size_t n_pools;
    size_t cap_pools;
} render;

static void
collect(mpb_servlet *servlet, void *ctx)
{
    render *r = ctx;
    if (servlet->metrics == NULL) {
        return;
    }
    if (r->n_pools == r->cap_pools) {
        r->cap_pools = r->cap_pools ? r->cap_pools * 2 : 8;
        r->pools = mpb_realloc(r->pools, r->cap_pools * sizeof *r->pools);
    }
    r->pools[r->n_pools++] = servlet;
}

static void
header(render *r, const family *f)
{
    fprintf(r->out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
}

/* A label value with \, " and newlines escaped. */
static void
label_value(FILE *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"') {
            fputc('\\', out);
            fputc(*p, out);
        } else if (*p == '\n') {
            fputs("\\n", out);
        } else {
            fputc(*p, out);
        }
    }
}

/* name{servlet="path"[,extra]} */
static void
sample_start(FILE *out, const char *name, const char *suffix, const char *servlet)
{
    fprintf(out, "%s%s", name, suffix);
    if (servlet != NULL) {
        fputs("{servlet=\"", out);
        label_value(out, servlet);
        fputc('"', out);
    }
}

static void
counter(render *r, const char *name, const char *servlet, unsigned long long value)
{
    sample_start(r->out, name, "", servlet);
    fprintf(r->out, "%s %llu\n", servlet ? "}" : "", value);
}

static void
gauge(render *r, const char *name, const char *servlet, double value)
{
    sample_start(r->out, name, "", servlet);
    fprintf(r->out, "%s %.9g\n", servlet ? "}" : "", value);
}

/* The histogram's buckets at bounds (in its unit: bounds[i] * scale). */
static void
histogram(render *r, const char *name, const char *servlet, const mpb__histogram *h,
          const double *bounds, size_t n_bounds, double scale)
{
    unsigned long long below = 0;
    unsigned b = 0;
    for (size_t i = 0; i < n_bounds; i++) {
        uint64_t limit = (uint64_t)(bounds[i] * scale + 0.5);
        while (b < MPB_HISTOGRAM_BUCKETS && mpb__histogram_bucket_top(b) <= limit) {
            below += h->buckets[b++];
        }
        sample_start(r->out, name, "_bucket", servlet);
        fprintf(r->out, "%sle=\"%.9g\"} %llu\n", servlet ? "," : "{", bounds[i], below);
    }
    sample_start(r->out, name, "_bucket", servlet);
    fprintf(r->out, "%sle=\"+Inf\"} %llu\n", servlet ? "," : "{", (unsigned long long)h->count);
    sample_start(r->out, name, "_sum", servlet);
    fprintf(r->out, "%s %.9g\n", servlet ? "}" : "", (double)h->sum / scale);
    sample_start(r->out, name, "_count", servlet);
    fprintf(r->out, "%s %llu\n", servlet ? "}" : "", (unsigned long long)h->count);
}

/* Errors by type, one sample each; "other" for types past the table. */
static void
errors(render *r, const char *name, const char *servlet, const mpb__metrics *m)
{
    for (size_t t = 0; t <= m->n_types; t++) {
        const char *type = t < m->n_types ? m->by_type[t].type : "other";
        unsigned long long n = t < m->n_types ? m->by_type[t].count : m->other_errors;
        if (t == m->n_types && n == 0) {
            break;
        }
        sample_start(r->out, name, "", servlet);
        fprintf(r->out, "%stype=\"", servlet ? "," : "{");
        label_value(r->out, type);
        fprintf(r->out, "\"} %llu\n", n);
    }
}

enum pool_figure {
    ITEMS,
    ERRORS,
    BATCHES,
    RESTARTS,
    BATCH_SIZE,
    QUEUE_WAIT,
    COMPUTE,
    LATENCY,
    QUEUE_DEPTH,
    IN_FLIGHT,
    ALIVE,
    WANTED,
    WORKERS_CPU,
    WORKERS_RSS,
    N_POOL_FIGURES
};

static const family pool_families[N_POOL_FIGURES] = {
    {"mpb_items_total", "counter", "Items the servlet answered (values and errors)."},
    {"mpb_errors_total", "counter", "Items the servlet answered with an error, by error type."},
    {"mpb_batches_total", "counter", "Batches the servlet's workers ran."},
    {"mpb_worker_restarts_total", "counter", "Workers the servlet lost (and relaunched)."},
    {"mpb_batch_size", "histogram", "Items per batch."},
    {"mpb_queue_wait_seconds", "histogram",
     "How long a batch's first item waited in its worker before the model was called."},
    {"mpb_compute_seconds", "histogram", "How long the model took per batch."},
    {"mpb_latency_seconds", "histogram",
     "From the servlet taking an item to its answer (queue, transport, batching, model)."},
    {"mpb_queue_depth", "gauge", "Items waiting for a worker's credit."},
    {"mpb_in_flight", "gauge", "Items on workers."},
    {"mpb_workers_alive", "gauge", "Workers ready now."},
    {"mpb_workers_wanted", "gauge", "Workers the servlet is configured to keep."},
    {"mpb_workers_cpu_seconds", "gauge",
     "CPU seconds of the worker processes launched here that are alive."},
    {"mpb_workers_resident_memory_bytes", "gauge",
     "Resident memory of the worker processes launched here."},
};

static void
pool_family(render *r, int figure, const mpb__gauges *gauges)
{
    const family *f = &pool_families[figure];
    header(r, f);
    for (size_t i = 0; i < r->n_pools; i++) {
        mpb_servlet *s = r->pools[i];
        const mpb__metrics *m = s->metrics;
        const mpb__gauges *g = &gauges[i];
        const char *path = s->path;
        switch (figure) {
        case ITEMS:
            counter(r, f->name, path, m->items);
            break;
        case ERRORS:
            errors(r, f->name, path, m);
            break;
        case BATCHES:
            counter(r, f->name, path, m->batches);
            break;
        case RESTARTS:
            counter(r, f->name, path, m->restarts);
            break;
        case BATCH_SIZE:
            histogram(r, f->name, path, &m->batch_size, size_bounds,
                      sizeof size_bounds / sizeof *size_bounds, 1);
            break;
        case QUEUE_WAIT:
        case COMPUTE:
        case LATENCY: {
            const mpb__histogram *h = figure == QUEUE_WAIT ? &m->first_wait
                                      : figure == COMPUTE  ? &m->compute
                                                           : &m->latency;
            histogram(r, f->name, path, h, seconds_bounds,
                      sizeof seconds_bounds / sizeof *seconds_bounds, 1e9);
            break;
        }
        case QUEUE_DEPTH:
            gauge(r, f->name, path, (double)g->queue_depth);
            break;
        case IN_FLIGHT:
            gauge(r, f->name, path, (double)g->in_flight);
            break;
        case ALIVE:
            gauge(r, f->name, path, (double)g->workers_alive);
            break;
        case WANTED:
            gauge(r, f->name, path, (double)g->workers_wanted);
            break;
        case WORKERS_CPU:
            gauge(r, f->name, path, g->workers_cpu_s);
            break;
        case WORKERS_RSS:
            gauge(r, f->name, path, (double)g->workers_rss_bytes);
            break;
        default:
            break;
        }
    }
}

static void
server_families(render *r, mpb_server *server)
{
    const mpb__metrics *m = server->metrics;
    static const family items = {"mpb_server_items_total", "counter",
                                 "Items the server answered (values and errors)."};
    static const family errs = {"mpb_server_errors_total", "counter",
                                "Items the server answered with an error, by error type."};
    static const family latency = {"mpb_server_latency_seconds", "histogram",
                                   "From submission to answer, end to end."};
    static const family in_flight = {"mpb_server_in_flight", "gauge",
                                     "Items submitted and not yet answered."};
    static const family rejected = {"mpb_server_rejected_total", "counter",
                                    "Items refused at capacity (Overloaded, HTTP 503)."};
    header(r, &items);
    counter(r, items.name, NULL, m->items);
    header(r, &errs);
    errors(r, errs.name, NULL, m);
    header(r, &latency);
    histogram(r, latency.name, NULL, &m->latency, seconds_bounds,
              sizeof seconds_bounds / sizeof *seconds_bounds, 1e9);
    header(r, &in_flight);
    uint64_t submitted = atomic_load(&server->submitted);
    uint64_t completed = atomic_load(&server->completed);
    gauge(r, in_flight.name, NULL, (double)(submitted > completed ? submitted - completed : 0));
    header(r, &rejected);
    counter(r, rejected.name, NULL, atomic_load(&server->rejected));
    double cpu = 0;
    uint64_t rss = 0;
    if (mpb__process_usage(0, &cpu, &rss) == 0) {
        static const family pcpu = {"process_cpu_seconds_total", "counter",
                                    "CPU seconds of the coordinator (user and system)."};
        static const family prss = {"process_resident_memory_bytes", "gauge",
                                    "Resident memory of the coordinator."};
        header(r, &pcpu);
        gauge(r, pcpu.name, NULL, cpu);
        header(r, &prss);
        gauge(r, prss.name, NULL, (double)rss);
    }
}

char *
mpb__prometheus_text(mpb_server *server)
{
    render r = {0};
    char *text = NULL;
    size_t len = 0;
    r.out = open_memstream(&text, &len);
    if (r.out == NULL) {
        return mpb_strdup("");
    }
    mpb__servlet_walk(mpb__server_root(server), collect, &r);
    mpb__gauges *gauges = mpb_calloc(r.n_pools ? r.n_pools : 1, sizeof *gauges);
    for (size_t i = 0; i < r.n_pools; i++) {
        if (r.pools[i]->ops->gauges != NULL) {
            r.pools[i]->ops->gauges(r.pools[i], &gauges[i]);
        }
    }
    for (int f = 0; f < N_POOL_FIGURES; f++) {
        pool_family(&r, f, gauges);
    }
    server_families(&r, server);
    fclose(r.out);
    free(gauges);
    free(r.pools);
    return text;
}
