/* template.h - chat rendering with the model's own Jinja chat_template (messages with tool
 * calls and tool results, tools, documents, template variables), the assistant spans that
 * training masks come from, the built-in formats of chat_builtin.c, and tool-call parsing
 * from generated text (toolcall.c). Shared by src/template and the layers above it.
 * Not for: the Jinja language itself (jinja.h). */
#ifndef TN_TEMPLATE_H
#define TN_TEMPLATE_H
#include <cjson/cJSON.h>
#include "template/jinja.h"
#include "tokenizer/tokenizer.h"

typedef struct {
  const cJSON *messages;      /* array of {role, content, tool_calls, tool_call_id, name, reasoning_content} */
  const cJSON *tools;         /* array of tool schemas ({"type":"function","function":{...}}), or NULL */
  const cJSON *documents;     /* array, or NULL */
  const cJSON *vars;          /* object of extra variables (enable_thinking, ...), or NULL */
  bool add_generation_prompt;
  const char *template_text;  /* overrides the tokenizer's template (--chat-template FILE), or NULL */
  const char *template_name;  /* how errors name the template (default: the tokenizer's path) */
  bool spans;                 /* also find the assistant spans (out->spans) */
} tn_chat_req;

/* Render with the Jinja template (the tokenizer's "tool_use" template when tools are given and it
 * has one, else its default). out->spans: each assistant message's text from the end of its
 * header through its end-of-turn marker, found from {% generation %} blocks, else by rendering
 * prefixes (see docs/chat-templates.md). */
tn_status tn_chat_render_req(const tn_tokenizer *tok, const tn_chat_req *q, tn_chat_out *out);
/* The template text the request would use, NULL (with an error set) when there is none. */
const char *tn_chat_template_for(const tn_tokenizer *tok, const tn_chat_req *q);
/* Encode a rendered conversation and mark its assistant tokens (enc->mask). */
tn_status tn_chat_out_encode(const tn_tokenizer *tok, const tn_chat_out *out, tn_encoding *enc);
/* The built-in renderers (chat_builtin.c). */
tn_status tn_chat_render_builtin(const tn_tokenizer *tok, const tn_chat_msg *msgs, size_t n, const tn_chat_opts *opts,
                                 tn_chat_out *out);

/* ---- tool calls in generated text (toolcall.c) ---- */
typedef enum {
  TN_TOOLS_AUTO = 0, TN_TOOLS_HERMES, TN_TOOLS_LLAMA3, TN_TOOLS_MISTRAL, TN_TOOLS_GEMMA, TN_TOOLS_HARMONY
} tn_tool_format;
typedef struct {
  char *name;       /* NULL when malformed */
  char *arguments;  /* JSON object text, NULL when malformed */
  char *id;         /* call id when the format carries one, else NULL */
  char *error;      /* NULL, or why this call could not be read (the RL loop may penalise it) */
} tn_tool_call;
typedef struct {
  tn_tool_format format;   /* the format found (AUTO when no call was found) */
  tn_tool_call *calls; size_t n;
  char *content;           /* the text outside the calls (trimmed) */
  size_t n_errors;         /* calls with error != NULL */
} tn_tool_calls;
tn_status tn_tool_format_parse(const char *name, tn_tool_format *out);
const char *tn_tool_format_name(tn_tool_format f);
/* The format a chat template writes tool calls in (AUTO if it shows none). */
tn_tool_format tn_tool_format_of_template(const char *template_text);
/* Never fails on malformed calls: they come back with error set. TN_ERR_NOMEM only. */
tn_status tn_tool_calls_parse(const char *text, size_t len, tn_tool_format fmt, tn_tool_calls *out);
void tn_tool_calls_free(tn_tool_calls *tc);
/* {"role":"assistant","content":...,"tool_calls":[{"type":"function","function":{"name":..,"arguments":{..}}}]} */
cJSON *tn_tool_calls_to_message(const tn_tool_calls *tc);

#endif
