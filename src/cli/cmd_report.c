/* cmd_report.c - `tunic report`: before/after delta report of two eval results files, with
 * training-curve plots from metrics.jsonl files (tn_report_run, src/eval/report.c).
 * --metrics may be repeated and may hold a comma-separated list. */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "eval/report.h"

int tn_cmd_report(int argc, char **argv) {
  tn_report_opts o;
  tn_report_opts_default(&o);
  const char *metrics_last = NULL, *evals_last = NULL, *labels_last = NULL;
  bool no_plots = false, force = false;
  tn_flag flags[] = {
    {"before", 's', &o.before, "results JSONL of the model before (tunic eval --out)"},
    {"after", 's', &o.after, "results JSONL of the model after"},
    {"evals", 's', &evals_last, "more than two results JSONL to compare, in order (a,b,c or repeated): replaces --before/--after"},
    {"labels", 's', &labels_last, "names of the --evals files (a,b,c; default: the file names)"},
    {"metrics", 's', &metrics_last, "metrics.jsonl of a training run to plot (repeatable, or a,b,c)"},
    {"out", 's', &o.out_dir, "output directory (report.md, report.json, plots/)"},
    {"title", 's', &o.title, "first heading of report.md (default: 'tunic report')"},
    {"max-flips", 'i', &o.max_flips, "flipped examples listed per direction"},
    {"excerpt-chars", 'i', &o.excerpt_chars, "bytes of each completion excerpt"},
    {"gnuplot", 's', &o.gnuplot, "gnuplot program (default: $TN_GNUPLOT, else gnuplot on PATH)"},
    {"no-plots", 'b', &no_plots, "ignore --metrics (no gnuplot needed)"},
    {"force", 'b', &force, "write into --out even when it holds other files"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0],
                       "--before A.jsonl --after B.jsonl [--metrics run/metrics.jsonl ...] --out DIR | --evals A,B,C[,...] [--labels a,b,c] --out DIR");
  if (r) return r > 0 ? 0 : 2;
  if (evals_last) {
    if (o.before || o.after || !o.out_dir) {
      fprintf(stderr, "tunic report: --evals replaces --before/--after; --out is required\n");
      return 2;
    }
    static const char *const own_m[] = {"report.md", "report.json", NULL};
    tn_status os = tn_cli_out_dir("out", o.out_dir, own_m, force);
    if (os != TN_OK) return tn_cli_fail("report", os);
    char **ev = NULL, **lb = NULL;
    int ne = tn_cli_collect(argc, argv, "evals", &ev), nl = labels_last ? tn_cli_collect(argc, argv, "labels", &lb) : 0;
    tn_status s = TN_OK;
    if (nl && nl != ne) s = tn_error(TN_ERR_ARG, "--labels has %d names for %d --evals files", nl, ne);
    if (s == TN_OK)
      s = tn_report_multi_run((const char *const *)ev, (const char *const *)(nl ? lb : ev), ne, o.out_dir, o.title,
                              o.max_flips, stdout);
    for (int i = 0; i < ne; i++) free(ev[i]);
    for (int i = 0; i < nl; i++) free(lb[i]);
    free(ev);
    free(lb);
    return s == TN_OK ? 0 : tn_cli_fail("report", s);
  }
  if (!o.before || !o.after || !o.out_dir) {
    fprintf(stderr, "tunic report: --before, --after and --out are required\n");
    return 2;
  }
  static const char *const own[] = {"report.md", "report.json", "plots", NULL};
  tn_status os = tn_cli_out_dir("out", o.out_dir, own, force);
  if (os != TN_OK) return tn_cli_fail("report", os);
  char **metrics = NULL;
  int nm = tn_cli_collect(argc, argv, "metrics", &metrics);
  if (nm < 0) return tn_cli_fail("report", TN_ERR_NOMEM);
  o.metrics = (const char *const *)metrics;
  o.n_metrics = no_plots ? 0 : nm;
  tn_status s = tn_report_run(&o, stdout);
  int rc = s == TN_OK ? 0 : tn_cli_fail("report", s);
  for (int i = 0; i < nm; i++) free(metrics[i]);
  free(metrics);
  return rc;
}
