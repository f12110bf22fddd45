/*
 * The store contract, part 3: the model registry (registered models,
 * numbered versions, aliases) and models:/ URIs resolved through it, run
 * unchanged on every backend of store_contract.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store_contract.h"

static mpb_model_version *
new_version(contract *c, const char *name, const char *source, const char *run_id)
{
    mpb_model_version *version = NULL;
    if (mpb_store_create_model_version(c->store, name, source, run_id, &version, c->err,
                                       sizeof c->err) != 0) {
        fail_msg("[%s] create_model_version %s: %s", backend->name, name, c->err);
    }
    return version;
}

static void
registered_models_are_unique_listed_and_named_safely(void **state)
{
    contract *c = *state;
    mpb_tag tags[] = {{"team", "vision"}};
    assert_int_equal(mpb_store_create_registered_model(c->store, "mlp", "a small net", tags, 1,
                                                       c->err, sizeof c->err),
                     0);
    assert_int_equal(
        mpb_store_create_registered_model(c->store, "mlp", NULL, NULL, 0, c->err, sizeof c->err),
        MPB_EEXIST);
    assert_err(c, "already exists");
    assert_int_equal(mpb_store_create_registered_model(c->store, "a model", NULL, NULL, 0, c->err,
                                                       sizeof c->err),
                     0);

    mpb_registered_model *model = NULL;
    assert_int_equal(mpb_store_get_registered_model(c->store, "mlp", &model, c->err, sizeof c->err),
                     0);
    assert_string_equal(model->name, "mlp");
    assert_string_equal(model->description, "a small net");
    assert_true(model->creation_time > 0);
    assert_true(model->last_updated_time >= model->creation_time);
    assert_int_equal(model->n_tags, 1);
    assert_string_equal(model->tags[0].key, "team");
    assert_string_equal(model->tags[0].value, "vision");
    assert_int_equal(model->n_aliases, 0);
    mpb_registered_model_free(&model);

    mpb_registered_model_list *list = NULL;
    assert_int_equal(mpb_store_list_registered_models(c->store, &list, c->err, sizeof c->err), 0);
    assert_int_equal(list->n_models, 2);
    assert_string_equal(list->models[0].name, "a model");
    assert_string_equal(list->models[1].name, "mlp");
    mpb_registered_model_list_free(&list);

    assert_int_equal(
        mpb_store_get_registered_model(c->store, "nope", &model, c->err, sizeof c->err),
        MPB_ENOTFOUND);
    assert_null(model);
    const char *bad[] = {"", "a/b", "50%", "..", "a\\b"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        assert_int_equal(mpb_store_create_registered_model(c->store, bad[i], NULL, NULL, 0, c->err,
                                                           sizeof c->err),
                         MPB_EINVAL);
    }
}

static void
versions_are_numbered_per_model_and_keep_their_source(void **state)
{
    contract *c = *state;
    char *run_id = th_run(c->store, c->exp_id, "trainer");
    char *source = th_pathf("runs:/%s/models/weights.bin", run_id);
    assert_int_equal(
        mpb_store_create_model_version(c->store, "mlp", source, NULL, NULL, c->err, sizeof c->err),
        MPB_ENOTFOUND);
    assert_int_equal(
        mpb_store_create_registered_model(c->store, "mlp", NULL, NULL, 0, c->err, sizeof c->err),
        0);
    assert_int_equal(
        mpb_store_create_registered_model(c->store, "other", NULL, NULL, 0, c->err, sizeof c->err),
        0);
    mpb_model_version *v1 = new_version(c, "mlp", source, NULL);
    assert_int_equal(v1->version, 1);
    assert_string_equal(v1->name, "mlp");
    assert_string_equal(v1->source, source);
    assert_string_equal(v1->run_id, run_id); /* taken from the runs:/ URI */
    assert_string_equal(v1->status, "READY");
    assert_true(v1->creation_time > 0);
    mpb_model_version *v2 = new_version(c, "mlp", "/srv/models/w2.bin", run_id);
    assert_int_equal(v2->version, 2);
    mpb_model_version *o1 = new_version(c, "other", "/srv/models/o.bin", NULL);
    assert_int_equal(o1->version, 1);
    assert_string_equal(o1->run_id, "");

    mpb_model_version *got = NULL;
    assert_int_equal(mpb_store_get_model_version(c->store, "mlp", 2, &got, c->err, sizeof c->err),
                     0);
    assert_string_equal(got->source, "/srv/models/w2.bin");
    assert_string_equal(got->run_id, run_id);
    mpb_model_version_free(&got);
    assert_int_equal(mpb_store_get_model_version(c->store, "mlp", 3, &got, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_get_model_version(c->store, "nope", 1, &got, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_get_model_version(c->store, "mlp", 0, &got, c->err, sizeof c->err),
                     MPB_EINVAL);

    mpb_model_version_list *list = NULL;
    assert_int_equal(mpb_store_list_model_versions(c->store, "mlp", &list, c->err, sizeof c->err),
                     0);
    assert_int_equal(list->n_versions, 2);
    assert_int_equal(list->versions[0].version, 1);
    assert_int_equal(list->versions[1].version, 2);
    mpb_model_version_list_free(&list);
    assert_int_equal(mpb_store_list_model_versions(c->store, "nope", &list, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_int_equal(
        mpb_store_create_model_version(c->store, "mlp", "", NULL, NULL, c->err, sizeof c->err),
        MPB_EINVAL);

    mpb_model_version_free(&o1);
    mpb_model_version_free(&v2);
    mpb_model_version_free(&v1);
    free(source);
    free(run_id);
}

/* A registered model `name` with versions 1 (/srv/w1.bin) and 2 (/srv/w2.bin). */
static void
model_with_two_versions(contract *c, const char *name)
{
    assert_int_equal(
        mpb_store_create_registered_model(c->store, name, NULL, NULL, 0, c->err, sizeof c->err),
        0);
    mpb_model_version *v = new_version(c, name, "/srv/w1.bin", NULL);
    mpb_model_version_free(&v);
    v = new_version(c, name, "/srv/w2.bin", NULL);
    mpb_model_version_free(&v);
}

static void
aliases_point_at_versions_move_and_go(void **state)
{
    contract *c = *state;
    model_with_two_versions(c, "mlp");

    assert_int_equal(
        mpb_store_set_model_alias(c->store, "mlp", "champion", 1, c->err, sizeof c->err), 0);
    assert_int_equal(
        mpb_store_set_model_alias(c->store, "mlp", "challenger", 2, c->err, sizeof c->err), 0);
    mpb_model_version *found = NULL;
    assert_int_equal(mpb_store_get_model_version_by_alias(c->store, "mlp", "champion", &found,
                                                          c->err, sizeof c->err),
                     0);
    assert_int_equal(found->version, 1);
    assert_string_equal(found->source, "/srv/w1.bin");
    assert_int_equal(found->n_aliases, 1);
    assert_string_equal(found->aliases[0], "champion");
    mpb_model_version_free(&found);

    /* moving an alias */
    assert_int_equal(
        mpb_store_set_model_alias(c->store, "mlp", "champion", 2, c->err, sizeof c->err), 0);
    assert_int_equal(mpb_store_get_model_version_by_alias(c->store, "mlp", "champion", &found,
                                                          c->err, sizeof c->err),
                     0);
    assert_int_equal(found->version, 2);
    assert_int_equal(found->n_aliases, 2);
    assert_string_equal(found->aliases[0], "challenger");
    assert_string_equal(found->aliases[1], "champion");
    mpb_model_version_free(&found);
    mpb_registered_model *model = NULL;
    assert_int_equal(mpb_store_get_registered_model(c->store, "mlp", &model, c->err, sizeof c->err),
                     0);
    assert_int_equal(model->n_aliases, 2);
    assert_string_equal(model->aliases[0].alias, "challenger");
    assert_int_equal(model->aliases[0].version, 2);
    assert_string_equal(model->aliases[1].alias, "champion");
    assert_int_equal(model->aliases[1].version, 2);
    mpb_registered_model_free(&model);

    /* only to versions that exist, only with names that cannot mean a version */
    assert_int_equal(
        mpb_store_set_model_alias(c->store, "mlp", "champion", 9, c->err, sizeof c->err),
        MPB_ENOTFOUND);
    assert_int_equal(
        mpb_store_set_model_alias(c->store, "nope", "champion", 1, c->err, sizeof c->err),
        MPB_ENOTFOUND);
    const char *bad[] = {"latest", "v2", "a b", ""};
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        assert_int_equal(
            mpb_store_set_model_alias(c->store, "mlp", bad[i], 1, c->err, sizeof c->err),
            MPB_EINVAL);
    }

    assert_int_equal(
        mpb_store_delete_model_alias(c->store, "mlp", "champion", c->err, sizeof c->err), 0);
    assert_int_equal(mpb_store_get_model_version_by_alias(c->store, "mlp", "champion", &found,
                                                          c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_null(found);
    assert_int_equal(
        mpb_store_delete_model_alias(c->store, "mlp", "champion", c->err, sizeof c->err),
        MPB_ENOTFOUND);
    assert_int_equal(mpb_store_get_model_version_by_alias(c->store, "mlp", "challenger", &found,
                                                          c->err, sizeof c->err),
                     0);
    assert_int_equal(found->version, 2);
    mpb_model_version_free(&found);
}

static void
deleting_a_model_frees_its_name(void **state)
{
    contract *c = *state;
    model_with_two_versions(c, "mlp");
    assert_int_equal(
        mpb_store_set_model_alias(c->store, "mlp", "champion", 2, c->err, sizeof c->err), 0);
    assert_int_equal(mpb_store_delete_registered_model(c->store, "mlp", c->err, sizeof c->err), 0);
    mpb_registered_model *model = NULL;
    assert_int_equal(mpb_store_get_registered_model(c->store, "mlp", &model, c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    assert_int_equal(mpb_store_delete_registered_model(c->store, "mlp", c->err, sizeof c->err),
                     MPB_ENOTFOUND);
    mpb_registered_model_list *list = NULL;
    assert_int_equal(mpb_store_list_registered_models(c->store, &list, c->err, sizeof c->err), 0);
    assert_int_equal(list->n_models, 0);
    mpb_registered_model_list_free(&list);

    /* the name is free again, and numbering starts over */
    assert_int_equal(
        mpb_store_create_registered_model(c->store, "mlp", NULL, NULL, 0, c->err, sizeof c->err),
        0);
    mpb_model_version *v = new_version(c, "mlp", "/srv/w3.bin", NULL);
    assert_int_equal(v->version, 1);
    assert_int_equal(v->n_aliases, 0);
    mpb_model_version_free(&v);
}

static void
models_uris_resolve_to_the_registered_files(void **state)
{
    contract *c = *state;
    char *weights = th_pathf("%s/weights.bin", c->dir);
    write_file(weights, "0123456789abcdef");
    char *run_id = th_run(c->store, c->exp_id, "trainer");
    assert_int_equal(
        mpb_store_log_artifact(c->store, run_id, weights, "models", c->err, sizeof c->err), 0);
    char *runs_uri = th_pathf("runs:/%s/models/weights.bin", run_id);
    char *cache = th_pathf("%s/cache", c->dir);
    char *from_run = NULL;
    char run_sha[65];
    assert_int_equal(mpb_store_resolve_runs_uri(c->store, runs_uri, cache, &from_run, run_sha,
                                                c->err, sizeof c->err),
                     0);

    assert_int_equal(
        mpb_store_create_registered_model(c->store, "mlp", NULL, NULL, 0, c->err, sizeof c->err),
        0);
    mpb_model_version *v = new_version(c, "mlp", runs_uri, NULL);
    mpb_model_version_free(&v);
    v = new_version(c, "mlp", weights, NULL); /* a local path */
    mpb_model_version_free(&v);
    assert_int_equal(
        mpb_store_set_model_alias(c->store, "mlp", "champion", 1, c->err, sizeof c->err), 0);

    const struct {
        const char *uri;
        int64_t version;
    } cases[] = {
        {"models:/mlp@champion", 1}, {"models:/mlp/1", 1}, {"models:/mlp/2", 2},
        {"models:/mlp/latest", 2},   {"runs:/", 0}, /* placeholder: the runs:/ URI itself, below */
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(cases); i++) {
        const char *uri = cases[i].version > 0 ? cases[i].uri : runs_uri;
        char *path = NULL;
        char sha[65];
        int64_t version = -1;
        if (mpb_store_resolve_model_uri(c->store, uri, cache, &path, sha, &version, c->err,
                                        sizeof c->err) != 0) {
            fail_msg("[%s] resolve %s: %s", backend->name, uri, c->err);
        }
        assert_int_equal(version, cases[i].version);
        assert_string_equal(sha, run_sha);
        char *text = th_read(path);
        assert_string_equal(text, "0123456789abcdef");
        assert_int_equal(strncmp(path, cache, strlen(cache)), 0); /* a copy in the cache */
        free(text);
        free(path);
    }

    const struct {
        const char *uri;
        int status;
    } bad[] = {
        {"models:/mlp@nope", MPB_ENOTFOUND}, {"models:/mlp/7", MPB_ENOTFOUND},
        {"models:/nope/1", MPB_ENOTFOUND},   {"models:/mlp/Production", MPB_EINVAL},
        {"models:/mlp", MPB_EINVAL},
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        char *path = NULL;
        char sha[65];
        assert_int_equal(mpb_store_resolve_model_uri(c->store, bad[i].uri, cache, &path, sha, NULL,
                                                     c->err, sizeof c->err),
                         bad[i].status);
        assert_null(path);
    }
    free(from_run);
    free(cache);
    free(runs_uri);
    free(run_id);
    free(weights);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        CONTRACT_TEST(registered_models_are_unique_listed_and_named_safely),
        CONTRACT_TEST(versions_are_numbered_per_model_and_keep_their_source),
        CONTRACT_TEST(aliases_point_at_versions_move_and_go),
        CONTRACT_TEST(deleting_a_model_frees_its_name),
        CONTRACT_TEST(models_uris_resolve_to_the_registered_files),
    };
    int failed = 0;
    for (size_t i = 0; i < MPB_ARRAY_LEN(backends); i++) {
        backend = &backends[i];
        failed += cmocka_run_group_tests_name(backend->name, tests, NULL, NULL);
    }
    return failed;
}
