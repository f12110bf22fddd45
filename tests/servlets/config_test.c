/*
 * Pipeline configs: what a good file turns into, and how a bad one is
 * reported (file, line, column, field).
 */
#include "config_helpers.h"

static void
a_full_config_is_read(void **state)
{
    mpb_config *config = parse_ok("servlet:\n"
                                  "  kind: thread\n"
                                  "  name: echo\n"
                                  "  plugin: fail\n"
                                  "  workers: 2\n"
                                  "  cpus: [0, \"0\"]\n"
                                  "  batch_size: 16\n"
                                  "  batch_wait_us: 0\n"
                                  "  options:\n"
                                  "    fail_prefix: never\n"
                                  "server:\n"
                                  "  capacity: 64\n"
                                  "io:\n"
                                  "  format: f32\n"
                                  "tracking:\n"
                                  "  uri: file:./somewhere\n");
    assert_string_equal(mpb_config_get(config, "io.format"), "f32");
    assert_string_equal(mpb_config_get(config, "tracking.uri"), "file:./somewhere");
    assert_string_equal(mpb_config_get(config, "servlet.batch_size"), "16");
    assert_null(mpb_config_get(config, "tracking.experiment"));
    mpb_server_options opts;
    mpb_config_server_options(config, &opts);
    assert_int_equal(opts.capacity, 64);
    /* The servlet it makes runs: a thread pool on CPU 0 echoing items. */
    mpb_servlet *servlet = mpb_config_servlet(config);
    assert_string_equal(mpb_servlet_name(servlet), "echo");
    mpb_server *server = mpb_server_new(&servlet, &opts);
    char err[256];
    assert_int_equal(mpb_server_start(server, err, sizeof err), 0);
    mpb_worker_status workers[2];
    assert_int_equal(mpb_server_workers(server, workers, 2), 2);
    assert_string_equal(workers[0].cpus, "0");
    assert_string_equal(workers[1].cpus, "0");
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "hi", 2, 5000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
    mpb_config_destroy(&config);
}

static void
bad_configs_point_at_the_problem(void **state)
{
    assert_config_error("servlet:\n  plugin: mlp\n  batchsize: 4\n",
                        "t.yaml:3:3: unknown field servlet.batchsize (did you mean batch_size?)");
    assert_config_error("servlet:\n  plugin: mlp\n  batch_size: -1\n",
                        "t.yaml:3:15: servlet.batch_size must be an integer >= 0 (got '-1')");
    assert_config_error("servlet:\n  plugin: mlp\n  workers: two\n",
                        "t.yaml:3:12: servlet.workers must be an integer >= 0");
    assert_config_error("servlet:\n  workers: 2\n", "t.yaml:2:3: servlet.plugin is required");
    assert_config_error("servlet:\n  plugin: mlp\n  kind: fiber\n",
                        "t.yaml:3:9: servlet.kind must be process, thread, sequential, ensemble or "
                        "switch (got 'fiber')");
    assert_config_error("server:\n  capacity: 8\n", "a servlet: section is required");
    assert_config_error("servlet:\n  plugin: [mlp\n", "t.yaml:3:1: YAML error");
    assert_config_error("servlet:\n  plugin: mlp\nio:\n  format: csv\n",
                        "t.yaml:4:11: io.format must be text or f32");
    assert_config_error("servlet:\n  plugin: mlp\nsever:\n  capacity: 1\n",
                        "unknown field (top level).sever (did you mean server?)");
    assert_config_error("servlet:\n  plugin: mlp\n  options: [1, 2]\n",
                        "servlet.options must be a mapping");
    assert_config_error("- just\n- a list\n", "must be a mapping");
    assert_config_error("servlet:\n  plugin: mlp\n  workers: 2\n  workers: 3\n",
                        "t.yaml:4:3: servlet.workers is given twice");
    assert_config_error("servlet:\n  plugin: mlp\n  batch_size: 4294967296\n",
                        "servlet.batch_size must be at most 1048576");
    assert_config_error("servlet:\n  plugin: mlp\nserver:\n  stop_timeout_ms: 99999999999\n",
                        "server.stop_timeout_ms must be at most 2147483647");
    /* found when the file is read, with a position, not when workers start */
    assert_config_error("servlet:\n  plugin: \"\"\n", "t.yaml:2:11: servlet.plugin must name a plugin");
    assert_config_error("servlet:\n  plugin: mlp\n  cpus: banana\n",
                        "t.yaml:3:9: servlet.cpus: cpus 'banana' is not a CPU list");
    assert_config_error("servlet:\n  plugin: mlp\n  cpus: [0, nine]\n",
                        "t.yaml:3:13: servlet.cpus: cpus 'nine' is not a CPU list");
    assert_config_error("servlet:\n  plugin: mlp\n  cpus: 100000\n",
                        "are not all available to this process");
    assert_config_error("servlet:\n  plugin: mlp\ntracking:\n  items: maybe\n",
                        "t.yaml:4:10: tracking.items must be true or false (got 'maybe')");
    assert_config_error("servlet:\n  plugin: mlp\ntracking:\n  interval_ms: abc\n",
                        "t.yaml:4:16: tracking.interval_ms must be an integer >= 1");
    assert_config_error("servlet:\n  plugin: mlp\ntracking:\n  items_first: -5\n",
                        "t.yaml:4:16: tracking.items_first must be an integer >= 0");
    assert_config_error("servlet:\n  plugin: mlp\ntracking:\n  payload_max: 0\n",
                        "t.yaml:4:16: tracking.payload_max must be an integer >= 1");
    /* one document per file: a second would be dropped without a word */
    assert_config_error("servlet:\n  plugin: mlp\n---\nservlet:\n  plugin: other\n",
                        "t.yaml:3:1: a second YAML document");
    /* an empty file points at its start */
    assert_config_error("# nothing here\n", "t.yaml:1:1: the file must be a mapping");
}

static void
yaml_booleans_are_kept_as_true_or_false(void **state)
{
    (void)state;
    mpb_config *config = parse_ok("---\nservlet:\n  plugin: mlp\n  cpus: auto\n"
                                  "tracking:\n  items: True\n  log_payloads: no\n");
    assert_string_equal(mpb_config_get(config, "tracking.items"), "true");
    assert_string_equal(mpb_config_get(config, "tracking.log_payloads"), "false");
    mpb_config_destroy(&config);
}

static void
missing_file_is_named(void **state)
{
    mpb_config *config = NULL;
    char err[256] = "";
    assert_int_equal(mpb_config_load("/nonexistent/t.yaml", &config, err, sizeof err), MPB_ENOENT);
    assert_non_null(strstr(err, "/nonexistent/t.yaml"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_full_config_is_read),
        cmocka_unit_test(bad_configs_point_at_the_problem),
        cmocka_unit_test(yaml_booleans_are_kept_as_true_or_false),
        cmocka_unit_test(missing_file_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
