/* train.h - the training engine shared by every trainer (SFT, DPO, GRPO, distill):
 * gradient buffers, the decoder's backward pass, LoRA adapters.
 * Gradients live in ONE flat buffer carved by the model's weight table (or the
 * LoRA table), so clipping, the optimizer, all-reduce and checkpoints walk flat
 * arrays. Backward functions accumulate (+=); zero the flat buffer once per step.
 * Not for: losses over sequences (loss.c), optimizers (optim.h), data (src/data). */
#ifndef TN_TRAIN_H
#define TN_TRAIN_H
#include "model/model.h"
#include "tunic/train.h"

/* ---- full-model gradients ---- */
typedef struct {
  tn_weights g;        /* same shape as the model's weights; pointers into flat */
  float *flat;         /* (n) */
  size_t n;
} tn_grads;
tn_status tn_grads_create(tn_grads *g, const tn_model *m);
void tn_grads_free(tn_grads *g);
void tn_grads_zero(tn_grads *g);

/* ---- backward scratch, allocated once for a training state ---- */
typedef struct {
  float *dx, *dx2;     // (N, C) residual-stream gradients
  float *dn;           // (N, C) gradient of a norm's output
  float *dxf;          // (N, C)
  float *dq, *dkr, *dvr; // (N, H*D), (N, KV*D), (N, KV*D)
  float *dao;          // (N, H*D)
  float *dk, *dv;      // (S, T, KV, D) one layer's cache-shaped key/value gradients
  float *dg, *du, *dh; // (N, F)
  float *tmp;          // (N, max(C, H*D)) scratch (q-norm input grads)
  float *buf;
  /* Optional extra loss gradients w.r.t. hidden states (feature distillation), added
   * (+=) to what flows back from the head: dhidden[k] (N, C) or NULL, k = 0..L, is
   * d loss / d (residual stream after k layers): k = 0 the scaled embeddings, k = L the
   * last layer's output before the final norm (st->x_out; HF's hidden_states[k] for
   * k < L, while HF's last entry is after the norm). NULL pointer (the default after
   * tn_bwd_create): nothing is added. Not owned; set it before tn_backward. */
  const float *const *dhidden; // (L + 1)
  /* Optional: d loss / d (final-normed hidden state) (N, C) of a head beside the LM head (PPO's
   * value head), added (+=) to what tn_backward's LM head gives. NULL (the default): nothing. */
  const float *dxf_add;        // (N, C)
} tn_bwd;
tn_status tn_bwd_create(tn_bwd *b, const tn_model *m, const tn_state *st);
void tn_bwd_free(tn_bwd *b);

/* Backward of tn_forward over the same N rows (all rows produced logits:
 * out_rows was NULL). dlogits (N, V) is the loss gradient w.r.t. the final
 * logits; logits (N, V) are those logits (needed only with a final soft-cap;
 * must not alias dlogits then). Gradients accumulate into grads (NULL: no base
 * weight is trainable, e.g. LoRA, whose dA/dB accumulate in the adapters).
 * dlogits is used as scratch (its content is destroyed). */
tn_status tn_backward(const tn_model *m, tn_state *st, tn_bwd *b, tn_grads *grads, float *dlogits,
                      const float *logits, int N, const int *tok, const int *pos, const int *seq);

/* ---- LM head + cross-entropy in row chunks: the (N, V) logits never exist ----
 * After tn_forward over N rows with logits == NULL: the final norm of every row,
 * then per chunk of R rows: logits (R, V) = head, soft-cap, loss per row
 * (loss_rows (N), target < 0: ignored, 0) and, when b is not NULL, dlogits =
 * (softmax - onehot) * row_weight (NULL: 1), b->dxf (N, C) = d loss / d (final-
 * normed x) and the head's weight gradient (+=, when grads). Then
 * tn_backward_body continues from b->dxf: together they equal tn_forward with
 * logits + tn_xent_forward_backward + tn_backward, with R x V floats of scratch
 * instead of N x V (twice with a soft-cap). */
typedef struct {
  int R;               /* rows per chunk */
  float *logits;       // (R, V) one chunk's logits, then its dlogits
  float *capped;       // (R, V) soft-capped logits (final soft-cap only), else NULL
  float *buf;
  tn_bf16_packed pk_fwd, pk_bwd; /* bf16 matmul mode: the head weight packed once per call */
} tn_head;
/* R: TN_HEAD_CHUNK_ROWS from the environment, else about 2^24 / V (>= 32), at most st->Nmax */
tn_status tn_head_create(tn_head *h, const tn_model *m, const tn_state *st);
void tn_head_free(tn_head *h);
tn_status tn_head_xent(const tn_model *m, tn_state *st, tn_head *h, tn_bwd *b, tn_grads *grads, const int *targets,
                       const float *row_weight, int N, float *loss_rows);
/* The backward pass below the head: from b->dxf through the final norm, every
 * layer (recomputing its activations first when st->recompute) and the embedding. */
tn_status tn_backward_body(const tn_model *m, tn_state *st, tn_bwd *b, tn_grads *grads, int N, const int *tok,
                           const int *pos, const int *seq);

/* ---- what a trainer updates: optimizer rows over one flat gradient buffer ---- */
#include "train/optim.h"
typedef struct {
  tn_param *rows;      /* (n) name, param, grad, numel, decay */
  int n;
  float *grad;         /* (ngrad) the flat gradient buffer every row's grad points into */
  size_t ngrad;
} tn_trainable;
/* Every weight of the model (full fine-tuning); grads must outlive tr. */
tn_status tn_trainable_full(tn_trainable *tr, const tn_model *m, tn_grads *grads);
void tn_trainable_free(tn_trainable *tr);

/* ---- checkpoints: RUN/checkpoints/step_N/ ----
 * the trainable rows as a flat safetensors file named `weights_file` (or, when it
 * is NULL, whatever `extra` writes: the trainers write a loadable HF model folder
 * (config.json + model.safetensors in f32) for full fine-tuning and a PEFT adapter
 * (adapter_config.json + adapter_model.safetensors) for LoRA; tn_ckpt_load matches
 * rows by name and element count), optimizer.safetensors (NAME.exp_avg,
 * NAME.exp_avg_sq, step), trainer_state.json (the caller's JSON text), and last
 * checksums.json, the checkpoint's manifest: {"files": {NAME: {"bytes", "sha256"}}} of
 * every other file in the folder. Written into a temporary folder, every file fsync'd,
 * then renamed into place; only the last keep_last checkpoints are kept (0 = all). A
 * failed write (full disk, I/O error) leaves the checkpoints before it as they were and
 * returns an error naming the path. */
typedef struct {
  const char *run_dir;
  long step;
  const char *weights_file;
  const tn_trainable *tr;
  const tn_adamw *opt;
  const char *state_json;
  int keep_last;
  tn_status (*extra)(const char *dir, void *ctx); /* more files into the checkpoint folder */
  void *extra_ctx;
} tn_ckpt_save_opts;
tn_status tn_ckpt_save(const tn_ckpt_save_opts *o);
/* What tn_ckpt_save writes of tr/opt into the existing folder dir (weights_file when not NULL,
 * optimizer.safetensors, trainer_state.json = state_json), so that tn_ckpt_load reads it back:
 * for a trainer's second trained model (PPO's critic) inside its checkpoint folder. */
tn_status tn_ckpt_write_state(const char *dir, const char *weights_file, const tn_trainable *tr, const tn_adamw *opt,
                              const char *state_json);
/* The steps N of RUN/checkpoints/step_N, ascending, into *steps (malloc'd; may be NULL
 * when none); returns how many. Leftovers of a killed save or delete are removed first. */
int tn_ckpt_list(const char *run_dir, long **steps);
/* Every file in checksums.json is there with its size and sha256 (TN_ERR_FORMAT naming
 * the file otherwise). A checkpoint without checksums.json (written before they were
 * recorded) passes. */
tn_status tn_ckpt_verify(const char *ckpt_dir);
/* Restore trainable rows, optimizer state and the trainer_state.json text (malloc'd). */
tn_status tn_ckpt_load(const char *ckpt_dir, const char *weights_file, tn_trainable *tr, tn_adamw *opt, char **state_json);

/* ---- what every trainer sets up the same way: trainable weights (full or LoRA),
 * AdamW, the learning-rate schedule; saving them as a model folder or adapter ---- */
#include "train/lora.h"
typedef struct {
  int lora_rank;                 /* 0: full fine-tuning */
  float lora_alpha, lora_dropout;
  bool rslora;
  const char *lora_targets;
  uint64_t seed;
  float lr, lr_end, weight_decay, beta1, beta2, adam_eps;
  const char *schedule;          /* constant | linear | cosine */
  long warmup_steps, total_steps;
} tn_tparams_opts;
void tn_tparams_opts_default(tn_tparams_opts *o);
typedef struct {
  tn_lora_set *lora;             /* NULL: full fine-tuning */
  tn_grads grads;                /* full fine-tuning */
  tn_trainable tr;
  tn_adamw opt;
  tn_schedule sched;
} tn_tparams;
tn_status tn_tparams_init(tn_tparams *p, tn_model *m, const tn_tparams_opts *o);
/* Load o->model to train: o->base_dtype (NULL = "f32") "bf16" | "nf4" | "auto" stores the
 * frozen projections in that format (QLoRA) and needs LoRA (lora_rank > 0); o->base_adapter
 * (NULL: none) is merged into the projections (made f32 first) before anything else sees the
 * model, so the run starts from model + adapter. Errors free the model and name the option. */
tn_status tn_tparams_load_model(tn_model **m, const tn_train_opts *o);
/* The frozen reference of a full fine-tuning run: o->model (f32) + o->base_adapter, i.e. the
 * weights the policy starts from. */
tn_status tn_tparams_load_ref(tn_model **m, const tn_train_opts *o);
void tn_tparams_free(tn_tparams *p);
/* The weights as a usable folder: a PEFT adapter (LoRA), or config/tokenizer files
 * copied from src_model_dir plus model.safetensors in `dtype`. */
tn_status tn_tparams_save(const tn_tparams *p, const tn_model *m, const char *src_model_dir, const char *dir,
                          tn_st_dtype dtype);
/* The file tn_ckpt_load reads the trainable rows from. */
const char *tn_tparams_weights_file(const tn_tparams *p);
/* Zero the gradients; run this model's backward into them (grads NULL for LoRA). */
void tn_tparams_zero_grad(tn_tparams *p);
tn_grads *tn_tparams_grads(tn_tparams *p);
/* --dump-grads: every trainable row's gradient as DIR/step_STEP.safetensors (1-D f32 tensors
 * under the rows' names; DIR is created) */
tn_status tn_tparams_dump_grads(const tn_tparams *p, const char *dir, long step);
#endif
