/*
 * The servlet: section as a tree: each kind from YAML, a three-deep tree
 * that runs, and bad trees reported at the node that is wrong.
 */
#include "config_helpers.h"
#include "tree_helpers.h"

/* YAML text with every {TAG} replaced by the tag plugin's path. */
static char *
with_tag_path(const char *text)
{
    const char *path = test_plugin_path("tag");
    char *out = mpb_calloc(1, strlen(text) * 4 + 1024);
    const char *at = text;
    const char *hit;
    while ((hit = strstr(at, "{TAG}")) != NULL) {
        strncat(out, at, (size_t)(hit - at));
        strcat(out, path);
        at = hit + 5;
    }
    strcat(out, at);
    return out;
}

static mpb_server *
start_from(const char *yaml)
{
    char *text = with_tag_path(yaml);
    mpb_config *config = parse_ok(text);
    free(text);
    mpb_servlet *root = mpb_config_servlet(config);
    mpb_server_options opts;
    mpb_config_server_options(config, &opts);
    mpb_config_destroy(&config);
    return test_server_over(&root, &opts);
}

static void
a_switch_with_a_router_plugin(void **state)
{
    (void)state;
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "servlet:\n"
             "  kind: switch\n"
             "  router: %s\n"
             "  router_options: {offset: 0}\n"
             "  default: other\n"
             "  members:\n"
             "    - {plugin: \"{TAG}\", name: zero, kind: thread, options: {tag: z}}\n"
             "    - {plugin: \"{TAG}\", name: other, options: {tag: o}}\n",
             test_plugin_path("first_digit_router"));
    mpb_server *server = start_from(yaml);
    const char *inputs[3] = {"0x", "1y", "z"};
    mpb_result **results = stream_strings(server, inputs, 3);
    assert_value(results[0], "0x|z");
    assert_value(results[1], "1y|o");
    assert_value(results[2], "z|o");
    free_results(results, 3);
    mpb_server_destroy(&server);
}

static void
a_three_deep_tree_runs(void **state)
{
    (void)state;
    mpb_server *server =
        start_from("servlet:\n"
                   "  kind: sequential\n"
                   "  name: pipeline\n"
                   "  members:\n"
                   "    - plugin: \"{TAG}\"\n"
                   "      name: pre\n"
                   "      kind: thread\n"
                   "      options: {tag: pre}\n"
                   "    - kind: ensemble\n"
                   "      name: models\n"
                   "      errors: in_place\n"
                   "      members:\n"
                   "        - {plugin: \"{TAG}\", name: a, options: {tag: a}}\n"
                   "        - kind: sequential\n"
                   "          name: chain\n"
                   "          members:\n"
                   "            - {plugin: \"{TAG}\", name: b1, kind: thread, options: {tag: b1}}\n"
                   "            - {plugin: \"{TAG}\", name: b2, workers: 2, options: {tag: b2}}\n"
                   "server:\n"
                   "  capacity: 64\n");
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "x", 1, 5000, &r), 0);
    assert_true(mpb_result_is_array(r));
    assert_value(mpb_result_member(r, 0), "x|pre|a");
    assert_value(mpb_result_member(r, 1), "x|pre|b1|b2");
    mpb_result_destroy(&r);
    assert_int_equal(mpb_server_call(server, "y!b1", 4, 5000, &r), 0);
    assert_value(mpb_result_member(r, 0), "y!b1|pre|a");
    assert_error(mpb_result_member(r, 1), "ValueError", "pipeline/models/chain/b1");
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
a_switch_routes_by_field_from_yaml(void **state)
{
    (void)state;
    mpb_server *server = start_from("servlet:\n"
                                    "  kind: switch\n"
                                    "  route_by: lang\n"
                                    "  routes: {en: english, de: german}\n"
                                    "  default: english\n"
                                    "  members:\n"
                                    "    - {plugin: \"{TAG}\", name: english, kind: thread,\n"
                                    "       options: {tag: en}}\n"
                                    "    - {plugin: \"{TAG}\", name: german, kind: thread,\n"
                                    "       options: {tag: de}}\n");
    /* {"lang": "de"} */
    const char item[] = "\x81\xa4lang\xa2"
                        "de";
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, item, sizeof item - 1, 5000, &r), 0);
    size_t len;
    const char *value = mpb_result_value(r, &len);
    assert_int_equal(len, sizeof item - 1 + 3);
    assert_memory_equal(value + sizeof item - 1, "|de", 3);
    mpb_result_destroy(&r);
    assert_int_equal(mpb_server_call(server, "plain", 5, 5000, &r), 0);
    assert_value(r, "plain|en");
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
settings_have_dotted_paths(void **state)
{
    (void)state;
    mpb_config *config = parse_ok("servlet:\n"
                                  "  kind: ensemble\n"
                                  "  members:\n"
                                  "    - {plugin: mlp, batch_size: 8}\n"
                                  "    - {plugin: sleep, options: {batch_cost_us: 5}}\n");
    assert_string_equal(mpb_config_get(config, "servlet.kind"), "ensemble");
    assert_string_equal(mpb_config_get(config, "servlet.members.0.batch_size"), "8");
    assert_string_equal(mpb_config_get(config, "servlet.members.1.options.batch_cost_us"), "5");
    mpb_config_destroy(&config);
    /* batch_wait_us: auto */
    config = parse_ok("servlet: {plugin: passthrough, batch_wait_us: auto}\n");
    assert_string_equal(mpb_config_get(config, "servlet.batch_wait_us"), "auto");
    mpb_config_destroy(&config);
    assert_config_error("servlet: {plugin: passthrough, batch_wait_us: soon}\n",
                        "servlet.batch_wait_us must be an integer >= 0 or auto (got 'soon')");
    config = parse_ok("servlet:\n"
                      "  kind: ensemble\n"
                      "  members:\n"
                      "    - {plugin: mlp, batch_size: 8}\n"
                      "    - {plugin: sleep, options: {batch_cost_us: 5}}\n");
    mpb_servlet *root = mpb_config_servlet(config);
    assert_string_equal(mpb_servlet_name(root), "ensemble");
    mpb_servlet_destroy(&root);
    mpb_config_destroy(&config);
}

/* An override replaces the settings of every pool of the tree (what a
 * benchmark sweeps), and only those it sets. */
static void
an_override_applies_to_every_pool(void **state)
{
    (void)state;
    mpb_config *config = parse_ok("servlet:\n  kind: sequential\n  members:\n"
                                  "    - {name: a, plugin: passthrough, batch_size: 4}\n"
                                  "    - {name: b, plugin: passthrough, kind: thread, "
                                  "batch_wait_us: 7}\n");
    mpb_pool_override o;
    mpb_pool_override_init(&o);
    o.workers = 2;
    o.batch_size = 16;
    mpb_servlet *root = mpb_config_servlet_with(config, &o);
    mpb_config_destroy(&config);
    mpb_server *server = test_server_over(&root, NULL);
    mpb_worker_status w[8];
    size_t n = mpb_server_workers(server, w, 8);
    assert_int_equal(n, 4);
    int b_workers = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(w[i].batch_size, 16);
        size_t len = strlen(w[i].servlet);
        if (len >= 2 && strcmp(w[i].servlet + len - 2, "/b") == 0) {
            assert_int_equal(w[i].batch_wait_us, 7); /* kept */
            b_workers++;
        }
    }
    assert_int_equal(b_workers, 2);
    mpb_result *r = NULL;
    assert_int_equal(mpb_server_call(server, "x", 1, 5000, &r), 0);
    mpb_result_destroy(&r);
    mpb_server_destroy(&server);
}

static void
bad_trees_point_at_the_node(void **state)
{
    (void)state;
    assert_config_error("servlet:\n  members:\n    - plugin: mlp\n",
                        "t.yaml:2:3: servlet.kind is required with members");
    assert_config_error("servlet:\n  kind: sequential\n  plugin: mlp\n  members: [{plugin: mlp}]\n",
                        "t.yaml:3:3: servlet.plugin is not a field of a sequential servlet");
    assert_config_error("servlet:\n  kind: sequential\n  members:\n    - plugin: mlp\n"
                        "      batchsize: 4\n",
                        "t.yaml:5:7: unknown field servlet.members.0.batchsize (did you mean "
                        "batch_size?)");
    assert_config_error("servlet:\n  kind: ensemble\n  members: []\n",
                        "t.yaml:3:12: servlet.members must be a non-empty list");
    assert_config_error("servlet:\n  kind: ensemble\n", "t.yaml:2:3: servlet.members is required");
    assert_config_error("servlet:\n  kind: ensemble\n  errors: loud\n  members: [{plugin: a}]\n",
                        "t.yaml:3:11: servlet.errors must be fail_fast or in_place");
    assert_config_error("servlet:\n  kind: ensemble\n  members:\n    - plugin: mlp\n"
                        "    - plugin: mlp\n",
                        "t.yaml:5:7: servlet.members.0 and servlet.members.1 are both named "
                        "'mlp': give each a name:");
    assert_config_error("servlet:\n  kind: switch\n  members: [{plugin: a}]\n",
                        "servlet needs route_by: (with routes:) or router:");
    assert_config_error("servlet:\n  kind: switch\n  route_by: k\n  router: r\n"
                        "  members: [{plugin: a}]\n",
                        "t.yaml:2:3: servlet takes route_by: or router:, not both");
    /* tracking keeps "server/..." for the end-to-end figures */
    assert_config_error("servlet:\n  name: server\n  plugin: mlp\n",
                        "t.yaml:2:9: servlet.name cannot be 'server'");
    /* the other way of routing's fields would be ignored */
    assert_config_error("servlet:\n  kind: switch\n  router: r\n  routes: {x: a}\n"
                        "  members: [{plugin: a}]\n",
                        "t.yaml:4:11: servlet.routes goes with route_by:, not router:");
    assert_config_error("servlet:\n  kind: switch\n  route_by: k\n  router_options: {t: 1}\n"
                        "  members: [{plugin: a}]\n",
                        "t.yaml:4:19: servlet.router_options goes with router:, not route_by:");
    assert_config_error("servlet:\n  kind: switch\n  route_by: k\n  routes: {x: b}\n"
                        "  members: [{plugin: a}]\n",
                        "t.yaml:4:15: servlet.routes names no member 'b' (members: a)");
    assert_config_error("servlet:\n  kind: switch\n  route_by: k\n  default: zz\n"
                        "  members: [{plugin: a}]\n",
                        "t.yaml:4:12: servlet.default names no member 'zz'");
    assert_config_error("servlet:\n  kind: sequential\n  members:\n    - kind: thread\n",
                        "t.yaml:4:7: servlet.members.0.plugin is required");
    assert_config_error("servlet:\n  kind: sequential\n  members:\n    - {plugin: a, name: x/y}\n",
                        "servlet.members.0.name must be a non-empty name without '/'");
    assert_config_error("servlet:\n  kind: sequential\n  members: [just-a-name]\n",
                        "t.yaml:3:13: servlet.members.0 must be a mapping");
    /* plugin options are checked against what the plugin declares */
    assert_config_error("servlet:\n  plugin: sleep\n  options:\n    per_batch_us: 100\n",
                        "t.yaml:4:5: servlet.options.per_batch_us: unknown option per_batch_us "
                        "of plugin sleep (known: batch_cost_us");
    assert_config_error("servlet:\n  kind: sequential\n  members:\n    - plugin: sleep\n"
                        "      options: {batch_cost: 1}\n",
                        "t.yaml:5:17: servlet.members.0.options.batch_cost: unknown option "
                        "batch_cost of plugin sleep (did you mean batch_cost_us?)");
    assert_config_error("servlet:\n  plugin: sleep\n  options: {busy: maybe}\n",
                        "t.yaml:3:19: servlet.options.busy: option busy of plugin sleep must be");
    /* a tree deeper than the limit */
    char deep[4096] = "servlet: ";
    for (int i = 0; i < 20; i++) {
        strcat(deep, "{kind: sequential, members: [");
    }
    strcat(deep, "{plugin: a}");
    for (int i = 0; i < 20; i++) {
        strcat(deep, "]}");
    }
    strcat(deep, "\n");
    assert_config_error(deep, "nest at most 16 deep");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_switch_with_a_router_plugin),
        cmocka_unit_test(a_three_deep_tree_runs),
        cmocka_unit_test(a_switch_routes_by_field_from_yaml),
        cmocka_unit_test(settings_have_dotted_paths),
        cmocka_unit_test(an_override_applies_to_every_pool),
        cmocka_unit_test(bad_trees_point_at_the_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
