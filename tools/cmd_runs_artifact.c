/*
 * The `mpb runs` commands that put a model into a store: `create` makes a
 * run (FINISHED at once) to hold it, and `log-artifact RUN FILE [PATH]`
 * puts a local file (or a folder's contents) into a run's artifacts,
 * through the store, and prints the runs:/ URI a servlet's plugin option
 * can name to serve it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "mpbatch/store.h"
#include "tools/runs_int.h"

static const char log_artifact_usage[] =
    "usage: mpb runs log-artifact RUN_ID FILE [PATH]\n"
    "  Copies FILE into the run's artifacts under PATH (default: the root): a\n"
    "  file lands at PATH/<its name>, a folder's contents under PATH/. Prints the\n"
    "  runs:/RUN_ID/... URI that a plugin option can name, e.g.\n"
    "  options: {weights: runs:/RUN_ID/weights.bin} (docs/models.md).\n";

int
mpb_runs_log_artifact(runs_cli *cli, int argc, char **argv)
{
    if (mpb_runs_answer_help(argc, argv, log_artifact_usage)) {
        return 0;
    }
    if (argc < 3 || argc > 4) {
        return mpb_runs_usage_error(log_artifact_usage, "%s",
                                    "log-artifact takes RUN_ID FILE [PATH]");
    }
    const char *run_id = argv[1];
    const char *file = argv[2];
    const char *path = argc == 4 ? argv[3] : "";
    struct stat st;
    if (stat(file, &st) != 0) {
        snprintf(cli->err, sizeof cli->err, "%s: no such file or folder", file);
        return mpb_runs_fail(cli, 1);
    }
    if (mpb_runs_open_store(cli) != 0 ||
        mpb_store_log_artifact(cli->store, run_id, file, path, cli->err, sizeof cli->err) != 0) {
        return mpb_runs_fail(cli, 1);
    }
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    char *artifact = S_ISDIR(st.st_mode) ? mpb_strdup(*path ? path : "")
                     : *path             ? mpb_asprintf("%s/%s", path, base)
                                         : mpb_strdup(base);
    if (cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "run_id", run_id);
        cJSON_AddStringToObject(root, "artifact_path", artifact);
        char *uri = mpb_asprintf("runs:/%s/%s", run_id, artifact);
        cJSON_AddStringToObject(root, "uri", uri);
        free(uri);
        mpb_runs_print_json(root);
    } else {
        printf("runs:/%s/%s\n", run_id, artifact);
    }
    free(artifact);
    return 0;
}

static const char create_usage[] =
    "usage: mpb runs create [--experiment NAME] [--name RUN_NAME]\n"
    "  Makes a finished run (in experiment NAME, made if missing; default:\n"
    "  Default) to hold artifacts such as a model's weights; prints its id.\n";

int
mpb_runs_create(runs_cli *cli, int argc, char **argv)
{
    if (mpb_runs_answer_help(argc, argv, create_usage)) {
        return 0;
    }
    const char *experiment = NULL;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--experiment") == 0 && i + 1 < argc) {
            experiment = argv[++i];
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            name = argv[++i];
        } else {
            return mpb_runs_usage_error(create_usage, "unknown argument '%s'", argv[i]);
        }
    }
    if (mpb_runs_open_store(cli) != 0) {
        return mpb_runs_fail(cli, 1);
    }
    char *experiment_id = NULL;
    char *run_id = NULL;
    const char *user = getenv("USER");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    int rc = experiment == NULL
                 ? 0
                 : mpb_store_get_or_create_experiment(cli->store, experiment, &experiment_id, NULL,
                                                      cli->err, sizeof cli->err);
    if (rc == 0) {
        rc = mpb_store_create_run(cli->store, experiment_id ? experiment_id : "0", user ? user : "",
                                  now_ms, name, NULL, 0, &run_id, cli->err, sizeof cli->err);
    }
    if (rc == 0) {
        rc = mpb_store_update_run(cli->store, run_id, MPB_RUN_FINISHED, now_ms, NULL, cli->err,
                                  sizeof cli->err);
    }
    if (rc == 0 && cli->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "run_id", run_id);
        cJSON_AddStringToObject(root, "experiment_id", experiment_id ? experiment_id : "0");
        mpb_runs_print_json(root);
    } else if (rc == 0) {
        printf("%s\n", run_id);
    }
    free(run_id);
    free(experiment_id);
    return rc == 0 ? 0 : mpb_runs_fail(cli, 1);
}
