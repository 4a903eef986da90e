/* safetensors.h - reading and writing the safetensors format (Hugging Face):
 * 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data section (offsets are relative to it).
 * Files are memory-mapped; tensors are never copied by the reader. Every field is
 * validated before anything is read: a file that lies (header past the end,
 * offsets out of range or overlapping, size != dtype*shape, unknown dtype) is
 * refused with a message naming the file and tensor.
 * Not for: model-specific names or dtype conversion (src/model/model.c). */
#ifndef TN_SAFETENSORS_H
#define TN_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "base/base.h"

typedef enum {
  TN_ST_F32, TN_ST_BF16, TN_ST_F16, TN_ST_F64, TN_ST_I64, TN_ST_I32, TN_ST_I16, TN_ST_I8,
  TN_ST_U8, TN_ST_BOOL, TN_ST_U16, TN_ST_U32, TN_ST_U64, TN_ST_F8_E4M3, TN_ST_F8_E5M2
} tn_st_dtype;
const char *tn_st_dtype_name(tn_st_dtype t);  /* "F32", ... as in the header */
size_t tn_st_dtype_size(tn_st_dtype t);
bool tn_st_dtype_parse(const char *name, tn_st_dtype *out); /* "BF16" -> TN_ST_BF16; false if unknown */

#define TN_ST_MAX_DIMS 8
typedef struct {
  char *name;
  tn_st_dtype dtype;
  int ndim;
  int64_t shape[TN_ST_MAX_DIMS];
  size_t numel, nbytes;
  const void *data;      /* points into the mapped file; may be unaligned */
  const char *file;      /* path of the file holding it */
} tn_st_tensor;

/* One file. */
typedef struct {
  tn_mmap map;
  tn_st_tensor *tensors; /* sorted by data offset */
  int n;
  char *metadata_json;   /* the "__metadata__" object as JSON text, or NULL */
  int *by_name;          /* (n) indices into tensors, sorted by name (tn_st_find) */
} tn_st_file;
tn_status tn_st_open(tn_st_file *f, const char *path);
void tn_st_close(tn_st_file *f);
const tn_st_tensor *tn_st_find(const tn_st_file *f, const char *name);

/* A checkpoint directory: model.safetensors, or the shards listed by
 * model.safetensors.index.json ("weight_map": name -> file). A tensor named in the
 * index but absent from its shard, or a shard missing, is an error naming both. */
typedef struct {
  tn_st_file *files;
  int nfiles;
} tn_st_set;
tn_status tn_st_open_dir(tn_st_set *s, const char *dir);
void tn_st_set_close(tn_st_set *s);
const tn_st_tensor *tn_st_set_find(const tn_st_set *s, const char *name);

/* Writing. Entries are written in the order given; data is copied from `data`. */
typedef struct {
  const char *name;
  tn_st_dtype dtype;
  int ndim;
  int64_t shape[TN_ST_MAX_DIMS];
  const void *data;      /* nbytes = numel * dtype size */
} tn_st_entry;
/* Atomic (temporary name, fsync, rename). metadata: NULL or a flat JSON object of strings. */
tn_status tn_st_write(const char *path, const tn_st_entry *e, int n, const char *metadata_json);
/* Into DIR: one model.safetensors when nshards <= 1, else model-0000i-of-0000N.safetensors
 * plus model.safetensors.index.json (metadata.total_size, weight_map), HF's layout. */
tn_status tn_st_write_dir(const char *dir, const tn_st_entry *e, int n, int nshards,
                          const char *metadata_json);
#endif
