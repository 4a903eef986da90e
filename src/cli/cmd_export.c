/* cmd_export.c - `tunic export --gguf OUT.gguf --model DIR [--adapter A] [--type T]`: the model,
 * with a LoRA adapter merged the way `tunic merge` merges it (tn_lora_merge, onto the weights
 * the adapter was trained on), and its tokenizer and chat template as one GGUF file for
 * llama.cpp / Ollama (src/model/gguf.c). Not for: other output formats (see `tunic merge`). */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "model/gguf.h"
#include "tunic/tokenizer.h"

/* 1 when encoding with the special tokens prepends the bos token, 0 when not, -1 unknown */
static int tokenizer_adds_bos(const tn_tokenizer *tk, int bos) {
  if (!tk) return -1;
  tn_encoding a = {0}, b = {0};
  int r = -1;
  if (tn_tokenizer_encode(tk, "a", 1, true, &a) == TN_OK && tn_tokenizer_encode(tk, "a", 1, false, &b) == TN_OK)
    r = a.n == b.n + 1 && a.ids[0] == bos;
  else tn_error_clear();
  tn_encoding_free(&a);
  tn_encoding_free(&b);
  return r;
}

int tn_cmd_export(int argc, char **argv) {
  tn_cli_model mo;
  tn_cli_model_default(&mo);
  const char *gguf = NULL, *type = "f32", *name = NULL;
  bool force = false;
  const tn_flag own[] = {
    {"gguf", 's', &gguf, "output GGUF file"},
    {"type", 's', &type, "storage of the matrices: f32 | bf16 | q8_0 | q4_0 (ggml's blocks); norms and biases stay f32"},
    {"name", 's', &name, "general.name of the file (default: the model directory's name)"},
    {"force", 'b', &force, "overwrite --gguf even when it is not a GGUF file"},
  };
  tn_flag flags[TN_CM_MAX_ROWS + sizeof own / sizeof own[0]];
  int nf = tn_cli_model_rows(flags, &mo, TN_CM_MODEL | TN_CM_ADAPTER | TN_CM_BASE_DTYPE);
  tn_cli_opt(flags, nf, "model")->help = "model directory (HF layout; a bitsandbytes 4-bit checkpoint is dequantised)";
  tn_cli_opt(flags, nf, "adapter")->help = "PEFT LoRA adapter merged into the weights first (as tunic merge does)";
  tn_cli_opt(flags, nf, "base-dtype")->help =
      "weights the adapter is merged onto, as in tunic merge (default: what the adapter's run manifest says, else auto)";
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) flags[nf++] = own[i];
  int r = tn_cli_parse(argc, argv, flags, nf, "--gguf OUT.gguf --model DIR [options]");
  if (r) return r > 0 ? 0 : 2;
  if (!gguf || !mo.model) {
    fprintf(stderr, "tunic export: --gguf and --model are required\n");
    return 2;
  }
  static const char *const magic[] = {"GGUF", NULL};
  tn_gguf_opts go = {.add_bos = -1};
  tn_status s = tn_gguf_parse_type(type, &go.type);
  if (s == TN_OK) s = tn_cli_out_file("gguf", gguf, magic, force);
  if (s != TN_OK) return tn_cli_fail("export", s);
  tn_cli_loaded L;
  s = tn_cli_model_load("export", &mo, TN_CL_MERGE | TN_CL_TOKENIZER_TRY, &L);
  char *base = NULL;
  if (s == TN_OK) {
    if (!name) {
      base = tn_strdup(mo.model);
      if (!base) s = tn_error(TN_ERR_NOMEM, "out of memory");
    }
    if (!name && base) {
      size_t n = strlen(base);
      while (n > 1 && base[n - 1] == '/') base[--n] = 0;
      name = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
    }
    go.name = name;
    go.add_bos = tokenizer_adds_bos(L.tok, L.model->cfg.bos_id);
    if (s == TN_OK) s = tn_gguf_export(L.model, mo.model, gguf, &go);
  }
  if (s == TN_OK)
    fprintf(stderr, "tunic export: wrote %s (%s, %s%s%s)\n", gguf, L.model->cfg.model_type, type,
            mo.adapter ? ", adapter merged: " : "", mo.adapter ? mo.adapter : "");
  free(base);
  tn_cli_loaded_free(&L);
  return s == TN_OK ? 0 : tn_cli_fail("export", s);
}
