/* extract.c - answer extraction from model completions, number normalisation, answer
 * equality, format compliance, per-example scoring and aggregation (accuracy, partial
 * accuracy, format rate, error categories, pass@k).
 * Not for: generating completions (cmd_eval) or the paired report statistics
 * (report_stats.c). Extraction order and formulas: docs/eval.md. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "eval/eval.h"

void tn_extract_config_default(tn_extract_config *c) {
  memset(c, 0, sizeof *c);
  c->reasoning_open = "<reasoning>";
  c->reasoning_close = "</reasoning>";
  c->answer_open = "<answer>";
  c->answer_close = "</answer>";
  c->partial_tol = 0.1;
}

const char *tn_extract_method_name(tn_extract_method m) {
  static const char *names[] = {"none", "tag", "boxed", "answer_is", "hashes", "last_number"};
  return (unsigned)m < TN_EXTRACT_COUNT ? names[m] : "?";
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Copy S[0..len) trimmed into OUT (cap bytes). Returns trimmed length (before truncation). */
static size_t copy_trim(char *out, size_t cap, const char *s, size_t len) {
  while (len && is_ws(*s)) s++, len--;
  while (len && is_ws(s[len - 1])) len--;
  if (cap) {
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
  }
  return len;
}

static bool blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (!is_ws(s[i])) return false;
  return true;
}

/* Last OPEN ... CLOSE pair (content between an OPEN and the first CLOSE after it) whose
 * content is not blank. */
static bool extract_tag(const char *s, const char *open, const char *close, char *out, size_t cap) {
  if (!open || !*open || !close || !*close) return false;
  size_t lo = strlen(open);
  const char *best = NULL;
  size_t best_len = 0;
  for (const char *p = strstr(s, open); p; p = strstr(p + 1, open)) {
    const char *c = strstr(p + lo, close);
    if (!c) break; /* no later open can have a close either */
    if (!blank(p + lo, (size_t)(c - p - lo))) { best = p + lo; best_len = (size_t)(c - p - lo); }
  }
  if (!best) return false;
  copy_trim(out, cap, best, best_len);
  return true;
}

/* Last CMD{...} (CMD "\boxed" or "\fbox") with balanced braces and non-blank content, or
 * the minerva form "\boxed 5" (a space, then the answer up to '$' or the end). */
static bool extract_boxed_cmd(const char *s, const char *cmd, char *out, size_t cap) {
  const char *found = NULL;
  size_t found_len = 0, cl = strlen(cmd);
  for (const char *p = strstr(s, cmd); p; p = strstr(p + 1, cmd)) {
    const char *q = p + cl;
    if (*q == ' ' && q[1] && q[1] != '{' && q[1] != ' ') { /* "\boxed 5$" */
      const char *e = q + 1;
      while (*e && *e != '$' && *e != '\n') e++;
      if (!blank(q + 1, (size_t)(e - q - 1))) { found = q + 1; found_len = (size_t)(e - q - 1); }
      continue;
    }
    while (*q == ' ') q++;
    if (*q != '{') continue;
    int depth = 0;
    const char *e = q;
    for (; *e; e++) {
      if (*e == '\\' && (e[1] == '{' || e[1] == '}')) { e++; continue; } /* escaped brace */
      if (*e == '{') depth++;
      else if (*e == '}' && --depth == 0) break;
    }
    if (!*e) continue; /* unbalanced (truncated) */
    if (!blank(q + 1, (size_t)(e - q - 1))) { found = q + 1; found_len = (size_t)(e - q - 1); }
  }
  if (!found) return false;
  copy_trim(out, cap, found, found_len);
  return true;
}

/* Hendrycks' last_boxed_only_string: the last \boxed, else the last \fbox. */
static bool extract_boxed(const char *s, char *out, size_t cap) {
  return extract_boxed_cmd(s, "\\boxed", out, cap) || extract_boxed_cmd(s, "\\fbox", out, cap);
}

bool tn_math_last_boxed(const char *s, char *out, size_t cap) {
  if (cap) out[0] = 0;
  return s && extract_boxed(s, out, cap);
}

static const char *strcasestr_last(const char *s, const char *needle) {
  size_t n = strlen(needle);
  const char *last = NULL;
  for (const char *p = s; *p; p++)
    if (strncasecmp(p, needle, n) == 0) last = p;
  return last;
}

/* "answer is X" / "answer: X" (last occurrence of either), X up to the end of the line
 * or of the sentence ('.' followed by whitespace or the end). */
static bool extract_answer_is(const char *s, char *out, size_t cap) {
  const char *a = strcasestr_last(s, "answer is");
  const char *b = strcasestr_last(s, "answer:");
  const char *p;
  if (a && (!b || a > b)) p = a + 9;
  else if (b) p = b + 7;
  else return false;
  while (*p == ' ' || *p == '\t' || *p == ':') p++;
  const char *e = p;
  while (*e && *e != '\n' && !(*e == '.' && (e[1] == 0 || is_ws(e[1])))) e++;
  if (blank(p, (size_t)(e - p))) return false;
  copy_trim(out, cap, p, (size_t)(e - p));
  return true;
}

static bool extract_hashes(const char *s, char *out, size_t cap) {
  const char *p = NULL;
  for (const char *q = strstr(s, "####"); q; q = strstr(q + 1, "####")) p = q;
  if (!p) return false;
  p += 4;
  while (*p == '#') p++;
  const char *e = strchr(p, '\n');
  if (!e) e = p + strlen(p);
  if (blank(p, (size_t)(e - p))) return false;
  copy_trim(out, cap, p, (size_t)(e - p));
  return true;
}

/* ---- number tokens ---- */

static bool is_alnum_byte(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* Unicode minus (U+2212, E2 88 92) or en dash (U+2013, E2 80 93) ending just before P. */
static bool umin_before(const char *s, const char *p) {
  if (p - s < 3) return false;
  const unsigned char *u = (const unsigned char *)p - 3;
  return u[0] == 0xE2 && ((u[1] == 0x88 && u[2] == 0x92) || (u[1] == 0x80 && u[2] == 0x93));
}

/* Find the next number token at or after P: [-|−]digits[,ddd]*[.digits][/digits].
 * Returns false when none; sets [*st, *en). */
static bool next_number(const char *s, const char *p, const char **st, const char **en) {
  for (; *p; p++) {
    bool lead_dot = *p == '.' && isdigit((unsigned char)p[1]) && (p == s || !isdigit((unsigned char)p[-1]));
    if (!isdigit((unsigned char)*p) && !lead_dot) continue;
    if (p > s && (isalpha((unsigned char)p[-1]) || p[-1] == '_')) { /* part of an identifier (x2, v1) */
      while (isdigit((unsigned char)*p)) p++;
      if (!*p) break;
      continue;
    }
    const char *start = p;
    /* a sign directly before, not preceded by an alphanumeric (5-3 is a subtraction) */
    const char *q = p;
    if (q > s && q[-1] == '$') q--;
    if (q > s && (q[-1] == '-') && (q - 1 == s || !is_alnum_byte((unsigned char)q[-2]) ) && (q - 1 == s || q[-2] != ')'))
      start = q - 1;
    else if (umin_before(s, q) && (q - 3 == s || !is_alnum_byte((unsigned char)q[-4])))
      start = q - 3;
    if (*p != '.') {
      while (isdigit((unsigned char)*p)) p++;
      while (p[0] == ',' && isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
             isdigit((unsigned char)p[3]) && !isdigit((unsigned char)p[4]))
        p += 4;
    }
    if (p[0] == '.' && isdigit((unsigned char)p[1])) {
      p++;
      while (isdigit((unsigned char)*p)) p++;
    }
    if (p[0] == '/' && isdigit((unsigned char)p[1])) {
      p++;
      while (isdigit((unsigned char)*p)) p++;
    }
    *st = start;
    *en = p;
    return true;
  }
  return false;
}

static bool extract_last_number(const char *s, char *out, size_t cap) {
  const char *st, *en, *ls = NULL, *le = NULL;
  for (const char *p = s; next_number(s, p, &st, &en); p = en) { ls = st; le = en; }
  if (!ls) return false;
  copy_trim(out, cap, ls, (size_t)(le - ls));
  return true;
}

tn_extract_method tn_extract_answer(const char *completion, const tn_extract_config *cfg,
                                    char *out, size_t cap) {
  tn_extract_config def;
  if (!cfg) { tn_extract_config_default(&def); cfg = &def; }
  if (cap) out[0] = 0;
  const char *s = completion ? completion : "";
  if (extract_tag(s, cfg->answer_open, cfg->answer_close, out, cap)) return TN_EXTRACT_TAG;
  if (cfg->tags_only) return TN_EXTRACT_NONE;
  if (extract_boxed(s, out, cap)) return TN_EXTRACT_BOXED;
  if (extract_hashes(s, out, cap)) return TN_EXTRACT_HASHES;
  if (extract_answer_is(s, out, cap)) return TN_EXTRACT_ANSWER_IS;
  if (extract_last_number(s, out, cap)) return TN_EXTRACT_LAST_NUMBER;
  if (cap) out[0] = 0;
  return TN_EXTRACT_NONE;
}

/* ---- number parsing ---- */

/* In-place replace of every occurrence of FROM by TO (TO no longer than FROM). */
static void replace_all(char *s, const char *from, const char *to) {
  size_t lf = strlen(from), lt = strlen(to);
  char *p;
  while ((p = strstr(s, from))) {
    memcpy(p, to, lt);
    memmove(p + lt, p + lf, strlen(p + lf) + 1);
    s = p + lt;
  }
}

/* Unsigned decimal: ddd[,ddd]* or digits, optional .digits, or .digits. */
static bool parse_udecimal(const char *s, const char *e, double *out) {
  char buf[96];
  size_t n = 0;
  const char *p = s;
  int lead = 0;
  while (p < e && isdigit((unsigned char)*p)) { if (n + 1 >= sizeof buf) return false; buf[n++] = *p++; lead++; }
  if (p < e && *p == ',') {
    if (lead < 1 || lead > 3) return false;
    while (p < e && *p == ',') {
      if (e - p < 4) return false;
      for (int k = 1; k <= 3; k++)
        if (!isdigit((unsigned char)p[k])) return false;
      if (n + 4 >= sizeof buf) return false;
      memcpy(buf + n, p + 1, 3);
      n += 3;
      p += 4;
    }
    if (p < e && isdigit((unsigned char)*p)) return false;
  }
  if (p < e && *p == '.') {
    if (n + 1 >= sizeof buf) return false;
    buf[n++] = *p++;
    int frac = 0;
    while (p < e && isdigit((unsigned char)*p)) { if (n + 1 >= sizeof buf) return false; buf[n++] = *p++; frac++; }
    if (!frac && !lead) return false;
  }
  if (p != e || n == 0 || (n == 1 && buf[0] == '.')) return false;
  buf[n] = 0;
  *out = strtod(buf, NULL);
  return isfinite(*out);
}

/* \frac{a}{b} with a, b unsigned decimals. */
static bool parse_frac(const char *s, const char *e, double *out) {
  const char *p = NULL;
  if (e - s > 5 && !strncmp(s, "\\frac", 5)) p = s + 5;
  else if (e - s > 6 && (!strncmp(s, "\\dfrac", 6) || !strncmp(s, "\\tfrac", 6))) p = s + 6;
  if (!p || *p != '{') return false;
  const char *c1 = memchr(p, '}', (size_t)(e - p));
  if (!c1 || c1 + 1 >= e || c1[1] != '{' || e[-1] != '}') return false;
  double a, b;
  if (!parse_udecimal(p + 1, c1, &a) || !parse_udecimal(c1 + 2, e - 1, &b) || b == 0) return false;
  *out = a / b;
  return true;
}

/* Unsigned value: decimal, a/b, "w a/b", \frac. */
static bool parse_uvalue(const char *s, const char *e, double *out) {
  if (s >= e) return false;
  if (*s == '\\') return parse_frac(s, e, out);
  const char *slash = memchr(s, '/', (size_t)(e - s));
  if (!slash) return parse_udecimal(s, e, out);
  double a, b, w = 0;
  const char *ns = s;
  const char *sp = memchr(s, ' ', (size_t)(slash - s));
  if (sp) { /* mixed number "1 1/2" */
    if (!parse_udecimal(s, sp, &w) || w != floor(w)) return false;
    ns = sp + 1;
  }
  if (!parse_udecimal(ns, slash, &a) || !parse_udecimal(slash + 1, e, &b) || b == 0) return false;
  if (sp && (a >= b || a != floor(a) || b != floor(b))) return false;
  *out = w + a / b;
  return true;
}

bool tn_parse_number(const char *str, double *out) {
  if (!str) return false;
  char buf[160];
  size_t n = strlen(str);
  if (n >= sizeof buf) return false;
  memcpy(buf, str, n + 1);
  replace_all(buf, "\xE2\x88\x92", "-"); /* U+2212 minus */
  replace_all(buf, "\xE2\x80\x93", "-"); /* U+2013 en dash */
  replace_all(buf, "\\$", "$");
  replace_all(buf, "\\%", "%");
  replace_all(buf, "{,}", ",");
  replace_all(buf, "\\!", "");
  char *s = buf, *e = buf + strlen(buf);
  while (s < e && is_ws(*s)) s++;
  while (e > s && is_ws(e[-1])) e--;
  while (e > s && e[-1] == '.') e--; /* sentence period ("42.") */
  if (e > s && e[-1] == '%') e--;
  while (e > s && is_ws(e[-1])) e--;
  if (e - s >= 2 && *s == '{' && e[-1] == '}') { s++; e--; }
  bool neg = false;
  if (s < e && *s == '$') { s++; while (s < e && *s == ' ') s++; }
  if (s < e && (*s == '-' || *s == '+')) { neg = *s == '-'; s++; }
  if (s < e && *s == '$') s++;
  while (s < e && *s == ' ') s++;
  double v;
  if (!parse_uvalue(s, e, &v)) return false;
  *out = neg ? -v : v;
  return true;
}

bool tn_find_single_number(const char *s, double *out) {
  if (!s) return false;
  const char *st, *en, *fs = NULL, *fe = NULL;
  int count = 0;
  for (const char *p = s; next_number(s, p, &st, &en); p = en) {
    if (++count > 1) return false;
    fs = st;
    fe = en;
  }
  if (count != 1) return false;
  char buf[128];
  size_t n = (size_t)(fe - fs);
  if (n >= sizeof buf) return false;
  memcpy(buf, fs, n);
  buf[n] = 0;
  return tn_parse_number(buf, out);
}

bool tn_answer_value(const char *s, double *out) {
  if (!s || !*s) return false;
  if (tn_parse_number(s, out) || tn_find_single_number(s, out)) return true;
  const char *eq = strrchr(s, '='); /* "6 * 7 = 42": the result after the last '=' */
  if (eq && eq[1]) return tn_parse_number(eq + 1, out) || tn_find_single_number(eq + 1, out);
  return false;
}

bool tn_numbers_equal(double a, double b) {
  double d = fabs(a - b);
  return d <= 1e-9 || d <= 1e-6 * fmax(fabs(a), fabs(b));
}

/* Lowercase, collapse whitespace, trim, drop trailing '.'. */
static void norm_text(const char *s, char *out, size_t cap) {
  size_t n = 0;
  bool sp = false;
  for (; *s && n + 1 < cap; s++) {
    if (is_ws(*s)) { sp = n > 0; continue; }
    if (sp && n + 2 < cap) out[n++] = ' ';
    sp = false;
    out[n++] = (char)tolower((unsigned char)*s);
  }
  while (n && out[n - 1] == '.') n--;
  out[n] = 0;
}

static const char *ref_answer(const char *ref) {
  const char *h = NULL;
  for (const char *q = strstr(ref, "####"); q; q = strstr(q + 1, "####")) h = q + 4;
  return h ? h : ref;
}

/* Does S hold a LaTeX command that changes the value (\sqrt, \pi, \cdot, ...)? Markup that
 * does not (\boxed, \text, \frac, \$, \%) is not one. */
static bool math_cmd(const char *s) {
  static const char *ok[] = {"boxed", "fbox", "text", "textbf", "mathrm", "mbox", "frac", "dfrac", "tfrac", NULL};
  for (const char *p = strchr(s, '\\'); p; p = strchr(p + 1, '\\')) {
    size_t n = 0;
    while (isalpha((unsigned char)p[1 + n])) n++;
    if (!n) continue;
    bool known = false;
    for (int i = 0; ok[i]; i++) known |= strlen(ok[i]) == n && !strncmp(p + 1, ok[i], n);
    if (!known) return true;
  }
  return false;
}

bool tn_answers_equal(const char *extracted, const char *reference) {
  if (!extracted || !reference) return false;
  reference = ref_answer(reference);
  double a, b;
  if (tn_parse_number(extracted, &a) && tn_parse_number(reference, &b)) return tn_numbers_equal(a, b);
  if (tn_math_equiv(extracted, reference)) return true; /* Hendrycks normalisation (conventions.c) */
  /* the single number in "18 dollars"; not inside LaTeX the normaliser left (\sqrt{2} is not 2) */
  bool latex = math_cmd(extracted) || math_cmd(reference);
  bool ha = !latex && tn_answer_value(extracted, &a), hb = !latex && tn_answer_value(reference, &b);
  if (ha && hb) return tn_numbers_equal(a, b);
  char x[512], y[512];
  norm_text(extracted, x, sizeof x);
  norm_text(reference, y, sizeof y);
  return x[0] && !strcmp(x, y);
}

/* ---- format compliance ---- */

static size_t put_escaped(char *dst, const char *s) {
  size_t n = 0;
  for (; *s; s++) {
    if (!isalnum((unsigned char)*s) && (unsigned char)*s < 0x80) dst[n++] = '\\';
    dst[n++] = *s;
  }
  return n;
}

bool tn_format_ok(const char *completion, const tn_extract_config *cfg) {
  tn_extract_config def;
  if (!cfg) { tn_extract_config_default(&def); cfg = &def; }
  const char *tags[4] = {cfg->reasoning_open, cfg->reasoning_close, cfg->answer_open, cfg->answer_close};
  size_t need = 64;
  for (int i = 0; i < 4; i++) {
    if (!tags[i] || !*tags[i]) return false;
    need += 2 * strlen(tags[i]);
  }
  char *pat = malloc(need);
  if (!pat) return false;
  size_t n = 0;
  /* Tunix: ^[\s]{0,}R.+?/R.*?A(.+?)/A[\s]{0,}$ with MULTILINE | DOTALL */
  const char *head = cfg->format_strict ? "\\A\\s*" : "^[\\s]{0,}";
  const char *tail = cfg->format_strict ? "\\s*\\z" : "[\\s]{0,}$";
  n += (size_t)sprintf(pat + n, "%s", head);
  n += put_escaped(pat + n, tags[0]);
  n += (size_t)sprintf(pat + n, ".+?");
  n += put_escaped(pat + n, tags[1]);
  n += (size_t)sprintf(pat + n, ".*?");
  n += put_escaped(pat + n, tags[2]);
  n += (size_t)sprintf(pat + n, "(.+?)");
  n += put_escaped(pat + n, tags[3]);
  n += (size_t)sprintf(pat + n, "%s", tail);
  pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
  pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  int err;
  PCRE2_SIZE off;
  uint32_t opts = PCRE2_DOTALL | (cfg->format_strict ? 0 : PCRE2_MULTILINE);
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, opts, &err, &off, cc);
  pcre2_compile_context_free(cc);
  free(pat);
  if (!re) return false;
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  const char *s = completion ? completion : "";
  int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return rc > 0;
}

/* ---- scoring ---- */

const char *tn_error_cat_name(tn_error_cat c) {
  static const char *names[] = {"correct", "no_answer", "wrong_number", "invalid_format"};
  return (unsigned)c < TN_ECAT_COUNT ? names[c] : "?";
}

int tn_error_cat_parse(const char *name) {
  for (int i = 0; i < TN_ECAT_COUNT; i++)
    if (name && !strcmp(name, tn_error_cat_name((tn_error_cat)i))) return i;
  return -1;
}

double tn_closeness_credit(double x, double ref) {
  if (!isfinite(x) || !isfinite(ref)) return 0;
  if (tn_numbers_equal(x, ref)) return 1.0;
  if (ref == 0) return 0;
  double rel = fabs(x - ref) / fabs(ref);
  if (rel <= 0.1 + 1e-12) return 0.5;
  if (rel <= 0.2 + 1e-12) return 0.25;
  return 0;
}

void tn_score_example(const char *completion, const char *reference,
                      const tn_extract_config *cfg, tn_score *out) {
  tn_extract_config def;
  if (!cfg) { tn_extract_config_default(&def); cfg = &def; }
  memset(out, 0, sizeof *out);
  char ext[1024];
  out->method = tn_extract_answer(completion, cfg, ext, sizeof ext);
  copy_trim(out->extracted, sizeof out->extracted, ext, strlen(ext));
  out->format_ok = tn_format_ok(completion, cfg);
  const char *ref = reference ? ref_answer(reference) : "";
  double rv = 0;
  bool ref_num = tn_answer_value(ref, &rv);
  if (out->method == TN_EXTRACT_NONE) {
    out->error = TN_ECAT_NO_ANSWER;
    return;
  }
  char g[128];
  out->gsm8k_strict = tn_gsm8k_strict(completion, g, sizeof g) && reference && tn_gsm8k_match(g, reference);
  out->gsm8k_flexible = tn_gsm8k_flexible(completion, g, sizeof g) && reference && tn_gsm8k_match(g, reference);
  out->has_value = tn_answer_value(ext, &out->value);
  if (tn_answers_equal(ext, ref)) {
    out->correct = out->partial = true;
    out->credit = 1.0;
    out->error = TN_ECAT_CORRECT;
    return;
  }
  out->error = (ref_num && !out->has_value) ? TN_ECAT_INVALID_FORMAT : TN_ECAT_WRONG_NUMBER;
  if (ref_num && out->has_value) {
    out->credit = tn_closeness_credit(out->value, rv);
    double tol = cfg->partial_tol > 0 ? cfg->partial_tol : 0;
    out->partial = rv == 0 ? false : fabs(out->value - rv) <= tol * fabs(rv) + 1e-12;
  }
}

tn_status tn_score_to_json(const tn_score *s, cJSON *obj) {
  if (!obj) return tn_error(TN_ERR_ARG, "tn_score_to_json: NULL object");
  cJSON_AddStringToObject(obj, "extracted", s->extracted);
  cJSON_AddStringToObject(obj, "method", tn_extract_method_name(s->method));
  cJSON_AddBoolToObject(obj, "correct", s->correct);
  cJSON_AddBoolToObject(obj, "partial", s->partial);
  cJSON_AddNumberToObject(obj, "credit", s->credit);
  cJSON_AddBoolToObject(obj, "format_ok", s->format_ok);
  cJSON_AddStringToObject(obj, "error", tn_error_cat_name(s->error));
  cJSON_AddBoolToObject(obj, "gsm8k_strict_match", s->gsm8k_strict);
  cJSON_AddBoolToObject(obj, "gsm8k_flexible_extract", s->gsm8k_flexible);
  return TN_OK;
}

/* ---- aggregation ---- */

double tn_pass_at_k(int n, int c, int k) {
  if (k <= 0 || k > n || c < 0 || c > n) return NAN;
  if (n - c < k) return 1.0;
  double prod = 1.0; /* C(n-c,k)/C(n,k) = prod_{i=n-c+1}^{n} (1 - k/i) */
  for (int i = n - c + 1; i <= n; i++) prod *= 1.0 - (double)k / i;
  return 1.0 - prod;
}

void tn_eval_agg_init(tn_eval_agg *a) {
  memset(a, 0, sizeof *a);
  snprintf(a->all.name, sizeof a->all.name, "all");
}

void tn_eval_agg_free(tn_eval_agg *a) {
  free(a->cats);
  free(a->ex_n);
  free(a->ex_c);
  memset(a, 0, sizeof *a);
}

static void bucket_add(tn_eval_bucket *b, const tn_score *s) {
  b->n++;
  b->correct += s->correct;
  b->partial += s->partial;
  b->format_ok += s->format_ok;
  b->credit += s->credit;
  b->gsm8k_strict += s->gsm8k_strict;
  b->gsm8k_flexible += s->gsm8k_flexible;
  b->errors[(unsigned)s->error < TN_ECAT_COUNT ? s->error : TN_ECAT_NO_ANSWER]++;
}

tn_status tn_eval_agg_add(tn_eval_agg *a, const char *category, const tn_score *scores, int ns) {
  if (ns <= 0) return tn_error(TN_ERR_ARG, "tn_eval_agg_add: %d samples", ns);
  tn_eval_bucket *cb = NULL;
  if (category && *category) {
    for (int i = 0; i < a->ncats; i++)
      if (!strncmp(a->cats[i].name, category, sizeof a->cats[i].name - 1)) cb = &a->cats[i];
    if (!cb) {
      if (a->ncats == a->cap_cats) {
        int cap = a->cap_cats ? 2 * a->cap_cats : 8;
        tn_eval_bucket *nc = realloc(a->cats, sizeof *nc * cap);
        if (!nc) return tn_error(TN_ERR_NOMEM, "eval aggregation: out of memory");
        a->cats = nc;
        a->cap_cats = cap;
      }
      cb = &a->cats[a->ncats++];
      memset(cb, 0, sizeof *cb);
      snprintf(cb->name, sizeof cb->name, "%s", category);
    }
  }
  if (a->nex == a->cap_ex) {
    int64_t cap = a->cap_ex ? 2 * a->cap_ex : 64;
    int *nn = realloc(a->ex_n, sizeof *nn * cap);
    if (!nn) return tn_error(TN_ERR_NOMEM, "eval aggregation: out of memory");
    a->ex_n = nn;
    int *nc = realloc(a->ex_c, sizeof *nc * cap);
    if (!nc) return tn_error(TN_ERR_NOMEM, "eval aggregation: out of memory");
    a->ex_c = nc;
    a->cap_ex = cap;
  }
  int c = 0;
  for (int i = 0; i < ns; i++) {
    bucket_add(&a->all, &scores[i]);
    if (cb) bucket_add(cb, &scores[i]);
    c += scores[i].correct;
  }
  a->ex_n[a->nex] = ns;
  a->ex_c[a->nex] = c;
  a->nex++;
  return TN_OK;
}

double tn_eval_agg_pass_at_k(const tn_eval_agg *a, int k) {
  double sum = 0;
  int64_t m = 0;
  for (int64_t i = 0; i < a->nex; i++) {
    if (a->ex_n[i] < k) continue;
    sum += tn_pass_at_k(a->ex_n[i], a->ex_c[i], k);
    m++;
  }
  return m ? sum / m : NAN;
}

static double ratio(int64_t a, int64_t b) { return b ? (double)a / b : 0.0; }

static void print_bucket(const tn_eval_bucket *b, FILE *f) {
  fprintf(f, "%-20s %7lld %8.2f%% %8.2f%% %8.2f%%\n", b->name, (long long)b->n, 100 * ratio(b->correct, b->n),
          100 * ratio(b->partial, b->n), 100 * ratio(b->format_ok, b->n));
}

void tn_eval_agg_print(const tn_eval_agg *a, FILE *f) {
  fprintf(f, "%-20s %7s %9s %9s %9s\n", "category", "n", "accuracy", "partial", "format");
  print_bucket(&a->all, f);
  for (int i = 0; i < a->ncats; i++) print_bucket(&a->cats[i], f);
  fprintf(f, "gsm8k (lm-evaluation-harness): strict-match %.2f%%, flexible-extract %.2f%%\n",
          100 * ratio(a->all.gsm8k_strict, a->all.n), 100 * ratio(a->all.gsm8k_flexible, a->all.n));
  fprintf(f, "errors:");
  for (int e = 1; e < TN_ECAT_COUNT; e++)
    fprintf(f, " %s %lld (%.1f%%)", tn_error_cat_name((tn_error_cat)e), (long long)a->all.errors[e],
            100 * ratio(a->all.errors[e], a->all.n));
  fprintf(f, "\n");
}

static cJSON *bucket_json(const tn_eval_bucket *b) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "n", (double)b->n);
  cJSON_AddNumberToObject(o, "correct", (double)b->correct);
  cJSON_AddNumberToObject(o, "accuracy", ratio(b->correct, b->n));
  cJSON_AddNumberToObject(o, "partial_accuracy", ratio(b->partial, b->n));
  cJSON_AddNumberToObject(o, "format_rate", ratio(b->format_ok, b->n));
  cJSON_AddNumberToObject(o, "mean_credit", b->n ? b->credit / b->n : 0.0);
  cJSON *g = cJSON_AddObjectToObject(o, "gsm8k");
  cJSON_AddNumberToObject(g, "strict_match", ratio(b->gsm8k_strict, b->n));
  cJSON_AddNumberToObject(g, "flexible_extract", ratio(b->gsm8k_flexible, b->n));
  cJSON *e = cJSON_AddObjectToObject(o, "errors");
  for (int i = 1; i < TN_ECAT_COUNT; i++) cJSON_AddNumberToObject(e, tn_error_cat_name((tn_error_cat)i), (double)b->errors[i]);
  return o;
}

cJSON *tn_eval_agg_to_json(const tn_eval_agg *a, const int *ks, int nks) {
  cJSON *o = bucket_json(&a->all);
  cJSON *c = cJSON_AddObjectToObject(o, "categories");
  for (int i = 0; i < a->ncats; i++) cJSON_AddItemToObject(c, a->cats[i].name, bucket_json(&a->cats[i]));
  if (nks > 0) {
    cJSON *p = cJSON_AddObjectToObject(o, "pass_at_k");
    for (int i = 0; i < nks; i++) {
      char key[16];
      snprintf(key, sizeof key, "%d", ks[i]);
      double v = tn_eval_agg_pass_at_k(a, ks[i]);
      if (isnan(v)) cJSON_AddNullToObject(p, key);
      else cJSON_AddNumberToObject(p, key, v);
    }
  }
  return o;
}
