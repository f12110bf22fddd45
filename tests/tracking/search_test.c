/*
 * Search: MLflow filter syntax (parse errors with offsets, every comparator),
 * order_by, view types, nested-run lookup by parent tag, experiment search,
 * and paging through 2500 runs with opaque page tokens.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "helpers.h"
#include "tracking/search.h"

/* ---- Parser and matcher units ---- */

static void
filters_parse_with_every_comparator(void **state)
{
    (void)state;
    const char *good[] = {
        "",
        "   ",
        "attributes.status = 'FINISHED'",
        "attributes.run_name = \"r1\"",
        "tags.x = 'y' and tags.\"a b\" != 'v' AND tags.`c d` LIKE 'x%'",
        "params.lr = '0.1' AND metrics.loss < 1",
        "metrics.loss <= -1.5e-3 AND metrics.acc >= .5 AND metrics.n > 10 AND metrics.z != 0",
        "params.opt ILIKE 'AD%'",
        "attributes.run_id IN ('a', 'b')",
        "run_id NOT IN ('a','b')",
        "metrics.train/loss < 2",
        "attributes.start_time >= 1000 AND end_time < 5 AND created > 0",
        "run_name = 'x'",
        "tags.q = 'it''s'",
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(good); i++) {
        mpb__filter filter;
        char err[512] = "";
        if (mpb__filter_parse(MPB__SEARCH_RUNS, good[i], &filter, err, sizeof err) != 0) {
            fail_msg("'%s' rejected: %s", good[i], err);
        }
        mpb__filter_clear(&filter);
    }
    mpb__filter filter;
    assert_int_equal(mpb__filter_parse(MPB__SEARCH_RUNS, "tags.q = 'it''s'", &filter, NULL, 0), 0);
    assert_string_equal(filter.clauses[0].strings[0], "it's");
    mpb__filter_clear(&filter);
}

static void
bad_filters_say_where_parsing_failed(void **state)
{
    (void)state;
    const struct {
        const char *filter;
        const char *expect;
    } bad[] = {
        {"metrics.loss <> 1", "offset 13"},
        {"metrics.loss < 'a'", "compare it with a number"},
        {"metrics.loss LIKE 'a'", "numeric"},
        {"params.lr < '1'", "is a string"},
        {"params.lr = 0.1", "must be quoted"},
        {"foo.bar = 'x'", "unknown entity type"},
        {"attributes.nope = 'x'", "unknown attribute"},
        {"tags.x = 'y' OR tags.z = 'w'", "OR is not supported"},
        {"tags.\"a b = 'x'", "unterminated"},
        {"tags.x = 'y' tags.z = 'w'", "expected AND"},
        {"tags.x =", "expected a value"},
        {"= 'x'", "expected an identifier"},
        {"tags. = 'x'", "expected a key"},
        {"attributes.run_id IN 'x'", "expected '('"},
        {"attributes.status IN ('FINISHED', 'FAILED')", "only the 'run_id' attribute"},
        {"attributes.run_name NOT IN ('a')", "only the 'run_id' attribute"},
        {"attributes.start_time IN ('1')", "numeric"},
        {"params.lr IN ('0.1')", "params compare with =, !=, LIKE, ILIKE only"},
        {"tags.k NOT IN ('a','b')", "tags compare with =, !=, LIKE, ILIKE only"},
        {"metrics.m IN ('1')", "numeric"},
        {"tags.x NOT 'y'", "expected IN after NOT"},
        {"metrics.m < 0x10", "expected a value"},
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        mpb__filter filter;
        char err[512] = "";
        assert_int_equal(
            mpb__filter_parse(MPB__SEARCH_RUNS, bad[i].filter, &filter, err, sizeof err),
            MPB_EINVAL);
        if (strstr(err, bad[i].expect) == NULL) {
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].filter, err, bad[i].expect);
        }
        assert_non_null(strstr(err, "at offset"));
    }
    mpb__filter filter;
    char err[512] = "";
    assert_int_equal(
        mpb__filter_parse(MPB__SEARCH_EXPERIMENTS, "metrics.x < 1", &filter, err, sizeof err),
        MPB_EINVAL);
    assert_non_null(strstr(err, "experiments are searched by"));
    assert_int_equal(mpb__filter_parse(MPB__SEARCH_EXPERIMENTS, "name IN ('a', 'b')", &filter, err,
                                       sizeof err),
                     MPB_EINVAL);
    assert_non_null(strstr(err, "only the 'run_id' attribute"));
}

static void
like_matches_sql_patterns(void **state)
{
    (void)state;
    assert_true(mpb__like_match("abc", "abc", 0));
    assert_false(mpb__like_match("abc", "abcd", 0));
    assert_true(mpb__like_match("a%", "abcd", 0));
    assert_true(mpb__like_match("%cd", "abcd", 0));
    assert_true(mpb__like_match("%b%", "abcd", 0));
    assert_true(mpb__like_match("a_c_", "abcd", 0));
    assert_false(mpb__like_match("a_c", "abcd", 0));
    assert_true(mpb__like_match("%", "", 0));
    assert_false(mpb__like_match("_", "", 0));
    assert_false(mpb__like_match("ABC%", "abcd", 0));
    assert_true(mpb__like_match("ABC%", "abcd", 1));
    assert_true(mpb__like_match("caf_", "caf\xc3\xa9", 0)); /* _ is one character */
    assert_true(mpb__like_match("%a%a%a", "banana bandana", 0));
}

static void
page_tokens_are_base64_offsets(void **state)
{
    (void)state;
    char *token = mpb__page_token_encode(1000);
    assert_string_equal(token, "eyJvZmZzZXQiOiAxMDAwfQ=="); /* {"offset": 1000} */
    size_t offset = 0;
    assert_int_equal(mpb__page_token_decode(token, &offset, NULL, 0), 0);
    assert_int_equal(offset, 1000);
    free(token);
    char err[256];
    assert_int_equal(mpb__page_token_decode("not base64!", &offset, err, sizeof err), MPB_EINVAL);
    assert_int_equal(mpb__page_token_decode("e30=", &offset, err, sizeof err), MPB_EINVAL); /* {} */
    assert_non_null(strstr(err, "Invalid page token"));
}

/* ---- Searches on a real store ---- */

typedef struct fixture {
    char *dir;
    mpb_store *store;
    char *exp_id;
    char *runs[6];
    char err[1024];
} fixture;

static void
add_run(fixture *f, int index, const char *name, const char *status_tag, double loss,
        const char *lr, mpb_run_status status)
{
    char err[512];
    mpb_tag tags[] = {{"team", status_tag}, {"a b", "spaced"}};
    assert_int_equal(mpb_store_create_run(f->store, f->exp_id, "tester", 1000 + index, name, tags,
                                          2, &f->runs[index], err, sizeof err),
                     0);
    mpb_param param = {"lr", lr};
    mpb_metric metric = {"loss", loss, 1, 0};
    assert_int_equal(mpb_store_log_batch(f->store, f->runs[index], isnan(loss) ? NULL : &metric,
                                         isnan(loss) ? 0 : 1, lr ? &param : NULL, lr ? 1 : 0, NULL,
                                         0, err, sizeof err),
                     0);
    if (status != MPB_RUN_RUNNING) {
        assert_int_equal(
            mpb_store_update_run(f->store, f->runs[index], status, 2000, NULL, err, sizeof err), 0);
    }
}

static int
setup(void **state)
{
    fixture *f = mpb_calloc(1, sizeof *f);
    f->dir = th_tempdir();
    f->store = th_open(f->dir);
    f->exp_id = th_experiment(f->store, "search");
    add_run(f, 0, "r0", "vision", 0.9, "0.1", MPB_RUN_FINISHED);
    add_run(f, 1, "r1", "vision", 0.2, "0.01", MPB_RUN_FINISHED);
    add_run(f, 2, "r2", "speech", 1.5, "0.1", MPB_RUN_FAILED);
    add_run(f, 3, "r3", "Vision", NAN, NULL, MPB_RUN_RUNNING);
    add_run(f, 4, "other", "speech", 0.5, "0.001", MPB_RUN_KILLED);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 6; i++) {
        free(f->runs[i]);
    }
    mpb_store_destroy(&f->store);
    th_cleanup(&f->dir);
    free(f->exp_id);
    free(f);
    return 0;
}

/* Run names of a search, in result order, joined by ','. */
static char *
search_names(fixture *f, const char *filter, const char *order_by, mpb_view_type view)
{
    const char *ids[] = {f->exp_id};
    const char *orders[] = {order_by};
    mpb_search_opts opts = {
        .filter = filter, .order_by = orders, .n_order_by = order_by ? 1 : 0, .view_type = view};
    mpb_run_page *page = NULL;
    int rc = mpb_store_search_runs(f->store, ids, 1, &opts, &page, f->err, sizeof f->err);
    if (rc != 0) {
        fail_msg("search '%s': %s", filter ? filter : "", f->err);
    }
    mpb__strbuf names = {0};
    mpb__strbuf_append(&names, "", 0);
    for (size_t i = 0; i < page->n_runs; i++) {
        mpb__strbuf_printf(&names, "%s%s", i ? "," : "", page->runs[i].info.run_name);
    }
    assert_null(page->next_page_token);
    mpb_run_page_free(&page);
    return mpb__strbuf_take(&names);
}

#define assert_names(f, filter, order, expected)                                                   \
    do {                                                                                           \
        char *got_ = search_names((f), (filter), (order), 0);                                      \
        if (strcmp(got_, (expected)) != 0) {                                                       \
            fail_msg("filter '%s' order '%s': got [%s], want [%s]", (filter),                      \
                     (order) ? (order) : "", got_, (expected));                                    \
        }                                                                                          \
        free(got_);                                                                                \
    } while (0)

static void
run_filters_select_by_attributes_tags_params_metrics(void **state)
{
    fixture *f = *state;
    /* Default order: start_time DESC. */
    assert_names(f, NULL, NULL, "other,r3,r2,r1,r0");
    assert_names(f, "attributes.status = 'FINISHED'", NULL, "r1,r0");
    assert_names(f, "attributes.status != 'FINISHED'", NULL, "other,r3,r2");
    char *in_list = mpb_asprintf("attributes.run_id IN ('%s', '%s')", f->runs[2], f->runs[4]);
    assert_names(f, in_list, NULL, "other,r2");
    free(in_list);
    in_list = mpb_asprintf("run_id NOT IN ('%s','%s')", f->runs[2], f->runs[4]);
    assert_names(f, in_list, NULL, "r3,r1,r0");
    free(in_list);
    /* MLflow rejects a list for any other attribute, and for params and tags. */
    const char *ids[] = {f->exp_id};
    const char *rejected[] = {"attributes.status IN ('FAILED', 'KILLED')",
                              "params.lr IN ('0.1')", "tags.team NOT IN ('vision')"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(rejected); i++) {
        mpb_search_opts opts = {.filter = rejected[i]};
        mpb_run_page *page = NULL;
        assert_int_equal(mpb_store_search_runs(f->store, ids, 1, &opts, &page, f->err,
                                               sizeof f->err),
                         MPB_EINVAL);
        assert_null(page);
        assert_non_null(strstr(f->err, "only"));
    }
    assert_names(f, "attributes.run_name = 'r1'", NULL, "r1");
    assert_names(f, "attributes.run_name LIKE 'r%'", NULL, "r3,r2,r1,r0");
    assert_names(f, "tags.team = 'vision'", NULL, "r1,r0");
    assert_names(f, "tags.team ILIKE 'VISION'", NULL, "r3,r1,r0");
    assert_names(f, "tags.team LIKE 'V%'", NULL, "r3");
    assert_names(f, "tags.\"a b\" = 'spaced'", NULL, "other,r3,r2,r1,r0");
    assert_names(f, "tags.`a b` != 'spaced'", NULL, "");
    assert_names(f, "params.lr = '0.1'", NULL, "r2,r0");
    assert_names(f, "params.lr != '0.1'", NULL, "other,r1"); /* r3 has no lr: no match */
    assert_names(f, "metrics.loss < 1", NULL, "other,r1,r0");
    assert_names(f, "metrics.loss <= 0.5", NULL, "other,r1");
    assert_names(f, "metrics.loss > 0.9", NULL, "r2");
    assert_names(f, "metrics.loss >= 0.9", NULL, "r2,r0");
    assert_names(f, "metrics.loss = 0.2", NULL, "r1");
    assert_names(f, "metrics.loss != 0.2", NULL, "other,r2,r0"); /* r3 has no loss */
    assert_names(f, "params.lr = '0.1' AND metrics.loss < 1", NULL, "r0");
    assert_names(f, "tags.team = 'speech' and attributes.status = 'KILLED'", NULL, "other");
    assert_names(f, "attributes.start_time >= 1002 AND attributes.start_time < 1004", NULL,
                 "r3,r2");
    assert_names(f, "attributes.end_time = 2000", NULL, "other,r2,r1,r0");
    assert_names(f, "attributes.user_id = 'tester'", NULL, "other,r3,r2,r1,r0");
    char *filter = mpb_asprintf("attributes.run_id = '%s'", f->runs[2]);
    assert_names(f, filter, NULL, "r2");
    free(filter);
}

static void
order_by_sorts_with_missing_values_last(void **state)
{
    fixture *f = *state;
    assert_names(f, NULL, "metrics.loss", "r1,other,r0,r2,r3");
    assert_names(f, NULL, "metrics.loss DESC", "r2,r0,other,r1,r3");
    assert_names(f, NULL, "attributes.start_time", "r0,r1,r2,r3,other");
    assert_names(f, NULL, "start_time DESC", "other,r3,r2,r1,r0");
    assert_names(f, NULL, "params.lr ASC", "other,r1,r2,r0,r3"); /* ties: start_time DESC */
    assert_names(f, NULL, "attributes.run_name", "other,r0,r1,r2,r3");
    assert_names(f, "tags.team = 'speech'", "tags.team DESC", "other,r2");
    const char *ids[] = {f->exp_id};
    const char *orders[] = {"metrics.loss SIDEWAYS"};
    mpb_search_opts opts = {.order_by = orders, .n_order_by = 1};
    mpb_run_page *page = NULL;
    assert_int_equal(mpb_store_search_runs(f->store, ids, 1, &opts, &page, f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "order_by"));
}

static void
view_types_separate_deleted_runs(void **state)
{
    fixture *f = *state;
    assert_int_equal(mpb_store_delete_run(f->store, f->runs[1], f->err, sizeof f->err), 0);
    char *names = search_names(f, NULL, NULL, MPB_VIEW_ACTIVE_ONLY);
    assert_string_equal(names, "other,r3,r2,r0");
    free(names);
    names = search_names(f, NULL, NULL, MPB_VIEW_DELETED_ONLY);
    assert_string_equal(names, "r1");
    free(names);
    names = search_names(f, NULL, NULL, MPB_VIEW_ALL);
    assert_string_equal(names, "other,r3,r2,r1,r0");
    free(names);
}

static void
nested_runs_are_found_by_parent_tag(void **state)
{
    fixture *f = *state;
    mpb_tag parent = {MPB_TAG_PARENT_RUN_ID, f->runs[0]};
    assert_int_equal(mpb_store_create_run(f->store, f->exp_id, NULL, 5000, "child", &parent, 1,
                                          &f->runs[5], f->err, sizeof f->err),
                     0);
    char *filter = mpb_asprintf("tags.mlflow.parentRunId = '%s'", f->runs[0]);
    assert_names(f, filter, NULL, "child");
    free(filter);
    mpb_run *child = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->runs[5], &child, f->err, sizeof f->err), 0);
    assert_string_equal(mpb__tag_find(child->tags, child->n_tags, MPB_TAG_PARENT_RUN_ID),
                        f->runs[0]);
    assert_non_null(mpb__tag_find(child->tags, child->n_tags, MPB_TAG_USER));
    mpb_run_free(&child);
}

static void
search_arguments_are_checked(void **state)
{
    fixture *f = *state;
    const char *ids[] = {f->exp_id};
    mpb_run_page *page = NULL;
    mpb_search_opts opts = {.max_results = 50001};
    assert_int_equal(mpb_store_search_runs(f->store, ids, 1, &opts, &page, f->err, sizeof f->err),
                     MPB_EINVAL);
    assert_non_null(strstr(f->err, "max_results"));
    opts = (mpb_search_opts){.page_token = "garbage"};
    assert_int_equal(mpb_store_search_runs(f->store, ids, 1, &opts, &page, f->err, sizeof f->err),
                     MPB_EINVAL);
    const char *missing[] = {"4242"};
    assert_int_equal(
        mpb_store_search_runs(f->store, missing, 1, NULL, &page, f->err, sizeof f->err),
        MPB_ENOTFOUND);
    assert_null(page);
    /* Several experiments at once. */
    const char *both[] = {f->exp_id, MPB_DEFAULT_EXPERIMENT_ID};
    char *in_default = th_run(f->store, MPB_DEFAULT_EXPERIMENT_ID, "default-run");
    assert_int_equal(mpb_store_search_runs(f->store, both, 2, NULL, &page, f->err, sizeof f->err),
                     0);
    assert_int_equal(page->n_runs, 6);
    mpb_run_page_free(&page);
    free(in_default);
}

static void
experiments_are_searched_by_name_and_tags(void **state)
{
    fixture *f = *state;
    char *a = th_experiment(f->store, "bench-alpha");
    char *b = th_experiment(f->store, "Bench-Beta");
    assert_int_equal(
        mpb_store_set_experiment_tag(f->store, b, "kind", "bench", f->err, sizeof f->err), 0);
    const struct {
        const char *filter;
        size_t count;
    } cases[] = {
        {NULL, 4},
        {"name = 'bench-alpha'", 1},
        {"name LIKE 'bench%'", 1},
        {"name ILIKE 'bench%'", 2},
        {"attributes.name != 'search'", 3},
        {"tags.kind = 'bench'", 1},
        {"creation_time > 0", 4},
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(cases); i++) {
        mpb_search_opts opts = {.filter = cases[i].filter};
        mpb_experiment_page *page = NULL;
        assert_int_equal(
            mpb_store_search_experiments(f->store, &opts, &page, f->err, sizeof f->err), 0);
        if (page->n_experiments != cases[i].count) {
            fail_msg("'%s': %zu experiments, want %zu", cases[i].filter ? cases[i].filter : "",
                     page->n_experiments, cases[i].count);
        }
        mpb_experiment_page_free(&page);
    }
    const char *orders[] = {"name"};
    mpb_search_opts opts = {.order_by = orders, .n_order_by = 1, .max_results = 3};
    mpb_experiment_page *page = NULL;
    assert_int_equal(mpb_store_search_experiments(f->store, &opts, &page, f->err, sizeof f->err),
                     0);
    assert_int_equal(page->n_experiments, 3);
    assert_string_equal(page->experiments[0].name, "Bench-Beta");
    assert_string_equal(page->experiments[1].name, "Default");
    assert_string_equal(page->experiments[2].name, "bench-alpha");
    assert_non_null(page->next_page_token);
    opts.page_token = page->next_page_token;
    mpb_experiment_page *next = NULL;
    assert_int_equal(mpb_store_search_experiments(f->store, &opts, &next, f->err, sizeof f->err),
                     0);
    assert_int_equal(next->n_experiments, 1);
    assert_string_equal(next->experiments[0].name, "search");
    assert_null(next->next_page_token);
    mpb_experiment_page_free(&next);
    mpb_experiment_page_free(&page);
    assert_int_equal(mpb_store_delete_experiment(f->store, a, f->err, sizeof f->err), 0);
    opts = (mpb_search_opts){.view_type = MPB_VIEW_DELETED_ONLY};
    assert_int_equal(mpb_store_search_experiments(f->store, &opts, &page, f->err, sizeof f->err),
                     0);
    assert_int_equal(page->n_experiments, 1);
    assert_string_equal(page->experiments[0].experiment_id, a);
    assert_string_equal(page->experiments[0].lifecycle_stage, "deleted");
    mpb_experiment_page_free(&page);
    free(a);
    free(b);
}

static int
compare_ids(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 2500 runs, max_results 1000: pages of 1000, 1000, 500; every run once. */
static void
paging_through_2500_runs_sees_each_once(void **state)
{
    (void)state;
    char *dir = th_tempdir_fast();
    mpb_store *store = th_open(dir);
    char *exp = th_experiment(store, "many");
    char err[512];
    enum { N = 2500 };
    char **created = mpb_calloc(N, sizeof *created);
    for (int i = 0; i < N; i++) {
        mpb_tag tag = {"k", i % 2 ? "odd" : "even"};
        assert_int_equal(mpb_store_create_run(store, exp, "u", i % 7, "r", &tag, 1, &created[i],
                                              err, sizeof err),
                         0);
    }
    const char *ids[] = {exp};
    char **seen = mpb_calloc(N, sizeof *seen);
    size_t n_seen = 0;
    size_t sizes[4] = {0};
    int pages = 0;
    char *token = NULL;
    do {
        mpb_search_opts opts = {.max_results = 1000, .page_token = token};
        mpb_run_page *page = NULL;
        assert_int_equal(mpb_store_search_runs(store, ids, 1, &opts, &page, err, sizeof err), 0);
        assert_true(pages < 4);
        sizes[pages++] = page->n_runs;
        for (size_t i = 0; i < page->n_runs; i++) {
            assert_true(n_seen < N);
            seen[n_seen++] = mpb_strdup(page->runs[i].info.run_id);
        }
        free(token);
        token = page->next_page_token ? mpb_strdup(page->next_page_token) : NULL;
        mpb_run_page_free(&page);
    } while (token != NULL);
    assert_int_equal(pages, 3);
    assert_int_equal(sizes[0], 1000);
    assert_int_equal(sizes[1], 1000);
    assert_int_equal(sizes[2], 500);
    qsort(seen, n_seen, sizeof *seen, compare_ids);
    qsort(created, N, sizeof *created, compare_ids);
    assert_int_equal(n_seen, N);
    for (int i = 0; i < N; i++) {
        assert_string_equal(seen[i], created[i]); /* no duplicates, none missing */
        free(seen[i]);
        free(created[i]);
    }
    /* A filtered search pages too: 1250 odd runs = 1000 + 250. */
    mpb_search_opts opts = {.filter = "tags.k = 'odd'"};
    mpb_run_page *page = NULL;
    assert_int_equal(mpb_store_search_runs(store, ids, 1, &opts, &page, err, sizeof err), 0);
    assert_int_equal(page->n_runs, 1000);
    opts.page_token = page->next_page_token;
    mpb_run_page *rest = NULL;
    assert_int_equal(mpb_store_search_runs(store, ids, 1, &opts, &rest, err, sizeof err), 0);
    assert_int_equal(rest->n_runs, 250);
    assert_null(rest->next_page_token);
    mpb_run_page_free(&rest);
    mpb_run_page_free(&page);
    free(seen);
    free(created);
    free(exp);
    mpb_store_destroy(&store);
    th_cleanup(&dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filters_parse_with_every_comparator),
        cmocka_unit_test(bad_filters_say_where_parsing_failed),
        cmocka_unit_test(like_matches_sql_patterns),
        cmocka_unit_test(page_tokens_are_base64_offsets),
        cmocka_unit_test_setup_teardown(run_filters_select_by_attributes_tags_params_metrics, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(order_by_sorts_with_missing_values_last, setup, teardown),
        cmocka_unit_test_setup_teardown(view_types_separate_deleted_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(nested_runs_are_found_by_parent_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(search_arguments_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(experiments_are_searched_by_name_and_tags, setup, teardown),
        cmocka_unit_test(paging_through_2500_runs_sees_each_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
