/*
 * What a sweep covers: axes from the command line ("1,8,32", "1..128" for
 * doubling, "0..2000:500" for steps) or from a sweep file's sweep:
 * section, and the servlet tree it benches (the file's servlet:, or one
 * pool made from --model and --option).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plugin.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/worker.h"
#include "tools/bench/bench_int.h"

#define MAX_AXIS 256

static int
parse_integer(const char *text, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (end == text || errno != 0) {
        return -1;
    }
    *out = value;
    return (int)(end - text);
}

static int
push(long long **out, size_t *n, long long value, const char *flag, char *err, size_t err_len)
{
    if (*n == MAX_AXIS) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "%s: more than %d values", flag, MAX_AXIS);
    }
    *out = mpb_realloc(*out, (*n + 1) * sizeof **out);
    (*out)[(*n)++] = value;
    return 0;
}

/* One element: N, A..B (doubling) or A..B:S. */
static int
parse_element(const char *text, const char *flag, long long min, long long **out, size_t *n,
              char *err, size_t err_len)
{
    long long a;
    long long b;
    long long step = 0;
    int used = parse_integer(text, &a);
    if (used < 0 || a < min) {
        goto bad;
    }
    const char *rest = text + used;
    if (*rest == '\0') {
        return push(out, n, a, flag, err, err_len);
    }
    if (strncmp(rest, "..", 2) != 0 || (used = parse_integer(rest + 2, &b)) < 0 || b < a) {
        goto bad;
    }
    rest += 2 + used;
    if (*rest == ':') {
        if ((used = parse_integer(rest + 1, &step)) < 0 || step <= 0 || rest[1 + used] != '\0') {
            goto bad;
        }
    } else if (*rest != '\0' || a <= 0) {
        goto bad; /* doubling needs a start above 0 */
    }
    for (long long v = a; v <= b; v = step ? v + step : v * 2) {
        int rc = push(out, n, v, flag, err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
bad:
    return mpb__set_error(err, err_len, MPB_EINVAL,
                          "%s: '%s' is not a value >= %lld, A..B (doubling) or A..B:STEP", flag,
                          text, min);
}

/* Calls each(element) for the comma-separated elements of text. */
static int
split(const char *text, const char *flag, char *err, size_t err_len,
      int (*each)(const char *element, void *ctx, char *err, size_t err_len), void *ctx)
{
    char *copy = mpb_strdup(text);
    int rc = 0;
    char *save = NULL;
    int any = 0;
    for (char *e = strtok_r(copy, ",", &save); e != NULL && rc == 0;
         e = strtok_r(NULL, ",", &save)) {
        while (*e == ' ') {
            e++;
        }
        rc = each(e, ctx, err, err_len);
        any = 1;
    }
    free(copy);
    if (rc == 0 && !any) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "%s: no values", flag);
    }
    return rc;
}

typedef struct list_ctx {
    const char *flag;
    long long min;
    long long **out;
    size_t *n;
    int auto_ok;
} list_ctx;

static int
list_element(const char *element, void *ctx, char *err, size_t err_len)
{
    list_ctx *l = ctx;
    if (l->auto_ok && strcmp(element, "auto") == 0) {
        return push(l->out, l->n, MPB_BATCH_WAIT_AUTO, l->flag, err, err_len);
    }
    return parse_element(element, l->flag, l->min, l->out, l->n, err, err_len);
}

int
mpb__bench_parse_list(const char *text, const char *flag, long long min, long long **out, size_t *n,
                      char *err, size_t err_len)
{
    *n = 0;
    list_ctx l = {flag, min, out, n, 0};
    return split(text, flag, err, err_len, list_element, &l);
}

int
mpb__bench_parse_waits(const char *text, long long **out, size_t *n, char *err, size_t err_len)
{
    *n = 0;
    list_ctx l = {"batch_wait_us", 0, out, n, 1};
    return split(text, "batch_wait_us", err, err_len, list_element, &l);
}

typedef struct load_ctx {
    bench_load **out;
    size_t *n;
} load_ctx;

static void
push_load(load_ctx *l, bench_load load)
{
    *l->out = mpb_realloc(*l->out, (*l->n + 1) * sizeof **l->out);
    (*l->out)[(*l->n)++] = load;
}

static int
load_element(const char *element, void *ctx, char *err, size_t err_len)
{
    load_ctx *l = ctx;
    const char *arg = strchr(element, ':');
    size_t kind_len = arg ? (size_t)(arg - element) : strlen(element);
    arg = arg ? arg + 1 : "auto";
    char *end = NULL;
    double value = strtod(arg, &end);
    int is_auto = strcmp(arg, "auto") == 0;
    int is_share = end != arg && *end == '%' && end[1] == '\0';
    if (kind_len == 6 && strncmp(element, "closed", 6) == 0) {
        if (is_auto || (end != arg && *end == '\0' && value >= 1 && value <= 1 << 20)) {
            push_load(l, (bench_load){LOAD_CLOSED, is_auto ? 0 : value, 0});
            return 0;
        }
    } else if (kind_len == 4 && strncmp(element, "open", 4) == 0) {
        if (is_auto) {
            static const double shares[] = {0.25, 0.5, 0.75, 0.9};
            for (size_t i = 0; i < sizeof shares / sizeof shares[0]; i++) {
                push_load(l, (bench_load){LOAD_OPEN, 0, shares[i]});
            }
            return 0;
        }
        if (is_share && value > 0 && value <= 1000) {
            push_load(l, (bench_load){LOAD_OPEN, 0, value / 100});
            return 0;
        }
        if (end != arg && *end == '\0' && value > 0) {
            push_load(l, (bench_load){LOAD_OPEN, value, 0});
            return 0;
        }
    }
    return mpb__set_error(err, err_len, MPB_EINVAL,
                          "load: '%s' is not closed[:N|auto] or open:RATE|PERCENT%%|auto", element);
}

int
mpb__bench_parse_loads(const char *text, bench_load **out, size_t *n, char *err, size_t err_len)
{
    *n = 0;
    load_ctx l = {out, n};
    return split(text, "load", err, err_len, load_element, &l);
}

void
mpb__bench_load_text(const bench_load *load, double value, char *out, size_t len)
{
    if (load->kind == LOAD_CLOSED) {
        snprintf(out, len, "closed:%.0f", value);
    } else {
        snprintf(out, len, "open:%.0f", value);
    }
}

/* A float32 vector of dim, the default item (what mlp reads). */
static void
vector_item(bench_plan *plan, size_t dim)
{
    free(plan->item);
    plan->item_bytes = dim * sizeof(float);
    plan->item = mpb_malloc(plan->item_bytes);
    for (size_t i = 0; i < dim; i++) {
        float v = 0.01f * (float)(i % 100);
        memcpy(plan->item + i * sizeof v, &v, sizeof v);
    }
}

static void
add_option(bench_plan *plan, const char *pair)
{
    size_t n = 0;
    while (plan->plugin_options != NULL && plan->plugin_options[n] != NULL) {
        n++;
    }
    plan->plugin_options = mpb_realloc(plan->plugin_options, (n + 2) * sizeof(char *));
    plan->plugin_options[n] = mpb_strdup(pair);
    plan->plugin_options[n + 1] = NULL;
}

/* 1 when the plugin takes an input_dim option (then items must match it). */
static int
takes_input_dim(const char *plugin)
{
    const mpb__plugin *p = NULL;
    return mpb__plugin_find(plugin, &p, NULL, 0) == 0 &&
           mpb__plugin_check_option(p->def, "input_dim", "1", NULL, 0) == 0;
}

int
mpb__bench_model_config(bench_plan *plan, const char *model, const char *const *options, size_t dim,
                        char *err, size_t err_len)
{
    char *resolved = NULL; /* a plugin that is not there fails now, not at the first point */
    int found = mpb__plugin_resolve(model, &resolved, err, err_len);
    free(resolved);
    if (found != 0) {
        return found;
    }
    size_t cap = 256 + strlen(model);
    for (size_t i = 0; options != NULL && options[i] != NULL; i++) {
        cap += strlen(options[i]) + 16;
    }
    char *yaml = mpb_calloc(1, cap);
    size_t len = (size_t)snprintf(yaml, cap, "servlet:\n  plugin: '%s'\n  options:\n", model);
    int has_dim = 0;
    int any_option = 0;
    for (size_t i = 0; options != NULL && options[i] != NULL; i++) {
        const char *eq = strchr(options[i], '=');
        if (eq == NULL || eq == options[i]) {
            free(yaml);
            return mpb__set_error(err, err_len, MPB_EINVAL, "--option expects KEY=VALUE, got '%s'",
                                  options[i]);
        }
        len += (size_t)snprintf(yaml + len, cap - len, "    %.*s: '%s'\n", (int)(eq - options[i]),
                                options[i], eq + 1);
        has_dim |= strncmp(options[i], "input_dim=", 10) == 0;
        add_option(plan, options[i]);
        any_option = 1;
    }
    if (!has_dim && takes_input_dim(model)) {
        char pair[64];
        snprintf(pair, sizeof pair, "input_dim=%zu", dim);
        len += (size_t)snprintf(yaml + len, cap - len, "    input_dim: %zu\n", dim);
        add_option(plan, pair);
        any_option = 1;
    }
    if (!any_option) { /* "options:" with nothing under it is null, not a mapping */
        *strstr(yaml, "  options:\n") = '\0';
    }
    int rc = mpb_config_parse(yaml, strlen(yaml), "--model", &plan->config, err, err_len);
    free(yaml);
    if (rc != 0) {
        return rc;
    }
    plan->model = mpb_strdup(model);
    plan->plugin = mpb_strdup(model);
    vector_item(plan, dim);
    return 0;
}

/* The sweep: section's axes, where the command line left them unset. */
static int
axes_from_file(bench_plan *plan, const mpb_config *config, char *err, size_t err_len)
{
    const char *v;
    int rc = 0;
    if (rc == 0 && plan->n_workers == 0 && (v = mpb_config_get(config, "sweep.workers"))) {
        rc = mpb__bench_parse_list(v, "sweep.workers", 1, &plan->workers, &plan->n_workers, err,
                                   err_len);
    }
    if (rc == 0 && plan->n_batch_sizes == 0 && (v = mpb_config_get(config, "sweep.batch_size"))) {
        rc = mpb__bench_parse_list(v, "sweep.batch_size", 0, &plan->batch_sizes,
                                   &plan->n_batch_sizes, err, err_len);
    }
    if (rc == 0 && plan->n_waits == 0 && (v = mpb_config_get(config, "sweep.batch_wait_us"))) {
        rc = mpb__bench_parse_waits(v, &plan->waits, &plan->n_waits, err, err_len);
    }
    if (rc == 0 && plan->n_loads == 0 && (v = mpb_config_get(config, "sweep.load"))) {
        rc = mpb__bench_parse_loads(v, &plan->loads, &plan->n_loads, err, err_len);
    }
    if (rc == 0 && plan->n_kinds == 0 && (v = mpb_config_get(config, "sweep.kind"))) {
        for (const char *k = v; rc == 0 && *k;) {
            size_t len = strcspn(k, ",");
            const char *kind = strncmp(k, "process", len) == 0 && len == 7  ? "process"
                               : strncmp(k, "thread", len) == 0 && len == 6 ? "thread"
                                                                            : NULL;
            if (kind == NULL) {
                rc = mpb__set_error(err, err_len, MPB_EINVAL,
                                    "sweep.kind: '%.*s' is not process or thread", (int)len, k);
                break;
            }
            plan->kinds = mpb_realloc(plan->kinds, (plan->n_kinds + 1) * sizeof(char *));
            plan->kinds[plan->n_kinds++] = kind;
            k += len + (k[len] == ',');
        }
    }
    long long n = 0;
    if (rc == 0 && plan->seconds <= 0 && (v = mpb_config_get(config, "sweep.seconds"))) {
        plan->seconds = strtod(v, NULL);
        if (plan->seconds <= 0) {
            rc = mpb__set_error(err, err_len, MPB_EINVAL, "sweep.seconds must be above 0");
        }
    }
    if (rc == 0 && plan->items == 0 && (v = mpb_config_get(config, "sweep.items"))) {
        if (parse_integer(v, &n) < 0 || n < 1) {
            rc = mpb__set_error(err, err_len, MPB_EINVAL, "sweep.items must be an integer >= 1");
        }
        plan->items = n;
    }
    return rc;
}

int
mpb__bench_load_sweep_file(bench_plan *plan, const char *path, char *err, size_t err_len)
{
    int rc = mpb_config_load(path, &plan->config, err, err_len);
    if (rc != 0) {
        return rc;
    }
    char why[512] = "";
    rc = axes_from_file(plan, plan->config, why, sizeof why);
    if (rc != 0) {
        return mpb__set_error(err, err_len, rc, "%s: %s", path, why);
    }
    const char *plugin = mpb_config_get(plan->config, "servlet.plugin");
    const char *name = mpb_config_get(plan->config, "servlet.name");
    const char *base = strrchr(path, '/');
    plan->model = mpb_strdup(name ? name : plugin ? plugin : base ? base + 1 : path);
    if (plugin != NULL) { /* one pool: the plugin alone can be measured too */
        plan->plugin = mpb_strdup(plugin);
        for (size_t i = 0; i < mpb_config_count(plan->config); i++) {
            const char *key = mpb_config_key(plan->config, i);
            if (strncmp(key, "servlet.options.", 16) == 0) {
                char *pair = mpb_asprintf("%s=%s", key + 16, mpb_config_value(plan->config, i));
                add_option(plan, pair);
                free(pair);
            }
        }
    }
    const char *item = mpb_config_get(plan->config, "sweep.item");
    const char *dim = mpb_config_get(plan->config, "sweep.dim");
    long long n = 0;
    if (item != NULL) {
        free(plan->item);
        plan->item = (unsigned char *)mpb_strdup(item);
        plan->item_bytes = strlen(item);
    } else if (dim != NULL) {
        if (parse_integer(dim, &n) < 0 || n < 1 || n > 1 << 24) {
            return mpb__set_error(err, err_len, MPB_EINVAL, "%s: sweep.dim must be 1..%d", path,
                                  1 << 24);
        }
        vector_item(plan, (size_t)n);
    } else {
        const char *input_dim = mpb_config_get(plan->config, "servlet.options.input_dim");
        vector_item(plan, input_dim && parse_integer(input_dim, &n) > 0 && n > 0 ? (size_t)n : 256);
    }
    return 0;
}

void
mpb__bench_plan_free(bench_plan *plan)
{
    mpb_config_destroy(&plan->config);
    free(plan->model);
    free(plan->plugin);
    for (size_t i = 0; plan->plugin_options != NULL && plan->plugin_options[i] != NULL; i++) {
        free(plan->plugin_options[i]);
    }
    free(plan->plugin_options);
    free(plan->item);
    free(plan->kinds);
    free(plan->workers);
    free(plan->batch_sizes);
    free(plan->waits);
    free(plan->loads);
    memset(plan, 0, sizeof *plan);
}
