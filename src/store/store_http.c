/* store_http.c - the store's HTTP routes as a tn_http_handler (base/http.h): /api/traces,
 * /api/datasets, /api/runs, /api/ungar/high-card-duel/generate and the web page under /ui/.
 * Each route parses its query/body, calls one store function (one transaction) and turns the
 * result into a reply: JSON, JSONL, Markdown or a page file; errors are {"error": {...}} with
 * 400 (the message names the field), 404, 405, 409, 413 or 500.
 * Not for: sockets (src/serve owns them) or the store's rules (store.c). */
#include "store/store.h"
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include "store/store_ui.h"

#define MAX_BODY (64u << 20)

static void reply(tn_http_reply *rp, int status, const char *ctype, char *body, size_t len) {
  rp->status = status;
  rp->content_type = ctype ? strdup(ctype) : NULL;
  rp->body = body;
  rp->len = body ? len : 0;
}

static void reply_json(tn_http_reply *rp, int status, cJSON *o) {
  char *t = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  if (!t) { /* out of memory: a fixed body */
    static const char m[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"code\":500}}";
    reply(rp, 500, NULL, strdup(m), sizeof m - 1);
    return;
  }
  reply(rp, status, NULL, t, strlen(t));
}

static void reply_error(tn_http_reply *rp, int status, const char *msg) {
  cJSON *o = cJSON_CreateObject(), *e = o ? cJSON_AddObjectToObject(o, "error") : NULL;
  if (e) {
    cJSON_AddStringToObject(e, "message", msg && msg[0] ? msg : "error");
    cJSON_AddStringToObject(e, "type", status >= 500 ? "server_error" : "invalid_request_error");
    cJSON_AddNumberToObject(e, "code", status);
  }
  reply_json(rp, status, o);
}

static int done(tn_http_reply *rp, tn_status st, const tn_store_res *r, cJSON *o) {
  if (st != TN_OK) { cJSON_Delete(o); reply_error(rp, r->code >= 400 ? r->code : 500, tn_last_error()); }
  else reply_json(rp, r->code ? r->code : 200, o);
  return 1;
}

/* the value of KEY in the query string, %-decoded, into buf; NULL when absent */
static const char *qparam(const char *q, const char *key, char *buf, size_t n) {
  size_t kl = strlen(key);
  for (const char *p = q; p && *p;) {
    const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
    if ((size_t)(end - p) > kl && !strncmp(p, key, kl) && p[kl] == '=') {
      size_t o = 0;
      for (const char *c = p + kl + 1; c < end && o + 1 < n; c++) {
        if (*c == '+') buf[o++] = ' ';
        else if (*c == '%' && c + 2 < end && isxdigit((unsigned char)c[1]) && isxdigit((unsigned char)c[2])) {
          char h[3] = {c[1], c[2], 0};
          buf[o++] = (char)strtol(h, NULL, 16);
          c += 2;
        } else buf[o++] = *c;
      }
      buf[o] = 0;
      return buf;
    }
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

static const char *const list_params[] = {"source", "game", "since", "until", "limit", "cursor", "min_score", NULL};

static int traces_list(tn_store *s, const tn_http_request *rq, tn_http_reply *rp) {
  char src[128], game[128], since[64], until[64], lim[32], cur[32], ms[64];
  tn_store_trace_query q = {0};
  tn_store_res r = {400};
  for (const char *p = rq->query; p && *p;) { /* unknown parameters are refused by name */
    const char *eq = strchr(p, '='), *amp = strchr(p, '&');
    size_t kl = eq && (!amp || eq < amp) ? (size_t)(eq - p) : amp ? (size_t)(amp - p) : strlen(p);
    bool ok = false;
    for (int i = 0; list_params[i]; i++) ok |= strlen(list_params[i]) == kl && !strncmp(p, list_params[i], kl);
    if (!ok && kl) {
      char m[200];
      snprintf(m, sizeof m, "query parameter '%.*s' is unknown (expected source, game, since, until, limit, cursor, min_score)",
               (int)(kl > 64 ? 64 : kl), p);
      reply_error(rp, 400, m);
      return 1;
    }
    p = amp ? amp + 1 : NULL;
  }
  q.source = qparam(rq->query, "source", src, sizeof src);
  q.game = qparam(rq->query, "game", game, sizeof game);
  q.since = qparam(rq->query, "since", since, sizeof since);
  q.until = qparam(rq->query, "until", until, sizeof until);
  char *end;
  if (qparam(rq->query, "limit", lim, sizeof lim)) {
    errno = 0;
    q.limit = strtoll(lim, &end, 10);
    if (errno || *end || end == lim || q.limit < 1) { reply_error(rp, 400, "limit: expected an integer in 1..1000"); return 1; }
  }
  if (qparam(rq->query, "cursor", cur, sizeof cur)) {
    errno = 0;
    q.before_id = strtoll(cur, &end, 10);
    if (errno || *end || end == cur || q.before_id < 1) { reply_error(rp, 400, "cursor: expected the next_cursor of a previous page"); return 1; }
  }
  if (qparam(rq->query, "min_score", ms, sizeof ms)) {
    q.min_score = strtod(ms, &end);
    if (*end || end == ms) { reply_error(rp, 400, "min_score: expected a number"); return 1; }
    q.has_min_score = true;
  }
  cJSON *o = NULL;
  tn_status st = tn_store_traces_list(s, &q, &o, &r);
  return done(rp, st, &r, o);
}

/* the body as JSON, or a 400/413 reply (returns NULL then) */
static cJSON *body_json(const tn_http_request *rq, tn_http_reply *rp) {
  if (!rq->body || rq->body_len == 0) { reply_error(rp, 400, "body: a JSON body is required"); return NULL; }
  if (rq->body_len > MAX_BODY) { reply_error(rp, 413, "body: larger than 64 MiB"); return NULL; }
  const char *endp = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(rq->body, rq->body_len, &endp, false);
  if (!j) {
    char m[160];
    snprintf(m, sizeof m, "body: not valid JSON (at byte %ld)", endp ? (long)(endp - rq->body) : 0L);
    reply_error(rp, 400, m);
  }
  return j;
}

static int method_not_allowed(tn_http_reply *rp, const char *allowed) {
  char m[96];
  snprintf(m, sizeof m, "method not allowed here (use %s)", allowed);
  reply_error(rp, 405, m);
  rp->headers = NULL;
  char h[64];
  snprintf(h, sizeof h, "Allow: %s\r\n", allowed);
  rp->headers = strdup(h);
  return 1;
}

static bool is(const tn_http_request *rq, const char *m) { return rq->method && !strcmp(rq->method, m); }

/* a path segment after PREFIX up to the next '/' (or the end) into buf; returns the rest */
static const char *segment(const char *path, char *buf, size_t n) {
  const char *e = strchr(path, '/');
  size_t l = e ? (size_t)(e - path) : strlen(path);
  if (l >= n) l = n - 1;
  memcpy(buf, path, l);
  buf[l] = 0;
  return e ? e : path + strlen(path);
}

static int ui(const tn_http_request *rq, tn_http_reply *rp) {
  if (!is(rq, "GET") && !is(rq, "HEAD")) return method_not_allowed(rp, "GET");
  const char *name = rq->path + 4; /* after "/ui/" */
  if (!strcmp(rq->path, "/ui") || !*name) name = "index.html";
  for (int i = 0; tn_store_ui_files[i].name; i++) {
    if (strcmp(tn_store_ui_files[i].name, name)) continue;
    const char *ext = strrchr(name, '.');
    const char *ct = !strcmp(ext, ".html") ? "text/html; charset=utf-8" : !strcmp(ext, ".js") ? "text/javascript; charset=utf-8"
                     : !strcmp(ext, ".css") ? "text/css; charset=utf-8" : "application/octet-stream";
    char *b = malloc(tn_store_ui_files[i].len + 1);
    if (!b) { reply_error(rp, 500, "out of memory"); return 1; }
    memcpy(b, tn_store_ui_files[i].data, tn_store_ui_files[i].len);
    reply(rp, 200, ct, b, tn_store_ui_files[i].len);
    rp->headers = strdup("Cache-Control: no-cache\r\n");
    return 1;
  }
  reply_error(rp, 404, "no such page under /ui/");
  return 1;
}

int tn_store_http(void *user, const tn_http_request *rq, tn_http_reply *rp) {
  tn_store *s = user;
  const char *p = rq->path;
  if (!p) return 0;
  if (!strcmp(p, "/ui") || !strncmp(p, "/ui/", 4)) return ui(rq, rp);
  if (strncmp(p, "/api/", 5)) return 0;
  tn_error_clear();
  tn_store_res r = {500};
  tn_status st;
  cJSON *o = NULL, *j;
  char seg[200];
  if (!strcmp(p, "/api/traces")) {
    if (is(rq, "GET")) return traces_list(s, rq, rp);
    if (!is(rq, "POST")) return method_not_allowed(rp, "GET, POST");
    if (!(j = body_json(rq, rp))) return 1;
    st = tn_store_traces_add(s, j, &o, &r);
    cJSON_Delete(j);
    if (st == TN_OK) {
      cJSON *w = cJSON_CreateObject();
      if (w) { cJSON_AddItemToObject(w, "ids", o); cJSON_AddNumberToObject(w, "count", cJSON_GetArraySize(o)); }
      else cJSON_Delete(o);
      o = w;
    }
    return done(rp, st, &r, o);
  }
  if (!strncmp(p, "/api/traces/", 12)) {
    if (!is(rq, "GET")) return method_not_allowed(rp, "GET");
    char *end;
    errno = 0;
    long long id = strtoll(p + 12, &end, 10);
    if (errno || *end || end == p + 12 || id < 1) { reply_error(rp, 400, "trace id: expected a positive integer in the path"); return 1; }
    st = tn_store_trace_get(s, id, &o, &r);
    return done(rp, st, &r, o);
  }
  if (!strcmp(p, "/api/datasets/build")) {
    if (!is(rq, "POST")) return method_not_allowed(rp, "POST");
    if (!(j = body_json(rq, rp))) return 1;
    st = tn_store_dataset_build(s, j, &o, &r);
    cJSON_Delete(j);
    return done(rp, st, &r, o);
  }
  if (!strcmp(p, "/api/datasets")) {
    if (!is(rq, "GET")) return method_not_allowed(rp, "GET");
    st = tn_store_datasets_list(s, &o, &r);
    return done(rp, st, &r, o);
  }
  if (!strncmp(p, "/api/datasets/", 14)) {
    if (!is(rq, "GET")) return method_not_allowed(rp, "GET");
    const char *rest = segment(p + 14, seg, sizeof seg);
    if (!*rest) {
      st = tn_store_dataset_get(s, seg, &o, &r);
      return done(rp, st, &r, o);
    }
    if (!strcmp(rest, "/export.jsonl")) {
      char fmt[64];
      const char *f = qparam(rq->query, "format", fmt, sizeof fmt);
      char *text = NULL;
      size_t len = 0;
      st = tn_store_dataset_export(s, seg, f ? f : "tunix_sft", &text, &len, &r);
      if (st != TN_OK) return done(rp, st, &r, NULL);
      reply(rp, 200, "application/x-ndjson", text, len);
      return 1;
    }
    reply_error(rp, 404, "no such dataset route (GET /api/datasets/KEY or /api/datasets/KEY/export.jsonl?format=...)");
    return 1;
  }
  if (!strcmp(p, "/api/runs")) {
    if (is(rq, "GET")) { st = tn_store_runs_list(s, &o, &r); return done(rp, st, &r, o); }
    if (!is(rq, "POST")) return method_not_allowed(rp, "GET, POST");
    if (!(j = body_json(rq, rp))) return 1;
    st = tn_store_run_register(s, j, &o, &r);
    cJSON_Delete(j);
    return done(rp, st, &r, o);
  }
  if (!strncmp(p, "/api/runs/", 10)) {
    if (!is(rq, "GET")) return method_not_allowed(rp, "GET");
    const char *rest = segment(p + 10, seg, sizeof seg);
    if (!*rest) { st = tn_store_run_get(s, seg, true, &o, &r); return done(rp, st, &r, o); }
    if (!strcmp(rest, "/report")) {
      char *md = NULL, fmt[16];
      st = tn_store_run_report(s, seg, &md, &r);
      if (st != TN_OK) return done(rp, st, &r, NULL);
      const char *f = qparam(rq->query, "format", fmt, sizeof fmt);
      if (f && !strcmp(f, "json")) {
        o = cJSON_CreateObject();
        if (o) cJSON_AddStringToObject(o, "markdown", md);
        free(md);
        return done(rp, st, &r, o);
      }
      reply(rp, 200, "text/markdown; charset=utf-8", md, strlen(md));
      return 1;
    }
    reply_error(rp, 404, "no such run route (GET /api/runs/ID or /api/runs/ID/report)");
    return 1;
  }
  if (!strcmp(p, "/api/ungar/high-card-duel/generate")) {
    if (!is(rq, "POST")) return method_not_allowed(rp, "POST");
    if (!(j = body_json(rq, rp))) return 1;
    st = tn_store_hcd_generate(s, j, &o, &r);
    cJSON_Delete(j);
    return done(rp, st, &r, o);
  }
  if (!strncmp(p, "/api/traces", 11) || !strncmp(p, "/api/datasets", 13) || !strncmp(p, "/api/runs", 9) ||
      !strncmp(p, "/api/ungar/", 11)) {
    reply_error(rp, 404, "no such route");
    return 1;
  }
  return 0; /* another handler's /api/ path */
}
