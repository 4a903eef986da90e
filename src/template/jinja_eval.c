/* jinja_eval.c - the evaluator of the Jinja interpreter: values, scopes, statements,
 * expressions, the filters/tests/methods/globals chat templates use, and the limits that turn
 * a hostile template (deep recursion, huge loops, huge output) into an error naming the line.
 * Values live in one arena per render (nothing is freed before the render ends); strings are
 * UTF-8 and count/index by code point as Python does.
 * Not for: parsing (jinja_parse.c), chat-specific variables (chat_template.c). */
#define _GNU_SOURCE
#include "template/jinja_int.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

/* ---- values ---- */
enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_FUNC };
static const char *vt_name[] = {"undefined", "none", "bool", "int", "float", "string", "list", "dict", "namespace", "function"};
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct {
  uint8_t t, tup; /* tup: a tuple (list printed with parentheses) */
  union {
    bool b; int64_t i; double f;
    struct { const char *p; size_t n; } s;
    jlist *l; jdict *d; jfunc *fn;
  };
} jv;
struct jlist { size_t n; jv *v; };
struct jdict { size_t n, cap; const char **kp; size_t *kn; jv *v; };
typedef struct env env;
enum { F_BUILTIN, F_METHOD, F_MACRO, F_CALLER };
struct jfunc { int kind; const char *name; jv self; const jnode *node; env *closure; };
struct env { env *parent; size_t n, cap; const char **names; jv *vals; };

static const jv UNDEF = {.t = V_UNDEF};
static const jv NONE = {.t = V_NONE};

typedef struct {
  const tn_jinja *t;
  jn_arena a;
  char *out; size_t len, cap;
  tn_jinja_limits lim;
  uint64_t steps;
  int depth;
  int capture;
  int ctl;                 /* 1 break, 2 continue */
  tn_jinja_span *gen; size_t n_gen, cap_gen;
  char err[600];
  int err_line;
  bool failed;
} R;

static int rerr(R *r, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rerr(R *r, int line, const char *fmt, ...) {
  if (r->failed) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err, sizeof r->err, fmt, ap);
  va_end(ap);
  r->err_line = line;
  r->failed = true;
  return -1;
}
static void *ralloc(R *r, size_t n, int line) {
  void *p = jn_arena_alloc(&r->a, n);
  if (!p) rerr(r, line, "the render used more than %zu MiB of values (a runaway loop?)", r->lim.max_memory >> 20);
  return p;
}

/* Work that is not one node (copying, searching, sorting) counts against max_steps too: a step per
 * list item or per 256 bytes, so a loop over big values ends in the steps error, not a hang. */
static int charge(R *r, uint64_t k, int line) {
  r->steps += k;
  if (r->steps > r->lim.max_steps)
    return rerr(r, line, "the render took more than %llu steps (a runaway loop?)", (unsigned long long)r->lim.max_steps);
  return 0;
}

static jv mk_bool(bool b) { jv v = {.t = V_BOOL}; v.b = b; return v; }
static jv mk_int(int64_t i) { jv v = {.t = V_INT}; v.i = i; return v; }
static jv mk_float(double f) { jv v = {.t = V_FLOAT}; v.f = f; return v; }
static jv mk_str(const char *p, size_t n) { jv v = {.t = V_STR}; v.s.p = p; v.s.n = n; return v; }
static int str_new(R *r, const char *p, size_t n, jv *out, int line) {
  if (n > 256 && charge(r, n >> 8, line)) return -1;
  char *c = ralloc(r, n + 1, line);
  if (!c) return -1;
  if (n) memcpy(c, p, n);
  *out = mk_str(c, n);
  return 0;
}
static jv cstr(const char *s) { return mk_str(s, strlen(s)); }

static int list_new(R *r, size_t n, jv *out, int line) {
  if (n > 16 && charge(r, n >> 4, line)) return -1;
  jlist *l = ralloc(r, sizeof *l + 16, line);
  if (!l) return -1;
  l->n = n;
  if (n && !(l->v = ralloc(r, n * sizeof *l->v, line))) return -1;
  *out = (jv){.t = V_LIST};
  out->l = l;
  return 0;
}
static int dict_new(R *r, jv *out, int t, int line) {
  jdict *d = ralloc(r, sizeof *d, line);
  if (!d) return -1;
  *out = (jv){.t = (uint8_t)t};
  out->d = d;
  return 0;
}
static jv *dict_get(const jdict *d, const char *k, size_t kn) {
  for (size_t i = 0; i < d->n; i++)
    if (d->kn[i] == kn && !memcmp(d->kp[i], k, kn)) return &d->v[i];
  return NULL;
}
static int dict_set(R *r, jdict *d, const char *k, size_t kn, jv v, int line) {
  jv *e = dict_get(d, k, kn);
  if (e) { *e = v; return 0; }
  if (d->n == d->cap) {
    size_t nc = d->cap ? 2 * d->cap : 8;
    const char **kp = ralloc(r, nc * sizeof *kp, line);
    size_t *knn = ralloc(r, nc * sizeof *knn, line);
    jv *vv = ralloc(r, nc * sizeof *vv, line);
    if (!kp || !knn || !vv) return -1;
    if (d->n) {
      memcpy(kp, d->kp, d->n * sizeof *kp);
      memcpy(knn, d->kn, d->n * sizeof *knn);
      memcpy(vv, d->v, d->n * sizeof *vv);
    }
    d->kp = kp; d->kn = knn; d->v = vv; d->cap = nc;
  }
  d->kp[d->n] = k;
  d->kn[d->n] = kn;
  d->v[d->n++] = v;
  return 0;
}
static int func_new(R *r, int kind, const char *name, jv self, const jnode *node, env *cl, jv *out, int line) {
  jfunc *f = ralloc(r, sizeof *f, line);
  if (!f) return -1;
  f->kind = kind; f->name = name; f->self = self; f->node = node; f->closure = cl;
  *out = (jv){.t = V_FUNC};
  out->fn = f;
  return 0;
}

/* ---- scopes ---- */
static env *env_new(R *r, env *parent, int line) {
  env *e = ralloc(r, sizeof *e, line);
  if (e) e->parent = parent;
  return e;
}
static int env_set(R *r, env *e, const char *name, jv v, int line) {
  for (size_t i = 0; i < e->n; i++)
    if (!strcmp(e->names[i], name)) { e->vals[i] = v; return 0; }
  if (e->n == e->cap) {
    size_t nc = e->cap ? 2 * e->cap : 8;
    const char **nn = ralloc(r, nc * sizeof *nn, line);
    jv *nv = ralloc(r, nc * sizeof *nv, line);
    if (!nn || !nv) return -1;
    if (e->n) { memcpy(nn, e->names, e->n * sizeof *nn); memcpy(nv, e->vals, e->n * sizeof *nv); }
    e->names = nn; e->vals = nv; e->cap = nc;
  }
  e->names[e->n] = name;
  e->vals[e->n++] = v;
  return 0;
}
static bool env_get(env *e, const char *name, jv *out) {
  for (; e; e = e->parent)
    for (size_t i = e->n; i-- > 0;)
      if (!strcmp(e->names[i], name)) { *out = e->vals[i]; return true; }
  return false;
}

/* ---- output ---- */
static int emit(R *r, const char *p, size_t n, int line) {
  if (n > 256 && charge(r, n >> 8, line)) return -1;
  if (r->len + n > r->lim.max_output)
    return rerr(r, line, "the rendered text exceeds %zu bytes (a runaway loop?)", r->lim.max_output);
  if (r->len + n + 1 > r->cap) {
    size_t nc = r->cap ? r->cap : 4096;
    while (nc < r->len + n + 1) nc *= 2;
    char *no = realloc(r->out, nc);
    if (!no) return rerr(r, line, "out of memory");
    r->out = no;
    r->cap = nc;
  }
  memcpy(r->out + r->len, p, n);
  r->len += n;
  return 0;
}

/* growable scratch string in the output buffer's style, for building values */
typedef struct { char *s; size_t n, cap; } sb;
static int sb_put(R *r, sb *b, const char *p, size_t n, int line) {
  if (n > 256 && charge(r, n >> 8, line)) return -1;
  if (b->n + n > r->lim.max_output) return rerr(r, line, "a string exceeds %zu bytes", r->lim.max_output);
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? 2 * b->cap : 64;
    while (nc < b->n + n + 1) nc *= 2;
    char *ns = realloc(b->s, nc);
    if (!ns) return rerr(r, line, "out of memory");
    b->s = ns;
    b->cap = nc;
  }
  memcpy(b->s + b->n, p, n);
  b->n += n;
  b->s[b->n] = 0;
  return 0;
}
static int sb_puts(R *r, sb *b, const char *s, int line) { return sb_put(r, b, s, strlen(s), line); }
static int sb_done(R *r, sb *b, jv *out, int line) {
  int rc = str_new(r, b->s ? b->s : "", b->n, out, line);
  free(b->s);
  b->s = NULL;
  return rc;
}

/* ---- UTF-8 helpers ---- */
static size_t u8_next(const char *s, size_t n, size_t i, int32_t *cp) {
  utf8proc_int32_t c;
  utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
  if (l <= 0) { *cp = (unsigned char)s[i]; return 1; }
  *cp = c;
  return (size_t)l;
}
/* Code points as u8_next walks them (an invalid byte is one code point), so counts, offsets and
 * iteration agree on any input. */
static size_t u8_len(const char *s, size_t n) {
  size_t k = 0;
  int32_t c;
  for (size_t i = 0; i < n; k++) i += u8_next(s, n, i, &c);
  return k;
}
static size_t u8_offset(const char *s, size_t n, size_t cp_index) { /* byte offset of code point cp_index */
  size_t k = 0, i = 0;
  int32_t c;
  for (; i < n && k < cp_index; k++) i += u8_next(s, n, i, &c);
  return i < n ? i : n;
}
static bool py_space(int32_t c) {
  return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* ---- string forms ---- */
static int put_float(R *r, sb *b, double f, int line) {
  char buf[64];
  if (isnan(f)) return sb_puts(r, b, "nan", line);
  if (isinf(f)) return sb_puts(r, b, f < 0 ? "-inf" : "inf", line);
  int prec = 1;
  for (; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
    if (strtod(buf, NULL) == f) break;
  }
  /* buf: d.ddde[+-]XX -> digits and exponent */
  char digits[32];
  int nd = 0, exp10;
  const char *q = buf;
  bool neg = *q == '-';
  if (neg) q++;
  for (; *q && *q != 'e'; q++)
    if (*q != '.') digits[nd++] = *q;
  exp10 = atoi(q + 1);
  while (nd > 1 && digits[nd - 1] == '0') nd--;
  char o[64];
  int k = 0;
  if (neg) o[k++] = '-';
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      o[k++] = '0'; o[k++] = '.';
      for (int i = 0; i < -exp10 - 1; i++) o[k++] = '0';
      for (int i = 0; i < nd; i++) o[k++] = digits[i];
    } else {
      for (int i = 0; i <= exp10; i++) o[k++] = i < nd ? digits[i] : '0';
      o[k++] = '.';
      if (nd > exp10 + 1) for (int i = exp10 + 1; i < nd; i++) o[k++] = digits[i];
      else o[k++] = '0';
    }
    o[k] = 0;
  } else {
    o[k++] = digits[0];
    if (nd > 1) { o[k++] = '.'; for (int i = 1; i < nd; i++) o[k++] = digits[i]; }
    k += snprintf(o + k, sizeof o - k, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
  }
  return sb_puts(r, b, o, line);
}
static int put_repr(R *r, sb *b, jv v, int line, int depth);
static int put_str(R *r, sb *b, jv v, int line, int depth) { /* Python str() */
  char buf[32];
  switch (v.t) {
  case V_UNDEF: return 0;
  case V_NONE: return sb_puts(r, b, "None", line);
  case V_BOOL: return sb_puts(r, b, v.b ? "True" : "False", line);
  case V_INT: snprintf(buf, sizeof buf, "%lld", (long long)v.i); return sb_puts(r, b, buf, line);
  case V_FLOAT: return put_float(r, b, v.f, line);
  case V_STR: return sb_put(r, b, v.s.p, v.s.n, line);
  default: return put_repr(r, b, v, line, depth);
  }
}
static int put_repr_str(R *r, sb *b, const char *p, size_t n, int line) {
  char q = memchr(p, '\'', n) && !memchr(p, '"', n) ? '"' : '\'';
  if (sb_put(r, b, &q, 1, line)) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    char e[8];
    if (c == '\\' || c == (unsigned char)q) { e[0] = '\\'; e[1] = (char)c; e[2] = 0; }
    else if (c == '\n') strcpy(e, "\\n");
    else if (c == '\r') strcpy(e, "\\r");
    else if (c == '\t') strcpy(e, "\\t");
    else if (c < 0x20 || c == 0x7f) snprintf(e, sizeof e, "\\x%02x", c);
    else { e[0] = (char)c; e[1] = 0; }
    if (sb_puts(r, b, e, line)) return -1;
  }
  return sb_put(r, b, &q, 1, line);
}
static int put_repr(R *r, sb *b, jv v, int line, int depth) {
  if (depth > 100) return rerr(r, line, "value nests deeper than 100 levels");
  switch (v.t) {
  case V_STR: return put_repr_str(r, b, v.s.p, v.s.n, line);
  case V_LIST:
    if (sb_puts(r, b, v.tup ? "(" : "[", line)) return -1;
    for (size_t i = 0; i < v.l->n; i++) {
      if (i && sb_puts(r, b, ", ", line)) return -1;
      if (put_repr(r, b, v.l->v[i], line, depth + 1)) return -1;
    }
    if (v.tup && v.l->n == 1 && sb_puts(r, b, ",", line)) return -1;
    return sb_puts(r, b, v.tup ? ")" : "]", line);
  case V_DICT: case V_NS:
    if (sb_puts(r, b, v.t == V_NS ? "<Namespace {" : "{", line)) return -1;
    for (size_t i = 0; i < v.d->n; i++) {
      if (i && sb_puts(r, b, ", ", line)) return -1;
      if (put_repr_str(r, b, v.d->kp[i], v.d->kn[i], line) || sb_puts(r, b, ": ", line) ||
          put_repr(r, b, v.d->v[i], line, depth + 1))
        return -1;
    }
    return sb_puts(r, b, v.t == V_NS ? "}>" : "}", line);
  case V_FUNC: return sb_puts(r, b, "<function>", line);
  case V_UNDEF: return sb_puts(r, b, "Undefined", line);
  default: return put_str(r, b, v, line, depth);
  }
}
static int to_str(R *r, jv v, jv *out, int line) {
  if (v.t == V_STR) { *out = v; return 0; }
  sb b = {0};
  if (put_str(r, &b, v, line, 0)) { free(b.s); return -1; }
  return sb_done(r, &b, out, line);
}

/* JSON as Python's json.dumps (transformers' tojson: ensure_ascii=False by default) */
typedef struct { int indent; bool ascii, sort; const char *isep, *ksep; } jopts;
static int json_str(R *r, sb *b, const char *p, size_t n, bool ascii, int line) {
  if (sb_puts(r, b, "\"", line)) return -1;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)p[i];
    char e[16];
    if (c == '"') strcpy(e, "\\\"");
    else if (c == '\\') strcpy(e, "\\\\");
    else if (c == '\n') strcpy(e, "\\n");
    else if (c == '\r') strcpy(e, "\\r");
    else if (c == '\t') strcpy(e, "\\t");
    else if (c == '\b') strcpy(e, "\\b");
    else if (c == '\f') strcpy(e, "\\f");
    else if (c < 0x20) snprintf(e, sizeof e, "\\u%04x", c);
    else if (c >= 0x80 && ascii) {
      int32_t cp;
      i += u8_next(p, n, i, &cp);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else {
        snprintf(e, sizeof e, "\\u%04x", cp);
      }
      if (sb_puts(r, b, e, line)) return -1;
      continue;
    } else {
      size_t j = i;
      while (j < n && (unsigned char)p[j] >= 0x20 && p[j] != '"' && p[j] != '\\' && !((unsigned char)p[j] >= 0x80 && ascii)) j++;
      if (sb_put(r, b, p + i, j - i, line)) return -1;
      i = j;
      continue;
    }
    if (sb_puts(r, b, e, line)) return -1;
    i++;
  }
  return sb_puts(r, b, "\"", line);
}
static int kcmp(const void *a, const void *b, void *ctx) {
  const jdict *d = ctx;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  size_t n = d->kn[i] < d->kn[j] ? d->kn[i] : d->kn[j];
  int c = memcmp(d->kp[i], d->kp[j], n);
  if (c) return c;
  return d->kn[i] < d->kn[j] ? -1 : d->kn[i] > d->kn[j];
}
static int put_json(R *r, sb *b, jv v, const jopts *o, int depth, int line) {
  if (depth > 100) return rerr(r, line, "tojson: value nests deeper than 100 levels");
  char buf[32];
  switch (v.t) {
  case V_UNDEF: case V_NONE: return sb_puts(r, b, "null", line);
  case V_BOOL: return sb_puts(r, b, v.b ? "true" : "false", line);
  case V_INT: snprintf(buf, sizeof buf, "%lld", (long long)v.i); return sb_puts(r, b, buf, line);
  case V_FLOAT:
    if (isnan(v.f)) return sb_puts(r, b, "NaN", line);
    if (isinf(v.f)) return sb_puts(r, b, v.f < 0 ? "-Infinity" : "Infinity", line);
    return put_float(r, b, v.f, line);
  case V_STR: return json_str(r, b, v.s.p, v.s.n, o->ascii, line);
  case V_FUNC: return rerr(r, line, "tojson: a function is not JSON serializable");
  default: break;
  }
  bool list = v.t == V_LIST;
  size_t n = list ? v.l->n : v.d->n;
  if (sb_puts(r, b, list ? "[" : "{", line)) return -1;
  if (!n) return sb_puts(r, b, list ? "]" : "}", line);
  size_t *ord = NULL;
  if (!list) {
    ord = malloc(n * sizeof *ord);
    if (!ord) return rerr(r, line, "out of memory");
    for (size_t i = 0; i < n; i++) ord[i] = i;
    if (o->sort) qsort_r(ord, n, sizeof *ord, kcmp, v.d);
  }
  int rc = 0;
  for (size_t k = 0; k < n && !rc; k++) {
    if (k) rc |= sb_puts(r, b, o->isep, line);
    if (o->indent >= 0) {
      rc |= sb_puts(r, b, "\n", line);
      for (int s = 0; s < o->indent * (depth + 1) && !rc; s++) rc |= sb_puts(r, b, " ", line);
    }
    if (list) {
      rc |= put_json(r, b, v.l->v[k], o, depth + 1, line);
    } else {
      size_t i = ord[k];
      rc |= json_str(r, b, v.d->kp[i], v.d->kn[i], o->ascii, line);
      rc |= sb_puts(r, b, o->ksep, line);
      rc |= put_json(r, b, v.d->v[i], o, depth + 1, line);
    }
  }
  free(ord);
  if (rc) return -1;
  if (o->indent >= 0) {
    if (sb_puts(r, b, "\n", line)) return -1;
    for (int s = 0; s < o->indent * depth; s++)
      if (sb_puts(r, b, " ", line)) return -1;
  }
  return sb_puts(r, b, list ? "]" : "}", line);
}

/* ---- truth, equality, comparison ---- */
static bool truthy(jv v) {
  switch (v.t) {
  case V_UNDEF: case V_NONE: return false;
  case V_BOOL: return v.b;
  case V_INT: return v.i != 0;
  case V_FLOAT: return v.f != 0;
  case V_STR: return v.s.n > 0;
  case V_LIST: return v.l->n > 0;
  case V_DICT: return v.d->n > 0;
  default: return true;
  }
}
static bool is_num(jv v) { return v.t == V_INT || v.t == V_FLOAT || v.t == V_BOOL; }
static double num(jv v) { return v.t == V_FLOAT ? v.f : v.t == V_INT ? (double)v.i : (double)v.b; }
static bool py_eq(jv a, jv b) {
  if (is_num(a) && is_num(b)) {
    if (a.t != V_FLOAT && b.t != V_FLOAT) return (a.t == V_INT ? a.i : a.b) == (b.t == V_INT ? b.i : b.b);
    return num(a) == num(b);
  }
  if (a.t != b.t) return false;
  switch (a.t) {
  case V_UNDEF: case V_NONE: return true;
  case V_STR: return a.s.n == b.s.n && !memcmp(a.s.p, b.s.p, a.s.n);
  case V_LIST:
    if (a.l->n != b.l->n) return false;
    for (size_t i = 0; i < a.l->n; i++)
      if (!py_eq(a.l->v[i], b.l->v[i])) return false;
    return true;
  case V_DICT:
    if (a.d->n != b.d->n) return false;
    for (size_t i = 0; i < a.d->n; i++) {
      jv *o = dict_get(b.d, a.d->kp[i], a.d->kn[i]);
      if (!o || !py_eq(a.d->v[i], *o)) return false;
    }
    return true;
  default: return a.d == b.d;
  }
}
/* <0, 0, >0; -2 with *bad when not comparable */
static int py_cmp(jv a, jv b, bool *bad, bool fold) {
  *bad = false;
  if (is_num(a) && is_num(b)) { double x = num(a), y = num(b); return x < y ? -1 : x > y; }
  if (a.t == V_STR && b.t == V_STR) {
    if (fold) {
      size_t i = 0, j = 0;
      while (i < a.s.n && j < b.s.n) {
        int32_t c1, c2;
        i += u8_next(a.s.p, a.s.n, i, &c1);
        j += u8_next(b.s.p, b.s.n, j, &c2);
        c1 = utf8proc_tolower(c1);
        c2 = utf8proc_tolower(c2);
        if (c1 != c2) return c1 < c2 ? -1 : 1;
      }
      return (i < a.s.n) - (j < b.s.n);
    }
    size_t n = a.s.n < b.s.n ? a.s.n : b.s.n;
    int c = memcmp(a.s.p, b.s.p, n);
    if (c) return c < 0 ? -1 : 1;
    return a.s.n < b.s.n ? -1 : a.s.n > b.s.n;
  }
  if (a.t == V_LIST && b.t == V_LIST) {
    for (size_t i = 0; i < a.l->n && i < b.l->n; i++) {
      int c = py_cmp(a.l->v[i], b.l->v[i], bad, fold);
      if (*bad || c) return c;
    }
    return a.l->n < b.l->n ? -1 : a.l->n > b.l->n;
  }
  *bad = true;
  return 0;
}

/* ---- evaluation ---- */
static int eval(R *r, const jnode *n, env *e, jv *out);
static int exec_block(R *r, jnode **v, int nv, env *e);

#define STEP(r, line)                                                                                           \
  do {                                                                                                          \
    if (++(r)->steps > (r)->lim.max_steps)                                                                      \
      return rerr(r, line, "the render took more than %llu steps (a runaway loop?)",                          \
                  (unsigned long long)(r)->lim.max_steps);                                                     \
  } while (0)

typedef struct { jv *pos; int np; const char **kn; jv *kv; int nk; } args_t;

static int eval_args(R *r, jnode **v, int nv, env *e, args_t *a, int line) {
  memset(a, 0, sizeof *a);
  int cap = nv + 1;
  a->pos = ralloc(r, (size_t)cap * sizeof *a->pos, line);
  a->kn = ralloc(r, (size_t)cap * sizeof *a->kn, line);
  a->kv = ralloc(r, (size_t)cap * sizeof *a->kv, line);
  if (!a->pos || !a->kn || !a->kv) return -1;
  for (int i = 0; i < nv; i++) {
    const jnode *x = v[i];
    jv val;
    if (x->k == N_KWARG) {
      if (eval(r, x->a, e, &val)) return -1;
      a->kn[a->nk] = x->s;
      a->kv[a->nk++] = val;
    } else if (x->k == N_SPREAD || x->k == N_KWSPREAD) {
      if (eval(r, x->a, e, &val)) return -1;
      if (x->k == N_SPREAD) {
        if (val.t != V_LIST) return rerr(r, line, "cannot unpack %s with '*'", vt_name[val.t]);
        jv *np = ralloc(r, (size_t)(cap + val.l->n) * sizeof *np, line);
        if (!np) return -1;
        memcpy(np, a->pos, (size_t)a->np * sizeof *np);
        memcpy(np + a->np, val.l->v, val.l->n * sizeof *np);
        a->pos = np;
        a->np += (int)val.l->n;
        cap += (int)val.l->n;
      } else {
        if (val.t != V_DICT) return rerr(r, line, "argument after ** must be a mapping, not %s", vt_name[val.t]);
        const char **kn = ralloc(r, (size_t)(a->nk + val.d->n + nv) * sizeof *kn, line);
        jv *kv = ralloc(r, (size_t)(a->nk + val.d->n + nv) * sizeof *kv, line);
        if (!kn || !kv) return -1;
        memcpy(kn, a->kn, (size_t)a->nk * sizeof *kn);
        memcpy(kv, a->kv, (size_t)a->nk * sizeof *kv);
        for (size_t j = 0; j < val.d->n; j++) {
          jv ks;
          if (str_new(r, val.d->kp[j], val.d->kn[j], &ks, line)) return -1;
          kn[a->nk] = ks.s.p;
          kv[a->nk++] = val.d->v[j];
        }
        a->kn = kn;
        a->kv = kv;
      }
    } else {
      if (eval(r, x, e, &val)) return -1;
      a->pos[a->np++] = val;
    }
  }
  return 0;
}
/* positional i, else keyword name, else NULL */
static const jv *arg(const args_t *a, int i, const char *name) {
  if (i >= 0 && i < a->np) return &a->pos[i];
  for (int k = 0; name && k < a->nk; k++)
    if (!strcmp(a->kn[k], name)) return &a->kv[k];
  return NULL;
}

static int call_value(R *r, jv fn, const args_t *a, const jv *caller, int line, jv *out);
static int apply_filter(R *r, jv v, const char *name, const args_t *a, env *e, int line, jv *out);
static int apply_test(R *r, jv v, const char *name, const args_t *a, int line, bool *res);

static int get_member(R *r, jv obj, jv key, int line, jv *out);

static int iter_items(R *r, jv v, jv *out, int line) { /* anything iterable -> list */
  switch (v.t) {
  case V_LIST: /* shared, not copied: charged as if walked */
    if (v.l->n > 16 && charge(r, v.l->n >> 4, line)) return -1;
    *out = v;
    out->tup = 0;
    return 0;
  case V_UNDEF: return list_new(r, 0, out, line);
  case V_DICT: case V_NS:
    if (list_new(r, v.d->n, out, line)) return -1;
    for (size_t i = 0; i < v.d->n; i++) out->l->v[i] = mk_str(v.d->kp[i], v.d->kn[i]);
    return 0;
  case V_STR: {
    size_t n = u8_len(v.s.p, v.s.n), k = 0;
    if (list_new(r, n, out, line)) return -1;
    for (size_t i = 0; i < v.s.n;) {
      int32_t cp;
      size_t l = u8_next(v.s.p, v.s.n, i, &cp);
      out->l->v[k++] = mk_str(v.s.p + i, l);
      i += l;
    }
    out->l->n = k;
    return 0;
  }
  default: return rerr(r, line, "'%s' object is not iterable", vt_name[v.t]);
  }
}

static int assign(R *r, const jnode *target, jv v, env *e) {
  if (target->k == N_IDENT) return env_set(r, e, target->s, v, target->line);
  if (target->k == N_TUPLE) {
    jv items;
    if (iter_items(r, v, &items, target->line)) return -1;
    if ((int)items.l->n != target->nv)
      return rerr(r, target->line, "too %s values to unpack (expected %d, got %zu)",
                  (int)items.l->n < target->nv ? "few" : "many", target->nv, items.l->n);
    for (int i = 0; i < target->nv; i++) {
      if (target->v[i]->k != N_IDENT) return rerr(r, target->line, "can only unpack into names");
      if (env_set(r, e, target->v[i]->s, items.l->v[i], target->line)) return -1;
    }
    return 0;
  }
  if (target->k == N_MEMBER && !target->i && target->b->k == N_IDENT) {
    jv obj;
    if (eval(r, target->a, e, &obj)) return -1;
    if (obj.t != V_NS) return rerr(r, target->line, "cannot assign attribute '%s' on a %s (only on a namespace())", target->b->s, vt_name[obj.t]);
    return dict_set(r, obj.d, target->b->s, strlen(target->b->s), v, target->line);
  }
  return rerr(r, target->line, "cannot assign to this expression");
}

static int capture(R *r, jnode **body, int nb, env *e, jv *out, int line) {
  size_t start = r->len;
  r->capture++;
  int rc = exec_block(r, body, nb, e);
  r->capture--;
  if (rc) return -1;
  rc = str_new(r, r->out ? r->out + start : "", r->len - start, out, line);
  r->len = start;
  return rc;
}

static int call_macro(R *r, jfunc *f, const args_t *a, const jv *caller, int line, jv *out) {
  const jnode *m = f->node;
  jnode **params = m->v;
  int np = m->nv;
  env *e = env_new(r, f->closure, line);
  if (!e) return -1;
  if (a->np > np) {
    /* varargs */
    jv va; /* a tuple, as in Python */
    if (list_new(r, (size_t)(a->np - np), &va, line)) return -1;
    va.tup = 1;
    for (int i = np; i < a->np; i++) va.l->v[i - np] = a->pos[i];
    if (env_set(r, e, "varargs", va, line)) return -1;
  } else {
    jv va;
    if (list_new(r, 0, &va, line)) return -1;
    va.tup = 1;
    if (env_set(r, e, "varargs", va, line)) return -1;
  }
  jv kw;
  if (dict_new(r, &kw, V_DICT, line)) return -1;
  for (int k = 0; k < a->nk; k++) {
    bool known = false;
    for (int i = 0; i < np; i++)
      if (!strcmp(params[i]->s, a->kn[k])) known = true;
    if (!known && dict_set(r, kw.d, a->kn[k], strlen(a->kn[k]), a->kv[k], line)) return -1;
  }
  if (env_set(r, e, "kwargs", kw, line)) return -1;
  for (int i = 0; i < np; i++) {
    const jv *v = arg(a, i, params[i]->s);
    if (v) {
      if (env_set(r, e, params[i]->s, *v, line)) return -1;
    } else if (params[i]->k == N_KWARG) {
      jv d;
      if (eval(r, params[i]->a, e, &d) || env_set(r, e, params[i]->s, d, line)) return -1;
    } else {
      if (env_set(r, e, params[i]->s, UNDEF, line)) return -1;
    }
  }
  if (caller && env_set(r, e, "caller", *caller, line)) return -1;
  if (++r->depth > r->lim.max_depth) return rerr(r, line, "macro calls nest deeper than %d", r->lim.max_depth);
  int rc = capture(r, m->w, m->nw, e, out, line); /* a macro's body, or a call block's (the caller) */
  r->depth--;
  return rc;
}

/* ---- globals ---- */
static const char *MONTHS[] = {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"};
static const char *DAYS[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
static int strftime_now(R *r, jv fmt, int line, jv *out) {
  if (fmt.t != V_STR) return rerr(r, line, "strftime_now() takes a format string");
  struct tm tmv;
  const char *d = getenv("TN_DATE");
  if (d && *d) {
    int y, m, dd;
    if (sscanf(d, "%d-%d-%d", &y, &m, &dd) != 3 || m < 1 || m > 12 || dd < 1 || dd > 31)
      return rerr(r, line, "TN_DATE='%s' is not YYYY-MM-DD", d);
    memset(&tmv, 0, sizeof tmv);
    tmv.tm_year = y - 1900; tmv.tm_mon = m - 1; tmv.tm_mday = dd; tmv.tm_hour = 12;
    time_t tt = timegm(&tmv);
    gmtime_r(&tt, &tmv);
    tmv.tm_hour = 0;
  } else {
    time_t now = time(NULL);
    localtime_r(&now, &tmv);
  }
  sb b = {0};
  char buf[32];
  for (size_t i = 0; i < fmt.s.n; i++) {
    char c = fmt.s.p[i];
    int rc;
    if (c != '%' || i + 1 >= fmt.s.n) { rc = sb_put(r, &b, &c, 1, line); if (rc) { free(b.s); return -1; } continue; }
    char f = fmt.s.p[++i];
    buf[0] = 0;
    switch (f) {
    case 'Y': snprintf(buf, sizeof buf, "%d", tmv.tm_year + 1900); break;
    case 'y': snprintf(buf, sizeof buf, "%02d", tmv.tm_year % 100); break;
    case 'm': snprintf(buf, sizeof buf, "%02d", tmv.tm_mon + 1); break;
    case 'd': snprintf(buf, sizeof buf, "%02d", tmv.tm_mday); break;
    case 'e': snprintf(buf, sizeof buf, "%2d", tmv.tm_mday); break;
    case 'j': snprintf(buf, sizeof buf, "%03d", tmv.tm_yday + 1); break;
    case 'H': snprintf(buf, sizeof buf, "%02d", tmv.tm_hour); break;
    case 'I': snprintf(buf, sizeof buf, "%02d", tmv.tm_hour % 12 ? tmv.tm_hour % 12 : 12); break;
    case 'M': snprintf(buf, sizeof buf, "%02d", tmv.tm_min); break;
    case 'S': snprintf(buf, sizeof buf, "%02d", tmv.tm_sec); break;
    case 'p': snprintf(buf, sizeof buf, "%s", tmv.tm_hour < 12 ? "AM" : "PM"); break;
    case 'B': snprintf(buf, sizeof buf, "%s", MONTHS[tmv.tm_mon]); break;
    case 'b': snprintf(buf, sizeof buf, "%.3s", MONTHS[tmv.tm_mon]); break;
    case 'A': snprintf(buf, sizeof buf, "%s", DAYS[tmv.tm_wday]); break;
    case 'a': snprintf(buf, sizeof buf, "%.3s", DAYS[tmv.tm_wday]); break;
    case '%': strcpy(buf, "%"); break;
    default: snprintf(buf, sizeof buf, "%%%c", f); break;
    }
    if (sb_puts(r, &b, buf, line)) { free(b.s); return -1; }
  }
  return sb_done(r, &b, out, line);
}

static int call_builtin(R *r, jfunc *f, const args_t *a, int line, jv *out) {
  const char *nm = f->name;
  if (!strcmp(nm, "range")) {
    int64_t st = 0, sp, step = 1;
    for (int i = 0; i < a->np; i++)
      if (a->pos[i].t != V_INT) return rerr(r, line, "range() takes integers");
    if (a->np == 1) sp = a->pos[0].i;
    else if (a->np >= 2) { st = a->pos[0].i; sp = a->pos[1].i; if (a->np > 2) step = a->pos[2].i; }
    else return rerr(r, line, "range() takes 1 to 3 integers");
    if (!step) return rerr(r, line, "range() step must not be zero");
    if (step == INT64_MIN) return rerr(r, line, "range() step is too large");
    __int128 span = step > 0 ? (__int128)sp - st : (__int128)st - sp, as = step > 0 ? step : -(__int128)step;
    __int128 n128 = span > 0 ? (span + as - 1) / as : 0;
    if (n128 > 10000000) return rerr(r, line, "range() of more than 10000000 items is too long");
    int64_t n = (int64_t)n128;
    if (n > 10000000) return rerr(r, line, "range() of %lld items is too long", (long long)n);
    if (list_new(r, (size_t)n, out, line)) return -1;
    for (int64_t i = 0; i < n; i++) out->l->v[i] = mk_int((int64_t)((__int128)st + (__int128)i * step));
    return 0;
  }
  if (!strcmp(nm, "namespace") || !strcmp(nm, "dict")) {
    if (dict_new(r, out, nm[0] == 'n' ? V_NS : V_DICT, line)) return -1;
    if (a->np > 1) return rerr(r, line, "%s() takes at most 1 positional argument", nm);
    if (a->np == 1) {
      jv s = a->pos[0];
      if (s.t == V_DICT || s.t == V_NS) {
        for (size_t i = 0; i < s.d->n; i++)
          if (dict_set(r, out->d, s.d->kp[i], s.d->kn[i], s.d->v[i], line)) return -1;
      } else if (s.t == V_LIST) {
        for (size_t i = 0; i < s.l->n; i++) {
          jv p = s.l->v[i];
          if (p.t != V_LIST || p.l->n != 2 || p.l->v[0].t != V_STR)
            return rerr(r, line, "%s() expected a mapping or (key, value) pairs", nm);
          if (dict_set(r, out->d, p.l->v[0].s.p, p.l->v[0].s.n, p.l->v[1], line)) return -1;
        }
      } else {
        return rerr(r, line, "'%s' object is not iterable", vt_name[s.t]);
      }
    }
    for (int k = 0; k < a->nk; k++)
      if (dict_set(r, out->d, a->kn[k], strlen(a->kn[k]), a->kv[k], line)) return -1;
    return 0;
  }
  if (!strcmp(nm, "raise_exception")) {
    jv m = a->np ? a->pos[0] : cstr("raise_exception() called");
    jv s;
    if (to_str(r, m, &s, line)) return -1;
    return rerr(r, line, "the template raised an exception: %.*s", (int)(s.s.n > 400 ? 400 : s.s.n), s.s.p);
  }
  if (!strcmp(nm, "strftime_now")) return strftime_now(r, a->np ? a->pos[0] : UNDEF, line, out);
  if (!strcmp(nm, "loop.cycle")) {
    if (!a->np) return rerr(r, line, "loop.cycle() needs at least one value");
    jv *i0 = dict_get(f->self.d, "index0", 6);
    *out = a->pos[i0 && i0->t == V_INT ? i0->i % a->np : 0];
    return 0;
  }
  return rerr(r, line, "unknown function '%s'", nm);
}

/* ---- string and dict methods ---- */
static bool in_chars(int32_t c, jv chars) { /* chars: NONE -> whitespace */
  if (chars.t != V_STR) return py_space(c);
  for (size_t i = 0; i < chars.s.n;) {
    int32_t d;
    i += u8_next(chars.s.p, chars.s.n, i, &d);
    if (d == c) return true;
  }
  return false;
}
static jv str_strip(jv s, jv chars, bool left, bool right) {
  size_t b = 0, e = s.s.n;
  if (left)
    while (b < e) {
      int32_t c;
      size_t l = u8_next(s.s.p, e, b, &c);
      if (!in_chars(c, chars)) break;
      b += l;
    }
  if (right)
    while (e > b) {
      size_t q = e - 1;
      while (q > b && ((unsigned char)s.s.p[q] & 0xC0) == 0x80) q--;
      int32_t c;
      u8_next(s.s.p, e, q, &c);
      if (!in_chars(c, chars)) break;
      e = q;
    }
  return mk_str(s.s.p + b, e - b);
}
static int str_case(R *r, jv s, int mode, int line, jv *out) { /* 0 upper 1 lower 2 title 3 capitalize */
  sb b = {0};
  bool prev_alnum = false;
  size_t k = 0;
  for (size_t i = 0; i < s.s.n; k++) {
    int32_t c;
    i += u8_next(s.s.p, s.s.n, i, &c);
    int32_t o;
    if (mode == 0) o = utf8proc_toupper(c);
    else if (mode == 1) o = utf8proc_tolower(c);
    else if (mode == 2) o = prev_alnum ? utf8proc_tolower(c) : utf8proc_toupper(c);
    else o = k == 0 ? utf8proc_toupper(c) : utf8proc_tolower(c);
    if (c == 0xDF && (mode == 0 || ((mode == 2 || mode == 3) && o != utf8proc_tolower(c)))) { /* full case mapping of ß */
      if (sb_put(r, &b, mode == 0 ? "SS" : "Ss", 2, line)) { free(b.s); return -1; }
      prev_alnum = true;
      continue;
    }
    utf8proc_category_t cat = utf8proc_category(c);
    prev_alnum = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || cat == UTF8PROC_CATEGORY_ND;
    utf8proc_uint8_t enc[4];
    utf8proc_ssize_t l = utf8proc_encode_char(o, enc);
    if (sb_put(r, &b, (const char *)enc, (size_t)l, line)) { free(b.s); return -1; }
  }
  return sb_done(r, &b, out, line);
}
static int str_split(R *r, jv s, jv sep, int64_t maxsplit, int line, jv *out) {
  size_t cap = 8, n = 0;
  jv *v = malloc(cap * sizeof *v);
  if (!v) return rerr(r, line, "out of memory");
#define ADD(x)                                                                                                  \
  do {                                                                                                          \
    if (n == cap) { cap *= 2; jv *nv = realloc(v, cap * sizeof *nv); if (!nv) { free(v); return rerr(r, line, "out of memory"); } v = nv; } \
    v[n++] = (x);                                                                                               \
  } while (0)
  if (sep.t == V_STR) {
    if (!sep.s.n) { free(v); return rerr(r, line, "split(): empty separator"); }
    size_t i = 0;
    for (;;) {
      const char *f = (maxsplit < 0 || (int64_t)n < maxsplit) ? memmem(s.s.p + i, s.s.n - i, sep.s.p, sep.s.n) : NULL;
      if (!f) { ADD(mk_str(s.s.p + i, s.s.n - i)); break; }
      ADD(mk_str(s.s.p + i, (size_t)(f - s.s.p) - i));
      i = (size_t)(f - s.s.p) + sep.s.n;
    }
  } else {
    size_t i = 0;
    for (;;) {
      while (i < s.s.n) { int32_t c; size_t l = u8_next(s.s.p, s.s.n, i, &c); if (!py_space(c)) break; i += l; }
      if (i >= s.s.n) break;
      if (maxsplit >= 0 && (int64_t)n >= maxsplit) {
        jv rest = str_strip(mk_str(s.s.p + i, s.s.n - i), NONE, false, true);
        ADD(rest);
        break;
      }
      size_t st = i;
      while (i < s.s.n) { int32_t c; size_t l = u8_next(s.s.p, s.s.n, i, &c); if (py_space(c)) break; i += l; }
      ADD(mk_str(s.s.p + st, i - st));
    }
  }
#undef ADD
  int rc = list_new(r, n, out, line);
  if (!rc && n) memcpy(out->l->v, v, n * sizeof *v);
  free(v);
  return rc;
}
static int str_replace(R *r, jv s, jv old, jv new_, int64_t count, int line, jv *out) {
  if (old.t != V_STR || new_.t != V_STR) return rerr(r, line, "replace() takes strings");
  sb b = {0};
  size_t i = 0;
  int64_t done = 0;
  if (!old.s.n) { /* insert between every character */
    for (;;) {
      if (count < 0 || done < count) { if (sb_put(r, &b, new_.s.p, new_.s.n, line)) goto fail; done++; }
      if (i >= s.s.n) break;
      int32_t c;
      size_t l = u8_next(s.s.p, s.s.n, i, &c);
      if (sb_put(r, &b, s.s.p + i, l, line)) goto fail;
      i += l;
    }
    return sb_done(r, &b, out, line);
  }
  for (;;) {
    const char *f = (count < 0 || done < count) ? memmem(s.s.p + i, s.s.n - i, old.s.p, old.s.n) : NULL;
    if (!f) { if (sb_put(r, &b, s.s.p + i, s.s.n - i, line)) goto fail; break; }
    if (sb_put(r, &b, s.s.p + i, (size_t)(f - s.s.p) - i, line) || sb_put(r, &b, new_.s.p, new_.s.n, line)) goto fail;
    i = (size_t)(f - s.s.p) + old.s.n;
    done++;
  }
  if (!b.s && str_new(r, "", 0, out, line)) return -1;
  return sb_done(r, &b, out, line);
fail:
  free(b.s);
  return -1;
}
static bool starts_ends(jv s, jv p, bool ends) {
  if (p.t != V_STR || p.s.n > s.s.n) return false;
  return !memcmp(s.s.p + (ends ? s.s.n - p.s.n : 0), p.s.p, p.s.n);
}

static int call_method(R *r, jfunc *f, const args_t *a, int line, jv *out) {
  jv s = f->self;
  const char *m = f->name;
  if (charge(r, s.t == V_STR ? s.s.n >> 8 : s.t == V_LIST ? s.l->n : s.t == V_DICT || s.t == V_NS ? s.d->n : 0, line)) return -1;
  const jv *a0 = arg(a, 0, NULL), *a1 = arg(a, 1, NULL);
  if (s.t == V_STR) {
    if (!strcmp(m, "upper")) return str_case(r, s, 0, line, out);
    if (!strcmp(m, "lower")) return str_case(r, s, 1, line, out);
    if (!strcmp(m, "title")) return str_case(r, s, 2, line, out);
    if (!strcmp(m, "capitalize")) return str_case(r, s, 3, line, out);
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
      jv ch = a0 ? *a0 : NONE;
      if (ch.t != V_STR && ch.t != V_NONE) return rerr(r, line, "%s() takes a string of characters", m);
      *out = str_strip(s, ch, m[0] != 'r', m[0] != 'l');
      return 0;
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
      if (!a0) return rerr(r, line, "%s() takes a string or a tuple of strings", m);
      bool ends = m[0] == 'e', hit = false;
      if (a0->t == V_STR) hit = starts_ends(s, *a0, ends);
      else if (a0->t == V_LIST) {
        for (size_t i = 0; i < a0->l->n; i++) {
          if (a0->l->v[i].t != V_STR) return rerr(r, line, "%s(): tuple items must be strings", m);
          hit |= starts_ends(s, a0->l->v[i], ends);
        }
      } else return rerr(r, line, "%s() takes a string or a tuple of strings, not %s", m, vt_name[a0->t]);
      *out = mk_bool(hit);
      return 0;
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
      const jv *sep = arg(a, 0, "sep"), *mx = arg(a, 1, "maxsplit");
      if (sep && sep->t != V_STR && sep->t != V_NONE) return rerr(r, line, "split(): sep must be a string or None");
      if (mx && mx->t != V_INT) return rerr(r, line, "split(): maxsplit must be an integer");
      if (m[0] == 'r' && mx && mx->i >= 0) return rerr(r, line, "rsplit() with maxsplit is not supported");
      return str_split(r, s, sep ? *sep : NONE, mx ? mx->i : -1, line, out);
    }
    if (!strcmp(m, "replace")) {
      const jv *c = arg(a, 2, "count");
      if (!a0 || !a1) return rerr(r, line, "replace() takes two strings");
      if (c && c->t != V_INT && c->t != V_NONE) return rerr(r, line, "replace(): count must be an integer");
      return str_replace(r, s, *a0, *a1, c && c->t == V_INT ? c->i : -1, line, out);
    }
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "count")) {
      if (!a0 || a0->t != V_STR) return rerr(r, line, "%s() takes a string", m);
      if (!strcmp(m, "count")) {
        int64_t k = 0;
        if (!a0->s.n) { *out = mk_int((int64_t)u8_len(s.s.p, s.s.n) + 1); return 0; }
        for (const char *p = s.s.p, *e = s.s.p + s.s.n; (p = memmem(p, (size_t)(e - p), a0->s.p, a0->s.n)); p += a0->s.n) k++;
        *out = mk_int(k);
        return 0;
      }
      const char *hit = NULL;
      if (m[0] == 'f') hit = memmem(s.s.p, s.s.n, a0->s.p, a0->s.n);
      else
        for (size_t i = s.s.n + 1; i-- > 0;)
          if (i + a0->s.n <= s.s.n && !memcmp(s.s.p + i, a0->s.p, a0->s.n)) { hit = s.s.p + i; break; }
      *out = mk_int(hit ? (int64_t)u8_len(s.s.p, (size_t)(hit - s.s.p)) : -1);
      return 0;
    }
    if (!strcmp(m, "join")) {
      if (!a0) return rerr(r, line, "join() takes an iterable");
      jv items;
      if (iter_items(r, *a0, &items, line)) return -1;
      sb b = {0};
      for (size_t i = 0; i < items.l->n; i++)
        if ((i && sb_put(r, &b, s.s.p, s.s.n, line)) || put_str(r, &b, items.l->v[i], line, 0)) { free(b.s); return -1; }
      return sb_done(r, &b, out, line);
    }
    if (!strcmp(m, "isdigit") || !strcmp(m, "isalpha") || !strcmp(m, "isspace") || !strcmp(m, "isupper") || !strcmp(m, "islower")) {
      bool ok = s.s.n > 0, cased = false;
      for (size_t i = 0; i < s.s.n;) {
        int32_t c;
        i += u8_next(s.s.p, s.s.n, i, &c);
        utf8proc_category_t cat = utf8proc_category(c);
        if (m[2] == 'd') ok &= cat == UTF8PROC_CATEGORY_ND;
        else if (m[2] == 'a') ok &= cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        else if (m[2] == 's') ok &= py_space(c);
        else if (m[2] == 'u') { ok &= cat != UTF8PROC_CATEGORY_LL; cased |= cat == UTF8PROC_CATEGORY_LU; }
        else { ok &= cat != UTF8PROC_CATEGORY_LU; cased |= cat == UTF8PROC_CATEGORY_LL; }
      }
      if (m[2] == 'u' || m[2] == 'l') ok &= cased;
      *out = mk_bool(ok);
      return 0;
    }
  } else if (s.t == V_DICT || s.t == V_NS) {
    if (!strcmp(m, "get")) {
      if (!a0 || a0->t != V_STR) return rerr(r, line, "get() takes a string key");
      jv *v = dict_get(s.d, a0->s.p, a0->s.n);
      *out = v ? *v : a1 ? *a1 : NONE;
      return 0;
    }
    if (!strcmp(m, "items") || !strcmp(m, "keys") || !strcmp(m, "values")) {
      if (list_new(r, s.d->n, out, line)) return -1;
      for (size_t i = 0; i < s.d->n; i++) {
        if (m[0] == 'k') out->l->v[i] = mk_str(s.d->kp[i], s.d->kn[i]);
        else if (m[0] == 'v') out->l->v[i] = s.d->v[i];
        else {
          jv pair;
          if (list_new(r, 2, &pair, line)) return -1;
          pair.tup = 1;
          pair.l->v[0] = mk_str(s.d->kp[i], s.d->kn[i]);
          pair.l->v[1] = s.d->v[i];
          out->l->v[i] = pair;
        }
      }
      return 0;
    }
  } else if (s.t == V_LIST) {
    if (!strcmp(m, "index") || !strcmp(m, "count")) {
      if (!a0) return rerr(r, line, "%s() takes a value", m);
      int64_t k = 0;
      for (size_t i = 0; i < s.l->n; i++)
        if (py_eq(s.l->v[i], *a0)) {
          if (m[0] == 'i') { *out = mk_int((int64_t)i); return 0; }
          k++;
        }
      if (m[0] == 'i') return rerr(r, line, "index(): value is not in the list");
      *out = mk_int(k);
      return 0;
    }
  }
  return rerr(r, line, "%s has no method '%s'", vt_name[s.t], m);
}

static const char *method_name(jv self, const char *name, size_t n) {
  static const char *str_m[] = {"upper", "lower", "title", "capitalize", "strip", "lstrip", "rstrip", "startswith",
                                "endswith", "split", "rsplit", "replace", "find", "rfind", "count", "join", "isdigit",
                                "isalpha", "isspace", "isupper", "islower", NULL};
  static const char *dict_m[] = {"get", "items", "keys", "values", NULL};
  static const char *list_m[] = {"index", "count", NULL};
  const char **t = self.t == V_STR ? str_m : (self.t == V_DICT || self.t == V_NS) ? dict_m : self.t == V_LIST ? list_m : NULL;
  for (; t && *t; t++)
    if (strlen(*t) == n && !memcmp(*t, name, n)) return *t;
  return NULL;
}
static bool sveq(jv s, const char *lit) { return s.t == V_STR && s.s.n == strlen(lit) && !memcmp(s.s.p, lit, s.s.n); }

static int get_member(R *r, jv obj, jv key, int line, jv *out) {
  *out = UNDEF;
  if (obj.t == V_DICT || obj.t == V_NS) {
    if (key.t != V_STR) return 0; /* keys are strings (from JSON and dict literals) */
    jv *v = dict_get(obj.d, key.s.p, key.s.n);
    if (v) { *out = *v; return 0; }
    const char *mn = obj.t == V_DICT ? method_name(obj, key.s.p, key.s.n) : NULL;
    if (mn) return func_new(r, F_METHOD, mn, obj, NULL, NULL, out, line);
    return 0;
  }
  if (obj.t == V_LIST || obj.t == V_STR) {
    if (key.t == V_INT || key.t == V_BOOL) {
      int64_t i = key.t == V_INT ? key.i : key.b;
      int64_t n = obj.t == V_LIST ? (int64_t)obj.l->n : (int64_t)u8_len(obj.s.p, obj.s.n);
      if (i < 0) i += n;
      if (i < 0 || i >= n) return 0;
      if (obj.t == V_LIST) *out = obj.l->v[i];
      else {
        size_t b = u8_offset(obj.s.p, obj.s.n, (size_t)i);
        int32_t c;
        *out = mk_str(obj.s.p + b, u8_next(obj.s.p, obj.s.n, b, &c));
      }
      return 0;
    }
    if (key.t == V_STR) {
      if (sveq(key, "length")) { /* @huggingface/jinja exposes .length */
        *out = mk_int(obj.t == V_LIST ? (int64_t)obj.l->n : (int64_t)u8_len(obj.s.p, obj.s.n));
        return 0;
      }
      const char *mn = method_name(obj, key.s.p, key.s.n);
      if (mn) return func_new(r, F_METHOD, mn, obj, NULL, NULL, out, line);
    }
    return 0;
  }
  return 0;
}

static int slice_idx(jv *v, int64_t *out, bool *given, int line, R *r) {
  *given = v && v->t != V_UNDEF && v->t != V_NONE;
  if (*given) {
    if (v->t != V_INT) return rerr(r, line, "slice indices must be integers");
    *out = v->i;
  }
  return 0;
}
static int do_slice(R *r, jv obj, jv *a, jv *b, jv *c, int line, jv *out) {
  if (obj.t != V_LIST && obj.t != V_STR) return rerr(r, line, "cannot slice a %s", vt_name[obj.t]);
  int64_t n = obj.t == V_LIST ? (int64_t)obj.l->n : (int64_t)u8_len(obj.s.p, obj.s.n);
  int64_t st = 0, sp = 0, step = 1;
  bool gs, gp, gt;
  if (slice_idx(a, &st, &gs, line, r) || slice_idx(b, &sp, &gp, line, r) || slice_idx(c, &step, &gt, line, r)) return -1;
  if (!step) return rerr(r, line, "slice step cannot be zero");
  if (step > n + 1) step = n + 1; /* larger steps take the same items (and cannot overflow) */
  if (step < -(n + 1)) step = -(n + 1);
  if (step > 0) {
    st = !gs ? 0 : st < 0 ? (st + n < 0 ? 0 : st + n) : (st > n ? n : st);
    sp = !gp ? n : sp < 0 ? (sp + n < 0 ? 0 : sp + n) : (sp > n ? n : sp);
  } else {
    st = !gs ? n - 1 : st < 0 ? (st + n < -1 ? -1 : st + n) : (st > n - 1 ? n - 1 : st);
    sp = !gp ? -1 : sp < 0 ? (sp + n < -1 ? -1 : sp + n) : (sp > n - 1 ? n - 1 : sp);
  }
  size_t cnt = 0;
  for (int64_t i = st; step > 0 ? i < sp : i > sp; i += step) cnt++;
  if (obj.t == V_LIST) {
    if (list_new(r, cnt, out, line)) return -1;
    size_t k = 0;
    for (int64_t i = st; step > 0 ? i < sp : i > sp; i += step) out->l->v[k++] = obj.l->v[i];
    return 0;
  }
  if (step == 1) {
    size_t b0 = u8_offset(obj.s.p, obj.s.n, (size_t)st), b1 = sp > st ? u8_offset(obj.s.p, obj.s.n, (size_t)sp) : b0;
    *out = mk_str(obj.s.p + b0, b1 - b0);
    return 0;
  }
  /* general step: index the code points */
  size_t *offs = malloc(((size_t)n + 1) * sizeof *offs);
  if (!offs) return rerr(r, line, "out of memory");
  size_t k = 0;
  int32_t cp;
  for (size_t i = 0; i < obj.s.n && k < (size_t)n; i += u8_next(obj.s.p, obj.s.n, i, &cp)) offs[k++] = i;
  offs[k] = obj.s.n;
  sb bb = {0};
  int rc = 0;
  for (int64_t i = st; !rc && (step > 0 ? i < sp : i > sp); i += step) rc = sb_put(r, &bb, obj.s.p + offs[i], offs[i + 1] - offs[i], line);
  free(offs);
  if (rc) { free(bb.s); return -1; }
  return sb_done(r, &bb, out, line);
}

static int binop(R *r, int op, jv a, jv b, int line, jv *out) {
  switch (op) {
  case OP_EQ: case OP_NE:
    if (a.t == V_LIST && b.t == V_LIST && charge(r, a.l->n, line)) return -1;
    if (a.t == V_STR && b.t == V_STR && charge(r, a.s.n >> 8, line)) return -1;
    *out = mk_bool(py_eq(a, b) == (op == OP_EQ));
    return 0;
  case OP_IN: case OP_NOTIN: {
    bool hit = false;
    if (charge(r, b.t == V_LIST ? b.l->n : b.t == V_STR ? b.s.n >> 8 : b.t == V_DICT || b.t == V_NS ? b.d->n : 0, line)) return -1;
    if (b.t == V_LIST) {
      for (size_t i = 0; i < b.l->n && !hit; i++) hit = py_eq(a, b.l->v[i]);
    } else if (b.t == V_STR) {
      if (a.t != V_STR) return rerr(r, line, "'in <string>' requires a string as left operand, not %s", vt_name[a.t]);
      hit = memmem(b.s.p, b.s.n, a.s.p, a.s.n) != NULL || a.s.n == 0;
    } else if (b.t == V_DICT || b.t == V_NS) {
      hit = a.t == V_STR && dict_get(b.d, a.s.p, a.s.n);
    } else if (b.t == V_UNDEF) {
      hit = false;
    } else {
      return rerr(r, line, "argument of type '%s' is not iterable", vt_name[b.t]);
    }
    *out = mk_bool(op == OP_IN ? hit : !hit);
    return 0;
  }
  case '~': {
    sb s = {0};
    if (put_str(r, &s, a, line, 0) || put_str(r, &s, b, line, 0)) { free(s.s); return -1; }
    return sb_done(r, &s, out, line);
  }
  case '<': case '>': case OP_LE: case OP_GE: {
    bool bad;
    int c = py_cmp(a, b, &bad, false);
    if (bad) return rerr(r, line, "cannot compare %s with %s", vt_name[a.t], vt_name[b.t]);
    *out = mk_bool(op == '<' ? c < 0 : op == '>' ? c > 0 : op == OP_LE ? c <= 0 : c >= 0);
    return 0;
  }
  default: break;
  }
  if (op == '+' && a.t == V_LIST && b.t == V_LIST) {
    if (list_new(r, a.l->n + b.l->n, out, line)) return -1;
    if (a.l->n) memcpy(out->l->v, a.l->v, a.l->n * sizeof(jv));
    if (b.l->n) memcpy(out->l->v + a.l->n, b.l->v, b.l->n * sizeof(jv));
    return 0;
  }
  if (op == '+' && (a.t == V_STR || b.t == V_STR)) {
    if (a.t == V_UNDEF || b.t == V_UNDEF)
      return rerr(r, line, "cannot add %s and %s (a variable or key is missing)", vt_name[a.t], vt_name[b.t]);
    if (a.t == V_NONE || b.t == V_NONE) return rerr(r, line, "cannot add %s and %s", vt_name[a.t], vt_name[b.t]);
    sb s = {0};
    if (put_str(r, &s, a, line, 0) || put_str(r, &s, b, line, 0)) { free(s.s); return -1; }
    return sb_done(r, &s, out, line);
  }
  if (op == '*' && ((a.t == V_STR && b.t == V_INT) || (a.t == V_INT && b.t == V_STR))) {
    jv s = a.t == V_STR ? a : b;
    int64_t k = a.t == V_INT ? a.i : b.i;
    if (k <= 0 || !s.s.n) { *out = mk_str("", 0); return 0; } /* '' * 888888888 is '' at once */
    if ((unsigned __int128)k * s.s.n > r->lim.max_output) return rerr(r, line, "string repetition exceeds %zu bytes", r->lim.max_output);
    sb o = {0};
    for (int64_t i = 0; i < k; i++)
      if (sb_put(r, &o, s.s.p, s.s.n, line)) { free(o.s); return -1; }
    return sb_done(r, &o, out, line);
  }
  if (!is_num(a) || !is_num(b))
    return rerr(r, line, "unsupported operand types for '%s': %s and %s",
                op == '+' ? "+" : op == '-' ? "-" : op == '*' ? "*" : op == '/' ? "/" : op == '%' ? "%" : op == OP_POW ? "**" : "//",
                vt_name[a.t], vt_name[b.t]);
  bool fl = a.t == V_FLOAT || b.t == V_FLOAT;
  int64_t x = a.t == V_INT ? a.i : a.t == V_BOOL ? a.b : 0, y = b.t == V_INT ? b.i : b.t == V_BOOL ? b.b : 0;
  double fx = num(a), fy = num(b);
  switch (op) {
  case '+': case '-': case '*': {
    if (fl) { *out = mk_float(op == '+' ? fx + fy : op == '-' ? fx - fy : fx * fy); return 0; }
    int64_t res;
    bool ovf = op == '+' ? __builtin_add_overflow(x, y, &res) : op == '-' ? __builtin_sub_overflow(x, y, &res) : __builtin_mul_overflow(x, y, &res);
    if (ovf) return rerr(r, line, "integer overflow");
    *out = mk_int(res);
    return 0;
  }
  case '/':
    if (fy == 0) return rerr(r, line, "division by zero");
    *out = mk_float(fx / fy);
    return 0;
  case OP_FLOORDIV: case '%':
    if (fl ? fy == 0 : y == 0) return rerr(r, line, "%s by zero", op == '%' ? "modulo" : "division");
    if (fl) {
      double q = floor(fx / fy), m = fx - q * fy;
      *out = mk_float(op == '%' ? m : q);
    } else {
      if (x == INT64_MIN && y == -1) return rerr(r, line, "integer overflow");
      int64_t q = x / y, m = x % y;
      if (m && ((m < 0) != (y < 0))) { q--; m += y; }
      *out = mk_int(op == '%' ? m : q);
    }
    return 0;
  case OP_POW:
    if (!fl && y >= 0) {
      double p = pow((double)x, (double)y);
      if (fabs(p) > 9.2e18) return rerr(r, line, "integer overflow in '**'");
      int64_t res = 1;
      for (int64_t i = 0; i < y; i++) res *= x;
      *out = mk_int(res);
    } else {
      if (fx == 0 && fy < 0) return rerr(r, line, "0.0 cannot be raised to a negative power");
      *out = mk_float(pow(fx, fy));
    }
    return 0;
  }
  return rerr(r, line, "unknown operator");
}

static int lookup(R *r, const jnode *n, env *e, jv *out) {
  if (env_get(e, n->s, out)) return 0;
  const char *s = n->s;
  if (!strcmp(s, "true") || !strcmp(s, "True")) { *out = mk_bool(true); return 0; }
  if (!strcmp(s, "false") || !strcmp(s, "False")) { *out = mk_bool(false); return 0; }
  if (!strcmp(s, "none") || !strcmp(s, "None")) { *out = NONE; return 0; }
  static const char *builtins[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", NULL};
  for (int i = 0; builtins[i]; i++)
    if (!strcmp(s, builtins[i])) return func_new(r, F_BUILTIN, builtins[i], UNDEF, NULL, NULL, out, n->line);
  *out = UNDEF;
  return 0;
}

static int call_value(R *r, jv fn, const args_t *a, const jv *caller, int line, jv *out) {
  if (fn.t != V_FUNC) return rerr(r, line, "cannot call a %s", vt_name[fn.t]);
  switch (fn.fn->kind) {
  case F_BUILTIN: return call_builtin(r, fn.fn, a, line, out);
  case F_METHOD: return call_method(r, fn.fn, a, line, out);
  default: return call_macro(r, fn.fn, a, caller, line, out);
  }
}

static int eval(R *r, const jnode *n, env *e, jv *out) {
  STEP(r, n->line);
  if (++r->depth > r->lim.max_depth + 400)
    return rerr(r, n->line, "expression nests too deeply");
  int rc = 0;
  jv a, b;
  switch (n->k) {
  case N_INT: *out = mk_int(n->i); break;
  case N_FLOAT: *out = mk_float(n->f); break;
  case N_STR: *out = mk_str(n->s, n->sn); break;
  case N_IDENT: rc = lookup(r, n, e, out); break;
  case N_LIST: case N_TUPLE:
    if ((rc = list_new(r, (size_t)n->nv, out, n->line))) break;
    out->tup = n->k == N_TUPLE;
    for (int i = 0; i < n->nv && !rc; i++) rc = eval(r, n->v[i], e, &out->l->v[i]);
    break;
  case N_DICT:
    if ((rc = dict_new(r, out, V_DICT, n->line))) break;
    for (int i = 0; i < n->nv && !rc; i++) {
      if ((rc = eval(r, n->v[i], e, &a)) || (rc = eval(r, n->w[i], e, &b))) break;
      if (a.t != V_STR) { rc = rerr(r, n->line, "dict keys must be strings, not %s", vt_name[a.t]); break; }
      rc = dict_set(r, out->d, a.s.p, a.s.n, b, n->line);
    }
    break;
  case N_BIN:
    if ((rc = eval(r, n->a, e, &a))) break;
    if (n->op == OP_AND) { rc = truthy(a) ? eval(r, n->b, e, out) : (*out = a, 0); break; }
    if (n->op == OP_OR) { rc = truthy(a) ? (*out = a, 0) : eval(r, n->b, e, out); break; }
    if ((rc = eval(r, n->b, e, &b))) break;
    rc = binop(r, n->op, a, b, n->line, out);
    break;
  case N_UNARY:
    if ((rc = eval(r, n->a, e, &a))) break;
    if (n->op == OP_NOT) *out = mk_bool(!truthy(a));
    else if (a.t == V_FLOAT) *out = mk_float(n->op == '-' ? -a.f : a.f);
    else if (a.t == V_INT && a.i == INT64_MIN && n->op == '-') rc = rerr(r, n->line, "integer overflow");
    else if (a.t == V_INT || a.t == V_BOOL) *out = mk_int(n->op == '-' ? -(a.t == V_INT ? a.i : a.b) : (a.t == V_INT ? a.i : a.b));
    else rc = rerr(r, n->line, "bad operand type for unary %c: %s", n->op, vt_name[a.t]);
    break;
  case N_COND:
    if ((rc = eval(r, n->a, e, &a))) break;
    if (truthy(a)) rc = eval(r, n->b, e, out);
    else if (n->c) rc = eval(r, n->c, e, out);
    else *out = UNDEF;
    break;
  case N_MEMBER:
    if ((rc = eval(r, n->a, e, &a))) break;
    if (n->i && n->b->k == N_SLICE) {
      jv s[3];
      const jnode *parts[3] = {n->b->a, n->b->b, n->b->c};
      for (int i = 0; i < 3 && !rc; i++) {
        s[i] = UNDEF;
        if (parts[i]) rc = eval(r, parts[i], e, &s[i]);
      }
      if (!rc) rc = do_slice(r, a, &s[0], &s[1], &s[2], n->line, out);
      break;
    }
    if (n->i) { if ((rc = eval(r, n->b, e, &b))) break; }
    else if (n->b->k == N_INT) b = mk_int(n->b->i);
    else b = cstr(n->b->s);
    rc = get_member(r, a, b, n->line, out);
    break;
  case N_CALL: {
    args_t args;
    if ((rc = eval(r, n->a, e, &a)) || (rc = eval_args(r, n->v, n->nv, e, &args, n->line))) break;
    if (a.t == V_UNDEF) {
      const char *nm = n->a->k == N_IDENT ? n->a->s : n->a->k == N_MEMBER && !n->a->i && n->a->b->k == N_IDENT ? n->a->b->s : "?";
      rc = rerr(r, n->line, "'%s' is undefined and cannot be called", nm);
      break;
    }
    rc = call_value(r, a, &args, NULL, n->line, out);
    break;
  }
  case N_FILTER: {
    args_t args;
    if ((rc = eval(r, n->a, e, &a)) || (rc = eval_args(r, n->v, n->nv, e, &args, n->line))) break;
    rc = apply_filter(r, a, n->s, &args, e, n->line, out);
    break;
  }
  case N_TEST: {
    args_t args;
    bool res;
    if ((rc = eval(r, n->a, e, &a)) || (rc = eval_args(r, n->v, n->nv, e, &args, n->line))) break;
    if ((rc = apply_test(r, a, n->s, &args, n->line, &res))) break;
    *out = mk_bool(n->i ? !res : res);
    break;
  }
  default:
    rc = rerr(r, n->line, "this expression is not allowed here");
  }
  r->depth--;
  return rc;
}

/* ---- tests ---- */
static int apply_test(R *r, jv v, const char *t, const args_t *a, int line, bool *res) {
  const jv *x = arg(a, 0, NULL);
  if (!strcmp(t, "defined")) *res = v.t != V_UNDEF;
  else if (!strcmp(t, "undefined")) *res = v.t == V_UNDEF;
  else if (!strcmp(t, "none")) *res = v.t == V_NONE;
  else if (!strcmp(t, "boolean")) *res = v.t == V_BOOL;
  else if (!strcmp(t, "true")) *res = v.t == V_BOOL && v.b;
  else if (!strcmp(t, "false")) *res = v.t == V_BOOL && !v.b;
  else if (!strcmp(t, "integer")) *res = v.t == V_INT;
  else if (!strcmp(t, "float")) *res = v.t == V_FLOAT;
  else if (!strcmp(t, "number")) *res = v.t == V_INT || v.t == V_FLOAT;
  else if (!strcmp(t, "string")) *res = v.t == V_STR;
  else if (!strcmp(t, "mapping")) *res = v.t == V_DICT;
  else if (!strcmp(t, "iterable")) *res = v.t == V_LIST || v.t == V_STR || v.t == V_DICT;
  else if (!strcmp(t, "sequence")) *res = v.t == V_LIST || v.t == V_STR || v.t == V_DICT;
  else if (!strcmp(t, "callable")) *res = v.t == V_FUNC;
  else if (!strcmp(t, "odd") || !strcmp(t, "even")) {
    if (v.t != V_INT) return rerr(r, line, "'%s' test needs an integer, not %s", t, vt_name[v.t]);
    *res = (v.i % 2 != 0) == (t[0] == 'o');
  } else if (!strcmp(t, "divisibleby")) {
    if (v.t != V_INT || !x || x->t != V_INT || !x->i) return rerr(r, line, "divisibleby needs integers");
    *res = v.i % x->i == 0;
  } else if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
    jv c;
    if (v.t != V_STR) { *res = false; return 0; }
    if (str_case(r, v, t[0] == 'l' ? 1 : 0, line, &c)) return -1;
    *res = py_eq(c, v);
  } else if (!strcmp(t, "eq") || !strcmp(t, "equalto") || !strcmp(t, "==") || !strcmp(t, "sameas")) *res = x && py_eq(v, *x);
  else if (!strcmp(t, "ne") || !strcmp(t, "!=")) *res = !x || !py_eq(v, *x);
  else if (!strcmp(t, "in")) {
    jv o;
    if (!x || binop(r, OP_IN, v, *x, line, &o)) return x ? -1 : rerr(r, line, "'in' test needs a container");
    *res = o.b;
  } else if (!strcmp(t, "lt") || !strcmp(t, "gt") || !strcmp(t, "le") || !strcmp(t, "ge")) {
    jv o;
    int op = t[0] == 'l' ? (t[1] == 't' ? '<' : OP_LE) : (t[1] == 't' ? '>' : OP_GE);
    if (!x) return rerr(r, line, "'%s' test needs a value", t);
    if (binop(r, op, v, *x, line, &o)) return -1;
    *res = o.b;
  } else return rerr(r, line, "unknown test '%s'", t);
  return 0;
}

/* ---- filters ---- */
static int attr_path(R *r, jv item, jv attr, int line, jv *out) {
  if (attr.t == V_INT) return get_member(r, item, attr, line, out);
  if (attr.t != V_STR) return rerr(r, line, "attribute must be a string");
  jv cur = item;
  if (str_new(r, attr.s.p, attr.s.n, &attr, line)) return -1; /* NUL-terminated for strtoll */
  const char *p = attr.s.p, *end = attr.s.p + attr.s.n;
  while (p <= end) {
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t l = dot ? (size_t)(dot - p) : (size_t)(end - p);
    jv key;
    char *endp;
    long long iv = strtoll(p, &endp, 10);
    if (l && endp == p + l && cur.t == V_LIST) key = mk_int(iv);
    else if (str_new(r, p, l, &key, line)) return -1;
    if (get_member(r, cur, key, line, &cur)) return -1;
    if (!dot) break;
    p = dot + 1;
  }
  *out = cur;
  return 0;
}
static int sort_list(R *r, jv v, bool reverse, bool cs, const jv *attr, int line, jv *out) {
  if (list_new(r, v.l->n, out, line)) return -1;
  jv *keys = ralloc(r, (v.l->n + 1) * sizeof *keys, line);
  if (!keys) return -1;
  for (size_t i = 0; i < v.l->n; i++) {
    out->l->v[i] = v.l->v[i];
    keys[i] = v.l->v[i];
    if (attr && attr->t != V_NONE && attr_path(r, v.l->v[i], *attr, line, &keys[i])) return -1;
  }
  /* stable bottom-up merge sort of (key, item) pairs; each comparison is a step */
  size_t n = v.l->n;
  jv *tk = ralloc(r, (n + 1) * sizeof *tk, line), *tv = ralloc(r, (n + 1) * sizeof *tv, line);
  if (!tk || !tv) return -1;
  jv *sk = keys, *sv = out->l->v, *dk = tk, *dv = tv;
  for (size_t w = 1; w < n; w *= 2) {
    if (charge(r, n, line)) return -1;
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        bool bad;
        int c = py_cmp(sk[j], sk[i], &bad, !cs);
        if (bad) return rerr(r, line, "sort: cannot compare %s with %s", vt_name[sk[j].t], vt_name[sk[i].t]);
        bool take_right = reverse ? c > 0 : c < 0; /* ties keep the left (earlier) item: stable */
        if (take_right) { dk[k] = sk[j]; dv[k++] = sv[j++]; }
        else { dk[k] = sk[i]; dv[k++] = sv[i++]; }
      }
      while (i < mid) { dk[k] = sk[i]; dv[k++] = sv[i++]; }
      while (j < hi) { dk[k] = sk[j]; dv[k++] = sv[j++]; }
    }
    jv *t1 = sk, *t2 = sv;
    sk = dk; sv = dv; dk = t1; dv = t2;
  }
  if (sv != out->l->v) memcpy(out->l->v, sv, n * sizeof *sv);
  return 0;
}
static bool bool_arg(const jv *v, bool def) { return v ? truthy(*v) : def; }

static int apply_filter(R *r, jv v, const char *f, const args_t *a, env *e, int line, jv *out) {
  const jv *a0 = arg(a, 0, NULL);
  if (!strcmp(f, "safe")) { *out = v; return 0; }
  if (!strcmp(f, "tojson")) {
    const jv *ind = arg(a, 0, "indent"), *asc = arg(a, -1, "ensure_ascii"), *srt = arg(a, -1, "sort_keys"),
             *sep = arg(a, -1, "separators");
    jopts o = {.indent = -1, .isep = ", ", .ksep = ": "};
    if (ind && ind->t != V_NONE) {
      if (ind->t != V_INT) return rerr(r, line, "tojson: indent must be an integer");
      o.indent = (int)(ind->i < 0 ? 0 : ind->i > 64 ? 64 : ind->i);
      o.isep = ",";
    }
    o.ascii = bool_arg(asc, false);
    o.sort = bool_arg(srt, false);
    if (sep && sep->t != V_NONE) {
      if (sep->t != V_LIST || sep->l->n != 2 || sep->l->v[0].t != V_STR || sep->l->v[1].t != V_STR)
        return rerr(r, line, "tojson: separators must be a pair of strings");
      jv s0, s1;
      if (str_new(r, sep->l->v[0].s.p, sep->l->v[0].s.n, &s0, line) || str_new(r, sep->l->v[1].s.p, sep->l->v[1].s.n, &s1, line)) return -1;
      o.isep = s0.s.p;
      o.ksep = s1.s.p;
    }
    sb b = {0};
    if (put_json(r, &b, v, &o, 0, line)) { free(b.s); return -1; }
    return sb_done(r, &b, out, line);
  }
  if (!strcmp(f, "default") || !strcmp(f, "d")) {
    const jv *bo = arg(a, 1, "boolean");
    if (v.t == V_UNDEF || (bool_arg(bo, false) && !truthy(v))) *out = a0 ? *a0 : mk_str("", 0);
    else *out = v;
    return 0;
  }
  if (!strcmp(f, "string")) return to_str(r, v, out, line);
  if (!strcmp(f, "length") || !strcmp(f, "count")) {
    if (v.t == V_STR) *out = mk_int((int64_t)u8_len(v.s.p, v.s.n));
    else if (v.t == V_LIST) *out = mk_int((int64_t)v.l->n);
    else if (v.t == V_DICT || v.t == V_NS) *out = mk_int((int64_t)v.d->n);
    else if (v.t == V_UNDEF) *out = mk_int(0);
    else return rerr(r, line, "object of type '%s' has no length", vt_name[v.t]);
    return 0;
  }
  if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "title") || !strcmp(f, "capitalize")) {
    jv s;
    if (to_str(r, v, &s, line)) return -1;
    return str_case(r, s, f[0] == 'u' ? 0 : f[0] == 'l' ? 1 : f[0] == 't' ? 2 : 3, line, out);
  }
  if (!strcmp(f, "trim")) {
    jv s;
    if (to_str(r, v, &s, line)) return -1;
    *out = str_strip(s, a0 ? *a0 : NONE, true, true);
    return 0;
  }
  if (!strcmp(f, "replace")) {
    jv s;
    const jv *a1 = arg(a, 1, NULL), *c = arg(a, 2, "count");
    if (to_str(r, v, &s, line)) return -1;
    if (!a0 || !a1) return rerr(r, line, "replace filter takes two strings");
    return str_replace(r, s, *a0, *a1, c && c->t == V_INT ? c->i : -1, line, out);
  }
  if (!strcmp(f, "indent")) {
    const jv *w = arg(a, 0, "width"), *first = arg(a, 1, "first"), *blank = arg(a, 2, "blank");
    jv s;
    if (to_str(r, v, &s, line)) return -1;
    char pad[256];
    size_t pl;
    if (w && w->t == V_STR) { pl = w->s.n < sizeof pad ? w->s.n : sizeof pad - 1; memcpy(pad, w->s.p, pl); }
    else {
      int64_t wd = w ? (w->t == V_INT ? w->i : -1) : 4;
      if (wd < 0 || wd > 255) return rerr(r, line, "indent: width must be an integer 0..255");
      pl = (size_t)wd;
      memset(pad, ' ', pl);
    }
    sb b = {0};
    size_t i = 0;
    bool firstl = true;
    for (;;) {
      const char *nl = memchr(s.s.p + i, '\n', s.s.n - i);
      size_t l = nl ? (size_t)(nl - s.s.p) - i : s.s.n - i;
      bool do_pad = (!firstl || bool_arg(first, false)) && (l > 0 || bool_arg(blank, false));
      if ((do_pad && sb_put(r, &b, pad, pl, line)) || sb_put(r, &b, s.s.p + i, l, line)) { free(b.s); return -1; }
      if (!nl) break;
      if (sb_put(r, &b, "\n", 1, line)) { free(b.s); return -1; }
      i += l + 1;
      firstl = false;
    }
    return sb_done(r, &b, out, line);
  }
  if (!strcmp(f, "int")) {
    const jv *dflt = arg(a, 0, "default");
    if (v.t == V_INT) *out = v;
    else if (v.t == V_BOOL) *out = mk_int(v.b);
    else if (v.t == V_FLOAT) *out = mk_int((int64_t)v.f);
    else if (v.t == V_STR) {
      char buf[64];
      jv t = str_strip(v, NONE, true, true);
      size_t l = t.s.n < 63 ? t.s.n : 63;
      memcpy(buf, t.s.p, l);
      buf[l] = 0;
      char *end;
      long long iv = strtoll(buf, &end, 10);
      if (l && !*end) *out = mk_int(iv);
      else {
        double dv = strtod(buf, &end);
        *out = l && !*end ? mk_int((int64_t)dv) : dflt ? *dflt : mk_int(0);
      }
    } else *out = dflt ? *dflt : mk_int(0);
    return 0;
  }
  if (!strcmp(f, "float")) {
    const jv *dflt = arg(a, 0, "default");
    if (is_num(v)) *out = mk_float(num(v));
    else if (v.t == V_STR) {
      char buf[64];
      jv t = str_strip(v, NONE, true, true);
      size_t l = t.s.n < 63 ? t.s.n : 63;
      memcpy(buf, t.s.p, l);
      buf[l] = 0;
      char *end;
      double dv = strtod(buf, &end);
      *out = l && !*end ? mk_float(dv) : dflt ? *dflt : mk_float(0);
    } else *out = dflt ? *dflt : mk_float(0);
    return 0;
  }
  if (!strcmp(f, "abs")) {
    if (v.t == V_INT && v.i == INT64_MIN) return rerr(r, line, "integer overflow");
    if (v.t == V_INT) *out = mk_int(v.i < 0 ? -v.i : v.i);
    else if (v.t == V_FLOAT) *out = mk_float(fabs(v.f));
    else return rerr(r, line, "abs: not a number");
    return 0;
  }
  if (!strcmp(f, "round")) {
    const jv *pr = arg(a, 0, "precision");
    if (!is_num(v)) return rerr(r, line, "round: not a number");
    double p = pow(10, pr && pr->t == V_INT ? (double)pr->i : 0);
    *out = mk_float(nearbyint(num(v) * p) / p);
    return 0;
  }
  if (!strcmp(f, "bool")) { *out = mk_bool(truthy(v)); return 0; }
  if (!strcmp(f, "items")) {
    if (v.t == V_UNDEF) return list_new(r, 0, out, line);
    if (v.t != V_DICT && v.t != V_NS) return rerr(r, line, "items filter needs a mapping, not %s", vt_name[v.t]);
    jfunc fn = {.kind = F_METHOD, .name = "items", .self = v};
    args_t none = {0};
    return call_method(r, &fn, &none, line, out);
  }
  if (!strcmp(f, "dictsort")) {
    if (v.t != V_DICT) return rerr(r, line, "dictsort needs a mapping");
    jfunc fn = {.kind = F_METHOD, .name = "items", .self = v};
    args_t none = {0};
    jv items, by_attr = mk_int(0);
    const jv *cs = arg(a, 0, "case_sensitive"), *by = arg(a, 1, "by"), *rev = arg(a, 2, "reverse");
    if (by && sveq(*by, "value")) by_attr = mk_int(1);
    if (call_method(r, &fn, &none, line, &items)) return -1;
    return sort_list(r, items, bool_arg(rev, false), bool_arg(cs, false), &by_attr, line, out);
  }
  /* the rest work on iterables */
  jv items;
  if (!strcmp(f, "join")) {
    const jv *sep = arg(a, 0, "d");
    const jv *attr = arg(a, 1, "attribute");
    if (iter_items(r, v, &items, line)) return -1;
    sb b = {0};
    for (size_t i = 0; i < items.l->n; i++) {
      jv it = items.l->v[i];
      if (attr && attr_path(r, it, *attr, line, &it)) { free(b.s); return -1; }
      if ((i && sep && put_str(r, &b, *sep, line, 0)) || put_str(r, &b, it, line, 0)) { free(b.s); return -1; }
    }
    if (!b.s) return str_new(r, "", 0, out, line);
    return sb_done(r, &b, out, line);
  }
  if (!strcmp(f, "first") || !strcmp(f, "last")) {
    if (iter_items(r, v, &items, line)) return -1;
    *out = items.l->n ? items.l->v[f[0] == 'f' ? 0 : items.l->n - 1] : UNDEF;
    return 0;
  }
  if (!strcmp(f, "list")) { if (iter_items(r, v, &items, line)) return -1; *out = items; return 0; }
  if (!strcmp(f, "reverse")) {
    if (v.t == V_STR) {
      sb b = {0};
      for (size_t e2 = v.s.n; e2 > 0;) {
        size_t q = e2 - 1;
        while (q > 0 && ((unsigned char)v.s.p[q] & 0xC0) == 0x80) q--;
        if (sb_put(r, &b, v.s.p + q, e2 - q, line)) { free(b.s); return -1; }
        e2 = q;
      }
      if (!b.s) return str_new(r, "", 0, out, line);
      return sb_done(r, &b, out, line);
    }
    if (iter_items(r, v, &items, line) || list_new(r, items.l->n, out, line)) return -1;
    for (size_t i = 0; i < items.l->n; i++) out->l->v[i] = items.l->v[items.l->n - 1 - i];
    return 0;
  }
  if (!strcmp(f, "sort")) {
    if (iter_items(r, v, &items, line)) return -1;
    return sort_list(r, items, bool_arg(arg(a, 0, "reverse"), false), bool_arg(arg(a, 1, "case_sensitive"), false),
                     arg(a, 2, "attribute"), line, out);
  }
  if (!strcmp(f, "unique")) {
    if (iter_items(r, v, &items, line) || list_new(r, items.l->n, out, line)) return -1;
    size_t k = 0;
    for (size_t i = 0; i < items.l->n; i++) {
      bool seen = false;
      if (charge(r, k, line)) return -1;
      for (size_t j = 0; j < k && !seen; j++) seen = py_eq(out->l->v[j], items.l->v[i]);
      if (!seen) out->l->v[k++] = items.l->v[i];
    }
    out->l->n = k;
    return 0;
  }
  if (!strcmp(f, "min") || !strcmp(f, "max") || !strcmp(f, "sum")) {
    if (iter_items(r, v, &items, line)) return -1;
    if (f[1] == 'u') {
      jv acc = mk_int(0);
      const jv *attr = arg(a, 0, "attribute");
      for (size_t i = 0; i < items.l->n; i++) {
        jv it = items.l->v[i];
        if (attr && attr_path(r, it, *attr, line, &it)) return -1;
        if (binop(r, '+', acc, it, line, &acc)) return -1;
      }
      *out = acc;
      return 0;
    }
    *out = UNDEF;
    for (size_t i = 0; i < items.l->n; i++) {
      bool bad;
      if (i == 0) { *out = items.l->v[0]; continue; }
      int c = py_cmp(items.l->v[i], *out, &bad, true);
      if (bad) return rerr(r, line, "%s: cannot compare these values", f);
      if (f[1] == 'i' ? c < 0 : c > 0) *out = items.l->v[i];
    }
    return 0;
  }
  if (!strcmp(f, "map")) {
    if (iter_items(r, v, &items, line) || list_new(r, items.l->n, out, line)) return -1;
    const jv *attr = arg(a, -1, "attribute"), *dflt = arg(a, -1, "default");
    if (attr) {
      for (size_t i = 0; i < items.l->n; i++) {
        if (attr_path(r, items.l->v[i], *attr, line, &out->l->v[i])) return -1;
        if (out->l->v[i].t == V_UNDEF && dflt) out->l->v[i] = *dflt;
      }
      return 0;
    }
    if (!a0 || a0->t != V_STR) return rerr(r, line, "map needs attribute='...' or a filter name");
    jv fname;
    if (str_new(r, a0->s.p, a0->s.n, &fname, line)) return -1;
    args_t rest = *a;
    rest.pos++;
    rest.np--;
    for (size_t i = 0; i < items.l->n; i++)
      if (apply_filter(r, items.l->v[i], fname.s.p, &rest, e, line, &out->l->v[i])) return -1;
    return 0;
  }
  if (!strcmp(f, "select") || !strcmp(f, "reject") || !strcmp(f, "selectattr") || !strcmp(f, "rejectattr")) {
    bool by_attr = strstr(f, "attr") != NULL, sel = f[0] == 's';
    if (iter_items(r, v, &items, line) || list_new(r, items.l->n, out, line)) return -1;
    int ti = by_attr ? 1 : 0;
    if (by_attr && !a0) return rerr(r, line, "%s needs an attribute name", f);
    const jv *test = arg(a, ti, NULL);
    jv tname;
    if (test && test->t != V_STR) return rerr(r, line, "%s: the test name must be a string", f);
    if (test && str_new(r, test->s.p, test->s.n, &tname, line)) return -1;
    args_t targs = *a;
    targs.pos += ti + 1;
    targs.np = a->np > ti + 1 ? a->np - ti - 1 : 0;
    size_t k = 0;
    for (size_t i = 0; i < items.l->n; i++) {
      jv it = items.l->v[i];
      if (by_attr && attr_path(r, it, *a0, line, &it)) return -1;
      bool res;
      if (test) { if (apply_test(r, it, tname.s.p, &targs, line, &res)) return -1; }
      else res = truthy(it);
      if (res == sel) out->l->v[k++] = items.l->v[i];
    }
    out->l->n = k;
    return 0;
  }
  if (!strcmp(f, "batch")) {
    if (!a0 || a0->t != V_INT || a0->i <= 0) return rerr(r, line, "batch needs a positive size");
    if (iter_items(r, v, &items, line)) return -1;
    size_t bs = (size_t)a0->i, nb = (items.l->n + bs - 1) / bs;
    if (list_new(r, nb, out, line)) return -1;
    for (size_t i = 0; i < nb; i++) {
      size_t l = items.l->n - i * bs < bs ? items.l->n - i * bs : bs;
      if (list_new(r, l, &out->l->v[i], line)) return -1;
      memcpy(out->l->v[i].l->v, items.l->v + i * bs, l * sizeof(jv));
    }
    return 0;
  }
  if (!strcmp(f, "wordcount")) {
    jv s, parts;
    if (to_str(r, v, &s, line) || str_split(r, s, NONE, -1, line, &parts)) return -1;
    *out = mk_int((int64_t)parts.l->n);
    return 0;
  }
  return rerr(r, line, "unknown filter '%s'", f);
}

/* ---- statements ---- */
static int exec_stmt(R *r, const jnode *n, env *e) {
  STEP(r, n->line);
  jv v;
  switch (n->k) {
  case N_TEXT: return emit(r, n->s, n->sn, n->line);
  case N_COMMENT: return 0;
  case N_OUTPUT: {
    if (eval(r, n->a, e, &v)) return -1;
    if (v.t == V_STR) return emit(r, v.s.p, v.s.n, n->line);
    if (v.t == V_UNDEF) return 0;
    sb b = {0};
    int rc = put_str(r, &b, v, n->line, 0);
    if (!rc) rc = emit(r, b.s ? b.s : "", b.n, n->line);
    free(b.s);
    return rc;
  }
  case N_IF:
    if (eval(r, n->a, e, &v)) return -1;
    return truthy(v) ? exec_block(r, n->v, n->nv, e) : exec_block(r, n->w, n->nw, e);
  case N_SET:
    if (n->b) { if (eval(r, n->b, e, &v)) return -1; }
    else if (capture(r, n->v, n->nv, e, &v, n->line)) return -1;
    return assign(r, n->a, v, e);
  case N_FOR: {
    jv iterable, items;
    env *scope = env_new(r, e, n->line);
    if (!scope || eval(r, n->b, scope, &iterable)) return -1;
    if (iterable.t == V_NONE || iterable.t == V_INT || iterable.t == V_FLOAT || iterable.t == V_BOOL || iterable.t == V_FUNC)
      return rerr(r, n->line, "'%s' object is not iterable", vt_name[iterable.t]);
    if (iter_items(r, iterable, &items, n->line)) return -1;
    if (n->c) { /* for x in xs if cond */
      jv kept;
      if (list_new(r, items.l->n, &kept, n->line)) return -1;
      size_t k = 0;
      env *ts = env_new(r, scope, n->line);
      if (!ts) return -1;
      for (size_t i = 0; i < items.l->n; i++) {
        jv t;
        ts->n = 0;
        if (assign(r, n->a, items.l->v[i], ts) || eval(r, n->c, ts, &t)) return -1;
        if (truthy(t)) kept.l->v[k++] = items.l->v[i];
      }
      kept.l->n = k;
      items = kept;
    }
    size_t N = items.l->n;
    bool any = false;
    jv loop; /* one loop object per for statement, updated in place (no allocation per iteration) */
    if (dict_new(r, &loop, V_DICT, n->line)) return -1;
    /* each iteration starts from the enclosing scope's values, as in jinja2: what the body sets
     * lives in `it`, emptied before the next iteration */
    env *it = env_new(r, scope, n->line);
    if (!it) return -1;
    for (size_t i = 0; i < N; i++) {
      it->n = 0;
      STEP(r, n->line);
      jdict *d = loop.d;
      if (dict_set(r, d, "index", 5, mk_int((int64_t)i + 1), n->line) || dict_set(r, d, "index0", 6, mk_int((int64_t)i), n->line) ||
          dict_set(r, d, "revindex", 8, mk_int((int64_t)(N - i)), n->line) ||
          dict_set(r, d, "revindex0", 9, mk_int((int64_t)(N - i - 1)), n->line) ||
          dict_set(r, d, "first", 5, mk_bool(i == 0), n->line) || dict_set(r, d, "last", 4, mk_bool(i == N - 1), n->line) ||
          dict_set(r, d, "length", 6, mk_int((int64_t)N), n->line) ||
          dict_set(r, d, "previtem", 8, i > 0 ? items.l->v[i - 1] : UNDEF, n->line) ||
          dict_set(r, d, "nextitem", 8, i + 1 < N ? items.l->v[i + 1] : UNDEF, n->line) ||
          dict_set(r, d, "depth", 5, mk_int(1), n->line) || dict_set(r, d, "depth0", 6, mk_int(0), n->line))
        return -1;
      if (i == 0) {
        jv cyc;
        if (func_new(r, F_BUILTIN, "loop.cycle", loop, NULL, NULL, &cyc, n->line) || dict_set(r, d, "cycle", 5, cyc, n->line))
          return -1;
      }
      if (env_set(r, it, "loop", loop, n->line) || assign(r, n->a, items.l->v[i], it)) return -1;
      if (exec_block(r, n->v, n->nv, it)) return -1;
      if (r->ctl == 1) { r->ctl = 0; any = true; break; }
      r->ctl = 0;
      any = true;
    }
    if (!any) return exec_block(r, n->w, n->nw, scope);
    return 0;
  }
  case N_MACRO:
    if (func_new(r, F_MACRO, n->s, UNDEF, n, e, &v, n->line)) return -1;
    return env_set(r, e, n->s, v, n->line);
  case N_CALLBLOCK: {
    const jnode *c = n->a;
    jv fn, caller, res;
    args_t args;
    /* the caller is a macro whose params are n->v and body n->w */
    jnode *cm = ralloc(r, sizeof *cm, n->line);
    if (!cm) return -1;
    *cm = *n;
    cm->k = N_MACRO;
    cm->s = "caller";
    if (func_new(r, F_CALLER, "caller", UNDEF, cm, e, &caller, n->line)) return -1;
    if (eval(r, c->a, e, &fn) || eval_args(r, c->v, c->nv, e, &args, n->line)) return -1;
    if (fn.t != V_FUNC || fn.fn->kind != F_MACRO) return rerr(r, n->line, "'%s' is not a macro", c->a->s);
    if (call_macro(r, fn.fn, &args, &caller, n->line, &res)) return -1;
    return emit(r, res.s.p, res.s.n, n->line);
  }
  case N_FILTERBLOCK: {
    jv body, res;
    args_t args;
    if (capture(r, n->v, n->nv, e, &body, n->line)) return -1;
    if (eval_args(r, n->a->v, n->a->nv, e, &args, n->line) || apply_filter(r, body, n->a->s, &args, e, n->line, &res)) return -1;
    if (res.t != V_STR && to_str(r, res, &res, n->line)) return -1;
    return emit(r, res.s.p, res.s.n, n->line);
  }
  case N_GENERATION: {
    size_t start = r->len;
    if (exec_block(r, n->v, n->nv, e)) return -1;
    if (!r->capture && r->len > start) {
      if (r->n_gen == r->cap_gen) {
        size_t nc = r->cap_gen ? 2 * r->cap_gen : 16;
        tn_jinja_span *ng = realloc(r->gen, nc * sizeof *ng);
        if (!ng) return rerr(r, n->line, "out of memory");
        r->gen = ng;
        r->cap_gen = nc;
      }
      r->gen[r->n_gen++] = (tn_jinja_span){start, r->len};
    }
    return 0;
  }
  case N_BREAK: r->ctl = 1; return 0;
  case N_CONTINUE: r->ctl = 2; return 0;
  default: return rerr(r, n->line, "unexpected node");
  }
}
static int exec_block(R *r, jnode **v, int nv, env *e) {
  if (++r->depth > r->lim.max_depth + 400) return rerr(r, nv ? v[0]->line : 0, "statements nest too deeply");
  for (int i = 0; i < nv && !r->ctl; i++)
    if (exec_stmt(r, v[i], e)) { r->depth--; return -1; }
  r->depth--;
  return 0;
}

/* ---- JSON -> values ---- */
static int from_json(R *r, const cJSON *j, jv *out, int depth) {
  if (depth > 200) return rerr(r, 0, "a variable nests deeper than 200 levels");
  if (cJSON_IsNull(j) || !j) *out = NONE;
  else if (cJSON_IsBool(j)) *out = mk_bool(cJSON_IsTrue(j));
  else if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) < 9007199254740992.0) *out = mk_int((int64_t)d);
    else *out = mk_float(d);
  } else if (cJSON_IsString(j)) *out = cstr(j->valuestring);
  else if (cJSON_IsArray(j)) {
    if (list_new(r, (size_t)cJSON_GetArraySize(j), out, 0)) return -1;
    size_t i = 0;
    for (const cJSON *c = j->child; c; c = c->next)
      if (from_json(r, c, &out->l->v[i++], depth + 1)) return -1;
  } else if (cJSON_IsObject(j)) {
    if (dict_new(r, out, V_DICT, 0)) return -1;
    for (const cJSON *c = j->child; c; c = c->next) {
      jv x;
      if (from_json(r, c, &x, depth + 1) || dict_set(r, out->d, c->string, strlen(c->string), x, 0)) return -1;
    }
  } else *out = UNDEF;
  return 0;
}

tn_status tn_jinja_render(const tn_jinja *t, const cJSON *vars, const tn_jinja_limits *lim, tn_jinja_result *out) {
  memset(out, 0, sizeof *out);
  if (!t) return tn_error(TN_ERR_ARG, "tn_jinja_render: NULL template");
  R r = {.t = t};
  if (lim) r.lim = *lim;
  if (!r.lim.max_output) r.lim.max_output = (size_t)64 << 20;
  if (!r.lim.max_memory) r.lim.max_memory = (size_t)512 << 20;
  if (!r.lim.max_steps) r.lim.max_steps = 50000000;
  if (!r.lim.max_depth) r.lim.max_depth = 200;
  r.a.limit = r.lim.max_memory;
  env *g = env_new(&r, NULL, 0);
  int rc = g ? 0 : -1;
  if (!rc && vars && cJSON_IsObject(vars)) {
    for (const cJSON *c = vars->child; c && !rc; c = c->next) {
      jv v;
      rc = from_json(&r, c, &v, 0);
      if (!rc) rc = env_set(&r, g, c->string, v, 0);
    }
  }
  if (!rc) rc = exec_block(&r, t->body, t->n_body, g);
  if (!rc) rc = emit(&r, "", 0, 0); /* make sure the buffer exists */
  jn_arena_free(&r.a);
  if (rc || r.failed) {
    free(r.out);
    free(r.gen);
    if (r.err_line > 0) return tn_error(TN_ERR_FORMAT, "%s:%d: %s", t->name, r.err_line, r.err);
    return tn_error(TN_ERR_FORMAT, "%s: %s", t->name, r.err);
  }
  r.out[r.len] = 0;
  out->text = r.out;
  out->len = r.len;
  out->gen = r.gen;
  out->n_gen = r.n_gen;
  return TN_OK;
}

void tn_jinja_result_free(tn_jinja_result *res) {
  if (!res) return;
  free(res->text);
  free(res->gen);
  memset(res, 0, sizeof *res);
}
