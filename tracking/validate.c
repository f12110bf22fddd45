#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/validate.h"

static const char names_message[] =
    "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), "
    "spaces ( ), colon(:) and slashes (/).";

static int
is_key_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == ' ' || c == ':' ||
           c == '/';
}

/* 1 when the key equals its POSIX normpath and does not climb out. */
static int
is_normal_path(const char *key)
{
    if (key[0] == '/' || strncmp(key, "..", 2) == 0) {
        return 0;
    }
    const char *part = key;
    for (;;) {
        const char *end = strchr(part, '/');
        size_t len = end ? (size_t)(end - part) : strlen(part);
        if (len == 0 || (len == 1 && part[0] == '.') ||
            (len == 2 && part[0] == '.' && part[1] == '.')) {
            return 0;
        }
        if (end == NULL) {
            return 1;
        }
        part = end + 1;
    }
}

static const char *
capitalized(const char *kind)
{
    if (strcmp(kind, "metric") == 0) {
        return "Metric";
    }
    if (strcmp(kind, "param") == 0) {
        return "Param";
    }
    return "Tag";
}

int
mpb__validate_key(const char *kind, const char *key, char *err, size_t err_len)
{
    if (key == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Missing value for required parameter '%s key'", kind);
    }
    for (const char *p = key; *p; p++) {
        if (!is_key_char(*p)) {
            return mpb__set_error(err, err_len, MPB_EINVAL, "Invalid %s name: '%.300s'. %s", kind,
                                  key, names_message);
        }
    }
    if (!is_normal_path(key)) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid %s name: '%.300s'. Names may be treated as files in "
                              "certain cases, and must not resolve to other names when treated "
                              "as such (no empty, '.' or '..' parts, no leading or trailing '/')",
                              kind, key);
    }
    size_t len = strlen(key);
    if (len > MPB_MAX_ENTITY_KEY_LENGTH) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "%s key '%.40s...' had length %zu, which exceeded length limit of %d",
                              capitalized(kind), key, len, MPB_MAX_ENTITY_KEY_LENGTH);
    }
    return 0;
}

int
mpb__validate_value(const char *what, const char *key, const char *value, long max_len, char *err,
                    size_t err_len)
{
    if (value == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "%s '%s' has no value (NULL)", what,
                              key ? key : "");
    }
    long len = mpb__utf8_length(value);
    if (len < 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "%s value of '%s' is not valid UTF-8", what,
                              key ? key : "");
    }
    if (len > max_len) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "%s value '%.40s...' had length %ld, which exceeded length limit "
                              "of %ld",
                              what, value, len, max_len);
    }
    return 0;
}

int
mpb__validate_run_tags(const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    for (size_t i = 0; i < n_tags; i++) {
        int rc = mpb__validate_key("tag", tags[i].key, err, err_len);
        if (rc == 0) {
            rc = mpb__validate_value("Tag", tags[i].key, tags[i].value, MPB_MAX_TAG_VAL_LENGTH, err,
                                     err_len);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Sorted distinct keys of one namespace; checks "a" vs "a/b" conflicts. */
static int
check_key_folders(const char *kind, const char **keys, size_t n, char *err, size_t err_len)
{
    qsort(keys, n, sizeof *keys, mpb__compare_strings);
    for (size_t i = 0; i < n; i++) {
        const char *key = keys[i];
        for (const char *slash = strchr(key, '/'); slash; slash = strchr(slash + 1, '/')) {
            char *prefix = mpb_strndup(key, (size_t)(slash - key));
            const char *probe = prefix;
            int clash = bsearch(&probe, keys, n, sizeof *keys, mpb__compare_strings) != NULL;
            free(prefix);
            if (clash) {
                return mpb__set_error(err, err_len, MPB_EINVAL,
                                      "Invalid %s name: '%.300s'. Its prefix '%.*s' is also "
                                      "logged as a %s in this batch; a name cannot be both a "
                                      "value and a folder of values",
                                      kind, key, (int)(slash - key), key, kind);
            }
        }
    }
    return 0;
}

/* At most `limit` entities of one kind (MLflow's message). */
static int
check_count(const char *kind, size_t n, int limit, char *err, size_t err_len)
{
    if (n > (size_t)limit) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "A batch logging request can contain at most %d %s. Got %zu %s. "
                              "Please split up %s across multiple requests and try again.",
                              limit, kind, n, kind, kind);
    }
    return 0;
}

static int
check_limits(size_t n_metrics, size_t n_params, size_t n_tags, char *err, size_t err_len)
{
    int rc = check_count("metrics", n_metrics, MPB_MAX_METRICS_PER_BATCH, err, err_len);
    if (rc == 0) {
        rc = check_count("params", n_params, MPB_MAX_PARAMS_TAGS_PER_BATCH, err, err_len);
    }
    if (rc == 0) {
        rc = check_count("tags", n_tags, MPB_MAX_PARAMS_TAGS_PER_BATCH, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    size_t total = n_metrics + n_params + n_tags;
    if (total > MPB_MAX_ENTITIES_PER_BATCH) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "A batch logging request can contain at most %d total entities "
                              "(metrics, params and tags). Got %zu. Please split up the request "
                              "across multiple requests and try again.",
                              MPB_MAX_ENTITIES_PER_BATCH, total);
    }
    return 0;
}

static int
check_metrics(const mpb_metric *metrics, size_t n, char *err, size_t err_len)
{
    for (size_t i = 0; i < n; i++) {
        int rc = mpb__validate_key("metric", metrics[i].key, err, err_len);
        if (rc < 0) {
            return rc;
        }
        if (metrics[i].timestamp_ms < 0) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "Got invalid timestamp %" PRId64 " for metric '%s'. Timestamp "
                                  "must be a nonnegative long (64-bit integer)",
                                  metrics[i].timestamp_ms, metrics[i].key);
        }
    }
    return 0;
}

/* Duplicate param keys are reported all at once, as MLflow does. */
static int
check_duplicate_params(const char **keys, size_t n, char *err, size_t err_len)
{
    mpb__strbuf dups = {0};
    for (size_t i = 1; i < n; i++) {
        if (strcmp(keys[i], keys[i - 1]) == 0 && (i < 2 || strcmp(keys[i], keys[i - 2]) != 0)) {
            mpb__strbuf_printf(&dups, "%s'%s'", dups.len ? ", " : "", keys[i]);
        }
    }
    if (dups.len == 0) {
        return 0;
    }
    int rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "Duplicate parameter keys have been submitted: [%s]. Please ensure "
                            "the request contains only one param value per param key.",
                            dups.text);
    mpb__strbuf_clear(&dups);
    return rc;
}

int
mpb__validate_batch(const mpb_metric *metrics, size_t n_metrics, const mpb_param *params,
                    size_t n_params, const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    int rc = check_limits(n_metrics, n_params, n_tags, err, err_len);
    if (rc == 0) {
        rc = check_metrics(metrics, n_metrics, err, err_len);
    }
    for (size_t i = 0; rc == 0 && i < n_params; i++) {
        rc = mpb__validate_key("param", params[i].key, err, err_len);
        if (rc == 0) {
            rc = mpb__validate_value("Param", params[i].key, params[i].value,
                                     MPB_MAX_PARAM_VAL_LENGTH, err, err_len);
        }
    }
    if (rc == 0) {
        rc = mpb__validate_run_tags(tags, n_tags, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    const char **keys = mpb_calloc(n_params ? n_params : 1, sizeof *keys);
    for (size_t i = 0; i < n_params; i++) {
        keys[i] = params[i].key;
    }
    qsort(keys, n_params, sizeof *keys, mpb__compare_strings);
    rc = check_duplicate_params(keys, n_params, err, err_len);
    free(keys);
    return rc;
}

int
mpb__validate_key_folders(const mpb_metric *metrics, size_t n_metrics, const mpb_param *params,
                          size_t n_params, const mpb_tag *tags, size_t n_tags, char *err,
                          size_t err_len)
{
    size_t most = n_metrics > n_params ? n_metrics : n_params;
    most = most > n_tags ? most : n_tags;
    const char **keys = mpb_calloc(most ? most : 1, sizeof *keys);
    for (size_t i = 0; i < n_params; i++) {
        keys[i] = params[i].key;
    }
    int rc = check_key_folders("param", keys, mpb__strings_sort_unique(keys, n_params), err,
                               err_len);
    for (size_t i = 0; rc == 0 && i < n_metrics; i++) {
        keys[i] = metrics[i].key;
    }
    if (rc == 0) {
        rc = check_key_folders("metric", keys, mpb__strings_sort_unique(keys, n_metrics), err,
                               err_len);
    }
    for (size_t i = 0; rc == 0 && i < n_tags; i++) {
        keys[i] = tags[i].key;
    }
    if (rc == 0) {
        rc = check_key_folders("tag", keys, mpb__strings_sort_unique(keys, n_tags), err, err_len);
    }
    free(keys);
    return rc;
}

int
mpb__validate_experiment_name(const char *name, char *err, size_t err_len)
{
    if (name == NULL || *name == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid experiment name: '%s'. An experiment name must be a "
                              "non-empty string.",
                              name ? name : "");
    }
    return mpb__validate_value("Experiment name", NULL, name, MPB_MAX_EXPERIMENT_NAME_LENGTH, err,
                               err_len);
}

int
mpb__validate_experiment_tag(const char *key, const char *value, char *err, size_t err_len)
{
    int rc = mpb__validate_key("tag", key, err, err_len);
    if (rc == 0) {
        rc = mpb__validate_value("Experiment tag", key, value, MPB_MAX_EXPERIMENT_TAG_VAL_LENGTH,
                                 err, err_len);
    }
    return rc;
}

static int
matches_id_rule(const char *id, size_t max_tail)
{
    if (id == NULL || !isalnum((unsigned char)id[0])) {
        return 0;
    }
    size_t len = strlen(id);
    if (len - 1 > max_tail) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if (!isalnum((unsigned char)id[i]) && id[i] != '_' && id[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/* An id of the request parameter `param` (MLflow's message). */
static int
check_id(const char *param, const char *id, size_t max_tail, char *err, size_t err_len)
{
    if (!matches_id_rule(id, max_tail)) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid value \"%.300s\" for parameter '%s' supplied",
                              id ? id : "(null)", param);
    }
    return 0;
}

int
mpb__validate_run_id(const char *run_id, char *err, size_t err_len)
{
    return check_id("run_id", run_id, 255, err, err_len);
}

int
mpb__validate_experiment_id(const char *experiment_id, char *err, size_t err_len)
{
    return check_id("experiment_id", experiment_id, 63, err, err_len);
}

int
mpb__validate_artifact_path(const char *path, char *err, size_t err_len)
{
    if (path == NULL || *path == '\0') {
        return 0;
    }
    if (mpb__utf8_length(path) < 0 || !is_normal_path(path) || strchr(path, '\\') != NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid artifact path: '%.300s'. It must be relative, without "
                              "empty, '.' or '..' parts",
                              path);
    }
    return 0;
}
