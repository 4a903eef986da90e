/* cmd_init.c - `tunic init`: write a random-init checkpoint in Hugging Face layout. */
#include <stdio.h>
#include "cli/cli.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"
#include "tunic/tokenizer.h"

/* Merge {key: value} pairs into the --override JSON text (user overrides win). */
static char *merge_override(const char *user, cJSON *add) {
  cJSON *u = user ? cJSON_Parse(user) : NULL;
  if (u && cJSON_IsObject(u)) {
    cJSON *it;
    cJSON_ArrayForEach(it, u) {
      cJSON_DeleteItemFromObjectCaseSensitive(add, it->string);
      cJSON_AddItemToObject(add, it->string, cJSON_Duplicate(it, 1));
    }
  } else if (user) {
    cJSON_Delete(u);
    return strdup(user); /* let init report the malformed override */
  }
  cJSON_Delete(u);
  return cJSON_PrintUnformatted(add);
}

static tn_status copy_file(const char *from_dir, const char *to_dir, const char *name) {
  char *a = tn_path_join(from_dir, name), *b = tn_path_join(to_dir, name), *data;
  size_t len;
  tn_status s = TN_OK;
  if (tn_file_exists(a)) {
    s = tn_read_file(a, &data, &len);
    if (s == TN_OK) { s = tn_write_file_atomic(b, data, len); free(data); }
  }
  free(a);
  free(b);
  return s;
}

/* eos_token_id: the tokenizer's eos, and the end-of-turn token its chat template emits when the
 * vocabulary has it (generation then stops at the end of a chat turn): a list [eos, eot]. */
static void add_eos(cJSON *add, const tn_tokenizer *tk) {
  const int32_t eos = tn_tokenizer_eos_id(tk);
  tn_chat_format f;
  const char *name = tn_chat_detect(tk, &f) == TN_OK ? tn_chat_end_of_turn(f) : NULL;
  if (!name) tn_error_clear();
  const int32_t eot = name ? tn_tokenizer_token_to_id(tk, name, strlen(name)) : -1;
  if (eos >= 0 && eot >= 0 && eot != eos) {
    cJSON *e = cJSON_AddArrayToObject(add, "eos_token_id");
    cJSON_AddItemToArray(e, cJSON_CreateNumber(eos));
    cJSON_AddItemToArray(e, cJSON_CreateNumber(eot));
  } else if (eos >= 0 || eot >= 0) {
    cJSON_AddNumberToObject(add, "eos_token_id", eos >= 0 ? eos : eot);
  }
}

int tn_cmd_init(int argc, char **argv) {
  tn_init_opts o = {.arch = NULL, .size = "tiny", .dtype = "f32", .vocab = 0, .shards = 1, .seed = 0};
  const char *out = NULL, *tokenizer = NULL;
  bool force = false;
  tn_flag flags[] = {
    {"arch", 's', &o.arch, "llama | qwen2 | qwen3 | gemma3_text"},
    {"size", 's', &o.size, "tiny | small | 15m | qwen05b | 1b"},
    {"vocab", 'i', &o.vocab, "vocabulary size (default: the size's)"},
    {"out", 's', &out, "output directory"},
    {"seed", 'u', &o.seed, "random seed"},
    {"dtype", 's', &o.dtype, "f32 | bf16 | f16"},
    {"shards", 'i', &o.shards, "number of safetensors shards"},
    {"override", 's', &o.override_json, "JSON object merged into config.json"},
    {"tokenizer", 's', &tokenizer, "'bytes' (a byte-level tokenizer) or a directory whose tokenizer files are copied "
                                  "(e.g. from tunic train-tokenizer)"},
    {"force", 'b', &force, "write into --out even when it holds files other than a model's"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--arch A --out DIR [options]");
  if (r) return r > 0 ? 0 : 2;
  if (!o.arch || !out) {
    fprintf(stderr, "tunic init: --arch and --out are required\n");
    return 2;
  }
  char *ov = NULL;
  tn_status s = tn_cli_out_dir("out", out, tn_cli_model_files, force);
  if (s != TN_OK) return tn_cli_fail("init", s);
  /* the byte tokenizer is written into the output directory first and then read like any
   * other tokenizer directory (vocab size, bos/eos/pad from its files) */
  const bool bytes = tokenizer && !strcmp(tokenizer, "bytes");
  if (bytes) {
    s = tn_mkdirs(out);
    if (s == TN_OK) s = tn_write_byte_tokenizer(out);
    if (s != TN_OK) return tn_cli_fail("init", s);
    tokenizer = out;
  }
  if (tokenizer) {
    cJSON *add = cJSON_CreateObject();
    tn_tokenizer *tk;
    s = tn_tokenizer_load(tokenizer, &tk);
    if (s != TN_OK) { cJSON_Delete(add); return tn_cli_fail("init", s); }
    const int v = tn_tokenizer_vocab_size(tk); /* the byte tokenizer's model vocabulary is padded */
    cJSON_AddNumberToObject(add, "vocab_size", bytes ? (o.vocab > 0 ? o.vocab : TN_BYTE_TOKENIZER_VOCAB)
                                                     : o.vocab > v ? o.vocab : v);
    if (tn_tokenizer_bos_id(tk) >= 0) cJSON_AddNumberToObject(add, "bos_token_id", tn_tokenizer_bos_id(tk));
    add_eos(add, tk);
    if (tn_tokenizer_pad_id(tk) >= 0) cJSON_AddNumberToObject(add, "pad_token_id", tn_tokenizer_pad_id(tk));
    tn_tokenizer_free(tk);
    ov = merge_override(o.override_json, add);
    cJSON_Delete(add);
    o.override_json = ov;
  }
  s = tn_model_init_dir(out, &o);
  if (s == TN_OK && tokenizer && !bytes) {
    static const char *names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 3 && s == TN_OK; i++) s = copy_file(tokenizer, out, names[i]);
  }
  free(ov);
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
