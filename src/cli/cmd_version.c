/* cmd_version.c - `tunic version`: library version, git commit, threads, the CPU and the
 * instruction-set level detected and in use (TN_ISA). `--isa-supported LEVEL` exits 0 when
 * this CPU can run the kernels of LEVEL and 1 when not (the tests use it to skip a level). */
#include <stdio.h>
#include <string.h>
#include "base/base.h"
int tn_cmd_version(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "--help")) {
    printf("usage: tunic version [--isa-supported amx|avx512bf16|avx512|avx2|portable]\n");
    return 0;
  }
  if (argc >= 2 && !strcmp(argv[1], "--isa-supported")) {
    tn_isa want;
    if (argc < 3 || !tn_isa_parse(argv[2], &want)) {
      fprintf(stderr, "tunic version: --isa-supported needs one of amx, avx512bf16, avx512, avx2, portable\n");
      return 2;
    }
    return want <= tn_isa_detected() ? 0 : 1;
  }
  if (argc >= 2) {
    fprintf(stderr, "tunic version: unknown option '%s' (see --help)\n", argv[1]);
    return 2;
  }
  printf("tunic %s\nthreads %d\ncpu %s\nisa detected %s\nisa in use %s\n", tn_version(), tn_num_threads(),
         tn_cpu_model(), tn_isa_name(tn_isa_detected()), tn_isa_name(tn_isa_level()));
  char set[512];
  tn_settings_format(set, sizeof set);
  printf("settings %s\n", set);
  return 0;
}
