/* cmd_grpo.c - `tunic grpo`: the shared training options (train/opts.h) + GRPO's own (Tunix
 * names) -> tn_grpo_run; with PPO's own rows the same table is `tunic ppo` (cmd_ppo.c). */
#include "cli/cli.h"
#include <string.h>
#include "rl/grpo.h"
#include "agent/agentic.h"

static tn_agent_opts agent; /* --tools/--env/--env-cmd/--mcp: multi-turn episodes (src/agent/agentic.c) */

static tn_status run(const void *o, const char *config_json, int argc, char **argv) {
  const tn_run_info ri = {.config_json = config_json, .argc = argc, .argv = argv};
  if (tn_agent_opts_active(&agent) || agent.async_rollouts) return tn_agentic_grpo_run(o, &agent, &ri);
  return tn_grpo_run(o, &ri);
}

static tn_status run_ppo(const void *o, const char *config_json, int argc, char **argv) {
  const tn_run_info ri = {.config_json = config_json, .argc = argc, .argv = argv};
  if (tn_agent_opts_active(&agent) || agent.async_rollouts) { /* multi-turn episodes: the agentic trainer with GAE */
    tn_grpo_opts po = *(const tn_grpo_opts *)o;
    po.advantage_estimator = "gae";
    return tn_agentic_grpo_run(&po, &agent, &ri);
  }
  return tn_ppo_run(o, &ri);
}

int tn_cli_rl(int argc, char **argv, bool ppo) {
  tn_grpo_opts o;
  if (ppo) tn_ppo_opts_default(&o);
  else tn_grpo_opts_default(&o);
  tn_agent_opts_default(&agent);
  const tn_flag own[] = {
    {"reward", 's', &o.reward, "weighted rewards NAME:WEIGHT,... (format_exact, format_approx, answer, numeric, length, rubric, cmd)"},
    {"reward-cmd", 's', &o.reward_cmd,
     "external reward process (JSON lines in, one number per line out), run with /bin/sh -c: a run config can run "
     "any command, so read one from someone else before using it"},
    {"reward-cmd-timeout", 'f', &o.reward_cmd_timeout, "seconds the reward process may take for each answer line"},
    {"rubric", 's', &o.rubric, "YAML rubric for the 'rubric' reward"},
    {"system-prompt", 's', &o.system_prompt, "system prompt (default: the reasoning/answer format prompt)"},
    {"no-system-prompt", 'b', &o.no_system_prompt, "no system prompt"},
    {"no-chat", 'b', &o.no_chat, "plain prompts even when the tokenizer has a chat template"},
    {"num-generations", 'i', &o.num_generations, "G: completions per prompt"},
    {"num-iterations", 'i', &o.num_iterations, "mu: policy updates per rollout"},
    {"micro-batch", 'i', &o.micro_batch, "sequences per forward/backward (default: all)"},
    {"max-prompt-length", 'i', &o.max_prompt_length, "keep the last N prompt tokens"},
    {"max-tokens-to-generate", 'i', &o.max_tokens_to_generate, "completion length limit"},
    {"temperature", 'f', &o.temperature, "sampling temperature"},
    {"top-p", 'f', &o.top_p, "nucleus sampling"},
    {"top-k", 'i', &o.top_k, "top-k sampling (0 = off)"},
    {"beta", 'f', &o.beta, "KL coefficient (0 = no reference model)"},
    {"epsilon", 'f', &o.epsilon, "PPO clip epsilon"},
    {"epsilon-high", 'f', &o.epsilon_high, "upper clip epsilon (default: = epsilon)"},
    {"kl-estimator", 's', &o.kl_estimator, "k1 | k3 | mse"},
    {"loss-agg", 's', &o.loss_agg, "sequence-mean-token-mean | token-mean | sequence-mean-token-scale"},
    {"scale-rewards", 's', &o.scale_rewards, "group | batch | none"},
    {"mask-truncated", 'b', &o.mask_truncated, "drop completions cut at max_tokens_to_generate from the loss"},
    {"gspo", 'b', &o.gspo, "GSPO: sequence-level importance ratio"},
    {"eval-data", 's', &o.eval_data, "held-out prompts with answers: greedy accuracy logged as eval/accuracy"},
    {"eval-every", 'i', &o.eval_every, "held-out accuracy every N steps (0: at the end only)"},
    {"advantage-estimator", 's', &o.advantage_estimator,
     "grpo (group_norm) | drgrpo (dr_grpo) | rloo | reinforce (reinforce_pp: REINFORCE++) | reinforce_baseline "
     "(reinforce_pp_baseline) (OpenRLHF's names; gae: tunic ppo)"},
    {"loss-type", 's', &o.loss_type, "TRL's loss_type: grpo | dr_grpo | dapo | bnpo (sets --loss-agg)"},
    {"loss-agg-mode", 's', &o.loss_agg, "Tunix's name of --loss-agg"},
    {"importance-sampling-level", 's', &o.importance_sampling_level, "TRL's: token | sequence (= --gspo)"},
    {"dynamic-sampling", 'b', &o.dynamic_sampling,
     "DAPO: drop groups whose rewards are all equal and refill the batch from fresh prompts"},
    {"max-num-gen-batches", 'i', &o.max_num_gen_batches,
     "dynamic sampling: generation rounds per step at most (verl's name; then flat groups fill the batch)"},
    {"overlong-buffer-len", 'i', &o.overlong_buffer_len,
     "DAPO soft overlong penalty: the last N tokens before the generation limit (0 = off)"},
    {"overlong-penalty", 'f', &o.overlong_penalty, "the penalty at the limit (OpenRLHF's overlong_penalty_factor)"},
    {"dump-rollouts", 's', &o.dump_rollouts, "debug: write each step's completions, rewards, advantages, log-probs (JSONL)"},
    TN_AGENT_FLAGS(agent),
    {"filter-statuses", 's', &agent.filter_statuses,
     "agentic: episode statuses dropped from the loss (done, truncated, max_turns, timeout, env_error)"},
    {"async-rollouts", 'b', &agent.async_rollouts, "agentic: generate the next batch during the update (not implemented)"},
    {"dump-grads", 's', &o.dump_grads,
     "debug: write each step's gradient (first inner iteration, before clipping) to DIR/step_N.safetensors"},
  };
  const tn_flag ppo_own[] = {
    {"gamma", 'f', &o.gamma, "PPO: discount of the per-token rewards"},
    {"gae-lambda", 'f', &o.gae_lambda, "PPO: GAE lambda"},
    {"clip-range-value", 'f', &o.clip_range_value, "PPO: value clipping around the rollout's values (0 = off)"},
    {"vf-coef", 'f', &o.vf_coef, "PPO: weight of the value loss"},
    {"ent-coef", 'f', &o.ent_coef, "PPO: entropy bonus weight"},
    {"critic-lr", 'f', &o.critic_lr, "PPO: the critic's learning rate (< 0: --lr), on --lr's schedule"},
    {"critic", 's', &o.critic, "PPO: a separate critic model DIR (same tokenizer) with a value head, trained by its own AdamW"},
    {"kl-method", 's', &o.kl_method, "PPO: reward (-beta x KL per token in the rewards) | loss (beta x KL in the loss)"},
  };
  enum { NOWN = sizeof own / sizeof own[0], NPPO = sizeof ppo_own / sizeof ppo_own[0] };
  tn_flag all[NOWN + NPPO];
  memcpy(all, own, sizeof own);
  if (ppo) memcpy(all + NOWN, ppo_own, sizeof ppo_own);
  tn_flag v[TN_TRAIN_OPTS_MAX_ROWS + NOWN + NPPO];
  int n = tn_cli_train_rows(v, &o.train, TN_TO_BASE_DTYPE, all, NOWN + (ppo ? NPPO : 0));
  tn_cli_opt(v, n, "model")->help = "policy model directory (HF layout)";
  tn_cli_opt(v, n, "data")->help = "JSONL of prompts (\"prompt\" or \"messages\") with reference fields (\"answer\")";
  tn_cli_opt(v, n, "batch-size")->help = "prompts per step";
  tn_cli_opt(v, n, "steps")->help = "optimizer steps";
  tn_cli_opt(v, n, "seed")->help = "seed for prompt order and sampling";
  if (ppo) tn_cli_opt(v, n, "advantage-estimator")->help = "gae (PPO's; set by tunic ppo)";
  return tn_cli_train(argc, argv, "--model DIR --data FILE.jsonl --out RUN [options] [--config run.yaml]", v, n,
                      ppo ? run_ppo : run, &o);
}

int tn_cmd_grpo(int argc, char **argv) { return tn_cli_rl(argc, argv, false); }
