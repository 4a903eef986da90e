/* run.h - what every trainer's run directory has in common (SFT, DPO, distill):
 * the seeded example stream (epoch e visits a permutation of the data that is a
 * pure function of (seed, e), so a resumed run sees exactly the batches of the
 * uninterrupted one), --resume from the newest checkpoint, run_manifest.json,
 * metrics.jsonl + TensorBoard, the progress bar, the optimizer update with the
 * NaN stop, checkpoints/step_N with trainer_state.json, and the final weights.
 * Not for: what a step computes (each trainer), the checkpoint format (train.h). */
#ifndef TN_TRAIN_RUN_H
#define TN_TRAIN_RUN_H
#include "data/data.h"
#include "train/train.h"
#include "tunic/obs.h"

/* ---- the example stream ---- */
typedef struct {
  int n;          /* items (examples, pairs) */
  uint64_t seed;
  int *perm;      // (n)
  long epoch;     /* epoch of perm, -1 before the first */
} tn_stream;
tn_status tn_stream_init(tn_stream *s, int n, uint64_t seed);
/* Index of the item at stream position pos (0, 1, 2, ... across epochs). */
int tn_stream_at(tn_stream *s, long pos);
void tn_stream_free(tn_stream *s);

/* ---- the run directory ---- */
typedef struct {
  const char *out;        /* run directory */
  const char *label;      /* "sft", "dpo", "distill": progress label */
  const char *model_dir;  /* config/tokenizer files copied into saved model folders */
  tn_model *m;            /* the trained model */
  tn_tparams *tp;         /* its trainable set */
  int keep_last;
  uint64_t seed;
  int n_train;            /* recorded in trainer_state.json */
  long steps;             /* total optimizer steps (progress) */
  /* optional: a trainer with more trainable rows than tp's (e.g. distillation's
   * projections) gives the whole table here (tp->opt must cover the same rows) and a
   * file name for them in checkpoints; NULL: tp->tr and the loadable folder */
  tn_trainable *tr;
  const char *weights_file;
  /* set by the helper */
  bool resumed;           /* tn_run_resume was called */
  long step0;             /* the step resumed from */
  tn_metrics *metrics;
  tn_progress *prog;
  double t_start;
} tn_run;

/* --resume: restore the newest RUN/checkpoints/step_N into r->tp (weights and
 * optimizer) and read its step and data position; a run killed before its first
 * checkpoint starts over (*step0 = *data_pos = 0, said on stdout). metrics.jsonl
 * lines after the step are dropped. */
tn_status tn_run_resume(tn_run *r, long *step0, long *data_pos);
/* A fresh run (no --resume) refuses a directory that already holds one. */
tn_status tn_run_check_fresh(const char *out);
/* run_manifest.json, metrics.jsonl (+ TensorBoard), the progress bar; refuses a used
 * directory unless resumed; marks the restart step in TensorBoard when resumed. */
tn_status tn_run_start(tn_run *r, const tn_manifest_info *mi);
/* After the step's gradients are accumulated: the global norm (non-finite: an error
 * naming the step; the last checkpoint is kept), clipping and AdamW at the schedule's
 * learning rate for `step` (0-based). */
tn_status tn_run_update(tn_run *r, long step, float max_grad_norm, double *gnorm, float *lr);
/* The error for a non-finite loss at 0-based `step`. */
tn_status tn_run_nonfinite(long step, double loss);
/* checkpoints/step_N: the trainable weights as a loadable folder (f32 model or PEFT
 * adapter), optimizer state, trainer_state.json {step, data_pos, seed, train_examples}. */
tn_status tn_run_checkpoint(tn_run *r, long step, long data_pos);
/* RUN/adapter or RUN/model in the model's dtype; manifest status "completed". */
tn_status tn_run_finish(tn_run *r);
/* Close the metrics and the progress bar (safe to call twice). */
void tn_run_close(tn_run *r);
#endif
