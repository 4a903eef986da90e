/* test_store.c - the trace and dataset store (src/store, issue 19) through its HTTP handler
 * called directly: every route, every validation error (400 naming the field), 404, 405, 409;
 * dataset builds (strategies, the immutable name-version), exports and their sha256 (a dataset
 * tampered with in the database is refused); runs; the /ui/ files; 16 concurrent writers on
 * separate connections lose nothing; kill -9 of a writer at random points loses no committed
 * trace and leaves a sound database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "obs/obs.h"
#include "store/store.h"

static char db_path[256];

static tn_store *fresh(const char *name) {
  snprintf(db_path, sizeof db_path, "store_%s_%d.db", name, (int)getpid());
  char p[300];
  unlink(db_path);
  snprintf(p, sizeof p, "%s-wal", db_path); unlink(p);
  snprintf(p, sizeof p, "%s-shm", db_path); unlink(p);
  tn_store *s = NULL;
  assert_int_equal(tn_store_open(&s, db_path, NULL), TN_OK);
  return s;
}

typedef struct { int status; cJSON *json; char *body; size_t len; char ctype[64]; } resp;

static resp call(tn_store *s, const char *method, const char *path_q, const char *body) {
  char path[512];
  snprintf(path, sizeof path, "%s", path_q);
  char *q = strchr(path, '?');
  if (q) *q++ = 0;
  tn_http_request rq = {.method = method, .path = path, .query = q ? q : "", .body = body,
                        .body_len = body ? strlen(body) : 0, .content_type = "application/json"};
  tn_http_reply rp = {0};
  int handled = tn_store_http(s, &rq, &rp);
  assert_int_equal(handled, 1);
  resp r = {.status = rp.status, .len = rp.len};
  snprintf(r.ctype, sizeof r.ctype, "%s", rp.content_type ? rp.content_type : "application/json");
  r.body = malloc(rp.len + 1);
  memcpy(r.body, rp.body ? rp.body : "", rp.len);
  r.body[rp.len] = 0;
  if (!strcmp(r.ctype, "application/json")) r.json = cJSON_Parse(r.body);
  tn_http_reply_free(&rp);
  return r;
}
static void done(resp *r) { cJSON_Delete(r->json); free(r->body); }

/* an error reply: status, JSON {"error": {"message" naming WHAT}} */
static void expect_err(tn_store *s, const char *method, const char *path, const char *body, int status, const char *what) {
  resp r = call(s, method, path, body);
  if (r.status != status || !strstr(r.body, what)) print_error("%s %s %s -> %d %s\n", method, path, body ? body : "", r.status, r.body);
  assert_int_equal(r.status, status);
  const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "error"), "message");
  assert_true(cJSON_IsString(m));
  assert_non_null(strstr(m->valuestring, what));
  done(&r);
}

static const char *T1 = "{\"source\":\"ungar\",\"game\":\"high_card_duel\",\"messages\":[{\"role\":\"user\",\"content\":\"card 9\"},"
                        "{\"role\":\"assistant\",\"content\":\"bet\"}],\"score\":2}";

static void test_traces(void **st) {
  tn_store *s = fresh("traces");
  resp r = call(s, "POST", "/api/traces", T1);
  assert_int_equal(r.status, 201);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "ids")), 1);
  int id1 = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "ids"), 0)->valueint;
  done(&r);
  /* many at once, both shapes, metadata and scores */
  r = call(s, "POST", "/api/traces", "{\"traces\":[{\"source\":\"a\",\"prompt\":\"p1\",\"completion\":\"c1\",\"metadata\":{\"k\":1}},"
           "{\"source\":\"a\",\"prompt\":\"p2\",\"completion\":\"c2\",\"scores\":{\"reward\":0.5}},"
           "{\"source\":\"b\",\"prompt\":\"p3\",\"completion\":\"c3\",\"created_at\":\"2020-01-01T00:00:00Z\"}]}");
  assert_int_equal(r.status, 201);
  assert_int_equal(cJSON_GetObjectItem(r.json, "count")->valueint, 3);
  done(&r);
  r = call(s, "POST", "/api/traces", "[{\"source\":\"a\",\"prompt\":\"p4\",\"completion\":\"c4\"},{\"source\":\"a\",\"prompt\":\"p5\",\"completion\":\"c5\"}]");
  assert_int_equal(r.status, 201);
  done(&r);
  char path[64];
  snprintf(path, sizeof path, "/api/traces/%d", id1);
  r = call(s, "GET", path, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(cJSON_GetObjectItem(r.json, "game")->valuestring, "high_card_duel");
  assert_int_equal(cJSON_GetObjectItem(r.json, "id")->valueint, id1);
  assert_non_null(cJSON_GetObjectItem(r.json, "created_at"));
  done(&r);
  /* paging: 6 traces, source a has 4; pages of 3 then 1 with no cursor left */
  r = call(s, "GET", "/api/traces?source=a&limit=3", NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "traces")), 3);
  const cJSON *cur = cJSON_GetObjectItem(r.json, "next_cursor");
  assert_true(cJSON_IsString(cur));
  int first = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "traces"), 0), "id")->valueint;
  char p2[128];
  snprintf(p2, sizeof p2, "/api/traces?source=a&limit=3&cursor=%s", cur->valuestring);
  done(&r);
  r = call(s, "GET", p2, NULL);
  assert_int_equal(r.status, 200);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "traces")), 1);
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(r.json, "next_cursor")));
  assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "traces"), 0), "id")->valueint < first);
  done(&r);
  r = call(s, "GET", "/api/traces?game=high_card_duel", NULL);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "traces")), 1);
  done(&r);
  r = call(s, "GET", "/api/traces?since=2021-01-01", NULL); /* the 2020 trace is left out */
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "traces")), 5);
  done(&r);
  /* a trace as the seeds' tunix-rt UNGAR traces are: prompt, steps, final_answer, source/game in the metadata */
  r = call(s, "POST", "/api/traces", "{\"prompt\":\"High Card Duel: bet or fold.\",\"steps\":[{\"i\":0,\"type\":\"observation\","
           "\"content\":\"My hand: AS\"}],\"final_answer\":\"bet\",\"metadata\":{\"source\":\"ungar\",\"game\":\"high_card_duel\",\"episode_index\":0}}");
  assert_int_equal(r.status, 201);
  snprintf(path, sizeof path, "/api/traces/%d", cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "ids"), 0)->valueint);
  done(&r);
  r = call(s, "GET", path, NULL);
  assert_string_equal(cJSON_GetObjectItem(r.json, "source")->valuestring, "ungar");
  assert_string_equal(cJSON_GetObjectItem(r.json, "game")->valuestring, "high_card_duel");
  assert_string_equal(cJSON_GetObjectItem(r.json, "final_answer")->valuestring, "bet");
  done(&r);
  r = call(s, "POST", "/api/traces", "{\"prompt\":\"p\",\"final_answer\":\"bet\",\"metadata\":{\"source\":\"ungar\",\"game\":\"high_card_duel\"}}");
  done(&r);
  expect_err(s, "POST", "/api/traces", "{\"prompt\":\"p\",\"final_answer\":\"x\",\"completion\":\"y\",\"source\":\"a\"}", 400, "not both");
  expect_err(s, "POST", "/api/traces", "{\"prompt\":\"p\",\"final_answer\":\"x\",\"steps\":{},\"source\":\"a\"}", 400, "'steps'");
  expect_err(s, "POST", "/api/traces", "{\"prompt\":\"p\",\"final_answer\":3,\"source\":\"a\"}", 400, "'final_answer'");
  expect_err(s, "POST", "/api/traces", "{\"prompt\":\"p\",\"final_answer\":\"x\",\"metadata\":{\"source\":\"a b\"}}", 400, "'source'");
  /* validation: each names its field */
  expect_err(s, "POST", "/api/traces", "{\"prompt\":\"p\",\"completion\":\"c\"}", 400, "'source' is required");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a b\",\"prompt\":\"p\",\"completion\":\"c\"}", 400, "'source'");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\"}", 400, "'messages'");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"prompt\":\"p\"}", 400, "'completion'");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", 400, "messages[0].role");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":3}]}", 400, "messages[0].content");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"messages\":[]}", 400, "'messages'");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"prompt\":\"p\",\"completion\":\"c\",\"colour\":1}", 400, "unknown field 'colour'");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"prompt\":\"p\",\"completion\":\"c\",\"metadata\":[]}", 400, "'metadata'");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"prompt\":\"p\",\"completion\":\"c\",\"scores\":{\"r\":\"x\"}}", 400, "scores.r");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"prompt\":\"p\",\"completion\":\"c\",\"score\":\"high\"}", 400, "'score'");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"prompt\":\"p\",\"completion\":\"c\",\"created_at\":\"yesterday\"}", 400, "'created_at'");
  expect_err(s, "POST", "/api/traces", "[{\"source\":\"a\",\"prompt\":\"p\",\"completion\":\"c\"},{\"source\":\"a\"}]", 400, "traces[1]");
  expect_err(s, "POST", "/api/traces", "[]", 400, "empty");
  expect_err(s, "POST", "/api/traces", "{not json", 400, "not valid JSON");
  expect_err(s, "POST", "/api/traces", NULL, 400, "body");
  expect_err(s, "POST", "/api/traces", "{\"source\":\"a\",\"prompt\":\"\xff\",\"completion\":\"c\"}", 400, "'prompt'");
  expect_err(s, "GET", "/api/traces?limit=0", NULL, 400, "limit");
  expect_err(s, "GET", "/api/traces?limit=5000", NULL, 400, "limit");
  expect_err(s, "GET", "/api/traces?cursor=abc", NULL, 400, "cursor");
  expect_err(s, "GET", "/api/traces?since=soon", NULL, 400, "since");
  expect_err(s, "GET", "/api/traces?colour=red", NULL, 400, "'colour'");
  expect_err(s, "GET", "/api/traces/999999", NULL, 404, "not found");
  expect_err(s, "GET", "/api/traces/x1", NULL, 400, "trace id");
  expect_err(s, "DELETE", "/api/traces", NULL, 405, "method");
  /* a failed batch stored nothing: still 8 traces */
  r = call(s, "GET", "/api/traces?limit=1000", NULL);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "traces")), 8);
  done(&r);
  r = call(s, "GET", "/api/traces?game=high_card_duel", NULL);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "traces")), 3);
  done(&r);
  /* the UNGAR trace exports with its final_answer as the answer */
  r = call(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"ungar\",\"dataset_version\":\"v1\",\"filters\":{\"game\":\"high_card_duel\"},\"limit\":1}");
  assert_int_equal(r.status, 201);
  done(&r);
  r = call(s, "GET", "/api/datasets/ungar-v1/export.jsonl?format=tunix_sft", NULL);
  assert_non_null(strstr(r.body, "\"prompts\":\"<start_of_turn>user\\np<end_of_turn>\\n<start_of_turn>model\\n\",\"final_answer\":\"bet\""));
  done(&r);
  /* paths that are not the store's are left to other handlers */
  tn_http_request rq = {.method = "POST", .path = "/v1/chat/completions", .query = ""};
  tn_http_reply rp = {0};
  assert_int_equal(tn_store_http(s, &rq, &rp), 0);
  assert_null(rp.body);
  rq.path = "/api/other";
  assert_int_equal(tn_store_http(s, &rq, &rp), 0);
  tn_store_close(s);
}

static void add_scored(tn_store *s, int n) {
  for (int i = 0; i < n; i++) {
    char b[256];
    snprintf(b, sizeof b, "{\"source\":\"ungar\",\"game\":\"high_card_duel\",\"prompt\":\"q%d\",\"completion\":\"a%d\",\"score\":%d}",
             i % 3, i, (i * 7) % 5);
    resp r = call(s, "POST", "/api/traces", b);
    assert_int_equal(r.status, 201);
    done(&r);
  }
}

static cJSON *ids_of(const cJSON *m) { return cJSON_GetObjectItem(m, "trace_ids"); }

static void test_datasets(void **st) {
  tn_store *s = fresh("datasets");
  add_scored(s, 12);
  resp o = call(s, "POST", "/api/traces", "{\"source\":\"other\",\"prompt\":\"x\",\"completion\":\"y\"}");
  done(&o);
  const char *req = "{\"dataset_name\":\"hcd_baseline\",\"dataset_version\":\"v1\",\"filters\":{\"source\":\"ungar\","
                    "\"game\":\"high_card_duel\"},\"limit\":10,\"selection_strategy\":\"latest\"}";
  resp r = call(s, "POST", "/api/datasets/build", req);
  assert_int_equal(r.status, 201);
  cJSON *m = r.json;
  assert_string_equal(cJSON_GetObjectItem(m, "key")->valuestring, "hcd_baseline-v1");
  assert_int_equal(cJSON_GetArraySize(ids_of(m)), 10);
  assert_int_equal(cJSON_GetArrayItem(ids_of(m), 0)->valueint, 12); /* latest first: ids 12..3 */
  assert_int_equal(cJSON_GetArrayItem(ids_of(m), 9)->valueint, 3);
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "counts"), "traces")->valueint, 10);
  char build[32];
  snprintf(build, sizeof build, "%s", cJSON_GetObjectItem(m, "build_id")->valuestring);
  assert_int_equal(strlen(build), 16);
  assert_non_null(cJSON_GetObjectItem(m, "created_at"));
  /* every export: 200, its sha256 is the manifest's */
  for (int i = 0; tn_store_formats[i]; i++) {
    char p[128];
    snprintf(p, sizeof p, "/api/datasets/hcd_baseline-v1/export.jsonl?format=%s", tn_store_formats[i]);
    resp e = call(s, "GET", p, NULL);
    assert_int_equal(e.status, 200);
    uint8_t d[32];
    char hex[65];
    tn_sha256(e.body, e.len, d);
    tn_sha256_hex(d, hex);
    assert_string_equal(hex, cJSON_GetObjectItem(cJSON_GetObjectItem(m, "sha256"), tn_store_formats[i])->valuestring);
    if (i == 0) { /* tunix_sft: id, prompts with the Gemma turns, final_answer, metadata */
      cJSON *l = cJSON_ParseWithOpts(e.body, NULL, false);
      assert_string_equal(cJSON_GetObjectItem(l, "id")->valuestring, "12");
      assert_string_equal(cJSON_GetObjectItem(l, "prompts")->valuestring, "<start_of_turn>user\nq2<end_of_turn>\n<start_of_turn>model\n");
      assert_string_equal(cJSON_GetObjectItem(l, "final_answer")->valuestring, "a11");
      assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(l, "metadata"), "source")->valuestring, "ungar");
      cJSON_Delete(l);
      int lines = 0;
      for (size_t k = 0; k < e.len; k++) lines += e.body[k] == '\n';
      assert_int_equal(lines, 10);
    }
    if (i == 3) { /* dpo: one pair per prompt q0/q1/q2 with distinct scores, chosen scored higher */
      int lines = 0;
      for (size_t k = 0; k < e.len; k++) lines += e.body[k] == '\n';
      assert_true(lines >= 1 && lines <= 3);
      assert_non_null(strstr(e.body, "\"chosen\""));
    }
    done(&e);
  }
  /* the same build again: identical -> 200 and the same build; anything else -> 409 */
  resp r2 = call(s, "POST", "/api/datasets/build", req);
  assert_int_equal(r2.status, 200);
  assert_string_equal(cJSON_GetObjectItem(r2.json, "build_id")->valuestring, build);
  done(&r2);
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"hcd_baseline\",\"dataset_version\":\"v1\",\"limit\":5}", 409, "already exists");
  add_scored(s, 1); /* latest now selects a different set: not identical */
  expect_err(s, "POST", "/api/datasets/build", req, 409, "immutable");
  /* random: same seed same selection, another seed another */
  const char *rq1 = "{\"dataset_name\":\"r\",\"dataset_version\":\"s1\",\"filters\":{\"source\":\"ungar\"},\"limit\":5,\"selection_strategy\":\"random\",\"seed\":7}";
  const char *rq2 = "{\"dataset_name\":\"r\",\"dataset_version\":\"s1b\",\"filters\":{\"source\":\"ungar\"},\"limit\":5,\"selection_strategy\":\"random\",\"seed\":7}";
  const char *rq3 = "{\"dataset_name\":\"r\",\"dataset_version\":\"s2\",\"filters\":{\"source\":\"ungar\"},\"limit\":5,\"selection_strategy\":\"random\",\"seed\":8}";
  resp a = call(s, "POST", "/api/datasets/build", rq1), b = call(s, "POST", "/api/datasets/build", rq2),
       c = call(s, "POST", "/api/datasets/build", rq3);
  assert_int_equal(a.status, 201);
  assert_true(cJSON_Compare(ids_of(a.json), ids_of(b.json), true));
  assert_false(cJSON_Compare(ids_of(a.json), ids_of(c.json), true));
  done(&a); done(&b); done(&c);
  /* top_score: scores descending, ties by id */
  resp t = call(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"top\",\"dataset_version\":\"v1\",\"limit\":4,\"selection_strategy\":\"top_score\"}");
  assert_int_equal(t.status, 201);
  double prev = 1e9;
  int k = 0;
  const cJSON *id;
  cJSON_ArrayForEach(id, ids_of(t.json)) { /* scores (i*7)%5 of i = 0..11, 0: 4 4 3 3 */
    char p[64];
    snprintf(p, sizeof p, "/api/traces/%d", id->valueint);
    resp g = call(s, "GET", p, NULL);
    double sc = cJSON_GetObjectItem(g.json, "score")->valuedouble;
    assert_true(sc == (k < 2 ? 4 : 3));
    assert_true(sc <= prev);
    prev = sc;
    k++;
    done(&g);
  }
  assert_int_equal(k, 4);
  assert_int_equal(cJSON_GetArrayItem(ids_of(t.json), 0)->valueint, 3); /* ties: the older first */
  done(&t);
  /* lists and gets */
  r2 = call(s, "GET", "/api/datasets", NULL);
  assert_int_equal(r2.status, 200);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r2.json, "datasets")), 5);
  done(&r2);
  r2 = call(s, "GET", "/api/datasets/hcd_baseline-v1", NULL);
  assert_int_equal(r2.status, 200);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r2.json, "manifest"), "build_id")->valuestring, build);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r2.json, "preview")), 5);
  done(&r2);
  /* validation */
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_version\":\"v1\"}", 400, "dataset_name");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a-b\",\"dataset_version\":\"v1\"}", 400, "dataset_name");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\"}", 400, "dataset_version");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"filters\":{\"colour\":\"x\"}}", 400, "filters.colour");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"filters\":{\"since\":\"x\"}}", 400, "filters.since");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"filters\":[]}", 400, "filters");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"limit\":0}", 400, "limit");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"limit\":2.5}", 400, "limit");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"selection_strategy\":\"best\"}", 400, "selection_strategy");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"selection_strategy\":\"random\"}", 400, "seed");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"seed\":3}", 400, "seed");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"extra\":3}", 400, "'extra'");
  expect_err(s, "POST", "/api/datasets/build", "{\"dataset_name\":\"a\",\"dataset_version\":\"v1\",\"filters\":{\"source\":\"nobody\"}}", 400, "no trace matches");
  expect_err(s, "GET", "/api/datasets/build", NULL, 405, "method");
  expect_err(s, "GET", "/api/datasets/none-v9", NULL, 404, "not found");
  expect_err(s, "GET", "/api/datasets/none-v9/export.jsonl", NULL, 404, "not found");
  expect_err(s, "GET", "/api/datasets/hcd_baseline-v1/export.jsonl?format=csv", NULL, 400, "format");
  expect_err(s, "GET", "/api/datasets/hcd_baseline-v1/other", NULL, 404, "no such dataset route");
  expect_err(s, "GET", "/api/datasets/bad%20key", NULL, 400, "dataset key");
  /* tampering: change a stored trace of the dataset behind the store's back -> every export refused */
  tn_store_close(s);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "UPDATE objects SET json = replace(json, '\"a11\"', '\"a99\"') WHERE key = 'hcd_baseline-v1'",
                                NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_close(db);
  assert_int_equal(tn_store_open(&s, db_path, NULL), TN_OK);
  expect_err(s, "GET", "/api/datasets/hcd_baseline-v1/export.jsonl?format=tunix_sft", NULL, 500, "sha256");
  expect_err(s, "GET", "/api/datasets/hcd_baseline-v1/export.jsonl?format=messages", NULL, 500, "changed after it was built");
  tn_store_close(s);
  cJSON_Delete(m);
  free(r.body);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_runs_and_ui(void **st) {
  tn_store *s = fresh("runs");
  char dir[300], p[400];
  snprintf(dir, sizeof dir, "run_%d", (int)getpid());
  mkdir(dir, 0755);
  snprintf(p, sizeof p, "%s/run_manifest.json", dir);
  write_text(p, "{\"run_id\":\"20260101-000000-abcdef\",\"command\":\"sft\",\"seed\":3,\"git_commit\":\"x\","
                "\"store_dataset\":{\"key\":\"hcd_baseline-v1\",\"build_id\":\"0123456789abcdef\"}}");
  snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
  write_text(p, "{\"step\":1,\"loss\":2.5}\n{\"step\":2,\"loss\":2.0}\n{\"step\":3,\"loss\":1.5}\n{\"step\":4,\"lo");
  char body[600];
  snprintf(body, sizeof body, "{\"run_dir\":\"%s\"}", dir);
  resp r = call(s, "POST", "/api/runs", body);
  assert_int_equal(r.status, 201);
  assert_string_equal(cJSON_GetObjectItem(r.json, "id")->valuestring, "20260101-000000-abcdef");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "dataset"), "build_id")->valuestring, "0123456789abcdef");
  done(&r);
  r = call(s, "POST", "/api/runs", body); /* the same directory again: updated */
  assert_int_equal(r.status, 200);
  done(&r);
  r = call(s, "GET", "/api/runs", NULL);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "runs")), 1);
  done(&r);
  r = call(s, "GET", "/api/runs/20260101-000000-abcdef", NULL);
  assert_int_equal(r.status, 200);
  const cJSON *mx = cJSON_GetObjectItem(r.json, "metrics");
  assert_int_equal(cJSON_GetArraySize(mx), 3); /* the half-written last line is skipped */
  assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(mx, 2), "loss")->valuedouble == 1.5);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "manifest"), "command")->valuestring, "sft");
  done(&r);
  expect_err(s, "GET", "/api/runs/20260101-000000-abcdef/report", NULL, 400, "eval_before");
  expect_err(s, "POST", "/api/runs", "{}", 400, "run_dir");
  expect_err(s, "POST", "/api/runs", "{\"run_dir\":\"/nonexistent/run\"}", 400, "run_dir");
  expect_err(s, "POST", "/api/runs", "{\"run_dir\":\"/tmp\"}", 400, "run_manifest.json");
  snprintf(body, sizeof body, "{\"run_dir\":\"%s\",\"eval_before\":\"/nonexistent.jsonl\"}", dir);
  expect_err(s, "POST", "/api/runs", body, 400, "eval_before");
  snprintf(body, sizeof body, "{\"run_dir\":\"%s\",\"dataset\":\"nope-v1\"}", dir);
  expect_err(s, "POST", "/api/runs", body, 400, "dataset");
  snprintf(body, sizeof body, "{\"run_dir\":\"%s\",\"speed\":1}", dir);
  expect_err(s, "POST", "/api/runs", body, 400, "'speed'");
  /* the same id for another directory: 409 */
  char dir2[320];
  snprintf(dir2, sizeof dir2, "%s_b", dir);
  mkdir(dir2, 0755);
  snprintf(p, sizeof p, "%s/run_manifest.json", dir2);
  write_text(p, "{\"run_id\":\"20260101-000000-abcdef\"}");
  snprintf(body, sizeof body, "{\"run_dir\":\"%s\"}", dir2);
  expect_err(s, "POST", "/api/runs", body, 409, "already registered");
  expect_err(s, "GET", "/api/runs/nope", NULL, 404, "not found");
  expect_err(s, "GET", "/api/runs/nope/report", NULL, 404, "not found");
  expect_err(s, "PUT", "/api/runs", NULL, 405, "method");
  /* the page */
  r = call(s, "GET", "/ui/", NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.ctype, "text/html; charset=utf-8");
  assert_non_null(strstr(r.body, "<script src=\"app.js\">"));
  done(&r);
  r = call(s, "GET", "/ui/app.js", NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "/api/runs"));
  done(&r);
  r = call(s, "GET", "/ui/style.css", NULL);
  assert_int_equal(r.status, 200);
  done(&r);
  expect_err(s, "GET", "/ui/secret.txt", NULL, 404, "no such page");
  expect_err(s, "GET", "/ui/../store.db", NULL, 404, "no such page");
  expect_err(s, "POST", "/ui/", "{}", 405, "method");
  /* high-card duel: validation (the games themselves: test_store_hcd) */
  expect_err(s, "POST", "/api/ungar/high-card-duel/generate", "{\"seed\":1}", 400, "count");
  expect_err(s, "POST", "/api/ungar/high-card-duel/generate", "{\"count\":0}", 400, "count");
  expect_err(s, "POST", "/api/ungar/high-card-duel/generate", "{\"count\":5,\"seed\":-1}", 400, "seed");
  expect_err(s, "POST", "/api/ungar/high-card-duel/generate", "{\"count\":5,\"persist\":\"yes\"}", 400, "persist");
  expect_err(s, "POST", "/api/ungar/high-card-duel/generate", "{\"count\":5,\"players\":2}", 400, "'players'");
  expect_err(s, "GET", "/api/ungar/high-card-duel/generate", NULL, 405, "method");
  tn_store_close(s);
}

/* ---- 16 concurrent writers, each on its own connection (real SQLite locking) ---- */
#define WRITERS 16
#define POSTS 20
static void *writer(void *arg) {
  long w = (long)arg;
  tn_store *s = NULL;
  if (tn_store_open(&s, db_path, NULL) != TN_OK) return (void *)1L;
  long bad = 0;
  for (int i = 0; i < POSTS; i++) {
    char b[300];
    snprintf(b, sizeof b, "[{\"source\":\"w%ld\",\"prompt\":\"p%d\",\"completion\":\"c\"},{\"source\":\"w%ld\",\"prompt\":\"q%d\",\"completion\":\"c\"}]",
             w, i, w, i);
    tn_http_request rq = {.method = "POST", .path = "/api/traces", .query = "", .body = b, .body_len = strlen(b)};
    tn_http_reply rp = {0};
    tn_store_http(s, &rq, &rp);
    bad += rp.status != 201;
    tn_http_reply_free(&rp);
  }
  tn_store_close(s);
  return (void *)bad;
}

static void test_concurrent_writers(void **st) {
  tn_store *s = fresh("concurrent");
  pthread_t th[WRITERS];
  for (long w = 0; w < WRITERS; w++) assert_int_equal(pthread_create(&th[w], NULL, writer, (void *)w), 0);
  for (int w = 0; w < WRITERS; w++) {
    void *bad;
    pthread_join(th[w], &bad);
    assert_int_equal((long)bad, 0);
  }
  /* every trace is there: WRITERS * POSTS * 2, each source has its own, ids distinct */
  tn_store_trace_query q = {.limit = 1000};
  cJSON *o;
  tn_store_res r;
  assert_int_equal(tn_store_traces_list(s, &q, &o, &r), TN_OK);
  const cJSON *tr = cJSON_GetObjectItem(o, "traces");
  assert_int_equal(cJSON_GetArraySize(tr), WRITERS * POSTS * 2);
  int per[WRITERS] = {0};
  const cJSON *t;
  int prev = 1 << 30;
  cJSON_ArrayForEach(t, tr) {
    per[atoi(cJSON_GetObjectItem(t, "source")->valuestring + 1)]++;
    int id = cJSON_GetObjectItem(t, "id")->valueint;
    assert_true(id < prev);
    prev = id;
  }
  for (int w = 0; w < WRITERS; w++) assert_int_equal(per[w], POSTS * 2);
  cJSON_Delete(o);
  tn_store_close(s);
}

/* ---- kill -9 of a writer: every trace it reported committed is there, the database is sound ---- */
static void test_kill9(void **st) {
  tn_store *s0 = fresh("kill9");
  tn_store_close(s0);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());
  long total_reported = 0;
  for (int round = 0; round < 6; round++) {
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the child: insert forever, report each committed id */
      close(fd[0]);
      tn_store *s;
      if (tn_store_open(&s, db_path, NULL) != TN_OK) _exit(3);
      for (int i = 0;; i++) {
        char b[800]; /* room for the longest line (a 500-digit completion) */
        snprintf(b, sizeof b, "{\"source\":\"kill\",\"prompt\":\"round %d line %d\",\"completion\":\"%0*d\"}", round, i, 1 + i % 500, 0);
        cJSON *j = cJSON_Parse(b), *ids = NULL;
        tn_store_res r;
        if (tn_store_traces_add(s, j, &ids, &r) != TN_OK) { fprintf(stderr, "kill9 child: %s\n", tn_last_error()); _exit(4); }
        long id = (long)cJSON_GetArrayItem(ids, 0)->valuedouble;
        if (write(fd[1], &id, sizeof id) != sizeof id) _exit(5);
        cJSON_Delete(j);
        cJSON_Delete(ids);
      }
    }
    close(fd[1]);
    usleep(20000 + (useconds_t)(rand() % 200000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) print_error("child: status %d (exit %d): %s\n", status, WIFEXITED(status) ? WEXITSTATUS(status) : -1, tn_last_error());
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    long ids[65536];
    long n = 0;
    ssize_t k;
    while (n < 65536 && (k = read(fd[0], &ids[n], sizeof ids[0])) == sizeof ids[0]) n++;
    close(fd[0]);
    tn_store *s;
    assert_int_equal(tn_store_open(&s, db_path, NULL), TN_OK);
    for (long i = 0; i < n; i++) {
      cJSON *t = NULL;
      tn_store_res r;
      assert_int_equal(tn_store_trace_get(s, ids[i], &t, &r), TN_OK);
      cJSON_Delete(t);
    }
    tn_store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);
    total_reported += n;
  }
  print_message("kill -9: 6 rounds, %ld committed traces reported, all present\n", total_reported);
  assert_true(total_reported > 0);
}

/* the seeds' call: 100 games of seed 42, stored as ungar traces; same seed, same games */
static void test_hcd(void **st) {
  tn_store *s = fresh("hcd");
  resp a = call(s, "POST", "/api/ungar/high-card-duel/generate", "{\"count\": 100, \"seed\": 42, \"persist\": true}");
  assert_int_equal(a.status, 201);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a.json, "ids")), 100);
  resp b = call(s, "POST", "/api/ungar/high-card-duel/generate", "{\"count\": 100, \"seed\": 42, \"persist\": false}");
  resp c = call(s, "POST", "/api/ungar/high-card-duel/generate", "{\"count\": 100, \"seed\": 43, \"persist\": false}");
  assert_int_equal(b.status, 200);
  assert_true(cJSON_GetObjectItem(a.json, "total_chips")->valuedouble == cJSON_GetObjectItem(b.json, "total_chips")->valuedouble);
  /* the stored games are the unpersisted ones of the same seed, in order; seed 43 differs */
  const cJSON *bt = cJSON_GetObjectItem(b.json, "traces"), *ct = cJSON_GetObjectItem(c.json, "traces");
  assert_int_equal(cJSON_GetArraySize(bt), 100);
  resp l = call(s, "GET", "/api/traces?source=ungar&game=high_card_duel&limit=1000", NULL);
  const cJSON *lt = cJSON_GetObjectItem(l.json, "traces");
  assert_int_equal(cJSON_GetArraySize(lt), 100);
  int same43 = 0;
  for (int i = 0; i < 100; i++) {
    const cJSON *stored = cJSON_GetArrayItem(lt, 99 - i), *fresh_g = cJSON_GetArrayItem(bt, i); /* listing: newest first */
    assert_true(cJSON_Compare(cJSON_GetObjectItem(stored, "messages"), cJSON_GetObjectItem(fresh_g, "messages"), true));
    assert_true(cJSON_Compare(cJSON_GetObjectItem(stored, "outcome"), cJSON_GetObjectItem(fresh_g, "outcome"), true));
    same43 += cJSON_Compare(cJSON_GetObjectItem(cJSON_GetArrayItem(ct, i), "outcome"), cJSON_GetObjectItem(fresh_g, "outcome"), true);
    const cJSON *msgs = cJSON_GetObjectItem(stored, "messages");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1), "role")->valuestring, "assistant");
    assert_true(cJSON_GetObjectItem(stored, "score")->valuedouble == cJSON_GetObjectItem(cJSON_GetObjectItem(stored, "outcome"), "chips")->valuedouble);
  }
  assert_true(same43 < 50);
  done(&a); done(&b); done(&c); done(&l);
  tn_store_close(s);
}

/* the server's trace hook (tunic serve --log-traces): its trace shape stored as a serve trace */
static void test_trace_hook(void **st) {
  tn_store *s = fresh("hook");
  tn_store_trace_hook(s, "{\"source\":\"serve\",\"model\":\"base\",\"route\":\"math\",\"messages\":[{\"role\":\"user\","
                         "\"content\":[{\"type\":\"text\",\"text\":\"2+2\"},{\"type\":\"text\",\"text\":\"?\"}]},{\"role\":\"assistant\","
                         "\"content\":null,\"tool_calls\":[{\"id\":\"c1\"}]},{\"role\":\"tool\",\"content\":\"4\"},{\"role\":\"assistant\","
                         "\"content\":\"4\"}],\"metadata\":{\"request_id\":\"r1\",\"usage\":{\"total_tokens\":9}}}");
  tn_store_trace_hook(s, "{\"source\":\"serve\",\"model\":\"\",\"prompt\":\"Once\",\"completion\":\" upon\",\"metadata\":{}}");
  tn_store_trace_hook(s, "[1,2]"); /* dropped with a warning, nothing stored */
  resp r = call(s, "GET", "/api/traces?source=serve", NULL);
  const cJSON *tr = cJSON_GetObjectItem(r.json, "traces");
  assert_int_equal(cJSON_GetArraySize(tr), 2);
  const cJSON *chat = cJSON_GetArrayItem(tr, 1), *comp = cJSON_GetArrayItem(tr, 0);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(chat, "metadata"), "route")->valuestring, "math");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(chat, "metadata"), "request_id")->valuestring, "r1");
  const cJSON *msgs = cJSON_GetObjectItem(chat, "messages");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring, "2+2?");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")->valuestring, "");
  assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "tool_calls"));
  assert_string_equal(cJSON_GetObjectItem(comp, "completion")->valuestring, " upon");
  assert_null(cJSON_GetObjectItem(comp, "model"));
  done(&r);
  tn_store_close(s);
}

static void test_bad_file(void **st) {
  write_text("not_a_db.txt", "this is not an SQLite database, just some text that is long enough to have a header\n");
  tn_store *s = NULL;
  assert_int_not_equal(tn_store_open(&s, "not_a_db.txt", NULL), TN_OK);
  assert_null(s);
  assert_non_null(strstr(tn_last_error(), "not_a_db.txt"));
  assert_int_not_equal(tn_store_open(&s, "/nonexistent/dir/x.db", NULL), TN_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_traces),
    cmocka_unit_test(test_datasets),
    cmocka_unit_test(test_runs_and_ui),
    cmocka_unit_test(test_concurrent_writers),
    cmocka_unit_test(test_kill9),
    cmocka_unit_test(test_hcd),
    cmocka_unit_test(test_trace_hook),
    cmocka_unit_test(test_bad_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
