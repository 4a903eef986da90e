/* fuzz_prompts.c - libFuzzer harness: a prompt JSONL file as GRPO rollouts and
 * `tunic eval` read it (prompt or messages, answer / expected_answer, id, category)
 * through tn_prompts_load with the byte tokenizer; the first input byte picks chat or
 * plain template, a system prompt and max_prompt_len. Accepted prompts must hold
 * in-range ids within the limit; each reference is read back.
 * Not for: generation or scoring (fuzz_extract.c). */
#include "fuzz_common.h"
#include "data/prompts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const tn_tokenizer *tok = fz_byte_tokenizer();
  if (size == 0) return 0;
  const char *path = fz_write(NULL, "prompts.jsonl", data + 1, size - 1, 0);
  static const int lens[4] = {0, 1, 6, 50};
  tn_prompt_opts o = {(data[0] >> 2) & 1 ? TN_DEFAULT_SYSTEM_PROMPT : NULL, (data[0] >> 3) & 1 ? "question" : NULL,
                      (data[0] >> 4) & 1, TN_CHAT_AUTO, lens[data[0] & 3]};
  tn_prompt_set ps = {0};
  tn_error_clear();
  tn_status s = tn_prompts_load(&ps, path, tok, &o);
  fz_check(s, "tn_prompts_load");
  if (s != TN_OK) return 0;
  const int V = tn_tokenizer_vocab_size(tok);
  for (int i = 0; i < ps.n; i++) {
    const tn_prompt *p = &ps.p[i];
    if (p->n < 0 || (o.max_prompt_len && p->n > o.max_prompt_len) || !p->text) abort();
    for (int k = 0; k < p->n; k++)
      if (p->ids[k] < 0 || p->ids[k] >= V) abort();
    char ref[64];
    if (tn_prompt_reference(p, ref, sizeof ref) && strlen(ref) >= sizeof ref) abort();
  }
  tn_prompts_free(&ps);
  return 0;
}
