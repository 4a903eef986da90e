/* linear.c - y = x W^T (+ bias) (+ LoRA), the matmul every projection uses,
 * and its backward. f32 weights go to OpenBLAS (OpenMP build, shared thread pool);
 * other weight dtypes are dispatched here too (issue 7). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/tensor.h"

const char *tn_dtype_name(tn_dtype t) {
  switch (t) {
  case TN_F32: return "f32";
  case TN_BF16: return "bf16";
  case TN_F16: return "f16";
  case TN_NF4: return "nf4";
  }
  return "?";
}
size_t tn_dtype_size(tn_dtype t) { return t == TN_F32 ? 4 : t == TN_NF4 ? 0 : 2; }

static void lora_forward(float *y, const float *x, const tn_mat *W, int N) {
  const tn_lora *l = W->lora;
  float *t = malloc(sizeof(float) * (size_t)N * l->r); // (N, r)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, l->r, W->in, 1.0f, x, W->in, l->A, W->in,
              0.0f, t, l->r);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, W->out, l->r, l->scale, t, l->r, l->B, l->r,
              1.0f, y, W->out);
  free(t);
}

void tn_linear_forward(float *y, const float *x, const tn_mat *W, const float *bias, int N) {
  // y (N, out), x (N, in), W (out, in)
  if (N == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, W->out, W->in, 1.0f, W->w, W->in, x, 1, 0.0f, y, 1);
  else
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, W->out, W->in, 1.0f, x, W->in, W->w, W->in,
                0.0f, y, W->out);
  if (bias) {
#pragma omp parallel for if (N > 4)
    for (int i = 0; i < N; i++) {
      float *yi = y + (size_t)i * W->out;
      for (int o = 0; o < W->out; o++) yi[o] += bias[o];
    }
  }
  if (W->lora && W->lora->enabled) lora_forward(y, x, W, N);
}
