/*
 * The model registry's public calls: argument checks with MLflow's rules for
 * registered model names, aliases, versions and sources, then the backend's
 * registry slot (MPB_ENOTSUP when it has none); and the registry entities'
 * helpers (free, sort) every backend shares.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/validate.h"

#define RUNS_PREFIX "runs:/"

/* ---- Validation ---- */

static int
validate_model_name(const char *name, char *err, size_t err_len)
{
    if (name == NULL || *name == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL, "Registered model name cannot be empty");
    }
    long len = mpb__utf8_length(name);
    if (len < 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "Registered model name is not valid UTF-8");
    }
    if (len > MPB_MAX_MODEL_NAME_LENGTH) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Registered model name '%.40s...' is longer than %d characters", name,
                              MPB_MAX_MODEL_NAME_LENGTH);
    }
    if (strpbrk(name, "/\\%") != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid name: '%s'. Registered model names cannot contain '/', "
                              "'\\' or '%%', nor be '.' or '..'",
                              name);
    }
    for (const char *p = name; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "Invalid name: registered model names cannot hold control "
                                  "characters");
        }
    }
    return 0;
}

static int
validate_alias(const char *alias, char *err, size_t err_len)
{
    if (alias == NULL || *alias == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL, "Registered model alias cannot be empty");
    }
    size_t len = strlen(alias);
    if (len > MPB_MAX_MODEL_ALIAS_LENGTH) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Registered model alias '%.40s...' is longer than %d characters",
                              alias, MPB_MAX_MODEL_ALIAS_LENGTH);
    }
    if (strspn(alias, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != len) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid alias '%s': aliases may only contain alphanumerics, "
                              "underscores (_) and dashes (-)",
                              alias);
    }
    int version_like = (alias[0] == 'v' || alias[0] == 'V') && len > 1 &&
                       strspn(alias + 1, "0123456789") == len - 1;
    if (version_like || strcasecmp(alias, "latest") == 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid alias '%s': 'latest' and v<number> are reserved (they name "
                              "versions in models:/ URIs)",
                              alias);
    }
    return 0;
}

static int
validate_version(int64_t version, char *err, size_t err_len)
{
    if (version < 1) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Model version must be a positive integer, got %lld",
                              (long long)version);
    }
    return 0;
}

static int
validate_tags(const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    if (n_tags > 0 && tags == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "tags is NULL but n_tags is %zu", n_tags);
    }
    for (size_t i = 0; i < n_tags; i++) {
        int rc = mpb__validate_experiment_tag(tags[i].key, tags[i].value, err, err_len);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

#define REGISTRY_SLOT(self, slot, err, err_len)                                                    \
    do {                                                                                           \
        if ((self)->ops->slot == NULL) {                                                           \
            return mpb__set_error((err), (err_len), MPB_ENOTSUP,                                   \
                                  "the %s store has no model registry", (self)->ops->name);        \
        }                                                                                          \
    } while (0)

/* ---- Public calls ---- */

int
mpb_store_create_registered_model(mpb_store *self, const char *name, const char *description,
                                  const mpb_tag *tags, size_t n_tags, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    REGISTRY_SLOT(self, create_registered_model, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    if (rc == 0 && description != NULL) {
        rc = mpb__validate_value("Description", name, description, MPB_MAX_MODEL_DESCRIPTION_LENGTH,
                                 err, err_len);
    }
    if (rc == 0) {
        rc = validate_tags(tags, n_tags, err, err_len);
    }
    return rc < 0 ? rc
                  : self->ops->create_registered_model(self->backend, name, description, tags,
                                                       n_tags, err, err_len);
}

int
mpb_store_get_registered_model(mpb_store *self, const char *name, mpb_registered_model **out,
                               char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    *out = NULL;
    REGISTRY_SLOT(self, get_registered_model, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    return rc < 0 ? rc : self->ops->get_registered_model(self->backend, name, out, err, err_len);
}

int
mpb_store_list_registered_models(mpb_store *self, mpb_registered_model_list **out, char *err,
                                 size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    *out = NULL;
    REGISTRY_SLOT(self, list_registered_models, err, err_len);
    return self->ops->list_registered_models(self->backend, out, err, err_len);
}

int
mpb_store_delete_registered_model(mpb_store *self, const char *name, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    REGISTRY_SLOT(self, delete_registered_model, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    return rc < 0 ? rc : self->ops->delete_registered_model(self->backend, name, err, err_len);
}

int
mpb_store_create_model_version(mpb_store *self, const char *name, const char *source,
                               const char *run_id, mpb_model_version **out, char *err,
                               size_t err_len)
{
    MPB_ASSERT(self != NULL);
    if (out != NULL) {
        *out = NULL;
    }
    REGISTRY_SLOT(self, create_model_version, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    if (rc == 0 && (source == NULL || *source == '\0')) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "A model version needs a source URI");
    }
    if (rc == 0) {
        rc = mpb__validate_value("Source", name, source, MPB_MAX_MODEL_SOURCE_LENGTH, err, err_len);
    }
    /* runs:/<run_id>/... names its run */
    char *from_uri = NULL;
    if (rc == 0 && (run_id == NULL || *run_id == '\0') &&
        strncmp(source, RUNS_PREFIX, strlen(RUNS_PREFIX)) == 0) {
        const char *start = source + strlen(RUNS_PREFIX);
        while (*start == '/') {
            start++;
        }
        from_uri = mpb_strndup(start, strcspn(start, "/"));
        run_id = from_uri;
    }
    if (run_id != NULL && *run_id == '\0') {
        run_id = NULL;
    }
    if (rc == 0 && run_id != NULL) {
        rc = mpb__validate_run_id(run_id, err, err_len);
    }
    mpb_model_version *version = NULL;
    if (rc == 0) {
        rc = self->ops->create_model_version(self->backend, name, source, run_id, &version, err,
                                             err_len);
    }
    free(from_uri);
    if (out != NULL) {
        *out = version;
    } else {
        mpb_model_version_free(&version);
    }
    return rc;
}

int
mpb_store_get_model_version(mpb_store *self, const char *name, int64_t version,
                            mpb_model_version **out, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    *out = NULL;
    REGISTRY_SLOT(self, get_model_version, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    if (rc == 0) {
        rc = validate_version(version, err, err_len);
    }
    return rc < 0 ? rc
                  : self->ops->get_model_version(self->backend, name, version, out, err, err_len);
}

int
mpb_store_list_model_versions(mpb_store *self, const char *name, mpb_model_version_list **out,
                              char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    *out = NULL;
    REGISTRY_SLOT(self, list_model_versions, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    return rc < 0 ? rc : self->ops->list_model_versions(self->backend, name, out, err, err_len);
}

int
mpb_store_set_model_alias(mpb_store *self, const char *name, const char *alias, int64_t version,
                          char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    REGISTRY_SLOT(self, set_model_alias, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    if (rc == 0) {
        rc = validate_alias(alias, err, err_len);
    }
    if (rc == 0) {
        rc = validate_version(version, err, err_len);
    }
    return rc < 0 ? rc
                  : self->ops->set_model_alias(self->backend, name, alias, version, err, err_len);
}

int
mpb_store_delete_model_alias(mpb_store *self, const char *name, const char *alias, char *err,
                             size_t err_len)
{
    MPB_ASSERT(self != NULL);
    REGISTRY_SLOT(self, delete_model_alias, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    if (rc == 0) {
        rc = validate_alias(alias, err, err_len);
    }
    return rc < 0 ? rc : self->ops->delete_model_alias(self->backend, name, alias, err, err_len);
}

int
mpb_store_get_model_version_by_alias(mpb_store *self, const char *name, const char *alias,
                                     mpb_model_version **out, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    *out = NULL;
    REGISTRY_SLOT(self, get_model_version_by_alias, err, err_len);
    int rc = validate_model_name(name, err, err_len);
    if (rc == 0) {
        rc = validate_alias(alias, err, err_len);
    }
    return rc < 0 ? rc
                  : self->ops->get_model_version_by_alias(self->backend, name, alias, out, err,
                                                          err_len);
}

/* ---- Entities ---- */

void
mpb__registered_model_clear(mpb_registered_model *model)
{
    free(model->name);
    free(model->description);
    mpb__tags_free(model->tags, model->n_tags);
    for (size_t i = 0; i < model->n_aliases; i++) {
        free(model->aliases[i].alias);
    }
    free(model->aliases);
    memset(model, 0, sizeof *model);
}

void
mpb__model_version_clear(mpb_model_version *version)
{
    free(version->name);
    free(version->source);
    free(version->run_id);
    free(version->status);
    for (size_t i = 0; i < version->n_aliases; i++) {
        free(version->aliases[i]);
    }
    free(version->aliases);
    memset(version, 0, sizeof *version);
}

void
mpb_registered_model_free(mpb_registered_model **model_p)
{
    if (model_p != NULL && *model_p != NULL) {
        mpb__registered_model_clear(*model_p);
        free(*model_p);
        *model_p = NULL;
    }
}

void
mpb_model_version_free(mpb_model_version **version_p)
{
    if (version_p != NULL && *version_p != NULL) {
        mpb__model_version_clear(*version_p);
        free(*version_p);
        *version_p = NULL;
    }
}

void
mpb_registered_model_list_free(mpb_registered_model_list **list_p)
{
    if (list_p != NULL && *list_p != NULL) {
        for (size_t i = 0; i < (*list_p)->n_models; i++) {
            mpb__registered_model_clear(&(*list_p)->models[i]);
        }
        free((*list_p)->models);
        free(*list_p);
        *list_p = NULL;
    }
}

void
mpb_model_version_list_free(mpb_model_version_list **list_p)
{
    if (list_p != NULL && *list_p != NULL) {
        for (size_t i = 0; i < (*list_p)->n_versions; i++) {
            mpb__model_version_clear(&(*list_p)->versions[i]);
        }
        free((*list_p)->versions);
        free(*list_p);
        *list_p = NULL;
    }
}

static int
model_order(const void *a, const void *b)
{
    return strcmp(((const mpb_registered_model *)a)->name, ((const mpb_registered_model *)b)->name);
}

static int
version_order(const void *a, const void *b)
{
    int64_t x = ((const mpb_model_version *)a)->version;
    int64_t y = ((const mpb_model_version *)b)->version;
    return (x > y) - (x < y);
}

static int
alias_order(const void *a, const void *b)
{
    return strcmp(((const mpb_model_alias *)a)->alias, ((const mpb_model_alias *)b)->alias);
}

void
mpb__registered_models_sort(mpb_registered_model *models, size_t n)
{
    if (n > 1) {
        qsort(models, n, sizeof *models, model_order);
    }
}

void
mpb__model_versions_sort(mpb_model_version *versions, size_t n)
{
    if (n > 1) {
        qsort(versions, n, sizeof *versions, version_order);
    }
}

void
mpb__model_aliases_sort(mpb_model_alias *aliases, size_t n)
{
    if (n > 1) {
        qsort(aliases, n, sizeof *aliases, alias_order);
    }
}

void
mpb__model_version_take_aliases(mpb_model_version *version, const mpb_model_alias *aliases,
                                size_t n_aliases)
{
    for (size_t i = 0; i < n_aliases; i++) {
        if (aliases[i].version == version->version) {
            version->aliases =
                mpb_realloc(version->aliases, (version->n_aliases + 1) * sizeof *version->aliases);
            version->aliases[version->n_aliases++] = mpb_strdup(aliases[i].alias);
        }
    }
    if (version->n_aliases > 1) {
        qsort(version->aliases, version->n_aliases, sizeof *version->aliases, mpb__compare_strings);
    }
}

int
mpb__registry_model_not_found(const char *name, char *err, size_t err_len)
{
    return mpb__set_error(err, err_len, MPB_ENOTFOUND, "Registered Model with name=%s not found",
                          name);
}

int
mpb__registry_version_not_found(const char *name, int64_t version, char *err, size_t err_len)
{
    return mpb__set_error(err, err_len, MPB_ENOTFOUND,
                          "Model Version (name=%s, version=%lld) not found", name,
                          (long long)version);
}

int
mpb__registry_models_hand_out(mpb_registered_model_list *list, int rc,
                              mpb_registered_model_list **out)
{
    if (rc < 0) {
        mpb_registered_model_list_free(&list);
        return rc;
    }
    mpb__registered_models_sort(list->models, list->n_models);
    *out = list;
    return 0;
}

int
mpb__registry_versions_hand_out(mpb_model_version_list *list, int rc, mpb_model_version_list **out)
{
    if (rc < 0) {
        mpb_model_version_list_free(&list);
        return rc;
    }
    mpb__model_versions_sort(list->versions, list->n_versions);
    *out = list;
    return 0;
}
