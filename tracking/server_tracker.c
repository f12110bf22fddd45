/*
 * DESIGN
 * The bridge between a server's per-batch telemetry and a tracking run. It
 * owns a logging queue of its own, created FAIL_FAST, so the dispatcher
 * thread that calls on_batch never waits for the store: a full queue drops
 * the metrics and counts the batches dropped. Batches' metrics gather on
 * the dispatcher (names made once per servlet) and go to the queue in
 * bunches of up to 1000 metrics: while batches flow, none waits more than
 * HOLD_MS; when they stop, the rest goes at the next interval (on_interval)
 * or at flush, finish or destroy. The queue's writer lingers 100 ms to
 * merge bunches into few store calls and runs at nice +10, so it yields to
 * the work it measures (docs/metrics.md has what that saved; without the
 * bunches the demo's model lost 2 points more). Steps number the batches in the
 * order their pool numbered them (mpb_batch_telemetry.seq); intervals by
 * their index. Item records are sampled into an in-memory table on the
 * dispatcher (tracking/item_table.c) and written as one artifact by
 * finish, after the server stopped: no file is touched on the item path.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "mpbatch/logging_queue.h"
#include "mpbatch/server_tracker.h"
#include "tracking/item_table.h"

#define DRAIN_TIMEOUT_MS 30000

#define LINGER_MS 100
#define WRITER_NICE 10
#define DEFAULT_ITEMS_FIRST 10000
#define DEFAULT_ITEMS_EVERY 100
#define DEFAULT_ITEMS_MAX 100000
#define DEFAULT_PAYLOAD_MAX 256
#define MAX_TAG_VALUE 8000 /* MLflow's limit on a tag's value */

#define BATCH_METRICS 4
#define PENDING_MAX 1000 /* metrics: one store call's worth */
#define HOLD_MS 100      /* while batches flow, the longest their metrics wait here */

typedef struct servlet_keys {
    char *servlet;
    char *key[BATCH_METRICS];
} servlet_keys;

struct mpb_server_tracker {
    mpb_store *store;
    /* per-batch metrics gathered on the dispatcher, handed over in bunches */
    mpb_metric pending[PENDING_MAX];
    size_t n_pending;
    int64_t pending_since_ms;
    servlet_keys **keys; /* per-batch metric names by servlet (dispatcher thread) */
    size_t n_keys;
    mpb_logging_queue *queue;
    char *run_id;
    char *items_artifact;
    mpb__item_table *items; /* dispatcher thread until finish; NULL: no records */
    atomic_uint_fast64_t logged;
    atomic_uint_fast64_t dropped;
    atomic_uint_fast64_t intervals_dropped;
};

void
mpb_server_tracker_options_init(mpb_server_tracker_options *options)
{
    memset(options, 0, sizeof *options);
    options->items_first = DEFAULT_ITEMS_FIRST;
    options->items_every = DEFAULT_ITEMS_EVERY;
    options->items_max = DEFAULT_ITEMS_MAX;
    options->payload_max = DEFAULT_PAYLOAD_MAX;
}

mpb_server_tracker *
mpb_server_tracker_new_with(mpb_store *store, const char *run_id,
                            const mpb_server_tracker_options *options)
{
    MPB_ASSERT(store != NULL && run_id != NULL);
    mpb_server_tracker_options defaults;
    if (options == NULL) {
        mpb_server_tracker_options_init(&defaults);
        options = &defaults;
    }
    mpb_server_tracker *self = mpb_calloc(1, sizeof *self);
    self->store = store;
    /* lingering 100 ms turns tens of thousands of batches a second into a
     * few store calls of 1000 metrics (docs/metrics.md has the cost) */
    mpb_logging_queue_options queue_options = {.when_full = MPB_LOGGING_QUEUE_FAIL_FAST,
                                               .linger_ms = LINGER_MS,
                                               .writer_nice = WRITER_NICE};
    self->queue = mpb_logging_queue_new(store, &queue_options);
    self->run_id = mpb_strdup(run_id);
    self->items_artifact =
        mpb_strdup(options->items_artifact && *options->items_artifact ? options->items_artifact
                                                                       : "items.json");
    if (options->items_first > 0 || options->items_max > 0) {
        size_t payload = options->payload_max ? options->payload_max : DEFAULT_PAYLOAD_MAX;
        self->items = mpb__item_table_new(options->items_first, options->items_every,
                                          options->items_max, options->log_payloads ? payload : 0);
    }
    return self;
}

mpb_server_tracker *
mpb_server_tracker_new(mpb_store *store, const char *run_id)
{
    return mpb_server_tracker_new_with(store, run_id, NULL);
}

int
mpb_server_tracker_start(mpb_server_tracker *self, char *err, size_t err_len)
{
    return mpb_logging_queue_start(self->queue, err, err_len);
}

/* A servlet's per-batch metric names, made once. */
static const servlet_keys *
keys_for(mpb_server_tracker *self, const char *servlet)
{
    for (size_t i = self->n_keys; i-- > 0;) {
        if (strcmp(self->keys[i]->servlet, servlet) == 0) {
            return self->keys[i];
        }
    }
    static const char *const names[BATCH_METRICS] = {"batch_size", "first_wait_us", "compute_us",
                                                     "errors"};
    servlet_keys *k = mpb_calloc(1, sizeof *k);
    k->servlet = mpb_strdup(servlet);
    for (int i = 0; i < BATCH_METRICS; i++) {
        k->key[i] = mpb_asprintf("%s/%s", servlet, names[i]);
    }
    self->keys = mpb_realloc(self->keys, (self->n_keys + 1) * sizeof *self->keys);
    self->keys[self->n_keys++] = k;
    return k;
}

/* Hands the gathered batches' metrics to the queue in one call. */
static void
push_batches(mpb_server_tracker *self)
{
    if (self->n_pending == 0) {
        return;
    }
    int rc = mpb_logging_queue_log_batch(self->queue, self->run_id, self->pending, self->n_pending,
                                         NULL, 0, NULL, 0, NULL);
    atomic_fetch_add(rc == 0 ? &self->logged : &self->dropped, self->n_pending / BATCH_METRICS);
    self->n_pending = 0;
}

void
mpb_server_tracker_on_batch(void *ctx, const mpb_batch_telemetry *t)
{
    mpb_server_tracker *self = ctx;
    const servlet_keys *k = keys_for(self, t->servlet ? t->servlet : "server");
    double values[BATCH_METRICS] = {t->size, (double)t->first_wait_us, (double)t->compute_us,
                                    t->errors};
    int64_t now = mpb_wall_ms();
    if (self->n_pending == 0) {
        self->pending_since_ms = now;
    }
    for (int i = 0; i < BATCH_METRICS; i++) {
        self->pending[self->n_pending++] = (mpb_metric){k->key[i], values[i], now, (int64_t)t->seq};
    }
    if (self->n_pending + BATCH_METRICS > PENDING_MAX || now - self->pending_since_ms >= HOLD_MS) {
        push_batches(self);
    }
}

void
mpb_server_tracker_on_item(void *ctx, const mpb_item_record *record)
{
    mpb_server_tracker *self = ctx;
    if (self->items != NULL) {
        mpb__item_table_add(self->items, record);
    }
}

/* Metrics of one interval, keyed "<prefix>/<name>" (servlets' under
 * "<path>/interval/", apart from the per-batch "<path>/errors" and such). */
#define KEY_BYTES 320

typedef struct interval_batch {
    mpb_metric *metrics;
    char (*keys)[KEY_BYTES];
    size_t n;
    size_t cap; /* counted from the interval: every figure fits */
    int64_t now;
    int64_t step;
} interval_batch;

/* Figures add_servlet logs for s. */
static size_t
servlet_figures(const mpb_servlet_interval *s, int pool)
{
    return 5 + s->n_error_types + (pool ? 6 : 0);
}

static void
add(interval_batch *b, const char *prefix, const char *name, double value)
{
    MPB_ASSERT(b->n < b->cap);
    snprintf(b->keys[b->n], KEY_BYTES, "%s/%s", prefix, name);
    b->metrics[b->n] = (mpb_metric){b->keys[b->n], value, b->now, b->step};
    b->n++;
}

static void
add_servlet(interval_batch *b, const mpb_servlet_interval *s, int pool)
{
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s/interval", s->servlet);
    add(b, prefix, "items_per_s", s->items_per_s);
    add(b, prefix, "p50_us", s->p50_us);
    add(b, prefix, "p99_us", s->p99_us);
    add(b, prefix, "errors", (double)s->errors);
    for (size_t i = 0; i < s->n_error_types; i++) {
        char name[96];
        snprintf(name, sizeof name, "error_type/%s", s->errors_by_type[i].type);
        add(b, prefix, name, (double)s->errors_by_type[i].count);
    }
    add(b, prefix, "in_flight", (double)s->in_flight);
    if (pool) {
        add(b, prefix, "mean_batch", s->mean_batch);
        add(b, prefix, "queue_depth", (double)s->queue_depth);
        add(b, prefix, "workers_alive", s->workers_alive);
        add(b, prefix, "restarts", (double)s->restarts);
        add(b, prefix, "workers_cpu", s->workers_cpu);
        add(b, prefix, "workers_rss_mb", (double)s->workers_rss_bytes / (1 << 20));
    }
}

void
mpb_server_tracker_on_interval(void *ctx, const mpb_interval_telemetry *t)
{
    mpb_server_tracker *self = ctx;
    push_batches(self); /* what gathered since traffic stopped */
    interval_batch *b = mpb_calloc(1, sizeof *b);
    b->cap = servlet_figures(&t->server, 0) + 4; /* + the system figures */
    for (size_t i = 0; i < t->n_servlets; i++) {
        b->cap += servlet_figures(&t->servlets[i], 1);
    }
    b->metrics = mpb_calloc(b->cap, sizeof *b->metrics);
    b->keys = mpb_calloc(b->cap, KEY_BYTES);
    b->now = mpb_wall_ms();
    b->step = (int64_t)t->index;
    add_servlet(b, &t->server, 0);
    for (size_t i = 0; i < t->n_servlets; i++) {
        add_servlet(b, &t->servlets[i], 1);
    }
    add(b, "system", "coordinator_cpu", t->coordinator_cpu);
    add(b, "system", "coordinator_rss_mb", (double)t->coordinator_rss_bytes / (1 << 20));
    add(b, "system", "workers_cpu", t->workers_cpu);
    add(b, "system", "workers_rss_mb", (double)t->workers_rss_bytes / (1 << 20));
    if (mpb_logging_queue_log_batch(self->queue, self->run_id, b->metrics, b->n, NULL, 0, NULL, 0,
                                    NULL) != 0) {
        atomic_fetch_add(&self->intervals_dropped, 1);
    }
    free(b->metrics);
    free(b->keys);
    free(b);
}

/* The run's mlflow.loggedArtifacts tag with path listed as a table (kept
 * as it is when already listed, or when the list would pass MLflow's
 * limit). NULL: leave the tag alone. */
static char *
logged_artifacts_with(const mpb_run *run, const char *path)
{
    const char *old = NULL;
    for (size_t i = 0; run != NULL && i < run->n_tags; i++) {
        if (strcmp(run->tags[i].key, "mlflow.loggedArtifacts") == 0) {
            old = run->tags[i].value;
        }
    }
    cJSON *list = old ? cJSON_Parse(old) : cJSON_CreateArray();
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        list = cJSON_CreateArray();
    }
    const cJSON *entry;
    cJSON_ArrayForEach(entry, list)
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(entry, "path");
        if (cJSON_IsString(p) && strcmp(p->valuestring, path) == 0) {
            cJSON_Delete(list);
            return NULL;
        }
    }
    /* written as Python's json.dumps writes it (", " and ": "), strings
     * escaped by cJSON */
    cJSON *added = cJSON_CreateObject();
    cJSON_AddStringToObject(added, "path", path);
    cJSON_AddStringToObject(added, "type", "table");
    cJSON_AddItemToArray(list, added);
    char *out = mpb_strdup("[");
    int first = 1;
    cJSON_ArrayForEach(entry, list)
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(entry, "path");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(entry, "type");
        if (!cJSON_IsString(p) || !cJSON_IsString(type)) {
            continue; /* not an entry MLflow would read */
        }
        char *quoted_path = cJSON_PrintUnformatted(p);
        char *quoted_type = cJSON_PrintUnformatted(type);
        char *next = mpb_asprintf("%s%s{\"path\": %s, \"type\": %s}", out, first ? "" : ", ",
                                  quoted_path, quoted_type);
        cJSON_free(quoted_path);
        cJSON_free(quoted_type);
        free(out);
        out = next;
        first = 0;
    }
    char *tag = mpb_asprintf("%s]", out);
    free(out);
    cJSON_Delete(list);
    if (strlen(tag) > MAX_TAG_VALUE) {
        free(tag);
        return NULL;
    }
    return tag;
}

static int
write_items(mpb_server_tracker *self, char *err, size_t err_len)
{
    char dir[] = "/tmp/mpb-items-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        return mpb__set_error(err, err_len, MPB_EIO, "item table: mkdtemp: %s", strerror(errno));
    }
    const char *slash = strrchr(self->items_artifact, '/');
    const char *base = slash ? slash + 1 : self->items_artifact;
    char *folder =
        slash ? mpb_strndup(self->items_artifact, (size_t)(slash - self->items_artifact)) : NULL;
    char *file = mpb_asprintf("%s/%s", dir, base);
    int rc = mpb__item_table_write(self->items, file, err, err_len);
    if (rc == 0) {
        rc = mpb_store_log_artifact(self->store, self->run_id, file, folder, err, err_len);
    }
    unlink(file);
    rmdir(dir);
    free(file);
    free(folder);
    if (rc != 0) {
        return rc;
    }
    mpb_run *run = NULL;
    rc = mpb_store_get_run(self->store, self->run_id, &run, err, err_len);
    if (rc != 0) {
        return rc; /* the table is there; the tag's other entries are unknown: left alone */
    }
    char *tag = logged_artifacts_with(run, self->items_artifact);
    mpb_run_free(&run);
    if (tag != NULL) {
        rc = mpb_store_set_tag(self->store, self->run_id, "mlflow.loggedArtifacts", tag, err,
                               err_len);
        free(tag);
    }
    return rc;
}

int
mpb_server_tracker_finish(mpb_server_tracker *self, char *err, size_t err_len)
{
    push_batches(self);
    if (mpb_logging_queue_flush(self->queue, DRAIN_TIMEOUT_MS) != 0) {
        mpb_log_warn("tracking", "server telemetry still queued after %d ms", DRAIN_TIMEOUT_MS);
    }
    int64_t now = mpb_wall_ms();
    mpb_metric counts[4] = {
        {"tracking/items_recorded", self->items ? (double)mpb__item_table_rows(self->items) : 0,
         now, 0},
        {"tracking/items_sampled_out",
         self->items ? (double)mpb__item_table_sampled_out(self->items) : 0, now, 0},
        {"tracking/items_dropped", self->items ? (double)mpb__item_table_dropped(self->items) : 0,
         now, 0},
        {"tracking/batches_dropped",
         (double)(atomic_load(&self->dropped) + atomic_load(&self->intervals_dropped)), now, 0},
    };
    int rc =
        mpb_store_log_batch(self->store, self->run_id, counts, 4, NULL, 0, NULL, 0, err, err_len);
    if (rc == 0 && self->items != NULL && mpb__item_table_rows(self->items) > 0) {
        rc = write_items(self, err, err_len);
    }
    return rc;
}

int
mpb_server_tracker_flush(mpb_server_tracker *self, int64_t timeout_ms)
{
    push_batches(self);
    return mpb_logging_queue_flush(self->queue, timeout_ms);
}

uint64_t
mpb_server_tracker_logged(const mpb_server_tracker *self)
{
    return atomic_load(&((mpb_server_tracker *)self)->logged);
}

uint64_t
mpb_server_tracker_dropped(const mpb_server_tracker *self)
{
    return atomic_load(&((mpb_server_tracker *)self)->dropped);
}

void
mpb_server_tracker_destroy(mpb_server_tracker **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_server_tracker *self = *self_p;
    push_batches(self);
    char err[256];
    if (mpb_logging_queue_shutdown(self->queue, DRAIN_TIMEOUT_MS, err, sizeof err) != 0) {
        mpb_log_err("tracking", "server telemetry not fully written: %s", err);
    }
    mpb_logging_queue_destroy(&self->queue);
    mpb__item_table_free(&self->items);
    for (size_t i = 0; i < self->n_keys; i++) {
        free(self->keys[i]->servlet);
        for (int k = 0; k < BATCH_METRICS; k++) {
            free(self->keys[i]->key[k]);
        }
        free(self->keys[i]);
    }
    free(self->keys);
    free(self->items_artifact);
    free(self->run_id);
    free(self);
    *self_p = NULL;
}
