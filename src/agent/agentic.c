/* agentic.c - multi-turn (agentic) GRPO on the shared trainer driver (train/run.h): per step,
 * B prompts x G episodes run by the episode loop (episode.h: tools and environments answer,
 * the G episodes of a prompt share its prefill), rewards = the reward library on the final
 * answer + the environment's rewards summed over the turns ("env" in --reward), advantages
 * per trajectory within the group (tn_grpo_advantages), GRPO's clipped loss (tn_grpo_loss) on
 * the model's tokens only (the episode's mask: tool and environment tokens carry no loss),
 * episodes with a status named in --filter-statuses dropped from the loss. Metrics: turns,
 * tool calls, tool errors, tool latency, status counts, reward per component; trace spans per
 * turn and per environment step; --dump-rollouts: whole transcripts with masks and rewards.
 * Also the agent options every episode-running command shares. Not for: the single-turn
 * trainer (src/rl/grpo.c), the loop itself (episode.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent/agentic.h"
#include "data/data.h"
#include "data/prompts.h"
#include "eval/eval.h"
#include "obs/obs.h"
#include "rl/grpo.h"
#include "rl/critic.h"
#include "rl/ppo.h"
#include "rl/value_head.h"
#include "train/losses.h"
#include "train/run.h"
#include "train/train.h"
#include "tunic/rl.h"

void tn_agent_opts_default(tn_agent_opts *a) {
  memset(a, 0, sizeof *a);
  a->max_turns = 4;
  a->max_episode_tokens = 256;
  a->tool_timeout = 10;
}

bool tn_agent_opts_active(const tn_agent_opts *a) {
  return (a->tools && *a->tools) || (a->env && *a->env) || (a->env_cmd && *a->env_cmd) || (a->mcp && *a->mcp);
}

tn_status tn_agent_env_create(const tn_agent_opts *a, uint64_t seed, tn_toolset **ts, tn_env **env) {
  *ts = NULL;
  *env = NULL;
  tn_tool_opts to;
  tn_tool_opts_default(&to);
  if (a->tool_timeout > 0) to.timeout_s = a->tool_timeout;
  TN_TRY(tn_toolset_create(ts, a->tools ? a->tools : "", &to));
  if (a->mcp && *a->mcp) TN_TRY(tn_toolset_add_mcp(*ts, a->mcp));
  tn_env_opts eo;
  tn_env_opts_default(&eo);
  eo.seed = seed;
  if (a->tool_timeout > 0) eo.timeout_s = a->tool_timeout > eo.timeout_s ? a->tool_timeout : eo.timeout_s;
  char *spec = NULL;
  if (a->env_cmd && *a->env_cmd) {
    size_t n = strlen(a->env_cmd) + 8;
    if (!(spec = malloc(n))) return tn_error(TN_ERR_NOMEM, "env");
    snprintf(spec, n, "cmd:%s", a->env_cmd);
  }
  tn_status s = tn_env_create(env, spec ? spec : a->env && *a->env ? a->env : "tools", *ts, &eo);
  free(spec);
  return s;
}

void tn_agent_episode_opts(const tn_agent_opts *a, tn_episode_opts *eo) {
  tn_episode_opts_default(eo);
  if (a->max_turns > 0) eo->max_turns = a->max_turns;
  if (a->max_episode_tokens > 0) eo->max_episode_tokens = a->max_episode_tokens;
  eo->episode_timeout = a->episode_timeout;
  eo->tool_timeout = a->tool_timeout;
  eo->finish_tool = a->finish_tool;
}

/* ---- the trainer ---- */
typedef struct {
  tn_grpo_opts o;
  tn_agent_opts a;
  tn_model *m, *ref;
  tn_tokenizer *tok;
  cJSON **rows; int nrows, caprows;
  tn_rewards *rw;
  int env_fn;             /* index of the "env" reward term, -1 */
  const float *env_r;     /* (S) this step's environment rewards, read by the "env" term */
  tn_toolset *ts;
  tn_env *env;
  bool drop[TN_EP_NSTATUS];
  tn_grpo_cfg lc;
  tn_scale_rewards scale;
  tn_state *st;
  tn_bwd bw;
  tn_tparams tp;
  int S, T, mb, Nmax;
  float *logits, *dlogits, *row_lp, *row_dlp;
  int *tok_r, *pos_r, *seq_r, *tgt_r;
  tn_run *run;
  tn_trace *trace;
  FILE *dump;
  bool opened;
  tn_manifest_file mf_models[2], mf_data[1];
  /* the step's figures */
  double mean, std, acc, turns, calls, terrs, tool_ms, model_tok, ep_tok, env_mean, t_roll, t_upd, train_rows;
  double status_n[TN_EP_NSTATUS], *fn_mean;
  tn_grpo_stats gs;
  float env_w;            /* the "env" term's weight (0: none) */
  /* PPO (tunic ppo with episodes): a value head on the policy's last hidden state, or with
   * --critic a model of its own (rl/critic.h) reading the same rows */
  bool ppo, kl_reward, critic;
  tn_value_head vh;
  tn_critic cr;
  float *dxf_add, *vbuf, *dvbuf; // (Nmax, C), (Nmax), (Nmax)
  int *vrows;                    // (Nmax)
  double v_loss, v_clipfrac, ent_sum;
  tn_ppo_figs pf;
} ag_t;

static tn_status env_reward_fn(void *user, int n, const char *const *p, const char *const *c, const cJSON *const *ex,
                               float *out) {
  (void)p; (void)c; (void)ex;
  const ag_t *t = user;
  for (int i = 0; i < n; i++) out[i] = t->env_r ? t->env_r[i] : 0.0f;
  return TN_OK;
}

static tn_status keep_row(void *ctx, cJSON *j, const char *where) {
  ag_t *t = ctx;
  (void)where;
  if (t->nrows == t->caprows) {
    int nc = t->caprows ? 2 * t->caprows : 256;
    cJSON **nr = realloc(t->rows, sizeof *nr * nc);
    if (!nr) { cJSON_Delete(j); return tn_error(TN_ERR_NOMEM, "data"); }
    t->rows = nr;
    t->caprows = nc;
  }
  t->rows[t->nrows++] = j;
  return TN_OK;
}

/* --reward with "env:W" taken out (the environment's rewards, a callback term) */
static tn_status make_rewards(ag_t *t) {
  const char *spec = t->o.reward ? t->o.reward : "";
  char *rest = malloc(strlen(spec) + 1);
  if (!rest) return tn_error(TN_ERR_NOMEM, "rewards");
  rest[0] = 0;
  float env_w = 0;
  bool has_env = false;
  const char *p = spec;
  while (*p) {
    const char *q = strchr(p, ',');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (n >= 3 && !strncmp(p, "env", 3) && (n == 3 || p[3] == ':')) {
      has_env = true;
      env_w = n > 4 ? strtof(p + 4, NULL) : 1.0f;
    } else if (n) {
      if (*rest) strcat(rest, ",");
      strncat(rest, p, n);
    }
    p += n + (q ? 1 : 0);
  }
  tn_reward_config rc;
  tn_reward_config_default(&rc);
  rc.reward_cmd = t->o.reward_cmd;
  rc.reward_cmd_timeout = t->o.reward_cmd_timeout;
  rc.rubric_path = t->o.rubric;
  tn_status s = tn_rewards_create(&t->rw, rest, &rc);
  free(rest);
  TN_TRY(s);
  t->env_fn = -1;
  if (has_env) {
    if (!isfinite(env_w)) return tn_error(TN_ERR_ARG, "--reward env: weight is not a number");
    TN_TRY(tn_rewards_add_callback(t->rw, "env", env_w, env_reward_fn, t));
    t->env_w = env_w;
    t->env_fn = tn_rewards_count(t->rw) - 1;
  }
  if (tn_rewards_count(t->rw) == 0) return tn_error(TN_ERR_ARG, "no reward: give --reward (e.g. env:1,answer:1)");
  return TN_OK;
}

/* tunic ppo with episodes: its options checked (the value head is set up with the buffers) */
static tn_status ppo_setup(ag_t *t) {
  const tn_grpo_opts *o = &t->o;
  if (!strcmp(o->kl_method, "reward")) t->kl_reward = true;
  else if (strcmp(o->kl_method, "loss")) return tn_error(TN_ERR_ARG, "kl_method '%s': expected reward or loss", o->kl_method);
  if (o->gspo || (o->importance_sampling_level && !strcmp(o->importance_sampling_level, "sequence")))
    return tn_error(TN_ERR_ARG, "PPO's per-token advantages need the token-level ratio (no gspo)");
  if (!(o->gamma >= 0 && o->gamma <= 1) || !(o->gae_lambda >= 0 && o->gae_lambda <= 1))
    return tn_error(TN_ERR_ARG, "gamma %g and gae_lambda %g must be in [0, 1]", o->gamma, o->gae_lambda);
  return TN_OK;
}

static tn_status ag_ckpt(void *ctx, const char *dir, bool load);
static tn_status setup(void *ctx, tn_run *run, tn_manifest_info *mi) {
  ag_t *t = ctx;
  tn_grpo_opts *o = &t->o;
  if (!o->model || !o->data || !o->out) return tn_error(TN_ERR_ARG, "--model, --data and --out are required");
  if (t->a.async_rollouts) return tn_error(TN_ERR_UNSUPPORTED, "--async-rollouts is not implemented yet");
  TN_TRY(tn_train_opts_precision(&o->train));
  if (o->num_generations < (o->advantage_estimator && !strcmp(o->advantage_estimator, "gae") ? 1 : 2))
    return tn_error(TN_ERR_ARG, "num_generations must be at least 2 (advantages are relative to the group)");
  if (o->batch_size <= 0 || o->num_iterations <= 0 || o->max_prompt_length <= 0 || t->a.max_episode_tokens <= 0 ||
      t->a.max_turns <= 0)
    return tn_error(TN_ERR_ARG, "batch_size, num_iterations, max_prompt_length, max_episode_tokens and max_turns must be positive");
  TN_TRY(tn_episode_statuses_parse(t->a.filter_statuses, t->drop));
  if (run->world > 1 && (o->dump_grads || o->dump_rollouts)) /* each rank holds a share of them */
    return tn_error(TN_ERR_ARG, "--dump-grads and --dump-rollouts are for one process (launched on %d ranks)", run->world);
  t->ppo = o->advantage_estimator && !strcmp(o->advantage_estimator, "gae");
  if (t->ppo) TN_TRY(ppo_setup(t));
  if ((o->advantage_estimator && strcmp(o->advantage_estimator, "grpo") && strcmp(o->advantage_estimator, "group_norm") &&
       !t->ppo) || o->dynamic_sampling || o->overlong_buffer_len > 0)
    return tn_error(TN_ERR_UNSUPPORTED, "agentic GRPO computes GRPO's group advantages per trajectory: "
                    "--advantage-estimator %s, --dynamic-sampling and --overlong-buffer-len are for single-turn runs",
                    o->advantage_estimator ? o->advantage_estimator : "grpo");
  TN_TRY(tn_grpo_loss_config(o, &t->lc, &t->scale));
  if (t->kl_reward) t->lc.beta = 0; /* PPO: the KL is in the rewards; the loss still reports it */
  TN_TRY(tn_tparams_load_model(&t->m, &o->train));
  if (o->beta > 0 && o->lora_rank <= 0) TN_TRY(tn_tparams_load_ref(&t->ref, &o->train));
  TN_TRY(tn_tokenizer_load(o->tokenizer ? o->tokenizer : o->model, &t->tok));
  if (o->chat_template) TN_TRY(tn_tokenizer_set_chat_template(t->tok, o->chat_template));
  TN_TRY(tn_data_read(o->data, TN_DATA_PROMPTS, o->field_map, keep_row, t));
  if (t->nrows == 0) return tn_error(TN_ERR_FORMAT, "%s: no rows", o->data);
  TN_TRY(make_rewards(t));
  TN_TRY(tn_agent_env_create(&t->a, o->seed, &t->ts, &t->env));
  t->S = o->batch_size * o->num_generations;
  t->T = o->max_prompt_length + t->a.max_episode_tokens + 1;
  if (t->T > t->m->cfg.max_pos) t->T = t->m->cfg.max_pos;
  t->mb = o->micro_batch > 0 && o->micro_batch < t->S ? o->micro_batch : t->S;
  t->Nmax = t->mb * t->T;
  const int V = t->m->cfg.V;
  TN_TRY(tn_state_create(&t->st, t->m, t->mb, t->T, t->Nmax, true));
  TN_TRY(tn_bwd_create(&t->bw, t->m, t->st));
  tn_tparams_opts to = tn_train_opts_tparams(&o->train, o->steps);
  TN_TRY(tn_tparams_init(&t->tp, t->m, &to));
  t->logits = tn_alloc(sizeof(float) * (size_t)t->Nmax * V);
  t->dlogits = tn_alloc(sizeof(float) * (size_t)t->Nmax * V);
  t->row_lp = tn_alloc(sizeof(float) * t->Nmax);
  t->row_dlp = tn_alloc(sizeof(float) * t->Nmax);
  t->tok_r = malloc(sizeof(int) * t->Nmax);
  t->pos_r = malloc(sizeof(int) * t->Nmax);
  t->seq_r = malloc(sizeof(int) * t->Nmax);
  t->tgt_r = malloc(sizeof(int) * t->Nmax);
  t->fn_mean = calloc(tn_rewards_count(t->rw) + 1, sizeof(double));
  if (o->critic && !t->ppo) return tn_error(TN_ERR_ARG, "--critic is for tunic ppo");
  if (t->ppo) { /* the value head (or the critic) and its buffers; its state in every checkpoint */
    tn_adamw_config ac = {.beta1 = o->beta1, .beta2 = o->beta2, .eps = o->adam_eps, .weight_decay = 0};
    t->critic = o->critic != NULL;
    if (t->critic)
      TN_TRY(tn_critic_load(&t->cr, o->critic, V, t->mb, t->T, t->Nmax, &o->train, o->steps,
                            o->critic_lr >= 0 ? o->critic_lr : o->lr));
    else TN_TRY(tn_vhead_init(&t->vh, t->m->cfg.C, &ac));
    t->dxf_add = tn_alloc(sizeof(float) * (size_t)t->Nmax * t->m->cfg.C);
    t->vbuf = malloc(sizeof(float) * t->Nmax);
    t->dvbuf = malloc(sizeof(float) * t->Nmax);
    t->vrows = malloc(sizeof(int) * t->Nmax);
    if (!t->dxf_add || !t->vbuf || !t->dvbuf || !t->vrows) return tn_error(TN_ERR_NOMEM, "PPO buffers of %d rows", t->Nmax);
    run->ckpt_state = ag_ckpt;
    run->ckpt_ctx = t;
  }
  if (!t->logits || !t->dlogits || !t->row_lp || !t->row_dlp || !t->tok_r || !t->pos_r || !t->seq_r || !t->tgt_r || !t->fn_mean)
    return tn_error(TN_ERR_NOMEM, "out of memory for %d rows x %d logits", t->Nmax, V);
  t->run = run;
  tn_run_describe(run, &o->train, t->ppo ? "agentic-ppo" : "agentic-grpo", t->m, &t->tp, t->nrows, false, o->batch_size, 0);
  t->mf_models[0] = (tn_manifest_file){"model", o->model};
  t->mf_models[1] = (tn_manifest_file){"critic", o->critic};
  t->mf_data[0] = (tn_manifest_file){"train", o->data};
  *mi = (tn_manifest_info){.command = t->ppo ? "ppo" : "grpo", .models = t->mf_models, .nmodels = t->critic ? 2 : 1,
                           .data = t->mf_data, .ndata = 1};
  printf("agentic %s: %d prompts, %d steps of %d prompts x %d episodes, env %s, %zu tools, max %d turns / %d tokens, "
         "%zu trainable parameters\n", t->ppo ? "ppo" : "grpo", t->nrows, o->steps, o->batch_size, o->num_generations, tn_env_name(t->env),
         tn_toolset_count(t->ts), t->a.max_turns, t->a.max_episode_tokens, t->tp.opt.total);
  fflush(stdout);
  return TN_OK;
}

/* rows of sequences [s0, s1): the whole transcript; target = the next token where it is the model's */
static int fill_rows(ag_t *t, const tn_episode *ep, int s0, int s1) {
  int N = 0;
  for (int s = s0; s < s1; s++) {
    const tn_episode *e = &ep[s];
    const int L = e->n < t->T ? e->n : t->T;
    for (int k = 0; k + 1 < L; k++, N++) {
      t->tok_r[N] = e->ids[k];
      t->pos_r[N] = k;
      t->seq_r[N] = s - s0;
      t->tgt_r[N] = e->mask[k + 1] ? e->ids[k + 1] : -1;
    }
  }
  return N;
}

/* model-token log-probs of sequences [s0, s1) under m into lp (flat layout off[]) */
static tn_status seq_logprobs(ag_t *t, const tn_model *m, const tn_episode *ep, const int *off, int s0, int s1, float *lp,
                              int *nrows) {
  const int V = t->m->cfg.V;
  const float T = t->o.temperature > 0 ? t->o.temperature : 1.0f;
  const int N = fill_rows(t, ep, s0, s1);
  if (nrows) *nrows = N;
  if (N == 0) return TN_OK;
  TN_TRY(tn_forward(m, t->st, N, t->tok_r, t->pos_r, t->seq_r, t->logits, NULL, N));
  tn_token_logprobs(t->row_lp, t->logits, t->tgt_r, N, V, T);
  int w = off[s0];
  for (int i = 0; i < N; i++)
    if (t->tgt_r[i] >= 0) lp[w++] = t->row_lp[i];
  return TN_OK;
}

static cJSON *farr(const float *x, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
  return a;
}

/* --dump-grads: the gradient of the first inner iteration as DIR/step_N.safetensors */
static tn_status dump_grads(ag_t *t, long step) { return tn_tparams_dump_grads(&t->tp, t->o.dump_grads, step + 1); }

/* GRPO's group advantages of the step's totals; over the global batch (--scale-rewards batch needs
 * every rank's rewards: gathered in the one-process order, tn_rl_gather), this rank's slice kept */
static tn_status ag_advantages(ag_t *t, const float *total, float *adv) {
  const int S = t->S, G = t->o.num_generations;
  float *all = NULL, *a = NULL;
  int n = 0, at = 0;
  tn_status s = tn_rl_gather(t->run, total, S, &all, &n, &at);
  if (s == TN_OK && !(a = malloc(sizeof(float) * (n + 1)))) s = tn_error(TN_ERR_NOMEM, "advantages of %d episodes", n);
  if (s == TN_OK) {
    tn_grpo_advantages(a, all, n / G, G, t->scale, 1e-4f);
    memcpy(adv, a + at, sizeof(float) * S);
  }
  free(all);
  free(a);
  return s;
}

/* The step's figures over the global batch: sums over this rank's episodes, summed over the ranks
 * (several), then divided; means over kept tokens (kl, clip fraction) weighted by each rank's. */
static tn_status ag_figures(ag_t *t, const tn_episode *ep, const int *off, const float *total, const float *per_fn,
                            const float *seq_mask, double correct, long train_rows, tn_step_out *out) {
  const int S = t->S, F = tn_rewards_count(t->rw);
  enum { N0 = 18 };
  double *v = calloc(N0 + TN_EP_NSTATUS + (size_t)F, sizeof(double));
  if (!v) return tn_error(TN_ERR_NOMEM, "agentic step figures");
  double kept = 0, kseq = 0;
  for (int i = 0; i < S; i++) {
    v[0] += total[i];
    v[1] += (double)total[i] * total[i];
    v[2] += ep[i].turns;
    v[3] += ep[i].tool_calls;
    v[4] += ep[i].tool_errors;
    v[5] += ep[i].tool_ms;
    v[6] += off[i + 1] - off[i];
    v[7] += ep[i].n - ep[i].prompt_len;
    v[8] += ep[i].env_reward;
    v[N0 + ep[i].status]++;
    kept += seq_mask[i] != 0.0f ? off[i + 1] - off[i] : 0;
    kseq += seq_mask[i] != 0.0f && off[i + 1] > off[i];
    for (int f = 0; f < F; f++) v[N0 + TN_EP_NSTATUS + f] += per_fn[f * S + i];
  }
  v[9] = correct; v[10] = (double)train_rows; v[11] = t->gs.loss; v[12] = t->gs.kl_mean * kept;
  const double nclip = t->lc.sequence_ratio ? kseq : kept;
  v[13] = t->gs.clip_region * nclip;
  v[14] = nclip;
  v[15] = t->v_loss; v[16] = t->v_clipfrac; v[17] = t->ent_sum; /* PPO's: token means over the global batch already */
  const double kt = t->run->world > 1 ? (double)t->lc.kept_tok_global : kept;
  tn_status s = tn_run_sum(t->run, v, N0 + TN_EP_NSTATUS + F);
  if (s == TN_OK) {
    const double n = (double)S * (t->run->world > 1 ? t->run->world : 1);
    t->mean = v[0] / n;
    t->std = n > 1 ? sqrt(fmax(0, (v[1] - v[0] * v[0] / n) / (n - 1))) : 0; /* ppo: G may be 1 */
    for (int f = 0; f < F; f++) t->fn_mean[f] = v[N0 + TN_EP_NSTATUS + f] / n;
    t->acc = v[9] / n;
    t->turns = v[2] / n;
    t->calls = v[3] / n;
    t->terrs = v[4] / n;
    t->tool_ms = v[3] > 0 ? v[5] / v[3] : 0;
    t->model_tok = v[6] / n;
    t->ep_tok = v[7] / n;
    t->env_mean = v[8] / n;
    for (int k = 0; k < TN_EP_NSTATUS; k++) t->status_n[k] = v[N0 + k];
    t->gs.loss = v[11];
    t->gs.kl_mean = kt > 0 ? v[12] / kt : 0;
    t->gs.clip_region = v[14] > 0 ? v[13] / v[14] : 0;
    t->train_rows = v[10];
    t->v_loss = v[15];
    t->v_clipfrac = v[16];
    t->ent_sum = v[17];
    out->loss = v[11];
    out->tokens = v[10];
    snprintf(out->extra, sizeof out->extra, "reward %.3f acc %.3f turns %.2f", t->mean, t->acc, t->turns);
  }
  free(v);
  return s;
}

/* One step's rollout, the model's tokens laid out flat (off) */
typedef struct {
  tn_episode *ep;        // (S)
  int *off;              // (S + 1)
  float *per_fn, *total, *adv, *seq_mask, *corr; // (F, S), (S) x 4
  float *old_lp, *ref_lp, *cur_lp, *dlp;         // (tokens)
  float *val_old, *val, *ret, *tok_adv;          // PPO (tokens)
} ag_roll;

/* ---- PPO over whole transcripts: values, GAE and the value loss on the model's tokens only ---- */

/* values of the model's tokens of sequences [s0, ...) of the forward just run into v (flat): the head
 * on the policy's hidden states, or the critic's forward of the same rows; *nv their count */
static tn_status ag_values(ag_t *t, const ag_roll *R, int s0, int N, float *v, int *nv) {
  return tn_ppo_values(t->critic ? &t->cr : NULL, &t->vh, t->st->xf, N, t->tok_r, t->pos_r, t->seq_r, t->tgt_r, t->vrows,
                       v + R->off[s0], nv);
}

/* Per-token rewards of each transcript's model tokens: the environment's reward after turn k (x its
 * --reward weight) on the last model token of turn k, the rest of the total (the reward library on
 * the final answer) on the last model token, -beta (old - ref) on every token with --kl-method
 * reward; GAE over the model tokens (tool and environment tokens are not steps), whitened over the
 * global batch (tn_ppo_gae_batch). */
static tn_status ag_ppo_advantages(ag_t *t, ag_roll *R) {
  const int S = t->S, n = R->off[S];
  float *rw = malloc(sizeof(float) * (n + 1));
  R->ret = malloc(sizeof(float) * (n + 1));
  R->tok_adv = malloc(sizeof(float) * (n + 1));
  if (!rw || !R->ret || !R->tok_adv) { free(rw); return tn_error(TN_ERR_NOMEM, "PPO: %d tokens", n); }
  for (int i = 0; i < S; i++) {
    const tn_episode *e = &R->ep[i];
    const int L = e->n < t->T ? e->n : t->T;
    double env_sum = 0;
    int w = R->off[i], turn = 0;
    for (int p = 1; p < L; p++) {
      if (!e->mask[p]) continue;
      rw[w] = t->kl_reward && R->ref_lp ? -t->o.beta * (R->old_lp[w] - R->ref_lp[w]) : 0.0f;
      if ((p + 1 >= L || !e->mask[p + 1]) && turn < e->turns && e->turn_rewards) { /* the end of model turn `turn` */
        rw[w] += (float)(t->env_w * e->turn_rewards[turn]);
        env_sum += t->env_w * e->turn_rewards[turn++];
      }
      w++;
    }
    if (w > R->off[i]) { /* the rest (turns cut off by the context included) on the last model token */
      rw[w - 1] += (float)(R->total[i] - env_sum);
    }
  }
  tn_ppo_figs f = {0};
  tn_status st = tn_ppo_gae_batch(t->run, S, R->off, rw, R->val_old, t->o.gamma, t->o.gae_lambda, R->tok_adv, R->ret, &f);
  free(rw);
  t->pf = f;
  tn_ppo_seq_adv(S, R->off, R->tok_adv, R->adv);
  t->lc.token_adv = R->tok_adv;
  return st;
}

/* the value loss's gradient into the hidden states and the head, the entropy bonus's into
 * dlogits, for the micro-batch of sequences from s0 whose forward was just run */
static tn_status ag_ppo_backward(ag_t *t, const ag_roll *R, int s0, int N) {
  const int C = t->m->cfg.C, V = t->m->cfg.V;
  const float T = t->o.temperature > 0 ? t->o.temperature : 1.0f;
  long kept = 0;
  for (int i = 0; i < t->S; i++) kept += R->seq_mask[i] != 0.0f ? R->off[i + 1] - R->off[i] : 0;
  if (t->run->world > 1) kept = t->lc.kept_tok_global;
  const double w = kept > 0 ? 1.0 / (double)kept : 0.0;
  int n = 0;
  TN_TRY(ag_values(t, R, s0, N, R->val, &n));
  tn_ppo_value_loss(R->off, R->seq_mask, s0, n, w, R->val, R->val_old, R->ret, t->o.clip_range_value, t->o.vf_coef, t->vbuf,
                    t->dvbuf, &t->v_loss, &t->v_clipfrac);
  TN_TRY(tn_ppo_values_backward(t->critic ? &t->cr : NULL, &t->vh, t->st->xf, N, C, t->tok_r, t->pos_r, t->seq_r, t->vrows,
                                n, t->dvbuf, t->dxf_add, &t->bw));
  t->ent_sum += tn_ppo_entropy_bonus(t->logits, t->dlogits, t->vrows, t->vbuf, n, V, T, t->o.ent_coef);
  return TN_OK;
}

static tn_status ag_ckpt(void *ctx, const char *dir, bool load) {
  ag_t *t = ctx;
  return tn_ppo_values_state(t->critic ? &t->cr : NULL, &t->vh, dir, load);
}

static tn_status ag_finish(void *ctx, tn_run *r) {
  ag_t *t = ctx;
  return t->ppo && r->rank == 0 ? tn_ppo_values_state(t->critic ? &t->cr : NULL, &t->vh, r->out, false) : TN_OK;
}

/* forward of sequences [s0, s1) for log-probs into cur_lp (PPO, first iteration: also the rollout's values) */
static tn_status ag_forward(ag_t *t, ag_roll *R, int s0, int s1, bool values, int *N) {
  TN_TRY(seq_logprobs(t, t->m, R->ep, R->off, s0, s1, R->cur_lp, N));
  int nv;
  if (values) TN_TRY(ag_values(t, R, s0, *N, R->val_old, &nv));
  return TN_OK;
}

static tn_status ag_backward(ag_t *t, const ag_roll *R, int s0, int N) {
  if (N == 0) return TN_OK;
  const int V = t->m->cfg.V;
  const float T = t->o.temperature > 0 ? t->o.temperature : 1.0f;
  int w = R->off[s0];
  for (int i = 0; i < N; i++) t->row_dlp[i] = t->tgt_r[i] >= 0 ? R->dlp[w++] : 0.0f;
  tn_logp_backward(t->dlogits, t->logits, t->tgt_r, t->row_dlp, N, V, T);
  t->bw.dxf_add = NULL;
  if (t->ppo) TN_TRY(ag_ppo_backward(t, R, s0, N));
  return tn_backward(t->m, t->st, &t->bw, tn_tparams_grads(&t->tp), t->dlogits, t->logits, N, t->tok_r, t->pos_r, t->seq_r);
}

/* the step's num_iterations updates (the driver does the last); PPO: the head's too */
static tn_status ag_updates(ag_t *t, long step, ag_roll *R, tn_grpo_stats *gs, long *train_rows) {
  const tn_grpo_opts *o = &t->o;
  const int S = t->S, n = R->off[S];
  tn_status s = TN_OK;
  double gnorm;
  if (t->ppo && (!(R->val_old = malloc(sizeof(float) * (n + 1))) || !(R->val = malloc(sizeof(float) * (n + 1)))))
    return tn_error(TN_ERR_NOMEM, "PPO: %d values", n);
  for (int it = 0; it < o->num_iterations && s == TN_OK; it++) {
    memset(t->tp.tr.grad, 0, t->tp.tr.ngrad * sizeof(float));
    t->v_loss = t->v_clipfrac = t->ent_sum = 0;
    const bool vals = t->ppo && it == 0; /* the rollout's values: the policy before this step's updates */
    if (t->mb == S) {
      int N = 0;
      s = ag_forward(t, R, 0, S, vals, &N);
      if (s == TN_OK && vals) s = ag_ppo_advantages(t, R);
      if (s == TN_OK) s = tn_grpo_loss(&t->lc, S, R->off, R->cur_lp, R->old_lp, R->ref_lp, R->adv, R->seq_mask, R->dlp, gs);
      if (s == TN_OK) s = ag_backward(t, R, 0, N);
      *train_rows += N;
    } else {
      for (int s0 = 0; s0 < S && s == TN_OK; s0 += t->mb) {
        int N = 0;
        s = ag_forward(t, R, s0, s0 + t->mb < S ? s0 + t->mb : S, vals, &N);
      }
      if (s == TN_OK && vals) s = ag_ppo_advantages(t, R);
      if (s == TN_OK) s = tn_grpo_loss(&t->lc, S, R->off, R->cur_lp, R->old_lp, R->ref_lp, R->adv, R->seq_mask, R->dlp, gs);
      for (int s0 = 0; s0 < S && s == TN_OK; s0 += t->mb) {
        int N = 0;
        s = ag_forward(t, R, s0, s0 + t->mb < S ? s0 + t->mb : S, false, &N);
        if (s == TN_OK) s = ag_backward(t, R, s0, N);
        *train_rows += N;
      }
    }
    if (s == TN_OK && !isfinite(gs->loss))
      s = tn_error(TN_ERR_NUMERIC, "step %ld: the GRPO loss is not finite; stopping (the last checkpoint is kept)", step + 1);
    if (s == TN_OK && it == 0 && o->dump_grads) s = dump_grads(t, step);
    if (s == TN_OK && t->critic) { /* the critic model's own update */
      s = tn_critic_update(&t->cr, t->run, step);
    } else if (s == TN_OK && t->ppo) { /* the head's (the shared trunk moves with the policy) */
      const float clr = o->critic_lr >= 0 ? o->critic_lr : o->lr;
      s = tn_ppo_head_update(&t->vh, t->run, (float)(clr * tn_lr_at(&t->tp.sched, step) / (o->lr > 0 ? o->lr : 1)));
    }
    float lr_it;
    if (s == TN_OK && it + 1 < o->num_iterations) s = tn_run_update(t->run, step, o->max_grad_norm, &gnorm, &lr_it);
  }
  return s;
}

/* --dump-rollouts: whole transcripts, with the model tokens' log-probs (and PPO's values) */
static tn_status ag_dump(ag_t *t, long step, const ag_roll *R) {
  const int S = t->S, G = t->o.num_generations, F = tn_rewards_count(t->rw);
  for (int i = 0; i < S; i++) {
    cJSON *j = tn_episode_json(&R->ep[i]);
    const int a = R->off[i], n = R->off[i + 1] - R->off[i];
    cJSON_AddNumberToObject(j, "step", (double)(step + 1));
    cJSON_AddNumberToObject(j, "seq", i);
    cJSON_AddNumberToObject(j, "group", i / G);
    cJSON_AddNumberToObject(j, "sample", i % G);
    cJSON *rw = cJSON_AddObjectToObject(j, "rewards");
    for (int f = 0; f < F; f++) cJSON_AddNumberToObject(rw, tn_rewards_name(t->rw, f), R->per_fn[f * S + i]);
    cJSON_AddNumberToObject(j, "total", R->total[i]);
    cJSON_AddNumberToObject(j, "advantage", R->adv[i]);
    cJSON_AddNumberToObject(j, "seq_mask", R->seq_mask[i]);
    cJSON_AddNumberToObject(j, "correct", R->corr[i]);
    cJSON_AddItemToObject(j, "old_logprobs", farr(R->old_lp + a, n));
    if (R->ref_lp) cJSON_AddItemToObject(j, "ref_logprobs", farr(R->ref_lp + a, n));
    cJSON_AddItemToObject(j, "policy_logprobs", farr(R->cur_lp + a, n));
    if (R->tok_adv) { /* PPO */
      cJSON_AddItemToObject(j, "old_values", farr(R->val_old + a, n));
      cJSON_AddItemToObject(j, "values", farr(R->val + a, n)); /* last inner iteration */
      cJSON_AddItemToObject(j, "returns", farr(R->ret + a, n));
      cJSON_AddItemToObject(j, "token_advantages", farr(R->tok_adv + a, n));
    }
    char *line = tn_json_print_valid(j, false);
    cJSON_Delete(j);
    if (!line) return TN_ERR_NOMEM;
    fprintf(t->dump, "%s\n", line);
    free(line);
  }
  if (fflush(t->dump) != 0) return tn_error(TN_ERR_IO, "%s: write failed", t->o.dump_rollouts);
  return TN_OK;
}

/* the rollout's flat layout of model tokens, sequence masks, behaviour log-probs; the global kept tokens */
static tn_status ag_layout(ag_t *t, ag_roll *R) {
  const tn_grpo_opts *o = &t->o;
  const int S = t->S;
  R->off[0] = 0;
  for (int i = 0; i < S; i++) {
    const tn_episode *e = &R->ep[i];
    int k = 0;
    const int L = e->n < t->T ? e->n : t->T;
    for (int p = 1; p < L; p++) k += e->mask[p];
    R->off[i + 1] = R->off[i] + k;
    R->seq_mask[i] = t->drop[e->status] || e->n == 0 ? 0.0f : 1.0f;
    if (o->mask_truncated && e->status == TN_EP_TRUNCATED) R->seq_mask[i] = 0.0f;
  }
  const int ntok = R->off[S];
  R->old_lp = malloc(sizeof(float) * (ntok + 1));
  R->cur_lp = malloc(sizeof(float) * (ntok + 1));
  R->dlp = malloc(sizeof(float) * (ntok + 1));
  if (o->beta > 0) R->ref_lp = malloc(sizeof(float) * (ntok + 1));
  if (!R->old_lp || !R->cur_lp || !R->dlp || (o->beta > 0 && !R->ref_lp))
    return tn_error(TN_ERR_NOMEM, "agentic step: %d tokens", ntok);
  for (int i = 0; i < S; i++) {
    int w = R->off[i];
    const int L = R->ep[i].n < t->T ? R->ep[i].n : t->T;
    for (int p = 1; p < L; p++)
      if (R->ep[i].mask[p]) R->old_lp[w++] = R->ep[i].logprobs[p];
  }
  if (t->run->world > 1) { /* the loss normalises over the global batch */
    double kept = 0;
    for (int i = 0; i < S; i++) kept += R->seq_mask[i] != 0.0f ? R->off[i + 1] - R->off[i] : 0;
    TN_TRY(tn_run_sum(t->run, &kept, 1));
    t->lc.S_global = S * t->run->world;
    t->lc.kept_tok_global = (long)kept;
  }
  return TN_OK;
}

/* the episodes of the step's prompts (several ranks: this rank's B of the world x B) */
static tn_status ag_rollout(ag_t *t, long step, tn_episode_task *tasks, tn_episode *ep) {
  const tn_grpo_opts *o = &t->o;
  const int B = o->batch_size, G = o->num_generations, S = t->S;
  /* an episode's sampler is seeded by its prompt's place in the global step (as one process's) */
  const int world = t->run->world > 1 ? t->run->world : 1, rank = world > 1 ? t->run->rank : 0;
  for (int b = 0; b < B; b++)
    for (int g = 0; g < G; g++) {
      const int row = tn_stream_at(&t->run->stream, (step * world + rank) * B + b);
      tasks[b * G + g] = (tn_episode_task){.task = t->rows[row], .prompt = rank * B + b, .sample = g};
    }
  t->run->data_pos = (step + 1) * B * world;
  tn_episode_opts eo;
  tn_agent_episode_opts(&t->a, &eo);
  eo.max_prompt_tokens = o->max_prompt_length;
  eo.max_turn_tokens = o->max_tokens_to_generate;
  eo.system_prompt = o->no_system_prompt ? NULL : o->system_prompt;
  eo.gen.temperature = o->temperature;
  eo.gen.top_k = o->top_k;
  eo.gen.top_p = o->top_p;
  eo.gen.seed = o->seed * 7919ULL + (uint64_t)step;
  eo.trace = t->trace;
  return tn_episodes_run(t->m, t->tok, t->env, tasks, S, &eo, ep);
}

/* rewards: the library on the final answer, plus the environment's; correct flags; *correct their sum */
static tn_status ag_rewards(ag_t *t, const tn_episode_task *tasks, ag_roll *R, double *correct) {
  const int S = t->S;
  float *env_r = malloc(sizeof(float) * S);
  const char **ptexts = calloc(S, sizeof(char *)), **ctexts = calloc(S, sizeof(char *));
  const cJSON **exs = calloc(S, sizeof(cJSON *));
  tn_status s = env_r && ptexts && ctexts && exs ? TN_OK : tn_error(TN_ERR_NOMEM, "agentic rewards");
  for (int i = 0; i < S && s == TN_OK; i++) {
    env_r[i] = (float)R->ep[i].env_reward;
    ptexts[i] = R->ep[i].prompt_text ? R->ep[i].prompt_text : "";
    ctexts[i] = R->ep[i].final ? R->ep[i].final : "";
    exs[i] = tasks[i].task;
  }
  t->env_r = env_r;
  if (s == TN_OK) s = tn_rewards_compute(t->rw, S, ptexts, ctexts, exs, R->per_fn, R->total);
  t->env_r = NULL;
  tn_extract_config ec;
  tn_extract_config_default(&ec);
  *correct = 0;
  for (int i = 0; i < S && s == TN_OK; i++) {
    char ref[256], ans[256];
    tn_prompt pp = {.json = (cJSON *)tasks[i].task};
    if (tn_prompt_reference(&pp, ref, sizeof ref)) {
      tn_extract_answer(ctexts[i], &ec, ans, sizeof ans);
      R->corr[i] = tn_answers_equal(ans, ref) ? 1.0f : 0.0f;
      *correct += R->corr[i];
    }
  }
  free(env_r); free(ptexts); free(ctexts); free(exs);
  return s;
}

static tn_status step_once(ag_t *t, long step, tn_step_out *out) {
  const tn_grpo_opts *o = &t->o;
  const int S = t->S, F = tn_rewards_count(t->rw);
  tn_episode_task *tasks = calloc(S, sizeof *tasks);
  ag_roll R = {.ep = calloc(S, sizeof(tn_episode)), .off = malloc(sizeof(int) * (S + 1)),
               .per_fn = malloc(sizeof(float) * ((size_t)F * S + 1)), .total = malloc(sizeof(float) * S),
               .adv = malloc(sizeof(float) * S), .seq_mask = malloc(sizeof(float) * S), .corr = calloc(S, sizeof(float))};
  tn_status s = TN_OK;
  if (!tasks || !R.ep || !R.off || !R.per_fn || !R.total || !R.adv || !R.seq_mask || !R.corr)
    s = tn_error(TN_ERR_NOMEM, "agentic step");
  /* ---- rollout: the episodes ---- */
  double t0 = tn_now();
  if (s == TN_OK) s = ag_rollout(t, step, tasks, R.ep);
  const double t_roll = tn_now() - t0;
  tn_trace_span(t->trace, "rollout", t0, t0 + t_roll);
  t0 = tn_now();
  double correct = 0;
  if (s == TN_OK) s = ag_rewards(t, tasks, &R, &correct);
  tn_trace_span(t->trace, "reward", t0, tn_now());
  /* ---- advantages per trajectory within the group (PPO: per token, later); the model's tokens only ---- */
  if (s == TN_OK && !t->ppo) s = ag_advantages(t, R.total, R.adv);
  if (s == TN_OK) s = ag_layout(t, &R);
  /* ---- reference log-probs ---- */
  t0 = tn_now();
  if (s == TN_OK && o->beta > 0) {
    if (t->tp.lora) tn_lora_enable(t->tp.lora, false);
    for (int s0 = 0; s0 < S && s == TN_OK; s0 += t->mb)
      s = seq_logprobs(t, t->tp.lora ? t->m : t->ref, R.ep, R.off, s0, s0 + t->mb < S ? s0 + t->mb : S, R.ref_lp, NULL);
    if (t->tp.lora) tn_lora_enable(t->tp.lora, true);
  }
  /* ---- policy updates ---- */
  tn_grpo_stats gs = {0};
  long train_rows = 0;
  if (s == TN_OK) s = ag_updates(t, step, &R, &gs, &train_rows);
  const double t_upd = tn_now() - t0;
  tn_trace_span(t->trace, "update", t0, t0 + t_upd);
  if (s == TN_OK && t->dump) s = ag_dump(t, step, &R);
  /* ---- the step's figures ---- */
  if (s == TN_OK) {
    t->gs = gs;
    t->t_roll = t_roll;
    t->t_upd = t_upd;
    s = ag_figures(t, R.ep, R.off, R.total, R.per_fn, R.seq_mask, correct, train_rows, out);
  }
  tn_episodes_free(R.ep, S);
  free(R.ep); free(tasks); free(R.off); free(R.per_fn); free(R.total); free(R.adv); free(R.seq_mask); free(R.corr);
  free(R.old_lp); free(R.ref_lp); free(R.cur_lp); free(R.dlp); free(R.val_old); free(R.val); free(R.ret); free(R.tok_adv);
  return s;
}

static tn_status step(void *ctx, tn_run *r, long stp, tn_step_out *out) {
  ag_t *t = ctx;
  if (!t->opened) {
    t->opened = true;
    TN_TRY(tn_grpo_open_outputs(&t->o, r->out, &t->dump, &t->trace));
  }
  return step_once(t, stp, out);
}

static void metrics(void *ctx, tn_run *r, const tn_step_info *si, tn_metrics *mt) {
  ag_t *t = ctx;
  (void)r;
  tn_metrics_add(mt, "reward/mean", t->mean);
  tn_metrics_add(mt, "reward/std", t->std);
  for (int f = 0; f < tn_rewards_count(t->rw); f++) {
    char k[96];
    snprintf(k, sizeof k, "reward/%s/mean", tn_rewards_name(t->rw, f));
    tn_metrics_add(mt, k, t->fn_mean[f]);
  }
  tn_metrics_add(mt, "accuracy", t->acc);
  tn_metrics_add(mt, "loss", t->gs.loss);
  if (t->o.beta > 0) tn_metrics_add(mt, "kl", t->gs.kl_mean);
  tn_metrics_add(mt, "clip_fraction", t->gs.clip_region);
  if (t->ppo) {
    tn_metrics_add(mt, "value_loss", t->v_loss);
    tn_metrics_add(mt, "value_clipfrac", t->v_clipfrac);
    tn_metrics_add(mt, "explained_variance", t->pf.expl_var);
    tn_metrics_add(mt, "returns_mean", t->pf.ret_mean);
    tn_metrics_add(mt, "values_mean", t->pf.val_mean);
    if (t->o.ent_coef != 0.0f) tn_metrics_add(mt, "entropy_bonus", t->ent_sum);
  }
  tn_metrics_add(mt, "episode/turns", t->turns);
  tn_metrics_add(mt, "episode/tool_calls", t->calls);
  tn_metrics_add(mt, "episode/tool_errors", t->terrs);
  tn_metrics_add(mt, "episode/tool_latency_ms", t->tool_ms);
  tn_metrics_add(mt, "episode/model_tokens", t->model_tok);
  tn_metrics_add(mt, "episode/tokens", t->ep_tok);
  tn_metrics_add(mt, "episode/env_reward", t->env_mean);
  for (int k = 0; k < TN_EP_NSTATUS; k++) {
    char key[64];
    snprintf(key, sizeof key, "episode/status/%s", tn_episode_status_name(k));
    tn_metrics_add(mt, key, t->status_n[k]);
  }
  tn_metrics_add(mt, "grad_norm", si->gnorm);
  tn_metrics_add(mt, "learning_rate", si->lr);
  tn_metrics_add(mt, "time/rollout_s", t->t_roll);
  tn_metrics_add(mt, "time/update_s", t->t_upd);
  tn_metrics_add(mt, "train_rows", t->train_rows);
}

static tn_status after(void *ctx, tn_run *r, const tn_step_info *si) {
  const ag_t *t = ctx;
  tn_progress_clear(r->prog);
  printf("agentic %s step %ld/%d reward %.3f acc %.3f turns %.2f tool calls %.2f (errors %.2f) done %.0f trunc %.0f "
         "loss %.4f (rollout %.1fs, update %.1fs)\n", t->ppo ? "ppo" : "grpo", si->step + 1, t->o.steps, t->mean, t->acc, t->turns, t->calls,
         t->terrs, t->status_n[TN_EP_DONE], t->status_n[TN_EP_TRUNCATED], t->gs.loss, t->t_roll, t->t_upd);
  fflush(stdout);
  return TN_OK;
}

static void teardown(void *ctx) {
  ag_t *t = ctx;
  if (t->dump) fclose(t->dump);
  tn_trace_close(t->trace);
  free(t->fn_mean);
  tn_free(t->logits); tn_free(t->dlogits); tn_free(t->row_lp); tn_free(t->row_dlp);
  free(t->tok_r); free(t->pos_r); free(t->seq_r); free(t->tgt_r);
  tn_tparams_free(&t->tp);
  tn_bwd_free(&t->bw);
  tn_state_free(t->st);
  if (t->vh.w) tn_vhead_free(&t->vh);
  tn_critic_free(&t->cr);
  tn_free(t->dxf_add); free(t->vbuf); free(t->dvbuf); free(t->vrows);
  tn_env_free(t->env);
  tn_toolset_free(t->ts);
  if (t->rw) tn_rewards_free(t->rw);
  for (int i = 0; i < t->nrows; i++) cJSON_Delete(t->rows[i]);
  free(t->rows);
  tn_tokenizer_free(t->tok);
  tn_model_free(t->ref);
  tn_model_free(t->m);
}

tn_status tn_agentic_grpo_run(const tn_grpo_opts *o, const tn_agent_opts *a, const tn_run_info *ri) {
  ag_t t = {0};
  t.o = *o;
  t.a = *a;
  tn_trainer tr = {.ctx = &t, .setup = setup, .step = step, .metrics = metrics, .after = after, .finish = ag_finish,
                   .teardown = teardown};
  return tn_train_drive(&tr, &t.o.train, ri);
}

/* ---- tunic eval / tunic generate --chat with tools: the same episode loop ---- */
void tn_agent_eval_ctx_init(tn_agent_eval_ctx *c, const tn_model *m, const tn_tokenizer *tok, tn_env *env,
                            const tn_agent_opts *a, const char *system_prompt) {
  memset(c, 0, sizeof *c);
  c->m = m;
  c->tok = tok;
  c->env = env;
  c->a = a;
  c->system_prompt = system_prompt;
}

/* the ids of the episode's last model segment (the answer scored), as a tn_gen_result */
static tn_status final_result(const tn_episode *e, const tn_model *m, const tn_tokenizer *tok, tn_gen_result *r) {
  int b = e->n, a;
  while (b > e->prompt_len && !e->mask[b - 1]) b--;
  a = b;
  while (a > e->prompt_len && e->mask[a - 1]) a--;
  r->n = b - a;
  r->ids = malloc(sizeof(int) * (r->n + 1));
  r->logprobs = malloc(sizeof(float) * (r->n + 1));
  if (!r->ids || !r->logprobs) return tn_error(TN_ERR_NOMEM, "eval");
  memcpy(r->ids, e->ids + a, sizeof(int) * r->n);
  memcpy(r->logprobs, e->logprobs + a, sizeof(float) * r->n);
  r->finish = TN_FINISH_LENGTH;
  if (r->n > 0) {
    const int last = r->ids[r->n - 1];
    for (int k = 0; k < m->cfg.n_eos; k++)
      if (m->cfg.eos_ids[k] == last) r->finish = TN_FINISH_STOP_ID;
    static const char *const eot[] = {"<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>"};
    for (size_t k = 0; k < sizeof eot / sizeof *eot; k++)
      if (tn_tokenizer_token_to_id(tok, eot[k], strlen(eot[k])) == last) r->finish = TN_FINISH_STOP_ID;
  }
  return TN_OK;
}

static void add_stats(tn_agent_eval_ctx *c, const tn_episode *e) {
  c->episodes++;
  c->turns += e->turns;
  c->tool_calls += e->tool_calls;
  c->tool_errors += e->tool_errors;
  c->status[e->status]++;
}

tn_status tn_agent_eval_generate(void *ctx, const struct tn_prompt_s *p, int nb, int first, const tn_gen_opts *go,
                                 tn_gen_result *res) {
  tn_agent_eval_ctx *c = ctx;
  const int ns = go->n > 0 ? go->n : 1, S = nb * ns;
  tn_episode_task *tasks = calloc(S, sizeof *tasks);
  tn_episode *ep = calloc(S, sizeof *ep);
  if (!tasks || !ep) { free(tasks); free(ep); return tn_error(TN_ERR_NOMEM, "eval"); }
  for (int i = 0; i < nb; i++)
    for (int j = 0; j < ns; j++) tasks[i * ns + j] = (tn_episode_task){.task = p[i].json, .prompt = first + i, .sample = j};
  tn_episode_opts eo;
  tn_agent_episode_opts(c->a, &eo);
  eo.gen = *go;
  eo.gen.n = 1;
  eo.gen.stop_ids = NULL; /* the model's eos ids + the template's end of turn */
  eo.gen.n_stop_ids = 0;
  eo.max_turn_tokens = go->max_new_tokens;
  eo.system_prompt = c->system_prompt;
  eo.max_prompt_tokens = c->m->cfg.max_pos / 2;
  tn_status s = tn_episodes_run(c->m, c->tok, c->env, tasks, S, &eo, ep);
  memset(res, 0, sizeof *res * (size_t)S);
  for (int i = 0; i < S && s == TN_OK; i++) {
    s = final_result(&ep[i], c->m, c->tok, &res[i]);
    add_stats(c, &ep[i]);
  }
  if (s != TN_OK) tn_gen_results_free(res, S);
  tn_episodes_free(ep, s == TN_OK ? S : 0);
  free(ep);
  free(tasks);
  return s;
}

void tn_agent_eval_print(const tn_agent_eval_ctx *c, FILE *f) {
  if (!c->episodes) return;
  const double n = (double)c->episodes;
  fprintf(f, "episodes: %ld, %.2f turns, %.2f tool calls (%.2f errors) per episode; status", c->episodes, c->turns / n,
          c->tool_calls / n, c->tool_errors / n);
  for (int k = 0; k < TN_EP_NSTATUS; k++)
    if (c->status[k]) fprintf(f, " %s %ld", tn_episode_status_name(k), c->status[k]);
  fputc('\n', f);
}

tn_status tn_agent_chat(const tn_model *m, const tn_tokenizer *tok, const tn_agent_opts *a, const char *prompt,
                        const char *system, const tn_gen_opts *g, bool json) {
  tn_toolset *ts = NULL;
  tn_env *env = NULL;
  tn_status s = tn_agent_env_create(a, g->seed, &ts, &env);
  cJSON *task = cJSON_CreateObject();
  cJSON *msgs = cJSON_AddArrayToObject(task, "messages");
  if (system) {
    cJSON *sm = cJSON_CreateObject();
    cJSON_AddStringToObject(sm, "role", "system");
    cJSON_AddStringToObject(sm, "content", system);
    cJSON_AddItemToArray(msgs, sm);
  }
  cJSON *um = cJSON_CreateObject();
  cJSON_AddStringToObject(um, "role", "user");
  cJSON_AddStringToObject(um, "content", prompt);
  cJSON_AddItemToArray(msgs, um);
  cJSON_AddStringToObject(task, "prompt", prompt);
  tn_episode ep = {0};
  if (s == TN_OK) {
    tn_episode_opts eo;
    tn_agent_episode_opts(a, &eo);
    eo.gen = *g;
    eo.gen.n = 1;
    eo.max_turn_tokens = g->max_new_tokens;
    eo.max_prompt_tokens = m->cfg.max_pos / 2;
    eo.verbose = !json;
    tn_episode_task t = {.task = task};
    s = tn_episodes_run(m, tok, env, &t, 1, &eo, &ep);
  }
  if (s == TN_OK) {
    if (json) {
      cJSON *j = tn_episode_json(&ep);
      char *line = tn_json_print_valid(j, false);
      cJSON_Delete(j);
      printf("%s\n", line ? line : "");
      free(line);
    } else {
      printf("[episode] %s after %d turns, %d tool calls (%d errors), environment reward %g%s%s\n",
             tn_episode_status_name(ep.status), ep.turns, ep.tool_calls, ep.tool_errors, ep.env_reward,
             ep.error ? ": " : "", ep.error ? ep.error : "");
    }
    tn_episodes_free(&ep, 1);
  }
  cJSON_Delete(task);
  tn_env_free(env);
  tn_toolset_free(ts);
  return s;
}
