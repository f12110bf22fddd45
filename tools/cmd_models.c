/*
 * `mpb models`: the model registry of a tracking store from the shell
 * (MLflow's registered models, numbered versions and aliases): register a
 * model's files as a new version, list models, show one, move aliases.
 * Tables for people, --json for scripts (MLflow's REST shapes: versions as
 * strings of digits). Every subcommand goes through the public store API.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tools/commands.h"
#include "tools/runs_int.h"
#include "tools/table.h"
#include "tracking/text.h"

static const char general_usage[] =
    "usage: mpb models [--tracking-uri URI] [--json] <command> [options]\n"
    "\n"
    "The model registry of a tracking store (MLflow's registered models).\n"
    "\n"
    "commands:\n"
    "  register NAME SOURCE_URI [--run-id ID]  add a version (creating the model\n"
    "                       if needed); SOURCE_URI is runs:/<run_id>/<path>, a path\n"
    "                       or a file: URI; prints the new version number\n"
    "  list                 list registered models\n"
    "  show NAME            one model: its versions and aliases\n"
    "  alias NAME ALIAS VERSION   point ALIAS at VERSION (models:/NAME@ALIAS)\n"
    "  alias NAME ALIAS --delete  remove ALIAS\n"
    "\n"
    "options (anywhere on the line):\n"
    "  --tracking-uri URI  tracking URI: sqlite:///PATH.db, file:PATH, http(s)://...\n"
    "                      or a path (--uri is the same; default as mpb runs)\n"
    "  --json              JSON output for scripts\n";

static int
fail(runs_cli *cli, int status)
{
    fprintf(stderr, "mpb models: %s\n", cli->err[0] ? cli->err : mpb_strerror(status));
    return 1;
}

static int
usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "mpb models: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", general_usage);
    return 2;
}

static cJSON *
json_version_number(int64_t version)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", (long long)version);
    return cJSON_CreateString(text);
}

static cJSON *
json_version(const mpb_model_version *version)
{
    cJSON *object = cJSON_CreateObject();
    cJSON_AddStringToObject(object, "name", version->name);
    cJSON_AddItemToObject(object, "version", json_version_number(version->version));
    cJSON_AddItemToObject(object, "creation_timestamp", mpb_runs_json_int(version->creation_time));
    cJSON_AddStringToObject(object, "source", version->source);
    cJSON_AddStringToObject(object, "run_id", version->run_id);
    cJSON_AddStringToObject(object, "status", version->status);
    cJSON *aliases = cJSON_AddArrayToObject(object, "aliases");
    for (size_t i = 0; i < version->n_aliases; i++) {
        cJSON_AddItemToArray(aliases, cJSON_CreateString(version->aliases[i]));
    }
    return object;
}

static cJSON *
json_model(const mpb_registered_model *model)
{
    cJSON *object = cJSON_CreateObject();
    cJSON_AddStringToObject(object, "name", model->name);
    cJSON_AddItemToObject(object, "creation_timestamp", mpb_runs_json_int(model->creation_time));
    cJSON_AddItemToObject(object, "last_updated_timestamp",
                          mpb_runs_json_int(model->last_updated_time));
    cJSON_AddStringToObject(object, "description", model->description);
    cJSON_AddItemToObject(object, "tags", mpb_runs_json_key_values(model->tags, model->n_tags));
    cJSON *aliases = cJSON_AddArrayToObject(object, "aliases");
    for (size_t i = 0; i < model->n_aliases; i++) {
        cJSON *alias = cJSON_CreateObject();
        cJSON_AddStringToObject(alias, "alias", model->aliases[i].alias);
        cJSON_AddItemToObject(alias, "version", json_version_number(model->aliases[i].version));
        cJSON_AddItemToArray(aliases, alias);
    }
    return object;
}

/* ---- register ---- */

static int
cmd_register(runs_cli *cli, int argc, char **argv)
{
    const char *positional[2] = {NULL, NULL};
    int n_positional = 0;
    const char *run_id = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--run-id") == 0 && i + 1 < argc) {
            run_id = argv[++i];
        } else if (strncmp(argv[i], "--run-id=", 9) == 0) {
            run_id = argv[i] + 9;
        } else if (argv[i][0] == '-' || n_positional == 2) {
            return usage_error("unexpected argument '%s'", argv[i]);
        } else {
            positional[n_positional++] = argv[i];
        }
    }
    if (n_positional != 2) {
        return usage_error("%sregister needs NAME and SOURCE_URI", "");
    }
    int rc = mpb_runs_open_store(cli);
    if (rc == 0) {
        rc = mpb_store_create_registered_model(cli->store, positional[0], NULL, NULL, 0, cli->err,
                                               sizeof cli->err);
        rc = rc == MPB_EEXIST ? 0 : rc;
    }
    mpb_model_version *version = NULL;
    if (rc == 0) {
        rc = mpb_store_create_model_version(cli->store, positional[0], positional[1], run_id,
                                            &version, cli->err, sizeof cli->err);
    }
    if (rc < 0) {
        return fail(cli, rc);
    }
    if (cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "model_version", json_version(version));
        mpb_runs_print_json(root);
    } else {
        printf("%lld\n", (long long)version->version);
    }
    mpb_model_version_free(&version);
    return 0;
}

/* ---- list ---- */

static int
cmd_list(runs_cli *cli, int argc, char **argv)
{
    if (argc > 1) {
        return usage_error("unexpected argument '%s'", argv[1]);
    }
    mpb_registered_model_list *list = NULL;
    int rc = mpb_runs_open_store(cli);
    if (rc == 0) {
        rc = mpb_store_list_registered_models(cli->store, &list, cli->err, sizeof cli->err);
    }
    if (rc < 0) {
        return fail(cli, rc);
    }
    if (cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *items = cJSON_AddArrayToObject(root, "registered_models");
        for (size_t i = 0; i < list->n_models; i++) {
            cJSON_AddItemToArray(items, json_model(&list->models[i]));
        }
        mpb_runs_print_json(root);
        mpb_registered_model_list_free(&list);
        return 0;
    }
    static const char *const headers[] = {"name", "updated", "aliases", "description"};
    mpb_table *table = mpb_table_new(4, headers);
    for (size_t i = 0; i < list->n_models; i++) {
        const mpb_registered_model *model = &list->models[i];
        char updated[32];
        mpb_runs_format_time(model->last_updated_time, updated);
        mpb__strbuf aliases = {0};
        for (size_t k = 0; k < model->n_aliases; k++) {
            mpb__strbuf_printf(&aliases, "%s%s=%lld", k > 0 ? " " : "", model->aliases[k].alias,
                               (long long)model->aliases[k].version);
        }
        char *alias_text = mpb__strbuf_take(&aliases);
        const char *cells[] = {model->name, updated, alias_text, model->description};
        mpb_table_add_row(table, cells);
        free(alias_text);
    }
    mpb_table_print(table, stdout, mpb_runs_table_width());
    mpb_table_destroy(&table);
    mpb_registered_model_list_free(&list);
    return 0;
}

/* ---- show ---- */

static int
cmd_show(runs_cli *cli, int argc, char **argv)
{
    if (argc != 2) {
        return usage_error("%sshow needs NAME", "");
    }
    mpb_registered_model *model = NULL;
    mpb_model_version_list *versions = NULL;
    int rc = mpb_runs_open_store(cli);
    if (rc == 0) {
        rc = mpb_store_get_registered_model(cli->store, argv[1], &model, cli->err, sizeof cli->err);
    }
    if (rc == 0) {
        rc = mpb_store_list_model_versions(cli->store, argv[1], &versions, cli->err,
                                           sizeof cli->err);
    }
    if (rc < 0) {
        mpb_registered_model_free(&model);
        return fail(cli, rc);
    }
    if (cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "registered_model", json_model(model));
        cJSON *items = cJSON_AddArrayToObject(root, "model_versions");
        for (size_t i = 0; i < versions->n_versions; i++) {
            cJSON_AddItemToArray(items, json_version(&versions->versions[i]));
        }
        mpb_runs_print_json(root);
    } else {
        printf("model: %s\n", model->name);
        if (model->description[0] != '\0') {
            printf("description: %s\n", model->description);
        }
        for (size_t i = 0; i < model->n_tags; i++) {
            printf("tag %s: %s\n", model->tags[i].key, model->tags[i].value);
        }
        static const char *const headers[] = {"version", "created", "aliases", "source", "run"};
        mpb_table *table = mpb_table_new(5, headers);
        for (size_t i = 0; i < versions->n_versions; i++) {
            const mpb_model_version *v = &versions->versions[i];
            char number[24];
            char created[32];
            snprintf(number, sizeof number, "%lld", (long long)v->version);
            mpb_runs_format_time(v->creation_time, created);
            mpb__strbuf aliases = {0};
            for (size_t k = 0; k < v->n_aliases; k++) {
                mpb__strbuf_printf(&aliases, "%s%s", k > 0 ? " " : "", v->aliases[k]);
            }
            char *alias_text = mpb__strbuf_take(&aliases);
            const char *cells[] = {number, created, alias_text, v->source, v->run_id};
            mpb_table_add_row(table, cells);
            free(alias_text);
        }
        mpb_table_print(table, stdout, mpb_runs_table_width());
        mpb_table_destroy(&table);
    }
    mpb_model_version_list_free(&versions);
    mpb_registered_model_free(&model);
    return 0;
}

/* ---- alias ---- */

static int
cmd_alias(runs_cli *cli, int argc, char **argv)
{
    const char *positional[3] = {NULL, NULL, NULL};
    int n_positional = 0;
    int delete = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--delete") == 0) {
            delete = 1;
        } else if (argv[i][0] == '-' || n_positional == 3) {
            return usage_error("unexpected argument '%s'", argv[i]);
        } else {
            positional[n_positional++] = argv[i];
        }
    }
    if (n_positional != (delete ? 2 : 3)) {
        return usage_error("%salias needs NAME ALIAS VERSION, or NAME ALIAS --delete", "");
    }
    int64_t version = 0;
    if (!delete &&(mpb__parse_int64(positional[2], &version) < 0 || version < 1)) {
        return usage_error("VERSION must be a positive integer, not '%s'", positional[2]);
    }
    int rc = mpb_runs_open_store(cli);
    if (rc == 0) {
        rc = delete ? mpb_store_delete_model_alias(cli->store, positional[0], positional[1],
                                                   cli->err, sizeof cli->err)
                    : mpb_store_set_model_alias(cli->store, positional[0], positional[1], version,
                                                cli->err, sizeof cli->err);
    }
    if (rc < 0) {
        return fail(cli, rc);
    }
    if (cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "name", positional[0]);
        cJSON_AddStringToObject(root, "alias", positional[1]);
        if (!delete) {
            cJSON_AddItemToObject(root, "version", json_version_number(version));
        }
        mpb_runs_print_json(root);
    }
    return 0;
}

static const runs_subcommand subcommands[] = {
    {"register", cmd_register, general_usage},
    {"list", cmd_list, general_usage},
    {"show", cmd_show, general_usage},
    {"alias", cmd_alias, general_usage},
};

int
mpb_cmd_models(int argc, char **argv)
{
    return mpb_runs_dispatch("mpb models", general_usage, subcommands, MPB_ARRAY_LEN(subcommands),
                             argc, argv);
}
