/* tok_encode.c - text -> token ids: repair invalid UTF-8, split out added tokens
 * (leftmost-longest, lstrip/rstrip/single_word), normalize, pre-tokenize, run BPE
 * (priority-queue merges on vocabulary ids, byte fallback, unk), add the post-processor's
 * special tokens. Optionally tracks byte offsets into the caller's text.
 * Not for: decoding (tok_decode.c) or chat templates (chat.c). */
#include "tokenizer/tokenizer.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define DEAD INT32_MIN

static tn_status out_push(tn_encoding *out, int32_t id, uint32_t s, uint32_t e, bool want) {
  if (out->n + 1 > out->cap) {
    size_t nc = out->cap ? out->cap * 2 : 256;
    int32_t *ids = realloc(out->ids, nc * sizeof *ids);
    if (!ids) return tn_error(TN_ERR_NOMEM, "out of memory");
    out->ids = ids;
    uint32_t *of = realloc(out->offsets, nc * 2 * sizeof *of);
    if (!of) return tn_error(TN_ERR_NOMEM, "out of memory");
    out->offsets = of;
    uint8_t *mk = realloc(out->mask, nc);
    if (!mk) return tn_error(TN_ERR_NOMEM, "out of memory");
    out->mask = mk;
    out->cap = nc;
  }
  out->ids[out->n] = id;
  if (want) {
    out->offsets[2 * out->n] = s;
    out->offsets[2 * out->n + 1] = e;
  }
  out->n++;
  return TN_OK;
}

/* ---- BPE ---- */
typedef struct tk_heap_ent hent;
static inline bool h_less(const hent *a, const hent *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}
static void h_push(hent *h, size_t *n, hent e) {
  size_t i = (*n)++;
  while (i) {
    size_t p = (i - 1) / 2;
    if (!h_less(&e, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = e;
}
static hent h_pop(hent *h, size_t *n) {
  hent top = h[0], last = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && h_less(&h[c + 1], &h[c])) c++;
    if (!h_less(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = last;
  return top;
}

static inline void try_pair(const tn_tokenizer *tk, tk_scratch *sc, size_t *nh, int32_t l, int32_t r) {
  int32_t li = sc->sym_id[l], ri = sc->sym_id[r], rank, mid;
  if (li < 0 || ri < 0) return;
  if (tk_pairmap_get(&tk->merges, ((uint64_t)(uint32_t)li << 32) | (uint32_t)ri, &rank, &mid))
    h_push(sc->heap, nh, (hent){rank, l, li, ri, mid});
}

/* Emit the tokens of one OOV character (byte fallback or unk). */
static tn_status emit_oov(const tn_tokenizer *tk, const unsigned char *w, uint32_t s, uint32_t e, const uint32_t *al,
                          uint32_t base, bool want, tn_encoding *out, bool *last_unk) {
  bool all = tk->byte_fallback;
  for (uint32_t k = s; k < e && all; k++) all = tk->byte_id[w[k]] >= 0;
  uint32_t os = want ? al[base + s] : 0, oe = want ? al[base + e] : 0;
  if (all) {
    for (uint32_t k = s; k < e; k++) TN_TRY(out_push(out, tk->byte_id[w[k]], os, oe, want));
    *last_unk = false;
    return TN_OK;
  }
  if (tk->unk_id < 0) return TN_OK; /* nothing to emit (the reference drops it too) */
  if (tk->fuse_unk && *last_unk) {
    if (want) out->offsets[2 * out->n - 1] = oe;
    return TN_OK;
  }
  *last_unk = true;
  return out_push(out, tk->unk_id, os, oe, want);
}

/* BPE over one pre-tokenized piece w[0..n) located at byte `base` of the aligned text. */
static tn_status bpe_piece(const tn_tokenizer *tk, tk_scratch *sc, const char *wc, uint32_t n, const uint32_t *al,
                           uint32_t base, tn_encoding *out) {
  const unsigned char *w = (const unsigned char *)wc;
  bool want = al != NULL;
  if (tk->ignore_merges) {
    int32_t id = tk_strmap_get(&tk->piece2id, wc, n);
    if (id >= 0) return out_push(out, id, want ? al[base] : 0, want ? al[base + n] : 0, want);
  }
  size_t oldcap = sc->symcap;
  TN_TRY(tk_grow((void **)&sc->sym_id, &sc->symcap, n + 1, sizeof *sc->sym_id));
  if (sc->symcap != oldcap || !sc->sym_prev) { /* all symbol arrays share symcap */
    size_t cap = sc->symcap;
    int32_t *p;
    uint32_t *q;
    if (!(p = realloc(sc->sym_prev, cap * sizeof *p))) return tn_error(TN_ERR_NOMEM, "out of memory");
    sc->sym_prev = p;
    if (!(p = realloc(sc->sym_next, cap * sizeof *p))) return tn_error(TN_ERR_NOMEM, "out of memory");
    sc->sym_next = p;
    if (!(q = realloc(sc->sym_s, cap * sizeof *q))) return tn_error(TN_ERR_NOMEM, "out of memory");
    sc->sym_s = q;
    if (!(q = realloc(sc->sym_e, cap * sizeof *q))) return tn_error(TN_ERR_NOMEM, "out of memory");
    sc->sym_e = q;
  }

  int32_t ns = 0;
  if (tk->byte_level) {
    for (uint32_t i = 0; i < n; i++) {
      sc->sym_id[ns] = tk->byte_id[w[i]];
      sc->sym_s[ns] = i;
      sc->sym_e[ns] = i + 1;
      ns++;
    }
  } else {
    for (uint32_t i = 0; i < n;) {
      int32_t cp;
      int l = tk_utf8_decode(w + i, &cp);
      int32_t id = cp < 0x10000 ? tk->char_id[cp] : tk_strmap_get(&tk->piece2id, wc + i, l);
      sc->sym_id[ns] = id;
      sc->sym_s[ns] = i;
      sc->sym_e[ns] = i + l;
      ns++;
      i += l;
    }
  }
  for (int32_t i = 0; i < ns; i++) {
    sc->sym_prev[i] = i - 1;
    sc->sym_next[i] = i + 1 < ns ? i + 1 : -1;
  }
  if (ns > 1) {
    TN_TRY(tk_grow((void **)&sc->heap, &sc->heapcap, 2 * (size_t)ns + 8, sizeof *sc->heap));
    /* initial candidates: independent lookups (the CPU overlaps their cache misses), then an
     * O(n) heapify instead of n pushes */
    size_t nh = 0;
    for (int32_t i = 0; i + 1 < ns; i++) {
      int32_t li = sc->sym_id[i], ri = sc->sym_id[i + 1], rank, mid;
      if (li >= 0 && ri >= 0 &&
          tk_pairmap_get(&tk->merges, ((uint64_t)(uint32_t)li << 32) | (uint32_t)ri, &rank, &mid))
        sc->heap[nh++] = (hent){rank, i, li, ri, mid};
    }
    for (size_t k = nh / 2; k-- > 0;) { /* sift down */
      hent e = sc->heap[k];
      size_t i = k;
      for (;;) {
        size_t c = 2 * i + 1;
        if (c >= nh) break;
        if (c + 1 < nh && h_less(&sc->heap[c + 1], &sc->heap[c])) c++;
        if (!h_less(&sc->heap[c], &e)) break;
        sc->heap[i] = sc->heap[c];
        i = c;
      }
      sc->heap[i] = e;
    }
    while (nh) {
      hent e = h_pop(sc->heap, &nh);
      int32_t l = e.pos;
      if (sc->sym_id[l] != e.lid) continue;
      int32_t r = sc->sym_next[l];
      if (r < 0 || sc->sym_id[r] != e.rid) continue;
      sc->sym_id[l] = e.mid;
      sc->sym_e[l] = sc->sym_e[r];
      sc->sym_next[l] = sc->sym_next[r];
      if (sc->sym_next[r] >= 0) sc->sym_prev[sc->sym_next[r]] = l;
      sc->sym_id[r] = DEAD;
      if (nh + 2 > sc->heapcap) TN_TRY(tk_grow((void **)&sc->heap, &sc->heapcap, nh + 2, sizeof *sc->heap));
      if (sc->sym_prev[l] >= 0) try_pair(tk, sc, &nh, sc->sym_prev[l], l);
      if (sc->sym_next[l] >= 0) try_pair(tk, sc, &nh, l, sc->sym_next[l]);
    }
  }
  bool last_unk = false;
  for (int32_t i = ns > 0 ? 0 : -1; i >= 0; i = sc->sym_next[i]) {
    if (sc->sym_id[i] >= 0) {
      TN_TRY(out_push(out, sc->sym_id[i], want ? al[base + sc->sym_s[i]] : 0, want ? al[base + sc->sym_e[i]] : 0,
                      want));
      last_unk = false;
    } else {
      TN_TRY(emit_oov(tk, w, sc->sym_s[i], sc->sym_e[i], al, base, want, out, &last_unk));
    }
  }
  return TN_OK;
}

/* bpe_piece through the per-encoding word cache (pieces of at most 32 bytes). */
static const uint32_t IDENT[33] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static tn_status bpe_cached(const tn_tokenizer *tk, tk_scratch *sc, const char *wc, uint32_t n, const uint32_t *al,
                            uint32_t base, tn_encoding *out) {
  if (n > 32 || n == 0) return bpe_piece(tk, sc, wc, n, al, base, out);
  if (!sc->cache && !(sc->cache = calloc(TK_CACHE_N, sizeof *sc->cache)))
    return tn_error(TN_ERR_NOMEM, "out of memory");
  bool want = al != NULL;
  uint64_t h = tk_hash(wc, n);
  struct tk_wcache *e = &sc->cache[h & (TK_CACHE_N - 1)];
  if (e->h == h && e->wlen == n && !memcmp(e->w, wc, n)) {
    for (int k = 0; k < e->nids; k++)
      TN_TRY(out_push(out, e->ids[k], want ? al[base + e->rs[k]] : 0, want ? al[base + e->re[k]] : 0, want));
    return TN_OK;
  }
  size_t o0 = out->n;
  TN_TRY(bpe_piece(tk, sc, wc, n, IDENT, 0, out)); /* offsets relative to the piece */
  size_t k = out->n - o0;
  if (k <= 8) {
    e->h = h;
    e->wlen = (uint8_t)n;
    e->nids = (uint8_t)k;
    memcpy(e->w, wc, n);
    for (size_t q = 0; q < k; q++) {
      e->ids[q] = out->ids[o0 + q];
      e->rs[q] = (uint8_t)out->offsets[2 * (o0 + q)];
      e->re[q] = (uint8_t)out->offsets[2 * (o0 + q) + 1];
    }
  }
  if (want)
    for (size_t q = o0; q < out->n; q++) {
      out->offsets[2 * q] = al[base + out->offsets[2 * q]];
      out->offsets[2 * q + 1] = al[base + out->offsets[2 * q + 1]];
    }
  return TN_OK;
}

/* One pre-tokenized piece: long SentencePiece-style words are first cut before each U+2581
 * that no vocabulary token can span (tk->meta_split), which gives the same tokens. */
static tn_status bpe_word(const tn_tokenizer *tk, tk_scratch *sc, const char *wc, uint32_t n, const uint32_t *al,
                          uint32_t base, tn_encoding *out) {
  if (!tk->meta_split || n <= 32 || (tk->fuse_unk && !tk->byte_fallback))
    return bpe_cached(tk, sc, wc, n, al, base, out);
  const unsigned char *w = (const unsigned char *)wc;
  uint32_t start = 0;
  int32_t prev = -1;
  for (uint32_t i = 0; i < n;) {
    int32_t cp;
    int l = tk_utf8_decode(w + i, &cp);
    if (cp == 0x2581 && i > start && prev != 0x2581) {
      bool keep = false;
      for (int k = 0; k < tk->n_meta_keep; k++) keep |= tk->meta_keep[k] == prev;
      if (!keep) {
        TN_TRY(bpe_cached(tk, sc, wc + start, i - start, al, base + start, out));
        start = i;
      }
    }
    prev = cp;
    i += l;
  }
  return bpe_cached(tk, sc, wc + start, n - start, al, base + start, out);
}

/* ---- added tokens ---- */
static bool is_word_char(int32_t cp) {
  if (cp == '_') return true;
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 32) >= 'a' && (cp | 32) <= 'z');
  utf8proc_category_t c = utf8proc_category(cp);
  return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO ? true
         : (c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO);
}

static int32_t cp_before(const char *s, size_t i) {
  if (!i) return -1;
  size_t q = i - 1;
  while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
  int32_t cp;
  tk_utf8_decode((const unsigned char *)s + q, &cp);
  return cp;
}

/* Longest added token starting at s[i] (trie walk); returns added index or -1, *len set. */
static int trie_match(const tk_trie *t, const char *s, size_t n, size_t i, size_t *len) {
  if (!t->nnodes) return -1;
  unsigned char c0 = (unsigned char)s[i];
  if (!(t->first[c0 >> 3] & (1u << (c0 & 7)))) return -1;
  int32_t node = 0, best = -1;
  for (size_t j = i; j < n; j++) {
    int32_t child, dummy;
    if (!tk_pairmap_get(&t->edges, ((uint64_t)node << 8) | (unsigned char)s[j], &child, &dummy)) break;
    node = child;
    if (t->term[node] >= 0) { best = t->term[node]; *len = j + 1 - i; }
  }
  return best;
}

/* Split s[0..n) at added tokens: appends (start, end, added index or -1) triples to sc->sections. */
static tn_status split_added(const tn_tokenizer *tk, tk_scratch *sc, const tk_trie *t, const char *s, size_t n,
                             size_t *nsec) {
  size_t ns = 0, prev = 0, i = 0;
#define SEC(a, b, k)                                                                           \
  do {                                                                                         \
    TN_TRY(tk_grow((void **)&sc->sections, &sc->scap, 3 * (ns + 1), sizeof *sc->sections));    \
    sc->sections[3 * ns] = (uint32_t)(a);                                                      \
    sc->sections[3 * ns + 1] = (uint32_t)(b);                                                  \
    sc->sections[3 * ns + 2] = (uint32_t)(k);                                                  \
    ns++;                                                                                      \
  } while (0)
  while (i < n) {
    size_t len = 0;
    int a = trie_match(t, s, n, i, &len);
    if (a < 0) { i++; continue; }
    const tk_added *ad = &tk->added[a];
    size_t ms = i, me = i + len;
    if (ad->single_word) {
      int32_t cb = cp_before(s, ms), ca = -1;
      if (me < n) tk_utf8_decode((const unsigned char *)s + me, &ca);
      if ((cb >= 0 && is_word_char(cb)) || (ca >= 0 && is_word_char(ca))) { i = me; continue; }
    }
    if (ad->lstrip)
      while (ms > prev) {
        int32_t cb = cp_before(s, ms);
        if (!tk_is_white_space(cb)) break;
        char tmp[4];
        ms -= tk_utf8_encode(cb, tmp);
      }
    if (ad->rstrip)
      while (me < n) {
        int32_t ca;
        int l = tk_utf8_decode((const unsigned char *)s + me, &ca);
        if (!tk_is_white_space(ca)) break;
        me += l;
      }
    if (ms > prev) SEC(prev, ms, UINT32_MAX);
    SEC(ms, me, a);
    prev = i = me;
  }
  if (prev < n) SEC(prev, n, UINT32_MAX);
  *nsec = ns;
  return TN_OK;
#undef SEC
}

/* Normalize + pre-tokenize + BPE one section of text (no added tokens inside). */
static tn_status encode_section(const tn_tokenizer *tk, tk_scratch *sc, const char *s, size_t n, const uint32_t *al,
                                bool first, tn_encoding *out) {
  bool want = al != NULL;
  TN_TRY(tk_normalize(tk, sc, s, n, al, &sc->t1));
  tk_text *t = &sc->t1;
  if (!t->b.len) return TN_OK;
  size_t nsub = 1;
  if (tk->trie_norm.nnodes) {
    /* normalized added tokens are matched on the normalized text; work on a copy of the sections */
    size_t base_sec = 0;
    tk_buf tmp = {0};
    TN_TRY(tk_buf_put(&tmp, t->b.s, t->b.len));
    uint32_t *tal = NULL;
    if (want) {
      tal = malloc((t->b.len + 1) * sizeof *tal);
      if (!tal) { tk_buf_free(&tmp); return tn_error(TN_ERR_NOMEM, "out of memory"); }
      memcpy(tal, t->align, (t->b.len + 1) * sizeof *tal);
    }
    /* sections array is in use by the caller: keep ours after its entries */
    uint32_t *saved = sc->sections;
    size_t savedcap = sc->scap;
    sc->sections = NULL;
    sc->scap = 0;
    tn_status st = split_added(tk, sc, &tk->trie_norm, tmp.s, tmp.len, &nsub);
    for (size_t k = 0; k < nsub && st == TN_OK; k++) {
      uint32_t a = sc->sections[3 * k], b = sc->sections[3 * k + 1], idx = sc->sections[3 * k + 2];
      if (idx != UINT32_MAX) {
        st = out_push(out, tk->added[idx].id, want ? tal[a] : 0, want ? tal[b] : 0, want);
        continue;
      }
      t->b.len = 0;
      if ((st = tk_buf_put(&t->b, tmp.s + a, b - a)) != TN_OK) break;
      if (want) {
        if ((st = tk_grow((void **)&t->align, &t->align_cap, b - a + 1, sizeof *t->align)) != TN_OK) break;
        memcpy(t->align, tal + a, (b - a + 1) * sizeof *tal);
      }
      size_t np;
      if ((st = tk_pretokenize(tk, sc, t, &np, first && k == 0, want)) != TN_OK) break;
      for (size_t pi = 0; pi < np && st == TN_OK; pi++)
        st = bpe_word(tk, sc, t->b.s + sc->pieces[pi].s, sc->pieces[pi].e - sc->pieces[pi].s,
                       want ? t->align : NULL, sc->pieces[pi].s, out);
    }
    (void)base_sec;
    free(sc->sections);
    sc->sections = saved;
    sc->scap = savedcap;
    tk_buf_free(&tmp);
    free(tal);
    return st;
  }
  size_t np;
  TN_TRY(tk_pretokenize(tk, sc, t, &np, first, want));
  for (size_t pi = 0; pi < np; pi++)
    TN_TRY(bpe_word(tk, sc, t->b.s + sc->pieces[pi].s, sc->pieces[pi].e - sc->pieces[pi].s, want ? t->align : NULL,
                     sc->pieces[pi].s, out));
  return TN_OK;
}

static tn_status encode_impl(const tn_tokenizer *tk, const char *text, size_t len, bool add_special, bool want,
                             tn_encoding *out) {
  if (!tk || !out || (!text && len)) return tn_error(TN_ERR_ARG, "tn_tokenizer_encode: NULL argument");
  if (len > UINT32_MAX / 2) return tn_error(TN_ERR_LIMIT, "tn_tokenizer_encode: text of %zu bytes is too long", len);
  if (!out->scratch) {
    out->scratch = calloc(1, sizeof(tk_scratch));
    if (!out->scratch) return tn_error(TN_ERR_NOMEM, "out of memory");
  }
  tk_scratch *sc = out->scratch;
  TN_TRY(tk_scratch_ensure(sc));
  out->n = 0;
  /* 1. valid UTF-8 (repair like TextDecoder), with an alignment when offsets are wanted */
  const char *s = text;
  size_t n = len;
  const uint32_t *al = NULL;
  if (!tk_utf8_is_valid(text, len)) {
    sc->t0.b.len = 0;
    TN_TRY(tk_utf8_sanitize(text, len, &sc->t0.b, want ? &sc->t0.align : NULL, &sc->t0.align_cap));
    s = sc->t0.b.s;
    n = sc->t0.b.len;
    al = want ? sc->t0.align : NULL;
  } else if (want) {
    TN_TRY(tk_grow((void **)&sc->t0.align, &sc->t0.align_cap, len + 1, sizeof *sc->t0.align));
    for (size_t i = 0; i <= len; i++) sc->t0.align[i] = (uint32_t)i;
    al = sc->t0.align;
  }
  if (add_special)
    for (int i = 0; i < tk->n_post_pre; i++) TN_TRY(out_push(out, tk->post_pre[i], 0, 0, want));
  /* 2. added tokens on the raw text, then each remaining section */
  size_t nsec;
  TN_TRY(split_added(tk, sc, &tk->trie_raw, s, n, &nsec));
  for (size_t k = 0; k < nsec; k++) {
    uint32_t a = sc->sections[3 * k], b = sc->sections[3 * k + 1], idx = sc->sections[3 * k + 2];
    if (idx != UINT32_MAX) TN_TRY(out_push(out, tk->added[idx].id, want ? al[a] : 0, want ? al[b] : 0, want));
    else TN_TRY(encode_section(tk, sc, s + a, b - a, want ? al + a : NULL, k == 0, out));
  }
  if (add_special)
    for (int i = 0; i < tk->n_post_post; i++)
      TN_TRY(out_push(out, tk->post_post[i], (uint32_t)len, (uint32_t)len, want));
  return TN_OK;
}

tn_status tn_tokenizer_encode(const tn_tokenizer *tk, const char *text, size_t len, bool add_special,
                              tn_encoding *out) {
  return encode_impl(tk, text, len, add_special, false, out);
}

tn_status tn_tokenizer_encode_offsets(const tn_tokenizer *tk, const char *text, size_t len, bool add_special,
                                      tn_encoding *out) {
  return encode_impl(tk, text, len, add_special, true, out);
}

static void text_free(tk_text *t) {
  tk_buf_free(&t->b);
  free(t->align);
}

void tn_encoding_free(tn_encoding *e) {
  if (!e) return;
  free(e->ids);
  free(e->offsets);
  free(e->mask);
  tk_scratch *sc = e->scratch;
  if (sc) {
    text_free(&sc->t0);
    text_free(&sc->t1);
    text_free(&sc->t2);
    free(sc->pieces);
    free(sc->pieces2);
    free(sc->sections);
    free(sc->sym_id);
    free(sc->sym_s);
    free(sc->sym_e);
    free(sc->sym_prev);
    free(sc->sym_next);
    free(sc->heap);
    free(sc->cache);
    if (sc->md) pcre2_match_data_free(sc->md);
    free(sc);
  }
  memset(e, 0, sizeof *e);
}
