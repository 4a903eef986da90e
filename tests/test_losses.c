/* test_losses.c - the loss heads of src/train/losses.h on hand-built cases.
 * Properties that need no reference are asserted here (zero advantage gives a
 * zero policy gradient, clipped tokens get no gradient and are counted, masked
 * sequences and rows drop out, in-place backward equals out-of-place, a
 * hand-worked clipped loss). Every case's
 * inputs and our outputs (loss, gradients, stats) are written to
 * losses_io/cases.json, which tests/losses/ref.py recomputes with PyTorch
 * autograd in float64 from its own transcription of the formulas (CTest
 * "losses_torch_ref", tolerance 1e-6 relative to max(1, |value|)).
 * Not for: the trainers that call these heads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"
#include "train/losses.h"

#define assert_close(a, b, tol)                                                             \
  do {                                                                                      \
    double _a = (a), _b = (b), _t = (tol) * (fabs(_b) > 1.0 ? fabs(_b) : 1.0);              \
    if (!(fabs(_a - _b) <= _t)) fail_msg("%s = %.10g, expected %.10g (tol %g)", #a, _a, _b, _t); \
  } while (0)

/* ---- JSON output for the reference script ---- */
static FILE *g_out;
static int g_ncase;

static void case_begin(const char *kind, const char *name) {
  if (!g_out) {
    assert_int_equal(tn_mkdirs("losses_io"), TN_OK);
    g_out = fopen("losses_io/cases.json.tmp", "w");
    assert_non_null(g_out);
    fprintf(g_out, "{\"cases\": [\n");
  }
  fprintf(g_out, "%s{\"kind\": \"%s\", \"name\": \"%s\"", g_ncase++ ? ",\n" : "", kind, name);
}
static void case_end(void) { fprintf(g_out, "}"); }
static void jfarr(const char *k, const float *x, size_t n) {
  fprintf(g_out, ", \"%s\": [", k);
  for (size_t i = 0; i < n; i++) fprintf(g_out, "%s%.9g", i ? ", " : "", (double)x[i]);
  fprintf(g_out, "]");
}
static void jiarr(const char *k, const int *x, size_t n) {
  fprintf(g_out, ", \"%s\": [", k);
  for (size_t i = 0; i < n; i++) fprintf(g_out, "%s%d", i ? ", " : "", x[i]);
  fprintf(g_out, "]");
}
static void jdbl(const char *k, double v) { fprintf(g_out, ", \"%s\": %.17g", k, v); }
static void jlong(const char *k, long v) { fprintf(g_out, ", \"%s\": %ld", k, v); }

/* ---- small deterministic generators ---- */
static tn_rng g_rng;
static float unif(float a, float b) { return a + (b - a) * tn_rng_uniform(&g_rng); }

/* ================= token log-probs ================= */

static void logprob_case(const char *name, int N, int V, float T, float shift) {
  float *x = malloc(sizeof(float) * N * V), *d = malloc(sizeof(float) * N * V), *d2 = malloc(sizeof(float) * N * V);
  float *lp = malloc(sizeof(float) * N), *dl = malloc(sizeof(float) * N);
  int *tok = malloc(sizeof(int) * N);
  for (int i = 0; i < N * V; i++) x[i] = unif(-4, 4) + shift;
  for (int i = 0; i < N; i++) {
    tok[i] = i % 5 == 3 ? -1 : (int)(tn_rng_u64(&g_rng) % V);
    dl[i] = i % 4 == 2 ? 0.0f : unif(-2, 2);
  }
  x[V + tok[1]] = 12.0f + shift; /* a near-certain token: p_t ~ 1 */
  tn_token_logprobs(lp, x, tok, N, V, T);
  for (int i = 0; i < N; i++) {
    if (tok[i] < 0) assert_true(lp[i] == 0.0f);
    else assert_true(lp[i] <= 0.0f && isfinite(lp[i]));
  }
  tn_logp_backward(d, x, tok, dl, N, V, T);
  for (int i = 0; i < N; i++)
    if (tok[i] < 0 || dl[i] == 0.0f)
      for (int j = 0; j < V; j++) assert_true(d[(size_t)i * V + j] == 0.0f);
  /* in place (dlogits aliasing logits) gives the same numbers */
  memcpy(d2, x, sizeof(float) * N * V);
  tn_logp_backward(d2, d2, tok, dl, N, V, T);
  assert_memory_equal(d, d2, sizeof(float) * N * V);
  case_begin("logprobs", name);
  jlong("N", N); jlong("V", V); jdbl("T", T);
  jfarr("logits", x, (size_t)N * V); jiarr("tok", tok, N); jfarr("dlogp", dl, N);
  jfarr("logp", lp, N); jfarr("dlogits", d, (size_t)N * V);
  case_end();
  free(x); free(d); free(d2); free(lp); free(dl); free(tok);
}

static void test_logprobs(void **st) {
  (void)st;
  logprob_case("T1", 7, 13, 1.0f, 0.0f);
  logprob_case("T0.7", 7, 13, 0.7f, 0.0f);
  logprob_case("T1.3_shift60", 6, 300, 1.3f, 60.0f); /* large logits: stability */
  logprob_case("T0.5_V3000", 4, 3000, 0.5f, -5.0f);   /* several blocks of the row */
}

/* ================= GRPO ================= */

static void test_advantages(void **st) {
  (void)st;
  const float r[8] = {1, 0, 0.5f, 2, 3, 3, 3, 3}; /* group 2: equal rewards */
  float a[8];
  const char *names[3] = {"group", "batch", "none"};
  for (int sc = 0; sc < 3; sc++) {
    tn_grpo_advantages(a, r, 2, 4, (tn_scale_rewards)sc, 1e-4f);
    for (int i = 4; i < 8; i++) assert_true(a[i] == 0.0f); /* equal rewards: zero advantage */
    double s = 0;
    for (int i = 0; i < 4; i++) s += a[i];
    assert_close(s, 0.0, 1e-6); /* centred in the group */
    case_begin("adv", names[sc]);
    jlong("groups", 2); jlong("G", 4); jlong("scale", sc); jdbl("eps", 1e-4f);
    jfarr("rewards", r, 8); jfarr("adv", a, 8);
    case_end();
  }
  /* hand-worked: group {1, 0, 0.5, 2}: mean 0.875, sample var = (0.015625 + 0.765625
   * + 0.140625 + 1.265625) / 3 = 0.729166.., std 0.853912.. */
  tn_grpo_advantages(a, r, 2, 4, TN_SCALE_GROUP, 0.0f);
  assert_close(a[3], (2 - 0.875) / sqrt(2.1875 / 3), 1e-6);
}

/* A batch of S sequences (flat tokens) for tn_grpo_loss. */
typedef struct {
  int S;
  int off[17];
  float lp[256], old[256], ref[256], adv[16], mask[16];
} grpo_in;

static int ntok(const grpo_in *g) { return g->off[g->S]; }

static void grpo_write(const char *name, const tn_grpo_cfg *c, const grpo_in *g, bool with_ref, const float *d,
                       const tn_grpo_stats *gs) {
  case_begin("grpo", name);
  jdbl("epsilon", c->epsilon); jdbl("epsilon_high", c->epsilon_high); jdbl("beta", c->beta);
  jlong("kl", c->kl); jlong("agg", c->agg); jlong("max_len", c->max_len); jlong("sequence_ratio", c->sequence_ratio);
  jiarr("off", g->off, g->S + 1);
  jfarr("logp", g->lp, ntok(g)); jfarr("old_logp", g->old, ntok(g));
  if (with_ref) jfarr("ref_logp", g->ref, ntok(g));
  jfarr("adv", g->adv, g->S); jfarr("seq_mask", g->mask, g->S);
  jdbl("loss", gs->loss); jdbl("kl_mean", gs->kl_mean); jdbl("clip_low", gs->clip_low); jdbl("clip_high", gs->clip_high);
  jdbl("clip_region", gs->clip_region); jdbl("ratio_mean", gs->ratio_mean);
  jfarr("dlogp", d, ntok(g));
  case_end();
}

/* two groups of three: lengths 4 7 0 | 5 3 6, sequence 4 masked (truncated) */
static void make_batch(grpo_in *g) {
  static const int len[6] = {4, 7, 0, 5, 3, 6};
  static const float rew[6] = {1.0f, 0.0f, 0.5f, 2.0f, 0.0f, 1.0f};
  memset(g, 0, sizeof *g);
  g->S = 6;
  for (int s = 0; s < 6; s++) g->off[s + 1] = g->off[s] + len[s];
  for (int t = 0; t < ntok(g); t++) {
    g->lp[t] = unif(-3.0f, -0.05f);
    g->old[t] = g->lp[t] + unif(-0.45f, 0.45f); /* ratios from ~0.64 to ~1.57: both clips */
    g->ref[t] = g->lp[t] + unif(-0.6f, 0.6f);
  }
  tn_grpo_advantages(g->adv, rew, 2, 3, TN_SCALE_GROUP, 1e-4f);
  for (int s = 0; s < 6; s++) g->mask[s] = s == 4 ? 0.0f : 1.0f;
}

static void test_grpo_zero_advantage(void **st) {
  (void)st;
  grpo_in g;
  make_batch(&g);
  const float eq[6] = {0.7f, 0.7f, 0.7f, 0.7f, 0.7f, 0.7f}; /* equal rewards in each group */
  tn_grpo_advantages(g.adv, eq, 2, 3, TN_SCALE_GROUP, 1e-4f);
  for (int seqr = 0; seqr < 2; seqr++)
    for (int agg = 0; agg < 3; agg++) {
      tn_grpo_cfg c = {.epsilon = 0.2f, .epsilon_high = 0.2f, .beta = 0.0f, .kl = TN_KL_K3,
                       .agg = (tn_loss_agg)agg, .max_len = 8, .sequence_ratio = seqr};
      float d[256];
      tn_grpo_stats gs;
      assert_int_equal(tn_grpo_loss(&c, g.S, g.off, g.lp, g.old, NULL, g.adv, g.mask, d, &gs), TN_OK);
      assert_true(gs.loss == 0.0);
      for (int t = 0; t < ntok(&g); t++) assert_true(d[t] == 0.0f);
      assert_true(gs.clip_region == 0.0);
      if (agg == 0 && seqr == 0) grpo_write("zero_adv", &c, &g, false, d, &gs);
    }
}

/* ratios 1.5 0.5 1.1 0.9 with A = +1, then with A = -1; eps 0.2, eps_high 0.28 */
static void test_grpo_clip(void **st) {
  (void)st;
  static const float ratio[4] = {1.5f, 0.5f, 1.1f, 0.9f};
  grpo_in g;
  memset(&g, 0, sizeof g);
  g.S = 2;
  g.off[1] = 4;
  g.off[2] = 8;
  for (int t = 0; t < 8; t++) {
    g.old[t] = -1.0f - 0.1f * t;
    g.lp[t] = g.old[t] + logf(ratio[t % 4]);
    g.ref[t] = g.lp[t] - 0.2f;
  }
  g.adv[0] = 1.0f;
  g.adv[1] = -1.0f;
  g.mask[0] = g.mask[1] = 1.0f;
  tn_grpo_cfg c = {.epsilon = 0.2f, .epsilon_high = 0.28f, .beta = 0.0f, .kl = TN_KL_K1,
                   .agg = TN_AGG_TOKEN_MEAN, .max_len = 4};
  float d[8];
  tn_grpo_stats gs;
  assert_int_equal(tn_grpo_loss(&c, g.S, g.off, g.lp, g.old, g.ref, g.adv, g.mask, d, &gs), TN_OK);
  /* clipped: token 0 (r 1.5 > 1.28, A > 0) and token 5 (r 0.5 < 0.8, A < 0) */
  for (int t = 0; t < 8; t++) {
    if (t == 0 || t == 5) assert_true(d[t] == 0.0f);
    else assert_true(d[t] != 0.0f);
  }
  /* d/dlogp of -r A / 8 = -r A / 8 on unclipped tokens */
  assert_close(d[1], -0.5 / 8, 1e-6);
  assert_close(d[4], 1.5 / 8, 1e-6);
  assert_close(gs.clip_high, 1.0 / 8, 1e-12);
  assert_close(gs.clip_low, 1.0 / 8, 1e-12);
  assert_close(gs.clip_region, 2.0 / 8, 1e-12);
  /* per token: A=+1: -1.28 -0.5 -1.1 -0.9; A=-1: max(r, clip(r)) = 1.5 0.8 1.1 0.9 */
  assert_close(gs.loss, (-1.28 - 0.5 - 1.1 - 0.9 + 1.5 + 0.8 + 1.1 + 0.9) / 8, 1e-6);
  assert_close(gs.ratio_mean, 2 * (1.5 + 0.5 + 1.1 + 0.9) / 8, 1e-6);
  assert_close(gs.kl_mean, 0.2, 1e-6); /* k1 = logp - ref */
  grpo_write("clip_both_sides", &c, &g, true, d, &gs);
}

/* GSPO: one ratio per sequence; sequences of constant token ratio r with A:
 * (1.5, +1) clipped high, (0.5, -1) clipped low, (0.5, +1) and (1.5, -1) not */
static void test_gspo_clip(void **st) {
  (void)st;
  static const float r[4] = {1.5f, 0.5f, 0.5f, 1.5f}, a[4] = {1, -1, 1, -1};
  grpo_in g;
  memset(&g, 0, sizeof g);
  g.S = 4;
  for (int s = 0; s < 4; s++) {
    g.off[s + 1] = g.off[s] + 3 + s;
    for (int t = g.off[s]; t < g.off[s + 1]; t++) {
      g.old[t] = -0.5f - 0.05f * t;
      g.lp[t] = g.old[t] + logf(r[s]);
    }
    g.adv[s] = a[s];
    g.mask[s] = 1.0f;
  }
  tn_grpo_cfg c = {.epsilon = 0.2f, .epsilon_high = 0.28f, .agg = TN_AGG_SEQ_MEAN_TOKEN_MEAN, .sequence_ratio = true};
  float d[64];
  tn_grpo_stats gs;
  assert_int_equal(tn_grpo_loss(&c, g.S, g.off, g.lp, g.old, NULL, g.adv, g.mask, d, &gs), TN_OK);
  for (int s = 0; s < 4; s++)
    for (int t = g.off[s]; t < g.off[s + 1]; t++) {
      if (s < 2) assert_true(d[t] == 0.0f);
      else assert_close(d[t], -a[s] * r[s] / (4.0 * (3 + s)), 1e-6); /* -A R / (S n_s) */
    }
  assert_close(gs.clip_high, 0.25, 1e-12);
  assert_close(gs.clip_low, 0.25, 1e-12);
  assert_close(gs.clip_region, 0.5, 1e-12);
  assert_close(gs.loss, (-1.28 + 0.8 - 0.5 + 1.5) / 4, 1e-6);
  grpo_write("gspo_clip_both_sides", &c, &g, false, d, &gs);
}

static void test_grpo_modes(void **st) {
  (void)st;
  static const char *aggn[3] = {"seqmean_tokmean", "tokmean", "seqmean_tokscale"};
  static const char *kln[3] = {"k1", "k3", "mse"};
  grpo_in g;
  make_batch(&g);
  for (int seqr = 0; seqr < 2; seqr++)
    for (int agg = 0; agg < 3; agg++)
      for (int kl = 0; kl < 3; kl++) {
        tn_grpo_cfg c = {.epsilon = 0.2f, .epsilon_high = seqr ? 0.2f : 0.28f, .beta = 0.04f, .kl = (tn_kl_estimator)kl,
                         .agg = (tn_loss_agg)agg, .max_len = 9, .sequence_ratio = seqr};
        if (seqr) { c.epsilon = 0.05f; c.epsilon_high = 0.08f; } /* GSPO's small clip range */
        float d[256];
        tn_grpo_stats gs;
        assert_int_equal(tn_grpo_loss(&c, g.S, g.off, g.lp, g.old, g.ref, g.adv, g.mask, d, &gs), TN_OK);
        /* the masked sequence (4) has no gradient, and its log-probs do not matter */
        for (int t = g.off[4]; t < g.off[5]; t++) assert_true(d[t] == 0.0f);
        grpo_in g2 = g;
        for (int t = g.off[4]; t < g.off[5]; t++) g2.lp[t] -= 1.0f;
        float d2[256];
        tn_grpo_stats gs2;
        assert_int_equal(tn_grpo_loss(&c, g2.S, g2.off, g2.lp, g2.old, g2.ref, g2.adv, g2.mask, d2, &gs2), TN_OK);
        assert_true(gs2.loss == gs.loss);
        assert_true(gs.clip_low > 0 || seqr); /* the batch exercises both clips (token level) */
        assert_true(gs.clip_high > 0 || seqr);
        char name[64];
        snprintf(name, sizeof name, "%s_%s_%s", seqr ? "gspo" : "token", aggn[agg], kln[kl]);
        grpo_write(name, &c, &g, true, d, &gs);
      }
  /* beta = 0 without reference log-probs */
  tn_grpo_cfg c = {.epsilon = 0.2f, .epsilon_high = 0.2f, .agg = TN_AGG_SEQ_MEAN_TOKEN_MEAN};
  float d[256];
  tn_grpo_stats gs;
  assert_int_equal(tn_grpo_loss(&c, g.S, g.off, g.lp, g.old, NULL, g.adv, g.mask, d, &gs), TN_OK);
  assert_true(gs.kl_mean == 0.0);
  grpo_write("beta0_noref", &c, &g, false, d, &gs);
}

static void test_grpo_errors(void **st) {
  (void)st;
  grpo_in g;
  make_batch(&g);
  float d[256];
  tn_grpo_stats gs;
  tn_grpo_cfg c = {.epsilon = 0.2f, .epsilon_high = 0.2f, .beta = 0.1f};
  assert_int_equal(tn_grpo_loss(&c, g.S, g.off, g.lp, g.old, NULL, g.adv, g.mask, d, &gs), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "ref_logp"));
  c.beta = 0.0f;
  c.agg = TN_AGG_SEQ_MEAN_TOKEN_SCALE;
  c.max_len = 0;
  assert_int_equal(tn_grpo_loss(&c, g.S, g.off, g.lp, g.old, NULL, g.adv, g.mask, d, &gs), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "max_len"));
  c.max_len = 8;
  int bad[7] = {0, 4, 3, 5, 6, 7, 8};
  assert_int_equal(tn_grpo_loss(&c, 6, bad, g.lp, g.old, NULL, g.adv, g.mask, d, &gs), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "off["));
}

/* ================= DPO family ================= */

static void dpo_write(const char *name, const tn_dpo_cfg *c, int n, const float *pc, const float *pr, const float *rc,
                      const float *rr, const float *dpc, const float *dpr, const tn_dpo_stats *ds) {
  case_begin("dpo", name);
  jlong("type", c->type); jdbl("beta", c->beta); jdbl("label_smoothing", c->label_smoothing);
  jfarr("pc", pc, n); jfarr("pr", pr, n); jfarr("rc", rc, n); jfarr("rr", rr, n);
  jdbl("loss", ds->loss); jdbl("reward_chosen", ds->reward_chosen); jdbl("reward_rejected", ds->reward_rejected);
  jdbl("margin", ds->margin); jdbl("accuracy", ds->accuracy);
  jfarr("d_pc", dpc, n); jfarr("d_pr", dpr, n);
  case_end();
}

static void test_dpo(void **st) {
  (void)st;
  enum { n = 7 };
  float pc[n], pr[n], rc[n], rr[n], dpc[n], dpr[n];
  for (int i = 0; i < n; i++) {
    rc[i] = unif(-40, -10);
    rr[i] = unif(-40, -10);
    pc[i] = rc[i] + unif(0.5f, 6); /* h = (pc - pr) - (rc - rr) from 0.1 to 9 */
    pr[i] = rr[i] + unif(-3, 0.4f);
  }
  pc[2] = rc[2] - 2.0f; /* one pair the policy gets wrong */
  pr[2] = rr[2] + 1.0f;
  struct { const char *name; tn_dpo_type type; float beta, ls; } cfgs[] = {
      {"sigmoid", TN_DPO_SIGMOID, 0.1f, 0.0f},     {"sigmoid_ls0.1", TN_DPO_SIGMOID, 0.1f, 0.1f},
      {"sigmoid_beta2", TN_DPO_SIGMOID, 2.0f, 0.3f}, {"ipo", TN_DPO_IPO, 0.1f, 0.0f},
      {"ipo_beta0.5", TN_DPO_IPO, 0.5f, 0.0f},     {"hinge", TN_DPO_HINGE, 0.3f, 0.0f},
      {"robust_ls0.2", TN_DPO_ROBUST, 0.1f, 0.2f}, {"robust_ls0", TN_DPO_ROBUST, 0.5f, 0.0f},
  };
  for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
    tn_dpo_cfg c = {.type = cfgs[k].type, .beta = cfgs[k].beta, .label_smoothing = cfgs[k].ls};
    tn_dpo_stats ds;
    assert_int_equal(tn_dpo_loss(&c, n, pc, pr, rc, rr, dpc, dpr, &ds), TN_OK);
    for (int i = 0; i < n; i++) assert_true(dpc[i] == -dpr[i]); /* depends on pc - pr only */
    assert_close(ds.accuracy, 6.0 / 7, 1e-12);
    if (c.type == TN_DPO_HINGE) /* pairs past the margin (beta h >= 1) get no gradient */
      for (int i = 0; i < n; i++)
        if (c.beta * (((double)pc[i] - pr[i]) - ((double)rc[i] - rr[i])) > 1.0001) assert_true(dpc[i] == 0.0f);
    dpo_write(cfgs[k].name, &c, n, pc, pr, rc, rr, dpc, dpr, &ds);
  }
  /* hand-worked: policy = reference gives h = 0: sigmoid loss log 2 whatever the smoothing,
   * d/dpc = beta (ls - 1/2) / n; IPO loss 1/(4 beta^2), d/dpc = -1/(beta n) */
  tn_dpo_cfg c = {.type = TN_DPO_SIGMOID, .beta = 0.1f, .label_smoothing = 0.2f};
  tn_dpo_stats ds;
  assert_int_equal(tn_dpo_loss(&c, n, rc, rr, rc, rr, dpc, dpr, &ds), TN_OK);
  assert_close(ds.loss, log(2.0), 1e-12);
  assert_close(dpc[0], 0.1 * (0.2 - 0.5) / n, 1e-7);
  assert_true(ds.margin == 0.0 && ds.accuracy == 0.0);
  c.type = TN_DPO_IPO;
  assert_int_equal(tn_dpo_loss(&c, n, rc, rr, rc, rr, dpc, dpr, &ds), TN_OK);
  const double b = 0.1f; /* beta as the float it is */
  assert_close(ds.loss, 1.0 / (4 * b * b), 1e-9);
  assert_close(dpc[0], -1.0 / (b * n), 1e-6);
  c.type = TN_DPO_ROBUST;
  c.label_smoothing = 0.5f;
  assert_int_equal(tn_dpo_loss(&c, n, pc, pr, rc, rr, dpc, dpr, &ds), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "label_smoothing"));
}

static void orpo_write(const char *name, float lambda, int n, const float *ac, const float *ar, const int *len_c,
                       const float *dac, const float *dar, const tn_dpo_stats *ds) {
  case_begin("orpo", name);
  jdbl("lambda", lambda);
  jfarr("ac", ac, n); jfarr("ar", ar, n);
  if (len_c) jiarr("len_c", len_c, n);
  jdbl("loss", ds->loss); jdbl("reward_chosen", ds->reward_chosen); jdbl("reward_rejected", ds->reward_rejected);
  jdbl("margin", ds->margin); jdbl("accuracy", ds->accuracy);
  jfarr("d_ac", dac, n); jfarr("d_ar", dar, n);
  case_end();
}

static void test_orpo(void **st) {
  (void)st;
  enum { n = 6 };
  float ac[n] = {-1.2f, -0.35f, -2.5f, -0.001f, -0.8f, -1.7f}, ar[n] = {-1.9f, -0.3f, -1.0f, -0.6f, -3.2f, -1.7f};
  int len_c[n] = {12, 3, 40, 7, 1, 20};
  float dac[n], dar[n];
  tn_dpo_stats ds;
  assert_int_equal(tn_orpo_loss(0.1f, n, ac, ar, dac, dar, &ds), TN_OK);
  orpo_write("lambda0.1", 0.1f, n, ac, ar, NULL, dac, dar, &ds);
  assert_close(ds.accuracy, 3.0 / 6, 1e-12);
  assert_int_equal(tn_orpo_loss(1.0f, n, ac, ar, dac, dar, &ds), TN_OK);
  orpo_write("lambda1", 1.0f, n, ac, ar, NULL, dac, dar, &ds);
  assert_int_equal(tn_orpo_loss_tok(0.25f, n, ac, ar, len_c, dac, dar, &ds), TN_OK);
  orpo_write("lambda0.25_tokmean_nll", 0.25f, n, ac, ar, len_c, dac, dar, &ds);
  /* hand-worked: ac == ar gives log_odds 0: loss = mean(-ac) + lambda log 2 */
  assert_int_equal(tn_orpo_loss(0.5f, n, ar, ar, dac, dar, &ds), TN_OK);
  double nll = 0;
  for (int i = 0; i < n; i++) nll -= ar[i];
  assert_close(ds.loss, nll / n + 0.5 * log(2.0), 1e-7);
  assert_close(ds.log_odds_chosen, 0.0, 1e-12);
}

/* ================= distillation ================= */

static void kd_write(const char *name, const tn_kd_cfg *c, int N, int V, const float *s, const float *t,
                     const int *labels, const float *mask, const float *d, double loss) {
  case_begin("kd", name);
  jlong("N", N); jlong("V", V); jdbl("alpha", c->alpha); jdbl("T", c->T); jlong("top_k", c->top_k);
  jdbl("jsd_beta", c->jsd_beta);
  jfarr("student", s, (size_t)N * V); jfarr("teacher", t, (size_t)N * V); jiarr("labels", labels, N);
  jfarr("mask", mask, N);
  jdbl("loss", loss); jfarr("dstudent", d, (size_t)N * V);
  case_end();
}

static void test_kd(void **st) {
  (void)st;
  enum { N = 6, V = 17 };
  float s[N * V], t[N * V], d[N * V], mask[N] = {1, 1, 0, 1, 1, 1};
  int labels[N] = {3, -1, 5, 16, 0, 9};
  for (int i = 0; i < N * V; i++) {
    t[i] = unif(-3, 3);
    s[i] = 0.6f * t[i] + unif(-2, 2);
  }
  struct { const char *name; tn_kd_cfg c; } cfgs[] = {
      {"kl_T2_alpha0.7", {0.7f, 2.0f, 0, -1.0f}},   {"kl_T1_alpha1_top5", {1.0f, 1.0f, 5, -1.0f}},
      {"kl_T3_alpha0.5_top4", {0.5f, 3.0f, 4, -1.0f}}, {"jsd0_T1.5", {0.8f, 1.5f, 0, 0.0f}},
      {"jsd0.5_T1.5", {0.8f, 1.5f, 0, 0.5f}},       {"jsd1_T1.5", {0.8f, 1.5f, 0, 1.0f}},
      {"jsd0.5_top4", {1.0f, 1.0f, 4, 0.5f}},       {"jsd0.1_T0.7", {0.6f, 0.7f, 0, 0.1f}},
      {"jsd1_top6_alpha0.9", {0.9f, 2.0f, 6, 1.0f}}, {"ce_only_alpha0", {0.0f, 1.0f, 0, -1.0f}},
  };
  for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
    double loss;
    assert_int_equal(tn_kd_loss(&cfgs[k].c, N, V, s, t, labels, mask, d, &loss), TN_OK);
    assert_true(loss > 0 && isfinite(loss));
    for (int i = 0; i < N; i++) {
      double sum = 0;
      for (int v = 0; v < V; v++) {
        sum += d[i * V + v];
        if (mask[i] == 0.0f) assert_true(d[i * V + v] == 0.0f);
      }
      assert_close(sum, 0.0, 1e-6); /* softmax gradients sum to zero over the vocabulary */
    }
    if (cfgs[k].c.top_k > 0 && cfgs[k].c.alpha == 1.0f) { /* outside the teacher's top-k: no gradient */
      for (int i = 0; i < N; i++) {
        int nz = 0;
        for (int v = 0; v < V; v++) nz += d[i * V + v] != 0.0f;
        assert_true(nz <= cfgs[k].c.top_k);
      }
    }
    kd_write(cfgs[k].name, &cfgs[k].c, N, V, s, t, labels, mask, d, loss);
  }
  /* student == teacher: every divergence and its gradient is zero */
  for (int b = 0; b < 4; b++) {
    tn_kd_cfg c = {1.0f, 1.7f, b == 3 ? 5 : 0, b == 0 ? -1.0f : b == 1 ? 0.0f : b == 2 ? 0.3f : 1.0f};
    double loss;
    assert_int_equal(tn_kd_loss(&c, N, V, t, t, labels, mask, d, &loss), TN_OK);
    assert_close(loss, 0.0, 1e-12);
    for (int i = 0; i < N * V; i++) assert_close(d[i], 0.0, 1e-7);
  }
  tn_kd_cfg bad = {0.5f, 1.0f, 0, 1.5f};
  double loss;
  assert_int_equal(tn_kd_loss(&bad, N, V, s, t, labels, mask, d, &loss), TN_ERR_ARG);
  assert_non_null(strstr(tn_last_error(), "jsd_beta"));
}

/* closes the JSON file (runs last) */
static void test_write_cases(void **st) {
  (void)st;
  assert_non_null(g_out);
  fprintf(g_out, "\n]}\n");
  assert_int_equal(fclose(g_out), 0);
  g_out = NULL;
  assert_int_equal(rename("losses_io/cases.json.tmp", "losses_io/cases.json"), 0);
}

int main(void) {
  tn_rng_seed(&g_rng, 20240611);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_logprobs),
      cmocka_unit_test(test_advantages),
      cmocka_unit_test(test_grpo_zero_advantage),
      cmocka_unit_test(test_grpo_clip),
      cmocka_unit_test(test_gspo_clip),
      cmocka_unit_test(test_grpo_modes),
      cmocka_unit_test(test_grpo_errors),
      cmocka_unit_test(test_dpo),
      cmocka_unit_test(test_orpo),
      cmocka_unit_test(test_kd),
      cmocka_unit_test(test_write_cases),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
