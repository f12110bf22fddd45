/*
 * File store: log_batch, tags, metric files. A batch is checked whole under
 * the run lock (lifecycle, param immutability, file/folder clashes with what
 * is on disk) before its first byte is written.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/filestore_int.h"
#include "tracking/fs_util.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/validate.h"

/* Calls cb for each complete line "<ts> <value> [<step> [<ds> <digest>]]"; a
 * last line without its newline is a write in progress and is skipped. */
typedef int (*metric_line_fn)(const mpb_metric *metric, void *ctx);

static int
parse_metric_line(char *line, mpb_metric *out)
{
    char *fields[6];
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(line, " ", &save); tok && n < 6;
         tok = strtok_r(NULL, " ", &save)) {
        fields[n++] = tok;
    }
    if (n != 2 && n != 3 && n != 5) {
        return MPB_EINVAL;
    }
    char *end = NULL;
    out->value = strtod(fields[1], &end);
    if (end == fields[1] || *end != '\0') {
        return MPB_EINVAL;
    }
    out->step = 0;
    if (mpb__parse_int64(fields[0], &out->timestamp_ms) < 0 ||
        (n > 2 && mpb__parse_int64(fields[2], &out->step) < 0)) {
        return MPB_EINVAL;
    }
    return 0;
}

static int
read_metric_file(const char *path, const char *key, metric_line_fn cb, void *ctx, char *err,
                 size_t err_len)
{
    FILE *file = fopen(path, "re");
    if (file == NULL) {
        return -errno;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    for (size_t number = 1; rc == 0 && (len = getline(&line, &cap, file)) > 0; number++) {
        if (line[len - 1] != '\n') {
            break;
        }
        line[len - 1] = '\0';
        mpb_metric metric = {.key = key};
        if (parse_metric_line(line, &metric) < 0) {
            rc = mpb__set_error(err, err_len, MPB_ESTORE, "%s line %zu: malformed metric line",
                                path, number);
            break;
        }
        rc = cb(&metric, ctx);
    }
    free(line);
    fclose(file);
    return rc;
}

static int
is_later(const mpb_metric *a, const mpb_metric *b)
{
    if (a->step != b->step) {
        return a->step > b->step;
    }
    if (a->timestamp_ms != b->timestamp_ms) {
        return a->timestamp_ms > b->timestamp_ms;
    }
    return a->value > b->value || (isnan(b->value) && !isnan(a->value));
}

static int
keep_latest(const mpb_metric *metric, void *ctx)
{
    mpb_metric *latest = ctx;
    if (latest->key == NULL || is_later(metric, latest)) {
        *latest = *metric;
    }
    return 0;
}

typedef struct latest_ctx {
    mpb_metric *metrics;
    size_t n;
    char *err;
    size_t err_len;
} latest_ctx;

static int
collect_latest(const char *rel_path, const char *abs_path, void *ctx)
{
    latest_ctx *latest = ctx;
    if (mpb__validate_key("metric", rel_path, NULL, 0) < 0) {
        return 0;
    }
    mpb_metric metric = {0};
    int rc =
        read_metric_file(abs_path, rel_path, keep_latest, &metric, latest->err, latest->err_len);
    if (rc < 0 || metric.key == NULL) {
        return rc == MPB_ENOENT ? 0 : rc;
    }
    metric.key = mpb_strdup(rel_path);
    latest->metrics = mpb_realloc(latest->metrics, (latest->n + 1) * sizeof *latest->metrics);
    latest->metrics[latest->n++] = metric;
    return 0;
}

int
mpb__filestore_read_latest_metrics(const char *run_dir, mpb_metric **out, size_t *out_n, char *err,
                                   size_t err_len)
{
    char *dir = mpb__path_join(run_dir, "metrics");
    latest_ctx ctx = {.err = err, .err_len = err_len};
    int rc = mpb__fs_walk_files(dir, collect_latest, &ctx);
    free(dir);
    if (rc < 0) {
        for (size_t i = 0; i < ctx.n; i++) {
            free((char *)ctx.metrics[i].key);
        }
        free(ctx.metrics);
        return rc;
    }
    *out = ctx.metrics;
    *out_n = ctx.n;
    return 0;
}

static int
append_history(const mpb_metric *metric, void *ctx)
{
    mpb_metric_history *history = ctx;
    history->metrics =
        mpb_realloc(history->metrics, (history->n_metrics + 1) * sizeof *history->metrics);
    history->metrics[history->n_metrics] = *metric;
    history->metrics[history->n_metrics].key = history->key;
    history->n_metrics++;
    return 0;
}

int
mpb__filestore_get_metric_history(void *backend, const char *run_id, const char *key,
                                  mpb_metric_history **out, char *err, size_t err_len)
{
    char *run_dir = mpb__filestore_run_dir(backend, run_id);
    if (run_dir == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Run '%s' not found", run_id);
    }
    mpb_metric_history *history = mpb_calloc(1, sizeof *history);
    history->run_id = mpb_strdup(run_id);
    history->key = mpb_strdup(key);
    char *metrics_dir = mpb__path_join(run_dir, "metrics");
    char *path = mpb__path_join(metrics_dir, key);
    int rc = 0;
    if (mpb__fs_is_file(path)) {
        rc = read_metric_file(path, history->key, append_history, history, err, err_len);
    }
    free(path);
    free(metrics_dir);
    free(run_dir);
    if (rc < 0) {
        mpb_metric_history_free(&history);
        return rc;
    }
    *out = history;
    return 0;
}

/* State checks of a batch against the run on disk; *skip_param[i] = 1 when
 * param i is already logged with the same value. */
static int
check_against_disk(const mpb__filestore_locked_run *run, const mpb_metric *metrics,
                   size_t n_metrics, const mpb_param *params, size_t n_params, const mpb_tag *tags,
                   size_t n_tags, char *skip_param, char *err, size_t err_len)
{
    char *params_dir = mpb__path_join(run->dir, "params");
    char *metrics_dir = mpb__path_join(run->dir, "metrics");
    char *tags_dir = mpb__path_join(run->dir, "tags");
    int rc = 0;
    const char *clash = NULL;
    for (size_t i = 0; rc == 0 && clash == NULL && i < n_params; i++) {
        char *path = mpb__path_join(params_dir, params[i].key);
        char *old = NULL;
        if (mpb__filestore_key_conflict(params_dir, params[i].key)) {
            clash = params[i].key;
        } else if (mpb__fs_read_file(path, MPB__FILESTORE_VALUE_LIMIT, &old, NULL) == 0) {
            if (strcmp(old, params[i].value) != 0) {
                rc = mpb__set_error(err, err_len, MPB_EINVAL,
                                    "Changing param values is not allowed. Param with "
                                    "key='%s' was already logged with value='%.200s' for run "
                                    "ID='%s'. Attempted logging new value '%.200s'.",
                                    params[i].key, old, run->info.run_id, params[i].value);
            }
            skip_param[i] = 1;
        }
        free(old);
        free(path);
    }
    /* Batches repeat keys: check each distinct key once. */
    const char **keys = mpb_calloc(n_metrics ? n_metrics : 1, sizeof *keys);
    for (size_t i = 0; i < n_metrics; i++) {
        keys[i] = metrics[i].key;
    }
    size_t n_keys = mpb__strings_sort_unique(keys, n_metrics);
    for (size_t i = 0; rc == 0 && clash == NULL && i < n_keys; i++) {
        if (mpb__filestore_key_conflict(metrics_dir, keys[i])) {
            clash = keys[i];
        }
    }
    free(keys);
    for (size_t i = 0; rc == 0 && clash == NULL && i < n_tags; i++) {
        if (mpb__filestore_key_conflict(tags_dir, tags[i].key)) {
            clash = tags[i].key;
        }
    }
    if (rc == 0 && clash != NULL) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "Key '%s' clashes with a key already logged to run %s: one name "
                            "cannot be both a value and a folder of values ('a' and 'a/b')",
                            clash, run->info.run_id);
    }
    free(tags_dir);
    free(metrics_dir);
    free(params_dir);
    return rc;
}

/* Appends the lines of each metric key with one write per key, keys in the
 * order they first appear, lines in the order given. */
static int
append_metrics(const char *run_dir, const mpb_metric *metrics, size_t n_metrics)
{
    char *done = mpb_calloc(n_metrics ? n_metrics : 1, 1);
    char *metrics_dir = mpb__path_join(run_dir, "metrics");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n_metrics; i++) {
        if (done[i]) {
            continue;
        }
        mpb__strbuf lines = {0};
        for (size_t k = i; k < n_metrics; k++) {
            if (!done[k] && strcmp(metrics[k].key, metrics[i].key) == 0) {
                char value[32];
                mpb__format_double(metrics[k].value, value);
                mpb__strbuf_printf(&lines, "%" PRId64 " %s %" PRId64 "\n", metrics[k].timestamp_ms,
                                   value, metrics[k].step);
                done[k] = 1;
            }
        }
        char *path = mpb__path_join(metrics_dir, metrics[i].key);
        rc = mpb__fs_mkdir_parent(path);
        if (rc == 0) {
            rc = mpb__fs_append(path, lines.text, lines.len);
        }
        free(path);
        mpb__strbuf_clear(&lines);
    }
    free(metrics_dir);
    free(done);
    return rc;
}

int
mpb__filestore_log_batch(void *backend, const char *run_id, const mpb_metric *metrics,
                         size_t n_metrics, const mpb_param *params, size_t n_params,
                         const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    int rc = mpb__validate_key_folders(metrics, n_metrics, params, n_params, tags, n_tags, err,
                                       err_len);
    if (rc < 0) {
        return rc;
    }
    mpb__filestore_locked_run run;
    rc = mpb__filestore_lock_run(backend, run_id, 1, &run, err, err_len);
    if (rc < 0) {
        return rc;
    }
    char *skip_param = mpb_calloc(n_params ? n_params : 1, 1);
    rc = check_against_disk(&run, metrics, n_metrics, params, n_params, tags, n_tags, skip_param,
                            err, err_len);
    if (rc < 0) {
        goto out_unlock;
    }
    for (size_t i = 0; rc == 0 && i < n_params; i++) {
        if (!skip_param[i]) {
            rc = mpb__filestore_write_value(run.dir, "params", params[i].key, params[i].value);
        }
    }
    const char *new_name = NULL;
    for (size_t i = 0; rc == 0 && i < n_tags; i++) {
        rc = mpb__filestore_write_value(run.dir, "tags", tags[i].key, tags[i].value);
        if (strcmp(tags[i].key, MPB_TAG_RUN_NAME) == 0) {
            new_name = tags[i].value;
        }
    }
    if (rc == 0 && new_name != NULL) {
        free(run.info.run_name);
        run.info.run_name = mpb_strdup(new_name);
        rc = mpb__filestore_write_run_meta(run.dir, &run.info, 0);
    }
    if (rc == 0) {
        rc = append_metrics(run.dir, metrics, n_metrics);
    }
    if (rc < 0) {
        rc = mpb__set_error(err, err_len, rc, "cannot log to run %s: %s", run_id, mpb_strerror(rc));
    }
out_unlock:
    free(skip_param);
    mpb__filestore_unlock_run(&run);
    return rc;
}

int
mpb__filestore_delete_tag(void *backend, const char *run_id, const char *key, char *err,
                          size_t err_len)
{
    mpb__filestore_locked_run run;
    int rc = mpb__filestore_lock_run(backend, run_id, 1, &run, err, err_len);
    if (rc < 0) {
        return rc;
    }
    char *tags_dir = mpb__path_join(run.dir, "tags");
    char *path = mpb__path_join(tags_dir, key);
    if (!mpb__fs_is_file(path)) {
        rc = mpb__set_error(err, err_len, MPB_ENOTFOUND, "No tag with name: %s in run with id %s",
                            key, run_id);
    } else {
        rc = mpb__fs_unlink(path);
        if (rc < 0) {
            rc = mpb__set_error(err, err_len, rc, "cannot delete tag %s of run %s: %s", key, run_id,
                                mpb_strerror(rc));
        }
    }
    free(path);
    free(tags_dir);
    mpb__filestore_unlock_run(&run);
    return rc;
}
