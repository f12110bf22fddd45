/*
 * DESIGN
 * SequentialServlet: stage i's value is stage i+1's input. Each item gets a
 * small record holding the task it hands to the current stage and the value
 * that stage reads (the previous stage's result, kept until the stage
 * answers). An error at any stage is the item's result at once; later
 * stages never see the item. Everything runs on the dispatcher thread, and
 * the next stage is fed from inside the previous stage's done(): no queue,
 * no wake-up between stages.
 */
#include <stdlib.h>

#include "core/util.h"
#include "servlets/servlet_int.h"

typedef struct seq_item {
    mpb__task task; /* first: the stage's done() gets &item->task */
    mpb__task *parent;
    mpb_servlet *seq;
    size_t stage;
    mpb_result *carry; /* the current stage's input, when past stage 0 */
    int cancelled;
} seq_item;

static void
finish(seq_item *item, mpb_result *result)
{
    mpb__task *parent = item->parent;
    mpb_result_destroy(&item->carry);
    free(item);
    parent->done(parent, result);
}

static void
stage_done(mpb__task *task, mpb_result *result)
{
    seq_item *item = (seq_item *)task;
    mpb_servlet *seq = item->seq;
    if (mpb_result_is_error(result) || item->stage + 1 == seq->n_members) {
        finish(item, result);
        return;
    }
    if (item->cancelled) {
        mpb_result_destroy(&result);
        finish(item, mpb_result_new_error(MPB_ERROR_CANCELLED, "withdrawn between stages",
                                          seq->path, "", 0));
        return;
    }
    mpb_result_destroy(&item->carry);
    item->carry = result;
    item->stage++;
    item->task.input = mpb_result_value(result, &item->task.len);
    mpb_servlet *next = seq->members[item->stage];
    next->ops->submit(next, &item->task);
}

static void
seq_submit(mpb_servlet *self, mpb__task *task)
{
    seq_item *item = mpb_malloc(sizeof *item);
    *item = (seq_item){
        .task = {.input = task->input,
                 .len = task->len,
                 .deadline_ns = task->deadline_ns,
                 .done = stage_done},
        .parent = task,
        .seq = self,
    };
    task->token = (uint64_t)(uintptr_t)item;
    self->members[0]->ops->submit(self->members[0], &item->task);
}

static void
seq_cancel(mpb_servlet *self, mpb__task *task)
{
    seq_item *item = (seq_item *)(uintptr_t)task->token;
    item->cancelled = 1;
    mpb_servlet *stage = self->members[item->stage];
    stage->ops->cancel(stage, &item->task); /* may finish (and free) item */
}

static void
seq_destroy(mpb_servlet *self)
{
    mpb__composite_free(self);
    free(self);
}

static const mpb__servlet_ops sequential_ops = {
    .kind = "sequential",
    .start = mpb__composite_start,
    .submit = seq_submit,
    .cancel = seq_cancel,
    .auto_workers = mpb__composite_auto_workers,
    .ready = mpb__composite_ready,
    .tensors = mpb__composite_tensors_chain,
    .shutdown = mpb__composite_shutdown,
    .stopped = mpb__composite_stopped,
    .kill = mpb__composite_kill,
    .workers = mpb__composite_workers,
    .destroy = seq_destroy,
};

mpb_servlet *
mpb_sequential_servlet_new(mpb_servlet **members, size_t n)
{
    MPB_ASSERT(members != NULL || n == 0);
    mpb_servlet *self = mpb_calloc(1, sizeof *self);
    self->ops = &sequential_ops;
    mpb__composite_init(self, "sequential", members, n);
    return self;
}
