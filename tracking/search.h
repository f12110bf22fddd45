/*
 * MLflow's search syntax (the subset in docs/tracking-format.md "Search"):
 * filter parsing with error offsets, matching runs and experiments, order_by,
 * offset page tokens (base64 of {"offset": N}, as MLflow's file and SQL stores
 * make them; a backend that pages by offset uses them, the format is the
 * backend's choice), and an in-memory search for backends that do not push
 * it down (the file and SQLite stores).
 * Threading: thread-safe. Processes: n/a.
 * Ownership: parsed filters/orders own their strings until *_clear.
 */
#ifndef MPB_TRACKING_SEARCH_H
#define MPB_TRACKING_SEARCH_H

#include <stddef.h>

#include "mpbatch/store.h"

typedef enum mpb__search_target {
    MPB__SEARCH_RUNS,
    MPB__SEARCH_EXPERIMENTS,
} mpb__search_target;

typedef enum mpb__entity {
    MPB__ENTITY_ATTRIBUTE,
    MPB__ENTITY_METRIC,
    MPB__ENTITY_PARAM,
    MPB__ENTITY_TAG,
} mpb__entity;

typedef enum mpb__op {
    MPB__OP_EQ,
    MPB__OP_NE,
    MPB__OP_LT,
    MPB__OP_LE,
    MPB__OP_GT,
    MPB__OP_GE,
    MPB__OP_LIKE,
    MPB__OP_ILIKE,
    MPB__OP_IN,
    MPB__OP_NOT_IN,
} mpb__op;

typedef struct mpb__clause {
    mpb__entity entity;
    char *key; /* attribute keys normalised ("created" -> "start_time") */
    mpb__op op;
    int numeric; /* compare `number`; else `strings` */
    double number;
    char **strings; /* one value, or the list of IN / NOT IN */
    size_t n_strings;
} mpb__clause;

typedef struct mpb__filter {
    mpb__clause *clauses; /* joined by AND */
    size_t n_clauses;
} mpb__filter;

typedef struct mpb__order_key {
    mpb__entity entity;
    char *key;
    int ascending;
} mpb__order_key;

typedef struct mpb__order {
    mpb__order_key *keys;
    size_t n_keys;
} mpb__order;

/* NULL or blank text is the empty filter (matches everything). MPB_EINVAL
 * with the offset and the text where parsing stopped. */
int mpb__filter_parse(mpb__search_target target, const char *text, mpb__filter *out, char *err,
                      size_t err_len);
void mpb__filter_clear(mpb__filter *filter);

int mpb__order_parse(mpb__search_target target, const char *const *order_by, size_t n_order_by,
                     mpb__order *out, char *err, size_t err_len);
void mpb__order_clear(mpb__order *order);

/* SQL LIKE: % any run of characters, _ one character. */
int mpb__like_match(const char *pattern, const char *text, int ignore_case);

int mpb__filter_match_run(const mpb__filter *filter, const mpb_run *run);
int mpb__filter_match_experiment(const mpb__filter *filter, const mpb_experiment *experiment);

/* Offset page tokens; NULL or "" decodes to offset 0. MPB_EINVAL for
 * anything else that is not such a token. Caller frees the encoded token. */
char *mpb__page_token_encode(size_t offset);
int mpb__page_token_decode(const char *token, size_t *out_offset, char *err, size_t err_len);

/* Checks the fields of search options every backend shares (filter and order
 * syntax, view type, max_results) before any I/O. The page token is the
 * backend's to check. */
int mpb__search_opts_check(mpb__search_target target, const mpb_search_opts *opts, char *err,
                           size_t err_len);

/* Filters by view type and filter, sorts, and cuts the page that starts at
 * `offset` (the backend decoded it from its page token). Consumes `runs` (an
 * array of n_runs runs, freed here whatever the outcome). The page's
 * next_page_token is left NULL; *out_next is the offset the next page starts
 * at, 0 when this page is the last. */
int mpb__search_runs_in_memory(mpb_run *runs, size_t n_runs, const mpb_search_opts *opts,
                               size_t offset, mpb_run_page **out, size_t *out_next, char *err,
                               size_t err_len);
int mpb__search_experiments_in_memory(mpb_experiment *experiments, size_t n_experiments,
                                      const mpb_search_opts *opts, size_t offset,
                                      mpb_experiment_page **out, size_t *out_next, char *err,
                                      size_t err_len);

#endif
