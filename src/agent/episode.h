/* episode.h - multi-turn episodes: render the task with the model's chat template and the
 * tools, generate on the step-wise engine (tunic/engine.h), parse tool calls, hand each
 * assistant message to the environment (env.h) on a worker thread while the other episodes
 * keep decoding, append the returned messages' tokens to the same KV cache, until the model
 * answers without a tool call, the environment says done, a finishing tool is called, or a
 * limit is hit. Shared by agentic GRPO, `tunic eval` and `tunic generate --chat` with tools.
 * Per token: 1 on the model's tokens, 0 on prompt/tool/environment tokens (the loss mask).
 * Not for: rewards, advantages and the loss (src/agent/agentic.c), tools and environments
 * themselves (tool.h, env.h). The loop is described in docs/agentic.md. */
#ifndef TN_AGENT_EPISODE_H
#define TN_AGENT_EPISODE_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "agent/env.h"
#include "model/model.h"
#include "tunic/generate.h"
#include "tunic/obs.h"
#include "tunic/tokenizer.h"

typedef enum {
  TN_EP_DONE = 0,     /* answered without a tool call, the environment said done, or a finishing tool */
  TN_EP_TRUNCATED,    /* --max-episode-tokens (or the context, or a turn cut at its token limit) */
  TN_EP_MAX_TURNS,    /* still calling tools after --max-turns model turns */
  TN_EP_TIMEOUT,      /* --episode-timeout, or the environment timed out */
  TN_EP_ENV_ERROR,    /* the environment failed (dead, garbage, refused the task), or the template */
  TN_EP_NSTATUS
} tn_episode_status;
const char *tn_episode_status_name(tn_episode_status s);
/* "truncated,timeout,..." -> which[s] = true for each named status; TN_ERR_ARG naming a bad one. */
tn_status tn_episode_statuses_parse(const char *list, bool which[TN_EP_NSTATUS]);

typedef struct {
  int max_turns;              /* model turns (default 4) */
  int max_episode_tokens;     /* tokens after the prompt: model + tool/environment (default 512) */
  int max_turn_tokens;        /* tokens of one model turn (<= 0: the episode's budget) */
  int max_prompt_tokens;      /* a longer rendered prompt fails the episode (env_error) (default 512) */
  double episode_timeout;     /* seconds, 0: none */
  double tool_timeout;        /* seconds of one environment step (its tool calls), 0: the environment's */
  const char *finish_tool;    /* a call to this tool ends the episode after it runs (NULL: none) */
  const char *system_prompt;  /* added as a system message when the episode's messages have none */
  const char *chat_template;  /* template text instead of the tokenizer's (NULL) */
  tn_gen_opts gen;            /* sampling; n and max_new_tokens are ignored; stop ids: the model's eos
                                 ids plus the template's end-of-turn token */
  int rows_per_step;          /* engine rows per forward (default 256) */
  tn_trace *trace;            /* spans per turn and per environment step (may be NULL) */
  bool verbose;               /* print each turn's text and the messages appended (generate --chat) */
} tn_episode_opts;
void tn_episode_opts_default(tn_episode_opts *o);

typedef struct {
  const cJSON *task;          /* the dataset row: "messages" or "prompt", reference fields */
  int prompt, sample;         /* RNG stream (as tn_generate's); episodes with the same prompt index
                                 whose rendered prompts are equal share the prompt's prefill */
} tn_episode_task;

typedef struct {
  int *ids, n;                /* the whole transcript's tokens (the prompt first) */
  int prompt_len;             /* tokens of the rendered prompt */
  uint8_t *mask;              /* (n) 1: sampled by the model */
  float *logprobs;            /* (n) the behaviour policy's log-prob on model tokens, 0 elsewhere */
  cJSON *messages;            /* the transcript: the initial messages, assistant and tool/env messages */
  cJSON *tools;               /* the tool schemas listed to the model (may be NULL) */
  char *final;                /* the last assistant message's text (special tokens dropped) */
  char *prompt_text;          /* the rendered prompt */
  int turns, tool_calls, tool_errors;
  double tool_ms;             /* wall time of the environment steps that ran tool calls */
  double env_reward;          /* the environment's rewards summed over the turns */
  double *turn_rewards;       /* (max_turns) the environment's reward after model turn k (0: none) */
  cJSON *env_rewards;         /* {component: sum over turns} from the steps' info.rewards */
  tn_episode_status status;
  char *error;                /* why (env_error, timeout), or NULL */
  double seconds;
} tn_episode;

/* Run n episodes at once on one engine (n slots). Environment failures end their episode with
 * a status; the return is non-OK only for tunic's own failures (memory, numerics, the model). */
tn_status tn_episodes_run(const tn_model *m, const tn_tokenizer *tok, tn_env *env, const tn_episode_task *tasks, int n,
                          const tn_episode_opts *o, tn_episode *out);
void tn_episodes_free(tn_episode *e, int n);
/* {"messages", "tools", "ids", "mask", "logprobs", "status", ...}: a transcript for --dump-rollouts */
cJSON *tn_episode_json(const tn_episode *e);
#endif
