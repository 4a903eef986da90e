/* critic.c - PPO's separate critic model with a value head (critic.h). Its forward runs the
 * decoder's layers without the LM head, then the final norm of every row; the value head reads
 * the final-normed rows that predict completion tokens, and its gradient goes back through the
 * final norm and the layers (tn_backward_body). The LM head is unused (its gradient stays 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rl/critic.h"
#include "rl/ppo.h"
#include "tensor/tensor.h"

tn_status tn_critic_load(tn_critic *c, const char *dir, int V, int S, int T, int Nmax, const tn_train_opts *to,
                         long steps, float lr) {
  memset(c, 0, sizeof *c);
  c->dir = dir;
  tn_train_opts mo = *to; /* the critic's folder, f32, fully trained, no adapter merged */
  mo.model = dir;
  mo.base_dtype = NULL;
  mo.lora_rank = 0;
  mo.base_adapter = NULL;
  TN_TRY(tn_tparams_load_model(&c->m, &mo));
  if (c->m->cfg.V != V)
    return tn_error(TN_ERR_ARG, "--critic %s: vocabulary of %d tokens, the policy's has %d (the critic reads the "
                    "policy's tokens: it needs the same tokenizer)", dir, c->m->cfg.V, V);
  TN_TRY(tn_state_create(&c->st, c->m, S, T, Nmax, true));
  TN_TRY(tn_bwd_create(&c->bw, c->m, c->st));
  tn_tparams_opts po = tn_train_opts_tparams(to, steps);
  po.lora_rank = 0;
  if (po.lr > 0) po.lr_end *= lr / po.lr;
  po.lr = lr;
  TN_TRY(tn_tparams_init(&c->tp, c->m, &po));
  tn_adamw_config ac = {.beta1 = po.beta1, .beta2 = po.beta2, .eps = po.adam_eps, .weight_decay = 0};
  TN_TRY(tn_vhead_init(&c->vh, c->m->cfg.C, &ac));
  if (!(c->rows = malloc(sizeof(int) * (Nmax > 0 ? Nmax : 1)))) return tn_error(TN_ERR_NOMEM, "critic rows");
  return TN_OK;
}

void tn_critic_free(tn_critic *c) {
  if (!c->m) return;
  tn_vhead_free(&c->vh);
  tn_tparams_free(&c->tp);
  tn_bwd_free(&c->bw);
  tn_state_free(c->st);
  tn_model_free(c->m);
  free(c->rows);
  memset(c, 0, sizeof *c);
}

tn_status tn_critic_values(tn_critic *c, int N, const int *tok, const int *pos, const int *seq, const int *tgt,
                           float *v, int *n_out) {
  const tn_config *cf = &c->m->cfg;
  TN_TRY(tn_forward(c->m, c->st, N, tok, pos, seq, NULL, NULL, 0));
  tn_rmsnorm_forward(c->st->xf, c->st->rstd_f, c->st->x_out, c->m->w.final_norm, N, cf->C, cf->eps, cf->norm_plus_one);
  int n = 0;
  for (int i = 0; i < N; i++)
    if (tgt[i] >= 0) c->rows[n++] = i;
  tn_vhead_forward(&c->vh, c->st->xf, c->rows, n, v);
  *n_out = n;
  return TN_OK;
}

tn_status tn_critic_backward(tn_critic *c, int N, const int *tok, const int *pos, const int *seq, const float *dv,
                             int n) {
  memset(c->bw.dxf, 0, sizeof(float) * (size_t)N * c->m->cfg.C);
  tn_vhead_backward(&c->vh, c->st->xf, c->rows, n, dv, c->bw.dxf);
  return tn_backward_body(c->m, c->st, &c->bw, tn_tparams_grads(&c->tp), N, tok, pos, seq);
}

tn_status tn_critic_update(tn_critic *c, tn_run *run, long step) {
  if (run->comm) TN_TRY(run->comm->sum_f32(run->comm, c->tp.tr.grad, c->tp.tr.ngrad));
  const float lr = tn_lr_at(&c->tp.sched, step);
  tn_adamw_step(&c->tp.opt, lr, 1.0f); /* no clipping, as the value head on the policy */
  memset(c->tp.tr.grad, 0, c->tp.tr.ngrad * sizeof(float));
  return tn_ppo_head_update(&c->vh, run, lr);
}

tn_status tn_critic_state(tn_critic *c, const char *dir, bool load) {
  char *sub = tn_path_join(dir, "critic");
  if (!sub) return tn_error(TN_ERR_NOMEM, "critic state");
  tn_status s = TN_OK;
  if (load) {
    char *sj = NULL;
    s = tn_ckpt_load(sub, tn_tparams_weights_file(&c->tp), &c->tp.tr, &c->tp.opt, &sj);
    free(sj);
    if (s == TN_OK) s = tn_vhead_load(&c->vh, sub);
  } else {
    s = tn_mkdirs(sub);
    if (s == TN_OK) s = tn_tparams_save(&c->tp, c->m, c->dir, sub, TN_ST_F32);
    if (s == TN_OK) s = tn_ckpt_write_state(sub, NULL, &c->tp.tr, &c->tp.opt, "{}");
    if (s == TN_OK) s = tn_vhead_save(&c->vh, sub);
  }
  if (s != TN_OK) s = tn_error_prefix(s, "--critic state in %s", sub);
  free(sub);
  return s;
}
