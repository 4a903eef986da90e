/* tensorboard.c - TensorBoard event files written by hand: TFRecord framing
 *   uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
 * (little-endian) around protobuf-encoded Event messages:
 *   Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
 * Not for: histograms, images or tensors (only scalars). */
#include "obs/obs.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct tn_tb {
  FILE *f;
  char *path;
  uint8_t *buf; /* encoded Event, reused */
  size_t cap;
  double last_flush;
};

/* ---- protobuf encoding into a growable buffer ---- */
typedef struct {
  uint8_t *p;
  size_t n, cap;
  bool oom;
} pbuf;

static void pb_reserve(pbuf *b, size_t more) {
  if (b->n + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + more) cap *= 2;
  uint8_t *np = realloc(b->p, cap);
  if (!np) { b->oom = true; return; }
  b->p = np;
  b->cap = cap;
}
static void pb_bytes(pbuf *b, const void *d, size_t n) {
  pb_reserve(b, n);
  if (b->oom) return;
  memcpy(b->p + b->n, d, n);
  b->n += n;
}
static void pb_varint(pbuf *b, uint64_t v) {
  uint8_t t[10];
  int k = 0;
  do {
    t[k++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  pb_bytes(b, t, k);
}
static int varint_len(uint64_t v) {
  int k = 1;
  while (v > 0x7f) { v >>= 7; k++; }
  return k;
}
static void pb_key(pbuf *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
static void pb_fixed64(pbuf *b, uint64_t v) {
  uint8_t t[8];
  for (int i = 0; i < 8; i++) t[i] = (uint8_t)(v >> (8 * i));
  pb_bytes(b, t, 8);
}
static void pb_fixed32(pbuf *b, uint32_t v) {
  uint8_t t[4];
  for (int i = 0; i < 4; i++) t[i] = (uint8_t)(v >> (8 * i));
  pb_bytes(b, t, 4);
}
static void pb_double(pbuf *b, int field, double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  pb_key(b, field, 1);
  pb_fixed64(b, u);
}

static double unix_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Frame DATA as one TFRecord and append it to the file. */
static tn_status write_record(tn_tb *tb, const uint8_t *data, size_t n) {
  uint8_t hdr[12], ftr[4];
  uint64_t len = n;
  for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)(len >> (8 * i));
  uint32_t lc = tn_crc32c_mask(tn_crc32c(0, hdr, 8));
  for (int i = 0; i < 4; i++) hdr[8 + i] = (uint8_t)(lc >> (8 * i));
  uint32_t dc = tn_crc32c_mask(tn_crc32c(0, data, n));
  for (int i = 0; i < 4; i++) ftr[i] = (uint8_t)(dc >> (8 * i));
  if (fwrite(hdr, 1, 12, tb->f) != 12 || fwrite(data, 1, n, tb->f) != n || fwrite(ftr, 1, 4, tb->f) != 4)
    return tn_error(TN_ERR_IO, "%s: write failed: %s", tb->path, strerror(errno));
  return TN_OK;
}

static tn_status write_event(tn_tb *tb, pbuf *b) {
  /* keep the buffer for the next event (realloc leaves it valid on failure) */
  tb->buf = b->p;
  tb->cap = b->cap;
  if (b->oom) return tn_error(TN_ERR_NOMEM, "%s: out of memory encoding an event", tb->path);
  tn_status s = write_record(tb, b->p, b->n);
  if (s == TN_OK && tn_now() - tb->last_flush > 1.0) s = tn_tb_flush(tb);
  return s;
}

tn_status tn_tb_open(tn_tb **out, const char *dir) {
  *out = NULL;
  TN_TRY(tn_mkdirs(dir));
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "localhost");
  host[sizeof host - 1] = 0;
  for (char *c = host; *c; c++)
    if (*c == '/') *c = '_';
  size_t n = strlen(dir) + strlen(host) + 96;
  char *path = malloc(n);
  if (!path) return tn_error(TN_ERR_NOMEM, "out of memory");
  long t = (long)time(NULL);
  int fd = -1;
  /* A second writer in the same directory within the same second gets a suffix. */
  for (int k = 0; k < 100 && fd < 0; k++) {
    if (k == 0) snprintf(path, n, "%s/events.out.tfevents.%ld.%s", dir, t, host);
    else snprintf(path, n, "%s/events.out.tfevents.%ld.%s.%d.%d", dir, t, host, (int)getpid(), k);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) {
      tn_status s = tn_error(TN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
      free(path);
      return s;
    }
  }
  if (fd < 0) {
    tn_status s = tn_error(TN_ERR_IO, "%s: cannot create a new event file", dir);
    free(path);
    return s;
  }
  tn_tb *tb = calloc(1, sizeof *tb);
  if (!tb) {
    close(fd);
    free(path);
    return tn_error(TN_ERR_NOMEM, "out of memory");
  }
  tb->f = fdopen(fd, "wb");
  tb->path = path;
  if (!tb->f) {
    tn_status s = tn_error(TN_ERR_IO, "%s: fdopen failed", path);
    close(fd);
    free(path);
    free(tb);
    return s;
  }
  pbuf b = {0};
  pb_double(&b, 1, unix_time());
  pb_key(&b, 3, 2);
  pb_varint(&b, 13);
  pb_bytes(&b, "brain.Event:2", 13);
  tn_status s = write_event(tb, &b);
  if (s == TN_OK) s = tn_tb_flush(tb);
  if (s != TN_OK) { tn_tb_close(tb); return s; }
  *out = tb;
  return TN_OK;
}

tn_status tn_tb_scalars(tn_tb *tb, int64_t step, int n, const char *const tags[], const float values[]) {
  if (!tb || n <= 0) return TN_OK;
  pbuf b = {tb->buf, 0, tb->cap, false};
  pb_double(&b, 1, unix_time());
  if (step != 0) { /* proto3 leaves a zero out, as TensorFlow's writer does */
    pb_key(&b, 2, 0);
    pb_varint(&b, (uint64_t)step); /* int64: negative steps take 10 bytes, as protobuf does */
  }
  /* Summary length = sum over values of (key + len + Value) */
  size_t sum_len = 0;
  for (int i = 0; i < n; i++) {
    size_t tl = strlen(tags[i]);
    size_t vl = 1 + varint_len(tl) + tl + 1 + 4;
    sum_len += 1 + varint_len(vl) + vl;
  }
  pb_key(&b, 5, 2);
  pb_varint(&b, sum_len);
  for (int i = 0; i < n; i++) {
    size_t tl = strlen(tags[i]);
    size_t vl = 1 + varint_len(tl) + tl + 1 + 4;
    pb_key(&b, 1, 2);
    pb_varint(&b, vl);
    pb_key(&b, 1, 2);
    pb_varint(&b, tl);
    pb_bytes(&b, tags[i], tl);
    uint32_t u;
    memcpy(&u, &values[i], 4);
    pb_key(&b, 2, 5);
    pb_fixed32(&b, u);
  }
  return write_event(tb, &b);
}

tn_status tn_tb_session_start(tn_tb *tb, int64_t step) {
  if (!tb) return TN_OK;
  pbuf b = {tb->buf, 0, tb->cap, false};
  pb_double(&b, 1, unix_time());
  if (step != 0) {
    pb_key(&b, 2, 0);
    pb_varint(&b, (uint64_t)step);
  }
  pb_key(&b, 6, 2); /* Event.session_log */
  pb_varint(&b, 2);
  pb_key(&b, 1, 0); /* SessionLog.status = START */
  pb_varint(&b, 1);
  tn_status s = write_event(tb, &b);
  return s == TN_OK ? tn_tb_flush(tb) : s;
}

tn_status tn_tb_scalar(tn_tb *tb, const char *tag, int64_t step, float value) {
  return tn_tb_scalars(tb, step, 1, &tag, &value);
}

tn_status tn_tb_flush(tn_tb *tb) {
  if (!tb) return TN_OK;
  tb->last_flush = tn_now();
  if (fflush(tb->f) != 0) return tn_error(TN_ERR_IO, "%s: flush failed: %s", tb->path, strerror(errno));
  return TN_OK;
}

void tn_tb_close(tn_tb *tb) {
  if (!tb) return;
  if (tb->f) fclose(tb->f);
  free(tb->buf);
  free(tb->path);
  free(tb);
}

const char *tn_tb_path(const tn_tb *tb) { return tb ? tb->path : NULL; }
