/* tunic/train.h - the trainers (public API): supervised fine-tuning, DPO/ORPO, logit
 * distillation and GRPO, full or LoRA (QLoRA on an NF4 base), each run to the end into a run
 * directory (run_manifest.json, metrics.jsonl, TensorBoard events, checkpoints/step_N,
 * the final model/ or adapter/; --resume continues bit-identically). These are the calls
 * `tunic sft|dpo|distill|grpo` make; option names follow the flags (docs/training.md).
 *
 *   tn_sft_opts o;
 *   tn_sft_opts_default(&o);
 *   o.model = "models/tiny"; o.data = "train.jsonl"; o.out = "runs/a"; o.lora_rank = 16;
 *   if (tn_sft_run(&o, NULL) != TN_OK) puts(tn_last_error());
 *
 * Ownership: the strings an options struct points to stay the caller's and must live until
 * the run returns. Runs are not reentrant across threads of one process (the kernels' bf16
 * switch and thread pool are process-wide). */
#ifndef TUNIC_TRAIN_H
#define TUNIC_TRAIN_H
#include <stdbool.h>
#include <stdint.h>
#include "tunic/base.h"
#include "tunic/rl.h"

#define TN_TRAIN_OPTS_FIELDS                                                                       \
  const char *model;       /* the model trained (distill: --student) */                             \
  const char *base_dtype;  /* frozen projections under LoRA: f32 | bf16 | nf4 | auto */              \
  const char *tokenizer;   /* NULL: the model's */                                                  \
  const char *data, *eval_data, *out, *chat_format;                                                 \
  const char *chat_template; /* a .jinja file used instead of the model's chat template */          \
  float eval_split;                                                                                 \
  int max_seq_len, batch_size, grad_accum, steps, epochs;                                           \
  float lr, lr_end;                                                                                 \
  const char *schedule;    /* constant | linear | cosine */                                         \
  int warmup_steps;                                                                                 \
  float weight_decay, beta1, beta2, adam_eps, max_grad_norm;                                        \
  int lora_rank;           /* 0: full fine-tuning */                                                \
  float lora_alpha, lora_dropout;                                                                   \
  bool rslora;                                                                                      \
  const char *lora_targets;                                                                         \
  int eval_every, save_every, keep_last;                                                            \
  uint64_t seed;                                                                                    \
  bool resume;                                                                                      \
  const char *precision;   /* f32 | bf16: the matmuls' operands (tn_train_opts_precision) */        \
  bool bf16_matmul;        /* --bf16-matmul: the old name of --precision bf16 */                  \
  bool recompute;          /* recompute each layer's activations in the backward pass */           \
  const char *field_map;   /* data rows' fields renamed: TARGET=SOURCE,... (NULL: none) */   \
  const char *base_adapter; /* a LoRA adapter merged into the model in memory before training */

typedef struct {
  TN_TRAIN_OPTS_FIELDS
} tn_train_opts;

/* The first member of every trainer's options: the shared fields, reachable both directly
 * (o->lr) and as one block (&o->train, for the helpers below). An anonymous union of two
 * structs with the same members (C11 anonymous struct/union). */
#define TN_TRAIN_OPTS          \
  union {                      \
    tn_train_opts train;       \
    struct {                   \
      TN_TRAIN_OPTS_FIELDS     \
    };                         \
  }

/* What a run was started with, for its manifest (all may be NULL / 0). */
typedef struct {
  const char *config_json;  /* the resolved configuration */
  int argc;                 /* the command line as given */
  char **argv;
} tn_run_info;

/* ---- supervised fine-tuning (prompt/completion or messages JSONL; loss on completions) ---- */
typedef struct {
  TN_TRAIN_OPTS;         /* model, data, out, batch size, lr, LoRA, ... (train/opts.h) */
  int log_every;
} tn_sft_opts;

/* The shared defaults (tn_train_opts_default), log_every 1. */
TN_API void tn_sft_opts_default(tn_sft_opts *o);
/* Train to the end (the driver in train/run.h); ri: for the manifest (may be NULL). */
TN_API tn_status tn_sft_run(const tn_sft_opts *o, const tn_run_info *ri);

/* ---- preference optimisation: DPO (sigmoid, ipo, hinge, robust) and ORPO ---- */
typedef struct {
  TN_TRAIN_OPTS;           /* model (the policy), data, out, batch size, lr, LoRA, ... (train/opts.h) */
  const char *ref_model;
  const char *loss;        /* sigmoid | ipo | hinge | robust */
  const char *algorithm;   /* dpo | orpo */
  float beta, label_smoothing, orpo_lambda;
  int max_prompt_length, max_response_length;
  bool chat, precompute_ref;
} tn_dpo_opts;

/* The shared defaults with lr 1e-6 and a linear schedule; DPO sigmoid loss, beta 0.1,
 * ORPO lambda 0.1, prompts and responses cut at 512 tokens. */
TN_API void tn_dpo_opts_default(tn_dpo_opts *o);
/* Train to the end (the driver in train/run.h); ri: for the manifest (may be NULL). */
TN_API tn_status tn_dpo_run(const tn_dpo_opts *o, const tn_run_info *ri);

/* ---- logit (and optional hidden-state) distillation from a teacher ---- */
typedef struct {
  TN_TRAIN_OPTS;               /* model = the student (--student), data, out, lr, LoRA, ... (train/opts.h) */
  const char *teacher;
  const char *teacher_dtype;   /* f32 | bf16 (frozen teacher projections) */
  const char *feature_layers;  /* "S:T,S:T": student hidden state S matched to teacher hidden state T
                                  (0 = embeddings, k = after k layers); NULL or "" = no feature loss */
  float feature_weight;        /* gamma of the feature MSE term */
  float temperature, alpha, jsd_beta, lmbda, gen_temperature;
  int top_k, max_new_tokens;
} tn_distill_opts;

/* The shared defaults; T 1, alpha 0.5, T^2 KL (jsd_beta -1), off-policy, 64 sampled tokens
 * at temperature 1 when on-policy, feature weight 1, teacher in f32. */
TN_API void tn_distill_opts_default(tn_distill_opts *o);
/* Train to the end (the driver in train/run.h); ri: for the manifest (may be NULL). */
TN_API tn_status tn_distill_run(const tn_distill_opts *o, const tn_run_info *ri);

/* ---- GRPO (and GSPO, Dr.GRPO/DAPO-style options) on prompts with verifiable rewards ---- */
typedef struct {
  const char *name;          /* metrics key rewards/NAME */
  float weight;
  tn_reward_callback fn;     /* tunic/rl.h: scores a batch of completions */
  void *user;
} tn_reward_fn;
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
  /* rewards written in C, added to those of `reward` (which may then be ""): each a
   * weighted term with its name in the metrics (rewards/NAME) */
  const tn_reward_fn *reward_fns;
  int n_reward_fns;
  /* the RL family (docs/rl.md): advantage estimator by OpenRLHF's names (grpo, drgrpo, rloo,
   * reinforce, reinforce_baseline; gae in tunic ppo); TRL's loss_type (grpo | dr_grpo | dapo |
   * bnpo: sets loss_agg) and importance_sampling_level (token | sequence: sets gspo), NULL =
   * not given; DAPO's dynamic sampling (groups whose rewards are all equal are dropped and
   * refilled from fresh prompts, at most max_num_gen_batches generation rounds per step) and
   * overlong soft penalty (the last overlong_buffer_len tokens before the generation limit
   * ramp the reward down to -overlong_penalty; 0 = off) */
  const char *advantage_estimator, *loss_type, *importance_sampling_level;
  bool dynamic_sampling;
  int max_num_gen_batches;
  int overlong_buffer_len;
  float overlong_penalty;
  /* PPO (advantage_estimator gae, tunic ppo): a value head on the policy's final-normed hidden
   * state with its own AdamW at critic_lr (< 0: lr), GAE (gamma, gae_lambda) over per-token
   * rewards (the outcome reward on the last token; with kl_method "reward" also -beta x k1 KL
   * to the reference on every token, else beta x KL in the loss as GRPO), advantages whitened
   * over the batch's tokens, value loss vf_coef x 0.5 max((V - R)^2, (V_clip - R)^2) with
   * clip_range_value (0 = none), entropy bonus ent_coef */
  float gamma, gae_lambda, clip_range_value, vf_coef, ent_coef, critic_lr;
  const char *kl_method;
  const char *critic;    /* PPO: a separate critic model's folder (same tokenizer; NULL: the head on the policy) */
} tn_grpo_opts;

TN_API void tn_grpo_opts_default(tn_grpo_opts *o);
/* Train to the end (the driver in train/run.h); ri: for the manifest (may be NULL). */
TN_API tn_status tn_grpo_run(const tn_grpo_opts *o, const tn_run_info *ri);
/* PPO's defaults: GRPO's with advantage_estimator gae, gamma 1, gae_lambda 0.95,
 * clip_range_value 0.2, vf_coef 0.1, ent_coef 0, kl_method reward, beta 0.05. */
TN_API void tn_ppo_opts_default(tn_grpo_opts *o);
/* tn_grpo_run with advantage_estimator gae (set here) */
TN_API tn_status tn_ppo_run(const tn_grpo_opts *o, const tn_run_info *ri);
#endif
