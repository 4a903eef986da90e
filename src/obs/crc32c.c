/* crc32c.c - CRC32C (Castagnoli) for the TFRecord framing of TensorBoard event files.
 * SSE4.2's crc32 instruction when the CPU has it (checked once at run time), otherwise a
 * 256-entry table. Not for: the gzip / zlib CRC32 (different polynomial). */
#include "obs/obs.h"
#include <pthread.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define TN_CRC_X86 1
#endif

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static int crc_hw = 0;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    crc_table[i] = c;
  }
#ifdef TN_CRC_X86
  __builtin_cpu_init();
  crc_hw = __builtin_cpu_supports("sse4.2") && tn_isa_level() > TN_ISA_PORTABLE;
#endif
}

uint32_t tn_crc32c_sw(uint32_t crc, const void *data, size_t n) {
  pthread_once(&crc_once, crc_init);
  const uint8_t *p = data;
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

#ifdef TN_CRC_X86
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = ~crc;
  while (n && ((uintptr_t)p & 7)) { c = _mm_crc32_u8((uint32_t)c, *p++); n--; }
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
    p += 8;
    n -= 8;
  }
  while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
  return ~(uint32_t)c;
}
#endif

bool tn_crc32c_has_hw(void) {
  pthread_once(&crc_once, crc_init);
  return crc_hw != 0;
}

uint32_t tn_crc32c_hw(uint32_t crc, const void *data, size_t n) {
#ifdef TN_CRC_X86
  if (tn_crc32c_has_hw()) return crc_sse42(crc, data, n);
#endif
  return tn_crc32c_sw(crc, data, n);
}

uint32_t tn_crc32c(uint32_t crc, const void *data, size_t n) {
  return tn_crc32c_hw(crc, data, n);
}
