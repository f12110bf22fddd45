/*
 * The YAML helpers every part of the config parser uses: errors at a
 * node's line and column, typed scalars, unknown fields with a hint,
 * duplicate keys, and the settings remembered by dotted path.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "servlets/config_int.h"

int
mpb__config_fail_at(parse_ctx *ctx, const yaml_node_t *node, const char *fmt, ...)
{
    char message[400];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return mpb__set_error(ctx->err, ctx->err_len, MPB_ECONFIG, "%s:%zu:%zu: %s", ctx->name,
                          node ? node->start_mark.line + 1 : 1, /* no node: an empty file */
                          node ? node->start_mark.column + 1 : 1, message);
}

const char *
mpb__config_scalar(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

int
mpb__config_unknown_field(parse_ctx *ctx, const yaml_node_t *node, const char *section,
                          const char *key, const char *const *known)
{
    size_t n_known = 0;
    while (known[n_known] != NULL) {
        n_known++;
    }
    const char *nearest = mpb__nearest_name(key, known, n_known);
    if (nearest != NULL) {
        return mpb__config_fail_at(ctx, node, "unknown field %s.%s (did you mean %s?)", section,
                                   key, nearest);
    }
    return mpb__config_fail_at(ctx, node, "unknown field %s.%s", section, key);
}

void
mpb__config_remember(mpb_config *config, const char *path, const char *value)
{
    config->settings = mpb_realloc(config->settings, (config->n_settings + 1) * sizeof(setting));
    config->settings[config->n_settings++] = (setting){mpb_strdup(path), mpb_strdup(value)};
}

int
mpb__config_integer(parse_ctx *ctx, const yaml_node_t *node, const char *field, long long min,
                    long long max, long long *out)
{
    const char *text = mpb__config_scalar(node);
    char *end = NULL;
    errno = 0;
    long long value = text ? strtoll(text, &end, 10) : 0;
    if (text == NULL || *text == '\0' || errno != 0 || *end != '\0' || value < min) {
        return mpb__config_fail_at(ctx, node, "%s must be an integer >= %lld (got '%s')", field,
                                   min, text ? text : "a list or mapping");
    }
    if (value > max) {
        return mpb__config_fail_at(ctx, node, "%s must be at most %lld (got %lld)", field, max,
                                   value);
    }
    *out = value;
    return 0;
}

/* A key given twice in one mapping is an error, not "the last one wins". */
int
mpb__config_check_unique(parse_ctx *ctx, const yaml_node_t *mapping, const yaml_node_pair_t *pair,
                         const char *section)
{
    const yaml_node_t *key = yaml_document_get_node(ctx->doc, pair->key);
    const char *name = mpb__config_scalar(key);
    for (const yaml_node_pair_t *p = mapping->data.mapping.pairs.start; name && p < pair; p++) {
        const char *other = mpb__config_scalar(yaml_document_get_node(ctx->doc, p->key));
        if (other != NULL && strcmp(other, name) == 0) {
            return mpb__config_fail_at(ctx, key, "%s%s%s is given twice", section,
                                       *section ? "." : "", name);
        }
    }
    return 0;
}
