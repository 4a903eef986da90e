/* test_alloc_utf8.c - the issue-12 helpers of src/base: the fault-injecting allocation
 * wrappers (tn_alloc_fail_at: exactly the n-th allocation fails, or every one from it with
 * persist; counters; cJSON allocates through them) and the UTF-8 validator the JSONL reader
 * uses (tn_utf8_invalid_at), against Python's strict UTF-8 decoder on hand-picked and random
 * byte strings. Not for: the allocation-failure sweep itself (tests/allocfail.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/base.h"

static void test_fail_at(void **state) {
  (void)state;
  tn_alloc_fail_at(3, false);
  void *a = malloc(8), *b = calloc(2, 4), *c = malloc(8), *d = tn_strdup("x");
  assert_non_null(a);
  assert_non_null(b);
  assert_null(c); /* the 3rd */
  assert_non_null(d);
  assert_int_equal(tn_alloc_count(), 4);
  assert_int_equal(tn_alloc_failed(), 1);
  free(a), free(b), free(d);
  const long f0 = tn_alloc_failures();
  tn_alloc_fail_at(2, true); /* 2nd and every later one */
  a = tn_alloc(64);
  b = realloc(NULL, 16);
  c = tn_strndup("abc", 2);
  cJSON *j = cJSON_CreateObject(); /* cJSON goes through the wrappers too */
  assert_non_null(a);
  assert_null(b);
  assert_null(c);
  assert_null(j);
  assert_int_equal(tn_alloc_failed(), 3);
  assert_int_equal(tn_alloc_failures() - f0, 3);
  tn_free(a);
  tn_alloc_fail_at(0, false); /* off: nothing fails, nothing is counted */
  c = tn_strndup("abc", 2);
  assert_string_equal(c, "ab");
  free(c);
  assert_int_equal(tn_alloc_count(), 0);
  assert_non_null(j = cJSON_CreateObject());
  cJSON_Delete(j);

}

static void test_utf8_vectors(void **state) {
  (void)state;
  static const struct { const char *s; size_t n, bad; } v[] = {
      {"plain ascii", 11, SIZE_MAX},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, SIZE_MAX}, /* 2-, 3-, 4-byte forms */
      {"a\xc0\xaf", 3, 1},             /* overlong '/' */
      {"ab\xe0\x80\xaf", 5, 2},        /* overlong 3-byte */
      {"\xed\xa0\x80", 3, 0},          /* surrogate U+D800 */
      {"x\xf4\x90\x80\x80", 5, 1},     /* U+110000 */
      {"\xf8\x88\x80\x80\x80", 5, 0},  /* 5-byte form */
      {"ok\xe2\x82", 4, 2},            /* truncated at the end */
      {"\xe2\x28\xa1", 3, 0},          /* bad continuation */
      {"\x80", 1, 0},                  /* lone continuation */
      {"\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7, SIZE_MAX}, /* U+FFFF, U+10FFFF */
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t got = tn_utf8_invalid_at(v[i].s, v[i].n);
    if (got != v[i].bad) fail_msg("vector %zu: got %zu, want %zu", i, got, v[i].bad);
  }
}

/* Random strings over a byte alphabet rich in UTF-8 lead/continuation bytes, checked against
 * Python's decoder (UnicodeDecodeError.start; -1 when it decodes). */
static void test_utf8_python(void **state) {
  (void)state;
  enum { N = 3000, L = 12 };
  static const unsigned char alpha[] = {'a', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf,
                                        0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff};
  static const unsigned char cont[] = {0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf};
  unsigned char (*s)[L] = malloc(sizeof(unsigned char[L]) * N);
  int len[N];
  assert_non_null(s);
  tn_rng r;
  tn_rng_seed(&r, 12);
  char path[] = "/tmp/tn_utf8_XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < N; i++) {
    len[i] = 1 + (int)(tn_rng_u64(&r) % L);
    for (int k = 0; k < len[i]; k++) { /* after a lead byte, mostly continuation bytes: valid strings occur */
      const bool after_lead = k > 0 && s[i][k - 1] >= 0xc0 && tn_rng_u64(&r) % 4;
      s[i][k] = after_lead ? cont[tn_rng_u64(&r) % sizeof cont] : alpha[tn_rng_u64(&r) % sizeof alpha];
      fprintf(f, "%02x", s[i][k]);
    }
    fputc('\n', f);
  }
  fclose(f);
  char cmd[256];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c \"import sys\n"
           "for l in open('%s'):\n"
           " b=bytes.fromhex(l.strip())\n"
           " try: b.decode('utf-8'); print(-1)\n"
           " except UnicodeDecodeError as e: print(e.start)\"", path);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  int checked = 0, invalid = 0;
  for (int i = 0; i < N; i++) {
    long want;
    if (fscanf(p, "%ld", &want) != 1) break;
    size_t got = tn_utf8_invalid_at((const char *)s[i], (size_t)len[i]);
    long g = got == SIZE_MAX ? -1 : (long)got;
    if (g != want) fail_msg("string %d: got %ld, Python %ld", i, g, want);
    checked++;
    invalid += want >= 0;
  }
  pclose(p);
  unlink(path);
  free(s);
  assert_int_equal(checked, N);
  assert_true(invalid > 100 && invalid < N); /* both outcomes exercised */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fail_at),
      cmocka_unit_test(test_utf8_vectors),
      cmocka_unit_test(test_utf8_python),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
