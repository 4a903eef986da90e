/* reward.c - the reward library of GRPO: built-in rewards (format_exact, format_approx,
 * answer, numeric, length, rubric), the weighted-sum spec parser, C callbacks and the
 * external reward process (--reward-cmd: a long-lived child fed one JSON line per
 * completion, answering one number per line, with timeouts and clear errors).
 * Not for: advantages/losses (src/train) or answer extraction (src/eval/extract.c).
 * Values and formulas: docs/rewards.md. */
#define _GNU_SOURCE
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <math.h>
#include <pcre2.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>
#include <cjson/cJSON.h>
#include "obs/obs.h"
#include "rl/rewards.h"

extern char **environ;

void tn_reward_config_default(tn_reward_config *c) {
  memset(c, 0, sizeof *c);
  c->reasoning_open = "<reasoning>";
  c->reasoning_close = "</reasoning>";
  c->answer_open = "<answer>";
  c->answer_close = "</answer>";
  c->answer_field = "answer";
  c->length_min_words = 0;
  c->length_max_words = 200;
  c->reward_cmd_timeout = 30;
}

void tn_reward_extract_config(const tn_reward_config *c, tn_extract_config *e) {
  tn_extract_config_default(e);
  if (c->reasoning_open) e->reasoning_open = c->reasoning_open;
  if (c->reasoning_close) e->reasoning_close = c->reasoning_close;
  if (c->answer_open) e->answer_open = c->answer_open;
  if (c->answer_close) e->answer_close = c->answer_close;
  e->format_strict = c->format_strict;
  e->tags_only = c->answer_tags_only;
}

/* ---------------- single rewards ---------------- */

float tn_reward_format_exact(const char *completion, const tn_reward_config *c) {
  tn_extract_config e;
  tn_reward_extract_config(c, &e);
  return tn_format_ok(completion, &e) ? 1.0f : 0.0f;
}

static int count_occ(const char *s, const char *t) {
  if (!t || !*t) return 0;
  int n = 0;
  size_t lt = strlen(t);
  for (const char *p = strstr(s, t); p; p = strstr(p + lt, t)) n++;
  return n;
}

float tn_reward_format_approx(const char *completion, const tn_reward_config *c) {
  tn_extract_config e;
  tn_reward_extract_config(c, &e);
  const char *s = completion ? completion : "";
  const char *tags[4] = {e.reasoning_open, e.reasoning_close, e.answer_open, e.answer_close};
  float r = 0;
  for (int i = 0; i < 4; i++) r += count_occ(s, tags[i]) == 1 ? TN_FORMAT_APPROX_GOOD : TN_FORMAT_APPROX_BAD;
  return r;
}

float tn_reward_answer(const char *completion, const char *ref, const tn_reward_config *c) {
  tn_extract_config e;
  tn_reward_extract_config(c, &e);
  char ext[1024];
  if (tn_extract_answer(completion, &e, ext, sizeof ext) == TN_EXTRACT_NONE) return 0.0f;
  return tn_answers_equal(ext, ref) ? 1.0f : 0.0f;
}

float tn_reward_numeric(const char *completion, const char *ref, const tn_reward_config *c) {
  tn_extract_config e;
  tn_reward_extract_config(c, &e);
  char ext[1024];
  double x, r;
  if (tn_extract_answer(completion, &e, ext, sizeof ext) == TN_EXTRACT_NONE || !tn_answer_value(ext, &x))
    return (float)c->numeric_none;
  const char *h = NULL;
  for (const char *q = strstr(ref, "####"); q; q = strstr(q + 1, "####")) h = q + 4;
  if (!tn_answer_value(h ? h : ref, &r)) return tn_answers_equal(ext, ref) ? 1.0f : (float)c->numeric_wrong;
  double credit = tn_closeness_credit(x, r);
  return credit > 0 ? (float)credit : (float)c->numeric_wrong;
}

int tn_count_words(const char *s) {
  int n = 0;
  bool in = false;
  for (; s && *s; s++) {
    bool ws = isspace((unsigned char)*s);
    if (!ws && !in) n++;
    in = !ws;
  }
  return n;
}

float tn_reward_length(const char *completion, const tn_reward_config *c) {
  int w = tn_count_words(completion);
  int lo = c->length_min_words, hi = c->length_max_words;
  if (lo > 0 && w < lo) return (float)w / lo;
  if (hi > 0 && w > hi) return (float)fmax(0.0, 1.0 - (double)(w - hi) / hi);
  return 1.0f;
}

/* ---------------- rubric ---------------- */

typedef enum { CK_MIN_WORDS, CK_MAX_WORDS, CK_MUST_CONTAIN, CK_MUST_NOT_CONTAIN, CK_REGEX } check_kind;

typedef struct {
  check_kind kind;
  float weight;
  bool ignore_case;
  int count;        /* min/max words */
  char **strs;      /* must_(not_)contain: all of them */
  int nstrs;
  pcre2_code *re;
} rubric_check;

struct tn_rubric {
  rubric_check *checks;
  int n;
  double wsum;
};

int tn_rubric_count(const tn_rubric *r) { return r ? r->n : 0; }

void tn_rubric_free(tn_rubric *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++) {
    for (int k = 0; k < r->checks[i].nstrs; k++) free(r->checks[i].strs[k]);
    free(r->checks[i].strs);
    if (r->checks[i].re) pcre2_code_free(r->checks[i].re);
  }
  free(r->checks);
  free(r);
}

static const char *ynode_str(yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool yaml_num(yaml_node_t *n, double *out) {
  const char *s = ynode_str(n);
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v)) return false;
  *out = v;
  return true;
}

/* One sequence item: a mapping with exactly one check key, optional weight / ignore_case. */
static tn_status parse_check(yaml_document_t *doc, yaml_node_t *item, int idx, const char *name, rubric_check *ck) {
  memset(ck, 0, sizeof *ck);
  ck->weight = 1.0f;
  if (item->type != YAML_MAPPING_NODE)
    return tn_error(TN_ERR_FORMAT, "%s: check %d: expected a mapping like {must_contain: \"x\", weight: 1}", name, idx + 1);
  int nkind = 0;
  for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
    const char *key = ynode_str(yaml_document_get_node(doc, p->key));
    yaml_node_t *val = yaml_document_get_node(doc, p->value);
    if (!key) return tn_error(TN_ERR_FORMAT, "%s: check %d: non-scalar key", name, idx + 1);
    if (!strcmp(key, "weight")) {
      double w;
      if (!yaml_num(val, &w) || fabs(w) > 1e30)
        return tn_error(TN_ERR_FORMAT, "%s: check %d: weight is not a number (or beyond +-1e30)", name, idx + 1);
      ck->weight = (float)w;
    } else if (!strcmp(key, "ignore_case")) {
      const char *s = ynode_str(val);
      if (!s) return tn_error(TN_ERR_FORMAT, "%s: check %d: ignore_case must be true or false", name, idx + 1);
      ck->ignore_case = !strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1");
    } else if (!strcmp(key, "name")) {
      /* a label for humans */
    } else if (nkind && (!strcmp(key, "min_words") || !strcmp(key, "max_words") || !strcmp(key, "must_contain") ||
                         !strcmp(key, "must_not_contain") || !strcmp(key, "regex"))) {
      return tn_error(TN_ERR_FORMAT, "%s: check %d: needs exactly one of min_words, max_words, must_contain, "
                      "must_not_contain, regex (found a second: %s)", name, idx + 1, key);
    } else if (!strcmp(key, "min_words") || !strcmp(key, "max_words")) {
      double v;
      if (!yaml_num(val, &v) || v < 0 || v != floor(v) || v > INT_MAX)
        return tn_error(TN_ERR_FORMAT, "%s: check %d: %s must be a non-negative integer (at most %d)", name, idx + 1, key, INT_MAX);
      ck->kind = key[1] == 'i' ? CK_MIN_WORDS : CK_MAX_WORDS;
      ck->count = (int)v;
      nkind++;
    } else if (!strcmp(key, "must_contain") || !strcmp(key, "must_not_contain")) {
      ck->kind = !strcmp(key, "must_contain") ? CK_MUST_CONTAIN : CK_MUST_NOT_CONTAIN;
      nkind++;
      if (val && val->type == YAML_SCALAR_NODE) {
        ck->strs = malloc(sizeof(char *));
        if (!ck->strs || !(ck->strs[0] = tn_strdup(ynode_str(val))))
          return tn_error(TN_ERR_NOMEM, "%s: check %d: out of memory", name, idx + 1);
        ck->nstrs = 1;
      } else if (val && val->type == YAML_SEQUENCE_NODE) {
        int cnt = (int)(val->data.sequence.items.top - val->data.sequence.items.start);
        ck->strs = calloc(cnt + 1, sizeof(char *));
        if (!ck->strs) return tn_error(TN_ERR_NOMEM, "%s: check %d: out of memory", name, idx + 1);
        for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top; it++) {
          const char *s = ynode_str(yaml_document_get_node(doc, *it));
          if (!s) return tn_error(TN_ERR_FORMAT, "%s: check %d: %s list items must be strings", name, idx + 1, key);
          if (!(ck->strs[ck->nstrs] = tn_strdup(s))) return tn_error(TN_ERR_NOMEM, "%s: check %d: out of memory", name, idx + 1);
          ck->nstrs++;
        }
      } else {
        return tn_error(TN_ERR_FORMAT, "%s: check %d: %s must be a string or a list of strings", name, idx + 1, key);
      }
    } else if (!strcmp(key, "regex")) {
      const char *s = ynode_str(val);
      if (!s) return tn_error(TN_ERR_FORMAT, "%s: check %d: regex must be a string", name, idx + 1);
      ck->kind = CK_REGEX;
      nkind++;
      ck->strs = malloc(sizeof(char *));
      if (!ck->strs || !(ck->strs[0] = tn_strdup(s))) return tn_error(TN_ERR_NOMEM, "%s: check %d: out of memory", name, idx + 1);
      ck->nstrs = 1;
    } else {
      return tn_error(TN_ERR_FORMAT,
                      "%s: check %d: unknown key '%s' (known: min_words, max_words, must_contain, "
                      "must_not_contain, regex, weight, ignore_case, name)", name, idx + 1, key);
    }
  }
  if (nkind != 1)
    return tn_error(TN_ERR_FORMAT, "%s: check %d: needs exactly one of min_words, max_words, must_contain, "
                    "must_not_contain, regex (found %d)", name, idx + 1, nkind);
  if (ck->kind == CK_REGEX) {
    int err;
    PCRE2_SIZE off;
    ck->re = pcre2_compile((PCRE2_SPTR)ck->strs[0], PCRE2_ZERO_TERMINATED, ck->ignore_case ? PCRE2_CASELESS : 0, &err,
                           &off, NULL);
    if (!ck->re) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      return tn_error(TN_ERR_FORMAT, "%s: check %d: bad regex '%s' at offset %zu: %s", name, idx + 1, ck->strs[0],
                      (size_t)off, (char *)msg);
    }
  }
  return TN_OK;
}

tn_status tn_rubric_parse(const char *text, const char *name, tn_rubric **out) {
  *out = NULL;
  if (!name) name = "rubric";
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) return tn_error(TN_ERR_NOMEM, "%s: cannot initialise YAML parser", name);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
  if (!yaml_parser_load(&parser, &doc)) {
    tn_status s = tn_error(TN_ERR_FORMAT, "%s:%zu:%zu: YAML error: %s", name, parser.problem_mark.line + 1,
                           parser.problem_mark.column + 1, parser.problem ? parser.problem : "?");
    yaml_parser_delete(&parser);
    return s;
  }
  yaml_parser_delete(&parser);
  tn_status st = TN_OK;
  tn_rubric *r = calloc(1, sizeof *r);
  if (!r) { yaml_document_delete(&doc); return tn_error(TN_ERR_NOMEM, "%s: out of memory", name); }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (root && root->type == YAML_MAPPING_NODE) { /* {checks: [...]} */
    yaml_node_t *seq = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
      const char *k = ynode_str(yaml_document_get_node(&doc, p->key));
      if (k && !strcmp(k, "checks")) seq = yaml_document_get_node(&doc, p->value);
    }
    root = seq;
  }
  if (!root || root->type != YAML_SEQUENCE_NODE) {
    st = tn_error(TN_ERR_FORMAT, "%s: expected a YAML list of checks (or a mapping with a 'checks' list)", name);
    goto done;
  }
  int cnt = (int)(root->data.sequence.items.top - root->data.sequence.items.start);
  if (cnt == 0) { st = tn_error(TN_ERR_FORMAT, "%s: the rubric has no checks", name); goto done; }
  r->checks = calloc(cnt, sizeof *r->checks);
  if (!r->checks) { st = tn_error(TN_ERR_NOMEM, "%s: out of memory", name); goto done; }
  for (int i = 0; i < cnt; i++) {
    st = parse_check(&doc, yaml_document_get_node(&doc, root->data.sequence.items.start[i]), i, name, &r->checks[i]);
    r->n = i + 1; /* so that free releases the partial check */
    if (st != TN_OK) goto done;
    r->wsum += fabs(r->checks[i].weight);
  }
  if (r->wsum == 0) st = tn_error(TN_ERR_FORMAT, "%s: all check weights are zero", name);
done:
  yaml_document_delete(&doc);
  if (st != TN_OK) { tn_rubric_free(r); return st; }
  *out = r;
  return TN_OK;
}

tn_status tn_rubric_load(const char *path, tn_rubric **out) {
  char *text;
  size_t len;
  TN_TRY(tn_read_file(path, &text, &len));
  tn_status s = tn_rubric_parse(text, path, out);
  free(text);
  return s;
}

static bool contains(const char *s, const char *t, bool icase) {
  if (!icase) return strstr(s, t) != NULL;
  size_t n = strlen(t);
  for (const char *p = s; *p; p++)
    if (!strncasecmp(p, t, n)) return true;
  return n == 0;
}

float tn_rubric_score(const tn_rubric *r, const char *completion) {
  const char *s = completion ? completion : "";
  double sum = 0;
  int words = -1;
  for (int i = 0; i < r->n; i++) {
    const rubric_check *c = &r->checks[i];
    bool pass = true;
    switch (c->kind) {
    case CK_MIN_WORDS:
    case CK_MAX_WORDS:
      if (words < 0) words = tn_count_words(s);
      pass = c->kind == CK_MIN_WORDS ? words >= c->count : words <= c->count;
      break;
    case CK_MUST_CONTAIN:
      for (int k = 0; k < c->nstrs && pass; k++) pass = contains(s, c->strs[k], c->ignore_case);
      break;
    case CK_MUST_NOT_CONTAIN:
      for (int k = 0; k < c->nstrs && pass; k++) pass = !contains(s, c->strs[k], c->ignore_case);
      break;
    case CK_REGEX: {
      pcre2_match_data *md = pcre2_match_data_create_from_pattern(c->re, NULL);
      pass = pcre2_match(c->re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL) >= 0;
      pcre2_match_data_free(md);
      break;
    }
    }
    if (pass) sum += c->weight;
  }
  return (float)(sum / r->wsum);
}

/* ---------------- external reward process ---------------- */

struct tn_reward_proc {
  char *cmd;
  pid_t pid;
  int in_fd, out_fd;  /* child's stdin (we write), child's stdout (we read) */
  double timeout;
  int64_t line;       /* request lines sent so far (1-based numbering in messages) */
  char *rbuf;         /* partial answer line: (TN_REWARD_LINE_MAX + 1) */
  size_t rlen;
  bool dead;
};

static void kill_child(tn_reward_proc *p) {
  if (p->pid > 0) {
    kill(-p->pid, SIGKILL); /* the child's own process group (setpgid in the child) */
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = -1;
  }
  p->dead = true;
}

tn_status tn_reward_proc_start(const char *cmd, double timeout_s, tn_reward_proc **out) {
  *out = NULL;
  if (!cmd || !*cmd) return tn_error(TN_ERR_ARG, "--reward-cmd: empty command");
  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC)) return tn_error(TN_ERR_IO, "reward command '%s': pipe: %s", cmd, strerror(errno));
  if (pipe2(from_child, O_CLOEXEC)) {
    close(to_child[0]); close(to_child[1]);
    return tn_error(TN_ERR_IO, "reward command '%s': pipe: %s", cmd, strerror(errno));
  }
  /* environment with PYTHONUNBUFFERED=1 so that Python scripts answer line by line */
  int ne = 0;
  while (environ && environ[ne]) ne++;
  char **envp = calloc(ne + 2, sizeof *envp);
  int k = 0;
  bool have = false;
  for (int i = 0; i < ne; i++) {
    if (!strncmp(environ[i], "PYTHONUNBUFFERED=", 17)) have = true;
    envp[k++] = environ[i];
  }
  if (!have) envp[k++] = "PYTHONUNBUFFERED=1";
  envp[k] = NULL;
  char *argv[] = {"sh", "-c", (char *)cmd, NULL};
  pid_t pid = fork();
  if (pid < 0) {
    free(envp);
    close(to_child[0]); close(to_child[1]); close(from_child[0]); close(from_child[1]);
    return tn_error(TN_ERR_IO, "reward command '%s': fork: %s", cmd, strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    signal(SIGPIPE, SIG_DFL);
    execve("/bin/sh", argv, envp);
    _exit(127);
  }
  setpgid(pid, pid); /* also from the parent, so kill(-pid) works at once */
  free(envp);
  close(to_child[0]);
  close(from_child[1]);
  tn_reward_proc *p = calloc(1, sizeof *p);
  p->cmd = tn_strdup(cmd);
  p->pid = pid;
  p->in_fd = to_child[1];
  p->out_fd = from_child[0];
  p->timeout = timeout_s > 0 ? timeout_s : 30;
  p->rbuf = malloc(TN_REWARD_LINE_MAX + 1);
  if (!p->rbuf) { tn_reward_proc_stop(p); return tn_error(TN_ERR_NOMEM, "reward command: out of memory"); }
  fcntl(p->in_fd, F_SETFL, fcntl(p->in_fd, F_GETFL) | O_NONBLOCK);
  fcntl(p->out_fd, F_SETFL, fcntl(p->out_fd, F_GETFL) | O_NONBLOCK);
  *out = p;
  return TN_OK;
}

void tn_reward_proc_stop(tn_reward_proc *p) {
  if (!p) return;
  if (p->in_fd >= 0) close(p->in_fd);
  if (p->pid > 0) { /* closed stdin: a well-behaved process exits; give it 2 s */
    for (int i = 0; i < 200; i++) {
      if (waitpid(p->pid, NULL, WNOHANG) == p->pid) { p->pid = -1; break; }
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    kill_child(p);
  }
  if (p->out_fd >= 0) close(p->out_fd);
  free(p->cmd);
  free(p->rbuf);
  free(p);
}

/* Status text of an exited child into buf; true when the child was reaped. */
static bool exit_text(pid_t pid, char *buf, size_t cap) {
  int ws = 0;
  pid_t r = 0;
  for (int i = 0; i < 100 && (r = waitpid(pid, &ws, WNOHANG)) == 0; i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  if (r != pid) { snprintf(buf, cap, "closed its output"); return false; }
  else if (WIFEXITED(ws)) snprintf(buf, cap, "exited with status %d%s", WEXITSTATUS(ws),
                                   WEXITSTATUS(ws) == 127 ? " (command not found?)" : "");
  else if (WIFSIGNALED(ws)) snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(ws), strsignal(WTERMSIG(ws)));
  else snprintf(buf, cap, "stopped");
  return true;
}

/* Write with SIGPIPE blocked on this thread; a pending SIGPIPE is consumed. */
static ssize_t write_nosig(int fd, const void *buf, size_t len) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  ssize_t w = write(fd, buf, len);
  int e = errno;
  if (w < 0 && e == EPIPE) {
    struct timespec zero = {0, 0};
    sigtimedwait(&set, NULL, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return w;
}

static bool parse_answer(const char *s, float *out) {
  while (isspace((unsigned char)*s)) s++;
  if (!*s) return false;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno == ERANGE) return false;
  while (isspace((unsigned char)*end)) end++;
  if (*end || !isfinite(v)) return false;
  *out = (float)v;
  return true;
}

/* The error for output nobody asked for, after answer line LINE: TEXT (at most 60 bytes shown). */
static tn_status extra_output(const tn_reward_proc *p, long long line, const char *text, size_t len) {
  char shown[64];
  size_t k = 0;
  for (; k < len && k < 60; k++) shown[k] = text[k] == '\n' ? ' ' : text[k];
  shown[k] = 0;
  return tn_error(TN_ERR_FORMAT, "reward command '%s' printed extra output after answering line %lld: '%s'%s "
                  "(more lines than requests; expected exactly one line per request)", p->cmd, line, shown,
                  len > 60 ? "..." : "");
}

tn_status tn_reward_proc_run(tn_reward_proc *p, int n, char *const *lines, float *out) {
  if (p->dead) return tn_error(TN_ERR_IO, "reward command '%s' is no longer running (it failed earlier)", p->cmd);
  if (n <= 0) return TN_OK;
  { /* output nobody asked for (an extra line after the previous batch) is an error, not an answer */
    ssize_t r = p->rlen < TN_REWARD_LINE_MAX ? read(p->out_fd, p->rbuf + p->rlen, TN_REWARD_LINE_MAX - p->rlen) : 0;
    if (r > 0 || p->rlen) {
      tn_status s = extra_output(p, (long long)p->line, p->rbuf, p->rlen + (r > 0 ? (size_t)r : 0));
      kill_child(p);
      return s;
    }
  }
  /* one buffer of all request lines */
  size_t total = 0;
  for (int i = 0; i < n; i++) total += strlen(lines[i]) + 1;
  char *req = malloc(total);
  if (!req) return tn_error(TN_ERR_NOMEM, "reward command: out of memory");
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    size_t l = strlen(lines[i]);
    memcpy(req + off, lines[i], l);
    req[off + l] = '\n';
    off += l + 1;
  }
  int64_t base = p->line; /* line numbers of this batch: base+1 .. base+n */
  p->line += n;
  size_t wpos = 0;
  int answered = 0;
  bool in_closed = false;
  double last = tn_now(); /* the last whole answer line (or the start): only answers restart the timeout */
  double max_gap = 0;     /* the longest wait for one answer line in this batch */
  tn_status st = TN_OK;
  char why[128];
  while (answered < n) {
    struct pollfd fds[2] = {{.fd = p->out_fd, .events = POLLIN}, {.fd = p->in_fd, .events = POLLOUT}};
    int nfds = (wpos < total && !in_closed) ? 2 : 1;
    double left = last + p->timeout - tn_now();
    if (left <= 0) goto timeout;
    int rc = poll(fds, nfds, (int)ceil(left * 1000));
    if (rc < 0) {
      if (errno == EINTR) continue;
      st = tn_error(TN_ERR_IO, "reward command '%s': poll: %s", p->cmd, strerror(errno));
      goto fail;
    }
    if (rc == 0) goto timeout;
    if (nfds == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write_nosig(p->in_fd, req + wpos, total - wpos);
      if (w > 0) { wpos += (size_t)w; last = tn_now(); }
      else if (w < 0 && errno != EAGAIN && errno != EINTR) in_closed = true; /* EPIPE: read what is left, then report */
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[4096];
      ssize_t r = read(p->out_fd, buf, sizeof buf);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) { /* EOF: the process died or closed its stdout */
        if (exit_text(p->pid, why, sizeof why)) p->pid = -1; /* else still running: killed below */
        st = tn_error(TN_ERR_IO, "reward command '%s' %s before answering line %lld (batch item %d of %d)", p->cmd,
                      why, (long long)(base + answered + 1), answered, n);
        goto fail;
      }
      for (ssize_t i = 0; i < r; i++) {
        if (buf[i] != '\n') {
          if (p->rlen == TN_REWARD_LINE_MAX) {
            st = tn_error(TN_ERR_FORMAT, "reward command '%s' printed more than %d bytes without a newline while "
                          "answering line %lld (batch item %d of %d): expected one number per line", p->cmd,
                          TN_REWARD_LINE_MAX, (long long)(base + answered + 1), answered, n);
            goto fail;
          }
          p->rbuf[p->rlen++] = buf[i];
          continue;
        }
        p->rbuf[p->rlen] = 0;
        if (answered >= n) {
          st = extra_output(p, (long long)(base + n), p->rbuf, p->rlen);
          goto fail;
        }
        if (!parse_answer(p->rbuf, &out[answered])) {
          char shown[80];
          snprintf(shown, sizeof shown, "%s", p->rbuf);
          st = tn_error(TN_ERR_FORMAT, "reward command '%s' answered line %lld (batch item %d) with '%s'%s: "
                        "expected one number per line", p->cmd, (long long)(base + answered + 1), answered, shown,
                        strlen(p->rbuf) >= sizeof shown ? "..." : "");
          goto fail;
        }
        p->rlen = 0;
        answered++;
        const double now = tn_now();
        if (now - last > max_gap) max_gap = now - last;
        last = now;
      }
    }
  }
  /* More lines than requests must be caught before any of this batch's answers is used (they
   * would be misaligned): requests not written yet, or request bytes the process has not read
   * yet (beyond a final newline), mean it answered fewer requests than it printed lines; else
   * wait a little for output nobody asked for (twice the longest wait for one answer of this
   * batch, at least 50 ms, at most 1 s or the timeout). */
  int unread = 0;
  if (!p->rlen && !in_closed && (wpos < total || (ioctl(p->in_fd, FIONREAD, &unread) == 0 && unread > 1))) {
    st = tn_error(TN_ERR_FORMAT, "reward command '%s' printed %d lines before reading all %d requests of the batch "
                  "(lines %lld-%lld): expected exactly one line per request", p->cmd, n, n, (long long)(base + 1),
                  (long long)(base + n));
    goto fail;
  }
  const double cap = p->timeout < 1.0 ? p->timeout : 1.0;
  double grace = 2 * max_gap;
  grace = grace < 0.05 ? 0.05 : grace > cap ? cap : grace;
  for (double end = tn_now() + grace; !p->rlen;) {
    double left = end - tn_now();
    if (left <= 0) break;
    struct pollfd fd = {.fd = p->out_fd, .events = POLLIN};
    int rc = poll(&fd, 1, (int)ceil(left * 1000));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) break;
    ssize_t r = read(p->out_fd, p->rbuf, TN_REWARD_LINE_MAX);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r <= 0) break; /* EOF: reported at the next batch */
    p->rlen = (size_t)r;
  }
  if (p->rlen) { /* extra output after the last answer (a line or a part of one) */
    st = extra_output(p, (long long)(base + n), p->rbuf, p->rlen);
    goto fail;
  }
  free(req);
  return TN_OK;
timeout:
  st = tn_error(TN_ERR_IO, "reward command '%s' did not answer line %lld (batch item %d of %d) within %g s of the "
                "previous answer (--reward-cmd-timeout); it was killed", p->cmd, (long long)(base + answered + 1), answered, n, p->timeout);
fail:
  free(req);
  kill_child(p);
  return st;
}

/* ---------------- the weighted set ---------------- */

typedef enum { R_FORMAT_EXACT, R_FORMAT_APPROX, R_ANSWER, R_NUMERIC, R_LENGTH, R_RUBRIC, R_CMD, R_CALLBACK } reward_kind;
static const char *builtin_names[] = {"format_exact", "format_approx", "answer", "numeric", "length", "rubric", "cmd"};

typedef struct {
  reward_kind kind;
  char name[64];
  float weight;
  tn_reward_callback fn;
  void *user;
} reward_term;

struct tn_rewards {
  tn_reward_config cfg;
  char *strs[8];        /* owned copies of the config's strings */
  reward_term *terms;
  int n, cap;
  tn_rubric *rubric;
  tn_reward_proc *proc;
  float *tmp;           /* (N) scratch of one function's values */
  int tmp_cap;
};

static tn_status add_term(tn_rewards *r, reward_kind kind, const char *name, float weight) {
  for (int i = 0; i < r->n; i++)
    if (!strcmp(r->terms[i].name, name)) return tn_error(TN_ERR_ARG, "reward '%s' appears twice", name);
  if (!isfinite(weight)) return tn_error(TN_ERR_ARG, "reward '%s': weight is not finite", name);
  if (r->n == r->cap) {
    int cap = r->cap ? 2 * r->cap : 8;
    reward_term *t = realloc(r->terms, sizeof *t * cap);
    if (!t) return tn_error(TN_ERR_NOMEM, "rewards: out of memory");
    r->terms = t;
    r->cap = cap;
  }
  reward_term *t = &r->terms[r->n++];
  memset(t, 0, sizeof *t);
  t->kind = kind;
  t->weight = weight;
  snprintf(t->name, sizeof t->name, "%s", name);
  return TN_OK;
}

static tn_status parse_spec(tn_rewards *r, const char *spec) {
  const char *p = spec;
  while (p && *p) {
    while (*p == ' ' || *p == ',') p++;
    if (!*p) break;
    const char *e = strchr(p, ',');
    if (!e) e = p + strlen(p);
    char item[128];
    size_t len = (size_t)(e - p);
    if (len >= sizeof item) return tn_error(TN_ERR_ARG, "--reward: item too long in '%s'", spec);
    memcpy(item, p, len);
    item[len] = 0;
    while (len && item[len - 1] == ' ') item[--len] = 0;
    float w = 1.0f;
    char *colon = strchr(item, ':');
    if (colon) {
      *colon = 0;
      char *end;
      errno = 0;
      double v = strtod(colon + 1, &end);
      while (*end == ' ') end++;
      if (errno || end == colon + 1 || *end || !isfinite(v))
        return tn_error(TN_ERR_ARG, "--reward: bad weight '%s' for '%s' (expected e.g. answer:2)", colon + 1, item);
      w = (float)v;
    }
    char *nm = item;
    while (*nm == ' ') nm++;
    size_t nl = strlen(nm);
    while (nl && nm[nl - 1] == ' ') nm[--nl] = 0;
    int kind = -1;
    for (int k = 0; k <= R_CMD; k++)
      if (!strcmp(nm, builtin_names[k])) kind = k;
    if (kind < 0)
      return tn_error(TN_ERR_ARG, "--reward: unknown reward '%s' (known: format_exact, format_approx, answer, numeric, "
                      "length, rubric, cmd)", nm);
    if (kind == R_RUBRIC && !r->rubric)
      return tn_error(TN_ERR_ARG, "--reward: 'rubric' needs a rubric file (--rubric FILE.yaml)");
    if (kind == R_CMD && !r->cfg.reward_cmd)
      return tn_error(TN_ERR_ARG, "--reward: 'cmd' needs a reward command (--reward-cmd \"...\")");
    TN_TRY(add_term(r, (reward_kind)kind, nm, w));
    p = e;
  }
  return TN_OK;
}

tn_status tn_rewards_create(tn_rewards **out, const char *spec, const tn_reward_config *cfg) {
  *out = NULL;
  tn_rewards *r = calloc(1, sizeof *r);
  if (!r) return tn_error(TN_ERR_NOMEM, "rewards: out of memory");
  tn_reward_config_default(&r->cfg);
  if (cfg) {
    r->cfg = *cfg;
    /* own the strings: the caller's may be argv or a config file that goes away */
    const char **fields[] = {&r->cfg.reasoning_open, &r->cfg.reasoning_close, &r->cfg.answer_open, &r->cfg.answer_close,
                             &r->cfg.answer_field, &r->cfg.rubric_path, &r->cfg.rubric_yaml, &r->cfg.reward_cmd};
    tn_reward_config def;
    tn_reward_config_default(&def);
    const char *defs[] = {def.reasoning_open, def.reasoning_close, def.answer_open, def.answer_close, def.answer_field,
                          NULL, NULL, NULL};
    for (int i = 0; i < 8; i++) {
      if (!*fields[i]) *fields[i] = defs[i];
      if (*fields[i] && !(*fields[i] = r->strs[i] = tn_strdup(*fields[i]))) {
        tn_rewards_free(r);
        return tn_error(TN_ERR_NOMEM, "rewards: out of memory");
      }
    }
  }
  tn_status st = TN_OK;
  if (r->cfg.rubric_yaml) st = tn_rubric_parse(r->cfg.rubric_yaml, "rubric", &r->rubric);
  else if (r->cfg.rubric_path) st = tn_rubric_load(r->cfg.rubric_path, &r->rubric);
  if (st == TN_OK) st = parse_spec(r, spec);
  if (st == TN_OK && r->cfg.reward_cmd) {
    bool named = false;
    for (int i = 0; i < r->n; i++) named |= r->terms[i].kind == R_CMD;
    if (!named) st = add_term(r, R_CMD, "cmd", 1.0f);
    if (st == TN_OK) st = tn_reward_proc_start(r->cfg.reward_cmd, r->cfg.reward_cmd_timeout, &r->proc);
  }
  if (st != TN_OK) { tn_rewards_free(r); return st; }
  *out = r;
  return TN_OK;
}

tn_status tn_rewards_add_callback(tn_rewards *r, const char *name, float weight, tn_reward_callback fn, void *user) {
  if (!fn || !name || !*name) return tn_error(TN_ERR_ARG, "tn_rewards_add_callback: name and function are required");
  TN_TRY(add_term(r, R_CALLBACK, name, weight));
  r->terms[r->n - 1].fn = fn;
  r->terms[r->n - 1].user = user;
  return TN_OK;
}

int tn_rewards_count(const tn_rewards *r) { return r->n; }
const char *tn_rewards_name(const tn_rewards *r, int i) { return i >= 0 && i < r->n ? r->terms[i].name : NULL; }
float tn_rewards_weight(const tn_rewards *r, int i) { return i >= 0 && i < r->n ? r->terms[i].weight : 0.0f; }

void tn_rewards_free(tn_rewards *r) {
  if (!r) return;
  tn_reward_proc_stop(r->proc);
  tn_rubric_free(r->rubric);
  for (int i = 0; i < 8; i++) free(r->strs[i]);
  free(r->terms);
  free(r->tmp);
  free(r);
}

/* Reference answer of example I as text into BUF. */
static tn_status get_ref(const tn_rewards *r, const cJSON *ex, int i, char *buf, size_t cap, const char **ref) {
  const cJSON *v = ex ? cJSON_GetObjectItemCaseSensitive(ex, r->cfg.answer_field) : NULL;
  if (!v && ex && strcmp(r->cfg.answer_field, "expected_answer")) v = cJSON_GetObjectItemCaseSensitive(ex, "expected_answer");
  if (cJSON_IsString(v)) { *ref = v->valuestring; return TN_OK; }
  if (cJSON_IsNumber(v)) {
    snprintf(buf, cap, "%.17g", v->valuedouble);
    *ref = buf;
    return TN_OK;
  }
  return tn_error(TN_ERR_FORMAT, "reward: example %d has no '%s' field (string or number) to compare the answer with", i,
                  r->cfg.answer_field);
}

static tn_status run_cmd(tn_rewards *r, int n, const char *const *prompts, const char *const *completions,
                         const cJSON *const *examples, float *out) {
  char **lines = calloc(n, sizeof *lines);
  if (!lines) return tn_error(TN_ERR_NOMEM, "reward command: out of memory");
  tn_status st = TN_OK;
  for (int i = 0; i < n && st == TN_OK; i++) {
    cJSON *o = examples && examples[i] && cJSON_IsObject(examples[i]) ? cJSON_Duplicate(examples[i], 1) : cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(o, "prompt");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "completion");
    cJSON_AddStringToObject(o, "prompt", prompts && prompts[i] ? prompts[i] : "");
    cJSON_AddStringToObject(o, "completion", completions[i] ? completions[i] : "");
    lines[i] = tn_json_print_valid(o, false); /* the process may decode strictly: prompts from the data */
    cJSON_Delete(o);
    if (!lines[i]) st = tn_error(TN_ERR_NOMEM, "reward command: cannot encode item %d", i);
  }
  if (st == TN_OK) st = tn_reward_proc_run(r->proc, n, lines, out);
  for (int i = 0; i < n; i++) free(lines[i]);
  free(lines);
  return st;
}

tn_status tn_rewards_compute(tn_rewards *r, int n, const char *const *prompts, const char *const *completions,
                             const cJSON *const *examples, float *per_fn, float *total) {
  if (r->n == 0) return tn_error(TN_ERR_ARG, "rewards: no reward function (use --reward or --reward-cmd)");
  if (n <= 0) return TN_OK;
  if (!completions || !total) return tn_error(TN_ERR_ARG, "tn_rewards_compute: completions and total are required");
  if (r->tmp_cap < n) {
    free(r->tmp);
    r->tmp = malloc(sizeof *r->tmp * n);
    if (!r->tmp) { r->tmp_cap = 0; return tn_error(TN_ERR_NOMEM, "rewards: out of memory"); }
    r->tmp_cap = n;
  }
  for (int i = 0; i < n; i++) total[i] = 0;
  for (int f = 0; f < r->n; f++) {
    reward_term *t = &r->terms[f];
    float *v = per_fn ? per_fn + (size_t)f * n : r->tmp; // (N) values of this function
    char rbuf[64];
    const char *ref = NULL;
    switch (t->kind) {
    case R_FORMAT_EXACT:
      for (int i = 0; i < n; i++) v[i] = tn_reward_format_exact(completions[i], &r->cfg);
      break;
    case R_FORMAT_APPROX:
      for (int i = 0; i < n; i++) v[i] = tn_reward_format_approx(completions[i], &r->cfg);
      break;
    case R_ANSWER:
    case R_NUMERIC:
      for (int i = 0; i < n; i++) {
        TN_TRY(get_ref(r, examples ? examples[i] : NULL, i, rbuf, sizeof rbuf, &ref));
        v[i] = t->kind == R_ANSWER ? tn_reward_answer(completions[i], ref, &r->cfg)
                                   : tn_reward_numeric(completions[i], ref, &r->cfg);
      }
      break;
    case R_LENGTH:
      for (int i = 0; i < n; i++) v[i] = tn_reward_length(completions[i], &r->cfg);
      break;
    case R_RUBRIC:
      for (int i = 0; i < n; i++) v[i] = tn_rubric_score(r->rubric, completions[i]);
      break;
    case R_CMD:
      TN_TRY(run_cmd(r, n, prompts, completions, examples, v));
      break;
    case R_CALLBACK: {
      for (int i = 0; i < n; i++) v[i] = NAN;
      tn_error_clear();
      tn_status s = t->fn(t->user, n, prompts, completions, examples, v);
      if (s != TN_OK) {
        if (!tn_last_error()[0]) return tn_error(s, "reward '%s' failed (%s)", t->name, tn_status_name(s));
        return tn_error_prefix(s, "reward '%s'", t->name);
      }
      break;
    }
    }
    for (int i = 0; i < n; i++) {
      if (!isfinite(v[i]))
        return tn_error(TN_ERR_NUMERIC, "reward '%s' gave a non-finite value for batch item %d", t->name, i);
      total[i] += t->weight * v[i];
    }
  }
  return TN_OK;
}
