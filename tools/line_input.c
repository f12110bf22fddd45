#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tools/line_input.h"

/* Parses a JSON array of numbers into input->vector; 0 or MPB_EINVAL. */
static int
parse_f32(mpb__line_input *input, const char *line, size_t *count)
{
    cJSON *json = cJSON_Parse(line);
    if (json == NULL || !cJSON_IsArray(json)) {
        cJSON_Delete(json);
        return MPB_EINVAL;
    }
    size_t n = (size_t)cJSON_GetArraySize(json);
    if (n > input->vector_cap) {
        input->vector_cap = n * 2;
        input->vector = mpb_realloc(input->vector, input->vector_cap * sizeof(float));
    }
    size_t i = 0;
    for (cJSON *e = json->child; e != NULL; e = e->next) {
        if (!cJSON_IsNumber(e)) {
            cJSON_Delete(json);
            return MPB_EINVAL;
        }
        input->vector[i++] = (float)e->valuedouble;
    }
    cJSON_Delete(json);
    *count = n;
    return 0;
}

int
mpb__line_input_next(void *ctx, const void **data, size_t *len)
{
    mpb__line_input *input = ctx;
    ssize_t got = getline(&input->line, &input->line_cap, input->in);
    if (got < 0) {
        return 0;
    }
    while (got > 0 && (input->line[got - 1] == '\n' || input->line[got - 1] == '\r')) {
        input->line[--got] = '\0';
    }
    input->read++;
    if (!input->f32) {
        *data = input->line;
        *len = (size_t)got;
        return 1;
    }
    size_t n = 0;
    if (parse_f32(input, input->line, &n) != 0) {
        snprintf(input->bad_input, sizeof input->bad_input,
                 "input line %llu is not a JSON array of numbers (format f32)",
                 (unsigned long long)input->read);
        return MPB_EINVAL;
    }
    *data = input->vector;
    *len = n * sizeof(float);
    return 1;
}

void
mpb__line_input_free(mpb__line_input *input)
{
    free(input->line);
    free(input->vector);
    input->line = NULL;
    input->vector = NULL;
}

void
mpb__line_output_setup(FILE *out)
{
    if (isatty(fileno(out))) {
        setvbuf(out, NULL, _IOLBF, 0);
    }
}
