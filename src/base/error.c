/* error.c - thread-local error messages behind tn_status codes, and logging.
 * The library never exits; it returns a status with a message naming the
 * file / field / tensor at fault. */
#include "base/base.h"
#include <string.h>

static _Thread_local char tn_errbuf[1024];
static int tn_log_level = TN_LOG_INFO;

tn_status tn_error(tn_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tn_errbuf, sizeof tn_errbuf, fmt, ap);
  va_end(ap);
  return s;
}

tn_status tn_error_prefix(tn_status s, const char *fmt, ...) {
  char old[sizeof tn_errbuf], pre[512];
  memcpy(old, tn_errbuf, sizeof old);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  snprintf(tn_errbuf, sizeof tn_errbuf, "%s: %s", pre, old);
  return s;
}

void tn_error_clear(void) { tn_errbuf[0] = 0; }
const char *tn_last_error(void) { return tn_errbuf; }

const char *tn_status_name(tn_status s) {
  switch (s) {
  case TN_OK: return "ok";
  case TN_ERR_IO: return "i/o error";
  case TN_ERR_FORMAT: return "format error";
  case TN_ERR_UNSUPPORTED: return "unsupported";
  case TN_ERR_ARG: return "bad argument";
  case TN_ERR_NOMEM: return "out of memory";
  case TN_ERR_NUMERIC: return "numeric error";
  case TN_ERR_LIMIT: return "limit exceeded";
  default: return "internal error";
  }
}

const char *tn_version(void) { return TN_VERSION " (" TN_GIT_COMMIT ")"; }

void tn_log_set_level(int level) { tn_log_level = level; }

void tn_log(int level, const char *fmt, ...) {
  if (level > tn_log_level) return;
  static const char *tag[] = {"error", "warning", "info", "debug"};
  fprintf(stderr, "tunic: %s: ", tag[level]);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}
