/*
 * JSON of MLflow's REST API (the facts: docs/tracking-rest.md): proto field
 * names, unset fields omitted, enums as names, int64 as JSON numbers, doubles
 * NaN/+-Inf as the strings "NaN", "Infinity", "-Infinity".
 *
 * cJSON keeps every number as a double, which cannot hold an int64 past 2^53
 * (a step of 9007199254740993 would come back as ...992). The reader
 * therefore quotes every integer literal of the text before cJSON parses it,
 * and the field readers take an int64 from those digits; the writers emit
 * int64 and doubles as raw number text. Used by the REST store and by its
 * test server.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/reststore_int.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

static int
is_integer_token(const char *token, size_t len)
{
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (token[i] >= '0' && token[i] <= '9') {
            digits++;
        } else if (!(i == 0 && token[i] == '-')) {
            return 0;
        }
    }
    return digits > 0;
}

cJSON *
mpb__rest_json_parse(const char *text, size_t len)
{
    /* Worst case: every other byte an integer gains two quotes. */
    char *quoted = mpb_malloc(len * 2 + 2);
    size_t n = 0;
    int in_string = 0;
    for (size_t i = 0; i < len;) {
        char ch = text[i];
        if (in_string) {
            quoted[n++] = ch;
            if (ch == '\\' && i + 1 < len) {
                quoted[n++] = text[i + 1];
                i += 2;
                continue;
            }
            in_string = ch != '"';
            i++;
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t end = i;
            while (end < len && strchr("+-0123456789.eE", text[end]) != NULL) {
                end++;
            }
            int integer = is_integer_token(text + i, end - i);
            if (integer) {
                quoted[n++] = '"';
            }
            memcpy(quoted + n, text + i, end - i);
            n += end - i;
            if (integer) {
                quoted[n++] = '"';
            }
            i = end;
        } else {
            in_string = ch == '"';
            quoted[n++] = ch;
            i++;
        }
    }
    cJSON *root = cJSON_ParseWithLength(quoted, n);
    free(quoted);
    return root;
}

const char *
mpb__rest_json_str(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

int
mpb__rest_json_int64(const cJSON *object, const char *name, int64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    if (item == NULL || cJSON_IsNull(item)) {
        return 0;
    }
    if (cJSON_IsString(item)) {
        return mpb__parse_int64(item->valuestring, out) == 0 ? 1 : MPB_EINVAL;
    }
    /* A number cJSON parsed itself (only from text that was not quoted). */
    if (cJSON_IsNumber(item) && fabs(item->valuedouble) < 9007199254740992.0 &&
        item->valuedouble == floor(item->valuedouble)) {
        *out = (int64_t)item->valuedouble;
        return 1;
    }
    return MPB_EINVAL;
}

int
mpb__rest_json_double(const cJSON *object, const char *name, double *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    if (item == NULL || cJSON_IsNull(item)) {
        return 0;
    }
    if (cJSON_IsNumber(item)) {
        *out = item->valuedouble;
        return 1;
    }
    if (!cJSON_IsString(item)) {
        return MPB_EINVAL;
    }
    const char *text = item->valuestring;
    if (strcmp(text, "NaN") == 0) {
        *out = NAN;
    } else if (strcmp(text, "Infinity") == 0) {
        *out = INFINITY;
    } else if (strcmp(text, "-Infinity") == 0) {
        *out = -INFINITY;
    } else {
        char *end = NULL;
        *out = strtod(text, &end);
        if (*text == '\0' || *end != '\0') {
            return MPB_EINVAL;
        }
    }
    return 1;
}

void
mpb__rest_json_add_int64(cJSON *object, const char *name, int64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, value);
    cJSON_AddRawToObject(object, name, text);
}

void
mpb__rest_json_add_double(cJSON *object, const char *name, double value)
{
    if (isnan(value)) {
        cJSON_AddStringToObject(object, name, "NaN");
    } else if (isinf(value)) {
        cJSON_AddStringToObject(object, name, value > 0 ? "Infinity" : "-Infinity");
    } else {
        char text[40];
        snprintf(text, sizeof text, "%.17g", value); /* reads back exactly */
        cJSON_AddRawToObject(object, name, text);
    }
}

static const char *const view_names[] = {
    [MPB_VIEW_ACTIVE_ONLY] = "ACTIVE_ONLY",
    [MPB_VIEW_DELETED_ONLY] = "DELETED_ONLY",
    [MPB_VIEW_ALL] = "ALL",
};

const char *
mpb__rest_view_type_name(mpb_view_type view)
{
    return view >= MPB_VIEW_ACTIVE_ONLY && view <= MPB_VIEW_ALL ? view_names[view] : "ACTIVE_ONLY";
}

mpb_view_type
mpb__rest_view_type_parse(const char *name)
{
    for (int view = MPB_VIEW_ACTIVE_ONLY; name != NULL && view <= MPB_VIEW_ALL; view++) {
        if (strcmp(name, view_names[view]) == 0) {
            return (mpb_view_type)view;
        }
    }
    return (mpb_view_type)0;
}

/* ---- Writers ---- */

cJSON *
mpb__rest_tags_to_json(const mpb_tag *tags, size_t n)
{
    cJSON *array = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *tag = cJSON_CreateObject();
        cJSON_AddStringToObject(tag, "key", tags[i].key);
        cJSON_AddStringToObject(tag, "value", tags[i].value);
        cJSON_AddItemToArray(array, tag);
    }
    return array;
}

cJSON *
mpb__rest_metric_to_json(const mpb_metric *metric, const char *run_id)
{
    cJSON *object = cJSON_CreateObject();
    cJSON_AddStringToObject(object, "key", metric->key);
    mpb__rest_json_add_double(object, "value", metric->value);
    mpb__rest_json_add_int64(object, "timestamp", metric->timestamp_ms);
    mpb__rest_json_add_int64(object, "step", metric->step);
    if (run_id != NULL) {
        cJSON_AddStringToObject(object, "run_id", run_id);
    }
    return object;
}

cJSON *
mpb__rest_experiment_to_json(const mpb_experiment *experiment)
{
    cJSON *object = cJSON_CreateObject();
    cJSON_AddStringToObject(object, "experiment_id", experiment->experiment_id);
    cJSON_AddStringToObject(object, "name", experiment->name);
    cJSON_AddStringToObject(object, "artifact_location", experiment->artifact_location);
    cJSON_AddStringToObject(object, "lifecycle_stage", experiment->lifecycle_stage);
    mpb__rest_json_add_int64(object, "last_update_time", experiment->last_update_time);
    mpb__rest_json_add_int64(object, "creation_time", experiment->creation_time);
    if (experiment->n_tags > 0) {
        cJSON_AddItemToObject(object, "tags",
                              mpb__rest_tags_to_json(experiment->tags, experiment->n_tags));
    }
    return object;
}

cJSON *
mpb__rest_run_to_json(const mpb_run *run)
{
    const mpb_run_info *info = &run->info;
    cJSON *object = cJSON_CreateObject();
    cJSON *json_info = cJSON_AddObjectToObject(object, "info");
    cJSON_AddStringToObject(json_info, "run_id", info->run_id);
    cJSON_AddStringToObject(json_info, "run_uuid", info->run_id);
    cJSON_AddStringToObject(json_info, "experiment_id", info->experiment_id);
    cJSON_AddStringToObject(json_info, "run_name", info->run_name);
    cJSON_AddStringToObject(json_info, "user_id", info->user_id);
    cJSON_AddStringToObject(json_info, "status", mpb_run_status_name(info->status));
    mpb__rest_json_add_int64(json_info, "start_time", info->start_time);
    if (info->end_time >= 0) {
        mpb__rest_json_add_int64(json_info, "end_time", info->end_time);
    }
    cJSON_AddStringToObject(json_info, "artifact_uri", info->artifact_uri);
    cJSON_AddStringToObject(json_info, "lifecycle_stage", info->lifecycle_stage);
    cJSON *data = cJSON_AddObjectToObject(object, "data");
    if (run->n_metrics > 0) {
        cJSON *metrics = cJSON_AddArrayToObject(data, "metrics");
        for (size_t i = 0; i < run->n_metrics; i++) {
            cJSON_AddItemToArray(metrics, mpb__rest_metric_to_json(&run->metrics[i], NULL));
        }
    }
    if (run->n_params > 0) {
        /* mpb_param has the layout of mpb_tag */
        cJSON_AddItemToObject(data, "params",
                              mpb__rest_tags_to_json((const mpb_tag *)run->params, run->n_params));
    }
    if (run->n_tags > 0) {
        cJSON_AddItemToObject(data, "tags", mpb__rest_tags_to_json(run->tags, run->n_tags));
    }
    cJSON_AddObjectToObject(object, "inputs");
    cJSON_AddObjectToObject(object, "outputs");
    return object;
}

/* ---- Readers ---- */

static char *
dup_or_empty(const char *text)
{
    return mpb_strdup(text != NULL ? text : "");
}

int
mpb__rest_tags_from_json(const cJSON *array, mpb_tag **out, size_t *out_n)
{
    *out = NULL;
    *out_n = 0;
    if (array == NULL) {
        return 0;
    }
    if (!cJSON_IsArray(array)) {
        return MPB_ESTORE;
    }
    size_t n = (size_t)cJSON_GetArraySize(array);
    mpb_tag *tags = mpb_calloc(n + 1, sizeof *tags);
    size_t i = 0;
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, array)
    {
        const char *key = mpb__rest_json_str(item, "key");
        if (key == NULL) {
            mpb__tags_free(tags, i);
            return MPB_ESTORE;
        }
        tags[i].key = mpb_strdup(key);
        tags[i].value = dup_or_empty(mpb__rest_json_str(item, "value"));
        i++;
    }
    *out = tags;
    *out_n = i;
    return 0;
}

int
mpb__rest_metric_from_json(const cJSON *object, mpb_metric *out, char **out_key)
{
    const char *key = mpb__rest_json_str(object, "key");
    double value = 0;
    int64_t timestamp = 0;
    int64_t step = 0;
    if (key == NULL || mpb__rest_json_double(object, "value", &value) != 1 ||
        mpb__rest_json_int64(object, "timestamp", &timestamp) < 0 ||
        mpb__rest_json_int64(object, "step", &step) < 0) {
        return MPB_ESTORE;
    }
    *out_key = mpb_strdup(key);
    *out = (mpb_metric){*out_key, value, timestamp, step};
    return 0;
}

int
mpb__rest_experiment_from_json(const cJSON *object, mpb_experiment *out)
{
    memset(out, 0, sizeof *out);
    const char *id = mpb__rest_json_str(object, "experiment_id");
    const char *name = mpb__rest_json_str(object, "name");
    if (id == NULL || name == NULL ||
        mpb__rest_json_int64(object, "creation_time", &out->creation_time) < 0 ||
        mpb__rest_json_int64(object, "last_update_time", &out->last_update_time) < 0 ||
        mpb__rest_tags_from_json(cJSON_GetObjectItemCaseSensitive(object, "tags"), &out->tags,
                                 &out->n_tags) < 0) {
        return MPB_ESTORE;
    }
    const char *stage = mpb__rest_json_str(object, "lifecycle_stage");
    out->experiment_id = mpb_strdup(id);
    out->name = mpb_strdup(name);
    out->artifact_location = dup_or_empty(mpb__rest_json_str(object, "artifact_location"));
    out->lifecycle_stage = mpb_strdup(stage != NULL ? stage : "active");
    return 0;
}

static int
run_info_from_json(const cJSON *info, mpb_run_info *out)
{
    const char *id = mpb__rest_json_str(info, "run_id");
    id = id != NULL ? id : mpb__rest_json_str(info, "run_uuid");
    const char *status = mpb__rest_json_str(info, "status");
    const char *stage = mpb__rest_json_str(info, "lifecycle_stage");
    out->end_time = -1;
    out->deleted_time = -1; /* MLflow's RunInfo message carries no deletion time */
    out->status = MPB_RUN_RUNNING;
    if (id == NULL || (status != NULL && mpb_run_status_parse(status, &out->status) < 0) ||
        mpb__rest_json_int64(info, "start_time", &out->start_time) < 0 ||
        mpb__rest_json_int64(info, "end_time", &out->end_time) < 0) {
        return MPB_ESTORE;
    }
    out->run_id = mpb_strdup(id);
    out->experiment_id = dup_or_empty(mpb__rest_json_str(info, "experiment_id"));
    out->run_name = dup_or_empty(mpb__rest_json_str(info, "run_name"));
    out->user_id = dup_or_empty(mpb__rest_json_str(info, "user_id"));
    out->artifact_uri = dup_or_empty(mpb__rest_json_str(info, "artifact_uri"));
    out->lifecycle_stage = mpb_strdup(stage != NULL ? stage : "active");
    return 0;
}

static int
metrics_from_json(const cJSON *array, mpb_run *out)
{
    if (array == NULL) {
        return 0;
    }
    if (!cJSON_IsArray(array)) {
        return MPB_ESTORE;
    }
    out->metrics = mpb_calloc((size_t)cJSON_GetArraySize(array) + 1, sizeof *out->metrics);
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, array)
    {
        char *key = NULL;
        if (mpb__rest_metric_from_json(item, &out->metrics[out->n_metrics], &key) < 0) {
            return MPB_ESTORE;
        }
        out->n_metrics++;
    }
    return 0;
}

int
mpb__rest_run_from_json(const cJSON *object, mpb_run *out)
{
    memset(out, 0, sizeof *out);
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(object, "info");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(object, "data");
    mpb_tag *params = NULL;
    int rc = cJSON_IsObject(info) ? run_info_from_json(info, &out->info) : MPB_ESTORE;
    if (rc == 0 && data != NULL) {
        rc = metrics_from_json(cJSON_GetObjectItemCaseSensitive(data, "metrics"), out);
        if (rc == 0) {
            rc = mpb__rest_tags_from_json(cJSON_GetObjectItemCaseSensitive(data, "params"), &params,
                                          &out->n_params);
            out->params = (mpb_param *)params;
        }
        if (rc == 0) {
            rc = mpb__rest_tags_from_json(cJSON_GetObjectItemCaseSensitive(data, "tags"),
                                          &out->tags, &out->n_tags);
        }
    }
    if (rc == 0 && out->info.run_name[0] == '\0') {
        const char *name = mpb__tag_find(out->tags, out->n_tags, MPB_TAG_RUN_NAME);
        if (name != NULL) {
            free(out->info.run_name);
            out->info.run_name = mpb_strdup(name);
        }
    }
    if (rc < 0) {
        mpb__run_clear(out);
    }
    return rc;
}
