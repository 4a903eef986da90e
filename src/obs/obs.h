/* obs.h - internals of the observability layer shared between its files and with tests:
 * CRC32C (TFRecord framing), SHA-256 (manifest hashes), and JSON number formatting.
 * Not for: the public API (include/tunic/obs.h). */
#ifndef TN_OBS_INTERNAL_H
#define TN_OBS_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/base.h"
#include "tunic/obs.h"

/* ---- CRC32C (Castagnoli, reflected poly 0x82F63B78), crc starts at 0 ----
 * tn_crc32c picks SSE4.2 at run time when the CPU has it, else the table code. */
uint32_t tn_crc32c(uint32_t crc, const void *data, size_t n);
uint32_t tn_crc32c_sw(uint32_t crc, const void *data, size_t n);
/* The SSE4.2 path; returns tn_crc32c_sw's answer on CPUs without SSE4.2. */
uint32_t tn_crc32c_hw(uint32_t crc, const void *data, size_t n);
bool tn_crc32c_has_hw(void);
/* TFRecord's mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8 */
static inline uint32_t tn_crc32c_mask(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

/* ---- SHA-256 (FIPS 180-4) ---- */
typedef struct {
  uint32_t h[8];
  uint64_t bytes;
  uint8_t buf[64];
  size_t nbuf;
} tn_sha256_ctx;
void tn_sha256_init(tn_sha256_ctx *c);
/* The compression function over NBLOCKS 64-byte blocks: portable, and the x86 SHA-extensions
 * path (falls back to portable on CPUs without them). tn_sha256_update uses the latter. */
void tn_sha256_blocks_sw(uint32_t h[8], const uint8_t *p, size_t nblocks);
void tn_sha256_blocks_hw(uint32_t h[8], const uint8_t *p, size_t nblocks);
bool tn_sha256_has_hw(void);
void tn_sha256_update(tn_sha256_ctx *c, const void *data, size_t n);
void tn_sha256_final(tn_sha256_ctx *c, uint8_t out[32]);
void tn_sha256(const void *data, size_t n, uint8_t out[32]);
void tn_sha256_hex(const uint8_t dig[32], char hex[65]);
/* Hash a whole file (streamed). BYTES may be NULL. */
tn_status tn_sha256_file(const char *path, char hex[65], uint64_t *bytes);

/* ---- JSON ---- */
/* Shortest "%.Ng" that reads back to the same double; integers as integers; NaN/Inf -> "null".
 * BUF needs 32 bytes. Returns BUF. */
char *tn_json_number(char *buf, double v);
/* Append S as a JSON string literal (quotes included) to F. */
void tn_json_write_string(FILE *f, const char *s);
/* J printed (FORMATTED: indented) as valid UTF-8: strings from input files or argv may hold
 * ill-formed UTF-8, replaced by U+FFFD (tn_utf8_valid_dup). malloc'd; NULL when out of memory. */
struct cJSON;
char *tn_json_print_valid(const struct cJSON *j, bool formatted);

#endif
