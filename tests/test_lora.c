/* test_lora.c - LoRA adapters (issue 4), apart from the gradients vs PyTorch (lora.cmake):
 * - dropout in the LoRA path: mask statistics, determinism per counter, off when not
 *   training, and forward/backward consistency by central differences (exact for a
 *   function bilinear in A, B and linear in x, up to f32 rounding);
 * - creation: PEFT's init, target matching (list, regex, all-linear), option errors, the
 *   optimizer table, B = 0 leaves the logits bit-identical;
 * - the three-ways check: base+adapter in memory, adapter saved and reloaded, merged
 *   checkpoint written by `tunic merge` -> same logits to 1e-5; enable/disable and
 *   switching between two loaded adapters; `tunic generate --adapter` follows the adapter;
 * - the saved files read by an independent Python reader (tests/lora/check_peft_layout.py):
 *   names, shapes, config fields, PEFT's init, and logits vs the PyTorch reference;
 * - bad adapters: shape mismatch, missing tensor, use_dora, bias, modules_to_save, unknown
 *   tensors, untargeted modules, other peft types, .bin only -> errors naming file/tensor;
 * - a few LoRA-only AdamW steps lower the loss and leave the base weights untouched. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <cmocka.h>
#include "model/model.h"
#include "train/lora.h"
#include "train/optim.h"
#include "train/train.h"

static char g_tmp[256];

static const char *tunic_bin(void) {
  const char *t = getenv("TUNIC");
  return t ? t : "tunic";
}

static char *path2(const char *a, const char *b) { return tn_path_join(a, b); }

static void make_model(const char *dir, const char *arch, uint64_t seed) {
  tn_init_opts o = {.arch = arch, .size = "tiny", .dtype = "f32", .vocab = 128, .shards = 1, .seed = seed};
  assert_int_equal(tn_model_init_dir(dir, &o), TN_OK);
}

static tn_model *load_model(const char *dir) {
  tn_model *m;
  tn_status s = tn_model_load(&m, dir);
  if (s != TN_OK) fail_msg("%s", tn_last_error());
  return m;
}

/* logits (T, V) of one sequence */
static float *logits_of(tn_model *m, const int *ids, int T) {
  tn_state *st;
  assert_int_equal(tn_state_create(&st, m, 1, T, T, false), TN_OK);
  int *pos = malloc(sizeof(int) * T), *seq = calloc(T, sizeof(int));
  for (int i = 0; i < T; i++) pos[i] = i;
  float *l = malloc(sizeof(float) * (size_t)T * m->cfg.V);
  assert_int_equal(tn_forward(m, st, T, ids, pos, seq, l, NULL, T), TN_OK);
  free(pos);
  free(seq);
  tn_state_free(st);
  return l;
}

static double maxdiff(const float *a, const float *b, size_t n) {
  double d = 0;
  for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
  return d;
}

static int run(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
  return rc;
}

/* ---- dropout in the kernel ---- */
static void test_dropout_mask(void **state) {
  (void)state;
  enum { N = 32, C = 64 };
  static float W[C * C], A[C * C], B[C * C], x[N * C], y[N * C], y2[N * C];
  memset(W, 0, sizeof W);
  for (int i = 0; i < C; i++) A[i * C + i] = B[i * C + i] = 1.0f; /* y = dropout(x) exactly */
  for (int i = 0; i < N * C; i++) x[i] = 1.0f;
  tn_lora lo = {.r = C, .scale = 1.0f, .A = A, .B = B, .enabled = true, .dropout = 0.3f, .seed = 99, .counter = 7,
                .train = true};
  tn_mat M = {.out = C, .in = C, .dtype = TN_F32, .w = W, .lora = &lo};
  tn_linear_forward(y, x, &M, NULL, N);
  int zeros = 0;
  const float kept = 1.0f / (1.0f - 0.3f);
  for (int i = 0; i < N * C; i++) {
    assert_true(y[i] == 0.0f || fabsf(y[i] - kept) < 1e-6f);
    zeros += y[i] == 0.0f;
  }
  /* 2048 Bernoulli(0.3): sd 0.0101; 5 sd */
  double frac = (double)zeros / (N * C);
  assert_true(fabs(frac - 0.3) < 0.05);
  tn_linear_forward(y2, x, &M, NULL, N);
  assert_memory_equal(y, y2, sizeof y);           /* same counter: same mask */
  lo.counter = 8;
  tn_linear_forward(y2, x, &M, NULL, N);
  assert_true(memcmp(y, y2, sizeof y) != 0);      /* next counter: another mask */
  lo.seed = 100, lo.counter = 7;
  tn_linear_forward(y2, x, &M, NULL, N);
  assert_true(memcmp(y, y2, sizeof y) != 0);      /* another adapter: another mask */
  lo.train = false;
  tn_linear_forward(y2, x, &M, NULL, N);
  for (int i = 0; i < N * C; i++) assert_true(y2[i] == 1.0f); /* eval: no dropout */
}

static double probe(const tn_mat *M, const float *x, const float *g, float *y, int N) {
  tn_linear_forward(y, x, M, NULL, N);
  double s = 0;
  for (int i = 0; i < N * M->out; i++) s += (double)y[i] * g[i];
  return s;
}

static void test_dropout_grads_fd(void **state) {
  (void)state;
  enum { N = 5, IN = 7, OUT = 6, R = 3 };
  float W[OUT * IN], A[R * IN], B[OUT * R], x[N * IN], g[N * OUT], y[N * OUT];
  float dA[R * IN] = {0}, dB[OUT * R] = {0}, dx[N * IN] = {0}, dx0[N * IN] = {0};
  tn_rng rng;
  tn_rng_seed(&rng, 4);
  for (int i = 0; i < OUT * IN; i++) W[i] = tn_rng_normal(&rng) * 0.5f;
  for (int i = 0; i < R * IN; i++) A[i] = tn_rng_normal(&rng);
  for (int i = 0; i < OUT * R; i++) B[i] = tn_rng_normal(&rng);
  for (int i = 0; i < N * IN; i++) x[i] = tn_rng_normal(&rng);
  for (int i = 0; i < N * OUT; i++) g[i] = tn_rng_normal(&rng);
  tn_lora lo = {.r = R, .scale = 0.8f, .A = A, .B = B, .dA = dA, .dB = dB, .enabled = true, .dropout = 0.4f,
                .seed = 5, .counter = 11, .train = true};
  tn_mat M = {.out = OUT, .in = IN, .dtype = TN_F32, .w = W, .lora = &lo};
  tn_linear_forward(y, x, &M, NULL, N);
  tn_linear_backward(dx, NULL, NULL, g, x, &M, N);
  const float eps = 1e-2f;
  struct { float *v, *grad; int n; const char *name; } ps[] = {{A, dA, R * IN, "A"}, {B, dB, OUT * R, "B"},
                                                              {x, dx, N * IN, "x"}};
  for (int p = 0; p < 3; p++)
    for (int i = 0; i < ps[p].n; i++) {
      float keep = ps[p].v[i];
      ps[p].v[i] = keep + eps;
      double lp = probe(&M, x, g, y, N);
      ps[p].v[i] = keep - eps;
      double lm = probe(&M, x, g, y, N);
      ps[p].v[i] = keep;
      double fd = (lp - lm) / (2 * eps);
      if (fabs(fd - ps[p].grad[i]) > 2e-3 * (1 + fabs(fd)))
        fail_msg("d%s[%d]: analytic %g, central difference %g", ps[p].name, i, ps[p].grad[i], fd);
    }
  /* the mask matters: without dropout dx differs; some A columns see no input at all */
  lo.train = false;
  lo.dA = lo.dB = NULL;
  tn_linear_backward(dx0, NULL, NULL, g, x, &M, N);
  assert_true(maxdiff(dx, dx0, N * IN) > 1e-3);
}

/* ---- creation, targets, options ---- */
static void test_create_targets(void **state) {
  (void)state;
  char *dir = path2(g_tmp, "m_create");
  make_model(dir, "llama", 1);
  tn_model *m = load_model(dir);
  const int L = m->cfg.L;
  tn_lora_opts o;
  tn_lora_opts_default(&o);
  o.rank = 4;
  o.seed = 3;
  tn_lora_set *s;
  assert_int_equal(tn_lora_create(m, &o, &s), TN_OK);
  assert_int_equal(tn_lora_alloc_grads(s), TN_OK);
  assert_int_equal(s->n, 4 * L);
  assert_false(tn_lora_is_active(s));
  assert_int_equal(s->n_params, 2 * s->n);
  size_t nparam = 0;
  for (int i = 0; i < s->n; i++) {
    tn_lora_module *md = &s->mods[i];
    const float bound = 1.0f / sqrtf((float)md->mat->in);
    double ss = 0;
    for (int q = 0; q < md->lora.r * md->mat->in; q++) {
      assert_true(fabsf(md->lora.A[q]) <= bound);
      ss += (double)md->lora.A[q] * md->lora.A[q];
    }
    double sd = sqrt(ss / (md->lora.r * md->mat->in)); /* U(-b, b): b / sqrt(3) */
    assert_true(fabs(sd / (bound / sqrt(3.0)) - 1) < 0.15);
    for (int q = 0; q < md->mat->out * md->lora.r; q++) assert_true(md->lora.B[q] == 0.0f);
    assert_true(fabsf(md->lora.scale - 16.0f / 4) < 1e-7f);
    /* optimizer rows: PEFT names, decay, slices of the one gradient buffer */
    const tn_param *pa = &s->params[2 * i], *pb = &s->params[2 * i + 1];
    assert_string_equal(pa->name, md->name_a);
    assert_true(strstr(pb->name, ".lora_B.weight") != NULL);
    assert_true(!strncmp(pa->name, "base_model.model.model.layers.", 30));
    assert_true(pa->decay && pb->decay);
    assert_true(pa->grad >= s->gflat && pb->grad + pb->n <= s->gflat + s->n_floats);
    assert_true(pa->param >= s->flat && pb->param + pb->n <= s->flat + s->n_floats);
    nparam += pa->n + pb->n;
  }
  assert_true(nparam <= s->n_floats);
  assert_string_equal(s->mods[0].name_a, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
  /* B = 0: logits bit-identical to the base model's */
  int ids[6] = {1, 9, 4, 77, 3, 100};
  float *base = logits_of(m, ids, 6);
  tn_lora_activate(s);
  assert_true(tn_lora_is_active(s));
  float *with = logits_of(m, ids, 6);
  assert_memory_equal(base, with, sizeof(float) * 6 * m->cfg.V);
  free(with);
  tn_lora_free(s);
  assert_null(m->w.layers[0].wq.lora);
  free(base);
  /* targets */
  struct { const char *t; int n; } cases[] = {{"all-linear", 7 * L}, {"mlp.down_proj", L},
                                              {"q_proj, v_proj", 2 * L}, {".*\\.layers\\.1\\..*_proj", 7},
                                              {"model\\.layers\\.0\\.self_attn\\.(k|v)_proj", 2}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    o.targets = cases[i].t;
    assert_int_equal(tn_lora_create(m, &o, &s), TN_OK);
    assert_int_equal(tn_lora_alloc_grads(s), TN_OK);
    if (s->n != cases[i].n) fail_msg("targets '%s': %d modules, expected %d", cases[i].t, s->n, cases[i].n);
    tn_lora_free(s);
  }
  /* errors name the option */
  o.targets = "q_proj,foo_proj";
  assert_int_equal(tn_lora_create(m, &o, &s), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "foo_proj"));
  o.targets = "(q_proj";
  assert_int_equal(tn_lora_create(m, &o, &s), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "--lora-targets"));
  o.targets = "lm_head|embed_tokens";
  assert_int_equal(tn_lora_create(m, &o, &s), TN_ERR_ARG);
  o.targets = NULL;
  o.rank = 0;
  assert_int_equal(tn_lora_create(m, &o, &s), TN_ERR_ARG);
  o.rank = 4;
  o.dropout = 1.0f;
  assert_int_equal(tn_lora_create(m, &o, &s), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "--lora-dropout"));
  o.dropout = 0;
  o.rslora = true;
  assert_int_equal(tn_lora_create(m, &o, &s), TN_OK);
  assert_int_equal(tn_lora_alloc_grads(s), TN_OK);
  assert_true(fabsf(s->mods[0].lora.scale - 16.0f / 2.0f) < 1e-6f); /* alpha / sqrt(4) */
  tn_lora_free(s);
  tn_model_free(m);
  free(dir);
}

static void randomize_b(tn_lora_set *s, uint64_t seed, float sd) {
  tn_rng r;
  tn_rng_seed(&r, seed);
  for (int i = 0; i < s->n; i++) {
    tn_lora_module *md = &s->mods[i];
    for (int q = 0; q < md->mat->out * md->lora.r; q++) md->lora.B[q] = tn_rng_normal(&r) * sd;
  }
}

/* ---- the three ways, switching, CLI ---- */
static void test_three_ways(void **state) {
  (void)state;
  char *mdir = path2(g_tmp, "m3"), *ad = path2(g_tmp, "ad3"), *fresh = path2(g_tmp, "ad3_fresh"),
       *merged = path2(g_tmp, "merged3"), *adb = path2(g_tmp, "ad3_b");
  make_model(mdir, "qwen3", 2);
  const int ids[12] = {5, 17, 3, 99, 42, 7, 7, 64, 1, 2, 120, 33};
  const int T = 12;
  tn_model *m = load_model(mdir);
  const size_t NV = (size_t)T * m->cfg.V;
  float *base = logits_of(m, ids, T);
  tn_lora_opts o;
  tn_lora_opts_default(&o);
  o.rank = 4;
  o.alpha = 8;
  o.dropout = 0.05f;
  o.targets = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";
  o.seed = 7;
  tn_lora_set *s;
  assert_int_equal(tn_lora_attach(m, &o, &s), TN_OK);
  assert_int_equal(tn_lora_alloc_grads(s), TN_OK);
  assert_int_equal(tn_lora_save(s, fresh), TN_OK);
  randomize_b(s, 8, 0.05f);
  float *l1 = logits_of(m, ids, T);                 /* 1: base + adapter in memory */
  double moved = maxdiff(l1, base, NV);
  assert_true(moved > 1e-3);                        /* the adapter changes the logits */
  assert_int_equal(tn_lora_save(s, ad), TN_OK);
  tn_lora_enable(s, false);                         /* reference policy: base exactly */
  float *off = logits_of(m, ids, T);
  assert_memory_equal(off, base, NV * sizeof(float));
  free(off);
  tn_lora_enable(s, true);

  tn_model *m2 = load_model(mdir);                  /* 2: reloaded */
  tn_lora_set *s2, *sb;
  assert_int_equal(tn_lora_load(m2, ad, "a", &s2), TN_OK);
  assert_int_equal(s2->n, s->n);
  assert_true(s2->dropout == 0.05f && s2->rank == 4 && s2->alpha == 8.0f);
  /* resuming: the run's seed gives the reloaded set the created set's dropout masks */
  tn_lora_dropout_seed(s2, 7);
  for (int i = 0; i < s->n; i++) assert_true(s2->mods[i].lora.seed == s->mods[i].lora.seed);
  assert_true(s->mods[0].lora.seed != s->mods[1].lora.seed);
  tn_lora_activate(s2);
  float *l2 = logits_of(m2, ids, T);
  double d12 = maxdiff(l1, l2, NV);
  /* a second adapter on the same model: switch back and forth */
  o.targets = "v_proj";
  o.seed = 9;
  assert_int_equal(tn_lora_create(m, &o, &sb), TN_OK);
  assert_int_equal(tn_lora_alloc_grads(sb), TN_OK);
  randomize_b(sb, 10, 0.1f);
  assert_int_equal(tn_lora_save(sb, adb), TN_OK);
  tn_lora_free(sb);
  tn_lora_set *s2b;
  assert_int_equal(tn_lora_load(m2, adb, "b", &s2b), TN_OK);
  tn_lora_activate(s2b);
  assert_false(tn_lora_is_active(s2));
  float *lb = logits_of(m2, ids, T);
  assert_true(maxdiff(lb, l2, NV) > 1e-4 && maxdiff(lb, base, NV) > 1e-4);
  tn_lora_activate(s2);
  float *l2again = logits_of(m2, ids, T);
  assert_memory_equal(l2again, l2, NV * sizeof(float));
  tn_lora_deactivate(s2);
  float *l2off = logits_of(m2, ids, T);
  assert_memory_equal(l2off, base, NV * sizeof(float));

  /* 3: merged by the CLI, loaded as a plain checkpoint */
  assert_int_equal(run("%s merge --model %s --adapter %s --out %s 2>/dev/null", tunic_bin(), mdir, ad, merged), 0);
  tn_model *m3 = load_model(merged);
  float *l3 = logits_of(m3, ids, T);
  double d13 = maxdiff(l1, l3, NV);
  fprintf(stderr, "three ways: adapter moved logits by %.3g; |in memory - reloaded| %.3g, |in memory - merged| %.3g\n",
          moved, d12, d13);
  assert_true(d12 <= 1e-5);
  assert_true(d13 <= 1e-5);
  /* merging in the library: same weights as the CLI's, and a second merge is refused */
  assert_int_equal(tn_lora_merge(s2), TN_OK);
  assert_true(maxdiff(m2->owned, m3->owned, m2->n_floats) == 0.0);
  assert_int_equal(tn_lora_merge(s2), TN_ERR_ARG);

  /* the files, read by the independent Python reader; logits of `tunic logits --adapter`
   * against the PyTorch reference applying the adapter PEFT's way */
  const char *src = getenv("TN_SRC");
  assert_non_null(src);
  char *lj = path2(g_tmp, "l3.json");
  assert_int_equal(run("%s logits --model %s --adapter %s --ids 5,17,3,99,42,7,7,64,1,2,120,33 --out %s", tunic_bin(),
                       mdir, ad, lj), 0);
  const char *expect = "{\\\"r\\\": 4, \\\"lora_alpha\\\": 8, \\\"lora_dropout\\\": 0.05, \\\"use_rslora\\\": false, "
                       "\\\"target_modules\\\": [\\\"q_proj\\\",\\\"k_proj\\\",\\\"v_proj\\\",\\\"o_proj\\\","
                       "\\\"gate_proj\\\",\\\"up_proj\\\",\\\"down_proj\\\"]}";
  assert_int_equal(run("/usr/bin/python3 %s/tests/lora/check_peft_layout.py --adapter %s --model %s --expect \"%s\" "
                       "--ids 5,17,3,99,42,7,7,64,1,2,120,33 --logits %s", src, ad, mdir, expect, lj), 0);
  assert_int_equal(run("/usr/bin/python3 %s/tests/lora/check_peft_layout.py --adapter %s --model %s --expect \"%s\" "
                       "--fresh", src, fresh, mdir, expect), 0);
  /* tunic generate --adapter: greedy continuation follows the adapted logits */
  int best = 0;
  const float *last = l1 + (size_t)(T - 1) * m->cfg.V;
  for (int v = 1; v < m->cfg.V; v++) best = last[v] > last[best] ? v : best;
  char *gout = path2(g_tmp, "gen.txt");
  assert_int_equal(run("%s generate --model %s --adapter %s --ids 5,17,3,99,42,7,7,64,1,2,120,33 --max-new-tokens 1 "
                       "--stop-ids 127 > %s", tunic_bin(), mdir, ad, gout), 0);
  char *gtext;
  size_t glen;
  assert_int_equal(tn_read_file(gout, &gtext, &glen), TN_OK);
  int tok = -1;
  assert_int_equal(sscanf(gtext, "[0.0] %d", &tok), 1);
  assert_int_equal(tok, best);
  free(gtext);
  free(gout);
  free(lj);
  free(base); free(l1); free(l2); free(lb); free(l2again); free(l2off); free(l3);
  tn_lora_free(s);
  tn_lora_free(s2);
  tn_lora_free(s2b);
  tn_model_free(m);
  tn_model_free(m2);
  tn_model_free(m3);
  free(mdir); free(ad); free(fresh); free(merged); free(adb);
}

/* ---- bad adapters ---- */
/* Copy adapter `src` to `dst`, editing the config (edit_key = JSON value, or NULL) and the
 * tensors (drop the tensor named drop, reshape the one named bad to (r+1, in), add extra). */
static void variant(const char *src, const char *dst, const char *key, const char *json_value, const char *drop,
                    const char *bad, const char *extra) {
  assert_int_equal(tn_mkdirs(dst), TN_OK);
  char *cs = path2(src, "adapter_config.json"), *cd = path2(dst, "adapter_config.json");
  char *text;
  size_t len;
  assert_int_equal(tn_read_file(cs, &text, &len), TN_OK);
  cJSON *j = cJSON_Parse(text);
  free(text);
  if (key) {
    cJSON_DeleteItemFromObject(j, key);
    cJSON_AddItemToObject(j, key, cJSON_Parse(json_value));
  }
  char *out = cJSON_Print(j);
  assert_int_equal(tn_write_file_atomic(cd, out, strlen(out)), TN_OK);
  free(out);
  cJSON_Delete(j);
  char *ws = path2(src, "adapter_model.safetensors"), *wd = path2(dst, "adapter_model.safetensors");
  tn_st_file f;
  assert_int_equal(tn_st_open(&f, ws), TN_OK);
  tn_st_entry *e = calloc(f.n + 1, sizeof *e);
  float *big = NULL;
  int n = 0;
  for (int i = 0; i < f.n; i++) {
    const tn_st_tensor *t = &f.tensors[i];
    if (drop && !strcmp(t->name, drop)) continue;
    e[n] = (tn_st_entry){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
    memcpy(e[n].shape, t->shape, sizeof t->shape);
    if (bad && !strcmp(t->name, bad)) {
      big = calloc((t->shape[0] + 1) * t->shape[1], sizeof(float));
      e[n].shape[0] += 1;
      e[n].data = big;
    }
    n++;
  }
  float one[4] = {1, 1, 1, 1};
  if (extra) e[n++] = (tn_st_entry){.name = extra, .dtype = TN_ST_F32, .ndim = 1, .shape = {4}, .data = one};
  assert_int_equal(tn_st_write(wd, e, n, NULL), TN_OK);
  tn_st_close(&f);
  free(e);
  free(big);
  free(cs); free(cd); free(ws); free(wd);
}

static void expect_load_error(tn_model *m, const char *dir, tn_status want, const char *must1, const char *must2) {
  tn_lora_set *s = (tn_lora_set *)1;
  tn_status got = tn_lora_load(m, dir, NULL, &s);
  if (got != want) fail_msg("%s: status %s, expected %s (%s)", dir, tn_status_name(got), tn_status_name(want), tn_last_error());
  assert_null(s);
  const char *msg = tn_last_error();
  if (must1 && !strstr(msg, must1)) fail_msg("message lacks '%s': %s", must1, msg);
  if (must2 && !strstr(msg, must2)) fail_msg("message lacks '%s': %s", must2, msg);
}

static void test_bad_adapters(void **state) {
  (void)state;
  char *mdir = path2(g_tmp, "mbad"), *good = path2(g_tmp, "adgood");
  make_model(mdir, "llama", 4);
  tn_model *m = load_model(mdir);
  tn_lora_opts o;
  tn_lora_opts_default(&o);
  o.rank = 2;
  tn_lora_set *s;
  assert_int_equal(tn_lora_create(m, &o, &s), TN_OK);
  assert_int_equal(tn_lora_alloc_grads(s), TN_OK);
  assert_int_equal(tn_lora_save(s, good), TN_OK);
  tn_lora_free(s);
  assert_int_equal(tn_lora_load(m, good, NULL, &s), TN_OK); /* the unmodified copy loads */
  tn_lora_free(s);
  const char *qa = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight";
  const char *vb = "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight";
  struct {
    const char *name, *key, *value, *drop, *bad, *extra;
    tn_status want;
    const char *m1, *m2;
  } cases[] = {
    {"shape", NULL, NULL, NULL, qa, NULL, TN_ERR_FORMAT, "adapter_model.safetensors", qa},
    {"missing", NULL, NULL, vb, NULL, NULL, TN_ERR_FORMAT, "adapter_model.safetensors", vb},
    {"rank", "r", "3", NULL, NULL, NULL, TN_ERR_FORMAT, "lora_A.weight", "[3, 64]"},
    {"dora", "use_dora", "true", NULL, NULL, NULL, TN_ERR_UNSUPPORTED, "adapter_config.json", "use_dora"},
    {"bias", "bias", "\"lora_only\"", NULL, NULL, NULL, TN_ERR_UNSUPPORTED, "adapter_config.json", "bias"},
    {"mts", "modules_to_save", "[\"lm_head\"]", NULL, NULL, NULL, TN_ERR_UNSUPPORTED, "adapter_config.json", "modules_to_save"},
    {"peft", "peft_type", "\"IA3\"", NULL, NULL, NULL, TN_ERR_UNSUPPORTED, "adapter_config.json", "IA3"},
    {"magnitude", NULL, NULL, NULL, NULL, "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector",
     TN_ERR_UNSUPPORTED, "adapter_model.safetensors", "lora_magnitude_vector"},
    {"untargeted", "target_modules", "[\"q_proj\", \"k_proj\"]", NULL, NULL, NULL, TN_ERR_FORMAT,
     "v_proj.lora_A.weight", "does not target"},
    {"targets_more", "target_modules", "[\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"up_proj\"]", NULL, NULL,
     NULL, TN_ERR_FORMAT, "up_proj.lora_A.weight", "is missing"},
    {"nolist", "target_modules", "null", NULL, NULL, NULL, TN_ERR_UNSUPPORTED, "target_modules", NULL},
    {"badre", "target_modules", "\"(q_proj\"", NULL, NULL, NULL, TN_ERR_FORMAT, "target_modules", "(q_proj"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char nm[64];
    snprintf(nm, sizeof nm, "bad_%s", cases[i].name);
    char *d = path2(g_tmp, nm);
    variant(good, d, cases[i].key, cases[i].value, cases[i].drop, cases[i].bad, cases[i].extra);
    expect_load_error(m, d, cases[i].want, cases[i].m1, cases[i].m2);
    free(d);
  }
  /* .bin only, and no config at all */
  char *bin = path2(g_tmp, "bad_bin");
  variant(good, bin, NULL, NULL, NULL, NULL, NULL);
  char *w = path2(bin, "adapter_model.safetensors"), *wb = path2(bin, "adapter_model.bin");
  assert_int_equal(rename(w, wb), 0);
  expect_load_error(m, bin, TN_ERR_UNSUPPORTED, "adapter_model.bin", NULL);
  expect_load_error(m, g_tmp, TN_ERR_IO, "adapter_config.json", NULL);
  /* an adapter for another model shape */
  char *m2dir = path2(g_tmp, "mbad_other");
  tn_init_opts io = {.arch = "llama", .size = "tiny", .dtype = "f32", .vocab = 128, .shards = 1,
                     .override_json = "{\"hidden_size\": 32, \"head_dim\": 8}"};
  assert_int_equal(tn_model_init_dir(m2dir, &io), TN_OK);
  tn_model *m2 = load_model(m2dir);
  expect_load_error(m2, good, TN_ERR_FORMAT, "adapter_model.safetensors", "lora_A.weight");
  tn_model_free(m2);
  free(m2dir);
  free(w); free(wb); free(bin);
  tn_model_free(m);
  free(mdir); free(good);
}

/* ---- LoRA-only training steps ---- */
static void test_lora_training(void **state) {
  (void)state;
  char *mdir = path2(g_tmp, "mtrain");
  make_model(mdir, "llama", 6);
  tn_model *m = load_model(mdir);
  float *w0 = malloc(m->n_floats * sizeof(float));
  memcpy(w0, m->owned, m->n_floats * sizeof(float));
  tn_lora_opts o;
  tn_lora_opts_default(&o);
  o.rank = 4;
  o.targets = "all-linear";
  o.dropout = 0.1f;
  tn_lora_set *s;
  assert_int_equal(tn_lora_attach(m, &o, &s), TN_OK);
  assert_int_equal(tn_lora_alloc_grads(s), TN_OK);
  enum { T = 16 };
  const int V = m->cfg.V;
  int tok[T], pos[T], seq[T] = {0}, tgt[T];
  for (int i = 0; i < T; i++) { tok[i] = (i * 37 + 11) % V; pos[i] = i; }
  for (int i = 0; i < T; i++) tgt[i] = i + 1 < T ? tok[i + 1] : -1;
  tn_state *st;
  tn_bwd bw;
  assert_int_equal(tn_state_create(&st, m, 1, T, T, true), TN_OK);
  assert_int_equal(tn_bwd_create(&bw, m, st), TN_OK);
  float *logits = malloc(sizeof(float) * T * V), *dl = malloc(sizeof(float) * T * V), lr[T], wr[T];
  for (int i = 0; i < T; i++) wr[i] = 1.0f / (T - 1);
  tn_adamw opt;
  tn_adamw_config cfg = tn_adamw_defaults();
  assert_int_equal(tn_adamw_init(&opt, s->params, s->n_params, &cfg), TN_OK);
  double first = 0, last = 0;
  for (int step = 0; step < 30; step++) {
    tn_lora_train_mode(s, true, (uint64_t)step);
    tn_lora_zero_grads(s);
    assert_int_equal(tn_forward(m, st, T, tok, pos, seq, logits, NULL, T), TN_OK);
    tn_xent_forward(lr, logits, tgt, T, V);
    double loss = 0;
    for (int i = 0; i < T; i++) loss += lr[i] / (T - 1);
    if (step == 0) first = loss;
    last = loss;
    tn_xent_backward(dl, logits, tgt, wr, T, V);
    assert_int_equal(tn_backward(m, st, &bw, NULL, dl, logits, T, tok, pos, seq), TN_OK);
    tn_adamw_step(&opt, 1e-2f, 1.0f);
  }
  tn_lora_train_mode(s, false, 0);
  fprintf(stderr, "LoRA training: loss %.4f -> %.4f in 30 steps\n", first, last);
  assert_true(last < first - 1.0);
  assert_memory_equal(w0, m->owned, m->n_floats * sizeof(float)); /* base frozen */
  tn_adamw_free(&opt);
  free(logits); free(dl); free(w0);
  tn_bwd_free(&bw);
  tn_state_free(st);
  tn_lora_free(s);
  tn_model_free(m);
  free(mdir);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/tn_lora_XXXXXX");
  return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
  tn_tensor_scratch_release();
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_dropout_mask),  cmocka_unit_test(test_dropout_grads_fd),
    cmocka_unit_test(test_create_targets), cmocka_unit_test(test_three_ways),
    cmocka_unit_test(test_bad_adapters),   cmocka_unit_test(test_lora_training),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
