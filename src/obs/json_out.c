/* json_out.c - the few bits of JSON text the streaming writers (metrics.jsonl, trace) need:
 * numbers that read back exactly (NaN/Inf -> null) and escaped strings.
 * Not for: parsing or building documents (use cJSON). */
#include "obs/obs.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include "tokenizer/tokenizer.h"

char *tn_json_number(char *buf, double v) {
  if (!isfinite(v)) {
    snprintf(buf, 32, "null");
    return buf;
  }
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(buf, 32, "%.0f", v);
    if (v == 0 && signbit(v)) snprintf(buf, 32, "0");
    return buf;
  }
  for (int p = 6; p <= 17; p++) {
    snprintf(buf, 32, "%.*g", p, v);
    if (strtod(buf, NULL) == v) break;
  }
  return buf;
}

char *tn_json_print_valid(const cJSON *j, bool formatted) {
  char *text = formatted ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
  char *valid = text ? tn_utf8_valid_dup(text) : NULL;
  free(text);
  return valid;
}

void tn_json_write_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    case '\b': fputs("\\b", f); break;
    case '\f': fputs("\\f", f); break;
    default:
      if (*p < 0x20) fprintf(f, "\\u%04x", *p);
      else fputc(*p, f);
    }
  }
  fputc('"', f);
}
