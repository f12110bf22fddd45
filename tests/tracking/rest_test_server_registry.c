/*
 * The REST store's test server: the model registry endpoints of MLflow's
 * REST API (registered-models/..., model-versions/...), each a thin layer
 * over the registry calls of the server's SQLite store. Searches answer
 * everything on one page; model-versions/search understands the one filter
 * the client sends (name = '<name>'). Threads as rest_test_server.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/rest_test_server.h"
#include "tracking/reststore_int.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

static const char *
need(rts_request *r, const char *name, char *err, size_t err_len, int *rc)
{
    const char *value = rts_field(r, name);
    if (value == NULL && *rc == 0) {
        *rc = mpb__set_error(err, err_len, MPB_EINVAL, "Missing value for required parameter '%s'.",
                             name);
    }
    return value;
}

/* The "version" field: a string of digits in MLflow's API. */
static int
need_version(rts_request *r, int64_t *out, char *err, size_t err_len, int *rc)
{
    const char *text = need(r, "version", err, err_len, rc);
    if (*rc == 0 && (mpb__parse_int64(text, out) < 0 || *out < 1)) {
        *rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid model version '%s'", text);
    }
    return *rc;
}

static int
version_answer(int rc, mpb_model_version *version, cJSON *answer)
{
    if (rc == 0) {
        cJSON_AddItemToObject(answer, "model_version", mpb__rest_model_version_to_json(version));
    }
    mpb_model_version_free(&version);
    return rc;
}

/* Answers {"registered_model": ...} with the model as the store has it. */
static int
model_answer(rts_request *r, const char *name, cJSON *answer, char *err, size_t err_len)
{
    mpb_registered_model *model = NULL;
    int rc = mpb_store_get_registered_model(r->server->store, name, &model, err, err_len);
    if (rc == 0) {
        cJSON_AddItemToObject(answer, "registered_model",
                              mpb__rest_registered_model_to_json(model));
    }
    mpb_registered_model_free(&model);
    return rc;
}

static int
models_create(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    mpb_tag *tags = NULL;
    size_t n_tags = 0;
    cJSON *tag_items = cJSON_GetObjectItemCaseSensitive(r->body, "tags");
    if (rc == 0 && tag_items != NULL && mpb__rest_tags_from_json(tag_items, &tags, &n_tags) < 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid tags");
    }
    if (rc == 0) {
        rc = mpb_store_create_registered_model(r->server->store, name, rts_field(r, "description"),
                                               tags, n_tags, err, err_len);
    }
    rc = rc == 0 ? model_answer(r, name, answer, err, err_len) : rc;
    mpb__tags_free(tags, n_tags);
    return rc;
}

static int
models_get(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    rc = rc == 0 ? model_answer(r, name, answer, err, err_len) : rc;
    return rc;
}

static int
models_search(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)r;
    mpb_registered_model_list *list = NULL;
    int rc = mpb_store_list_registered_models(r->server->store, &list, err, err_len);
    if (rc == 0) {
        cJSON *items = cJSON_AddArrayToObject(answer, "registered_models");
        for (size_t i = 0; i < list->n_models; i++) {
            cJSON_AddItemToArray(items, mpb__rest_registered_model_to_json(&list->models[i]));
        }
    }
    mpb_registered_model_list_free(&list);
    return rc;
}

static int
models_delete(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    return rc < 0 ? rc : mpb_store_delete_registered_model(r->server->store, name, err, err_len);
}

static int
versions_create(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    const char *source = need(r, "source", err, err_len, &rc);
    mpb_model_version *version = NULL;
    if (rc == 0) {
        rc = mpb_store_create_model_version(r->server->store, name, source, rts_field(r, "run_id"),
                                            &version, err, err_len);
    }
    return version_answer(rc, version, answer);
}

static int
versions_get(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    int64_t number = 0;
    need_version(r, &number, err, err_len, &rc);
    mpb_model_version *version = NULL;
    if (rc == 0) {
        rc = mpb_store_get_model_version(r->server->store, name, number, &version, err, err_len);
    }
    return version_answer(rc, version, answer);
}

/* The model name of a filter "name = '<name>'" (caller frees), or NULL. */
static char *
filter_name(const char *filter)
{
    const char *prefix = "name = '";
    size_t len = filter != NULL ? strlen(filter) : 0;
    if (len < strlen(prefix) + 1 || strncmp(filter, prefix, strlen(prefix)) != 0 ||
        filter[len - 1] != '\'') {
        return NULL;
    }
    mpb__strbuf buf = {0};
    for (const char *p = filter + strlen(prefix); p < filter + len - 1; p++) {
        if (*p == '\\' && p[1] == '\'') {
            p++;
        }
        mpb__strbuf_append(&buf, p, 1);
    }
    return mpb__strbuf_take(&buf);
}

static int
versions_search(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    char *name = filter_name(rts_field(r, "filter"));
    if (name == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "this test server only searches with name = '<name>'");
    }
    mpb_model_version_list *list = NULL;
    int rc = mpb_store_list_model_versions(r->server->store, name, &list, err, err_len);
    cJSON *items = cJSON_AddArrayToObject(answer, "model_versions");
    if (rc == MPB_ENOTFOUND) {
        rc = 0; /* MLflow: an unknown name matches nothing */
    }
    for (size_t i = 0; list != NULL && i < list->n_versions; i++) {
        cJSON_AddItemToArray(items, mpb__rest_model_version_to_json(&list->versions[i]));
    }
    mpb_model_version_list_free(&list);
    free(name);
    return rc;
}

static int
alias_set(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    const char *alias = need(r, "alias", err, err_len, &rc);
    int64_t number = 0;
    need_version(r, &number, err, err_len, &rc);
    return rc < 0 ? rc
                  : mpb_store_set_model_alias(r->server->store, name, alias, number, err, err_len);
}

static int
alias_delete(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    (void)answer;
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    const char *alias = need(r, "alias", err, err_len, &rc);
    return rc < 0 ? rc : mpb_store_delete_model_alias(r->server->store, name, alias, err, err_len);
}

static int
alias_get(rts_request *r, cJSON *answer, char *err, size_t err_len)
{
    int rc = 0;
    const char *name = need(r, "name", err, err_len, &rc);
    const char *alias = need(r, "alias", err, err_len, &rc);
    mpb_model_version *version = NULL;
    if (rc == 0) {
        rc = mpb_store_get_model_version_by_alias(r->server->store, name, alias, &version, err,
                                                  err_len);
    }
    return version_answer(rc, version, answer);
}

static const struct {
    const char *method;
    const char *endpoint;
    rts_route_fn fn;
} routes[] = {
    {"POST", "registered-models/create", models_create},
    {"GET", "registered-models/get", models_get},
    {"GET", "registered-models/search", models_search},
    {"DELETE", "registered-models/delete", models_delete},
    {"POST", "registered-models/alias", alias_set},
    {"DELETE", "registered-models/alias", alias_delete},
    {"GET", "registered-models/alias", alias_get},
    {"POST", "model-versions/create", versions_create},
    {"GET", "model-versions/get", versions_get},
    {"GET", "model-versions/search", versions_search},
};

rts_route_fn
rts_registry_route(const char *method, const char *endpoint)
{
    for (size_t i = 0; i < MPB_ARRAY_LEN(routes); i++) {
        if (strcmp(routes[i].method, method) == 0 && strcmp(routes[i].endpoint, endpoint) == 0) {
            return routes[i].fn;
        }
    }
    return NULL;
}
