/*
 * Shared definitions of the public API: export macro and version.
 * Threading: constants only. Processes: n/a. Ownership: n/a.
 */
#ifndef MPBATCH_COMMON_H
#define MPBATCH_COMMON_H

#if defined(MPB_BUILDING_LIBRARY)
#define MPB_EXPORT __attribute__((visibility("default")))
#else
#define MPB_EXPORT
#endif

#define MPB_VERSION_MAJOR 0
#define MPB_VERSION_MINOR 1
#define MPB_VERSION_PATCH 0

#if defined(__GNUC__)
#define MPB_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define MPB_PRINTF(fmt_index, first_arg)
#endif

#endif
