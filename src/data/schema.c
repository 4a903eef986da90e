/* schema.c - data sets as their authors publish them: the one recogniser every reader (SFT,
 * preference pairs, prompts) goes through. tn_data_read reads JSONL or a .json array, applies
 * --field-map renames, recognises each row's schema (GSM8K, MATH, alpaca, ShareGPT/OpenThoughts,
 * UltraFeedback-binarized, Argilla/distilabel DPO, Intel orca DPO pairs, TRL's preference and prompt-completion formats,
 * messages, text, Tunix), checks that the whole file is in one schema, reports it once, and
 * rewrites each row in place into the native form of the reader (data.h, pref.h, prompts.h).
 * Errors name FILE:LINE and the schema expected.
 * Not for: tokenising or chat templates (the readers do that). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"
#include "base/json.h"

typedef enum {
  S_NONE, S_MESSAGES, S_PROMPT_COMPLETION, S_TEXT, S_TUNIX, S_PROMPT, S_GSM8K, S_MATH, S_ALPACA, S_SHAREGPT,
  S_ULTRAFEEDBACK, S_ARGILLA_DPO, S_ORCA_DPO, S_TRL_PREF, S_TRL_PREF_CONV, S_TRL_PREF_IMPLICIT, S_COUNT
} schema;

static const struct {
  const char *name, *fields;
} SCHEMAS[S_COUNT] = {
  [S_NONE] = {"?", ""},
  [S_MESSAGES] = {"messages", "messages [{role, content}]"},
  [S_PROMPT_COMPLETION] = {"prompt-completion", "prompt, completion"},
  [S_TEXT] = {"text", "text"},
  [S_TUNIX] = {"tunix_sft", "prompts (Gemma turns)"},
  [S_PROMPT] = {"prompt", "prompt"},
  [S_GSM8K] = {"gsm8k", "question, answer with \"#### N\""},
  [S_MATH] = {"math", "problem, solution with \\boxed{}"},
  [S_ALPACA] = {"alpaca", "instruction, input, output"},
  [S_SHAREGPT] = {"sharegpt", "conversations [{from, value}] with human/gpt/system"},
  [S_ULTRAFEEDBACK] = {"ultrafeedback", "prompt, chosen and rejected as full conversations"},
  [S_ARGILLA_DPO] = {"argilla-dpo", "instruction, chosen_response, rejected_response"},
  [S_ORCA_DPO] = {"orca-dpo", "system, question (or input), chosen, rejected"},
  [S_TRL_PREF] = {"trl-preference", "prompt, chosen, rejected (strings)"},
  [S_TRL_PREF_CONV] = {"trl-preference-conversational", "prompt, chosen, rejected (message lists)"},
  [S_TRL_PREF_IMPLICIT] = {"trl-preference-implicit-prompt", "chosen, rejected (message lists)"},
};

static cJSON *get(cJSON *j, const char *k) { return tn_json_field_mut(j, k); }
static bool str(cJSON *j, const char *k) { return cJSON_IsString(get(j, k)); }
static bool arr(cJSON *j, const char *k) { return cJSON_IsArray(get(j, k)); }

static schema recognise(cJSON *j) {
  if (arr(j, "conversations")) return S_SHAREGPT;
  if (get(j, "chosen_response") && get(j, "rejected_response")) return S_ARGILLA_DPO;
  if (get(j, "chosen") && get(j, "rejected")) {
    if (arr(j, "chosen") && arr(j, "rejected")) { /* one list and one string: the pair reader says so */
      if (arr(j, "prompt")) return S_TRL_PREF_CONV;
      return get(j, "prompt") ? S_ULTRAFEEDBACK : S_TRL_PREF_IMPLICIT;
    }
    if (!get(j, "prompt") && (str(j, "question") || str(j, "input"))) return S_ORCA_DPO;
    return S_TRL_PREF;
  }
  if (get(j, "messages")) return S_MESSAGES;
  if (get(j, "prompts")) return S_TUNIX;
  if (!get(j, "prompt") && str(j, "question") && (str(j, "answer") || cJSON_IsNumber(get(j, "answer")))) return S_GSM8K;
  if (str(j, "problem") && str(j, "solution")) return S_MATH;
  if (str(j, "instruction") && get(j, "output")) return S_ALPACA;
  if (get(j, "prompt") && (get(j, "completion") || get(j, "response"))) return S_PROMPT_COMPLETION;
  if (get(j, "text")) return S_TEXT;
  if (get(j, "prompt")) return S_PROMPT;
  return S_NONE;
}

/* a data set's own schema (its rows are not mixed with others'); tunic's native forms may mix */
static bool published(schema s) { return s >= S_GSM8K && s <= S_ORCA_DPO; }

/* which schemas each reader takes */
static bool usable(schema s, tn_data_use u) {
  switch (u) {
  case TN_DATA_SFT: return s != S_PROMPT;
  case TN_DATA_PREF: return s == S_ULTRAFEEDBACK || s == S_ARGILLA_DPO || s == S_ORCA_DPO || s == S_TRL_PREF ||
                            s == S_TRL_PREF_CONV || s == S_TRL_PREF_IMPLICIT;
  case TN_DATA_PROMPTS: return s != S_TEXT && s != S_TUNIX;
  }
  return false;
}

static const char *use_name(tn_data_use u) {
  return u == TN_DATA_SFT ? "SFT" : u == TN_DATA_PREF ? "preference" : "prompt";
}

static void set(cJSON *j, const char *k, cJSON *v) {
  if (cJSON_HasObjectItem(j, k)) cJSON_ReplaceItemInObjectCaseSensitive(j, k, v); /* null too */
  else cJSON_AddItemToObject(j, k, v);
}
static void set_str(cJSON *j, const char *k, const char *v) { set(j, k, cJSON_CreateString(v)); }
static void set_dup(cJSON *j, const char *k, cJSON *v) { set(j, k, cJSON_Duplicate(v, true)); }

/* GSM8K: the reference is what follows the last "####", trimmed, thousands commas dropped */
static bool gsm8k_ref(const char *a, char *out, size_t n) {
  const char *h = NULL;
  for (const char *p = strstr(a, "####"); p; p = strstr(p + 4, "####")) h = p;
  if (!h) return false;
  h += 4;
  while (isspace((unsigned char)*h)) h++;
  size_t k = 0;
  for (; *h && *h != '\n' && k + 1 < n; h++)
    if (*h != ',') out[k++] = *h;
  while (k && isspace((unsigned char)out[k - 1])) k--;
  out[k] = 0;
  return k > 0;
}

/* MATH: the content of the last \boxed{...} (braces balanced); also \fbox{} */
static char *boxed(const char *s) {
  const char *last = NULL;
  for (const char *p = strstr(s, "\\boxed"); p; p = strstr(p + 1, "\\boxed")) last = p;
  if (!last)
    for (const char *p = strstr(s, "\\fbox"); p; p = strstr(p + 1, "\\fbox")) last = p;
  if (!last) return NULL;
  const char *b = strchr(last, '{');
  if (!b) return NULL;
  int depth = 0;
  for (const char *p = b; *p; p++) {
    if (*p == '{') depth++;
    else if (*p == '}' && --depth == 0) return strndup(b + 1, (size_t)(p - b - 1));
  }
  return NULL;
}

static const char *sharegpt_role(const char *from) {
  if (!strcmp(from, "human") || !strcmp(from, "user")) return "user";
  if (!strcmp(from, "gpt") || !strcmp(from, "assistant") || !strcmp(from, "chatgpt") || !strcmp(from, "bard") ||
      !strcmp(from, "bing") || !strcmp(from, "model"))
    return "assistant";
  if (!strcmp(from, "system")) return "system";
  if (!strcmp(from, "tool") || !strcmp(from, "function_response") || !strcmp(from, "observation")) return "tool";
  return NULL;
}

/* conversations [{from, value}] (+ an optional top-level "system") -> messages [{role, content}] */
static tn_status sharegpt_msgs(cJSON *j, const char *where, cJSON **out) {
  cJSON *msgs = cJSON_CreateArray(), *sys = get(j, "system"), *it;
  if (cJSON_IsString(sys) && *sys->valuestring) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", sys->valuestring);
    cJSON_AddItemToArray(msgs, m);
  }
  int i = 0;
  cJSON_ArrayForEach(it, get(j, "conversations")) {
    cJSON *from = get(it, "from"), *val = get(it, "value");
    if (!from) from = get(it, "role");
    if (!val) val = get(it, "content");
    const char *role = cJSON_IsString(from) ? sharegpt_role(from->valuestring) : NULL;
    if (!role || !cJSON_IsString(val)) {
      cJSON_Delete(msgs);
      return tn_error(TN_ERR_FORMAT,
                      "%s: sharegpt: conversations[%d] needs a string \"from\" (human, gpt or system) and a string \"value\"%s%s%s",
                      where, i, cJSON_IsString(from) ? " (got \"" : "", cJSON_IsString(from) ? from->valuestring : "",
                      cJSON_IsString(from) ? "\")" : "");
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", val->valuestring);
    cJSON_AddItemToArray(msgs, m);
    i++;
  }
  if (i == 0) { cJSON_Delete(msgs); return tn_error(TN_ERR_FORMAT, "%s: sharegpt: \"conversations\" is empty", where); }
  *out = msgs;
  return TN_OK;
}

static bool is_role(cJSON *m, const char *role) {
  cJSON *r = get(m, "role");
  return cJSON_IsString(r) && !strcmp(r->valuestring, role);
}

/* messages -> a prompt: drop the trailing assistant turn(s), keeping the last one's text as the
 * reference answer when the row has none */
static void msgs_to_prompt(cJSON *j, cJSON *msgs) {
  int n = cJSON_GetArraySize(msgs);
  bool ref = get(j, "answer") || get(j, "expected_answer");
  while (n > 1 && is_role(cJSON_GetArrayItem(msgs, n - 1), "assistant")) {
    cJSON *m = cJSON_DetachItemFromArray(msgs, n - 1);
    cJSON *c = get(m, "content");
    if (!ref && cJSON_IsString(c)) { set_str(j, "answer", c->valuestring); ref = true; }
    cJSON_Delete(m);
    n--;
  }
  set(j, "messages", msgs);
}

static tn_status normalise(cJSON *j, schema s, tn_data_use u, const char *where) {
  char ref[256];
  switch (s) {
  case S_GSM8K: {
    cJSON *a = get(j, "answer");
    char *ans = cJSON_IsString(a) ? tn_strdup(a->valuestring) : NULL;
    if (u == TN_DATA_SFT) {
      if (!ans) return tn_error(TN_ERR_FORMAT, "%s: gsm8k: \"answer\" must be the worked solution (a string)", where);
      set_str(j, "prompt", get(j, "question")->valuestring);
      set_str(j, "completion", ans);
    } else {
      set_str(j, "prompt", get(j, "question")->valuestring);
      if (ans) {
        if (!gsm8k_ref(ans, ref, sizeof ref)) {
          free(ans);
          return tn_error(TN_ERR_FORMAT, "%s: gsm8k: \"answer\" has no final \"#### N\" line (schema: %s)", where,
                          SCHEMAS[S_GSM8K].fields);
        }
        set_str(j, "solution", ans);
        set_str(j, "answer", ref);
      }
    }
    free(ans);
    return TN_OK;
  }
  case S_MATH: {
    set_str(j, "prompt", get(j, "problem")->valuestring);
    if (u == TN_DATA_SFT) set_str(j, "completion", get(j, "solution")->valuestring);
    else if (!get(j, "answer")) {
      char *b = boxed(get(j, "solution")->valuestring);
      if (!b) return tn_error(TN_ERR_FORMAT, "%s: math: \"solution\" has no \\boxed{...} answer (schema: %s)", where, SCHEMAS[S_MATH].fields);
      set_str(j, "answer", b);
      free(b);
    }
    return TN_OK;
  }
  case S_ALPACA: {
    cJSON *in = get(j, "input"), *out = get(j, "output");
    if ((in && !cJSON_IsString(in) && !cJSON_IsNull(in)) || !cJSON_IsString(out))
      return tn_error(TN_ERR_FORMAT, "%s: alpaca: \"input\" and \"output\" must be strings (schema: %s)", where, SCHEMAS[S_ALPACA].fields);
    const char *ins = get(j, "instruction")->valuestring, *x = cJSON_IsString(in) ? in->valuestring : "";
    size_t n = strlen(ins) + strlen(x) + 3;
    char *p = malloc(n);
    snprintf(p, n, "%s%s%s", ins, *x ? "\n\n" : "", x);
    set_str(j, "prompt", p);
    free(p);
    if (u == TN_DATA_SFT) set_str(j, "completion", out->valuestring);
    else if (!get(j, "answer")) set_str(j, "answer", out->valuestring);
    return TN_OK;
  }
  case S_SHAREGPT: {
    cJSON *msgs = NULL;
    TN_TRY(sharegpt_msgs(j, where, &msgs));
    if (u == TN_DATA_PROMPTS) msgs_to_prompt(j, msgs);
    else set(j, "messages", msgs);
    return TN_OK;
  }
  case S_ULTRAFEEDBACK: case S_TRL_PREF_CONV: case S_TRL_PREF_IMPLICIT: {
    cJSON *p = get(j, "prompt"), *ch = get(j, "chosen");
    if (!cJSON_IsArray(ch) || !cJSON_IsArray(get(j, "rejected")))
      return tn_error(TN_ERR_FORMAT, "%s: %s: \"chosen\" and \"rejected\" must both be message lists (schema: %s)", where,
                      SCHEMAS[s].name, SCHEMAS[s].fields);
    /* UltraFeedback repeats the prompt as the first user turn of both conversations */
    bool full = cJSON_GetArraySize(ch) > 0 && is_role(cJSON_GetArrayItem(ch, 0), "user");
    if (s == S_ULTRAFEEDBACK && !cJSON_IsString(p))
      return tn_error(TN_ERR_FORMAT, "%s: ultrafeedback: \"prompt\" must be a string (schema: %s)", where, SCHEMAS[s].fields);
    if (u == TN_DATA_PREF) {
      if (s == S_ULTRAFEEDBACK && full) cJSON_DeleteItemFromObjectCaseSensitive(j, "prompt"); /* implicit prompt */
      return TN_OK;
    }
    cJSON *msgs = cJSON_CreateArray(), *it;
    if (s == S_TRL_PREF_CONV) cJSON_ArrayForEach(it, p) cJSON_AddItemToArray(msgs, cJSON_Duplicate(it, true));
    else if (s == S_ULTRAFEEDBACK && !full) {
      cJSON *m = cJSON_CreateObject();
      cJSON_AddStringToObject(m, "role", "user");
      cJSON_AddStringToObject(m, "content", p->valuestring);
      cJSON_AddItemToArray(msgs, m);
    }
    cJSON_ArrayForEach(it, ch) cJSON_AddItemToArray(msgs, cJSON_Duplicate(it, true));
    if (u == TN_DATA_PROMPTS && s == S_ULTRAFEEDBACK) { cJSON_Delete(msgs); return TN_OK; } /* the string prompt */
    cJSON_DeleteItemFromObjectCaseSensitive(j, "prompt");
    if (u == TN_DATA_PROMPTS) msgs_to_prompt(j, msgs);
    else set(j, "messages", msgs);
    return TN_OK;
  }
  case S_ARGILLA_DPO: {
    cJSON *ins = get(j, "instruction"), *c = get(j, "chosen_response"), *r = get(j, "rejected_response");
    if (!ins) ins = get(j, "prompt");
    if (!cJSON_IsString(ins) || !cJSON_IsString(c) || !cJSON_IsString(r))
      return tn_error(TN_ERR_FORMAT, "%s: argilla-dpo: needs strings (schema: %s)", where, SCHEMAS[s].fields);
    set_str(j, "prompt", ins->valuestring);
    if (u == TN_DATA_PREF) { set_dup(j, "chosen", c); set_dup(j, "rejected", r); }
    else if (u == TN_DATA_SFT) set_dup(j, "completion", c);
    return TN_OK;
  }
  case S_ORCA_DPO: { /* Intel/orca_dpo_pairs: the question (and a system prompt) with string responses */
    cJSON *q = str(j, "question") ? get(j, "question") : get(j, "input"), *sys = get(j, "system");
    cJSON *c = get(j, "chosen"), *r = get(j, "rejected");
    if (!cJSON_IsString(c) || !cJSON_IsString(r))
      return tn_error(TN_ERR_FORMAT, "%s: orca-dpo: \"chosen\" and \"rejected\" must be strings (schema: %s)", where, SCHEMAS[s].fields);
    if (!cJSON_IsString(sys) || !*sys->valuestring) {
      set_str(j, "prompt", q->valuestring);
      if (u == TN_DATA_SFT) set_dup(j, "completion", c);
      return TN_OK;
    }
    cJSON *pm = cJSON_CreateArray(), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", sys->valuestring);
    cJSON_AddItemToArray(pm, m);
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", q->valuestring);
    cJSON_AddItemToArray(pm, m);
    if (u == TN_DATA_PROMPTS) { set(j, "messages", pm); return TN_OK; }
    for (int k = 0; k < (u == TN_DATA_SFT ? 1 : 2); k++) { /* the responses as assistant turns */
      cJSON *am = cJSON_CreateObject();
      cJSON_AddStringToObject(am, "role", "assistant");
      cJSON_AddStringToObject(am, "content", (k ? r : c)->valuestring);
      if (u == TN_DATA_SFT) { cJSON_AddItemToArray(pm, am); break; } /* SFT: system, user, chosen */
      cJSON *a = cJSON_CreateArray();
      cJSON_AddItemToArray(a, am);
      set(j, k ? "rejected" : "chosen", a);
    }
    set(j, u == TN_DATA_SFT ? "messages" : "prompt", pm);
    return TN_OK;
  }
  case S_TRL_PREF:
    if (u == TN_DATA_SFT) set_dup(j, "completion", get(j, "chosen"));
    return TN_OK;
  default: /* TRL's conversational prompt(-completion) rows: the prompt's messages */
    if (u == TN_DATA_PROMPTS && arr(j, "prompt") && !get(j, "messages")) {
      set_dup(j, "messages", get(j, "prompt"));
      cJSON_DeleteItemFromObjectCaseSensitive(j, "prompt");
    }
    return TN_OK;
  }
}

/* --field-map prompt=question,completion=answer: each target takes the source field's value */
static tn_status apply_map(cJSON *j, const char *map, const char *where) {
  const char *p = map;
  while (*p) {
    const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p), *eq = memchr(p, '=', (size_t)(end - p));
    if (!eq || eq == p || eq + 1 == end)
      return tn_error(TN_ERR_ARG, "--field-map: '%.*s' is not TARGET=SOURCE (e.g. prompt=question,completion=answer)",
                      (int)(end - p), p);
    char dst[128], src[128];
    snprintf(dst, sizeof dst, "%.*s", (int)(eq - p), p);
    snprintf(src, sizeof src, "%.*s", (int)(end - eq - 1), eq + 1);
    cJSON *v = get(j, src);
    if (!v) return tn_error(TN_ERR_FORMAT, "%s: --field-map %s=%s: the row has no field \"%s\"", where, dst, src, src);
    if (strcmp(dst, src)) {
      cJSON *d = cJSON_Duplicate(v, true);
      cJSON_DeleteItemFromObjectCaseSensitive(j, src);
      set(j, dst, d);
    }
    p = comma ? comma + 1 : end;
  }
  return TN_OK;
}

typedef struct {
  tn_data_use use;
  bool quiet;
  const char *map, *path;
  schema first;
  int first_line;
  tn_jsonl_fn fn;
  void *ctx;
} rd_ctx;

static void keys(cJSON *j, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
  cJSON *it;
  cJSON_ArrayForEach(it, j) {
    int w = snprintf(buf + k, n - k, "%s%s", k ? ", " : "", it->string);
    if (w < 0 || (size_t)w >= n - k) break;
    k += (size_t)w;
  }
}

static tn_status row(void *vctx, cJSON *j, const char *where) {
  rd_ctx *c = vctx;
  tn_status s = c->map && *c->map ? apply_map(j, c->map, where) : TN_OK;
  schema sc = s == TN_OK ? recognise(j) : S_NONE;
  if (s == TN_OK && sc == S_NONE) {
    char k[200];
    keys(j, k, sizeof k);
    s = tn_error(TN_ERR_FORMAT,
                 "%s: no known %s schema (fields: %s); expected one of: messages, prompt+completion, text, gsm8k "
                 "(question, answer), math (problem, solution), alpaca (instruction, input, output), sharegpt "
                 "(conversations), preference pairs (prompt?, chosen, rejected), argilla-dpo (instruction, "
                 "chosen_response, rejected_response); or map fields with --field-map prompt=FIELD,...",
                 where, use_name(c->use), k);
  } else if (s == TN_OK && !usable(sc, c->use)) {
    s = tn_error(TN_ERR_FORMAT, "%s: schema %s (%s) has no %s data%s", where, SCHEMAS[sc].name, SCHEMAS[sc].fields,
                 use_name(c->use),
                 c->use == TN_DATA_PREF ? "; expected \"prompt\", \"chosen\" and \"rejected\" (strings or message lists)"
                 : sc == S_PROMPT       ? "; a \"prompt\" needs a \"completion\" (or give \"messages\" or \"text\")"
                                        : "");
  } else if (s == TN_OK && c->first != S_NONE && sc != c->first && (published(sc) || published(c->first))) {
    s = tn_error(TN_ERR_FORMAT, "%s: a %s row (%s) in a file whose rows are %s (%s; from line %d)", where,
                 SCHEMAS[sc].name, SCHEMAS[sc].fields, SCHEMAS[c->first].name, SCHEMAS[c->first].fields, c->first_line);
  }
  if (s == TN_OK && c->first == S_NONE) {
    c->first = sc;
    const char *colon = strrchr(where, ':');
    c->first_line = colon ? atoi(colon + 1) : 0;
    if (!c->quiet) tn_info("%s: schema %s (%s)", c->path, SCHEMAS[sc].name, SCHEMAS[sc].fields);
  }
  if (s == TN_OK) s = normalise(j, sc, c->use, where);
  if (s != TN_OK) { cJSON_Delete(j); return s; }
  return c->fn(c->ctx, j, where);
}

tn_status tn_data_read(const char *path, int use, const char *field_map, tn_jsonl_fn fn, void *ctx) {
  rd_ctx c = {.use = (tn_data_use)(use & 0xff), .quiet = (use & TN_DATA_QUIET) != 0, .map = field_map, .path = path,
              .fn = fn, .ctx = ctx};
  return tn_jsonl_read(path, row, &c);
}
