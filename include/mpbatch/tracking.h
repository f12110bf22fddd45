/*
 * Fluent tracking API (MLflow's mlflow.start_run / log_metric / end_run): one
 * process-wide store, one async logging queue and a stack of active runs.
 * Log calls enqueue and return; run creation, experiments and artifacts are
 * synchronous store calls.
 *
 * Threading: every function is thread-safe; calls are serialised by one lock.
 *   The run stack is shared by all threads of the process (MLflow keeps one
 *   per thread): a worker thread's log_metric goes to the run main started.
 * Processes: after fork() the child starts afresh (no store, queue or active
 *   run of the parent); runs the parent started are the parent's to end.
 * Ownership: all strings are copied; nothing returned needs freeing.
 *
 * Configuration, read once at first use (explicit calls take precedence):
 *   MLFLOW_TRACKING_URI      store to open (default: mpb_store_default_uri(),
 *                            sqlite:///mlflow.db unless ./mlruns holds experiments)
 *   MLFLOW_EXPERIMENT_NAME   experiment of new runs, created if missing
 *   MLFLOW_EXPERIMENT_ID     experiment of new runs, when no name is set
 *   MLFLOW_RUN_ID            an outermost start_run resumes this run
 *   MPB_TRACKING_EXIT_TIMEOUT_MS  deadline of end_run, shutdown and exit
 *
 * Ending: end_run() waits (within the exit timeout) until the run's data and
 * end status are written, as MLflow's does. At process exit (exit() or
 * return from main) the active runs end as FINISHED and the queue is drained:
 * an atexit handler cannot see the exit status, so a program that fails
 * should call mpb_tracking_shutdown(status) (FAILED when status != 0). A
 * process killed by a signal leaves its runs RUNNING (as MLflow does).
 */
#ifndef MPBATCH_TRACKING_H
#define MPBATCH_TRACKING_H

#include <stddef.h>
#include <stdint.h>

#include "mpbatch/common.h"
#include "mpbatch/logging_queue.h"
#include "mpbatch/store.h"

/* Uses this store from now on (a tracking URI as mpb_store_open() takes).
 * MPB_EBUSY while a run is active. */
MPB_EXPORT int mpb_tracking_set_tracking_uri(const char *uri, char *err, size_t err_len);

/* New runs go to the experiment with this name, created if missing; a
 * deleted experiment of that name is an error (MPB_EINVAL). */
MPB_EXPORT int mpb_tracking_set_experiment(const char *name, char *err, size_t err_len);

/* Starts a run (nested under the active one, if any, with tag
 * mlflow.parentRunId) and makes it active. run_name may be NULL. Tags
 * mlflow.runName, mlflow.user, mlflow.source.name (the program) and
 * mlflow.source.type=LOCAL are set. An outermost run resumes MLFLOW_RUN_ID
 * when that is set. run_id_out (may be NULL) gets the run id. */
MPB_EXPORT int mpb_tracking_start_run(const char *run_name, char *run_id_out, size_t run_id_len,
                                      char *err, size_t err_len);

/* Ends the innermost active run with a status (MPB_RUN_FINISHED, _FAILED,
 * _KILLED) after everything logged to it; waits until that is written.
 * MPB_ENOTFOUND when no run is active. */
MPB_EXPORT int mpb_tracking_end_run(mpb_run_status status, char *err, size_t err_len);

/* Copies the active run's id; MPB_ENOTFOUND when none, MPB_ERANGE when the
 * buffer is too small. */
MPB_EXPORT int mpb_tracking_active_run_id(char *run_id_out, size_t run_id_len);

/* Enqueue to the active run (starting one when none is active, as MLflow
 * does). Return the enqueue status (MPB_EFULL, MPB_ECLOSED, or why the store
 * could not be opened or the run started: mpb_tracking_start_run() gives the
 * reason in words); a write that fails later is reported by
 * mpb_tracking_flush() and on stderr. */
MPB_EXPORT int mpb_tracking_log_param(const char *key, const char *value);
MPB_EXPORT int mpb_tracking_log_metric(const char *key, double value, int64_t step);
MPB_EXPORT int mpb_tracking_set_tag(const char *key, const char *value);

/* Copies a local file or folder into the active run's artifacts under
 * artifact_path (NULL: the root); synchronous, holding the API's lock. */
MPB_EXPORT int mpb_tracking_log_artifact(const char *local_path, const char *artifact_path,
                                         char *err, size_t err_len);

/* Waits until everything logged so far is written. 0; or the status of the
 * latest write that failed since the previous flush; MPB_ETIMEDOUT. */
MPB_EXPORT int mpb_tracking_flush(int64_t timeout_ms);

/* Ends every active run (FINISHED when exit_status is 0, else FAILED),
 * drains the queue within the exit timeout and closes the store; the next
 * call starts afresh. Reports what could not be written in err. */
MPB_EXPORT int mpb_tracking_shutdown(int exit_status, char *err, size_t err_len);

/* The fluent API's queue, for other writers (the server's telemetry, a
 * queueing client) to share; opened on first use. Borrowed until
 * mpb_tracking_shutdown(). NULL with the reason in err when the store cannot
 * be opened. */
MPB_EXPORT mpb_logging_queue *mpb_tracking_queue(char *err, size_t err_len);

/* The fluent API's store, opened on first use; borrowed as the queue. */
MPB_EXPORT mpb_store *mpb_tracking_store(char *err, size_t err_len);

#endif
