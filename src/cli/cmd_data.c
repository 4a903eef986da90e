/* cmd_data.c - `tunic data SUBCOMMAND`: synthetic data sets. For now `tunic data math`:
 * GSM8K-style word problems written as train_sft.jsonl, train_grpo.jsonl and test.jsonl.
 * Not for: converting or loading user data (that is the trainers' --data). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "agent/mathtools.h"
#include "data/math.h"

static int cmd_math(int argc, char **argv) {
  tn_math_config c;
  tn_math_config_default(&c);
  int n = 1000, max_steps = 0, min_steps = 1, max_number = 0;
  float test_frac = 0.1f;
  uint64_t seed = 1;
  const char *out = NULL, *profile = "normal";
  bool quiet = false, force = false, tools = false, text_calls = false;
  tn_flag flags[] = {
    {"n", 'i', &n, "total number of problems, train + test (1000)"},
    {"seed", 'u', &seed, "random seed (1); same seed, same files"},
    {"out", 's', &out, "output directory (required)"},
    {"test-frac", 'f', &test_frac, "share of problems in test.jsonl (0.1)"},
    {"min-steps", 'i', &min_steps, "fewest arithmetic steps per problem (1)"},
    {"max-steps", 'i', &max_steps, "most arithmetic steps per problem (normal: 4, easy: 2)"},
    {"profile", 's', &profile, "normal | easy (small numbers, 1-2 steps, short fixed phrasing, for tiny models)"},
    {"max-number", 'i', &max_number, "easy profile: largest number in a question, 2-20 (default 20)"},
    {"tools", 'b', &tools, "tool-use problems instead (3-4 digit products and sums; SFT trajectories with calculator calls; --profile/--*-steps/--max-number do not apply)"},
    {"text-calls", 'b', &text_calls, "with --tools: the calls as <tool_call>{...}</tool_call> text in the assistant's content (for chat templates that do not show tool_calls)"},
    {"quiet", 'b', &quiet, "print nothing on success"},
    {"force", 'b', &force, "write into --out even when it holds other files"},
  };
  int rc = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--out DIR [--n N] [--seed S] [options]");
  if (rc) return rc > 0 ? 0 : 2;
  if (!out) { fprintf(stderr, "tunic data math: --out DIR is required\n"); return 2; }
  static const char *const own[] = {"train_sft.jsonl", "train_grpo.jsonl", "test.jsonl", NULL};
  tn_status os = tn_cli_out_dir("out", out, own, force);
  if (os != TN_OK) return tn_cli_fail("data math", os);
  if (text_calls && !tools) { fprintf(stderr, "tunic data math: --text-calls needs --tools\n"); return 2; }
  if (tools) {
    tn_tool_math_config tc;
    tn_tool_math_config_default(&tc);
    tc.n = n;
    tc.seed = seed;
    tc.test_frac = test_frac;
    tc.text_calls = text_calls;
    int64_t ntr, nte;
    tn_status st = tn_tool_math_write(&tc, out, &ntr, &nte);
    if (st != TN_OK) return tn_cli_fail("data math", st);
    if (!quiet)
      printf("wrote %lld train tool-use problems (%s/train_sft.jsonl with calculator trajectories, %s/train_grpo.jsonl) "
             "and %lld test problems (%s/test.jsonl); seed %llu\n",
             (long long)ntr, out, out, (long long)nte, out, (unsigned long long)seed);
    return 0;
  }
  int prof = tn_math_profile_parse(profile);
  if (prof < 0) { fprintf(stderr, "tunic data math: --profile must be normal or easy (got '%s')\n", profile); return 2; }
  c.n = n;
  c.seed = seed;
  c.test_frac = test_frac;
  c.profile = (tn_math_profile)prof;
  c.min_steps = min_steps;
  c.max_number = max_number;
  c.max_steps = max_steps > 0 ? max_steps : (prof == TN_MATH_EASY ? 2 : 4);
  if (c.max_steps > (prof == TN_MATH_EASY ? 2 : 4) || c.max_steps < 1 || min_steps < 1) {
    fprintf(stderr, "tunic data math: steps must be within 1-%d for the %s profile\n", prof == TN_MATH_EASY ? 2 : 4, profile);
    return 2;
  }
  int64_t ntr, nte;
  tn_status st = tn_math_write(&c, out, &ntr, &nte);
  if (st != TN_OK) return tn_cli_fail("data math", st);
  if (!quiet)
    printf("wrote %lld train problems (%s/train_sft.jsonl, %s/train_grpo.jsonl) and %lld test problems "
           "(%s/test.jsonl); profile %s, %d-%d steps, seed %llu\n",
           (long long)ntr, out, out, (long long)nte, out, profile, c.min_steps, c.max_steps, (unsigned long long)seed);
  return 0;
}

int tn_cmd_data(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    FILE *f = argc < 2 ? stderr : stdout;
    fprintf(f, "usage: tunic data SUBCOMMAND [options]\n\nsubcommands:\n"
               "  math    GSM8K-style word problems (tunic data math --help)\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "math")) {
    char *sub[argc];
    sub[0] = "data math";
    for (int i = 2; i < argc; i++) sub[i - 1] = argv[i];
    return cmd_math(argc - 1, sub);
  }
  fprintf(stderr, "tunic data: unknown subcommand '%s' (known: math)\n", argv[1]);
  return 2;
}
