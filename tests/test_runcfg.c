/* test_runcfg.c - the run-config loader: YAML flattening, typed options, errors that name the
 * file / line / key / value / expected type, flags overriding the file whatever their order,
 * the resolved values as JSON and as printed text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "obs/obs.h"
/* the CLI helpers live in the tunic program, not the library: compile them in here */
#include "cli/cli.c"
#include "cli/optrules.c"

static char *write_tmp(const char *text) {
  char *p = strdup("/tmp/tn_runcfg_XXXXXX.yaml");
  int fd = mkstemps(p, 5);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return p;
}

/* the options of an imaginary trainer */
typedef struct {
  const char *model, *out, *reward, *optim_name;
  int lora_rank, steps;
  float lr, beta;
  double optim_eps;
  bool rslora, packing;
  uint64_t seed;
} opts_t;

static int make_opts(opts_t *o, tn_opt *t) {
  memset(o, 0, sizeof *o);
  o->out = "runs/default";
  o->lora_rank = 16;
  o->steps = 100;
  o->lr = 1e-4f;
  o->beta = 0.04f;
  o->optim_eps = 1e-8;
  o->packing = true;
  o->seed = 1;
  tn_opt tab[] = {
      {"model", 's', &o->model, "model directory"},
      {"out", 's', &o->out, "run directory"},
      {"reward", 's', &o->reward, "reward functions"},
      {"lora-rank", 'i', &o->lora_rank, "LoRA rank"},
      {"steps", 'i', &o->steps, "optimizer steps"},
      {"lr", 'f', &o->lr, "peak learning rate"},
      {"beta", 'f', &o->beta, "KL weight"},
      {"optim.eps", 'd', &o->optim_eps, "AdamW epsilon"},
      {"optim.name", 's', &o->optim_name, "optimizer"},
      {"rslora", 'b', &o->rslora, "rank-stabilised LoRA"},
      {"packing", 'b', &o->packing, "pack sequences"},
      {"seed", 'u', &o->seed, "seed"},
  };
  int n = (int)(sizeof tab / sizeof tab[0]);
  memcpy(t, tab, sizeof tab);
  return n;
}

static int collect(const char *key, const char *value, int line, void *ctx) {
  char *buf = ctx;
  size_t k = strlen(buf);
  snprintf(buf + k, 2048 - k, "%s=%s@%d;", key, value ? value : "(null)", line);
  return 0;
}

static void test_read_yaml(void **state) {
  (void)state;
  char *p = write_tmp("# a run\n"
                      "model: models/tiny\n"
                      "lora_rank: 8\n"
                      "optim:\n"
                      "  name: adamw\n"
                      "  betas: [0.9, 0.95]\n"
                      "  sched:\n"
                      "    warmup: 10\n"
                      "reward:\n"
                      "  - format\n"
                      "  - answer\n"
                      "empty:\n"
                      "tilde: ~\n"
                      "quoted: \"\"\n"
                      "after: 'x: y'\n");
  char buf[2048] = "";
  assert_int_equal(tn_runcfg_read_yaml(p, collect, buf), TN_OK);
  assert_string_equal(buf, "model=models/tiny@2;lora_rank=8@3;optim.name=adamw@5;optim.betas=0.9,0.95@6;"
                           "optim.sched.warmup=10@8;reward=format,answer@9;empty=(null)@12;tilde=(null)@13;"
                           "quoted=@14;after=x: y@15;");
  unlink(p);
  free(p);
  /* not a mapping, bad syntax, aliases */
  const char *bad[] = {"- a\n- b\n", "a: [1, 2\n", "a: &x 1\nb: *x\n", "a: [[1]]\n", "a: [{b: 1}]\n"};
  const char *why[] = {"mapping", "YAML error", "alias", "nested lists", "list of mappings"};
  for (int i = 0; i < 5; i++) {
    p = write_tmp(bad[i]);
    buf[0] = 0;
    assert_int_not_equal(tn_runcfg_read_yaml(p, collect, buf), TN_OK);
    if (!strstr(tn_last_error(), why[i])) fprintf(stderr, "case %d: %s\n", i, tn_last_error());
    assert_non_null(strstr(tn_last_error(), why[i]));
    assert_non_null(strstr(tn_last_error(), p));
    unlink(p);
    free(p);
  }
  assert_int_equal(tn_runcfg_read_yaml("/nonexistent.yaml", collect, buf), TN_ERR_IO);
  /* an empty file is an empty config */
  p = write_tmp("");
  buf[0] = 0;
  assert_int_equal(tn_runcfg_read_yaml(p, collect, buf), TN_OK);
  assert_string_equal(buf, "");
  unlink(p);
  free(p);
}

static void test_file_and_flags(void **state) {
  (void)state;
  char *p = write_tmp("model: models/tiny\n"
                      "lora_rank: 8\n"
                      "lr: 3e-4\n"
                      "rslora: yes\n"
                      "packing: false\n"
                      "seed: 18446744073709551615\n"
                      "reward: [format, answer]\n"
                      "optim:\n"
                      "  eps: 1.0e-6\n"
                      "  name: adamw\n"
                      "steps: ~\n");
  opts_t o;
  tn_opt t[16];
  int n = make_opts(&o, t);
  tn_runcfg *rc = tn_runcfg_new(t, n);
  char cfgarg[300];
  snprintf(cfgarg, sizeof cfgarg, "--config=%s", p);
  /* flags before AND after --config both override the file */
  char *argv[] = {"sft", "--lr", "5e-4", cfgarg, "--lora-rank=32", "--out", "runs/x", "--packing"};
  bool help = true;
  assert_int_equal(tn_runcfg_parse(rc, 8, argv, NULL, &help), TN_OK);
  assert_false(help);
  assert_string_equal(o.model, "models/tiny");
  assert_int_equal(o.lora_rank, 32);
  assert_true(o.lr == 5e-4f);
  assert_true(o.beta == 0.04f); /* default kept */
  assert_int_equal(o.steps, 100); /* null in the file keeps the default */
  assert_true(o.rslora);
  assert_true(o.packing);
  assert_true(o.seed == UINT64_MAX);
  assert_string_equal(o.reward, "format,answer");
  assert_true(o.optim_eps == 1e-6);
  assert_string_equal(o.optim_name, "adamw");
  assert_string_equal(o.out, "runs/x");
  assert_string_equal(tn_runcfg_origin(rc, "lr"), "--lr");
  char want[300];
  snprintf(want, sizeof want, "%s:2", p);
  assert_string_equal(tn_runcfg_origin(rc, "lora_rank"), "--lora-rank");
  assert_string_equal(tn_runcfg_origin(rc, "model"), (snprintf(want, sizeof want, "%s:1", p), want));
  assert_string_equal(tn_runcfg_origin(rc, "beta"), "default");

  /* JSON for the manifest: typed values, floats as their short decimal */
  cJSON *j = tn_runcfg_json(rc);
  char *s = cJSON_PrintUnformatted(j);
  assert_non_null(strstr(s, "\"lr\":0.0005,"));
  assert_non_null(strstr(s, "\"beta\":0.04,"));
  assert_non_null(strstr(s, "\"lora-rank\":32,"));
  assert_non_null(strstr(s, "\"rslora\":true,"));
  assert_non_null(strstr(s, "\"seed\":\"18446744073709551615\""));
  assert_non_null(strstr(s, "\"optim.eps\":1e-06,"));
  assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "config")));
  assert_string_equal(cJSON_GetObjectItem(j, "config")->valuestring, p);
  cJSON_free(s);
  cJSON_Delete(j);

  /* printed table */
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  tn_runcfg_print(rc, f, "resolved config:");
  fclose(f);
  assert_non_null(strstr(text, "resolved config:\n"));
  assert_non_null(strstr(text, "lora-rank  = 32 "));
  assert_non_null(strstr(text, "(--lora-rank)"));
  assert_non_null(strstr(text, "(default)"));
  free(text);
  tn_runcfg_free(rc);
  unlink(p);
  free(p);
}

/* Parse ARGV with a config file of TEXT; return the status and copy the error. */
static tn_status parse_with(const char *text, int argc, char **argv, char *err, char **path_out) {
  char *p = write_tmp(text);
  opts_t o;
  tn_opt t[16];
  int n = make_opts(&o, t);
  tn_runcfg *rc = tn_runcfg_new(t, n);
  char *av[16];
  char cfgarg[300];
  snprintf(cfgarg, sizeof cfgarg, "--config=%s", p);
  av[0] = "sft";
  av[1] = cfgarg;
  for (int i = 0; i < argc; i++) av[2 + i] = argv[i];
  tn_status s = tn_runcfg_parse(rc, argc + 2, av, NULL, NULL);
  snprintf(err, 1024, "%s", tn_last_error());
  tn_runcfg_free(rc);
  unlink(p);
  if (path_out) *path_out = p;
  else free(p);
  return s;
}

static void test_errors(void **state) {
  (void)state;
  char err[1024], *p;
  /* unknown key: names the key, the file and line, and suggests the near miss */
  assert_int_equal(parse_with("model: m\nlora_rnak: 8\n", 0, NULL, err, &p), TN_ERR_ARG);
  assert_non_null(strstr(err, "lora_rnak"));
  assert_non_null(strstr(err, p));
  assert_non_null(strstr(err, ":2:"));
  assert_non_null(strstr(err, "did you mean 'lora-rank'"));
  free(p);
  /* wrong type: key, value and expected type */
  assert_int_equal(parse_with("lora_rank: abc\n", 0, NULL, err, &p), TN_ERR_ARG);
  assert_non_null(strstr(err, ":1: lora_rank: 'abc' is not a valid integer")); /* the key as written */
  assert_non_null(strstr(err, "'abc'"));
  assert_non_null(strstr(err, "integer"));
  assert_non_null(strstr(err, p));
  free(p);
  struct { const char *yaml, *want; } cases[] = {
      {"lr: fast\n", "number"},          {"rslora: maybe\n", "bool"},
      {"seed: -1\n", "unsigned"},        {"lora_rank: 1.5\n", "integer"},
      {"lora_rank: 99999999999\n", "integer"}, {"lr: 1e99\n", "number"},
      {"steps: [1, 2]\n", "'1,2'"},      {"model: a\nmodel: b\n", "given twice"},
      {"optim:\n  nope: 1\n", "optim.nope"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(parse_with(cases[i].yaml, 0, NULL, err, NULL), TN_ERR_ARG);
    if (!strstr(err, cases[i].want)) fprintf(stderr, "case %zu: %s\n", i, err);
    assert_non_null(strstr(err, cases[i].want));
  }
  /* command-line errors */
  char *a1[] = {"--lora-rank", "x"};
  assert_int_equal(parse_with("", 2, a1, err, NULL), TN_ERR_ARG);
  assert_non_null(strstr(err, "--lora-rank: lora-rank: 'x' is not a valid integer"));
  char *a2[] = {"--bogus", "1"};
  assert_int_equal(parse_with("", 2, a2, err, NULL), TN_ERR_ARG);
  assert_non_null(strstr(err, "unknown option '--bogus'"));
  char *a3[] = {"positional"};
  assert_int_equal(parse_with("", 1, a3, err, NULL), TN_ERR_ARG);
  assert_non_null(strstr(err, "unexpected argument 'positional'"));
  char *a4[] = {"--steps"};
  assert_int_equal(parse_with("", 1, a4, err, NULL), TN_ERR_ARG);
  assert_non_null(strstr(err, "needs a value"));
  /* a flag fixes a bad file value? No: the file is checked on its own */
  char *a5[] = {"--lora-rank", "4"};
  assert_int_equal(parse_with("lora_rank: abc\n", 2, a5, err, NULL), TN_ERR_ARG);
}

static void test_help_and_defaults(void **state) {
  (void)state;
  opts_t o;
  tn_opt t[16];
  int n = make_opts(&o, t);
  tn_runcfg *rc = tn_runcfg_new(t, n);
  char *argv[] = {"sft", "--lr", "bad", "--help"};
  bool help = false;
  /* --help wins over everything else and writes nothing */
  FILE *saved = stdout;
  char *text = NULL;
  size_t len = 0;
  stdout = open_memstream(&text, &len);
  tn_status s = tn_runcfg_parse(rc, 4, argv, "--model DIR [options]", &help);
  fclose(stdout);
  stdout = saved;
  assert_int_equal(s, TN_OK);
  assert_true(help);
  assert_true(o.lr == 1e-4f);
  assert_non_null(strstr(text, "usage: tunic sft --model DIR [options]"));
  assert_non_null(strstr(text, "--config FILE"));
  assert_non_null(strstr(text, "--lora-rank N"));
  assert_non_null(strstr(text, "(default 16)"));
  free(text);
  tn_runcfg_free(rc);
  /* no config, no flags: defaults, and JSON has config null */
  n = make_opts(&o, t);
  rc = tn_runcfg_new(t, n);
  char *argv2[] = {"sft", "--rslora", "--packing=false"};
  assert_int_equal(tn_runcfg_parse(rc, 3, argv2, NULL, NULL), TN_OK);
  assert_true(o.rslora);
  assert_false(o.packing);
  cJSON *j = tn_runcfg_json(rc);
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "config")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "model")));
  assert_string_equal(cJSON_GetObjectItem(j, "out")->valuestring, "runs/default");
  assert_int_equal(cJSON_GetObjectItem(j, "steps")->valueint, 100);
  cJSON_Delete(j);
  tn_runcfg_free(rc);
}

/* the subcommands' entry point: a tn_flag table + --config */
static void test_cli_parse_config(void **state) {
  (void)state;
  char *p = write_tmp("lora_rank: 4\nmodel: m\n");
  const char *model = NULL;
  int rank = 16;
  float lr = 1e-4f;
  bool rs = false;
  tn_flag flags[] = {{"model", 's', &model, "model"}, {"lora-rank", 'i', &rank, "rank"},
                     {"lr", 'f', &lr, "lr"},        {"rslora", 'b', &rs, "rs"}};
  char *argv[] = {"sft", "--config", p, "--lr=2e-5", "--rslora"};
  struct tn_runcfg *rc = NULL;
  assert_int_equal(tn_cli_parse_config(5, argv, flags, 4, NULL, &rc), 0);
  assert_non_null(rc);
  assert_string_equal(model, "m");
  assert_int_equal(rank, 4);
  assert_true(lr == 2e-5f);
  assert_true(rs);
  tn_runcfg_free(rc);
  char *bad[] = {"sft", "--config", p, "--lora-rank", "many"};
  assert_int_equal(tn_cli_parse_config(5, bad, flags, 4, NULL, &rc), -1);
  assert_null(rc);
  unlink(p);
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_yaml),
      cmocka_unit_test(test_file_and_flags),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_help_and_defaults),
      cmocka_unit_test(test_cli_parse_config),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
