/* Entity lifetimes and small lookups shared by every backend. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/store_int.h"

static const char *const status_names[] = {
    [MPB_RUN_RUNNING] = "RUNNING",   [MPB_RUN_SCHEDULED] = "SCHEDULED",
    [MPB_RUN_FINISHED] = "FINISHED", [MPB_RUN_FAILED] = "FAILED",
    [MPB_RUN_KILLED] = "KILLED",
};

const char *
mpb_run_status_name(mpb_run_status status)
{
    if (status < MPB_RUN_RUNNING || status > MPB_RUN_KILLED) {
        return "UNKNOWN";
    }
    return status_names[status];
}

int
mpb_run_status_parse(const char *name, mpb_run_status *out)
{
    for (int status = MPB_RUN_RUNNING; name != NULL && status <= MPB_RUN_KILLED; status++) {
        if (strcasecmp(name, status_names[status]) == 0) {
            *out = (mpb_run_status)status;
            return 0;
        }
    }
    return MPB_EINVAL;
}

void
mpb__tags_free(mpb_tag *tags, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)tags[i].key);
        free((char *)tags[i].value);
    }
    free(tags);
}

void
mpb__run_info_clear(mpb_run_info *info)
{
    free(info->run_id);
    free(info->experiment_id);
    free(info->run_name);
    free(info->user_id);
    free(info->artifact_uri);
    free(info->lifecycle_stage);
    memset(info, 0, sizeof *info);
}

void
mpb__run_clear(mpb_run *run)
{
    mpb__run_info_clear(&run->info);
    for (size_t i = 0; i < run->n_metrics; i++) {
        free((char *)run->metrics[i].key);
    }
    free(run->metrics);
    /* mpb_param has the layout of mpb_tag: two owned strings. */
    for (size_t i = 0; i < run->n_params; i++) {
        free((char *)run->params[i].key);
        free((char *)run->params[i].value);
    }
    free(run->params);
    mpb__tags_free(run->tags, run->n_tags);
    memset(run, 0, sizeof *run);
}

void
mpb_run_free(mpb_run **run_p)
{
    if (run_p == NULL || *run_p == NULL) {
        return;
    }
    mpb__run_clear(*run_p);
    free(*run_p);
    *run_p = NULL;
}

void
mpb__experiment_clear(mpb_experiment *experiment)
{
    free(experiment->experiment_id);
    free(experiment->name);
    free(experiment->artifact_location);
    free(experiment->lifecycle_stage);
    mpb__tags_free(experiment->tags, experiment->n_tags);
    memset(experiment, 0, sizeof *experiment);
}

void
mpb_experiment_free(mpb_experiment **experiment_p)
{
    if (experiment_p == NULL || *experiment_p == NULL) {
        return;
    }
    mpb__experiment_clear(*experiment_p);
    free(*experiment_p);
    *experiment_p = NULL;
}

void
mpb_run_page_free(mpb_run_page **page_p)
{
    if (page_p == NULL || *page_p == NULL) {
        return;
    }
    mpb_run_page *page = *page_p;
    for (size_t i = 0; i < page->n_runs; i++) {
        mpb__run_clear(&page->runs[i]);
    }
    free(page->runs);
    free(page->next_page_token);
    free(page);
    *page_p = NULL;
}

void
mpb_experiment_page_free(mpb_experiment_page **page_p)
{
    if (page_p == NULL || *page_p == NULL) {
        return;
    }
    mpb_experiment_page *page = *page_p;
    for (size_t i = 0; i < page->n_experiments; i++) {
        mpb__experiment_clear(&page->experiments[i]);
    }
    free(page->experiments);
    free(page->next_page_token);
    free(page);
    *page_p = NULL;
}

void
mpb_metric_history_free(mpb_metric_history **history_p)
{
    if (history_p == NULL || *history_p == NULL) {
        return;
    }
    mpb_metric_history *history = *history_p;
    free(history->run_id);
    free(history->key);
    free(history->metrics);
    free(history);
    *history_p = NULL;
}

void
mpb_artifact_list_free(mpb_artifact_list **list_p)
{
    if (list_p == NULL || *list_p == NULL) {
        return;
    }
    mpb_artifact_list *list = *list_p;
    for (size_t i = 0; i < list->n_files; i++) {
        free(list->files[i].path);
    }
    free(list->files);
    free(list);
    *list_p = NULL;
}

const char *
mpb__tag_find(const mpb_tag *tags, size_t n, const char *key)
{
    for (size_t i = n; i > 0; i--) {
        if (strcmp(tags[i - 1].key, key) == 0) {
            return tags[i - 1].value;
        }
    }
    return NULL;
}

const char *
mpb__param_find(const mpb_param *params, size_t n, const char *key)
{
    for (size_t i = n; i > 0; i--) {
        if (strcmp(params[i - 1].key, key) == 0) {
            return params[i - 1].value;
        }
    }
    return NULL;
}

const mpb_metric *
mpb__metric_find(const mpb_metric *metrics, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(metrics[i].key, key) == 0) {
            return &metrics[i];
        }
    }
    return NULL;
}
