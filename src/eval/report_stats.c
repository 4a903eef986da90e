/* report_stats.c - the numbers of `tunic report`: load two per-example results JSONL
 * files, pair them by id, count flips (wrong->right, right->wrong), per-category and
 * per-error deltas, Wilson intervals, exact McNemar test, paired bootstrap of the
 * accuracy delta, and the Markdown tables of the delta report.
 * Not for: plots or the training-curve part of the report (cmd_report), generation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "eval/eval.h"
#include "eval/report.h"
#include "base/json.h"

/* ---- loading ---- */

/* a string or number field as a new string (ids may be either); NULL otherwise */
char *tn_json_scalar_dup(const cJSON *v) {
  if (cJSON_IsString(v)) return tn_strdup(v->valuestring);
  if (cJSON_IsNumber(v)) {
    char b[64];
    if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e15) snprintf(b, sizeof b, "%.0f", v->valuedouble);
    else snprintf(b, sizeof b, "%.17g", v->valuedouble);
    return tn_strdup(b);
  }
  return NULL;
}

static int truthy(const cJSON *v) {
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  if (cJSON_IsNumber(v)) return v->valuedouble != 0;
  return -1;
}

/* Simple string hash set over record ids: open addressing, indices into recs. */
typedef struct { int64_t *slot; int64_t cap; } id_index;

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static tn_status index_build(id_index *ix, const tn_results *r) {
  ix->cap = 16;
  while (ix->cap < 2 * r->n + 16) ix->cap *= 2;
  ix->slot = malloc(sizeof *ix->slot * ix->cap);
  if (!ix->slot) return tn_error(TN_ERR_NOMEM, "report: out of memory");
  for (int64_t i = 0; i < ix->cap; i++) ix->slot[i] = -1;
  for (int64_t i = 0; i < r->n; i++) {
    uint64_t h = fnv1a(r->recs[i].id) & (ix->cap - 1);
    while (ix->slot[h] >= 0) {
      if (!strcmp(r->recs[ix->slot[h]].id, r->recs[i].id)) {
        free(ix->slot);
        ix->slot = NULL;
        return tn_error(TN_ERR_FORMAT, "%s: duplicate id '%s' (record %lld)", r->path ? r->path : "results",
                        r->recs[i].id, (long long)i + 1);
      }
      h = (h + 1) & (ix->cap - 1);
    }
    ix->slot[h] = i;
  }
  return TN_OK;
}

static int64_t index_find(const id_index *ix, const tn_results *r, const char *id) {
  uint64_t h = fnv1a(id) & (ix->cap - 1);
  while (ix->slot[h] >= 0) {
    if (!strcmp(r->recs[ix->slot[h]].id, id)) return ix->slot[h];
    h = (h + 1) & (ix->cap - 1);
  }
  return -1;
}

void tn_results_free(tn_results *r) {
  for (int64_t i = 0; i < r->n; i++) {
    free(r->recs[i].id);
    free(r->recs[i].category);
    free(r->recs[i].extracted);
    free(r->recs[i].expected);
  }
  free(r->recs);
  free(r->path);
  memset(r, 0, sizeof *r);
}

tn_status tn_results_load(const char *path, tn_results *out) {
  memset(out, 0, sizeof *out);
  char *text = NULL;
  size_t len = 0;
  TN_TRY(tn_read_file(path, &text, &len));
  out->path = tn_strdup(path);
  int64_t cap = 0, line = 0;
  tn_status st = out->path ? TN_OK : tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  char *p = text;
  while (st == TN_OK && p && *p) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    line++;
    char *q = p;
    while (*q == ' ' || *q == '\t' || *q == '\r') q++;
    if (*q) {
      cJSON *o = cJSON_Parse(q);
      if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        st = tn_error(TN_ERR_FORMAT, "%s:%lld: not a JSON object", path, (long long)line);
        goto done;
      }
      char *id = tn_json_scalar_dup(tn_json_field(o, "id"));
      int corr = truthy(tn_json_field(o, "correct"));
      if (!id || corr < 0) {
        free(id);
        cJSON_Delete(o);
        st = tn_error(TN_ERR_FORMAT, "%s:%lld: missing or invalid '%s' (need \"id\" and boolean \"correct\")", path,
                      (long long)line, !id ? "id" : "correct");
        goto done;
      }
      if (out->n == cap) {
        cap = cap ? 2 * cap : 256;
        tn_result_rec *nr = realloc(out->recs, sizeof *nr * cap);
        if (!nr) { free(id); cJSON_Delete(o); st = tn_error(TN_ERR_NOMEM, "%s: out of memory", path); goto done; }
        out->recs = nr;
      }
      tn_result_rec *r = &out->recs[out->n++];
      memset(r, 0, sizeof *r);
      r->id = id;
      r->correct = corr;
      const cJSON *cat = tn_json_field(o, "category");
      r->category = tn_json_scalar_dup(cat);
      if (!r->category) r->category = tn_strdup("");
      if (!r->category) { cJSON_Delete(o); st = tn_error(TN_ERR_NOMEM, "%s: out of memory", path); goto done; }
      int pa = truthy(tn_json_field(o, "partial"));
      r->partial = pa < 0 ? r->correct : pa;
      int fo = truthy(tn_json_field(o, "format_ok"));
      r->format_ok = fo > 0;
      const cJSON *er = tn_json_field(o, "error");
      r->error = cJSON_IsString(er) ? tn_error_cat_parse(er->valuestring) : -1;
      if (r->error < 0 && r->correct) r->error = TN_ECAT_CORRECT;
      r->extracted = tn_json_scalar_dup(tn_json_field(o, "extracted"));
      const cJSON *ex = tn_json_field(o, "expected_answer");
      if (!ex) ex = tn_json_field(o, "answer");
      r->expected = tn_json_scalar_dup(ex);
      cJSON_Delete(o);
    }
    p = nl ? nl + 1 : NULL;
  }
  {
    id_index ix;
    st = index_build(&ix, out); /* rejects duplicate ids */
    if (st == TN_OK) free(ix.slot);
  }
done:
  free(text);
  if (st != TN_OK) tn_results_free(out);
  return st;
}

/* ---- statistics ---- */

void tn_wilson_interval(int64_t k, int64_t n, double z, double *lo, double *hi) {
  if (n <= 0) { *lo = 0; *hi = 1; return; }
  double p = (double)k / n, z2 = z * z, nn = (double)n;
  double den = 1 + z2 / nn;
  double center = (p + z2 / (2 * nn)) / den;
  double half = z * sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / den;
  *lo = fmax(0.0, center - half);
  *hi = fmin(1.0, center + half);
}

double tn_mcnemar_exact_p(int64_t b, int64_t c) {
  int64_t n = b + c;
  if (n == 0) return 1.0;
  int64_t m = b < c ? b : c;
  double lnn = lgamma((double)n + 1), ln2n = (double)n * log(2.0), sum = 0;
  for (int64_t i = 0; i <= m; i++)
    sum += exp(lnn - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) - ln2n);
  return fmin(1.0, 2 * sum);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Percentile with linear interpolation between order statistics (numpy's default). */
static double percentile(const double *sorted, int n, double q) {
  double pos = q * (n - 1);
  int i = (int)floor(pos);
  if (i >= n - 1) return sorted[n - 1];
  double f = pos - i;
  return sorted[i] * (1 - f) + sorted[i + 1] * f;
}

void tn_paired_bootstrap(const uint8_t *before, const uint8_t *after, int64_t n, int reps,
                         uint64_t seed, double level, double *lo, double *hi) {
  if (n <= 0 || reps <= 0) { *lo = *hi = 0; return; }
  double *d = malloc(sizeof *d * reps);
  if (!d) { *lo = *hi = NAN; return; }
  tn_rng rng;
  tn_rng_seed(&rng, seed);
  for (int r = 0; r < reps; r++) {
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++) {
      uint64_t j = (uint64_t)(((unsigned __int128)tn_rng_u64(&rng) * (uint64_t)n) >> 64);
      s += (int)after[j] - (int)before[j];
    }
    d[r] = (double)s / n;
  }
  qsort(d, reps, sizeof *d, cmp_double);
  *lo = percentile(d, reps, (1 - level) / 2);
  *hi = percentile(d, reps, 1 - (1 - level) / 2);
  free(d);
}

/* ---- comparison ---- */

void tn_report_free(tn_report *r) {
  free(r->cats);
  free(r->improved);
  free(r->regressed);
  memset(r, 0, sizeof *r);
}

tn_status tn_report_compare(const tn_results *before, const tn_results *after, tn_report *out) {
  memset(out, 0, sizeof *out);
  id_index ix;
  TN_TRY(index_build(&ix, after));
  int64_t nb = before->n;
  uint8_t *cb = malloc(nb + 1), *ca = malloc(nb + 1);
  out->improved = malloc(sizeof(int64_t) * (nb + 1));
  out->regressed = malloc(sizeof(int64_t) * (nb + 1));
  out->cats = calloc(nb + 1, sizeof *out->cats);
  if (!cb || !ca || !out->improved || !out->regressed || !out->cats) {
    free(cb); free(ca); free(ix.slot); tn_report_free(out);
    return tn_error(TN_ERR_NOMEM, "report: out of memory");
  }
  int64_t fb = 0, fa = 0, pb = 0, pa = 0, nimp = 0, nreg = 0;
  for (int64_t i = 0; i < nb; i++) {
    const tn_result_rec *x = &before->recs[i];
    int64_t j = index_find(&ix, after, x->id);
    if (j < 0) { out->only_before++; continue; }
    const tn_result_rec *y = &after->recs[j];
    int64_t k = out->n_paired++;
    cb[k] = x->correct;
    ca[k] = y->correct;
    out->correct_before += x->correct;
    out->correct_after += y->correct;
    fb += x->format_ok; fa += y->format_ok;
    pb += x->partial; pa += y->partial;
    if (x->error >= 0 && x->error < TN_ECAT_COUNT) out->errors_before[x->error]++;
    if (y->error >= 0 && y->error < TN_ECAT_COUNT) out->errors_after[y->error]++;
    if (x->correct && !y->correct) { out->b++; out->regressed[nreg++] = i; }
    if (!x->correct && y->correct) { out->c++; out->improved[nimp++] = i; }
    if (x->category && x->category[0]) {
      tn_report_cat *c = NULL;
      for (int q = 0; q < out->ncats; q++)
        if (!strncmp(out->cats[q].name, x->category, sizeof c->name - 1)) c = &out->cats[q];
      if (!c) {
        c = &out->cats[out->ncats++];
        snprintf(c->name, sizeof c->name, "%s", x->category);
      }
      c->n++;
      c->correct_before += x->correct;
      c->correct_after += y->correct;
    }
  }
  out->only_after = after->n - out->n_paired;
  int64_t n = out->n_paired;
  double dn = n ? (double)n : 1.0;
  out->acc_before = out->correct_before / dn;
  out->acc_after = out->correct_after / dn;
  out->delta = out->acc_after - out->acc_before;
  out->format_before = fb / dn;
  out->format_after = fa / dn;
  out->partial_before = pb / dn;
  out->partial_after = pa / dn;
  tn_wilson_interval(out->correct_before, n, 1.959963984540054, &out->wilson_before[0], &out->wilson_before[1]);
  tn_wilson_interval(out->correct_after, n, 1.959963984540054, &out->wilson_after[0], &out->wilson_after[1]);
  tn_paired_bootstrap(cb, ca, n, 2000, 1234, 0.95, &out->boot_delta[0], &out->boot_delta[1]);
  out->mcnemar_p = tn_mcnemar_exact_p(out->b, out->c);
  for (int q = 0; q < out->ncats; q++) {
    tn_report_cat *c = &out->cats[q];
    c->acc_before = (double)c->correct_before / c->n;
    c->acc_after = (double)c->correct_after / c->n;
    c->delta = c->acc_after - c->acc_before;
  }
  free(cb);
  free(ca);
  free(ix.slot);
  return TN_OK;
}

/* ---- Markdown ---- */

static void md_cell(FILE *f, const char *s, size_t max) {
  if (!s) { fputs("-", f); return; }
  size_t i = 0;
  for (; s[i] && i < max; i++) {
    char c = s[i];
    if (c == '|') fputs("\\|", f);
    else if (c == '\n' || c == '\r') fputc(' ', f);
    else fputc(c, f);
  }
  if (s[i]) fputs("...", f);
}

static void md_flips(FILE *f, const char *title, const int64_t *idx, int64_t n, const tn_results *before,
                     const tn_results *after, int max_flips) {
  fprintf(f, "\n### %s (%lld)\n\n", title, (long long)n);
  if (!n) { fprintf(f, "none\n"); return; }
  fprintf(f, "| id | category | expected | before | after |\n|---|---|---|---|---|\n");
  id_index ix;
  if (index_build(&ix, after) != TN_OK) return;
  for (int64_t k = 0; k < n && k < max_flips; k++) {
    const tn_result_rec *x = &before->recs[idx[k]];
    int64_t j = index_find(&ix, after, x->id);
    const tn_result_rec *y = j >= 0 ? &after->recs[j] : NULL;
    fputs("| ", f); md_cell(f, x->id, 40);
    fputs(" | ", f); md_cell(f, x->category, 40);
    fputs(" | ", f); md_cell(f, x->expected, 40);
    fputs(" | ", f); md_cell(f, x->extracted, 40);
    fputs(" | ", f); md_cell(f, y ? y->extracted : NULL, 40);
    fputs(" |\n", f);
  }
  if (n > max_flips) fprintf(f, "\n(%lld more not shown)\n", (long long)(n - max_flips));
  free(ix.slot);
}

void tn_report_write_markdown(const tn_report *r, const tn_results *before, const tn_results *after,
                              int max_flips, FILE *f) {
  fprintf(f, "## Scores\n\n%lld paired examples", (long long)r->n_paired);
  if (r->only_before || r->only_after)
    fprintf(f, " (%lld only in before, %lld only in after: ignored)", (long long)r->only_before, (long long)r->only_after);
  fprintf(f, ".\n\n| metric | before | after | delta |\n|---|---|---|---|\n");
  fprintf(f, "| accuracy | %.2f%% [%.2f, %.2f] | %.2f%% [%.2f, %.2f] | %+.2f pp [%+.2f, %+.2f] |\n", 100 * r->acc_before,
          100 * r->wilson_before[0], 100 * r->wilson_before[1], 100 * r->acc_after, 100 * r->wilson_after[0],
          100 * r->wilson_after[1], 100 * r->delta, 100 * r->boot_delta[0], 100 * r->boot_delta[1]);
  fprintf(f, "| partial accuracy | %.2f%% | %.2f%% | %+.2f pp |\n", 100 * r->partial_before, 100 * r->partial_after,
          100 * (r->partial_after - r->partial_before));
  fprintf(f, "| format compliance | %.2f%% | %.2f%% | %+.2f pp |\n", 100 * r->format_before, 100 * r->format_after,
          100 * (r->format_after - r->format_before));
  fprintf(f, "\nIntervals: 95%% Wilson score intervals for each accuracy, 95%% paired bootstrap (2000 resamples) "
             "for the delta.\n\n## Statistical summary\n\n");
  fprintf(f, "- wrong -> right: %lld, right -> wrong: %lld\n", (long long)r->c, (long long)r->b);
  fprintf(f, "- exact McNemar test (two-sided) on the discordant pairs: p = %.4g%s\n", r->mcnemar_p,
          r->mcnemar_p < 0.05 ? " (significant at 5%)" : " (not significant at 5%)");
  if (r->ncats) {
    fprintf(f, "\n## Per category\n\n| category | n | before | after | delta |\n|---|---|---|---|---|\n");
    for (int q = 0; q < r->ncats; q++)
      fprintf(f, "| %s | %lld | %.2f%% | %.2f%% | %+.2f pp |\n", r->cats[q].name, (long long)r->cats[q].n,
              100 * r->cats[q].acc_before, 100 * r->cats[q].acc_after, 100 * r->cats[q].delta);
  }
  fprintf(f, "\n## Error categories\n\n| category | before | after | delta |\n|---|---|---|---|\n");
  for (int e = 0; e < TN_ECAT_COUNT; e++)
    fprintf(f, "| %s | %lld | %lld | %+lld |\n", tn_error_cat_name((tn_error_cat)e), (long long)r->errors_before[e],
            (long long)r->errors_after[e], (long long)(r->errors_after[e] - r->errors_before[e]));
  fprintf(f, "\n## Flipped examples\n");
  md_flips(f, "Wrong -> right", r->improved, r->c, before, after, max_flips);
  md_flips(f, "Right -> wrong", r->regressed, r->b, before, after, max_flips);
}
