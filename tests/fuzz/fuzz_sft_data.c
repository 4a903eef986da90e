/* fuzz_sft_data.c - libFuzzer harness: an SFT JSONL file (messages, prompt/completion,
 * text, Tunix "prompts") through tn_sft_load with the byte tokenizer; the first input
 * byte picks max_seq_len and the chat format. Accepted examples must hold in-range ids,
 * 0/1 masks and n_targets equal to the mask's sum; an eval split is then taken.
 * Not for: batching (the trainers). */
#include "fuzz_common.h"
#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const tn_tokenizer *tok = fz_byte_tokenizer();
  if (size == 0) return 0;
  const char *path = fz_write(NULL, "sft.jsonl", data + 1, size - 1, 0);
  static const int lens[4] = {0, 1, 7, 64};
  tn_sft_data_opts o = {lens[data[0] & 3], (data[0] >> 2) & 1 ? TN_CHAT_CHATML : TN_CHAT_AUTO};
  tn_dataset d = {0}, ev = {0};
  tn_error_clear();
  tn_status s = tn_sft_load(&d, path, tok, &o);
  fz_check(s, "tn_sft_load");
  if (s != TN_OK) return 0;
  const int V = tn_tokenizer_vocab_size(tok);
  for (int i = 0; i < d.n; i++) {
    const tn_example *e = &d.ex[i];
    int t = 0;
    if (e->n < 0 || (o.max_seq_len && e->n > o.max_seq_len)) abort();
    for (int k = 0; k < e->n; k++) {
      if (e->ids[k] < 0 || e->ids[k] >= V || e->mask[k] > 1) abort();
      t += e->mask[k];
    }
    if (t != e->n_targets) abort();
  }
  tn_error_clear();
  fz_check(tn_dataset_split(&d, &ev, 0.25f, 7), "tn_dataset_split");
  tn_dataset_free(&ev);
  tn_dataset_free(&d);
  return 0;
}
