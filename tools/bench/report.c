/*
 * What a sweep prints and writes: a table for people, JSON lines (one per
 * point and baseline) and a CSV (one row per point, baselines as columns)
 * for programs and plots, and the recommendation for a p99 budget.
 */
#include <stdio.h>
#include <string.h>

#include "mpbatch/worker.h"
#include "tools/bench/bench_int.h"

static void
wait_text(long long wait_us, char *out, size_t len)
{
    if (wait_us == MPB_BATCH_WAIT_AUTO) {
        snprintf(out, len, "auto");
    } else if (wait_us < 0) {
        snprintf(out, len, "default");
    } else {
        snprintf(out, len, "%lld", wait_us);
    }
}

static double
ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

/* A table's ratio column: "-" when the baseline was not measured. */
static void
ratio_cell(FILE *out, double a, double baseline)
{
    if (baseline > 0) {
        fprintf(out, " %6.2fx", a / baseline);
    } else {
        fprintf(out, " %7s", "-");
    }
}

void
mpb__bench_table_header(FILE *out, int baselines)
{
    fprintf(out, "%-7s %3s %5s %7s %-13s %11s %9s %9s %6s %16s", "kind", "wkr", "batch", "wait_us",
            "load", "items/s", "p50 ms", "p99 ms", "batch", "full/timer/drain");
    if (baselines) {
        fprintf(out, " %7s %7s", "vs bare", "vs raw");
    }
    fputc('\n', out);
}

void
mpb__bench_table_row(FILE *out, const bench_plan *plan, const bench_row *row)
{
    char wait[24];
    wait_text(row->point.wait_us, wait, sizeof wait);
    const bench_figures *f = &row->fig;
    char closes[48];
    snprintf(closes, sizeof closes, "%llu/%llu/%llu", (unsigned long long)f->closed_full,
             (unsigned long long)f->closed_timer, (unsigned long long)f->closed_drained);
    fprintf(out, "%-7s %3lld %5lld %7s %-13s %11.0f %9.3f %9.3f %6.1f %16s", row->point.kind,
            row->point.workers, row->point.batch_size, wait, row->load_text, f->items_per_s,
            f->p50_us / 1e3, f->p99_us / 1e3, f->mean_batch, closes);
    if (plan->baselines) {
        ratio_cell(out, f->items_per_s, row->base.bare_items_per_s);
        ratio_cell(out, f->items_per_s, row->base.raw_items_per_s);
    }
    if (f->errors > 0) {
        fprintf(out, "  %llu errors", (unsigned long long)f->errors);
    }
    fputc('\n', out);
}

static void
json_escape(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        if (*c == '"' || *c == '\\') {
            fprintf(out, "\\%c", *c);
        } else if (*c < 0x20) {
            fprintf(out, "\\u%04x", *c);
        } else {
            fputc(*c, out);
        }
    }
    fputc('"', out);
}

/* The fields every JSON row has, without the closing brace. */
static void
json_common(FILE *out, const bench_plan *plan, const bench_row *row)
{
    const bench_figures *f = &row->fig;
    char wait[24];
    wait_text(row->point.wait_us, wait, sizeof wait);
    fprintf(out, "{\"model\": ");
    json_escape(out, plan->model);
    fprintf(out,
            ", \"kind\": \"%s\", \"workers\": %lld, \"batch_size\": %lld, \"wait_us\": %s%s%s, "
            "\"load\": \"%s\", \"offered_per_s\": %.1f, \"concurrency\": %.0f, \"items\": %llu, "
            "\"errors\": %llu, \"seconds\": %.3f, \"items_per_s\": %.1f, \"p50_us\": %.1f, "
            "\"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, \"mean_us\": %.1f, "
            "\"max_us\": %.1f, \"batches\": %llu, \"mean_batch\": %.2f, \"closed_full\": %llu, "
            "\"closed_timer\": %llu, \"closed_drained\": %llu, \"first_wait_us\": %.1f, "
            "\"compute_us\": %.1f, \"cpu_coordinator_s\": %.3f, \"cpu_workers_s\": %.3f",
            row->point.kind, row->point.workers, row->point.batch_size,
            row->point.wait_us == MPB_BATCH_WAIT_AUTO ? "\"" : "", wait,
            row->point.wait_us == MPB_BATCH_WAIT_AUTO ? "\"" : "", row->load_text, f->offered_per_s,
            f->concurrency, (unsigned long long)f->items, (unsigned long long)f->errors, f->seconds,
            f->items_per_s, f->p50_us, f->p90_us, f->p99_us, f->p999_us, f->mean_us, f->max_us,
            (unsigned long long)f->batches, f->mean_batch, (unsigned long long)f->closed_full,
            (unsigned long long)f->closed_timer, (unsigned long long)f->closed_drained,
            f->first_wait_us, f->compute_us, f->cpu_coordinator_s, f->cpu_workers_s);
}

void
mpb__bench_json_rows(FILE *out, const bench_plan *plan, const bench_row *row)
{
    const bench_figures *f = &row->fig;
    const bench_baselines *b = &row->base;
    int any = 0;
    if (b->bare_items_per_s > 0) {
        json_common(out, plan, row);
        fprintf(out, ", \"baseline\": \"bare\", \"baseline_items_per_s\": %.1f, \"ratio\": %.4f}\n",
                b->bare_items_per_s, ratio(f->items_per_s, b->bare_items_per_s));
        any = 1;
    }
    if (b->raw_items_per_s > 0) {
        json_common(out, plan, row);
        fprintf(out, ", \"baseline\": \"raw\", \"baseline_items_per_s\": %.1f, \"ratio\": %.4f}\n",
                b->raw_items_per_s, ratio(f->items_per_s, b->raw_items_per_s));
        any = 1;
    }
    if (b->rtt_p50_us > 0) {
        /* a latency baseline: the ratio is of p50s; items/s of serial trips */
        json_common(out, plan, row);
        fprintf(out,
                ", \"baseline\": \"rtt\", \"baseline_items_per_s\": %.1f, \"baseline_p50_us\": "
                "%.1f, \"baseline_p99_us\": %.1f, \"ratio\": %.4f}\n",
                1e6 / b->rtt_p50_us, b->rtt_p50_us, b->rtt_p99_us, ratio(f->p50_us, b->rtt_p50_us));
        any = 1;
    }
    if (!any) {
        json_common(out, plan, row);
        fprintf(out, ", \"baseline\": null, \"baseline_items_per_s\": null, \"ratio\": null}\n");
    }
}

/* ",value" in format, or "," alone when its baseline was not measured. */
static void
csv_measured(FILE *out, double value, double baseline, const char *format)
{
    fputc(',', out);
    if (baseline > 0) {
        fprintf(out, format, value);
    }
}

int
mpb__bench_write_csv(const char *path, const bench_plan *plan, const bench_row *rows, size_t n)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        return -1;
    }
    fprintf(out, "model,kind,workers,batch_size,wait_us,load,load_kind,offered_per_s,concurrency,"
                 "items,errors,seconds,items_per_s,p50_us,p90_us,p99_us,p999_us,mean_us,max_us,"
                 "batches,mean_batch,closed_full,closed_timer,closed_drained,first_wait_us,"
                 "compute_us,cpu_coordinator_s,cpu_workers_s,bare_items_per_s,raw_items_per_s,"
                 "rtt_p50_us,rtt_p99_us,ratio_bare,ratio_raw,ratio_rtt\n");
    for (size_t i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        const bench_figures *f = &r->fig;
        const bench_baselines *b = &r->base;
        char wait[24];
        wait_text(r->point.wait_us, wait, sizeof wait);
        fprintf(out,
                "%s,%s,%lld,%lld,%s,%s,%s,%.1f,%.0f,%llu,%llu,%.3f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,"
                "%.1f,%llu,%.2f,%llu,%llu,%llu,%.1f,%.1f,%.3f,%.3f",
                plan->model, r->point.kind, r->point.workers, r->point.batch_size, wait,
                r->load_text, r->point.load.kind == LOAD_CLOSED ? "closed" : "open",
                f->offered_per_s, f->concurrency, (unsigned long long)f->items,
                (unsigned long long)f->errors, f->seconds, f->items_per_s, f->p50_us, f->p90_us,
                f->p99_us, f->p999_us, f->mean_us, f->max_us, (unsigned long long)f->batches,
                f->mean_batch, (unsigned long long)f->closed_full,
                (unsigned long long)f->closed_timer, (unsigned long long)f->closed_drained,
                f->first_wait_us, f->compute_us, f->cpu_coordinator_s, f->cpu_workers_s);
        /* baselines never measured (trees, --no-baselines) are empty cells */
        csv_measured(out, b->bare_items_per_s, b->bare_items_per_s, "%.1f");
        csv_measured(out, b->raw_items_per_s, b->raw_items_per_s, "%.1f");
        csv_measured(out, b->rtt_p50_us, b->rtt_p50_us, "%.1f");
        csv_measured(out, b->rtt_p99_us, b->rtt_p99_us, "%.1f");
        csv_measured(out, ratio(f->items_per_s, b->bare_items_per_s), b->bare_items_per_s, "%.4f");
        csv_measured(out, ratio(f->items_per_s, b->raw_items_per_s), b->raw_items_per_s, "%.4f");
        csv_measured(out, ratio(f->p50_us, b->rtt_p50_us), b->rtt_p50_us, "%.4f");
        fputc('\n', out);
    }
    return fclose(out) == 0 ? 0 : -1;
}

const bench_row *
mpb__bench_recommend(const bench_row *rows, size_t n, double p99_ms)
{
    const bench_row *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const bench_figures *f = &rows[i].fig;
        if (f->errors == 0 && f->items > 0 && f->p99_us <= p99_ms * 1e3 &&
            (best == NULL || f->items_per_s > best->fig.items_per_s)) {
            best = &rows[i];
        }
    }
    return best;
}

void
mpb__bench_print_recommendation(FILE *out, const bench_plan *plan, const bench_row *row,
                                double p99_ms)
{
    if (row == NULL) {
        fprintf(out, "# mpb bench --recommend: no configuration kept p99 within %.3g ms\n", p99_ms);
        return;
    }
    char wait[24];
    wait_text(row->point.wait_us, wait, sizeof wait);
    fprintf(out,
            "# mpb bench --recommend: %.0f items/s with p99 %.3f ms (budget %.3g ms) under "
            "load %s\n",
            row->fig.items_per_s, row->fig.p99_us / 1e3, p99_ms, row->load_text);
    if (plan->plugin == NULL) {
        fprintf(out,
                "# set in every pool of the tree: kind: %s, workers: %lld, batch_size: %lld, "
                "batch_wait_us: %s\n",
                row->point.kind, row->point.workers, row->point.batch_size, wait);
        return;
    }
    fprintf(out, "servlet:\n  plugin: %s\n  kind: %s\n  workers: %lld\n  batch_size: %lld\n",
            plan->plugin, row->point.kind, row->point.workers, row->point.batch_size);
    fprintf(out, "  batch_wait_us: %s\n", wait);
    if (plan->plugin_options != NULL && plan->plugin_options[0] != NULL) {
        fprintf(out, "  options:\n");
        for (size_t i = 0; plan->plugin_options[i] != NULL; i++) {
            const char *eq = strchr(plan->plugin_options[i], '=');
            fprintf(out, "    %.*s: %s\n", (int)(eq - plan->plugin_options[i]),
                    plan->plugin_options[i], eq + 1);
        }
    }
}
