/* toolcall.c - read tool calls out of generated text, in the formats chat templates write them:
 * Hermes/Qwen <tool_call>{"name":..,"arguments":..}</tool_call>, Llama-3.1 JSON
 * ({"name":..,"parameters":..}, optionally after <|python_tag|>, several joined by ';'),
 * Mistral [TOOL_CALLS][{"name":..,"arguments":..}, ...], Gemma-style ```tool_code fn(a=1)```
 * blocks and gpt-oss harmony (<|channel|>commentary to=functions.NAME ... <|message|>{..}<|call|>).
 * A malformed call comes back with its error text (for a reward or penalty), never a failure.
 * Not for: executing tools (src/rl), rendering calls into prompts (the template does that). */
#define _GNU_SOURCE
#include "template/template.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *names[] = {"auto", "hermes", "llama3", "mistral", "gemma", "harmony"};

tn_status tn_tool_format_parse(const char *name, tn_tool_format *out) {
  for (int i = 0; i < 6; i++)
    if (name && !strcmp(name, names[i])) { *out = (tn_tool_format)i; return TN_OK; }
  if (name && (!strcmp(name, "qwen") || !strcmp(name, "qwen3"))) { *out = TN_TOOLS_HERMES; return TN_OK; }
  if (name && (!strcmp(name, "llama") || !strcmp(name, "llama3.1"))) { *out = TN_TOOLS_LLAMA3; return TN_OK; }
  if (name && !strcmp(name, "gpt-oss")) { *out = TN_TOOLS_HARMONY; return TN_OK; }
  return tn_error(TN_ERR_ARG, "unknown tool-call format '%s' (auto, hermes, llama3, mistral, gemma, harmony)", name ? name : "");
}
const char *tn_tool_format_name(tn_tool_format f) { return (unsigned)f < 6 ? names[f] : "auto"; }

tn_tool_format tn_tool_format_of_template(const char *t) {
  if (!t) return TN_TOOLS_AUTO;
  if (strstr(t, "<tool_call>")) return TN_TOOLS_HERMES;
  if (strstr(t, "[TOOL_CALLS]")) return TN_TOOLS_MISTRAL;
  if (strstr(t, "<|channel|>") && strstr(t, "to=functions.")) return TN_TOOLS_HARMONY;
  if (strstr(t, "<|python_tag|>") || strstr(t, "\"parameters\": ")) return TN_TOOLS_LLAMA3;
  if (strstr(t, "tool_code")) return TN_TOOLS_GEMMA;
  return TN_TOOLS_AUTO;
}

typedef struct { tn_tool_calls *o; size_t cap; char *rest; size_t rn, rcap; bool oom; } P;

static void add_text(P *p, const char *s, size_t n) {
  if (p->oom || !n) return;
  if (p->rn + n + 1 > p->rcap) {
    size_t nc = p->rcap ? 2 * p->rcap : 256;
    while (nc < p->rn + n + 1) nc *= 2;
    char *r = realloc(p->rest, nc);
    if (!r) { p->oom = true; return; }
    p->rest = r;
    p->rcap = nc;
  }
  memcpy(p->rest + p->rn, s, n);
  p->rn += n;
  p->rest[p->rn] = 0;
}
static tn_tool_call *new_call(P *p) {
  if (p->oom) return NULL;
  if (p->o->n == p->cap) {
    size_t nc = p->cap ? 2 * p->cap : 4;
    tn_tool_call *c = realloc(p->o->calls, nc * sizeof *c);
    if (!c) { p->oom = true; return NULL; }
    p->o->calls = c;
    p->cap = nc;
  }
  tn_tool_call *c = &p->o->calls[p->o->n++];
  memset(c, 0, sizeof *c);
  return c;
}
static void fail(P *p, tn_tool_call *c, const char *fmt, ...) {
  char buf[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  free(c->name); free(c->arguments); free(c->id);
  c->name = c->arguments = c->id = NULL;
  c->error = strdup(buf);
  if (!c->error) p->oom = true;
  p->o->n_errors++;
}

/* one JSON call object: name + (arguments | parameters), arguments an object or a JSON string of one */
static void call_from_json(P *p, const cJSON *j, const char *what) {
  tn_tool_call *c = new_call(p);
  if (!c) return;
  if (!cJSON_IsObject(j)) { fail(p, c, "%s: a tool call must be a JSON object", what); return; }
  const cJSON *fn = cJSON_GetObjectItemCaseSensitive(j, "function");
  if (cJSON_IsObject(fn)) j = fn;
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "arguments");
  if (!args) args = cJSON_GetObjectItemCaseSensitive(j, "parameters");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  if (!cJSON_IsString(name) || !*name->valuestring) { fail(p, c, "%s: the call has no \"name\" string", what); return; }
  cJSON *parsed = NULL;
  if (cJSON_IsString(args)) {
    parsed = cJSON_Parse(args->valuestring);
    if (!cJSON_IsObject(parsed)) { cJSON_Delete(parsed); fail(p, c, "%s: \"arguments\" of '%s' is a string that is not a JSON object", what, name->valuestring); return; }
    args = parsed;
  }
  if (args && !cJSON_IsObject(args)) { fail(p, c, "%s: \"arguments\" of '%s' must be an object", what, name->valuestring); return; }
  c->name = strdup(name->valuestring);
  c->arguments = args ? cJSON_PrintUnformatted(args) : strdup("{}");
  if (cJSON_IsString(id)) c->id = strdup(id->valuestring);
  cJSON_Delete(parsed);
  if (!c->name || !c->arguments) p->oom = true;
}

static void parse_json_calls(P *p, const char *s, size_t n, const char *what, bool allow_list) {
  char *buf = strndup(s, n);
  if (!buf) { p->oom = true; return; }
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithOpts(buf, &end, 0);
  if (!j) {
    tn_tool_call *c = new_call(p);
    if (c) fail(p, c, "%s: not valid JSON near byte %zu", what, (size_t)((end ? end : buf) - buf));
  } else if (cJSON_IsArray(j) && allow_list) {
    if (!j->child) { tn_tool_call *c = new_call(p); if (c) fail(p, c, "%s: an empty list of calls", what); }
    for (const cJSON *c = j->child; c; c = c->next) call_from_json(p, c, what);
  } else {
    call_from_json(p, j, what);
  }
  if (j && end) {
    const char *q = end;
    while (*q && isspace((unsigned char)*q)) q++;
    if (*q && p->o->n) {
      tn_tool_call *c = &p->o->calls[p->o->n - 1];
      if (!c->error) fail(p, c, "%s: text after the JSON: '%.20s'", what, q);
    }
  }
  cJSON_Delete(j);
  free(buf);
}

static void hermes(P *p, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const char *o = memmem(s + i, n - i, "<tool_call>", 11);
    if (!o) { add_text(p, s + i, n - i); return; }
    add_text(p, s + i, (size_t)(o - s) - i);
    const char *b = o + 11, *e = memmem(b, (size_t)(s + n - b), "</tool_call>", 12);
    if (!e) {
      tn_tool_call *c = new_call(p);
      if (c) fail(p, c, "<tool_call> without </tool_call>");
      return;
    }
    parse_json_calls(p, b, (size_t)(e - b), "<tool_call>", false);
    i = (size_t)(e - s) + 12;
  }
}

static void mistral(P *p, const char *s, size_t n) {
  const char *o = memmem(s, n, "[TOOL_CALLS]", 12);
  if (!o) { add_text(p, s, n); return; }
  add_text(p, s, (size_t)(o - s));
  const char *b = o + 12, *e = s + n;
  const char *stop = memmem(b, (size_t)(e - b), "</s>", 4);
  if (stop) e = stop;
  while (b < e && isspace((unsigned char)*b)) b++;
  if (b < e && *b != '[' && *b != '{') { /* newer format: [TOOL_CALLS]name[ARGS]{...} */
    const char *a = memmem(b, (size_t)(e - b), "[ARGS]", 6);
    tn_tool_call *c = new_call(p);
    if (!c) return;
    if (!a) { fail(p, c, "[TOOL_CALLS]name without [ARGS]"); return; }
    cJSON *args = cJSON_ParseWithLength(a + 6, (size_t)(e - a - 6));
    if (!cJSON_IsObject(args)) { cJSON_Delete(args); fail(p, c, "[ARGS] is not a JSON object"); return; }
    c->name = strndup(b, (size_t)(a - b));
    c->arguments = cJSON_PrintUnformatted(args);
    cJSON_Delete(args);
    return;
  }
  parse_json_calls(p, b, (size_t)(e - b), "[TOOL_CALLS]", true);
}

static void llama3(P *p, const char *s, size_t n) {
  const char *tag = memmem(s, n, "<|python_tag|>", 14);
  const char *b = s, *e = s + n;
  if (tag) { add_text(p, s, (size_t)(tag - s)); b = tag + 14; }
  const char *eot = memmem(b, (size_t)(e - b), "<|eom_id|>", 10);
  if (!eot) eot = memmem(b, (size_t)(e - b), "<|eot_id|>", 10);
  if (eot) e = eot;
  while (b < e && isspace((unsigned char)*b)) b++;
  if (b >= e || *b != '{') { add_text(p, b, (size_t)(e - b)); return; }
  /* one or more JSON objects separated by ';' */
  while (b < e) {
    char *buf = strndup(b, (size_t)(e - b));
    if (!buf) { p->oom = true; return; }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(buf, &end, 0);
    if (!j) {
      tn_tool_call *c = new_call(p);
      if (c) fail(p, c, "Llama-3 tool call: not valid JSON");
      free(buf);
      return;
    }
    call_from_json(p, j, "Llama-3 tool call");
    cJSON_Delete(j);
    b += end - buf;
    free(buf);
    while (b < e && (isspace((unsigned char)*b) || *b == ';')) b++;
    if (b < e && *b != '{') { add_text(p, b, (size_t)(e - b)); return; }
  }
}

/* name(a=1, b="x") -> {"a":1,"b":"x"}; values are JSON-ish Python literals */
static void python_call(P *p, const char *s, size_t n) {
  tn_tool_call *c = new_call(p);
  if (!c) return;
  while (n && isspace((unsigned char)*s)) { s++; n--; }
  while (n && isspace((unsigned char)s[n - 1])) n--;
  size_t i = 0;
  while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.')) i++;
  if (!i || i >= n || s[i] != '(' || s[n - 1] != ')') { /* s holds n bytes, not NUL-terminated */
    fail(p, c, "tool_code: expected name(arg=value, ...), got '%.*s'", (int)(n < 40 ? n : 40), s);
    return;
  }
  cJSON *args = cJSON_CreateObject();
  size_t k = i + 1, end = n - 1;
  while (k < end) {
    while (k < end && (isspace((unsigned char)s[k]) || s[k] == ',')) k++;
    if (k >= end) break;
    size_t ks = k;
    while (k < end && (isalnum((unsigned char)s[k]) || s[k] == '_')) k++;
    size_t kl = k - ks;
    while (k < end && isspace((unsigned char)s[k])) k++;
    if (!kl || k >= end || s[k] != '=') { cJSON_Delete(args); fail(p, c, "tool_code: arguments must be name=value"); return; }
    k++;
    while (k < end && isspace((unsigned char)s[k])) k++;
    /* value: up to the next top-level ',' */
    size_t vs = k;
    int depth = 0;
    char q = 0;
    for (; k < end; k++) {
      char ch = s[k];
      if (q) { if (ch == '\\') k++; else if (ch == q) q = 0; continue; }
      if (ch == '"' || ch == '\'') q = ch;
      else if (ch == '[' || ch == '{' || ch == '(') depth++;
      else if (ch == ']' || ch == '}' || ch == ')') depth--;
      else if (ch == ',' && !depth) break;
    }
    char *v = strndup(s + vs, k - vs);
    if (!v) { cJSON_Delete(args); p->oom = true; return; }
    size_t vl = strlen(v);
    while (vl && isspace((unsigned char)v[vl - 1])) v[--vl] = 0;
    if (vl >= 2 && v[0] == '\'' && v[vl - 1] == '\'') { v[0] = v[vl - 1] = '"'; }
    if (!strcmp(v, "True")) strcpy(v, "true");
    else if (!strcmp(v, "False")) strcpy(v, "false");
    else if (!strcmp(v, "None")) strcpy(v, "null");
    cJSON *jv = cJSON_Parse(v);
    free(v);
    char *key = strndup(s + ks, kl);
    if (!jv || !key) { free(key); cJSON_Delete(jv); cJSON_Delete(args); fail(p, c, "tool_code: a value is not a literal"); return; }
    cJSON_AddItemToObject(args, key, jv);
    free(key);
  }
  c->name = strndup(s, i);
  c->arguments = cJSON_PrintUnformatted(args);
  cJSON_Delete(args);
}

static void gemma(P *p, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const char *o = memmem(s + i, n - i, "```tool_code", 12);
    if (!o) { add_text(p, s + i, n - i); return; }
    add_text(p, s + i, (size_t)(o - s) - i);
    const char *b = o + 12, *e = memmem(b, (size_t)(s + n - b), "```", 3);
    if (!e) { tn_tool_call *c = new_call(p); if (c) fail(p, c, "```tool_code block not closed"); return; }
    /* one call per line */
    const char *l = b;
    while (l < e) {
      const char *nl = memchr(l, '\n', (size_t)(e - l));
      const char *le = nl ? nl : e;
      const char *q = l;
      while (q < le && isspace((unsigned char)*q)) q++;
      if (q < le) python_call(p, q, (size_t)(le - q));
      l = nl ? nl + 1 : e;
    }
    i = (size_t)(e - s) + 3;
  }
}

/* <|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|> */
static void harmony(P *p, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const char *t = memmem(s + i, n - i, "to=functions.", 13);
    const char *fin = memmem(s + i, n - i, "<|channel|>final<|message|>", 27);
    if (!t) {
      if (fin) {
        const char *b = fin + 27, *e = memmem(b, (size_t)(s + n - b), "<|", 2);
        add_text(p, b, e ? (size_t)(e - b) : (size_t)(s + n - b));
      }
      return;
    }
    const char *nm = t + 13, *ne = nm;
    while (ne < s + n && !isspace((unsigned char)*ne) && *ne != '<') ne++;
    const char *msg = memmem(ne, (size_t)(s + n - ne), "<|message|>", 11);
    tn_tool_call *c = new_call(p);
    if (!c) return;
    if (!msg) { fail(p, c, "harmony: call to '%.*s' has no <|message|>", (int)(ne - nm), nm); return; }
    const char *b = msg + 11, *e = memmem(b, (size_t)(s + n - b), "<|call|>", 8);
    const char *e2 = e ? e : memmem(b, (size_t)(s + n - b), "<|end|>", 7);
    if (!e2) e2 = s + n;
    cJSON *args = cJSON_ParseWithLength(b, (size_t)(e2 - b));
    if (!cJSON_IsObject(args)) { cJSON_Delete(args); fail(p, c, "harmony: arguments of '%.*s' are not a JSON object", (int)(ne - nm), nm); }
    else {
      c->name = strndup(nm, (size_t)(ne - nm));
      c->arguments = cJSON_PrintUnformatted(args);
      cJSON_Delete(args);
    }
    i = (size_t)(e2 - s) + (e ? 8 : e2 < s + n ? 7 : 0);
    if (e2 == s + n) break;
  }
}

tn_status tn_tool_calls_parse(const char *text, size_t len, tn_tool_format fmt, tn_tool_calls *out) {
  memset(out, 0, sizeof *out);
  if (!text) text = "";
  P p = {.o = out};
  if (fmt == TN_TOOLS_AUTO) {
    if (memmem(text, len, "<tool_call>", 11)) fmt = TN_TOOLS_HERMES;
    else if (memmem(text, len, "[TOOL_CALLS]", 12)) fmt = TN_TOOLS_MISTRAL;
    else if (memmem(text, len, "to=functions.", 13)) fmt = TN_TOOLS_HARMONY;
    else if (memmem(text, len, "```tool_code", 12)) fmt = TN_TOOLS_GEMMA;
    else if (memmem(text, len, "<|python_tag|>", 14)) fmt = TN_TOOLS_LLAMA3;
    else {
      size_t k = 0;
      while (k < len && isspace((unsigned char)text[k])) k++;
      if (k < len && text[k] == '{' && memmem(text, len, "\"name\"", 6)) fmt = TN_TOOLS_LLAMA3;
    }
  }
  switch (fmt) {
  case TN_TOOLS_HERMES: hermes(&p, text, len); break;
  case TN_TOOLS_MISTRAL: mistral(&p, text, len); break;
  case TN_TOOLS_LLAMA3: llama3(&p, text, len); break;
  case TN_TOOLS_GEMMA: gemma(&p, text, len); break;
  case TN_TOOLS_HARMONY: harmony(&p, text, len); break;
  default: add_text(&p, text, len); break;
  }
  out->format = out->n ? fmt : TN_TOOLS_AUTO;
  /* trimmed content */
  const char *r = p.rest ? p.rest : "";
  size_t rn = p.rn;
  while (rn && isspace((unsigned char)*r)) { r++; rn--; }
  while (rn && isspace((unsigned char)r[rn - 1])) rn--;
  out->content = strndup(r, rn);
  free(p.rest);
  if (p.oom || !out->content) {
    tn_tool_calls_free(out);
    return tn_error(TN_ERR_NOMEM, "out of memory");
  }
  return TN_OK;
}

void tn_tool_calls_free(tn_tool_calls *tc) {
  if (!tc) return;
  for (size_t i = 0; i < tc->n; i++) {
    free(tc->calls[i].name); free(tc->calls[i].arguments); free(tc->calls[i].id); free(tc->calls[i].error);
  }
  free(tc->calls);
  free(tc->content);
  memset(tc, 0, sizeof *tc);
}

cJSON *tn_tool_calls_to_message(const tn_tool_calls *tc) {
  cJSON *m = cJSON_CreateObject();
  cJSON_AddStringToObject(m, "role", "assistant");
  cJSON_AddStringToObject(m, "content", tc->content ? tc->content : "");
  if (tc->n) {
    cJSON *arr = cJSON_AddArrayToObject(m, "tool_calls");
    for (size_t i = 0; i < tc->n; i++) {
      const tn_tool_call *c = &tc->calls[i];
      cJSON *o = cJSON_CreateObject();
      if (c->error) {
        cJSON_AddStringToObject(o, "error", c->error);
      } else {
        if (c->id) cJSON_AddStringToObject(o, "id", c->id);
        cJSON_AddStringToObject(o, "type", "function");
        cJSON *f = cJSON_AddObjectToObject(o, "function");
        cJSON_AddStringToObject(f, "name", c->name);
        cJSON *a = cJSON_Parse(c->arguments);
        cJSON_AddItemToObject(f, "arguments", a ? a : cJSON_CreateObject());
      }
      cJSON_AddItemToArray(arr, o);
    }
  }
  return m;
}
