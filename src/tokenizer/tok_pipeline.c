/* tok_pipeline.c - the text stages before the model: normalizers (Unicode forms through
 * utf8proc, Replace, Prepend, Lowercase, Strip, StripAccents) and pre-tokenizers (Split with
 * PCRE2 regexes, ByteLevel, Metaspace, Whitespace, Digits, Punctuation). Each stage keeps,
 * when asked, an alignment from every output byte back to the input text, so tokens can
 * carry byte offsets (used for assistant masks).
 * Not for: added-token matching or BPE (tok_encode.c). */
#define _GNU_SOURCE
#include "tokenizer/tokenizer.h"
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- pattern search ---- */
int tk_pattern_find(const tk_pattern *p, const char *s, size_t n, size_t start, pcre2_match_data *md, size_t *ms,
                    size_t *me) {
  if (p->kind == TK_PAT_STRING) {
    if (!p->len || start >= n) return 0;
    const char *f = memmem(s + start, n - start, p->str, p->len);
    if (!f) return 0;
    *ms = f - s;
    *me = *ms + p->len;
    return 1;
  }
  if (start > n) return 0;
  int rc = pcre2_jit_match(p->re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
  if (rc == PCRE2_ERROR_JIT_BADOPTION || rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
  if (rc < 0) return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
  *ms = ov[0];
  *me = ov[1];
  return 1;
}

tn_status tk_scratch_ensure(tk_scratch *sc) {
  if (!sc->md) {
    sc->md = pcre2_match_data_create(32, NULL);
    if (!sc->md) return tn_error(TN_ERR_NOMEM, "out of memory");
  }
  return TN_OK;
}

static inline size_t char_len(const char *s, size_t i) {
  unsigned c = (unsigned char)s[i];
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* ---- text with alignment ---- */
static tn_status tx_reset(tk_text *t, bool with_align) {
  t->b.len = 0;
  TN_TRY(tk_buf_reserve(&t->b, 64));
  t->b.s[0] = 0;
  (void)with_align;
  return TN_OK;
}

/* Append bytes p[0..n) all aligned to `a` (or 1:1 from ain when ain != NULL). */
static tn_status tx_put(tk_text *t, const char *p, size_t n, bool want, uint32_t a, const uint32_t *ain) {
  size_t o = t->b.len;
  TN_TRY(tk_buf_put(&t->b, p, n));
  if (want) {
    TN_TRY(tk_grow((void **)&t->align, &t->align_cap, t->b.len + 1, sizeof *t->align));
    for (size_t k = 0; k < n; k++) t->align[o + k] = ain ? ain[k] : a;
  }
  return TN_OK;
}

static tn_status tx_finish(tk_text *t, bool want, uint32_t end) {
  if (want) {
    TN_TRY(tk_grow((void **)&t->align, &t->align_cap, t->b.len + 1, sizeof *t->align));
    t->align[t->b.len] = end;
  }
  return TN_OK;
}

/* ---- normalizers ---- */

/* A boundary where no canonical composition or reordering can reach across: before any
 * character that is not a combining mark and not a Hangul medial/final jamo. */
static bool norm_boundary(int32_t cp) {
  if (cp < 0x300) return true;
  if (cp >= 0x1160 && cp <= 0x11FF) return false;
  utf8proc_category_t c = utf8proc_category(cp);
  return !(c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME);
}

static tn_status norm_unicode(const char *s, size_t n, const uint32_t *ain, bool want, tk_norm_kind k, tk_text *out) {
  utf8proc_option_t opt = UTF8PROC_STABLE;
  if (k == TK_NORM_NFC) opt |= UTF8PROC_COMPOSE;
  else if (k == TK_NORM_NFD) opt |= UTF8PROC_DECOMPOSE;
  else if (k == TK_NORM_NFKC) opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
  else opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
  bool decomp = k == TK_NORM_NFD || k == TK_NORM_NFKD;
  utf8proc_int32_t buf[256], *cps = buf;
  size_t cap = 256;
  tn_status st = TN_OK;
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80 && (i + 1 >= n || (unsigned char)s[i + 1] < 0xCC)) { /* ASCII not followed by a mark */
      size_t j = i + 1;
      while (j < n && (unsigned char)s[j] < 0x80 && (j + 1 >= n || (unsigned char)s[j + 1] < 0xCC)) j++;
      if ((st = tx_put(out, s + i, j - i, want, 0, want ? ain + i : NULL)) != TN_OK) break;
      i = j;
      continue;
    }
    /* one segment: a starter and the marks that follow it */
    size_t j = i;
    int32_t cp;
    j += tk_utf8_decode((const unsigned char *)s + j, &cp);
    int32_t first = cp;
    while (j < n) {
      int32_t c2;
      int l = tk_utf8_decode((const unsigned char *)s + j, &c2);
      if (norm_boundary(c2)) break;
      j += l;
    }
    if (j - i == (size_t)(char_len(s, i)) && utf8proc_get_property(first)->decomp_seqindex == UINT16_MAX &&
        !(decomp && first >= 0xAC00 && first <= 0xD7A3)) {
      if ((st = tx_put(out, s + i, j - i, want, 0, want ? ain + i : NULL)) != TN_OK) break;
      i = j;
      continue;
    }
    utf8proc_ssize_t m = utf8proc_decompose((const utf8proc_uint8_t *)s + i, j - i, cps, cap, opt);
    if (m > (utf8proc_ssize_t)cap) {
      if (cps != buf) free(cps);
      cap = m;
      cps = malloc(cap * sizeof *cps);
      if (!cps) return tn_error(TN_ERR_NOMEM, "out of memory");
      m = utf8proc_decompose((const utf8proc_uint8_t *)s + i, j - i, cps, cap, opt);
    }
    if (m < 0) { st = tn_error(TN_ERR_INTERNAL, "utf8proc: %s", utf8proc_errmsg(m)); break; }
    m = utf8proc_normalize_utf32(cps, m, opt);
    if (m < 0) { st = tn_error(TN_ERR_INTERNAL, "utf8proc: %s", utf8proc_errmsg(m)); break; }
    char enc[4];
    for (utf8proc_ssize_t q = 0; q < m && st == TN_OK; q++) {
      int l = tk_utf8_encode(cps[q], enc);
      st = tx_put(out, enc, l, want, want ? ain[i] : 0, NULL);
    }
    if (st != TN_OK) break;
    i = j;
  }
  if (cps != buf) free(cps);
  return st;
}

static tn_status norm_replace(const tn_tokenizer *tk, tk_scratch *sc, const tk_norm *nm, const char *s, size_t n,
                              const uint32_t *ain, bool want, tk_text *out) {
  size_t pos = 0, ms, me, from = 0;
  int r;
  while ((r = tk_pattern_find(&nm->pat, s, n, from, sc->md, &ms, &me)) > 0) {
    if (me == ms) { /* empty match: step over one character */
      if (ms >= n) break;
      from = ms + char_len(s, ms);
      continue;
    }
    TN_TRY(tx_put(out, s + pos, ms - pos, want, 0, want ? ain + pos : NULL));
    TN_TRY(tx_put(out, nm->content, nm->content_len, want, want ? ain[ms] : 0, NULL));
    pos = from = me;
  }
  if (r < 0) return tn_error(TN_ERR_INTERNAL, "%s: normalizer regex failed to match", tk->name);
  return tx_put(out, s + pos, n - pos, want, 0, want ? ain + pos : NULL);
}

static tn_status norm_chars(const tk_norm *nm, const char *s, size_t n, const uint32_t *ain, bool want, tk_text *out) {
  size_t b = 0, e = n;
  if (nm->kind == TK_NORM_STRIP) {
    int32_t cp;
    if (nm->left)
      while (b < e) {
        int l = tk_utf8_decode((const unsigned char *)s + b, &cp);
        if (!tk_is_white_space(cp)) break;
        b += l;
      }
    if (nm->right)
      while (e > b) {
        size_t q = e - 1;
        while (q > b && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
        tk_utf8_decode((const unsigned char *)s + q, &cp);
        if (!tk_is_white_space(cp)) break;
        e = q;
      }
    return tx_put(out, s + b, e - b, want, 0, want ? ain + b : NULL);
  }
  for (size_t i = 0; i < n;) {
    int32_t cp;
    int l = tk_utf8_decode((const unsigned char *)s + i, &cp);
    if (nm->kind == TK_NORM_LOWERCASE) {
      char enc[4];
      int32_t lc = cp < 0x80 ? (cp >= 'A' && cp <= 'Z' ? cp + 32 : cp) : utf8proc_tolower(cp);
      TN_TRY(tx_put(out, enc, tk_utf8_encode(lc, enc), want, want ? ain[i] : 0, NULL));
    } else { /* StripAccents: drop non-spacing marks */
      if (cp < 0x300 || utf8proc_category(cp) != UTF8PROC_CATEGORY_MN)
        TN_TRY(tx_put(out, s + i, l, want, 0, want ? ain + i : NULL));
    }
    i += l;
  }
  return TN_OK;
}

tn_status tk_normalize(const tn_tokenizer *tk, tk_scratch *sc, const char *s, size_t n, const uint32_t *align_in,
                       tk_text *out) {
  bool want = align_in != NULL;
  TN_TRY(tx_reset(out, want));
  if (!tk->n_norms) {
    TN_TRY(tx_put(out, s, n, want, 0, align_in));
    return tx_finish(out, want, want ? align_in[n] : 0);
  }
  /* ping-pong between out and a temporary */
  tk_text tmp = {0}, *src = NULL;
  tn_status st = TN_OK;
  const char *cs = s;
  size_t cn = n;
  const uint32_t *ca = align_in;
  for (int k = 0; k < tk->n_norms && st == TN_OK; k++) {
    const tk_norm *nm = &tk->norms[k];
    tk_text *dst = (src == out) ? &tmp : out;
    if ((st = tx_reset(dst, want)) != TN_OK) break;
    switch (nm->kind) {
    case TK_NORM_NFC: case TK_NORM_NFD: case TK_NORM_NFKC: case TK_NORM_NFKD:
      st = norm_unicode(cs, cn, ca, want, nm->kind, dst);
      break;
    case TK_NORM_REPLACE:
      st = norm_replace(tk, sc, nm, cs, cn, ca, want, dst);
      break;
    case TK_NORM_PREPEND:
      if (cn) st = tx_put(dst, nm->content, nm->content_len, want, want ? ca[0] : 0, NULL);
      if (st == TN_OK) st = tx_put(dst, cs, cn, want, 0, ca);
      break;
    default:
      st = norm_chars(nm, cs, cn, ca, want, dst);
      break;
    }
    if (st == TN_OK) st = tx_finish(dst, want, want ? ca[cn] : 0);
    src = dst;
    cs = dst->b.s;
    cn = dst->b.len;
    ca = want ? dst->align : NULL;
  }
  if (st == TN_OK && src == &tmp) { /* result must end in out */
    tk_text t = *out;
    *out = tmp;
    tmp = t;
  }
  tk_buf_free(&tmp.b);
  free(tmp.align);
  return st;
}

/* ---- pre-tokenizers ---- */
typedef struct tk_piece piece;

static tn_status push_piece(piece **arr, size_t *cap, size_t *n, uint32_t s, uint32_t e) {
  if (e <= s) return TN_OK;
  TN_TRY(tk_grow((void **)arr, cap, *n + 1, sizeof **arr));
  (*arr)[(*n)++] = (piece){s, e};
  return TN_OK;
}

/* Split one piece [s, e) of t by a pattern with a behavior (Hugging Face semantics),
 * appending the resulting pieces to out. */
static tn_status split_piece(const tn_tokenizer *tk, tk_scratch *sc, const char *buf, uint32_t s, uint32_t e,
                             const tk_pattern *pat, tk_split_behavior beh, bool invert, piece **out, size_t *cap,
                             size_t *n) {
  /* segments: alternating gaps and matches, collected on the fly */
  enum { MAXSEG = 64 };
  struct seg { uint32_t s, e; bool m; } segs_local[MAXSEG], *segs = segs_local;
  size_t nseg = 0, segcap = MAXSEG;
  tn_status st = TN_OK;
  const char *sub = buf + s;
  size_t len = e - s, from = 0, prev = 0, ms, me;
  int r;
#define ADDSEG(a, b, mm)                                                                              \
  do {                                                                                                \
    if (nseg == segcap) {                                                                             \
      size_t nc = segcap * 2;                                                                         \
      struct seg *ns = malloc(nc * sizeof *ns);                                                       \
      if (!ns) { st = tn_error(TN_ERR_NOMEM, "out of memory"); goto out; }                            \
      memcpy(ns, segs, nseg * sizeof *ns);                                                            \
      if (segs != segs_local) free(segs);                                                             \
      segs = ns;                                                                                      \
      segcap = nc;                                                                                    \
    }                                                                                                 \
    segs[nseg++] = (struct seg){(uint32_t)(a) + s, (uint32_t)(b) + s, (mm) != invert};                \
  } while (0)
  while (from <= len && (r = tk_pattern_find(pat, sub, len, from, sc->md, &ms, &me)) > 0) {
    if (me == ms) {
      if (ms >= len) break;
      from = ms + char_len(sub, ms);
      continue;
    }
    if (ms > prev) ADDSEG(prev, ms, false);
    ADDSEG(ms, me, true);
    prev = from = me;
    /* fast path for Isolated without invert: emit directly when segs would grow large */
    if (beh == TK_SPLIT_ISOLATED && nseg >= MAXSEG - 2) {
      for (size_t q = 0; q < nseg && st == TN_OK; q++) st = push_piece(out, cap, n, segs[q].s, segs[q].e);
      nseg = 0;
      if (st != TN_OK) goto out;
    }
  }
  if (r < 0) { st = tn_error(TN_ERR_INTERNAL, "%s: pre-tokenizer regex failed to match", tk->name); goto out; }
  if (prev < len) ADDSEG(prev, len, false);
  switch (beh) {
  case TK_SPLIT_REMOVED:
    for (size_t q = 0; q < nseg && st == TN_OK; q++)
      if (!segs[q].m) st = push_piece(out, cap, n, segs[q].s, segs[q].e);
    break;
  case TK_SPLIT_ISOLATED:
    for (size_t q = 0; q < nseg && st == TN_OK; q++) st = push_piece(out, cap, n, segs[q].s, segs[q].e);
    break;
  case TK_SPLIT_MERGED_PREV: {
    bool pm = false;
    size_t base = *n;
    for (size_t q = 0; q < nseg && st == TN_OK; q++) {
      if (segs[q].m && !pm && *n > base) (*out)[*n - 1].e = segs[q].e;
      else st = push_piece(out, cap, n, segs[q].s, segs[q].e);
      pm = segs[q].m;
    }
    break;
  }
  case TK_SPLIT_MERGED_NEXT: {
    /* walk backwards: a match merges into the piece that follows it */
    bool pm = false;
    size_t base = *n;
    for (size_t q = nseg; q-- > 0 && st == TN_OK;) {
      if (segs[q].m && !pm && *n > base) (*out)[*n - 1].s = segs[q].s;
      else st = push_piece(out, cap, n, segs[q].s, segs[q].e);
      pm = segs[q].m;
    }
    for (size_t a = base, b = *n; a + 1 < b; a++, b--) { piece t = (*out)[a]; (*out)[a] = (*out)[b - 1]; (*out)[b - 1] = t; }
    break;
  }
  case TK_SPLIT_CONTIGUOUS: {
    bool pm = false;
    size_t base = *n;
    for (size_t q = 0; q < nseg && st == TN_OK; q++) {
      if (segs[q].m == pm && *n > base) (*out)[*n - 1].e = segs[q].e;
      else st = push_piece(out, cap, n, segs[q].s, segs[q].e);
      pm = segs[q].m;
    }
    break;
  }
  }
out:
  if (segs != segs_local) free(segs);
  return st;
#undef ADDSEG
}

/* Rewrite every piece through fn into a new buffer (used by steps that change text). */
typedef tn_status (*rewrite_fn)(const tk_pre *p, const char *s, size_t n, const uint32_t *ain, bool want, bool first,
                                tk_text *out);

static tn_status rw_prefix_space(const tk_pre *p, const char *s, size_t n, const uint32_t *ain, bool want, bool first,
                                 tk_text *out) {
  if (n && s[0] != ' ') TN_TRY(tx_put(out, " ", 1, want, want ? ain[0] : 0, NULL));
  return tx_put(out, s, n, want, 0, ain);
}

static tn_status rw_metaspace(const tk_pre *p, const char *s, size_t n, const uint32_t *ain, bool want, bool first,
                              tk_text *out) {
  bool starts = n >= (size_t)p->repl_len && !memcmp(s, p->repl, p->repl_len);
  if (n && s[0] == ' ') starts = true; /* becomes the replacement below */
  if (!starts && (p->prepend == TK_PREPEND_ALWAYS || (p->prepend == TK_PREPEND_FIRST && first)))
    TN_TRY(tx_put(out, p->repl, p->repl_len, want, want ? ain[0] : 0, NULL));
  size_t i = 0, q = 0;
  for (; i < n; i++)
    if (s[i] == ' ') {
      TN_TRY(tx_put(out, s + q, i - q, want, 0, want ? ain + q : NULL));
      TN_TRY(tx_put(out, p->repl, p->repl_len, want, want ? ain[i] : 0, NULL));
      q = i + 1;
    }
  return tx_put(out, s + q, n - q, want, 0, want ? ain + q : NULL);
}

static tn_status rewrite_pieces(const tk_pre *p, tk_scratch *sc, tk_text *t, size_t np, bool first_section, bool want,
                                rewrite_fn fn) {
  /* want comes from the caller: t->align may be a stale array from an earlier call that
   * asked for offsets (the scratch texts are reused), shorter than this text */
  tk_text nt = {0};
  tn_status st = tx_reset(&nt, want);
  size_t n2 = 0;
  for (size_t k = 0; k < np && st == TN_OK; k++) {
    piece pc = sc->pieces[k];
    uint32_t o = (uint32_t)nt.b.len;
    st = fn(p, t->b.s + pc.s, pc.e - pc.s, want ? t->align + pc.s : NULL, want, first_section && k == 0, &nt);
    if (st == TN_OK) st = push_piece(&sc->pieces2, &sc->pcap2, &n2, o, (uint32_t)nt.b.len);
  }
  if (st == TN_OK) st = tx_finish(&nt, want, want ? t->align[t->b.len] : 0);
  if (st != TN_OK) {
    tk_buf_free(&nt.b);
    free(nt.align);
    return st;
  }
  /* swap in */
  tk_buf_free(&t->b);
  free(t->align);
  *t = nt;
  if (!want) { free(t->align); t->align = NULL; t->align_cap = 0; }
  piece *tp = sc->pieces; sc->pieces = sc->pieces2; sc->pieces2 = tp;
  size_t tc = sc->pcap; sc->pcap = sc->pcap2; sc->pcap2 = tc;
  return TN_OK;
}

static tn_status split_all(const tn_tokenizer *tk, tk_scratch *sc, tk_text *t, size_t *np, const tk_pattern *pat,
                           tk_split_behavior beh, bool invert) {
  size_t n2 = 0;
  for (size_t k = 0; k < *np; k++)
    TN_TRY(split_piece(tk, sc, t->b.s, sc->pieces[k].s, sc->pieces[k].e, pat, beh, invert, &sc->pieces2, &sc->pcap2,
                       &n2));
  piece *tp = sc->pieces; sc->pieces = sc->pieces2; sc->pieces2 = tp;
  size_t tc = sc->pcap; sc->pcap = sc->pcap2; sc->pcap2 = tc;
  *np = n2;
  return TN_OK;
}

static tn_status split_whitespace(tk_scratch *sc, tk_text *t, size_t *np) {
  size_t n2 = 0;
  for (size_t k = 0; k < *np; k++) {
    uint32_t i = sc->pieces[k].s, e = sc->pieces[k].e, st = i;
    while (i < e) {
      int32_t cp;
      int l = tk_utf8_decode((const unsigned char *)t->b.s + i, &cp);
      if (tk_is_white_space(cp)) {
        TN_TRY(push_piece(&sc->pieces2, &sc->pcap2, &n2, st, i));
        st = i + l;
      }
      i += l;
    }
    TN_TRY(push_piece(&sc->pieces2, &sc->pcap2, &n2, st, e));
  }
  piece *tp = sc->pieces; sc->pieces = sc->pieces2; sc->pieces2 = tp;
  size_t tc = sc->pcap; sc->pcap = sc->pcap2; sc->pcap2 = tc;
  *np = n2;
  return TN_OK;
}

tn_status tk_pretokenize(const tn_tokenizer *tk, tk_scratch *sc, tk_text *t, size_t *npieces, bool first_section,
                         bool want) {
  size_t np = 0;
  TN_TRY(push_piece(&sc->pieces, &sc->pcap, &np, 0, (uint32_t)t->b.len));
  for (int k = 0; k < tk->n_pres && np; k++) {
    const tk_pre *p = &tk->pres[k];
    switch (p->kind) {
    case TK_PRE_SPLIT:
      TN_TRY(split_all(tk, sc, t, &np, &p->pat, p->behavior, p->invert));
      break;
    case TK_PRE_BYTELEVEL:
      if (p->add_prefix_space) TN_TRY(rewrite_pieces(p, sc, t, np, first_section, want, rw_prefix_space));
      if (p->use_regex) TN_TRY(split_all(tk, sc, t, &np, &p->pat, TK_SPLIT_ISOLATED, false));
      break;
    case TK_PRE_METASPACE: {
      TN_TRY(rewrite_pieces(p, sc, t, np, first_section, want, rw_metaspace));
      if (p->split) {
        tk_pattern lit = {.kind = TK_PAT_STRING, .str = (char *)p->repl, .len = p->repl_len};
        TN_TRY(split_all(tk, sc, t, &np, &lit, TK_SPLIT_MERGED_NEXT, false));
      }
      break;
    }
    case TK_PRE_WHITESPACE:
      TN_TRY(split_all(tk, sc, t, &np, &p->pat, TK_SPLIT_REMOVED, true));
      break;
    case TK_PRE_WHITESPACE_SPLIT:
      TN_TRY(split_whitespace(sc, t, &np));
      break;
    case TK_PRE_DIGITS:
      TN_TRY(split_all(tk, sc, t, &np, &p->pat, TK_SPLIT_ISOLATED, false));
      break;
    case TK_PRE_PUNCTUATION:
      TN_TRY(split_all(tk, sc, t, &np, &p->pat, p->behavior, false));
      break;
    }
  }
  *npieces = np;
  return TN_OK;
}
