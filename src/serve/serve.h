/* serve.h - `tunic serve`: an OpenAI-compatible HTTP server (libmicrohttpd) over one loaded
 * model, its PEFT adapters (loaded and unloaded at run time) and routing by prompt category.
 * The pieces: server.c (sockets, limits, auth, dispatch, SSE), api.c (the /v1 JSON: validation
 * with OpenAI-style errors, chat rendering, responses), sched.c (the one thread that owns the
 * model: continuous batching over slots), route.c (route.yaml, the "auto" model), metrics.c
 * (Prometheus text), page.c (the chat page at /).
 * Other modules add routes by path prefix (tn_server_add_handler: the store's /api and /ui) and
 * may receive each served conversation (tn_server_set_trace_hook: --log-traces).
 * Not for: the store itself (src/store), the command line (src/cli/cmd_serve.c). */
#ifndef TN_SERVE_H
#define TN_SERVE_H
#include <stdbool.h>
#include <stddef.h>
#include "base/base.h"
#include "base/http.h"
#include "model/model.h"

typedef struct {
  const char *model_dir;     /* HF layout folder */
  const char *model_name;    /* the name /v1/models gives the base (default "base") */
  const char *host;          /* default 127.0.0.1 */
  int port;                  /* default 8080; 0 = any free port (tn_server_port) */
  const char *api_key;       /* NULL: no auth; else "Authorization: Bearer KEY" on /v1 */
  const char *route_file;    /* route.yaml for model "auto", or NULL */
  tn_load_opts load;         /* base/head dtypes */
  size_t max_body;           /* bytes (default 1 MiB) */
  int max_tokens;            /* cap on max_tokens per request (default 2048) */
  int default_max_tokens;    /* when the request gives none (default 256) */
  double timeout;            /* seconds a request may take in all (default 300) */
  int max_requests;          /* generation requests admitted at once (queued + running): 429 beyond (default 64) */
  int slots;                 /* sequences decoded together (default 16) */
  int ctx;                   /* tokens per slot (default min(max_position_embeddings, 4096)) */
  int quantum;               /* ignored (was the length of an adapter group's turn before mixed-adapter steps) */
  double stop_deadline;      /* SIGTERM: seconds in-flight requests may still run (default 10) */
  bool quiet;                /* no access log on stderr */
} tn_serve_opts;
void tn_serve_opts_default(tn_serve_opts *o);

typedef struct tn_server tn_server;
/* Load the model, tokenizer and route file; nothing listens yet. */
tn_status tn_server_create(const tn_serve_opts *o, tn_server **out);
/* Load a PEFT adapter under NAME (also at run time: POST /v1/adapters). */
tn_status tn_server_load_adapter(tn_server *sv, const char *name, const char *dir);
/* Remove adapter NAME from the registry; requests already using it finish on it (refcount). */
tn_status tn_server_unload_adapter(tn_server *sv, const char *name);
/* Extra routes: requests whose path starts with PREFIX ("/api/", "/ui") go to fn (first match in
 * registration order; fn returns 0 to decline). Register before tn_server_start. At most 16. */
tn_status tn_server_add_handler(tn_server *sv, const char *prefix, tn_http_handler fn, void *user);
/* Called once per finished /v1 request (from the scheduler thread, must not block long) with a
 * JSON object {"source":"serve","model","route","messages"|"prompt","completion"|"choices",
 * "usage","metadata"} - the conversation as a trace (--log-traces). */
typedef void (*tn_serve_trace_fn)(void *user, const char *trace_json);
void tn_server_set_trace_hook(tn_server *sv, tn_serve_trace_fn fn, void *user);
/* Bind and start the HTTP threads and the scheduler. */
tn_status tn_server_start(tn_server *sv);
int tn_server_port(const tn_server *sv);
/* Stop accepting, let in-flight requests finish until the deadline, cancel the rest, join. */
void tn_server_stop(tn_server *sv);
void tn_server_free(tn_server *sv);

/* ---- internal to src/serve ---- */
#ifdef TN_SERVE_INTERNAL
#include <pthread.h>
#include <cjson/cJSON.h>
#include "template/template.h"
#include "tokenizer/tokenizer.h"
#include "model/lora.h"

typedef struct srv_adapter {
  char name[64];
  char *path;
  tn_lora_set *set;          /* NULL for the base model */
  int refs;                  /* the registry's (1 while listed) + each request using it */
  bool removed;
  double created;
} srv_adapter;

/* growing byte buffer */
typedef struct { char *p; size_t n, cap; } srv_buf;
bool srv_buf_add(srv_buf *b, const char *s, size_t n);
bool srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* one choice (a prompt x a sample) of a request */
typedef struct {
  int prompt, index;         /* which prompt; the choice's index in the response */
  srv_buf text;              /* generated text (cut before a stop string at the end) */
  size_t sent;               /* bytes streamed */
  int ntok;
  int finish;                /* -1 running, else TN_FINISH_* ; 3 = cancelled/timeout */
  cJSON *lp;                 /* array of logprob entries when asked */
  size_t lp_sent;
  bool began;                /* the first chunk (with the role) went out */
  tn_detok_stream *ds;
} srv_choice;

enum { SRV_CHAT = 0, SRV_COMPLETION = 1 };
typedef struct srv_req {
  int kind;
  char id[40];
  char *model_name;          /* as asked ("auto" resolved to the route's adapter name) */
  char *route;               /* the category chosen for "auto", or NULL */
  const char *route_by;      /* "keywords", "classifier" or "default" */
  double route_score;        /* the classifier's log-prob score of the route (route_by "classifier") */
  srv_adapter *ad;           /* holds a reference */
  int **prompts; int *plens; int n_prompts;
  int n;                     /* samples per prompt */
  float temperature, top_p;
  float frequency_penalty, presence_penalty; /* OpenAI's, over each choice's generated tokens */
  uint64_t seed; bool has_seed;
  int max_tokens;
  char **stop; int n_stop;
  bool logprobs; int top_logprobs;
  bool stream, include_usage, echo;
  cJSON *tools;              /* the request's tools (tool calls are parsed when set) */
  tn_tool_format tool_fmt;
  cJSON *trace;              /* messages / prompt for the trace hook */
  double t_arrive, t_first, deadline;
  long created;
  /* shared between the HTTP thread and the scheduler: under mu */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  srv_choice *ch; int n_ch;
  srv_buf sse;               /* server-sent events not yet written */
  int live;                  /* choices still generating */
  bool done, cancelled, timed_out;
  char *error; int error_status;
  int refs;                  /* HTTP side + scheduler side */
  int prompt_tokens;
} srv_req;

typedef struct { char *prefix; tn_http_handler fn; void *user; } srv_handler;

typedef struct srv_route {
  char *category; char *adapter; char **kw; int nkw;
  char *label;               /* the classifier's continuation for this category (default " " + category) */
  int *lab_ids; int lab_n;   /* its tokens (the classifier's tokenizer, no special tokens) */
} srv_route;

/* the classifier of the "auto" model (route.yaml's `classifier:`, classify.c) */
typedef struct srv_classifier {
  char *adapter;             /* an adapter of the served base scores the labels, or NULL */
  char *model_dir;           /* or a separate small model (own tokenizer), or NULL: the base itself */
  char *prompt;              /* the classification prompt; "{text}" is replaced by the request's text */
  bool normalize;            /* score = mean log-prob per label token (true, default) or their sum */
  bool has_min; double min_score; /* below min_score: the default route */
  tn_model *m;               /* model_dir's (owned), else the server's */
  tn_tokenizer *tok;
  tn_state *st;              /* (1 + routes) slots: the prompt in 0, each label after it in its own */
  int T;                     /* tokens per slot */
  pthread_mutex_t mu;        /* one classification at a time */
} srv_classifier;

/* metrics (metrics.c), under the server's mutex */
#define SRV_NBUCKETS 12
typedef struct { double sum; long count; long b[SRV_NBUCKETS]; } srv_hist;
typedef struct {
  long requests[8];          /* by endpoint: chat, completions, models, health, metrics, adapters, page, other */
  long errors[6];            /* 400, 401, 404, 413, 429, 5xx */
  long prompt_tokens, completion_tokens, cancelled, timeouts;
  srv_hist ttft, per_token, latency, batch;
  long steps;
  long prefix_reused;        /* prompt tokens read from another sequence's cache instead of computed */
  long route_count[32];      /* by route index (last: the default) */
  long route_by[3];          /* decided by keywords, the classifier, the default */
  double classify_seconds;   /* time spent classifying */
} srv_metrics;

struct tn_server {
  tn_serve_opts o;
  char *model_dir, *model_name, *host, *api_key;
  tn_model *m;
  tn_tokenizer *tok;
  void *mhd;                 /* struct MHD_Daemon */
  int port;
  pthread_mutex_t mu;        /* registry, queue, metrics */
  pthread_cond_t cv;         /* the scheduler waits here */
  srv_adapter **ads; int n_ads, cap_ads; /* [0] is the base */
  srv_req **queue; int nq, capq;
  int admitted;              /* generation requests queued or running */
  int running;               /* requests in slots */
  bool stopping, stop_now, started;
  double stop_at;
  pthread_t sched;
  srv_handler handlers[16]; int n_handlers;
  tn_serve_trace_fn trace_fn; void *trace_user;
  srv_route *routes; int n_routes; char *route_default;
  srv_classifier *cls;       /* route.yaml's classifier, or NULL: keyword rules only */
  srv_metrics met;
  double t_start;
  long next_id;
};

/* sched.c */
void *srv_sched_main(void *sv);
void srv_req_unref(tn_server *sv, srv_req *r);
void srv_adapter_unref(tn_server *sv, srv_adapter *a);
srv_adapter *srv_adapter_get(tn_server *sv, const char *name); /* a reference, or NULL */
/* queue a request (takes the scheduler's reference); false with 429 when full */
bool srv_submit(tn_server *sv, srv_req *r);
/* api.c: the /v1 routes; returns 1 when handled. *stream_req set for a streaming response. */
int srv_api(tn_server *sv, const tn_http_request *rq, tn_http_reply *rp, srv_req **stream_req);
void srv_error(tn_http_reply *rp, int status, const char *type, const char *code, const char *fmt, ...)
  __attribute__((format(printf, 5, 6)));
/* the final response body of a finished non-streaming request */
char *srv_response_json(tn_server *sv, srv_req *r, int *status);
/* chunk building while generating (called by sched with r->mu held) */
void srv_stream_delta(tn_server *sv, srv_req *r, srv_choice *c, const char *piece, size_t len, bool final);
void srv_trace(tn_server *sv, srv_req *r);
/* the assistant message of a choice: content, or tool_calls parsed from the text when the request
 * had tools (*finish "tool_calls"); exposed for tests */
cJSON *srv_chat_message(const srv_req *r, const srv_choice *c, const char **finish);
/* route.c */
tn_status srv_route_load(tn_server *sv, const char *path);
/* the category index (n_routes = default) for the request's text by the keyword rules; *hits = the
 * keyword count of the chosen route (0: none matched) */
int srv_route_pick(const tn_server *sv, const char *text, int *hits);
/* "auto": keyword rules first (a match decides), then the classifier when there is one, else the
 * default; fills r->route, r->route_by, r->route_score and the metrics. -1 on error (message set). */
int srv_route_choose(tn_server *sv, const char *text, srv_req *r);
void srv_route_free(tn_server *sv);
/* classify.c: the classifier's setup (after route.yaml is read: its model, label tokens, state),
 * the scores, and freeing it */
tn_status srv_classifier_init(tn_server *sv, const char *path);
/* the route whose label has the highest log-prob (*score) after the classification prompt */
tn_status srv_classify(tn_server *sv, const char *text, int *best, double *score);
void srv_classifier_free(srv_classifier *c);
/* metrics.c */
void srv_hist_add(srv_hist *h, double v, const double *bounds);
extern const double srv_lat_bounds[SRV_NBUCKETS], srv_batch_bounds[SRV_NBUCKETS];
char *srv_metrics_text(tn_server *sv);
/* page.c */
extern const char srv_page_html[];
#endif
#endif
