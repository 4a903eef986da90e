/* dpo.c - preference optimisation: `tunic dpo`. Each pair is two sequences of
 * one forward call (prompt + chosen in slot 2b, prompt + rejected in slot 2b+1,
 * no padding computed); the response tokens' log-probs are summed per sequence
 * (length-averaged for IPO and ORPO, as TRL), the loss head (tn_dpo_loss /
 * tn_orpo_loss, docs/losses.md) gives d loss / d log-prob sum, which becomes
 * dlogits (tn_logp_backward) and runs the decoder backward. The reference is the
 * base model with the LoRA adapter switched off (no second copy), a frozen copy
 * for full fine-tuning, or log-probs computed once before training
 * (--precompute-ref). The loss of a step is the mean over all its pairs (every
 * micro-batch of it). Run directory, checkpoints, exact resume, NaN stop and
 * metrics: the driver (train/run.h), which calls this file's hooks.
 * Not for: the loss formulas (loss_pref.c), data parsing (data/pref_data.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data/pref.h"
#include "train/dpo.h"
#include "train/losses.h"
#include "train/run.h"

void tn_dpo_opts_default(tn_dpo_opts *o) {
  memset(o, 0, sizeof *o);
  tn_train_opts_default(&o->train);
  o->lr = 1e-6f;
  o->schedule = "linear";
  o->loss = "sigmoid";
  o->algorithm = "dpo";
  o->beta = 0.1f;
  o->orpo_lambda = 0.1f;
  o->max_prompt_length = 512;
  o->max_response_length = 512;
}

typedef struct {
  double loss, rch, rrj, margin, acc, lpc, lpr, nll, lor, loc, ntok; /* all doubles: summed over ranks */
} dpo_acc;

typedef struct {
  tn_dpo_opts o;
  bool orpo, avg;        /* ORPO; length-averaged log-probs (IPO, ORPO) */
  tn_dpo_cfg lc;
  tn_model *m, *ref;     /* ref: frozen copy (full fine-tuning without --precompute-ref) */
  tn_tokenizer *tok;
  tn_pref_set train, eval;
  float *pre_c, *pre_r;  /* (train.n + eval.n) precomputed reference log-probs (train first) */
  tn_state *st;
  tn_bwd bw;
  tn_tparams tp;
  uint64_t fwd_counter;  /* LoRA dropout masks: one value per training forward */
  int S, T, Nmax;        /* response slots (2 per pair), capacity per slot, rows per forward */
  bool share;            /* prompts shared by the chosen and rejected slots (tn_train_prefix_sharing) */
  float *logits, *dlogits, *lp, *dlp;      // (Nmax, V) x2, (Nmax) x2
  int *tok_r, *pos_r, *seq_r, *tgt_r;     // (Nmax)
  int N;
  double *sums;                           // (S) per-sequence log-prob sums
  float *pc, *pr, *rc, *rr, *dc, *dr;     // (batch) per pair
  const tn_pref_pair **P;                 // (batch) a micro-batch's pairs
  int *idx, *lens;                        // (batch) their indices, chosen lengths
  tn_manifest_file models[2], data[2];
  dpo_acc a, ev;                          /* the step's statistics, the last eval's */
} dpo_t;

/* rows of n pairs: slot 2b = prompt + chosen, 2b+1 = prompt + rejected; the target
 * of a row is the next token when that token is in the response. Sharing (t->share):
 * the prompt's first np-1 tokens once, in slot S + b, and the chosen and rejected slots
 * start at the prompt's last token (it predicts each response's first token), reading
 * the prompt's keys/values from slot S + b (tn_state_train_prefix). */
static void fill_rows(dpo_t *t, const tn_pref_pair *const *P, int n) {
  int N = 0;
  if (t->share) tn_state_train_prefix_clear(t->st);
  for (int b = 0; b < n; b++) {
    const tn_pref_pair *p = P[b];
    const int k0 = t->share ? p->np - 1 : 0;
    for (int k = 0; k < k0; k++, N++) {
      t->tok_r[N] = p->ids[k];
      t->pos_r[N] = k;
      t->seq_r[N] = t->S + b;
      t->tgt_r[N] = -1;
    }
    for (int r = 0; r < 2; r++) {
      const int32_t *resp = r ? tn_pref_rejected(p) : tn_pref_chosen(p);
      const int L = p->np + (r ? p->nr : p->nc);
      if (k0 > 0) tn_state_train_prefix(t->st, 2 * b + r, t->S + b, k0);
      for (int k = k0; k < L; k++, N++) {
        t->tok_r[N] = k < p->np ? p->ids[k] : resp[k - p->np];
        t->pos_r[N] = k;
        t->seq_r[N] = 2 * b + r;
        t->tgt_r[N] = k + 1 >= p->np && k + 1 < L ? resp[k + 1 - p->np] : -1;
      }
    }
  }
  t->N = N;
}

/* forward m over the filled rows; per-pair chosen / rejected log-probs (sums or
 * averages) into c, r (n). train: LoRA dropout on (a forward that is backpropagated). */
static tn_status pair_logps(dpo_t *t, const tn_model *m, const tn_pref_pair *const *P, int n, float *c, float *r,
                            bool train) {
  const int V = t->m->cfg.V;
  if (t->tp.lora) tn_lora_train_mode(t->tp.lora, train, train ? ++t->fwd_counter : 0);
  memset(t->sums, 0, sizeof(double) * 2 * n);
  /* every row's logits, also without a backward pass: the head GEMM over another set of rows
   * (only the response rows) rounds differently on some BLAS kernels, and the reference must give
   * the policy's numbers bit for bit while they are the same weights (step 1: margin exactly 0) */
  TN_TRY(tn_forward(m, t->st, t->N, t->tok_r, t->pos_r, t->seq_r, t->logits, NULL, t->N));
  tn_token_logprobs(t->lp, t->logits, t->tgt_r, t->N, V, 1.0f);
  for (int i = 0; i < t->N; i++)
    if (t->tgt_r[i] >= 0) t->sums[t->seq_r[i]] += t->lp[i];
  for (int b = 0; b < n; b++) {
    c[b] = (float)(t->avg ? t->sums[2 * b] / P[b]->nc : t->sums[2 * b]);
    r[b] = (float)(t->avg ? t->sums[2 * b + 1] / P[b]->nr : t->sums[2 * b + 1]);
  }
  return TN_OK;
}

/* the reference's log-probs of the n pairs (rows already filled); idx: their
 * indices into the precomputed arrays (NULL when not precomputed) */
static tn_status ref_logps(dpo_t *t, const tn_pref_pair *const *P, int n, const int *idx) {
  if (t->pre_c && idx) {
    for (int b = 0; b < n; b++) { t->rc[b] = t->pre_c[idx[b]]; t->rr[b] = t->pre_r[idx[b]]; }
    return TN_OK;
  }
  if (t->ref) return pair_logps(t, t->ref, P, n, t->rc, t->rr, false);
  /* LoRA: the base model (adapter off); full fine-tuning: only while precomputing */
  if (t->tp.lora) tn_lora_enable(t->tp.lora, false);
  tn_status s = pair_logps(t, t->m, P, n, t->rc, t->rr, false);
  if (t->tp.lora) tn_lora_enable(t->tp.lora, true);
  return s;
}

/* the loss head over n pairs whose policy log-probs are in pc/pr (and reference in
 * rc/rr); gradients into dc/dr scaled to the step (n_step pairs, ntok_step chosen
 * tokens for ORPO's token-mean NLL); statistics accumulated with weight n / n_step */
static tn_status head(dpo_t *t, const tn_pref_pair *const *P, int n, int n_step, long ntok_step, dpo_acc *a) {
  tn_dpo_stats st;
  const double w = (double)n / n_step;
  if (!t->orpo) {
    TN_TRY(tn_dpo_loss(&t->lc, n, t->pc, t->pr, t->rc, t->rr, t->dc, t->dr, &st));
    for (int b = 0; b < n; b++) { t->dc[b] = (float)(t->dc[b] * w); t->dr[b] = (float)(t->dr[b] * w); }
    a->loss += w * st.loss;
  } else if (n == n_step) { /* one micro-batch: TRL's token-mean NLL directly */
    for (int b = 0; b < n; b++) t->lens[b] = P[b]->nc;
    TN_TRY(tn_orpo_loss_tok(t->o.orpo_lambda, n, t->pc, t->pr, t->lens, t->dc, t->dr, &st));
    a->loss += st.loss;
    a->nll += st.nll;
  } else { /* odds-ratio term per pair (its NLL part, -1/n per pair, taken out) + token-mean NLL of the step */
    TN_TRY(tn_orpo_loss(t->o.orpo_lambda, n, t->pc, t->pr, t->dc, t->dr, &st));
    double nll = 0;
    for (int b = 0; b < n; b++) {
      const double wt = (double)P[b]->nc / ntok_step;
      t->dc[b] = (float)(((double)t->dc[b] + 1.0 / n) * w - wt);
      t->dr[b] = (float)(t->dr[b] * w);
      nll += -(double)t->pc[b] * wt;
    }
    a->loss += w * (st.loss - st.nll) + nll;
    a->nll += nll;
  }
  a->rch += w * st.reward_chosen;
  a->rrj += w * st.reward_rejected;
  a->margin += w * st.margin;
  a->acc += w * st.accuracy;
  a->lor += w * st.log_odds_ratio;
  a->loc += w * st.log_odds_chosen;
  for (int b = 0; b < n; b++) { a->lpc += t->pc[b] / n_step; a->lpr += t->pr[b] / n_step; }
  return TN_OK;
}

/* backward of the policy forward whose logits are in t->logits */
static tn_status backward(dpo_t *t, const tn_pref_pair *const *P) {
  const int V = t->m->cfg.V;
  for (int i = 0; i < t->N; i++) {
    if (t->tgt_r[i] < 0) { t->dlp[i] = 0; continue; }
    const int s = t->seq_r[i], b = s / 2;
    float d = s & 1 ? t->dr[b] : t->dc[b];
    if (t->avg) d /= (float)(s & 1 ? P[b]->nr : P[b]->nc);
    t->dlp[i] = d;
  }
  tn_logp_backward(t->dlogits, t->logits, t->tgt_r, t->dlp, t->N, V, 1.0f);
  return tn_backward(t->m, t->st, &t->bw, tn_tparams_grads(&t->tp), t->dlogits, t->logits, t->N, t->tok_r, t->pos_r,
                     t->seq_r);
}

/* eval over held-out pairs: loss and statistics of the whole set */
static tn_status evaluate(dpo_t *t, dpo_acc *a) {
  memset(a, 0, sizeof *a);
  const tn_pref_pair **P = t->P;
  long ntok = 0;
  for (int i = 0; i < t->eval.n; i++) ntok += t->eval.p[i].nc;
  for (int i = 0; i < t->eval.n;) {
    int n = 0;
    while (i < t->eval.n && n < t->o.batch_size) { t->idx[n] = t->train.n + i; P[n++] = &t->eval.p[i++]; }
    fill_rows(t, P, n);
    if (!t->orpo) TN_TRY(ref_logps(t, P, n, t->idx));
    TN_TRY(pair_logps(t, t->m, P, n, t->pc, t->pr, false));
    TN_TRY(head(t, P, n, t->eval.n, ntok, a));
  }
  return TN_OK;
}

/* --precompute-ref: the reference's log-probs of every train and eval pair, once,
 * with the weights as loaded (before any update or resume) */
static tn_status precompute(dpo_t *t) {
  const int total = t->train.n + t->eval.n;
  t->pre_c = malloc(sizeof(float) * total);
  t->pre_r = malloc(sizeof(float) * total);
  if (!t->pre_c || !t->pre_r) return tn_error(TN_ERR_NOMEM, "reference log-probs of %d pairs", total);
  const tn_pref_pair **P = t->P;
  const double t0 = tn_now();
  const tn_comm *c = tn_train_comm(); /* several ranks: each computes every world-th batch, then they are summed */
  if (c) { memset(t->pre_c, 0, sizeof(float) * total); memset(t->pre_r, 0, sizeof(float) * total); }
  for (int i = 0, batch = 0; i < total; batch++) {
    int n = 0, i0 = i;
    while (i < total && n < t->o.batch_size) { P[n++] = i < t->train.n ? &t->train.p[i] : &t->eval.p[i - t->train.n]; i++; }
    if (c && batch % c->size != c->rank) continue;
    fill_rows(t, P, n);
    TN_TRY(ref_logps(t, P, n, NULL)); /* no indices: computed by the model */
    memcpy(t->pre_c + i0, t->rc, sizeof(float) * n);
    memcpy(t->pre_r + i0, t->rr, sizeof(float) * n);
  }
  if (c) { TN_TRY(c->sum_f32(c, t->pre_c, (size_t)total)); TN_TRY(c->sum_f32(c, t->pre_r, (size_t)total)); }
  printf("dpo: reference log-probs of %d pairs precomputed in %.1fs\n", total, tn_now() - t0);
  return TN_OK;
}

static tn_status setup(void *ctx, tn_run *r, tn_manifest_info *mi) {
  dpo_t *t = ctx;
  tn_dpo_opts *o = &t->o;
  if (!o->model || !o->data || !o->out) return tn_error(TN_ERR_ARG, "--model, --data and --out are required");
  TN_TRY(tn_train_opts_precision(&o->train));
  if (o->batch_size <= 0 || o->grad_accum <= 0 || (int64_t)o->batch_size * o->grad_accum > INT32_MAX / 2)
    return tn_error(TN_ERR_ARG, "batch_size (>= 1) and grad_accum (>= 1) must be valid, their product below 2^30");
  if (!strcmp(o->algorithm, "orpo")) t->orpo = true;
  else if (strcmp(o->algorithm, "dpo") != 0) return tn_error(TN_ERR_ARG, "algorithm '%s': expected dpo or orpo", o->algorithm);
  t->lc = (tn_dpo_cfg){.beta = o->beta, .label_smoothing = o->label_smoothing};
  if (!strcmp(o->loss, "sigmoid")) t->lc.type = TN_DPO_SIGMOID;
  else if (!strcmp(o->loss, "ipo")) t->lc.type = TN_DPO_IPO;
  else if (!strcmp(o->loss, "hinge")) t->lc.type = TN_DPO_HINGE;
  else if (!strcmp(o->loss, "robust")) t->lc.type = TN_DPO_ROBUST;
  else return tn_error(TN_ERR_ARG, "loss '%s': expected sigmoid, ipo, hinge or robust", o->loss);
  t->avg = t->orpo || t->lc.type == TN_DPO_IPO;
  if (!t->orpo && !(o->beta > 0)) return tn_error(TN_ERR_ARG, "beta = %g must be positive", o->beta);
  TN_TRY(tn_tparams_load_model(&t->m, &o->train));
  if (!t->orpo && (o->ref_model || (o->lora_rank <= 0 && !o->precompute_ref)))
    TN_TRY(o->ref_model ? tn_model_load(&t->ref, o->ref_model) : tn_tparams_load_ref(&t->ref, &o->train));
  if (t->ref && (t->ref->cfg.V != t->m->cfg.V || t->ref->cfg.C != t->m->cfg.C || t->ref->cfg.L != t->m->cfg.L ||
                 t->ref->cfg.H != t->m->cfg.H || t->ref->cfg.KV != t->m->cfg.KV || t->ref->cfg.D != t->m->cfg.D))
    return tn_error(TN_ERR_ARG, "--ref-model %s: its shape (V, C, L, heads, kv heads, head dim) differs from --model %s",
                    o->ref_model, o->model);
  TN_TRY(tn_tokenizer_load(o->tokenizer ? o->tokenizer : o->model, &t->tok));
  if (o->chat_template) TN_TRY(tn_tokenizer_set_chat_template(t->tok, o->chat_template));
  tn_pref_data_opts dopts = {.max_prompt_len = o->max_prompt_length, .max_response_len = o->max_response_length,
                             .chat = o->chat, .field_map = o->field_map};
  TN_TRY(tn_chat_format_parse(o->chat_format, &dopts.format));
  TN_TRY(tn_pref_load(&t->train, o->data, t->tok, &dopts));
  if (o->eval_data) TN_TRY(tn_pref_load(&t->eval, o->eval_data, t->tok, &dopts));
  else TN_TRY(tn_pref_split(&t->train, &t->eval, o->eval_split, o->seed));
  const tn_pref_set *sets[2] = {&t->train, &t->eval};
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < sets[k]->n; i++) {
      const tn_pref_pair *p = &sets[k]->p[i];
      for (int j = 0; j < p->np + p->nc + p->nr; j++)
        if (p->ids[j] >= t->m->cfg.V)
          return tn_error(TN_ERR_FORMAT, "%s: token id %d is outside the model's vocabulary (%d): tokenizer and model disagree",
                          k ? (o->eval_data ? o->eval_data : o->data) : o->data, p->ids[j], t->m->cfg.V);
    }
  if (t->train.n_prompt_truncated || t->train.n_response_truncated)
    tn_info("%d prompts cut to their last %d tokens, %d pairs with a response cut to %d tokens",
            t->train.n_prompt_truncated, o->max_prompt_length, t->train.n_response_truncated, o->max_response_length);
  if (t->train.n_dropped) tn_warn("%d pairs had an empty response and were dropped", t->train.n_dropped);
  t->S = 2 * o->batch_size;
  t->T = t->train.max_len > t->eval.max_len ? t->train.max_len : t->eval.max_len;
  if ((int64_t)t->S * t->T > INT32_MAX)
    return tn_error(TN_ERR_ARG, "batch_size %d x the longest pair (%d tokens) is too many rows for one forward", o->batch_size, t->T);
  t->Nmax = t->S * t->T;
  const int V = t->m->cfg.V;
  t->share = tn_train_prefix_sharing();
  TN_TRY(tn_state_create(&t->st, t->m, t->S + (t->share ? o->batch_size : 0), t->T, t->Nmax, true));
  TN_TRY(tn_bwd_create(&t->bw, t->m, t->st));
  o->steps = (int)tn_train_opts_total_steps(&o->train, t->train.n);
  tn_tparams_opts po = tn_train_opts_tparams(&o->train, o->steps);
  TN_TRY(tn_tparams_init(&t->tp, t->m, &po));
  t->logits = tn_alloc(sizeof(float) * (size_t)t->Nmax * V);
  t->dlogits = t->m->cfg.final_softcap > 0 ? tn_alloc(sizeof(float) * (size_t)t->Nmax * V) : t->logits;
  t->lp = tn_alloc(sizeof(float) * t->Nmax);
  t->dlp = tn_alloc(sizeof(float) * t->Nmax);
  t->tok_r = malloc(sizeof(int) * t->Nmax);
  t->pos_r = malloc(sizeof(int) * t->Nmax);
  t->seq_r = malloc(sizeof(int) * t->Nmax);
  t->tgt_r = malloc(sizeof(int) * t->Nmax);
  t->sums = malloc(sizeof(double) * t->S);
  float **pp[] = {&t->pc, &t->pr, &t->rc, &t->rr, &t->dc, &t->dr};
  bool ok = true;
  for (int i = 0; i < 6; i++) ok &= (*pp[i] = calloc(o->batch_size, sizeof(float))) != NULL;
  t->P = calloc(o->batch_size, sizeof *t->P);
  t->idx = calloc(o->batch_size, sizeof(int));
  t->lens = calloc(o->batch_size, sizeof(int));
  if (!ok || !t->P || !t->idx || !t->lens || !t->logits || !t->dlogits || !t->lp || !t->dlp || !t->tok_r || !t->pos_r ||
      !t->seq_r || !t->tgt_r || !t->sums)
    return tn_error(TN_ERR_NOMEM, "out of memory for %d rows x %d logits", t->Nmax, V);
  if (!t->orpo && o->precompute_ref) {
    TN_TRY(precompute(t));
    tn_model_free(t->ref); /* a --ref-model is needed no longer */
    t->ref = NULL;
  }
  tn_run_describe(r, &o->train, t->orpo ? "orpo" : "dpo", t->m, &t->tp, t->train.n, t->eval.n > 0,
                  (long)o->batch_size * o->grad_accum, o->batch_size);
  t->models[0] = (tn_manifest_file){"model", o->model};
  t->models[1] = (tn_manifest_file){"reference", o->ref_model};
  t->data[0] = (tn_manifest_file){"train", o->data};
  t->data[1] = (tn_manifest_file){"eval", o->eval_data};
  *mi = (tn_manifest_info){.command = r->label, .models = t->models, .nmodels = o->ref_model ? 2 : 1, .data = t->data,
                           .ndata = o->eval_data ? 2 : 1};
  printf("%s: %d train / %d eval pairs, %s, reference %s, %ld steps of %d x %d pairs, %zu trainable parameters\n",
         r->label, t->train.n, t->eval.n, t->tp.lora ? "LoRA" : "full fine-tuning",
         t->orpo ? "none" : o->precompute_ref ? "precomputed" : o->ref_model ? o->ref_model : t->tp.lora ? "base (adapter off)" : "frozen copy",
         (long)o->steps, o->batch_size, o->grad_accum, t->tp.opt.total);
  fflush(stdout);
  return TN_OK;
}

static void teardown(void *ctx) {
  dpo_t *t = ctx;
  free(t->P); free(t->idx); free(t->lens);
  if (t->dlogits != t->logits) tn_free(t->dlogits);
  tn_free(t->logits);
  tn_free(t->lp);
  tn_free(t->dlp);
  free(t->tok_r); free(t->pos_r); free(t->seq_r); free(t->tgt_r); free(t->sums);
  free(t->pc); free(t->pr); free(t->rc); free(t->rr); free(t->dc); free(t->dr);
  free(t->pre_c); free(t->pre_r);
  tn_tparams_free(&t->tp);
  tn_bwd_free(&t->bw);
  tn_state_free(t->st);
  /* eval pairs split off the training set share nothing: each set frees its own */
  tn_pref_free(&t->train);
  tn_pref_free(&t->eval);
  tn_tokenizer_free(t->tok);
  tn_model_free(t->ref);
  tn_model_free(t->m);
}

static void add_stats(tn_metrics *mt, const char *pre, const dpo_acc *a, bool orpo) {
  char k[64];
#define ADD(name, v) (snprintf(k, sizeof k, "%s%s", pre, name), tn_metrics_add(mt, k, v))
  ADD("loss", a->loss);
  ADD("rewards/chosen", a->rch);
  ADD("rewards/rejected", a->rrj);
  ADD("rewards/margins", a->margin);
  ADD("rewards/accuracies", a->acc);
  ADD("logps/chosen", a->lpc);
  ADD("logps/rejected", a->lpr);
  if (orpo) {
    ADD("nll_loss", a->nll);
    ADD("log_odds_ratio", a->lor);
    ADD("log_odds_chosen", a->loc);
  }
#undef ADD
}

/* one step: reference and policy log-probs, the loss head and the backward pass of each
 * micro-batch; the loss is the mean over the step's pairs */
static tn_status step(void *ctx, tn_run *r, long step, tn_step_out *out) {
  dpo_t *t = ctx;
  const tn_dpo_opts *o = &t->o;
  const int B = o->batch_size, n_step = (int)r->per_step;
  t->fwd_counter = (uint64_t)step * o->grad_accum; /* LoRA dropout masks: a function of the step */
  long ntok_c = 0; /* ORPO's NLL is a mean over every chosen token of the step */
  for (long pos = r->data_pos; pos < r->data_pos + n_step; pos++) ntok_c += t->train.p[tn_stream_at(&r->stream, pos)].nc;
  tn_tparams_zero_grad(&t->tp);
  dpo_acc *a = &t->a;
  memset(a, 0, sizeof *a);
  double ntok = 0;
  for (int mb = 0; mb < o->grad_accum; mb++) {
    for (int b = 0; b < B; b++) { t->idx[b] = tn_run_next(r); t->P[b] = &t->train.p[t->idx[b]]; }
    fill_rows(t, t->P, B);
    ntok += t->N;
    if (!t->orpo) TN_TRY(ref_logps(t, t->P, B, t->idx));
    TN_TRY(pair_logps(t, t->m, t->P, B, t->pc, t->pr, true));
    TN_TRY(head(t, t->P, B, n_step, ntok_c, a));
    TN_TRY(backward(t, t->P));
  }
  a->ntok = ntok;
  TN_TRY(tn_run_sum(r, (double *)a, (int)(sizeof *a / sizeof(double)))); /* several ranks: the global step's */
  out->loss = a->loss;
  out->tokens = a->ntok;
  snprintf(out->extra, sizeof out->extra, "acc %.2f margin %.3g", a->acc, a->margin);
  return TN_OK;
}

static tn_status eval(void *ctx, tn_run *r, long step) {
  (void)r; (void)step;
  return evaluate(ctx, &((dpo_t *)ctx)->ev);
}

static void metrics(void *ctx, tn_run *r, const tn_step_info *si, tn_metrics *mt) {
  dpo_t *t = ctx;
  (void)r;
  add_stats(mt, "", &t->a, t->orpo);
  if (si->evaluated) add_stats(mt, "eval/", &t->ev, t->orpo);
  tn_metrics_add(mt, "learning_rate", si->lr);
  tn_metrics_add(mt, "grad_norm", si->gnorm);
  tn_metrics_add(mt, "tokens_per_s", si->tokens / si->dt);
  tn_metrics_add(mt, "tokens", si->tokens);
}

tn_status tn_dpo_run(const tn_dpo_opts *opts, const tn_run_info *ri) {
  dpo_t t = {0};
  t.o = *opts;
  tn_trainer tr = {.ctx = &t, .setup = setup, .step = step, .eval = eval, .metrics = metrics, .teardown = teardown};
  return tn_train_drive(&tr, &t.o.train, ri);
}
