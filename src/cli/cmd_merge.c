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
#include "base/json.h"

char *tn_cli_trained_base_dtype(const char *adapter, char **where) {
  static const char *rel[] = {"run_manifest.json", "../run_manifest.json", "../../run_manifest.json"};
  for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
    char *path = tn_path_join(adapter, rel[i]), *text = NULL;
    size_t len;
    if (!tn_file_exists(path) || tn_read_file(path, &text, &len) != TN_OK) { free(path); continue; }
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *c = tn_json_field(j, "config");
    const cJSON *bd = c ? tn_json_field(c, "base-dtype") : NULL;
    char *out = cJSON_IsString(bd) ? tn_strdup(bd->valuestring) : NULL;
    cJSON_Delete(j);
    if (out) { *where = path; return out; }
    free(path);
  }
  return NULL;
}

int tn_cmd_merge(int argc, char **argv) {
  tn_cli_model mo;
  tn_cli_model_default(&mo);
  const char *out = NULL, *dtype = NULL;
  int shards = 1;
  bool force = false;
  const tn_flag own[] = {
    {"out", 's', &out, "output directory for the merged checkpoint"},
    {"dtype", 's', &dtype, "f32 | bf16 | f16 (default: the config's torch_dtype)"},
    {"shards", 'i', &shards, "number of safetensors shards (default 1)"},
    {"force", 'b', &force, "write into --out even when it holds files other than a model's, or is --model itself"},
  };
  tn_flag flags[TN_CM_MAX_ROWS + sizeof own / sizeof own[0]];
  int nf = tn_cli_model_rows(flags, &mo, TN_CM_MODEL | TN_CM_ADAPTER | TN_CM_BASE_DTYPE);
  tn_cli_opt(flags, nf, "model")->help = "base model directory (HF layout; a bitsandbytes 4-bit checkpoint is dequantised)";
  tn_cli_opt(flags, nf, "adapter")->help = "PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors)";
  tn_cli_opt(flags, nf, "base-dtype")->help =
      "weights the adapter is merged onto: nf4 = the NF4-dequantised projections (for an adapter trained with "
      "--base-dtype nf4), f32 = the checkpoint's own, auto = nf4 for bitsandbytes 4-bit checkpoints, else f32 "
      "(default: what the adapter's run manifest says it was trained on, else auto); bf16 = the bf16-rounded "
      "projections";
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) flags[nf++] = own[i];
  int r = tn_cli_parse(argc, argv, flags, nf, "--model DIR --adapter A --out DIR2");
  if (r) return r > 0 ? 0 : 2;
  if (!mo.model || !mo.adapter || !out) {
    fprintf(stderr, "tunic merge: --model, --adapter and --out are required\n");
    return 2;
  }
  tn_status s = tn_cli_out_dir("out", out, tn_cli_model_files, force);
  char *ro = realpath(out, NULL), *rm = realpath(mo.model, NULL);
  if (s == TN_OK && !force && ro && rm && !strcmp(ro, rm))
    s = tn_error(TN_ERR_ARG, "--out %s is the --model directory: the merge would replace the base model "
                 "(choose another directory, or --force)", out);
  free(ro);
  free(rm);
  if (s != TN_OK) return tn_cli_fail("merge", s);
  tn_cli_loaded L;
  s = tn_cli_model_load("merge", &mo, TN_CL_MERGE, &L);
  tn_st_dtype dt = TN_ST_F32;
  if (s == TN_OK) s = tn_save_dtype_parse(dtype, L.model, &dt);
  bool had_qc = false;
  if (s == TN_OK) s = tn_model_save_hf(L.model, mo.model, out, dt, shards, &had_qc);
  if (s == TN_OK)
    fprintf(stderr, "tunic merge: %d modules of adapter %s merged into %s (%s)%s%s\n", L.merge.modules, mo.adapter, out,
            tn_st_dtype_name(dt), !strcmp(L.merge.base_dtype, "nf4") ? ", onto the NF4-dequantised projections"
                                  : !strcmp(L.merge.base_dtype, "bf16") ? ", onto the bf16-rounded projections" : "",
            had_qc ? "; quantization_config dropped from config.json" : "");
  tn_cli_loaded_free(&L);
  return s == TN_OK ? 0 : tn_cli_fail("merge", s);
}
