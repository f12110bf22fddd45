/*
 * A result is one allocation: the header, then the value bytes or the error
 * strings, so making, copying and freeing one costs one malloc and one free.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/result.h"

struct mpb_result {
    int is_error;
    size_t len;           /* bytes after the header */
    size_t value_len;     /* value results */
    mpb_item_error error; /* error results; strings point after the header */
    _Alignas(16) unsigned char bytes[];
};

mpb_result *
mpb_result_new_value(const void *data, size_t len)
{
    mpb_result *r = mpb_malloc(sizeof *r + len);
    r->is_error = 0;
    r->len = len;
    r->value_len = len;
    memset(&r->error, 0, sizeof r->error);
    if (len > 0) {
        memcpy(r->bytes, data, len);
    }
    return r;
}

static const char *
place(unsigned char **cursor, const char *text, size_t len)
{
    char *at = (char *)*cursor;
    memcpy(at, text, len);
    at[len] = '\0';
    *cursor += len + 1;
    return at;
}

mpb_result *
mpb_result_new_error(const char *type, const char *message, const char *servlet, const char *worker,
                     int64_t pid)
{
    const char *texts[4] = {type ? type : "", message ? message : "", servlet ? servlet : "",
                            worker ? worker : ""};
    size_t lens[4];
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        lens[i] = strlen(texts[i]);
        total += lens[i] + 1;
    }
    mpb_result *r = mpb_malloc(sizeof *r + total);
    r->is_error = 1;
    r->len = total;
    r->value_len = 0;
    unsigned char *cursor = r->bytes;
    r->error.type = place(&cursor, texts[0], lens[0]);
    r->error.message = place(&cursor, texts[1], lens[1]);
    r->error.servlet = place(&cursor, texts[2], lens[2]);
    r->error.worker = place(&cursor, texts[3], lens[3]);
    r->error.pid = pid;
    return r;
}

mpb_result *
mpb_result_copy(const mpb_result *result)
{
    if (result->is_error) {
        const mpb_item_error *e = &result->error;
        return mpb_result_new_error(e->type, e->message, e->servlet, e->worker, e->pid);
    }
    return mpb_result_new_value(result->bytes, result->value_len);
}

void
mpb_result_destroy(mpb_result **result_p)
{
    if (result_p == NULL || *result_p == NULL) {
        return;
    }
    free(*result_p);
    *result_p = NULL;
}

int
mpb_result_is_error(const mpb_result *result)
{
    return result->is_error;
}

const void *
mpb_result_value(const mpb_result *result, size_t *len)
{
    if (result->is_error) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = result->value_len;
    }
    return result->bytes;
}

const mpb_item_error *
mpb_result_error(const mpb_result *result)
{
    return result->is_error ? &result->error : NULL;
}
