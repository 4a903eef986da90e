/* metrics.c - RUN_DIR/metrics.jsonl: one JSON object per step, appended and flushed line by
 * line, with every numeric field mirrored to the run's TensorBoard event file.
 * NaN / Inf become null in JSON (JSON has no NaN); TensorBoard gets the raw float.
 * Not for: per-example results (eval writes its own files) or trace spans (trace.c). */
#include "obs/obs.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { TN_METRICS_MAX_FIELDS = 128 };

struct tn_metrics {
  FILE *f;
  char *path;
  tn_tb *tb;
  bool open_line; /* between begin and commit */
  bool failed;    /* a write failed in the current line */
  int64_t step;
  int ntb;
  char *tags[TN_METRICS_MAX_FIELDS]; /* owned copies, reused across lines */
  size_t tag_cap[TN_METRICS_MAX_FIELDS];
  float vals[TN_METRICS_MAX_FIELDS];
  char iobuf[1 << 16];
};

static tn_status open_common(tn_metrics **out, const char *run_dir, bool with_tb) {
  *out = NULL;
  TN_TRY(tn_mkdirs(run_dir));
  tn_metrics *m = calloc(1, sizeof *m);
  if (!m) return tn_error(TN_ERR_NOMEM, "out of memory");
  m->path = tn_path_join(run_dir, "metrics.jsonl");
  if (!m->path) { free(m); return tn_error(TN_ERR_NOMEM, "%s: out of memory", run_dir); }
  m->f = fopen(m->path, "ab");
  if (!m->f) {
    tn_status s = tn_error(TN_ERR_IO, "%s: cannot open for append: %s", m->path, strerror(errno));
    free(m->path);
    free(m);
    return s;
  }
  /* Whole lines go out in one write() at commit: a kill leaves no half line. */
  setvbuf(m->f, m->iobuf, _IOFBF, sizeof m->iobuf);
  if (with_tb) {
    tn_status s = tn_tb_open(&m->tb, run_dir);
    if (s != TN_OK) {
      fclose(m->f);
      free(m->path);
      free(m);
      return s;
    }
  }
  *out = m;
  return TN_OK;
}

tn_status tn_metrics_open(tn_metrics **out, const char *run_dir) { return open_common(out, run_dir, true); }
tn_status tn_metrics_open_jsonl(tn_metrics **out, const char *run_dir) { return open_common(out, run_dir, false); }

tn_status tn_metrics_resumed(tn_metrics *m, int64_t step) { return m ? tn_tb_session_start(m->tb, step) : TN_OK; }

void tn_metrics_begin(tn_metrics *m, int64_t step) {
  if (!m) return;
  if (m->open_line) fputs("}\n", m->f); /* an uncommitted line: close it rather than corrupt the file */
  m->open_line = true;
  m->failed = false;
  m->step = step;
  m->ntb = 0;
  fprintf(m->f, "{\"step\":%lld", (long long)step);
}

void tn_metrics_add(tn_metrics *m, const char *key, double value) {
  if (!m || !m->open_line) return;
  char num[32];
  fputc(',', m->f);
  tn_json_write_string(m->f, key);
  fputc(':', m->f);
  fputs(tn_json_number(num, value), m->f);
  if (m->tb && m->ntb < TN_METRICS_MAX_FIELDS) {
    int i = m->ntb;
    size_t kl = strlen(key) + 1;
    if (m->tag_cap[i] < kl) {
      char *t = realloc(m->tags[i], kl < 64 ? 64 : kl);
      if (!t) { m->failed = true; return; }
      m->tags[i] = t;
      m->tag_cap[i] = kl < 64 ? 64 : kl;
    }
    memcpy(m->tags[i], key, kl);
    m->vals[i] = (float)value;
    m->ntb++;
  }
}

void tn_metrics_add_str(tn_metrics *m, const char *key, const char *value) {
  if (!m || !m->open_line) return;
  fputc(',', m->f);
  tn_json_write_string(m->f, key);
  fputc(':', m->f);
  if (value) tn_json_write_string(m->f, value);
  else fputs("null", m->f);
}

tn_status tn_metrics_commit(tn_metrics *m) {
  if (!m || !m->open_line) return TN_OK;
  m->open_line = false;
  fputs("}\n", m->f);
  if (fflush(m->f) != 0 || ferror(m->f))
    return tn_error(TN_ERR_IO, "%s: write failed: %s", m->path, strerror(errno));
  if (m->failed) return tn_error(TN_ERR_NOMEM, "%s: out of memory for TensorBoard tags", m->path);
  if (m->tb && m->ntb) {
    TN_TRY(tn_tb_scalars(m->tb, m->step, m->ntb, (const char *const *)m->tags, m->vals));
    TN_TRY(tn_tb_flush(m->tb));
  }
  return TN_OK;
}

tn_status tn_metrics_log(tn_metrics *m, int64_t step, int n, const char *const keys[], const double values[]) {
  if (!m) return TN_OK;
  tn_metrics_begin(m, step);
  for (int i = 0; i < n; i++) tn_metrics_add(m, keys[i], values[i]);
  return tn_metrics_commit(m);
}

tn_status tn_metrics_close(tn_metrics *m) {
  if (!m) return TN_OK;
  tn_status s = TN_OK;
  if (m->open_line) s = tn_metrics_commit(m);
  if (fclose(m->f) != 0 && s == TN_OK) s = tn_error(TN_ERR_IO, "%s: close failed: %s", m->path, strerror(errno));
  tn_tb_close(m->tb);
  for (int i = 0; i < TN_METRICS_MAX_FIELDS; i++) free(m->tags[i]);
  free(m->path);
  free(m);
  return s;
}

tn_status tn_metrics_truncate_after(const char *run_dir, int64_t step) {
  char *path = tn_path_join(run_dir, "metrics.jsonl");
  if (!path) return tn_error(TN_ERR_NOMEM, "%s: out of memory", run_dir);
  if (!tn_file_exists(path)) { free(path); return TN_OK; }
  char *text = NULL;
  size_t len = 0;
  tn_status s = tn_read_file(path, &text, &len);
  if (s != TN_OK) { free(path); return s; }
  char *out = malloc(len + 1);
  if (!out) {
    free(text);
    free(path);
    return tn_error(TN_ERR_NOMEM, "out of memory");
  }
  size_t n = 0;
  for (char *line = text; *line;) {
    char *nl = strchr(line, '\n');
    size_t ll = nl ? (size_t)(nl - line) : strlen(line);
    char saved = line[ll];
    line[ll] = 0;
    cJSON *j = cJSON_Parse(line);
    line[ll] = saved;
    cJSON *st = j ? cJSON_GetObjectItemCaseSensitive(j, "step") : NULL;
    /* keep complete lines up to STEP; drop later ones and a torn last line */
    if (cJSON_IsNumber(st) && st->valuedouble <= (double)step && nl) {
      memcpy(out + n, line, ll + 1);
      n += ll + 1;
    }
    cJSON_Delete(j);
    line = nl ? nl + 1 : line + ll;
  }
  s = tn_write_file_atomic(path, out, n);
  free(out);
  free(text);
  free(path);
  return s;
}
