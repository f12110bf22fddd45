/*
 * DESIGN
 * The servlet: section is a tree. A node with `plugin:` is a pool (kind
 * process, the default, or thread); a node with `members:` is a composite
 * (kind sequential, ensemble or switch) whose members are nodes again, to
 * MPB_CONFIG_MAX_DEPTH levels. Each kind has its own table of fields, so
 * a misplaced or misspelt field is an error at its line and column, and
 * references between nodes (switch routes name members) are resolved
 * here, where the marks still exist. Settings are remembered by dotted
 * path: servlet.members.1.batch_size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plugin.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "servlets/config_int.h"
#include "servlets/servlet_int.h"

static const char *const kind_names[] = {"process", "thread", "sequential", "ensemble", "switch"};

static const char *const pool_fields[] = {"kind",
                                          "name",
                                          "plugin",
                                          "workers",
                                          "cpus",
                                          "batch_size",
                                          "batch_wait_us",
                                          "capacity",
                                          "options",
                                          "bind",
                                          "worker_exe",
                                          "start_timeout_ms",
                                          "max_item_bytes",
                                          "shm_bytes",
                                          "unavailable_timeout_ms",
                                          "batch_timeout_ms",
                                          "retry",
                                          "isolate",
                                          NULL};
static const char *const sequential_fields[] = {"kind", "name", "members", NULL};
static const char *const ensemble_fields[] = {"kind", "name", "members", "errors", NULL};
static const char *const switch_fields[] = {
    "kind", "name", "members", "route_by", "routes", "default", "router", "router_options", NULL};

static const char *const *
fields_of(servlet_kind kind)
{
    switch (kind) {
    case SPEC_SEQUENTIAL:
        return sequential_fields;
    case SPEC_ENSEMBLE:
        return ensemble_fields;
    case SPEC_SWITCH:
        return switch_fields;
    default:
        return pool_fields;
    }
}

static int
is_pool(servlet_kind kind)
{
    return kind == SPEC_PROCESS || kind == SPEC_THREAD;
}

static int
listed(const char *const *names, const char *name)
{
    for (size_t i = 0; name != NULL && names[i] != NULL; i++) {
        if (strcmp(names[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

static const yaml_node_t *
field_node(parse_ctx *ctx, const yaml_node_t *mapping, const char *name, const yaml_node_t **key)
{
    for (yaml_node_pair_t *p = mapping->data.mapping.pairs.start;
         p < mapping->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(ctx->doc, p->key);
        const char *text = mpb__config_scalar(k);
        if (text != NULL && strcmp(text, name) == 0) {
            if (key != NULL) {
                *key = k;
            }
            return yaml_document_get_node(ctx->doc, p->value);
        }
    }
    return NULL;
}

/* kind: given, or process for a node with a plugin; members need a kind. */
static int
parse_kind(parse_ctx *ctx, const yaml_node_t *node, const char *path, servlet_spec *spec)
{
    const yaml_node_t *members_key = NULL;
    const yaml_node_t *kind = field_node(ctx, node, "kind", NULL);
    if (kind == NULL) {
        if (field_node(ctx, node, "members", &members_key) != NULL) {
            return mpb__config_fail_at(ctx, members_key,
                                       "%s.kind is required with members: sequential, ensemble "
                                       "or switch",
                                       path);
        }
        spec->kind = SPEC_PROCESS;
        return 0;
    }
    const char *text = mpb__config_scalar(kind);
    for (size_t i = 0; text != NULL && i < MPB_ARRAY_LEN(kind_names); i++) {
        if (strcmp(text, kind_names[i]) == 0) {
            spec->kind = (servlet_kind)i;
            return 0;
        }
    }
    return mpb__config_fail_at(ctx, kind,
                               "%s.kind must be process, thread, sequential, ensemble or switch "
                               "(got '%s')",
                               path, text ? text : "a list or mapping");
}

static int parse_spec(parse_ctx *ctx, const yaml_node_t *node, const char *path, int depth,
                      servlet_spec *spec);

static int
parse_members(parse_ctx *ctx, const yaml_node_t *node, const char *path, int depth,
              servlet_spec *spec)
{
    if (node->type != YAML_SEQUENCE_NODE ||
        node->data.sequence.items.top == node->data.sequence.items.start) {
        return mpb__config_fail_at(ctx, node, "%s.members must be a non-empty list of servlets",
                                   path);
    }
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    spec->members = mpb_calloc(n, sizeof(servlet_spec));
    for (size_t i = 0; i < n; i++) {
        spec->members[i].default_member = -1;
        mpb_pool_config_init(&spec->members[i].pool);
    }
    spec->n_members = n;
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *member =
            yaml_document_get_node(ctx->doc, node->data.sequence.items.start[i]);
        char member_path[256];
        snprintf(member_path, sizeof member_path, "%s.members.%zu", path, i);
        int rc = parse_spec(ctx, member, member_path, depth + 1, &spec->members[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
parse_composite_field(parse_ctx *ctx, const char *key, const yaml_node_t *value, const char *path,
                      int depth, servlet_spec *spec)
{
    char field[256];
    snprintf(field, sizeof field, "%s.%s", path, key);
    int rc = 0;
    if (strcmp(key, "members") == 0) {
        rc = parse_members(ctx, value, path, depth, spec);
    } else if (strcmp(key, "errors") == 0) {
        const char *text = mpb__config_scalar(value);
        if (text == NULL || (strcmp(text, "fail_fast") != 0 && strcmp(text, "in_place") != 0)) {
            return mpb__config_fail_at(ctx, value, "%s must be fail_fast or in_place", field);
        }
        spec->errors_in_place = strcmp(text, "in_place") == 0;
    } else if (strcmp(key, "route_by") == 0) {
        spec->route_by = mpb__config_take_string(ctx, value, field, &rc);
    } else if (strcmp(key, "router") == 0) {
        spec->router = mpb__config_take_string(ctx, value, field, &rc);
    } else if (strcmp(key, "router_options") == 0) {
        rc = mpb__config_parse_pairs(ctx, value, field, &spec->router_options,
                                     &spec->n_router_options);
    }
    /* routes and default name members: resolved once all members are read */
    return rc;
}

/* The name a member goes by: its own, else its plugin's or its kind's. */
static const char *
spec_name(const servlet_spec *spec, char *buf, size_t size)
{
    if (spec->name != NULL) {
        return spec->name;
    }
    if (!is_pool(spec->kind)) {
        return kind_names[spec->kind];
    }
    mpb__plugin_short_name(spec->pool.plugin ? spec->pool.plugin : "", buf, size);
    return buf;
}

static long
member_index(const servlet_spec *spec, const char *name)
{
    for (size_t i = 0; i < spec->n_members; i++) {
        char buf[128];
        if (strcmp(spec_name(&spec->members[i], buf, sizeof buf), name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static int
unknown_member(parse_ctx *ctx, const yaml_node_t *node, const char *field, const char *name,
               const servlet_spec *spec)
{
    char known[512] = "";
    for (size_t i = 0; i < spec->n_members; i++) {
        char buf[128];
        size_t used = strlen(known);
        snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                 spec_name(&spec->members[i], buf, sizeof buf));
    }
    return mpb__config_fail_at(ctx, node, "%s names no member '%s' (members: %s)", field, name,
                               known);
}

/* routes: {value: member name}, default: member name. */
static int
resolve_routes(parse_ctx *ctx, const yaml_node_t *node, const char *path, servlet_spec *spec)
{
    char field[256];
    const yaml_node_t *def = field_node(ctx, node, "default", NULL);
    if (def != NULL) {
        snprintf(field, sizeof field, "%s.default", path);
        const char *name = mpb__config_scalar(def);
        spec->default_member = name ? member_index(spec, name) : -1;
        if (spec->default_member < 0) {
            return unknown_member(ctx, def, field, name ? name : "?", spec);
        }
    }
    const yaml_node_t *routes = field_node(ctx, node, "routes", NULL);
    if (routes == NULL) {
        return 0;
    }
    snprintf(field, sizeof field, "%s.routes", path);
    if (routes->type != YAML_MAPPING_NODE) {
        return mpb__config_fail_at(ctx, routes, "%s must be a mapping of value: member name",
                                   field);
    }
    for (yaml_node_pair_t *p = routes->data.mapping.pairs.start; p < routes->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        const char *name = mpb__config_scalar(value);
        if (mpb__config_scalar(key) == NULL || name == NULL) {
            return mpb__config_fail_at(ctx, value, "%s must map single values to member names",
                                       field);
        }
        if (mpb__config_check_unique(ctx, routes, p, field) != 0) {
            return MPB_ECONFIG;
        }
        long member = member_index(spec, name);
        if (member < 0) {
            return unknown_member(ctx, value, field, name, spec);
        }
        spec->routes = mpb_realloc(spec->routes, (spec->n_routes + 1) * sizeof(mpb_route));
        spec->routes[spec->n_routes++] =
            (mpb_route){mpb_strdup(mpb__config_scalar(key)), (size_t)member};
    }
    return 0;
}

/* A pool's options against what its plugin declares, when the plugin is
 * here to read (a plugin only remote workers have is checked by them). */
static int
check_plugin_options(parse_ctx *ctx, const yaml_node_t *node, const char *path,
                     const servlet_spec *spec)
{
    const yaml_node_t *options = field_node(ctx, node, "options", NULL);
    const mpb__plugin *plugin = NULL;
    if (options == NULL || mpb__plugin_find(spec->pool.plugin, &plugin, NULL, 0) != 0 ||
        plugin->def->options == NULL) {
        return 0;
    }
    for (yaml_node_pair_t *p = options->data.mapping.pairs.start;
         p < options->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
        const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
        const char *name = mpb__config_scalar(key);
        char reason[400];
        if (mpb__plugin_check_option(plugin->def, name, mpb__config_scalar(value), reason,
                                     sizeof reason) != 0) {
            int known = mpb__plugin_option(plugin->def, name) != NULL;
            return mpb__config_fail_at(ctx, known ? value : key, "%s.options.%s: %s", path, name,
                                       reason);
        }
    }
    return 0;
}

/* After every field: what each kind needs, and names that must differ. */
static int
check_spec(parse_ctx *ctx, const yaml_node_t *node, const char *path, servlet_spec *spec)
{
    if (is_pool(spec->kind)) {
        if (spec->pool.plugin == NULL) {
            return mpb__config_fail_at(ctx, node,
                                       "%s.plugin is required (a plugin name such as mlp, or a "
                                       "path to a .so)",
                                       path);
        }
        return check_plugin_options(ctx, node, path, spec);
    }
    if (spec->n_members == 0) {
        return mpb__config_fail_at(ctx, node, "%s.members is required: a list of servlets", path);
    }
    for (size_t i = 0; i < spec->n_members; i++) {
        char a[128];
        char b[128];
        const char *name = spec_name(&spec->members[i], a, sizeof a);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(spec_name(&spec->members[j], b, sizeof b), name) == 0) {
                const yaml_node_t *members = field_node(ctx, node, "members", NULL);
                const yaml_node_t *at =
                    yaml_document_get_node(ctx->doc, members->data.sequence.items.start[i]);
                return mpb__config_fail_at(ctx, at,
                                           "%s.members.%zu and %s.members.%zu are both named "
                                           "'%s': give each a name:",
                                           path, j, path, i, name);
            }
        }
    }
    if (spec->kind != SPEC_SWITCH) {
        return 0;
    }
    int rc = resolve_routes(ctx, node, path, spec);
    if (rc == 0 && spec->route_by == NULL && spec->router == NULL) {
        rc = mpb__config_fail_at(ctx, node, "%s needs route_by: (with routes:) or router:", path);
    }
    if (rc == 0 && spec->route_by != NULL && spec->router != NULL) {
        rc = mpb__config_fail_at(ctx, node, "%s takes route_by: or router:, not both", path);
    }
    /* fields of the other way of routing would be ignored: refuse them */
    const yaml_node_t *stray = NULL;
    if (rc == 0 && spec->router != NULL &&
        (stray = field_node(ctx, node, "routes", NULL)) != NULL) {
        rc = mpb__config_fail_at(ctx, stray, "%s.routes goes with route_by:, not router: (the "
                                             "router picks the member)",
                                 path);
    }
    if (rc == 0 && spec->route_by != NULL &&
        (stray = field_node(ctx, node, "router_options", NULL)) != NULL) {
        rc = mpb__config_fail_at(ctx, stray, "%s.router_options goes with router:, not route_by:",
                                 path);
    }
    return rc;
}

static int
parse_field(parse_ctx *ctx, const yaml_node_pair_t *p, const yaml_node_t *node, const char *path,
            int depth, servlet_spec *spec)
{
    const yaml_node_t *key = yaml_document_get_node(ctx->doc, p->key);
    const yaml_node_t *value = yaml_document_get_node(ctx->doc, p->value);
    const char *name = mpb__config_scalar(key);
    if (mpb__config_check_unique(ctx, node, p, path) != 0) {
        return MPB_ECONFIG;
    }
    if (!listed(fields_of(spec->kind), name)) {
        if (name != NULL && listed(is_pool(spec->kind) ? sequential_fields : pool_fields, name)) {
            return mpb__config_fail_at(ctx, key, "%s.%s is not a field of a %s servlet", path, name,
                                       kind_names[spec->kind]);
        }
        return mpb__config_unknown_field(ctx, key, path, name ? name : "?", fields_of(spec->kind));
    }
    char field[256];
    snprintf(field, sizeof field, "%s.%s", path, name);
    if (mpb__config_scalar(value) != NULL) {
        mpb__config_remember(ctx->config, field, mpb__config_scalar(value));
    }
    int rc = 0;
    if (strcmp(name, "kind") == 0) {
        return 0; /* read first, by parse_kind */
    }
    if (strcmp(name, "name") == 0) {
        spec->name = mpb__config_take_string(ctx, value, field, &rc);
        if (rc == 0 && (*spec->name == '\0' || strchr(spec->name, '/') != NULL)) {
            rc = mpb__config_fail_at(ctx, value, "%s must be a non-empty name without '/'", field);
        }
        if (rc == 0 && depth == 0 && strcmp(spec->name, MPB__SERVER_RESERVED_NAME) == 0) {
            rc = mpb__config_fail_at(ctx, value,
                                     "%s cannot be '%s': tracking keeps it for the server's "
                                     "end-to-end figures",
                                     field, MPB__SERVER_RESERVED_NAME);
        }
    } else if (is_pool(spec->kind)) {
        rc = mpb__config_parse_pool_field(ctx, name, value, field, spec);
    } else {
        rc = parse_composite_field(ctx, name, value, path, depth, spec);
    }
    return rc;
}

static int
parse_spec(parse_ctx *ctx, const yaml_node_t *node, const char *path, int depth, servlet_spec *spec)
{
    if (node->type != YAML_MAPPING_NODE) {
        return mpb__config_fail_at(ctx, node,
                                   "%s must be a mapping (plugin: ..., or kind: ... with "
                                   "members: ...)",
                                   path);
    }
    if (depth >= MPB_CONFIG_MAX_DEPTH) {
        return mpb__config_fail_at(ctx, node, "%s: servlets nest at most %d deep", path,
                                   MPB_CONFIG_MAX_DEPTH);
    }
    int rc = parse_kind(ctx, node, path, spec);
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         rc == 0 && p < node->data.mapping.pairs.top; p++) {
        rc = parse_field(ctx, p, node, path, depth, spec);
    }
    if (rc == 0) {
        rc = check_spec(ctx, node, path, spec);
    }
    return rc;
}

int
mpb__config_parse_servlet(parse_ctx *ctx, const yaml_node_t *node)
{
    return parse_spec(ctx, node, "servlet", 0, &ctx->config->servlet);
}

static void
free_strv(char **strv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(strv[i]);
    }
    free(strv);
}

void
mpb__config_spec_free(servlet_spec *spec)
{
    free(spec->name);
    free((char *)spec->pool.plugin);
    free((char *)spec->pool.cpus);
    free((char *)spec->pool.bind);
    free((char *)spec->pool.worker_exe);
    free((char *)spec->pool.isolate);
    free_strv(spec->options, spec->n_options);
    for (size_t i = 0; i < spec->n_members; i++) {
        mpb__config_spec_free(&spec->members[i]);
    }
    free(spec->members);
    free(spec->route_by);
    for (size_t r = 0; r < spec->n_routes; r++) {
        free((char *)spec->routes[r].value);
    }
    free(spec->routes);
    free(spec->router);
    free_strv(spec->router_options, spec->n_router_options);
}

mpb_servlet *
mpb__config_build(const servlet_spec *spec, const mpb_pool_override *o)
{
    if (is_pool(spec->kind)) {
        mpb_pool_config pool = spec->pool;
        char buf[128];
        pool.name = spec_name(spec, buf, sizeof buf);
        pool.options = (const char *const *)spec->options;
        servlet_kind kind = spec->kind;
        if (o != NULL) {
            if (o->kind != NULL) {
                kind = strcmp(o->kind, "thread") == 0 ? SPEC_THREAD : SPEC_PROCESS;
            }
            if (o->workers != MPB_POOL_KEEP) {
                pool.workers = (unsigned)o->workers;
            }
            if (o->batch_size != MPB_POOL_KEEP) {
                pool.batch_size = o->batch_size;
            }
            if (o->batch_wait_us != MPB_POOL_KEEP) {
                pool.batch_wait_us = o->batch_wait_us;
            }
        }
        return kind == SPEC_THREAD ? mpb_thread_servlet_new(&pool) : mpb_process_servlet_new(&pool);
    }
    mpb_servlet **members = mpb_calloc(spec->n_members, sizeof(mpb_servlet *));
    for (size_t i = 0; i < spec->n_members; i++) {
        members[i] = mpb__config_build(&spec->members[i], o);
    }
    mpb_servlet *self = NULL;
    if (spec->kind == SPEC_SEQUENTIAL) {
        self = mpb_sequential_servlet_new(members, spec->n_members);
    } else if (spec->kind == SPEC_ENSEMBLE) {
        mpb_ensemble_options options;
        mpb_ensemble_options_init(&options);
        options.errors_in_place = spec->errors_in_place;
        self = mpb_ensemble_servlet_new(members, spec->n_members, &options);
    } else {
        mpb_switch_config config;
        mpb_switch_config_init(&config);
        config.route_by = spec->route_by;
        config.routes = spec->routes;
        config.n_routes = spec->n_routes;
        config.default_member = spec->default_member;
        config.router = spec->router;
        config.router_options = (const char *const *)spec->router_options;
        self = mpb_switch_servlet_new(members, spec->n_members, &config);
    }
    free(members);
    if (spec->name != NULL) {
        mpb_servlet_rename(self, spec->name);
    }
    return self;
}
