/*
 * Registry helpers: get-or-create an experiment by name and a run by tags,
 * the way ForML uses MLflow as a model registry. Built on the public API, so
 * every backend gets them. Not atomic across processes: two processes that
 * both find no run may both create one (the next lookup then reports
 * MPB_EAMBIGUOUS instead of silently picking one).
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/store_int.h"
#include "tracking/text.h"
#include "tracking/validate.h"

int
mpb_store_get_or_create_experiment(mpb_store *self, const char *name, char **out_experiment_id,
                                   int *out_created, char *err, size_t err_len)
{
    MPB_ASSERT(self != NULL && out_experiment_id != NULL);
    int rc = MPB_ENOTFOUND;
    /* A concurrent creator can win between our lookup and our create: retry. */
    for (int attempt = 0; attempt < 3; attempt++) {
        mpb_experiment *experiment = NULL;
        rc = mpb_store_get_experiment_by_name(self, name, &experiment, err, err_len);
        if (rc == 0) {
            if (strcmp(experiment->lifecycle_stage, "deleted") == 0) {
                rc = mpb_store_restore_experiment(self, experiment->experiment_id, err, err_len);
            }
            if (rc == 0) {
                *out_experiment_id = mpb_strdup(experiment->experiment_id);
                if (out_created != NULL) {
                    *out_created = 0;
                }
            }
            mpb_experiment_free(&experiment);
            return rc;
        }
        if (rc != MPB_ENOTFOUND) {
            return rc;
        }
        rc =
            mpb_store_create_experiment(self, name, NULL, NULL, 0, out_experiment_id, err, err_len);
        if (rc != MPB_EEXIST) {
            if (rc == 0 && out_created != NULL) {
                *out_created = 1;
            }
            return rc;
        }
    }
    return rc;
}

/* A filter over the tags whose values need no quote escaping; the rest are
 * checked in C (runs_with_tags), so the result is exact either way. */
static char *
tags_filter(const mpb_tag *tags, size_t n_tags)
{
    mpb__strbuf filter = {0};
    mpb__strbuf_append(&filter, "", 0);
    for (size_t i = 0; i < n_tags; i++) {
        if (strchr(tags[i].value, '\'') != NULL) {
            continue;
        }
        mpb__strbuf_printf(&filter, "%stags.\"%s\" = '%s'", filter.len ? " AND " : "", tags[i].key,
                           tags[i].value);
    }
    return mpb__strbuf_take(&filter);
}

static int
has_all_tags(const mpb_run *run, const mpb_tag *tags, size_t n_tags)
{
    for (size_t i = 0; i < n_tags; i++) {
        const char *value = mpb__tag_find(run->tags, run->n_tags, tags[i].key);
        if (value == NULL || strcmp(value, tags[i].value) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Counts active runs carrying all tags, up to two; *out_run_id gets the first. */
static int
runs_with_tags(mpb_store *self, const char *experiment_id, const mpb_tag *tags, size_t n_tags,
               size_t *out_count, char **out_run_id, char *err, size_t err_len)
{
    char *filter = tags_filter(tags, n_tags);
    char *token = NULL;
    const char *ids[] = {experiment_id};
    *out_count = 0;
    int rc = 0;
    do {
        mpb_search_opts opts = {.filter = filter, .page_token = token};
        mpb_run_page *page = NULL;
        rc = mpb_store_search_runs(self, ids, 1, &opts, &page, err, err_len);
        free(token);
        token = NULL;
        if (rc < 0) {
            break;
        }
        for (size_t i = 0; i < page->n_runs && *out_count < 2; i++) {
            if (has_all_tags(&page->runs[i], tags, n_tags)) {
                if (*out_count == 0) {
                    *out_run_id = mpb_strdup(page->runs[i].info.run_id);
                }
                (*out_count)++;
            }
        }
        if (*out_count < 2 && page->next_page_token != NULL) {
            token = mpb_strdup(page->next_page_token);
        }
        mpb_run_page_free(&page);
    } while (token != NULL);
    free(filter);
    return rc;
}

int
mpb_store_get_or_create_run(mpb_store *self, const char *experiment_id, const mpb_tag *tags,
                            size_t n_tags, char **out_run_id, int *out_created, char *err,
                            size_t err_len)
{
    MPB_ASSERT(self != NULL && out_run_id != NULL);
    int rc = mpb__validate_experiment_id(experiment_id, err, err_len);
    if (rc == 0) {
        rc = mpb__validate_run_tags(tags, n_tags, err, err_len);
    }
    if (rc < 0) {
        return rc;
    }
    size_t count = 0;
    char *run_id = NULL;
    rc = runs_with_tags(self, experiment_id, tags, n_tags, &count, &run_id, err, err_len);
    if (rc == 0 && count == 0) {
        rc = mpb_store_create_run(self, experiment_id, NULL, -1, NULL, tags, n_tags, &run_id, err,
                                  err_len);
    } else if (rc == 0 && count > 1) {
        rc = mpb__set_error(err, err_len, MPB_EAMBIGUOUS,
                            "More than one active run of experiment %s carries the given %zu "
                            "tag(s); expected at most one",
                            experiment_id, n_tags);
    }
    if (rc < 0) {
        free(run_id);
        return rc;
    }
    if (out_created != NULL) {
        *out_created = count == 0;
    }
    *out_run_id = run_id;
    return 0;
}
