/*
 * mpb_server_stream with a source that says when it would block
 * (input_ready): each output comes as soon as it and those before it are
 * done, while the next input has not come yet.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "support.h"

/* One-byte items from a pipe; input_ready polls it. */
typedef struct pipe_source {
    int fd;
    char item;
    int ended;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    uint64_t outputs;
} pipe_source;

static int
pipe_ready(void *ctx, int *wait_fd)
{
    pipe_source *s = ctx;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    if (poll(&p, 1, 0) > 0) {
        return 1;
    }
    *wait_fd = s->fd;
    return 0;
}

static int
pipe_next(void *ctx, const void **data, size_t *len)
{
    pipe_source *s = ctx;
    ssize_t got = read(s->fd, &s->item, 1);
    if (got <= 0) {
        return 0;
    }
    *data = &s->item;
    *len = 1;
    return 1;
}

static int
pipe_output(void *ctx, uint64_t index, const mpb_result *result)
{
    pipe_source *s = ctx;
    (void)index;
    (void)result;
    pthread_mutex_lock(&s->lock);
    s->outputs++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

typedef struct feeder {
    pipe_source *source;
    int write_fd;
    int saw_first_early; /* the first output came before the second input was written */
} feeder;

/* Writes one item, waits (up to 5 s) for its output, then writes a second
 * and closes: a stream that held outputs until the next input would make
 * the wait time out. */
static void *
feed(void *arg)
{
    feeder *f = arg;
    assert_int_equal(write(f->write_fd, "a", 1), 1);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&f->source->lock);
    while (f->source->outputs < 1) {
        if (pthread_cond_timedwait(&f->source->changed, &f->source->lock, &deadline) != 0) {
            break;
        }
    }
    f->saw_first_early = f->source->outputs >= 1;
    pthread_mutex_unlock(&f->source->lock);
    assert_int_equal(write(f->write_fd, "b", 1), 1);
    close(f->write_fd);
    return NULL;
}

static void
an_output_does_not_wait_for_the_next_input(void **state)
{
    (void)state;
    test_pool tp = {.kind = "thread", .plugin = "passthrough", .batch_wait_us = TP_ZERO};
    mpb_server *server = test_server_start(&tp);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pipe_source source = {.fd = fds[0]};
    pthread_mutex_init(&source.lock, NULL);
    pthread_cond_init(&source.changed, NULL);
    feeder f = {.source = &source, .write_fd = fds[1]};
    pthread_t thread;
    pthread_create(&thread, NULL, feed, &f);
    mpb_stream_options opts = {.input_ready = pipe_ready};
    assert_int_equal(mpb_server_stream(server, pipe_next, pipe_output, &source, &opts), 0);
    pthread_join(thread, NULL);
    assert_true(f.saw_first_early);
    assert_int_equal(source.outputs, 2);
    close(fds[0]);
    pthread_cond_destroy(&source.changed);
    pthread_mutex_destroy(&source.lock);
    mpb_server_destroy(&server);
}

/* A source that ends before it gives anything: the stream returns. */
static void
an_empty_source_ends_the_stream(void **state)
{
    (void)state;
    test_pool tp = {.kind = "thread", .plugin = "passthrough"};
    mpb_server *server = test_server_start(&tp);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[1]);
    pipe_source source = {.fd = fds[0]};
    pthread_mutex_init(&source.lock, NULL);
    pthread_cond_init(&source.changed, NULL);
    mpb_stream_options opts = {.input_ready = pipe_ready};
    assert_int_equal(mpb_server_stream(server, pipe_next, pipe_output, &source, &opts), 0);
    assert_int_equal(source.outputs, 0);
    close(fds[0]);
    pthread_cond_destroy(&source.changed);
    pthread_mutex_destroy(&source.lock);
    mpb_server_destroy(&server);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_output_does_not_wait_for_the_next_input),
        cmocka_unit_test(an_empty_source_ends_the_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
