/* cmd_export.c - `tunic export --gguf OUT.gguf --model DIR [--adapter A] [--type T]`: the model,
 * with a LoRA adapter merged the way `tunic merge` merges it (tn_lora_merge, onto the weights
 * the adapter was trained on), and its tokenizer and chat template as one GGUF file for
 * llama.cpp / Ollama (src/model/gguf.c). Not for: other output formats (see `tunic merge`). */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "model/gguf.h"
#include "model/lora.h"
#include "tunic/tokenizer.h"

/* 1 when encoding with the special tokens prepends the bos token, 0 when not, -1 unknown */
static int tokenizer_adds_bos(const char *dir, int bos) {
  tn_tokenizer *tk = NULL;
  if (tn_tokenizer_load(dir, &tk) != TN_OK) { tn_error_clear(); return -1; }
  tn_encoding a = {0}, b = {0};
  int r = -1;
  if (tn_tokenizer_encode(tk, "a", 1, true, &a) == TN_OK && tn_tokenizer_encode(tk, "a", 1, false, &b) == TN_OK)
    r = a.n == b.n + 1 && a.ids[0] == bos;
  else tn_error_clear();
  tn_encoding_free(&a);
  tn_encoding_free(&b);
  tn_tokenizer_free(tk);
  return r;
}

int tn_cmd_export(int argc, char **argv) {
  const char *gguf = NULL, *model_dir = NULL, *adapter = NULL, *type = "f32", *base_dtype = NULL, *name = NULL;
  bool force = false;
  tn_flag flags[] = {
    {"gguf", 's', &gguf, "output GGUF file"},
    {"model", 's', &model_dir, "model directory (HF layout; a bitsandbytes 4-bit checkpoint is dequantised)"},
    {"adapter", 's', &adapter, "PEFT LoRA adapter merged into the weights first (as tunic merge does)"},
    {"type", 's', &type, "storage of the matrices: f32 | bf16 | q8_0 | q4_0 (ggml's blocks); norms and biases stay f32"},
    {"base-dtype", 's', &base_dtype, "weights the adapter is merged onto, as in tunic merge (default: what the adapter's "
                                     "run manifest says, else auto)"},
    {"name", 's', &name, "general.name of the file (default: the model directory's name)"},
    {"force", 'b', &force, "overwrite --gguf even when it is not a GGUF file"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--gguf OUT.gguf --model DIR [options]");
  if (r) return r > 0 ? 0 : 2;
  if (!gguf || !model_dir) {
    fprintf(stderr, "tunic export: --gguf and --model are required\n");
    return 2;
  }
  static const char *const magic[] = {"GGUF", NULL};
  tn_gguf_opts go = {.add_bos = -1};
  tn_status s = tn_gguf_parse_type(type, &go.type);
  if (s == TN_OK) s = tn_cli_out_file("gguf", gguf, magic, force);
  if (s != TN_OK) return tn_cli_fail("export", s);
  char *from_run = NULL, *manifest = NULL;
  if (adapter && !base_dtype && (from_run = tn_cli_trained_base_dtype(adapter, &manifest)) != NULL &&
      (!strcmp(from_run, "nf4") || !strcmp(from_run, "bf16")))
    base_dtype = from_run;
  free(manifest);
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  lo.head_dtype = TN_F32;
  s = tn_parse_base_dtype(base_dtype ? base_dtype : "auto", &lo.base_dtype);
  tn_model *m = NULL;
  if (s == TN_OK) s = tn_model_load_opts(&m, model_dir, &lo);
  free(from_run);
  if (s == TN_OK) s = tn_model_to_f32(m);
  tn_lora_set *set = NULL;
  if (s == TN_OK && adapter) s = tn_lora_load(m, adapter, NULL, &set);
  if (s == TN_OK && set) s = tn_lora_merge(set);
  char *base = NULL;
  if (s == TN_OK) {
    if (!name) {
      base = tn_strdup(model_dir);
      if (!base) s = tn_error(TN_ERR_NOMEM, "out of memory");
    }
    if (!name && base) {
      size_t n = strlen(base);
      while (n > 1 && base[n - 1] == '/') base[--n] = 0;
      name = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
    }
    go.name = name;
    go.add_bos = tokenizer_adds_bos(model_dir, m->cfg.bos_id);
    if (s == TN_OK) s = tn_gguf_export(m, model_dir, gguf, &go);
  }
  if (s == TN_OK)
    fprintf(stderr, "tunic export: wrote %s (%s, %s%s%s)\n", gguf, m->cfg.model_type, type,
            set ? ", adapter merged: " : "", set ? adapter : "");
  free(base);
  tn_lora_free(set);
  tn_model_free(m);
  return s == TN_OK ? 0 : tn_cli_fail("export", s);
}
