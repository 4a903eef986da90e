/* init.c - `tunic init`: a random-init checkpoint in the exact Hugging Face layout
 * (config.json with the real field names of the family, model.safetensors or
 * shards with the real tensor names, generation_config.json). Used by the tests,
 * the demo, and users training tiny models from scratch.
 * Weights: N(0, 0.02) for matrices and embeddings (initializer_range), biases
 * N(0, 0.02), norm weights 1 + N(0, 0.1) (Gemma stores w of x*(1+w): N(0, 0.1))
 * so that every parameter influences the output and tests see bugs. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"
#include "base/json.h"

/* a copy of V, or JSON null when V is absent or null */
static cJSON *dup_or_null(const cJSON *v) { return v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull(); }

typedef struct { const char *name; int C, L, H, KV, D, F, V; } size_preset;
static const size_preset presets[] = {
  {"tiny", 64, 2, 4, 2, 16, 128, 512},
  {"small", 512, 8, 8, 4, 64, 1408, 32000},
  {"15m", 288, 6, 6, 6, 48, 768, 32000},
  {"qwen05b", 896, 24, 14, 2, 64, 4864, 151936},
  {"1b", 2048, 16, 32, 8, 64, 8192, 128256},
};

static cJSON *family_config(const char *arch, const size_preset *p, int V, const char *torch_dtype) {
  cJSON *c = cJSON_CreateObject();
  bool gemma = !strcmp(arch, "gemma3_text");
  const char *archname = !strcmp(arch, "llama") ? "LlamaForCausalLM" : !strcmp(arch, "qwen2") ? "Qwen2ForCausalLM"
                         : !strcmp(arch, "qwen3") ? "Qwen3ForCausalLM" : "Gemma3ForCausalLM";
  cJSON *a = cJSON_AddArrayToObject(c, "architectures");
  cJSON_AddItemToArray(a, cJSON_CreateString(archname));
  cJSON_AddStringToObject(c, "model_type", arch);
  cJSON_AddNumberToObject(c, "vocab_size", V);
  cJSON_AddNumberToObject(c, "hidden_size", p->C);
  cJSON_AddNumberToObject(c, "intermediate_size", p->F);
  cJSON_AddNumberToObject(c, "num_hidden_layers", gemma && p->L < 4 ? 4 : p->L);
  cJSON_AddNumberToObject(c, "num_attention_heads", p->H);
  cJSON_AddNumberToObject(c, "num_key_value_heads", p->KV);
  cJSON_AddNumberToObject(c, "head_dim", p->D);
  cJSON_AddNumberToObject(c, "initializer_range", 0.02);
  cJSON_AddNumberToObject(c, "attention_dropout", 0.0);
  cJSON_AddBoolToObject(c, "use_cache", 1);
  cJSON_AddNumberToObject(c, "bos_token_id", 1);
  cJSON_AddNumberToObject(c, "eos_token_id", 2);
  cJSON_AddNumberToObject(c, "pad_token_id", 0);
  cJSON_AddStringToObject(c, "torch_dtype", torch_dtype);
  cJSON_AddStringToObject(c, "transformers_version", "4.53.0");
  if (gemma) {
    int L = p->L < 4 ? 4 : p->L, window = p->C <= 64 ? 8 : 512;
    cJSON_AddStringToObject(c, "hidden_activation", "gelu_pytorch_tanh");
    cJSON_AddNumberToObject(c, "max_position_embeddings", 32768);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-6);
    cJSON_AddNumberToObject(c, "rope_theta", 1000000.0);
    cJSON_AddNumberToObject(c, "rope_local_base_freq", 10000.0);
    cJSON_AddNullToObject(c, "rope_scaling");
    cJSON_AddNumberToObject(c, "query_pre_attn_scalar", p->D);
    cJSON_AddNumberToObject(c, "sliding_window", window);
    cJSON *lt = cJSON_AddArrayToObject(c, "layer_types");
    for (int i = 0; i < L; i++)  /* Gemma-3's 5 local : 1 global, shortened for tiny models */
      cJSON_AddItemToArray(lt, cJSON_CreateString((i + 1) % (L < 6 ? 2 : 6) ? "sliding_attention" : "full_attention"));
    cJSON_AddNullToObject(c, "final_logit_softcapping");
    cJSON_AddNullToObject(c, "attn_logit_softcapping");
    cJSON_AddBoolToObject(c, "attention_bias", 0);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 1);
  } else {
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddNumberToObject(c, "max_position_embeddings", !strcmp(arch, "llama") ? 8192 : 32768);
    cJSON_AddNumberToObject(c, "rms_norm_eps", !strcmp(arch, "llama") ? 1e-5 : 1e-6);
    cJSON_AddNumberToObject(c, "rope_theta", !strcmp(arch, "llama") ? 500000.0 : 1000000.0);
    cJSON_AddNullToObject(c, "rope_scaling");
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 1);
    if (!strcmp(arch, "llama")) {
      cJSON_AddBoolToObject(c, "attention_bias", 0);
      cJSON_AddBoolToObject(c, "mlp_bias", 0);
      cJSON_AddNumberToObject(c, "pretraining_tp", 1);
    } else {
      cJSON_AddBoolToObject(c, "use_sliding_window", 0);
      cJSON_AddNumberToObject(c, "sliding_window", 32768);
      cJSON_AddNumberToObject(c, "max_window_layers", p->L);
      if (!strcmp(arch, "qwen3")) cJSON_AddBoolToObject(c, "attention_bias", 0);
    }
  }
  return c;
}

static tn_status write_json(const char *dir, const char *name, cJSON *j) {
  char *text = cJSON_Print(j);
  char *path = tn_path_join(dir, name);
  size_t n = text ? strlen(text) : 0;
  char *t2 = text ? realloc(text, n + 2) : NULL;
  if (!t2 || !path) {
    free(t2 ? t2 : text);
    free(path);
    return tn_error(TN_ERR_NOMEM, "%s/%s: out of memory", dir, name);
  }
  text = t2;
  text[n] = '\n';
  tn_status s = tn_write_file_atomic(path, text, n + 1);
  free(path);
  free(text);
  return s;
}

tn_status tn_model_init_dir(const char *out_dir, const tn_init_opts *o) {
  const char *archs[] = {"llama", "qwen2", "qwen3", "gemma3_text"};
  bool arch_ok = false;
  for (int i = 0; i < 4; i++) arch_ok |= !strcmp(o->arch, archs[i]);
  if (!arch_ok) return tn_error(TN_ERR_ARG, "unknown --arch '%s' (llama, qwen2, qwen3, gemma3_text)", o->arch);
  const size_preset *p = NULL;
  for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
    if (!strcmp(o->size, presets[i].name)) p = &presets[i];
  if (!p) return tn_error(TN_ERR_ARG, "unknown --size '%s' (tiny, small, 15m, qwen05b, 1b)", o->size);
  tn_st_dtype dt;
  const char *tdt;
  if (!o->dtype || !strcmp(o->dtype, "f32")) { dt = TN_ST_F32; tdt = "float32"; }
  else if (!strcmp(o->dtype, "bf16")) { dt = TN_ST_BF16; tdt = "bfloat16"; }
  else if (!strcmp(o->dtype, "f16")) { dt = TN_ST_F16; tdt = "float16"; }
  else return tn_error(TN_ERR_ARG, "unknown --dtype '%s' (f32, bf16, f16)", o->dtype);

  cJSON *cfg = family_config(o->arch, p, o->vocab > 0 ? o->vocab : p->V, tdt);
  if (o->override_json && *o->override_json) {
    cJSON *ov = cJSON_Parse(o->override_json);
    if (!cJSON_IsObject(ov)) {
      cJSON_Delete(ov);
      cJSON_Delete(cfg);
      return tn_error(TN_ERR_ARG, "--override must be a JSON object, got: %s", o->override_json);
    }
    cJSON *it;
    cJSON_ArrayForEach(it, ov) {
      cJSON_DeleteItemFromObjectCaseSensitive(cfg, it->string);
      cJSON_AddItemToObject(cfg, it->string, cJSON_Duplicate(it, 1));
    }
    cJSON_Delete(ov);
  }
  tn_status s = tn_mkdirs(out_dir);
  if (s == TN_OK) s = write_json(out_dir, "config.json", cfg);
  if (s == TN_OK) {
    cJSON *g = cJSON_CreateObject();
    cJSON_AddItemToObject(g, "bos_token_id", dup_or_null(tn_json_field(cfg, "bos_token_id")));
    cJSON_AddItemToObject(g, "eos_token_id", dup_or_null(tn_json_field(cfg, "eos_token_id")));
    cJSON_AddItemToObject(g, "pad_token_id", dup_or_null(tn_json_field(cfg, "pad_token_id")));
    cJSON_AddStringToObject(g, "transformers_version", "4.53.0");
    s = write_json(out_dir, "generation_config.json", g);
    cJSON_Delete(g);
  }
  cJSON_Delete(cfg);
  if (s != TN_OK) return s;

  tn_config c;
  TN_TRY(tn_config_load(&c, out_dir)); /* the file we wrote must parse: checks the overrides too */
  tn_model *m;
  s = tn_model_alloc(&m, &c);
  if (s != TN_OK) { tn_config_free(&c); return s; }
  tn_rng r;
  tn_rng_seed(&r, o->seed);
  for (int i = 0; i < m->n_params; i++) {
    const tn_weight_entry *q = &m->params[i];
    float *d = *q->ptr;
    if (q->is_norm) {
      float base = c.norm_plus_one ? 0.0f : 1.0f;
      for (size_t k = 0; k < q->numel; k++) d[k] = base + 0.1f * tn_rng_normal(&r);
    } else {
      for (size_t k = 0; k < q->numel; k++) d[k] = 0.02f * tn_rng_normal(&r);
    }
  }
  s = tn_model_save_weights(m, out_dir, dt, o->shards);
  tn_model_free(m);
  return s;
}
