/* Parsing of MLflow search filters and order_by clauses. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "mpbatch/error.h"
#include "tracking/search.h"
#include "tracking/text.h"

typedef struct lexer {
    const char *text;
    const char *at;
    const char *what; /* "filter" or "order_by clause" */
    mpb__search_target target;
    char *err;
    size_t err_len;
} lexer;

typedef struct attribute_def {
    const char *name;
    const char *canonical;
    int numeric;
} attribute_def;

static const attribute_def run_attributes[] = {
    {"run_id", "run_id", 0},
    {"run_name", "run_name", 0},
    {"status", "status", 0},
    {"user_id", "user_id", 0},
    {"artifact_uri", "artifact_uri", 0},
    {"start_time", "start_time", 1},
    {"end_time", "end_time", 1},
    {"created", "start_time", 1},
};

static const attribute_def experiment_attributes[] = {
    {"name", "name", 0},
    {"experiment_id", "experiment_id", 0},
    {"creation_time", "creation_time", 1},
    {"last_update_time", "last_update_time", 1},
};

static int
fail(lexer *lx, const char *message)
{
    return mpb__set_error(lx->err, lx->err_len, MPB_EINVAL,
                          "Invalid %s '%.200s': at offset %zu (near '%.20s'): %s", lx->what,
                          lx->text, (size_t)(lx->at - lx->text), lx->at, message);
}

static void
skip_space(lexer *lx)
{
    while (isspace((unsigned char)*lx->at)) {
        lx->at++;
    }
}

/* Consumes a case-insensitive keyword followed by a non-word character. */
static int
accept_word(lexer *lx, const char *word)
{
    size_t len = strlen(word);
    if (strncasecmp(lx->at, word, len) != 0) {
        return 0;
    }
    char next = lx->at[len];
    if (isalnum((unsigned char)next) || next == '_') {
        return 0;
    }
    lx->at += len;
    return 1;
}

static int
is_bare_key_char(char c)
{
    return c != '\0' && (isalnum((unsigned char)c) || strchr("_.:/-", c) != NULL);
}

/* A quoted string ('...', "..." or `...`); a doubled quote stands for itself. */
static int
parse_quoted(lexer *lx, char **out)
{
    char quote = *lx->at;
    mpb__strbuf buf = {0};
    mpb__strbuf_append(&buf, "", 0);
    const char *start = lx->at;
    for (lx->at++;; lx->at++) {
        if (*lx->at == '\0') {
            mpb__strbuf_clear(&buf);
            lx->at = start;
            return fail(lx, "unterminated quoted string");
        }
        if (*lx->at == quote && lx->at[1] == quote) {
            mpb__strbuf_append(&buf, lx->at, 1);
            lx->at++;
        } else if (*lx->at == quote) {
            lx->at++;
            break;
        } else {
            mpb__strbuf_append(&buf, lx->at, 1);
        }
    }
    *out = mpb__strbuf_take(&buf);
    return 0;
}

static int
entity_from_word(const char *word, size_t len, mpb__entity *out)
{
    static const struct {
        const char *word;
        mpb__entity entity;
    } names[] = {
        {"metric", MPB__ENTITY_METRIC},
        {"metrics", MPB__ENTITY_METRIC},
        {"param", MPB__ENTITY_PARAM},
        {"params", MPB__ENTITY_PARAM},
        {"parameter", MPB__ENTITY_PARAM},
        {"parameters", MPB__ENTITY_PARAM},
        {"tag", MPB__ENTITY_TAG},
        {"tags", MPB__ENTITY_TAG},
        {"attribute", MPB__ENTITY_ATTRIBUTE},
        {"attributes", MPB__ENTITY_ATTRIBUTE},
        {"attr", MPB__ENTITY_ATTRIBUTE},
        {"run", MPB__ENTITY_ATTRIBUTE},
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(names); i++) {
        if (strlen(names[i].word) == len && strncasecmp(names[i].word, word, len) == 0) {
            *out = names[i].entity;
            return 0;
        }
    }
    return MPB_EINVAL;
}

static const attribute_def *
find_attribute(mpb__search_target target, const char *key)
{
    const attribute_def *defs = target == MPB__SEARCH_RUNS ? run_attributes : experiment_attributes;
    size_t n = target == MPB__SEARCH_RUNS ? MPB_ARRAY_LEN(run_attributes)
                                          : MPB_ARRAY_LEN(experiment_attributes);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(defs[i].name, key) == 0) {
            return &defs[i];
        }
    }
    return NULL;
}

static int
check_entity(lexer *lx, const char *start, mpb__entity entity, char **key,
             const attribute_def **out_attr)
{
    *out_attr = NULL;
    if (lx->target == MPB__SEARCH_EXPERIMENTS &&
        (entity == MPB__ENTITY_METRIC || entity == MPB__ENTITY_PARAM)) {
        lx->at = start;
        return fail(lx, "experiments are searched by name, creation_time, last_update_time "
                        "and tags only");
    }
    if (entity != MPB__ENTITY_ATTRIBUTE) {
        return 0;
    }
    const attribute_def *attr = find_attribute(lx->target, *key);
    if (attr == NULL) {
        lx->at = start;
        return fail(lx, lx->target == MPB__SEARCH_RUNS
                            ? "unknown attribute; valid: run_id, run_name, status, user_id, "
                              "artifact_uri, start_time, end_time, created (or use metrics., "
                              "params., tags.)"
                            : "unknown attribute; valid: name, experiment_id, creation_time, "
                              "last_update_time (or use tags.)");
    }
    free(*key);
    *key = mpb_strdup(attr->canonical);
    *out_attr = attr;
    return 0;
}

/* [entity.]key where key is bare or quoted. */
static int
parse_identifier(lexer *lx, mpb__entity *entity, char **key, const attribute_def **attr)
{
    skip_space(lx);
    const char *start = lx->at;
    while (isalnum((unsigned char)*lx->at) || *lx->at == '_') {
        lx->at++;
    }
    size_t word_len = (size_t)(lx->at - start);
    if (word_len == 0) {
        return fail(lx, "expected an identifier such as metrics.loss, params.lr, "
                        "tags.\"my tag\" or attributes.status");
    }
    if (*lx->at != '.') {
        *entity = MPB__ENTITY_ATTRIBUTE;
        *key = mpb_strndup(start, word_len);
        return check_entity(lx, start, *entity, key, attr);
    }
    if (entity_from_word(start, word_len, entity) < 0) {
        lx->at = start;
        return fail(lx, "unknown entity type; use metrics., params., tags. or attributes.");
    }
    lx->at++;
    if (*lx->at == '"' || *lx->at == '`') {
        int rc = parse_quoted(lx, key);
        if (rc < 0) {
            return rc;
        }
    } else {
        const char *key_start = lx->at;
        while (is_bare_key_char(*lx->at)) {
            lx->at++;
        }
        if (lx->at == key_start) {
            return fail(lx, "expected a key after the entity type (quote keys with spaces: "
                            "tags.\"a b\")");
        }
        *key = mpb_strndup(key_start, (size_t)(lx->at - key_start));
    }
    return check_entity(lx, start, *entity, key, attr);
}

static int
parse_op(lexer *lx, mpb__op *op)
{
    skip_space(lx);
    if (strncmp(lx->at, "<>", 2) == 0 || strncmp(lx->at, "==", 2) == 0) {
        return fail(lx, "expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)");
    }
    static const struct {
        const char *text;
        mpb__op op;
    } symbols[] = {
        {"!=", MPB__OP_NE}, {"<=", MPB__OP_LE}, {">=", MPB__OP_GE},
        {"<", MPB__OP_LT},  {">", MPB__OP_GT},  {"=", MPB__OP_EQ},
    };
    for (size_t i = 0; i < MPB_ARRAY_LEN(symbols); i++) {
        size_t len = strlen(symbols[i].text);
        if (strncmp(lx->at, symbols[i].text, len) == 0) {
            lx->at += len;
            *op = symbols[i].op;
            return 0;
        }
    }
    if (accept_word(lx, "LIKE")) {
        *op = MPB__OP_LIKE;
    } else if (accept_word(lx, "ILIKE")) {
        *op = MPB__OP_ILIKE;
    } else if (accept_word(lx, "IN")) {
        *op = MPB__OP_IN;
    } else if (accept_word(lx, "NOT")) {
        skip_space(lx);
        if (!accept_word(lx, "IN")) {
            return fail(lx, "expected IN after NOT");
        }
        *op = MPB__OP_NOT_IN;
    } else {
        return fail(lx, "expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)");
    }
    return 0;
}

static void
add_string(mpb__clause *clause, char *value)
{
    clause->strings =
        mpb_realloc(clause->strings, (clause->n_strings + 1) * sizeof *clause->strings);
    clause->strings[clause->n_strings++] = value;
}

static int
parse_value(lexer *lx, mpb__clause *clause)
{
    skip_space(lx);
    if (clause->op == MPB__OP_IN || clause->op == MPB__OP_NOT_IN) {
        if (*lx->at != '(') {
            return fail(lx, "expected '(' and a list of quoted strings after IN");
        }
        do {
            lx->at++;
            skip_space(lx);
            if (*lx->at != '\'' && *lx->at != '"') {
                return fail(lx, "expected a quoted string in the IN list");
            }
            char *value = NULL;
            int rc = parse_quoted(lx, &value);
            if (rc < 0) {
                return rc;
            }
            add_string(clause, value);
            skip_space(lx);
        } while (*lx->at == ',');
        if (*lx->at != ')') {
            return fail(lx, "expected ',' or ')' in the IN list");
        }
        lx->at++;
        return 0;
    }
    if (*lx->at == '\'' || *lx->at == '"') {
        char *value = NULL;
        int rc = parse_quoted(lx, &value);
        if (rc == 0) {
            add_string(clause, value);
        }
        return rc;
    }
    if (*lx->at != '\0' && (isdigit((unsigned char)*lx->at) || strchr("+-.", *lx->at) != NULL)) {
        char *end = NULL;
        double number = strtod(lx->at, &end);
        int hex = memchr(lx->at, 'x', (size_t)(end - lx->at)) != NULL ||
                  memchr(lx->at, 'X', (size_t)(end - lx->at)) != NULL;
        if (end != lx->at && !hex && !isnan(number) && !isinf(number) &&
            !isalpha((unsigned char)*end)) {
            lx->at = end;
            clause->numeric = 1;
            clause->number = number;
            return 0;
        }
    }
    return fail(lx, "expected a value: a number or a quoted string");
}

/* Which comparators and value types a clause may use. */
static int
check_clause(lexer *lx, const char *start, const mpb__clause *clause, const attribute_def *attr)
{
    int numeric_key = clause->entity == MPB__ENTITY_METRIC || (attr != NULL && attr->numeric);
    int string_op = clause->op >= MPB__OP_LIKE;
    int list_op = clause->op == MPB__OP_IN || clause->op == MPB__OP_NOT_IN;
    const char *problem = NULL;
    /* MLflow's rules: params and tags compare with =, !=, LIKE, ILIKE only;
     * among attributes only run_id takes a list (IN, NOT IN). */
    if (list_op && (clause->entity == MPB__ENTITY_PARAM || clause->entity == MPB__ENTITY_TAG)) {
        problem = clause->entity == MPB__ENTITY_PARAM
                      ? "params compare with =, !=, LIKE, ILIKE only (IN and NOT IN: "
                        "only attributes.run_id takes a list)"
                      : "tags compare with =, !=, LIKE, ILIKE only (IN and NOT IN: "
                        "only attributes.run_id takes a list)";
    } else if (list_op && !numeric_key && strcmp(clause->key, "run_id") != 0) {
        problem = "only the 'run_id' attribute supports comparison with a list of quoted "
                  "string values (IN, NOT IN)";
    } else if (numeric_key && string_op) {
        problem = "this key is numeric: compare it with =, !=, <, <=, >, >=";
    } else if (numeric_key && !clause->numeric) {
        problem = "this key is numeric: compare it with a number, e.g. metrics.loss < 0.5";
    } else if (!numeric_key && clause->op >= MPB__OP_LT && clause->op <= MPB__OP_GE) {
        problem = "this key is a string: compare it with =, !=, LIKE, ILIKE, IN, NOT IN";
    } else if (!numeric_key && clause->numeric) {
        problem = "string values must be quoted, e.g. params.lr = '0.1'";
    }
    if (problem != NULL) {
        lx->at = start;
        return fail(lx, problem);
    }
    return 0;
}

static void
clause_clear(mpb__clause *clause)
{
    free(clause->key);
    for (size_t i = 0; i < clause->n_strings; i++) {
        free(clause->strings[i]);
    }
    free(clause->strings);
}

static int
parse_clause(lexer *lx, mpb__clause *clause)
{
    const char *start = lx->at;
    const attribute_def *attr = NULL;
    int rc = parse_identifier(lx, &clause->entity, &clause->key, &attr);
    if (rc == 0) {
        rc = parse_op(lx, &clause->op);
    }
    if (rc == 0) {
        rc = parse_value(lx, clause);
    }
    if (rc == 0) {
        while (isspace((unsigned char)*start)) {
            start++;
        }
        rc = check_clause(lx, start, clause, attr);
    }
    return rc;
}

int
mpb__filter_parse(mpb__search_target target, const char *text, mpb__filter *out, char *err,
                  size_t err_len)
{
    memset(out, 0, sizeof *out);
    lexer lx = {text ? text : "", text ? text : "", "filter", target, err, err_len};
    skip_space(&lx);
    if (*lx.at == '\0') {
        return 0;
    }
    int rc = 0;
    for (;;) {
        out->clauses = mpb_realloc(out->clauses, (out->n_clauses + 1) * sizeof *out->clauses);
        mpb__clause *clause = &out->clauses[out->n_clauses++];
        memset(clause, 0, sizeof *clause);
        rc = parse_clause(&lx, clause);
        if (rc < 0) {
            break;
        }
        skip_space(&lx);
        if (*lx.at == '\0') {
            break;
        }
        if (accept_word(&lx, "OR")) {
            lx.at -= 2;
            rc = fail(&lx, "OR is not supported; join clauses with AND");
            break;
        }
        if (!accept_word(&lx, "AND")) {
            rc = fail(&lx, "expected AND or the end of the filter");
            break;
        }
    }
    if (rc < 0) {
        mpb__filter_clear(out);
    }
    return rc;
}

void
mpb__filter_clear(mpb__filter *filter)
{
    for (size_t i = 0; i < filter->n_clauses; i++) {
        clause_clear(&filter->clauses[i]);
    }
    free(filter->clauses);
    memset(filter, 0, sizeof *filter);
}

static int
parse_order_key(mpb__search_target target, const char *text, mpb__order_key *key, char *err,
                size_t err_len)
{
    lexer lx = {text, text, "order_by clause", target, err, err_len};
    const attribute_def *attr = NULL;
    int rc = parse_identifier(&lx, &key->entity, &key->key, &attr);
    if (rc < 0) {
        return rc;
    }
    skip_space(&lx);
    key->ascending = 1;
    if (accept_word(&lx, "DESC")) {
        key->ascending = 0;
    } else {
        (void)accept_word(&lx, "ASC");
    }
    skip_space(&lx);
    if (*lx.at != '\0') {
        return fail(&lx, "expected ASC, DESC or the end of the clause");
    }
    return 0;
}

int
mpb__order_parse(mpb__search_target target, const char *const *order_by, size_t n_order_by,
                 mpb__order *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    if (n_order_by == 0) {
        return 0;
    }
    out->keys = mpb_calloc(n_order_by, sizeof *out->keys);
    for (size_t i = 0; i < n_order_by; i++) {
        out->n_keys++;
        int rc =
            parse_order_key(target, order_by[i] ? order_by[i] : "", &out->keys[i], err, err_len);
        if (rc < 0) {
            mpb__order_clear(out);
            return rc;
        }
    }
    return 0;
}

void
mpb__order_clear(mpb__order *order)
{
    for (size_t i = 0; i < order->n_keys; i++) {
        free(order->keys[i].key);
    }
    free(order->keys);
    memset(order, 0, sizeof *order);
}
