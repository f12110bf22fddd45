/*
 * mpb-bench-zmq: what plain ZeroMQ gets on this machine, written apart
 * from mpbatch (libzmq and msgpack-c only, no code of the project), to
 * check `mpb bench`'s raw and rtt baselines against:
 *
 *   raw   messages of BATCH 16-byte items packed as a msgpack array of
 *         bin, to N echo processes (unpacked and packed again there), four
 *         messages in flight per process: items/s over 2 s
 *   rtt   then a 16-byte message to an echo process over ipc and back, one
 *         at a time: p50 and p99 of 20000 round trips
 *
 * Echo processes are forked before any ZeroMQ context exists.
 *
 *   mpb-bench-zmq [--workers 1] [--batch-size 64]
 */
#include <getopt.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#define ITEM_BYTES 16
#define WINDOW 4

static double
now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int
compare_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The echo: a DEALER that unpacks every message and packs it again. */
static void
echo_main(const char *endpoint)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(s, endpoint);
    zmq_send(s, "h", 1, 0); /* hello: the router learns this echo's id */
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (;;) {
        if (zmq_msg_recv(&msg, s, 0) < 0) {
            break;
        }
        size_t len = zmq_msg_size(&msg);
        if (len == 0) {
            break; /* the end */
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, zmq_msg_data(&msg), len, NULL) == MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_ARRAY) {
            msgpack_sbuffer_clear(&out);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, u.data.via.array.size);
            for (uint32_t i = 0; i < u.data.via.array.size; i++) {
                const msgpack_object_bin *b = &u.data.via.array.ptr[i].via.bin;
                msgpack_pack_bin(&pk, b->size);
                msgpack_pack_bin_body(&pk, b->ptr, b->size);
            }
            zmq_send(s, out.data, out.size, 0);
        } else {
            zmq_send(s, zmq_msg_data(&msg), len, 0); /* not an array: as it came */
        }
        msgpack_unpacked_destroy(&u);
    }
    zmq_msg_close(&msg);
    msgpack_sbuffer_destroy(&out);
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
}

int
main(int argc, char **argv)
{
    int workers = 1;
    int batch = 64;
    static const struct option opts[] = {{"workers", required_argument, NULL, 'w'},
                                         {"batch-size", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'w') {
            workers = atoi(optarg);
        } else if (opt == 'b') {
            batch = atoi(optarg);
        } else {
            fprintf(stderr, "usage: mpb-bench-zmq [--workers 1] [--batch-size 64]\n");
            return 2;
        }
    }
    if (workers < 1 || workers > 16 || batch < 1 || batch > 4096) {
        fprintf(stderr, "mpb-bench-zmq: --workers 1..16, --batch-size 1..4096\n");
        return 2;
    }
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/mpb-bench-zmq-%d.ipc", (int)getpid());
    pid_t pids[16];
    for (int i = 0; i < workers; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            echo_main(endpoint);
        }
    }
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    if (zmq_bind(router, endpoint) != 0) {
        fprintf(stderr, "mpb-bench-zmq: bind %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        return 1;
    }
    char ids[16][256];
    size_t id_len[16];
    char buf[1 << 20];
    char item[ITEM_BYTES] = {0};
    for (int i = 0; i < workers; i++) {
        id_len[i] = (size_t)zmq_recv(router, ids[i], sizeof ids[i], 0);
        zmq_recv(router, buf, sizeof buf, 0); /* the hello */
    }

    /* raw: batches as msgpack arrays of bin, WINDOW in flight per echo */
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)batch);
    for (int i = 0; i < batch; i++) {
        msgpack_pack_bin(&pk, ITEM_BYTES);
        msgpack_pack_bin_body(&pk, item, ITEM_BYTES);
    }
    for (int i = 0; i < workers; i++) {
        for (int w = 0; w < WINDOW; w++) {
            zmq_send(router, ids[i], id_len[i], ZMQ_SNDMORE);
            zmq_send(router, out.data, out.size, 0);
        }
    }
    uint64_t items = 0;
    double start = now_s();
    double end = start + 2.0;
    double now = start;
    char id[256];
    while (now < end) {
        int got = zmq_recv(router, id, sizeof id, 0);
        int len = zmq_recv(router, buf, sizeof buf, 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (len > 0 && msgpack_unpack_next(&u, buf, (size_t)len, NULL) == MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_ARRAY) {
            items += u.data.via.array.size;
        }
        msgpack_unpacked_destroy(&u);
        zmq_send(router, id, (size_t)got, ZMQ_SNDMORE);
        zmq_send(router, out.data, out.size, 0);
        now = now_s();
    }
    printf("raw: %.0f items/s (%d echo process%s, %d items of %d bytes a message, %d in flight "
           "each)\n",
           (double)items / (now - start), workers, workers > 1 ? "es" : "", batch, ITEM_BYTES,
           WINDOW);
    for (int i = 0; i < workers * WINDOW; i++) { /* what is still in flight */
        zmq_recv(router, id, sizeof id, 0);
        zmq_recv(router, buf, sizeof buf, 0);
    }

    /* rtt: one 16-byte message at a time to the first echo (after raw, so
     * the cores are awake, as they are when mpb bench measures it) */
    enum { TRIPS = 20000 };
    double *trips = malloc(TRIPS * sizeof *trips);
    for (int t = -1000; t < TRIPS; t++) { /* 1000 to warm up */
        double t0 = now_s();
        zmq_send(router, ids[0], id_len[0], ZMQ_SNDMORE);
        zmq_send(router, item, sizeof item, 0);
        zmq_recv(router, buf, sizeof buf, 0);
        zmq_recv(router, buf, sizeof buf, 0);
        if (t >= 0) {
            trips[t] = (now_s() - t0) * 1e6;
        }
    }
    qsort(trips, TRIPS, sizeof *trips, compare_double);
    printf("rtt: p50 %.1f us, p99 %.1f us (%d round trips of %d bytes over ipc)\n",
           trips[TRIPS / 2], trips[TRIPS * 99 / 100], TRIPS, ITEM_BYTES);
    free(trips);

    msgpack_sbuffer_destroy(&out);
    for (int i = 0; i < workers; i++) {
        zmq_send(router, ids[i], id_len[i], ZMQ_SNDMORE);
        zmq_send(router, "", 0, 0);
    }
    for (int i = 0; i < workers; i++) {
        waitpid(pids[i], NULL, 0);
    }
    int linger = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(router);
    zmq_ctx_term(ctx);
    unlink(endpoint + strlen("ipc://"));
    return 0;
}
