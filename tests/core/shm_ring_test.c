/*
 * The shared item ring: spans back to back, freed in any order, never
 * overlapping a span still taken, and full means "send inline", not a
 * failure. A worker's view of the same memfd sees what was written.
 */
#include <sys/mman.h>

#include "support.h"

#include "core/shm_ring.h"

typedef struct live {
    size_t offset;
    size_t len;
    uint64_t seq;
} live;

static void
spans_are_contiguous_and_reclaimed_in_any_order(void **state)
{
    (void)state;
    mpb__shm_ring ring;
    assert_int_equal(mpb__shm_ring_open(&ring, 1000, "test", NULL, 0), 0);
    size_t offset[4];
    uint64_t seq[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(mpb__shm_ring_alloc(&ring, 200, &offset[i], &seq[i]), 0);
        assert_int_equal(offset[i], (size_t)i * 200); /* back to back */
    }
    size_t o;
    uint64_t s;
    assert_int_equal(mpb__shm_ring_alloc(&ring, 300, &o, &s), MPB_EAGAIN); /* 200 left */
    mpb__shm_ring_free(&ring, seq[1]); /* not the oldest: nothing reclaimed yet */
    assert_int_equal(mpb__shm_ring_alloc(&ring, 300, &o, &s), MPB_EAGAIN);
    mpb__shm_ring_free(&ring, seq[0]); /* the two oldest go: 400 free at the front */
    assert_int_equal(mpb__shm_ring_alloc(&ring, 300, &o, &s), 0);
    assert_int_equal(o, 0); /* 200 at the end were too few: it wrapped */
    mpb__shm_ring_reset(&ring);
    assert_int_equal(mpb__shm_ring_alloc(&ring, 1000, &o, &s), 0);
    assert_int_equal(o, 0);
    mpb__shm_ring_free(&ring, seq[2]); /* forgotten by the reset: ignored */
    assert_int_equal(mpb__shm_ring_alloc(&ring, 1, &o, &s), MPB_EAGAIN);
    mpb__shm_ring_close(&ring);
}

static void
random_use_never_overlaps(void **state)
{
    (void)state;
    mpb__shm_ring ring;
    const size_t size = 1 << 16;
    assert_int_equal(mpb__shm_ring_open(&ring, size, "test", NULL, 0), 0);
    live spans[512];
    size_t n = 0;
    uint64_t rng = 12345;
    size_t allocated = 0;
    for (int step = 0; step < 200000; step++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int take = (rng >> 33) % 3 != 0 && n < 512;
        if (take) {
            size_t len = 1 + (size_t)((rng >> 40) % 3000);
            live l = {.len = len};
            if (mpb__shm_ring_alloc(&ring, len, &l.offset, &l.seq) != 0) {
                continue;
            }
            assert_true(l.offset + len <= size);
            for (size_t i = 0; i < n; i++) {
                assert_true(l.offset + len <= spans[i].offset ||
                            spans[i].offset + spans[i].len <= l.offset);
            }
            memset(ring.map + l.offset, (int)(l.seq & 0xff), len);
            spans[n++] = l;
            allocated++;
        } else if (n > 0) {
            size_t i = (size_t)((rng >> 20) % n); /* any order */
            for (size_t k = 0; k < spans[i].len; k++) {
                assert_int_equal(ring.map[spans[i].offset + k], spans[i].seq & 0xff);
            }
            mpb__shm_ring_free(&ring, spans[i].seq);
            spans[i] = spans[--n];
        }
    }
    assert_true(allocated > 10000);
    while (n > 0) {
        mpb__shm_ring_free(&ring, spans[--n].seq);
    }
    assert_int_equal(ring.used, 0);
    mpb__shm_ring_close(&ring);
}

static void
a_second_mapping_sees_the_bytes(void **state)
{
    (void)state;
    mpb__shm_ring ring;
    assert_int_equal(mpb__shm_ring_open(&ring, 4096, "test", NULL, 0), 0);
    assert_true(ring.fd >= 10);
    const unsigned char *view = mmap(NULL, 4096, PROT_READ, MAP_SHARED, ring.fd, 0);
    assert_true(view != MAP_FAILED);
    size_t o;
    uint64_t s;
    assert_int_equal(mpb__shm_ring_alloc(&ring, 5, &o, &s), 0);
    memcpy(ring.map + o, "hello", 5);
    assert_memory_equal(view + o, "hello", 5);
    munmap((void *)view, 4096);
    mpb__shm_ring_close(&ring);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spans_are_contiguous_and_reclaimed_in_any_order),
        cmocka_unit_test(random_use_never_overlaps),
        cmocka_unit_test(a_second_mapping_sees_the_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
