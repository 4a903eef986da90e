/* tool.h - the tools an agentic episode can call: the built-in `calculator` (exact big-number
 * arithmetic, a parser, never an eval) and `python` (code run in a sandboxed child process),
 * and tools served by MCP servers over stdio. One toolset lists its tools as OpenAI function
 * schemas and runs calls by name; calls are blocking and thread-safe (the episode loop calls
 * tools concurrently from worker threads).
 * Not for: parsing tool calls out of generated text (src/template/toolcall.c) or running
 * episodes (env.h, src/generate and src/rl). */
#ifndef TN_AGENT_TOOL_H
#define TN_AGENT_TOOL_H
#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>
#include "base/base.h"

/* The outcome of one call. A tool that failed (bad arguments, division by zero, a Python
 * exception, a timeout, a crash) is ok=false with error set: a result for the model, not a
 * failure of tunic. content is set when ok (and may hold partial output when not). */
typedef struct {
  bool ok;
  char *content; /* NULL or the tool's text output (capped at output_cap bytes) */
  char *error;   /* NULL when ok, else a one-line reason */
  double ms;     /* wall time of the call */
} tn_tool_result;

typedef struct tn_toolset tn_toolset;

typedef struct {
  double timeout_s;       /* default wall-clock limit of one call when the caller passes <= 0 (10) */
  size_t output_cap;      /* bytes of output kept; more is an error "output over N bytes" (16384) */
  /* python sandbox limits (docs/agentic.md) */
  const char *python;     /* interpreter (/usr/bin/python3) */
  size_t python_mem_mb;   /* RLIMIT_AS (1024) */
  double python_cpu_s;    /* RLIMIT_CPU seconds (0: the call's timeout rounded up) */
  int python_nproc;       /* RLIMIT_NPROC when the sandbox has its own user namespace (16) */
  size_t python_fsize_mb; /* RLIMIT_FSIZE (16) */
  int python_nofile;      /* RLIMIT_NOFILE (64) */
  /* calculator */
  int calc_max_digits;    /* largest integer (in decimal digits) a result or operand may have (10000) */
} tn_tool_opts;

void tn_tool_opts_default(tn_tool_opts *o);

/* Built-in tool names, comma-separated ("calculator,python"; "" or NULL: none). An unknown
 * name is TN_ERR_ARG naming it. o may be NULL (defaults). */
tn_status tn_toolset_create(tn_toolset **ts, const char *names, const tn_tool_opts *o);
/* Start an MCP server (a shell command, run with /bin/sh -c) over stdio, initialize it and add
 * the tools it lists. A server that does not start, answer or speak JSON-RPC is TN_ERR_IO with
 * its stderr tail in the message. A tool name already in the set is TN_ERR_ARG. Add servers
 * before the toolset is used (not concurrently with calls). */
tn_status tn_toolset_add_mcp(tn_toolset *ts, const char *cmd);
/* The tools as an OpenAI tools array: [{"type":"function","function":{"name","description",
 * "parameters"}}]. Owned by the toolset, valid until it is freed or a tool is added. */
const cJSON *tn_toolset_schemas(const tn_toolset *ts);
size_t tn_toolset_count(const tn_toolset *ts);
bool tn_toolset_has(const tn_toolset *ts, const char *name);
/* Run NAME with ARGS_JSON (a JSON object text; NULL = {}). timeout_s <= 0: the toolset's
 * default. Blocking, thread-safe. An unknown tool or malformed arguments is r->ok=false; the
 * status is non-OK only for tunic's own failures (out of memory, fork failing). *r is filled
 * in every case (free it with tn_tool_result_free). */
tn_status tn_toolset_call(tn_toolset *ts, const char *name, const char *args_json, double timeout_s,
                          tn_tool_result *r);
/* Run one entry of an assistant message's tool_calls ({"id"?, "type":"function", "function":
 * {"name", "arguments": object or JSON text}}) and build the tool message to append:
 * {"role":"tool","tool_call_id"?,"name","content"} where content is the output, or
 * "error: ..." for a failed call. r (may be NULL) receives the result. */
tn_status tn_toolset_call_message(tn_toolset *ts, const cJSON *tool_call, double timeout_s, cJSON **tool_msg,
                                  tn_tool_result *r);
void tn_tool_result_free(tn_tool_result *r);
void tn_toolset_free(tn_toolset *ts);

/* The result as {"ok": true, "content": ...} or {"ok": false, "error": ...} (`tunic tool run`). */
cJSON *tn_tool_result_json(const tn_tool_result *r);

/* {"role": ROLE, "content": CONTENT}; NULL when out of memory. */
cJSON *tn_agent_message(const char *role, const char *content);

/* ---- the pieces, for tests and other layers ---- */
/* Evaluate EXPR exactly: *out = the result text (integer, or a decimal when exact, or a
 * 30-significant-digit approximation marked with "~" for a non-terminating quotient). On a
 * bad expression returns false with *err = a message (both malloc'd). */
bool tn_calc_eval(const char *expr, int max_digits, char **out, char **err);
/* How the python sandbox isolates the network here: "netns" (own user + network namespace)
 * or "seccomp" (socket() denied), probed once. */
const char *tn_python_sandbox_mode(void);

#endif
