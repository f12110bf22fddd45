/*
 * The server's observers beside per-batch telemetry: a record per item
 * (its number, servlet, error type, latency, and the batch it rode in,
 * matching the batches workers reported) and interval telemetry whose
 * intervals add up to everything the server did.
 */
#include "support.h"

#define N_ITEMS 400
#define BAD_EVERY 7

typedef struct seen {
    /* per item */
    int times[N_ITEMS];
    uint32_t batch[N_ITEMS];
    int error[N_ITEMS];
    int wrong_input;
    int wrong_servlet;
    int64_t max_latency_us;
    /* per batch: its size by number */
    uint32_t batch_size[N_ITEMS + 1];
    uint32_t batches;
    /* per interval */
    uint64_t intervals;
    uint64_t interval_items;
    uint64_t pool_items;
    uint64_t pool_errors;
    uint64_t typed_errors;
    uint64_t batches_in_intervals;
    int indices_in_order;
    int workers_seen_alive;
    int p99_below_p50;
} seen;

static void
on_item(void *ctx, const mpb_item_record *r)
{
    seen *s = ctx;
    assert_true(r->index < N_ITEMS);
    s->times[r->index]++;
    s->batch[r->index] = r->batch;
    s->error[r->index] = r->error_type != NULL;
    char expect[32];
    snprintf(expect, sizeof expect, "%s%llu", r->index % BAD_EVERY == 0 ? "bad" : "ok",
             (unsigned long long)r->index);
    s->wrong_input += r->input_len != strlen(expect) || memcmp(r->input, expect, r->input_len);
    if (r->error_type == NULL) {
        s->wrong_input += r->value_len != r->input_len || memcmp(r->value, expect, r->value_len);
    } else {
        s->wrong_input += strcmp(r->error_type, "ValueError") != 0;
    }
    s->wrong_servlet += strcmp(r->servlet, "fail") != 0;
    s->max_latency_us = r->latency_us > s->max_latency_us ? r->latency_us : s->max_latency_us;
}

static void
on_batch(void *ctx, const mpb_batch_telemetry *t)
{
    seen *s = ctx;
    assert_true(t->seq == s->batches + 1); /* numbered 1, 2, ... as they arrive */
    assert_true(t->seq <= N_ITEMS);
    s->batch_size[t->seq] = t->size;
    s->batches++;
}

static void
on_interval(void *ctx, const mpb_interval_telemetry *t)
{
    seen *s = ctx;
    s->indices_in_order += t->index == s->intervals;
    s->intervals++;
    s->interval_items += t->server.items;
    assert_int_equal(t->n_servlets, 1);
    const mpb_servlet_interval *p = &t->servlets[0];
    assert_string_equal(p->servlet, "fail");
    s->pool_items += p->items;
    s->pool_errors += p->errors;
    for (size_t i = 0; i < p->n_error_types; i++) {
        assert_string_equal(p->errors_by_type[i].type, "ValueError");
        s->typed_errors += p->errors_by_type[i].count;
    }
    s->batches_in_intervals += p->batches;
    s->workers_seen_alive += p->workers_alive == 2 && p->workers_wanted == 2;
    s->p99_below_p50 += p->p99_us < p->p50_us;
    assert_true(t->seconds > 0);
    assert_true(t->coordinator_rss_bytes > 0);
}

static int
paced_next(void *ctx, const void **data, size_t *len)
{
    static char text[32];
    uint64_t *next = ctx;
    if (*next == N_ITEMS) {
        return 0;
    }
    if (*next % 100 == 0) {
        usleep(60000); /* spread the items over several intervals */
    }
    snprintf(text, sizeof text, "%s%llu", *next % BAD_EVERY == 0 ? "bad" : "ok",
             (unsigned long long)*next);
    *data = text;
    *len = strlen(text);
    (*next)++;
    return 1;
}

static int
ignore(void *ctx, uint64_t index, const mpb_result *result)
{
    (void)ctx;
    (void)index;
    (void)result;
    return 0;
}

static void
items_and_intervals_add_up(void **state)
{
    (void)state;
    seen *s = mpb_calloc(1, sizeof *s);
    test_pool tp = {.kind = "process",
                    .plugin = "fail",
                    .workers = 2,
                    .batch_size = 4,
                    .batch_wait_us = 2000,
                    .options = {"fail_prefix=bad"}};
    mpb_servlet *root = test_pool_servlet(&tp);
    mpb_server_options opts;
    mpb_server_options_init(&opts);
    opts.on_item = on_item;
    opts.on_item_ctx = s;
    opts.on_batch = on_batch;
    opts.on_batch_ctx = s;
    opts.on_interval = on_interval;
    opts.on_interval_ctx = s;
    opts.interval_ms = 50;
    mpb_server *server = test_server_over(&root, &opts);
    uint64_t next = 0;
    mpb_stream_options so = {.return_exceptions = 1};
    assert_int_equal(mpb_server_stream(server, paced_next, ignore, &next, &so), 0);
    mpb_server_stop(server);

    /* one record per item, each in a batch the workers reported */
    uint32_t in_batch[N_ITEMS + 1] = {0};
    int errors = 0;
    for (size_t i = 0; i < N_ITEMS; i++) {
        assert_int_equal(s->times[i], 1);
        assert_true(s->batch[i] >= 1 && s->batch[i] <= s->batches);
        in_batch[s->batch[i]]++;
        errors += s->error[i];
        assert_int_equal(s->error[i], i % BAD_EVERY == 0);
    }
    for (uint32_t b = 1; b <= s->batches; b++) {
        assert_int_equal(in_batch[b], s->batch_size[b]); /* the batch's items, no more */
        assert_true(s->batch_size[b] >= 1 && s->batch_size[b] <= 4);
    }
    assert_int_equal(s->wrong_input, 0);
    assert_int_equal(s->wrong_servlet, 0);
    assert_true(s->max_latency_us > 0);

    /* the intervals, the last one at stop, add up to the whole run */
    assert_true(s->intervals >= 3);
    assert_int_equal(s->indices_in_order, s->intervals);
    assert_int_equal(s->interval_items, N_ITEMS);
    assert_int_equal(s->pool_items, N_ITEMS);
    assert_int_equal(s->pool_errors, errors);
    assert_int_equal(s->typed_errors, errors);
    assert_int_equal(s->batches_in_intervals, s->batches);
    assert_true(s->workers_seen_alive >= 1);
    assert_int_equal(s->p99_below_p50, 0);
    mpb_server_destroy(&server);
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(items_and_intervals_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
