/* generate.c - text from a model with libtunic's public API: load a Hugging Face model
 * directory and its tokenizer, sample a continuation of a prompt (greedy unless a
 * temperature is given), print it as it is produced, then its finish reason and tokens.
 *
 *   cc generate.c $(pkg-config --cflags --libs tunic) -o generate
 *   ./generate MODEL_DIR "Once upon a time" [max_new_tokens] [temperature] [stop]
 */
#include <stdio.h>
#include <stdlib.h>
#include <tunic.h>

static void on_text(void *user, int prompt, int sample, const char *piece, size_t len) {
  (void)user, (void)prompt, (void)sample;
  fwrite(piece, 1, len, stdout);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL_DIR PROMPT [max_new_tokens] [temperature] [stop]\n", argv[0]);
    return 2;
  }
  tn_model *model = NULL;
  tn_tokenizer *tok = NULL;
  if (tn_model_load(&model, argv[1]) != TN_OK || tn_tokenizer_load(argv[1], &tok) != TN_OK) {
    fprintf(stderr, "error: %s\n", tn_last_error());
    tn_model_free(model);
    return 1;
  }
  tn_gen_opts g;
  tn_gen_opts_default(&g);
  g.max_new_tokens = argc > 3 ? atoi(argv[3]) : 32;
  g.temperature = argc > 4 ? (float)atof(argv[4]) : 0.0f;
  g.seed = 1;
  tn_text_opts t;
  tn_text_opts_default(&t);
  const char *stop[1] = {argc > 5 ? argv[5] : NULL};
  t.stop = stop;
  t.n_stop = argc > 5;
  t.on_text = on_text;
  const char *prompts[1] = {argv[2]};
  tn_text_result r;
  tn_status s = tn_generate_text(model, tok, prompts, 1, &g, &t, &r);
  if (s != TN_OK) {
    fprintf(stderr, "error: %s: %s\n", tn_status_name(s), tn_last_error());
  } else {
    static const char *why[] = {"length", "stop id", "stop string"};
    printf("\n-- finish: %s, %d tokens:", why[r.finish], r.n);
    for (int i = 0; i < r.n; i++) printf(" %d", r.ids[i]);
    printf("\n");
    tn_text_results_free(&r, 1);
  }
  tn_tokenizer_free(tok);
  tn_model_free(model);
  return s == TN_OK ? 0 : 1;
}
