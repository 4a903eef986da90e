/* conventions.c - the answer conventions the field scores with, re-implemented from their
 * published rules (docs/eval.md cites them):
 *  - GSM8K as lm-evaluation-harness's gsm8k task: "strict-match" (the first "#### N", regex
 *    `#### (\-?[0-9\.\,]+)`) and "flexible-extract" (the last match of
 *    `(-?[$0-9.,]{2,})|(-?[0-9]+)`), each compared with exact_match after its
 *    regexes_to_ignore (",", "\$", "(?s).*#### ", "\.$") and ignore_case;
 *  - MATH as Hendrycks et al.: the last \boxed{} (else \fbox{}), strip_string's
 *    normalisation, is_equiv, plus numeric equivalence of what then parses as a number.
 * Not for: the default extraction chain of tunic eval (extract.c) or scoring/aggregation. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "eval/eval.h"

/* ---------------- GSM8K (lm-evaluation-harness) ---------------- */

static bool in_set(char c) { return isdigit((unsigned char)c) || c == '$' || c == '.' || c == ','; }

static void put(char *out, size_t cap, const char *s, size_t n) {
  if (!cap) return;
  if (n > cap - 1) n = cap - 1;
  memcpy(out, s, n);
  out[n] = 0;
}

bool tn_gsm8k_strict(const char *s, char *out, size_t cap) {
  if (cap) out[0] = 0;
  if (!s) return false;
  for (const char *p = strstr(s, "#### "); p; p = strstr(p + 1, "#### ")) {
    const char *q = p + 5, *e = q;
    if (*e == '-') e++;
    const char *d = e;
    while (isdigit((unsigned char)*e) || *e == '.' || *e == ',') e++;
    if (e == d) continue; /* `[0-9\.\,]+` needs one character */
    put(out, cap, q, (size_t)(e - q));
    return true;
  }
  return false;
}

/* One regex step of (-?[$0-9.,]{2,})|(-?[0-9]+) at P: the match's end, or NULL. */
static const char *flex_at(const char *p) {
  const char *q = p;
  if (*q == '-') q++;
  const char *e = q;
  while (in_set(*e)) e++;
  if (e - q >= 2) return e;
  q = p;
  if (*q == '-') q++;
  e = q;
  while (isdigit((unsigned char)*e)) e++;
  return e > q ? e : NULL;
}

bool tn_gsm8k_flexible(const char *s, char *out, size_t cap) {
  if (cap) out[0] = 0;
  if (!s) return false;
  const char *ls = NULL, *le = NULL;
  for (const char *p = s; *p;) {
    const char *e = flex_at(p);
    if (e) { ls = p; le = e; p = e; }
    else p++;
  }
  if (!ls) return false;
  put(out, cap, ls, (size_t)(le - ls));
  return true;
}

/* exact_match's preprocessing of the gsm8k task: remove ",", "$", everything up to the last
 * "#### ", one trailing "." (Python's `\.$` also matches before a final newline), lowercase. */
static void gsm8k_norm(const char *s, char *out, size_t cap) {
  const char *h = NULL;
  for (const char *q = strstr(s, "#### "); q; q = strstr(q + 1, "#### ")) h = q + 5;
  if (h) s = h;
  size_t n = 0;
  for (; *s && n + 1 < cap; s++)
    if (*s != ',' && *s != '$') out[n++] = (char)tolower((unsigned char)*s);
  out[n] = 0;
  if (n && out[n - 1] == '.') out[--n] = 0;
  else if (n >= 2 && out[n - 1] == '\n' && out[n - 2] == '.') { out[n - 2] = '\n'; out[--n] = 0; }
}

bool tn_gsm8k_match(const char *extracted, const char *reference) {
  if (!extracted || !reference) return false;
  char a[512], b[512];
  gsm8k_norm(extracted, a, sizeof a);
  gsm8k_norm(reference, b, sizeof b);
  return !strcmp(a, b);
}

/* ---------------- MATH (Hendrycks et al.) ---------------- */

typedef struct { char *s; size_t n, cap; bool ok; } sbuf;

static void sb_init(sbuf *b, char *mem, size_t cap) { b->s = mem; b->n = 0; b->cap = cap; b->ok = true; mem[0] = 0; }
static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) { b->ok = false; return; }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}
static void sb_adds(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Python str.replace(FROM, TO) on S (cap bytes); false when the result does not fit. */
static bool replace(char *s, size_t cap, const char *from, const char *to) {
  size_t lf = strlen(from);
  if (!strstr(s, from)) return true;
  char *tmp = malloc(cap);
  if (!tmp) return false;
  sbuf b;
  sb_init(&b, tmp, cap);
  const char *p = s, *q;
  while ((q = strstr(p, from))) {
    sb_add(&b, p, (size_t)(q - p));
    sb_adds(&b, to);
    p = q + lf;
  }
  sb_adds(&b, p);
  bool ok = b.ok;
  if (ok) memcpy(s, tmp, b.n + 1);
  free(tmp);
  return ok;
}

/* _fix_sqrt: "\sqrt2" -> "\sqrt{2}" (the first character after \sqrt when it is not '{'). */
static bool fix_sqrt(char *s, size_t cap) {
  char *tmp = malloc(cap);
  if (!tmp) return false;
  sbuf b;
  sb_init(&b, tmp, cap);
  const char *p = s, *q;
  while ((q = strstr(p, "\\sqrt"))) {
    sb_add(&b, p, (size_t)(q - p) + 5);
    p = q + 5;
    if (*p && *p != '{' && strncmp(p, "\\sqrt", 5)) {
      sb_adds(&b, "{");
      sb_add(&b, p, 1);
      sb_adds(&b, "}");
      p++;
    }
  }
  sb_adds(&b, p);
  bool ok = b.ok;
  if (ok) memcpy(s, tmp, b.n + 1);
  free(tmp);
  return ok;
}

/* _fix_fracs: "\frac12" -> "\frac{1}{2}", "\frac1{2}" -> "\frac{1}{2}". False: Python's
 * version raises (an empty or one-character tail) and is_equiv falls back to raw equality. */
static bool fix_fracs(char *s, size_t cap) {
  if (!strstr(s, "\\frac")) return true;
  char *tmp = malloc(cap);
  if (!tmp) return false;
  sbuf b;
  sb_init(&b, tmp, cap);
  const char *p = strstr(s, "\\frac");
  sb_add(&b, s, (size_t)(p - s));
  bool ok = true;
  while (p && ok) {
    const char *sub = p + 5, *nx = strstr(sub, "\\frac");
    size_t len = nx ? (size_t)(nx - sub) : strlen(sub);
    sb_adds(&b, "\\frac");
    if (len == 0) ok = false;                 /* substr[0] raises */
    else if (sub[0] == '{') sb_add(&b, sub, len);
    else if (len < 2) ok = false;              /* the assert len >= 2 */
    else if (sub[1] != '{') {
      sb_adds(&b, "{"); sb_add(&b, sub, 1); sb_adds(&b, "}{"); sb_add(&b, sub + 1, 1); sb_adds(&b, "}");
      sb_add(&b, sub + 2, len - 2);
    } else {
      sb_adds(&b, "{"); sb_add(&b, sub, 1); sb_adds(&b, "}");
      sb_add(&b, sub + 1, len - 1);
    }
    p = nx;
  }
  ok = ok && b.ok;
  if (ok) memcpy(s, tmp, b.n + 1);
  free(tmp);
  return ok;
}

/* Python int(x) on a stripped string of digits with an optional sign, and str(int(x)) == x. */
static bool canonical_int(const char *s, size_t n) {
  if (!n) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == n) return false;
  if (s[i] == '0' && n - i > 1) return false;
  if (i == 1 && n == 2 && s[1] == '0') return false; /* "-0" -> "0" */
  for (; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return false;
  return true;
}

/* _fix_a_slash_b: "a/b" with integer a, b (written canonically) -> "\frac{a}{b}". */
static bool fix_a_slash_b(char *s, size_t cap) {
  char *sl = strchr(s, '/');
  if (!sl || strchr(sl + 1, '/')) return true;
  if (!canonical_int(s, (size_t)(sl - s)) || !canonical_int(sl + 1, strlen(sl + 1))) return true;
  char tmp[512];
  int n = snprintf(tmp, sizeof tmp, "\\frac{%.*s}{%s}", (int)(sl - s), s, sl + 1);
  if (n < 0 || (size_t)n >= cap || (size_t)n >= sizeof tmp) return false;
  memcpy(s, tmp, (size_t)n + 1);
  return true;
}

static void remove_all(char *s, const char *t) {
  size_t lt = strlen(t);
  char *p;
  while ((p = strstr(s, t))) memmove(p, p + lt, strlen(p + lt) + 1);
}

bool tn_math_strip(const char *in, char *out, size_t cap) {
  if (!in || cap < 2) return false;
  size_t n = strlen(in);
  if (n >= cap / 2) return false; /* room for the replacements that grow the text */
  memcpy(out, in, n + 1);
  remove_all(out, "\n");
  remove_all(out, "\\!");
  bool ok = replace(out, cap, "\\\\", "\\") && replace(out, cap, "tfrac", "frac") && replace(out, cap, "dfrac", "frac");
  remove_all(out, "\\left");
  remove_all(out, "\\right");
  remove_all(out, "^{\\circ}");
  remove_all(out, "^\\circ");
  remove_all(out, "\\$");
  /* _remove_right_units: the text before "\text{ " (Python asserts there is one such split) */
  char *u = strstr(out, "\\text{ ");
  if (u) {
    if (strstr(u + 1, "\\text{ ")) return false;
    *u = 0;
  }
  remove_all(out, "\\%");
  ok = ok && replace(out, cap, " .", " 0.") && replace(out, cap, "{.", "{0.");
  if (!ok) return false;
  if (!out[0]) return true;
  if (out[0] == '.') {
    n = strlen(out);
    if (n + 2 > cap) return false;
    memmove(out + 1, out, n + 1);
    out[0] = '0';
  }
  char *eq = strchr(out, '=');
  if (eq && !strchr(eq + 1, '=') && eq - out <= 2) memmove(out, eq + 1, strlen(eq + 1) + 1); /* "x = 5" -> " 5" */
  if (!fix_sqrt(out, cap)) return false;
  remove_all(out, " ");
  if (!fix_fracs(out, cap)) return false;
  if (!strcmp(out, "0.5")) snprintf(out, cap, "\\frac{1}{2}");
  return fix_a_slash_b(out, cap);
}

bool tn_math_equiv(const char *a, const char *b) {
  if (!a || !b) return a == b;
  char x[1024], y[1024];
  if (!tn_math_strip(a, x, sizeof x) || !tn_math_strip(b, y, sizeof y)) return !strcmp(a, b);
  if (!strcmp(x, y)) return true;
  double u, v; /* numeric equivalence of what parses as one number: 0.75 == \frac{3}{4} == 3/4 */
  return tn_parse_number(x, &u) && tn_parse_number(y, &v) && tn_numbers_equal(u, v);
}
