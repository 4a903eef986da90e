/* bench_dist.c - the all-reduce under tunic's data-parallel training: seconds per fixed-order
 * gradient sum (src/dist: all-to-all, rank-order add, all-gather) of n floats, for a range of n,
 * and the bus bandwidth 2 (N-1)/N * 4n / t. Run it under mpirun (>= 2 ranks), e.g.
 *   mpirun -np 2 --oversubscribe build/bench/bench_dist
 * Not for: training speed (bench/run_dist.sh) or correctness (tests/dist). */
#include <stdio.h>
#include <stdlib.h>
#include "dist/dist.h"

int main(int argc, char **argv) {
  if (tn_dist_init(&argc, &argv, 0) != TN_OK || tn_dist_size() < 2) {
    fprintf(stderr, "bench_dist: run it under mpirun with >= 2 ranks (%s)\n", tn_last_error());
    tn_dist_finish(1);
    return 1;
  }
  const int N = tn_dist_size();
  const size_t max = argc > 1 ? strtoull(argv[1], NULL, 10) : (size_t)1 << 24;
  if (tn_dist_rank() == 0) printf("| floats | MB | ms per sum | bus GB/s |\n|---|---|---|---|\n");
  for (size_t n = (size_t)1 << 12; n <= max; n *= 4) {
    const int reps = n <= ((size_t)1 << 18) ? 50 : n <= ((size_t)1 << 22) ? 10 : 3;
    double sec = 0;
    if (tn_dist_bench_allreduce(n, reps, &sec) != TN_OK) {
      fprintf(stderr, "bench_dist: %s\n", tn_last_error());
      tn_dist_finish(1);
      return 1;
    }
    if (tn_dist_rank() == 0)
      printf("| %zu | %.2f | %.3f | %.2f |\n", n, 4.0 * n / 1e6, sec * 1e3, 2.0 * (N - 1) / N * 4.0 * n / sec / 1e9);
  }
  tn_dist_finish(0);
  return 0;
}
