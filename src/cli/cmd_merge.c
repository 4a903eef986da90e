/* cmd_merge.c - `tunic merge --model DIR --adapter A --out DIR2`: a LoRA adapter
 * merged into the base weights (W + scale * B A), written as a plain Hugging Face
 * checkpoint: config.json (torch_dtype set to the written dtype, no
 * quantization_config), generation_config.json and tokenizer files copied when
 * present, weights in the config's torch_dtype (or --dtype).
 *
 * QLoRA (issue 7): an adapter trained on an NF4 base learned a correction of the
 * NF4-dequantised weights, so it is merged onto those: a bitsandbytes 4-bit checkpoint
 * is dequantised (--base-dtype auto, the default), and a f32/bf16 checkpoint trained
 * with --base-dtype nf4 is merged with --base-dtype nf4 (quantised and dequantised
 * exactly as training loaded it); --base-dtype f32 merges onto the checkpoint's own
 * weights instead. Without --base-dtype, the adapter's run manifest (run_manifest.json in
 * the adapter directory or up to two levels above: RUN/adapter, RUN/checkpoints/step_N)
 * supplies the base dtype the adapter was trained with. The embedding and LM head (which no adapter changes) keep the
 * checkpoint's values. Not for: merging several adapters. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "model/model.h"
#include "model/lora.h"

static tn_status copy_file(const char *src_dir, const char *dst_dir, const char *name, bool required) {
  char *src = tn_path_join(src_dir, name), *dst = tn_path_join(dst_dir, name);
  tn_status s = TN_OK;
  if (tn_file_exists(src)) {
    char *data;
    size_t len;
    s = tn_read_file(src, &data, &len);
    if (s == TN_OK) {
      s = tn_write_file_atomic(dst, data, len);
      free(data);
    }
  } else if (required) {
    s = tn_error(TN_ERR_IO, "%s is missing", src);
  }
  free(src);
  free(dst);
  return s;
}

/* config.json of the merged model: the base's, with torch_dtype naming the written
 * dtype and without quantization_config (the weights are plain now). */
static tn_status write_config(const char *model_dir, const char *out, tn_st_dtype dt, bool *had_qc) {
  char *src = tn_path_join(model_dir, "config.json"), *dst = tn_path_join(out, "config.json"), *text = NULL;
  size_t len;
  tn_status s = tn_read_file(src, &text, &len);
  cJSON *j = s == TN_OK ? cJSON_ParseWithLength(text, len) : NULL;
  if (s == TN_OK && !cJSON_IsObject(j)) s = tn_error(TN_ERR_FORMAT, "%s: not a JSON object", src);
  if (s == TN_OK) {
    *had_qc = cJSON_HasObjectItem(j, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "quantization_config");
    const char *name = dt == TN_ST_BF16 ? "bfloat16" : dt == TN_ST_F16 ? "float16" : "float32";
    cJSON *v = cJSON_CreateString(name);
    if (cJSON_HasObjectItem(j, "torch_dtype")) cJSON_ReplaceItemInObjectCaseSensitive(j, "torch_dtype", v);
    else cJSON_AddItemToObject(j, "torch_dtype", v);
    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "dtype"))) /* newer transformers' name */
      cJSON_ReplaceItemInObjectCaseSensitive(j, "dtype", cJSON_CreateString(name));
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

char *tn_cli_trained_base_dtype(const char *adapter, char **where) {
  static const char *rel[] = {"run_manifest.json", "../run_manifest.json", "../../run_manifest.json"};
  for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
    char *path = tn_path_join(adapter, rel[i]), *text = NULL;
    size_t len;
    if (!tn_file_exists(path) || tn_read_file(path, &text, &len) != TN_OK) { free(path); continue; }
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "config");
    const cJSON *bd = c ? cJSON_GetObjectItemCaseSensitive(c, "base-dtype") : NULL;
    char *out = cJSON_IsString(bd) ? tn_strdup(bd->valuestring) : NULL;
    cJSON_Delete(j);
    if (out) { *where = path; return out; }
    free(path);
  }
  return NULL;
}

int tn_cmd_merge(int argc, char **argv) {
  const char *model_dir = NULL, *adapter = NULL, *out = NULL, *dtype = NULL, *base_dtype = NULL;
  int shards = 1;
  bool force = false;
  tn_flag flags[] = {
    {"model", 's', &model_dir, "base model directory (HF layout; a bitsandbytes 4-bit checkpoint is dequantised)"},
    {"adapter", 's', &adapter, "PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors)"},
    {"out", 's', &out, "output directory for the merged checkpoint"},
    {"dtype", 's', &dtype, "f32 | bf16 | f16 (default: the config's torch_dtype)"},
    {"base-dtype", 's', &base_dtype,
     "weights the adapter is merged onto: nf4 = the NF4-dequantised projections (for an adapter trained with "
     "--base-dtype nf4), f32 = the checkpoint's own, auto = nf4 for bitsandbytes 4-bit checkpoints, else f32 "
     "(default: what the adapter's run manifest says it was trained on, else auto); bf16 = the bf16-rounded "
     "projections"},
    {"shards", 'i', &shards, "number of safetensors shards (default 1)"},
    {"force", 'b', &force, "write into --out even when it holds files other than a model's, or is --model itself"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--model DIR --adapter A --out DIR2");
  if (r) return r > 0 ? 0 : 2;
  if (!model_dir || !adapter || !out) {
    fprintf(stderr, "tunic merge: --model, --adapter and --out are required\n");
    return 2;
  }
  tn_status s = tn_cli_out_dir("out", out, tn_cli_model_files, force);
  char *ro = realpath(out, NULL), *rm = realpath(model_dir, NULL);
  if (s == TN_OK && !force && ro && rm && !strcmp(ro, rm))
    s = tn_error(TN_ERR_ARG, "--out %s is the --model directory: the merge would replace the base model "
                 "(choose another directory, or --force)", out);
  free(ro);
  free(rm);
  if (s != TN_OK) return tn_cli_fail("merge", s);
  char *from_run = NULL, *manifest = NULL;
  if (!base_dtype && (from_run = tn_cli_trained_base_dtype(adapter, &manifest)) != NULL) {
    if (!strcmp(from_run, "nf4") || !strcmp(from_run, "bf16")) {
      base_dtype = from_run;
      fprintf(stderr, "tunic merge: %s: the adapter was trained on a %s base: merging onto those weights "
              "(--base-dtype f32: onto the checkpoint's own)\n", manifest, from_run);
    }
  }
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  lo.head_dtype = TN_F32; /* no adapter changes the embedding / head: keep the checkpoint's values */
  s = tn_parse_base_dtype(base_dtype ? base_dtype : "auto", &lo.base_dtype);
  free(manifest);
  tn_model *m = NULL;
  if (s == TN_OK) s = tn_model_load_opts(&m, model_dir, &lo);
  free(from_run);
  if (s != TN_OK) return tn_cli_fail("merge", s);
  const tn_dtype stored = m->base_dtype;
  /* the merge runs on f32 weights: the low-precision projections as the model computes
   * with them (NF4 dequantised, bf16 widened) */
  s = tn_model_to_f32(m);
  tn_st_dtype dt = m->cfg.dtype;
  if (s == TN_OK && dtype) {
    if (!strcmp(dtype, "f32")) dt = TN_ST_F32;
    else if (!strcmp(dtype, "bf16")) dt = TN_ST_BF16;
    else if (!strcmp(dtype, "f16")) dt = TN_ST_F16;
    else s = tn_error(TN_ERR_ARG, "unknown --dtype '%s' (f32, bf16, f16)", dtype);
  }
  if (s == TN_OK && dt != TN_ST_F32 && dt != TN_ST_BF16 && dt != TN_ST_F16)
    dt = TN_ST_F32; /* a config without a usable torch_dtype: keep full precision */
  tn_lora_set *set = NULL;
  if (s == TN_OK) s = tn_lora_load(m, adapter, NULL, &set);
  if (s == TN_OK) s = tn_lora_merge(set);
  if (s == TN_OK) s = tn_mkdirs(out);
  bool had_qc = false;
  if (s == TN_OK) s = write_config(model_dir, out, dt, &had_qc);
  static const char *optional[] = {"generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                   "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt",
                                   "added_tokens.json", "chat_template.jinja", "chat_template.json"};
  for (size_t i = 0; s == TN_OK && i < sizeof optional / sizeof *optional; i++)
    s = copy_file(model_dir, out, optional[i], false);
  if (s == TN_OK) s = tn_model_save_weights(m, out, dt, shards);
  if (s == TN_OK)
    fprintf(stderr, "tunic merge: %d modules of adapter %s merged into %s (%s)%s%s\n", set->n, adapter, out,
            tn_st_dtype_name(dt), stored == TN_NF4 ? ", onto the NF4-dequantised projections"
                                  : stored == TN_BF16 ? ", onto the bf16-rounded projections" : "",
            had_qc ? "; quantization_config dropped from config.json" : "");
  tn_lora_free(set);
  tn_model_free(m);
  return s == TN_OK ? 0 : tn_cli_fail("merge", s);
}
