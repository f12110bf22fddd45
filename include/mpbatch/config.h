/*
 * Pipeline configuration from YAML: the servlet tree, server options, how
 * `mpb run` reads and writes items, and where telemetry goes
 * (docs/config.md describes every field).
 *
 * Threading: a config is read-only after loading; read it from any thread.
 * Processes: n/a.
 * Ownership: the caller owns the config (mpb_config_destroy) and each
 *   servlet made from it; strings returned are borrowed from the config.
 */
#ifndef MPBATCH_CONFIG_H
#define MPBATCH_CONFIG_H

#include <stddef.h>

#include "mpbatch/common.h"
#include "mpbatch/server.h"
#include "mpbatch/servlet.h"

typedef struct mpb_config mpb_config;

/* Loads and checks a YAML file. On failure err reads
 * "FILE:LINE:COLUMN: FIELD ..." naming what is wrong. */
MPB_EXPORT int mpb_config_load(const char *path, mpb_config **out, char *err, size_t err_len);

/* The same from text in memory; name stands for the file in messages. */
MPB_EXPORT int mpb_config_parse(const char *text, size_t len, const char *name, mpb_config **out,
                                char *err, size_t err_len);

/* A new servlet tree as the config describes it; the caller owns it. */
MPB_EXPORT mpb_servlet *mpb_config_servlet(const mpb_config *config);

/* Settings put in place of every pool's own by mpb_config_servlet_with (a
 * benchmark sweeping them): a field left at MPB_POOL_KEEP (kind NULL)
 * keeps what the config says. */
#define MPB_POOL_KEEP (-0x7fffffffffffffffLL)
typedef struct mpb_pool_override {
    const char *kind; /* "process" or "thread" */
    long long workers;
    long long batch_size;
    long long batch_wait_us; /* MPB_BATCH_WAIT_AUTO: auto */
} mpb_pool_override;

/* Fills o with MPB_POOL_KEEP everywhere. */
MPB_EXPORT void mpb_pool_override_init(mpb_pool_override *o);

/* mpb_config_servlet with o applied to every pool of the tree. */
MPB_EXPORT mpb_servlet *mpb_config_servlet_with(const mpb_config *config,
                                                const mpb_pool_override *o);

/* Called for every plugin option of every pool of the tree; path is the
 * option's setting ("servlet.members.1.options.weights"). Setting
 * *replacement (the callee's malloc'd string, which the config takes)
 * puts that value in the option's place in the servlets the config builds
 * from then on; mpb_config_get still answers what the file said. Returns
 * 0, or a status that stops the walk. */
typedef int (*mpb_config_option_fn)(void *ctx, const char *path, const char *value,
                                    char **replacement, char *err, size_t err_len);
MPB_EXPORT int mpb_config_rewrite_options(mpb_config *config, mpb_config_option_fn fn, void *ctx,
                                          char *err, size_t err_len);

/* Server options from the config's `server:` and `curve:` sections
 * (defaults elsewhere); out's strings are borrowed from config. */
MPB_EXPORT void mpb_config_server_options(const mpb_config *config, mpb_server_options *out);

/* A scalar setting by dotted path ("io.format", "tracking.uri",
 * "servlet.members.1.batch_size"), or NULL. */
MPB_EXPORT const char *mpb_config_get(const mpb_config *config, const char *path);

/* Every scalar setting, in file order: how many, and the path and value
 * of each (borrowed from the config). */
MPB_EXPORT size_t mpb_config_count(const mpb_config *config);
MPB_EXPORT const char *mpb_config_key(const mpb_config *config, size_t index);
MPB_EXPORT const char *mpb_config_value(const mpb_config *config, size_t index);

MPB_EXPORT void mpb_config_destroy(mpb_config **config_p);

#endif
