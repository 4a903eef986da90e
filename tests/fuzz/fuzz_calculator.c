/* fuzz_calculator.c - libFuzzer harness: the calculator tool's parser and exact arithmetic
 * (src/agent/calc.c, tn_calc_eval) on any text, with a 300-digit limit. It either succeeds
 * with a result and no error, or fails with a non-empty error and no result; a result read
 * back as an expression gives itself (integers and decimals print exactly; a rounded quotient
 * prints a terminating decimal). Not for: the toolset or the python sandbox. */
#include "fuzz_common.h"
#include "agent/tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *e = fz_str(data, size);
  char *out = NULL, *err = NULL;
  bool ok = tn_calc_eval(e, 300, &out, &err);
  if (ok) {
    if (!out || err || !*out) abort();
    char *o2 = NULL, *e2 = NULL;
    if (!tn_calc_eval(out, 100000, &o2, &e2) || strcmp(o2, out) != 0) {
      fprintf(stderr, "'%s' -> '%s' -> '%s' (%s)\n", e, out, o2 ? o2 : "", e2 ? e2 : "");
      abort();
    }
    free(o2);
    free(e2);
  } else if (out || !err || !*err) {
    abort();
  }
  free(out);
  free(err);
  free(e);
  return 0;
}
