/* cmd_sft.c - `tunic sft`: the shared training options (train/opts.h) -> tn_sft_run. */
#include "cli/cli.h"
#include "train/sft.h"

static tn_status run(const void *o, const char *config_json, int argc, char **argv) {
  return tn_sft_run(o, &(tn_run_info){.config_json = config_json, .argc = argc, .argv = argv});
}

int tn_cmd_sft(int argc, char **argv) {
  tn_sft_opts o;
  tn_sft_opts_default(&o);
  tn_flag v[TN_TRAIN_OPTS_MAX_ROWS];
  int n = tn_cli_train_rows(v, &o.train, TN_TO_BASE_DTYPE | TN_TO_DATASET | TN_TO_TUNING | TN_TO_SEQ_LEN | TN_TO_COMPUTE,
                            NULL, 0);
  tn_cli_opt(v, n, "data")->help = "training JSONL (messages | prompt/completion | text | tunix_sft prompts)";
  tn_cli_opt(v, n, "eval-every")->help = "eval loss every N steps (and at the end)";
  return tn_cli_train(argc, argv, "--model DIR --data FILE.jsonl --out RUN [options] [--config run.yaml]", v, n, run, &o);
}
