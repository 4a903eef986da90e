/* calc.c - the `calculator` tool's evaluator: a recursive-descent parser over exact rationals
 * (GMP mpq: big integers exact, decimals exact, a quotient that does not terminate rounded to
 * 20 decimals). + - * / % ^ (or **), parentheses, unary minus/plus, decimals and 1e3 notation.
 * Never an eval; errors (syntax, division by zero, too large) come back as text.
 * Not for: the toolset plumbing (tool.c). */
#include <ctype.h>
#include <gmp.h>
#include <stdarg.h>
#include <string.h>
#include "agent/tool.h"

typedef struct {
  const char *s, *p;
  int max_digits, depth;
  char err[256];
} calc;

static bool fail(calc *c, const char *fmt, ...) {
  if (c->err[0]) return false;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return false;
}

static void skip(calc *c) { while (*c->p && isspace((unsigned char)*c->p)) c->p++; }

static bool too_big(calc *c, mpq_t v) {
  if (mpz_sizeinbase(mpq_numref(v), 10) > (size_t)c->max_digits + 1 ||
      mpz_sizeinbase(mpq_denref(v), 10) > (size_t)c->max_digits + 1)
    return fail(c, "result too large (over %d digits)", c->max_digits), true;
  return false;
}

static bool expr(calc *c, mpq_t out);

static bool number(calc *c, mpq_t out) {
  const char *q = c->p;
  mpz_t m;
  mpz_init(m);
  long frac = 0;
  bool digits = false;
  while (isdigit((unsigned char)*q) || *q == '_') { if (*q != '_') { mpz_mul_ui(m, m, 10); mpz_add_ui(m, m, (unsigned)(*q - '0')); digits = true; } q++; if (q - c->p > c->max_digits + 2) { mpz_clear(m); return fail(c, "number at position %d too long (over %d digits)", (int)(c->p - c->s) + 1, c->max_digits); } }
  if (*q == '.') {
    q++;
    while (isdigit((unsigned char)*q)) { mpz_mul_ui(m, m, 10); mpz_add_ui(m, m, (unsigned)(*q - '0')); frac++; digits = true; q++; if (frac > c->max_digits) { mpz_clear(m); return fail(c, "number at position %d too long", (int)(c->p - c->s) + 1); } }
  }
  if (!digits) { mpz_clear(m); return fail(c, "syntax error at position %d: expected a number or '('", (int)(c->p - c->s) + 1); }
  long e = 0;
  if ((*q == 'e' || *q == 'E') && (isdigit((unsigned char)q[1]) || ((q[1] == '-' || q[1] == '+') && isdigit((unsigned char)q[2])))) {
    q++;
    int sign = 1;
    if (*q == '-' || *q == '+') { sign = *q == '-' ? -1 : 1; q++; }
    while (isdigit((unsigned char)*q)) { e = e * 10 + (*q - '0'); q++; if (e > c->max_digits) { mpz_clear(m); return fail(c, "exponent of the number at position %d too large", (int)(c->p - c->s) + 1); } }
    e *= sign;
  }
  e -= frac;
  mpz_t p10;
  mpz_init(p10);
  mpz_ui_pow_ui(p10, 10, (unsigned long)(e < 0 ? -e : e));
  mpq_set_z(out, m);
  if (e >= 0) mpz_mul(mpq_numref(out), mpq_numref(out), p10);
  else { mpz_set(mpq_denref(out), p10); mpq_canonicalize(out); }
  mpz_clear(p10);
  mpz_clear(m);
  c->p = q;
  return !too_big(c, out);
}

static bool unary(calc *c, mpq_t out);

static bool primary(calc *c, mpq_t out) {
  skip(c);
  if (*c->p == '(') {
    if (++c->depth > 200) return fail(c, "expression nested too deeply (over 200 parentheses)");
    c->p++;
    if (!expr(c, out)) return false;
    skip(c);
    if (*c->p != ')') return fail(c, "syntax error at position %d: expected ')'", (int)(c->p - c->s) + 1);
    c->p++;
    c->depth--;
    return true;
  }
  return number(c, out);
}

static bool is_pow(calc *c) {
  skip(c);
  if (*c->p == '^') { c->p++; return true; }
  if (c->p[0] == '*' && c->p[1] == '*') { c->p += 2; return true; }
  return false;
}

static bool power(calc *c, mpq_t out) {
  if (!primary(c, out)) return false;
  if (!is_pow(c)) return true;
  mpq_t e;
  mpq_init(e);
  bool ok = unary(c, e); /* right-associative: 2^3^2 = 2^9, 2^-1 = 0.5 */
  if (ok && mpz_cmp_ui(mpq_denref(e), 1) != 0) ok = fail(c, "exponent must be an integer");
  if (ok && !mpz_fits_slong_p(mpq_numref(e))) ok = fail(c, "result too large (exponent out of range)");
  if (ok) {
    long n = mpz_get_si(mpq_numref(e));
    unsigned long an = (unsigned long)(n < 0 ? -n : n);
    if (n < 0 && mpq_sgn(out) == 0) ok = fail(c, "division by zero (0 to a negative power)");
    size_t dn = mpz_sizeinbase(mpq_numref(out), 10), dd = mpz_sizeinbase(mpq_denref(out), 10);
    bool trivial = mpz_cmpabs_ui(mpq_numref(out), 1) <= 0 && mpz_cmp_ui(mpq_denref(out), 1) == 0;
    if (ok && !trivial && an > 0 && ((double)an * (double)((dn > dd ? dn : dd) - 1) > c->max_digits || an > (unsigned long)c->max_digits * 4))
      ok = fail(c, "result too large (over %d digits)", c->max_digits);
    if (ok) {
      mpz_pow_ui(mpq_numref(out), mpq_numref(out), an);
      mpz_pow_ui(mpq_denref(out), mpq_denref(out), an);
      if (n < 0) mpq_inv(out, out);
      mpq_canonicalize(out);
      ok = !too_big(c, out);
    }
  }
  mpq_clear(e);
  return ok;
}

static bool unary(calc *c, mpq_t out) {
  skip(c);
  if (*c->p == '-' || *c->p == '+') {
    bool neg = *c->p == '-';
    c->p++;
    if (++c->depth > 200) return fail(c, "expression nested too deeply");
    bool ok = unary(c, out);
    c->depth--;
    if (ok && neg) mpq_neg(out, out);
    return ok;
  }
  return power(c, out);
}

static bool term(calc *c, mpq_t out) {
  if (!unary(c, out)) return false;
  for (;;) {
    skip(c);
    char op = *c->p;
    if (op == '*' && c->p[1] == '*') return true; /* handled by power */
    if (op != '*' && op != '/' && op != '%') return true;
    c->p++;
    mpq_t r;
    mpq_init(r);
    bool ok = unary(c, r);
    if (ok && op != '*' && mpq_sgn(r) == 0) ok = fail(c, op == '/' ? "division by zero" : "modulo by zero");
    if (ok) {
      if (op == '*') mpq_mul(out, out, r);
      else if (op == '/') mpq_div(out, out, r);
      else { /* a - b * floor(a / b): the sign of the divisor, as Python */
        mpq_t q;
        mpq_init(q);
        mpq_div(q, out, r);
        mpz_t f;
        mpz_init(f);
        mpz_fdiv_q(f, mpq_numref(q), mpq_denref(q));
        mpq_set_z(q, f);
        mpq_mul(q, q, r);
        mpq_sub(out, out, q);
        mpz_clear(f);
        mpq_clear(q);
      }
      ok = !too_big(c, out);
    }
    mpq_clear(r);
    if (!ok) return false;
  }
}

static bool expr(calc *c, mpq_t out) {
  if (!term(c, out)) return false;
  for (;;) {
    skip(c);
    char op = *c->p;
    if (op != '+' && op != '-') return true;
    c->p++;
    mpq_t r;
    mpq_init(r);
    bool ok = term(c, r);
    if (ok) {
      if (op == '+') mpq_add(out, out, r);
      else mpq_sub(out, out, r);
      ok = !too_big(c, out);
    }
    mpq_clear(r);
    if (!ok) return false;
  }
}

/* The value as text: an integer, an exact decimal, or 20 decimals rounded half away from zero. */
static char *format(mpq_t v) {
  if (mpz_cmp_ui(mpq_denref(v), 1) == 0) return mpz_get_str(NULL, 10, mpq_numref(v));
  mpz_t d, s;
  /* count the 2s and 5s of the denominator */
  mpz_init_set(d, mpq_denref(v));
  mpz_t f;
  mpz_init_set_ui(f, 2);
  unsigned long a = mpz_remove(d, d, f);
  mpz_set_ui(f, 5);
  unsigned long b = mpz_remove(d, d, f);
  bool exact = mpz_cmp_ui(d, 1) == 0;
  unsigned long places = exact ? (a > b ? a : b) : 20;
  mpz_init(s);
  mpz_ui_pow_ui(f, 10, places);
  mpz_mul(s, mpq_numref(v), f); /* round(|num| * 10^places / den) */
  bool neg = mpz_sgn(s) < 0;
  mpz_abs(s, s);
  mpz_mul_ui(s, s, 2);
  mpz_add(s, s, mpq_denref(v));
  mpz_mul_ui(f, mpq_denref(v), 2);
  mpz_fdiv_q(s, s, f);
  char *digits = mpz_get_str(NULL, 10, s);
  mpz_clear(s); mpz_clear(d); mpz_clear(f);
  if (!digits) return NULL;
  size_t n = strlen(digits);
  size_t width = n > places ? n : places + 1; /* at least one digit before the point */
  char *out = malloc(width + 3);
  if (!out) { free(digits); return NULL; }
  char *o = out;
  if (neg) *o++ = '-';
  size_t pad = width - n;
  for (size_t i = 0; i < width; i++) {
    if (i == width - places) *o++ = '.';
    *o++ = i < pad ? '0' : digits[i - pad];
  }
  *o = 0;
  free(digits);
  if (!exact) { /* strip trailing zeros of the rounded decimals */
    while (o > out && o[-1] == '0') *--o = 0;
    if (o > out && o[-1] == '.') *--o = 0;
    if (!strcmp(out, "-0")) strcpy(out, "0");
  }
  return out;
}

bool tn_calc_eval(const char *expr_text, int max_digits, char **out, char **err) {
  *out = NULL;
  *err = NULL;
  calc c = {.s = expr_text ? expr_text : "", .max_digits = max_digits > 0 ? max_digits : 10000};
  c.p = c.s;
  mpq_t v;
  mpq_init(v);
  bool ok = expr(&c, v);
  if (ok) {
    skip(&c);
    if (*c.p) ok = fail(&c, "syntax error at position %d: unexpected '%c'", (int)(c.p - c.s) + 1, *c.p);
  }
  if (ok) {
    *out = format(v);
    if (!*out) ok = fail(&c, "out of memory");
  }
  mpq_clear(v);
  if (!ok) *err = strdup(c.err[0] ? c.err : "error");
  return ok;
}
