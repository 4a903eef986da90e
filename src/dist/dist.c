/* dist.c - MPI behind the driver's tn_comm (see dist.h): the launch check, MPI_Init, the
 * fixed-order sum over ranks, the run manifest's "distributed" record, abort on failure.
 * Not for: sharding (src/train/run.c) or anything a trainer computes. */
#define _GNU_SOURCE
#include "dist/dist.h"
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/base.h"
#include "train/run.h"
#ifdef TN_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
static double g_comm_s = 0;
#ifdef TN_HAVE_MPI
static bool g_inited = false;
static tn_comm g_c;
static char *g_manifest;
#endif

/* the launcher's word for the number of ranks (0: not launched by an MPI launcher) */
static int launched_size(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", NULL};
  for (int i = 0; vars[i]; i++) {
    const char *v = getenv(vars[i]);
    if (v && atoi(v) > 0) return atoi(v);
  }
  if (getenv("PMIX_RANK") || getenv("PMI_RANK")) return 1; /* size unknown until MPI_Init */
  const char *st = getenv("SLURM_STEP_NUM_TASKS"); /* srun without --mpi=pmix: tasks that do not know each other */
  if (st && atoi(st) > 1) return -atoi(st);
  return 0;
}

bool tn_dist_available(void) {
#ifdef TN_HAVE_MPI
  return true;
#else
  return false;
#endif
}
int tn_dist_rank(void) { return g_rank; }
int tn_dist_size(void) { return g_size; }
double tn_dist_comm_seconds(void) { return g_comm_s; }

#ifdef TN_HAVE_MPI
static tn_status mpi_err(int rc, const char *what) {
  if (rc == MPI_SUCCESS) return TN_OK;
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return tn_error(TN_ERR_IO, "rank %d of %d: %s failed: %s (did another rank die?)", g_rank, g_size, what, msg);
}

/* The sum over ranks in a fixed order: the buffer is cut into one chunk per rank; each rank
 * receives every rank's copy of its chunk (all-to-all), adds them in rank order 0, 1, ...,
 * N-1, and the summed chunks are all-gathered. Every rank gets the same bits on every run,
 * for any network or MPI algorithm; traffic 2 (N-1)/N n per rank, as a ring all-reduce. */
static float *g_scratch;
static size_t g_scratch_n;
static tn_status sum_f32(const tn_comm *c, float *buf, size_t n) {
  if (n == 0) return TN_OK;
  const double t0 = tn_now();
  const int N = g_size, me = g_rank;
  int *cnt = malloc(sizeof(int) * 4 * N), *dsp = cnt + N, *rcnt = cnt + 2 * N, *rdsp = cnt + 3 * N;
  if (!cnt) return tn_error(TN_ERR_NOMEM, "all-reduce of %zu floats", n);
  const size_t q = n / N, rem = n % N;
  for (int k = 0, o = 0; k < N; k++) { cnt[k] = (int)(q + ((size_t)k < rem)); dsp[k] = o; o += cnt[k]; }
  const int mine = cnt[me];
  if (g_scratch_n < (size_t)mine * N) {
    free(g_scratch);
    g_scratch_n = (size_t)mine * N;
    g_scratch = malloc(sizeof(float) * (g_scratch_n ? g_scratch_n : 1));
    if (!g_scratch) { g_scratch_n = 0; free(cnt); return tn_error(TN_ERR_NOMEM, "all-reduce scratch of %zu floats", (size_t)mine * N); }
  }
  for (int k = 0; k < N; k++) { rcnt[k] = mine; rdsp[k] = k * mine; }
  tn_status s = mpi_err(MPI_Alltoallv(buf, cnt, dsp, MPI_FLOAT, g_scratch, rcnt, rdsp, MPI_FLOAT, MPI_COMM_WORLD),
                        "MPI_Alltoallv (gradient sum)");
  if (s == TN_OK) {
    float *out = buf + dsp[me];
    #pragma omp parallel for schedule(static)
    for (int i = 0; i < mine; i++) {
      float a = g_scratch[i];
      for (int k = 1; k < N; k++) a += g_scratch[(size_t)k * mine + i];
      out[i] = a;
    }
    s = mpi_err(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, cnt, dsp, MPI_FLOAT, MPI_COMM_WORLD),
                "MPI_Allgatherv (gradient sum)");
  }
  free(cnt);
  g_comm_s += tn_now() - t0;
  (void)c;
  return s;
}

/* a few statistics: every rank's values gathered, added in rank order */
static tn_status sum_f64(const tn_comm *c, double *buf, size_t n) {
  const double t0 = tn_now();
  double *all = malloc(sizeof(double) * n * g_size);
  if (!all) return tn_error(TN_ERR_NOMEM, "sum of %zu statistics", n);
  tn_status s = mpi_err(MPI_Allgather(buf, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD),
                        "MPI_Allgather (step statistics)");
  if (s == TN_OK)
    for (size_t i = 0; i < n; i++) {
      double a = all[i];
      for (int k = 1; k < g_size; k++) a += all[(size_t)k * n + i];
      buf[i] = a;
    }
  free(all);
  g_comm_s += tn_now() - t0;
  (void)c;
  return s;
}

static tn_status bcast_f32(const tn_comm *c, float *buf, size_t n, int root) {
  const double t0 = tn_now();
  tn_status s = TN_OK;
  for (size_t i = 0; i < n && s == TN_OK; i += (size_t)1 << 30) /* counts are int */
    s = mpi_err(MPI_Bcast(buf + i, (int)(n - i < ((size_t)1 << 30) ? n - i : (size_t)1 << 30), MPI_FLOAT, root,
                          MPI_COMM_WORLD), "MPI_Bcast (ZeRO-1 weights)");
  g_comm_s += tn_now() - t0;
  (void)c;
  return s;
}

static char *manifest_json(int zero) {
  char name[MPI_MAX_PROCESSOR_NAME + 1] = "";
  int len = 0;
  MPI_Get_processor_name(name, &len);
  char *all = calloc((size_t)g_size, MPI_MAX_PROCESSOR_NAME + 1);
  if (!all) return NULL;
  MPI_Allgather(name, MPI_MAX_PROCESSOR_NAME + 1, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME + 1, MPI_CHAR, MPI_COMM_WORLD);
  char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
  MPI_Get_library_version(lib, &len);
  char *nl = strchr(lib, '\n');
  if (nl) *nl = 0;
  int ver = 0, sub = 0;
  MPI_Get_version(&ver, &sub);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "world_size", g_size);
  cJSON *h = cJSON_AddArrayToObject(j, "hosts"); /* rank k's host at index k */
  for (int k = 0; k < g_size; k++) cJSON_AddItemToArray(h, cJSON_CreateString(all + (size_t)k * (MPI_MAX_PROCESSOR_NAME + 1)));
  cJSON_AddStringToObject(j, "mpi_library", lib);
  char sv[32];
  snprintf(sv, sizeof sv, "%d.%d", ver, sub);
  cJSON_AddStringToObject(j, "mpi_standard", sv);
  const char *omp = getenv("OMP_NUM_THREADS");
  if (omp) cJSON_AddStringToObject(j, "omp_num_threads", omp);
  cJSON_AddStringToObject(j, "gradient_sum", "fixed order (all-to-all, rank-order add, all-gather)");
  cJSON_AddNumberToObject(j, "zero", zero);
  char *out = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  free(all);
  return out;
}
#endif

tn_status tn_dist_init(int *argc, char ***argv, int zero) {
  if (zero != 0 && zero != 1) return tn_error(TN_ERR_ARG, "--zero %d: expected 0 (off) or 1 (AdamW state sharded)", zero);
  const int n = launched_size();
  if (n == 0) return TN_OK;
  if (n < 0)
    return tn_error(TN_ERR_ARG, "started by srun as one of %d tasks without an MPI process manager: launch with "
                                "`srun --mpi=pmix` (or mpirun), else each task would train alone into the same run", -n);
#ifndef TN_HAVE_MPI
  (void)argc; (void)argv;
  if (n > 1)
    return tn_error(TN_ERR_UNSUPPORTED, "launched on %d MPI ranks, but this tunic was built without MPI (install "
                                        "libopenmpi-dev and rebuild); %d copies would each write the same run", n, n);
  return TN_OK;
#else
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return tn_error(TN_ERR_IO, "MPI_Init failed (launched by an MPI launcher: %d ranks)", n);
  g_inited = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  if (g_size < 2) return TN_OK;
  g_manifest = manifest_json(zero);
  g_c = (tn_comm){.rank = g_rank, .size = g_size, .sum_f32 = sum_f32, .sum_f64 = sum_f64, .bcast_f32 = bcast_f32,
                  .zero = zero,
                  .manifest_json = g_manifest, .comm_s = &g_comm_s};
  tn_train_set_comm(&g_c);
  if (g_rank > 0) { /* one rank speaks: the others' stdout would repeat it */
    fflush(stdout);
    int fd = open("/dev/null", O_WRONLY);
    if (fd >= 0) { dup2(fd, STDOUT_FILENO); close(fd); }
  }
  return TN_OK;
#endif
}

void tn_dist_finish(int rc) {
#ifdef TN_HAVE_MPI
  if (!g_inited) return;
  fflush(stdout);
  fflush(stderr);
  if (rc != 0 && g_size > 1) {
    fprintf(stderr, "tunic: rank %d of %d failed (exit %d): aborting the job\n", g_rank, g_size, rc);
    MPI_Abort(MPI_COMM_WORLD, rc);
  }
  tn_train_set_comm(NULL);
  MPI_Finalize();
  free(g_scratch);
  free(g_manifest);
  g_scratch = NULL;
  g_manifest = NULL;
  g_inited = false;
#else
  (void)rc;
#endif
}

tn_status tn_dist_bench_allreduce(size_t n, int reps, double *sec) {
  *sec = 0;
#ifdef TN_HAVE_MPI
  if (!g_inited || g_size < 2) return tn_error(TN_ERR_ARG, "the all-reduce benchmark needs >= 2 MPI ranks");
  float *b = calloc(n ? n : 1, sizeof(float));
  if (!b) return tn_error(TN_ERR_NOMEM, "%zu floats", n);
  tn_status s = sum_f32(&g_c, b, n); /* warm-up */
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = tn_now();
  for (int i = 0; i < reps && s == TN_OK; i++) s = sum_f32(&g_c, b, n);
  *sec = (tn_now() - t0) / (reps > 0 ? reps : 1);
  free(b);
  return s;
#else
  (void)n; (void)reps;
  return tn_error(TN_ERR_UNSUPPORTED, "built without MPI");
#endif
}
