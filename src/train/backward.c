/* backward.c - the decoder's backward pass (every family), reading the
 * activations tn_forward saved in a training state. Mirrors decoder.c's forward
 * block by block, last layer first; each kernel backward accumulates (+=). */
#include <stdlib.h>
#include <string.h>
#include "train/train.h"

static size_t carve_grads(tn_weight_entry *p, int n, float *base) {
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    if (base) *p[i].ptr = base + off;
    off += (p[i].numel + 15) & ~(size_t)15;
  }
  return off;
}

tn_status tn_grads_create(tn_grads *g, const tn_model *m) {
  memset(g, 0, sizeof *g);
  g->g.layers = calloc(m->cfg.L, sizeof(tn_layer));
  if (!g->g.layers) return tn_error(TN_ERR_NOMEM, "out of memory for the gradients");
  tn_weight_entry *tab;
  int n;
  TN_TRY(tn_weight_table(&m->cfg, &g->g, &tab, &n));
  g->n = carve_grads(tab, n, NULL);
  g->flat = tn_alloc(g->n * sizeof(float));
  if (!g->flat) { free(tab); return tn_error(TN_ERR_NOMEM, "out of memory for the gradients (%zu floats)", g->n); }
  carve_grads(tab, n, g->flat);
  if (m->cfg.tied) g->g.head.w = g->g.embed;
  free(tab);
  return TN_OK;
}

void tn_grads_free(tn_grads *g) {
  tn_free(g->flat);
  free(g->g.layers);
  memset(g, 0, sizeof *g);
}

void tn_grads_zero(tn_grads *g) { memset(g->flat, 0, g->n * sizeof(float)); }

tn_status tn_bwd_create(tn_bwd *b, const tn_model *m, const tn_state *st) {
  memset(b, 0, sizeof *b);
  const tn_config *c = &m->cfg;
  const size_t N = st->Nmax, C = c->C, HD = (size_t)c->H * c->D, KD = (size_t)c->KV * c->D, F = c->F;
  const size_t kvl = (size_t)st->S * st->T * KD, mx = HD > C ? HD : C;
  size_t sizes[] = {N * C, N * C, N * C, N * C, N * HD, N * KD, N * KD, N * HD, kvl, kvl, N * F, N * F, N * F, N * mx};
  float **dst[] = {&b->dx, &b->dx2, &b->dn, &b->dxf, &b->dq, &b->dkr, &b->dvr, &b->dao, &b->dk, &b->dv,
                   &b->dg, &b->du, &b->dh, &b->tmp};
  size_t total = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += (sizes[i] + 15) & ~(size_t)15;
  b->buf = tn_alloc(total * sizeof(float));
  if (!b->buf) return tn_error(TN_ERR_NOMEM, "out of memory for the backward pass (%zu MB)", total * 4 >> 20);
  size_t off = 0;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    *dst[i] = b->buf + off;
    off += (sizes[i] + 15) & ~(size_t)15;
  }
  return TN_OK;
}

void tn_bwd_free(tn_bwd *b) {
  tn_free(b->buf);
  memset(b, 0, sizeof *b);
}

#define GP(field) (grads ? grads->g.field : NULL)

/* b->dx (the gradient w.r.t. the stream after k layers) += b->dhidden[k], if given */
static void add_dhidden(tn_bwd *b, int k, size_t n) {
  if (!b->dhidden || !b->dhidden[k]) return;
  const float *e = b->dhidden[k];
  float *dx = b->dx;
#pragma omp parallel for if (n > 65536)
  for (size_t i = 0; i < n; i++) dx[i] += e[i];
}

tn_status tn_backward(const tn_model *m, tn_state *st, tn_bwd *b, tn_grads *grads, float *dlogits,
                      const float *logits, int N, const int *tok, const int *pos, const int *seq) {
  const tn_config *c = &m->cfg;
  const tn_weights *w = &m->w;
  const int C = c->C, V = c->V;
  const size_t NC = (size_t)N * C;
  if (!st->train) return tn_error(TN_ERR_ARG, "backward needs a state created for training");
  if (N > st->Nmax) return tn_error(TN_ERR_LIMIT, "backward: %d rows exceed the state's %d", N, st->Nmax);
  /* head */
  if (c->final_softcap > 0) {
    if (!logits || logits == dlogits) return tn_error(TN_ERR_ARG, "backward: soft-capped logits are needed separately");
    tn_softcap_backward(dlogits, logits, (size_t)N * V, c->final_softcap);
  }
  memset(b->dxf, 0, NC * sizeof(float));
  float *dhead = grads ? (c->tied ? grads->g.embed : grads->g.head.w) : NULL;
  tn_linear_backward(b->dxf, dhead, NULL, dlogits, st->xf, &w->head, N);
  if (b->dxf_add)
    for (size_t i = 0; i < NC; i++) b->dxf[i] += b->dxf_add[i];
  return tn_backward_body(m, st, b, grads, N, tok, pos, seq);
}

tn_status tn_backward_body(const tn_model *m, tn_state *st, tn_bwd *b, tn_grads *grads, int N, const int *tok,
                           const int *pos, const int *seq) {
  const tn_config *c = &m->cfg;
  const tn_weights *w = &m->w;
  const int C = c->C, H = c->H, KV = c->KV, D = c->D, F = c->F;
  const size_t NC = (size_t)N * C, KD = (size_t)KV * D;
  if (!st->train) return tn_error(TN_ERR_ARG, "backward needs a state created for training");
  if (N > st->Nmax) return tn_error(TN_ERR_LIMIT, "backward: %d rows exceed the state's %d", N, st->Nmax);
  memset(b->dx, 0, NC * sizeof(float));
  tn_rmsnorm_backward(b->dx, GP(final_norm), b->dxf, st->x_out, w->final_norm, st->rstd_f, N, C, c->norm_plus_one);
  add_dhidden(b, c->L, NC);

  const size_t stride = tn_state_kv_stride(m, st);
  for (int l = c->L - 1; l >= 0; l--) {
    const tn_layer *y = &w->layers[l];
    tn_layer *gy = grads ? &grads->g.layers[l] : NULL;
    tn_layer_acts *a = &st->acts[l];
    if (st->recompute) tn_layer_forward(m, st, l, N, pos, seq, true, false);
    const bool local = c->layer_local[l];
    const float *cs = local ? st->cos_l : st->cos_g, *sn = local ? st->sin_l : st->sin_g;
    /* ---- MLP block: out = x_mid + post(m) ---- */
    float *dout = b->dx, *dmid = b->dx2;
    memcpy(dmid, dout, NC * sizeof(float));
    const float *dm = dout;
    if (c->sandwich_norms) {
      memset(b->dn, 0, NC * sizeof(float));
      tn_rmsnorm_backward(b->dn, gy ? gy->mlp_post_norm : NULL, dout, a->m, y->mlp_post_norm, a->rstd_mpost, N, C, true);
      dm = b->dn;
    }
    memset(b->dh, 0, (size_t)N * F * sizeof(float));
    tn_linear_backward(b->dh, gy ? gy->down.w : NULL, gy ? gy->bdown : NULL, dm, a->h, &y->down, N);
    memset(b->dg, 0, (size_t)N * F * sizeof(float));
    memset(b->du, 0, (size_t)N * F * sizeof(float));
    tn_glu_backward(b->dg, b->du, b->dh, a->g, a->u, (size_t)N * F, c->act);
    float *dxn2 = b->dxf; /* reuse: (N, C) */
    memset(dxn2, 0, NC * sizeof(float));
    tn_linear_backward(dxn2, gy ? gy->gate.w : NULL, gy ? gy->bgate : NULL, b->dg, a->xn2, &y->gate, N);
    tn_linear_backward(dxn2, gy ? gy->up.w : NULL, gy ? gy->bup : NULL, b->du, a->xn2, &y->up, N);
    tn_rmsnorm_backward(dmid, gy ? gy->mlp_norm : NULL, dxn2, a->x_mid, y->mlp_norm, a->rstd_mlp, N, C, c->norm_plus_one);
    /* ---- attention block: x_mid = x_in + post(o) ---- */
    float *din = b->dx; /* gradient w.r.t. x_in, becomes the next dout */
    memcpy(din, dmid, NC * sizeof(float));
    const float *dO = dmid;
    if (c->sandwich_norms) {
      memset(b->dn, 0, NC * sizeof(float));
      tn_rmsnorm_backward(b->dn, gy ? gy->attn_post_norm : NULL, dmid, a->o, y->attn_post_norm, a->rstd_opost, N, C, true);
      dO = b->dn;
    }
    memset(b->dao, 0, (size_t)N * H * D * sizeof(float));
    tn_linear_backward(b->dao, gy ? gy->wo.w : NULL, gy ? gy->bo : NULL, dO, a->ao, &y->wo, N);
    const float *kc = st->k + (size_t)l * st->S * stride, *vc = st->v + (size_t)l * st->S * stride;
    tn_attn_shape as = {.N = N, .H = H, .KV = KV, .D = D, .Tmax = st->T, .seq_stride = stride, .pos = pos, .seq = seq,
                        .window = local ? c->window : 0, .scale = c->attn_scale, .softcap = c->attn_softcap};
    memset(b->dq, 0, (size_t)N * H * D * sizeof(float));
    memset(b->dk, 0, (size_t)st->S * stride * sizeof(float));
    memset(b->dv, 0, (size_t)st->S * stride * sizeof(float));
    tn_attention_backward(b->dq, b->dk, b->dv, b->dao, a->att, a->q, kc, vc, &as);
    if (st->pfx_any) /* shared prompt prefixes: the sharers' key/value gradients go to the source rows */
      for (int d = 0; d < st->S; d++) {
        const int pf = st->pfx_len[d];
        if (pf <= 0) continue;
        float *dks = b->dk + (size_t)st->pfx_src[d] * stride, *dvs = b->dv + (size_t)st->pfx_src[d] * stride;
        const float *dkd = b->dk + (size_t)d * stride, *dvd = b->dv + (size_t)d * stride;
        for (size_t x = 0; x < (size_t)pf * KD; x++) {
          dks[x] += dkd[x];
          dvs[x] += dvd[x];
        }
      }
    for (int i = 0; i < N; i++) {
      size_t off = (size_t)seq[i] * stride + (size_t)pos[i] * KD;
      memcpy(b->dkr + (size_t)i * KD, b->dk + off, KD * sizeof(float));
      memcpy(b->dvr + (size_t)i * KD, b->dv + off, KD * sizeof(float));
    }
    tn_rope_backward(b->dq, pos, cs, sn, N, H, D);
    tn_rope_backward(b->dkr, pos, cs, sn, N, KV, D);
    const float *dqp = b->dq, *dkp = b->dkr;
    if (c->qk_norm) {
      memset(b->tmp, 0, (size_t)N * H * D * sizeof(float));
      tn_rmsnorm_backward(b->tmp, gy ? gy->q_norm : NULL, b->dq, a->qn_pre, y->q_norm, a->rstd_q, N * H, D, c->norm_plus_one);
      memcpy(b->dq, b->tmp, (size_t)N * H * D * sizeof(float));
      memset(b->tmp, 0, (size_t)N * KD * sizeof(float));
      tn_rmsnorm_backward(b->tmp, gy ? gy->k_norm : NULL, b->dkr, a->kn_pre, y->k_norm, a->rstd_k, N * KV, D, c->norm_plus_one);
      memcpy(b->dkr, b->tmp, (size_t)N * KD * sizeof(float));
    }
    /* below layer 0 only the embedding learns: without base gradients (LoRA) the
     * gradient w.r.t. layer 0's input is not needed (its adapters' dA/dB still are) */
    const bool need_din = grads || l > 0;
    float *dxn = need_din ? b->dxf : NULL;
    if (dxn) memset(dxn, 0, NC * sizeof(float));
    tn_linear_backward(dxn, gy ? gy->wq.w : NULL, gy ? gy->bq : NULL, dqp, a->xn, &y->wq, N);
    tn_linear_backward(dxn, gy ? gy->wk.w : NULL, gy ? gy->bk : NULL, dkp, a->xn, &y->wk, N);
    tn_linear_backward(dxn, gy ? gy->wv.w : NULL, gy ? gy->bv : NULL, b->dvr, a->xn, &y->wv, N);
    if (need_din)
      tn_rmsnorm_backward(din, gy ? gy->attn_norm : NULL, dxn, a->x_in, y->attn_norm, a->rstd_att, N, C, c->norm_plus_one);
    add_dhidden(b, l, NC); /* layer l's input is the stream after l layers */
  }
  /* embedding: rows scatter-add (serial over rows: several rows may share a token) */
  if (grads && grads->g.embed) {
    float *ge = grads->g.embed;
#pragma omp parallel for
    for (int c0 = 0; c0 < C; c0 += 64) {
      int c1 = c0 + 64 < C ? c0 + 64 : C;
      for (int i = 0; i < N; i++) {
        float *gr = ge + (size_t)tok[i] * C;
        const float *dr = b->dx + (size_t)i * C;
        for (int k = c0; k < c1; k++) gr[k] += dr[k] * c->embed_scale;
      }
    }
  }
  return TN_OK;
}

/* ---- LM head + cross-entropy in row chunks ---- */
tn_status tn_head_create(tn_head *h, const tn_model *m, const tn_state *st) {
  memset(h, 0, sizeof *h);
  const int V = m->cfg.V;
  long R = (1L << 24) / V;
  if (tn_settings_get()->head_chunk_rows > 0) R = tn_settings_get()->head_chunk_rows;
  else R = R < 32 ? 32 : R & ~15L;
  if (R > st->Nmax) R = st->Nmax;
  h->R = (int)R;
  const size_t chunk = (size_t)R * V, n = m->cfg.final_softcap > 0 ? 2 * chunk : chunk;
  h->buf = tn_alloc(n * sizeof(float));
  if (!h->buf) return tn_error(TN_ERR_NOMEM, "out of memory for the LM head's chunk (%zu MB)", n * 4 >> 20);
  h->logits = h->buf;
  h->capped = m->cfg.final_softcap > 0 ? h->buf + chunk : NULL;
  return TN_OK;
}

void tn_head_free(tn_head *h) {
  tn_free(h->buf);
  tn_bf16_packed_free(&h->pk_fwd);
  tn_bf16_packed_free(&h->pk_bwd);
  memset(h, 0, sizeof *h);
}

tn_status tn_head_xent(const tn_model *m, tn_state *st, tn_head *h, tn_bwd *b, tn_grads *grads, const int *targets,
                       const float *row_weight, int N, float *loss_rows) {
  const tn_config *c = &m->cfg;
  const tn_weights *w = &m->w;
  const int C = c->C, V = c->V;
  if (N > st->Nmax) return tn_error(TN_ERR_LIMIT, "head: %d rows exceed the state's %d", N, st->Nmax);
  tn_rmsnorm_forward(st->xf, st->rstd_f, st->x_out, w->final_norm, N, C, c->eps, c->norm_plus_one);
  float *dhead = grads ? (c->tied ? grads->g.embed : grads->g.head.w) : NULL;
  if (b) memset(b->dxf, 0, (size_t)N * C * sizeof(float));
  /* bf16 matmul mode: pack the head weight once for all chunks (forward: op(B) = W^T; dx: op(B) = W) */
  const bool pk = N > 8 && w->head.dtype == TN_F32 && tn_matmul_bf16() && N > h->R &&
                  tn_bf16_pack_b(&h->pk_fwd, true, V, C, w->head.w, C) &&
                  (!b || tn_bf16_pack_b(&h->pk_bwd, false, C, V, w->head.w, C));
  for (int r0 = 0; r0 < N; r0 += h->R) {
    const int R = N - r0 < h->R ? N - r0 : h->R;
    const float *xf = st->xf + (size_t)r0 * C;
    const int *tg = targets + r0;
    const float *rw = row_weight ? row_weight + r0 : NULL;
    bool any = false; /* a chunk with no weighted target needs no backward */
    for (int i = 0; i < R && !any; i++) any = tg[i] >= 0 && (!rw || rw[i] != 0.0f);
    if (!pk || R <= 8 || !tn_gemm_bf16_packed(false, R, xf, C, &h->pk_fwd, 0.0f, h->logits, V))
      tn_linear_forward(h->logits, xf, &w->head, NULL, R); // (R, V)
    const float *lg = h->logits;
    if (h->capped) {
      memcpy(h->capped, h->logits, sizeof(float) * (size_t)R * V);
      tn_softcap_forward(h->capped, (size_t)R * V, c->final_softcap);
      lg = h->capped;
    }
    /* loss, and dlogits in place of the logits */
    tn_xent_forward_backward(loss_rows + r0, b && any ? h->logits : NULL, lg, tg, rw, R, V);
    if (!b || !any) continue;
    if (h->capped) tn_softcap_backward(h->logits, h->capped, (size_t)R * V, c->final_softcap);
    if (pk && R > 8 && tn_gemm_bf16_packed(false, R, h->logits, V, &h->pk_bwd, 1.0f, b->dxf + (size_t)r0 * C, C))
      tn_linear_backward(NULL, dhead, NULL, h->logits, xf, &w->head, R); /* dW only */
    else
      tn_linear_backward(b->dxf + (size_t)r0 * C, dhead, NULL, h->logits, xf, &w->head, R);
  }
  return TN_OK;
}
