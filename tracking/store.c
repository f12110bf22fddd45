/*
 * The public store API: picks a backend by tracking-URI scheme, validates
 * every argument with MLflow's rules before a backend sees it, and builds
 * the registry helpers on top of the backend slots.
 */
#include <ctype.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/fs_util.h"
#include "tracking/reststore_int.h"
#include "tracking/search.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/validate.h"

/* MLflow's default since 3.7, and the file store it replaced, which stays
 * the default where ./mlruns already holds experiments. */
#define DEFAULT_TRACKING_URI "sqlite:///mlflow.db"
#define LEGACY_TRACKING_URI "./mlruns"
#define LEGACY_TRACKING_DIR "mlruns"

static const struct backend_entry {
    const char *scheme;
    const mpb__store_ops *(*ops)(void); /* NULL: not built yet */
    const char *what;
} backends[] = {
    {"file", mpb__filestore_backend, "MLflow's FileStore layout"},
    {"sqlite", mpb__sqlstore_backend, "MLflow's SQLite schema"},
    {"http", mpb__reststore_backend, "an MLflow tracking server's REST API"},
    {"https", mpb__reststore_backend, "an MLflow tracking server's REST API"},
};

/* Length of a URI scheme ("sqlite" in "sqlite:///x"), 0 for a plain path. */
static size_t
scheme_length(const char *uri)
{
    if (!isalpha((unsigned char)uri[0])) {
        return 0;
    }
    size_t len = 1;
    while (isalnum((unsigned char)uri[len]) || uri[len] == '+' || uri[len] == '.' ||
           uri[len] == '-') {
        len++;
    }
    return uri[len] == ':' && len > 1 ? len : 0;
}

static int
open_backend(const char *uri, const mpb_store_open_opts *opts, mpb_store **out, char *err,
             size_t err_len)
{
    static const mpb_store_open_opts defaults = {0};
    if (*uri == '\0') {
        return mpb__set_error(err, err_len, MPB_EINVAL, "empty tracking URI");
    }
    size_t len = scheme_length(uri);
    const struct backend_entry *backend = len == 0 ? &backends[0] : NULL;
    for (size_t i = 0; backend == NULL && i < MPB_ARRAY_LEN(backends); i++) {
        if (strlen(backends[i].scheme) == len && strncasecmp(uri, backends[i].scheme, len) == 0) {
            backend = &backends[i];
        }
    }
    if (backend == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP,
                              "tracking URI scheme '%.*s' is not supported (use "
                              "sqlite:///PATH.db, file:PATH, http(s)://HOST:PORT or a plain path)",
                              (int)len, uri);
    }
    if (backend->ops == NULL) {
        return mpb__set_error(err, err_len, MPB_ENOTSUP,
                              "tracking URI scheme '%s' (%s) is not built yet; use "
                              "sqlite:///PATH.db, file:PATH or a plain path",
                              backend->scheme, backend->what);
    }
    const mpb__store_ops *ops = backend->ops();
    void *state = NULL;
    char *resolved = NULL;
    int rc = ops->open(uri, opts != NULL ? opts : &defaults, &state, &resolved, err, err_len);
    if (rc < 0) {
        return rc;
    }
    mpb_store *store = mpb_calloc(1, sizeof *store);
    store->ops = ops;
    store->backend = state;
    store->uri = resolved;
    *out = store;
    return 0;
}

/* 1 when ./mlruns holds an experiment: a folder (not hidden) with meta.yaml. */
static int
has_mlruns_data(void)
{
    char **names = NULL;
    size_t n = 0;
    if (mpb__fs_list(LEGACY_TRACKING_DIR, 1, &names, &n) < 0) {
        return 0;
    }
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        if (names[i][0] != '.') {
            char *meta = mpb_asprintf("%s/%s/meta.yaml", LEGACY_TRACKING_DIR, names[i]);
            found = mpb__fs_is_file(meta);
            free(meta);
        }
    }
    mpb__fs_names_free(names, n);
    return found;
}

char *
mpb_store_default_uri(void)
{
    const char *env = getenv("MLFLOW_TRACKING_URI");
    if (env != NULL && *env != '\0') {
        return mpb_strdup(env);
    }
    return mpb_strdup(has_mlruns_data() ? LEGACY_TRACKING_URI : DEFAULT_TRACKING_URI);
}

int
mpb_store_open(const char *uri, mpb_store **out, char *err, size_t err_len)
{
    return mpb_store_open_with(uri, NULL, out, err, err_len);
}

int
mpb_store_open_with(const char *uri, const mpb_store_open_opts *opts, mpb_store **out, char *err,
                    size_t err_len)
{
    MPB_ASSERT(out != NULL);
    char *default_uri = uri == NULL ? mpb_store_default_uri() : NULL;
    int rc = open_backend(uri != NULL ? uri : default_uri, opts, out, err, err_len);
    free(default_uri);
    return rc;
}

void
mpb_store_destroy(mpb_store **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_store *self = *self_p;
    self->ops->close(self->backend);
    free(self->uri);
    free(self);
    *self_p = NULL;
}

const char *
mpb_store_uri(const mpb_store *self)
{
    MPB_ASSERT(self != NULL);
    return self->uri;
}

/* ---- Experiments ---- */

int
mpb_store_create_experiment(mpb_store *self, const char *name, const char *artifact_location,
                            const mpb_tag *tags, size_t n_tags, char **out_experiment_id, char *err,
                            size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_experiment_name(name, err, err_len);
    for (size_t i = 0; rc == 0 && i < n_tags; i++) {
        rc = mpb__validate_experiment_tag(tags[i].key, tags[i].value, err, err_len);
    }
    if (rc == 0 && artifact_location != NULL) {
        rc = mpb__validate_value("Artifact location", NULL, artifact_location, 2048, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    return self->ops->create_experiment(self->backend, name, artifact_location, tags, n_tags,
                                        out_experiment_id, err, err_len);
}

int
mpb_store_get_experiment(mpb_store *self, const char *experiment_id, mpb_experiment **out,
                         char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    int rc = mpb__validate_experiment_id(experiment_id, err, err_len);
    return rc < 0 ? rc : self->ops->get_experiment(self->backend, experiment_id, out, err, err_len);
}

int
mpb_store_get_experiment_by_name(mpb_store *self, const char *name, mpb_experiment **out, char *err,
                                 size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    int rc = mpb__validate_experiment_name(name, err, err_len);
    return rc < 0 ? rc : self->ops->get_experiment_by_name(self->backend, name, out, err, err_len);
}

int
mpb_store_delete_experiment(mpb_store *self, const char *experiment_id, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_experiment_id(experiment_id, err, err_len);
    return rc < 0 ? rc : self->ops->delete_experiment(self->backend, experiment_id, err, err_len);
}

int
mpb_store_restore_experiment(mpb_store *self, const char *experiment_id, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_experiment_id(experiment_id, err, err_len);
    return rc < 0 ? rc : self->ops->restore_experiment(self->backend, experiment_id, err, err_len);
}

int
mpb_store_set_experiment_tag(mpb_store *self, const char *experiment_id, const char *key,
                             const char *value, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_experiment_id(experiment_id, err, err_len);
    if (rc == 0) {
        rc = mpb__validate_experiment_tag(key, value, err, err_len);
    }
    return rc < 0 ? rc
                  : self->ops->set_experiment_tag(self->backend, experiment_id, key, value, err,
                                                  err_len);
}

int
mpb_store_search_experiments(mpb_store *self, const mpb_search_opts *opts,
                             mpb_experiment_page **out, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    int rc = mpb__search_opts_check(MPB__SEARCH_EXPERIMENTS, opts, err, err_len);
    return rc < 0 ? rc : self->ops->search_experiments(self->backend, opts, out, err, err_len);
}

/* ---- Runs ---- */

static char *
current_user(void)
{
    const char *env_names[] = {"LOGNAME", "USER", "LNAME", "USERNAME"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(env_names); i++) {
        const char *value = getenv(env_names[i]);
        if (value != NULL && *value != '\0' && mpb__utf8_length(value) >= 0) {
            return mpb_strdup(value);
        }
    }
    struct passwd pw;
    struct passwd *found = NULL;
    char buf[1024];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &found) == 0 && found != NULL) {
        return mpb_strdup(found->pw_name);
    }
    return mpb_strdup("unknown");
}

/* The tags a run is created with: the caller's plus mlflow.runName and
 * mlflow.user when absent. Borrowed strings; free only the array. */
static mpb_tag *
tags_with_defaults(const mpb_tag *tags, size_t n_tags, const char *run_name, const char *user,
                   size_t *out_n)
{
    mpb_tag *all = mpb_calloc(n_tags + 2, sizeof *all);
    if (n_tags > 0) {
        memcpy(all, tags, n_tags * sizeof *tags);
    }
    size_t n = n_tags;
    if (mpb__tag_find(tags, n_tags, MPB_TAG_RUN_NAME) == NULL) {
        all[n++] = (mpb_tag){MPB_TAG_RUN_NAME, run_name};
    }
    if (mpb__tag_find(tags, n_tags, MPB_TAG_USER) == NULL) {
        all[n++] = (mpb_tag){MPB_TAG_USER, user};
    }
    *out_n = n;
    return all;
}

int
mpb_store_create_run(mpb_store *self, const char *experiment_id, const char *user_id,
                     int64_t start_time_ms, const char *run_name, const mpb_tag *tags,
                     size_t n_tags, char **out_run_id, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_experiment_id(experiment_id, err, err_len);
    if (rc == 0) {
        rc = mpb__validate_run_tags(tags, n_tags, err, err_len);
    }
    if (rc == 0 && run_name != NULL) {
        rc = mpb__validate_value("Run name", MPB_TAG_RUN_NAME, run_name, MPB_MAX_TAG_VAL_LENGTH,
                                 err, err_len);
    }
    if (rc == 0 && user_id != NULL) {
        rc = mpb__validate_value("User id", MPB_TAG_USER, user_id, MPB_MAX_TAG_VAL_LENGTH, err,
                                 err_len);
    }
    const char *name_tag = mpb__tag_find(tags, n_tags, MPB_TAG_RUN_NAME);
    if (rc == 0 && run_name != NULL && name_tag != NULL && strcmp(run_name, name_tag) != 0) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL,
                            "Both 'run_name' argument and 'mlflow.runName' tag are specified, "
                            "but with different values (run_name='%s', mlflow.runName='%s').",
                            run_name, name_tag);
    }
    if (rc < 0) {
        return rc;
    }
    char *name = run_name   ? mpb_strdup(run_name)
                 : name_tag ? mpb_strdup(name_tag)
                            : mpb__run_name_new();
    const char *user_tag = mpb__tag_find(tags, n_tags, MPB_TAG_USER);
    char *user = user_id ? mpb_strdup(user_id) : user_tag ? mpb_strdup(user_tag) : current_user();
    size_t n_all = 0;
    mpb_tag *all = tags_with_defaults(tags, n_tags, name, user, &n_all);
    rc = self->ops->create_run(self->backend, experiment_id, user,
                               start_time_ms < 0 ? mpb_wall_ms() : start_time_ms, name, all, n_all,
                               out_run_id, err, err_len);
    free(all);
    free(user);
    free(name);
    return rc;
}

int
mpb_store_update_run(mpb_store *self, const char *run_id, mpb_run_status status,
                     int64_t end_time_ms, const char *run_name, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_run_id(run_id, err, err_len);
    if (rc == 0 && (status < MPB_RUN_RUNNING || status > MPB_RUN_KILLED)) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid run status %d (1..5)", (int)status);
    }
    if (rc == 0 && run_name != NULL) {
        rc = mpb__validate_value("Run name", MPB_TAG_RUN_NAME, run_name, MPB_MAX_TAG_VAL_LENGTH,
                                 err, err_len);
    }
    return rc < 0 ? rc
                  : self->ops->update_run(self->backend, run_id, status, end_time_ms, run_name, err,
                                          err_len);
}

int
mpb_store_log_batch(mpb_store *self, const char *run_id, const mpb_metric *metrics,
                    size_t n_metrics, const mpb_param *params, size_t n_params, const mpb_tag *tags,
                    size_t n_tags, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_run_id(run_id, err, err_len);
    if (rc == 0) {
        rc = mpb__validate_batch(metrics, n_metrics, params, n_params, tags, n_tags, err, err_len);
    }
    return rc < 0 ? rc
                  : self->ops->log_batch(self->backend, run_id, metrics, n_metrics, params,
                                         n_params, tags, n_tags, err, err_len);
}

int
mpb_store_get_run(mpb_store *self, const char *run_id, mpb_run **out, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    int rc = mpb__validate_run_id(run_id, err, err_len);
    return rc < 0 ? rc : self->ops->get_run(self->backend, run_id, out, err, err_len);
}

int
mpb_store_search_runs(mpb_store *self, const char *const *experiment_ids, size_t n_experiment_ids,
                      const mpb_search_opts *opts, mpb_run_page **out, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n_experiment_ids; i++) {
        rc = mpb__validate_experiment_id(experiment_ids[i], err, err_len);
    }
    if (rc == 0) {
        rc = mpb__search_opts_check(MPB__SEARCH_RUNS, opts, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    /* an experiment named twice is searched once, as MLflow's
     * `experiment_id IN (...)` does: no run comes back twice */
    const char **unique = mpb_calloc(n_experiment_ids ? n_experiment_ids : 1, sizeof *unique);
    size_t n_unique = 0;
    for (size_t i = 0; i < n_experiment_ids; i++) {
        size_t j = 0;
        while (j < n_unique && strcmp(unique[j], experiment_ids[i]) != 0) {
            j++;
        }
        if (j == n_unique) {
            unique[n_unique++] = experiment_ids[i];
        }
    }
    rc = self->ops->search_runs(self->backend, unique, n_unique, opts, out, err, err_len);
    free(unique);
    return rc;
}

int
mpb_store_delete_run(mpb_store *self, const char *run_id, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_run_id(run_id, err, err_len);
    return rc < 0 ? rc : self->ops->delete_run(self->backend, run_id, err, err_len);
}

int
mpb_store_restore_run(mpb_store *self, const char *run_id, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_run_id(run_id, err, err_len);
    return rc < 0 ? rc : self->ops->restore_run(self->backend, run_id, err, err_len);
}

int
mpb_store_set_tag(mpb_store *self, const char *run_id, const char *key, const char *value,
                  char *err, size_t err_len)
{
    mpb_tag tag = {key, value};
    return mpb_store_log_batch(self, run_id, NULL, 0, NULL, 0, &tag, 1, err, err_len);
}

int
mpb_store_delete_tag(mpb_store *self, const char *run_id, const char *key, char *err,
                     size_t err_len)
{
    MPB_ASSERT(self != NULL);
    int rc = mpb__validate_run_id(run_id, err, err_len);
    if (rc == 0) {
        rc = mpb__validate_key("tag", key, err, err_len);
    }
    return rc < 0 ? rc : self->ops->delete_tag(self->backend, run_id, key, err, err_len);
}

int
mpb_store_get_metric_history(mpb_store *self, const char *run_id, const char *key,
                             mpb_metric_history **out, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out != NULL);
    int rc = mpb__validate_run_id(run_id, err, err_len);
    if (rc == 0) {
        rc = mpb__validate_key("metric", key, err, err_len);
    }
    return rc < 0 ? rc
                  : self->ops->get_metric_history(self->backend, run_id, key, out, err, err_len);
}
