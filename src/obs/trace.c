/* trace.c - Chrome / Perfetto trace in the Trace Event Format (JSON array form):
 *   [{"name":"process_name","ph":"M",...}
 *   ,{"name":"rollout","ph":"X","ts":12.0,"dur":3400.5,"pid":1,"tid":1}
 *   ...
 *   ]
 * Each event after the first starts with a comma, so a file cut short by a kill is a valid
 * JSON array once "]" is appended, and Perfetto / chrome://tracing read it as it is.
 * Not for: metrics (metrics.c) or sampling profiles. */
#include "obs/obs.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { TRACE_DEPTH = 64, TRACE_NAME = 64 };

struct tn_trace {
  FILE *f;
  char *path;
  pthread_mutex_t mu;
  double t0;         /* tn_now() at open: ts are microseconds since then */
  double last_flush;
  int pid;
  bool io_error;
};

typedef struct {
  const tn_trace *t;
  double start;
  char name[TRACE_NAME];
} span;
static _Thread_local span tl_stack[TRACE_DEPTH];
static _Thread_local int tl_depth;
static _Thread_local int tl_tid;

static int this_tid(void) {
  if (!tl_tid) tl_tid = (int)syscall(SYS_gettid);
  return tl_tid;
}

/* caller holds t->mu */
static void flush_maybe(tn_trace *t, bool force) {
  double now = tn_now();
  if (force || now - t->last_flush > 0.5) {
    if (fflush(t->f) != 0) t->io_error = true;
    t->last_flush = now;
  }
}

tn_status tn_trace_open(tn_trace **out, const char *path) {
  *out = NULL;
  char *dir = path ? tn_strdup(path) : NULL;
  if (!dir) return tn_error(TN_ERR_NOMEM, "trace: out of memory");
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    tn_status s = tn_mkdirs(dir);
    if (s != TN_OK) { free(dir); return s; }
  }
  free(dir);
  tn_trace *t = calloc(1, sizeof *t);
  if (!t) return tn_error(TN_ERR_NOMEM, "out of memory");
  t->f = fopen(path, "wb");
  if (!t->f) {
    free(t);
    return tn_error(TN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
  }
  t->path = tn_strdup(path);
  if (!t->path) {
    fclose(t->f);
    free(t);
    return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  }
  pthread_mutex_init(&t->mu, NULL);
  t->t0 = tn_now();
  t->pid = (int)getpid();
  fprintf(t->f, "[{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"tunic\"}}\n",
          t->pid, this_tid());
  flush_maybe(t, true);
  if (t->io_error) {
    fclose(t->f);
    free(t->path);
    free(t);
    return tn_error(TN_ERR_IO, "%s: write failed", path);
  }
  *out = t;
  return TN_OK;
}

static void write_complete(tn_trace *t, const char *name, double start, double end, int depth) {
  pthread_mutex_lock(&t->mu);
  fputs(",{\"name\":", t->f);
  tn_json_write_string(t->f, name);
  fprintf(t->f, ",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d}\n",
          (start - t->t0) * 1e6, (end - start) * 1e6, t->pid, this_tid());
  flush_maybe(t, depth == 0);
  pthread_mutex_unlock(&t->mu);
}

void tn_trace_begin(tn_trace *t, const char *name) {
  if (!t) return;
  if (tl_depth >= TRACE_DEPTH) { tl_depth++; return; } /* too deep: counted, not recorded */
  span *s = &tl_stack[tl_depth++];
  s->t = t;
  snprintf(s->name, sizeof s->name, "%s", name ? name : "");
  s->start = tn_now();
}

void tn_trace_end(tn_trace *t) {
  if (!t || tl_depth <= 0) return;
  double end = tn_now();
  tl_depth--;
  if (tl_depth >= TRACE_DEPTH) return;
  span *s = &tl_stack[tl_depth];
  if (s->t != t) return; /* mismatched begin/end across tracers: drop */
  write_complete(t, s->name, s->start, end, tl_depth);
}

void tn_trace_span(tn_trace *t, const char *name, double t0, double t1) {
  if (!t) return;
  write_complete(t, name ? name : "", t0, t1, tl_depth);
}

void tn_trace_counter(tn_trace *t, const char *name, double value) {
  if (!t) return;
  char num[32];
  pthread_mutex_lock(&t->mu);
  fputs(",{\"name\":", t->f);
  tn_json_write_string(t->f, name ? name : "");
  fprintf(t->f, ",\"ph\":\"C\",\"ts\":%.3f,\"pid\":%d,\"tid\":%d,\"args\":{\"value\":%s}}\n",
          (tn_now() - t->t0) * 1e6, t->pid, this_tid(), tn_json_number(num, value));
  flush_maybe(t, false);
  pthread_mutex_unlock(&t->mu);
}

tn_status tn_trace_close(tn_trace *t) {
  if (!t) return TN_OK;
  fputs("]\n", t->f);
  bool bad = t->io_error || ferror(t->f);
  if (fclose(t->f) != 0) bad = true;
  tn_status s = bad ? tn_error(TN_ERR_IO, "%s: write failed", t->path) : TN_OK;
  pthread_mutex_destroy(&t->mu);
  free(t->path);
  free(t);
  return s;
}
