/*
 * DESIGN
 * Interval telemetry: a dispatcher timer every interval_ms takes the
 * difference between the cumulative metrics of every pool (and of the
 * server end to end) and the snapshot taken last time, reads the gauges
 * and the CPU and memory of the coordinator and the workers from /proc,
 * and hands one mpb_interval_telemetry to on_interval. Percentiles of an
 * interval come from the difference of two cumulative histograms, so
 * nothing is recorded twice on the item path. The last interval is
 * emitted when the server stops, once everything is answered.
 */
#include <stdlib.h>
#include <string.h>

#include "core/histogram.h"
#include "core/os/process.h"
#include "core/util.h"
#include "servlets/server_int.h"

typedef struct snapshot {
    mpb_servlet *servlet; /* NULL: the server, end to end */
    mpb__metrics before;
    double cpu_before; /* workers' CPU seconds */
} snapshot;

struct mpb__interval {
    mpb_server *server;
    uint64_t timer;
    uint64_t index;
    int64_t last_ns;
    double coordinator_cpu_before;
    snapshot *snaps; /* [0]: the server; then every pool */
    size_t n_snaps;
    size_t cap_snaps;
    mpb_servlet_interval *out;
    mpb_error_count *errors; /* MPB_METRICS_ERROR_TYPES + 1 per snapshot */
    mpb__histogram scratch;
    int finished;
};

static void
add_snapshot(mpb__interval *iv, mpb_servlet *servlet, const mpb__metrics *now)
{
    if (iv->n_snaps == iv->cap_snaps) {
        iv->cap_snaps = iv->cap_snaps ? iv->cap_snaps * 2 : 4;
        iv->snaps = mpb_realloc(iv->snaps, iv->cap_snaps * sizeof *iv->snaps);
    }
    snapshot *s = &iv->snaps[iv->n_snaps++];
    s->servlet = servlet;
    s->before = *now;
    s->cpu_before = 0;
}

static void
collect_pool(mpb_servlet *servlet, void *ctx)
{
    if (servlet->metrics != NULL) {
        add_snapshot(ctx, servlet, servlet->metrics);
    }
}

/* The latency quantile of the values recorded since before. */
static double
quantile_since(mpb__interval *iv, const mpb__histogram *now, const mpb__histogram *before, double q)
{
    mpb__histogram_diff(&iv->scratch, now, before);
    return (double)mpb__histogram_quantile(&iv->scratch, q) / 1000.0;
}

/* out = what the metrics m did since s->before; errors go to errs. */
static void
fill(mpb__interval *iv, snapshot *s, const mpb__metrics *m, double seconds,
     mpb_servlet_interval *out, mpb_error_count *errs)
{
    const mpb__metrics *b = &s->before;
    memset(out, 0, sizeof *out);
    out->servlet = s->servlet ? s->servlet->path : "server";
    out->items = m->items - b->items;
    out->items_per_s = seconds > 0 ? (double)out->items / seconds : 0;
    out->errors = m->errors - b->errors;
    out->errors_by_type = errs;
    for (size_t t = 0; t < m->n_types; t++) {
        uint64_t count = m->by_type[t].count - (t < b->n_types ? b->by_type[t].count : 0);
        if (count > 0) {
            errs[out->n_error_types++] = (mpb_error_count){m->by_type[t].type, count};
        }
    }
    if (m->other_errors > b->other_errors) {
        errs[out->n_error_types++] = (mpb_error_count){"other", m->other_errors - b->other_errors};
    }
    out->p50_us = quantile_since(iv, &m->latency, &b->latency, 0.50);
    out->p99_us = quantile_since(iv, &m->latency, &b->latency, 0.99);
    out->batches = m->batches - b->batches;
    out->mean_batch =
        out->batches ? (double)(m->batched_items - b->batched_items) / (double)out->batches : 0;
    out->restarts = m->restarts - b->restarts;
}

static void
emit(mpb__interval *iv)
{
    mpb_server *server = iv->server;
    int64_t now_ns = mpb_now_ns();
    double seconds = (double)(now_ns - iv->last_ns) / 1e9;
    mpb_interval_telemetry t = {.index = iv->index, .seconds = seconds};
    size_t n_pools = iv->n_snaps - 1;
    for (size_t i = 0; i < iv->n_snaps; i++) {
        snapshot *s = &iv->snaps[i];
        const mpb__metrics *m = s->servlet ? s->servlet->metrics : server->metrics;
        mpb_servlet_interval *out = i == 0 ? &t.server : &iv->out[i - 1];
        fill(iv, s, m, seconds, out, &iv->errors[i * (MPB_METRICS_ERROR_TYPES + 1)]);
        if (s->servlet != NULL && s->servlet->ops->gauges != NULL) {
            mpb__gauges g;
            s->servlet->ops->gauges(s->servlet, &g);
            out->queue_depth = g.queue_depth;
            out->in_flight = g.in_flight;
            out->workers_alive = (uint32_t)g.workers_alive;
            out->workers_wanted = (uint32_t)g.workers_wanted;
            /* a replaced worker's CPU leaves the sum: never below 0 */
            double used = g.workers_cpu_s > s->cpu_before ? g.workers_cpu_s - s->cpu_before : 0;
            out->workers_cpu = seconds > 0 ? used / seconds : 0;
            out->workers_rss_bytes = g.workers_rss_bytes;
            s->cpu_before = g.workers_cpu_s;
            t.workers_cpu += out->workers_cpu;
            t.workers_rss_bytes += out->workers_rss_bytes;
        }
        s->before = *m;
    }
    uint64_t submitted = atomic_load(&server->submitted);
    uint64_t completed = atomic_load(&server->completed);
    t.server.in_flight = submitted > completed ? submitted - completed : 0;
    double cpu = 0;
    uint64_t rss = 0;
    if (mpb__process_usage(0, &cpu, &rss) == 0) {
        t.coordinator_cpu = seconds > 0 ? (cpu - iv->coordinator_cpu_before) / seconds : 0;
        t.coordinator_rss_bytes = rss;
        iv->coordinator_cpu_before = cpu;
    }
    t.servlets = iv->out;
    t.n_servlets = n_pools;
    iv->index++;
    iv->last_ns = now_ns;
    server->options.on_interval(server->options.on_interval_ctx, &t);
}

static void
on_timer(mpb__loop *loop, void *arg)
{
    (void)loop;
    emit(arg);
}

mpb__interval *
mpb__interval_start(mpb_server *server)
{
    mpb__interval *iv = mpb_calloc(1, sizeof *iv);
    iv->server = server;
    add_snapshot(iv, NULL, server->metrics);
    mpb__servlet_walk(server->root, collect_pool, iv);
    for (size_t i = 1; i < iv->n_snaps; i++) {
        mpb__gauges g = {0};
        if (iv->snaps[i].servlet->ops->gauges != NULL) {
            iv->snaps[i].servlet->ops->gauges(iv->snaps[i].servlet, &g);
        }
        iv->snaps[i].cpu_before = g.workers_cpu_s;
    }
    iv->out = mpb_calloc(iv->n_snaps, sizeof *iv->out);
    iv->errors = mpb_calloc(iv->n_snaps * (MPB_METRICS_ERROR_TYPES + 1), sizeof *iv->errors);
    uint64_t rss = 0;
    mpb__process_usage(0, &iv->coordinator_cpu_before, &rss);
    iv->last_ns = mpb_now_ns();
    int ms = server->options.interval_ms > 0 ? server->options.interval_ms : 1000;
    iv->timer = mpb__loop_add_timer(server->loop, ms, 1, on_timer, iv);
    return iv;
}

void
mpb__interval_finish(mpb__interval *iv)
{
    if (iv == NULL || iv->finished) {
        return;
    }
    iv->finished = 1;
    mpb__loop_cancel_timer(iv->server->loop, iv->timer);
    emit(iv);
}

void
mpb__interval_free(mpb__interval **iv_p)
{
    mpb__interval *iv = *iv_p;
    if (iv == NULL) {
        return;
    }
    free(iv->snaps);
    free(iv->out);
    free(iv->errors);
    free(iv);
    *iv_p = NULL;
}
