/* tok_json.c - a small, fast reader for the two huge fields of tokenizer.json
 * (model.vocab and model.merges, ~95% of a 33 MB Gemma file): finds them in the raw text
 * and walks their entries without building a cJSON tree. Everything else in the file is
 * still read with cJSON (tok_load.c blanks these two fields out of its copy).
 * Not for: general JSON. */
#include "tokenizer/tokenizer.h"
#include <string.h>

static const char *ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  return p;
}

/* p at '"': returns the position after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e) {
  p++;
  for (;;) {
    const char *q = memchr(p, '"', e - p);
    if (!q) return NULL;
    const char *b = q; /* count backslashes before the quote */
    while (b > p && b[-1] == '\\') b--;
    if (((q - b) & 1) == 0) return q + 1;
    p = q + 1;
  }
}

static const char *skip_value(const char *p, const char *e) {
  p = ws(p, e);
  if (p >= e) return NULL;
  if (*p == '"') return skip_string(p, e);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < e) {
      char c = *p;
      if (c == '"') {
        if (!(p = skip_string(p, e))) return NULL;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      else if (c == '}' || c == ']') {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return NULL;
  }
  while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') p++;
  return p;
}

static int hex4(const char *p, const char *e) {
  if (e - p < 4) return -1;
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

/* Decode the JSON string at *pp (at '"') into out (replaced); advances *pp. Returns false on error. */
static bool read_string(const char **pp, const char *e, tk_buf *out) {
  const char *p = *pp;
  if (p >= e || *p != '"') return false;
  p++;
  out->len = 0;
  for (;;) {
    const char *q = p;
    while (q < e && *q != '"' && *q != '\\') q++;
    if (q >= e) return false;
    if (tk_buf_put(out, p, q - p) != TN_OK) return false;
    p = q;
    if (*p == '"') break;
    if (p + 1 >= e) return false;
    char c = p[1], ch;
    p += 2;
    switch (c) {
    case '"': ch = '"'; break;
    case '\\': ch = '\\'; break;
    case '/': ch = '/'; break;
    case 'b': ch = '\b'; break;
    case 'f': ch = '\f'; break;
    case 'n': ch = '\n'; break;
    case 'r': ch = '\r'; break;
    case 't': ch = '\t'; break;
    case 'u': {
      int cp = hex4(p, e);
      if (cp < 0) return false;
      p += 4;
      if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
        int lo = hex4(p + 2, e);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
      }
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* lone surrogate */
      char enc[4];
      if (tk_buf_put(out, enc, tk_utf8_encode(cp, enc)) != TN_OK) return false;
      continue;
    }
    default: return false;
    }
    if (tk_buf_put(out, &ch, 1) != TN_OK) return false;
  }
  *pp = p + 1;
  return true;
}

bool tk_json_find_model_fields(const char *s, size_t n, size_t span[4]) {
  const char *p = s, *e = s + n;
  span[0] = span[1] = span[2] = span[3] = 0;
  p = ws(p, e);
  if (p >= e || *p != '{') return false;
  p++;
  bool found_model = false;
  for (;;) {
    p = ws(p, e);
    if (p >= e) return false;
    if (*p == '}') break;
    if (*p == ',') { p++; continue; }
    if (*p != '"') return false;
    const char *ks = p + 1, *ke = skip_string(p, e);
    if (!ke) return false;
    size_t klen = ke - 1 - ks;
    p = ws(ke, e);
    if (p >= e || *p != ':') return false;
    p = ws(p + 1, e);
    if (klen == 5 && !memcmp(ks, "model", 5) && p < e && *p == '{') {
      found_model = true;
      p++;
      for (;;) {
        p = ws(p, e);
        if (p >= e) return false;
        if (*p == '}') { p++; break; }
        if (*p == ',') { p++; continue; }
        if (*p != '"') return false;
        const char *ms = p + 1, *me = skip_string(p, e);
        if (!me) return false;
        size_t mlen = me - 1 - ms;
        p = ws(me, e);
        if (p >= e || *p != ':') return false;
        p = ws(p + 1, e);
        const char *vs = p, *ve = skip_value(p, e);
        if (!ve) return false;
        if (mlen == 5 && !memcmp(ms, "vocab", 5)) { span[0] = vs - s; span[1] = ve - s; }
        if (mlen == 6 && !memcmp(ms, "merges", 6)) { span[2] = vs - s; span[3] = ve - s; }
        p = ve;
      }
    } else {
      if (!(p = skip_value(p, e))) return false;
    }
  }
  return found_model;
}

bool tk_json_open(tk_jcur *c, const char *s, size_t n, char open) {
  c->p = ws(s, s + n);
  c->e = s + n;
  c->first = true;
  if (c->p >= c->e || *c->p != open) return false;
  c->p++;
  return true;
}

/* Advance to the next element; 1 = one is there, 0 = closed, -1 = syntax error. */
static int next_elem(tk_jcur *c, char close) {
  c->p = ws(c->p, c->e);
  if (c->p >= c->e) return -1;
  if (*c->p == close) { c->p++; return 0; }
  if (!c->first) {
    if (*c->p != ',') return -1;
    c->p = ws(c->p + 1, c->e);
  }
  c->first = false;
  return c->p < c->e ? 1 : -1;
}

int tk_json_next_vocab(tk_jcur *c, tk_buf *key, long *id) {
  int r = next_elem(c, '}');
  if (r <= 0) return r;
  if (!read_string(&c->p, c->e, key)) return -1;
  c->p = ws(c->p, c->e);
  if (c->p >= c->e || *c->p != ':') return -1;
  c->p = ws(c->p + 1, c->e);
  const char *q = c->p;
  bool neg = q < c->e && *q == '-';
  if (neg) q++;
  long v = 0;
  const char *d0 = q;
  while (q < c->e && *q >= '0' && *q <= '9' && q - d0 < 12) v = v * 10 + (*q++ - '0');
  if (q == d0 || (q < c->e && (*q == '.' || *q == 'e' || *q == 'E'))) {
    *id = -1; /* not an integer: reported by the caller */
    const char *ve = skip_value(c->p, c->e);
    if (!ve) return -1;
    c->p = ve;
    return 1;
  }
  *id = neg ? -v : v;
  c->p = q;
  return 1;
}

int tk_json_next_merge(tk_jcur *c, tk_buf *a, tk_buf *b, bool *pair_form) {
  int r = next_elem(c, ']');
  if (r <= 0) return r;
  if (*c->p == '"') {
    *pair_form = false;
    return read_string(&c->p, c->e, a) ? 1 : -2;
  }
  if (*c->p == '[') {
    *pair_form = true;
    const char *p = ws(c->p + 1, c->e);
    if (!read_string(&p, c->e, a)) goto bad;
    p = ws(p, c->e);
    if (p >= c->e || *p != ',') goto bad;
    p = ws(p + 1, c->e);
    if (!read_string(&p, c->e, b)) goto bad;
    p = ws(p, c->e);
    if (p >= c->e || *p != ']') goto bad;
    c->p = p + 1;
    return 1;
  }
bad: /* not a merge: skip it so the caller can report its index */
  {
    const char *ve = skip_value(c->p, c->e);
    if (!ve) return -1;
    c->p = ve;
  }
  return -2;
}
