/* engine.c - the step-wise generation engine (include/tunic/engine.h): slots on one KV
 * cache, prefill of appended tokens at the next positions, one tn_forward per step holding
 * every generating slot's decode row and chunked prefill rows, per-slot sampling with
 * tn_sample_token. Not for: text, stop strings, threads (the caller drives it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "generate/generate.h"
#include "model/lora.h"
#include "tunic/engine.h"

#define MAX_TOP 20

typedef struct {
  bool open, gen, paused;
  tn_gen_opts g;
  int *stop_ids;          /* owned copy of g.stop_ids */
  int prompt, sample;
  tn_rng rng;
  int *hist, nhist;       /* (T) the sequence */
  int ncached;            /* hist[0..ncached) are in the cache */
  int turn_start, max_new;/* this turn's tokens: hist[turn_start..nhist) */
  int finish;
  int wait_src, wait_n;   /* a fork waiting for src's prefill (-1: none) */
  float *lg;              /* (V) logits handed over by src (has_lg) */
  bool has_lg;
  const float *raw;       /* this step's raw logits row, or NULL */
} eslot;

struct tn_engine {
  const tn_model *m;
  tn_state *st;
  int S, T, Nmax, V, topk;
  eslot *sl;
  int *tok, *pos, *seq, *orow, *oslot;   /* (Nmax) rows; out rows and their slots */
  float *logits;                         /* (Nmax, V) */
  float *scratch;                        /* (S, V) sampling copies */
  int *lst;                              /* (S) slots sampled this step */
  const float **lrow;                    /* (S) their raw rows */
  int *smp; float *slp;                  /* (S) */
  tn_engine_event *ev;                   /* (S) */
  int *top_ids; float *top_lp;           /* (S, MAX_TOP) */
};

static tn_status bad_slot(const tn_engine *e, int s, const char *fn) {
  return tn_error(TN_ERR_ARG, "%s: slot %d is not open (engine of %d slots)", fn, s, e->S);
}
#define SLOT_OK(e, s) ((s) >= 0 && (s) < (e)->S && (e)->sl[s].open)

tn_status tn_engine_create(tn_engine **out, const tn_model *m, const tn_engine_opts *o) {
  *out = NULL;
  if (!m || !o || o->max_slots <= 0 || o->context <= 1)
    return tn_error(TN_ERR_ARG, "engine: max_slots must be positive and context above 1");
  if (o->context > m->cfg.max_pos)
    return tn_error(TN_ERR_LIMIT, "engine: context %d exceeds the model's %d tokens (max_position_embeddings)",
                    o->context, m->cfg.max_pos);
  if (o->top_logprobs < 0 || o->top_logprobs > MAX_TOP)
    return tn_error(TN_ERR_ARG, "engine: top_logprobs %d outside 0..%d", o->top_logprobs, MAX_TOP);
  tn_engine *e = calloc(1, sizeof *e);
  if (!e) return tn_error(TN_ERR_NOMEM, "engine");
  e->m = m;
  e->S = o->max_slots;
  e->T = o->context;
  e->Nmax = o->rows_per_step > 0 ? o->rows_per_step : 256;
  if (e->Nmax < e->S) e->Nmax = e->S;
  e->V = m->cfg.V;
  e->topk = o->top_logprobs;
  const size_t S = e->S, V = e->V, N = e->Nmax;
  e->sl = calloc(S, sizeof *e->sl);
  e->tok = malloc(sizeof(int) * N); e->pos = malloc(sizeof(int) * N); e->seq = malloc(sizeof(int) * N);
  e->orow = malloc(sizeof(int) * N); e->oslot = malloc(sizeof(int) * N);
  e->logits = malloc(sizeof(float) * N * V);
  e->scratch = malloc(sizeof(float) * S * V);
  e->lst = malloc(sizeof(int) * S); e->lrow = malloc(sizeof(float *) * S);
  e->smp = malloc(sizeof(int) * S); e->slp = malloc(sizeof(float) * S);
  e->ev = calloc(S, sizeof *e->ev);
  e->top_ids = malloc(sizeof(int) * S * MAX_TOP); e->top_lp = malloc(sizeof(float) * S * MAX_TOP);
  tn_status s = TN_OK;
  if (!e->sl || !e->tok || !e->pos || !e->seq || !e->orow || !e->oslot || !e->logits || !e->scratch || !e->lst ||
      !e->lrow || !e->smp || !e->slp || !e->ev || !e->top_ids || !e->top_lp)
    s = tn_error(TN_ERR_NOMEM, "engine: out of memory for %d slots x %d logits", e->S, e->V);
  for (int i = 0; i < e->S && s == TN_OK; i++) {
    e->sl[i].hist = malloc(sizeof(int) * e->T);
    e->sl[i].wait_src = -1;
    if (!e->sl[i].hist) s = tn_error(TN_ERR_NOMEM, "engine: out of memory");
  }
  if (s == TN_OK) s = tn_state_create(&e->st, m, e->S, e->T, e->Nmax, false);
  if (s != TN_OK) { tn_engine_free(e); return s; }
  *out = e;
  return TN_OK;
}

void tn_engine_free(tn_engine *e) {
  if (!e) return;
  for (int i = 0; e->sl && i < e->S; i++) { free(e->sl[i].hist); free(e->sl[i].stop_ids); free(e->sl[i].lg); }
  free(e->sl); free(e->tok); free(e->pos); free(e->seq); free(e->orow); free(e->oslot); free(e->logits);
  free(e->scratch); free(e->lst); free(e->lrow); free(e->smp); free(e->slp); free(e->ev); free(e->top_ids);
  free(e->top_lp);
  tn_state_free(e->st);
  free(e);
}

static tn_status set_opts(eslot *q, const tn_gen_opts *g) {
  TN_TRY(tn_gen_opts_check(g, "engine"));
  int *ids = NULL;
  if (g->stop_ids && g->n_stop_ids > 0) {
    if (!(ids = malloc(sizeof(int) * g->n_stop_ids))) return tn_error(TN_ERR_NOMEM, "engine");
    memcpy(ids, g->stop_ids, sizeof(int) * g->n_stop_ids);
  }
  free(q->stop_ids);
  q->stop_ids = ids;
  q->g = *g;
  q->g.stop_ids = ids;
  return TN_OK;
}

static int free_slot(const tn_engine *e) {
  for (int i = 0; i < e->S; i++)
    if (!e->sl[i].open) return i;
  return -1;
}

static void init_slot(tn_engine *e, int j, int prompt, int sample) {
  eslot *q = &e->sl[j];
  q->open = true;
  q->gen = q->paused = q->has_lg = false;
  q->prompt = prompt;
  q->sample = sample;
  q->nhist = q->ncached = q->turn_start = 0;
  q->finish = -1;
  q->wait_src = -1;
  q->raw = NULL;
  tn_rng_seed(&q->rng, q->g.seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(prompt + 1)) ^ ((uint64_t)sample << 32));
  e->st->len[j] = 0;
  e->st->pfx_len[j] = 0; /* reads nothing from another slot */
  tn_state_set_adapter(e->st, j, NULL); /* cannot fail for NULL */
}

tn_status tn_engine_open(tn_engine *e, const tn_gen_opts *g, int prompt, int sample, int *slot) {
  const int j = free_slot(e);
  if (j < 0) return tn_error(TN_ERR_LIMIT, "engine: all %d slots are open", e->S);
  TN_TRY(set_opts(&e->sl[j], g));
  init_slot(e, j, prompt, sample);
  *slot = j;
  return TN_OK;
}

tn_status tn_engine_append(tn_engine *e, int slot, const int *ids, int n) {
  if (!SLOT_OK(e, slot)) return bad_slot(e, slot, "tn_engine_append");
  eslot *q = &e->sl[slot];
  if (q->gen) return tn_error(TN_ERR_ARG, "tn_engine_append: slot %d is generating (append after its turn ends)", slot);
  if (n < 0 || q->nhist + n > e->T)
    return tn_error(TN_ERR_LIMIT, "engine: slot %d would hold %d tokens, above its context of %d", slot, q->nhist + n, e->T);
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= e->V) return tn_error(TN_ERR_ARG, "tn_engine_append: token id %d outside the vocabulary (%d)", ids[i], e->V);
  memcpy(q->hist + q->nhist, ids, sizeof(int) * n);
  q->nhist += n;
  if (n > 0) q->has_lg = false; /* handed-over logits were for the old end */
  return TN_OK;
}

tn_status tn_engine_generate(tn_engine *e, int slot, int max_new) {
  if (!SLOT_OK(e, slot)) return bad_slot(e, slot, "tn_engine_generate");
  eslot *q = &e->sl[slot];
  if (q->nhist == 0) return tn_error(TN_ERR_ARG, "tn_engine_generate: slot %d holds no tokens", slot);
  if (q->nhist >= e->T) return tn_error(TN_ERR_LIMIT, "engine: slot %d is full (%d tokens)", slot, e->T);
  q->max_new = max_new > 0 ? max_new : q->g.max_new_tokens > 0 ? q->g.max_new_tokens : 64;
  q->turn_start = q->nhist;
  q->gen = true;
  q->finish = -1;
  return TN_OK;
}

tn_status tn_engine_fork(tn_engine *e, int src, const tn_gen_opts *g, int prompt, int sample, int *slot) {
  if (!SLOT_OK(e, src)) return bad_slot(e, src, "tn_engine_fork");
  eslot *p = &e->sl[src];
  if (p->nhist == 0) return tn_error(TN_ERR_ARG, "tn_engine_fork: slot %d holds no tokens", src);
  const int j = free_slot(e);
  if (j < 0) return tn_error(TN_ERR_LIMIT, "engine: all %d slots are open", e->S);
  TN_TRY(set_opts(&e->sl[j], g ? g : &p->g));
  init_slot(e, j, prompt, sample);
  TN_TRY(tn_state_set_adapter(e->st, j, tn_state_adapter(e->st, src))); /* buffers exist: no allocation */
  eslot *q = &e->sl[j];
  memcpy(q->hist, p->hist, sizeof(int) * p->nhist);
  q->nhist = p->nhist;
  if (p->gen && p->wait_src < 0 && p->nhist - p->ncached > 1 && p->nhist == p->turn_start) {
    q->wait_src = src; /* share src's prefill and its logits when it has run */
    q->wait_n = p->nhist;
  } else if (p->has_lg) { /* src holds handed-over logits for its whole sequence */
    const int n = p->ncached;
    tn_state_share_prefix(e->m, e->st, j, src, n);
    q->ncached = n;
    if (!q->lg && !(q->lg = malloc(sizeof(float) * e->V))) return tn_error(TN_ERR_NOMEM, "engine");
    memcpy(q->lg, p->lg, sizeof(float) * e->V);
    q->has_lg = true;
  } else {
    int n = p->ncached < p->nhist - 1 ? p->ncached : p->nhist - 1; /* at least the last token runs again */
    if (p->wait_src >= 0) n = 0;
    if (n > 0) tn_state_share_prefix(e->m, e->st, j, src, n);
    q->ncached = n;
  }
  *slot = j;
  return TN_OK;
}

/* forks waiting on src take what src has cached and run the rest themselves */
static void release_waiters(tn_engine *e, int src) {
  for (int d = 0; d < e->S; d++) {
    eslot *q = &e->sl[d];
    if (!q->open || q->wait_src != src) continue;
    q->wait_src = -1;
    int n = e->sl[src].ncached < q->nhist - 1 ? e->sl[src].ncached : q->nhist - 1;
    if (n > 0) tn_state_share_prefix(e->m, e->st, d, src, n);
    q->ncached = n > 0 ? n : 0;
  }
}

tn_status tn_engine_pause(tn_engine *e, int slot, bool paused) {
  if (!SLOT_OK(e, slot)) return bad_slot(e, slot, "tn_engine_pause");
  e->sl[slot].paused = paused;
  return TN_OK;
}

tn_status tn_engine_cancel(tn_engine *e, int slot) {
  if (!SLOT_OK(e, slot)) return bad_slot(e, slot, "tn_engine_cancel");
  eslot *q = &e->sl[slot];
  release_waiters(e, slot);
  if (q->gen) { q->gen = false; q->finish = TN_FINISH_CANCEL; }
  return TN_OK;
}

void tn_engine_close(tn_engine *e, int slot) {
  if (!SLOT_OK(e, slot)) return;
  release_waiters(e, slot);
  e->sl[slot].open = e->sl[slot].gen = false;
  /* forks reading this slot's cache keep it: a row written here later copies it to them first */
}

bool tn_engine_busy(const tn_engine *e) {
  for (int i = 0; i < e->S; i++) {
    const eslot *q = &e->sl[i];
    if (q->open && q->gen && !q->paused) return true;
  }
  return false;
}

static bool is_stop(const tn_engine *e, const eslot *q, int tok) {
  if (q->g.stop_ids) {
    for (int k = 0; k < q->g.n_stop_ids; k++)
      if (q->g.stop_ids[k] == tok) return true;
    return false;
  }
  for (int k = 0; k < e->m->cfg.n_eos; k++)
    if (e->m->cfg.eos_ids[k] == tok) return true;
  return false;
}

/* the k most likely tokens of log_softmax(row) */
static int top_of(const float *row, int V, int k, int *ids, float *lp) {
  float mx = -INFINITY;
  for (int v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
  double se = 0;
  for (int v = 0; v < V; v++) se += exp((double)row[v] - mx);
  const float lse = mx + (float)log(se);
  int n = 0;
  for (int v = 0; v < V; v++) {
    const float x = row[v];
    if (n == k && !(x > lp[n - 1])) continue;
    int i = n < k ? n++ : k - 1;
    while (i > 0 && x > lp[i - 1]) { lp[i] = lp[i - 1]; ids[i] = ids[i - 1]; i--; }
    lp[i] = x;
    ids[i] = v;
  }
  for (int i = 0; i < n; i++) lp[i] -= lse;
  return n;
}

tn_status tn_engine_step(tn_engine *e, const tn_engine_event **ev, int *n_ev) {
  *ev = e->ev;
  *n_ev = 0;
  const int V = e->V;
  int N = 0, nout = 0, nl = 0;
  for (int j = 0; j < e->S; j++) e->sl[j].raw = NULL;
  /* decode rows first (one per generating slot), then pending prefill rows in slot order */
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < e->S && N < e->Nmax; j++) {
      eslot *q = &e->sl[j];
      if (!q->open || !q->gen || q->paused || q->wait_src >= 0 || q->has_lg) continue;
      const int pend = q->nhist - q->ncached;
      if (pend <= 0 || (pass == 0) != (pend == 1)) continue;
      int k = q->ncached;
      for (; k < q->nhist && N < e->Nmax; k++, N++) {
        e->tok[N] = q->hist[k];
        e->pos[N] = k;
        e->seq[N] = j;
      }
      if (k == q->nhist) { e->orow[nout] = N - 1; e->oslot[nout++] = j; }
    }
  if (N > 0) {
    TN_TRY(tn_forward(e->m, e->st, N, e->tok, e->pos, e->seq, e->logits, e->orow, nout));
    for (int i = 0; i < N; i++) e->sl[e->seq[i]].ncached = e->pos[i] + 1;
  }
  for (int k = 0; k < nout; k++) {
    const int j = e->oslot[k];
    const float *row = e->logits + (size_t)k * V;
    e->lst[nl] = j;
    e->lrow[nl++] = row;
    for (int d = 0; d < e->S; d++) { /* forks waiting for this prefill */
      eslot *q = &e->sl[d];
      if (!q->open || q->wait_src != j || q->wait_n != e->sl[j].ncached) continue;
      tn_state_share_prefix(e->m, e->st, d, j, q->wait_n);
      q->ncached = q->wait_n;
      q->wait_src = -1;
      if (!q->lg && !(q->lg = malloc(sizeof(float) * V))) return tn_error(TN_ERR_NOMEM, "engine");
      memcpy(q->lg, row, sizeof(float) * V);
      q->has_lg = true;
    }
  }
  for (int j = 0; j < e->S; j++) { /* handed-over logits of generating slots: sample now */
    eslot *q = &e->sl[j];
    if (q->open && q->gen && !q->paused && q->has_lg) {
      e->lst[nl] = j;
      e->lrow[nl++] = q->lg;
    }
  }
  /* slot order (events come in slot order) */
  for (int a = 1; a < nl; a++)
    for (int b = a; b > 0 && e->lst[b] < e->lst[b - 1]; b--) {
      int ti = e->lst[b]; e->lst[b] = e->lst[b - 1]; e->lst[b - 1] = ti;
      const float *tr = e->lrow[b]; e->lrow[b] = e->lrow[b - 1]; e->lrow[b - 1] = tr;
    }
#pragma omp parallel for schedule(dynamic, 1) if (nl > 1)
  for (int k = 0; k < nl; k++) {
    eslot *q = &e->sl[e->lst[k]];
    float *row = e->scratch + (size_t)k * V;
    memcpy(row, e->lrow[k], sizeof(float) * V);
    e->smp[k] = tn_sample_token(row, V, &q->g, q->hist, q->nhist, q->nhist - q->turn_start, &q->rng, &e->slp[k]);
    if (e->topk > 0 && e->smp[k] >= 0)
      e->ev[k].n_top = top_of(row, V, e->topk, e->top_ids + (size_t)k * MAX_TOP, e->top_lp + (size_t)k * MAX_TOP);
    else
      e->ev[k].n_top = 0;
  }
  for (int k = 0; k < nl; k++)
    if (e->smp[k] < 0)
      return tn_error(TN_ERR_NUMERIC, "engine: the model's logits are not finite (NaN or Inf) for slot %d (prompt %d, "
                      "sample %d) at position %d", e->lst[k], e->sl[e->lst[k]].prompt, e->sl[e->lst[k]].sample,
                      e->sl[e->lst[k]].nhist);
  for (int k = 0; k < nl; k++) {
    const int j = e->lst[k];
    eslot *q = &e->sl[j];
    const int t = e->smp[k];
    q->raw = e->lrow[k];
    q->has_lg = false;
    q->hist[q->nhist++] = t;
    const int nturn = q->nhist - q->turn_start;
    int fin = -1;
    if (is_stop(e, q, t)) fin = TN_FINISH_STOP_ID;
    else if (q->g.stop_fn && q->g.stop_fn(q->g.ctx, q->prompt, q->sample, q->hist + q->turn_start, nturn))
      fin = TN_FINISH_STOP_FN;
    else if (nturn >= q->max_new) fin = TN_FINISH_LENGTH;
    else if (q->nhist >= e->T) fin = TN_FINISH_CONTEXT;
    if (fin >= 0) { q->gen = false; q->finish = fin; }
    tn_engine_event *x = &e->ev[k];
    x->slot = j;
    x->token = t;
    x->logprob = e->slp[k];
    x->done = fin >= 0;
    x->finish = fin;
    x->top_ids = e->top_ids + (size_t)k * MAX_TOP;
    x->top_logprobs = e->top_lp + (size_t)k * MAX_TOP;
  }
  *n_ev = nl;
  return TN_OK;
}

const int *tn_engine_tokens(const tn_engine *e, int slot, int *n) {
  if (!SLOT_OK(e, slot)) { *n = 0; return NULL; }
  *n = e->sl[slot].nhist;
  return e->sl[slot].hist;
}
int tn_engine_cached(const tn_engine *e, int slot) { return SLOT_OK(e, slot) ? e->sl[slot].ncached : 0; }
bool tn_engine_generating(const tn_engine *e, int slot) { return SLOT_OK(e, slot) && e->sl[slot].gen; }
int tn_engine_finish(const tn_engine *e, int slot) { return SLOT_OK(e, slot) ? e->sl[slot].finish : -1; }
const float *tn_engine_logits(const tn_engine *e, int slot) { return SLOT_OK(e, slot) ? e->sl[slot].raw : NULL; }

tn_status tn_engine_set_adapter(tn_engine *e, int slot, tn_adapter *adapter) {
  if (!SLOT_OK(e, slot)) return bad_slot(e, slot, "tn_engine_set_adapter");
  if (adapter && adapter->model != e->m)
    return tn_error(TN_ERR_ARG, "tn_engine_set_adapter: adapter '%s' was loaded for another model", adapter->name);
  return tn_state_set_adapter(e->st, slot, adapter);
}

/* (added for tunic serve) dst, freshly opened with tokens appended and nothing cached, reads its
 * first n tokens from src's cache in place: the same tokens at the same positions, already
 * computed for another sequence (a system prompt shared by requests). */
tn_status tn_engine_share_prefix(tn_engine *e, int dst, int src, int n) {
  if (!SLOT_OK(e, dst)) return bad_slot(e, dst, "tn_engine_share_prefix");
  if (!SLOT_OK(e, src)) return bad_slot(e, src, "tn_engine_share_prefix");
  eslot *q = &e->sl[dst];
  const eslot *p = &e->sl[src];
  if (dst == src || q->gen || q->ncached != 0 || n <= 0 || n > p->ncached || n >= q->nhist ||
      memcmp(q->hist, p->hist, sizeof(int) * n))
    return tn_error(TN_ERR_ARG, "tn_engine_share_prefix: slot %d cannot read %d tokens of slot %d", dst, n, src);
  tn_state_share_prefix(e->m, e->st, dst, src, n);
  q->ncached = n;
  return TN_OK;
}
