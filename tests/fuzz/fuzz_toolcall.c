/* fuzz_toolcall.c - libFuzzer harness: the tool-call parser that reads a model's output in the
 * agentic loop, the server and `tunic generate --chat` (src/template/toolcall.c). Input: one
 * byte choosing the format (AUTO, hermes, llama3, mistral, gemma, harmony), then the model's
 * text. Every format parses it; a call must come back either well formed (a name and an
 * arguments text that is a JSON object) or with an error, the error count must match, and the
 * message built from it must be valid JSON with one entry per call. The text is also
 * read as a chat template (tn_tool_format_of_template). Not for: the chat template engine
 * (fuzz_template.c). */
#include <cjson/cJSON.h>
#include "fuzz_common.h"
#include "template/template.h"

static void check_calls(const tn_tool_calls *tc) {
  size_t errors = 0;
  for (size_t i = 0; i < tc->n; i++) {
    const tn_tool_call *c = &tc->calls[i];
    if (c->error) { errors++; continue; }
    if (!c->name || !c->arguments) abort();            /* well formed: both present */
    cJSON *a = cJSON_Parse(c->arguments);
    if (!cJSON_IsObject(a)) abort();                    /* arguments: a JSON object */
    cJSON_Delete(a);
  }
  if (errors != tc->n_errors) abort();
  cJSON *m = tn_tool_calls_to_message(tc);
  if (!m) abort();
  char *s = cJSON_PrintUnformatted(m);
  cJSON *back = s ? cJSON_Parse(s) : NULL;
  if (!back) abort();
  const cJSON *calls = cJSON_GetObjectItemCaseSensitive(back, "tool_calls");
  if (cJSON_GetArraySize(calls) != (int)tc->n) abort(); /* one entry per call, unreadable ones as {error} */
  cJSON_Delete(back);
  free(s);
  cJSON_Delete(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const tn_tool_format fmts[] = {TN_TOOLS_AUTO, TN_TOOLS_HERMES, TN_TOOLS_LLAMA3,
                                        TN_TOOLS_MISTRAL, TN_TOOLS_GEMMA, TN_TOOLS_HARMONY};
  const char *text = (const char *)data + 1;
  size_t n = size - 1;
  tn_tool_format first = fmts[data[0] % 6];
  for (int k = 0; k < 6; k++) {
    tn_tool_calls tc;
    memset(&tc, 0, sizeof tc);
    tn_error_clear();
    tn_status s = tn_tool_calls_parse(text, n, k == 0 ? first : fmts[k], &tc);
    fz_check(s, "tn_tool_calls_parse");
    if (s == TN_OK) check_calls(&tc);
    tn_tool_calls_free(&tc);
  }
  char *t = fz_str((const uint8_t *)text, n);
  tn_tool_format f = tn_tool_format_of_template(t);
  if (f < TN_TOOLS_AUTO || f > TN_TOOLS_HARMONY || !tn_tool_format_name(f)) abort();
  tn_tool_format parsed;
  tn_error_clear();
  fz_check(tn_tool_format_parse(t, &parsed), "tn_tool_format_parse");
  free(t);
  return 0;
}
