/*
 * What the tests of the mpb executables share: where a built tool is,
 * running a shell command for its exit status, and reading a whole file.
 */
#ifndef MPB_TESTS_TOOLS_TOOL_HELPERS_H
#define MPB_TESTS_TOOLS_TOOL_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "support.h"

#include "core/os/process.h"

/* The built executable name (bin/ beside the test's folder); caller frees. */
static inline char *
tool_path(const char *name)
{
    char *dir = mpb__executable_dir();
    char *path = mpb_asprintf("%s/../bin/%s", dir, name);
    free(dir);
    return path;
}

/* Runs cmd with /bin/sh; its exit status, or -1 when it did not exit. */
static inline int
shell_status(const char *cmd)
{
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The whole file, NUL-terminated; caller frees. */
static inline char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t cap = 1 << 16;
    size_t len = 0;
    char *text = mpb_malloc(cap);
    size_t n;
    while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            text = mpb_realloc(text, cap);
        }
    }
    text[len] = '\0';
    fclose(f);
    return text;
}

#endif
