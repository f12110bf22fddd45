/*
 * Helpers for the composite servlet tests: tag pools (tests/plugins/tag.c),
 * streams over arrays of strings that keep every result, and per-servlet
 * counts of the items workers computed (from batch telemetry).
 */
#ifndef MPB_TESTS_SERVLETS_TREE_HELPERS_H
#define MPB_TESTS_SERVLETS_TREE_HELPERS_H

#include "support.h"

/* A pool of the tag plugin named `tag` appending "|tag". */
static inline mpb_servlet *
tag_pool(const char *kind, const char *tag, unsigned workers, const char *extra_option)
{
    static char options[16][64];
    static int next;
    char *option = options[next++ % 16];
    snprintf(option, sizeof options[0], "tag=%s", tag);
    test_pool tp = {.kind = kind,
                    .plugin = test_plugin_path("tag"),
                    .name = tag,
                    .workers = workers,
                    .options = {option, extra_option}};
    return test_pool_servlet(&tp);
}

typedef struct string_stream {
    const char **inputs;
    size_t n;
    size_t next;
    mpb_result **results; /* by index */
    uint64_t out_of_order;
    uint64_t outputs;
} string_stream;

static inline int
string_next(void *ctx, const void **data, size_t *len)
{
    string_stream *s = ctx;
    if (s->next >= s->n) {
        return 0;
    }
    *data = s->inputs[s->next];
    *len = strlen(s->inputs[s->next]);
    s->next++;
    return 1;
}

static inline int
string_output(void *ctx, uint64_t index, const mpb_result *result)
{
    string_stream *s = ctx;
    s->out_of_order += index != s->outputs;
    s->outputs++;
    s->results[index] = mpb_result_copy(result);
    return 0;
}

/* Streams inputs through server (errors in place); returns the results. */
static inline mpb_result **
stream_strings(mpb_server *server, const char **inputs, size_t n)
{
    string_stream s = {.inputs = inputs, .n = n};
    s.results = mpb_calloc(n ? n : 1, sizeof(mpb_result *));
    mpb_stream_options opts = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, string_next, string_output, &s, &opts), 0);
    assert_int_equal(s.outputs, n);
    assert_int_equal(s.out_of_order, 0);
    return s.results;
}

static inline void
free_results(mpb_result **results, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mpb_result_destroy(&results[i]);
    }
    free(results);
}

static inline void
assert_value(const mpb_result *r, const char *expect)
{
    if (mpb_result_is_error(r)) {
        fail_msg("expected '%s', got error %s: %s (%s)", expect, mpb_result_error(r)->type,
                 mpb_result_error(r)->message, mpb_result_error(r)->servlet);
    }
    size_t len;
    const char *value = mpb_result_value(r, &len);
    if (len != strlen(expect) || memcmp(value, expect, len) != 0) {
        fail_msg("expected '%s', got '%.*s'", expect, (int)len, value);
    }
}

static inline void
assert_error(const mpb_result *r, const char *type, const char *servlet)
{
    const mpb_item_error *e = mpb_result_error(r);
    if (e == NULL) {
        size_t len;
        const char *value = mpb_result_value(r, &len);
        fail_msg("expected a %s error, got '%.*s'", type, (int)len, value);
    }
    assert_string_equal(e->type, type);
    assert_string_equal(e->servlet, servlet);
}

/* Items computed per servlet path, from batch telemetry (dispatcher thread;
 * read after the server stopped). */
typedef struct path_counts {
    char paths[16][128];
    uint64_t items[16];
    size_t n;
} path_counts;

static inline void
count_batch(void *ctx, const mpb_batch_telemetry *t)
{
    path_counts *c = ctx;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->paths[i], t->servlet) == 0) {
            c->items[i] += t->size;
            return;
        }
    }
    if (c->n < 16) {
        snprintf(c->paths[c->n], sizeof c->paths[0], "%s", t->servlet);
        c->items[c->n++] = t->size;
    }
}

static inline uint64_t
items_at(const path_counts *c, const char *path)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->paths[i], path) == 0) {
            return c->items[i];
        }
    }
    return 0;
}

#endif
