/*
 * The HTTP front end, spoken to over real TCP connections on 127.0.0.1:
 * health, metadata, infer through a tree, and every malformed request
 * answered with a JSON error while the server keeps serving.
 */
#include <pthread.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "http_helpers.h"

typedef struct served {
    mpb_server *server;
    char address[128];
} served;

/* pipeline = sequential(pre: passthrough, models = ensemble(a, b)) */
static void
serve_tree(served *s, size_t max_message_bytes)
{
    test_pool pre = {.kind = "thread", .plugin = "passthrough", .name = "pre"};
    mpb_servlet *members[2] = {tag_pool("process", "a", 1, NULL), tag_pool("thread", "b", 1, NULL)};
    mpb_servlet *models = mpb_ensemble_servlet_new(members, 2, NULL);
    mpb_servlet_rename(models, "models");
    mpb_servlet *stages[2] = {test_pool_servlet(&pre), models};
    mpb_servlet *root = mpb_sequential_servlet_new(stages, 2);
    mpb_servlet_rename(root, "pipeline");
    s->server = test_server_over(&root, NULL);
    mpb_frontend_options fo;
    mpb_frontend_options_init(&fo);
    fo.max_message_bytes = max_message_bytes;
    char err[256];
    if (mpb_server_serve_http(s->server, "127.0.0.1:0", &fo, s->address, sizeof s->address, err,
                              sizeof err) != 0) {
        fail_msg("serve_http: %s", err);
    }
}

/* A server over root (consumed) with the HTTP front end on a free port. */
static void
serve_root(served *s, mpb_servlet *root)
{
    s->server = test_server_over(&root, NULL);
    char err[256];
    if (mpb_server_serve_http(s->server, "127.0.0.1:0", NULL, s->address, sizeof s->address, err,
                              sizeof err) != 0) {
        fail_msg("serve_http: %s", err);
    }
}

static void
health_and_metadata(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 0);
    expect(s.address, "GET", "/v2", NULL, 200, "\"name\":\"mpbatch\"");
    expect(s.address, "GET", "/v2/health/live", NULL, 200, "true");
    expect(s.address, "GET", "/v2/health/ready", NULL, 200, "true");
    expect(s.address, "GET", "/v2/models/pipeline/ready", NULL, 200, "true");
    expect(s.address, "GET", "/v2/models/pipeline", NULL, 200, "\"name\":\"pipeline\"");
    /* the ensemble's outputs are its members */
    expect(s.address, "GET", "/v2/models/pipeline/models", NULL, 200, "{\"name\":\"b\"");
    expect(s.address, "GET", "/v2/models/other", NULL, 404, "no model 'other'");

    expect(s.address, "GET", "/v3/anything", NULL, 404, "no endpoint");
    expect(s.address, "GET", "/v2/models/pipeline/infer", NULL, 405, "POST");
    expect(s.address, "DELETE", "/v2", NULL, 405, "only infer takes POST");
    /* a model's metadata and readiness take GET (or HEAD) only */
    expect(s.address, "DELETE", "/v2/models/pipeline", NULL, 405, "takes GET");
    expect(s.address, "PUT", "/v2/models/pipeline/ready", NULL, 405, "takes GET");
    expect(s.address, "POST", "/v2/models/pipeline", NULL, 405, "POST goes to infer");
    /* no such endpoint is a 404 whatever the method */
    expect(s.address, "POST", "/v2/health/nothing", NULL, 404, "no endpoint");
    const char *heads[] = {"/v2/health/live", "/v2/models/pipeline", "/metrics"};
    for (size_t i = 0; i < 3; i++) {
        http_reply r = http(s.address, "HEAD", heads[i], NULL);
        if (r.status != 200 || r.body[0] != '\0') {
            fail_msg("HEAD %s: %d '%s'", heads[i], r.status, r.body);
        }
        free(r.body);
    }
    mpb_server_destroy(&s.server);

    /* a plugin's declared tensors are the model's metadata */
    test_pool mlp = {.kind = "thread", .plugin = "mlp", .options = {"input_dim=4"}};
    mpb_servlet *root = test_pool_servlet(&mlp);
    serve_root(&s, root);
    expect(s.address, "GET", "/v2/models/mlp", NULL, 200,
           "\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[-1,-1]}]");
    mpb_server_destroy(&s.server);
}

static void
infer_through_the_tree(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 0);
    /* one member: FP32 rows echo back re-assembled in order */
    http_reply r = http(s.address, "POST", "/v2/models/pipeline/pre/infer",
                        "{\"id\": \"r1\", \"inputs\": [{\"name\": \"x\", \"shape\": [3, 2], "
                        "\"datatype\": \"FP32\", \"data\": [[1, 2], [3.5, 4], [5, -6]]}]}");
    assert_int_equal(r.status, 200);
    cJSON *json = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(json, "id")->valuestring, "r1");
    cJSON *out = cJSON_GetArrayItem(cJSON_GetObjectItem(json, "outputs"), 0);
    assert_string_equal(cJSON_GetObjectItem(out, "datatype")->valuestring, "FP32");
    cJSON *data = cJSON_GetObjectItem(out, "data");
    assert_int_equal(cJSON_GetArraySize(data), 6);
    assert_true(cJSON_GetArrayItem(data, 2)->valuedouble == 3.5);
    assert_true(cJSON_GetArrayItem(data, 5)->valuedouble == -6);
    cJSON_Delete(json);
    free(r.body);
    /* INT64 rows, beyond 32 bits */
    expect(s.address, "POST", "/v2/models/pipeline/pre/infer",
           "{\"inputs\": [{\"name\": \"n\", \"shape\": [2, 2], \"datatype\": \"INT64\", "
           "\"data\": [[1, -2], [4294967296, 9007199254740991]]}]}",
           200,
           "\"datatype\":\"INT64\",\"shape\":[2,2],\"data\":[1,-2,4294967296,"
           "9007199254740991]");
    /* the whole tree: one output per ensemble member */
    r = http(s.address, "POST", "/v2/models/pipeline/infer",
             "{\"inputs\": [{\"name\": \"t\", \"shape\": [2], \"datatype\": \"BYTES\", "
             "\"data\": [\"hi\", \"yo\"]}]}");
    assert_int_equal(r.status, 200);
    json = cJSON_Parse(r.body);
    cJSON *outputs = cJSON_GetObjectItem(json, "outputs");
    assert_int_equal(cJSON_GetArraySize(outputs), 2);
    cJSON *b = cJSON_GetArrayItem(outputs, 1);
    assert_string_equal(cJSON_GetObjectItem(b, "name")->valuestring, "b");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "data"), 1)->valuestring, "yo|b");
    cJSON_Delete(json);
    free(r.body);
    /* no items: still one output per member, each of shape [0] */
    r = http(s.address, "POST", "/v2/models/pipeline/infer",
             "{\"inputs\": [{\"name\": \"t\", \"shape\": [0], \"datatype\": \"BYTES\", "
             "\"data\": []}], \"outputs\": [{\"name\": \"b\"}]}");
    assert_int_equal(r.status, 200);
    json = cJSON_Parse(r.body);
    outputs = cJSON_GetObjectItem(json, "outputs");
    assert_int_equal(cJSON_GetArraySize(outputs), 1);
    b = cJSON_GetArrayItem(outputs, 0);
    assert_string_equal(cJSON_GetObjectItem(b, "name")->valuestring, "b");
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "shape"), 0)->valueint, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "data")), 0);
    cJSON_Delete(json);
    free(r.body);
    mpb_server_destroy(&s.server);
}

static void
bad_requests_get_json_errors(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 2048);
    const char *infer = "/v2/models/pipeline/infer";
    expect(s.address, "POST", infer, "{\"inputs\": [", 400, "not valid JSON");
    expect(s.address, "POST", infer, "\x01\x02garbage", 400, "\"error\"");
    expect(s.address, "POST", infer,
           "{\"inputs\": [{\"name\": \"x\", \"shape\": [2, 2], \"datatype\": \"FP32\", "
           "\"data\": [1, 2, 3]}]}",
           400, "shape [2,2] needs 4");
    expect(s.address, "POST", infer,
           "{\"inputs\": [{\"name\": \"x\", \"shape\": [1], \"datatype\": \"FP16\", "
           "\"data\": [1]}]}",
           400, "FP16");
    char *large = mpb_calloc(1, 4000);
    memset(large, ' ', 3999);
    expect(s.address, "POST", infer, large, 413, "max_message_bytes");
    free(large);
    /* an item that fails makes the answer a 500 naming the item */
    expect(s.address, "POST", infer,
           "{\"inputs\": [{\"name\": \"t\", \"shape\": [3], \"datatype\": \"BYTES\", "
           "\"data\": [\"fine\", \"x!b\", \"ok\"]}]}",
           500, "item 1: ValueError: failed at b (servlet pipeline/models/b");
    /* values that are not UTF-8 cannot be BYTES in JSON: the tree still answers */
    expect(s.address, "POST", infer,
           "{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\", "
           "\"data\": [\"after errors\"]}]}",
           200, "after errors|a");
    mpb_server_destroy(&s.server);
}

static void
outputs_deadlines_and_routed_shapes(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 0);
    const char *infer = "/v2/models/pipeline/infer";
    /* only the outputs asked for; a name no output has is a 400 */
    http_reply r = http(s.address, "POST", infer,
                        "{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": "
                        "\"BYTES\", \"data\": [\"q\"]}], \"outputs\": [{\"name\": \"b\"}]}");
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "\"name\":\"a\""));
    assert_non_null(strstr(r.body, "\"name\":\"b\""));
    free(r.body);
    expect(s.address, "POST", infer,
           "{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\", "
           "\"data\": [\"q\"]}], \"outputs\": [{\"name\": \"nosuch\"}]}",
           400, "has no output 'nosuch'");
    mpb_server_destroy(&s.server);

    /* parameters.timeout (microseconds) is the items' deadline: 504 */
    mpb_servlet *slow = tag_pool("thread", "slow", 1, "delay_us=400000");
    serve_root(&s, slow);
    expect(s.address, "POST", "/v2/models/slow/infer",
           "{\"parameters\": {\"timeout\": 50000}, \"inputs\": [{\"name\": \"t\", "
           "\"shape\": [1], \"datatype\": \"BYTES\", \"data\": [\"z\"]}]}",
           504, "Timeout");
    expect(s.address, "POST", "/v2/models/slow/infer",
           "{\"parameters\": {\"timeout\": -3}, \"inputs\": [{\"name\": \"t\", "
           "\"shape\": [1], \"datatype\": \"BYTES\", \"data\": [\"z\"]}]}",
           400, "parameters.timeout");
    mpb_server_destroy(&s.server);

    /* a switch whose members answer with different numbers of outputs */
    mpb_servlet *one[1] = {tag_pool("thread", "a", 1, NULL)};
    mpb_servlet *four[4] = {tag_pool("thread", "b", 1, NULL), tag_pool("thread", "c", 1, NULL),
                            tag_pool("thread", "d", 1, NULL), tag_pool("thread", "e", 1, NULL)};
    mpb_servlet *members[2] = {mpb_ensemble_servlet_new(one, 1, NULL),
                               mpb_ensemble_servlet_new(four, 4, NULL)};
    mpb_servlet_rename(members[0], "one");
    mpb_servlet_rename(members[1], "four");
    mpb_switch_config cfg;
    mpb_switch_config_init(&cfg);
    cfg.router = test_plugin_path("first_digit_router");
    mpb_servlet *sw = mpb_switch_servlet_new(members, 2, &cfg);
    serve_root(&s, sw);
    expect(s.address, "POST", "/v2/models/switch/infer",
           "{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\", "
           "\"data\": [\"1x\"]}]}",
           200, "\"name\":\"output_3\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"1x|e\"]");
    mpb_server_destroy(&s.server);
}

typedef struct parallel_call {
    const char *address;
    int index;
    int ok;
} parallel_call;

static void *
call_in_parallel(void *arg)
{
    parallel_call *c = arg;
    char body[256];
    snprintf(body, sizeof body,
             "{\"inputs\": [{\"name\": \"t\", \"shape\": [1], \"datatype\": \"BYTES\", "
             "\"data\": [\"c%d\"]}]}",
             c->index);
    http_reply r = http(c->address, "POST", "/v2/models/pipeline/models/a/infer", body);
    char want[32];
    snprintf(want, sizeof want, "\"c%d|a\"", c->index);
    c->ok = r.status == 200 && strstr(r.body, want) != NULL;
    free(r.body);
    return NULL;
}

static void
connections_wait_in_parallel(void **state)
{
    (void)state;
    served s;
    serve_tree(&s, 0);
    enum { N = 16 };
    pthread_t threads[N];
    parallel_call calls[N];
    for (int i = 0; i < N; i++) {
        calls[i] = (parallel_call){s.address, i, 0};
        pthread_create(&threads[i], NULL, call_in_parallel, &calls[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(threads[i], NULL);
        assert_true(calls[i].ok);
    }
    mpb_server_destroy(&s.server);
}

/* With a token file, only requests carrying the token are served: 401
 * (with WWW-Authenticate) otherwise, before the body is looked at. */
static void
bearer_token_guards_every_route(void **state)
{
    (void)state;
    char path[] = "/tmp/mpb-token-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char token[] = "s3cret-token-0123456789abcdef\n";
    assert_int_equal(write(fd, token, strlen(token)), (ssize_t)strlen(token));
    close(fd);
    test_pool tp = {.kind = "thread", .plugin = "passthrough", .name = "echo"};
    mpb_servlet *root = test_pool_servlet(&tp);
    served s;
    s.server = test_server_over(&root, NULL);
    mpb_frontend_options fo;
    mpb_frontend_options_init(&fo);
    fo.token_file = path;
    char err[256];
    assert_int_equal(chmod(path, 0644), 0); /* others may read it: refused */
    assert_int_equal(mpb_server_serve_http(s.server, "127.0.0.1:0", &fo, s.address,
                                           sizeof s.address, err, sizeof err),
                     MPB_EACCES);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(mpb_server_serve_http(s.server, "127.0.0.1:0", &fo, s.address,
                                           sizeof s.address, err, sizeof err),
                     0);
    const char *body = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"BYTES\","
                       "\"data\":[\"hi\"]}]}";
    const char *wrong[] = {NULL, "Authorization: Bearer nope\r\n",
                           "Authorization: Basic czNjcmV0\r\n",
                           "Authorization: Bearer s3cret-token-0123456789abcdeX\r\n"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(wrong); i++) {
        http_reply r = http_with(s.address, "POST", "/v2/models/echo/infer", wrong[i], body);
        assert_int_equal(r.status, 401);
        free(r.body);
        r = http_with(s.address, "GET", "/v2/health/ready", wrong[i], NULL);
        assert_int_equal(r.status, 401);
        free(r.body);
    }
    const char *right = "Authorization: Bearer s3cret-token-0123456789abcdef\r\n";
    http_reply r = http_with(s.address, "POST", "/v2/models/echo/infer", right, body);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "hi"));
    free(r.body);
    mpb_server_stats stats;
    mpb_server_stats_get(s.server, &stats);
    assert_int_equal(stats.completed, 1); /* the refused requests never became items */
    /* an address without a host binds loopback */
    char loopback[128];
    assert_int_equal(
        mpb_server_serve_http(s.server, ":0", &fo, loopback, sizeof loopback, err, sizeof err), 0);
    if (strncmp(loopback, "127.0.0.1:", 10) != 0 && strncmp(loopback, "[::1]:", 6) != 0) {
        fail_msg("':0' bound %s, not loopback", loopback);
    }
    mpb_server_destroy(&s.server);
    unlink(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(health_and_metadata),
        cmocka_unit_test(bearer_token_guards_every_route),
        cmocka_unit_test(infer_through_the_tree),
        cmocka_unit_test(bad_requests_get_json_errors),
        cmocka_unit_test(outputs_deadlines_and_routed_shapes),
        cmocka_unit_test(connections_wait_in_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
