/*
 * Plugin options against the plugin's declarations (worker ABI 2): every
 * key must be declared and every value must read as its declared type.
 * Messages go to whoever wrote the config, so they name the option and the
 * plugin and say what would be accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/options.h"
#include "core/plugin.h"
#include "core/util.h"
#include "mpbatch/error.h"

/* Known names listed when an unknown one has no near match. */
#define MAX_NAMES_LISTED 8
/* Characters of a bad value quoted back. */
#define MAX_VALUE_SHOWN 40

const char *
mpb__option_type_name(mpb_option_type type)
{
    switch (type) {
    case MPB_OPTION_STRING:
        return "string";
    case MPB_OPTION_INT:
        return "int";
    case MPB_OPTION_FLOAT:
        return "float";
    case MPB_OPTION_BOOL:
        return "bool";
    }
    return "?";
}

const mpb_option_def *
mpb__plugin_option(const mpb_worker_def *def, const char *key)
{
    for (const mpb_option_def *option = def->options; option != NULL && option->name != NULL;
         option++) {
        if (strcmp(option->name, key) == 0) {
            return option;
        }
    }
    return NULL;
}

/* "a, b, c" or "a, b, ..., h and 3 more" into out. */
static void
list_names(const char *const *names, size_t n, char *out, size_t out_len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < MAX_NAMES_LISTED && used < out_len; i++) {
        used += (size_t)snprintf(out + used, out_len - used, "%s%s", i ? ", " : "", names[i]);
    }
    if (n > MAX_NAMES_LISTED && used < out_len) {
        snprintf(out + used, out_len - used, " and %zu more", n - MAX_NAMES_LISTED);
    }
}

static int
unknown_option(const mpb_worker_def *def, const char *key, char *err, size_t err_len)
{
    size_t n = 0;
    while (def->options[n].name != NULL) {
        n++;
    }
    if (n == 0) {
        return mpb__set_error(err, err_len, MPB_ECONFIG,
                              "unknown option %s: plugin %s takes no options", key, def->name);
    }
    const char **names = mpb_malloc(n * sizeof *names);
    for (size_t i = 0; i < n; i++) {
        names[i] = def->options[i].name;
    }
    int rc;
    const char *nearest = mpb__nearest_name(key, names, n);
    if (nearest != NULL) {
        rc = mpb__set_error(err, err_len, MPB_ECONFIG,
                            "unknown option %s of plugin %s (did you mean %s?)", key, def->name,
                            nearest);
    } else {
        char known[256];
        list_names(names, n, known, sizeof known);
        rc = mpb__set_error(err, err_len, MPB_ECONFIG, "unknown option %s of plugin %s (known: %s)",
                            key, def->name, known);
    }
    free(names);
    return rc;
}

/* What a value of the type must be, completing "must be ...". */
static const char *
type_expectation(mpb_option_type type)
{
    switch (type) {
    case MPB_OPTION_INT:
        return "an integer";
    case MPB_OPTION_FLOAT:
        return "a number";
    case MPB_OPTION_BOOL:
        return "true, false, yes, no, 1 or 0";
    case MPB_OPTION_STRING:
        break;
    }
    return "text";
}

static int
value_reads_as(mpb_option_type type, const char *value)
{
    long long as_int;
    double as_double;
    int as_bool;
    switch (type) {
    case MPB_OPTION_STRING:
        return 1;
    case MPB_OPTION_INT:
        return mpb__parse_int(value, &as_int) == 0;
    case MPB_OPTION_FLOAT:
        return mpb__parse_double(value, &as_double) == 0;
    case MPB_OPTION_BOOL:
        return mpb__parse_bool(value, &as_bool) == 0;
    }
    return 0;
}

int
mpb__plugin_check_option(const mpb_worker_def *def, const char *key, const char *value, char *err,
                         size_t err_len)
{
    MPB_ASSERT(def != NULL && key != NULL && value != NULL);
    if (def->options == NULL) {
        return 0;
    }
    const mpb_option_def *option = mpb__plugin_option(def, key);
    if (option == NULL) {
        return unknown_option(def, key, err, err_len);
    }
    if (strcmp(mpb__option_type_name(option->type), "?") == 0) {
        return mpb__set_error(err, err_len, MPB_EPLUGIN,
                              "plugin %s declares option %s with an unknown type (%d)", def->name,
                              key, (int)option->type);
    }
    if (value_reads_as(option->type, value)) {
        return 0;
    }
    size_t len = strlen(value);
    return mpb__set_error(err, err_len, MPB_ECONFIG,
                          "option %s of plugin %s must be %s (got '%.*s%s')", key, def->name,
                          type_expectation(option->type),
                          (int)(len > MAX_VALUE_SHOWN ? MAX_VALUE_SHOWN : len), value,
                          len > MAX_VALUE_SHOWN ? "..." : "");
}

int
mpb__plugin_check_options(const mpb_worker_def *def, const mpb_options *options, char *err,
                          size_t err_len)
{
    if (def->options == NULL) {
        return 0;
    }
    for (size_t i = 0; i < mpb_options_count(options); i++) {
        int rc = mpb__plugin_check_option(def, mpb_options_key(options, i),
                                          mpb_options_value(options, i), err, err_len);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
