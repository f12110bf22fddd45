/*
 * The wire codec: every frame round-trips, and nothing a peer can send
 * crashes the decoder: it answers MPB_EPROTO.
 */
#include "support.h"

#include "core/wire.h"

typedef struct codec {
    mpb__wire_buf buf;
    msgpack_zone zone;
} codec;

static int
setup(void **state)
{
    codec *c = mpb_calloc(1, sizeof *c);
    mpb__wire_buf_init(&c->buf);
    msgpack_zone_init(&c->zone, 1024);
    *state = c;
    return 0;
}

static int
teardown(void **state)
{
    codec *c = *state;
    mpb__wire_buf_free(&c->buf);
    msgpack_zone_destroy(&c->zone);
    free(c);
    return 0;
}

static mpb__wire_str
ws(const char *s)
{
    return (mpb__wire_str){s, strlen(s)};
}

static void
assert_wstr(mpb__wire_str got, const char *expect)
{
    assert_int_equal(got.len, strlen(expect));
    assert_memory_equal(got.ptr, expect, got.len);
}

static void
ready_round_trips(void **state)
{
    codec *c = *state;
    mpb__ready in = {.version = MPB_PROTOCOL_VERSION,
                     .name = ws("mlp-1"),
                     .pid = 4242,
                     .cpus = ws("2-3"),
                     .capacity = 128,
                     .plugin = ws("mlp"),
                     .batch_size = 64,
                     .batch_wait_us = 10000,
                     .host = ws("box")};
    mpb__wire_pack_ready(&c->buf, &in);
    mpb__frame f;
    assert_int_equal(mpb__wire_decode(&c->zone, c->buf.sbuf.data, c->buf.sbuf.size, &f, NULL, 0),
                     0);
    assert_int_equal(f.type, MPB_FRAME_READY);
    assert_int_equal(f.u.ready.version, MPB_PROTOCOL_VERSION);
    assert_wstr(f.u.ready.name, "mlp-1");
    assert_int_equal(f.u.ready.pid, 4242);
    assert_wstr(f.u.ready.cpus, "2-3");
    assert_int_equal(f.u.ready.capacity, 128);
    assert_wstr(f.u.ready.plugin, "mlp");
    assert_int_equal(f.u.ready.batch_size, 64);
    assert_int_equal(f.u.ready.batch_wait_us, 10000);
    assert_wstr(f.u.ready.host, "box");
}

static void
items_and_results_round_trip(void **state)
{
    codec *c = *state;
    mpb__wire_pack_items_begin(&c->buf, 3);
    mpb__wire_pack_item(&c->buf, 1, 0, "a", 1);
    mpb__wire_pack_item(&c->buf, UINT64_MAX, 500, "", 0);
    mpb__wire_pack_item(&c->buf, 7, 1, "\0\1\2", 3);
    mpb__frame f;
    assert_int_equal(mpb__wire_decode(&c->zone, c->buf.sbuf.data, c->buf.sbuf.size, &f, NULL, 0),
                     0);
    assert_int_equal(f.type, MPB_FRAME_ITEMS);
    assert_int_equal(f.u.list.count, 3);
    mpb__wire_item item;
    int id_known;
    assert_int_equal(mpb__wire_item_at(&f, 1, &item, &id_known), 0);
    assert_true(item.id == UINT64_MAX);
    assert_int_equal(item.budget_us, 500);
    assert_int_equal(item.len, 0);
    assert_int_equal(mpb__wire_item_at(&f, 2, &item, &id_known), 0);
    assert_int_equal(item.len, 3);
    assert_memory_equal(item.data, "\0\1\2", 3);

    assert_false(item.in_shm);
    assert_int_equal(f.u.list.backlog, 0); /* none said */

    /* items in shared memory, and the coordinator's backlog */
    mpb__wire_buf_reset(&c->buf);
    mpb__wire_pack_items_begin_backlog(&c->buf, 2);
    mpb__wire_pack_item_shm(&c->buf, 4, 0, 4096, 1024);
    mpb__wire_pack_item(&c->buf, 5, 0, "b", 1);
    mpb__wire_pack_items_end_backlog(&c->buf, 17, 5);
    assert_int_equal(mpb__wire_decode(&c->zone, c->buf.sbuf.data, c->buf.sbuf.size, &f, NULL, 0),
                     0);
    assert_int_equal(f.u.list.backlog, 17);
    assert_int_equal(f.u.list.values_read, 5);
    assert_int_equal(mpb__wire_item_at(&f, 0, &item, &id_known), 0);
    assert_true(item.in_shm);
    assert_int_equal(item.shm_offset, 4096);
    assert_int_equal(item.len, 1024);
    assert_null(item.data);
    assert_int_equal(mpb__wire_item_at(&f, 1, &item, &id_known), 0);
    assert_false(item.in_shm);
    assert_memory_equal(item.data, "b", 1);

    mpb__wire_buf_reset(&c->buf);
    mpb__wire_pack_results_begin(&c->buf, 3);
    mpb__wire_pack_result_value(&c->buf, 9, "out", 3);
    mpb__wire_pack_result_error(&c->buf, 10, "ValueError", "bad input");
    mpb__wire_pack_result_value_shm(&c->buf, 11, 640, 4096);
    assert_int_equal(mpb__wire_decode(&c->zone, c->buf.sbuf.data, c->buf.sbuf.size, &f, NULL, 0),
                     0);
    mpb__wire_result r;
    assert_int_equal(mpb__wire_result_at(&f, 0, &r), 0);
    assert_int_equal(r.id, 9);
    assert_false(r.is_error);
    assert_memory_equal(r.data, "out", 3);
    assert_int_equal(mpb__wire_result_at(&f, 1, &r), 0);
    assert_true(r.is_error);
    assert_wstr(r.type, "ValueError");
    assert_wstr(r.message, "bad input");
    assert_int_equal(mpb__wire_result_at(&f, 2, &r), 0);
    assert_false(r.is_error);
    assert_true(r.in_shm);
    assert_int_equal(r.shm_offset, 640);
    assert_int_equal(r.len, 4096);
}

static void
telemetry_error_and_signals_round_trip(void **state)
{
    codec *c = *state;
    mpb_batch_telemetry t = {.size = 64,
                             .errors = 2,
                             .first_wait_us = 12,
                             .compute_us = 345,
                             .closed_by = MPB_BATCH_CLOSED_TIMER,
                             .queued_after = 5};
    mpb__wire_pack_telemetry(&c->buf, &t);
    mpb__frame f;
    assert_int_equal(mpb__wire_decode(&c->zone, c->buf.sbuf.data, c->buf.sbuf.size, &f, NULL, 0),
                     0);
    assert_int_equal(f.type, MPB_FRAME_TELEMETRY);
    assert_int_equal(f.u.telemetry.size, 64);
    assert_int_equal(f.u.telemetry.errors, 2);
    assert_int_equal(f.u.telemetry.first_wait_us, 12);
    assert_int_equal(f.u.telemetry.compute_us, 345);
    assert_int_equal(f.u.telemetry.closed_by, MPB_BATCH_CLOSED_TIMER);
    assert_int_equal(f.u.telemetry.queued_after, 5);

    mpb__wire_buf_reset(&c->buf);
    mpb__wire_pack_error(&c->buf, MPB_EPROTO, "what?");
    assert_int_equal(mpb__wire_decode(&c->zone, c->buf.sbuf.data, c->buf.sbuf.size, &f, NULL, 0),
                     0);
    assert_int_equal(f.type, MPB_FRAME_ERROR);
    assert_int_equal(f.u.error.code, MPB_EPROTO);
    assert_wstr(f.u.error.message, "what?");

    mpb__frame_type signals[] = {MPB_FRAME_HEARTBEAT, MPB_FRAME_SHUTDOWN, MPB_FRAME_BYE};
    for (size_t i = 0; i < 3; i++) {
        mpb__wire_buf_reset(&c->buf);
        mpb__wire_pack_signal(&c->buf, signals[i]);
        assert_int_equal(
            mpb__wire_decode(&c->zone, c->buf.sbuf.data, c->buf.sbuf.size, &f, NULL, 0), 0);
        assert_int_equal(f.type, signals[i]);
    }
}

static void
every_truncation_is_a_protocol_error(void **state)
{
    codec *c = *state;
    mpb__ready ready = {.version = 1,
                        .name = ws("w"),
                        .cpus = ws("0"),
                        .plugin = ws("p"),
                        .host = ws("h"),
                        .capacity = 1};
    mpb__wire_pack_ready(&c->buf, &ready);
    char err[128];
    mpb__frame f;
    for (size_t len = 0; len < c->buf.sbuf.size; len++) {
        err[0] = '\0';
        assert_int_equal(mpb__wire_decode(&c->zone, c->buf.sbuf.data, len, &f, err, sizeof err),
                         MPB_EPROTO);
        assert_true(strlen(err) > 0);
    }
}

static void
wrong_shapes_are_protocol_errors(void **state)
{
    codec *c = *state;
    struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\x01", 1},                         /* not an array */
        {"\x90", 1},                         /* empty array */
        {"\x91\xa1x", 3},                    /* type is a string */
        {"\x91\x63", 2},                     /* unknown type 99 */
        {"\x92\x02\x01", 3},                 /* ITEMS without a list */
        {"\x92\x01\x02", 3},                 /* READY too short */
        {"\x93\x08\xa1x\xa1y", 5},           /* ERROR code is a string */
        {"\x92\x04\x01", 3},                 /* TELEMETRY too short */
        {"\xdd\xff\xff\xff\xff", 5},         /* array claiming 2^32 elements in 5 bytes */
        {"\x92\x02\xdd\x7f\xff\xff\xff", 7}, /* ITEMS list claiming 2^31 entries */
        {"\xc6\xff\xff\xff\xff", 5},         /* bin claiming 4 GiB */
        {"\x91\x05\x00", 3},                 /* trailing bytes after the frame */
    };
    mpb__frame f;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(mpb__wire_decode(&c->zone, cases[i].bytes, cases[i].len, &f, NULL, 0),
                         MPB_EPROTO);
    }
    /* A list of malformed entries decodes; each entry is rejected alone. */
    const char items[] = "\x92\x02\x93\x01\x92\x05\x01\x93\x07\x00\x01";
    assert_int_equal(mpb__wire_decode(&c->zone, items, sizeof items - 1, &f, NULL, 0), 0);
    mpb__wire_item item;
    int id_known;
    assert_int_equal(mpb__wire_item_at(&f, 0, &item, &id_known), MPB_EPROTO);
    assert_false(id_known);
    assert_int_equal(mpb__wire_item_at(&f, 1, &item, &id_known), MPB_EPROTO);
    assert_true(id_known);
    assert_int_equal(item.id, 5);
    assert_int_equal(mpb__wire_item_at(&f, 2, &item, &id_known), MPB_EPROTO);
    assert_true(id_known);
}

static uint64_t
next_random(uint64_t *rng)
{
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    return *rng;
}

/* Valid frames of every kind, concatenated as samples to mutate. */
static void
pack_samples(mpb__wire_buf *buf, size_t *offsets, size_t *count)
{
    mpb__ready ready = {.version = 1,
                        .name = ws("w-0"),
                        .cpus = ws("0"),
                        .plugin = ws("p"),
                        .host = ws("h"),
                        .capacity = 8,
                        .batch_size = 4};
    mpb_batch_telemetry t = {.size = 3, .compute_us = 9};
    *count = 0;
    offsets[(*count)++] = buf->sbuf.size;
    mpb__wire_pack_ready(buf, &ready);
    offsets[(*count)++] = buf->sbuf.size;
    mpb__wire_pack_items_begin(buf, 3);
    for (uint64_t i = 0; i < 3; i++) {
        mpb__wire_pack_item(buf, i << 24, i, "abcd", 4);
    }
    offsets[(*count)++] = buf->sbuf.size;
    mpb__wire_pack_results_begin(buf, 2);
    mpb__wire_pack_result_value(buf, 1, "xy", 2);
    mpb__wire_pack_result_error(buf, 2, "T", "m");
    offsets[(*count)++] = buf->sbuf.size;
    mpb__wire_pack_telemetry(buf, &t);
    offsets[(*count)++] = buf->sbuf.size;
    mpb__wire_pack_error(buf, -4001, "e");
    offsets[*count] = buf->sbuf.size;
}

static void
mutated_frames_never_crash(void **state)
{
    codec *c = *state;
    size_t offsets[8];
    size_t samples;
    pack_samples(&c->buf, offsets, &samples);
    unsigned char bytes[256];
    uint64_t rng = 88172645463325252ull;
    int decoded = 0;
    for (int round = 0; round < 200000; round++) {
        size_t k = next_random(&rng) % samples;
        size_t len = offsets[k + 1] - offsets[k];
        memcpy(bytes, c->buf.sbuf.data + offsets[k], len);
        int flips = 1 + (int)(next_random(&rng) % 3);
        for (int i = 0; i < flips; i++) {
            bytes[next_random(&rng) % len] = (unsigned char)next_random(&rng);
        }
        if (next_random(&rng) % 4 == 0) {
            len = next_random(&rng) % (len + 1); /* and sometimes truncate */
        }
        mpb__frame f;
        int rc = mpb__wire_decode(&c->zone, bytes, len, &f, NULL, 0);
        assert_true(rc == 0 || rc == MPB_EPROTO);
        for (uint32_t i = 0; rc == 0 && f.type == MPB_FRAME_ITEMS && i < f.u.list.count; i++) {
            mpb__wire_item item;
            int id_known;
            int item_rc = mpb__wire_item_at(&f, i, &item, &id_known);
            assert_true(item_rc == 0 || item_rc == MPB_EPROTO);
        }
        for (uint32_t i = 0; rc == 0 && f.type == MPB_FRAME_RESULTS && i < f.u.list.count; i++) {
            mpb__wire_result result;
            int result_rc = mpb__wire_result_at(&f, i, &result);
            assert_true(result_rc == 0 || result_rc == MPB_EPROTO);
        }
        decoded += rc == 0;
    }
    print_message("%d of 200000 mutated frames still decoded\n", decoded);
    assert_true(decoded > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ready_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(items_and_results_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(telemetry_error_and_signals_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(every_truncation_is_a_protocol_error, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_shapes_are_protocol_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(mutated_frames_never_crash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
