/* pref_data.c - JSONL preference pairs -> prompt / chosen / rejected token ids
 * (formats and rules in pref.h). Every line is validated; errors name FILE:LINE. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"
#include "data/pref.h"
#include "template/template.h"
#include "base/json.h"

typedef struct {
  int32_t *ids;
  int n, cap;
} ibuf;

static tn_status ib_add(ibuf *b, const int32_t *ids, int n) {
  if (n == 0) return TN_OK; /* an empty text: b->ids may still be NULL */
  if (n < 0 || b->n + (int64_t)n > INT32_MAX / 8) return tn_error(TN_ERR_LIMIT, "a text of more than %d tokens", INT32_MAX / 8);
  if (b->n + n > b->cap) {
    int cap = (b->n + n) * 2 + 16;
    int32_t *ni = realloc(b->ids, sizeof(int32_t) * cap);
    if (!ni) return tn_error(TN_ERR_NOMEM, "out of memory loading preference pairs");
    b->ids = ni;
    b->cap = cap;
  }
  memcpy(b->ids + b->n, ids, sizeof(int32_t) * n);
  b->n += n;
  return TN_OK;
}

/* a message list into m[*k..]; strings stay owned by the JSON */
static tn_status add_msgs(cJSON *arr, tn_chat_msg *m, int *k, const char *where, const char *field) {
  int i = 0;
  cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    cJSON *r = tn_json_field_mut(it, "role"), *c = tn_json_field_mut(it, "content");
    if (!cJSON_IsObject(it) || !cJSON_IsString(r) || !cJSON_IsString(c))
      return tn_error(TN_ERR_FORMAT, "%s: \"%s\" message %d needs string fields \"role\" and \"content\"", where, field, i);
    char mw[400];
    snprintf(mw, sizeof mw, "%s: \"%s\" message %d", where, field, i);
    const char *rc = NULL;
    TN_TRY(tn_json_str(it, mw, "reasoning_content", false, NULL, &rc));
    m[(*k)++] = (tn_chat_msg){r->valuestring, c->valuestring, rc};
    i++;
  }
  return TN_OK;
}

static bool same_msg(cJSON *a, cJSON *b) {
  cJSON *ra = tn_json_field_mut(a, "role"), *rb = tn_json_field_mut(b, "role");
  cJSON *ca = tn_json_field_mut(a, "content"), *cb = tn_json_field_mut(b, "content");
  return cJSON_IsString(ra) && cJSON_IsString(rb) && cJSON_IsString(ca) && cJSON_IsString(cb) &&
         !strcmp(ra->valuestring, rb->valuestring) && !strcmp(ca->valuestring, cb->valuestring);
}

/* The chat-template path: prompt messages pm[0..np), response messages rm[0..nr).
 * Appends the prompt's tokens (when prompt != NULL) and the response's tokens. */
static tn_status chat_tokens(const tn_tokenizer *tok, const tn_pref_data_opts *o, tn_chat_msg *all, int np, int nr,
                             ibuf *prompt, ibuf *resp, tn_encoding *enc, const char *where, const char *field) {
  tn_chat_opts gp = {.format = o->format, .add_generation_prompt = true, .enable_thinking = -1};
  tn_chat_opts full = {.format = o->format, .add_generation_prompt = false, .enable_thinking = -1};
  tn_chat_out po = {0}, fo = {0};
  tn_status s = tn_chat_render(tok, all, np, &gp, &po);
  if (s == TN_OK) s = tn_chat_render(tok, all, np + nr, &full, &fo);
  if (s != TN_OK) {
    tn_chat_out_free(&po);
    tn_chat_out_free(&fo);
    return tn_error_prefix(s, "%s", where);
  }
  size_t end = fo.n_spans ? fo.spans[fo.n_spans - 1].end : fo.len;
  if (fo.len < po.len || memcmp(fo.text, po.text, po.len) != 0 || end < po.len) {
    s = tn_error(TN_ERR_FORMAT,
                 "%s: the chat template's rendering of prompt + \"%s\" does not start with the rendered prompt "
                 "(cannot tell the response's tokens apart)", where, field);
  } else {
    if (prompt) {
      s = tn_tokenizer_encode(tok, po.text, po.len, false, enc);
      if (s == TN_OK) s = ib_add(prompt, enc->ids, (int)enc->n);
    }
    if (s == TN_OK) s = tn_tokenizer_encode(tok, fo.text + po.len, end - po.len, false, enc);
    if (s == TN_OK) s = ib_add(resp, enc->ids, (int)enc->n);
  }
  tn_chat_out_free(&po);
  tn_chat_out_free(&fo);
  return s;
}

/* Message lists with tool calls, tool turns or non-string content (or a "tools" list) go through the
 * model's Jinja template as JSON (chat_tokens_json); the rest keep the tn_chat_msg path. */
static bool has_tool_turns(const cJSON *arr) {
  const cJSON *m;
  cJSON_ArrayForEach(m, arr) {
    const cJSON *r = tn_json_field(m, "role");
    if (cJSON_HasObjectItem(m, "tool_calls") || !cJSON_IsString(tn_json_field(m, "content")) ||
        (cJSON_IsString(r) && !strcmp(r->valuestring, "tool")))
      return true;
  }
  return false;
}

/* chat_tokens for JSON messages: prompt pm (array), response rm (array), tools (or NULL) */
static tn_status chat_tokens_json(const tn_tokenizer *tok, cJSON *pm, cJSON *rm, const cJSON *tools, ibuf *prompt, ibuf *resp,
                                  tn_encoding *enc, const char *where, const char *field) {
  cJSON *all = cJSON_CreateArray();
  const cJSON *m;
  cJSON_ArrayForEach(m, pm) cJSON_AddItemReferenceToArray(all, (cJSON *)m);
  cJSON_ArrayForEach(m, rm) cJSON_AddItemReferenceToArray(all, (cJSON *)m);
  tn_chat_req gp = {.messages = pm, .tools = tools, .add_generation_prompt = true};
  tn_chat_req full = {.messages = all, .tools = tools, .spans = true};
  tn_chat_out po = {0}, fo = {0};
  tn_status s = tn_chat_render_req(tok, &gp, &po);
  if (s == TN_OK) s = tn_chat_render_req(tok, &full, &fo);
  cJSON_Delete(all);
  if (s != TN_OK) {
    tn_chat_out_free(&po);
    tn_chat_out_free(&fo);
    return tn_error_prefix(s, "%s", where);
  }
  size_t end = fo.n_spans ? fo.spans[fo.n_spans - 1].end : fo.len;
  if (fo.len < po.len || memcmp(fo.text, po.text, po.len) != 0 || end < po.len) {
    s = tn_error(TN_ERR_FORMAT,
                 "%s: the chat template's rendering of prompt + \"%s\" does not start with the rendered prompt "
                 "(cannot tell the response's tokens apart)", where, field);
  } else {
    if (prompt) {
      s = tn_tokenizer_encode(tok, po.text, po.len, false, enc);
      if (s == TN_OK) ib_add(prompt, enc->ids, (int)enc->n);
    }
    if (s == TN_OK) s = tn_tokenizer_encode(tok, fo.text + po.len, end - po.len, false, enc);
    if (s == TN_OK) ib_add(resp, enc->ids, (int)enc->n);
  }
  tn_chat_out_free(&po);
  tn_chat_out_free(&fo);
  return s;
}

static tn_status one_line(tn_pref_set *set, cJSON *j, const tn_tokenizer *tok, const tn_pref_data_opts *o,
                          const char *where, tn_encoding *enc, ibuf *bp, ibuf *bc, ibuf *br) {
  cJSON *prompt = tn_json_field_mut(j, "prompt");
  cJSON *ch = tn_json_field_mut(j, "chosen"), *rj = tn_json_field_mut(j, "rejected");
  bp->n = bc->n = br->n = 0;
  const cJSON *tools_field;
  TN_TRY(tn_json_kind(j, where, "tools", cJSON_Array, false, &tools_field)); /* a list when given */
  if (!ch || !rj) return tn_error(TN_ERR_FORMAT, "%s: needs \"chosen\" and \"rejected\" (and usually \"prompt\")", where);
  const bool lists = cJSON_IsArray(ch) || cJSON_IsArray(rj);
  if (lists) {
    if (!cJSON_IsArray(ch) || !cJSON_IsArray(rj))
      return tn_error(TN_ERR_FORMAT, "%s: \"chosen\" and \"rejected\" must both be strings or both message lists", where);
    if (prompt && !cJSON_IsArray(prompt) && !cJSON_IsString(prompt))
      return tn_error(TN_ERR_FORMAT, "%s: \"prompt\" must be a string or a message list", where);
    const int nP = prompt ? (cJSON_IsArray(prompt) ? cJSON_GetArraySize(prompt) : 1) : 0;
    const int nc = cJSON_GetArraySize(ch), nr = cJSON_GetArraySize(rj);
    int skip = 0; /* implicit prompt: the messages chosen and rejected share at the start */
    if (!prompt) {
      while (skip < nc - 1 && skip < nr - 1 && same_msg(cJSON_GetArrayItem(ch, skip), cJSON_GetArrayItem(rj, skip)))
        skip++;
      if (skip == 0) return tn_error(TN_ERR_FORMAT, "%s: no \"prompt\", and \"chosen\" and \"rejected\" share no leading messages", where);
    }
    const cJSON *tools = tn_json_field(j, "tools");
    if (o->format == TN_CHAT_AUTO && tn_tokenizer_chat_template(tok) &&
        (cJSON_IsArray(tools) || has_tool_turns(ch) || has_tool_turns(rj) || (cJSON_IsArray(prompt) && has_tool_turns(prompt)))) {
      cJSON *pm = cJSON_CreateArray();
      if (cJSON_IsString(prompt)) {
        cJSON *u = cJSON_CreateObject();
        cJSON_AddStringToObject(u, "role", "user");
        cJSON_AddItemReferenceToObject(u, "content", prompt);
        cJSON_AddItemToArray(pm, u);
      } else if (prompt) {
        cJSON *it;
        cJSON_ArrayForEach(it, prompt) cJSON_AddItemReferenceToArray(pm, it);
      } else {
        for (int i = 0; i < skip; i++) cJSON_AddItemReferenceToArray(pm, cJSON_GetArrayItem(ch, i));
      }
      tn_status s = cJSON_GetArraySize(pm) ? TN_OK : tn_error(TN_ERR_FORMAT, "%s: the prompt has no messages", where);
      for (int r = 0; r < 2 && s == TN_OK; r++) {
        cJSON *arr = r ? rj : ch, *tail = cJSON_CreateArray();
        const char *field = r ? "rejected" : "chosen";
        for (int i = skip; i < cJSON_GetArraySize(arr); i++) cJSON_AddItemReferenceToArray(tail, cJSON_GetArrayItem(arr, i));
        cJSON *last = cJSON_GetArrayItem(tail, cJSON_GetArraySize(tail) - 1);
        const cJSON *lr = last ? tn_json_field(last, "role") : NULL;
        if (!last) s = tn_error(TN_ERR_FORMAT, "%s: \"%s\" has no response message", where, field);
        else if (!cJSON_IsString(lr) || strcmp(lr->valuestring, "assistant"))
          s = tn_error(TN_ERR_FORMAT, "%s: the last message of \"%s\" must be the assistant's", where, field);
        else
          s = chat_tokens_json(tok, pm, tail, cJSON_IsArray(tools) ? tools : NULL, r ? NULL : bp, r ? br : bc, enc, where, field);
        cJSON_Delete(tail);
      }
      cJSON_Delete(pm);
      TN_TRY(s);
      goto truncate;
    }
    tn_chat_msg *m = calloc((size_t)(nP + nc + nr + 1), sizeof *m);
    if (!m) return tn_error(TN_ERR_NOMEM, "%s: out of memory", where);
    int k = 0;
    tn_status s = TN_OK;
    if (cJSON_IsString(prompt)) m[k++] = (tn_chat_msg){"user", prompt->valuestring, NULL};
    else if (prompt) s = add_msgs(prompt, m, &k, where, "prompt");
    else {
      for (int i = 0; i < skip; i++) {
        cJSON *it = cJSON_GetArrayItem(ch, i);
        m[k++] = (tn_chat_msg){tn_json_field(it, "role")->valuestring,
                               tn_json_field(it, "content")->valuestring, NULL};
      }
    }
    const int np = k;
    if (s == TN_OK && np == 0) s = tn_error(TN_ERR_FORMAT, "%s: the prompt has no messages", where);
    for (int r = 0; r < 2 && s == TN_OK; r++) {
      cJSON *arr = r ? rj : ch;
      k = np;
      /* the response's messages (after the implicit prompt) */
      cJSON *tail = cJSON_CreateArray();
      for (int i = skip; i < cJSON_GetArraySize(arr); i++) cJSON_AddItemReferenceToArray(tail, cJSON_GetArrayItem(arr, i));
      s = add_msgs(tail, m, &k, where, r ? "rejected" : "chosen");
      cJSON_Delete(tail);
      if (s == TN_OK && k == np) s = tn_error(TN_ERR_FORMAT, "%s: \"%s\" has no response message", where, r ? "rejected" : "chosen");
      if (s == TN_OK && strcmp(m[k - 1].role, "assistant") != 0)
        s = tn_error(TN_ERR_FORMAT, "%s: the last message of \"%s\" must be the assistant's (role \"%s\")", where,
                     r ? "rejected" : "chosen", m[k - 1].role);
      if (s == TN_OK) s = chat_tokens(tok, o, m, np, k - np, r ? NULL : bp, r ? br : bc, enc, where, r ? "rejected" : "chosen");
    }
    free(m);
    TN_TRY(s);
  } else {
    if (!cJSON_IsString(prompt) || !cJSON_IsString(ch) || !cJSON_IsString(rj))
      return tn_error(TN_ERR_FORMAT, "%s: \"prompt\", \"chosen\" and \"rejected\" must be strings (or message lists)", where);
    if (o->chat) {
      tn_chat_msg m[2] = {{"user", prompt->valuestring, NULL}, {"assistant", ch->valuestring, NULL}};
      TN_TRY(chat_tokens(tok, o, m, 1, 1, bp, bc, enc, where, "chosen"));
      m[1].content = rj->valuestring;
      TN_TRY(chat_tokens(tok, o, m, 1, 1, NULL, br, enc, where, "rejected"));
    } else {
      const int32_t eos = tn_tokenizer_eos_id(tok);
      TN_TRY(tn_tokenizer_encode(tok, prompt->valuestring, strlen(prompt->valuestring), true, enc));
      TN_TRY(ib_add(bp, enc->ids, (int)enc->n));
      for (int r = 0; r < 2; r++) {
        cJSON *x = r ? rj : ch;
        ibuf *b = r ? br : bc;
        TN_TRY(tn_tokenizer_encode(tok, x->valuestring, strlen(x->valuestring), false, enc));
        TN_TRY(ib_add(b, enc->ids, (int)enc->n));
        if (eos >= 0) TN_TRY(ib_add(b, &eos, 1));
      }
    }
  }
truncate:;
  /* truncation: the prompt keeps its end, responses their start */
  int np = bp->n, off = 0, nc = bc->n, nr = br->n;
  if (o->max_prompt_len > 0 && np > o->max_prompt_len) { off = np - o->max_prompt_len; np = o->max_prompt_len; set->n_prompt_truncated++; }
  bool rt = false;
  if (o->max_response_len > 0 && nc > o->max_response_len) { nc = o->max_response_len; rt = true; }
  if (o->max_response_len > 0 && nr > o->max_response_len) { nr = o->max_response_len; rt = true; }
  set->n_response_truncated += rt;
  if (np == 0) return tn_error(TN_ERR_FORMAT, "%s: the prompt has no tokens", where);
  if (nc == 0 || nr == 0) { set->n_dropped++; return TN_OK; }
  if (set->n == set->cap) {
    set->cap = set->cap ? 2 * set->cap : 256;
    tn_pref_pair *p = realloc(set->p, sizeof *p * set->cap);
    if (!p) return tn_error(TN_ERR_NOMEM, "out of memory loading preference pairs");
    set->p = p;
  }
  int32_t *pids = malloc(sizeof(int32_t) * (size_t)(np + nc + nr));
  if (!pids) return tn_error(TN_ERR_NOMEM, "out of memory loading preference pairs");
  tn_pref_pair *p = &set->p[set->n++];
  p->np = np;
  p->nc = nc;
  p->nr = nr;
  p->ids = pids;
  memcpy(p->ids, bp->ids + off, sizeof(int32_t) * np);
  memcpy(p->ids + np, bc->ids, sizeof(int32_t) * nc);
  memcpy(p->ids + np + nc, br->ids, sizeof(int32_t) * nr);
  const int L = np + (nc > nr ? nc : nr);
  if (L > set->max_len) set->max_len = L;
  return TN_OK;
}

typedef struct {
  tn_pref_set *set;
  const tn_tokenizer *tok;
  const tn_pref_data_opts *o;
  tn_encoding enc;
  ibuf bp, bc, br;
  int lines;
} load_ctx;

static tn_status load_line(void *ctx, cJSON *j, const char *where) {
  load_ctx *c = ctx;
  c->lines++;
  tn_status s = one_line(c->set, j, c->tok, c->o, where, &c->enc, &c->bp, &c->bc, &c->br);
  cJSON_Delete(j);
  return s;
}

tn_status tn_pref_load(tn_pref_set *set, const char *path, const tn_tokenizer *tok, const tn_pref_data_opts *o) {
  memset(set, 0, sizeof *set);
  load_ctx c = {.set = set, .tok = tok, .o = o};
  tn_status s = tn_data_read(path, TN_DATA_PREF, o->field_map, load_line, &c);
  free(c.bp.ids);
  free(c.bc.ids);
  free(c.br.ids);
  tn_encoding_free(&c.enc);
  if (s == TN_OK && set->n == 0) s = tn_error(TN_ERR_FORMAT, "%s: no usable preference pairs (%d JSON lines)", path, c.lines);
  if (s != TN_OK) tn_pref_free(set);
  return s;
}

void tn_pref_free(tn_pref_set *s) {
  for (int i = 0; i < s->n; i++) free(s->p[i].ids);
  free(s->p);
  memset(s, 0, sizeof *s);
}

tn_status tn_pref_split(tn_pref_set *d, tn_pref_set *eval, float frac, uint64_t seed) {
  memset(eval, 0, sizeof *eval);
  int ne = (int)(d->n * frac + 0.5f);
  if (frac <= 0 || ne == 0) return TN_OK;
  if (ne >= d->n) return tn_error(TN_ERR_ARG, "eval split %.3f leaves no training pairs (%d pairs)", frac, d->n);
  int *perm = malloc(sizeof(int) * d->n);
  char *is_eval = calloc(d->n, 1);
  eval->p = malloc(sizeof(tn_pref_pair) * ne);
  if (!perm || !is_eval || !eval->p) {
    free(perm);
    free(is_eval);
    free(eval->p);
    eval->p = NULL;
    return tn_error(TN_ERR_NOMEM, "out of memory splitting the preference pairs");
  }
  tn_permutation(perm, d->n, seed ^ 0x5eed5eedULL);
  for (int i = 0; i < ne; i++) is_eval[perm[i]] = 1;
  eval->cap = ne;
  eval->max_len = d->max_len;
  int w = 0;
  for (int i = 0; i < d->n; i++) {
    if (is_eval[i]) eval->p[eval->n++] = d->p[i];
    else d->p[w++] = d->p[i];
  }
  d->n = w;
  free(perm);
  free(is_eval);
  return TN_OK;
}
