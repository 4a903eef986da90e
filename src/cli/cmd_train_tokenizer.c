/* cmd_train_tokenizer.c - `tunic train-tokenizer --data FILE [--data FILE2 ...] --vocab-size N
 * [--min-frequency F] --out DIR`: train a byte-level BPE tokenizer (tn_bpe_train) and write
 * DIR/tokenizer.json + tokenizer_config.json, then report the compression measured by
 * encoding the corpus with the written tokenizer through tunic's own tokenizer.
 * Not for: the training itself (src/tokenizer/tok_train.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "tunic/tokenizer.h"

typedef struct {
  const tn_tokenizer *tok;
  tn_encoding enc;
  size_t n_tokens;
} measure_ctx;

static tn_status measure_text(void *ctx, const char *text, size_t len) {
  measure_ctx *m = ctx;
  TN_TRY(tn_tokenizer_encode(m->tok, text, len, false, &m->enc));
  m->n_tokens += m->enc.n;
  return TN_OK;
}

int tn_cmd_train_tokenizer(int argc, char **argv) {
  const char *data = NULL, *out = NULL;
  int vocab = 0, min_freq = 2;
  bool force = false;
  tn_flag flags[] = {
    {"data", 's', &data, "training text: .jsonl (every string value) or text (every line); repeat or comma-separate"},
    {"vocab-size", 'i', &vocab, "vocabulary size, counting the 256 bytes and 5 special tokens, >= 261 (default: none, required)"},
    {"min-frequency", 'i', &min_freq, "stop when the most frequent pair occurs fewer times"},
    {"out", 's', &out, "output directory (tokenizer.json, tokenizer_config.json)"},
    {"force", 'b', &force, "write into --out even when it holds other files"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0],
                       "--data FILE [--data FILE2 ...] --vocab-size N [--min-frequency F] --out DIR");
  if (r) return r > 0 ? 0 : 2;
  if (!data || !out || !vocab) {
    fprintf(stderr, "tunic train-tokenizer: --data, --vocab-size and --out are required\n");
    return 2;
  }
  static const char *const own[] = {"tokenizer.json", "tokenizer_config.json", NULL};
  tn_status os = tn_cli_out_dir("out", out, own, force);
  if (os != TN_OK) return tn_cli_fail("train-tokenizer", os);
  char **files;
  const int n_files = tn_cli_collect(argc, argv, "data", &files);
  if (n_files < 0) return tn_cli_fail("train-tokenizer", TN_ERR_NOMEM);
  tn_bpe_train_opts o = {.data = (const char *const *)files, .n_data = n_files, .vocab_size = vocab,
                         .min_frequency = min_freq, .out_dir = out};
  tn_bpe_train_stats st;
  const double t0 = tn_now();
  tn_status s = tn_bpe_train(&o, &st);
  const double t1 = tn_now();
  measure_ctx m = {0};
  tn_tokenizer *tok = NULL;
  if (s == TN_OK) s = tn_tokenizer_load(out, &tok);
  if (s == TN_OK) {
    m.tok = tok;
    s = tn_text_corpus_each(o.data, o.n_data, measure_text, &m);
  }
  const double t2 = tn_now();
  if (s == TN_OK) {
    printf("corpus: %zu texts, %zu bytes, %zu pieces (%zu distinct)\n", st.n_texts, st.n_bytes, st.n_pieces,
           st.n_words);
    printf("vocab: %d (%d learnt tokens, %d merges%s), min frequency %d -> %s\n", st.vocab_size,
           st.vocab_size - TN_BPE_FIRST_LEARNT, st.n_merges,
           st.vocab_size < vocab ? "; stopped early: no pair left at the minimum frequency" : "", min_freq, out);
    printf("compression: %zu tokens, %.3f bytes/token (the byte tokenizer: 1)\n", m.n_tokens,
           m.n_tokens ? (double)st.n_bytes / (double)m.n_tokens : 0.0);
    printf("time: train %.2f s, measure %.2f s\n", t1 - t0, t2 - t1);
  }
  tn_encoding_free(&m.enc);
  tn_tokenizer_free(tok);
  for (int i = 0; i < n_files; i++) free(files[i]);
  free(files);
  return s == TN_OK ? 0 : tn_cli_fail("train-tokenizer", s);
}
