/*
 * Plugin options that name a model in a tracking store (`runs:/<run_id>/
 * <artifact path>`, or a registry URI `models:/<name>/<version>`,
 * `models:/<name>@<alias>`, `models:/<name>/latest`: MLflow's URI forms)
 * become local paths before any worker starts, for mpb run and mpb serve:
 * the coordinator copies the model once into the model cache, and the
 * workers open the copy. The servlet's tracking run records what it
 * serves: a tag per option with the URI, the registry version it resolved
 * to (models:/ URIs) and the SHA-256 of what was served.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/store.h"
#include "mpbatch/tracking.h"
#include "tools/tool_tracking.h"

typedef struct resolved {
    char *path; /* the option's setting: servlet.members.1.options.weights */
    char *uri;
    int64_t version; /* of a models:/ URI; 0 for runs:/ */
    char sha256[65];
} resolved;

/* What this process resolved (the tool's main thread only). */
static resolved *models;
static size_t n_models;

typedef struct resolve_ctx {
    const mpb_config *config;
    const char *tool;
    mpb_store *store;
} resolve_ctx;

static int
resolve_one(void *arg, const char *path, const char *value, char **replacement, char *err,
            size_t err_len)
{
    resolve_ctx *ctx = arg;
    if (!mpb_model_uri_is_runs(value) && !mpb_model_uri_is_models(value)) {
        return 0;
    }
    int rc = 0;
    if (ctx->store == NULL) {
        rc = mpb_store_open(mpb_config_get(ctx->config, "tracking.uri"), &ctx->store, err, err_len);
    }
    char sha256[65];
    char reason[512] = "";
    int64_t version = 0;
    if (rc == 0) {
        rc = mpb_store_resolve_model_uri(ctx->store, value, NULL, replacement, sha256, &version,
                                         reason, sizeof reason);
        if (rc != 0) {
            mpb__set_error(err, err_len, rc, "%s: %s: %s", path, value, reason);
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (version > 0) {
        fprintf(stderr, "%s: %s: %s (version %lld) -> %s (sha256 %.12s)\n", ctx->tool, path, value,
                (long long)version, *replacement, sha256);
    } else {
        fprintf(stderr, "%s: %s: %s -> %s (sha256 %.12s)\n", ctx->tool, path, value, *replacement,
                sha256);
    }
    models = mpb_realloc(models, (n_models + 1) * sizeof *models);
    resolved *r = &models[n_models++];
    r->path = mpb_strdup(path);
    r->uri = mpb_strdup(value);
    r->version = version;
    snprintf(r->sha256, sizeof r->sha256, "%s", sha256);
    return 0;
}

int
mpb__tool_resolve_models(mpb_config *config, const char *tool)
{
    resolve_ctx ctx = {.config = config, .tool = tool};
    char err[1024] = "";
    int rc = mpb_config_rewrite_options(config, resolve_one, &ctx, err, sizeof err);
    mpb_store_destroy(&ctx.store);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", tool, err);
    }
    return rc;
}

void
mpb__tool_tag_models(void)
{
    for (size_t i = 0; i < n_models; i++) {
        /* the option's path below servlet., as its parameter is named */
        const char *below =
            strncmp(models[i].path, "servlet.", 8) == 0 ? models[i].path + 8 : models[i].path;
        char *key = mpb_asprintf("mpb.model.%s", below);
        char *value = models[i].version > 0
                          ? mpb_asprintf("%s version:%lld sha256:%s", models[i].uri,
                                         (long long)models[i].version, models[i].sha256)
                          : mpb_asprintf("%s sha256:%s", models[i].uri, models[i].sha256);
        mpb_tracking_set_tag(key, value);
        free(value);
        free(key);
    }
}
