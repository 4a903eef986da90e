/* test_safetensors.c - safetensors reader/writer: round trips of every dtype and
 * of sharded directories, byte layout, every malformed-input case (each built
 * here), directory/index inconsistencies, and a mutation sweep that must only
 * ever yield TN_OK or TN_ERR_FORMAT.
 * Also a helper binary for tests/safetensors/check.py (an independent Python
 * reader/writer written from the spec):
 *   test_safetensors --write DIR NSHARDS   write the formula tensor set (see st_set)
 *   test_safetensors --dump PATH           read a file or directory, print JSON
 *                                          {metadata, tensors: {name: {dtype, shape, hex, file}}} */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/safetensors.h"

static char g_root[256];

static const char *tpath(const char *name) {
  static char buf[8][512];
  static int k;
  char *p = buf[k++ % 8];
  snprintf(p, 512, "%s/%s", g_root, name);
  return p;
}

/* ------------------------------------------------------------------ formula set
 * The same table and formula are written independently in check.py.
 * Element i of tensor k: b = (7 i + 13 k) mod 251, v = b - 125. */
typedef struct { const char *name; tn_st_dtype dt; int ndim; int64_t shape[TN_ST_MAX_DIMS]; } st_spec;
static const st_spec st_set[] = {
  {"model.embed_tokens.weight", TN_ST_F32, 2, {5, 3}},
  {"model.layers.0.self_attn.q_proj.weight", TN_ST_BF16, 2, {4, 6}},
  {"model.layers.0.mlp.up_proj.weight", TN_ST_F16, 3, {2, 3, 4}},
  {"scalar.f64", TN_ST_F64, 0, {0}},
  {"ids.i64", TN_ST_I64, 1, {7}},
  {"ids.i32", TN_ST_I32, 2, {3, 1}},
  {"ids.i16", TN_ST_I16, 1, {5}},
  {"ids.i8", TN_ST_I8, 1, {9}},
  {"bytes.u8", TN_ST_U8, 1, {11}},
  {"mask.bool", TN_ST_BOOL, 2, {2, 5}},
  {"u16", TN_ST_U16, 1, {3}},
  {"u32", TN_ST_U32, 1, {4}},
  {"u64", TN_ST_U64, 1, {2}},
  {"fp8.e4m3", TN_ST_F8_E4M3, 1, {6}},
  {"fp8.e5m2", TN_ST_F8_E5M2, 2, {2, 2}},
  {"empty.f32", TN_ST_F32, 2, {0, 4}},
  {"model.norm.weight", TN_ST_F32, 8, {1, 1, 1, 1, 1, 1, 1, 8}},
  {"name \"quoted\" \\ \xc3\xbc", TN_ST_U8, 1, {1}},
};
#define ST_SET_N ((int)(sizeof st_set / sizeof st_set[0]))
#define ST_META "{\"format\":\"pt\",\"writer\":\"tunic\"}"

static size_t spec_numel(const st_spec *s) {
  size_t n = 1;
  for (int d = 0; d < s->ndim; d++) n *= (size_t)s->shape[d];
  return n;
}

static void fill_formula(int k, tn_st_dtype dt, size_t numel, void *out) {
  for (size_t i = 0; i < numel; i++) {
    uint32_t b = (uint32_t)((i * 7 + (size_t)k * 13) % 251);
    int32_t v = (int32_t)b - 125;
    switch (dt) {
    case TN_ST_F32: ((float *)out)[i] = v / 8.0f; break;
    case TN_ST_F64: ((double *)out)[i] = v / 8.0; break;
    case TN_ST_F16: ((uint16_t *)out)[i] = tn_f32_to_f16(v / 8.0f); break;
    case TN_ST_BF16: ((uint16_t *)out)[i] = tn_f32_to_bf16(v / 8.0f); break;
    case TN_ST_I8: ((int8_t *)out)[i] = (int8_t)v; break;
    case TN_ST_I16: ((int16_t *)out)[i] = (int16_t)(v * 257); break;
    case TN_ST_I32: ((int32_t *)out)[i] = v * 16843009; break;
    case TN_ST_I64: ((int64_t *)out)[i] = (int64_t)v * 0x0101010101010101LL; break;
    case TN_ST_U8: case TN_ST_F8_E4M3: case TN_ST_F8_E5M2: ((uint8_t *)out)[i] = (uint8_t)b; break;
    case TN_ST_U16: ((uint16_t *)out)[i] = (uint16_t)(b * 257); break;
    case TN_ST_U32: ((uint32_t *)out)[i] = b * 0x01010101u; break;
    case TN_ST_U64: ((uint64_t *)out)[i] = b * 0x0101010101010101ULL; break;
    case TN_ST_BOOL: ((uint8_t *)out)[i] = b % 3 == 0; break;
    }
  }
}

/* The formula set as writer entries; data buffers in *bufs (free with free_set). */
static tn_st_entry *make_set(void ***bufs) {
  tn_st_entry *e = calloc(ST_SET_N, sizeof *e);
  *bufs = calloc(ST_SET_N, sizeof **bufs);
  for (int k = 0; k < ST_SET_N; k++) {
    const st_spec *s = &st_set[k];
    size_t n = spec_numel(s);
    (*bufs)[k] = malloc(n * tn_st_dtype_size(s->dt) + 1);
    fill_formula(k, s->dt, n, (*bufs)[k]);
    e[k].name = s->name;
    e[k].dtype = s->dt;
    e[k].ndim = s->ndim;
    memcpy(e[k].shape, s->shape, sizeof e[k].shape);
    e[k].data = (*bufs)[k];
  }
  return e;
}
static void free_set(tn_st_entry *e, void **bufs) {
  for (int k = 0; k < ST_SET_N; k++) free(bufs[k]);
  free(bufs);
  free(e);
}

/* Every tensor of the set is found with the right dtype, shape and bytes. */
static void check_set_tensor(const tn_st_tensor *t, int k, const void *expect) {
  const st_spec *s = &st_set[k];
  assert_non_null(t);
  assert_string_equal(t->name, s->name);
  assert_int_equal(t->dtype, s->dt);
  assert_int_equal(t->ndim, s->ndim);
  for (int d = 0; d < s->ndim; d++) assert_int_equal(t->shape[d], s->shape[d]);
  assert_int_equal(t->numel, spec_numel(s));
  assert_int_equal(t->nbytes, spec_numel(s) * tn_st_dtype_size(s->dt));
  if (t->nbytes) assert_memory_equal(t->data, expect, t->nbytes);
}

/* ------------------------------------------------------------------ helpers */

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  if (n) assert_int_equal(fwrite(p, 1, n, f), n);
  assert_int_equal(fclose(f), 0);
}

/* 8-byte length (hlen, or strlen(hdr) when hlen == UINT64_MAX), the header, dlen zero bytes. */
static void write_raw(const char *path, const char *hdr, size_t hdr_bytes, uint64_t hlen, size_t dlen) {
  if (hlen == UINT64_MAX) hlen = hdr_bytes;
  size_t n = 8 + hdr_bytes + dlen;
  unsigned char *b = calloc(n, 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
  memcpy(b + 8, hdr, hdr_bytes);
  write_bytes(path, b, n);
  free(b);
}

static void assert_msg_has(const char *what) {
  const char *m = tn_last_error();
  if (!strstr(m, what)) fail_msg("error message \"%s\" does not contain \"%s\"", m, what);
}

static void rm_rf(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
      char p[1024];
      snprintf(p, sizeof p, "%s/%s", path, de->d_name);
      rm_rf(p);
    }
    closedir(d);
    rmdir(path);
  } else {
    unlink(path);
  }
}

/* ------------------------------------------------------------------ round trips */

static void test_dtype_table(void **state) {
  (void)state;
  static const struct { const char *n; size_t sz; } want[] = {
    {"F32", 4}, {"BF16", 2}, {"F16", 2}, {"F64", 8}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
    {"U8", 1}, {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (int i = 0; i < (int)(sizeof want / sizeof want[0]); i++) {
    tn_st_dtype t;
    assert_true(tn_st_dtype_parse(want[i].n, &t));
    assert_string_equal(tn_st_dtype_name(t), want[i].n);
    assert_int_equal(tn_st_dtype_size(t), want[i].sz);
  }
  tn_st_dtype t;
  assert_false(tn_st_dtype_parse("f32", &t));
  assert_false(tn_st_dtype_parse("F4", &t));
}

static void test_roundtrip_file(void **state) {
  (void)state;
  void **bufs;
  tn_st_entry *e = make_set(&bufs);
  const char *p = tpath("rt.safetensors");
  assert_int_equal(tn_st_write(p, e, ST_SET_N, ST_META), TN_OK);
  tn_st_file f;
  assert_int_equal(tn_st_open(&f, p), TN_OK);
  assert_int_equal(f.n, ST_SET_N);
  for (int k = 0; k < ST_SET_N; k++) {
    const tn_st_tensor *t = tn_st_find(&f, st_set[k].name);
    check_set_tensor(t, k, bufs[k]);
    assert_string_equal(t->file, p);
  }
  assert_null(tn_st_find(&f, "model.missing"));
  assert_null(tn_st_find(&f, ""));
  /* tensors[] is sorted by data offset, which for our writer is the given order */
  for (int i = 1; i < f.n; i++)
    assert_true((const char *)f.tensors[i].data >= (const char *)f.tensors[i - 1].data + f.tensors[i - 1].nbytes);
  cJSON *m = cJSON_Parse(f.metadata_json);
  assert_non_null(m);
  assert_string_equal(cJSON_GetObjectItem(m, "format")->valuestring, "pt");
  assert_string_equal(cJSON_GetObjectItem(m, "writer")->valuestring, "tunic");
  assert_int_equal(cJSON_GetArraySize(m), 2);
  cJSON_Delete(m);
  tn_st_close(&f);

  /* No metadata, no tensors: still a valid file. */
  assert_int_equal(tn_st_write(p, NULL, 0, NULL), TN_OK);
  assert_int_equal(tn_st_open(&f, p), TN_OK);
  assert_int_equal(f.n, 0);
  assert_null(f.metadata_json);
  assert_null(tn_st_find(&f, "x"));
  tn_st_close(&f);
  free_set(e, bufs);
}

/* The bytes on disk follow the spec: u64 LE length, header padded with spaces to
 * a multiple of 8, contiguous offsets from 0 in the given order, nothing after. */
static void test_layout(void **state) {
  (void)state;
  void **bufs;
  tn_st_entry *e = make_set(&bufs);
  const char *p = tpath("layout.safetensors");
  for (int n = 1; n <= 4; n++) { /* different header lengths exercise the padding */
    assert_int_equal(tn_st_write(p, e, n, n % 2 ? ST_META : NULL), TN_OK);
    char *raw;
    size_t len;
    assert_int_equal(tn_read_file(p, &raw, &len), TN_OK);
    uint64_t N = 0;
    for (int i = 7; i >= 0; i--) N = (N << 8) | (unsigned char)raw[i];
    assert_int_equal(N % 8, 0);
    assert_true(8 + N <= len);
    assert_int_equal(raw[8], '{');
    char *hdr = strndup(raw + 8, N);
    char *close = strrchr(hdr, '}');
    for (char *c = close + 1; *c; c++) assert_int_equal(*c, ' ');
    cJSON *h = cJSON_Parse(hdr);
    assert_non_null(h);
    uint64_t off = 0;
    int k = 0;
    for (cJSON *it = h->child; it; it = it->next) {
      if (!strcmp(it->string, "__metadata__")) { assert_true(it == h->child); continue; }
      assert_string_equal(it->string, st_set[k].name);
      cJSON *o = cJSON_GetObjectItem(it, "data_offsets");
      assert_int_equal((uint64_t)cJSON_GetArrayItem(o, 0)->valuedouble, off);
      size_t nb = spec_numel(&st_set[k]) * tn_st_dtype_size(st_set[k].dt);
      assert_int_equal((uint64_t)cJSON_GetArrayItem(o, 1)->valuedouble, off + nb);
      assert_memory_equal(raw + 8 + N + off, bufs[k], nb);
      off += nb;
      k++;
    }
    assert_int_equal(k, n);
    assert_int_equal(len, 8 + N + off);
    cJSON_Delete(h);
    free(hdr);
    free(raw);
  }
  free_set(e, bufs);
}

static void test_roundtrip_dir(void **state) {
  (void)state;
  void **bufs;
  tn_st_entry *e = make_set(&bufs);
  struct { int ask, files; } cases[] = {{1, 1}, {0, 1}, {2, 2}, {3, 3}, {5, 5}, {ST_SET_N, ST_SET_N}, {99, ST_SET_N}};
  for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
    char dn[64];
    snprintf(dn, sizeof dn, "dir%d", c);
    const char *dir = tpath(dn);
    assert_int_equal(tn_st_write_dir(dir, e, ST_SET_N, cases[c].ask, ST_META), TN_OK);
    char *single = tn_path_join(dir, "model.safetensors"), *index = tn_path_join(dir, "model.safetensors.index.json");
    assert_int_equal(tn_file_exists(single), cases[c].files == 1);
    assert_int_equal(tn_file_exists(index), cases[c].files > 1);
    tn_st_set s;
    assert_int_equal(tn_st_open_dir(&s, dir), TN_OK);
    assert_int_equal(s.nfiles, cases[c].files);
    int total = 0;
    for (int i = 0; i < s.nfiles; i++) {
      total += s.files[i].n;
      assert_true(s.files[i].n >= 1);
    }
    assert_int_equal(total, ST_SET_N);
    for (int k = 0; k < ST_SET_N; k++) check_set_tensor(tn_st_set_find(&s, st_set[k].name), k, bufs[k]);
    assert_null(tn_st_set_find(&s, "nope"));
    if (cases[c].files > 1) {
      /* shard names and index content as HF writes them */
      for (int i = 0; i < s.nfiles; i++) {
        char want[64];
        snprintf(want, sizeof want, "model-%05d-of-%05d.safetensors", i + 1, cases[c].files);
        assert_non_null(strstr(s.files[i].map.path, want));
      }
      char *txt;
      assert_int_equal(tn_read_file(index, &txt, NULL), TN_OK);
      cJSON *j = cJSON_Parse(txt);
      size_t want_total = 0;
      for (int k = 0; k < ST_SET_N; k++) want_total += spec_numel(&st_set[k]) * tn_st_dtype_size(st_set[k].dt);
      cJSON *ts = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metadata"), "total_size");
      assert_true(cJSON_IsNumber(ts));
      assert_int_equal((size_t)ts->valuedouble, want_total);
      cJSON *wm = cJSON_GetObjectItem(j, "weight_map");
      assert_int_equal(cJSON_GetArraySize(wm), ST_SET_N);
      for (int k = 0; k < ST_SET_N; k++) {
        const tn_st_tensor *t = tn_st_set_find(&s, st_set[k].name);
        const char *shard = cJSON_GetObjectItemCaseSensitive(wm, st_set[k].name)->valuestring;
        assert_non_null(strstr(t->file, shard));
      }
      cJSON_Delete(j);
      free(txt);
    }
    tn_st_set_close(&s);
    free(single);
    free(index);
  }
  free_set(e, bufs);
}

/* ------------------------------------------------------------------ bad files */

typedef struct {
  const char *hdr;   /* header text */
  size_t hdr_bytes;  /* 0: strlen(hdr) */
  uint64_t hlen;     /* UINT64_MAX: the header's real length */
  size_t dlen;       /* bytes of data section */
  const char *want1, *want2, *want3; /* substrings the message must contain */
} bad_case;

#define ANY UINT64_MAX
static const bad_case bad_cases[] = {
  {"{}", 0, 1000, 12, "past the end of the file", NULL, NULL},
  {"{}", 0, 1ULL << 62, 0, "absurd", NULL, NULL},
  {"", 0, ANY, 0, "does not start with '{'", NULL, NULL},
  {"[1, 2]  ", 0, ANY, 0, "does not start with '{'", NULL, NULL},
  {"{\"a\": ", 0, ANY, 0, "not valid JSON", NULL, NULL},
  {"{\"a\":{}} xx", 0, ANY, 0, "trailing bytes", NULL, NULL},
  {"{}\0     ", 8, ANY, 0, "trailing bytes", NULL, NULL},
  {"{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 0, ANY, 4, "'w'", "missing \"dtype\"", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 0, ANY, 4, "'w'", "missing \"shape\"", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, ANY, 4, "'w'", "missing \"data_offsets\"", NULL},
  {"{\"w\":5}", 0, ANY, 0, "'w'", "not a JSON object", NULL},
  {"{\"w\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 0, ANY, 4, "'w'", "\"dtype\" is not a string", NULL},
  {"{\"w\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, ANY, 4, "'w'", "unknown dtype \"F7\"", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 0, ANY, 8, "'w'", "\"shape\" is not an array", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,\"a\"],\"data_offsets\":[0,8]}}", 0, ANY, 8, "'w'", "\"shape\"[1]", "non-negative integer"},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,8]}}", 0, ANY, 8, "'w'", "\"shape\"[0]", "non-negative integer"},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 0, ANY, 8, "'w'", "\"shape\"[0]", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, ANY, 4, "'w'", "9 dimensions", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 0, ANY, 4, "'w'", "\"data_offsets\"", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0,4\"}}", 0, ANY, 4, "'w'", "\"data_offsets\"", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 0, ANY, 8, "'w'", "\"data_offsets\"", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 0, ANY, 8, "'w'", "\"data_offsets\"", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 0, ANY, 8, "'w'", "\"data_offsets\"", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 0, ANY, 8, "'w'", "begin after end", NULL},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 0, ANY, 16, "'w'", "16 bytes", "[0, 12]"},
  {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, ANY, 0,
   "'w'", "overflows", NULL},
  {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, ANY, 0,
   "'w'", "overflows", NULL},
  {"{\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[1024],\"data_offsets\":[0,4096]}}", 0, ANY, 2048,
   "tensor 'model.norm.weight': data_offsets [0, 4096] exceed the data section (2048 bytes)", NULL, NULL},
  {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
   "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 0, ANY, 24, "'b'", "overlap tensor 'a'", NULL},
  {"{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
   "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, ANY, 16, "'b'", "overlap tensor 'a'", NULL},
  {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, ANY, 8, "'a'", "duplicate", NULL},
  {"{\"__metadata__\":{\"x\":1}}", 0, ANY, 0, "\"__metadata__\"", "'x'", "not a string"},
  {"{\"__metadata__\":[\"x\"]}", 0, ANY, 0, "\"__metadata__\"", "not an object", NULL},
};

static void test_bad_files(void **state) {
  (void)state;
  const char *p = tpath("bad.safetensors");
  tn_st_file f;
  /* shorter than 8 bytes */
  for (size_t n = 0; n < 8; n++) {
    write_bytes(p, "\x02\0\0\0\0\0\0", n);
    assert_int_equal(tn_st_open(&f, p), TN_ERR_FORMAT);
    assert_msg_has(p);
    assert_msg_has("shorter than the 8-byte header length");
    assert_int_equal(f.n, 0);
    assert_null(f.tensors);
  }
  for (int c = 0; c < (int)(sizeof bad_cases / sizeof bad_cases[0]); c++) {
    const bad_case *b = &bad_cases[c];
    size_t hb = b->hdr_bytes ? b->hdr_bytes : strlen(b->hdr);
    write_raw(p, b->hdr, hb, b->hlen, b->dlen);
    tn_status s = tn_st_open(&f, p);
    if (s != TN_ERR_FORMAT) fail_msg("case %d (%s): status %d, message: %s", c, b->hdr, s, tn_last_error());
    assert_msg_has(p);
    if (b->want1) assert_msg_has(b->want1);
    if (b->want2) assert_msg_has(b->want2);
    if (b->want3) assert_msg_has(b->want3);
    assert_int_equal(f.n, 0); /* nothing exposed, and closing again is harmless */
    tn_st_close(&f);
  }
  /* missing file: I/O error naming it */
  assert_int_equal(tn_st_open(&f, tpath("nonexistent.safetensors")), TN_ERR_IO);
  assert_msg_has("nonexistent.safetensors");
}

/* Valid but unusual files the reader must accept. */
static void test_unusual_valid(void **state) {
  (void)state;
  const char *p = tpath("odd.safetensors");
  tn_st_file f;
  /* no padding, newlines, keys out of data order, zero-size tensor inside another's range,
   * unknown extra keys in an entry, a gap between tensors */
  const char *h = "{\n \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [6, 8], \"extra\": 1},\n"
                  " \"a\": {\"dtype\": \"U16\", \"shape\": [2], \"data_offsets\": [0, 4]},\n"
                  " \"z\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [1, 1]}}\n";
  size_t hb = strlen(h);
  unsigned char *buf = calloc(8 + hb + 8, 1);
  buf[0] = (unsigned char)hb;
  memcpy(buf + 8, h, hb);
  unsigned char data[8] = {1, 2, 3, 4, 0xee, 0xee, 9, 10};
  memcpy(buf + 8 + hb, data, 8);
  write_bytes(p, buf, 8 + hb + 8);
  free(buf);
  assert_int_equal(tn_st_open(&f, p), TN_OK);
  assert_int_equal(f.n, 3);
  const tn_st_tensor *a = tn_st_find(&f, "a"), *b = tn_st_find(&f, "b"), *z = tn_st_find(&f, "z");
  assert_non_null(a);
  assert_non_null(b);
  assert_non_null(z);
  assert_memory_equal(a->data, data, 4);
  assert_memory_equal(b->data, data + 6, 2);
  assert_int_equal(z->numel, 0);
  assert_int_equal(z->nbytes, 0);
  assert_string_equal(f.tensors[0].name, "a"); /* sorted by offset */
  assert_string_equal(f.tensors[f.n - 1].name, "b");
  tn_st_close(&f);
}

/* Truncations and random byte mutations of a valid file: only TN_OK or TN_ERR_FORMAT,
 * and every exposed tensor lies inside the mapping (ASan/UBSan watch the parser). */
static void test_mutations(void **state) {
  (void)state;
  void **bufs;
  tn_st_entry *e = make_set(&bufs);
  const char *src = tpath("mut_src.safetensors"), *p = tpath("mut.safetensors");
  assert_int_equal(tn_st_write(src, e, 6, ST_META), TN_OK);
  free_set(e, bufs);
  char *raw;
  size_t len;
  assert_int_equal(tn_read_file(src, &raw, &len), TN_OK);
  tn_st_file f;
  int ok = 0, bad = 0;
  for (size_t n = 0; n < len; n++) { /* every truncation is refused */
    write_bytes(p, raw, n);
    assert_int_equal(tn_st_open(&f, p), TN_ERR_FORMAT);
    assert_msg_has(p);
  }
  tn_rng r;
  tn_rng_seed(&r, 1234);
  char *m = malloc(len);
  for (int it = 0; it < 3000; it++) {
    memcpy(m, raw, len);
    int flips = 1 + (int)(tn_rng_u64(&r) % 3);
    for (int j = 0; j < flips; j++) {
      size_t at = tn_rng_u64(&r) % len;
      uint64_t kind = tn_rng_u64(&r) % 4;
      static const char pool[] = "{}[]\",:0123456789-.e \\";
      if (kind == 0) m[at] = (char)tn_rng_u64(&r);
      else m[at] = pool[tn_rng_u64(&r) % (sizeof pool - 1)];
    }
    write_bytes(p, m, len);
    tn_status s = tn_st_open(&f, p);
    if (s == TN_OK) {
      ok++;
      const char *lo = f.map.data, *hi = lo + f.map.size;
      for (int i = 0; i < f.n; i++) {
        const char *d = f.tensors[i].data;
        assert_true(d >= lo + 8 && d + f.tensors[i].nbytes <= hi);
        assert_ptr_equal(tn_st_find(&f, f.tensors[i].name), &f.tensors[i]);
      }
      tn_st_close(&f);
    } else {
      if (s != TN_ERR_FORMAT) fail_msg("iteration %d: status %d: %s", it, s, tn_last_error());
      assert_msg_has(p);
      bad++;
    }
  }
  assert_true(ok > 0 && bad > 0); /* the sweep really hit both sides */
  free(m);
  free(raw);
}

/* ------------------------------------------------------------------ directories */

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

static void test_bad_dirs(void **state) {
  (void)state;
  tn_st_set s;
  const char *empty = tpath("emptydir");
  mkdir(empty, 0755);
  assert_int_equal(tn_st_open_dir(&s, empty), TN_ERR_IO);
  assert_msg_has(empty);
  assert_msg_has("no model.safetensors or model.safetensors.index.json");
  assert_int_equal(s.nfiles, 0);
  assert_int_equal(tn_st_open_dir(&s, tpath("no_such_dir")), TN_ERR_IO);
  assert_msg_has("no_such_dir");

  /* a two-shard checkpoint: a, b in shard 1; c in shard 2 */
  float va[4] = {1, 2, 3, 4}, vb[2] = {5, 6}, vc[3] = {7, 8, 9};
  tn_st_entry e[3] = {{"a", TN_ST_F32, 1, {4}, va}, {"b", TN_ST_F32, 1, {2}, vb}, {"c", TN_ST_F32, 1, {3}, vc}};
  const char *dir = tpath("shdir");
  char idx[512], s1[512], s2[512];
  snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
  snprintf(s1, sizeof s1, "%s/model-00001-of-00002.safetensors", dir);
  snprintf(s2, sizeof s2, "%s/model-00002-of-00002.safetensors", dir);
  assert_int_equal(tn_st_write_dir(dir, e, 3, 2, NULL), TN_OK);
  assert_int_equal(tn_st_open_dir(&s, dir), TN_OK);
  assert_int_equal(s.nfiles, 2);
  assert_int_equal(s.files[0].n + s.files[1].n, 3);
  tn_st_set_close(&s);

  struct { const char *index; tn_status st; const char *w1, *w2; } cases[] = {
    {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
     " \"c\": \"model-00003-of-00002.safetensors\"}}", TN_ERR_IO, "shard 'model-00003-of-00002.safetensors'", "cannot open"},
    {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\","
     " \"c\": \"model-00002-of-00002.safetensors\"}}", TN_ERR_FORMAT, "tensor 'b'", "model-00002-of-00002.safetensors"},
    {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
     " \"x\": \"model-00002-of-00002.safetensors\"}}", TN_ERR_FORMAT, "tensor 'x'", "does not contain it"},
    {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\","
     " \"c\": \"model-00002-of-00002.safetensors\"}}", TN_ERR_FORMAT, "tensor 'b'", "not in the weight_map"},
    {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
     " \"c\": \"../model-00002-of-00002.safetensors\"}}", TN_ERR_FORMAT, "tensor 'c'", "not a file name"},
    {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
     " \"c\": 3}}", TN_ERR_FORMAT, "tensor 'c'", "not a string"},
    {"{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00001-of-00002.safetensors\","
     " \"a\": \"model-00001-of-00002.safetensors\", \"c\": \"model-00002-of-00002.safetensors\"}}", TN_ERR_FORMAT,
     "tensor 'a'", "listed twice"},
    {"{\"metadata\": {}}", TN_ERR_FORMAT, "weight_map", NULL},
    {"{\"weight_map\": {}}", TN_ERR_FORMAT, "weight_map is empty", NULL},
    {"{\"weight_map\": ", TN_ERR_FORMAT, "not a JSON object", NULL},
  };
  char *good;
  assert_int_equal(tn_read_file(idx, &good, NULL), TN_OK);
  for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
    write_text(idx, cases[c].index);
    tn_status st = tn_st_open_dir(&s, dir);
    if (st != cases[c].st) fail_msg("dir case %d: status %d: %s", c, st, tn_last_error());
    assert_msg_has(idx);
    assert_msg_has(cases[c].w1);
    if (cases[c].w2) assert_msg_has(cases[c].w2);
    assert_int_equal(s.nfiles, 0);
    assert_null(s.files);
  }
  write_text(idx, good);
  free(good);

  /* the same tensor in both shards: named with both shards */
  tn_st_entry dup[3] = {{"a", TN_ST_F32, 1, {4}, va}, {"b", TN_ST_F32, 1, {2}, vb}, {"c", TN_ST_F32, 1, {3}, vc}};
  assert_int_equal(tn_st_write(s1, dup, 3, NULL), TN_OK);
  assert_int_equal(tn_st_open_dir(&s, dir), TN_ERR_FORMAT);
  assert_msg_has(idx);
  assert_msg_has("tensor 'c'");
  assert_msg_has("model-00001-of-00002.safetensors");
  assert_msg_has("model-00002-of-00002.safetensors");

  /* a corrupt shard: the message names the index, the shard, the shard's path and the tensor */
  tn_st_entry one[2] = {{"a", TN_ST_F32, 1, {4}, va}, {"b", TN_ST_F32, 1, {2}, vb}};
  assert_int_equal(tn_st_write(s1, one, 2, NULL), TN_OK);
  assert_int_equal(tn_st_open_dir(&s, dir), TN_OK);
  tn_st_set_close(&s);
  const char *h = "{\"c\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
  write_raw(s2, h, strlen(h), UINT64_MAX, 8);
  assert_int_equal(tn_st_open_dir(&s, dir), TN_ERR_FORMAT);
  assert_msg_has(idx);
  assert_msg_has("shard 'model-00002-of-00002.safetensors'");
  assert_msg_has(s2);
  assert_msg_has("tensor 'c'");
  assert_msg_has("exceed the data section (8 bytes)");

  /* model.safetensors wins over an index, as in transformers */
  tn_st_entry solo[1] = {{"solo", TN_ST_F32, 1, {2}, vb}};
  assert_int_equal(tn_st_write_dir(dir, solo, 1, 1, NULL), TN_OK);
  assert_int_equal(tn_st_open_dir(&s, dir), TN_OK);
  assert_int_equal(s.nfiles, 1);
  assert_non_null(tn_st_set_find(&s, "solo"));
  assert_null(tn_st_set_find(&s, "a"));
  tn_st_set_close(&s);
}

static void test_writer_args(void **state) {
  (void)state;
  float v[4] = {0};
  const char *p = tpath("args.safetensors");
  tn_st_entry dup[2] = {{"w", TN_ST_F32, 1, {4}, v}, {"w", TN_ST_F32, 1, {1}, v}};
  assert_int_equal(tn_st_write(p, dup, 2, NULL), TN_ERR_ARG);
  assert_msg_has("'w'");
  assert_msg_has("duplicate");
  tn_st_entry neg[1] = {{"n", TN_ST_F32, 2, {-1, 4}, v}};
  assert_int_equal(tn_st_write(p, neg, 1, NULL), TN_ERR_ARG);
  assert_msg_has("'n'");
  tn_st_entry nodata[1] = {{"d", TN_ST_F32, 1, {4}, NULL}};
  assert_int_equal(tn_st_write(p, nodata, 1, NULL), TN_ERR_ARG);
  assert_msg_has("'d'");
  tn_st_entry meta[1] = {{"__metadata__", TN_ST_F32, 1, {4}, v}};
  assert_int_equal(tn_st_write(p, meta, 1, NULL), TN_ERR_ARG);
  tn_st_entry big[1] = {{"b", TN_ST_F32, 9, {1}, v}};
  assert_int_equal(tn_st_write(p, big, 1, NULL), TN_ERR_ARG);
  tn_st_entry ok[1] = {{"ok", TN_ST_F32, 1, {4}, v}};
  assert_int_equal(tn_st_write(p, ok, 1, "{\"x\": 1}"), TN_ERR_ARG);
  assert_msg_has("'x'");
  assert_int_equal(tn_st_write(p, ok, 1, "[1]"), TN_ERR_ARG);
  assert_false(tn_file_exists(p)); /* nothing was written by the failed calls */
  assert_int_equal(tn_st_write_dir(tpath("argdir"), dup, 2, 2, NULL), TN_ERR_ARG);
  assert_int_equal(tn_st_write(tpath("nodir/x.safetensors"), ok, 1, NULL), TN_ERR_IO);
}

/* ------------------------------------------------------------------ helper modes for check.py */

static int mode_write(const char *dir, int nshards) {
  void **bufs;
  tn_st_entry *e = make_set(&bufs);
  tn_status s = tn_st_write_dir(dir, e, ST_SET_N, nshards, ST_META);
  free_set(e, bufs);
  if (s != TN_OK) fprintf(stderr, "write failed: %s\n", tn_last_error());
  return s == TN_OK ? 0 : 1;
}

static void dump_file(cJSON *tensors, const tn_st_file *f) {
  for (int i = 0; i < f->n; i++) {
    const tn_st_tensor *t = &f->tensors[i];
    cJSON *o = cJSON_AddObjectToObject(tensors, t->name);
    cJSON_AddStringToObject(o, "dtype", tn_st_dtype_name(t->dtype));
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
    char *hex = malloc(2 * t->nbytes + 1);
    for (size_t b = 0; b < t->nbytes; b++) sprintf(hex + 2 * b, "%02x", ((const unsigned char *)t->data)[b]);
    hex[2 * t->nbytes] = 0;
    cJSON_AddStringToObject(o, "hex", hex);
    free(hex);
    cJSON_AddStringToObject(o, "file", t->file);
  }
}

static int mode_dump(const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0) { fprintf(stderr, "%s: missing\n", path); return 1; }
  cJSON *out = cJSON_CreateObject(), *tensors = cJSON_AddObjectToObject(out, "tensors");
  tn_status s;
  if (S_ISDIR(sb.st_mode)) {
    tn_st_set set;
    s = tn_st_open_dir(&set, path);
    if (s == TN_OK) {
      cJSON_AddNumberToObject(out, "nfiles", set.nfiles);
      for (int i = 0; i < set.nfiles; i++) dump_file(tensors, &set.files[i]);
      if (set.nfiles && set.files[0].metadata_json)
        cJSON_AddItemToObject(out, "metadata", cJSON_Parse(set.files[0].metadata_json));
      tn_st_set_close(&set);
    }
  } else {
    tn_st_file f;
    s = tn_st_open(&f, path);
    if (s == TN_OK) {
      dump_file(tensors, &f);
      if (f.metadata_json) cJSON_AddItemToObject(out, "metadata", cJSON_Parse(f.metadata_json));
      tn_st_close(&f);
    }
  }
  if (s != TN_OK) {
    fprintf(stderr, "%s\n", tn_last_error());
    cJSON_Delete(out);
    return 2;
  }
  char *txt = cJSON_PrintUnformatted(out);
  puts(txt);
  free(txt);
  cJSON_Delete(out);
  return 0;
}

static int setup_root(void **state) {
  (void)state;
  /* tmpfs when there is one: the writer fsyncs every file, which is slow on a busy disk */
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(g_root, sizeof g_root, "%s/tn_st_XXXXXX", tmp);
  return mkdtemp(g_root) ? 0 : -1;
}
static int teardown_root(void **state) {
  (void)state;
  rm_rf(g_root);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "--write")) return mode_write(argv[2], atoi(argv[3]));
  if (argc == 3 && !strcmp(argv[1], "--dump")) return mode_dump(argv[2]);
  tn_log_set_level(TN_LOG_ERROR);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_dtype_table),
    cmocka_unit_test(test_roundtrip_file),
    cmocka_unit_test(test_layout),
    cmocka_unit_test(test_roundtrip_dir),
    cmocka_unit_test(test_bad_files),
    cmocka_unit_test(test_unusual_valid),
    cmocka_unit_test(test_mutations),
    cmocka_unit_test(test_bad_dirs),
    cmocka_unit_test(test_writer_args),
  };
  return cmocka_run_group_tests(tests, setup_root, teardown_root);
}
