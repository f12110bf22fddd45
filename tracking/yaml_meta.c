#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/yaml_meta.h"

static int
is_plain_null(const yaml_event_t *event)
{
    if (event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }
    const char *text = (const char *)event->data.scalar.value;
    return strcmp(text, "") == 0 || strcmp(text, "~") == 0 || strcmp(text, "null") == 0 ||
           strcmp(text, "Null") == 0 || strcmp(text, "NULL") == 0;
}

static void
map_add(mpb__yaml_map *map, char *key, const yaml_event_t *value_event)
{
    map->entries = mpb_realloc(map->entries, (map->n_entries + 1) * sizeof *map->entries);
    mpb__yaml_entry *entry = &map->entries[map->n_entries++];
    entry->key = key;
    entry->value = NULL;
    if (value_event->type != YAML_SCALAR_EVENT) {
        entry->kind = MPB__YAML_COMPOUND;
    } else if (is_plain_null(value_event)) {
        entry->kind = MPB__YAML_NULL;
    } else {
        entry->kind = MPB__YAML_SCALAR;
        entry->value = mpb_strndup((const char *)value_event->data.scalar.value,
                                   value_event->data.scalar.length);
    }
}

/* Walks the events of one document; state: 0 before the top mapping, 1 in it
 * awaiting a key, 2 awaiting the value of `key`, 3 after it. Nested
 * collections are skipped by depth. */
int
mpb__yaml_map_parse(const char *text, size_t len, mpb__yaml_map *out, char *err, size_t err_len)
{
    yaml_parser_t parser;
    memset(out, 0, sizeof *out);
    if (!yaml_parser_initialize(&parser)) {
        return mpb__set_error(err, err_len, MPB_ENOMEM, "yaml: cannot initialise the parser");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = 0;
    int state = 0;
    int skip_depth = 0;
    char *key = NULL;
    for (int done = 0; !done && rc == 0;) {
        yaml_event_t event;
        if (!yaml_parser_parse(&parser, &event)) {
            rc = mpb__set_error(err, err_len, MPB_ESTORE, "yaml: %s at line %zu column %zu",
                                parser.problem ? parser.problem : "syntax error",
                                parser.problem_mark.line + 1, parser.problem_mark.column + 1);
            break;
        }
        int opens =
            event.type == YAML_SEQUENCE_START_EVENT || event.type == YAML_MAPPING_START_EVENT;
        int closes = event.type == YAML_SEQUENCE_END_EVENT || event.type == YAML_MAPPING_END_EVENT;
        if (skip_depth > 0) {
            skip_depth += opens - closes;
        } else if (event.type == YAML_STREAM_END_EVENT || event.type == YAML_DOCUMENT_END_EVENT) {
            done = 1;
        } else if (state == 0 && event.type == YAML_MAPPING_START_EVENT) {
            state = 1;
        } else if (state == 0 && (event.type == YAML_SCALAR_EVENT || opens)) {
            rc = mpb__set_error(err, err_len, MPB_ESTORE, "yaml: the document is not a mapping");
        } else if (state == 1 && event.type == YAML_SCALAR_EVENT) {
            key = mpb_strndup((const char *)event.data.scalar.value, event.data.scalar.length);
            state = 2;
        } else if (state == 1 && closes) {
            state = 3;
        } else if (state == 1 && opens) {
            rc = mpb__set_error(err, err_len, MPB_ESTORE, "yaml: a mapping key is not a string");
        } else if (state == 2 && (event.type == YAML_SCALAR_EVENT || opens)) {
            map_add(out, key, &event);
            key = NULL;
            skip_depth = opens;
            state = 1;
        } else if (event.type == YAML_ALIAS_EVENT) {
            rc = mpb__set_error(err, err_len, MPB_ESTORE, "yaml: aliases are not supported");
        }
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    free(key);
    if (rc == 0 && state != 3) {
        rc = mpb__set_error(err, err_len, MPB_ESTORE, "yaml: the document is empty or truncated");
    }
    if (rc < 0) {
        mpb__yaml_map_clear(out);
    }
    return rc;
}

void
mpb__yaml_map_clear(mpb__yaml_map *map)
{
    for (size_t i = 0; i < map->n_entries; i++) {
        free(map->entries[i].key);
        free(map->entries[i].value);
    }
    free(map->entries);
    map->entries = NULL;
    map->n_entries = 0;
}

static const mpb__yaml_entry *
map_find(const mpb__yaml_map *map, const char *key)
{
    for (size_t i = 0; i < map->n_entries; i++) {
        if (strcmp(map->entries[i].key, key) == 0) {
            return &map->entries[i];
        }
    }
    return NULL;
}

const char *
mpb__yaml_map_string(const mpb__yaml_map *map, const char *key)
{
    const mpb__yaml_entry *entry = map_find(map, key);
    return entry ? entry->value : NULL;
}

int
mpb__yaml_map_has(const mpb__yaml_map *map, const char *key)
{
    return map_find(map, key) != NULL;
}

int
mpb__yaml_map_int(const mpb__yaml_map *map, const char *key, int64_t *out)
{
    const mpb__yaml_entry *entry = map_find(map, key);
    if (entry == NULL || entry->kind == MPB__YAML_NULL) {
        return 1;
    }
    if (entry->kind != MPB__YAML_SCALAR) {
        return MPB_EINVAL;
    }
    return mpb__parse_int64(entry->value, out);
}

static void
put_escaped(mpb__strbuf *buf, const char *value)
{
    mpb__strbuf_puts(buf, "\"");
    const char *p = value;
    while (*p) {
        const char *start = p;
        uint32_t cp = mpb__utf8_next(&p);
        if (cp == '"') {
            mpb__strbuf_puts(buf, "\\\"");
        } else if (cp == '\\') {
            mpb__strbuf_puts(buf, "\\\\");
        } else if (cp == '\n') {
            mpb__strbuf_puts(buf, "\\n");
        } else if (cp == '\t') {
            mpb__strbuf_puts(buf, "\\t");
        } else if (cp == '\r') {
            mpb__strbuf_puts(buf, "\\r");
        } else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            mpb__strbuf_printf(buf, "\\x%02X", (unsigned)cp);
        } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF) {
            mpb__strbuf_printf(buf, "\\u%04X", (unsigned)cp);
        } else {
            mpb__strbuf_append(buf, start, (size_t)(p - start));
        }
    }
    mpb__strbuf_puts(buf, "\"");
}

void
mpb__yaml_put_string(mpb__strbuf *buf, const char *key, const char *value)
{
    mpb__strbuf_printf(buf, "%s: ", key);
    put_escaped(buf, value);
    mpb__strbuf_puts(buf, "\n");
}

void
mpb__yaml_put_int(mpb__strbuf *buf, const char *key, int64_t value)
{
    mpb__strbuf_printf(buf, "%s: %" PRId64 "\n", key, value);
}

void
mpb__yaml_put_time(mpb__strbuf *buf, const char *key, int64_t value)
{
    if (value < 0) {
        mpb__strbuf_printf(buf, "%s: null\n", key);
    } else {
        mpb__yaml_put_int(buf, key, value);
    }
}

void
mpb__yaml_put_raw(mpb__strbuf *buf, const char *key, const char *raw)
{
    mpb__strbuf_printf(buf, "%s: %s\n", key, raw);
}
