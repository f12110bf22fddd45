/*
 * meta.yaml reading (libyaml) and writing (every string double-quoted with
 * escapes, integers plain, null as `null`), as MLflow's FileStore needs it.
 * Threading: thread-safe. Processes: n/a.
 * Ownership: a parsed map owns its strings until mpb__yaml_map_clear.
 */
#ifndef MPB_TRACKING_YAML_META_H
#define MPB_TRACKING_YAML_META_H

#include <stddef.h>
#include <stdint.h>

#include "tracking/text.h"

typedef enum mpb__yaml_kind {
    MPB__YAML_SCALAR,   /* value holds the text */
    MPB__YAML_NULL,     /* plain null, ~ or empty */
    MPB__YAML_COMPOUND, /* a list or mapping (MLflow's legacy `tags: []`) */
} mpb__yaml_kind;

typedef struct mpb__yaml_entry {
    char *key;
    char *value; /* NULL unless MPB__YAML_SCALAR */
    mpb__yaml_kind kind;
} mpb__yaml_entry;

/* The top-level mapping of a meta.yaml document. */
typedef struct mpb__yaml_map {
    mpb__yaml_entry *entries;
    size_t n_entries;
} mpb__yaml_map;

/* Parses a document whose top level is a mapping; MPB_ESTORE with a message
 * (line and column) when it is not YAML or not a mapping. */
int mpb__yaml_map_parse(const char *text, size_t len, mpb__yaml_map *out, char *err,
                        size_t err_len);
void mpb__yaml_map_clear(mpb__yaml_map *map);

/* Scalar text of a key; NULL when absent, null or compound. */
const char *mpb__yaml_map_string(const mpb__yaml_map *map, const char *key);
/* 1 when the key is present (with any value). */
int mpb__yaml_map_has(const mpb__yaml_map *map, const char *key);
/* Integer value: 0 and *out set; 1 when absent or null (*out untouched);
 * MPB_EINVAL when the value is no integer. */
int mpb__yaml_map_int(const mpb__yaml_map *map, const char *key, int64_t *out);

/* Appends `key: "escaped value"\n` (value must be valid UTF-8). */
void mpb__yaml_put_string(mpb__strbuf *buf, const char *key, const char *value);
void mpb__yaml_put_int(mpb__strbuf *buf, const char *key, int64_t value);
/* An int64, or null when value < 0 (unset times). */
void mpb__yaml_put_time(mpb__strbuf *buf, const char *key, int64_t value);
void mpb__yaml_put_raw(mpb__strbuf *buf, const char *key, const char *raw);

#endif
