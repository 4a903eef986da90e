/* ui_server.c - a test-only HTTP server (libmicrohttpd) that mounts the store's handler
 * (tn_store_http) on loopback, for the page test in headless Chromium (ui.mjs) before and apart
 * from `tunic serve`. Usage: store_ui_server DB; prints "PORT n" and serves until stdin closes.
 * Not for: anything but tests (no TLS, no limits beyond the handler's own). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store.h"

typedef struct { char *b; size_t n; } body;

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  body *bd = *con_cls;
  if (!bd) { *con_cls = calloc(1, sizeof(body)); return MHD_YES; }
  if (*upload_size) {
    char *nb = realloc(bd->b, bd->n + *upload_size + 1);
    if (!nb) return MHD_NO;
    memcpy(nb + bd->n, upload, *upload_size);
    bd->b = nb;
    bd->n += *upload_size;
    *upload_size = 0;
    return MHD_YES;
  }
  /* the raw query string: rebuild it from the arguments MHD parsed */
  char query[4096] = "";
  const char *keys[] = {"source", "game", "since", "until", "limit", "cursor", "min_score", "format"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, keys[i]);
    if (v) snprintf(query + strlen(query), sizeof query - strlen(query), "%s%s=%s", query[0] ? "&" : "", keys[i], v);
  }
  tn_http_request rq = {.method = method, .path = url, .query = query, .body = bd->b, .body_len = bd->n,
                        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type")};
  tn_http_reply rp = {0};
  if (!tn_store_http(cls, &rq, &rp)) {
    rp.status = 404;
    rp.body = strdup("{\"error\":{\"message\":\"not found\"}}");
    rp.len = strlen(rp.body);
  }
  struct MHD_Response *r = MHD_create_response_from_buffer(rp.len, rp.body ? rp.body : "", MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", rp.content_type ? rp.content_type : "application/json");
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)rp.status, r);
  MHD_destroy_response(r);
  tn_http_reply_free(&rp);
  return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
  body *bd = *con_cls;
  if (bd) { free(bd->b); free(bd); }
  *con_cls = NULL;
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: store_ui_server DB\n"); return 2; }
  tn_store *s;
  if (tn_store_open(&s, argv[1], NULL) != TN_OK) { fprintf(stderr, "%s\n", tn_last_error()); return 1; }
  struct sockaddr_in lo = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                                          0, NULL, NULL, handle, s, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&lo, MHD_OPTION_END);
  if (!d) { fprintf(stderr, "store_ui_server: cannot start the server\n"); return 1; }
  printf("PORT %u\n", (unsigned)MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
  fflush(stdout);
  char buf[64];
  while (fgets(buf, sizeof buf, stdin)) {}
  MHD_stop_daemon(d);
  tn_store_close(s);
  return 0;
}
