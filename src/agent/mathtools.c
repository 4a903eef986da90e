/* mathtools.c - tool-use arithmetic problems and trajectories (mathtools.h). The tool results
 * in the trajectories come from the calculator itself (tn_calc_eval), so they are what the tool
 * answers at training time. Not for: problems without tools (src/data/math_gen.c). */
#include "agent/mathtools.h"
#include <string.h>
#include "agent/tool.h"

void tn_tool_math_config_default(tn_tool_math_config *c) {
  memset(c, 0, sizeof *c);
  c->n = 1000;
  c->seed = 1;
  c->test_frac = 0.1;
}

typedef struct {
  char question[400];
  char expr[96];
  char answer[48];
  const char *category;
} problem;

static long rint_(tn_rng *r, long lo, long hi) { return lo + (long)(tn_rng_u64(r) % (uint64_t)(hi - lo + 1)); }

static void gen(tn_rng *r, problem *p) {
  long a = rint_(r, 101, 999), b = rint_(r, 101, 9999), c = rint_(r, 1001, 9999), d = rint_(r, 1001, 9999);
  static const char *items[] = {"boxes", "crates", "bags", "packs", "trays"};
  static const char *things[] = {"apples", "screws", "cards", "bottles", "pencils"};
  const char *it = items[tn_rng_u64(r) % 5], *th = things[tn_rng_u64(r) % 5];
  switch (tn_rng_u64(r) % 6) {
    case 0:
      snprintf(p->question, sizeof p->question, "What is %ld * %ld?", a, b);
      snprintf(p->expr, sizeof p->expr, "%ld * %ld", a, b);
      p->category = "product";
      break;
    case 1:
      snprintf(p->question, sizeof p->question, "A warehouse has %ld %s with %ld %s in each. How many %s are there in total?", a, it, b, th, th);
      snprintf(p->expr, sizeof p->expr, "%ld * %ld", a, b);
      p->category = "warehouse";
      break;
    case 2:
      snprintf(p->question, sizeof p->question, "What is %ld + %ld + %ld?", c, d, b);
      snprintf(p->expr, sizeof p->expr, "%ld + %ld + %ld", c, d, b);
      p->category = "sum";
      break;
    case 3: {
      long e = rint_(r, 11, 99), e2 = rint_(r, 11, 99);
      snprintf(p->question, sizeof p->question, "A shop sold %ld %s at %ld dollars each and %ld more at %ld dollars each. How many dollars did it take in?", a, th, e, c, e2);
      snprintf(p->expr, sizeof p->expr, "%ld * %ld + %ld * %ld", a, e, c, e2);
      p->category = "shop";
      break;
    }
    case 4: {
      long days = rint_(r, 12, 99), shipped = rint_(r, 101, 999);
      snprintf(p->question, sizeof p->question, "A factory makes %ld parts a day for %ld days and ships %ld of them. How many parts are left?", a, days, shipped);
      snprintf(p->expr, sizeof p->expr, "%ld * %ld - %ld", a, days, shipped);
      p->category = "factory";
      break;
    }
    default: {
      long m = rint_(r, 11, 99);
      snprintf(p->question, sizeof p->question, "What is %ld - %ld + %ld * %ld?", c, d, a, m);
      snprintf(p->expr, sizeof p->expr, "%ld - %ld + %ld * %ld", c, d, a, m);
      p->category = "mixed";
      break;
    }
  }
}

typedef struct { const problem *ps; int64_t from, to; int kind; const tn_tool_math_config *c; const char *prefix; const cJSON *calc; } wctx;

static tn_status fill(FILE *f, void *v) {
  wctx *w = v;
  for (int64_t i = w->from; i < w->to; i++) {
    const problem *p = &w->ps[i];
    cJSON *o = cJSON_CreateObject();
    long before = tn_alloc_failures();
    if (w->kind == 0) {
      cJSON *ms = cJSON_AddArrayToObject(o, "messages");
      cJSON_AddItemToArray(ms, tn_agent_message("user", p->question));
      char args[160], call_id[32], text[400];
      snprintf(args, sizeof args, "{\"expression\": \"%s\"}", p->expr);
      snprintf(call_id, sizeof call_id, "call_%lld", (long long)i);
      cJSON *a;
      if (w->c->text_calls) {
        snprintf(text, sizeof text, "<tool_call>\n{\"name\": \"calculator\", \"arguments\": %s}\n</tool_call>", args);
        a = tn_agent_message("assistant", text);
      } else {
        a = tn_agent_message("assistant", "");
        cJSON *tc = cJSON_AddArrayToObject(a, "tool_calls"), *c = cJSON_CreateObject(), *fn = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "id", call_id);
        cJSON_AddStringToObject(c, "type", "function");
        cJSON_AddStringToObject(fn, "name", "calculator");
        cJSON_AddItemToObject(fn, "arguments", cJSON_Parse(args));
        cJSON_AddItemToObject(c, "function", fn);
        cJSON_AddItemToArray(tc, c);
      }
      cJSON_AddItemToArray(ms, a);
      cJSON *t = tn_agent_message("tool", p->answer);
      cJSON_AddStringToObject(t, "name", "calculator");
      if (!w->c->text_calls) cJSON_AddStringToObject(t, "tool_call_id", call_id);
      cJSON_AddItemToArray(ms, t);
      /* the answer alone: the result is the tool's, restating the expression adds only length */
      snprintf(text, sizeof text, "<answer>%s</answer>", p->answer);
      cJSON_AddItemToArray(ms, tn_agent_message("assistant", text));
      cJSON *tools = cJSON_AddArrayToObject(o, "tools");
      cJSON_AddItemToArray(tools, cJSON_Duplicate(w->calc, 1)); /* the schema the toolset lists */
    } else {
      char id[48];
      snprintf(id, sizeof id, "%s-%06lld", w->prefix, (long long)(i - w->from + 1));
      cJSON_AddStringToObject(o, "id", id);
      cJSON_AddStringToObject(o, "prompt", p->question);
      cJSON_AddStringToObject(o, "question", p->question);
      cJSON_AddStringToObject(o, "answer", p->answer);
      cJSON_AddStringToObject(o, "expected_answer", p->answer);
      cJSON_AddStringToObject(o, "category", p->category);
      cJSON_AddStringToObject(o, "expression", p->expr);
    }
    char *line = tn_alloc_failures() == before ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!line) return tn_error(TN_ERR_NOMEM, "tool math data: cannot encode problem %lld", (long long)i);
    int ok = fputs(line, f) >= 0 && fputc('\n', f) != EOF;
    cJSON_free(line);
    if (!ok) return tn_error(TN_ERR_IO, "tool math data: write failed");
  }
  return TN_OK;
}

static int cmp_q(const void *a, const void *b) { return strcmp(((const problem *)a)->question, ((const problem *)b)->question); }

tn_status tn_tool_math_write(const tn_tool_math_config *c, const char *dir, int64_t *n_train, int64_t *n_test) {
  if (c->n < 1 || c->n > 100000000) return tn_error(TN_ERR_ARG, "tool math data: n %lld outside 1..1e8", (long long)c->n);
  problem *ps = calloc((size_t)c->n, sizeof *ps);
  problem *sorted = calloc((size_t)c->n, sizeof *sorted);
  if (!ps || !sorted) { free(ps); free(sorted); return TN_ERR_NOMEM; }
  tn_rng r;
  tn_rng_seed(&r, c->seed ^ 0x70015ULL);
  int64_t k = 0, tries = 0;
  tn_status st = TN_OK;
  /* distinct questions: draw, keep unless already drawn (checked in a sorted copy every so often) */
  while (k < c->n && st == TN_OK) {
    if (++tries > c->n * 20 + 1000) { st = tn_error(TN_ERR_LIMIT, "tool math data: cannot draw %lld distinct problems", (long long)c->n); break; }
    problem p;
    memset(&p, 0, sizeof p);
    gen(&r, &p);
    bool dup = bsearch(&p, sorted, (size_t)(k - k % 1024), sizeof p, cmp_q) != NULL;
    for (int64_t j = k - k % 1024; j < k && !dup; j++) dup = !strcmp(ps[j].question, p.question);
    if (dup) continue;
    char *val, *err;
    if (!tn_calc_eval(p.expr, 10000, &val, &err)) { st = tn_error(TN_ERR_INTERNAL, "tool math data: %s: %s", p.expr, err ? err : "?"); free(err); break; }
    snprintf(p.answer, sizeof p.answer, "%s", val);
    free(val);
    ps[k] = p;
    sorted[k] = p;
    k++;
    if (k % 1024 == 0) qsort(sorted, (size_t)k, sizeof *sorted, cmp_q);
  }
  free(sorted);
  tn_toolset *ts = NULL;
  if (st == TN_OK) st = tn_toolset_create(&ts, "calculator", NULL);
  const cJSON *calc = ts ? cJSON_GetArrayItem(tn_toolset_schemas(ts), 0) : NULL;
  if (st == TN_OK) st = tn_mkdirs(dir);
  *n_test = (int64_t)((double)c->n * c->test_frac + 0.5);
  *n_train = c->n - *n_test;
  struct { const char *file; wctx w; } outs[3] = {
    {"train_sft.jsonl", {ps, 0, *n_train, 0, c, "train", calc}},
    {"train_grpo.jsonl", {ps, 0, *n_train, 1, c, "train", calc}},
    {"test.jsonl", {ps, *n_train, c->n, 1, c, "test", calc}},
  };
  for (int i = 0; i < 3 && st == TN_OK; i++) {
    char *path = tn_path_join(dir, outs[i].file);
    st = path ? tn_write_atomic_cb(path, fill, &outs[i].w) : TN_ERR_NOMEM;
    if (st != TN_OK && path) tn_error_prefix(st, "tool math data: %s", path);
    free(path);
  }
  tn_toolset_free(ts);
  free(ps);
  return st;
}
