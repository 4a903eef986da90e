/* fuzz_extract.c - libFuzzer harness: answer extraction, number parsing and the reward
 * functions on a completion. Input: completion, NUL, reference answer, NUL, a reward
 * spec ("format_exact:1,answer:2,..."). Every extractor, tn_score_example (both format
 * modes), each built-in reward and a weighted set built from the spec (when it parses)
 * run on it; values must be finite and the extracted text NUL-terminated in its buffer.
 * Not for: the rubric (fuzz_rubric.c) or the external reward process. */
#include <math.h>
#include <cjson/cJSON.h>
#include "fuzz_common.h"
#include "eval/eval.h"
#include "rl/rewards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *part[3];
  size_t len[3];
  int k = fz_split(data, size, 3, part, len);
  char *comp = fz_str(part[0], len[0]);
  char *ref = k > 1 ? fz_str(part[1], len[1]) : fz_str((const uint8_t *)"42", 2);
  char *spec = k > 2 ? fz_str(part[2], len[2]) : NULL;
  tn_extract_config ec;
  tn_extract_config_default(&ec);
  char out[16];
  for (int m = 0; m < 4; m++) {
    ec.tags_only = m & 1;
    ec.format_strict = m & 2;
    tn_extract_method how = tn_extract_answer(comp, &ec, out, sizeof out);
    if (how < TN_EXTRACT_NONE || how >= TN_EXTRACT_COUNT || strlen(out) >= sizeof out) abort();
    tn_score sc;
    tn_score_example(comp, ref, &ec, &sc);
    if (strlen(sc.extracted) >= sizeof sc.extracted || !isfinite(sc.credit)) abort();
    cJSON *o = cJSON_CreateObject();
    tn_error_clear();
    fz_check(tn_score_to_json(&sc, o), "tn_score_to_json");
    cJSON_Delete(o);
    tn_format_ok(comp, &ec);
  }
  double v;
  tn_parse_number(comp, &v);
  tn_find_single_number(comp, &v);
  tn_answer_value(comp, &v);
  tn_answers_equal(comp, ref);
  tn_reward_config rc;
  tn_reward_config_default(&rc);
  float r[5] = {tn_reward_format_exact(comp, &rc), tn_reward_format_approx(comp, &rc),
                tn_reward_answer(comp, ref, &rc), tn_reward_numeric(comp, ref, &rc), tn_reward_length(comp, &rc)};
  for (int i = 0; i < 5; i++)
    if (!isfinite(r[i])) abort();
  if (spec) {
    tn_rewards *set = NULL;
    tn_error_clear();
    tn_status s = tn_rewards_create(&set, spec, &rc);
    fz_check(s, "tn_rewards_create");
    if (s == TN_OK) {
      cJSON *ex = cJSON_CreateObject();
      cJSON_AddStringToObject(ex, "answer", ref);
      const char *prompts[1] = {"q"}, *comps[1] = {comp};
      const cJSON *exs[1] = {ex};
      float per[64], total;
      if (tn_rewards_count(set) <= 64) {
        tn_error_clear();
        s = tn_rewards_compute(set, 1, prompts, comps, exs, per, &total);
        fz_check(s, "tn_rewards_compute");
        if (s == TN_OK && !isfinite(total)) abort();
      }
      cJSON_Delete(ex);
      tn_rewards_free(set);
    }
  }
  free(comp);
  free(ref);
  free(spec);
  return 0;
}
