/* chat_template.c - render conversations with the chat_template the model ships (Jinja), with
 * the variables transformers passes (messages, tools, documents, add_generation_prompt,
 * bos_token, eos_token, template kwargs), and find the assistant spans training masks come
 * from: {% generation %} blocks when the template has them, else by rendering prefixes of the
 * conversation. tn_chat_render (the plain-message API the trainers use) goes through here
 * when the tokenizer has a template and no built-in --chat-format was asked for.
 * Not for: the Jinja language (jinja_*.c), the built-in formats (chat_builtin.c). */
#define _GNU_SOURCE
#include "template/template.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "base/json.h"

/* ---- parsed templates, cached by text (renders do not modify a parsed template) ---- */
#define CACHE_N 16
static struct { char *text; tn_jinja *t; } cache[CACHE_N];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static tn_status get_template(const char *text, const char *name, tn_jinja **out, bool *owned) {
  *owned = false;
  pthread_mutex_lock(&cache_mu);
  for (int i = 0; i < CACHE_N && cache[i].text; i++)
    if (!strcmp(cache[i].text, text)) {
      *out = cache[i].t;
      pthread_mutex_unlock(&cache_mu);
      return TN_OK;
    }
  pthread_mutex_unlock(&cache_mu);
  TN_TRY(tn_jinja_parse(text, name, out));
  pthread_mutex_lock(&cache_mu);
  int slot = -1;
  for (int i = 0; i < CACHE_N; i++)
    if (!cache[i].text) { slot = i; break; }
  char *dup = slot >= 0 ? strdup(text) : NULL;
  if (dup) { cache[slot].text = dup; cache[slot].t = *out; }
  else *owned = true;
  pthread_mutex_unlock(&cache_mu);
  return TN_OK;
}

const char *tn_chat_template_for(const tn_tokenizer *tk, const tn_chat_req *q) {
  if (q->template_text) return q->template_text;
  if (!tk) { tn_error(TN_ERR_ARG, "no tokenizer and no template"); return NULL; }
  if (q->tools && cJSON_GetArraySize(q->tools) > 0 && tk->chat_template_tool) return tk->chat_template_tool;
  if (tk->chat_template) return tk->chat_template;
  tn_error(TN_ERR_UNSUPPORTED,
           "%s: no chat_template in tokenizer_config.json (nor chat_template.jinja); give one with --chat-template "
           "FILE.jinja, or a built-in format with --chat-format gemma|chatml|llama3",
           tk->name);
  return NULL;
}

/* the variables transformers' apply_chat_template passes */
/* add item to an object (name) or an array (name NULL); when cJSON cannot add it (out of memory)
 * the item is deleted instead of leaked (the render then fails: tn_alloc_failures counts it) */
static void add_owned(cJSON *to, const char *name, cJSON *item) {
  if (item && !(name ? cJSON_AddItemToObject(to, name, item) : cJSON_AddItemToArray(to, item))) cJSON_Delete(item);
}

/* a reference to item (as cJSON's AddItemReference* make: a shallow copy flagged IsReference, so
 * deleting it leaves the item's children and strings alone) */
static cJSON *ref_of(const cJSON *item) {
  cJSON *r = cJSON_CreateNull();
  if (!r) return NULL;
  *r = *item;
  r->string = NULL;
  r->next = r->prev = NULL;
  r->type |= cJSON_IsReference;
  return r;
}

static cJSON *make_vars(const tn_tokenizer *tk, const tn_chat_req *q, const cJSON *messages, bool gen) {
  cJSON *v = cJSON_CreateObject();
  if (!v) return NULL;
  if (q->vars) /* kwargs first, so the named ones below win as in transformers */
    for (const cJSON *c = q->vars->child; c; c = c->next) add_owned(v, c->string, cJSON_Duplicate(c, 1));
  cJSON_DeleteItemFromObject(v, "messages");
  add_owned(v, "messages", ref_of(messages));
  if (q->tools) { cJSON_DeleteItemFromObject(v, "tools"); add_owned(v, "tools", ref_of(q->tools)); }
  if (q->documents) { cJSON_DeleteItemFromObject(v, "documents"); add_owned(v, "documents", ref_of(q->documents)); }
  cJSON_DeleteItemFromObject(v, "add_generation_prompt");
  cJSON_AddBoolToObject(v, "add_generation_prompt", gen);
  if (tk && !cJSON_HasObjectItem(v, "bos_token")) cJSON_AddStringToObject(v, "bos_token", tk->bos_str ? tk->bos_str : "");
  if (tk && !cJSON_HasObjectItem(v, "eos_token")) cJSON_AddStringToObject(v, "eos_token", tk->eos_str ? tk->eos_str : "");
  return v;
}

static tn_status render_once(const tn_tokenizer *tk, const tn_chat_req *q, const tn_jinja *t, const cJSON *messages, bool gen,
                             tn_jinja_result *res) {
  cJSON *v = make_vars(tk, q, messages, gen);
  if (!v) return tn_error(TN_ERR_NOMEM, "out of memory");
  tn_status s = tn_jinja_render(t, v, NULL, res);
  cJSON_Delete(v);
  return s;
}

/* messages[0..n) as a new array that references the items (free with cJSON_Delete) */
static cJSON *prefix(const cJSON *messages, int n) {
  cJSON *a = cJSON_CreateArray();
  int i = 0;
  for (const cJSON *c = messages->child; a && c && i < n; c = c->next, i++) add_owned(a, NULL, ref_of(c));
  return a;
}

static const char *role_of(const cJSON *m) {
  const cJSON *r = tn_json_field(m, "role");
  return cJSON_IsString(r) ? r->valuestring : "";
}

/* Plain messages (string content, no tool calls) as tn_chat_msg for the built-in cache; false if not plain. */
static bool as_plain(const cJSON *messages, tn_chat_msg **out, size_t *n) {
  size_t k = (size_t)cJSON_GetArraySize(messages), i = 0;
  tn_chat_msg *m = calloc(k ? k : 1, sizeof *m);
  if (!m) return false;
  for (const cJSON *c = messages->child; c; c = c->next, i++) {
    const cJSON *content = tn_json_field(c, "content");
    const cJSON *rc = tn_json_field(c, "reasoning_content");
    if (!cJSON_IsString(content) || cJSON_HasObjectItem(c, "tool_calls")) { free(m); return false; }
    m[i] = (tn_chat_msg){role_of(c), content->valuestring, cJSON_IsString(rc) ? rc->valuestring : NULL};
  }
  *out = m;
  *n = k;
  return true;
}

static size_t rtrim_ws(const char *s, size_t start, size_t end) {
  while (end > start && (s[end - 1] == '\n' || s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\r')) end--;
  return end;
}

static tn_status add_span(tn_chat_out *o, size_t *cap, size_t s, size_t e) {
  if (o->n_spans == *cap) {
    size_t nc = *cap ? 2 * *cap : 8;
    tn_span *ns = realloc(o->spans, nc * sizeof *ns);
    if (!ns) return tn_error(TN_ERR_NOMEM, "out of memory");
    o->spans = ns;
    *cap = nc;
  }
  o->spans[o->n_spans++] = (tn_span){s, e};
  return TN_OK;
}

/* the marker that ends an assistant turn: the built-in format's, else the eos token */
static const char *end_of_turn(const tn_tokenizer *tk, const char *text) {
  if (text && strstr(text, "<start_of_turn>")) return "<end_of_turn>";
  if (text && strstr(text, "<|im_start|>")) return "<|im_end|>";
  if (text && strstr(text, "<|start_header_id|>")) return "<|eot_id|>";
  if (text && strstr(text, "<|end|>") && strstr(text, "<|return|>")) return "<|end|>"; /* harmony */
  return tk && tk->eos_str && *tk->eos_str ? tk->eos_str : NULL;
}

/* Spans by prefixes: assistant message i starts where render(messages[:i], generation prompt)
 * ends and ends where render(messages[:i+1]) ends (trailing whitespace excluded); both must be prefixes
 * of the whole rendering. A template that appends the assistant header whatever
 * add_generation_prompt says (Llama-3.0) leaves that header at the end of the second rendering:
 * the span then ends at the last end-of-turn marker inside it. Returns in *bad the index of the
 * first message where the template is not prefix-preserving, or -1 when all were. */
static tn_status spans_by_prefix(const tn_tokenizer *tk, const tn_chat_req *q, const tn_jinja *t, const char *text,
                                 const cJSON *messages, tn_chat_out *o, int *bad) {
  size_t cap = 0;
  const char *eot = end_of_turn(tk, text);
  size_t el = eot ? strlen(eot) : 0;
  int i = 0;
  *bad = -1;
  for (const cJSON *c = messages->child; c; c = c->next, i++) {
    if (strcmp(role_of(c), "assistant")) continue;
    tn_jinja_result p = {0}, f = {0};
    cJSON *pa = prefix(messages, i), *fa = prefix(messages, i + 1);
    tn_status s = pa && fa ? TN_OK : tn_error(TN_ERR_NOMEM, "out of memory");
    if (s == TN_OK) s = render_once(tk, q, t, pa, true, &p);
    if (s == TN_OK) s = render_once(tk, q, t, fa, false, &f);
    cJSON_Delete(pa);
    cJSON_Delete(fa);
    if (s != TN_OK) s = tn_error_prefix(s, "rendering messages[:%d] to find the assistant's tokens", i + 1);
    if (s == TN_OK) {
      bool ok = p.len <= f.len && f.len <= o->len && !memcmp(o->text, p.text, p.len) && !memcmp(o->text, f.text, f.len);
      if (!ok) {
        *bad = i;
      } else {
        size_t en = rtrim_ws(o->text, p.len, f.len);
        for (size_t k = en; el && k >= p.len + el; k--)
          if (!memcmp(o->text + k - el, eot, el)) { en = k; break; }
        s = add_span(o, &cap, p.len, en);
      }
    }
    tn_jinja_result_free(&p);
    tn_jinja_result_free(&f);
    if (s != TN_OK) return s;
    if (*bad >= 0) return TN_OK;
  }
  return TN_OK;
}

/* Not prefix-preserving (Qwen3 renders the last assistant turn with a <think> block, earlier
 * ones without; with enable_thinking=false its generation prompt carries an empty <think> block):
 * assistant turn i starts where the whole rendering stops agreeing with render(messages[:i],
 * generation prompt) - at least after render(messages[:i]), which must be a prefix - and ends at
 * the first end-of-turn marker after that. */
static tn_status spans_by_marker(const tn_tokenizer *tk, const tn_chat_req *q, const tn_jinja *t, const char *text,
                                 const cJSON *messages, tn_chat_out *o, int bad) {
  const char *eot = end_of_turn(tk, text);
  if (!eot)
    return tn_error(TN_ERR_UNSUPPORTED,
                    "chat template is not prefix-preserving at message %d (rendering messages[:%d] alone is not the "
                    "start of the whole conversation) and has no {%% generation %%} blocks, so tunic cannot tell which "
                    "tokens are the assistant's; add {%% generation %%}...{%% endgeneration %%} around assistant "
                    "replies (--chat-template FILE.jinja)", bad, bad + 1);
  size_t cap = 0, el = strlen(eot);
  free(o->spans);
  o->spans = NULL;
  o->n_spans = 0;
  int i = 0;
  size_t after = 0;
  for (const cJSON *c = messages->child; c; c = c->next, i++) {
    if (strcmp(role_of(c), "assistant")) continue;
    tn_jinja_result p = {0}, r0 = {0};
    cJSON *pa = prefix(messages, i);
    tn_status s = pa ? render_once(tk, q, t, pa, true, &p) : tn_error(TN_ERR_NOMEM, "out of memory");
    if (s == TN_OK) s = render_once(tk, q, t, pa, false, &r0);
    cJSON_Delete(pa);
    if (s != TN_OK) {
      tn_jinja_result_free(&p);
      return tn_error_prefix(s, "rendering messages[:%d] to find the assistant's tokens", i);
    }
    size_t st = 0;
    while (st < p.len && st < o->len && p.text[st] == o->text[st]) st++;
    bool ok = r0.len <= o->len && !memcmp(o->text, r0.text, r0.len) && st >= r0.len && st >= after;
    tn_jinja_result_free(&p);
    tn_jinja_result_free(&r0);
    if (!ok)
      return tn_error(TN_ERR_UNSUPPORTED,
                      "chat template is not prefix-preserving at message %d: rendering messages[:%d] is not the start of "
                      "the whole conversation, so the assistant tokens cannot be found; add {%% generation %%} blocks "
                      "(--chat-template FILE.jinja)", i, i);
    const char *e = memmem(o->text + st, o->len - st, eot, el);
    size_t en = e ? (size_t)(e - o->text) + el : rtrim_ws(o->text, st, o->len);
    TN_TRY(add_span(o, &cap, st, en));
    after = en;
  }
  return TN_OK;
}

static tn_status render_req(const tn_tokenizer *tk, const tn_chat_req *q, tn_chat_out *out) {
  memset(out, 0, sizeof *out);
  if (!q || !cJSON_IsArray(q->messages)) return tn_error(TN_ERR_ARG, "chat: messages must be a JSON array");
  int mi = 0;
  for (const cJSON *c = q->messages->child; c; c = c->next, mi++) {
    if (!cJSON_IsObject(c) || !cJSON_IsString(tn_json_field(c, "role")))
      return tn_error(TN_ERR_ARG, "chat: messages[%d] must be an object with a string \"role\"", mi);
    const cJSON *content = tn_json_field(c, "content");
    bool calls = cJSON_IsArray(tn_json_field(c, "tool_calls"));
    if (!(cJSON_IsString(content) || cJSON_IsArray(content) || (calls && (!content || cJSON_IsNull(content)))))
      return tn_error(TN_ERR_ARG,
                      "chat: messages[%d] (%s) needs \"content\": a string or a list of parts (null or absent only "
                      "with \"tool_calls\")", mi, tn_json_field(c, "role")->valuestring);
  }
  const char *text = tn_chat_template_for(tk, q);
  if (!text) return TN_ERR_UNSUPPORTED;
  tn_jinja *t;
  bool owned;
  const char *name = q->template_name  ? q->template_name
                     : tk && tk->chat_template_src ? tk->chat_template_src
                     : tk                          ? tk->name
                                                   : "chat_template";
  TN_TRY(get_template(text, name, &t, &owned));
  tn_jinja_result res;
  tn_status s = render_once(tk, q, t, q->messages, q->add_generation_prompt, &res);
  if (s == TN_OK) {
    out->text = res.text;
    out->len = res.len;
    if (q->spans && tn_jinja_has_generation(t)) {
      out->spans = calloc(res.n_gen ? res.n_gen : 1, sizeof *out->spans);
      if (!out->spans) s = tn_error(TN_ERR_NOMEM, "out of memory");
      for (size_t i = 0; s == TN_OK && i < res.n_gen; i++) out->spans[i] = (tn_span){res.gen[i].start, res.gen[i].end};
      out->n_spans = res.n_gen;
    } else if (q->spans) {
      int bad;
      s = spans_by_prefix(tk, q, t, text, q->messages, out, &bad);
      if (s == TN_OK && bad >= 0) {
        /* the built-in renderer, when its text is this text, knows the spans */
        tn_chat_msg *pm;
        size_t pn;
        bool used = false;
        if (tk && !q->template_text && !q->tools && !q->documents && as_plain(q->messages, &pm, &pn)) {
          int think = -1;
          const cJSON *et = q->vars ? tn_json_field(q->vars, "enable_thinking") : NULL;
          if (cJSON_IsBool(et)) think = cJSON_IsTrue(et);
          tn_chat_opts co = {.add_generation_prompt = q->add_generation_prompt, .enable_thinking = think};
          tn_chat_out bo;
          if (tn_chat_render_builtin(tk, pm, pn, &co, &bo) == TN_OK) {
            if (bo.len == out->len && !memcmp(bo.text, out->text, bo.len)) {
              free(out->spans);
              out->spans = bo.spans;
              out->n_spans = bo.n_spans;
              bo.spans = NULL;
              used = true;
            }
            tn_chat_out_free(&bo);
          } else {
            tn_error_clear();
          }
          free(pm);
        }
        if (!used) s = spans_by_marker(tk, q, t, text, q->messages, out, bad);
      }
    }
    free(res.gen);
    if (s != TN_OK) tn_chat_out_free(out);
  }
  if (owned) tn_jinja_free(t);
  return s;
}

/* cJSON drops an item silently when an allocation fails: any failure counted during the render
 * (the request's JSON, the template's values) makes the whole render an out-of-memory error */
tn_status tn_chat_render_req(const tn_tokenizer *tk, const tn_chat_req *q, tn_chat_out *out) {
  const long f0 = tn_alloc_failures();
  tn_status s = render_req(tk, q, out);
  if (s == TN_OK && tn_alloc_failures() != f0) {
    tn_chat_out_free(out);
    s = tn_error(TN_ERR_NOMEM, "chat template: out of memory");
  }
  return s;
}

/* ---- the plain-message API (trainers, eval, generate) ---- */
tn_status tn_chat_render(const tn_tokenizer *tk, const tn_chat_msg *msgs, size_t n, const tn_chat_opts *opts,
                         tn_chat_out *out) {
  memset(out, 0, sizeof *out);
  if (!tk || (!msgs && n)) return tn_error(TN_ERR_ARG, "tn_chat_render: NULL argument");
  if ((opts && opts->format != TN_CHAT_AUTO) || !tk->chat_template) return tn_chat_render_builtin(tk, msgs, n, opts, out);
  const long f0 = tn_alloc_failures();
  cJSON *arr = cJSON_CreateArray(), *vars = cJSON_CreateObject();
  tn_status s = arr && vars ? TN_OK : tn_error(TN_ERR_NOMEM, "out of memory");
  for (size_t i = 0; s == TN_OK && i < n; i++) {
    if (!msgs[i].role) { s = tn_error(TN_ERR_ARG, "chat: message %zu has no role", i); break; }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", msgs[i].role);
    cJSON_AddStringToObject(m, "content", msgs[i].content ? msgs[i].content : "");
    if (msgs[i].reasoning) cJSON_AddStringToObject(m, "reasoning_content", msgs[i].reasoning);
    cJSON_AddItemToArray(arr, m);
  }
  if (s == TN_OK && opts && opts->enable_thinking >= 0) cJSON_AddBoolToObject(vars, "enable_thinking", opts->enable_thinking);
  if (s == TN_OK && tn_alloc_failures() != f0) s = tn_error(TN_ERR_NOMEM, "chat: out of memory");
  if (s == TN_OK) {
    tn_chat_req q = {.messages = arr, .vars = vars, .add_generation_prompt = opts && opts->add_generation_prompt, .spans = true};
    s = tn_chat_render_req(tk, &q, out);
  }
  cJSON_Delete(arr);
  cJSON_Delete(vars);
  return s;
}
