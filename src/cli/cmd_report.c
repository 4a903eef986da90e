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
  const char *metrics_last = NULL;
  bool no_plots = false, force = false;
  tn_flag flags[] = {
    {"before", 's', &o.before, "results JSONL of the model before (tunic eval --out)"},
    {"after", 's', &o.after, "results JSONL of the model after"},
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
                       "--before A.jsonl --after B.jsonl [--metrics run/metrics.jsonl ...] --out DIR");
  if (r) return r > 0 ? 0 : 2;
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
