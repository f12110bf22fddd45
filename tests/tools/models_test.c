/*
 * Models served from a tracking store, end to end with the real tools:
 * `mpb runs create` and `mpb runs log-artifact` put an mlp's weights into
 * a run of an SQLite store; `mpb run` with `weights: runs:/<run>/...`
 * serves exactly what the same file served from disk, records the URI and
 * the file's SHA-256 on its tracking run, and a URI naming no artifact or
 * no run stops it before any worker starts. `mpb models register` and
 * `mpb models alias` put the same weights into the registry (SQLite and
 * file stores) as model "mlp" version 1, alias "champion"; `mpb run` with
 * `weights: models:/mlp@champion` serves the same outputs and records the
 * URI, the version and the digest.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "tool_helpers.h"

#include "mpbatch/store.h"

typedef struct sandbox {
    char dir[64];
    char *mpb;
    const char *tracking_uri; /* relative to dir; NULL: sqlite:///models.db */
} sandbox;

static int
run_in(const sandbox *s, const char *command)
{
    char *cmd = mpb_asprintf("cd %s && export MLFLOW_TRACKING_URI=%s "
                             "MPB_MODEL_CACHE=%s/cache && %s",
                             s->dir, s->tracking_uri ? s->tracking_uri : "sqlite:///models.db",
                             s->dir, command);
    int rc = shell_status(cmd);
    free(cmd);
    return rc;
}

static char *
read_in(const sandbox *s, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    return slurp(path);
}

static void
write_in(const sandbox *s, const char *name, const void *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* mlp 4 -> 3 -> 2: W1, b1, W2, b2 as float32. */
static void
write_weights(const sandbox *s)
{
    float w[4 * 3 + 3 + 3 * 2 + 2];
    for (size_t i = 0; i < MPB_ARRAY_LEN(w); i++) {
        w[i] = (float)((int)(i * 7 % 11) - 5) / 4.0f;
    }
    write_in(s, "weights.bin", w, sizeof w);
}

static void
write_config(const sandbox *s, const char *name, const char *weights, int tracked)
{
    char *text = mpb_asprintf("servlet: {plugin: mlp, workers: 1, batch_size: 4,\n"
                              "  options: {input_dim: 4, hidden_dim: 3, output_dim: 2,\n"
                              "            weights: '%s'}}\n"
                              "io: {format: f32}\n%s",
                              weights, tracked ? "tracking: {experiment: serving}\n" : "");
    write_in(s, name, text, strlen(text));
    free(text);
}

/* The one run of experiment "serving" tags its weights option with expect. */
static void
assert_serving_tag(mpb_store *store, const char *expect)
{
    char err[256];
    mpb_experiment *experiment = NULL;
    assert_int_equal(
        mpb_store_get_experiment_by_name(store, "serving", &experiment, err, sizeof err), 0);
    const char *ids[] = {experiment->experiment_id};
    mpb_search_opts opts = {0};
    mpb_run_page *page = NULL;
    assert_int_equal(mpb_store_search_runs(store, ids, 1, &opts, &page, err, sizeof err), 0);
    assert_int_equal(page->n_runs, 1);
    const char *tag = NULL;
    for (size_t i = 0; i < page->runs[0].n_tags; i++) {
        if (strcmp(page->runs[0].tags[i].key, "mpb.model.options.weights") == 0) {
            tag = page->runs[0].tags[i].value;
        }
    }
    assert_non_null(tag);
    assert_string_equal(tag, expect);
    mpb_run_page_free(&page);
    mpb_experiment_free(&experiment);
}

/* A fresh folder for s, with the weights file and three input lines. */
static void
sandbox_open(sandbox *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/mpb-models-test-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    s->mpb = tool_path("mpb");
    write_weights(s);
    write_in(s, "in.txt", "[1,2,3,4]\n[0,0,0,1]\n[-1,0.5,2,0]\n", 33);
}

static void
sandbox_close(sandbox *s)
{
    char *cmd = mpb_asprintf("rm -rf %s", s->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(s->mpb);
}

static void
a_runs_uri_serves_the_logged_weights(void **state)
{
    (void)state;
    sandbox s = {0};
    sandbox_open(&s);

    char *cmd = mpb_asprintf("%s runs create --name mlp-weights > run.txt", s.mpb);
    assert_int_equal(run_in(&s, cmd), 0);
    free(cmd);
    char *run_id = read_in(&s, "run.txt");
    run_id[strcspn(run_id, "\n")] = '\0';
    assert_int_equal(strlen(run_id), 32);
    cmd = mpb_asprintf("%s runs log-artifact %s weights.bin models > uri.txt", s.mpb, run_id);
    assert_int_equal(run_in(&s, cmd), 0);
    free(cmd);
    char *uri = read_in(&s, "uri.txt");
    uri[strcspn(uri, "\n")] = '\0';
    char *expect_uri = mpb_asprintf("runs:/%s/models/weights.bin", run_id);
    assert_string_equal(uri, expect_uri);

    char local[128];
    snprintf(local, sizeof local, "%s/weights.bin", s.dir);
    write_config(&s, "local.yaml", local, 0);
    write_config(&s, "served.yaml", uri, 1);
    cmd = mpb_asprintf("%s run --config local.yaml < in.txt > local.out 2>/dev/null && "
                       "%s run --config served.yaml < in.txt > served.out 2>served.err",
                       s.mpb, s.mpb);
    assert_int_equal(run_in(&s, cmd), 0);
    free(cmd);
    char *from_disk = read_in(&s, "local.out");
    char *from_store = read_in(&s, "served.out");
    assert_string_equal(from_store, from_disk);
    assert_true(strlen(from_disk) > 20);
    char *said = read_in(&s, "served.err");
    assert_non_null(strstr(said, uri));

    /* the serving run says what it served: the URI and the file's digest */
    char sha[65];
    char err[256];
    assert_int_equal(mpb_model_sha256(local, sha, err, sizeof err), 0);
    cmd = mpb_asprintf("sha256sum weights.bin > sum.txt");
    assert_int_equal(run_in(&s, cmd), 0);
    free(cmd);
    char *sum = read_in(&s, "sum.txt");
    assert_int_equal(strncmp(sum, sha, 64), 0);
    char *db = mpb_asprintf("sqlite:///%s/models.db", s.dir);
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open(db, &store, err, sizeof err), 0);
    char *tag = mpb_asprintf("%s sha256:%s", uri, sha);
    assert_serving_tag(store, tag);

    /* a URI may not reach out of the cache, however often it is asked */
    char cache[128];
    snprintf(cache, sizeof cache, "%s/cache", s.dir);
    char *local_path = NULL;
    char *escape = mpb_asprintf("runs:/%s/../../../../../../../../etc/hostname", run_id);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            mpb_store_resolve_runs_uri(store, escape, cache, &local_path, sha, err, sizeof err),
            MPB_EINVAL);
        assert_null(local_path);
    }
    /* a folder asked for after one of its files is fetched whole */
    cmd = mpb_asprintf("mkdir pack && printf A > pack/a.bin && printf B > pack/b.json && "
                       "%s runs log-artifact %s pack pack > /dev/null",
                       s.mpb, run_id);
    assert_int_equal(run_in(&s, cmd), 0);
    free(cmd);
    const char *parts[] = {"pack/a.bin", "pack"};
    for (int i = 0; i < 2; i++) {
        char *part_uri = mpb_asprintf("runs:/%s/%s", run_id, parts[i]);
        assert_int_equal(
            mpb_store_resolve_runs_uri(store, part_uri, cache, &local_path, sha, err, sizeof err),
            0);
        free(part_uri);
        if (i == 1) {
            char *b = mpb_asprintf("%s/b.json", local_path);
            struct stat st;
            assert_int_equal(stat(b, &st), 0);
            free(b);
        }
        free(local_path);
        local_path = NULL;
    }
    free(escape);
    mpb_store_destroy(&store);

    /* a URI naming nothing stops mpb run before a worker starts */
    char *missing = mpb_asprintf("runs:/%s/models/nope.bin", run_id);
    write_config(&s, "missing.yaml", missing, 0);
    write_config(&s, "norun.yaml", "runs:/0123456789abcdef0123456789abcdef/w.bin", 0);
    cmd = mpb_asprintf("%s run --config missing.yaml < in.txt 2> missing.err", s.mpb);
    assert_int_equal(run_in(&s, cmd), 2);
    free(cmd);
    char *missing_err = read_in(&s, "missing.err");
    assert_non_null(strstr(missing_err, "nope.bin"));
    cmd = mpb_asprintf("%s run --config norun.yaml < in.txt 2>/dev/null", s.mpb);
    assert_int_equal(run_in(&s, cmd), 2);
    free(cmd);

    free(missing_err);
    free(missing);
    free(tag);
    free(db);
    free(sum);
    free(said);
    free(from_store);
    free(from_disk);
    free(expect_uri);
    free(uri);
    free(run_id);
    sandbox_close(&s);
}

/* Runs a command in the sandbox and returns its stdout, trailing newline cut. */
static char *
output_of(const sandbox *s, const char *command)
{
    char *cmd = mpb_asprintf("%s > out.txt", command);
    assert_int_equal(run_in(s, cmd), 0);
    free(cmd);
    char *text = read_in(s, "out.txt");
    text[strcspn(text, "\n")] = '\0';
    return text;
}

static void
registered_weights_serve_by_alias(const char *tracking_uri, const char *store_uri_fmt)
{
    sandbox s = {.tracking_uri = tracking_uri};
    sandbox_open(&s);

    char *cmd = mpb_asprintf("%s runs create --name mlp-weights", s.mpb);
    char *run_id = output_of(&s, cmd);
    free(cmd);
    cmd = mpb_asprintf("%s runs log-artifact %s weights.bin models", s.mpb, run_id);
    char *uri = output_of(&s, cmd);
    free(cmd);
    cmd = mpb_asprintf("%s models register mlp %s", s.mpb, uri);
    char *version = output_of(&s, cmd);
    free(cmd);
    assert_string_equal(version, "1");
    cmd = mpb_asprintf("%s models alias mlp champion 1", s.mpb);
    assert_int_equal(run_in(&s, cmd), 0);
    free(cmd);
    cmd = mpb_asprintf("%s models --json show mlp > shown.json", s.mpb);
    assert_int_equal(run_in(&s, cmd), 0);
    free(cmd);
    char *shown = read_in(&s, "shown.json");
    assert_non_null(strstr(shown, "\"champion\""));
    assert_non_null(strstr(shown, uri));

    char local[128];
    snprintf(local, sizeof local, "%s/weights.bin", s.dir);
    write_config(&s, "local.yaml", local, 0);
    write_config(&s, "served.yaml", "models:/mlp@champion", 1);
    cmd = mpb_asprintf("%s run --config local.yaml < in.txt > local.out 2>/dev/null && "
                       "%s run --config served.yaml < in.txt > served.out 2>served.err",
                       s.mpb, s.mpb);
    assert_int_equal(run_in(&s, cmd), 0);
    free(cmd);
    char *from_disk = read_in(&s, "local.out");
    char *from_registry = read_in(&s, "served.out");
    assert_true(strlen(from_disk) > 20);
    assert_string_equal(from_registry, from_disk);
    char *said = read_in(&s, "served.err");
    assert_non_null(strstr(said, "models:/mlp@champion (version 1)"));

    /* the serving run names the registry URI, the version and the digest */
    char sha[65];
    char err[256];
    assert_int_equal(mpb_model_sha256(local, sha, err, sizeof err), 0);
    char *store_uri = mpb_asprintf(store_uri_fmt, s.dir);
    mpb_store *store = NULL;
    assert_int_equal(mpb_store_open(store_uri, &store, err, sizeof err), 0);
    char *expect = mpb_asprintf("models:/mlp@champion version:1 sha256:%s", sha);
    assert_serving_tag(store, expect);
    mpb_store_destroy(&store);

    /* an alias nobody set stops mpb run before a worker starts */
    write_config(&s, "unset.yaml", "models:/mlp@nobody", 0);
    cmd = mpb_asprintf("%s run --config unset.yaml < in.txt 2> unset.err", s.mpb);
    assert_int_equal(run_in(&s, cmd), 2);
    free(cmd);
    char *unset_err = read_in(&s, "unset.err");
    assert_non_null(strstr(unset_err, "nobody"));

    free(unset_err);
    free(expect);
    free(store_uri);
    free(said);
    free(from_registry);
    free(from_disk);
    free(shown);
    free(version);
    free(uri);
    free(run_id);
    sandbox_close(&s);
}

static void
a_models_uri_serves_registered_weights_sqlite(void **state)
{
    (void)state;
    registered_weights_serve_by_alias("sqlite:///models.db", "sqlite:///%s/models.db");
}

static void
a_models_uri_serves_registered_weights_file(void **state)
{
    (void)state;
    registered_weights_serve_by_alias("file:mlruns", "file:%s/mlruns");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_runs_uri_serves_the_logged_weights),
        cmocka_unit_test(a_models_uri_serves_registered_weights_sqlite),
        cmocka_unit_test(a_models_uri_serves_registered_weights_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
