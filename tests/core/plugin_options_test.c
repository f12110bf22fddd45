/*
 * Options against a plugin's declarations (core/plugin_options.c): unknown
 * names with and without a near match, good and bad values of each type,
 * and plugins that declare nothing.
 */
#include "support.h"

#include "core/options.h"
#include "core/plugin.h"

static const mpb_option_def demo_options[] = {
    {"count", MPB_OPTION_INT, "3", "how many"},
    {"ratio", MPB_OPTION_FLOAT, "0.5", "a share"},
    {"verbose", MPB_OPTION_BOOL, "false", "talk more"},
    {"label", MPB_OPTION_STRING, NULL, "any text"},
    {"batch_cost_us", MPB_OPTION_INT, "1000", "cost per call"},
    {0},
};

static int
noop_call(void *state, mpb_batch *batch)
{
    return 0;
}

static const mpb_worker_def demo = {
    .abi_version = MPB_WORKER_ABI_VERSION,
    .name = "demo",
    .call = noop_call,
    .options = demo_options,
};

/* Checks key=value against demo; returns the status, message in err. */
static int
check(const mpb_worker_def *def, const char *key, const char *value, char *err, size_t err_len)
{
    err[0] = '\0';
    return mpb__plugin_check_option(def, key, value, err, err_len);
}

static void
unknown_names_get_a_hint_or_the_known_names(void **state)
{
    char err[256];
    assert_int_equal(check(&demo, "cuont", "1", err, sizeof err), MPB_ECONFIG);
    assert_string_equal(err, "unknown option cuont of plugin demo (did you mean count?)");
    assert_int_equal(check(&demo, "batch_cost", "1", err, sizeof err), MPB_ECONFIG);
    assert_string_equal(err, "unknown option batch_cost of plugin demo (did you mean "
                             "batch_cost_us?)");
    assert_int_equal(check(&demo, "per_batch_us", "1", err, sizeof err), MPB_ECONFIG);
    assert_string_equal(err, "unknown option per_batch_us of plugin demo (known: count, ratio, "
                             "verbose, label, batch_cost_us)");
    /* Names are compared exactly. */
    assert_int_equal(check(&demo, "Count", "1", err, sizeof err), MPB_ECONFIG);
}

static void
a_long_list_of_names_is_cut_short(void **state)
{
    static const mpb_option_def many[] = {
        {"alpha", MPB_OPTION_STRING, NULL, NULL},
        {"bravo", MPB_OPTION_STRING, NULL, NULL},
        {"charlie", MPB_OPTION_STRING, NULL, NULL},
        {"delta", MPB_OPTION_STRING, NULL, NULL},
        {"echo", MPB_OPTION_STRING, NULL, NULL},
        {"foxtrot", MPB_OPTION_STRING, NULL, NULL},
        {"golf", MPB_OPTION_STRING, NULL, NULL},
        {"hotel", MPB_OPTION_STRING, NULL, NULL},
        {"india", MPB_OPTION_STRING, NULL, NULL},
        {"juliett", MPB_OPTION_STRING, NULL, NULL},
        {0},
    };
    mpb_worker_def def = demo;
    def.options = many;
    char err[256];
    assert_int_equal(check(&def, "zulu_zulu", "1", err, sizeof err), MPB_ECONFIG);
    assert_string_equal(err, "unknown option zulu_zulu of plugin demo (known: alpha, bravo, "
                             "charlie, delta, echo, foxtrot, golf, hotel and 2 more)");
}

static void
each_type_takes_its_values_and_refuses_others(void **state)
{
    static const struct {
        const char *key;
        const char *value;
        int ok;
    } cases[] = {
        {"count", "42", 1},      {"count", "-7", 1},
        {"count", "010", 1}, /* decimal: ten */
        {"count", "abc", 0},     {"count", "4.5", 0},
        {"count", "", 0},        {"count", "12abc", 0},
        {"count", "0x10", 0},    {"count", "99999999999999999999", 0}, /* out of range */
        {"ratio", "1.5", 1},     {"ratio", "-2", 1},
        {"ratio", "1e-3", 1},    {"ratio", "nan", 0},
        {"ratio", "inf", 0},     {"ratio", "1e999", 0},
        {"ratio", "1.5x", 0},    {"ratio", "", 0},
        {"verbose", "true", 1},  {"verbose", "false", 1},
        {"verbose", "yes", 1},   {"verbose", "no", 1},
        {"verbose", "1", 1},     {"verbose", "0", 1},
        {"verbose", "TRUE", 1},  {"verbose", "2", 0},
        {"verbose", "maybe", 0}, {"verbose", "", 0},
        {"label", "", 1},        {"label", "anything at all: 1.5, true, 0x10", 1},
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(cases); i++) {
        char err[256];
        int rc = check(&demo, cases[i].key, cases[i].value, err, sizeof err);
        if ((rc == 0) != cases[i].ok) {
            fail_msg("%s=%s: got %d (%s)", cases[i].key, cases[i].value, rc, err);
        }
        if (!cases[i].ok) {
            assert_int_equal(rc, MPB_ECONFIG);
        }
    }
}

static void
bad_values_are_quoted_in_the_message(void **state)
{
    char err[256];
    check(&demo, "count", "abc", err, sizeof err);
    assert_string_equal(err, "option count of plugin demo must be an integer (got 'abc')");
    check(&demo, "ratio", "fast", err, sizeof err);
    assert_string_equal(err, "option ratio of plugin demo must be a number (got 'fast')");
    check(&demo, "verbose", "maybe", err, sizeof err);
    assert_string_equal(err, "option verbose of plugin demo must be true, false, yes, no, 1 or 0 "
                             "(got 'maybe')");
    /* A long value is cut. */
    char value[200];
    memset(value, 'z', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    check(&demo, "count", value, err, sizeof err);
    assert_non_null(strstr(err, "(got 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...')"));
    /* A NULL or small buffer is fine. */
    assert_int_equal(mpb__plugin_check_option(&demo, "count", "abc", NULL, 0), MPB_ECONFIG);
    char tiny[8];
    assert_int_equal(check(&demo, "nope", "1", tiny, sizeof tiny), MPB_ECONFIG);
    assert_string_equal(tiny, "unknown");
}

static void
a_plugin_without_declarations_accepts_anything(void **state)
{
    mpb_worker_def def = demo;
    def.options = NULL;
    char err[64] = "";
    assert_int_equal(check(&def, "whatever", "x", err, sizeof err), 0);
    assert_int_equal(check(&def, "count", "not a number", err, sizeof err), 0);
    mpb_options *options = mpb__options_new();
    mpb__options_set(options, "anything", "goes");
    assert_int_equal(mpb__plugin_check_options(&def, options, err, sizeof err), 0);
    assert_null(mpb__plugin_option(&def, "count"));
    mpb__options_destroy(&options);
}

static void
an_empty_declaration_refuses_every_option(void **state)
{
    static const mpb_option_def none[] = {{0}};
    mpb_worker_def def = demo;
    def.options = none;
    char err[128];
    assert_int_equal(check(&def, "alpha", "1", err, sizeof err), MPB_ECONFIG);
    assert_string_equal(err, "unknown option alpha: plugin demo takes no options");
    mpb_options *options = mpb__options_new();
    assert_int_equal(mpb__plugin_check_options(&def, options, err, sizeof err), 0);
    mpb__options_destroy(&options);
}

static void
a_list_is_checked_in_order_up_to_its_first_failure(void **state)
{
    mpb_options *options = mpb__options_new();
    mpb__options_set(options, "count", "5");
    mpb__options_set(options, "label", "x");
    assert_int_equal(mpb__plugin_check_options(&demo, options, NULL, 0), 0);
    mpb__options_set(options, "ratio", "high");
    mpb__options_set(options, "cuont", "1");
    char err[128];
    assert_int_equal(mpb__plugin_check_options(&demo, options, err, sizeof err), MPB_ECONFIG);
    assert_string_equal(err, "option ratio of plugin demo must be a number (got 'high')");
    assert_int_equal(mpb__plugin_check_options(&demo, NULL, err, sizeof err), 0);
    mpb__options_destroy(&options);
}

static void
a_broken_declaration_is_the_plugins_fault(void **state)
{
    static const mpb_option_def broken[] = {
        {"odd", (mpb_option_type)99, NULL, NULL},
        {0},
    };
    mpb_worker_def def = demo;
    def.options = broken;
    char err[128];
    assert_int_equal(check(&def, "odd", "1", err, sizeof err), MPB_EPLUGIN);
    assert_string_equal(err, "plugin demo declares option odd with an unknown type (99)");
    assert_string_equal(mpb__option_type_name((mpb_option_type)99), "?");
    assert_string_equal(mpb__option_type_name(MPB_OPTION_BOOL), "bool");
    assert_ptr_equal(mpb__plugin_option(&demo, "ratio"), &demo_options[1]);
}

static void
getters_read_what_the_checks_accept(void **state)
{
    mpb_options *options = mpb__options_new();
    mpb__options_set(options, "count", "010");
    mpb__options_set(options, "verbose", "Yes");
    mpb__options_set(options, "quiet", "no");
    mpb__options_set(options, "bad", "maybe");
    long long count = 0;
    assert_int_equal(mpb_options_get_int(options, "count", 0, &count), 0);
    assert_int_equal(count, 10);
    int flag = -1;
    assert_int_equal(mpb_options_get_bool(options, "verbose", 0, &flag), 0);
    assert_int_equal(flag, 1);
    assert_int_equal(mpb_options_get_bool(options, "quiet", 1, &flag), 0);
    assert_int_equal(flag, 0);
    assert_int_equal(mpb_options_get_bool(options, "absent", 1, &flag), 0);
    assert_int_equal(flag, 1);
    assert_int_equal(mpb_options_get_bool(options, "bad", 0, &flag), MPB_EINVAL);
    assert_int_equal(flag, 1);
    mpb__options_destroy(&options);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_names_get_a_hint_or_the_known_names),
        cmocka_unit_test(a_long_list_of_names_is_cut_short),
        cmocka_unit_test(each_type_takes_its_values_and_refuses_others),
        cmocka_unit_test(bad_values_are_quoted_in_the_message),
        cmocka_unit_test(a_plugin_without_declarations_accepts_anything),
        cmocka_unit_test(an_empty_declaration_refuses_every_option),
        cmocka_unit_test(a_list_is_checked_in_order_up_to_its_first_failure),
        cmocka_unit_test(a_broken_declaration_is_the_plugins_fault),
        cmocka_unit_test(getters_read_what_the_checks_accept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
