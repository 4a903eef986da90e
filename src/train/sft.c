/* sft.c - supervised fine-tuning: `tunic sft`. Full fine-tuning or LoRA over
 * JSONL data (src/data), next-token cross-entropy masked to the completion /
 * assistant tokens and averaged over every target token of all micro-batches of
 * a step (not a mean of means), AdamW with a schedule and global-norm clipping,
 * eval loss, checkpoints that resume bit-identically, and a run directory with
 * run_manifest.json, metrics.jsonl and TensorBoard events.
 * The data order is a pure function of (seed, example counter), so a resumed
 * run sees exactly the batches the uninterrupted run would have seen. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train/run.h"
#include "train/sft.h"

void tn_sft_opts_default(tn_sft_opts *o) {
  memset(o, 0, sizeof *o);
  tn_train_opts_default(&o->train);
  o->log_every = 1;
}

/* ---- a micro-batch: examples as separate sequences, no padding computed ---- */
typedef struct {
  int *tok, *pos, *seq, *tgt; // (Nmax)
  int N, targets;
} rows_t;

static void rows_fill(rows_t *r, const tn_example *const *ex, int n) {
  r->N = 0;
  r->targets = 0;
  for (int b = 0; b < n; b++)
    for (int t = 0; t < ex[b]->n; t++) {
      int i = r->N++;
      r->tok[i] = ex[b]->ids[t];
      r->pos[i] = t;
      r->seq[i] = b;
      r->tgt[i] = t + 1 < ex[b]->n && ex[b]->mask[t + 1] ? ex[b]->ids[t + 1] : -1;
      r->targets += r->tgt[i] >= 0;
    }
}

typedef struct {
  tn_sft_opts o;
  tn_model *m;
  tn_tokenizer *tok;
  tn_dataset train, eval;
  tn_state *st;
  tn_bwd bw;
  tn_tparams tp;         /* trainable weights (full or LoRA), AdamW, schedule */
  uint64_t fwd_counter;  /* selects LoRA dropout masks: one value per training forward */
  tn_head head;          /* LM head + cross-entropy in row chunks: no (Nmax, V) logits */
  float *lrow, *wrow;    // (Nmax) x2
  rows_t rows;
  const tn_example **ex; // (batch_size) a micro-batch's examples
  tn_manifest_file models[1], data[2];
  long count;            /* target tokens of the current step */
  double evl;            /* eval loss of the last eval */
} sft_t;

/* forward (+ backward when weight > 0) of one micro-batch; returns the loss sum */
static tn_status run_rows(sft_t *t, double *loss_sum, float weight, bool backward) {
  const int N = t->rows.N;
  if (t->tp.lora) tn_lora_train_mode(t->tp.lora, backward, backward ? ++t->fwd_counter : 0);
  TN_TRY(tn_forward(t->m, t->st, N, t->rows.tok, t->rows.pos, t->rows.seq, NULL, NULL, 0));
  for (int i = 0; i < N; i++) t->wrow[i] = weight;
  TN_TRY(tn_head_xent(t->m, t->st, &t->head, backward ? &t->bw : NULL, tn_tparams_grads(&t->tp), t->rows.tgt,
                      t->wrow, N, t->lrow));
  double s = 0;
  for (int i = 0; i < N; i++) s += t->lrow[i];
  *loss_sum += s;
  if (!backward) return TN_OK;
  return tn_backward_body(t->m, t->st, &t->bw, tn_tparams_grads(&t->tp), N, t->rows.tok, t->rows.pos, t->rows.seq);
}

static tn_status eval_loss(sft_t *t, double *out) {
  double sum = 0;
  long count = 0;
  for (int i = 0; i < t->eval.n;) {
    int n = 0;
    while (i < t->eval.n && n < t->o.batch_size) t->ex[n++] = &t->eval.ex[i++];
    rows_fill(&t->rows, t->ex, n);
    count += t->rows.targets;
    TN_TRY(run_rows(t, &sum, 0, false));
  }
  *out = count ? sum / count : NAN;
  return TN_OK;
}

static tn_status setup(void *ctx, tn_run *r, tn_manifest_info *mi) {
  sft_t *t = ctx;
  tn_sft_opts *o = &t->o;
  if (!o->model || !o->data || !o->out) return tn_error(TN_ERR_ARG, "--model, --data and --out are required");
  TN_TRY(tn_train_opts_precision(&o->train));
  if (o->batch_size <= 0 || o->grad_accum <= 0 || o->max_seq_len <= 1 || (int64_t)o->batch_size * o->max_seq_len > INT32_MAX)
    return tn_error(TN_ERR_ARG, "batch_size (>= 1), grad_accum (>= 1) and max_seq_len (>= 2) must be valid, "
                                "batch_size x max_seq_len below 2^31");
  TN_TRY(tn_tparams_load_model(&t->m, &o->train));
  TN_TRY(tn_tokenizer_load(o->tokenizer ? o->tokenizer : o->model, &t->tok));
  if (o->chat_template) TN_TRY(tn_tokenizer_set_chat_template(t->tok, o->chat_template));
  TN_TRY(tn_train_opts_load_sft(&o->train, t->tok, t->m->cfg.V, &t->train, &t->eval));
  if (t->train.n_truncated) tn_info("%d examples truncated to %d tokens", t->train.n_truncated, o->max_seq_len);
  if (t->train.n_dropped) tn_warn("%d examples had no target token left and were dropped", t->train.n_dropped);
  const int Nmax = o->batch_size * o->max_seq_len;
  tn_state_opts so = {.recompute = o->recompute};
  TN_TRY(tn_state_create_opts(&t->st, t->m, o->batch_size, o->max_seq_len, Nmax, true, &so));
  TN_TRY(tn_bwd_create(&t->bw, t->m, t->st));
  TN_TRY(tn_head_create(&t->head, t->m, t->st));
  o->steps = (int)tn_train_opts_total_steps(&o->train, t->train.n);
  tn_tparams_opts po = tn_train_opts_tparams(&o->train, o->steps);
  TN_TRY(tn_tparams_init(&t->tp, t->m, &po));
  t->lrow = tn_alloc(sizeof(float) * Nmax);
  t->wrow = tn_alloc(sizeof(float) * Nmax);
  t->rows.tok = malloc(sizeof(int) * Nmax);
  t->rows.pos = malloc(sizeof(int) * Nmax);
  t->rows.seq = malloc(sizeof(int) * Nmax);
  t->rows.tgt = malloc(sizeof(int) * Nmax);
  t->ex = malloc(sizeof(void *) * o->batch_size);
  if (!t->lrow || !t->wrow || !t->rows.tok || !t->rows.pos || !t->rows.seq || !t->rows.tgt || !t->ex)
    return tn_error(TN_ERR_NOMEM, "out of memory for %d rows", Nmax);
  tn_run_describe(r, &o->train, "sft", t->m, &t->tp, t->train.n, t->eval.n > 0, (long)o->batch_size * o->grad_accum,
                  o->batch_size);
  t->models[0] = (tn_manifest_file){"model", o->model};
  t->data[0] = (tn_manifest_file){"train", o->data};
  t->data[1] = (tn_manifest_file){"eval", o->eval_data};
  *mi = (tn_manifest_info){.command = "sft", .models = t->models, .nmodels = 1, .data = t->data,
                           .ndata = o->eval_data ? 2 : 1};
  printf("sft: %d train / %d eval examples, %s, %ld steps of %d x %d examples, %zu trainable parameters\n", t->train.n,
         t->eval.n, t->tp.lora ? "LoRA" : "full fine-tuning", (long)o->steps, o->batch_size, o->grad_accum, t->tp.opt.total);
  fflush(stdout);
  return TN_OK;
}

static void teardown(void *ctx) {
  sft_t *t = ctx;
  free(t->ex);
  tn_head_free(&t->head);
  tn_free(t->lrow);
  tn_free(t->wrow);
  free(t->rows.tok); free(t->rows.pos); free(t->rows.seq); free(t->rows.tgt);
  tn_tparams_free(&t->tp);
  tn_bwd_free(&t->bw);
  tn_state_free(t->st);
  tn_dataset_free(&t->train);
  tn_dataset_free(&t->eval);
  tn_tokenizer_free(t->tok);
  tn_model_free(t->m);
}

/* one step: the mean loss over every target token of its grad_accum micro-batches */
static tn_status step(void *ctx, tn_run *r, long step, tn_step_out *out) {
  sft_t *t = ctx;
  const tn_sft_opts *o = &t->o;
  t->fwd_counter = (uint64_t)step * o->grad_accum; /* LoRA dropout masks: a function of the step */
  /* count the targets of the whole step first: the loss is a mean over all of them */
  long count = 0;
  for (long pos = r->data_pos; pos < r->data_pos + r->per_step; pos++)
    count += t->train.ex[tn_stream_at(&r->stream, pos)].n_targets;
  tn_tparams_zero_grad(&t->tp);
  double loss_sum = 0, ntok = 0;
  for (int a = 0; a < o->grad_accum; a++) {
    for (int b = 0; b < o->batch_size; b++) t->ex[b] = &t->train.ex[tn_run_next(r)];
    rows_fill(&t->rows, t->ex, o->batch_size);
    ntok += t->rows.N;
    TN_TRY(run_rows(t, &loss_sum, 1.0f / (float)count, true));
  }
  double sum[2] = {loss_sum, ntok}; /* several ranks: the global step's (count is already global) */
  TN_TRY(tn_run_sum(r, sum, 2));
  t->count = count;
  out->loss = sum[0] / count;
  out->tokens = sum[1];
  return TN_OK;
}

static tn_status eval(void *ctx, tn_run *r, long step) {
  (void)r; (void)step;
  return eval_loss(ctx, &((sft_t *)ctx)->evl);
}

static void metrics(void *ctx, tn_run *r, const tn_step_info *si, tn_metrics *mt) {
  sft_t *t = ctx;
  (void)r;
  tn_metrics_add(mt, "loss", si->loss);
  if (si->evaluated && !isnan(t->evl)) tn_metrics_add(mt, "eval_loss", t->evl);
  tn_metrics_add(mt, "learning_rate", si->lr);
  tn_metrics_add(mt, "grad_norm", si->gnorm);
  tn_metrics_add(mt, "tokens_per_s", si->tokens / si->dt);
  tn_metrics_add(mt, "target_tokens", (double)t->count);
}

tn_status tn_sft_run(const tn_sft_opts *opts, const tn_run_info *ri) {
  sft_t t = {0};
  t.o = *opts;
  tn_trainer tr = {.ctx = &t, .setup = setup, .step = step, .eval = eval, .metrics = metrics, .teardown = teardown};
  return tn_train_drive(&tr, &t.o.train, ri);
}
