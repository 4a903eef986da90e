/* cmd_distill.c - `tunic distill`: options (flags and/or --config run.yaml) -> tn_distill_run. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "train/distill.h"
#include "tunic/obs.h"

int tn_cmd_distill(int argc, char **argv) {
  tn_distill_opts o;
  tn_distill_opts_default(&o);
  const tn_opt opts[] = {
    {"teacher", 's', &o.teacher, "teacher model directory (frozen)"},
    {"student", 's', &o.student, "student model directory (trained; same vocabulary)"},
    {"teacher-dtype", 's', &o.teacher_dtype, "teacher projections stored as f32 | bf16 (default f32)"},
    {"tokenizer", 's', &o.tokenizer, "tokenizer directory (default: the student's)"},
    {"data", 's', &o.data, "training JSONL (SFT formats: messages | prompt/completion | text)"},
    {"eval-data", 's', &o.eval_data, "eval JSONL (default: --eval-split of the training data)"},
    {"eval-split", 'f', &o.eval_split, "fraction of the training data held out for eval (default 0)"},
    {"out", 's', &o.out, "run directory"},
    {"chat-format", 's', &o.chat_format, "auto | gemma | chatml | llama3"},
    {"temperature", 'f', &o.temperature, "distillation temperature T (default 1)"},
    {"alpha", 'f', &o.alpha, "weight of the distillation term; 1 - alpha on CE with the labels (default 0.5)"},
    {"top-k", 'i', &o.top_k, "restrict both distributions to the teacher's top-k logits (0 = all)"},
    {"jsd-beta", 'f', &o.jsd_beta, "GKD generalised JSD beta in [0, 1] (0 forward KL, 1 reverse KL); < 0: T^2 KL (default)"},
    {"lmbda", 'f', &o.lmbda, "fraction of steps on student-generated completions (on-policy; default 0)"},
    {"max-new-tokens", 'i', &o.max_new_tokens, "tokens sampled per on-policy completion (default 64)"},
    {"gen-temperature", 'f', &o.gen_temperature, "sampling temperature of on-policy completions (default 1)"},
    {"feature-layers", 's', &o.feature_layers, "hidden-state matching S:T,... (student state S to teacher state T)"},
    {"feature-weight", 'f', &o.feature_weight, "weight gamma of the feature MSE (default 1)"},
    {"max-seq-len", 'i', &o.max_seq_len, "truncate examples to this many tokens (default 512)"},
    {"batch-size", 'i', &o.batch_size, "examples per micro-batch (default 4)"},
    {"grad-accum", 'i', &o.grad_accum, "micro-batches per optimizer step (default 1)"},
    {"steps", 'i', &o.steps, "optimizer steps (default: from --epochs)"},
    {"epochs", 'i', &o.epochs, "passes over the training data (default 1)"},
    {"lr", 'f', &o.lr, "peak learning rate (default 1e-4)"},
    {"lr-end", 'f', &o.lr_end, "final learning rate of linear/cosine decay (default 0)"},
    {"schedule", 's', &o.schedule, "constant | linear | cosine (default cosine)"},
    {"warmup-steps", 'i', &o.warmup_steps, "linear warmup steps (default 0)"},
    {"weight-decay", 'f', &o.weight_decay, "AdamW decoupled weight decay (default 0)"},
    {"beta1", 'f', &o.beta1, "AdamW beta1 (default 0.9)"},
    {"beta2", 'f', &o.beta2, "AdamW beta2 (default 0.999)"},
    {"adam-eps", 'f', &o.adam_eps, "AdamW epsilon (default 1e-8)"},
    {"max-grad-norm", 'f', &o.max_grad_norm, "clip the global gradient norm (default 1; 0 = off)"},
    {"lora-rank", 'i', &o.lora_rank, "LoRA rank on the student (0 = full fine-tuning)"},
    {"lora-alpha", 'f', &o.lora_alpha, "LoRA alpha (default 16)"},
    {"lora-dropout", 'f', &o.lora_dropout, "LoRA dropout (default 0)"},
    {"rslora", 'b', &o.rslora, "scale alpha/sqrt(r) instead of alpha/r"},
    {"lora-targets", 's', &o.lora_targets, "module names (q_proj,...) or a regex"},
    {"eval-every", 'i', &o.eval_every, "eval every N steps (and at the end)"},
    {"save-every", 'i', &o.save_every, "checkpoint every N steps (and at the end)"},
    {"keep-last", 'i', &o.keep_last, "checkpoints kept (default 2)"},
    {"seed", 'u', &o.seed, "seed for shuffling, initialisation and sampling (default 0)"},
    {"resume", 'b', &o.resume, "continue from the newest checkpoint in --out"},
  };
  tn_runcfg *rc = tn_runcfg_new(opts, sizeof opts / sizeof opts[0]);
  bool help = false;
  tn_status s = tn_runcfg_parse(rc, argc, argv, "--teacher DIR --student DIR --data FILE.jsonl --out RUN [options]", &help);
  if (s != TN_OK || help) {
    int code = help ? 0 : tn_cli_fail("distill", s);
    tn_runcfg_free(rc);
    return code;
  }
  tn_runcfg_print(rc, stdout, "distill configuration");
  cJSON *cfg = tn_runcfg_json(rc);
  char *cfg_text = cJSON_PrintUnformatted(cfg);
  s = tn_distill_run(&o, cfg_text, argc, argv);
  free(cfg_text);
  cJSON_Delete(cfg);
  int code = s == TN_OK ? 0 : tn_cli_fail("distill", s);
  tn_runcfg_free(rc);
  return code;
}
