/* distill.c - knowledge distillation: `tunic distill`. A frozen teacher and a
 * student that share a vocabulary (checked: same V and, when both folders have a
 * tokenizer, the same token strings) run over the same rows (SFT-format data, no
 * padding computed); the loss head is tn_kd_loss (docs/losses.md) over the rows
 * that predict a completion token: alpha * T^2 KL(teacher || student) (or GKD's
 * generalised JSD with --jsd-beta, optional teacher top-k support) + (1 - alpha)
 * CE on the labels. Options on top:
 *  - on-policy (--lmbda): that fraction of steps (a seeded draw per step, so resume
 *    is exact) replaces each example's completion by a sample of the student
 *    (tn_generate); those steps have no CE term (the labels would be the student's
 *    own tokens), as TRL's GKD trains on-policy samples with the divergence only;
 *  - features (--feature-layers S:T,...): hidden state S of the student, through a
 *    learned linear projection P (C_teacher, C_student), matches hidden state T of
 *    the teacher: gamma * mean over pairs of mean over rows and teacher dims of
 *    (P h_s - h_t)^2 (Tunix's feature-projection strategy); the gradient enters the
 *    student's backward pass through tn_bwd.dhidden, P trains with the student.
 * The loss of a step is a mean over every kept row of all its micro-batches.
 * Eval reports the student's and the teacher's CE on the eval labels and the
 * distillation loss. Run directory, checkpoints, resume, NaN stop: the driver
 * (train/run.h), which calls this file's hooks.
 * Not for: the loss formulas (loss_pref.c), sampling (src/generate). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"
#include "generate/generate.h"
#include "train/distill.h"
#include "train/losses.h"
#include "train/run.h"

void tn_distill_opts_default(tn_distill_opts *o) {
  memset(o, 0, sizeof *o);
  tn_train_opts_default(&o->train);
  o->teacher_dtype = "f32";
  o->feature_weight = 1.0f;
  o->temperature = 1.0f;
  o->alpha = 0.5f;
  o->jsd_beta = -1.0f;
  o->gen_temperature = 1.0f;
  o->max_new_tokens = 64;
}

#define MAX_FEAT 16
typedef struct { double student_ce, teacher_ce, kd, feat; } kd_eval;

typedef struct {
  tn_distill_opts o;
  tn_kd_cfg kc;
  tn_model *m, *tch;     /* student (trained), teacher (frozen) */
  tn_tokenizer *tok;
  tn_dataset train, eval;
  tn_state *st, *tst;    /* student (training), teacher (inference; keeps hidden states with features) */
  tn_bwd bw;
  tn_tparams tp;
  uint64_t fwd_counter;
  int Nmax;
  float *slogits, *tlogits, *dlogits, *mask, *lrow; // (Nmax, V) x3, (Nmax) x2
  int *tok_r, *pos_r, *seq_r, *tgt_r;            // (Nmax)
  int N, M;              /* rows, kept rows (predicting a completion token) */
  /* features */
  int nf, ks[MAX_FEAT], kt[MAX_FEAT];
  tn_mat proj[MAX_FEAT];  /* (C_t, C_s) each, f32 in pflat */
  float *pflat, *pgrad;  /* (nf * C_t * C_s) */
  tn_param prow[MAX_FEAT];
  char pname[MAX_FEAT][48];
  tn_trainable all;      /* student rows + projection rows (when nf > 0) */
  float **dhid;          /* (L_s + 1) pointers, non-NULL for matched student states */
  float *dhid_buf;       /* (nf, Nmax, C_s) */
  float *xs, *xt, *ys, *dxs; // (Nmax, C_s), (Nmax, C_t), (Nmax, C_t), (Nmax, C_s)
  int *kept;             // (Nmax) indices of kept rows
  /* the step's examples (on-policy steps own generated copies) */
  tn_example *gen;       // (batch * accum)
  const tn_example **ex; // (batch * accum)
  tn_manifest_file models[2], data[2];
  /* the step's figures for its metrics, and the last eval's */
  double kd, feat, t_gen;
  long m_step;
  bool onp;
  kd_eval ev;
} kd_t;

static void rows_fill(kd_t *t, const tn_example *const *ex, int n) {
  int N = 0, M = 0;
  for (int b = 0; b < n; b++)
    for (int k = 0; k < ex[b]->n; k++, N++) {
      t->tok_r[N] = ex[b]->ids[k];
      t->pos_r[N] = k;
      t->seq_r[N] = b;
      t->tgt_r[N] = k + 1 < ex[b]->n && ex[b]->mask[k + 1] ? ex[b]->ids[k + 1] : -1;
      t->mask[N] = t->tgt_r[N] >= 0;
      M += t->tgt_r[N] >= 0;
    }
  t->N = N;
  t->M = M;
}

/* hidden state k (0 = embeddings .. L = last layer's output) of a forward's rows */
static const float *hidden(const tn_model *m, const tn_state *st, int k) {
  return k < m->cfg.L ? st->acts[k].x_in : st->x_out;
}

/* teacher and student forward over the filled rows. The teacher's LM head runs only
 * on the kept rows (nothing reads the others: tn_kd_loss and the CE skip them); their
 * logits are moved to their rows' places in tlogits (last first: kept[r] >= r). */
static tn_status forward_both(kd_t *t, bool train) {
  const size_t V = (size_t)t->m->cfg.V;
  int M = 0;
  for (int i = 0; i < t->N; i++)
    if (t->tgt_r[i] >= 0) t->kept[M++] = i;
  if (M > 0) TN_TRY(tn_forward(t->tch, t->tst, t->N, t->tok_r, t->pos_r, t->seq_r, t->tlogits, t->kept, M));
  for (int r = M - 1; r >= 0; r--)
    if (t->kept[r] != r) memcpy(t->tlogits + (size_t)t->kept[r] * V, t->tlogits + (size_t)r * V, sizeof(float) * V);
  if (t->tp.lora) tn_lora_train_mode(t->tp.lora, train, train ? ++t->fwd_counter : 0);
  return tn_forward(t->m, t->st, t->N, t->tok_r, t->pos_r, t->seq_r, t->slogits, NULL, t->N);
}

/* feature loss of the filled rows (scaled by 1 / m_step kept rows); with grads, the
 * projections' gradients accumulate and t->dhid receives d loss / d student states */
static double feature_loss(kd_t *t, long m_step, bool grads) {
  const int Cs = t->m->cfg.C, Ct = t->tch->cfg.C, N = t->N;
  int M = 0;
  for (int i = 0; i < N; i++)
    if (t->tgt_r[i] >= 0) t->kept[M++] = i;
  if (grads) memset(t->dhid_buf, 0, sizeof(float) * (size_t)t->nf * t->Nmax * Cs);
  double total = 0;
  const double scale = (double)t->o.feature_weight / ((double)t->nf * m_step * Ct);
  for (int j = 0; j < t->nf && M > 0; j++) {
    const float *hs = hidden(t->m, t->st, t->ks[j]), *ht = hidden(t->tch, t->tst, t->kt[j]);
    for (int r = 0; r < M; r++) {
      memcpy(t->xs + (size_t)r * Cs, hs + (size_t)t->kept[r] * Cs, sizeof(float) * Cs);
      memcpy(t->xt + (size_t)r * Ct, ht + (size_t)t->kept[r] * Ct, sizeof(float) * Ct);
    }
    tn_linear_forward(t->ys, t->xs, &t->proj[j], NULL, M); /* (M, C_t) */
    double s = 0;
    for (size_t e = 0; e < (size_t)M * Ct; e++) {
      const float d = t->ys[e] - t->xt[e];
      s += (double)d * d;
      t->ys[e] = (float)(2.0 * scale * d); /* becomes d loss / d (P h_s) */
    }
    total += scale * s;
    if (!grads) continue;
    memset(t->dxs, 0, sizeof(float) * (size_t)M * Cs);
    tn_linear_backward(t->dxs, t->prow[j].grad, NULL, t->ys, t->xs, &t->proj[j], M);
    float *dh = t->dhid[t->ks[j]];
    for (int r = 0; r < M; r++) {
      float *dst = dh + (size_t)t->kept[r] * Cs;
      const float *src = t->dxs + (size_t)r * Cs;
      for (int c = 0; c < Cs; c++) dst[c] += src[c];
    }
  }
  return total;
}

/* one micro-batch: forwards, losses (kd over kept rows with weight m/m_step), backward */
static tn_status micro(kd_t *t, long m_step, bool ce, double *kd_sum, double *feat_sum) {
  const int V = t->m->cfg.V;
  TN_TRY(forward_both(t, true));
  double kd = 0;
  TN_TRY(tn_kd_loss(&t->kc, t->N, V, t->slogits, t->tlogits, ce ? t->tgt_r : NULL, t->mask, t->dlogits, &kd));
  const float w = (float)((double)t->M / m_step);
  const size_t nv = (size_t)t->N * V;
  for (size_t i = 0; i < nv; i++) t->dlogits[i] *= w;
  *kd_sum += kd * w;
  t->bw.dhidden = NULL;
  if (t->nf) {
    *feat_sum += feature_loss(t, m_step, true);
    t->bw.dhidden = (const float *const *)t->dhid;
  }
  tn_status s = tn_backward(t->m, t->st, &t->bw, tn_tparams_grads(&t->tp), t->dlogits, t->slogits, t->N, t->tok_r,
                            t->pos_r, t->seq_r);
  t->bw.dhidden = NULL;
  return s;
}

static tn_status evaluate(kd_t *t, kd_eval *ev) {
  const int V = t->m->cfg.V;
  memset(ev, 0, sizeof *ev);
  long M = 0;
  for (int i = 0; i < t->eval.n; i++) M += t->eval.ex[i].n_targets;
  const tn_example **ex = t->ex; /* the step's examples are used no longer */
  double sce = 0, tce = 0;
  for (int i = 0; i < t->eval.n;) {
    int n = 0;
    while (i < t->eval.n && n < t->o.batch_size) ex[n++] = &t->eval.ex[i++];
    rows_fill(t, ex, n);
    TN_TRY(forward_both(t, false));
    double kd = 0;
    TN_TRY(tn_kd_loss(&t->kc, t->N, V, t->slogits, t->tlogits, t->tgt_r, t->mask, t->dlogits, &kd));
    ev->kd += kd * t->M / M;
    if (t->nf) ev->feat += feature_loss(t, M, false);
    tn_xent_forward(t->lrow, t->slogits, t->tgt_r, t->N, V);
    for (int r = 0; r < t->N; r++) sce += t->lrow[r];
    tn_xent_forward(t->lrow, t->tlogits, t->tgt_r, t->N, V);
    for (int r = 0; r < t->N; r++) tce += t->lrow[r];
  }
  ev->student_ce = sce / M;
  ev->teacher_ce = tce / M;
  return TN_OK;
}

/* on-policy: each example's completion replaced by a student sample (prompt = the
 * tokens before its first target) into t->gen[0..n) */
static tn_status on_policy(kd_t *t, long step, int n) {
  const int **prompts = malloc(sizeof(int *) * n);
  int *plens = malloc(sizeof(int) * n);
  tn_gen_result *res = calloc(n, sizeof *res);
  if (!prompts || !plens || !res) {
    free(prompts);
    free(plens);
    free(res);
    return tn_error(TN_ERR_NOMEM, "distill: out of memory for %d samples", n);
  }
  for (int i = 0; i < n; i++) {
    const tn_example *e = t->ex[i];
    int p = 1;
    while (p < e->n && !e->mask[p]) p++;
    prompts[i] = (const int *)e->ids;
    plens[i] = p;
  }
  tn_gen_opts go;
  tn_gen_opts_default(&go);
  go.max_new_tokens = t->o.max_new_tokens;
  go.temperature = t->o.gen_temperature;
  go.seed = t->o.seed * 7919ULL + (uint64_t)step;
  if (t->tp.lora) tn_lora_train_mode(t->tp.lora, false, 0);
  tn_status s = TN_OK;
  const tn_comm *c = tn_train_comm();
  if (!c) s = tn_generate(t->m, (const int *const *)prompts, plens, n, &go, res);
  else /* several ranks: micro-batch j of rank k is the (j N + k)-th B of the global step; samples are
        * seeded by that place, so they are those of one process */
    for (int j = 0, B = t->o.batch_size; j * B < n && s == TN_OK; j++) {
      go.first_prompt = (j * c->size + c->rank) * B;
      s = tn_generate(t->m, (const int *const *)prompts + j * B, plens + j * B, B, &go, res + j * B);
    }
  for (int i = 0; i < n && s == TN_OK; i++) {
    tn_example *g = &t->gen[i];
    int L = plens[i] + res[i].n;
    if (L > t->o.max_seq_len) L = t->o.max_seq_len;
    int32_t *ni = realloc(g->ids, sizeof(int32_t) * L);
    if (ni) g->ids = ni;
    uint8_t *nm = ni ? realloc(g->mask, L) : NULL;
    if (nm) g->mask = nm;
    if (!ni || !nm) { s = tn_error(TN_ERR_NOMEM, "distill: out of memory for a sample"); break; }
    memcpy(g->ids, prompts[i], sizeof(int32_t) * plens[i]);
    memset(g->mask, 0, plens[i]);
    for (int k = plens[i]; k < L; k++) { g->ids[k] = res[i].ids[k - plens[i]]; g->mask[k] = 1; }
    g->n = L;
    g->n_targets = L - plens[i];
    t->ex[i] = g;
  }
  if (res) tn_gen_results_free(res, n);
  free(res);
  free(prompts);
  free(plens);
  return s;
}

static tn_status parse_features(kd_t *t) {
  const char *f = t->o.feature_layers;
  if (!f || !*f) return TN_OK;
  const char *p = f;
  while (*p) {
    char *e;
    long s = strtol(p, &e, 10);
    if (e == p || *e != ':') return tn_error(TN_ERR_ARG, "--feature-layers '%s': expected S:T pairs such as 2:4,4:8", f);
    p = e + 1;
    long tt = strtol(p, &e, 10);
    if (e == p || (*e && *e != ',')) return tn_error(TN_ERR_ARG, "--feature-layers '%s': expected S:T pairs such as 2:4,4:8", f);
    if (t->nf == MAX_FEAT) return tn_error(TN_ERR_ARG, "--feature-layers: at most %d pairs", MAX_FEAT);
    if (s < 0 || s > t->m->cfg.L || tt < 0 || tt > t->tch->cfg.L)
      return tn_error(TN_ERR_ARG, "--feature-layers %ld:%ld: hidden states are 0..%d (student) and 0..%d (teacher)", s, tt,
                      t->m->cfg.L, t->tch->cfg.L);
    t->ks[t->nf] = (int)s;
    t->kt[t->nf++] = (int)tt;
    p = *e ? e + 1 : e;
  }
  return TN_OK;
}

/* the projections, their optimizer rows, and the state buffers of the feature loss */
static tn_status setup_features(kd_t *t, tn_run *run) {
  const int Cs = t->m->cfg.C, Ct = t->tch->cfg.C, Ls = t->m->cfg.L;
  const size_t per = (size_t)Ct * Cs;
  t->pflat = tn_alloc(sizeof(float) * per * t->nf);
  t->pgrad = tn_alloc(sizeof(float) * per * t->nf);
  t->dhid_buf = tn_alloc(sizeof(float) * (size_t)t->nf * t->Nmax * Cs);
  t->xs = tn_alloc(sizeof(float) * (size_t)t->Nmax * Cs);
  t->dxs = tn_alloc(sizeof(float) * (size_t)t->Nmax * Cs);
  t->xt = tn_alloc(sizeof(float) * (size_t)t->Nmax * Ct);
  t->ys = tn_alloc(sizeof(float) * (size_t)t->Nmax * Ct);
  t->dhid = calloc(Ls + 1, sizeof(float *));
  if (!t->pflat || !t->pgrad || !t->dhid_buf || !t->xs || !t->dxs || !t->xt || !t->ys || !t->dhid)
    return tn_error(TN_ERR_NOMEM, "out of memory for the feature projections");
  memset(t->pgrad, 0, sizeof(float) * per * t->nf);
  /* torch nn.Linear's init: U(-1/sqrt(in), 1/sqrt(in)) */
  tn_rng r;
  tn_rng_seed(&r, t->o.seed ^ 0xfea7fea7ULL);
  const float bound = 1.0f / sqrtf((float)Cs);
  for (size_t i = 0; i < per * t->nf; i++) t->pflat[i] = (2.0f * tn_rng_uniform(&r) - 1.0f) * bound;
  for (int j = 0; j < t->nf; j++) {
    t->proj[j] = (tn_mat){.out = Ct, .in = Cs, .dtype = TN_F32, .w = t->pflat + per * j};
    snprintf(t->pname[j], sizeof t->pname[j], "distill.projection.%d.weight", j);
    t->prow[j] = (tn_param){.name = t->pname[j], .param = t->pflat + per * j, .grad = t->pgrad + per * j, .n = per, .decay = true};
    int k = t->ks[j]; /* pairs sharing a student state share its gradient buffer */
    if (!t->dhid[k]) t->dhid[k] = t->dhid_buf + (size_t)j * t->Nmax * Cs;
  }
  /* the whole trainable table: the student's rows then the projections; AdamW over all */
  t->all.n = t->tp.tr.n + t->nf;
  t->all.rows = malloc(sizeof(tn_param) * t->all.n);
  if (!t->all.rows) return tn_error(TN_ERR_NOMEM, "trainable table of %d rows", t->all.n);
  memcpy(t->all.rows, t->tp.tr.rows, sizeof(tn_param) * t->tp.tr.n);
  memcpy(t->all.rows + t->tp.tr.n, t->prow, sizeof(tn_param) * t->nf);
  t->all.grad = t->tp.tr.grad; /* the student's flat buffer; projections zeroed apart */
  t->all.ngrad = t->tp.tr.ngrad;
  tn_adamw_config ac = t->tp.opt.cfg;
  tn_adamw_free(&t->tp.opt);
  TN_TRY(tn_adamw_init(&t->tp.opt, t->all.rows, t->all.n, &ac));
  run->tr = &t->all;
  run->weights_file = "trainable.safetensors";
  return TN_OK;
}

static tn_status check_vocab(kd_t *t) {
  const tn_distill_opts *o = &t->o;
  if (t->tch->cfg.V != t->m->cfg.V)
    return tn_error(TN_ERR_ARG, "teacher %s has a vocabulary of %d, student %s of %d: distillation over logits needs the same vocabulary",
                    o->teacher, t->tch->cfg.V, o->model, t->m->cfg.V);
  char *p = tn_path_join(o->teacher, "tokenizer.json");
  if (!p) return tn_error(TN_ERR_NOMEM, "out of memory");
  bool has = tn_file_exists(p);
  free(p);
  if (!has || o->tokenizer) return TN_OK;
  tn_tokenizer *tt;
  TN_TRY(tn_tokenizer_load(o->teacher, &tt));
  const int n = tn_tokenizer_vocab_size(tt);
  tn_status s = TN_OK;
  if (n != tn_tokenizer_vocab_size(t->tok))
    s = tn_error(TN_ERR_ARG, "teacher %s and student %s tokenizers differ (%d vs %d tokens): they must share a tokenizer",
                 o->teacher, o->model, n, tn_tokenizer_vocab_size(t->tok));
  for (int i = 0; i < n && s == TN_OK; i++) {
    size_t la = 0, lb = 0;
    const char *a = tn_tokenizer_id_to_token(tt, i, &la), *b = tn_tokenizer_id_to_token(t->tok, i, &lb);
    if ((a == NULL) != (b == NULL) || la != lb || (a && memcmp(a, b, la) != 0))
      s = tn_error(TN_ERR_ARG, "teacher %s and student %s tokenizers differ at token id %d: they must share a tokenizer",
                   o->teacher, o->model, i);
  }
  tn_tokenizer_free(tt);
  return s;
}

static tn_status setup(void *ctx, tn_run *r, tn_manifest_info *mi) {
  kd_t *t = ctx;
  tn_distill_opts *o = &t->o;
  if (!o->teacher || !o->model || !o->data || !o->out)
    return tn_error(TN_ERR_ARG, "--teacher, --student, --data and --out are required");
  TN_TRY(tn_train_opts_precision(&o->train));
  if (o->batch_size <= 0 || o->grad_accum <= 0 || o->max_seq_len <= 1 ||
      (int64_t)o->batch_size * o->grad_accum * o->max_seq_len > INT32_MAX)
    return tn_error(TN_ERR_ARG, "batch_size (>= 1), grad_accum (>= 1) and max_seq_len (>= 2) must be valid, "
                                "their product below 2^31");
  if (!(o->lmbda >= 0 && o->lmbda <= 1)) return tn_error(TN_ERR_ARG, "lmbda = %g must be in [0, 1]", o->lmbda);
  t->kc = (tn_kd_cfg){.alpha = o->alpha, .T = o->temperature, .top_k = o->top_k, .jsd_beta = o->jsd_beta};
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  TN_TRY(tn_parse_base_dtype(o->teacher_dtype, &lo.base_dtype));
  TN_TRY(tn_model_load_opts(&t->tch, o->teacher, &lo));
  TN_TRY(tn_tparams_load_model(&t->m, &o->train)); /* the student */
  TN_TRY(tn_tokenizer_load(o->tokenizer ? o->tokenizer : o->model, &t->tok));
  if (o->chat_template) TN_TRY(tn_tokenizer_set_chat_template(t->tok, o->chat_template));
  TN_TRY(check_vocab(t));
  TN_TRY(parse_features(t));
  TN_TRY(tn_train_opts_load_sft(&o->train, t->tok, t->m->cfg.V, &t->train, &t->eval));
  const int B = o->batch_size, V = t->m->cfg.V;
  t->Nmax = B * o->max_seq_len;
  TN_TRY(tn_state_create(&t->st, t->m, B, o->max_seq_len, t->Nmax, true));
  tn_state_opts so = {.recompute = true}; /* with features: every layer's input kept, nothing else */
  TN_TRY(tn_state_create_opts(&t->tst, t->tch, B, o->max_seq_len, t->Nmax, t->nf > 0, &so));
  TN_TRY(tn_bwd_create(&t->bw, t->m, t->st));
  const long per_step = (long)B * o->grad_accum;
  o->steps = (int)tn_train_opts_total_steps(&o->train, t->train.n);
  tn_tparams_opts po = tn_train_opts_tparams(&o->train, o->steps);
  TN_TRY(tn_tparams_init(&t->tp, t->m, &po));
  const size_t nv = (size_t)t->Nmax * V;
  t->slogits = tn_alloc(sizeof(float) * nv);
  t->tlogits = tn_alloc(sizeof(float) * nv);
  t->dlogits = tn_alloc(sizeof(float) * nv);
  t->mask = tn_alloc(sizeof(float) * t->Nmax);
  t->lrow = tn_alloc(sizeof(float) * t->Nmax);
  t->tok_r = malloc(sizeof(int) * t->Nmax);
  t->pos_r = malloc(sizeof(int) * t->Nmax);
  t->seq_r = malloc(sizeof(int) * t->Nmax);
  t->tgt_r = malloc(sizeof(int) * t->Nmax);
  t->kept = malloc(sizeof(int) * t->Nmax);
  t->gen = calloc(per_step, sizeof(tn_example));
  t->ex = calloc(per_step, sizeof(tn_example *));
  if (!t->slogits || !t->tlogits || !t->dlogits || !t->mask || !t->lrow || !t->tok_r || !t->pos_r || !t->seq_r ||
      !t->tgt_r || !t->kept || !t->gen || !t->ex)
    return tn_error(TN_ERR_NOMEM, "out of memory for %d rows x %d logits (x3)", t->Nmax, V);
  tn_run_describe(r, &o->train, "distill", t->m, &t->tp, t->train.n, t->eval.n > 0, per_step, B);
  if (t->nf) TN_TRY(setup_features(t, r));
  t->models[0] = (tn_manifest_file){"student", o->model};
  t->models[1] = (tn_manifest_file){"teacher", o->teacher};
  t->data[0] = (tn_manifest_file){"train", o->data};
  t->data[1] = (tn_manifest_file){"eval", o->eval_data};
  *mi = (tn_manifest_info){.command = "distill", .models = t->models, .nmodels = 2, .data = t->data,
                           .ndata = o->eval_data ? 2 : 1};
  printf("distill: %d train / %d eval examples, %s student, teacher %s, %ld steps of %d x %d examples, "
         "%d feature pair(s), %zu trainable parameters\n", t->train.n, t->eval.n, t->tp.lora ? "LoRA" : "full",
         o->teacher_dtype, (long)o->steps, o->batch_size, o->grad_accum, t->nf, t->tp.opt.total);
  fflush(stdout);
  return TN_OK;
}

static void teardown(void *ctx) {
  kd_t *t = ctx;
  tn_free(t->slogits); tn_free(t->tlogits); tn_free(t->dlogits); tn_free(t->mask); tn_free(t->lrow);
  free(t->tok_r); free(t->pos_r); free(t->seq_r); free(t->tgt_r);
  const long per_step = (long)t->o.batch_size * t->o.grad_accum;
  for (long i = 0; t->gen && i < per_step; i++) { free(t->gen[i].ids); free(t->gen[i].mask); }
  free(t->gen);
  free(t->ex);
  tn_free(t->pflat); tn_free(t->pgrad); tn_free(t->dhid_buf);
  tn_free(t->xs); tn_free(t->dxs); tn_free(t->xt); tn_free(t->ys);
  free(t->kept); free(t->dhid); free(t->all.rows);
  tn_tparams_free(&t->tp);
  tn_bwd_free(&t->bw);
  tn_state_free(t->st);
  tn_state_free(t->tst);
  tn_dataset_free(&t->train);
  tn_dataset_free(&t->eval);
  tn_tokenizer_free(t->tok);
  tn_model_free(t->tch);
  tn_model_free(t->m);
}

static tn_status save_projections(void *ctx, tn_run *r) {
  kd_t *t = ctx;
  (void)r;
  if (!t->nf) return TN_OK;
  tn_st_entry e[MAX_FEAT];
  for (int j = 0; j < t->nf; j++)
    e[j] = (tn_st_entry){.name = t->prow[j].name, .dtype = TN_ST_F32, .ndim = 2,
                         .shape = {t->tch->cfg.C, t->m->cfg.C}, .data = t->prow[j].param};
  char meta[512], *p = tn_path_join(t->o.out, "projections.safetensors");
  snprintf(meta, sizeof meta, "{\"feature_layers\":\"%s\"}", t->o.feature_layers);
  tn_status s = tn_st_write(p, e, t->nf, meta);
  free(p);
  return s;
}

/* one step: its examples (on-policy: the student's samples), the loss over every kept
 * row of its micro-batches, the student's (and projections') gradients */
static tn_status step(void *ctx, tn_run *r, long step, tn_step_out *out) {
  kd_t *t = ctx;
  const tn_distill_opts *o = &t->o;
  const int B = o->batch_size, n_step = B * o->grad_accum; /* this rank's examples (r->per_step: all ranks') */
  t->fwd_counter = (uint64_t)step * o->grad_accum; /* LoRA dropout masks: a function of the step */
  for (int i = 0; i < n_step; i++) t->ex[i] = &t->train.ex[tn_run_next(r)];
  tn_rng rng;
  tn_rng_seed(&rng, o->seed * 1000003ULL + (uint64_t)step * 0x9E3779B97F4A7C15ULL);
  t->onp = o->lmbda > 0 && tn_rng_uniform(&rng) < o->lmbda;
  t->t_gen = 0;
  if (t->onp) {
    const double g0 = tn_now();
    TN_TRY(on_policy(t, step, n_step));
    t->t_gen = tn_now() - g0;
  }
  long m_step = 0;
  for (int i = 0; i < n_step; i++) m_step += t->ex[i]->n_targets;
  if (r->world > 1) { /* the loss is a mean over the kept rows of all ranks (after on-policy sampling) */
    double m = (double)m_step;
    TN_TRY(tn_run_sum(r, &m, 1));
    m_step = (long)m;
  }
  tn_tparams_zero_grad(&t->tp);
  if (t->nf) memset(t->pgrad, 0, sizeof(float) * (size_t)t->nf * t->tch->cfg.C * t->m->cfg.C);
  double kd = 0, feat = 0, ntok = 0;
  for (int a = 0; a < o->grad_accum && m_step > 0; a++) {
    rows_fill(t, t->ex + a * B, B);
    ntok += t->N;
    TN_TRY(micro(t, m_step, !t->onp, &kd, &feat));
  }
  double sum[3] = {kd, feat, ntok}; /* several ranks: the global step's */
  TN_TRY(tn_run_sum(r, sum, 3));
  t->kd = sum[0];
  t->feat = sum[1];
  t->m_step = m_step;
  out->loss = sum[0] + sum[1];
  out->tokens = sum[2];
  if (t->onp) snprintf(out->extra, sizeof out->extra, "on-policy");
  return TN_OK;
}

static tn_status eval(void *ctx, tn_run *r, long step) {
  (void)r; (void)step;
  return evaluate(ctx, &((kd_t *)ctx)->ev);
}

static void metrics(void *ctx, tn_run *r, const tn_step_info *si, tn_metrics *mt) {
  kd_t *t = ctx;
  const kd_eval *ev = &t->ev;
  (void)r;
  tn_metrics_add(mt, "loss", si->loss);
  tn_metrics_add(mt, "distill_loss", t->kd);
  if (t->nf) tn_metrics_add(mt, "feature_loss", t->feat);
  tn_metrics_add(mt, "on_policy", t->onp);
  if (si->evaluated) {
    tn_metrics_add(mt, "eval/student_loss", ev->student_ce);
    tn_metrics_add(mt, "eval/teacher_loss", ev->teacher_ce);
    tn_metrics_add(mt, "eval/student_teacher_ratio", ev->student_ce / ev->teacher_ce);
    tn_metrics_add(mt, "eval/distill_loss", ev->kd);
    if (t->nf) tn_metrics_add(mt, "eval/feature_loss", ev->feat);
  }
  tn_metrics_add(mt, "learning_rate", si->lr);
  tn_metrics_add(mt, "grad_norm", si->gnorm);
  tn_metrics_add(mt, "tokens_per_s", si->tokens / (si->dt - t->t_gen));
  if (t->onp) tn_metrics_add(mt, "generate_s", t->t_gen);
  tn_metrics_add(mt, "target_tokens", (double)t->m_step);
}

static tn_status after(void *ctx, tn_run *r, const tn_step_info *si) {
  const kd_t *t = ctx;
  if (!si->evaluated) return TN_OK;
  tn_progress_clear(r->prog);
  printf("distill step %ld: eval loss student %.4f teacher %.4f (ratio %.3f)\n", si->step + 1, t->ev.student_ce,
         t->ev.teacher_ce, t->ev.student_ce / t->ev.teacher_ce);
  fflush(stdout);
  return TN_OK;
}

tn_status tn_distill_run(const tn_distill_opts *opts, const tn_run_info *ri) {
  kd_t t = {0};
  t.o = *opts;
  tn_trainer tr = {.ctx = &t, .setup = setup, .step = step, .eval = eval, .metrics = metrics, .after = after,
                   .finish = save_projections, .teardown = teardown};
  return tn_train_drive(&tr, &t.o.train, ri);
}
