/* test_engine.c - the step-wise generation engine (include/tunic/engine.h) against
 * tn_generate and against itself:
 *  - n samples of B prompts opened + forked in the engine give tn_generate's tokens and
 *    log-probs bit for bit (same row layout: the prompts' prefill in one call, then one decode
 *    row per slot in slot order), sampled with temperature and with top-p + repetition penalty;
 *  - a slot joining mid-way (its prefill in the same forward as the others' decode rows) gives
 *    the tokens it gives alone and log-probs within 1e-4 (those rows take the prefill GEMM path
 *    instead of the decode path: float rounding only), and the others are unchanged likewise;
 *  - extending a sequence after a "tool message" (append after the model's turn, prefilled at
 *    the next positions) gives the logits of prefilling the whole transcript at once within
 *    1e-5 (max abs over the vocabulary);
 *  - a prompt longer than rows_per_step prefilled over several steps: the same greedy tokens,
 *    log-probs within 1e-4;
 *  - pause (a paused slot runs no rows while the others decode), fork after a turn (tail
 *    mode), cancel, limits and bad slots;
 *  - several adapters in one forward call (tn_state_set_adapter): rows of base / adapter 1 /
 *    adapter 2 slots, interleaved (gathered) and contiguous, prefill and decode, give each row the
 *    logits of running its sequence alone with its adapter activated (max abs diff <= 1e-5 over the
 *    vocabulary); the engine with per-slot adapters (forks inheriting them) gives tn_generate's
 *    greedy tokens with the adapter activated. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "generate/generate.h"
#include "model/lora.h"
#include "tunic/engine.h"

static tn_model *M;
static char DIR_[] = "/tmp/tn_test_engine_XXXXXX";

static int setup(void **st) {
  (void)st;
  if (!mkdtemp(DIR_)) return -1;
  tn_init_opts io = {.arch = "qwen3", .size = "tiny", .dtype = "f32", .vocab = 64, .shards = 1, .seed = 9,
                     .override_json = "{\"max_position_embeddings\": 64}"};
  if (tn_model_init_dir(DIR_, &io) != TN_OK) return -1;
  return tn_model_load(&M, DIR_) == TN_OK ? 0 : -1;
}
static int teardown(void **st) {
  (void)st;
  tn_model_free(M);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", DIR_);
  return system(cmd);
}

static const int P0[] = {1, 2, 3, 4, 5}, P1[] = {7, 8, 9, 10, 11, 12, 13, 14, 15}, P2[] = {20, 21, 22};
static const int *PS[] = {P0, P1, P2};
static const int PL[] = {5, 9, 3};

/* run the engine until idle; collect each slot's sampled tokens / log-probs */
static void drain(tn_engine *e, int **ids, float **lps, int *n) {
  while (tn_engine_busy(e)) {
    const tn_engine_event *ev;
    int nev;
    assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
    for (int k = 0; k < nev; k++) {
      const int j = ev[k].slot;
      ids[j][n[j]] = ev[k].token;
      lps[j][n[j]++] = ev[k].logprob;
    }
  }
}

static void vs_generate(const tn_gen_opts *o) {
  const int B = 3, G = o->n, S = B * G, MAXN = o->max_new_tokens;
  tn_gen_result res[9];
  assert_int_equal(tn_generate(M, PS, PL, B, o, res), TN_OK);
  tn_engine *e;
  tn_engine_opts eo = {.max_slots = S, .context = 9 + MAXN, .rows_per_step = 17};
  assert_int_equal(tn_engine_create(&e, M, &eo), TN_OK);
  int slot[9];
  for (int p = 0; p < B; p++) {
    assert_int_equal(tn_engine_open(e, o, p, 0, &slot[p * G]), TN_OK);
    assert_int_equal(slot[p * G], p * G);
    assert_int_equal(tn_engine_append(e, slot[p * G], PS[p], PL[p]), TN_OK);
    assert_int_equal(tn_engine_generate(e, slot[p * G], 0), TN_OK);
    for (int j = 1; j < G; j++) {
      assert_int_equal(tn_engine_fork(e, slot[p * G], NULL, p, j, &slot[p * G + j]), TN_OK);
      assert_int_equal(tn_engine_generate(e, slot[p * G + j], 0), TN_OK);
    }
  }
  int ids_[9][32], *ids[9], n[9] = {0};
  float lps_[9][32], *lps[9];
  for (int i = 0; i < S; i++) { ids[i] = ids_[i]; lps[i] = lps_[i]; }
  drain(e, ids, lps, n);
  for (int i = 0; i < S; i++) {
    assert_int_equal(n[i], res[i].n);
    assert_memory_equal(ids[i], res[i].ids, sizeof(int) * n[i]);
    assert_memory_equal(lps[i], res[i].logprobs, sizeof(float) * n[i]); /* bitwise */
    assert_int_equal(tn_engine_finish(e, i), (int)res[i].finish);
    int nt;
    const int *all = tn_engine_tokens(e, i, &nt);
    assert_int_equal(nt, PL[i / G] + n[i]);
    assert_memory_equal(all + PL[i / G], res[i].ids, sizeof(int) * n[i]);
  }
  tn_gen_results_free(res, S);
  tn_engine_free(e);
}

static void test_reproduces_generate(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.max_new_tokens = 12;
  o.temperature = 1.0f;
  o.n = 3;
  o.seed = 77;
  o.stop_ids = (int[]){-1}; /* fixed length */
  o.n_stop_ids = 1;
  vs_generate(&o);
  o.top_p = 0.8f;
  o.repetition_penalty = 1.3f;
  o.seed = 5;
  o.stop_ids = (int[]){3, 17}; /* stops at whatever these random weights make */
  o.n_stop_ids = 2;
  vs_generate(&o);
}

static void test_join_midway(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.max_new_tokens = 14;
  o.stop_ids = (int[]){-1};
  o.n_stop_ids = 1;
  tn_engine_opts eo = {.max_slots = 3, .context = 40, .rows_per_step = 64};
  int alone[3][16], *ia[3] = {alone[0], alone[1], alone[2]}, na[3] = {0};
  float alp[3][16], *la[3] = {alp[0], alp[1], alp[2]};
  for (int p = 0; p < 3; p++) { /* each alone */
    tn_engine *e;
    assert_int_equal(tn_engine_create(&e, M, &eo), TN_OK);
    int s;
    assert_int_equal(tn_engine_open(e, &o, p, 0, &s), TN_OK);
    assert_int_equal(tn_engine_append(e, s, PS[p], PL[p]), TN_OK);
    assert_int_equal(tn_engine_generate(e, s, 0), TN_OK);
    int *pi[3] = {ia[p], ia[p], ia[p]};
    float *pl[3] = {la[p], la[p], la[p]};
    int cnt[3] = {0};
    drain(e, pi, pl, cnt);
    na[p] = cnt[0];
    tn_engine_free(e);
  }
  /* together: slot 0 starts, slot 1 joins after 3 steps, slot 2 after 7 (its prefill rides with decode rows) */
  tn_engine *e;
  assert_int_equal(tn_engine_create(&e, M, &eo), TN_OK);
  int ids_[3][16], *ids[3] = {ids_[0], ids_[1], ids_[2]}, n[3] = {0};
  float lps_[3][16], *lps[3] = {lps_[0], lps_[1], lps_[2]};
  int s;
  assert_int_equal(tn_engine_open(e, &o, 0, 0, &s), TN_OK);
  assert_int_equal(tn_engine_append(e, s, PS[0], PL[0]), TN_OK);
  assert_int_equal(tn_engine_generate(e, s, 0), TN_OK);
  for (int stp = 0; tn_engine_busy(e) || stp < 8; stp++) {
    if (stp == 3 || stp == 7) {
      const int p = stp == 3 ? 1 : 2;
      assert_int_equal(tn_engine_open(e, &o, p, 0, &s), TN_OK);
      assert_int_equal(s, p);
      assert_int_equal(tn_engine_append(e, s, PS[p], PL[p]), TN_OK);
      assert_int_equal(tn_engine_generate(e, s, 0), TN_OK);
    }
    const tn_engine_event *ev;
    int nev;
    assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
    for (int k = 0; k < nev; k++) {
      const int j = ev[k].slot;
      ids[j][n[j]] = ev[k].token;
      lps[j][n[j]++] = ev[k].logprob;
    }
  }
  for (int p = 0; p < 3; p++) {
    assert_int_equal(n[p], na[p]);
    assert_memory_equal(ids[p], ia[p], sizeof(int) * n[p]);
    for (int k = 0; k < n[p]; k++) assert_true(fabsf(lps[p][k] - la[p][k]) <= 1e-4f);
  }
  tn_engine_free(e);
}

/* a prompt longer than rows_per_step is prefilled over several steps (with another slot decoding
 * meanwhile): the same greedy tokens as one whole prefill, log-probs within 1e-4 */
static void test_chunked_prefill(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.max_new_tokens = 8;
  o.stop_ids = (int[]){-1};
  o.n_stop_ids = 1;
  int ids[2][2][8], n[2][2] = {{0}};
  float lps[2][2][8];
  for (int chunked = 0; chunked < 2; chunked++) {
    tn_engine_opts eo = {.max_slots = 2, .context = 32, .rows_per_step = chunked ? 3 : 64};
    tn_engine *e;
    assert_int_equal(tn_engine_create(&e, M, &eo), TN_OK);
    int a, b;
    assert_int_equal(tn_engine_open(e, &o, 0, 0, &a), TN_OK);
    assert_int_equal(tn_engine_append(e, a, P2, 3), TN_OK);
    assert_int_equal(tn_engine_generate(e, a, 0), TN_OK);
    assert_int_equal(tn_engine_open(e, &o, 1, 0, &b), TN_OK);
    assert_int_equal(tn_engine_append(e, b, P1, 9), TN_OK);
    assert_int_equal(tn_engine_generate(e, b, 0), TN_OK);
    int steps = 0;
    while (tn_engine_busy(e)) {
      const tn_engine_event *ev;
      int nev;
      assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
      steps++;
      for (int k = 0; k < nev; k++) {
        const int j = ev[k].slot;
        ids[chunked][j][n[chunked][j]] = ev[k].token;
        lps[chunked][j][n[chunked][j]++] = ev[k].logprob;
      }
    }
    if (chunked) assert_true(steps > 8 + 2); /* b's 9 prompt tokens took several steps */
    tn_engine_free(e);
  }
  for (int j = 0; j < 2; j++) {
    assert_int_equal(n[0][j], 8);
    assert_int_equal(n[1][j], 8);
    assert_memory_equal(ids[0][j], ids[1][j], sizeof ids[0][j]);
    for (int k = 0; k < 8; k++) assert_true(fabsf(lps[0][j][k] - lps[1][j][k]) <= 1e-4f);
  }
}

static float maxdiff(const float *a, const float *b, int V) {
  float d = 0;
  for (int v = 0; v < V; v++) d = fmaxf(d, fabsf(a[v] - b[v]));
  return d;
}

static void test_extend_after_tool_message(void **st) {
  (void)st;
  const int V = M->cfg.V;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.stop_ids = (int[]){-1};
  o.n_stop_ids = 1;
  tn_engine_opts eo = {.max_slots = 2, .context = 64, .rows_per_step = 64};
  tn_engine *e;
  assert_int_equal(tn_engine_create(&e, M, &eo), TN_OK);
  int s, s2;
  assert_int_equal(tn_engine_open(e, &o, 0, 0, &s), TN_OK);
  assert_int_equal(tn_engine_append(e, s, P1, 9), TN_OK);
  assert_int_equal(tn_engine_generate(e, s, 6), TN_OK); /* the model's turn: 6 tokens */
  const tn_engine_event *ev;
  int nev;
  while (tn_engine_busy(e)) assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
  assert_int_equal(tn_engine_finish(e, s), TN_FINISH_LENGTH);
  const int tool[] = {30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41}; /* a tool message: 12 rows (the prefill path) */
  int extended[2][64];
  float lg_ext[2][64];
  for (int round = 0; round < 2; round++) {
    const int add = round == 0 ? 12 : 3; /* then a short one (the decode path) */
    assert_int_equal(tn_engine_append(e, s, tool, add), TN_OK);
    assert_int_equal(tn_engine_generate(e, s, 1), TN_OK);
    const int before = tn_engine_cached(e, s);
    assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
    assert_int_equal(nev, 1);
    int nt;
    const int *all = tn_engine_tokens(e, s, &nt);
    assert_int_equal(tn_engine_cached(e, s), nt - 1); /* only the new tokens ran: never a re-prefill */
    assert_int_equal(tn_engine_cached(e, s) - before, add + 1);
    memcpy(lg_ext[round], tn_engine_logits(e, s), sizeof(float) * V);
    memcpy(extended[round], all, sizeof(int) * nt);
    /* the whole transcript prefilled at once in another slot */
    assert_int_equal(tn_engine_open(e, &o, 1, 0, &s2), TN_OK);
    assert_int_equal(tn_engine_append(e, s2, all, nt - 1), TN_OK);
    assert_int_equal(tn_engine_generate(e, s2, 1), TN_OK);
    assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
    assert_int_equal(nev, 1);
    const float d = maxdiff(lg_ext[round], tn_engine_logits(e, s2), V);
    print_message("extend after a tool message (%d tokens): max |logit diff| vs whole prefill %.3g\n", add, d);
    assert_true(d <= 1e-5f);
    assert_int_equal(ev[0].token, all[nt - 1]); /* greedy: the same next token */
    tn_engine_close(e, s2);
  }
  tn_engine_free(e);
}

/* an adapter with B random too (PEFT's init has B = 0, which would be no test) */
static tn_lora_set *rand_adapter(uint64_t seed, const char *targets) {
  tn_lora_opts o;
  tn_lora_opts_default(&o);
  o.rank = 4;
  o.seed = seed;
  o.targets = targets;
  tn_lora_set *s;
  assert_int_equal(tn_lora_create(M, &o, &s), TN_OK);
  tn_rng r;
  tn_rng_seed(&r, seed);
  for (size_t i = 0; i < s->n_floats; i++) s->flat[i] = (float)(tn_rng_uniform(&r) - 0.5) * 0.5f;
  return s;
}

/* logits (len, V) of one sequence alone, with adapter a activated (NULL: the base) */
static float *alone(tn_lora_set *a, const int *ids, int len) {
  const int V = M->cfg.V;
  if (a) tn_lora_activate(a);
  tn_state *st;
  assert_int_equal(tn_state_create(&st, M, 1, 64, 64, false), TN_OK);
  int pos[64], seq[64] = {0};
  for (int i = 0; i < len; i++) pos[i] = i;
  float *lg = malloc(sizeof(float) * (size_t)len * V);
  assert_int_equal(tn_forward(M, st, len, ids, pos, seq, lg, NULL, len), TN_OK);
  tn_state_free(st);
  if (a) tn_lora_deactivate(a);
  return lg;
}

static void test_mixed_adapters(void **st_) {
  (void)st_;
  const int V = M->cfg.V;
  tn_lora_set *a1 = rand_adapter(11, "all-linear"), *a2 = rand_adapter(12, "q_proj,v_proj,down_proj");
  tn_lora_set *ads[3] = {NULL, a1, a2};
  float *ref[3];
  for (int s = 0; s < 3; s++) ref[s] = alone(ads[s], PS[s], PL[s]);
  for (int layout = 0; layout < 2; layout++) { /* 0: rows interleaved (gathered), 1: contiguous */
    tn_state *st;
    assert_int_equal(tn_state_create(&st, M, 3, 64, 64, false), TN_OK);
    for (int s = 0; s < 3; s++) assert_int_equal(tn_state_set_adapter(st, s, ads[s]), TN_OK);
    int tok[64], pos[64], seq[64], N = 0, at[3][16];
    if (layout == 0) {
      for (int t = 0; t < 9; t++)
        for (int s = 0; s < 3; s++)
          if (t < PL[s] - 1) tok[N] = PS[s][t], pos[N] = t, seq[N] = s, at[s][t] = N++;
    } else {
      for (int s = 0; s < 3; s++)
        for (int t = 0; t < PL[s] - 1; t++) tok[N] = PS[s][t], pos[N] = t, seq[N] = s, at[s][t] = N++;
    }
    float *lg = malloc(sizeof(float) * 64 * V);
    assert_int_equal(tn_forward(M, st, N, tok, pos, seq, lg, NULL, N), TN_OK); /* prefill but the last token */
    double worst = 0;
    for (int s = 0; s < 3; s++)
      for (int t = 0; t < PL[s] - 1; t++)
        for (int v = 0; v < V; v++) worst = fmax(worst, fabs(lg[(size_t)at[s][t] * V + v] - ref[s][(size_t)t * V + v]));
    /* one decode row per slot (the small-N GEMM path), slot order reversed */
    int dtok[3], dpos[3], dseq[3];
    for (int k = 0; k < 3; k++) dseq[k] = 2 - k, dtok[k] = PS[2 - k][PL[2 - k] - 1], dpos[k] = PL[2 - k] - 1;
    assert_int_equal(tn_forward(M, st, 3, dtok, dpos, dseq, lg, NULL, 3), TN_OK);
    for (int k = 0; k < 3; k++)
      for (int v = 0; v < V; v++)
        worst = fmax(worst, fabs(lg[(size_t)k * V + v] - ref[dseq[k]][(size_t)(PL[dseq[k]] - 1) * V + v]));
    print_message("mixed adapters, layout %d: max |logit - alone| = %.2e\n", layout, worst);
    assert_true(worst <= 1e-5);
    /* the adapters do change the logits (else the check above would be vacuous) */
    float *b1 = alone(NULL, PS[1], PL[1]);
    double d = 0;
    for (int v = 0; v < V; v++) d = fmax(d, fabs(b1[v] - ref[1][v]));
    assert_true(d > 1e-2);
    free(b1);
    free(lg);
    tn_state_free(st);
  }
  /* the engine: per-slot adapters, forks inherit them; greedy = tn_generate with the adapter activated */
  tn_engine *e;
  tn_engine_opts eo = {.max_slots = 6, .context = 40, .rows_per_step = 64};
  assert_int_equal(tn_engine_create(&e, M, &eo), TN_OK);
  tn_gen_opts g;
  tn_gen_opts_default(&g);
  g.max_new_tokens = 8;
  g.stop_ids = (const int[]){-1};
  g.n_stop_ids = 1;
  int slot[6], *ids[6], n[6] = {0};
  float *lps[6];
  for (int s = 0; s < 3; s++) {
    assert_int_equal(tn_engine_open(e, &g, s, 0, &slot[s]), TN_OK);
    assert_int_equal(tn_engine_set_adapter(e, slot[s], ads[s]), TN_OK);
    assert_int_equal(tn_engine_append(e, slot[s], PS[s], PL[s]), TN_OK);
    assert_int_equal(tn_engine_generate(e, slot[s], 0), TN_OK);
    assert_int_equal(tn_engine_fork(e, slot[s], NULL, s, 1, &slot[3 + s]), TN_OK);
    assert_int_equal(tn_engine_generate(e, slot[3 + s], 0), TN_OK);
  }
  for (int k = 0; k < 6; k++) ids[k] = calloc(64, sizeof(int)), lps[k] = calloc(64, sizeof(float));
  drain(e, ids, lps, n);
  for (int s = 0; s < 3; s++) {
    if (ads[s]) tn_lora_activate(ads[s]);
    tn_gen_result r;
    const int *pp[1] = {PS[s]};
    assert_int_equal(tn_generate(M, pp, &PL[s], 1, &g, &r), TN_OK);
    if (ads[s]) tn_lora_deactivate(ads[s]);
    for (int f = 0; f < 2; f++) {
      const int j = slot[s + 3 * f];
      assert_int_equal(n[j], r.n);
      for (int i = 0; i < r.n; i++) {
        assert_int_equal(ids[j][i], r.ids[i]);
        assert_true(fabsf(lps[j][i] - r.logprobs[i]) < 1e-4f);
      }
    }
    tn_gen_results_free(&r, 1);
  }
  for (int k = 0; k < 6; k++) free(ids[k]), free(lps[k]);
  tn_engine_free(e);
  for (int s = 0; s < 3; s++) free(ref[s]);
  tn_lora_free(a1);
  tn_lora_free(a2);
}

static void test_pause_fork_cancel_limits(void **st) {
  (void)st;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  o.stop_ids = (int[]){-1};
  o.n_stop_ids = 1;
  o.max_new_tokens = 4;
  tn_engine_opts eo = {.max_slots = 2, .context = 16, .rows_per_step = 8, .top_logprobs = 3};
  tn_engine *e;
  assert_int_equal(tn_engine_create(&e, M, &eo), TN_OK);
  int a, b, c;
  assert_int_equal(tn_engine_open(e, &o, 0, 0, &a), TN_OK);
  assert_int_equal(tn_engine_append(e, a, P0, 5), TN_OK);
  assert_int_equal(tn_engine_generate(e, a, 0), TN_OK);
  assert_int_equal(tn_engine_open(e, &o, 1, 0, &b), TN_OK);
  assert_int_equal(tn_engine_open(e, &o, 2, 0, &c), TN_ERR_LIMIT); /* 2 slots */
  assert_int_equal(tn_engine_append(e, b, P2, 3), TN_OK);
  assert_int_equal(tn_engine_generate(e, b, 0), TN_OK);
  assert_int_equal(tn_engine_append(e, b, P2, 1), TN_ERR_ARG); /* generating */
  assert_int_equal(tn_engine_pause(e, b, true), TN_OK);
  const tn_engine_event *ev;
  int nev;
  for (int k = 0; k < 4; k++) {
    assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
    assert_int_equal(nev, 1);
    assert_int_equal(ev[0].slot, a); /* b waits */
    assert_int_equal(ev[0].n_top, 3);
    assert_true(ev[0].top_logprobs[0] >= ev[0].top_logprobs[1] && ev[0].top_logprobs[1] >= ev[0].top_logprobs[2]);
    assert_true(fabsf(ev[0].top_ids[0] == ev[0].token ? ev[0].top_logprobs[0] - ev[0].logprob : 0) < 1e-6f); /* greedy */
  }
  assert_false(tn_engine_generating(e, a));
  assert_int_equal(tn_engine_cached(e, b), 0);
  assert_true(tn_engine_busy(e) == false);
  assert_int_equal(tn_engine_pause(e, b, false), TN_OK);
  assert_int_equal(tn_engine_cancel(e, b), TN_OK);
  assert_int_equal(tn_engine_finish(e, b), TN_FINISH_CANCEL);
  tn_engine_close(e, b);
  /* fork a after its turn: the fork shares a's cache and, greedy, continues exactly as a does */
  assert_int_equal(tn_engine_fork(e, a, NULL, 0, 1, &c), TN_OK);
  assert_int_equal(tn_engine_cached(e, c), tn_engine_cached(e, a));
  assert_int_equal(tn_engine_generate(e, a, 3), TN_OK);
  assert_int_equal(tn_engine_generate(e, c, 3), TN_OK);
  int got[2][3] = {{0}}, n2[2] = {0};
  while (tn_engine_busy(e)) {
    assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
    for (int k = 0; k < nev; k++) got[ev[k].slot == a ? 0 : 1][n2[ev[k].slot == a ? 0 : 1]++] = ev[k].token;
  }
  assert_int_equal(n2[0], 3);
  assert_int_equal(n2[1], 3);
  assert_memory_equal(got[0], got[1], sizeof got[0]);
  /* the context: 5 + 4 + 3 = 12 of 16 */
  int nt;
  tn_engine_tokens(e, a, &nt);
  assert_int_equal(nt, 12);
  assert_int_equal(tn_engine_append(e, a, P1, 9), TN_ERR_LIMIT);
  assert_int_equal(tn_engine_append(e, a, P1, 3), TN_OK);
  assert_int_equal(tn_engine_generate(e, a, 10), TN_OK);
  while (tn_engine_busy(e)) assert_int_equal(tn_engine_step(e, &ev, &nev), TN_OK);
  assert_int_equal(tn_engine_finish(e, a), TN_FINISH_CONTEXT);
  assert_int_equal(tn_engine_generate(e, a, 1), TN_ERR_LIMIT);
  assert_int_equal(tn_engine_append(e, 7, P0, 1), TN_ERR_ARG);
  tn_engine_free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_reproduces_generate),
    cmocka_unit_test(test_join_midway),
    cmocka_unit_test(test_extend_after_tool_message),
    cmocka_unit_test(test_chunked_prefill),
    cmocka_unit_test(test_pause_fork_cancel_limits),
    cmocka_unit_test(test_mixed_adapters),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
