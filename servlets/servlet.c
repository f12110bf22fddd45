/* Functions every servlet kind shares. */
#include <stdlib.h>

#include "core/util.h"
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
