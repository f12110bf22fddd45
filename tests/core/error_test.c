#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "mpbatch/error.h"

static void
os_errors_are_negative_errno(void **state)
{
    assert_int_equal(MPB_EINVAL, -EINVAL);
    assert_int_equal(MPB_ETIMEDOUT, -ETIMEDOUT);
    assert_int_equal(mpb_status_from_errno(ENOENT), MPB_ENOENT);
}

static void
names_and_texts_come_from_one_table(void **state)
{
    assert_string_equal(mpb_err_name(MPB_ECLOSED), "MPB_ECLOSED");
    assert_string_equal(mpb_err_name(MPB_EPROTO), "MPB_EPROTO");
    assert_string_equal(mpb_err_name(0), "MPB_OK");
    assert_string_equal(mpb_err_name(-99999), "MPB_UNKNOWN");
    assert_string_equal(mpb_strerror(MPB_ETIMEDOUT), "timed out");
    assert_non_null(strstr(mpb_strerror(MPB_EPROTO), "protocol"));
    assert_true(MPB_ECLOSED <= -4000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(os_errors_are_negative_errno),
        cmocka_unit_test(names_and_texts_come_from_one_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
