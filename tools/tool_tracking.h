/*
 * A config's tracking: section for the tools that run servers (mpb run,
 * mpb serve): the run, its parameters, per-batch telemetry and a summary.
 * Threading: the tool's main thread. Ownership: the tracker returned is
 *   the caller's until passed to mpb__tool_tracking_finish.
 */
#ifndef MPB_TOOLS_TOOL_TRACKING_H
#define MPB_TOOLS_TOOL_TRACKING_H

#include <stdint.h>

#include "mpbatch/config.h"
#include "mpbatch/server.h"
#include "mpbatch/server_tracker.h"

/* With a tracking: section, starts the run (named run_name, else tool's
 * default), logs every servlet setting as a parameter and returns the
 * tracker that records each batch. NULL when not asked for, or failed
 * (said on stderr, prefixed by tool). */
mpb_server_tracker *mpb__tool_tracking_start(const mpb_config *config, const char *tool);

/* Every plugin option of config naming a model in a tracking store
 * (runs:/<run_id>/<path>) becomes a local copy's path (tools/model_sources.c);
 * each is said on stderr. 0, or a status after saying why. */
int mpb__tool_resolve_models(mpb_config *config, const char *tool);

/* Tags the active tracking run with the models resolved: mpb.model.<option
 * path> = "<uri> sha256:<hex>". */
void mpb__tool_tag_models(void);

/* The config's server, with its tracking: section's tracker (when there
 * is one, *tracker gets it and it records every batch). Allocates only. */
mpb_server *mpb__tool_server_new(const mpb_config *config, const char *tool,
                                 mpb_server_tracker **tracker);

/* Stops the tracker, logs summary metrics of the server and ends the run
 * with end (FINISHED, FAILED, KILLED). */
void mpb__tool_tracking_finish(mpb_server_tracker *tracker, mpb_server *server, int64_t start_ns,
                               mpb_run_status end, const char *tool);

#endif
