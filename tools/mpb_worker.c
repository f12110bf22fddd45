/*
 * mpb-worker: hosts one worker plugin in its own process. A ProcessServlet
 * starts these; on other hosts start them by hand with --connect tcp://...
 * It loads the plugin, pins itself, connects to the coordinator, says READY
 * and serves until SHUTDOWN, coordinator silence, or its parent's death.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/join.h"
#include "core/options.h"
#include "core/plugin.h"
#include "core/util.h"
#include "core/worker_loop.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"

static void
usage(FILE *out)
{
    fprintf(
        out,
        "usage: mpb-worker --connect ENDPOINT [--plugin NAME|PATH] [options]\n"
        "  A worker started by hand joins a servlet whose bind: is ENDPOINT and takes its\n"
        "  settings from the coordinator: plugin, batch size and wait, capacity, item\n"
        "  limit, isolation and plugin options (they win over the flags below). With\n"
        "  --plugin, it must be the servlet's plugin.\n"
        "  --name NAME               worker name in logs and errors (default: plugin-pid)\n"
        "  --index N                 worker index within its servlet (default 0)\n"
        "  --cpus LIST               pin to these CPUs, e.g. 0 or 0-3,8 (default: no pinning)\n"
        "  --batch-size N            items per call; 0 calls per item (default: plugin's)\n"
        "  --batch-wait-us N|auto    wait for more items after the first (default: plugin's;\n"
        "                            auto: only while more are coming soon)\n"
        "  --capacity N              items in flight (default: 6 x batch size, >= 64)\n"
        "  --option KEY=VALUE        plugin option (repeatable)\n"
        "  --max-item-bytes N        largest item or value accepted (default 64 MiB)\n"
        "  --isolate bisect          a batch whose call() fails as a whole runs again in\n"
        "                            halves, so only the items that fail get the error\n"
        "  --curve-server-key FILE   the coordinator's certificate (its .pub file): connect\n"
        "                            with CURVE (needs --curve-key)\n"
        "  --curve-key FILE          this worker's secret certificate (mpb keygen's .key file)\n"
        "  --coordinator-timeout-ms N  leave after this much silence (default 10000, -1 never)\n"
        "  --parent-pid PID          leave when this parent process dies\n"
        "  --items-shm-fd FD, --items-shm-bytes N, --values-shm-fd FD, --values-shm-bytes N\n"
        "                            shared rings for large items and values\n"
        "  --link-fds MEM,EV1,EV2     frames through this shared-memory link instead of the\n"
        "                            socket (--connect is then only for start-up failures)\n"
        "                            (a local pool passes these)\n"
        "  --launched                the settings are all on this command line: do not ask\n"
        "                            the coordinator (a pool that starts its workers says so)\n");
}

static int
parse_number(const char *flag, const char *text, long long min, long long *out)
{
    const long long max = 1LL << 30; /* fits every field it ends in */
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || value < min || value > max) {
        fprintf(stderr, "mpb-worker: %s expects an integer from %lld to %lld, got '%s'\n", flag,
                min, max, text);
        return -1;
    }
    *out = value;
    return 0;
}

enum {
    OPT_NAME = 1000,
    OPT_INDEX,
    OPT_CPUS,
    OPT_BATCH,
    OPT_WAIT,
    OPT_CAPACITY,
    OPT_OPTION,
    OPT_MAX_ITEM,
    OPT_ISOLATE,
    OPT_TIMEOUT,
    OPT_PARENT,
    OPT_SHM_FD,
    OPT_SHM_BYTES,
    OPT_VALUES_FD,
    OPT_VALUES_BYTES,
    OPT_LINK_FDS,
    OPT_CURVE_SERVER_KEY,
    OPT_CURVE_KEY,
    OPT_LAUNCHED,
};

static const struct option long_options[] = {
    {"plugin", required_argument, NULL, 'p'},
    {"connect", required_argument, NULL, 'c'},
    {"name", required_argument, NULL, OPT_NAME},
    {"index", required_argument, NULL, OPT_INDEX},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"batch-size", required_argument, NULL, OPT_BATCH},
    {"batch-wait-us", required_argument, NULL, OPT_WAIT},
    {"capacity", required_argument, NULL, OPT_CAPACITY},
    {"option", required_argument, NULL, OPT_OPTION},
    {"max-item-bytes", required_argument, NULL, OPT_MAX_ITEM},
    {"isolate", required_argument, NULL, OPT_ISOLATE},
    {"coordinator-timeout-ms", required_argument, NULL, OPT_TIMEOUT},
    {"parent-pid", required_argument, NULL, OPT_PARENT},
    {"items-shm-fd", required_argument, NULL, OPT_SHM_FD},
    {"items-shm-bytes", required_argument, NULL, OPT_SHM_BYTES},
    {"values-shm-fd", required_argument, NULL, OPT_VALUES_FD},
    {"values-shm-bytes", required_argument, NULL, OPT_VALUES_BYTES},
    {"link-fds", required_argument, NULL, OPT_LINK_FDS},
    {"curve-server-key", required_argument, NULL, OPT_CURVE_SERVER_KEY},
    {"curve-key", required_argument, NULL, OPT_CURVE_KEY},
    {"launched", no_argument, NULL, OPT_LAUNCHED},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Applies one option; returns 0, or -1 after printing what is wrong. */
static int launched; /* --launched: no HELLO */

static int
apply_option(int opt, const char *arg, mpb__worker_config *cfg, mpb_options *options,
             const char **plugin)
{
    long long n = 0;
    int consumed = 0;
    int rc = 0;
    switch (opt) {
    case 'p':
        *plugin = arg;
        break;
    case 'c':
        cfg->endpoint = arg;
        break;
    case OPT_NAME:
        cfg->name = arg;
        break;
    case OPT_CPUS:
        cfg->cpus = arg;
        break;
    case OPT_INDEX:
        rc = parse_number("--index", arg, 0, &n);
        cfg->index = (unsigned)n;
        break;
    case OPT_BATCH:
        rc = parse_number("--batch-size", arg, 0, &cfg->batch_size);
        break;
    case OPT_WAIT:
        if (strcmp(arg, "auto") == 0) {
            cfg->batch_wait_us = MPB_BATCH_WAIT_AUTO;
        } else {
            rc = parse_number("--batch-wait-us", arg, 0, &cfg->batch_wait_us);
        }
        break;
    case OPT_CAPACITY:
        rc = parse_number("--capacity", arg, 1, &n);
        cfg->capacity = (unsigned)n;
        break;
    case OPT_MAX_ITEM:
        rc = parse_number("--max-item-bytes", arg, 1, &n);
        cfg->max_item_bytes = (size_t)n;
        break;
    case OPT_ISOLATE:
        if (strcmp(arg, "bisect") == 0) {
            cfg->isolate_bisect = 1;
        } else if (strcmp(arg, "none") != 0) {
            fprintf(stderr, "mpb-worker: --isolate takes bisect or none (got '%s')\n", arg);
            rc = -1;
        }
        break;
    case OPT_TIMEOUT:
        rc = parse_number("--coordinator-timeout-ms", arg, -1, &n);
        cfg->coordinator_timeout_ms = n;
        break;
    case OPT_PARENT:
        rc = parse_number("--parent-pid", arg, 1, &n);
        cfg->parent_pid = (pid_t)n;
        break;
    case OPT_SHM_FD:
        rc = parse_number("--items-shm-fd", arg, 0, &n);
        cfg->shm_fd = (int)n;
        break;
    case OPT_SHM_BYTES:
        rc = parse_number("--items-shm-bytes", arg, 0, &n);
        cfg->shm_bytes = (size_t)n;
        break;
    case OPT_VALUES_FD:
        rc = parse_number("--values-shm-fd", arg, 0, &n);
        cfg->values_shm_fd = (int)n;
        break;
    case OPT_VALUES_BYTES:
        rc = parse_number("--values-shm-bytes", arg, 0, &n);
        cfg->values_shm_bytes = (size_t)n;
        break;
    case OPT_LINK_FDS:
        if (sscanf(arg, "%d,%d,%d%n", &cfg->link_fds[0], &cfg->link_fds[1], &cfg->link_fds[2],
                   &consumed) != 3 ||
            arg[consumed] != '\0' || cfg->link_fds[0] < 0 || cfg->link_fds[1] < 0 ||
            cfg->link_fds[2] < 0) {
            fprintf(stderr, "mpb-worker: --link-fds expects three descriptors, got '%s'\n", arg);
            rc = -1;
        }
        cfg->has_link = 1;
        break;
    case OPT_CURVE_SERVER_KEY:
        cfg->curve_server_key_file = arg;
        break;
    case OPT_CURVE_KEY:
        cfg->curve_key_file = arg;
        break;
    case OPT_LAUNCHED:
        launched = 1;
        break;
    case OPT_OPTION:
        rc = mpb__options_set_pair(options, arg);
        if (rc != 0) {
            fprintf(stderr, "mpb-worker: --option expects KEY=VALUE, got '%s'\n", arg);
        }
        break;
    default:
        usage(stderr);
        rc = -1;
    }
    return rc == 0 ? 0 : -1;
}

static int
parse_args(int argc, char **argv, mpb__worker_config *cfg, mpb_options *options,
           const char **plugin)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "p:c:h", long_options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (apply_option(opt, optarg, cfg, options, plugin) != 0) {
            return -1;
        }
    }
    if ((cfg->curve_server_key_file == NULL) != (cfg->curve_key_file == NULL)) {
        fprintf(stderr, "mpb-worker: --curve-server-key and --curve-key go together\n");
        return -1;
    }
    if (cfg->endpoint == NULL || (*plugin == NULL && (launched || cfg->has_link))) {
        fprintf(stderr, "mpb-worker: --connect (and --plugin with --launched) are required\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* A worker started by hand takes the settings its servlet has; it says
 * which of its own flags lost. */
static void
take_joined(mpb__worker_config *cfg, mpb_options **options, const mpb__joined *joined)
{
    if (joined->batch_size >= 0) {
        cfg->batch_size = joined->batch_size;
    }
    if (joined->batch_wait_us != -1) {
        cfg->batch_wait_us = joined->batch_wait_us;
    }
    if (joined->capacity > 0) {
        cfg->capacity = (unsigned)joined->capacity;
    }
    if (joined->max_item_bytes > 0) {
        cfg->max_item_bytes = (size_t)joined->max_item_bytes;
    }
    cfg->isolate_bisect = joined->isolate_bisect;
    if (mpb_options_count(*options) > 0 && joined->n_options == 0) {
        mpb_log_warn("worker",
                     "the servlet sets no plugin options: ignoring this worker's --option");
    }
    mpb__options_destroy(options);
    *options = mpb__options_new();
    for (size_t i = 0; i < joined->n_options; i++) {
        if (mpb__options_set_pair(*options, joined->options[i]) != 0) {
            mpb_log_warn("worker", "the servlet's option '%s' is not KEY=VALUE: ignored",
                         joined->options[i]);
        }
    }
    cfg->options = *options;
    mpb_log_info("worker",
                 "joined with the servlet's settings: plugin %s, batch_size %lld, batch_wait_us "
                 "%lld, %zu plugin options",
                 joined->plugin, joined->batch_size, joined->batch_wait_us, joined->n_options);
}

/* The plugin named on the command line, else the servlet's by its short
 * name, found on this host's plugin path: a path the coordinator sends is
 * never opened as such (whoever answers HELLO must not choose a file for
 * this process to load). */
static int
load_plugin(const char *given, const mpb__joined *joined, mpb__plugin **out, const char **used,
            char *err, size_t err_len)
{
    static char short_name[256];
    if (given != NULL) {
        *used = given;
    } else {
        mpb__plugin_short_name(joined->plugin, short_name, sizeof short_name);
        *used = short_name;
    }
    return mpb__plugin_load(*used, out, err, err_len);
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    mpb_options *options = mpb__options_new();
    mpb__worker_config cfg = {.batch_size = -1, .batch_wait_us = -1, .options = options};
    const char *plugin_name = NULL;
    if (parse_args(argc, argv, &cfg, options, &plugin_name) != 0) {
        mpb__options_destroy(&options);
        return 2;
    }
    if (cfg.parent_pid > 0) {
        /* the kernel kills this worker when the thread that started it (its
         * coordinator's dispatcher) ends, even inside a plugin call that never
         * returns: nothing is left to answer to */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != cfg.parent_pid) {
            fprintf(stderr, "mpb-worker: parent process %d is gone\n", (int)cfg.parent_pid);
            mpb__options_destroy(&options);
            return 1; /* it went before the line above took effect */
        }
    }
    char err[512] = "";
    mpb__joined joined = {0};
    if (!launched && !cfg.has_link) {
        if (mpb__worker_join(&cfg, plugin_name, &joined, err, sizeof err) != 0) {
            fprintf(stderr, "mpb-worker: %s\n", err);
            mpb__options_destroy(&options);
            return 1;
        }
        take_joined(&cfg, &options, &joined);
    }
    mpb__plugin *plugin = NULL;
    if (load_plugin(plugin_name, &joined, &plugin, &plugin_name, err, sizeof err) != 0) {
        fprintf(stderr, "mpb-worker: %s\n", err);
        mpb__worker_report_failure(&cfg, MPB_EPLUGIN, err);
        mpb__joined_free(&joined);
        mpb__options_destroy(&options);
        return 1;
    }
    char default_name[128];
    if (cfg.name == NULL) {
        snprintf(default_name, sizeof default_name, "%s-%d", plugin->def->name, (int)getpid());
        cfg.name = default_name;
    }
    char role[160];
    snprintf(role, sizeof role, "worker:%s", cfg.name);
    mpb_log_set_role(role);
    cfg.def = plugin->def;
    cfg.plugin_name = plugin_name;
    cfg.bind_scope = MPB_BIND_PROCESS;
    int rc = mpb__worker_run(&cfg, err, sizeof err);
    if (rc != 0) {
        mpb_log_err("worker", "%s", err);
    }
    mpb__plugin_unload(&plugin);
    mpb__joined_free(&joined);
    mpb__options_destroy(&options);
    return rc == 0 ? 0 : 1;
}
