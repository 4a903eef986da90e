/* jsonl.c - one JSON object per line, with errors naming FILE:LINE: the reader
 * every dataset loader (SFT, prompts, preferences) goes through. Blank lines are
 * skipped; a line that is not a JSON object is an error. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"

tn_status tn_jsonl_read(const char *path, tn_jsonl_fn fn, void *ctx) {
  char *data;
  size_t len;
  TN_TRY(tn_read_file(path, &data, &len));
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
    /* JSON text is UTF-8 (RFC 8259) and holds no raw NUL: refused here, not passed on to
     * the tokenizer, the outputs or a reward process */
    const size_t ll = (size_t)(e - q), bad = tn_utf8_invalid_at(q, ll);
    const char *nul = memchr(q, 0, ll);
    if (nul) { s = tn_error(TN_ERR_FORMAT, "%s: a NUL byte at column %d", where, (int)(nul - q) + 1); break; }
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
