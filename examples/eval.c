/* eval.c - evaluating a model with libtunic's public API: optionally merge a LoRA adapter into
 * the base model and save the merged model (Hugging Face layout), then load the model and its
 * tokenizer, evaluate it greedily on an eval JSONL and print the accuracy and each example
 * (id, correct, extracted answer). The answer extraction rules are public functions too: the
 * first lines show GSM8K strict/flexible and MATH's last \boxed{} on a fixed text.
 *
 *   cc eval.c $(pkg-config --cflags --libs tunic) -o eval
 *   ./eval MODEL_DIR EVAL.jsonl [ADAPTER_DIR MERGED_DIR]
 */
#include <stdio.h>
#include <tunic.h>

static void show_extraction(void) {
  const char *text = "First 3 + 4 = 7, then 7 * 6 = 42.\n#### 42\nSo the answer is \\boxed{\\frac{1}{2}}.";
  char a[64] = "", b[64] = "", c[64] = "", d[64] = "";
  tn_gsm8k_strict(text, a, sizeof a);
  tn_gsm8k_flexible(text, b, sizeof b);
  tn_math_last_boxed(text, c, sizeof c);
  tn_extract_method how = tn_extract_answer(text, NULL, d, sizeof d);
  printf("extract: strict=%s flexible=%s boxed=%s chain=%s(%s) equiv=%d\n", a, b, c, d, tn_extract_method_name(how),
         tn_math_equiv(c, "0.5"));
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 5) {
    fprintf(stderr, "usage: %s MODEL_DIR EVAL.jsonl [ADAPTER_DIR MERGED_DIR]\n", argv[0]);
    return 2;
  }
  show_extraction();
  const char *model_dir = argv[1];
  if (argc == 5) { /* the adapter merged into the base, written as a plain checkpoint */
    tn_merge_opts mo;
    tn_merge_opts_default(&mo);
    tn_merge_info info;
    if (tn_merge_save(argv[1], argv[3], argv[4], &mo, &info) != TN_OK) {
      fprintf(stderr, "error: %s\n", tn_last_error());
      return 1;
    }
    printf("merged: %d modules onto %s weights, written as %s to %s\n", info.modules, info.base_dtype, info.dtype,
           argv[4]);
    model_dir = argv[4];
  }
  tn_model *m = NULL;
  tn_tokenizer *tok = NULL;
  tn_eval_result *r = NULL;
  int rc = 1;
  tn_eval_config c;
  tn_eval_config_default(&c);
  c.data = argv[2];
  c.max_new_tokens = 16;
  if (tn_model_load(&m, model_dir) != TN_OK || tn_tokenizer_load(model_dir, &tok) != TN_OK ||
      tn_eval_model(m, tok, &c, &r) != TN_OK)
    goto done;
  printf("accuracy: %.6f over %d examples\n", tn_eval_result_accuracy(r), tn_eval_result_count(r));
  for (int i = 0; i < tn_eval_result_count(r); i++) {
    tn_eval_example ex;
    if (tn_eval_result_example(r, i, &ex) != TN_OK) goto done;
    printf("example %s: correct=%d extracted=[%s] method=%s tokens=%d\n", ex.id, ex.correct, ex.extracted, ex.method,
           ex.tokens);
  }
  rc = 0;
done:
  if (rc) fprintf(stderr, "error: %s\n", tn_last_error());
  tn_eval_result_free(r);
  tn_tokenizer_free(tok);
  tn_model_free(m);
  return rc;
}
