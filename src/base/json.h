/* json.h - reading fields of a parsed JSON object (cJSON) with errors that name the document
 * and the field, and the checks every reader otherwise repeats: the type, integer-ness, a range.
 * WHERE names the document and, for nested objects, the path down to OBJ:
 * "config.json", "data.jsonl line 12", "config.json: rope_scaling". Errors read
 * "WHERE: field 'KEY' must be an integer in [1, 65536] (got 0.5)". A field that is absent or
 * JSON null is "not given": the default is stored, or, when required, an error.
 * Not for: writing JSON (cJSON's own calls), streaming parsers. */
#ifndef TN_BASE_JSON_H
#define TN_BASE_JSON_H
#include <cjson/cJSON.h>
#include "base/base.h"

/* the field, or NULL when absent or null */
const cJSON *tn_json_field(const cJSON *obj, const char *key);
/* the same for a document the caller changes or hands on as cJSON * (cJSON's own const rule) */
cJSON *tn_json_field_mut(const cJSON *obj, const char *key);
tn_status tn_json_int(const cJSON *obj, const char *where, const char *key, bool required, long long lo,
                      long long hi, long long def, long long *out);
/* tn_json_int into an int (range [lo, hi] within int) */
tn_status tn_json_int32(const cJSON *obj, const char *where, const char *key, bool required, int lo, int hi, int def,
                        int *out);
/* a finite number in [lo, hi] */
tn_status tn_json_num(const cJSON *obj, const char *where, const char *key, bool required, double lo, double hi,
                      double def, double *out);
tn_status tn_json_bool(const cJSON *obj, const char *where, const char *key, bool required, bool def, bool *out);
/* a string (the pointer is into obj) */
tn_status tn_json_str(const cJSON *obj, const char *where, const char *key, bool required, const char *def,
                      const char **out);
/* an array (type cJSON_Array) or an object (cJSON_Object): *out NULL when not given */
tn_status tn_json_kind(const cJSON *obj, const char *where, const char *key, int type, bool required,
                       const cJSON **out);
/* What a JSON value is, for messages: "a string", "the number 3.5", "null", ... (buf of 48+) */
const char *tn_json_describe(const cJSON *v, char *buf, size_t n);
#endif
