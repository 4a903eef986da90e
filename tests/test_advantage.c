/* test_advantage.c - the advantage estimators of src/rl/advantage.c on hand-worked cases:
 * GAE over three steps (worked by hand in the comments), RLOO's leave-one-out baseline,
 * REINFORCE++ whitening weighted by completion length with and without the group baseline,
 * DAPO's overlong penalty at and around its ramp, and the names (OpenRLHF's and the aliases).
 * The end-to-end recomputation from dumped rollouts is tests/grpo/estimators.py.
 * Not for: the policy loss (test_losses.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include "rl/advantage.h"

#define CLOSE(a, b) assert_true(fabs((double)(a) - (double)(b)) <= 1e-6)

static void gae_hand(void **st) {
  (void)st;
  /* r = (0, 0, 1), v = (0.5, 0.6, 0.7), gamma 0.9, lambda 0.8:
   * t=2: delta = 1 - 0.7 = 0.3, A = 0.3, R = 1.0
   * t=1: delta = 0.9*0.7 - 0.6 = 0.03, A = 0.03 + 0.72*0.3 = 0.246, R = 0.846
   * t=0: delta = 0.9*0.6 - 0.5 = 0.04, A = 0.04 + 0.72*0.246 = 0.21712, R = 0.71712 */
  const float r[3] = {0, 0, 1}, v[3] = {0.5f, 0.6f, 0.7f};
  float a[3], R[3];
  tn_gae(r, v, 3, 0.9f, 0.8f, a, R);
  CLOSE(a[2], 0.3); CLOSE(a[1], 0.246); CLOSE(a[0], 0.21712);
  CLOSE(R[2], 1.0); CLOSE(R[1], 0.846); CLOSE(R[0], 0.71712);
  /* lambda 1, gamma 1: A_t = sum of rewards from t - v_t (Monte Carlo) */
  tn_gae(r, v, 3, 1.0f, 1.0f, a, R);
  CLOSE(a[0], 0.5); CLOSE(a[1], 0.4); CLOSE(a[2], 0.3);
  /* lambda 0: one-step TD errors */
  tn_gae(r, v, 3, 0.9f, 0.0f, a, R);
  CLOSE(a[0], 0.04); CLOSE(a[1], 0.03); CLOSE(a[2], 0.3);
}

static void rloo_hand(void **st) {
  (void)st;
  const float r[6] = {1, 0, 2, 5, 5, 5};
  const int len[6] = {1, 1, 1, 1, 1, 1};
  float a[6];
  tn_rl_advantages(TN_ADV_RLOO, a, r, 2, 3, len, TN_SCALE_GROUP, 1e-4f);
  CLOSE(a[0], 1 - 2.0 / 2); CLOSE(a[1], 0 - 3.0 / 2); CLOSE(a[2], 2 - 1.0 / 2);
  CLOSE(a[3], 0); CLOSE(a[4], 0); CLOSE(a[5], 0);
}

static void reinforce_hand(void **st) {
  (void)st;
  /* rewards (1, 0), lengths (3, 1): token mean 0.75, token variance (3*0.0625 + 0.5625)/4 = 0.1875 */
  const float r[2] = {1, 0};
  const int len[2] = {3, 1};
  float a[2];
  tn_rl_advantages(TN_ADV_REINFORCE, a, r, 1, 2, len, TN_SCALE_GROUP, 1e-4f);
  CLOSE(a[0], 0.25 / sqrt(0.1875)); CLOSE(a[1], -0.75 / sqrt(0.1875));
  /* with the group baseline: (1, 0 | 3, 3) -> (0.5, -0.5, 0, 0), token mean 0, variance 0.5/6 */
  const float r2[4] = {1, 0, 3, 3};
  const int len2[4] = {1, 1, 2, 2};
  float a2[4];
  tn_rl_advantages(TN_ADV_REINFORCE_BASELINE, a2, r2, 2, 2, len2, TN_SCALE_GROUP, 1e-4f);
  CLOSE(a2[0], 0.5 / sqrt(0.5 / 6)); CLOSE(a2[1], -0.5 / sqrt(0.5 / 6)); CLOSE(a2[2], 0); CLOSE(a2[3], 0);
  /* all equal: variance clamped at 1e-8, advantages 0 */
  const float r3[2] = {2, 2};
  tn_rl_advantages(TN_ADV_REINFORCE, a, r3, 1, 2, len, TN_SCALE_GROUP, 1e-4f);
  CLOSE(a[0], 0); CLOSE(a[1], 0);
  /* drgrpo = grpo without the division */
  tn_rl_advantages(TN_ADV_DRGRPO, a, r, 1, 2, len, TN_SCALE_GROUP, 1e-4f);
  CLOSE(a[0], 0.5); CLOSE(a[1], -0.5);
}

static void overlong_hand(void **st) {
  (void)st;
  CLOSE(tn_overlong_penalty(15, 20, 5, 1.0f), 0);
  CLOSE(tn_overlong_penalty(16, 20, 5, 1.0f), -0.2);
  CLOSE(tn_overlong_penalty(18, 20, 5, 0.5f), -0.3);
  CLOSE(tn_overlong_penalty(20, 20, 5, 1.0f), -1.0);
  CLOSE(tn_overlong_penalty(25, 20, 5, 1.0f), -1.0);
  CLOSE(tn_overlong_penalty(20, 20, 0, 1.0f), 0);
}

static void names(void **st) {
  (void)st;
  tn_adv_estimator e;
  assert_int_equal(tn_adv_estimator_parse("group_norm", &e), TN_OK); assert_int_equal(e, TN_ADV_GRPO);
  assert_int_equal(tn_adv_estimator_parse("dr_grpo", &e), TN_OK); assert_int_equal(e, TN_ADV_DRGRPO);
  assert_int_equal(tn_adv_estimator_parse("reinforce", &e), TN_OK); assert_int_equal(e, TN_ADV_REINFORCE);
  assert_int_equal(tn_adv_estimator_parse("reinforce_pp_baseline", &e), TN_OK); assert_int_equal(e, TN_ADV_REINFORCE_BASELINE);
  assert_int_equal(tn_adv_estimator_parse("gae", &e), TN_OK); assert_int_equal(e, TN_ADV_GAE);
  assert_int_equal(tn_adv_estimator_parse("ppo", &e), TN_ERR_ARG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(gae_hand), cmocka_unit_test(rloo_hand), cmocka_unit_test(reinforce_hand),
    cmocka_unit_test(overlong_hand), cmocka_unit_test(names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
