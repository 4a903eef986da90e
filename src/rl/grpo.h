/* grpo.h - Group Relative Policy Optimization (`tunic grpo`); see grpo.c.
 * Option names follow Tunix's GRPOConfig / RolloutConfig. */
#ifndef TN_GRPO_H
#define TN_GRPO_H
#include <stdbool.h>
#include <stdint.h>
#include "base/base.h"
#include "train/opts.h"
#include "train/run.h"

typedef struct {
  TN_TRAIN_OPTS;              /* model (the policy), data (prompts), out, lr, LoRA, ... (train/opts.h);
                                 batch_size = prompts per step; no epochs, eval or AdamW betas */
  const char *system_prompt;
  const char *reward, *reward_cmd, *rubric, *loss_agg, *kl_estimator, *scale_rewards;
  bool no_system_prompt, no_chat, mask_truncated, gspo;
  int num_generations;        /* G */
  int num_iterations;         /* mu */
  int micro_batch;            /* sequences per forward/backward (0: all) */
  int max_prompt_length, max_tokens_to_generate, top_k;
  float beta, epsilon, epsilon_high, temperature, top_p;
  float reward_cmd_timeout;   /* seconds the reward process may take for each answer line */
  /* debug (tests): every step's rollout as JSONL (one line per completion: ids, rewards,
   * advantage, old/ref/policy log-probs), and every step's gradient of the first inner
   * iteration (before clipping) as DIR/step_N.safetensors, one 1-D f32 tensor per row */
  const char *dump_rollouts, *dump_grads;
} tn_grpo_opts;

void tn_grpo_opts_default(tn_grpo_opts *o);
/* Train to the end (the driver in train/run.h); ri: for the manifest (may be NULL). */
tn_status tn_grpo_run(const tn_grpo_opts *o, const tn_run_info *ri);
#endif
