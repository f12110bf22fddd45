/*
 * mpb-soak: a long mixed load with things going wrong, and the books
 * balanced at the end. Two servers in this process:
 *
 *   plain   a process pool of the fail plugin (2 workers, batch 16)
 *   tree    sequential(a thread pool, a process pool of fail: 2 workers)
 *
 * both with retry: 1 and batch_timeout_ms: 500. Client threads submit
 * bursts of unique items (some past capacity: refused at once, counted);
 * every 20-40 s an item hangs its worker for 5 s; a killer thread SIGKILLs
 * a random worker every 3-6 s. Every item accepted must be
 * answered exactly once, with its own value or an error: the report
 * prints items sent, refused, answered, errors by type, duplicated, lost,
 * wrong values, worker restarts, and the coordinator's RSS before the
 * load, after its first minute and at its end (less the bitmap of ids this
 * program keeps, which grows by a bit per item).
 *
 *   mpb-soak [--seconds 600] [--clients 2] [--no-kills]
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "mpbatch/error.h"
#include "mpbatch/server.h"

#define MAX_ITEMS ((uint64_t)1 << 31) /* ids; answered once each (a bit) */
#define MAX_TYPES 16

typedef struct soak {
    mpb_server *servers[2];
    const char *names[2];
    atomic_uint_fast64_t next_id;
    atomic_uint_fast64_t sent;     /* accepted */
    atomic_uint_fast64_t refused;  /* at capacity, refused at once */
    atomic_uint_fast64_t answered; /* done callbacks */
    atomic_uint_fast64_t duplicated;
    atomic_uint_fast64_t wrong_value;
    atomic_uint_fast64_t kills;
    atomic_uint_fast64_t hangs;
    _Atomic(uint64_t) *seen; /* a bit per id */
    pthread_mutex_t types_lock;
    char types[MAX_TYPES][48];
    uint64_t type_counts[MAX_TYPES];
    size_t n_types;
    atomic_int stop;
    int seconds;
    int no_kills; /* --no-kills: neither kills nor hangs (a baseline for RSS) */
} soak;

typedef struct item_ctx {
    soak *soak;
    uint64_t id;
} item_ctx;

static void
count_type(soak *s, const char *type)
{
    pthread_mutex_lock(&s->types_lock);
    size_t i = 0;
    while (i < s->n_types && strcmp(s->types[i], type) != 0) {
        i++;
    }
    if (i == s->n_types && s->n_types < MAX_TYPES) {
        snprintf(s->types[s->n_types++], sizeof s->types[0], "%s", type);
    }
    if (i < MAX_TYPES) {
        s->type_counts[i]++;
    }
    pthread_mutex_unlock(&s->types_lock);
}

/* The dispatcher answers item id: once, with its own value or an error. */
static void
on_done(void *ctx, mpb_result *result)
{
    item_ctx *c = ctx;
    soak *s = c->soak;
    uint64_t bit = (uint64_t)1 << (c->id % 64);
    if (atomic_fetch_or(&s->seen[c->id / 64], bit) & bit) {
        atomic_fetch_add(&s->duplicated, 1);
    }
    atomic_fetch_add(&s->answered, 1);
    const mpb_item_error *e = mpb_result_error(result);
    if (e != NULL) {
        count_type(s, e->type);
    } else {
        size_t len;
        const char *value = mpb_result_value(result, &len);
        char expect[48];
        int n = snprintf(expect, sizeof expect, "i:%llu", (unsigned long long)c->id);
        if (len != (size_t)n || memcmp(value, expect, len) != 0) {
            atomic_fetch_add(&s->wrong_value, 1);
        }
    }
    mpb_result_destroy(&result);
    free(c);
}

typedef struct client {
    soak *soak;
    unsigned seed;
} client;

static void *
client_main(void *arg)
{
    client *cl = arg;
    soak *s = cl->soak;
    char text[48];
    while (!atomic_load(&s->stop)) {
        mpb_server *server = s->servers[rand_r(&cl->seed) % 2];
        /* a burst, sometimes past what the server holds */
        int burst = 1 + rand_r(&cl->seed) % (rand_r(&cl->seed) % 10 == 0 ? 1500 : 200);
        for (int i = 0; i < burst && !atomic_load(&s->stop); i++) {
            uint64_t id = atomic_fetch_add(&s->next_id, 1);
            if (id >= MAX_ITEMS) {
                atomic_store(&s->stop, 1);
                break;
            }
            int n = snprintf(text, sizeof text, "i:%llu", (unsigned long long)id);
            item_ctx *c = malloc(sizeof *c);
            *c = (item_ctx){s, id};
            if (mpb_server_submit(server, text, (size_t)n, 0, on_done, c) == 0) {
                atomic_fetch_add(&s->sent, 1);
            } else {
                atomic_fetch_add(&s->refused, 1);
                free(c);
            }
        }
        usleep((useconds_t)(rand_r(&cl->seed) % 3000));
    }
    return NULL;
}

/* Now and then (every 20-40 s) an item that hangs its worker for 5 s:
 * batch_timeout_ms fails it (and what queued behind it) and replaces the
 * worker; with retry 1 it hangs a second worker before it fails. */
static void *
hanger_main(void *arg)
{
    soak *s = arg;
    unsigned seed = 11;
    while (!atomic_load(&s->stop) && !s->no_kills) {
        for (int ms = 0; ms < 20000 + (int)(rand_r(&seed) % 20000) && !atomic_load(&s->stop);
             ms += 100) {
            usleep(100000);
        }
        if (atomic_load(&s->stop)) {
            break;
        }
        uint64_t id = atomic_fetch_add(&s->next_id, 1);
        char text[48];
        int n = snprintf(text, sizeof text, "hang:%llu", (unsigned long long)id);
        item_ctx *c = malloc(sizeof *c);
        *c = (item_ctx){s, id};
        if (mpb_server_submit(s->servers[rand_r(&seed) % 2], text, (size_t)n, -1, on_done, c) ==
            0) {
            atomic_fetch_add(&s->sent, 1);
            atomic_fetch_add(&s->hangs, 1);
        } else {
            free(c);
        }
    }
    return NULL;
}

static void *
killer_main(void *arg)
{
    soak *s = arg;
    unsigned seed = 7;
    while (!atomic_load(&s->stop) && !s->no_kills) {
        for (int ms = 0; ms < 3000 + (int)(rand_r(&seed) % 3000) && !atomic_load(&s->stop);
             ms += 100) {
            usleep(100000);
        }
        if (atomic_load(&s->stop)) {
            break;
        }
        mpb_worker_status workers[8];
        mpb_server *server = s->servers[rand_r(&seed) % 2];
        size_t n = mpb_server_workers(server, workers, 8);
        size_t process_workers = 0;
        int64_t pids[8];
        for (size_t i = 0; i < n && i < 8; i++) {
            if (workers[i].pid != getpid()) { /* not a thread of this process */
                pids[process_workers++] = workers[i].pid;
            }
        }
        if (process_workers > 0) {
            kill((pid_t)pids[rand_r(&seed) % process_workers], SIGKILL);
            atomic_fetch_add(&s->kills, 1);
        }
    }
    return NULL;
}

static double
rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0;
    long resident = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

/* RSS less this program's own bookkeeping: the id bitmap it touched. */
static double
server_rss_mb(soak *s)
{
    return rss_mb() - (double)atomic_load(&s->next_id) / 8 / (1 << 20);
}

static mpb_pool_config
fail_pool(const char *name, const char *kind_note)
{
    static const char *const options[] = {"hang_prefix=hang", "hang_ms=5000", NULL};
    (void)kind_note;
    mpb_pool_config cfg;
    mpb_pool_config_init(&cfg);
    cfg.name = name;
    cfg.plugin = "fail";
    cfg.workers = 2;
    cfg.batch_size = 16;
    cfg.batch_wait_us = 500;
    cfg.options = options;
    cfg.retry = 1;
    cfg.batch_timeout_ms = 500;
    return cfg;
}

static mpb_server *
start_server(mpb_servlet *root)
{
    mpb_server_options options;
    mpb_server_options_init(&options);
    options.capacity = 2048;
    options.stop_timeout_ms = 20000;
    mpb_server *server = mpb_server_new(&root, &options);
    char err[512];
    if (mpb_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-soak: %s\n", err);
        exit(1);
    }
    return server;
}

int
main(int argc, char **argv)
{
    int seconds = 600;
    int clients = 2;
    int no_kills = 0;
    static const struct option opts[] = {{"seconds", required_argument, NULL, 's'},
                                         {"clients", required_argument, NULL, 'c'},
                                         {"no-kills", no_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 's') {
            seconds = atoi(optarg);
        } else if (opt == 'c') {
            clients = atoi(optarg);
        } else if (opt == 'n') {
            no_kills = 1;
        } else {
            fprintf(stderr, "usage: mpb-soak [--seconds 600] [--clients 2] [--no-kills]\n");
            return 2;
        }
    }
    if (seconds < 1 || clients < 1 || clients > 16) {
        fprintf(stderr, "mpb-soak: --seconds >= 1, --clients 1..16\n");
        return 2;
    }
    static soak s;
    s.seen = calloc(MAX_ITEMS / 64, sizeof *s.seen);
    pthread_mutex_init(&s.types_lock, NULL);
    mpb_pool_config plain = fail_pool("plain", "");
    s.servers[0] = start_server(mpb_process_servlet_new(&plain));
    mpb_pool_config pre;
    mpb_pool_config_init(&pre);
    pre.name = "pre";
    pre.plugin = "passthrough";
    mpb_pool_config model = fail_pool("model", "");
    mpb_servlet *stages[2] = {mpb_thread_servlet_new(&pre), mpb_process_servlet_new(&model)};
    mpb_servlet *tree = mpb_sequential_servlet_new(stages, 2);
    s.servers[1] = start_server(tree);
    double rss_start = rss_mb();
    double start = bench_now_s();
    pthread_t threads[18];
    client cls[16];
    for (int i = 0; i < clients; i++) {
        cls[i] = (client){&s, (unsigned)(i + 1)};
        pthread_create(&threads[i], NULL, client_main, &cls[i]);
    }
    s.no_kills = no_kills;
    pthread_create(&threads[clients], NULL, killer_main, &s);
    pthread_create(&threads[clients + 1], NULL, hanger_main, &s);
    uint64_t last_answered = 0;
    double rss_first_minute = 0;
    double last = start;
    while (bench_now_s() - start < seconds && !atomic_load(&s.stop)) {
        sleep(10);
        double now = bench_now_s();
        uint64_t answered = atomic_load(&s.answered);
        fprintf(stderr,
                "mpb-soak: %4.0f s  %8.0f items/s  sent %llu  answered %llu  kills %llu  "
                "rss %.1f MB\n",
                now - start, (double)(answered - last_answered) / (now - last),
                (unsigned long long)atomic_load(&s.sent), (unsigned long long)answered,
                (unsigned long long)atomic_load(&s.kills), server_rss_mb(&s));
        if (rss_first_minute == 0 && now - start >= 60) {
            rss_first_minute = server_rss_mb(&s);
        }
        last_answered = answered;
        last = now;
    }
    atomic_store(&s.stop, 1);
    for (int i = 0; i <= clients + 1; i++) {
        pthread_join(threads[i], NULL);
    }
    double rss_end = server_rss_mb(&s);
    uint64_t restarts = 0;
    for (int i = 0; i < 2; i++) {
        mpb_server_stop(s.servers[i]); /* answers everything accepted */
        mpb_server_stats stats;
        mpb_server_stats_get(s.servers[i], &stats);
        restarts += stats.workers_lost;
        mpb_server_destroy(&s.servers[i]);
    }
    double elapsed = bench_now_s() - start;
    uint64_t sent = atomic_load(&s.sent);
    uint64_t answered = atomic_load(&s.answered);
    uint64_t once = 0; /* ids answered, counted from the bits */
    for (uint64_t w = 0; w < (atomic_load(&s.next_id) + 63) / 64; w++) {
        once += (uint64_t)__builtin_popcountll(atomic_load(&s.seen[w]));
    }
    printf("soak: %.0f s, %d clients, 2 servers (a process pool; sequential of a thread and a "
           "process pool), retry 1, batch_timeout_ms 500\n",
           elapsed, clients);
    printf("  sent (accepted)  %llu\n", (unsigned long long)sent);
    printf("  refused at once  %llu (over capacity)\n",
           (unsigned long long)atomic_load(&s.refused));
    printf("  answered         %llu (%.0f items/s)\n", (unsigned long long)answered,
           (double)answered / elapsed);
    for (size_t i = 0; i < s.n_types; i++) {
        printf("    errors %-16s %llu\n", s.types[i], (unsigned long long)s.type_counts[i]);
    }
    printf("  duplicated       %llu\n", (unsigned long long)atomic_load(&s.duplicated));
    printf("  lost             %llu\n", (unsigned long long)(sent - once));
    printf("  wrong values     %llu\n", (unsigned long long)atomic_load(&s.wrong_value));
    printf("  workers killed   %llu, items that hang %llu, restarts %llu\n",
           (unsigned long long)atomic_load(&s.kills), (unsigned long long)atomic_load(&s.hangs),
           (unsigned long long)restarts);
    printf("  coordinator RSS  %.1f MB before the load, %.1f MB after its first minute, %.1f MB "
           "at its end\n                   (less this program's own id bitmap)\n",
           rss_start, rss_first_minute, rss_end);
    free((void *)s.seen);
    int ok = atomic_load(&s.duplicated) == 0 && sent == once && atomic_load(&s.wrong_value) == 0;
    return ok ? 0 : 1;
}
