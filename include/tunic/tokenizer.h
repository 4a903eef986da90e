/* tunic/tokenizer.h - Hugging Face tokenizers (tokenizer.json + tokenizer_config.json)
 * and chat templates.
 *
 * A tn_tokenizer is read-only once loaded: any number of threads may encode and
 * decode with it at once, each with its own tn_encoding / tn_detok_stream.
 *
 *   tn_tokenizer *tok;
 *   if (tn_tokenizer_load("models/gemma-3-1b", &tok) != TN_OK) puts(tn_last_error());
 *   tn_encoding enc = {0};                           // reuse it across calls
 *   tn_tokenizer_encode(tok, "Hello world", 11, true, &enc);   // enc.ids[0..enc.n)
 *   char *text; size_t len;
 *   tn_tokenizer_decode(tok, enc.ids, enc.n, true, &text, &len); free(text);
 *   tn_encoding_free(&enc); tn_tokenizer_free(tok);
 *
 * Supported: BPE models (byte-level like Llama-3 / Qwen, or SentencePiece-style with
 * byte fallback like Gemma), the usual normalizers, pre-tokenizers, post-processors and
 * decoders, added tokens. See docs/tokenizer.md. */
#ifndef TUNIC_TOKENIZER_H
#define TUNIC_TOKENIZER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tunic/base.h"

typedef struct tn_tokenizer tn_tokenizer;

/* Load from a model directory (reads DIR/tokenizer.json and, when present,
 * DIR/tokenizer_config.json) or from the path of a tokenizer.json file (the
 * tokenizer_config.json beside it is read if present). Errors name the field at fault. */
TN_API tn_status tn_tokenizer_load(const char *path, tn_tokenizer **out);
TN_API void tn_tokenizer_free(tn_tokenizer *tok);

/* ---- encoding ---- */
typedef struct tn_encoding {
  int32_t *ids;        /* (n,) token ids */
  uint32_t *offsets;   /* (n, 2) byte range [start, end) of each token in the input text;
                          filled only by tn_tokenizer_encode_offsets / tn_chat_encode */
  uint8_t *mask;       /* (n,) 1 = token belongs to an assistant reply; only tn_chat_encode */
  size_t n, cap;
  struct tk_scratch *scratch; /* internal working memory, kept for the next call */
} tn_encoding;

/* Encode len bytes of text (need not be NUL-terminated). add_special: add the tokens of the
 * post-processor (e.g. Gemma's <bos>); special tokens written in the text are always
 * recognised, as Hugging Face does. Invalid UTF-8 is read as U+FFFD per maximal invalid
 * subpart (like TextDecoder). Replaces out's previous content. */
TN_API tn_status tn_tokenizer_encode(const tn_tokenizer *tok, const char *text, size_t len, bool add_special,
                              tn_encoding *out);
/* Same, and fills out->offsets. */
TN_API tn_status tn_tokenizer_encode_offsets(const tn_tokenizer *tok, const char *text, size_t len, bool add_special,
                                      tn_encoding *out);
TN_API void tn_encoding_free(tn_encoding *e);

/* ---- decoding ---- */
/* ids -> UTF-8 text (malloc'd, NUL-terminated; free() it). skip_special drops special
 * tokens. Ids past the tokenizer's vocabulary (padded embedding rows) are dropped, as
 * Hugging Face does; a negative id is TN_ERR_ARG. Applies clean_up_tokenization_spaces when tokenizer_config.json asks for it
 * (as transformers does), so decode is not always the exact inverse of encode. */
TN_API tn_status tn_tokenizer_decode(const tn_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                              char **text, size_t *len);

/* Streaming decoder for generation: push ids one by one and get back only text made of
 * complete UTF-8 characters (a character split across byte tokens appears once, whole).
 * No clean-up of spaces is done (the stream is lossless). */
typedef struct tn_detok_stream tn_detok_stream;
TN_API tn_status tn_detok_stream_new(const tn_tokenizer *tok, bool skip_special, tn_detok_stream **out);
/* *text (NUL-terminated, valid until the next call on this stream) receives the newly
 * completed text, *len its length (often 0). */
TN_API tn_status tn_detok_stream_push(tn_detok_stream *s, int32_t id, const char **text, size_t *len);
/* End of stream: bytes still pending (an incomplete character) come out as U+FFFD. */
TN_API tn_status tn_detok_stream_flush(tn_detok_stream *s, const char **text, size_t *len);
TN_API void tn_detok_stream_reset(tn_detok_stream *s);
TN_API void tn_detok_stream_free(tn_detok_stream *s);

/* ---- vocabulary and special tokens ---- */
TN_API int32_t tn_tokenizer_vocab_size(const tn_tokenizer *tok);          /* max id + 1 */
/* Id of an exact token string (model vocab or added token), -1 if none. */
TN_API int32_t tn_tokenizer_token_to_id(const tn_tokenizer *tok, const char *token, size_t len);
/* Token string as written in tokenizer.json (e.g. "Ġworld"), NULL for an unknown id. */
TN_API const char *tn_tokenizer_id_to_token(const tn_tokenizer *tok, int32_t id, size_t *len);
TN_API bool tn_tokenizer_is_special(const tn_tokenizer *tok, int32_t id); /* added token marked special */
/* From tokenizer_config.json (bos_token, eos_token, pad_token); -1 when not set. */
TN_API int32_t tn_tokenizer_bos_id(const tn_tokenizer *tok);
TN_API int32_t tn_tokenizer_eos_id(const tn_tokenizer *tok);
TN_API int32_t tn_tokenizer_pad_id(const tn_tokenizer *tok);
/* The default chat_template text of tokenizer_config.json (or chat_template.jinja), NULL if none. */
TN_API const char *tn_tokenizer_chat_template(const tn_tokenizer *tok);
/* Use the Jinja template in the file PATH instead of the model's (--chat-template FILE.jinja);
 * it also replaces a "tool_use" template. Errors name the file; the template is parsed on use. */
TN_API tn_status tn_tokenizer_set_chat_template(tn_tokenizer *tok, const char *path);

/* ---- chat templates ---- */
/* tn_chat_render renders with the tokenizer's own Jinja chat_template (src/template, see
 * docs/chat-templates.md) unless opts->format names a built-in format or there is no template.
 * Built-in renderers, byte-identical to the model's Jinja template:
 *   gemma  - Gemma-3 (<start_of_turn>user ... <end_of_turn>, system folded into the first user turn)
 *   chatml - Qwen3 / Qwen2.5 ChatML (<|im_start|>role ... <|im_end|>, Qwen3 <think> handling)
 *   llama3 - Llama-3 (<|start_header_id|>role<|end_header_id|> ... <|eot_id|>) */
typedef enum { TN_CHAT_AUTO = 0, TN_CHAT_GEMMA, TN_CHAT_CHATML, TN_CHAT_LLAMA3 } tn_chat_format;
/* "gemma" | "chatml" | "llama3" (also "qwen", "qwen3", "llama" as aliases), "auto". */
TN_API tn_status tn_chat_format_parse(const char *name, tn_chat_format *out);
TN_API const char *tn_chat_format_name(tn_chat_format f);
/* The token that ends a turn in format f (<end_of_turn>, <|im_end|>, <|eot_id|>), NULL for auto. */
TN_API const char *tn_chat_end_of_turn(tn_chat_format f);
/* Recognise the format from the tokenizer's chat_template; an error naming the
 * built-in formats (and --chat-format) when it is missing or unrecognised. */
TN_API tn_status tn_chat_detect(const tn_tokenizer *tok, tn_chat_format *out);

typedef struct {
  const char *role;       /* "system", "user", "assistant" (chatml also "tool") */
  const char *content;    /* UTF-8, NUL-terminated */
  const char *reasoning;  /* optional Qwen3 reasoning_content (NULL: taken from <think> in content) */
} tn_chat_msg;

typedef struct {
  tn_chat_format format;       /* TN_CHAT_AUTO: tn_chat_detect */
  bool add_generation_prompt;  /* end with the header of an assistant turn */
  int enable_thinking;         /* Qwen3: -1 undefined (default), 0 false, 1 true */
} tn_chat_opts;

typedef struct { size_t start, end; } tn_span;  /* byte range [start, end) */
typedef struct {
  char *text; size_t len;      /* the rendered conversation (includes BOS if the template has it) */
  tn_span *spans; size_t n_spans; /* each assistant reply: its content (with any <think> block)
                                     through its end-of-turn token (<end_of_turn>, <|im_end|>,
                                     <|eot_id|>), excluding the header and the trailing newline */
} tn_chat_out;

/* opts may be NULL (the model's template, no generation prompt). Spans: from {% generation %}
 * blocks, else by rendering prefixes of the conversation (docs/chat-templates.md). */
TN_API tn_status tn_chat_render(const tn_tokenizer *tok, const tn_chat_msg *msgs, size_t n, const tn_chat_opts *opts,
                         tn_chat_out *out);
TN_API void tn_chat_out_free(tn_chat_out *out);
/* Render and encode the conversation (no post-processor tokens: the template already
 * holds them, as apply_chat_template(tokenize=True) does). Fills enc->ids, enc->offsets and
 * enc->mask (1 for tokens inside an assistant span: the tokens a trainer computes loss on). */
TN_API tn_status tn_chat_encode(const tn_tokenizer *tok, const tn_chat_msg *msgs, size_t n, const tn_chat_opts *opts,
                         tn_encoding *enc);

/* ---- training a byte-level BPE tokenizer (tok_train.c) and writing one (tok_write.c) ----
 * The tokenizers tunic makes: ids 0..255 are the bytes (GPT-2 byte symbols), 256..260 the
 * specials <pad> <bos> <eos> <start_of_turn> <end_of_turn>, then the learnt tokens; ByteLevel
 * pre-tokenizer and decoder, <bos> post-processor, Gemma-style chat template. */
#define TN_BPE_N_SPECIAL 5
#define TN_BPE_FIRST_LEARNT 261   /* id of the first learnt token */

typedef struct {
  const char *bytes;       /* learnt token i (id TN_BPE_FIRST_LEARNT + i) is bytes[off[i] .. off[i+1]) (raw bytes) */
  const size_t *off;       /* (n_learnt + 1,) */
  int32_t n_learnt;
  const int32_t *merges;   /* (n_merges, 2): left id, right id, in merge order */
  int32_t n_merges;
} tn_bpe_model;

/* Write DIR/tokenizer.json and DIR/tokenizer_config.json (each atomically; DIR is created).
 * m == NULL (or no merges): the byte tokenizer of `tunic init --tokenizer bytes`. */
TN_API tn_status tn_bpe_write(const char *dir, const tn_bpe_model *m);
/* The byte tokenizer for tiny models (`tunic init --tokenizer bytes`): tn_bpe_write(dir, NULL). */
TN_API tn_status tn_write_byte_tokenizer(const char *dir);

/* The training texts of files: a .jsonl file gives every string value (recursively) of every
 * non-blank line, any other file every line (split at '\n', which stays part of the line).
 * fn is called once per text, in order; a non-OK return stops. Errors name file:line
 * (malformed JSON, invalid UTF-8). */
typedef tn_status (*tn_text_fn)(void *ctx, const char *text, size_t len);
TN_API tn_status tn_text_corpus_each(const char *const *paths, int n_paths, tn_text_fn fn, void *ctx);

typedef struct {
  const char *const *data; int n_data;  /* training files */
  int vocab_size;                       /* >= TN_BPE_FIRST_LEARNT, counts the specials */
  int min_frequency;                    /* stop when the best pair count is below it (CLI default 2) */
  const char *out_dir;
} tn_bpe_train_opts;

typedef struct {
  size_t n_texts, n_bytes;   /* corpus texts and their UTF-8 bytes */
  size_t n_pieces, n_words;  /* pre-tokenizer pieces, distinct pieces */
  int vocab_size, n_merges;  /* reached (vocab counts bytes and specials) */
} tn_bpe_train_stats;

/* Byte-level BPE training as Hugging Face's BpeTrainer does it (GPT-2 pre-tokenization;
 * each round merges the most frequent adjacent pair, ties to the smallest (left id, right id);
 * a merge whose string already exists keeps that id), then tn_bpe_write(out_dir).
 * Semantics pinned by tests/ref/bpe_train_ref.py. stats may be NULL. */
TN_API tn_status tn_bpe_train(const tn_bpe_train_opts *o, tn_bpe_train_stats *stats);

#endif
