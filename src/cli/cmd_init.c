/* cmd_init.c - `tunic init`: write a random-init checkpoint in Hugging Face layout. */
#include <stdio.h>
#include "cli/cli.h"
#include "model/model.h"

int tn_cmd_init(int argc, char **argv) {
  tn_init_opts o = {.arch = NULL, .size = "tiny", .dtype = "f32", .vocab = 0, .shards = 1, .seed = 0};
  const char *out = NULL;
  tn_flag flags[] = {
    {"arch", 's', &o.arch, "llama | qwen2 | qwen3 | gemma3_text"},
    {"size", 's', &o.size, "tiny | small | 15m | qwen05b | 1b (default tiny)"},
    {"vocab", 'i', &o.vocab, "vocabulary size (default: the size's)"},
    {"out", 's', &out, "output directory"},
    {"seed", 'u', &o.seed, "random seed (default 0)"},
    {"dtype", 's', &o.dtype, "f32 | bf16 | f16 (default f32)"},
    {"shards", 'i', &o.shards, "number of safetensors shards (default 1)"},
    {"override", 's', &o.override_json, "JSON object merged into config.json"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--arch A --out DIR [options]");
  if (r) return r > 0 ? 0 : 2;
  if (!o.arch || !out) {
    fprintf(stderr, "tunic init: --arch and --out are required\n");
    return 2;
  }
  tn_status s = tn_model_init_dir(out, &o);
  if (s != TN_OK) return tn_cli_fail("init", s);
  tn_model *m;
  s = tn_model_load(&m, out);
  if (s != TN_OK) return tn_cli_fail("init", s);
  size_t n = 0;
  for (int i = 0; i < m->n_params; i++) n += m->params[i].numel;
  printf("wrote %s: %s, %zu parameters (%d layers, hidden %d, heads %d/%d, head_dim %d, ffn %d, vocab %d)\n", out,
         m->cfg.model_type, n, m->cfg.L, m->cfg.C, m->cfg.H, m->cfg.KV, m->cfg.D, m->cfg.F, m->cfg.V);
  tn_model_free(m);
  return 0;
}
