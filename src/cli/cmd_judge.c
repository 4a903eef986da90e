/* cmd_judge.c - `tunic judge`: score (prompt, completion) rows with the reward library
 * (--judge SPEC, rubric YAML, --reward-cmd), a local model as judge (--judge-model), or a
 * person (--human: a terminal screen per sample, one key per score, resumable: rows already
 * in --out are not asked again). Every output line keeps its input fields plus "score" and
 * "judge" (who/what judged). The judges themselves: src/improve/judge.c. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "data/data.h"
#include "improve/judge.h"
#include "obs/obs.h"
#include "base/json.h"

typedef tn_jsonl_rows rowset;

static tn_status add_row(void *ctx, cJSON *obj, const char *where) {
  rowset *r = ctx;
  const cJSON *c = tn_json_field(obj, "completion");
  if (!cJSON_IsString(c)) {
    cJSON_Delete(obj);
    return tn_error(TN_ERR_FORMAT, "%s: \"completion\" (a string) is required", where);
  }
  return tn_jsonl_rows_add(r, obj, where);
}

static const char *str_field(const cJSON *o, const char *k) {
  const cJSON *v = tn_json_field(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* The row's id as text (its index when absent). */
static void row_id(const cJSON *o, int i, char *buf, size_t n) {
  const cJSON *id = tn_json_field(o, "id");
  if (cJSON_IsString(id)) snprintf(buf, n, "%s", id->valuestring);
  else if (cJSON_IsNumber(id)) snprintf(buf, n, "%.17g", id->valuedouble);
  else snprintf(buf, n, "#%d", i);
}

typedef struct { cJSON **rows; int n; } outset;

static tn_status write_rows(FILE *f, void *ctx) {
  outset *o = ctx;
  for (int i = 0; i < o->n; i++) {
    if (!o->rows[i]) continue;
    char *s = tn_json_print_valid(o->rows[i], false);
    if (!s) return tn_error(TN_ERR_NOMEM, "out of memory");
    int r = fputs(s, f);
    free(s);
    if (r == EOF || fputc('\n', f) == EOF) return tn_error(TN_ERR_IO, "write failed");
  }
  return TN_OK;
}

/* ---- the human judge ---- */

static struct termios saved_tio;
static bool raw_on;

/* Ctrl-C / kill while the terminal is raw: give the terminal back, then die as asked (every
 * score given so far is already in --out). */
static void on_signal(int sig) {
  if (raw_on) tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void raw_mode(bool on) {
  if (!isatty(STDIN_FILENO)) return;
  if (on && !raw_on) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &saved_tio)) return;
    t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (!tcsetattr(STDIN_FILENO, TCSANOW, &t)) raw_on = true;
  } else if (!on && raw_on) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
    raw_on = false;
  }
}

/* One key (raw terminal), or the first character of a line (a pipe); EOF at the end. */
static int read_key(void) {
  if (raw_on) {
    unsigned char c;
    return read(STDIN_FILENO, &c, 1) == 1 ? c : EOF;
  }
  int c = getchar(), d = c;
  while (d != '\n' && d != EOF) d = getchar();
  return c;
}

static int run_human(rowset *in, const char *out, const char *who, const char *keys) {
  outset os = {calloc(in->n ? in->n : 1, sizeof(cJSON *)), in->n};
  if (!os.rows) return tn_cli_fail("judge", tn_error(TN_ERR_NOMEM, "out of memory"));
  /* resume: rows already judged in OUT (matched by id) are kept and not asked again */
  int done = 0;
  if (tn_file_exists(out)) {
    rowset prev = {0};
    tn_status s = tn_jsonl_read(out, add_row, &prev);
    if (s != TN_OK) { free(os.rows); tn_jsonl_rows_free(&prev); return tn_cli_fail("judge", s); }
    char a[256], b[256];
    for (int p = 0; p < prev.n; p++) {
      row_id(prev.rows[p], p, a, sizeof a);
      for (int i = 0; i < in->n; i++) {
        row_id(in->rows[i], i, b, sizeof b);
        if (!os.rows[i] && !strcmp(a, b)) { os.rows[i] = prev.rows[p]; prev.rows[p] = NULL; done++; break; }
      }
    }
    for (int p = 0; p < prev.n; p++) cJSON_Delete(prev.rows[p]);
    free(prev.rows);
  }
  if (!who || !*who) who = getenv("USER") ? getenv("USER") : "human";
  int nkeys = (int)strlen(keys), rc = 0, skipped = 0;
  raw_mode(true);
  for (int i = 0; i < in->n; i++) {
    if (os.rows[i]) continue;
    const cJSON *r = in->rows[i];
    char idb[256];
    row_id(r, i, idb, sizeof idb);
    printf("\033[2J\033[H== tunic judge: sample %d of %d (id %s), %d judged so far\n\n", i + 1, (int)in->n, idb, done);
    printf("-- prompt --\n%s\n\n-- completion --\n%s\n\n", str_field(r, "prompt"), str_field(r, "completion"));
    const char *ref = str_field(r, "answer");
    if (*ref) printf("-- reference --\n%s\n\n", ref);
    printf("score: press ");
    for (int k = 0; k < nkeys; k++) printf("%c%s", keys[k], k + 1 < nkeys ? " " : "");
    printf(" (score = position, %c lowest), s skip, q quit > ", keys[0]);
    fflush(stdout);
    int c, pos = -1;
    for (;;) {
      c = read_key();
      if (c == EOF || c == 'q' || c == 's') break;
      const char *hit = c ? strchr(keys, c) : NULL;
      if (hit) { pos = (int)(hit - keys); break; }
    }
    if (c == EOF || c == 'q') break;
    if (c == 's') { skipped++; continue; }
    cJSON *o = cJSON_Duplicate(r, true);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "score");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "judge");
    cJSON_AddNumberToObject(o, "score", pos);
    cJSON *jd = cJSON_AddObjectToObject(o, "judge");
    cJSON_AddStringToObject(jd, "type", "human");
    cJSON_AddStringToObject(jd, "who", who);
    char ts[32];
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(jd, "time", ts);
    char kb[2] = {(char)c, 0};
    cJSON_AddStringToObject(jd, "key", kb);
    os.rows[i] = o;
    done++;
    tn_status s = tn_write_atomic_cb(out, write_rows, &os); /* after every score: a kill loses nothing */
    if (s != TN_OK) { rc = tn_cli_fail("judge", s); break; }
  }
  raw_mode(false);
  printf("\n%d of %d judged%s; results: %s%s\n", done, (int)in->n, skipped ? " (some skipped)" : "", out,
         done < in->n ? " (run the same command again to continue)" : "");
  for (int i = 0; i < os.n; i++) cJSON_Delete(os.rows[i]);
  free(os.rows);
  return rc;
}

int tn_cmd_judge(int argc, char **argv) {
  tn_judge_opts o;
  tn_judge_opts_default(&o);
  const char *data = NULL, *out = NULL, *tmpl_file = NULL, *who = NULL, *keys = "0123456789";
  bool human = false, force = false;
  tn_flag flags[] = {
    {"data", 's', &data, "JSONL rows: {id?, prompt?, completion, answer? ...}"},
    {"out", 's', &out, "scored JSONL (each row + \"score\" + \"judge\")"},
    {"judge", 's', &o.spec, "reward-library spec, as grpo --reward: answer:1,format_exact:0.5,rubric:1,cmd:1"},
    {"rubric", 's', &o.reward.rubric_path, "rubric YAML for the rubric reward"},
    {"reward-cmd", 's', &o.reward.reward_cmd, "external reward process (one JSON line in, one number out)"},
    {"reward-cmd-timeout", 'd', &o.reward.reward_cmd_timeout, "seconds per answer of the reward process"},
    {"judge-model", 's', &o.model, "a local model as judge (model directory)"},
    {"judge-adapter", 's', &o.adapter, "the judge model's LoRA adapter"},
    {"judge-template", 's', &o.template_text, "judge prompt template text with {prompt} {completion} {answer} (default: a 1-10 grading prompt)"},
    {"judge-template-file", 's', &tmpl_file, "file holding the judge prompt template"},
    {"score-min", 'd', &o.score_min, "lowest valid score of the judge model"},
    {"score-max", 'd', &o.score_max, "highest valid score of the judge model"},
    {"max-new-tokens", 'i', &o.max_new_tokens, "tokens of the judge model's verdict"},
    {"batch-size", 'i', &o.batch_size, "judge prompts per generation batch"},
    {"no-chat", 'b', &o.no_chat, "plain template text even when the judge tokenizer has a chat template"},
    {"human", 'b', &human, "a person judges in the terminal (resumable)"},
    {"who", 's', &who, "the human judge's name in each score line (default: $USER)"},
    {"keys", 's', &keys, "the score keys, lowest first (score = the key's position)"},
    {"force", 'b', &force, "overwrite --out when it is not tunic judge output"},
  };
  struct tn_runcfg *rcfg = NULL;
  int r = tn_cli_parse_config(argc, argv, flags, sizeof flags / sizeof flags[0],
                              "--data IN.jsonl --out OUT.jsonl (--judge SPEC | --judge-model DIR | --human)", &rcfg);
  if (r) return r > 0 ? 0 : 2;
  int rc = 0;
  char *tmpl = NULL;
  rowset in = {0};
  int kinds = (o.spec != NULL) + (o.model != NULL) + human;
  if (!data || !out || kinds != 1) {
    fprintf(stderr, "tunic judge: --data, --out and one of --judge, --judge-model, --human are required\n");
    rc = 2;
    goto done;
  }
  if (!*keys || strpbrk(keys, "sq")) {
    fprintf(stderr, "tunic judge: --keys '%s': need at least one key, and not 's' or 'q'\n", keys);
    rc = 2;
    goto done;
  }
  static const char *const magic[] = {"{", NULL};
  tn_status s = tn_cli_out_file("out", out, magic, force);
  if (s == TN_OK && tmpl_file) {
    size_t len;
    s = tn_read_file(tmpl_file, &tmpl, &len);
    o.template_text = tmpl;
  }
  if (s == TN_OK) s = tn_jsonl_read(data, add_row, &in);
  if (s == TN_OK && !in.n) s = tn_error(TN_ERR_FORMAT, "%s: no rows", data);
  if (s != TN_OK) { rc = tn_cli_fail("judge", s); goto done; }
  if (human) { rc = run_human(&in, out, who, keys); goto done; }

  tn_judge *j = NULL;
  s = tn_judge_open(&j, &o);
  const char **prompts = calloc(in.n, sizeof *prompts), **comps = calloc(in.n, sizeof *comps);
  double *scores = calloc(in.n, sizeof *scores);
  if (s == TN_OK && (!prompts || !comps || !scores)) s = tn_error(TN_ERR_NOMEM, "out of memory");
  int unparsed = 0;
  if (s == TN_OK) {
    for (int i = 0; i < in.n; i++) {
      prompts[i] = str_field(in.rows[i], "prompt");
      comps[i] = str_field(in.rows[i], "completion");
    }
    s = tn_judge_score(j, in.n, prompts, comps, (const cJSON *const *)in.rows, scores, in.rows, &unparsed);
  }
  if (s == TN_OK) {
    outset os = {in.rows, in.n};
    s = tn_write_atomic_cb(out, write_rows, &os);
  }
  if (s == TN_OK) {
    double sum = 0;
    int ok = 0;
    for (int i = 0; i < in.n; i++)
      if (!isnan(scores[i])) { sum += scores[i]; ok++; }
    printf("judged %d rows with %s: mean score %.4f", (int)in.n, o.spec ? o.spec : o.model, ok ? sum / ok : NAN);
    if (o.model) printf(", %d unparseable verdicts (parse rate %.1f%%)", unparsed, 100.0 * (in.n - unparsed) / in.n);
    printf("\nresults: %s\n", out);
  }
  rc = s == TN_OK ? 0 : tn_cli_fail("judge", s);
  tn_judge_close(j);
  free(prompts);
  free(comps);
  free(scores);
done:
  tn_jsonl_rows_free(&in);
  free(tmpl);
  tn_runcfg_free(rcfg);
  return rc;
}
