/* cmd_distill.c - `tunic distill`: the shared training options (train/opts.h; the trained model
 * is --student) + distillation's own -> tn_distill_run. */
#include "cli/cli.h"
#include "train/distill.h"

static tn_status run(const void *o, const char *config_json, int argc, char **argv) {
  return tn_distill_run(o, &(tn_run_info){.config_json = config_json, .argc = argc, .argv = argv});
}

int tn_cmd_distill(int argc, char **argv) {
  tn_distill_opts o;
  tn_distill_opts_default(&o);
  const tn_flag own[] = {
    {"teacher", 's', &o.teacher, "teacher model directory (frozen)"},
    {"teacher-dtype", 's', &o.teacher_dtype, "teacher projections stored as f32 | bf16"},
    {"temperature", 'f', &o.temperature, "distillation temperature T"},
    {"alpha", 'f', &o.alpha, "weight of the distillation term; 1 - alpha on CE with the labels"},
    {"top-k", 'i', &o.top_k, "restrict both distributions to the teacher's top-k logits (0 = all)"},
    {"jsd-beta", 'f', &o.jsd_beta, "GKD generalised JSD beta in [0, 1] (0 forward KL, 1 reverse KL); < 0: T^2 KL"},
    {"lmbda", 'f', &o.lmbda, "fraction of steps on student-generated completions (on-policy)"},
    {"max-new-tokens", 'i', &o.max_new_tokens, "tokens sampled per on-policy completion"},
    {"gen-temperature", 'f', &o.gen_temperature, "sampling temperature of on-policy completions"},
    {"feature-layers", 's', &o.feature_layers, "hidden-state matching S:T,... (student state S to teacher state T)"},
    {"feature-weight", 'f', &o.feature_weight, "weight gamma of the feature MSE"},
  };
  tn_flag v[TN_TRAIN_OPTS_MAX_ROWS + sizeof own / sizeof own[0]];
  int n = tn_cli_train_rows(v, &o.train, TN_TO_BASE_DTYPE | TN_TO_DATASET | TN_TO_TUNING | TN_TO_SEQ_LEN, own,
                            (int)(sizeof own / sizeof own[0]));
  tn_flag *student = tn_cli_opt(v, n, "model");
  student->name = "student";
  student->help = "student model directory (trained; same vocabulary)";
  tn_cli_opt(v, n, "tokenizer")->help = "tokenizer directory (default: the student's)";
  tn_cli_opt(v, n, "data")->help = "training JSONL (SFT formats: messages | prompt/completion | text)";
  tn_cli_opt(v, n, "lora-rank")->help = "LoRA rank on the student (0 = full fine-tuning)";
  return tn_cli_train(argc, argv, "--teacher DIR --student DIR --data FILE.jsonl --out RUN [options]", v, n, run, &o);
}
