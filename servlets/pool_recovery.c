/*
 * DESIGN
 * How a pool gets over losing workers. A dead local worker is handled a
 * moment after its exit is seen (DEATH_GRACE_MS), so results it sent just
 * before dying still count; then it is relaunched: at once when it had
 * lived STABLE_MS, else after a delay that doubles with each quick death
 * in a row (a crash loop costs a launch every 30 s at most and never stops
 * for good). While no worker lives, waiting items fail ServletUnavailable
 * after unavailable_timeout_ms instead of waiting forever. A worker silent
 * on a batch past batch_timeout_ms is hung: its items fail Timeout and, if
 * it can be killed, it is killed and so replaced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "servlets/pool.h"

#define STABLE_MS 2000 /* a worker that lived this long is restarted at once */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 30000
#define DEATH_GRACE_MS 50

/* ---- availability ---- */

/* Every waiting item fails: no worker lived for unavailable_timeout_ms. */
static void
fail_waiting(mpb__pool *pool)
{
    char message[320];
    snprintf(message, sizeof message, "no live worker for %d ms%s%s", pool->unavailable_timeout_ms,
             pool->last_exit[0] ? "; last: " : "", pool->last_exit);
    size_t n = pool->wait_count;
    for (size_t i = 0; i < n; i++) {
        uint32_t index = mpb__pool_waiting_pop(pool);
        mpb__slot *slot = &pool->slots[index];
        mpb__pool_slot_complete(
            pool, slot,
            slot->task ? mpb__pool_error(pool, NULL, MPB_ERROR_UNAVAILABLE_SERVLET, message)
                       : NULL);
    }
}

static void
on_unavailable(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__pool *pool = arg;
    pool->unavailable_armed = 0;
    if (pool->stopping || pool->unavailable_since == 0) {
        return;
    }
    mpb_log_err("pool", "%s: no live worker for %d ms; failing its items until one is back%s%s%s",
                mpb__pool_path(pool), pool->unavailable_timeout_ms,
                pool->last_exit[0] ? " (last: " : "", pool->last_exit,
                pool->last_exit[0] ? ")" : "");
    pool->unavailable = 1;
    fail_waiting(pool);
}

void
mpb__pool_check_available(mpb__pool *pool)
{
    if (pool->stopping || !pool->started) {
        return;
    }
    for (size_t i = 0; i < pool->n_conns; i++) {
        if (pool->conns[i].state == MPB_CONN_READY) {
            pool->unavailable_since = 0;
            pool->unavailable = 0;
            if (pool->unavailable_armed) {
                mpb__loop_cancel_timer(pool->env.loop, pool->unavailable_timer);
                pool->unavailable_armed = 0;
            }
            return;
        }
    }
    if (pool->unavailable_since != 0) {
        return; /* already counting */
    }
    pool->unavailable_since = mpb_now_ns();
    if (pool->unavailable_timeout_ms >= 0) {
        pool->unavailable_armed = 1;
        pool->unavailable_timer = mpb__loop_add_timer(pool->env.loop, pool->unavailable_timeout_ms,
                                                      0, on_unavailable, pool);
    }
}

void
mpb__pool_on_hung_check(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__pool *pool = arg;
    if (pool->stopping) {
        return;
    }
    int64_t now = mpb_now_ns();
    /* a worker may wait batch_wait_us to fill a batch before it computes */
    int64_t wait_ns = pool->batch_wait_us > 0 ? pool->batch_wait_us * 1000 : 0;
    int64_t limit_ns = (int64_t)pool->batch_timeout_ms * 1000000 + wait_ns;
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__conn *c = &pool->conns[i];
        int64_t since = c->last_recv_ns > c->busy_since_ns ? c->last_recv_ns : c->busy_since_ns;
        if (c->state != MPB_CONN_READY || c->in_flight == 0 || now - since <= limit_ns) {
            continue;
        }
        char how[160];
        int index = c->index;
        if (index >= 0 && pool->launcher->kill_one != NULL) {
            snprintf(how, sizeof how, "ran a batch past batch_timeout_ms (%d ms); killed",
                     pool->batch_timeout_ms);
            mpb__pool_conn_fail(pool, i, MPB_ERROR_TIMEOUT, how);
            pool->launcher->kill_one(pool, (unsigned)index); /* its death relaunches it */
        } else {
            /* a thread cannot be killed, a remote worker is not ours: its
             * items fail now, and their slots (its credit) stay taken
             * until it answers, so nothing more goes to it meanwhile */
            snprintf(how, sizeof how, "worker %s ran a batch past batch_timeout_ms (%d ms)",
                     c->name, pool->batch_timeout_ms);
            unsigned answered = 0;
            for (size_t s = 0; s < pool->n_slots; s++) {
                mpb__slot *slot = &pool->slots[s];
                if (slot->busy && slot->conn == (int)i && slot->task != NULL) {
                    mpb__task *task = slot->task;
                    slot->task = NULL;
                    mpb__pool_deadline_remove(pool, (uint32_t)s);
                    mpb__pool_answer(pool, task, slot->start_ns,
                                     mpb__pool_error(pool, c, MPB_ERROR_TIMEOUT, how));
                    answered++;
                }
            }
            if (answered > 0) {
                mpb_log_err("pool", "%s: %s; %u items failed Timeout, its credit waits for it",
                            mpb__pool_path(pool), how, answered);
            }
        }
    }
    mpb__pool_check_available(pool);
    mpb__pool_pump(pool);
}

/* Starts a replacement for worker index, unless workers die too fast
 * (RESTART_BURST restarts within RESTART_WINDOW_MS): then the worker stays
 * down and the pool serves with the rest. A failed launch is retried. */
static void relaunch(mpb__pool *pool, int index);

struct mpb__death {
    mpb__death *next;
    uint64_t timer;
    mpb__pool *pool;
    int index;
    int64_t pid;
    char how[128];
};

/* Runs a moment after the exit was seen, so results the worker sent before
 * dying are read first. */
static void
on_death(mpb__loop *loop, void *arg)
{
    (void)loop;
    mpb__death *d = arg;
    mpb__pool *pool = d->pool;
    for (mpb__death **p = &pool->deaths; *p != NULL; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
    mpb__pool_receive_all(pool);
    int had_conn = 0;
    for (size_t i = 0; i < pool->n_conns; i++) {
        mpb__conn *c = &pool->conns[i];
        if (c->pid == d->pid && c->index == d->index) {
            had_conn = 1; /* known: READY once (a hung one was failed already) */
            if (c->state != MPB_CONN_GONE) {
                mpb__pool_conn_died(pool, i, d->how);
            }
        }
    }
    if (!pool->stopping) {
        atomic_fetch_add(&pool->env.stats->workers_lost, 1);
        pool->base.metrics->restarts++;
        snprintf(pool->last_exit, sizeof pool->last_exit, "worker %d (pid %lld) %s", d->index,
                 (long long)d->pid, d->how);
        pthread_mutex_lock(pool->env.info_lock);
        snprintf(pool->env.stats->last_exit, sizeof pool->env.stats->last_exit, "%s: %s",
                 mpb__pool_path(pool), pool->last_exit);
        pthread_mutex_unlock(pool->env.info_lock);
        if (!had_conn) {
            mpb_log_warn("pool", "%s: worker %d (pid %lld) %s before READY", mpb__pool_path(pool),
                         d->index, (long long)d->pid, d->how);
        }
        if (d->index >= 0) {
            relaunch(pool, d->index);
        }
    }
    free(d);
    mpb__pool_check_available(pool);
    mpb__pool_pump(pool);
}

typedef struct retry {
    mpb__pool *pool;
    int index;
} retry;

static void launch_now(mpb__pool *pool, int index);

static void
on_retry(mpb__loop *loop, void *arg)
{
    (void)loop;
    retry *r = arg;
    r->pool->retries_pending--;
    r->pool->restarts[r->index].retry = NULL;
    if (!r->pool->stopping) {
        launch_now(r->pool, r->index);
    }
    free(r);
}

void
mpb__pool_cancel_retries(mpb__pool *pool)
{
    for (unsigned i = 0; pool->restarts != NULL && i < (pool->workers ? pool->workers : 1); i++) {
        mpb__restart *r = &pool->restarts[i];
        if (r->retry != NULL) {
            mpb__loop_cancel_timer(pool->env.loop, r->retry_timer);
            free(r->retry);
            r->retry = NULL;
            pool->retries_pending--;
        }
    }
}

/* Launches worker index now; a failed launch is retried like a crash. */
static void
launch_now(mpb__pool *pool, int index)
{
    char err[256];
    if (pool->launcher->launch(pool, (unsigned)index, err, sizeof err) == 0) {
        pool->restarts[index].launched_ns = mpb_now_ns();
        return;
    }
    mpb_log_err("pool", "%s: starting a replacement for worker %d failed: %s", mpb__pool_path(pool),
                index, err);
    snprintf(pool->last_exit, sizeof pool->last_exit, "worker %d could not start: %.100s", index,
             err);
    pool->restarts[index].launched_ns = mpb_now_ns(); /* a quick failure, for the backoff */
    relaunch(pool, index);
}

/* Starts a replacement for worker index: at once when the one before lived
 * a while (STABLE_MS), else after a delay that doubles with each quick
 * death in a row (BACKOFF_FIRST_MS up to BACKOFF_MAX_MS): a worker that
 * cannot live is retried for as long as the pool runs, without spinning. */
static void
relaunch(mpb__pool *pool, int index)
{
    mpb__restart *r = &pool->restarts[index];
    int64_t now = mpb_now_ns();
    if (r->expected) { /* it ran an isolation group: its death was the point */
        r->expected = 0;
        launch_now(pool, index);
        return;
    }
    if (r->launched_ns != 0 && now - r->launched_ns < (int64_t)STABLE_MS * 1000000) {
        r->failures++;
    } else {
        r->failures = 0;
    }
    if (r->failures == 0) {
        launch_now(pool, index);
        return;
    }
    int64_t delay_ms = BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < r->failures && delay_ms < BACKOFF_MAX_MS; i++) {
        delay_ms *= 2;
    }
    delay_ms = delay_ms < BACKOFF_MAX_MS ? delay_ms : BACKOFF_MAX_MS;
    mpb_log_warn("pool",
                 "%s: worker %d died %u times in a row soon after starting; next try in %lld ms",
                 mpb__pool_path(pool), index, r->failures, (long long)delay_ms);
    if (r->retry != NULL) {
        return; /* one is already waiting */
    }
    retry *later = mpb_malloc(sizeof *later);
    *later = (retry){pool, index};
    pool->retries_pending++;
    r->retry = later;
    r->retry_timer = mpb__loop_add_timer(pool->env.loop, delay_ms, 0, on_retry, later);
}

void
mpb__pool_worker_died(mpb__pool *pool, int index, int64_t pid, const char *how)
{
    mpb__death *d = mpb_calloc(1, sizeof *d);
    d->pool = pool;
    d->index = index;
    d->pid = pid;
    snprintf(d->how, sizeof d->how, "%s", how);
    d->next = pool->deaths;
    pool->deaths = d;
    d->timer = mpb__loop_add_timer(pool->env.loop, DEATH_GRACE_MS, 0, on_death, d);
}

void
mpb__pool_forget_deaths(mpb__pool *pool)
{
    while (pool->deaths != NULL) {
        mpb__death *d = pool->deaths;
        pool->deaths = d->next;
        mpb__loop_cancel_timer(pool->env.loop, d->timer);
        free(d);
    }
}
