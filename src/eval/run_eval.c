/* run_eval.c - the generation loop of `tunic eval` (see run_eval.h): prompts -> batched
 * tn_generate -> decode -> tn_score_example -> tn_eval_agg, then the results JSONL and the
 * summary JSON written atomically. Not for: scoring rules (extract.c), reports (report.c). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"
#include "data/prompts.h"
#include "eval/run_eval.h"
#include "generate/generate.h"
#include "obs/obs.h"
#include "tunic/obs.h"

void tn_eval_opts_default(tn_eval_opts *o) {
  memset(o, 0, sizeof *o);
  o->batch_size = 8;
  o->max_new_tokens = 256;
  o->n = 1;
  o->temperature = 0;
  o->top_p = 1;
  tn_extract_config_default(&o->extract);
}

void tn_eval_summary_free(tn_eval_summary *s) {
  cJSON_Delete(s->json);
  s->json = NULL;
}

char *tn_eval_summary_path(const char *results_path) {
  size_t n = strlen(results_path);
  const char *ext = ".jsonl";
  size_t k = strlen(ext);
  if (n > k && !strcmp(results_path + n - k, ext)) n -= k;
  char *p = malloc(n + 16);
  if (!p) return NULL;
  memcpy(p, results_path, n);
  strcpy(p + n, ".summary.json");
  return p;
}

/* The end-of-turn token of the chat format the prompts were rendered with, -1 if none. */
static int end_of_turn_id(const tn_tokenizer *tok, const tn_eval_opts *o) {
  if (o->no_chat) return -1;
  tn_chat_format f = TN_CHAT_AUTO;
  if (o->chat_format && *o->chat_format && strcmp(o->chat_format, "auto")) {
    if (tn_chat_format_parse(o->chat_format, &f) != TN_OK) { tn_error_clear(); return -1; }
  } else if (tn_chat_detect(tok, &f) != TN_OK) {
    tn_error_clear();
    return -1;
  }
  const char *eot = tn_chat_end_of_turn(f);
  return eot ? tn_tokenizer_token_to_id(tok, eot, strlen(eot)) : -1;
}

const char *tn_eval_prompt_text(const cJSON *ex) {
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(ex, "prompt");
  if (cJSON_IsString(p)) return p->valuestring;
  const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(ex, "messages"), *it;
  const char *last = "";
  cJSON_ArrayForEach(it, msgs) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(it, "role"), *c = cJSON_GetObjectItemCaseSensitive(it, "content");
    if (cJSON_IsString(r) && cJSON_IsString(c) && !strcmp(r->valuestring, "user")) last = c->valuestring;
  }
  return last;
}

/* id as a string ("3" for the number 3); index when absent. */
static void id_string(const cJSON *ex, int index, char *buf, size_t n) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(ex, "id");
  if (cJSON_IsString(id)) snprintf(buf, n, "%s", id->valuestring);
  else if (cJSON_IsNumber(id) && id->valuedouble == floor(id->valuedouble) && fabs(id->valuedouble) < 1e15)
    snprintf(buf, n, "%.0f", id->valuedouble);
  else if (cJSON_IsNumber(id)) snprintf(buf, n, "%.17g", id->valuedouble);
  else snprintf(buf, n, "%d", index);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A reference that is there but neither a string nor a number (null or absent: reference-free). */
static bool bad_reference(const cJSON *ex) {
  static const char *keys[] = {"answer", "expected_answer"};
  for (int k = 0; k < 2; k++) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ex, keys[k]);
    if (a && !cJSON_IsString(a) && !cJSON_IsNumber(a) && !cJSON_IsNull(a)) return true;
  }
  return false;
}

/* Check every example up front: a reference answer of the right type where there is one (rows
 * without one are reference-free: text metrics only), a usable id, no duplicate ids. */
static tn_status check_examples(const tn_prompt_set *ps, int n, const char *path) {
  char **ids = calloc(n ? n : 1, sizeof *ids);
  if (!ids) return tn_error(TN_ERR_NOMEM, "eval: out of memory");
  tn_status s = TN_OK;
  char buf[512];
  for (int i = 0; i < n && s == TN_OK; i++) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ps->p[i].json, "id");
    if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id))
      s = tn_error(TN_ERR_FORMAT, "%s: example %d: \"id\" must be a string or a number", path, i + 1);
    else if (bad_reference(ps->p[i].json))
      s = tn_error(TN_ERR_FORMAT, "%s: example %d: the reference (\"answer\" or \"expected_answer\") must be a string or a number",
                   path, i + 1);
    const cJSON *cat = cJSON_GetObjectItemCaseSensitive(ps->p[i].json, "category");
    if (s == TN_OK && cat && !cJSON_IsString(cat) && !cJSON_IsNull(cat))
      s = tn_error(TN_ERR_FORMAT, "%s: example %d: \"category\" must be a string", path, i + 1);
    id_string(ps->p[i].json, i, buf, sizeof buf);
    ids[i] = tn_strdup(buf);
    if (!ids[i] && s == TN_OK) s = tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  }
  if (s == TN_OK) {
    qsort(ids, n, sizeof *ids, cmp_str);
    for (int i = 1; i < n && s == TN_OK; i++)
      if (!strcmp(ids[i - 1], ids[i])) s = tn_error(TN_ERR_FORMAT, "%s: duplicate id '%s'", path, ids[i]);
  }
  for (int i = 0; i < n; i++) free(ids[i]);
  free(ids);
  return s;
}

typedef struct { char **lines; int64_t n; } lines_ctx;

static tn_status write_lines(FILE *f, void *ctx) {
  lines_ctx *c = ctx;
  for (int64_t i = 0; i < c->n; i++)
    if (fputs(c->lines[i], f) == EOF || fputc('\n', f) == EOF) return tn_error(TN_ERR_IO, "write failed");
  return TN_OK;
}

static tn_status write_json(FILE *f, void *ctx) {
  char *s = tn_json_print_valid(ctx, true); /* category names from the data may hold invalid UTF-8 */
  if (!s) return tn_error(TN_ERR_NOMEM, "out of memory");
  int r = fputs(s, f);
  free(s);
  if (r == EOF || fputc('\n', f) == EOF) return tn_error(TN_ERR_IO, "write failed");
  return TN_OK;
}

static const char *finish_name(tn_finish f) { return f == TN_FINISH_LENGTH ? "length" : "stop"; }

static void add_sample_fields(cJSON *obj, const char *completion, const tn_gen_result *g, const tn_score *sc) {
  cJSON_AddStringToObject(obj, "completion", completion);
  cJSON_AddNumberToObject(obj, "tokens", g->n);
  cJSON_AddStringToObject(obj, "finish_reason", finish_name(g->finish));
  if (sc) tn_score_to_json(sc, obj); /* NULL: reference-free */
}

/* k values reported for N samples: 1, powers of two below N, and N. */
static int pass_ks(int n, int *ks) {
  int m = 0;
  for (int k = 1; k < n; k *= 2) ks[m++] = k;
  ks[m++] = n;
  return m;
}

/* n_samples, num_correct and the unbiased pass@k of an example with npass of ns samples correct */
static void add_pass_at_k(cJSON *line, int ns, int npass) {
  cJSON_AddNumberToObject(line, "n_samples", ns);
  cJSON_AddNumberToObject(line, "num_correct", npass);
  int ks[40], nks = pass_ks(ns, ks);
  cJSON *pk = cJSON_AddObjectToObject(line, "pass_at_k");
  for (int q = 0; q < nks; q++) {
    char key[16];
    snprintf(key, sizeof key, "%d", ks[q]);
    cJSON_AddNumberToObject(pk, key, tn_pass_at_k(ns, npass, ks[q]));
  }
}

/* An example's results line: sample 0's score at top level; with n > 1 samples also pass@k and
 * every sample under "samples". ref NULL (reference-free): no score, no pass@k; the text
 * figures of sample 0 (ts). */
static cJSON *result_line(const tn_prompt *p, int index, const char *category, bool assigned, const char *ref, int ns,
                          int npass, char **texts, const tn_gen_result *res, const tn_score *scores,
                          const tn_text_stats *ts) {
  char idb[512];
  cJSON *line = cJSON_CreateObject();
  const cJSON *jid = cJSON_GetObjectItemCaseSensitive(p->json, "id");
  id_string(p->json, index, idb, sizeof idb);
  if (cJSON_IsNumber(jid)) cJSON_AddItemToObject(line, "id", cJSON_Duplicate(jid, 0));
  else cJSON_AddStringToObject(line, "id", idb);
  if (category) cJSON_AddStringToObject(line, "category", category);
  else cJSON_AddNullToObject(line, "category");
  if (assigned) cJSON_AddBoolToObject(line, "category_assigned", true);
  cJSON_AddStringToObject(line, "prompt", tn_eval_prompt_text(p->json));
  cJSON_AddNumberToObject(line, "prompt_tokens", p->n);
  if (ref) cJSON_AddStringToObject(line, "expected_answer", ref);
  else cJSON_AddNullToObject(line, "expected_answer");
  add_sample_fields(line, texts[0], &res[0], ref ? &scores[0] : NULL);
  cJSON_AddNumberToObject(line, "words", ts->words);
  cJSON_AddNumberToObject(line, "type_token_ratio", ts->ttr);
  cJSON_AddBoolToObject(line, "refusal", ts->refusal);
  if (ns > 1) {
    if (ref) add_pass_at_k(line, ns, npass);
    cJSON *arr = cJSON_AddArrayToObject(line, "samples");
    for (int j = 0; j < ns; j++) {
      cJSON *sj = cJSON_CreateObject();
      add_sample_fields(sj, texts[j], &res[j], ref ? &scores[j] : NULL);
      cJSON_AddItemToArray(arr, sj);
    }
  }
  return line;
}

/* The summary of a finished eval: its JSON (accuracy by category, pass@k, generation figures,
 * the config), the results and summary files written, the table printed; out filled. */
static tn_status finish_summary(const tn_eval_opts *o, const tn_eval_agg *agg, const tn_text_agg *text, int64_t n_ref_free,
                                lines_ctx *lc, const char *system_prompt, const int *stops, int nstop, int64_t gen_tokens,
                                int64_t truncated, double gen_sec, tn_eval_summary *out) {
  const int ns = o->n;
  tn_status s = TN_OK;
  int ks[40], nks = ns > 1 ? pass_ks(ns, ks) : 0;
  cJSON *sum = tn_eval_agg_to_json(agg, ks, nks);
  cJSON_AddNumberToObject(sum, "examples", (double)agg->nex);
  cJSON_AddNumberToObject(sum, "samples_per_example", ns);
  cJSON_AddNumberToObject(sum, "reference_free", (double)n_ref_free);
  cJSON_AddItemToObject(sum, "text", tn_text_agg_to_json(text, true));
  cJSON_AddNumberToObject(sum, "generated_tokens", (double)gen_tokens);
  cJSON_AddNumberToObject(sum, "truncated", (double)truncated);
  cJSON_AddNumberToObject(sum, "generation_seconds", gen_sec);
  cJSON_AddNumberToObject(sum, "tokens_per_s", gen_sec > 0 ? gen_tokens / gen_sec : 0.0);
  cJSON *cfg = cJSON_AddObjectToObject(sum, "config");
  if (o->model_name) cJSON_AddStringToObject(cfg, "model", o->model_name);
  if (o->adapter_name) cJSON_AddStringToObject(cfg, "adapter", o->adapter_name);
  cJSON_AddStringToObject(cfg, "data", o->data);
  if (o->out) cJSON_AddStringToObject(cfg, "results", o->out);
  cJSON_AddNumberToObject(cfg, "limit", o->limit);
  cJSON_AddNumberToObject(cfg, "n", ns);
  cJSON_AddNumberToObject(cfg, "temperature", o->temperature);
  cJSON_AddNumberToObject(cfg, "top_p", o->top_p);
  cJSON_AddNumberToObject(cfg, "top_k", o->top_k);
  cJSON_AddNumberToObject(cfg, "seed", (double)o->seed);
  cJSON_AddNumberToObject(cfg, "max_new_tokens", o->max_new_tokens);
  cJSON_AddStringToObject(cfg, "system_prompt", system_prompt);
  cJSON *st = cJSON_AddArrayToObject(cfg, "stop_ids");
  for (int i = 0; i < nstop; i++) cJSON_AddItemToArray(st, cJSON_CreateNumber(stops[i]));
  out->json = sum;
  out->n_examples = agg->nex;
  out->n_samples = ns;
  const tn_eval_bucket *a = &agg->all;
  double dn = a->n ? (double)a->n : 1.0;
  out->accuracy = a->correct / dn;
  out->partial_accuracy = a->partial / dn;
  out->format_rate = a->format_ok / dn;
  out->mean_credit = a->credit / dn;
  memcpy(out->errors, a->errors, sizeof out->errors);
  out->gen_tokens = gen_tokens;
  out->truncated = truncated;
  out->gen_seconds = gen_sec;
  out->tokens_per_s = gen_sec > 0 ? gen_tokens / gen_sec : 0.0;
  if (o->out) {
    s = tn_write_atomic_cb(o->out, write_lines, lc);
    if (s == TN_OK) {
      char *sp = o->summary_out ? tn_strdup(o->summary_out) : tn_eval_summary_path(o->out);
      s = tn_write_atomic_cb(sp, write_json, sum);
      free(sp);
    }
  } else if (o->summary_out) {
    s = tn_write_atomic_cb(o->summary_out, write_json, sum);
  }
  if (s == TN_OK && o->print) {
    FILE *f = o->print;
    fprintf(f, "eval: %lld examples x %d sample%s, %s\n", (long long)agg->nex, ns, ns > 1 ? "s" : "",
            o->temperature > 0 ? "sampled" : "greedy");
    if (agg->nex) tn_eval_agg_print(agg, f);
    if (n_ref_free) {
      fprintf(f, "%lld examples without a reference: text metrics only\n", (long long)n_ref_free);
      tn_text_agg_print(text, true, f);
    }
    for (int q = 0; q < nks; q++) fprintf(f, "pass@%d: %.2f%%\n", ks[q], 100 * tn_eval_agg_pass_at_k(agg, ks[q]));
    fprintf(f, "generated %lld tokens in %.2f s (%.1f tokens/s), %lld of %lld samples hit max-new-tokens\n",
            (long long)gen_tokens, gen_sec, out->tokens_per_s, (long long)truncated, (long long)agg->all.n);
    if (o->out) {
      char *sp = o->summary_out ? tn_strdup(o->summary_out) : tn_eval_summary_path(o->out);
      fprintf(f, "results: %s\nsummary: %s\n", o->out, sp);
      free(sp);
    }
  }
  return s;
}

tn_status tn_eval_run(const tn_model *m, const tn_tokenizer *tok, const tn_eval_opts *o, tn_eval_summary *out) {
  memset(out, 0, sizeof *out);
  if (!o->data) return tn_error(TN_ERR_ARG, "eval: no data file");
  if (o->n <= 0 || o->max_new_tokens <= 0 || o->batch_size <= 0 || o->limit < 0 || o->temperature < 0 ||
      !(o->top_p > 0 && o->top_p <= 1) || o->top_k < 0)
    return tn_error(TN_ERR_ARG, "eval: invalid option (need n, max-new-tokens, batch-size > 0, limit >= 0, "
                                "temperature >= 0, 0 < top-p <= 1, top-k >= 0)");
  if ((int64_t)o->batch_size * o->n > (1 << 24))
    return tn_error(TN_ERR_ARG, "eval: batch-size x n = %lld sequences at once is more than 2^24", (long long)o->batch_size * o->n);
  if (o->n > 1 && o->temperature == 0)
    tn_warn("eval: %d samples per prompt with greedy decoding are identical (set --temperature)", o->n);

  tn_prompt_opts po = {.system_prompt = o->system_prompt ? o->system_prompt : TN_DEFAULT_SYSTEM_PROMPT,
                       .field = "prompt", .no_chat = o->no_chat, .chat = TN_CHAT_AUTO,
                       .max_prompt_len = o->max_prompt_len, .field_map = o->field_map};
  if (o->chat_format && *o->chat_format && strcmp(o->chat_format, "auto"))
    TN_TRY(tn_chat_format_parse(o->chat_format, &po.chat));
  tn_prompt_set ps;
  TN_TRY(tn_prompts_load(&ps, o->data, tok, &po));
  int N = ps.n;
  if (o->limit > 0 && o->limit < N) N = o->limit;
  tn_status s = check_examples(&ps, N, o->data);
  if (s != TN_OK) { tn_prompts_free(&ps); return s; }

  /* stop ids: the model's eos ids (config / generation_config) + the chat end-of-turn token */
  int stops[TN_MAX_EOS + 1], nstop = 0;
  for (int i = 0; i < m->cfg.n_eos; i++) stops[nstop++] = m->cfg.eos_ids[i];
  int eot = end_of_turn_id(tok, o);
  bool have = false;
  for (int i = 0; i < nstop; i++) have |= stops[i] == eot;
  if (eot >= 0 && !have) stops[nstop++] = eot;

  const int ns = o->n, B = o->batch_size;
  tn_gen_opts go;
  tn_gen_opts_default(&go);
  go.max_new_tokens = o->max_new_tokens;
  go.temperature = o->temperature;
  go.top_p = o->top_p;
  go.top_k = o->top_k;
  go.n = ns;
  go.seed = o->seed;
  go.stop_ids = nstop ? stops : NULL;
  go.n_stop_ids = nstop;

  tn_eval_agg agg;
  tn_eval_agg_init(&agg);
  tn_text_agg text;
  tn_text_agg_init(&text);
  int64_t n_ref_free = 0;
  lines_ctx lc = {calloc(N ? N : 1, sizeof(char *)), 0};
  tn_gen_result *res = calloc((size_t)B * ns, sizeof *res);
  tn_score *scores = calloc(ns, sizeof *scores);
  char **texts = calloc(ns, sizeof *texts);
  const int **pids = calloc(B, sizeof *pids);
  int *plens = calloc(B, sizeof *plens);
  int *npass = calloc(N ? N : 1, sizeof *npass);
  if (!lc.lines || !res || !scores || !texts || !pids || !plens || !npass) s = tn_error(TN_ERR_NOMEM, "eval: out of memory");
  tn_progress *prog = o->progress ? tn_progress_new(stderr, N, "eval", TN_PROGRESS_AUTO) : NULL;
  int64_t gen_tokens = 0, truncated = 0;
  double gen_sec = 0;
  char ref[1024];
  for (int b0 = 0; b0 < N && s == TN_OK; b0 += B) {
    int nb = N - b0 < B ? N - b0 : B;
    for (int i = 0; i < nb; i++) { pids[i] = ps.p[b0 + i].ids; plens[i] = ps.p[b0 + i].n; }
    go.first_prompt = b0; /* RNG streams named by the example's index: batch size does not matter */
    double t0 = tn_now();
    s = o->generate ? o->generate(o->generate_ctx, &ps.p[b0], nb, b0, &go, res) : tn_generate(m, pids, plens, nb, &go, res);
    gen_sec += tn_now() - t0;
    if (s != TN_OK) {
      tn_error_prefix(s, "%s: examples %d-%d", o->data, b0 + 1, b0 + nb);
      break;
    }
    for (int i = 0; i < nb && s == TN_OK; i++) {
      const tn_prompt *p = &ps.p[b0 + i];
      const bool has_ref = tn_prompt_reference(p, ref, sizeof ref);
      const cJSON *cat = cJSON_GetObjectItemCaseSensitive(p->json, "category");
      const char *category = cJSON_IsString(cat) ? cat->valuestring : NULL;
      bool assigned = !category && (o->categorizer || o->classify);
      if (!category && o->categorizer) category = tn_categorize(o->categorizer, tn_eval_prompt_text(p->json));
      else if (!category && o->classify) category = o->classify(o->classify_ctx, tn_eval_prompt_text(p->json));
      tn_text_stats ts = {0};
      for (int j = 0; j < ns && s == TN_OK; j++) {
        tn_gen_result *g = &res[(size_t)i * ns + j];
        gen_tokens += g->n;
        truncated += g->finish == TN_FINISH_LENGTH;
        int nk = g->n - (g->finish == TN_FINISH_STOP_ID && g->n > 0); /* drop the stop token */
        size_t tl;
        s = tn_tokenizer_decode(tok, g->ids, nk, true, &texts[j], &tl);
        if (s != TN_OK) { tn_error_prefix(s, "%s: example %d: decoding", o->data, b0 + i + 1); break; }
        size_t w = 0; /* NUL bytes (a model can emit byte 0) would cut the C string: dropped */
        for (size_t q = 0; q < tl; q++)
          if (texts[j][q]) texts[j][w++] = texts[j][q];
        texts[j][w] = 0;
        if (has_ref) tn_score_example(texts[j], ref, &o->extract, &scores[j]);
        npass[b0 + i] += has_ref && scores[j].correct;
        s = tn_text_agg_add(&text, category, texts[j], nk, j == 0 ? &ts : NULL);
      }
      if (s != TN_OK) break;
      if (has_ref) s = tn_eval_agg_add(&agg, category, scores, ns);
      else n_ref_free++;
      if (s != TN_OK) break;
      cJSON *line = result_line(p, b0 + i, category, assigned, has_ref ? ref : NULL, ns, npass[b0 + i], texts,
                                &res[(size_t)i * ns], scores, &ts);
      lc.lines[lc.n++] = tn_json_print_valid(line, false); /* prompts from the data: valid UTF-8 out */
      cJSON_Delete(line);
      for (int j = 0; j < ns; j++) { free(texts[j]); texts[j] = NULL; }
    }
    for (int j = 0; j < ns; j++) { free(texts[j]); texts[j] = NULL; }
    tn_gen_results_free(res, nb * ns);
    memset(res, 0, sizeof *res * (size_t)nb * ns);
    if (prog) tn_progress_update(prog, b0 + nb, NAN, NAN, gen_sec > 0 ? gen_tokens / gen_sec : NAN, NULL);
  }
  if (prog) tn_progress_finish(prog);

  if (s == TN_OK) {
    s = finish_summary(o, &agg, &text, n_ref_free, &lc, po.system_prompt, stops, nstop, gen_tokens, truncated, gen_sec, out);
    if (s != TN_OK) tn_eval_summary_free(out);
  }
  for (int64_t i = 0; i < lc.n; i++) free(lc.lines[i]);
  free(lc.lines);
  free(res);
  free(scores);
  free(texts);
  free(pids);
  free(plens);
  free(npass);
  tn_eval_agg_free(&agg);
  tn_text_agg_free(&text);
  tn_prompts_free(&ps);
  return s;
}

/* ---------------- scoring completions made elsewhere (tunic eval --completions) ---------------- */

typedef struct {
  const tn_eval_opts *o;
  tn_eval_agg agg;
  tn_text_agg text;
  int64_t n_ref_free;
  lines_ctx lc;
  int64_t cap, nrows;
  int ns;          /* samples per example (all rows must agree for pass@k) */
  char **ids;
} comp_ctx;

static tn_status comp_row(void *vctx, cJSON *ex, const char *where) {
  comp_ctx *c = vctx;
  tn_status s = TN_OK;
  const cJSON *comp = cJSON_GetObjectItemCaseSensitive(ex, "completion");
  const cJSON *ref = cJSON_GetObjectItemCaseSensitive(ex, "answer");
  if (!ref) ref = cJSON_GetObjectItemCaseSensitive(ex, "expected_answer");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(ex, "id");
  const cJSON *cat = cJSON_GetObjectItemCaseSensitive(ex, "category");
  int ns = cJSON_IsString(comp) ? 1 : cJSON_IsArray(comp) ? cJSON_GetArraySize(comp) : 0;
  char refb[1024], idb[512];
  bool has_ref = true;
  if (!ns) s = tn_error(TN_ERR_FORMAT, "%s: \"completion\" must be a string or a non-empty list of strings", where);
  else if (cJSON_IsString(ref)) snprintf(refb, sizeof refb, "%s", ref->valuestring);
  else if (cJSON_IsNumber(ref)) snprintf(refb, sizeof refb, "%.17g", ref->valuedouble);
  else if (!ref || cJSON_IsNull(ref)) { has_ref = false; refb[0] = 0; } /* reference-free: text metrics only */
  else s = tn_error(TN_ERR_FORMAT, "%s: the reference (\"answer\" or \"expected_answer\") must be a string or a number", where);
  if (s == TN_OK && id && !cJSON_IsString(id) && !cJSON_IsNumber(id))
    s = tn_error(TN_ERR_FORMAT, "%s: \"id\" must be a string or a number", where);
  if (s == TN_OK && cat && !cJSON_IsString(cat) && !cJSON_IsNull(cat))
    s = tn_error(TN_ERR_FORMAT, "%s: \"category\" must be a string", where);
  if (s == TN_OK && c->ns && ns != c->ns)
    s = tn_error(TN_ERR_FORMAT, "%s: %d completions, earlier rows have %d (pass@k needs the same number)", where, ns, c->ns);
  tn_score *sc = s == TN_OK ? calloc(ns, sizeof *sc) : NULL;
  if (s == TN_OK && !sc) s = tn_error(TN_ERR_NOMEM, "%s: out of memory", where);
  for (int j = 0; j < ns && s == TN_OK; j++) {
    const cJSON *cj = cJSON_IsString(comp) ? comp : cJSON_GetArrayItem(comp, j);
    if (!cJSON_IsString(cj)) s = tn_error(TN_ERR_FORMAT, "%s: completion %d is not a string", where, j + 1);
    else if (has_ref) tn_score_example(cj->valuestring, refb, &c->o->extract, &sc[j]);
  }
  if (s == TN_OK && c->nrows == c->cap) {
    int64_t cap = c->cap ? 2 * c->cap : 64;
    char **nl = realloc(c->lc.lines, sizeof *nl * cap), **ni = nl ? realloc(c->ids, sizeof *ni * cap) : NULL;
    if (nl) c->lc.lines = nl;
    if (ni) c->ids = ni;
    if (!nl || !ni) s = tn_error(TN_ERR_NOMEM, "%s: out of memory", where);
    else c->cap = cap;
  }
  if (s == TN_OK) {
    c->ns = ns;
    id_string(ex, (int)c->nrows, idb, sizeof idb);
    for (int64_t i = 0; i < c->nrows && s == TN_OK; i++)
      if (!strcmp(c->ids[i], idb)) s = tn_error(TN_ERR_FORMAT, "%s: duplicate id '%s'", where, idb);
  }
  const char *category = cJSON_IsString(cat) ? cat->valuestring : NULL;
  bool assigned = false;
  if (s == TN_OK && !category && c->o->categorizer) { category = tn_categorize(c->o->categorizer, tn_eval_prompt_text(ex)); assigned = true; }
  else if (s == TN_OK && !category && c->o->classify) { category = c->o->classify(c->o->classify_ctx, tn_eval_prompt_text(ex)); assigned = true; }
  if (s == TN_OK && has_ref) s = tn_eval_agg_add(&c->agg, category, sc, ns);
  tn_text_stats ts = {0};
  for (int j = 0; j < ns && s == TN_OK; j++) {
    const cJSON *cj = cJSON_IsString(comp) ? comp : cJSON_GetArrayItem(comp, j);
    int toks = 0;
    if (c->o->count_tok) {
      tn_encoding enc = {0};
      s = tn_tokenizer_encode(c->o->count_tok, cj->valuestring, strlen(cj->valuestring), false, &enc);
      toks = (int)enc.n;
      tn_encoding_free(&enc);
      if (s != TN_OK) break;
    }
    s = tn_text_agg_add(&c->text, category, cj->valuestring, toks, j == 0 ? &ts : NULL);
  }
  if (s == TN_OK && !has_ref) c->n_ref_free++;
  if (s == TN_OK) {
    int npass = 0;
    for (int j = 0; j < ns; j++) npass += sc[j].correct;
    cJSON *line = cJSON_CreateObject();
    if (cJSON_IsNumber(id)) cJSON_AddItemToObject(line, "id", cJSON_Duplicate(id, 0));
    else cJSON_AddStringToObject(line, "id", idb);
    if (category) cJSON_AddStringToObject(line, "category", category);
    else cJSON_AddNullToObject(line, "category");
    cJSON_AddStringToObject(line, "prompt", tn_eval_prompt_text(ex));
    if (assigned) cJSON_AddBoolToObject(line, "category_assigned", true);
    if (has_ref) cJSON_AddStringToObject(line, "expected_answer", refb);
    else cJSON_AddNullToObject(line, "expected_answer");
    const cJSON *c0 = cJSON_IsString(comp) ? comp : cJSON_GetArrayItem(comp, 0);
    cJSON_AddStringToObject(line, "completion", c0->valuestring);
    if (has_ref) tn_score_to_json(&sc[0], line);
    cJSON_AddNumberToObject(line, "words", ts.words);
    cJSON_AddNumberToObject(line, "type_token_ratio", ts.ttr);
    cJSON_AddBoolToObject(line, "refusal", ts.refusal);
    if (ns > 1 && has_ref) {
      add_pass_at_k(line, ns, npass);
      cJSON *arr = cJSON_AddArrayToObject(line, "samples");
      for (int j = 0; j < ns; j++) {
        cJSON *sj = cJSON_CreateObject();
        cJSON_AddStringToObject(sj, "completion", cJSON_GetArrayItem(comp, j)->valuestring);
        tn_score_to_json(&sc[j], sj);
        cJSON_AddItemToArray(arr, sj);
      }
    }
    c->lc.lines[c->lc.n++] = tn_json_print_valid(line, false);
    c->ids[c->nrows++] = tn_strdup(idb);
    cJSON_Delete(line);
  }
  free(sc);
  cJSON_Delete(ex);
  return s;
}

tn_status tn_eval_completions(const char *path, const tn_eval_opts *o, tn_eval_summary *out) {
  memset(out, 0, sizeof *out);
  comp_ctx c = {.o = o};
  tn_eval_agg_init(&c.agg);
  tn_text_agg_init(&c.text);
  tn_status s = tn_jsonl_read(path, comp_row, &c);
  if (s == TN_OK && !c.nrows) s = tn_error(TN_ERR_FORMAT, "%s: no rows", path);
  if (s == TN_OK) {
    int ks[40], nks = c.ns > 1 ? pass_ks(c.ns, ks) : 0;
    cJSON *sum = tn_eval_agg_to_json(&c.agg, ks, nks);
    cJSON_AddNumberToObject(sum, "examples", (double)c.agg.nex);
    cJSON_AddNumberToObject(sum, "samples_per_example", c.ns);
    cJSON_AddNumberToObject(sum, "reference_free", (double)c.n_ref_free);
    cJSON_AddItemToObject(sum, "text", tn_text_agg_to_json(&c.text, o->count_tok != NULL));
    cJSON *cfg = cJSON_AddObjectToObject(sum, "config");
    cJSON_AddStringToObject(cfg, "completions", path);
    if (o->out) cJSON_AddStringToObject(cfg, "results", o->out);
    out->json = sum;
    out->n_examples = c.agg.nex;
    out->n_samples = c.ns;
    const tn_eval_bucket *a = &c.agg.all;
    double dn = a->n ? (double)a->n : 1.0;
    out->accuracy = a->correct / dn;
    out->partial_accuracy = a->partial / dn;
    out->format_rate = a->format_ok / dn;
    out->mean_credit = a->credit / dn;
    memcpy(out->errors, a->errors, sizeof out->errors);
    char *sp = o->summary_out ? tn_strdup(o->summary_out) : o->out ? tn_eval_summary_path(o->out) : NULL;
    if (o->out) s = tn_write_atomic_cb(o->out, write_lines, &c.lc);
    if (s == TN_OK && sp) s = tn_write_atomic_cb(sp, write_json, sum);
    if (s == TN_OK && o->print) {
      fprintf(o->print, "eval: %lld examples x %d completion%s from %s\n", (long long)c.agg.nex, c.ns, c.ns > 1 ? "s" : "", path);
      if (c.agg.nex) tn_eval_agg_print(&c.agg, o->print);
      if (c.n_ref_free) fprintf(o->print, "%lld rows without a reference: text metrics only\n", (long long)c.n_ref_free);
      tn_text_agg_print(&c.text, o->count_tok != NULL, o->print);
      for (int q = 0; q < nks; q++) fprintf(o->print, "pass@%d: %.2f%%\n", ks[q], 100 * tn_eval_agg_pass_at_k(&c.agg, ks[q]));
      if (o->out) fprintf(o->print, "results: %s\nsummary: %s\n", o->out, sp);
    }
    free(sp);
    if (s != TN_OK) tn_eval_summary_free(out);
  }
  for (int64_t i = 0; i < c.lc.n; i++) free(c.lc.lines[i]);
  for (int64_t i = 0; i < c.nrows; i++) free(c.ids[i]);
  free(c.lc.lines);
  free(c.ids);
  tn_eval_agg_free(&c.agg);
  tn_text_agg_free(&c.text);
  return s;
}
