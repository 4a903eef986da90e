/* bench_train.c - training speed and memory of tunic's engine on one checkpoint
 * directory: tokens/s of a full training step (forward + cross-entropy +
 * backward + AdamW) and peak RSS, for full fine-tuning or LoRA (rank r on
 * q,k,v,o, PEFT init), B sequences of T tokens, median of the timed steps
 * after warm-up steps. The step is the one `tunic sft` runs (the chunked LM
 * head + cross-entropy, optional activation recomputation, optional bf16
 * matmuls). Tokens and targets come from a formula that bench/torch_train.py
 * repeats, and weight decay is 0 in both, so the losses of the first steps
 * (before and after one update) must agree between the two engines: the driver
 * (bench/run_train.sh) checks that.
 * Not for: correctness testing (tests/), inference speed (bench_infer.c).
 *
 *   bench_train --model DIR [--batch 8] [--seq 256] [--lora-rank 0] [--steps 5]
 *               [--warmup 2] [--lr 1e-4] [--recompute] [--bf16] [--full-logits]
 *               [--label NAME] [--json FILE]
 * --full-logits: the old path (all (N, V) logits, then xent, then tn_backward)
 * for comparison with the chunked head. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "train/train.h"

#define MAX_STEPS 64

/* The shared data formula (bench/torch_train.py has the same): sequence b is
 * tokens tok(b, 0..T), inputs t = 0..T-1, targets t + 1. */
static int data_tok(int b, int t, int V) {
  return 3 + (int)(((int64_t)b * 1000003 + (int64_t)t * 7919 + ((int64_t)t * t % 9973) * 31 + 12345) % (V - 3));
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static long rss_now_kb(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
    fclose(f);
  }
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void die(const char *what) {
  fprintf(stderr, "bench_train: %s: %s\n", what, tn_last_error());
  exit(1);
}

int main(int argc, char **argv) {
  const char *model_dir = NULL, *label = "", *json = NULL;
  int B = 8, T = 256, rank = 0, steps = 5, warmup = 2;
  float lr = 1e-4f;
  bool recompute = false, bf16 = false, full_logits = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--recompute")) { recompute = true; continue; }
    if (!strcmp(a, "--bf16")) { bf16 = true; continue; }
    if (!strcmp(a, "--full-logits")) { full_logits = true; continue; }
    if (!v) { fprintf(stderr, "bench_train: %s needs a value\n", a); return 2; }
    i++;
    if (!strcmp(a, "--model")) model_dir = v;
    else if (!strcmp(a, "--batch")) B = atoi(v);
    else if (!strcmp(a, "--seq")) T = atoi(v);
    else if (!strcmp(a, "--lora-rank")) rank = atoi(v);
    else if (!strcmp(a, "--steps")) steps = atoi(v);
    else if (!strcmp(a, "--warmup")) warmup = atoi(v);
    else if (!strcmp(a, "--lr")) lr = (float)atof(v);
    else if (!strcmp(a, "--label")) label = v;
    else if (!strcmp(a, "--json")) json = v;
    else { fprintf(stderr, "bench_train: unknown option %s\n", a); return 2; }
  }
  if (!model_dir || B <= 0 || T <= 1 || steps <= 0 || warmup < 0 || warmup + steps > MAX_STEPS) {
    fprintf(stderr, "usage: bench_train --model DIR [--batch B] [--seq T] [--lora-rank R] [--steps S] [--warmup W]\n"
                    "       [--lr LR] [--recompute] [--bf16] [--full-logits] [--label NAME] [--json FILE]\n");
    return 2;
  }
  tn_matmul_set_bf16(bf16);
  const double t0 = tn_now();
  tn_model *m;
  if (tn_model_load(&m, model_dir) != TN_OK) die("load");
  const double load_s = tn_now() - t0;
  const long rss_loaded = rss_now_kb();
  const tn_config *c = &m->cfg;
  const int N = B * T, V = c->V;

  tn_tparams_opts po;
  tn_tparams_opts_default(&po);
  po.lora_rank = rank;
  po.lora_alpha = 2.0f * rank;
  po.lr = lr;
  po.weight_decay = 0.0f;
  po.seed = 1;
  tn_tparams tp;
  if (tn_tparams_init(&tp, m, &po) != TN_OK) die("trainable parameters");
  tn_state *st;
  tn_state_opts so = {.recompute = recompute};
  if (tn_state_create_opts(&st, m, B, T, N, true, &so) != TN_OK) die("state");
  tn_bwd bw;
  if (tn_bwd_create(&bw, m, st) != TN_OK) die("backward scratch");
  tn_head h;
  if (!full_logits && tn_head_create(&h, m, st) != TN_OK) die("head");
  float *logits = full_logits ? tn_alloc(sizeof(float) * (size_t)N * V) : NULL;
  int *tok = malloc(sizeof(int) * N), *pos = malloc(sizeof(int) * N), *seq = malloc(sizeof(int) * N);
  int *tgt = malloc(sizeof(int) * N);
  float *lrow = malloc(sizeof(float) * N), *wrow = malloc(sizeof(float) * N);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      int i = b * T + t;
      tok[i] = data_tok(b, t, V);
      tgt[i] = data_tok(b, t + 1, V);
      pos[i] = t;
      seq[i] = b;
      wrow[i] = 1.0f / N;
    }
  printf("# %s: %s V=%d C=%d L=%d H=%d KV=%d D=%d F=%d, %.2fM params; %s (LoRA rank %d on q,k,v,o), B=%d T=%d, "
         "%zu trainable, threads %d, recompute %d, bf16 matmul %d, head %s\n",
         model_dir, c->model_type, V, c->C, c->L, c->H, c->KV, c->D, c->F, m->n_floats / 1e6, rank ? "LoRA" : "full",
         rank, B, T, tp.opt.total, omp_get_max_threads(), recompute, bf16, full_logits ? "full logits" : "chunked");
  /* the GEMM path of each matmul class (linear.c, attention.c, backward.c's head): the bf16 mode
   * runs all of them on tn_gemm_bf16 where the ISA level has bf16 arithmetic */
  const bool bf = bf16 && tn_isa_level() >= TN_ISA_AVX512BF16;
  const char *gpath = bf ? tn_gemm_bf16_path() : "f32";
  printf("# isa %s; GEMM paths: projections fwd/dX/dW %s, LoRA products %s, attention %s, LM head %s\n",
         tn_isa_name(tn_isa_level()), bf ? gpath : "OpenBLAS sgemm (f32)", bf ? gpath : "OpenBLAS sgemm (f32)",
         bf ? gpath : "OpenBLAS sgemm (f32)", bf ? gpath : "OpenBLAS sgemm (f32)");

  double times[MAX_STEPS], losses[MAX_STEPS], cpus[MAX_STEPS];
  struct rusage r0, r1;
  for (int s = 0; s < warmup + steps; s++) {
    getrusage(RUSAGE_SELF, &r0);
    const double a = tn_now();
    tn_tparams_zero_grad(&tp);
    if (tn_forward(m, st, N, tok, pos, seq, logits, NULL, full_logits ? N : 0) != TN_OK) die("forward");
    double loss = 0;
    if (full_logits) {
      tn_xent_forward_backward(lrow, logits, logits, tgt, wrow, N, V);
      if (tn_backward(m, st, &bw, tn_tparams_grads(&tp), logits, NULL, N, tok, pos, seq) != TN_OK) die("backward");
    } else {
      if (tn_head_xent(m, st, &h, &bw, tn_tparams_grads(&tp), tgt, wrow, N, lrow) != TN_OK) die("head");
      if (tn_backward_body(m, st, &bw, tn_tparams_grads(&tp), N, tok, pos, seq) != TN_OK) die("backward");
    }
    for (int i = 0; i < N; i++) loss += lrow[i];
    loss /= N;
    tn_adamw_step(&tp.opt, lr, 1.0f);
    const double dt = tn_now() - a;
    getrusage(RUSAGE_SELF, &r1);
    times[s] = dt;
    losses[s] = loss;
    double usr = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + 1e-6 * (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec);
    double sys = (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + 1e-6 * (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
    cpus[s] = usr + sys;
    printf("step %d (%s) loss %.6f %.0f ms  usr %.2fs sys %.2fs minflt %ld\n", s, s < warmup ? "warmup" : "timed",
           loss, dt * 1e3, usr, sys, r1.ru_minflt - r0.ru_minflt);
    fflush(stdout);
  }
  double t[MAX_STEPS];
  memcpy(t, times + warmup, sizeof(double) * steps);
  qsort(t, steps, sizeof(double), cmp_d);
  const double med = steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]), best = t[0];
  memcpy(t, cpus + warmup, sizeof(double) * steps); /* CPU seconds per step: robust on a loaded machine */
  qsort(t, steps, sizeof(double), cmp_d);
  const double cpu_med = steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const double rss_peak = ru.ru_maxrss / 1024.0;
  printf("RESULT %s train tokens/s %.0f (median step %.0f ms, best %.0f tok/s; %.2f CPU s/step)  peak RSS %.0f MB "
         "(after load %.0f MB)\n", label, N / med, med * 1e3, N / best, cpu_med, rss_peak, rss_loaded / 1024.0);
  if (json) {
    FILE *f = fopen(json, "a");
    if (!f) { perror(json); return 1; }
    fprintf(f, "{\"engine\":\"tunic\",\"label\":\"%s\",\"mode\":\"%s\",\"lora_rank\":%d,\"B\":%d,\"T\":%d,"
               "\"recompute\":%s,\"bf16\":%s,\"full_logits\":%s,\"tok_s\":%.2f,\"tok_s_best\":%.2f,\"step_s\":%.4f,\"cpu_s\":%.4f,"
               "\"rss_peak_mb\":%.1f,\"rss_loaded_mb\":%.1f,\"load_s\":%.3f,\"trainable\":%zu,\"isa\":\"%s\","
               "\"gemm_path\":\"%s\",\"losses\":[",
            label, bf16 ? "bf16" : "f32", rank, B, T, recompute ? "true" : "false", bf16 ? "true" : "false",
            full_logits ? "true" : "false", N / med, N / best, med, cpu_med, rss_peak, rss_loaded / 1024.0, load_s,
            tp.opt.total, tn_isa_name(tn_isa_level()), gpath);
    for (int s = 0; s < warmup + steps; s++) fprintf(f, "%s%.6f", s ? "," : "", losses[s]);
    fprintf(f, "]}\n");
    fclose(f);
  }
  free(tok); free(pos); free(seq); free(tgt); free(lrow); free(wrow);
  tn_free(logits);
  if (!full_logits) tn_head_free(&h);
  tn_bwd_free(&bw);
  tn_state_free(st);
  tn_tparams_free(&tp);
  tn_model_free(m);
  return 0;
}
