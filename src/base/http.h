/* http.h - the request/reply types shared by HTTP route handlers (src/store's /api and /ui
 * routes) and the server that owns the sockets (src/serve). Only types: no server lives
 * here, so a module can implement routes without depending on the server, and be tested
 * by calling its handler directly. */
#ifndef TN_BASE_HTTP_H
#define TN_BASE_HTTP_H
#include <stddef.h>
#include <stdlib.h>

typedef struct {
  const char *method;      /* "GET", "POST", "DELETE", ... */
  const char *path;        /* decoded path without the query string, e.g. "/api/traces/12" */
  const char *query;       /* raw query string after '?', or "" */
  const char *body;        /* request body (not NUL-terminated: use body_len), or NULL */
  size_t body_len;
  const char *content_type;/* the request's Content-Type, or NULL */
} tn_http_request;

typedef struct {
  int status;              /* HTTP status code */
  char *content_type;      /* malloc'd, or NULL for "application/json" */
  char *body;              /* malloc'd body (owned by the reply), may be NULL for empty */
  size_t len;
  char *headers;           /* malloc'd extra header lines "Name: value\r\n...", or NULL */
} tn_http_reply;

/* A route handler: returns 1 when it handled the request (reply filled), 0 when the path is
 * not one of its routes (reply untouched). Handlers are called from the server's threads
 * and must be thread-safe. Errors are replies (status 4xx/5xx with an OpenAI-style
 * {"error": {"message", "type", "code"}} body), never a crash. */
typedef int (*tn_http_handler)(void *user, const tn_http_request *rq, tn_http_reply *rp);

static inline void tn_http_reply_free(tn_http_reply *rp) {
  free(rp->content_type);
  free(rp->body);
  free(rp->headers);
  rp->content_type = rp->body = rp->headers = NULL;
}
#endif
