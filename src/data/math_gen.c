/* math_gen.c - generator of GSM8K-style word problems with exact integer answers and
 * step-by-step solutions (one equation "a op b = c" per line, then "#### answer"),
 * and the JSONL writer of the train/test splits (SFT messages, GRPO prompt+answer).
 * Numbers are drawn so that every division is exact and every difference positive.
 * Not for: real data sets or tokenisation. Profiles documented in docs/eval.md. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "data/math.h"

void tn_math_config_default(tn_math_config *c) {
  memset(c, 0, sizeof *c);
  c->n = 1000;
  c->seed = 1;
  c->test_frac = 0.1;
  c->min_steps = 1;
  c->max_steps = 4;
  c->profile = TN_MATH_NORMAL;
}

int tn_math_profile_parse(const char *s) {
  if (!s) return -1;
  if (!strcmp(s, "normal")) return TN_MATH_NORMAL;
  if (!strcmp(s, "easy")) return TN_MATH_EASY;
  return -1;
}

static const char *const normal_names[] = {"shopping", "ages", "speed", "sharing", "savings", "workers", "baking"};
static const char *const easy_names[] = {"easy_add", "easy_sub", "easy_mul", "easy_div", "easy_add_sub", "easy_mul_add"};

const char *const *tn_math_templates(tn_math_profile p, int *n) {
  if (p == TN_MATH_EASY) { *n = 6; return easy_names; }
  *n = 7;
  return normal_names;
}

/* ---- small helpers ---- */

static int ri(tn_rng *r, int lo, int hi) { /* uniform in [lo, hi] */
  if (hi <= lo) return lo;
  return lo + (int)(tn_rng_u64(r) % (uint64_t)(hi - lo + 1));
}

static const char *NAMES[] = {"Ava", "Ben", "Carla", "Dev", "Emma", "Farid", "Grace", "Hugo",
                              "Ines", "Jamal", "Kim", "Leo", "Mia", "Noah", "Olga", "Priya"};
#define NNAMES ((int)(sizeof NAMES / sizeof NAMES[0]))

/* Three distinct names. */
static void names3(tn_rng *r, const char **a, const char **b, const char **c) {
  int i = ri(r, 0, NNAMES - 1), j = (i + ri(r, 1, NNAMES - 1)) % NNAMES, k;
  do k = ri(r, 0, NNAMES - 1); while (k == i || k == j);
  *a = NAMES[i]; *b = NAMES[j]; *c = NAMES[k];
}
static const char *name1(tn_rng *r) { return NAMES[ri(r, 0, NNAMES - 1)]; }

static void qadd(tn_math_problem *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void qadd(tn_math_problem *p, const char *fmt, ...) {
  size_t n = strlen(p->question);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->question + n, sizeof p->question - n, fmt, ap);
  va_end(ap);
}

static void step(tn_math_problem *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void step(tn_math_problem *p, const char *fmt, ...) {
  size_t n = strlen(p->reasoning);
  if (n && n + 1 < sizeof p->reasoning) p->reasoning[n++] = '\n', p->reasoning[n] = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->reasoning + n, sizeof p->reasoning - n, fmt, ap);
  va_end(ap);
  p->steps++;
}

/* ---- normal templates: each writes question, steps and answer for S steps ---- */

static void t_shopping(tn_rng *r, int s, tn_math_problem *p) {
  static const char *it[][2] = {{"notebook", "notebooks"}, {"apple", "apples"}, {"pen", "pens"}, {"ticket", "tickets"},
                                {"mug", "mugs"}, {"shirt", "shirts"}, {"plant", "plants"}, {"toy car", "toy cars"}};
  const char *nm = name1(r);
  int i1 = ri(r, 0, 7), i2 = (i1 + ri(r, 1, 7)) % 8;
  int a = ri(r, 2, 9), pr = ri(r, 2, 15), x = a * pr;
  qadd(p, "%s buys %d %s for $%d each.", nm, a, it[i1][1], pr);
  long long total = x;
  if (s >= 3) {
    int b = ri(r, 2, 9), q = ri(r, 2, 15), y = b * q;
    qadd(p, " %s also buys %d %s for $%d each.", nm, b, it[i2][1], q);
    step(p, "The %s cost %d * %d = %d dollars.", it[i1][1], a, pr, x);
    step(p, "The %s cost %d * %d = %d dollars.", it[i2][1], b, q, y);
    step(p, "In total %s spends %d + %d = %d dollars.", nm, x, y, x + y);
    total = x + y;
  } else {
    step(p, "%s spends %d * %d = %d dollars.", nm, a, pr, x);
  }
  if (s == 2 || s == 4) {
    int bill = (int)((total / 10 + 1) * 10) + 10 * ri(r, 0, 3);
    qadd(p, " %s pays with $%d. How many dollars of change does %s get?", nm, bill, nm);
    step(p, "The change is %d - %lld = %lld dollars.", bill, total, bill - total);
    p->answer = bill - total;
  } else {
    qadd(p, " How many dollars does %s spend%s?", nm, s >= 3 ? " in total" : "");
    p->answer = total;
  }
}

static void t_ages(tn_rng *r, int s, tn_math_problem *p) {
  const char *n1, *n2, *n3;
  names3(r, &n1, &n2, &n3);
  int a = ri(r, 4, 15), k = ri(r, 2, 4), x = k * a;
  qadd(p, "%s is %d years old. %s is %d times as old as %s.", n1, a, n2, k, n1);
  step(p, "%s is %d * %d = %d years old.", n2, k, a, x);
  if (s == 1) {
    qadd(p, " How old is %s?", n2);
    p->answer = x;
    return;
  }
  int d = ri(r, 1, x - 1), y = x - d;
  qadd(p, " %s is %d year%s younger than %s.", n3, d, d == 1 ? "" : "s", n2);
  step(p, "%s is %d - %d = %d years old.", n3, x, d, y);
  if (s == 2) {
    qadd(p, " How old is %s?", n3);
    p->answer = y;
  } else if (s == 3) {
    qadd(p, " What is the sum of their three ages?");
    step(p, "The sum of their ages is %d + %d + %d = %d.", a, x, y, a + x + y);
    p->answer = a + x + y;
  } else {
    int f = a + ri(r, 2, 20), g = f - a;
    qadd(p, " How old will %s be when %s is %d years old?", n3, n1, f);
    step(p, "%s will be %d in %d - %d = %d years.", n1, f, f, a, g);
    step(p, "Then %s will be %d + %d = %d years old.", n3, y, g, y + g);
    p->answer = y + g;
  }
}

static void t_speed(tn_rng *r, int s, tn_math_problem *p) {
  const char *nm = name1(r);
  int sp = 5 * ri(r, 4, 18), h = ri(r, 2, 8), d = sp * h;
  if (s == 1 && ri(r, 0, 1)) {
    qadd(p, "A train travels %d km at %d km per hour. How many hours does the trip take?", d, sp);
    step(p, "The trip takes %d / %d = %d hours.", d, sp, h);
    p->answer = h;
    return;
  }
  qadd(p, "%s drives at %d km per hour for %d hours.", nm, sp, h);
  step(p, "%s drives %d * %d = %d km.", nm, sp, h, d);
  if (s == 1) {
    qadd(p, " How many kilometers does %s drive?", nm);
    p->answer = d;
    return;
  }
  if (s == 2) {
    int w = ri(r, 2, 15);
    qadd(p, " Then %s walks %d km. How many kilometers does %s travel in total?", nm, w, nm);
    step(p, "In total %s travels %d + %d = %d km.", nm, d, w, d + w);
    p->answer = d + w;
    return;
  }
  int sp2 = 5 * ri(r, 2, 12), h2 = ri(r, 1, 6), d2 = sp2 * h2, t = d + d2;
  qadd(p, " Then %s cycles at %d km per hour for %d hours.", nm, sp2, h2);
  step(p, "%s cycles %d * %d = %d km.", nm, sp2, h2, d2);
  step(p, "In total %s travels %d + %d = %d km.", nm, d, d2, t);
  if (s == 3) {
    qadd(p, " How many kilometers does %s travel in total?", nm);
    p->answer = t;
    return;
  }
  int plan = t + ri(r, 10, 200);
  qadd(p, " The whole trip is %d km long. How many kilometers are left?", plan);
  step(p, "There are %d - %d = %d km left.", plan, t, plan - t);
  p->answer = plan - t;
}

static void t_sharing(tn_rng *r, int s, tn_math_problem *p) {
  static const char *it[] = {"stickers", "marbles", "cookies", "cards", "candies", "beads", "stamps", "shells"};
  const char *nm = name1(r), *thing = it[ri(r, 0, 7)];
  int k = ri(r, 2, 8), e = ri(r, 2, 12), rest = k * e;
  if (s == 1) {
    qadd(p, "%s has %d %s and shares them equally among %d friends. How many %s does each friend get?", nm, rest, thing,
         k, thing);
    step(p, "Each friend gets %d / %d = %d %s.", rest, k, e, thing);
    p->answer = e;
    return;
  }
  int n, g;
  if (s >= 3) {
    int c = ri(r, 2, 10), b = (rest + 1 + c - 1) / c + ri(r, 0, 2);
    n = b * c;
    g = n - rest;
    qadd(p, "%s buys %d packs of %d %s.", nm, b, c, thing);
    step(p, "%s has %d * %d = %d %s.", nm, b, c, n, thing);
  } else {
    g = ri(r, 1, 20);
    n = rest + g;
    qadd(p, "%s has %d %s.", nm, n, thing);
  }
  qadd(p, " %s keeps %d and shares the rest equally among %d friends.", nm, g, k);
  step(p, "%s shares %d - %d = %d %s.", nm, n, g, rest, thing);
  step(p, "Each friend gets %d / %d = %d %s.", rest, k, e, thing);
  if (s <= 3) {
    qadd(p, " How many %s does each friend get?", thing);
    p->answer = e;
    return;
  }
  int f = ri(r, 1, e - 1);
  qadd(p, " Each friend loses %d of them. How many %s does each friend have left?", f, thing);
  step(p, "Each friend has %d - %d = %d %s left.", e, f, e - f, thing);
  p->answer = e - f;
}

static void t_savings(tn_rng *r, int s, tn_math_problem *p) {
  static const char *it[] = {"bike", "game", "jacket", "lamp", "radio", "backpack"};
  const char *nm = name1(r);
  int w = ri(r, 2, 25), k = ri(r, 2, 12), sv = w * k;
  qadd(p, "%s saves $%d every week for %d weeks.", nm, w, k);
  step(p, "%s saves %d * %d = %d dollars.", nm, w, k, sv);
  if (s == 1) {
    qadd(p, " How many dollars does %s save?", nm);
    p->answer = sv;
    return;
  }
  int a = ri(r, 5, 100), t = sv + a;
  qadd(p, " %s already had $%d.", nm, a);
  step(p, "%s has %d + %d = %d dollars.", nm, sv, a, t);
  if (s == 2) {
    qadd(p, " How many dollars does %s have now?", nm);
    p->answer = t;
    return;
  }
  int j = ri(r, 2, 5), left = j * ri(r, 1, (t - 1) / j), b = t - left;
  qadd(p, " Then %s spends $%d on a %s.", nm, b, it[ri(r, 0, 5)]);
  step(p, "%s has %d - %d = %d dollars left.", nm, t, b, left);
  if (s == 3) {
    qadd(p, " How many dollars does %s have left?", nm);
    p->answer = left;
    return;
  }
  qadd(p, " %s splits the money left equally into %d jars. How many dollars go into each jar?", nm, j);
  step(p, "Each jar gets %d / %d = %d dollars.", left, j, left / j);
  p->answer = left / j;
}

static void t_workers(tn_rng *r, int s, tn_math_problem *p) {
  int u = ri(r, 3, 15), h = ri(r, 2, 8), x = u * h;
  qadd(p, "A worker packs %d boxes every hour.", u);
  if (s == 1) {
    qadd(p, " How many boxes does the worker pack in %d hours?", h);
    step(p, "The worker packs %d * %d = %d boxes.", u, h, x);
    p->answer = x;
    return;
  }
  int w = ri(r, 2, 9), t = x * w;
  qadd(p, " %d workers pack boxes for %d hours.", w, h);
  step(p, "One worker packs %d * %d = %d boxes.", u, h, x);
  step(p, "Together they pack %d * %d = %d boxes.", x, w, t);
  if (s == 2) {
    qadd(p, " How many boxes do they pack?");
    p->answer = t;
    return;
  }
  int c = ri(r, 5, 20), rem = c * ri(r, 1, 10), o = t + rem;
  qadd(p, " An order needs %d boxes.", o);
  step(p, "They still need %d - %d = %d boxes.", o, t, rem);
  if (s == 3) {
    qadd(p, " How many more boxes are needed?");
    p->answer = rem;
    return;
  }
  qadd(p, " The missing boxes come from another factory in crates of %d boxes. How many crates are needed?", c);
  step(p, "They need %d / %d = %d crates.", rem, c, rem / c);
  p->answer = rem / c;
}

static void t_baking(tn_rng *r, int s, tn_math_problem *p) {
  static const char *it[] = {"cookies", "muffins", "rolls", "cupcakes", "tarts"};
  const char *nm = name1(r), *thing = it[ri(r, 0, 4)];
  int t = ri(r, 2, 6), c = ri(r, 6, 24), n = t * c;
  qadd(p, "%s bakes %d trays of %d %s.", nm, t, c, thing);
  step(p, "%s bakes %d * %d = %d %s.", nm, t, c, n, thing);
  if (s == 1) {
    qadd(p, " How many %s does %s bake?", thing, nm);
    p->answer = n;
    return;
  }
  int b = ri(r, 2, 6), left = b * ri(r, 1, (n - 1) / b), e = n - left;
  qadd(p, " %s gives %d %s to the neighbours.", nm, e, thing);
  step(p, "%s has %d - %d = %d %s left.", nm, n, e, left, thing);
  if (s == 2) {
    qadd(p, " How many %s are left?", thing);
    p->answer = left;
    return;
  }
  qadd(p, " %s puts the rest into bags of %d.", nm, b);
  step(p, "%s fills %d / %d = %d bags.", nm, left, b, left / b);
  if (s == 3) {
    qadd(p, " How many bags does %s fill?", nm);
    p->answer = left / b;
    return;
  }
  int pr = ri(r, 2, 9);
  qadd(p, " Each bag sells for $%d. How many dollars does %s get?", pr, nm);
  step(p, "%s gets %d * %d = %d dollars.", nm, left / b, pr, left / b * pr);
  p->answer = (long long)(left / b) * pr;
}

/* ---- easy templates: numbers <= M (20 unless --max-number), answers <= 100, equations only ---- */

static const char *EASY_ITEMS[] = {"apples", "pens", "cards", "eggs", "books", "toys", "cups", "balls"};

static void t_easy(tn_rng *r, int which, int M, tn_math_problem *p) {
  const char *nm = NAMES[ri(r, 0, 7)], *it = EASY_ITEMS[ri(r, 0, 7)];
  int a, b, c, x;
  const int mul = M < 9 ? M : 9; /* factors 2..mul */
  switch (which) {
  case 0:
    a = ri(r, 1, M); b = ri(r, 1, M);
    qadd(p, "%s has %d %s. %s gets %d more. How many %s does %s have now?", nm, a, it, nm, b, it, nm);
    step(p, "%d + %d = %d", a, b, a + b);
    p->answer = a + b;
    break;
  case 1:
    a = ri(r, 2, M); b = ri(r, 1, a - 1);
    qadd(p, "%s has %d %s. %s gives away %d. How many %s does %s have now?", nm, a, it, nm, b, it, nm);
    step(p, "%d - %d = %d", a, b, a - b);
    p->answer = a - b;
    break;
  case 2:
    a = ri(r, 2, mul); b = ri(r, 2, mul);
    qadd(p, "%s has %d bags with %d %s each. How many %s does %s have?", nm, a, b, it, it, nm);
    step(p, "%d * %d = %d", a, b, a * b);
    p->answer = a * b;
    break;
  case 3:
    b = ri(r, 2, M < 5 ? 2 : 5); c = ri(r, 1, M / b); a = b * c; /* a <= M */
    qadd(p, "%s shares %d %s equally among %d friends. How many %s does each friend get?", nm, a, it, b, it);
    step(p, "%d / %d = %d", a, b, c);
    p->answer = c;
    break;
  case 4:
    a = ri(r, 1, M); b = ri(r, 1, M); x = a + b; c = ri(r, 1, x - 1 < M ? x - 1 : M);
    qadd(p, "%s has %d %s. %s gets %d more and gives away %d. How many %s does %s have now?", nm, a, it, nm, b, c, it, nm);
    step(p, "%d + %d = %d", a, b, x);
    step(p, "%d - %d = %d", x, c, x - c);
    p->answer = x - c;
    break;
  default:
    a = ri(r, 2, mul); b = ri(r, 2, mul); x = a * b; c = ri(r, 1, 100 - x < M ? 100 - x : M);
    qadd(p, "%s has %d bags with %d %s each and %d more %s. How many %s does %s have?", nm, a, b, it, c, it, it, nm);
    step(p, "%d * %d = %d", a, b, x);
    step(p, "%d + %d = %d", x, c, x + c);
    p->answer = x + c;
    break;
  }
  p->category = easy_names[which];
}

tn_status tn_math_problem_gen(tn_rng *rng, const tn_math_config *c, tn_math_problem *p) {
  memset(p, 0, sizeof *p);
  int hi = c->profile == TN_MATH_EASY ? 2 : 4;
  int lo = c->min_steps < 1 ? 1 : c->min_steps;
  if (c->max_steps > 0 && c->max_steps < hi) hi = c->max_steps;
  if (lo > hi)
    return tn_error(TN_ERR_ARG, "math data: --min-steps %d > --max-steps %d (the %s profile has 1-%d steps)", lo, hi,
                    c->profile == TN_MATH_EASY ? "easy" : "normal", c->profile == TN_MATH_EASY ? 2 : 4);
  int s = ri(rng, lo, hi);
  if (c->profile == TN_MATH_EASY) {
    int which = s == 1 ? ri(rng, 0, 3) : ri(rng, 4, 5);
    t_easy(rng, which, c->max_number > 0 ? c->max_number : 20, p);
  } else {
    static void (*const fns[])(tn_rng *, int, tn_math_problem *) = {t_shopping, t_ages, t_speed, t_sharing,
                                                                     t_savings, t_workers, t_baking};
    int t = ri(rng, 0, 6);
    fns[t](rng, s, p);
    p->category = normal_names[t];
  }
  if (p->steps != s) return tn_error(TN_ERR_INTERNAL, "math data: template %s wrote %d steps for %d", p->category, p->steps, s);
  snprintf(p->solution, sizeof p->solution, "%s\n#### %lld", p->reasoning, p->answer);
  return TN_OK;
}

/* ---- whole data set ---- */

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h ? h : 1;
}

tn_status tn_math_generate(const tn_math_config *c, tn_math_problem **out, int64_t *n_train, int64_t *n_test) {
  *out = NULL;
  if (c->n <= 0) return tn_error(TN_ERR_ARG, "math data: --n must be positive (got %lld)", (long long)c->n);
  if (!(c->test_frac >= 0 && c->test_frac < 1)) return tn_error(TN_ERR_ARG, "math data: --test-frac must be in [0, 1)");
  if (c->max_number && (c->profile != TN_MATH_EASY || c->max_number < 2 || c->max_number > 20))
    return tn_error(TN_ERR_ARG, "math data: --max-number %d: only the easy profile takes it, within 2-20", c->max_number);
  tn_math_problem *ps = malloc(sizeof *ps * c->n);
  int64_t cap = 16;
  while (cap < 2 * c->n) cap *= 2;
  uint64_t *seen = calloc(cap, sizeof *seen); /* question hashes (open addressing, 0 = empty) */
  if (!ps || !seen) { free(ps); free(seen); return tn_error(TN_ERR_NOMEM, "math data: out of memory for %lld problems", (long long)c->n); }
  tn_rng rng;
  tn_rng_seed(&rng, c->seed);
  int64_t have = 0, tries = 0;
  while (have < c->n) {
    if (++tries > 50 * c->n + 1000) {
      free(ps); free(seen);
      return tn_error(TN_ERR_LIMIT, "math data: could only make %lld distinct problems of %lld with these settings "
                      "(use fewer problems or more steps)", (long long)have, (long long)c->n);
    }
    tn_status st = tn_math_problem_gen(&rng, c, &ps[have]);
    if (st != TN_OK) { free(ps); free(seen); return st; }
    uint64_t h = fnv1a(ps[have].question), i = h & (cap - 1);
    bool dup = false;
    while (seen[i]) {
      if (seen[i] == h) { dup = true; break; } /* equal hash: treated as the same text */
      i = (i + 1) & (cap - 1);
    }
    if (dup) continue;
    seen[i] = h;
    have++;
  }
  free(seen);
  *n_test = (int64_t)llround((double)c->n * c->test_frac);
  *n_train = c->n - *n_test;
  *out = ps;
  return TN_OK;
}

typedef struct {
  const tn_math_problem *ps;
  int64_t from, to;
  int kind; /* 0 sft, 1 grpo/test records */
  const char *prefix;
} write_ctx;

static tn_status fill_jsonl(FILE *f, void *vctx) {
  write_ctx *w = vctx;
  for (int64_t i = w->from; i < w->to; i++) {
    const tn_math_problem *p = &w->ps[i];
    char ans[32], id[48];
    snprintf(ans, sizeof ans, "%lld", p->answer);
    cJSON *o = cJSON_CreateObject();
    if (w->kind == 0) {
      cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
      cJSON *u = cJSON_CreateObject();
      cJSON_AddStringToObject(u, "role", "user");
      cJSON_AddStringToObject(u, "content", p->question);
      cJSON_AddItemToArray(msgs, u);
      size_t len = strlen(p->reasoning) + strlen(ans) + 64;
      char *content = malloc(len);
      snprintf(content, len, "<reasoning>%s</reasoning>\n<answer>%s</answer>", p->reasoning, ans);
      cJSON *a = cJSON_CreateObject();
      cJSON_AddStringToObject(a, "role", "assistant");
      cJSON_AddStringToObject(a, "content", content);
      cJSON_AddItemToArray(msgs, a);
      free(content);
    } else {
      snprintf(id, sizeof id, "%s-%06lld", w->prefix, (long long)(i - w->from + 1));
      cJSON_AddStringToObject(o, "id", id);
      cJSON_AddStringToObject(o, "prompt", p->question);
      cJSON_AddStringToObject(o, "answer", ans);
      cJSON_AddStringToObject(o, "expected_answer", ans);
      cJSON_AddStringToObject(o, "category", p->category);
      cJSON_AddNumberToObject(o, "steps", p->steps);
      cJSON_AddStringToObject(o, "solution", p->solution);
    }
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return tn_error(TN_ERR_NOMEM, "math data: cannot encode problem %lld", (long long)i);
    int ok = fputs(line, f) >= 0 && fputc('\n', f) != EOF;
    cJSON_free(line);
    if (!ok) return tn_error(TN_ERR_IO, "math data: write failed");
  }
  return TN_OK;
}

tn_status tn_math_write(const tn_math_config *c, const char *dir, int64_t *n_train, int64_t *n_test) {
  tn_math_problem *ps;
  TN_TRY(tn_math_generate(c, &ps, n_train, n_test));
  tn_status st = tn_mkdirs(dir);
  if (st != TN_OK) { free(ps); return tn_error_prefix(st, "math data: cannot create %s", dir); }
  struct { const char *file; write_ctx w; } outs[3] = {
    {"train_sft.jsonl", {ps, 0, *n_train, 0, "train"}},
    {"train_grpo.jsonl", {ps, 0, *n_train, 1, "train"}},
    {"test.jsonl", {ps, *n_train, *n_train + *n_test, 1, "test"}},
  };
  for (int k = 0; k < 3 && st == TN_OK; k++) {
    char *path = tn_path_join(dir, outs[k].file);
    st = tn_write_atomic_cb(path, fill_jsonl, &outs[k].w);
    if (st != TN_OK) tn_error_prefix(st, "math data: %s", path);
    free(path);
  }
  free(ps);
  return st;
}
