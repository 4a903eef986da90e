/* tok_load.c - reads tokenizer.json and tokenizer_config.json into a tn_tokenizer:
 * BPE vocabulary and merges, added tokens, normalizer / pre-tokenizer / post-processor /
 * decoder configuration, special token ids and the chat template. Every error names the
 * file and the JSON field at fault.
 * Not for: running the pipeline (tok_pipeline.c, tok_encode.c, tok_decode.c). */
#include "tokenizer/tokenizer.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/json.h"

typedef struct {
  const char *file; /* "tokenizer.json" path for messages */
} ld_ctx;

static tn_status ferr(const ld_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static tn_status ferr(const ld_ctx *c, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return tn_error(TN_ERR_FORMAT, "%s: %s", c->file, msg);
}

static const cJSON *jget(const cJSON *o, const char *k) { return o ? tn_json_field(o, k) : NULL; }
static bool jbool(const cJSON *o, const char *k, bool def) {
  const cJSON *v = jget(o, k);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}
static const char *jstr(const cJSON *o, const char *k) {
  const cJSON *v = jget(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- patterns ---- */

/* Oniguruma (what the Rust tokenizers use) -> PCRE2 translation of the few escapes whose
 * Unicode meaning differs: \s / \S (White_Space), \w / \W (Oniguruma's word chars). */
#define WS_LIST "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define WORD_LIST "\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}"
static tn_status translate_regex(const char *re, tk_buf *out) {
  int in_class = 0;
  for (const char *p = re; *p; p++) {
    if (*p == '\\' && p[1]) {
      char e = p[1];
      const char *rep = NULL;
      if (e == 's') rep = in_class ? WS_LIST : "[" WS_LIST "]";
      else if (e == 'S') rep = in_class ? "\\S" : "[^" WS_LIST "]";
      else if (e == 'w') rep = in_class ? WORD_LIST : "[" WORD_LIST "]";
      else if (e == 'W') rep = in_class ? "\\W" : "[^" WORD_LIST "]";
      if (rep) TN_TRY(tk_buf_put(out, rep, strlen(rep)));
      else TN_TRY(tk_buf_put(out, p, 2));
      p++;
      continue;
    }
    if (*p == '[') {
      /* a '[' right after '[' or '[^' is literal in PCRE2 only as first char; keep nesting count */
      in_class++;
      TN_TRY(tk_buf_putc(out, *p));
      if (p[1] == '^') { TN_TRY(tk_buf_putc(out, '^')); p++; }
      if (p[1] == ']') { TN_TRY(tk_buf_putc(out, ']')); p++; } /* leading ] is literal */
      continue;
    }
    if (*p == ']' && in_class) in_class--;
    TN_TRY(tk_buf_putc(out, *p));
  }
  return TN_OK;
}

tn_status tk_compile_pattern(tk_pattern *p, const char *text, bool is_regex, const char *field) {
  memset(p, 0, sizeof *p);
  if (!is_regex) {
    p->kind = TK_PAT_STRING;
    p->len = strlen(text);
    p->str = tn_strdup(text);
    return p->str ? TN_OK : tn_error(TN_ERR_NOMEM, "out of memory");
  }
  p->kind = TK_PAT_REGEX;
  tk_buf t = {0};
  tn_status s = translate_regex(text, &t);
  if (s != TN_OK) return s;
  int err;
  PCRE2_SIZE off;
  p->re = pcre2_compile((PCRE2_SPTR)t.s, t.len, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
  tk_buf_free(&t);
  if (!p->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return tn_error(TN_ERR_UNSUPPORTED, "%s: regex '%s' does not compile: %s (at %zu)", field, text, (char *)msg,
                    (size_t)off);
  }
  pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
  return TN_OK;
}

void tk_pattern_free(tk_pattern *p) {
  free(p->str);
  if (p->re) pcre2_code_free(p->re);
  memset(p, 0, sizeof *p);
}

static tn_status parse_pattern(const ld_ctx *c, const cJSON *o, const char *field, tk_pattern *p) {
  const cJSON *pat = jget(o, "pattern");
  const char *s;
  if ((s = jstr(pat, "String"))) return tk_compile_pattern(p, s, false, field);
  if ((s = jstr(pat, "Regex"))) {
    char f[128];
    snprintf(f, sizeof f, "%s: %s.pattern.Regex", c->file, field);
    return tk_compile_pattern(p, s, true, f);
  }
  return ferr(c, "%s.pattern: expected {\"String\": ...} or {\"Regex\": ...}", field);
}

/* ---- normalizers ---- */
static tn_status add_norm(tn_tokenizer *tk, tk_norm *n) {
  size_t cap = tk->n_norms;
  tn_status s = tk_grow((void **)&tk->norms, &cap, tk->n_norms + 1, sizeof *n);
  if (s != TN_OK) { free(n->content); tk_pattern_free(&n->pat); return s; }
  tk->norms[tk->n_norms++] = *n;
  return TN_OK;
}

static tn_status parse_normalizer(const ld_ctx *c, tn_tokenizer *tk, const cJSON *o, const char *field) {
  if (!o || cJSON_IsNull(o)) return TN_OK;
  const char *type = jstr(o, "type");
  if (!type) return ferr(c, "%s.type: missing", field);
  tk_norm n = {0};
  char sub[160];
  if (!strcmp(type, "Sequence")) {
    const cJSON *arr = jget(o, "normalizers"), *it;
    if (!cJSON_IsArray(arr)) return ferr(c, "%s.normalizers: expected an array", field);
    int i = 0;
    cJSON_ArrayForEach(it, arr) {
      snprintf(sub, sizeof sub, "%s.normalizers[%d]", field, i++);
      TN_TRY(parse_normalizer(c, tk, it, sub));
    }
    return TN_OK;
  }
  if (!strcmp(type, "NFC")) n.kind = TK_NORM_NFC;
  else if (!strcmp(type, "NFD")) n.kind = TK_NORM_NFD;
  else if (!strcmp(type, "NFKC")) n.kind = TK_NORM_NFKC;
  else if (!strcmp(type, "NFKD")) n.kind = TK_NORM_NFKD;
  else if (!strcmp(type, "Lowercase")) n.kind = TK_NORM_LOWERCASE;
  else if (!strcmp(type, "StripAccents")) n.kind = TK_NORM_STRIP_ACCENTS;
  else if (!strcmp(type, "Strip")) {
    n.kind = TK_NORM_STRIP;
    n.left = jbool(o, "strip_left", true);
    n.right = jbool(o, "strip_right", true);
  } else if (!strcmp(type, "Prepend")) {
    n.kind = TK_NORM_PREPEND;
    const char *p = jstr(o, "prepend");
    if (!p) return ferr(c, "%s.prepend: missing", field);
    n.content = tn_strdup(p);
    n.content_len = strlen(p);
    if (!n.content) return tn_error(TN_ERR_NOMEM, "%s: out of memory", c->file);
  } else if (!strcmp(type, "Replace")) {
    n.kind = TK_NORM_REPLACE;
    TN_TRY(parse_pattern(c, o, field, &n.pat));
    const char *ct = jstr(o, "content");
    if (!ct) { tk_pattern_free(&n.pat); return ferr(c, "%s.content: missing", field); }
    n.content = tn_strdup(ct);
    n.content_len = strlen(ct);
    if (!n.content) { tk_pattern_free(&n.pat); return tn_error(TN_ERR_NOMEM, "%s: out of memory", c->file); }
  } else {
    return tn_error(TN_ERR_UNSUPPORTED,
                    "%s: %s.type '%s' is not supported (supported: NFC, NFD, NFKC, NFKD, Replace, Prepend, "
                    "Lowercase, Strip, StripAccents, Sequence)",
                    c->file, field, type);
  }
  return add_norm(tk, &n);
}

/* ---- pre-tokenizers ---- */
static tn_status add_pre(tn_tokenizer *tk, tk_pre *p) {
  size_t cap = tk->n_pres;
  tn_status s = tk_grow((void **)&tk->pres, &cap, tk->n_pres + 1, sizeof *p);
  if (s != TN_OK) { tk_pattern_free(&p->pat); return s; }
  tk->pres[tk->n_pres++] = *p;
  return TN_OK;
}

static tn_status parse_prepend_scheme(const ld_ctx *c, const cJSON *o, const char *field, tk_prepend_scheme *out) {
  const char *ps = jstr(o, "prepend_scheme");
  *out = TK_PREPEND_ALWAYS;
  if (ps) {
    if (!strcmp(ps, "always")) *out = TK_PREPEND_ALWAYS;
    else if (!strcmp(ps, "first")) *out = TK_PREPEND_FIRST;
    else if (!strcmp(ps, "never")) *out = TK_PREPEND_NEVER;
    else return ferr(c, "%s.prepend_scheme: '%s' is not always/first/never", field, ps);
  } else if (cJSON_IsBool(jget(o, "add_prefix_space"))) {
    *out = jbool(o, "add_prefix_space", true) ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
  }
  return TN_OK;
}

static tn_status parse_replacement(const ld_ctx *c, const cJSON *o, const char *field, char *repl, int *len) {
  const char *r = jstr(o, "replacement");
  if (!r) r = "\xE2\x96\x81"; /* U+2581 */
  size_t l = strlen(r);
  if (l == 0 || l > 4) return ferr(c, "%s.replacement: expected one character", field);
  memcpy(repl, r, l);
  *len = (int)l;
  return TN_OK;
}

/* GPT-2 / ByteLevel pre-tokenization (also the trainer's, tok_train.c). */
const char tk_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static tn_status parse_pre(const ld_ctx *c, tn_tokenizer *tk, const cJSON *o, const char *field) {
  if (!o || cJSON_IsNull(o)) return TN_OK;
  const char *type = jstr(o, "type");
  if (!type) return ferr(c, "%s.type: missing", field);
  tk_pre p = {0};
  char sub[160];
  if (!strcmp(type, "Sequence")) {
    const cJSON *arr = jget(o, "pretokenizers"), *it;
    if (!cJSON_IsArray(arr)) return ferr(c, "%s.pretokenizers: expected an array", field);
    int i = 0;
    cJSON_ArrayForEach(it, arr) {
      snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", field, i++);
      TN_TRY(parse_pre(c, tk, it, sub));
    }
    return TN_OK;
  }
  if (!strcmp(type, "Split")) {
    p.kind = TK_PRE_SPLIT;
    TN_TRY(parse_pattern(c, o, field, &p.pat));
    p.invert = jbool(o, "invert", false);
    const char *b = jstr(o, "behavior");
    if (!b) { tk_pattern_free(&p.pat); return ferr(c, "%s.behavior: missing", field); }
    if (!strcmp(b, "Removed")) p.behavior = TK_SPLIT_REMOVED;
    else if (!strcmp(b, "Isolated")) p.behavior = TK_SPLIT_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) p.behavior = TK_SPLIT_MERGED_PREV;
    else if (!strcmp(b, "MergedWithNext")) p.behavior = TK_SPLIT_MERGED_NEXT;
    else if (!strcmp(b, "Contiguous")) p.behavior = TK_SPLIT_CONTIGUOUS;
    else { tk_pattern_free(&p.pat); return ferr(c, "%s.behavior: '%s' is not a split behavior", field, b); }
  } else if (!strcmp(type, "ByteLevel")) {
    p.kind = TK_PRE_BYTELEVEL;
    p.add_prefix_space = jbool(o, "add_prefix_space", true);
    p.use_regex = jbool(o, "use_regex", true);
    if (p.use_regex) TN_TRY(tk_compile_pattern(&p.pat, tk_gpt2_pattern, true, "ByteLevel regex"));
    tk->byte_level = true;
  } else if (!strcmp(type, "Metaspace")) {
    p.kind = TK_PRE_METASPACE;
    TN_TRY(parse_replacement(c, o, field, p.repl, &p.repl_len));
    TN_TRY(parse_prepend_scheme(c, o, field, &p.prepend));
    p.split = jbool(o, "split", true);
  } else if (!strcmp(type, "Whitespace")) {
    p.kind = TK_PRE_WHITESPACE;
    TN_TRY(tk_compile_pattern(&p.pat, "\\w+|[^\\w\\s]+", true, "Whitespace regex"));
  } else if (!strcmp(type, "WhitespaceSplit")) {
    p.kind = TK_PRE_WHITESPACE_SPLIT;
  } else if (!strcmp(type, "Digits")) {
    p.kind = TK_PRE_DIGITS;
    p.individual_digits = jbool(o, "individual_digits", false);
    TN_TRY(tk_compile_pattern(&p.pat, p.individual_digits ? "\\p{Nd}" : "\\p{Nd}+", true, "Digits regex"));
  } else if (!strcmp(type, "Punctuation")) {
    p.kind = TK_PRE_PUNCTUATION;
    TN_TRY(tk_compile_pattern(&p.pat, "[\\p{P}\\x{21}-\\x{2F}\\x{3A}-\\x{40}\\x{5B}-\\x{60}\\x{7B}-\\x{7E}]", true,
                              "Punctuation regex"));
    p.behavior = TK_SPLIT_ISOLATED;
    const char *b = jstr(o, "behavior");
    if (b && !strcmp(b, "Removed")) p.behavior = TK_SPLIT_REMOVED;
    else if (b && !strcmp(b, "MergedWithPrevious")) p.behavior = TK_SPLIT_MERGED_PREV;
    else if (b && !strcmp(b, "MergedWithNext")) p.behavior = TK_SPLIT_MERGED_NEXT;
    else if (b && !strcmp(b, "Contiguous")) p.behavior = TK_SPLIT_CONTIGUOUS;
  } else {
    return tn_error(TN_ERR_UNSUPPORTED,
                    "%s: %s.type '%s' is not supported (supported: Split, ByteLevel, Metaspace, Whitespace, "
                    "WhitespaceSplit, Digits, Punctuation, Sequence)",
                    c->file, field, type);
  }
  return add_pre(tk, &p);
}

/* ---- decoders ---- */
static tn_status add_dec(tn_tokenizer *tk, tk_dec *d) {
  size_t cap = tk->n_decs;
  tn_status s = tk_grow((void **)&tk->decs, &cap, tk->n_decs + 1, sizeof *d);
  if (s != TN_OK) { free(d->content); tk_pattern_free(&d->pat); return s; }
  tk->decs[tk->n_decs++] = *d;
  return TN_OK;
}

static tn_status parse_dec(const ld_ctx *c, tn_tokenizer *tk, const cJSON *o, const char *field) {
  if (!o || cJSON_IsNull(o)) return TN_OK;
  const char *type = jstr(o, "type");
  if (!type) return ferr(c, "%s.type: missing", field);
  tk_dec d = {0};
  char sub[160];
  if (!strcmp(type, "Sequence")) {
    const cJSON *arr = jget(o, "decoders"), *it;
    if (!cJSON_IsArray(arr)) return ferr(c, "%s.decoders: expected an array", field);
    int i = 0;
    cJSON_ArrayForEach(it, arr) {
      snprintf(sub, sizeof sub, "%s.decoders[%d]", field, i++);
      TN_TRY(parse_dec(c, tk, it, sub));
    }
    return TN_OK;
  }
  if (!strcmp(type, "ByteLevel")) d.kind = TK_DEC_BYTELEVEL;
  else if (!strcmp(type, "ByteFallback")) d.kind = TK_DEC_BYTEFALLBACK;
  else if (!strcmp(type, "Fuse")) d.kind = TK_DEC_FUSE;
  else if (!strcmp(type, "Replace")) {
    d.kind = TK_DEC_REPLACE;
    TN_TRY(parse_pattern(c, o, field, &d.pat));
    const char *ct = jstr(o, "content");
    if (!ct) { tk_pattern_free(&d.pat); return ferr(c, "%s.content: missing", field); }
    d.content = tn_strdup(ct);
    d.content_len = strlen(ct);
    if (!d.content) { tk_pattern_free(&d.pat); return tn_error(TN_ERR_NOMEM, "%s: out of memory", c->file); }
  } else if (!strcmp(type, "Strip")) {
    d.kind = TK_DEC_STRIP;
    const char *ct = jstr(o, "content");
    if (!ct || !*ct) return ferr(c, "%s.content: expected one character", field);
    tk_utf8_decode((const unsigned char *)ct, &d.strip_cp);
    const cJSON *a = jget(o, "start"), *b = jget(o, "stop");
    d.start = cJSON_IsNumber(a) ? a->valueint : 0;
    d.stop = cJSON_IsNumber(b) ? b->valueint : 0;
  } else if (!strcmp(type, "Metaspace")) {
    d.kind = TK_DEC_METASPACE;
    TN_TRY(parse_replacement(c, o, field, d.repl, &d.repl_len));
    tk_prepend_scheme ps;
    TN_TRY(parse_prepend_scheme(c, o, field, &ps));
    d.strip_first = ps != TK_PREPEND_NEVER;
  } else {
    return tn_error(TN_ERR_UNSUPPORTED,
                    "%s: %s.type '%s' is not supported (supported: ByteLevel, ByteFallback, Replace, Fuse, Strip, "
                    "Metaspace, Sequence)",
                    c->file, field, type);
  }
  return add_dec(tk, &d);
}

/* ---- post-processor ---- */
static tn_status push_id(int32_t **arr, int *n, int32_t id) {
  size_t cap = *n;
  TN_TRY(tk_grow((void **)arr, &cap, *n + 1, sizeof **arr));
  (*arr)[(*n)++] = id;
  return TN_OK;
}

static tn_status parse_post(const ld_ctx *c, tn_tokenizer *tk, const cJSON *o, const char *field) {
  if (!o || cJSON_IsNull(o)) return TN_OK;
  const char *type = jstr(o, "type");
  if (!type) return ferr(c, "%s.type: missing", field);
  char sub[160];
  if (!strcmp(type, "Sequence")) {
    const cJSON *arr = jget(o, "processors"), *it;
    if (!cJSON_IsArray(arr)) return ferr(c, "%s.processors: expected an array", field);
    int i = 0;
    cJSON_ArrayForEach(it, arr) {
      snprintf(sub, sizeof sub, "%s.processors[%d]", field, i++);
      TN_TRY(parse_post(c, tk, it, sub));
    }
    return TN_OK;
  }
  if (!strcmp(type, "ByteLevel")) return TN_OK; /* only adjusts offsets */
  if (!strcmp(type, "TemplateProcessing")) {
    const cJSON *single = jget(o, "single"), *sp = jget(o, "special_tokens"), *it;
    if (!cJSON_IsArray(single)) return ferr(c, "%s.single: expected an array", field);
    bool seen_a = false;
    int i = 0;
    cJSON_ArrayForEach(it, single) {
      const cJSON *st = jget(it, "SpecialToken"), *sq = jget(it, "Sequence");
      if (sq) {
        seen_a = true;
      } else if (st) {
        const char *name = jstr(st, "id");
        if (!name) return ferr(c, "%s.single[%d].SpecialToken.id: missing", field, i);
        const cJSON *ent = jget(sp, name), *ids = jget(ent, "ids"), *idv;
        if (!cJSON_IsArray(ids)) return ferr(c, "%s.special_tokens['%s'].ids: missing", field, name);
        cJSON_ArrayForEach(idv, ids) {
          if (!cJSON_IsNumber(idv)) return ferr(c, "%s.special_tokens['%s'].ids: expected integers", field, name);
          if (seen_a) TN_TRY(push_id(&tk->post_post, &tk->n_post_post, idv->valueint));
          else TN_TRY(push_id(&tk->post_pre, &tk->n_post_pre, idv->valueint));
        }
      } else {
        return ferr(c, "%s.single[%d]: expected SpecialToken or Sequence", field, i);
      }
      i++;
    }
    return TN_OK;
  }
  if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
    const cJSON *cls = jget(o, "cls"), *sep = jget(o, "sep");
    if (!cJSON_IsArray(cls) || !cJSON_IsNumber(cJSON_GetArrayItem(cls, 1)))
      return ferr(c, "%s.cls: expected [token, id]", field);
    if (!cJSON_IsArray(sep) || !cJSON_IsNumber(cJSON_GetArrayItem(sep, 1)))
      return ferr(c, "%s.sep: expected [token, id]", field);
    TN_TRY(push_id(&tk->post_pre, &tk->n_post_pre, cJSON_GetArrayItem(cls, 1)->valueint));
    TN_TRY(push_id(&tk->post_post, &tk->n_post_post, cJSON_GetArrayItem(sep, 1)->valueint));
    return TN_OK;
  }
  return tn_error(TN_ERR_UNSUPPORTED,
                  "%s: %s.type '%s' is not supported (supported: TemplateProcessing, ByteLevel, BertProcessing, "
                  "RobertaProcessing, Sequence)",
                  c->file, field, type);
}

/* ---- model ---- */

/* Surface string of a vocab entry -> the bytes BPE works on (raw bytes for byte-level).
 * Returns 0 if the string cannot be produced by the byte-level alphabet, -1 when out of memory. */
static int to_piece(const tn_tokenizer *tk, const char *s, size_t n, tk_buf *out) {
  out->len = 0;
  if (!tk->byte_level) return tk_buf_put(out, s, n) == TN_OK ? 1 : -1;
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    int32_t cp;
    if (!tk_utf8_valid_len(p + i, n - i)) return false;
    i += tk_utf8_decode(p + i, &cp);
    int b = tk_cp_to_byte(cp);
    if (b < 0) return 0;
    char ch = (char)b;
    if (tk_buf_put(out, &ch, 1) != TN_OK) return -1;
  }
  return 1;
}

static tn_status set_token(tn_tokenizer *tk, int32_t id, const char *s, size_t n) {
  tk->tok_str[id] = (char *)(uintptr_t)(tk->strpool.len + 1); /* offset+1, fixed up after loading */
  tk->tok_len[id] = (uint32_t)n;
  TN_TRY(tk_buf_put(&tk->strpool, s, n));
  return tk_buf_putc(&tk->strpool, 0);
}

/* added_tokens (NA of them, checked by parse_model) into tk->added and the vocabulary */
static tn_status add_added(const ld_ctx *c, tn_tokenizer *tk, const cJSON *added, int na) {
  const cJSON *it;
  /* added tokens */
  {
    tk->added = calloc(na, sizeof *tk->added);
    if (!tk->added) return tn_error(TN_ERR_NOMEM, "out of memory");
    int i = 0;
    cJSON_ArrayForEach(it, added) {
      tk_added *a = &tk->added[i++];
      const char *s = jstr(it, "content");
      a->len = strlen(s);
      a->content = tn_strdup(s);
      if (!a->content) return tn_error(TN_ERR_NOMEM, "%s: out of memory", c->file);
      tk->n_added = i; /* so that tn_tokenizer_free releases what is filled on an early return */
      a->id = jget(it, "id")->valueint;
      a->special = jbool(it, "special", false);
      a->lstrip = jbool(it, "lstrip", false);
      a->rstrip = jbool(it, "rstrip", false);
      a->single_word = jbool(it, "single_word", false);
      a->normalized = jbool(it, "normalized", !a->special);
      TN_TRY(set_token(tk, a->id, s, a->len));
      TN_TRY(tk_strmap_put(&tk->str2id, s, a->len, a->id));
      tk->tok_flags[a->id] |= TK_F_ADDED | (a->special ? TK_F_SPECIAL : 0);
    }
    tk->n_added = na;
  }
  return TN_OK;
}

/* the byte -> token tables (byte-level, byte fallback), the character table and the U+2581 split rule */
static tn_status byte_tables(tn_tokenizer *tk) {
  /* bytes */
  for (int b = 0; b < 256; b++) {
    char name[8];
    tk->byte_id[b] = -1;
    if (tk->byte_level) {
      char ch = (char)b;
      tk->byte_id[b] = tk_strmap_get(&tk->piece2id, &ch, 1);
    } else if (tk->byte_fallback) {
      snprintf(name, sizeof name, "<0x%02X>", b);
      tk->byte_id[b] = tk_strmap_get(&tk->str2id, name, 6);
    }
  }
  if (tk->byte_fallback)
    for (int b = 0; b < 256; b++) {
      char name[8];
      snprintf(name, sizeof name, "<0x%02X>", b);
      int32_t id = tk_strmap_get(&tk->str2id, name, 6);
      if (id >= 0) tk->tok_flags[id] |= TK_F_BYTE;
    }
  if (!tk->byte_level) {
    tk->char_id = malloc(0x10000 * sizeof *tk->char_id);
    if (!tk->char_id) return tn_error(TN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < 0x10000; i++) tk->char_id[i] = -1;
    for (size_t e = 0; e <= tk->piece2id.mask; e++) {
      const tk_sm_slot *en = &tk->piece2id.slots[e];
      if (en->off == UINT32_MAX) continue;
      const unsigned char *p = (const unsigned char *)tk->piece2id.keys.s + en->off;
      int l = tk_utf8_valid_len(p, en->len);
      if (l && (uint32_t)l == en->len) {
        int32_t ch;
        tk_utf8_decode(p, &ch);
        if (ch < 0x10000) tk->char_id[ch] = en->val;
      }
    }
  }

  /* which characters a vocabulary token ever puts right before U+2581 (see meta_split) */
  if (!tk->byte_level && tk_strmap_get(&tk->piece2id, "\xE2\x96\x81", 3) >= 0) {
    tk->meta_split = true;
    for (size_t e = 0; e <= tk->piece2id.mask && tk->meta_split; e++) {
      const tk_sm_slot *en = &tk->piece2id.slots[e];
      if (en->off == UINT32_MAX) continue;
      const unsigned char *p = (const unsigned char *)tk->piece2id.keys.s + en->off;
      int32_t prev = -1;
      for (size_t i = 0; i < en->len;) {
        int l = tk_utf8_valid_len(p + i, en->len - i);
        if (!l) break;
        int32_t cp;
        tk_utf8_decode(p + i, &cp);
        if (cp == 0x2581 && prev >= 0 && prev != 0x2581) {
          bool have = false;
          for (int k = 0; k < tk->n_meta_keep; k++) have |= tk->meta_keep[k] == prev;
          if (!have) {
            if (tk->n_meta_keep == 32) tk->meta_split = false;
            else tk->meta_keep[tk->n_meta_keep++] = prev;
          }
        }
        prev = cp;
        i += l;
      }
    }
  }

  return TN_OK;
}

/* model.merges (text MT of MN bytes): counted, then each pair's rank and result */
static tn_status load_merges(const ld_ctx *c, tn_tokenizer *tk, const char *mt, size_t mn) {
  tk_jcur cur;
  tn_status st = TN_OK;
  int r;
  /* merges: count, then insert */
  tk_buf ma = {0}, mb = {0}, cat = {0};
  bool pf;
  size_t nm = 0;
  tk_json_open(&cur, mt, mn, '[');
  while ((r = tk_json_next_merge(&cur, &ma, &mb, &pf)) != 0) {
    if (r == -1) { st = ferr(c, "model.merges: malformed after %zu entries", nm); goto merr; }
    if (r == -2) { st = ferr(c, "model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", nm); goto merr; }
    nm++;
  }
  if ((st = tk_pairmap_init(&tk->merges, nm)) != TN_OK) goto merr;
  tk_json_open(&cur, mt, mn, '[');
  for (int32_t rank = 0; tk_json_next_merge(&cur, &ma, &mb, &pf) == 1; rank++) {
    const char *a, *b;
    size_t la, lb;
    if (!pf) {
      const char *s0 = ma.s ? ma.s : "", *sp = memchr(s0, ' ', ma.len);
      if (!sp || memchr(sp + 1, ' ', ma.len - (sp + 1 - s0)) || sp == s0 || sp + 1 == s0 + ma.len) {
        st = ferr(c, "model.merges[%d]: '%s' is not two tokens separated by one space", rank, s0);
        goto merr;
      }
      a = s0;
      la = sp - s0;
      b = sp + 1;
      lb = ma.len - la - 1;
    } else {
      a = ma.s ? ma.s : "";
      la = ma.len;
      b = mb.s ? mb.s : "";
      lb = mb.len;
    }
    int32_t ia = tk_strmap_get(&tk->str2id, a, la), ib = tk_strmap_get(&tk->str2id, b, lb);
    cat.len = 0;
    tk_buf_put(&cat, a, la);
    tk_buf_put(&cat, b, lb);
    int32_t im = tk_strmap_get(&tk->str2id, cat.s, cat.len);
    if (ia < 0 || ib < 0 || im < 0) {
      tk_buf bad = {0};
      if (ia < 0) tk_buf_put(&bad, a, la);
      else if (ib < 0) tk_buf_put(&bad, b, lb);
      else tk_buf_put(&bad, cat.s, cat.len);
      st = ferr(c, "model.merges[%d]: token '%s' is not in model.vocab", rank, bad.s);
      tk_buf_free(&bad);
      goto merr;
    }
    if ((st = tk_pairmap_put(&tk->merges, ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib, rank, im)) != TN_OK) goto merr;
  }
merr:
  tk_buf_free(&ma);
  tk_buf_free(&mb);
  tk_buf_free(&cat);
  return st;
}

static tn_status parse_model(const ld_ctx *c, tn_tokenizer *tk, const cJSON *model, const cJSON *added,
                             const char *vt, size_t vn, const char *mt, size_t mn) {
  if (!model || cJSON_IsNull(model)) return ferr(c, "missing field 'model'");
  if (!cJSON_IsObject(model)) return ferr(c, "model: expected an object");
  const char *type = jstr(model, "type");
  if (type && strcmp(type, "BPE"))
    return tn_error(TN_ERR_UNSUPPORTED, "%s: model.type '%s' is not supported (only BPE models are)", c->file, type);
  tk_jcur cur;
  if (!vt || !tk_json_open(&cur, vt, vn, '{')) return ferr(c, "model.vocab: missing or not an object");
  if (!mt || !tk_json_open(&cur, mt, mn, '[')) return ferr(c, "model.merges: missing or not an array");
  const char *cp = jstr(model, "continuing_subword_prefix"), *ew = jstr(model, "end_of_word_suffix");
  if ((cp && *cp) || (ew && *ew))
    return tn_error(TN_ERR_UNSUPPORTED, "%s: model.continuing_subword_prefix / end_of_word_suffix are not supported",
                    c->file);
  tk->byte_fallback = jbool(model, "byte_fallback", false);
  tk->ignore_merges = jbool(model, "ignore_merges", false);
  tk->fuse_unk = jbool(model, "fuse_unk", false);

  /* ids: a first pass over the vocabulary for its size and the largest id */
  int32_t maxid = -1;
  size_t nv = 0;
  tk_buf key = {0};
  long idv;
  int r;
  tk_json_open(&cur, vt, vn, '{');
  while ((r = tk_json_next_vocab(&cur, &key, &idv)) == 1) {
    if (idv < 0 || idv > 100000000) {
      tn_status e = ferr(c, "model.vocab['%s']: expected a non-negative integer id", key.s ? key.s : "");
      tk_buf_free(&key);
      return e;
    }
    if (idv > maxid) maxid = (int32_t)idv;
    nv++;
  }
  if (r < 0) { tk_buf_free(&key); return ferr(c, "model.vocab: malformed after %zu entries", nv); }
  const cJSON *it;
  int na = 0;
  if (added && !cJSON_IsNull(added)) {
    if (!cJSON_IsArray(added)) { tk_buf_free(&key); return ferr(c, "added_tokens: expected an array"); }
    int i = 0;
    cJSON_ArrayForEach(it, added) {
      const cJSON *id = jget(it, "id");
      if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 1e8) {
        tk_buf_free(&key);
        return ferr(c, "added_tokens[%d].id: missing or not a non-negative integer", i);
      }
      if (!jstr(it, "content") || !*jstr(it, "content")) {
        tk_buf_free(&key);
        return ferr(c, "added_tokens[%d].content: missing or empty", i);
      }
      if (id->valueint > maxid) maxid = id->valueint;
      i++;
    }
    na = i;
  }
  tk->n_vocab = maxid + 1;
  tk->tok_str = calloc(tk->n_vocab, sizeof *tk->tok_str);
  tk->tok_len = calloc(tk->n_vocab, sizeof *tk->tok_len);
  tk->tok_flags = calloc(tk->n_vocab, 1);
  if (!tk->tok_str || !tk->tok_len || !tk->tok_flags) { tk_buf_free(&key); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  tn_status st = tk_strmap_init(&tk->str2id, nv + na);
  if (st == TN_OK) st = tk_strmap_init(&tk->piece2id, nv);
  if (st == TN_OK) st = tk_buf_reserve(&tk->strpool, vn);
  tk_buf piece = {0};
  tk_json_open(&cur, vt, vn, '{');
  while (st == TN_OK && tk_json_next_vocab(&cur, &key, &idv) == 1) {
    const char *ks = key.s ? key.s : "";
    int32_t id = (int32_t)idv;
    if ((st = set_token(tk, id, ks, key.len)) != TN_OK) break;
    if ((st = tk_strmap_put(&tk->str2id, ks, key.len, id)) != TN_OK) break;
    const int pc = to_piece(tk, ks, key.len, &piece);
    if (pc < 0) { st = tn_error(TN_ERR_NOMEM, "%s: out of memory", c->file); break; }
    if (pc > 0 && (st = tk_strmap_put(&tk->piece2id, piece.s, piece.len, id)) != TN_OK) break;
  }
  tk_buf_free(&piece);
  tk_buf_free(&key);
  TN_TRY(st);

  if (na) TN_TRY(add_added(c, tk, added, na));
  for (int32_t id = 0; id < tk->n_vocab; id++)
    if (tk->tok_str[id]) tk->tok_str[id] = tk->strpool.s + ((uintptr_t)tk->tok_str[id] - 1);

  const char *unk = jstr(model, "unk_token");
  tk->unk_id = unk ? tk_strmap_get(&tk->str2id, unk, strlen(unk)) : -1;

  TN_TRY(byte_tables(tk));
  return load_merges(c, tk, mt, mn);
}

/* ---- tries for added tokens ---- */
static tn_status trie_add(tk_trie *t, const char *s, size_t n, int32_t val) {
  if (!t->nnodes) {
    TN_TRY(tk_pairmap_init(&t->edges, 64));
    TN_TRY(tk_grow((void **)&t->term, &t->cap, 1, sizeof *t->term));
    t->term[0] = -1;
    t->nnodes = 1;
  }
  t->first[(unsigned char)s[0] >> 3] |= 1u << ((unsigned char)s[0] & 7);
  int32_t node = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t key = ((uint64_t)node << 8) | (unsigned char)s[i];
    int32_t child, dummy;
    if (!tk_pairmap_get(&t->edges, key, &child, &dummy)) {
      child = (int32_t)t->nnodes;
      TN_TRY(tk_grow((void **)&t->term, &t->cap, t->nnodes + 1, sizeof *t->term));
      t->term[t->nnodes++] = -1;
      TN_TRY(tk_pairmap_put(&t->edges, key, child, 0));
    }
    node = child;
  }
  if (t->term[node] < 0) t->term[node] = val;
  return TN_OK;
}

/* ---- tokenizer_config.json ---- */
static const char *special_str(const cJSON *cfg, const char *k) {
  const cJSON *v = jget(cfg, k);
  if (cJSON_IsString(v)) return v->valuestring;
  if (cJSON_IsObject(v)) return jstr(v, "content");
  return NULL;
}

static tn_status parse_config(tn_tokenizer *tk, const char *path) {
  tk->bos_id = tk->eos_id = tk->pad_id = -1;
  tk->clean_up_spaces = true; /* the transformers / transformers.js default */
  if (!path || !tn_file_exists(path)) return TN_OK;
  char *txt;
  size_t n;
  TN_TRY(tn_read_file(path, &txt, &n));
  cJSON *cfg = cJSON_ParseWithLength(txt, n);
  free(txt);
  if (!cfg) return tn_error(TN_ERR_FORMAT, "%s: not valid JSON", path);
  const char *s;
  bool oom = false;
  if ((s = special_str(cfg, "bos_token"))) { tk->bos_id = tk_strmap_get(&tk->str2id, s, strlen(s)); oom |= !(tk->bos_str = tn_strdup(s)); }
  if ((s = special_str(cfg, "eos_token"))) { tk->eos_id = tk_strmap_get(&tk->str2id, s, strlen(s)); oom |= !(tk->eos_str = tn_strdup(s)); }
  if ((s = special_str(cfg, "pad_token"))) tk->pad_id = tk_strmap_get(&tk->str2id, s, strlen(s));
  tk->clean_up_spaces = jbool(cfg, "clean_up_tokenization_spaces", true);
  const cJSON *ast = jget(cfg, "additional_special_tokens"), *it;
  cJSON_ArrayForEach(it, ast) {
    const char *t = cJSON_IsString(it) ? it->valuestring : jstr(it, "content");
    int32_t id = t ? tk_strmap_get(&tk->str2id, t, strlen(t)) : -1;
    if (id >= 0) tk->tok_flags[id] |= TK_F_SPECIAL;
  }
  const cJSON *ct = jget(cfg, "chat_template");
  if (cJSON_IsString(ct)) {
    oom |= !(tk->chat_template = tn_strdup(ct->valuestring));
  } else if (cJSON_IsArray(ct)) { /* [{name, template}, ...]: the one named "default", else the first */
    const char *first = NULL, *def = NULL;
    cJSON_ArrayForEach(it, ct) {
      const char *t = jstr(it, "template"), *nm = jstr(it, "name");
      if (t && !first) first = t;
      if (t && nm && !strcmp(nm, "default")) def = t;
      if (t && nm && !strcmp(nm, "tool_use") && !tk->chat_template_tool) tk->chat_template_tool = tn_strdup(t);
    }
    if (def || first) oom |= !(tk->chat_template = tn_strdup(def ? def : first));
  }
  if (tk->chat_template) { /* errors read "PATH chat_template:LINE: ...", LINE within the template */
    tk->chat_template_src = malloc(strlen(path) + 16);
    if (tk->chat_template_src) sprintf(tk->chat_template_src, "%s chat_template", path);
    else oom = true;
  }
  /* transformers >= 4.43 saves the template beside the config as chat_template.jinja */
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, (size_t)(slash - path)) : tn_strdup(".");
  char *jp = dir ? tn_path_join(dir, "chat_template.jinja") : NULL;
  if (!dir || !jp) oom = true;
  if (jp && tn_file_exists(jp)) {
    char *t = NULL;
    size_t tl;
    tn_status rs = tn_read_file(jp, &t, &tl);
    if (rs == TN_OK) {
      free(tk->chat_template);
      free(tk->chat_template_src);
      tk->chat_template = t;
      tk->chat_template_src = tn_strdup(jp);
      if (!tk->chat_template_src) oom = true;
    } else {
      free(jp), free(dir), cJSON_Delete(cfg);
      return tn_error_prefix(rs, "chat template");
    }
  }
  free(jp);
  free(dir);
  cJSON_Delete(cfg);
  return oom ? tn_error(TN_ERR_NOMEM, "%s: out of memory", path) : TN_OK;
}

/* ---- entry point ---- */
static bool is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

tn_status tn_tokenizer_load(const char *path, tn_tokenizer **out) {
  *out = NULL;
  if (!path) return tn_error(TN_ERR_ARG, "tokenizer: no path given");
  tk_bytelevel_init();
  char *json_path, *cfg_path;
  if (is_dir(path)) {
    json_path = tn_path_join(path, "tokenizer.json");
    cfg_path = tn_path_join(path, "tokenizer_config.json");
  } else {
    json_path = tn_strdup(path);
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash - path) : tn_strdup(".");
    cfg_path = dir ? tn_path_join(dir, "tokenizer_config.json") : NULL;
    free(dir);
  }
  tn_tokenizer *tk = calloc(1, sizeof *tk);
  cJSON *root = NULL;
  char *txt = NULL, *rest = NULL;
  size_t n;
  tn_status s = TN_OK;
  if (!tk || !json_path || !cfg_path) { s = tn_error(TN_ERR_NOMEM, "%s: out of memory", path); goto done; }
  tk->name = tn_strdup(json_path);
  if (!tk->name) { s = tn_error(TN_ERR_NOMEM, "%s: out of memory", path); goto done; }
  if (!tn_file_exists(json_path)) {
    s = tn_error(TN_ERR_IO, "%s: not found (a model directory needs tokenizer.json)", json_path);
    goto done;
  }
  if ((s = tn_read_file(json_path, &txt, &n)) != TN_OK) goto done;
  /* model.vocab and model.merges are read straight from the text (tok_json.c); cJSON gets a
   * copy in which they are blanked to {} and [] */
  size_t sp[4] = {0, 0, 0, 0};
  bool fast = tk_json_find_model_fields(txt, n, sp);
  rest = malloc(n + 1);
  if (!rest) { s = tn_error(TN_ERR_NOMEM, "out of memory"); goto done; }
  memcpy(rest, txt, n + 1);
  if (fast) {
    if (sp[1] > sp[0] + 1 && txt[sp[0]] == '{') { rest[sp[0]] = '{'; memset(rest + sp[0] + 1, ' ', sp[1] - sp[0] - 2); rest[sp[1] - 1] = '}'; }
    if (sp[3] > sp[2] + 1 && txt[sp[2]] == '[') { rest[sp[2]] = '['; memset(rest + sp[2] + 1, ' ', sp[3] - sp[2] - 2); rest[sp[3] - 1] = ']'; }
  }
  root = cJSON_ParseWithLength(rest, n);
  if (!root) {
    const char *e = cJSON_GetErrorPtr();
    s = tn_error(TN_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", json_path, e ? (size_t)(e - rest) : (size_t)0);
    goto done;
  }
  free(rest);
  rest = NULL;
  ld_ctx c = {json_path};
  /* the pre-tokenizer decides whether the vocabulary is byte-level, so it goes first */
  if ((s = parse_pre(&c, tk, jget(root, "pre_tokenizer"), "pre_tokenizer")) != TN_OK) goto done;
  if ((s = parse_model(&c, tk, jget(root, "model"), jget(root, "added_tokens"), sp[1] > sp[0] ? txt + sp[0] : NULL,
                       sp[1] - sp[0], sp[3] > sp[2] ? txt + sp[2] : NULL, sp[3] - sp[2])) != TN_OK)
    goto done;
  if ((s = parse_normalizer(&c, tk, jget(root, "normalizer"), "normalizer")) != TN_OK) goto done;
  if ((s = parse_post(&c, tk, jget(root, "post_processor"), "post_processor")) != TN_OK) goto done;
  if ((s = parse_dec(&c, tk, jget(root, "decoder"), "decoder")) != TN_OK) goto done;
  for (int i = 0; i < tk->n_post_pre + tk->n_post_post; i++) {
    int32_t id = i < tk->n_post_pre ? tk->post_pre[i] : tk->post_post[i - tk->n_post_pre];
    if (id < 0 || id >= tk->n_vocab || !tk->tok_str[id]) {
      s = tn_error(TN_ERR_FORMAT, "%s: post_processor: special token id %d is not in the vocabulary", json_path, id);
      goto done;
    }
  }
  {
    /* normalized added tokens are matched on normalized text, so their content is normalized too */
    tk_scratch sc = {0};
    tk_text nt = {0};
    s = tk_scratch_ensure(&sc);
    for (int i = 0; i < tk->n_added && s == TN_OK; i++) {
      tk_added *a = &tk->added[i];
      if (a->normalized && tk->n_norms) {
        s = tk_normalize(tk, &sc, a->content, a->len, NULL, &nt);
        if (s == TN_OK && nt.b.len) s = trie_add(&tk->trie_norm, nt.b.s, nt.b.len, i);
      } else {
        s = trie_add(&tk->trie_raw, a->content, a->len, i);
      }
    }
    if (sc.md) pcre2_match_data_free(sc.md);
    tk_buf_free(&nt.b);
    free(nt.align);
    if (s != TN_OK) goto done;
  }
  s = parse_config(tk, cfg_path);
done:
  if (root) cJSON_Delete(root);
  free(txt);
  free(rest);
  free(json_path);
  free(cfg_path);
  if (s != TN_OK) {
    tn_tokenizer_free(tk);
    return s;
  }
  *out = tk;
  return TN_OK;
}

void tn_tokenizer_free(tn_tokenizer *tk) {
  if (!tk) return;
  free(tk->tok_str);
  free(tk->tok_len);
  free(tk->tok_flags);
  tk_buf_free(&tk->strpool);
  tk_strmap_free(&tk->str2id);
  tk_strmap_free(&tk->piece2id);
  free(tk->char_id);
  tk_pairmap_free(&tk->merges);
  for (int i = 0; i < tk->n_added; i++) free(tk->added[i].content);
  free(tk->added);
  tk_pairmap_free(&tk->trie_raw.edges);
  free(tk->trie_raw.term);
  tk_pairmap_free(&tk->trie_norm.edges);
  free(tk->trie_norm.term);
  for (int i = 0; i < tk->n_norms; i++) { tk_pattern_free(&tk->norms[i].pat); free(tk->norms[i].content); }
  free(tk->norms);
  for (int i = 0; i < tk->n_pres; i++) tk_pattern_free(&tk->pres[i].pat);
  free(tk->pres);
  for (int i = 0; i < tk->n_decs; i++) { tk_pattern_free(&tk->decs[i].pat); free(tk->decs[i].content); }
  free(tk->decs);
  free(tk->post_pre);
  free(tk->post_post);
  free(tk->bos_str);
  free(tk->eos_str);
  free(tk->chat_template);
  free(tk->chat_template_tool);
  free(tk->chat_template_src);
  free(tk->name);
  free(tk);
}

/* ---- small queries ---- */
int32_t tn_tokenizer_vocab_size(const tn_tokenizer *tk) { return tk->n_vocab; }
int32_t tn_tokenizer_token_to_id(const tn_tokenizer *tk, const char *t, size_t len) {
  return tk_strmap_get(&tk->str2id, t, len);
}
const char *tn_tokenizer_id_to_token(const tn_tokenizer *tk, int32_t id, size_t *len) {
  if (id < 0 || id >= tk->n_vocab || !tk->tok_str[id]) return NULL;
  if (len) *len = tk->tok_len[id];
  return tk->tok_str[id];
}
bool tn_tokenizer_is_special(const tn_tokenizer *tk, int32_t id) {
  return id >= 0 && id < tk->n_vocab && (tk->tok_flags[id] & TK_F_SPECIAL);
}
int32_t tn_tokenizer_bos_id(const tn_tokenizer *tk) { return tk->bos_id; }
int32_t tn_tokenizer_eos_id(const tn_tokenizer *tk) { return tk->eos_id; }
int32_t tn_tokenizer_pad_id(const tn_tokenizer *tk) { return tk->pad_id; }
const char *tn_tokenizer_chat_template(const tn_tokenizer *tk) { return tk->chat_template; }

tn_status tn_tokenizer_set_chat_template(tn_tokenizer *tk, const char *path) {
  char *t;
  size_t n;
  if (!tk || !path) return tn_error(TN_ERR_ARG, "tn_tokenizer_set_chat_template: NULL argument");
  TN_TRY(tn_read_file(path, &t, &n));
  if (strlen(t) != n) { free(t); return tn_error(TN_ERR_FORMAT, "%s: a chat template cannot contain NUL bytes", path); }
  free(tk->chat_template);
  free(tk->chat_template_tool);
  free(tk->chat_template_src);
  tk->chat_template = t;
  tk->chat_template_tool = NULL;
  tk->chat_template_src = tn_strdup(path);
  return TN_OK;
}
