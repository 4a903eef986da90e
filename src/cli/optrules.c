/* optrules.c - the range of every numeric command-line option, one row per option name, shared
 * by every command that has the option (flags and `--config` YAML alike): a value given outside
 * its range (0, negative, NaN, Inf, huge) is refused with an error naming the option, the value
 * and where it came from, before any work starts. A same-named option that means something else
 * in one command (distill's --temperature is a divisor, grpo's --beta may be 0 and dpo's may not)
 * has its own row qualified by that command. Defaults are not checked (a few are sentinels, e.g.
 * grpo's --epsilon-high -1 = "same as --epsilon"; they are accepted when given explicitly too).
 * docs/options.md lists these rules; tests/cli_opts/ranges.py checks the two agree.
 * Not for: parsing (cli.c, src/obs/runcfg.c), checks that need more than one option or the data
 * (those stay in the library: tn_generate, the trainers' setup). */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "cli/cli.h"
#include "tunic/obs.h"

enum { LO_OPEN = 1, HI_OPEN = 2 };
#define BIG 1e9          /* counts of steps: more is a typo */
#define LEN 1048576      /* token lengths: 2^20 */
#define I32 2147483647.0 /* int options where any size is harmless (e.g. top-k >= V keeps all) */

typedef struct {
  const char *name, *cmd; /* cmd NULL: every command; else only that command (argv[0], e.g. "data math") */
  double lo, hi;
  int open;               /* LO_OPEN / HI_OPEN: that bound excluded */
  const char *note;       /* what the value means, printed after the range */
} rule;

static const rule RULES[] = {
  /* the trainers' shared options (src/train/opts.c) */
  {"eval-split", NULL, 0, 1, HI_OPEN, "fraction of the training data held out"},
  {"max-seq-len", NULL, 2, LEN, 0, "tokens"},
  {"batch-size", NULL, 1, 65536, 0, NULL},
  {"grad-accum", NULL, 1, 65536, 0, NULL},
  {"steps", NULL, 0, BIG, 0, "0 = from --epochs"},
  {"steps", "grpo", 1, BIG, 0, NULL},
  {"steps", "ppo", 1, BIG, 0, NULL},
  {"epochs", NULL, 1, 1e6, 0, NULL},
  {"lr", NULL, 0, 1e38, 0, "0 = no update (to measure); any finite size (a NaN stop is tested with 1e38)"},
  {"lr-end", NULL, 0, 1e38, 0, NULL},
  {"warmup-steps", NULL, 0, BIG, 0, NULL},
  {"weight-decay", NULL, 0, 1, 0, NULL},
  {"beta1", NULL, 0, 1, HI_OPEN, NULL},
  {"beta2", NULL, 0, 1, HI_OPEN, NULL},
  {"adam-eps", NULL, 0, 1, LO_OPEN, NULL},
  {"max-grad-norm", NULL, 0, 1e9, 0, "0 = no clipping"},
  {"lora-rank", NULL, 0, 65536, 0, "0 = full fine-tuning"},
  {"lora-alpha", NULL, 0, 1e6, LO_OPEN, NULL},
  {"lora-dropout", NULL, 0, 1, HI_OPEN, NULL},
  {"eval-every", NULL, 0, BIG, 0, "0 = at the end only"},
  {"save-every", NULL, 0, BIG, 0, "0 = at the end only"},
  {"keep-last", NULL, 0, 1e6, 0, "0 = keep all"},
  {"seed", NULL, 0, 18446744073709551615.0, 0, NULL},
  /* sampling (generate, eval, grpo; distill's on-policy samples) */
  {"temperature", NULL, 0, 100, 0, "0 = greedy"},
  {"temperature", "grpo", 0, 100, LO_OPEN, "log-probs are of logits / T"},
  {"temperature", "ppo", 0, 100, LO_OPEN, "log-probs are of logits / T"},
  {"temperature", "distill", 0, 100, LO_OPEN, "distillation temperature, a divisor"},
  {"gen-temperature", NULL, 0, 100, 0, "0 = greedy"},
  {"top-p", NULL, 0, 1, LO_OPEN, "1 = off"},
  {"top-k", NULL, 0, I32, 0, "0 = off; >= the vocabulary keeps all"},
  {"min-p", NULL, 0, 1, 0, "0 = off"},
  {"repetition-penalty", NULL, 0, 100, LO_OPEN, "1 = off"},
  {"frequency-penalty", NULL, -2, 2, 0, "OpenAI's range; 0 = off"},
  {"presence-penalty", NULL, -2, 2, 0, "OpenAI's range; 0 = off"},
  {"n", NULL, 1, 65536, 0, "samples per prompt"},
  {"n", "data math", 1, 1e8, 0, "problems"},
  {"max-new-tokens", NULL, 1, LEN, 0, NULL},
  {"max-tokens-to-generate", NULL, 1, LEN, 0, NULL},
  {"max-prompt-length", NULL, 1, LEN, 0, NULL},
  {"max-prompt-length", "eval", 0, LEN, 0, "0 = no limit"},
  {"max-response-length", NULL, 1, LEN, 0, NULL},
  /* dpo */
  {"beta", "dpo", 0, 1000, LO_OPEN, NULL},
  {"label-smoothing", NULL, 0, 1, 0, NULL},
  {"orpo-lambda", NULL, 0, 1000, 0, NULL},
  /* grpo */
  {"beta", "grpo", 0, 1000, 0, "0 = no reference model"},
  {"beta", "ppo", 0, 1000, 0, "0 = no reference model"},
  {"num-generations", "ppo", 1, 65536, 0, "completions per prompt"},
  {"gamma", NULL, 0, 1, 0, NULL},
  {"gae-lambda", NULL, 0, 1, 0, NULL},
  {"clip-range-value", NULL, 0, 1e6, 0, "0 = off"},
  {"vf-coef", NULL, 0, 1e6, 0, NULL},
  {"ent-coef", NULL, 0, 1e6, 0, NULL},
  {"critic-lr", NULL, -1, 1e38, 0, "< 0: --lr"},
  {"num-generations", NULL, 2, 65536, 0, "advantages are relative to the group"},
  {"num-iterations", NULL, 1, 1000, 0, NULL},
  {"micro-batch", NULL, 0, LEN, 0, "0 = all sequences at once"},
  {"epsilon", NULL, 0, 10, 0, NULL},
  {"epsilon-high", NULL, -1, 10, 0, "< 0: the same as --epsilon"},
  {"reward-cmd-timeout", NULL, 0, 86400, LO_OPEN, "seconds"},
  /* agentic episodes (src/agent/agentic.h: grpo, eval, generate) */
  {"max-turns", NULL, 1, 1000, 0, "model turns per episode"},
  {"max-episode-tokens", NULL, 1, LEN, 0, "tokens after the prompt"},
  {"episode-timeout", NULL, 0, 86400, 0, "seconds, 0 = none"},
  {"tool-timeout", NULL, 0, 86400, LO_OPEN, "seconds"},
  /* tool run */
  {"timeout", "tool run", 0, 86400, LO_OPEN, "seconds"},
  {"output-cap", "tool run", 1, I32, 0, "bytes"},
  {"timeout", "tool list", 0, 86400, LO_OPEN, "seconds"},
  {"output-cap", "tool list", 1, I32, 0, "bytes"},
  {"max-num-gen-batches", NULL, 1, 1000, 0, "generation rounds per step"},
  {"overlong-buffer-len", NULL, 0, LEN, 0, "0 = off"},
  {"overlong-penalty", NULL, 0, 1e6, 0, NULL},
  /* distill */
  {"alpha", NULL, 0, 1, 0, NULL},
  {"jsd-beta", NULL, -1, 1, 0, "< 0: T^2-scaled KL"},
  {"lmbda", NULL, 0, 1, 0, NULL},
  {"feature-weight", NULL, 0, 1e6, 0, NULL},
  /* eval, report, logits */
  {"limit", NULL, 0, I32, 0, "0 = all"},
  {"max-flips", NULL, 0, 1e6, 0, NULL},
  {"excerpt-chars", NULL, 0, 1e6, 0, NULL},
  {"step", NULL, 0, I32, 0, "0 = all tokens at once"},
  /* init, merge, train-tokenizer, data */
  {"vocab", NULL, 0, 16777216, 0, "0 = the size's"},
  {"shards", NULL, 1, 1000, 0, NULL},
  {"vocab-size", NULL, 261, 16777216, 0, "256 bytes + 5 special tokens at least"},
  {"min-frequency", NULL, 1, I32, 0, NULL},
  {"test-frac", NULL, 0, 1, HI_OPEN, NULL},
  {"min-steps", NULL, 1, 4, 0, NULL},
  {"max-steps", NULL, 0, 4, 0, "0 = the profile's"},
  {"max-number", NULL, 2, 20, 0, NULL},
  /* store */
  {"count", NULL, 1, 100000, 0, "games"},
  {"min-score", NULL, -1e300, 1e300, 0, "any finite score"},
  /* serve */
  {"port", NULL, 0, 65535, 0, "0 = any free port"},
  {"max-body", NULL, 64, 1073741824, 0, "bytes"},
  {"max-tokens", "serve", 1, LEN, 0, "per request"},
  {"default-max-tokens", NULL, 1, LEN, 0, NULL},
  {"timeout", NULL, 0, 86400, LO_OPEN, "seconds"},
  {"max-requests", NULL, 1, 65536, 0, "queued + running"},
  {"slots", NULL, 1, 1024, 0, NULL},
  {"ctx", NULL, 0, LEN, 0, "0 = min(max_position_embeddings, 4096)"},
  {"quantum", NULL, 1, 1e6, 0, "steps"},
  {"stop-deadline", NULL, 0, 3600, 0, "seconds"},
  /* judge, improve */
  {"score-min", NULL, -1e9, 1e9, 0, NULL},
  {"score-max", NULL, -1e9, 1e9, 0, NULL},
  {"rounds", NULL, 1, 1000, 0, NULL},
  {"samples", NULL, 1, 65536, 0, "per prompt"},
  {"prompts-per-round", NULL, 0, I32, 0, "0 = every prompt"},
  {"gen-batch", NULL, 1, 65536, 0, NULL},
  {"eval-batch", NULL, 1, 65536, 0, NULL},
  {"eval-max-new-tokens", NULL, 1, LEN, 0, NULL},
  {"eval-limit", NULL, 0, I32, 0, "0 = all"},
  {"threshold", NULL, -1e9, 1e9, 0, NULL},
  {"min-tokens", NULL, 0, LEN, 0, NULL},
  {"max-tokens", "improve", 0, LEN, 0, "0 = no bound"},
  {"max-per-prompt", NULL, 0, 65536, 0, "0 = no cap"},
  {"min-gain", NULL, -1, 1, 0, "accuracy (0.01 = 1 point)"},
};

static const rule *find_rule(const char *cmd, const char *name) {
  const rule *any = NULL;
  for (size_t i = 0; i < sizeof RULES / sizeof RULES[0]; i++) {
    if (strcmp(RULES[i].name, name)) continue;
    if (RULES[i].cmd && cmd && !strcmp(RULES[i].cmd, cmd)) return &RULES[i];
    if (!RULES[i].cmd) any = &RULES[i];
  }
  return any;
}

static void num_text(char *buf, size_t n, double x) {
  if (x == 18446744073709551615.0) snprintf(buf, n, "2^64-1");
  else snprintf(buf, n, "%.10g", x);
}

void tn_cli_rule_text(const char *cmd, const char *name, char *buf, size_t n) {
  const rule *r = find_rule(cmd, name);
  if (!r) { snprintf(buf, n, "(no rule)"); return; }
  char lo[32], hi[32];
  num_text(lo, sizeof lo, r->lo);
  num_text(hi, sizeof hi, r->hi);
  snprintf(buf, n, "in %c%s, %s%c%s%s%s", r->open & LO_OPEN ? '(' : '[', lo, hi, r->open & HI_OPEN ? ')' : ']',
           r->note ? " (" : "", r->note ? r->note : "", r->note ? ")" : "");
}

tn_status tn_cli_check_opt(const char *cmd, const tn_flag *f, const char *origin) {
  double x;
  char val[48];
  switch (f->type) {
  case 'i': x = *(const int *)f->dst; snprintf(val, sizeof val, "%d", *(const int *)f->dst); break;
  case 'u': x = (double)*(const uint64_t *)f->dst; snprintf(val, sizeof val, "%" PRIu64, *(const uint64_t *)f->dst); break;
  case 'f': x = *(const float *)f->dst; snprintf(val, sizeof val, "%.9g", x); break;
  case 'd': x = *(const double *)f->dst; snprintf(val, sizeof val, "%.17g", x); break;
  default: return TN_OK; /* strings and bools: checked where they are used */
  }
  const rule *r = find_rule(cmd, f->name);
  if (!r) /* every numeric option has a rule: a new option without one fails every test that gives it */
    return tn_error(TN_ERR_INTERNAL, "option --%s of '%s' has no range rule (src/cli/optrules.c)", f->name, cmd);
  const bool ok = (r->open & LO_OPEN ? x > r->lo : x >= r->lo) && (r->open & HI_OPEN ? x < r->hi : x <= r->hi);
  if (ok) return TN_OK; /* NaN fails both comparisons */
  char want[160];
  tn_cli_rule_text(cmd, f->name, want, sizeof want);
  const bool flag = !origin || !strncmp(origin, "--", 2);
  return tn_error(TN_ERR_ARG, "%s%s--%s %s is out of range: must be %s", flag ? "" : origin, flag ? "" : ": ", f->name,
                  val, want);
}
