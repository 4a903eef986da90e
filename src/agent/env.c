/* env.c - the environments of agentic episodes (env.h): "tools", "math", "high_card_duel",
 * "frozenlake" and "cmd:COMMAND" (JSON lines over a pipe, chan.c). Each keeps per-episode state
 * in a table under a mutex; one call per episode at a time, many episodes at once.
 * Not for: generation or training (src/generate, src/rl); the card game's rules (hcd.c). */
#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include "agent/chan.h"
#include "agent/env.h"
#include "agent/hcd.h"
#include "eval/eval.h"

enum { E_TOOLS, E_MATH, E_HCD, E_LAKE, E_CMD };

typedef struct episode {
  char *id;
  int turns;
  char *answer;   /* math: the reference */
  tn_hcd_deal deal;
  bool over;
  int pos;        /* frozenlake: cell 0..15 */
  tn_rng rng;
  struct episode *next;
} episode;

struct tn_env {
  int kind;
  char *name;
  tn_toolset *ts;
  tn_env_opts o;
  tn_chan *ch;
  pthread_mutex_t mu;
  episode *eps;
};

void tn_env_opts_default(tn_env_opts *o) {
  memset(o, 0, sizeof *o);
  o->timeout_s = 30;
  o->seed = 1;
  o->max_turns = 100;
}

tn_status tn_env_create(tn_env **out, const char *spec, tn_toolset *ts, const tn_env_opts *o) {
  *out = NULL;
  if (!spec || !*spec) spec = "tools";
  int kind;
  if (!strcmp(spec, "tools")) kind = E_TOOLS;
  else if (!strcmp(spec, "math")) kind = E_MATH;
  else if (!strcmp(spec, "high_card_duel")) kind = E_HCD;
  else if (!strcmp(spec, "frozenlake")) kind = E_LAKE;
  else if (!strncmp(spec, "cmd:", 4)) kind = E_CMD;
  else return tn_error(TN_ERR_ARG, "--env: unknown environment '%s' (tools, math, high_card_duel, frozenlake, cmd:COMMAND)", spec);
  tn_env *e = calloc(1, sizeof *e);
  if (!e) return TN_ERR_NOMEM;
  e->kind = kind;
  e->ts = ts;
  if (o) e->o = *o;
  else tn_env_opts_default(&e->o);
  if (e->o.timeout_s <= 0) e->o.timeout_s = 30;
  if (e->o.max_turns <= 0) e->o.max_turns = 100;
  e->name = strdup(spec);
  pthread_mutex_init(&e->mu, NULL);
  if (!e->name) { tn_env_free(e); return TN_ERR_NOMEM; }
  if (kind == E_CMD) {
    char what[200];
    snprintf(what, sizeof what, "environment '%.150s'", spec + 4);
    tn_status st = tn_chan_start(&e->ch, spec + 4, e->o.cwd, what, false);
    if (st != TN_OK) { tn_env_free(e); return st; }
  }
  *out = e;
  return TN_OK;
}

const char *tn_env_name(const tn_env *e) { return e->name; }

/* ---- the episode table ---- */
static episode *find_ep(tn_env *e, const char *id) {
  pthread_mutex_lock(&e->mu);
  episode *p = e->eps;
  while (p && strcmp(p->id, id)) p = p->next;
  pthread_mutex_unlock(&e->mu);
  return p;
}

static tn_status new_ep(tn_env *e, const char *id, episode **out) {
  if (!id || !*id) return tn_error(TN_ERR_ARG, "%s: an episode needs an id", e->name);
  if (find_ep(e, id)) return tn_error(TN_ERR_ARG, "%s: episode '%s' is already in flight", e->name, id);
  episode *p = calloc(1, sizeof *p);
  if (!p || !(p->id = strdup(id))) { free(p); return TN_ERR_NOMEM; }
  pthread_mutex_lock(&e->mu);
  p->next = e->eps;
  e->eps = p;
  pthread_mutex_unlock(&e->mu);
  *out = p;
  return TN_OK;
}

static void free_ep(episode *p) {
  free(p->id);
  free(p->answer);
  free(p);
}

static void drop_ep(tn_env *e, const char *id) {
  pthread_mutex_lock(&e->mu);
  for (episode **pp = &e->eps; *pp; pp = &(*pp)->next)
    if (!strcmp((*pp)->id, id)) {
      episode *p = *pp;
      *pp = p->next;
      free_ep(p);
      break;
    }
  pthread_mutex_unlock(&e->mu);
}

/* ---- helpers ---- */
static const char *str_field(const cJSON *o, const char *const *keys) {
  for (; *keys; keys++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, *keys);
    if (cJSON_IsString(v)) return v->valuestring;
  }
  return NULL;
}

static const cJSON *tool_calls_of(const cJSON *msg) {
  const cJSON *tc = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
  return cJSON_IsArray(tc) && cJSON_GetArraySize(tc) > 0 ? tc : NULL;
}

static const char *content_of(const cJSON *msg) {
  const cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
  return cJSON_IsString(c) ? c->valuestring : "";
}

static double add_reward(cJSON *rewards, const char *name, double v) {
  if (v != 0) cJSON_AddNumberToObject(rewards, name, v);
  return v;
}

/* One tool call of a message, run on its own thread when the message has several. */
typedef struct {
  tn_env *e;
  const cJSON *call;
  double timeout_s;
  cJSON *msg;
  tn_tool_result r;
  tn_status st;
  char err[256];
} call_job;

static void *call_job_run(void *p) {
  call_job *j = p;
  if (j->e->ts) {
    j->st = tn_toolset_call_message(j->e->ts, j->call, j->timeout_s, &j->msg, &j->r);
  } else {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j->call, "id");
    j->msg = tn_agent_message("tool", "error: no tools are available in this environment");
    if (j->msg && cJSON_IsString(id)) cJSON_AddStringToObject(j->msg, "tool_call_id", id->valuestring);
    j->st = j->msg ? TN_OK : TN_ERR_NOMEM;
  }
  if (j->st != TN_OK) snprintf(j->err, sizeof j->err, "%s", tn_last_error()); /* errors are per thread */
  return NULL;
}

/* Run the message's tool calls (at once, one thread each, when there are several), appending
 * the tool messages in the calls' order; the per-turn rewards (bonus per success, penalty per
 * failure) go into rewards. */
static tn_status run_tool_calls(tn_env *e, const cJSON *calls, double timeout_s, cJSON *msgs, cJSON *info,
                                cJSON *rewards, double *reward) {
  int n = cJSON_GetArraySize(calls), errs = 0;
  if (n > 64) n = 64; /* a message with more calls gets the first 64 run */
  call_job *jobs = calloc((size_t)n, sizeof *jobs);
  pthread_t *th = calloc((size_t)n, sizeof *th);
  bool *started = calloc((size_t)n, sizeof *started);
  if (!jobs || !th || !started) { free(jobs); free(th); free(started); return TN_ERR_NOMEM; }
  for (int i = 0; i < n; i++) {
    jobs[i] = (call_job){.e = e, .call = cJSON_GetArrayItem(calls, i), .timeout_s = timeout_s};
    if (n > 1 && i < n - 1) started[i] = pthread_create(&th[i], NULL, call_job_run, &jobs[i]) == 0;
    if (!started[i]) call_job_run(&jobs[i]); /* the last one (or a thread that could not start) here */
  }
  double ms = 0;
  tn_status st = TN_OK;
  for (int i = 0; i < n; i++) {
    if (started[i]) pthread_join(th[i], NULL);
    if (jobs[i].st != TN_OK && st == TN_OK) st = tn_error(jobs[i].st, "%s", jobs[i].err);
    if (jobs[i].msg) cJSON_AddItemToArray(msgs, jobs[i].msg);
    errs += !jobs[i].r.ok;
    ms = ms > jobs[i].r.ms ? ms : jobs[i].r.ms;
    tn_tool_result_free(&jobs[i].r);
  }
  free(jobs); free(th); free(started);
  if (st != TN_OK) return st;
  *reward += add_reward(rewards, "tool_bonus", e->o.tool_bonus * (n - errs));
  *reward += add_reward(rewards, "tool_error_penalty", -e->o.tool_error_penalty * errs);
  cJSON_AddNumberToObject(info, "tool_calls", n);
  cJSON_AddNumberToObject(info, "tool_errors", errs);
  cJSON_AddNumberToObject(info, "tool_ms", ms); /* the slowest call (they ran at once) */
  return TN_OK;
}

/* ---- frozenlake: Gymnasium's 4x4 map, slippery (the intended move with p 1/3, each
 * perpendicular one with p 1/3), actions 0 left 1 down 2 right 3 up ---- */
static const char *LAKE[4] = {"SFFF", "FHFH", "FFFH", "HFFG"};
static const char *DIRS[4] = {"left", "down", "right", "up"};

static int lake_step(int pos, int a) {
  int r = pos / 4, c = pos % 4;
  if (a == 0) c = c > 0 ? c - 1 : 0;
  else if (a == 1) r = r < 3 ? r + 1 : 3;
  else if (a == 2) c = c < 3 ? c + 1 : 3;
  else r = r > 0 ? r - 1 : 0;
  return r * 4 + c;
}

static void lake_text(int pos, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "You are at row %d, column %d (P on the map):\n", pos / 4 + 1, pos % 4 + 1);
  for (int r = 0; r < 4 && n + 6 < cap; r++) {
    for (int c = 0; c < 4; c++) buf[n++] = r * 4 + c == pos ? 'P' : LAKE[r][c];
    buf[n++] = '\n';
  }
  buf[n] = 0;
}

static int word_dir(const char *t) {
  int a = -1;
  for (const char *p = t; p && *p; p++)
    for (int d = 0; d < 4; d++) {
      size_t n = strlen(DIRS[d]);
      if (!strncasecmp(p, DIRS[d], n) && (p == t || !isalpha((unsigned char)p[-1])) && !isalpha((unsigned char)p[n])) a = d;
    }
  return a;
}

static const char *LAKE_SYSTEM =
    "You are on a frozen lake, a 4x4 grid: S start, F frozen (safe), H hole, G goal. Reach G without "
    "falling into a hole. The ice is slippery: you move in the direction you choose only one time in "
    "three; otherwise you slide to one side of it. Move with the move tool (direction: left, down, right "
    "or up), or answer with one of those words.";
static const char *LAKE_TOOL =
    "{\"type\":\"function\",\"function\":{\"name\":\"move\",\"description\":\"Move one cell on the frozen lake "
    "(the ice may make you slide sideways).\",\"parameters\":{\"type\":\"object\",\"properties\":{\"direction\":"
    "{\"type\":\"string\",\"enum\":[\"left\",\"down\",\"right\",\"up\"]}},\"required\":[\"direction\"]}}}";

static uint64_t ep_hash(uint64_t seed, const char *id) {
  uint64_t h = 1469598103934665603ULL ^ (seed * 0x9e3779b97f4a7c15ULL);
  for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 1099511628211ULL;
  return h;
}

/* ---- reset ---- */
static tn_status reset_cmd(tn_env *e, const char *id, const cJSON *task, cJSON **messages, cJSON **tools) {
  cJSON *params = cJSON_CreateObject(), *res = NULL;
  if (!params) return TN_ERR_NOMEM;
  cJSON_AddStringToObject(params, "episode", id);
  cJSON_AddItemToObject(params, "task", task ? cJSON_Duplicate(task, 1) : cJSON_CreateNull());
  tn_status st = tn_chan_request(e->ch, "reset", params, e->o.timeout_s, &res);
  cJSON_Delete(params);
  if (st != TN_OK) return tn_error_prefix(st, "reset of episode '%s'", id);
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "messages"), *t = cJSON_GetObjectItemCaseSensitive(res, "tools");
  if (!cJSON_IsObject(res) || (m && !cJSON_IsArray(m) && !cJSON_IsNull(m)) || (t && !cJSON_IsArray(t) && !cJSON_IsNull(t))) {
    cJSON_Delete(res);
    return tn_error(TN_ERR_IO, "%s: reset of episode '%s': the result must be an object with optional arrays \"messages\" and \"tools\"", e->name, id);
  }
  if (messages && cJSON_IsArray(m)) *messages = cJSON_DetachItemFromObjectCaseSensitive(res, "messages");
  if (tools) *tools = cJSON_IsArray(t) ? cJSON_DetachItemFromObjectCaseSensitive(res, "tools")
                                       : (e->ts ? cJSON_Duplicate(tn_toolset_schemas(e->ts), 1) : cJSON_CreateArray());
  cJSON_Delete(res);
  return TN_OK;
}

tn_status tn_env_reset(tn_env *e, const char *id, const cJSON *task, cJSON **messages, cJSON **tools) {
  if (messages) *messages = NULL;
  if (tools) *tools = NULL;
  episode *ep = NULL;
  TN_TRY(new_ep(e, id, &ep));
  tn_status st = TN_OK;
  cJSON *msgs = NULL, *tl = NULL;
  long before = tn_alloc_failures();
  switch (e->kind) {
    case E_CMD:
      st = reset_cmd(e, id, task, messages ? &msgs : NULL, tools ? &tl : NULL);
      break;
    case E_TOOLS:
    case E_MATH: {
      static const char *const QK[] = {"question", "prompt", "problem", NULL};
      static const char *const AK[] = {"answer", "expected_answer", "final_answer", NULL};
      const char *q = str_field(task, QK), *a = str_field(task, AK);
      if (e->kind == E_MATH && (!q || !a)) {
        st = tn_error(TN_ERR_ARG, "math environment: the task needs a \"question\" (or \"prompt\") and an \"answer\" (or \"expected_answer\") string");
        break;
      }
      if (a && !(ep->answer = strdup(a))) { st = TN_ERR_NOMEM; break; }
      if (q) { msgs = cJSON_CreateArray(); cJSON_AddItemToArray(msgs, tn_agent_message("user", q)); }
      tl = e->ts ? cJSON_Duplicate(tn_toolset_schemas(e->ts), 1) : cJSON_CreateArray();
      break;
    }
    case E_HCD:
      tn_hcd_deal_episode(e->o.seed, id, &ep->deal);
      msgs = tn_hcd_start_messages(&ep->deal);
      tl = cJSON_CreateArray();
      if (!msgs) st = TN_ERR_NOMEM;
      break;
    case E_LAKE: {
      tn_rng_seed(&ep->rng, ep_hash(e->o.seed, id));
      char text[256];
      lake_text(0, text, sizeof text);
      msgs = cJSON_CreateArray();
      cJSON_AddItemToArray(msgs, tn_agent_message("system", LAKE_SYSTEM));
      cJSON_AddItemToArray(msgs, tn_agent_message("user", text));
      tl = cJSON_CreateArray();
      cJSON_AddItemToArray(tl, cJSON_Parse(LAKE_TOOL));
      break;
    }
  }
  if (st == TN_OK && tn_alloc_failures() != before) st = tn_error(TN_ERR_NOMEM, "%s: out of memory", e->name);
  if (st != TN_OK) {
    cJSON_Delete(msgs);
    cJSON_Delete(tl);
    drop_ep(e, id);
    return st;
  }
  if (messages) *messages = msgs;
  else cJSON_Delete(msgs);
  if (tools) *tools = tl;
  else cJSON_Delete(tl);
  return TN_OK;
}

/* ---- step ---- */
static void env_failure(cJSON *info, tn_status st) {
  cJSON_ReplaceItemInObject(info, "status", cJSON_CreateString(st == TN_ERR_LIMIT ? "timeout" : "env_error"));
  cJSON_AddStringToObject(info, "error", tn_last_error());
}

static tn_status step_cmd(tn_env *e, episode *ep, const cJSON *msg, double timeout_s, cJSON *msgs, double *reward,
                          bool *done, cJSON *info, cJSON *rewards) {
  cJSON *params = cJSON_CreateObject(), *res = NULL;
  if (!params) return TN_ERR_NOMEM;
  cJSON_AddStringToObject(params, "episode", ep->id);
  cJSON_AddItemToObject(params, "message", cJSON_Duplicate(msg, 1));
  tn_status st = tn_chan_request(e->ch, "step", params, timeout_s, &res);
  cJSON_Delete(params);
  if (st == TN_ERR_NOMEM) return st;
  if (st != TN_OK) {
    tn_error_prefix(st, "step of episode '%s'", ep->id);
    env_failure(info, st);
    *done = true;
    return TN_OK;
  }
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(res, "messages"), *r = cJSON_GetObjectItemCaseSensitive(res, "reward");
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(res, "done"), *in = cJSON_GetObjectItemCaseSensitive(res, "info");
  bool bad_msgs = m && !cJSON_IsNull(m) && !cJSON_IsArray(m);
  const cJSON *x, *marr = cJSON_IsArray(m) ? m : NULL;
  cJSON_ArrayForEach(x, marr) if (!cJSON_IsObject(x)) bad_msgs = true;
  if (!cJSON_IsObject(res) || bad_msgs || (r && !cJSON_IsNumber(r) && !cJSON_IsNull(r)) || (d && !cJSON_IsBool(d) && !cJSON_IsNull(d))) {
    tn_error(TN_ERR_IO, "%s: step of episode '%s': the result must be an object with \"messages\" (an array of "
             "message objects), \"reward\" (a number) and \"done\" (true/false)", e->name, ep->id);
    env_failure(info, TN_ERR_IO);
    cJSON_Delete(res);
    *done = true;
    return TN_OK;
  }
  cJSON_ArrayForEach(x, marr) cJSON_AddItemToArray(msgs, cJSON_Duplicate(x, 1));
  *reward = cJSON_IsNumber(r) ? r->valuedouble : 0;
  add_reward(rewards, "env", *reward);
  *done = cJSON_IsTrue(d);
  if (cJSON_IsObject(in)) cJSON_AddItemToObject(info, "env_info", cJSON_Duplicate(in, 1));
  cJSON_Delete(res);
  return TN_OK;
}

tn_status tn_env_step(tn_env *e, const char *id, const cJSON *msg, double timeout_s, cJSON **messages, double *reward,
                      bool *done, cJSON **info) {
  *messages = NULL;
  *reward = 0;
  *done = false;
  if (info) *info = NULL;
  episode *ep = id ? find_ep(e, id) : NULL;
  if (!ep) return tn_error(TN_ERR_ARG, "%s: no episode '%s' in flight (reset it first)", e->name, id ? id : "(null)");
  if (timeout_s <= 0) timeout_s = e->kind == E_CMD ? e->o.timeout_s : 0;
  cJSON *msgs = cJSON_CreateArray(), *inf = cJSON_CreateObject(), *rewards = cJSON_CreateObject();
  long before = tn_alloc_failures();
  if (!msgs || !inf || !rewards) { cJSON_Delete(msgs); cJSON_Delete(inf); cJSON_Delete(rewards); return TN_ERR_NOMEM; }
  cJSON_AddStringToObject(inf, "status", "ok");
  ep->turns++;
  cJSON_AddNumberToObject(inf, "turn", ep->turns);
  double r = 0;
  bool d = false;
  tn_status st = TN_OK;
  if (ep->over) {
    tn_error(TN_ERR_IO, "%s: episode '%s' is already over", e->name, id);
    env_failure(inf, TN_ERR_IO);
    d = true;
  } else if (!cJSON_IsObject(msg)) {
    tn_error(TN_ERR_ARG, "%s: step of episode '%s': the assistant message is not an object", e->name, id);
    env_failure(inf, TN_ERR_ARG);
    d = true;
  } else {
    const cJSON *calls = tool_calls_of(msg);
    if (e->kind != E_CMD && ep->turns > 1) r += add_reward(rewards, "turn_penalty", -e->o.turn_penalty);
    switch (e->kind) {
      case E_CMD:
        st = step_cmd(e, ep, msg, timeout_s, msgs, &r, &d, inf, rewards);
        break;
      case E_TOOLS:
      case E_MATH:
        if (calls) {
          st = run_tool_calls(e, calls, timeout_s, msgs, inf, rewards, &r);
        } else {
          d = true;
          if (e->kind == E_MATH) {
            tn_extract_config cfg;
            tn_extract_config_default(&cfg);
            tn_score sc;
            tn_score_example(content_of(msg), ep->answer, &cfg, &sc);
            r += add_reward(rewards, "correct", sc.correct ? 1 : 0);
            cJSON_AddBoolToObject(inf, "correct", sc.correct);
            cJSON_AddStringToObject(inf, "extracted", sc.extracted);
          }
        }
        break;
      case E_HCD: {
        int a = -1;
        const cJSON *c;
        cJSON_ArrayForEach(c, calls) { /* a tool call act/bet/fold with an "action" argument, or named bet / fold */
          const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
          const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name"), *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
          cJSON *parsed = cJSON_IsString(args) ? cJSON_Parse(args->valuestring) : NULL;
          const cJSON *act = cJSON_GetObjectItemCaseSensitive(parsed ? parsed : args, "action");
          if (cJSON_IsString(act)) a = tn_hcd_parse_action(act->valuestring);
          else if (cJSON_IsString(nm)) a = tn_hcd_parse_action(nm->valuestring);
          cJSON_Delete(parsed);
        }
        if (a < 0) a = tn_hcd_parse_action(content_of(msg));
        if (a < 0) { cJSON_AddBoolToObject(inf, "invalid_action", true); a = TN_HCD_FOLD; }
        cJSON *show = NULL, *out = tn_hcd_outcome(&ep->deal, a, &show);
        if (!out) { st = TN_ERR_NOMEM; break; }
        cJSON_AddItemToArray(msgs, show);
        r += add_reward(rewards, "chips", cJSON_GetObjectItem(out, "chips")->valuedouble);
        cJSON_AddItemToObject(inf, "outcome", out);
        d = true;
        break;
      }
      case E_LAKE: {
        int a = -1;
        const char *call_id = NULL;
        const cJSON *c;
        cJSON_ArrayForEach(c, calls) {
          const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
          const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments"), *cid = cJSON_GetObjectItemCaseSensitive(c, "id");
          cJSON *parsed = cJSON_IsString(args) ? cJSON_Parse(args->valuestring) : NULL;
          const cJSON *dir = cJSON_GetObjectItemCaseSensitive(parsed ? parsed : args, "direction");
          if (cJSON_IsString(dir)) a = word_dir(dir->valuestring);
          if (cJSON_IsString(cid)) call_id = cid->valuestring;
          cJSON_Delete(parsed);
          break; /* one move per turn: the first call */
        }
        if (a < 0 && !calls) a = word_dir(content_of(msg));
        char text[512];
        if (a < 0) {
          snprintf(text, sizeof text, "No move understood: call move with direction left, down, right or up.");
          cJSON_AddBoolToObject(inf, "invalid_action", true);
        } else {
          int slip = (int)(tn_rng_u64(&ep->rng) % 3); /* 0 as chosen, 1 / 2 the perpendicular ones */
          int actual = slip == 0 ? a : slip == 1 ? (a + 3) % 4 : (a + 1) % 4;
          ep->pos = lake_step(ep->pos, actual);
          char cell = LAKE[ep->pos / 4][ep->pos % 4];
          char where[200];
          lake_text(ep->pos, where, sizeof where);
          snprintf(text, sizeof text, "You tried to move %s%s%s. %s%s", DIRS[a], actual != a ? " and slid " : "",
                   actual != a ? DIRS[actual] : "", cell == 'H' ? "You fell into a hole. " : cell == 'G' ? "You reached the goal! " : "", where);
          cJSON_AddStringToObject(inf, "moved", DIRS[actual]);
          if (cell == 'H' || cell == 'G') d = true;
          r += add_reward(rewards, "goal", cell == 'G' ? 1 : 0);
          cJSON_AddNumberToObject(inf, "position", ep->pos);
        }
        if (!d && ep->turns >= e->o.max_turns) { d = true; cJSON_AddBoolToObject(inf, "truncated", true); }
        cJSON *m = tn_agent_message(calls ? "tool" : "user", text);
        if (m && calls) {
          cJSON_AddStringToObject(m, "name", "move");
          if (call_id) cJSON_AddStringToObject(m, "tool_call_id", call_id);
        }
        cJSON_AddItemToArray(msgs, m);
        break;
      }
    }
  }
  if (st == TN_OK && tn_alloc_failures() != before) st = tn_error(TN_ERR_NOMEM, "%s: out of memory", e->name);
  if (st != TN_OK) {
    cJSON_Delete(msgs); cJSON_Delete(inf); cJSON_Delete(rewards);
    return st;
  }
  if (d) ep->over = true;
  cJSON_AddItemToObject(inf, "rewards", rewards);
  *messages = msgs;
  *reward = r;
  *done = d;
  if (info) *info = inf;
  else cJSON_Delete(inf);
  return TN_OK;
}

tn_status tn_env_close(tn_env *e, const char *id) {
  if (!id || !find_ep(e, id)) return tn_error(TN_ERR_ARG, "%s: no episode '%s' in flight", e->name, id ? id : "(null)");
  if (e->kind == E_CMD) {
    cJSON *params = cJSON_CreateObject(), *res = NULL;
    if (params) {
      cJSON_AddStringToObject(params, "episode", id);
      if (tn_chan_request(e->ch, "close", params, e->o.timeout_s, &res) != TN_OK)
        tn_warn("%s: close of episode '%s': %s", e->name, id, tn_last_error());
      cJSON_Delete(res);
      cJSON_Delete(params);
    }
  }
  drop_ep(e, id);
  return TN_OK;
}

void tn_env_free(tn_env *e) {
  if (!e) return;
  tn_chan_free(e->ch);
  for (episode *p = e->eps, *n; p; p = n) { n = p->next; free_ep(p); }
  pthread_mutex_destroy(&e->mu);
  free(e->name);
  free(e);
}

tn_status tn_agent_open(const char *tools, const char *const *mcp, int n_mcp, const char *env, const char *env_cmd,
                        const tn_tool_opts *to, const tn_env_opts *eo, tn_toolset **ts, tn_env **e) {
  *ts = NULL;
  *e = NULL;
  if (env && *env && env_cmd && *env_cmd) return tn_error(TN_ERR_ARG, "--env and --env-cmd: give one of them");
  tn_status st = tn_toolset_create(ts, tools, to);
  for (int i = 0; st == TN_OK && i < n_mcp; i++) st = tn_toolset_add_mcp(*ts, mcp[i]);
  char *spec = NULL;
  if (st == TN_OK && env_cmd && *env_cmd) {
    size_t n = strlen(env_cmd) + 5;
    spec = malloc(n);
    if (!spec) st = TN_ERR_NOMEM;
    else snprintf(spec, n, "cmd:%s", env_cmd);
  }
  if (st == TN_OK) st = tn_env_create(e, spec ? spec : env, *ts, eo);
  free(spec);
  if (st != TN_OK) {
    tn_toolset_free(*ts);
    *ts = NULL;
  }
  return st;
}
