/* report.c - `tunic report` (see report.h): report.md (the delta tables of report_stats.c,
 * excerpts of the flipped examples' completions, training curves), report.json (the numbers)
 * and PNG plots written by gnuplot from a .gp script and a data file per plot.
 * Not for: the statistics (report_stats.c) or generation (run_eval.c). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "eval/report.h"
#include "obs/obs.h"
#include "base/json.h"

extern char **environ;

void tn_report_opts_default(tn_report_opts *o) {
  memset(o, 0, sizeof *o);
  o->max_flips = 20;
  o->excerpt_chars = 160;
}

static const char *group_names[TN_PLOT_NGROUPS] = {"reward", "accuracy", "kl", "loss"};
const char *tn_plot_group_name(int g) { return g >= 0 && g < TN_PLOT_NGROUPS ? group_names[g] : "?"; }

int tn_plot_group_of(const char *key) {
  char w[128];
  int found[TN_PLOT_NGROUPS] = {0};
  for (const char *p = key; *p;) {
    while (*p && !isalnum((unsigned char)*p)) p++;
    size_t n = 0;
    while (*p && isalnum((unsigned char)*p)) {
      if (n + 1 < sizeof w) w[n++] = (char)tolower((unsigned char)*p);
      p++;
    }
    w[n] = 0;
    if (!n) continue;
    if (!strncmp(w, "reward", 6)) found[TN_PLOT_REWARD] = 1;
    if (!strcmp(w, "acc") || !strncmp(w, "accuracy", 8)) found[TN_PLOT_ACCURACY] = 1;
    if (!strcmp(w, "kl")) found[TN_PLOT_KL] = 1;
    if (strstr(w, "loss")) found[TN_PLOT_LOSS] = 1;
  }
  for (int g = 0; g < TN_PLOT_NGROUPS; g++)
    if (found[g]) return g;
  return -1;
}

/* ---------------- metrics.jsonl ---------------- */

typedef struct {
  char *key;
  double *x, *y;  // (n) step, value
  int n, cap;
} series;

typedef struct {
  const char *path;
  series *s;
  int n, cap;
  int64_t lines;
  double step_min, step_max;
  char tag[64];   /* file-name prefix of its plots */
} metrics_data;

static void metrics_free(metrics_data *m) {
  for (int i = 0; i < m->n; i++) { free(m->s[i].key); free(m->s[i].x); free(m->s[i].y); }
  free(m->s);
  m->s = NULL;
  m->n = m->cap = 0;
}

static tn_status series_add(metrics_data *m, const char *key, double x, double y) {
  series *s = NULL;
  for (int i = 0; i < m->n && !s; i++)
    if (!strcmp(m->s[i].key, key)) s = &m->s[i];
  if (!s) {
    if (m->n == m->cap) {
      int cap = m->cap ? 2 * m->cap : 16;
      series *ns = realloc(m->s, sizeof *ns * cap);
      if (!ns) return tn_error(TN_ERR_NOMEM, "report: out of memory");
      m->s = ns;
      m->cap = cap;
    }
    s = &m->s[m->n++];
    memset(s, 0, sizeof *s);
    s->key = tn_strdup(key);
    if (!s->key) { m->n--; return tn_error(TN_ERR_NOMEM, "report: out of memory"); }
  }
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    double *nx = realloc(s->x, sizeof *nx * cap), *ny = nx ? realloc(s->y, sizeof *ny * cap) : NULL;
    if (nx) s->x = nx;
    if (!nx || !ny) return tn_error(TN_ERR_NOMEM, "report: out of memory");
    s->y = ny;
    s->cap = cap;
  }
  s->x[s->n] = x;
  s->y[s->n++] = y;
  return TN_OK;
}

/* Every numeric field of every line, against the line's "step" (else its line number). */
static tn_status metrics_load(metrics_data *m, const char *path) {
  memset(m, 0, sizeof *m);
  m->path = path;
  char *text;
  size_t len;
  TN_TRY(tn_read_file(path, &text, &len));
  tn_status s = TN_OK;
  int64_t line = 0;
  m->step_min = INFINITY;
  m->step_max = -INFINITY;
  for (char *p = text; p && *p && s == TN_OK;) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    line++;
    char *q = p;
    p = nl ? nl + 1 : NULL;
    while (*q == ' ' || *q == '\t' || *q == '\r') q++;
    if (!*q) continue;
    cJSON *o = cJSON_Parse(q);
    if (!cJSON_IsObject(o)) {
      cJSON_Delete(o);
      if (!nl) { tn_warn("%s:%lld: incomplete last line ignored", path, (long long)line); break; }
      s = tn_error(TN_ERR_FORMAT, "%s:%lld: not a JSON object", path, (long long)line);
      break;
    }
    m->lines++;
    const cJSON *st = tn_json_field(o, "step"), *it;
    double x = cJSON_IsNumber(st) ? st->valuedouble : (double)m->lines;
    m->step_min = fmin(m->step_min, x);
    m->step_max = fmax(m->step_max, x);
    cJSON_ArrayForEach(it, o) {
      if (!cJSON_IsNumber(it) || !it->string || !strcmp(it->string, "step") || !isfinite(it->valuedouble)) continue;
      s = series_add(m, it->string, x, it->valuedouble);
      if (s != TN_OK) break;
    }
    cJSON_Delete(o);
  }
  free(text);
  if (s == TN_OK && m->lines == 0) s = tn_error(TN_ERR_FORMAT, "%s: no metrics lines", path);
  if (s != TN_OK) metrics_free(m);
  return s;
}

/* ---------------- gnuplot ---------------- */

/* A gnuplot single-quoted string: ' doubled. */
static void gp_str(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputc('\'', f);
    if (*s != '\n' && *s != '\r') fputc(*s, f);
  }
  fputc('\'', f);
}

static void sanitize_tag(char *dst, size_t n, const char *src) {
  size_t k = 0;
  for (; *src && k + 1 < n; src++) dst[k++] = isalnum((unsigned char)*src) || *src == '-' ? *src : '_';
  dst[k] = 0;
}

/* Plot tag of a metrics file: its directory's name ("runs/grpo/metrics.jsonl" -> "grpo"). */
static void metrics_tag(char *tag, size_t n, const char *path, int index, const metrics_data *prev, int nprev) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", path);
  char *slash = strrchr(buf, '/');
  const char *name;
  if (slash) {
    *slash = 0;
    char *s2 = strrchr(buf, '/');
    name = s2 ? s2 + 1 : buf;
  } else {
    name = "";
  }
  if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
    /* no directory: the file name without extension */
    snprintf(buf, sizeof buf, "%s", slash ? slash + 1 : path);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    name = buf;
  }
  char t[48];
  sanitize_tag(t, sizeof t, name);
  if (!*t) snprintf(t, sizeof t, "metrics");
  bool dup = false;
  for (int i = 0; i < nprev; i++) dup |= !strcmp(prev[i].tag, t);
  if (dup) snprintf(tag, n, "%s_%d", t, index + 1);
  else snprintf(tag, n, "%s", t);
}

static const char *gnuplot_program(const tn_report_opts *o) {
  if (o->gnuplot && *o->gnuplot) return o->gnuplot;
  const char *e = getenv("TN_GNUPLOT");
  return e && *e ? e : "gnuplot";
}

/* Run PROG SCRIPT with stdout/stderr into LOG; an error that names the program when it is
 * missing and quotes the log when it fails. */
static tn_status run_gnuplot(const char *prog, const char *script, const char *log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  char *argv[] = {(char *)prog, (char *)script, NULL};
  pid_t pid;
  int rc = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc == ENOENT || rc == EACCES)
    return tn_error(TN_ERR_IO, "cannot run '%s' to draw the plots (%s): install gnuplot (Debian package gnuplot-nox, "
                               "listed in scripts/deps.sh), point --gnuplot / TN_GNUPLOT at it, or pass --no-plots",
                    prog, strerror(rc));
  if (rc) return tn_error(TN_ERR_IO, "cannot start '%s': %s", prog, strerror(rc));
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return tn_error(TN_ERR_IO, "waiting for '%s': %s", prog, strerror(errno));
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
    return tn_error(TN_ERR_IO, "cannot run '%s' to draw the plots: install gnuplot (Debian package gnuplot-nox, "
                               "listed in scripts/deps.sh), or pass --no-plots", prog);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    char *msg = NULL;
    size_t n = 0;
    if (tn_read_file(log, &msg, &n) != TN_OK) { tn_error_clear(); msg = NULL; }
    if (msg && n > 600) msg[600] = 0;
    tn_status s = tn_error(TN_ERR_IO, "'%s %s' failed (%s %d): %s", prog, script,
                           WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                           msg && *msg ? msg : "(no output)");
    free(msg);
    return s;
  }
  return TN_OK;
}

static tn_status check_png(const char *path) {
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  FILE *f = fopen(path, "rb");
  if (!f) return tn_error(TN_ERR_IO, "gnuplot wrote no %s", path);
  unsigned char b[8];
  size_t n = fread(b, 1, 8, f);
  fclose(f);
  if (n != 8 || memcmp(b, sig, 8)) return tn_error(TN_ERR_FORMAT, "%s: gnuplot's output is not a PNG", path);
  return TN_OK;
}

typedef struct { char *file; int group; int metrics; } plot_rec; /* file relative to out_dir */

/* points averaged in a plot's trend line: a twentieth of the series (none below 40 points) */
static int smooth_window(int n) { return n >= 40 ? n / 20 : 1; }

/* Data file + script for every group that has keys in M, one gnuplot run, PNGs checked. */
static tn_status plot_metrics(const metrics_data *m, int mi, const char *out_dir, const char *prog, plot_rec **plots,
                              int *nplots) {
  char rel[256], path[4096];
  int groups[TN_PLOT_NGROUPS] = {0};
  for (int i = 0; i < m->n; i++) {
    int g = tn_plot_group_of(m->s[i].key);
    if (g >= 0) groups[g]++;
  }
  snprintf(path, sizeof path, "%s/plots/%s.gp", out_dir, m->tag);
  char *script = tn_strdup(path);
  FILE *gp = fopen(script, "w");
  if (!gp) { free(script); return tn_error(TN_ERR_IO, "%s: cannot write: %s", path, strerror(errno)); }
  fprintf(gp, "# written by tunic report: training curves of ");
  gp_str(gp, m->path);
  fprintf(gp, "\nset terminal pngcairo size 900,500 noenhanced font 'sans,10'\nset grid\nset key outside right top\n"
              "set xlabel 'step'\n");
  int first = *nplots;
  tn_status s = TN_OK;
  for (int g = 0; g < TN_PLOT_NGROUPS && s == TN_OK; g++) {
    if (!groups[g]) continue;
    snprintf(path, sizeof path, "%s/plots/%s_%s.dat", out_dir, m->tag, group_names[g]);
    FILE *d = fopen(path, "w");
    if (!d) { s = tn_error(TN_ERR_IO, "%s: cannot write: %s", path, strerror(errno)); break; }
    int block = 0;
    for (int i = 0; i < m->n; i++) {
      if (tn_plot_group_of(m->s[i].key) != g) continue;
      /* columns: step, value, mean of the last w values (the trend through noisy per-step values) */
      const int n = m->s[i].n, w = smooth_window(n);
      double run = 0;
      fprintf(d, "# %s\n", m->s[i].key);
      for (int k = 0; k < n; k++) {
        run += m->s[i].y[k] - (k >= w ? m->s[i].y[k - w] : 0.0);
        fprintf(d, "%.17g %.17g %.17g\n", m->s[i].x[k], m->s[i].y[k], run / (k + 1 < w ? k + 1 : w));
      }
      fprintf(d, "\n\n");
      block++;
    }
    if (fclose(d) != 0) { s = tn_error(TN_ERR_IO, "%s: write failed", path); break; }
    snprintf(rel, sizeof rel, "plots/%s_%s.png", m->tag, group_names[g]);
    char png[4096];
    snprintf(png, sizeof png, "%s/%s", out_dir, rel);
    fprintf(gp, "set output ");
    gp_str(gp, png);
    fprintf(gp, "\nset title ");
    char title[600];
    snprintf(title, sizeof title, "%s (%s)", group_names[g], m->path);
    gp_str(gp, title);
    fprintf(gp, "\nset ylabel ");
    gp_str(gp, group_names[g]);
    fprintf(gp, "\nplot ");
    block = 0;
    for (int i = 0; i < m->n; i++) {
      if (tn_plot_group_of(m->s[i].key) != g) continue;
      if (block) fprintf(gp, ", \\\n     ");
      gp_str(gp, path);
      const int w = smooth_window(m->s[i].n);
      fprintf(gp, " index %d using 1:2 with linespoints pointtype 7 pointsize 0.5 linecolor %d%s title ", block,
              block + 1, w > 1 ? " linewidth 0.5" : "");
      gp_str(gp, m->s[i].key);
      if (w > 1) {
        char t[300];
        snprintf(t, sizeof t, "%s, mean of the last %d", m->s[i].key, w);
        fprintf(gp, ", \\\n     ");
        gp_str(gp, path);
        fprintf(gp, " index %d using 1:3 with lines linewidth 2.5 linecolor %d title ", block, block + 1);
        gp_str(gp, t);
      }
      block++;
    }
    fprintf(gp, "\nunset output\n");
    plot_rec *np = realloc(*plots, sizeof *np * (*nplots + 1));
    if (!np) { s = tn_error(TN_ERR_NOMEM, "report: out of memory"); break; }
    *plots = np;
    np[*nplots] = (plot_rec){tn_strdup(rel), g, mi};
    (*nplots)++;
  }
  if (fclose(gp) != 0 && s == TN_OK) s = tn_error(TN_ERR_IO, "%s: write failed", script);
  if (s == TN_OK && *nplots > first) {
    snprintf(path, sizeof path, "%s/plots/%s.gnuplot.log", out_dir, m->tag);
    s = run_gnuplot(prog, script, path);
    for (int i = first; i < *nplots && s == TN_OK; i++) {
      snprintf(path, sizeof path, "%s/%s", out_dir, (*plots)[i].file);
      s = check_png(path);
    }
  }
  free(script);
  return s;
}

/* ---------------- excerpts of flipped examples ---------------- */

/* The completion (or first sample's completion) of each of the N ids in PATH (NULL if none). */
static tn_status find_completions(const char *path, char *const *ids, int n, char **out) {
  for (int i = 0; i < n; i++) out[i] = NULL;
  if (!n) return TN_OK;
  char *text;
  size_t len;
  TN_TRY(tn_read_file(path, &text, &len));
  for (char *p = text; p && *p;) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = 0;
    cJSON *o = cJSON_Parse(p);
    p = nl ? nl + 1 : NULL;
    if (!cJSON_IsObject(o)) { cJSON_Delete(o); continue; }
    char *id = tn_json_scalar_dup(tn_json_field(o, "id"));
    const cJSON *c = tn_json_field(o, "completion");
    if (!cJSON_IsString(c)) {
      const cJSON *sm = tn_json_field(o, "samples");
      c = cJSON_IsArray(sm) ? tn_json_field(cJSON_GetArrayItem(sm, 0), "completion") : NULL;
    }
    if (id && cJSON_IsString(c))
      for (int i = 0; i < n; i++)
        if (!out[i] && !strcmp(ids[i], id)) out[i] = tn_strdup(c->valuestring);
    free(id);
    cJSON_Delete(o);
  }
  free(text);
  return TN_OK;
}

/* Text safe inside a Markdown code span / fence: backticks -> ', control bytes -> space
 * (newlines kept when KEEP_NL), cut at MAX bytes on a UTF-8 character boundary. */
static void md_safe(FILE *f, const char *s, size_t max, bool keep_nl) {
  if (!s) { fputs("-", f); return; }
  size_t n = strlen(s), cut = n > max ? max : n;
  while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
  int lines = 0, run = 0; /* excerpts: at most 12 lines, blank-line runs collapsed to one */
  for (size_t i = 0; i < cut; i++) {
    unsigned char c = (unsigned char)s[i];
    if (keep_nl && c == '\n') {
      if (++run > 2) continue;
      if (++lines >= 12) { cut = i; break; }
    } else if (keep_nl && c != '\r') {
      run = 0;
    }
    if (c == '`') fputc('\'', f);
    else if (c == '\n' && keep_nl) fputc('\n', f);
    else if (c < 0x20 || c == 0x7f) fputc(' ', f);
    else if (c == '|' && !keep_nl) fputs("\\|", f);
    else fputc(c, f);
  }
  if (cut < n) fputs(keep_nl ? "\n[...]" : "...", f);
}

static const tn_result_rec *find_rec(const tn_results *r, const char *id) {
  for (int64_t i = 0; i < r->n; i++)
    if (!strcmp(r->recs[i].id, id)) return &r->recs[i];
  return NULL;
}

static tn_status write_excerpts(FILE *f, const char *title, const int64_t *idx, int64_t n, const tn_results *before,
                                const tn_results *after, const tn_report_opts *o) {
  int k = (int)(n < o->max_flips ? n : o->max_flips);
  fprintf(f, "\n### %s: completions\n", title);
  if (!k) { fprintf(f, "\nnone\n"); return TN_OK; }
  char **ids = calloc(k, sizeof *ids), **cb = calloc(k, sizeof *cb), **ca = calloc(k, sizeof *ca);
  if (!ids || !cb || !ca) { free(ids); free(cb); free(ca); return tn_error(TN_ERR_NOMEM, "report: out of memory"); }
  for (int i = 0; i < k; i++) ids[i] = before->recs[idx[i]].id;
  tn_status s = find_completions(before->path, ids, k, cb);
  if (s == TN_OK) s = find_completions(after->path, ids, k, ca);
  for (int i = 0; i < k && s == TN_OK; i++) {
    const tn_result_rec *x = &before->recs[idx[i]], *y = find_rec(after, ids[i]);
    fputs("\n**", f);
    md_safe(f, x->id, 80, false);
    fputs("**", f);
    if (x->category && *x->category) { fputs(" (", f); md_safe(f, x->category, 60, false); fputs(")", f); }
    fputs(", expected `", f);
    md_safe(f, x->expected, 60, false);
    fputs("`\n", f);
    const tn_result_rec *r2[2] = {x, y};
    char *c2[2] = {cb[i], ca[i]};
    for (int j = 0; j < 2; j++) {
      fprintf(f, "\n- %s: ", j ? "after" : "before");
      if (r2[j] && r2[j]->extracted && *r2[j]->extracted) {
        fputs("extracted `", f);
        md_safe(f, r2[j]->extracted, 60, false);
        fputs("`", f);
      } else {
        fputs("nothing extracted", f);
      }
      fprintf(f, ", %s\n\n  ```\n  ", r2[j] && r2[j]->correct ? "correct" : "wrong");
      const char *q = c2[j];
      while (q && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r')) q++;
      if (c2[j] && !*q) {
        fprintf(f, "(only whitespace: %zu bytes)", strlen(c2[j]));
      } else if (c2[j]) {
        /* indent continuation lines to stay inside the list item's fence */
        char *buf = NULL;
        size_t bl = 0;
        FILE *m = open_memstream(&buf, &bl);
        md_safe(m, c2[j], (size_t)o->excerpt_chars, true);
        fclose(m);
        for (char *p = buf; *p; p++) {
          fputc(*p, f);
          if (*p == '\n') fputs("  ", f);
        }
        free(buf);
      } else {
        fputs("(no completion in the results file)", f);
      }
      fputs("\n  ```\n", f);
    }
  }
  for (int i = 0; i < k; i++) { free(cb[i]); free(ca[i]); }
  free(ids);
  free(cb);
  free(ca);
  return s;
}

/* ---------------- the report ---------------- */

static void series_stats(const series *s, double *mn, double *mx) {
  *mn = INFINITY;
  *mx = -INFINITY;
  for (int i = 0; i < s->n; i++) { *mn = fmin(*mn, s->y[i]); *mx = fmax(*mx, s->y[i]); }
}

static cJSON *interval(const double v[2]) {
  cJSON *a = cJSON_CreateArray();
  cJSON_AddItemToArray(a, cJSON_CreateNumber(v[0]));
  cJSON_AddItemToArray(a, cJSON_CreateNumber(v[1]));
  return a;
}

static cJSON *report_json(const tn_report *r, const tn_results *before, const tn_results *after,
                          const plot_rec *plots, int nplots) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "before", before->path);
  cJSON_AddStringToObject(j, "after", after->path);
  cJSON_AddNumberToObject(j, "n_paired", (double)r->n_paired);
  cJSON_AddNumberToObject(j, "only_before", (double)r->only_before);
  cJSON_AddNumberToObject(j, "only_after", (double)r->only_after);
  cJSON_AddNumberToObject(j, "correct_before", (double)r->correct_before);
  cJSON_AddNumberToObject(j, "correct_after", (double)r->correct_after);
  cJSON_AddNumberToObject(j, "accuracy_before", r->acc_before);
  cJSON_AddNumberToObject(j, "accuracy_after", r->acc_after);
  cJSON_AddNumberToObject(j, "delta", r->delta);
  cJSON_AddItemToObject(j, "wilson_before", interval(r->wilson_before));
  cJSON_AddItemToObject(j, "wilson_after", interval(r->wilson_after));
  cJSON_AddItemToObject(j, "bootstrap_delta", interval(r->boot_delta));
  cJSON_AddNumberToObject(j, "partial_before", r->partial_before);
  cJSON_AddNumberToObject(j, "partial_after", r->partial_after);
  cJSON_AddNumberToObject(j, "format_before", r->format_before);
  cJSON_AddNumberToObject(j, "format_after", r->format_after);
  cJSON_AddNumberToObject(j, "improved", (double)r->c);
  cJSON_AddNumberToObject(j, "regressed", (double)r->b);
  cJSON_AddNumberToObject(j, "mcnemar_p", r->mcnemar_p);
  cJSON *ii = cJSON_AddArrayToObject(j, "improved_ids"), *ri = cJSON_AddArrayToObject(j, "regressed_ids");
  for (int64_t i = 0; i < r->c; i++) cJSON_AddItemToArray(ii, cJSON_CreateString(before->recs[r->improved[i]].id));
  for (int64_t i = 0; i < r->b; i++) cJSON_AddItemToArray(ri, cJSON_CreateString(before->recs[r->regressed[i]].id));
  cJSON *cats = cJSON_AddObjectToObject(j, "categories");
  for (int q = 0; q < r->ncats; q++) {
    cJSON *c = cJSON_AddObjectToObject(cats, r->cats[q].name);
    cJSON_AddNumberToObject(c, "n", (double)r->cats[q].n);
    cJSON_AddNumberToObject(c, "accuracy_before", r->cats[q].acc_before);
    cJSON_AddNumberToObject(c, "accuracy_after", r->cats[q].acc_after);
    cJSON_AddNumberToObject(c, "delta", r->cats[q].delta);
  }
  cJSON *e = cJSON_AddObjectToObject(j, "errors");
  for (int k = 0; k < TN_ECAT_COUNT; k++) {
    cJSON *c = cJSON_AddObjectToObject(e, tn_error_cat_name((tn_error_cat)k));
    cJSON_AddNumberToObject(c, "before", (double)r->errors_before[k]);
    cJSON_AddNumberToObject(c, "after", (double)r->errors_after[k]);
  }
  cJSON *pl = cJSON_AddArrayToObject(j, "plots");
  for (int i = 0; i < nplots; i++) cJSON_AddItemToArray(pl, cJSON_CreateString(plots[i].file));
  return j;
}

tn_status tn_report_run(const tn_report_opts *o, FILE *print) {
  if (!o->before || !o->after || !o->out_dir)
    return tn_error(TN_ERR_ARG, "report: need the before and after results files and an output directory");
  if (o->max_flips < 0 || o->excerpt_chars <= 0) return tn_error(TN_ERR_ARG, "report: invalid max-flips / excerpt length");
  tn_results before = {0}, after = {0};
  tn_report rep = {0};
  metrics_data *md = calloc(o->n_metrics + 1, sizeof *md);
  plot_rec *plots = NULL;
  int nplots = 0, nmd = 0;
  char *buf = NULL, *jtext = NULL;
  size_t blen = 0;
  tn_status s = md ? TN_OK : tn_error(TN_ERR_NOMEM, "report: out of memory");
  if (s == TN_OK) s = tn_results_load(o->before, &before);
  if (s == TN_OK) s = tn_results_load(o->after, &after);
  if (s == TN_OK && before.n == 0) s = tn_error(TN_ERR_FORMAT, "%s: no results", o->before);
  if (s == TN_OK && after.n == 0) s = tn_error(TN_ERR_FORMAT, "%s: no results", o->after);
  if (s == TN_OK) s = tn_report_compare(&before, &after, &rep);
  if (s == TN_OK && rep.n_paired == 0)
    s = tn_error(TN_ERR_FORMAT, "%s and %s have no example id in common", o->before, o->after);
  for (int i = 0; i < o->n_metrics && s == TN_OK; i++) {
    s = metrics_load(&md[i], o->metrics[i]);
    if (s == TN_OK) {
      metrics_tag(md[i].tag, sizeof md[i].tag, o->metrics[i], i, md, i);
      nmd++;
    }
  }
  if (s == TN_OK) s = tn_mkdirs(o->out_dir);
  if (s == TN_OK && nmd) {
    char *pd = tn_path_join(o->out_dir, "plots");
    s = tn_mkdirs(pd);
    free(pd);
    const char *prog = gnuplot_program(o);
    for (int i = 0; i < nmd && s == TN_OK; i++) s = plot_metrics(&md[i], i, o->out_dir, prog, &plots, &nplots);
  }
  if (s == TN_OK) {
    FILE *f = open_memstream(&buf, &blen);
    if (!f) s = tn_error(TN_ERR_NOMEM, "report: out of memory");
    else {
      fprintf(f, "# %s\n\n- before: `", o->title ? o->title : "tunic report");
      md_safe(f, o->before, 400, false);
      fprintf(f, "` (%lld examples)\n- after: `", (long long)before.n);
      md_safe(f, o->after, 400, false);
      fprintf(f, "` (%lld examples)\n\n", (long long)after.n);
      fprintf(f, "Accuracy %.2f%% -> %.2f%% (%+.2f points, 95%% CI [%+.2f, %+.2f]); %lld wrong -> right, "
                 "%lld right -> wrong; exact McNemar p = %.4g.\n\n",
              100 * rep.acc_before, 100 * rep.acc_after, 100 * rep.delta, 100 * rep.boot_delta[0],
              100 * rep.boot_delta[1], (long long)rep.c, (long long)rep.b, rep.mcnemar_p);
      tn_report_write_markdown(&rep, &before, &after, o->max_flips, f);
      s = write_excerpts(f, "Wrong -> right", rep.improved, rep.c, &before, &after, o);
      if (s == TN_OK) s = write_excerpts(f, "Right -> wrong", rep.regressed, rep.b, &before, &after, o);
      if (nmd) fprintf(f, "\n## Training curves\n");
      for (int i = 0; i < nmd && s == TN_OK; i++) {
        const metrics_data *m = &md[i];
        fprintf(f, "\n### `");
        md_safe(f, m->path, 400, false);
        fprintf(f, "`\n\n%lld lines, steps %g to %g.\n\n| key | points | first | last | min | max |\n"
                   "|---|---|---|---|---|---|\n", (long long)m->lines, m->step_min, m->step_max);
        for (int k = 0; k < m->n; k++) {
          double mn, mx;
          series_stats(&m->s[k], &mn, &mx);
          fputs("| ", f);
          md_safe(f, m->s[k].key, 80, false);
          fprintf(f, " | %d | %.6g | %.6g | %.6g | %.6g |\n", m->s[k].n, m->s[k].y[0], m->s[k].y[m->s[k].n - 1], mn, mx);
        }
        int shown = 0;
        for (int p = 0; p < nplots; p++) {
          if (plots[p].metrics != i) continue;
          fprintf(f, "\n![%s](%s)\n", group_names[plots[p].group], plots[p].file);
          shown++;
        }
        if (!shown) fprintf(f, "\nNo reward, accuracy, KL or loss keys to plot.\n");
      }
      if (fclose(f) != 0 && s == TN_OK) s = tn_error(TN_ERR_IO, "report: building report.md failed");
    }
  }
  if (s == TN_OK) {
    char *p = tn_path_join(o->out_dir, "report.md");
    s = tn_write_file_atomic(p, buf, blen);
    free(p);
  }
  if (s == TN_OK) {
    cJSON *j = report_json(&rep, &before, &after, plots, nplots);
    jtext = tn_json_print_valid(j, true); /* ids, categories and completions from the results files */
    cJSON_Delete(j);
    char *p = tn_path_join(o->out_dir, "report.json");
    s = jtext ? tn_write_file_atomic(p, jtext, strlen(jtext)) : tn_error(TN_ERR_NOMEM, "report: out of memory");
    free(p);
  }
  if (s == TN_OK && print) {
    fprintf(print, "accuracy: %.2f%% -> %.2f%% (%+.2f points, 95%% bootstrap CI [%+.2f, %+.2f]) on %lld paired examples\n",
            100 * rep.acc_before, 100 * rep.acc_after, 100 * rep.delta, 100 * rep.boot_delta[0], 100 * rep.boot_delta[1],
            (long long)rep.n_paired);
    fprintf(print, "flips: %lld wrong -> right, %lld right -> wrong; exact McNemar p = %.4g\n", (long long)rep.c,
            (long long)rep.b, rep.mcnemar_p);
    fprintf(print, "report: %s/report.md\n", o->out_dir);
    for (int i = 0; i < nplots; i++) fprintf(print, "plot: %s/%s\n", o->out_dir, plots[i].file);
  }
  free(buf);
  free(jtext);
  for (int i = 0; i < nplots; i++) free(plots[i].file);
  free(plots);
  for (int i = 0; i < o->n_metrics; i++) metrics_free(&md[i]);
  free(md);
  tn_report_free(&rep);
  tn_results_free(&before);
  tn_results_free(&after);
  return s;
}
