/* base.h - internal helpers every folder may use: errors, logging, allocation,
 * files (mmap, atomic write), RNG, timing, JSON field access with good messages.
 * Not for: anything model- or tensor-specific. */
#ifndef TN_BASE_H
#define TN_BASE_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "tunic/base.h"

/* ---- errors: set a message (thread-local) and return the status ---- */
tn_status tn_error(tn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message: "context: old message". Returns s. */
tn_status tn_error_prefix(tn_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tn_error_clear(void);
#define TN_TRY(expr) do { tn_status _s = (expr); if (_s != TN_OK) return _s; } while (0)

/* ---- logging (stderr) ---- */
enum { TN_LOG_ERROR, TN_LOG_WARN, TN_LOG_INFO, TN_LOG_DEBUG };
void tn_log_set_level(int level);
void tn_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define tn_info(...) tn_log(TN_LOG_INFO, __VA_ARGS__)
#define tn_warn(...) tn_log(TN_LOG_WARN, __VA_ARGS__)

/* ---- allocation: 64-byte aligned, zeroed; NULL + error set on failure ---- */
void *tn_alloc(size_t bytes);
void tn_free(void *p);
char *tn_strdup(const char *s);
/* JSON text T (N bytes) holding a NUL character - a raw 0 byte or a \u0000 escape inside a
 * string - which a C string would silently cut there: its byte offset, else -1. Readers refuse
 * such lines with an error naming file and line. */
long tn_json_nul_offset(const char *t, size_t n);
/* Every allocation in src/ goes through these (malloc, calloc, realloc, strdup and
 * strndup are redirected to them below): they return NULL with an error set on
 * failure, and the caller must check. Memory from them is released with free(). */
void *tn_malloc(size_t bytes);
void *tn_calloc(size_t n, size_t size);
void *tn_realloc(void *p, size_t bytes);
char *tn_strndup(const char *s, size_t n);
/* Allocation-failure testing (SQLite's approach, tests/test_allocfail.c): after
 * tn_alloc_fail_at(n), the n-th allocation from now fails (n >= 1), and every later
 * one too when `persist`; n <= 0 turns injection off. cJSON allocates through these
 * wrappers too (hooks installed at load time). tn_alloc_count(): allocations made through
 * the wrappers since the last tn_alloc_fail_at call; tn_alloc_failed(): how many
 * were failed on purpose. */
void tn_alloc_fail_at(long n, bool persist);
/* Allocations that returned NULL since the process started (real or injected). cJSON's
 * Add/Create functions drop an item silently when out of memory: code that builds a JSON
 * document compares this count before and after and reports TN_ERR_NOMEM. */
long tn_alloc_failures(void);
long tn_alloc_count(void);
long tn_alloc_failed(void);
void tn_alloc_injected(long k); /* called at each injected failure (a breakpoint for gdb) */
#ifndef TN_ALLOC_IMPL
#include <stdlib.h>
#include <string.h>
#define malloc(n) tn_malloc(n)
#define calloc(n, s) tn_calloc(n, s)
#define realloc(p, n) tn_realloc(p, n)
#define strdup(s) tn_strdup(s)
#define strndup(s, n) tn_strndup(s, n)
#endif

/* ---- files ---- */
typedef struct {
  void *data;   /* mapped bytes (read-only) */
  size_t size;
  char *path;
} tn_mmap;
tn_status tn_mmap_open(tn_mmap *m, const char *path);
void tn_mmap_close(tn_mmap *m);
/* Whole file into a NUL-terminated buffer (caller frees with free()). */
tn_status tn_read_file(const char *path, char **out, size_t *len);
/* Write to PATH.tmp.PID, fsync, rename over PATH, fsync the directory. */
tn_status tn_write_file_atomic(const char *path, const void *data, size_t len);
/* Atomic write through a callback that fills a FILE*. */
tn_status tn_write_atomic_cb(const char *path, tn_status (*fill)(FILE *f, void *ctx), void *ctx);
tn_status tn_mkdirs(const char *path);
/* Copy a file (atomically at dst). */
tn_status tn_copy_file(const char *src, const char *dst);
bool tn_file_exists(const char *path);
/* fsync a file or a directory by path (an error names it). */
tn_status tn_fsync_path(const char *path);

/* ---- injected I/O faults, for the fault tests (docs/testing.md) ----
 * Environment TN_FAULT=OP:N:ERR (OP write | fsync | rename, ERR ENOSPC | EIO) makes the
 * N-th such operation inside a checkpoint save (counted over the process) fail with that
 * errno; TN_FAULT=trace prints every counted operation on stderr ("tunic fault point: OP
 * N PATH"). A write fault hits a file after its contents went to the stdio buffer (as a
 * full disk at fflush). Unset: one getenv, nothing else. */
typedef enum { TN_IO_WRITE, TN_IO_FSYNC, TN_IO_RENAME } tn_io_op;
/* 0, or the errno this operation on path is to fail with. */
int tn_io_fault(tn_io_op op, const char *path);
/* Count the operations between tn_io_fault_scope(true) and (false) (a checkpoint save). */
void tn_io_fault_scope(bool on);
/* dir + "/" + name into a new string (caller frees); NULL (error set) when out of memory. */
char *tn_path_join(const char *dir, const char *name);

/* ---- RNG: xoshiro256** seeded by splitmix64; state is 4 words, copyable ---- */
typedef struct { uint64_t s[4]; } tn_rng;
void tn_rng_seed(tn_rng *r, uint64_t seed);
uint64_t tn_rng_u64(tn_rng *r);
float tn_rng_uniform(tn_rng *r);  /* [0, 1) */
float tn_rng_normal(tn_rng *r);   /* N(0, 1), Box-Muller */

/* ---- time ---- */
double tn_now(void); /* seconds, monotonic */

/* ---- small numeric helpers ---- */
float tn_bf16_to_f32(uint16_t h);
uint16_t tn_f32_to_bf16(float f);  /* round to nearest even */
float tn_f16_to_f32(uint16_t h);
uint16_t tn_f32_to_f16(float f);

/* ---- instruction-set level of the kernels (isa.c) ----
 * Detected once: the best the CPU and OS allow. In use: that, or lower when TN_ISA=amx|
 * avx512bf16|avx512|avx2|portable is set (or TN_NO_AMX / TN_NO_AVX512BF16), or after
 * tn_isa_set. Every dispatching kernel obeys tn_isa_level(). Levels are ordered: each
 * includes the ones below (avx512 = F+BW+VL+DQ; avx2 includes FMA). */
typedef enum { TN_ISA_PORTABLE = 0, TN_ISA_AVX2 = 1, TN_ISA_AVX512 = 2, TN_ISA_AVX512BF16 = 3, TN_ISA_AMX = 4 } tn_isa;
tn_isa tn_isa_detected(void);
tn_isa tn_isa_level(void);
tn_isa tn_isa_set(tn_isa isa); /* clamped to the detected level; returns the level now in use */
const char *tn_isa_name(tn_isa isa);
bool tn_isa_parse(const char *s, tn_isa *out);
const char *tn_cpu_model(void);

/* ---- process-wide switches (settings.c; docs/env.md) ----
 * Read from the environment once, changed by the setters; tn_settings_format writes them (and
 * the ISA level and CPU) as one JSON object for manifests. */
typedef struct {
  bool fused_decode;     /* decoding (<= 8 rows) in one parallel region (TN_NO_FUSED_DECODE) */
  bool fused_prefill;    /* prefill (> 8 rows) in one parallel region on our GEMMs (TN_NO_FUSED_PREFILL) */
  bool shared_prefix;    /* GRPO/DPO share a prompt's rows between its sequences (TN_NO_SHARED_PREFIX) */
  bool bf16_matmul;      /* bf16 operands, f32 accumulation in the big f32 matmuls (--precision bf16) */
  int head_chunk_rows;   /* rows per chunk of the training LM head; 0 = by the vocabulary (TN_HEAD_CHUNK_ROWS) */
} tn_settings;
const tn_settings *tn_settings_get(void);
void tn_settings_set_fused_decode(bool on);
void tn_settings_set_fused_prefill(bool on);
void tn_settings_set_shared_prefix(bool on);
void tn_settings_set_bf16_matmul(bool on);
bool tn_settings_bf16_matmul(void); /* atomic read: asked from kernels */
void tn_settings_set_head_chunk_rows(int rows);
/* the settings as a JSON object into buf (snprintf's return) */
int tn_settings_format(char *buf, size_t n);
/* ---- text ---- */
/* Offset of the first byte of s[0..n) that is not part of well-formed UTF-8 (overlong
 * forms, surrogates and code points above U+10FFFF are not), or SIZE_MAX when all is. */
size_t tn_utf8_invalid_at(const char *s, size_t n);

/* ---- threads ---- */
int tn_num_threads(void);

#endif
