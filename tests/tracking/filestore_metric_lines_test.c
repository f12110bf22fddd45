/*
 * Metric lines as MLflow writes them by hand: 2 fields (step 0), 3 fields,
 * and the 5-field form of a metric logged with a dataset
 * ("<ts> <value> <step> <dataset_name> <dataset_digest>"), read as MLflow's
 * reader reads them; any other field count is a malformed store (MPB_ESTORE).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "helpers.h"

static int
setup(void **state)
{
    *state = th_fixture_new("lines", "hand-written");
    return 0;
}

/* Writes <run>/metrics/<key> with exactly `text`. */
static void
write_metric_file(th_fixture *f, const char *key, const char *text)
{
    char *path = th_pathf("%s/%s/%s/metrics/%s", f->root, f->exp_id, f->run_id, key);
    FILE *file = fopen(path, "w");
    assert_non_null(file);
    fputs(text, file);
    fclose(file);
    free(path);
}

static void
five_field_lines_read_as_mlflow_reads_them(void **state)
{
    th_fixture *f = *state;
    write_metric_file(f, "acc",
                      "1000 0.5 3 train abc123\n"
                      "1001 nan 4 eval 0123456789abcdef\n"
                      "1002 1e-05\n"
                      "1003 -inf 7\n"
                      "1004 0.25 5 my_dataset d1\n");
    mpb_metric_history *history = NULL;
    assert_int_equal(
        mpb_store_get_metric_history(f->store, f->run_id, "acc", &history, f->err, sizeof f->err),
        0);
    assert_int_equal(history->n_metrics, 5);
    const struct {
        int64_t ts;
        int64_t step;
        double value;
    } expect[] = {{1000, 3, 0.5}, {1001, 4, NAN}, {1002, 0, 1e-05}, {1003, 7, -INFINITY},
                  {1004, 5, 0.25}};
    for (size_t i = 0; i < MPB_ARRAY_LEN(expect); i++) {
        const mpb_metric *m = &history->metrics[i];
        assert_int_equal(m->timestamp_ms, expect[i].ts);
        assert_int_equal(m->step, expect[i].step);
        if (isnan(expect[i].value)) {
            assert_true(isnan(m->value));
        } else {
            assert_true(m->value == expect[i].value);
        }
    }
    mpb_metric_history_free(&history);
    /* The latest value is the greatest (step, timestamp, value): step 7. */
    mpb_run *run = NULL;
    assert_int_equal(mpb_store_get_run(f->store, f->run_id, &run, f->err, sizeof f->err), 0);
    assert_int_equal(run->n_metrics, 1);
    assert_int_equal(run->metrics[0].step, 7);
    assert_true(isinf(run->metrics[0].value) && run->metrics[0].value < 0);
    mpb_run_free(&run);
    /* Search sees the run through its 5-field lines too. */
    const char *ids[] = {f->exp_id};
    mpb_search_opts opts = {.filter = "metrics.acc < 0"};
    mpb_run_page *page = NULL;
    assert_int_equal(
        mpb_store_search_runs(f->store, ids, 1, &opts, &page, f->err, sizeof f->err), 0);
    assert_int_equal(page->n_runs, 1);
    mpb_run_page_free(&page);
}

static void
other_field_counts_are_refused(void **state)
{
    th_fixture *f = *state;
    const char *bad[] = {"1000 0.5 3 train\n", "1000 0.5 3 train abc extra\n", "1000\n",
                         "1000 x 3\n", "1000 0.5 three ds d\n"};
    for (size_t i = 0; i < MPB_ARRAY_LEN(bad); i++) {
        write_metric_file(f, "bad", bad[i]);
        mpb_metric_history *history = NULL;
        int rc = mpb_store_get_metric_history(f->store, f->run_id, "bad", &history, f->err,
                                              sizeof f->err);
        if (rc != MPB_ESTORE) {
            fail_msg("line '%s' gave %d", bad[i], rc);
        }
        assert_null(history);
        assert_non_null(strstr(f->err, "line 1: malformed metric line"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(five_field_lines_read_as_mlflow_reads_them, setup,
                                        th_fixture_teardown),
        cmocka_unit_test_setup_teardown(other_field_counts_are_refused, setup,
                                        th_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
