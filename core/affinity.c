/*
 * DESIGN
 * One hwloc topology per process, loaded on first use under pthread_once and
 * only read afterwards (hwloc allows concurrent readers). Requested sets are
 * checked against the allowed cpuset so a typo in a config fails at start
 * with a message instead of pinning to nothing.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <hwloc.h>

#include "core/affinity.h"
#include "core/util.h"
#include "mpbatch/error.h"

static hwloc_topology_t topology;
static int topology_status;
static pthread_once_t topology_once = PTHREAD_ONCE_INIT;

static void
load_topology(void)
{
    if (hwloc_topology_init(&topology) != 0 || hwloc_topology_load(topology) != 0) {
        topology_status = MPB_EIO;
    }
}

static int
get_topology(void)
{
    pthread_once(&topology_once, load_topology);
    return topology_status;
}

static int
parse_cpus(const char *cpus, hwloc_bitmap_t set, char *err, size_t err_len)
{
    if (cpus == NULL || *cpus == '\0' || hwloc_bitmap_list_sscanf(set, cpus) != 0 ||
        hwloc_bitmap_iszero(set)) {
        return mpb__set_error(err, err_len, MPB_EINVAL,
                              "cpus '%s' is not a CPU list such as \"0\" or \"0-3,8\"",
                              cpus ? cpus : "");
    }
    if (hwloc_bitmap_weight(set) < 0) {
        return mpb__set_error(err, err_len, MPB_EINVAL, "cpus '%s' is not a finite CPU list", cpus);
    }
    hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topology);
    if (!hwloc_bitmap_isincluded(set, allowed)) {
        char *allowed_text = NULL;
        hwloc_bitmap_list_asprintf(&allowed_text, allowed);
        mpb__set_error(err, err_len, MPB_EINVAL,
                       "cpus '%s' are not all available to this process (allowed: %s)", cpus,
                       allowed_text ? allowed_text : "?");
        free(allowed_text);
        return MPB_EINVAL;
    }
    return 0;
}

int
mpb__affinity_check(const char *cpus, char *err, size_t err_len)
{
    int rc = get_topology();
    if (rc != 0) {
        return mpb__set_error(err, err_len, rc, "hwloc could not load the machine's topology");
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    rc = parse_cpus(cpus, set, err, err_len);
    hwloc_bitmap_free(set);
    return rc;
}

int
mpb__affinity_current(mpb__bind_scope scope, char **actual)
{
    *actual = NULL;
    int rc = get_topology();
    if (rc != 0) {
        return rc;
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    int flags = scope == MPB_BIND_THREAD ? HWLOC_CPUBIND_THREAD : HWLOC_CPUBIND_PROCESS;
    rc = hwloc_get_cpubind(topology, set, flags) == 0 ? 0 : mpb_status_from_errno(errno);
    if (rc == 0 && hwloc_bitmap_list_asprintf(actual, set) < 0) {
        rc = MPB_ENOMEM;
    }
    hwloc_bitmap_free(set);
    return rc;
}

int
mpb__affinity_bind(const char *cpus, mpb__bind_scope scope, char **actual, char *err,
                   size_t err_len)
{
    *actual = NULL;
    int rc = get_topology();
    if (rc != 0) {
        return mpb__set_error(err, err_len, rc, "hwloc could not load the machine's topology");
    }
    hwloc_bitmap_t set = hwloc_bitmap_alloc();
    rc = parse_cpus(cpus, set, err, err_len);
    if (rc == 0) {
        int flags = scope == MPB_BIND_THREAD ? HWLOC_CPUBIND_THREAD : HWLOC_CPUBIND_PROCESS;
        flags |= HWLOC_CPUBIND_STRICT;
        if (hwloc_set_cpubind(topology, set, flags) != 0 &&
            hwloc_set_cpubind(topology, set, flags & ~HWLOC_CPUBIND_STRICT) != 0) {
            rc = mpb__set_error(err, err_len, mpb_status_from_errno(errno),
                                "binding to cpus '%s' failed: %s", cpus, strerror(errno));
        }
    }
    hwloc_bitmap_free(set);
    if (rc == 0) {
        rc = mpb__affinity_current(scope, actual);
    }
    return rc;
}

static unsigned
allowed_cores(hwloc_obj_t *cores, unsigned max)
{
    hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topology);
    int total = hwloc_get_nbobjs_by_type(topology, HWLOC_OBJ_CORE);
    unsigned found = 0;
    for (int i = 0; i < total && found < max; i++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(topology, HWLOC_OBJ_CORE, (unsigned)i);
        if (core != NULL && hwloc_bitmap_intersects(core->cpuset, allowed)) {
            cores[found++] = core;
        }
    }
    return found;
}

unsigned
mpb__affinity_core_count(void)
{
    if (get_topology() != 0) {
        return 1;
    }
    hwloc_obj_t cores[1024];
    unsigned n = allowed_cores(cores, MPB_ARRAY_LEN(cores));
    return n ? n : 1;
}

char *
mpb__affinity_auto(unsigned worker_index, unsigned worker_count)
{
    if (get_topology() != 0 || worker_count == 0) {
        return NULL;
    }
    hwloc_obj_t cores[1024];
    unsigned n = allowed_cores(cores, MPB_ARRAY_LEN(cores));
    if (n == 0) {
        return NULL;
    }
    /* Spread evenly: worker i of k takes core floor(i * n / k) when k <= n. */
    unsigned pick = worker_count <= n ? (unsigned)((unsigned long)worker_index * n / worker_count)
                                      : worker_index % n;
    hwloc_bitmap_t set = hwloc_bitmap_dup(cores[pick]->cpuset);
    hwloc_bitmap_and(set, set, hwloc_topology_get_allowed_cpuset(topology));
    char *text = NULL;
    if (hwloc_bitmap_list_asprintf(&text, set) < 0) {
        text = NULL;
    }
    hwloc_bitmap_free(set);
    return text;
}
