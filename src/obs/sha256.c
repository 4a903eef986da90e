/* sha256.c - SHA-256 (FIPS 180-4) for the run manifest's dataset and config hashes.
 * Portable C, plus the x86 SHA extensions (sha256rnds2/msg1/msg2) when the CPU has them
 * (checked once with cpuid); streamed over files in 1 MiB reads.
 * Not for: passwords or anything secret. */
#include "obs/obs.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define TN_SHA_X86 1
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = hh + S1 + ch + K[i] + w[i];
    uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
    uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = S0 + mj;
    hh = g; g = f; f = e; e = d + t1;
    d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d;
  h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void tn_sha256_blocks_sw(uint32_t h[8], const uint8_t *p, size_t nblocks) {
  for (size_t i = 0; i < nblocks; i++) sha256_block(h, p + 64 * i);
}

#ifdef TN_SHA_X86
/* State kept as ABEF / CDGH halves as the instructions want; 4 rounds per message group,
 * W[t] for t >= 16 built with msg1 (sigma0 part), alignr (W[t-7]) and msg2 (sigma1 part). */
__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_blocks_ni(uint32_t h[8], const uint8_t *p, size_t nblocks) {
  const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_loadu_si128((const __m128i *)&h[0]);
  __m128i st1 = _mm_loadu_si128((const __m128i *)&h[4]);
  tmp = _mm_shuffle_epi32(tmp, 0xB1);       /* CDAB */
  st1 = _mm_shuffle_epi32(st1, 0x1B);       /* EFGH */
  __m128i st0 = _mm_alignr_epi8(tmp, st1, 8); /* ABEF */
  st1 = _mm_blend_epi16(st1, tmp, 0xF0);    /* CDGH */
  for (size_t b = 0; b < nblocks; b++, p += 64) {
    __m128i abef = st0, cdgh = st1, w[4];
    for (int g = 0; g < 16; g++) {
      if (g < 4) w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), MASK);
      else {
        __m128i t = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);                /* W[t-16] + s0(W[t-15]) */
        t = _mm_add_epi32(t, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4)); /* + W[t-7] */
        w[g & 3] = _mm_sha256msg2_epu32(t, w[(g + 3) & 3]);                        /* + s1(W[t-2]) */
      }
      __m128i m = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&K[4 * g]));
      st1 = _mm_sha256rnds2_epu32(st1, st0, m);
      m = _mm_shuffle_epi32(m, 0x0E);
      st0 = _mm_sha256rnds2_epu32(st0, st1, m);
    }
    st0 = _mm_add_epi32(st0, abef);
    st1 = _mm_add_epi32(st1, cdgh);
  }
  tmp = _mm_shuffle_epi32(st0, 0x1B);       /* FEBA */
  st1 = _mm_shuffle_epi32(st1, 0xB1);       /* DCHG */
  st0 = _mm_blend_epi16(tmp, st1, 0xF0);    /* DCBA */
  st1 = _mm_alignr_epi8(st1, tmp, 8);       /* HGFE */
  _mm_storeu_si128((__m128i *)&h[0], st0);
  _mm_storeu_si128((__m128i *)&h[4], st1);
}
#endif

static int sha_hw = 0;
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static void sha_detect(void) {
#ifdef TN_SHA_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  bool ssse3 = c & (1u << 9), sse41 = c & (1u << 19);
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
  sha_hw = ssse3 && sse41 && (b & (1u << 29)) && tn_isa_level() > TN_ISA_PORTABLE;
#endif
}
bool tn_sha256_has_hw(void) {
  pthread_once(&sha_once, sha_detect);
  return sha_hw != 0;
}

void tn_sha256_blocks_hw(uint32_t h[8], const uint8_t *p, size_t nblocks) {
#ifdef TN_SHA_X86
  if (tn_sha256_has_hw()) { sha256_blocks_ni(h, p, nblocks); return; }
#endif
  tn_sha256_blocks_sw(h, p, nblocks);
}

void tn_sha256_init(tn_sha256_ctx *c) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, iv, sizeof iv);
  c->bytes = 0;
  c->nbuf = 0;
}

void tn_sha256_update(tn_sha256_ctx *c, const void *data, size_t n) {
  const uint8_t *p = data;
  c->bytes += n;
  if (c->nbuf) {
    size_t k = 64 - c->nbuf < n ? 64 - c->nbuf : n;
    memcpy(c->buf + c->nbuf, p, k);
    c->nbuf += k; p += k; n -= k;
    if (c->nbuf < 64) return;
    tn_sha256_blocks_hw(c->h, c->buf, 1);
    c->nbuf = 0;
  }
  if (n >= 64) {
    tn_sha256_blocks_hw(c->h, p, n / 64);
    p += n / 64 * 64;
    n %= 64;
  }
  memcpy(c->buf, p, n);
  c->nbuf = n;
}

void tn_sha256_final(tn_sha256_ctx *c, uint8_t out[32]) {
  uint64_t bits = c->bytes * 8;
  c->buf[c->nbuf++] = 0x80;
  if (c->nbuf > 56) {
    memset(c->buf + c->nbuf, 0, 64 - c->nbuf);
    tn_sha256_blocks_hw(c->h, c->buf, 1);
    c->nbuf = 0;
  }
  memset(c->buf + c->nbuf, 0, 56 - c->nbuf);
  for (int i = 0; i < 8; i++) c->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  tn_sha256_blocks_hw(c->h, c->buf, 1);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(c->h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
    out[4 * i + 3] = (uint8_t)c->h[i];
  }
}

void tn_sha256(const void *data, size_t n, uint8_t out[32]) {
  tn_sha256_ctx c;
  tn_sha256_init(&c);
  tn_sha256_update(&c, data, n);
  tn_sha256_final(&c, out);
}

void tn_sha256_hex(const uint8_t dig[32], char hex[65]) {
  static const char *d = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = d[dig[i] >> 4];
    hex[2 * i + 1] = d[dig[i] & 15];
  }
  hex[64] = 0;
}

tn_status tn_sha256_file(const char *path, char hex[65], uint64_t *bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) return tn_error(TN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 20;
  uint8_t *buf = malloc(cap);
  if (!buf) { fclose(f); return tn_error(TN_ERR_NOMEM, "%s: out of memory hashing", path); }
  tn_sha256_ctx c;
  tn_sha256_init(&c);
  size_t k;
  while ((k = fread(buf, 1, cap, f)) > 0) tn_sha256_update(&c, buf, k);
  int err = ferror(f);
  fclose(f);
  free(buf);
  if (err) return tn_error(TN_ERR_IO, "%s: read error while hashing", path);
  uint8_t dig[32];
  if (bytes) *bytes = c.bytes;
  tn_sha256_final(&c, dig);
  tn_sha256_hex(dig, hex);
  return TN_OK;
}
