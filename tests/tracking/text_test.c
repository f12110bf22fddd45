/*
 * Metric values as the file store writes them: the shortest digits that
 * read back as the same double, laid out as Python's repr (whole numbers
 * below 1e16 as plain digits), on the fast path for whole numbers and the
 * general one alike.
 */
#include <math.h>
#include <stdlib.h>

#include "support.h"
#include "tracking/text.h"

static void
values_read_back_exactly(void **state)
{
    (void)state;
    static const struct {
        double value;
        const char *text;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {-1, "-1"},
        {64, "64"},
        {-123456, "-123456"},
        {999999999999999.0, "999999999999999"},
        {1e15, "1000000000000000"}, /* past the fast path, same layout */
        {1e16, "1e+16"},
        {0.1, "0.1"},
        {1.5, "1.5"},
        {-2.25, "-2.25"},
        {1e-5, "1e-05"},
        {0.0001, "0.0001"},
        {123456.789, "123456.789"},
        {1e300, "1e+300"},   /* far past what a long long holds */
        {-1e19, "-1e+19"},
    };
    char out[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mpb__format_double(cases[i].value, out);
        if (strcmp(out, cases[i].text) != 0) {
            fail_msg("%.17g: got '%s', expected '%s'", cases[i].value, out, cases[i].text);
        }
    }
    mpb__format_double(-0.0, out);
    assert_true(strtod(out, NULL) == 0 && signbit(strtod(out, NULL)));
    /* every whole number on the fast path reads back, in its own digits */
    for (long long v = -100000; v <= 100000; v += 7) {
        mpb__format_double((double)v, out);
        assert_int_equal(strtoll(out, NULL, 10), v);
        assert_null(strchr(out, '.'));
    }
    /* and fractions on the general path read back exactly */
    for (int i = 1; i < 2000; i++) {
        double v = (double)i / 7.0;
        mpb__format_double(v, out);
        assert_true(strtod(out, NULL) == v);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_read_back_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
