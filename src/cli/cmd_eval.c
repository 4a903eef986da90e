/* cmd_eval.c - `tunic eval`: generate answers for an eval JSONL with a model (and optional
 * LoRA adapter), score them, write per-example results + a summary JSON, print a table.
 * The loop itself is tn_eval_run (src/eval/run_eval.c). */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "eval/run_eval.h"
#include "model/lora.h"
#include "agent/agentic.h"
#include "data/prompts.h"
#include "improve/judge.h"
#include "eval/report.h"
#include "train/train.h"
#include <cjson/cJSON.h>

/* The base model of a run (its manifest's first "models" path), malloc'd; NULL when unknown. */
static char *run_base_model(const char *run) {
  char *p = tn_path_join(run, "run_manifest.json"), *text = NULL, *out = NULL;
  size_t len;
  if (p && tn_read_file(p, &text, &len) == TN_OK) {
    cJSON *j = cJSON_Parse(text);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "models"), 0);
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(m, "path");
    if (cJSON_IsString(path)) out = tn_strdup(path->valuestring);
    cJSON_Delete(j);
  }
  tn_error_clear();
  free(text);
  free(p);
  return out;
}

/* `--checkpoints RUN --out DIR`: every RUN/checkpoints/step_N (a model folder, or a LoRA adapter
 * on the run's base model) evaluated into DIR/step_N.jsonl (kept when there: a second run only
 * evaluates new checkpoints), DIR/curve.jsonl (step, accuracy, ...), and DIR/report: the first
 * against the last checkpoint with the curve plotted (tunic report's plots). */
static tn_status eval_checkpoints(const char *run, const char *dir, tn_eval_opts *o, const char *base_dtype,
                                  const char *head_dtype, const char *tokenizer, const char *gnuplot) {
  long *steps = NULL;
  int n = tn_ckpt_list(run, &steps);
  if (n <= 0) { free(steps); return tn_error(TN_ERR_ARG, "--checkpoints %s: no checkpoints (RUN/checkpoints/step_N)", run); }
  TN_TRY(tn_mkdirs(dir));
  char *base = run_base_model(run), *curve = tn_path_join(dir, "curve.jsonl"), *first = NULL, *last = NULL;
  char *lines = NULL;
  size_t llen = 0;
  FILE *cf = open_memstream(&lines, &llen);
  tn_status s = cf && curve ? TN_OK : tn_error(TN_ERR_NOMEM, "out of memory");
  printf("%10s %9s %9s %9s\n", "step", "accuracy", "partial", "format");
  for (int i = 0; i < n && s == TN_OK; i++) {
    char ck[4096], res[4096];
    snprintf(ck, sizeof ck, "%s/checkpoints/step_%ld", run, steps[i]);
    snprintf(res, sizeof res, "%s/step_%ld.jsonl", dir, steps[i]);
    bool lora = false;
    char *ac = tn_path_join(ck, "adapter_config.json");
    lora = ac && tn_file_exists(ac);
    free(ac);
    if (!tn_file_exists(res)) {
      tn_model *m = NULL;
      tn_tokenizer *tok = NULL;
      tn_lora_set **loras = NULL;
      int nl = 0;
      tn_load_opts lo;
      tn_load_opts_default(&lo);
      const char *mdir = lora ? base : ck;
      if (!mdir) s = tn_error(TN_ERR_FORMAT, "%s: a LoRA checkpoint, and the run's manifest names no base model", ck);
      if (s == TN_OK) s = tn_parse_base_dtype(base_dtype, &lo.base_dtype);
      if (s == TN_OK) s = tn_parse_head_dtype(head_dtype, &lo.head_dtype);
      if (s == TN_OK) s = tn_model_load_opts(&m, mdir, &lo);
      if (s == TN_OK) s = tn_tokenizer_load(tokenizer ? tokenizer : mdir, &tok);
      if (s == TN_OK && lora) s = tn_lora_load_spec(m, ck, NULL, &loras, &nl);
      tn_eval_summary sum = {0};
      tn_eval_opts eo = *o;
      eo.out = res;
      eo.summary_out = NULL;
      eo.print = NULL;
      eo.model_name = ck;
      if (s == TN_OK) s = tn_eval_run(m, tok, &eo, &sum);
      tn_eval_summary_free(&sum);
      tn_lora_sets_free(loras, nl);
      tn_tokenizer_free(tok);
      if (m) tn_model_free(m);
    }
    char *sp = s == TN_OK ? tn_eval_summary_path(res) : NULL, *text = NULL;
    size_t len;
    if (s == TN_OK) s = sp ? tn_read_file(sp, &text, &len) : tn_error(TN_ERR_NOMEM, "out of memory");
    cJSON *j = s == TN_OK ? cJSON_Parse(text) : NULL;
    if (s == TN_OK && !j) s = tn_error(TN_ERR_FORMAT, "%s: invalid JSON", sp);
    if (s == TN_OK) {
      double acc = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "accuracy"));
      double part = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "partial_accuracy"));
      double fmt = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "format_rate"));
      double cred = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "mean_credit"));
      fprintf(cf, "{\"step\":%ld,\"eval/accuracy\":%.17g,\"eval/partial_accuracy\":%.17g,\"eval/format_rate\":%.17g,"
                  "\"eval/mean_credit\":%.17g}\n", steps[i], acc, part, fmt, cred);
      printf("%10ld %8.2f%% %8.2f%% %8.2f%%\n", steps[i], 100 * acc, 100 * part, 100 * fmt);
      if (!first) first = tn_strdup(res);
      free(last);
      last = tn_strdup(res);
    }
    cJSON_Delete(j);
    free(text);
    free(sp);
  }
  if (cf) fclose(cf);
  if (s == TN_OK) s = tn_write_file_atomic(curve, lines, llen);
  if (s == TN_OK && n >= 1) {
    tn_report_opts ro;
    tn_report_opts_default(&ro);
    char *rd = tn_path_join(dir, "report");
    const char *ms[1] = {curve};
    ro.before = first;
    ro.after = last;
    ro.metrics = ms;
    ro.n_metrics = 1;
    ro.out_dir = rd;
    ro.gnuplot = gnuplot;
    char title[512];
    snprintf(title, sizeof title, "learning curve of %s (first vs last checkpoint)", run);
    ro.title = title;
    s = rd ? tn_report_run(&ro, NULL) : tn_error(TN_ERR_NOMEM, "out of memory");
    if (s == TN_OK) printf("curve: %s\nreport: %s/report.md (plots: %s/plots/)\n", curve, rd, rd);
    free(rd);
  }
  free(lines);
  free(curve);
  free(first);
  free(last);
  free(base);
  free(steps);
  return s;
}

int tn_cmd_eval(int argc, char **argv) {
  const char *base_dtype = "auto", *head_dtype = "auto";
  const char *model_dir = NULL, *adapter = NULL, *adapter_name = NULL, *tokenizer = NULL, *answer_tag = NULL, *chat_template = NULL;
  const char *checkpoints = NULL, *gnuplot = NULL;
  const char *completions = NULL, *categorize = NULL, *classifier = NULL, *categories = NULL;
  bool no_sys = false, quiet = false, force = false;
  tn_eval_opts o;
  tn_eval_opts_default(&o);
  tn_agent_opts agent; /* --tools/--env/...: each example is an episode (src/agent) */
  tn_agent_opts_default(&agent);
  tn_flag flags[] = {
    {"model", 's', &model_dir, "model directory (HF layout)"},
    {"base-dtype", 's', &base_dtype, "storage of the frozen projections: f32 | bf16 | nf4 | auto (default: f32, nf4 for bitsandbytes 4-bit checkpoints)"},
    {"head-dtype", 's', &head_dtype, "embedding and LM head: f32 | bf16 | auto (default: f32, or under a bf16/nf4 base bf16 except a bitsandbytes checkpoint follows its bnb_4bit_compute_dtype; bf16 = faster)"},
    {"adapter", 's', &adapter, "PEFT LoRA adapter: DIR, or several by name: NAME=DIR,NAME=DIR"},
    {"adapter-name", 's', &adapter_name, "which named adapter is evaluated (default: the first)"},
    {"tokenizer", 's', &tokenizer, "tokenizer directory or tokenizer.json (default: the model directory)"},
    {"completions", 's', &completions, "score completions made elsewhere instead of a model: JSONL {id, completion (string or list), answer, prompt?, category?}"},
    {"checkpoints", 's', &checkpoints, "evaluate every checkpoint of this run directory: --out is then a directory (curve, report, plot)"},
    {"gnuplot", 's', &gnuplot, "--checkpoints: gnuplot program for the plot (default: $TN_GNUPLOT, else gnuplot)"},
    {"categorize", 's', &categorize, "keyword rules (YAML category: [keywords]) naming the category of rows without one"},
    {"classifier", 's', &classifier, "a model names the category of rows without one: MODEL[:ADAPTER]"},
    {"categories", 's', &categories, "the classifier's categories (default: math,code,creative,other)"},
    {"data", 's', &o.data, "eval JSONL: {id, prompt | messages, expected_answer | answer (absent: text metrics only), category?}"},
    {"out", 's', &o.out, "per-example results JSONL (summary: <out without .jsonl>.summary.json)"},
    {"summary", 's', &o.summary_out, "summary JSON path (default: derived from --out)"},
    {"n", 'i', &o.n, "samples per prompt; pass@k is reported when > 1"},
    {"temperature", 'f', &o.temperature, "0 = greedy (default)"},
    {"top-p", 'f', &o.top_p, "nucleus sampling mass (1 = off)"},
    {"top-k", 'i', &o.top_k, "keep the k most likely tokens (0 = off)"},
    {"seed", 'u', &o.seed, "sampling seed"},
    {"max-new-tokens", 'i', &o.max_new_tokens, "tokens to generate per sample"},
    {"batch-size", 'i', &o.batch_size, "prompts per generation batch"},
    {"limit", 'i', &o.limit, "evaluate the first N examples only (0 = all)"},
    {"max-prompt-length", 'i', &o.max_prompt_len, "keep the last N prompt tokens (0 = no limit)"},
    {"system-prompt", 's', &o.system_prompt, "system prompt (default: the reasoning/answer prompt)"},
    {"no-system-prompt", 'b', &no_sys, "no system prompt"},
    {"chat-format", 's', &o.chat_format, "auto | gemma | chatml | llama3 (default: auto)"},
    {"field-map", 's', &o.field_map, "data fields renamed: prompt=problem,answer=final,... (TARGET=SOURCE)"},
    {"chat-template", 's', &chat_template, "a .jinja chat template used instead of the model's"},
    {"no-chat", 'b', &o.no_chat, "plain prompt template even when the tokenizer has a chat template"},
    {"answer-tag", 's', &answer_tag, "answer tag name (default answer: <answer>...</answer>)"},
    {"tags-only", 'b', &o.extract.tags_only, "extract answers from the answer tags only"},
    {"quiet", 'b', &quiet, "no progress line"},
    {"force", 'b', &force, "overwrite --out / --summary even when they are not results of tunic eval"},
    TN_AGENT_FLAGS(agent),
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0],
                       "--model DIR --data eval.jsonl --out results.jsonl [options] | --completions C.jsonl --out R.jsonl");
  if (r) return r > 0 ? 0 : 2;
  if (checkpoints) {
    if (model_dir || completions || !o.data || !o.out) {
      fprintf(stderr, "tunic eval: --checkpoints RUN needs --data and --out DIR, and no --model or --completions\n");
      return 2;
    }
    if (no_sys) o.system_prompt = "";
    static const char *const own_ck[] = {"step_*.jsonl", "step_*.summary.json", "curve.jsonl", "report", NULL};
    tn_status cs = tn_cli_out_dir("out", o.out, own_ck, force);
    if (cs != TN_OK) return tn_cli_fail("eval", cs);
    o.progress = !quiet;
    cs = eval_checkpoints(checkpoints, o.out, &o, base_dtype, head_dtype, tokenizer, gnuplot);
    return cs == TN_OK ? 0 : tn_cli_fail("eval", cs);
  }
  if (completions && (model_dir || o.data)) {
    fprintf(stderr, "tunic eval: --completions replaces --model and --data\n");
    return 2;
  }
  if (!completions && !checkpoints && (!model_dir || !o.data)) {
    fprintf(stderr, "tunic eval: --model and --data (or --completions) are required\n");
    return 2;
  }
  if (no_sys) o.system_prompt = "";
  /* results lines start with the id; the summary is an indented object starting with "n" */
  static const char *const results_magic[] = {"{\"id\":", NULL}, *const summary_magic[] = {"{\n\t\"n\":", NULL};
  char *sp = o.out && !o.summary_out ? tn_eval_summary_path(o.out) : NULL;
  tn_status os = o.out ? tn_cli_out_file("out", o.out, results_magic, force) : TN_OK;
  if (os == TN_OK && (o.summary_out || sp))
    os = tn_cli_out_file("summary", o.summary_out ? o.summary_out : sp, summary_magic, force);
  free(sp);
  if (os != TN_OK) return tn_cli_fail("eval", os);
  char open_tag[80], close_tag[80];
  if (answer_tag) {
    if (!*answer_tag || strlen(answer_tag) > 64 || strpbrk(answer_tag, "<>/ ")) {
      fprintf(stderr, "tunic eval: --answer-tag: '%s' is not a tag name\n", answer_tag);
      return 2;
    }
    snprintf(open_tag, sizeof open_tag, "<%s>", answer_tag);
    snprintf(close_tag, sizeof close_tag, "</%s>", answer_tag);
    o.extract.answer_open = open_tag;
    o.extract.answer_close = close_tag;
  }
  /* categories for rows without one (both paths): keyword rules or a classifier model */
  tn_categorizer *cz = NULL;
  tn_classifier *cl = NULL;
  tn_status cst = TN_OK;
  if (categorize) cst = tn_categorizer_load(categorize, &cz);
  if (cst == TN_OK && classifier) cst = tn_classifier_open(&cl, classifier, categories);
  o.categorizer = cz;
  o.classify = cl ? tn_classify : NULL;
  o.classify_ctx = cl;
  if (cst != TN_OK) { tn_categorizer_free(cz); tn_classifier_close(cl); return tn_cli_fail("eval", cst); }
  if (completions) {
    o.print = stdout;
    tn_eval_summary cs = {0};
    tn_tokenizer *ct = NULL;
    if (cst == TN_OK && tokenizer) cst = tn_tokenizer_load(tokenizer, &ct);
    o.count_tok = ct;
    if (cst == TN_OK) cst = tn_eval_completions(completions, &o, &cs);
    if (cst == TN_OK && cl)
      printf("classifier %s: %d prompts it named no category of (counted as other)\n", classifier, tn_classifier_failures(cl));
    tn_eval_summary_free(&cs);
    tn_categorizer_free(cz);
    tn_classifier_close(cl);
    tn_tokenizer_free(ct);
    return cst == TN_OK ? 0 : tn_cli_fail("eval", cst);
  }
  o.model_name = model_dir;
  o.adapter_name = adapter;
  o.print = stdout;
  o.progress = !quiet;
  tn_model *m = NULL;
  tn_tokenizer *tok = NULL;
  tn_lora_set **loras = NULL;
  int n_loras = 0;
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  tn_status s = tn_parse_base_dtype(base_dtype, &lo.base_dtype);
  if (s == TN_OK) s = tn_parse_head_dtype(head_dtype, &lo.head_dtype);
  if (s == TN_OK) s = tn_model_load_opts(&m, model_dir, &lo);
  if (s == TN_OK) s = tn_tokenizer_load(tokenizer ? tokenizer : model_dir, &tok);
  if (s == TN_OK && chat_template) s = tn_tokenizer_set_chat_template(tok, chat_template);
  if (s == TN_OK && adapter) s = tn_lora_load_spec(m, adapter, adapter_name, &loras, &n_loras);
  tn_eval_summary sum = {0};
  tn_toolset *ts = NULL;
  tn_env *env = NULL;
  tn_agent_eval_ctx actx;
  if (s == TN_OK && tn_agent_opts_active(&agent)) {
    s = tn_agent_env_create(&agent, o.seed, &ts, &env);
    tn_agent_eval_ctx_init(&actx, m, tok, env, &agent, o.system_prompt ? o.system_prompt : TN_DEFAULT_SYSTEM_PROMPT);
    o.generate = tn_agent_eval_generate;
    o.generate_ctx = &actx;
  }
  if (s == TN_OK) s = tn_eval_run(m, tok, &o, &sum);
  if (s == TN_OK && o.generate) tn_agent_eval_print(&actx, stdout);
  tn_env_free(env);
  tn_toolset_free(ts);
  if (s == TN_OK && cl)
    printf("classifier %s: %d prompts it named no category of (counted as other)\n", classifier, tn_classifier_failures(cl));
  int rc = s == TN_OK ? 0 : tn_cli_fail("eval", s);
  tn_categorizer_free(cz);
  tn_classifier_close(cl);
  tn_eval_summary_free(&sum);
  tn_lora_sets_free(loras, n_loras);
  tn_tokenizer_free(tok);
  if (m) tn_model_free(m);
  return rc;
}
