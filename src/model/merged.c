/* merged.c - an adapter merged into its base model, and a model written as a Hugging Face
 * checkpoint folder: config.json (torch_dtype naming the written dtype, no
 * quantization_config), generation_config.json and the tokenizer files copied when present,
 * the weights as model.safetensors (or shards). The public tn_merge_save (tunic/adapter.h) is
 * `tunic merge`; `tunic export` merges the same way before writing GGUF.
 * QLoRA: an adapter trained on an NF4 (or bf16) base learned a correction of those weights, so
 * it is merged onto them (the model loaded with that base dtype, then widened to f32).
 * Not for: choosing the base dtype from a run's manifest (the CLI), merging several adapters. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "base/json.h"
#include "model/lora.h"
#include "model/model.h"
#include "tunic/adapter.h"

static tn_status copy_file(const char *src_dir, const char *dst_dir, const char *name) {
  char *src = tn_path_join(src_dir, name), *dst = tn_path_join(dst_dir, name), *data = NULL;
  size_t len;
  tn_status s = src && dst ? TN_OK : tn_error(TN_ERR_NOMEM, "out of memory");
  if (s == TN_OK && tn_file_exists(src)) {
    s = tn_read_file(src, &data, &len);
    if (s == TN_OK) s = tn_write_file_atomic(dst, data, len);
  }
  free(data);
  free(src);
  free(dst);
  return s;
}

/* config.json of the written model: the source's, with torch_dtype (and transformers' newer
 * "dtype") naming the written dtype and without quantization_config. */
static tn_status write_config(const char *src_dir, const char *out, tn_st_dtype dt, bool *had_qc) {
  char *src = tn_path_join(src_dir, "config.json"), *dst = tn_path_join(out, "config.json"), *text = NULL;
  size_t len;
  tn_status s = src && dst ? tn_read_file(src, &text, &len) : tn_error(TN_ERR_NOMEM, "out of memory");
  cJSON *j = s == TN_OK ? cJSON_ParseWithLength(text, len) : NULL;
  if (s == TN_OK && !cJSON_IsObject(j)) s = tn_error(TN_ERR_FORMAT, "%s: not a JSON object", src);
  if (s == TN_OK) {
    *had_qc = cJSON_HasObjectItem(j, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "quantization_config");
    const char *name = dt == TN_ST_BF16 ? "bfloat16" : dt == TN_ST_F16 ? "float16" : "float32";
    cJSON_DeleteItemFromObjectCaseSensitive(j, "torch_dtype");
    cJSON_AddItemToObject(j, "torch_dtype", cJSON_CreateString(name));
    if (cJSON_IsString(tn_json_field(j, "dtype"))) cJSON_ReplaceItemInObjectCaseSensitive(j, "dtype", cJSON_CreateString(name));
    char *o = cJSON_Print(j);
    s = o ? tn_write_file_atomic(dst, o, strlen(o)) : tn_error(TN_ERR_NOMEM, "out of memory");
    free(o);
  }
  cJSON_Delete(j);
  free(text);
  free(src);
  free(dst);
  return s;
}

tn_status tn_model_save_hf(const tn_model *m, const char *src_dir, const char *out, tn_st_dtype dt, int shards,
                           bool *had_qc) {
  static const char *optional[] = {"generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                   "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt",
                                   "added_tokens.json", "chat_template.jinja", "chat_template.json"};
  bool qc = false;
  TN_TRY(tn_mkdirs(out));
  TN_TRY(write_config(src_dir, out, dt, &qc));
  for (size_t i = 0; i < sizeof optional / sizeof *optional; i++) TN_TRY(copy_file(src_dir, out, optional[i]));
  if (had_qc) *had_qc = qc;
  return tn_model_save_weights(m, out, dt, shards);
}

tn_status tn_save_dtype_parse(const char *s, const tn_model *m, tn_st_dtype *out) {
  tn_st_dtype dt = m->cfg.dtype;
  if (s && !strcmp(s, "f32")) dt = TN_ST_F32;
  else if (s && !strcmp(s, "bf16")) dt = TN_ST_BF16;
  else if (s && !strcmp(s, "f16")) dt = TN_ST_F16;
  else if (s) return tn_error(TN_ERR_ARG, "unknown --dtype '%s' (f32, bf16, f16)", s);
  if (dt != TN_ST_F32 && dt != TN_ST_BF16 && dt != TN_ST_F16) dt = TN_ST_F32; /* no usable torch_dtype */
  *out = dt;
  return TN_OK;
}

tn_status tn_model_load_merged(tn_model **out, const char *model_dir, const char *adapter_dir, int base_dtype,
                               tn_merge_info *info) {
  *out = NULL;
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  lo.base_dtype = base_dtype;
  lo.head_dtype = TN_F32; /* no adapter changes the embedding / head: keep the checkpoint's values */
  tn_model *m = NULL;
  TN_TRY(tn_model_load_opts(&m, model_dir, &lo));
  if (info) *info = (tn_merge_info){.base_dtype = tn_dtype_name(m->base_dtype)};
  tn_status s = tn_model_to_f32(m); /* the low-precision projections as the model computes with them */
  tn_lora_set *set = NULL;
  if (s == TN_OK && adapter_dir) s = tn_lora_load(m, adapter_dir, NULL, &set);
  if (s == TN_OK && set) s = tn_lora_merge(set);
  if (s == TN_OK && set && info) info->modules = set->n;
  tn_lora_free(set);
  if (s != TN_OK) tn_model_free(m);
  else *out = m;
  return s;
}

void tn_merge_opts_default(tn_merge_opts *o) { *o = (tn_merge_opts){.base_dtype = "auto", .shards = 1}; }

tn_status tn_merge_save(const char *model_dir, const char *adapter_dir, const char *out_dir, const tn_merge_opts *o,
                        tn_merge_info *info) {
  if (!model_dir || !adapter_dir || !out_dir) return tn_error(TN_ERR_ARG, "tn_merge_save: NULL argument");
  tn_merge_opts d;
  tn_merge_opts_default(&d);
  if (!o) o = &d;
  if (o->shards < 1) return tn_error(TN_ERR_ARG, "tn_merge_save: shards must be >= 1 (got %d)", o->shards);
  int bd;
  TN_TRY(tn_parse_base_dtype(o->base_dtype ? o->base_dtype : "auto", &bd));
  tn_merge_info mi = {0};
  tn_model *m = NULL;
  TN_TRY(tn_model_load_merged(&m, model_dir, adapter_dir, bd, &mi));
  tn_st_dtype dt = TN_ST_F32;
  tn_status s = tn_save_dtype_parse(o->dtype, m, &dt);
  if (s == TN_OK) s = tn_model_save_hf(m, model_dir, out_dir, dt, o->shards, &mi.had_quant_config);
  mi.dtype = dt == TN_ST_BF16 ? "bf16" : dt == TN_ST_F16 ? "f16" : "f32";
  if (info) *info = mi;
  tn_model_free(m);
  return s;
}
