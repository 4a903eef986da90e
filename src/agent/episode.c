/* episode.c - the multi-turn episode loop (see episode.h and docs/agentic.md, "The episode
 * loop"): one engine slot per episode; a model turn ends -> its tool calls are parsed and the
 * assistant message goes to the environment on a worker thread (the slot waits, the others keep
 * decoding) -> the returned messages are rendered and only their new tokens are appended to the
 * slot -> the next turn. Not for: rewards or training (agentic.c). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent/episode.h"
#include "generate/generate.h"
#include "obs/obs.h"
#include "template/template.h"
#include "tunic/engine.h"

static const char *const STATUS[TN_EP_NSTATUS] = {"done", "truncated", "max_turns", "timeout", "env_error"};
const char *tn_episode_status_name(tn_episode_status s) { return s >= 0 && s < TN_EP_NSTATUS ? STATUS[s] : "?"; }

tn_status tn_episode_statuses_parse(const char *list, bool which[TN_EP_NSTATUS]) {
  memset(which, 0, sizeof(bool) * TN_EP_NSTATUS);
  if (!list) return TN_OK;
  const char *p = list;
  while (*p) {
    const char *q = strchr(p, ',');
    size_t n = q ? (size_t)(q - p) : strlen(p);
    if (n) {
      int k = 0;
      while (k < TN_EP_NSTATUS && !(strlen(STATUS[k]) == n && !strncmp(STATUS[k], p, n))) k++;
      if (k == TN_EP_NSTATUS)
        return tn_error(TN_ERR_ARG, "--filter-statuses: unknown status '%.*s' (done, truncated, max_turns, timeout, "
                        "env_error)", (int)n, p);
      which[k] = true;
    }
    p += n + (q ? 1 : 0);
  }
  return TN_OK;
}

void tn_episode_opts_default(tn_episode_opts *o) {
  memset(o, 0, sizeof *o);
  o->max_turns = 4;
  o->max_episode_tokens = 512;
  o->max_prompt_tokens = 512;
  o->rows_per_step = 256;
  tn_gen_opts_default(&o->gen);
}

/* ---- environment steps on worker threads ---- */
typedef struct ep_s ep_t;
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int *done_q, nq;        /* finished jobs (episode indices) */
} jobq_t;

struct ep_s {
  int idx, slot;
  char id[48];
  bool active, waiting, timed_out;
  int turn_start_tok;     /* transcript position where the current model turn starts */
  double t0, turn_t0;
  int budget_end;         /* transcript length limit (prompt + max_episode_tokens) */
  cJSON *last_msg;        /* the assistant message being stepped */
  bool last_calls, finish_called;
  /* the job */
  pthread_t th;
  tn_env *env;
  double tool_timeout;
  tn_trace *trace;
  jobq_t *jq;
  cJSON *out_msgs, *info;
  double reward, job_ms;
  bool env_done;
  tn_status js;
  char *jerr;
};

static void *job_main(void *arg) {
  ep_t *e = arg;
  const double t0 = tn_now();
  e->js = tn_env_step(e->env, e->id, e->last_msg, e->tool_timeout, &e->out_msgs, &e->reward, &e->env_done, &e->info);
  if (e->js != TN_OK) e->jerr = tn_strdup(tn_last_error());
  const double t1 = tn_now();
  e->job_ms = (t1 - t0) * 1000.0;
  if (e->trace) tn_trace_span(e->trace, e->last_calls ? "tool_calls" : "env_step", t0, t1);
  pthread_mutex_lock(&e->jq->mu);
  e->jq->done_q[e->jq->nq++] = e->idx;
  pthread_cond_signal(&e->jq->cv);
  pthread_mutex_unlock(&e->jq->mu);
  return NULL;
}

/* ---- rendering ---- */
static tn_status render(const tn_tokenizer *tok, const tn_episode_opts *o, const cJSON *msgs, const cJSON *tools, bool gen,
                        char **text) {
  tn_chat_req q = {.messages = msgs, .tools = tools && cJSON_GetArraySize(tools) > 0 ? tools : NULL,
                   .add_generation_prompt = gen, .template_text = o->chat_template};
  tn_chat_out out = {0};
  TN_TRY(tn_chat_render_req(tok, &q, &out));
  *text = out.text;
  out.text = NULL;
  tn_chat_out_free(&out);
  return TN_OK;
}

/* the initial messages: the environment's, else the row's "messages" or "prompt" */
static cJSON *initial_messages(const cJSON *task, cJSON *env_msgs, const char *sys) {
  cJSON *msgs = NULL;
  if (env_msgs && cJSON_IsArray(env_msgs) && cJSON_GetArraySize(env_msgs) > 0) msgs = cJSON_Duplicate(env_msgs, true);
  else if (task && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(task, "messages")))
    msgs = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(task, "messages"), true);
  else if (task && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(task, "prompt"))) {
    msgs = cJSON_CreateArray();
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", cJSON_GetObjectItemCaseSensitive(task, "prompt")->valuestring);
    cJSON_AddItemToArray(msgs, u);
  }
  if (!msgs) return NULL;
  /* a dataset row's trajectory (SFT data) holds the answer: keep the messages up to the first assistant one */
  int n = cJSON_GetArraySize(msgs), k = 0;
  for (; k < n; k++) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, k), "role");
    if (cJSON_IsString(r) && !strcmp(r->valuestring, "assistant")) break;
  }
  while (cJSON_GetArraySize(msgs) > k) cJSON_DeleteItemFromArray(msgs, k);
  const cJSON *r0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(msgs, 0), "role");
  if (sys && *sys && !(cJSON_IsString(r0) && !strcmp(r0->valuestring, "system"))) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "role", "system");
    cJSON_AddStringToObject(s, "content", sys);
    cJSON_InsertItemInArray(msgs, 0, s);
  }
  return msgs;
}

static const char *const EOT_MARKERS[] = {"<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<|eom_id|>"};

/* The text to append after the model's turn: render(transcript up to the assistant message) A
 * and render(all, generation prompt) B; A (trailing whitespace dropped) must be a prefix of B;
 * the new text is B after it. The slot keeps the tokens the model sampled (never re-rendered):
 * when the turn ended on another stop token than the template's end-of-turn marker (eos, or a
 * cut), the marker is added in front so the transcript reads as the template writes it. */
static tn_status delta_text(const tn_tokenizer *tok, const tn_episode_opts *o, cJSON *msgs, int n_upto,
                            const cJSON *tools, const char *last_tok_text, char **out, char *why, size_t whylen) {
  *out = NULL;
  cJSON *head = cJSON_CreateArray();
  for (int i = 0; i < n_upto; i++) cJSON_AddItemReferenceToArray(head, cJSON_GetArrayItem(msgs, i));
  char *A = NULL, *B = NULL;
  tn_status s = render(tok, o, head, tools, false, &A);
  cJSON_Delete(head);
  if (s == TN_OK) s = render(tok, o, msgs, tools, true, &B);
  if (s != TN_OK) { free(A); free(B); snprintf(why, whylen, "chat template: %s", tn_last_error()); return TN_ERR_FORMAT; }
  size_t la = strlen(A);
  while (la > 0 && (A[la - 1] == '\n' || A[la - 1] == ' ' || A[la - 1] == '\t' || A[la - 1] == '\r')) la--;
  if (strncmp(A, B, la) != 0) {
    snprintf(why, whylen, "the chat template is not prefix-preserving: the transcript rendered with the new messages "
             "does not start with its rendering before them (docs/agentic.md)");
    free(A); free(B);
    return TN_ERR_FORMAT;
  }
  const char *marker = "";
  size_t ll = last_tok_text ? strlen(last_tok_text) : 0;
  if (!(ll > 0 && la >= ll && !strncmp(A + la - ll, last_tok_text, ll)))
    for (size_t k = 0; k < sizeof EOT_MARKERS / sizeof *EOT_MARKERS; k++) {
      size_t lm = strlen(EOT_MARKERS[k]);
      if (la >= lm && !strncmp(A + la - lm, EOT_MARKERS[k], lm)) { marker = EOT_MARKERS[k]; break; }
    }
  size_t lm = strlen(marker), lb = strlen(B + la);
  *out = malloc(lm + lb + 1);
  if (*out) { memcpy(*out, marker, lm); memcpy(*out + lm, B + la, lb + 1); }
  free(A); free(B);
  return *out ? TN_OK : tn_error(TN_ERR_NOMEM, "episode");
}

typedef struct {
  const tn_model *m;
  const tn_tokenizer *tok;
  tn_env *env;
  const tn_episode_opts *o;
  tn_engine *eng;
  tn_tool_format fmt;
  ep_t *ep;
  tn_episode *out;
  uint8_t **mask; float **lp;   /* per slot (T) */
  int T, active;
  jobq_t jq;
  tn_encoding enc;
} run_t;

static void finish_ep(run_t *r, int i, tn_episode_status st, const char *err) {
  ep_t *e = &r->ep[i];
  tn_episode *x = &r->out[i];
  if (!e->active) return;
  e->active = false;
  r->active--;
  x->status = st;
  if (err && !x->error) x->error = tn_strdup(err);
  int n;
  const int *ids = tn_engine_tokens(r->eng, e->slot, &n);
  x->ids = malloc(sizeof(int) * (n + 1));
  x->mask = malloc(n + 1);
  x->logprobs = malloc(sizeof(float) * (n + 1));
  if (x->ids && x->mask && x->logprobs) {
    memcpy(x->ids, ids, sizeof(int) * n);
    memcpy(x->mask, r->mask[i], n);
    memcpy(x->logprobs, r->lp[i], sizeof(float) * n);
    x->n = n;
  }
  x->seconds = tn_now() - e->t0;
  tn_engine_close(r->eng, e->slot);
  tn_env_close(r->env, e->id);
}

static tn_status start_turn(run_t *r, int i) {
  ep_t *e = &r->ep[i];
  int n;
  tn_engine_tokens(r->eng, e->slot, &n);
  int room = e->budget_end - n;
  if (room <= 0) { finish_ep(r, i, TN_EP_TRUNCATED, NULL); return TN_OK; }
  const int mt = r->o->max_turn_tokens > 0 && r->o->max_turn_tokens < room ? r->o->max_turn_tokens : room;
  e->turn_start_tok = n;
  e->turn_t0 = tn_now();
  return tn_engine_generate(r->eng, e->slot, mt);
}

/* the model's turn ended: the assistant message to the environment */
static tn_status turn_ended(run_t *r, int i, int finish) {
  ep_t *e = &r->ep[i];
  tn_episode *x = &r->out[i];
  if (r->o->trace) tn_trace_span(r->o->trace, "turn", e->turn_t0, tn_now());
  int n;
  const int *ids = tn_engine_tokens(r->eng, e->slot, &n);
  char *text = NULL;
  size_t len;
  TN_TRY(tn_tokenizer_decode(r->tok, ids + e->turn_start_tok, n - e->turn_start_tok, true, &text, &len));
  x->turns++;
  free(x->final);
  x->final = text;
  tn_tool_calls tc = {0};
  TN_TRY(tn_tool_calls_parse(text, len, r->fmt, &tc));
  cJSON *msg = tn_tool_calls_to_message(&tc);
  e->last_calls = tc.n > 0;
  e->finish_called = false;
  for (size_t k = 0; k < tc.n && r->o->finish_tool; k++)
    if (tc.calls[k].name && !strcmp(tc.calls[k].name, r->o->finish_tool)) e->finish_called = true;
  tn_tool_calls_free(&tc);
  if (!msg) return tn_error(TN_ERR_NOMEM, "episode");
  if (r->o->verbose) { printf("[assistant] %s\n", text); fflush(stdout); }
  cJSON_AddItemToArray(x->messages, msg);
  if (finish == TN_FINISH_LENGTH || finish == TN_FINISH_CONTEXT) {
    /* cut at the budget: no complete message to act on */
    int nn;
    tn_engine_tokens(r->eng, e->slot, &nn);
    if (nn >= e->budget_end || finish == TN_FINISH_CONTEXT || r->o->max_turn_tokens <= 0) {
      finish_ep(r, i, TN_EP_TRUNCATED, NULL);
      return TN_OK;
    }
  }
  /* the environment step on a worker (the slot waits; the other slots keep decoding) */
  e->last_msg = msg;
  e->waiting = true;
  e->out_msgs = e->info = NULL;
  e->jerr = NULL;
  tn_engine_pause(r->eng, e->slot, true);
  if (pthread_create(&e->th, NULL, job_main, e) != 0) {
    e->waiting = false;
    return tn_error(TN_ERR_IO, "episode: cannot start a worker thread");
  }
  return TN_OK;
}

static double num_of(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* the environment answered */
static tn_status step_returned(run_t *r, int i) {
  ep_t *e = &r->ep[i];
  tn_episode *x = &r->out[i];
  pthread_join(e->th, NULL);
  e->waiting = false;
  tn_engine_pause(r->eng, e->slot, false);
  tn_status s = TN_OK;
  if (e->js != TN_OK) { /* tunic's own failure */
    s = tn_error(e->js, "%s", e->jerr ? e->jerr : "environment step failed");
    goto out;
  }
  x->env_reward += e->reward;
  if (x->turn_rewards && x->turns >= 1 && x->turns <= r->o->max_turns) x->turn_rewards[x->turns - 1] += e->reward;
  const char *st = "ok";
  if (e->info) {
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(e->info, "status");
    if (cJSON_IsString(sv)) st = sv->valuestring;
    x->tool_calls += (int)num_of(e->info, "tool_calls");
    x->tool_errors += (int)num_of(e->info, "tool_errors");
    const cJSON *rw = cJSON_GetObjectItemCaseSensitive(e->info, "rewards"), *it;
    cJSON_ArrayForEach(it, rw) {
      if (!cJSON_IsNumber(it) || !it->string) continue;
      cJSON *cur = cJSON_GetObjectItemCaseSensitive(x->env_rewards, it->string);
      if (cur) cJSON_SetNumberValue(cur, cur->valuedouble + it->valuedouble);
      else cJSON_AddNumberToObject(x->env_rewards, it->string, it->valuedouble);
    }
  }
  if (e->last_calls) x->tool_ms += e->job_ms;
  const cJSON *errv = e->info ? cJSON_GetObjectItemCaseSensitive(e->info, "error") : NULL;
  const char *err = cJSON_IsString(errv) ? errv->valuestring : NULL;
  if (!strcmp(st, "env_error")) { finish_ep(r, i, TN_EP_ENV_ERROR, err ? err : "environment error"); goto out; }
  if (!strcmp(st, "timeout")) { finish_ep(r, i, TN_EP_TIMEOUT, err ? err : "environment timeout"); goto out; }
  if (e->timed_out) { finish_ep(r, i, TN_EP_TIMEOUT, "episode timeout"); goto out; }
  if (e->env_done || e->finish_called) { finish_ep(r, i, TN_EP_DONE, NULL); goto out; }
  if (x->turns >= r->o->max_turns) { finish_ep(r, i, TN_EP_MAX_TURNS, NULL); goto out; }
  /* append the returned messages, render, and extend the slot by the new tokens only */
  const int n_upto = cJSON_GetArraySize(x->messages);
  cJSON *it;
  int added = 0;
  if (e->out_msgs) {
    cJSON_ArrayForEach(it, e->out_msgs) {
      cJSON_AddItemToArray(x->messages, cJSON_Duplicate(it, true));
      added++;
      if (r->o->verbose) {
        char *t = cJSON_PrintUnformatted(it);
        printf("[env] %s\n", t ? t : "");
        free(t);
      }
    }
  }
  if (!added) { finish_ep(r, i, TN_EP_DONE, NULL); goto out; } /* answered without a tool call (nothing to read) */
  int n;
  const int *ids = tn_engine_tokens(r->eng, e->slot, &n);
  char *last = NULL, *delta = NULL, why[256];
  size_t ll;
  s = tn_tokenizer_decode(r->tok, ids + n - 1, 1, false, &last, &ll);
  if (s != TN_OK) goto out;
  tn_status ds = delta_text(r->tok, r->o, x->messages, n_upto, x->tools, last, &delta, why, sizeof why);
  free(last);
  if (ds == TN_ERR_NOMEM) { s = ds; goto out; }
  if (ds != TN_OK) { finish_ep(r, i, TN_EP_ENV_ERROR, why); goto out; }
  s = tn_tokenizer_encode(r->tok, delta, strlen(delta), false, &r->enc);
  free(delta);
  if (s != TN_OK) goto out;
  if (n + (int)r->enc.n >= e->budget_end) { finish_ep(r, i, TN_EP_TRUNCATED, NULL); goto out; }
  s = tn_engine_append(r->eng, e->slot, (const int *)r->enc.ids, (int)r->enc.n);
  if (s == TN_OK) s = start_turn(r, i);
out:
  cJSON_Delete(e->out_msgs);
  cJSON_Delete(e->info);
  free(e->jerr);
  e->out_msgs = e->info = NULL;
  e->jerr = NULL;
  return s;
}

tn_status tn_episodes_run(const tn_model *m, const tn_tokenizer *tok, tn_env *env, const tn_episode_task *tasks, int n,
                          const tn_episode_opts *o, tn_episode *out) {
  memset(out, 0, sizeof *out * (size_t)n);
  if (n <= 0) return TN_OK;
  run_t r = {.m = m, .tok = tok, .env = env, .o = o, .out = out};
  r.ep = calloc(n, sizeof *r.ep);
  r.mask = calloc(n, sizeof *r.mask);
  r.lp = calloc(n, sizeof *r.lp);
  r.jq.done_q = malloc(sizeof(int) * n);
  int **pids = calloc(n, sizeof *pids), *plen = calloc(n, sizeof *plen);
  tn_status s = TN_OK;
  if (!r.ep || !r.mask || !r.lp || !r.jq.done_q || !pids || !plen) s = tn_error(TN_ERR_NOMEM, "episodes");
  pthread_mutex_init(&r.jq.mu, NULL);
  pthread_cond_init(&r.jq.cv, NULL);
  static atomic_long counter;
  /* reset every episode and render its prompt */
  int maxp = 1;
  for (int i = 0; i < n && s == TN_OK; i++) {
    ep_t *e = &r.ep[i];
    tn_episode *x = &out[i];
    e->idx = i;
    e->env = env;
    e->jq = &r.jq;
    e->trace = o->trace;
    e->tool_timeout = o->tool_timeout;
    e->t0 = tn_now();
    snprintf(e->id, sizeof e->id, "ep%ld", (long)atomic_fetch_add(&counter, 1));
    x->env_rewards = cJSON_CreateObject();
    x->turn_rewards = calloc(o->max_turns > 0 ? o->max_turns : 1, sizeof(double));
    if (!x->turn_rewards) { s = tn_error(TN_ERR_NOMEM, "episodes"); break; }
    cJSON *em = NULL, *tools = NULL;
    tn_status rs = tn_env_reset(env, e->id, tasks[i].task, &em, &tools);
    x->messages = initial_messages(tasks[i].task, rs == TN_OK ? em : NULL, o->system_prompt);
    x->tools = tools;
    cJSON_Delete(em);
    if (!x->messages) x->messages = cJSON_CreateArray();
    if (rs != TN_OK) { x->status = TN_EP_ENV_ERROR; x->error = tn_strdup(tn_last_error()); continue; }
    if (cJSON_GetArraySize(x->messages) == 0) {
      x->status = TN_EP_ENV_ERROR;
      x->error = tn_strdup("no messages to start the episode (the row has no \"prompt\" or \"messages\")");
      tn_env_close(env, e->id);
      continue;
    }
    char *text = NULL;
    s = render(tok, o, x->messages, x->tools, true, &text);
    if (s != TN_OK) break;
    x->prompt_text = text;
    s = tn_tokenizer_encode(tok, text, strlen(text), false, &r.enc);
    if (s != TN_OK) break;
    if ((int)r.enc.n > o->max_prompt_tokens || r.enc.n == 0) {
      x->status = TN_EP_ENV_ERROR;
      char b[160];
      snprintf(b, sizeof b, "the rendered prompt has %zu tokens, above --max-prompt-length %d", r.enc.n, o->max_prompt_tokens);
      x->error = tn_strdup(b);
      tn_env_close(env, e->id);
      continue;
    }
    pids[i] = malloc(sizeof(int) * r.enc.n);
    if (!pids[i]) { s = tn_error(TN_ERR_NOMEM, "episodes"); break; }
    memcpy(pids[i], r.enc.ids, sizeof(int) * r.enc.n);
    plen[i] = (int)r.enc.n;
    x->prompt_len = plen[i];
    maxp = plen[i] > maxp ? plen[i] : maxp;
    e->active = true;
    r.active++;
  }
  r.T = maxp + o->max_episode_tokens + 1;
  if (r.T > m->cfg.max_pos) r.T = m->cfg.max_pos;
  for (int i = 0; i < n && s == TN_OK; i++) {
    if (!r.ep[i].active) continue;
    r.mask[i] = calloc(r.T + 1, 1);
    r.lp[i] = calloc(r.T + 1, sizeof(float));
    if (!r.mask[i] || !r.lp[i]) s = tn_error(TN_ERR_NOMEM, "episodes");
    r.ep[i].budget_end = plen[i] + o->max_episode_tokens < r.T ? plen[i] + o->max_episode_tokens : r.T;
    if (plen[i] >= r.T) { s = tn_error(TN_ERR_LIMIT, "episode %d: prompt of %d tokens fills the model's context", i, plen[i]); }
  }
  tn_engine_opts eo = {.max_slots = n, .context = r.T, .rows_per_step = o->rows_per_step > 0 ? o->rows_per_step : 256};
  if (s == TN_OK) s = tn_engine_create(&r.eng, m, &eo);
  /* the stop ids: the model's eos ids and the template's end-of-turn marker */
  int stops[TN_MAX_EOS + 8], ns = 0;
  for (int k = 0; k < m->cfg.n_eos; k++) stops[ns++] = m->cfg.eos_ids[k];
  for (size_t k = 0; k < sizeof EOT_MARKERS / sizeof *EOT_MARKERS; k++) {
    int id = tn_tokenizer_token_to_id(tok, EOT_MARKERS[k], strlen(EOT_MARKERS[k]));
    if (id >= 0) stops[ns++] = id;
  }
  tn_gen_opts go = o->gen;
  if (!go.stop_ids) { go.stop_ids = stops; go.n_stop_ids = ns; }
  tn_chat_req q0 = {.template_text = o->chat_template};
  r.fmt = tn_tool_format_of_template(tn_chat_template_for(tok, &q0));
  /* open the slots: an episode whose prompt equals its group leader's forks it */
  for (int i = 0; i < n && s == TN_OK; i++) {
    if (!r.ep[i].active) continue;
    int lead = -1;
    for (int j = 0; j < i && lead < 0; j++)
      if (r.ep[j].active && tasks[j].prompt == tasks[i].prompt && plen[j] == plen[i] &&
          !memcmp(pids[j], pids[i], sizeof(int) * plen[i]) && tn_engine_cached(r.eng, r.ep[j].slot) == 0)
        lead = j;
    if (lead >= 0) s = tn_engine_fork(r.eng, r.ep[lead].slot, &go, tasks[i].prompt, tasks[i].sample, &r.ep[i].slot);
    else {
      s = tn_engine_open(r.eng, &go, tasks[i].prompt, tasks[i].sample, &r.ep[i].slot);
      if (s == TN_OK) s = tn_engine_append(r.eng, r.ep[i].slot, pids[i], plen[i]);
    }
    if (s == TN_OK) s = start_turn(&r, i);
  }
  /* the loop */
  while (s == TN_OK && r.active > 0) {
    /* environment steps that returned */
    pthread_mutex_lock(&r.jq.mu);
    int nq = r.jq.nq, q[nq > 0 ? nq : 1];
    memcpy(q, r.jq.done_q, sizeof(int) * nq);
    r.jq.nq = 0;
    pthread_mutex_unlock(&r.jq.mu);
    for (int k = 0; k < nq && s == TN_OK; k++) s = step_returned(&r, q[k]);
    if (s != TN_OK) break;
    /* episode timeouts */
    if (o->episode_timeout > 0) {
      const double now = tn_now();
      for (int i = 0; i < n; i++) {
        ep_t *e = &r.ep[i];
        if (!e->active || now - e->t0 < o->episode_timeout) continue;
        if (e->waiting) e->timed_out = true; /* ends when its environment step returns (bounded by --tool-timeout) */
        else { tn_engine_cancel(r.eng, e->slot); finish_ep(&r, i, TN_EP_TIMEOUT, "episode timeout"); }
      }
    }
    if (tn_engine_busy(r.eng)) {
      const tn_engine_event *ev;
      int nev;
      s = tn_engine_step(r.eng, &ev, &nev);
      for (int k = 0; k < nev && s == TN_OK; k++) {
        int i = 0;
        while (i < n && !(r.ep[i].active && r.ep[i].slot == ev[k].slot)) i++;
        if (i == n) continue;
        int nt;
        tn_engine_tokens(r.eng, ev[k].slot, &nt);
        r.mask[i][nt - 1] = 1;
        r.lp[i][nt - 1] = ev[k].logprob;
        if (ev[k].done) s = turn_ended(&r, i, ev[k].finish);
      }
    } else if (r.active > 0) {
      pthread_mutex_lock(&r.jq.mu);
      if (r.jq.nq == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&r.jq.cv, &r.jq.mu, &ts);
      }
      pthread_mutex_unlock(&r.jq.mu);
    }
  }
  /* on a failure: wait for the workers still running, then end every episode */
  for (int i = 0; i < n; i++)
    if (r.ep[i].waiting) {
      pthread_join(r.ep[i].th, NULL);
      cJSON_Delete(r.ep[i].out_msgs);
      cJSON_Delete(r.ep[i].info);
      free(r.ep[i].jerr);
    }
  for (int i = 0; i < n && r.eng; i++)
    if (r.ep[i].active) finish_ep(&r, i, TN_EP_ENV_ERROR, "not finished (the run failed)");
  for (int i = 0; i < n; i++) { free(pids ? pids[i] : NULL); free(r.mask ? r.mask[i] : NULL); free(r.lp ? r.lp[i] : NULL); }
  free(pids); free(plen); free(r.mask); free(r.lp); free(r.jq.done_q); free(r.ep);
  tn_encoding_free(&r.enc);
  tn_engine_free(r.eng);
  pthread_mutex_destroy(&r.jq.mu);
  pthread_cond_destroy(&r.jq.cv);
  if (s != TN_OK) tn_episodes_free(out, n);
  return s;
}

void tn_episodes_free(tn_episode *e, int n) {
  for (int i = 0; e && i < n; i++) {
    free(e[i].ids); free(e[i].mask); free(e[i].logprobs); free(e[i].final); free(e[i].error); free(e[i].prompt_text);
    free(e[i].turn_rewards);
    cJSON_Delete(e[i].messages); cJSON_Delete(e[i].tools); cJSON_Delete(e[i].env_rewards);
    memset(&e[i], 0, sizeof e[i]);
  }
}

cJSON *tn_episode_json(const tn_episode *e) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "messages", e->messages ? cJSON_Duplicate(e->messages, true) : cJSON_CreateArray());
  if (e->tools) cJSON_AddItemToObject(o, "tools", cJSON_Duplicate(e->tools, true));
  cJSON_AddStringToObject(o, "status", tn_episode_status_name(e->status));
  if (e->error) cJSON_AddStringToObject(o, "error", e->error);
  cJSON_AddNumberToObject(o, "turns", e->turns);
  cJSON_AddNumberToObject(o, "tool_calls", e->tool_calls);
  cJSON_AddNumberToObject(o, "tool_errors", e->tool_errors);
  cJSON_AddNumberToObject(o, "tool_ms", e->tool_ms);
  cJSON_AddNumberToObject(o, "env_reward", e->env_reward);
  cJSON_AddItemToObject(o, "env_rewards", e->env_rewards ? cJSON_Duplicate(e->env_rewards, true) : cJSON_CreateObject());
  if (e->turn_rewards) cJSON_AddItemToObject(o, "turn_rewards", cJSON_CreateDoubleArray(e->turn_rewards, e->turns));
  cJSON_AddNumberToObject(o, "prompt_len", e->prompt_len);
  cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray(e->ids ? e->ids : (int[]){0}, e->n));
  int *mk = malloc(sizeof(int) * (e->n + 1));
  for (int i = 0; mk && i < e->n; i++) mk[i] = e->mask[i];
  cJSON_AddItemToObject(o, "mask", cJSON_CreateIntArray(mk ? mk : (int[]){0}, mk ? e->n : 0));
  free(mk);
  cJSON *lp = cJSON_CreateArray();
  for (int i = 0; i < e->n; i++) cJSON_AddItemToArray(lp, cJSON_CreateNumber(e->logprobs[i]));
  cJSON_AddItemToObject(o, "logprobs", lp);
  cJSON_AddStringToObject(o, "final", e->final ? e->final : "");
  return o;
}
