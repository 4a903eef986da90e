/* fuzz_tokenizer.c - libFuzzer harness: tokenizer.json, NUL, tokenizer_config.json
 * (absent without a NUL), NUL, a text. tn_tokenizer_load must accept or explain; an
 * accepted tokenizer encodes the text (with and without specials, with offsets, which
 * must lie inside the text), decodes the ids (plain and streaming), looks every id up
 * and renders a chat with the text when it has a template the renderer knows.
 * Not for: fixed-tokenizer encode speed (bench/). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *dir;
  if (!dir) dir = fz_subdir("tok");
  const uint8_t *part[3];
  size_t len[3];
  int k = fz_split(data, size, 3, part, len);
  fz_write(dir, "tokenizer.json", part[0], len[0], 0);
  fz_write(dir, "tokenizer_config.json", k > 1 ? part[1] : NULL, k > 1 ? len[1] : (size_t)-1, 1);
  const char *text = k > 2 ? (const char *)part[2] : "Hello, world! 123 <bos> ünïcödé";
  const size_t tlen = k > 2 ? len[2] : strlen(text);
  tn_tokenizer *tok = NULL;
  tn_error_clear();
  tn_status s = tn_tokenizer_load(dir, &tok);
  fz_check(s, "tn_tokenizer_load");
  if (s != TN_OK) return 0;
  tn_encoding e = {0};
  for (int special = 0; special < 2; special++) {
    tn_error_clear();
    s = tn_tokenizer_encode_offsets(tok, text, tlen, special, &e);
    fz_check(s, "tn_tokenizer_encode_offsets");
    if (s != TN_OK) continue;
    const int32_t V = tn_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < e.n; i++) {
      if (e.ids[i] < 0 || e.ids[i] >= V) abort();
      if (e.offsets[2 * i] > e.offsets[2 * i + 1] || e.offsets[2 * i + 1] > tlen) abort();
      size_t l;
      tn_tokenizer_id_to_token(tok, e.ids[i], &l);
      tn_tokenizer_is_special(tok, e.ids[i]);
    }
    char *out = NULL;
    size_t olen;
    tn_error_clear();
    s = tn_tokenizer_decode(tok, e.ids, e.n, special == 0, &out, &olen);
    fz_check(s, "tn_tokenizer_decode");
    free(out);
    tn_detok_stream *ds = NULL;
    if (tn_detok_stream_new(tok, special == 0, &ds) == TN_OK) {
      const char *piece;
      size_t pl;
      for (size_t i = 0; i < e.n; i++) fz_check(tn_detok_stream_push(ds, e.ids[i], &piece, &pl), "detok push");
      tn_detok_stream_flush(ds, &piece, &pl);
      tn_detok_stream_free(ds);
    }
  }
  tn_error_clear();
  fz_check(tn_tokenizer_encode(tok, text, tlen, true, &e), "tn_tokenizer_encode");
  tn_encoding_free(&e);
  tn_chat_format fmt;
  if (tn_chat_detect(tok, &fmt) == TN_OK) {
    char *t = fz_str((const uint8_t *)text, tlen);
    tn_chat_msg m[3] = {{"system", t, NULL}, {"user", t, NULL}, {"assistant", t, NULL}};
    tn_chat_opts o = {fmt, true, -1};
    tn_chat_out co = {0};
    tn_encoding ce = {0};
    tn_error_clear();
    fz_check(tn_chat_render(tok, m, 3, &o, &co), "tn_chat_render");
    tn_chat_out_free(&co);
    tn_error_clear();
    fz_check(tn_chat_encode(tok, m, 3, &o, &ce), "tn_chat_encode");
    tn_encoding_free(&ce);
    free(t);
  }
  tn_tokenizer_free(tok);
  return 0;
}
