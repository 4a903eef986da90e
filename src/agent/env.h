/* env.h - environments for agentic episodes: something that starts an episode from a task
 * (a dataset row), answers each assistant message with messages to append, a reward and a
 * done flag. Built in: "tools" (runs the message's tool calls), "math" (a question answered
 * with the tools, reward on the final answer), "high_card_duel" (hcd.h), "frozenlake" (a 4x4
 * slippery grid), and "cmd:COMMAND" (any-language environments over JSON lines, --env-cmd).
 * Every function is thread-safe with many episodes in flight, each named by a caller-chosen
 * episode id.
 * Not for: generation, tool-call parsing or training (src/generate, src/template, src/rl). */
#ifndef TN_AGENT_ENV_H
#define TN_AGENT_ENV_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "agent/tool.h"

typedef struct tn_env tn_env;

typedef struct {
  double timeout_s;        /* limit of one reset/step/close request to a cmd: environment (30) */
  uint64_t seed;           /* games (high_card_duel, frozenlake) are deterministic from (seed, episode) */
  double tool_bonus;       /* per-turn reward for a tool call that succeeded (math, tools; 0) */
  double tool_error_penalty; /* per-turn reward (subtracted) for a tool call that failed (0) */
  double turn_penalty;     /* per-turn reward (subtracted) for each turn after the first (0) */
  int max_turns;           /* frozenlake: moves before the episode ends as a loss (100) */
  const char *cwd;         /* working directory of a cmd: environment (NULL: inherit) */
} tn_env_opts;

void tn_env_opts_default(tn_env_opts *o);

/* spec: "tools" | "math" | "high_card_duel" | "frozenlake" | "cmd:COMMAND". ts (may be NULL
 * for the games) is borrowed: it must outlive the environment. o may be NULL (defaults).
 * A cmd: environment's process is started here (/bin/sh -c COMMAND). */
tn_status tn_env_create(tn_env **e, const char *spec, tn_toolset *ts, const tn_env_opts *o);
const char *tn_env_name(const tn_env *e);

/* Start episode EPISODE (unique among those in flight) from TASK (a dataset row; may be NULL
 * for the games). *messages (may be NULL out): the messages to start the episode, or NULL
 * when the environment leaves it to the row's prompt; *tools (may be NULL out): the tool
 * schemas to list to the model (a new array; may be empty). Caller frees both.
 * An environment failure (a dead, hanging or garbage-speaking cmd:, a task the environment
 * refuses) is TN_ERR_IO (TN_ERR_LIMIT for a timeout) with the reason in tn_last_error(). */
tn_status tn_env_reset(tn_env *e, const char *episode, const cJSON *task, cJSON **messages, cJSON **tools);

/* Answer the assistant message ({"role":"assistant","content":...,"tool_calls":[...]}).
 * *messages: a new array of tool/user messages to append (may be empty); *reward: this turn's
 * reward; *done: the episode is over; *info (may be NULL out): a new object
 * {"status": "ok"|"env_error"|"timeout", "error"?: text, "rewards": {component: value},
 *  "tool_calls": n, "tool_errors": n, ...environment-specific fields}.
 * An environment failure ends the episode, not the run: TN_OK with *done = true, *reward = 0,
 * info.status "env_error" or "timeout" and info.error the reason. Non-OK statuses are tunic's
 * own failures (out of memory, an unknown episode id: TN_ERR_ARG). timeout_s <= 0: the
 * environment's default (tool calls made by the environment use it too). */
tn_status tn_env_step(tn_env *e, const char *episode, const cJSON *assistant_msg, double timeout_s,
                      cJSON **messages, double *reward, bool *done, cJSON **info);

/* The toolset and environment the agentic command-line options describe: TOOLS (--tools
 * "calculator,python", may be NULL), MCP (--mcp, N_MCP commands), ENV (--env: tools | math |
 * high_card_duel | frozenlake; NULL: "tools") or ENV_CMD (--env-cmd CMD: "cmd:CMD"; both given is
 * TN_ERR_ARG). to / eo may be NULL (defaults). On failure nothing is left to free. */
tn_status tn_agent_open(const char *tools, const char *const *mcp, int n_mcp, const char *env, const char *env_cmd,
                        const tn_tool_opts *to, const tn_env_opts *eo, tn_toolset **ts, tn_env **e);

/* Forget the episode (a cmd: environment is told; its failure is only logged). */
tn_status tn_env_close(tn_env *e, const char *episode);
/* Stop the environment (a cmd: child gets EOF on stdin, then SIGTERM, then SIGKILL). */
void tn_env_free(tn_env *e);

#endif
