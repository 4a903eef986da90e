/* cmd_dpo.c - `tunic dpo`: options (flags and/or --config run.yaml) -> tn_dpo_run. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "train/dpo.h"
#include "tunic/obs.h"

int tn_cmd_dpo(int argc, char **argv) {
  tn_dpo_opts o;
  tn_dpo_opts_default(&o);
  const tn_opt opts[] = {
    {"model", 's', &o.model, "policy model directory (HF layout); also the reference"},
    {"ref-model", 's', &o.ref_model, "reference model directory (default: --model's initial weights)"},
    {"tokenizer", 's', &o.tokenizer, "tokenizer directory (default: the model's)"},
    {"data", 's', &o.data, "preference JSONL: prompt/chosen/rejected (strings or message lists)"},
    {"eval-data", 's', &o.eval_data, "held-out preference JSONL (default: --eval-split of the training data)"},
    {"eval-split", 'f', &o.eval_split, "fraction of the training pairs held out for eval (default 0)"},
    {"out", 's', &o.out, "run directory"},
    {"algorithm", 's', &o.algorithm, "dpo | orpo (default dpo)"},
    {"loss", 's', &o.loss, "DPO loss: sigmoid | ipo | hinge | robust (default sigmoid)"},
    {"beta", 'f', &o.beta, "DPO beta (default 0.1)"},
    {"label-smoothing", 'f', &o.label_smoothing, "DPO label smoothing (sigmoid, robust; default 0)"},
    {"orpo-lambda", 'f', &o.orpo_lambda, "ORPO odds-ratio weight lambda (TRL's beta; default 0.1)"},
    {"precompute-ref", 'b', &o.precompute_ref, "compute the reference log-probs once before training (no frozen copy)"},
    {"chat", 'b', &o.chat, "render string prompts/responses with the tokenizer's chat template"},
    {"chat-format", 's', &o.chat_format, "auto | gemma | chatml | llama3"},
    {"max-prompt-length", 'i', &o.max_prompt_length, "keep the last N prompt tokens (default 512)"},
    {"max-response-length", 'i', &o.max_response_length, "keep the first N tokens of each response (default 512)"},
    {"batch-size", 'i', &o.batch_size, "pairs per micro-batch (default 4)"},
    {"grad-accum", 'i', &o.grad_accum, "micro-batches per optimizer step (default 1)"},
    {"steps", 'i', &o.steps, "optimizer steps (default: from --epochs)"},
    {"epochs", 'i', &o.epochs, "passes over the training pairs (default 1)"},
    {"lr", 'f', &o.lr, "peak learning rate (default 1e-6)"},
    {"lr-end", 'f', &o.lr_end, "final learning rate of linear/cosine decay (default 0)"},
    {"schedule", 's', &o.schedule, "constant | linear | cosine (default linear)"},
    {"warmup-steps", 'i', &o.warmup_steps, "linear warmup steps (default 0)"},
    {"weight-decay", 'f', &o.weight_decay, "AdamW decoupled weight decay (default 0)"},
    {"beta1", 'f', &o.beta1, "AdamW beta1 (default 0.9)"},
    {"beta2", 'f', &o.beta2, "AdamW beta2 (default 0.999)"},
    {"adam-eps", 'f', &o.adam_eps, "AdamW epsilon (default 1e-8)"},
    {"max-grad-norm", 'f', &o.max_grad_norm, "clip the global gradient norm (default 1; 0 = off)"},
    {"lora-rank", 'i', &o.lora_rank, "LoRA rank (0 = full fine-tuning)"},
    {"lora-alpha", 'f', &o.lora_alpha, "LoRA alpha (default 16)"},
    {"lora-dropout", 'f', &o.lora_dropout, "LoRA dropout (default 0)"},
    {"rslora", 'b', &o.rslora, "scale alpha/sqrt(r) instead of alpha/r"},
    {"lora-targets", 's', &o.lora_targets, "module names (q_proj,...) or a regex"},
    {"base-dtype", 's', &o.base_dtype, "frozen projections with LoRA: f32 | bf16 | nf4 | auto (default f32)"},
    {"eval-every", 'i', &o.eval_every, "eval every N steps (and at the end)"},
    {"save-every", 'i', &o.save_every, "checkpoint every N steps (and at the end)"},
    {"keep-last", 'i', &o.keep_last, "checkpoints kept (default 2)"},
    {"seed", 'u', &o.seed, "seed for shuffling and initialisation (default 0)"},
    {"resume", 'b', &o.resume, "continue from the newest checkpoint in --out"},
  };
  tn_runcfg *rc = tn_runcfg_new(opts, sizeof opts / sizeof opts[0]);
  bool help = false;
  tn_status s = tn_runcfg_parse(rc, argc, argv, "--model DIR --data PREFS.jsonl --out RUN [options] [--config run.yaml]", &help);
  if (s != TN_OK || help) {
    int code = help ? 0 : tn_cli_fail("dpo", s);
    tn_runcfg_free(rc);
    return code;
  }
  tn_runcfg_print(rc, stdout, "dpo configuration");
  cJSON *cfg = tn_runcfg_json(rc);
  char *cfg_text = cJSON_PrintUnformatted(cfg);
  s = tn_dpo_run(&o, cfg_text, argc, argv);
  free(cfg_text);
  cJSON_Delete(cfg);
  int code = s == TN_OK ? 0 : tn_cli_fail("dpo", s);
  tn_runcfg_free(rc);
  return code;
}
