/* util.c - allocation, RNG, clock, float conversions, thread count. */
#include "base/base.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *tn_alloc(size_t bytes) {
  void *p = NULL;
  size_t n = (bytes + 63) & ~(size_t)63;
  if (n == 0) n = 64;
  if (posix_memalign(&p, 64, n) != 0) {
    tn_error(TN_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return NULL;
  }
  memset(p, 0, n);
  return p;
}
void tn_free(void *p) { free(p); }

char *tn_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
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

int tn_num_threads(void) { return omp_get_max_threads(); }
