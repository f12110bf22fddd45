/*
 * What a sweep covers: axes from the command line ("1,8,32", "1..128" for
 * doubling, "0..2000:500" for steps) or from a sweep file's sweep:
 * section, and the servlet tree it benches (the file's servlet:, or one
 * pool made from --model and --option).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plugin.h"
#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/worker.h"
#include "tools/bench/bench_int.h"

#define MAX_AXIS 256
#define MAX_SECONDS 3600
/* open rates, items/s: beyond any server above; below, the gap to the
 * next arrival (in ns) would not fit an int64 */
#define MIN_OPEN_RATE 1e-6
#define MAX_OPEN_RATE 1e7

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

/* Adds value to the axis once: a repeated value is one point, not two. */
static int
push(long long **out, size_t *n, long long value, const char *flag, char *err, size_t err_len)
{
    for (size_t i = 0; i < *n; i++) {
        if ((*out)[i] == value) {
            return 0;
        }
    }
    if (*n == MAX_AXIS) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "%s: more than %d values", flag, MAX_AXIS);
    }
    *out = mpb_realloc(*out, (*n + 1) * sizeof **out);
    (*out)[(*n)++] = value;
    return 0;
}

/* One element: N, A..B (doubling) or A..B:S. */
static int
parse_element(const char *text, const char *flag, long long min, long long max, long long **out,
              size_t *n, char *err, size_t err_len)
{
    long long a;
    long long b;
    long long step = 0;
    int used = parse_integer(text, &a);
    if (used < 0 || a < min || a > max) {
        goto bad;
    }
    const char *rest = text + used;
    if (*rest == '\0') {
        return push(out, n, a, flag, err, err_len);
    }
    if (strncmp(rest, "..", 2) != 0 || (used = parse_integer(rest + 2, &b)) < 0 || b < a ||
        b > max) {
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
    for (long long v = a;; v = step ? v + step : v * 2) {
        int rc = push(out, n, v, flag, err, err_len);
        if (rc != 0) {
            return rc;
        }
        /* the next value would pass b (checked before it is made: it may not fit) */
        if (step ? v > b - step : v > b / 2) {
            return 0;
        }
    }
bad:
    return mpb__set_error(err, err_len, MPB_EINVAL,
                          "%s: '%s' is not a value from %lld to %lld, A..B (doubling) or "
                          "A..B:STEP",
                          flag, text, min, max);
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
    long long max;
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
    return parse_element(element, l->flag, l->min, l->max, l->out, l->n, err, err_len);
}

int
mpb__bench_parse_list(const char *text, const char *flag, long long min, long long max,
                      long long **out, size_t *n, char *err, size_t err_len)
{
    *n = 0;
    list_ctx l = {flag, min, max, out, n, 0};
    return split(text, flag, err, err_len, list_element, &l);
}

static int
has_kind(const bench_plan *plan, const char *kind)
{
    for (size_t i = 0; i < plan->n_kinds; i++) {
        if (plan->kinds[i] == kind) {
            return 1;
        }
    }
    return 0;
}

int
mpb__bench_parse_kinds(bench_plan *plan, const char *text, const char *flag, char *err,
                       size_t err_len)
{
    for (const char *k = text; *k;) {
        size_t len = strcspn(k, ",");
        const char *kind = len == 7 && strncmp(k, "process", 7) == 0  ? "process"
                           : len == 6 && strncmp(k, "thread", 6) == 0 ? "thread"
                                                                      : NULL;
        if (kind == NULL) {
            return mpb__set_error(err, err_len, MPB_EINVAL, "%s: '%.*s' is not process or thread",
                                  flag, (int)len, k);
        }
        if (!has_kind(plan, kind)) { /* process,process is one kind */
            plan->kinds = mpb_realloc(plan->kinds, (plan->n_kinds + 1) * sizeof(char *));
            plan->kinds[plan->n_kinds++] = kind;
        }
        k += len + (k[len] == ',');
    }
    return 0;
}

int
mpb__bench_parse_waits(const char *text, long long **out, size_t *n, char *err, size_t err_len)
{
    *n = 0;
    list_ctx l = {"batch_wait_us", 0, MPB_BENCH_MAX_WAIT_US, out, n, 1};
    return split(text, "batch_wait_us", err, err_len, list_element, &l);
}

typedef struct load_ctx {
    bench_load **out;
    size_t *n;
} load_ctx;

static void
push_load(load_ctx *l, bench_load load)
{
    for (size_t i = 0; i < *l->n; i++) {
        const bench_load *seen = &(*l->out)[i];
        if (seen->kind == load.kind && seen->value == load.value && seen->share == load.share) {
            return; /* a repeated load is measured once */
        }
    }
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
    int is_number = end != arg && *end == '\0' && isfinite(value);
    if (kind_len == 6 && strncmp(element, "closed", 6) == 0) {
        /* N callers: a whole number */
        if (is_auto || (is_number && value >= 1 && value <= 1 << 20 && value == floor(value))) {
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
        if (is_number && value >= MIN_OPEN_RATE && value <= MAX_OPEN_RATE) {
            push_load(l, (bench_load){LOAD_OPEN, value, 0});
            return 0;
        }
    }
    return mpb__set_error(err, err_len, MPB_EINVAL,
                          "load: '%s' is not closed[:N|auto] (N a whole number, 1..%d) or "
                          "open:RATE|PERCENT%%|auto (RATE from %g to %.0f items/s)",
                          element, 1 << 20, MIN_OPEN_RATE, MAX_OPEN_RATE);
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
        return;
    }
    /* the shortest text that reads back as the rate: open:0.1 and open:0.2
     * stay apart, open:12000 stays short */
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, len, "open:%.*g", digits, value);
        if (strtod(out + 5, NULL) == value) {
            return;
        }
    }
}

int
mpb__bench_parse_seconds(const char *text, double *seconds)
{
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !(value > 0 && value <= MAX_SECONDS)) {
        return MPB_EINVAL; /* NaN fails the test above too */
    }
    *seconds = value;
    return 0;
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

/* Floats per item: --dim (dim, 0 when not given) and --option input_dim
 * must agree when both are given; either alone decides; else 256. */
static int
item_dim(const char *const *options, size_t dim, size_t *out, char *err, size_t err_len)
{
    const char *given = NULL;
    for (size_t i = 0; options != NULL && options[i] != NULL; i++) {
        if (strncmp(options[i], "input_dim=", 10) == 0) {
            given = options[i] + 10;
        }
    }
    long long n = 0;
    if (given == NULL) {
        *out = dim ? dim : 256;
        return 0;
    }
    if (parse_integer(given, &n) != (int)strlen(given) || n < 1 || n > 1 << 24) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "--option input_dim=%s: expects an integer 1..%d", given, 1 << 24);
    }
    if (dim != 0 && (size_t)n != dim) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "--dim %zu and --option input_dim=%lld disagree: items must have "
                              "the model's input_dim floats (give one of them)",
                              dim, n);
    }
    *out = (size_t)n;
    return 0;
}

int
mpb__bench_model_config(bench_plan *plan, const char *model, const char *const *options, size_t dim,
                        char *err, size_t err_len)
{
    if (item_dim(options, dim, &dim, err, err_len) != 0) {
        return MPB_EINVAL;
    }
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

/* sweep.seconds or sweep.items, when the command line gave neither. */
static int
length_from_file(bench_plan *plan, const mpb_config *config, char *err, size_t err_len)
{
    if (plan->seconds > 0 || plan->items > 0) {
        return 0;
    }
    const char *seconds = mpb_config_get(config, "sweep.seconds");
    const char *items = mpb_config_get(config, "sweep.items");
    if (seconds != NULL && items != NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "sweep.seconds and sweep.items do not go together: give one");
    }
    if (seconds != NULL && mpb__bench_parse_seconds(seconds, &plan->seconds) != 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "sweep.seconds must be a number of seconds in (0, %d], got '%s'",
                              MAX_SECONDS, seconds);
    }
    long long n = 0;
    if (items != NULL) {
        if (parse_integer(items, &n) != (int)strlen(items) || n < 1) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "sweep.items must be an integer >= 1, got '%s'", items);
        }
        plan->items = n;
    }
    return 0;
}

/* The sweep: section's axes, where the command line left them unset. */
static int
axes_from_file(bench_plan *plan, const mpb_config *config, char *err, size_t err_len)
{
    const char *v;
    int rc = 0;
    if (rc == 0 && plan->n_workers == 0 && (v = mpb_config_get(config, "sweep.workers"))) {
        rc = mpb__bench_parse_list(v, "sweep.workers", 1, MPB_BENCH_MAX_WORKERS, &plan->workers,
                                   &plan->n_workers, err, err_len);
    }
    if (rc == 0 && plan->n_batch_sizes == 0 && (v = mpb_config_get(config, "sweep.batch_size"))) {
        rc = mpb__bench_parse_list(v, "sweep.batch_size", 0, MPB_BENCH_MAX_BATCH,
                                   &plan->batch_sizes, &plan->n_batch_sizes, err, err_len);
    }
    if (rc == 0 && plan->n_waits == 0 && (v = mpb_config_get(config, "sweep.batch_wait_us"))) {
        rc = mpb__bench_parse_waits(v, &plan->waits, &plan->n_waits, err, err_len);
    }
    if (rc == 0 && plan->n_loads == 0 && (v = mpb_config_get(config, "sweep.load"))) {
        rc = mpb__bench_parse_loads(v, &plan->loads, &plan->n_loads, err, err_len);
    }
    if (rc == 0 && plan->n_kinds == 0 && (v = mpb_config_get(config, "sweep.kind"))) {
        rc = mpb__bench_parse_kinds(plan, v, "sweep.kind", err, err_len);
    }
    if (rc == 0) {
        rc = length_from_file(plan, config, err, err_len);
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
