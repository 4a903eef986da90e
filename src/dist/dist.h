/* dist.h - data-parallel ranks over MPI (Open MPI, MPICH: any MPI launched by mpirun or
 * srun). tn_dist_init notices a launch under MPI from the launcher's environment, calls
 * MPI_Init, and registers the ranks with the trainer driver (tn_train_set_comm in
 * src/train/run.h: sharded batches, gradients summed in tn_run_update, rank 0 writes).
 * Not launched under MPI, or built without it (no MPI found by CMake): one rank, nothing
 * initialised, everything as without this module. Not for: what is sharded or summed
 * (the driver and the trainers decide that), process placement (the launcher's job). */
#ifndef TN_DIST_H
#define TN_DIST_H
#include <stdbool.h>
#include "tunic/base.h"

/* Under MPI: MPI_Init, the communicator registered with the trainers when there are >= 2
 * ranks, stdout of ranks > 0 sent to /dev/null (errors still on stderr, prefixed by the
 * rank by tn_dist_finish). Not under MPI: nothing. A launch under MPI of a tunic built
 * without MPI with >= 2 ranks is an error (N copies would write the same run). */
tn_status tn_dist_init(int *argc, char ***argv, int zero);
/* This rank and the number of ranks (0 and 1 when not under MPI). */
int tn_dist_rank(void);
int tn_dist_size(void);
/* True when built with MPI. */
bool tn_dist_available(void);
/* Seconds spent in the gradient and statistics sums so far (this rank). */
double tn_dist_comm_seconds(void);
/* End of the command with exit code rc: MPI_Finalize, or, when rc != 0 on one of >= 2
 * ranks, MPI_Abort so that the other ranks do not wait for it forever (the job fails). */
void tn_dist_finish(int rc);
/* Benchmarks: time sum_f32 over n floats (reps times); seconds per call (rank 0's). */
tn_status tn_dist_bench_allreduce(size_t n, int reps, double *sec);
#endif
