/* fuzz_pref_data.c - libFuzzer harness: a preference JSONL file (prompt / chosen /
 * rejected as strings or message lists) through tn_pref_load with the byte tokenizer;
 * the first input byte picks the length limits and chat mode. Accepted pairs must hold
 * in-range ids and lengths within the limits. Not for: the DPO loss. */
#include "fuzz_common.h"
#include "data/pref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const tn_tokenizer *tok = fz_byte_tokenizer();
  if (size == 0) return 0;
  const char *path = fz_write(NULL, "pref.jsonl", data + 1, size - 1, 0);
  static const int lens[4] = {0, 1, 5, 40};
  tn_pref_data_opts o = {lens[data[0] & 3], lens[(data[0] >> 2) & 3], (data[0] >> 4) & 1, TN_CHAT_AUTO};
  tn_pref_set ps = {0}, ev = {0};
  tn_error_clear();
  tn_status s = tn_pref_load(&ps, path, tok, &o);
  fz_check(s, "tn_pref_load");
  if (s != TN_OK) return 0;
  const int V = tn_tokenizer_vocab_size(tok);
  for (int i = 0; i < ps.n; i++) {
    const tn_pref_pair *p = &ps.p[i];
    if (p->np < 0 || p->nc < 0 || p->nr < 0) abort();
    if (o.max_prompt_len && p->np > o.max_prompt_len) abort();
    if (o.max_response_len && (p->nc > o.max_response_len || p->nr > o.max_response_len)) abort();
    for (int k = 0; k < p->np + p->nc + p->nr; k++)
      if (p->ids[k] < 0 || p->ids[k] >= V) abort();
  }
  tn_error_clear();
  fz_check(tn_pref_split(&ps, &ev, 0.5f, 3), "tn_pref_split");
  tn_pref_free(&ev);
  tn_pref_free(&ps);
  return 0;
}
