/*
 * mpbatch: batching model servers over ZeroMQ with MLflow-compatible
 * tracking. Include this one header for the whole public API.
 */
#ifndef MPBATCH_MPBATCH_H
#define MPBATCH_MPBATCH_H

#include "mpbatch/common.h"
#include "mpbatch/config.h"
#include "mpbatch/error.h"
#include "mpbatch/log.h"
#include "mpbatch/result.h"
#include "mpbatch/logging_queue.h"
#include "mpbatch/queueing_client.h"
#include "mpbatch/server.h"
#include "mpbatch/server_tracker.h"
#include "mpbatch/servlet.h"
#include "mpbatch/store.h"
#include "mpbatch/telemetry.h"
#include "mpbatch/tracking.h"
#include "mpbatch/worker.h"

#endif
