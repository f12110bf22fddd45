/*
 * CPU pinning through hwloc. CPU sets travel as strings in hwloc's list
 * syntax ("0", "0-3,8"), so no hwloc type leaves this module.
 * Threading: thread-safe; the topology is loaded once per process.
 * Processes: after fork+exec a process loads its own topology.
 * Ownership: strings returned through char ** are the caller's (free()).
 */
#ifndef MPB_CORE_AFFINITY_H
#define MPB_CORE_AFFINITY_H

#include <stddef.h>

typedef enum mpb__bind_scope {
    MPB_BIND_PROCESS = 0,
    MPB_BIND_THREAD = 1,
} mpb__bind_scope;

/* Checks a CPU list: parses and lies within the CPUs this process may use. */
int mpb__affinity_check(const char *cpus, char *err, size_t err_len);

/* Binds the process or the calling thread to cpus, then reads the binding
 * back; *actual gets it in list syntax. */
int mpb__affinity_bind(const char *cpus, mpb__bind_scope scope, char **actual, char *err,
                       size_t err_len);

/* The current binding of the process or calling thread, in list syntax. */
int mpb__affinity_current(mpb__bind_scope scope, char **actual);

/* One core per worker, spread over the machine's cores in topology order
 * (wrapping when workers outnumber cores); returns the core's CPU list. */
char *mpb__affinity_auto(unsigned worker_index, unsigned worker_count);

/* Number of cores this process may use (at least 1). */
unsigned mpb__affinity_core_count(void);

#endif
