/* cmd_version.c - `tunic version`: library version, git commit, threads. */
#include <stdio.h>
#include "base/base.h"
int tn_cmd_version(int argc, char **argv) {
  (void)argc; (void)argv;
  printf("tunic %s\nthreads %d\n", tn_version(), tn_num_threads());
  return 0;
}
