/* sft_data.c - JSONL -> token ids + loss mask for supervised fine-tuning
 * (formats in data.h). Every line is validated; errors name FILE:LINE. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"
#include "template/template.h"
#include "base/json.h"

static tn_status push(tn_dataset *d, const int32_t *ids, const uint8_t *mask, int n, int max_len) {
  if (max_len > 0 && n > max_len) { n = max_len; d->n_truncated++; }
  int targets = 0;
  for (int t = 1; t < n; t++) targets += mask[t] != 0;
  if (targets == 0) { d->n_dropped++; return TN_OK; }
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 256;
    tn_example *e = realloc(d->ex, sizeof *e * d->cap);
    if (!e) return tn_error(TN_ERR_NOMEM, "out of memory loading the dataset");
    d->ex = e;
  }
  int32_t *eids = malloc(sizeof(int32_t) * n);
  uint8_t *emask = malloc(n);
  if (!eids || !emask) {
    free(eids);
    free(emask);
    return tn_error(TN_ERR_NOMEM, "out of memory loading the dataset");
  }
  tn_example *e = &d->ex[d->n++];
  e->ids = eids;
  e->mask = emask;
  memcpy(e->ids, ids, sizeof(int32_t) * n);
  memcpy(e->mask, mask, n);
  e->mask[0] = 0;
  e->n = n;
  e->n_targets = targets;
  return TN_OK;
}

typedef struct {
  int32_t *ids;
  uint8_t *mask;
  int n, cap;
} buf_t;

static tn_status buf_add(buf_t *b, const int32_t *ids, size_t n, uint8_t m) {
  if (n == 0) return TN_OK; /* an empty text: b->ids may still be NULL */
  if (n > (size_t)(INT32_MAX / 8) || b->n + (int64_t)n > INT32_MAX / 8)
    return tn_error(TN_ERR_LIMIT, "an example of more than %d tokens", INT32_MAX / 8);
  if (b->n + (int)n > b->cap) {
    int cap = (b->n + (int)n) * 2 + 16;
    int32_t *ni = realloc(b->ids, sizeof(int32_t) * cap);
    if (ni) b->ids = ni;
    uint8_t *nm = ni ? realloc(b->mask, cap) : NULL;
    if (nm) b->mask = nm;
    if (!ni || !nm) return tn_error(TN_ERR_NOMEM, "out of memory loading the dataset");
    b->cap = cap;
  }
  memcpy(b->ids + b->n, ids, sizeof(int32_t) * n);
  memset(b->mask + b->n, m, n);
  b->n += (int)n;
  return TN_OK;
}

/* messages array -> tn_chat_msg list (strings must outlive the call) */
static tn_status to_msgs(cJSON *arr, tn_chat_msg **out, size_t *n, const char *where) {
  *n = (size_t)cJSON_GetArraySize(arr);
  *out = calloc(*n ? *n : 1, sizeof(tn_chat_msg));
  if (!*out) return tn_error(TN_ERR_NOMEM, "%s: out of memory", where);
  size_t i = 0;
  cJSON *m;
  cJSON_ArrayForEach(m, arr) {
    cJSON *role = tn_json_field_mut(m, "role"), *content = tn_json_field_mut(m, "content");
    if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(content)) {
      free(*out);
      *out = NULL;
      return tn_error(TN_ERR_FORMAT, "%s: message %zu needs string fields \"role\" and \"content\"", where, i);
    }
    char mw[400];
    snprintf(mw, sizeof mw, "%s: message %zu", where, i);
    const char *rc = NULL;
    tn_status rs = tn_json_str(m, mw, "reasoning_content", false, NULL, &rc);
    if (rs != TN_OK) {
      free(*out);
      *out = NULL;
      return rs;
    }
    (*out)[i].role = role->valuestring;
    (*out)[i].content = content->valuestring;
    (*out)[i].reasoning = rc;
    i++;
  }
  return TN_OK;
}

static tn_status one_line(tn_dataset *d, cJSON *j, const tn_tokenizer *tok, const tn_sft_data_opts *o,
                          const char *where, tn_encoding *enc, buf_t *b) {
  cJSON *msgs = tn_json_field_mut(j, "messages");
  cJSON *prompt = tn_json_field_mut(j, "prompt");
  cJSON *comp = tn_json_field_mut(j, "completion");
  if (!comp) comp = tn_json_field_mut(j, "response");
  cJSON *text = tn_json_field_mut(j, "text");
  cJSON *prompts = tn_json_field_mut(j, "prompts");
  const cJSON *tools_field;
  TN_TRY(tn_json_kind(j, where, "tools", cJSON_Array, false, &tools_field)); /* a list when given */
  const int32_t eos = tn_tokenizer_eos_id(tok);
  tn_chat_opts co = {.format = o->chat, .add_generation_prompt = false, .enable_thinking = -1};
  b->n = 0;
  if (msgs || (cJSON_IsArray(prompt) && cJSON_IsArray(comp))) {
    cJSON *all = msgs;
    if (!msgs) { /* conversational prompt/completion: one list */
      all = cJSON_CreateArray();
      bool ok = all != NULL;
      cJSON *m;
      cJSON_ArrayForEach(m, prompt) ok = ok && cJSON_AddItemReferenceToArray(all, m);
      cJSON_ArrayForEach(m, comp) ok = ok && cJSON_AddItemReferenceToArray(all, m);
      if (!ok) { cJSON_Delete(all); return tn_error(TN_ERR_NOMEM, "%s: out of memory", where); }
    } else if (!cJSON_IsArray(msgs)) {
      return tn_error(TN_ERR_FORMAT, "%s: \"messages\" must be a list", where);
    }
    tn_status s;
    if (o->chat == TN_CHAT_AUTO && tn_tokenizer_chat_template(tok)) {
      /* the model's Jinja template: tool calls, tool results and "tools" as transformers renders them */
      cJSON *tools = tn_json_field_mut(j, "tools");
      tn_chat_req q = {.messages = all, .tools = cJSON_IsArray(tools) ? tools : NULL, .spans = true};
      tn_chat_out out;
      s = tn_chat_render_req(tok, &q, &out);
      if (s == TN_OK) {
        s = tn_chat_out_encode(tok, &out, enc);
        tn_chat_out_free(&out);
      }
      if (s != TN_OK) s = tn_error_prefix(s, "%s", where);
    } else {
      tn_chat_msg *cm = NULL;
      size_t n;
      s = to_msgs(all, &cm, &n, where);
      if (s == TN_OK) {
        s = tn_chat_encode(tok, cm, n, &co, enc);
        if (s != TN_OK) s = tn_error_prefix(s, "%s", where);
      }
      free(cm);
    }
    if (all != msgs) cJSON_Delete(all);
    if (s != TN_OK) return s;
    return push(d, enc->ids, enc->mask, (int)enc->n, o->max_seq_len);
  }
  if (prompt || comp) {
    if (!cJSON_IsString(prompt) || !cJSON_IsString(comp))
      return tn_error(TN_ERR_FORMAT, "%s: \"prompt\" and \"completion\" must both be strings (or both message lists)", where);
    TN_TRY(tn_tokenizer_encode(tok, prompt->valuestring, strlen(prompt->valuestring), true, enc));
    TN_TRY(buf_add(b, enc->ids, enc->n, 0));
    TN_TRY(tn_tokenizer_encode(tok, comp->valuestring, strlen(comp->valuestring), false, enc));
    TN_TRY(buf_add(b, enc->ids, enc->n, 1));
    if (eos >= 0) TN_TRY(buf_add(b, &eos, 1, 1));
    return push(d, b->ids, b->mask, b->n, o->max_seq_len);
  }
  if (text) {
    if (!cJSON_IsString(text)) return tn_error(TN_ERR_FORMAT, "%s: \"text\" must be a string", where);
    TN_TRY(tn_tokenizer_encode(tok, text->valuestring, strlen(text->valuestring), true, enc));
    TN_TRY(buf_add(b, enc->ids, enc->n, 1));
    if (eos >= 0) TN_TRY(buf_add(b, &eos, 1, 1));
    return push(d, b->ids, b->mask, b->n, o->max_seq_len);
  }
  if (prompts) {
    if (!cJSON_IsString(prompts)) return tn_error(TN_ERR_FORMAT, "%s: \"prompts\" must be a string", where);
    const char *s = prompts->valuestring, *tag = "<start_of_turn>model\n", *last = NULL;
    for (const char *p = strstr(s, tag); p; p = strstr(p + 1, tag)) last = p;
    if (!last) return tn_error(TN_ERR_FORMAT, "%s: tunix_sft \"prompts\" has no \"<start_of_turn>model\" turn", where);
    size_t start = (size_t)(last - s) + strlen(tag);
    /* the tunix_sft export of the store (id, prompts ending with the open model turn, final_answer,
     * metadata): the answer and its end-of-turn marker are the trained completion */
    const cJSON *fa = tn_json_field(j, "final_answer");
    char *joined = NULL;
    if (fa) {
      if (!cJSON_IsString(fa)) return tn_error(TN_ERR_FORMAT, "%s: \"final_answer\" must be a string", where);
      const char *rest = s + start;
      while (*rest == ' ' || *rest == '\n' || *rest == '\r' || *rest == '\t') rest++;
      if (!*rest) {
        size_t a = start, b = strlen(fa->valuestring);
        static const char eot[] = "<end_of_turn>\n";
        if (!(joined = malloc(a + b + sizeof eot))) return tn_error(TN_ERR_NOMEM, "%s: out of memory", where);
        memcpy(joined, s, a);
        memcpy(joined + a, fa->valuestring, b);
        memcpy(joined + a + b, eot, sizeof eot);
        s = joined;
      }
    }
    tn_status es = tn_tokenizer_encode_offsets(tok, s, strlen(s), true, enc);
    free(joined);
    TN_TRY(es);
    for (size_t i = 0; i < enc->n; i++) {
      uint8_t m = enc->offsets[2 * i] >= start && enc->offsets[2 * i + 1] > enc->offsets[2 * i];
      TN_TRY(buf_add(b, &enc->ids[i], 1, m));
    }
    return push(d, b->ids, b->mask, b->n, o->max_seq_len);
  }
  return tn_error(TN_ERR_FORMAT, "%s: no known fields (expected \"messages\", \"prompt\"+\"completion\", \"text\" or \"prompts\")",
                  where);
}

typedef struct {
  tn_dataset *d;
  const tn_tokenizer *tok;
  const tn_sft_data_opts *o;
  tn_encoding enc;
  buf_t b;
} load_ctx;

static tn_status load_line(void *ctx, cJSON *j, const char *where) {
  load_ctx *c = ctx;
  tn_status s = one_line(c->d, j, c->tok, c->o, where, &c->enc, &c->b);
  cJSON_Delete(j);
  return s;
}

tn_status tn_sft_load(tn_dataset *d, const char *path, const tn_tokenizer *tok, const tn_sft_data_opts *o) {
  memset(d, 0, sizeof *d);
  load_ctx c = {.d = d, .tok = tok, .o = o};
  tn_status s = tn_data_read(path, TN_DATA_SFT, o->field_map, load_line, &c);
  free(c.b.ids);
  free(c.b.mask);
  tn_encoding_free(&c.enc);
  if (s == TN_OK && d->n == 0) s = tn_error(TN_ERR_FORMAT, "%s: no usable examples", path);
  if (s != TN_OK) tn_dataset_free(d);
  return s;
}

void tn_dataset_free(tn_dataset *d) {
  for (int i = 0; i < d->n; i++) { free(d->ex[i].ids); free(d->ex[i].mask); }
  free(d->ex);
  memset(d, 0, sizeof *d);
}

void tn_permutation(int *perm, int n, uint64_t seed) {
  tn_rng r;
  tn_rng_seed(&r, seed);
  for (int i = 0; i < n; i++) perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(tn_rng_u64(&r) % (uint64_t)(i + 1));
    int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
  }
}

tn_status tn_dataset_split(tn_dataset *d, tn_dataset *eval, float frac, uint64_t seed) {
  memset(eval, 0, sizeof *eval);
  int ne = (int)(d->n * frac + 0.5f);
  if (frac <= 0 || ne == 0) return TN_OK;
  if (ne >= d->n) return tn_error(TN_ERR_ARG, "eval split %.3f leaves no training examples (%d examples)", frac, d->n);
  int *perm = malloc(sizeof(int) * d->n);
  char *is_eval = calloc(d->n, 1);
  eval->ex = malloc(sizeof(tn_example) * ne);
  if (!perm || !is_eval || !eval->ex) {
    free(perm);
    free(is_eval);
    free(eval->ex);
    eval->ex = NULL;
    return tn_error(TN_ERR_NOMEM, "out of memory splitting the dataset");
  }
  tn_permutation(perm, d->n, seed ^ 0x5eed5eedULL);
  for (int i = 0; i < ne; i++) is_eval[perm[i]] = 1;
  eval->cap = ne;
  int w = 0;
  for (int i = 0; i < d->n; i++) {
    if (is_eval[i]) eval->ex[eval->n++] = d->ex[i];
    else d->ex[w++] = d->ex[i];
  }
  d->n = w;
  free(perm);
  free(is_eval);
  return TN_OK;
}
