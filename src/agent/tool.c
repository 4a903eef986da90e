/* tool.c - the toolset (tool.h): built-in tools by name, MCP servers' tools, their OpenAI
 * schemas, calls by name with a timeout and an output cap, tool messages for the episode loop.
 * Not for: the calculator's parser (calc.c), the sandbox (sandbox.c), MCP (mcp.c). */
#include <string.h>
#include "agent/tool_int.h"

enum { K_CALC, K_PYTHON, K_MCP };

typedef struct {
  char *name;
  int kind;
  tn_mcp *mcp; /* borrowed from the toolset's list */
} entry;

struct tn_toolset {
  tn_tool_opts o;
  entry *e;
  size_t n;
  tn_mcp **mcps;
  size_t n_mcp;
  cJSON *schemas;
};

void tn_tool_opts_default(tn_tool_opts *o) {
  memset(o, 0, sizeof *o);
  o->timeout_s = 10;
  o->output_cap = 16384;
  o->python = "/usr/bin/python3";
  o->python_mem_mb = 1024;
  o->python_nproc = 16;
  o->python_fsize_mb = 16;
  o->python_nofile = 64;
  o->calc_max_digits = 10000;
}

static const char *CALC_SCHEMA =
    "{\"type\":\"function\",\"function\":{\"name\":\"calculator\",\"description\":\"Evaluate an arithmetic "
    "expression exactly: + - * / % ^, parentheses, decimals, big integers.\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"expression\":{\"type\":\"string\",\"description\":\"the expression, e.g. 123 * 456\"}},"
    "\"required\":[\"expression\"]}}}";
static const char *PYTHON_SCHEMA =
    "{\"type\":\"function\",\"function\":{\"name\":\"python\",\"description\":\"Run a Python 3 program in a "
    "sandbox (no network, a fresh empty directory, time and memory limits) and return what it prints.\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"description\":"
    "\"the program; print the results\"}},\"required\":[\"code\"]}}}";

static tn_status add_entry(tn_toolset *ts, const char *name, int kind, tn_mcp *m, cJSON *schema) {
  if (tn_toolset_has(ts, name)) {
    cJSON_Delete(schema);
    return tn_error(TN_ERR_ARG, "tool '%s' is listed twice", name);
  }
  entry *ne = realloc(ts->e, (ts->n + 1) * sizeof *ne);
  if (!ne) { cJSON_Delete(schema); return TN_ERR_NOMEM; }
  ts->e = ne;
  ne[ts->n].name = strdup(name);
  ne[ts->n].kind = kind;
  ne[ts->n].mcp = m;
  if (!ne[ts->n].name) { cJSON_Delete(schema); return TN_ERR_NOMEM; }
  ts->n++;
  cJSON_AddItemToArray(ts->schemas, schema);
  return TN_OK;
}

tn_status tn_toolset_create(tn_toolset **out, const char *names, const tn_tool_opts *o) {
  *out = NULL;
  tn_toolset *ts = calloc(1, sizeof *ts);
  if (!ts) return TN_ERR_NOMEM;
  if (o) ts->o = *o;
  else tn_tool_opts_default(&ts->o);
  ts->schemas = cJSON_CreateArray();
  if (!ts->schemas) { free(ts); return TN_ERR_NOMEM; }
  const char *p = names ? names : "";
  tn_status st = TN_OK;
  while (*p && st == TN_OK) {
    const char *q = p;
    while (*q && *q != ',') q++;
    char nm[64];
    size_t n = (size_t)(q - p);
    while (n && (*p == ' ')) { p++; n--; }
    while (n && p[n - 1] == ' ') n--;
    if (n >= sizeof nm) n = sizeof nm - 1;
    memcpy(nm, p, n);
    nm[n] = 0;
    if (!n) { /* empty item: skip */ }
    else if (!strcmp(nm, "calculator")) st = add_entry(ts, nm, K_CALC, NULL, cJSON_Parse(CALC_SCHEMA));
    else if (!strcmp(nm, "python")) st = add_entry(ts, nm, K_PYTHON, NULL, cJSON_Parse(PYTHON_SCHEMA));
    else st = tn_error(TN_ERR_ARG, "--tools: unknown tool '%s' (built in: calculator, python; MCP tools come with --mcp)", nm);
    p = *q ? q + 1 : q;
  }
  if (st != TN_OK) { tn_toolset_free(ts); return st; }
  *out = ts;
  return TN_OK;
}

tn_status tn_toolset_add_mcp(tn_toolset *ts, const char *cmd) {
  cJSON *tools;
  tn_mcp *m;
  TN_TRY(tn_mcp_start(&m, cmd, ts->o.timeout_s > 0 ? ts->o.timeout_s * 3 : 30, &tools));
  tn_mcp **nm = realloc(ts->mcps, (ts->n_mcp + 1) * sizeof *nm);
  if (!nm) { cJSON_Delete(tools); tn_mcp_free(m); return TN_ERR_NOMEM; }
  ts->mcps = nm;
  ts->mcps[ts->n_mcp++] = m;
  tn_status st = TN_OK;
  while (st == TN_OK && cJSON_GetArraySize(tools) > 0) {
    cJSON *t = cJSON_DetachItemFromArray(tools, 0);
    const char *name = cJSON_GetObjectItem(cJSON_GetObjectItem(t, "function"), "name")->valuestring;
    char nbuf[256];
    snprintf(nbuf, sizeof nbuf, "%s", name);
    st = add_entry(ts, nbuf, K_MCP, m, t);
    if (st != TN_OK) tn_error_prefix(st, "--mcp '%s'", cmd);
  }
  cJSON_Delete(tools);
  return st;
}

const cJSON *tn_toolset_schemas(const tn_toolset *ts) { return ts->schemas; }
size_t tn_toolset_count(const tn_toolset *ts) { return ts ? ts->n : 0; }

static const entry *find(const tn_toolset *ts, const char *name) {
  for (size_t i = 0; ts && name && i < ts->n; i++)
    if (!strcmp(ts->e[i].name, name)) return &ts->e[i];
  return NULL;
}
bool tn_toolset_has(const tn_toolset *ts, const char *name) { return find(ts, name) != NULL; }

static tn_status set_error(tn_tool_result *r, const char *fmt, const char *a, const char *b) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, a, b);
  r->ok = false;
  free(r->error);
  r->error = strdup(msg);
  return r->error ? TN_OK : TN_ERR_NOMEM;
}

/* The string argument KEY of ARGS (an object), else an error result. */
static const char *str_arg(const cJSON *args, const char *key, const char *tool, tn_tool_result *r, tn_status *st) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, key);
  if (cJSON_IsString(v)) return v->valuestring;
  *st = set_error(r, "%s: the argument \"%s\" (a string) is missing", tool, key);
  return NULL;
}

tn_status tn_toolset_call(tn_toolset *ts, const char *name, const char *args_json, double timeout_s, tn_tool_result *r) {
  memset(r, 0, sizeof *r);
  double t0 = tn_now();
  double t = timeout_s > 0 ? timeout_s : ts->o.timeout_s > 0 ? ts->o.timeout_s : 10;
  tn_status st = TN_OK;
  const entry *e = find(ts, name);
  cJSON *args = NULL;
  if (!e) {
    st = set_error(r, "unknown tool '%s'%s", name ? name : "(none)", ts->n ? "" : " (no tools are available)");
    goto out;
  }
  args = cJSON_Parse(args_json && *args_json ? args_json : "{}");
  if (!cJSON_IsObject(args)) {
    st = set_error(r, "%s: the arguments are not a JSON object: %.200s", name, args_json ? args_json : "");
    goto out;
  }
  if (e->kind == K_CALC) {
    const char *x = str_arg(args, "expression", name, r, &st);
    if (x) {
      char *val, *err;
      r->ok = tn_calc_eval(x, ts->o.calc_max_digits, &val, &err);
      r->content = val;
      r->error = err;
      if (!r->ok && !r->error) st = TN_ERR_NOMEM;
    }
  } else if (e->kind == K_PYTHON) {
    const char *code = str_arg(args, "code", name, r, &st);
    if (code) st = tn_python_run(&ts->o, code, t, r);
  } else {
    st = tn_mcp_call(e->mcp, e->name, args, t, r);
  }
  if (st == TN_OK && r->ok && r->content && ts->o.output_cap && strlen(r->content) > ts->o.output_cap) {
    char cap[32];
    snprintf(cap, sizeof cap, "%zu", ts->o.output_cap);
    st = set_error(r, "%s: output over %s bytes", name, cap);
    free(r->content);
    r->content = NULL;
  }
out:
  cJSON_Delete(args);
  r->ms = (tn_now() - t0) * 1000;
  return st;
}

cJSON *tn_agent_message(const char *role, const char *content) {
  cJSON *m = cJSON_CreateObject();
  if (m && (!cJSON_AddStringToObject(m, "role", role) || !cJSON_AddStringToObject(m, "content", content))) {
    cJSON_Delete(m);
    return NULL;
  }
  return m;
}

void tn_tool_result_free(tn_tool_result *r) {
  if (!r) return;
  free(r->content);
  free(r->error);
  r->content = r->error = NULL;
}

cJSON *tn_tool_result_json(const tn_tool_result *r) {
  cJSON *o = cJSON_CreateObject();
  long before = tn_alloc_failures();
  if (!o) return NULL;
  cJSON_AddBoolToObject(o, "ok", r->ok);
  if (r->ok) cJSON_AddStringToObject(o, "content", r->content ? r->content : "");
  else {
    cJSON_AddStringToObject(o, "error", r->error ? r->error : "error");
    if (r->content && *r->content) cJSON_AddStringToObject(o, "output", r->content);
  }
  cJSON_AddNumberToObject(o, "ms", r->ms);
  if (tn_alloc_failures() != before) { cJSON_Delete(o); return NULL; }
  return o;
}

tn_status tn_toolset_call_message(tn_toolset *ts, const cJSON *call, double timeout_s, cJSON **tool_msg, tn_tool_result *rout) {
  *tool_msg = NULL;
  tn_tool_result r = {0};
  const cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
  const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn ? fn : call, "name");
  const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn ? fn : call, "arguments");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(call, "id");
  char *args_text = NULL;
  tn_status st;
  if (!cJSON_IsString(name)) {
    st = set_error(&r, "a tool call without a function name%s%s", "", "");
  } else {
    if (cJSON_IsString(args)) args_text = strdup(args->valuestring);
    else if (args && !cJSON_IsNull(args)) args_text = cJSON_PrintUnformatted(args);
    else args_text = strdup("{}");
    st = args_text ? tn_toolset_call(ts, name->valuestring, args_text, timeout_s, &r) : TN_ERR_NOMEM;
  }
  free(args_text);
  if (st != TN_OK) { tn_tool_result_free(&r); return st; }
  cJSON *m = cJSON_CreateObject();
  long before = tn_alloc_failures();
  if (m) {
    cJSON_AddStringToObject(m, "role", "tool");
    if (cJSON_IsString(id)) cJSON_AddStringToObject(m, "tool_call_id", id->valuestring);
    cJSON_AddStringToObject(m, "name", cJSON_IsString(name) ? name->valuestring : "");
    if (r.ok) cJSON_AddStringToObject(m, "content", r.content ? r.content : "");
    else {
      size_t n = strlen(r.error ? r.error : "") + 8;
      char *t = malloc(n);
      if (t) snprintf(t, n, "error: %s", r.error ? r.error : "");
      cJSON_AddStringToObject(m, "content", t ? t : "error");
      free(t);
    }
  }
  if (!m || tn_alloc_failures() != before) {
    cJSON_Delete(m);
    tn_tool_result_free(&r);
    return tn_error(TN_ERR_NOMEM, "tool message: out of memory");
  }
  *tool_msg = m;
  if (rout) *rout = r;
  else tn_tool_result_free(&r);
  return TN_OK;
}

void tn_toolset_free(tn_toolset *ts) {
  if (!ts) return;
  for (size_t i = 0; i < ts->n; i++) free(ts->e[i].name);
  free(ts->e);
  for (size_t i = 0; i < ts->n_mcp; i++) tn_mcp_free(ts->mcps[i]);
  free(ts->mcps);
  cJSON_Delete(ts->schemas);
  free(ts);
}
