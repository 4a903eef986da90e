/* init_tokenizer.c - the byte-level tokenizer `tunic init --tokenizer bytes` writes
 * beside a tiny model: a real tokenizer.json (BPE over the 256 GPT-2 byte symbols,
 * no merges, ByteLevel pre-tokenizer and decoder, BOS post-processor) plus five
 * special tokens, and a tokenizer_config.json with a Gemma-style chat template.
 * Every byte string is representable, so any text (and any language) round-trips.
 * Ids: 0..255 bytes, 256 <pad>, 257 <bos>, 258 <eos>, 259 <start_of_turn>,
 * 260 <end_of_turn>. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "model/model.h"

static const char *specials[] = {"<pad>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"};

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100.. */
static void byte_symbol(int b, char *out) {
  int cp;
  if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cp = b;
  else {
    int n = 0;
    for (int x = 0; x < b; x++)
      if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    cp = 256 + n;
  }
  if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
  else { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
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
  tn_status s = tn_write_file_atomic(path, text, strlen(text));
  free(text);
  free(path);
  return s;
}

tn_status tn_write_byte_tokenizer(const char *dir) {
  cJSON *t = cJSON_CreateObject();
  cJSON_AddStringToObject(t, "version", "1.0");
  cJSON_AddNullToObject(t, "truncation");
  cJSON_AddNullToObject(t, "padding");
  cJSON *added = cJSON_AddArrayToObject(t, "added_tokens");
  for (int i = 0; i < 5; i++) {
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
  cJSON_AddBoolToObject(pre, "use_regex", 0);
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
  for (int i = 0; i < 256; i++) {
    char sym[4];
    byte_symbol(i, sym);
    cJSON_AddNumberToObject(vocab, sym, i);
  }
  cJSON_AddArrayToObject(model, "merges");
  tn_status s = write_json(dir, "tokenizer.json", t);
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
