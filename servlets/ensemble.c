/*
 * DESIGN
 * EnsembleServlet: every member gets the same input at once; the item's
 * value is the array of the members' results, in member order. Gathering
 * is event-driven: each member's done() files its result in the item's
 * record, and the last one builds the array, on the dispatcher thread,
 * with no timer or poll anywhere.
 *
 * Fail fast (the default): the first member error is the item's result at
 * once, and the members that have not started on the item are told to
 * withdraw it (ops->cancel). Members still working finish in their own
 * time; their results are dropped. The record (and its copy of the input,
 * which members may still read after the item was answered) lives until
 * every member has answered. errors: in_place keeps each member's error in
 * its own slot of the array instead.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/server.h"
#include "servlets/servlet_int.h"

typedef struct ensemble {
    mpb_servlet base;
    int in_place;
} ensemble;

enum child_state { CHILD_UNSENT, CHILD_PENDING, CHILD_DONE };

typedef struct ens_item ens_item;

typedef struct ens_child {
    mpb__task task; /* first: the member's done() gets &child->task */
    ens_item *item;
    enum child_state state;
} ens_child;

struct ens_item {
    ensemble *ens;
    mpb__task *parent; /* NULL once answered */
    size_t holds;      /* children pending, plus one while a loop walks them */
    mpb_result **results;
    unsigned char *input;
    ens_child children[];
};

static void cancel_pending(ens_item *item);

/* Drops one hold; the last one answers the item (if not yet) and frees it. */
static void
release(ens_item *item)
{
    if (--item->holds > 0) {
        return;
    }
    size_t n = item->ens->base.n_members;
    if (item->parent != NULL) {
        mpb__task *parent = item->parent;
        item->parent = NULL;
        parent->done(parent, mpb_result_new_array(item->results, n));
    }
    for (size_t i = 0; i < n; i++) {
        mpb_result_destroy(&item->results[i]);
    }
    free(item);
}

static void
member_done(mpb__task *task, mpb_result *result)
{
    ens_child *child = (ens_child *)task;
    ens_item *item = child->item;
    size_t index = (size_t)(child - item->children);
    child->state = CHILD_DONE;
    if (item->parent != NULL && mpb_result_is_error(result) && !item->ens->in_place) {
        mpb__task *parent = item->parent;
        item->parent = NULL;
        item->holds++; /* cancel_pending may finish other children */
        parent->done(parent, result);
        cancel_pending(item);
        release(item);
    } else if (item->parent != NULL) {
        item->results[index] = result;
    } else {
        mpb_result_destroy(&result); /* the item was answered already */
    }
    release(item);
}

static void
cancel_pending(ens_item *item)
{
    for (size_t i = 0; i < item->ens->base.n_members; i++) {
        if (item->children[i].state == CHILD_PENDING) {
            mpb_servlet *member = item->ens->base.members[i];
            member->ops->cancel(member, &item->children[i].task);
        }
    }
}

static void
ens_submit(mpb_servlet *self, mpb__task *task)
{
    ensemble *ens = (ensemble *)self;
    size_t n = self->n_members;
    size_t head = sizeof(ens_item) + n * sizeof(ens_child);
    size_t results_at = (head + 15) & ~(size_t)15;
    size_t input_at = results_at + n * sizeof(mpb_result *);
    ens_item *item = mpb_malloc(input_at + task->len);
    item->ens = ens;
    item->parent = task;
    item->holds = n + 1; /* one per member, one for the submit loop */
    item->results = (mpb_result **)((unsigned char *)item + results_at);
    item->input = (unsigned char *)item + input_at;
    memcpy(item->input, task->input, task->len);
    for (size_t i = 0; i < n; i++) {
        item->results[i] = NULL;
        item->children[i] = (ens_child){
            .task = {.input = item->input,
                     .len = task->len,
                     .deadline_ns = task->deadline_ns,
                     .done = member_done},
            .item = item,
            .state = CHILD_UNSENT,
        };
    }
    task->token = (uint64_t)(uintptr_t)item;
    for (size_t i = 0; i < n; i++) {
        if (item->parent == NULL) {
            item->holds--; /* answered already (fail fast): never sent */
            item->children[i].state = CHILD_DONE;
            continue;
        }
        item->children[i].state = CHILD_PENDING;
        self->members[i]->ops->submit(self->members[i], &item->children[i].task);
    }
    release(item);
}

static void
ens_cancel(mpb_servlet *self, mpb__task *task)
{
    (void)self;
    ens_item *item = (ens_item *)(uintptr_t)task->token;
    item->holds++;
    cancel_pending(item);
    release(item);
}

/* One output per member, named after it, typed as its first output. */
static void
ens_tensors(mpb_servlet *self, const mpb_tensor_def **inputs, const mpb_tensor_def **outputs)
{
    const mpb_tensor_def *unused;
    self->members[0]->ops->tensors(self->members[0], inputs, &unused);
    if (self->tensor_list == NULL) {
        self->tensor_list = mpb_calloc(self->n_members + 1, sizeof(mpb_tensor_def));
        for (size_t i = 0; i < self->n_members; i++) {
            const mpb_tensor_def *member_out = NULL;
            self->members[i]->ops->tensors(self->members[i], &unused, &member_out);
            mpb_tensor_def *t = &self->tensor_list[i];
            if (member_out != NULL && member_out[0].name != NULL) {
                *t = member_out[0];
            } else {
                *t = (mpb_tensor_def){.ndim = 1, .shape = {-1}}; /* undeclared */
            }
            t->name = self->members[i]->name;
        }
    }
    *outputs = self->tensor_list;
}

static void
ens_destroy(mpb_servlet *self)
{
    mpb__composite_free(self);
    free(self);
}

static const mpb__servlet_ops ensemble_ops = {
    .kind = "ensemble",
    .start = mpb__composite_start,
    .submit = ens_submit,
    .cancel = ens_cancel,
    .auto_workers = mpb__composite_auto_workers,
    .ready = mpb__composite_ready,
    .tensors = ens_tensors,
    .shutdown = mpb__composite_shutdown,
    .stopped = mpb__composite_stopped,
    .kill = mpb__composite_kill,
    .workers = mpb__composite_workers,
    .destroy = ens_destroy,
};

void
mpb_ensemble_options_init(mpb_ensemble_options *options)
{
    memset(options, 0, sizeof *options);
}

mpb_servlet *
mpb_ensemble_servlet_new(mpb_servlet **members, size_t n, const mpb_ensemble_options *options)
{
    MPB_ASSERT(members != NULL || n == 0);
    ensemble *ens = mpb_calloc(1, sizeof *ens);
    ens->base.ops = &ensemble_ops;
    ens->in_place = options != NULL && options->errors_in_place;
    mpb__composite_init(&ens->base, "ensemble", members, n);
    return &ens->base;
}
