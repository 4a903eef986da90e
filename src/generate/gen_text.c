/* gen_text.c - generation with text in and text out (tunic/generate.h): prompts encoded
 * with the model's tokenizer, each sample decoded as it grows (a streaming detokenizer per
 * sample), stopped when its text contains a stop string and cut before it, each new piece of
 * text handed to the caller's callback. The sampling itself is tn_generate's.
 * Not for: chat rendering (tn_chat_encode gives the ids; tn_generate takes ids). */
#include <stdlib.h>
#include <string.h>
#include "base/base.h"
#include "generate/generate.h"

typedef struct {
  const tn_text_opts *t;
  int n;                   /* samples per prompt */
  int first;               /* the callbacks' index of prompt 0 (tn_gen_opts.first_prompt) */
  tn_detok_stream **ds;    /* (slots) */
  char **text;             /* (slots) text so far */
  size_t *len, *cap;
  size_t *sent;            /* (slots) bytes already handed to on_text */
  tn_status err;
} text_ctx;

static const char *find_stop(const text_ctx *c, const char *s) {
  const char *first = NULL;
  for (int i = 0; s && i < c->t->n_stop; i++) {
    const char *h = c->t->stop[i] && *c->t->stop[i] ? strstr(s, c->t->stop[i]) : NULL;
    if (h && (!first || h < first)) first = h;
  }
  return first;
}

static bool append(text_ctx *c, int k, const char *p, size_t l) {
  if (c->len[k] + l + 1 > c->cap[k]) {
    size_t nc = (c->len[k] + l + 1) * 2;
    char *b = realloc(c->text[k], nc);
    if (!b) return false;
    c->text[k] = b, c->cap[k] = nc;
  }
  memcpy(c->text[k] + c->len[k], p, l);
  c->len[k] += l;
  c->text[k][c->len[k]] = 0;
  return true;
}

/* hand on the text that can no longer turn into a stop string: all of it but the last
 * (longest stop - 1) bytes, or up to a stop string found */
static void emit(text_ctx *c, int prompt, int sample, bool final) {
  const int k = (prompt - c->first) * c->n + sample;
  if (!c->t->on_text || !c->text[k]) return;
  const char *st = find_stop(c, c->text[k]);
  size_t upto = st ? (size_t)(st - c->text[k]) : c->len[k];
  if (!st && !final) {
    size_t hold = 0;
    for (int i = 0; i < c->t->n_stop; i++) {
      size_t l = c->t->stop[i] ? strlen(c->t->stop[i]) : 0;
      if (l > hold + 1) hold = l - 1;
    }
    upto = upto > hold ? upto - hold : 0;
    while (upto > c->sent[k] && upto < c->len[k] && (c->text[k][upto] & 0xC0) == 0x80) upto--; /* whole characters */
  }
  if (upto > c->sent[k]) c->t->on_text(c->t->user, prompt, sample, c->text[k] + c->sent[k], upto - c->sent[k]);
  if (upto > c->sent[k]) c->sent[k] = upto;
}

static void on_token(void *ctx, int prompt, int sample, int token) {
  text_ctx *c = ctx;
  const int k = (prompt - c->first) * c->n + sample;
  const char *p;
  size_t l;
  if (c->err != TN_OK) return;
  if (tn_detok_stream_push(c->ds[k], token, &p, &l) != TN_OK) { c->err = TN_ERR_FORMAT; return; }
  if (l && !append(c, k, p, l)) { c->err = tn_error(TN_ERR_NOMEM, "generate: out of memory for the text"); return; }
  emit(c, prompt, sample, false);
}

static bool stop_fn(void *ctx, int prompt, int sample, const int *ids, int n) {
  text_ctx *c = ctx;
  (void)ids, (void)n;
  const int k = (prompt - c->first) * c->n + sample;
  return c->err != TN_OK || find_stop(c, c->text[k]) != NULL;
}

void tn_text_opts_default(tn_text_opts *t) {
  memset(t, 0, sizeof *t);
  t->add_special = true;
  t->skip_special = true;
}

tn_status tn_generate_text(const tn_model *m, const tn_tokenizer *tok, const char *const *prompts, int n_prompts,
                           const tn_gen_opts *g, const tn_text_opts *t, tn_text_result *out) {
  if (!m || !tok || !prompts || n_prompts <= 0 || !g || !out)
    return tn_error(TN_ERR_ARG, "generate_text: model, tokenizer, at least one prompt, options and results are required");
  tn_text_opts td;
  if (!t) tn_text_opts_default(&td), t = &td;
  tn_status s = TN_OK;
  tn_encoding *enc = calloc((size_t)n_prompts, sizeof *enc); /* zeroed: empty encodings */
  const int **ids = calloc((size_t)n_prompts, sizeof *ids);
  int *lens = calloc((size_t)n_prompts, sizeof *lens);
  if (!enc || !ids || !lens) s = tn_error(TN_ERR_NOMEM, "generate_text: out of memory");
  for (int p = 0; p < n_prompts && s == TN_OK; p++) {
    if (!prompts[p]) { s = tn_error(TN_ERR_ARG, "generate_text: prompt %d is NULL", p); break; }
    s = tn_tokenizer_encode(tok, prompts[p], strlen(prompts[p]), t->add_special, &enc[p]);
    if (s == TN_OK && enc[p].n == 0) s = tn_error(TN_ERR_ARG, "generate_text: prompt %d encodes to no tokens", p);
    if (s == TN_OK) {
      ids[p] = (const int *)enc[p].ids;
      lens[p] = (int)enc[p].n;
    }
  }
  if (s == TN_OK) s = tn_generate_text_ids(m, tok, ids, lens, n_prompts, g, t, out);
  for (int p = 0; enc && p < n_prompts; p++) tn_encoding_free(&enc[p]);
  free(enc), free(ids), free(lens);
  return s;
}

tn_status tn_generate_text_ids(const tn_model *m, const tn_tokenizer *tok, const int *const *prompts, const int *plens,
                               int n_prompts, const tn_gen_opts *g, const tn_text_opts *t, tn_text_result *out) {
  if (!m || !tok || !prompts || !plens || n_prompts <= 0 || !g || !out)
    return tn_error(TN_ERR_ARG, "generate_text: model, tokenizer, at least one prompt, options and results are required");
  if (g->n <= 0) return tn_error(TN_ERR_ARG, "generate_text: n (samples per prompt) must be >= 1, not %d", g->n);
  tn_text_opts td;
  if (!t) tn_text_opts_default(&td), t = &td;
  const int slots = n_prompts * g->n;
  memset(out, 0, sizeof *out * (size_t)slots);
  tn_status s = TN_OK;
  tn_gen_result *res = calloc((size_t)slots, sizeof *res);
  text_ctx c = {.t = t, .n = g->n, .first = g->first_prompt, .ds = calloc((size_t)slots, sizeof *c.ds),
                .text = calloc((size_t)slots, sizeof *c.text), .len = calloc((size_t)slots, sizeof *c.len),
                .cap = calloc((size_t)slots, sizeof *c.cap), .sent = calloc((size_t)slots, sizeof *c.sent)};
  if (!res || !c.ds || !c.text || !c.len || !c.cap || !c.sent) {
    s = tn_error(TN_ERR_NOMEM, "generate_text: out of memory");
    goto done;
  }
  for (int k = 0; k < slots && s == TN_OK; k++) s = tn_detok_stream_new(tok, t->skip_special, &c.ds[k]);
  if (s != TN_OK) goto done;
  tn_gen_opts o = *g;
  o.on_token = on_token;
  o.stop_fn = t->n_stop > 0 ? stop_fn : NULL;
  o.ctx = &c;
  s = tn_generate(m, prompts, plens, n_prompts, &o, res);
  if (s == TN_OK && c.err != TN_OK) s = c.err;
  if (s != TN_OK) goto done;
  for (int k = 0; k < slots; k++) {
    const char *p;
    size_t l;
    if ((tn_detok_stream_flush(c.ds[k], &p, &l) == TN_OK && l && !append(&c, k, p, l)) ||
        (!c.text[k] && !append(&c, k, "", 0))) {
      s = tn_error(TN_ERR_NOMEM, "generate_text: out of memory for the text");
      goto done;
    }
    emit(&c, c.first + k / g->n, k % g->n, true);
    char *st = (char *)find_stop(&c, c.text[k]);
    if (st) *st = 0;
    out[k] = (tn_text_result){.text = c.text[k], .ids = res[k].ids, .logprobs = res[k].logprobs, .n = res[k].n,
                              .finish = res[k].finish};
    c.text[k] = NULL;
    res[k].ids = NULL, res[k].logprobs = NULL;
  }
done:
  if (s != TN_OK) tn_text_results_free(out, slots);
  if (res) tn_gen_results_free(res, slots);
  free(res);
  for (int k = 0; k < slots; k++) {
    if (c.ds) tn_detok_stream_free(c.ds[k]);
    if (c.text) free(c.text[k]);
  }
  free(c.ds), free(c.text), free(c.len), free(c.cap), free(c.sent);
  return s;
}

void tn_text_results_free(tn_text_result *r, int count) {
  for (int k = 0; r && k < count; k++) {
    free(r[k].text);
    free(r[k].ids);
    free(r[k].logprobs);
    memset(&r[k], 0, sizeof r[k]);
  }
}
