/* settings.c - the process-wide switches, in one place: read from the environment once (the
 * first time any is asked for), changed in-process by the setters (tests, benchmarks, the
 * CLI's flags), and reported whole for run manifests and `tunic version`. docs/env.md lists
 * every TN_* variable. The instruction-set level lives in isa.c (it needs cpuid) and is
 * reported here with the rest.
 * Not for: per-run options (those are the trainers' and commands' option structs). */
#include <stdlib.h>
#include <string.h>
#include "base/base.h"

static tn_settings g_set;
static int g_init; /* 0: not read, 1: read */

/* TN_NO_X: set to anything but "" or "0" turns the path off */
static bool env_on(const char *no_name) {
  const char *e = getenv(no_name);
  return !(e && *e && strcmp(e, "0"));
}

static void init(void) {
  if (__atomic_load_n(&g_init, __ATOMIC_ACQUIRE)) return;
  tn_settings s = {0};
  s.fused_decode = env_on("TN_NO_FUSED_DECODE");
  s.fused_prefill = env_on("TN_NO_FUSED_PREFILL");
  s.shared_prefix = env_on("TN_NO_SHARED_PREFIX");
  const char *h = getenv("TN_HEAD_CHUNK_ROWS");
  if (h && *h) {
    char *end;
    long v = strtol(h, &end, 10);
    if (*end || v <= 0 || v > (1L << 24)) tn_warn("TN_HEAD_CHUNK_ROWS=%s is not a row count in 1..2^24; ignored", h);
    else s.head_chunk_rows = (int)v;
  }
  g_set = s;
  __atomic_store_n(&g_init, 1, __ATOMIC_RELEASE);
}

const tn_settings *tn_settings_get(void) {
  init();
  return &g_set;
}

void tn_settings_set_fused_decode(bool on) { init(), g_set.fused_decode = on; }
void tn_settings_set_fused_prefill(bool on) { init(), g_set.fused_prefill = on; }
void tn_settings_set_shared_prefix(bool on) { init(), g_set.shared_prefix = on; }
void tn_settings_set_bf16_matmul(bool on) { init(), __atomic_store_n(&g_set.bf16_matmul, on, __ATOMIC_RELAXED); }
bool tn_settings_bf16_matmul(void) { init(); return __atomic_load_n(&g_set.bf16_matmul, __ATOMIC_RELAXED); }
void tn_settings_set_head_chunk_rows(int rows) { init(), g_set.head_chunk_rows = rows > 0 ? rows : 0; }

int tn_settings_format(char *buf, size_t n) {
  const tn_settings *s = tn_settings_get();
  return snprintf(buf, n,
                  "{\"isa\": \"%s\", \"isa_detected\": \"%s\", \"cpu\": \"%s\", \"fused_decode\": %s, "
                  "\"fused_prefill\": %s, \"shared_prefix\": %s, \"bf16_matmul\": %s, \"head_chunk_rows\": %d}",
                  tn_isa_name(tn_isa_level()), tn_isa_name(tn_isa_detected()), tn_cpu_model(),
                  s->fused_decode ? "true" : "false", s->fused_prefill ? "true" : "false",
                  s->shared_prefix ? "true" : "false", tn_settings_bf16_matmul() ? "true" : "false",
                  s->head_chunk_rows);
}
