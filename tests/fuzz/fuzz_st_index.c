/* fuzz_st_index.c - libFuzzer harness: a sharded checkpoint directory. The input is
 * model.safetensors.index.json, NUL, then the bytes of shard "b.safetensors"; shard
 * "a.safetensors" is a fixed valid file. tn_st_open_dir must accept only an index that
 * agrees with its shards; every tensor it accepts is found by name and read whole.
 * Not for: the single-file parser's details (fuzz_safetensors.c). */
#include "fuzz_common.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *dir;
  if (!dir) {
    dir = fz_subdir("ckpt");
    float w[6] = {1, 2, 3, 4, 5, 6};
    tn_st_entry e[2] = {{"x.weight", TN_ST_F32, 2, {2, 3}, w}, {"y.bias", TN_ST_F32, 1, {2}, w}};
    char *p = tn_path_join(dir, "a.safetensors");
    if (!p || tn_st_write(p, e, 2, NULL) != TN_OK) abort();
    free(p);
  }
  const uint8_t *part[2];
  size_t len[2];
  int k = fz_split(data, size, 2, part, len);
  fz_write(dir, "model.safetensors.index.json", part[0], len[0], 0);
  fz_write(dir, "b.safetensors", k > 1 ? part[1] : NULL, k > 1 ? len[1] : (size_t)-1, 1);
  tn_st_set set;
  tn_error_clear();
  tn_status s = tn_st_open_dir(&set, dir);
  fz_check(s, "tn_st_open_dir");
  if (s != TN_OK) return 0;
  unsigned sum = 0;
  for (int i = 0; i < set.nfiles; i++)
    for (int j = 0; j < set.files[i].n; j++) {
      const tn_st_tensor *t = &set.files[i].tensors[j];
      if (!tn_st_set_find(&set, t->name)) abort();
      for (size_t b = 0; b < t->nbytes; b++) sum += ((const unsigned char *)t->data)[b];
    }
  tn_st_set_close(&set);
  return (int)(sum & 0);
}
