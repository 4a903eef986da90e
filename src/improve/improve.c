/* improve.c - the self-improvement loop (improve.h): per round generate -> judge -> filter ->
 * versioned dataset + manifest -> SFT (tn_sft_run) -> eval (tn_eval_run) -> reports.
 * Resumable by construction: RUN/round_K/{samples.jsonl, judged.jsonl, dataset.jsonl,
 * manifest.json, model_path, eval.jsonl} are each written atomically, and a stage whose file
 * exists is skipped; an SFT stage that did not finish is started again from scratch (same
 * seed, same data: the same model). Not for: judges (judge.c), training (src/train). */
#define _GNU_SOURCE /* vasprintf */
#include <ftw.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "data/data.h"
#include "data/prompts.h"
#include "eval/report.h"
#include "eval/run_eval.h"
#include "generate/generate.h"
#include "improve/improve.h"
#include "rl/rewards.h"
#include "model/model.h"
#include "obs/obs.h"
#include "model/lora.h"
#include "train/opts.h"
#include "train/run.h"
#include "train/train.h"
#include "tunic/generate.h"
#include "base/json.h"

void tn_improve_opts_default(tn_improve_opts *o) {
  memset(o, 0, sizeof *o);
  o->rounds = 3;
  o->samples = 4;
  o->temperature = 0.8f;
  o->top_p = 1;
  o->max_new_tokens = 64;
  o->gen_batch = 16;
  tn_judge_opts_default(&o->judge);
  o->judge.spec = "answer:1";
  o->threshold = 1;
  o->require_format = true;
  o->min_tokens = 1;
  o->dedup = true;
  tn_sft_opts_default(&o->sft);
  o->sft.steps = 0;
  o->sft.epochs = 1;
  o->sft.batch_size = 16;
  o->sft.lr = 5e-4f;
  o->sft.max_seq_len = 256;
  o->sft.save_every = 0;
  o->sft.keep_last = 0;
  o->adapters = "merge";
  o->eval_max_new_tokens = 64;
  o->eval_batch = 32;
  o->early_stop = true;
}

static void logf_(const tn_improve_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const tn_improve_opts *o, const char *fmt, ...) {
  if (!o->log) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(o->log, "improve: ");
  vfprintf(o->log, fmt, ap);
  fputc('\n', o->log);
  fflush(o->log);
  va_end(ap);
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *p = NULL;
  if (vasprintf(&p, fmt, ap) < 0) p = NULL;
  va_end(ap);
  return p;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb; (void)flag; (void)ftw;
  return remove(p);
}
static void rm_tree(const char *path) { nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- small files ---- */

static tn_status write_text(const char *path, const char *text) { return tn_write_file_atomic(path, text, strlen(text)); }

static tn_status write_json_file(const char *path, const cJSON *j) {
  char *s = tn_json_print_valid(j, true);
  if (!s) return tn_error(TN_ERR_NOMEM, "out of memory");
  size_t n = strlen(s);
  char *t = realloc(s, n + 2);
  if (!t) { free(s); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  t[n] = '\n';
  t[n + 1] = 0;
  tn_status st = write_text(path, t);
  free(t);
  return st;
}

typedef struct { char **lines; int64_t n, cap; } linebuf;

static tn_status lb_add_json(linebuf *b, const cJSON *j) {
  if (b->n == b->cap) {
    int64_t cap = b->cap ? 2 * b->cap : 256;
    char **nl = realloc(b->lines, sizeof *nl * cap);
    if (!nl) return tn_error(TN_ERR_NOMEM, "out of memory");
    b->lines = nl;
    b->cap = cap;
  }
  char *s = tn_json_print_valid(j, false);
  if (!s) return tn_error(TN_ERR_NOMEM, "out of memory");
  b->lines[b->n++] = s;
  return TN_OK;
}

static void lb_free(linebuf *b) {
  for (int64_t i = 0; i < b->n; i++) free(b->lines[i]);
  free(b->lines);
  memset(b, 0, sizeof *b);
}

static tn_status lb_write(FILE *f, void *ctx) {
  linebuf *b = ctx;
  for (int64_t i = 0; i < b->n; i++)
    if (fputs(b->lines[i], f) == EOF || fputc('\n', f) == EOF) return tn_error(TN_ERR_IO, "write failed");
  return TN_OK;
}

/* Stacking (adapters "stack" with LoRA rounds): the base model stays --model and a round's
 * model is --model + one PEFT adapter, the concatenation of every round's adapter so far. */
static bool stacking(const tn_improve_opts *o) {
  return o->sft.lora_rank > 0 && o->adapters && !strcmp(o->adapters, "stack");
}

/* The model a round ends with: RUN/round_K/model_path holds its directory, or with stacking the
 * stack adapter's directory (round 0, and rounds that trained nothing before any adapter: --model). */
static char *round_model(const tn_improve_opts *o, int k) {
  if (k == 0) return tn_strdup(o->model);
  char *p = pathf("%s/round_%d/model_path", o->out, k), *text = NULL;
  size_t len;
  if (!p || tn_read_file(p, &text, &len) != TN_OK) { free(p); tn_error_clear(); return NULL; }
  free(p);
  while (len && (text[len - 1] == '\n' || text[len - 1] == ' ')) text[--len] = 0;
  return text;
}

/* Several ranks (`mpirun -np N tunic improve`): rank 0 alone generates, judges, evaluates and
 * writes the run's files; every rank trains (the SFT stage is tn_sft_run, data-parallel over the
 * ranks as `tunic sft` is). After each rank-0 stage the ranks meet (meet: a sum over the ranks,
 * so they also learn whether it failed); files are read only after a meet, so every rank takes
 * the same decisions (skipped stages on resume, early stop). One rank: no-ops. */
static bool root(void) {
  const tn_comm *c = tn_train_comm();
  return !c || c->rank == 0;
}

static tn_status meet(tn_status s) {
  const tn_comm *c = tn_train_comm();
  if (!c) return s;
  double bad = s != TN_OK;
  tn_status m = c->sum_f64(c, &bad, 1);
  if (s != TN_OK) return s;
  if (m != TN_OK) return m;
  return bad > 0 ? tn_error(TN_ERR_IO, "improve: another rank failed (its error is on its stderr)") : TN_OK;
}

/* The stack adapter of a round's model (NULL: the plain base). */
static const char *stack_adapter(const tn_improve_opts *o, const char *spec) {
  return stacking(o) && strcmp(spec, o->model) ? spec : NULL;
}

/* A round's model for generation and eval, loaded as `tunic eval --model M [--adapter STACK]` loads
 * it (the stack applied as an adapter, not merged); l is freed with tn_infer_loaded_free. */
static tn_status load_model(const tn_improve_opts *o, const char *spec, tn_infer_loaded *l) {
  const char *adapter = stack_adapter(o, spec);
  return tn_infer_load(&(tn_infer_spec){.model = adapter ? o->model : spec, .adapter = adapter}, TN_INFER_TOKENIZER, l);
}

/* ---- stage 1: samples ---- */

static tn_status stage_generate(const tn_improve_opts *o, int k, const char *model_dir, const char *path) {
  tn_model *m = NULL;
  tn_tokenizer *tok = NULL;
  tn_infer_loaded il;
  TN_TRY(load_model(o, model_dir, &il));
  m = il.model;
  tok = il.tok;
  tn_prompt_opts po = {.system_prompt = o->system_prompt ? o->system_prompt : "", .field = "prompt",
                       .no_chat = o->no_chat, .chat = TN_CHAT_AUTO, .max_prompt_len = o->max_prompt_len};
  tn_status s = TN_OK;
  if (o->chat_format && *o->chat_format && strcmp(o->chat_format, "auto")) s = tn_chat_format_parse(o->chat_format, &po.chat);
  tn_prompt_set ps = {0};
  if (s == TN_OK) s = tn_prompts_load(&ps, o->prompts, tok, &po);
  /* the slice of prompts this round uses */
  int P = ps.n, first = 0;
  if (s == TN_OK && o->prompts_per_round > 0 && o->prompts_per_round < ps.n) {
    P = o->prompts_per_round;
    first = (int)(((int64_t)(k - 1) * P) % ps.n);
  }
  int stops[TN_MAX_EOS + 1], nstop = 0;
  for (int i = 0; s == TN_OK && i < m->cfg.n_eos; i++) stops[nstop++] = m->cfg.eos_ids[i];
  tn_chat_format f = po.chat;
  if (s == TN_OK && !o->no_chat && (f != TN_CHAT_AUTO || tn_chat_detect(tok, &f) == TN_OK)) {
    const char *eot = tn_chat_end_of_turn(f);
    int id = eot ? tn_tokenizer_token_to_id(tok, eot, strlen(eot)) : -1;
    bool have = false;
    for (int i = 0; i < nstop; i++) have |= stops[i] == id;
    if (id >= 0 && !have) stops[nstop++] = id;
  }
  tn_error_clear();
  const int N = o->samples, B = o->gen_batch;
  tn_gen_opts go;
  tn_gen_opts_default(&go);
  go.max_new_tokens = o->max_new_tokens;
  go.temperature = o->temperature;
  go.top_p = o->top_p;
  go.n = N;
  go.seed = o->seed + 1000003ull * (uint64_t)k;
  go.stop_ids = nstop ? stops : NULL;
  go.n_stop_ids = nstop;
  tn_gen_result *res = calloc((size_t)B * N, sizeof *res);
  const int **pids = calloc((size_t)B, sizeof *pids);
  int *plens = calloc((size_t)B, sizeof *plens);
  if (s == TN_OK && (!res || !pids || !plens)) s = tn_error(TN_ERR_NOMEM, "improve: out of memory");
  linebuf lb = {0};
  for (int b0 = 0; b0 < P && s == TN_OK; b0 += B) {
    int nb = P - b0 < B ? P - b0 : B;
    for (int i = 0; i < nb; i++) {
      const tn_prompt *p = &ps.p[(first + b0 + i) % ps.n];
      pids[i] = p->ids;
      plens[i] = p->n;
    }
    go.first_prompt = first + b0;
    s = tn_generate(m, pids, plens, nb, &go, res);
    for (int i = 0; i < nb && s == TN_OK; i++) {
      int pi = (first + b0 + i) % ps.n;
      for (int j = 0; j < N && s == TN_OK; j++) {
        tn_gen_result *g = &res[(size_t)i * N + j];
        int nk = g->n - (g->finish == TN_FINISH_STOP_ID && g->n > 0);
        char *text = NULL;
        size_t tl;
        s = tn_tokenizer_decode(tok, g->ids, nk, true, &text, &tl);
        if (s != TN_OK) break;
        size_t w = 0;
        for (size_t q = 0; q < tl; q++)
          if (text[q]) text[w++] = text[q];
        text[w] = 0;
        cJSON *line = cJSON_CreateObject();
        cJSON_AddNumberToObject(line, "prompt_index", pi);
        cJSON_AddNumberToObject(line, "sample", j);
        cJSON_AddStringToObject(line, "completion", text);
        cJSON_AddNumberToObject(line, "tokens", nk);
        cJSON_AddBoolToObject(line, "truncated", g->finish == TN_FINISH_LENGTH);
        cJSON_AddItemToObject(line, "example", cJSON_Duplicate(ps.p[pi].json, true));
        s = lb_add_json(&lb, line);
        cJSON_Delete(line);
        free(text);
      }
    }
    if (s == TN_OK) tn_gen_results_free(res, nb * N);
    memset(res, 0, sizeof *res * (size_t)B * N);
    logf_(o, "round %d: generated %d of %d prompts x %d samples", k, b0 + nb, P, N);
  }
  if (s == TN_OK) s = tn_write_atomic_cb(path, lb_write, &lb);
  lb_free(&lb);
  free(res);
  free(pids);
  free(plens);
  tn_prompts_free(&ps);
  tn_infer_loaded_free(&il);
  return s;
}

/* ---- stage 2: judge, filter, dataset + manifest ---- */

enum { DROP_SCORE, DROP_FORMAT, DROP_LENGTH, DROP_DUP, DROP_CAP, DROP_SOLVED, NDROP };
static const char *const DROP_NAMES[NDROP] = {"score", "format", "length", "duplicate", "per_prompt_cap", "solved"};

/* The SFT row: the example's messages (or system? + user prompt) + the kept completion. */
static cJSON *sft_row(const tn_improve_opts *o, const cJSON *ex, const char *completion) {
  cJSON *row = cJSON_CreateObject(), *msgs = cJSON_AddArrayToObject(row, "messages"), *m;
  const cJSON *em = tn_json_field(ex, "messages");
  if (cJSON_IsArray(em)) {
    cJSON_ArrayForEach(m, em) cJSON_AddItemToArray(msgs, cJSON_Duplicate(m, true));
  } else {
    if (o->system_prompt && *o->system_prompt) {
      m = cJSON_CreateObject();
      cJSON_AddStringToObject(m, "role", "system");
      cJSON_AddStringToObject(m, "content", o->system_prompt);
      cJSON_AddItemToArray(msgs, m);
    }
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", tn_eval_prompt_text(ex));
    cJSON_AddItemToArray(msgs, m);
  }
  m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "assistant");
  cJSON_AddStringToObject(m, "content", completion);
  cJSON_AddItemToArray(msgs, m);
  return row;
}

/* Whitespace-collapsed text for de-duplication. */
static char *dedup_key(int pi, const char *s) {
  size_t n = strlen(s);
  char *k = malloc(n + 24);
  if (!k) return NULL;
  int w = snprintf(k, 24, "%d\x1f", pi);
  bool sp = false;
  for (; *s; s++) {
    if (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') { sp = w > 0; continue; }
    if (sp) k[w++] = ' ';
    sp = false;
    k[w++] = *s;
  }
  k[w] = 0;
  return k;
}


static tn_status stage_judge(const tn_improve_opts *o, int k, const char *model_dir, const char *samples_path,
                             const char *dir) {
  tn_jsonl_rows rb = {0};
  tn_status s = tn_jsonl_read(samples_path, tn_jsonl_rows_add, &rb);
  int64_t n = rb.n;
  const char **prompts = calloc(n ? n : 1, sizeof *prompts), **comps = calloc(n ? n : 1, sizeof *comps);
  const cJSON **exs = calloc(n ? n : 1, sizeof *exs);
  double *scores = calloc(n ? n : 1, sizeof *scores);
  int *reason = calloc(n ? n : 1, sizeof *reason);
  char **keys = calloc(n ? n : 1, sizeof *keys);
  if (s == TN_OK && (!prompts || !comps || !exs || !scores || !reason || !keys)) s = tn_error(TN_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; i < n && s == TN_OK; i++) {
    exs[i] = tn_json_field(rb.rows[i], "example");
    prompts[i] = tn_eval_prompt_text(exs[i]);
    const cJSON *c = tn_json_field(rb.rows[i], "completion");
    comps[i] = cJSON_IsString(c) ? c->valuestring : "";
  }
  tn_judge *j = NULL;
  int unparsed = 0;
  if (s == TN_OK) s = tn_judge_open(&j, &o->judge);
  if (s == TN_OK) s = tn_judge_score(j, (int)n, prompts, comps, exs, scores, rb.rows, &unparsed);
  tn_judge_close(j);
  /* filters, in order; the first that fails names the reason */
  tn_extract_config ec;
  tn_reward_extract_config(&o->judge.reward, &ec);
  int64_t drops[NDROP] = {0}, kept = 0;
  int nkeys = 0;
  for (int64_t i = 0; i < n && s == TN_OK; i++) {
    const cJSON *row = rb.rows[i];
    int toks = (int)cJSON_GetNumberValue(tn_json_field(row, "tokens"));
    bool trunc = cJSON_IsTrue(tn_json_field(row, "truncated"));
    int r = -1;
    if (!(scores[i] >= o->threshold)) r = DROP_SCORE; /* NaN (unparsed verdict) fails too */
    else if (o->require_format && !tn_format_ok(comps[i], &ec)) r = DROP_FORMAT;
    else if ((trunc && !o->keep_truncated) || toks < o->min_tokens || (o->max_tokens > 0 && toks > o->max_tokens)) r = DROP_LENGTH;
    else if (o->dedup) {
      int pi = (int)cJSON_GetNumberValue(tn_json_field(row, "prompt_index"));
      char *key = dedup_key(pi, comps[i]);
      if (!key) { s = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
      bool dup = false;
      for (int q = 0; q < nkeys && !dup; q++) dup = !strcmp(keys[q], key); /* per round: a few thousand */
      if (dup) { r = DROP_DUP; free(key); }
      else keys[nkeys++] = key;
    }
    reason[i] = r;
  }
  /* per-prompt cap and solved prompts (all N samples passed: nothing new to learn) */
  for (int64_t i = 0; i < n && s == TN_OK;) {
    int pi = (int)cJSON_GetNumberValue(tn_json_field(rb.rows[i], "prompt_index"));
    int64_t e = i, pass = 0;
    while (e < n && (int)cJSON_GetNumberValue(tn_json_field(rb.rows[e], "prompt_index")) == pi) {
      pass += reason[e] < 0 || reason[e] == DROP_DUP;
      e++;
    }
    int kept_here = 0;
    for (int64_t q = i; q < e; q++) {
      if (reason[q] >= 0) continue;
      if (o->skip_solved && pass == e - i) reason[q] = DROP_SOLVED;
      else if (o->max_per_prompt > 0 && kept_here >= o->max_per_prompt) reason[q] = DROP_CAP;
      else kept_here++;
    }
    i = e;
  }
  linebuf judged = {0}, ds = {0};
  for (int64_t i = 0; i < n && s == TN_OK; i++) {
    cJSON *row = rb.rows[i];
    cJSON_AddBoolToObject(row, "kept", reason[i] < 0);
    if (reason[i] >= 0) {
      cJSON_AddStringToObject(row, "drop_reason", DROP_NAMES[reason[i]]);
      drops[reason[i]]++;
    } else {
      kept++;
      cJSON *sr = sft_row(o, exs[i], comps[i]);
      s = lb_add_json(&ds, sr);
      cJSON_Delete(sr);
    }
    if (s == TN_OK) s = lb_add_json(&judged, row);
  }
  char *jp = pathf("%s/judged.jsonl", dir), *dp = pathf("%s/dataset.jsonl", dir), *mp = pathf("%s/manifest.json", dir);
  if (s == TN_OK && (!jp || !dp || !mp)) s = tn_error(TN_ERR_NOMEM, "out of memory");
  if (s == TN_OK) s = tn_write_atomic_cb(jp, lb_write, &judged);
  if (s == TN_OK) s = tn_write_atomic_cb(dp, lb_write, &ds);
  char hex[65] = "";
  uint64_t bytes = 0;
  if (s == TN_OK) s = tn_sha256_file(dp, hex, &bytes);
  if (s == TN_OK) {
    cJSON *man = cJSON_CreateObject();
    cJSON_AddStringToObject(man, "kind", "tunic improve round dataset");
    cJSON_AddNumberToObject(man, "version", k);
    cJSON_AddNumberToObject(man, "source_round", k - 1);
    cJSON_AddStringToObject(man, "source_model", model_dir);
    cJSON_AddStringToObject(man, "prompts", o->prompts);
    cJSON_AddStringToObject(man, "dataset", "dataset.jsonl");
    cJSON_AddStringToObject(man, "sha256", hex);
    cJSON_AddNumberToObject(man, "bytes", (double)bytes);
    cJSON_AddNumberToObject(man, "samples", (double)n);
    cJSON_AddNumberToObject(man, "kept", (double)kept);
    cJSON *d = cJSON_AddObjectToObject(man, "dropped");
    for (int r = 0; r < NDROP; r++) cJSON_AddNumberToObject(d, DROP_NAMES[r], (double)drops[r]);
    cJSON *jd = cJSON_AddObjectToObject(man, "judge");
    if (o->judge.model) {
      cJSON_AddStringToObject(jd, "model", o->judge.model);
      cJSON_AddNumberToObject(jd, "unparseable", unparsed);
    } else {
      cJSON_AddStringToObject(jd, "spec", o->judge.spec);
    }
    cJSON *f = cJSON_AddObjectToObject(man, "filters");
    cJSON_AddNumberToObject(f, "threshold", o->threshold);
    cJSON_AddBoolToObject(f, "require_format", o->require_format);
    cJSON_AddNumberToObject(f, "min_tokens", o->min_tokens);
    cJSON_AddNumberToObject(f, "max_tokens", o->max_tokens);
    cJSON_AddBoolToObject(f, "keep_truncated", o->keep_truncated);
    cJSON_AddBoolToObject(f, "dedup", o->dedup);
    cJSON_AddNumberToObject(f, "max_per_prompt", o->max_per_prompt);
    cJSON_AddBoolToObject(f, "skip_solved", o->skip_solved);
    s = write_json_file(mp, man);
    cJSON_Delete(man);
  }
  if (s == TN_OK) {
    logf_(o, "round %d: judged %lld samples, kept %lld (dropped: score %lld, format %lld, length %lld, duplicate %lld, "
             "cap %lld, solved %lld), dataset sha256 %.16s...", k, (long long)n, (long long)kept, (long long)drops[0],
          (long long)drops[1], (long long)drops[2], (long long)drops[3], (long long)drops[4], (long long)drops[5], hex);
  }
  free(jp);
  free(dp);
  free(mp);
  lb_free(&judged);
  lb_free(&ds);
  for (int q = 0; q < nkeys; q++) free(keys[q]);
  free(keys);
  free(prompts);
  free(comps);
  free(exs);
  free(scores);
  free(reason);
  tn_jsonl_rows_free(&rb);
  return s;
}

/* ---- stage 3: SFT ---- */

static tn_status concat_datasets(const tn_improve_opts *o, int k, const char *path) {
  linebuf lb = {0};
  tn_status s = TN_OK;
  for (int r = 1; r <= k && s == TN_OK; r++) {
    char *p = pathf("%s/round_%d/dataset.jsonl", o->out, r), *text = NULL;
    size_t len;
    s = p ? tn_read_file(p, &text, &len) : tn_error(TN_ERR_NOMEM, "out of memory");
    for (char *line = text, *nl; s == TN_OK && line && *line; line = nl ? nl + 1 : NULL) {
      nl = strchr(line, '\n');
      if (nl) *nl = 0;
      if (!*line) continue;
      cJSON *j = cJSON_Parse(line);
      if (!j) s = tn_error(TN_ERR_FORMAT, "%s: invalid JSON", p);
      else s = lb_add_json(&lb, j);
      cJSON_Delete(j);
      if (!nl) break;
    }
    free(text);
    free(p);
  }
  if (s == TN_OK) s = tn_write_atomic_cb(path, lb_write, &lb);
  lb_free(&lb);
  return s;
}

/* With stacking: the round's model is --model + RUN/round_K/adapter = [previous stack; this
 * round's adapter] (tn_lora_concat), or this round's adapter alone when nothing came before. */
static tn_status stack_round(const tn_improve_opts *o, const char *dir, const char *sft_dir, const char *prev_stack,
                             char **final) {
  char *ad = pathf("%s/adapter", sft_dir);
  if (!ad) return tn_error(TN_ERR_NOMEM, "out of memory");
  if (!prev_stack) { *final = ad; return TN_OK; }
  char *st = pathf("%s/adapter", dir);
  tn_model *m = NULL;
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  tn_status s = st ? tn_model_load_opts(&m, o->model, &lo) : tn_error(TN_ERR_NOMEM, "out of memory");
  if (s == TN_OK) s = tn_lora_stack_dirs(m, prev_stack, ad, st);
  tn_model_free(m);
  free(ad);
  if (s == TN_OK) *final = st;
  else free(st);
  return s;
}

static tn_status stage_sft(const tn_improve_opts *o, int k, const char *model_dir, const char *dir, int64_t kept) {
  char *mp = pathf("%s/model_path", dir);
  if (!mp) return tn_error(TN_ERR_NOMEM, "out of memory");
  tn_status s = TN_OK;
  if (kept == 0) { /* nothing to learn from: the round keeps its model */
    logf_(o, "round %d: no sample kept, no training", k);
    s = root() ? write_text(mp, model_dir) : TN_OK;
    free(mp);
    return meet(s);
  }
  char *sft_dir = pathf("%s/sft", dir), *data = o->accumulate ? pathf("%s/train.jsonl", dir) : pathf("%s/dataset.jsonl", dir);
  if (!sft_dir || !data) s = tn_error(TN_ERR_NOMEM, "out of memory");
  if (s == TN_OK && o->accumulate && root()) s = concat_datasets(o, k, data);
  if (s == TN_OK && root()) rm_tree(sft_dir); /* an SFT stage that did not finish: again from the start */
  s = meet(s);
  tn_sft_opts so = o->sft;
  so.model = model_dir;
  if (stacking(o)) { /* the new adapter is trained on --model + the stack so far */
    so.model = o->model;
    so.base_adapter = stack_adapter(o, model_dir);
  }
  so.data = data;
  so.out = sft_dir;
  so.seed = o->seed + (uint64_t)k;
  so.resume = false;
  so.eval_data = NULL;
  so.eval_split = 0;
  if (s == TN_OK) {
    logf_(o, "round %d: SFT of %s on %lld samples (%s)", k, model_dir, (long long)kept,
          so.lora_rank <= 0 ? "full" : stacking(o) ? "LoRA, stacked" : "LoRA, merged");
    s = tn_sft_run(&so, &(tn_run_info){.config_json = o->config_json});
    if (s != TN_OK) tn_error_prefix(s, "round %d: SFT", k);
  }
  char *final = NULL;
  if (!root()) { /* rank 0 makes and records the round's model */
  } else if (s == TN_OK && stacking(o)) s = stack_round(o, dir, sft_dir, so.base_adapter, &final);
  else if (s == TN_OK && so.lora_rank > 0) { /* merge the adapter into a full model for the next round */
    final = pathf("%s/model", dir);
    char *ad = pathf("%s/adapter", sft_dir);
    tn_merge_opts mo; /* tunic merge: the adapter merged, an f32 Hugging Face folder */
    tn_merge_opts_default(&mo);
    mo.dtype = "f32";
    s = final && ad ? tn_merge_save(model_dir, ad, final, &mo, NULL) : tn_error(TN_ERR_NOMEM, "out of memory");
    free(ad);
  } else if (s == TN_OK) {
    final = pathf("%s/model", sft_dir);
  }
  if (s == TN_OK && root()) s = write_text(mp, final);
  s = meet(s);
  free(final);
  free(sft_dir);
  free(data);
  free(mp);
  return s;
}

/* ---- stage 4: eval ---- */

static tn_status stage_eval(const tn_improve_opts *o, const char *model_dir, const char *out, double *acc) {
  tn_model *m = NULL;
  tn_tokenizer *tok = NULL;
  tn_infer_loaded il;
  TN_TRY(load_model(o, model_dir, &il));
  m = il.model;
  tok = il.tok;
  tn_eval_opts eo;
  tn_eval_opts_default(&eo);
  eo.data = o->eval_data;
  eo.out = out;
  eo.system_prompt = o->system_prompt ? o->system_prompt : "";
  eo.no_chat = o->no_chat;
  eo.chat_format = o->chat_format;
  eo.max_new_tokens = o->eval_max_new_tokens;
  eo.limit = o->eval_limit;
  eo.batch_size = o->eval_batch;
  eo.model_name = model_dir;
  tn_reward_extract_config(&o->judge.reward, &eo.extract);
  tn_eval_summary sum = {0};
  tn_status s = tn_eval_run(m, tok, &eo, &sum);
  if (s == TN_OK) *acc = sum.accuracy;
  tn_eval_summary_free(&sum);
  tn_infer_loaded_free(&il);
  return s;
}

static tn_status results_acc(const char *path, double *acc) {
  tn_results r;
  TN_TRY(tn_results_load(path, &r));
  int64_t c = 0;
  for (int64_t i = 0; i < r.n; i++) c += r.recs[i].correct;
  *acc = r.n ? (double)c / r.n : 0;
  tn_results_free(&r);
  return TN_OK;
}

/* ---- reports ---- */

static tn_status write_report(const tn_improve_opts *o, int nr, const char *path, const char *title, const int *rounds,
                              cJSON **json) {
  tn_results *rs = calloc((size_t)nr, sizeof *rs);
  char **labels = calloc((size_t)nr, sizeof *labels);
  if (!rs || !labels) { free(rs); free(labels); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  tn_status s = TN_OK;
  int loaded = 0;
  for (int i = 0; i < nr && s == TN_OK; i++) {
    char *p = pathf("%s/round_%d/eval.jsonl", o->out, rounds[i]);
    labels[i] = rounds[i] ? pathf("round %d", rounds[i]) : tn_strdup("start");
    s = p && labels[i] ? tn_results_load(p, &rs[i]) : tn_error(TN_ERR_NOMEM, "out of memory");
    if (s == TN_OK) loaded++;
    free(p);
  }
  char *tmp = pathf("%s.tmp.%d", path, (int)getpid());
  FILE *f = s == TN_OK && tmp ? fopen(tmp, "w") : NULL;
  if (s == TN_OK && !f) s = tn_error(TN_ERR_IO, "%s: cannot write", path);
  if (s == TN_OK) {
    fprintf(f, "# %s\n\n", title);
    s = tn_report_multi(rs, (const char *const *)labels, nr, 10, f, json);
    if (fclose(f) && s == TN_OK) s = tn_error(TN_ERR_IO, "%s: write failed", path);
    if (s == TN_OK) {
      char *text = NULL;
      size_t len;
      s = tn_read_file(tmp, &text, &len);
      if (s == TN_OK) s = tn_write_file_atomic(path, text, len);
      free(text);
    }
    remove(tmp);
  }
  free(tmp);
  for (int i = 0; i < loaded; i++) tn_results_free(&rs[i]);
  for (int i = 0; i < nr; i++) free(labels[i]);
  free(rs);
  free(labels);
  return s;
}

/* ---- the loop ---- */

static tn_status check_config(const tn_improve_opts *o) {
  char *p = pathf("%s/improve_config.json", o->out);
  if (!p) return tn_error(TN_ERR_NOMEM, "out of memory");
  tn_status s = TN_OK;
  const char *cfg = o->config_json ? o->config_json : "{}";
  if (tn_file_exists(p)) {
    char *text = NULL;
    size_t len;
    s = tn_read_file(p, &text, &len);
    if (s == TN_OK) {
      cJSON *a = cJSON_Parse(text), *b = cJSON_Parse(cfg);
      if (!a || !b || !cJSON_Compare(a, b, true))
        s = tn_error(TN_ERR_ARG, "%s: the run was started with another configuration (%s); continue it with the same "
                                 "options, or use a new --out", o->out, p);
      cJSON_Delete(a);
      cJSON_Delete(b);
    }
    free(text);
  } else {
    s = write_text(p, cfg);
  }
  free(p);
  return s;
}

tn_status tn_improve_run(const tn_improve_opts *o, tn_improve_result *res) {
  memset(res, 0, sizeof *res);
  if (!o->model || !o->prompts || !o->eval_data || !o->out)
    return tn_error(TN_ERR_ARG, "improve: --model, --prompts, --eval-data and --out are required");
  if (o->rounds < 1 || o->samples < 1 || o->gen_batch < 1 || o->max_new_tokens < 1)
    return tn_error(TN_ERR_ARG, "improve: rounds, samples, gen-batch and max-new-tokens must be >= 1");
  if (o->adapters && strcmp(o->adapters, "merge") && strcmp(o->adapters, "stack"))
    return tn_error(TN_ERR_ARG, "improve: --adapters '%s': 'merge' (each round's adapter merged into a full model) or "
                                "'stack' (--model stays the base; the rounds' adapters are concatenated into one)", o->adapters);
  if (o->sft.base_adapter && *o->sft.base_adapter)
    return tn_error(TN_ERR_ARG, "improve: the SFT's base_adapter is set by the loop (use --adapters stack)");
  tn_status s = root() ? tn_mkdirs(o->out) : TN_OK;
  if (s == TN_OK && root()) s = check_config(o);
  TN_TRY(meet(s));
  char *r0 = pathf("%s/round_0", o->out), *e0 = pathf("%s/round_0/eval.jsonl", o->out);
  if (!r0 || !e0) s = tn_error(TN_ERR_NOMEM, "out of memory");
  if (s == TN_OK && root()) s = tn_mkdirs(r0);
  double acc0 = 0;
  if (s == TN_OK && !tn_file_exists(e0)) {
    logf_(o, "round 0: eval of the start model %s", o->model);
    if (root()) s = stage_eval(o, o->model, e0, &acc0);
  }
  s = meet(s);
  if (s == TN_OK) s = results_acc(e0, &acc0);
  free(r0);
  free(e0);
  if (s != TN_OK) return s;
  logf_(o, "round 0: held-out accuracy %.2f%%", 100 * acc0);
  res->acc_start = res->acc_best = acc0;
  res->best_round = 0;
  snprintf(res->best_model, sizeof res->best_model, "%s", o->model);
  int done = 0;
  for (int k = 1; k <= o->rounds && s == TN_OK; k++) {
    char *dir = pathf("%s/round_%d", o->out, k), *sp = pathf("%s/samples.jsonl", dir), *mp = pathf("%s/manifest.json", dir),
         *ep = pathf("%s/eval.jsonl", dir), *rp = pathf("%s/report.md", dir);
    char *prev = round_model(o, k - 1), *cur = NULL;
    if (!dir || !sp || !mp || !ep || !rp) s = tn_error(TN_ERR_NOMEM, "out of memory");
    else if (!prev) s = tn_error(TN_ERR_IO, "round %d: the model of round %d is not recorded", k, k - 1);
    if (s == TN_OK && root()) s = tn_mkdirs(dir);
    if (s == TN_OK && !tn_file_exists(sp)) {
      logf_(o, "round %d: generating with %s", k, prev);
      if (root()) s = stage_generate(o, k, prev, sp);
    }
    s = meet(s);
    if (s == TN_OK && !tn_file_exists(mp) && root()) s = stage_judge(o, k, prev, sp, dir);
    s = meet(s);
    if (s == TN_OK && !(cur = round_model(o, k))) {
      char *text = NULL;
      size_t len;
      s = tn_read_file(mp, &text, &len);
      cJSON *man = s == TN_OK ? cJSON_Parse(text) : NULL;
      int64_t kept = (int64_t)cJSON_GetNumberValue(tn_json_field(man, "kept"));
      if (s == TN_OK && !man) s = tn_error(TN_ERR_FORMAT, "%s: invalid JSON", mp);
      cJSON_Delete(man);
      free(text);
      if (s == TN_OK) s = stage_sft(o, k, prev, dir, kept);
      if (s == TN_OK) cur = round_model(o, k);
      if (s == TN_OK && !cur) s = tn_error(TN_ERR_IO, "round %d: no model recorded after SFT", k);
    }
    double acc = 0;
    if (s == TN_OK && !tn_file_exists(ep)) {
      logf_(o, "round %d: eval of %s", k, cur);
      if (root()) s = stage_eval(o, cur, ep, &acc);
    }
    s = meet(s);
    if (s == TN_OK) s = results_acc(ep, &acc);
    if (s == TN_OK) { /* the round's report: start, previous round, this round */
      int rounds[3] = {0, k - 1, k}, nr = k == 1 ? 2 : 3;
      if (k == 1) rounds[1] = 1;
      char title[96];
      snprintf(title, sizeof title, "tunic improve: round %d", k);
      if (root()) s = write_report(o, nr, rp, title, rounds, NULL);
    }
    s = meet(s);
    if (s == TN_OK) {
      done = k;
      bool gain = acc > res->acc_best + o->min_gain;
      logf_(o, "round %d: held-out accuracy %.2f%% (start %.2f%%, best so far %.2f%%)", k, 100 * acc, 100 * acc0,
            100 * res->acc_best);
      if (gain) {
        res->acc_best = acc;
        res->best_round = k;
        snprintf(res->best_model, sizeof res->best_model, "%s", cur);
      } else if (o->early_stop) {
        logf_(o, "round %d gained nothing over round %d: stopping early", k, res->best_round);
        res->stopped_early = k < o->rounds;
        free(dir); free(sp); free(mp); free(ep); free(rp); free(prev); free(cur);
        break;
      }
    }
    free(dir); free(sp); free(mp); free(ep); free(rp); free(prev); free(cur);
  }
  res->rounds_done = done;
  if (s == TN_OK && root()) { /* the whole loop's report */
    int *rounds = calloc((size_t)done + 1, sizeof *rounds);
    char *rp = pathf("%s/report.md", o->out), *jp = pathf("%s/report.json", o->out);
    cJSON *rows = NULL;
    if (!rounds || !rp || !jp) s = tn_error(TN_ERR_NOMEM, "out of memory");
    for (int i = 0; s == TN_OK && i <= done; i++) rounds[i] = i;
    if (s == TN_OK) s = write_report(o, done + 1, rp, "tunic improve: the whole loop", rounds, &rows);
    if (s == TN_OK) {
      tn_results a, b;
      char *pa = pathf("%s/round_0/eval.jsonl", o->out), *pb = pathf("%s/round_%d/eval.jsonl", o->out, res->best_round);
      s = tn_results_load(pa, &a);
      if (s == TN_OK) {
        s = tn_results_load(pb, &b);
        if (s == TN_OK) {
          tn_report r;
          s = tn_report_compare(&a, &b, &r);
          if (s == TN_OK) { res->mcnemar_p = r.mcnemar_p; tn_report_free(&r); }
          tn_results_free(&b);
        }
        tn_results_free(&a);
      }
      free(pa);
      free(pb);
    }
    if (s == TN_OK) {
      cJSON *j = cJSON_CreateObject();
      cJSON_AddItemToObject(j, "rounds", rows);
      rows = NULL;
      cJSON_AddNumberToObject(j, "rounds_done", done);
      cJSON_AddNumberToObject(j, "best_round", res->best_round);
      if (stack_adapter(o, res->best_model)) { /* the best model is --model + this adapter */
        cJSON_AddStringToObject(j, "best_model", o->model);
        cJSON_AddStringToObject(j, "best_adapter", res->best_model);
      } else {
        cJSON_AddStringToObject(j, "best_model", res->best_model);
      }
      cJSON_AddNumberToObject(j, "accuracy_start", res->acc_start);
      cJSON_AddNumberToObject(j, "accuracy_best", res->acc_best);
      cJSON_AddNumberToObject(j, "mcnemar_p_best_vs_start", res->mcnemar_p);
      cJSON_AddBoolToObject(j, "stopped_early", res->stopped_early);
      s = write_json_file(jp, j);
      cJSON_Delete(j);
    }
    cJSON_Delete(rows);
    free(rounds);
    free(rp);
    free(jp);
  }
  return s;
}
