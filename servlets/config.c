/*
 * DESIGN
 * The YAML file is loaded whole with libyaml's document API, which keeps a
 * line and column for every node, so each complaint can point at the spot.
 * Sections and fields are checked against tables: an unknown field is an
 * error (with the nearest known name as a hint), never silently ignored.
 * The servlet section becomes a spec tree (config_servlet.c) that
 * mpb_config_servlet turns into a fresh servlet tree each time (a config
 * can start several servers).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/options.h"
#include "core/util.h"
#include "mpbatch/config.h"
#include "mpbatch/error.h"
#include "servlets/config_int.h"

/* A list of scalars, remembered as one setting with its values joined by
 * commas. */
static int
remember_list(parse_ctx *ctx, const char *path, const yaml_node_t *list)
{
    size_t len = 0;
    for (yaml_node_item_t *i = list->data.sequence.items.start; i < list->data.sequence.items.top;
         i++) {
        const yaml_node_t *item = yaml_document_get_node(ctx->doc, *i);
        const char *text = mpb__config_scalar(item);
        if (text == NULL || strchr(text, ',') != NULL) {
            return mpb__config_fail_at(ctx, item, "%s takes single values without commas", path);
        }
        len += strlen(text) + 1;
    }
    if (len == 0) {
        return mpb__config_fail_at(ctx, list, "%s must not be empty", path);
    }
    char *joined = mpb_calloc(1, len);
    for (yaml_node_item_t *i = list->data.sequence.items.start; i < list->data.sequence.items.top;
         i++) {
        if (*joined != '\0') {
            strcat(joined, ",");
        }
        strcat(joined, mpb__config_scalar(yaml_document_get_node(ctx->doc, *i)));
    }
    mpb__config_remember(ctx->config, path, joined);
    free(joined);
    return 0;
}

/* tracking.items and log_payloads are booleans (kept as "true" or
 * "false" in *text), interval_ms a period up to an hour, the item counts
 * and payload_max counts: checked here, where the error has a position. */
static int
check_tracking_field(parse_ctx *ctx, const char *path, const yaml_node_t *value,
                     const char **text)
{
    if (strncmp(path, "tracking.", 9) != 0) {
        return 0;
    }
    const char *field = path + 9;
    long long n;
    if (strcmp(field, "items") == 0 || strcmp(field, "log_payloads") == 0) {
        int flag;
        if (mpb__parse_bool(*text, &flag) != 0) {
            return mpb__config_fail_at(ctx, value, "%s must be true or false (got '%s')", path,
                                       *text);
        }
        *text = flag ? "true" : "false";
    } else if (strcmp(field, "interval_ms") == 0) {
        return mpb__config_integer(ctx, value, path, 1, 3600000, &n);
    } else if (strcmp(field, "items_first") == 0 || strcmp(field, "items_every") == 0 ||
               strcmp(field, "items_max") == 0) {
        return mpb__config_integer(ctx, value, path, 0, LLONG_MAX, &n);
    } else if (strcmp(field, "payload_max") == 0) { /* bytes kept of each payload */
        return mpb__config_integer(ctx, value, path, 1, LLONG_MAX, &n);
    }
    return 0;
}

/* server:, io:, tracking: hold scalars only, sweep: scalars or lists;
 * each known field is listed. */
static int
parse_flat_section(parse_ctx *ctx, const char *section, const yaml_node_t *node,
                   const char *const *known)
{
    if (node->type != YAML_MAPPING_NODE) {
        return mpb__config_fail_at(ctx, node, "%s must be a mapping", section);
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        const char *name = mpb__config_scalar(key);
        if (mpb__config_check_unique(ctx, node, p, section) != 0) {
            return MPB_ECONFIG;
        }
        int is_known = 0;
        for (size_t i = 0; name != NULL && known[i] != NULL; i++) {
            is_known |= strcmp(name, known[i]) == 0;
        }
        if (!is_known) {
            return mpb__config_unknown_field(ctx, key, section, name ? name : "?", known);
        }
        char path[128];
        snprintf(path, sizeof path, "%s.%s", section, name);
        if ((strcmp(section, "sweep") == 0 || strcmp(path, "curve.allow") == 0) &&
            value->type == YAML_SEQUENCE_NODE) {
            /* an axis: its values joined by commas, as on the command line */
            int rc = remember_list(ctx, path, value);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        if (mpb__config_scalar(value) == NULL) {
            return mpb__config_fail_at(ctx, value, "%s.%s must be a single value", section, name);
        }
        const char *text = mpb__config_scalar(value);
        if (check_tracking_field(ctx, path, value, &text) != 0) {
            return MPB_ECONFIG;
        }
        mpb__config_remember(ctx->config, path, text);
        long long n;
        if (strcmp(path, "server.capacity") == 0) {
            if (mpb__config_integer(ctx, value, path, 1, 1 << 22, &n) != 0) {
                return MPB_ECONFIG;
            }
            ctx->config->server.capacity = (size_t)n;
        } else if (strcmp(path, "server.overload") == 0) {
            if (strcmp(text, "block") != 0 && strcmp(text, "reject") != 0) {
                return mpb__config_fail_at(
                    ctx, value, "server.overload must be block or reject (got '%s')", text);
            }
            ctx->config->server.overload =
                strcmp(text, "reject") == 0 ? MPB_OVERLOAD_REJECT : MPB_OVERLOAD_BLOCK;
        } else if (strcmp(path, "server.stop_timeout_ms") == 0) {
            if (mpb__config_integer(ctx, value, path, 1, INT_MAX, &n) != 0) {
                return MPB_ECONFIG;
            }
            ctx->config->server.stop_timeout_ms = (int)n;
        } else if ((strcmp(path, "serve.max_message_bytes") == 0 ||
                    strcmp(path, "serve.client_max_in_flight") == 0) &&
                   mpb__config_integer(ctx, value, path, 1, INT_MAX, &n) != 0) {
            return MPB_ECONFIG;
        } else if (strcmp(path, "io.format") == 0 &&
                   strcmp(mpb__config_scalar(value), "text") != 0 &&
                   strcmp(mpb__config_scalar(value), "f32") != 0) {
            return mpb__config_fail_at(ctx, value, "io.format must be text or f32 (got '%s')",
                                       mpb__config_scalar(value));
        }
    }
    return 0;
}

static const char *const top_fields[] = {"servlet", "server", "io",    "tracking",
                                         "serve",   "sweep",  "curve", NULL};
static const char *const curve_fields[] = {"secret", "clients", "allow", NULL};
static const char *const serve_fields[] = {
    "bind", "http", "http_token_file", "metrics", "max_message_bytes", "client_max_in_flight",
    NULL};
static const char *const server_fields[] = {"capacity", "overload", "stop_timeout_ms", NULL};
static const char *const io_fields[] = {"format", NULL};
static const char *const tracking_fields[] = {
    "uri",         "experiment", "run_name",     "interval_ms", "items", "items_first",
    "items_every", "items_max",  "log_payloads", "payload_max", NULL};
/* what `mpb bench` sweeps (docs/bench.md); read by the bench, not here */
static const char *const sweep_fields[] = {"kind", "workers", "batch_size", "batch_wait_us",
                                           "load", "seconds", "items",      "dim",
                                           "item", NULL};

static int
parse_root(parse_ctx *ctx, const yaml_node_t *root)
{
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        return mpb__config_fail_at(ctx, root, "the file must be a mapping with a servlet: section");
    }
    const yaml_node_t *servlet = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        const char *name = mpb__config_scalar(key) ? mpb__config_scalar(key) : "?";
        int rc = mpb__config_check_unique(ctx, root, p, "");
        if (rc != 0) {
            return rc;
        }
        if (strcmp(name, "servlet") == 0) {
            servlet = value;
            rc = mpb__config_parse_servlet(ctx, value);
        } else if (strcmp(name, "server") == 0) {
            rc = parse_flat_section(ctx, "server", value, server_fields);
        } else if (strcmp(name, "io") == 0) {
            rc = parse_flat_section(ctx, "io", value, io_fields);
        } else if (strcmp(name, "tracking") == 0) {
            rc = parse_flat_section(ctx, "tracking", value, tracking_fields);
        } else if (strcmp(name, "serve") == 0) {
            rc = parse_flat_section(ctx, "serve", value, serve_fields);
        } else if (strcmp(name, "sweep") == 0) {
            rc = parse_flat_section(ctx, "sweep", value, sweep_fields);
        } else if (strcmp(name, "curve") == 0) {
            rc = parse_flat_section(ctx, "curve", value, curve_fields);
        } else {
            rc = mpb__config_unknown_field(ctx, key, "(top level)", name, top_fields);
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (servlet == NULL) {
        return mpb__config_fail_at(ctx, root, "a servlet: section is required");
    }
    return 0;
}

/* A config is one YAML document: a second one (after `---`) would be
 * dropped without a word, so it is an error at its start. */
static int
check_single_document(yaml_parser_t *parser, const char *name, char *err, size_t err_len)
{
    yaml_document_t next;
    if (!yaml_parser_load(parser, &next)) {
        return mpb__set_error(err, err_len, MPB_ECONFIG, "%s:%zu:%zu: YAML error: %s", name,
                              parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                              parser->problem ? parser->problem : "unreadable");
    }
    const yaml_node_t *root = yaml_document_get_root_node(&next);
    int rc = 0;
    if (root != NULL) {
        rc = mpb__set_error(err, err_len, MPB_ECONFIG,
                            "%s:%zu:%zu: a second YAML document: a config file holds one (split "
                            "the file at its '---')",
                            name, next.start_mark.line + 1, next.start_mark.column + 1);
    }
    yaml_document_delete(&next);
    return rc;
}

void
mpb_config_destroy(mpb_config **config_p)
{
    if (config_p == NULL || *config_p == NULL) {
        return;
    }
    mpb_config *config = *config_p;
    mpb__config_spec_free(&config->servlet);
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
    config->servlet.default_member = -1;
    mpb_server_options_init(&config->server);
    parse_ctx ctx = {name, &doc, config, err, err_len};
    int rc = parse_root(&ctx, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
    if (rc == 0) {
        rc = check_single_document(&parser, name, err, err_len);
    }
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

void
mpb_pool_override_init(mpb_pool_override *o)
{
    *o = (mpb_pool_override){NULL, MPB_POOL_KEEP, MPB_POOL_KEEP, MPB_POOL_KEEP};
}

mpb_servlet *
mpb_config_servlet_with(const mpb_config *config, const mpb_pool_override *o)
{
    return mpb__config_build(&config->servlet, o);
}

mpb_servlet *
mpb_config_servlet(const mpb_config *config)
{
    return mpb__config_build(&config->servlet, NULL);
}

void
mpb_config_server_options(const mpb_config *config, mpb_server_options *out)
{
    *out = config->server;
    out->curve.secret_file = mpb_config_get(config, "curve.secret");
    out->curve.clients_dir = mpb_config_get(config, "curve.clients");
    out->curve.allow = mpb_config_get(config, "curve.allow");
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

size_t
mpb_config_count(const mpb_config *config)
{
    return config->n_settings;
}

const char *
mpb_config_key(const mpb_config *config, size_t index)
{
    return index < config->n_settings ? config->settings[index].path : NULL;
}

const char *
mpb_config_value(const mpb_config *config, size_t index)
{
    return index < config->n_settings ? config->settings[index].value : NULL;
}

static int
rewrite_spec(servlet_spec *spec, const char *path, mpb_config_option_fn fn, void *ctx, char *err,
             size_t err_len)
{
    for (size_t i = 0; i < spec->n_options; i++) {
        char *pair = spec->options[i];
        char *eq = strchr(pair, '=');
        if (eq == NULL) {
            continue;
        }
        char *option_path = mpb_asprintf("%s.options.%.*s", path, (int)(eq - pair), pair);
        char *replacement = NULL;
        int rc = fn(ctx, option_path, eq + 1, &replacement, err, err_len);
        free(option_path);
        if (rc != 0) {
            free(replacement);
            return rc;
        }
        if (replacement != NULL) {
            spec->options[i] = mpb_asprintf("%.*s=%s", (int)(eq - pair), pair, replacement);
            free(replacement);
            free(pair);
        }
    }
    for (size_t i = 0; i < spec->n_members; i++) {
        char *member_path = mpb_asprintf("%s.members.%zu", path, i);
        int rc = rewrite_spec(&spec->members[i], member_path, fn, ctx, err, err_len);
        free(member_path);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
mpb_config_rewrite_options(mpb_config *config, mpb_config_option_fn fn, void *ctx, char *err,
                           size_t err_len)
{
    return rewrite_spec(&config->servlet, "servlet", fn, ctx, err, err_len);
}
