/* eval_api.c - the public evaluation API (tunic/eval.h) over tn_eval_run: options, the result
 * handle and its per-example view (read from the results lines the run keeps).
 * Not for: the evaluation loop (run_eval.c), the extraction rules (extract.c, conventions.c). */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "base/json.h"
#include "eval/run_eval.h"
#include "tunic/eval.h"

struct tn_eval_result {
  tn_eval_summary sum;
  char *summary_text;
  char (*ids)[64]; /* numeric ids as text */
  int n;
};

void tn_eval_config_default(tn_eval_config *c) {
  tn_eval_opts o;
  tn_eval_opts_default(&o);
  *c = (tn_eval_config){.batch_size = o.batch_size, .max_new_tokens = o.max_new_tokens, .n = o.n,
                        .temperature = o.temperature, .top_p = o.top_p, .top_k = o.top_k, .seed = o.seed,
                        .extract = o.extract};
}

tn_status tn_eval_model(const tn_model *m, const tn_tokenizer *tok, const tn_eval_config *c, tn_eval_result **out) {
  if (!out) return tn_error(TN_ERR_ARG, "tn_eval_model: NULL result pointer");
  *out = NULL;
  if (!m || !tok || !c) return tn_error(TN_ERR_ARG, "tn_eval_model: NULL argument");
  /* every option tn_eval_opts_default sets comes from c (tn_eval_config_default gives the same values) */
  const tn_eval_opts o = {
      .data = c->data, .out = c->out, .summary_out = c->summary_out, .system_prompt = c->system_prompt,
      .chat_format = c->chat_format, .no_chat = c->no_chat, .limit = c->limit, .batch_size = c->batch_size,
      .max_new_tokens = c->max_new_tokens, .max_prompt_len = c->max_prompt_len, .n = c->n,
      .temperature = c->temperature, .top_p = c->top_p, .top_k = c->top_k, .seed = c->seed, .extract = c->extract,
      .progress = c->progress, .keep_results = true};
  tn_eval_result *r = calloc(1, sizeof *r);
  if (!r) return tn_error(TN_ERR_NOMEM, "out of memory");
  tn_status s = tn_eval_run(m, tok, &o, &r->sum);
  if (s == TN_OK) {
    r->n = cJSON_GetArraySize(r->sum.results);
    r->summary_text = cJSON_PrintUnformatted(r->sum.json);
    r->ids = calloc(r->n ? r->n : 1, sizeof *r->ids);
    if (!r->summary_text || !r->ids) s = tn_error(TN_ERR_NOMEM, "out of memory");
  }
  if (s != TN_OK) {
    tn_eval_result_free(r);
    return s;
  }
  *out = r;
  return TN_OK;
}

int tn_eval_result_count(const tn_eval_result *r) { return r ? r->n : 0; }
double tn_eval_result_accuracy(const tn_eval_result *r) { return r ? r->sum.accuracy : 0; }
const char *tn_eval_result_summary(const tn_eval_result *r) { return r ? r->summary_text : NULL; }

static const char *str_or(const cJSON *line, const char *key, const char *def) {
  const cJSON *v = tn_json_field(line, key);
  return cJSON_IsString(v) ? v->valuestring : def;
}

tn_status tn_eval_result_example(const tn_eval_result *r, int i, tn_eval_example *ex) {
  if (!r || !ex) return tn_error(TN_ERR_ARG, "tn_eval_result_example: NULL argument");
  if (i < 0 || i >= r->n) return tn_error(TN_ERR_ARG, "tn_eval_result_example: example %d of %d", i, r->n);
  const cJSON *line = cJSON_GetArrayItem(r->sum.results, i), *id = tn_json_field(line, "id");
  if (cJSON_IsNumber(id)) snprintf(r->ids[i], sizeof r->ids[i], "%.17g", id->valuedouble);
  const cJSON *nc = tn_json_field(line, "num_correct");
  *ex = (tn_eval_example){
    .id = cJSON_IsString(id) ? id->valuestring : r->ids[i],
    .category = str_or(line, "category", NULL),
    .prompt = str_or(line, "prompt", ""),
    .expected = str_or(line, "expected_answer", ""),
    .completion = str_or(line, "completion", ""),
    .extracted = str_or(line, "extracted", ""),
    .method = str_or(line, "method", "none"),
    .correct = cJSON_IsTrue(tn_json_field(line, "correct")),
    .format_ok = cJSON_IsTrue(tn_json_field(line, "format_ok")),
    .tokens = (int)cJSON_GetNumberValue(tn_json_field(line, "tokens")),
  };
  ex->num_correct = cJSON_IsNumber(nc) ? (int)nc->valuedouble : ex->correct;
  return TN_OK;
}

void tn_eval_result_free(tn_eval_result *r) {
  if (!r) return;
  tn_eval_summary_free(&r->sum);
  free(r->summary_text);
  free(r->ids);
  free(r);
}
