/* tunic/obs.h - observability for training runs: TensorBoard event files, metrics.jsonl,
 * Chrome/Perfetto trace, run_manifest.json, a progress bar, and the YAML run-config loader
 * (--config run.yaml with command-line flags overriding the file).
 * Every writer flushes as it goes so a run killed with SIGKILL keeps its curves.
 * All handles may be NULL in the logging calls (the call does nothing), so a trainer can
 * switch a writer off without sprinkling ifs. docs/observability.md describes the files. */
#ifndef TUNIC_OBS_H
#define TUNIC_OBS_H
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "tunic/base.h"

struct cJSON;

/* ---------------- TensorBoard event file ----------------
 * Writes DIR/events.out.tfevents.<unix time>.<hostname> (TFRecord framing, Event protobufs;
 * the first event carries file_version "brain.Event:2"). The directory is created. */
typedef struct tn_tb tn_tb;
TN_API tn_status tn_tb_open(tn_tb **out, const char *dir);
/* One scalar (Summary.Value.simple_value) at STEP. NaN/Inf are written as they are. */
TN_API tn_status tn_tb_scalar(tn_tb *tb, const char *tag, int64_t step, float value);
/* N scalars of one step in one Event (what TensorBoard reads as N tags at STEP). */
TN_API tn_status tn_tb_scalars(tn_tb *tb, int64_t step, int n, const char *const tags[], const float values[]);
/* A SessionLog START event at STEP: TensorBoard then drops the events of earlier files
 * with step >= STEP (the steps a resumed run logs again). */
TN_API tn_status tn_tb_session_start(tn_tb *tb, int64_t step);
/* Write buffered records to the OS. Also done automatically once a second. */
TN_API tn_status tn_tb_flush(tn_tb *tb);
TN_API void tn_tb_close(tn_tb *tb);
TN_API const char *tn_tb_path(const tn_tb *tb);

/* ---------------- metrics.jsonl (+ TensorBoard mirror) ----------------
 * RUN_DIR/metrics.jsonl gets one JSON object per step: {"step":N,"key":value,...}, appended,
 * flushed at the end of each line. Every numeric value is mirrored to the TensorBoard file in
 * RUN_DIR. NaN and +-Inf are written as null in JSON (JSON has no NaN); TensorBoard gets the
 * raw value. */
typedef struct tn_metrics tn_metrics;
TN_API tn_status tn_metrics_open(tn_metrics **out, const char *run_dir);
/* Same, without the TensorBoard mirror. */
TN_API tn_status tn_metrics_open_jsonl(tn_metrics **out, const char *run_dir);
/* One line with N numeric fields. */
TN_API tn_status tn_metrics_log(tn_metrics *m, int64_t step, int n, const char *const keys[], const double values[]);
/* Builder: begin a line, add fields, commit (writes + flushes the line and the TB event).
 * Strings are JSON-escaped and not mirrored to TensorBoard. Up to 128 fields a line. */
TN_API void tn_metrics_begin(tn_metrics *m, int64_t step);
TN_API void tn_metrics_add(tn_metrics *m, const char *key, double value);
TN_API void tn_metrics_add_str(tn_metrics *m, const char *key, const char *value);
TN_API tn_status tn_metrics_commit(tn_metrics *m);
TN_API tn_status tn_metrics_close(tn_metrics *m);
/* For --resume, after opening: mark in TensorBoard that the run restarts at STEP (the first
 * step that will be logged again), so the old event file's later steps are not shown twice. */
TN_API tn_status tn_metrics_resumed(tn_metrics *m, int64_t step);
/* For --resume: drop lines of RUN_DIR/metrics.jsonl whose "step" is > STEP (they were logged
 * after the checkpoint being resumed from). Atomic rewrite; a missing file is fine. */
TN_API tn_status tn_metrics_truncate_after(const char *run_dir, int64_t step);

/* ---------------- Chrome / Perfetto trace ----------------
 * Trace Event Format, JSON array form: "[" then complete events ("ph":"X", ts/dur in
 * microseconds since open, pid, tid). tn_trace_close writes the closing "]". A file cut short
 * by a kill lacks only the "]" — Perfetto and chrome://tracing load it as it is.
 * Spans nest per thread (up to 64 deep); names are copied (up to 63 bytes). Thread-safe. */
typedef struct tn_trace tn_trace;
TN_API tn_status tn_trace_open(tn_trace **out, const char *path);
TN_API void tn_trace_begin(tn_trace *t, const char *name);
TN_API void tn_trace_end(tn_trace *t);
/* A complete span from T0 to T1 (tn_now() seconds) on the calling thread. */
TN_API void tn_trace_span(tn_trace *t, const char *name, double t0, double t1);
/* A counter track ("ph":"C"), e.g. loss or memory. */
TN_API void tn_trace_counter(tn_trace *t, const char *name, double value);
TN_API tn_status tn_trace_close(tn_trace *t);

/* ---------------- run_manifest.json ---------------- */
typedef struct {
  const char *role; /* "model", "teacher", "reference", "train", "eval", ... */
  const char *path;
} tn_manifest_file;
typedef struct {
  const char *command;            /* "sft", "grpo", ... */
  const char *run_id;             /* NULL: <UTC yyyymmdd-HHMMSS>-<6 hex> */
  const struct cJSON *config;     /* the full resolved config (copied), or */
  const char *config_json;        /* the same as JSON text; NULL both: {} */
  uint64_t seed;
  const tn_manifest_file *models; /* each: path (a directory or its config.json) + sha256 of config.json */
  int nmodels;
  const tn_manifest_file *data;   /* each: path + sha256 + bytes of the file */
  int ndata;
  int argc;                       /* the command line, recorded as given (may be 0) */
  char **argv;
  const struct cJSON *extra;      /* more top-level fields (copied), may be NULL */
} tn_manifest_info;
/* Write RUN_DIR/run_manifest.json atomically (RUN_DIR is created). If RUN_ID_OUT is not NULL
 * it receives the run id (up to 63 chars + NUL, so give 64 bytes). */
TN_API tn_status tn_manifest_write(const char *run_dir, const tn_manifest_info *info, char *run_id_out);
/* Read RUN_DIR/run_manifest.json, set top-level KEY to VALUE (taken over, freed), rewrite it
 * atomically. E.g. at the end: "status" = "completed", "end_time" = ISO string. */
TN_API tn_status tn_manifest_set(const char *run_dir, const char *key, struct cJSON *value);
/* Current UTC time as "2025-01-31T12:34:56Z" into BUF (at least 21 bytes). */
TN_API void tn_iso8601_utc(char *buf, size_t n);

/* ---------------- progress ----------------
 * On a terminal: a bar redrawn in place (at most 10 times a second) with step/total, percent,
 * loss, lr, tokens/s and ETA. Otherwise plain lines every INTERVAL seconds (default 10) and at
 * the first and last step:  "step 120/500 loss 1.234 lr 3e-4 4321 tok/s eta 1m20s".
 * Environment TN_PROGRESS=bar|plain|off overrides the choice. */
typedef struct tn_progress tn_progress;
enum { TN_PROGRESS_AUTO, TN_PROGRESS_BAR, TN_PROGRESS_PLAIN, TN_PROGRESS_OFF };
/* OUT NULL means stderr. LABEL (may be NULL) prefixes each line, e.g. "sft". */
TN_API tn_progress *tn_progress_new(FILE *out, int64_t total, const char *label, int mode);
TN_API void tn_progress_set_interval(tn_progress *p, double seconds);
/* NaN for loss / lr / tok_s leaves the field out; EXTRA (may be NULL) is appended as is. */
TN_API void tn_progress_update(tn_progress *p, int64_t step, double loss, double lr, double tok_s, const char *extra);
/* Erase the bar so other output can be printed (it is redrawn at the next update). */
TN_API void tn_progress_clear(tn_progress *p);
TN_API void tn_progress_finish(tn_progress *p);
/* "1m20s", "2h03m", "45s" */
TN_API void tn_format_duration(double seconds, char *buf, size_t n);

/* ---------------- run config: YAML file + flags ----------------
 * A command declares its options once (same shape as the CLI's tn_flag table):
 *   's' const char ** (points into storage owned by the tn_runcfg), 'i' int, 'f' float,
 *   'b' bool, 'u' uint64_t, 'd' double. The initial value of *dst is the default.
 * tn_runcfg_parse reads argv (argv[0] is the subcommand name): --config FILE (or --config=FILE)
 * loads a YAML mapping first, then every --flag overrides the file's value. YAML keys and flag
 * names match with '-' and '_' treated alike; nested mappings are flattened with dots
 * ("optim: {lr: 1e-4}" is the option "optim.lr"); a sequence becomes the comma-joined string
 * ("reward: [format, answer]" is "format,answer"). A null / empty value keeps the default.
 * Errors name the file, line, key, value and expected type. */
typedef struct {
  const char *name; /* without leading dashes */
  char type;        /* 's' 'i' 'f' 'b' 'u' 'd' */
  void *dst;
  const char *help;
} tn_opt;
typedef struct tn_runcfg tn_runcfg;
TN_API tn_runcfg *tn_runcfg_new(const tn_opt *opts, int nopts);
TN_API void tn_runcfg_free(tn_runcfg *rc);
/* Raw key -> string table of a YAML file (flattened as above), for tools and tests.
 * Calls FN for each key in file order; stops early if FN returns non-zero. */
TN_API tn_status tn_runcfg_read_yaml(const char *path, int (*fn)(const char *key, const char *value, int line, void *ctx), void *ctx);
/* Load a YAML file into RC: unknown key or wrong type is an error. */
TN_API tn_status tn_runcfg_load_file(tn_runcfg *rc, const char *path);
/* Set one option from a string; ORIGIN names where it came from ("--lr", "run.yaml:3"). */
TN_API tn_status tn_runcfg_set(tn_runcfg *rc, const char *name, const char *value, const char *origin);
/* The whole argv: --config first, then flags. *HELP is set when --help/-h was given (usage was
 * printed to stdout; the caller should return 0). Values are written into the dst pointers. */
TN_API tn_status tn_runcfg_parse(tn_runcfg *rc, int argc, char **argv, const char *usage, bool *help);
/* Write the values set so far into the dst pointers (done by tn_runcfg_parse). */
TN_API tn_status tn_runcfg_apply(tn_runcfg *rc);
/* Where option NAME's value came from: "default", "--name" or "FILE:LINE". */
TN_API const char *tn_runcfg_origin(const tn_runcfg *rc, const char *name);
/* The resolved values (after apply) as a new cJSON object, typed (numbers, bools, strings,
 * null for an unset string); the caller frees it with cJSON_Delete. */
TN_API struct cJSON *tn_runcfg_json(const tn_runcfg *rc);
/* Print "  name = value   (origin)" for every option to F. */
TN_API void tn_runcfg_print(const tn_runcfg *rc, FILE *f, const char *title);
TN_API void tn_runcfg_usage(const tn_runcfg *rc, FILE *f, const char *cmd, const char *usage);

#endif
