/* value_head.c - PPO's value head (see value_head.h): a linear head on the final-normed hidden
 * state, its gradient into that hidden state, the clipped value loss, its own AdamW and its file.
 * Not for: GAE or advantages (advantage.c), running the model (grpo.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/safetensors.h"
#include "rl/value_head.h"

tn_status tn_vhead_init(tn_value_head *h, int C, const tn_adamw_config *cfg) {
  memset(h, 0, sizeof *h);
  h->C = C;
  h->w = calloc((size_t)C + 1, sizeof(float));
  h->g = calloc((size_t)C + 1, sizeof(float));
  if (!h->w || !h->g) return tn_error(TN_ERR_NOMEM, "value head of %d", C);
  h->row[0] = (tn_param){.name = "v_head", .param = h->w, .grad = h->g, .n = (size_t)C + 1, .decay = false};
  return tn_adamw_init(&h->opt, h->row, 1, cfg);
}

void tn_vhead_free(tn_value_head *h) {
  tn_adamw_free(&h->opt);
  free(h->w);
  free(h->g);
  memset(h, 0, sizeof *h);
}

void tn_vhead_forward(const tn_value_head *h, const float *xf, const int *rows, int n, float *v) {
  const int C = h->C;
  for (int i = 0; i < n; i++) {
    const float *x = xf + (size_t)rows[i] * C;
    double a = h->w[C];
    for (int c = 0; c < C; c++) a += (double)h->w[c] * x[c];
    v[i] = (float)a;
  }
}

void tn_vhead_backward(tn_value_head *h, const float *xf, const int *rows, int n, const float *dv, float *dxf) {
  const int C = h->C;
  for (int i = 0; i < n; i++) {
    if (dv[i] == 0.0f) continue;
    const float *x = xf + (size_t)rows[i] * C;
    float *d = dxf + (size_t)rows[i] * C;
    for (int c = 0; c < C; c++) {
      h->g[c] += dv[i] * x[c];
      d[c] += dv[i] * h->w[c];
    }
    h->g[C] += dv[i];
  }
}

double tn_value_loss(const float *v, const float *v_old, const float *ret, const float *wt, int n, float clip,
                     float *dv, double *clipfrac) {
  double loss = 0, cf = 0, wsum = 0;
  for (int i = 0; i < n; i++) {
    dv[i] = 0.0f;
    if (wt[i] == 0.0f) continue;
    const double e1 = (double)v[i] - ret[i];
    double e = e1;
    bool clipped = false;
    if (clip > 0) {
      double d = (double)v[i] - v_old[i];
      const bool out = d > clip || d < -clip;
      d = d > clip ? clip : d < -clip ? -clip : d;
      const double e2 = (double)v_old[i] + d - ret[i];
      if (e2 * e2 > e1 * e1) { e = e2; clipped = true; }
      if (clipped && out) { /* the clipped value does not move with v */
        loss += wt[i] * 0.5 * e * e;
        cf += wt[i];
        wsum += wt[i];
        continue;
      }
    }
    loss += wt[i] * 0.5 * e * e;
    dv[i] = (float)(wt[i] * e);
    cf += clipped ? wt[i] : 0.0;
    wsum += wt[i];
  }
  if (clipfrac) *clipfrac = wsum > 0 ? cf / wsum : 0.0;
  return loss;
}

tn_status tn_vhead_save(const tn_value_head *h, const char *dir) {
  const int C = h->C;
  const tn_st_entry e[] = {
    {"v_head.weight", TN_ST_F32, 2, {1, C}, h->w},
    {"v_head.bias", TN_ST_F32, 1, {1}, h->w + C},
    {"v_head.exp_avg", TN_ST_F32, 1, {C + 1}, h->opt.m},
    {"v_head.exp_avg_sq", TN_ST_F32, 1, {C + 1}, h->opt.v},
  };
  char meta[64];
  snprintf(meta, sizeof meta, "{\"step\":\"%ld\"}", h->opt.step);
  char *path = tn_path_join(dir, "value_head.safetensors");
  if (!path) return tn_error(TN_ERR_NOMEM, "%s: out of memory", dir);
  tn_status s = tn_st_write(path, e, 4, meta);
  free(path);
  return s;
}

tn_status tn_vhead_load(tn_value_head *h, const char *dir) {
  char *path = tn_path_join(dir, "value_head.safetensors");
  if (!path) return tn_error(TN_ERR_NOMEM, "%s: out of memory", dir);
  tn_st_file f;
  tn_status s = tn_st_open(&f, path);
  if (s != TN_OK) { free(path); return s; }
  const int C = h->C;
  const char *names[4] = {"v_head.weight", "v_head.bias", "v_head.exp_avg", "v_head.exp_avg_sq"};
  float *dst[4] = {h->w, h->w + C, h->opt.m, h->opt.v};
  const size_t want[4] = {(size_t)C, 1, (size_t)C + 1, (size_t)C + 1};
  for (int i = 0; i < 4 && s == TN_OK; i++) {
    const tn_st_tensor *t = tn_st_find(&f, names[i]);
    if (!t || t->dtype != TN_ST_F32 || t->numel != want[i])
      s = tn_error(TN_ERR_FORMAT, "%s: %s missing or not F32 of %zu values (a value head of hidden size %d)", path,
                   names[i], want[i], C);
    else memcpy(dst[i], t->data, sizeof(float) * want[i]);
  }
  const char *st = f.metadata_json ? strstr(f.metadata_json, "\"step\"") : NULL;
  long step = -1;
  if (s == TN_OK && (!st || sscanf(st, "\"step\" : \"%ld\"", &step) != 1) && (!st || sscanf(st, "\"step\":\"%ld\"", &step) != 1))
    s = tn_error(TN_ERR_FORMAT, "%s: no optimizer step in the metadata", path);
  if (s == TN_OK) h->opt.step = step;
  tn_st_close(&f);
  free(path);
  return s;
}
