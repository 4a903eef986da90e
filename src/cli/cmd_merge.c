/* cmd_merge.c - `tunic merge --model DIR --adapter A --out DIR2`: a LoRA adapter
 * merged into the base weights (W + scale * B A), written as a plain Hugging Face
 * checkpoint: config.json, generation_config.json and tokenizer files copied when
 * present, weights in the config's torch_dtype. Not for: merging several adapters. */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "model/model.h"
#include "train/lora.h"

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

int tn_cmd_merge(int argc, char **argv) {
  const char *model_dir = NULL, *adapter = NULL, *out = NULL, *dtype = NULL;
  int shards = 1;
  tn_flag flags[] = {
    {"model", 's', &model_dir, "base model directory (HF layout)"},
    {"adapter", 's', &adapter, "PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors)"},
    {"out", 's', &out, "output directory for the merged checkpoint"},
    {"dtype", 's', &dtype, "f32 | bf16 | f16 (default: the config's torch_dtype)"},
    {"shards", 'i', &shards, "number of safetensors shards"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--model DIR --adapter A --out DIR2");
  if (r) return r > 0 ? 0 : 2;
  if (!model_dir || !adapter || !out) {
    fprintf(stderr, "tunic merge: --model, --adapter and --out are required\n");
    return 2;
  }
  tn_model *m;
  tn_status s = tn_model_load(&m, model_dir);
  if (s != TN_OK) return tn_cli_fail("merge", s);
  tn_st_dtype dt = m->cfg.dtype;
  if (dtype) {
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
  /* config.json verbatim (its torch_dtype still describes the weights unless --dtype
   * asked otherwise: then warn) */
  if (s == TN_OK) s = copy_file(model_dir, out, "config.json", true);
  static const char *optional[] = {"generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                   "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt",
                                   "added_tokens.json", "chat_template.jinja", "chat_template.json"};
  for (size_t i = 0; s == TN_OK && i < sizeof optional / sizeof *optional; i++)
    s = copy_file(model_dir, out, optional[i], false);
  if (s == TN_OK && dt != m->cfg.dtype)
    fprintf(stderr, "tunic merge: warning: weights written as %s while config.json says %s\n", tn_st_dtype_name(dt),
            tn_st_dtype_name(m->cfg.dtype));
  if (s == TN_OK) s = tn_model_save_weights(m, out, dt, shards);
  if (s == TN_OK)
    fprintf(stderr, "tunic merge: %d modules of adapter %s merged into %s (%s)\n", set->n, adapter, out,
            tn_st_dtype_name(dt));
  tn_lora_free(set);
  tn_model_free(m);
  return s == TN_OK ? 0 : tn_cli_fail("merge", s);
}
