/* jinja_eval.c - the evaluator of the Jinja interpreter: expressions, calls, macros,
 * statements and the render entry point, with the limits that turn a hostile template (deep
 * recursion, huge loops, huge output) into an error naming the line. Values live in one arena
 * per render (nothing is freed before the render ends); strings are UTF-8 and count/index by
 * code point as Python does.
 * Not for: parsing (jinja_parse.c), values (jinja_value.c), the filters/tests/methods/globals
 * chat templates use (jinja_builtins.c), chat-specific variables (chat_template.c). */
#define _GNU_SOURCE
#include "template/jinja_rt.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

/* ---- evaluation ---- */
static int eval(R *r, const jnode *n, env *e, jv *out);
static int exec_block(R *r, jnode **v, int nv, env *e);



static int eval_args(R *r, jnode **v, int nv, env *e, args_t *a, int line) {
  memset(a, 0, sizeof *a);
  int cap = nv + 1;
  a->pos = jx_ralloc(r, (size_t)cap * sizeof *a->pos, line);
  a->kn = jx_ralloc(r, (size_t)cap * sizeof *a->kn, line);
  a->kv = jx_ralloc(r, (size_t)cap * sizeof *a->kv, line);
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
        if (val.t != V_LIST) return jx_rerr(r, line, "cannot unpack %s with '*'", jx_vt_name[val.t]);
        jv *np = jx_ralloc(r, (size_t)(cap + val.l->n) * sizeof *np, line);
        if (!np) return -1;
        memcpy(np, a->pos, (size_t)a->np * sizeof *np);
        memcpy(np + a->np, val.l->v, val.l->n * sizeof *np);
        a->pos = np;
        a->np += (int)val.l->n;
        cap += (int)val.l->n;
      } else {
        if (val.t != V_DICT) return jx_rerr(r, line, "argument after ** must be a mapping, not %s", jx_vt_name[val.t]);
        const char **kn = jx_ralloc(r, (size_t)(a->nk + val.d->n + nv) * sizeof *kn, line);
        jv *kv = jx_ralloc(r, (size_t)(a->nk + val.d->n + nv) * sizeof *kv, line);
        if (!kn || !kv) return -1;
        memcpy(kn, a->kn, (size_t)a->nk * sizeof *kn);
        memcpy(kv, a->kv, (size_t)a->nk * sizeof *kv);
        for (size_t j = 0; j < val.d->n; j++) {
          jv ks;
          if (jx_str_new(r, val.d->kp[j], val.d->kn[j], &ks, line)) return -1;
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
const jv *jx_arg(const args_t *a, int i, const char *name) {
  if (i >= 0 && i < a->np) return &a->pos[i];
  for (int k = 0; name && k < a->nk; k++)
    if (!strcmp(a->kn[k], name)) return &a->kv[k];
  return NULL;
}

static int call_value(R *r, jv fn, const args_t *a, const jv *caller, int line, jv *out);


int jx_iter_items(R *r, jv v, jv *out, int line) { /* anything iterable -> list */
  switch (v.t) {
  case V_LIST: /* shared, not copied: charged as if walked */
    if (v.l->n > 16 && jx_charge(r, v.l->n >> 4, line)) return -1;
    *out = v;
    out->tup = 0;
    return 0;
  case V_UNDEF: return jx_list_new(r, 0, out, line);
  case V_DICT: case V_NS:
    if (jx_list_new(r, v.d->n, out, line)) return -1;
    for (size_t i = 0; i < v.d->n; i++) out->l->v[i] = jx_mk_str(v.d->kp[i], v.d->kn[i]);
    return 0;
  case V_STR: {
    size_t n = jx_u8_len(v.s.p, v.s.n), k = 0;
    if (jx_list_new(r, n, out, line)) return -1;
    for (size_t i = 0; i < v.s.n;) {
      int32_t cp;
      size_t l = jx_u8_next(v.s.p, v.s.n, i, &cp);
      out->l->v[k++] = jx_mk_str(v.s.p + i, l);
      i += l;
    }
    out->l->n = k;
    return 0;
  }
  default: return jx_rerr(r, line, "'%s' object is not iterable", jx_vt_name[v.t]);
  }
}

static int assign(R *r, const jnode *target, jv v, env *e) {
  if (target->k == N_IDENT) return jx_env_set(r, e, target->s, v, target->line);
  if (target->k == N_TUPLE) {
    jv items;
    if (jx_iter_items(r, v, &items, target->line)) return -1;
    if ((int)items.l->n != target->nv)
      return jx_rerr(r, target->line, "too %s values to unpack (expected %d, got %zu)",
                  (int)items.l->n < target->nv ? "few" : "many", target->nv, items.l->n);
    for (int i = 0; i < target->nv; i++) {
      if (target->v[i]->k != N_IDENT) return jx_rerr(r, target->line, "can only unpack into names");
      if (jx_env_set(r, e, target->v[i]->s, items.l->v[i], target->line)) return -1;
    }
    return 0;
  }
  if (target->k == N_MEMBER && !target->i && target->b->k == N_IDENT) {
    jv obj;
    if (eval(r, target->a, e, &obj)) return -1;
    if (obj.t != V_NS) return jx_rerr(r, target->line, "cannot assign attribute '%s' on a %s (only on a namespace())", target->b->s, jx_vt_name[obj.t]);
    return jx_dict_set(r, obj.d, target->b->s, strlen(target->b->s), v, target->line);
  }
  return jx_rerr(r, target->line, "cannot assign to this expression");
}

static int capture(R *r, jnode **body, int nb, env *e, jv *out, int line) {
  size_t start = r->len;
  r->capture++;
  int rc = exec_block(r, body, nb, e);
  r->capture--;
  if (rc) return -1;
  rc = jx_str_new(r, r->out ? r->out + start : "", r->len - start, out, line);
  r->len = start;
  return rc;
}

static int call_macro(R *r, jfunc *f, const args_t *a, const jv *caller, int line, jv *out) {
  const jnode *m = f->node;
  jnode **params = m->v;
  int np = m->nv;
  env *e = jx_env_new(r, f->closure, line);
  if (!e) return -1;
  if (a->np > np) {
    /* varargs */
    jv va; /* a tuple, as in Python */
    if (jx_list_new(r, (size_t)(a->np - np), &va, line)) return -1;
    va.tup = 1;
    for (int i = np; i < a->np; i++) va.l->v[i - np] = a->pos[i];
    if (jx_env_set(r, e, "varargs", va, line)) return -1;
  } else {
    jv va;
    if (jx_list_new(r, 0, &va, line)) return -1;
    va.tup = 1;
    if (jx_env_set(r, e, "varargs", va, line)) return -1;
  }
  jv kw;
  if (jx_dict_new(r, &kw, V_DICT, line)) return -1;
  for (int k = 0; k < a->nk; k++) {
    bool known = false;
    for (int i = 0; i < np; i++)
      if (!strcmp(params[i]->s, a->kn[k])) known = true;
    if (!known && jx_dict_set(r, kw.d, a->kn[k], strlen(a->kn[k]), a->kv[k], line)) return -1;
  }
  if (jx_env_set(r, e, "kwargs", kw, line)) return -1;
  for (int i = 0; i < np; i++) {
    const jv *v = jx_arg(a, i, params[i]->s);
    if (v) {
      if (jx_env_set(r, e, params[i]->s, *v, line)) return -1;
    } else if (params[i]->k == N_KWARG) {
      jv d;
      if (eval(r, params[i]->a, e, &d) || jx_env_set(r, e, params[i]->s, d, line)) return -1;
    } else {
      if (jx_env_set(r, e, params[i]->s, UNDEF, line)) return -1;
    }
  }
  if (caller && jx_env_set(r, e, "caller", *caller, line)) return -1;
  if (++r->depth > r->lim.max_depth) return jx_rerr(r, line, "macro calls nest deeper than %d", r->lim.max_depth);
  int rc = capture(r, m->w, m->nw, e, out, line); /* a macro's body, or a call block's (the caller) */
  r->depth--;
  return rc;
}

int jx_get_member(R *r, jv obj, jv key, int line, jv *out) {
  *out = UNDEF;
  if (obj.t == V_DICT || obj.t == V_NS) {
    if (key.t != V_STR) return 0; /* keys are strings (from JSON and dict literals) */
    jv *v = jx_dict_get(obj.d, key.s.p, key.s.n);
    if (v) { *out = *v; return 0; }
    const char *mn = obj.t == V_DICT ? jx_method_name(obj, key.s.p, key.s.n) : NULL;
    if (mn) return jx_func_new(r, F_METHOD, mn, obj, NULL, NULL, out, line);
    return 0;
  }
  if (obj.t == V_LIST || obj.t == V_STR) {
    if (key.t == V_INT || key.t == V_BOOL) {
      int64_t i = key.t == V_INT ? key.i : key.b;
      int64_t n = obj.t == V_LIST ? (int64_t)obj.l->n : (int64_t)jx_u8_len(obj.s.p, obj.s.n);
      if (i < 0) i += n;
      if (i < 0 || i >= n) return 0;
      if (obj.t == V_LIST) *out = obj.l->v[i];
      else {
        size_t b = jx_u8_offset(obj.s.p, obj.s.n, (size_t)i);
        int32_t c;
        *out = jx_mk_str(obj.s.p + b, jx_u8_next(obj.s.p, obj.s.n, b, &c));
      }
      return 0;
    }
    if (key.t == V_STR) {
      if (jx_sveq(key, "length")) { /* @huggingface/jinja exposes .length */
        *out = jx_mk_int(obj.t == V_LIST ? (int64_t)obj.l->n : (int64_t)jx_u8_len(obj.s.p, obj.s.n));
        return 0;
      }
      const char *mn = jx_method_name(obj, key.s.p, key.s.n);
      if (mn) return jx_func_new(r, F_METHOD, mn, obj, NULL, NULL, out, line);
    }
    return 0;
  }
  return 0;
}

static int slice_idx(jv *v, int64_t *out, bool *given, int line, R *r) {
  *given = v && v->t != V_UNDEF && v->t != V_NONE;
  if (*given) {
    if (v->t != V_INT) return jx_rerr(r, line, "slice indices must be integers");
    *out = v->i;
  }
  return 0;
}
static int do_slice(R *r, jv obj, jv *a, jv *b, jv *c, int line, jv *out) {
  if (obj.t != V_LIST && obj.t != V_STR) return jx_rerr(r, line, "cannot slice a %s", jx_vt_name[obj.t]);
  int64_t n = obj.t == V_LIST ? (int64_t)obj.l->n : (int64_t)jx_u8_len(obj.s.p, obj.s.n);
  int64_t st = 0, sp = 0, step = 1;
  bool gs, gp, gt;
  if (slice_idx(a, &st, &gs, line, r) || slice_idx(b, &sp, &gp, line, r) || slice_idx(c, &step, &gt, line, r)) return -1;
  if (!step) return jx_rerr(r, line, "slice step cannot be zero");
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
    if (jx_list_new(r, cnt, out, line)) return -1;
    size_t k = 0;
    for (int64_t i = st; step > 0 ? i < sp : i > sp; i += step) out->l->v[k++] = obj.l->v[i];
    return 0;
  }
  if (step == 1) {
    size_t b0 = jx_u8_offset(obj.s.p, obj.s.n, (size_t)st), b1 = sp > st ? jx_u8_offset(obj.s.p, obj.s.n, (size_t)sp) : b0;
    *out = jx_mk_str(obj.s.p + b0, b1 - b0);
    return 0;
  }
  /* general step: index the code points */
  size_t *offs = malloc(((size_t)n + 1) * sizeof *offs);
  if (!offs) return jx_rerr(r, line, "out of memory");
  size_t k = 0;
  int32_t cp;
  for (size_t i = 0; i < obj.s.n && k < (size_t)n; i += jx_u8_next(obj.s.p, obj.s.n, i, &cp)) offs[k++] = i;
  offs[k] = obj.s.n;
  sb bb = {0};
  int rc = 0;
  for (int64_t i = st; !rc && (step > 0 ? i < sp : i > sp); i += step) rc = jx_sb_put(r, &bb, obj.s.p + offs[i], offs[i + 1] - offs[i], line);
  free(offs);
  if (rc) { free(bb.s); return -1; }
  return jx_sb_done(r, &bb, out, line);
}

int jx_binop(R *r, int op, jv a, jv b, int line, jv *out) {
  switch (op) {
  case OP_EQ: case OP_NE:
    if (a.t == V_LIST && b.t == V_LIST && jx_charge(r, a.l->n, line)) return -1;
    if (a.t == V_STR && b.t == V_STR && jx_charge(r, a.s.n >> 8, line)) return -1;
    *out = jx_mk_bool(jx_py_eq(a, b) == (op == OP_EQ));
    return 0;
  case OP_IN: case OP_NOTIN: {
    bool hit = false;
    if (jx_charge(r, b.t == V_LIST ? b.l->n : b.t == V_STR ? b.s.n >> 8 : b.t == V_DICT || b.t == V_NS ? b.d->n : 0, line)) return -1;
    if (b.t == V_LIST) {
      for (size_t i = 0; i < b.l->n && !hit; i++) hit = jx_py_eq(a, b.l->v[i]);
    } else if (b.t == V_STR) {
      if (a.t != V_STR) return jx_rerr(r, line, "'in <string>' requires a string as left operand, not %s", jx_vt_name[a.t]);
      hit = memmem(b.s.p, b.s.n, a.s.p, a.s.n) != NULL || a.s.n == 0;
    } else if (b.t == V_DICT || b.t == V_NS) {
      hit = a.t == V_STR && jx_dict_get(b.d, a.s.p, a.s.n);
    } else if (b.t == V_UNDEF) {
      hit = false;
    } else {
      return jx_rerr(r, line, "argument of type '%s' is not iterable", jx_vt_name[b.t]);
    }
    *out = jx_mk_bool(op == OP_IN ? hit : !hit);
    return 0;
  }
  case '~': {
    sb s = {0};
    if (jx_put_str(r, &s, a, line, 0) || jx_put_str(r, &s, b, line, 0)) { free(s.s); return -1; }
    return jx_sb_done(r, &s, out, line);
  }
  case '<': case '>': case OP_LE: case OP_GE: {
    bool bad;
    int c = jx_py_cmp(a, b, &bad, false);
    if (bad) return jx_rerr(r, line, "cannot compare %s with %s", jx_vt_name[a.t], jx_vt_name[b.t]);
    *out = jx_mk_bool(op == '<' ? c < 0 : op == '>' ? c > 0 : op == OP_LE ? c <= 0 : c >= 0);
    return 0;
  }
  default: break;
  }
  if (op == '+' && a.t == V_LIST && b.t == V_LIST) {
    if (jx_list_new(r, a.l->n + b.l->n, out, line)) return -1;
    if (a.l->n) memcpy(out->l->v, a.l->v, a.l->n * sizeof(jv));
    if (b.l->n) memcpy(out->l->v + a.l->n, b.l->v, b.l->n * sizeof(jv));
    return 0;
  }
  if (op == '+' && (a.t == V_STR || b.t == V_STR)) {
    if (a.t == V_UNDEF || b.t == V_UNDEF)
      return jx_rerr(r, line, "cannot add %s and %s (a variable or key is missing)", jx_vt_name[a.t], jx_vt_name[b.t]);
    if (a.t == V_NONE || b.t == V_NONE) return jx_rerr(r, line, "cannot add %s and %s", jx_vt_name[a.t], jx_vt_name[b.t]);
    sb s = {0};
    if (jx_put_str(r, &s, a, line, 0) || jx_put_str(r, &s, b, line, 0)) { free(s.s); return -1; }
    return jx_sb_done(r, &s, out, line);
  }
  if (op == '*' && ((a.t == V_STR && b.t == V_INT) || (a.t == V_INT && b.t == V_STR))) {
    jv s = a.t == V_STR ? a : b;
    int64_t k = a.t == V_INT ? a.i : b.i;
    if (k <= 0 || !s.s.n) { *out = jx_mk_str("", 0); return 0; } /* '' * 888888888 is '' at once */
    if ((unsigned __int128)k * s.s.n > r->lim.max_output) return jx_rerr(r, line, "string repetition exceeds %zu bytes", r->lim.max_output);
    sb o = {0};
    for (int64_t i = 0; i < k; i++)
      if (jx_sb_put(r, &o, s.s.p, s.s.n, line)) { free(o.s); return -1; }
    return jx_sb_done(r, &o, out, line);
  }
  if (!jx_is_num(a) || !jx_is_num(b))
    return jx_rerr(r, line, "unsupported operand types for '%s': %s and %s",
                op == '+' ? "+" : op == '-' ? "-" : op == '*' ? "*" : op == '/' ? "/" : op == '%' ? "%" : op == OP_POW ? "**" : "//",
                jx_vt_name[a.t], jx_vt_name[b.t]);
  bool fl = a.t == V_FLOAT || b.t == V_FLOAT;
  int64_t x = a.t == V_INT ? a.i : a.t == V_BOOL ? a.b : 0, y = b.t == V_INT ? b.i : b.t == V_BOOL ? b.b : 0;
  double fx = jx_num(a), fy = jx_num(b);
  switch (op) {
  case '+': case '-': case '*': {
    if (fl) { *out = jx_mk_float(op == '+' ? fx + fy : op == '-' ? fx - fy : fx * fy); return 0; }
    int64_t res;
    bool ovf = op == '+' ? __builtin_add_overflow(x, y, &res) : op == '-' ? __builtin_sub_overflow(x, y, &res) : __builtin_mul_overflow(x, y, &res);
    if (ovf) return jx_rerr(r, line, "integer overflow");
    *out = jx_mk_int(res);
    return 0;
  }
  case '/':
    if (fy == 0) return jx_rerr(r, line, "division by zero");
    *out = jx_mk_float(fx / fy);
    return 0;
  case OP_FLOORDIV: case '%':
    if (fl ? fy == 0 : y == 0) return jx_rerr(r, line, "%s by zero", op == '%' ? "modulo" : "division");
    if (fl) {
      double q = floor(fx / fy), m = fx - q * fy;
      *out = jx_mk_float(op == '%' ? m : q);
    } else {
      if (x == INT64_MIN && y == -1) return jx_rerr(r, line, "integer overflow");
      int64_t q = x / y, m = x % y;
      if (m && ((m < 0) != (y < 0))) { q--; m += y; }
      *out = jx_mk_int(op == '%' ? m : q);
    }
    return 0;
  case OP_POW:
    if (!fl && y >= 0) {
      double p = pow((double)x, (double)y);
      if (fabs(p) > 9.2e18) return jx_rerr(r, line, "integer overflow in '**'");
      int64_t res = 1;
      for (int64_t i = 0; i < y; i++) res *= x;
      *out = jx_mk_int(res);
    } else {
      if (fx == 0 && fy < 0) return jx_rerr(r, line, "0.0 cannot be raised to a negative power");
      *out = jx_mk_float(pow(fx, fy));
    }
    return 0;
  }
  return jx_rerr(r, line, "unknown operator");
}

static int lookup(R *r, const jnode *n, env *e, jv *out) {
  if (jx_env_get(e, n->s, out)) return 0;
  const char *s = n->s;
  if (!strcmp(s, "true") || !strcmp(s, "True")) { *out = jx_mk_bool(true); return 0; }
  if (!strcmp(s, "false") || !strcmp(s, "False")) { *out = jx_mk_bool(false); return 0; }
  if (!strcmp(s, "none") || !strcmp(s, "None")) { *out = NONE; return 0; }
  static const char *builtins[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", NULL};
  for (int i = 0; builtins[i]; i++)
    if (!strcmp(s, builtins[i])) return jx_func_new(r, F_BUILTIN, builtins[i], UNDEF, NULL, NULL, out, n->line);
  *out = UNDEF;
  return 0;
}

static int call_value(R *r, jv fn, const args_t *a, const jv *caller, int line, jv *out) {
  if (fn.t != V_FUNC) return jx_rerr(r, line, "cannot call a %s", jx_vt_name[fn.t]);
  switch (fn.fn->kind) {
  case F_BUILTIN: return jx_call_builtin(r, fn.fn, a, line, out);
  case F_METHOD: return jx_call_method(r, fn.fn, a, line, out);
  default: return call_macro(r, fn.fn, a, caller, line, out);
  }
}

static int eval(R *r, const jnode *n, env *e, jv *out) {
  STEP(r, n->line);
  if (++r->depth > r->lim.max_depth + 400)
    return jx_rerr(r, n->line, "expression nests too deeply");
  int rc = 0;
  jv a, b;
  switch (n->k) {
  case N_INT: *out = jx_mk_int(n->i); break;
  case N_FLOAT: *out = jx_mk_float(n->f); break;
  case N_STR: *out = jx_mk_str(n->s, n->sn); break;
  case N_IDENT: rc = lookup(r, n, e, out); break;
  case N_LIST: case N_TUPLE:
    if ((rc = jx_list_new(r, (size_t)n->nv, out, n->line))) break;
    out->tup = n->k == N_TUPLE;
    for (int i = 0; i < n->nv && !rc; i++) rc = eval(r, n->v[i], e, &out->l->v[i]);
    break;
  case N_DICT:
    if ((rc = jx_dict_new(r, out, V_DICT, n->line))) break;
    for (int i = 0; i < n->nv && !rc; i++) {
      if ((rc = eval(r, n->v[i], e, &a)) || (rc = eval(r, n->w[i], e, &b))) break;
      if (a.t != V_STR) { rc = jx_rerr(r, n->line, "dict keys must be strings, not %s", jx_vt_name[a.t]); break; }
      rc = jx_dict_set(r, out->d, a.s.p, a.s.n, b, n->line);
    }
    break;
  case N_BIN:
    if ((rc = eval(r, n->a, e, &a))) break;
    if (n->op == OP_AND) { rc = jx_truthy(a) ? eval(r, n->b, e, out) : (*out = a, 0); break; }
    if (n->op == OP_OR) { rc = jx_truthy(a) ? (*out = a, 0) : eval(r, n->b, e, out); break; }
    if ((rc = eval(r, n->b, e, &b))) break;
    rc = jx_binop(r, n->op, a, b, n->line, out);
    break;
  case N_UNARY:
    if ((rc = eval(r, n->a, e, &a))) break;
    if (n->op == OP_NOT) *out = jx_mk_bool(!jx_truthy(a));
    else if (a.t == V_FLOAT) *out = jx_mk_float(n->op == '-' ? -a.f : a.f);
    else if (a.t == V_INT && a.i == INT64_MIN && n->op == '-') rc = jx_rerr(r, n->line, "integer overflow");
    else if (a.t == V_INT || a.t == V_BOOL) *out = jx_mk_int(n->op == '-' ? -(a.t == V_INT ? a.i : a.b) : (a.t == V_INT ? a.i : a.b));
    else rc = jx_rerr(r, n->line, "bad operand type for unary %c: %s", n->op, jx_vt_name[a.t]);
    break;
  case N_COND:
    if ((rc = eval(r, n->a, e, &a))) break;
    if (jx_truthy(a)) rc = eval(r, n->b, e, out);
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
    else if (n->b->k == N_INT) b = jx_mk_int(n->b->i);
    else b = jx_cstr(n->b->s);
    rc = jx_get_member(r, a, b, n->line, out);
    break;
  case N_CALL: {
    args_t args;
    if ((rc = eval(r, n->a, e, &a)) || (rc = eval_args(r, n->v, n->nv, e, &args, n->line))) break;
    if (a.t == V_UNDEF) {
      const char *nm = n->a->k == N_IDENT ? n->a->s : n->a->k == N_MEMBER && !n->a->i && n->a->b->k == N_IDENT ? n->a->b->s : "?";
      rc = jx_rerr(r, n->line, "'%s' is undefined and cannot be called", nm);
      break;
    }
    rc = call_value(r, a, &args, NULL, n->line, out);
    break;
  }
  case N_FILTER: {
    args_t args;
    if ((rc = eval(r, n->a, e, &a)) || (rc = eval_args(r, n->v, n->nv, e, &args, n->line))) break;
    rc = jx_apply_filter(r, a, n->s, &args, e, n->line, out);
    break;
  }
  case N_TEST: {
    args_t args;
    bool res;
    if ((rc = eval(r, n->a, e, &a)) || (rc = eval_args(r, n->v, n->nv, e, &args, n->line))) break;
    if ((rc = jx_apply_test(r, a, n->s, &args, n->line, &res))) break;
    *out = jx_mk_bool(n->i ? !res : res);
    break;
  }
  default:
    rc = jx_rerr(r, n->line, "this expression is not allowed here");
  }
  r->depth--;
  return rc;
}

/* ---- statements ---- */
static int exec_stmt(R *r, const jnode *n, env *e) {
  STEP(r, n->line);
  jv v;
  switch (n->k) {
  case N_TEXT: return jx_emit(r, n->s, n->sn, n->line);
  case N_COMMENT: return 0;
  case N_OUTPUT: {
    if (eval(r, n->a, e, &v)) return -1;
    if (v.t == V_STR) return jx_emit(r, v.s.p, v.s.n, n->line);
    if (v.t == V_UNDEF) return 0;
    sb b = {0};
    int rc = jx_put_str(r, &b, v, n->line, 0);
    if (!rc) rc = jx_emit(r, b.s ? b.s : "", b.n, n->line);
    free(b.s);
    return rc;
  }
  case N_IF:
    if (eval(r, n->a, e, &v)) return -1;
    return jx_truthy(v) ? exec_block(r, n->v, n->nv, e) : exec_block(r, n->w, n->nw, e);
  case N_SET:
    if (n->b) { if (eval(r, n->b, e, &v)) return -1; }
    else if (capture(r, n->v, n->nv, e, &v, n->line)) return -1;
    return assign(r, n->a, v, e);
  case N_FOR: {
    jv iterable, items;
    env *scope = jx_env_new(r, e, n->line);
    if (!scope || eval(r, n->b, scope, &iterable)) return -1;
    if (iterable.t == V_NONE || iterable.t == V_INT || iterable.t == V_FLOAT || iterable.t == V_BOOL || iterable.t == V_FUNC)
      return jx_rerr(r, n->line, "'%s' object is not iterable", jx_vt_name[iterable.t]);
    if (jx_iter_items(r, iterable, &items, n->line)) return -1;
    if (n->c) { /* for x in xs if cond */
      jv kept;
      if (jx_list_new(r, items.l->n, &kept, n->line)) return -1;
      size_t k = 0;
      env *ts = jx_env_new(r, scope, n->line);
      if (!ts) return -1;
      for (size_t i = 0; i < items.l->n; i++) {
        jv t;
        ts->n = 0;
        if (assign(r, n->a, items.l->v[i], ts) || eval(r, n->c, ts, &t)) return -1;
        if (jx_truthy(t)) kept.l->v[k++] = items.l->v[i];
      }
      kept.l->n = k;
      items = kept;
    }
    size_t N = items.l->n;
    bool any = false;
    jv loop; /* one loop object per for statement, updated in place (no allocation per iteration) */
    if (jx_dict_new(r, &loop, V_DICT, n->line)) return -1;
    /* each iteration starts from the enclosing scope's values, as in jinja2: what the body sets
     * lives in `it`, emptied before the next iteration */
    env *it = jx_env_new(r, scope, n->line);
    if (!it) return -1;
    for (size_t i = 0; i < N; i++) {
      it->n = 0;
      STEP(r, n->line);
      jdict *d = loop.d;
      if (jx_dict_set(r, d, "index", 5, jx_mk_int((int64_t)i + 1), n->line) || jx_dict_set(r, d, "index0", 6, jx_mk_int((int64_t)i), n->line) ||
          jx_dict_set(r, d, "revindex", 8, jx_mk_int((int64_t)(N - i)), n->line) ||
          jx_dict_set(r, d, "revindex0", 9, jx_mk_int((int64_t)(N - i - 1)), n->line) ||
          jx_dict_set(r, d, "first", 5, jx_mk_bool(i == 0), n->line) || jx_dict_set(r, d, "last", 4, jx_mk_bool(i == N - 1), n->line) ||
          jx_dict_set(r, d, "length", 6, jx_mk_int((int64_t)N), n->line) ||
          jx_dict_set(r, d, "previtem", 8, i > 0 ? items.l->v[i - 1] : UNDEF, n->line) ||
          jx_dict_set(r, d, "nextitem", 8, i + 1 < N ? items.l->v[i + 1] : UNDEF, n->line) ||
          jx_dict_set(r, d, "depth", 5, jx_mk_int(1), n->line) || jx_dict_set(r, d, "depth0", 6, jx_mk_int(0), n->line))
        return -1;
      if (i == 0) {
        jv cyc;
        if (jx_func_new(r, F_BUILTIN, "loop.cycle", loop, NULL, NULL, &cyc, n->line) || jx_dict_set(r, d, "cycle", 5, cyc, n->line))
          return -1;
      }
      if (jx_env_set(r, it, "loop", loop, n->line) || assign(r, n->a, items.l->v[i], it)) return -1;
      if (exec_block(r, n->v, n->nv, it)) return -1;
      if (r->ctl == 1) { r->ctl = 0; any = true; break; }
      r->ctl = 0;
      any = true;
    }
    if (!any) return exec_block(r, n->w, n->nw, scope);
    return 0;
  }
  case N_MACRO:
    if (jx_func_new(r, F_MACRO, n->s, UNDEF, n, e, &v, n->line)) return -1;
    return jx_env_set(r, e, n->s, v, n->line);
  case N_CALLBLOCK: {
    const jnode *c = n->a;
    jv fn, caller, res;
    args_t args;
    /* the caller is a macro whose params are n->v and body n->w */
    jnode *cm = jx_ralloc(r, sizeof *cm, n->line);
    if (!cm) return -1;
    *cm = *n;
    cm->k = N_MACRO;
    cm->s = "caller";
    if (jx_func_new(r, F_CALLER, "caller", UNDEF, cm, e, &caller, n->line)) return -1;
    if (eval(r, c->a, e, &fn) || eval_args(r, c->v, c->nv, e, &args, n->line)) return -1;
    if (fn.t != V_FUNC || fn.fn->kind != F_MACRO) return jx_rerr(r, n->line, "'%s' is not a macro", c->a->s);
    if (call_macro(r, fn.fn, &args, &caller, n->line, &res)) return -1;
    return jx_emit(r, res.s.p, res.s.n, n->line);
  }
  case N_FILTERBLOCK: {
    jv body, res;
    args_t args;
    if (capture(r, n->v, n->nv, e, &body, n->line)) return -1;
    if (eval_args(r, n->a->v, n->a->nv, e, &args, n->line) || jx_apply_filter(r, body, n->a->s, &args, e, n->line, &res)) return -1;
    if (res.t != V_STR && jx_to_str(r, res, &res, n->line)) return -1;
    return jx_emit(r, res.s.p, res.s.n, n->line);
  }
  case N_GENERATION: {
    size_t start = r->len;
    if (exec_block(r, n->v, n->nv, e)) return -1;
    if (!r->capture && r->len > start) {
      if (r->n_gen == r->cap_gen) {
        size_t nc = r->cap_gen ? 2 * r->cap_gen : 16;
        tn_jinja_span *ng = realloc(r->gen, nc * sizeof *ng);
        if (!ng) return jx_rerr(r, n->line, "out of memory");
        r->gen = ng;
        r->cap_gen = nc;
      }
      r->gen[r->n_gen++] = (tn_jinja_span){start, r->len};
    }
    return 0;
  }
  case N_BREAK: r->ctl = 1; return 0;
  case N_CONTINUE: r->ctl = 2; return 0;
  default: return jx_rerr(r, n->line, "unexpected node");
  }
}
static int exec_block(R *r, jnode **v, int nv, env *e) {
  if (++r->depth > r->lim.max_depth + 400) return jx_rerr(r, nv ? v[0]->line : 0, "statements nest too deeply");
  for (int i = 0; i < nv && !r->ctl; i++)
    if (exec_stmt(r, v[i], e)) { r->depth--; return -1; }
  r->depth--;
  return 0;
}

/* ---- JSON -> values ---- */
static int from_json(R *r, const cJSON *j, jv *out, int depth) {
  if (depth > 200) return jx_rerr(r, 0, "a variable nests deeper than 200 levels");
  if (cJSON_IsNull(j) || !j) *out = NONE;
  else if (cJSON_IsBool(j)) *out = jx_mk_bool(cJSON_IsTrue(j));
  else if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) < 9007199254740992.0) *out = jx_mk_int((int64_t)d);
    else *out = jx_mk_float(d);
  } else if (cJSON_IsString(j)) *out = jx_cstr(j->valuestring);
  else if (cJSON_IsArray(j)) {
    if (jx_list_new(r, (size_t)cJSON_GetArraySize(j), out, 0)) return -1;
    size_t i = 0;
    for (const cJSON *c = j->child; c; c = c->next)
      if (from_json(r, c, &out->l->v[i++], depth + 1)) return -1;
  } else if (cJSON_IsObject(j)) {
    if (jx_dict_new(r, out, V_DICT, 0)) return -1;
    for (const cJSON *c = j->child; c; c = c->next) {
      jv x;
      if (from_json(r, c, &x, depth + 1) || jx_dict_set(r, out->d, c->string, strlen(c->string), x, 0)) return -1;
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
  env *g = jx_env_new(&r, NULL, 0);
  int rc = g ? 0 : -1;
  if (!rc && vars && cJSON_IsObject(vars)) {
    for (const cJSON *c = vars->child; c && !rc; c = c->next) {
      jv v;
      rc = from_json(&r, c, &v, 0);
      if (!rc) rc = jx_env_set(&r, g, c->string, v, 0);
    }
  }
  if (!rc) rc = exec_block(&r, t->body, t->n_body, g);
  if (!rc) rc = jx_emit(&r, "", 0, 0); /* make sure the buffer exists */
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
