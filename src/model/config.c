/* config.c - Hugging Face config.json -> tn_config, the table of differences
 * between families. Everything a family needs is read and checked here; a
 * model_type or a field value we cannot honour is refused with the file and the
 * field named, never approximated. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/json.h"
#include "model/model.h"

typedef struct {
  const char *file;   /* names the object in messages: "config.json" or "config.json: rope_scaling" */
  cJSON *root;
} jctx;

/* config.json's fields through base/json.h's checked access; the jctx names the object */
static bool j_present(jctx *j, const char *k) { return tn_json_field(j->root, k) != NULL; }
static tn_status j_int(jctx *j, const char *k, int *out, int def, bool required) {
  return tn_json_int32(j->root, j->file, k, required, -2000000000, 2000000000, def, out);
}
static tn_status j_pos_int(jctx *j, const char *k, int *out, int def, bool required) {
  TN_TRY(tn_json_int32(j->root, j->file, k, required, 1, 2000000000, def, out));
  if (*out <= 0) /* a default worked out from other fields */
    return tn_error(TN_ERR_FORMAT, "%s: field '%s' is not given and its default (%d) is not positive", j->file, k, *out);
  return TN_OK;
}
static tn_status j_float(jctx *j, const char *k, float *out, float def) {
  double d;
  TN_TRY(tn_json_num(j->root, j->file, k, false, -HUGE_VAL, HUGE_VAL, def, &d));
  *out = (float)d;
  return TN_OK;
}
static tn_status j_bool(jctx *j, const char *k, bool *out, bool def) {
  return tn_json_bool(j->root, j->file, k, false, def, out);
}
/* an optional string field: NULL when not given; *st set when it is not a string */
static const char *j_str(jctx *j, const char *k, tn_status *st) {
  const char *v = NULL;
  tn_status s = tn_json_str(j->root, j->file, k, false, NULL, &v);
  if (s != TN_OK && *st == TN_OK) *st = s;
  return v;
}

static tn_status j_eos(jctx *j, tn_config *c) {
  cJSON *it = tn_json_field_mut(j->root, "eos_token_id");
  if (!it || cJSON_IsNull(it)) return TN_OK;
  c->n_eos = 0;
  if (cJSON_IsNumber(it)) {
    c->eos_ids[c->n_eos++] = it->valueint;
    return TN_OK;
  }
  if (!cJSON_IsArray(it)) return tn_error(TN_ERR_FORMAT, "%s: field 'eos_token_id' must be an integer or a list", j->file);
  cJSON *e;
  cJSON_ArrayForEach(e, it) {
    if (!cJSON_IsNumber(e)) return tn_error(TN_ERR_FORMAT, "%s: 'eos_token_id' must hold integers", j->file);
    if (c->n_eos < TN_MAX_EOS) c->eos_ids[c->n_eos++] = e->valueint;
  }
  return TN_OK;
}

static tn_status parse_rope_scaling(jctx *j, tn_rope_cfg *r, int max_pos) {
  cJSON *rs = tn_json_field_mut(j->root, "rope_scaling");
  r->type = TN_ROPE_DEFAULT;
  r->factor = 1.0f;
  if (!rs || cJSON_IsNull(rs)) return TN_OK;
  if (!cJSON_IsObject(rs)) return tn_error(TN_ERR_FORMAT, "%s: field 'rope_scaling' must be an object or null", j->file);
  cJSON *t = tn_json_field_mut(rs, "rope_type");
  if (!cJSON_IsString(t)) t = tn_json_field_mut(rs, "type");
  if (!cJSON_IsString(t)) return tn_error(TN_ERR_FORMAT, "%s: 'rope_scaling' has no 'rope_type'", j->file);
  char where[320];
  snprintf(where, sizeof where, "%s: rope_scaling", j->file);
  jctx sub = {where, rs};
  const char *ty = t->valuestring;
  if (!strcmp(ty, "default")) return TN_OK;
  if (!strcmp(ty, "linear") || !strcmp(ty, "llama3")) {
    if (!j_present(&sub, "factor")) return tn_error(TN_ERR_FORMAT, "%s: rope_scaling '%s' needs 'factor'", j->file, ty);
    TN_TRY(j_float(&sub, "factor", &r->factor, 1.0f));
    if (!(r->factor > 0)) return tn_error(TN_ERR_FORMAT, "%s: rope_scaling.factor must be positive", j->file);
    if (!strcmp(ty, "linear")) { r->type = TN_ROPE_LINEAR; return TN_OK; }
    r->type = TN_ROPE_LLAMA3;
    TN_TRY(j_float(&sub, "low_freq_factor", &r->low_freq_factor, NAN));
    TN_TRY(j_float(&sub, "high_freq_factor", &r->high_freq_factor, NAN));
    TN_TRY(j_int(&sub, "original_max_position_embeddings", &r->original_max_pos, 0, true));
    if (isnan(r->low_freq_factor) || isnan(r->high_freq_factor))
      return tn_error(TN_ERR_FORMAT, "%s: rope_scaling 'llama3' needs low_freq_factor and high_freq_factor", j->file);
    if (r->high_freq_factor <= r->low_freq_factor)
      return tn_error(TN_ERR_FORMAT, "%s: rope_scaling: high_freq_factor must exceed low_freq_factor", j->file);
    (void)max_pos;
    return TN_OK;
  }
  return tn_error(TN_ERR_UNSUPPORTED,
                  "%s: rope_scaling type '%s' is not supported (tunic implements default, linear, llama3)", j->file, ty);
}

void tn_rope_inv_freq(float *inv, const tn_rope_cfg *r, int D) {
  for (int i = 0; i < D / 2; i++) {
    float e = (float)(2 * i) / (float)D;
    inv[i] = 1.0f / powf(r->theta, e);
  }
  if (r->type == TN_ROPE_LINEAR) {
    for (int i = 0; i < D / 2; i++) inv[i] /= r->factor;
  } else if (r->type == TN_ROPE_LLAMA3) {
    const float old = (float)r->original_max_pos;
    const float low_wl = old / r->low_freq_factor, high_wl = old / r->high_freq_factor;
    for (int i = 0; i < D / 2; i++) {
      float wl = 2.0f * (float)M_PI / inv[i];
      float f = wl > low_wl ? inv[i] / r->factor : inv[i];
      if (!(wl < high_wl) && !(wl > low_wl)) {
        float sm = (old / wl - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
        f = (1.0f - sm) * f / r->factor + sm * f;
      }
      inv[i] = f;
    }
  }
}

static tn_status parse(tn_config *c, jctx *j) {
  const char *mt;
  TN_TRY(tn_json_str(j->root, j->file, "model_type", true, NULL, &mt));
  snprintf(c->model_type, sizeof c->model_type, "%s", mt);
  if (!strcmp(mt, "llama")) c->arch = TN_ARCH_LLAMA;
  else if (!strcmp(mt, "qwen2")) c->arch = TN_ARCH_QWEN2;
  else if (!strcmp(mt, "qwen3")) c->arch = TN_ARCH_QWEN3;
  else if (!strcmp(mt, "gemma3_text")) c->arch = TN_ARCH_GEMMA3;
  else
    return tn_error(TN_ERR_UNSUPPORTED,
                    "%s: model_type '%s' is not supported (tunic supports llama, qwen2, qwen3, gemma3_text)", j->file, mt);
  const bool gemma = c->arch == TN_ARCH_GEMMA3;

  TN_TRY(j_pos_int(j, "vocab_size", &c->V, 0, true));
  TN_TRY(j_pos_int(j, "hidden_size", &c->C, 0, true));
  TN_TRY(j_pos_int(j, "num_hidden_layers", &c->L, 0, true));
  TN_TRY(j_pos_int(j, "num_attention_heads", &c->H, 0, true));
  TN_TRY(j_pos_int(j, "num_key_value_heads", &c->KV, c->H, false));
  TN_TRY(j_pos_int(j, "intermediate_size", &c->F, 0, true));
  TN_TRY(j_pos_int(j, "head_dim", &c->D, gemma ? 256 : c->C / c->H, false));
  TN_TRY(j_pos_int(j, "max_position_embeddings", &c->max_pos, gemma ? 32768 : 2048, false));
  /* Impossible sizes are refused here, before anything is allocated from them: every
   * row length and count must fit an int with room to spare (the kernels index rows with
   * int), and the whole model must stay below 2^40 parameters. */
  const struct { const char *k; long long v; } dims[] = {
      {"vocab_size", c->V}, {"hidden_size", c->C}, {"intermediate_size", c->F},
      {"num_attention_heads * head_dim", (long long)c->H * c->D}, {"num_key_value_heads * head_dim", (long long)c->KV * c->D}};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
    if (dims[i].v > (1 << 24))
      return tn_error(TN_ERR_FORMAT, "%s: %s = %lld is larger than tunic supports (%d)", j->file, dims[i].k, dims[i].v, 1 << 24);
  if (c->L > 4096) return tn_error(TN_ERR_FORMAT, "%s: num_hidden_layers = %d is larger than tunic supports (4096)", j->file, c->L);
  const double params = 2.0 * c->V * c->C + (double)c->L * ((2.0 * c->H + 2.0 * c->KV) * c->D * c->C + 3.0 * c->F * c->C);
  if (params > 1099511627776.0)
    return tn_error(TN_ERR_FORMAT, "%s: the sizes imply %.3g parameters (more than 2^40): not a real model", j->file, params);
  if (c->H % c->KV) return tn_error(TN_ERR_FORMAT, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", j->file, c->H, c->KV);
  if (c->D % 2) return tn_error(TN_ERR_FORMAT, "%s: head_dim (%d) must be even for RoPE", j->file, c->D);
  TN_TRY(j_float(j, "rms_norm_eps", &c->eps, 1e-6f));
  if (!(c->eps > 0)) return tn_error(TN_ERR_FORMAT, "%s: field 'rms_norm_eps' must be positive", j->file);
  TN_TRY(j_bool(j, "tie_word_embeddings", &c->tied, gemma));

  /* activation */
  tn_status js = TN_OK;
  const char *act = j_str(j, gemma ? "hidden_activation" : "hidden_act", &js);
  if (!act && gemma) act = j_str(j, "hidden_act", &js);
  TN_TRY(js);
  if (!act) act = gemma ? "gelu_pytorch_tanh" : "silu";
  if (!strcmp(act, "silu") || !strcmp(act, "swish")) c->act = TN_ACT_SILU;
  else if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_tanh")) c->act = TN_ACT_GELU_TANH;
  else return tn_error(TN_ERR_UNSUPPORTED, "%s: activation '%s' is not supported (silu, gelu_pytorch_tanh)", j->file, act);

  /* biases */
  bool attn_bias = false, mlp_bias = false;
  TN_TRY(j_bool(j, "attention_bias", &attn_bias, false));
  TN_TRY(j_bool(j, "mlp_bias", &mlp_bias, false));
  c->qkv_bias = attn_bias || c->arch == TN_ARCH_QWEN2;
  c->o_bias = attn_bias && c->arch != TN_ARCH_QWEN2;
  c->mlp_bias = mlp_bias && c->arch == TN_ARCH_LLAMA;
  if (mlp_bias && c->arch != TN_ARCH_LLAMA)
    return tn_error(TN_ERR_UNSUPPORTED, "%s: field 'mlp_bias' is only honoured for llama", j->file);

  if (j_present(j, "pretraining_tp")) {
    int tp;
    TN_TRY(j_int(j, "pretraining_tp", &tp, 1, false));
    if (tp != 1) return tn_error(TN_ERR_UNSUPPORTED, "%s: pretraining_tp = %d is not supported (only 1)", j->file, tp);
  }
  bool sw = false;
  TN_TRY(j_bool(j, "use_sliding_window", &sw, false));
  if (sw && !gemma)
    return tn_error(TN_ERR_UNSUPPORTED, "%s: use_sliding_window = true is not supported for %s", j->file, mt);

  /* family table */
  c->norm_plus_one = gemma;
  c->sandwich_norms = gemma;
  c->qk_norm = gemma || c->arch == TN_ARCH_QWEN3;
  c->embed_scale = gemma ? sqrtf((float)c->C) : 1.0f;
  c->attn_scale = 1.0f / sqrtf((float)c->D);

  /* RoPE */
  TN_TRY(j_float(j, "rope_theta", &c->rope.theta, gemma ? 1e6f : 10000.0f));
  if (!(c->rope.theta > 0)) return tn_error(TN_ERR_FORMAT, "%s: field 'rope_theta' must be positive", j->file);
  TN_TRY(parse_rope_scaling(j, &c->rope, c->max_pos));
  c->rope_local = c->rope;

  c->layer_local = calloc(c->L, sizeof(bool));
  if (!c->layer_local) return tn_error(TN_ERR_NOMEM, "%s: out of memory (%d layers)", j->file, c->L);
  if (gemma) {
    float qpas;
    TN_TRY(j_float(j, "query_pre_attn_scalar", &qpas, 256.0f));
    if (!(qpas > 0)) return tn_error(TN_ERR_FORMAT, "%s: 'query_pre_attn_scalar' must be positive", j->file);
    c->attn_scale = 1.0f / sqrtf(qpas);
    TN_TRY(j_float(j, "final_logit_softcapping", &c->final_softcap, 0.0f));
    TN_TRY(j_float(j, "attn_logit_softcapping", &c->attn_softcap, 0.0f));
    if (c->final_softcap < 0 || c->attn_softcap < 0) return tn_error(TN_ERR_FORMAT, "%s: soft-capping values must be positive", j->file);
    if (c->attn_softcap > 0) {
      /* transformers' Gemma3Attention stores attn_logit_softcapping but never passes it to
       * the attention function (Gemma-2 does): HF Gemma-3 does not cap attention scores.
       * We follow HF so logits match it; the attention kernel supports capping for archs
       * that apply it. */
      tn_log(TN_LOG_DEBUG, "%s: attn_logit_softcapping is not applied by Gemma-3 (as in transformers)", j->file);
      c->attn_softcap = 0.0f;
    }
    TN_TRY(j_int(j, "sliding_window", &c->window, 4096, false));
    if (c->window <= 0) return tn_error(TN_ERR_FORMAT, "%s: field 'sliding_window' must be positive", j->file);
    cJSON *lt = tn_json_field_mut(j->root, "layer_types");
    if (lt && !cJSON_IsNull(lt)) {
      if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != c->L)
        return tn_error(TN_ERR_FORMAT, "%s: 'layer_types' must be a list of %d strings", j->file, c->L);
      for (int i = 0; i < c->L; i++) {
        cJSON *e = cJSON_GetArrayItem(lt, i);
        if (cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention")) c->layer_local[i] = true;
        else if (cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention")) c->layer_local[i] = false;
        else return tn_error(TN_ERR_UNSUPPORTED, "%s: layer_types[%d] must be 'sliding_attention' or 'full_attention'", j->file, i);
      }
    } else {
      int pat;
      TN_TRY(j_pos_int(j, "sliding_window_pattern", &pat, 6, false));
      for (int i = 0; i < c->L; i++) c->layer_local[i] = (i + 1) % pat != 0;
    }
    c->rope_local.type = TN_ROPE_DEFAULT;
    c->rope_local.factor = 1.0f;
    TN_TRY(j_float(j, "rope_local_base_freq", &c->rope_local.theta, 10000.0f));
  }

  /* dtype of the checkpoint ("torch_dtype", or "dtype" in newer transformers) */
  tn_status ds = TN_OK;
  const char *dt = j_str(j, "torch_dtype", &ds);
  if (!dt) dt = j_str(j, "dtype", &ds);
  TN_TRY(ds);
  c->dtype = TN_ST_F32;
  if (dt) {
    if (!strcmp(dt, "bfloat16")) c->dtype = TN_ST_BF16;
    else if (!strcmp(dt, "float16")) c->dtype = TN_ST_F16;
    else if (!strcmp(dt, "float32")) c->dtype = TN_ST_F32;
    else return tn_error(TN_ERR_UNSUPPORTED, "%s: torch_dtype '%s' is not supported (float32, bfloat16, float16)", j->file, dt);
  }

  TN_TRY(j_int(j, "bos_token_id", &c->bos_id, -1, false));
  TN_TRY(j_int(j, "pad_token_id", &c->pad_id, -1, false));
  TN_TRY(j_eos(j, c));
  return TN_OK;
}

static tn_status load_json(const char *path, cJSON **out) {
  char *text;
  size_t len;
  TN_TRY(tn_read_file(path, &text, &len));
  const char *end = NULL;
  *out = cJSON_ParseWithOpts(text, &end, true);
  (void)len;
  if (!*out) {
    size_t off = end ? (size_t)(end - text) : 0;
    free(text);
    return tn_error(TN_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, off);
  }
  free(text);
  if (!cJSON_IsObject(*out)) {
    cJSON_Delete(*out);
    return tn_error(TN_ERR_FORMAT, "%s: expected a JSON object", path);
  }
  return TN_OK;
}

tn_status tn_config_load(tn_config *c, const char *dir) {
  memset(c, 0, sizeof *c);
  char *path = tn_path_join(dir, "config.json");
  if (!path) return tn_error(TN_ERR_NOMEM, "%s: out of memory", dir);
  cJSON *root;
  tn_status s = load_json(path, &root);
  if (s != TN_OK) { free(path); return s; }
  jctx j = {path, root};
  s = parse(c, &j);
  cJSON_Delete(root);
  free(path);
  if (s == TN_OK) { /* generation_config.json overrides stop ids when present */
    path = tn_path_join(dir, "generation_config.json");
    if (!path) s = tn_error(TN_ERR_NOMEM, "%s: out of memory", dir);
    else if (tn_file_exists(path)) {
      s = load_json(path, &root);
      if (s == TN_OK) {
        jctx g = {path, root};
        s = j_eos(&g, c);
        cJSON_Delete(root);
      }
    }
    free(path);
  }
  if (s != TN_OK) tn_config_free(c);
  return s;
}

void tn_config_free(tn_config *c) {
  free(c->layer_local);
  c->layer_local = NULL;
}
