/*
 * mpb_batch as a plugin sees it: items, the matrix view, values, errors,
 * and the host's settle step that gives every item exactly one outcome.
 */
#include "support.h"

#include "core/batch.h"

static void
matrix_view_needs_no_copy_for_contiguous_items(void **state)
{
    mpb_batch b;
    mpb__batch_init(&b, 1024);
    float rows[3][4] = {{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}};
    for (int i = 0; i < 3; i++) {
        mpb__batch_add(&b, rows[i], sizeof rows[i]);
    }
    size_t row_bytes = 0;
    const float *m = mpb_batch_matrix(&b, &row_bytes);
    assert_ptr_equal(m, &rows[0][0]);
    assert_int_equal(row_bytes, 16);
    mpb__batch_free(&b);
}

static void
matrix_view_copies_scattered_items_once(void **state)
{
    mpb_batch b;
    mpb__batch_init(&b, 1024);
    float a[2] = {1, 2};
    float c[2] = {3, 4};
    mpb__batch_add(&b, c, sizeof c);
    mpb__batch_add(&b, a, sizeof a);
    size_t row_bytes = 0;
    const float *m = mpb_batch_matrix(&b, &row_bytes);
    assert_non_null(m);
    assert_int_equal(row_bytes, 8);
    float expect[4] = {3, 4, 1, 2};
    assert_memory_equal(m, expect, sizeof expect);
    assert_ptr_equal(mpb_batch_matrix(&b, NULL), m);
    /* Different lengths: no matrix. */
    mpb__batch_reset(&b);
    mpb__batch_add(&b, a, 8);
    mpb__batch_add(&b, a, 4);
    assert_null(mpb_batch_matrix(&b, &row_bytes));
    assert_int_equal(row_bytes, 0);
    mpb__batch_free(&b);
}

static void
values_errors_and_settle(void **state)
{
    mpb_batch b;
    mpb__batch_init(&b, 16);
    for (int i = 0; i < 5; i++) {
        mpb__batch_add(&b, "item", 4);
    }
    char scratch[4] = "abc";
    assert_int_equal(mpb_batch_set_value(&b, 0, scratch, 3), 0);
    scratch[0] = 'X'; /* set_value copied */
    assert_int_equal(mpb_batch_set_value_borrowed(&b, 1, "borrowed", 8), 0);
    char *buffer = mpb_batch_value_buffer(&b, 2, 2);
    memcpy(buffer, "vb", 2);
    assert_int_equal(mpb_batch_set_error(&b, 3, "ValueError", "item %d is bad", 3), 0);
    /* item 4 left unset */
    assert_int_equal(mpb_batch_set_value(&b, 9, "x", 1), MPB_EINVAL);
    assert_int_equal(mpb_batch_set_value(&b, 0, "0123456789abcdefg", 17), MPB_ELIMIT);
    assert_null(mpb_batch_value_buffer(&b, 0, 17));
    assert_int_equal(mpb__batch_settle(&b, 0), 2);
    assert_memory_equal(b.results[0].data, "abc", 3);
    assert_memory_equal(b.results[1].data, "borrowed", 8);
    assert_memory_equal(b.results[2].data, "vb", 2);
    assert_string_equal(b.results[3].type, "ValueError");
    assert_string_equal(b.results[3].message, "item 3 is bad");
    assert_string_equal(b.results[4].type, "NoResult");
    mpb__batch_free(&b);
}

static void
failed_call_fails_items_without_errors(void **state)
{
    mpb_batch b;
    mpb__batch_init(&b, 64);
    for (int i = 0; i < 3; i++) {
        mpb__batch_add(&b, "i", 1);
    }
    mpb_batch_set_value(&b, 0, "v", 1);
    mpb_batch_set_error(&b, 1, "Own", "own error");
    mpb_batch_fail(&b, "OutOfMemory", "batch of %d too big", 3);
    assert_int_equal(mpb__batch_settle(&b, -1), 3);
    assert_string_equal(b.results[0].type, "OutOfMemory");
    assert_string_equal(b.results[1].type, "Own");
    assert_string_equal(b.results[2].message, "batch of 3 too big");
    /* A nonzero return without mpb_batch_fail still fails the batch. */
    mpb__batch_reset(&b);
    mpb__batch_add(&b, "i", 1);
    mpb_batch_set_value(&b, 0, "v", 1);
    assert_int_equal(mpb__batch_settle(&b, 7), 1);
    assert_string_equal(b.results[0].type, "WorkerError");
    assert_non_null(strstr(b.results[0].message, "7"));
    mpb__batch_free(&b);
}

static void
output_matrix_rows_become_values(void **state)
{
    mpb_batch b;
    mpb__batch_init(&b, 1024);
    for (int i = 0; i < 4; i++) {
        mpb__batch_add(&b, "in", 2);
    }
    int *out = mpb_batch_output_matrix(&b, 2 * sizeof(int));
    for (int i = 0; i < 8; i++) {
        out[i] = i;
    }
    mpb_batch_set_error(&b, 2, "Skip", "no");
    mpb__batch_settle(&b, 0);
    for (int i = 0; i < 4; i++) {
        if (i == 2) {
            assert_int_equal(b.results[i].outcome, MPB_OUTCOME_ERROR);
            continue;
        }
        const int *row = b.results[i].data;
        assert_int_equal(b.results[i].len, 2 * sizeof(int));
        assert_int_equal(row[0], 2 * i);
        assert_int_equal(row[1], 2 * i + 1);
    }
    mpb__batch_free(&b);
}

static void
an_error_set_before_the_output_matrix_stays(void **state)
{
    mpb_batch b;
    mpb__batch_init(&b, 1024);
    for (int i = 0; i < 3; i++) {
        mpb__batch_add(&b, "in", 2);
    }
    mpb_batch_set_error(&b, 0, "Skip", "checked first");
    char *out = mpb_batch_output_matrix(&b, 4);
    memcpy(out, "row0row1row2", 12);
    assert_int_equal(mpb__batch_settle(&b, 0), 1);
    assert_int_equal(b.results[0].outcome, MPB_OUTCOME_ERROR);
    assert_string_equal(b.results[0].type, "Skip");
    assert_int_equal(b.results[1].outcome, MPB_OUTCOME_VALUE);
    assert_memory_equal(b.results[2].data, "row2", 4);
    mpb__batch_free(&b);
}

static void
empty_items_make_a_matrix_of_empty_rows(void **state)
{
    /* items of no bytes may come with no data pointer (a queue that never
     * held a byte): still a matrix, of rows of 0 bytes */
    mpb_batch b;
    mpb__batch_init(&b, 1024);
    mpb__batch_add(&b, NULL, 0);
    mpb__batch_add(&b, NULL, 0);
    size_t row_bytes = 99;
    assert_non_null(mpb_batch_matrix(&b, &row_bytes));
    assert_int_equal(row_bytes, 0);
    /* an empty value may be given as NULL */
    assert_int_equal(mpb_batch_set_value(&b, 0, NULL, 0), 0);
    assert_int_equal(b.results[0].outcome, MPB_OUTCOME_VALUE);
    assert_int_equal(b.results[0].len, 0);
    mpb__batch_free(&b);
}

static void
value_buffers_stay_put(void **state)
{
    mpb_batch b;
    mpb__batch_init(&b, 1 << 20);
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        mpb__batch_add(&b, "x", 1);
    }
    char *buffers[N];
    for (int i = 0; i < N; i++) {
        buffers[i] = mpb_batch_value_buffer(&b, (size_t)i, 1000); /* spans many arena blocks */
        memset(buffers[i], 'a' + i % 26, 1000);
    }
    mpb__batch_settle(&b, 0);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(b.results[i].data, buffers[i]);
        assert_int_equal(((const char *)b.results[i].data)[999], 'a' + i % 26);
    }
    mpb__batch_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matrix_view_needs_no_copy_for_contiguous_items),
        cmocka_unit_test(matrix_view_copies_scattered_items_once),
        cmocka_unit_test(values_errors_and_settle),
        cmocka_unit_test(failed_call_fails_items_without_errors),
        cmocka_unit_test(output_matrix_rows_become_values),
        cmocka_unit_test(an_error_set_before_the_output_matrix_stays),
        cmocka_unit_test(empty_items_make_a_matrix_of_empty_rows),
        cmocka_unit_test(value_buffers_stay_put),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
