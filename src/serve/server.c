/* server.c - the HTTP side of `tunic serve` on GNU libmicrohttpd (Debian libmicrohttpd-dev):
 * one thread per connection (a handler may block while its request generates, and a stream's
 * reader blocks until the next tokens), the body read up to --max-body (413 beyond), bearer auth
 * (--api-key), dispatch to the built-in routes (/health, /metrics, the chat page at /, the /v1
 * API of api.c) and to handlers other modules register by path prefix, server-sent events for
 * streams, a client that goes away noticed within 50 ms (its slot freed at the scheduler's next
 * step), and the graceful stop. Also the server's life cycle: model, tokenizer, adapter registry.
 * Not for: JSON validation or responses (api.c), generation (sched.c). */
#define _GNU_SOURCE
#define TN_SERVE_INTERNAL
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "serve/serve.h"

void tn_serve_opts_default(tn_serve_opts *o) {
  memset(o, 0, sizeof *o);
  o->model_name = "base";
  o->host = "127.0.0.1";
  o->port = 8080;
  tn_load_opts_default(&o->load);
  o->max_body = 1 << 20;
  o->max_tokens = 2048;
  o->default_max_tokens = 256;
  o->timeout = 300;
  o->max_requests = 64;
  o->slots = 16;
  o->quantum = 8;
  o->stop_deadline = 10;
}

static bool valid_name(const char *n) {
  if (!n || !*n || strlen(n) > 63) return false;
  for (const char *c = n; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
          *c == '.'))
      return false;
  return true;
}

tn_status tn_server_load_adapter(tn_server *sv, const char *name, const char *dir) {
  if (!valid_name(name))
    return tn_error(TN_ERR_ARG, "adapter name '%s': use 1-63 characters of A-Z a-z 0-9 . _ -", name ? name : "");
  if (!strcmp(name, "auto") || !strcmp(name, "base") || !strcmp(name, sv->model_name))
    return tn_error(TN_ERR_ARG, "adapter name '%s' is reserved (the base model or routing)", name);
  srv_adapter *old = srv_adapter_get(sv, name);
  if (old) {
    srv_adapter_unref(sv, old);
    return tn_error(TN_ERR_ARG, "an adapter named '%s' is already loaded (DELETE /v1/adapters/%s first)", name, name);
  }
  srv_adapter *a = calloc(1, sizeof *a);
  if (!a) return TN_ERR_NOMEM;
  snprintf(a->name, sizeof a->name, "%s", name);
  a->path = strdup(dir);
  a->refs = 1;
  a->created = (double)time(NULL);
  tn_status s = tn_lora_load(sv->m, dir, name, &a->set); /* reads the model's shapes only */
  if (s != TN_OK) {
    free(a->path);
    free(a);
    return tn_error_prefix(s, "adapter '%s'", name);
  }
  pthread_mutex_lock(&sv->mu);
  bool dup = false;
  for (int i = 0; i < sv->n_ads; i++) dup = dup || !strcmp(sv->ads[i]->name, name);
  if (!dup && sv->n_ads == sv->cap_ads) {
    int nc = sv->cap_ads * 2;
    srv_adapter **p = realloc(sv->ads, sizeof *p * nc);
    if (p) sv->ads = p, sv->cap_ads = nc;
  }
  const bool ok = !dup && sv->n_ads < sv->cap_ads;
  if (ok) sv->ads[sv->n_ads++] = a;
  pthread_mutex_unlock(&sv->mu);
  if (!ok) {
    tn_lora_free(a->set);
    free(a->path);
    free(a);
    return dup ? tn_error(TN_ERR_ARG, "an adapter named '%s' is already loaded", name) : TN_ERR_NOMEM;
  }
  tn_info("tunic serve: adapter '%s' loaded from %s", name, dir);
  return TN_OK;
}

tn_status tn_server_unload_adapter(tn_server *sv, const char *name) {
  srv_adapter *a = NULL;
  pthread_mutex_lock(&sv->mu);
  for (int i = 1; i < sv->n_ads; i++)
    if (!strcmp(sv->ads[i]->name, name)) {
      a = sv->ads[i];
      memmove(sv->ads + i, sv->ads + i + 1, sizeof *sv->ads * (sv->n_ads - i - 1));
      sv->n_ads--;
      a->removed = true;
      break;
    }
  pthread_mutex_unlock(&sv->mu);
  if (!a) return tn_error(TN_ERR_ARG, "no adapter named '%s' is loaded", name);
  srv_adapter_unref(sv, a); /* the registry's reference; requests in flight keep theirs */
  tn_info("tunic serve: adapter '%s' unloaded", name);
  return TN_OK;
}

tn_status tn_server_add_handler(tn_server *sv, const char *prefix, tn_http_handler fn, void *user) {
  if (!prefix || !fn) return tn_error(TN_ERR_ARG, "serve: a handler needs a path prefix and a function");
  if (sv->n_handlers == 16) return tn_error(TN_ERR_LIMIT, "serve: at most 16 handlers");
  srv_handler *h = &sv->handlers[sv->n_handlers];
  if (!(h->prefix = strdup(prefix))) return TN_ERR_NOMEM;
  h->fn = fn;
  h->user = user;
  sv->n_handlers++;
  return TN_OK;
}

void tn_server_set_trace_hook(tn_server *sv, tn_serve_trace_fn fn, void *user) {
  sv->trace_fn = fn;
  sv->trace_user = user;
}

int tn_server_port(const tn_server *sv) { return sv->port; }

tn_status tn_server_create(const tn_serve_opts *o, tn_server **out) {
  *out = NULL;
  if (!o->model_dir) return tn_error(TN_ERR_ARG, "serve: --model is required");
  if (o->slots < 1 || o->slots > 1024) return tn_error(TN_ERR_ARG, "serve: --slots must be in [1, 1024], not %d", o->slots);
  if (o->max_requests < 1) return tn_error(TN_ERR_ARG, "serve: --max-requests must be >= 1");
  if (o->max_tokens < 1 || o->default_max_tokens < 1) return tn_error(TN_ERR_ARG, "serve: --max-tokens must be >= 1");
  if (!(o->timeout > 0)) return tn_error(TN_ERR_ARG, "serve: --timeout must be > 0 seconds");
  if (o->max_body < 64) return tn_error(TN_ERR_ARG, "serve: --max-body must be at least 64 bytes");
  if (o->quantum < 1) return tn_error(TN_ERR_ARG, "serve: --quantum must be >= 1");
  if (!valid_name(o->model_name)) return tn_error(TN_ERR_ARG, "serve: --model-name '%s': use A-Z a-z 0-9 . _ -", o->model_name);
  tn_server *sv = calloc(1, sizeof *sv);
  if (!sv) return TN_ERR_NOMEM;
  sv->o = *o;
  pthread_mutex_init(&sv->mu, NULL);
  pthread_cond_init(&sv->cv, NULL);
  sv->model_dir = strdup(o->model_dir);
  sv->model_name = strdup(o->model_name);
  sv->host = strdup(o->host ? o->host : "127.0.0.1");
  sv->api_key = o->api_key && *o->api_key ? strdup(o->api_key) : NULL;
  sv->t_start = (double)time(NULL);
  tn_status s = tn_model_load_opts(&sv->m, o->model_dir, &o->load);
  if (s == TN_OK) s = tn_tokenizer_load(o->model_dir, &sv->tok);
  if (s == TN_OK && !sv->o.ctx) sv->o.ctx = sv->m->cfg.max_pos < 4096 ? sv->m->cfg.max_pos : 4096;
  if (s == TN_OK && (sv->o.ctx < 2 || sv->o.ctx > sv->m->cfg.max_pos))
    s = tn_error(TN_ERR_ARG, "serve: --ctx must be in [2, %d] (max_position_embeddings), not %d", sv->m->cfg.max_pos, sv->o.ctx);
  if (s == TN_OK) { /* the KV cache is --slots x --ctx tokens: say how much that is (--ctx sizes it) */
    const tn_config *c = &sv->m->cfg;
    const double mib = 2.0 * 4 * c->L * (double)sv->o.slots * sv->o.ctx * c->KV * c->D / (1 << 20);
    tn_info("tunic serve: KV cache %d slots x %d tokens = %.0f MiB (--slots, --ctx)", sv->o.slots, sv->o.ctx, mib);
  }
  if (s == TN_OK) {
    sv->ads = calloc(8, sizeof *sv->ads);
    srv_adapter *b = calloc(1, sizeof *b);
    if (!sv->ads || !b) { free(b); s = TN_ERR_NOMEM; }
    else {
      snprintf(b->name, sizeof b->name, "%s", sv->model_name);
      b->path = strdup(o->model_dir);
      b->refs = 1;
      b->created = sv->t_start;
      sv->ads[0] = b;
      sv->n_ads = 1;
      sv->cap_ads = 8;
    }
  }
  if (s == TN_OK && o->route_file) s = srv_route_load(sv, o->route_file);
  if (s != TN_OK) {
    tn_server_free(sv);
    return s;
  }
  *out = sv;
  return TN_OK;
}

/* ---- one connection's request ---- */
typedef struct {
  srv_buf body;
  bool too_big;
  double t0;
} conn_ctx;

typedef struct {
  tn_server *sv;
  srv_req *r;
  int fd;
} stream_ctx;

static bool peer_gone(int fd) {
  if (fd < 0) return false;
  char c;
  ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void cancel(tn_server *sv, srv_req *r) {
  pthread_mutex_lock(&r->mu);
  r->cancelled = true;
  pthread_mutex_unlock(&r->mu);
  pthread_mutex_lock(&sv->mu);
  pthread_cond_signal(&sv->cv);
  pthread_mutex_unlock(&sv->mu);
}

static void wait_50ms(pthread_cond_t *cv, pthread_mutex_t *mu) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += 50 * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_cond_timedwait(cv, mu, &ts);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  stream_ctx *x = cls;
  srv_req *r = x->r;
  (void)pos;
  pthread_mutex_lock(&r->mu);
  while (r->sse.n == 0 && !r->done) {
    if (peer_gone(x->fd)) {
      pthread_mutex_unlock(&r->mu);
      cancel(x->sv, r);
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    wait_50ms(&r->cv, &r->mu);
  }
  if (r->sse.n == 0) { /* done and everything written */
    pthread_mutex_unlock(&r->mu);
    return MHD_CONTENT_READER_END_OF_STREAM;
  }
  size_t k = r->sse.n < max ? r->sse.n : max;
  memcpy(buf, r->sse.p, k);
  memmove(r->sse.p, r->sse.p + k, r->sse.n - k);
  r->sse.n -= k;
  pthread_mutex_unlock(&r->mu);
  return (ssize_t)k;
}

static void stream_free(void *cls) {
  stream_ctx *x = cls;
  pthread_mutex_lock(&x->r->mu);
  const bool done = x->r->done;
  pthread_mutex_unlock(&x->r->mu);
  if (!done) cancel(x->sv, x->r); /* the connection closed before the end */
  srv_req_unref(x->sv, x->r);
  free(x);
}

static void add_headers(struct MHD_Response *resp, const char *h) {
  while (h && *h) { /* "Name: value\r\n..." */
    const char *colon = strchr(h, ':'), *eol = strstr(h, "\r\n");
    if (!colon || !eol || colon > eol) break;
    char name[128], val[512];
    snprintf(name, sizeof name, "%.*s", (int)(colon - h), h);
    const char *v = colon + 1;
    while (*v == ' ') v++;
    snprintf(val, sizeof val, "%.*s", (int)(eol - v), v);
    MHD_add_response_header(resp, name, val);
    h = eol + 2;
  }
}

/* "auto": the category chosen (x-tunic-route) and, when the classifier chose it, its score */
static void route_headers(struct MHD_Response *resp, const srv_req *r) {
  if (!r || !r->route) return;
  MHD_add_response_header(resp, "x-tunic-route", r->route);
  if (r->route_by) MHD_add_response_header(resp, "x-tunic-route-by", r->route_by);
  if (r->route_by && !strcmp(r->route_by, "classifier")) {
    char sc[32];
    snprintf(sc, sizeof sc, "%.6g", r->route_score);
    MHD_add_response_header(resp, "x-tunic-route-score", sc);
  }
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, tn_http_reply *rp, const srv_req *r) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(rp->len, rp->body ? rp->body : (char *)"", MHD_RESPMEM_MUST_COPY);
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", rp->content_type ? rp->content_type : "application/json");
  route_headers(resp, r);
  add_headers(resp, rp->headers);
  enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rp->status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void count(tn_server *sv, const char *path, int status) {
  pthread_mutex_lock(&sv->mu);
  int k = !strcmp(path, "/v1/chat/completions") ? 0 : !strcmp(path, "/v1/completions") ? 1
        : !strncmp(path, "/v1/models", 10) ? 2 : !strcmp(path, "/health") ? 3 : !strcmp(path, "/metrics") ? 4
        : !strncmp(path, "/v1/adapters", 12) ? 5 : !strcmp(path, "/") ? 6 : 7;
  sv->met.requests[k]++;
  int e = status == 400 ? 0 : status == 401 ? 1 : status == 404 ? 2 : status == 413 ? 3 : status == 429 ? 4 : status >= 500 ? 5 : -1;
  if (e >= 0) sv->met.errors[e]++;
  pthread_mutex_unlock(&sv->mu);
}

/* MHD hands the handler the path without its query string and keeps the arguments, decoded:
 * the raw query string the route handlers read is rebuilt from them, each re-escaped */
typedef struct { char *p; size_t n, cap; bool fail; } query_buf;
static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  query_buf *q = cls;
  const char *parts[2] = {key, value};
  for (int k = 0; k < 2 && !q->fail; k++) {
    if (k == 1 && !value) break;
    size_t need = q->n + 3 * strlen(parts[k]) + 3;
    if (need > q->cap) {
      char *np = realloc(q->p, need * 2);
      if (!np) { q->fail = true; break; }
      q->p = np, q->cap = need * 2;
    }
    if (k == 0 && q->n) q->p[q->n++] = '&';
    if (k == 1) q->p[q->n++] = '=';
    for (const unsigned char *c = (const unsigned char *)parts[k]; *c; c++) {
      if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("-_.~", *c))
        q->p[q->n++] = (char)*c;
      else q->n += (size_t)sprintf(q->p + q->n, "%%%02X", *c);
    }
    q->p[q->n] = 0;
  }
  return MHD_YES;
}

static bool authorized(const tn_server *sv, struct MHD_Connection *conn) {
  if (!sv->api_key) return true;
  const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7)) return false;
  const char *k = h + 7;
  const size_t a = strlen(k), b = strlen(sv->api_key);
  unsigned diff = (unsigned)(a != b);
  for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned char)(k[i] ^ sv->api_key[i]); /* no early exit */
  return diff == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  tn_server *sv = cls;
  (void)version;
  conn_ctx *cx = *con_cls;
  if (!cx) {
    if (!(cx = calloc(1, sizeof *cx))) return MHD_NO;
    cx->t0 = tn_now();
    *con_cls = cx;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > sv->o.max_body) cx->too_big = true;
    return MHD_YES;
  }
  if (*upload_size) {
    if (!cx->too_big && cx->body.n + *upload_size > sv->o.max_body) cx->too_big = true;
    if (!cx->too_big && !srv_buf_add(&cx->body, upload, *upload_size)) cx->too_big = true;
    *upload_size = 0;
    return MHD_YES;
  }
  /* the whole request is here */
  tn_http_reply rp = {.status = 200};
  tn_http_request rq = {.method = method, .path = url, .query = "", .body = cx->body.p, .body_len = cx->body.n,
                        .content_type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type")};
  char *qs = NULL;
  { /* the raw query string, rebuilt from MHD's arguments is lossy: read it from the URL MHD gives */
    const char *q = strchr(url, '?');
    if (q) { rq.query = q + 1; qs = strndup(url, (size_t)(q - url)); rq.path = qs ? qs : url; }
  }
  query_buf qb = {0};
  if (!rq.query[0]) {
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_arg, &qb);
    if (qb.p && !qb.fail) rq.query = qb.p;
  }
  srv_req *r = NULL;
  const bool open_path = !strcmp(rq.path, "/health") || !strcmp(rq.path, "/") || !strcmp(rq.path, "/index.html");
  enum MHD_Result ret = MHD_YES;
  int handled = 0;
  if (cx->too_big) {
    srv_error(&rp, 413, "invalid_request_error", "request_too_large",
              "The request body is larger than this server accepts (%zu bytes, --max-body).", sv->o.max_body);
    handled = 1;
  } else if (!open_path && !authorized(sv, conn)) {
    srv_error(&rp, 401, "invalid_request_error", "invalid_api_key",
              "Incorrect or missing API key: send 'Authorization: Bearer KEY' (tunic serve --api-key).");
    handled = 1;
  } else if (!strcmp(rq.path, "/health")) {
    pthread_mutex_lock(&sv->mu);
    rp.body = malloc(256);
    if (rp.body) snprintf(rp.body, 256, "{\"status\":\"%s\",\"model\":\"%s\",\"slots\":%d,\"queued\":%d,\"running\":%d}",
                          sv->stopping ? "stopping" : "ok", sv->model_name, sv->o.slots, sv->nq, sv->running);
    pthread_mutex_unlock(&sv->mu);
    rp.len = rp.body ? strlen(rp.body) : 0;
    rp.status = sv->stopping ? 503 : 200;
    handled = 1;
  } else if (!strcmp(rq.path, "/metrics")) {
    rp.body = srv_metrics_text(sv);
    rp.len = rp.body ? strlen(rp.body) : 0;
    rp.content_type = strdup("text/plain; version=0.0.4");
    handled = 1;
  } else if ((!strcmp(rq.path, "/") || !strcmp(rq.path, "/index.html")) && !strcmp(method, "GET")) {
    rp.body = strdup(srv_page_html);
    rp.len = rp.body ? strlen(rp.body) : 0;
    rp.content_type = strdup("text/html; charset=utf-8");
    handled = 1;
  }
  for (int i = 0; !handled && i < sv->n_handlers; i++)
    if (!strncmp(rq.path, sv->handlers[i].prefix, strlen(sv->handlers[i].prefix)))
      handled = sv->handlers[i].fn(sv->handlers[i].user, &rq, &rp);
  if (!handled) handled = srv_api(sv, &rq, &rp, &r);
  if (!handled) srv_error(&rp, 404, "invalid_request_error", "not_found", "No route for %s %s", method, rq.path);
  const int fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD)
                     ? MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD)->connect_fd : -1;
  if (handled == 2 && r->stream) { /* server-sent events as the scheduler makes them */
    stream_ctx *x = calloc(1, sizeof *x);
    struct MHD_Response *resp = x ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, x, stream_free) : NULL;
    if (!resp) {
      free(x);
      cancel(sv, r);
      srv_req_unref(sv, r);
      ret = MHD_NO;
    } else {
      x->sv = sv, x->r = r, x->fd = fd; /* the stream owns the HTTP side's reference now */
      MHD_add_response_header(resp, "Content-Type", "text/event-stream");
      MHD_add_response_header(resp, "Cache-Control", "no-cache");
      route_headers(resp, r);
      ret = MHD_queue_response(conn, 200, resp);
      MHD_destroy_response(resp);
    }
    rp.status = 200;
  } else if (handled == 2) { /* wait for the whole answer; a client that leaves cancels it */
    pthread_mutex_lock(&r->mu);
    bool gone = false;
    while (!r->done && !(gone = peer_gone(fd))) wait_50ms(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    if (gone) {
      cancel(sv, r);
      ret = MHD_NO;
      rp.status = 499;
    } else {
      pthread_mutex_lock(&r->mu);
      if (r->error) srv_error(&rp, r->error_status ? r->error_status : 500, r->error_status == 504 ? "timeout_error" : "server_error",
                              r->error_status == 504 ? "timeout" : NULL, "%s", r->error);
      else {
        rp.body = srv_response_json(sv, r, &rp.status);
        rp.len = rp.body ? strlen(rp.body) : 0;
      }
      pthread_mutex_unlock(&r->mu);
      ret = send_reply(conn, &rp, r);
    }
    srv_req_unref(sv, r);
  } else {
    ret = send_reply(conn, &rp, NULL);
  }
  count(sv, rq.path, rp.status);
  if (!sv->o.quiet)
    fprintf(stderr, "tunic serve: %s %s %d %.1f ms\n", method, rq.path, rp.status, (tn_now() - cx->t0) * 1e3);
  tn_http_reply_free(&rp);
  free(qs);
  free(qb.p);
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)conn, (void)toe;
  conn_ctx *cx = *con_cls;
  if (cx) {
    free(cx->body.p);
    free(cx);
  }
  *con_cls = NULL;
}

tn_status tn_server_start(tn_server *sv) {
  if (sv->cls && sv->cls->adapter) { /* the route classifier's adapter is one of the served ones */
    srv_adapter *a = srv_adapter_get(sv, sv->cls->adapter);
    if (!a)
      return tn_error(TN_ERR_ARG, "%s: the classifier's adapter '%s' is not loaded (--adapter %s=DIR)", sv->o.route_file,
                      sv->cls->adapter, sv->cls->adapter);
    srv_adapter_unref(sv, a);
  }
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  struct sockaddr *addr;
  memset(&a4, 0, sizeof a4);
  memset(&a6, 0, sizeof a6);
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
  if (inet_pton(AF_INET, sv->host, &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)sv->o.port);
    addr = (struct sockaddr *)&a4;
  } else if (inet_pton(AF_INET6, sv->host, &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons((uint16_t)sv->o.port);
    addr = (struct sockaddr *)&a6;
    flags |= MHD_USE_IPv6;
  } else {
    return tn_error(TN_ERR_ARG, "serve: --host '%s' is not an IPv4 or IPv6 address", sv->host);
  }
  if (sv->o.port < 0 || sv->o.port > 65535) return tn_error(TN_ERR_ARG, "serve: --port %d is outside [0, 65535]", sv->o.port);
  if (pthread_create(&sv->sched, NULL, srv_sched_main, sv)) return tn_error(TN_ERR_IO, "serve: cannot start the scheduler thread");
  sv->started = true;
  const unsigned idle = sv->o.timeout < 60 ? (unsigned)(sv->o.timeout + 1) : 60;
  struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)sv->o.port, NULL, NULL, on_request, sv,
                                          MHD_OPTION_SOCK_ADDR, addr,
                                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv,
                                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)(sv->o.max_requests + 64),
                                          MHD_OPTION_CONNECTION_TIMEOUT, idle,
                                          MHD_OPTION_END);
  if (!d) {
    tn_server_stop(sv);
    return tn_error(TN_ERR_IO, "serve: cannot listen on %s:%d (%s)", sv->host, sv->o.port, strerror(errno));
  }
  sv->mhd = d;
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  sv->port = di ? di->port : sv->o.port;
  return TN_OK;
}

void tn_server_stop(tn_server *sv) {
  if (!sv) return;
  struct MHD_Daemon *d = sv->mhd;
  if (d) { /* no new connections */
    MHD_socket ls = MHD_quiesce_daemon(d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
  }
  pthread_mutex_lock(&sv->mu);
  sv->stopping = true;
  sv->stop_at = tn_now() + sv->o.stop_deadline;
  pthread_cond_signal(&sv->cv);
  pthread_mutex_unlock(&sv->mu);
  if (sv->started) pthread_join(sv->sched, NULL); /* in-flight requests finish or are cancelled at the deadline */
  sv->started = false;
  if (d) {
    /* let the connection threads write the last events (at most 2 s) */
    for (int i = 0; i < 40; i++) {
      const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
      if (!di || di->num_connections == 0) break;
      usleep(50000);
    }
    MHD_stop_daemon(d);
    sv->mhd = NULL;
  }
}

void tn_server_free(tn_server *sv) {
  if (!sv) return;
  tn_server_stop(sv);
  for (int i = 0; i < sv->n_ads; i++) {
    tn_lora_free(sv->ads[i]->set);
    free(sv->ads[i]->path);
    free(sv->ads[i]);
  }
  free(sv->ads);
  free(sv->queue);
  for (int i = 0; i < sv->n_handlers; i++) free(sv->handlers[i].prefix);
  srv_route_free(sv);
  tn_tokenizer_free(sv->tok);
  tn_model_free(sv->m);
  free(sv->model_dir); free(sv->model_name); free(sv->host); free(sv->api_key);
  pthread_mutex_destroy(&sv->mu);
  pthread_cond_destroy(&sv->cv);
  free(sv);
}
