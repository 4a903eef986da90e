/* store_hcd.c - POST /api/ungar/high-card-duel/generate and `tunic store games high-card-duel`:
 * plays games of high-card duel with src/agent/hcd (tn_hcd_play: the agentic RL environment's
 * game, scripted players, same seed same games) and stores each as a trace: source "ungar",
 * game "high_card_duel", messages = the game up to the player's move (system, user, assistant:
 * what a model is trained to answer), transcript = every message including the showdown,
 * outcome, score = the chips won, and the seeds' UNGAR trace fields (prompt, steps, final_answer,
 * metadata with source/game/seed/episode_index/my_card/opponent_card/result). Not for: the game's rules (src/agent/hcd.c). */
#include "store/store.h"
#include <math.h>
#include <string.h>
#if __has_include("agent/hcd.h")
#include "agent/hcd.h"
#include "base/json.h"
#define HAVE_HCD 1
#endif

static const cJSON *get(const cJSON *o, const char *k) { return tn_json_field(o, k); }

static tn_status bad(tn_store_res *r, const char *m) {
  r->code = 400;
  return tn_error(TN_ERR_ARG, "%s", m);
}

/* the trace of one played game */
__attribute__((unused)) static cJSON *game_trace(const cJSON *g) {
  cJSON *t = cJSON_CreateObject(), *msgs = cJSON_CreateArray(), *meta = cJSON_CreateObject();
  if (!t || !msgs || !meta) { cJSON_Delete(t); cJSON_Delete(msgs); cJSON_Delete(meta); return NULL; }
  cJSON_AddStringToObject(t, "source", "ungar");
  cJSON_AddStringToObject(t, "game", "high_card_duel");
  const cJSON *all = get(g, "messages"), *m;
  int n = 0, last_assistant = -1;
  cJSON_ArrayForEach(m, all) {
    const cJSON *role = get(m, "role");
    if (cJSON_IsString(role) && !strcmp(role->valuestring, "assistant")) last_assistant = n;
    n++;
  }
  n = 0;
  cJSON_ArrayForEach(m, all)
    if (n++ <= last_assistant) cJSON_AddItemToArray(msgs, cJSON_Duplicate(m, true));
  cJSON_AddItemToObject(t, "messages", msgs);
  cJSON_AddItemToObject(t, "transcript", cJSON_Duplicate(all, true));
  if (get(g, "outcome")) cJSON_AddItemToObject(t, "outcome", cJSON_Duplicate(get(g, "outcome"), true));
  if (cJSON_IsNumber(get(g, "reward"))) cJSON_AddNumberToObject(t, "score", get(g, "reward")->valuedouble);
  /* the fields of the seeds' tunix-rt UNGAR traces, as the game gives them */
  const char *ungar[] = {"prompt", "steps", "final_answer"};
  for (int i = 0; i < 3; i++)
    if (get(g, ungar[i])) cJSON_AddItemToObject(t, ungar[i], cJSON_Duplicate(get(g, ungar[i]), true));
  const cJSON *gm;
  cJSON_ArrayForEach(gm, get(g, "metadata")) cJSON_AddItemToObject(meta, gm->string, cJSON_Duplicate(gm, true));
  if (get(g, "seed") && !get(meta, "seed")) cJSON_AddItemToObject(meta, "seed", cJSON_Duplicate(get(g, "seed"), true));
  if (get(g, "index") && !get(meta, "episode_index")) cJSON_AddItemToObject(meta, "index", cJSON_Duplicate(get(g, "index"), true));
  cJSON_AddItemToObject(t, "metadata", meta);
  return t;
}

tn_status tn_store_hcd_generate(tn_store *s, const cJSON *req, cJSON **out, tn_store_res *r) {
  *out = NULL;
  r->code = 500;
  if (!cJSON_IsObject(req)) return bad(r, "body: expected a JSON object {\"count\", \"seed\", \"persist\"}");
  const cJSON *f;
  cJSON_ArrayForEach(f, req)
    if (strcmp(f->string, "count") && strcmp(f->string, "seed") && strcmp(f->string, "persist")) {
      char m[160];
      snprintf(m, sizeof m, "unknown field '%.64s' (expected count, seed, persist)", f->string);
      return bad(r, m);
    }
  const cJSON *count = get(req, "count"), *seed = get(req, "seed"), *persist = get(req, "persist");
  if (!cJSON_IsNumber(count) || count->valuedouble != floor(count->valuedouble) || count->valuedouble < 1 ||
      count->valuedouble > 100000)
    return bad(r, "count: required, an integer in 1..100000");
  if (seed && (!cJSON_IsNumber(seed) || seed->valuedouble != floor(seed->valuedouble) || seed->valuedouble < 0 ||
               seed->valuedouble > 9007199254740992.0))
    return bad(r, "seed: expected a non-negative integer");
  if (persist && !cJSON_IsBool(persist)) return bad(r, "persist: expected true or false");
#ifdef HAVE_HCD
  const uint64_t sd = seed ? (uint64_t)seed->valuedouble : 0;
  cJSON *games = NULL;
  tn_status st = tn_hcd_play(sd, (int64_t)count->valuedouble, &games);
  if (st != TN_OK) { r->code = 500; return st; }
  cJSON *traces = cJSON_CreateArray(), *o = cJSON_CreateObject();
  bool ok = traces && o;
  for (const cJSON *g = games ? games->child : NULL; ok && g; g = g->next) {
    cJSON *t = game_trace(g);
    ok = t && cJSON_AddItemToArray(traces, t);
  }
  if (!ok) {
    cJSON_Delete(traces); cJSON_Delete(o); cJSON_Delete(games);
    r->code = 500;
    return tn_error(TN_ERR_NOMEM, "store: out of memory");
  }
  cJSON_AddNumberToObject(o, "games", cJSON_GetArraySize(traces));
  cJSON_AddNumberToObject(o, "seed", (double)sd);
  double chips = 0;
  for (const cJSON *t = traces->child; t; t = t->next) chips += cJSON_IsNumber(get(t, "score")) ? get(t, "score")->valuedouble : 0;
  cJSON_AddNumberToObject(o, "total_chips", chips);
  if (!persist || cJSON_IsTrue(persist)) {
    cJSON *ids = NULL;
    st = tn_store_traces_add(s, traces, &ids, r);
    if (st == TN_OK) cJSON_AddItemToObject(o, "ids", ids);
    r->code = st == TN_OK ? 201 : r->code;
  } else {
    cJSON_AddItemToObject(o, "traces", traces);
    traces = NULL;
    r->code = 200;
  }
  cJSON_Delete(traces);
  cJSON_Delete(games);
  if (st != TN_OK) { cJSON_Delete(o); return st; }
  *out = o;
  return TN_OK;
#else
  r->code = 501;
  return tn_error(TN_ERR_UNSUPPORTED, "high-card duel: src/agent/hcd is not built in");
#endif
}
