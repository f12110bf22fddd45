/* Parsing configs from text in the config tests: good ones, and bad ones
 * whose error must contain a given text. */
#ifndef MPB_TESTS_SERVLETS_CONFIG_HELPERS_H
#define MPB_TESTS_SERVLETS_CONFIG_HELPERS_H

#include "support.h"

#include "mpbatch/config.h"

/* The file name in messages. */
#define CONFIG_TEST_NAME "t.yaml"

static inline mpb_config *
parse_ok(const char *text)
{
    mpb_config *config = NULL;
    char err[512] = "";
    if (mpb_config_parse(text, strlen(text), CONFIG_TEST_NAME, &config, err, sizeof err) != 0) {
        fail_msg("unexpected config error: %s", err);
    }
    return config;
}

static inline void
assert_config_error(const char *text, const char *expect)
{
    mpb_config *config = NULL;
    char err[512] = "";
    assert_int_equal(
        mpb_config_parse(text, strlen(text), CONFIG_TEST_NAME, &config, err, sizeof err),
        MPB_ECONFIG);
    assert_null(config);
    if (strstr(err, expect) == NULL) {
        fail_msg("error '%s' does not contain '%s'", err, expect);
    }
}

#endif
