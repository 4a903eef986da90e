/* store.c - the store's rules on top of its storage interface (store.h): trace validation and
 * normalisation, listings with cursors, dataset builds (filters, selection strategies, the
 * immutable name-version with its manifest and the 409 rule), the four exports with their
 * sha256 checked on every export, and run registration with the before/after report.
 * Not for: SQL (store_sqlite.c) or HTTP parsing (store_http.c). */
#include "store/store.h"
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "eval/report.h"
#include "obs/obs.h"
#include "base/json.h"

struct tn_store {
  const tn_store_ops *ops;
  tn_store_db *db;
  char *path;
};

#define MAX_TRACES_PER_CALL 10000
#define MAX_STR 65536

const char *const tn_store_formats[] = {"tunix_sft", "messages", "prompt_completion", "dpo", NULL};

const char *tn_store_default_path(void) {
  const char *e = getenv("TUNIC_STORE");
  return e && e[0] ? e : "tunic_store.db";
}

tn_status tn_store_open(tn_store **out, const char *path, const tn_store_ops *ops) {
  *out = NULL;
  if (!path || !path[0]) return tn_error(TN_ERR_ARG, "store: no database path");
  tn_store *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) { free(s); return tn_error(TN_ERR_NOMEM, "store: out of memory"); }
  s->ops = ops ? ops : &tn_store_sqlite_ops;
  tn_status st = s->ops->open(&s->db, path);
  if (st != TN_OK) { free(s->path); free(s); return st; }
  *out = s;
  return TN_OK;
}

void tn_store_close(tn_store *s) {
  if (!s) return;
  s->ops->close(s->db);
  free(s->path);
  free(s);
}

const char *tn_store_path(const tn_store *s) { return s->path; }

/* ---- small helpers ---- */
static tn_status bad(tn_store_res *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static tn_status bad(tn_store_res *r, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  r->code = 400;
  return tn_error(TN_ERR_ARG, "%s", msg);
}
static tn_status fail(tn_store_res *r, tn_status s) {
  r->code = s == TN_ERR_ARG ? 400 : 500;
  return s;
}
static tn_status nomem(tn_store_res *r) { return fail(r, tn_error(TN_ERR_NOMEM, "store: out of memory")); }

static const cJSON *get(const cJSON *o, const char *k) { return tn_json_field(o, k); }

/* ISO-8601 UTC "YYYY-MM-DDTHH:MM:SSZ" (optionally with fractional seconds) or a date "YYYY-MM-DD" */
static bool iso_ok(const char *s) {
  size_t n = strlen(s);
  if (n < 10 || n > 40) return false;
  for (int i = 0; i < 10; i++)
    if ((i == 4 || i == 7) ? s[i] != '-' : !(s[i] >= '0' && s[i] <= '9')) return false;
  if (n == 10) return true;
  if (s[10] != 'T' || n < 20 || s[n - 1] != 'Z') return false;
  for (size_t i = 11; i < n - 1; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || s[i] == ':' || s[i] == '.')) return false;
  return true;
}

static bool name_ok(const char *s, bool dash) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
          (dash && c == '-')))
      return false;
  }
  return s[0] != '.';
}

static bool str_ok(const cJSON *v, size_t max) {
  return cJSON_IsString(v) && v->valuestring && strlen(v->valuestring) <= max &&
         tn_utf8_invalid_at(v->valuestring, strlen(v->valuestring)) == SIZE_MAX;
}

/* ---- traces ---- */
/* the seeds' tunix-rt UNGAR traces are {prompt, steps, final_answer, metadata: {source, game, ...}}:
 * accepted as they are (final_answer is the completion, source/game may sit in the metadata) */
static const char *const trace_fields[] = {"source", "game", "messages", "prompt", "completion", "final_answer", "steps",
                                           "metadata", "scores", "score", "created_at", "transcript", "outcome", "model",
                                           "id", NULL};
static const char *const roles[] = {"system", "user", "assistant", "tool", NULL};

static bool in_list(const char *s, const char *const *l) {
  for (int i = 0; l[i]; i++)
    if (!strcmp(s, l[i])) return true;
  return false;
}

/* Validate trace T (WHERE names it in messages) into a normalised copy *OUT and its row columns. */
static tn_status check_trace(const cJSON *t, const char *where, cJSON **out, tn_store_res *r) {
  *out = NULL;
  if (!cJSON_IsObject(t)) return bad(r, "%s: a trace must be a JSON object", where);
  const cJSON *f;
  cJSON_ArrayForEach(f, t)
    if (!in_list(f->string, trace_fields))
      return bad(r, "%s: unknown field '%s' (expected source, game, messages | prompt+completion | prompt+final_answer, "
                 "steps, metadata, scores, score, created_at, transcript, outcome, model)", where, f->string);
  const cJSON *src = get(t, "source"), *game = get(t, "game"), *msgs = get(t, "messages"), *p = get(t, "prompt"),
              *c = get(t, "completion"), *meta = get(t, "metadata"), *scores = get(t, "scores"), *score = get(t, "score"),
              *at = get(t, "created_at"), *model = get(t, "model"), *fa = get(t, "final_answer"), *steps = get(t, "steps");
  if (meta && !cJSON_IsObject(meta)) return bad(r, "%s: field 'metadata' must be an object", where);
  if (!src && cJSON_IsString(get(meta, "source"))) src = get(meta, "source");
  if (!game && get(meta, "game")) game = get(meta, "game");
  if (!src) return bad(r, "%s: field 'source' is required (a string, e.g. \"ungar\"; or metadata.source)", where);
  if (!cJSON_IsString(src) || !name_ok(src->valuestring, true))
    return bad(r, "%s: field 'source' must be a name of 1-64 letters, digits, '_', '-', '.'", where);
  if (game && (!cJSON_IsString(game) || !name_ok(game->valuestring, true)))
    return bad(r, "%s: field 'game' must be a name of 1-64 letters, digits, '_', '-', '.'", where);
  if (model && !str_ok(model, 256)) return bad(r, "%s: field 'model' must be a string of at most 256 bytes", where);
  if (fa && !str_ok(fa, 1 << 22)) return bad(r, "%s: field 'final_answer' must be a UTF-8 string", where);
  if (c && fa) return bad(r, "%s: give 'completion' or 'final_answer', not both", where);
  if (!c) c = fa;
  if (steps && !cJSON_IsArray(steps)) return bad(r, "%s: field 'steps' must be a list", where);
  if (msgs && (p || c) && !fa) return bad(r, "%s: give either 'messages' or 'prompt'+'completion', not both", where);
  if (msgs && p && !str_ok(p, 1 << 22)) return bad(r, "%s: field 'prompt' must be a UTF-8 string", where);
  if (msgs) { /* the conversation; an UNGAR prompt/final_answer beside it is kept as it is */
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
      return bad(r, "%s: field 'messages' must be a non-empty list", where);
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
      const cJSON *role = get(m, "role"), *content = get(m, "content");
      if (!cJSON_IsObject(m)) return bad(r, "%s: messages[%d] must be an object", where, i);
      if (!cJSON_IsString(role) || !in_list(role->valuestring, roles))
        return bad(r, "%s: messages[%d].role must be one of system, user, assistant, tool", where, i);
      if (!str_ok(content, 1 << 22)) return bad(r, "%s: messages[%d].content must be a UTF-8 string", where, i);
      i++;
    }
  } else if (p || c) {
    if (!str_ok(p, 1 << 22)) return bad(r, "%s: field 'prompt' must be a UTF-8 string", where);
    if (!str_ok(c, 1 << 22)) return bad(r, "%s: field 'completion' (or 'final_answer') must be a UTF-8 string", where);
  } else {
    return bad(r, "%s: field 'messages' (or 'prompt' and 'completion') is required", where);
  }
  if (scores) {
    if (!cJSON_IsObject(scores)) return bad(r, "%s: field 'scores' must be an object of numbers", where);
    cJSON_ArrayForEach(f, scores)
      if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble))
        return bad(r, "%s: scores.%s must be a finite number", where, f->string);
  }
  if (score && (!cJSON_IsNumber(score) || !isfinite(score->valuedouble)))
    return bad(r, "%s: field 'score' must be a finite number", where);
  if (at && (!cJSON_IsString(at) || !iso_ok(at->valuestring)))
    return bad(r, "%s: field 'created_at' must be an ISO-8601 UTC time like 2026-01-31T12:00:00Z", where);
  cJSON *o = cJSON_Duplicate(t, true);
  if (!o) return nomem(r);
  cJSON_DeleteItemFromObjectCaseSensitive(o, "id"); /* ids are the store's */
  if (!get(o, "source")) { /* absent or null: the import's */
    cJSON_DeleteItemFromObjectCaseSensitive(o, "source");
    cJSON_AddItemToObject(o, "source", cJSON_Duplicate(src, true));
  }
  if (!get(o, "game") && cJSON_IsString(game)) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, "game");
    cJSON_AddItemToObject(o, "game", cJSON_Duplicate(game, true));
  }
  if (!at) {
    char now[32];
    tn_iso8601_utc(now, sizeof now);
    cJSON_AddStringToObject(o, "created_at", now);
  }
  *out = o;
  return TN_OK;
}

static double trace_score(const cJSON *t, bool *has) {
  const cJSON *s = get(t, "score");
  *has = true;
  if (cJSON_IsNumber(s)) return s->valuedouble;
  const cJSON *sc = get(t, "scores");
  if (cJSON_IsNumber(get(sc, "reward"))) return get(sc, "reward")->valuedouble;
  if (cJSON_IsObject(sc) && cJSON_IsNumber(sc->child)) return sc->child->valuedouble;
  *has = false;
  return 0;
}

/* insert normalised traces (a cJSON array) in one transaction */
static tn_status insert_traces(tn_store *s, cJSON *arr, cJSON **ids_out, tn_store_res *r) {
  int n = cJSON_GetArraySize(arr);
  tn_store_trace_row *rows = calloc(n ? n : 1, sizeof *rows);
  int64_t *ids = calloc(n ? n : 1, sizeof *ids);
  char **texts = calloc(n ? n : 1, sizeof *texts);
  tn_status st = rows && ids && texts ? TN_OK : nomem(r);
  int i = 0;
  const cJSON *t;
  cJSON_ArrayForEach(t, arr) {
    if (st != TN_OK) break;
    if (!(texts[i] = cJSON_PrintUnformatted(t))) { st = nomem(r); break; }
    const cJSON *game = get(t, "game");
    if (!game) game = get(get(t, "metadata"), "game");
    rows[i] = (tn_store_trace_row){.json = texts[i], .source = get(t, "source")->valuestring,
                                   .game = cJSON_IsString(game) ? game->valuestring : NULL,
                                   .created_at = get(t, "created_at")->valuestring};
    rows[i].score = trace_score(t, &rows[i].has_score);
    i++;
  }
  if (st == TN_OK && (st = s->ops->traces_insert(s->db, rows, n, ids)) != TN_OK) fail(r, st);
  if (st == TN_OK) {
    cJSON *o = cJSON_CreateArray();
    for (int k = 0; o && k < n; k++) cJSON_AddItemToArray(o, cJSON_CreateNumber((double)ids[k]));
    if (!o) st = nomem(r);
    *ids_out = o;
    r->code = 201;
  }
  for (int k = 0; texts && k < n; k++) cJSON_free(texts[k]);
  free(texts);
  free(rows);
  free(ids);
  return st;
}

tn_status tn_store_traces_add(tn_store *s, const cJSON *body, cJSON **ids_out, tn_store_res *r) {
  *ids_out = NULL;
  r->code = 500;
  const cJSON *list = body;
  if (cJSON_IsObject(body) && get(body, "traces")) list = get(body, "traces");
  bool one = cJSON_IsObject(list);
  if (!one && !cJSON_IsArray(list)) return bad(r, "body: expected a trace object, a list of traces or {\"traces\": [...]}");
  int n = one ? 1 : cJSON_GetArraySize(list);
  if (n == 0) return bad(r, "traces: the list is empty");
  if (n > MAX_TRACES_PER_CALL) return bad(r, "traces: %d traces in one call (at most %d)", n, MAX_TRACES_PER_CALL);
  cJSON *norm = cJSON_CreateArray();
  if (!norm) return nomem(r);
  tn_status st = TN_OK;
  int i = 0;
  const cJSON *t;
  if (one) {
    cJSON *o;
    if ((st = check_trace(list, "trace", &o, r)) == TN_OK) cJSON_AddItemToArray(norm, o);
  } else {
    cJSON_ArrayForEach(t, list) {
      char where[32];
      snprintf(where, sizeof where, "traces[%d]", i++);
      cJSON *o;
      if ((st = check_trace(t, where, &o, r)) != TN_OK) break;
      cJSON_AddItemToArray(norm, o);
    }
  }
  if (st == TN_OK) st = insert_traces(s, norm, ids_out, r);
  cJSON_Delete(norm);
  return st;
}

static cJSON *with_id(const char *json, int64_t id) {
  cJSON *o = cJSON_Parse(json);
  if (o) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
    cJSON *idv = cJSON_CreateNumber((double)id);
    if (idv) cJSON_AddItemToObject(o, "id", idv);
  }
  return o;
}

tn_status tn_store_trace_get(tn_store *s, int64_t id, cJSON **out, tn_store_res *r) {
  *out = NULL;
  char *json = NULL;
  bool found;
  tn_status st = s->ops->trace_get(s->db, id, &json, &found);
  if (st != TN_OK) return fail(r, st);
  if (!found) { r->code = 404; return tn_error(TN_ERR_ARG, "trace %lld: not found", (long long)id); }
  *out = with_id(json, id);
  free(json);
  if (!*out) return nomem(r);
  r->code = 200;
  return TN_OK;
}

typedef struct { cJSON *arr; int64_t last; long n; } collect_ctx;
static tn_status collect(void *ctx, int64_t id, const char *json) {
  collect_ctx *c = ctx;
  cJSON *o = with_id(json, id);
  if (!o || !cJSON_AddItemToArray(c->arr, o)) { cJSON_Delete(o); return tn_error(TN_ERR_NOMEM, "store: out of memory"); }
  c->last = id;
  c->n++;
  return TN_OK;
}

tn_status tn_store_traces_list(tn_store *s, const tn_store_trace_query *q0, cJSON **out, tn_store_res *r) {
  *out = NULL;
  tn_store_trace_query q = *q0;
  if (q.limit == 0) q.limit = 50;
  if (q.limit < 1 || q.limit > 1000) return bad(r, "limit: %lld is outside 1..1000", (long long)q.limit);
  if (q.since && !iso_ok(q.since)) return bad(r, "since: '%s' is not an ISO-8601 UTC time (2026-01-31T12:00:00Z)", q.since);
  if (q.until && !iso_ok(q.until)) return bad(r, "until: '%s' is not an ISO-8601 UTC time", q.until);
  q.order = 0;
  collect_ctx c = {.arr = cJSON_CreateArray()};
  if (!c.arr) return nomem(r);
  tn_status st = s->ops->traces_query(s->db, &q, collect, &c);
  if (st != TN_OK) { cJSON_Delete(c.arr); return fail(r, st); }
  cJSON *o = cJSON_CreateObject();
  if (!o) { cJSON_Delete(c.arr); return nomem(r); }
  cJSON_AddItemToObject(o, "traces", c.arr);
  if (c.n == q.limit) {
    char cur[32];
    snprintf(cur, sizeof cur, "%lld", (long long)c.last);
    cJSON_AddStringToObject(o, "next_cursor", cur);
  } else {
    cJSON_AddNullToObject(o, "next_cursor");
  }
  *out = o;
  r->code = 200;
  return TN_OK;
}

/* ---- exports ---- */
/* the conversation of a trace: its messages, or [user prompt, assistant completion] (new array) */
static cJSON *conversation(const cJSON *t) {
  const cJSON *m = get(t, "messages");
  if (m) return cJSON_Duplicate(m, true);
  cJSON *a = cJSON_CreateArray(), *u = cJSON_CreateObject(), *as = cJSON_CreateObject();
  if (!a || !u || !as) { cJSON_Delete(a); cJSON_Delete(u); cJSON_Delete(as); return NULL; }
  cJSON_AddItemToArray(a, u);
  cJSON_AddItemToArray(a, as);
  cJSON_AddStringToObject(u, "role", "user");
  cJSON_AddStringToObject(u, "content", get(t, "prompt")->valuestring);
  cJSON_AddStringToObject(as, "role", "assistant");
  const cJSON *c = get(t, "completion");
  cJSON_AddStringToObject(as, "content", (c ? c : get(t, "final_answer"))->valuestring);
  return a;
}

/* The Gemma turns of the prompt messages (all but the last, an assistant turn), ending with the
 * open model turn. A system message goes into the first user turn (Gemma has no system role). */
static char *gemma_prompt(const cJSON *msgs, int n_prompt) {
  size_t cap = 256, len = 0;
  for (const cJSON *m = msgs->child; m; m = m->next) cap += strlen(get(m, "content")->valuestring) + 64;
  char *b = malloc(cap);
  if (!b) return NULL;
  b[0] = 0;
  const char *sys = NULL;
  int i = 0;
  for (const cJSON *m = msgs->child; m && i < n_prompt; m = m->next, i++) {
    const char *role = get(m, "role")->valuestring, *c = get(m, "content")->valuestring;
    if (!strcmp(role, "system")) { sys = c; continue; }
    const char *turn = !strcmp(role, "assistant") ? "model" : "user";
    len += (size_t)snprintf(b + len, cap - len, "<start_of_turn>%s\n%s%s%s<end_of_turn>\n", turn,
                            sys && !strcmp(turn, "user") ? sys : "", sys && !strcmp(turn, "user") ? "\n\n" : "", c);
    if (!strcmp(turn, "user")) sys = NULL;
  }
  snprintf(b + len, cap - len, "<start_of_turn>model\n");
  return b;
}

static cJSON *line_meta(const cJSON *t) {
  const cJSON *meta = get(t, "metadata");
  cJSON *m = meta ? cJSON_Duplicate(meta, true) : cJSON_CreateObject();
  if (!m) return NULL;
  const char *keys[] = {"source", "game", "score"};
  for (int i = 0; i < 3; i++) {
    const cJSON *v = get(t, keys[i]);
    if (v && !get(m, keys[i])) cJSON_AddItemToObject(m, keys[i], cJSON_Duplicate(v, true));
  }
  cJSON_AddNumberToObject(m, "trace_id", get(t, "id")->valuedouble);
  return m;
}

typedef struct { char *b; size_t len, cap; long lines; } sbuf;
static bool sb_line(sbuf *s, cJSON *o) {
  char *t = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (!t) return false;
  size_t n = strlen(t);
  if (s->len + n + 2 > s->cap) {
    size_t nc = (s->len + n + 2) * 2;
    char *nb = realloc(s->b, nc);
    if (!nb) { cJSON_free(t); return false; }
    s->b = nb;
    s->cap = nc;
  }
  memcpy(s->b + s->len, t, n);
  s->len += n;
  s->b[s->len++] = '\n';
  s->b[s->len] = 0;
  s->lines++;
  cJSON_free(t);
  return true;
}

/* the prompt side of a conversation for prompt_completion/dpo: a string when it is one user
 * message, else the list of messages (TRL's conversational form) */
static cJSON *prompt_side(const cJSON *conv, int n_prompt) {
  if (n_prompt == 1 && !strcmp(get(conv->child, "role")->valuestring, "user"))
    return cJSON_CreateString(get(conv->child, "content")->valuestring);
  cJSON *a = cJSON_CreateArray();
  int i = 0;
  for (const cJSON *m = conv->child; a && m && i < n_prompt; m = m->next, i++)
    cJSON_AddItemToArray(a, cJSON_Duplicate(m, true));
  return a;
}

/* Export SNAPSHOT (the dataset's traces, in order) in FORMAT into *OUT (NUL-terminated). */
static tn_status render(const cJSON *snapshot, const char *format, sbuf *out, long *skipped) {
  *out = (sbuf){0};
  *skipped = 0;
  if (!(out->b = calloc(1, 1))) return tn_error(TN_ERR_NOMEM, "store: out of memory");
  out->cap = 1;
  const bool dpo = !strcmp(format, "dpo");
  cJSON *groups = dpo ? cJSON_CreateObject() : NULL; /* prompt text -> [best, worst] traces */
  cJSON *order = dpo ? cJSON_CreateArray() : NULL;
  if (dpo && (!groups || !order)) { cJSON_Delete(groups); cJSON_Delete(order); return tn_error(TN_ERR_NOMEM, "store: out of memory"); }
  bool ok = true;
  for (const cJSON *t = snapshot->child; ok && t; t = t->next) {
    cJSON *conv = conversation(t);
    if (!conv) { ok = false; break; }
    int n = cJSON_GetArraySize(conv);
    const cJSON *last = cJSON_GetArrayItem(conv, n - 1);
    if (n < 2 || strcmp(get(last, "role")->valuestring, "assistant")) { /* no answer to train on */
      (*skipped)++;
      cJSON_Delete(conv);
      continue;
    }
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)get(t, "id")->valuedouble);
    const char *answer = get(last, "content")->valuestring;
    if (!strcmp(format, "tunix_sft")) {
      char *p = gemma_prompt(conv, n - 1);
      cJSON *o = cJSON_CreateObject();
      ok = p && o;
      if (ok) {
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddStringToObject(o, "prompts", p);
        cJSON_AddStringToObject(o, "final_answer", answer);
        cJSON_AddItemToObject(o, "metadata", line_meta(t));
        ok = sb_line(out, o);
      } else {
        cJSON_Delete(o);
      }
      free(p);
    } else if (!strcmp(format, "messages")) {
      cJSON *o = cJSON_CreateObject();
      ok = o != NULL;
      if (ok) {
        cJSON_AddStringToObject(o, "id", id);
        cJSON_AddItemToObject(o, "messages", cJSON_Duplicate(conv, true));
        cJSON_AddItemToObject(o, "metadata", line_meta(t));
        ok = sb_line(out, o);
      }
    } else if (!strcmp(format, "prompt_completion")) {
      cJSON *o = cJSON_CreateObject();
      ok = o != NULL;
      if (ok) {
        cJSON_AddStringToObject(o, "id", id);
        cJSON *ps = prompt_side(conv, n - 1);
        cJSON_AddItemToObject(o, "prompt", ps);
        if (cJSON_IsString(ps)) {
          cJSON_AddStringToObject(o, "completion", answer);
        } else {
          cJSON *c = cJSON_AddArrayToObject(o, "completion");
          if (c) cJSON_AddItemToArray(c, cJSON_Duplicate(last, true));
        }
        cJSON_AddItemToObject(o, "metadata", line_meta(t));
        ok = sb_line(out, o);
      }
    } else { /* dpo: pairs of traces with the same prompt, the best and the worst score */
      bool has;
      double sc = trace_score(t, &has);
      cJSON *ps = prompt_side(conv, n - 1);
      char *key = ps ? cJSON_PrintUnformatted(ps) : NULL;
      cJSON_Delete(ps);
      ok = key != NULL;
      if (ok && !has) (*skipped)++;
      if (ok && has) {
        cJSON *g = tn_json_field_mut(groups, key);
        if (!g) {
          g = cJSON_CreateArray();
          cJSON_AddItemToArray(g, cJSON_Duplicate(t, true));
          cJSON_AddItemToArray(g, cJSON_Duplicate(t, true));
          cJSON_AddItemToObject(groups, key, g);
          cJSON_AddItemToArray(order, cJSON_CreateString(key));
        } else {
          bool h;
          if (sc > trace_score(cJSON_GetArrayItem(g, 0), &h)) cJSON_ReplaceItemInArray(g, 0, cJSON_Duplicate(t, true));
          if (sc < trace_score(cJSON_GetArrayItem(g, 1), &h)) cJSON_ReplaceItemInArray(g, 1, cJSON_Duplicate(t, true));
        }
      }
      cJSON_free(key);
    }
    cJSON_Delete(conv);
  }
  for (const cJSON *k = order ? order->child : NULL; ok && k; k = k->next) {
    const cJSON *g = tn_json_field(groups, k->valuestring);
    const cJSON *best = cJSON_GetArrayItem(g, 0), *worst = cJSON_GetArrayItem(g, 1);
    bool h;
    if (trace_score(best, &h) <= trace_score(worst, &h)) continue; /* no preference */
    cJSON *cb = conversation(best), *cw = conversation(worst), *o = cJSON_CreateObject();
    ok = cb && cw && o;
    if (ok) {
      int n = cJSON_GetArraySize(cb);
      cJSON *ps = prompt_side(cb, n - 1);
      const cJSON *lb = cJSON_GetArrayItem(cb, n - 1), *lw = cJSON_GetArrayItem(cw, cJSON_GetArraySize(cw) - 1);
      char id[64];
      snprintf(id, sizeof id, "%lld-%lld", (long long)get(best, "id")->valuedouble, (long long)get(worst, "id")->valuedouble);
      cJSON_AddStringToObject(o, "id", id);
      cJSON_AddItemToObject(o, "prompt", ps);
      if (cJSON_IsString(ps)) {
        cJSON_AddStringToObject(o, "chosen", get(lb, "content")->valuestring);
        cJSON_AddStringToObject(o, "rejected", get(lw, "content")->valuestring);
      } else {
        cJSON *c = cJSON_AddArrayToObject(o, "chosen"), *rj = cJSON_AddArrayToObject(o, "rejected");
        if (c) cJSON_AddItemToArray(c, cJSON_Duplicate(lb, true));
        if (rj) cJSON_AddItemToArray(rj, cJSON_Duplicate(lw, true));
      }
      ok = sb_line(out, o);
      o = NULL;
    }
    cJSON_Delete(cb);
    cJSON_Delete(cw);
    cJSON_Delete(o);
  }
  cJSON_Delete(groups);
  cJSON_Delete(order);
  if (!ok) { free(out->b); *out = (sbuf){0}; return tn_error(TN_ERR_NOMEM, "store: out of memory while exporting"); }
  return TN_OK;
}

/* ---- datasets ---- */
static const char *const filter_keys[] = {"source", "game", "since", "until", "min_score", NULL};
static const char *const strategies[] = {"latest", "random", "top_score", NULL};
static const char *const build_keys[] = {"dataset_name", "dataset_version", "filters", "limit", "selection_strategy",
                                         "seed", NULL};

static void shuffle(cJSON *arr, uint64_t seed) {
  int n = cJSON_GetArraySize(arr);
  if (n < 2) return;
  cJSON **v = malloc(sizeof *v * n);
  if (!v) return;
  int i = 0;
  for (cJSON *c = arr->child; c; c = c->next) v[i++] = c;
  tn_rng g;
  tn_rng_seed(&g, seed);
  for (i = n - 1; i > 0; i--) { /* Fisher-Yates */
    int j = (int)(tn_rng_u64(&g) % (uint64_t)(i + 1));
    cJSON *t = v[i];
    v[i] = v[j];
    v[j] = t;
  }
  for (i = 0; i < n; i++) {
    v[i]->prev = i ? v[i - 1] : v[n - 1];
    v[i]->next = i + 1 < n ? v[i + 1] : NULL;
  }
  arr->child = v[0];
  free(v);
}

static void sha_hex(const char *b, size_t n, char hex[65]) {
  uint8_t d[32];
  tn_sha256(b, n, d);
  tn_sha256_hex(d, hex);
}

static tn_status load_dataset(tn_store *s, const char *key, cJSON **obj, tn_store_res *r) {
  *obj = NULL;
  if (!name_ok(key, true)) return bad(r, "dataset key '%s': expected NAME-VERSION (letters, digits, '_', '.', '-')", key);
  char *json = NULL;
  bool found;
  tn_status st = s->ops->object_get(s->db, "dataset", key, &json, &found);
  if (st != TN_OK) return fail(r, st);
  if (!found) { r->code = 404; return tn_error(TN_ERR_ARG, "dataset %s: not found", key); }
  *obj = cJSON_Parse(json);
  free(json);
  if (!*obj || !cJSON_IsObject(get(*obj, "manifest")) || !cJSON_IsArray(get(*obj, "traces"))) {
    cJSON_Delete(*obj);
    *obj = NULL;
    return fail(r, tn_error(TN_ERR_FORMAT, "dataset %s: the stored record is damaged", key));
  }
  return TN_OK;
}

/* the part of a build request that makes two builds "identical" */
static cJSON *build_signature(const cJSON *m) {
  cJSON *o = cJSON_CreateObject();
  const char *k[] = {"filters", "selection_strategy", "seed", "limit", "trace_ids"};
  for (int i = 0; o && i < 5; i++)
    cJSON_AddItemToObject(o, k[i], get(m, k[i]) ? cJSON_Duplicate(get(m, k[i]), true) : cJSON_CreateNull());
  return o;
}

/* a build request's "filters" into q (unknown filters and bad values: 400 naming the filter) */
static tn_status parse_filters(const cJSON *filters, tn_store_trace_query *q, tn_store_res *r) {
  const cJSON *f;
  if (filters && !cJSON_IsObject(filters)) return bad(r, "filters: expected an object");
  cJSON_ArrayForEach(f, filters) {
    if (!in_list(f->string, filter_keys))
      return bad(r, "filters.%s: unknown filter (expected source, game, since, until, min_score)", f->string);
    if (!strcmp(f->string, "min_score")) {
      if (!cJSON_IsNumber(f) || !isfinite(f->valuedouble)) return bad(r, "filters.min_score: expected a number");
      q->has_min_score = true;
      q->min_score = f->valuedouble;
      continue;
    }
    if (!cJSON_IsString(f)) return bad(r, "filters.%s: expected a string", f->string);
    const bool time = !strcmp(f->string, "since") || !strcmp(f->string, "until");
    if (time ? !iso_ok(f->valuestring) : !name_ok(f->valuestring, true))
      return bad(r, "filters.%s: '%s' is not a valid %s", f->string, f->valuestring, time ? "ISO-8601 UTC time" : "name");
    const char **dst = !strcmp(f->string, "source") ? &q->source : !strcmp(f->string, "game") ? &q->game
                       : !strcmp(f->string, "since") ? &q->since : &q->until;
    *dst = f->valuestring;
  }
  return TN_OK;
}

/* dataset KEY exists already (EXISTING: its record): a build of the same signature SIG returns that
 * build's manifest (200); another is refused (409: datasets are immutable) */
static tn_status existing_build(const char *key, const char *existing, const cJSON *sig, cJSON **manifest_out,
                                tn_store_res *r) {
  tn_status st = TN_OK;
  cJSON *old = cJSON_Parse(existing);
  const cJSON *om = get(old, "manifest"), *bid = get(om, "build_id");
  cJSON *osig = build_signature(om);
  if (old && osig && cJSON_Compare(osig, sig, true)) {
    r->code = 200; /* identical: the existing build */
    *manifest_out = cJSON_Duplicate(om, true);
  } else {
    r->code = 409;
    st = tn_error(TN_ERR_ARG, "dataset %s already exists (build %s) and differs from this build (filters, strategy, "
                  "seed, limit or the selected traces): datasets are immutable, use a new dataset_version", key,
                  cJSON_IsString(bid) ? bid->valuestring : "?");
  }
  cJSON_Delete(old);
  cJSON_Delete(osig);
  return st;
}

tn_status tn_store_dataset_build(tn_store *s, const cJSON *req, cJSON **manifest_out, tn_store_res *r) {
  *manifest_out = NULL;
  r->code = 500;
  if (!cJSON_IsObject(req)) return bad(r, "body: expected a JSON object");
  const cJSON *f;
  cJSON_ArrayForEach(f, req)
    if (!in_list(f->string, build_keys))
      return bad(r, "unknown field '%s' (expected dataset_name, dataset_version, filters, limit, selection_strategy, seed)",
                 f->string);
  const cJSON *name = get(req, "dataset_name"), *ver = get(req, "dataset_version"), *filters = get(req, "filters"),
              *limit = get(req, "limit"), *strat = get(req, "selection_strategy"), *seed = get(req, "seed");
  if (!cJSON_IsString(name) || !name_ok(name->valuestring, false))
    return bad(r, "dataset_name: required, 1-64 letters, digits, '_' or '.' (no '-': the key is NAME-VERSION)");
  if (!cJSON_IsString(ver) || !name_ok(ver->valuestring, false))
    return bad(r, "dataset_version: required, 1-64 letters, digits, '_' or '.' (e.g. \"v1\")");
  tn_store_trace_query q = {0};
  TN_TRY(parse_filters(filters, &q, r));
  if (limit && (!cJSON_IsNumber(limit) || limit->valuedouble != floor(limit->valuedouble) || limit->valuedouble < 1 ||
                limit->valuedouble > 1e6))
    return bad(r, "limit: expected an integer in 1..1000000");
  const char *strategy = "latest";
  if (strat) {
    if (!cJSON_IsString(strat) || !in_list(strat->valuestring, strategies))
      return bad(r, "selection_strategy: expected \"latest\", \"random\" or \"top_score\"");
    strategy = strat->valuestring;
  }
  const bool rnd = !strcmp(strategy, "random");
  if (seed && (!cJSON_IsNumber(seed) || seed->valuedouble != floor(seed->valuedouble) || seed->valuedouble < 0 ||
               seed->valuedouble > 9007199254740992.0))
    return bad(r, "seed: expected a non-negative integer");
  if (rnd && !seed) return bad(r, "seed: required with selection_strategy \"random\"");
  if (!rnd && seed) return bad(r, "seed: only used with selection_strategy \"random\"");
  char key[160];
  snprintf(key, sizeof key, "%s-%s", name->valuestring, ver->valuestring);

  /* select */
  q.order = !strcmp(strategy, "top_score") ? 1 : rnd ? 2 : 0;
  q.limit = rnd || !limit ? 0 : (int64_t)limit->valuedouble;
  collect_ctx c = {.arr = cJSON_CreateArray()};
  if (!c.arr) return nomem(r);
  tn_status st = s->ops->traces_query(s->db, &q, collect, &c);
  if (st != TN_OK) { cJSON_Delete(c.arr); return fail(r, st); }
  if (rnd) {
    shuffle(c.arr, (uint64_t)seed->valuedouble);
    while (limit && cJSON_GetArraySize(c.arr) > (int)limit->valuedouble)
      cJSON_DeleteItemFromArray(c.arr, cJSON_GetArraySize(c.arr) - 1);
  }
  if (cJSON_GetArraySize(c.arr) == 0) {
    cJSON_Delete(c.arr);
    return bad(r, "filters: no trace matches (nothing to build %s from)", key);
  }

  /* the manifest */
  cJSON *m = cJSON_CreateObject(), *ids = cJSON_CreateArray(), *sha = cJSON_CreateObject(),
        *counts = cJSON_CreateObject(), *lines = cJSON_CreateObject();
  if (!m || !ids || !sha || !counts || !lines) {
    cJSON_Delete(m); cJSON_Delete(ids); cJSON_Delete(sha); cJSON_Delete(counts); cJSON_Delete(lines); cJSON_Delete(c.arr);
    return nomem(r);
  }
  for (const cJSON *t = c.arr->child; t; t = t->next) cJSON_AddItemToArray(ids, cJSON_CreateNumber(get(t, "id")->valuedouble));
  cJSON_AddStringToObject(m, "key", key);
  cJSON_AddStringToObject(m, "dataset_name", name->valuestring);
  cJSON_AddStringToObject(m, "dataset_version", ver->valuestring);
  cJSON_AddItemToObject(m, "filters", filters ? cJSON_Duplicate(filters, true) : cJSON_CreateObject());
  cJSON_AddStringToObject(m, "selection_strategy", strategy);
  if (seed) cJSON_AddNumberToObject(m, "seed", seed->valuedouble);
  if (limit) cJSON_AddNumberToObject(m, "limit", limit->valuedouble);
  cJSON_AddItemToObject(m, "trace_ids", ids);
  cJSON_AddNumberToObject(counts, "traces", cJSON_GetArraySize(c.arr));
  cJSON_AddItemToObject(counts, "lines", lines);
  cJSON_AddItemToObject(m, "counts", counts);
  tn_sha256_ctx hc;
  tn_sha256_init(&hc);
  for (int i = 0; st == TN_OK && tn_store_formats[i]; i++) {
    sbuf b;
    long skipped;
    if ((st = render(c.arr, tn_store_formats[i], &b, &skipped)) != TN_OK) break;
    char hex[65];
    sha_hex(b.b, b.len, hex);
    cJSON_AddStringToObject(sha, tn_store_formats[i], hex);
    cJSON_AddNumberToObject(lines, tn_store_formats[i], (double)b.lines);
    if (i == 0) {
      cJSON_AddStringToObject(m, "export_sha256", hex);
      cJSON_AddNumberToObject(counts, "skipped_without_answer", (double)skipped);
    }
    tn_sha256_update(&hc, hex, 64);
    free(b.b);
  }
  cJSON_AddItemToObject(m, "sha256", sha);
  cJSON *sig = build_signature(m);
  char *sigt = sig ? cJSON_PrintUnformatted(sig) : NULL;
  if (st == TN_OK && !sigt) st = tn_error(TN_ERR_NOMEM, "store: out of memory");
  if (st == TN_OK) {
    tn_sha256_update(&hc, key, strlen(key));
    tn_sha256_update(&hc, sigt, strlen(sigt));
    uint8_t d[32];
    char hex[65];
    tn_sha256_final(&hc, d);
    tn_sha256_hex(d, hex);
    hex[16] = 0;
    cJSON_AddStringToObject(m, "build_id", hex);
    char now[32];
    tn_iso8601_utc(now, sizeof now);
    cJSON_AddStringToObject(m, "created_at", now);
  }
  /* insert unless the key exists */
  cJSON *rec = cJSON_CreateObject();
  char *text = NULL, *existing = NULL;
  bool inserted = false;
  if (st == TN_OK && rec) {
    cJSON_AddItemReferenceToObject(rec, "manifest", m);
    cJSON_AddItemReferenceToObject(rec, "traces", c.arr);
    text = cJSON_PrintUnformatted(rec);
  }
  if (st == TN_OK && !text) st = tn_error(TN_ERR_NOMEM, "store: out of memory");
  if (st == TN_OK) st = s->ops->object_insert(s->db, "dataset", key, text, &inserted, &existing);
  if (st != TN_OK) {
    fail(r, st);
  } else if (inserted) {
    r->code = 201;
    *manifest_out = cJSON_Duplicate(m, true);
  } else {
    st = existing_build(key, existing, sig, manifest_out, r);
  }
  if (st == TN_OK && !*manifest_out) st = nomem(r);
  free(existing);
  cJSON_free(text);
  cJSON_free(sigt);
  cJSON_Delete(sig);
  cJSON_Delete(rec);
  cJSON_Delete(m);
  cJSON_Delete(c.arr);
  return st;
}

tn_status tn_store_dataset_get(tn_store *s, const char *key, cJSON **out, tn_store_res *r) {
  *out = NULL;
  cJSON *obj;
  TN_TRY(load_dataset(s, key, &obj, r));
  cJSON *o = cJSON_CreateObject(), *prev = cJSON_CreateArray();
  if (!o || !prev) { cJSON_Delete(o); cJSON_Delete(prev); cJSON_Delete(obj); return nomem(r); }
  cJSON_AddItemToObject(o, "manifest", cJSON_DetachItemFromObjectCaseSensitive(obj, "manifest"));
  int i = 0;
  for (const cJSON *t = get(obj, "traces")->child; t && i < 5; t = t->next, i++)
    cJSON_AddItemToArray(prev, cJSON_Duplicate(t, true));
  cJSON_AddItemToObject(o, "preview", prev);
  cJSON_Delete(obj);
  *out = o;
  r->code = 200;
  return TN_OK;
}

static tn_status list_manifest(void *ctx, int64_t id, const char *json) {
  cJSON *o = cJSON_Parse(json);
  cJSON *m = o ? cJSON_DetachItemFromObjectCaseSensitive(o, "manifest") : NULL;
  cJSON_Delete(o);
  if (!m) return TN_OK; /* a damaged row does not hide the others */
  cJSON_DeleteItemFromObjectCaseSensitive(m, "trace_ids"); /* the list stays small */
  cJSON_AddItemToArray(ctx, m);
  return TN_OK;
}

tn_status tn_store_datasets_list(tn_store *s, cJSON **out, tn_store_res *r) {
  cJSON *arr = cJSON_CreateArray(), *o = cJSON_CreateObject();
  if (!arr || !o) { cJSON_Delete(arr); cJSON_Delete(o); return nomem(r); }
  tn_status st = s->ops->object_list(s->db, "dataset", list_manifest, arr);
  if (st != TN_OK) { cJSON_Delete(arr); cJSON_Delete(o); return fail(r, st); }
  cJSON_AddItemToObject(o, "datasets", arr);
  *out = o;
  r->code = 200;
  return TN_OK;
}

static tn_status export_obj(const cJSON *obj, const char *key, const char *format, sbuf *b, tn_store_res *r) {
  if (!format || !in_list(format, tn_store_formats))
    return bad(r, "format: '%s' is not one of tunix_sft, messages, prompt_completion, dpo", format ? format : "");
  long skipped;
  tn_status st = render(get(obj, "traces"), format, b, &skipped);
  if (st != TN_OK) return fail(r, st);
  char hex[65];
  sha_hex(b->b, b->len, hex);
  const cJSON *want = get(get(get(obj, "manifest"), "sha256"), format);
  if (!cJSON_IsString(want) || strcmp(want->valuestring, hex)) {
    free(b->b);
    b->b = NULL;
    return fail(r, tn_error(TN_ERR_FORMAT, "dataset %s: the %s export has sha256 %s but its manifest records %s: the "
                            "dataset changed after it was built (refusing to export it)", key, format, hex,
                            cJSON_IsString(want) ? want->valuestring : "none"));
  }
  r->code = 200;
  return TN_OK;
}

tn_status tn_store_dataset_export(tn_store *s, const char *key, const char *format, char **text, size_t *len,
                                  tn_store_res *r) {
  *text = NULL;
  *len = 0;
  cJSON *obj;
  TN_TRY(load_dataset(s, key, &obj, r));
  sbuf b;
  tn_status st = export_obj(obj, key, format, &b, r);
  cJSON_Delete(obj);
  if (st == TN_OK) { *text = b.b; *len = b.len; }
  return st;
}

tn_status tn_store_dataset_export_file(tn_store *s, const char *key, const char *format, const char *path,
                                       cJSON **manifest_out, tn_store_res *r) {
  if (manifest_out) *manifest_out = NULL;
  cJSON *obj;
  TN_TRY(load_dataset(s, key, &obj, r));
  sbuf b;
  tn_status st = export_obj(obj, key, format, &b, r);
  if (st == TN_OK) {
    st = tn_write_file_atomic(path, b.b, b.len);
    if (st != TN_OK) fail(r, st);
    free(b.b);
  }
  if (st == TN_OK && manifest_out) *manifest_out = cJSON_DetachItemFromObjectCaseSensitive(obj, "manifest");
  cJSON_Delete(obj);
  return st;
}

/* ---- runs ---- */
static const char *const run_keys[] = {"run_dir", "id", "dataset", "eval_before", "eval_after", NULL};

static bool is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* an eval file: given (must exist) or RUN_DIR/NAME when that exists */
static tn_status eval_path(const cJSON *req, const char *field, const char *dir, const char *dflt, cJSON *rec,
                           tn_store_res *r) {
  const cJSON *v = get(req, field);
  if (v) {
    if (!cJSON_IsString(v) || !v->valuestring[0]) return bad(r, "%s: expected a path", field);
    char *abs = realpath(v->valuestring, NULL);
    if (!abs || !is_file(abs)) { free(abs); return bad(r, "%s: %s: no such file", field, v->valuestring); }
    cJSON_AddStringToObject(rec, field, abs);
    free(abs);
    return TN_OK;
  }
  char *p = tn_path_join(dir, dflt);
  if (!p) return nomem(r);
  if (is_file(p)) cJSON_AddStringToObject(rec, field, p);
  free(p);
  return TN_OK;
}

tn_status tn_store_run_register(tn_store *s, const cJSON *req, cJSON **out, tn_store_res *r) {
  *out = NULL;
  r->code = 500;
  if (!cJSON_IsObject(req)) return bad(r, "body: expected a JSON object");
  const cJSON *f;
  cJSON_ArrayForEach(f, req)
    if (!in_list(f->string, run_keys))
      return bad(r, "unknown field '%s' (expected run_dir, id, dataset, eval_before, eval_after)", f->string);
  const cJSON *dir = get(req, "run_dir"), *id = get(req, "id"), *ds = get(req, "dataset");
  if (!cJSON_IsString(dir) || !dir->valuestring[0]) return bad(r, "run_dir: required, the run directory");
  char *abs = realpath(dir->valuestring, NULL);
  if (!abs) return bad(r, "run_dir: %s: no such directory", dir->valuestring);
  char *mpath = tn_path_join(abs, "run_manifest.json"), *mtext = NULL;
  cJSON *man = NULL, *rec = NULL;
  tn_status st = TN_OK;
  size_t mlen;
  if (!mpath) st = nomem(r);
  else if (tn_read_file(mpath, &mtext, &mlen) != TN_OK || !(man = cJSON_Parse(mtext)) || !cJSON_IsObject(man))
    st = bad(r, "run_dir: %s has no readable run_manifest.json (not a tunic run directory)", dir->valuestring);
  if (st == TN_OK && id && (!cJSON_IsString(id) || !name_ok(id->valuestring, true)))
    st = bad(r, "id: expected 1-64 letters, digits, '_', '-', '.'");
  const cJSON *mid = get(man, "run_id");
  const char *rid = id ? id->valuestring : cJSON_IsString(mid) ? mid->valuestring : NULL;
  if (st == TN_OK && (!rid || !name_ok(rid, true))) st = bad(r, "id: the manifest has no usable run_id; give \"id\"");
  if (st == TN_OK && !(rec = cJSON_CreateObject())) st = nomem(r);
  if (st == TN_OK) {
    cJSON_AddStringToObject(rec, "id", rid);
    cJSON_AddStringToObject(rec, "run_dir", abs);
    char now[32];
    tn_iso8601_utc(now, sizeof now);
    cJSON_AddStringToObject(rec, "registered_at", now);
    const char *copy[] = {"command", "seed", "git_commit", "status", "start_time", "config"};
    for (int i = 0; i < 6; i++)
      if (get(man, copy[i])) cJSON_AddItemToObject(rec, copy[i], cJSON_Duplicate(get(man, copy[i]), true));
    cJSON_AddStringToObject(rec, "artifacts", abs);
    /* the dataset: given, or recorded by the trainer (--data store:KEY) */
    const cJSON *mds = get(man, "store_dataset");
    if (ds) {
      if (!cJSON_IsString(ds)) st = bad(r, "dataset: expected a dataset key NAME-VERSION");
      cJSON *dobj = NULL;
      tn_store_res dr;
      if (st == TN_OK && load_dataset(s, ds->valuestring, &dobj, &dr) != TN_OK)
        st = bad(r, "dataset: %s", tn_last_error());
      if (st == TN_OK) {
        cJSON *d = cJSON_AddObjectToObject(rec, "dataset");
        cJSON_AddStringToObject(d, "key", ds->valuestring);
        cJSON_AddItemToObject(d, "build_id", cJSON_Duplicate(get(get(dobj, "manifest"), "build_id"), true));
      }
      cJSON_Delete(dobj);
    } else if (cJSON_IsObject(mds)) {
      cJSON_AddItemToObject(rec, "dataset", cJSON_Duplicate(mds, true));
    }
  }
  if (st == TN_OK) st = eval_path(req, "eval_before", abs, "eval_before.jsonl", rec, r);
  if (st == TN_OK) st = eval_path(req, "eval_after", abs, "eval_after.jsonl", rec, r);
  if (st == TN_OK) {
    char *text = cJSON_PrintUnformatted(rec), *existing = NULL;
    bool inserted = false;
    if (!text) st = nomem(r);
    else if ((st = s->ops->object_insert(s->db, "run", rid, text, &inserted, &existing)) != TN_OK) fail(r, st);
    if (st == TN_OK && !inserted) { /* the same run again (new evals): replace; another directory: 409 */
      cJSON *old = cJSON_Parse(existing);
      const cJSON *od = get(old, "run_dir");
      if (cJSON_IsString(od) && !strcmp(od->valuestring, abs)) {
        if ((st = s->ops->object_put(s->db, "run", rid, text)) != TN_OK) fail(r, st);
      } else {
        r->code = 409;
        st = tn_error(TN_ERR_ARG, "run %s is already registered for another directory (%s)", rid,
                      cJSON_IsString(od) ? od->valuestring : "?");
      }
      cJSON_Delete(old);
    }
    if (st == TN_OK) r->code = inserted ? 201 : 200;
    cJSON_free(text);
    free(existing);
  }
  if (st == TN_OK) { *out = rec; rec = NULL; }
  cJSON_Delete(rec);
  cJSON_Delete(man);
  free(mtext);
  free(mpath);
  free(abs);
  return st;
}

static tn_status load_run(tn_store *s, const char *id, cJSON **rec, tn_store_res *r) {
  *rec = NULL;
  if (!name_ok(id, true)) return bad(r, "run id '%s': expected letters, digits, '_', '-', '.'", id);
  char *json = NULL;
  bool found;
  tn_status st = s->ops->object_get(s->db, "run", id, &json, &found);
  if (st != TN_OK) return fail(r, st);
  if (!found) { r->code = 404; return tn_error(TN_ERR_ARG, "run %s: not found", id); }
  *rec = cJSON_Parse(json);
  free(json);
  if (!*rec) return fail(r, tn_error(TN_ERR_FORMAT, "run %s: the stored record is damaged", id));
  return TN_OK;
}

/* the rows of a metrics.jsonl (bad lines are skipped: a run may be writing its last line) */
static cJSON *read_metrics(const char *dir) {
  char *p = tn_path_join(dir, "metrics.jsonl"), *text = NULL;
  size_t n;
  cJSON *arr = cJSON_CreateArray();
  if (p && arr && tn_read_file(p, &text, &n) == TN_OK) {
    for (char *line = text, *e; line && *line; line = e ? e + 1 : NULL) {
      e = strchr(line, '\n');
      if (e) *e = 0;
      cJSON *o = cJSON_Parse(line);
      if (cJSON_IsObject(o)) cJSON_AddItemToArray(arr, o);
      else cJSON_Delete(o);
    }
  }
  tn_error_clear();
  free(text);
  free(p);
  return arr;
}

tn_status tn_store_run_get(tn_store *s, const char *id, bool with_metrics, cJSON **out, tn_store_res *r) {
  *out = NULL;
  cJSON *rec;
  TN_TRY(load_run(s, id, &rec, r));
  if (with_metrics) {
    const cJSON *dir = get(rec, "run_dir");
    char *mp = cJSON_IsString(dir) ? tn_path_join(dir->valuestring, "run_manifest.json") : NULL, *mt = NULL;
    size_t n;
    cJSON *man = mp && tn_read_file(mp, &mt, &n) == TN_OK ? cJSON_Parse(mt) : NULL;
    tn_error_clear();
    cJSON_AddItemToObject(rec, "manifest", man ? man : cJSON_CreateNull());
    cJSON_AddItemToObject(rec, "metrics", cJSON_IsString(dir) ? read_metrics(dir->valuestring) : cJSON_CreateArray());
    free(mp);
    free(mt);
  }
  *out = rec;
  r->code = 200;
  return TN_OK;
}

static tn_status list_obj(void *ctx, int64_t id, const char *json) {
  cJSON *o = cJSON_Parse(json);
  if (o) cJSON_AddItemToArray(ctx, o);
  return TN_OK;
}

tn_status tn_store_runs_list(tn_store *s, cJSON **out, tn_store_res *r) {
  cJSON *arr = cJSON_CreateArray(), *o = cJSON_CreateObject();
  if (!arr || !o) { cJSON_Delete(arr); cJSON_Delete(o); return nomem(r); }
  tn_status st = s->ops->object_list(s->db, "run", list_obj, arr);
  if (st != TN_OK) { cJSON_Delete(arr); cJSON_Delete(o); return fail(r, st); }
  cJSON_AddItemToObject(o, "runs", arr);
  *out = o;
  r->code = 200;
  return TN_OK;
}

tn_status tn_store_run_report(tn_store *s, const char *id, char **markdown, tn_store_res *r) {
  *markdown = NULL;
  cJSON *rec;
  TN_TRY(load_run(s, id, &rec, r));
  const cJSON *b = get(rec, "eval_before"), *a = get(rec, "eval_after"), *dir = get(rec, "run_dir");
  tn_status st = TN_OK;
  if (!cJSON_IsString(b) || !cJSON_IsString(a))
    st = bad(r, "run %s has no eval_before/eval_after files (register it with them, or put eval_before.jsonl and "
             "eval_after.jsonl in its directory)", id);
  char *out = NULL, *md = NULL;
  if (st == TN_OK && !(out = tn_path_join(dir->valuestring, "store_report"))) st = nomem(r);
  if (st == TN_OK) {
    tn_report_opts o;
    tn_report_opts_default(&o);
    o.before = b->valuestring;
    o.after = a->valuestring;
    o.out_dir = out;
    char title[128];
    snprintf(title, sizeof title, "run %s: before/after", id);
    o.title = title;
    if ((st = tn_report_run(&o, NULL)) != TN_OK) fail(r, st);
  }
  if (st == TN_OK && !(md = tn_path_join(out, "report.md"))) st = nomem(r);
  size_t n;
  if (st == TN_OK && (st = tn_read_file(md, markdown, &n)) != TN_OK) fail(r, st);
  if (st == TN_OK) r->code = 200;
  free(out);
  free(md);
  cJSON_Delete(rec);
  return st;
}

/* ---- served conversations (tunic serve --log-traces) ---- */
/* message content as text: a string, null (a tool-call turn) -> "", a list of parts -> their texts */
static void content_text(cJSON *m) {
  cJSON *c = tn_json_field_mut(m, "content");
  if (cJSON_IsString(c)) return;
  size_t n = 1;
  const cJSON *part;
  cJSON_ArrayForEach(part, (cJSON_IsArray(c) ? c : NULL))
    if (cJSON_IsString(get(part, "text"))) n += strlen(get(part, "text")->valuestring);
  char *t = calloc(1, n);
  if (!t) return;
  cJSON_ArrayForEach(part, (cJSON_IsArray(c) ? c : NULL))
    if (cJSON_IsString(get(part, "text"))) strcat(t, get(part, "text")->valuestring);
  cJSON *v = cJSON_CreateString(t);
  free(t);
  if (!v) return;
  if (cJSON_HasObjectItem(m, "content")) cJSON_ReplaceItemInObjectCaseSensitive(m, "content", v); /* null too */
  else cJSON_AddItemToObject(m, "content", v);
}

void tn_store_trace_hook(void *user, const char *trace_json) {
  tn_store *s = user;
  cJSON *t = cJSON_Parse(trace_json);
  if (!cJSON_IsObject(t)) { cJSON_Delete(t); tn_warn("store: a served trace that is not a JSON object was dropped"); return; }
  cJSON *meta = tn_json_field_mut(t, "metadata");
  if (!cJSON_IsObject(meta)) {
    cJSON_DeleteItemFromObjectCaseSensitive(t, "metadata");
    meta = cJSON_AddObjectToObject(t, "metadata");
  }
  const char *move[] = {"route", "tools", "usage", "choices"}; /* fields of the server's trace kept as metadata */
  for (int i = 0; meta && i < 4; i++) {
    cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(t, move[i]);
    if (v) cJSON_AddItemToObject(meta, move[i], v);
  }
  cJSON *msgs = tn_json_field_mut(t, "messages");
  cJSON *m;
  cJSON_ArrayForEach(m, (cJSON_IsArray(msgs) ? msgs : NULL)) content_text(m);
  const cJSON *model = get(t, "model");
  if (cJSON_IsString(model) && !model->valuestring[0]) cJSON_DeleteItemFromObjectCaseSensitive(t, "model");
  cJSON *ids = NULL;
  tn_store_res r;
  if (tn_store_traces_add(s, t, &ids, &r) != TN_OK) tn_warn("store: a served trace was not stored: %s", tn_last_error());
  cJSON_Delete(ids);
  cJSON_Delete(t);
}
