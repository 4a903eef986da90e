/* test_optim.c - AdamW, gradient clipping and learning-rate schedules.
 * Hand-worked checks here (schedule values at boundary steps, clipping of a
 * known vector, the closed form of Adam's first step, state helpers, thread-count
 * invariance). The ten-step trajectory against torch.optim.AdamW +
 * clip_grad_norm_ + a Python transcription of optax is checked by
 * tests/optim/check_adamw.py (CTest "optim_torch_ref"): this program writes the
 * inputs it generated and its own results to optim_io/ for that script.
 * Not for: gradients of the model (test_backward / the model tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"
#include "train/optim.h"
#ifdef _OPENMP
#include <omp.h>
#endif

/* |a - b| <= tol * max(1, |b|) */
#define assert_close(a, b, tol)                                                             \
  do {                                                                                      \
    double _a = (a), _b = (b), _t = (tol) * (fabs(_b) > 1.0 ? fabs(_b) : 1.0);              \
    if (!(fabs(_a - _b) <= _t)) fail_msg("%s = %.10g, expected %.10g (tol %g)", #a, _a, _b, _t); \
  } while (0)
/* relative: |a - b| <= tol * |b| */
#define assert_rel(a, b, tol)                                                               \
  do {                                                                                      \
    double _a = (a), _b = (b);                                                              \
    if (!(fabs(_a - _b) <= (tol) * fabs(_b)))                                               \
      fail_msg("%s = %.10g, expected %.10g (rel tol %g)", #a, _a, _b, (double)(tol));       \
  } while (0)

static void test_param_decays(void **st) {
  (void)st;
  assert_true(tn_param_decays("model.layers.0.self_attn.q_proj.weight", 2));
  assert_true(tn_param_decays("model.embed_tokens.weight", 2));
  assert_true(tn_param_decays("base_model.model.model.layers.3.mlp.up_proj.lora_A.weight", 2));
  assert_false(tn_param_decays("model.layers.0.input_layernorm.weight", 1));
  assert_false(tn_param_decays("model.norm.weight", 1));
  assert_false(tn_param_decays("model.layers.0.self_attn.q_proj.bias", 1));
  assert_false(tn_param_decays("model.layers.0.self_attn.q_norm.weight", 1));
  /* names decide even for a 2-D tensor; ndim decides even for an odd name */
  assert_false(tn_param_decays("some.bias_matrix", 2));
  assert_false(tn_param_decays("x.layernorm.scale", 2));
  assert_false(tn_param_decays("model.layers.0.mlp.gate_proj.weight", 1));
}

/* ---- schedules: every expected number below is worked by hand ---- */
static void test_schedule_cosine(void **st) {
  (void)st;
  /* init 0, peak 1e-3, warmup 4, decay_steps 14 (total, optax), end 1e-4:
   * warmup: lr = 1e-3 * step/4; then T = 10 cosine steps, alpha = end/peak = 0.1,
   * lr = 1e-3 * (0.9 * 0.5 * (1 + cos(pi k / 10)) + 0.1), k = step - 4. */
  tn_schedule s = tn_schedule_make(TN_SCHED_COSINE, 1e-3, 4, 14);
  s.end_value = 1e-4;
  assert_int_equal(tn_schedule_check(&s), TN_OK);
  assert_close(tn_lr_at(&s, 0), 0.0, 1e-12);
  assert_rel(tn_lr_at(&s, 1), 2.5e-4, 1e-6);
  assert_rel(tn_lr_at(&s, 2), 5e-4, 1e-6);
  assert_rel(tn_lr_at(&s, 3), 7.5e-4, 1e-6);
  assert_rel(tn_lr_at(&s, 4), 1e-3, 1e-6);         /* peak exactly at step = warmup */
  /* k = 2: cos(pi/5) = (1 + sqrt 5)/4 */
  double c = 0.5 * (1.0 + (1.0 + sqrt(5.0)) / 4.0);
  assert_rel(tn_lr_at(&s, 6), 1e-3 * (0.9 * c + 0.1), 1e-6);
  assert_rel(tn_lr_at(&s, 9), 1e-3 * (0.9 * 0.5 + 0.1), 1e-6); /* k = 5: half way, 5.5e-4 */
  assert_rel(tn_lr_at(&s, 9), 5.5e-4, 1e-6);
  assert_rel(tn_lr_at(&s, 14), 1e-4, 1e-6);        /* end at step = decay_steps */
  assert_rel(tn_lr_at(&s, 15), 1e-4, 1e-6);        /* held after */
  assert_rel(tn_lr_at(&s, 1000000), 1e-4, 1e-6);
  /* exponent 2 at half way: 0.5^2 = 0.25 -> 1e-3 * (0.9 * 0.25 + 0.1) = 3.25e-4 */
  s.exponent = 2.0;
  assert_rel(tn_lr_at(&s, 9), 3.25e-4, 1e-6);
  /* non-zero init: 1e-4 + (1e-3 - 1e-4) * 1/4 = 3.25e-4 */
  s.exponent = 1.0;
  s.init_value = 1e-4;
  assert_rel(tn_lr_at(&s, 0), 1e-4, 1e-6);
  assert_rel(tn_lr_at(&s, 1), 3.25e-4, 1e-6);
  /* no warmup: peak at step 0, cosine over decay_steps = 10: half way at 5 */
  tn_schedule z = tn_schedule_make(TN_SCHED_COSINE, 2e-5, 0, 10);
  assert_rel(tn_lr_at(&z, 0), 2e-5, 1e-6);
  assert_rel(tn_lr_at(&z, 5), 1e-5, 1e-6);
  assert_close(tn_lr_at(&z, 10), 0.0, 1e-12);
  /* optax rejects decay_steps <= warmup_steps (decay_steps includes the warmup) */
  tn_schedule bad = tn_schedule_make(TN_SCHED_COSINE, 1e-3, 10, 10);
  assert_int_equal(tn_schedule_check(&bad), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "decay_steps"));
  bad = tn_schedule_make(TN_SCHED_COSINE, 1e-3, -1, 10);
  assert_int_equal(tn_schedule_check(&bad), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "warmup_steps"));
  bad = tn_schedule_make(TN_SCHED_COSINE, NAN, 1, 10);
  assert_int_equal(tn_schedule_check(&bad), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "peak_value"));
}

static void test_schedule_linear_constant(void **st) {
  (void)st;
  /* linear: warmup 2 to 1e-3, then down to 0 at step 12 (T = 10) */
  tn_schedule s = tn_schedule_make(TN_SCHED_LINEAR, 1e-3, 2, 12);
  assert_int_equal(tn_schedule_check(&s), TN_OK);
  assert_close(tn_lr_at(&s, 0), 0.0, 1e-12);
  assert_rel(tn_lr_at(&s, 1), 5e-4, 1e-6);
  assert_rel(tn_lr_at(&s, 2), 1e-3, 1e-6);
  assert_rel(tn_lr_at(&s, 3), 9e-4, 1e-6);
  assert_rel(tn_lr_at(&s, 7), 5e-4, 1e-6);
  assert_close(tn_lr_at(&s, 12), 0.0, 1e-12);
  assert_close(tn_lr_at(&s, 50), 0.0, 1e-12);
  s.end_value = 1e-4; /* step 7: 1e-4 + 0.5 * 9e-4 = 5.5e-4 */
  assert_rel(tn_lr_at(&s, 7), 5.5e-4, 1e-6);
  assert_rel(tn_lr_at(&s, 99), 1e-4, 1e-6);
  /* constant with warmup 3 */
  tn_schedule c = tn_schedule_make(TN_SCHED_CONSTANT, 2e-5, 3, 0);
  assert_int_equal(tn_schedule_check(&c), TN_OK);
  assert_close(tn_lr_at(&c, 0), 0.0, 1e-12);
  assert_rel(tn_lr_at(&c, 2), 2e-5 * 2.0 / 3.0, 1e-6);
  assert_rel(tn_lr_at(&c, 3), 2e-5, 1e-6);
  assert_rel(tn_lr_at(&c, 100000), 2e-5, 1e-6);
  c.warmup_steps = 0;
  assert_rel(tn_lr_at(&c, 0), 2e-5, 1e-6);
  /* names */
  tn_schedule_kind k;
  assert_int_equal(tn_schedule_kind_parse("cosine", &k), TN_OK);
  assert_int_equal(k, TN_SCHED_COSINE);
  assert_int_equal(tn_schedule_kind_parse("linear", &k), TN_OK);
  assert_int_equal(k, TN_SCHED_LINEAR);
  assert_int_equal(tn_schedule_kind_parse("constant", &k), TN_OK);
  assert_int_equal(k, TN_SCHED_CONSTANT);
  assert_int_equal(tn_schedule_kind_parse("cosin", &k), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "cosin"));
  assert_string_equal(tn_schedule_kind_name(TN_SCHED_LINEAR), "linear");
}

/* ---- clipping ---- */
static void test_clip(void **st) {
  (void)st;
  float g[2] = {3.0f, 4.0f};
  double norm = 0;
  assert_int_equal(tn_clip_grad_norm(g, 2, 10.0f, &norm), TN_OK);
  assert_rel(norm, 5.0, 1e-12);
  assert_true(g[0] == 3.0f && g[1] == 4.0f); /* under the bound: untouched */
  assert_int_equal(tn_clip_grad_norm(g, 2, 0.0f, &norm), TN_OK); /* 0: clipping off */
  assert_true(g[0] == 3.0f && g[1] == 4.0f);
  assert_int_equal(tn_clip_grad_norm(g, 2, 1.0f, &norm), TN_OK);
  assert_rel(norm, 5.0, 1e-12); /* pre-clip norm returned */
  assert_rel(g[0], 3.0 / (5.0 + 1e-6), 1e-7);
  assert_rel(g[1], 4.0 / (5.0 + 1e-6), 1e-7);
  assert_rel(tn_clip_coef(5.0, 1.0f), 1.0 / (5.0 + 1e-6), 1e-7);
  assert_true(tn_clip_coef(0.5, 1.0f) == 1.0f);

  /* a big buffer (parallel path): 1e6 values of 0.5 -> norm 0.5 * 1000 = 500 exactly */
  size_t n = 1000000;
  float *b = tn_alloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++) b[i] = 0.5f;
  assert_int_equal(tn_grad_norm(b, n, &norm), TN_OK);
  assert_true(norm == 500.0);
  assert_int_equal(tn_clip_grad_norm(b, n, 50.0f, &norm), TN_OK);
  float want = 0.5f * (float)(50.0 / (500.0 + 1e-6));
  for (size_t i = 0; i < n; i += 99991) assert_true(b[i] == want);
  assert_true(b[n - 1] == want);

  /* NaN / Inf: TN_ERR_NUMERIC, buffer left as it was, the tensor named */
  for (size_t i = 0; i < n; i++) b[i] = 0.25f;
  b[777777] = NAN;
  assert_int_equal(tn_clip_grad_norm(b, n, 1.0f, &norm), TN_ERR_NUMERIC);
  assert_true(isnan(norm));
  assert_true(b[0] == 0.25f);
  float g2[3] = {1, 2, 3};
  tn_param rows[2] = {{.name = "a.weight", .param = g2, .grad = g2, .n = 3},
                      {.name = "model.layers.1.mlp.down_proj.weight", .param = b, .grad = b, .n = n}};
  assert_int_equal(tn_params_grad_norm(rows, 2, &norm), TN_ERR_NUMERIC);
  assert_non_null(strstr(tn_last_error(), "model.layers.1.mlp.down_proj.weight"));
  b[777777] = INFINITY;
  assert_int_equal(tn_params_grad_norm(rows, 2, &norm), TN_ERR_NUMERIC);
  assert_true(isinf(norm));
  b[777777] = 0.25f;
  assert_int_equal(tn_params_grad_norm(rows, 2, &norm), TN_OK);
  assert_rel(norm, sqrt(1.0 + 4.0 + 9.0 + 0.0625 * (double)n), 1e-12);
  tn_free(b);
}

/* The norm does not depend on the number of threads (fixed chunking). */
static void test_norm_threads(void **st) {
  (void)st;
#ifdef _OPENMP
  size_t n = 3000017;
  float *b = tn_alloc(n * sizeof(float));
  tn_rng r;
  tn_rng_seed(&r, 7);
  for (size_t i = 0; i < n; i++) b[i] = tn_rng_normal(&r);
  int nt = omp_get_max_threads();
  double n1, n2, n3;
  omp_set_num_threads(1);
  assert_int_equal(tn_grad_norm(b, n, &n1), TN_OK);
  omp_set_num_threads(2);
  assert_int_equal(tn_grad_norm(b, n, &n2), TN_OK);
  omp_set_num_threads(3);
  assert_int_equal(tn_grad_norm(b, n, &n3), TN_OK);
  omp_set_num_threads(nt);
  assert_true(n1 == n2 && n2 == n3);
  assert_rel(n1, sqrt((double)n), 0.01); /* E[g^2] = 1 */
  tn_free(b);
#else
  skip();
#endif
}

/* ---- AdamW ---- */
/* First step in closed form: m_hat = g, v_hat = g^2, so
 * p1 = p0 (1 - lr wd) - lr g / (|g| + eps)  (decay rows), p0 - lr g/(|g|+eps) otherwise. */
static void test_adamw_first_step(void **st) {
  (void)st;
  float w[4] = {0.5f, -1.0f, 2.0f, 0.0f}, gw[4] = {0.1f, -0.2f, 1e-3f, 3.0f};
  float nb[2] = {1.0f, -2.0f}, gb[2] = {-0.5f, 0.0f};
  float w0[4], nb0[2];
  memcpy(w0, w, sizeof w);
  memcpy(nb0, nb, sizeof nb);
  tn_param rows[2] = {{.name = "x.weight", .param = w, .grad = gw, .n = 4, .decay = true},
                      {.name = "x.norm.weight", .param = nb, .grad = gb, .n = 2, .decay = false}};
  tn_adamw_config cfg = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
  tn_adamw opt;
  assert_int_equal(tn_adamw_init(&opt, rows, 2, &cfg), TN_OK);
  assert_int_equal(opt.total, 6);
  assert_int_equal(tn_adamw_state_bytes(&opt), 6 * 2 * sizeof(float));
  const double lr = 0.01;
  tn_adamw_step(&opt, (float)lr, 1.0f);
  assert_int_equal(opt.step, 1);
  for (int i = 0; i < 4; i++) {
    double g = gw[i];
    double want = w0[i] * (1.0 - lr * 0.1) - lr * g / (fabs(g) + 1e-8);
    assert_close(w[i], want, 1e-6);
    assert_close(opt.m[i], 0.1 * g, 1e-6); /* f32: 1 - 0.9, 1 - 0.95 are not exact */
    assert_close(opt.v[i], 0.05 * g * g, 1e-6);
  }
  assert_close(nb[0], nb0[0] + lr, 1e-6); /* g = -0.5: no decay, moves by +lr */
  assert_close(nb[1], nb0[1], 1e-9);     /* g = 0: m = v = 0, no update */
  /* grad_scale multiplies the gradients the update reads, not the buffer */
  float *m1, *v1;
  assert_int_equal(tn_adamw_row_state(&opt, 1, &m1, &v1), 2);
  assert_ptr_equal(m1, opt.m + 4);
  assert_ptr_equal(v1, opt.v + 4);
  assert_int_equal(tn_adamw_find(&opt, "x.norm.weight"), 1);
  assert_int_equal(tn_adamw_find(&opt, "nope"), -1);
  tn_adamw_step(&opt, 0.0f, 0.5f);  /* lr 0: only the moments move */
  assert_close(opt.m[0], 0.9 * 0.1 * gw[0] + 0.1 * 0.5 * gw[0], 1e-7);
  assert_true(gw[0] == 0.1f);
  assert_int_equal(opt.step, 2);

  /* state round trip and size check */
  float ms[6], vs[6];
  memcpy(ms, opt.m, sizeof ms);
  memcpy(vs, opt.v, sizeof vs);
  memset(opt.m, 0, sizeof ms);
  assert_int_equal(tn_adamw_load_state(&opt, ms, vs, 6, 2), TN_OK);
  assert_memory_equal(opt.m, ms, sizeof ms);
  assert_int_equal(tn_adamw_load_state(&opt, ms, vs, 5, 2), TN_ERR_FORMAT);
  assert_non_null(strstr(tn_last_error(), "5"));
  tn_adamw_free(&opt);

  /* bad tables and configs */
  tn_param nogr = {.name = "y.weight", .param = w, .grad = NULL, .n = 4, .decay = true};
  assert_int_equal(tn_adamw_init(&opt, &nogr, 1, &cfg), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "y.weight"));
  cfg.beta2 = 1.0f;
  assert_int_equal(tn_adamw_init(&opt, rows, 2, &cfg), TN_ERR_ARG);
}

/* The parallel split over rows covers every element once, and the AVX-512 and
 * portable loops agree: 1 thread, 2 threads, and 2 threads on the portable loop
 * give bit-identical parameters and moments on a table of many uneven rows
 * (some empty, lengths not multiples of 16). */
static void test_adamw_threads(void **st) {
  (void)st;
#ifdef _OPENMP
  enum { R = 37, K = 3 };
  tn_param rows[K][R];
  size_t total = 0, sizes[R];
  for (int i = 0; i < R; i++) total += sizes[i] = (i % 5 == 3) ? 0 : (size_t)(1000 + 997 * i);
  float *buf[K], *grad = tn_alloc(total * sizeof(float));
  tn_rng r;
  tn_rng_seed(&r, 11);
  for (size_t i = 0; i < total; i++) grad[i] = tn_rng_normal(&r);
  tn_adamw opt[K];
  tn_adamw_config cfg = tn_adamw_defaults();
  cfg.weight_decay = 0.1f;
  int nt = omp_get_max_threads();
  for (int k = 0; k < K; k++) {
    buf[k] = tn_alloc(total * sizeof(float));
    tn_rng_seed(&r, 5);
    for (size_t i = 0; i < total; i++) buf[k][i] = tn_rng_normal(&r);
    size_t off = 0;
    for (int i = 0; i < R; i++) {
      rows[k][i] = (tn_param){.name = "w", .param = buf[k] + off, .grad = grad + off,
                              .n = sizes[i], .decay = i % 2 == 0};
      off += sizes[i];
    }
    assert_int_equal(tn_adamw_init(&opt[k], rows[k], R, &cfg), TN_OK);
    omp_set_num_threads(k == 0 ? 1 : 2);
    tn_adamw_set_portable(k == 2);
    for (int s = 0; s < 3; s++) tn_adamw_step(&opt[k], 1e-2f, 0.7f);
  }
  tn_adamw_set_portable(false);
  omp_set_num_threads(nt);
  assert_true(total >= 65536); /* large enough for the parallel region */
  for (int k = 1; k < K; k++) {
    assert_memory_equal(buf[0], buf[k], total * sizeof(float));
    assert_memory_equal(opt[0].m, opt[k].m, total * sizeof(float));
    assert_memory_equal(opt[0].v, opt[k].v, total * sizeof(float));
  }
  for (size_t i = 0; i < total; i++)
    if (!(opt[1].v[i] > 0.0f)) fail_msg("element %zu not updated", i);
  for (int k = 0; k < K; k++) {
    tn_adamw_free(&opt[k]);
    tn_free(buf[k]);
  }
  tn_free(grad);
#else
  skip();
#endif
}

/* ---- the trajectory for tests/optim/check_adamw.py ----
 * optim_io/meta.json: config, tensor names/shapes/decay flags, schedule tables.
 * optim_io/in.f32:  initial params (all rows), then per step the flat gradient.
 * optim_io/out.f32: per step lr (f32), then params after the step (all rows);
 *                   then final m, then final v.
 * optim_io/norm.f64: per step the pre-clip norm (f64).
 * optim_io/lr.f32:  per schedule config in meta.json, lr at steps 0..NLR-1. */
enum { NSTEP = 10, NLR = 40 };

static void test_trajectory_for_torch(void **st) {
  (void)st;
  static const struct { const char *name; int shape[2]; } T[] = {
      {"model.embed_tokens.weight", {50, 32}},
      {"model.layers.0.input_layernorm.weight", {32, 0}},
      {"model.layers.0.self_attn.q_proj.weight", {64, 32}},
      {"model.layers.0.self_attn.q_proj.bias", {64, 0}},
      {"model.layers.0.mlp.down_proj.weight", {32, 80}},
      {"model.norm.weight", {32, 0}},
      {"lm_head.weight", {1024, 64}},
  };
  enum { NT = sizeof T / sizeof T[0] };
  /* target global norms: some steps above max_norm = 1 (clipped), some below */
  static const double target[NSTEP] = {0.5, 2.0, 0.8, 3.0, 0.4, 1.5, 0.9, 5.0, 0.2, 2.0};
  const float max_norm = 1.0f;
  tn_adamw_config cfg = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-6f, .weight_decay = 0.1f};
  tn_schedule sch = tn_schedule_make(TN_SCHED_COSINE, 1e-2, 3, 10);
  sch.init_value = 1e-3;
  sch.end_value = 1e-3;
  assert_int_equal(tn_schedule_check(&sch), TN_OK);

  tn_param rows[NT];
  size_t n[NT], total = 0;
  for (int i = 0; i < NT; i++) total += n[i] = (size_t)T[i].shape[0] * (T[i].shape[1] ? T[i].shape[1] : 1);
  float *grad = tn_alloc(total * sizeof(float)); /* the flat gradient buffer */
  float *init = tn_alloc(total * sizeof(float));
  tn_rng r;
  tn_rng_seed(&r, 1234);
  size_t off = 0;
  for (int i = 0; i < NT; i++) {
    int ndim = T[i].shape[1] ? 2 : 1;
    rows[i] = (tn_param){.name = T[i].name, .param = malloc(n[i] * sizeof(float)),
                         .grad = grad + off, .n = n[i], .decay = tn_param_decays(T[i].name, ndim)};
    for (size_t j = 0; j < n[i]; j++)
      rows[i].param[j] = ndim == 1 ? 1.0f + 0.1f * tn_rng_normal(&r) : 0.5f * tn_rng_normal(&r);
    memcpy(init + off, rows[i].param, n[i] * sizeof(float));
    off += n[i];
  }
  assert_true(tn_mkdirs("optim_io") == TN_OK);
  FILE *fin = fopen("optim_io/in.f32", "wb"), *fout = fopen("optim_io/out.f32", "wb"),
       *fnorm = fopen("optim_io/norm.f64", "wb");
  assert_non_null(fin);
  assert_non_null(fout);
  assert_non_null(fnorm);
  fwrite(init, sizeof(float), total, fin);

  tn_adamw opt;
  assert_int_equal(tn_adamw_init(&opt, rows, NT, &cfg), TN_OK);
  int nclipped = 0;
  for (int s = 0; s < NSTEP; s++) {
    float sd = (float)(target[s] / sqrt((double)total));
    for (size_t j = 0; j < total; j++) grad[j] = sd * tn_rng_normal(&r);
    fwrite(grad, sizeof(float), total, fin);
    float lr = tn_lr_at(&sch, opt.step);
    double norm;
    assert_int_equal(tn_params_grad_norm(rows, NT, &norm), TN_OK);
    float coef = tn_clip_coef(norm, max_norm);
    nclipped += coef < 1.0f;
    tn_adamw_step(&opt, lr, coef);
    fwrite(&lr, sizeof lr, 1, fout);
    for (int i = 0; i < NT; i++) fwrite(rows[i].param, sizeof(float), n[i], fout);
    fwrite(&norm, sizeof norm, 1, fnorm);
  }
  assert_true(nclipped > 0 && nclipped < NSTEP);
  fwrite(opt.m, sizeof(float), total, fout);
  fwrite(opt.v, sizeof(float), total, fout);
  fclose(fin);
  fclose(fout);
  fclose(fnorm);

  /* schedule tables for the optax transcription */
  tn_schedule tab[6] = {
      sch,
      tn_schedule_make(TN_SCHED_COSINE, 3e-4, 0, 25),
      tn_schedule_make(TN_SCHED_COSINE, 1e-3, 7, 30),
      tn_schedule_make(TN_SCHED_LINEAR, 5e-4, 4, 20),
      tn_schedule_make(TN_SCHED_CONSTANT, 2e-5, 5, 0),
      tn_schedule_make(TN_SCHED_LINEAR, 1e-3, 0, 33),
  };
  tab[1].end_value = 3e-5;
  tab[2].init_value = 1e-5, tab[2].end_value = 2e-4, tab[2].exponent = 2.5;
  tab[3].end_value = 1e-5;
  tab[5].init_value = 7e-4;
  FILE *flr = fopen("optim_io/lr.f32", "wb");
  assert_non_null(flr);
  for (int k = 0; k < 6; k++) {
    assert_int_equal(tn_schedule_check(&tab[k]), TN_OK);
    for (long s = 0; s < NLR; s++) {
      float v = tn_lr_at(&tab[k], s);
      fwrite(&v, sizeof v, 1, flr);
    }
  }
  fclose(flr);

  FILE *fm = fopen("optim_io/meta.json", "w");
  assert_non_null(fm);
  fprintf(fm, "{\n  \"steps\": %d, \"nlr\": %d, \"total\": %zu,\n", NSTEP, NLR, total);
  fprintf(fm, "  \"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, \"weight_decay\": %.9g,\n",
          cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
  fprintf(fm, "  \"max_norm\": %.9g,\n  \"params\": [\n", max_norm);
  for (int i = 0; i < NT; i++) {
    if (T[i].shape[1])
      fprintf(fm, "    {\"name\": \"%s\", \"shape\": [%d, %d], \"decay\": %s}%s\n", T[i].name,
              T[i].shape[0], T[i].shape[1], rows[i].decay ? "true" : "false", i + 1 < NT ? "," : "");
    else
      fprintf(fm, "    {\"name\": \"%s\", \"shape\": [%d], \"decay\": %s}%s\n", T[i].name,
              T[i].shape[0], rows[i].decay ? "true" : "false", i + 1 < NT ? "," : "");
  }
  fprintf(fm, "  ],\n  \"schedules\": [\n");
  for (int k = 0; k < 6; k++)
    fprintf(fm,
            "    {\"kind\": \"%s\", \"init_value\": %.17g, \"peak_value\": %.17g, \"end_value\": "
            "%.17g, \"warmup_steps\": %ld, \"decay_steps\": %ld, \"exponent\": %.17g}%s\n",
            tn_schedule_kind_name(tab[k].kind), tab[k].init_value, tab[k].peak_value,
            tab[k].end_value, tab[k].warmup_steps, tab[k].decay_steps, tab[k].exponent,
            k + 1 < 6 ? "," : "");
  fprintf(fm, "  ]\n}\n");
  fclose(fm);
  tn_adamw_free(&opt);
  for (int i = 0; i < NT; i++) free(rows[i].param);
  tn_free(grad);
  tn_free(init);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_param_decays),
      cmocka_unit_test(test_schedule_cosine),
      cmocka_unit_test(test_schedule_linear_constant),
      cmocka_unit_test(test_clip),
      cmocka_unit_test(test_norm_threads),
      cmocka_unit_test(test_adamw_first_step),
      cmocka_unit_test(test_adamw_threads),
      cmocka_unit_test(test_trajectory_for_torch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
