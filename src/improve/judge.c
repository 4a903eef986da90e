/* judge.c - the reward-library judge and the local-model judge (judge.h): scores, the parse
 * of a model's verdict, and the "judge" record of each scored row.
 * Not for: the human judge's terminal (src/cli/cmd_judge.c), rewards themselves (src/rl). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "eval/eval.h"
#include "improve/judge.h"
#include "generate/generate.h"
#include "model/model.h"
#include "train/lora.h"
#include "tunic/generate.h"
#include "tunic/tokenizer.h"
#include "base/json.h"

const char *const TN_JUDGE_DEFAULT_TEMPLATE =
    "You are a strict grader. Rate the answer to the question from 1 (wrong or useless) to 10 "
    "(correct and clear).\n\nQuestion: {prompt}\n\nAnswer: {completion}\n\n"
    "Reply with one line: Score: N";

void tn_judge_opts_default(tn_judge_opts *o) {
  memset(o, 0, sizeof *o);
  tn_reward_config_default(&o->reward);
  o->max_new_tokens = 48;
  o->score_min = 1;
  o->score_max = 10;
  o->batch_size = 8;
}

/* ---- the "steps" term: arithmetic in the reasoning checked ---- */

/* Evaluate "a op b op c" (numbers, + - * /, usual precedence, no parentheses) in [s, e). */
static bool eval_expr(const char *s, const char *e, double *out) {
  double terms = 0, cur = 0;
  int sign = 1, nums = 0;
  char mulop = 0;
  const char *p = s;
  for (;;) {
    while (p < e && *p == ' ') p++;
    char *q;
    if (p >= e || !(isdigit((unsigned char)*p) || *p == '.')) return false;
    double v = strtod(p, &q);
    if (q > e || q == p) return false;
    p = q;
    nums++;
    if (mulop == '*') cur *= v;
    else if (mulop == '/') { if (v == 0) return false; cur /= v; }
    else cur = v;
    while (p < e && *p == ' ') p++;
    if (p >= e) break;
    char op = *p++;
    if (op == 'x' || op == 'X') op = '*';
    if (op == '*' || op == '/') { mulop = op; continue; }
    if (op != '+' && op != '-') return false;
    terms += sign * cur;
    sign = op == '+' ? 1 : -1;
    mulop = 0;
  }
  *out = terms + sign * cur;
  return nums >= 2;
}

float tn_judge_steps_score(const char *completion, const char *open, const char *close) {
  const char *s = completion, *e = completion + strlen(completion);
  const char *a = open && *open ? strstr(completion, open) : NULL;
  if (a) {
    s = a + strlen(open);
    const char *b = close && *close ? strstr(s, close) : NULL;
    if (b) e = b;
  }
  int checked = 0;
  for (const char *line = s; line < e;) {
    const char *nl = memchr(line, '\n', (size_t)(e - line));
    const char *le = nl ? nl : e, *from = line;
    for (const char *eq = memchr(from, '=', (size_t)(le - from)); eq; eq = memchr(from, '=', (size_t)(le - from))) {
      double lhs, rhs;
      const char *r = eq + 1;
      while (r < le && *r == ' ') r++;
      char *q;
      bool neg = r < le && *r == '-';
      rhs = strtod(neg ? r + 1 : r, &q);
      if (neg) rhs = -rhs;
      if (q > (neg ? r + 1 : r) && q <= le && eval_expr(from, eq, &lhs)) {
        if (fabs(lhs - rhs) > 1e-9 * fmax(1, fabs(rhs))) return 0;
        checked++;
      }
      from = eq + 1;
    }
    line = nl ? nl + 1 : e;
  }
  return checked > 0 ? 1.0f : 0.0f;
}

static tn_status steps_cb(void *user, int n, const char *const *prompts, const char *const *completions,
                         const cJSON *const *examples, float *out) {
  (void)prompts; (void)examples;
  const tn_judge_opts *o = user;
  for (int i = 0; i < n; i++)
    out[i] = tn_judge_steps_score(completions[i], o->reward.reasoning_open, o->reward.reasoning_close);
  return TN_OK;
}

/* The spec without its "steps[:W]" terms (added as a callback); *w gets their weight sum. */
static char *split_steps(const char *spec, float *w, bool *has) {
  char *out = malloc(strlen(spec) + 1), *buf = tn_strdup(spec);
  *w = 0;
  *has = false;
  if (!out || !buf) { free(out); free(buf); return NULL; }
  out[0] = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    while (*t == ' ') t++;
    if (!strncmp(t, "steps", 5) && (t[5] == 0 || t[5] == ':')) {
      *has = true;
      *w += t[5] == ':' ? strtof(t + 6, NULL) : 1.0f;
      continue;
    }
    if (*out) strcat(out, ",");
    strcat(out, t);
  }
  free(buf);
  return out;
}

struct tn_judge {
  tn_judge_opts o;
  tn_rewards *rw;
  tn_model *m;
  tn_tokenizer *tok;
  tn_lora_set **loras;
  int n_loras;
  bool chat;
  int stops[TN_MAX_EOS + 1], nstop;
};

tn_status tn_judge_open(tn_judge **out, const tn_judge_opts *o) {
  *out = NULL;
  if (!o->spec == !o->model) return tn_error(TN_ERR_ARG, "judge: give either a reward spec or a judge model");
  if (o->model && !(o->score_min < o->score_max))
    return tn_error(TN_ERR_ARG, "judge: score range [%g, %g] is empty", o->score_min, o->score_max);
  tn_judge *j = calloc(1, sizeof *j);
  if (!j) return tn_error(TN_ERR_NOMEM, "judge: out of memory");
  j->o = *o;
  if (j->o.batch_size <= 0) j->o.batch_size = 8;
  if (j->o.max_new_tokens <= 0) j->o.max_new_tokens = 48;
  tn_status s = TN_OK;
  if (o->spec) { /* the reward library, plus the "steps" term as one of its callbacks */
    float w;
    bool steps;
    char *rest = split_steps(o->spec, &w, &steps);
    s = rest ? tn_rewards_create(&j->rw, rest, &o->reward) : tn_error(TN_ERR_NOMEM, "judge: out of memory");
    if (s == TN_OK && steps) s = tn_rewards_add_callback(j->rw, "steps", w, steps_cb, &j->o);
    if (s == TN_OK && tn_rewards_count(j->rw) == 0) s = tn_error(TN_ERR_ARG, "judge: the spec '%s' names no reward", o->spec);
    free(rest);
  } else {
    tn_infer_loaded il; /* the inference commands' loader: the same options and errors */
    s = tn_infer_load(&(tn_infer_spec){.model = o->model, .adapter = o->adapter}, TN_INFER_TOKENIZER, &il);
    if (s == TN_OK) { j->m = il.model; j->tok = il.tok; j->loras = il.loras; j->n_loras = il.n_loras; }
    if (s == TN_OK) {
      for (int i = 0; i < j->m->cfg.n_eos; i++) j->stops[j->nstop++] = j->m->cfg.eos_ids[i];
      tn_chat_format f;
      if (!o->no_chat && tn_chat_detect(j->tok, &f) == TN_OK) {
        j->chat = true;
        const char *eot = tn_chat_end_of_turn(f);
        int id = eot ? tn_tokenizer_token_to_id(j->tok, eot, strlen(eot)) : -1;
        bool have = false;
        for (int i = 0; i < j->nstop; i++) have |= j->stops[i] == id;
        if (id >= 0 && !have) j->stops[j->nstop++] = id;
      } else {
        tn_error_clear();
      }
    }
    if (s != TN_OK) tn_error_prefix(s, "judge model %s", o->model);
  }
  if (s != TN_OK) { tn_judge_close(j); return s; }
  *out = j;
  return TN_OK;
}

void tn_judge_close(tn_judge *j) {
  if (!j) return;
  if (j->rw) tn_rewards_free(j->rw);
  tn_lora_sets_free(j->loras, j->n_loras);
  if (j->tok) tn_tokenizer_free(j->tok);
  if (j->m) tn_model_free(j->m);
  free(j);
}

char *tn_judge_fill(const char *t, const char *prompt, const char *completion, const char *answer) {
  const char *keys[3] = {"{prompt}", "{completion}", "{answer}"}, *vals[3] = {prompt, completion, answer};
  size_t cap = strlen(t) + 1;
  for (const char *p = t; *p; p++)
    for (int k = 0; k < 3; k++)
      if (!strncmp(p, keys[k], strlen(keys[k]))) cap += strlen(vals[k] ? vals[k] : "");
  char *out = malloc(cap), *w = out;
  if (!out) return NULL;
  while (*t) {
    int hit = -1;
    for (int k = 0; k < 3 && hit < 0; k++)
      if (!strncmp(t, keys[k], strlen(keys[k]))) hit = k;
    if (hit < 0) { *w++ = *t++; continue; }
    const char *v = vals[hit] ? vals[hit] : "";
    size_t n = strlen(v);
    memcpy(w, v, n);
    w += n;
    t += strlen(keys[hit]);
  }
  *w = 0;
  return out;
}

/* ---- the verdict parser ---- */

/* A decimal at P ("-7", "7.5"); END after it. */
static bool read_num(const char *p, double *v, const char **end) {
  const char *q = p;
  if (*q == '-' || *q == '+') q++;
  if (!isdigit((unsigned char)*q)) return false;
  while (isdigit((unsigned char)*q)) q++;
  if (*q == '.' && isdigit((unsigned char)q[1])) {
    q++;
    while (isdigit((unsigned char)*q)) q++;
  }
  *v = strtod(p, NULL);
  *end = q;
  return true;
}

/* N, then optionally "/M" or " out of M": N scaled to MAX when M is given and differs. */
static bool read_scaled(const char *p, double max, double *v, const char **end) {
  if (!read_num(p, v, end)) return false;
  const char *q = *end;
  while (*q == ' ') q++;
  double d;
  const char *e2;
  if (*q == '/') q++;
  else if (!strncmp(q, "out of", 6)) q += 6;
  else return true;
  while (*q == ' ') q++;
  if (read_num(q, &d, &e2) && d > 0) {
    if (d != max) *v = *v * max / d;
    *end = e2;
  }
  return true;
}

static bool in_range(double v, double min, double max) { return isfinite(v) && v >= min && v <= max; }

bool tn_judge_parse_score(const char *text, double min, double max, double *out) {
  if (!text) return false;
  size_t n = strlen(text);
  char *s = malloc(n + 1);
  if (!s) return false;
  for (size_t i = 0; i <= n; i++) s[i] = (char)tolower((unsigned char)text[i]);
  double v;
  const char *e;
  bool ok = false;
  /* 1. [[N]] (MT-Bench) */
  for (const char *p = strstr(s, "[["); p && !ok; p = strstr(p + 1, "[["))
    if (read_scaled(p + 2, max, &v, &e) && !strncmp(e, "]]", 2)) ok = true;
  /* 2. <score>N</score>, <answer>N</answer> */
  static const char *tags[] = {"<score>", "<answer>", "<rating>"};
  for (int t = 0; t < 3 && !ok; t++)
    for (const char *p = strstr(s, tags[t]); p && !ok; p = strstr(p + 1, tags[t])) {
      const char *q = p + strlen(tags[t]);
      while (isspace((unsigned char)*q)) q++;
      if (read_scaled(q, max, &v, &e)) ok = true;
    }
  /* 3. the last "score" / "rating" / "grade" followed by ':', '=', 'is', 'of' and a number */
  static const char *keys[] = {"score", "rating", "grade"};
  const char *best = NULL;
  double bv = 0;
  for (int k = 0; k < 3 && !ok; k++)
    for (const char *p = strstr(s, keys[k]); p; p = strstr(p + 1, keys[k])) {
      const char *q = p + strlen(keys[k]);
      while (isalpha((unsigned char)*q)) q++; /* "scored", "ratings" */
      for (;;) {
        while (*q == ' ' || *q == ':' || *q == '=' || *q == '*' || *q == '\t') q++;
        if (!strncmp(q, "is", 2) && !isalpha((unsigned char)q[2])) { q += 2; continue; }
        if (!strncmp(q, "of", 2) && !isalpha((unsigned char)q[2])) { q += 2; continue; }
        break;
      }
      if (read_scaled(q, max, &v, &e) && (!best || p > best)) { best = p; bv = v; }
    }
  if (!ok && best) { v = bv; ok = true; }
  /* 4. the whole text one number (or N/M) */
  if (!ok) {
    const char *q = s;
    while (isspace((unsigned char)*q)) q++;
    if (read_scaled(q, max, &v, &e)) {
      while (isspace((unsigned char)*e) || *e == '.') e++;
      ok = !*e;
    }
  }
  /* 5. "N/M" or "N out of M" anywhere (the first) */
  for (const char *p = s; *p && !ok; p++) {
    if (!isdigit((unsigned char)*p) || (p > s && (isdigit((unsigned char)p[-1]) || p[-1] == '.'))) continue;
    double a;
    const char *q;
    if (!read_num(p, &a, &q)) continue;
    const char *r = q;
    while (*r == ' ') r++;
    if (*r == '/' || !strncmp(r, "out of", 6)) ok = read_scaled(p, max, &v, &e);
  }
  /* 6. the only number in the text */
  if (!ok) ok = tn_find_single_number(s, &v);
  free(s);
  if (!ok || !in_range(v, min, max)) return false;
  *out = v;
  return true;
}

/* ---- scoring ---- */

static const char *ref_of(const cJSON *ex, char *buf, size_t n) {
  const cJSON *a = ex ? tn_json_field(ex, "answer") : NULL;
  if (!a && ex) a = tn_json_field(ex, "expected_answer");
  if (cJSON_IsString(a)) return a->valuestring;
  if (cJSON_IsNumber(a)) { snprintf(buf, n, "%.17g", a->valuedouble); return buf; }
  return "";
}

static tn_status score_reward(tn_judge *j, int n, const char *const *prompts, const char *const *completions,
                              const cJSON *const *examples, double *scores, cJSON *const *mark) {
  int F = tn_rewards_count(j->rw);
  float *per = malloc(sizeof *per * (size_t)F * (n ? n : 1)), *tot = malloc(sizeof *tot * (n ? n : 1));
  tn_status s = per && tot ? TN_OK : tn_error(TN_ERR_NOMEM, "judge: out of memory");
  if (s == TN_OK) s = tn_rewards_compute(j->rw, n, prompts, completions, examples, per, tot);
  for (int i = 0; i < n && s == TN_OK; i++) {
    scores[i] = tot[i];
    if (!mark || !mark[i]) continue;
    cJSON_DeleteItemFromObjectCaseSensitive(mark[i], "score");
    cJSON_DeleteItemFromObjectCaseSensitive(mark[i], "judge");
    cJSON_AddNumberToObject(mark[i], "score", tot[i]);
    cJSON *jd = cJSON_AddObjectToObject(mark[i], "judge");
    cJSON_AddStringToObject(jd, "type", "reward");
    cJSON_AddStringToObject(jd, "spec", j->o.spec);
    if (j->o.reward.rubric_path) cJSON_AddStringToObject(jd, "rubric", j->o.reward.rubric_path);
    if (j->o.reward.reward_cmd) cJSON_AddStringToObject(jd, "reward_cmd", j->o.reward.reward_cmd);
    cJSON *terms = cJSON_AddObjectToObject(jd, "terms");
    for (int f = 0; f < F; f++) cJSON_AddNumberToObject(terms, tn_rewards_name(j->rw, f), per[(size_t)f * n + i]);
  }
  free(per);
  free(tot);
  return s;
}

/* The judge model's prompt text: FILLED as one user turn of its chat template (or as is). */
static tn_status render(tn_judge *j, const char *filled, char **out) {
  *out = NULL;
  if (!j->chat) {
    *out = tn_strdup(filled);
    return *out ? TN_OK : tn_error(TN_ERR_NOMEM, "judge: out of memory");
  }
  tn_chat_msg msg = {.role = "user", .content = filled};
  tn_chat_opts co = {.format = TN_CHAT_AUTO, .add_generation_prompt = true, .enable_thinking = -1};
  tn_chat_out cout = {0};
  TN_TRY(tn_chat_render(j->tok, &msg, 1, &co, &cout));
  *out = tn_strndup(cout.text, cout.len);
  tn_chat_out_free(&cout);
  return *out ? TN_OK : tn_error(TN_ERR_NOMEM, "judge: out of memory");
}

static void gen_setup(const tn_judge *j, tn_gen_opts *go, tn_text_opts *to) {
  tn_gen_opts_default(go);
  go->max_new_tokens = j->o.max_new_tokens;
  go->temperature = 0;
  go->stop_ids = j->nstop ? j->stops : NULL;
  go->n_stop_ids = j->nstop;
  tn_text_opts_default(to);
  to->add_special = !j->chat; /* a rendered chat holds its BOS already */
}

tn_status tn_judge_ask(tn_judge *j, const char *text, char **answer) {
  *answer = NULL;
  if (!j->m) return tn_error(TN_ERR_ARG, "judge: no judge model to ask");
  char *r;
  TN_TRY(render(j, text, &r));
  tn_gen_opts go;
  tn_text_opts to;
  gen_setup(j, &go, &to);
  tn_text_result res = {0};
  tn_status s = tn_generate_text(j->m, j->tok, (const char *const *)&r, 1, &go, &to, &res);
  free(r);
  if (s != TN_OK) return s;
  *answer = tn_strdup(res.text ? res.text : "");
  tn_text_results_free(&res, 1);
  return *answer ? TN_OK : tn_error(TN_ERR_NOMEM, "judge: out of memory");
}

static tn_status score_model(tn_judge *j, int n, const char *const *prompts, const char *const *completions,
                             const cJSON *const *examples, double *scores, cJSON *const *mark, int *n_unparsed) {
  const char *tmpl = j->o.template_text ? j->o.template_text : TN_JUDGE_DEFAULT_TEMPLATE;
  int B = j->o.batch_size;
  char **texts = calloc((size_t)B, sizeof *texts);
  tn_text_result *res = calloc((size_t)B, sizeof *res);
  tn_status s = texts && res ? TN_OK : tn_error(TN_ERR_NOMEM, "judge: out of memory");
  tn_gen_opts go;
  tn_text_opts to;
  gen_setup(j, &go, &to);
  char refb[64];
  for (int b0 = 0; b0 < n && s == TN_OK; b0 += B) {
    int nb = n - b0 < B ? n - b0 : B;
    for (int i = 0; i < nb && s == TN_OK; i++) {
      char *filled = tn_judge_fill(tmpl, prompts[b0 + i], completions[b0 + i],
                                   ref_of(examples ? examples[b0 + i] : NULL, refb, sizeof refb));
      if (!filled) { s = tn_error(TN_ERR_NOMEM, "judge: out of memory"); break; }
      s = render(j, filled, &texts[i]);
      free(filled);
      if (s != TN_OK) break;
      if (!texts[i]) s = tn_error(TN_ERR_NOMEM, "judge: out of memory");
    }
    go.first_prompt = b0;
    if (s == TN_OK) s = tn_generate_text(j->m, j->tok, (const char *const *)texts, nb, &go, &to, res);
    for (int i = 0; i < nb && s == TN_OK; i++) {
      double v;
      bool ok = tn_judge_parse_score(res[i].text, j->o.score_min, j->o.score_max, &v);
      scores[b0 + i] = ok ? v : NAN;
      if (!ok && n_unparsed) (*n_unparsed)++;
      if (!mark || !mark[b0 + i]) continue;
      cJSON *mk = mark[b0 + i];
      cJSON_DeleteItemFromObjectCaseSensitive(mk, "score");
      cJSON_DeleteItemFromObjectCaseSensitive(mk, "judge");
      if (ok) cJSON_AddNumberToObject(mk, "score", v);
      else cJSON_AddNullToObject(mk, "score");
      cJSON *jd = cJSON_AddObjectToObject(mk, "judge");
      cJSON_AddStringToObject(jd, "type", "model");
      cJSON_AddStringToObject(jd, "model", j->o.model);
      if (j->o.adapter) cJSON_AddStringToObject(jd, "adapter", j->o.adapter);
      cJSON_AddBoolToObject(jd, "parsed", ok);
      cJSON_AddStringToObject(jd, "verdict", res[i].text ? res[i].text : "");
    }
    if (s == TN_OK) tn_text_results_free(res, nb);
    memset(res, 0, sizeof *res * (size_t)B);
    for (int i = 0; i < nb; i++) { free(texts[i]); texts[i] = NULL; }
  }
  free(texts);
  free(res);
  return s;
}

tn_status tn_judge_score(tn_judge *j, int n, const char *const *prompts, const char *const *completions,
                         const cJSON *const *examples, double *scores, cJSON *const *mark, int *n_unparsed) {
  if (n <= 0) return TN_OK;
  return j->rw ? score_reward(j, n, prompts, completions, examples, scores, mark)
               : score_model(j, n, prompts, completions, examples, scores, mark, n_unparsed);
}

/* ---- a model as classifier ---- */

struct tn_classifier {
  tn_judge *j;
  char *cats_text;
  char **names;
  int n, failures;
};

tn_status tn_classifier_open(tn_classifier **out, const char *model_adapter, const char *categories) {
  *out = NULL;
  tn_classifier *c = calloc(1, sizeof *c);
  char *spec = tn_strdup(model_adapter), *cats = tn_strdup(categories && *categories ? categories : "math,code,creative,other");
  if (!c || !spec || !cats) { free(c); free(spec); free(cats); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  c->cats_text = cats;
  tn_status s = TN_OK;
  for (char *save = NULL, *t = strtok_r(cats, ",", &save); t && s == TN_OK; t = strtok_r(NULL, ",", &save)) {
    char **nn = realloc(c->names, sizeof *nn * (size_t)(c->n + 1));
    if (!nn) { s = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
    c->names = nn;
    c->names[c->n++] = t;
  }
  tn_judge_opts o;
  tn_judge_opts_default(&o);
  char *colon = strrchr(spec, ':');
  if (colon && colon > spec) { *colon = 0; o.adapter = colon + 1; }
  o.model = spec;
  o.max_new_tokens = 8;
  if (s == TN_OK) s = tn_judge_open(&c->j, &o);
  if (c->j) c->j->o.model = c->j->o.adapter = NULL; /* spec is freed below */
  free(spec);
  if (s != TN_OK) { tn_classifier_close(c); return s; }
  *out = c;
  return TN_OK;
}

const char *tn_classify(void *vc, const char *prompt) {
  tn_classifier *c = vc;
  char *q = NULL, *ans = NULL;
  const char *tmpl = "Which one of these categories fits the request: {answer}?\nRequest: {prompt}\nAnswer with the category name only.";
  q = tn_judge_fill(tmpl, prompt, "", c->cats_text);
  tn_status s = q ? tn_judge_ask(c->j, q, &ans) : TN_ERR_NOMEM;
  free(q);
  const char *hit = NULL;
  size_t best = (size_t)-1;
  if (s == TN_OK) {
    for (char *p = ans; *p; p++) *p = (char)tolower((unsigned char)*p);
    for (int i = 0; i < c->n; i++) {
      char low[64];
      snprintf(low, sizeof low, "%s", c->names[i]);
      for (char *p = low; *p; p++) *p = (char)tolower((unsigned char)*p);
      const char *f = strstr(ans, low);
      if (f && (size_t)(f - ans) < best) { best = (size_t)(f - ans); hit = c->names[i]; }
    }
  } else {
    tn_error_clear();
  }
  free(ans);
  if (!hit) { c->failures++; hit = "other"; }
  return hit;
}

int tn_classifier_failures(const tn_classifier *c) { return c ? c->failures : 0; }

void tn_classifier_close(tn_classifier *c) {
  if (!c) return;
  tn_judge_close(c->j);
  free(c->names);
  free(c->cats_text);
  free(c);
}
