/* tok_train.c - byte-level BPE training (`tunic train-tokenizer`) and its corpus reader.
 * The semantics are those of tests/ref/bpe_train_ref.py (Hugging Face BpeTrainer's way):
 * GPT-2 pre-tokenization of each text, ids 0..255 the bytes, 256..260 the specials, then one
 * id per new token string in merge order; each round the adjacent pair with the highest count
 * (ties: smallest (left id, right id)) is merged; stop at the vocabulary size or when the
 * best count is below min_frequency; a merge whose string already exists keeps that id.
 *
 * Shapes and cost (W distinct pieces ("words"), S their total bytes, P distinct pairs):
 *   sym   (S,) int32   ids of every word, word w = sym[wstart[w] .. wstart[w] + wlen[w]),
 *                      rewritten in place (shrinks) as merges apply
 *   wcnt  (W,) int64   occurrences of the word in the corpus
 *   pairs (P,)         {count, a, b, list of words that contained it}; hash (a,b) -> index
 *   heap               (count, a, b) entries, a lazy max-heap: an entry is pushed whenever a
 *                      merge changes a pair's count; entries whose count is no longer the
 *                      pair's are dropped when they reach the top
 * Counting once: O(corpus bytes) regex + hashing. Per merge only the words on the merged
 * pair's list are rewritten: O(sum of their lengths) hash updates + O(changed pairs x log)
 * heap pushes; the corpus is never recounted.
 * Not for: writing the tokenizer files (tok_write.c) or encoding (tok_encode.c). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "tokenizer/tokenizer.h"

/* ---- corpus reader ---- */
static tn_status json_texts(const cJSON *v, tn_text_fn fn, void *ctx, const char *path, size_t line) {
  if (cJSON_IsString(v)) {
    const size_t n = strlen(v->valuestring);
    if (!tk_utf8_is_valid(v->valuestring, n))
      return tn_error(TN_ERR_FORMAT, "%s:%zu: a string is not valid UTF-8", path, line);
    return fn(ctx, v->valuestring, n);
  }
  if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
    const cJSON *it;
    cJSON_ArrayForEach(it, v) TN_TRY(json_texts(it, fn, ctx, path, line));
  }
  return TN_OK;
}

static bool blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strchr(" \t\r\n\f\v", s[i])) return false;
  return true;
}

static tn_status file_texts(const char *path, tn_text_fn fn, void *ctx) {
  char *data;
  size_t len;
  TN_TRY(tn_read_file(path, &data, &len));
  const size_t pl = strlen(path);
  const bool jsonl = pl >= 6 && !strcmp(path + pl - 6, ".jsonl");
  tn_status s = TN_OK;
  size_t line = 0;
  for (size_t i = 0; i < len && s == TN_OK;) {
    const char *nl = memchr(data + i, '\n', len - i);
    const size_t end = nl ? (size_t)(nl - data) + 1 : len; /* the '\n' belongs to the line */
    const char *p = data + i;
    const size_t n = end - i;
    line++;
    i = end;
    if (!jsonl) {
      s = tk_utf8_is_valid(p, n) ? fn(ctx, p, n)
                                 : tn_error(TN_ERR_FORMAT, "%s:%zu: the line is not valid UTF-8", path, line);
      continue;
    }
    if (blank(p, n)) continue;
    const long nul = tn_json_nul_offset(p, n);
    if (nul >= 0) {
      s = tn_error(TN_ERR_FORMAT, "%s:%zu: column %ld: a NUL character (\\u0000 or a 0 byte), which tunic's strings "
                   "cannot hold", path, line, nul + 1);
      break;
    }
    const char *stop = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p, n, &stop, false);
    if (!j || !stop || !blank(stop, (size_t)(p + n - stop))) {
      cJSON_Delete(j);
      s = tn_error(TN_ERR_FORMAT, "%s:%zu: malformed JSON line", path, line);
      break;
    }
    s = json_texts(j, fn, ctx, path, line);
    cJSON_Delete(j);
  }
  free(data);
  return s;
}

tn_status tn_text_corpus_each(const char *const *paths, int n_paths, tn_text_fn fn, void *ctx) {
  for (int i = 0; i < n_paths; i++) TN_TRY(file_texts(paths[i], fn, ctx));
  return TN_OK;
}

/* ---- counting the pieces ---- */
typedef struct {
  tk_pattern pat;
  pcre2_match_data *md;
  tk_strmap words;  /* piece bytes -> word index */
  int64_t *wcnt;    /* (W,) */
  size_t n_words, cap_words;
  size_t n_texts, n_bytes, n_pieces;
} bt_counter;

static tn_status count_text(void *ctx, const char *text, size_t len) {
  bt_counter *c = ctx;
  c->n_texts++;
  c->n_bytes += len;
  size_t start = 0, ms, me;
  for (;;) {
    const int r = tk_pattern_find(&c->pat, text, len, start, c->md, &ms, &me);
    if (r < 0) return tn_error(TN_ERR_INTERNAL, "pre-tokenizer regex failed");
    if (!r || me <= ms) break;
    int32_t w = tk_strmap_get(&c->words, text + ms, me - ms);
    if (w < 0) {
      if (c->n_words >= INT32_MAX) return tn_error(TN_ERR_LIMIT, "more than 2^31 distinct pieces");
      TN_TRY(tk_grow((void **)&c->wcnt, &c->cap_words, c->n_words + 1, sizeof *c->wcnt));
      w = (int32_t)c->n_words++;
      c->wcnt[w] = 0;
      TN_TRY(tk_strmap_put(&c->words, text + ms, me - ms, w));
    }
    c->wcnt[w]++;
    c->n_pieces++;
    start = me;
  }
  return TN_OK;
}

/* ---- training state ---- */
typedef struct {
  int64_t count, start; /* start: the count before the current merge round (valid when stamp == round) */
  int32_t a, b;
  uint32_t stamp;
  uint32_t nw, capw;
  uint32_t *w;          /* words that contained the pair (may hold stale entries) */
} bt_pair;

typedef struct { int64_t count; int32_t a, b; } bt_entry;

typedef struct {
  /* words */
  int32_t *sym;        /* (S,) */
  size_t *wstart;      /* (W,) */
  uint32_t *wlen;      /* (W,) */
  int64_t *wcnt;       /* (W,) borrowed from the counter */
  uint32_t *wstamp;    /* (W,) last round that rewrote the word */
  size_t n_words;
  /* pairs */
  tk_pairmap pmap;     /* (a << 32 | b) -> index into pairs */
  bt_pair *pairs;
  size_t n_pairs, cap_pairs;
  uint32_t *touched;   /* pairs whose count changed this round */
  size_t n_touched, cap_touched;
  bt_entry *heap;
  size_t n_heap, cap_heap;
  uint32_t round;
  /* tokens and merges */
  tk_buf lt;           /* learnt tokens' bytes */
  size_t *lt_off;      /* (n_learnt + 1,) */
  size_t n_learnt, cap_lt;
  tk_strmap tok;       /* learnt token bytes -> id */
  int32_t *merges;     /* (n_merges, 2) */
  size_t n_merges, cap_merges;
} bt_state;

static inline bool better(const bt_entry *x, const bt_entry *y) {
  if (x->count != y->count) return x->count > y->count;
  return x->a != y->a ? x->a < y->a : x->b < y->b;
}

static tn_status heap_push(bt_state *st, bt_entry e) {
  TN_TRY(tk_grow((void **)&st->heap, &st->cap_heap, st->n_heap + 1, sizeof *st->heap));
  size_t i = st->n_heap++;
  while (i > 0) {
    const size_t up = (i - 1) / 2;
    if (!better(&e, &st->heap[up])) break;
    st->heap[i] = st->heap[up];
    i = up;
  }
  st->heap[i] = e;
  return TN_OK;
}

static void heap_pop(bt_state *st) {
  const bt_entry e = st->heap[--st->n_heap];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= st->n_heap) break;
    if (c + 1 < st->n_heap && better(&st->heap[c + 1], &st->heap[c])) c++;
    if (!better(&st->heap[c], &e)) break;
    st->heap[i] = st->heap[c];
    i = c;
  }
  if (st->n_heap) st->heap[i] = e;
}

static inline uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static int32_t pair_find(const bt_state *st, int32_t a, int32_t b) {
  int32_t rank, idx;
  return tk_pairmap_get(&st->pmap, pair_key(a, b), &rank, &idx) ? idx : -1;
}

/* Add delta to pair (a, b)'s count (creating the pair), remembering its count before this
 * round; with add_word, put word w on the pair's list. */
static tn_status pair_delta(bt_state *st, int32_t a, int32_t b, int64_t delta, uint32_t w, bool add_word) {
  int32_t p = pair_find(st, a, b);
  if (p < 0) {
    if (st->n_pairs >= INT32_MAX) return tn_error(TN_ERR_LIMIT, "more than 2^31 distinct pairs");
    TN_TRY(tk_grow((void **)&st->pairs, &st->cap_pairs, st->n_pairs + 1, sizeof *st->pairs));
    p = (int32_t)st->n_pairs++;
    st->pairs[p] = (bt_pair){.a = a, .b = b};
    TN_TRY(tk_pairmap_put(&st->pmap, pair_key(a, b), 0, p));
  }
  bt_pair *q = &st->pairs[p];
  if (q->stamp != st->round) {
    q->stamp = st->round;
    q->start = q->count;
    TN_TRY(tk_grow((void **)&st->touched, &st->cap_touched, st->n_touched + 1, sizeof *st->touched));
    st->touched[st->n_touched++] = (uint32_t)p;
  }
  q->count += delta;
  if (add_word && (q->nw == 0 || q->w[q->nw - 1] != w)) {
    if (q->nw == q->capw) {
      const uint32_t cap = q->capw ? q->capw * 2 : 4;
      uint32_t *nwl = realloc(q->w, cap * sizeof *nwl);
      if (!nwl) return tn_error(TN_ERR_NOMEM, "out of memory (BPE pair lists)");
      q->w = nwl;
      q->capw = cap;
    }
    q->w[q->nw++] = w;
  }
  return TN_OK;
}

/* After a round: every pair whose count changed and is still positive gets a heap entry. */
static tn_status flush_touched(bt_state *st) {
  for (size_t i = 0; i < st->n_touched; i++) {
    const bt_pair *q = &st->pairs[st->touched[i]];
    if (q->count != q->start && q->count > 0) TN_TRY(heap_push(st, (bt_entry){q->count, q->a, q->b}));
  }
  st->n_touched = 0;
  return TN_OK;
}

/* Bytes of token id (a byte or a learnt token). */
static const char *tok_bytes(const bt_state *st, int32_t id, size_t *n, char *one) {
  if (id < 256) { *one = (char)id; *n = 1; return one; }
  const size_t i = (size_t)(id - TN_BPE_FIRST_LEARNT);
  *n = st->lt_off[i + 1] - st->lt_off[i];
  return st->lt.s + st->lt_off[i];
}

/* The id of the merged string a+b: the existing one, or a new id (nvocab++). */
static tn_status merged_id(bt_state *st, int32_t a, int32_t b, int32_t *nvocab, int32_t *out) {
  size_t na, nb;
  char ca, cb;
  tok_bytes(st, a, &na, &ca);
  tok_bytes(st, b, &nb, &cb);
  TN_TRY(tk_buf_reserve(&st->lt, na + nb)); /* the candidate goes at the end of the arena */
  const size_t at = st->lt.len;
  memcpy(st->lt.s + at, tok_bytes(st, a, &na, &ca), na);
  memcpy(st->lt.s + at + na, tok_bytes(st, b, &nb, &cb), nb);
  st->lt.len += na + nb;
  const int32_t have = tk_strmap_get(&st->tok, st->lt.s + at, na + nb);
  if (have >= 0) {
    st->lt.len = at;
    *out = have;
    return TN_OK;
  }
  TN_TRY(tk_grow((void **)&st->lt_off, &st->cap_lt, st->n_learnt + 2, sizeof *st->lt_off));
  st->lt_off[++st->n_learnt] = st->lt.len;
  *out = (*nvocab)++;
  return tk_strmap_put(&st->tok, st->lt.s + at, na + nb, *out);
}

/* Rewrite word w for the merge (a, b) -> nid, moving its pair counts. */
static tn_status merge_word(bt_state *st, uint32_t w, int32_t a, int32_t b, int32_t nid) {
  int32_t *s = st->sym + st->wstart[w];
  const uint32_t n = st->wlen[w];
  const int64_t c = st->wcnt[w];
  uint32_t i = 0;
  while (i + 1 < n && !(s[i] == a && s[i + 1] == b)) i++;
  if (i + 1 >= n) return TN_OK; /* a stale list entry: the word no longer has the pair */
  for (i = 0; i + 1 < n; i++) TN_TRY(pair_delta(st, s[i], s[i + 1], -c, w, false));
  uint32_t j = 0;
  for (i = 0; i < n;) { /* left to right, non-overlapping, as the reference */
    if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[j++] = nid; i += 2; }
    else s[j++] = s[i++];
  }
  st->wlen[w] = j;
  for (i = 0; i + 1 < j; i++) TN_TRY(pair_delta(st, s[i], s[i + 1], c, w, s[i] == nid || s[i + 1] == nid));
  return TN_OK;
}

static void state_free(bt_state *st) {
  free(st->sym);
  free(st->wstart);
  free(st->wlen);
  free(st->wstamp);
  tk_pairmap_free(&st->pmap);
  for (size_t i = 0; i < st->n_pairs; i++) free(st->pairs[i].w);
  free(st->pairs);
  free(st->touched);
  free(st->heap);
  tk_buf_free(&st->lt);
  free(st->lt_off);
  tk_strmap_free(&st->tok);
  free(st->merges);
}

/* Words from the counter's map: sym/wstart/wlen, then every pair counted once, each word on
 * the list of every pair it has. */
static tn_status state_init(bt_state *st, bt_counter *c) {
  const tk_strmap *m = &c->words;
  const size_t S = m->keys.len, W = c->n_words;
  st->n_words = W;
  st->wcnt = c->wcnt;
  st->sym = malloc((S ? S : 1) * sizeof *st->sym);
  st->wstart = malloc((W ? W : 1) * sizeof *st->wstart);
  st->wlen = malloc((W ? W : 1) * sizeof *st->wlen);
  st->wstamp = calloc(W ? W : 1, sizeof *st->wstamp);
  if (!st->sym || !st->wstart || !st->wlen || !st->wstamp) return tn_error(TN_ERR_NOMEM, "out of memory (BPE words)");
  for (size_t i = 0; i < S; i++) st->sym[i] = (unsigned char)m->keys.s[i];
  for (size_t i = 0; i <= m->mask; i++) {
    const tk_sm_slot *sl = &m->slots[i];
    if (sl->off == UINT32_MAX) continue;
    st->wstart[sl->val] = sl->off;
    st->wlen[sl->val] = sl->len;
  }
  TN_TRY(tk_pairmap_init(&st->pmap, 1 << 16));
  TN_TRY(tk_strmap_init(&st->tok, 1024));
  TN_TRY(tk_grow((void **)&st->lt_off, &st->cap_lt, 1, sizeof *st->lt_off));
  st->lt_off[0] = 0;
  st->round = 1;
  for (uint32_t w = 0; w < W; w++) {
    const int32_t *s = st->sym + st->wstart[w];
    for (uint32_t i = 0; i + 1 < st->wlen[w]; i++) TN_TRY(pair_delta(st, s[i], s[i + 1], st->wcnt[w], w, true));
  }
  st->n_touched = 0;
  for (size_t p = 0; p < st->n_pairs; p++)
    TN_TRY(heap_push(st, (bt_entry){st->pairs[p].count, st->pairs[p].a, st->pairs[p].b}));
  return TN_OK;
}

static tn_status train_loop(bt_state *st, int vocab_size, int min_frequency, int32_t *nvocab) {
  while (*nvocab < vocab_size) {
    int32_t p = -1;
    while (st->n_heap) { /* the best entry that is still current */
      const bt_entry top = st->heap[0];
      p = pair_find(st, top.a, top.b);
      if (st->pairs[p].count == top.count) break;
      heap_pop(st);
      p = -1;
    }
    if (p < 0) break;
    const int32_t a = st->pairs[p].a, b = st->pairs[p].b;
    if (st->pairs[p].count < min_frequency) break;
    heap_pop(st);
    int32_t nid;
    TN_TRY(merged_id(st, a, b, nvocab, &nid));
    TN_TRY(tk_grow((void **)&st->merges, &st->cap_merges, 2 * (st->n_merges + 1), sizeof *st->merges));
    st->merges[2 * st->n_merges] = a;
    st->merges[2 * st->n_merges + 1] = b;
    st->n_merges++;
    st->round++;
    uint32_t *wl = st->pairs[p].w; /* detached: after the round no word has the pair */
    const uint32_t nw = st->pairs[p].nw;
    st->pairs[p].w = NULL;
    st->pairs[p].nw = st->pairs[p].capw = 0;
    tn_status s = TN_OK;
    for (uint32_t k = 0; k < nw && s == TN_OK; k++) {
      if (st->wstamp[wl[k]] == st->round) continue; /* listed twice */
      st->wstamp[wl[k]] = st->round;
      s = merge_word(st, wl[k], a, b, nid);
    }
    free(wl);
    TN_TRY(s);
    TN_TRY(flush_touched(st));
  }
  return TN_OK;
}

tn_status tn_bpe_train(const tn_bpe_train_opts *o, tn_bpe_train_stats *stats) {
  if (o->vocab_size < TN_BPE_FIRST_LEARNT)
    return tn_error(TN_ERR_ARG, "vocab size %d: must be at least %d (256 bytes + %d special tokens)", o->vocab_size,
                    TN_BPE_FIRST_LEARNT, TN_BPE_N_SPECIAL);
  if (o->n_data <= 0) return tn_error(TN_ERR_ARG, "no training data file given");
  bt_counter c = {0};
  bt_state st = {0};
  tn_status s = tk_compile_pattern(&c.pat, tk_gpt2_pattern, true, "ByteLevel regex");
  if (s == TN_OK && !(c.md = pcre2_match_data_create(32, NULL))) s = tn_error(TN_ERR_NOMEM, "out of memory");
  if (s == TN_OK) s = tk_strmap_init(&c.words, 1 << 16);
  if (s == TN_OK) s = tn_text_corpus_each(o->data, o->n_data, count_text, &c);
  if (s == TN_OK && c.n_pieces == 0) {
    char names[512] = "";
    for (int i = 0; i < o->n_data; i++)
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", o->data[i]);
    s = tn_error(TN_ERR_FORMAT, "%s: no training text (empty corpus)", names);
  }
  int32_t nvocab = TN_BPE_FIRST_LEARNT;
  if (s == TN_OK) s = state_init(&st, &c);
  if (s == TN_OK) s = train_loop(&st, o->vocab_size, o->min_frequency, &nvocab);
  if (s == TN_OK) {
    const tn_bpe_model m = {.bytes = st.lt.s, .off = st.lt_off, .n_learnt = (int32_t)st.n_learnt,
                            .merges = st.merges, .n_merges = (int32_t)st.n_merges};
    s = tn_bpe_write(o->out_dir, &m);
  }
  if (s == TN_OK && stats)
    *stats = (tn_bpe_train_stats){.n_texts = c.n_texts, .n_bytes = c.n_bytes, .n_pieces = c.n_pieces,
                                  .n_words = c.n_words, .vocab_size = nvocab, .n_merges = (int)st.n_merges};
  state_free(&st);
  tk_pattern_free(&c.pat);
  if (c.md) pcre2_match_data_free(c.md);
  tk_strmap_free(&c.words);
  free(c.wcnt);
  return s;
}
