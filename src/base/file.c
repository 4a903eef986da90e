/* file.c - file access: read-only mmap, whole-file reads, and atomic writes
 * (temporary name, fsync, rename, fsync of the directory) so a crash or a full
 * disk never leaves a half-written checkpoint under the real name. */
#include "base/base.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A NULL path is what a failed tn_path_join / tn_strdup leaves: out of memory. */
#define TN_PATH_OR_NOMEM(path) \
  do { if (!(path)) return tn_error(TN_ERR_NOMEM, "out of memory (building a file name)"); } while (0)

tn_status tn_mmap_open(tn_mmap *m, const char *path) {
  memset(m, 0, sizeof *m);
  TN_PATH_OR_NOMEM(path);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return tn_error(TN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return tn_error(TN_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
  }
  m->size = (size_t)st.st_size;
  if (m->size > 0) {
    m->data = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->data == MAP_FAILED) {
      m->data = NULL;
      close(fd);
      return tn_error(TN_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
    }
  }
  close(fd);
  m->path = tn_strdup(path);
  if (!m->path) {
    tn_mmap_close(m);
    return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  }
  return TN_OK;
}

void tn_mmap_close(tn_mmap *m) {
  if (m->data) munmap(m->data, m->size);
  free(m->path);
  memset(m, 0, sizeof *m);
}

tn_status tn_read_file(const char *path, char **out, size_t *len) {
  *out = NULL;
  TN_PATH_OR_NOMEM(path);
  FILE *f = fopen(path, "rb");
  if (!f) return tn_error(TN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) { fclose(f); return tn_error(TN_ERR_NOMEM, "%s: out of memory reading", path); }
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1) break;
    cap *= 2;
    char *nb = realloc(buf, cap);
    if (!nb) free(buf);
    buf = nb;
  }
  int err = ferror(f);
  fclose(f);
  if (err) { free(buf); return tn_error(TN_ERR_IO, "%s: read error", path); }
  buf[n] = 0;
  *out = buf;
  if (len) *len = n;
  return TN_OK;
}

static struct {
  bool init, trace, scope;
  int op, n, err;
  long count[3];
} fault;

int tn_io_fault(tn_io_op op, const char *path) {
  if (!fault.init) {
    fault.init = true;
    fault.op = -1;
    const char *e = getenv("TN_FAULT");
    char opn[16], errn[16];
    if (e && !strcmp(e, "trace")) fault.trace = true;
    else if (e && *e && sscanf(e, "%15[a-z]:%d:%15[A-Z]", opn, &fault.n, errn) == 3) {
      fault.op = !strcmp(opn, "write") ? TN_IO_WRITE : !strcmp(opn, "fsync") ? TN_IO_FSYNC : !strcmp(opn, "rename") ? TN_IO_RENAME : -1;
      fault.err = !strcmp(errn, "ENOSPC") ? ENOSPC : !strcmp(errn, "EIO") ? EIO : 0;
      if (fault.op < 0 || !fault.err) fault.op = -1;
    }
  }
  if (!fault.scope || (!fault.trace && fault.op < 0)) return 0;
  static const char *names[] = {"write", "fsync", "rename"};
  const long k = ++fault.count[op];
  if (fault.trace) fprintf(stderr, "tunic fault point: %s %ld %s\n", names[op], k, path);
  return (int)op == fault.op && k == fault.n ? fault.err : 0;
}

void tn_io_fault_scope(bool on) { fault.scope = on; }

tn_status tn_fsync_path(const char *path) {
  int err = tn_io_fault(TN_IO_FSYNC, path);
  int fd = open(path, O_RDONLY);
  if (fd >= 0) {
    if (!err && fsync(fd) != 0 && errno != EINVAL) err = errno; /* EINVAL: a file system without fsync of directories */
    close(fd);
  } else if (!err && errno != EACCES) err = errno; /* a folder we may write but not open: nothing to sync with */
  return err ? tn_error(TN_ERR_IO, "%s: fsync failed: %s", path, strerror(err)) : TN_OK;
}

static tn_status fsync_dir_of(const char *path) {
  char p[4096]; /* no allocation here: the file is in place, its directory entry must reach the disk */
  if (strlen(path) >= sizeof p) return tn_error(TN_ERR_IO, "%.200s...: path too long to fsync its folder", path);
  snprintf(p, sizeof p, "%s", path);
  return tn_fsync_path(dirname(p));
}

tn_status tn_write_atomic_cb(const char *path, tn_status (*fill)(FILE *f, void *ctx), void *ctx) {
  TN_PATH_OR_NOMEM(path);
  size_t n = strlen(path) + 32;
  char *tmp = malloc(n);
  if (!tmp) return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  snprintf(tmp, n, "%s.tmp.%d", path, (int)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    tn_status s = tn_error(TN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return s;
  }
  tn_status s = fill(f, ctx);
  int err = 0;
  if (s != TN_OK && !strstr(tn_last_error(), path)) s = tn_error_prefix(s, "%s", path);
  if (s == TN_OK && ((err = tn_io_fault(TN_IO_WRITE, path)) || fflush(f) != 0))
    s = tn_error(TN_ERR_IO, "%s: write failed: %s", path, strerror(err ? err : errno));
  if (s == TN_OK && ferror(f)) s = tn_error(TN_ERR_IO, "%s: write failed", path);
  if (s == TN_OK && ((err = tn_io_fault(TN_IO_FSYNC, path)) || fsync(fileno(f)) != 0))
    s = tn_error(TN_ERR_IO, "%s: fsync failed: %s", path, strerror(err ? err : errno));
  if (fclose(f) != 0 && s == TN_OK) s = tn_error(TN_ERR_IO, "%s: close failed: %s", path, strerror(errno));
  if (s == TN_OK && ((err = tn_io_fault(TN_IO_RENAME, path)) || rename(tmp, path) != 0))
    s = tn_error(TN_ERR_IO, "%s: rename failed: %s", path, strerror(err ? err : errno));
  if (s != TN_OK) unlink(tmp);
  else s = fsync_dir_of(path);
  free(tmp);
  return s;
}

typedef struct { const void *data; size_t len; } buf_ctx;
static tn_status fill_buf(FILE *f, void *ctx) {
  buf_ctx *b = ctx;
  if (b->len && fwrite(b->data, 1, b->len, f) != b->len)
    return tn_error(TN_ERR_IO, "write failed: %s", strerror(errno));
  return TN_OK;
}

tn_status tn_write_file_atomic(const char *path, const void *data, size_t len) {
  buf_ctx b = {data, len};
  return tn_write_atomic_cb(path, fill_buf, &b);
}

tn_status tn_mkdirs(const char *path) {
  TN_PATH_OR_NOMEM(path);
  char *p = tn_strdup(path);
  if (!p) return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  for (char *c = p + 1; *c; c++) {
    if (*c == '/') {
      *c = 0;
      if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        tn_status s = tn_error(TN_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
        free(p);
        return s;
      }
      *c = '/';
    }
  }
  tn_status s = TN_OK;
  if (mkdir(p, 0755) != 0 && errno != EEXIST) s = tn_error(TN_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
  free(p);
  return s;
}

bool tn_file_exists(const char *path) { return access(path, F_OK) == 0; }

char *tn_path_join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s/%s", dir, name);
  return s;
}

tn_status tn_copy_file(const char *src, const char *dst) {
  TN_PATH_OR_NOMEM(dst);
  char *data;
  size_t len;
  TN_TRY(tn_read_file(src, &data, &len));
  tn_status s = tn_write_file_atomic(dst, data, len);
  free(data);
  return s;
}
