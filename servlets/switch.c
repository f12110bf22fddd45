/*
 * DESIGN
 * SwitchServlet: each item goes to exactly one member, picked on the
 * dispatcher thread by a route: a function of the caller's, a router plugin
 * (router.h), or the value of one field of a msgpack map item looked up in
 * a table of values. An item no route claims goes to the default member,
 * or fails with RouteError naming the switch. The chosen member gets a
 * small wrapper task so that cancel can find it again.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "core/options.h"
#include "core/plugin.h"
#include "core/util.h"
#include "core/wire.h"
#include "mpbatch/error.h"
#include "mpbatch/router.h"
#include "servlets/servlet_int.h"

typedef struct switch_servlet {
    mpb_servlet base;
    mpb_route_fn route;
    void *route_state;
    char *router_name;
    char **router_options; /* NULL-terminated */
    void *router_handle;
    const mpb_router_def *router;
    void *router_state;
    int router_ready;
    char *route_by;
    mpb_route *routes; /* values owned */
    size_t n_routes;
    long default_member;
    msgpack_zone zone;
} switch_servlet;

typedef struct switch_item {
    mpb__task task; /* first: the member's done() gets &item->task */
    mpb__task *parent;
    size_t member;
} switch_item;

/* The text of a scalar msgpack value into buf; 0, or -1 for other types. */
static int
scalar_text(const msgpack_object *o, char *buf, size_t size, const char **text, size_t *len)
{
    int n = -1;
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        *text = o->via.str.ptr;
        *len = o->via.str.size;
        return 0;
    case MSGPACK_OBJECT_BIN:
        *text = o->via.bin.ptr;
        *len = o->via.bin.size;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        n = snprintf(buf, size, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        n = snprintf(buf, size, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        n = snprintf(buf, size, "%s", o->via.boolean ? "true" : "false");
        break;
    default:
        return -1;
    }
    *text = buf;
    *len = (size_t)n;
    return 0;
}

/* The member an item's route_by field names, or -1. */
static long
route_by_field(switch_servlet *sw, const void *data, size_t len)
{
    msgpack_object root;
    long member = -1;
    if (mpb__msgpack_unpack_bounded(&sw->zone, data, len, &root) != 0 ||
        root.type != MSGPACK_OBJECT_MAP) {
        goto out_clear_zone;
    }
    size_t key_len = strlen(sw->route_by);
    for (uint32_t i = 0; i < root.via.map.size && member < 0; i++) {
        const msgpack_object_kv *kv = &root.via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != key_len ||
            memcmp(kv->key.via.str.ptr, sw->route_by, key_len) != 0) {
            continue;
        }
        char buf[32];
        const char *text;
        size_t text_len;
        if (scalar_text(&kv->val, buf, sizeof buf, &text, &text_len) != 0) {
            break;
        }
        for (size_t r = 0; r < sw->n_routes; r++) {
            if (strlen(sw->routes[r].value) == text_len &&
                memcmp(sw->routes[r].value, text, text_len) == 0) {
                member = (long)sw->routes[r].member;
                break;
            }
        }
        break;
    }
out_clear_zone:
    msgpack_zone_clear(&sw->zone);
    return member;
}

static long
pick_member(switch_servlet *sw, const mpb__task *task)
{
    long member = -1;
    if (sw->route != NULL) {
        member = sw->route(sw->route_state, task->input, task->len);
    } else if (sw->router != NULL) {
        member = sw->router->route(sw->router_state, task->input, task->len);
    } else if (sw->route_by != NULL) {
        member = route_by_field(sw, task->input, task->len);
    }
    if (member < 0 || (size_t)member >= sw->base.n_members) {
        member = sw->default_member;
    }
    return member;
}

static void
member_done(mpb__task *task, mpb_result *result)
{
    switch_item *item = (switch_item *)task;
    mpb__task *parent = item->parent;
    free(item);
    parent->done(parent, result);
}

static void
switch_submit(mpb_servlet *self, mpb__task *task)
{
    switch_servlet *sw = (switch_servlet *)self;
    long member = pick_member(sw, task);
    if (member < 0 || (size_t)member >= self->n_members) {
        task->done(task, mpb_result_new_error(MPB_ERROR_ROUTE,
                                              "no route for this item and no default member",
                                              self->path, "", 0));
        return;
    }
    switch_item *item = mpb_malloc(sizeof *item);
    *item = (switch_item){
        .task = {.input = task->input,
                 .len = task->len,
                 .deadline_ns = task->deadline_ns,
                 .done = member_done},
        .parent = task,
        .member = (size_t)member,
    };
    task->token = (uint64_t)(uintptr_t)item;
    self->members[member]->ops->submit(self->members[member], &item->task);
}

static void
switch_cancel(mpb_servlet *self, mpb__task *task)
{
    switch_item *item = (switch_item *)(uintptr_t)task->token;
    mpb_servlet *member = self->members[item->member];
    member->ops->cancel(member, &item->task);
}

/* Loads the router plugin and runs its init. */
static int
load_router(switch_servlet *sw, char *err, size_t err_len)
{
    char *path = NULL;
    int rc = mpb__plugin_resolve(sw->router_name, &path, err, err_len);
    if (rc != 0) {
        return rc;
    }
    sw->router_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const mpb_router_def *def = sw->router_handle ? dlsym(sw->router_handle, "mpb_router") : NULL;
    if (def == NULL || def->abi_version != MPB_ROUTER_ABI_VERSION || def->route == NULL) {
        rc = mpb__set_error(err, err_len, MPB_EPLUGIN, "router %s: %s", path,
                            sw->router_handle == NULL ? dlerror()
                            : def == NULL             ? "does not export mpb_router"
                                          : "mpb_router has another ABI version or no route()");
        free(path);
        return rc;
    }
    free(path);
    sw->router = def;
    if (def->init == NULL) {
        return 0;
    }
    mpb_options *options = mpb__options_new();
    for (size_t i = 0; sw->router_options != NULL && sw->router_options[i] != NULL; i++) {
        mpb__options_set_pair(options, sw->router_options[i]);
    }
    char reason[256] = "";
    rc = def->init(options, sw->base.n_members, &sw->router_state, reason, sizeof reason);
    mpb__options_destroy(&options);
    if (rc != 0) {
        return mpb__set_error(err, err_len, MPB_EPLUGIN, "router %s: init failed: %s",
                              def->name ? def->name : sw->router_name,
                              reason[0] ? reason : "no reason given");
    }
    sw->router_ready = 1;
    return 0;
}

static int
switch_start(mpb_servlet *self, const mpb__servlet_env *env, const char *parent_path, char *err,
             size_t err_len)
{
    switch_servlet *sw = (switch_servlet *)self;
    if (sw->default_member >= (long)self->n_members) {
        mpb__servlet_set_path(self, parent_path);
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "servlet %s: default member %ld of %zu members", self->path,
                              sw->default_member, self->n_members);
    }
    for (size_t r = 0; r < sw->n_routes; r++) {
        if (sw->routes[r].member >= self->n_members) {
            mpb__servlet_set_path(self, parent_path);
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "servlet %s: route '%s' names member %zu of %zu", self->path,
                                  sw->routes[r].value, sw->routes[r].member, self->n_members);
        }
    }
    if (sw->route == NULL && sw->router_name != NULL) {
        int rc = load_router(sw, err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    return mpb__composite_start(self, env, parent_path, err, err_len);
}

static void
switch_destroy(mpb_servlet *self)
{
    switch_servlet *sw = (switch_servlet *)self;
    mpb__composite_free(self);
    if (sw->router_ready && sw->router->cleanup != NULL) {
        sw->router->cleanup(sw->router_state);
    }
    if (sw->router_handle != NULL) {
        dlclose(sw->router_handle);
    }
    for (size_t i = 0; sw->router_options != NULL && sw->router_options[i] != NULL; i++) {
        free(sw->router_options[i]);
    }
    free(sw->router_options);
    free(sw->router_name);
    for (size_t r = 0; r < sw->n_routes; r++) {
        free((char *)sw->routes[r].value);
    }
    free(sw->routes);
    free(sw->route_by);
    msgpack_zone_destroy(&sw->zone);
    free(sw);
}

static const mpb__servlet_ops switch_ops = {
    .kind = "switch",
    .start = switch_start,
    .submit = switch_submit,
    .cancel = switch_cancel,
    .auto_workers = mpb__composite_auto_workers,
    .ready = mpb__composite_ready,
    .tensors = mpb__composite_tensors_first,
    .shutdown = mpb__composite_shutdown,
    .stopped = mpb__composite_stopped,
    .kill = mpb__composite_kill,
    .workers = mpb__composite_workers,
    .destroy = switch_destroy,
};

void
mpb_switch_config_init(mpb_switch_config *config)
{
    memset(config, 0, sizeof *config);
    config->default_member = -1;
}

static void
copy_config(switch_servlet *sw, const mpb_switch_config *config)
{
    sw->route = config->route;
    sw->route_state = config->route_state;
    sw->router_name = config->router ? mpb_strdup(config->router) : NULL;
    size_t n = 0;
    while (config->router_options != NULL && config->router_options[n] != NULL) {
        n++;
    }
    sw->router_options = mpb_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        sw->router_options[i] = mpb_strdup(config->router_options[i]);
    }
    sw->route_by = config->route_by ? mpb_strdup(config->route_by) : NULL;
    sw->n_routes = config->n_routes;
    sw->routes = mpb_calloc(config->n_routes ? config->n_routes : 1, sizeof(mpb_route));
    for (size_t r = 0; r < config->n_routes; r++) {
        sw->routes[r].value = mpb_strdup(config->routes[r].value ? config->routes[r].value : "");
        sw->routes[r].member = config->routes[r].member;
    }
    sw->default_member = config->default_member < 0 ? -1 : config->default_member;
}

mpb_servlet *
mpb_switch_servlet_new(mpb_servlet **members, size_t n, const mpb_switch_config *config)
{
    MPB_ASSERT(members != NULL || n == 0);
    MPB_ASSERT(config != NULL);
    switch_servlet *sw = mpb_calloc(1, sizeof *sw);
    sw->base.ops = &switch_ops;
    copy_config(sw, config);
    msgpack_zone_init(&sw->zone, 1024);
    mpb__composite_init(&sw->base, "switch", members, n);
    return &sw->base;
}
