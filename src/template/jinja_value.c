/* jinja_value.c - the Jinja evaluator's values (arena allocation, strings, lists, dicts,
 * functions), scopes, output buffers, UTF-8 helpers, Python's str()/repr()/JSON forms, truth,
 * equality and comparison.
 * Not for: evaluating expressions (jinja_eval.c), filters/tests/methods (jinja_builtins.c). */
#define _GNU_SOURCE
#include "template/jinja_rt.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

const char *jx_vt_name[] = {"undefined", "none", "bool", "int", "float", "string", "list", "dict", "namespace", "function"};

int jx_rerr(R *r, int line, const char *fmt, ...) {
  if (r->failed) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err, sizeof r->err, fmt, ap);
  va_end(ap);
  r->err_line = line;
  r->failed = true;
  return -1;
}
void *jx_ralloc(R *r, size_t n, int line) {
  void *p = jn_arena_alloc(&r->a, n);
  if (!p) jx_rerr(r, line, "the render used more than %zu MiB of values (a runaway loop?)", r->lim.max_memory >> 20);
  return p;
}

/* Work that is not one node (copying, searching, sorting) counts against max_steps too: a step per
 * list item or per 256 bytes, so a loop over big values ends in the steps error, not a hang. */
int jx_charge(R *r, uint64_t k, int line) {
  r->steps += k;
  if (r->steps > r->lim.max_steps)
    return jx_rerr(r, line, "the render took more than %llu steps (a runaway loop?)", (unsigned long long)r->lim.max_steps);
  return 0;
}

int jx_str_new(R *r, const char *p, size_t n, jv *out, int line) {
  if (n > 256 && jx_charge(r, n >> 8, line)) return -1;
  char *c = jx_ralloc(r, n + 1, line);
  if (!c) return -1;
  if (n) memcpy(c, p, n);
  *out = jx_mk_str(c, n);
  return 0;
}

int jx_list_new(R *r, size_t n, jv *out, int line) {
  if (n > 16 && jx_charge(r, n >> 4, line)) return -1;
  jlist *l = jx_ralloc(r, sizeof *l + 16, line);
  if (!l) return -1;
  l->n = n;
  if (n && !(l->v = jx_ralloc(r, n * sizeof *l->v, line))) return -1;
  *out = (jv){.t = V_LIST};
  out->l = l;
  return 0;
}
int jx_dict_new(R *r, jv *out, int t, int line) {
  jdict *d = jx_ralloc(r, sizeof *d, line);
  if (!d) return -1;
  *out = (jv){.t = (uint8_t)t};
  out->d = d;
  return 0;
}
jv *jx_dict_get(const jdict *d, const char *k, size_t kn) {
  for (size_t i = 0; i < d->n; i++)
    if (d->kn[i] == kn && !memcmp(d->kp[i], k, kn)) return &d->v[i];
  return NULL;
}
int jx_dict_set(R *r, jdict *d, const char *k, size_t kn, jv v, int line) {
  jv *e = jx_dict_get(d, k, kn);
  if (e) { *e = v; return 0; }
  if (d->n == d->cap) {
    size_t nc = d->cap ? 2 * d->cap : 8;
    const char **kp = jx_ralloc(r, nc * sizeof *kp, line);
    size_t *knn = jx_ralloc(r, nc * sizeof *knn, line);
    jv *vv = jx_ralloc(r, nc * sizeof *vv, line);
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
int jx_func_new(R *r, int kind, const char *name, jv self, const jnode *node, env *cl, jv *out, int line) {
  jfunc *f = jx_ralloc(r, sizeof *f, line);
  if (!f) return -1;
  f->kind = kind; f->name = name; f->self = self; f->node = node; f->closure = cl;
  *out = (jv){.t = V_FUNC};
  out->fn = f;
  return 0;
}

/* ---- scopes ---- */
env *jx_env_new(R *r, env *parent, int line) {
  env *e = jx_ralloc(r, sizeof *e, line);
  if (e) e->parent = parent;
  return e;
}
int jx_env_set(R *r, env *e, const char *name, jv v, int line) {
  for (size_t i = 0; i < e->n; i++)
    if (!strcmp(e->names[i], name)) { e->vals[i] = v; return 0; }
  if (e->n == e->cap) {
    size_t nc = e->cap ? 2 * e->cap : 8;
    const char **nn = jx_ralloc(r, nc * sizeof *nn, line);
    jv *nv = jx_ralloc(r, nc * sizeof *nv, line);
    if (!nn || !nv) return -1;
    if (e->n) { memcpy(nn, e->names, e->n * sizeof *nn); memcpy(nv, e->vals, e->n * sizeof *nv); }
    e->names = nn; e->vals = nv; e->cap = nc;
  }
  e->names[e->n] = name;
  e->vals[e->n++] = v;
  return 0;
}
bool jx_env_get(env *e, const char *name, jv *out) {
  for (; e; e = e->parent)
    for (size_t i = e->n; i-- > 0;)
      if (!strcmp(e->names[i], name)) { *out = e->vals[i]; return true; }
  return false;
}

/* ---- output ---- */
int jx_emit(R *r, const char *p, size_t n, int line) {
  if (n > 256 && jx_charge(r, n >> 8, line)) return -1;
  if (r->len + n > r->lim.max_output)
    return jx_rerr(r, line, "the rendered text exceeds %zu bytes (a runaway loop?)", r->lim.max_output);
  if (r->len + n + 1 > r->cap) {
    size_t nc = r->cap ? r->cap : 4096;
    while (nc < r->len + n + 1) nc *= 2;
    char *no = realloc(r->out, nc);
    if (!no) return jx_rerr(r, line, "out of memory");
    r->out = no;
    r->cap = nc;
  }
  memcpy(r->out + r->len, p, n);
  r->len += n;
  return 0;
}

/* growable scratch string in the output buffer's style, for building values */
int jx_sb_put(R *r, sb *b, const char *p, size_t n, int line) {
  if (n > 256 && jx_charge(r, n >> 8, line)) return -1;
  if (b->n + n > r->lim.max_output) return jx_rerr(r, line, "a string exceeds %zu bytes", r->lim.max_output);
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? 2 * b->cap : 64;
    while (nc < b->n + n + 1) nc *= 2;
    char *ns = realloc(b->s, nc);
    if (!ns) return jx_rerr(r, line, "out of memory");
    b->s = ns;
    b->cap = nc;
  }
  memcpy(b->s + b->n, p, n);
  b->n += n;
  b->s[b->n] = 0;
  return 0;
}
int jx_sb_done(R *r, sb *b, jv *out, int line) {
  int rc = jx_str_new(r, b->s ? b->s : "", b->n, out, line);
  free(b->s);
  b->s = NULL;
  return rc;
}

/* ---- UTF-8 helpers ---- */
size_t jx_u8_next(const char *s, size_t n, size_t i, int32_t *cp) {
  utf8proc_int32_t c;
  utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
  if (l <= 0) { *cp = (unsigned char)s[i]; return 1; }
  *cp = c;
  return (size_t)l;
}
/* Code points as u8_next walks them (an invalid byte is one code point), so counts, offsets and
 * iteration agree on any input. */
size_t jx_u8_len(const char *s, size_t n) {
  size_t k = 0;
  int32_t c;
  for (size_t i = 0; i < n; k++) i += jx_u8_next(s, n, i, &c);
  return k;
}
size_t jx_u8_offset(const char *s, size_t n, size_t cp_index) { /* byte offset of code point cp_index */
  size_t k = 0, i = 0;
  int32_t c;
  for (; i < n && k < cp_index; k++) i += jx_u8_next(s, n, i, &c);
  return i < n ? i : n;
}
bool jx_py_space(int32_t c) {
  return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* ---- string forms ---- */
static int put_float(R *r, sb *b, double f, int line) {
  char buf[64];
  if (isnan(f)) return jx_sb_puts(r, b, "nan", line);
  if (isinf(f)) return jx_sb_puts(r, b, f < 0 ? "-inf" : "inf", line);
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
  return jx_sb_puts(r, b, o, line);
}
static int put_repr(R *r, sb *b, jv v, int line, int depth);
int jx_put_str(R *r, sb *b, jv v, int line, int depth) { /* Python str() */
  char buf[32];
  switch (v.t) {
  case V_UNDEF: return 0;
  case V_NONE: return jx_sb_puts(r, b, "None", line);
  case V_BOOL: return jx_sb_puts(r, b, v.b ? "True" : "False", line);
  case V_INT: snprintf(buf, sizeof buf, "%lld", (long long)v.i); return jx_sb_puts(r, b, buf, line);
  case V_FLOAT: return put_float(r, b, v.f, line);
  case V_STR: return jx_sb_put(r, b, v.s.p, v.s.n, line);
  default: return put_repr(r, b, v, line, depth);
  }
}
static int put_repr_str(R *r, sb *b, const char *p, size_t n, int line) {
  char q = memchr(p, '\'', n) && !memchr(p, '"', n) ? '"' : '\'';
  if (jx_sb_put(r, b, &q, 1, line)) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    char e[8];
    if (c == '\\' || c == (unsigned char)q) { e[0] = '\\'; e[1] = (char)c; e[2] = 0; }
    else if (c == '\n') strcpy(e, "\\n");
    else if (c == '\r') strcpy(e, "\\r");
    else if (c == '\t') strcpy(e, "\\t");
    else if (c < 0x20 || c == 0x7f) snprintf(e, sizeof e, "\\x%02x", c);
    else { e[0] = (char)c; e[1] = 0; }
    if (jx_sb_puts(r, b, e, line)) return -1;
  }
  return jx_sb_put(r, b, &q, 1, line);
}
static int put_repr(R *r, sb *b, jv v, int line, int depth) {
  if (depth > 100) return jx_rerr(r, line, "value nests deeper than 100 levels");
  switch (v.t) {
  case V_STR: return put_repr_str(r, b, v.s.p, v.s.n, line);
  case V_LIST:
    if (jx_sb_puts(r, b, v.tup ? "(" : "[", line)) return -1;
    for (size_t i = 0; i < v.l->n; i++) {
      if (i && jx_sb_puts(r, b, ", ", line)) return -1;
      if (put_repr(r, b, v.l->v[i], line, depth + 1)) return -1;
    }
    if (v.tup && v.l->n == 1 && jx_sb_puts(r, b, ",", line)) return -1;
    return jx_sb_puts(r, b, v.tup ? ")" : "]", line);
  case V_DICT: case V_NS:
    if (jx_sb_puts(r, b, v.t == V_NS ? "<Namespace {" : "{", line)) return -1;
    for (size_t i = 0; i < v.d->n; i++) {
      if (i && jx_sb_puts(r, b, ", ", line)) return -1;
      if (put_repr_str(r, b, v.d->kp[i], v.d->kn[i], line) || jx_sb_puts(r, b, ": ", line) ||
          put_repr(r, b, v.d->v[i], line, depth + 1))
        return -1;
    }
    return jx_sb_puts(r, b, v.t == V_NS ? "}>" : "}", line);
  case V_FUNC: return jx_sb_puts(r, b, "<function>", line);
  case V_UNDEF: return jx_sb_puts(r, b, "Undefined", line);
  default: return jx_put_str(r, b, v, line, depth);
  }
}
int jx_to_str(R *r, jv v, jv *out, int line) {
  if (v.t == V_STR) { *out = v; return 0; }
  sb b = {0};
  if (jx_put_str(r, &b, v, line, 0)) { free(b.s); return -1; }
  return jx_sb_done(r, &b, out, line);
}

/* JSON as Python's json.dumps (transformers' tojson: ensure_ascii=False by default) */
static int json_str(R *r, sb *b, const char *p, size_t n, bool ascii, int line) {
  if (jx_sb_puts(r, b, "\"", line)) return -1;
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
      i += jx_u8_next(p, n, i, &cp);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else {
        snprintf(e, sizeof e, "\\u%04x", cp);
      }
      if (jx_sb_puts(r, b, e, line)) return -1;
      continue;
    } else {
      size_t j = i;
      while (j < n && (unsigned char)p[j] >= 0x20 && p[j] != '"' && p[j] != '\\' && !((unsigned char)p[j] >= 0x80 && ascii)) j++;
      if (jx_sb_put(r, b, p + i, j - i, line)) return -1;
      i = j;
      continue;
    }
    if (jx_sb_puts(r, b, e, line)) return -1;
    i++;
  }
  return jx_sb_puts(r, b, "\"", line);
}
static int kcmp(const void *a, const void *b, void *ctx) {
  const jdict *d = ctx;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  size_t n = d->kn[i] < d->kn[j] ? d->kn[i] : d->kn[j];
  int c = memcmp(d->kp[i], d->kp[j], n);
  if (c) return c;
  return d->kn[i] < d->kn[j] ? -1 : d->kn[i] > d->kn[j];
}
int jx_put_json(R *r, sb *b, jv v, const jopts *o, int depth, int line) {
  if (depth > 100) return jx_rerr(r, line, "tojson: value nests deeper than 100 levels");
  char buf[32];
  switch (v.t) {
  case V_UNDEF: case V_NONE: return jx_sb_puts(r, b, "null", line);
  case V_BOOL: return jx_sb_puts(r, b, v.b ? "true" : "false", line);
  case V_INT: snprintf(buf, sizeof buf, "%lld", (long long)v.i); return jx_sb_puts(r, b, buf, line);
  case V_FLOAT:
    if (isnan(v.f)) return jx_sb_puts(r, b, "NaN", line);
    if (isinf(v.f)) return jx_sb_puts(r, b, v.f < 0 ? "-Infinity" : "Infinity", line);
    return put_float(r, b, v.f, line);
  case V_STR: return json_str(r, b, v.s.p, v.s.n, o->ascii, line);
  case V_FUNC: return jx_rerr(r, line, "tojson: a function is not JSON serializable");
  default: break;
  }
  bool list = v.t == V_LIST;
  size_t n = list ? v.l->n : v.d->n;
  if (jx_sb_puts(r, b, list ? "[" : "{", line)) return -1;
  if (!n) return jx_sb_puts(r, b, list ? "]" : "}", line);
  size_t *ord = NULL;
  if (!list) {
    ord = malloc(n * sizeof *ord);
    if (!ord) return jx_rerr(r, line, "out of memory");
    for (size_t i = 0; i < n; i++) ord[i] = i;
    if (o->sort) qsort_r(ord, n, sizeof *ord, kcmp, v.d);
  }
  int rc = 0;
  for (size_t k = 0; k < n && !rc; k++) {
    if (k) rc |= jx_sb_puts(r, b, o->isep, line);
    if (o->indent >= 0) {
      rc |= jx_sb_puts(r, b, "\n", line);
      for (int s = 0; s < o->indent * (depth + 1) && !rc; s++) rc |= jx_sb_puts(r, b, " ", line);
    }
    if (list) {
      rc |= jx_put_json(r, b, v.l->v[k], o, depth + 1, line);
    } else {
      size_t i = ord[k];
      rc |= json_str(r, b, v.d->kp[i], v.d->kn[i], o->ascii, line);
      rc |= jx_sb_puts(r, b, o->ksep, line);
      rc |= jx_put_json(r, b, v.d->v[i], o, depth + 1, line);
    }
  }
  free(ord);
  if (rc) return -1;
  if (o->indent >= 0) {
    if (jx_sb_puts(r, b, "\n", line)) return -1;
    for (int s = 0; s < o->indent * depth; s++)
      if (jx_sb_puts(r, b, " ", line)) return -1;
  }
  return jx_sb_puts(r, b, list ? "]" : "}", line);
}

/* ---- truth, equality, comparison ---- */
bool jx_truthy(jv v) {
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
bool jx_py_eq(jv a, jv b) {
  if (jx_is_num(a) && jx_is_num(b)) {
    if (a.t != V_FLOAT && b.t != V_FLOAT) return (a.t == V_INT ? a.i : a.b) == (b.t == V_INT ? b.i : b.b);
    return jx_num(a) == jx_num(b);
  }
  if (a.t != b.t) return false;
  switch (a.t) {
  case V_UNDEF: case V_NONE: return true;
  case V_STR: return a.s.n == b.s.n && !memcmp(a.s.p, b.s.p, a.s.n);
  case V_LIST:
    if (a.l->n != b.l->n) return false;
    for (size_t i = 0; i < a.l->n; i++)
      if (!jx_py_eq(a.l->v[i], b.l->v[i])) return false;
    return true;
  case V_DICT:
    if (a.d->n != b.d->n) return false;
    for (size_t i = 0; i < a.d->n; i++) {
      jv *o = jx_dict_get(b.d, a.d->kp[i], a.d->kn[i]);
      if (!o || !jx_py_eq(a.d->v[i], *o)) return false;
    }
    return true;
  default: return a.d == b.d;
  }
}
/* <0, 0, >0; -2 with *bad when not comparable */
int jx_py_cmp(jv a, jv b, bool *bad, bool fold) {
  *bad = false;
  if (jx_is_num(a) && jx_is_num(b)) { double x = jx_num(a), y = jx_num(b); return x < y ? -1 : x > y; }
  if (a.t == V_STR && b.t == V_STR) {
    if (fold) {
      size_t i = 0, j = 0;
      while (i < a.s.n && j < b.s.n) {
        int32_t c1, c2;
        i += jx_u8_next(a.s.p, a.s.n, i, &c1);
        j += jx_u8_next(b.s.p, b.s.n, j, &c2);
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
      int c = jx_py_cmp(a.l->v[i], b.l->v[i], bad, fold);
      if (*bad || c) return c;
    }
    return a.l->n < b.l->n ? -1 : a.l->n > b.l->n;
  }
  *bad = true;
  return 0;
}
