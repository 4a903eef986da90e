/* cmd_improve.c - `tunic improve`: the self-improvement loop (src/improve/improve.c) from
 * flags and/or --config YAML; prints the per-round lines and, at the end, the held-out
 * accuracy of the start model and of the best round with the McNemar p. */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "improve/improve.h"
#include <cjson/cJSON.h>
#include "tunic/obs.h"

int tn_cmd_improve(int argc, char **argv) {
  tn_improve_opts o;
  tn_improve_opts_default(&o);
  bool no_dedup = false, any_format = false, no_early = false;
  tn_flag flags[] = {
    {"model", 's', &o.model, "the start model directory"},
    {"prompts", 's', &o.prompts, "training prompts JSONL (prompt | messages, + answer for the reward judge)"},
    {"eval-data", 's', &o.eval_data, "held-out eval JSONL (with reference answers)"},
    {"out", 's', &o.out, "run directory (an existing one with the same configuration is continued)"},
    {"rounds", 'i', &o.rounds, "rounds of generate -> judge -> filter -> SFT -> eval"},
    {"samples", 'i', &o.samples, "samples generated per prompt"},
    {"prompts-per-round", 'i', &o.prompts_per_round, "prompts per round, a rotating slice (0 = all)"},
    {"temperature", 'f', &o.temperature, "sampling temperature of the generation"},
    {"top-p", 'f', &o.top_p, "nucleus sampling mass (1 = off)"},
    {"max-new-tokens", 'i', &o.max_new_tokens, "tokens generated per sample"},
    {"max-prompt-length", 'i', &o.max_prompt_len, "keep the last N prompt tokens (0 = no limit)"},
    {"gen-batch", 'i', &o.gen_batch, "prompts per generation batch"},
    {"system-prompt", 's', &o.system_prompt, "system prompt for generation, training and eval (default: none)"},
    {"no-chat", 'b', &o.no_chat, "plain prompt template even when the tokenizer has a chat template"},
    {"chat-format", 's', &o.chat_format, "auto | gemma | chatml | llama3"},
    {"judge", 's', &o.judge.spec, "reward-library spec that scores each sample (as grpo --reward)"},
    {"rubric", 's', &o.judge.reward.rubric_path, "rubric YAML for the rubric reward"},
    {"reward-cmd", 's', &o.judge.reward.reward_cmd, "external reward process"},
    {"judge-model", 's', &o.judge.model, "a local model as judge instead of --judge"},
    {"judge-adapter", 's', &o.judge.adapter, "the judge model's LoRA adapter"},
    {"judge-template", 's', &o.judge.template_text, "judge prompt with {prompt} {completion} {answer}"},
    {"threshold", 'd', &o.threshold, "keep samples whose score is at least this"},
    {"any-format", 'b', &any_format, "keep samples that miss the reasoning/answer format too"},
    {"min-tokens", 'i', &o.min_tokens, "shortest kept sample (tokens)"},
    {"max-tokens", 'i', &o.max_tokens, "longest kept sample (tokens; 0 = no bound)"},
    {"keep-truncated", 'b', &o.keep_truncated, "keep samples that hit --max-new-tokens"},
    {"no-dedup", 'b', &no_dedup, "keep repeated completions of a prompt"},
    {"max-per-prompt", 'i', &o.max_per_prompt, "kept samples per prompt at most (0 = no cap)"},
    {"skip-solved", 'b', &o.skip_solved, "drop prompts whose samples all passed"},
    {"accumulate", 'b', &o.accumulate, "train each round on every round's dataset so far"},
    {"steps", 'i', &o.sft.steps, "SFT optimizer steps per round (0: from --epochs)"},
    {"epochs", 'i', &o.sft.epochs, "SFT passes over the round's dataset"},
    {"lr", 'f', &o.sft.lr, "SFT learning rate"},
    {"batch-size", 'i', &o.sft.batch_size, "SFT examples per step"},
    {"max-seq-len", 'i', &o.sft.max_seq_len, "SFT example length cap (tokens)"},
    {"warmup-steps", 'i', &o.sft.warmup_steps, "SFT linear warmup steps"},
    {"schedule", 's', &o.sft.schedule, "SFT schedule: constant | linear | cosine"},
    {"lora-rank", 'i', &o.sft.lora_rank, "0 = full fine-tuning; else a LoRA adapter per round (see --adapters)"},
    {"lora-alpha", 'f', &o.sft.lora_alpha, "LoRA alpha"},
    {"adapters", 's', &o.adapters, "what happens to a LoRA round's adapter: merge (into a full model for the next round) | stack (the base stays; the rounds' adapters concatenated into one PEFT adapter)"},
    {"eval-max-new-tokens", 'i', &o.eval_max_new_tokens, "tokens generated per eval answer"},
    {"eval-limit", 'i', &o.eval_limit, "evaluate the first N held-out examples (0 = all)"},
    {"eval-batch", 'i', &o.eval_batch, "eval prompts per generation batch"},
    {"no-early-stop", 'b', &no_early, "run every round even when one gains nothing"},
    {"min-gain", 'd', &o.min_gain, "a round must beat the best accuracy so far by more than this"},
    {"seed", 'u', &o.seed, "seed of sampling and training"},
  };
  struct tn_runcfg *rc = NULL;
  int r = tn_cli_parse_config(argc, argv, flags, sizeof flags / sizeof flags[0],
                              "--model DIR --prompts P.jsonl --eval-data E.jsonl --rounds K --out RUN [options] [--config improve.yaml]",
                              &rc);
  if (r) return r > 0 ? 0 : 2;
  if (!o.model || !o.prompts || !o.eval_data || !o.out) {
    fprintf(stderr, "tunic improve: --model, --prompts, --eval-data and --out are required\n");
    tn_runcfg_free(rc);
    return 2;
  }
  if (o.judge.model) o.judge.spec = NULL;
  o.dedup = !no_dedup;
  o.require_format = !any_format;
  o.early_stop = !no_early;
  cJSON *cfg_json = tn_runcfg_json(rc); /* a new object: ours to delete */
  char *cfg_text = cfg_json ? cJSON_PrintUnformatted(cfg_json) : NULL;
  cJSON_Delete(cfg_json);
  o.config_json = cfg_text;
  o.log = stdout;
  tn_improve_result res;
  tn_status s = tn_improve_run(&o, &res);
  if (s == TN_OK) {
    printf("improve: %d round%s%s; report: %s/report.md\n", res.rounds_done, res.rounds_done == 1 ? "" : "s",
           res.stopped_early ? " (stopped early: a round gained nothing)" : "", o.out);
    printf("best model: %s\n", res.best_model);
    printf("held-out accuracy: start %.1f%% -> after improve round %d %.1f%% (McNemar p %.3g)\n", 100 * res.acc_start,
           res.best_round, 100 * res.acc_best, res.mcnemar_p);
  }
  int code = s == TN_OK ? 0 : tn_cli_fail("improve", s);
  free(cfg_text);
  tn_runcfg_free(rc);
  return code;
}
