/*
 * Internals of the YAML config: config.c (file, sections, settings) uses
 * config_servlet.c (the servlet tree), which uses config_pool.c (a pool
 * node's fields); all use config_yaml.c (errors at a node, typed scalars,
 * remembered settings).
 * Threading: one parse runs on one thread. Ownership: specs own their
 * strings; nodes are borrowed from the document while it is parsed.
 */
#ifndef MPB_SERVLETS_CONFIG_INT_H
#define MPB_SERVLETS_CONFIG_INT_H

#include <stddef.h>

#include <yaml.h>

#include "mpbatch/config.h"

/* Deepest servlet tree a config may describe. */
#define MPB_CONFIG_MAX_DEPTH 16

typedef enum servlet_kind {
    SPEC_PROCESS = 0,
    SPEC_THREAD,
    SPEC_SEQUENTIAL,
    SPEC_ENSEMBLE,
    SPEC_SWITCH,
} servlet_kind;

typedef struct servlet_spec servlet_spec;
struct servlet_spec {
    servlet_kind kind;
    char *name; /* NULL: the default (plugin name, or the kind) */
    /* pools */
    mpb_pool_config pool; /* strings owned */
    char **options;       /* NULL-terminated "key=value" */
    size_t n_options;
    /* composites */
    servlet_spec *members;
    size_t n_members;
    int errors_in_place; /* ensemble */
    char *route_by;      /* switch */
    mpb_route *routes;   /* values owned; members resolved from names */
    size_t n_routes;
    long default_member; /* -1: none */
    char *router;
    char **router_options; /* NULL-terminated */
    size_t n_router_options;
};

typedef struct setting {
    char *path;
    char *value;
} setting;

struct mpb_config {
    servlet_spec servlet;
    mpb_server_options server;
    setting *settings; /* every scalar, by dotted path */
    size_t n_settings;
};

typedef struct parse_ctx {
    const char *name;
    yaml_document_t *doc;
    mpb_config *config;
    char *err;
    size_t err_len;
} parse_ctx;

int mpb__config_fail_at(parse_ctx *ctx, const yaml_node_t *node, const char *fmt, ...)
    MPB_PRINTF(3, 4);
const char *mpb__config_scalar(const yaml_node_t *node);
int mpb__config_unknown_field(parse_ctx *ctx, const yaml_node_t *node, const char *section,
                              const char *key, const char *const *known);
void mpb__config_remember(mpb_config *config, const char *path, const char *value);
int mpb__config_integer(parse_ctx *ctx, const yaml_node_t *node, const char *field, long long min,
                        long long max, long long *out);
int mpb__config_check_unique(parse_ctx *ctx, const yaml_node_t *mapping,
                             const yaml_node_pair_t *pair, const char *section);

/* config_pool.c: a scalar field's text, owned by the caller (NULL with
 * *rc set when it is no scalar); a mapping of key=value pairs; one field
 * of a pool node. */
char *mpb__config_take_string(parse_ctx *ctx, const yaml_node_t *node, const char *field, int *rc);
int mpb__config_parse_pairs(parse_ctx *ctx, const yaml_node_t *node, const char *field, char ***out,
                            size_t *n);
int mpb__config_parse_pool_field(parse_ctx *ctx, const char *key, const yaml_node_t *value,
                                 const char *field, servlet_spec *spec);

/* Parses the servlet: section (a tree) into ctx->config->servlet. */
int mpb__config_parse_servlet(parse_ctx *ctx, const yaml_node_t *node);
void mpb__config_spec_free(servlet_spec *spec);
/* o may be NULL: the tree as the spec says. */
mpb_servlet *mpb__config_build(const servlet_spec *spec, const mpb_pool_override *o);

#endif
