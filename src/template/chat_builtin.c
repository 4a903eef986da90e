/* chat_builtin.c - built-in chat formats (Gemma-3, ChatML/Qwen3, Llama-3) that render a list of
 * plain-text messages byte-for-byte as those models' Jinja chat_templates do and report where
 * the assistant replies are (byte spans). Used when a tokenizer has no chat_template (or
 * --chat-format names one), and as the span cache of chat_template.c, which uses it only when
 * its text equals the Jinja rendering. The format is recognised from the template text.
 * Not for: tool calls or multimodal content (the Jinja path in chat_template.c renders those). */
#define _GNU_SOURCE
#include "template/template.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  tn_chat_format f;
  bool always_gen;     /* Llama-3.0 template: appends the assistant header unconditionally */
  bool think;          /* ChatML with Qwen3 <think> handling */
  int llama_sys;       /* 0: none, 1: Llama-3.1 system block with fixed date, 2: today's date (3.2) */
} chat_style;

tn_status tn_chat_format_parse(const char *name, tn_chat_format *out) {
  if (!name || !strcmp(name, "auto")) *out = TN_CHAT_AUTO;
  else if (!strcmp(name, "gemma") || !strcmp(name, "gemma3")) *out = TN_CHAT_GEMMA;
  else if (!strcmp(name, "chatml") || !strcmp(name, "qwen") || !strcmp(name, "qwen3")) *out = TN_CHAT_CHATML;
  else if (!strcmp(name, "llama3") || !strcmp(name, "llama")) *out = TN_CHAT_LLAMA3;
  else return tn_error(TN_ERR_ARG, "unknown chat format '%s' (built-in formats: gemma, chatml, llama3)", name);
  return TN_OK;
}

const char *tn_chat_format_name(tn_chat_format f) {
  switch (f) {
  case TN_CHAT_GEMMA: return "gemma";
  case TN_CHAT_CHATML: return "chatml";
  case TN_CHAT_LLAMA3: return "llama3";
  default: return "auto";
  }
}

const char *tn_chat_end_of_turn(tn_chat_format f) {
  switch (f) {
  case TN_CHAT_GEMMA: return "<end_of_turn>";
  case TN_CHAT_CHATML: return "<|im_end|>";
  case TN_CHAT_LLAMA3: return "<|eot_id|>";
  default: return NULL;
  }
}

static tn_chat_format detect_text(const char *t) {
  if (!t) return TN_CHAT_AUTO;
  if (strstr(t, "<start_of_turn>")) return TN_CHAT_GEMMA;
  if (strstr(t, "<|im_start|>")) return TN_CHAT_CHATML;
  if (strstr(t, "<|start_header_id|>")) return TN_CHAT_LLAMA3;
  return TN_CHAT_AUTO;
}

tn_status tn_chat_detect(const tn_tokenizer *tk, tn_chat_format *out) {
  const char *t = tk->chat_template;
  *out = detect_text(t);
  if (*out != TN_CHAT_AUTO) return TN_OK;
  return tn_error(TN_ERR_UNSUPPORTED,
                  "%s: %s; tunic renders chat with built-in formats gemma, chatml, llama3: choose one with "
                  "--chat-format gemma|chatml|llama3 (tn_chat_opts.format)",
                  tk->name, t ? "the chat_template of tokenizer_config.json is not one tunic recognises"
                               : "no chat_template in tokenizer_config.json");
}

static tn_status resolve_style(const tn_tokenizer *tk, const tn_chat_opts *o, chat_style *st) {
  memset(st, 0, sizeof *st);
  const char *t = tk->chat_template;
  if (o && o->format != TN_CHAT_AUTO) st->f = o->format;
  else TN_TRY(tn_chat_detect(tk, &st->f));
  bool same = t && detect_text(t) == st->f; /* the template describes this format: read its variant */
  if (st->f == TN_CHAT_CHATML) st->think = same ? strstr(t, "</think>") != NULL : false;
  if (st->f == TN_CHAT_LLAMA3 && same) {
    st->always_gen = !strstr(t, "add_generation_prompt");
    if (strstr(t, "Cutting Knowledge Date")) st->llama_sys = strstr(t, "strftime_now") ? 2 : 1;
  }
  return TN_OK;
}

/* ---- string helpers (Python semantics, as transformers renders with jinja2) ---- */
typedef struct { const char *s; size_t n; } sv;
static sv mk(const char *s) { return (sv){s ? s : "", s ? strlen(s) : 0}; }

static sv trim_py(sv v) {
  while (v.n) {
    int32_t cp;
    int l = tk_utf8_valid_len((const unsigned char *)v.s, v.n);
    if (!l) break;
    tk_utf8_decode((const unsigned char *)v.s, &cp);
    if (!tk_is_py_space(cp)) break;
    v.s += l;
    v.n -= l;
  }
  while (v.n) {
    size_t q = v.n - 1;
    while (q > 0 && ((unsigned char)v.s[q] & 0xC0) == 0x80) q--;
    int32_t cp;
    if (!tk_utf8_valid_len((const unsigned char *)v.s + q, v.n - q)) break;
    tk_utf8_decode((const unsigned char *)v.s + q, &cp);
    if (!tk_is_py_space(cp)) break;
    v.n = q;
  }
  return v;
}
static sv lstrip_nl(sv v) { while (v.n && v.s[0] == '\n') { v.s++; v.n--; } return v; }
static sv rstrip_nl(sv v) { while (v.n && v.s[v.n - 1] == '\n') v.n--; return v; }
static const char *find_sv(sv v, const char *needle) {
  size_t nl = strlen(needle);
  if (nl > v.n) return NULL;
  return memmem(v.s, v.n, needle, nl);
}
static const char *rfind_sv(sv v, const char *needle) {
  size_t nl = strlen(needle);
  if (nl > v.n) return NULL;
  for (size_t i = v.n - nl + 1; i-- > 0;)
    if (!memcmp(v.s + i, needle, nl)) return v.s + i;
  return NULL;
}

typedef struct {
  tk_buf b;
  tn_span *spans; size_t n, cap;
} rd;
static tn_status put(rd *r, sv v) { return tk_buf_put(&r->b, v.s, v.n); }
static tn_status puts_(rd *r, const char *s) { return tk_buf_put(&r->b, s, strlen(s)); }
static tn_status span(rd *r, size_t start, size_t end) {
  TN_TRY(tk_grow((void **)&r->spans, &r->cap, r->n + 1, sizeof *r->spans));
  r->spans[r->n++] = (tn_span){start, end};
  return TN_OK;
}
static bool is_role(const tn_chat_msg *m, const char *role) { return m->role && !strcmp(m->role, role); }

static tn_status check_roles(const tn_chat_msg *m, size_t n, bool allow_tool) {
  for (size_t i = 0; i < n; i++) {
    if (!m[i].role) return tn_error(TN_ERR_ARG, "chat: message %zu has no role", i);
    if (!is_role(&m[i], "system") && !is_role(&m[i], "user") && !is_role(&m[i], "assistant") &&
        !(allow_tool && is_role(&m[i], "tool")))
      return tn_error(TN_ERR_ARG, "chat: message %zu: role '%s' is not system/user/assistant%s", i, m[i].role,
                      allow_tool ? "/tool" : "");
  }
  return TN_OK;
}

/* ---- Gemma-3 ---- */
static tn_status render_gemma(const tn_tokenizer *tk, const tn_chat_msg *m, size_t n, bool gen, rd *r) {
  TN_TRY(check_roles(m, n, false));
  TN_TRY(puts_(r, tk->bos_str ? tk->bos_str : ""));
  sv prefix = {"", 0};
  size_t first = 0;
  if (n && is_role(&m[0], "system")) {
    prefix = mk(m[0].content);
    first = 1;
  }
  for (size_t i = first; i < n; i++) {
    size_t k = i - first;
    if (is_role(&m[i], "user") != (k % 2 == 0))
      return tn_error(TN_ERR_ARG, "chat (gemma): conversation roles must alternate user/assistant/user/assistant/... "
                                  "(message %zu is '%s')", i, m[i].role);
    bool asst = is_role(&m[i], "assistant");
    TN_TRY(puts_(r, "<start_of_turn>"));
    TN_TRY(puts_(r, asst ? "model" : m[i].role));
    TN_TRY(puts_(r, "\n"));
    if (k == 0 && first) { TN_TRY(put(r, prefix)); TN_TRY(puts_(r, "\n\n")); }
    size_t s0 = r->b.len;
    TN_TRY(put(r, trim_py(mk(m[i].content))));
    TN_TRY(puts_(r, "<end_of_turn>"));
    if (asst) TN_TRY(span(r, s0, r->b.len));
    TN_TRY(puts_(r, "\n"));
  }
  if (gen) TN_TRY(puts_(r, "<start_of_turn>model\n"));
  return TN_OK;
}

/* ---- ChatML (Qwen3 when think) ---- */
static tn_status render_chatml(const tn_chat_msg *m, size_t n, const chat_style *cs, const tn_chat_opts *o, rd *r) {
  TN_TRY(check_roles(m, n, true));
  if (n && is_role(&m[0], "system")) {
    TN_TRY(puts_(r, "<|im_start|>system\n"));
    TN_TRY(put(r, mk(m[0].content)));
    TN_TRY(puts_(r, "<|im_end|>\n"));
  }
  /* index of the last user message that is not a tool response */
  size_t last_query = n ? n - 1 : 0;
  for (size_t i = n; i-- > 0;) {
    sv c = mk(m[i].content);
    bool tool_resp = c.n >= 15 + 16 && !memcmp(c.s, "<tool_response>", 15) &&
                     !memcmp(c.s + c.n - 16, "</tool_response>", 16);
    if (is_role(&m[i], "user") && !tool_resp) { last_query = i; break; }
  }
  for (size_t i = 0; i < n; i++) {
    if (is_role(&m[i], "user") || (is_role(&m[i], "system") && i != 0)) {
      TN_TRY(puts_(r, "<|im_start|>"));
      TN_TRY(puts_(r, m[i].role));
      TN_TRY(puts_(r, "\n"));
      TN_TRY(put(r, mk(m[i].content)));
      TN_TRY(puts_(r, "<|im_end|>\n"));
    } else if (is_role(&m[i], "assistant")) {
      sv content = mk(m[i].content), reasoning = {"", 0};
      TN_TRY(puts_(r, "<|im_start|>assistant\n"));
      size_t s0 = r->b.len;
      if (cs->think) {
        if (m[i].reasoning) {
          reasoning = mk(m[i].reasoning);
        } else if (find_sv(content, "</think>")) {
          const char *first_end = find_sv(content, "</think>"), *last_end = rfind_sv(content, "</think>");
          sv before = {content.s, (size_t)(first_end - content.s)};
          before = rstrip_nl(before);
          const char *ts = rfind_sv(before, "<think>");
          if (ts) before = (sv){ts + 7, (size_t)(before.s + before.n - ts - 7)};
          reasoning = lstrip_nl(before);
          content = lstrip_nl((sv){last_end + 8, (size_t)(content.s + content.n - last_end - 8)});
        }
        if (i > last_query && (i == n - 1 || reasoning.n)) {
          TN_TRY(puts_(r, "<think>\n"));
          TN_TRY(put(r, rstrip_nl(lstrip_nl(reasoning))));
          TN_TRY(puts_(r, "\n</think>\n\n"));
          TN_TRY(put(r, lstrip_nl(content)));
        } else {
          TN_TRY(put(r, content));
        }
      } else {
        TN_TRY(put(r, content));
      }
      TN_TRY(puts_(r, "<|im_end|>"));
      TN_TRY(span(r, s0, r->b.len));
      TN_TRY(puts_(r, "\n"));
    } else if (is_role(&m[i], "tool")) {
      if (i == 0 || !is_role(&m[i - 1], "tool")) TN_TRY(puts_(r, "<|im_start|>user"));
      TN_TRY(puts_(r, "\n<tool_response>\n"));
      TN_TRY(put(r, mk(m[i].content)));
      TN_TRY(puts_(r, "\n</tool_response>"));
      if (i == n - 1 || !is_role(&m[i + 1], "tool")) TN_TRY(puts_(r, "<|im_end|>\n"));
    }
  }
  if (o && o->add_generation_prompt) {
    TN_TRY(puts_(r, "<|im_start|>assistant\n"));
    if (cs->think && o->enable_thinking == 0) TN_TRY(puts_(r, "<think>\n\n</think>\n\n"));
  }
  return TN_OK;
}

/* ---- Llama-3 ---- */
static tn_status render_llama3(const tn_tokenizer *tk, const tn_chat_msg *m, size_t n, const chat_style *cs, bool gen,
                               rd *r) {
  TN_TRY(check_roles(m, n, false));
  const char *bos = tk->bos_str ? tk->bos_str : "";
  size_t first = 0;
  if (cs->llama_sys) {
    char date[32] = "26 Jul 2024";
    if (cs->llama_sys == 2) {
      time_t now = time(NULL);
      struct tm tmv;
      localtime_r(&now, &tmv);
      strftime(date, sizeof date, "%d %b %Y", &tmv);
    }
    sv sys = {"", 0};
    if (n && is_role(&m[0], "system")) { sys = trim_py(mk(m[0].content)); first = 1; }
    TN_TRY(puts_(r, bos));
    TN_TRY(puts_(r, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: "));
    TN_TRY(puts_(r, date));
    TN_TRY(puts_(r, "\n\n"));
    TN_TRY(put(r, sys));
    TN_TRY(puts_(r, "<|eot_id|>"));
  }
  for (size_t i = first; i < n; i++) {
    if (i == 0 && !cs->llama_sys) TN_TRY(puts_(r, bos));
    TN_TRY(puts_(r, "<|start_header_id|>"));
    TN_TRY(puts_(r, m[i].role));
    TN_TRY(puts_(r, "<|end_header_id|>\n\n"));
    size_t s0 = r->b.len;
    TN_TRY(put(r, trim_py(mk(m[i].content))));
    TN_TRY(puts_(r, "<|eot_id|>"));
    if (is_role(&m[i], "assistant")) TN_TRY(span(r, s0, r->b.len));
  }
  if (gen || cs->always_gen) TN_TRY(puts_(r, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
  return TN_OK;
}

tn_status tn_chat_render_builtin(const tn_tokenizer *tk, const tn_chat_msg *msgs, size_t n, const tn_chat_opts *opts,
                                 tn_chat_out *out) {
  memset(out, 0, sizeof *out);
  if (!tk || (!msgs && n)) return tn_error(TN_ERR_ARG, "tn_chat_render: NULL argument");
  chat_style cs;
  TN_TRY(resolve_style(tk, opts, &cs));
  rd r = {0};
  tn_status st = tk_buf_reserve(&r.b, 256);
  bool gen = opts && opts->add_generation_prompt;
  if (st == TN_OK) {
    if (cs.f == TN_CHAT_GEMMA) st = render_gemma(tk, msgs, n, gen, &r);
    else if (cs.f == TN_CHAT_CHATML) st = render_chatml(msgs, n, &cs, opts, &r);
    else st = render_llama3(tk, msgs, n, &cs, gen, &r);
  }
  if (st != TN_OK) {
    tk_buf_free(&r.b);
    free(r.spans);
    return st;
  }
  out->text = r.b.s;
  out->len = r.b.len;
  out->spans = r.spans;
  out->n_spans = r.n;
  return TN_OK;
}

void tn_chat_out_free(tn_chat_out *out) {
  if (!out) return;
  free(out->text);
  free(out->spans);
  memset(out, 0, sizeof *out);
}

tn_status tn_chat_encode(const tn_tokenizer *tk, const tn_chat_msg *msgs, size_t n, const tn_chat_opts *opts,
                         tn_encoding *enc) {
  tn_chat_out co;
  TN_TRY(tn_chat_render(tk, msgs, n, opts, &co));
  tn_status st = tn_chat_out_encode(tk, &co, enc);
  tn_chat_out_free(&co);
  return st;
}

tn_status tn_chat_out_encode(const tn_tokenizer *tk, const tn_chat_out *out, tn_encoding *enc) {
  const tn_chat_out co = *out;
  tn_status st = tn_tokenizer_encode_offsets(tk, co.text, co.len, false, enc);
  if (st == TN_OK) {
    size_t k = 0; /* spans are sorted and disjoint; tokens are in text order */
    for (size_t i = 0; i < enc->n; i++) {
      uint32_t s = enc->offsets[2 * i], e = enc->offsets[2 * i + 1];
      while (k < co.n_spans && co.spans[k].end <= s && !(e == s && co.spans[k].end > s)) k++;
      bool in = false;
      if (k < co.n_spans) {
        const tn_span *sp = &co.spans[k];
        in = e > s ? (s < sp->end && e > sp->start) : (s >= sp->start && s < sp->end);
      }
      enc->mask[i] = in;
    }
  }
  return st;
}
