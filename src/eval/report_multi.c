/* report_multi.c - the comparison of more than two eval results files (before, after round
 * 1, round 2, ...): one row per file with accuracy, its 95% Wilson interval, the change
 * against the first and the previous file and the exact McNemar p of each (paired by id),
 * then the flipped examples of the first against the last. Used by `tunic report --evals`
 * and by the improve loop's report. Not for: the two-file report's plots (report.c). */
#define _GNU_SOURCE /* open_memstream */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "eval/report.h"

static double acc_of(const tn_results *r) {
  int64_t c = 0;
  for (int64_t i = 0; i < r->n; i++) c += r->recs[i].correct;
  return r->n ? (double)c / r->n : 0.0;
}

tn_status tn_report_multi(const tn_results *rs, const char *const *labels, int n, int max_flips, FILE *md,
                          cJSON **json_out) {
  if (n < 2) return tn_error(TN_ERR_ARG, "report: at least two results files to compare");
  cJSON *arr = cJSON_CreateArray();
  if (md) {
    fprintf(md, "## Accuracy per eval\n\n| eval | n | accuracy | 95%% Wilson | vs %s | McNemar p | vs previous | McNemar p |\n"
                "|---|---|---|---|---|---|---|---|\n", labels[0]);
  }
  tn_status s = TN_OK;
  for (int i = 0; i < n && s == TN_OK; i++) {
    int64_t k = 0;
    for (int64_t q = 0; q < rs[i].n; q++) k += rs[i].recs[q].correct;
    double lo, hi, acc = acc_of(&rs[i]);
    tn_wilson_interval(k, rs[i].n, 1.959963984540054, &lo, &hi);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "label", labels[i]);
    cJSON_AddStringToObject(o, "path", rs[i].path ? rs[i].path : "");
    cJSON_AddNumberToObject(o, "n", (double)rs[i].n);
    cJSON_AddNumberToObject(o, "accuracy", acc);
    cJSON_AddNumberToObject(o, "wilson_lo", lo);
    cJSON_AddNumberToObject(o, "wilson_hi", hi);
    char vs0[64] = "", p0[32] = "", vsp[64] = "", pp[32] = "";
    for (int ref = 0; ref < 2 && i > 0; ref++) {
      int j = ref == 0 ? 0 : i - 1;
      if (ref == 1 && j == 0) break; /* the previous is the first: same numbers */
      tn_report r;
      s = tn_report_compare(&rs[j], &rs[i], &r);
      if (s != TN_OK) break;
      cJSON *c = cJSON_AddObjectToObject(o, ref == 0 ? "vs_first" : "vs_previous");
      cJSON_AddNumberToObject(c, "delta", r.delta);
      cJSON_AddNumberToObject(c, "wrong_to_right", (double)r.c);
      cJSON_AddNumberToObject(c, "right_to_wrong", (double)r.b);
      cJSON_AddNumberToObject(c, "mcnemar_p", r.mcnemar_p);
      snprintf(ref == 0 ? vs0 : vsp, 64, "%+.2f pp (+%lld/-%lld)", 100 * r.delta, (long long)r.c, (long long)r.b);
      snprintf(ref == 0 ? p0 : pp, 32, "%.3g", r.mcnemar_p);
      tn_report_free(&r);
    }
    cJSON_AddItemToArray(arr, o);
    if (md && s == TN_OK)
      fprintf(md, "| %s | %lld | %.2f%% | [%.2f, %.2f] | %s | %s | %s | %s |\n", labels[i], (long long)rs[i].n, 100 * acc,
              100 * lo, 100 * hi, i ? vs0 : "-", i ? p0 : "-", i > 1 ? vsp : "-", i > 1 ? pp : "-");
  }
  if (s == TN_OK && md) {
    tn_report r;
    s = tn_report_compare(&rs[0], &rs[n - 1], &r);
    if (s == TN_OK) {
      fprintf(md, "\nPaired by id; McNemar: exact two-sided test on the discordant pairs.\n\n# %s -> %s\n\n", labels[0],
              labels[n - 1]);
      tn_report_write_markdown(&r, &rs[0], &rs[n - 1], max_flips, md);
      tn_report_free(&r);
    }
  }
  if (s == TN_OK && json_out) *json_out = arr;
  else cJSON_Delete(arr);
  return s;
}

tn_status tn_report_multi_run(const char *const *paths, const char *const *labels, int n, const char *out_dir,
                              const char *title, int max_flips, FILE *print) {
  if (n < 2) return tn_error(TN_ERR_ARG, "report: --evals needs at least two results files");
  tn_results *rs = calloc((size_t)n, sizeof *rs);
  if (!rs) return tn_error(TN_ERR_NOMEM, "out of memory");
  tn_status s = TN_OK;
  int loaded = 0;
  for (int i = 0; i < n && s == TN_OK; i++)
    if ((s = tn_results_load(paths[i], &rs[i])) == TN_OK) loaded++;
  char *md = NULL, *js = NULL;
  size_t mdlen = 0;
  cJSON *rows = NULL;
  FILE *f = s == TN_OK ? open_memstream(&md, &mdlen) : NULL;
  if (s == TN_OK && !f) s = tn_error(TN_ERR_NOMEM, "out of memory");
  if (s == TN_OK) {
    fprintf(f, "# %s\n\n", title ? title : "tunic report");
    s = tn_report_multi(rs, labels, n, max_flips, f, &rows);
  }
  if (f) fclose(f);
  if (s == TN_OK) s = tn_mkdirs(out_dir);
  char *mp = tn_path_join(out_dir, "report.md"), *jp = tn_path_join(out_dir, "report.json");
  if (s == TN_OK && (!mp || !jp)) s = tn_error(TN_ERR_NOMEM, "out of memory");
  if (s == TN_OK) s = tn_write_file_atomic(mp, md, mdlen);
  if (s == TN_OK) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "evals", rows);
    rows = NULL;
    js = cJSON_Print(o);
    cJSON_Delete(o);
    s = js ? tn_write_file_atomic(jp, js, strlen(js)) : tn_error(TN_ERR_NOMEM, "out of memory");
  }
  if (s == TN_OK && print) {
    for (int i = 0; i < n; i++) {
      int64_t c = 0;
      for (int64_t q = 0; q < rs[i].n; q++) c += rs[i].recs[q].correct;
      fprintf(print, "%-24s n %6lld  accuracy %6.2f%%\n", labels[i], (long long)rs[i].n, rs[i].n ? 100.0 * c / rs[i].n : 0.0);
    }
    fprintf(print, "report: %s\n", mp);
  }
  cJSON_Delete(rows);
  free(js);
  free(md);
  free(mp);
  free(jp);
  for (int i = 0; i < loaded; i++) tn_results_free(&rs[i]);
  free(rs);
  return s;
}
