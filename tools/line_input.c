#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tools/line_input.h"

#define READ_CHUNK 65536
#define MAX_LINE ((size_t)1 << 30)

void
mpb__line_input_init(mpb__line_input *input, int fd, int f32)
{
    memset(input, 0, sizeof *input);
    input->fd = fd;
    input->f32 = f32;
}

/* Reads once (blocking or not, as the descriptor is); 0, or MPB_ELIMIT /
 * a read error. Sets eof at the end. */
static int
read_more(mpb__line_input *input)
{
    if (input->start > 0 && input->start == input->len) {
        input->start = input->len = 0;
    }
    if (input->cap - input->len < READ_CHUNK) {
        if (input->start > 0) { /* keep the unread part at the front */
            memmove(input->buf, input->buf + input->start, input->len - input->start);
            input->len -= input->start;
            input->start = 0;
        }
        if (input->cap - input->len < READ_CHUNK) {
            if (input->cap > MAX_LINE) {
                return MPB_ELIMIT;
            }
            input->cap = input->cap ? input->cap * 2 : READ_CHUNK * 2;
            input->buf = mpb_realloc(input->buf, input->cap);
        }
    }
    ssize_t got;
    do {
        got = read(input->fd, input->buf + input->len, input->cap - input->len - 1);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        return mpb_status_from_errno(errno);
    }
    if (got == 0) {
        input->eof = 1;
    }
    input->len += (size_t)got;
    return 0;
}

static char *
line_end(const mpb__line_input *input)
{
    if (input->start == input->len) {
        return NULL; /* nothing buffered (and buf may still be NULL) */
    }
    return memchr(input->buf + input->start, '\n', input->len - input->start);
}

int
mpb__line_input_ready(void *ctx, int *wait_fd)
{
    mpb__line_input *input = ctx;
    if (input->eof || line_end(input) != NULL) {
        return 1;
    }
    struct pollfd fd = {.fd = input->fd, .events = POLLIN};
    if (poll(&fd, 1, 0) > 0 && (read_more(input) != 0 || input->eof || line_end(input) != NULL)) {
        return 1; /* a line, the end, or an error next() will report */
    }
    *wait_fd = input->fd;
    return 0;
}

/* Parses a line of len bytes, a JSON array of numbers and nothing after
 * it but blanks, into input->vector; 0 or MPB_EINVAL. */
static int
parse_f32(mpb__line_input *input, const char *line, size_t len, size_t *count)
{
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    while (json != NULL && end < line + len && (*end == ' ' || *end == '\t')) {
        end++;
    }
    if (json == NULL || !cJSON_IsArray(json) || end != line + len) {
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

/* The next whole line (or the last, unterminated one), NUL-terminated in
 * place without its line break; NULL at the end. */
static char *
take_line(mpb__line_input *input, size_t *len, int *status)
{
    char *end;
    while ((end = line_end(input)) == NULL && !input->eof) {
        *status = read_more(input);
        if (*status != 0) {
            return NULL;
        }
    }
    if (end == NULL && input->start == input->len) {
        return NULL; /* the end */
    }
    char *line = input->buf + input->start;
    if (end == NULL) {
        end = input->buf + input->len; /* there is room for the NUL: read leaves one byte */
    }
    *len = (size_t)(end - line);
    input->start = (size_t)(end - input->buf) + (end < input->buf + input->len);
    *end = '\0';
    if (*len > 0 && line[*len - 1] == '\r') {
        line[--*len] = '\0';
    }
    return line;
}

int
mpb__line_input_next(void *ctx, const void **data, size_t *len)
{
    mpb__line_input *input = ctx;
    int status = 0;
    size_t n = 0;
    char *line = take_line(input, &n, &status);
    if (line == NULL) {
        if (status != 0) {
            snprintf(input->bad_input, sizeof input->bad_input, "reading input: %s",
                     mpb_strerror(status));
            return MPB_EINVAL;
        }
        return 0;
    }
    input->read++;
    if (!input->f32) {
        *data = line;
        *len = n;
        return 1;
    }
    size_t count = 0;
    if (parse_f32(input, line, n, &count) != 0) {
        snprintf(input->bad_input, sizeof input->bad_input,
                 "input line %llu is not a JSON array of numbers (format f32)",
                 (unsigned long long)input->read);
        return MPB_EINVAL;
    }
    *data = input->vector;
    *len = count * sizeof(float);
    return 1;
}

void
mpb__line_input_free(mpb__line_input *input)
{
    free(input->buf);
    free(input->vector);
    input->buf = NULL;
    input->vector = NULL;
}

void
mpb__line_output_setup(FILE *out)
{
    if (isatty(fileno(out))) {
        setvbuf(out, NULL, _IOLBF, 0);
    }
}
