/*
 * Golden tests of the file store layout: every file and every meta.yaml field
 * the store writes is compared, both ways, with the tables of
 * docs/tracking-format.md (the <!-- golden:... --> blocks). What the files
 * hold and what MLflow's own files read as: filestore_compat_test.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>

#include "helpers.h"
#include "tracking/text.h"

typedef struct rows {
    char *cells[64][4];
    int n_rows;
    int n_cells[64];
} rows;

static char *
doc_text(void)
{
    const char *source = getenv("MPB_SOURCE_DIR");
    char *path;
    if (source != NULL && *source) {
        path = th_pathf("%s/docs/tracking-format.md", source);
    } else {
        const char *file = __FILE__;
        const char *cut = strstr(file, "/tests/tracking/");
        assert_non_null(cut);
        path = th_pathf("%.*s/docs/tracking-format.md", (int)(cut - file), file);
    }
    char *text = th_read(path);
    if (text == NULL) {
        fail_msg("cannot read %s", path);
    }
    free(path);
    return text;
}

static char *
trim_cell(const char *start, const char *end)
{
    while (start < end && isspace((unsigned char)*start)) {
        start++;
    }
    while (end > start && isspace((unsigned char)end[-1])) {
        end--;
    }
    if (end - start >= 2 && *start == '`' && end[-1] == '`') {
        start++;
        end--;
    }
    return mpb_strndup(start, (size_t)(end - start));
}

/* The body of one golden block. Caller frees. */
static char *
golden_block(const char *doc, const char *name)
{
    char *marker = th_pathf("<!-- golden:%s -->", name);
    const char *start = strstr(doc, marker);
    if (start == NULL) {
        fail_msg("docs/tracking-format.md has no block %s", marker);
    }
    start += strlen(marker);
    const char *end = strstr(start, "<!-- /golden -->");
    assert_non_null(end);
    free(marker);
    return mpb_strndup(start, (size_t)(end - start));
}

/* Table rows of a golden block, without the header and separator rows. */
static void
golden_rows(const char *doc, const char *name, rows *out)
{
    char *block = golden_block(doc, name);
    memset(out, 0, sizeof *out);
    int line_no = 0;
    for (char *save = NULL, *line = strtok_r(block, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        while (isspace((unsigned char)*line)) {
            line++;
        }
        if (*line != '|') {
            continue;
        }
        if (line_no++ < 2) {
            continue; /* header and |---| */
        }
        assert_true(out->n_rows < 64);
        int cell = 0;
        const char *at = line + 1;
        for (const char *bar = strchr(at, '|'); bar && cell < 4; bar = strchr(at, '|')) {
            out->cells[out->n_rows][cell++] = trim_cell(at, bar);
            at = bar + 1;
        }
        out->n_cells[out->n_rows++] = cell;
    }
    free(block);
}

static void
rows_free(rows *r)
{
    for (int i = 0; i < r->n_rows; i++) {
        for (int k = 0; k < r->n_cells[i]; k++) {
            free(r->cells[i][k]);
        }
    }
}

/* ---- The tree ---- */

typedef struct tree {
    char *paths[256];
    int n;
} tree;

static void
walk_tree(const char *root, const char *rel, tree *out)
{
    char *dir = rel[0] ? mpb__path_join(root, rel) : mpb_strdup(root);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(mpb__fs_list(dir, 0, &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        char *child_rel = rel[0] ? th_pathf("%s/%s", rel, names[i]) : mpb_strdup(names[i]);
        char *child = mpb__path_join(root, child_rel);
        struct stat st;
        assert_int_equal(lstat(child, &st), 0);
        assert_true(out->n < 256);
        if (S_ISDIR(st.st_mode)) {
            out->paths[out->n++] = th_pathf("%s/", child_rel);
            walk_tree(root, child_rel, out);
        } else {
            assert_true(S_ISREG(st.st_mode));
            out->paths[out->n++] = mpb_strdup(child_rel);
        }
        free(child);
        free(child_rel);
    }
    mpb__fs_names_free(names, n);
    free(dir);
}

/* Replaces ids and keys of an actual path by the doc's placeholders. */
static char *
to_pattern(const char *path, const char *exp_id, const char *run_id)
{
    char *copy = mpb_strdup(path);
    mpb__strbuf out = {0};
    int depth = 0;
    int in_values = 0;
    char *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        const char *shown = part;
        if (depth == 0 && strcmp(part, exp_id) == 0) {
            shown = "<exp>";
        } else if (depth == 1 && strcmp(part, run_id) == 0) {
            shown = "<run>";
        } else if (in_values) {
            shown = "<key>";
        }
        if (!in_values || out.len == 0 || strcmp(out.text + out.len - 5, "<key>") != 0) {
            mpb__strbuf_printf(&out, "%s%s", depth ? "/" : "", shown);
        }
        in_values = in_values || strcmp(part, "metrics") == 0 || strcmp(part, "params") == 0 ||
                    strcmp(part, "tags") == 0;
        depth++;
    }
    if (path[strlen(path) - 1] == '/') {
        mpb__strbuf_puts(&out, "/");
    }
    free(copy);
    return mpb__strbuf_take(&out);
}

static void
tree_matches_docs_both_ways(void **state)
{
    th_fixture *f = *state;
    char *doc = doc_text();
    rows documented;
    golden_rows(doc, "tree", &documented);
    assert_true(documented.n_rows >= 10);
    tree actual = {0};
    walk_tree(f->root, "", &actual);
    int seen[64] = {0};
    for (int i = 0; i < actual.n; i++) {
        char *pattern = to_pattern(actual.paths[i], f->exp_id, f->run_id);
        int found = 0;
        for (int r = 0; r < documented.n_rows; r++) {
            if (strcmp(documented.cells[r][0], pattern) == 0) {
                found = 1;
                seen[r] = 1;
                const char *kind = documented.cells[r][1];
                assert_string_equal(kind, pattern[strlen(pattern) - 1] == '/' ? "dir" : "file");
            }
        }
        if (!found) {
            fail_msg("the store wrote %s (pattern %s), which the docs do not list", actual.paths[i],
                     pattern);
        }
        free(pattern);
        free(actual.paths[i]);
    }
    for (int r = 0; r < documented.n_rows; r++) {
        if (!seen[r]) {
            fail_msg("the docs list %s, which the store did not write", documented.cells[r][0]);
        }
    }
    rows_free(&documented);
    free(doc);
}

/* ---- meta.yaml fields ---- */

typedef struct meta_line {
    char key[64];
    char value[1024];
} meta_line;

static int
read_meta_lines(const char *path, meta_line *lines, int max)
{
    char *text = th_read(path);
    assert_non_null(text);
    int n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *colon = strstr(line, ": ");
        if (colon == NULL) {
            fail_msg("%s: line '%s' is not 'key: value'", path, line);
        }
        assert_true(n < max);
        snprintf(lines[n].key, sizeof lines[n].key, "%.*s", (int)(colon - line), line);
        snprintf(lines[n].value, sizeof lines[n].value, "%s", colon + 2);
        n++;
    }
    free(text);
    return n;
}

static int
value_has_type(const char *value, const char *type)
{
    int is_int = value[0] != '\0';
    for (const char *p = value[0] == '-' ? value + 1 : value; *p; p++) {
        is_int = is_int && isdigit((unsigned char)*p);
    }
    size_t len = strlen(value);
    int is_string = len >= 2 && value[0] == '"' && value[len - 1] == '"';
    int is_null = strcmp(value, "null") == 0;
    if (strncmp(type, "string", 6) == 0) {
        return is_string;
    }
    if (strncmp(type, "int-or-null", 11) == 0) {
        return is_int || is_null;
    }
    if (strncmp(type, "int", 3) == 0) {
        return is_int;
    }
    if (strncmp(type, "list", 4) == 0) {
        return strcmp(value, "[]") == 0;
    }
    return 0;
}

/* Fields in the file == fields in the docs (optional ones may be absent),
 * with the documented types, sorted by key. */
static void
check_meta_against_docs(const char *meta_path, const char *block, const char *must_have_optional,
                        const char *must_lack_optional)
{
    char *doc = doc_text();
    rows documented;
    golden_rows(doc, block, &documented);
    meta_line lines[32];
    int n = read_meta_lines(meta_path, lines, 32);
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            assert_true(strcmp(lines[i - 1].key, lines[i].key) < 0);
        }
        int found = 0;
        for (int r = 0; r < documented.n_rows; r++) {
            if (strcmp(documented.cells[r][0], lines[i].key) == 0) {
                found = 1;
                if (!value_has_type(lines[i].value, documented.cells[r][1])) {
                    fail_msg("%s: %s: %s is not of documented type %s", meta_path, lines[i].key,
                             lines[i].value, documented.cells[r][1]);
                }
            }
        }
        if (!found) {
            fail_msg("%s has field %s, which the docs do not list", meta_path, lines[i].key);
        }
    }
    for (int r = 0; r < documented.n_rows; r++) {
        int present = 0;
        for (int i = 0; i < n; i++) {
            present = present || strcmp(lines[i].key, documented.cells[r][0]) == 0;
        }
        int optional = strstr(documented.cells[r][1], "optional") != NULL;
        if (!present && !optional) {
            fail_msg("%s lacks documented field %s", meta_path, documented.cells[r][0]);
        }
        if (must_have_optional && strcmp(documented.cells[r][0], must_have_optional) == 0) {
            assert_true(present);
        }
        if (must_lack_optional && strcmp(documented.cells[r][0], must_lack_optional) == 0) {
            assert_false(present);
        }
    }
    rows_free(&documented);
    free(doc);
}

static const char *
meta_value(const meta_line *lines, int n, const char *key)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(lines[i].key, key) == 0) {
            return lines[i].value;
        }
    }
    fail_msg("no field %s", key);
    return NULL;
}

static void
experiment_meta_matches_docs(void **state)
{
    th_fixture *f = *state;
    char *meta = th_pathf("%s/%s/meta.yaml", f->root, f->exp_id);
    check_meta_against_docs(meta, "experiment-meta", NULL, NULL);
    meta_line lines[32];
    int n = read_meta_lines(meta, lines, 32);
    char *quoted_id = th_pathf("\"%s\"", f->exp_id);
    assert_string_equal(meta_value(lines, n, "experiment_id"), quoted_id);
    assert_string_equal(meta_value(lines, n, "name"), "\"exp-a\"");
    assert_string_equal(meta_value(lines, n, "lifecycle_stage"), "\"active\"");
    char *location = th_pathf("\"file://%s/%s\"", f->root, f->exp_id);
    assert_string_equal(meta_value(lines, n, "artifact_location"), location);
    assert_int_equal(strlen(f->exp_id), 18);
    assert_true(f->exp_id[0] >= '1' && f->exp_id[0] <= '9');
    free(location);
    free(quoted_id);
    free(meta);

    char *tag = th_pathf("%s/%s/tags/team", f->root, f->exp_id);
    th_assert_file(tag, "vision");
    free(tag);

    meta = th_pathf("%s/0/meta.yaml", f->root);
    check_meta_against_docs(meta, "experiment-meta", NULL, NULL);
    n = read_meta_lines(meta, lines, 32);
    assert_string_equal(meta_value(lines, n, "experiment_id"), "\"0\"");
    assert_string_equal(meta_value(lines, n, "name"), "\"Default\"");
    free(meta);
}

static void
run_meta_matches_docs_through_its_life(void **state)
{
    th_fixture *f = *state;
    char err[512] = "";
    char *meta = th_pathf("%s/%s/%s/meta.yaml", f->root, f->exp_id, f->run_id);
    check_meta_against_docs(meta, "run-meta", "deleted_time", NULL);
    meta_line lines[32];
    int n = read_meta_lines(meta, lines, 32);
    char *quoted = th_pathf("\"%s\"", f->run_id);
    assert_string_equal(meta_value(lines, n, "run_id"), quoted);
    assert_string_equal(meta_value(lines, n, "run_uuid"), quoted);
    assert_string_equal(meta_value(lines, n, "status"), "1");
    assert_string_equal(meta_value(lines, n, "end_time"), "null");
    assert_string_equal(meta_value(lines, n, "deleted_time"), "null");
    assert_string_equal(meta_value(lines, n, "source_type"), "4");
    assert_string_equal(meta_value(lines, n, "tags"), "[]");
    assert_string_equal(meta_value(lines, n, "run_name"), "\"first-run\"");
    assert_string_equal(meta_value(lines, n, "user_id"), "\"tester\"");
    char *uri = th_pathf("\"file://%s/%s/%s/artifacts\"", f->root, f->exp_id, f->run_id);
    assert_string_equal(meta_value(lines, n, "artifact_uri"), uri);
    free(uri);
    free(quoted);

    assert_int_equal(
        mpb_store_update_run(f->store, f->run_id, MPB_RUN_FINISHED, 5000, NULL, err, sizeof err),
        0);
    check_meta_against_docs(meta, "run-meta", NULL, "deleted_time");
    n = read_meta_lines(meta, lines, 32);
    assert_string_equal(meta_value(lines, n, "status"), "3");
    assert_string_equal(meta_value(lines, n, "end_time"), "5000");

    assert_int_equal(mpb_store_delete_run(f->store, f->run_id, err, sizeof err), 0);
    check_meta_against_docs(meta, "run-meta", "deleted_time", NULL);
    n = read_meta_lines(meta, lines, 32);
    assert_string_equal(meta_value(lines, n, "lifecycle_stage"), "\"deleted\"");
    assert_true(isdigit((unsigned char)meta_value(lines, n, "deleted_time")[0]));

    assert_int_equal(mpb_store_restore_run(f->store, f->run_id, err, sizeof err), 0);
    check_meta_against_docs(meta, "run-meta", NULL, "deleted_time");
    free(meta);

    char *name_tag = th_pathf("%s/%s/%s/tags/mlflow.runName", f->root, f->exp_id, f->run_id);
    char *user_tag = th_pathf("%s/%s/%s/tags/mlflow.user", f->root, f->exp_id, f->run_id);
    th_assert_file(name_tag, "first-run");
    th_assert_file(user_tag, "tester");
    free(name_tag);
    free(user_tag);
}

static void
metric_lines_and_values_match_docs(void **state)
{
    th_fixture *f = *state;
    char *doc = doc_text();
    char *line_block = golden_block(doc, "metric-line");
    assert_non_null(strstr(line_block, "`<timestamp_ms> <value> <step>\\n`"));
    free(line_block);
    rows values;
    golden_rows(doc, "metric-values", &values);
    assert_true(values.n_rows >= 9);
    mpb_metric metrics[64];
    for (int r = 0; r < values.n_rows; r++) {
        metrics[r] = (mpb_metric){"vals", strtod(values.cells[r][0], NULL), 1000 + r, r - 2};
    }
    char err[512] = "";
    assert_int_equal(mpb_store_log_batch(f->store, f->run_id, metrics, (size_t)values.n_rows, NULL,
                                         0, NULL, 0, err, sizeof err),
                     0);
    char *path = th_pathf("%s/%s/%s/metrics/vals", f->root, f->exp_id, f->run_id);
    char *text = th_read(path);
    mpb__strbuf expected = {0};
    for (int r = 0; r < values.n_rows; r++) {
        mpb__strbuf_printf(&expected, "%d %s %d\n", 1000 + r, values.cells[r][1], r - 2);
    }
    assert_string_equal(text, expected.text);
    mpb__strbuf_clear(&expected);
    free(text);
    free(path);

    /* Values read back exactly, non-finite ones included. */
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, f->run_id, "vals", &history, err, sizeof err), 0);
    assert_int_equal(history->n_metrics, values.n_rows);
    for (int r = 0; r < values.n_rows; r++) {
        double want = metrics[r].value;
        double got = history->metrics[r].value;
        assert_true(isnan(want) ? isnan(got) : got == want);
        assert_int_equal(history->metrics[r].step, r - 2);
    }
    mpb_metric_history_free(&history);
    rows_free(&values);
    free(doc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tree_matches_docs_both_ways, th_sample_setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(experiment_meta_matches_docs, th_sample_setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(run_meta_matches_docs_through_its_life, th_sample_setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(metric_lines_and_values_match_docs, th_sample_setup,
                                        th_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
