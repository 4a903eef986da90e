/* jsonl.c - one JSON object per line, with errors naming FILE:LINE: the reader
 * every dataset loader (SFT, prompts, preferences) goes through (through schema.c's
 * tn_data_read). Blank lines are skipped; a line that is not a JSON object is an error.
 * A file whose first character is '[' is read as one array of objects (.json). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"

/* a .json file holding one array: each element with the line it starts on */
static tn_status read_array(const char *path, char *data, size_t len, char *q, tn_jsonl_fn fn, void *ctx) {
  char where[512];
  const long nul = tn_json_nul_offset(data, len);
  if (nul >= 0)
    return tn_error(TN_ERR_FORMAT, "%s: byte %ld: a NUL character (\\u0000 or a 0 byte), which tunic's strings cannot hold", path, nul + 1);
  int line = 1;
  const char *counted = data;
  q++; /* past '[' */
  for (int i = 0;; i++) {
    while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n') q++;
    if (*q == ']' && i == 0) break;
    for (; counted < q; counted++) line += *counted == '\n';
    snprintf(where, sizeof where, "%s:%d", path, line);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(q, &end, false);
    if (!cJSON_IsObject(j)) {
      tn_status s = j ? tn_error(TN_ERR_FORMAT, "%s: element %d of the array: expected a JSON object", where, i)
                      : tn_error(TN_ERR_FORMAT, "%s: element %d of the array: invalid JSON", where, i);
      cJSON_Delete(j);
      return s;
    }
    TN_TRY(fn(ctx, j, where)); /* fn takes ownership of j */
    q = (char *)end;
    while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n') q++;
    if (*q == ']') break;
    if (*q != ',') {
      for (; counted < q; counted++) line += *counted == '\n';
      return tn_error(TN_ERR_FORMAT, "%s:%d: expected ',' or ']' after element %d of the array", path, line, i);
    }
    q++;
  }
  for (q++; *q; q++)
    if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
      return tn_error(TN_ERR_FORMAT, "%s: text after the array's closing ']'", path);
  (void)len;
  return TN_OK;
}

tn_status tn_jsonl_read(const char *path, tn_jsonl_fn fn, void *ctx) {
  char *data;
  size_t len;
  TN_TRY(tn_read_file(path, &data, &len));
  char *first = data;
  while (first < data + len && (*first == ' ' || *first == '\t' || *first == '\r' || *first == '\n')) first++;
  if (first < data + len && *first == '[') {
    tn_status s = read_array(path, data, len, first, fn, ctx);
    free(data);
    return s;
  }
  tn_status s = TN_OK;
  int line = 0;
  char where[512];
  for (char *p = data; p < data + len && s == TN_OK;) {
    char *e = memchr(p, '\n', (size_t)(data + len - p));
    if (!e) e = data + len;
    *e = 0;
    line++;
    char *q = p;
    p = e + 1;
    while (*q == ' ' || *q == '\t' || *q == '\r') q++;
    if (!*q) continue;
    snprintf(where, sizeof where, "%s:%d", path, line);
    const long nul = tn_json_nul_offset(q, (size_t)(e - q));
    if (nul >= 0) { /* a C string would end there: the rest of the text silently lost */
      s = tn_error(TN_ERR_FORMAT, "%s: column %ld: a NUL character (\\u0000 or a 0 byte), which tunic's strings cannot hold",
                   where, nul + 1);
      break;
    }
    const size_t bad = tn_utf8_invalid_at(q, (size_t)(e - q)); /* JSON text is UTF-8 (RFC 8259) */
    if (bad != SIZE_MAX) { s = tn_error(TN_ERR_FORMAT, "%s: invalid UTF-8 at column %zu", where, bad + 1); break; }
    const char *end = NULL;
    const long f0 = tn_alloc_failures();
    cJSON *j = cJSON_ParseWithOpts(q, &end, true);
    if (!cJSON_IsObject(j)) {
      s = j                               ? tn_error(TN_ERR_FORMAT, "%s: expected a JSON object", where)
          : tn_alloc_failures() != f0 ? tn_error(TN_ERR_NOMEM, "%s: out of memory parsing the line", where)
                                      : tn_error(TN_ERR_FORMAT, "%s: invalid JSON near column %d", where, (int)((end ? end : q) - q) + 1);
      cJSON_Delete(j);
      break;
    }
    s = fn(ctx, j, where); /* fn takes ownership of j */
  }
  free(data);
  return s;
}

tn_status tn_jsonl_rows_add(void *rows, cJSON *obj, const char *where) {
  tn_jsonl_rows *r = rows;
  if (r->n == r->cap) {
    int64_t cap = r->cap ? 2 * r->cap : 64;
    cJSON **nr = realloc(r->rows, sizeof *nr * cap);
    if (!nr) { cJSON_Delete(obj); return tn_error(TN_ERR_NOMEM, "%s: out of memory", where); }
    r->rows = nr;
    r->cap = cap;
  }
  r->rows[r->n++] = obj;
  return TN_OK;
}

void tn_jsonl_rows_free(tn_jsonl_rows *r) {
  for (int64_t i = 0; i < r->n; i++) cJSON_Delete(r->rows[i]);
  free(r->rows);
  *r = (tn_jsonl_rows){0};
}
