/* adapters.c - LoRA adapters with libtunic's public API: load a model and one or more PEFT
 * adapters side by side, generate greedily with the base model and with each adapter active
 * (switching copies nothing), then merge the first adapter into the weights and generate again.
 * Prints one line per run: the label, then the token ids and the sum of their log-probs.
 *
 *   cc adapters.c $(pkg-config --cflags --libs tunic) -o adapters
 *   ./adapters MODEL_DIR PROMPT ADAPTER_DIR [ADAPTER_DIR...]
 */
#include <stdio.h>
#include <tunic.h>

static int run(const tn_model *m, const tn_tokenizer *tok, const char *label, const char *prompt) {
  tn_gen_opts g;
  tn_gen_opts_default(&g);
  g.max_new_tokens = 12;
  tn_text_opts t;
  tn_text_opts_default(&t);
  tn_text_result r;
  if (tn_generate_text(m, tok, &prompt, 1, &g, &t, &r) != TN_OK) {
    fprintf(stderr, "error: %s\n", tn_last_error());
    return 1;
  }
  double lp = 0;
  printf("%s:", label);
  for (int i = 0; i < r.n; i++) {
    printf(" %d", r.ids[i]);
    lp += r.logprobs[i];
  }
  printf(" | %.6f\n", lp);
  tn_text_results_free(&r, 1);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL_DIR PROMPT ADAPTER_DIR [ADAPTER_DIR...]\n", argv[0]);
    return 2;
  }
  enum { MAXA = 8 };
  tn_model *m = NULL;
  tn_tokenizer *tok = NULL;
  tn_adapter *ad[MAXA] = {0};
  int na = 0, rc = 1;
  if (tn_model_load(&m, argv[1]) != TN_OK || tn_tokenizer_load(argv[1], &tok) != TN_OK) goto done;
  for (int i = 3; i < argc && na < MAXA; i++) {
    char name[16];
    snprintf(name, sizeof name, "a%d", na);
    if (tn_adapter_load(m, argv[i], name, &ad[na]) != TN_OK) goto done;
    na++;
  }
  if (run(m, tok, "base", argv[2])) goto done;
  for (int i = 0; i < na; i++) {
    tn_adapter_activate(ad[i]);
    if (!tn_adapter_is_active(ad[i])) { fprintf(stderr, "error: %s is not active\n", tn_adapter_name(ad[i])); goto done; }
    if (run(m, tok, tn_adapter_name(ad[i]), argv[2])) goto done;
  }
  tn_adapter_deactivate(ad[na - 1]);
  if (run(m, tok, "base-again", argv[2])) goto done;
  if (tn_adapter_merge(ad[0]) != TN_OK) goto done;
  if (run(m, tok, "merged-a0", argv[2])) goto done;
  rc = 0;
done:
  if (rc) fprintf(stderr, "error: %s\n", tn_last_error());
  for (int i = 0; i < na; i++) tn_adapter_free(ad[i]);
  tn_tokenizer_free(tok);
  tn_model_free(m);
  return rc;
}
