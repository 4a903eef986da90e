/* fuzz_template.c - libFuzzer harness for the chat-template parser and renderer (src/template).
 * Input: a JSON object of variables on the first line (default messages/tools when it does not
 * parse), then the template. Small render limits keep executions fast; any crash, leak or UB
 * report is a bug (a template may only ever fail with an error).
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc -Iinclude \
 *     -DTN_VERSION=\"f\" -DTN_GIT_COMMIT=\"f\" \
 *     tests/fuzz/fuzz_template.c \
 *     src/template/jinja_parse.c src/template/jinja_eval.c src/template/jinja_value.c \
 *     src/template/jinja_builtins.c src/base/error.c -lcjson -lutf8proc -lm
 *   ./a.out tests/fuzz/template    (seeds: the test templates; add $TN_BUILD/tplref/tpl_*.jinja for the
 *   npm packages' real chat templates, which are not committed) */
#include <stdlib.h>
#include <string.h>
#include "template/jinja.h"

static const char *DEFAULT_VARS =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"hi <b>\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\":"
    " {\"name\": \"f\", \"arguments\": {\"x\": 1, \"y\": [1.5, null, true]}}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"42\"}, {\"role\": \"assistant\", \"content\": \"done\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"x\": {\"type\": \"integer\"}}}}}], \"add_generation_prompt\": true, \"bos_token\": \"<s>\"}";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  char *nl = memchr(buf, '\n', size);
  const char *tpl = buf;
  cJSON *vars = NULL;
  if (nl) {
    *nl = 0;
    vars = cJSON_Parse(buf);
    if (vars) tpl = nl + 1;
    else *nl = '\n';
  }
  if (!vars) vars = cJSON_Parse(DEFAULT_VARS);
  tn_jinja *t;
  if (tn_jinja_parse(tpl, "fuzz", &t) == TN_OK) {
    tn_jinja_limits lim = {.max_output = 1 << 20, .max_memory = 32 << 20, .max_steps = 200000, .max_depth = 100};
    tn_jinja_result r;
    if (tn_jinja_render(t, vars, &lim, &r) == TN_OK) tn_jinja_result_free(&r);
    tn_jinja_free(t);
  }
  cJSON_Delete(vars);
  free(buf);
  return 0;
}
