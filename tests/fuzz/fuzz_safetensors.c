/* fuzz_safetensors.c - libFuzzer harness: one safetensors file (8-byte header length,
 * JSON header, data section) through tn_st_open; every tensor it accepts is looked up
 * by name and each of its bytes read, so a header that points outside the mapping is
 * caught by ASan. Not for: directories and index files (fuzz_st_index.c). */
#include "fuzz_common.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write(NULL, "f.safetensors", data, size, 0);
  tn_st_file f;
  tn_error_clear();
  tn_status s = tn_st_open(&f, path);
  fz_check(s, "tn_st_open");
  if (s != TN_OK) return 0;
  unsigned sum = 0;
  for (int i = 0; i < f.n; i++) {
    const tn_st_tensor *t = &f.tensors[i];
    if (tn_st_find(&f, t->name) == NULL) abort();
    if (t->nbytes != t->numel * tn_st_dtype_size(t->dtype)) abort();
    const unsigned char *b = t->data;
    for (size_t k = 0; k < t->nbytes; k++) sum += b[k];
  }
  if (f.metadata_json) sum += (unsigned char)f.metadata_json[0];
  tn_st_close(&f);
  return (int)(sum & 0);
}
