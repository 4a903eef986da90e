/* tok_write.c - writes the tokenizers tunic makes: tokenizer.json (byte-level BPE over the 256
 * GPT-2 byte symbols plus the learnt tokens and merges of tn_bpe_train, ByteLevel
 * pre-tokenizer and decoder, <bos> post-processor) with five special tokens, and a
 * tokenizer_config.json with a Gemma-style chat template. Every byte string is
 * representable, so any text (and any language) round-trips. Ids: 0..255 bytes, 256 <pad>,
 * 257 <bos>, 258 <eos>, 259 <start_of_turn>, 260 <end_of_turn>, then the learnt tokens.
 * The byte tokenizer (`tunic init --tokenizer bytes`) is the case without merges.
 * Not for: training (tok_train.c) or reading tokenizers (tok_load.c). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "tokenizer/tokenizer.h"

static const char *specials[TN_BPE_N_SPECIAL] = {"<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"};

/* Append the GPT-2 byte symbols of raw bytes p[0..n) to b, keeping b->s NUL-terminated. */
static tn_status put_symbols(tk_buf *b, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char u[4];
    TN_TRY(tk_buf_put(b, u, (size_t)tk_utf8_encode(tk_byte_to_cp[p[i]], u)));
  }
  TN_TRY(tk_buf_reserve(b, 1));
  b->s[b->len] = 0;
  return TN_OK;
}
/* Append the symbols of token id: a byte or a learnt token. */
static tn_status token_symbols(tk_buf *b, const tn_bpe_model *m, int32_t id) {
  if (id >= 0 && id < 256) return put_symbols(b, &(unsigned char){(unsigned char)id}, 1);
  const int32_t i = m ? id - TN_BPE_FIRST_LEARNT : -1;
  if (i < 0 || i >= m->n_learnt) return tn_error(TN_ERR_ARG, "tokenizer merge: id %d is not a byte or a learnt token", id);
  return put_symbols(b, (const unsigned char *)m->bytes + m->off[i], m->off[i + 1] - m->off[i]);
}

static const char *chat_template =
  "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
  "{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}{%- set loop_messages = messages -%}"
  "{%- endif -%}{%- for message in loop_messages -%}{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}"
  "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
  "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}{{ message['content'] | trim }}"
  "{{ '<end_of_turn>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{'<start_of_turn>model\n'}}{%- endif -%}";

static tn_status write_json(const char *dir, const char *name, cJSON *j) {
  char *text = cJSON_Print(j), *path = tn_path_join(dir, name);
  tn_status s = text && path ? tn_write_file_atomic(path, text, strlen(text))
                             : tn_error(TN_ERR_NOMEM, "%s/%s: out of memory", dir, name);
  free(text);
  free(path);
  return s;
}

tn_status tn_bpe_write(const char *dir, const tn_bpe_model *m) {
  TN_TRY(tn_mkdirs(dir));
  tk_bytelevel_init();
  const int32_t n_merges = m ? m->n_merges : 0, n_learnt = m ? m->n_learnt : 0;
  cJSON *t = cJSON_CreateObject();
  cJSON_AddStringToObject(t, "version", "1.0");
  cJSON_AddNullToObject(t, "truncation");
  cJSON_AddNullToObject(t, "padding");
  cJSON *added = cJSON_AddArrayToObject(t, "added_tokens");
  for (int i = 0; i < TN_BPE_N_SPECIAL; i++) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 256 + i);
    cJSON_AddStringToObject(a, "content", specials[i]);
    cJSON_AddBoolToObject(a, "single_word", 0);
    cJSON_AddBoolToObject(a, "lstrip", 0);
    cJSON_AddBoolToObject(a, "rstrip", 0);
    cJSON_AddBoolToObject(a, "normalized", 0);
    cJSON_AddBoolToObject(a, "special", 1);
    cJSON_AddItemToArray(added, a);
  }
  cJSON_AddNullToObject(t, "normalizer");
  cJSON *pre = cJSON_AddObjectToObject(t, "pre_tokenizer");
  cJSON_AddStringToObject(pre, "type", "ByteLevel");
  cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
  cJSON_AddBoolToObject(pre, "trim_offsets", 1);
  /* Without merges the split cannot change any id: the byte tokenizer skips it (faster). */
  cJSON_AddBoolToObject(pre, "use_regex", n_merges > 0);
  cJSON *post = cJSON_AddObjectToObject(t, "post_processor");
  cJSON_AddStringToObject(post, "type", "TemplateProcessing");
  cJSON *single = cJSON_AddArrayToObject(post, "single");
  cJSON *pair = cJSON_AddArrayToObject(post, "pair");
  const char *seqs[] = {"A", "B"};
  for (int k = 0; k < 2; k++) {
    cJSON *arr = k ? pair : single;
    for (int q = 0; q <= k; q++) {
      cJSON *sp = cJSON_CreateObject(), *inner = cJSON_AddObjectToObject(sp, "SpecialToken");
      cJSON_AddStringToObject(inner, "id", "<bos>");
      cJSON_AddNumberToObject(inner, "type_id", q);
      cJSON_AddItemToArray(arr, sp);
      cJSON *sq = cJSON_CreateObject(), *in2 = cJSON_AddObjectToObject(sq, "Sequence");
      cJSON_AddStringToObject(in2, "id", seqs[q]);
      cJSON_AddNumberToObject(in2, "type_id", q);
      cJSON_AddItemToArray(arr, sq);
    }
  }
  cJSON *stk = cJSON_AddObjectToObject(post, "special_tokens"), *b = cJSON_AddObjectToObject(stk, "<bos>");
  cJSON_AddStringToObject(b, "id", "<bos>");
  cJSON *ids = cJSON_AddArrayToObject(b, "ids");
  cJSON_AddItemToArray(ids, cJSON_CreateNumber(257));
  cJSON *toks = cJSON_AddArrayToObject(b, "tokens");
  cJSON_AddItemToArray(toks, cJSON_CreateString("<bos>"));
  cJSON *dec = cJSON_AddObjectToObject(t, "decoder");
  cJSON_AddStringToObject(dec, "type", "ByteLevel");
  cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
  cJSON_AddBoolToObject(dec, "trim_offsets", 1);
  cJSON_AddBoolToObject(dec, "use_regex", 1);
  cJSON *model = cJSON_AddObjectToObject(t, "model");
  cJSON_AddStringToObject(model, "type", "BPE");
  cJSON_AddNullToObject(model, "dropout");
  cJSON_AddNullToObject(model, "unk_token");
  cJSON_AddNullToObject(model, "continuing_subword_prefix");
  cJSON_AddNullToObject(model, "end_of_word_suffix");
  cJSON_AddBoolToObject(model, "fuse_unk", 0);
  cJSON_AddBoolToObject(model, "byte_fallback", 0);
  cJSON_AddBoolToObject(model, "ignore_merges", 0);
  cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
  tk_buf sym = {0};
  tn_status s = TN_OK;
  for (int32_t id = 0; id < TN_BPE_FIRST_LEARNT + n_learnt && s == TN_OK; id++) {
    if (id >= 256 && id < TN_BPE_FIRST_LEARNT) continue; /* the specials are added tokens */
    sym.len = 0;
    if ((s = token_symbols(&sym, m, id)) == TN_OK) cJSON_AddNumberToObject(vocab, sym.s, id);
  }
  cJSON *merges = cJSON_AddArrayToObject(model, "merges");
  for (int32_t k = 0; k < n_merges && s == TN_OK; k++) { /* "left right" (symbols never hold a space) */
    sym.len = 0;
    if ((s = token_symbols(&sym, m, m->merges[2 * k])) != TN_OK || (s = tk_buf_putc(&sym, ' ')) != TN_OK ||
        (s = token_symbols(&sym, m, m->merges[2 * k + 1])) != TN_OK)
      break;
    cJSON_AddItemToArray(merges, cJSON_CreateString(sym.s));
  }
  tk_buf_free(&sym);
  if (s != TN_OK) { cJSON_Delete(t); return s; }
  s = write_json(dir, "tokenizer.json", t);
  cJSON_Delete(t);
  if (s != TN_OK) return s;
  cJSON *c = cJSON_CreateObject();
  cJSON_AddBoolToObject(c, "add_bos_token", 1);
  cJSON_AddBoolToObject(c, "add_eos_token", 0);
  cJSON_AddStringToObject(c, "bos_token", "<bos>");
  cJSON_AddStringToObject(c, "eos_token", "<eos>");
  cJSON_AddStringToObject(c, "pad_token", "<pad>");
  cJSON_AddBoolToObject(c, "clean_up_tokenization_spaces", 0);
  cJSON_AddNumberToObject(c, "model_max_length", 32768);
  cJSON_AddStringToObject(c, "tokenizer_class", "PreTrainedTokenizerFast");
  cJSON_AddStringToObject(c, "chat_template", chat_template);
  s = write_json(dir, "tokenizer_config.json", c);
  cJSON_Delete(c);
  return s;
}

tn_status tn_write_byte_tokenizer(const char *dir) { return tn_bpe_write(dir, NULL); }
