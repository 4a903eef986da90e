/* jinja_builtins.c - what chat templates call: the globals (range, namespace, dict, cycler,
 * raise_exception, strftime_now, ...), string and dict methods, tests and filters, with
 * Python's and Jinja's semantics.
 * Not for: expression evaluation (jinja_eval.c), values (jinja_value.c). */
#define _GNU_SOURCE
#include "template/jinja_rt.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

/* ---- globals ---- */
static const char *MONTHS[] = {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"};
static const char *DAYS[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
int jx_strftime_now(R *r, jv fmt, int line, jv *out) {
  if (fmt.t != V_STR) return jx_rerr(r, line, "strftime_now() takes a format string");
  struct tm tmv;
  const char *d = getenv("TN_DATE");
  if (d && *d) {
    int y, m, dd;
    if (sscanf(d, "%d-%d-%d", &y, &m, &dd) != 3 || m < 1 || m > 12 || dd < 1 || dd > 31)
      return jx_rerr(r, line, "TN_DATE='%s' is not YYYY-MM-DD", d);
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
    if (c != '%' || i + 1 >= fmt.s.n) { rc = jx_sb_put(r, &b, &c, 1, line); if (rc) { free(b.s); return -1; } continue; }
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
    if (jx_sb_puts(r, &b, buf, line)) { free(b.s); return -1; }
  }
  return jx_sb_done(r, &b, out, line);
}

int jx_call_builtin(R *r, jfunc *f, const args_t *a, int line, jv *out) {
  const char *nm = f->name;
  if (!strcmp(nm, "range")) {
    int64_t st = 0, sp, step = 1;
    for (int i = 0; i < a->np; i++)
      if (a->pos[i].t != V_INT) return jx_rerr(r, line, "range() takes integers");
    if (a->np == 1) sp = a->pos[0].i;
    else if (a->np >= 2) { st = a->pos[0].i; sp = a->pos[1].i; if (a->np > 2) step = a->pos[2].i; }
    else return jx_rerr(r, line, "range() takes 1 to 3 integers");
    if (!step) return jx_rerr(r, line, "range() step must not be zero");
    if (step == INT64_MIN) return jx_rerr(r, line, "range() step is too large");
    __int128 span = step > 0 ? (__int128)sp - st : (__int128)st - sp, as = step > 0 ? step : -(__int128)step;
    __int128 n128 = span > 0 ? (span + as - 1) / as : 0;
    if (n128 > 10000000) return jx_rerr(r, line, "range() of more than 10000000 items is too long");
    int64_t n = (int64_t)n128;
    if (n > 10000000) return jx_rerr(r, line, "range() of %lld items is too long", (long long)n);
    if (jx_list_new(r, (size_t)n, out, line)) return -1;
    for (int64_t i = 0; i < n; i++) out->l->v[i] = jx_mk_int((int64_t)((__int128)st + (__int128)i * step));
    return 0;
  }
  if (!strcmp(nm, "namespace") || !strcmp(nm, "dict")) {
    if (jx_dict_new(r, out, nm[0] == 'n' ? V_NS : V_DICT, line)) return -1;
    if (a->np > 1) return jx_rerr(r, line, "%s() takes at most 1 positional argument", nm);
    if (a->np == 1) {
      jv s = a->pos[0];
      if (s.t == V_DICT || s.t == V_NS) {
        for (size_t i = 0; i < s.d->n; i++)
          if (jx_dict_set(r, out->d, s.d->kp[i], s.d->kn[i], s.d->v[i], line)) return -1;
      } else if (s.t == V_LIST) {
        for (size_t i = 0; i < s.l->n; i++) {
          jv p = s.l->v[i];
          if (p.t != V_LIST || p.l->n != 2 || p.l->v[0].t != V_STR)
            return jx_rerr(r, line, "%s() expected a mapping or (key, value) pairs", nm);
          if (jx_dict_set(r, out->d, p.l->v[0].s.p, p.l->v[0].s.n, p.l->v[1], line)) return -1;
        }
      } else {
        return jx_rerr(r, line, "'%s' object is not iterable", jx_vt_name[s.t]);
      }
    }
    for (int k = 0; k < a->nk; k++)
      if (jx_dict_set(r, out->d, a->kn[k], strlen(a->kn[k]), a->kv[k], line)) return -1;
    return 0;
  }
  if (!strcmp(nm, "raise_exception")) {
    jv m = a->np ? a->pos[0] : jx_cstr("raise_exception() called");
    jv s;
    if (jx_to_str(r, m, &s, line)) return -1;
    return jx_rerr(r, line, "the template raised an exception: %.*s", (int)(s.s.n > 400 ? 400 : s.s.n), s.s.p);
  }
  if (!strcmp(nm, "strftime_now")) return jx_strftime_now(r, a->np ? a->pos[0] : UNDEF, line, out);
  if (!strcmp(nm, "loop.cycle")) {
    if (!a->np) return jx_rerr(r, line, "loop.cycle() needs at least one value");
    jv *i0 = jx_dict_get(f->self.d, "index0", 6);
    *out = a->pos[i0 && i0->t == V_INT ? i0->i % a->np : 0];
    return 0;
  }
  return jx_rerr(r, line, "unknown function '%s'", nm);
}

/* ---- string and dict methods ---- */
static bool in_chars(int32_t c, jv chars) { /* chars: NONE -> whitespace */
  if (chars.t != V_STR) return jx_py_space(c);
  for (size_t i = 0; i < chars.s.n;) {
    int32_t d;
    i += jx_u8_next(chars.s.p, chars.s.n, i, &d);
    if (d == c) return true;
  }
  return false;
}
static jv str_strip(jv s, jv chars, bool left, bool right) {
  size_t b = 0, e = s.s.n;
  if (left)
    while (b < e) {
      int32_t c;
      size_t l = jx_u8_next(s.s.p, e, b, &c);
      if (!in_chars(c, chars)) break;
      b += l;
    }
  if (right)
    while (e > b) {
      size_t q = e - 1;
      while (q > b && ((unsigned char)s.s.p[q] & 0xC0) == 0x80) q--;
      int32_t c;
      jx_u8_next(s.s.p, e, q, &c);
      if (!in_chars(c, chars)) break;
      e = q;
    }
  return jx_mk_str(s.s.p + b, e - b);
}
static int str_case(R *r, jv s, int mode, int line, jv *out) { /* 0 upper 1 lower 2 title 3 capitalize */
  sb b = {0};
  bool prev_alnum = false;
  size_t k = 0;
  for (size_t i = 0; i < s.s.n; k++) {
    int32_t c;
    i += jx_u8_next(s.s.p, s.s.n, i, &c);
    int32_t o;
    if (mode == 0) o = utf8proc_toupper(c);
    else if (mode == 1) o = utf8proc_tolower(c);
    else if (mode == 2) o = prev_alnum ? utf8proc_tolower(c) : utf8proc_toupper(c);
    else o = k == 0 ? utf8proc_toupper(c) : utf8proc_tolower(c);
    if (c == 0xDF && (mode == 0 || ((mode == 2 || mode == 3) && o != utf8proc_tolower(c)))) { /* full case mapping of ß */
      if (jx_sb_put(r, &b, mode == 0 ? "SS" : "Ss", 2, line)) { free(b.s); return -1; }
      prev_alnum = true;
      continue;
    }
    utf8proc_category_t cat = utf8proc_category(c);
    prev_alnum = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) || cat == UTF8PROC_CATEGORY_ND;
    utf8proc_uint8_t enc[4];
    utf8proc_ssize_t l = utf8proc_encode_char(o, enc);
    if (jx_sb_put(r, &b, (const char *)enc, (size_t)l, line)) { free(b.s); return -1; }
  }
  return jx_sb_done(r, &b, out, line);
}
static int str_split(R *r, jv s, jv sep, int64_t maxsplit, int line, jv *out) {
  size_t cap = 8, n = 0;
  jv *v = malloc(cap * sizeof *v);
  if (!v) return jx_rerr(r, line, "out of memory");
#define ADD(x)                                                                                                  \
  do {                                                                                                          \
    if (n == cap) { cap *= 2; jv *nv = realloc(v, cap * sizeof *nv); if (!nv) { free(v); return jx_rerr(r, line, "out of memory"); } v = nv; } \
    v[n++] = (x);                                                                                               \
  } while (0)
  if (sep.t == V_STR) {
    if (!sep.s.n) { free(v); return jx_rerr(r, line, "split(): empty separator"); }
    size_t i = 0;
    for (;;) {
      const char *f = (maxsplit < 0 || (int64_t)n < maxsplit) ? memmem(s.s.p + i, s.s.n - i, sep.s.p, sep.s.n) : NULL;
      if (!f) { ADD(jx_mk_str(s.s.p + i, s.s.n - i)); break; }
      ADD(jx_mk_str(s.s.p + i, (size_t)(f - s.s.p) - i));
      i = (size_t)(f - s.s.p) + sep.s.n;
    }
  } else {
    size_t i = 0;
    for (;;) {
      while (i < s.s.n) { int32_t c; size_t l = jx_u8_next(s.s.p, s.s.n, i, &c); if (!jx_py_space(c)) break; i += l; }
      if (i >= s.s.n) break;
      if (maxsplit >= 0 && (int64_t)n >= maxsplit) {
        jv rest = str_strip(jx_mk_str(s.s.p + i, s.s.n - i), NONE, false, true);
        ADD(rest);
        break;
      }
      size_t st = i;
      while (i < s.s.n) { int32_t c; size_t l = jx_u8_next(s.s.p, s.s.n, i, &c); if (jx_py_space(c)) break; i += l; }
      ADD(jx_mk_str(s.s.p + st, i - st));
    }
  }
#undef ADD
  int rc = jx_list_new(r, n, out, line);
  if (!rc && n) memcpy(out->l->v, v, n * sizeof *v);
  free(v);
  return rc;
}
static int str_replace(R *r, jv s, jv old, jv new_, int64_t count, int line, jv *out) {
  if (old.t != V_STR || new_.t != V_STR) return jx_rerr(r, line, "replace() takes strings");
  sb b = {0};
  size_t i = 0;
  int64_t done = 0;
  if (!old.s.n) { /* insert between every character */
    for (;;) {
      if (count < 0 || done < count) { if (jx_sb_put(r, &b, new_.s.p, new_.s.n, line)) goto fail; done++; }
      if (i >= s.s.n) break;
      int32_t c;
      size_t l = jx_u8_next(s.s.p, s.s.n, i, &c);
      if (jx_sb_put(r, &b, s.s.p + i, l, line)) goto fail;
      i += l;
    }
    return jx_sb_done(r, &b, out, line);
  }
  for (;;) {
    const char *f = (count < 0 || done < count) ? memmem(s.s.p + i, s.s.n - i, old.s.p, old.s.n) : NULL;
    if (!f) { if (jx_sb_put(r, &b, s.s.p + i, s.s.n - i, line)) goto fail; break; }
    if (jx_sb_put(r, &b, s.s.p + i, (size_t)(f - s.s.p) - i, line) || jx_sb_put(r, &b, new_.s.p, new_.s.n, line)) goto fail;
    i = (size_t)(f - s.s.p) + old.s.n;
    done++;
  }
  if (!b.s && jx_str_new(r, "", 0, out, line)) return -1;
  return jx_sb_done(r, &b, out, line);
fail:
  free(b.s);
  return -1;
}
static bool starts_ends(jv s, jv p, bool ends) {
  if (p.t != V_STR || p.s.n > s.s.n) return false;
  return !memcmp(s.s.p + (ends ? s.s.n - p.s.n : 0), p.s.p, p.s.n);
}

int jx_call_method(R *r, jfunc *f, const args_t *a, int line, jv *out) {
  jv s = f->self;
  const char *m = f->name;
  if (jx_charge(r, s.t == V_STR ? s.s.n >> 8 : s.t == V_LIST ? s.l->n : s.t == V_DICT || s.t == V_NS ? s.d->n : 0, line)) return -1;
  const jv *a0 = jx_arg(a, 0, NULL), *a1 = jx_arg(a, 1, NULL);
  if (s.t == V_STR) {
    if (!strcmp(m, "upper")) return str_case(r, s, 0, line, out);
    if (!strcmp(m, "lower")) return str_case(r, s, 1, line, out);
    if (!strcmp(m, "title")) return str_case(r, s, 2, line, out);
    if (!strcmp(m, "capitalize")) return str_case(r, s, 3, line, out);
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
      jv ch = a0 ? *a0 : NONE;
      if (ch.t != V_STR && ch.t != V_NONE) return jx_rerr(r, line, "%s() takes a string of characters", m);
      *out = str_strip(s, ch, m[0] != 'r', m[0] != 'l');
      return 0;
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
      if (!a0) return jx_rerr(r, line, "%s() takes a string or a tuple of strings", m);
      bool ends = m[0] == 'e', hit = false;
      if (a0->t == V_STR) hit = starts_ends(s, *a0, ends);
      else if (a0->t == V_LIST) {
        for (size_t i = 0; i < a0->l->n; i++) {
          if (a0->l->v[i].t != V_STR) return jx_rerr(r, line, "%s(): tuple items must be strings", m);
          hit |= starts_ends(s, a0->l->v[i], ends);
        }
      } else return jx_rerr(r, line, "%s() takes a string or a tuple of strings, not %s", m, jx_vt_name[a0->t]);
      *out = jx_mk_bool(hit);
      return 0;
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
      const jv *sep = jx_arg(a, 0, "sep"), *mx = jx_arg(a, 1, "maxsplit");
      if (sep && sep->t != V_STR && sep->t != V_NONE) return jx_rerr(r, line, "split(): sep must be a string or None");
      if (mx && mx->t != V_INT) return jx_rerr(r, line, "split(): maxsplit must be an integer");
      if (m[0] == 'r' && mx && mx->i >= 0) return jx_rerr(r, line, "rsplit() with maxsplit is not supported");
      return str_split(r, s, sep ? *sep : NONE, mx ? mx->i : -1, line, out);
    }
    if (!strcmp(m, "replace")) {
      const jv *c = jx_arg(a, 2, "count");
      if (!a0 || !a1) return jx_rerr(r, line, "replace() takes two strings");
      if (c && c->t != V_INT && c->t != V_NONE) return jx_rerr(r, line, "replace(): count must be an integer");
      return str_replace(r, s, *a0, *a1, c && c->t == V_INT ? c->i : -1, line, out);
    }
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "count")) {
      if (!a0 || a0->t != V_STR) return jx_rerr(r, line, "%s() takes a string", m);
      if (!strcmp(m, "count")) {
        int64_t k = 0;
        if (!a0->s.n) { *out = jx_mk_int((int64_t)jx_u8_len(s.s.p, s.s.n) + 1); return 0; }
        for (const char *p = s.s.p, *e = s.s.p + s.s.n; (p = memmem(p, (size_t)(e - p), a0->s.p, a0->s.n)); p += a0->s.n) k++;
        *out = jx_mk_int(k);
        return 0;
      }
      const char *hit = NULL;
      if (m[0] == 'f') hit = memmem(s.s.p, s.s.n, a0->s.p, a0->s.n);
      else
        for (size_t i = s.s.n + 1; i-- > 0;)
          if (i + a0->s.n <= s.s.n && !memcmp(s.s.p + i, a0->s.p, a0->s.n)) { hit = s.s.p + i; break; }
      *out = jx_mk_int(hit ? (int64_t)jx_u8_len(s.s.p, (size_t)(hit - s.s.p)) : -1);
      return 0;
    }
    if (!strcmp(m, "join")) {
      if (!a0) return jx_rerr(r, line, "join() takes an iterable");
      jv items;
      if (jx_iter_items(r, *a0, &items, line)) return -1;
      sb b = {0};
      for (size_t i = 0; i < items.l->n; i++)
        if ((i && jx_sb_put(r, &b, s.s.p, s.s.n, line)) || jx_put_str(r, &b, items.l->v[i], line, 0)) { free(b.s); return -1; }
      return jx_sb_done(r, &b, out, line);
    }
    if (!strcmp(m, "isdigit") || !strcmp(m, "isalpha") || !strcmp(m, "isspace") || !strcmp(m, "isupper") || !strcmp(m, "islower")) {
      bool ok = s.s.n > 0, cased = false;
      for (size_t i = 0; i < s.s.n;) {
        int32_t c;
        i += jx_u8_next(s.s.p, s.s.n, i, &c);
        utf8proc_category_t cat = utf8proc_category(c);
        if (m[2] == 'd') ok &= cat == UTF8PROC_CATEGORY_ND;
        else if (m[2] == 'a') ok &= cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        else if (m[2] == 's') ok &= jx_py_space(c);
        else if (m[2] == 'u') { ok &= cat != UTF8PROC_CATEGORY_LL; cased |= cat == UTF8PROC_CATEGORY_LU; }
        else { ok &= cat != UTF8PROC_CATEGORY_LU; cased |= cat == UTF8PROC_CATEGORY_LL; }
      }
      if (m[2] == 'u' || m[2] == 'l') ok &= cased;
      *out = jx_mk_bool(ok);
      return 0;
    }
  } else if (s.t == V_DICT || s.t == V_NS) {
    if (!strcmp(m, "get")) {
      if (!a0 || a0->t != V_STR) return jx_rerr(r, line, "get() takes a string key");
      jv *v = jx_dict_get(s.d, a0->s.p, a0->s.n);
      *out = v ? *v : a1 ? *a1 : NONE;
      return 0;
    }
    if (!strcmp(m, "items") || !strcmp(m, "keys") || !strcmp(m, "values")) {
      if (jx_list_new(r, s.d->n, out, line)) return -1;
      for (size_t i = 0; i < s.d->n; i++) {
        if (m[0] == 'k') out->l->v[i] = jx_mk_str(s.d->kp[i], s.d->kn[i]);
        else if (m[0] == 'v') out->l->v[i] = s.d->v[i];
        else {
          jv pair;
          if (jx_list_new(r, 2, &pair, line)) return -1;
          pair.tup = 1;
          pair.l->v[0] = jx_mk_str(s.d->kp[i], s.d->kn[i]);
          pair.l->v[1] = s.d->v[i];
          out->l->v[i] = pair;
        }
      }
      return 0;
    }
  } else if (s.t == V_LIST) {
    if (!strcmp(m, "index") || !strcmp(m, "count")) {
      if (!a0) return jx_rerr(r, line, "%s() takes a value", m);
      int64_t k = 0;
      for (size_t i = 0; i < s.l->n; i++)
        if (jx_py_eq(s.l->v[i], *a0)) {
          if (m[0] == 'i') { *out = jx_mk_int((int64_t)i); return 0; }
          k++;
        }
      if (m[0] == 'i') return jx_rerr(r, line, "index(): value is not in the list");
      *out = jx_mk_int(k);
      return 0;
    }
  }
  return jx_rerr(r, line, "%s has no method '%s'", jx_vt_name[s.t], m);
}

const char *jx_method_name(jv self, const char *name, size_t n) {
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

/* ---- tests ---- */
int jx_apply_test(R *r, jv v, const char *t, const args_t *a, int line, bool *res) {
  const jv *x = jx_arg(a, 0, NULL);
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
    if (v.t != V_INT) return jx_rerr(r, line, "'%s' test needs an integer, not %s", t, jx_vt_name[v.t]);
    *res = (v.i % 2 != 0) == (t[0] == 'o');
  } else if (!strcmp(t, "divisibleby")) {
    if (v.t != V_INT || !x || x->t != V_INT || !x->i) return jx_rerr(r, line, "divisibleby needs integers");
    *res = v.i % x->i == 0;
  } else if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
    jv c;
    if (v.t != V_STR) { *res = false; return 0; }
    if (str_case(r, v, t[0] == 'l' ? 1 : 0, line, &c)) return -1;
    *res = jx_py_eq(c, v);
  } else if (!strcmp(t, "eq") || !strcmp(t, "equalto") || !strcmp(t, "==") || !strcmp(t, "sameas")) *res = x && jx_py_eq(v, *x);
  else if (!strcmp(t, "ne") || !strcmp(t, "!=")) *res = !x || !jx_py_eq(v, *x);
  else if (!strcmp(t, "in")) {
    jv o;
    if (!x || jx_binop(r, OP_IN, v, *x, line, &o)) return x ? -1 : jx_rerr(r, line, "'in' test needs a container");
    *res = o.b;
  } else if (!strcmp(t, "lt") || !strcmp(t, "gt") || !strcmp(t, "le") || !strcmp(t, "ge")) {
    jv o;
    int op = t[0] == 'l' ? (t[1] == 't' ? '<' : OP_LE) : (t[1] == 't' ? '>' : OP_GE);
    if (!x) return jx_rerr(r, line, "'%s' test needs a value", t);
    if (jx_binop(r, op, v, *x, line, &o)) return -1;
    *res = o.b;
  } else return jx_rerr(r, line, "unknown test '%s'", t);
  return 0;
}

/* ---- filters ---- */
static int attr_path(R *r, jv item, jv attr, int line, jv *out) {
  if (attr.t == V_INT) return jx_get_member(r, item, attr, line, out);
  if (attr.t != V_STR) return jx_rerr(r, line, "attribute must be a string");
  jv cur = item;
  if (jx_str_new(r, attr.s.p, attr.s.n, &attr, line)) return -1; /* NUL-terminated for strtoll */
  const char *p = attr.s.p, *end = attr.s.p + attr.s.n;
  while (p <= end) {
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t l = dot ? (size_t)(dot - p) : (size_t)(end - p);
    jv key;
    char *endp;
    long long iv = strtoll(p, &endp, 10);
    if (l && endp == p + l && cur.t == V_LIST) key = jx_mk_int(iv);
    else if (jx_str_new(r, p, l, &key, line)) return -1;
    if (jx_get_member(r, cur, key, line, &cur)) return -1;
    if (!dot) break;
    p = dot + 1;
  }
  *out = cur;
  return 0;
}
static int sort_list(R *r, jv v, bool reverse, bool cs, const jv *attr, int line, jv *out) {
  if (jx_list_new(r, v.l->n, out, line)) return -1;
  jv *keys = jx_ralloc(r, (v.l->n + 1) * sizeof *keys, line);
  if (!keys) return -1;
  for (size_t i = 0; i < v.l->n; i++) {
    out->l->v[i] = v.l->v[i];
    keys[i] = v.l->v[i];
    if (attr && attr->t != V_NONE && attr_path(r, v.l->v[i], *attr, line, &keys[i])) return -1;
  }
  /* stable bottom-up merge sort of (key, item) pairs; each comparison is a step */
  size_t n = v.l->n;
  jv *tk = jx_ralloc(r, (n + 1) * sizeof *tk, line), *tv = jx_ralloc(r, (n + 1) * sizeof *tv, line);
  if (!tk || !tv) return -1;
  jv *sk = keys, *sv = out->l->v, *dk = tk, *dv = tv;
  for (size_t w = 1; w < n; w *= 2) {
    if (jx_charge(r, n, line)) return -1;
    for (size_t lo = 0; lo < n; lo += 2 * w) {
      size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
      while (i < mid && j < hi) {
        bool bad;
        int c = jx_py_cmp(sk[j], sk[i], &bad, !cs);
        if (bad) return jx_rerr(r, line, "sort: cannot compare %s with %s", jx_vt_name[sk[j].t], jx_vt_name[sk[i].t]);
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
static bool bool_arg(const jv *v, bool def) { return v ? jx_truthy(*v) : def; }

/* the filters on strings and any value (safe, tojson, default, string, length, case, trim, replace, indent, wordcount); 1: not one of them */
static int filter_text(R *r, jv v, const char *f, const args_t *a, env *e, int line, jv *out) {
  (void)e;
  const jv *a0 = jx_arg(a, 0, NULL);
  if (!strcmp(f, "safe")) { *out = v; return 0; }
  if (!strcmp(f, "tojson")) {
    const jv *ind = jx_arg(a, 0, "indent"), *asc = jx_arg(a, -1, "ensure_ascii"), *srt = jx_arg(a, -1, "sort_keys"),
             *sep = jx_arg(a, -1, "separators");
    jopts o = {.indent = -1, .isep = ", ", .ksep = ": "};
    if (ind && ind->t != V_NONE) {
      if (ind->t != V_INT) return jx_rerr(r, line, "tojson: indent must be an integer");
      o.indent = (int)(ind->i < 0 ? 0 : ind->i > 64 ? 64 : ind->i);
      o.isep = ",";
    }
    o.ascii = bool_arg(asc, false);
    o.sort = bool_arg(srt, false);
    if (sep && sep->t != V_NONE) {
      if (sep->t != V_LIST || sep->l->n != 2 || sep->l->v[0].t != V_STR || sep->l->v[1].t != V_STR)
        return jx_rerr(r, line, "tojson: separators must be a pair of strings");
      jv s0, s1;
      if (jx_str_new(r, sep->l->v[0].s.p, sep->l->v[0].s.n, &s0, line) || jx_str_new(r, sep->l->v[1].s.p, sep->l->v[1].s.n, &s1, line)) return -1;
      o.isep = s0.s.p;
      o.ksep = s1.s.p;
    }
    sb b = {0};
    if (jx_put_json(r, &b, v, &o, 0, line)) { free(b.s); return -1; }
    return jx_sb_done(r, &b, out, line);
  }
  if (!strcmp(f, "default") || !strcmp(f, "d")) {
    const jv *bo = jx_arg(a, 1, "boolean");
    if (v.t == V_UNDEF || (bool_arg(bo, false) && !jx_truthy(v))) *out = a0 ? *a0 : jx_mk_str("", 0);
    else *out = v;
    return 0;
  }
  if (!strcmp(f, "string")) return jx_to_str(r, v, out, line);
  if (!strcmp(f, "length") || !strcmp(f, "count")) {
    if (v.t == V_STR) *out = jx_mk_int((int64_t)jx_u8_len(v.s.p, v.s.n));
    else if (v.t == V_LIST) *out = jx_mk_int((int64_t)v.l->n);
    else if (v.t == V_DICT || v.t == V_NS) *out = jx_mk_int((int64_t)v.d->n);
    else if (v.t == V_UNDEF) *out = jx_mk_int(0);
    else return jx_rerr(r, line, "object of type '%s' has no length", jx_vt_name[v.t]);
    return 0;
  }
  if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "title") || !strcmp(f, "capitalize")) {
    jv s;
    if (jx_to_str(r, v, &s, line)) return -1;
    return str_case(r, s, f[0] == 'u' ? 0 : f[0] == 'l' ? 1 : f[0] == 't' ? 2 : 3, line, out);
  }
  if (!strcmp(f, "trim")) {
    jv s;
    if (jx_to_str(r, v, &s, line)) return -1;
    *out = str_strip(s, a0 ? *a0 : NONE, true, true);
    return 0;
  }
  if (!strcmp(f, "replace")) {
    jv s;
    const jv *a1 = jx_arg(a, 1, NULL), *c = jx_arg(a, 2, "count");
    if (jx_to_str(r, v, &s, line)) return -1;
    if (!a0 || !a1) return jx_rerr(r, line, "replace filter takes two strings");
    return str_replace(r, s, *a0, *a1, c && c->t == V_INT ? c->i : -1, line, out);
  }
  if (!strcmp(f, "indent")) {
    const jv *w = jx_arg(a, 0, "width"), *first = jx_arg(a, 1, "first"), *blank = jx_arg(a, 2, "blank");
    jv s;
    if (jx_to_str(r, v, &s, line)) return -1;
    char pad[256];
    size_t pl;
    if (w && w->t == V_STR) { pl = w->s.n < sizeof pad ? w->s.n : sizeof pad - 1; memcpy(pad, w->s.p, pl); }
    else {
      int64_t wd = w ? (w->t == V_INT ? w->i : -1) : 4;
      if (wd < 0 || wd > 255) return jx_rerr(r, line, "indent: width must be an integer 0..255");
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
      if ((do_pad && jx_sb_put(r, &b, pad, pl, line)) || jx_sb_put(r, &b, s.s.p + i, l, line)) { free(b.s); return -1; }
      if (!nl) break;
      if (jx_sb_put(r, &b, "\n", 1, line)) { free(b.s); return -1; }
      i += l + 1;
      firstl = false;
    }
    return jx_sb_done(r, &b, out, line);
  }
  if (!strcmp(f, "wordcount")) {
    jv s, parts;
    if (jx_to_str(r, v, &s, line) || str_split(r, s, NONE, -1, line, &parts)) return -1;
    *out = jx_mk_int((int64_t)parts.l->n);
    return 0;
  }
  return 1;
}

/* the numeric filters (int, float, abs, round, bool); 1: not one of them */
static int filter_number(R *r, jv v, const char *f, const args_t *a, env *e, int line, jv *out) {
  (void)e;
  if (!strcmp(f, "int")) {
    const jv *dflt = jx_arg(a, 0, "default");
    if (v.t == V_INT) *out = v;
    else if (v.t == V_BOOL) *out = jx_mk_int(v.b);
    else if (v.t == V_FLOAT) *out = jx_mk_int((int64_t)v.f);
    else if (v.t == V_STR) {
      char buf[64];
      jv t = str_strip(v, NONE, true, true);
      size_t l = t.s.n < 63 ? t.s.n : 63;
      memcpy(buf, t.s.p, l);
      buf[l] = 0;
      char *end;
      long long iv = strtoll(buf, &end, 10);
      if (l && !*end) *out = jx_mk_int(iv);
      else {
        double dv = strtod(buf, &end);
        *out = l && !*end ? jx_mk_int((int64_t)dv) : dflt ? *dflt : jx_mk_int(0);
      }
    } else *out = dflt ? *dflt : jx_mk_int(0);
    return 0;
  }
  if (!strcmp(f, "float")) {
    const jv *dflt = jx_arg(a, 0, "default");
    if (jx_is_num(v)) *out = jx_mk_float(jx_num(v));
    else if (v.t == V_STR) {
      char buf[64];
      jv t = str_strip(v, NONE, true, true);
      size_t l = t.s.n < 63 ? t.s.n : 63;
      memcpy(buf, t.s.p, l);
      buf[l] = 0;
      char *end;
      double dv = strtod(buf, &end);
      *out = l && !*end ? jx_mk_float(dv) : dflt ? *dflt : jx_mk_float(0);
    } else *out = dflt ? *dflt : jx_mk_float(0);
    return 0;
  }
  if (!strcmp(f, "abs")) {
    if (v.t == V_INT && v.i == INT64_MIN) return jx_rerr(r, line, "integer overflow");
    if (v.t == V_INT) *out = jx_mk_int(v.i < 0 ? -v.i : v.i);
    else if (v.t == V_FLOAT) *out = jx_mk_float(fabs(v.f));
    else return jx_rerr(r, line, "abs: not a number");
    return 0;
  }
  if (!strcmp(f, "round")) {
    const jv *pr = jx_arg(a, 0, "precision");
    if (!jx_is_num(v)) return jx_rerr(r, line, "round: not a number");
    double p = pow(10, pr && pr->t == V_INT ? (double)pr->i : 0);
    *out = jx_mk_float(nearbyint(jx_num(v) * p) / p);
    return 0;
  }
  if (!strcmp(f, "bool")) { *out = jx_mk_bool(jx_truthy(v)); return 0; }
  return 1;
}

/* the filters on sequences and mappings (items, dictsort, join, first/last, list, reverse, sort, unique, min/max/sum, map, select/reject(attr), batch); 1: not one of them */
/* select / reject (a test on each item) and selectattr / rejectattr (a test on an attribute) */
static int filter_select(R *r, jv v, const char *f, const args_t *a, int line, jv *out) {
  const jv *a0 = jx_arg(a, 0, NULL);
  jv items;
  bool by_attr = strstr(f, "attr") != NULL, sel = f[0] == 's';
  if (jx_iter_items(r, v, &items, line) || jx_list_new(r, items.l->n, out, line)) return -1;
  int ti = by_attr ? 1 : 0;
  if (by_attr && !a0) return jx_rerr(r, line, "%s needs an attribute name", f);
  const jv *test = jx_arg(a, ti, NULL);
  jv tname;
  if (test && test->t != V_STR) return jx_rerr(r, line, "%s: the test name must be a string", f);
  if (test && jx_str_new(r, test->s.p, test->s.n, &tname, line)) return -1;
  args_t targs = *a;
  targs.pos += ti + 1;
  targs.np = a->np > ti + 1 ? a->np - ti - 1 : 0;
  size_t k = 0;
  for (size_t i = 0; i < items.l->n; i++) {
    jv it = items.l->v[i];
    if (by_attr && attr_path(r, it, *a0, line, &it)) return -1;
    bool res;
    if (test) { if (jx_apply_test(r, it, tname.s.p, &targs, line, &res)) return -1; }
    else res = jx_truthy(it);
    if (res == sel) out->l->v[k++] = items.l->v[i];
  }
  out->l->n = k;
  return 0;
}

static int filter_seq(R *r, jv v, const char *f, const args_t *a, env *e, int line, jv *out) {
  const jv *a0 = jx_arg(a, 0, NULL);
  if (!strcmp(f, "items")) {
    if (v.t == V_UNDEF) return jx_list_new(r, 0, out, line);
    if (v.t != V_DICT && v.t != V_NS) return jx_rerr(r, line, "items filter needs a mapping, not %s", jx_vt_name[v.t]);
    jfunc fn = {.kind = F_METHOD, .name = "items", .self = v};
    args_t none = {0};
    return jx_call_method(r, &fn, &none, line, out);
  }
  if (!strcmp(f, "dictsort")) {
    if (v.t != V_DICT) return jx_rerr(r, line, "dictsort needs a mapping");
    jfunc fn = {.kind = F_METHOD, .name = "items", .self = v};
    args_t none = {0};
    jv items, by_attr = jx_mk_int(0);
    const jv *cs = jx_arg(a, 0, "case_sensitive"), *by = jx_arg(a, 1, "by"), *rev = jx_arg(a, 2, "reverse");
    if (by && jx_sveq(*by, "value")) by_attr = jx_mk_int(1);
    if (jx_call_method(r, &fn, &none, line, &items)) return -1;
    return sort_list(r, items, bool_arg(rev, false), bool_arg(cs, false), &by_attr, line, out);
  }
  /* the rest work on iterables */
  jv items;
  if (!strcmp(f, "join")) {
    const jv *sep = jx_arg(a, 0, "d");
    const jv *attr = jx_arg(a, 1, "attribute");
    if (jx_iter_items(r, v, &items, line)) return -1;
    sb b = {0};
    for (size_t i = 0; i < items.l->n; i++) {
      jv it = items.l->v[i];
      if (attr && attr_path(r, it, *attr, line, &it)) { free(b.s); return -1; }
      if ((i && sep && jx_put_str(r, &b, *sep, line, 0)) || jx_put_str(r, &b, it, line, 0)) { free(b.s); return -1; }
    }
    if (!b.s) return jx_str_new(r, "", 0, out, line);
    return jx_sb_done(r, &b, out, line);
  }
  if (!strcmp(f, "first") || !strcmp(f, "last")) {
    if (jx_iter_items(r, v, &items, line)) return -1;
    *out = items.l->n ? items.l->v[f[0] == 'f' ? 0 : items.l->n - 1] : UNDEF;
    return 0;
  }
  if (!strcmp(f, "list")) { if (jx_iter_items(r, v, &items, line)) return -1; *out = items; return 0; }
  if (!strcmp(f, "reverse")) {
    if (v.t == V_STR) {
      sb b = {0};
      for (size_t e2 = v.s.n; e2 > 0;) {
        size_t q = e2 - 1;
        while (q > 0 && ((unsigned char)v.s.p[q] & 0xC0) == 0x80) q--;
        if (jx_sb_put(r, &b, v.s.p + q, e2 - q, line)) { free(b.s); return -1; }
        e2 = q;
      }
      if (!b.s) return jx_str_new(r, "", 0, out, line);
      return jx_sb_done(r, &b, out, line);
    }
    if (jx_iter_items(r, v, &items, line) || jx_list_new(r, items.l->n, out, line)) return -1;
    for (size_t i = 0; i < items.l->n; i++) out->l->v[i] = items.l->v[items.l->n - 1 - i];
    return 0;
  }
  if (!strcmp(f, "sort")) {
    if (jx_iter_items(r, v, &items, line)) return -1;
    return sort_list(r, items, bool_arg(jx_arg(a, 0, "reverse"), false), bool_arg(jx_arg(a, 1, "case_sensitive"), false),
                     jx_arg(a, 2, "attribute"), line, out);
  }
  if (!strcmp(f, "unique")) {
    if (jx_iter_items(r, v, &items, line) || jx_list_new(r, items.l->n, out, line)) return -1;
    size_t k = 0;
    for (size_t i = 0; i < items.l->n; i++) {
      bool seen = false;
      if (jx_charge(r, k, line)) return -1;
      for (size_t j = 0; j < k && !seen; j++) seen = jx_py_eq(out->l->v[j], items.l->v[i]);
      if (!seen) out->l->v[k++] = items.l->v[i];
    }
    out->l->n = k;
    return 0;
  }
  if (!strcmp(f, "min") || !strcmp(f, "max") || !strcmp(f, "sum")) {
    if (jx_iter_items(r, v, &items, line)) return -1;
    if (f[1] == 'u') {
      jv acc = jx_mk_int(0);
      const jv *attr = jx_arg(a, 0, "attribute");
      for (size_t i = 0; i < items.l->n; i++) {
        jv it = items.l->v[i];
        if (attr && attr_path(r, it, *attr, line, &it)) return -1;
        if (jx_binop(r, '+', acc, it, line, &acc)) return -1;
      }
      *out = acc;
      return 0;
    }
    *out = UNDEF;
    for (size_t i = 0; i < items.l->n; i++) {
      bool bad;
      if (i == 0) { *out = items.l->v[0]; continue; }
      int c = jx_py_cmp(items.l->v[i], *out, &bad, true);
      if (bad) return jx_rerr(r, line, "%s: cannot compare these values", f);
      if (f[1] == 'i' ? c < 0 : c > 0) *out = items.l->v[i];
    }
    return 0;
  }
  if (!strcmp(f, "map")) {
    if (jx_iter_items(r, v, &items, line) || jx_list_new(r, items.l->n, out, line)) return -1;
    const jv *attr = jx_arg(a, -1, "attribute"), *dflt = jx_arg(a, -1, "default");
    if (attr) {
      for (size_t i = 0; i < items.l->n; i++) {
        if (attr_path(r, items.l->v[i], *attr, line, &out->l->v[i])) return -1;
        if (out->l->v[i].t == V_UNDEF && dflt) out->l->v[i] = *dflt;
      }
      return 0;
    }
    if (!a0 || a0->t != V_STR) return jx_rerr(r, line, "map needs attribute='...' or a filter name");
    jv fname;
    if (jx_str_new(r, a0->s.p, a0->s.n, &fname, line)) return -1;
    args_t rest = *a;
    rest.pos++;
    rest.np--;
    for (size_t i = 0; i < items.l->n; i++)
      if (jx_apply_filter(r, items.l->v[i], fname.s.p, &rest, e, line, &out->l->v[i])) return -1;
    return 0;
  }
  if (!strcmp(f, "select") || !strcmp(f, "reject") || !strcmp(f, "selectattr") || !strcmp(f, "rejectattr"))
    return filter_select(r, v, f, a, line, out);
  if (!strcmp(f, "batch")) {
    if (!a0 || a0->t != V_INT || a0->i <= 0) return jx_rerr(r, line, "batch needs a positive size");
    if (jx_iter_items(r, v, &items, line)) return -1;
    size_t bs = (size_t)a0->i, nb = (items.l->n + bs - 1) / bs;
    if (jx_list_new(r, nb, out, line)) return -1;
    for (size_t i = 0; i < nb; i++) {
      size_t l = items.l->n - i * bs < bs ? items.l->n - i * bs : bs;
      if (jx_list_new(r, l, &out->l->v[i], line)) return -1;
      memcpy(out->l->v[i].l->v, items.l->v + i * bs, l * sizeof(jv));
    }
    return 0;
  }
  return 1;
}

int jx_apply_filter(R *r, jv v, const char *f, const args_t *a, env *e, int line, jv *out) {
  int rc = filter_text(r, v, f, a, e, line, out);
  if (rc == 1) rc = filter_number(r, v, f, a, e, line, out);
  if (rc == 1) rc = filter_seq(r, v, f, a, e, line, out);
  return rc == 1 ? jx_rerr(r, line, "unknown filter '%s'", f) : rc;
}
