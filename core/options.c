#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/options.h"
#include "core/util.h"
#include "mpbatch/error.h"

struct mpb_options {
    size_t count;
    size_t cap;
    char **keys;
    char **values;
};

mpb_options *
mpb__options_new(void)
{
    return mpb_calloc(1, sizeof(mpb_options));
}

void
mpb__options_destroy(mpb_options **self_p)
{
    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    mpb_options *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        free(self->keys[i]);
        free(self->values[i]);
    }
    free(self->keys);
    free(self->values);
    free(self);
    *self_p = NULL;
}

void
mpb__options_set(mpb_options *self, const char *key, const char *value)
{
    for (size_t i = 0; i < self->count; i++) {
        if (strcmp(self->keys[i], key) == 0) {
            free(self->values[i]);
            self->values[i] = mpb_strdup(value);
            return;
        }
    }
    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 8;
        self->keys = mpb_realloc(self->keys, self->cap * sizeof(char *));
        self->values = mpb_realloc(self->values, self->cap * sizeof(char *));
    }
    self->keys[self->count] = mpb_strdup(key);
    self->values[self->count] = mpb_strdup(value);
    self->count++;
}

int
mpb__options_set_pair(mpb_options *self, const char *pair)
{
    const char *eq = strchr(pair, '=');
    if (eq == NULL || eq == pair) {
        return MPB_EINVAL;
    }
    char *key = mpb_strndup(pair, (size_t)(eq - pair));
    mpb__options_set(self, key, eq + 1);
    free(key);
    return 0;
}

mpb_options *
mpb__options_copy(const mpb_options *self)
{
    mpb_options *copy = mpb__options_new();
    for (size_t i = 0; self != NULL && i < self->count; i++) {
        mpb__options_set(copy, self->keys[i], self->values[i]);
    }
    return copy;
}

const char *
mpb_options_get(const mpb_options *options, const char *key)
{
    for (size_t i = 0; options != NULL && i < options->count; i++) {
        if (strcmp(options->keys[i], key) == 0) {
            return options->values[i];
        }
    }
    return NULL;
}

int
mpb__parse_int(const char *text, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        return MPB_EINVAL;
    }
    *out = value;
    return 0;
}

int
mpb__parse_double(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(value)) {
        return MPB_EINVAL;
    }
    *out = value;
    return 0;
}

int
mpb__parse_bool(const char *text, int *out)
{
    static const char *const truths[] = {"true", "1", "yes"};
    static const char *const falsehoods[] = {"false", "0", "no"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(truths); i++) {
        if (strcasecmp(text, truths[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(text, falsehoods[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return MPB_EINVAL;
}

int
mpb_options_get_int(const mpb_options *options, const char *key, long long def, long long *out)
{
    const char *text = mpb_options_get(options, key);
    if (text == NULL) {
        *out = def;
        return 0;
    }
    return mpb__parse_int(text, out);
}

int
mpb_options_get_double(const mpb_options *options, const char *key, double def, double *out)
{
    const char *text = mpb_options_get(options, key);
    if (text == NULL) {
        *out = def;
        return 0;
    }
    return mpb__parse_double(text, out);
}

int
mpb_options_get_bool(const mpb_options *options, const char *key, int def, int *out)
{
    const char *text = mpb_options_get(options, key);
    if (text == NULL) {
        *out = def;
        return 0;
    }
    return mpb__parse_bool(text, out);
}

size_t
mpb_options_count(const mpb_options *options)
{
    return options ? options->count : 0;
}

const char *
mpb_options_key(const mpb_options *options, size_t index)
{
    return options && index < options->count ? options->keys[index] : NULL;
}

const char *
mpb_options_value(const mpb_options *options, size_t index)
{
    return options && index < options->count ? options->values[index] : NULL;
}
