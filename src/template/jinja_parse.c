/* jinja_parse.c - the lexer and parser of the Jinja interpreter: template text -> AST.
 * The tokenizer follows the whitespace rules transformers sets (trim_blocks, lstrip_blocks,
 * one trailing newline dropped) and the expression grammar of @huggingface/jinja (the
 * reference the tests compare with); every token and node keeps its template line for errors.
 * Not for: evaluation (jinja_eval.c). */
#include "template/jinja_int.h"
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */
void *jn_arena_alloc(jn_arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (a->limit && a->total + n > a->limit) return NULL;
  if (!a->head || a->head->used + n > a->head->cap) {
    size_t cap = n > 65536 ? n : 65536;
    jn_block *b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->next = a->head;
    b->cap = cap;
    b->used = 0;
    a->head = b;
  }
  void *p = a->head->data + a->head->used;
  a->head->used += n;
  a->total += n;
  memset(p, 0, n);
  return p;
}
void jn_arena_free(jn_arena *a) {
  for (jn_block *b = a->head, *nx; b; b = nx) {
    nx = b->next;
    free(b);
  }
  a->head = NULL;
  a->total = 0;
}

/* ---- lexer ---- */
enum {
  T_TEXT, T_NUM, T_STR, T_IDENT, T_EQ, T_LP, T_RP, T_OST, T_CST, T_OEX, T_CEX, T_LB, T_RB, T_LC, T_RC,
  T_COMMA, T_DOT, T_COLON, T_PIPE, T_ADD, T_MUL, T_POW, T_CMP, T_UNARY, T_COMMENT
};
static const char *tok_names[] = {"text", "number", "string", "name", "'='", "'('", "')'", "'{%'", "'%}'", "'{{'",
                                  "'}}'", "'['", "']'", "'{'", "'}'", "','", "'.'", "':'", "'|'", "operator",
                                  "operator", "'**'", "comparison", "unary operator", "comment"};
typedef struct { int t; char *v; size_t n; int line; } tok;

typedef struct {
  jn_arena *a;
  const char *name;
  char *err;
  int err_line;
  /* lexer */
  char *src; int *lines; size_t n, pos;
  tok *toks; size_t nt, ct;
  /* parser */
  size_t cur;
  int depth;
} P;

static int perr(P *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(P *p, int line, const char *fmt, ...) {
  if (p->err) return -1;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  p->err = strdup(buf);
  p->err_line = line;
  return -1;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
static bool is_dig(char c) { return c >= '0' && c <= '9'; }

/* true when the '}' at s[i] closes a {% raw %} tag (jinja2 keeps the newline after it) */
static bool closes_raw(const char *s, size_t i) {
  size_t j = i;
  while (j >= 2 && !(s[j - 2] == '{' && s[j - 1] == '%')) {
    if (i - j > 64) return false;
    j--;
  }
  if (j < 2) return false;
  const char *b = s + j, *e = s + i - 1; /* between "{%" and "%}" */
  while (b < e && (*b == '-' || *b == '+' || is_ws(*b))) b++;
  while (e > b && (e[-1] == '-' || is_ws(e[-1]))) e--;
  return e - b == 3 && !memcmp(b, "raw", 3);
}

/* Newlines to \n (jinja2's newline_sequence); drop one trailing newline; lstrip_blocks (not
 * before {%+); trim_blocks. Keeps each byte's source line. */
static int preprocess(P *p, const char *text0) {
  size_t n0 = strlen(text0), n = 0;
  char *text = malloc(n0 + 1);
  if (!text) return perr(p, 0, "out of memory");
  for (size_t i = 0; i < n0; i++) {
    if (text0[i] == '\r') { text[n++] = '\n'; if (i + 1 < n0 && text0[i + 1] == '\n') i++; }
    else text[n++] = text0[i];
  }
  text[n] = 0;
  if (n && text[n - 1] == '\n') n--;
  char *s = malloc(n + 1), *s2 = malloc(n + 1);
  int *ln = malloc((n + 1) * sizeof *ln), *ln2 = malloc((n + 1) * sizeof *ln2);
  if (!s || !s2 || !ln || !ln2) {
    free(s); free(s2); free(ln); free(ln2); free(text);
    return perr(p, 0, "out of memory");
  }
  int line = 1;
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    bool bol = i == 0 || text[i - 1] == '\n' || text[i - 1] == '\r';
    if (bol) { /* ^[ \t]*({[#%-]) */
      size_t j = i;
      while (j < n && (text[j] == ' ' || text[j] == '\t')) j++;
      if (j > i && j + 1 < n && text[j] == '{' && (text[j + 1] == '#' || text[j + 1] == '%' || text[j + 1] == '-') &&
          !(text[j + 1] == '%' && j + 2 < n && text[j + 2] == '+'))
        i = j;
    }
    s[k] = text[i];
    ln[k++] = line;
    if (text[i] == '\n') line++;
    i++;
  }
  size_t m = 0;
  for (size_t i = 0; i < k; i++) { /* ([#%-]})\n -> $1 */
    s2[m] = s[i];
    ln2[m++] = ln[i];
    if (s[i] == '}' && i > 0 && (s[i - 1] == '#' || s[i - 1] == '%' || s[i - 1] == '-') && i + 1 < k && s[i + 1] == '\n' &&
        !closes_raw(s, i))
      i++;
  }
  s2[m] = 0;
  ln2[m] = m ? ln2[m - 1] : 1;
  free(s);
  free(ln);
  free(text);
  p->src = s2;
  p->lines = ln2;
  p->n = m;
  return 0;
}

static int push(P *p, int t, const char *v, size_t n, int line) {
  if (p->nt == p->ct) {
    size_t nc = p->ct ? 2 * p->ct : 256;
    tok *nt = realloc(p->toks, nc * sizeof *nt);
    if (!nt) return perr(p, line, "out of memory");
    p->toks = nt;
    p->ct = nc;
  }
  char *c = jn_arena_alloc(p->a, n + 1);
  if (!c) return perr(p, line, "out of memory");
  memcpy(c, v, n);
  c[n] = 0;
  p->toks[p->nt++] = (tok){t, c, n, line};
  return 0;
}
static int last_type(P *p) { return p->nt ? p->toks[p->nt - 1].t : -1; }
static void strip_trailing(P *p) {
  if (p->nt && p->toks[p->nt - 1].t == T_TEXT) {
    tok *t = &p->toks[p->nt - 1];
    while (t->n && is_ws(t->v[t->n - 1])) t->n--;
    t->v[t->n] = 0;
    if (!t->n) p->nt--;
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
static size_t put_utf8(char *o, uint32_t cp) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
  o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
  return 4;
}

/* a quoted string literal starting after the quote; escapes as @huggingface/jinja reads them */
static int lex_string(P *p, char q, int line) {
  size_t cap = 64, k = 0;
  char *b = malloc(cap);
  if (!b) return perr(p, line, "out of memory");
  for (;;) {
    if (p->pos >= p->n) { free(b); return perr(p, line, "unterminated string literal"); }
    char c = p->src[p->pos];
    if (c == q) break;
    if (k + 8 > cap) {
      cap *= 2;
      char *nb = realloc(b, cap);
      if (!nb) { free(b); return perr(p, line, "out of memory"); }
      b = nb;
    }
    if (c == '\\') {
      if (++p->pos >= p->n) { free(b); return perr(p, line, "unterminated string literal"); }
      char e = p->src[p->pos++];
      if (e == 'x' || e == 'u') {
        int len = e == 'x' ? 2 : 4;
        uint32_t cp = 0;
        for (int i = 0; i < len; i++) {
          int h = p->pos + i < p->n ? hexval(p->src[p->pos + i]) : -1;
          if (h < 0) { free(b); return perr(p, line, "invalid \\%c escape in a string literal", e); }
          cp = cp * 16 + (uint32_t)h;
        }
        p->pos += len;
        k += put_utf8(b + k, cp);
        continue;
      }
      const char *from = "ntrbfv'\"\\", *to = "\n\t\r\b\f\v'\"\\";
      const char *f = strchr(from, e);
      if (!e || !f) { free(b); return perr(p, line, "unexpected escape '\\%c' in a string literal", e ? e : '0'); }
      b[k++] = to[f - from];
      continue;
    }
    b[k++] = c;
    p->pos++;
  }
  p->pos++; /* closing quote */
  int r = push(p, T_STR, b, k, line);
  free(b);
  return r;
}

/* after the integer digits at p->pos: an optional fraction (.digits) and exponent (e[+-]digits),
 * as Python jinja2 reads numbers; none after a '.' (x.0 is an attribute) */
static void number_tail(P *p, bool after_dot) {
  const char *s = p->src;
  size_t n = p->n;
  if (after_dot) return;
  if (p->pos + 1 < n && s[p->pos] == '.' && is_dig(s[p->pos + 1])) {
    p->pos++;
    while (p->pos < n && is_dig(s[p->pos])) p->pos++;
  }
  size_t q = p->pos;
  if (q < n && (s[q] == 'e' || s[q] == 'E')) {
    q++;
    if (q < n && (s[q] == '+' || s[q] == '-')) q++;
    if (q < n && is_dig(s[q])) {
      while (q < n && is_dig(s[q])) q++;
      p->pos = q;
    }
  }
}

/* At "{%": a {% raw %}...{% endraw %} block is read as text (1), anything else is left (0); -1 on error */
static int lex_raw(P *p, int line) {
  const char *s = p->src;
  size_t n = p->n;
  if (!(p->pos + 1 < n && s[p->pos] == '{' && s[p->pos + 1] == '%')) return 0;
  size_t q = p->pos + 2;
  bool sb = q < n && s[q] == '-';
  if (q < n && (s[q] == '-' || s[q] == '+')) q++;
  while (q < n && is_ws(s[q])) q++;
  if (q + 3 <= n && !memcmp(s + q, "raw", 3) && (q + 3 == n || !is_word(s[q + 3]))) {
    q += 3;
    while (q < n && is_ws(s[q])) q++;
    bool sa = q < n && s[q] == '-';
    if (sa) q++;
    if (q + 1 >= n || s[q] != '%' || s[q + 1] != '}') return perr(p, line, "expected '%%}' after 'raw'");
    q += 2;
    if (sa) while (q < n && is_ws(s[q])) q++;
    size_t body = q, end = 0, after = 0;
    bool eb = false;
    for (size_t k = q; k + 1 < n && !after; k++) {
      if (s[k] != '{' || s[k + 1] != '%') continue;
      size_t r = k + 2;
      bool m = r < n && s[r] == '-';
      if (r < n && (s[r] == '-' || s[r] == '+')) r++;
      while (r < n && is_ws(s[r])) r++;
      if (r + 6 <= n && !memcmp(s + r, "endraw", 6)) {
        r += 6;
        while (r < n && is_ws(s[r])) r++;
        bool ma = r < n && s[r] == '-';
        if (ma) r++;
        if (r + 1 < n && s[r] == '%' && s[r + 1] == '}') {
          end = k;
          eb = m;
          after = r + 2;
          if (ma) while (after < n && is_ws(s[after])) after++;
        }
      }
    }
    if (!after) return perr(p, line, "'raw' not closed: expected {%% endraw %%} before the end of the template");
    if (sb) strip_trailing(p);
    size_t e = end;
    if (eb) while (e > body && is_ws(s[e - 1])) e--;
    if (e > body && push(p, T_TEXT, s + body, e - body, line)) return -1;
    if (push(p, T_COMMENT, "", 0, line)) return -1; /* so the text after is read as text */
    p->pos = after;
    return 1;
  }
  return 0;
}

static int lex(P *p) {
  static const struct { const char *s; int t; } table[] = {
      {"{%", T_OST}, {"%}", T_CST}, {"{{", T_OEX}, {"}}", T_CEX}, {"(", T_LP}, {")", T_RP}, {"{", T_LC},
      {"}", T_RC}, {"[", T_LB}, {"]", T_RB}, {",", T_COMMA}, {".", T_DOT}, {":", T_COLON}, {"|", T_PIPE},
      {"<=", T_CMP}, {">=", T_CMP}, {"==", T_CMP}, {"!=", T_CMP}, {"<", T_CMP}, {">", T_CMP}, {"+", T_ADD},
      {"-", T_ADD}, {"~", T_ADD}, {"**", T_POW}, {"*", T_MUL}, {"//", T_MUL}, {"/", T_MUL}, {"%", T_MUL},
      {"=", T_EQ}};
  int curly = 0;
  const char *s = p->src;
  size_t n = p->n;
  while (p->pos < n) {
    int line = p->lines[p->pos];
    int lt = last_type(p);
    if (lt < 0 || lt == T_CST || lt == T_CEX || lt == T_COMMENT) {
      size_t st = p->pos;
      while (p->pos < n && !(s[p->pos] == '{' && p->pos + 1 < n &&
                             (s[p->pos + 1] == '%' || s[p->pos + 1] == '{' || s[p->pos + 1] == '#')))
        p->pos++;
      if (p->pos > st) {
        if (push(p, T_TEXT, s + st, p->pos - st, line)) return -1;
        continue;
      }
    }
    if (s[p->pos] == '{' && p->pos + 1 < n && s[p->pos + 1] == '#') {
      p->pos += 2;
      bool sb = p->pos < n && s[p->pos] == '-';
      if (sb) p->pos++;
      size_t st = p->pos;
      while (!(p->pos + 1 < n && s[p->pos] == '#' && s[p->pos + 1] == '}')) {
        if (p->pos + 2 >= n) return perr(p, line, "comment not closed with '#}'");
        p->pos++;
      }
      bool sa = p->pos > st && s[p->pos - 1] == '-';
      if (sb) strip_trailing(p);
      if (push(p, T_COMMENT, s + st, p->pos - st - sa, line)) return -1;
      p->pos += 2;
      if (sa) while (p->pos < n && is_ws(s[p->pos])) p->pos++;
      continue;
    }
    int raw = lex_raw(p, line);
    if (raw < 0) return -1;
    if (raw) continue;
    if (p->pos + 2 < n && s[p->pos] == '{' && s[p->pos + 1] == '%' && s[p->pos + 2] == '+') { /* {%+: no lstrip */
      if (push(p, T_OST, "{%", 2, line)) return -1;
      p->pos += 3;
      continue;
    }
    if (p->pos + 2 < n && s[p->pos] == '{' && s[p->pos + 1] == '%' && s[p->pos + 2] == '-') {
      strip_trailing(p);
      if (push(p, T_OST, "{%", 2, line)) return -1;
      p->pos += 3;
      continue;
    }
    if (p->pos + 2 < n && s[p->pos] == '{' && s[p->pos + 1] == '{' && s[p->pos + 2] == '-') {
      strip_trailing(p);
      if (push(p, T_OEX, "{{", 2, line)) return -1;
      curly = 0;
      p->pos += 3;
      continue;
    }
    while (p->pos < n && is_ws(s[p->pos])) p->pos++;
    if (p->pos >= n) break;
    line = p->lines[p->pos];
    if (p->pos + 2 < n && s[p->pos] == '-' && s[p->pos + 2] == '}' && (s[p->pos + 1] == '%' || s[p->pos + 1] == '}')) {
      if (push(p, s[p->pos + 1] == '%' ? T_CST : T_CEX, s[p->pos + 1] == '%' ? "%}" : "}}", 2, line)) return -1;
      p->pos += 3;
      while (p->pos < n && is_ws(s[p->pos])) p->pos++;
      continue;
    }
    char c = s[p->pos];
    if (c == '-' || c == '+') {
      int l2 = last_type(p);
      if (l2 == T_TEXT || l2 < 0) return perr(p, line, "unexpected character '%c'", c);
      if (!(l2 == T_IDENT || l2 == T_NUM || l2 == T_STR || l2 == T_RP || l2 == T_RB)) {
        size_t st = ++p->pos;
        while (p->pos < n && is_dig(s[p->pos])) p->pos++;
        if (p->pos > st) number_tail(p, false);
        if (push(p, p->pos > st ? T_NUM : T_UNARY, s + st - 1, p->pos - st + 1, line)) return -1;
        continue;
      }
    }
    bool matched = false;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
      size_t l = strlen(table[i].s);
      if (table[i].t == T_CEX && curly > 0) continue;
      if (p->pos + l <= n && !memcmp(s + p->pos, table[i].s, l)) {
        if (push(p, table[i].t, table[i].s, l, line)) return -1;
        if (table[i].t == T_OEX) curly = 0;
        else if (table[i].t == T_LC) curly++;
        else if (table[i].t == T_RC) curly--;
        p->pos += l;
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (c == '\'' || c == '"') {
      p->pos++;
      if (lex_string(p, c, line)) return -1;
      continue;
    }
    if (is_dig(c)) {
      size_t st = p->pos;
      bool after_dot = last_type(p) == T_DOT;
      while (p->pos < n && is_dig(s[p->pos])) p->pos++;
      number_tail(p, after_dot);
      if (push(p, T_NUM, s + st, p->pos - st, line)) return -1;
      continue;
    }
    if (is_word(c)) {
      size_t st = p->pos;
      while (p->pos < n && is_word(s[p->pos])) p->pos++;
      if (push(p, T_IDENT, s + st, p->pos - st, line)) return -1;
      continue;
    }
    if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f) return perr(p, line, "unexpected character '%c'", c);
    return perr(p, line, "unexpected byte 0x%02x inside a tag", (unsigned char)c);
  }
  return 0;
}

/* ---- parser ---- */
static jnode *node(P *p, int k, int line) {
  jnode *x = jn_arena_alloc(p->a, sizeof *x);
  if (!x) { perr(p, line, "out of memory"); return NULL; }
  x->k = k;
  x->line = line;
  return x;
}
typedef struct { jnode **v; int n, cap; } nvec;
static int nv_push(P *p, nvec *v, jnode *x) {
  if (!x) return -1;
  if (v->n == v->cap) {
    int nc = v->cap ? 2 * v->cap : 8;
    jnode **nv = jn_arena_alloc(p->a, (size_t)nc * sizeof *nv);
    if (!nv) return perr(p, x->line, "out of memory");
    if (v->n) memcpy(nv, v->v, (size_t)v->n * sizeof *nv);
    v->v = nv;
    v->cap = nc;
  }
  v->v[v->n++] = x;
  return 0;
}

static tok *peek(P *p, size_t k) { return p->cur + k < p->nt ? &p->toks[p->cur + k] : NULL; }
static int cur_line(P *p) {
  tok *t = peek(p, 0);
  return t ? t->line : (p->nt ? p->toks[p->nt - 1].line : 1);
}
static bool is_t(P *p, int t) { tok *x = peek(p, 0); return x && x->t == t; }
static bool is_id(P *p, const char *name) { tok *x = peek(p, 0); return x && x->t == T_IDENT && !strcmp(x->v, name); }
static bool is_id2(P *p, const char *a, const char *b) {
  tok *x = peek(p, 0), *y = peek(p, 1);
  return x && y && x->t == T_IDENT && y->t == T_IDENT && !strcmp(x->v, a) && !strcmp(y->v, b);
}
static int expect(P *p, int t, const char *what) {
  tok *x = peek(p, 0);
  if (!x) return perr(p, cur_line(p), "expected %s %s, found the end of the template", tok_names[t], what);
  if (x->t != t) return perr(p, x->line, "expected %s %s, found %s '%s'", tok_names[t], what, tok_names[x->t], x->v);
  p->cur++;
  return 0;
}
/* {% NAME ... */
static bool is_stmt(P *p, const char *name) {
  tok *x = peek(p, 0), *y = peek(p, 1);
  return x && y && x->t == T_OST && y->t == T_IDENT && !strcmp(y->v, name);
}

static jnode *p_expr(P *p);
static jnode *p_primary(P *p);
static jnode *p_any(P *p);
static jnode *p_if_expr(P *p);
static jnode *p_or(P *p);

#define DEPTH_IN(p, line)                                                                                        \
  do {                                                                                                           \
    if (++(p)->depth > JN_MAX_PARSE_DEPTH) {                                                                     \
      perr(p, line, "template nests deeper than %d levels", JN_MAX_PARSE_DEPTH);                                 \
      return NULL;                                                                                               \
    }                                                                                                            \
  } while (0)

static jnode *mk_list(P *p, int k, int line, nvec *v) {
  jnode *x = node(p, k, line);
  if (x) { x->v = v->v; x->nv = v->n; }
  return x;
}

static jnode *p_expr_seq(P *p, bool primary) {
  int line = cur_line(p);
  jnode *first = primary ? p_primary(p) : p_expr(p);
  if (!first) return NULL;
  if (!is_t(p, T_COMMA)) return first;
  nvec v = {0};
  if (nv_push(p, &v, first)) return NULL;
  while (is_t(p, T_COMMA)) {
    p->cur++;
    if (is_t(p, T_RP) || is_t(p, T_CST) || is_t(p, T_EQ) || !peek(p, 0)) break; /* (1,) */
    if (nv_push(p, &v, primary ? p_primary(p) : p_expr(p))) return NULL;
  }
  return mk_list(p, N_TUPLE, line, &v);
}

/* args of a call or parameters of a macro: (a, b=1, *x, **y) */
static int p_args(P *p, nvec *out, bool params) {
  if (expect(p, T_LP, "to open the argument list")) return -1;
  bool saw_kw = false;
  while (!is_t(p, T_RP)) {
    tok *t = peek(p, 0);
    if (!t) return perr(p, cur_line(p), "argument list not closed with ')'");
    int line = t->line;
    if (t->t == T_POW || (t->t == T_MUL && !strcmp(t->v, "*"))) {
      if (params) return perr(p, line, "argument unpacking is not allowed in parameter declarations");
      p->cur++;
      jnode *x = node(p, t->t == T_POW ? N_KWSPREAD : N_SPREAD, line);
      if (!x || !(x->a = p_expr(p))) return -1;
      if (nv_push(p, out, x)) return -1;
      if (is_t(p, T_COMMA)) p->cur++;
      continue;
    }
    jnode *a = p_expr(p);
    if (!a) return -1;
    if (is_t(p, T_EQ)) {
      p->cur++;
      if (a->k != N_IDENT) return perr(p, line, "expected a name before '='");
      jnode *kw = node(p, N_KWARG, line);
      if (!kw) return -1;
      kw->s = a->s;
      if (!(kw->a = p_expr(p))) return -1;
      a = kw;
      saw_kw = true;
    } else if (saw_kw) {
      return perr(p, line, params ? "a parameter without default follows one with a default"
                                  : "positional argument after a keyword argument");
    }
    if (params) {
      if (a->k != N_IDENT && a->k != N_KWARG) return perr(p, line, "expected a parameter name");
      for (int i = 0; i < out->n; i++)
        if (!strcmp(out->v[i]->s, a->s)) return perr(p, line, "duplicate parameter '%s'", a->s);
    }
    if (nv_push(p, out, a)) return -1;
    if (is_t(p, T_COMMA)) p->cur++;
    else if (!is_t(p, T_RP)) return perr(p, cur_line(p), "expected ',' or ')' in an argument list");
  }
  p->cur++;
  return 0;
}

static jnode *p_call(P *p, jnode *callee);
static jnode *p_member(P *p, jnode *obj) {
  while (obj && (is_t(p, T_DOT) || is_t(p, T_LB))) {
    tok *op = peek(p, 0);
    p->cur++;
    jnode *m = node(p, N_MEMBER, op->line);
    if (!m) return NULL;
    m->a = obj;
    if (op->t == T_LB) {
      m->i = 1;
      jnode *sl[3] = {0};
      int ns = 0;
      bool is_slice = false;
      while (!is_t(p, T_RB)) {
        if (!peek(p, 0)) { perr(p, op->line, "'[' not closed with ']'"); return NULL; }
        if (ns >= 3) { perr(p, op->line, "a slice takes at most 3 parts"); return NULL; }
        if (is_t(p, T_COLON)) {
          sl[ns++] = NULL;
          p->cur++;
          is_slice = true;
        } else {
          if (!(sl[ns++] = p_expr(p))) return NULL;
          if (is_t(p, T_COLON)) { p->cur++; is_slice = true; }
        }
      }
      if (!ns) { perr(p, op->line, "empty subscript []"); return NULL; }
      p->cur++;
      if (is_slice) {
        jnode *s = node(p, N_SLICE, op->line);
        if (!s) return NULL;
        s->a = sl[0]; s->b = sl[1]; s->c = sl[2];
        m->b = s;
      } else {
        m->b = sl[0];
      }
    } else {
      jnode *prop = p_primary(p);
      if (!prop) return NULL;
      if (prop->k != N_IDENT && prop->k != N_INT) {
        perr(p, op->line, "expected a name or an integer after '.'");
        return NULL;
      }
      m->b = prop;
    }
    obj = m;
  }
  return obj;
}
static jnode *p_call(P *p, jnode *callee) {
  jnode *c = node(p, N_CALL, cur_line(p));
  if (!c) return NULL;
  c->a = callee;
  nvec v = {0};
  if (p_args(p, &v, false)) return NULL;
  c->v = v.v;
  c->nv = v.n;
  jnode *e = p_member(p, c);
  if (e && is_t(p, T_LP)) return p_call(p, e);
  return e;
}
static jnode *p_call_member(P *p) {
  jnode *m = p_member(p, p_primary(p));
  if (m && is_t(p, T_LP)) return p_call(p, m);
  return m;
}
static jnode *p_unary_sign(P *p) {
  tok *t = peek(p, 0);
  if (t && (t->t == T_UNARY || t->t == T_ADD) && (!strcmp(t->v, "-") || !strcmp(t->v, "+"))) {
    DEPTH_IN(p, t->line);
    p->cur++;
    jnode *u = node(p, N_UNARY, t->line);
    if (!u) return NULL;
    u->op = t->v[0];
    u->a = p_unary_sign(p);
    p->depth--;
    return u->a ? u : NULL;
  }
  return p_call_member(p);
}
static jnode *p_filter(P *p) {
  jnode *x = p_unary_sign(p);
  while (x && is_t(p, T_PIPE)) {
    int line = peek(p, 0)->line;
    p->cur++;
    jnode *f = p_primary(p);
    if (!f) return NULL;
    if (f->k != N_IDENT) { perr(p, line, "expected a filter name after '|'"); return NULL; }
    jnode *fx = node(p, N_FILTER, line);
    if (!fx) return NULL;
    fx->a = x;
    fx->s = f->s;
    if (is_t(p, T_LP)) {
      nvec v = {0};
      if (p_args(p, &v, false)) return NULL;
      fx->v = v.v;
      fx->nv = v.n;
      fx->i = 1;
    }
    x = fx;
  }
  return x;
}
static jnode *p_test(P *p) {
  jnode *x = p_filter(p);
  while (x && is_id(p, "is")) {
    int line = peek(p, 0)->line;
    p->cur++;
    bool neg = is_id(p, "not");
    if (neg) p->cur++;
    tok *t = peek(p, 0);
    if (!t || t->t != T_IDENT) { perr(p, line, "expected a test name after 'is'"); return NULL; }
    p->cur++;
    jnode *tx = node(p, N_TEST, line);
    if (!tx) return NULL;
    tx->a = x;
    tx->s = t->v;
    tx->i = neg;
    if (is_t(p, T_LP)) {
      nvec v = {0};
      if (p_args(p, &v, false)) return NULL;
      tx->v = v.v;
      tx->nv = v.n;
    }
    x = tx;
  }
  return x;
}
static jnode *bin(P *p, int op, jnode *a, jnode *b, int line) {
  if (!a || !b) return NULL;
  jnode *x = node(p, N_BIN, line);
  if (x) { x->op = op; x->a = a; x->b = b; }
  return x;
}
static int op_code(const char *s) {
  if (!strcmp(s, "//")) return OP_FLOORDIV;
  if (!strcmp(s, "**")) return OP_POW;
  if (!strcmp(s, "==")) return OP_EQ;
  if (!strcmp(s, "!=")) return OP_NE;
  if (!strcmp(s, "<=")) return OP_LE;
  if (!strcmp(s, ">=")) return OP_GE;
  return s[0];
}
static jnode *p_pow(P *p) {
  jnode *x = p_test(p);
  while (x && is_t(p, T_POW)) {
    int line = peek(p, 0)->line;
    p->cur++;
    x = bin(p, OP_POW, x, p_test(p), line);
  }
  return x;
}
static jnode *p_mul(P *p) {
  jnode *x = p_pow(p);
  while (x && is_t(p, T_MUL)) {
    tok *t = peek(p, 0);
    p->cur++;
    x = bin(p, op_code(t->v), x, p_pow(p), t->line);
  }
  return x;
}
static jnode *p_add(P *p) {
  jnode *x = p_mul(p);
  while (x && is_t(p, T_ADD)) {
    tok *t = peek(p, 0);
    p->cur++;
    x = bin(p, t->v[0], x, p_mul(p), t->line);
  }
  return x;
}
/* a < b < c is (a < b) and (b < c), as in Python */
static jnode *p_cmp(P *p) {
  jnode *x = p_add(p), *last = NULL;
  while (x) {
    int op, line = cur_line(p);
    if (is_id2(p, "not", "in")) { op = OP_NOTIN; p->cur += 2; }
    else if (is_id(p, "in")) { op = OP_IN; p->cur++; }
    else if (is_t(p, T_CMP)) { op = op_code(peek(p, 0)->v); p->cur++; }
    else break;
    jnode *rhs = p_add(p);
    if (!last) x = last = bin(p, op, x, rhs, line);
    else {
      last = bin(p, op, last->b, rhs, line);
      x = bin(p, OP_AND, x, last, line);
    }
  }
  return x;
}
static jnode *p_not(P *p) {
  if (is_id(p, "not")) {
    int line = cur_line(p);
    DEPTH_IN(p, line);
    p->cur++;
    jnode *u = node(p, N_UNARY, line);
    if (!u) return NULL;
    u->op = OP_NOT;
    u->a = p_not(p);
    p->depth--;
    return u->a ? u : NULL;
  }
  return p_cmp(p);
}
static jnode *p_and(P *p) {
  jnode *x = p_not(p);
  while (x && is_id(p, "and")) {
    int line = cur_line(p);
    p->cur++;
    x = bin(p, OP_AND, x, p_not(p), line);
  }
  return x;
}
static jnode *p_or(P *p) {
  jnode *x = p_and(p);
  while (x && is_id(p, "or")) {
    int line = cur_line(p);
    p->cur++;
    x = bin(p, OP_OR, x, p_and(p), line);
  }
  return x;
}
static jnode *p_if_expr(P *p) {
  jnode *a = p_or(p);
  if (a && is_id(p, "if")) {
    int line = cur_line(p);
    p->cur++;
    jnode *t = p_or(p);
    if (!t) return NULL;
    jnode *x = node(p, N_COND, line);
    if (!x) return NULL;
    x->a = t;
    x->b = a;
    if (is_id(p, "else")) {
      p->cur++;
      if (!(x->c = p_if_expr(p))) return NULL;
    }
    return x;
  }
  return a;
}
static jnode *p_expr(P *p) {
  DEPTH_IN(p, cur_line(p));
  jnode *x = p_if_expr(p);
  p->depth--;
  return x;
}
static jnode *p_primary(P *p) {
  tok *t = peek(p, 0);
  if (!t) { perr(p, cur_line(p), "unexpected end of the template inside an expression"); return NULL; }
  p->cur++;
  jnode *x;
  switch (t->t) {
  case T_NUM:
    if (strpbrk(t->v, ".eE")) {
      if (!(x = node(p, N_FLOAT, t->line))) return NULL;
      x->f = strtod(t->v, NULL);
    } else {
      if (!(x = node(p, N_INT, t->line))) return NULL;
      x->i = strtoll(t->v, NULL, 10);
    }
    return x;
  case T_STR: {
    size_t len = t->n;
    size_t k = p->cur;
    while (k < p->nt && p->toks[k].t == T_STR) len += p->toks[k++].n;
    if (!(x = node(p, N_STR, t->line))) return NULL;
    char *s = jn_arena_alloc(p->a, len + 1);
    if (!s) { perr(p, t->line, "out of memory"); return NULL; }
    memcpy(s, t->v, t->n);
    size_t o = t->n;
    while (p->cur < k) { memcpy(s + o, p->toks[p->cur].v, p->toks[p->cur].n); o += p->toks[p->cur++].n; }
    x->s = s;
    x->sn = len;
    return x;
  }
  case T_IDENT:
    if (!(x = node(p, N_IDENT, t->line))) return NULL;
    x->s = t->v;
    return x;
  case T_LP: {
    DEPTH_IN(p, t->line);
    x = p_expr_seq(p, false);
    p->depth--;
    if (!x || expect(p, T_RP, "to close '('")) return NULL;
    return x;
  }
  case T_LB: {
    DEPTH_IN(p, t->line);
    nvec v = {0};
    while (!is_t(p, T_RB)) {
      if (!peek(p, 0)) { perr(p, t->line, "'[' not closed with ']'"); return NULL; }
      if (nv_push(p, &v, p_expr(p))) return NULL;
      if (is_t(p, T_COMMA)) p->cur++;
      else if (!is_t(p, T_RB)) { perr(p, cur_line(p), "expected ',' or ']' in a list"); return NULL; }
    }
    p->cur++;
    p->depth--;
    return mk_list(p, N_LIST, t->line, &v);
  }
  case T_LC: {
    DEPTH_IN(p, t->line);
    nvec k = {0}, v = {0};
    while (!is_t(p, T_RC)) {
      if (!peek(p, 0)) { perr(p, t->line, "'{' not closed with '}'"); return NULL; }
      if (nv_push(p, &k, p_expr(p))) return NULL;
      if (expect(p, T_COLON, "between a key and its value")) return NULL;
      if (nv_push(p, &v, p_expr(p))) return NULL;
      if (is_t(p, T_COMMA)) p->cur++;
      else if (!is_t(p, T_RC)) { perr(p, cur_line(p), "expected ',' or '}' in a dict"); return NULL; }
    }
    p->cur++;
    p->depth--;
    if (!(x = mk_list(p, N_DICT, t->line, &k))) return NULL;
    x->w = v.v;
    x->nw = v.n;
    return x;
  }
  default:
    perr(p, t->line, "unexpected %s '%s'", tok_names[t->t], t->v);
    return NULL;
  }
}

/* statements until one of the names (not consumed) */
static int p_body(P *p, nvec *out, const char *const *ends, const char *opener, int line) {
  for (;;) {
    if (!peek(p, 0)) {
      char want[128] = "";
      for (int i = 0; ends[i]; i++) {
        strcat(want, i ? "/" : "");
        strncat(want, ends[i], sizeof want - strlen(want) - 12);
      }
      return perr(p, line, "'%s' not closed: expected {%% %s %%} before the end of the template", opener, want);
    }
    for (int i = 0; ends[i]; i++)
      if (is_stmt(p, ends[i])) return 0;
    if (nv_push(p, out, p_any(p))) return -1;
  }
}
static int end_tag(P *p, const char *name) {
  p->cur += 2; /* {% name */
  return expect(p, T_CST, name[0] == 'e' && name[1] == 'n' ? "to close the end tag" : "to close the tag");
}

static jnode *p_if_stmt(P *p, int line) {
  jnode *x = node(p, N_IF, line);
  if (!x || !(x->a = p_expr(p)) || expect(p, T_CST, "after the if condition")) return NULL;
  static const char *const ends[] = {"elif", "else", "endif", NULL};
  nvec body = {0}, alt = {0};
  if (p_body(p, &body, ends, "if", line)) return NULL;
  x->v = body.v;
  x->nv = body.n;
  if (is_stmt(p, "elif")) {
    int l2 = peek(p, 0)->line;
    p->cur += 2;
    if (nv_push(p, &alt, p_if_stmt(p, l2))) return NULL;
  } else if (is_stmt(p, "else")) {
    if (end_tag(p, "else")) return NULL;
    static const char *const e2[] = {"endif", NULL};
    if (p_body(p, &alt, e2, "if", line)) return NULL;
  }
  x->w = alt.v;
  x->nw = alt.n;
  return x;
}

static jnode *p_stmt(P *p) {
  int line = peek(p, 0)->line;
  p->cur++; /* {% */
  tok *t = peek(p, 0);
  if (!t || t->t != T_IDENT) {
    perr(p, line, "expected a statement name after '{%%'");
    return NULL;
  }
  const char *nm = t->v;
  p->cur++;
  jnode *x = NULL;
  if (!strcmp(nm, "set")) {
    x = node(p, N_SET, line);
    if (!x || !(x->a = p_expr_seq(p, false))) return NULL;
    if (is_t(p, T_EQ)) {
      p->cur++;
      if (!(x->b = p_expr_seq(p, false))) return NULL;
    } else {
      if (expect(p, T_CST, "after the set target")) return NULL;
      static const char *const ends[] = {"endset", NULL};
      nvec body = {0};
      if (p_body(p, &body, ends, "set", line)) return NULL;
      x->v = body.v;
      x->nv = body.n;
      p->cur += 2;
    }
    if (expect(p, T_CST, "to close the set tag")) return NULL;
    if (x->a->k != N_IDENT && x->a->k != N_TUPLE && x->a->k != N_MEMBER) {
      perr(p, line, "cannot assign to this expression");
      return NULL;
    }
  } else if (!strcmp(nm, "if")) {
    if (!(x = p_if_stmt(p, line)) || end_tag(p, "endif")) return NULL;
  } else if (!strcmp(nm, "for")) {
    x = node(p, N_FOR, line);
    if (!x || !(x->a = p_expr_seq(p, true))) return NULL;
    if (x->a->k != N_IDENT && x->a->k != N_TUPLE) { perr(p, line, "expected a name or names after 'for'"); return NULL; }
    if (!is_id(p, "in")) { perr(p, cur_line(p), "expected 'in' after the loop variable"); return NULL; }
    p->cur++;
    jnode *it = p_expr(p);
    if (!it) return NULL;
    if (it->k == N_COND && !it->c) { x->b = it->b; x->c = it->a; } /* for x in xs if cond */
    else x->b = it;
    if (is_id(p, "recursive")) { perr(p, cur_line(p), "recursive loops are not supported"); return NULL; }
    if (expect(p, T_CST, "after the for header")) return NULL;
    static const char *const ends[] = {"endfor", "else", NULL};
    nvec body = {0}, alt = {0};
    if (p_body(p, &body, ends, "for", line)) return NULL;
    if (is_stmt(p, "else")) {
      if (end_tag(p, "else")) return NULL;
      static const char *const e2[] = {"endfor", NULL};
      if (p_body(p, &alt, e2, "for", line)) return NULL;
    }
    if (end_tag(p, "endfor")) return NULL;
    x->v = body.v; x->nv = body.n; x->w = alt.v; x->nw = alt.n;
  } else if (!strcmp(nm, "macro")) {
    x = node(p, N_MACRO, line);
    tok *n2 = peek(p, 0);
    if (!x || !n2 || n2->t != T_IDENT) { perr(p, line, "expected a macro name"); return NULL; }
    p->cur++;
    x->s = n2->v;
    nvec params = {0}, body = {0};
    if (p_args(p, &params, true) || expect(p, T_CST, "after the macro signature")) return NULL;
    static const char *const ends[] = {"endmacro", NULL};
    if (p_body(p, &body, ends, "macro", line) || end_tag(p, "endmacro")) return NULL;
    x->v = params.v; x->nv = params.n; x->w = body.v; x->nw = body.n;
  } else if (!strcmp(nm, "call")) {
    x = node(p, N_CALLBLOCK, line);
    if (!x) return NULL;
    nvec params = {0}, body = {0};
    if (is_t(p, T_LP) && p_args(p, &params, true)) return NULL;
    jnode *callee = p_primary(p);
    if (!callee) return NULL;
    if (callee->k != N_IDENT) { perr(p, line, "expected a macro name after 'call'"); return NULL; }
    jnode *c = node(p, N_CALL, line);
    if (!c) return NULL;
    c->a = callee;
    nvec args = {0};
    if (p_args(p, &args, false) || expect(p, T_CST, "after the call header")) return NULL;
    c->v = args.v; c->nv = args.n;
    static const char *const ends[] = {"endcall", NULL};
    if (p_body(p, &body, ends, "call", line) || end_tag(p, "endcall")) return NULL;
    x->a = c; x->v = params.v; x->nv = params.n; x->w = body.v; x->nw = body.n;
  } else if (!strcmp(nm, "filter")) {
    x = node(p, N_FILTERBLOCK, line);
    tok *f = peek(p, 0);
    if (!x || !f || f->t != T_IDENT) { perr(p, line, "expected a filter name after 'filter'"); return NULL; }
    p->cur++;
    jnode *fx = node(p, N_FILTER, line);
    if (!fx) return NULL;
    fx->s = f->v;
    if (is_t(p, T_LP)) {
      nvec v = {0};
      if (p_args(p, &v, false)) return NULL;
      fx->v = v.v; fx->nv = v.n; fx->i = 1;
    }
    if (expect(p, T_CST, "after the filter header")) return NULL;
    nvec body = {0};
    static const char *const ends[] = {"endfilter", NULL};
    if (p_body(p, &body, ends, "filter", line) || end_tag(p, "endfilter")) return NULL;
    x->a = fx; x->v = body.v; x->nv = body.n;
  } else if (!strcmp(nm, "generation")) {
    x = node(p, N_GENERATION, line);
    if (!x || expect(p, T_CST, "after 'generation'")) return NULL;
    nvec body = {0};
    static const char *const ends[] = {"endgeneration", NULL};
    if (p_body(p, &body, ends, "generation", line) || end_tag(p, "endgeneration")) return NULL;
    x->v = body.v; x->nv = body.n;
  } else if (!strcmp(nm, "break") || !strcmp(nm, "continue")) {
    x = node(p, nm[0] == 'b' ? N_BREAK : N_CONTINUE, line);
    if (!x || expect(p, T_CST, "after break/continue")) return NULL;
  } else if (!strcmp(nm, "include") || !strcmp(nm, "extends") || !strcmp(nm, "block") ||
             !strcmp(nm, "import") || !strcmp(nm, "from") || !strcmp(nm, "with") || !strcmp(nm, "do")) {
    perr(p, line, "the '%s' statement is not supported in chat templates", nm);
    return NULL;
  } else {
    perr(p, line, "unknown statement '%s' (or a stray end tag)", nm);
    return NULL;
  }
  return x;
}

static jnode *p_any(P *p) {
  tok *t = peek(p, 0);
  jnode *x;
  switch (t->t) {
  case T_COMMENT:
    p->cur++;
    return node(p, N_COMMENT, t->line);
  case T_TEXT:
    p->cur++;
    if (!(x = node(p, N_TEXT, t->line))) return NULL;
    x->s = t->v;
    x->sn = t->n;
    return x;
  case T_OST:
    DEPTH_IN(p, t->line);
    x = p_stmt(p);
    p->depth--;
    return x;
  case T_OEX:
    p->cur++;
    if (!(x = node(p, N_OUTPUT, t->line)) || !(x->a = p_expr(p)) || expect(p, T_CEX, "to close the expression"))
      return NULL;
    return x;
  default:
    perr(p, t->line, "unexpected %s '%s' outside a tag", tok_names[t->t], t->v);
    return NULL;
  }
}

static bool has_gen(jnode **v, int n) {
  for (int i = 0; i < n; i++) {
    if (!v[i]) continue;
    if (v[i]->k == N_GENERATION) return true;
    if ((v[i]->k == N_IF || v[i]->k == N_FOR || v[i]->k == N_MACRO || v[i]->k == N_CALLBLOCK || v[i]->k == N_SET ||
         v[i]->k == N_FILTERBLOCK) &&
        (has_gen(v[i]->v, v[i]->nv) || has_gen(v[i]->w, v[i]->nw)))
      return true;
  }
  return false;
}

tn_status tn_jinja_parse(const char *text, const char *name, tn_jinja **out) {
  *out = NULL;
  if (!text) return tn_error(TN_ERR_ARG, "tn_jinja_parse: NULL template");
  tn_jinja *t = calloc(1, sizeof *t);
  if (!t) return tn_error(TN_ERR_NOMEM, "out of memory");
  t->name = strdup(name ? name : "chat_template");
  P p = {.a = &t->arena, .name = t->name};
  int rc = preprocess(&p, text);
  if (!rc) rc = lex(&p);
  nvec body = {0};
  if (!rc) {
    while (p.cur < p.nt && !p.err) {
      if (nv_push(&p, &body, p_any(&p))) break;
    }
  }
  free(p.src);
  free(p.lines);
  free(p.toks);
  if (p.err) {
    tn_status s = tn_error(TN_ERR_FORMAT, "%s:%d: %s", t->name, p.err_line, p.err);
    free(p.err);
    tn_jinja_free(t);
    return s;
  }
  t->body = body.v;
  t->n_body = body.n;
  t->has_generation = has_gen(body.v, body.n);
  *out = t;
  return TN_OK;
}

void tn_jinja_free(tn_jinja *t) {
  if (!t) return;
  jn_arena_free(&t->arena);
  free(t->name);
  free(t);
}
bool tn_jinja_has_generation(const tn_jinja *t) { return t && t->has_generation; }
