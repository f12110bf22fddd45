/*
 * HTTP exchanges of the REST store over libcurl: auth and TLS, MLflow's
 * client retry policy, and the mapping of MLflow's error answers to MPB_E*.
 *
 * DESIGN
 * Who runs where: every exchange runs on the caller's thread with a curl
 *   easy handle taken from the store's idle pool (under the store's mutex)
 *   and given back afterwards: a handle serves one thread at a time and
 *   keeps its connection alive for the next call. CURLOPT_NOSIGNAL is set:
 *   no handle touches signals, so any thread may call.
 * What flows: one request per attempt. POST bodies are JSON
 *   (Content-Type: application/json, which the server requires); PUT bodies
 *   are read from a file; answers land in memory, or for downloads in a temp
 *   file renamed into place on success. Credentials go in headers only
 *   (Basic from username + password, else Bearer from the token, MLflow's
 *   order) and never into a message or log.
 * On failure: 408, 429, 500, 502, 503, 504 and connection failures or
 *   timeouts are retried up to max_retries times, after 0 s, then
 *   factor * 2^(n-1) s (n: failures so far) plus up to `jitter` s, capped at
 *   120 s, or after Retry-After seconds when the server sends it (urllib3's
 *   schedule, which MLflow's client uses). An answer saying "Changing param
 *   values is not allowed" is final whatever its status (MLflow's FileStore
 *   reports it as 500). The last answer's error_code (or status) becomes the
 *   MPB_E* status and its message goes into err.
 */
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/fs_util.h"
#include "tracking/reststore_int.h"
#include "tracking/text.h"

#define PERMANENT_MESSAGE "Changing param values is not allowed"
#define MESSAGE_SNIPPET 300
/* Largest answer kept in memory (JSON, an error page): a server cannot make
 * the client hold more. Downloads go to a file. */
#define MAX_BODY_BYTES ((size_t)64 << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- Handle pool ---- */

static CURL *
handle_take(mpb__reststore *store)
{
    pthread_once(&curl_once, curl_init_once);
    CURL *handle = NULL;
    pthread_mutex_lock(&store->lock);
    if (store->n_idle > 0) {
        handle = store->idle[--store->n_idle];
    }
    pthread_mutex_unlock(&store->lock);
    return handle != NULL ? handle : curl_easy_init();
}

static void
handle_give(mpb__reststore *store, CURL *handle)
{
    pthread_mutex_lock(&store->lock);
    if (store->n_idle == store->cap_idle) {
        store->cap_idle = store->cap_idle ? store->cap_idle * 2 : 4;
        store->idle = mpb_realloc(store->idle, store->cap_idle * sizeof *store->idle);
    }
    store->idle[store->n_idle++] = handle;
    pthread_mutex_unlock(&store->lock);
}

void
mpb__rest_handles_free(mpb__reststore *store)
{
    for (size_t i = 0; i < store->n_idle; i++) {
        curl_easy_cleanup(store->idle[i]);
    }
    free(store->idle);
    store->idle = NULL;
    store->n_idle = store->cap_idle = 0;
}

char *
mpb__rest_escape(const char *text)
{
    pthread_once(&curl_once, curl_init_once);
    char *escaped = curl_easy_escape(NULL, text, 0);
    MPB_ASSERT(escaped != NULL);
    char *copy = mpb_strdup(escaped);
    curl_free(escaped);
    return copy;
}

/* ---- One attempt ---- */

typedef struct attempt {
    mpb__rest_exchange *x;
    CURL *handle;
    FILE *download; /* the temp file of a download, or NULL */
    int to_file;    /* -1 undecided, 0 memory, 1 the download file */
    size_t cap;
    long retry_after_s; /* -1 when absent */
    int too_large;      /* the answer passed MAX_BODY_BYTES: the transfer was stopped */
    /* the request timeout bounds each wait for bytes, not the transfer: a
     * large artifact that keeps moving is never cut off (as MLflow's
     * client's timeout, a connect and read timeout) */
    int64_t stall_ns;      /* the timeout */
    int64_t last_move_ns;  /* when bytes last moved either way */
    curl_off_t moved;      /* bytes moved so far, up and down */
    int stalled;           /* the transfer was stopped for it */
    char curl_error[CURL_ERROR_SIZE];
} attempt;

static int
on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal;
    (void)ultotal;
    attempt *a = ctx;
    int64_t now = mpb_now_ns();
    if (dlnow + ulnow != a->moved) {
        a->moved = dlnow + ulnow;
        a->last_move_ns = now;
        return 0;
    }
    if (now - a->last_move_ns > a->stall_ns) {
        a->stalled = 1;
        return 1; /* stops the transfer: CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

static size_t
on_body(char *data, size_t size, size_t count, void *ctx)
{
    attempt *a = ctx;
    size_t len = size * count;
    if (a->to_file < 0) {
        long status = 0;
        curl_easy_getinfo(a->handle, CURLINFO_RESPONSE_CODE, &status);
        a->to_file = a->download != NULL && status >= 200 && status < 300;
    }
    if (a->to_file) {
        return fwrite(data, 1, len, a->download);
    }
    mpb__rest_exchange *x = a->x;
    if (x->body_len + len > MAX_BODY_BYTES) {
        a->too_large = 1;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (x->body_len + len + 1 > a->cap) {
        a->cap = (x->body_len + len + 1) * 2;
        x->body = mpb_realloc(x->body, a->cap);
    }
    memcpy(x->body + x->body_len, data, len);
    x->body_len += len;
    x->body[x->body_len] = '\0';
    return len;
}

static size_t
on_header(char *data, size_t size, size_t count, void *ctx)
{
    attempt *a = ctx;
    size_t len = size * count;
    const char *name = "Retry-After:";
    if (len > strlen(name) && strncasecmp(data, name, strlen(name)) == 0) {
        char value[32] = "";
        size_t n = len - strlen(name) < sizeof value - 1 ? len - strlen(name) : sizeof value - 1;
        memcpy(value, data + strlen(name), n);
        char *end = NULL;
        long seconds = strtol(value, &end, 10);
        a->retry_after_s = end != value && seconds >= 0 ? seconds : -1; /* HTTP-dates ignored */
    }
    return len;
}

static struct curl_slist *
set_options(mpb__reststore *store, attempt *a, FILE *upload, int64_t upload_len)
{
    mpb__rest_exchange *x = a->x;
    CURL *h = a->handle;
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, x->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)store->timeout_ms);
    a->stall_ns = store->timeout_ms * 1000000;
    a->last_move_ns = mpb_now_ns();
    a->moved = 0;
    a->stalled = 0;
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->curl_error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mpbatch-reststore");
    if (x->json_body != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->json_body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(x->json_body));
    } else if (upload != NULL) {
        headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READDATA, upload);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)upload_len);
    }
    if (strcmp(x->method, "GET") != 0 && strcmp(x->method, "POST") != 0 &&
        strcmp(x->method, "PUT") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
    }
    if (store->username != NULL && store->password != NULL) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, store->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, store->password);
    } else if (store->token != NULL) {
        char *bearer = mpb_asprintf("Authorization: Bearer %s", store->token);
        headers = curl_slist_append(headers, bearer);
        memset(bearer, 0, strlen(bearer));
        free(bearer);
    }
    if (store->insecure_tls) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (store->ca_bundle != NULL) {
        curl_easy_setopt(h, CURLOPT_CAINFO, store->ca_bundle);
    }
    if (store->client_cert != NULL) { /* one PEM with certificate and key, as MLflow's */
        curl_easy_setopt(h, CURLOPT_SSLCERT, store->client_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, store->client_cert);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    return headers;
}

/* Sends one request. 0 when an answer came (x->status set), else the
 * CURLcode of a transport failure (the reason in a->curl_error). */
static CURLcode
send_once(mpb__reststore *store, attempt *a, char *err, size_t err_len, int *local_rc)
{
    mpb__rest_exchange *x = a->x;
    FILE *upload = NULL;
    int64_t upload_len = 0;
    *local_rc = 0;
    if (x->upload_path != NULL) {
        upload = fopen(x->upload_path, "rb");
        if (upload == NULL || fseek(upload, 0, SEEK_END) != 0 || (upload_len = ftell(upload)) < 0 ||
            fseek(upload, 0, SEEK_SET) != 0) {
            int rc = -errno;
            if (upload != NULL) {
                fclose(upload);
            }
            *local_rc = mpb__set_error(err, err_len, rc, "cannot read %s: %s", x->upload_path,
                                       mpb_strerror(rc));
            return CURLE_READ_ERROR;
        }
    }
    curl_easy_reset(a->handle);
    struct curl_slist *headers = set_options(store, a, upload, upload_len);
    CURLcode code = curl_easy_perform(a->handle);
    if (code == CURLE_WRITE_ERROR && a->too_large) {
        snprintf(a->curl_error, sizeof a->curl_error,
                 "the server's answer is larger than %zu MiB: not read", MAX_BODY_BYTES >> 20);
    }
    if (code == CURLE_ABORTED_BY_CALLBACK && a->stalled) {
        snprintf(a->curl_error, sizeof a->curl_error, "no bytes moved for %lld ms",
                 (long long)(a->stall_ns / 1000000));
        code = CURLE_OPERATION_TIMEDOUT; /* a timeout: retried as one */
    }
    curl_easy_setopt(a->handle, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    if (upload != NULL) {
        fclose(upload);
    }
    if (code == CURLE_OK) {
        curl_easy_getinfo(a->handle, CURLINFO_RESPONSE_CODE, &x->status);
    }
    return code;
}

/* ---- Retries ---- */

static int
status_retryable(long status)
{
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
           status == 504;
}

static int
transport_retryable(CURLcode code)
{
    return code == CURLE_COULDNT_CONNECT || code == CURLE_OPERATION_TIMEDOUT ||
           code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR || code == CURLE_GOT_NOTHING ||
           code == CURLE_PARTIAL_FILE;
}

static void
backoff_sleep(mpb__reststore *store, int failures, long retry_after_s)
{
    double seconds = 0;
    if (retry_after_s >= 0) {
        seconds = (double)retry_after_s;
    } else if (failures > 1) {
        seconds = store->backoff_factor * pow(2.0, failures - 1);
    }
    if (retry_after_s < 0 && store->backoff_jitter > 0) {
        uint32_t r = 0;
        (void)mpb__random_bytes(&r, sizeof r);
        seconds += store->backoff_jitter * ((double)r / 4294967296.0);
    }
    seconds = seconds > MPB__REST_BACKOFF_MAX_S ? MPB__REST_BACKOFF_MAX_S : seconds;
    struct timespec pause = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};
    while (nanosleep(&pause, &pause) < 0 && errno == EINTR) {
    }
}

/* ---- Errors ---- */

static const struct {
    const char *code;
    int status;
} error_codes[] = {
    {"RESOURCE_DOES_NOT_EXIST", MPB_ENOTFOUND},
    {"RESOURCE_ALREADY_EXISTS", MPB_EEXIST},
    {"INVALID_PARAMETER_VALUE", MPB_EINVAL},
    {"BAD_REQUEST", MPB_EINVAL},
    {"INVALID_REQUEST", MPB_EINVAL},
    {"MALFORMED_REQUEST", MPB_EINVAL},
    {"UNAUTHENTICATED", MPB_EACCES},
    {"PERMISSION_DENIED", MPB_EPERM},
    {"ENDPOINT_NOT_FOUND", MPB_ENOTSUP},
    {"NOT_IMPLEMENTED", MPB_ENOTSUP},
    {"REQUEST_LIMIT_EXCEEDED", MPB_EBUSY},
    {"RESOURCE_EXHAUSTED", MPB_EBUSY},
    {"TEMPORARILY_UNAVAILABLE", MPB_EBUSY},
    {"DEADLINE_EXCEEDED", MPB_ETIMEDOUT},
    {"RESOURCE_CONFLICT", MPB_EEXIST},
};

static int
status_from_http(long status)
{
    switch (status) {
    case 400:
        return MPB_EINVAL;
    case 401:
        return MPB_EACCES;
    case 403:
        return MPB_EPERM;
    case 404:
        return MPB_ENOTSUP; /* no JSON: an unknown path (ENDPOINT_NOT_FOUND) */
    case 408:
    case 504:
        return MPB_ETIMEDOUT;
    case 429:
    case 503:
        return MPB_EBUSY;
    default:
        return MPB_ESTORE;
    }
}

/* First line of a non-JSON body, tags dropped, at most MESSAGE_SNIPPET bytes. */
static void
snippet(const char *body, char *out, size_t len)
{
    size_t n = 0;
    int in_tag = 0;
    for (const char *p = body ? body : ""; *p != '\0' && n + 1 < len; p++) {
        if (*p == '<') {
            in_tag = 1;
        } else if (*p == '>') {
            in_tag = 0;
        } else if (!in_tag && (*p != '\n' || n > 0)) {
            out[n++] = *p == '\n' || *p == '\r' ? ' ' : *p;
        }
    }
    out[n] = '\0';
}

static int
http_failure(mpb__reststore *store, const mpb__rest_exchange *x, char *err, size_t err_len)
{
    cJSON *root = x->body != NULL ? mpb__rest_json_parse(x->body, x->body_len) : NULL;
    const char *code = mpb__rest_json_str(root, "error_code");
    const char *message = mpb__rest_json_str(root, "message");
    int status = status_from_http(x->status);
    for (size_t i = 0; code != NULL && i < MPB_ARRAY_LEN(error_codes); i++) {
        if (strcmp(code, error_codes[i].code) == 0) {
            status = error_codes[i].status;
        }
    }
    if (message != NULL && strstr(message, PERMANENT_MESSAGE) != NULL) {
        status = MPB_EINVAL;
    }
    int rc;
    if (code != NULL || message != NULL) {
        rc = mpb__set_error(err, err_len, status, "%s (%s, HTTP %ld, %s, %d attempt%s)",
                            message ? message : "", code ? code : "no error_code", x->status,
                            x->what, x->attempts, x->attempts == 1 ? "" : "s");
    } else if (x->status == 404) {
        rc = mpb__set_error(err, err_len, MPB_ENOTSUP,
                            "%s: the server has no such endpoint (HTTP 404 ENDPOINT_NOT_FOUND, "
                            "not MLflow's JSON; is %s an MLflow tracking server of 2.x or 3.x?)",
                            x->what, store->base);
    } else {
        char text[MESSAGE_SNIPPET];
        snippet(x->body, text, sizeof text);
        rc =
            mpb__set_error(err, err_len, status, "%s: HTTP %ld from %s: %s (%d attempt%s)", x->what,
                           x->status, store->base, text, x->attempts, x->attempts == 1 ? "" : "s");
    }
    cJSON_Delete(root);
    return rc;
}

static int
transport_failure(mpb__reststore *store, const mpb__rest_exchange *x, CURLcode code,
                  const char *detail, char *err, size_t err_len)
{
    int status = code == CURLE_OPERATION_TIMEDOUT ? MPB_ETIMEDOUT
                 : code == CURLE_COULDNT_CONNECT  ? MPB_ECONNREFUSED
                                                  : MPB_ESTORE;
    return mpb__set_error(err, err_len, status,
                          "%s: %s (%s; per-request timeout %lld ms, %d attempt%s)", x->what,
                          *detail ? detail : curl_easy_strerror(code), store->base,
                          (long long)store->timeout_ms, x->attempts, x->attempts == 1 ? "" : "s");
}

/* ---- Exchanges ---- */

void
mpb__rest_exchange_clear(mpb__rest_exchange *x)
{
    free(x->body);
    x->body = NULL;
    x->body_len = 0;
}

static int
open_download(const char *path, char **out_tmp, FILE **out, char *err, size_t err_len)
{
    int rc = mpb__fs_mkdir_parent(path);
    char *tmp = mpb_asprintf("%s.part-XXXXXX", path);
    int fd = rc < 0 ? -1 : mkstemp(tmp);
    if (fd < 0) {
        rc = rc < 0 ? rc : -errno;
        free(tmp);
        return mpb__set_error(err, err_len, rc, "cannot create %s: %s", path, mpb_strerror(rc));
    }
    *out = fdopen(fd, "wb");
    if (*out == NULL) {
        rc = -errno;
        close(fd);
        (void)unlink(tmp);
        free(tmp);
        return mpb__set_error(err, err_len, rc, "cannot write %s: %s", path, mpb_strerror(rc));
    }
    *out_tmp = tmp;
    return 0;
}

int
mpb__rest_exchange_run(mpb__reststore *store, mpb__rest_exchange *x, char *err, size_t err_len)
{
    attempt a = {.x = x};
    char *tmp = NULL;
    if (x->download_path != NULL) {
        int rc = open_download(x->download_path, &tmp, &a.download, err, err_len);
        if (rc < 0) {
            return rc;
        }
    }
    a.handle = handle_take(store);
    int rc = 0;
    x->attempts = 0;
    for (;;) {
        mpb__rest_exchange_clear(x);
        x->status = 0;
        a.cap = 0;
        a.to_file = -1;
        a.retry_after_s = -1;
        a.curl_error[0] = '\0';
        if (a.download != NULL) {
            (void)fflush(a.download);
            (void)ftruncate(fileno(a.download), 0);
            rewind(a.download);
        }
        int local_rc = 0;
        CURLcode code = send_once(store, &a, err, err_len, &local_rc);
        x->attempts++;
        if (local_rc < 0) {
            rc = local_rc;
            break;
        }
        if (code == CURLE_OK && x->status >= 200 && x->status < 300) {
            rc = 0;
            break;
        }
        int retryable = code != CURLE_OK
                            ? transport_retryable(code)
                            : status_retryable(x->status) &&
                                  (x->body == NULL || strstr(x->body, PERMANENT_MESSAGE) == NULL);
        if (!retryable || x->attempts > store->max_retries) {
            rc = code != CURLE_OK ? transport_failure(store, x, code, a.curl_error, err, err_len)
                                  : http_failure(store, x, err, err_len);
            break;
        }
        backoff_sleep(store, x->attempts, code == CURLE_OK ? a.retry_after_s : -1);
    }
    handle_give(store, a.handle);
    if (a.download != NULL) {
        int closed = fclose(a.download);
        if (rc == 0 && closed != 0) {
            rc = mpb__set_error(err, err_len, MPB_EIO, "cannot write %s", x->download_path);
        }
        if (rc == 0) {
            rc = mpb__fs_rename(tmp, x->download_path);
            if (rc < 0) {
                rc = mpb__set_error(err, err_len, rc, "cannot rename into %s: %s", x->download_path,
                                    mpb_strerror(rc));
            }
        }
        if (rc < 0) {
            (void)unlink(tmp);
        }
        free(tmp);
    }
    return rc;
}

int
mpb__rest_call(mpb__reststore *store, const char *method, const char *endpoint, const char *query,
               cJSON *body, cJSON **out, char *err, size_t err_len)
{
    char *json = NULL;
    if (body != NULL) {
        json = cJSON_PrintUnformatted(body);
        cJSON_Delete(body);
    }
    char *url = mpb_asprintf("%s" MPB__REST_API "%s%s%s", store->base, endpoint,
                             query != NULL ? "?" : "", query != NULL ? query : "");
    char *what = mpb_asprintf("%s %s", method, endpoint);
    mpb__rest_exchange x = {.method = method, .url = url, .what = what, .json_body = json};
    int rc = mpb__rest_exchange_run(store, &x, err, err_len);
    if (rc == 0 && out != NULL) {
        *out =
            mpb__rest_json_parse(x.body != NULL ? x.body : "{}", x.body != NULL ? x.body_len : 2);
        if (*out == NULL || !cJSON_IsObject(*out)) {
            cJSON_Delete(*out);
            *out = NULL;
            rc = mpb__set_error(err, err_len, MPB_ESTORE,
                                "%s: the answer of %s is not a JSON object", what, store->base);
        }
    }
    mpb__rest_exchange_clear(&x);
    free(what);
    free(url);
    if (json != NULL) {
        cJSON_free(json);
    }
    return rc;
}
