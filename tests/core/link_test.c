/*
 * The link between the coordinator and a local worker: messages arrive
 * whole and in order both ways, whatever their size against the ring; a
 * full ring queues instead of blocking or failing; each side's eventfd is
 * written only when that side sleeps (or waits for room); a record that
 * does not fit the ring's format kills the link instead of being read;
 * and a real child process echoes a long stream through it.
 */
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#include "core/link.h"

/* Both ends in this process: the worker's end on copies of the fds. */
static void
open_pair(size_t ring_bytes, mpb__link **coord, mpb__link **worker)
{
    assert_int_equal(mpb__link_open(coord, ring_bytes, NULL, 0), 0);
    int fds[3];
    mpb__link_fds(*coord, fds);
    int copies[3] = {dup(fds[0]), dup(fds[1]), dup(fds[2])};
    assert_int_equal(mpb__link_attach(worker, copies, NULL, 0), 0);
}

static int
readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

/* Message i: i's bytes, of a length that varies from 0 to about 9 KB. */
static size_t
message_len(unsigned i)
{
    return (i * 7919u) % 9000u;
}

static void
fill(unsigned char *buf, unsigned i, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        buf[k] = (unsigned char)(i * 13u + k);
    }
}

static int
matches(const void *data, size_t len, unsigned i)
{
    static unsigned char expect[200000];
    fill(expect, i, len);
    return memcmp(data, expect, len) == 0;
}

static void
messages_arrive_whole_and_in_order_both_ways(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(64 * 1024, &coord, &worker);
    static unsigned char buf[9000];
    for (int way = 0; way < 2; way++) {
        mpb__link *from = way == 0 ? coord : worker;
        mpb__link *to = way == 0 ? worker : coord;
        unsigned sent = 0;
        unsigned got = 0;
        while (got < 3000) {
            /* a few at a time, so the ring wraps many times */
            for (int k = 0; k < 7 && sent < 3000; k++, sent++) {
                fill(buf, sent, message_len(sent));
                mpb__link_send(from, buf, message_len(sent));
            }
            mpb__link_flush(from);
            const void *data;
            size_t len;
            while (mpb__link_recv(to, &data, &len) == 1) {
                assert_int_equal(len, message_len(got));
                assert_true(matches(data, len, got));
                got++;
            }
        }
        assert_int_equal(sent, 3000);
        assert_int_equal(mpb__link_flush(from), 0);
    }
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

static void
a_full_ring_queues_then_delivers_in_order(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(4096, &coord, &worker);
    unsigned char buf[600];
    for (unsigned i = 0; i < 50; i++) { /* 30 KB into a 4 KiB ring, nobody reading */
        memset(buf, (int)i, sizeof buf);
        mpb__link_send(coord, buf, sizeof buf);
    }
    assert_true(mpb__link_flush(coord) > 20000);
    unsigned got = 0;
    const void *data;
    size_t len;
    while (got < 50) {
        int rc = mpb__link_recv(worker, &data, &len);
        assert_true(rc >= 0);
        if (rc == 0) {
            mpb__link_flush(coord);
            continue;
        }
        assert_int_equal(len, sizeof buf);
        assert_int_equal(((const unsigned char *)data)[599], got);
        got++;
    }
    assert_int_equal(mpb__link_flush(coord), 0);
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

static void
a_message_larger_than_the_ring_is_cut_and_joined(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(4096, &coord, &worker);
    size_t big = 150000;
    unsigned char *buf = mpb_malloc(big);
    fill(buf, 7, big);
    mpb__link_send(worker, "before", 6);
    mpb__link_send(worker, buf, big);
    mpb__link_send(worker, "after", 5);
    const void *data;
    size_t len;
    int seen = 0;
    for (int rounds = 0; seen < 3 && rounds < 10000; rounds++) {
        int rc = mpb__link_recv(coord, &data, &len);
        assert_true(rc >= 0);
        if (rc == 0) {
            mpb__link_flush(worker);
            continue;
        }
        if (seen == 0) {
            assert_int_equal(len, 6);
            assert_memory_equal(data, "before", 6);
        } else if (seen == 1) {
            assert_int_equal(len, big);
            assert_true(matches(data, len, 7));
        } else {
            assert_int_equal(len, 5);
            assert_memory_equal(data, "after", 5);
        }
        seen++;
    }
    assert_int_equal(seen, 3);
    free(buf);
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

static void
the_wake_fd_is_written_only_for_a_sleeper(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(4096, &coord, &worker);
    int worker_fd = mpb__link_wake_fd(worker);
    int coord_fd = mpb__link_wake_fd(coord);
    /* awake: no write */
    mpb__link_send(coord, "a", 1);
    assert_false(readable(worker_fd));
    assert_int_equal(mpb__link_arm(worker), 1); /* a message is there: do not sleep */
    const void *data;
    size_t len;
    assert_int_equal(mpb__link_recv(worker, &data, &len), 1);
    assert_int_equal(mpb__link_recv(worker, &data, &len), 0);
    /* asleep: one write for a burst */
    assert_int_equal(mpb__link_arm(worker), 0);
    mpb__link_send(coord, "b", 1);
    mpb__link_send(coord, "c", 1);
    assert_true(readable(worker_fd));
    mpb__link_clear(worker);
    assert_false(readable(worker_fd));
    assert_int_equal(mpb__link_recv(worker, &data, &len), 1);
    assert_int_equal(mpb__link_recv(worker, &data, &len), 1);
    assert_memory_equal(data, "c", 1);
    assert_int_equal(mpb__link_recv(worker, &data, &len), 0);
    /* a producer waiting for room is woken when the consumer frees some */
    unsigned char buf[1000] = {0};
    for (int i = 0; i < 8; i++) {
        mpb__link_send(coord, buf, sizeof buf);
    }
    assert_true(mpb__link_flush(coord) > 0);
    assert_false(readable(coord_fd));
    assert_int_equal(mpb__link_recv(worker, &data, &len), 1);
    assert_false(readable(coord_fd)); /* borrowed: its room is not back yet */
    assert_int_equal(mpb__link_recv(worker, &data, &len), 1);
    assert_true(readable(coord_fd));
    assert_false(readable(worker_fd)); /* the worker is awake: nobody wrote its fd */
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

/* A replacement worker on a link that was reset: its first message
 * wakes the coordinator, who was armed before the reset; what the old
 * worker left unread is gone. */
static void
after_a_reset_a_new_worker_wakes_the_coordinator(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(4096, &coord, &worker);
    assert_int_equal(mpb__link_arm(coord), 0);
    mpb__link_send(worker, "old", 3);
    mpb__link_send(coord, "stale", 5);
    mpb__link_clear(coord);
    mpb__link_close(&worker);
    mpb__link_reset(coord);
    int fds[3];
    mpb__link_fds(coord, fds);
    int copies[3] = {dup(fds[0]), dup(fds[1]), dup(fds[2])};
    assert_int_equal(mpb__link_attach(&worker, copies, NULL, 0), 0);
    const void *data;
    size_t len;
    assert_int_equal(mpb__link_recv(worker, &data, &len), 0); /* "stale" is gone */
    mpb__link_send(worker, "READY", 5);
    assert_true(readable(mpb__link_wake_fd(coord)));
    assert_int_equal(mpb__link_recv(coord, &data, &len), 1);
    assert_memory_equal(data, "READY", 5);
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

static void
a_record_outside_the_format_kills_the_link(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(4096, &coord, &worker);
    mpb__link_send(coord, "hello", 5);
    int fds[3];
    mpb__link_fds(coord, fds);
    /* the first record of the ring to the worker starts after the header
     * page: make its length larger than the ring */
    unsigned char *map = mmap(NULL, 4096 * 3, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    assert_true(map != MAP_FAILED);
    uint32_t huge = 1u << 30;
    memcpy(map + 4096, &huge, sizeof huge);
    const void *data;
    size_t len;
    assert_int_equal(mpb__link_recv(worker, &data, &len), MPB_EPROTO);
    assert_int_equal(mpb__link_recv(worker, &data, &len), MPB_EPROTO);
    assert_int_equal(mpb__link_arm(worker), 1); /* a dead link never sleeps silently */
    munmap(map, 4096 * 3);
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

/* The ring's shared pages, as a peer sees them: the header page, then
 * ring 0 (to the worker) and ring 1. */
static unsigned char *
map_shared(mpb__link *link, size_t ring_bytes)
{
    int fds[3];
    mpb__link_fds(link, fds);
    unsigned char *map =
        mmap(NULL, 4096 + 2 * ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    assert_true(map != MAP_FAILED);
    return map;
}

/* A message cut into records arrives over several receive calls: each
 * call reads what was there when it began, returns 0 while the message is
 * incomplete, and the message comes whole once its last record is in. */
static void
a_message_still_arriving_is_not_handed_out(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(4096, &coord, &worker);
    size_t big = 3000; /* records of at most 1024 bytes: three of them */
    unsigned char *buf = mpb_malloc(big);
    fill(buf, 3, big);
    const void *data;
    size_t len;
    /* fill the ring so that only part of the message fits now */
    unsigned char filler[1500] = {0};
    mpb__link_send(worker, filler, sizeof filler);
    mpb__link_send(worker, buf, big);
    assert_true(mpb__link_flush(worker) > 0); /* its tail waits for room */
    assert_int_equal(mpb__link_recv(coord, &data, &len), 1);
    assert_int_equal(len, sizeof filler);
    assert_int_equal(mpb__link_recv(coord, &data, &len), 0); /* the head of it only */
    assert_int_equal(mpb__link_flush(worker), 0);
    assert_int_equal(mpb__link_recv(coord, &data, &len), 1);
    assert_int_equal(len, big);
    assert_true(matches(data, len, 3));
    free(buf);
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

/* A peer that moves its tail where it cannot be does not make the other
 * side write over what it has not read: the ring reads as full. */
static void
a_bogus_tail_reads_as_a_full_ring(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(4096, &coord, &worker);
    unsigned char *map = map_shared(coord, 4096);
    mpb__link_send(coord, "one", 3);
    /* ring 0's control block is the header page's second cache line
     * (after magic and size), its tail the line after its head; put the
     * tail past head */
    uint64_t bogus = 1u << 20;
    memcpy(map + 128, &bogus, sizeof bogus);
    mpb__link_send(coord, "two", 3);
    assert_true(mpb__link_flush(coord) > 0); /* queued, not written */
    munmap(map, 4096 + 2 * 4096);
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

/* Reset drops what was queued for the old worker and a half-joined
 * message from it. */
static void
reset_forgets_queued_and_half_joined_messages(void **state)
{
    (void)state;
    mpb__link *coord;
    mpb__link *worker;
    open_pair(4096, &coord, &worker);
    unsigned char buf[3000] = {0};
    for (int i = 0; i < 4; i++) {
        mpb__link_send(coord, buf, sizeof buf); /* more than fits: queued */
    }
    mpb__link_send(worker, buf, 2000);
    mpb__link_send(worker, buf, sizeof buf);
    const void *data;
    size_t len;
    assert_int_equal(mpb__link_recv(coord, &data, &len), 1);
    assert_int_equal(mpb__link_recv(coord, &data, &len), 0); /* half of the second */
    assert_true(mpb__link_flush(coord) > 0);
    mpb__link_close(&worker);
    mpb__link_reset(coord);
    assert_int_equal(mpb__link_flush(coord), 0);
    int fds[3];
    mpb__link_fds(coord, fds);
    int copies[3] = {dup(fds[0]), dup(fds[1]), dup(fds[2])};
    assert_int_equal(mpb__link_attach(&worker, copies, NULL, 0), 0);
    assert_int_equal(mpb__link_recv(worker, &data, &len), 0);
    mpb__link_send(worker, "fresh", 5);
    assert_int_equal(mpb__link_recv(coord, &data, &len), 1);
    assert_int_equal(len, 5); /* not glued to the old half */
    assert_memory_equal(data, "fresh", 5);
    mpb__link_close(&worker);
    mpb__link_close(&coord);
}

static void
attaching_to_something_else_fails(void **state)
{
    (void)state;
    int fds[3] = {memfd_create("not-a-link", MFD_CLOEXEC), -1, -1};
    assert_true(fds[0] >= 0);
    assert_int_equal(ftruncate(fds[0], 4096 * 3), 0);
    mpb__link *link = NULL;
    char err[128] = "";
    assert_int_equal(mpb__link_attach(&link, fds, err, sizeof err), MPB_EINVAL);
    assert_null(link);
    assert_non_null(strstr(err, "not a link"));
    mpb__link *ignored = NULL;
    assert_int_equal(mpb__link_open(&ignored, 5000, NULL, 0), MPB_EINVAL); /* not a power of 2 */
}

/* The child's end: echoes every message until "end", sleeping on its fd
 * between bursts. Exit status 0 when all went well. */
static int
echo_child(mpb__link *link)
{
    for (;;) {
        if (!mpb__link_arm(link)) {
            struct pollfd pfd = {.fd = mpb__link_wake_fd(link), .events = POLLIN};
            if (poll(&pfd, 1, 10000) != 1) {
                return 2;
            }
            mpb__link_clear(link);
        }
        mpb__link_flush(link);
        const void *data;
        size_t len;
        int rc;
        while ((rc = mpb__link_recv(link, &data, &len)) == 1) {
            if (len == 3 && memcmp(data, "end", 3) == 0) {
                return mpb__link_drain(link, 10000) == 0 ? 0 : 3;
            }
            mpb__link_send(link, data, len);
        }
        if (rc < 0) {
            return 4;
        }
    }
}

static void
a_child_process_echoes_a_stream_through_the_link(void **state)
{
    (void)state;
    mpb__link *coord;
    assert_int_equal(mpb__link_open(&coord, 64 * 1024, NULL, 0), 0);
    int fds[3];
    mpb__link_fds(coord, fds);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int copies[3] = {dup(fds[0]), dup(fds[1]), dup(fds[2])};
        mpb__link *mine = NULL;
        _exit(mpb__link_attach(&mine, copies, NULL, 0) == 0 ? echo_child(mine) : 1);
    }
    enum { N = 20000 };
    static unsigned char buf[200000];
    unsigned sent = 0;
    unsigned got = 0;
    unsigned wrong = 0;
    while (got < N) {
        /* keep at most 64 in flight, the way credit bounds a worker */
        while (sent < N && sent - got < 64) {
            size_t len = sent % 1000 == 999 ? 100000 + sent : message_len(sent);
            fill(buf, sent, len);
            mpb__link_send(coord, buf, len);
            sent++;
        }
        if (!mpb__link_arm(coord)) {
            struct pollfd pfd = {.fd = mpb__link_wake_fd(coord), .events = POLLIN};
            assert_int_equal(poll(&pfd, 1, 10000), 1);
            mpb__link_clear(coord);
        }
        mpb__link_flush(coord);
        const void *data;
        size_t len;
        int rc;
        while ((rc = mpb__link_recv(coord, &data, &len)) == 1) {
            size_t expect = got % 1000 == 999 ? 100000 + got : message_len(got);
            wrong += len != expect || !matches(data, len, got);
            got++;
        }
        assert_true(rc >= 0);
    }
    mpb__link_send(coord, "end", 3);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(wrong, 0);
    mpb__link_close(&coord);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messages_arrive_whole_and_in_order_both_ways),
        cmocka_unit_test(a_full_ring_queues_then_delivers_in_order),
        cmocka_unit_test(a_message_larger_than_the_ring_is_cut_and_joined),
        cmocka_unit_test(the_wake_fd_is_written_only_for_a_sleeper),
        cmocka_unit_test(after_a_reset_a_new_worker_wakes_the_coordinator),
        cmocka_unit_test(a_record_outside_the_format_kills_the_link),
        cmocka_unit_test(a_message_still_arriving_is_not_handed_out),
        cmocka_unit_test(a_bogus_tail_reads_as_a_full_ring),
        cmocka_unit_test(reset_forgets_queued_and_half_joined_messages),
        cmocka_unit_test(attaching_to_something_else_fails),
        cmocka_unit_test(a_child_process_echoes_a_stream_through_the_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
