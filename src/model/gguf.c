/* gguf.c - GGUF export (issue 21), written from the GGUF specification (ggml docs/gguf.md:
 * little-endian "GGUF", version 3, tensor and key/value counts, typed key/value pairs, tensor
 * infos with dims innermost first, data aligned to general.alignment = 32) and the names
 * llama.cpp reads (token_embd, blk.N.attn_q, ..., output_norm, output; {arch}.* hyperparameters;
 * tokenizer.ggml.* for the vocabulary). Family differences handled here, as llama.cpp's
 * converter does: llama's q/k rows reordered for its interleaved RoPE, Gemma's norm weights
 * stored as 1 + w, Llama-3 RoPE scaling as a rope_freqs tensor. Configurations llama.cpp would
 * compute differently (another Gemma-3 layer pattern or attention scale, an unknown
 * pre-tokenizer) are refused with the field named, never written wrong.
 * Not for: reading GGUF, k-quants, the adapter merge (the caller merges first). */
#include "model/gguf.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/json.h"

enum { G_U8, G_I8, G_U16, G_I16, G_U32, G_I32, G_F32, G_BOOL, G_STR, G_ARR, G_U64, G_I64, G_F64 };
enum { GT_F32 = 0, GT_Q4_0 = 2, GT_Q8_0 = 8, GT_BF16 = 30 };            /* ggml_type */
enum { TT_NORMAL = 1, TT_UNKNOWN, TT_CONTROL, TT_USER, TT_UNUSED, TT_BYTE }; /* token types */
#define ALIGN 32

tn_status tn_gguf_parse_type(const char *s, tn_gguf_type *out) {
  static const char *names[] = {"f32", "bf16", "q8_0", "q4_0"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(s, names[i])) { *out = (tn_gguf_type)i; return TN_OK; }
  return tn_error(TN_ERR_ARG, "--type '%s': expected f32, bf16, q8_0 or q4_0", s);
}

/* ---- ggml block quantisation (reference formulas of ggml-quants.c) ---- */
uint16_t tn_fp16_from_f32(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65536: inf */
  if (ax < 0x38800000u) {                                    /* half subnormal (or zero) */
    if (ax < 0x33000000u) return (uint16_t)sign;             /* below half the smallest subnormal */
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const int shift = 126 - (int)(ax >> 23);                 /* 14..24 */
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((ax >> 13) - (112u << 10));                  /* rebias 127 -> 15 */
  const uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

void tn_quantize_q8_0(const float *x, uint8_t *y, int64_t k) {
  for (int64_t b = 0; b < k / 32; b++, x += 32, y += 34) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    put16(y, tn_fp16_from_f32(d));
    for (int j = 0; j < 32; j++) {
      const float v = x[j] * id;
      y[2 + j] = (uint8_t)(int8_t)roundf(v);
    }
  }
}

void tn_quantize_q4_0(const float *x, uint8_t *y, int64_t k) {
  for (int64_t b = 0; b < k / 32; b++, x += 32, y += 18) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
      if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    put16(y, tn_fp16_from_f32(d));
    for (int j = 0; j < 16; j++) {
      const float x0 = x[j] * id, x1 = x[16 + j] * id;
      const int8_t a = (int8_t)(x0 + 8.5f), c = (int8_t)(x1 + 8.5f);
      const uint8_t q0 = (uint8_t)(a < 15 ? a : 15), q1 = (uint8_t)(c < 15 ? c : 15);
      y[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

/* ---- a growable byte buffer for the header ---- */
typedef struct { uint8_t *p; size_t n, cap; bool oom; } gbuf;
static void gput(gbuf *b, const void *d, size_t n) {
  if (b->oom) return;
  if (b->n + n > b->cap) {
    size_t c = b->cap ? b->cap * 2 : 1 << 16;
    while (c < b->n + n) c *= 2;
    uint8_t *q = realloc(b->p, c);
    if (!q) { b->oom = true; return; }
    b->p = q;
    b->cap = c;
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
}
static void gu32(gbuf *b, uint32_t v) { gput(b, &v, 4); } /* x86-64: little-endian */
static void gu64(gbuf *b, uint64_t v) { gput(b, &v, 8); }
static void gstr(gbuf *b, const char *s) { gu64(b, strlen(s)); gput(b, s, strlen(s)); }

typedef struct { gbuf b; uint64_t n_kv; } kvs;
static void key(kvs *k, const char *name, uint32_t type) { gstr(&k->b, name); gu32(&k->b, type); k->n_kv++; }
static void kv_str(kvs *k, const char *name, const char *v) { key(k, name, G_STR); gstr(&k->b, v); }
static void kv_u32(kvs *k, const char *name, uint32_t v) { key(k, name, G_U32); gu32(&k->b, v); }
static void kv_f32(kvs *k, const char *name, float v) { key(k, name, G_F32); gput(&k->b, &v, 4); }
static void kv_bool(kvs *k, const char *name, bool v) { key(k, name, G_BOOL); uint8_t c = v; gput(&k->b, &c, 1); }
static void kv_arr(kvs *k, const char *name, uint32_t type, uint64_t n) {
  key(k, name, G_ARR);
  gu32(&k->b, type);
  gu64(&k->b, n);
}
static void kv_archf(kvs *k, const char *arch, const char *field, char *buf, size_t n) {
  (void)k;
  snprintf(buf, n, "%s.%s", arch, field);
}

/* ---- tokenizer metadata from tokenizer.json ---- */
static const cJSON *jget(const cJSON *o, const char *k) { return o ? tn_json_field(o, k) : NULL; }

/* Does any component (a single object or a Sequence's list) of type TYPE exist in node? */
static const cJSON *find_component(const cJSON *node, const char *type) {
  if (!cJSON_IsObject(node)) return NULL;
  const cJSON *t = jget(node, "type");
  if (cJSON_IsString(t) && !strcmp(t->valuestring, type)) return node;
  const char *lists[] = {"pretokenizers", "normalizers", "decoders", "processors"};
  for (int i = 0; i < 4; i++) {
    const cJSON *l = jget(node, lists[i]), *it;
    cJSON_ArrayForEach(it, l) {
      const cJSON *f = find_component(it, type);
      if (f) return f;
    }
  }
  return NULL;
}

/* llama.cpp's name of a byte-level pre-tokenizer, from its split regex */
static const char *bpe_pre_name(const cJSON *pre) {
  const cJSON *split = find_component(pre, "Split");
  if (!split) {
    const cJSON *bl = find_component(pre, "ByteLevel");
    return bl ? "gpt-2" : NULL; /* ByteLevel alone: GPT-2's regex (or no split: bytes only) */
  }
  const cJSON *re = jget(jget(split, "pattern"), "Regex");
  if (!cJSON_IsString(re)) return NULL;
  const char *r = re->valuestring;
  if (strstr(r, "\\p{N}{1,3}") && strstr(r, "(?i:'s|'t|'re|'ve|'m|'ll|'d)")) return "llama-bpe";
  if (strstr(r, "\\p{N}| ?[^\\s\\p{L}\\p{N}]+") && strstr(r, "(?i:'s|'t|'re|'ve|'m|'ll|'d)")) return "qwen2";
  return NULL;
}

/* Text of a token field of tokenizer_config.json: "<bos>" or {"content": "<bos>"} */
static char *read_text(const char *path) {
  char *t = NULL;
  size_t n;
  if (!tn_file_exists(path) || tn_read_file(path, &t, &n) != TN_OK) { tn_error_clear(); return NULL; }
  return t;
}

static char *chat_template(const char *dir) {
  char *p = tn_path_join(dir, "tokenizer_config.json"), *t = read_text(p), *out = NULL;
  free(p);
  cJSON *j = t ? cJSON_Parse(t) : NULL;
  free(t);
  const cJSON *ct = jget(j, "chat_template");
  if (cJSON_IsString(ct)) out = tn_strdup(ct->valuestring);
  else if (cJSON_IsArray(ct)) { /* [{"name": "default", "template": ...}, ...] */
    const cJSON *it;
    cJSON_ArrayForEach(it, ct) {
      const cJSON *nm = jget(it, "name"), *tp = jget(it, "template");
      if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default") && cJSON_IsString(tp)) out = tn_strdup(tp->valuestring);
    }
  }
  cJSON_Delete(j);
  if (!out) {
    p = tn_path_join(dir, "chat_template.jinja");
    out = read_text(p);
    free(p);
  }
  return out;
}

static bool is_byte_token(const char *s) {
  return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' && strchr("0123456789ABCDEF", s[3]) &&
         strchr("0123456789ABCDEF", s[4]);
}

static char **sort_tok; /* qsort's context: the token texts */
static int by_text(const void *a, const void *b) { return strcmp(sort_tok[*(const int *)a], sort_tok[*(const int *)b]); }

/* SentencePiece-style vocabularies: the token types (byte, unknown) and the scores that make
 * llama.cpp's tokenizer merge as BPE does (MTEXT: the N_MERGES merges as "a b") */
static tn_status spm_scores(const cJSON *model, char **tok, int32_t *type, float *score, int V, char **mtext,
                            int n_merges) {
  tn_status s = TN_OK;
  /* llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined piece has the
   * highest score: -rank of the merge that makes the piece reproduces the BPE order */
  const cJSON *unk = jget(model, "unk_token");
  for (int i = 0; i < V; i++) {
    score[i] = -1e9f;
    if (type[i] == TT_NORMAL && is_byte_token(tok[i])) type[i] = TT_BYTE;
    if (cJSON_IsString(unk) && type[i] != TT_UNUSED && !strcmp(tok[i], unk->valuestring)) type[i] = TT_UNKNOWN;
  }
  /* vocabulary sorted by text, for looking up each merge's joined piece */
  int *order = malloc(sizeof(int) * V);
  if (!order) s = tn_error(TN_ERR_NOMEM, "out of memory");
  int nv = 0;
  for (int i = 0; order && i < V; i++)
    if (type[i] != TT_UNUSED) order[nv++] = i;
  sort_tok = tok;
  if (order) qsort(order, nv, sizeof *order, by_text);
  for (int i = n_merges - 1; s == TN_OK && i >= 0; i--) {
    char *sp = strchr(mtext[i], ' ');
    if (!sp) continue;
    size_t la = (size_t)(sp - mtext[i]);
    char *joined = malloc(strlen(mtext[i]));
    if (!joined) { s = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
    memcpy(joined, mtext[i], la);
    strcpy(joined + la, sp + 1);
    int lo = 0, hi = nv;
    while (lo < hi) {
      const int mid = (lo + hi) / 2;
      if (strcmp(tok[order[mid]], joined) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo < nv && !strcmp(tok[order[lo]], joined)) score[order[lo]] = (float)-i;
    free(joined);
  }
  free(order);
  return s;
}

static tn_status tokenizer_kvs(kvs *k, const tn_model *m, const char *dir, const tn_gguf_opts *o) {
  const int V = m->cfg.V;
  char *path = tn_path_join(dir, "tokenizer.json"), *text = read_text(path);
  if (!text) {
    tn_status s = tn_error(TN_ERR_IO, "%s is missing: the GGUF file needs the tokenizer", path);
    free(path);
    return s;
  }
  cJSON *j = cJSON_Parse(text);
  free(text);
  tn_status s = TN_OK;
  const cJSON *model = jget(j, "model"), *vocab = jget(model, "vocab"), *merges = jget(model, "merges");
  const cJSON *mtype = jget(model, "type");
  char **tok = calloc(V, sizeof *tok);
  int32_t *type = calloc(V, sizeof *type);
  float *score = calloc(V, sizeof *score);
  if (!tok || !type || !score) s = tn_error(TN_ERR_NOMEM, "out of memory");
  else if (!cJSON_IsObject(j)) s = tn_error(TN_ERR_FORMAT, "%s: not a JSON object", path);
  else if (!cJSON_IsString(mtype) || strcmp(mtype->valuestring, "BPE") || !cJSON_IsObject(vocab))
    s = tn_error(TN_ERR_UNSUPPORTED, "%s: model.type must be \"BPE\" with a vocab object", path);
  const cJSON *it;
  if (s == TN_OK) cJSON_ArrayForEach(it, vocab) {
    const int id = cJSON_IsNumber(it) ? it->valueint : -1;
    if (id < 0 || id >= V) {
      s = tn_error(TN_ERR_FORMAT, "%s: model.vocab['%s'] = %d is outside the model's vocabulary (config.json vocab_size %d)",
                   path, it->string, id, V);
      break;
    }
    tok[id] = it->string;
    type[id] = TT_NORMAL;
  }
  if (s == TN_OK) cJSON_ArrayForEach(it, jget(j, "added_tokens")) {
    const cJSON *id = jget(it, "id"), *c = jget(it, "content");
    if (!cJSON_IsNumber(id) || !cJSON_IsString(c) || id->valueint < 0 || id->valueint >= V) {
      s = tn_error(TN_ERR_FORMAT, "%s: added_tokens entry without a valid id (< %d) and content", path, V);
      break;
    }
    tok[id->valueint] = c->valuestring;
    type[id->valueint] = cJSON_IsTrue(jget(it, "special")) ? TT_CONTROL : TT_USER;
  }
  /* SentencePiece-style (Gemma: byte fallback, spaces as U+2581) or byte-level BPE (GPT-2 style) */
  const cJSON *pre = jget(j, "pre_tokenizer"), *norm = jget(j, "normalizer");
  const bool spm = cJSON_IsTrue(jget(model, "byte_fallback"));
  const char *pre_name = spm ? "default" : bpe_pre_name(pre);
  if (s == TN_OK && !pre_name)
    s = tn_error(TN_ERR_UNSUPPORTED, "%s: pre_tokenizer is neither ByteLevel nor the Llama-3 / Qwen2 split: "
                 "llama.cpp has no pre-tokenizer known to match it", path);
  int n_merges = cJSON_GetArraySize(merges);
  char **mtext = s == TN_OK && n_merges ? calloc(n_merges, sizeof *mtext) : NULL;
  if (s == TN_OK && n_merges && !mtext) s = tn_error(TN_ERR_NOMEM, "out of memory");
  int r = 0;
  if (s == TN_OK) cJSON_ArrayForEach(it, merges) { /* "a b" or ["a", "b"] */
    if (cJSON_IsString(it)) mtext[r] = tn_strdup(it->valuestring);
    else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
             cJSON_IsString(it->child->next)) {
      const char *a = it->child->valuestring, *b = it->child->next->valuestring;
      mtext[r] = malloc(strlen(a) + strlen(b) + 2);
      if (mtext[r]) sprintf(mtext[r], "%s %s", a, b);
    } else {
      s = tn_error(TN_ERR_FORMAT, "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", path, r);
      break;
    }
    if (!mtext[r]) { s = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
    r++;
  }
  char **pads = calloc(V, sizeof *pads);
  if (s == TN_OK && !pads) s = tn_error(TN_ERR_NOMEM, "out of memory");
  for (int i = 0; s == TN_OK && i < V; i++)
    if (!tok[i]) { /* ids the tokenizer never produces (the model's padded vocabulary) */
      char b[32];
      snprintf(b, sizeof b, "[PAD%d]", i);
      tok[i] = pads[i] = tn_strdup(b);
      type[i] = TT_UNUSED;
    }
  if (s == TN_OK && spm) s = spm_scores(model, tok, type, score, V, mtext, n_merges);
  if (s == TN_OK) {
    kv_str(k, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
    kv_str(k, "tokenizer.ggml.pre", pre_name);
    kv_arr(k, "tokenizer.ggml.tokens", G_STR, V);
    for (int i = 0; i < V; i++) gstr(&k->b, tok[i]);
    kv_arr(k, "tokenizer.ggml.token_type", G_I32, V);
    gput(&k->b, type, 4 * (size_t)V);
    if (spm) {
      kv_arr(k, "tokenizer.ggml.scores", G_F32, V);
      gput(&k->b, score, 4 * (size_t)V);
      /* a leading U+2581 only when the normalizer prepends one (Gemma's does not) */
      const cJSON *pp = find_component(norm, "Prepend"), *ms = find_component(pre, "Metaspace");
      const cJSON *sch = jget(ms, "prepend_scheme");
      kv_bool(k, "tokenizer.ggml.add_space_prefix",
              pp != NULL || (ms && !(cJSON_IsString(sch) && !strcmp(sch->valuestring, "never"))));
    } else {
      kv_arr(k, "tokenizer.ggml.merges", G_STR, (uint64_t)r);
      for (int i = 0; i < r; i++) gstr(&k->b, mtext[i]);
    }
    const tn_config *c = &m->cfg;
    if (c->bos_id >= 0 && c->bos_id < V) kv_u32(k, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id);
    if (c->n_eos > 0 && c->eos_ids[0] >= 0 && c->eos_ids[0] < V)
      kv_u32(k, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_ids[0]);
    if (c->n_eos > 1 && c->eos_ids[1] >= 0 && c->eos_ids[1] < V)
      kv_u32(k, "tokenizer.ggml.eot_token_id", (uint32_t)c->eos_ids[1]);
    if (c->pad_id >= 0 && c->pad_id < V) kv_u32(k, "tokenizer.ggml.padding_token_id", (uint32_t)c->pad_id);
    for (int i = 0; spm && i < V; i++)
      if (type[i] == TT_UNKNOWN) { kv_u32(k, "tokenizer.ggml.unknown_token_id", (uint32_t)i); break; }
    if (o->add_bos >= 0) kv_bool(k, "tokenizer.ggml.add_bos_token", o->add_bos == 1);
    kv_bool(k, "tokenizer.ggml.add_eos_token", false);
    char *tpl = chat_template(dir);
    if (tpl) kv_str(k, "tokenizer.chat_template", tpl);
    free(tpl);
  }
  for (int i = 0; mtext && i < r; i++) free(mtext[i]);
  free(mtext);
  for (int i = 0; pads && i < V; i++) free(pads[i]);
  free(pads);
  free(tok);
  free(type);
  free(score);
  cJSON_Delete(j);
  free(path);
  return s;
}

/* ---- tensors ---- */
typedef struct {
  char name[64];
  const float *data;      /* HF layout (rows, cols) */
  int64_t rows, cols;     /* 1-D: rows == 1 */
  int gtype;
  bool plus_one;          /* gemma norms: 1 + w */
  int permute_heads;      /* llama q/k: reorder rows per head for interleaved RoPE (0: no) */
  uint64_t offset, nbytes;
} gtensor;

typedef struct {
  gtensor *t;
  int n, cap;
  tn_gguf_type type;
} tlist;

static tn_status add_t(tlist *l, const char *name, const float *data, int64_t rows, int64_t cols) {
  if (!data) return TN_OK;
  if (l->n == l->cap) {
    int c = l->cap ? l->cap * 2 : 64;
    gtensor *q = realloc(l->t, sizeof *q * c);
    if (!q) return tn_error(TN_ERR_NOMEM, "out of memory");
    l->t = q;
    l->cap = c;
  }
  gtensor *t = &l->t[l->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->data = data;
  t->rows = rows;
  t->cols = cols;
  const bool mat = rows > 1;
  t->gtype = GT_F32;
  if (mat && l->type == TN_GGUF_BF16) t->gtype = GT_BF16;
  if (mat && l->type == TN_GGUF_Q8_0 && cols % 32 == 0) t->gtype = GT_Q8_0;
  if (mat && l->type == TN_GGUF_Q4_0 && cols % 32 == 0) t->gtype = GT_Q4_0;
  const uint64_t n = (uint64_t)rows * cols;
  t->nbytes = t->gtype == GT_F32 ? 4 * n : t->gtype == GT_BF16 ? 2 * n : t->gtype == GT_Q8_0 ? n / 32 * 34 : n / 32 * 18;
  return TN_OK;
}

static tn_status add_blk(tlist *l, int b, const char *what, const float *data, int64_t rows, int64_t cols) {
  char nm[64];
  snprintf(nm, sizeof nm, "blk.%d.%s", b, what);
  return add_t(l, nm, data, rows, cols);
}

/* buffers computed here (permuted llama q/k biases), freed at the end */
typedef struct { float **p; int n; } owned;
/* A (heads*D) bias with each head's halves interleaved like llama's q/k rows (or src itself). */
static const float *permuted(owned *o, const float *src, int heads, int D, bool llama, tn_status *s) {
  if (!src || !llama) return src;
  float **q = realloc(o->p, sizeof *q * (o->n + 1));
  float *pb = q ? malloc(sizeof(float) * heads * D) : NULL;
  if (q) o->p = q;
  if (!pb) { *s = tn_error(TN_ERR_NOMEM, "out of memory"); return NULL; }
  for (int r = 0; r < heads * D; r++) pb[r] = src[(r / D) * D + (r % D & 1) * (D / 2) + ((r % D) >> 1)];
  o->p[o->n++] = pb;
  return pb;
}

static const char *arch_name(tn_arch a) {
  return a == TN_ARCH_LLAMA ? "llama" : a == TN_ARCH_QWEN2 ? "qwen2" : a == TN_ARCH_QWEN3 ? "qwen3" : "gemma3";
}

/* What llama.cpp computes for this architecture must be what the config says. */
static tn_status check_config(const tn_config *c, const char *dir) {
  if (c->attn_softcap != 0)
    return tn_error(TN_ERR_UNSUPPORTED, "%s/config.json: attn_logit_softcapping is set: llama.cpp's %s does not apply it",
                    dir, arch_name(c->arch));
  if (c->arch == TN_ARCH_GEMMA3) {
    if (fabsf(c->attn_scale * sqrtf((float)c->D) - 1.0f) > 1e-6f)
      return tn_error(TN_ERR_UNSUPPORTED, "%s/config.json: query_pre_attn_scalar differs from head_dim %d: llama.cpp's "
                      "gemma3 scales attention by 1/sqrt(head_dim)", dir, c->D);
    for (int l = 0; l < c->L; l++)
      if (c->window == 0 || c->layer_local[l] != (l % 6 < 5))
        return tn_error(TN_ERR_UNSUPPORTED, "%s/config.json: layer_types: llama.cpp's gemma3 makes every 6th layer "
                        "global and the others sliding (layer %d differs)", dir, l);
    if (c->rope_local.type != TN_ROPE_DEFAULT || c->rope_local.theta != 10000.0f)
      return tn_error(TN_ERR_UNSUPPORTED, "%s/config.json: rope_local_base_freq must be 10000 (llama.cpp's gemma3)", dir);
    if (fabsf(c->embed_scale - sqrtf((float)c->C)) > 1e-3f * sqrtf((float)c->C))
      return tn_error(TN_ERR_UNSUPPORTED, "%s/config.json: embedding scale is not sqrt(hidden_size)", dir);
  } else if (c->window != 0) {
    return tn_error(TN_ERR_UNSUPPORTED, "%s/config.json: sliding-window attention is on: llama.cpp's %s does not apply it",
                    dir, arch_name(c->arch));
  }
  if (c->rope.type == TN_ROPE_LLAMA3 && c->arch != TN_ARCH_LLAMA)
    return tn_error(TN_ERR_UNSUPPORTED, "%s/config.json: llama3 rope_scaling is exported for llama only", dir);
  return TN_OK;
}

static void put_rows(float *dst, const gtensor *t, int64_t r0, int64_t nr) {
  for (int64_t r = r0; r < r0 + nr; r++) {
    int64_t src = r;
    if (t->permute_heads) { /* new row h*D + 2i + j holds old row h*D + j*D/2 + i */
      const int64_t D = t->rows / t->permute_heads, h = r / D, w = r % D;
      src = h * D + (w & 1) * (D / 2) + (w >> 1);
    }
    const float *s = t->data + src * t->cols;
    float *d = dst + (r - r0) * t->cols;
    for (int64_t c = 0; c < t->cols; c++) d[c] = t->plus_one ? 1.0f + s[c] : s[c];
  }
}

typedef struct { gbuf *hdr; tlist *l; } wctx;

static tn_status write_all(FILE *f, void *p) {
  wctx *w = p;
  if (fwrite(w->hdr->p, 1, w->hdr->n, f) != w->hdr->n) return tn_error(TN_ERR_IO, "write failed");
  static const uint8_t zero[ALIGN] = {0};
  size_t at = w->hdr->n;
  const size_t pad0 = (ALIGN - at % ALIGN) % ALIGN;
  if (fwrite(zero, 1, pad0, f) != pad0) return tn_error(TN_ERR_IO, "write failed");
  at += pad0;
  const size_t chunk_rows = 256;
  for (int i = 0; i < w->l->n; i++) {
    const gtensor *t = &w->l->t[i];
    const size_t cr = t->rows < (int64_t)chunk_rows ? (size_t)t->rows : chunk_rows;
    float *rows = malloc(sizeof(float) * cr * t->cols);
    uint8_t *out = malloc(sizeof(float) * cr * t->cols);
    if (!rows || !out) { free(rows); free(out); return tn_error(TN_ERR_NOMEM, "out of memory"); }
    tn_status s = TN_OK;
    for (int64_t r0 = 0; r0 < t->rows && s == TN_OK; r0 += (int64_t)cr) {
      const int64_t nr = t->rows - r0 < (int64_t)cr ? t->rows - r0 : (int64_t)cr, n = nr * t->cols;
      put_rows(rows, t, r0, nr);
      size_t nb;
      if (t->gtype == GT_F32) { memcpy(out, rows, 4 * n); nb = 4 * n; }
      else if (t->gtype == GT_BF16) { tn_bf16_from_f32((uint16_t *)out, rows, n); nb = 2 * n; }
      else if (t->gtype == GT_Q8_0) { tn_quantize_q8_0(rows, out, n); nb = n / 32 * 34; }
      else { tn_quantize_q4_0(rows, out, n); nb = n / 32 * 18; }
      if (fwrite(out, 1, nb, f) != nb) s = tn_error(TN_ERR_IO, "write failed");
    }
    free(rows);
    free(out);
    TN_TRY(s);
    const size_t pad = (ALIGN - t->nbytes % ALIGN) % ALIGN;
    if (fwrite(zero, 1, pad, f) != pad) return tn_error(TN_ERR_IO, "write failed");
  }
  return TN_OK;
}

tn_status tn_gguf_export(const tn_model *m, const char *tok_dir, const char *path, const tn_gguf_opts *o) {
  const tn_config *c = &m->cfg;
  const tn_weights *w = &m->w;
  for (int i = 0; i < m->n_params; i++)
    if ((m->params[i].mat && m->params[i].mat->dtype != TN_F32) || m->params[i].in_qbuf || !*m->params[i].ptr)
      return tn_error(TN_ERR_ARG, "gguf export needs f32 weights (tn_model_to_f32): '%s'", m->params[i].name);
  TN_TRY(check_config(c, m->dir ? m->dir : "model"));
  const char *arch = arch_name(c->arch);
  const bool gemma = c->arch == TN_ARCH_GEMMA3;
  tlist l = {.type = o->type};
  owned own = {0};
  tn_status s = add_t(&l, "token_embd.weight", w->embed, c->V, c->C);
  float *freqs = NULL;
  if (s == TN_OK && c->rope.type == TN_ROPE_LLAMA3) { /* llama.cpp divides its frequencies by rope_freqs */
    const int half = c->D / 2;
    freqs = malloc(sizeof(float) * 2 * half);
    if (!freqs) s = tn_error(TN_ERR_NOMEM, "out of memory");
    else {
      tn_rope_cfg plain = c->rope;
      plain.type = TN_ROPE_DEFAULT;
      tn_rope_inv_freq(freqs, &plain, c->D);
      tn_rope_inv_freq(freqs + half, &c->rope, c->D);
      for (int i = 0; i < half; i++) freqs[i] = freqs[i] / freqs[half + i];
      s = add_t(&l, "rope_freqs.weight", freqs, 1, half);
    }
  }
  for (int b = 0; b < c->L && s == TN_OK; b++) {
    const tn_layer *y = &w->layers[b];
    const int QD = c->H * c->D, KD = c->KV * c->D;
    const int first = l.n;
    const bool llama = c->arch == TN_ARCH_LLAMA;
    s = add_blk(&l, b, "attn_norm.weight", y->attn_norm, 1, c->C);
    if (s == TN_OK) s = add_blk(&l, b, "attn_q.weight", y->wq.w, QD, c->C);
    if (s == TN_OK && c->arch == TN_ARCH_LLAMA) l.t[l.n - 1].permute_heads = c->H;
    if (s == TN_OK) s = add_blk(&l, b, "attn_k.weight", y->wk.w, KD, c->C);
    if (s == TN_OK && c->arch == TN_ARCH_LLAMA) l.t[l.n - 1].permute_heads = c->KV;
    if (s == TN_OK) s = add_blk(&l, b, "attn_v.weight", y->wv.w, KD, c->C);
    if (s == TN_OK) s = add_blk(&l, b, "attn_output.weight", y->wo.w, c->C, QD);
    if (s == TN_OK) s = add_blk(&l, b, "attn_q.bias", permuted(&own, y->bq, c->H, c->D, llama, &s), 1, QD);
    if (s == TN_OK) s = add_blk(&l, b, "attn_k.bias", permuted(&own, y->bk, c->KV, c->D, llama, &s), 1, KD);
    if (s == TN_OK) s = add_blk(&l, b, "attn_v.bias", y->bv, 1, KD);
    if (s == TN_OK) s = add_blk(&l, b, "attn_output.bias", y->bo, 1, c->C);
    if (s == TN_OK) s = add_blk(&l, b, "attn_q_norm.weight", y->q_norm, 1, c->D);
    if (s == TN_OK) s = add_blk(&l, b, "attn_k_norm.weight", y->k_norm, 1, c->D);
    if (s == TN_OK) s = add_blk(&l, b, "post_attention_norm.weight", y->attn_post_norm, 1, c->C);
    if (s == TN_OK) s = add_blk(&l, b, "ffn_norm.weight", y->mlp_norm, 1, c->C);
    if (s == TN_OK) s = add_blk(&l, b, "ffn_gate.weight", y->gate.w, c->F, c->C);
    if (s == TN_OK) s = add_blk(&l, b, "ffn_up.weight", y->up.w, c->F, c->C);
    if (s == TN_OK) s = add_blk(&l, b, "ffn_down.weight", y->down.w, c->C, c->F);
    if (s == TN_OK) s = add_blk(&l, b, "ffn_gate.bias", y->bgate, 1, c->F);
    if (s == TN_OK) s = add_blk(&l, b, "ffn_up.bias", y->bup, 1, c->F);
    if (s == TN_OK) s = add_blk(&l, b, "ffn_down.bias", y->bdown, 1, c->C);
    if (s == TN_OK) s = add_blk(&l, b, "post_ffw_norm.weight", y->mlp_post_norm, 1, c->C);
    for (int i = first; s == TN_OK && i < l.n; i++)
      if (gemma && strstr(l.t[i].name, "norm.weight")) l.t[i].plus_one = true;
  }
  if (s == TN_OK) s = add_t(&l, "output_norm.weight", w->final_norm, 1, c->C);
  if (s == TN_OK && gemma) l.t[l.n - 1].plus_one = true;
  if (s == TN_OK && !c->tied) s = add_t(&l, "output.weight", w->head.w, c->V, c->C);
  /* header: key/values */
  kvs k = {0};
  char kb[96];
  if (s == TN_OK) {
    kv_str(&k, "general.architecture", arch);
    if (o->name) kv_str(&k, "general.name", o->name);
    static const uint32_t ftype[] = {0, 32, 7, 2}; /* ALL_F32, MOSTLY_BF16, MOSTLY_Q8_0, MOSTLY_Q4_0 */
    kv_u32(&k, "general.file_type", ftype[o->type]);
    kv_u32(&k, "general.quantization_version", 2);
    kv_u32(&k, "general.alignment", ALIGN);
#define AKEY(f) (kv_archf(&k, arch, f, kb, sizeof kb), kb)
    kv_u32(&k, AKEY("vocab_size"), (uint32_t)c->V);
    kv_u32(&k, AKEY("context_length"), (uint32_t)c->max_pos);
    kv_u32(&k, AKEY("embedding_length"), (uint32_t)c->C);
    kv_u32(&k, AKEY("block_count"), (uint32_t)c->L);
    kv_u32(&k, AKEY("feed_forward_length"), (uint32_t)c->F);
    kv_u32(&k, AKEY("attention.head_count"), (uint32_t)c->H);
    kv_u32(&k, AKEY("attention.head_count_kv"), (uint32_t)c->KV);
    kv_u32(&k, AKEY("attention.key_length"), (uint32_t)c->D);
    kv_u32(&k, AKEY("attention.value_length"), (uint32_t)c->D);
    kv_f32(&k, AKEY("attention.layer_norm_rms_epsilon"), c->eps);
    kv_u32(&k, AKEY("rope.dimension_count"), (uint32_t)c->D);
    kv_f32(&k, AKEY("rope.freq_base"), c->rope.theta);
    if (c->rope.type == TN_ROPE_LINEAR) {
      kv_str(&k, AKEY("rope.scaling.type"), "linear");
      kv_f32(&k, AKEY("rope.scaling.factor"), c->rope.factor);
    }
    if (gemma) {
      kv_u32(&k, AKEY("attention.sliding_window"), (uint32_t)c->window);
      if (c->final_softcap != 0) kv_f32(&k, AKEY("final_logit_softcapping"), c->final_softcap);
    }
#undef AKEY
    s = tokenizer_kvs(&k, m, tok_dir, o);
  }
  gbuf hdr = {0};
  if (s == TN_OK) {
    gput(&hdr, "GGUF", 4);
    gu32(&hdr, 3);
    gu64(&hdr, (uint64_t)l.n);
    gu64(&hdr, k.n_kv);
    gput(&hdr, k.b.p, k.b.n);
    uint64_t off = 0;
    for (int i = 0; i < l.n; i++) {
      gtensor *t = &l.t[i];
      gstr(&hdr, t->name);
      const bool one = t->rows == 1;
      gu32(&hdr, one ? 1 : 2);
      gu64(&hdr, (uint64_t)t->cols);
      if (!one) gu64(&hdr, (uint64_t)t->rows);
      gu32(&hdr, (uint32_t)t->gtype);
      gu64(&hdr, off);
      t->offset = off;
      off += (t->nbytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    if (k.b.oom || hdr.oom) s = tn_error(TN_ERR_NOMEM, "out of memory");
  }
  if (s == TN_OK) {
    wctx wc = {&hdr, &l};
    s = tn_write_atomic_cb(path, write_all, &wc);
  }
  for (int i = 0; i < own.n; i++) free(own.p[i]);
  free(own.p);
  free(freqs);
  free(hdr.p);
  free(k.b.p);
  free(l.t);
  return s;
}
