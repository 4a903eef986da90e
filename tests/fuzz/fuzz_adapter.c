/* fuzz_adapter.c - libFuzzer harness: a PEFT adapter directory for a tiny llama (2
 * layers, C=16, H=2, KV=1, D=8). Input: adapter_config.json, then optionally NUL and
 * adapter_model.safetensors (absent: a fixed file with rank-2 q_proj and v_proj
 * adapters of both layers). tn_lora_load must accept or explain; an accepted adapter
 * is activated, merged into the weights and freed. Not for: training (tests/lora). */
#include "fuzz_common.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/lora.h"

static const char cfg[] =
    "{\"model_type\": \"llama\", \"vocab_size\": 32, \"hidden_size\": 16, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"intermediate_size\": 24}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *dir;
  static tn_model *m;
  static uint8_t *fixed;
  static size_t nfixed;
  if (!m) {
    dir = fz_subdir("adapter");
    tn_config c;
    fz_write(dir, "config.json", cfg, strlen(cfg), 0);
    if (tn_config_load(&c, dir) != TN_OK || tn_model_alloc(&m, &c) != TN_OK) abort();
    static float a[2 * 16], b[16 * 2];
    for (int i = 0; i < 32; i++) a[i] = b[i] = 0.01f * i;
    char names[8][96];
    tn_st_entry e[8];
    for (int l = 0, k = 0; l < 2; l++)
      for (int q = 0; q < 2; q++)
        for (int ab = 0; ab < 2; ab++, k++) {
          snprintf(names[k], 96, "base_model.model.model.layers.%d.self_attn.%s_proj.lora_%c.weight", l, q ? "v" : "q",
                   ab ? 'B' : 'A');
          e[k] = (tn_st_entry){names[k], TN_ST_F32, 2, {ab ? (q ? 8 : 16) : 2, ab ? 2 : 16}, ab ? b : a};
        }
    char *p = tn_path_join(dir, "fixed.safetensors");
    char *text;
    if (!p || tn_st_write(p, e, 8, NULL) != TN_OK || tn_read_file(p, &text, &nfixed) != TN_OK) abort();
    fixed = (uint8_t *)text;
    free(p);
  }
  const uint8_t *part[2];
  size_t len[2];
  int k = fz_split(data, size, 2, part, len);
  fz_write(dir, "adapter_config.json", part[0], len[0], 0);
  fz_write(dir, "adapter_model.safetensors", k > 1 ? part[1] : fixed, k > 1 ? len[1] : nfixed, 1);
  tn_lora_set *s = NULL;
  tn_error_clear();
  tn_status st = tn_lora_load(m, dir, NULL, &s);
  fz_check(st, "tn_lora_load");
  if (st != TN_OK) return 0;
  tn_lora_activate(s);
  tn_lora_deactivate(s);
  tn_lora_free(s);
  return 0;
}
