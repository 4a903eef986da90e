/* decoder.c - the forward pass shared by every family, and the per-call state
 * (KV cache, activations, RoPE tables) it runs on. One function serves
 * training (rows = whole sequences, activations kept per layer), prefill and
 * KV-cache decoding (rows = new tokens of any slots). The backward pass lives in
 * src/train and reads the activations saved here. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"
#include "model/lora.h"

size_t tn_state_kv_stride(const tn_model *m, const tn_state *st) {
  return (size_t)st->T * m->cfg.KV * m->cfg.D;
}

/* Walk the buffer layout once to size it (base == NULL) and once to assign it. */
static size_t layout(const tn_model *m, tn_state *st, float *base) {
  const tn_config *c = &m->cfg;
  const size_t N = st->Nmax, C = c->C, HD = (size_t)c->H * c->D, KD = (size_t)c->KV * c->D, F = c->F;
  size_t off = 0;
#define TAKE(dst, n)                                   \
  do {                                                 \
    if (base) dst = base + off;                        \
    off += ((size_t)(n) + 15) & ~(size_t)15;           \
  } while (0)
  size_t kv = (size_t)c->L * st->S * st->T * KD;
  TAKE(st->k, kv);
  TAKE(st->v, kv);
  size_t rt = (size_t)st->T * (c->D / 2);
  TAKE(st->cos_g, rt);
  TAKE(st->sin_g, rt);
  TAKE(st->cos_l, rt);
  TAKE(st->sin_l, rt);
  /* sets of activations: one per layer in training, one shared otherwise; with
   * recompute, one x_in per layer and one shared set for everything else */
  int sets = st->train && !st->recompute ? c->L : 1;
  if (st->recompute)
    for (int l = 1; l < c->L; l++) TAKE(st->acts[l].x_in, N * C);
  for (int l = 0; l < sets; l++) {
    tn_layer_acts *a = &st->acts[l];
    TAKE(a->x_in, N * C);
    TAKE(a->xn, N * C);
    TAKE(a->rstd_att, N);
    TAKE(a->q, N * HD);
    if (c->qk_norm) {
      TAKE(a->qn_pre, N * HD);
      TAKE(a->rstd_q, N * c->H);
      TAKE(a->rstd_k, N * c->KV);
    }
    TAKE(a->kn_pre, N * KD);
    if (st->train) TAKE(a->att, N * c->H * (size_t)st->T);
    TAKE(a->ao, N * HD);
    TAKE(a->o, N * C);
    TAKE(a->x_mid, N * C);
    TAKE(a->xn2, N * C);
    TAKE(a->rstd_mlp, N);
    if (c->sandwich_norms) {
      TAKE(a->rstd_opost, N);
      TAKE(a->rstd_mpost, N);
    }
    TAKE(a->g, N * F);
    TAKE(a->u, N * F);
    TAKE(a->h, N * F);
    TAKE(a->m, N * C);
  }
  if (st->train) TAKE(st->x_out, N * C);
  else if (base) st->x_out = st->acts[0].x_in;
  TAKE(st->xf, N * C);
  TAKE(st->rstd_f, N);
  TAKE(st->vr, N * KD);
  TAKE(st->tmp, N * (HD > C ? HD : C));
  TAKE(st->xg, N * C);
#undef TAKE
  if (base && sets == 1)
    for (int l = 1; l < c->L; l++) {
      float *x_in = st->acts[l].x_in;
      st->acts[l] = st->acts[0];
      if (st->recompute) st->acts[l].x_in = x_in;
    }
  return off;
}

tn_status tn_state_create(tn_state **out, const tn_model *m, int S, int T, int Nmax, bool train) {
  return tn_state_create_opts(out, m, S, T, Nmax, train, NULL);
}

tn_status tn_state_create_opts(tn_state **out, const tn_model *m, int S, int T, int Nmax, bool train,
                               const tn_state_opts *o) {
  *out = NULL;
  if (S <= 0 || T <= 0 || Nmax <= 0) return tn_error(TN_ERR_ARG, "state: slots, capacity and rows must be positive");
  tn_state *st = calloc(1, sizeof *st);
  if (!st) return tn_error(TN_ERR_NOMEM, "out of memory for the model state");
  st->S = S;
  st->T = T;
  st->Nmax = Nmax;
  st->train = train;
  st->recompute = train && o && o->recompute;
  st->acts = calloc(m->cfg.L, sizeof(tn_layer_acts));
  st->len = calloc(S, sizeof(int));
  st->pfx_src = calloc(S, sizeof(int));
  st->pfx_len = calloc(S, sizeof(int));
  if (st->acts) st->buf_floats = layout(m, st, NULL); /* layout walks st->acts */
  st->buf = st->acts ? tn_alloc(st->buf_floats * sizeof(float)) : NULL;
  if (!st->buf || !st->acts || !st->len || !st->pfx_src || !st->pfx_len) {
    size_t mb = st->buf_floats * 4 >> 20;
    tn_state_free(st);
    return tn_error(TN_ERR_NOMEM, "out of memory for the model state (%zu MB: %d slots x %d tokens)", mb, S, T);
  }
  layout(m, st, st->buf);
  const tn_config *c = &m->cfg;
  float *inv = malloc(sizeof(float) * (c->D / 2));
  if (!inv) {
    tn_state_free(st);
    return tn_error(TN_ERR_NOMEM, "out of memory for the model state");
  }
  tn_rope_inv_freq(inv, &c->rope, c->D);
  tn_rope_tables(st->cos_g, st->sin_g, inv, T, c->D);
  tn_rope_inv_freq(inv, &c->rope_local, c->D);
  tn_rope_tables(st->cos_l, st->sin_l, inv, T, c->D);
  free(inv);
  *out = st;
  return TN_OK;
}

void tn_state_free(tn_state *st) {
  if (!st) return;
  tn_state_adapters_free(st);
  tn_free(st->buf);
  free(st->acts);
  free(st->len);
  free(st->pfx_src);
  free(st->pfx_len);
  free(st);
}

/* positions [t0, t1) of slot src's cache into slot dst (dst != src) */
static void copy_range(const tn_model *m, tn_state *st, int dst, int src, int t0, int t1) {
  const size_t stride = tn_state_kv_stride(m, st), row = (size_t)m->cfg.KV * m->cfg.D;
  if (t1 <= t0 || dst == src) return;
  for (int l = 0; l < m->cfg.L; l++) {
    size_t base = (size_t)l * st->S * stride + (size_t)t0 * row;
    memcpy(st->k + base + dst * stride, st->k + base + src * stride, sizeof(float) * row * (t1 - t0));
    memcpy(st->v + base + dst * stride, st->v + base + src * stride, sizeof(float) * row * (t1 - t0));
  }
}

/* slots reading their prefix from slot j get their own copy (j is about to change) */
static void release_dependents(const tn_model *m, tn_state *st, int j) {
  for (int d = 0; d < st->S; d++)
    if (d != j && st->pfx_len[d] > 0 && st->pfx_src[d] == j) {
      copy_range(m, st, d, j, 0, st->pfx_len[d]);
      st->pfx_len[d] = 0;
    }
}

void tn_state_copy_slot(const tn_model *m, tn_state *st, int dst, int src, int n) {
  if (dst != src) release_dependents(m, st, dst);
  const int pf = st->pfx_len[src] < n ? st->pfx_len[src] : n; /* src's own shared prefix, if any */
  if (pf > 0) copy_range(m, st, dst, st->pfx_src[src], 0, pf);
  copy_range(m, st, dst, src, pf, n);
  st->pfx_len[dst] = 0;
  st->len[dst] = n;
}

void tn_state_share_prefix(const tn_model *m, tn_state *st, int dst, int src, int n) {
  if (dst == src || st->pfx_len[src] > 0) { /* no chains: copy instead */
    tn_state_copy_slot(m, st, dst, src, n);
    return;
  }
  release_dependents(m, st, dst);
  st->pfx_src[dst] = src;
  st->pfx_len[dst] = n;
  st->len[dst] = n;
  st->pfx_any = n > 0 || st->pfx_any;
}

void tn_state_train_prefix(tn_state *st, int dst, int src, int n) {
  if (dst == src || n <= 0) return;
  st->pfx_src[dst] = src;
  st->pfx_len[dst] = n;
  st->pfx_any = true;
}

bool tn_train_prefix_sharing(void) { return tn_settings_get()->shared_prefix; }

void tn_state_train_prefix_clear(tn_state *st) {
  memset(st->pfx_len, 0, sizeof(int) * st->S);
  st->pfx_any = false;
}

/* training: the shared prompt keys/values of layer l copied into the slots using them */
static void train_prefix_copy(const tn_state *st, float *kc, float *vc, size_t stride, size_t KD) {
  for (int d = 0; d < st->S; d++) {
    const int pf = st->pfx_len[d];
    if (pf <= 0) continue;
    const size_t so = (size_t)st->pfx_src[d] * stride, dof = (size_t)d * stride;
    memcpy(kc + dof, kc + so, sizeof(float) * pf * KD);
    memcpy(vc + dof, vc + so, sizeof(float) * pf * KD);
  }
}

/* Before rows write their keys: a row writing a shared position turns the sharing
 * into a copy (its own slot below the prefix length, or the source of another slot). */
static void unshare_written(const tn_model *m, tn_state *st, int N, const int *pos, const int *seq) {
  bool any = false;
  for (int i = 0; i < N; i++) {
    const int j = seq[i];
    if (st->pfx_len[j] > 0 && pos[i] < st->pfx_len[j]) tn_state_copy_slot(m, st, j, j, st->len[j]);
    for (int d = 0; d < st->S; d++)
      if (st->pfx_len[d] > 0 && st->pfx_src[d] == j && pos[i] < st->pfx_len[d]) {
        const int len = st->len[d], pf = st->pfx_len[d];
        copy_range(m, st, d, j, 0, pf);
        st->pfx_len[d] = 0;
        st->len[d] = len;
      }
  }
  for (int j = 0; j < st->S; j++) any = any || st->pfx_len[j] > 0;
  st->pfx_any = any;
}

static void add_rows(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* Layer l over the N rows of a forward call, from st->acts[l].x_in: writes the
 * layer's activations (att only when keep_att), its keys/values into the cache,
 * and (write_out) the residual leaving the layer. Backward with recompute calls
 * it again with write_out false: the same code on the same input gives the same
 * activations bit for bit. */
#define ROWS_AD(kind, yv, xv, W) \
  do { if (st->ad && !st->train) tn_lora_rows_apply(st, l, kind, yv, xv, W, N); } while (0)
void tn_layer_forward(const tn_model *m, tn_state *st, int l, int N, const int *pos, const int *seq, bool keep_att,
                      bool write_out) {
  const tn_config *c = &m->cfg;
  const tn_weights *w = &m->w;
  const int C = c->C, H = c->H, KV = c->KV, D = c->D, F = c->F;
  const size_t KD = (size_t)KV * D;
  const size_t stride = tn_state_kv_stride(m, st);
  const tn_layer *y = &w->layers[l];
  tn_layer_acts *a = &st->acts[l];
  const bool local = c->layer_local[l];
  const float *cs = local ? st->cos_l : st->cos_g, *sn = local ? st->sin_l : st->sin_g;
  /* attention block */
  tn_rmsnorm_forward(a->xn, a->rstd_att, a->x_in, y->attn_norm, N, C, c->eps, c->norm_plus_one);
  tn_linear_forward(a->q, a->xn, &y->wq, y->bq, N);       // (N, H*D)
  tn_linear_forward(a->kn_pre, a->xn, &y->wk, y->bk, N);  // (N, KV*D)
  tn_linear_forward(st->vr, a->xn, &y->wv, y->bv, N);     // (N, KV*D)
  ROWS_AD(TN_LORA_Q, a->q, a->xn, &y->wq); /* each row's own adapter (tn_state_set_adapter) */
  ROWS_AD(TN_LORA_K, a->kn_pre, a->xn, &y->wk);
  ROWS_AD(TN_LORA_V, st->vr, a->xn, &y->wv);
  float *kr = a->kn_pre;
  if (c->qk_norm) {
    memcpy(a->qn_pre, a->q, sizeof(float) * N * H * D);
    tn_rmsnorm_forward(a->q, a->rstd_q, a->qn_pre, y->q_norm, N * H, D, c->eps, c->norm_plus_one);
    kr = st->tmp;
    tn_rmsnorm_forward(kr, a->rstd_k, a->kn_pre, y->k_norm, N * KV, D, c->eps, c->norm_plus_one);
  }
  tn_rope_forward(a->q, pos, cs, sn, N, H, D);
  tn_rope_forward(kr, pos, cs, sn, N, KV, D);
  float *kc = st->k + (size_t)l * st->S * stride, *vc = st->v + (size_t)l * st->S * stride;
  for (int i = 0; i < N; i++) {
    size_t off = (size_t)seq[i] * stride + (size_t)pos[i] * KD;
    memcpy(kc + off, kr + (size_t)i * KD, sizeof(float) * KD);
    memcpy(vc + off, st->vr + (size_t)i * KD, sizeof(float) * KD);
  }
  const bool pfx_read = st->pfx_any && !st->train; /* training copies shared prefixes instead */
  if (st->pfx_any && st->train) train_prefix_copy(st, kc, vc, stride, KD);
  tn_attn_shape as = {.N = N, .H = H, .KV = KV, .D = D, .Tmax = st->T, .seq_stride = stride, .pos = pos, .seq = seq,
                      .window = local ? c->window : 0, .scale = c->attn_scale, .softcap = c->attn_softcap,
                      .pfx_src = pfx_read ? st->pfx_src : NULL, .pfx_len = pfx_read ? st->pfx_len : NULL, .grouped = !st->train};
  tn_attention_forward(a->ao, keep_att ? a->att : NULL, a->q, kc, vc, &as);
  tn_linear_forward(a->o, a->ao, &y->wo, y->bo, N);       // (N, C)
  ROWS_AD(TN_LORA_O, a->o, a->ao, &y->wo);
  if (c->sandwich_norms) {
    tn_rmsnorm_forward(st->tmp, a->rstd_opost, a->o, y->attn_post_norm, N, C, c->eps, true);
    add_rows(a->x_mid, a->x_in, st->tmp, (size_t)N * C);
  } else {
    add_rows(a->x_mid, a->x_in, a->o, (size_t)N * C);
  }
  /* MLP block */
  tn_rmsnorm_forward(a->xn2, a->rstd_mlp, a->x_mid, y->mlp_norm, N, C, c->eps, c->norm_plus_one);
  tn_linear_forward(a->g, a->xn2, &y->gate, y->bgate, N); // (N, F)
  tn_linear_forward(a->u, a->xn2, &y->up, y->bup, N);
  ROWS_AD(TN_LORA_GATE, a->g, a->xn2, &y->gate);
  ROWS_AD(TN_LORA_UP, a->u, a->xn2, &y->up);
  tn_glu_forward(a->h, a->g, a->u, (size_t)N * F, c->act);
  tn_linear_forward(a->m, a->h, &y->down, y->bdown, N);   // (N, C)
  ROWS_AD(TN_LORA_DOWN, a->m, a->h, &y->down);
  if (c->sandwich_norms) tn_rmsnorm_forward(st->tmp, a->rstd_mpost, a->m, y->mlp_post_norm, N, C, c->eps, true);
  if (!write_out) return;
  float *out = l + 1 < c->L ? st->acts[l + 1].x_in : st->x_out;
  add_rows(out, a->x_mid, c->sandwich_norms ? st->tmp : a->m, (size_t)N * C);
}

/* ---- fused decoding: a few rows (N <= 8), inference, f32, bf16 or nf4 projections
 * without adapters (tn_linear_part_ok): one parallel region for the whole forward
 * instead of one per projection. Each thread computes its slice of the outputs of every projection
 * (tn_linear_part; gate/up and the activation on the same slice) and its share of
 * the attention tasks; the small row-wise steps (norms, RoPE, cache writes,
 * residual adds) run on one thread between barriers. The kernels and their
 * summation orders are those of the unfused path: the same numbers bit for bit
 * (TN_NO_FUSED_DECODE=1 in the environment selects the unfused path). */
/* bytes of its next weight slice a thread prefetches before waiting at a barrier */
#define PF_BYTES 16384
void tn_forward_set_fused(bool on) { tn_settings_set_fused_decode(on); }

static bool fused_enabled(void) { return tn_settings_get()->fused_decode; }

static bool fused_ok(const tn_model *m, const tn_state *st, int N) {
  if (!fused_enabled() || st->train || N > 8 || omp_in_parallel()) return false;
  for (int l = 0; l < m->cfg.L; l++) {
    const tn_layer *y = &m->w.layers[l];
    if (!tn_linear_part_ok(&y->wq, N) || !tn_linear_part_ok(&y->wk, N) || !tn_linear_part_ok(&y->wv, N) ||
        !tn_linear_part_ok(&y->wo, N) || !tn_linear_part_ok(&y->gate, N) || !tn_linear_part_ok(&y->up, N) ||
        !tn_linear_part_ok(&y->down, N))
      return false;
  }
  return true;
}

/* this thread's private (2, N, C) buffer of the fused path (normed rows, post-norms) */
static _Thread_local float *tbuf;
static _Thread_local size_t tbuf_cap;
static float *thread_buf(size_t n) {
  if (tbuf_cap < n) {
    free(tbuf);
    tbuf = malloc(sizeof(float) * n);
    if (!tbuf) abort(); /* a few KB: not recoverable */
    tbuf_cap = n;
  }
  return tbuf;
}

void tn_forward_thread_release(void) {
  free(tbuf);
  tbuf = NULL;
  tbuf_cap = 0;
}

/* out[i, c0:c1) = a[i, c0:c1) + b[i, c0:c1) for the N rows */
static void add_slice(float *out, const float *a, const float *b, int N, int C, int c0, int c1) {
  for (int i = 0; i < N; i++)
    for (int c = c0; c < c1; c++) out[(size_t)i * C + c] = a[(size_t)i * C + c] + b[(size_t)i * C + c];
}

/* ---- fused prefill: more than 8 rows (prompts), inference, f32 projections without
 * adapters, AVX-512: one parallel region for the whole forward, as the fused decode.
 * Each thread computes its column slices of every projection with the packed GEMM
 * (tn_linear_cols, over all rows; up to 32 rows the decode GEMM, see proj), its own copy of each normed activation (norms are
 * cheap next to the GEMMs; no barrier for them), and RoPE, cache writes and attention
 * of the kv heads it owns (q/k/v of whole kv heads when their count is a multiple of the
 * thread count). 4 barriers per layer (attention -> o_proj -> gate/up -> down_proj ->
 * next layer), 5 otherwise. Numbers: each projection output is one FMA
 * chain over its inputs (the same value whatever the number of rows or threads).
 * TN_NO_FUSED_PREFILL=1 selects the per-kernel path (OpenBLAS sgemm per projection). */
void tn_forward_set_fused_prefill(bool on) { tn_settings_set_fused_prefill(on); }
static bool prefill_ok(const tn_model *m, const tn_state *st, int N) {
  if (!tn_settings_get()->fused_prefill || st->train || N <= 8 || omp_in_parallel() || tn_matmul_bf16() ||
      tn_isa_level() < TN_ISA_AVX512)
    return false;
  for (int l = 0; l < m->cfg.L; l++) {
    const tn_layer *y = &m->w.layers[l];
    if (!tn_linear_cols_ok(&y->wq) || !tn_linear_cols_ok(&y->wk) || !tn_linear_cols_ok(&y->wv) ||
        !tn_linear_cols_ok(&y->wo) || !tn_linear_cols_ok(&y->gate) || !tn_linear_cols_ok(&y->up) ||
        !tn_linear_cols_ok(&y->down))
      return false;
  }
  return true;
}

/* a projection's outputs [o0, o1) for the fused prefill: the packed GEMM from 33 rows up; up to
 * 32 rows the decode GEMM of tn_linear_rows, which needs no pack (and gives the per-kernel path's
 * numbers) */
static void proj(float *y, const float *x, const tn_mat *W, const float *bias, int N, int o0, int o1,
                 const tn_mat *next, int next_o0) {
  if (N <= 32) tn_linear_rows(y, x, W, bias, N, o0, o1);
  else tn_linear_cols(y, x, W, bias, N, o0, o1, next, next_o0);
}

/* The fused decode and the fused prefill are one function (prefill: column slices from
 * tn_cols_range and the packed GEMM; decode: tn_part_range slices, the few-row GEMM and
 * explicit prefetches). Per layer, each thread: its own copy of the normed rows; q, k, v of the kv heads it
 * owns (tn_kv_range; when KV is not a multiple of the thread count, even slices and a
 * barrier); RoPE, q/k norms and the cache writes of those heads, then their attention;
 * barrier; its slice of o_proj and of the residual; barrier; its copy of the MLP norm,
 * its slices of gate, up and the activation; barrier; its slice of down_proj and of
 * the residual; barrier: 4 per layer. (Gemma's post-norms need the whole row: one more
 * barrier each.) Before each barrier a thread prefetches the start of its next weight
 * slice into L2, so the stream after the barrier starts at full speed. */
static void forward_region(const tn_model *m, tn_state *st, int N, const int *pos, const int *seq, float *logits,
                           const int *out_rows, int n_out, bool head_in, bool prefill) {
  const tn_config *c = &m->cfg;
  const tn_weights *w = &m->w;
  const int C = c->C, H = c->H, KV = c->KV, D = c->D, F = c->F, G = H / KV;
  const size_t KD = (size_t)KV * D, stride = tn_state_kv_stride(m, st);
  const bool want = logits && n_out > 0;
  void (*range)(int, int, int, int *, int *) = prefill ? tn_cols_range : tn_part_range;
#pragma omp parallel
  {
    const int id = omp_get_thread_num(), nt = omp_get_num_threads();
    const int nr = want && n_out > N ? n_out : N;
    float *xn = thread_buf(2 * (size_t)nr * C), *pn = xn + (size_t)nr * C; // (N, C) each
    int c0, c1, f0, f1, kh0, kh1;
    range(C, id, nt, &c0, &c1);
    range(F, id, nt, &f0, &f1);
    tn_kv_range(KV, id, nt, &kh0, &kh1);
    /* whole kv heads per thread (KV a multiple of the thread count: the same work each):
     * a thread projects q/k/v of exactly the heads it attends for, so no barrier between */
    const bool by_head = KV % nt == 0;
    int q0 = kh0 * G * D, q1 = kh1 * G * D, k0 = kh0 * D, k1 = kh1 * D;
    if (!by_head) {
      range(H * D, id, nt, &q0, &q1);
      range((int)KD, id, nt, &k0, &k1);
    }
/* outputs [o0, o1) of a projection: decode, the few-row GEMM with the next weight slice
 * prefetched before the barrier that follows (PF); prefill, proj (the packed GEMM, which
 * prefetches `next` itself) */
#define PROJ(y_, x_, W_, b_, o0_, o1_, next_, no0_)                      \
  do {                                                                     \
    if (prefill) proj(y_, x_, W_, b_, N, o0_, o1_, next_, no0_);           \
    else tn_linear_rows(y_, x_, W_, b_, N, o0_, o1_);                      \
  } while (0)
#define PF(W_, o0_, o1_)                                                   \
  do {                                                                     \
    if (!prefill) tn_linear_prefetch(W_, o0_, o1_, PF_BYTES);              \
  } while (0)
    for (int l = 0; l < c->L; l++) {
      const tn_layer *y = &w->layers[l];
      tn_layer_acts *a = &st->acts[l];
      const bool local = c->layer_local[l];
      const float *cs = local ? st->cos_l : st->cos_g, *sn = local ? st->sin_l : st->sin_g;
      float *kc = st->k + (size_t)l * st->S * stride, *vc = st->v + (size_t)l * st->S * stride;
      float *kr = c->qk_norm ? st->tmp : a->kn_pre;
      tn_rmsnorm_forward(xn, NULL, a->x_in, y->attn_norm, N, C, c->eps, c->norm_plus_one);
      PROJ(a->q, xn, &y->wq, y->bq, q0, q1, &y->wk, k0);       // (N, H*D)
      PROJ(a->kn_pre, xn, &y->wk, y->bk, k0, k1, &y->wv, k0);  // (N, KV*D)
      PROJ(st->vr, xn, &y->wv, y->bv, k0, k1, &y->wo, c0);     // (N, KV*D)
      if (!by_head) {
#pragma omp barrier
      }
      for (int kh = kh0; kh < kh1; kh++)
        for (int i = 0; i < N; i++) {
          float *qh = a->q + ((size_t)i * H + (size_t)kh * G) * D; // (G, D)
          float *kh_r = kr + (size_t)i * KD + (size_t)kh * D, *kh_p = a->kn_pre + (size_t)i * KD + (size_t)kh * D;
          if (c->qk_norm) {
            tn_rmsnorm_forward(qh, NULL, qh, y->q_norm, G, D, c->eps, c->norm_plus_one);
            tn_rmsnorm_forward(kh_r, NULL, kh_p, y->k_norm, 1, D, c->eps, c->norm_plus_one);
          }
          tn_rope_forward(qh, &pos[i], cs, sn, 1, G, D);
          tn_rope_forward(kh_r, &pos[i], cs, sn, 1, 1, D);
          const size_t off = (size_t)seq[i] * stride + (size_t)pos[i] * KD + (size_t)kh * D;
          memcpy(kc + off, kh_r, sizeof(float) * D);
          memcpy(vc + off, st->vr + (size_t)i * KD + (size_t)kh * D, sizeof(float) * D);
        }
      tn_attn_shape as = {.N = N, .H = H, .KV = KV, .D = D, .Tmax = st->T, .seq_stride = stride, .pos = pos,
                          .seq = seq, .window = local ? c->window : 0, .scale = c->attn_scale,
                          .softcap = c->attn_softcap, .pfx_src = st->pfx_any ? st->pfx_src : NULL,
                          .pfx_len = st->pfx_any ? st->pfx_len : NULL, .grouped = !st->train};
      tn_attention_forward_part(a->ao, a->q, kc, vc, &as, id, nt);
      PF(&y->wo, c0, c1); /* start the next stream while waiting */
#pragma omp barrier
      PROJ(a->o, a->ao, &y->wo, y->bo, c0, c1, &y->gate, f0);        // (N, C)
      if (c->sandwich_norms) {
#pragma omp barrier
        tn_rmsnorm_forward(pn, NULL, a->o, y->attn_post_norm, N, C, c->eps, true);
        add_slice(a->x_mid, a->x_in, pn, N, C, c0, c1);
      } else {
        add_slice(a->x_mid, a->x_in, a->o, N, C, c0, c1);
      }
      PF(&y->gate, f0, f1);
#pragma omp barrier
      tn_rmsnorm_forward(xn, NULL, a->x_mid, y->mlp_norm, N, C, c->eps, c->norm_plus_one);
      PROJ(a->g, xn, &y->gate, y->bgate, f0, f1, &y->up, f0);     // (N, F)
      PROJ(a->u, xn, &y->up, y->bup, f0, f1, &y->down, c0);
      for (int i = 0; i < N && f0 < f1; i++) {
        const size_t r = (size_t)i * F + f0;
        tn_glu_forward(a->h + r, a->g + r, a->u + r, (size_t)(f1 - f0), c->act);
      }
      PF(&y->down, c0, c1);
#pragma omp barrier
      PROJ(a->m, a->h, &y->down, y->bdown, c0, c1, l + 1 < c->L ? &w->layers[l + 1].wq : NULL, q0); // (N, C)
      float *out = l + 1 < c->L ? st->acts[l + 1].x_in : st->x_out;
      if (c->sandwich_norms) {
#pragma omp barrier
        tn_rmsnorm_forward(pn, NULL, a->m, y->mlp_post_norm, N, C, c->eps, true);
        add_slice(out, a->x_mid, pn, N, C, c0, c1);
      } else {
        add_slice(out, a->x_mid, a->m, N, C, c0, c1);
      }
      if (l + 1 < c->L) PF(&w->layers[l + 1].wq, q0, q1);
      else if (head_in && !prefill) {
        int v0, v1;
        tn_part_range(w->head.out, id, nt, &v0, &v1);
        tn_linear_prefetch(&w->head, v0, v1, PF_BYTES);
      }
#pragma omp barrier
    }
#undef PROJ
#undef PF
    if (want) { /* final norm of the requested rows (each thread its copy), then the head */
      const float *xs = st->x_out;
      if (out_rows) {
        for (int j = 0; j < n_out; j++) memcpy(pn + (size_t)j * C, st->x_out + (size_t)out_rows[j] * C, sizeof(float) * C);
        xs = pn;
      }
      tn_rmsnorm_forward(xn, NULL, xs, w->final_norm, n_out, C, c->eps, c->norm_plus_one);
      if (head_in && prefill) { /* our GEMMs, never BLAS: a row's logits do not depend on its batch */
        int v0, v1;
        tn_cols_range(w->head.out, id, nt, &v0, &v1);
        if (n_out <= 32) tn_linear_rows(logits, xn, &w->head, NULL, n_out, v0, v1); // (n_out, V)
        else tn_linear_cols(logits, xn, &w->head, NULL, n_out, v0, v1, NULL, 0);
      } else if (head_in) tn_linear_part(logits, xn, &w->head, NULL, n_out, id, nt); // (n_out, V)
      else if (id == 0) memcpy(st->xf, xn, sizeof(float) * n_out * C);
    }
  }
}

tn_status tn_forward(const tn_model *m, tn_state *st, int N, const int *tok, const int *pos, const int *seq,
                     float *logits, const int *out_rows, int n_out) {
  const tn_config *c = &m->cfg;
  const tn_weights *w = &m->w;
  const int C = c->C, V = c->V;
  if (N <= 0 || N > st->Nmax) return tn_error(TN_ERR_LIMIT, "forward: %d rows exceed the state's capacity of %d", N, st->Nmax);
  for (int i = 0; i < N; i++) {
    if (tok[i] < 0 || tok[i] >= V) return tn_error(TN_ERR_ARG, "token id %d is outside the vocabulary (size %d)", tok[i], V);
    if (seq[i] < 0 || seq[i] >= st->S) return tn_error(TN_ERR_ARG, "sequence slot %d out of range (%d slots)", seq[i], st->S);
    if (pos[i] < 0 || pos[i] >= st->T)
      return tn_error(TN_ERR_LIMIT, "position %d exceeds the context capacity of %d tokens", pos[i], st->T);
  }
  if (st->pfx_any && !st->train) unshare_written(m, st, N, pos, seq);
  /* embedding */
  tn_embed_rows(m, st->acts[0].x_in, tok, N); // (N, C), from the f32 or bf16 table
  if (logits && out_rows)
    for (int j = 0; j < n_out; j++)
      if (out_rows[j] < 0 || out_rows[j] >= N) return tn_error(TN_ERR_ARG, "output row %d out of range", out_rows[j]);
  const bool rows_ad = st->ad && !st->train && tn_lora_rows_plan(st, N, seq); /* rows with their own adapters */
  const bool fused = !rows_ad && fused_ok(m, st, N), prefill = !rows_ad && !fused && prefill_ok(m, st, N);
  if (fused || prefill) {
    const bool head_in = logits && n_out > 0 &&
                         (prefill ? tn_linear_cols_ok(&w->head) : tn_linear_part_ok(&w->head, n_out));
    forward_region(m, st, N, pos, seq, logits, out_rows, n_out, head_in, prefill);
    for (int i = 0; i < N; i++)
      if (pos[i] + 1 > st->len[seq[i]]) st->len[seq[i]] = pos[i] + 1;
    if (!logits || n_out <= 0) return TN_OK;
    if (!head_in) tn_linear_forward(logits, st->xf, &w->head, NULL, n_out); // (n_out, V)
    if (c->final_softcap > 0) tn_softcap_forward(logits, (size_t)n_out * V, c->final_softcap);
    return TN_OK;
  }
  for (int l = 0; l < c->L; l++) tn_layer_forward(m, st, l, N, pos, seq, st->train && !st->recompute, true);
  for (int i = 0; i < N; i++)
    if (pos[i] + 1 > st->len[seq[i]]) st->len[seq[i]] = pos[i] + 1;
  if (!logits || n_out <= 0) return TN_OK;
  /* final norm and head for the requested rows */
  const float *xs = st->x_out;
  if (out_rows) {
    for (int j = 0; j < n_out; j++) {
      if (out_rows[j] < 0 || out_rows[j] >= N) return tn_error(TN_ERR_ARG, "output row %d out of range", out_rows[j]);
      memcpy(st->xg + (size_t)j * C, st->x_out + (size_t)out_rows[j] * C, sizeof(float) * C);
    }
    xs = st->xg;
  }
  tn_rmsnorm_forward(st->xf, st->rstd_f, xs, w->final_norm, n_out, C, c->eps, c->norm_plus_one);
  tn_linear_forward(logits, st->xf, &w->head, NULL, n_out); // (n_out, V)
  if (c->final_softcap > 0) tn_softcap_forward(logits, (size_t)n_out * V, c->final_softcap);
  return TN_OK;
}
