/* safetensors.h - reading and writing the safetensors format (Hugging Face):
 * 8-byte little-endian header length N, N bytes of JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data section (offsets are relative to it).
 * Files are memory-mapped; tensors are never copied by the reader. Every field is
 * validated before anything is read: a file that lies (header past the end,
 * offsets out of range or overlapping, size != dtype*shape, unknown dtype) is
 * refused with a message naming the file and tensor.
 *
 * Reader rules (TN_ERR_FORMAT unless said): file >= 8 bytes; N <= 100 MB (the
 * reference reader's limit) and 8 + N <= file size; the header starts with '{', is
 * one JSON object, and only JSON whitespace may follow it (HF pads with spaces);
 * each entry is an object with "dtype" (a known name), "shape" (<= 8 non-negative
 * integers) and "data_offsets" (two integers begin <= end, both <= 2^53); other keys
 * in an entry are ignored; numel * dtype size (overflow-checked) == end - begin;
 * end <= data section size; non-empty tensors do not overlap; names are unique;
 * "__metadata__" is an object of strings. Gaps between tensors and bytes after
 * the last one are accepted (the Rust reference refuses them; they are harmless).
 * The header is parsed from a private NUL-terminated copy; nothing outside the
 * mapping is ever read. A missing file is TN_ERR_IO. On error the struct is zeroed.
 * Data pointers are only as aligned as the file makes them.
 *
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
 * index but absent from its shard, or a shard missing, is an error naming both.
 * Details: when both exist, model.safetensors is read (as transformers does) with a
 * warning. The index must agree exactly with the shards: every weight_map entry is
 * in its shard, every shard tensor is in the weight_map and mapped to that shard
 * (so a tensor stored in two shards is refused), shard names are plain file names
 * in DIR (no '/', "..": no escaping the directory), no name listed twice. Errors
 * name the index file, the shard and the tensor. metadata.total_size is not
 * checked (writers disagree on what it counts). No checkpoint at all: TN_ERR_IO
 * naming DIR. files[] is in shard-name order; tn_st_set_find searches them all. */
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
/* Atomic (temporary name, fsync, rename). metadata: NULL or a flat JSON object of strings.
 * Header: {"__metadata__": ..., then the tensors in order}, padded with spaces to a
 * multiple of 8 bytes as HF does; offsets are contiguous from 0 in the given order
 * (put wider dtypes first if you want every tensor aligned). Bad entries (NULL or
 * duplicate name, "__metadata__" as a name, bad dtype/ndim, negative shape, NULL data
 * for a non-empty tensor) are TN_ERR_ARG and nothing is written. */
tn_status tn_st_write(const char *path, const tn_st_entry *e, int n, const char *metadata_json);
/* Into DIR: one model.safetensors when nshards <= 1, else model-0000i-of-0000N.safetensors
 * plus model.safetensors.index.json (metadata.total_size, weight_map), HF's layout.
 * DIR is created. nshards is clamped to n so no shard is empty; tensors are split
 * into contiguous runs of the given order, balanced by bytes. Each shard gets
 * metadata_json. The index is written last, formatted as transformers writes it
 * (indent 2, sorted keys); total_size = sum of tensor bytes. Files already in DIR are
 * never removed: writing a single file leaves an old index and shards in place
 * (harmless: model.safetensors is preferred), but writing shards next to an old
 * model.safetensors leaves that file winning, so a warning is logged; shards of an
 * earlier write with another count stay behind unreferenced. Use a fresh DIR. */
tn_status tn_st_write_dir(const char *dir, const tn_st_entry *e, int n, int nshards,
                          const char *metadata_json);
#endif
