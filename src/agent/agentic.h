/* agentic.h - multi-turn (agentic) GRPO and the options every command that runs episodes
 * shares (`tunic grpo`, `tunic eval`, `tunic generate --chat` with --tools/--env/--env-cmd/--mcp).
 * Not for: the episode loop (episode.h), tools and environments (tool.h, env.h). */
#ifndef TN_AGENT_AGENTIC_H
#define TN_AGENT_AGENTIC_H
#include "agent/env.h"
#include "agent/episode.h"
#include <stdio.h>
#include "tunic/train.h"

typedef struct {
  const char *tools;          /* --tools calculator,python */
  const char *env;            /* --env NAME (tools, math, high_card_duel, frozenlake) */
  const char *env_cmd;        /* --env-cmd CMD: JSON lines environment */
  const char *mcp;            /* --mcp CMD: an MCP server's tools */
  int max_turns, max_episode_tokens;
  float episode_timeout, tool_timeout;
  const char *filter_statuses;/* statuses dropped from the loss */
  const char *finish_tool;
  bool async_rollouts;        /* not implemented: refused */
} tn_agent_opts;
void tn_agent_opts_default(tn_agent_opts *a);
/* Some agentic option is given: the command runs episodes instead of single completions. */
bool tn_agent_opts_active(const tn_agent_opts *a);
/* The toolset and environment the options name (env "tools" by default; *ts may be empty). */
tn_status tn_agent_env_create(const tn_agent_opts *a, uint64_t seed, tn_toolset **ts, tn_env **env);
/* Episode options from the agent options (the rest: tn_episode_opts_default). */
void tn_agent_episode_opts(const tn_agent_opts *a, tn_episode_opts *eo);

/* `tunic grpo` with agent options: G episodes per prompt, rewards on the final answer and the
 * environment's rewards ("env" in --reward), loss on the model's tokens only. */
tn_status tn_agentic_grpo_run(const tn_grpo_opts *o, const tn_agent_opts *a, const tn_run_info *ri);
/* `tunic eval` with agent options: tn_eval_opts.generate = tn_agent_eval_generate, generate_ctx = a
 * tn_agent_eval_ctx (the answer scored is the episode's last model turn). */
struct tn_prompt_s;
typedef struct {
  const tn_model *m;
  const tn_tokenizer *tok;
  tn_env *env;
  const tn_agent_opts *a;
  const char *system_prompt;  /* NULL / "": none */
  long episodes, turns, tool_calls, tool_errors, status[TN_EP_NSTATUS];
} tn_agent_eval_ctx;
void tn_agent_eval_ctx_init(tn_agent_eval_ctx *c, const tn_model *m, const tn_tokenizer *tok, tn_env *env,
                            const tn_agent_opts *a, const char *system_prompt);
tn_status tn_agent_eval_generate(void *ctx, const struct tn_prompt_s *p, int nb, int first, const tn_gen_opts *go,
                                 tn_gen_result *res);
/* "episodes: N, T turns, C tool calls (E errors) per episode; status ..." */
void tn_agent_eval_print(const tn_agent_eval_ctx *c, FILE *f);
/* `tunic generate --chat` with agent options: one episode from PROMPT, each turn printed (or the
 * whole transcript as one JSON line). */
tn_status tn_agent_chat(const tn_model *m, const tn_tokenizer *tok, const tn_agent_opts *a, const char *prompt,
                        const char *system, const tn_gen_opts *g, bool json);
#endif
