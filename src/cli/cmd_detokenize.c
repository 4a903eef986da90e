/* cmd_detokenize.c - `tunic detokenize --model DIR [--skip-special]`: token ids on stdin
 * (separated by spaces, commas or newlines) -> decoded text on stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "tunic/tokenizer.h"

int tn_cmd_detokenize(int argc, char **argv) {
  const char *model = NULL;
  bool skip = false;
  tn_flag flags[] = {
      {"model", 's', &model, "model directory (or tokenizer.json path)"},
      {"skip-special", 'b', &skip, "drop special tokens (BOS, end-of-turn, ...)"},
  };
  int r = tn_cli_parse(argc, argv, flags, 2, "--model DIR [--skip-special] < ids");
  if (r) return r > 0 ? 0 : 2;
  if (!model) { fprintf(stderr, "tunic detokenize: --model is required\n"); return 2; }
  tn_tokenizer *tok;
  tn_status s = tn_tokenizer_load(model, &tok);
  if (s != TN_OK) return tn_cli_fail("detokenize", s);
  size_t n = 0, cap = 1024;
  int32_t *ids = malloc(cap * sizeof *ids);
  int c, have = 0;
  long v = 0;
  int rc = 0;
  if (!ids) { fprintf(stderr, "tunic detokenize: out of memory\n"); rc = 1; }
  while (ids && (c = getchar()) != EOF) {
    if (c >= '0' && c <= '9') {
      v = v * 10 + (c - '0');
      have = 1;
      if (v > INT32_MAX) { fprintf(stderr, "tunic detokenize: id too large\n"); rc = 2; break; }
    } else if (c == ' ' || c == ',' || c == '\n' || c == '\t' || c == '\r' || c == '[' || c == ']') {
      if (have) {
        if (n == cap) {
          int32_t *ni = realloc(ids, cap * 2 * sizeof *ids);
          if (!ni) { fprintf(stderr, "tunic detokenize: out of memory for %zu ids\n", cap * 2); rc = 1; break; }
          ids = ni;
          cap *= 2;
        }
        ids[n++] = (int32_t)v;
      }
      v = 0;
      have = 0;
    } else {
      fprintf(stderr, "tunic detokenize: unexpected character '%c' in the id list\n", c);
      rc = 2;
      break;
    }
  }
  if (!rc && have) {
    int32_t *ni = n == cap ? realloc(ids, (cap + 1) * sizeof *ids) : ids;
    if (ni) {
      ids = ni;
      ids[n++] = (int32_t)v;
    } else {
      fprintf(stderr, "tunic detokenize: out of memory for %zu ids\n", cap + 1);
      rc = 1;
    }
  }
  if (!rc) {
    char *text = NULL;
    size_t len = 0;
    s = tn_tokenizer_decode(tok, ids, n, skip, &text, &len);
    if (s == TN_OK) fwrite(text, 1, len, stdout);
    else rc = tn_cli_fail("detokenize", s);
    free(text);
  }
  free(ids);
  tn_tokenizer_free(tok);
  return rc;
}
