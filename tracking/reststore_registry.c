/*
 * REST store: the model registry through an MLflow tracking server's
 * registry endpoints (registered-models/..., model-versions/...). Versions
 * travel as strings of digits in MLflow's JSON ("version": "3"), timestamps
 * as creation_timestamp / last_updated_timestamp. Searches are paged with
 * the server's next_page_token until the last page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/reststore_int.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

#define SEARCH_PAGE 1000

/* ---- JSON of registry entities ---- */

static int
json_version(const cJSON *object, const char *field, int64_t *out)
{
    const char *text = mpb__rest_json_str(object, field);
    if (text != NULL) {
        return mpb__parse_int64(text, out) == 0 ? 1 : MPB_EINVAL;
    }
    return mpb__rest_json_int64(object, field, out);
}

static char *
json_dup(const cJSON *object, const char *field)
{
    const char *text = mpb__rest_json_str(object, field);
    return mpb_strdup(text != NULL ? text : "");
}

static int64_t
json_time(const cJSON *object, const char *field)
{
    int64_t value = -1;
    return mpb__rest_json_int64(object, field, &value) == 1 ? value : -1;
}

int
mpb__rest_model_version_from_json(const cJSON *object, mpb_model_version *out)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(object) || mpb__rest_json_str(object, "name") == NULL ||
        json_version(object, "version", &out->version) != 1) {
        return MPB_ESTORE;
    }
    out->name = json_dup(object, "name");
    out->source = json_dup(object, "source");
    out->run_id = json_dup(object, "run_id");
    out->status = json_dup(object, "status");
    out->creation_time = json_time(object, "creation_timestamp");
    out->last_updated_time = json_time(object, "last_updated_timestamp");
    const cJSON *aliases = cJSON_GetObjectItemCaseSensitive(object, "aliases");
    const cJSON *alias = NULL;
    cJSON_ArrayForEach(alias, aliases)
    {
        if (cJSON_IsString(alias)) {
            out->aliases = mpb_realloc(out->aliases, (out->n_aliases + 1) * sizeof *out->aliases);
            out->aliases[out->n_aliases++] = mpb_strdup(alias->valuestring);
        }
    }
    if (out->n_aliases > 1) {
        qsort(out->aliases, out->n_aliases, sizeof *out->aliases, mpb__compare_strings);
    }
    return 0;
}

int
mpb__rest_registered_model_from_json(const cJSON *object, mpb_registered_model *out)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(object) || mpb__rest_json_str(object, "name") == NULL) {
        return MPB_ESTORE;
    }
    out->name = json_dup(object, "name");
    out->description = json_dup(object, "description");
    out->creation_time = json_time(object, "creation_timestamp");
    out->last_updated_time = json_time(object, "last_updated_timestamp");
    int rc = 0;
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(object, "tags");
    if (tags != NULL) {
        rc = mpb__rest_tags_from_json(tags, &out->tags, &out->n_tags);
    }
    const cJSON *alias = NULL;
    cJSON_ArrayForEach(alias, cJSON_GetObjectItemCaseSensitive(object, "aliases"))
    {
        int64_t version = 0;
        const char *name = mpb__rest_json_str(alias, "alias");
        if (rc == 0 && (name == NULL || json_version(alias, "version", &version) != 1)) {
            rc = MPB_ESTORE;
        }
        if (rc == 0) {
            out->aliases = mpb_realloc(out->aliases, (out->n_aliases + 1) * sizeof *out->aliases);
            out->aliases[out->n_aliases].alias = mpb_strdup(name);
            out->aliases[out->n_aliases++].version = version;
        }
    }
    if (rc < 0) {
        mpb__registered_model_clear(out);
        return MPB_ESTORE;
    }
    mpb__model_aliases_sort(out->aliases, out->n_aliases);
    return 0;
}

static void
add_version(cJSON *object, int64_t version)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)version);
    cJSON_AddStringToObject(object, "version", text);
}

cJSON *
mpb__rest_model_version_to_json(const mpb_model_version *version)
{
    cJSON *object = cJSON_CreateObject();
    cJSON_AddStringToObject(object, "name", version->name);
    add_version(object, version->version);
    mpb__rest_json_add_int64(object, "creation_timestamp", version->creation_time);
    mpb__rest_json_add_int64(object, "last_updated_timestamp", version->last_updated_time);
    cJSON_AddStringToObject(object, "current_stage", "None");
    cJSON_AddStringToObject(object, "source", version->source);
    if (version->run_id != NULL && *version->run_id != '\0') {
        cJSON_AddStringToObject(object, "run_id", version->run_id);
    }
    cJSON_AddStringToObject(object, "status", version->status);
    cJSON *aliases = cJSON_AddArrayToObject(object, "aliases");
    for (size_t i = 0; i < version->n_aliases; i++) {
        cJSON_AddItemToArray(aliases, cJSON_CreateString(version->aliases[i]));
    }
    return object;
}

cJSON *
mpb__rest_registered_model_to_json(const mpb_registered_model *model)
{
    cJSON *object = cJSON_CreateObject();
    cJSON_AddStringToObject(object, "name", model->name);
    mpb__rest_json_add_int64(object, "creation_timestamp", model->creation_time);
    mpb__rest_json_add_int64(object, "last_updated_timestamp", model->last_updated_time);
    if (model->description != NULL && *model->description != '\0') {
        cJSON_AddStringToObject(object, "description", model->description);
    }
    if (model->n_tags > 0) {
        cJSON_AddItemToObject(object, "tags", mpb__rest_tags_to_json(model->tags, model->n_tags));
    }
    cJSON *aliases = cJSON_AddArrayToObject(object, "aliases");
    for (size_t i = 0; i < model->n_aliases; i++) {
        cJSON *alias = cJSON_CreateObject();
        cJSON_AddStringToObject(alias, "alias", model->aliases[i].alias);
        add_version(alias, model->aliases[i].version);
        cJSON_AddItemToArray(aliases, alias);
    }
    return object;
}

/* ---- Slots ---- */

/* A call whose answer holds one model version under "model_version". */
static int
version_call(mpb__reststore *store, const char *method, const char *endpoint, const char *query,
             cJSON *body, mpb_model_version **out, char *err, size_t err_len)
{
    cJSON *answer = NULL;
    int rc = mpb__rest_call(store, method, endpoint, query, body, &answer, err, err_len);
    if (rc == 0) {
        mpb_model_version *version = mpb_calloc(1, sizeof *version);
        if (mpb__rest_model_version_from_json(
                cJSON_GetObjectItemCaseSensitive(answer, "model_version"), version) < 0) {
            free(version);
            rc = mpb__reststore_malformed(store, endpoint, err, err_len);
        } else if (out != NULL) {
            *out = version;
        } else {
            mpb_model_version_free(&version);
        }
    }
    cJSON_Delete(answer);
    return rc;
}

int
mpb__reststore_create_registered_model(void *backend, const char *name, const char *description,
                                       const mpb_tag *tags, size_t n_tags, char *err,
                                       size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", name);
    if (description != NULL) {
        cJSON_AddStringToObject(body, "description", description);
    }
    if (n_tags > 0) {
        cJSON_AddItemToObject(body, "tags", mpb__rest_tags_to_json(tags, n_tags));
    }
    return mpb__reststore_post(backend, "registered-models/create", body, err, err_len);
}

int
mpb__reststore_get_registered_model(void *backend, const char *name, mpb_registered_model **out,
                                    char *err, size_t err_len)
{
    char *query = mpb__reststore_query1("name", name);
    cJSON *answer = NULL;
    int rc =
        mpb__rest_call(backend, "GET", "registered-models/get", query, NULL, &answer, err, err_len);
    if (rc == 0) {
        mpb_registered_model *model = mpb_calloc(1, sizeof *model);
        if (mpb__rest_registered_model_from_json(
                cJSON_GetObjectItemCaseSensitive(answer, "registered_model"), model) < 0) {
            free(model);
            rc = mpb__reststore_malformed(backend, "registered-models/get", err, err_len);
        } else {
            *out = model;
        }
    }
    cJSON_Delete(answer);
    free(query);
    return rc;
}

/* A server that answers the page token it was given as the next one would
 * be asked forever: stop with an error instead. */
static int
same_token(mpb__reststore *store, const char *previous, const char *token, char *err,
           size_t err_len)
{
    if (previous == NULL || token == NULL || strcmp(previous, token) != 0) {
        return 0;
    }
    return mpb__set_error(err, err_len, MPB_ESTORE,
                          "%s answered the page token it was given as the next one: stopped",
                          store->base);
}

/* Walks every page of a registry search: GET path with query (its own
 * filters, or "") and max_results, following next_page_token (a token that
 * does not advance stops it), calling take(ctx, item) for each element of
 * the answer's items array. 0, or the first failure. */
static int
walk_pages(mpb__reststore *store, const char *path, const char *query, const char *items_key,
           int (*take)(void *ctx, const cJSON *item), void *ctx, char *err, size_t err_len)
{
    char *token = NULL;
    char *previous = NULL;
    int rc = 0;
    do {
        char *escaped = token != NULL ? mpb__rest_escape(token) : NULL;
        char *page_query =
            mpb_asprintf("%s%smax_results=%d%s%s", query, *query ? "&" : "", SEARCH_PAGE,
                         escaped != NULL ? "&page_token=" : "", escaped != NULL ? escaped : "");
        free(escaped);
        free(previous);
        previous = token;
        token = NULL;
        cJSON *answer = NULL;
        rc = mpb__rest_call(store, "GET", path, page_query, NULL, &answer, err, err_len);
        const cJSON *item = NULL;
        const cJSON *items = rc == 0 ? cJSON_GetObjectItemCaseSensitive(answer, items_key) : NULL;
        cJSON_ArrayForEach(item, items)
        {
            if (rc == 0 && take(ctx, item) < 0) {
                rc = mpb__reststore_malformed(store, path, err, err_len);
            }
        }
        if (rc == 0) {
            token = mpb__reststore_page_token(answer);
            rc = same_token(store, previous, token, err, err_len);
        }
        cJSON_Delete(answer);
        free(page_query);
    } while (rc == 0 && token != NULL);
    free(token);
    free(previous);
    return rc;
}

static int
take_model(void *ctx, const cJSON *item)
{
    mpb_registered_model_list *list = ctx;
    list->models = mpb_realloc(list->models, (list->n_models + 1) * sizeof *list->models);
    int rc = mpb__rest_registered_model_from_json(item, &list->models[list->n_models]);
    list->n_models += rc >= 0;
    return rc;
}

static int
take_version(void *ctx, const cJSON *item)
{
    mpb_model_version_list *list = ctx;
    list->versions = mpb_realloc(list->versions, (list->n_versions + 1) * sizeof *list->versions);
    int rc = mpb__rest_model_version_from_json(item, &list->versions[list->n_versions]);
    list->n_versions += rc >= 0;
    return rc;
}

int
mpb__reststore_list_registered_models(void *backend, mpb_registered_model_list **out, char *err,
                                      size_t err_len)
{
    mpb_registered_model_list *list = mpb_calloc(1, sizeof *list);
    int rc = walk_pages(backend, "registered-models/search", "", "registered_models", take_model,
                        list, err, err_len);
    return mpb__registry_models_hand_out(list, rc, out);
}

int
mpb__reststore_delete_registered_model(void *backend, const char *name, char *err, size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", name);
    return mpb__rest_call(backend, "DELETE", "registered-models/delete", NULL, body, NULL, err,
                          err_len);
}

int
mpb__reststore_create_model_version(void *backend, const char *name, const char *source,
                                    const char *run_id, mpb_model_version **out, char *err,
                                    size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", name);
    cJSON_AddStringToObject(body, "source", source);
    if (run_id != NULL) {
        cJSON_AddStringToObject(body, "run_id", run_id);
    }
    return version_call(backend, "POST", "model-versions/create", NULL, body, out, err, err_len);
}

int
mpb__reststore_get_model_version(void *backend, const char *name, int64_t version,
                                 mpb_model_version **out, char *err, size_t err_len)
{
    char *escaped = mpb__rest_escape(name);
    char *query = mpb_asprintf("name=%s&version=%lld", escaped, (long long)version);
    int rc = version_call(backend, "GET", "model-versions/get", query, NULL, out, err, err_len);
    free(query);
    free(escaped);
    return rc;
}

/* name = '<name>' with the quote escaped as MLflow's filter grammar reads it. */
static char *
name_filter(const char *name)
{
    mpb__strbuf buf = {0};
    mpb__strbuf_puts(&buf, "name = '");
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '\'') {
            mpb__strbuf_puts(&buf, "\\'");
        } else {
            mpb__strbuf_append(&buf, p, 1);
        }
    }
    mpb__strbuf_puts(&buf, "'");
    return mpb__strbuf_take(&buf);
}

int
mpb__reststore_list_model_versions(void *backend, const char *name, mpb_model_version_list **out,
                                   char *err, size_t err_len)
{
    /* the model must exist (a search for an unknown name is merely empty) */
    mpb_registered_model *model = NULL;
    int rc = mpb__reststore_get_registered_model(backend, name, &model, err, err_len);
    mpb_registered_model_free(&model);
    if (rc < 0) {
        return rc;
    }
    char *filter = name_filter(name);
    char *escaped_filter = mpb__rest_escape(filter);
    free(filter);
    mpb_model_version_list *list = mpb_calloc(1, sizeof *list);
    char *query = mpb_asprintf("filter=%s", escaped_filter);
    rc = walk_pages(backend, "model-versions/search", query, "model_versions", take_version, list,
                    err, err_len);
    free(query);
    free(escaped_filter);
    return mpb__registry_versions_hand_out(list, rc, out);
}

int
mpb__reststore_set_model_alias(void *backend, const char *name, const char *alias, int64_t version,
                               char *err, size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", name);
    cJSON_AddStringToObject(body, "alias", alias);
    add_version(body, version);
    return mpb__reststore_post(backend, "registered-models/alias", body, err, err_len);
}

int
mpb__reststore_delete_model_alias(void *backend, const char *name, const char *alias, char *err,
                                  size_t err_len)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", name);
    cJSON_AddStringToObject(body, "alias", alias);
    return mpb__rest_call(backend, "DELETE", "registered-models/alias", NULL, body, NULL, err,
                          err_len);
}

int
mpb__reststore_get_model_version_by_alias(void *backend, const char *name, const char *alias,
                                          mpb_model_version **out, char *err, size_t err_len)
{
    char *escaped_name = mpb__rest_escape(name);
    char *escaped_alias = mpb__rest_escape(alias);
    char *query = mpb_asprintf("name=%s&alias=%s", escaped_name, escaped_alias);
    int rc =
        version_call(backend, "GET", "registered-models/alias", query, NULL, out, err, err_len);
    free(query);
    free(escaped_alias);
    free(escaped_name);
    return rc;
}
