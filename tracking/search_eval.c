/* Matching, ordering and paging of MLflow searches, in memory. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/search.h"
#include "tracking/store_int.h"
#include "tracking/text.h"

int
mpb__like_match(const char *pattern, const char *text, int ignore_case)
{
    const char *star_pattern = NULL;
    const char *star_text = NULL;
    while (*text) {
        const char *next_text = text;
        uint32_t tc = mpb__utf8_next(&next_text);
        if (*pattern == '%') {
            star_pattern = ++pattern;
            star_text = text;
            continue;
        }
        const char *next_pattern = pattern;
        uint32_t pc = *pattern ? mpb__utf8_next(&next_pattern) : 0;
        int same = pc == tc ||
                   (ignore_case && pc < 128 && tc < 128 && tolower((int)pc) == tolower((int)tc));
        if (*pattern && (pc == '_' || same)) {
            pattern = next_pattern;
            text = next_text;
        } else if (star_pattern != NULL) {
            pattern = star_pattern;
            (void)mpb__utf8_next(&star_text);
            text = star_text;
        } else {
            return 0;
        }
    }
    while (*pattern == '%') {
        pattern++;
    }
    return *pattern == '\0';
}

static int
match_number(const mpb__clause *clause, double value)
{
    switch (clause->op) {
    case MPB__OP_EQ:
        return value == clause->number;
    case MPB__OP_NE:
        return value != clause->number;
    case MPB__OP_LT:
        return value < clause->number;
    case MPB__OP_LE:
        return value <= clause->number;
    case MPB__OP_GT:
        return value > clause->number;
    case MPB__OP_GE:
        return value >= clause->number;
    default:
        return 0;
    }
}

static int
match_string(const mpb__clause *clause, const char *value)
{
    if (value == NULL) {
        return 0; /* a run without the key never matches, as in MLflow */
    }
    switch (clause->op) {
    case MPB__OP_EQ:
        return strcmp(value, clause->strings[0]) == 0;
    case MPB__OP_NE:
        return strcmp(value, clause->strings[0]) != 0;
    case MPB__OP_LIKE:
        return mpb__like_match(clause->strings[0], value, 0);
    case MPB__OP_ILIKE:
        return mpb__like_match(clause->strings[0], value, 1);
    case MPB__OP_IN:
    case MPB__OP_NOT_IN:
        for (size_t i = 0; i < clause->n_strings; i++) {
            if (strcmp(value, clause->strings[i]) == 0) {
                return clause->op == MPB__OP_IN;
            }
        }
        return clause->op == MPB__OP_NOT_IN;
    default:
        return 0;
    }
}

/* A run attribute as text or number; returns 1 when numeric. */
static int
run_attribute(const mpb_run *run, const char *key, const char **text, double *number)
{
    const mpb_run_info *info = &run->info;
    *text = NULL;
    if (strcmp(key, "start_time") == 0 || strcmp(key, "end_time") == 0) {
        int64_t value = key[0] == 's' ? info->start_time : info->end_time;
        *number = value < 0 ? NAN : (double)value;
        return 1;
    }
    if (strcmp(key, "run_id") == 0) {
        *text = info->run_id;
    } else if (strcmp(key, "run_name") == 0) {
        *text = info->run_name;
    } else if (strcmp(key, "status") == 0) {
        *text = mpb_run_status_name(info->status);
    } else if (strcmp(key, "user_id") == 0) {
        *text = info->user_id;
    } else if (strcmp(key, "artifact_uri") == 0) {
        *text = info->artifact_uri;
    }
    return 0;
}

int
mpb__filter_match_run(const mpb__filter *filter, const mpb_run *run)
{
    for (size_t i = 0; i < filter->n_clauses; i++) {
        const mpb__clause *clause = &filter->clauses[i];
        int ok = 0;
        if (clause->entity == MPB__ENTITY_METRIC) {
            const mpb_metric *metric = mpb__metric_find(run->metrics, run->n_metrics, clause->key);
            ok = metric != NULL && match_number(clause, metric->value);
        } else if (clause->entity == MPB__ENTITY_PARAM) {
            ok = match_string(clause, mpb__param_find(run->params, run->n_params, clause->key));
        } else if (clause->entity == MPB__ENTITY_TAG) {
            ok = match_string(clause, mpb__tag_find(run->tags, run->n_tags, clause->key));
        } else {
            const char *text;
            double number;
            if (run_attribute(run, clause->key, &text, &number)) {
                ok = !isnan(number) && match_number(clause, number);
            } else {
                ok = match_string(clause, text);
            }
        }
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int
experiment_attribute(const mpb_experiment *experiment, const char *key, const char **text,
                     double *number)
{
    *text = NULL;
    if (strcmp(key, "creation_time") == 0) {
        *number = experiment->creation_time < 0 ? NAN : (double)experiment->creation_time;
        return 1;
    }
    if (strcmp(key, "last_update_time") == 0) {
        *number = experiment->last_update_time < 0 ? NAN : (double)experiment->last_update_time;
        return 1;
    }
    *text = strcmp(key, "name") == 0 ? experiment->name : experiment->experiment_id;
    return 0;
}

int
mpb__filter_match_experiment(const mpb__filter *filter, const mpb_experiment *experiment)
{
    for (size_t i = 0; i < filter->n_clauses; i++) {
        const mpb__clause *clause = &filter->clauses[i];
        int ok;
        if (clause->entity == MPB__ENTITY_TAG) {
            ok = match_string(clause,
                              mpb__tag_find(experiment->tags, experiment->n_tags, clause->key));
        } else {
            const char *text;
            double number;
            if (experiment_attribute(experiment, clause->key, &text, &number)) {
                ok = !isnan(number) && match_number(clause, number);
            } else {
                ok = match_string(clause, text);
            }
        }
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* A sort value: missing values sort last in either direction, NaN after numbers. */
typedef struct sort_value {
    int missing;
    int numeric;
    double number;
    const char *text;
    int is_id; /* an experiment id: digits compare as the number they write */
} sort_value;

static int
all_digits(const char *text)
{
    if (*text == '\0') {
        return 0;
    }
    for (; *text != '\0'; text++) {
        if (*text < '0' || *text > '9') {
            return 0;
        }
    }
    return 1;
}

/* Experiment ids in numeric order when both are numbers (MLflow's SQL
 * schema keeps them as INTEGER: 2 before 10), else in text order. Ids
 * have no leading zeros, so the shorter number is the smaller. */
static int
compare_experiment_ids(const char *a, const char *b)
{
    if (all_digits(a) && all_digits(b)) {
        size_t la = strlen(a);
        size_t lb = strlen(b);
        if (la != lb) {
            return la < lb ? -1 : 1;
        }
    }
    return strcmp(a, b);
}

static sort_value
run_sort_value(const mpb_run *run, const mpb__order_key *key)
{
    sort_value v = {0};
    if (key->entity == MPB__ENTITY_METRIC) {
        const mpb_metric *metric = mpb__metric_find(run->metrics, run->n_metrics, key->key);
        v.missing = metric == NULL;
        v.numeric = 1;
        v.number = metric ? metric->value : 0;
    } else if (key->entity == MPB__ENTITY_PARAM) {
        v.text = mpb__param_find(run->params, run->n_params, key->key);
        v.missing = v.text == NULL;
    } else if (key->entity == MPB__ENTITY_TAG) {
        v.text = mpb__tag_find(run->tags, run->n_tags, key->key);
        v.missing = v.text == NULL;
    } else {
        v.numeric = run_attribute(run, key->key, &v.text, &v.number);
        v.missing = v.numeric ? isnan(v.number) : v.text == NULL;
    }
    return v;
}

static int
compare_values(sort_value a, sort_value b, int ascending)
{
    if (a.missing || b.missing) {
        return a.missing - b.missing;
    }
    int cmp;
    if (a.numeric) {
        int a_nan = isnan(a.number);
        int b_nan = isnan(b.number);
        if (a_nan || b_nan) {
            return a_nan - b_nan;
        }
        cmp = a.number < b.number ? -1 : a.number > b.number;
    } else {
        cmp = a.is_id ? compare_experiment_ids(a.text, b.text) : strcmp(a.text, b.text);
    }
    return ascending ? cmp : -cmp;
}

static int
compare_runs(const void *left, const void *right, void *ctx)
{
    const mpb_run *a = left;
    const mpb_run *b = right;
    const mpb__order *order = ctx;
    for (size_t i = 0; i < order->n_keys; i++) {
        int cmp = compare_values(run_sort_value(a, &order->keys[i]),
                                 run_sort_value(b, &order->keys[i]), order->keys[i].ascending);
        if (cmp != 0) {
            return cmp;
        }
    }
    if (a->info.start_time != b->info.start_time) {
        return a->info.start_time > b->info.start_time ? -1 : 1;
    }
    return strcmp(a->info.run_id, b->info.run_id);
}

static sort_value
experiment_sort_value(const mpb_experiment *experiment, const mpb__order_key *key)
{
    sort_value v = {0};
    if (key->entity == MPB__ENTITY_TAG) {
        v.text = mpb__tag_find(experiment->tags, experiment->n_tags, key->key);
        v.missing = v.text == NULL;
        return v;
    }
    v.numeric = experiment_attribute(experiment, key->key, &v.text, &v.number);
    v.missing = v.numeric ? isnan(v.number) : v.text == NULL;
    v.is_id = strcmp(key->key, "experiment_id") == 0;
    return v;
}

static int
compare_experiments(const void *left, const void *right, void *ctx)
{
    const mpb_experiment *a = left;
    const mpb_experiment *b = right;
    const mpb__order *order = ctx;
    for (size_t i = 0; i < order->n_keys; i++) {
        int cmp =
            compare_values(experiment_sort_value(a, &order->keys[i]),
                           experiment_sort_value(b, &order->keys[i]), order->keys[i].ascending);
        if (cmp != 0) {
            return cmp;
        }
    }
    if (order->n_keys == 0 && a->creation_time != b->creation_time) {
        return a->creation_time > b->creation_time ? -1 : 1;
    }
    return compare_experiment_ids(a->experiment_id, b->experiment_id);
}

char *
mpb__page_token_encode(size_t offset)
{
    char json[48];
    int len = snprintf(json, sizeof json, "{\"offset\": %zu}", offset);
    return mpb__base64_encode(json, (size_t)len);
}

int
mpb__page_token_decode(const char *token, size_t *out_offset, char *err, size_t err_len)
{
    *out_offset = 0;
    if (token == NULL || *token == '\0') {
        return 0;
    }
    size_t len = 0;
    unsigned char *json = mpb__base64_decode(token, &len);
    if (json == NULL) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid page token, could not base64-decode: '%.60s'", token);
    }
    cJSON *root = cJSON_ParseWithLength((const char *)json, len);
    const cJSON *offset = cJSON_GetObjectItemCaseSensitive(root, "offset");
    int rc = 0;
    if (!cJSON_IsNumber(offset) || offset->valuedouble < 0 ||
        offset->valuedouble != floor(offset->valuedouble) || offset->valuedouble > 1e15) {
        rc = mpb__set_error(err, err_len, MPB_EINVAL, "Invalid page token: '%.60s' holds no offset",
                            token);
    } else {
        *out_offset = (size_t)offset->valuedouble;
    }
    cJSON_Delete(root);
    free(json);
    return rc;
}

int
mpb__search_opts_check(mpb__search_target target, const mpb_search_opts *opts, char *err,
                       size_t err_len)
{
    if (opts == NULL) {
        return 0;
    }
    if (opts->max_results > MPB_SEARCH_MAX_RESULTS_THRESHOLD) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "Invalid value %zu for parameter 'max_results' supplied. It must "
                              "be at most %d",
                              opts->max_results, MPB_SEARCH_MAX_RESULTS_THRESHOLD);
    }
    if (opts->view_type != 0 &&
        (opts->view_type < MPB_VIEW_ACTIVE_ONLY || opts->view_type > MPB_VIEW_ALL)) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "Invalid view type %d",
                              (int)opts->view_type);
    }
    mpb__filter filter;
    int rc = mpb__filter_parse(target, opts->filter, &filter, err, err_len);
    mpb__filter_clear(&filter);
    mpb__order order;
    if (rc == 0) {
        rc = mpb__order_parse(target, opts->order_by, opts->n_order_by, &order, err, err_len);
        mpb__order_clear(&order);
    }
    return rc;
}

static int
view_accepts(mpb_view_type view, const char *lifecycle_stage)
{
    int deleted = lifecycle_stage != NULL && strcmp(lifecycle_stage, "deleted") == 0;
    if (view == MPB_VIEW_ALL) {
        return 1;
    }
    return view == MPB_VIEW_DELETED_ONLY ? deleted : !deleted;
}

/* Shared front half of both searches: parse options, find the page bounds. */
typedef struct search_plan {
    mpb__filter filter;
    mpb__order order;
    mpb_view_type view;
    size_t offset;
    size_t max_results;
} search_plan;

static int
plan_search(mpb__search_target target, const mpb_search_opts *opts, size_t offset,
            search_plan *plan, char *err, size_t err_len)
{
    static const mpb_search_opts defaults = {0};
    opts = opts ? opts : &defaults;
    memset(plan, 0, sizeof *plan);
    plan->offset = offset;
    plan->view = opts->view_type ? opts->view_type : MPB_VIEW_ACTIVE_ONLY;
    plan->max_results = opts->max_results ? opts->max_results : MPB_SEARCH_MAX_RESULTS_DEFAULT;
    int rc = mpb__search_opts_check(target, opts, err, err_len);
    if (rc == 0) {
        rc = mpb__filter_parse(target, opts->filter, &plan->filter, err, err_len);
    }
    if (rc == 0) {
        rc = mpb__order_parse(target, opts->order_by, opts->n_order_by, &plan->order, err, err_len);
    }
    return rc;
}

static void
plan_clear(search_plan *plan)
{
    mpb__filter_clear(&plan->filter);
    mpb__order_clear(&plan->order);
}

/* What the two searches differ in: the element type and how to judge,
 * free and order one element. */
typedef struct search_kind {
    mpb__search_target target;
    size_t size;
    int (*keeps)(const search_plan *plan, const void *item); /* view and filter */
    void (*clear)(void *item);
    int (*compare)(const void *left, const void *right, void *order);
} search_kind;

/* A page of a search, as search_in_memory cuts it out. */
typedef struct search_page {
    void *items; /* malloc'd, room for at least one */
    size_t n;
    size_t next; /* offset of the next page, 0 on the last */
} search_page;

/* Keeps the items the search selects, sorts them and cuts out the page it
 * asks for. Consumes items (n of them): the page owns what it holds, the
 * rest is cleared and freed, on failure too. */
static int
search_in_memory(const search_kind *kind, void *items, size_t n, const mpb_search_opts *opts,
                 size_t offset, search_page *out, char *err, size_t err_len)
{
    search_plan plan;
    int rc = plan_search(kind->target, opts, offset, &plan, err, err_len);
    char *base = items;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        char *item = base + i * kind->size;
        if (rc == 0 && kind->keeps(&plan, item)) {
            memmove(base + kept++ * kind->size, item, kind->size);
        } else {
            kind->clear(item);
        }
    }
    if (rc < 0) {
        plan_clear(&plan);
        free(items);
        return rc;
    }
    qsort_r(items, kept, kind->size, kind->compare, &plan.order);
    size_t begin = plan.offset < kept ? plan.offset : kept;
    size_t end = kept - begin > plan.max_results ? begin + plan.max_results : kept;
    out->n = end - begin;
    out->items = mpb_calloc(out->n ? out->n : 1, kind->size);
    memcpy(out->items, base + begin * kind->size, out->n * kind->size);
    for (size_t i = 0; i < kept; i++) {
        if (i < begin || i >= end) {
            kind->clear(base + i * kind->size);
        }
    }
    out->next = end < kept ? end : 0;
    free(items);
    plan_clear(&plan);
    return 0;
}

static int
run_kept(const search_plan *plan, const void *item)
{
    const mpb_run *run = item;
    return view_accepts(plan->view, run->info.lifecycle_stage) &&
           mpb__filter_match_run(&plan->filter, run);
}

static void
run_clear(void *item)
{
    mpb__run_clear(item);
}

static const search_kind run_search = {
    .target = MPB__SEARCH_RUNS,
    .size = sizeof(mpb_run),
    .keeps = run_kept,
    .clear = run_clear,
    .compare = compare_runs,
};

int
mpb__search_runs_in_memory(mpb_run *runs, size_t n_runs, const mpb_search_opts *opts,
                           size_t offset, mpb_run_page **out, size_t *out_next, char *err,
                           size_t err_len)
{
    search_page found;
    int rc = search_in_memory(&run_search, runs, n_runs, opts, offset, &found, err, err_len);
    if (rc == 0) {
        mpb_run_page *page = mpb_calloc(1, sizeof *page);
        page->runs = found.items;
        page->n_runs = found.n;
        *out = page;
        *out_next = found.next;
    }
    return rc;
}

static int
experiment_kept(const search_plan *plan, const void *item)
{
    const mpb_experiment *experiment = item;
    return view_accepts(plan->view, experiment->lifecycle_stage) &&
           mpb__filter_match_experiment(&plan->filter, experiment);
}

static void
experiment_clear(void *item)
{
    mpb__experiment_clear(item);
}

static const search_kind experiment_search = {
    .target = MPB__SEARCH_EXPERIMENTS,
    .size = sizeof(mpb_experiment),
    .keeps = experiment_kept,
    .clear = experiment_clear,
    .compare = compare_experiments,
};

int
mpb__search_experiments_in_memory(mpb_experiment *experiments, size_t n_experiments,
                                  const mpb_search_opts *opts, size_t offset,
                                  mpb_experiment_page **out, size_t *out_next, char *err,
                                  size_t err_len)
{
    search_page found;
    int rc = search_in_memory(&experiment_search, experiments, n_experiments, opts, offset, &found,
                              err, err_len);
    if (rc == 0) {
        mpb_experiment_page *page = mpb_calloc(1, sizeof *page);
        page->experiments = found.items;
        page->n_experiments = found.n;
        *out = page;
        *out_next = found.next;
    }
    return rc;
}
