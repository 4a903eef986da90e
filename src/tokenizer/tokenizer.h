/* tokenizer.h - internal structures of the Hugging Face tokenizer.json reader
 * (BPE model, normalizers, pre-tokenizers, post-processors, decoders, added
 * tokens) and the chat-template renderers. The public API is
 * include/tunic/tokenizer.h; this header is shared only by the files of src/tokenizer/.
 * Not for: Unigram / WordPiece models (refused at load with a clear error). */
#ifndef TN_TOKENIZER_INTERNAL_H
#define TN_TOKENIZER_INTERNAL_H
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "base/base.h"
#include "tunic/tokenizer.h"

/* ---- small growable buffers ---- */
typedef struct { char *s; size_t len, cap; } tk_buf;
tn_status tk_buf_reserve(tk_buf *b, size_t extra);
tn_status tk_buf_put(tk_buf *b, const void *p, size_t n);
static inline tn_status tk_buf_putc(tk_buf *b, char c) { return tk_buf_put(b, &c, 1); }
void tk_buf_free(tk_buf *b);
tn_status tk_grow(void **p, size_t *cap, size_t need, size_t elem);

/* ---- hash maps (open addressing, power-of-two sized, never shrink) ---- */
/* bytes -> int32 value; keys are copied into an internal arena. A slot holds the key's hash,
 * place and value, so a successful lookup touches two cache lines (slot, key bytes). */
typedef struct { uint32_t hash, off, len; int32_t val; } tk_sm_slot; /* off == UINT32_MAX: empty */
typedef struct {
  tk_sm_slot *slots;
  size_t n, mask;
  tk_buf keys;
} tk_strmap;
tn_status tk_strmap_init(tk_strmap *m, size_t expected);
/* Insert or overwrite. */
tn_status tk_strmap_put(tk_strmap *m, const char *k, size_t len, int32_t val);
/* Returns value or -1. */
int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t len);
void tk_strmap_free(tk_strmap *m);
uint64_t tk_hash(const void *p, size_t n);

/* (uint64 key) -> (int32 rank, int32 id), used for BPE merges keyed by (left id, right id).
 * One 16-byte slot per entry, so a lookup is one cache line. */
typedef struct { uint64_t key; int32_t rank, id; } tk_pm_slot; /* key = real key + 1, 0 = empty */
typedef struct {
  tk_pm_slot *slots;
  size_t n, mask;
} tk_pairmap;
tn_status tk_pairmap_init(tk_pairmap *m, size_t expected);
tn_status tk_pairmap_put(tk_pairmap *m, uint64_t key, int32_t rank, int32_t id); /* keeps first */
static inline size_t tk_pair_slot(uint64_t key, size_t mask) {
  uint64_t x = key + 1; /* splitmix64 finalizer */
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return (size_t)x & mask;
}
static inline int tk_pairmap_get(const tk_pairmap *m, uint64_t key, int32_t *rank, int32_t *id) {
  size_t i = tk_pair_slot(key, m->mask);
  for (;;) {
    const tk_pm_slot *s = &m->slots[i];
    if (s->key == key + 1) { *rank = s->rank; *id = s->id; return 1; }
    if (s->key == 0) return 0;
    i = (i + 1) & m->mask;
  }
}
void tk_pairmap_free(tk_pairmap *m);
/* Large zeroed table, on transparent huge pages when possible (fewer TLB misses and faults). */
void *tk_big_calloc(size_t n, size_t elem);

/* ---- UTF-8 helpers ---- */
/* Length of the valid UTF-8 sequence at p (1..4), or 0 if p starts an invalid one. */
int tk_utf8_valid_len(const unsigned char *p, size_t n);
/* Decode one code point (assumes valid UTF-8); returns its byte length. */
int tk_utf8_decode(const unsigned char *p, int32_t *cp);
int tk_utf8_encode(int32_t cp, char *out);
/* Append src to out replacing each maximal invalid subpart with U+FFFD (WHATWG / TextDecoder).
 * If align != NULL, *align (grown) receives, for each output byte, the source offset. */
tn_status tk_utf8_sanitize(const char *src, size_t n, tk_buf *out, uint32_t **align, size_t *align_cap);
bool tk_utf8_is_valid(const char *s, size_t n);
/* A malloc'd NUL-terminated copy of S with every ill-formed UTF-8 subpart replaced by U+FFFD
 * (as tk_utf8_sanitize), for text written into JSON files; NULL when out of memory. */
char *tn_utf8_valid_dup(const char *s);
/* Unicode White_Space property (what Oniguruma's and the reference's \s match). */
bool tk_is_white_space(int32_t cp);
/* Python str.strip()/isspace() whitespace (White_Space plus U+001C..U+001F). */
bool tk_is_py_space(int32_t cp);

/* GPT-2 byte <-> unicode map used by the ByteLevel components. */
extern int32_t tk_byte_to_cp[256];
int tk_cp_to_byte(int32_t cp); /* -1 if cp is not in the map */
void tk_bytelevel_init(void);

/* ---- text under transformation, with alignment back to the input ---- */
/* align[i] = input byte offset of normalized byte i; align[len] = input length.
 * align is NULL when offsets are not requested. */
typedef struct {
  tk_buf b;
  uint32_t *align;
  size_t align_cap;
} tk_text;

/* ---- pipeline components ---- */
typedef enum { TK_PAT_STRING, TK_PAT_REGEX } tk_pat_kind;
typedef struct {
  tk_pat_kind kind;
  char *str; size_t len;       /* literal (TK_PAT_STRING) */
  pcre2_code *re;              /* compiled (TK_PAT_REGEX), JIT when available */
} tk_pattern;
/* Finds the next match at or after `start`; returns 0 if none. */
int tk_pattern_find(const tk_pattern *p, const char *s, size_t n, size_t start, pcre2_match_data *md,
                    size_t *ms, size_t *me);

typedef enum {
  TK_NORM_NFC, TK_NORM_NFD, TK_NORM_NFKC, TK_NORM_NFKD, TK_NORM_REPLACE, TK_NORM_PREPEND,
  TK_NORM_LOWERCASE, TK_NORM_STRIP, TK_NORM_STRIP_ACCENTS
} tk_norm_kind;
typedef struct {
  tk_norm_kind kind;
  tk_pattern pat;              /* Replace */
  char *content; size_t content_len; /* Replace content, Prepend text */
  bool left, right;            /* Strip */
} tk_norm;

typedef enum { TK_SPLIT_REMOVED, TK_SPLIT_ISOLATED, TK_SPLIT_MERGED_PREV, TK_SPLIT_MERGED_NEXT, TK_SPLIT_CONTIGUOUS } tk_split_behavior;
typedef enum {
  TK_PRE_SPLIT, TK_PRE_BYTELEVEL, TK_PRE_METASPACE, TK_PRE_WHITESPACE, TK_PRE_WHITESPACE_SPLIT,
  TK_PRE_DIGITS, TK_PRE_PUNCTUATION
} tk_pre_kind;
typedef enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER } tk_prepend_scheme;
typedef struct {
  tk_pre_kind kind;
  tk_pattern pat;              /* Split; ByteLevel with use_regex; Whitespace */
  tk_split_behavior behavior;
  bool invert;
  bool add_prefix_space;       /* ByteLevel */
  bool use_regex;              /* ByteLevel */
  char repl[8]; int repl_len;  /* Metaspace replacement (UTF-8) */
  tk_prepend_scheme prepend;   /* Metaspace */
  bool split;                  /* Metaspace */
  bool individual_digits;      /* Digits */
} tk_pre;

typedef enum { TK_DEC_BYTELEVEL, TK_DEC_BYTEFALLBACK, TK_DEC_REPLACE, TK_DEC_FUSE, TK_DEC_STRIP, TK_DEC_METASPACE } tk_dec_kind;
typedef struct {
  tk_dec_kind kind;
  tk_pattern pat; char *content; size_t content_len; /* Replace */
  int32_t strip_cp; int start, stop;                 /* Strip */
  char repl[8]; int repl_len; bool strip_first;      /* Metaspace */
} tk_dec;

typedef struct {
  char *content; size_t len;
  int32_t id;
  bool special, lstrip, rstrip, single_word, normalized;
} tk_added;

/* Byte trie over added-token contents for leftmost-longest matching. */
typedef struct {
  tk_pairmap edges;            /* (node << 8 | byte) -> child node (in .rank) */
  int32_t *term;               /* node -> added index or -1 */
  size_t nnodes, cap;
  uint8_t first[32];           /* bitmap of first bytes */
} tk_trie;

struct tn_tokenizer {
  /* vocabulary: id -> surface string as written in tokenizer.json (model + added tokens) */
  int32_t n_vocab;             /* max id + 1 */
  char **tok_str; uint32_t *tok_len;
  uint8_t *tok_flags;          /* TK_F_* per id */
  tk_buf strpool;              /* holds tok_str contents */
  tk_strmap str2id;            /* surface string -> id (model vocab, then added tokens) */

  /* BPE model */
  bool byte_level;             /* ByteLevel pre-tokenizer present: model works on raw bytes */
  bool byte_fallback, ignore_merges, fuse_unk;
  int32_t unk_id;
  tk_strmap piece2id;          /* model pieces in the form BPE sees them (raw bytes when byte_level) */
  int32_t byte_id[256];        /* byte_level: id of each single byte; byte_fallback: id of <0xXX> */
  int32_t *char_id;            /* non byte_level: code point (< 0x10000) -> id, -2 = not cached yet is avoided: -1 = OOV */
  tk_pairmap merges;           /* (left id, right id) -> (rank, merged id) */
  /* BPE never merges across a U+2581 that follows a character outside meta_keep (checked on
   * the vocabulary at load), so long SentencePiece-style words are cut there: same tokens,
   * short cacheable pieces. */
  bool meta_split; int n_meta_keep; int32_t meta_keep[32];
  char *cont_prefix, *eow_suffix; /* continuing_subword_prefix / end_of_word_suffix (unsupported if set) */

  /* added tokens */
  tk_added *added; int n_added;
  tk_trie trie_raw, trie_norm; /* not-normalized / normalized contents */

  /* pipeline */
  tk_norm *norms; int n_norms;
  tk_pre *pres; int n_pres;
  tk_dec *decs; int n_decs;
  int32_t *post_pre, *post_post; int n_post_pre, n_post_post; /* ids added around the sequence */

  /* tokenizer_config.json */
  int32_t bos_id, eos_id, pad_id;
  char *bos_str, *eos_str;
  bool clean_up_spaces;
  char *chat_template;         /* default template text, NULL if none (chat_template.jinja wins) */
  char *chat_template_tool;    /* the template named "tool_use" in a list of named templates, or NULL */
  char *chat_template_src;     /* the file the templates came from (errors name it), or NULL */
  char *name;                  /* path it was loaded from */
};
enum { TK_F_ADDED = 1, TK_F_SPECIAL = 2, TK_F_BYTE = 4 /* <0xXX> */ };

/* Per-call scratch, owned by a tn_encoding (so repeated calls do not allocate). */
typedef struct tk_scratch {
  tk_text t0, t1, t2;          /* sanitized input, normalized section, pre-tokenized pieces buffer */
  struct tk_piece { uint32_t s, e; } *pieces, *pieces2; size_t pcap, pcap2;
  uint32_t *sections; size_t scap; /* (start, end, added index) triples */
  /* BPE symbol arrays */
  int32_t *sym_id; uint32_t *sym_s, *sym_e; int32_t *sym_prev, *sym_next; size_t symcap;
  struct tk_heap_ent { int32_t rank, pos, lid, rid, mid; } *heap; size_t heapcap;
  pcre2_match_data *md;
  /* word cache: short pre-tokenized pieces -> their tokens (direct-mapped, per encoding) */
  struct tk_wcache { uint64_t h; uint8_t wlen, nids, rs[8], re[8]; char w[32]; int32_t ids[8]; } *cache;
} tk_scratch;
#define TK_CACHE_N 4096

/* Fast reader of model.vocab / model.merges (tok_json.c). */
typedef struct { const char *p, *e; bool first; } tk_jcur;
/* span = {vocab start, end, merges start, end} byte offsets (0,0 when absent); false if there
 * is no "model" object or the text is not well-formed. */
bool tk_json_find_model_fields(const char *s, size_t n, size_t span[4]);
bool tk_json_open(tk_jcur *c, const char *s, size_t n, char open);
int tk_json_next_vocab(tk_jcur *c, tk_buf *key, long *id); /* 1 entry, 0 end, -1 syntax error */
/* 1 entry (a, and b when *pair_form), 0 end, -1 syntax error, -2 an entry of the wrong shape */
int tk_json_next_merge(tk_jcur *c, tk_buf *a, tk_buf *b, bool *pair_form);

/* Load steps (tok_load.c). */
tn_status tk_compile_pattern(tk_pattern *p, const char *regex, bool is_regex, const char *field);
void tk_pattern_free(tk_pattern *p);
/* The GPT-2 pre-tokenization regex (ByteLevel with use_regex), defined in tok_load.c. */
extern const char tk_gpt2_pattern[];

/* Pipeline steps (tok_pipeline.c). */
tn_status tk_normalize(const tn_tokenizer *tk, tk_scratch *sc, const char *s, size_t n, const uint32_t *align_in,
                       tk_text *out);
/* Splits text into pieces (stored in sc->pieces, offsets into out->b). */
/* want: keep the byte alignment (t->align valid for this text); false ignores t->align */
tn_status tk_pretokenize(const tn_tokenizer *tk, tk_scratch *sc, tk_text *t, size_t *npieces, bool first_section,
                         bool want);
tn_status tk_scratch_ensure(tk_scratch *sc);

/* Decoding (tok_decode.c): token ids -> text without clean-up. */
tn_status tk_decode_raw(const tn_tokenizer *tk, const int32_t *ids, size_t n, bool skip_special, tk_buf *out);
void tk_clean_up_spaces(tk_buf *b);

#endif
