/*
 * `mpb plugins`: which worker plugins this machine has and what each
 * declares. Lists every mpb_<name>.so on the plugin search path (the same
 * directories, in the same order, that servlets look in), marking those an
 * earlier directory shadows and those that do not load; `show` prints one
 * plugin's doc, batching defaults, options, inputs and outputs. Tables for
 * people, --json (cJSON) for scripts. Plugins are loaded (dlopen) but never
 * initialised or run.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/plugin.h"
#include "core/util.h"
#include "core/worker_loop.h"
#include "tools/json_out.h"
#include "tools/commands.h"
#include "tools/table.h"

static const char usage[] =
    "usage: mpb plugins [--json]\n"
    "       mpb plugins show [--json] NAME|PATH\n"
    "\n"
    "Lists the worker plugins on the search path, or describes one.\n"
    "\n"
    "commands:\n"
    "  (none), list     every mpb_<name>.so found: name, ABI version, doc line, path\n"
    "  show NAME|PATH   one plugin: doc, path, ABI, batching defaults, options,\n"
    "                   inputs and outputs\n"
    "\n"
    "options:\n"
    "  --json   JSON output for scripts\n"
    "  --help   this text\n"
    "\n"
    "A name is looked up as mpb_<name>.so in, in order: $MPB_PLUGIN_PATH\n"
    "(':'-separated), next to this program (../lib, ../lib/mpbatch), next to\n"
    "libmpbatch, and the install directory. A plugin in an earlier directory\n"
    "shadows one of the same name in a later one.\n"
    "\n"
    "Exit status: 0, 1 when the plugin to show cannot be found or loaded,\n"
    "2 for bad usage.\n";

/* One plugin file found on the search path. */
typedef struct entry {
    char *name; /* from the file name: mpb_<name>.so */
    char *path;
    const char *shadowed_by;   /* path of the earlier file of that name, or NULL */
    const mpb__plugin *plugin; /* NULL when it did not load */
    char error[512];           /* why it did not load */
} entry;

typedef struct entry_list {
    entry *entries;
    size_t count;
    size_t cap;
} entry_list;

static int
compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* <name> of a file called mpb_<name>.so (caller frees), or NULL. */
static char *
plugin_name_of(const char *file)
{
    size_t len = strlen(file);
    if (len <= 7 || strncmp(file, "mpb_", 4) != 0 || strcmp(file + len - 3, ".so") != 0) {
        return NULL;
    }
    return mpb_strndup(file + 4, len - 7);
}

static void
add_entry(entry_list *list, const char *dir, char *name)
{
    if (list->count == list->cap) {
        list->cap = list->cap ? list->cap * 2 : 16;
        list->entries = mpb_realloc(list->entries, list->cap * sizeof *list->entries);
    }
    entry *e = &list->entries[list->count++];
    memset(e, 0, sizeof *e);
    e->name = name;
    e->path = mpb_asprintf("%s/mpb_%s.so", dir, name);
    for (size_t i = 0; i + 1 < list->count && e->shadowed_by == NULL; i++) {
        if (strcmp(list->entries[i].name, name) == 0) {
            e->shadowed_by = list->entries[i].path;
        }
    }
    if (mpb__plugin_find(e->path, &e->plugin, e->error, sizeof e->error) != 0) {
        e->plugin = NULL;
    }
}

/* The plugins of one directory, by name; a missing directory has none. */
static void
scan_dir(entry_list *list, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *file;
    while ((file = readdir(d)) != NULL) {
        char *name = plugin_name_of(file->d_name);
        if (name != NULL) {
            names = mpb_realloc(names, (n + 1) * sizeof *names);
            names[n++] = name;
        }
    }
    closedir(d);
    if (n > 0) {
        qsort(names, n, sizeof *names, compare_names);
    }
    for (size_t i = 0; i < n; i++) {
        add_entry(list, dir, names[i]);
    }
    free(names);
}

static void
entry_list_free(entry_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        free(list->entries[i].name);
        free(list->entries[i].path);
    }
    free(list->entries);
}

static cJSON *
json_string_or_null(const char *text)
{
    return text != NULL ? cJSON_CreateString(text) : cJSON_CreateNull();
}

static void
print_json(cJSON *root)
{
    char *text = cJSON_Print(root);
    mpb__json_print_document(text);
    free(text);
    cJSON_Delete(root);
}

static void
print_list_json(const entry_list *list, char **dirs)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *search = cJSON_AddArrayToObject(root, "search_path");
    for (size_t i = 0; dirs[i] != NULL; i++) {
        cJSON_AddItemToArray(search, cJSON_CreateString(dirs[i]));
    }
    cJSON *plugins = cJSON_AddArrayToObject(root, "plugins");
    for (size_t i = 0; i < list->count; i++) {
        const entry *e = &list->entries[i];
        const mpb_worker_def *def = e->plugin ? e->plugin->def : NULL;
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "name", e->name);
        cJSON_AddStringToObject(item, "path", e->path);
        cJSON_AddItemToObject(item, "abi_version",
                              def ? cJSON_CreateNumber(def->abi_version) : cJSON_CreateNull());
        cJSON_AddItemToObject(item, "worker_name", json_string_or_null(def ? def->name : NULL));
        cJSON_AddItemToObject(item, "doc", json_string_or_null(def ? def->doc : NULL));
        cJSON_AddItemToObject(item, "shadowed_by", json_string_or_null(e->shadowed_by));
        cJSON_AddItemToObject(item, "error", json_string_or_null(def ? NULL : e->error));
        cJSON_AddItemToArray(plugins, item);
    }
    print_json(root);
}

/* Why e did not load, without the path the table shows next to it
 * (load errors read "plugin PATH: PATH: reason"). */
static const char *
load_reason(const entry *e)
{
    const char *reason = e->error;
    size_t path_len = strlen(e->path);
    if (strncmp(reason, "plugin ", 7) == 0 && strncmp(reason + 7, e->path, path_len) == 0 &&
        strncmp(reason + 7 + path_len, ": ", 2) == 0) {
        reason += 7 + path_len + 2;
    }
    if (strncmp(reason, e->path, path_len) == 0 && strncmp(reason + path_len, ": ", 2) == 0) {
        reason += path_len + 2;
    }
    return reason;
}

static void
print_list_table(const entry_list *list)
{
    static const char *const headers[] = {"NAME", "ABI", "DESCRIPTION", "PATH"};
    mpb_table *table = mpb_table_new(4, headers);
    for (size_t i = 0; i < list->count; i++) {
        const entry *e = &list->entries[i];
        const mpb_worker_def *def = e->plugin ? e->plugin->def : NULL;
        char *name = e->shadowed_by ? mpb_asprintf("%s (shadowed)", e->name) : mpb_strdup(e->name);
        char abi[16];
        snprintf(abi, sizeof abi, "%u", def ? def->abi_version : 0);
        char *doc = def ? mpb_strdup(def->doc ? def->doc : "-")
                        : mpb_asprintf("cannot load: %s", load_reason(e));
        const char *cells[] = {name, def ? abi : "-", doc, e->path};
        mpb_table_add_row(table, cells);
        free(doc);
        free(name);
    }
    mpb_table_print(table, stdout, 0);
    mpb_table_destroy(&table);
}

static int
list_plugins(int json)
{
    char **dirs = mpb__plugin_search_dirs(NULL);
    entry_list list = {0};
    for (size_t i = 0; dirs[i] != NULL; i++) {
        scan_dir(&list, dirs[i]);
    }
    if (json) {
        print_list_json(&list, dirs);
    } else if (list.count == 0) {
        fprintf(stderr, "mpb plugins: no mpb_<name>.so in any of:");
        for (size_t i = 0; dirs[i] != NULL; i++) {
            fprintf(stderr, " %s", dirs[i]);
        }
        fputc('\n', stderr);
    } else {
        print_list_table(&list);
    }
    entry_list_free(&list);
    mpb__plugin_search_dirs_free(&dirs);
    return 0;
}

/* ---- show ---- */

/* "[-1]", "[3, 4]", "[]" into out. */
static void
format_shape(const mpb_tensor_def *tensor, char *out, size_t out_len)
{
    unsigned ndim = tensor->ndim < MPB_TENSOR_MAX_DIMS ? tensor->ndim : MPB_TENSOR_MAX_DIMS;
    size_t used = (size_t)snprintf(out, out_len, "[");
    for (unsigned d = 0; d < ndim && used < out_len; d++) {
        used += (size_t)snprintf(out + used, out_len - used, "%s%lld", d ? ", " : "",
                                 (long long)tensor->shape[d]);
    }
    if (used < out_len) {
        snprintf(out + used, out_len - used, "]");
    }
}

static cJSON *
json_tensors(const mpb_tensor_def *tensors)
{
    if (tensors == NULL) {
        return cJSON_CreateNull();
    }
    cJSON *list = cJSON_CreateArray();
    for (const mpb_tensor_def *t = tensors; t->name != NULL; t++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "name", t->name);
        cJSON_AddItemToObject(item, "datatype", json_string_or_null(t->datatype));
        cJSON *shape = cJSON_AddArrayToObject(item, "shape");
        for (unsigned d = 0; d < t->ndim && d < MPB_TENSOR_MAX_DIMS; d++) {
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        }
        cJSON_AddItemToArray(list, item);
    }
    return list;
}

static cJSON *
json_options(const mpb_option_def *options)
{
    if (options == NULL) {
        return cJSON_CreateNull();
    }
    cJSON *list = cJSON_CreateArray();
    for (const mpb_option_def *o = options; o->name != NULL; o++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "name", o->name);
        cJSON_AddStringToObject(item, "type", mpb__option_type_name(o->type));
        cJSON_AddItemToObject(item, "default", json_string_or_null(o->default_value));
        cJSON_AddItemToObject(item, "doc", json_string_or_null(o->doc));
        cJSON_AddItemToArray(list, item);
    }
    return list;
}

static void
print_show_json(const char *name, const mpb__plugin *plugin)
{
    const mpb_worker_def *def = plugin->def;
    unsigned batch_size;
    int64_t wait_us;
    int auto_wait;
    mpb__worker_batching(def, -1, -1, &batch_size, &wait_us, &auto_wait);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "name", name);
    cJSON_AddStringToObject(root, "worker_name", def->name);
    cJSON_AddStringToObject(root, "path", plugin->path);
    cJSON_AddNumberToObject(root, "abi_version", def->abi_version);
    cJSON_AddItemToObject(root, "doc", json_string_or_null(def->doc));
    cJSON_AddNumberToObject(root, "batch_size", def->batch_size);
    cJSON_AddNumberToObject(root, "batch_wait_us", (double)def->batch_wait_us);
    cJSON_AddNumberToObject(root, "effective_batch_wait_us", (double)wait_us);
    cJSON_AddNumberToObject(root, "batch_timeout_ms", def->batch_timeout_ms);
    cJSON_AddItemToObject(root, "options", json_options(def->options));
    cJSON_AddItemToObject(root, "inputs", json_tensors(def->inputs));
    cJSON_AddItemToObject(root, "outputs", json_tensors(def->outputs));
    print_json(root);
}

static void
print_tensors(const char *title, const mpb_tensor_def *tensors)
{
    if (tensors == NULL) {
        printf("\n%s: not declared\n", title);
        return;
    }
    if (tensors->name == NULL) {
        printf("\n%s: none\n", title);
        return;
    }
    printf("\n%s:\n", title);
    static const char *const headers[] = {"NAME", "DATATYPE", "SHAPE"};
    mpb_table *table = mpb_table_new(3, headers);
    for (const mpb_tensor_def *t = tensors; t->name != NULL; t++) {
        char shape[MPB_TENSOR_MAX_DIMS * 24 + 4];
        format_shape(t, shape, sizeof shape);
        const char *cells[] = {t->name, t->datatype, shape};
        mpb_table_add_row(table, cells);
    }
    mpb_table_print(table, stdout, 0);
    mpb_table_destroy(&table);
}

static void
print_options(const mpb_option_def *options)
{
    if (options == NULL) {
        printf("\noptions: not declared (options given to it are passed to init unchecked)\n");
        return;
    }
    if (options->name == NULL) {
        printf("\noptions: none (any option given to it is refused)\n");
        return;
    }
    printf("\noptions:\n");
    static const char *const headers[] = {"NAME", "TYPE", "DEFAULT", "DESCRIPTION"};
    mpb_table *table = mpb_table_new(4, headers);
    for (const mpb_option_def *o = options; o->name != NULL; o++) {
        const char *cells[] = {o->name, mpb__option_type_name(o->type), o->default_value, o->doc};
        mpb_table_add_row(table, cells);
    }
    mpb_table_print(table, stdout, 0);
    mpb_table_destroy(&table);
}

static void
print_show_text(const char *name, const mpb__plugin *plugin)
{
    const mpb_worker_def *def = plugin->def;
    unsigned batch_size;
    int64_t wait_us;
    int auto_wait;
    mpb__worker_batching(def, -1, -1, &batch_size, &wait_us, &auto_wait);
    printf("%s: %s\n", name, def->doc ? def->doc : "(no doc line)");
    printf("worker name:    %s\n", def->name);
    printf("path:           %s\n", plugin->path);
    printf("abi:            %u\n", def->abi_version);
    printf("batch_size:     %u%s\n", def->batch_size,
           def->batch_size == 0 ? " (calls per item)" : "");
    printf("batch_wait_us:  %lld", (long long)wait_us);
    if (auto_wait) {
        printf(" (auto: waits, up to this, only while more items are coming)");
    } else if (def->batch_wait_us == MPB_BATCH_WAIT_NONE) {
        printf(" (never waits for more items)");
    } else if (def->batch_wait_us == 0 && wait_us > 0) {
        printf(" (the default when batch_size > 1)");
    }
    printf("\n");
    if (def->batch_timeout_ms > 0) {
        printf("batch_timeout_ms: %d (a call running longer is hung)\n", def->batch_timeout_ms);
    }
    if (def->options == NULL && def->inputs == NULL && def->outputs == NULL) {
        printf("\nThis plugin declares nothing (built for worker ABI %u, or declares no "
               "options, inputs or outputs): its options are not checked.\n",
               def->abi_version);
        return;
    }
    print_options(def->options);
    print_tensors("inputs", def->inputs);
    print_tensors("outputs", def->outputs);
}

/* The name to show: NAME itself, or <name> of a path to mpb_<name>.so. */
static char *
display_name(const char *name_or_path)
{
    const char *slash = strrchr(name_or_path, '/');
    if (slash == NULL) {
        return mpb_strdup(name_or_path);
    }
    char *from_file = plugin_name_of(slash + 1);
    return from_file ? from_file : mpb_strdup(slash + 1);
}

static int
show_plugin(const char *name_or_path, int json)
{
    const mpb__plugin *plugin = NULL;
    char err[1024] = "";
    if (mpb__plugin_find(name_or_path, &plugin, err, sizeof err) != 0) {
        fprintf(stderr, "mpb plugins: %s\n", err);
        return 1;
    }
    char *name = display_name(name_or_path);
    if (json) {
        print_show_json(name, plugin);
    } else {
        print_show_text(name, plugin);
    }
    free(name);
    return 0;
}

static int
usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "mpb plugins: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

int
mpb_cmd_plugins(int argc, char **argv)
{
    int json = 0;
    const char *words[3] = {NULL};
    size_t n_words = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown option '%s'", argv[i]);
        } else if (n_words == MPB_ARRAY_LEN(words)) {
            return usage_error("unexpected argument '%s'", argv[i]);
        } else {
            words[n_words++] = argv[i];
        }
    }
    if (n_words == 0) {
        return list_plugins(json);
    }
    if (strcmp(words[0], "list") == 0) {
        return n_words == 1 ? list_plugins(json)
                            : usage_error("unexpected argument '%s'", words[1]);
    }
    if (strcmp(words[0], "show") != 0) {
        return usage_error("unknown command '%s'", words[0]);
    }
    if (n_words != 2) {
        return usage_error("%s needs exactly one plugin NAME or PATH", "show");
    }
    return show_plugin(words[1], json);
}
