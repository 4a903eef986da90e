/* safetensors.c - reader (mmap, fully validated) and writer (atomic) of the
 * Hugging Face safetensors format, single files and sharded checkpoint
 * directories (model.safetensors.index.json). See safetensors.h for the format.
 * Not for: model-specific tensor names or dtype conversion (src/model/model.c). */
#include "model/safetensors.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/json.h"

/* Headers larger than this are refused as absurd (the reference Rust reader uses 100 MB). */
#define ST_MAX_HEADER ((uint64_t)100000000)
/* JSON numbers are doubles: integers above 2^53 cannot be represented exactly. */
#define ST_MAX_JSON_INT 9007199254740992.0

/* ---------------------------------------------------------------- dtypes */

static const struct { const char *name; size_t size; } st_dtypes[] = {
  [TN_ST_F32] = {"F32", 4},   [TN_ST_BF16] = {"BF16", 2}, [TN_ST_F16] = {"F16", 2},
  [TN_ST_F64] = {"F64", 8},   [TN_ST_I64] = {"I64", 8},   [TN_ST_I32] = {"I32", 4},
  [TN_ST_I16] = {"I16", 2},   [TN_ST_I8] = {"I8", 1},     [TN_ST_U8] = {"U8", 1},
  [TN_ST_BOOL] = {"BOOL", 1}, [TN_ST_U16] = {"U16", 2},   [TN_ST_U32] = {"U32", 4},
  [TN_ST_U64] = {"U64", 8},   [TN_ST_F8_E4M3] = {"F8_E4M3", 1},
  [TN_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

const char *tn_st_dtype_name(tn_st_dtype t) {
  return ((int)t >= 0 && (int)t < ST_NDTYPES) ? st_dtypes[t].name : "?";
}
size_t tn_st_dtype_size(tn_st_dtype t) {
  return ((int)t >= 0 && (int)t < ST_NDTYPES) ? st_dtypes[t].size : 0;
}
bool tn_st_dtype_parse(const char *name, tn_st_dtype *out) {
  for (int i = 0; i < ST_NDTYPES; i++)
    if (strcmp(st_dtypes[i].name, name) == 0) { *out = (tn_st_dtype)i; return true; }
  return false;
}

/* numel and nbytes of a shape with overflow checks; false on overflow. */
static bool st_sizes(const int64_t *shape, int ndim, tn_st_dtype dt, size_t *numel, size_t *nbytes) {
  size_t n = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0) return false;
    if ((uint64_t)shape[d] > SIZE_MAX || __builtin_mul_overflow(n, (size_t)shape[d], &n)) return false;
  }
  *numel = n;
  return !__builtin_mul_overflow(n, tn_st_dtype_size(dt), nbytes);
}

/* ---------------------------------------------------------------- reader */

typedef struct { tn_st_tensor t; uint64_t begin, end; } st_tmp;

static int cmp_tmp_offset(const void *a, const void *b) {
  const st_tmp *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

typedef struct { const char *name; int i; } st_named;
static int cmp_named(const void *a, const void *b) {
  return strcmp(((const st_named *)a)->name, ((const st_named *)b)->name);
}

/* Read a JSON number that must be an integer in [0, 2^53]. */
static bool st_json_uint(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return false;
  double d = v->valuedouble;
  if (!(d >= 0) || d > ST_MAX_JSON_INT || d != (double)(uint64_t)d) return false;
  *out = (uint64_t)d;
  return true;
}

/* Validate one tensor entry of the header into t (name not set here). */
static tn_status st_parse_entry(const char *path, const char *name, const cJSON *e, size_t data_size,
                                st_tmp *t) {
  if (!cJSON_IsObject(e))
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);
  const cJSON *dt = tn_json_field(e, "dtype");
  const cJSON *sh = tn_json_field(e, "shape");
  const cJSON *off = tn_json_field(e, "data_offsets");
  if (!dt) return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': missing \"dtype\"", path, name);
  if (!sh) return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': missing \"shape\"", path, name);
  if (!off) return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': missing \"data_offsets\"", path, name);
  if (!cJSON_IsString(dt))
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", path, name);
  if (!tn_st_dtype_parse(dt->valuestring, &t->t.dtype))
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\"", path, name, dt->valuestring);
  if (!cJSON_IsArray(sh))
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", path, name);
  int nd = cJSON_GetArraySize(sh);
  if (nd > TN_ST_MAX_DIMS)
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': \"shape\" has %d dimensions (at most %d supported)",
                    path, name, nd, TN_ST_MAX_DIMS);
  t->t.ndim = nd;
  int d = 0;
  for (const cJSON *x = sh->child; x; x = x->next, d++) {
    uint64_t v;
    if (!st_json_uint(x, &v))
      return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': \"shape\"[%d] is not a non-negative integer",
                      path, name, d);
    t->t.shape[d] = (int64_t)v;
  }
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not an array of two integers",
                    path, name);
  if (!st_json_uint(off->child, &t->begin) || !st_json_uint(off->child->next, &t->end))
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" are not non-negative integers",
                    path, name);
  if (t->begin > t->end)
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] begin after end",
                    path, name, t->begin, t->end);
  if (!st_sizes(t->t.shape, nd, t->t.dtype, &t->t.numel, &t->t.nbytes))
    return tn_error(TN_ERR_FORMAT, "%s: tensor '%s': shape x %s size overflows", path, name,
                    dt->valuestring);
  if ((uint64_t)t->t.nbytes != t->end - t->begin)
    return tn_error(TN_ERR_FORMAT,
                    "%s: tensor '%s': shape and dtype %s give %zu bytes but data_offsets [%" PRIu64
                    ", %" PRIu64 "] hold %" PRIu64,
                    path, name, dt->valuestring, t->t.nbytes, t->begin, t->end, t->end - t->begin);
  if (t->end > data_size)
    return tn_error(TN_ERR_FORMAT,
                    "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                    "] exceed the data section (%zu bytes)",
                    path, name, t->begin, t->end, data_size);
  return TN_OK;
}

static tn_status st_parse(tn_st_file *f, const char *path) {
  const unsigned char *base = f->map.data;
  size_t size = f->map.size;
  if (size < 8)
    return tn_error(TN_ERR_FORMAT, "%s: file is %zu bytes, shorter than the 8-byte header length", path, size);
  uint64_t N = 0;
  for (int i = 7; i >= 0; i--) N = (N << 8) | base[i];
  if (N > ST_MAX_HEADER)
    return tn_error(TN_ERR_FORMAT, "%s: header length %" PRIu64 " is absurd (limit %" PRIu64 " bytes)",
                    path, N, ST_MAX_HEADER);
  if (N > size - 8)
    return tn_error(TN_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                    path, N, size);
  if (N < 2 || base[8] != '{')
    return tn_error(TN_ERR_FORMAT, "%s: header does not start with '{'", path);
  size_t data_size = size - 8 - (size_t)N;
  const unsigned char *data = base + 8 + N;

  /* Parse a NUL-terminated copy so no parser can run past the mapping. */
  char *hdr = malloc((size_t)N + 1);
  if (!hdr) return tn_error(TN_ERR_NOMEM, "%s: out of memory for a %" PRIu64 "-byte header", path, N);
  memcpy(hdr, base + 8, (size_t)N);
  hdr[N] = 0;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)N, &end, 0);
  if (!root) {
    size_t at = end && end >= hdr && end <= hdr + N ? (size_t)(end - hdr) : 0;
    free(hdr);
    return tn_error(TN_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu of %" PRIu64 ")", path, at, N);
  }
  for (const char *p = end; p < hdr + N; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      size_t at = (size_t)(p - hdr);
      cJSON_Delete(root);
      free(hdr);
      return tn_error(TN_ERR_FORMAT, "%s: header has trailing bytes after the JSON object (at byte %zu)", path, at);
    }
  free(hdr);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return tn_error(TN_ERR_FORMAT, "%s: header is not a JSON object", path);
  }

  tn_status s = TN_OK;
  int cap = cJSON_GetArraySize(root), n = 0;
  st_tmp *tmp = calloc(cap ? (size_t)cap : 1, sizeof *tmp);
  if (!tmp) { cJSON_Delete(root); return tn_error(TN_ERR_NOMEM, "%s: out of memory", path); }
  bool seen_meta = false;
  for (const cJSON *e = root->child; e && s == TN_OK; e = e->next) {
    const char *name = e->string ? e->string : "";
    if (strcmp(name, "__metadata__") == 0) {
      if (seen_meta) { s = tn_error(TN_ERR_FORMAT, "%s: duplicate \"__metadata__\"", path); break; }
      seen_meta = true;
      if (!cJSON_IsObject(e)) { s = tn_error(TN_ERR_FORMAT, "%s: \"__metadata__\" is not an object", path); break; }
      for (const cJSON *m = e->child; m; m = m->next)
        if (!cJSON_IsString(m)) {
          s = tn_error(TN_ERR_FORMAT, "%s: \"__metadata__\" value '%s' is not a string", path, m->string);
          break;
        }
      if (s != TN_OK) break;
      f->metadata_json = cJSON_PrintUnformatted(e);
      if (!f->metadata_json) s = tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
      continue;
    }
    st_tmp *t = &tmp[n];
    s = st_parse_entry(path, name, e, data_size, t);
    if (s != TN_OK) break;
    t->t.name = tn_strdup(name);
    if (!t->t.name) { s = tn_error(TN_ERR_NOMEM, "%s: out of memory", path); break; }
    t->t.data = data + t->begin;
    t->t.file = f->map.path;
    n++;
  }
  cJSON_Delete(root);

  /* Duplicate names (cJSON keeps repeated keys as separate members). */
  st_named *nm = s == TN_OK ? malloc((n ? (size_t)n : 1) * sizeof *nm) : NULL;
  if (s == TN_OK && !nm) s = tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  if (s == TN_OK) {
    for (int i = 0; i < n; i++) nm[i] = (st_named){tmp[i].t.name, i};
    qsort(nm, (size_t)n, sizeof *nm, cmp_named);
    for (int i = 1; i < n && s == TN_OK; i++)
      if (strcmp(nm[i].name, nm[i - 1].name) == 0)
        s = tn_error(TN_ERR_FORMAT, "%s: tensor '%s': duplicate name in the header", path, nm[i].name);
  }
  if (s == TN_OK) {
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_tmp_offset);
    /* Overlap: every non-empty tensor must start at or after the furthest end so far. */
    uint64_t far = 0;
    int far_i = -1;
    for (int i = 0; i < n && s == TN_OK; i++) {
      if (tmp[i].t.nbytes == 0) continue;
      if (far_i >= 0 && tmp[i].begin < far)
        s = tn_error(TN_ERR_FORMAT,
                     "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor '%s' [%" PRIu64
                     ", %" PRIu64 "]",
                     path, tmp[i].t.name, tmp[i].begin, tmp[i].end, tmp[far_i].t.name, tmp[far_i].begin,
                     tmp[far_i].end);
      if (tmp[i].end > far) { far = tmp[i].end; far_i = i; }
    }
  }
  if (s == TN_OK) {
    f->tensors = calloc(n ? (size_t)n : 1, sizeof *f->tensors);
    f->by_name = calloc(n ? (size_t)n : 1, sizeof *f->by_name);
    if (!f->tensors || !f->by_name) s = tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  }
  if (s == TN_OK) {
    for (int i = 0; i < n; i++) { f->tensors[i] = tmp[i].t; nm[i] = (st_named){tmp[i].t.name, i}; }
    qsort(nm, (size_t)n, sizeof *nm, cmp_named);
    for (int i = 0; i < n; i++) f->by_name[i] = nm[i].i;
    f->n = n;
    n = 0; /* names now owned by f */
  }
  free(nm);
  for (int i = 0; i < n; i++) free(tmp[i].t.name);
  free(tmp);
  return s;
}

tn_status tn_st_open(tn_st_file *f, const char *path) {
  memset(f, 0, sizeof *f);
  TN_TRY(tn_mmap_open(&f->map, path));
  if (!f->map.path) { tn_mmap_close(&f->map); return tn_error(TN_ERR_NOMEM, "%s: out of memory", path); }
  tn_status s = st_parse(f, path);
  if (s != TN_OK) tn_st_close(f);
  return s;
}

void tn_st_close(tn_st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
  free(f->tensors);
  free(f->by_name);
  free(f->metadata_json);
  tn_mmap_close(&f->map);
  memset(f, 0, sizeof *f);
}

const tn_st_tensor *tn_st_find(const tn_st_file *f, const char *name) {
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    const tn_st_tensor *t = &f->tensors[f->by_name[mid]];
    int c = strcmp(name, t->name);
    if (c == 0) return t;
    if (c < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return NULL;
}

/* ---------------------------------------------------------------- directories */

#define ST_SINGLE "model.safetensors"
#define ST_INDEX "model.safetensors.index.json"

typedef struct { const char *name; int shard; } st_map; /* weight_map entry */
static int cmp_map(const void *a, const void *b) {
  return strcmp(((const st_map *)a)->name, ((const st_map *)b)->name);
}
static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard name from the index must be a plain file name inside the directory. */
static bool st_plain_name(const char *s) {
  return s[0] && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/');
}

static tn_status st_open_index(tn_st_set *s, const char *dir, const char *ipath) {
  char *text = NULL;
  TN_TRY(tn_read_file(ipath, &text, NULL));
  cJSON *root = cJSON_Parse(text);
  free(text);
  if (!root || !cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return tn_error(TN_ERR_FORMAT, "%s: not a JSON object", ipath);
  }
  const cJSON *wm = tn_json_field(root, "weight_map");
  if (!cJSON_IsObject(wm)) {
    cJSON_Delete(root);
    return tn_error(TN_ERR_FORMAT, "%s: \"weight_map\" is missing or not an object", ipath);
  }
  tn_status st = TN_OK;
  int n = cJSON_GetArraySize(wm), nshard = 0;
  st_map *map = calloc(n ? (size_t)n : 1, sizeof *map);
  const char **shards = calloc(n ? (size_t)n : 1, sizeof *shards);
  if (!map || !shards) st = tn_error(TN_ERR_NOMEM, "%s: out of memory", ipath);
  int i = 0;
  for (const cJSON *e = wm->child; e && st == TN_OK; e = e->next, i++) {
    if (!cJSON_IsString(e)) {
      st = tn_error(TN_ERR_FORMAT, "%s: weight_map: tensor '%s': shard is not a string", ipath, e->string);
      break;
    }
    if (!st_plain_name(e->valuestring)) {
      st = tn_error(TN_ERR_FORMAT, "%s: weight_map: tensor '%s': shard '%s' is not a file name in the directory",
                    ipath, e->string, e->valuestring);
      break;
    }
    map[i].name = e->string;
    shards[i] = e->valuestring;
  }
  if (st == TN_OK && n == 0) st = tn_error(TN_ERR_FORMAT, "%s: weight_map is empty", ipath);
  if (st == TN_OK) {
    /* Unique shard names (sorted, which is also HF's numbering order). */
    qsort(shards, (size_t)n, sizeof *shards, cmp_str);
    for (int k = 0; k < n; k++)
      if (nshard == 0 || strcmp(shards[k], shards[nshard - 1]) != 0) shards[nshard++] = shards[k];
    i = 0;
    for (const cJSON *e = wm->child; e; e = e->next, i++) {
      const char *key = e->valuestring;
      const char **hit = bsearch(&key, shards, (size_t)nshard, sizeof *shards, cmp_str);
      map[i].shard = (int)(hit - shards);
    }
    qsort(map, (size_t)n, sizeof *map, cmp_map);
    for (int k = 1; k < n && st == TN_OK; k++)
      if (strcmp(map[k].name, map[k - 1].name) == 0)
        st = tn_error(TN_ERR_FORMAT, "%s: weight_map: tensor '%s' is listed twice", ipath, map[k].name);
  }
  if (st == TN_OK) {
    s->files = calloc((size_t)nshard, sizeof *s->files);
    if (!s->files) st = tn_error(TN_ERR_NOMEM, "%s: out of memory", ipath);
  }
  for (int k = 0; k < nshard && st == TN_OK; k++) {
    char *p = tn_path_join(dir, shards[k]);
    st = tn_st_open(&s->files[k], p);
    free(p);
    if (st != TN_OK) { st = tn_error_prefix(st, "%s: shard '%s'", ipath, shards[k]); break; }
    s->nfiles = k + 1;
  }
  /* Every indexed tensor is in its shard, and every shard tensor is indexed to that shard. */
  for (int k = 0; k < n && st == TN_OK; k++)
    if (!tn_st_find(&s->files[map[k].shard], map[k].name))
      st = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' is mapped to shard '%s', which does not contain it", ipath,
                    map[k].name, shards[map[k].shard]);
  for (int k = 0; k < nshard && st == TN_OK; k++) {
    const tn_st_file *f = &s->files[k];
    for (int j = 0; j < f->n && st == TN_OK; j++) {
      st_map key = {f->tensors[j].name, 0};
      const st_map *hit = bsearch(&key, map, (size_t)n, sizeof *map, cmp_map);
      if (!hit)
        st = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' is in shard '%s' but not in the weight_map", ipath,
                      key.name, shards[k]);
      else if (hit->shard != k)
        st = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' is in shard '%s' but the weight_map puts it in '%s'",
                      ipath, key.name, shards[k], shards[hit->shard]);
    }
  }
  free(map);
  free(shards);
  cJSON_Delete(root);
  return st;
}

tn_status tn_st_open_dir(tn_st_set *s, const char *dir) {
  memset(s, 0, sizeof *s);
  struct stat sb;
  if (stat(dir, &sb) != 0) return tn_error(TN_ERR_IO, "%s: cannot open checkpoint directory: %s", dir, strerror(errno));
  if (!S_ISDIR(sb.st_mode)) return tn_error(TN_ERR_IO, "%s: not a directory", dir);
  char *single = tn_path_join(dir, ST_SINGLE), *index = tn_path_join(dir, ST_INDEX);
  tn_status st;
  if (!single || !index) {
    st = tn_error(TN_ERR_NOMEM, "%s: out of memory", dir);
  } else if (tn_file_exists(single)) {
    /* transformers also prefers the single file when both exist */
    if (tn_file_exists(index)) tn_warn("%s: both %s and %s exist; reading %s", dir, ST_SINGLE, ST_INDEX, ST_SINGLE);
    s->files = calloc(1, sizeof *s->files);
    if (!s->files) st = tn_error(TN_ERR_NOMEM, "out of memory");
    else if ((st = tn_st_open(&s->files[0], single)) == TN_OK) s->nfiles = 1;
  } else if (tn_file_exists(index)) {
    st = st_open_index(s, dir, index);
  } else {
    st = tn_error(TN_ERR_IO, "%s: no %s or %s in this directory", dir, ST_SINGLE, ST_INDEX);
  }
  free(single);
  free(index);
  if (st != TN_OK) tn_st_set_close(s);
  return st;
}

void tn_st_set_close(tn_st_set *s) {
  if (!s) return;
  for (int i = 0; i < s->nfiles; i++) tn_st_close(&s->files[i]);
  free(s->files);
  memset(s, 0, sizeof *s);
}

const tn_st_tensor *tn_st_set_find(const tn_st_set *s, const char *name) {
  for (int i = 0; i < s->nfiles; i++) {
    const tn_st_tensor *t = tn_st_find(&s->files[i], name);
    if (t) return t;
  }
  return NULL;
}

/* ---------------------------------------------------------------- writer */

typedef struct { char *p; size_t n, cap; bool oom; } st_buf;

static void sb_put(st_buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = true; return; }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void sb_str(st_buf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_fmt(st_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(st_buf *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}
/* A JSON string literal: quotes, backslashes and control bytes escaped; UTF-8 kept. */
static void sb_json_str(st_buf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\') { char e[2] = {'\\', (char)*c}; sb_put(b, e, 2); }
    else if (*c < 0x20) sb_fmt(b, "\\u%04x", *c);
    else sb_put(b, (const char *)c, 1);
  }
  sb_put(b, "\"", 1);
}

/* Parse and check caller metadata: NULL, or a flat JSON object of strings. */
static tn_status st_check_meta(const char *path, const char *meta, cJSON **out) {
  *out = NULL;
  if (!meta) return TN_OK;
  cJSON *m = cJSON_Parse(meta);
  if (!cJSON_IsObject(m)) {
    cJSON_Delete(m);
    return tn_error(TN_ERR_ARG, "%s: metadata is not a JSON object", path);
  }
  for (const cJSON *e = m->child; e; e = e->next)
    if (!cJSON_IsString(e)) {
      tn_status s = tn_error(TN_ERR_ARG, "%s: metadata value '%s' is not a string", path, e->string);
      cJSON_Delete(m);
      return s;
    }
  *out = m;
  return TN_OK;
}

/* Check the entries; fill nbytes (n) when not NULL. */
static tn_status st_check_entries(const char *path, const tn_st_entry *e, int n, size_t *nbytes) {
  if (n < 0 || (n > 0 && !e)) return tn_error(TN_ERR_ARG, "%s: bad entry list (n = %d)", path, n);
  const char **names = malloc((n ? (size_t)n : 1) * sizeof *names);
  if (!names) return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  tn_status s = TN_OK;
  for (int i = 0; i < n && s == TN_OK; i++) {
    const char *nm = e[i].name ? e[i].name : "(null)";
    size_t numel, nb;
    if (!e[i].name || strcmp(e[i].name, "__metadata__") == 0)
      s = tn_error(TN_ERR_ARG, "%s: entry %d: invalid tensor name '%s'", path, i, nm);
    else if ((int)e[i].dtype < 0 || (int)e[i].dtype >= ST_NDTYPES)
      s = tn_error(TN_ERR_ARG, "%s: tensor '%s': invalid dtype %d", path, nm, (int)e[i].dtype);
    else if (e[i].ndim < 0 || e[i].ndim > TN_ST_MAX_DIMS)
      s = tn_error(TN_ERR_ARG, "%s: tensor '%s': ndim %d out of range [0, %d]", path, nm, e[i].ndim, TN_ST_MAX_DIMS);
    else if (!st_sizes(e[i].shape, e[i].ndim, e[i].dtype, &numel, &nb) || nb > (size_t)ST_MAX_JSON_INT)
      s = tn_error(TN_ERR_ARG, "%s: tensor '%s': negative or overflowing shape", path, nm);
    else if (nb > 0 && !e[i].data)
      s = tn_error(TN_ERR_ARG, "%s: tensor '%s': data is NULL", path, nm);
    else {
      if (nbytes) nbytes[i] = nb;
      names[i] = e[i].name;
    }
  }
  if (s == TN_OK) {
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 1; i < n && s == TN_OK; i++)
      if (strcmp(names[i], names[i - 1]) == 0)
        s = tn_error(TN_ERR_ARG, "%s: tensor '%s': duplicate name", path, names[i]);
  }
  free(names);
  return s;
}

typedef struct { const st_buf *hdr; const tn_st_entry *e; const size_t *nbytes; int n; } st_wctx;

static tn_status st_fill(FILE *fp, void *ctx) {
  const st_wctx *w = ctx;
  unsigned char len[8];
  uint64_t N = w->hdr->n;
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)(N >> (8 * i));
  if (fwrite(len, 1, 8, fp) != 8 || fwrite(w->hdr->p, 1, w->hdr->n, fp) != w->hdr->n)
    return tn_error(TN_ERR_IO, "write failed: %s", strerror(errno));
  for (int i = 0; i < w->n; i++)
    if (w->nbytes[i] && fwrite(w->e[i].data, 1, w->nbytes[i], fp) != w->nbytes[i])
      return tn_error(TN_ERR_IO, "tensor '%s': write failed: %s", w->e[i].name, strerror(errno));
  return TN_OK;
}

tn_status tn_st_write(const char *path, const tn_st_entry *e, int n, const char *metadata_json) {
  cJSON *meta = NULL;
  TN_TRY(st_check_meta(path, metadata_json, &meta));
  size_t *nbytes = malloc((n > 0 ? (size_t)n : 1) * sizeof *nbytes);
  if (!nbytes) { cJSON_Delete(meta); return tn_error(TN_ERR_NOMEM, "%s: out of memory", path); }
  tn_status s = st_check_entries(path, e, n, nbytes);
  st_buf b = {0};
  if (s == TN_OK) {
    sb_str(&b, "{");
    bool first = true;
    if (meta) {
      sb_str(&b, "\"__metadata__\":{");
      for (const cJSON *m = meta->child; m; m = m->next) {
        if (m != meta->child) sb_str(&b, ",");
        sb_json_str(&b, m->string);
        sb_str(&b, ":");
        sb_json_str(&b, m->valuestring);
      }
      sb_str(&b, "}");
      first = false;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
      if (!first) sb_str(&b, ",");
      first = false;
      sb_json_str(&b, e[i].name);
      sb_fmt(&b, ":{\"dtype\":\"%s\",\"shape\":[", tn_st_dtype_name(e[i].dtype));
      for (int d = 0; d < e[i].ndim; d++) sb_fmt(&b, d ? ",%" PRId64 : "%" PRId64, e[i].shape[d]);
      sb_fmt(&b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + nbytes[i]);
      off += nbytes[i];
    }
    sb_str(&b, "}");
    while (!b.oom && b.n % 8 != 0) sb_str(&b, " "); /* HF pads the header to 8 bytes */
    if (b.oom) s = tn_error(TN_ERR_NOMEM, "%s: out of memory building the header", path);
  }
  if (s == TN_OK) {
    st_wctx w = {&b, e, nbytes, n};
    s = tn_write_atomic_cb(path, st_fill, &w);
  }
  free(b.p);
  free(nbytes);
  cJSON_Delete(meta);
  return s;
}

static int cmp_entry_name(const void *a, const void *b) {
  return strcmp((*(const tn_st_entry *const *)a)->name, (*(const tn_st_entry *const *)b)->name);
}

tn_status tn_st_write_dir(const char *dir, const tn_st_entry *e, int n, int nshards, const char *metadata_json) {
  TN_TRY(tn_mkdirs(dir));
  int K = nshards < n ? nshards : n; /* every shard holds at least one tensor */
  if (K <= 1) {
    char *p = tn_path_join(dir, ST_SINGLE);
    tn_status s = tn_st_write(p, e, n, metadata_json);
    free(p);
    return s;
  }
  char *ipath = tn_path_join(dir, ST_INDEX);
  size_t *nbytes = malloc((size_t)n * sizeof *nbytes);
  int *shard_of = malloc((size_t)n * sizeof *shard_of);
  const tn_st_entry **sorted = malloc((size_t)n * sizeof *sorted);
  tn_status s = (!nbytes || !shard_of || !sorted) ? tn_error(TN_ERR_NOMEM, "%s: out of memory", dir) : TN_OK;
  if (s == TN_OK) {
    cJSON *meta = NULL;
    s = st_check_meta(ipath, metadata_json, &meta);
    cJSON_Delete(meta);
  }
  if (s == TN_OK) s = st_check_entries(ipath, e, n, nbytes);
  unsigned __int128 total = 0;
  if (s == TN_OK) {
    for (int i = 0; i < n; i++) total += nbytes[i];
    /* Contiguous split in the given order, balanced by bytes: move to the next shard once
     * this one reaches its share, or when the tensors left are just enough for the shards left. */
    unsigned __int128 cum = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
      shard_of[i] = k;
      cum += nbytes[i];
      bool full = cum * (unsigned)K >= total * (unsigned)(k + 1);
      if (k < K - 1 && (full || n - i - 1 == K - 1 - k)) k++;
    }
  }
  char name[64];
  for (int k = 0; k < K && s == TN_OK; k++) {
    int lo = 0, hi;
    while (shard_of[lo] != k) lo++;
    for (hi = lo; hi < n && shard_of[hi] == k; hi++) {}
    snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, K);
    char *p = tn_path_join(dir, name);
    s = tn_st_write(p, e + lo, hi - lo, metadata_json);
    free(p);
  }
  if (s == TN_OK) {
    /* The index as transformers writes it: json.dumps(indent=2, sort_keys=True) + "\n". */
    for (int i = 0; i < n; i++) sorted[i] = &e[i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_entry_name);
    st_buf b = {0};
    sb_fmt(&b, "{\n  \"metadata\": {\n    \"total_size\": %" PRIu64 "\n  },\n  \"weight_map\": {\n", (uint64_t)total);
    for (int i = 0; i < n; i++) {
      int k = shard_of[sorted[i] - e];
      snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, K);
      sb_str(&b, "    ");
      sb_json_str(&b, sorted[i]->name);
      sb_str(&b, ": ");
      sb_json_str(&b, name);
      sb_str(&b, i + 1 < n ? ",\n" : "\n");
    }
    sb_str(&b, "  }\n}\n");
    if (b.oom) s = tn_error(TN_ERR_NOMEM, "%s: out of memory", ipath);
    else s = tn_write_file_atomic(ipath, b.p, b.n);
    free(b.p);
    char *single = tn_path_join(dir, ST_SINGLE);
    if (s == TN_OK && single && tn_file_exists(single))
      tn_warn("%s: a stale %s is still there and readers (ours and transformers) prefer it to %s", dir,
              ST_SINGLE, ST_INDEX);
    free(single);
  }
  free(ipath);
  free(nbytes);
  free(shard_of);
  free(sorted);
  return s;
}
