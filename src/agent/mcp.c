/* mcp.c - a Model Context Protocol client over stdio (JSON-RPC 2.0, newline-delimited):
 * initialize (protocol 2025-06-18), notifications/initialized, tools/list (all pages), and
 * tools/call (the result's text content joined; isError -> a tool error).
 * Not for: the transport (chan.c) or the toolset (tool.c). */
#include <string.h>
#include "agent/tool_int.h"

#define MCP_PROTOCOL "2025-06-18"

struct tn_mcp {
  tn_chan *ch;
  char *cmd;
};

tn_status tn_mcp_start(tn_mcp **out, const char *cmd, double timeout_s, cJSON **tools) {
  *out = NULL;
  *tools = NULL;
  tn_mcp *m = calloc(1, sizeof *m);
  if (!m) return TN_ERR_NOMEM;
  m->cmd = strdup(cmd);
  char what[200];
  snprintf(what, sizeof what, "MCP server '%.150s'", cmd);
  tn_status st = m->cmd ? tn_chan_start(&m->ch, cmd, NULL, what, true) : TN_ERR_NOMEM;
  cJSON *params = NULL, *res = NULL, *list = NULL;
  if (st != TN_OK) goto fail;
  params = cJSON_Parse("{\"protocolVersion\":\"" MCP_PROTOCOL "\",\"capabilities\":{},"
                       "\"clientInfo\":{\"name\":\"tunic\",\"version\":\"" TN_VERSION "\"}}");
  if (!params) { st = TN_ERR_NOMEM; goto fail; }
  st = tn_chan_request(m->ch, "initialize", params, timeout_s, &res);
  if (st != TN_OK) { tn_error_prefix(st, "MCP initialize"); goto fail; }
  if (!cJSON_IsObject(res) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(res, "protocolVersion"))) {
    st = tn_error(TN_ERR_IO, "%s: the initialize result has no protocolVersion", what);
    goto fail;
  }
  st = tn_chan_notify(m->ch, "notifications/initialized", NULL);
  if (st != TN_OK) goto fail;
  list = cJSON_CreateArray();
  if (!list) { st = TN_ERR_NOMEM; goto fail; }
  char *cursor = NULL;
  for (int page = 0; page < 1000; page++) {
    cJSON_Delete(params);
    params = cJSON_CreateObject();
    if (!params || (cursor && !cJSON_AddStringToObject(params, "cursor", cursor))) { free(cursor); st = TN_ERR_NOMEM; goto fail; }
    free(cursor);
    cursor = NULL;
    cJSON_Delete(res);
    res = NULL;
    st = tn_chan_request(m->ch, "tools/list", params, timeout_s, &res);
    if (st != TN_OK) { tn_error_prefix(st, "MCP tools/list"); goto fail; }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(res, "tools"), *t;
    if (!cJSON_IsArray(ts)) { st = tn_error(TN_ERR_IO, "%s: tools/list result has no tools array", what); goto fail; }
    cJSON_ArrayForEach(t, ts) {
      const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");
      const cJSON *desc = cJSON_GetObjectItemCaseSensitive(t, "description");
      const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "inputSchema");
      if (!cJSON_IsString(name) || !*name->valuestring) { st = tn_error(TN_ERR_IO, "%s: a tool without a name in tools/list", what); goto fail; }
      cJSON *o = cJSON_CreateObject(), *f = cJSON_CreateObject();
      long before = tn_alloc_failures();
      if (!o || !f) { cJSON_Delete(o); cJSON_Delete(f); st = TN_ERR_NOMEM; goto fail; }
      cJSON_AddStringToObject(o, "type", "function");
      cJSON_AddItemToObject(o, "function", f);
      cJSON_AddStringToObject(f, "name", name->valuestring);
      cJSON_AddStringToObject(f, "description", cJSON_IsString(desc) ? desc->valuestring : "");
      cJSON *ps = cJSON_IsObject(schema) ? cJSON_Duplicate(schema, 1) : cJSON_Parse("{\"type\":\"object\"}");
      cJSON_DeleteItemFromObjectCaseSensitive(ps, "$schema"); /* tokens the model need not read */
      cJSON_AddItemToObject(f, "parameters", ps);
      cJSON_AddItemToArray(list, o);
      if (tn_alloc_failures() != before) { st = TN_ERR_NOMEM; goto fail; }
    }
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(res, "nextCursor");
    if (!cJSON_IsString(next) || !*next->valuestring) break;
    cursor = strdup(next->valuestring);
    if (!cursor) { st = TN_ERR_NOMEM; goto fail; }
  }
  cJSON_Delete(params);
  cJSON_Delete(res);
  *tools = list;
  *out = m;
  return TN_OK;
fail:
  cJSON_Delete(params);
  cJSON_Delete(res);
  cJSON_Delete(list);
  tn_mcp_free(m);
  return st;
}

tn_status tn_mcp_call(tn_mcp *m, const char *name, const cJSON *args, double timeout_s, tn_tool_result *r) {
  cJSON *params = cJSON_CreateObject(), *res = NULL;
  long before = tn_alloc_failures();
  if (!params) return TN_ERR_NOMEM;
  cJSON_AddStringToObject(params, "name", name);
  cJSON_AddItemToObject(params, "arguments", args ? cJSON_Duplicate(args, 1) : cJSON_CreateObject());
  if (tn_alloc_failures() != before) { cJSON_Delete(params); return TN_ERR_NOMEM; }
  tn_status st = tn_chan_request(m->ch, "tools/call", params, timeout_s, &res);
  cJSON_Delete(params);
  if (st == TN_ERR_NOMEM) return st;
  if (st != TN_OK) { /* the server failed, timed out or answered with a JSON-RPC error: a tool error */
    r->ok = false;
    r->error = strdup(tn_last_error());
    tn_error_clear();
    return r->error ? TN_OK : TN_ERR_NOMEM;
  }
  /* join the text items of content[] with newlines; other kinds are named */
  size_t cap = 256, len = 0;
  char *text = malloc(cap);
  const cJSON *content = cJSON_GetObjectItemCaseSensitive(res, "content"), *it;
  const cJSON *items = cJSON_IsArray(content) ? content : NULL;
  cJSON_ArrayForEach(it, items) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "text");
    char other[64];
    const char *piece = cJSON_IsString(t) ? t->valuestring : other;
    snprintf(other, sizeof other, "[%s content]", cJSON_IsString(type) ? type->valuestring : "unknown");
    size_t n = strlen(piece);
    if (text && len + n + 2 > cap) {
      while (len + n + 2 > cap) cap *= 2;
      char *nt = realloc(text, cap);
      if (!nt) { free(text); text = NULL; }
      else text = nt;
    }
    if (!text) break;
    if (len) text[len++] = '\n';
    memcpy(text + len, piece, n);
    len += n;
  }
  if (!text) { cJSON_Delete(res); return TN_ERR_NOMEM; }
  text[len] = 0;
  if (!cJSON_IsArray(content)) { /* structuredContent only */
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(res, "structuredContent");
    if (sc) { free(text); text = cJSON_PrintUnformatted(sc); }
  }
  r->ok = !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "isError"));
  if (r->ok) r->content = text;
  else { r->error = text; }
  cJSON_Delete(res);
  return text ? TN_OK : TN_ERR_NOMEM;
}

void tn_mcp_free(tn_mcp *m) {
  if (!m) return;
  tn_chan_free(m->ch);
  free(m->cmd);
  free(m);
}
