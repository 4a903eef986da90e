/* fuzz_runcfg.c - libFuzzer harness: a YAML run config (`tunic CMD --config FILE`)
 * through tn_runcfg_read_yaml and tn_runcfg_load_file against an option table of every
 * type (string, int, float, bool, uint64, double; dotted names); an accepted file is
 * applied, printed and turned into JSON. Aliases (billion laughs) and deep nesting must
 * be refused, not expanded. Not for: argv flags (tests/cli_opts). */
#include "fuzz_common.h"
#include <cjson/cJSON.h>
#include "tunic/obs.h"

static int count_keys(const char *key, const char *value, int line, void *ctx) {
  if (!key || line < 0) abort();
  (void)value;
  (*(int *)ctx)++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write(NULL, "run.yaml", data, size, 0);
  int n = 0;
  tn_error_clear();
  fz_check(tn_runcfg_read_yaml(path, count_keys, &n), "tn_runcfg_read_yaml");
  const char *model = NULL, *reward = "format", *out = NULL;
  int steps = 10, batch = 4;
  float lr = 1e-4f, beta = 0.1f;
  bool bf = false;
  uint64_t seed = 0;
  double tol = 0.5;
  const tn_opt opts[] = {
      {"model", 's', &model, "model dir"},   {"reward", 's', &reward, "rewards"}, {"out", 's', &out, "out"},
      {"steps", 'i', &steps, "steps"},       {"batch-size", 'i', &batch, "batch"}, {"lr", 'f', &lr, "lr"},
      {"optim.beta", 'f', &beta, "beta"},    {"bf16", 'b', &bf, "bf16"},          {"seed", 'u', &seed, "seed"},
      {"eval.tol", 'd', &tol, "tolerance"},
  };
  tn_runcfg *rc = tn_runcfg_new(opts, (int)(sizeof opts / sizeof *opts));
  if (!rc) abort();
  tn_error_clear();
  tn_status s = tn_runcfg_load_file(rc, path);
  fz_check(s, "tn_runcfg_load_file");
  if (s == TN_OK) {
    tn_error_clear();
    s = tn_runcfg_apply(rc);
    fz_check(s, "tn_runcfg_apply");
    cJSON *j = tn_runcfg_json(rc);
    cJSON_Delete(j);
    FILE *f = fopen("/dev/null", "w");
    if (f) { tn_runcfg_print(rc, f, "run"); fclose(f); }
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
      if (!tn_runcfg_origin(rc, opts[i].name)) abort();
  }
  tn_runcfg_free(rc);
  return 0;
}
