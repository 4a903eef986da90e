/* tunic/base.h - status codes and error messages shared by every tunic call. */
#ifndef TUNIC_BASE_H
#define TUNIC_BASE_H
#include <stddef.h>
#include <stdint.h>

/* Every function of the public API is declared TN_API: the only symbols libtunic.so exports
 * (the library is built with -fvisibility=hidden). */
#ifndef TN_API
#define TN_API __attribute__((visibility("default")))
#endif

typedef enum {
  TN_OK = 0,
  TN_ERR_IO,          /* a file could not be opened, read or written */
  TN_ERR_FORMAT,      /* a file's content is malformed or lies about itself */
  TN_ERR_UNSUPPORTED, /* valid input tunic cannot honour (unknown model_type, rope type...) */
  TN_ERR_ARG,         /* a bad argument or option value */
  TN_ERR_NOMEM,       /* allocation failed */
  TN_ERR_NUMERIC,     /* NaN / Inf where a finite number was required */
  TN_ERR_LIMIT,       /* a length or capacity was exceeded (context, cache) */
  TN_ERR_INTERNAL
} tn_status;

/* Message of the last error set on this thread ("" when none). */
TN_API const char *tn_last_error(void);
/* Short name of a status code. */
TN_API const char *tn_status_name(tn_status s);
TN_API const char *tn_version(void);

#endif
