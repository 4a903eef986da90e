/* json.c - checked field access on cJSON objects (see json.h). */
#include "base/json.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

const cJSON *tn_json_field(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  return v && !cJSON_IsNull(v) ? v : NULL;
}

cJSON *tn_json_field_mut(const cJSON *obj, const char *key) { return (cJSON *)tn_json_field(obj, key); }

const char *tn_json_describe(const cJSON *v, char *buf, size_t n) {
  if (!v) snprintf(buf, n, "nothing");
  else if (cJSON_IsNull(v)) snprintf(buf, n, "null");
  else if (cJSON_IsBool(v)) snprintf(buf, n, "%s", cJSON_IsTrue(v) ? "true" : "false");
  else if (cJSON_IsNumber(v)) snprintf(buf, n, "%.17g", v->valuedouble);
  else if (cJSON_IsString(v)) snprintf(buf, n, "a string");
  else if (cJSON_IsArray(v)) snprintf(buf, n, "a list");
  else if (cJSON_IsObject(v)) snprintf(buf, n, "an object");
  else snprintf(buf, n, "an invalid value");
  return buf;
}

static tn_status missing(const char *where, const char *key) {
  return tn_error(TN_ERR_FORMAT, "%s: missing required field '%s'", where, key);
}

static tn_status bad(const char *where, const char *key, const char *what, const cJSON *v) {
  char d[64];
  return tn_error(TN_ERR_FORMAT, "%s: field '%s' must be %s (got %s)", where, key, what, tn_json_describe(v, d, sizeof d));
}

tn_status tn_json_int(const cJSON *obj, const char *where, const char *key, bool required, long long lo,
                      long long hi, long long def, long long *out) {
  const cJSON *v = tn_json_field(obj, key);
  if (!v) {
    if (required) return missing(where, key);
    *out = def;
    return TN_OK;
  }
  double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
  if (!(x >= (double)lo && x <= (double)hi) || x != floor(x)) {
    char what[96];
    snprintf(what, sizeof what, "an integer in [%lld, %lld]", lo, hi);
    return bad(where, key, what, v);
  }
  *out = (long long)x;
  return TN_OK;
}

tn_status tn_json_int32(const cJSON *obj, const char *where, const char *key, bool required, int lo, int hi, int def,
                        int *out) {
  long long x;
  TN_TRY(tn_json_int(obj, where, key, required, lo, hi, def, &x));
  *out = (int)x;
  return TN_OK;
}

tn_status tn_json_num(const cJSON *obj, const char *where, const char *key, bool required, double lo, double hi,
                      double def, double *out) {
  const cJSON *v = tn_json_field(obj, key);
  if (!v) {
    if (required) return missing(where, key);
    *out = def;
    return TN_OK;
  }
  double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
  if (!(x >= lo && x <= hi)) {
    char what[96];
    if (lo == -HUGE_VAL && hi == HUGE_VAL) snprintf(what, sizeof what, "a finite number");
    else snprintf(what, sizeof what, "a number in [%g, %g]", lo, hi);
    return bad(where, key, what, v);
  }
  *out = x;
  return TN_OK;
}

tn_status tn_json_bool(const cJSON *obj, const char *where, const char *key, bool required, bool def, bool *out) {
  const cJSON *v = tn_json_field(obj, key);
  if (!v) {
    if (required) return missing(where, key);
    *out = def;
    return TN_OK;
  }
  if (!cJSON_IsBool(v)) return bad(where, key, "true or false", v);
  *out = cJSON_IsTrue(v);
  return TN_OK;
}

tn_status tn_json_str(const cJSON *obj, const char *where, const char *key, bool required, const char *def,
                      const char **out) {
  const cJSON *v = tn_json_field(obj, key);
  if (!v) {
    if (required) return missing(where, key);
    *out = def;
    return TN_OK;
  }
  if (!cJSON_IsString(v)) return bad(where, key, "a string", v);
  *out = v->valuestring;
  return TN_OK;
}

tn_status tn_json_kind(const cJSON *obj, const char *where, const char *key, int type, bool required,
                       const cJSON **out) {
  const cJSON *v = tn_json_field(obj, key);
  *out = NULL;
  if (!v) return required ? missing(where, key) : TN_OK;
  if ((v->type & 0xFF) != type) return bad(where, key, type == cJSON_Array ? "a list" : "an object", v);
  *out = v;
  return TN_OK;
}
