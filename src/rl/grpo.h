/* grpo.h - Group Relative Policy Optimization (`tunic grpo`); see grpo.c.
 * Option names follow Tunix's GRPOConfig / RolloutConfig. */
#ifndef TN_GRPO_H
#define TN_GRPO_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"

typedef struct {
  const char *model, *base_dtype, *tokenizer, *data, *out, *chat_format, *system_prompt;
  const char *reward, *reward_cmd, *rubric, *schedule, *loss_agg, *kl_estimator, *scale_rewards;
  const char *lora_targets;
  bool no_system_prompt, no_chat, mask_truncated, gspo, resume;
  int num_generations;        /* G */
  int num_iterations;         /* mu */
  int batch_size;             /* prompts per step */
  int micro_batch;            /* sequences per forward/backward (0: all) */
  int steps, max_prompt_length, max_tokens_to_generate, top_k, warmup_steps, save_every, keep_last;
  float beta, epsilon, epsilon_high, temperature, top_p, lr, lr_end, weight_decay, max_grad_norm;
  int lora_rank;
  float lora_alpha;
  uint64_t seed;
  /* debug (tests): every step's rollout as JSONL (one line per completion: ids, rewards,
   * advantage, old/ref/policy log-probs), and every step's gradient of the first inner
   * iteration (before clipping) as DIR/step_N.safetensors, one 1-D f32 tensor per row */
  const char *dump_rollouts, *dump_grads;
} tn_grpo_opts;

void tn_grpo_opts_default(tn_grpo_opts *o);
tn_status tn_grpo_run(const tn_grpo_opts *o, const char *config_json, int argc, char **argv);
#endif
