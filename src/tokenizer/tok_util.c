/* tok_util.c - building blocks of the tokenizer: growable buffers, string and pair hash
 * maps, UTF-8 validation / repair, the GPT-2 byte<->unicode map, whitespace classes.
 * Not for: anything that knows about tokenizer.json. */
#include "tokenizer/tokenizer.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

tn_status tk_grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return TN_OK;
  size_t nc = *cap ? *cap : 16;
  while (nc < need) nc *= 2;
  void *q = realloc(*p, nc * elem);
  if (!q) return tn_error(TN_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", nc * elem);
  *p = q;
  *cap = nc;
  return TN_OK;
}

tn_status tk_buf_reserve(tk_buf *b, size_t extra) {
  return tk_grow((void **)&b->s, &b->cap, b->len + extra + 1, 1);
}

tn_status tk_buf_put(tk_buf *b, const void *p, size_t n) {
  if (b->len + n + 1 > b->cap) TN_TRY(tk_buf_reserve(b, n));
  if (n) memcpy(b->s + b->len, p, n);
  b->len += n;
  b->s[b->len] = 0;
  return TN_OK;
}

void tk_buf_free(tk_buf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

/* 64-bit hash of a short byte string (wyhash-like mixing, good enough for vocab keys). */
uint64_t tk_hash(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 0x243F6A8885A308D3ull ^ (n * 0x9E3779B97F4A7C15ull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    s += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, s, n);
  h = (h ^ w ^ ((uint64_t)n << 56)) * 0x94D049BB133111EBull;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h;
}

void *tk_big_calloc(size_t n, size_t elem) {
  size_t bytes = n * elem;
  if (bytes < (4u << 20)) return calloc(n, elem);
  void *p = NULL;
  bytes = (bytes + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
  if (posix_memalign(&p, 2u << 20, bytes)) return NULL;
  madvise(p, bytes, MADV_HUGEPAGE);
  memset(p, 0, bytes);
  return p;
}

static tn_status sm_rehash(tk_strmap *m, size_t nslots) {
  tk_sm_slot *sl = tk_big_calloc(nslots, sizeof *sl);
  if (!sl) return tn_error(TN_ERR_NOMEM, "tokenizer: out of memory");
  for (size_t i = 0; i < nslots; i++) sl[i].off = UINT32_MAX;
  size_t mask = nslots - 1;
  if (m->slots)
    for (size_t e = 0; e <= m->mask; e++) {
      if (m->slots[e].off == UINT32_MAX) continue;
      size_t i = m->slots[e].hash & mask;
      while (sl[i].off != UINT32_MAX) i = (i + 1) & mask;
      sl[i] = m->slots[e];
    }
  free(m->slots);
  m->slots = sl;
  m->mask = mask;
  return TN_OK;
}

tn_status tk_strmap_init(tk_strmap *m, size_t expected) {
  memset(m, 0, sizeof *m);
  size_t ns = 64;
  while (ns < expected * 2) ns *= 2;
  TN_TRY(tk_buf_reserve(&m->keys, expected * 8));
  return sm_rehash(m, ns);
}

int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t len) {
  if (!m->slots) return -1;
  uint64_t h = tk_hash(k, len);
  uint32_t h32 = (uint32_t)(h >> 32);
  size_t i = h & m->mask;
  for (;;) {
    const tk_sm_slot *sl = &m->slots[i];
    if (sl->off == UINT32_MAX) return -1;
    if (sl->hash == h32 && sl->len == len && !memcmp(m->keys.s + sl->off, k, len)) return sl->val;
    i = (i + 1) & m->mask;
  }
}

tn_status tk_strmap_put(tk_strmap *m, const char *k, size_t len, int32_t val) {
  uint64_t h = tk_hash(k, len);
  uint32_t h32 = (uint32_t)(h >> 32);
  size_t i = h & m->mask;
  for (;;) {
    tk_sm_slot *sl = &m->slots[i];
    if (sl->off == UINT32_MAX) break;
    if (sl->hash == h32 && sl->len == len && !memcmp(m->keys.s + sl->off, k, len)) {
      sl->val = val;
      return TN_OK;
    }
    i = (i + 1) & m->mask;
  }
  uint32_t off = (uint32_t)m->keys.len;
  TN_TRY(tk_buf_put(&m->keys, k, len));
  m->slots[i] = (tk_sm_slot){h32, off, (uint32_t)len, val};
  m->n++;
  if (m->n * 2 > m->mask + 1) TN_TRY(sm_rehash(m, (m->mask + 1) * 2));
  return TN_OK;
}

void tk_strmap_free(tk_strmap *m) {
  free(m->slots);
  tk_buf_free(&m->keys);
  memset(m, 0, sizeof *m);
}

tn_status tk_pairmap_init(tk_pairmap *m, size_t expected) {
  size_t ns = 64;
  while (ns < expected * 2) ns *= 2;
  m->slots = tk_big_calloc(ns, sizeof *m->slots);
  m->n = 0;
  m->mask = ns - 1;
  if (!m->slots) return tn_error(TN_ERR_NOMEM, "tokenizer: out of memory");
  return TN_OK;
}

static tn_status pm_grow(tk_pairmap *m) {
  tk_pairmap n2;
  TN_TRY(tk_pairmap_init(&n2, (m->mask + 1)));
  for (size_t i = 0; i <= m->mask; i++)
    if (m->slots[i].key) tk_pairmap_put(&n2, m->slots[i].key - 1, m->slots[i].rank, m->slots[i].id);
  tk_pairmap_free(m);
  *m = n2;
  return TN_OK;
}

tn_status tk_pairmap_put(tk_pairmap *m, uint64_t key, int32_t rank, int32_t id) {
  size_t i = tk_pair_slot(key, m->mask);
  for (;;) {
    uint64_t k = m->slots[i].key;
    if (k == key + 1) return TN_OK; /* first (lowest rank) wins */
    if (k == 0) break;
    i = (i + 1) & m->mask;
  }
  m->slots[i] = (tk_pm_slot){key + 1, rank, id};
  if (++m->n * 2 > m->mask + 1) return pm_grow(m);
  return TN_OK;
}

void tk_pairmap_free(tk_pairmap *m) {
  free(m->slots);
  memset(m, 0, sizeof *m);
}

/* ---- UTF-8 ---- */
int tk_utf8_valid_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (n < 3) return 0;
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return (p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80) ? 3 : 0;
  }
  if (c < 0xF5) {
    if (n < 4) return 0;
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return (p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) ? 4 : 0;
  }
  return 0;
}

/* Length of the maximal subpart of an ill-formed sequence starting at p (>= 1):
 * the longest prefix that could start a valid sequence (Unicode 3.9 / WHATWG). */
static int utf8_bad_len(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  int need;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c < 0xE0) need = 2;
  else if (c >= 0xE0 && c < 0xF0) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
  else if (c >= 0xF0 && c < 0xF5) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
  else return 1;
  int k = 1;
  if (k < (int)n && p[k] >= lo && p[k] <= hi) {
    k++;
    while (k < need && k < (int)n && (p[k] & 0xC0) == 0x80) k++;
  }
  return k;
}

bool tk_utf8_is_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) { i++; continue; }
    int l = tk_utf8_valid_len(p + i, n - i);
    if (!l) return false;
    i += l;
  }
  return true;
}

char *tn_utf8_valid_dup(const char *s) {
  const size_t n = strlen(s);
  if (tk_utf8_is_valid(s, n)) return tn_strdup(s);
  tk_buf b = {0};
  if (tk_utf8_sanitize(s, n, &b, NULL, NULL) != TN_OK || tk_buf_put(&b, "", 1) != TN_OK) {
    tk_buf_free(&b);
    return NULL;
  }
  return b.s;
}

tn_status tk_utf8_sanitize(const char *src, size_t n, tk_buf *out, uint32_t **align, size_t *align_cap) {
  const unsigned char *p = (const unsigned char *)src;
  TN_TRY(tk_buf_reserve(out, n + n / 2 + 4));
  size_t i = 0;
  while (i < n) {
    int l = p[i] < 0x80 ? 1 : tk_utf8_valid_len(p + i, n - i);
    size_t o = out->len;
    if (l) {
      TN_TRY(tk_buf_put(out, p + i, l));
    } else {
      l = utf8_bad_len(p + i, n - i);
      TN_TRY(tk_buf_put(out, "\xEF\xBF\xBD", 3));
    }
    if (align) {
      TN_TRY(tk_grow((void **)align, align_cap, out->len + 1, sizeof **align));
      for (size_t k = o; k < out->len; k++) (*align)[k] = (uint32_t)i;
    }
    i += l;
  }
  if (align) {
    TN_TRY(tk_grow((void **)align, align_cap, out->len + 1, sizeof **align));
    (*align)[out->len] = (uint32_t)n;
  }
  return TN_OK;
}

int tk_utf8_decode(const unsigned char *p, int32_t *cp) {
  unsigned c = p[0];
  if (c < 0x80) { *cp = c; return 1; }
  if (c < 0xE0) { *cp = ((c & 0x1F) << 6) | (p[1] & 0x3F); return 2; }
  if (c < 0xF0) { *cp = ((c & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F); return 3; }
  *cp = ((c & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  return 4;
}

int tk_utf8_encode(int32_t cp, char *out) {
  unsigned char *o = (unsigned char *)out;
  if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
  if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
  if (cp < 0x10000) {
    o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
    return 3;
  }
  o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F); o[2] = 0x80 | ((cp >> 6) & 0x3F);
  o[3] = 0x80 | (cp & 0x3F);
  return 4;
}

bool tk_is_white_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool tk_is_py_space(int32_t c) { return tk_is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

/* ---- GPT-2 byte-level map ---- */
int32_t tk_byte_to_cp[256];
static int16_t cp_to_byte_tab[324];
static int bl_ready;

void tk_bytelevel_init(void) {
  if (__atomic_load_n(&bl_ready, __ATOMIC_ACQUIRE)) return;
  int32_t b2c[256];
  int n = 0;
  for (int b = 0; b < 256; b++) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) b2c[b] = b;
    else b2c[b] = 256 + n++;
  }
  for (int i = 0; i < 324; i++) cp_to_byte_tab[i] = -1;
  for (int b = 0; b < 256; b++) {
    tk_byte_to_cp[b] = b2c[b];
    cp_to_byte_tab[b2c[b]] = (int16_t)b;
  }
  __atomic_store_n(&bl_ready, 1, __ATOMIC_RELEASE);
}

int tk_cp_to_byte(int32_t cp) { return (cp >= 0 && cp < 324) ? cp_to_byte_tab[cp] : -1; }
