/* optim.c - AdamW over the parameter table (torch.optim.AdamW semantics), global
 * L2 gradient norm and clipping (torch.nn.utils.clip_grad_norm_ semantics), and the
 * no-decay rule for norms and biases. The update runs every step on up to ~500M
 * floats: one OpenMP region splits the concatenation of all rows into equal
 * contiguous ranges; the per-element loop is AVX-512 (runtime-detected) or portable C.
 * Not for: schedules (schedule.c), gradients, checkpoint files. */
#include "train/optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"
#include "tensor/kern.h"
#ifdef _OPENMP
#include <omp.h>
#endif

bool tn_param_decays(const char *name, int ndim) {
  if (ndim <= 1) return false;
  if (name && (strstr(name, "norm") || strstr(name, "bias"))) return false;
  return true;
}

tn_adamw_config tn_adamw_defaults(void) {
  tn_adamw_config c = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
  return c;
}

/* ---- AdamW ---- */

tn_status tn_adamw_init(tn_adamw *opt, const tn_param *params, int nparams,
                        const tn_adamw_config *cfg) {
  memset(opt, 0, sizeof *opt);
  if (nparams < 0 || (nparams > 0 && !params) || !cfg)
    return tn_error(TN_ERR_ARG, "adamw: empty or missing parameter table");
  if (!isfinite(cfg->beta1) || !isfinite(cfg->beta2) || !isfinite(cfg->eps) ||
      !isfinite(cfg->weight_decay) || cfg->beta1 < 0 || cfg->beta1 >= 1 || cfg->beta2 < 0 ||
      cfg->beta2 >= 1 || cfg->eps < 0 || cfg->weight_decay < 0)
    return tn_error(TN_ERR_ARG,
                    "adamw: bad config (beta1 %g, beta2 %g, eps %g, weight_decay %g): betas must "
                    "be in [0, 1), eps and weight_decay >= 0",
                    cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay);
  size_t total = 0;
  for (int i = 0; i < nparams; i++) {
    if (params[i].n > 0 && (!params[i].param || !params[i].grad))
      return tn_error(TN_ERR_ARG, "adamw: parameter '%s' (row %d) has no %s buffer",
                      params[i].name ? params[i].name : "?", i, params[i].param ? "grad" : "param");
    total += params[i].n;
  }
  opt->cfg = *cfg;
  opt->nparams = nparams;
  opt->params = malloc((size_t)(nparams > 0 ? nparams : 1) * sizeof *opt->params);
  opt->offset = malloc((size_t)(nparams + 1) * sizeof *opt->offset);
  if (!opt->params || !opt->offset) {
    tn_adamw_free(opt);
    return tn_error(TN_ERR_NOMEM, "adamw: parameter table (%d rows)", nparams);
  }
  if (nparams > 0) memcpy(opt->params, params, (size_t)nparams * sizeof *params);
  size_t off = 0;
  for (int i = 0; i < nparams; i++) {
    opt->offset[i] = off;
    off += params[i].n;
  }
  opt->offset[nparams] = off;
  opt->total = total;
  size_t bytes = (total > 0 ? total : 1) * sizeof(float);
  opt->m = tn_alloc(bytes);  /* zeroed */
  opt->v = tn_alloc(bytes);
  if (!opt->m || !opt->v) {
    tn_adamw_free(opt);
    return tn_error(TN_ERR_NOMEM, "adamw: state for %zu parameters (%.1f MiB)", total,
                    2.0 * bytes / 1048576.0);
  }
  return TN_OK;
}

void tn_adamw_free(tn_adamw *opt) {
  if (!opt) return;
  free(opt->params);
  free(opt->offset);
  tn_free(opt->m);
  tn_free(opt->v);
  memset(opt, 0, sizeof *opt);
}

/* The update's scalars, rounded to f32 as torch does for f32 tensors. */
typedef struct {
  float decay_mul, b1, omb1, b2, omb2, gscale, neg_step_size, bc2_sqrt, eps;
} adamw_k;

/* The per-element update of one contiguous span, in torch's operation order,
 * all arithmetic in f32. Portable version (sqrtf keeps it scalar at -O2). */
static void adamw_span_c(float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, size_t n, float decay_mul, const adamw_k *k) {
  for (size_t i = 0; i < n; i++) {
    float gi = g[i] * k->gscale;
    float pi = p[i] * decay_mul;
    float mi = m[i] * k->b1 + k->omb1 * gi;
    float vi = v[i] * k->b2 + k->omb2 * gi * gi;
    float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
    p[i] = pi + k->neg_step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TN_HAVE_AVX512_PATH 1
/* Same operations, 16 lanes; the tail goes through the same vector code with a
 * mask. FMA contraction is turned off so that every element is bit-identical to
 * adamw_span_c (sqrt and div are correctly rounded in both): the result does not
 * depend on the path, on where a span starts, or on the thread count. */
__attribute__((target("avx512f"), optimize("fp-contract=off"))) static void adamw_span_avx512(
    float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
    float decay_mul, const adamw_k *k) {
  const __m512 gs = _mm512_set1_ps(k->gscale), dm = _mm512_set1_ps(decay_mul);
  const __m512 b1 = _mm512_set1_ps(k->b1), omb1 = _mm512_set1_ps(k->omb1);
  const __m512 b2 = _mm512_set1_ps(k->b2), omb2 = _mm512_set1_ps(k->omb2);
  const __m512 bc2 = _mm512_set1_ps(k->bc2_sqrt), eps = _mm512_set1_ps(k->eps);
  const __m512 nss = _mm512_set1_ps(k->neg_step_size);
  for (size_t i = 0; i < n; i += 16) {
    __mmask16 mk = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    __m512 gi = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, g + i), gs);
    __m512 pi = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, p + i), dm);
    __m512 mi = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, m + i), b1),
                              _mm512_mul_ps(omb1, gi));
    __m512 vi = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, v + i), b2),
                              _mm512_mul_ps(_mm512_mul_ps(omb2, gi), gi));
    __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc2), eps);
    pi = _mm512_add_ps(pi, _mm512_mul_ps(nss, _mm512_div_ps(mi, den)));
    _mm512_mask_storeu_ps(p + i, mk, pi);
    _mm512_mask_storeu_ps(m + i, mk, mi);
    _mm512_mask_storeu_ps(v + i, mk, vi);
  }
}
#endif

static int tn_adamw_portable_only = 0;
void tn_adamw_set_portable(bool on) { tn_adamw_portable_only = on; }

static bool use_avx512(void) {
#ifdef TN_HAVE_AVX512_PATH
  return !tn_adamw_portable_only && tn_isa_level() >= TN_ISA_AVX512;
#else
  return false;
#endif
}

/* Index of the row holding flat element e (offset[r] <= e < offset[r+1]). */
static int row_of(const size_t *offset, int nrows, size_t e) {
  int lo = 0, hi = nrows - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (offset[mid] <= e) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

void tn_adamw_step(tn_adamw *opt, float lr, float grad_scale) {
  opt->step++;
  if (opt->total == 0) return;
  const tn_adamw_config *c = &opt->cfg;
  double t = (double)opt->step;
  double bc1 = 1.0 - pow((double)c->beta1, t);
  double bc2 = 1.0 - pow((double)c->beta2, t);
  adamw_k k = {.b1 = c->beta1, .b2 = c->beta2, .eps = c->eps, .gscale = grad_scale,
               .omb1 = (float)(1.0 - (double)c->beta1), .omb2 = (float)(1.0 - (double)c->beta2),
               .neg_step_size = (float)(-((double)lr / bc1)), .bc2_sqrt = (float)sqrt(bc2)};
  float decay_mul = (float)(1.0 - (double)lr * (double)c->weight_decay);
  bool avx512 = use_avx512();
  const tn_param *P = opt->params;
  const size_t *off = opt->offset;
  int nrows = opt->nparams;
  size_t total = opt->total;
  float *M = opt->m, *V = opt->v;
#pragma omp parallel if (total >= 65536)
  {
#ifdef _OPENMP
    int nth = omp_get_num_threads(), tid = omp_get_thread_num();
#else
    int nth = 1, tid = 0;
#endif
    /* equal ranges, boundaries on 16-float (64-byte) multiples */
    size_t per = ((total + (size_t)nth - 1) / (size_t)nth + 15) & ~(size_t)15;
    size_t lo = (size_t)tid * per, hi = lo + per;
    if (hi > total) hi = total;
    if (lo < hi) {
      int r = row_of(off, nrows, lo);
      size_t e = lo;
      while (e < hi) {
        while (off[r + 1] <= e) r++; /* skip empty rows */
        size_t a = e - off[r];
        size_t b = (hi < off[r + 1] ? hi : off[r + 1]) - off[r];
        float dm = P[r].decay ? decay_mul : 1.0f;
#ifdef TN_HAVE_AVX512_PATH
        if (avx512)
          adamw_span_avx512(P[r].param + a, P[r].grad + a, M + off[r] + a, V + off[r] + a, b - a,
                            dm, &k);
        else
#endif
          adamw_span_c(P[r].param + a, P[r].grad + a, M + off[r] + a, V + off[r] + a, b - a, dm,
                       &k);
        e = off[r] + b;
      }
    }
  }
}

size_t tn_adamw_state_bytes(const tn_adamw *opt) { return 2 * opt->total * sizeof(float); }

size_t tn_adamw_row_state(const tn_adamw *opt, int i, float **m, float **v) {
  if (i < 0 || i >= opt->nparams) return 0;
  if (m) *m = opt->m + opt->offset[i];
  if (v) *v = opt->v + opt->offset[i];
  return opt->params[i].n;
}

int tn_adamw_find(const tn_adamw *opt, const char *name) {
  for (int i = 0; i < opt->nparams; i++)
    if (opt->params[i].name && name && strcmp(opt->params[i].name, name) == 0) return i;
  return -1;
}

tn_status tn_adamw_load_state(tn_adamw *opt, const float *m, const float *v, size_t n, long step) {
  if (n != opt->total)
    return tn_error(TN_ERR_FORMAT,
                    "optimizer state holds %zu floats per moment, the parameter table has %zu", n,
                    opt->total);
  if (step < 0) return tn_error(TN_ERR_FORMAT, "optimizer state: negative step %ld", step);
  if (n) {
    memcpy(opt->m, m, n * sizeof(float));
    memcpy(opt->v, v, n * sizeof(float));
  }
  opt->step = step;
  return TN_OK;
}

/* ---- gradient norm ----
 * The concatenation of the rows is cut into NCHUNK fixed chunks (independent of
 * the thread count); each chunk's sum of squares is taken in double, then the
 * partial sums are added in chunk order. So the norm is bit-identical for any
 * number of threads, which resumable training relies on. */
enum { NCHUNK = 1024 };

/* 16 independent double accumulators (two AVX-512 vectors), so the adds are
 * not one latency-bound chain; fixed combination order. A float*float product is
 * exact in double, so an FMA gives the same sum: every clone is bit-identical. */
TN_MV_INLINE double sumsq_span_body(const float *restrict g, size_t n) {
  double acc[16] = {0};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
#pragma omp simd
    for (int k = 0; k < 16; k++) acc[k] += (double)g[i + k] * (double)g[i + k];
  for (int k = 0; i < n; i++, k++) acc[k] += (double)g[i] * (double)g[i];
  double s = 0.0;
  for (int k = 0; k < 16; k++) s += acc[k];
  return s;
}
TN_MV(double, sumsq_span, (const float *restrict g, size_t n), (g, n))

/* rows given as pointers + prefix offsets */
static double sumsq_rows(const tn_param *P, const size_t *off, int nrows) {
  size_t total = off[nrows];
  if (total == 0) return 0.0;
  size_t cs = ((total + NCHUNK - 1) / NCHUNK + 63) & ~(size_t)63;
  int nch = (int)((total + cs - 1) / cs);
  double part[NCHUNK];
#pragma omp parallel for schedule(static) if (total >= 65536)
  for (int c = 0; c < nch; c++) {
    size_t lo = (size_t)c * cs, hi = lo + cs < total ? lo + cs : total;
    int r = row_of(off, nrows, lo);
    double s = 0.0;
    size_t e = lo;
    while (e < hi) {
      while (off[r + 1] <= e) r++;
      size_t a = e - off[r];
      size_t b = (hi < off[r + 1] ? hi : off[r + 1]) - off[r];
      s += sumsq_span(P[r].grad + a, b - a);
      e = off[r] + b;
    }
    part[c] = s;
  }
  double s = 0.0;
  for (int c = 0; c < nch; c++) s += part[c];
  return s;
}

static bool span_finite(const float *g, size_t n) {
  int bad = 0;
#pragma omp simd reduction(| : bad)
  for (size_t i = 0; i < n; i++) bad |= !isfinite(g[i]);
  return !bad;
}

tn_status tn_params_grad_norm(const tn_param *params, int nparams, double *norm) {
  size_t stack_off[65];
  size_t *off = nparams + 1 <= 65 ? stack_off : malloc((size_t)(nparams + 1) * sizeof *off);
  if (!off) return tn_error(TN_ERR_NOMEM, "gradient norm: offsets for %d rows", nparams);
  off[0] = 0;
  for (int i = 0; i < nparams; i++) off[i + 1] = off[i] + params[i].n;
  double nrm = nparams > 0 ? sqrt(sumsq_rows(params, off, nparams)) : 0.0;
  if (off != stack_off) free(off);
  *norm = nrm;
  if (isfinite(nrm)) return TN_OK;
  for (int i = 0; i < nparams; i++)
    if (!span_finite(params[i].grad, params[i].n))
      return tn_error(TN_ERR_NUMERIC, "gradient global L2 norm is %g: tensor '%s' has a NaN or "
                      "infinite gradient", nrm, params[i].name ? params[i].name : "?");
  return tn_error(TN_ERR_NUMERIC, "gradient global L2 norm is %g (overflow)", nrm);
}

tn_status tn_grad_norm(const float *g, size_t n, double *norm) {
  tn_param row = {.name = "gradient buffer", .param = NULL, .grad = (float *)g, .n = n};
  return tn_params_grad_norm(&row, 1, norm);
}

float tn_clip_coef(double norm, float max_norm) {
  if (!(max_norm > 0.0f)) return 1.0f;
  double c = (double)max_norm / (norm + 1e-6);
  return c < 1.0 ? (float)c : 1.0f;
}

tn_status tn_clip_grad_norm(float *g, size_t n, float max_norm, double *norm) {
  double nrm;
  tn_status s = tn_grad_norm(g, n, &nrm);
  if (norm) *norm = nrm;
  if (s != TN_OK) return s;
  float coef = tn_clip_coef(nrm, max_norm);
  if (coef < 1.0f) {
#pragma omp parallel for simd schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) g[i] *= coef;
  }
  return TN_OK;
}
