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
  tn_stream stream;
  long data_pos;
  tn_run run;            /* run directory: manifest, metrics, progress, checkpoints */
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
  const tn_example *ex[1024];
  for (int i = 0; i < t->eval.n;) {
    int n = 0;
    while (i < t->eval.n && n < t->o.batch_size) ex[n++] = &t->eval.ex[i++];
    rows_fill(&t->rows, ex, n);
    count += t->rows.targets;
    TN_TRY(run_rows(t, &sum, 0, false));
  }
  *out = count ? sum / count : NAN;
  return TN_OK;
}

static tn_status setup(sft_t *t) {
  tn_sft_opts *o = &t->o;
  if (!o->model || !o->data || !o->out) return tn_error(TN_ERR_ARG, "--model, --data and --out are required");
  if (o->batch_size <= 0 || o->batch_size > 1024 || o->grad_accum <= 0 || o->max_seq_len <= 1)
    return tn_error(TN_ERR_ARG, "batch_size (1..1024), grad_accum (>= 1) and max_seq_len (>= 2) must be valid");
  TN_TRY(tn_tparams_load_model(&t->m, o->model, o->base_dtype, o->lora_rank));
  TN_TRY(tn_tokenizer_load(o->tokenizer ? o->tokenizer : o->model, &t->tok));
  TN_TRY(tn_train_opts_load_sft(&o->train, t->tok, t->m->cfg.V, &t->train, &t->eval));
  if (t->train.n_truncated) tn_info("%d examples truncated to %d tokens", t->train.n_truncated, o->max_seq_len);
  if (t->train.n_dropped) tn_warn("%d examples had no target token left and were dropped", t->train.n_dropped);
  const int Nmax = o->batch_size * o->max_seq_len;
  tn_matmul_set_bf16(o->bf16_matmul);
  if (o->bf16_matmul && !tn_amx_available()) tn_warn("--bf16-matmul: AMX is not available here; matmuls stay f32");
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
  if (!t->lrow || !t->wrow || !t->rows.tok || !t->rows.pos || !t->rows.seq || !t->rows.tgt)
    return tn_error(TN_ERR_NOMEM, "out of memory for %d rows", Nmax);
  t->run = (tn_run){.out = o->out, .label = "sft", .model_dir = o->model, .m = t->m, .tp = &t->tp,
                    .keep_last = o->keep_last, .seed = o->seed, .n_train = t->train.n, .steps = o->steps};
  return tn_stream_init(&t->stream, t->train.n, o->seed);
}

static void teardown(sft_t *t) {
  tn_run_close(&t->run);
  tn_head_free(&t->head);
  tn_free(t->lrow);
  tn_free(t->wrow);
  free(t->rows.tok); free(t->rows.pos); free(t->rows.seq); free(t->rows.tgt);
  tn_stream_free(&t->stream);
  tn_tparams_free(&t->tp);
  tn_bwd_free(&t->bw);
  tn_state_free(t->st);
  tn_dataset_free(&t->train);
  tn_dataset_free(&t->eval);
  tn_tokenizer_free(t->tok);
  tn_model_free(t->m);
}

static const tn_example *stream_get(sft_t *t, long pos) { return &t->train.ex[tn_stream_at(&t->stream, pos)]; }

tn_status tn_sft_run(const tn_sft_opts *opts, const char *config_json, int argc, char **argv) {
  sft_t t = {0};
  t.o = *opts;
  tn_status s = setup(&t);
  const tn_sft_opts *o = &t.o;
  long step0 = 0;
  if (s == TN_OK && o->resume) {
    s = tn_run_resume(&t.run, &step0, &t.data_pos);
    t.fwd_counter = (uint64_t)step0 * o->grad_accum; /* same LoRA dropout masks as uninterrupted */
  }
  if (s == TN_OK) {
    tn_manifest_file models[] = {{"model", o->model}}, data[] = {{"train", o->data}, {"eval", o->eval_data}};
    tn_manifest_info mi = {.command = "sft", .config_json = config_json, .seed = o->seed, .models = models,
                           .nmodels = 1, .data = data, .ndata = o->eval_data ? 2 : 1, .argc = argc, .argv = argv};
    s = tn_run_start(&t.run, &mi);
  }
  if (s != TN_OK) { teardown(&t); return s; }
  printf("sft: %d train / %d eval examples, %s, %ld steps of %d x %d examples, %zu trainable parameters\n", t.train.n,
         t.eval.n, t.tp.lora ? "LoRA" : "full fine-tuning", (long)o->steps, o->batch_size, o->grad_accum, t.tp.opt.total);
  fflush(stdout);
  const tn_example **ex = malloc(sizeof(void *) * o->batch_size);
  if (!ex) s = tn_error(TN_ERR_NOMEM, "out of memory");
  double tokens_seen = 0;
  for (long step = step0; step < o->steps && s == TN_OK; step++) {
    const double t0 = tn_now();
    /* count the targets of the whole step first: the loss is a mean over all of them */
    long count = 0, pos = t.data_pos;
    for (int a = 0; a < o->grad_accum; a++)
      for (int b = 0; b < o->batch_size; b++) count += stream_get(&t, pos++)->n_targets;
    tn_tparams_zero_grad(&t.tp);
    double loss_sum = 0, ntok = 0;
    for (int a = 0; a < o->grad_accum && s == TN_OK; a++) {
      for (int b = 0; b < o->batch_size; b++) ex[b] = stream_get(&t, t.data_pos++);
      rows_fill(&t.rows, ex, o->batch_size);
      ntok += t.rows.N;
      s = run_rows(&t, &loss_sum, 1.0f / (float)count, true);
    }
    if (s != TN_OK) break;
    double loss = loss_sum / count, gnorm = 0;
    float lr = 0;
    if (!isfinite(loss)) { s = tn_run_nonfinite(step, loss); break; }
    if ((s = tn_run_update(&t.run, step, o->max_grad_norm, &gnorm, &lr)) != TN_OK) break;
    tokens_seen += ntok;
    const double dt = tn_now() - t0;
    double evl = NAN;
    bool last = step + 1 == o->steps;
    if (t.eval.n && o->eval_every > 0 && ((step + 1) % o->eval_every == 0 || last)) s = eval_loss(&t, &evl);
    tn_metrics *mt = t.run.metrics;
    tn_metrics_begin(mt, step + 1);
    tn_metrics_add(mt, "loss", loss);
    if (!isnan(evl)) tn_metrics_add(mt, "eval_loss", evl);
    tn_metrics_add(mt, "learning_rate", lr);
    tn_metrics_add(mt, "grad_norm", gnorm);
    tn_metrics_add(mt, "tokens_per_s", ntok / dt);
    tn_metrics_add(mt, "target_tokens", (double)count);
    tn_metrics_add(mt, "elapsed_s", tn_now() - t.run.t_start);
    if (s == TN_OK) s = tn_metrics_commit(mt);
    tn_progress_update(t.run.prog, step + 1, loss, lr, ntok / dt, NULL);
    if (s == TN_OK && ((o->save_every > 0 && (step + 1) % o->save_every == 0) || last))
      s = tn_run_checkpoint(&t.run, step + 1, t.data_pos);
  }
  free(ex);
  if (s == TN_OK) s = tn_run_finish(&t.run);
  teardown(&t);
  return s;
}
