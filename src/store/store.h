/* store.h - the trace and dataset store (docs/store.md): traces (model transcripts, game plays,
 * served conversations), immutable versioned datasets built from them (filters + a selection
 * strategy, a manifest with the sha256 of each export), and registered training runs.
 * One storage interface (tn_store_ops: a struct of operations on rows of JSON text) with SQLite
 * as its implementation (store_sqlite.c); validation, selection, exports and the HTTP routes
 * (store_http.c) sit on top of the interface and never see SQL.
 * Not for: the HTTP server (src/serve) or the trainers (they read an exported file). */
#ifndef TN_STORE_H
#define TN_STORE_H
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "base/base.h"
#include "base/http.h"

/* ---- the storage interface: rows of JSON text plus the few columns queries filter on ---- */
typedef struct tn_store_db tn_store_db; /* an implementation's connection */

typedef struct {
  const char *json;     /* the whole trace (validated, normalised) */
  const char *source;   /* indexed columns */
  const char *game;     /* may be NULL */
  const char *created_at;
  bool has_score;
  double score;
} tn_store_trace_row;

typedef struct {
  const char *source, *game, *since, *until; /* NULL = any; since/until: ISO-8601 UTC, inclusive */
  bool has_min_score;
  double min_score;
  int64_t before_id;    /* only ids < this (a page cursor); 0 = none */
  int64_t limit;        /* <= 0: all */
  int order;            /* 0 newest first (id desc), 1 best score first (scored only), 2 oldest first */
} tn_store_trace_query;

/* Each row of a listing: its id and JSON text (valid until the callback returns). */
typedef tn_status (*tn_store_row_fn)(void *ctx, int64_t id, const char *json);

/* Every operation is one transaction; writers wait for each other (busy timeout), readers see
 * a consistent snapshot. Status TN_OK, or an error with its message set. "Not found" and
 * "exists" are results, not errors (found / inserted flags). */
typedef struct {
  const char *name; /* "sqlite" */
  tn_status (*open)(tn_store_db **out, const char *path);
  void (*close)(tn_store_db *db);
  /* insert N traces in one transaction (all or none); ids[i] receives each id */
  tn_status (*traces_insert)(tn_store_db *db, const tn_store_trace_row *rows, int n, int64_t *ids);
  tn_status (*trace_get)(tn_store_db *db, int64_t id, char **json, bool *found);
  tn_status (*traces_query)(tn_store_db *db, const tn_store_trace_query *q, tn_store_row_fn fn, void *ctx);
  /* kind: "dataset" or "run"; insert only when KEY is absent (*inserted false: the existing
   * row's JSON is returned in *existing, the caller frees) */
  tn_status (*object_insert)(tn_store_db *db, const char *kind, const char *key, const char *json,
                             bool *inserted, char **existing);
  tn_status (*object_put)(tn_store_db *db, const char *kind, const char *key, const char *json); /* insert or replace */
  tn_status (*object_get)(tn_store_db *db, const char *kind, const char *key, char **json, bool *found);
  tn_status (*object_list)(tn_store_db *db, const char *kind, tn_store_row_fn fn, void *ctx); /* newest first; id = row order */
} tn_store_ops;

extern const tn_store_ops tn_store_sqlite_ops;

/* ---- the store: the interface plus the rules ---- */
typedef struct tn_store tn_store;
/* Open (creating) the store at PATH with the given implementation (NULL: SQLite). */
tn_status tn_store_open(tn_store **out, const char *path, const tn_store_ops *ops);
void tn_store_close(tn_store *s);
const char *tn_store_path(const tn_store *s);
/* The default database file: $TUNIC_STORE, else "tunic_store.db" in the working directory. */
const char *tn_store_default_path(void);

/* Results carry an HTTP-like code: 200/201 done, 400 bad input (message names the field),
 * 404 not found, 409 conflict, 500 storage failure. The message is tn_last_error(). */
typedef struct { int code; } tn_store_res;

/* POST /api/traces: BODY is one trace object, an array of them, or {"traces": [...]}.
 * *ids_out: a JSON array of the new ids (caller frees). */
tn_status tn_store_traces_add(tn_store *s, const cJSON *body, cJSON **ids_out, tn_store_res *r);
tn_status tn_store_trace_get(tn_store *s, int64_t id, cJSON **out, tn_store_res *r);
/* {"traces": [...], "next_cursor": "ID" | null}; limit 1..1000 (default 50) */
tn_status tn_store_traces_list(tn_store *s, const tn_store_trace_query *q, cJSON **out, tn_store_res *r);

/* POST /api/datasets/build: REQ {"dataset_name", "dataset_version", "filters", "limit",
 * "selection_strategy": "latest"|"random"|"top_score", "seed"}. *manifest_out: the manifest
 * (r->code 201 when built, 200 when an identical build already existed, 409 otherwise). */
tn_status tn_store_dataset_build(tn_store *s, const cJSON *req, cJSON **manifest_out, tn_store_res *r);
tn_status tn_store_dataset_get(tn_store *s, const char *key, cJSON **manifest_out, tn_store_res *r);
tn_status tn_store_datasets_list(tn_store *s, cJSON **out, tn_store_res *r);
/* The export of dataset KEY in FORMAT (tunix_sft | messages | prompt_completion | dpo) as JSONL
 * text; its sha256 is checked against the manifest's (a mismatch is a 500 error). */
tn_status tn_store_dataset_export(tn_store *s, const char *key, const char *format, char **text, size_t *len,
                                  tn_store_res *r);
/* The export as a file (atomic write), returning the manifest too (build id). */
tn_status tn_store_dataset_export_file(tn_store *s, const char *key, const char *format, const char *path,
                                       cJSON **manifest_out, tn_store_res *r);
extern const char *const tn_store_formats[]; /* NULL-terminated */

/* POST /api/runs: REQ {"run_dir", optional "id", "dataset", "eval_before", "eval_after"}. */
tn_status tn_store_run_register(tn_store *s, const cJSON *req, cJSON **out, tn_store_res *r);
/* GET /api/runs/ID: the record plus the manifest and the metrics rows (with_metrics). */
tn_status tn_store_run_get(tn_store *s, const char *id, bool with_metrics, cJSON **out, tn_store_res *r);
tn_status tn_store_runs_list(tn_store *s, cJSON **out, tn_store_res *r);
/* The before/after report of run ID (src/eval/report) as Markdown. */
tn_status tn_store_run_report(tn_store *s, const char *id, char **markdown, tn_store_res *r);

/* High-card duel (src/agent/hcd): play COUNT games from SEED, store each as a trace when
 * PERSIST; *out {"ids": [...], "games": N, "seed": S} (the games too when not persisted). */
tn_status tn_store_hcd_generate(tn_store *s, const cJSON *req, cJSON **out, tn_store_res *r);

/* The HTTP routes /api/... and /ui/ (a tn_http_handler; USER is a tn_store*). */
int tn_store_http(void *user, const tn_http_request *rq, tn_http_reply *rp);
/* tunic serve --log-traces: the server's trace hook (tn_serve_trace_fn; USER is a tn_store*): each
 * served conversation {"source":"serve","model","route","messages"|"prompt"+"completion",
 * "usage","metadata"} stored as a trace (route, tools and usage kept in its metadata; message
 * contents as text). One short transaction on the calling thread; a failure is logged, never fatal. */
void tn_store_trace_hook(void *user, const char *trace_json);
#endif
