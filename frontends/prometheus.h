/*
 * The server's metrics in Prometheus's text exposition format (0.0.4):
 * per servlet path (pools) counters of items, errors by type, batches and
 * restarts; histograms of batch size, queue wait, compute time and latency;
 * gauges of queue depth, items in flight and workers; end-to-end figures
 * of the server; CPU and memory of the coordinator and its workers.
 * docs/metrics.md lists every name.
 *
 * Threading: the dispatcher thread (the figures are its own). Ownership:
 * the caller frees the text.
 */
#ifndef MPB_FRONTENDS_PROMETHEUS_H
#define MPB_FRONTENDS_PROMETHEUS_H

#include "servlets/server_int.h"

#define MPB_PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

char *mpb__prometheus_text(mpb_server *server);

#endif
