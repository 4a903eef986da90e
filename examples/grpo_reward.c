/* grpo_reward.c - GRPO with a reward function written in C, through libtunic's public API.
 * The reward: how many times the letter 'a' appears in the completion, counted up to 4 and
 * scaled to [0, 1] (0, 0.25, ..., 1). GRPO samples 4 completions per prompt, scores them
 * with this function and moves the policy (LoRA, rank 4) toward the better ones.
 *
 *   cc grpo_reward.c $(pkg-config --cflags --libs tunic) -o grpo_reward
 *   ./grpo_reward MODEL_DIR prompts.jsonl runs/grpo [steps]
 */
#include <stdio.h>
#include <stdlib.h>
#include <tunic.h>

static tn_status letter_a(void *user, int n, const char *const *prompts, const char *const *completions,
                          const struct cJSON *const *examples, float *out) {
  (void)user, (void)prompts, (void)examples;
  for (int i = 0; i < n; i++) {
    int count = 0;
    for (const char *c = completions[i]; *c && count < 4; c++) count += *c == 'a';
    out[i] = (float)count / 4.0f;
  }
  return TN_OK;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL_DIR PROMPTS.jsonl OUT_DIR [steps]\n", argv[0]);
    return 2;
  }
  tn_reward_fn fns[] = {{.name = "letter_a", .weight = 1.0f, .fn = letter_a, .user = NULL}};
  tn_grpo_opts o;
  tn_grpo_opts_default(&o);
  o.model = argv[1];
  o.data = argv[2];
  o.out = argv[3];
  o.reward = ""; /* only the C reward */
  o.reward_fns = fns;
  o.n_reward_fns = 1;
  o.steps = argc > 4 ? atoi(argv[4]) : 3;
  o.batch_size = 2;
  o.num_generations = 4;
  o.max_tokens_to_generate = 16;
  o.lora_rank = 4;
  o.lr = 1e-3f;
  o.seed = 1;
  const tn_status s = tn_grpo_run(&o, NULL);
  if (s != TN_OK) {
    fprintf(stderr, "grpo failed: %s: %s\n", tn_status_name(s), tn_last_error());
    return 1;
  }
  printf("adapter written to %s/adapter\n", o.out);
  return 0;
}
