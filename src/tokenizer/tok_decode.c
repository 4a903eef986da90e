/* tok_decode.c - token ids -> text: the decoder chain of tokenizer.json (ByteLevel,
 * ByteFallback, Replace, Fuse, Strip, Metaspace) over the list of token strings, repair
 * of invalid UTF-8 (U+FFFD per maximal subpart, like TextDecoder), the optional
 * clean_up_tokenization_spaces pass, and the streaming decoder that emits only
 * complete characters.
 * Not for: encoding. */
#include "tokenizer/tokenizer.h"
#include <stdlib.h>
#include <string.h>

/* A list of byte strings: entry k is b.s[off[k] .. off[k+1]), flag[k] = came from an added token. */
typedef struct {
  tk_buf b;
  uint32_t *off; size_t offcap;
  uint8_t *flag; size_t flagcap;
  size_t n;
} tlist;

static tn_status tl_begin(tlist *l) {
  l->b.len = 0;
  l->n = 0;
  TN_TRY(tk_grow((void **)&l->off, &l->offcap, 1, sizeof *l->off));
  l->off[0] = 0;
  return TN_OK;
}
static tn_status tl_append_bytes(tlist *l, const char *p, size_t n) { return tk_buf_put(&l->b, p, n); }
static tn_status tl_end_entry(tlist *l, uint8_t flag) {
  TN_TRY(tk_grow((void **)&l->off, &l->offcap, l->n + 2, sizeof *l->off));
  TN_TRY(tk_grow((void **)&l->flag, &l->flagcap, l->n + 1, 1));
  l->flag[l->n] = flag;
  l->off[++l->n] = (uint32_t)l->b.len;
  return TN_OK;
}
static void tl_free(tlist *l) {
  tk_buf_free(&l->b);
  free(l->off);
  free(l->flag);
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* Apply one decoder to every entry of `in`, writing `out`. */
static tn_status dec_step(const tn_tokenizer *tk, const tk_dec *d, tlist *in, tlist *out, pcre2_match_data *md,
                          bool first_is_start) {
  TN_TRY(tl_begin(out));
  if (d->kind == TK_DEC_FUSE) {
    TN_TRY(tl_append_bytes(out, in->b.s, in->b.len));
    if (in->n) TN_TRY(tl_end_entry(out, 0));
    return TN_OK;
  }
  for (size_t k = 0; k < in->n; k++) {
    const char *s = in->b.s + in->off[k];
    size_t n = in->off[k + 1] - in->off[k];
    uint8_t fl = in->flag[k];
    switch (d->kind) {
    case TK_DEC_BYTELEVEL:
      if (fl) { TN_TRY(tl_append_bytes(out, s, n)); break; }
      for (size_t i = 0; i < n;) {
        int32_t cp;
        int l = tk_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!l) { TN_TRY(tl_append_bytes(out, s + i, 1)); i++; continue; }
        tk_utf8_decode((const unsigned char *)s + i, &cp);
        int b = tk_cp_to_byte(cp);
        if (b >= 0) { char c = (char)b; TN_TRY(tl_append_bytes(out, &c, 1)); }
        else TN_TRY(tl_append_bytes(out, s + i, l));
        i += l;
      }
      break;
    case TK_DEC_BYTEFALLBACK:
      if (n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>' && hexval(s[3]) >= 0 &&
          hexval(s[4]) >= 0) {
        char c = (char)(hexval(s[3]) * 16 + hexval(s[4]));
        TN_TRY(tl_append_bytes(out, &c, 1));
      } else {
        TN_TRY(tl_append_bytes(out, s, n));
      }
      break;
    case TK_DEC_REPLACE: {
      size_t pos = 0, from = 0, ms, me;
      while (tk_pattern_find(&d->pat, s, n, from, md, &ms, &me) > 0) {
        if (me == ms) { if (ms >= n) break; from = ms + 1; continue; }
        TN_TRY(tl_append_bytes(out, s + pos, ms - pos));
        TN_TRY(tl_append_bytes(out, d->content, d->content_len));
        pos = from = me;
      }
      TN_TRY(tl_append_bytes(out, s + pos, n - pos));
      break;
    }
    case TK_DEC_STRIP: {
      char enc[4];
      int cl = tk_utf8_encode(d->strip_cp, enc);
      size_t b = 0, e = n;
      for (int i = 0; i < d->start && b + cl <= e && !memcmp(s + b, enc, cl); i++) b += cl;
      for (int i = 0; i < d->stop && e >= b + cl && !memcmp(s + e - cl, enc, cl); i++) e -= cl;
      TN_TRY(tl_append_bytes(out, s + b, e - b));
      break;
    }
    case TK_DEC_METASPACE: {
      size_t o = out->b.len, pos = 0;
      for (size_t i = 0; i + d->repl_len <= n;) {
        if (!memcmp(s + i, d->repl, d->repl_len)) {
          TN_TRY(tl_append_bytes(out, s + pos, i - pos));
          TN_TRY(tl_append_bytes(out, " ", 1));
          i += d->repl_len;
          pos = i;
        } else {
          i++;
        }
      }
      TN_TRY(tl_append_bytes(out, s + pos, n - pos));
      if (k == 0 && first_is_start && d->strip_first && out->b.len > o && out->b.s[o] == ' ') {
        memmove(out->b.s + o, out->b.s + o + 1, out->b.len - o - 1);
        out->b.len--;
      }
      break;
    }
    case TK_DEC_FUSE:
      break;
    }
    TN_TRY(tl_end_entry(out, fl));
  }
  return TN_OK;
}

/* ids -> raw decoded bytes (not yet UTF-8-repaired). first_is_start: ids[0] opens the text. */
static tn_status decode_bytes(const tn_tokenizer *tk, const int32_t *ids, size_t n, bool skip_special,
                              bool first_is_start, tlist *a, tlist *b, tk_buf *out) {
  TN_TRY(tl_begin(a));
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    if (id < 0) return tn_error(TN_ERR_ARG, "decode: negative token id %d", id);
    /* ids the tokenizer has no token for (a model's padded vocabulary rows) are dropped,
     * as Hugging Face's decoder does */
    if (id >= tk->n_vocab || !tk->tok_str[id]) continue;
    if (skip_special && (tk->tok_flags[id] & TK_F_SPECIAL)) continue;
    TN_TRY(tl_append_bytes(a, tk->tok_str[id], tk->tok_len[id]));
    TN_TRY(tl_end_entry(a, (tk->tok_flags[id] & TK_F_ADDED) ? 1 : 0));
  }
  pcre2_match_data *md = NULL;
  tn_status st = TN_OK;
  for (int k = 0; k < tk->n_decs && st == TN_OK; k++) {
    if (tk->decs[k].kind == TK_DEC_REPLACE && !md && !(md = pcre2_match_data_create(32, NULL)))
      st = tn_error(TN_ERR_NOMEM, "out of memory");
    if (st == TN_OK) st = dec_step(tk, &tk->decs[k], a, b, md, first_is_start);
    tlist t = *a; *a = *b; *b = t;
  }
  if (md) pcre2_match_data_free(md);
  TN_TRY(st);
  if (!tk->n_decs) { /* no decoder: tokens joined (the reference joins with spaces; Rust too) */
    for (size_t k = 0; k < a->n; k++) {
      if (k) TN_TRY(tk_buf_put(out, " ", 1));
      TN_TRY(tk_buf_put(out, a->b.s + a->off[k], a->off[k + 1] - a->off[k]));
    }
    return TN_OK;
  }
  return tk_buf_put(out, a->b.s, a->b.len);
}

/* transformers' clean_up_tokenization, applied in the same order. */
void tk_clean_up_spaces(tk_buf *b) {
  static const char *pat[][2] = {{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                                 {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (size_t p = 0; p < sizeof pat / sizeof pat[0]; p++) {
    size_t pl = strlen(pat[p][0]), rl = strlen(pat[p][1]);
    size_t r = 0, w = 0;
    while (r < b->len) {
      if (r + pl <= b->len && !memcmp(b->s + r, pat[p][0], pl)) {
        memmove(b->s + w, pat[p][1], rl);
        w += rl;
        r += pl;
      } else {
        b->s[w++] = b->s[r++];
      }
    }
    b->len = w;
    if (b->s) b->s[w] = 0;
  }
}

tn_status tk_decode_raw(const tn_tokenizer *tk, const int32_t *ids, size_t n, bool skip_special, tk_buf *out) {
  tlist a = {0}, b = {0};
  tk_buf raw = {0};
  tn_status st = decode_bytes(tk, ids, n, skip_special, true, &a, &b, &raw);
  if (st == TN_OK) st = tk_utf8_sanitize(raw.s ? raw.s : "", raw.len, out, NULL, NULL);
  tl_free(&a);
  tl_free(&b);
  tk_buf_free(&raw);
  return st;
}

tn_status tn_tokenizer_decode(const tn_tokenizer *tk, const int32_t *ids, size_t n, bool skip_special, char **text,
                              size_t *len) {
  tk_buf out = {0};
  tn_status st = tk_buf_reserve(&out, 16);
  if (st == TN_OK) st = tk_decode_raw(tk, ids, n, skip_special, &out);
  if (st != TN_OK) {
    tk_buf_free(&out);
    return st;
  }
  out.s[out.len] = 0;
  if (tk->clean_up_spaces) tk_clean_up_spaces(&out);
  *text = out.s;
  if (len) *len = out.len;
  return TN_OK;
}

/* ---- streaming ---- */
struct tn_detok_stream {
  const tn_tokenizer *tk;
  bool skip_special, started;
  tlist a, b;
  tk_buf pending, raw, out;
};

tn_status tn_detok_stream_new(const tn_tokenizer *tk, bool skip_special, tn_detok_stream **out) {
  tn_detok_stream *s = calloc(1, sizeof *s);
  if (!s) return tn_error(TN_ERR_NOMEM, "out of memory");
  s->tk = tk;
  s->skip_special = skip_special;
  *out = s;
  return TN_OK;
}

/* Number of trailing bytes of p[0..n) that form an incomplete (but so far valid) character. */
static size_t incomplete_tail(const unsigned char *p, size_t n) {
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    unsigned c = p[n - back];
    if ((c & 0xC0) == 0x80) continue; /* continuation: keep looking for the lead */
    int need = (c >= 0xC2 && c < 0xE0) ? 2 : (c >= 0xE0 && c < 0xF0) ? 3 : (c >= 0xF0 && c < 0xF5) ? 4 : 0;
    if (need <= (int)back) return 0;
    if (back >= 2) { /* second-byte range restrictions */
      unsigned c1 = p[n - back + 1];
      unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
      if (c1 < lo || c1 > hi) return 0;
    }
    return back;
  }
  return 0;
}

static tn_status stream_emit(tn_detok_stream *s, bool final, const char **text, size_t *len) {
  size_t keep = final ? 0 : incomplete_tail((const unsigned char *)s->pending.s, s->pending.len);
  size_t emit = s->pending.len - keep;
  s->out.len = 0;
  TN_TRY(tk_buf_reserve(&s->out, emit + 8));
  TN_TRY(tk_utf8_sanitize(s->pending.s ? s->pending.s : "", emit, &s->out, NULL, NULL));
  memmove(s->pending.s, s->pending.s + emit, keep);
  s->pending.len = keep;
  s->out.s[s->out.len] = 0;
  *text = s->out.s;
  if (len) *len = s->out.len;
  return TN_OK;
}

tn_status tn_detok_stream_push(tn_detok_stream *s, int32_t id, const char **text, size_t *len) {
  const tn_tokenizer *tk = s->tk;
  if (id < 0) return tn_error(TN_ERR_ARG, "decode: negative token id %d", id);
  if (id >= tk->n_vocab || !tk->tok_str[id] || (s->skip_special && (tk->tok_flags[id] & TK_F_SPECIAL))) {
    TN_TRY(tk_buf_reserve(&s->out, 1));
    s->out.len = 0;
    s->out.s[0] = 0;
    *text = s->out.s;
    if (len) *len = 0;
    return TN_OK;
  }
  s->raw.len = 0;
  TN_TRY(decode_bytes(tk, &id, 1, false, !s->started, &s->a, &s->b, &s->raw));
  s->started = true;
  TN_TRY(tk_buf_put(&s->pending, s->raw.s ? s->raw.s : "", s->raw.len));
  return stream_emit(s, false, text, len);
}

tn_status tn_detok_stream_flush(tn_detok_stream *s, const char **text, size_t *len) {
  TN_TRY(tk_buf_reserve(&s->pending, 1));
  return stream_emit(s, true, text, len);
}

void tn_detok_stream_reset(tn_detok_stream *s) {
  s->started = false;
  s->pending.len = 0;
}

void tn_detok_stream_free(tn_detok_stream *s) {
  if (!s) return;
  tl_free(&s->a);
  tl_free(&s->b);
  tk_buf_free(&s->pending);
  tk_buf_free(&s->raw);
  tk_buf_free(&s->out);
  free(s);
}
