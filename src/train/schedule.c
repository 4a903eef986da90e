/* schedule.c - learning rate as a function of the step: constant, linear, and
 * warmup + cosine decay with exactly the semantics of optax's
 * warmup_cosine_decay_schedule (a linear_schedule joined at warmup_steps to a
 * cosine_decay_schedule of length decay_steps - warmup_steps). Computed in double.
 * Not for: applying the rate (optim.c) or parsing config files. */
#include <math.h>
#include <string.h>
#include "base/base.h"
#include "train/optim.h"

tn_schedule tn_schedule_make(tn_schedule_kind kind, double peak_value, long warmup_steps,
                             long decay_steps) {
  tn_schedule s = {.kind = kind, .init_value = 0.0, .peak_value = peak_value, .end_value = 0.0,
                   .warmup_steps = warmup_steps, .decay_steps = decay_steps, .exponent = 1.0};
  return s;
}

tn_status tn_schedule_check(const tn_schedule *s) {
  if (s->kind != TN_SCHED_CONSTANT && s->kind != TN_SCHED_LINEAR && s->kind != TN_SCHED_COSINE)
    return tn_error(TN_ERR_ARG, "schedule: unknown kind %d", (int)s->kind);
  const char *bad = NULL;
  double val = 0;
  if (!isfinite(s->init_value) || s->init_value < 0) bad = "init_value", val = s->init_value;
  else if (!isfinite(s->peak_value) || s->peak_value < 0) bad = "peak_value", val = s->peak_value;
  else if (!isfinite(s->end_value) || s->end_value < 0) bad = "end_value", val = s->end_value;
  if (bad) return tn_error(TN_ERR_ARG, "schedule: %s = %g must be finite and >= 0", bad, val);
  if (s->warmup_steps < 0)
    return tn_error(TN_ERR_ARG, "schedule: warmup_steps = %ld must be >= 0", s->warmup_steps);
  if (s->kind != TN_SCHED_CONSTANT && s->decay_steps < 0)
    return tn_error(TN_ERR_ARG, "schedule: decay_steps = %ld must be >= 0", s->decay_steps);
  if (s->kind == TN_SCHED_COSINE) {
    if (s->decay_steps <= s->warmup_steps)
      return tn_error(TN_ERR_ARG,
                      "schedule: cosine needs decay_steps (%ld, the total length including "
                      "warmup) > warmup_steps (%ld)",
                      s->decay_steps, s->warmup_steps);
    if (!isfinite(s->exponent))
      return tn_error(TN_ERR_ARG, "schedule: exponent = %g must be finite", s->exponent);
  }
  return TN_OK;
}

/* optax.linear_schedule(init, end, steps) at count: held at init when steps <= 0. */
static double linear_part(double init, double end, long steps, long count) {
  if (steps <= 0) return init;
  double c = count < 0 ? 0.0 : count > steps ? (double)steps : (double)count;
  double frac = 1.0 - c / (double)steps;
  return (init - end) * frac + end;
}

float tn_lr_at(const tn_schedule *s, long step) {
  long W = s->warmup_steps;
  if (step < W) return (float)linear_part(s->init_value, s->peak_value, W, step);
  long k = step - W;                /* steps since the end of the warmup */
  long T = s->decay_steps - W;      /* length of the decay phase */
  double peak = s->peak_value, end = s->end_value;
  switch (s->kind) {
  case TN_SCHED_CONSTANT:
    return (float)peak;
  case TN_SCHED_LINEAR:
    return (float)linear_part(peak, end, T, k);
  case TN_SCHED_COSINE: {
    double alpha = peak == 0.0 ? 0.0 : end / peak;
    if (T <= 0) return (float)(peak * alpha); /* rejected by tn_schedule_check */
    double c = k > T ? (double)T : (double)k;
    double cosine = 0.5 * (1.0 + cos(M_PI * c / (double)T));
    return (float)(peak * ((1.0 - alpha) * pow(cosine, s->exponent) + alpha));
  }
  }
  return (float)peak;
}

tn_status tn_schedule_kind_parse(const char *name, tn_schedule_kind *kind) {
  if (name && strcmp(name, "constant") == 0) *kind = TN_SCHED_CONSTANT;
  else if (name && strcmp(name, "linear") == 0) *kind = TN_SCHED_LINEAR;
  else if (name && (strcmp(name, "cosine") == 0 || strcmp(name, "warmup_cosine") == 0))
    *kind = TN_SCHED_COSINE;
  else
    return tn_error(TN_ERR_ARG, "unknown lr schedule '%s' (expected constant, linear or cosine)",
                    name ? name : "(null)");
  return TN_OK;
}

const char *tn_schedule_kind_name(tn_schedule_kind kind) {
  switch (kind) {
  case TN_SCHED_CONSTANT: return "constant";
  case TN_SCHED_LINEAR: return "linear";
  case TN_SCHED_COSINE: return "cosine";
  }
  return "?";
}
