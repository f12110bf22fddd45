/*
 * A tracking server for the REST store's tests: MLflow's REST API (the
 * endpoints, JSON shapes and error answers of docs/tracking-rest.md) served
 * on 127.0.0.1 (port chosen by the OS) by libmicrohttpd threads, over
 * mpbatch's own SQLite store in a folder, with proxied artifacts
 * (mlflow-artifacts:/) kept in <dir>/mlartifacts. It reproduces MLflow's
 * quirks (Flask's HTML 404 for unknown paths, the Host check, runs/create
 * storing 0 and "" without start_time and user_id, 400 or 500 on a changed
 * param, metric history without max_results) and takes injected faults:
 * failing answers with Retry-After, slow answers, required credentials, a
 * page token that never advances. It records requests for the tests.
 *
 * Threading: one daemon thread plus a thread per connection; knobs and
 *   records are under the server's mutex, so tests may set and read them
 *   from any thread. Processes: in the test's process.
 */
#ifndef MPB_TESTS_TRACKING_REST_TEST_SERVER_H
#define MPB_TESTS_TRACKING_REST_TEST_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "mpbatch/store.h"

typedef struct rest_server rest_server;

/* Starts a server whose data lives in dir (created by the caller); aborts
 * the test process when it cannot. Stop with rest_server_stop. */
rest_server *rest_server_start(const char *dir);
void rest_server_stop(rest_server **server_p);

/* "http://127.0.0.1:PORT" (borrowed). */
const char *rest_server_url(const rest_server *server);

/* The next n requests answer `status` with MLflow's error JSON (a Retry-After
 * header too unless retry_after is NULL). */
void rest_server_fail_next(rest_server *server, int n, int status, const char *retry_after);
/* The next n requests are answered after delay_ms. */
void rest_server_slow_next(rest_server *server, int n, int delay_ms);
/* Artifact downloads from now on send one byte every gap_ms (0: at once). */
void rest_server_trickle(rest_server *server, int gap_ms);
/* Every request must carry exactly this Authorization header (NULL: none
 * needed); others get 401. */
void rest_server_require_auth(rest_server *server, const char *authorization);
/* Status of a refused param change: 400 (SQL stores, the default) or 500
 * (MLflow's FileStore). */
void rest_server_param_change_status(rest_server *server, int status);
/* Metric history pages hold at most page_size values (0: as asked); stuck
 * answers the page token it was given as the next one. */
void rest_server_history_pages(rest_server *server, int page_size, int stuck);

/* Requests seen for one endpoint ("runs/log-batch"; NULL: all requests). */
int rest_server_requests(rest_server *server, const char *endpoint);
/* The Authorization header of the latest request ("" if none); caller frees. */
char *rest_server_last_authorization(rest_server *server);
/* The bodies of runs/log-batch requests in arrival order (borrowed until
 * the next request or stop). */
size_t rest_server_log_batch_bodies(rest_server *server, char ***out);

/* ---- Internals shared by rest_test_server*.c ---- */

#define RTS_MAX_ENDPOINTS 64

struct rest_server {
    struct MHD_Daemon *daemon;
    mpb_store *store;
    char *artifacts; /* <dir>/mlartifacts */
    char url[64];
    pthread_mutex_t lock;
    int stopping;
    /* knobs */
    int fail_n;
    int fail_status;
    char retry_after[16];
    int slow_n;
    int slow_ms;
    int trickle_gap_ms; /* > 0: artifact downloads send a byte per gap */
    char *require_auth;
    int param_change_status;
    int history_page;
    int history_stuck;
    /* records */
    int total;
    char *endpoints[RTS_MAX_ENDPOINTS];
    int counts[RTS_MAX_ENDPOINTS];
    char *last_authorization;
    char **batch_bodies;
    size_t n_batch_bodies;
};

/* One request as the routes see it: GET arguments or the JSON body. */
typedef struct rts_request {
    rest_server *server;
    struct MHD_Connection *conn;
    int is_post; /* the fields are in a JSON body (POST, DELETE) */
    cJSON *body;
    const char *raw_body;
} rts_request;

/* An answer: HTTP status and a JSON object (the routes fill it). */
typedef int (*rts_route_fn)(rts_request *r, cJSON *answer, char *err, size_t err_len);

/* The tracking API's routes (rest_test_server_routes.c): the handler of
 * `endpoint` for `method`, or NULL (Flask's 404). */
rts_route_fn rts_route(const char *method, const char *endpoint);

/* The model registry's routes (rest_test_server_registry.c), as rts_route. */
rts_route_fn rts_registry_route(const char *method, const char *endpoint);

/* A string field of the request (GET argument or JSON body), or NULL. */
const char *rts_field(rts_request *r, const char *name);

#endif
