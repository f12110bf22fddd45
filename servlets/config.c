/*
 * DESIGN
 * The YAML file is loaded whole with libyaml's document API, which keeps a
 * line and column for every node, so each complaint can point at the spot.
 * Sections and fields are checked against tables: an unknown field is an
 * error (with the nearest known name as a hint), never silently ignored.
 * The servlet section becomes a spec that mpb_config_servlet turns into a
 * fresh servlet tree each time (a config can start several servers).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/util.h"
#include "mpbatch/config.h"
#include "mpbatch/error.h"

typedef struct servlet_spec {
    char *kind; /* "process" | "thread" */
    mpb_pool_config pool;
    char **options; /* NULL-terminated "key=value" */
    size_t n_options;
} servlet_spec;

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

static int fail_at(parse_ctx *ctx, const yaml_node_t *node, const char *fmt, ...) MPB_PRINTF(3, 4);

static int
fail_at(parse_ctx *ctx, const yaml_node_t *node, const char *fmt, ...)
{
    char message[400];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return mpb__set_error(ctx->err, ctx->err_len, MPB_ECONFIG, "%s:%zu:%zu: %s", ctx->name,
                          node ? node->start_mark.line + 1 : 0,
                          node ? node->start_mark.column + 1 : 0, message);
}

static const char *
scalar(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static size_t
edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    if (la > 63 || lb > 63) {
        return 64;
    }
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            best = up + 1 < best ? up + 1 : best;
            best = row[j - 1] + 1 < best ? row[j - 1] + 1 : best;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int
unknown_field(parse_ctx *ctx, const yaml_node_t *node, const char *section, const char *key,
              const char *const *known)
{
    const char *nearest = NULL;
    size_t best = 3;
    for (size_t i = 0; known[i] != NULL; i++) {
        size_t d = edit_distance(key, known[i]);
        if (d < best) {
            best = d;
            nearest = known[i];
        }
    }
    if (nearest != NULL) {
        return fail_at(ctx, node, "unknown field %s.%s (did you mean %s?)", section, key, nearest);
    }
    return fail_at(ctx, node, "unknown field %s.%s", section, key);
}

static void
remember(mpb_config *config, const char *path, const char *value)
{
    config->settings = mpb_realloc(config->settings, (config->n_settings + 1) * sizeof(setting));
    config->settings[config->n_settings++] = (setting){mpb_strdup(path), mpb_strdup(value)};
}

static int
to_integer_in(parse_ctx *ctx, const yaml_node_t *node, const char *field, long long min,
              long long max, long long *out)
{
    const char *text = scalar(node);
    char *end = NULL;
    errno = 0;
    long long value = text ? strtoll(text, &end, 10) : 0;
    if (text == NULL || *text == '\0' || errno != 0 || *end != '\0' || value < min) {
        return fail_at(ctx, node, "%s must be an integer >= %lld (got '%s')", field, min,
                       text ? text : "a list or mapping");
    }
    if (value > max) {
        return fail_at(ctx, node, "%s must be at most %lld (got %lld)", field, max, value);
    }
    *out = value;
    return 0;
}

/* Integers bounded so they fit the C fields they end in. */
static int
to_integer(parse_ctx *ctx, const yaml_node_t *node, const char *field, long long min,
           long long *out)
{
    long long max = INT_MAX;
    if (strcmp(field, "servlet.workers") == 0) {
        max = 4096;
    } else if (strcmp(field, "servlet.batch_size") == 0 || strcmp(field, "servlet.capacity") == 0) {
        max = 1 << 20;
    } else if (strcmp(field, "server.capacity") == 0) {
        max = 1 << 22;
    } else if (strcmp(field, "servlet.max_item_bytes") == 0) {
        max = 1 << 30;
    } else if (strcmp(field, "servlet.batch_wait_us") == 0) {
        max = 3600LL * 1000000;
    }
    return to_integer_in(ctx, node, field, min, max, out);
}

/* A key given twice in one mapping is an error, not "the last one wins". */
static int
check_unique(parse_ctx *ctx, const yaml_node_t *mapping, const yaml_node_pair_t *pair,
             const char *section)
{
    const yaml_node_t *key = yaml_document_get_node(ctx->doc, pair->key);
    const char *name = scalar(key);
    for (const yaml_node_pair_t *p = mapping->data.mapping.pairs.start; name && p < pair; p++) {
        const char *other = scalar(yaml_document_get_node(ctx->doc, p->key));
        if (other != NULL && strcmp(other, name) == 0) {
            return fail_at(ctx, key, "%s%s%s is given twice", section, *section ? "." : "", name);
        }
    }
    return 0;
}

static char *
take_string(parse_ctx *ctx, const yaml_node_t *node, const char *field, int *rc)
{
    const char *text = scalar(node);
    if (text == NULL) {
        *rc = fail_at(ctx, node, "%s must be a single value, not a list or mapping", field);
        return NULL;
    }
    return mpb_strdup(text);
}

/* cpus: auto | none | "0-1" (one worker) | [0, 1] | ["0-1", "2-3"] */
static int
parse_cpus(parse_ctx *ctx, const yaml_node_t *node, servlet_spec *spec)
{
    if (node->type == YAML_SCALAR_NODE) {
        spec->pool.cpus = mpb_strdup(scalar(node));
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE) {
        return fail_at(ctx, node,
                       "servlet.cpus must be auto, none, or a list with one CPU "
                       "list per worker");
    }
    size_t total = 1;
    char *joined = mpb_calloc(1, 1);
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(ctx->doc, *it);
        const char *text = scalar(item);
        if (text == NULL || *text == '\0') {
            free(joined);
            return fail_at(ctx, item,
                           "servlet.cpus entries must be CPU lists such as 0 or "
                           "\"2-3\"");
        }
        size_t len = strlen(text);
        joined = mpb_realloc(joined, total + len + 1);
        if (total > 1) {
            strcat(joined, ";");
            total++;
        }
        strcat(joined, text);
        total += len;
    }
    spec->pool.cpus = joined;
    return 0;
}

static int
parse_options(parse_ctx *ctx, const yaml_node_t *node, servlet_spec *spec)
{
    if (node->type != YAML_MAPPING_NODE) {
        return fail_at(ctx, node, "servlet.options must be a mapping of name: value");
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        if (scalar(key) == NULL || scalar(value) == NULL) {
            return fail_at(ctx, value, "servlet.options values must be single values");
        }
        if (check_unique(ctx, node, p, "servlet.options") != 0) {
            return MPB_ECONFIG;
        }
        spec->options = mpb_realloc(spec->options, (spec->n_options + 2) * sizeof(char *));
        spec->options[spec->n_options++] = mpb_asprintf("%s=%s", scalar(key), scalar(value));
        spec->options[spec->n_options] = NULL;
    }
    return 0;
}

static const char *const servlet_fields[] = {
    "kind",           "name",     "plugin",  "workers", "cpus",       "batch_size",
    "batch_wait_us",  "capacity", "options", "bind",    "worker_exe", "start_timeout_ms",
    "max_item_bytes", NULL};

static int
parse_servlet_field(parse_ctx *ctx, const char *key, const yaml_node_t *value, servlet_spec *spec)
{
    int rc = 0;
    long long n = 0;
    mpb_pool_config *pool = &spec->pool;
    if (strcmp(key, "kind") == 0) {
        spec->kind = take_string(ctx, value, "servlet.kind", &rc);
        if (rc == 0 && strcmp(spec->kind, "process") != 0 && strcmp(spec->kind, "thread") != 0) {
            rc = fail_at(ctx, value, "servlet.kind must be process or thread (got '%s')",
                         spec->kind);
        }
    } else if (strcmp(key, "name") == 0) {
        pool->name = take_string(ctx, value, "servlet.name", &rc);
    } else if (strcmp(key, "plugin") == 0) {
        pool->plugin = take_string(ctx, value, "servlet.plugin", &rc);
    } else if (strcmp(key, "bind") == 0) {
        pool->bind = take_string(ctx, value, "servlet.bind", &rc);
    } else if (strcmp(key, "worker_exe") == 0) {
        pool->worker_exe = take_string(ctx, value, "servlet.worker_exe", &rc);
    } else if (strcmp(key, "cpus") == 0) {
        rc = parse_cpus(ctx, value, spec);
    } else if (strcmp(key, "options") == 0) {
        rc = parse_options(ctx, value, spec);
    } else if (strcmp(key, "workers") == 0) {
        rc = to_integer(ctx, value, "servlet.workers", 0, &n);
        pool->workers = (unsigned)n;
    } else if (strcmp(key, "batch_size") == 0) {
        rc = to_integer(ctx, value, "servlet.batch_size", 0, &pool->batch_size);
    } else if (strcmp(key, "batch_wait_us") == 0) {
        rc = to_integer(ctx, value, "servlet.batch_wait_us", 0, &pool->batch_wait_us);
    } else if (strcmp(key, "capacity") == 0) {
        rc = to_integer(ctx, value, "servlet.capacity", 1, &n);
        pool->capacity = (unsigned)n;
    } else if (strcmp(key, "start_timeout_ms") == 0) {
        rc = to_integer(ctx, value, "servlet.start_timeout_ms", 1, &n);
        pool->start_timeout_ms = (int)n;
    } else if (strcmp(key, "max_item_bytes") == 0) {
        rc = to_integer(ctx, value, "servlet.max_item_bytes", 1, &n);
        pool->max_item_bytes = (size_t)n;
    } else {
        rc = unknown_field(ctx, value, "servlet", key, servlet_fields);
    }
    return rc;
}

static int
parse_servlet(parse_ctx *ctx, const yaml_node_t *node)
{
    servlet_spec *spec = &ctx->config->servlet;
    if (node->type != YAML_MAPPING_NODE) {
        return fail_at(ctx, node, "servlet must be a mapping (plugin: ..., workers: ...)");
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        const char *name = scalar(key);
        if (check_unique(ctx, node, p, "servlet") != 0) {
            return MPB_ECONFIG;
        }
        int known = 0;
        for (size_t i = 0; name != NULL && servlet_fields[i] != NULL; i++) {
            known |= strcmp(name, servlet_fields[i]) == 0;
        }
        int rc = known ? parse_servlet_field(ctx, name, value, spec)
                       : unknown_field(ctx, key, "servlet", name ? name : "?", servlet_fields);
        if (rc == 0 && scalar(value) != NULL) {
            char path[128];
            snprintf(path, sizeof path, "servlet.%s", scalar(key));
            remember(ctx->config, path, scalar(value));
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (spec->pool.plugin == NULL) {
        return fail_at(ctx, node,
                       "servlet.plugin is required (a plugin name such as mlp, or "
                       "a path to a .so)");
    }
    return 0;
}

/* server:, io:, tracking: hold scalars only; each known field is listed. */
static int
parse_flat_section(parse_ctx *ctx, const char *section, const yaml_node_t *node,
                   const char *const *known)
{
    if (node->type != YAML_MAPPING_NODE) {
        return fail_at(ctx, node, "%s must be a mapping", section);
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        const char *name = scalar(key);
        if (check_unique(ctx, node, p, section) != 0) {
            return MPB_ECONFIG;
        }
        int is_known = 0;
        for (size_t i = 0; name != NULL && known[i] != NULL; i++) {
            is_known |= strcmp(name, known[i]) == 0;
        }
        if (!is_known) {
            return unknown_field(ctx, key, section, name ? name : "?", known);
        }
        if (scalar(value) == NULL) {
            return fail_at(ctx, value, "%s.%s must be a single value", section, name);
        }
        char path[128];
        snprintf(path, sizeof path, "%s.%s", section, name);
        remember(ctx->config, path, scalar(value));
        long long n;
        if (strcmp(path, "server.capacity") == 0) {
            if (to_integer(ctx, value, path, 1, &n) != 0) {
                return MPB_ECONFIG;
            }
            ctx->config->server.capacity = (size_t)n;
        } else if (strcmp(path, "server.stop_timeout_ms") == 0) {
            if (to_integer(ctx, value, path, 1, &n) != 0) {
                return MPB_ECONFIG;
            }
            ctx->config->server.stop_timeout_ms = (int)n;
        } else if (strcmp(path, "io.format") == 0 && strcmp(scalar(value), "text") != 0 &&
                   strcmp(scalar(value), "f32") != 0) {
            return fail_at(ctx, value, "io.format must be text or f32 (got '%s')", scalar(value));
        }
    }
    return 0;
}

static const char *const top_fields[] = {"servlet", "server", "io", "tracking", NULL};
static const char *const server_fields[] = {"capacity", "stop_timeout_ms", NULL};
static const char *const io_fields[] = {"format", NULL};
static const char *const tracking_fields[] = {"uri", "experiment", "run_name", NULL};

static int
parse_root(parse_ctx *ctx, const yaml_node_t *root)
{
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        return fail_at(ctx, root, "the file must be a mapping with a servlet: section");
    }
    const yaml_node_t *servlet = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        const char *name = scalar(key) ? scalar(key) : "?";
        int rc = check_unique(ctx, root, p, "");
        if (rc != 0) {
            return rc;
        }
        if (strcmp(name, "servlet") == 0) {
            servlet = value;
            rc = parse_servlet(ctx, value);
        } else if (strcmp(name, "server") == 0) {
            rc = parse_flat_section(ctx, "server", value, server_fields);
        } else if (strcmp(name, "io") == 0) {
            rc = parse_flat_section(ctx, "io", value, io_fields);
        } else if (strcmp(name, "tracking") == 0) {
            rc = parse_flat_section(ctx, "tracking", value, tracking_fields);
        } else {
            rc = unknown_field(ctx, key, "(top level)", name, top_fields);
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (servlet == NULL) {
        return fail_at(ctx, root, "a servlet: section is required");
    }
    return 0;
}

static void
spec_free(servlet_spec *spec)
{
    free(spec->kind);
    free((char *)spec->pool.name);
    free((char *)spec->pool.plugin);
    free((char *)spec->pool.cpus);
    free((char *)spec->pool.bind);
    free((char *)spec->pool.worker_exe);
    for (size_t i = 0; i < spec->n_options; i++) {
        free(spec->options[i]);
    }
    free(spec->options);
}

void
mpb_config_destroy(mpb_config **config_p)
{
    if (config_p == NULL || *config_p == NULL) {
        return;
    }
    mpb_config *config = *config_p;
    spec_free(&config->servlet);
    for (size_t i = 0; i < config->n_settings; i++) {
        free(config->settings[i].path);
        free(config->settings[i].value);
    }
    free(config->settings);
    free(config);
    *config_p = NULL;
}

int
mpb_config_parse(const char *text, size_t len, const char *name, mpb_config **out, char *err,
                 size_t err_len)
{
    *out = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = mpb__set_error(err, err_len, MPB_ECONFIG, "%s:%zu:%zu: YAML error: %s", name,
                                parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                parser.problem ? parser.problem : "unreadable");
        yaml_parser_delete(&parser);
        return rc;
    }
    mpb_config *config = mpb_calloc(1, sizeof *config);
    mpb_pool_config_init(&config->servlet.pool);
    mpb_server_options_init(&config->server);
    parse_ctx ctx = {name, &doc, config, err, err_len};
    int rc = parse_root(&ctx, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc != 0) {
        mpb_config_destroy(&config);
        return rc;
    }
    *out = config;
    return 0;
}

int
mpb_config_load(const char *path, mpb_config **out, char *err, size_t err_len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return mpb__set_error(err, err_len, mpb_status_from_errno(errno), "%s: %s", path,
                              strerror(errno));
    }
    char *text = NULL;
    size_t len = 0;
    size_t cap = 0;
    size_t got;
    char chunk[4096];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got > (1u << 20)) {
            fclose(f);
            free(text);
            return mpb__set_error(err, err_len, MPB_ELIMIT, "%s: larger than 1 MiB", path);
        }
        if (len + got > cap) {
            cap = (len + got) * 2;
            text = mpb_realloc(text, cap);
        }
        memcpy(text + len, chunk, got);
        len += got;
    }
    fclose(f);
    int rc = mpb_config_parse(text ? text : "", len, path, out, err, err_len);
    free(text);
    return rc;
}

mpb_servlet *
mpb_config_servlet(const mpb_config *config)
{
    const servlet_spec *spec = &config->servlet;
    mpb_pool_config pool = spec->pool;
    pool.options = (const char *const *)spec->options;
    if (spec->kind != NULL && strcmp(spec->kind, "thread") == 0) {
        return mpb_thread_servlet_new(&pool);
    }
    return mpb_process_servlet_new(&pool);
}

void
mpb_config_server_options(const mpb_config *config, mpb_server_options *out)
{
    *out = config->server;
}

const char *
mpb_config_get(const mpb_config *config, const char *path)
{
    for (size_t i = 0; i < config->n_settings; i++) {
        if (strcmp(config->settings[i].path, path) == 0) {
            return config->settings[i].value;
        }
    }
    return NULL;
}
