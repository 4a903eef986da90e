/* fuzz_config.c - libFuzzer harness: a model's config.json (first input byte even) or,
 * beside a fixed valid config.json, its generation_config.json (odd), through
 * tn_config_load; an accepted config must give a consistent parameter table
 * (tn_weight_table) and RoPE frequencies. Not for: weights (fuzz_safetensors.c). */
#include "fuzz_common.h"
#include "model/model.h"

static const char valid_cfg[] =
    "{\"model_type\": \"llama\", \"vocab_size\": 300, \"hidden_size\": 16, \"num_hidden_layers\": 2,"
    " \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"intermediate_size\": 32, \"eos_token_id\": 2}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *dir;
  if (!dir) dir = fz_subdir("cfg");
  if (size == 0) return 0;
  const bool gen = data[0] & 1;
  fz_write(dir, "config.json", gen ? (const uint8_t *)valid_cfg : data + 1, gen ? strlen(valid_cfg) : size - 1, 0);
  fz_write(dir, "generation_config.json", data + 1, gen ? size - 1 : (size_t)-1, 1);
  tn_config c;
  tn_error_clear();
  tn_status s = tn_config_load(&c, dir);
  fz_check(s, "tn_config_load");
  if (s != TN_OK) return 0;
  tn_weights w = {0};
  w.layers = calloc(c.L, sizeof *w.layers);
  if (!w.layers) abort(); /* tn_config_load bounds L */
  tn_weight_entry *e = NULL;
  int n = 0;
  tn_error_clear();
  s = tn_weight_table(&c, &w, &e, &n);
  fz_check(s, "tn_weight_table");
  for (int i = 0; s == TN_OK && i < n; i++) {
    size_t numel = 1;
    for (int d = 0; d < e[i].ndim; d++) numel *= (size_t)e[i].shape[d];
    if (numel != e[i].numel || e[i].shape[0] <= 0) abort();
  }
  free(e);
  free(w.layers);
  float *inv = malloc(sizeof(float) * (size_t)(c.D / 2 + 1));
  if (!inv) abort();
  tn_rope_inv_freq(inv, &c.rope, c.D);
  tn_rope_inv_freq(inv, &c.rope_local, c.D);
  free(inv);
  tn_config_free(&c);
  return 0;
}
