/* prompts.c - prompt datasets for rollouts and eval (see prompts.h). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include "data/data.h"
#include "data/prompts.h"
#include "base/json.h"

const char *const TN_DEFAULT_SYSTEM_PROMPT =
  "You are given a problem. Think about the problem and provide your working out. Place it between <reasoning> and "
  "</reasoning>. Then, provide your final answer between <answer> and </answer>.";

static tn_status render(const tn_tokenizer *tok, const tn_prompt_opts *o, cJSON *j, const char *where, char **text,
                        tn_encoding *enc, bool *chat_ok) {
  const char *field = o->field ? o->field : "prompt";
  cJSON *pr = tn_json_field_mut(j, field), *msgs = tn_json_field_mut(j, "messages");
  const bool sys = o->system_prompt && *o->system_prompt;
  if (!cJSON_IsString(pr) && !cJSON_IsArray(msgs))
    return tn_error(TN_ERR_FORMAT, "%s: needs a string \"%s\" or a \"messages\" list", where, field);
  if (*chat_ok) {
    int nm = cJSON_IsArray(msgs) ? cJSON_GetArraySize(msgs) : 1;
    tn_chat_msg *m = calloc(nm + 1, sizeof *m);
    if (!m) return tn_error(TN_ERR_NOMEM, "%s: out of memory", where);
    int k = 0;
    bool has_sys = false;
    if (cJSON_IsArray(msgs)) {
      cJSON *it;
      cJSON_ArrayForEach(it, msgs) {
        cJSON *r = tn_json_field_mut(it, "role"), *c = tn_json_field_mut(it, "content");
        if (!cJSON_IsString(r) || !cJSON_IsString(c)) {
          free(m);
          return tn_error(TN_ERR_FORMAT, "%s: messages need string \"role\" and \"content\"", where);
        }
        has_sys |= !strcmp(r->valuestring, "system");
        m[k++] = (tn_chat_msg){r->valuestring, c->valuestring, NULL};
      }
    } else {
      m[k++] = (tn_chat_msg){"user", pr->valuestring, NULL};
    }
    if (sys && !has_sys) {
      memmove(m + 1, m, sizeof *m * k);
      m[0] = (tn_chat_msg){"system", o->system_prompt, NULL};
      k++;
    }
    tn_chat_opts co = {.format = o->chat, .add_generation_prompt = true, .enable_thinking = -1};
    tn_chat_out out = {0};
    tn_status s = tn_chat_render(tok, m, k, &co, &out);
    if (s == TN_OK) s = tn_chat_encode(tok, m, k, &co, enc);
    free(m);
    if (s != TN_OK) {
      tn_chat_out_free(&out);
      return tn_error_prefix(s, "%s", where);
    }
    *text = tn_strdup(out.text);
    tn_chat_out_free(&out);
    return *text ? TN_OK : tn_error(TN_ERR_NOMEM, "%s: out of memory", where);
  }
  if (!cJSON_IsString(pr)) return tn_error(TN_ERR_FORMAT, "%s: \"messages\" need a chat template (tokenizer has none)", where);
  size_t n = strlen(pr->valuestring) + (sys ? strlen(o->system_prompt) : 0) + 8;
  *text = malloc(n);
  if (!*text) return tn_error(TN_ERR_NOMEM, "%s: out of memory", where);
  snprintf(*text, n, "%s%s%s\n", sys ? o->system_prompt : "", sys ? "\n\n" : "", pr->valuestring);
  return tn_tokenizer_encode(tok, *text, strlen(*text), true, enc);
}

typedef struct {
  tn_prompt_set *s;
  const tn_tokenizer *tok;
  const tn_prompt_opts *o;
  bool chat_ok;
  int cap;
  tn_encoding enc;
} load_ctx;

static tn_status load_line(void *ctx, cJSON *j, const char *where) {
  load_ctx *c = ctx;
  char *text = NULL;
  tn_status st = render(c->tok, c->o, j, where, &text, &c->enc, &c->chat_ok);
  if (st != TN_OK) { cJSON_Delete(j); free(text); return st; }
  tn_prompt_set *s = c->s;
  int n = (int)c->enc.n, skip = 0;
  int32_t *ids = malloc(sizeof(int32_t) * (n ? n : 1));
  if (ids && s->n == c->cap) {
    tn_prompt *np = realloc(s->p, sizeof *s->p * (c->cap ? 2 * c->cap : 256));
    if (np) { s->p = np; c->cap = c->cap ? 2 * c->cap : 256; }
    else { free(ids); ids = NULL; }
  }
  if (!ids) { cJSON_Delete(j); free(text); return tn_error(TN_ERR_NOMEM, "%s: out of memory", where); }
  tn_prompt *pp = &s->p[s->n++];
  if (c->o->max_prompt_len > 0 && n > c->o->max_prompt_len) { skip = n - c->o->max_prompt_len; n = c->o->max_prompt_len; s->n_truncated++; }
  pp->json = j;
  pp->text = text;
  pp->n = n;
  pp->ids = ids;
  memcpy(pp->ids, c->enc.ids + skip, sizeof(int32_t) * n);
  return TN_OK;
}

tn_status tn_prompts_load(tn_prompt_set *s, const char *path, const tn_tokenizer *tok, const tn_prompt_opts *o) {
  memset(s, 0, sizeof *s);
  load_ctx c = {.s = s, .tok = tok, .o = o};
  c.chat_ok = !o->no_chat && (o->chat != TN_CHAT_AUTO || tn_tokenizer_chat_template(tok) != NULL);
  tn_error_clear();
  tn_status st = tn_data_read(path, TN_DATA_PROMPTS, o->field_map, load_line, &c);
  tn_encoding_free(&c.enc);
  if (st == TN_OK && s->n == 0) st = tn_error(TN_ERR_FORMAT, "%s: no prompts", path);
  if (st != TN_OK) tn_prompts_free(s);
  return st;
}

void tn_prompts_free(tn_prompt_set *s) {
  for (int i = 0; i < s->n; i++) { cJSON_Delete(s->p[i].json); free(s->p[i].text); free(s->p[i].ids); }
  free(s->p);
  memset(s, 0, sizeof *s);
}

bool tn_prompt_reference(const tn_prompt *p, char *buf, size_t n) {
  static const char *keys[] = {"answer", "expected_answer"};
  for (int k = 0; k < 2; k++) {
    cJSON *a = tn_json_field_mut(p->json, keys[k]);
    if (cJSON_IsString(a)) { snprintf(buf, n, "%s", a->valuestring); return true; }
    if (cJSON_IsNumber(a)) { snprintf(buf, n, "%.17g", a->valuedouble); return true; }
  }
  return false;
}
