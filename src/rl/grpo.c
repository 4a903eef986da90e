/* grpo.c - GRPO: per step, B prompts each prefilled once and sampled G times
 * (the G samples share the prompt's KV cache), completions scored by the reward
 * library, group-relative advantages, the PPO-clipped policy loss with a KL term
 * to a frozen reference (a second copy for full fine-tuning), mu inner
 * iterations against the rollout's log-probs (pi_old), AdamW. Per-step metrics
 * (rewards per function, accuracy, KL, clipping, lengths, truncation, entropy,
 * throughput) go to metrics.jsonl / TensorBoard, spans to a Perfetto trace.
 * Log-probs everywhere are of softmax(logits / temperature), as the sampler's.
 * The run directory, resume, checkpoints, progress and the last update of a step are
 * the driver's (train/run.h), which calls this file's hooks. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"
#include "data/prompts.h"
#include "eval/eval.h"
#include "eval/run_eval.h"
#include "obs/obs.h"
#include "generate/generate.h"
#include "rl/advantage.h"
#include "rl/critic.h"
#include "rl/ppo.h"
#include "rl/grpo.h"
#include "rl/value_head.h"
#include "tunic/obs.h"
#include "tunic/rl.h"
#include "train/losses.h"
#include "train/run.h"
#include "train/train.h"

void tn_grpo_opts_default(tn_grpo_opts *o) {
  memset(o, 0, sizeof *o);
  tn_train_opts_default(&o->train);
  o->steps = 100;
  o->lr = 3e-6f;
  o->schedule = "constant";
  o->max_grad_norm = 0.1f;
  o->reward = "format_exact:1,format_approx:1,answer:2,numeric:1";
  o->loss_agg = "sequence-mean-token-mean";
  o->kl_estimator = "k3";
  o->scale_rewards = "group";
  o->num_generations = 4;
  o->num_iterations = 1;
  o->max_prompt_length = 256;
  o->max_tokens_to_generate = 128;
  o->top_k = 0;
  o->top_p = 1.0f;
  o->temperature = 0.9f;
  o->beta = 0.04f;
  o->epsilon = 0.2f;
  o->epsilon_high = -1.0f; /* = epsilon */
  o->reward_cmd_timeout = 30.0f;
  o->advantage_estimator = "grpo";
  o->max_num_gen_batches = 4;
  o->overlong_penalty = 1.0f;
  o->gamma = 1.0f;
  o->gae_lambda = 0.95f;
  o->clip_range_value = 0.2f;
  o->vf_coef = 0.1f;
  o->critic_lr = -1.0f;
  o->kl_method = "reward";
}

typedef struct {
  tn_grpo_opts o;
  tn_model *m, *ref;     /* ref: a frozen copy (full fine-tuning with beta > 0) */
  tn_tokenizer *tok;
  tn_prompt_set data;
  tn_rewards *rw;
  tn_grpo_cfg lc;
  tn_scale_rewards scale;
  tn_state *st;
  tn_bwd bw;
  tn_tparams tp;         /* trainable weights (full or LoRA: the reference is then the adapter off) */
  int S, T, mb;          /* sequences per step, capacity per sequence, sequences per micro-batch */
  bool share;            /* training forwards run each prompt once for its G completions (whole
                            groups per micro-batch; TN_NO_SHARED_PREFIX=1 turns it off) */
  float *logits, *dlogits, *row_lp, *row_dlp; // (Nmax, V) x2, (Nmax) x2
  int *tok_r, *pos_r, *seq_r, *tgt_r;       // (Nmax)
  tn_run *run;           /* the driver's: the prompt stream, the update */
  tn_trace *trace;
  FILE *dump_roll;       /* --dump-rollouts */
  bool opened;           /* trace and dump files opened (at the first step: after the manifest) */
  tn_manifest_file mf_models[2], mf_data[1];
  /* the step's figures for its metrics */
  double mean, std, acc, len, gen_tokens, trunc, entropy, t_roll, t_upd, train_rows;
  double *fn_mean, *fn_std; // (F)
  tn_grpo_stats gs;
  double eval_acc;       /* held-out accuracy (--eval-data), from the driver's eval hook */
  tn_adv_estimator est;
  tn_stream refill;      /* --dynamic-sampling: the refill prompts' order (its own seed) */
  int gen_batches, kept_groups; /* the step's generation rounds, groups with a reward spread */
  double pen_mean;       /* mean overlong penalty of the step's batch */
  /* PPO (est == TN_ADV_GAE) */
  bool ppo, kl_reward;
  tn_value_head vh;      /* on the policy's hidden state; with --critic: cr's */
  bool critic;
  tn_critic cr;          /* --critic DIR: a model of its own */
  float *dxf_add, *vbuf, *dvbuf; // (Nmax, C), (Nmax), (Nmax)
  int *vrows;                    // (Nmax)
  double v_loss, v_clipfrac, ent_sum, expl_var, ret_mean, val_mean; /* the step's (last inner iteration) */
} grpo_t;

/* One step's rollout, flattened: sequence s = prompt p(s) + completion s. */
typedef struct {
  tn_gen_result *res;    /* (S) */
  int *off;              /* (S+1) completion-token offsets */
  float *old_lp, *ref_lp, *cur_lp, *dlp; /* (tokens) */
  float *adv, *seq_mask, *total; /* (S) */
  float *per_fn;         /* (F, S) */
  int ntok;
  float *val_old, *val, *ret, *tok_adv; /* PPO (tokens): values at the rollout, of the last pass, returns, advantages */
} rollout_t;

static tn_status parse_enums(grpo_t *t) {
  const tn_grpo_opts *o = &t->o;
  t->lc.epsilon = o->epsilon;
  t->lc.epsilon_high = o->epsilon_high >= 0 ? o->epsilon_high : o->epsilon;
  t->lc.beta = o->beta;
  t->lc.max_len = o->max_tokens_to_generate;
  t->lc.sequence_ratio = o->gspo;
  if (o->loss_type) { /* TRL's loss_type: the aggregation that implements it (dapo and bnpo: one
                        process normalises by its tokens, several by the global batch's, as dapo) */
    if (!strcmp(o->loss_type, "grpo")) t->o.loss_agg = "sequence-mean-token-mean";
    else if (!strcmp(o->loss_type, "dr_grpo")) t->o.loss_agg = "sequence-mean-token-scale";
    else if (!strcmp(o->loss_type, "dapo") || !strcmp(o->loss_type, "bnpo")) t->o.loss_agg = "token-mean";
    else return tn_error(TN_ERR_ARG, "loss_type '%s': expected grpo, dr_grpo, dapo or bnpo", o->loss_type);
  }
  if (o->importance_sampling_level) { /* TRL's importance_sampling_level: sequence = GSPO */
    if (!strcmp(o->importance_sampling_level, "token")) t->o.gspo = false;
    else if (!strcmp(o->importance_sampling_level, "sequence")) t->o.gspo = true;
    else return tn_error(TN_ERR_ARG, "importance_sampling_level '%s': expected token or sequence", o->importance_sampling_level);
    t->lc.sequence_ratio = t->o.gspo;
  }
  TN_TRY(tn_adv_estimator_parse(o->advantage_estimator, &t->est));
  if (!strcmp(o->loss_agg, "sequence-mean-token-mean")) t->lc.agg = TN_AGG_SEQ_MEAN_TOKEN_MEAN;
  else if (!strcmp(o->loss_agg, "token-mean")) t->lc.agg = TN_AGG_TOKEN_MEAN;
  else if (!strcmp(o->loss_agg, "sequence-mean-token-scale")) t->lc.agg = TN_AGG_SEQ_MEAN_TOKEN_SCALE;
  else return tn_error(TN_ERR_ARG, "loss_agg '%s': expected sequence-mean-token-mean, token-mean or sequence-mean-token-scale", o->loss_agg);
  if (!strcmp(o->kl_estimator, "k1")) t->lc.kl = TN_KL_K1;
  else if (!strcmp(o->kl_estimator, "k3")) t->lc.kl = TN_KL_K3;
  else if (!strcmp(o->kl_estimator, "mse")) t->lc.kl = TN_KL_MSE;
  else return tn_error(TN_ERR_ARG, "kl_estimator '%s': expected k1, k3 or mse", o->kl_estimator);
  if (!strcmp(o->scale_rewards, "group")) t->scale = TN_SCALE_GROUP;
  else if (!strcmp(o->scale_rewards, "batch")) t->scale = TN_SCALE_BATCH;
  else if (!strcmp(o->scale_rewards, "none")) t->scale = TN_SCALE_NONE;
  else return tn_error(TN_ERR_ARG, "scale_rewards '%s': expected group, batch or none", o->scale_rewards);
  return TN_OK;
}

/* The answer-based rewards need a reference in every example: say which line lacks it
 * before any step runs (the reward library only knows the batch position). */
typedef struct { const char *field, *reward; } ref_check_ctx;
static tn_status check_ref_line(void *ctx, cJSON *j, const char *where) {
  const ref_check_ctx *c = ctx;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, c->field);
  if (!v) v = cJSON_GetObjectItemCaseSensitive(j, "expected_answer");
  bool ok = cJSON_IsString(v) || cJSON_IsNumber(v);
  cJSON_Delete(j);
  if (!ok)
    return tn_error(TN_ERR_FORMAT, "%s: no '%s' field (string or number), which the '%s' reward compares with", where,
                    c->field, c->reward);
  return TN_OK;
}

static tn_status ppo_ckpt(void *ctx, const char *dir, bool load);
static tn_status setup(void *ctx, tn_run *run, tn_manifest_info *mi) {
  grpo_t *t = ctx;
  tn_grpo_opts *o = &t->o;
  if (!o->model || !o->data || !o->out) return tn_error(TN_ERR_ARG, "--model, --data and --out are required");
  TN_TRY(tn_train_opts_precision(&o->train));
  if (o->batch_size <= 0 || o->num_iterations <= 0 || o->max_tokens_to_generate <= 0 || o->max_prompt_length <= 0)
    return tn_error(TN_ERR_ARG, "batch_size, num_iterations, max_tokens_to_generate and max_prompt_length must be positive");
  if ((int64_t)o->batch_size * o->num_generations * (o->max_prompt_length + o->max_tokens_to_generate) > INT32_MAX)
    return tn_error(TN_ERR_ARG, "batch_size x num_generations x (max_prompt_length + max_tokens_to_generate) must stay "
                    "below 2^31 token rows per step");
  TN_TRY(parse_enums(t));
  t->ppo = t->est == TN_ADV_GAE;
  if (o->num_generations < (t->ppo ? 1 : 2))
    return tn_error(TN_ERR_ARG, "num_generations must be at least 2 (advantages are relative to the group)");
  if (t->ppo) {
    if (!strcmp(o->kl_method, "reward")) t->kl_reward = true;
    else if (strcmp(o->kl_method, "loss")) return tn_error(TN_ERR_ARG, "kl_method '%s': expected reward or loss", o->kl_method);
    if (t->kl_reward) t->lc.beta = 0; /* the KL is in the rewards; the loss still reports it */
    if (t->lc.sequence_ratio) return tn_error(TN_ERR_ARG, "PPO's per-token advantages need the token-level ratio (no gspo)");
    if (!(o->gamma >= 0 && o->gamma <= 1) || !(o->gae_lambda >= 0 && o->gae_lambda <= 1))
      return tn_error(TN_ERR_ARG, "gamma %g and gae_lambda %g must be in [0, 1]", o->gamma, o->gae_lambda);
  }
  if (o->dynamic_sampling && o->max_num_gen_batches < 1)
    return tn_error(TN_ERR_ARG, "max_num_gen_batches must be at least 1 with dynamic_sampling");
  if (o->overlong_buffer_len < 0 || o->overlong_buffer_len > o->max_tokens_to_generate)
    return tn_error(TN_ERR_ARG, "overlong_buffer_len %d must be in [0, max_tokens_to_generate = %d]", o->overlong_buffer_len,
                    o->max_tokens_to_generate);
  TN_TRY(tn_tparams_load_model(&t->m, &o->train));
  if (o->beta > 0 && o->lora_rank <= 0) TN_TRY(tn_tparams_load_ref(&t->ref, &o->train));
  TN_TRY(tn_tokenizer_load(o->tokenizer ? o->tokenizer : o->model, &t->tok));
  if (o->chat_template) TN_TRY(tn_tokenizer_set_chat_template(t->tok, o->chat_template));
  tn_prompt_opts po = {.system_prompt = o->no_system_prompt ? NULL : (o->system_prompt ? o->system_prompt : TN_DEFAULT_SYSTEM_PROMPT),
                       .no_chat = o->no_chat, .max_prompt_len = o->max_prompt_length, .field_map = o->field_map};
  TN_TRY(tn_chat_format_parse(o->chat_format, &po.chat));
  TN_TRY(tn_prompts_load(&t->data, o->data, t->tok, &po));
  if (t->data.n_truncated) /* cut from the left: the model sees the end of the prompt without its beginning */
    tn_warn("%s: %d of %d prompts are longer than max_prompt_length (%d tokens) and lose their first tokens; "
            "raise --max-prompt-length to keep them whole", o->data, t->data.n_truncated, t->data.n, o->max_prompt_length);
  tn_reward_config rc;
  tn_reward_config_default(&rc);
  rc.reward_cmd = o->reward_cmd;
  rc.reward_cmd_timeout = o->reward_cmd_timeout;
  rc.rubric_path = o->rubric;
  TN_TRY(tn_rewards_create(&t->rw, o->reward, &rc));
  for (int i = 0; i < o->n_reward_fns; i++) { /* rewards written in C (library callers) */
    const tn_reward_fn *u = &o->reward_fns[i];
    if (!u->fn || !u->name || !*u->name) return tn_error(TN_ERR_ARG, "reward_fns[%d]: a name and a function are required", i);
    if (!isfinite(u->weight)) return tn_error(TN_ERR_ARG, "reward_fns[%d] (%s): weight %g is not finite", i, u->name, u->weight);
    TN_TRY(tn_rewards_add_callback(t->rw, u->name, u->weight, u->fn, u->user));
  }
  if (tn_rewards_count(t->rw) == 0) return tn_error(TN_ERR_ARG, "no reward: give --reward (or reward functions)");
  for (int f = 0; f < tn_rewards_count(t->rw); f++) {
    const char *nm = tn_rewards_name(t->rw, f);
    if (!strcmp(nm, "answer") || !strcmp(nm, "numeric")) {
      ref_check_ctx cc = {.field = rc.answer_field ? rc.answer_field : "answer", .reward = nm};
      TN_TRY(tn_data_read(o->data, TN_DATA_PROMPTS | TN_DATA_QUIET, o->field_map, check_ref_line, &cc));
      break;
    }
  }
  t->S = o->batch_size * o->num_generations;
  t->T = o->max_prompt_length + o->max_tokens_to_generate;
  t->mb = o->micro_batch > 0 && o->micro_batch < t->S ? o->micro_batch : t->S;
  const int Nmax = t->mb * t->T, V = t->m->cfg.V;
  t->critic = t->ppo && o->critic;
  if (o->critic && !t->ppo) return tn_error(TN_ERR_ARG, "--critic is for tunic ppo");
  /* the critic reads the policy's rows: whole sequences (no shared prompt rows in another state) */
  t->share = t->mb % o->num_generations == 0 && tn_train_prefix_sharing() && !t->critic;
  TN_TRY(tn_state_create(&t->st, t->m, t->mb + (t->share ? t->mb / o->num_generations : 0), t->T, Nmax, true));
  TN_TRY(tn_bwd_create(&t->bw, t->m, t->st));
  /* AdamW betas / eps and LoRA dropout are not GRPO options: the shared defaults (0.9, 0.999, 1e-8, 0) */
  tn_tparams_opts to = tn_train_opts_tparams(&o->train, o->steps);
  TN_TRY(tn_tparams_init(&t->tp, t->m, &to));
  t->logits = tn_alloc(sizeof(float) * (size_t)Nmax * V);
  t->dlogits = tn_alloc(sizeof(float) * (size_t)Nmax * V);
  t->row_lp = tn_alloc(sizeof(float) * Nmax);
  t->row_dlp = tn_alloc(sizeof(float) * Nmax);
  t->tok_r = malloc(sizeof(int) * Nmax);
  t->pos_r = malloc(sizeof(int) * Nmax);
  t->seq_r = malloc(sizeof(int) * Nmax);
  t->tgt_r = malloc(sizeof(int) * Nmax);
  const int F = tn_rewards_count(t->rw);
  t->fn_mean = calloc(F + 1, sizeof(double));
  t->fn_std = calloc(F + 1, sizeof(double));
  if (!t->logits || !t->dlogits || !t->row_lp || !t->row_dlp || !t->tok_r || !t->pos_r || !t->seq_r || !t->tgt_r ||
      !t->fn_mean || !t->fn_std)
    return tn_error(TN_ERR_NOMEM, "out of memory for %d rows x %d logits", Nmax, V);
  TN_TRY(tn_stream_init(&t->refill, t->data.n, o->seed ^ 0x5DEECE66DULL));
  if (t->ppo) {
    tn_adamw_config ac = {.beta1 = o->beta1, .beta2 = o->beta2, .eps = o->adam_eps, .weight_decay = 0};
    if (t->critic)
      TN_TRY(tn_critic_load(&t->cr, o->critic, V, t->mb, t->T, Nmax, &o->train, o->steps,
                            o->critic_lr >= 0 ? o->critic_lr : o->lr));
    else TN_TRY(tn_vhead_init(&t->vh, t->m->cfg.C, &ac));
    t->dxf_add = tn_alloc(sizeof(float) * (size_t)Nmax * t->m->cfg.C);
    t->vbuf = malloc(sizeof(float) * Nmax);
    t->dvbuf = malloc(sizeof(float) * Nmax);
    t->vrows = malloc(sizeof(int) * Nmax);
    if (!t->dxf_add || !t->vbuf || !t->dvbuf || !t->vrows) return tn_error(TN_ERR_NOMEM, "PPO buffers of %d rows", Nmax);
    run->ckpt_state = ppo_ckpt;
    run->ckpt_ctx = t;
  }
  if (run->world > 1 && (o->dump_grads || o->dump_rollouts)) /* each rank holds a share of them */
    return tn_error(TN_ERR_ARG, "--dump-grads and --dump-rollouts are for one process (launched on %d ranks)", run->world);
  t->run = run;
  tn_run_describe(run, &o->train, t->ppo ? "ppo" : "grpo", t->m, &t->tp, t->data.n, o->eval_data != NULL, o->batch_size, 0);
  t->mf_models[0] = (tn_manifest_file){"model", o->model};
  t->mf_data[0] = (tn_manifest_file){"train", o->data};
  t->mf_models[1] = (tn_manifest_file){"critic", o->critic};
  *mi = (tn_manifest_info){.command = t->ppo ? "ppo" : "grpo", .models = t->mf_models, .nmodels = t->critic ? 2 : 1, .data = t->mf_data, .ndata = 1};
  printf("%s: %d prompts, %d steps of %d prompts x %d generations, beta %g, %zu trainable parameters\n", t->ppo ? "ppo" : "grpo", t->data.n,
         o->steps, o->batch_size, o->num_generations, o->beta, t->tp.opt.total);
  fflush(stdout);
  return TN_OK;
}

/* the prompt at stream position pos (the driver's seeded order) */
static const tn_prompt *prompt_at(grpo_t *t, long pos) { return &t->data.p[tn_stream_at(&t->run->stream, pos)]; }

/* rows of sequences [s0, s1): prompt + completion; target = next completion token.
 * Sharing: each prompt's first n-1 tokens once, in slot mb + its index in the
 * micro-batch, and each completion's slot holds the prompt's last token and the
 * completion, reading the prompt's keys/values from that slot (tn_state_train_prefix). */
static int fill_rows(grpo_t *t, const rollout_t *r, const tn_prompt *const *pr, int s0, int s1) {
  int N = 0;
  const int G = t->o.num_generations;
  if (t->share) {
    tn_state_train_prefix_clear(t->st);
    for (int g = s0 / G; g < s1 / G; g++) {
      const tn_prompt *p = pr[g];
      const int ps = t->mb + g - s0 / G;
      for (int k = 0; k + 1 < p->n; k++, N++) {
        t->tok_r[N] = p->ids[k];
        t->pos_r[N] = k;
        t->seq_r[N] = ps;
        t->tgt_r[N] = -1;
      }
      for (int s = g * G; s < (g + 1) * G; s++) {
        const tn_gen_result *c = &r->res[s];
        const int L = p->n + c->n;
        tn_state_train_prefix(t->st, s - s0, ps, p->n - 1);
        for (int k = p->n - 1; k < L; k++, N++) {
          t->tok_r[N] = k < p->n ? p->ids[k] : c->ids[k - p->n];
          t->pos_r[N] = k;
          t->seq_r[N] = s - s0;
          t->tgt_r[N] = k + 1 < L ? c->ids[k + 1 - p->n] : -1;
        }
      }
    }
    return N;
  }
  for (int s = s0; s < s1; s++) {
    const tn_prompt *p = pr[s / G];
    const tn_gen_result *g = &r->res[s];
    const int L = p->n + g->n;
    for (int k = 0; k < L; k++, N++) {
      t->tok_r[N] = k < p->n ? p->ids[k] : g->ids[k - p->n];
      t->pos_r[N] = k;
      t->seq_r[N] = s - s0;
      t->tgt_r[N] = k + 1 >= p->n && k + 1 < L ? g->ids[k + 1 - p->n] : -1;
    }
  }
  return N;
}

/* completion log-probs of sequences [s0, s1) under model m into lp (flat token layout);
 * optional entropy sum of those positions. */
static tn_status seq_logprobs(grpo_t *t, const tn_model *m, const rollout_t *r, const tn_prompt *const *pr, int s0, int s1,
                              float *lp, double *entropy, int *nrows) {
  const int V = t->m->cfg.V;
  const float T = t->o.temperature > 0 ? t->o.temperature : 1.0f;
  int N = fill_rows(t, r, pr, s0, s1);
  if (nrows) *nrows = N;
  TN_TRY(tn_forward(m, t->st, N, t->tok_r, t->pos_r, t->seq_r, t->logits, NULL, N));
  tn_token_logprobs(t->row_lp, t->logits, t->tgt_r, N, V, T);
  int w = r->off[s0];
  double ent = 0;
  for (int i = 0; i < N; i++) {
    if (t->tgt_r[i] < 0) continue;
    lp[w++] = t->row_lp[i];
    if (entropy) {
      const float *z = t->logits + (size_t)i * V;
      float mx = -INFINITY;
      for (int v = 0; v < V; v++) mx = fmaxf(mx, z[v] / T);
      double se = 0, sez = 0;
      for (int v = 0; v < V; v++) { double e = exp(z[v] / T - mx); se += e; sez += e * (z[v] / T - mx); }
      ent += log(se) - sez / se;
    }
  }
  if (entropy) *entropy += ent;
  return TN_OK;
}

/* ---- PPO: the value head on the rows of the last forward, GAE, value loss, entropy bonus ---- */

/* weight of each token in the value loss and entropy bonus: 1 / kept tokens (a token mean) */
static double ppo_token_weight(const grpo_t *t, const rollout_t *r) {
  long kept = 0;
  for (int i = 0; i < t->S; i++) kept += r->seq_mask[i] != 0.0f ? r->off[i + 1] - r->off[i] : 0;
  if (t->run->world > 1) kept = t->lc.kept_tok_global; /* the global batch's */
  return kept > 0 ? 1.0 / (double)kept : 0.0;
}

/* values of the completion tokens of sequences [s0, ...) of the forward just run (rows in t->*_r,
 * final-normed hidden states in the state) into v (flat token layout) */
static tn_status ppo_values(grpo_t *t, const rollout_t *r, int s0, int N, float *v, int *nv) {
  return tn_ppo_values(t->critic ? &t->cr : NULL, &t->vh, t->st->xf, N, t->tok_r, t->pos_r, t->seq_r, t->tgt_r, t->vrows,
                       v + r->off[s0], nv);
}

/* GAE per sequence over per-token rewards, advantages whitened over the global batch's tokens */
static tn_status ppo_advantages(grpo_t *t, rollout_t *r) {
  const int S = t->S, n = r->ntok;
  float *rw = malloc(sizeof(float) * (n + 1));
  r->ret = malloc(sizeof(float) * (n + 1));
  r->tok_adv = malloc(sizeof(float) * (n + 1));
  if (!rw || !r->ret || !r->tok_adv) { free(rw); return tn_error(TN_ERR_NOMEM, "PPO: %d tokens", n); }
  for (int s = 0; s < S; s++) {
    const int a = r->off[s], b = r->off[s + 1];
    for (int k = a; k < b; k++) rw[k] = t->kl_reward && r->ref_lp ? -t->o.beta * (r->old_lp[k] - r->ref_lp[k]) : 0.0f;
    if (b > a) rw[b - 1] += r->total[s];
  }
  tn_ppo_figs f = {0};
  tn_status st = tn_ppo_gae_batch(t->run, S, r->off, rw, r->val_old, t->o.gamma, t->o.gae_lambda, r->tok_adv, r->ret, &f);
  free(rw);
  t->expl_var = f.expl_var;
  t->ret_mean = f.ret_mean;
  t->val_mean = f.val_mean;
  tn_ppo_seq_adv(S, r->off, r->tok_adv, r->adv);
  t->lc.token_adv = r->tok_adv;
  return st;
}

/* the value loss's gradient into the hidden states (t->bw.dxf_add) and the head, the entropy
 * bonus's into dlogits, for the micro-batch of sequences from s0 whose forward was just run */
static tn_status ppo_backward(grpo_t *t, const rollout_t *r, int s0, int N) {
  const int C = t->m->cfg.C, V = t->m->cfg.V;
  const float T = t->o.temperature > 0 ? t->o.temperature : 1.0f;
  const double w = ppo_token_weight(t, r);
  int n = 0;
  TN_TRY(ppo_values(t, r, s0, N, r->val, &n));
  tn_ppo_value_loss(r->off, r->seq_mask, s0, n, w, r->val, r->val_old, r->ret, t->o.clip_range_value, t->o.vf_coef, t->vbuf,
                    t->dvbuf, &t->v_loss, &t->v_clipfrac);
  TN_TRY(tn_ppo_values_backward(t->critic ? &t->cr : NULL, &t->vh, t->st->xf, N, C, t->tok_r, t->pos_r, t->seq_r, t->vrows,
                                n, t->dvbuf, t->dxf_add, &t->bw));
  t->ent_sum += tn_ppo_entropy_bonus(t->logits, t->dlogits, t->vrows, t->vbuf, n, V, T, t->o.ent_coef);
  return TN_OK;
}

static tn_status ppo_ckpt(void *ctx, const char *dir, bool load) {
  grpo_t *t = ctx;
  return tn_ppo_values_state(t->critic ? &t->cr : NULL, &t->vh, dir, load);
}

static tn_status ppo_finish(void *ctx, tn_run *r) { /* RUN/critic/ or RUN/value_head.safetensors */
  grpo_t *t = ctx;
  return t->ppo && r->rank == 0 ? tn_ppo_values_state(t->critic ? &t->cr : NULL, &t->vh, r->out, false) : TN_OK;
}

/* backward of the micro-batch whose rows are in t->*_r and logits in t->logits */
static tn_status mb_backward(grpo_t *t, const rollout_t *r, int s0, int N) {
  const int V = t->m->cfg.V;
  const float T = t->o.temperature > 0 ? t->o.temperature : 1.0f;
  int w = r->off[s0];
  for (int i = 0; i < N; i++) t->row_dlp[i] = t->tgt_r[i] >= 0 ? r->dlp[w++] : 0.0f;
  tn_logp_backward(t->dlogits, t->logits, t->tgt_r, t->row_dlp, N, V, T);
  t->bw.dxf_add = NULL;
  if (t->ppo) TN_TRY(ppo_backward(t, r, s0, N));
  return tn_backward(t->m, t->st, &t->bw, tn_tparams_grads(&t->tp), t->dlogits, t->logits, N, t->tok_r, t->pos_r, t->seq_r);
}

static void free_rollout(rollout_t *r, int S) {
  if (r->res) tn_gen_results_free(r->res, S);
  free(r->res); free(r->off); free(r->old_lp); free(r->ref_lp); free(r->cur_lp); free(r->dlp);
  free(r->adv); free(r->seq_mask); free(r->total); free(r->per_fn);
  free(r->val_old); free(r->val); free(r->ret); free(r->tok_adv);
  memset(r, 0, sizeof *r);
}

static cJSON *float_array(const float *x, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
  return a;
}

/* --dump-rollouts: one JSON line per completion of this step */
static tn_status dump_rollout(grpo_t *t, long step, const rollout_t *r, const tn_prompt *const *pr, char **texts,
                              const float *correct, const float *pen) {
  const int G = t->o.num_generations, F = tn_rewards_count(t->rw);
  for (int i = 0; i < t->S; i++) {
    const tn_prompt *p = pr[i / G];
    const tn_gen_result *g = &r->res[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", (double)(step + 1));
    cJSON_AddNumberToObject(o, "seq", i);
    cJSON_AddNumberToObject(o, "group", i / G);
    cJSON_AddNumberToObject(o, "sample", i % G);
    cJSON_AddNumberToObject(o, "prompt_index", (double)(p - t->data.p));
    cJSON_AddItemToObject(o, "prompt_ids", cJSON_CreateIntArray((const int *)p->ids, p->n));
    cJSON_AddItemToObject(o, "completion_ids", cJSON_CreateIntArray(g->ids, g->n));
    cJSON_AddStringToObject(o, "completion", texts[i] ? texts[i] : "");
    cJSON_AddStringToObject(o, "finish", g->finish == TN_FINISH_LENGTH ? "length" : g->finish == TN_FINISH_STOP_ID ? "stop_id" : "stop_fn");
    cJSON *rw = cJSON_AddObjectToObject(o, "rewards");
    for (int f = 0; f < F; f++) cJSON_AddNumberToObject(rw, tn_rewards_name(t->rw, f), r->per_fn[f * t->S + i]);
    cJSON_AddNumberToObject(o, "total", r->total[i]); /* the weighted rewards + overlong_penalty */
    cJSON_AddNumberToObject(o, "overlong_penalty", pen[i]);
    cJSON_AddNumberToObject(o, "advantage", r->adv[i]);
    cJSON_AddNumberToObject(o, "seq_mask", r->seq_mask[i]);
    cJSON_AddNumberToObject(o, "correct", correct[i]);
    const int a = r->off[i], n = r->off[i + 1] - r->off[i];
    cJSON_AddItemToObject(o, "old_logprobs", float_array(r->old_lp + a, n));
    if (r->ref_lp) cJSON_AddItemToObject(o, "ref_logprobs", float_array(r->ref_lp + a, n));
    cJSON_AddItemToObject(o, "logprobs", float_array(r->cur_lp + a, n)); /* policy, last inner iteration */
    if (r->tok_adv) { /* PPO */
      cJSON_AddItemToObject(o, "old_values", float_array(r->val_old + a, n));
      cJSON_AddItemToObject(o, "values", float_array(r->val + a, n)); /* last inner iteration */
      cJSON_AddItemToObject(o, "returns", float_array(r->ret + a, n));
      cJSON_AddItemToObject(o, "token_advantages", float_array(r->tok_adv + a, n));
    }
    char *line = tn_json_print_valid(o, false); /* prompts from the data may hold invalid UTF-8 */
    cJSON_Delete(o);
    if (!line) return TN_ERR_NOMEM;
    fprintf(t->dump_roll, "%s\n", line);
    free(line);
  }
  if (fflush(t->dump_roll) != 0) return tn_error(TN_ERR_IO, "%s: write failed", t->o.dump_rollouts);
  return TN_OK;
}

/* --dump-grads DIR: DIR/step_N.safetensors, one 1-D f32 tensor per trainable row */
static tn_status dump_grads(grpo_t *t, long step) { return tn_tparams_dump_grads(&t->tp, t->o.dump_grads, step + 1); }

/* PPO --dump-grads: the value head's gradient (first inner iteration) as DIR/vhead_step_N.safetensors */
static tn_status dump_vhead_grad(grpo_t *t, long step) {
  const tn_value_head *vh = t->critic ? &t->cr.vh : &t->vh;
  if (t->critic) { /* DIR/critic/step_N.safetensors: the critic model's gradient */
    char *cd = tn_path_join(t->o.dump_grads, "critic");
    tn_status s = cd ? tn_tparams_dump_grads(&t->cr.tp, cd, step + 1) : TN_ERR_NOMEM;
    free(cd);
    TN_TRY(s);
  }
  const tn_st_entry e[1] = {{"v_head", TN_ST_F32, 1, {vh->C + 1}, vh->g}};
  char name[64];
  snprintf(name, sizeof name, "vhead_step_%ld.safetensors", step + 1);
  char *path = tn_path_join(t->o.dump_grads, name);
  if (!path) return TN_ERR_NOMEM;
  tn_status s = tn_st_write(path, e, 1, NULL);
  free(path);
  return s;
}

/* several ranks: the step's figures over the global batch (sums over the ranks); rank 0
 * writes them. Means over kept tokens (kl, ratio, clip fractions) weighted by each rank's. */
static tn_status global_figures(grpo_t *t, const rollout_t *r, tn_grpo_stats *gs, double correct, long gen_all, long gen_tokens,
                                int truncated, double entropy, long train_tokens, tn_step_out *out) {
  const int S = t->S, F = tn_rewards_count(t->rw);
  double kept = 0, kseq = 0;
  for (int i = 0; i < S; i++)
    if (r->seq_mask[i] != 0.0f) { kept += r->off[i + 1] - r->off[i]; kseq += r->off[i + 1] > r->off[i]; }
  const double nclip = t->lc.sequence_ratio ? kseq : kept;
  enum { N0 = 18 };
  double *v = calloc(N0 + 2 * (size_t)F, sizeof(double));
  if (!v) return tn_error(TN_ERR_NOMEM, "grpo step figures");
  for (int i = 0; i < S; i++) { v[0] += r->total[i]; v[1] += (double)r->total[i] * r->total[i]; }
  v[2] = correct; v[3] = (double)gen_tokens; v[4] = truncated; v[5] = entropy; v[6] = r->ntok;
  v[7] = (double)train_tokens; v[8] = gs->loss; v[9] = gs->kl_mean * kept; v[10] = gs->clip_low * nclip;
  v[11] = gs->clip_high * nclip; v[12] = gs->clip_region * nclip; v[13] = nclip;
  v[14] = t->v_loss; v[15] = t->v_clipfrac; v[16] = t->ent_sum; v[17] = (double)gen_all; /* PPO's: token means already */
  for (int f = 0; f < F; f++)
    for (int i = 0; i < S; i++) {
      const double x = r->per_fn[f * S + i];
      v[N0 + 2 * f] += x;
      v[N0 + 2 * f + 1] += x * x;
    }
  tn_status s = tn_run_sum(t->run, v, N0 + 2 * F);
  if (s == TN_OK) {
    const double n = (double)S * t->run->world, kt = t->lc.kept_tok_global > 0 ? (double)t->lc.kept_tok_global : 1;
    const double nc = v[13] > 0 ? v[13] : 1;
    t->mean = v[0] / n;
    t->std = sqrt(fmax(0, (v[1] - v[0] * v[0] / n) / (n - 1)));
    for (int f = 0; f < F; f++) {
      t->fn_mean[f] = v[N0 + 2 * f] / n;
      t->fn_std[f] = sqrt(fmax(0, (v[N0 + 2 * f + 1] - v[N0 + 2 * f] * v[N0 + 2 * f] / n) / (n - 1)));
    }
    t->acc = v[2] / n;
    gs->loss = v[8];
    gs->kl_mean = v[9] / kt;
    gs->clip_low = v[10] / nc;
    gs->clip_high = v[11] / nc;
    gs->clip_region = v[12] / nc;
    t->gs = *gs;
    t->len = v[3] / n;
    t->gen_tokens = v[17]; /* every round's, for the rollout speed */
    t->v_loss = v[14];
    t->v_clipfrac = v[15];
    t->ent_sum = v[16];
    t->trunc = v[4] / n;
    t->entropy = v[6] > 0 ? v[5] / v[6] : 0;
    t->train_rows = v[7];
    out->loss = v[8];
    out->tokens = v[7];
    snprintf(out->extra, sizeof out->extra, "reward %.3f acc %.3f", t->mean, t->acc);
  }
  free(v);
  return s;
}

/* One generation round: nb groups of G completions of prompts pr, decoded, scored (rewards,
 * the overlong penalty added to the total, correct flags). */
typedef struct {
  int n;                 /* nb * G */
  tn_gen_result *res;    // (n)
  char **texts;          // (n)
  float *per_fn;         // (F, n)
  float *total, *corr, *pen; // (n)
  long gen_tokens;
} round_t;

static void round_free(round_t *q) {
  if (q->res) tn_gen_results_free(q->res, q->n);
  for (int i = 0; q->texts && i < q->n; i++) free(q->texts[i]);
  free(q->res); free(q->texts); free(q->per_fn); free(q->total); free(q->corr); free(q->pen);
  memset(q, 0, sizeof *q);
}

static tn_status round_run(grpo_t *t, long step, int round, const tn_prompt *const *pr, int nb, int first_prompt,
                           round_t *q) {
  const tn_grpo_opts *o = &t->o;
  const int G = o->num_generations, n = nb * G, F = tn_rewards_count(t->rw);
  memset(q, 0, sizeof *q);
  q->n = n;
  q->res = calloc(n, sizeof *q->res);
  q->texts = calloc(n, sizeof *q->texts);
  q->per_fn = malloc(sizeof(float) * ((size_t)F * n + 1));
  q->total = malloc(sizeof(float) * n);
  q->corr = calloc(n, sizeof(float));
  q->pen = calloc(n, sizeof(float));
  const int **pids = malloc(sizeof *pids * nb);
  int *plen = malloc(sizeof *plen * nb);
  const char **ptexts = calloc(n, sizeof(char *));
  const cJSON **exs = calloc(n, sizeof(cJSON *));
  tn_status s = TN_OK;
  if (!q->res || !q->texts || !q->per_fn || !q->total || !q->corr || !q->pen || !pids || !plen || !ptexts || !exs)
    s = tn_error(TN_ERR_NOMEM, "out of memory for %d completions", n);
  for (int b = 0; b < nb && s == TN_OK; b++) { pids[b] = pr[b]->ids; plen[b] = pr[b]->n; }
  /* ---- rollout ---- */
  double t0 = tn_now();
  if (s == TN_OK) {
    tn_gen_opts go;
    tn_gen_opts_default(&go);
    go.max_new_tokens = o->max_tokens_to_generate;
    go.temperature = o->temperature;
    go.top_k = o->top_k;
    go.top_p = o->top_p;
    go.n = G;
    go.seed = (o->seed * 7919ULL + (uint64_t)step) ^ (0x9E3779B97F4A7C15ULL * (uint64_t)round); /* round 0: as before */
    go.first_prompt = first_prompt; /* samples seeded by the prompt's place in the global step: independent of the ranks */
    s = tn_generate(t->m, pids, plen, nb, &go, q->res);
    if (s != TN_OK) { free(q->res); q->res = NULL; }
  }
  tn_trace_span(t->trace, "rollout", t0, tn_now());
  /* ---- rewards ---- */
  t0 = tn_now();
  for (int i = 0; i < n && s == TN_OK; i++) {
    size_t len;
    q->gen_tokens += q->res[i].n;
    s = tn_tokenizer_decode(t->tok, q->res[i].ids, q->res[i].n, true, &q->texts[i], &len);
    ptexts[i] = pr[i / G]->text;
    exs[i] = pr[i / G]->json;
  }
  if (s == TN_OK) s = tn_rewards_compute(t->rw, n, ptexts, (const char *const *)q->texts, exs, q->per_fn, q->total);
  for (int i = 0; i < n && s == TN_OK && o->overlong_buffer_len > 0; i++) { /* DAPO: part of the reward */
    q->pen[i] = tn_overlong_penalty(q->res[i].n, o->max_tokens_to_generate, o->overlong_buffer_len, o->overlong_penalty);
    q->total[i] += q->pen[i];
  }
  tn_extract_config ec;
  tn_extract_config_default(&ec);
  for (int i = 0; i < n && s == TN_OK; i++) {
    char ref[256], ans[256];
    if (tn_prompt_reference(pr[i / G], ref, sizeof ref)) {
      tn_extract_answer(q->texts[i], &ec, ans, sizeof ans);
      q->corr[i] = tn_answers_equal(ans, ref) ? 1.0f : 0.0f;
    }
  }
  tn_trace_span(t->trace, "reward", t0, tn_now());
  free(pids); free(plen); free(ptexts); free(exs);
  return s;
}

/* a group whose totals are all equal has no signal (DAPO's dynamic sampling drops it) */
static bool group_flat(const float *total, int G) {
  for (int i = 1; i < G; i++)
    if (total[i] != total[0]) return false;
  return true;
}

/* Several ranks, dynamic sampling: the global batch's kept groups j = rank x B ... are not all
 * rolled out where they are trained. Each completion travels as one record of doubles (exact for
 * ids, lengths and floats): n, finish, total, correct, penalty, the F rewards, then ids and
 * log-probs padded to the generation limit; the owner of a moved group writes it at its kept slot
 * of a zeroed array of the global batch, which is summed over the ranks. */
typedef struct {
  grpo_t *t;
  round_t *q;            // (cap) this rank's share of each round
  const int *take;       // (B x world) kept groups, (round x B x world + global group)
  rollout_t *r;
  char **texts;
  float *corr, *pen;
} batch_move;

/* kept slot j (global) of this rank's batch from round group take[j] held here (q) or in rec */
static tn_status move_group(const batch_move *mv, int j, const double *rec) {
  grpo_t *t = mv->t;
  const int B = t->o.batch_size, G = t->o.num_generations, S = t->S, F = tn_rewards_count(t->rw);
  const int world = t->run->world, rank = t->run->rank, BW = B * world, Tm = t->o.max_tokens_to_generate;
  const int k = mv->take[j] / BW, g = mv->take[j] % BW, dj = j - rank * B, R = 5 + F + 2 * Tm;
  for (int i = 0; i < G; i++) {
    const int dst = dj * G + i;
    if (!rec) { /* rolled out here: moved */
      round_t *q = &mv->q[k];
      const int src = (g - rank * B) * G + i;
      mv->r->res[dst] = q->res[src];
      memset(&q->res[src], 0, sizeof q->res[src]);
      mv->texts[dst] = q->texts[src];
      q->texts[src] = NULL;
      for (int f = 0; f < F; f++) mv->r->per_fn[f * S + dst] = q->per_fn[f * q->n + src];
      mv->r->total[dst] = q->total[src];
      mv->corr[dst] = q->corr[src];
      mv->pen[dst] = q->pen[src];
      continue;
    }
    const double *x = rec + ((size_t)j * G + i) * R;
    tn_gen_result *gr = &mv->r->res[dst];
    gr->n = (int)x[0];
    gr->finish = (tn_finish)(int)x[1];
    mv->r->total[dst] = (float)x[2];
    mv->corr[dst] = (float)x[3];
    mv->pen[dst] = (float)x[4];
    for (int f = 0; f < F; f++) mv->r->per_fn[f * S + dst] = (float)x[5 + f];
    gr->ids = malloc(sizeof(int) * (gr->n + 1));
    gr->logprobs = malloc(sizeof(float) * (gr->n + 1));
    if (!gr->ids || !gr->logprobs) return tn_error(TN_ERR_NOMEM, "out of memory for a completion");
    for (int c = 0; c < gr->n; c++) { gr->ids[c] = (int)x[5 + F + c]; gr->logprobs[c] = (float)x[5 + F + Tm + c]; }
    size_t len;
    TN_TRY(tn_tokenizer_decode(t->tok, gr->ids, gr->n, true, &mv->texts[dst], &len));
  }
  return TN_OK;
}

/* this rank's kept slots from the global list take: moved locally, or sent through one sum */
static tn_status exchange_groups(const batch_move *mv) {
  grpo_t *t = mv->t;
  const int B = t->o.batch_size, G = t->o.num_generations, F = tn_rewards_count(t->rw);
  const int world = t->run->world, rank = t->run->rank, BW = B * world, Tm = t->o.max_tokens_to_generate;
  const int R = 5 + F + 2 * Tm;
  bool remote = false; /* the same answer on every rank: the sum below is called by all or none */
  for (int j = 0; j < BW; j++) remote |= (mv->take[j] % BW) / B != j / B;
  double *rec = NULL;
  tn_status s = TN_OK;
  if (remote) {
    const size_t n = (size_t)BW * G * R;
    if (n > INT32_MAX) return tn_error(TN_ERR_LIMIT, "dynamic sampling: %zu values to exchange", n);
    if (!(rec = calloc(n, sizeof *rec))) return tn_error(TN_ERR_NOMEM, "dynamic sampling: %zu values", n);
    for (int j = 0; j < BW; j++) {
      const int k = mv->take[j] / BW, g = mv->take[j] % BW;
      if (g / B != rank || j / B == rank) continue; /* not ours to send */
      for (int i = 0; i < G; i++) {
        const round_t *q = &mv->q[k];
        const int src = (g - rank * B) * G + i;
        const tn_gen_result *gr = &q->res[src];
        double *x = rec + ((size_t)j * G + i) * R;
        x[0] = gr->n; x[1] = (double)gr->finish; x[2] = q->total[src]; x[3] = q->corr[src]; x[4] = q->pen[src];
        for (int f = 0; f < F; f++) x[5 + f] = q->per_fn[f * q->n + src];
        for (int c = 0; c < gr->n && c < Tm; c++) { x[5 + F + c] = gr->ids[c]; x[5 + F + Tm + c] = gr->logprobs[c]; }
      }
    }
    s = tn_run_sum(t->run, rec, (int)n);
  }
  for (int j = rank * B; j < (rank + 1) * B && s == TN_OK; j++)
    s = move_group(mv, j, (mv->take[j] % BW) / B == rank ? NULL : rec);
  free(rec);
  return s;
}

/* The step's batch: round 0 on the step's prompts; with dynamic sampling, rounds on fresh
 * prompts (an independent seeded stream: position (step * cap + round - 1) * B, so a resumed
 * run sees the same ones) until B groups with a reward spread are kept or the cap on rounds is
 * reached (then flat groups of round 0 fill the batch; they get advantage 0). Groups move into
 * r->res, texts, per_fn, total, corr, pen and pr in the order kept. Several ranks: the rounds
 * are those of the global batch (B x world prompts, rank k rolling out the k-th B of each), the
 * flat flags of every group are summed to all ranks, so every rank keeps the same list of groups
 * in the same order as one process would, and takes its B of them (exchange_groups). */
static tn_status sample_batch(grpo_t *t, long step, const tn_prompt **pr, rollout_t *r, char **texts, float *corr,
                              float *pen, long *gen_all, double *t_roll) {
  const tn_grpo_opts *o = &t->o;
  const int B = o->batch_size, G = o->num_generations, S = t->S, F = tn_rewards_count(t->rw);
  const int world = t->run->world > 1 ? t->run->world : 1, rank = world > 1 ? t->run->rank : 0, BW = B * world;
  const int cap = o->dynamic_sampling ? o->max_num_gen_batches : 1;
  round_t *q = calloc(cap, sizeof *q);
  const tn_prompt **rp = malloc(sizeof *rp * (size_t)BW * cap); /* (cap, B x world) prompts of each round */
  int *take = malloc(sizeof(int) * ((size_t)BW * cap + 1));      /* (round * BW + group) of each batch group */
  double *flat = calloc((size_t)BW * cap + 1, sizeof *flat);     /* (cap, BW) the round's groups: 1 flat */
  r->per_fn = malloc(sizeof(float) * ((size_t)F * S + 1));
  r->total = malloc(sizeof(float) * S);
  if (!q || !rp || !take || !flat || !r->per_fn || !r->total) {
    free(q); free(rp); free(take); free(flat);
    return tn_error(TN_ERR_NOMEM, "out of memory for %d completions", S);
  }
  tn_status s = TN_OK;
  const double t0 = tn_now();
  int kept = 0, rounds = 0;
  for (int k = 0; k < cap && kept < BW && s == TN_OK; k++, rounds++) {
    for (int g = 0; g < BW; g++)
      rp[k * BW + g] = k == 0 ? prompt_at(t, step * BW + g) /* = pr[g - rank * B] for this rank's */
                              : &t->data.p[tn_stream_at(&t->refill, (step * (cap - 1) + k - 1) * BW + g)];
    s = round_run(t, step, k, rp + k * BW + rank * B, B, rank * B, &q[k]);
    double *fk = flat + (size_t)k * BW;
    for (int g = 0; g < B && s == TN_OK; g++) fk[rank * B + g] = group_flat(q[k].total + g * G, G);
    if (s == TN_OK && world > 1 && o->dynamic_sampling) s = tn_run_sum(t->run, fk, BW);
    for (int g = 0; g < BW && s == TN_OK && kept < BW; g++)
      if (!o->dynamic_sampling || fk[g] == 0) take[kept++] = k * BW + g;
  }
  for (int g = 0; g < BW && s == TN_OK && kept < BW; g++) /* the cap reached: flat groups of round 0 fill the batch */
    if (flat[g] != 0) take[kept++] = g;
  *t_roll = tn_now() - t0;
  t->gen_batches = rounds;
  t->kept_groups = 0;
  *gen_all = 0;
  for (int k = 0; k < rounds; k++) *gen_all += q[k].gen_tokens;
  for (int j = 0; j < BW && s == TN_OK; j++) t->kept_groups += flat[take[j]] == 0; /* the global batch's */
  for (int j = 0; j < B && s == TN_OK; j++) pr[j] = rp[take[rank * B + j]];
  batch_move mv = {.t = t, .q = q, .take = take, .r = r, .texts = texts, .corr = corr, .pen = pen};
  if (s == TN_OK) s = exchange_groups(&mv);
  for (int k = 0; k < cap; k++) round_free(&q[k]);
  free(q); free(rp); free(take); free(flat);
  return s;
}

/* one step: rollout, rewards, advantages, reference log-probs and mu policy updates of
 * which the driver does the last (its gradients are left for it); figures into t */
/* The step's advantages. The estimators that normalise over the whole batch (--scale-rewards
 * batch, REINFORCE++ and its baseline variant) see every rank's rewards: each rank puts its
 * slice into a zeroed array of the global batch and the arrays are summed (adding zeros is
 * exact), so every rank holds the global batch's rewards and lengths in the one-process order
 * (rank k's groups follow rank k-1's), computes its advantages as one process would and keeps
 * its own slice: the numbers of one process with the global batch, bit for bit. */
static tn_status step_advantages(grpo_t *t, rollout_t *r, int B, int G, const int *len) {
  const int S = B * G, world = t->run->world;
  const bool global = world > 1 && ((t->est == TN_ADV_GRPO && t->scale == TN_SCALE_BATCH) ||
                                    t->est == TN_ADV_REINFORCE || t->est == TN_ADV_REINFORCE_BASELINE);
  if (!global) {
    tn_rl_advantages(t->est, r->adv, r->total, B, G, len, t->scale, 1e-4f);
    return TN_OK;
  }
  float *lf = malloc(sizeof(float) * S), *rw = NULL, *lg = NULL, *adv = NULL;
  int *ln = NULL, n = 0, at = 0;
  tn_status s = lf ? TN_OK : tn_error(TN_ERR_NOMEM, "out of memory for %d lengths", S);
  for (int i = 0; s == TN_OK && i < S; i++) lf[i] = (float)len[i]; /* exact below 2^24 */
  if (s == TN_OK) s = tn_rl_gather(t->run, r->total, S, &rw, &n, &at);
  if (s == TN_OK) s = tn_rl_gather(t->run, lf, S, &lg, &n, &at);
  if (s == TN_OK && (!(adv = malloc(sizeof(float) * n)) || !(ln = malloc(sizeof(int) * n))))
    s = tn_error(TN_ERR_NOMEM, "out of memory for the %d rewards of the global batch", n);
  if (s == TN_OK) {
    for (int i = 0; i < n; i++) ln[i] = (int)lg[i];
    tn_rl_advantages(t->est, adv, rw, n / G, G, ln, t->scale, 1e-4f);
    memcpy(r->adv, adv + at, sizeof(float) * S);
  }
  free(lf); free(rw); free(lg); free(adv); free(ln);
  return s;
}

tn_status tn_rl_gather(tn_run *run, const float *x, int n, float **all, int *n_all, int *at) {
  const int world = run->world > 1 ? run->world : 1, rank = run->world > 1 ? run->rank : 0;
  *all = NULL;
  double *cnt = calloc(world, sizeof *cnt);
  if (!cnt) return tn_error(TN_ERR_NOMEM, "rank counts");
  cnt[rank] = n;
  tn_status s = world > 1 ? tn_run_sum(run, cnt, world) : TN_OK;
  long tot = 0, off = 0;
  for (int k = 0; k < world; k++) { if (k == rank) off = tot; tot += (long)cnt[k]; }
  free(cnt);
  if (s != TN_OK) return s;
  if (tot > INT32_MAX) return tn_error(TN_ERR_LIMIT, "%ld values in the global batch", tot);
  double *g = world > 1 ? calloc(tot + 1, sizeof *g) : NULL;
  float *o = malloc(sizeof(float) * (tot + 1));
  if ((world > 1 && !g) || !o) { free(g); free(o); return tn_error(TN_ERR_NOMEM, "out of memory for %ld values", tot); }
  if (world > 1) {
    for (int i = 0; i < n; i++) g[off + i] = x[i];
    s = tn_run_sum(run, g, (int)tot);
    for (long i = 0; i < tot; i++) o[i] = (float)g[i];
  } else {
    memcpy(o, x, sizeof(float) * n);
  }
  free(g);
  if (s != TN_OK) { free(o); return s; }
  *all = o;
  *n_all = (int)tot;
  *at = (int)off;
  return TN_OK;
}

/* The step's num_iterations policy updates on its rollout r (the PPO critic's too): gradients of
 * the GRPO/PPO loss (one pass, or all log-probs first then micro-batches), the optimizer update
 * between iterations (the driver does the last one); the first iteration's entropy and the
 * rows trained. */
static tn_status policy_updates(grpo_t *t, long step, rollout_t *rp, const tn_prompt **pr, tn_grpo_stats *gsp,
                                double *entropy_out, long *train_tokens_out) {
  const tn_grpo_opts *o = &t->o;
  const int S = t->S;
  rollout_t r = *rp;
  tn_grpo_stats gs = {0};
  double entropy = 0, gnorm = 0;
  long train_tokens = 0;
  tn_status s = TN_OK;
  if (t->ppo) {
    r.val_old = malloc(sizeof(float) * (r.ntok + 1));
    r.val = malloc(sizeof(float) * (r.ntok + 1));
    if (!r.val_old || !r.val) s = tn_error(TN_ERR_NOMEM, "out of memory for %d values", r.ntok);
  }
  for (int it = 0; it < o->num_iterations && s == TN_OK; it++) {
    memset(t->tp.tr.grad, 0, t->tp.tr.ngrad * sizeof(float));
    t->v_loss = t->v_clipfrac = t->ent_sum = 0;
    if (t->mb == S) { /* one pass: forward, loss, backward */
      int N = 0;
      s = seq_logprobs(t, t->m, &r, pr, 0, S, r.cur_lp, it == 0 ? &entropy : NULL, &N);
      if (s == TN_OK && t->ppo && it == 0) { /* PPO: the rollout's values (the policy before this step's updates) */
        int nv;
        s = ppo_values(t, &r, 0, N, r.val_old, &nv);
        if (s == TN_OK) s = ppo_advantages(t, &r);
      }
      if (s == TN_OK) s = tn_grpo_loss(&t->lc, S, r.off, r.cur_lp, r.old_lp, r.ref_lp, r.adv, r.seq_mask, r.dlp, &gs);
      if (s == TN_OK) s = mb_backward(t, &r, 0, N);
      train_tokens += N;
    } else { /* two passes: all log-probs first (the loss normalises over the whole step) */
      for (int s0 = 0; s0 < S && s == TN_OK; s0 += t->mb) {
        int N = 0;
        s = seq_logprobs(t, t->m, &r, pr, s0, s0 + t->mb < S ? s0 + t->mb : S, r.cur_lp, it == 0 ? &entropy : NULL, &N);
        int nv;
        if (s == TN_OK && t->ppo && it == 0) s = ppo_values(t, &r, s0, N, r.val_old, &nv);
      }
      if (s == TN_OK && t->ppo && it == 0) s = ppo_advantages(t, &r);
      if (s == TN_OK) s = tn_grpo_loss(&t->lc, S, r.off, r.cur_lp, r.old_lp, r.ref_lp, r.adv, r.seq_mask, r.dlp, &gs);
      for (int s0 = 0; s0 < S && s == TN_OK; s0 += t->mb) {
        int s1 = s0 + t->mb < S ? s0 + t->mb : S;
        int N = 0;
        s = seq_logprobs(t, t->m, &r, pr, s0, s1, r.cur_lp, NULL, &N);
        if (s == TN_OK) s = mb_backward(t, &r, s0, N);
        train_tokens += N;
      }
    }
    if (s == TN_OK && !isfinite(gs.loss))
      s = tn_error(TN_ERR_NUMERIC, "step %ld: the GRPO loss is not finite; stopping (the last checkpoint is kept)", step + 1);
    if (s == TN_OK && it == 0 && o->dump_grads) s = dump_grads(t, step);
    if (s == TN_OK && t->critic) { /* the critic model's own update */
      if (it == 0 && o->dump_grads) s = dump_vhead_grad(t, step);
      if (s == TN_OK) s = tn_critic_update(&t->cr, t->run, step);
    } else if (s == TN_OK && t->ppo) { /* the critic's own update (its head; the shared trunk moves with the policy) */
      if (it == 0 && o->dump_grads) s = dump_vhead_grad(t, step);
      const float clr = o->critic_lr >= 0 ? o->critic_lr : o->lr;
      if (s == TN_OK) s = tn_ppo_head_update(&t->vh, t->run, (float)(clr * tn_lr_at(&t->tp.sched, step) / (o->lr > 0 ? o->lr : 1)));
    }
    float lr_it;
    if (s == TN_OK && it + 1 < o->num_iterations) s = tn_run_update(t->run, step, o->max_grad_norm, &gnorm, &lr_it);
  }
  *rp = r; /* the rollout owns what was allocated here (values) */
  *gsp = gs;
  *entropy_out = entropy;
  *train_tokens_out = train_tokens;
  return s;
}

/* One process's step figures for the metrics hook (several ranks: global_figures) */
static void local_figures(grpo_t *t, const rollout_t *rp, const tn_grpo_stats *gsp, double correct, long gen_all,
                          long gen_tokens, int truncated, double entropy, long train_tokens, double t_roll,
                          double t_upd, tn_step_out *out) {
  const rollout_t r = *rp;
  const tn_grpo_stats gs = *gsp;
  const int S = t->S, F = tn_rewards_count(t->rw);
  double mean = 0, var = 0;
  for (int i = 0; i < S; i++) mean += r.total[i];
  mean /= S;
  for (int i = 0; i < S; i++) var += (r.total[i] - mean) * (r.total[i] - mean);
  t->mean = mean;
  t->std = sqrt(var / (S - 1));
  for (int f = 0; f < F; f++) {
    double fm = 0, fv = 0;
    for (int i = 0; i < S; i++) fm += r.per_fn[f * S + i];
    fm /= S;
    for (int i = 0; i < S; i++) fv += (r.per_fn[f * S + i] - fm) * (r.per_fn[f * S + i] - fm);
    t->fn_mean[f] = fm;
    t->fn_std[f] = sqrt(fv / (S - 1));
  }
  t->acc = correct / S;
  t->gs = gs;
  t->len = (double)gen_tokens / S;
  t->gen_tokens = (double)gen_all; /* every round's, for the rollout speed */
  t->trunc = (double)truncated / S;
  t->entropy = r.ntok ? entropy / r.ntok : 0;
  t->t_roll = t_roll;
  t->t_upd = t_upd;
  t->train_rows = (double)train_tokens;
  out->loss = gs.loss;
  out->tokens = (double)train_tokens;
  snprintf(out->extra, sizeof out->extra, "reward %.3f acc %.3f", mean, correct / S);
}

static tn_status step_once(grpo_t *t, long step, tn_step_out *out) {
  const tn_grpo_opts *o = &t->o;
  const int B = o->batch_size, G = o->num_generations, S = t->S;
  const tn_prompt **pr = malloc(sizeof *pr * B); /* (B): sized from --batch-size, no fixed cap */
  if (!pr) return tn_error(TN_ERR_NOMEM, "out of memory (batch of %d prompts)", B);
  /* several ranks: the step's prompts are world x B, this rank's are the rank-th B of them; its
   * groups are rolled out, rewarded and given advantages here */
  const int world = t->run->world, rank = t->run->rank;
  for (int b = 0; b < B; b++) pr[b] = prompt_at(t, (step * world + rank) * B + b);
  t->run->data_pos = (step + 1) * B * world;
  rollout_t r = {0};
  r.res = calloc(S, sizeof *r.res);
  char **texts = calloc(S, sizeof(char *));
  float *corr = calloc(S, sizeof(float)), *pen = calloc(S, sizeof(float));
  if (!r.res || !texts || !corr || !pen) {
    free(r.res); free(texts); free(corr); free(pen); free(pr);
    return tn_error(TN_ERR_NOMEM, "out of memory for %d completions", S);
  }
  long gen_all = 0;
  double t_roll = 0, t0;
  tn_status s = sample_batch(t, step, pr, &r, texts, corr, pen, &gen_all, &t_roll);
  r.off = malloc(sizeof(int) * (S + 1));
  if (s == TN_OK && !r.off) s = tn_error(TN_ERR_NOMEM, "out of memory for %d completions", S);
  long gen_tokens = 0;
  int truncated = 0;
  double correct = 0;
  t->pen_mean = 0;
  if (s == TN_OK) {
    r.off[0] = 0;
    for (int i = 0; i < S; i++) {
      r.off[i + 1] = r.off[i] + r.res[i].n;
      gen_tokens += r.res[i].n;
      truncated += r.res[i].finish == TN_FINISH_LENGTH;
      correct += corr[i];
      t->pen_mean += pen[i] / S;
    }
    r.ntok = r.off[S];
    r.old_lp = malloc(sizeof(float) * (r.ntok + 1));
    if (!r.old_lp) s = tn_error(TN_ERR_NOMEM, "out of memory for %d completions", S);
  }
  for (int i = 0; i < S && s == TN_OK; i++) memcpy(r.old_lp + r.off[i], r.res[i].logprobs, sizeof(float) * r.res[i].n);
  r.adv = malloc(sizeof(float) * S);
  r.seq_mask = malloc(sizeof(float) * S);
  if (s == TN_OK && (!r.adv || !r.seq_mask)) s = tn_error(TN_ERR_NOMEM, "out of memory for %d advantages", S);
  if (s == TN_OK) {
    int *len = malloc(sizeof(int) * S);
    if (!len) s = tn_error(TN_ERR_NOMEM, "out of memory for %d advantages", S);
    for (int i = 0; len && i < S; i++) len[i] = r.res[i].n;
    if (len) s = step_advantages(t, &r, B, G, len);
    free(len);
    for (int i = 0; i < S; i++) r.seq_mask[i] = o->mask_truncated && r.res[i].finish == TN_FINISH_LENGTH ? 0.0f : 1.0f;
  }
  if (s == TN_OK && world > 1) { /* the loss normalises over the global batch */
    double kept = 0;
    for (int i = 0; i < S; i++) kept += r.seq_mask[i] != 0.0f ? r.off[i + 1] - r.off[i] : 0;
    s = tn_run_sum(t->run, &kept, 1);
    t->lc.S_global = S * world;
    t->lc.kept_tok_global = (long)kept;
  }
  /* ---- reference log-probs ---- */
  t0 = tn_now();
  r.cur_lp = malloc(sizeof(float) * (r.ntok + 1));
  r.dlp = malloc(sizeof(float) * (r.ntok + 1));
  if (s == TN_OK && (!r.cur_lp || !r.dlp)) s = tn_error(TN_ERR_NOMEM, "out of memory for %d log-probs", r.ntok);
  if (s == TN_OK && o->beta > 0) {
    r.ref_lp = malloc(sizeof(float) * (r.ntok + 1));
    if (!r.ref_lp) s = tn_error(TN_ERR_NOMEM, "out of memory for %d log-probs", r.ntok);
    if (t->tp.lora) tn_lora_enable(t->tp.lora, false); /* the base model is the reference */
    for (int s0 = 0; s0 < S && s == TN_OK; s0 += t->mb)
      s = seq_logprobs(t, t->tp.lora ? t->m : t->ref, &r, pr, s0, s0 + t->mb < S ? s0 + t->mb : S, r.ref_lp, NULL, NULL);
    if (t->tp.lora) tn_lora_enable(t->tp.lora, true);
  }
  tn_trace_span(t->trace, "logprobs", t0, tn_now());
  /* ---- policy updates ---- */
  t0 = tn_now();
  tn_grpo_stats gs = {0};
  double entropy = 0;
  long train_tokens = 0;
  if (s == TN_OK) s = policy_updates(t, step, &r, pr, &gs, &entropy, &train_tokens);
  double t_upd = tn_now() - t0;
  tn_trace_span(t->trace, "update", t0, t0 + t_upd);
  if (s == TN_OK && t->dump_roll) s = dump_rollout(t, step, &r, pr, texts, corr, pen);
  /* ---- the step's figures (the metrics hook writes them) ---- */
  if (s == TN_OK && world > 1) {
    t->t_roll = t_roll; /* this rank's */
    t->t_upd = t_upd;
    s = global_figures(t, &r, &gs, correct, gen_all, gen_tokens, truncated, entropy, train_tokens, out);
  }
  else if (s == TN_OK) {
    local_figures(t, &r, &gs, correct, gen_all, gen_tokens, truncated, entropy, train_tokens, t_roll, t_upd, out);
  }
  for (int i = 0; texts && i < S; i++) free(texts[i]);
  free(texts);
  free(corr);
  free(pen);
  free_rollout(&r, S);
  free(pr);
  return s;
}

static void teardown(void *ctx) {
  grpo_t *t = ctx;
  if (t->dump_roll) fclose(t->dump_roll);
  tn_trace_close(t->trace);
  free(t->fn_mean); free(t->fn_std);
  tn_free(t->logits); tn_free(t->dlogits); tn_free(t->row_lp); tn_free(t->row_dlp);
  free(t->tok_r); free(t->pos_r); free(t->seq_r); free(t->tgt_r);
  tn_tparams_free(&t->tp);
  tn_bwd_free(&t->bw);
  tn_state_free(t->st);
  if (t->rw) tn_rewards_free(t->rw);
  tn_prompts_free(&t->data);
  tn_stream_free(&t->refill);
  if (t->ppo && !t->critic) tn_vhead_free(&t->vh);
  tn_critic_free(&t->cr);
  tn_free(t->dxf_add); free(t->vbuf); free(t->dvbuf); free(t->vrows);
  tn_tokenizer_free(t->tok);
  tn_model_free(t->ref);
  tn_model_free(t->m);
}

static tn_status step(void *ctx, tn_run *r, long step, tn_step_out *out) {
  grpo_t *t = ctx;
  const tn_grpo_opts *o = &t->o;
  if (!t->opened) { /* after the manifest: a run killed before it leaves no file but its own */
    t->opened = true;
    TN_TRY(tn_grpo_open_outputs(o, r->out, &t->dump_roll, &t->trace));
  }
  return step_once(t, step, out);
}

static void metrics(void *ctx, tn_run *r, const tn_step_info *si, tn_metrics *mt) {
  grpo_t *t = ctx;
  (void)r;
  tn_metrics_add(mt, "reward/mean", t->mean);
  tn_metrics_add(mt, "reward/std", t->std);
  for (int f = 0; f < tn_rewards_count(t->rw); f++) {
    char k[96];
    snprintf(k, sizeof k, "reward/%s/mean", tn_rewards_name(t->rw, f));
    tn_metrics_add(mt, k, t->fn_mean[f]);
    snprintf(k, sizeof k, "reward/%s/std", tn_rewards_name(t->rw, f));
    tn_metrics_add(mt, k, t->fn_std[f]);
  }
  tn_metrics_add(mt, "accuracy", t->acc);
  if (t->o.overlong_buffer_len > 0) tn_metrics_add(mt, "overlong_penalty", t->pen_mean);
  if (t->o.dynamic_sampling) {
    tn_metrics_add(mt, "dynamic_sampling/gen_batches", t->gen_batches);
    tn_metrics_add(mt, "dynamic_sampling/kept_groups", t->kept_groups);
  }
  tn_metrics_add(mt, "loss", t->gs.loss);
  if (t->o.beta > 0) tn_metrics_add(mt, "kl", t->gs.kl_mean);
  tn_metrics_add(mt, "clip_fraction", t->gs.clip_region);
  tn_metrics_add(mt, "clip_low", t->gs.clip_low);
  tn_metrics_add(mt, "clip_high", t->gs.clip_high);
  if (t->ppo) {
    tn_metrics_add(mt, "value_loss", t->v_loss);
    tn_metrics_add(mt, "value_clipfrac", t->v_clipfrac);
    tn_metrics_add(mt, "explained_variance", t->expl_var);
    tn_metrics_add(mt, "returns_mean", t->ret_mean);
    tn_metrics_add(mt, "values_mean", t->val_mean);
    if (t->o.ent_coef != 0.0f) tn_metrics_add(mt, "entropy_bonus", t->ent_sum);
  }
  tn_metrics_add(mt, "completion_length", t->len);
  tn_metrics_add(mt, "truncated_fraction", t->trunc);
  tn_metrics_add(mt, "entropy", t->entropy);
  tn_metrics_add(mt, "grad_norm", si->gnorm);
  tn_metrics_add(mt, "learning_rate", si->lr);
  tn_metrics_add(mt, "rollout_tokens_per_s", t->gen_tokens / t->t_roll);
  tn_metrics_add(mt, "train_tokens_per_s", t->train_rows / t->t_upd);
  tn_metrics_add(mt, "train_rows", t->train_rows); /* token rows through the model per update pass(es) */
  if (si->evaluated) tn_metrics_add(mt, "eval/accuracy", t->eval_acc);
}

/* --eval-data, every --eval-every steps: greedy accuracy of the policy on held-out prompts
 * rendered as the training prompts are (tn_eval_run, nothing written). */
static tn_status eval_hook(void *ctx, tn_run *r, long step) {
  grpo_t *t = ctx;
  const tn_grpo_opts *o = &t->o;
  tn_eval_opts eo;
  tn_eval_opts_default(&eo);
  eo.data = o->eval_data;
  eo.system_prompt = o->no_system_prompt ? "" : o->system_prompt;
  eo.chat_format = o->chat_format;
  eo.no_chat = o->no_chat;
  eo.field_map = o->field_map;
  eo.max_prompt_len = o->max_prompt_length;
  eo.max_new_tokens = o->max_tokens_to_generate;
  eo.batch_size = 32;
  tn_eval_summary sum = {0};
  tn_status s = tn_eval_run(t->m, t->tok, &eo, &sum);
  if (s == TN_OK) {
    t->eval_acc = sum.accuracy;
    tn_progress_clear(r->prog);
    printf("grpo step %ld: held-out accuracy %.2f%% (%lld examples of %s)\n", step + 1, 100 * sum.accuracy,
           (long long)sum.n_examples, o->eval_data);
  }
  tn_eval_summary_free(&sum);
  return s;
}

static tn_status after(void *ctx, tn_run *r, const tn_step_info *si) {
  const grpo_t *t = ctx;
  tn_progress_clear(r->prog);
  printf("%s step %ld/%d reward %.3f acc %.3f len %.1f kl %.4f loss %.4f (rollout %.1fs, update %.1fs)\n", t->ppo ? "ppo" : "grpo", si->step + 1,
         t->o.steps, t->mean, t->acc, t->len, t->gs.kl_mean, t->gs.loss, t->t_roll, t->t_upd);
  fflush(stdout);
  return TN_OK;
}

tn_status tn_grpo_run(const tn_grpo_opts *opts, const tn_run_info *ri) {
  grpo_t t = {0};
  t.o = *opts;
  tn_trainer tr = {.ctx = &t, .setup = setup, .step = step, .metrics = metrics, .after = after, .finish = ppo_finish,
                   .teardown = teardown};
  tr.eval = eval_hook;
  return tn_train_drive(&tr, &t.o.train, ri);
}

tn_status tn_grpo_open_outputs(const tn_grpo_opts *o, const char *run_dir, FILE **dump, tn_trace **trace) {
  if (o->dump_rollouts && !(*dump = fopen(o->dump_rollouts, o->resume ? "a" : "w")))
    return tn_error(TN_ERR_IO, "--dump-rollouts %s: cannot open for writing", o->dump_rollouts);
  char *tp = tn_path_join(run_dir, "trace.json");
  if (!tp) return tn_error(TN_ERR_NOMEM, "out of memory");
  tn_status s = tn_trace_open(trace, tp);
  free(tp);
  return s;
}

/* the loss settings and reward scaling of o, for trainers built on GRPO's loss (agentic GRPO) */
tn_status tn_grpo_loss_config(const tn_grpo_opts *o, tn_grpo_cfg *lc, tn_scale_rewards *scale) {
  grpo_t t = {0};
  t.o = *o;
  TN_TRY(parse_enums(&t));
  *lc = t.lc;
  *scale = t.scale;
  return TN_OK;
}

void tn_ppo_opts_default(tn_grpo_opts *o) {
  tn_grpo_opts_default(o);
  o->advantage_estimator = "gae";
  o->beta = 0.05f;
}

tn_status tn_ppo_run(const tn_grpo_opts *opts, const tn_run_info *ri) {
  tn_grpo_opts o = *opts;
  o.advantage_estimator = "gae";
  return tn_grpo_run(&o, ri);
}
