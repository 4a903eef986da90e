/* allocfail.c - the allocation-failure test (SQLite's approach): for each phase - model
 * load, tokenizer load (+ encode), one SFT step, one DPO step, one GRPO step, each on a
 * tiny model with the byte tokenizer, the whole library call as the CLI makes it - count
 * the allocations A of a clean run, then for N in 1..A make the N-th allocation fail
 * (tn_alloc_fail_at, src/base/util.c) and check the call ends with a non-OK status and a
 * message (never TN_OK after a failed allocation, never a crash). Under ASan (the fuzz
 * build, `make test SAN=1`) every N is also leak-checked on its own.
 * Usage: allocfail [--every K] [--only N] [--persist] [PHASE...]   (PHASE: model tokenizer sft dpo
 * grpo; --every K tries every K-th N plus the first and last 50: the quick CTest version;
 * --only N just that one, e.g. under gdb with a breakpoint on tn_alloc_injected).
 * Not for: checking what the phases compute (their own tests do). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/base.h"
#include "model/model.h"
#include "rl/grpo.h"
#include "train/dpo.h"
#include "train/sft.h"
#include "tunic/tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
#define TN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TN_ASAN 1
#endif
#endif
#ifdef TN_ASAN
#include <sanitizer/lsan_interface.h>
#endif

static char root[256], model_dir[300], sft_data[300], pref_data[300], prompt_data[300], out_dir[300];

static void write_text(const char *path, const char *text) {
  if (tn_write_file_atomic(path, text, strlen(text)) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); exit(2); }
}

static void setup(void) {
  snprintf(root, sizeof root, "%s/tunic-allocfail-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(root)) { perror("mkdtemp"); exit(2); }
  snprintf(model_dir, sizeof model_dir, "%s/model", root);
  tn_init_opts io = {"llama", "tiny", "f32", TN_BYTE_TOKENIZER_VOCAB, 1, 1, NULL};
  if (tn_model_init_dir(model_dir, &io) != TN_OK || tn_write_byte_tokenizer(model_dir) != TN_OK) {
    fprintf(stderr, "setup: %s\n", tn_last_error());
    exit(2);
  }
  snprintf(sft_data, sizeof sft_data, "%s/sft.jsonl", root);
  write_text(sft_data, "{\"prompt\": \"1+1=\", \"completion\": \"2\"}\n"
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n");
  snprintf(pref_data, sizeof pref_data, "%s/pref.jsonl", root);
  write_text(pref_data, "{\"prompt\": \"2+2=\", \"chosen\": \"4\", \"rejected\": \"5\"}\n"
                        "{\"prompt\": \"3+3=\", \"chosen\": \"6\", \"rejected\": \"7\"}\n");
  snprintf(prompt_data, sizeof prompt_data, "%s/prompts.jsonl", root);
  write_text(prompt_data, "{\"prompt\": \"1+2=\", \"answer\": \"3\"}\n{\"prompt\": \"2+5=\", \"answer\": \"7\"}\n");
}

static void cleanup(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (root[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

/* ---- phases: each returns the status of one complete library operation ---- */
static tn_status ph_model(void) {
  tn_model *m = NULL;
  tn_load_opts o;
  tn_load_opts_default(&o);
  tn_status s = tn_model_load_opts(&m, model_dir, &o);
  if (s == TN_OK) tn_model_free(m);
  return s;
}
static tn_status ph_tokenizer(void) {
  tn_tokenizer *t = NULL;
  TN_TRY(tn_tokenizer_load(model_dir, &t));
  tn_encoding e = {0};
  tn_status s = tn_tokenizer_encode_offsets(t, "Hello, world! 123", 17, true, &e);
  char *text = NULL;
  size_t len;
  if (s == TN_OK) s = tn_tokenizer_decode(t, e.ids, e.n, false, &text, &len);
  free(text);
  tn_encoding_free(&e);
  tn_tokenizer_free(t);
  return s;
}
static void train_common(tn_train_opts *t, const char *data, const char *name) {
  snprintf(out_dir, sizeof out_dir, "%s/out_%s", root, name);
  t->model = model_dir;
  t->data = data;
  t->out = out_dir;
  t->steps = 1;
  t->batch_size = 2;
  t->max_seq_len = 32;
  t->save_every = 0;
}
static tn_status ph_sft(void) {
  tn_sft_opts o;
  tn_sft_opts_default(&o);
  train_common(&o.train, sft_data, "sft");
  return tn_sft_run(&o, NULL);
}
static tn_status ph_dpo(void) {
  tn_dpo_opts o;
  tn_dpo_opts_default(&o);
  train_common(&o.train, pref_data, "dpo");
  o.max_prompt_length = o.max_response_length = 16;
  return tn_dpo_run(&o, NULL);
}
static tn_status ph_grpo(void) {
  tn_grpo_opts o;
  tn_grpo_opts_default(&o);
  train_common(&o.train, prompt_data, "grpo");
  o.batch_size = 1;
  o.num_generations = 2;
  o.max_prompt_length = 16;
  o.max_tokens_to_generate = 4;
  o.reward = "format_approx,answer";
  return tn_grpo_run(&o, NULL);
}

static const struct { const char *name; tn_status (*run)(void); } phases[] = {
    {"model", ph_model}, {"tokenizer", ph_tokenizer}, {"sft", ph_sft}, {"dpo", ph_dpo}, {"grpo", ph_grpo}};

static void rm_out(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", out_dir);
  if (out_dir[0] && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", out_dir);
}

/* One phase over its N values; returns the number of failures. */
static int sweep(int p, long every, long only, bool persist) {
  out_dir[0] = 0;
  tn_alloc_fail_at(LONG_MAX, false); /* count only */
  tn_error_clear();
  tn_status s = phases[p].run();
  const long total = tn_alloc_count();
  tn_alloc_fail_at(0, false);
  rm_out();
  if (s != TN_OK) {
    fprintf(stderr, "allocfail %s: the clean run failed: %s\n", phases[p].name, tn_last_error());
    return 1;
  }
  int bad = 0;
  long tried = 0;
  for (long n = 1; n <= total; n++) {
    if (every > 1 && n > 50 && n <= total - 50 && n % every) continue;
    if (only > 0 && n != only) continue;
    tried++;
    if (getenv("ALLOCFAIL_VERBOSE")) fprintf(stderr, "allocfail %s: failing allocation %ld\n", phases[p].name, n);
    tn_error_clear();
    tn_alloc_fail_at(n, persist);
    s = phases[p].run();
    const long failed = tn_alloc_failed();
    tn_alloc_fail_at(0, false);
    rm_out();
    if (failed > 0 && s == TN_OK) {
      fprintf(stderr, "allocfail %s: allocation %ld of %ld failed but the call returned OK\n", phases[p].name, n, total);
      bad++;
    } else if (s != TN_OK && !tn_last_error()[0]) {
      fprintf(stderr, "allocfail %s: allocation %ld failed: status '%s' without a message\n", phases[p].name, n,
              tn_status_name(s));
      bad++;
    }
#ifdef TN_ASAN
    if (__lsan_do_recoverable_leak_check()) {
      fprintf(stderr, "allocfail %s: leak after failing allocation %ld of %ld (report above)\n", phases[p].name, n, total);
      bad++;
    }
#endif
  }
  fprintf(stderr, "allocfail %s: %ld allocations in a clean run, %ld failure points tried%s, %d problems\n",
          phases[p].name, total, tried, persist ? " (persistent)" : "", bad);
  return bad;
}

int main(int argc, char **argv) {
  long every = 1, only = 0;
  bool persist = false;
  bool want[5] = {0}, any = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--every") && i + 1 < argc) every = atol(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = atol(argv[++i]);
    else if (!strcmp(argv[i], "--persist")) persist = true;
    else {
      int k = -1;
      for (int p = 0; p < 5; p++)
        if (!strcmp(argv[i], phases[p].name)) k = p;
      if (k < 0) { fprintf(stderr, "usage: allocfail [--every K] [--only N] [--persist] [model|tokenizer|sft|dpo|grpo ...]\n"); return 2; }
      want[k] = any = true;
    }
  }
  tn_log_set_level(-1); /* the trainers' progress lines, thousands of times */
  setup();
  /* the trainers print a summary line per run to stdout: the results go to stderr */
  fflush(stdout);
  if (!freopen("/dev/null", "w", stdout)) perror("freopen");
  int bad = 0;
  for (int p = 0; p < 5; p++)
    if (!any || want[p]) bad += sweep(p, every, only, persist);
  cleanup();
  return bad ? 1 : 0;
}
