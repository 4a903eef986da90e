/* api.c - the OpenAI-compatible routes of `tunic serve`: POST /v1/chat/completions,
 * POST /v1/completions, GET /v1/models, POST /v1/adapters, DELETE /v1/adapters/NAME.
 * Every request body is validated field by field (types, ranges, unknown fields, unknown models)
 * with OpenAI-style error objects {"error":{"message","type","param","code"}}; a chat is rendered
 * with the model's chat template (tools included), tool calls in the output are parsed into
 * tool_calls; responses, stream chunks and usage follow OpenAI's shapes.
 * Not for: sockets and streaming I/O (server.c), generation (sched.c). */
#define TN_SERVE_INTERNAL
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include "serve/serve.h"

static void verror(tn_http_reply *rp, int status, const char *type, const char *param, const char *code, const char *fmt,
                   va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  cJSON *e = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(e, "error");
  char *v = tn_utf8_valid_dup(msg);
  cJSON_AddStringToObject(o, "message", v ? v : "error");
  free(v);
  cJSON_AddStringToObject(o, "type", type);
  if (param) cJSON_AddStringToObject(o, "param", param);
  else cJSON_AddNullToObject(o, "param");
  if (code) cJSON_AddStringToObject(o, "code", code);
  else cJSON_AddNullToObject(o, "code");
  tn_http_reply_free(rp);
  rp->status = status;
  rp->body = cJSON_PrintUnformatted(e);
  rp->len = rp->body ? strlen(rp->body) : 0;
  cJSON_Delete(e);
}

void srv_error(tn_http_reply *rp, int status, const char *type, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(rp, status, type, NULL, code, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 5, 6)))
static void verror_p(tn_http_reply *rp, int status, const char *param, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(rp, status, "invalid_request_error", param, code, fmt, ap);
  va_end(ap);
}

/* 400 invalid_request_error naming the parameter */
__attribute__((format(printf, 4, 5)))
static int bad(tn_http_reply *rp, const char *param, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror(rp, 400, "invalid_request_error", param, code, fmt, ap);
  va_end(ap);
  return 1;
}

static void reply_json(tn_http_reply *rp, int status, cJSON *j) {
  tn_http_reply_free(rp);
  rp->status = status;
  rp->body = cJSON_PrintUnformatted(j);
  rp->len = rp->body ? strlen(rp->body) : 0;
  cJSON_Delete(j);
  if (!rp->body) srv_error(rp, 500, "server_error", NULL, "out of memory");
}

static const char *jtype(const cJSON *v) {
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "null";
}

static int wrong_type(tn_http_reply *rp, const char *name, const char *want, const cJSON *v) {
  return bad(rp, name, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.", name, want, jtype(v));
}

/* field helpers: 0 ok (absent leaves *out), 1 = error reply filled */
static int get_num(tn_http_reply *rp, const cJSON *b, const char *name, double lo, double hi, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, name);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsNumber(v)) return wrong_type(rp, name, "a number", v);
  if (!(v->valuedouble >= lo && v->valuedouble <= hi))
    return bad(rp, name, "invalid_value", "Invalid value for '%s': %g is outside [%g, %g].", name, v->valuedouble, lo, hi);
  *out = v->valuedouble;
  return 0;
}
static int get_int(tn_http_reply *rp, const cJSON *b, const char *name, long lo, long hi, long *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, name);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) return wrong_type(rp, name, "an integer", v);
  if (!(v->valuedouble >= lo && v->valuedouble <= hi))
    return bad(rp, name, "invalid_value", "Invalid value for '%s': %.0f is outside [%ld, %ld].", name, v->valuedouble, lo, hi);
  *out = (long)v->valuedouble;
  return 0;
}
static int get_bool(tn_http_reply *rp, const cJSON *b, const char *name, bool *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, name);
  if (!v || cJSON_IsNull(v)) return 0;
  if (!cJSON_IsBool(v)) return wrong_type(rp, name, "a boolean", v);
  *out = cJSON_IsTrue(v);
  return 0;
}

static int check_fields(tn_http_reply *rp, const cJSON *b, const char *const *known) {
  for (const cJSON *f = b->child; f; f = f->next) {
    bool ok = false;
    for (int i = 0; known[i] && !ok; i++) ok = !strcmp(f->string, known[i]);
    if (!ok) return bad(rp, f->string, "unknown_parameter", "Unrecognized request argument supplied: %s", f->string);
  }
  return 0;
}

/* ---- the model: a name, "auto" (route by category) ---- */
static int resolve_model(tn_server *sv, tn_http_reply *rp, const cJSON *b, const char *text, srv_req *r) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, "model");
  if (!v) return bad(rp, "model", "missing_required_parameter", "Missing required parameter: 'model'.");
  if (!cJSON_IsString(v)) return wrong_type(rp, "model", "a string", v);
  const char *name = v->valuestring;
  if (!strcmp(name, "auto")) {
    if (!sv->n_routes && !sv->route_default)
      return verror_p(rp, 404, "model", "model_not_found", "The model 'auto' needs a route file (tunic serve --route route.yaml)."), 1;
    const int k = srv_route_choose(sv, text ? text : "", r);
    if (k < 0) return srv_error(rp, 500, "server_error", "route_failed", "Routing the model 'auto' failed: %s", tn_last_error()), 1;
    name = k < sv->n_routes ? sv->routes[k].adapter : sv->route_default;
  }
  if (!strcmp(name, "base") || !strcmp(name, sv->model_name)) name = sv->ads[0]->name;
  r->ad = srv_adapter_get(sv, name);
  if (!r->ad) {
    verror_p(rp, 404, "model", "model_not_found", "The model '%s' does not exist (GET /v1/models lists the base and the adapters)", name);
    return 1;
  }
  r->model_name = strdup(r->ad == sv->ads[0] ? sv->model_name : name);
  return 0;
}

/* ---- sampling options shared by both endpoints ---- */
static int common_opts(tn_server *sv, tn_http_reply *rp, const cJSON *b, srv_req *r, int default_max, bool chat) {
  double t = 1.0, tp = 1.0, fp = 0, pp = 0;
  long n = 1, mt = default_max, seed = 0;
  if (get_num(rp, b, "temperature", 0, 2, &t) || get_num(rp, b, "top_p", 0, 1, &tp) ||
      get_int(rp, b, "n", 1, sv->o.slots, &n) || get_bool(rp, b, "stream", &r->stream) ||
      get_num(rp, b, "frequency_penalty", -2, 2, &fp) || get_num(rp, b, "presence_penalty", -2, 2, &pp))
    return 1;
  if (tp <= 0) return bad(rp, "top_p", "invalid_value", "Invalid value for 'top_p': must be in (0, 1].");
  const char *mtn = "max_tokens";
  if (chat && cJSON_GetObjectItemCaseSensitive(b, "max_completion_tokens")) mtn = "max_completion_tokens";
  if (get_int(rp, b, mtn, 1, 1L << 30, &mt)) return 1;
  if (mt > sv->o.max_tokens)
    return bad(rp, mtn, "invalid_value", "'%s' is %ld, more than this server allows per request (%d, --max-tokens).",
               mtn, mt, sv->o.max_tokens);
  const cJSON *sv_ = cJSON_GetObjectItemCaseSensitive(b, "seed");
  if (sv_ && !cJSON_IsNull(sv_)) {
    if (!cJSON_IsNumber(sv_) || sv_->valuedouble != floor(sv_->valuedouble)) return wrong_type(rp, "seed", "an integer", sv_);
    seed = (long)sv_->valuedouble;
    r->has_seed = true;
  }
  const cJSON *so = cJSON_GetObjectItemCaseSensitive(b, "stream_options");
  if (so && !cJSON_IsNull(so)) {
    if (!cJSON_IsObject(so)) return wrong_type(rp, "stream_options", "an object", so);
    for (const cJSON *f = so->child; f; f = f->next)
      if (strcmp(f->string, "include_usage"))
        return bad(rp, "stream_options", "unknown_parameter", "Unrecognized stream option: %s", f->string);
    if (get_bool(rp, so, "include_usage", &r->include_usage)) return 1;
  }
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(b, "stop");
  if (st && !cJSON_IsNull(st)) {
    const int k = cJSON_IsString(st) ? 1 : cJSON_IsArray(st) ? cJSON_GetArraySize(st) : -1;
    if (k < 0) return wrong_type(rp, "stop", "a string or an array of strings", st);
    if (k > 4) return bad(rp, "stop", "invalid_value", "'stop' holds at most 4 strings, not %d.", k);
    r->stop = calloc(k ? k : 1, sizeof *r->stop);
    if (!r->stop) return srv_error(rp, 500, "server_error", NULL, "out of memory"), 1;
    for (int i = 0; i < k; i++) {
      const cJSON *e = cJSON_IsString(st) ? st : cJSON_GetArrayItem(st, i);
      if (!cJSON_IsString(e)) return wrong_type(rp, "stop", "a string or an array of strings", e);
      r->stop[r->n_stop++] = strdup(e->valuestring);
    }
  }
  r->temperature = (float)t;
  r->top_p = (float)tp;
  r->frequency_penalty = (float)fp;
  r->presence_penalty = (float)pp;
  r->n = (int)n;
  r->max_tokens = (int)mt;
  r->seed = (uint64_t)seed;
  return 0;
}

/* ---- chat messages: validated and normalised (content parts joined, developer -> system) ---- */
static int norm_messages(tn_http_reply *rp, const cJSON *in, cJSON **out, char **last_user) {
  if (!in) return bad(rp, "messages", "missing_required_parameter", "Missing required parameter: 'messages'.");
  if (!cJSON_IsArray(in)) return wrong_type(rp, "messages", "an array", in);
  if (cJSON_GetArraySize(in) == 0) return bad(rp, "messages", "empty_array", "'messages' must hold at least one message.");
  cJSON *arr = cJSON_CreateArray();
  *out = arr;
  int i = 0;
  for (const cJSON *m = in->child; m; m = m->next, i++) {
    char pn[48];
    snprintf(pn, sizeof pn, "messages[%d]", i);
    if (!cJSON_IsObject(m)) return wrong_type(rp, pn, "an object", m);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    if (!cJSON_IsString(role)) return bad(rp, pn, "invalid_value", "'%s.role' must be a string (system, developer, user, assistant or tool).", pn);
    const char *rs = role->valuestring;
    if (strcmp(rs, "system") && strcmp(rs, "developer") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool"))
      return bad(rp, pn, "invalid_value", "Invalid value for '%s.role': '%s' (system, developer, user, assistant or tool).", pn, rs);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "role", !strcmp(rs, "developer") ? "system" : rs);
    for (const cJSON *f = m->child; f; f = f->next) {
      if (!strcmp(f->string, "role")) continue;
      if (!strcmp(f->string, "content")) {
        if (cJSON_IsNull(f)) { cJSON_AddStringToObject(o, "content", ""); continue; }
        if (cJSON_IsString(f)) { cJSON_AddStringToObject(o, "content", f->valuestring); continue; }
        if (!cJSON_IsArray(f)) return wrong_type(rp, pn, "a string or an array of content parts for content", f);
        srv_buf b = {0};
        for (const cJSON *p = f->child; p; p = p->next) {
          const cJSON *ty = cJSON_GetObjectItemCaseSensitive(p, "type"), *tx = cJSON_GetObjectItemCaseSensitive(p, "text");
          if (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx)) {
            free(b.p);
            return bad(rp, pn, "unsupported_content", "'%s.content': only parts {\"type\":\"text\",\"text\":...} are supported.", pn);
          }
          srv_buf_add(&b, tx->valuestring, strlen(tx->valuestring));
        }
        cJSON_AddStringToObject(o, "content", b.p ? b.p : "");
        free(b.p);
      } else if (!strcmp(f->string, "name") || !strcmp(f->string, "tool_call_id")) {
        if (!cJSON_IsString(f)) return wrong_type(rp, pn, "a string", f);
        cJSON_AddItemToObject(o, f->string, cJSON_Duplicate(f, 1));
      } else if (!strcmp(f->string, "tool_calls")) {
        if (!cJSON_IsArray(f)) return wrong_type(rp, pn, "an array for tool_calls", f);
        cJSON *tc = cJSON_Duplicate(f, 1);
        for (cJSON *c = tc->child; c; c = c->next) { /* arguments as an object for the templates */
          cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
          cJSON *a = fn ? cJSON_GetObjectItemCaseSensitive(fn, "arguments") : NULL;
          if (!cJSON_IsObject(fn) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fn, "name"))) {
            cJSON_Delete(tc);
            return bad(rp, pn, "invalid_value", "'%s.tool_calls': each needs function.name and function.arguments.", pn);
          }
          if (cJSON_IsString(a)) {
            cJSON *pa = cJSON_Parse(a->valuestring);
            if (cJSON_IsObject(pa)) cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", pa);
            else cJSON_Delete(pa);
          }
        }
        cJSON_AddItemToObject(o, "tool_calls", tc);
      } else if (!strcmp(f->string, "refusal") || !strcmp(f->string, "reasoning_content")) {
        if (cJSON_IsString(f)) cJSON_AddItemToObject(o, f->string, cJSON_Duplicate(f, 1));
      } else {
        return bad(rp, pn, "unknown_parameter", "Unrecognized field in %s: %s", pn, f->string);
      }
    }
    if (!cJSON_GetObjectItemCaseSensitive(o, "content")) cJSON_AddStringToObject(o, "content", "");
    if (!strcmp(rs, "user")) {
      free(*last_user);
      *last_user = strdup(cJSON_GetObjectItemCaseSensitive(o, "content")->valuestring);
    }
  }
  return 0;
}

static int check_tools(tn_http_reply *rp, const cJSON *tools) {
  if (!cJSON_IsArray(tools)) return wrong_type(rp, "tools", "an array", tools);
  int i = 0;
  for (const cJSON *t = tools->child; t; t = t->next, i++) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(t, "type"), *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
    if (!cJSON_IsObject(t) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "function") || !cJSON_IsObject(fn) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(fn, "name")))
      return bad(rp, "tools", "invalid_value", "tools[%d] must be {\"type\":\"function\",\"function\":{\"name\":...,\"parameters\":{...}}}.", i);
  }
  return 0;
}

static srv_req *req_new(tn_server *sv, int kind) {
  srv_req *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->kind = kind;
  r->refs = 1;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  pthread_mutex_lock(&sv->mu);
  long id = ++sv->next_id;
  pthread_mutex_unlock(&sv->mu);
  snprintf(r->id, sizeof r->id, "%s-%lx%06lx", kind == SRV_CHAT ? "chatcmpl" : "cmpl", (long)time(NULL), id);
  r->created = (long)time(NULL);
  r->t_arrive = tn_now();
  r->deadline = r->t_arrive + sv->o.timeout;
  return r;
}

/* choices and the limits that depend on the prompt lengths */
static int setup_choices(tn_server *sv, tn_http_reply *rp, srv_req *r) {
  for (int p = 0; p < r->n_prompts; p++) {
    r->prompt_tokens += r->plens[p];
    if (r->plens[p] + r->max_tokens > sv->o.ctx)
      return bad(rp, "messages", "context_length_exceeded",
                 "This model's context is %d tokens per sequence (--ctx); the prompt has %d tokens and max_tokens is %d.",
                 sv->o.ctx, r->plens[p], r->max_tokens);
  }
  r->n_ch = r->n_prompts * r->n;
  if (r->n_ch > sv->o.slots)
    return bad(rp, "n", "invalid_value", "%d prompts x n = %d choices is more than the server's %d slots (--slots).",
               r->n_prompts, r->n, sv->o.slots);
  r->ch = calloc((size_t)r->n_ch, sizeof *r->ch);
  if (!r->ch) return srv_error(rp, 500, "server_error", NULL, "out of memory"), 1;
  for (int i = 0; i < r->n_ch; i++) {
    r->ch[i].prompt = i / r->n;
    r->ch[i].index = i;
    r->ch[i].finish = -1;
    if (tn_detok_stream_new(sv->tok, true, &r->ch[i].ds) != TN_OK)
      return srv_error(rp, 500, "server_error", NULL, "%s", tn_last_error()), 1;
    if (r->logprobs) r->ch[i].lp = cJSON_CreateArray();
  }
  r->live = r->n_ch;
  return 0;
}

static int add_prompt(srv_req *r, const int32_t *ids, size_t n) {
  int **pp = realloc(r->prompts, sizeof *pp * (r->n_prompts + 1));
  int *pl = realloc(r->plens, sizeof *pl * (r->n_prompts + 1));
  if (pp) r->prompts = pp;
  if (pl) r->plens = pl;
  if (!pp || !pl) return -1;
  r->prompts[r->n_prompts] = malloc(sizeof(int) * (n ? n : 1));
  if (!r->prompts[r->n_prompts]) return -1;
  for (size_t i = 0; i < n; i++) r->prompts[r->n_prompts][i] = ids[i];
  r->plens[r->n_prompts++] = (int)n;
  return 0;
}

static int chat_request(tn_server *sv, const cJSON *b, tn_http_reply *rp, srv_req *r) {
  static const char *const known[] = {"model", "messages", "tools", "tool_choice", "stream", "stream_options",
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "n", "logprobs", "top_logprobs",
    "user", "frequency_penalty", "presence_penalty", "parallel_tool_calls", "chat_template_kwargs", NULL};
  if (check_fields(rp, b, known)) return 1;
  cJSON *msgs = NULL;
  char *last_user = NULL;
  int rc = norm_messages(rp, cJSON_GetObjectItemCaseSensitive(b, "messages"), &msgs, &last_user);
  if (!rc) rc = common_opts(sv, rp, b, r, sv->o.default_max_tokens, true);
  long top = 0;
  if (!rc) rc = get_bool(rp, b, "logprobs", &r->logprobs) || get_int(rp, b, "top_logprobs", 0, 20, &top);
  if (!rc && top && !r->logprobs) rc = bad(rp, "top_logprobs", "invalid_value", "'top_logprobs' needs 'logprobs': true.");
  r->top_logprobs = (int)top;
  const cJSON *tools = cJSON_GetObjectItemCaseSensitive(b, "tools"), *tc = cJSON_GetObjectItemCaseSensitive(b, "tool_choice");
  if (cJSON_IsNull(tools)) tools = NULL;
  if (!rc && tools) rc = check_tools(rp, tools);
  if (!rc && tc && !cJSON_IsNull(tc)) {
    if (cJSON_IsString(tc)) {
      if (strcmp(tc->valuestring, "none") && strcmp(tc->valuestring, "auto") && strcmp(tc->valuestring, "required"))
        rc = bad(rp, "tool_choice", "invalid_value", "Invalid value for 'tool_choice': '%s' (none, auto, required or a function).", tc->valuestring);
      else if (!strcmp(tc->valuestring, "none")) tools = NULL;
    } else if (!cJSON_IsObject(tc)) rc = wrong_type(rp, "tool_choice", "a string or an object", tc);
    if (!rc && tc && !tools && !cJSON_IsString(tc)) rc = bad(rp, "tool_choice", "invalid_value", "'tool_choice' names a function but no 'tools' are given.");
  }
  const cJSON *kw = cJSON_GetObjectItemCaseSensitive(b, "chat_template_kwargs");
  if (!rc && kw && !cJSON_IsObject(kw)) rc = wrong_type(rp, "chat_template_kwargs", "an object", kw);
  if (!rc) rc = resolve_model(sv, rp, b, last_user, r);
  free(last_user);
  if (!rc) {
    tn_chat_req q = {.messages = msgs, .tools = tools, .vars = kw, .add_generation_prompt = true};
    tn_chat_out out = {0};
    tn_encoding enc = {0};
    tn_status s = tn_chat_render_req(sv->tok, &q, &out);
    if (s == TN_OK) s = tn_tokenizer_encode(sv->tok, out.text, out.len, false, &enc);
    if (s != TN_OK) rc = bad(rp, "messages", "template_error", "the chat template could not render these messages: %s", tn_last_error());
    else if (enc.n == 0) rc = bad(rp, "messages", "invalid_value", "the messages render to no tokens");
    else if (add_prompt(r, enc.ids, enc.n)) rc = (srv_error(rp, 500, "server_error", NULL, "out of memory"), 1);
    if (!rc && tools) {
      r->tools = cJSON_Duplicate(tools, 1);
      r->tool_fmt = tn_tool_format_of_template(tn_chat_template_for(sv->tok, &q));
    }
    tn_chat_out_free(&out);
    tn_encoding_free(&enc);
  }
  if (!rc) {
    r->trace = cJSON_CreateObject();
    cJSON_AddItemToObject(r->trace, "messages", msgs);
    msgs = NULL;
    if (tools) cJSON_AddItemToObject(r->trace, "tools", cJSON_Duplicate(tools, 1));
  }
  cJSON_Delete(msgs);
  return rc ? rc : setup_choices(sv, rp, r);
}

static int completion_request(tn_server *sv, const cJSON *b, tn_http_reply *rp, srv_req *r) {
  static const char *const known[] = {"model", "prompt", "stream", "stream_options", "temperature", "top_p",
    "max_tokens", "stop", "seed", "n", "logprobs", "echo", "user", "frequency_penalty", "presence_penalty", "best_of",
    "suffix", NULL};
  if (check_fields(rp, b, known)) return 1;
  const cJSON *pr = cJSON_GetObjectItemCaseSensitive(b, "prompt");
  long lpn = -1, best = 1;
  if (!pr) return bad(rp, "prompt", "missing_required_parameter", "Missing required parameter: 'prompt'.");
  if (common_opts(sv, rp, b, r, 16, false) || get_int(rp, b, "logprobs", 0, 20, &lpn) || get_bool(rp, b, "echo", &r->echo) ||
      get_int(rp, b, "best_of", 1, 1, &best))
    return 1;
  const cJSON *sf = cJSON_GetObjectItemCaseSensitive(b, "suffix");
  if (sf && !cJSON_IsNull(sf)) return bad(rp, "suffix", "unsupported_value", "'suffix' is not supported by tunic serve.");
  if (r->echo && r->stream) return bad(rp, "echo", "unsupported_value", "'echo' with 'stream' is not supported.");
  r->logprobs = lpn >= 0;
  r->top_logprobs = lpn > 0 ? (int)lpn : 0;
  /* prompt: a string, an array of strings, an array of token ids, or an array of those */
  const char *first = NULL;
  int np = 0;
  const bool ids1 = cJSON_IsArray(pr) && pr->child && cJSON_IsNumber(pr->child);
  for (const cJSON *p = cJSON_IsString(pr) || ids1 ? pr : pr->child; p; p = (cJSON_IsString(pr) || ids1) ? NULL : p->next, np++) {
    if (np >= sv->o.slots) return bad(rp, "prompt", "invalid_value", "at most %d prompts per request", sv->o.slots);
    if (cJSON_IsString(p)) {
      tn_encoding enc = {0};
      if (!first) first = p->valuestring;
      tn_status s = tn_tokenizer_encode(sv->tok, p->valuestring, strlen(p->valuestring), true, &enc);
      if (s != TN_OK || enc.n == 0) { tn_encoding_free(&enc); return bad(rp, "prompt", "invalid_value", "prompt %d encodes to no tokens", np); }
      int e = add_prompt(r, enc.ids, enc.n);
      tn_encoding_free(&enc);
      if (e) return srv_error(rp, 500, "server_error", NULL, "out of memory"), 1;
    } else if (cJSON_IsArray(p) && p->child) {
      const int k = cJSON_GetArraySize(p);
      int32_t *ids = malloc(sizeof(int32_t) * k);
      int j = 0;
      for (const cJSON *t = p->child; ids && t; t = t->next, j++)
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 || t->valuedouble >= sv->m->cfg.V) {
          free(ids);
          return bad(rp, "prompt", "invalid_value", "prompt %d: token ids must be integers in [0, %d)", np, sv->m->cfg.V);
        } else ids[j] = (int32_t)t->valuedouble;
      int e = ids ? add_prompt(r, ids, k) : -1;
      free(ids);
      if (e) return srv_error(rp, 500, "server_error", NULL, "out of memory"), 1;
    } else {
      return wrong_type(rp, "prompt", "a string, an array of strings or an array of token ids", p);
    }
  }
  if (np == 0) return bad(rp, "prompt", "empty_array", "'prompt' must not be empty.");
  if (resolve_model(sv, rp, b, first, r)) return 1;
  r->trace = cJSON_CreateObject();
  if (first) cJSON_AddStringToObject(r->trace, "prompt", first);
  return setup_choices(sv, rp, r);
}

/* ---- responses ---- */
static const char *finish_name(int f) { return f == 0 ? "length" : "stop"; }

/* completions-style logprobs of entries [from, to) of lp */
static cJSON *lp_completion(const cJSON *lp, int from, int to, size_t off0) {
  cJSON *o = cJSON_CreateObject(), *tk = cJSON_AddArrayToObject(o, "tokens"), *tl = cJSON_AddArrayToObject(o, "token_logprobs"),
        *top = cJSON_AddArrayToObject(o, "top_logprobs"), *of = cJSON_AddArrayToObject(o, "text_offset");
  size_t off = off0;
  for (int i = from; i < to; i++) {
    const cJSON *e = cJSON_GetArrayItem(lp, i);
    const char *t = cJSON_GetObjectItemCaseSensitive(e, "token")->valuestring;
    cJSON_AddItemToArray(tk, cJSON_CreateString(t));
    cJSON_AddItemToArray(tl, cJSON_CreateNumber(cJSON_GetObjectItemCaseSensitive(e, "logprob")->valuedouble));
    cJSON *d = cJSON_CreateObject();
    for (const cJSON *x = cJSON_GetObjectItemCaseSensitive(e, "top_logprobs")->child; x; x = x->next)
      cJSON_AddNumberToObject(d, cJSON_GetObjectItemCaseSensitive(x, "token")->valuestring,
                              cJSON_GetObjectItemCaseSensitive(x, "logprob")->valuedouble);
    cJSON_AddItemToArray(top, d);
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    off += strlen(t);
  }
  return o;
}

static cJSON *lp_slice(const cJSON *lp, int from, int to) {
  cJSON *o = cJSON_CreateObject(), *c = cJSON_AddArrayToObject(o, "content");
  for (int i = from; i < to; i++) cJSON_AddItemToArray(c, cJSON_Duplicate(cJSON_GetArrayItem(lp, i), 1));
  cJSON_AddNullToObject(o, "refusal");
  return o;
}

/* the assistant message for generated text: content, tool_calls parsed when tools were given */
cJSON *srv_chat_message(const srv_req *r, const srv_choice *c, const char **finish) {
  cJSON *msg = cJSON_CreateObject();
  cJSON_AddStringToObject(msg, "role", "assistant");
  char *text = tn_utf8_valid_dup(c->text.p ? c->text.p : "");
  *finish = finish_name(c->finish);
  tn_tool_calls tc = {0};
  if (r->tools && text && tn_tool_calls_parse(text, strlen(text), r->tool_fmt, &tc) == TN_OK && tc.n > 0) {
    int good = 0;
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < tc.n; i++) {
      if (tc.calls[i].error || !tc.calls[i].name) continue;
      cJSON *o = cJSON_CreateObject(), *fn;
      char id[40];
      snprintf(id, sizeof id, "call_%s_%zu", r->id + (r->kind == SRV_CHAT ? 9 : 5), i);
      cJSON_AddStringToObject(o, "id", tc.calls[i].id ? tc.calls[i].id : id);
      cJSON_AddStringToObject(o, "type", "function");
      fn = cJSON_AddObjectToObject(o, "function");
      cJSON_AddStringToObject(fn, "name", tc.calls[i].name);
      cJSON_AddStringToObject(fn, "arguments", tc.calls[i].arguments ? tc.calls[i].arguments : "{}");
      cJSON_AddItemToArray(arr, o);
      good++;
    }
    if (good) {
      if (tc.content && *tc.content) cJSON_AddStringToObject(msg, "content", tc.content);
      else cJSON_AddNullToObject(msg, "content");
      cJSON_AddItemToObject(msg, "tool_calls", arr);
      *finish = "tool_calls";
    } else {
      cJSON_Delete(arr);
      cJSON_AddStringToObject(msg, "content", text);
    }
  } else {
    cJSON_AddStringToObject(msg, "content", text ? text : "");
  }
  cJSON_AddNullToObject(msg, "refusal");
  tn_tool_calls_free(&tc);
  free(text);
  return msg;
}

static cJSON *usage(const srv_req *r) {
  int ct = 0;
  for (int i = 0; i < r->n_ch; i++) ct += r->ch[i].ntok;
  cJSON *u = cJSON_CreateObject();
  cJSON_AddNumberToObject(u, "prompt_tokens", r->prompt_tokens);
  cJSON_AddNumberToObject(u, "completion_tokens", ct);
  cJSON_AddNumberToObject(u, "total_tokens", r->prompt_tokens + ct);
  return u;
}

static cJSON *head(const srv_req *r, const char *object) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", r->id);
  cJSON_AddStringToObject(o, "object", object);
  cJSON_AddNumberToObject(o, "created", (double)r->created);
  cJSON_AddStringToObject(o, "model", r->model_name ? r->model_name : "");
  cJSON_AddStringToObject(o, "system_fingerprint", "tunic-" TN_VERSION);
  if (r->route) cJSON_AddStringToObject(o, "tunic_route", r->route);
  if (r->route_by) cJSON_AddStringToObject(o, "tunic_route_by", r->route_by);
  if (r->route_by && !strcmp(r->route_by, "classifier")) cJSON_AddNumberToObject(o, "tunic_route_score", r->route_score);
  return o;
}

/* under r->mu */
char *srv_response_json(tn_server *sv, srv_req *r, int *status) {
  (void)sv;
  *status = 200;
  const bool chat = r->kind == SRV_CHAT;
  cJSON *o = head(r, chat ? "chat.completion" : "text_completion"), *chs = cJSON_AddArrayToObject(o, "choices");
  for (int i = 0; i < r->n_ch; i++) {
    srv_choice *c = &r->ch[i];
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", i);
    const char *fin = finish_name(c->finish);
    if (chat) {
      cJSON_AddItemToObject(ch, "message", srv_chat_message(r, c, &fin));
      if (c->lp) cJSON_AddItemToObject(ch, "logprobs", lp_slice(c->lp, 0, cJSON_GetArraySize(c->lp)));
      else cJSON_AddNullToObject(ch, "logprobs");
    } else {
      char *t = tn_utf8_valid_dup(c->text.p ? c->text.p : "");
      if (r->echo) {
        char *pt = NULL;
        size_t pl = 0;
        const int *ids = r->prompts[c->prompt];
        int32_t *ids32 = malloc(sizeof(int32_t) * r->plens[c->prompt]);
        for (int k = 0; ids32 && k < r->plens[c->prompt]; k++) ids32[k] = ids[k];
        if (ids32 && tn_tokenizer_decode(sv->tok, ids32, r->plens[c->prompt], true, &pt, &pl) == TN_OK) {
          srv_buf b = {0};
          srv_buf_add(&b, pt, pl);
          srv_buf_add(&b, t ? t : "", t ? strlen(t) : 0);
          free(t);
          t = tn_utf8_valid_dup(b.p);
          free(b.p);
        }
        free(pt); free(ids32);
      }
      cJSON_AddStringToObject(ch, "text", t ? t : "");
      free(t);
      if (c->lp) cJSON_AddItemToObject(ch, "logprobs", lp_completion(c->lp, 0, cJSON_GetArraySize(c->lp), 0));
      else cJSON_AddNullToObject(ch, "logprobs");
    }
    cJSON_AddStringToObject(ch, "finish_reason", fin);
    cJSON_AddItemToArray(chs, ch);
  }
  cJSON_AddItemToObject(o, "usage", usage(r));
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* one SSE chunk into r->sse (r->mu held). c NULL + final: the usage chunk. */
void srv_stream_delta(tn_server *sv, srv_req *r, srv_choice *c, const char *piece, size_t len, bool final) {
  (void)sv;
  const bool chat = r->kind == SRV_CHAT;
  cJSON *o = head(r, chat ? "chat.completion.chunk" : "text_completion"), *chs = cJSON_AddArrayToObject(o, "choices");
  if (!c) {
    cJSON_AddItemToObject(o, "usage", usage(r));
  } else if (chat && r->tools && !final) {
    cJSON_Delete(o); /* with tools the text is held back: it may be a tool call */
    return;
  } else {
    cJSON *ch = cJSON_CreateObject(), *d = NULL;
    cJSON_AddNumberToObject(ch, "index", c->index);
    const char *fin = NULL;
    srv_buf tmp = {0};
    if (final && !piece && c->text.n > c->sent) { piece = c->text.p + c->sent; len = c->text.n - c->sent; }
    if (chat) {
      d = cJSON_AddObjectToObject(ch, "delta");
      if (!c->began) cJSON_AddStringToObject(d, "role", "assistant");
      if (final && r->tools) {
        cJSON *msg = srv_chat_message(r, c, &fin);
        cJSON *tcs = cJSON_DetachItemFromObjectCaseSensitive(msg, "tool_calls");
        cJSON *ct = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (cJSON_IsString(ct)) cJSON_AddStringToObject(d, "content", ct->valuestring);
        int k = 0;
        for (cJSON *t = tcs ? tcs->child : NULL; t; t = t->next) cJSON_AddNumberToObject(t, "index", k++);
        if (tcs) cJSON_AddItemToObject(d, "tool_calls", tcs);
        cJSON_Delete(msg);
      } else if (len) {
        srv_buf_add(&tmp, piece, len);
        char *v = tn_utf8_valid_dup(tmp.p);
        cJSON_AddStringToObject(d, "content", v ? v : "");
        free(v);
      }
      const int nlp = c->lp ? cJSON_GetArraySize(c->lp) : 0;
      if (c->lp && nlp > (int)c->lp_sent) cJSON_AddItemToObject(ch, "logprobs", lp_slice(c->lp, (int)c->lp_sent, nlp));
      else cJSON_AddNullToObject(ch, "logprobs");
      c->lp_sent = nlp;
    } else {
      if (len) srv_buf_add(&tmp, piece, len);
      char *v = tn_utf8_valid_dup(tmp.p ? tmp.p : "");
      cJSON_AddStringToObject(ch, "text", v ? v : "");
      free(v);
      const int nlp = c->lp ? cJSON_GetArraySize(c->lp) : 0;
      if (c->lp && nlp > (int)c->lp_sent) cJSON_AddItemToObject(ch, "logprobs", lp_completion(c->lp, (int)c->lp_sent, nlp, c->sent));
      else cJSON_AddNullToObject(ch, "logprobs");
      c->lp_sent = nlp;
    }
    free(tmp.p);
    if (final) cJSON_AddStringToObject(ch, "finish_reason", fin ? fin : finish_name(c->finish));
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(chs, ch);
    c->began = true;
    if (piece) c->sent += len;
  }
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (s) {
    srv_buf_add(&r->sse, "data: ", 6);
    srv_buf_add(&r->sse, s, strlen(s));
    srv_buf_add(&r->sse, "\n\n", 2);
    free(s);
  }
}

/* the served conversation as a trace for the hook (--log-traces) */
void srv_trace(tn_server *sv, srv_req *r) {
  pthread_mutex_lock(&r->mu);
  cJSON *t = cJSON_CreateObject(), *md;
  cJSON_AddStringToObject(t, "source", "serve");
  cJSON_AddStringToObject(t, "model", r->model_name ? r->model_name : "");
  if (r->route) cJSON_AddStringToObject(t, "route", r->route);
  if (r->kind == SRV_CHAT && r->trace) {
    cJSON *msgs = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(r->trace, "messages"), 1);
    const char *fin;
    if (msgs && r->n_ch) {
      cJSON *m = srv_chat_message(r, &r->ch[0], &fin);
      cJSON_DeleteItemFromObjectCaseSensitive(m, "refusal");
      cJSON_AddItemToArray(msgs, m);
    }
    cJSON_AddItemToObject(t, "messages", msgs);
  } else if (r->trace) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r->trace, "prompt");
    cJSON_AddStringToObject(t, "prompt", cJSON_IsString(p) ? p->valuestring : "");
    char *v = tn_utf8_valid_dup(r->n_ch && r->ch[0].text.p ? r->ch[0].text.p : "");
    cJSON_AddStringToObject(t, "completion", v ? v : "");
    free(v);
  }
  md = cJSON_AddObjectToObject(t, "metadata");
  cJSON_AddStringToObject(md, "request_id", r->id);
  cJSON_AddItemToObject(md, "usage", usage(r));
  if (r->n_ch) cJSON_AddStringToObject(md, "finish_reason", finish_name(r->ch[0].finish));
  pthread_mutex_unlock(&r->mu);
  char *s = cJSON_PrintUnformatted(t);
  cJSON_Delete(t);
  if (s) sv->trace_fn(sv->trace_user, s);
  free(s);
}

/* ---- /v1/models and /v1/adapters ---- */
static void models(tn_server *sv, tn_http_reply *rp) {
  cJSON *o = cJSON_CreateObject(), *d;
  cJSON_AddStringToObject(o, "object", "list");
  d = cJSON_AddArrayToObject(o, "data");
  pthread_mutex_lock(&sv->mu);
  for (int i = 0; i < sv->n_ads; i++) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", i == 0 ? sv->model_name : sv->ads[i]->name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(long)sv->ads[i]->created);
    cJSON_AddStringToObject(m, "owned_by", "tunic");
    cJSON_AddStringToObject(m, "tunic_kind", i == 0 ? "base" : "adapter");
    if (sv->ads[i]->path) cJSON_AddStringToObject(m, "tunic_path", sv->ads[i]->path);
    cJSON_AddItemToArray(d, m);
  }
  if (sv->n_routes || sv->route_default) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", "auto");
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(long)sv->t_start);
    cJSON_AddStringToObject(m, "owned_by", "tunic");
    cJSON_AddStringToObject(m, "tunic_kind", "route");
    cJSON_AddItemToArray(d, m);
  }
  pthread_mutex_unlock(&sv->mu);
  reply_json(rp, 200, o);
}

static int adapters_post(tn_server *sv, const tn_http_request *rq, tn_http_reply *rp, cJSON *b) {
  static const char *const known[] = {"name", "path", NULL};
  (void)rq;
  if (check_fields(rp, b, known)) return 1;
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(b, "name"), *p = cJSON_GetObjectItemCaseSensitive(b, "path");
  if (!cJSON_IsString(n)) return n ? wrong_type(rp, "name", "a string", n) : bad(rp, "name", "missing_required_parameter", "Missing required parameter: 'name'.");
  if (!cJSON_IsString(p)) return p ? wrong_type(rp, "path", "a string", p) : bad(rp, "path", "missing_required_parameter", "Missing required parameter: 'path'.");
  tn_status s = tn_server_load_adapter(sv, n->valuestring, p->valuestring);
  if (s == TN_ERR_ARG) return bad(rp, "name", "invalid_value", "%s", tn_last_error());
  if (s != TN_OK) return bad(rp, "path", "adapter_load_failed", "%s", tn_last_error());
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "id", n->valuestring);
  cJSON_AddStringToObject(o, "object", "model");
  cJSON_AddStringToObject(o, "tunic_path", p->valuestring);
  reply_json(rp, 201, o);
  return 1;
}

int srv_api(tn_server *sv, const tn_http_request *rq, tn_http_reply *rp, srv_req **out) {
  *out = NULL;
  const bool get = !strcmp(rq->method, "GET"), post = !strcmp(rq->method, "POST"), del = !strcmp(rq->method, "DELETE");
  if (!strcmp(rq->path, "/v1/models")) {
    if (!get) return srv_error(rp, 405, "invalid_request_error", "method_not_allowed", "use GET /v1/models"), 1;
    models(sv, rp);
    return 1;
  }
  if (!strncmp(rq->path, "/v1/models/", 11) && get) {
    const char *name = rq->path + 11;
    srv_adapter *a = srv_adapter_get(sv, !strcmp(name, sv->model_name) ? sv->ads[0]->name : name);
    if (!a) return srv_error(rp, 404, "invalid_request_error", "model_not_found", "The model '%s' does not exist", name), 1;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)(long)a->created);
    cJSON_AddStringToObject(m, "owned_by", "tunic");
    srv_adapter_unref(sv, a);
    reply_json(rp, 200, m);
    return 1;
  }
  if (!strncmp(rq->path, "/v1/adapters/", 13) && del) {
    if (tn_server_unload_adapter(sv, rq->path + 13) != TN_OK)
      return srv_error(rp, 404, "invalid_request_error", "model_not_found", "%s", tn_last_error()), 1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", rq->path + 13);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddBoolToObject(o, "deleted", true);
    reply_json(rp, 200, o);
    return 1;
  }
  const bool chat = !strcmp(rq->path, "/v1/chat/completions"), cmpl = !strcmp(rq->path, "/v1/completions"),
             ads = !strcmp(rq->path, "/v1/adapters");
  if (ads && get) { models(sv, rp); return 1; }
  if (!chat && !cmpl && !ads) return 0;
  if (!post) return srv_error(rp, 405, "invalid_request_error", "method_not_allowed", "use POST %s", rq->path), 1;
  if (!rq->body || !rq->body_len) return bad(rp, NULL, "invalid_json", "The request body is empty: a JSON object is expected.");
  const char *end = NULL;
  cJSON *b = cJSON_ParseWithLengthOpts(rq->body, rq->body_len, &end, false);
  if (!b) {
    const long at = end ? (long)(end - rq->body) : (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - rq->body : 0);
    return bad(rp, NULL, "invalid_json", "We could not parse the JSON body of your request: malformed JSON near byte %ld.", at);
  }
  if (tn_json_nul_offset(rq->body, rq->body_len) >= 0) {
    cJSON_Delete(b);
    return bad(rp, NULL, "invalid_json", "The JSON body holds a NUL character.");
  }
  if (!cJSON_IsObject(b)) {
    cJSON_Delete(b);
    return bad(rp, NULL, "invalid_json", "The request body must be a JSON object, not %s.", jtype(b));
  }
  if (ads) {
    adapters_post(sv, rq, rp, b);
    cJSON_Delete(b);
    return 1;
  }
  srv_req *r = req_new(sv, chat ? SRV_CHAT : SRV_COMPLETION);
  if (!r) { cJSON_Delete(b); return srv_error(rp, 500, "server_error", NULL, "out of memory"), 1; }
  int rc = chat ? chat_request(sv, b, rp, r) : completion_request(sv, b, rp, r);
  cJSON_Delete(b);
  if (rc) { srv_req_unref(sv, r); return 1; }
  if (!srv_submit(sv, r)) {
    pthread_mutex_lock(&sv->mu);
    const bool stopping = sv->stopping;
    pthread_mutex_unlock(&sv->mu);
    srv_req_unref(sv, r);
    if (stopping) srv_error(rp, 503, "server_error", "shutting_down", "The server is stopping.");
    else {
      srv_error(rp, 429, "rate_limit_error", "rate_limit_exceeded",
                "Too many requests at once: this server runs at most %d (--max-requests); retry later.", sv->o.max_requests);
      rp->headers = strdup("Retry-After: 1\r\n");
    }
    return 1;
  }
  *out = r;
  return 2;
}
