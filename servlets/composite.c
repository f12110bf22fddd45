/*
 * What the composite servlets (sequential, ensemble, switch) share: a list
 * of members they own, started in order under the composite's path, and
 * the lifecycle slots that simply visit every member. Each kind keeps its
 * own submit and cancel in its own file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "servlets/servlet_int.h"

void
mpb__composite_init(mpb_servlet *self, const char *name, mpb_servlet **members, size_t n)
{
    self->name = mpb_strdup(name);
    self->members = mpb_calloc(n ? n : 1, sizeof *self->members);
    self->n_members = n;
    for (size_t i = 0; i < n; i++) {
        MPB_ASSERT(members[i] != NULL);
        self->members[i] = members[i];
        members[i] = NULL;
    }
}

/* Member names are path segments: two siblings of one name could not be
 * told apart in errors, telemetry or a request's target path. */
static int
check_member_names(const mpb_servlet *self, char *err, size_t err_len)
{
    for (size_t i = 0; i < self->n_members; i++) {
        const char *name = self->members[i]->name;
        if (name == NULL || *name == '\0' || strchr(name, '/') != NULL) {
            return mpb__set_error(err, err_len, MPB_EINVAL,
                                  "servlet %s: member %zu needs a name without '/'", self->path, i);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(self->members[j]->name, name) == 0) {
                return mpb__set_error(err, err_len, MPB_EINVAL,
                                      "servlet %s: members %zu and %zu are both named '%s'; "
                                      "give each its own name",
                                      self->path, j, i, name);
            }
        }
    }
    return 0;
}

int
mpb__composite_start(mpb_servlet *self, const mpb__servlet_env *env, const char *parent_path,
                     char *err, size_t err_len)
{
    mpb__servlet_set_path(self, parent_path);
    self->env = *env;
    if (self->n_members == 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "servlet %s has no members", self->path);
    }
    int rc = check_member_names(self, err, err_len);
    for (size_t i = 0; rc == 0 && i < self->n_members; i++) {
        mpb_servlet *member = self->members[i];
        rc = member->ops->start(member, env, self->path, err, err_len);
        if (rc != 0) {
            for (size_t j = 0; j < i; j++) {
                self->members[j]->ops->kill(self->members[j]);
            }
        }
    }
    return rc;
}

void
mpb__composite_shutdown(mpb_servlet *self)
{
    for (size_t i = 0; i < self->n_members; i++) {
        self->members[i]->ops->shutdown(self->members[i]);
    }
}

int
mpb__composite_stopped(mpb_servlet *self)
{
    for (size_t i = 0; i < self->n_members; i++) {
        if (!self->members[i]->ops->stopped(self->members[i])) {
            return 0;
        }
    }
    return 1;
}

void
mpb__composite_kill(mpb_servlet *self)
{
    for (size_t i = 0; i < self->n_members; i++) {
        self->members[i]->ops->kill(self->members[i]);
    }
}

int
mpb__composite_ready(mpb_servlet *self)
{
    for (size_t i = 0; i < self->n_members; i++) {
        if (!self->members[i]->ops->ready(self->members[i])) {
            return 0;
        }
    }
    return 1;
}

unsigned
mpb__composite_auto_workers(const mpb_servlet *self)
{
    unsigned total = 0;
    for (size_t i = 0; i < self->n_members; i++) {
        total += self->members[i]->ops->auto_workers(self->members[i]);
    }
    return total;
}

void
mpb__composite_workers(mpb_servlet *self, mpb_worker_status *out, size_t max, size_t *count)
{
    for (size_t i = 0; i < self->n_members; i++) {
        self->members[i]->ops->workers(self->members[i], out, max, count);
    }
}

void
mpb__composite_tensors_chain(mpb_servlet *self, const mpb_tensor_def **inputs,
                             const mpb_tensor_def **outputs)
{
    const mpb_tensor_def *unused;
    mpb_servlet *first = self->members[0];
    mpb_servlet *last = self->members[self->n_members - 1];
    first->ops->tensors(first, inputs, &unused);
    last->ops->tensors(last, &unused, outputs);
}

void
mpb__composite_tensors_first(mpb_servlet *self, const mpb_tensor_def **inputs,
                             const mpb_tensor_def **outputs)
{
    self->members[0]->ops->tensors(self->members[0], inputs, outputs);
}

void
mpb__composite_free(mpb_servlet *self)
{
    free(self->tensor_list);
    for (size_t i = 0; i < self->n_members; i++) {
        mpb_servlet_destroy(&self->members[i]);
    }
    free(self->members);
    free(self->name);
    free(self->path);
}
