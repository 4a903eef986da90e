/* cmd_grpo.c - `tunic grpo`: options (flags and/or --config run.yaml, Tunix names) -> tn_grpo_run. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "rl/grpo.h"
#include "tunic/obs.h"

int tn_cmd_grpo(int argc, char **argv) {
  tn_grpo_opts o;
  tn_grpo_opts_default(&o);
  const tn_opt opts[] = {
    {"model", 's', &o.model, "policy model directory (HF layout)"},
    {"base-dtype", 's', &o.base_dtype, "frozen projections with LoRA (QLoRA): f32 | bf16 | nf4 | auto (default f32)"},
    {"tokenizer", 's', &o.tokenizer, "tokenizer directory (default: the model's)"},
    {"data", 's', &o.data, "JSONL of prompts (\"prompt\" or \"messages\") with reference fields (\"answer\")"},
    {"out", 's', &o.out, "run directory"},
    {"reward", 's', &o.reward, "weighted rewards, e.g. format_exact:1,format_approx:1,answer:2,numeric:1"},
    {"reward-cmd", 's', &o.reward_cmd, "external reward process (JSON lines in, one number per line out)"},
    {"rubric", 's', &o.rubric, "YAML rubric for the 'rubric' reward"},
    {"system-prompt", 's', &o.system_prompt, "system prompt (default: the reasoning/answer format prompt)"},
    {"no-system-prompt", 'b', &o.no_system_prompt, "no system prompt"},
    {"chat-format", 's', &o.chat_format, "auto | gemma | chatml | llama3"},
    {"no-chat", 'b', &o.no_chat, "plain prompts even when the tokenizer has a chat template"},
    {"num-generations", 'i', &o.num_generations, "G: completions per prompt (default 4)"},
    {"num-iterations", 'i', &o.num_iterations, "mu: policy updates per rollout (default 1)"},
    {"batch-size", 'i', &o.batch_size, "prompts per step (default 4)"},
    {"micro-batch", 'i', &o.micro_batch, "sequences per forward/backward (default: all)"},
    {"steps", 'i', &o.steps, "steps (default 100)"},
    {"max-prompt-length", 'i', &o.max_prompt_length, "keep the last N prompt tokens (default 256)"},
    {"max-tokens-to-generate", 'i', &o.max_tokens_to_generate, "completion length limit (default 128)"},
    {"temperature", 'f', &o.temperature, "sampling temperature (default 0.9)"},
    {"top-p", 'f', &o.top_p, "nucleus sampling (default 1)"},
    {"top-k", 'i', &o.top_k, "top-k sampling (default 0 = off)"},
    {"beta", 'f', &o.beta, "KL coefficient (default 0.04; 0 = no reference model)"},
    {"epsilon", 'f', &o.epsilon, "PPO clip epsilon (default 0.2)"},
    {"epsilon-high", 'f', &o.epsilon_high, "upper clip epsilon (default: = epsilon)"},
    {"kl-estimator", 's', &o.kl_estimator, "k1 | k3 | mse (default k3)"},
    {"loss-agg", 's', &o.loss_agg, "sequence-mean-token-mean | token-mean | sequence-mean-token-scale"},
    {"scale-rewards", 's', &o.scale_rewards, "group | batch | none (default group)"},
    {"mask-truncated", 'b', &o.mask_truncated, "drop completions cut at max_tokens_to_generate from the loss"},
    {"gspo", 'b', &o.gspo, "GSPO: sequence-level importance ratio"},
    {"lr", 'f', &o.lr, "learning rate (default 3e-6)"},
    {"lr-end", 'f', &o.lr_end, "final learning rate of linear/cosine decay"},
    {"schedule", 's', &o.schedule, "constant | linear | cosine (default constant)"},
    {"warmup-steps", 'i', &o.warmup_steps, "linear warmup steps"},
    {"weight-decay", 'f', &o.weight_decay, "AdamW weight decay (default 0)"},
    {"max-grad-norm", 'f', &o.max_grad_norm, "global gradient norm clip (default 0.1)"},
    {"lora-rank", 'i', &o.lora_rank, "LoRA rank (0 = full fine-tuning)"},
    {"lora-alpha", 'f', &o.lora_alpha, "LoRA alpha"},
    {"lora-targets", 's', &o.lora_targets, "LoRA target modules"},
    {"save-every", 'i', &o.save_every, "checkpoint every N steps (and at the end)"},
    {"keep-last", 'i', &o.keep_last, "checkpoints kept (default 2)"},
    {"seed", 'u', &o.seed, "seed for prompt order and sampling"},
    {"resume", 'b', &o.resume, "continue from the newest checkpoint in --out"},
    {"dump-rollouts", 's', &o.dump_rollouts, "debug: write each step's completions, rewards, advantages, log-probs (JSONL)"},
    {"dump-grads", 's', &o.dump_grads, "debug: write each step's gradient (first inner iteration, before clipping) to DIR/step_N.safetensors"},
  };
  tn_runcfg *rc = tn_runcfg_new(opts, sizeof opts / sizeof opts[0]);
  bool help = false;
  tn_status s = tn_runcfg_parse(rc, argc, argv, "--model DIR --data FILE.jsonl --out RUN [options] [--config run.yaml]", &help);
  if (s != TN_OK || help) {
    int code = help ? 0 : tn_cli_fail("grpo", s);
    tn_runcfg_free(rc);
    return code;
  }
  tn_runcfg_print(rc, stdout, "grpo configuration");
  cJSON *cfg = tn_runcfg_json(rc);
  char *cfg_text = cJSON_PrintUnformatted(cfg);
  s = tn_grpo_run(&o, cfg_text, argc, argv);
  free(cfg_text);
  cJSON_Delete(cfg);
  int code = s == TN_OK ? 0 : tn_cli_fail("grpo", s);
  tn_runcfg_free(rc);
  return code;
}
