/* cmd_sft.c - `tunic sft`: options (flags and/or --config run.yaml) -> tn_sft_run. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include "cli/cli.h"
#include "train/sft.h"
#include "tunic/obs.h"

int tn_cmd_sft(int argc, char **argv) {
  tn_sft_opts o;
  tn_sft_opts_default(&o);
  const tn_opt opts[] = {
    {"model", 's', &o.model, "model directory (HF layout)"},
    {"base-dtype", 's', &o.base_dtype, "frozen projections with LoRA (QLoRA): f32 | bf16 | nf4 | auto (default f32)"},
    {"tokenizer", 's', &o.tokenizer, "tokenizer directory (default: the model's)"},
    {"data", 's', &o.data, "training JSONL (messages | prompt/completion | text | tunix_sft prompts)"},
    {"eval-data", 's', &o.eval_data, "eval JSONL (default: --eval-split of the training data)"},
    {"eval-split", 'f', &o.eval_split, "fraction of the training data held out for eval (default 0)"},
    {"out", 's', &o.out, "run directory"},
    {"chat-format", 's', &o.chat_format, "auto | gemma | chatml | llama3"},
    {"max-seq-len", 'i', &o.max_seq_len, "truncate examples to this many tokens (default 512)"},
    {"batch-size", 'i', &o.batch_size, "examples per micro-batch (default 4)"},
    {"grad-accum", 'i', &o.grad_accum, "micro-batches per optimizer step (default 1)"},
    {"steps", 'i', &o.steps, "optimizer steps (default: from --epochs)"},
    {"epochs", 'i', &o.epochs, "passes over the training data (default 1)"},
    {"lr", 'f', &o.lr, "peak learning rate (default 1e-4)"},
    {"lr-end", 'f', &o.lr_end, "final learning rate of linear/cosine decay (default 0)"},
    {"schedule", 's', &o.schedule, "constant | linear | cosine (default cosine)"},
    {"warmup-steps", 'i', &o.warmup_steps, "linear warmup steps (default 0)"},
    {"weight-decay", 'f', &o.weight_decay, "AdamW decoupled weight decay (default 0; none on norms/biases)"},
    {"beta1", 'f', &o.beta1, "AdamW beta1 (default 0.9)"},
    {"beta2", 'f', &o.beta2, "AdamW beta2 (default 0.999)"},
    {"adam-eps", 'f', &o.adam_eps, "AdamW epsilon (default 1e-8)"},
    {"max-grad-norm", 'f', &o.max_grad_norm, "clip the global gradient norm (default 1; 0 = off)"},
    {"lora-rank", 'i', &o.lora_rank, "LoRA rank (0 = full fine-tuning)"},
    {"lora-alpha", 'f', &o.lora_alpha, "LoRA alpha (default 16)"},
    {"lora-dropout", 'f', &o.lora_dropout, "LoRA dropout (default 0)"},
    {"rslora", 'b', &o.rslora, "scale alpha/sqrt(r) instead of alpha/r"},
    {"lora-targets", 's', &o.lora_targets, "module names (q_proj,...) or a regex"},
    {"eval-every", 'i', &o.eval_every, "eval loss every N steps (and at the end)"},
    {"save-every", 'i', &o.save_every, "checkpoint every N steps (and at the end)"},
    {"keep-last", 'i', &o.keep_last, "checkpoints kept (default 2)"},
    {"seed", 'u', &o.seed, "seed for shuffling and initialisation (default 0)"},
    {"resume", 'b', &o.resume, "continue from the newest checkpoint in --out"},
    {"bf16-matmul", 'b', &o.bf16_matmul, "bf16 operands with f32 accumulation in the big matmuls (AMX; as torch's bf16 autocast)"},
    {"recompute", 'b', &o.recompute, "recompute each layer's activations in the backward pass (less memory, ~1/3 more compute)"},
  };
  tn_runcfg *rc = tn_runcfg_new(opts, sizeof opts / sizeof opts[0]);
  bool help = false;
  tn_status s = tn_runcfg_parse(rc, argc, argv, "--model DIR --data FILE.jsonl --out RUN [options] [--config run.yaml]", &help);
  if (s != TN_OK || help) {
    int code = help ? 0 : tn_cli_fail("sft", s);
    tn_runcfg_free(rc);
    return code;
  }
  tn_runcfg_print(rc, stdout, "sft configuration");
  cJSON *cfg = tn_runcfg_json(rc);
  char *cfg_text = cJSON_PrintUnformatted(cfg);
  s = tn_sft_run(&o, cfg_text, argc, argv);
  free(cfg_text);
  cJSON_Delete(cfg);
  int code = s == TN_OK ? 0 : tn_cli_fail("sft", s);
  tn_runcfg_free(rc);
  return code;
}
