/* fuzz_common.h - helpers shared by the libFuzzer harnesses of tests/fuzz: a private
 * temporary directory for the files a parser reads by path, splitting one input into
 * several files, the byte tokenizer, and the rule every harness enforces: a parser
 * that refuses its input must say why (an empty error message aborts = a finding).
 * Not for: anything outside the fuzz build (it is included by the harnesses only). */
#ifndef TN_FUZZ_COMMON_H
#define TN_FUZZ_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/base.h"
#include "tunic/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_root[256];
static void fz_cleanup(void) {
  if (!fz_root[0]) return;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_root);
  if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fz_root);
}
/* A private directory (under /dev/shm when it exists), removed at exit. */
static const char *fz_dir(void) {
  if (fz_root[0]) return fz_root;
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  snprintf(fz_root, sizeof fz_root, "%s/tunic-fuzz-XXXXXX", base);
  if (!mkdtemp(fz_root)) { perror("fuzz: mkdtemp"); abort(); }
  atexit(fz_cleanup);
  tn_log_set_level(-1); /* parsers' warnings would flood the fuzzer's output */
  return fz_root;
}
/* DIR/NAME (DIR NULL: the private directory) <- n bytes; returns the path (static buffer
 * per slot: slot 0..3). n == (size_t)-1: remove the file instead. */
static const char *fz_write(const char *dir, const char *name, const void *d, size_t n, int slot) {
  static char paths[4][512];
  char *p = paths[slot & 3];
  snprintf(p, 512, "%s/%s", dir ? dir : fz_dir(), name);
  if (n == (size_t)-1) { unlink(p); return p; }
  FILE *f = fopen(p, "wb");
  if (!f || (n && fwrite(d, 1, n, f) != n) || fclose(f) != 0) { perror(p); abort(); }
  return p;
}
/* A sub-directory of the private directory. */
static const char *fz_subdir(const char *name) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", fz_dir(), name);
  if (tn_mkdirs(p) != TN_OK) { fprintf(stderr, "fuzz: %s\n", tn_last_error()); abort(); }
  return p;
}
/* Split data at NUL bytes into at most `max` parts; returns the count. Part i is
 * [part[i], part[i] + len[i]); parts after the last separator absent -> count smaller. */
static int fz_split(const uint8_t *data, size_t size, int max, const uint8_t **part, size_t *len) {
  int k = 0;
  const uint8_t *p = data, *end = data + size;
  while (k < max) {
    const uint8_t *z = k == max - 1 ? NULL : memchr(p, 0, end - p);
    part[k] = p;
    len[k] = (z ? z : end) - p;
    k++;
    if (!z) break;
    p = z + 1;
  }
  return k;
}
/* A NUL-terminated copy (free it). */
static char *fz_str(const uint8_t *d, size_t n) {
  char *s = malloc(n + 1);
  if (!s) abort();
  memcpy(s, d, n);
  s[n] = 0;
  return s;
}
/* Every refusal carries a message. Call tn_error_clear() before the parser. */
static void fz_check(tn_status s, const char *what) {
  if (s != TN_OK && !tn_last_error()[0]) {
    fprintf(stderr, "fuzz: %s failed (%s) without an error message\n", what, tn_status_name(s));
    abort();
  }
}
/* The byte-level tokenizer (tunic init --tokenizer bytes), loaded once. */
static const tn_tokenizer *fz_byte_tokenizer(void) {
  static tn_tokenizer *tok;
  if (tok) return tok;
  const char *d = fz_subdir("bytetok");
  if (tn_write_byte_tokenizer(d) != TN_OK || tn_tokenizer_load(d, &tok) != TN_OK) {
    fprintf(stderr, "fuzz: byte tokenizer: %s\n", tn_last_error());
    abort();
  }
  return tok;
}
#endif
