/* jinja.h - a Jinja interpreter for Hugging Face chat templates: parse a template once,
 * render it with variables given as cJSON (messages, tools, ...), and report where the
 * {% generation %} blocks put their output (assistant masks).
 * Semantics follow Python jinja2 as transformers configures it (trim_blocks, lstrip_blocks,
 * tojson with ensure_ascii=False), which @huggingface/jinja also follows; see
 * docs/chat-templates.md for the constructs covered and the few places the two differ.
 * Not for: HTML autoescaping, template inheritance/includes, sandbox escapes. */
#ifndef TN_JINJA_H
#define TN_JINJA_H
#include <cjson/cJSON.h>
#include "base/base.h"

typedef struct tn_jinja tn_jinja;

/* Limits against hostile templates: each ends the render with a clear error. 0 = default. */
typedef struct {
  size_t max_output;     /* bytes of rendered text (default 64 MiB) */
  size_t max_memory;     /* bytes of values made during one render (default 512 MiB) */
  uint64_t max_steps;    /* evaluated nodes (default 50 million) */
  int max_depth;         /* nested macro calls / expression depth (default 200) */
} tn_jinja_limits;

/* Parse TEXT (NUL-terminated). NAME labels errors ("NAME:LINE: message"). */
tn_status tn_jinja_parse(const char *text, const char *name, tn_jinja **out);
void tn_jinja_free(tn_jinja *t);

typedef struct { size_t start, end; } tn_jinja_span;
typedef struct {
  char *text; size_t len;             /* rendered text (NUL-terminated, caller frees with tn_jinja_result_free) */
  tn_jinja_span *gen; size_t n_gen;   /* output of each {% generation %} block, in order */
} tn_jinja_result;

/* Render with the variables of the JSON object VARS (may be NULL). */
tn_status tn_jinja_render(const tn_jinja *t, const cJSON *vars, const tn_jinja_limits *lim, tn_jinja_result *out);
void tn_jinja_result_free(tn_jinja_result *r);
/* true when the template contains a {% generation %} block */
bool tn_jinja_has_generation(const tn_jinja *t);

#endif
