/* isa.c - the instruction-set level the kernels may use, one setting for the whole
 * process: the best the CPU (and the OS) allows, lowered by TN_ISA=amx|avx512bf16|avx512|
 * avx2|portable in the environment or by tn_isa_set (tests, benchmarks). Every dispatching
 * kernel asks tn_isa_level(); none reads cpuid itself. Also the CPU's model name for
 * `tunic version`, manifests and benchmark headers.
 * Not for: choosing between algorithms (that is each kernel's business), OpenBLAS's own
 * kernel choice (OPENBLAS_CORETYPE sets that; its per-CPU differences are in docs/testing.md). */
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "base/base.h"

static const char *const isa_names[] = {"portable", "avx2", "avx512", "avx512bf16", "amx"};

const char *tn_isa_name(tn_isa isa) {
  return isa >= TN_ISA_PORTABLE && isa <= TN_ISA_AMX ? isa_names[isa] : "?";
}

bool tn_isa_parse(const char *s, tn_isa *out) {
  for (int i = 0; i <= TN_ISA_AMX; i++)
    if (s && !strcmp(s, isa_names[i])) {
      *out = (tn_isa)i;
      return true;
    }
  return false;
}

/* AMX: cpuid leaf 7 EDX bits 22 (AMX-BF16) and 24 (AMX-TILE), and the kernel's permission to
 * use the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) */
static bool amx_usable(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return false;
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

static tn_isa detect(void) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return TN_ISA_PORTABLE;
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
    return TN_ISA_AVX2;
  if (!__builtin_cpu_supports("avx512bf16")) return TN_ISA_AVX512;
  return amx_usable() ? TN_ISA_AMX : TN_ISA_AVX512BF16;
}

static int g_hw = -1, g_level = -1;

tn_isa tn_isa_detected(void) {
  int v = __atomic_load_n(&g_hw, __ATOMIC_ACQUIRE);
  if (v < 0) {
    v = (int)detect();
    __atomic_store_n(&g_hw, v, __ATOMIC_RELEASE);
  }
  return (tn_isa)v;
}

/* the level TN_ISA asks for (the detected one when unset); a name we do not know is reported
 * once and ignored, a level above the CPU's is clamped with a warning */
static tn_isa from_env(void) {
  const tn_isa hw = tn_isa_detected();
  const char *e = getenv("TN_ISA");
  tn_isa want = hw;
  if (e && *e && !tn_isa_parse(e, &want)) {
    tn_warn("TN_ISA=%s is not one of amx, avx512bf16, avx512, avx2, portable; using %s", e, tn_isa_name(hw));
    want = hw;
  }
  /* the older switches, still honoured: TN_NO_AVX512BF16 (portable quantized kernels), TN_NO_AMX */
  const char *nb = getenv("TN_NO_AVX512BF16"), *na = getenv("TN_NO_AMX");
  if (nb && *nb && strcmp(nb, "0") && want > TN_ISA_PORTABLE) want = TN_ISA_PORTABLE;
  if (na && *na && strcmp(na, "0") && want > TN_ISA_AVX512BF16) want = TN_ISA_AVX512BF16;
  if (want > hw) {
    tn_warn("TN_ISA=%s: this CPU supports up to %s; using %s", e, tn_isa_name(hw), tn_isa_name(hw));
    want = hw;
  }
  return want;
}

tn_isa tn_isa_level(void) {
  int v = __atomic_load_n(&g_level, __ATOMIC_RELAXED);
  if (v < 0) {
    v = (int)from_env();
    __atomic_store_n(&g_level, v, __ATOMIC_RELAXED);
  }
  return (tn_isa)v;
}

tn_isa tn_isa_set(tn_isa isa) {
  const tn_isa hw = tn_isa_detected();
  const tn_isa v = isa < TN_ISA_PORTABLE ? TN_ISA_PORTABLE : isa > hw ? hw : isa;
  __atomic_store_n(&g_level, (int)v, __ATOMIC_RELAXED);
  return v;
}

/* "AMD EPYC 9R45 ..." from cpuid's brand string (leaves 0x80000002-4), trimmed */
const char *tn_cpu_model(void) {
  static char model[49];
  static int done;
  if (__atomic_load_n(&done, __ATOMIC_ACQUIRE)) return model;
  unsigned r[12] = {0}, a, b, c, d;
  char buf[49] = "unknown CPU";
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    memcpy(buf, r, 48);
    buf[48] = 0;
  }
  const char *s = buf;
  while (*s == ' ') s++;
  snprintf(model, sizeof model, "%s", s);
  for (size_t n = strlen(model); n > 0 && model[n - 1] == ' '; n--) model[n - 1] = 0;
  __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
  return model;
}
