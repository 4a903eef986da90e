/* run.h - the one trainer driver (SFT, DPO/ORPO, distillation, GRPO) and what every
 * trainer's run directory has in common. tn_train_drive owns the loop: the --out checks
 * (before any work), --resume (checkpoints verified, the newest good one, its state
 * validated against this run), run_manifest.json, metrics.jsonl + TensorBoard, the
 * progress bar, the NaN stop, the optimizer update, eval every N steps, checkpoints and
 * the final weights; a trainer gives hooks (tn_trainer). Also: the seeded example stream (epoch e visits a permutation of the data that is a
 * pure function of (seed, e), so a resumed run sees exactly the batches of the
 * uninterrupted one), --resume from the newest checkpoint, run_manifest.json,
 * metrics.jsonl + TensorBoard, the progress bar, the optimizer update with the
 * NaN stop, checkpoints/step_N with trainer_state.json, and the final weights.
 * Not for: what a step computes (each trainer), the checkpoint format (train.h). */
#ifndef TN_TRAIN_RUN_H
#define TN_TRAIN_RUN_H
#include "data/data.h"
#include "train/opts.h"
#include "tunic/train.h"
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

/* ---- data-parallel ranks (src/dist implements it over MPI; the CLI registers it) ----
 * Without one (not launched under mpirun), everything is one rank: the driver and the
 * trainers run exactly as without this. With N ranks: every rank loads all the data and
 * takes its shard of each global micro-batch (tn_run_next); the step's gradients are
 * summed over ranks in tn_run_update (the trainers scale them by the GLOBAL step's
 * normaliser, so the sum is the global mean), and rank 0 alone writes the run directory. */
typedef struct tn_comm {
  int rank, size;
  /* in-place sum over ranks (every rank gets it); the same order of additions on every
   * rank and run (a fixed-order reduction: bit-identical for a given N) */
  tn_status (*sum_f32)(const struct tn_comm *c, float *buf, size_t n);
  tn_status (*sum_f64)(const struct tn_comm *c, double *buf, size_t n);
  tn_status (*bcast_f32)(const struct tn_comm *c, float *buf, size_t n, int root);
  int zero;                  /* 1: ZeRO-1, each rank owns the AdamW state of 1/N of the rows */
  const char *manifest_json; /* {"world_size", "hosts", "mpi_library", ...} for run_manifest.json */
  double *comm_s;            /* seconds spent in sum_* (accumulated), may be NULL */
  void *impl;
} tn_comm;
/* Register the ranks' communicator (NULL: one rank). Not thread-safe: once, before training. */
void tn_train_set_comm(const tn_comm *c);
/* The registered communicator, or NULL when there is one rank. */
const tn_comm *tn_train_comm(void);
/* Number of ranks (1 without a communicator). */
int tn_train_world(void);

/* ---- the run directory ---- */
/* tn_run_info: the public API (tunic/train.h) */

typedef struct {
  const char *out;        /* run directory */
  const char *label;      /* "sft", "dpo", "distill": progress label */
  const char *model_dir;  /* config/tokenizer files copied into saved model folders */
  tn_model *m;            /* the trained model */
  tn_tparams *tp;         /* its trainable set */
  int keep_last;
  uint64_t seed;
  int n_train;            /* recorded in trainer_state.json */
  long per_step;          /* stream items each step consumes on one rank; the driver multiplies it by
                           * the number of ranks after setup (then: the global step, data_pos =
                           * step x per_step; a trainer normalises its loss by the global step) */
  const char *data_path;  /* its sha256 is the data fingerprint in trainer_state.json (NULL: none) */
  long steps;             /* total optimizer steps (progress) */
  bool has_eval;          /* there is held-out data: the eval hook runs every eval_every steps */
  /* optional: a trainer with more trainable rows than tp's (e.g. distillation's
   * projections) gives the whole table here (tp->opt must cover the same rows) and a
   * file name for them in checkpoints; NULL: tp->tr and the loadable folder */
  tn_trainable *tr;
  const char *weights_file;
  int micro;              /* items per micro-batch on one rank (0: per_step, i.e. one micro-batch) */
  /* optional: state a trainer keeps beside the trainable set (PPO's value head), written into
   * each checkpoint's folder (load false) and read back from the one resumed from (load true) */
  tn_status (*ckpt_state)(void *ctx, const char *dir, bool load);
  void *ckpt_ctx;
  /* set by the helper */
  const tn_comm *comm;    /* NULL: one rank */
  int rank, world;        /* this rank, number of ranks (0, 1 without MPI) */
  long step_pos;          /* stream position of the step's first item (all ranks) */
  long taken;             /* items this rank took in this step (tn_run_next) */
  /* ZeRO-1 (comm->zero): this rank updates rows [zlo, zhi) of the trainable table with zopt
   * (their AdamW state only; tp->opt keeps the table, its m/v are freed), then every row is
   * broadcast from its owner; zown (rows) the owner of each row */
  tn_adamw zopt;
  int zlo, zhi, *zown;
  bool resumed;           /* tn_run_resume was called */
  long step0;             /* the step resumed from */
  tn_metrics *metrics;
  tn_progress *prog;
  double t_start;
  tn_stream stream;       /* the training items in order (tn_train_drive: n_train, seed) */
  long data_pos;          /* stream position of the next item */
  char data_sha[65];      /* sha256 of data_path ("" when none) */
} tn_run;

/* --resume: restore the newest good RUN/checkpoints/step_N into r->tp (weights and
 * optimizer) and read its step and data position. A checkpoint whose files do not
 * match its checksums.json, or that does not load, is skipped for the previous one
 * with a warning naming it; one written by a run with another seed or other training
 * data is refused. A run killed before its first checkpoint starts over (*step0 =
 * *data_pos = 0, said on stdout). metrics.jsonl lines after the step are dropped. */
tn_status tn_run_resume(tn_run *r, long *step0, long *data_pos);
/* A fresh run (no --resume) refuses a directory that already holds one. */
tn_status tn_run_check_fresh(const char *out);
/* Before any work: --out's parent exists and is writable, and --out is new, empty or a
 * tunic run (holds run_manifest.json); a new one is created (*created). */
tn_status tn_run_check_out(const char *out, bool *created);
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
/* The stream index of this rank's next training item: with N ranks, micro-batch j of the
 * step is items [step_pos + j*N*micro, +N*micro) of the stream, and rank k takes the k-th
 * `micro` of them (one rank: simply the next item; advances r->data_pos). */
int tn_run_next(tn_run *r);
/* Sum n doubles over the ranks in place (a no-op with one rank): a trainer's step
 * statistics (loss parts, token counts) become the global step's. */
tn_status tn_run_sum(tn_run *r, double *v, int n);

/* ---- the driver ---- */
/* What a step hook reports (with several ranks: the global step's, see tn_run_sum). */
typedef struct {
  double loss;            /* the step's loss (not finite: the run stops, the last checkpoint kept) */
  double tokens;          /* token rows through the model (progress speed) */
  char extra[64];         /* progress bar text ("" for none) */
} tn_step_out;

/* What the driver knows of a finished step (for the metrics and after hooks). */
typedef struct {
  long step;              /* 0-based */
  double loss, gnorm, dt; /* dt: seconds of the step up to and including the update */
  float lr;
  double tokens;
  bool evaluated;         /* the eval hook ran after this step */
} tn_step_info;

/* A trainer: its hooks over its own context. NULL hooks are skipped (step and setup are
 * required). The driver calls, in order: setup (load models and data, allocate, fill r's
 * trainer fields: label, model_dir, m, tp, n_train, per_step, steps, has_eval, data_path, and the manifest's
 * models/data/command), then per step: step (zero the gradients, take r->per_step items
 * with tn_run_next, accumulate the loss's gradients; a trainer that updates more than
 * once per step calls tn_run_update itself for all but the last), the update, eval (when
 * due and r->has_eval), metrics (between tn_metrics_begin and the driver's elapsed_s), after
 * (e.g. a printed line), the checkpoint; then finish (before the final weights) and
 * teardown (always, also after a failed setup). */
typedef struct {
  void *ctx;
  tn_status (*setup)(void *ctx, tn_run *r, tn_manifest_info *mi);
  tn_status (*step)(void *ctx, tn_run *r, long step, tn_step_out *out);
  tn_status (*eval)(void *ctx, tn_run *r, long step);
  void (*metrics)(void *ctx, tn_run *r, const tn_step_info *si, tn_metrics *mt);
  tn_status (*after)(void *ctx, tn_run *r, const tn_step_info *si);
  tn_status (*finish)(void *ctx, tn_run *r);
  void (*teardown)(void *ctx);
} tn_trainer;

/* What a trainer's setup hook tells the driver about the run, in one call: the progress label,
 * the model (its folder for the files copied into saved models), the trainable set, the example
 * count, the data (fingerprint), the steps, whether there is eval data, and the stream items per
 * step (per_step) and per micro-batch (micro; 0: one micro-batch) on one rank. */
void tn_run_describe(tn_run *r, const tn_train_opts *o, const char *label, tn_model *m, tn_tparams *tp, int n_train,
                     bool has_eval, long per_step, int micro);

/* Run trainer t with the shared options o (out, resume, seed, keep_last, save_every,
 * eval_every, max_grad_norm) to the end; ri for the manifest (may be NULL). */
tn_status tn_train_drive(tn_trainer *t, const tn_train_opts *o, const tn_run_info *ri);
#endif
