/* cmd_eval.c - `tunic eval`: generate answers for an eval JSONL with a model (and optional
 * LoRA adapter), score them, write per-example results + a summary JSON, print a table.
 * The loop itself is tn_eval_run (src/eval/run_eval.c). */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "eval/run_eval.h"
#include "improve/judge.h"
#include "train/lora.h"

int tn_cmd_eval(int argc, char **argv) {
  const char *base_dtype = "auto", *head_dtype = "auto";
  const char *model_dir = NULL, *adapter = NULL, *adapter_name = NULL, *tokenizer = NULL, *answer_tag = NULL, *chat_template = NULL;
  const char *completions = NULL, *categorize = NULL, *classifier = NULL, *categories = NULL;
  bool no_sys = false, quiet = false, force = false;
  tn_eval_opts o;
  tn_eval_opts_default(&o);
  tn_flag flags[] = {
    {"model", 's', &model_dir, "model directory (HF layout)"},
    {"base-dtype", 's', &base_dtype, "storage of the frozen projections: f32 | bf16 | nf4 | auto (default: f32, nf4 for bitsandbytes 4-bit checkpoints)"},
    {"head-dtype", 's', &head_dtype, "embedding and LM head: f32 | bf16 | auto (default: f32, or under a bf16/nf4 base bf16 except a bitsandbytes checkpoint follows its bnb_4bit_compute_dtype; bf16 = faster)"},
    {"adapter", 's', &adapter, "PEFT LoRA adapter: DIR, or several by name: NAME=DIR,NAME=DIR"},
    {"adapter-name", 's', &adapter_name, "which named adapter is evaluated (default: the first)"},
    {"tokenizer", 's', &tokenizer, "tokenizer directory or tokenizer.json (default: the model directory)"},
    {"completions", 's', &completions, "score completions made elsewhere instead of a model: JSONL {id, completion (string or list), answer, prompt?, category?}"},
    {"categorize", 's', &categorize, "--completions: keyword rules (YAML category: [keywords]) for rows without a category"},
    {"classifier", 's', &classifier, "--completions: a model names the category of rows without one: MODEL[:ADAPTER]"},
    {"categories", 's', &categories, "the classifier's categories (default: math,code,creative,other)"},
    {"data", 's', &o.data, "eval JSONL: {id, prompt | messages, expected_answer | answer, category?}"},
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
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0],
                       "--model DIR --data eval.jsonl --out results.jsonl [options] | --completions C.jsonl --out R.jsonl");
  if (r) return r > 0 ? 0 : 2;
  if (completions && (model_dir || o.data)) {
    fprintf(stderr, "tunic eval: --completions replaces --model and --data\n");
    return 2;
  }
  if (!completions && (!model_dir || !o.data)) {
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
  if (!completions && (categorize || classifier)) {
    fprintf(stderr, "tunic eval: --categorize and --classifier work with --completions\n");
    return 2;
  }
  if (completions) {
    o.print = stdout;
    tn_eval_summary cs = {0};
    tn_categorizer *cz = NULL;
    tn_classifier *cl = NULL;
    tn_tokenizer *ct = NULL;
    tn_status cst = TN_OK;
    if (categorize) cst = tn_categorizer_load(categorize, &cz);
    if (cst == TN_OK && classifier) cst = tn_classifier_open(&cl, classifier, categories);
    if (cst == TN_OK && tokenizer) cst = tn_tokenizer_load(tokenizer, &ct);
    o.categorizer = cz;
    o.classify = cl ? tn_classify : NULL;
    o.classify_ctx = cl;
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
  if (s == TN_OK) s = tn_eval_run(m, tok, &o, &sum);
  int rc = s == TN_OK ? 0 : tn_cli_fail("eval", s);
  tn_eval_summary_free(&sum);
  tn_lora_sets_free(loras, n_loras);
  tn_tokenizer_free(tok);
  if (m) tn_model_free(m);
  return rc;
}
