/*
 * A pool's fields in the servlet tree (config_servlet.c parses the tree):
 * plugin, cpus, options, the integers with their bounds, retry, isolate,
 * and the strings a node owns. Errors name the field at its line.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/affinity.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/worker.h"
#include "servlets/config_int.h"

char *
mpb__config_take_string(parse_ctx *ctx, const yaml_node_t *node, const char *field, int *rc)
{
    const char *text = mpb__config_scalar(node);
    if (text == NULL) {
        *rc = mpb__config_fail_at(ctx, node, "%s must be a single value, not a list or mapping",
                                  field);
        return NULL;
    }
    return mpb_strdup(text);
}

/* One CPU list of cpus:, checked here (syntax, and that this machine lets
 * the process use those CPUs) so that the error has its position. */
static int
check_cpu_list(parse_ctx *ctx, const yaml_node_t *node, const char *field, const char *text)
{
    char why[256];
    if (mpb__affinity_check(text, why, sizeof why) != 0) {
        return mpb__config_fail_at(ctx, node, "%s: %s", field, why);
    }
    return 0;
}

/* cpus: auto | none | "0-1" (one worker) | [0, 1] | ["0-1", "2-3"] */
static int
parse_cpus(parse_ctx *ctx, const yaml_node_t *node, const char *field, servlet_spec *spec)
{
    if (node->type == YAML_SCALAR_NODE) {
        const char *text = mpb__config_scalar(node);
        if (strcmp(text, "auto") != 0 && strcmp(text, "none") != 0) {
            int rc = check_cpu_list(ctx, node, field, text);
            if (rc != 0) {
                return rc;
            }
        }
        spec->pool.cpus = mpb_strdup(text);
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE) {
        return mpb__config_fail_at(
            ctx, node, "%s must be auto, none, or a list with one CPU list per worker", field);
    }
    char *joined = mpb_calloc(1, 1);
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(ctx->doc, *it);
        const char *text = mpb__config_scalar(item);
        if (text == NULL || *text == '\0') {
            free(joined);
            return mpb__config_fail_at(ctx, item,
                                       "%s entries must be CPU lists such as 0 or \"2-3\"", field);
        }
        int rc = check_cpu_list(ctx, item, field, text);
        if (rc != 0) {
            free(joined);
            return rc;
        }
        char *longer = mpb_asprintf("%s%s%s", joined, *joined ? ";" : "", text);
        free(joined);
        joined = longer;
    }
    spec->pool.cpus = joined;
    return 0;
}

/* A mapping of name: value into "name=value" strings. */
int
mpb__config_parse_pairs(parse_ctx *ctx, const yaml_node_t *node, const char *field, char ***out,
                        size_t *n)
{
    if (node->type != YAML_MAPPING_NODE) {
        return mpb__config_fail_at(ctx, node, "%s must be a mapping of name: value", field);
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        if (mpb__config_scalar(key) == NULL || mpb__config_scalar(value) == NULL) {
            return mpb__config_fail_at(ctx, value, "%s values must be single values", field);
        }
        if (mpb__config_check_unique(ctx, node, p, field) != 0) {
            return MPB_ECONFIG;
        }
        *out = mpb_realloc(*out, (*n + 2) * sizeof(char *));
        (*out)[(*n)++] = mpb_asprintf("%s=%s", mpb__config_scalar(key), mpb__config_scalar(value));
        (*out)[*n] = NULL;
        char path[256];
        snprintf(path, sizeof path, "%s.%s", field, mpb__config_scalar(key));
        mpb__config_remember(ctx->config, path, mpb__config_scalar(value));
    }
    return 0;
}

static int
parse_pool_integer(parse_ctx *ctx, const char *key, const yaml_node_t *value, const char *field,
                   mpb_pool_config *pool)
{
    static const struct {
        const char *key;
        long long min;
        long long max;
    } bounds[] = {{"workers", 0, 4096},
                  {"batch_size", 0, 1 << 20},
                  {"batch_wait_us", 0, 3600LL * 1000000},
                  {"capacity", 1, 1 << 20},
                  {"start_timeout_ms", 1, INT_MAX},
                  {"max_item_bytes", 1, 1 << 30},
                  {"shm_bytes", 0, 1 << 30},
                  {"unavailable_timeout_ms", -1, INT_MAX},
                  {"batch_timeout_ms", -1, INT_MAX},
                  {"retry", 0, 100}};
    long long n = 0;
    for (size_t i = 0; i < MPB_ARRAY_LEN(bounds); i++) {
        if (strcmp(key, bounds[i].key) != 0) {
            continue;
        }
        long long max = bounds[i].max < 2147483647LL ? bounds[i].max : 2147483647LL;
        int rc = mpb__config_integer(ctx, value, field, bounds[i].min, max, &n);
        if (rc != 0) {
            return rc;
        }
        break;
    }
    if (strcmp(key, "workers") == 0) {
        pool->workers = (unsigned)n;
    } else if (strcmp(key, "batch_size") == 0) {
        pool->batch_size = n;
    } else if (strcmp(key, "batch_wait_us") == 0) {
        pool->batch_wait_us = n;
    } else if (strcmp(key, "capacity") == 0) {
        pool->capacity = (unsigned)n;
    } else if (strcmp(key, "start_timeout_ms") == 0) {
        pool->start_timeout_ms = (int)n;
    } else if (strcmp(key, "shm_bytes") == 0) {
        pool->shm_bytes = n;
    } else if (strcmp(key, "unavailable_timeout_ms") == 0) {
        pool->unavailable_timeout_ms = (int)n;
    } else if (strcmp(key, "batch_timeout_ms") == 0) {
        pool->batch_timeout_ms = (int)n;
    } else if (strcmp(key, "retry") == 0) {
        pool->retry = (unsigned)n;
    } else {
        pool->max_item_bytes = (size_t)n;
    }
    return 0;
}

int
mpb__config_parse_pool_field(parse_ctx *ctx, const char *key, const yaml_node_t *value,
                             const char *field, servlet_spec *spec)
{
    int rc = 0;
    mpb_pool_config *pool = &spec->pool;
    if (strcmp(key, "plugin") == 0) {
        pool->plugin = mpb__config_take_string(ctx, value, field, &rc);
        if (rc == 0 && pool->plugin[0] == '\0') {
            rc = mpb__config_fail_at(ctx, value, "%s must name a plugin (mpb plugins lists them)",
                                     field);
        }
    } else if (strcmp(key, "bind") == 0) {
        pool->bind = mpb__config_take_string(ctx, value, field, &rc);
    } else if (strcmp(key, "worker_exe") == 0) {
        pool->worker_exe = mpb__config_take_string(ctx, value, field, &rc);
    } else if (strcmp(key, "isolate") == 0) {
        pool->isolate = mpb__config_take_string(ctx, value, field, &rc);
        if (rc == 0 && strcmp(pool->isolate, "bisect") != 0 && strcmp(pool->isolate, "none") != 0) {
            rc = mpb__config_fail_at(ctx, value, "%s must be bisect or none (got '%s')", field,
                                     pool->isolate);
        }
    } else if (strcmp(key, "cpus") == 0) {
        rc = parse_cpus(ctx, value, field, spec);
    } else if (strcmp(key, "options") == 0) {
        rc = mpb__config_parse_pairs(ctx, value, field, &spec->options, &spec->n_options);
    } else if (strcmp(key, "batch_wait_us") == 0 && mpb__config_scalar(value) != NULL &&
               strcmp(mpb__config_scalar(value), "auto") == 0) {
        pool->batch_wait_us = MPB_BATCH_WAIT_AUTO;
    } else if (strcmp(key, "batch_wait_us") == 0 && mpb__config_scalar(value) != NULL &&
               strspn(mpb__config_scalar(value), "0123456789") !=
                   strlen(mpb__config_scalar(value))) {
        rc = mpb__config_fail_at(ctx, value, "%s must be an integer >= 0 or auto (got '%s')", field,
                                 mpb__config_scalar(value));
    } else {
        rc = parse_pool_integer(ctx, key, value, field, pool);
    }
    return rc;
}
