/* generate.c - the sampler and the batched generation loop (see generate.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "generate/generate.h"

void tn_gen_opts_default(tn_gen_opts *o) {
  memset(o, 0, sizeof *o);
  o->max_new_tokens = 64;
  o->top_p = 1.0f;
  o->repetition_penalty = 1.0f;
  o->n = 1;
  o->prefill_chunk = 512;
}

tn_status tn_gen_opts_check(const tn_gen_opts *o, const char *who) {
  if (!(o->temperature >= 0 && isfinite(o->temperature)) || !(o->top_p > 0 && o->top_p <= 1) || o->top_k < 0 ||
      !(o->min_p >= 0 && o->min_p <= 1) || !(o->repetition_penalty > 0 && isfinite(o->repetition_penalty)))
    return tn_error(TN_ERR_ARG, "%s: invalid sampling options (temperature %g, top_p %g, top_k %d, min_p %g, "
                    "repetition_penalty %g): need a finite temperature >= 0, top_p in (0, 1], top_k >= 0, min_p in "
                    "[0, 1] and a finite repetition_penalty > 0", who, o->temperature, o->top_p, o->top_k, o->min_p,
                    o->repetition_penalty);
  if (!(o->frequency_penalty >= -2 && o->frequency_penalty <= 2) || !(o->presence_penalty >= -2 && o->presence_penalty <= 2))
    return tn_error(TN_ERR_ARG, "%s: frequency_penalty %g and presence_penalty %g must be in [-2, 2]", who,
                    o->frequency_penalty, o->presence_penalty);
  return TN_OK;
}

typedef struct { float p; int i; } cand;
static int cand_desc(const void *a, const void *b) {
  float x = ((const cand *)a)->p, y = ((const cand *)b)->p;
  if (x != y) return x < y ? 1 : -1;
  return ((const cand *)a)->i - ((const cand *)b)->i;
}

/* tn_sample_token's per-thread buffers (rows are sampled in parallel) */
static _Thread_local float *ebuf;
static _Thread_local int ecap;
static _Thread_local cand *cbuf;
static _Thread_local int ccap;
static _Thread_local int *cntbuf; /* (V) zeros between calls: the penalties' token counts */
static _Thread_local int cntcap;

/* Free this thread's sampling buffers (a thread that samples and then exits, e.g. a server's
 * scheduler and its OpenMP team, calls it before it ends). */
void tn_sample_thread_release(void) {
  free(ebuf);
  free(cbuf);
  free(cntbuf);
  ebuf = NULL, cbuf = NULL, cntbuf = NULL;
  ecap = ccap = cntcap = 0;
}

/* OpenAI's frequency and presence penalties over the generated tokens gen (n):
 * logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty */
static void gen_penalties(float *logits, int V, const tn_gen_opts *o, const int *gen, int n) {
  if ((o->frequency_penalty == 0.0f && o->presence_penalty == 0.0f) || !gen || n <= 0) return;
  if (cntcap < V) {
    int *nb = calloc((size_t)V, sizeof(int));
    if (!nb) abort(); /* a few hundred KB at most */
    free(cntbuf);
    cntbuf = nb;
    cntcap = V;
  }
  for (int k = 0; k < n; k++)
    if (gen[k] >= 0 && gen[k] < V) cntbuf[gen[k]]++;
  for (int k = 0; k < n; k++) { /* each distinct token once; its count back to 0 */
    const int t = gen[k];
    if (t < 0 || t >= V || cntbuf[t] == 0) continue;
    logits[t] -= (float)cntbuf[t] * o->frequency_penalty + o->presence_penalty;
    cntbuf[t] = 0;
  }
}

void tn_sample_penalize(float *logits, int V, const tn_gen_opts *o, const int *seen, int n_seen, int n_gen) {
  if (o->repetition_penalty != 1.0f && seen) {
    /* each distinct seen token once (HF gathers the scores, then scatters) */
    for (int k = 0; k < n_seen; k++) {
      int t = seen[k];
      if (t < 0 || t >= V) continue;
      bool dup = false;
      for (int j = 0; j < k && !dup; j++) dup = seen[j] == t;
      if (dup) continue;
      logits[t] = logits[t] < 0 ? logits[t] * o->repetition_penalty : logits[t] / o->repetition_penalty;
    }
  }
  if (seen && n_gen > 0) gen_penalties(logits, V, o, seen + n_seen - (n_gen < n_seen ? n_gen : n_seen), n_gen < n_seen ? n_gen : n_seen);
}

int tn_sample_token(float *logits, int V, const tn_gen_opts *o, const int *seen, int n_seen, int n_gen, tn_rng *rng,
                    float *lp) {
  tn_sample_penalize(logits, V, o, seen, n_seen, n_gen);
  const bool greedy = o->temperature <= 0.0f;
  const float T = greedy ? 1.0f : o->temperature;
  if (T != 1.0f)
    for (int v = 0; v < V; v++) logits[v] /= T;
  /* per-thread buffers (rows are sampled in parallel): e (V) = exp(logits - max),
   * bs (V/16) its block sums; a fresh allocation per token would be an mmap + page faults */
  if (ecap < V) {
    float *nb = realloc(ebuf, sizeof(float) * ((size_t)V + V / 16 + 1));
    if (!nb) abort(); /* a few MB at most */
    ebuf = nb;
    ecap = V;
  }
  float *e = ebuf, *bs = ebuf + V;
  double esum;
  const float mx = tn_exp_shifted(e, bs, logits, V, &esum);
  const float lse = mx + (float)log(esum);
  /* a NaN or +Inf logit (or all -Inf) makes lse non-finite: no distribution to sample from */
  if (!isfinite(lse)) { *lp = NAN; return -1; }
  if (greedy) { /* the first position of the maximum tn_exp_shifted found (no carried compare chain) */
    int best = 0;
    while (best < V - 1 && logits[best] != mx) best++;
    *lp = logits[best] - lse;
    return best;
  }
  if (o->top_k <= 0 && o->top_p >= 1.0f && o->min_p <= 0.0f) {
    /* the whole distribution: p_v = e_v / esum; inverse CDF over the block sums,
     * then within the block (rounding: the last nonzero entry reached) */
    const double r = tn_rng_uniform(rng) * esum;
    double cum = 0;
    int pick = -1, b = 0;
    const int nb = (V + 15) / 16;
    for (; b < nb - 1 && cum + bs[b] <= r; b++) cum += bs[b];
    for (int v = b * 16; v < V && v < b * 16 + 16; v++) {
      if (e[v] > 0.0f) pick = v;
      cum += e[v];
      if (r < cum) break;
    }
    for (int v = b * 16 - 1; pick < 0 && v >= 0; v--) /* an all-zero last block */
      if (e[v] > 0.0f) pick = v;
    *lp = logits[pick] - lse;
    return pick;
  }
  /* candidates: probabilities, then top-k / top-p / min-p filtering on a sorted prefix.
   * A per-thread buffer: a fresh (V) allocation per token is an mmap + page faults. */
  if (ccap < V) {
    cand *nb = realloc(cbuf, sizeof(cand) * V);
    if (!nb) abort(); /* a few MB at most */
    cbuf = nb;
    ccap = V;
  }
  cand *c = cbuf;
  float pmax = 0.0f;
  for (int v = 0; v < V; v++) {
    c[v].p = expf(logits[v] - lse);
    c[v].i = v;
    pmax = c[v].p > pmax ? c[v].p : pmax;
  }
  int n = V;
  /* Keep a superset of the nucleus / top-k before sorting: the tokens with p >= t
   * for the largest t = pmax/2^j whose set holds >= top_p mass and >= top_k tokens. */
  bool need_sort = o->top_k > 0 || o->top_p < 1.0f;
  if (need_sort) {
    for (float t = pmax; t > 1e-30f; t *= 0.25f) {
      double mass = 0;
      int cnt = 0;
      for (int v = 0; v < V; v++)
        if (c[v].p >= t) { mass += c[v].p; cnt++; }
      bool k_ok = o->top_k <= 0 || cnt >= o->top_k, p_ok = o->top_p >= 1.0f || mass >= o->top_p;
      if (k_ok && p_ok) {
        int w = 0;
        for (int v = 0; v < V; v++)
          if (c[v].p >= t) c[w++] = c[v];
        n = w;
        break;
      }
    }
    qsort(c, n, sizeof(cand), cand_desc);
    bool cut_k = o->top_k > 0 && o->top_k < n;
    if (cut_k) n = o->top_k;
    if (o->top_p < 1.0f) {
      /* smallest prefix with cumulative probability >= top_p, over the whole vocabulary,
       * or renormalised over the top-k when top-k cut first (as HF's warpers do) */
      double tot = 0, cum = 0;
      if (cut_k)
        for (int k = 0; k < n; k++) tot += c[k].p;
      else
        tot = 1.0;
      int keep = n;
      for (int k = 0; k < n; k++) {
        cum += c[k].p / tot;
        if (cum >= o->top_p) { keep = k + 1; break; }
      }
      n = keep;
    }
  }
  if (o->min_p > 0.0f) {
    float thr = o->min_p * pmax;
    int w = 0;
    for (int k = 0; k < n; k++)
      if (c[k].p >= thr) c[w++] = c[k];
    n = w > 0 ? w : 1;
  }
  double tot = 0;
  for (int k = 0; k < n; k++) tot += c[k].p;
  double r = tn_rng_uniform(rng) * tot, cum = 0;
  int pick = c[n - 1].i;
  for (int k = 0; k < n; k++) {
    cum += c[k].p;
    if (r < cum) { pick = c[k].i; break; }
  }
  *lp = logits[pick] - lse;
  return pick;
}

typedef struct {
  int prompt, sample;
  int *hist;           /* prompt + generated (for the repetition penalty) */
  int nhist;
  tn_rng rng;
  bool done;
  int last;            /* last sampled token, fed next */
} slot_t;

static bool is_stop(const tn_gen_opts *o, const tn_model *m, int tok) {
  if (o->stop_ids) {
    for (int k = 0; k < o->n_stop_ids; k++)
      if (o->stop_ids[k] == tok) return true;
    return false;
  }
  for (int k = 0; k < m->cfg.n_eos; k++)
    if (m->cfg.eos_ids[k] == tok) return true;
  return false;
}

static tn_status emit(const tn_model *m, const tn_gen_opts *o, slot_t *s, tn_gen_result *r, int tok, float lp) {
  r->ids[r->n] = tok;
  r->logprobs[r->n] = lp;
  r->n++;
  s->hist[s->nhist++] = tok;
  s->last = tok;
  if (o->on_token) o->on_token(o->ctx, s->prompt, s->sample, tok);
  if (is_stop(o, m, tok)) { s->done = true; r->finish = TN_FINISH_STOP_ID; }
  else if (o->stop_fn && o->stop_fn(o->ctx, s->prompt, s->sample, r->ids, r->n)) { s->done = true; r->finish = TN_FINISH_STOP_FN; }
  else if (r->n >= o->max_new_tokens) { s->done = true; r->finish = TN_FINISH_LENGTH; }
  return TN_OK;
}

/* a sampling decision the options cannot make (NaN logits) is an error naming the sample */
static tn_status nonfinite_logits(const slot_t *q, const tn_gen_result *r) {
  return tn_error(TN_ERR_NUMERIC, "generate: the model's logits are not finite (NaN or Inf) for prompt %d, sample %d, "
                  "token %d: its weights hold NaN/Inf values or its activations overflow", q->prompt, q->sample, r->n + 1);
}

tn_status tn_generate(const tn_model *m, const int *const *prompts, const int *plens, int B, const tn_gen_opts *o,
                      tn_gen_result *res) {
  TN_TRY(tn_gen_opts_check(o, "generate"));
  const int n = o->n > 0 ? o->n : 1, S = B * n, V = m->cfg.V;
  int Tcap = 0, total = 0;
  for (int b = 0; b < B; b++) {
    if (plens[b] <= 0) return tn_error(TN_ERR_ARG, "prompt %d is empty", b);
    Tcap = plens[b] > Tcap ? plens[b] : Tcap;
    total += plens[b];
  }
  if (o->max_new_tokens <= 0) return tn_error(TN_ERR_ARG, "max_new_tokens must be positive");
  Tcap += o->max_new_tokens;
  if (Tcap > m->cfg.max_pos)
    return tn_error(TN_ERR_LIMIT, "prompt length + max_new_tokens = %d exceeds the model's context of %d tokens "
                    "(max_position_embeddings)", Tcap, m->cfg.max_pos);
  int chunk = o->prefill_chunk > 0 ? o->prefill_chunk : 512;
  int Nmax = total < chunk ? total : chunk;
  if (Nmax < S) Nmax = S;
  tn_state *st;
  TN_TRY(tn_state_create(&st, m, S, Tcap, Nmax, false));
  slot_t *sl = calloc(S, sizeof *sl);
  int *tok = malloc(sizeof(int) * Nmax), *pos = malloc(sizeof(int) * Nmax), *seq = malloc(sizeof(int) * Nmax);
  int *orow = malloc(sizeof(int) * Nmax), *owner = malloc(sizeof(int) * Nmax);
  float *logits = malloc(sizeof(float) * (size_t)Nmax * V), *row = malloc(sizeof(float) * V);
  int *smp = malloc(sizeof(int) * Nmax);
  float *slp = malloc(sizeof(float) * Nmax);
  tn_status s = TN_OK;
  memset(res, 0, sizeof *res * (size_t)S);
  if (!sl || !tok || !pos || !seq || !orow || !owner || !logits || !row || !smp || !slp) {
    s = tn_error(TN_ERR_NOMEM, "generate: out of memory for %d rows x %d logits", Nmax, V);
    B = 0; /* no slot is filled; everything is freed below */
  }
  for (int p = 0; p < B && s == TN_OK; p++)
    for (int j = 0; j < n; j++) {
      slot_t *q = &sl[p * n + j];
      q->prompt = p + o->first_prompt;
      q->sample = j;
      q->hist = malloc(sizeof(int) * (plens[p] + o->max_new_tokens));
      tn_gen_result *r = &res[p * n + j];
      r->ids = malloc(sizeof(int) * o->max_new_tokens);
      r->logprobs = malloc(sizeof(float) * o->max_new_tokens);
      if (!q->hist || !r->ids || !r->logprobs) { s = tn_error(TN_ERR_NOMEM, "generate: out of memory"); break; }
      memcpy(q->hist, prompts[p], sizeof(int) * plens[p]);
      q->nhist = plens[p];
      tn_rng_seed(&q->rng, o->seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(p + o->first_prompt + 1)) ^ ((uint64_t)j << 32));
    }
  /* prefill: each prompt once, into slot p*n, in chunks of at most Nmax rows */
  int cur_p = 0, cur_t = 0;
  while (cur_p < B && s == TN_OK) {
    int N = 0, nout = 0;
    while (cur_p < B && N < Nmax) {
      tok[N] = prompts[cur_p][cur_t];
      pos[N] = cur_t;
      seq[N] = cur_p * n;
      if (++cur_t == plens[cur_p]) {
        orow[nout] = N;
        owner[nout++] = cur_p;
        cur_p++;
        cur_t = 0;
      }
      N++;
    }
    s = tn_forward(m, st, N, tok, pos, seq, logits, orow, nout);
    for (int k = 0; k < nout && s == TN_OK; k++) {
      int p = owner[k];
      for (int j = 1; j < n; j++) tn_state_share_prefix(m, st, p * n + j, p * n, plens[p]); /* read in place */
      for (int j = 0; j < n; j++) {
        slot_t *q = &sl[p * n + j];
        memcpy(row, logits + (size_t)k * V, sizeof(float) * V);
        float lp;
        int t = tn_sample_token(row, V, o, q->hist, q->nhist, 0, &q->rng, &lp);
        if (t < 0) { s = nonfinite_logits(q, &res[p * n + j]); break; }
        emit(m, o, q, &res[p * n + j], t, lp);
      }
    }
  }
  /* decode: one row per live slot per step */
  while (s == TN_OK) {
    int N = 0;
    for (int i = 0; i < S; i++) {
      if (sl[i].done) continue;
      tok[N] = sl[i].last;
      pos[N] = sl[i].nhist - 1;
      seq[N] = i;
      owner[N++] = i;
    }
    if (N == 0) break;
    s = tn_forward(m, st, N, tok, pos, seq, logits, NULL, N);
    if (s != TN_OK) break;
    /* sample the rows in parallel (each slot has its own random stream, so the
     * result does not depend on the threads), then emit them in order */
#pragma omp parallel for schedule(dynamic, 1) if (N > 1)
    for (int k = 0; k < N; k++) {
      slot_t *q = &sl[owner[k]];
      smp[k] = tn_sample_token(logits + (size_t)k * V, V, o, q->hist, q->nhist, res[owner[k]].n, &q->rng, &slp[k]);
    }
    for (int k = 0; k < N && s == TN_OK; k++)
      if (smp[k] < 0) s = nonfinite_logits(&sl[owner[k]], &res[owner[k]]);
    for (int k = 0; k < N && s == TN_OK; k++) emit(m, o, &sl[owner[k]], &res[owner[k]], smp[k], slp[k]);
  }
  for (int i = 0; sl && i < S; i++) free(sl[i].hist);
  free(sl); free(tok); free(pos); free(seq); free(orow); free(owner); free(logits); free(row); free(smp); free(slp);
  tn_state_free(st);
  if (s != TN_OK) tn_gen_results_free(res, S);
  return s;
}

void tn_gen_results_free(tn_gen_result *r, int count) {
  for (int i = 0; i < count; i++) {
    free(r[i].ids);
    free(r[i].logprobs);
    r[i].ids = NULL;
    r[i].logprobs = NULL;
  }
}
