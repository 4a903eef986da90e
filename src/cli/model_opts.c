/* model_opts.c - the model options of the inference commands (generate, eval, logits, merge,
 * export, serve), declared once: the rows (--model, --adapter, --adapter-name, --tokenizer,
 * --base-dtype, --head-dtype, --chat-template) and the one path that loads model, tokenizer and
 * adapters from them, with the same errors for every command.
 * Not for: the trainers' options (src/train/opts.c), the server's own model loading (src/serve). */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "generate/generate.h"
#include "model/lora.h"

void tn_cli_model_default(tn_cli_model *mo) { *mo = (tn_cli_model){.head_dtype = "auto"}; }

int tn_cli_model_rows(tn_flag *out, tn_cli_model *mo, unsigned has) {
  const struct { unsigned bit; tn_flag row; } rows[] = {
    {TN_CM_MODEL, {"model", 's', &mo->model, "model directory (HF layout)"}},
    {TN_CM_ADAPTER, {"adapter", 's', &mo->adapter, "PEFT LoRA adapter: DIR, or several by name: NAME=DIR,NAME=DIR"}},
    {TN_CM_ADAPTER_NAME, {"adapter-name", 's', &mo->adapter_name, "which named adapter is active (default: the first)"}},
    {TN_CM_TOKENIZER, {"tokenizer", 's', &mo->tokenizer, "tokenizer directory or tokenizer.json (default: the model directory)"}},
    {TN_CM_BASE_DTYPE, {"base-dtype", 's', &mo->base_dtype, "storage of the frozen projections: f32 | bf16 | nf4 | auto "
                                                           "(default: f32, nf4 for bitsandbytes 4-bit checkpoints)"}},
    {TN_CM_HEAD_DTYPE, {"head-dtype", 's', &mo->head_dtype, "embedding and LM head: f32 | bf16 | auto (default: f32, or under "
                        "a bf16/nf4 base bf16 except a bitsandbytes checkpoint follows its bnb_4bit_compute_dtype; bf16 = faster)"}},
    {TN_CM_CHAT_TEMPLATE, {"chat-template", 's', &mo->chat_template, "a .jinja chat template used instead of the model's"}},
  };
  int n = 0;
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
    if (has & rows[i].bit) out[n++] = rows[i].row;
  return n;
}

tn_status tn_cli_load_opts(const tn_cli_model *mo, tn_load_opts *lo) {
  TN_TRY(tn_parse_base_dtype(mo->base_dtype ? mo->base_dtype : "auto", &lo->base_dtype));
  return tn_parse_head_dtype(mo->head_dtype ? mo->head_dtype : "auto", &lo->head_dtype);
}

/* merge/export: the adapter merged onto the weights it was trained on (its run manifest's
 * base-dtype when --base-dtype is not given) */
static tn_status load_merged(const char *cmd, const tn_cli_model *mo, tn_cli_loaded *out) {
  const char *bd = mo->base_dtype;
  char *from_run = NULL, *manifest = NULL;
  if (mo->adapter && !bd && (from_run = tn_cli_trained_base_dtype(mo->adapter, &manifest)) != NULL &&
      (!strcmp(from_run, "nf4") || !strcmp(from_run, "bf16"))) {
    bd = from_run;
    fprintf(stderr, "tunic %s: %s: the adapter was trained on a %s base: merging onto those weights "
            "(--base-dtype f32: onto the checkpoint's own)\n", cmd, manifest, from_run);
  }
  int base;
  tn_status s = tn_parse_base_dtype(bd ? bd : "auto", &base);
  if (s == TN_OK && mo->adapter && strchr(mo->adapter, ','))
    s = tn_error(TN_ERR_ARG, "--adapter %s: one adapter directory is merged at a time", mo->adapter);
  if (s == TN_OK) s = tn_model_load_merged(&out->model, mo->model, mo->adapter, base, &out->merge);
  free(from_run);
  free(manifest);
  return s;
}

tn_status tn_cli_model_load(const char *cmd, const tn_cli_model *mo, unsigned how, tn_cli_loaded *out) {
  *out = (tn_cli_loaded){0};
  if (!mo->model) return tn_error(TN_ERR_ARG, "--model is required");
  if (mo->adapter_name && !mo->adapter) return tn_error(TN_ERR_ARG, "--adapter-name needs --adapter");
  tn_status s = TN_OK;
  if (how & TN_CL_MERGE) s = load_merged(cmd, mo, out);
  const tn_infer_spec sp = {.model = mo->model, .adapter = (how & TN_CL_MERGE) ? NULL : mo->adapter,
                            .adapter_name = mo->adapter_name, .tokenizer = mo->tokenizer, .chat_template = mo->chat_template,
                            .base_dtype = mo->base_dtype, .head_dtype = mo->head_dtype};
  const unsigned ih = ((how & TN_CL_TOKENIZER) ? TN_INFER_TOKENIZER : 0) | ((how & TN_CL_TOKENIZER_TRY) ? TN_INFER_TOKENIZER_TRY : 0);
  tn_infer_loaded il = {0};
  if (s == TN_OK && !(how & TN_CL_MERGE)) { /* the shared inference loader: model, tokenizer, adapters */
    s = tn_infer_load(&sp, ih, &il);
    out->model = il.model;
    out->tok = il.tok;
    out->loras = il.loras;
    out->n_loras = il.n_loras;
  } else if (s == TN_OK) { /* the merged model's tokenizer, the same way */
    s = tn_infer_load_tokenizer(&sp, ih, &out->tok);
  }
  if (s != TN_OK) tn_cli_loaded_free(out);
  return s;
}

void tn_cli_loaded_free(tn_cli_loaded *l) {
  tn_lora_sets_free(l->loras, l->n_loras);
  tn_tokenizer_free(l->tok);
  tn_model_free(l->model);
  *l = (tn_cli_loaded){0};
}
