/* cmd_dpo.c - `tunic dpo`: the shared training options (train/opts.h) + DPO/ORPO's own -> tn_dpo_run. */
#include "cli/cli.h"
#include "train/dpo.h"

static tn_status run(const void *o, const char *config_json, int argc, char **argv) {
  return tn_dpo_run(o, &(tn_run_info){.config_json = config_json, .argc = argc, .argv = argv});
}

int tn_cmd_dpo(int argc, char **argv) {
  tn_dpo_opts o;
  tn_dpo_opts_default(&o);
  const tn_flag own[] = {
    {"ref-model", 's', &o.ref_model, "reference model directory (default: --model's initial weights)"},
    {"algorithm", 's', &o.algorithm, "dpo | orpo"},
    {"loss", 's', &o.loss, "DPO loss: sigmoid | ipo | hinge | robust"},
    {"beta", 'f', &o.beta, "DPO beta"},
    {"label-smoothing", 'f', &o.label_smoothing, "DPO label smoothing (sigmoid, robust)"},
    {"orpo-lambda", 'f', &o.orpo_lambda, "ORPO odds-ratio weight lambda (TRL's beta)"},
    {"precompute-ref", 'b', &o.precompute_ref, "compute the reference log-probs once before training (no frozen copy)"},
    {"chat", 'b', &o.chat, "render string prompts/responses with the tokenizer's chat template"},
    {"max-prompt-length", 'i', &o.max_prompt_length, "keep the last N prompt tokens"},
    {"max-response-length", 'i', &o.max_response_length, "keep the first N tokens of each response"},
  };
  tn_flag v[TN_TRAIN_OPTS_MAX_ROWS + sizeof own / sizeof own[0]];
  int n = tn_cli_train_rows(v, &o.train, TN_TO_BASE_DTYPE | TN_TO_DATASET | TN_TO_TUNING, own,
                            (int)(sizeof own / sizeof own[0]));
  tn_cli_opt(v, n, "model")->help = "policy model directory (HF layout); also the reference";
  tn_cli_opt(v, n, "data")->help = "preference JSONL: prompt/chosen/rejected (strings or message lists)";
  tn_cli_opt(v, n, "eval-data")->help = "held-out preference JSONL (default: --eval-split of the training data)";
  tn_cli_opt(v, n, "eval-split")->help = "fraction of the training pairs held out for eval";
  tn_cli_opt(v, n, "batch-size")->help = "pairs per micro-batch";
  tn_cli_opt(v, n, "epochs")->help = "passes over the training pairs";
  return tn_cli_train(argc, argv, "--model DIR --data PREFS.jsonl --out RUN [options] [--config run.yaml]", v, n, run, &o);
}
