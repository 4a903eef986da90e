/* model.c - the parameter table (HF tensor names <-> decoder weights), loading a
 * checkpoint directory into one flat f32 buffer, and saving it back.
 * Not for: the forward pass (decoder.c) or random init (init.c). */
#include <stdlib.h>
#include <string.h>
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
    if (c->qkv_bias) P("self_attn.q_proj.bias", HD, 0, &y->bq, false, true);
    P("self_attn.k_proj.weight", KD, C, &y->wk.w, false, false);
    if (c->qkv_bias) P("self_attn.k_proj.bias", KD, 0, &y->bk, false, true);
    P("self_attn.v_proj.weight", KD, C, &y->wv.w, false, false);
    if (c->qkv_bias) P("self_attn.v_proj.bias", KD, 0, &y->bv, false, true);
    P("self_attn.o_proj.weight", C, HD, &y->wo.w, false, false);
    if (c->o_bias) P("self_attn.o_proj.bias", C, 0, &y->bo, false, true);
    if (c->qk_norm) {
      P("self_attn.q_norm.weight", c->D, 0, &y->q_norm, true, false);
      P("self_attn.k_norm.weight", c->D, 0, &y->k_norm, true, false);
    }
    P("mlp.gate_proj.weight", F, C, &y->gate.w, false, false);
    if (c->mlp_bias) P("mlp.gate_proj.bias", F, 0, &y->bgate, false, true);
    P("mlp.up_proj.weight", F, C, &y->up.w, false, false);
    if (c->mlp_bias) P("mlp.up_proj.bias", F, 0, &y->bup, false, true);
    P("mlp.down_proj.weight", C, F, &y->down.w, false, false);
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

/* Point every table entry into one flat buffer; returns the float count. */
static size_t carve(tn_weight_entry *p, int n, float *base) {
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    if (base) *p[i].ptr = base + off;
    off += (p[i].numel + 15) & ~(size_t)15;  /* 64-byte aligned tensors */
  }
  return off;
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
  return TN_OK;
}

static void tie_head(tn_model *m) {
  if (m->cfg.tied) m->w.head.w = m->w.embed;
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

tn_status tn_model_load(tn_model **out, const char *dir) {
  *out = NULL;
  tn_config cfg;
  TN_TRY(tn_config_load(&cfg, dir));
  tn_st_set set;
  tn_status s = tn_st_open_dir(&set, dir);
  if (s != TN_OK) { tn_config_free(&cfg); return s; }
  tn_model *m;
  s = tn_model_alloc(&m, &cfg);
  if (s != TN_OK) { tn_config_free(&cfg); tn_st_set_close(&set); return s; }
  m->dir = tn_strdup(dir);
  for (int i = 0; i < m->n_params && s == TN_OK; i++) {
    const tn_weight_entry *p = &m->params[i];
    const tn_st_tensor *t = tn_st_set_find(&set, p->name);
    if (!t) {
      s = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' is missing (required by config.json: model_type %s)", dir, p->name,
                   cfg.model_type);
      break;
    }
    bool shape_ok = t->ndim == p->ndim && t->shape[0] == p->shape[0] && (p->ndim == 1 || t->shape[1] == p->shape[1]);
    if (!shape_ok) {
      char got[96] = "", want[64];
      for (int d = 0; d < t->ndim; d++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
      }
      if (p->ndim == 1) snprintf(want, sizeof want, "%lld", (long long)p->shape[0]);
      else snprintf(want, sizeof want, "%lld, %lld", (long long)p->shape[0], (long long)p->shape[1]);
      s = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' has shape [%s] but config.json implies [%s]", t->file, p->name, got, want);
      break;
    }
    s = convert(*p->ptr, t);
  }
  tn_st_set_close(&set);
  if (s != TN_OK) { tn_model_free(m); return s; }
  *out = m;
  return TN_OK;
}

void tn_model_free(tn_model *m) {
  if (!m) return;
  tn_free(m->owned);
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
  TN_TRY(tn_weight_table(c, w, &p, n));
  tn_st_entry *e = calloc(*n, sizeof *e);
  void **cv = calloc(*n, sizeof *cv);
  tn_status s = TN_OK;
  for (int i = 0; i < *n; i++) {
    e[i].name = tn_strdup(p[i].name);
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
  for (int i = 0; i < n; i++) { free((void *)e[i].name); free(conv[i]); }
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
    if (tn_file_exists(a)) s = tn_copy_file(a, b);
    else if (i == 0) s = tn_error(TN_ERR_IO, "%s: missing", a);
    free(a);
    free(b);
    TN_TRY(s);
  }
  return TN_OK;
}
