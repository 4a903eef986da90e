/* hcd.c - high card duel game logic (hcd.h): deals, the scripted players, payoffs, the
 * transcript messages and N scripted games from a seed. Not for: the environment plumbing
 * (env.c). */
#include "agent/hcd.h"
#include "agent/tool.h"
#include <ctype.h>
#include <string.h>

static uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static void deal_from(uint64_t key, tn_hcd_deal *d) {
  tn_rng r;
  tn_rng_seed(&r, key);
  d->player = (int)(tn_rng_u64(&r) % 52);
  int o = (int)(tn_rng_u64(&r) % 51);
  d->opponent = o >= d->player ? o + 1 : o;
}

void tn_hcd_deal_index(uint64_t seed, int64_t index, tn_hcd_deal *d) {
  deal_from(mix64(mix64(seed) ^ (uint64_t)index), d);
}

void tn_hcd_deal_episode(uint64_t seed, const char *episode, tn_hcd_deal *d) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)(episode ? episode : ""); *p; p++) h = (h ^ *p) * 1099511628211ULL;
  deal_from(mix64(mix64(seed) ^ h ^ 0x5bd1e995ULL), d);
}

int tn_hcd_rank(int card) { return card / 4 + 2; }

const char *tn_hcd_card_name(int card, char buf[16]) {
  static const char ranks[] = "23456789TJQKA", suits[] = "CDHS";
  if (card < 0 || card > 51) { snprintf(buf, 16, "??"); return buf; }
  snprintf(buf, 16, "%c%c", ranks[card / 4], suits[card % 4]);
  return buf;
}

bool tn_hcd_opponent_calls(int opponent_card) { return tn_hcd_rank(opponent_card) >= 8; }

int tn_hcd_scripted_action(uint64_t seed, int64_t index, int player_card) {
  tn_rng r;
  tn_rng_seed(&r, mix64(mix64(seed ^ 0xa5a5a5a5ULL) ^ (uint64_t)index));
  int a = tn_hcd_rank(player_card) >= 8 ? TN_HCD_BET : TN_HCD_FOLD;
  if (tn_rng_uniform(&r) < 0.1f) a = 1 - a;
  return a;
}

static bool word_at(const char *s, const char *start, const char *w) {
  size_t n = strlen(w);
  if (strncasecmp(s, w, n) != 0) return false;
  if (s > start && isalnum((unsigned char)s[-1])) return false;
  return !isalnum((unsigned char)s[n]);
}

int tn_hcd_parse_action(const char *text) {
  if (!text) return -1;
  int a = -1;
  for (const char *p = text; *p; p++) {
    if (word_at(p, text, "bet")) a = TN_HCD_BET;
    else if (word_at(p, text, "fold")) a = TN_HCD_FOLD;
  }
  return a;
}

int tn_hcd_payoff(const tn_hcd_deal *d, int action, bool *opponent_called) {
  if (opponent_called) *opponent_called = false;
  if (action != TN_HCD_BET) return -1;
  if (!tn_hcd_opponent_calls(d->opponent)) return 1;
  if (opponent_called) *opponent_called = true;
  int a = tn_hcd_rank(d->player), b = tn_hcd_rank(d->opponent);
  return a > b ? 2 : a < b ? -2 : 0;
}

static const char *SYSTEM =
    "You are playing high card duel. Each player antes 1 chip and gets one card (2 lowest, ace "
    "highest; suits do not matter). You act first: bet 1 more chip or fold (losing your ante). "
    "If you bet, the opponent calls or folds. At showdown the higher card wins the pot; equal "
    "cards split it. Cards are written rank then suit: ranks 2-9, T (ten), J, Q, K, A; suits C, D, H, "
    "S. Answer with one word: bet or fold.";

cJSON *tn_hcd_start_messages(const tn_hcd_deal *d) {
  char c[16], text[128];
  snprintf(text, sizeof text, "Your card is %s. Do you bet or fold?", tn_hcd_card_name(d->player, c));
  cJSON *a = cJSON_CreateArray(), *s = tn_agent_message("system", SYSTEM), *u = tn_agent_message("user", text);
  if (!a || !s || !u) {
    cJSON_Delete(a); cJSON_Delete(s); cJSON_Delete(u);
    tn_error(TN_ERR_NOMEM, "high_card_duel: out of memory");
    return NULL;
  }
  cJSON_AddItemToArray(a, s);
  cJSON_AddItemToArray(a, u);
  return a;
}

cJSON *tn_hcd_outcome(const tn_hcd_deal *d, int action, cJSON **showdown_msg) {
  bool called;
  int chips = tn_hcd_payoff(d, action, &called);
  char pc[16], oc[16], text[256];
  tn_hcd_card_name(d->player, pc);
  tn_hcd_card_name(d->opponent, oc);
  const char *winner = action != TN_HCD_BET ? "opponent" : !called ? "player" : chips > 0 ? "player" : chips < 0 ? "opponent" : "tie";
  if (action != TN_HCD_BET)
    snprintf(text, sizeof text, "You fold. The opponent had %s. You lose 1 chip.", oc);
  else if (!called)
    snprintf(text, sizeof text, "You bet; the opponent folds. You win 1 chip.");
  else
    snprintf(text, sizeof text, "You bet; the opponent calls with %s against your %s. %s", oc, pc,
             chips > 0 ? "You win 2 chips." : chips < 0 ? "You lose 2 chips." : "A tie: the pot is split.");
  cJSON *o = cJSON_CreateObject();
  long before = tn_alloc_failures();
  if (o) {
    cJSON_AddStringToObject(o, "player_card", pc);
    cJSON_AddStringToObject(o, "opponent_card", oc);
    cJSON_AddStringToObject(o, "action", action == TN_HCD_BET ? "bet" : "fold");
    cJSON_AddStringToObject(o, "opponent_action", action != TN_HCD_BET ? "none" : called ? "call" : "fold");
    cJSON_AddStringToObject(o, "winner", winner);
    cJSON_AddNumberToObject(o, "chips", chips);
  }
  cJSON *m = showdown_msg ? tn_agent_message("user", text) : NULL;
  if (!o || tn_alloc_failures() != before || (showdown_msg && !m)) {
    cJSON_Delete(o); cJSON_Delete(m);
    tn_error(TN_ERR_NOMEM, "high_card_duel: out of memory");
    return NULL;
  }
  if (showdown_msg) *showdown_msg = m;
  return o;
}

tn_status tn_hcd_play(uint64_t seed, int64_t count, cJSON **games) {
  *games = NULL;
  if (count < 0 || count > 100000) return tn_error(TN_ERR_ARG, "high_card_duel: count %lld outside 0..100000", (long long)count);
  cJSON *all = cJSON_CreateArray();
  if (!all) return tn_error(TN_ERR_NOMEM, "high_card_duel: out of memory");
  for (int64_t i = 0; i < count; i++) {
    tn_hcd_deal d;
    tn_hcd_deal_index(seed, i, &d);
    int action = tn_hcd_scripted_action(seed, i, d.player);
    cJSON *g = cJSON_CreateObject(), *msgs = tn_hcd_start_messages(&d), *show = NULL;
    cJSON *out = tn_hcd_outcome(&d, action, &show);
    cJSON *reply = tn_agent_message("assistant", action == TN_HCD_BET ? "bet" : "fold");
    long before = tn_alloc_failures();
    if (g && msgs && out && show && reply) {
      cJSON_AddItemToArray(all, g);
      cJSON_AddStringToObject(g, "game", "high_card_duel");
      cJSON_AddNumberToObject(g, "seed", (double)seed);
      cJSON_AddNumberToObject(g, "index", (double)i);
      cJSON_AddItemToArray(msgs, reply); reply = NULL;
      cJSON_AddItemToArray(msgs, show); show = NULL;
      cJSON_AddItemToObject(g, "messages", msgs); msgs = NULL;
      double chips = cJSON_GetObjectItem(out, "chips")->valuedouble;
      cJSON_AddNumberToObject(g, "reward", chips);
      /* the fields of the seeds' tunix-rt UNGAR traces: prompt, steps, final_answer, metadata */
      char mine[16], theirs[16], step[64];
      tn_hcd_card_name(d.player, mine);
      tn_hcd_card_name(d.opponent, theirs);
      const char *act = action == TN_HCD_BET ? "bet" : "fold";
      cJSON_AddStringToObject(g, "prompt", "High Card Duel: You have 1 hidden card. Action: bet or fold.");
      cJSON *steps = cJSON_AddArrayToObject(g, "steps");
      const char *kinds[4] = {"legal_moves", "observation", "unseen", "decision"};
      for (int k = 0; k < 4; k++) {
        if (k == 0) snprintf(step, sizeof step, "Legal moves: [bet, fold]");
        else if (k == 1) snprintf(step, sizeof step, "My hand: %s", mine);
        else if (k == 2) snprintf(step, sizeof step, "Unseen cards: 51");
        else snprintf(step, sizeof step, "Action chosen: %s", act);
        cJSON *st = cJSON_CreateObject();
        cJSON_AddNumberToObject(st, "i", k);
        cJSON_AddStringToObject(st, "type", kinds[k]);
        cJSON_AddStringToObject(st, "content", step);
        cJSON_AddItemToArray(steps, st);
      }
      cJSON_AddStringToObject(g, "final_answer", act);
      cJSON *md = cJSON_AddObjectToObject(g, "metadata");
      cJSON_AddStringToObject(md, "source", "ungar");
      cJSON_AddStringToObject(md, "game", "high_card_duel");
      cJSON_AddNumberToObject(md, "seed", (double)seed);
      cJSON_AddNumberToObject(md, "episode_index", (double)i);
      cJSON_AddStringToObject(md, "my_card", mine);
      cJSON_AddStringToObject(md, "opponent_card", theirs);
      cJSON_AddStringToObject(md, "result", chips > 0 ? "win" : chips < 0 ? "loss" : "tie");
      cJSON_AddNumberToObject(md, "chips", chips);
      cJSON_AddItemToObject(g, "outcome", out); out = NULL;
      g = NULL;
    }
    bool fail = g || msgs || out || show || reply || tn_alloc_failures() != before;
    cJSON_Delete(g); cJSON_Delete(msgs); cJSON_Delete(out); cJSON_Delete(show); cJSON_Delete(reply);
    if (fail) {
      cJSON_Delete(all);
      return tn_error(TN_ERR_NOMEM, "high_card_duel: out of memory");
    }
  }
  *games = all;
  return TN_OK;
}
