/* hcd.h - high card duel, the two-player card game of the seeds' UNGAR traces: each player
 * antes 1 chip and is dealt one card from a 52-card deck; the player (the model) bets 1 more
 * chip or folds; after a bet the scripted opponent calls or folds; at showdown the higher rank
 * takes the pot (suits do not rank; equal ranks split it). The player's reward is the chips won
 * (net: fold -1, bet and opponent folds +1, bet-call-win +2, bet-call-lose -2, tie 0).
 * Deterministic from (seed, episode) or (seed, game index). Pure game logic: used by the
 * high_card_duel environment (env.c) and by the store's `POST /api/ungar/high-card-duel/generate`.
 * Not for: running a model (env.h). */
#ifndef TN_AGENT_HCD_H
#define TN_AGENT_HCD_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "base/base.h"

typedef struct {
  int player;   /* card 0..51: rank = card / 4 + 2 (2..14, 14 = ace), suit = card % 4 */
  int opponent;
} tn_hcd_deal;

enum { TN_HCD_FOLD = 0, TN_HCD_BET = 1 };

/* The deal of game INDEX of a seed / of episode EPISODE (any string) of a seed. */
void tn_hcd_deal_index(uint64_t seed, int64_t index, tn_hcd_deal *d);
void tn_hcd_deal_episode(uint64_t seed, const char *episode, tn_hcd_deal *d);
int tn_hcd_rank(int card);
/* The short name UNGAR traces use: rank 2-9 T J Q K A, then suit C D H S ("AS", "TD"). */
const char *tn_hcd_card_name(int card, char buf[16]);
/* The scripted opponent: calls a bet with rank >= 8, folds below. */
bool tn_hcd_opponent_calls(int opponent_card);
/* The scripted player of generated games: bets with rank >= 8, else folds; with probability
 * 0.1 (from the game's RNG) it bluffs/deviates. */
int tn_hcd_scripted_action(uint64_t seed, int64_t index, int player_card);
/* The action named in a reply: the last of "bet" / "fold" (case-insensitive, whole word) in
 * TEXT, or the "action" argument of a tool call; -1 when none. */
int tn_hcd_parse_action(const char *text);
/* Chips won by the player (net), and whether the opponent called. */
int tn_hcd_payoff(const tn_hcd_deal *d, int action, bool *opponent_called);

/* The messages that start a game: [{"role":"system",...},{"role":"user", "Your card is ..."}]. */
cJSON *tn_hcd_start_messages(const tn_hcd_deal *d);
/* The user message telling the showdown (outcome text), and the outcome object
 * {"player_card","opponent_card","action","opponent_action","winner","chips"}. */
cJSON *tn_hcd_outcome(const tn_hcd_deal *d, int action, cJSON **showdown_msg);

/* Play COUNT games (0 <= count <= 100000) of seed SEED with the scripted player and opponent:
 * *games = [{"game":"high_card_duel","seed":S,"index":i,"messages":[system, user, assistant,
 * user(showdown)],"outcome":{...},"reward":chips, and the fields of the seeds' tunix-rt UNGAR
 * traces: "prompt", "steps":[{"i","type","content"}] (legal moves, my hand, unseen cards, the
 * action), "final_answer" (bet | fold), "metadata":{"source":"ungar","game":"high_card_duel",
 * "seed","episode_index","my_card","opponent_card","result": win | loss | tie,"chips"}}].
 * Same seed, same games. */
tn_status tn_hcd_play(uint64_t seed, int64_t count, cJSON **games);

#endif
