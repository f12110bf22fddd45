/* Functions every servlet kind shares. */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "servlets/servlet_int.h"

const char *
mpb_servlet_name(const mpb_servlet *servlet)
{
    return servlet->name;
}

void
mpb_servlet_destroy(mpb_servlet **servlet_p)
{
    if (servlet_p == NULL || *servlet_p == NULL) {
        return;
    }
    (*servlet_p)->ops->destroy(*servlet_p);
    *servlet_p = NULL;
}

void
mpb__servlet_set_path(mpb_servlet *self, const char *parent_path)
{
    free(self->path);
    if (parent_path == NULL || *parent_path == '\0') {
        self->path = mpb_strdup(self->name);
    } else {
        self->path = mpb_asprintf("%s/%s", parent_path, self->name);
    }
}

mpb_servlet *
mpb__servlet_find(mpb_servlet *root, const char *path)
{
    if (path == NULL || *path == '\0') {
        return root;
    }
    size_t len = strcspn(path, "/");
    if (strlen(root->name) != len || strncmp(root->name, path, len) != 0) {
        return NULL;
    }
    const char *rest = path + len;
    if (*rest == '\0') {
        return root;
    }
    rest++; /* past '/' */
    size_t next = strcspn(rest, "/");
    for (size_t i = 0; i < root->n_members; i++) {
        mpb_servlet *member = root->members[i];
        if (strlen(member->name) == next && strncmp(member->name, rest, next) == 0) {
            return mpb__servlet_find(member, rest);
        }
    }
    return NULL;
}

int
mpb_servlet_rename(mpb_servlet *servlet, const char *name)
{
    if (name == NULL || *name == '\0' || strchr(name, '/') != NULL) {
        return MPB_EINVAL;
    }
    free(servlet->name);
    servlet->name = mpb_strdup(name);
    return 0;
}

void
mpb__servlet_walk(mpb_servlet *self, void (*fn)(mpb_servlet *servlet, void *ctx), void *ctx)
{
    fn(self, ctx);
    for (size_t i = 0; i < self->n_members; i++) {
        mpb__servlet_walk(self->members[i], fn, ctx);
    }
}
