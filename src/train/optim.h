/* optim.h - the optimizer side of a training step: the parameter table, AdamW
 * (decoupled weight decay, as torch.optim.AdamW), gradient clipping by global L2
 * norm (as torch.nn.utils.clip_grad_norm_) and learning-rate schedules (constant,
 * linear, and optax's warmup_cosine_decay_schedule). Formulas: docs/training.md.
 * Not for: computing gradients, gradient accumulation, or writing checkpoints (the
 * checkpoint code reads/writes the flat m/v buffers exposed here). Internal header. */
#ifndef TN_TRAIN_OPTIM_H
#define TN_TRAIN_OPTIM_H
#include <stdbool.h>
#include <stddef.h>
#include "tunic/base.h"

/* ---- parameter table ----
 * One row per trainable tensor. `param` and `grad` hold n floats each; in the
 * engine every `grad` is a slice of one flat gradient buffer (DESIGN.md), but the
 * optimizer only needs each row's own pointers. `name` is the HF tensor name
 * (not copied: it must outlive the optimizer). */
typedef struct tn_param {
  const char *name;
  float *param;   /* (n) */
  float *grad;    /* (n) */
  size_t n;
  bool decay;     /* apply weight decay to this tensor */
} tn_param;

/* The usual rule: no weight decay on 1-D tensors (norm weights, biases) nor on
 * any tensor whose name contains "norm" or "bias"; decay on everything else
 * (matrices, embeddings, LoRA A/B). */
bool tn_param_decays(const char *name, int ndim);

/* ---- AdamW ---- */
typedef struct {
  float beta1, beta2;   /* 0.9, 0.999 */
  float eps;            /* 1e-8, added after sqrt(v_hat) */
  float weight_decay;   /* 0.01 in torch; applied only to rows with decay=true */
} tn_adamw_config;

/* torch.optim.AdamW's defaults (betas 0.9/0.999, eps 1e-8, weight_decay 0.01). */
tn_adamw_config tn_adamw_defaults(void);

typedef struct {
  tn_adamw_config cfg;
  tn_param *params;     /* (nparams) copy of the table given to init */
  int nparams;
  size_t *offset;       /* (nparams + 1) start of each row in m/v; offset[nparams] = total */
  size_t total;         /* floats over all rows */
  float *m, *v;         /* (total) first and second moments, flat, in table order */
  long step;            /* updates done so far (torch's state["step"]); 0 before the first */
} tn_adamw;

/* Allocate m and v (zeroed) once for the table. Errors: TN_ERR_ARG for a row with
 * n > 0 and a NULL pointer or a non-finite config, TN_ERR_NOMEM. */
tn_status tn_adamw_init(tn_adamw *opt, const tn_param *params, int nparams,
                        const tn_adamw_config *cfg);
void tn_adamw_free(tn_adamw *opt);

/* One update of every row with learning rate lr, reading grad * grad_scale
 * (grad_scale = the clip coefficient, or 1; the gradients are not modified).
 * Increments opt->step first, then per element, as torch.optim.AdamW:
 *   p -= lr * wd * p            (only rows with decay)
 *   m  = b1 m + (1 - b1) g
 *   v  = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Vectorised, one OpenMP region over all rows. */
void tn_adamw_step(tn_adamw *opt, float lr, float grad_scale);

/* Tests and benchmarks: force the portable loop instead of the AVX-512 one
 * (both give bit-identical results; not thread-safe, set it before stepping). */
void tn_adamw_set_portable(bool on);

/* Bytes of optimizer state: m and v (2 * total * 4). */
size_t tn_adamw_state_bytes(const tn_adamw *opt);
/* Views of row i's slices of m and v (n floats each), e.g. to save them as
 * "<name>.exp_avg" / "<name>.exp_avg_sq" tensors. Returns n, 0 for a bad index. */
size_t tn_adamw_row_state(const tn_adamw *opt, int i, float **m, float **v);
/* Index of the row named `name`, or -1. */
int tn_adamw_find(const tn_adamw *opt, const char *name);
/* Restore a saved state: copies total floats of m and v and sets the step.
 * TN_ERR_FORMAT (message naming the sizes) when n != opt->total or step < 0. */
tn_status tn_adamw_load_state(tn_adamw *opt, const float *m, const float *v, size_t n, long step);

/* ---- gradient norm and clipping ---- */
/* L2 norm of g (n), accumulated in double in a fixed order (same result for
 * any thread count). TN_ERR_NUMERIC when the norm is NaN or Inf. */
tn_status tn_grad_norm(const float *g, size_t n, double *norm);
/* Same over the rows' grad slices, in table order; on NaN/Inf the message names
 * the first tensor holding a non-finite gradient. */
tn_status tn_params_grad_norm(const tn_param *params, int nparams, double *norm);
/* torch's coefficient: min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0
 * (clipping off). */
float tn_clip_coef(double norm, float max_norm);
/* Norm + scale g in place by tn_clip_coef (as clip_grad_norm_). *norm gets the
 * pre-clip norm. TN_ERR_NUMERIC (g untouched) when the norm is not finite. */
tn_status tn_clip_grad_norm(float *g, size_t n, float max_norm, double *norm);

/* ---- learning-rate schedules (schedule.c) ----
 * Steps count from 0: the lr of the first update is tn_lr_at(s, 0), i.e. call
 * it with opt->step before tn_adamw_step. All kinds start with a linear warmup
 * from init_value to peak_value over warmup_steps (none when 0), then:
 *   CONSTANT  peak_value
 *   LINEAR    linear from peak_value to end_value, reached at step decay_steps
 *   COSINE    optax.warmup_cosine_decay_schedule: cosine from peak_value to
 *             end_value, reached at step decay_steps, with `exponent`
 * As in optax, decay_steps is the TOTAL length including the warmup. */
typedef enum { TN_SCHED_CONSTANT = 0, TN_SCHED_LINEAR, TN_SCHED_COSINE } tn_schedule_kind;

typedef struct {
  tn_schedule_kind kind;
  double init_value, peak_value, end_value;
  long warmup_steps, decay_steps;
  double exponent;   /* cosine only; 1.0 is the usual cosine */
} tn_schedule;

/* A schedule with sensible values for kind: warmup 0, init 0, end 0, exponent 1. */
tn_schedule tn_schedule_make(tn_schedule_kind kind, double peak_value, long warmup_steps,
                             long decay_steps);
/* TN_ERR_ARG with a message naming the field: negative or non-finite values,
 * cosine with decay_steps <= warmup_steps (optax raises there too). */
tn_status tn_schedule_check(const tn_schedule *s);
float tn_lr_at(const tn_schedule *s, long step);
/* "constant" | "linear" | "cosine" (also "warmup_cosine"); TN_ERR_ARG otherwise. */
tn_status tn_schedule_kind_parse(const char *name, tn_schedule_kind *kind);
const char *tn_schedule_kind_name(tn_schedule_kind kind);

#endif
