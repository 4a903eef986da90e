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
    const long nul = tn_json_nul_offset(q, (size_t)(e - q));
    if (nul >= 0) { /* a C string would end there: the rest of the text silently lost */
      s = tn_error(TN_ERR_FORMAT, "%s: column %ld: a NUL character (\\u0000 or a 0 byte), which tunic's strings cannot hold",
                   where, nul + 1);
      break;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(q, &end, true);
    if (!cJSON_IsObject(j)) {
      s = j ? tn_error(TN_ERR_FORMAT, "%s: expected a JSON object", where)
            : tn_error(TN_ERR_FORMAT, "%s: invalid JSON near column %d", where, (int)((end ? end : q) - q) + 1);
      cJSON_Delete(j);
      break;
    }
    s = fn(ctx, j, where); /* fn takes ownership of j */
  }
  free(data);
  return s;
}
