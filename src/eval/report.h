/* report.h - `tunic report`: the before/after delta report of two eval results files
 * (Markdown: scores with Wilson intervals, per-category changes, McNemar test, paired
 * bootstrap of the delta, flipped examples with excerpts of their completions) plus PNG
 * plots of training curves from metrics.jsonl files, drawn by gnuplot run as a child process.
 * The statistics themselves are in eval.h (report_stats.c). Not for: running the model. */
#ifndef TN_REPORT_H
#define TN_REPORT_H
#include <stdbool.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include "base/base.h"
#include "eval/eval.h"

typedef struct {
  const char *before, *after;    /* results JSONL of `tunic eval` (or any file tn_results_load reads) */
  const char *const *metrics;    /* metrics.jsonl files to plot (may be none) */
  int n_metrics;
  const char *out_dir;           /* report.md, report.json, plots/ */
  const char *gnuplot;           /* program (NULL: $TN_GNUPLOT, else "gnuplot" on PATH) */
  int max_flips;                 /* flipped examples listed per direction (default 20) */
  int excerpt_chars;             /* completion excerpt length in bytes (default 160) */
  const char *title;             /* first heading (NULL: "tunic report") */
} tn_report_opts;

void tn_report_opts_default(tn_report_opts *o);

/* Groups of metric keys that get a plot each, matched on the lower-cased key:
 * reward ("reward"), accuracy ("acc"), kl (a word "kl"), loss ("loss"). */
enum { TN_PLOT_REWARD = 0, TN_PLOT_ACCURACY, TN_PLOT_KL, TN_PLOT_LOSS, TN_PLOT_NGROUPS };
const char *tn_plot_group_name(int g);
/* The group a metric key is plotted in, -1 for none (step and time-like keys, others). */
int tn_plot_group_of(const char *key);

/* Write OUT_DIR/report.md, OUT_DIR/report.json and the PNGs under OUT_DIR/plots. A one-paragraph
 * summary goes to PRINT (may be NULL). Errors name the file at fault; a missing gnuplot
 * (only needed with metrics files) is an error that says which package to install. */
/* a string or number JSON value as a new string (ids may be either); NULL otherwise */
char *tn_json_scalar_dup(const cJSON *v);

tn_status tn_report_run(const tn_report_opts *o, FILE *print);

/* More than two evals (report_multi.c): N loaded results files with LABELS; to MD (may be NULL)
 * a Markdown table (accuracy, 95% Wilson interval, change and exact McNemar p against the
 * first and against the previous, paired by id) and the first -> last flips (at most MAX_FLIPS
 * each way); *JSON_OUT (may be NULL) gets the rows as a JSON array (caller deletes). */
tn_status tn_report_multi(const tn_results *rs, const char *const *labels, int n, int max_flips, FILE *md,
                          cJSON **json_out);
/* `tunic report --evals a,b,c`: load the files, write OUT_DIR/report.md and report.json, print
 * one line per eval to PRINT (may be NULL). */
tn_status tn_report_multi_run(const char *const *paths, const char *const *labels, int n, const char *out_dir,
                              const char *title, int max_flips, FILE *print);

#endif
