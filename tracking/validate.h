/*
 * Input validation with MLflow's rules and messages (mlflow/utils/validation.py,
 * see docs/tracking-format.md "Validation"): key names, lengths in code points,
 * batch limits, duplicate params, id formats, artifact paths.
 * Threading: thread-safe. Processes: n/a. Ownership: inputs borrowed.
 *
 * Each function returns 0 or MPB_EINVAL with a one-line message in err.
 */
#ifndef MPB_TRACKING_VALIDATE_H
#define MPB_TRACKING_VALIDATE_H

#include <stddef.h>

#include "mpbatch/store.h"

/* A metric, param or tag key (kind is "metric", "param" or "tag"): the ASCII
 * subset of MLflow's rule ([A-Za-z0-9_.- :/]), a normalised relative path
 * (no "", "//", "./", "..", leading or trailing "/"), at most 250 chars. */
int mpb__validate_key(const char *kind, const char *key, char *err, size_t err_len);

/* A value: non-NULL, valid UTF-8, at most max_len code points. */
int mpb__validate_value(const char *what, const char *key, const char *value, long max_len,
                        char *err, size_t err_len);

/* Run tags (create_run / set_tag): keys and values (8000). */
int mpb__validate_run_tags(const mpb_tag *tags, size_t n_tags, char *err, size_t err_len);

/* A whole log_batch request: limits (1000 metrics, 100 params, 100 tags,
 * 1000 entities), every key and value, and duplicate param keys. */
int mpb__validate_batch(const mpb_metric *metrics, size_t n_metrics, const mpb_param *params,
                        size_t n_params, const mpb_tag *tags, size_t n_tags, char *err,
                        size_t err_len);

/* For the file store only, where keys are paths: keys of one kind in a
 * batch that would need one name to be both a file and a folder ("a" and
 * "a/b"). MLflow's SQL store and server keep keys as rows and take both. */
int mpb__validate_key_folders(const mpb_metric *metrics, size_t n_metrics,
                              const mpb_param *params, size_t n_params, const mpb_tag *tags,
                              size_t n_tags, char *err, size_t err_len);

/* Non-empty, valid UTF-8, at most 500 code points. */
int mpb__validate_experiment_name(const char *name, char *err, size_t err_len);

/* Experiment tag: key rule and 250, value at most 5000. */
int mpb__validate_experiment_tag(const char *key, const char *value, char *err, size_t err_len);

/* ^[a-zA-Z0-9][\w-]{0,255}$ and ^[a-zA-Z0-9][\w-]{0,63}$ (ASCII \w). */
int mpb__validate_run_id(const char *run_id, char *err, size_t err_len);
int mpb__validate_experiment_id(const char *experiment_id, char *err, size_t err_len);

/* A relative artifact path without "", "." or ".." parts; NULL and "" are the root. */
int mpb__validate_artifact_path(const char *path, char *err, size_t err_len);

#endif
