/* test_serve_api.c - pieces of `tunic serve` that a random tiny model cannot reach through HTTP:
 * a generated text holding tool calls becomes OpenAI tool_calls (Hermes/Qwen and Llama-3 JSON
 * formats: name, arguments as a JSON string, content null, finish_reason "tool_calls"), the same
 * as the last streamed chunk (with index), a text without calls stays content, and the keyword
 * router of route.yaml (counts, ties to the earlier route, the default).
 * The HTTP API itself is tested against a live server (tests/serve/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#define TN_SERVE_INTERNAL
#include "serve/serve.h"
#include "tunic/generate.h"

static srv_req *fake(const char *text, tn_tool_format fmt, bool stream) {
  srv_req *r = calloc(1, sizeof *r);
  r->kind = SRV_CHAT;
  strcpy(r->id, "chatcmpl-test01");
  r->tools = cJSON_Parse("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{}}}]");
  r->tool_fmt = fmt;
  r->stream = stream;
  r->n_ch = r->live = 1;
  r->ch = calloc(1, sizeof *r->ch);
  r->ch[0].finish = TN_FINISH_STOP_ID;
  srv_buf_add(&r->ch[0].text, text, strlen(text));
  return r;
}

static void drop(srv_req *r) {
  free(r->ch[0].text.p);
  free(r->ch);
  free(r->sse.p);
  cJSON_Delete(r->tools);
  free(r);
}

static void check_call(cJSON *msg, const char *fin) {
  assert_string_equal(fin, "tool_calls");
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(msg, "content")));
  cJSON *tc = cJSON_GetObjectItem(msg, "tool_calls");
  assert_int_equal(cJSON_GetArraySize(tc), 1);
  cJSON *c = cJSON_GetArrayItem(tc, 0), *fn = cJSON_GetObjectItem(c, "function");
  assert_string_equal(cJSON_GetObjectItem(c, "type")->valuestring, "function");
  assert_true(cJSON_IsString(cJSON_GetObjectItem(c, "id")));
  assert_string_equal(cJSON_GetObjectItem(fn, "name")->valuestring, "get_weather");
  cJSON *args = cJSON_Parse(cJSON_GetObjectItem(fn, "arguments")->valuestring); /* a JSON string, as OpenAI's */
  assert_non_null(args);
  assert_string_equal(cJSON_GetObjectItem(args, "city")->valuestring, "Paris");
  cJSON_Delete(args);
}

static void test_tool_calls(void **st) {
  (void)st;
  static const struct { const char *text; tn_tool_format fmt; } cases[] = {
    {"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", TN_TOOLS_HERMES},
    {"{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", TN_TOOLS_LLAMA3},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    srv_req *r = fake(cases[i].text, cases[i].fmt, false);
    const char *fin = NULL;
    cJSON *msg = srv_chat_message(r, &r->ch[0], &fin);
    check_call(msg, fin);
    cJSON_Delete(msg);
    /* streamed: the last chunk carries the same call, with its index */
    srv_stream_delta(NULL, r, &r->ch[0], NULL, 0, true);
    assert_non_null(r->sse.p);
    assert_memory_equal(r->sse.p, "data: ", 6);
    cJSON *chunk = cJSON_Parse(r->sse.p + 6);
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(chunk, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "tool_calls");
    cJSON *tc = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), "tool_calls"), 0);
    assert_int_equal(cJSON_GetObjectItem(tc, "index")->valueint, 0);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(tc, "function"), "name")->valuestring, "get_weather");
    cJSON_Delete(chunk);
    drop(r);
  }
  /* no call: the text is the content, finish_reason from the generation */
  srv_req *r = fake("It is sunny.", TN_TOOLS_HERMES, false);
  const char *fin = NULL;
  cJSON *msg = srv_chat_message(r, &r->ch[0], &fin);
  assert_string_equal(fin, "stop");
  assert_string_equal(cJSON_GetObjectItem(msg, "content")->valuestring, "It is sunny.");
  assert_null(cJSON_GetObjectItem(msg, "tool_calls"));
  cJSON_Delete(msg);
  drop(r);
}

static void test_route_pick(void **st) {
  (void)st;
  tn_server sv;
  memset(&sv, 0, sizeof sv);
  char *kw_m[] = {"+", "sum", "equation"}, *kw_w[] = {"poem", "story"};
  srv_route routes[2] = {{.category = "math", .adapter = "m", .kw = kw_m, .nkw = 3},
                         {.category = "writing", .adapter = "w", .kw = kw_w, .nkw = 2}};
  sv.routes = routes;
  sv.n_routes = 2;
  int hits = -1;
  assert_int_equal(srv_route_pick(&sv, "What is the SUM of 2+2?", &hits), 0);
  assert_int_equal(hits, 2); /* "sum" and "+" */
  assert_int_equal(srv_route_pick(&sv, "a poem, then a story about a sum", &hits), 1); /* 2 hits beat 1 */
  assert_int_equal(srv_route_pick(&sv, "a poem with a sum", &hits), 0);               /* a tie goes to the earlier */
  assert_int_equal(srv_route_pick(&sv, "hello", &hits), 2);                           /* none: the default */
  assert_int_equal(hits, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_tool_calls), cmocka_unit_test(test_route_pick)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
