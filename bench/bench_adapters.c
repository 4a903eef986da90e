/* bench_adapters.c - several LoRA adapters in one forward call vs per-adapter turns (issue 18),
 * measured in one process with the two layouts interleaved (ABAB...), so a shared machine's
 * load falls on both alike: CPU time (CLOCK_PROCESS_CPUTIME_ID) and wall time per decoded token.
 *   turns: A adapters x R rows each decode as A forward calls of R rows, the adapter of each call
 *          activated on the model's matrices (what `tunic serve` did before mixed batches);
 *   mixed: one forward call of A*R rows, each slot naming its adapter (tn_state_set_adapter).
 * Both on the same KV cache state (A*R slots, each at position P after a P-token prompt).
 * usage: bench_adapters --model DIR [--adapters 3] [--rows 8] [--rank 8] [--pos 32] [--iters 20]
 * Not for: correctness (tests/test_engine.c checks the mixed numbers against each alone). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "model/lora.h"
#include "model/model.h"

static double now(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  int A = 3, R = 8, rank = 8, P = 32, iters = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
    else if (!strcmp(argv[i], "--adapters")) A = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rows")) R = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--rank")) rank = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--pos")) P = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
  }
  if (!dir || A < 1 || A > 16 || R < 1 || R > 64 || rank < 1 || P < 1 || iters < 1) {
    fprintf(stderr, "usage: bench_adapters --model DIR [--adapters 3] [--rows 8] [--rank 8] [--pos 32] [--iters 20]\n");
    return 2;
  }
  tn_model *m;
  if (tn_model_load(&m, dir) != TN_OK) { fprintf(stderr, "bench_adapters: %s\n", tn_last_error()); return 1; }
  tn_lora_set *ad[16];
  for (int a = 0; a < A; a++) {
    tn_lora_opts o;
    tn_lora_opts_default(&o);
    o.rank = rank;
    o.seed = (uint64_t)a + 1;
    o.targets = "all-linear";
    if (tn_lora_create(m, &o, &ad[a]) != TN_OK) { fprintf(stderr, "bench_adapters: %s\n", tn_last_error()); return 1; }
    for (size_t i = 0; i < ad[a]->n_floats; i++) ad[a]->flat[i] = 0.01f * (float)((i * 2654435761u + a) % 1000) / 1000.0f;
  }
  const int S = A * R, T = P + 2 * iters + 2, V = m->cfg.V;
  tn_state *st;
  if (tn_state_create(&st, m, S, T, S * P > S ? S * P : S, false) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); return 1; }
  int *tok = malloc(sizeof(int) * S * P), *pos = malloc(sizeof(int) * S * P), *seq = malloc(sizeof(int) * S * P);
  float *lg = malloc(sizeof(float) * (size_t)S * V);
  for (int s = 0; s < S; s++) /* a P-token prompt in every slot (the cache the decode rows attend to) */
    for (int t = 0; t < P; t++) tok[s * P + t] = (s * 31 + t * 7) % V, pos[s * P + t] = t, seq[s * P + t] = s;
  for (int s = 0; s < S; s++)
    if (tn_forward(m, st, P, tok + s * P, pos + s * P, seq + s * P, NULL, NULL, 0) != TN_OK) return 1;
  double cpu[2] = {0, 0}, wall[2] = {0, 0};
  int at = P;
  for (int it = 0; it < 2 * iters; it++) {
    const int mode = it % 2; /* 0 turns, 1 mixed */
    const double c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
    for (int s = 0; s < S; s++) tok[s] = (s * 13 + at) % V, pos[s] = at, seq[s] = s;
    if (mode == 0) {
      for (int a = 0; a < A; a++) {
        tn_lora_activate(ad[a]);
        if (tn_forward(m, st, R, tok + a * R, pos + a * R, seq + a * R, lg, NULL, R) != TN_OK) return 1;
        tn_lora_deactivate(ad[a]);
      }
    } else {
      for (int s = 0; s < S; s++) tn_state_set_adapter(st, s, ad[s / R]);
      if (tn_forward(m, st, S, tok, pos, seq, lg, NULL, S) != TN_OK) return 1;
      for (int s = 0; s < S; s++) tn_state_set_adapter(st, s, NULL);
    }
    cpu[mode] += now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    wall[mode] += now(CLOCK_MONOTONIC) - w0;
    at++;
  }
  const double ntok = (double)iters * S;
  printf("{\"adapters\": %d, \"rows_per_adapter\": %d, \"rank\": %d, \"pos\": %d, \"iters\": %d, "
         "\"turns_cpu_ms_per_tok\": %.3f, \"mixed_cpu_ms_per_tok\": %.3f, \"cpu_ratio\": %.2f, "
         "\"turns_wall_ms_per_tok\": %.3f, \"mixed_wall_ms_per_tok\": %.3f, \"wall_ratio\": %.2f}\n",
         A, R, rank, P, iters, 1e3 * cpu[0] / ntok, 1e3 * cpu[1] / ntok, cpu[0] / cpu[1], 1e3 * wall[0] / ntok,
         1e3 * wall[1] / ntok, wall[0] / wall[1]);
  for (int a = 0; a < A; a++) tn_lora_free(ad[a]);
  tn_state_free(st);
  tn_model_free(m);
  free(tok); free(pos); free(seq); free(lg);
  return 0;
}
