/* util.c - allocation, RNG, clock, float conversions, thread count. */
#define TN_ALLOC_IMPL /* the wrappers below call the real allocator */
#include "base/base.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Fault injection: tn_alloc_fail_at(n) makes the n-th allocation fail. A relaxed
 * atomic counter costs nothing next to malloc itself. */
static long fail_at;       /* 0 = off */
static bool fail_persist;
static long alloc_count, alloc_failed, nomem_total;

/* cJSON allocates through the wrappers too (installed when the library is loaded), so its
 * failures are counted by tn_alloc_failures and can be injected. */
static void *cjson_malloc(size_t n) { return tn_malloc(n); }
static void cjson_free(void *p) { free(p); }
__attribute__((constructor)) static void tn_cjson_hooks(void) {
  cJSON_Hooks h = {cjson_malloc, cjson_free};
  cJSON_InitHooks(&h);
}
long tn_alloc_failures(void) { return __atomic_load_n(&nomem_total, __ATOMIC_RELAXED); }

void tn_alloc_fail_at(long n, bool persist) {
  __atomic_store_n(&alloc_count, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&alloc_failed, 0, __ATOMIC_SEQ_CST);
  fail_persist = persist;
  __atomic_store_n(&fail_at, n > 0 ? n : 0, __ATOMIC_SEQ_CST);
}
long tn_alloc_count(void) { return __atomic_load_n(&alloc_count, __ATOMIC_RELAXED); }
long tn_alloc_failed(void) { return __atomic_load_n(&alloc_failed, __ATOMIC_RELAXED); }

/* Called for each injected failure: a place for a debugger's breakpoint. */
__attribute__((noinline)) void tn_alloc_injected(long k) { __asm__ volatile("" ::"r"(k)); }

/* true when this allocation must fail (injected) */
static bool inject_failure(void) {
  long at = __atomic_load_n(&fail_at, __ATOMIC_RELAXED);
  if (at == 0) return false;
  long k = __atomic_add_fetch(&alloc_count, 1, __ATOMIC_RELAXED);
  if (k == at || (fail_persist && k > at)) {
    __atomic_add_fetch(&alloc_failed, 1, __ATOMIC_RELAXED);
    tn_alloc_injected(k);
    return true;
  }
  return false;
}

static void *nomem(size_t bytes) {
  __atomic_add_fetch(&nomem_total, 1, __ATOMIC_RELAXED);
  tn_error(TN_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
  return NULL;
}

void *tn_malloc(size_t bytes) {
  void *p = inject_failure() ? NULL : malloc(bytes ? bytes : 1);
  return p ? p : nomem(bytes);
}
void *tn_calloc(size_t n, size_t size) {
  void *p = inject_failure() ? NULL : calloc(n ? n : 1, size ? size : 1);
  return p ? p : nomem(n * size);
}
void *tn_realloc(void *old, size_t bytes) {
  void *p = inject_failure() ? NULL : realloc(old, bytes ? bytes : 1);
  return p ? p : nomem(bytes);
}
char *tn_strndup(const char *s, size_t n) {
  size_t len = strnlen(s, n);
  char *d = tn_malloc(len + 1);
  if (d) { memcpy(d, s, len); d[len] = 0; }
  return d;
}

void *tn_alloc(size_t bytes) {
  void *p = NULL;
  size_t n = (bytes + 63) & ~(size_t)63;
  if (n == 0) n = 64;
  if (n < bytes || inject_failure() || posix_memalign(&p, 64, n) != 0) return nomem(bytes);
  memset(p, 0, n);
  return p;
}
void tn_free(void *p) { free(p); }

char *tn_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = tn_malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

long tn_json_nul_offset(const char *t, size_t n) {
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    if (!t[i]) return (long)i;
    if (t[i] == '"') in_str = !in_str;
    else if (in_str && t[i] == '\\') {
      if (i + 5 < n && t[i + 1] == 'u' && !memcmp(t + i + 2, "0000", 4)) return (long)i;
      i++; /* the escaped character (\" does not end the string) */
    }
  }
  return -1;
}

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
void tn_rng_seed(tn_rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t tn_rng_u64(tn_rng *r) {
  uint64_t *s = r->s;
  uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
  return res;
}
float tn_rng_uniform(tn_rng *r) { return (float)(tn_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }
float tn_rng_normal(tn_rng *r) {
  double u1 = ((tn_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
  double u2 = (tn_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

double tn_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

float tn_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
uint16_t tn_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fff + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}
float tn_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) u = sign;
    else { /* subnormal */
      float f = ldexpf((float)man, -24);
      memcpy(&u, &f, 4);
      u |= sign;
    }
  } else if (exp == 31) u = sign | 0x7f800000 | (man << 13);
  else u = sign | ((exp + 112) << 23) | (man << 13);
  float f;
  memcpy(&f, &u, 4);
  return f;
}
uint16_t tn_f32_to_f16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint16_t sign = (u >> 16) & 0x8000;
  float a = fabsf(f);
  if (isnan(f)) return sign | 0x7e00;
  if (a >= 65520.0f) return sign | 0x7c00;
  if (a < 6.103515625e-05f) { /* subnormal: round to nearest multiple of 2^-24 */
    return sign | (uint16_t)lrintf(a * 16777216.0f);
  }
  uint32_t e = ((u >> 23) & 0xff) - 112, m = u & 0x7fffff;
  uint32_t h = (e << 10) | (m >> 13);
  uint32_t rem = m & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return sign | (uint16_t)h;
}

size_t tn_utf8_invalid_at(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  for (size_t i = 0; i < n;) {
    const unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t k;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) k = 1;
    else if (c >= 0xE0 && c <= 0xEF) { k = 2; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 3; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return i;
    if (i + k >= n) return i; /* truncated sequence */
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t j = 2; j <= k; j++)
      if ((s[i + j] & 0xC0) != 0x80) return i;
    i += k + 1;
  }
  return SIZE_MAX;
}

int tn_num_threads(void) { return omp_get_max_threads(); }
