/* test_decode_kernels.c - the decoding kernels of src/tensor against independent
 * double-precision references written here, and their batch independence:
 *  - tn_linear_forward for 1..32 rows (the register-blocked GEMM): every row
 *    equals the same row computed alone, bit for bit, and the double product
 *    within 2e-5 (ragged input widths included);
 *  - tn_attention_forward for decode rows (no probabilities kept: the grouped
 *    decode kernel on AVX-512 machines): against a naive double softmax
 *    attention within 2e-5 (MHA, GQA, MQA, head sizes 20..128, sliding window,
 *    soft-cap); each row alone gives bitwise the batch's result; and slots that
 *    read a shared prompt prefix from another slot (pfx_src / pfx_len) give
 *    bitwise the result of slots holding a copy of that prefix;
 *  - at model level (tiny random llama, gemma3 (sliding window, sandwich and
 *    q/k norms), qwen2 (biases) and qwen3 checkpoints, GQA): decoding slots that share a prompt prefix (tn_state_share_prefix)
 *    gives bitwise the logits of slots holding a copy (tn_state_copy_slot) and of
 *    one slot decoded alone; writing into a shared region turns the sharing into a
 *    copy; tn_generate with n = 4 greedy samples (shared prefix) returns the
 *    tokens and log-probs of n = 1, bit for bit; the fused decode (one parallel
 *    region per forward) gives the per-kernel path's logits bit for bit, also with
 *    bf16 and NF4 projections (1..3 threads, AVX-512 and portable kernels).
 * Not for: training kernels (test_kernels_grad) or whole-model numerics (ref_*). */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "base/base.h"
#include "generate/generate.h"
#include "model/model.h"
#include "tensor/tensor.h"

static tn_rng rng;
static float *randn(size_t n, float sd) {
  float *x = malloc(sizeof(float) * (n ? n : 1));
  for (size_t i = 0; i < n; i++) x[i] = tn_rng_normal(&rng) * sd;
  return x;
}

static void test_linear_rows(void **state) {
  (void)state;
  const int shapes[][2] = {{288, 288}, {768, 288}, {37, 77}, {130, 300}, {5, 16}, {64, 33}};
  for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
    const int out = shapes[c][0], in = shapes[c][1], NMAX = 32;
    float *w = randn((size_t)out * in, 0.5f), *x = randn((size_t)NMAX * in, 1.0f);
    float *y = malloc(sizeof(float) * NMAX * out), *y1 = malloc(sizeof(float) * out);
    tn_mat W = {.out = out, .in = in, .dtype = TN_F32, .w = w};
    const int Ns[] = {1, 2, 3, 5, 7, 8, 9, 13, 16, 31, 32};
    for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++) {
      const int N = Ns[a];
      tn_linear_forward(y, x, &W, NULL, N);
      double worst = 0;
      int differ = 0;
      for (int n = 0; n < N; n++) {
        tn_linear_forward(y1, x + (size_t)n * in, &W, NULL, 1);
        for (int o = 0; o < out; o++) {
          double r = 0;
          for (int k = 0; k < in; k++) r += (double)w[(size_t)o * in + k] * x[(size_t)n * in + k];
          double e = fabs(r - y[(size_t)n * out + o]);
          worst = e > worst ? e : worst;
          differ += memcmp(&y1[o], &y[(size_t)n * out + o], sizeof(float)) != 0;
        }
      }
      if (differ || worst > 2e-5)
        fail_msg("linear %dx%d N=%d: %d outputs differ from the row alone, max |err| %.3g", out, in, N, differ,
                 worst);
    }
    free(w), free(x), free(y), free(y1);
  }
}

/* naive double attention of row i (all heads) into ref (H, D) */
static void ref_row(double *ref, const float *q, const float *k, const float *v, const tn_attn_shape *s, int i,
                    const int *copy_src, const int *copy_len) {
  const int H = s->H, D = s->D, G = H / s->KV, p = s->pos[i];
  const int lo = s->window > 0 && p - s->window + 1 > 0 ? p - s->window + 1 : 0;
  double *sc = malloc(sizeof(double) * (p + 1));
  for (int h = 0; h < H; h++) {
    const float *qi = q + ((size_t)i * H + h) * D;
    double mx = -INFINITY, sum = 0;
    for (int t = lo; t <= p; t++) {
      int j = s->seq[i];
      if (copy_len && t < copy_len[j]) j = copy_src[j];
      const float *kt = k + (size_t)j * s->seq_stride + ((size_t)t * s->KV + h / G) * D;
      double d = 0;
      for (int e = 0; e < D; e++) d += (double)qi[e] * kt[e];
      d *= s->scale;
      if (s->softcap > 0) d = s->softcap * tanh(d / s->softcap);
      sc[t] = d;
      mx = d > mx ? d : mx;
    }
    for (int t = lo; t <= p; t++) sum += (sc[t] = exp(sc[t] - mx));
    for (int e = 0; e < D; e++) {
      double o = 0;
      for (int t = lo; t <= p; t++) {
        int j = s->seq[i];
        if (copy_len && t < copy_len[j]) j = copy_src[j];
        o += sc[t] / sum * v[(size_t)j * s->seq_stride + ((size_t)t * s->KV + h / G) * D + e];
      }
      ref[(size_t)h * D + e] = o;
    }
  }
  free(sc);
}

typedef struct {
  int H, KV, D, window;
  float softcap;
} acase;

static void check_attention(const acase *c) {
  enum { S = 8, T = 96, P0 = 57 };
  const int H = c->H, KV = c->KV, D = c->D;
  const size_t stride = (size_t)T * KV * D;
  float *k = randn(S * stride, 1.0f), *v = randn(S * stride, 1.0f);
  const int N = S;
  float *q = randn((size_t)N * H * D, 1.0f), *out = malloc(sizeof(float) * N * H * D);
  float *o1 = malloc(sizeof(float) * H * D), *o2 = malloc(sizeof(float) * N * H * D);
  double *ref = malloc(sizeof(double) * H * D);
  int pos[S], seq[S];
  /* 1. one decode row per slot, at different positions (two rows in slot 3: positions 40, 41) */
  for (int i = 0; i < N; i++) seq[i] = i, pos[i] = 30 + 7 * i;
  seq[4] = 3, pos[3] = 40, pos[4] = 41;
  tn_attn_shape s = {.N = N, .H = H, .KV = KV, .D = D, .Tmax = T, .seq_stride = stride, .pos = pos, .seq = seq,
                     .window = c->window, .scale = 1.0f / sqrtf((float)D), .softcap = c->softcap,
                     .grouped = true};
  tn_attention_forward(out, NULL, q, k, v, &s);
  double worst = 0;
  int differ = 0;
  for (int i = 0; i < N; i++) {
    ref_row(ref, q, k, v, &s, i, NULL, NULL);
    for (int e = 0; e < H * D; e++) {
      double d = fabs(ref[e] - out[(size_t)i * H * D + e]);
      worst = d > worst ? d : worst;
    }
    tn_attn_shape s1 = s;
    s1.N = 1, s1.pos = &pos[i], s1.seq = &seq[i];
    tn_attention_forward(o1, NULL, q + (size_t)i * H * D, k, v, &s1);
    differ += memcmp(o1, out + (size_t)i * H * D, sizeof(float) * H * D) != 0;
  }
  if (worst > 2e-5 || differ)
    fail_msg("attention H%d KV%d D%d window %d cap %g: max |err| %.3g vs double, %d rows differ alone", H, KV, D,
             c->window, c->softcap, worst, differ);
  /* 2. shared prefix: slots 1..7 read positions < P0 from slot 0 (their own copies
   * there hold garbage), vs the same slots holding a copy */
  int src[S], len[S];
  for (int j = 0; j < S; j++) src[j] = 0, len[j] = j == 0 ? 0 : P0;
  for (int i = 0; i < N; i++) seq[i] = i, pos[i] = P0 + 3 * i + (i == 0 ? 20 : 0);
  float *kc = malloc(sizeof(float) * S * stride), *vc = malloc(sizeof(float) * S * stride);
  memcpy(kc, k, sizeof(float) * S * stride), memcpy(vc, v, sizeof(float) * S * stride);
  for (int j = 1; j < S; j++) {
    memcpy(kc + j * stride, k, sizeof(float) * P0 * KV * D);
    memcpy(vc + j * stride, v, sizeof(float) * P0 * KV * D);
  }
  tn_attn_shape sc = s; /* copied prefix */
  sc.pos = pos, sc.seq = seq;
  tn_attention_forward(o2, NULL, q, kc, vc, &sc);
  tn_attn_shape sp = sc; /* shared prefix */
  sp.pfx_src = src, sp.pfx_len = len;
  tn_attention_forward(out, NULL, q, k, v, &sp);
  worst = 0, differ = 0;
  int differ_alone = 0;
  for (int i = 0; i < N; i++) {
    ref_row(ref, q, k, v, &sp, i, src, len);
    for (int e = 0; e < H * D; e++) {
      double d = fabs(ref[e] - out[(size_t)i * H * D + e]);
      worst = d > worst ? d : worst;
    }
    differ += memcmp(o2 + (size_t)i * H * D, out + (size_t)i * H * D, sizeof(float) * H * D) != 0;
    tn_attn_shape s1 = sp;
    s1.N = 1, s1.pos = &pos[i], s1.seq = &seq[i];
    tn_attention_forward(o1, NULL, q + (size_t)i * H * D, k, v, &s1);
    differ_alone += memcmp(o1, out + (size_t)i * H * D, sizeof(float) * H * D) != 0;
  }
  if (worst > 2e-5 || differ || differ_alone)
    fail_msg("shared prefix H%d KV%d D%d window %d cap %g: max |err| %.3g, %d rows differ from the copied prefix, "
             "%d from the row alone", H, KV, D, c->window, c->softcap, worst, differ, differ_alone);
  free(k), free(v), free(q), free(out), free(o1), free(o2), free(ref), free(kc), free(vc);
}

static void test_attention_decode(void **state) {
  (void)state;
  const acase cases[] = {
      {6, 6, 48, 0, 0.0f},  /* llama15m */
      {14, 2, 64, 0, 0.0f}, /* qwen2.5-0.5b */
      {4, 1, 20, 0, 0.0f},  /* MQA, ragged head size */
      {8, 2, 128, 9, 0.0f}, /* window shorter than the context */
      {4, 2, 33, 0, 5.0f},  /* soft-cap */
      {4, 4, 16, 40, 2.0f},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) check_attention(&cases[c]);
}


static tn_model *tiny(const char *dir, const char *arch) {
  tn_init_opts io = {.arch = arch, .size = "tiny", .dtype = "f32", .vocab = 96, .shards = 1, .seed = 5,
                     .override_json = strcmp(arch, "gemma3_text") ? "{\"max_position_embeddings\": 64}"
                                                             : "{\"max_position_embeddings\": 64, \"sliding_window\": 7}"};
  if (tn_model_init_dir(dir, &io) != TN_OK) fail_msg("init %s: %s", arch, tn_last_error());
  tn_model *m;
  assert_int_equal(tn_model_load(&m, dir), TN_OK);
  return m;
}

/* prefill P tokens into slot 0 of st, then decode `steps` steps with rows for
 * slots 0..S-1 (slot j fed tokens (j, step)); slots 1.. share (share) or copy
 * slot 0's prefix. logits (steps, S, V). */
static void run_slots(const tn_model *m, int S, int P, int steps, bool share, float *logits) {
  const int V = m->cfg.V;
  tn_state *st;
  assert_int_equal(tn_state_create(&st, m, S, P + steps, P > S ? P : S, false), TN_OK);
  int tok[64], pos[64], seq[64];
  for (int t = 0; t < P; t++) tok[t] = 3 + (t * 7) % (V - 3), pos[t] = t, seq[t] = 0;
  assert_int_equal(tn_forward(m, st, P, tok, pos, seq, NULL, NULL, 0), TN_OK);
  for (int j = 1; j < S; j++) {
    if (share) tn_state_share_prefix(m, st, j, 0, P);
    else tn_state_copy_slot(m, st, j, 0, P);
  }
  for (int k = 0; k < steps; k++) {
    for (int j = 0; j < S; j++) tok[j] = 3 + (j * 11 + k * 5) % (V - 3), pos[j] = P + k, seq[j] = j;
    assert_int_equal(tn_forward(m, st, S, tok, pos, seq, logits + (size_t)k * S * V, NULL, S), TN_OK);
  }
  tn_state_free(st);
}

static void test_model_prefix(void **state) {
  (void)state;
  const char *archs[] = {"llama", "gemma3_text", "qwen2", "qwen3"};
  for (int a = 0; a < 4; a++) {
    char dir[] = "/tmp/tn_test_decode_XXXXXX";
    assert_non_null(mkdtemp(dir));
    tn_model *m = tiny(dir, archs[a]);
    const int V = m->cfg.V, S = 5, P = 19, steps = 12;
    float *ls = malloc(sizeof(float) * steps * S * V), *lc = malloc(sizeof(float) * steps * S * V);
    float *l1 = malloc(sizeof(float) * steps * V);
    run_slots(m, S, P, steps, true, ls);
    run_slots(m, S, P, steps, false, lc);
    assert_memory_equal(ls, lc, sizeof(float) * steps * S * V);
    /* the fused decode (one parallel region per forward) == the per-kernel path */
    tn_forward_set_fused(false);
    run_slots(m, S, P, steps, true, lc);
    tn_forward_set_fused(true);
    assert_memory_equal(ls, lc, sizeof(float) * steps * S * V);
    /* slot 0 alone: the same logits as in the batch of 5 */
    run_slots(m, 1, P, steps, true, l1);
    for (int k = 0; k < steps; k++) assert_memory_equal(l1 + (size_t)k * V, ls + (size_t)k * S * V, sizeof(float) * V);
    /* writes into shared regions: slot 1 rewrites its position 5, slot 0 (the source)
     * its position 3; every slot's logits then equal those of the copied layout */
    tn_state *sa, *sb;
    assert_int_equal(tn_state_create(&sa, m, 3, 40, 32, false), TN_OK);
    assert_int_equal(tn_state_create(&sb, m, 3, 40, 32, false), TN_OK);
    int tok[32], pos[32], seq[32];
    for (int t = 0; t < P; t++) tok[t] = 3 + (t * 13) % (V - 3), pos[t] = t, seq[t] = 0;
    assert_int_equal(tn_forward(m, sa, P, tok, pos, seq, NULL, NULL, 0), TN_OK);
    assert_int_equal(tn_forward(m, sb, P, tok, pos, seq, NULL, NULL, 0), TN_OK);
    for (int j = 1; j < 3; j++) tn_state_share_prefix(m, sa, j, 0, P), tn_state_copy_slot(m, sb, j, 0, P);
    assert_true(sa->pfx_any && sa->pfx_len[1] == P && !sb->pfx_any);
    const int wt[2] = {7, 9}, wp[2] = {5, 3}, ws[2] = {1, 0};
    float *la = malloc(sizeof(float) * 3 * V), *lb = malloc(sizeof(float) * 3 * V);
    for (int r = 0; r < 2; r++) {
      assert_int_equal(tn_forward(m, sa, 1, &wt[r], &wp[r], &ws[r], NULL, NULL, 0), TN_OK);
      assert_int_equal(tn_forward(m, sb, 1, &wt[r], &wp[r], &ws[r], NULL, NULL, 0), TN_OK);
    }
    assert_false(sa->pfx_any); /* both sharings became copies */
    /* overwriting a source slot with another slot's cache: its sharers keep their prefix */
    tn_state_share_prefix(m, sa, 2, 1, P);
    tn_state_copy_slot(m, sb, 2, 1, P);
    tn_state_copy_slot(m, sa, 1, 0, P - 4);
    tn_state_copy_slot(m, sb, 1, 0, P - 4);
    assert_int_equal(sa->pfx_len[2], 0);
    for (int j = 0; j < 3; j++) tok[j] = 4 + j, pos[j] = P, seq[j] = j;
    assert_int_equal(tn_forward(m, sa, 3, tok, pos, seq, la, NULL, 3), TN_OK);
    assert_int_equal(tn_forward(m, sb, 3, tok, pos, seq, lb, NULL, 3), TN_OK);
    assert_memory_equal(la, lb, sizeof(float) * 3 * V);
    tn_state_free(sa), tn_state_free(sb);
    /* tn_generate: n = 4 greedy samples share the prefix; each equals n = 1 */
    int p0[P];
    for (int t = 0; t < P; t++) p0[t] = 3 + (t * 17) % (V - 3);
    const int *ps[] = {p0};
    int pl[] = {P};
    tn_gen_opts o;
    tn_gen_opts_default(&o);
    o.max_new_tokens = 20;
    o.stop_ids = (int[]){-1};
    o.n_stop_ids = 1;
    tn_gen_result r1[1], r4[4];
    assert_int_equal(tn_generate(m, ps, pl, 1, &o, r1), TN_OK);
    o.n = 4;
    assert_int_equal(tn_generate(m, ps, pl, 1, &o, r4), TN_OK);
    for (int j = 0; j < 4; j++) {
      assert_int_equal(r4[j].n, r1[0].n);
      assert_memory_equal(r4[j].ids, r1[0].ids, sizeof(int) * r1[0].n);
      assert_memory_equal(r4[j].logprobs, r1[0].logprobs, sizeof(float) * r1[0].n);
    }
    tn_gen_results_free(r1, 1), tn_gen_results_free(r4, 4);
    free(ls), free(lc), free(l1), free(la), free(lb);
    tn_model_free(m);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
  }
}

/* The fused decode with bf16 and NF4 projections (bf16 embedding/head): the same
 * logits as the per-kernel path, bit for bit, on 1..3 threads and on the AVX-512 and
 * portable kernels; widths of 96 and 160 put NF4 rows 32 elements into a 64-block.
 * The thread count only grows (1, 2, 3; runs last): libgomp ends surplus workers when
 * it shrinks, and their thread-local scratch would then show up as leaks under ASan. */
static void test_fused_quant(void **state) {
  (void)state;
  const char *archs[] = {"llama", "qwen2"};
  const char *over[] = {"{\"max_position_embeddings\": 64}",
                        "{\"max_position_embeddings\": 64, \"hidden_size\": 96, \"num_attention_heads\": 6, "
                        "\"num_key_value_heads\": 2, \"intermediate_size\": 160}"};
  const int dts[] = {TN_BF16, TN_NF4};
  const tn_isa isa0 = tn_isa_level();
  char dirs[2][32];
  for (int a = 0; a < 2; a++) {
    strcpy(dirs[a], "/tmp/tn_test_decode_XXXXXX");
    assert_non_null(mkdtemp(dirs[a]));
    tn_init_opts io = {.arch = archs[a], .size = "tiny", .dtype = "f32", .vocab = 96, .shards = 1, .seed = 5,
                       .override_json = over[a]};
    if (tn_model_init_dir(dirs[a], &io) != TN_OK) fail_msg("init %s: %s", archs[a], tn_last_error());
  }
  for (int nt = 1; nt <= 3; nt++) {
    omp_set_num_threads(nt);
    for (int a = 0; a < 2; a++)
      for (int d = 0; d < 2; d++) {
        tn_load_opts lo;
        tn_load_opts_default(&lo);
        lo.base_dtype = dts[d];
        tn_model *m;
        assert_int_equal(tn_model_load_opts(&m, dirs[a], &lo), TN_OK);
        const tn_layer *y = &m->w.layers[0];
        const int V = m->cfg.V, S = 5, P = 19, steps = 6;
        assert_int_equal(y->wq.dtype, dts[d]);
        assert_int_equal(y->down.dtype, dts[d]);
        /* every projection and the head may take the fused path */
        assert_true(tn_linear_part_ok(&y->wq, S) && tn_linear_part_ok(&y->down, S) &&
                    tn_linear_part_ok(&m->w.head, S));
        assert_false(tn_linear_part_ok(&y->wq, 9));
        float *lf = malloc(sizeof(float) * steps * S * V), *lk = malloc(sizeof(float) * steps * S * V);
        for (int pi = 0; pi < 2; pi++) {
          if (pi == 1) tn_isa_set(TN_ISA_PORTABLE);
          run_slots(m, S, P, steps, true, lf);
          tn_forward_set_fused(false);
          run_slots(m, S, P, steps, true, lk);
          tn_forward_set_fused(true);
          if (memcmp(lf, lk, sizeof(float) * steps * S * V))
            fail_msg("%s %s isa %d, %d threads: fused logits differ from the per-kernel path", archs[a],
                     d ? "nf4" : "bf16", (int)tn_isa_level(), nt);
          /* the logits are finite and differ between slots (the rows are not all one) */
          for (size_t i = 0; i < (size_t)steps * S * V; i++) assert_true(isfinite(lf[i]));
          assert_true(memcmp(lf, lf + V, sizeof(float) * V) != 0);
          tn_isa_set(isa0);
        }
        free(lf), free(lk);
        tn_model_free(m);
      }
  }
  for (int a = 0; a < 2; a++) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dirs[a]);
    assert_int_equal(system(cmd), 0);
  }
}

int main(void) {
  tn_rng_seed(&rng, 7);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear_rows),
      cmocka_unit_test(test_attention_decode),
      cmocka_unit_test(test_model_prefix),
      cmocka_unit_test(test_fused_quant),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
