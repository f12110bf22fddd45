/*
 * The per-item table: sampling (every item up to first, then 1 in every,
 * at most max rows) and the JSON it writes, which must always decode as
 * UTF-8: payloads that are not printable, well-formed UTF-8 (overlong
 * forms, surrogates, control bytes) go as base64, names get U+FFFD for
 * bytes that are not UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "support.h"
#include "tracking/item_table.h"

static char *
written(const mpb__item_table *t)
{
    char path[] = "/tmp/mpb-item-table-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[256] = "";
    assert_int_equal(mpb__item_table_write(t, path, err, sizeof err), 0);
    FILE *f = fopen(path, "r");
    char *text = mpb_calloc(1, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    return text;
}

static void
add(mpb__item_table *t, uint64_t index, const char *servlet, const char *error_type,
    const void *input, size_t input_len)
{
    mpb_item_record r = {.index = index,
                         .servlet = servlet,
                         .error_type = error_type,
                         .latency_us = 7,
                         .batch = 3,
                         .input = input,
                         .input_len = input_len,
                         .value = error_type ? NULL : input,
                         .value_len = error_type ? 0 : input_len};
    mpb__item_table_add(t, &r);
}

static void
what_is_not_utf8_is_encoded(void **state)
{
    (void)state;
    mpb__item_table *t = mpb__item_table_new(100, 0, 100, 64);
    add(t, 0, "m", NULL, "h\xc3\xa9llo", 6);     /* UTF-8: kept as text */
    add(t, 1, "m", NULL, "\xc0\xaf", 2);         /* overlong '/' */
    add(t, 2, "m", NULL, "\xed\xa0\x80", 3);     /* a surrogate */
    add(t, 3, "m", NULL, "base64:abc", 10);      /* looks encoded: encoded */
    add(t, 4, "q\"x", "Bad\xff", "\x01\x02", 2); /* control bytes; a bad name */
    char *json = written(t);
    assert_non_null(
        strstr(json, "[0, \"m\", \"ok\", null, 7, 3, \"h\xc3\xa9llo\", \"h\xc3\xa9llo\"]"));
    assert_non_null(
        strstr(json, "[1, \"m\", \"ok\", null, 7, 3, \"base64:wK8=\", \"base64:wK8=\"]"));
    assert_non_null(strstr(json, "\"base64:7aCA\""));
    assert_non_null(strstr(json, "\"base64:YmFzZTY0OmFiYw==\""));
    assert_non_null(
        strstr(json, "[4, \"q\\\"x\", \"error\", \"Bad\\ufffd\", 7, 3, \"base64:AQI=\", null]"));
    /* nothing outside ASCII but the one well-formed name */
    for (const unsigned char *p = (const unsigned char *)json; *p; p++) {
        assert_true(*p < 0x80 || *p == 0xc3 || *p == 0xa9);
    }
    free(json);
    mpb__item_table_free(&t);
}

static void
sampling_counts_add_up(void **state)
{
    (void)state;
    mpb__item_table *t = mpb__item_table_new(10, 4, 15, 0);
    for (uint64_t i = 0; i < 50; i++) {
        add(t, i, "m", NULL, "x", 1);
    }
    /* 0..9 kept; then 10, 14, 18, ... 46 sampled (10 of them): 5 fit */
    assert_int_equal(mpb__item_table_rows(t), 15);
    assert_int_equal(mpb__item_table_sampled_out(t), 30);
    assert_int_equal(mpb__item_table_dropped(t), 5);
    char *json = written(t);
    assert_non_null(strstr(json, "[\"index\", \"servlet\", \"status\", \"error_type\", "
                                 "\"latency_us\", \"batch\"]"));
    assert_non_null(strstr(json, "[26, \"m\""));
    assert_null(strstr(json, "[27, \"m\""));
    assert_null(strstr(json, "[30, \"m\""));
    free(json);
    mpb__item_table_free(&t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(what_is_not_utf8_is_encoded),
        cmocka_unit_test(sampling_counts_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
