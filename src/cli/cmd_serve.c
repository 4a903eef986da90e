/* cmd_serve.c - `tunic serve`: the OpenAI-compatible server (src/serve) from the command line:
 * flags into tn_serve_opts, --adapter NAME=DIR (repeatable) loaded before listening, SIGTERM /
 * SIGINT for a graceful stop (in-flight requests finish within --stop-deadline), --port-file for
 * scripts that start it on a free port (--port 0), --traces-jsonl to append each served
 * conversation as a JSON line (the trace hook), --store PATH for the store's /api and /ui routes
 * (src/store) and --log-traces to store each served conversation there as a trace.
 * Not for: the server itself (src/serve). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "cli/cli.h"
#include "serve/serve.h"
#include "store/store.h"

static FILE *traces;
static pthread_mutex_t traces_mu = PTHREAD_MUTEX_INITIALIZER;

static void trace_line(void *user, const char *json) {
  if (user) tn_store_trace_hook(user, json); /* --log-traces */
  pthread_mutex_lock(&traces_mu);
  if (traces) {
    fputs(json, traces);
    fputc('\n', traces);
    fflush(traces);
  }
  pthread_mutex_unlock(&traces_mu);
}

int tn_cmd_serve(int argc, char **argv) {
  tn_serve_opts o;
  tn_serve_opts_default(&o);
  const char *adapter = NULL, *base_dtype = "auto", *head_dtype = "auto", *port_file = NULL, *traces_file = NULL,
             *store_path = NULL;
  bool log_traces = false;
  double max_body = (double)o.max_body;
  tn_flag flags[] = {
    {"model", 's', &o.model_dir, "model directory (HF layout)"},
    {"model-name", 's', &o.model_name, "the base model's name in /v1/models and requests (\"base\" always works too)"},
    {"adapter", 's', &adapter, "a PEFT LoRA adapter NAME=DIR (repeatable, or comma separated); more at run time: POST /v1/adapters"},
    {"route", 's', &o.route_file, "route.yaml: the model \"auto\" picks an adapter by prompt category (docs/serve.md)"},
    {"host", 's', &o.host, "address to listen on (default 127.0.0.1: this machine only)"},
    {"port", 'i', &o.port, "TCP port"},
    {"port-file", 's', &port_file, "write the port listened on to this file once listening (with --port 0)"},
    {"api-key", 's', &o.api_key, "require 'Authorization: Bearer KEY' (default: no auth; also env TUNIC_API_KEY)"},
    {"base-dtype", 's', &base_dtype, "storage of the frozen projections: f32 | bf16 | nf4 | auto"},
    {"head-dtype", 's', &head_dtype, "embedding and LM head: f32 | bf16 | auto"},
    {"slots", 'i', &o.slots, "sequences decoded together (continuous batching)"},
    {"ctx", 'i', &o.ctx, "tokens per sequence, prompt + output (default: min(max_position_embeddings, 4096))"},
    {"max-requests", 'i', &o.max_requests, "generation requests at once, queued + running; 429 with Retry-After beyond"},
    {"max-tokens", 'i', &o.max_tokens, "the most max_tokens a request may ask for"},
    {"default-max-tokens", 'i', &o.default_max_tokens, "max_tokens of a chat request that gives none"},
    {"max-body", 'd', &max_body, "largest request body in bytes (413 beyond)"},
    {"timeout", 'd', &o.timeout, "seconds a request may take from arrival to its last token (504 / an error event beyond)"},
    {"quantum", 'i', &o.quantum, "ignored (requests for different adapters now share every step; was the length of an adapter's turn)"},
    {"stop-deadline", 'd', &o.stop_deadline, "on SIGTERM: seconds in-flight requests may still run before they are cancelled"},
    {"traces-jsonl", 's', &traces_file, "append each served conversation to this file as one JSON line"},
    {"store", 's', &store_path, "the trace and dataset store (SQLite file): its API under /api/ and the page at /ui/ (docs/store.md)"},
    {"log-traces", 'b', &log_traces, "store each served conversation as a trace (in --store, default $TUNIC_STORE or ./tunic_store.db)"},
    {"quiet", 'b', &o.quiet, "no access log on stderr"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--model DIR [--adapter NAME=DIR ...] [--port 8080]");
  if (r) return r > 0 ? 0 : 2;
  if (!o.model_dir) {
    fprintf(stderr, "tunic serve: --model is required\n");
    return 2;
  }
  if (!o.api_key && getenv("TUNIC_API_KEY") && *getenv("TUNIC_API_KEY")) o.api_key = getenv("TUNIC_API_KEY");
  o.max_body = (size_t)max_body;
  tn_status s = tn_parse_base_dtype(base_dtype, &o.load.base_dtype);
  if (s == TN_OK) s = tn_parse_head_dtype(head_dtype, &o.load.head_dtype);
  if (s != TN_OK) return tn_cli_fail("serve", s);
  /* the signals are taken by this thread alone (sigwait): block them before any thread starts */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  tn_server *sv = NULL;
  s = tn_server_create(&o, &sv);
  if (s != TN_OK) return tn_cli_fail("serve", s);
  char **ads = NULL;
  const int na = tn_cli_collect(argc, argv, "adapter", &ads);
  for (int i = 0; i < na && s == TN_OK; i++) {
    char *eq = strchr(ads[i], '=');
    if (!eq) s = tn_error(TN_ERR_ARG, "--adapter '%s': expected NAME=DIR", ads[i]);
    else {
      *eq = 0;
      s = tn_server_load_adapter(sv, ads[i], eq + 1);
    }
  }
  for (int i = 0; i < na; i++) free(ads[i]);
  free(ads);
  tn_store *store = NULL;
  if (s == TN_OK && (store_path || log_traces)) {
    if (!store_path) store_path = tn_store_default_path();
    s = tn_store_open(&store, store_path, NULL);
    if (s == TN_OK) s = tn_server_add_handler(sv, "/api/", tn_store_http, store);
    if (s == TN_OK) s = tn_server_add_handler(sv, "/ui", tn_store_http, store);
    if (s != TN_OK) s = tn_error_prefix(s, "--store %s", store_path);
  }
  if (s == TN_OK && traces_file) {
    traces = fopen(traces_file, "a");
    if (!traces) s = tn_error(TN_ERR_IO, "--traces-jsonl %s: cannot open for appending", traces_file);
  }
  if (s == TN_OK && (traces_file || log_traces)) tn_server_set_trace_hook(sv, trace_line, log_traces ? store : NULL);
  if (s == TN_OK) s = tn_server_start(sv);
  if (s == TN_OK && port_file) {
    char buf[16];
    snprintf(buf, sizeof buf, "%d\n", tn_server_port(sv));
    s = tn_write_file_atomic(port_file, buf, strlen(buf));
  }
  if (s != TN_OK) {
    int code = tn_cli_fail("serve", s);
    tn_server_free(sv);
    tn_store_close(store);
    if (traces) fclose(traces);
    return code;
  }
  fprintf(stderr, "tunic serve: listening on http://%s:%d/ (model %s, %d slots%s%s%s)\n",
          strchr(o.host, ':') ? "[::1]" : o.host, tn_server_port(sv), o.model_dir, o.slots, o.api_key ? ", API key required" : "",
          store ? ", store " : "", store ? tn_store_path(store) : "");
  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, "tunic serve: %s: stopping (in-flight requests have %.0f s)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT", o.stop_deadline);
  tn_server_stop(sv);
  tn_server_free(sv);
  tn_store_close(store);
  if (traces) fclose(traces);
  fprintf(stderr, "tunic serve: stopped\n");
  return 0;
}
