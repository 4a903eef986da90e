/* cmd_tokenize.c - `tunic tokenize --model DIR [--ids] [--no-special]`: text on stdin ->
 * tokens on stdout (one "id<TAB>token" per line, or the ids on one line with --ids).
 * A directory with only tokenizer.json (+ tokenizer_config.json) is enough. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "tunic/tokenizer.h"

static char *read_all(FILE *f, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap);
  if (!b) return NULL;
  size_t r;
  while ((r = fread(b + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *nb = realloc(b, cap *= 2);
      if (!nb) { free(b); return NULL; }
      b = nb;
    }
  }
  *len = n;
  return b;
}

/* Token string with control characters escaped so one token stays on one line. */
static void print_token(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n') fputs("\\n", stdout);
    else if (c == '\t') fputs("\\t", stdout);
    else if (c == '\r') fputs("\\r", stdout);
    else if (c == '\\') fputs("\\\\", stdout);
    else if (c < 0x20 || c == 0x7F) printf("\\x%02x", c);
    else putchar(c);
  }
}

int tn_cmd_tokenize(int argc, char **argv) {
  const char *model = NULL;
  bool ids = false, no_special = false;
  tn_flag flags[] = {
      {"model", 's', &model, "model directory (or tokenizer.json path)"},
      {"ids", 'b', &ids, "print only the ids, space-separated on one line"},
      {"no-special", 'b', &no_special, "do not add the post-processor's special tokens (e.g. BOS)"},
  };
  int r = tn_cli_parse(argc, argv, flags, 3, "--model DIR [--ids] [--no-special] < text");
  if (r) return r > 0 ? 0 : 2;
  if (!model) { fprintf(stderr, "tunic tokenize: --model is required\n"); return 2; }
  tn_tokenizer *tok;
  tn_status s = tn_tokenizer_load(model, &tok);
  if (s != TN_OK) return tn_cli_fail("tokenize", s);
  size_t len;
  char *text = read_all(stdin, &len);
  if (!text) { tn_tokenizer_free(tok); fprintf(stderr, "tunic tokenize: cannot read stdin\n"); return 1; }
  tn_encoding enc = {0};
  s = tn_tokenizer_encode(tok, text, len, !no_special, &enc);
  if (s == TN_OK) {
    for (size_t i = 0; i < enc.n; i++) {
      if (ids) {
        printf(i ? " %d" : "%d", enc.ids[i]);
      } else {
        size_t tl = 0;
        const char *t = tn_tokenizer_id_to_token(tok, enc.ids[i], &tl);
        printf("%d\t", enc.ids[i]);
        print_token(t ? t : "", tl);
        putchar('\n');
      }
    }
    if (ids) putchar('\n');
  }
  free(text);
  tn_encoding_free(&enc);
  tn_tokenizer_free(tok);
  return s == TN_OK ? 0 : tn_cli_fail("tokenize", s);
}
