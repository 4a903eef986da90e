/* advantage.c - the advantage estimators by name (GRPO, Dr.GRPO, RLOO, REINFORCE++ with and
 * without a group baseline, GAE), DAPO's overlong soft penalty and advantage whitening, as pure
 * functions over rewards (see advantage.h; formulas and their sources in docs/rl.md).
 * Not for: sampling or rewards (grpo.c, reward.c), the policy/value losses (train/losses.h). */
#include <math.h>
#include <string.h>
#include "rl/advantage.h"

static const struct { const char *name; tn_adv_estimator e; } NAMES[] = {
  {"grpo", TN_ADV_GRPO}, {"group_norm", TN_ADV_GRPO},
  {"drgrpo", TN_ADV_DRGRPO}, {"dr_grpo", TN_ADV_DRGRPO},
  {"rloo", TN_ADV_RLOO},
  {"reinforce", TN_ADV_REINFORCE}, {"reinforce_pp", TN_ADV_REINFORCE},
  {"reinforce_baseline", TN_ADV_REINFORCE_BASELINE}, {"reinforce_pp_baseline", TN_ADV_REINFORCE_BASELINE},
  {"gae", TN_ADV_GAE},
};

tn_status tn_adv_estimator_parse(const char *name, tn_adv_estimator *out) {
  for (size_t i = 0; name && i < sizeof NAMES / sizeof NAMES[0]; i++)
    if (!strcmp(name, NAMES[i].name)) { *out = NAMES[i].e; return TN_OK; }
  return tn_error(TN_ERR_ARG, "advantage_estimator '%s': expected grpo (group_norm), drgrpo (dr_grpo), rloo, "
                  "reinforce (reinforce_pp), reinforce_baseline (reinforce_pp_baseline) or gae", name ? name : "(null)");
}

const char *tn_adv_estimator_name(tn_adv_estimator e) {
  for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
    if (NAMES[i].e == e) return NAMES[i].name;
  return "?";
}

void tn_whiten(float *x, const int *w, int n) {
  double sw = 0, mu = 0, var = 0;
  for (int i = 0; i < n; i++) { const double wi = w ? (double)w[i] : 1.0; sw += wi; mu += wi * x[i]; }
  if (sw <= 0) return;
  mu /= sw;
  for (int i = 0; i < n; i++) { const double wi = w ? (double)w[i] : 1.0, d = x[i] - mu; var += wi * d * d; }
  var /= sw;
  const double rstd = 1.0 / sqrt(var > 1e-8 ? var : 1e-8);
  for (int i = 0; i < n; i++) x[i] = (float)((x[i] - mu) * rstd);
}

void tn_rl_advantages(tn_adv_estimator e, float *adv, const float *rewards, int n_groups, int G, const int *len,
                      tn_scale_rewards scale, float eps) {
  // adv, rewards, len (n_groups * G)
  const int n = n_groups * G;
  switch (e) {
  case TN_ADV_GRPO: tn_grpo_advantages(adv, rewards, n_groups, G, scale, eps); return;
  case TN_ADV_DRGRPO: tn_grpo_advantages(adv, rewards, n_groups, G, TN_SCALE_NONE, eps); return;
  case TN_ADV_RLOO:
    for (int g = 0; g < n_groups; g++) {
      double sum = 0;
      for (int i = 0; i < G; i++) sum += rewards[g * G + i];
      for (int i = 0; i < G; i++) {
        const double r = rewards[g * G + i];
        adv[g * G + i] = (float)(G > 1 ? r - (sum - r) / (G - 1) : 0.0);
      }
    }
    return;
  case TN_ADV_REINFORCE:
  case TN_ADV_REINFORCE_BASELINE: {
    if (e == TN_ADV_REINFORCE) memcpy(adv, rewards, sizeof(float) * n);
    else tn_grpo_advantages(adv, rewards, n_groups, G, TN_SCALE_NONE, eps);
    /* every token of a completion has the same return (gamma 1, outcome reward): the
     * token-weighted whitening is a length-weighted one over completions */
    tn_whiten(adv, len, n);
    return;
  }
  case TN_ADV_GAE:
  default: memset(adv, 0, sizeof(float) * n); return;
  }
}

float tn_overlong_penalty(int len, int max_len, int buffer_len, float factor) {
  if (buffer_len <= 0) return 0.0f;
  int exceed = len - (max_len - buffer_len);
  if (exceed > buffer_len) exceed = buffer_len;
  return exceed > 0 ? (float)(-(double)exceed / buffer_len * factor) : 0.0f;
}

void tn_gae(const float *r, const float *v, int n, float gamma, float lambda, float *adv, float *ret) {
  double last = 0.0;
  for (int t = n - 1; t >= 0; t--) {
    const double next = t + 1 < n ? v[t + 1] : 0.0;
    const double delta = (double)r[t] + gamma * next - v[t];
    last = delta + (double)gamma * lambda * last;
    adv[t] = (float)last;
    ret[t] = (float)(last + v[t]);
  }
}
