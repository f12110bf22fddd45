/*
 * Helpers of core/util.c that carry behaviour users see: the "did you
 * mean ...?" lookup behind config and option errors.
 */
#include "support.h"

static void
nearest_name_finds_likely_typos_only(void **state)
{
    const char *const fields[] = {"workers", "batch_size", "batch_wait_us", "server", "op"};
    const size_t n = MPB_ARRAY_LEN(fields);
    assert_string_equal(mpb__nearest_name("wrokers", fields, n), "workers");
    assert_string_equal(mpb__nearest_name("batchsize", fields, n), "batch_size");
    assert_string_equal(mpb__nearest_name("sever", fields, n), "server");
    assert_string_equal(mpb__nearest_name("workers", fields, n), "workers");
    /* Long names: a missing suffix still reads as a typo. */
    assert_string_equal(mpb__nearest_name("batch_wait", fields, n), "batch_wait_us");
    /* Far from everything, or too short to tell. */
    assert_null(mpb__nearest_name("per_item_cost", fields, n));
    assert_null(mpb__nearest_name("x", fields, n));
    assert_null(mpb__nearest_name("", fields, n));
    assert_null(mpb__nearest_name("workers", fields, 0));
    /* Equally near: the first wins. */
    const char *const twins[] = {"seed", "sees"};
    assert_string_equal(mpb__nearest_name("see", twins, 2), "seed");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nearest_name_finds_likely_typos_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
