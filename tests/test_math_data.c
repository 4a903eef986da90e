/* test_math_data.c - the synthetic math generator: every answer equals the value of its
 * solution, recomputed here by re-parsing each step's arithmetic ("a op b [op c] = r",
 * evaluated with precedence, divisions exact) with every operand grounded in the question
 * or an earlier step; determinism for a seed; distinct questions and disjoint splits;
 * templates and step counts covered; easy profile bounds; the JSONL files (read back,
 * SFT targets pass the format check and the extractor) and the CLI end to end. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include "data/math.h"
#include "eval/eval.h"

/* all integers in S (digits runs) */
static int ints_in(const char *s, long long *out, int cap) {
  int n = 0;
  for (const char *p = s; *p;) {
    if (*p >= '0' && *p <= '9') {
      long long v = 0;
      while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
      if (n < cap) out[n++] = v;
    } else {
      p++;
    }
  }
  return n;
}

/* Evaluate "a op b op c" (space separated, + - * /) with precedence; false if a
 * division is not exact. */
static bool eval_expr(const char *e, size_t len, long long *out, long long *ops, int *nops) {
  long long vals[8];
  char opv[8];
  int nv = 0, no = 0;
  const char *p = e, *end = e + len;
  while (p < end) {
    while (p < end && *p == ' ') p++;
    if (p >= end) break;
    if (*p >= '0' && *p <= '9') {
      long long v = 0;
      while (p < end && *p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
      if (nv >= 8) return false;
      vals[nv++] = v;
      ops[(*nops)++] = v;
    } else {
      if (no >= 8) return false;
      opv[no++] = *p++;
    }
  }
  if (nv != no + 1) return false;
  /* pass 1: * and / */
  long long v2[8];
  char o2[8];
  int n2 = 0, m2 = 0;
  v2[n2++] = vals[0];
  for (int i = 0; i < no; i++) {
    if (opv[i] == '*') v2[n2 - 1] *= vals[i + 1];
    else if (opv[i] == '/') {
      if (vals[i + 1] == 0 || v2[n2 - 1] % vals[i + 1]) return false;
      v2[n2 - 1] /= vals[i + 1];
    } else { o2[m2++] = opv[i]; v2[n2++] = vals[i + 1]; }
  }
  long long r = v2[0];
  for (int i = 0; i < m2; i++) r = o2[i] == '+' ? r + v2[i + 1] : r - v2[i + 1];
  *out = r;
  return true;
}

static pcre2_code *step_re(void) {
  int err;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR) "(\\d+(?: [-+*/] \\d+)+) = (\\d+)", PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
  assert_non_null(re);
  return re;
}

/* Full independent check of one problem. */
static void check_problem(const tn_math_problem *p, pcre2_code *re, int min_s, int max_s) {
  long long qn[64];
  int nq = ints_in(p->question, qn, 64);
  long long known[80];
  int nk = 0;
  for (int i = 0; i < nq; i++) known[nk++] = qn[i];
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  char lines[1024];
  snprintf(lines, sizeof lines, "%s", p->reasoning);
  int nsteps = 0;
  long long last = -1;
  for (char *save = NULL, *ln = strtok_r(lines, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
    int rc = pcre2_match(re, (PCRE2_SPTR)ln, strlen(ln), 0, 0, md, NULL);
    if (rc < 0) { print_error("no equation in step '%s' of '%s'\n", ln, p->question); fail(); }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    /* exactly one equation per line */
    assert_true(pcre2_match(re, (PCRE2_SPTR)ln, strlen(ln), ov[1], 0, md, NULL) < 0);
    pcre2_match(re, (PCRE2_SPTR)ln, strlen(ln), 0, 0, md, NULL);
    ov = pcre2_get_ovector_pointer(md);
    long long val = 0, ops[16], res = atoll(ln + ov[4]);
    int nops = 0;
    if (!eval_expr(ln + ov[2], ov[3] - ov[2], &val, ops, &nops) || val != res) {
      print_error("step '%s' does not compute (got %lld) in '%s'\n", ln, val, p->question);
      fail();
    }
    for (int i = 0; i < nops; i++) { /* grounded: in the question or an earlier result */
      bool found = false;
      for (int k = 0; k < nk && !found; k++) found = known[k] == ops[i];
      if (!found) { print_error("operand %lld of '%s' comes from nowhere in '%s'\n", ops[i], ln, p->question); fail(); }
    }
    if (nk < 80) known[nk++] = res;
    last = res;
    nsteps++;
  }
  pcre2_match_data_free(md);
  assert_int_equal(nsteps, p->steps);
  assert_true(nsteps >= min_s && nsteps <= max_s);
  if (last != p->answer) { print_error("answer %lld != last step %lld: %s\n", p->answer, last, p->question); fail(); }
  assert_true(p->answer >= 0);
  char tail[64];
  snprintf(tail, sizeof tail, "\n#### %lld", p->answer);
  size_t ls = strlen(p->solution), lt = strlen(tail);
  assert_true(ls > lt && !strcmp(p->solution + ls - lt, tail));
  assert_true(!strncmp(p->solution, p->reasoning, strlen(p->reasoning)));
  size_t lq = strlen(p->question);
  assert_true(lq > 10 && lq < sizeof p->question - 1 && p->question[lq - 1] == '?');
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_answers_match_solutions(void **st) {
  (void)st;
  pcre2_code *re = step_re();
  tn_math_config c;
  tn_math_config_default(&c);
  c.n = 3000;
  c.seed = 11;
  tn_math_problem *ps;
  int64_t ntr, nte;
  assert_int_equal(tn_math_generate(&c, &ps, &ntr, &nte), TN_OK);
  assert_int_equal(ntr, 2700);
  assert_int_equal(nte, 300);
  int ntpl;
  const char *const *tpl = tn_math_templates(TN_MATH_NORMAL, &ntpl);
  assert_true(ntpl >= 6);
  int cover[16][5] = {{0}};
  for (int64_t i = 0; i < c.n; i++) {
    check_problem(&ps[i], re, 1, 4);
    int t = -1;
    for (int k = 0; k < ntpl; k++)
      if (!strcmp(ps[i].category, tpl[k])) t = k;
    assert_true(t >= 0);
    cover[t][ps[i].steps]++;
  }
  for (int t = 0; t < ntpl; t++)
    for (int s = 1; s <= 4; s++)
      if (!cover[t][s]) { print_error("template %s never has %d steps\n", tpl[t], s); fail(); }
  /* distinct questions (so train and test are disjoint) */
  char **qs = malloc(sizeof *qs * c.n);
  for (int64_t i = 0; i < c.n; i++) qs[i] = ps[i].question;
  qsort(qs, c.n, sizeof *qs, cmp_str);
  for (int64_t i = 1; i < c.n; i++) assert_true(strcmp(qs[i - 1], qs[i]) != 0);
  free(qs);
  free(ps);
  /* --max-steps 2 / --min-steps 3 */
  c.n = 500;
  c.max_steps = 2;
  assert_int_equal(tn_math_generate(&c, &ps, &ntr, &nte), TN_OK);
  for (int64_t i = 0; i < c.n; i++) check_problem(&ps[i], re, 1, 2);
  free(ps);
  c.max_steps = 4;
  c.min_steps = 3;
  assert_int_equal(tn_math_generate(&c, &ps, &ntr, &nte), TN_OK);
  for (int64_t i = 0; i < c.n; i++) check_problem(&ps[i], re, 3, 4);
  free(ps);
  c.min_steps = 3;
  c.max_steps = 2;
  assert_int_equal(tn_math_generate(&c, &ps, &ntr, &nte), TN_ERR_ARG);
  c.min_steps = 1;
  c.max_steps = 4;
  c.test_frac = 1.5;
  assert_int_equal(tn_math_generate(&c, &ps, &ntr, &nte), TN_ERR_ARG);
  pcre2_code_free(re);
}

static void easy_profile_bounded(int max_number) {
  pcre2_code *re = step_re();
  tn_math_config c;
  tn_math_config_default(&c);
  c.profile = TN_MATH_EASY;
  c.n = 2000;
  c.seed = 5;
  c.max_number = max_number;
  const int M = max_number ? max_number : 20;
  tn_math_problem *ps;
  int64_t ntr, nte;
  assert_int_equal(tn_math_generate(&c, &ps, &ntr, &nte), TN_OK);
  int ntpl;
  const char *const *tpl = tn_math_templates(TN_MATH_EASY, &ntpl);
  int seen[16] = {0};
  for (int64_t i = 0; i < c.n; i++) {
    check_problem(&ps[i], re, 1, 2);
    long long qn[16];
    int nq = ints_in(ps[i].question, qn, 16);
    for (int k = 0; k < nq; k++) assert_true(qn[k] >= 1 && qn[k] <= M);
    assert_true(ps[i].answer <= 100);
    assert_true(strlen(ps[i].question) < 120);
    /* equations only: every line is exactly "a op b = c" */
    for (const char *l = ps[i].reasoning; *l;) {
      long long a, b, r;
      char op;
      int used = 0;
      assert_int_equal(sscanf(l, "%lld %c %lld = %lld%n", &a, &op, &b, &r, &used), 4);
      l += used;
      assert_true(*l == 0 || *l == '\n');
      if (*l) l++;
    }
    for (int k = 0; k < ntpl; k++) seen[k] += !strcmp(ps[i].category, tpl[k]);
  }
  for (int k = 0; k < ntpl; k++) assert_true(seen[k] > 0);
  free(ps);
  pcre2_code_free(re);
}

static void test_easy_profile(void **st) {
  (void)st;
  easy_profile_bounded(0); /* default: numbers up to 20 */
  easy_profile_bounded(10);
  easy_profile_bounded(5);
  /* --max-number outside 2-20, or with the normal profile, is refused */
  tn_math_config c;
  tn_math_problem *ps;
  int64_t ntr, nte;
  int bad[][2] = {{TN_MATH_EASY, 1}, {TN_MATH_EASY, 21}, {TN_MATH_NORMAL, 10}};
  for (int i = 0; i < 3; i++) {
    tn_math_config_default(&c);
    c.n = 10;
    c.profile = (tn_math_profile)bad[i][0];
    c.max_number = bad[i][1];
    assert_int_equal(tn_math_generate(&c, &ps, &ntr, &nte), TN_ERR_ARG);
  }
}

static void test_determinism(void **st) {
  (void)st;
  tn_math_config c;
  tn_math_config_default(&c);
  c.n = 400;
  c.seed = 99;
  tn_math_problem *a, *b, *d;
  int64_t ntr, nte;
  assert_int_equal(tn_math_generate(&c, &a, &ntr, &nte), TN_OK);
  assert_int_equal(tn_math_generate(&c, &b, &ntr, &nte), TN_OK);
  c.seed = 100;
  assert_int_equal(tn_math_generate(&c, &d, &ntr, &nte), TN_OK);
  int same = 0;
  for (int i = 0; i < 400; i++) {
    assert_string_equal(a[i].question, b[i].question);
    assert_string_equal(a[i].solution, b[i].solution);
    assert_true(a[i].answer == b[i].answer);
    same += !strcmp(a[i].question, d[i].question);
  }
  assert_true(same < 10); /* another seed gives other problems */
  free(a); free(b); free(d);
}

static cJSON **read_jsonl(const char *path, int *n) {
  char *text;
  size_t len;
  assert_int_equal(tn_read_file(path, &text, &len), TN_OK);
  int cap = 16;
  cJSON **v = malloc(sizeof *v * cap);
  *n = 0;
  for (char *save = NULL, *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
    if (*n == cap) v = realloc(v, sizeof *v * (cap *= 2));
    v[*n] = cJSON_Parse(ln);
    assert_non_null(v[*n]);
    (*n)++;
  }
  free(text);
  return v;
}

static void free_jsonl(cJSON **v, int n) {
  for (int i = 0; i < n; i++) cJSON_Delete(v[i]);
  free(v);
}

static void test_files(void **st) {
  (void)st;
  char dir[128];
  snprintf(dir, sizeof dir, "/tmp/tn_test_math_%d", (int)getpid());
  tn_math_config c;
  tn_math_config_default(&c);
  c.n = 200;
  c.seed = 3;
  c.test_frac = 0.25;
  int64_t ntr, nte;
  assert_int_equal(tn_math_write(&c, dir, &ntr, &nte), TN_OK);
  assert_int_equal(ntr, 150);
  assert_int_equal(nte, 50);
  char path[256];
  int nsft, ngrpo, ntest;
  snprintf(path, sizeof path, "%s/train_sft.jsonl", dir);
  cJSON **sft = read_jsonl(path, &nsft);
  snprintf(path, sizeof path, "%s/train_grpo.jsonl", dir);
  cJSON **grpo = read_jsonl(path, &ngrpo);
  snprintf(path, sizeof path, "%s/test.jsonl", dir);
  cJSON **test = read_jsonl(path, &ntest);
  assert_int_equal(nsft, 150);
  assert_int_equal(ngrpo, 150);
  assert_int_equal(ntest, 50);
  for (int i = 0; i < nsft; i++) {
    cJSON *m = cJSON_GetObjectItem(sft[i], "messages");
    assert_int_equal(cJSON_GetArraySize(m), 2);
    cJSON *u = cJSON_GetArrayItem(m, 0), *a = cJSON_GetArrayItem(m, 1);
    assert_string_equal(cJSON_GetObjectItem(u, "role")->valuestring, "user");
    assert_string_equal(cJSON_GetObjectItem(a, "role")->valuestring, "assistant");
    const char *content = cJSON_GetObjectItem(a, "content")->valuestring;
    /* SFT target: passes the format check; its extracted answer is the GRPO record's answer */
    assert_true(tn_format_ok(content, NULL));
    tn_extract_config strict;
    tn_extract_config_default(&strict);
    strict.format_strict = true;
    assert_true(tn_format_ok(content, &strict));
    char ext[64];
    assert_int_equal(tn_extract_answer(content, NULL, ext, sizeof ext), TN_EXTRACT_TAG);
    const char *ans = cJSON_GetObjectItem(grpo[i], "answer")->valuestring;
    assert_string_equal(ext, ans);
    assert_string_equal(cJSON_GetObjectItem(u, "content")->valuestring, cJSON_GetObjectItem(grpo[i], "prompt")->valuestring);
    /* the GSM8K solution line gives the same answer through the extractor */
    const char *sol = cJSON_GetObjectItem(grpo[i], "solution")->valuestring;
    assert_int_equal(tn_extract_answer(sol, NULL, ext, sizeof ext), TN_EXTRACT_HASHES);
    assert_string_equal(ext, ans);
  }
  const char *fields[] = {"id", "prompt", "answer", "expected_answer", "category", "solution"};
  for (int i = 0; i < ntest; i++) {
    for (int k = 0; k < 6; k++) assert_true(cJSON_IsString(cJSON_GetObjectItem(test[i], fields[k])));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(test[i], "steps")));
    char id[32];
    snprintf(id, sizeof id, "test-%06d", i + 1);
    assert_string_equal(cJSON_GetObjectItem(test[i], "id")->valuestring, id);
    const char *q = cJSON_GetObjectItem(test[i], "prompt")->valuestring;
    for (int j = 0; j < ngrpo; j++) assert_true(strcmp(q, cJSON_GetObjectItem(grpo[j], "prompt")->valuestring) != 0);
    assert_true(tn_answers_equal(cJSON_GetObjectItem(test[i], "expected_answer")->valuestring,
                                 cJSON_GetObjectItem(test[i], "solution")->valuestring));
  }
  free_jsonl(sft, nsft);
  free_jsonl(grpo, ngrpo);
  free_jsonl(test, ntest);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

static void test_cli(void **st) {
  (void)st;
  const char *tunic = getenv("TUNIC");
  if (!tunic || access(tunic, X_OK)) { print_message("TUNIC not set: CLI test skipped\n"); skip(); }
  char cmd[1024];
  int pid = (int)getpid();
  snprintf(cmd, sizeof cmd,
           "set -e; d=/tmp/tn_test_math_cli_%d; rm -rf $d; "
           "'%s' data math --n 300 --seed 7 --out $d/a --quiet; '%s' data math --n 300 --seed 7 --out $d/b --quiet; "
           "'%s' data math --n 300 --seed 8 --out $d/c --quiet; "
           "for f in train_sft.jsonl train_grpo.jsonl test.jsonl; do cmp -s $d/a/$f $d/b/$f; done; "
           "! cmp -s $d/a/test.jsonl $d/c/test.jsonl; "
           "test $(wc -l < $d/a/test.jsonl) -eq 30; test $(wc -l < $d/a/train_sft.jsonl) -eq 270; "
           "'%s' data math --n 50 --profile easy --out $d/e --quiet; test $(wc -l < $d/e/train_grpo.jsonl) -eq 45; "
           "rm -rf $d",
           pid, tunic, tunic, tunic, tunic);
  assert_int_equal(system(cmd), 0);
  /* bad arguments: exit code 2 with a message */
  snprintf(cmd, sizeof cmd, "'%s' data math --n 10 2>/dev/null", tunic);
  assert_int_equal(WEXITSTATUS(system(cmd)), 2); /* no --out */
  snprintf(cmd, sizeof cmd, "'%s' data math --out /tmp/x --profile hard 2>/dev/null", tunic);
  assert_int_equal(WEXITSTATUS(system(cmd)), 2);
  snprintf(cmd, sizeof cmd, "'%s' data math --out /tmp/x --profile easy --max-steps 3 2>/dev/null", tunic);
  assert_int_equal(WEXITSTATUS(system(cmd)), 2);
  snprintf(cmd, sizeof cmd, "'%s' data nope 2>/dev/null", tunic);
  assert_int_equal(WEXITSTATUS(system(cmd)), 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_answers_match_solutions),
    cmocka_unit_test(test_easy_profile),
    cmocka_unit_test(test_determinism),
    cmocka_unit_test(test_files),
    cmocka_unit_test(test_cli),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
