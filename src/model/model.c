/* model.c - the parameter table (HF tensor names <-> decoder weights), loading a
 * checkpoint directory into one flat f32 buffer, and saving it back.
 * Not for: the forward pass (decoder.c) or random init (init.c). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <string.h>
#include "base/json.h"
#include "model/model.h"

static void add(tn_weight_entry *p, int *n, const char *name, int64_t d0, int64_t d1, float **ptr, bool norm, bool bias) {
  tn_weight_entry *e = &p[(*n)++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  e->ndim = d1 > 0 ? 2 : 1;
  e->shape[0] = d0;
  e->shape[1] = d1 > 0 ? d1 : 0;
  e->numel = (size_t)d0 * (d1 > 0 ? (size_t)d1 : 1);
  e->ptr = ptr;
  e->is_norm = norm;
  e->is_bias = bias;
}

tn_status tn_weight_table(const tn_config *c, tn_weights *w, tn_weight_entry **out, int *n) {
  const int C = c->C, HD = c->H * c->D, KD = c->KV * c->D, F = c->F;
  tn_weight_entry *p = calloc((size_t)c->L * 24 + 4, sizeof *p);
  if (!p) return tn_error(TN_ERR_NOMEM, "out of memory (parameter table)");
  int k = 0;
  char nm[112];
  add(p, &k, "model.embed_tokens.weight", c->V, C, &w->embed, false, false);
  for (int l = 0; l < c->L; l++) {
    tn_layer *y = &w->layers[l];
    y->wq.out = HD, y->wq.in = C;     /* dims only: data pointers are left alone */
    y->wk.out = KD, y->wk.in = C;
    y->wv.out = KD, y->wv.in = C;
    y->wo.out = C, y->wo.in = HD;
    y->gate.out = F, y->gate.in = C;
    y->up.out = F, y->up.in = C;
    y->down.out = C, y->down.in = F;
#define P(suffix, d0, d1, ptr, norm, bias)                                   \
  do {                                                                     \
    snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);              \
    add(p, &k, nm, d0, d1, ptr, norm, bias);                               \
  } while (0)
    P("input_layernorm.weight", C, 0, &y->attn_norm, true, false);
    if (c->sandwich_norms) {
      P("post_attention_layernorm.weight", C, 0, &y->attn_post_norm, true, false);
      P("pre_feedforward_layernorm.weight", C, 0, &y->mlp_norm, true, false);
      P("post_feedforward_layernorm.weight", C, 0, &y->mlp_post_norm, true, false);
    } else {
      P("post_attention_layernorm.weight", C, 0, &y->mlp_norm, true, false);
    }
    P("self_attn.q_proj.weight", HD, C, &y->wq.w, false, false);
    p[k - 1].mat = &y->wq;
    if (c->qkv_bias) P("self_attn.q_proj.bias", HD, 0, &y->bq, false, true);
    P("self_attn.k_proj.weight", KD, C, &y->wk.w, false, false);
    p[k - 1].mat = &y->wk;
    if (c->qkv_bias) P("self_attn.k_proj.bias", KD, 0, &y->bk, false, true);
    P("self_attn.v_proj.weight", KD, C, &y->wv.w, false, false);
    p[k - 1].mat = &y->wv;
    if (c->qkv_bias) P("self_attn.v_proj.bias", KD, 0, &y->bv, false, true);
    P("self_attn.o_proj.weight", C, HD, &y->wo.w, false, false);
    p[k - 1].mat = &y->wo;
    if (c->o_bias) P("self_attn.o_proj.bias", C, 0, &y->bo, false, true);
    if (c->qk_norm) {
      P("self_attn.q_norm.weight", c->D, 0, &y->q_norm, true, false);
      P("self_attn.k_norm.weight", c->D, 0, &y->k_norm, true, false);
    }
    P("mlp.gate_proj.weight", F, C, &y->gate.w, false, false);
    p[k - 1].mat = &y->gate;
    if (c->mlp_bias) P("mlp.gate_proj.bias", F, 0, &y->bgate, false, true);
    P("mlp.up_proj.weight", F, C, &y->up.w, false, false);
    p[k - 1].mat = &y->up;
    if (c->mlp_bias) P("mlp.up_proj.bias", F, 0, &y->bup, false, true);
    P("mlp.down_proj.weight", C, F, &y->down.w, false, false);
    p[k - 1].mat = &y->down;
    if (c->mlp_bias) P("mlp.down_proj.bias", C, 0, &y->bdown, false, true);
#undef P
  }
  add(p, &k, "model.norm.weight", C, 0, &w->final_norm, true, false);
  w->head.out = c->V, w->head.in = C;
  if (!c->tied) add(p, &k, "lm_head.weight", c->V, C, &w->head.w, false, false);
  *out = p;
  *n = k;
  return TN_OK;
}

/* Point every f32 table entry into one flat buffer; returns the float count. */
static size_t carve(tn_weight_entry *p, int n, float *base) {
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    if (p[i].in_qbuf || (p[i].mat && p[i].mat->dtype != TN_F32)) continue; /* stored in tn_model.qbuf */
    if (base) *p[i].ptr = base + off;
    off += (p[i].numel + 15) & ~(size_t)15;  /* 64-byte aligned tensors */
  }
  return off;
}

/* The file's pages of tensor t are not needed again: drop them from this process so the
 * peak resident size is the converted weights, not the weights twice. */
static void drop_pages(const tn_st_tensor *t) {
  const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)t->data & ~(pg - 1);
  madvise((void *)a, (uintptr_t)t->data + t->nbytes - a, MADV_DONTNEED);
}

static tn_status convert(float *dst, const tn_st_tensor *t) {
  const unsigned char *src = t->data;
  switch (t->dtype) {
  case TN_ST_F32: memcpy(dst, src, t->numel * 4); break;
  case TN_ST_BF16:
    for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, src + 2 * i, 2); dst[i] = tn_bf16_to_f32(h); }
    break;
  case TN_ST_F16:
    for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, src + 2 * i, 2); dst[i] = tn_f16_to_f32(h); }
    break;
  default:
    return tn_error(TN_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (tunic reads F32, BF16, F16)", t->file, t->name,
                    tn_st_dtype_name(t->dtype));
  }
  drop_pages(t);
  return TN_OK;
}

/* NaN or Inf in a checkpoint is corruption (training would only spread it and inference
 * would mask it): refused at load, naming the file, the tensor and the first bad element. */
static tn_status check_finite(const tn_st_tensor *t) {
  const unsigned char *src = t->data;
  size_t bad = SIZE_MAX;
  if (t->dtype == TN_ST_F32) {
    for (size_t i = 0; i < t->numel && bad == SIZE_MAX; i++) {
      uint32_t u;
      memcpy(&u, src + 4 * i, 4);
      if ((u & 0x7f800000u) == 0x7f800000u) bad = i;
    }
  } else if (t->dtype == TN_ST_BF16 || t->dtype == TN_ST_F16) {
    const uint16_t mask = t->dtype == TN_ST_BF16 ? 0x7f80 : 0x7c00;
    for (size_t i = 0; i < t->numel && bad == SIZE_MAX; i++) {
      uint16_t h;
      memcpy(&h, src + 2 * i, 2);
      if ((h & mask) == mask) bad = i;
    }
  }
  if (bad == SIZE_MAX) return TN_OK;
  return tn_error(TN_ERR_FORMAT, "%s: tensor '%s' holds a non-finite value (NaN or Inf) at element %zu: the checkpoint "
                  "is corrupt", t->file, t->name, bad);
}

static void tie_head(tn_model *m) {
  if (!m->cfg.tied) return;
  m->w.head.w = m->w.embed;
  m->w.head.dtype = m->w.embed_bf16 ? TN_BF16 : TN_F32;
  m->w.head.q = m->w.embed_bf16;
}

tn_status tn_model_alloc(tn_model **out, const tn_config *cfg) {
  tn_model *m = calloc(1, sizeof *m);
  if (!m) return tn_error(TN_ERR_NOMEM, "out of memory");
  m->cfg = *cfg;
  m->w.layers = calloc(cfg->L, sizeof(tn_layer));
  tn_status s = tn_weight_table(&m->cfg, &m->w, &m->params, &m->n_params);
  if (s != TN_OK) { free(m->w.layers); free(m); return s; }
  m->n_floats = carve(m->params, m->n_params, NULL);
  m->owned = tn_alloc(m->n_floats * sizeof(float));
  if (!m->owned) { free(m->params); free(m->w.layers); free(m); return TN_ERR_NOMEM; }
  carve(m->params, m->n_params, m->owned);
  tie_head(m);
  *out = m;
  return TN_OK;
}

static tn_status shape_error(const tn_st_tensor *t, const tn_weight_entry *p) {
  char got[96] = "", want[64];
  for (int d = 0; d < t->ndim; d++) {
    size_t l = strlen(got);
    snprintf(got + l, sizeof got - l, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
  }
  if (p->ndim == 1) snprintf(want, sizeof want, "%lld", (long long)p->shape[0]);
  else snprintf(want, sizeof want, "%lld, %lld", (long long)p->shape[0], (long long)p->shape[1]);
  return tn_error(TN_ERR_FORMAT, "%s: tensor '%s' has shape [%s] but config.json implies [%s]", t->file, p->name, got,
                  want);
}

tn_status tn_model_load(tn_model **out, const char *dir) { return tn_model_load_opts(out, dir, NULL); }

void tn_load_opts_default(tn_load_opts *o) {
  o->base_dtype = TN_DTYPE_AUTO;
  o->nf4_blocksize = 64;
  o->nf4_double_quant = true;
  o->head_dtype = TN_DTYPE_AUTO;
}

tn_status tn_parse_base_dtype(const char *s, int *out) {
  if (!strcmp(s, "f32")) *out = TN_F32;
  else if (!strcmp(s, "bf16")) *out = TN_BF16;
  else if (!strcmp(s, "nf4")) *out = TN_NF4;
  else if (!strcmp(s, "auto")) *out = TN_DTYPE_AUTO;
  else return tn_error(TN_ERR_ARG, "--base-dtype '%s': expected f32, bf16, nf4 or auto", s);
  return TN_OK;
}

tn_status tn_parse_head_dtype(const char *s, int *out) {
  if (!strcmp(s, "f32")) *out = TN_F32;
  else if (!strcmp(s, "bf16")) *out = TN_BF16;
  else if (!strcmp(s, "auto")) *out = TN_DTYPE_AUTO;
  else return tn_error(TN_ERR_ARG, "--head-dtype '%s': expected f32, bf16 or auto", s);
  return TN_OK;
}

/* ---- bitsandbytes 4-bit checkpoints ----
 * config.json "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": true,
 * "bnb_4bit_quant_type": "nf4", ...}. A quantised Linear's weight W is saved as
 * W (U8, ((n+1)/2, 1): packed codes), W.absmax (F32 (nblocks), or U8 when nested),
 * W.quant_map (F32 16), W.nested_absmax (F32), W.nested_quant_map (F32 256) and
 * W.quant_state.bitsandbytes__nf4 (U8: UTF-8 JSON {"quant_type", "blocksize", "dtype",
 * "shape", and when nested "nested_blocksize", "nested_dtype", "nested_offset"}). */
static tn_status bnb_config(const char *dir, bool *is_bnb, tn_dtype *compute) {
  *is_bnb = false;
  *compute = TN_F32;
  char *path = tn_path_join(dir, "config.json"), *text = NULL;
  size_t len;
  tn_status s = tn_read_file(path, &text, &len);
  cJSON *root = s == TN_OK ? cJSON_Parse(text) : NULL;
  free(text);
  /* tn_config_load has parsed this file already: a failure here is memory */
  if (s == TN_OK && !root) s = tn_error(TN_ERR_NOMEM, "%s: out of memory parsing", path);
  const cJSON *qc = NULL;
  if (s == TN_OK) s = tn_json_kind(root, path, "quantization_config", cJSON_Object, false, &qc);
  if (s == TN_OK && qc) {
    char where[600];
    snprintf(where, sizeof where, "%s: quantization_config", path);
    const char *qm = NULL, *qt = "fp4", *cd = NULL;
    bool l4 = false, l8 = false;
    s = tn_json_str(qc, where, "quant_method", false, NULL, &qm);
    if (s == TN_OK) s = tn_json_bool(qc, where, "load_in_4bit", false, false, &l4);
    if (s == TN_OK) s = tn_json_bool(qc, where, "load_in_8bit", false, false, &l8);
    if (s == TN_OK) s = tn_json_str(qc, where, "bnb_4bit_quant_type", false, "fp4", &qt);
    /* bnb_4bit_compute_dtype: what transformers computes the 4-bit layers in (absent or
     * null: float32, BitsAndBytesConfig's default); float16 is served by bf16 */
    if (s == TN_OK) s = tn_json_str(qc, where, "bnb_4bit_compute_dtype", false, NULL, &cd);
    if (s != TN_OK) {
    } else if (qm && strcmp(qm, "bitsandbytes") != 0)
      s = tn_error(TN_ERR_UNSUPPORTED, "%s: quant_method '%s' is not supported (bitsandbytes nf4 only)", where, qm);
    else if (l8)
      s = tn_error(TN_ERR_UNSUPPORTED, "%s: load_in_8bit is not supported (bitsandbytes nf4 only)", where);
    else if (l4) {
      if (strcmp(qt, "nf4") != 0)
        s = tn_error(TN_ERR_UNSUPPORTED, "%s: bnb_4bit_quant_type is '%s': only nf4 is supported", where,
                     !strcmp(qt, "fp4") ? "fp4 (the default)" : qt);
      else *is_bnb = true;
      if (s == TN_OK && cd) {
        const char *v = !strncmp(cd, "torch.", 6) ? cd + 6 : cd;
        if (!strcmp(v, "bfloat16") || !strcmp(v, "float16") || !strcmp(v, "half")) *compute = TN_BF16;
        else if (strcmp(v, "float32") && strcmp(v, "float"))
          s = tn_error(TN_ERR_UNSUPPORTED, "%s: bnb_4bit_compute_dtype '%s' is not supported (float32, bfloat16, "
                       "float16)", where, cd);
      }
    }
  }
  cJSON_Delete(root);
  free(path);
  return s;
}

typedef struct {
  const tn_st_tensor *w, *absmax, *qmap, *nabsmax, *nqmap;
  int blocksize;
  bool nested;
  float offset;
} bnb_state;

static tn_status bnb_tensor(const tn_st_set *set, const char *base, const char *suffix, tn_st_dtype dt, size_t numel,
                            const tn_st_tensor **out) {
  char name[192];
  snprintf(name, sizeof name, "%s.%s", base, suffix);
  const tn_st_tensor *t = tn_st_set_find(set, name);
  if (!t) return tn_error(TN_ERR_FORMAT, "tensor '%s' is missing (bitsandbytes 4-bit layout of '%s')", name, base);
  if (t->dtype != dt || t->numel != numel)
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s' has dtype %s and %zu elements, expected %s and %zu", t->file, name,
                    tn_st_dtype_name(t->dtype), t->numel, tn_st_dtype_name(dt), numel);
  *out = t;
  return TN_OK;
}

/* The quant state of a U8 weight tensor t of entry p. */
static tn_status bnb_read(const tn_st_set *set, const tn_weight_entry *p, const tn_st_tensor *t, bnb_state *b) {
  memset(b, 0, sizeof *b);
  b->w = t;
  char qsname[192];
  snprintf(qsname, sizeof qsname, "%s.quant_state.bitsandbytes__nf4", p->name);
  const tn_st_tensor *qs = tn_st_set_find(set, qsname);
  if (!qs) {
    snprintf(qsname, sizeof qsname, "%s.quant_state.bitsandbytes__fp4", p->name);
    if (tn_st_set_find(set, qsname))
      return tn_error(TN_ERR_UNSUPPORTED, "%s: '%s' is bitsandbytes fp4: only nf4 is supported", t->file, p->name);
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s' is U8 but '%s.quant_state.bitsandbytes__nf4' is missing", t->file,
                    p->name, p->name);
  }
  if (qs->dtype != TN_ST_U8)
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s' must be U8 (UTF-8 JSON)", qs->file, qsname);
  cJSON *j = cJSON_ParseWithLength(qs->data, qs->numel);
  tn_status s = TN_OK;
  const cJSON *qt = j ? tn_json_field(j, "quant_type") : NULL;
  const cJSON *bs = j ? tn_json_field(j, "blocksize") : NULL;
  const cJSON *sh = j ? tn_json_field(j, "shape") : NULL;
  const cJSON *nb = j ? tn_json_field(j, "nested_blocksize") : NULL;
  const cJSON *no = j ? tn_json_field(j, "nested_offset") : NULL;
  if (!cJSON_IsObject(j)) s = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' is not a JSON object", qs->file, qsname);
  else if (!cJSON_IsString(qt) || strcmp(qt->valuestring, "nf4") != 0)
    s = tn_error(TN_ERR_UNSUPPORTED, "%s: '%s': quant_type must be \"nf4\"", qs->file, qsname);
  else if (!cJSON_IsNumber(bs) || bs->valuedouble < 2 || bs->valuedouble > 1 << 20 || (bs->valueint & 1) ||
           bs->valuedouble != bs->valueint)
    s = tn_error(TN_ERR_FORMAT, "%s: '%s': blocksize must be an even positive integer", qs->file, qsname);
  else if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) != 2 ||
           cJSON_GetArrayItem(sh, 0)->valuedouble != (double)p->shape[0] ||
           cJSON_GetArrayItem(sh, 1)->valuedouble != (double)p->shape[1])
    s = tn_error(TN_ERR_FORMAT, "%s: '%s': shape must be [%lld, %lld] (config.json)", qs->file, qsname,
                 (long long)p->shape[0], (long long)p->shape[1]);
  else if (nb && (!cJSON_IsNumber(nb) || nb->valueint != 256 || !cJSON_IsNumber(no)))
    s = tn_error(TN_ERR_UNSUPPORTED, "%s: '%s': nested_blocksize must be 256 with a numeric nested_offset", qs->file,
                 qsname);
  if (s == TN_OK) {
    b->blocksize = bs->valueint;
    b->nested = nb != NULL;
    b->offset = b->nested ? (float)no->valuedouble : 0.0f;
  }
  cJSON_Delete(j);
  TN_TRY(s);
  const size_t n = p->numel, nbk = (n + b->blocksize - 1) / b->blocksize;
  if (t->numel != (n + 1) / 2)
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s' has %zu bytes of codes, expected %zu for shape [%lld, %lld]", t->file,
                    p->name, t->numel, (n + 1) / 2, (long long)p->shape[0], (long long)p->shape[1]);
  TN_TRY(bnb_tensor(set, p->name, "absmax", b->nested ? TN_ST_U8 : TN_ST_F32, nbk, &b->absmax));
  TN_TRY(bnb_tensor(set, p->name, "quant_map", TN_ST_F32, 16, &b->qmap));
  if (b->nested) {
    TN_TRY(bnb_tensor(set, p->name, "nested_absmax", TN_ST_F32, (nbk + 255) / 256, &b->nabsmax));
    TN_TRY(bnb_tensor(set, p->name, "nested_quant_map", TN_ST_F32, 256, &b->nqmap));
  }
  return TN_OK;
}

/* Copy a bnb state into q (initialised for it). File data may be unaligned: memcpy. */
static void bnb_fill(tn_nf4 *q, const bnb_state *b) {
  memcpy(q->codes, b->w->data, b->w->nbytes);
  memcpy(q->code, b->qmap->data, sizeof q->code);
  if (b->nested) {
    memcpy(q->qabsmax, b->absmax->data, b->absmax->nbytes);
    memcpy(q->absmax2, b->nabsmax->data, b->nabsmax->nbytes);
    memcpy(q->code2, b->nqmap->data, sizeof q->code2);
    q->offset = b->offset;
  } else {
    memcpy(q->absmax, b->absmax->data, b->absmax->nbytes);
  }
}

static tn_status bnb_dequant(float *dst, const bnb_state *b, size_t numel) {
  tn_nf4 q;
  TN_TRY(tn_nf4_alloc(&q, (int64_t)numel, b->blocksize, b->nested));
  bnb_fill(&q, b);
  tn_nf4_dequantize(dst, &q, 0, (int64_t)numel);
  tn_nf4_free(&q);
  return TN_OK;
}

static size_t al64z(size_t n) { return (n + 63) & ~(size_t)63; }

tn_status tn_model_load_opts(tn_model **out, const char *dir, const tn_load_opts *opts) {
  *out = NULL;
  tn_load_opts o;
  if (opts) o = *opts;
  else tn_load_opts_default(&o);
  if (o.base_dtype != TN_DTYPE_AUTO && o.base_dtype != TN_F32 && o.base_dtype != TN_BF16 && o.base_dtype != TN_NF4)
    return tn_error(TN_ERR_ARG, "base dtype must be f32, bf16, nf4 or auto");
  if (o.nf4_blocksize < 2 || (o.nf4_blocksize & 1))
    return tn_error(TN_ERR_ARG, "nf4 blocksize must be even and >= 2 (got %d)", o.nf4_blocksize);
  if (o.head_dtype != TN_DTYPE_AUTO && o.head_dtype != TN_F32 && o.head_dtype != TN_BF16)
    return tn_error(TN_ERR_ARG, "head dtype must be f32, bf16 or auto");
  tn_config cfg;
  TN_TRY(tn_config_load(&cfg, dir));
  bool bnb = false;
  tn_dtype compute = TN_F32;
  tn_status s = bnb_config(dir, &bnb, &compute);
  if (s != TN_OK) { tn_config_free(&cfg); return s; }
  const tn_dtype target = o.base_dtype == TN_DTYPE_AUTO ? (bnb ? TN_NF4 : TN_F32) : (tn_dtype)o.base_dtype;
  /* embedding and LM head: f32 under an f32 base; a bitsandbytes checkpoint read as NF4 follows
   * its bnb_4bit_compute_dtype (as transformers does: float32 -> f32); any other bf16/nf4 base
   * keeps them bf16 (frozen there) */
  const tn_dtype head_dt = o.head_dtype != TN_DTYPE_AUTO ? (tn_dtype)o.head_dtype
                           : target == TN_F32              ? TN_F32
                           : bnb                           ? compute
                                                           : TN_BF16;
  tn_st_set set;
  s = tn_st_open_dir(&set, dir);
  if (s != TN_OK) { tn_config_free(&cfg); return s; }
  tn_model *m = calloc(1, sizeof *m);
  if (!m) { tn_config_free(&cfg); tn_st_set_close(&set); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  m->cfg = cfg;
  m->base_dtype = target;
  m->dir = tn_strdup(dir);
  m->w.layers = calloc(cfg.L, sizeof(tn_layer));
  s = m->w.layers && m->dir ? tn_weight_table(&m->cfg, &m->w, &m->params, &m->n_params) : tn_error(TN_ERR_NOMEM, "out of memory");
  const tn_st_tensor **src = s == TN_OK ? calloc(m->n_params, sizeof *src) : NULL;
  bnb_state *bst = s == TN_OK ? calloc(m->n_params, sizeof *bst) : NULL;
  bool *isq = s == TN_OK ? calloc(m->n_params, sizeof *isq) : NULL;
  if (s == TN_OK && (!src || !bst || !isq)) s = tn_error(TN_ERR_NOMEM, "out of memory");
  /* 1. find and check every tensor; choose the storage of each projection */
  size_t qbytes = 0, tmp_max = 0;
  for (int i = 0; i < m->n_params && s == TN_OK; i++) {
    tn_weight_entry *p = &m->params[i];
    const tn_st_tensor *t = src[i] = tn_st_set_find(&set, p->name);
    if (!t) {
      s = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' is missing (required by config.json: model_type %s)", dir, p->name,
                   cfg.model_type);
      break;
    }
    if (p->mat && bnb && t->dtype == TN_ST_U8) {
      s = bnb_read(&set, p, t, &bst[i]);
      isq[i] = s == TN_OK;
    } else {
      bool shape_ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == p->shape[1]);
      if (!shape_ok) s = shape_error(t, p);
      else s = check_finite(t);
    }
    const bool emb_or_head = p->ptr == &m->w.embed || p->ptr == &m->w.head.w;
    if (s == TN_OK && emb_or_head && head_dt == TN_BF16) {
      p->in_qbuf = true;
      qbytes += al64z(p->numel * 2);
      if (t->dtype != TN_ST_BF16 && p->numel > tmp_max) tmp_max = p->numel;
    }
    if (s != TN_OK || !p->mat) continue;
    /* auto on a bitsandbytes checkpoint: NF4 where stored NF4; projections it left
     * unquantised (llm_int8_skip_modules) stay f32 as transformers keeps them */
    const tn_dtype tg = o.base_dtype == TN_DTYPE_AUTO && !isq[i] ? TN_F32 : target;
    p->mat->dtype = tg;
    if (tg == TN_BF16) qbytes += al64z(p->numel * 2);
    if (tg == TN_NF4) {
      m->n_nf4++;
      qbytes += isq[i] ? tn_nf4_bytes((int64_t)p->numel, bst[i].blocksize, bst[i].nested)
                       : tn_nf4_bytes((int64_t)p->numel, o.nf4_blocksize, o.nf4_double_quant);
    }
    const bool direct = tg == TN_F32 || (tg == TN_BF16 && t->dtype == TN_ST_BF16 && !isq[i]) || (tg == TN_NF4 && isq[i]);
    if (!direct && p->numel > tmp_max) tmp_max = p->numel;
  }
  /* 2. allocate: f32 tensors in one flat buffer, bf16/nf4 matrices in another */
  float *tmp = NULL;
  if (s == TN_OK) {
    m->n_floats = carve(m->params, m->n_params, NULL);
    m->owned = tn_alloc(m->n_floats * sizeof(float));
    m->qbuf_bytes = qbytes;
    m->qbuf = qbytes ? tn_alloc(qbytes) : NULL;
    m->nf4 = m->n_nf4 ? calloc(m->n_nf4, sizeof(tn_nf4)) : NULL;
    tmp = tmp_max ? malloc(tmp_max * sizeof(float)) : NULL;
    if (!m->owned || (qbytes && !m->qbuf) || (m->n_nf4 && !m->nf4) || (tmp_max && !tmp))
      s = tn_error(TN_ERR_NOMEM, "out of memory loading %s", dir);
    else carve(m->params, m->n_params, m->owned);
  }
  /* 3. fill */
  size_t qoff = 0;
  int k = 0;
  for (int i = 0; i < m->n_params && s == TN_OK; i++) {
    tn_weight_entry *p = &m->params[i];
    const tn_st_tensor *t = src[i];
    if (p->in_qbuf) { /* bf16 embedding / LM head */
      uint16_t *dst = (uint16_t *)((char *)m->qbuf + qoff);
      qoff += al64z(p->numel * 2);
      if (p->ptr == &m->w.embed) m->w.embed_bf16 = dst;
      else {
        m->w.head.dtype = TN_BF16;
        m->w.head.q = dst;
      }
      if (t->dtype == TN_ST_BF16) {
        memcpy(dst, t->data, p->numel * 2);
        drop_pages(t);
      } else if ((s = convert(tmp, t)) == TN_OK) tn_bf16_from_f32(dst, tmp, p->numel);
    } else if (!p->mat || p->mat->dtype == TN_F32) {
      s = isq[i] ? bnb_dequant(*p->ptr, &bst[i], p->numel) : convert(*p->ptr, t);
    } else if (p->mat->dtype == TN_BF16) {
      uint16_t *dst = (uint16_t *)((char *)m->qbuf + qoff);
      qoff += al64z(p->numel * 2);
      p->mat->q = dst;
      if (!isq[i] && t->dtype == TN_ST_BF16) {
        memcpy(dst, t->data, p->numel * 2);
        drop_pages(t);
      } else {
        s = isq[i] ? bnb_dequant(tmp, &bst[i], p->numel) : convert(tmp, t);
        if (s == TN_OK) tn_bf16_from_f32(dst, tmp, p->numel);
      }
    } else {
      tn_nf4 *q = &m->nf4[k++];
      const int bs = isq[i] ? bst[i].blocksize : o.nf4_blocksize;
      const bool nested = isq[i] ? bst[i].nested : o.nf4_double_quant;
      s = tn_nf4_init(q, (int64_t)p->numel, bs, nested, (char *)m->qbuf + qoff);
      qoff += tn_nf4_bytes((int64_t)p->numel, bs, nested);
      p->mat->q = q;
      if (s == TN_OK && isq[i]) {
        bnb_fill(q, &bst[i]);
        drop_pages(bst[i].w);
      }
      else if (s == TN_OK && (s = convert(tmp, t)) == TN_OK) tn_nf4_quantize(q, tmp);
    }
  }
  free(tmp);
  free(src);
  free(bst);
  free(isq);
  tn_st_set_close(&set);
  if (s != TN_OK) { tn_model_free(m); return s; }
  tie_head(m);
  *out = m;
  return TN_OK;
}

void tn_model_frozen_bytes(const tn_model *m, size_t *bytes, size_t *params) {
  size_t b = 0, n = 0;
  for (int l = 0; l < m->cfg.L; l++) {
    const tn_layer *y = &m->w.layers[l];
    const tn_mat *mats[7] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->gate, &y->up, &y->down};
    for (int i = 0; i < 7; i++) {
      b += tn_mat_bytes(mats[i]);
      n += (size_t)mats[i]->out * mats[i]->in;
    }
  }
  *bytes = b;
  *params = n;
}

void tn_model_weight_bytes(const tn_model *m, size_t *bytes, size_t *params) {
  size_t b = 0, n = 0;
  for (int i = 0; i < m->n_params; i++) {
    const tn_weight_entry *p = &m->params[i];
    n += p->numel;
    b += p->in_qbuf ? p->numel * 2 : p->mat ? tn_mat_bytes(p->mat) : p->numel * 4;
  }
  *bytes = b;
  *params = n;
}

void tn_embed_rows(const tn_model *m, float *x, const int *tok, int N) {
  // x (N, C)
  const int C = m->cfg.C;
  const float sc = m->cfg.embed_scale;
  for (int i = 0; i < N; i++) {
    float *xi = x + (size_t)i * C;
    if (m->w.embed) {
      const float *e = m->w.embed + (size_t)tok[i] * C;
      for (int k = 0; k < C; k++) xi[k] = e[k] * sc;
    } else {
      const uint16_t *e = m->w.embed_bf16 + (size_t)tok[i] * C;
      for (int k = 0; k < C; k++) xi[k] = tn_bf16_to_f32(e[k]) * sc;
    }
  }
}

tn_status tn_model_to_f32(tn_model *m) {
  size_t total = 0;
  for (int i = 0; i < m->n_params; i++) total += (m->params[i].numel + 15) & ~(size_t)15;
  float *nb = tn_alloc(total * sizeof(float));
  if (!nb) return tn_error(TN_ERR_NOMEM, "out of memory converting %s to f32 (%zu MB)", m->dir ? m->dir : "the model",
                           total * 4 >> 20);
  size_t off = 0;
  for (int i = 0; i < m->n_params; i++) { /* convert while every old pointer is valid */
    const tn_weight_entry *p = &m->params[i];
    float *dst = nb + off;
    off += (p->numel + 15) & ~(size_t)15;
    if (p->in_qbuf) {
      const uint16_t *src = p->ptr == &m->w.embed ? m->w.embed_bf16 : (const uint16_t *)m->w.head.q;
      for (size_t k = 0; k < p->numel; k++) dst[k] = tn_bf16_to_f32(src[k]);
    } else if (p->mat && p->mat->dtype != TN_F32) {
      tn_mat_rows_f32(dst, p->mat, 0, p->mat->out);
    } else {
      memcpy(dst, *p->ptr, p->numel * sizeof(float));
    }
  }
  off = 0;
  for (int i = 0; i < m->n_params; i++) {
    tn_weight_entry *p = &m->params[i];
    *p->ptr = nb + off;
    off += (p->numel + 15) & ~(size_t)15;
    p->in_qbuf = false;
    if (p->mat) {
      p->mat->dtype = TN_F32;
      p->mat->q = NULL;
    }
  }
  m->w.head.dtype = TN_F32;
  m->w.head.q = NULL;
  m->w.embed_bf16 = NULL;
  tie_head(m);
  tn_free(m->owned);
  tn_free(m->qbuf);
  free(m->nf4);
  m->owned = nb;
  m->n_floats = total;
  m->qbuf = NULL;
  m->qbuf_bytes = 0;
  m->nf4 = NULL;
  m->n_nf4 = 0;
  m->base_dtype = TN_F32;
  return TN_OK;
}

void tn_model_free(tn_model *m) {
  if (!m) return;
  tn_free(m->owned);
  tn_free(m->qbuf);
  free(m->nf4);
  free(m->params);
  free(m->w.layers);
  tn_config_free(&m->cfg);
  free(m->dir);
  free(m);
}

/* Safetensors entries for every tensor of w (converted to dtype; *conv holds the
 * converted copies to free). */
static tn_status make_entries(const tn_config *c, tn_weights *w, tn_st_dtype dtype, tn_st_entry **out, void ***conv,
                              int *n) {
  tn_weight_entry *p;
  *out = NULL;
  *conv = NULL;
  *n = 0;
  TN_TRY(tn_weight_table(c, w, &p, n));
  tn_st_entry *e = calloc(*n, sizeof *e);
  void **cv = calloc(*n, sizeof *cv);
  tn_status s = TN_OK;
  if (!e || !cv) {
    free(e);
    free(cv);
    e = NULL;
    cv = NULL;
    s = tn_error(TN_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < *n && s == TN_OK; i++) {
    e[i].name = tn_strdup(p[i].name);
    if (!e[i].name) { s = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
    e[i].dtype = dtype;
    e[i].ndim = p[i].ndim;
    e[i].shape[0] = p[i].shape[0];
    e[i].shape[1] = p[i].shape[1];
    const float *src = *p[i].ptr;
    if (!src) { s = tn_error(TN_ERR_INTERNAL, "tensor '%s' has no data", p[i].name); break; }
    if (dtype == TN_ST_F32) { e[i].data = src; continue; }
    uint16_t *h = malloc(p[i].numel * 2);
    if (!h) { s = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
    for (size_t k = 0; k < p[i].numel; k++) h[k] = dtype == TN_ST_BF16 ? tn_f32_to_bf16(src[k]) : tn_f32_to_f16(src[k]);
    cv[i] = h;
    e[i].data = h;
  }
  free(p);
  *out = e;
  *conv = cv;
  return s;
}

static void free_entries(tn_st_entry *e, void **conv, int n) {
  for (int i = 0; e && conv && i < n; i++) { free((void *)e[i].name); free(conv[i]); }
  free(e);
  free(conv);
}

tn_status tn_weights_save_file(const tn_config *c, tn_weights *w, const char *path, tn_st_dtype dtype) {
  tn_st_entry *e;
  void **conv;
  int n;
  tn_status s = make_entries(c, w, dtype, &e, &conv, &n);
  if (s == TN_OK) s = tn_st_write(path, e, n, "{\"format\":\"pt\"}");
  free_entries(e, conv, n);
  return s;
}

tn_status tn_model_save_weights(const tn_model *m, const char *out_dir, tn_st_dtype dtype, int shards) {
  tn_st_entry *e;
  void **conv;
  int n;
  tn_weights w = m->w;
  tn_status s = make_entries(&m->cfg, &w, dtype, &e, &conv, &n);
  if (s == TN_OK) s = tn_st_write_dir(out_dir, e, n, shards, "{\"format\":\"pt\"}");
  free_entries(e, conv, n);
  return s;
}

tn_status tn_model_copy_files(const char *from, const char *to) {
  static const char *names[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                "special_tokens_map.json", "chat_template.jinja"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char *a = tn_path_join(from, names[i]), *b = tn_path_join(to, names[i]);
    tn_status s = TN_OK;
    if (!a || !b) s = tn_error(TN_ERR_NOMEM, "out of memory");
    else if (tn_file_exists(a)) s = tn_copy_file(a, b);
    else if (i == 0) s = tn_error(TN_ERR_IO, "%s: missing", a);
    free(a);
    free(b);
    TN_TRY(s);
  }
  return TN_OK;
}
