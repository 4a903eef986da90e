/* bench_rollout.c - GRPO rollout throughput (issue 5): G completions per prompt generated
 * with the shared prompt prefix (one tn_generate call with n = G: the prompt is prefilled
 * once, the G slots read its KV cache in place (tn_state_share_prefix), and the G samples
 * are decoded as one batch)
 * versus one at a time (G calls with n = 1, each prefilling the prompt again and decoding
 * alone). Same model, same prompt, same sampling settings, and no stop tokens, so both
 * generate exactly B * G * N tokens. Also B prompts x G at once (a GRPO step's rollout)
 * against B * G single calls. Reports generated tokens/s (median of --reps after one
 * warm-up) and the speedup. Not for: correctness (tests/test_generate.c), prefill or
 * decode kernels alone (bench_infer).
 *
 *   bench_rollout --model DIR [--prompt-len 256] [--new-tokens 64] [--G 8] [--B 1,4]
 *                 [--reps 3] [--temperature 0.9] [--label NAME] [--json FILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "generate/generate.h"

#define MAX_REPS 15
#define MAX_BS 4

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
  qsort(v, n, sizeof(double), cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* one rollout: B prompts x G samples, shared (one call, n = G) or not (B*G calls, n = 1);
 * returns wall seconds, or < 0 on error; *cpu: CPU seconds of the process; *ntok: tokens generated */
static double rollout(const tn_model *m, int **prompts, const int *plens, int B, int G, const tn_gen_opts *base,
                      bool shared, long *ntok, double *cpu) {
  tn_gen_result *res = calloc((size_t)B * G, sizeof *res);
  tn_gen_opts o = *base;
  double t0 = tn_now(), c0 = cpu_now();
  tn_status s = TN_OK;
  if (shared) {
    o.n = G;
    s = tn_generate(m, (const int *const *)prompts, plens, B, &o, res);
  } else {
    o.n = 1;
    for (int b = 0; b < B && s == TN_OK; b++)
      for (int j = 0; j < G && s == TN_OK; j++) {
        o.seed = base->seed + 1000003ULL * (uint64_t)j; /* a different stream per sample */
        o.first_prompt = b;
        s = tn_generate(m, (const int *const *)&prompts[b], &plens[b], 1, &o, &res[b * G + j]);
      }
  }
  double dt = tn_now() - t0;
  *cpu = cpu_now() - c0;
  *ntok = 0;
  for (int i = 0; i < B * G; i++) *ntok += res[i].n;
  tn_gen_results_free(res, B * G);
  free(res);
  if (s != TN_OK) {
    fprintf(stderr, "bench_rollout: %s\n", tn_last_error());
    return -1;
  }
  return dt;
}

int main(int argc, char **argv) {
  const char *model_dir = NULL, *label = "model", *json = NULL;
  int P = 256, N = 64, G = 8, reps = 3, Bs[MAX_BS] = {1, 4}, nB = 2;
  float temperature = 0.9f;
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "bench_rollout: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--model")) model_dir = v;
    else if (!strcmp(a, "--prompt-len")) P = atoi(v);
    else if (!strcmp(a, "--new-tokens")) N = atoi(v);
    else if (!strcmp(a, "--G")) G = atoi(v);
    else if (!strcmp(a, "--reps")) reps = atoi(v);
    else if (!strcmp(a, "--temperature")) temperature = (float)atof(v);
    else if (!strcmp(a, "--label")) label = v;
    else if (!strcmp(a, "--json")) json = v;
    else if (!strcmp(a, "--B")) {
      nB = 0;
      for (char *p = (char *)v; *p && nB < MAX_BS;) {
        Bs[nB++] = (int)strtol(p, &p, 10);
        if (*p == ',') p++;
      }
    } else { fprintf(stderr, "bench_rollout: unknown option %s\n", a); return 2; }
  }
  if (!model_dir || P <= 0 || N <= 0 || G <= 0 || reps <= 0 || reps > MAX_REPS) {
    fprintf(stderr, "usage: bench_rollout --model DIR [--prompt-len 256] [--new-tokens 64] [--G 8] [--B 1,4] "
                    "[--reps 3 (<= %d)] [--temperature 0.9] [--label NAME] [--json FILE]\n", MAX_REPS);
    return 2;
  }
  tn_model *m;
  if (tn_model_load(&m, model_dir) != TN_OK) { fprintf(stderr, "bench_rollout: %s\n", tn_last_error()); return 1; }
  const int V = m->cfg.V;
  int Bmax = 1;
  for (int k = 0; k < nB; k++) Bmax = Bs[k] > Bmax ? Bs[k] : Bmax;
  int **prompts = malloc(sizeof(int *) * Bmax), *plens = malloc(sizeof(int) * Bmax);
  for (int b = 0; b < Bmax; b++) {
    prompts[b] = malloc(sizeof(int) * P);
    plens[b] = P;
    for (int t = 0; t < P; t++) prompts[b][t] = 3 + (int)(((int64_t)b * 1000003 + (int64_t)t * 7919 + 12345) % (V - 3));
  }
  static const int no_stop = -1; /* no stop token: every sample is exactly N tokens */
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.max_new_tokens = N;
  o.temperature = temperature;
  o.seed = 42;
  o.stop_ids = &no_stop;
  o.n_stop_ids = 1;
  FILE *jf = json ? fopen(json, "a") : NULL;
  printf("# %s: V %d, C %d, L %d; prompt %d tokens, %d new tokens per completion, G = %d, temperature %g, "
         "median of %d after a warm-up\n", label, V, m->cfg.C, m->cfg.L, P, N, G, temperature, reps);
  printf("| model | prompts B | completions B*G | tokens | shared prefix (n=G): wall s, tok/s | one at a time (n=1): wall s, tok/s "
         "| speedup (wall) | CPU s shared / one at a time | speedup (CPU) |\n");
  printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  int rc = 0;
  for (int k = 0; k < nB && rc == 0; k++) {
    const int B = Bs[k];
    double ts[MAX_REPS], tu[MAX_REPS], cs[MAX_REPS], cu[MAX_REPS], ca, cb;
    long nt_s = 0, nt_u = 0;
    for (int r = -1; r < reps && rc == 0; r++) { /* r = -1: warm-up */
      double a = rollout(m, prompts, plens, B, G, &o, true, &nt_s, &ca);
      double b = rollout(m, prompts, plens, B, G, &o, false, &nt_u, &cb);
      if (a < 0 || b < 0) rc = 1;
      else if (r >= 0) { ts[r] = a; tu[r] = b; cs[r] = ca; cu[r] = cb; }
    }
    if (rc) break;
    if (nt_s != nt_u || nt_s != (long)B * G * N) {
      fprintf(stderr, "bench_rollout: token counts differ (%ld shared, %ld single, %ld expected)\n", nt_s, nt_u,
              (long)B * G * N);
      rc = 1;
      break;
    }
    double ms = median(ts, reps), mu = median(tu, reps), mcs = median(cs, reps), mcu = median(cu, reps);
    printf("| %s | %d | %d | %ld | %.3f, %.0f | %.3f, %.0f | %.2fx | %.3f / %.3f | %.2fx |\n", label, B, B * G, nt_s, ms,
           nt_s / ms, mu, nt_u / mu, mu / ms, mcs, mcu, mcu / mcs);
    if (jf)
      fprintf(jf, "{\"bench\":\"rollout\",\"label\":\"%s\",\"V\":%d,\"prompt_len\":%d,\"new_tokens\":%d,\"G\":%d,\"B\":%d,"
                  "\"tokens\":%ld,\"shared_s\":%.6f,\"single_s\":%.6f,\"shared_tok_s\":%.2f,\"single_tok_s\":%.2f,"
                  "\"speedup\":%.4f,\"shared_cpu_s\":%.6f,\"single_cpu_s\":%.6f,\"speedup_cpu\":%.4f}\n", label, V, P, N, G, B,
              nt_s, ms, mu, nt_s / ms, nt_u / mu, mu / ms, mcs, mcu, mcu / mcs);
    fflush(stdout);
  }
  if (jf) fclose(jf);
  for (int b = 0; b < Bmax; b++) free(prompts[b]);
  free(prompts);
  free(plens);
  tn_model_free(m);
  return rc;
}
