/* sched.c - the scheduler of `tunic serve`: the one thread that owns the model, the generation
 * engine (include/tunic/engine.h: --slots slots on one KV cache) and the adapters. HTTP
 * threads queue requests (srv_submit); between engine steps the scheduler admits queued requests
 * into free slots (the n samples of a prompt fork its slot and share its prefill; a prompt whose
 * first >= 16 tokens another live sequence of the same adapter has computed reads them in place),
 * and runs ONE tn_engine_step (one tn_forward: a decode row per generating slot plus prefill
 * chunks, whatever adapter each slot runs); each event's token becomes text for its
 * request (under the request's mutex) for the HTTP thread to send. Requests join and leave between
 * steps (continuous batching); a cancelled request (client gone, timeout, stop) leaves its slots
 * at the next step.
 * Adapters: each slot names its request's adapter (tn_engine_set_adapter); the forward computes
 * the base projections once for all rows and adds each row its own adapter's delta (rows grouped
 * by adapter, model/lora.h), so requests for different adapters batch together. Nothing is
 * activated on the model's matrices. An unloaded adapter is freed here, once the last request
 * holding it ends (refcount).
 * Not for: HTTP or JSON (server.c, api.c). */
#define TN_SERVE_INTERNAL
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include "generate/generate.h"
#include "tunic/engine.h"
#include "tensor/tensor.h"
#include "serve/serve.h"

bool srv_buf_add(srv_buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t nc = (b->n + n + 1) * 2;
    char *p = realloc(b->p, nc);
    if (!p) return false;
    b->p = p, b->cap = nc;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
  return true;
}

bool srv_buf_printf(srv_buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k < 0) return false;
  if ((size_t)k < sizeof tmp) return srv_buf_add(b, tmp, (size_t)k);
  char *big = malloc((size_t)k + 1);
  if (!big) return false;
  va_start(ap, fmt);
  vsnprintf(big, (size_t)k + 1, fmt, ap);
  va_end(ap);
  bool ok = srv_buf_add(b, big, (size_t)k);
  free(big);
  return ok;
}

/* ---- adapters: refcounted; freed by the scheduler (it owns the model's matrices) ---- */
static srv_adapter **grave; static int n_grave, cap_grave; /* under sv->mu */

void srv_adapter_unref(tn_server *sv, srv_adapter *a) {
  if (!a) return;
  pthread_mutex_lock(&sv->mu);
  if (--a->refs == 0) {
    if (n_grave == cap_grave) {
      int nc = cap_grave ? cap_grave * 2 : 8;
      srv_adapter **g = realloc(grave, sizeof *g * nc);
      if (g) grave = g, cap_grave = nc;
    }
    if (n_grave < cap_grave) grave[n_grave++] = a; /* else leaked rather than freed under a forward */
    pthread_cond_signal(&sv->cv);
  }
  pthread_mutex_unlock(&sv->mu);
}

srv_adapter *srv_adapter_get(tn_server *sv, const char *name) {
  srv_adapter *a = NULL;
  pthread_mutex_lock(&sv->mu);
  for (int i = 0; i < sv->n_ads; i++)
    if (!strcmp(sv->ads[i]->name, name)) { a = sv->ads[i]; a->refs++; break; }
  pthread_mutex_unlock(&sv->mu);
  return a;
}

static void free_grave(tn_server *sv) {
  pthread_mutex_lock(&sv->mu);
  for (int i = 0; i < n_grave; i++) {
    srv_adapter *a = grave[i];
    tn_lora_free(a->set); /* deactivates it first when attached */
    free(a->path);
    free(a);
  }
  n_grave = 0;
  pthread_mutex_unlock(&sv->mu);
}

/* ---- requests ---- */
void srv_req_unref(tn_server *sv, srv_req *r) {
  pthread_mutex_lock(&r->mu);
  const int left = --r->refs;
  pthread_mutex_unlock(&r->mu);
  if (left > 0) return;
  srv_adapter_unref(sv, r->ad);
  for (int p = 0; p < r->n_prompts; p++) free(r->prompts[p]);
  free(r->prompts); free(r->plens);
  for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
  free(r->stop);
  for (int i = 0; i < r->n_ch; i++) {
    free(r->ch[i].text.p);
    cJSON_Delete(r->ch[i].lp);
    tn_detok_stream_free(r->ch[i].ds);
  }
  free(r->ch);
  free(r->sse.p);
  free(r->error);
  free(r->model_name);
  free(r->route);
  cJSON_Delete(r->tools);
  cJSON_Delete(r->trace);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
}

bool srv_submit(tn_server *sv, srv_req *r) {
  pthread_mutex_lock(&sv->mu);
  if (sv->stopping || sv->admitted >= sv->o.max_requests) {
    pthread_mutex_unlock(&sv->mu);
    return false;
  }
  if (sv->nq == sv->capq) {
    int nc = sv->capq ? sv->capq * 2 : 64;
    srv_req **q = realloc(sv->queue, sizeof *q * nc);
    if (!q) { pthread_mutex_unlock(&sv->mu); return false; }
    sv->queue = q, sv->capq = nc;
  }
  r->refs++; /* the scheduler's */
  sv->queue[sv->nq++] = r;
  sv->admitted++;
  pthread_cond_signal(&sv->cv);
  pthread_mutex_unlock(&sv->mu);
  return true;
}

/* ---- slots: the engine's, each mapped to a request's choice ---- */
typedef struct {
  srv_req *r;                /* NULL: the engine slot is closed */
  int c;                     /* choice index */
  double t_last;             /* time of the last token (per-token latency) */
} slot_t;

static const char *find_stop(const srv_req *r, const char *s) {
  const char *first = NULL;
  for (int i = 0; s && i < r->n_stop; i++) {
    const char *h = *r->stop[i] ? strstr(s, r->stop[i]) : NULL;
    if (h && (!first || h < first)) first = h;
  }
  return first;
}

/* the text a choice may stream: all of it but what could still become a stop string */
static size_t safe_len(const srv_req *r, const srv_choice *c) {
  size_t hold = 0;
  for (int i = 0; i < r->n_stop; i++) {
    size_t l = strlen(r->stop[i]);
    if (l > hold + 1) hold = l - 1;
  }
  size_t upto = c->text.n > hold ? c->text.n - hold : 0;
  while (upto > c->sent && upto < c->text.n && (c->text.p[upto] & 0xC0) == 0x80) upto--;
  return upto;
}

/* log-prob entry of token t: {"token","logprob","bytes","top_logprobs":[...]} from the logits
 * row before sampling (log_softmax(row / T), T = 1 when greedy) */
static cJSON *lp_entry(tn_server *sv, const float *row, int V, float T, int t, float lp, int ntop) {
  cJSON *e = cJSON_CreateObject();
  char *s = NULL;
  size_t sl = 0;
  int32_t id = t;
  if (tn_tokenizer_decode(sv->tok, &id, 1, false, &s, &sl) != TN_OK) s = NULL;
  char *v = tn_utf8_valid_dup(s ? s : "");
  cJSON_AddStringToObject(e, "token", v ? v : "");
  cJSON_AddNumberToObject(e, "logprob", isfinite(lp) ? lp : -9999.0);
  cJSON *by = cJSON_AddArrayToObject(e, "bytes");
  for (size_t i = 0; s && i < sl; i++) cJSON_AddItemToArray(by, cJSON_CreateNumber((unsigned char)s[i]));
  free(s); free(v);
  cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
  if (ntop > 0) {
    const float it = T > 0 ? 1.0f / T : 1.0f;
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, row[i] * it);
    for (int i = 0; i < V; i++) z += exp(row[i] * it - mx);
    const double lz = mx + log(z);
    int best[20];
    int nb = 0;
    for (int i = 0; i < V; i++) { /* insertion into the top ntop */
      int k = nb < ntop ? nb++ : ntop;
      if (k == ntop && row[i] <= row[best[ntop - 1]]) continue;
      if (k == ntop) k = ntop - 1;
      while (k > 0 && row[best[k - 1]] < row[i]) { best[k] = best[k - 1]; k--; }
      best[k] = i;
    }
    for (int k = 0; k < nb; k++) {
      cJSON *o = cJSON_CreateObject();
      char *ts = NULL;
      size_t tl = 0;
      int32_t tid = best[k];
      if (tn_tokenizer_decode(sv->tok, &tid, 1, false, &ts, &tl) != TN_OK) ts = NULL;
      char *tv = tn_utf8_valid_dup(ts ? ts : "");
      cJSON_AddStringToObject(o, "token", tv ? tv : "");
      cJSON_AddNumberToObject(o, "logprob", row[best[k]] * it - lz);
      cJSON *b2 = cJSON_AddArrayToObject(o, "bytes");
      for (size_t i = 0; ts && i < tl; i++) cJSON_AddItemToArray(b2, cJSON_CreateNumber((unsigned char)ts[i]));
      free(ts); free(tv);
      cJSON_AddItemToArray(top, o);
    }
  }
  return e;
}

/* a choice ends (r->mu held): final delta, and the request is done when it was the last */
static void finish_choice(tn_server *sv, srv_req *r, srv_choice *c, int finish) {
  if (c->finish >= 0) return;
  c->finish = finish;
  if (r->stream) srv_stream_delta(sv, r, c, NULL, 0, true);
  if (--r->live == 0) {
    r->done = true;
    if (r->stream && !r->error && !r->cancelled) {
      if (r->include_usage) srv_stream_delta(sv, r, NULL, NULL, 0, true);
      srv_buf_add(&r->sse, "data: [DONE]\n\n", 14);
    }
  }
  pthread_cond_broadcast(&r->cv);
}

/* one sampled token of a choice (an engine event): text, stop strings, streaming. Returns true when
 * the choice ended here (*cut: by a stop string, which the engine does not know about) */
static bool emit(tn_server *sv, slot_t *s, const tn_engine_event *ev, const float *raw, int V, double now, bool *cut) {
  srv_req *r = s->r;
  srv_choice *c = &r->ch[s->c];
  *cut = false;
  pthread_mutex_lock(&r->mu);
  if (!r->t_first) r->t_first = now;
  c->ntok++;
  const char *p = NULL;
  size_t l = 0;
  const bool eos = ev->done && ev->finish == TN_FINISH_STOP_ID;
  if (!eos && tn_detok_stream_push(c->ds, ev->token, &p, &l) == TN_OK && l) srv_buf_add(&c->text, p, l);
  if (c->lp && raw) cJSON_AddItemToArray(c->lp, lp_entry(sv, raw, V, r->temperature, ev->token, ev->logprob, r->top_logprobs));
  int fin = -1;
  const char *st = find_stop(r, c->text.p);
  if (st) { c->text.n = (size_t)(st - c->text.p); c->text.p[c->text.n] = 0; fin = TN_FINISH_STOP_FN; *cut = !ev->done; }
  else if (ev->done) fin = ev->finish == TN_FINISH_STOP_ID || ev->finish == TN_FINISH_STOP_FN ? ev->finish : TN_FINISH_LENGTH;
  if (fin < 0 && r->stream) {
    size_t upto = safe_len(r, c);
    if (upto > c->sent) srv_stream_delta(sv, r, c, c->text.p + c->sent, upto - c->sent, false);
  }
  if (fin >= 0) {
    if (fin == TN_FINISH_LENGTH && tn_detok_stream_flush(c->ds, &p, &l) == TN_OK && l) srv_buf_add(&c->text, p, l);
    finish_choice(sv, r, c, fin);
  }
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return fin >= 0;
}

/* every engine slot of request r is closed (a fork still reading one keeps its cache) */
static void release(tn_engine *e, slot_t *sl, int S, const srv_req *r) {
  for (int i = 0; i < S; i++)
    if (sl[i].r == r) {
      tn_engine_close(e, i);
      sl[i].r = NULL;
    }
}

/* the request's end seen from the scheduler: metrics, trace, its references */
static void req_finished(tn_server *sv, srv_req *r) {
  const double now = tn_now();
  pthread_mutex_lock(&r->mu);
  int ctoks = 0;
  for (int i = 0; i < r->n_ch; i++) ctoks += r->ch[i].ntok;
  const bool ok = !r->error && !r->cancelled && !r->timed_out;
  pthread_mutex_unlock(&r->mu);
  pthread_mutex_lock(&sv->mu);
  sv->admitted--;
  sv->running--;
  sv->met.prompt_tokens += r->prompt_tokens;
  sv->met.completion_tokens += ctoks;
  if (r->cancelled) sv->met.cancelled++;
  if (r->timed_out) sv->met.timeouts++;
  if (r->t_first) srv_hist_add(&sv->met.ttft, r->t_first - r->t_arrive, srv_lat_bounds);
  srv_hist_add(&sv->met.latency, now - r->t_arrive, srv_lat_bounds);
  pthread_mutex_unlock(&sv->mu);
  if (ok && sv->trace_fn) srv_trace(sv, r);
  srv_req_unref(sv, r);
}

/* end a request early (r->mu not held): every live choice finishes with finish 3 */
static void abort_req(tn_server *sv, srv_req *r, const char *why, int status) {
  pthread_mutex_lock(&r->mu);
  if (why && !r->error && !r->cancelled) {
    r->error = strdup(why);
    r->error_status = status;
    if (r->stream) { /* an error event, then the end of the stream */
      cJSON *e = cJSON_CreateObject(), *eo = cJSON_AddObjectToObject(e, "error");
      cJSON_AddStringToObject(eo, "message", why);
      cJSON_AddStringToObject(eo, "type", status == 504 ? "timeout_error" : "server_error");
      cJSON_AddNullToObject(eo, "param");
      cJSON_AddStringToObject(eo, "code", status == 504 ? "timeout" : "server_error");
      char *js = cJSON_PrintUnformatted(e);
      cJSON_Delete(e);
      srv_buf_printf(&r->sse, "data: %s\n\ndata: [DONE]\n\n", js ? js : "{}");
      free(js);
    }
  }
  for (int i = 0; i < r->n_ch; i++)
    if (r->ch[i].finish < 0) { r->ch[i].finish = 3; r->live--; }
  r->done = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* the model's stop ids (tn_generate's default) plus the tokenizer's eos when it is another */
static int stop_ids(const tn_server *sv, int *out) {
  int n = 0;
  for (int k = 0; k < sv->m->cfg.n_eos && n < TN_MAX_EOS; k++) out[n++] = sv->m->cfg.eos_ids[k];
  const int te = tn_tokenizer_eos_id(sv->tok);
  bool have = te < 0;
  for (int k = 0; k < n; k++) have = have || out[k] == te;
  if (!have) out[n++] = te;
  return n;
}

/* open the engine slots of a request's choices: the first sample of each prompt is opened with the
 * prompt (reading a prefix another live sequence of the same adapter has computed, when >= 16
 * tokens), the other samples fork it (they share its prefill and sample from its logits) */
static tn_status admit(tn_server *sv, tn_engine *e, slot_t *sl, srv_req *r, const int *stops, int nstops, double now) {
  const int S = sv->o.slots;
  int leader = -1;
  for (int k = 0; k < r->n_ch; k++) {
    srv_choice *c = &r->ch[k];
    const int j = k % r->n, plen = r->plens[c->prompt];
    tn_gen_opts g;
    tn_gen_opts_default(&g);
    g.temperature = r->temperature;
    g.top_p = r->top_p;
    g.frequency_penalty = r->frequency_penalty;
    g.presence_penalty = r->presence_penalty;
    g.max_new_tokens = r->max_tokens;
    g.seed = r->has_seed ? r->seed : (uint64_t)(now * 1e9) ^ ((uint64_t)sv->next_id++ << 40);
    g.stop_ids = stops;
    g.n_stop_ids = nstops;
    int slot = -1;
    if (j == 0) {
      TN_TRY(tn_engine_open(e, &g, c->prompt, 0, &slot));
      sl[slot].r = r; /* from here on release() closes it */
      TN_TRY(tn_engine_set_adapter(e, slot, r->ad->set)); /* its rows add this adapter's delta */
      TN_TRY(tn_engine_append(e, slot, r->prompts[c->prompt], plen));
      int best = 0, src = -1;
      for (int o = 0; o < S; o++) {
        if (o == slot || !sl[o].r || sl[o].r->ad != r->ad) continue;
        int n = 0;
        const int *h = tn_engine_tokens(e, o, &n);
        const int cached = tn_engine_cached(e, o);
        const int lim = cached < plen - 1 ? cached : plen - 1;
        int m = 0;
        while (m < lim && m < n && h[m] == r->prompts[c->prompt][m]) m++;
        if (m > best) best = m, src = o;
      }
      if (best >= 16 && tn_engine_share_prefix(e, slot, src, best) == TN_OK) sv->met.prefix_reused += best;
      TN_TRY(tn_engine_generate(e, slot, r->max_tokens));
      leader = slot;
    } else {
      TN_TRY(tn_engine_fork(e, leader, &g, c->prompt, j, &slot));
      sl[slot].r = r;
      TN_TRY(tn_engine_generate(e, slot, r->max_tokens));
    }
    sl[slot].c = k;
    sl[slot].t_last = now;
  }
  return TN_OK;
}

/* the logits row slot i's token was sampled from, for its log-probs: the raw row, or with the
 * request's frequency/presence penalties applied as the sampler applied them (into pen (V)) */
static const float *logprob_row(tn_engine *e, int i, const slot_t *q, float *pen, int V) {
  const float *raw = tn_engine_logits(e, i);
  if (!raw || !pen || (q->r->frequency_penalty == 0 && q->r->presence_penalty == 0)) return raw;
  int nt = 0;
  const int *h = tn_engine_tokens(e, i, &nt); /* its last token is the one just sampled */
  tn_gen_opts g;
  tn_gen_opts_default(&g);
  g.frequency_penalty = q->r->frequency_penalty;
  g.presence_penalty = q->r->presence_penalty;
  memcpy(pen, raw, sizeof(float) * V);
  tn_sample_penalize(pen, V, &g, h, nt - 1, q->r->ch[q->c].ntok);
  return pen;
}

void *srv_sched_main(void *arg) {
  tn_server *sv = arg;
  tn_model *m = sv->m;
  const int S = sv->o.slots, V = m->cfg.V;
  tn_engine *e = NULL;
  tn_engine_opts eo = {.max_slots = S, .context = sv->o.ctx, .rows_per_step = S > 256 ? S : 256};
  slot_t *sl = calloc((size_t)S, sizeof *sl);
  float *pen = malloc(sizeof(float) * (size_t)V); /* (V) a penalised logits row (top_logprobs) */
  int stops[TN_MAX_EOS + 1];
  const int nstops = stop_ids(sv, stops);
  tn_status s = sl ? tn_engine_create(&e, m, &eo) : TN_ERR_NOMEM;
  if (s != TN_OK) {
    tn_warn("tunic serve: the scheduler cannot start: %s", tn_last_error());
    pthread_mutex_lock(&sv->mu);
    sv->stopping = sv->stop_now = true;
    pthread_mutex_unlock(&sv->mu);
  }
  for (;;) {
    double now = tn_now();
    /* 1. admit queued requests (FIFO: the head waits for enough free slots), drop the dead */
    pthread_mutex_lock(&sv->mu);
    if (sv->stopping && sv->stop_at && now > sv->stop_at) sv->stop_now = true;
    const bool stop_now = sv->stop_now;
    int nfree = 0, nlive = 0;
    for (int i = 0; sl && e && i < S; i++) nfree += !sl[i].r, nlive += !!sl[i].r;
    while (sv->nq > 0 && e) {
      srv_req *r = sv->queue[0];
      pthread_mutex_lock(&r->mu);
      const bool dead = r->cancelled || stop_now, late = !dead && now > r->deadline;
      pthread_mutex_unlock(&r->mu);
      if (!dead && !late && r->n_ch > nfree) break;
      memmove(sv->queue, sv->queue + 1, sizeof *sv->queue * --sv->nq);
      sv->running++;
      tn_status as = dead || late ? TN_OK : admit(sv, e, sl, r, stops, nstops, now);
      if (dead || late || as != TN_OK) {
        const char *msg = as != TN_OK ? tn_last_error() : NULL;
        pthread_mutex_unlock(&sv->mu);
        release(e, sl, S, r);
        if (late) r->timed_out = true;
        abort_req(sv, r, late ? "the request timed out waiting for a free slot" : msg ? msg : stop_now ? "the server is stopping" : NULL,
                  late ? 504 : msg ? 500 : 503);
        req_finished(sv, r);
        pthread_mutex_lock(&sv->mu);
        continue;
      }
      nfree -= r->n_ch, nlive += r->n_ch;
    }
    if (nlive == 0) {
      /* idle: free unloaded adapters, leave when stopping, else wait */
      pthread_mutex_unlock(&sv->mu);
      free_grave(sv);
      pthread_mutex_lock(&sv->mu);
      if (sv->stopping && sv->nq == 0) { pthread_mutex_unlock(&sv->mu); break; }
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += 50 * 1000000L;
      if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
      if (sv->nq == 0) pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
      pthread_mutex_unlock(&sv->mu);
      continue;
    }
    pthread_mutex_unlock(&sv->mu);
    /* 2. cancelled (client gone), timed out or stopping: the slots are free at once */
    for (int i = 0; i < S; i++) {
      srv_req *r = sl[i].r;
      if (!r) continue;
      pthread_mutex_lock(&r->mu);
      const bool gone = r->cancelled || r->done, late = !gone && now > r->deadline;
      pthread_mutex_unlock(&r->mu);
      if (!gone && !late && !stop_now) continue;
      if (late) r->timed_out = true;
      if (!gone) abort_req(sv, r, late ? "the request timed out" : "the server is stopping", late ? 504 : 503);
      else abort_req(sv, r, NULL, 0);
      release(e, sl, S, r);
      req_finished(sv, r);
    }
    /* 3. one step: decode rows + prefill chunks of every live slot, whatever its adapter, in one tn_forward */
    const tn_engine_event *ev = NULL;
    int nev = 0;
    s = tn_engine_step(e, &ev, &nev);
    now = tn_now();
    pthread_mutex_lock(&sv->mu);
    sv->met.steps++;
    srv_hist_add(&sv->met.batch, nev, srv_batch_bounds);
    pthread_mutex_unlock(&sv->mu);
    if (s != TN_OK) { /* fail the running requests, keep serving the queue */
      const char *msg = tn_last_error();
      for (int i = 0; i < S; i++) {
        srv_req *r = sl[i].r;
        if (!r) continue;
        abort_req(sv, r, msg, 500);
        release(e, sl, S, r);
        req_finished(sv, r);
      }
      continue;
    }
    /* 4. each event: its text to the request; a stop string ends the turn (tn_engine_cancel) */
    for (int k = 0; k < nev; k++) {
      const int i = ev[k].slot;
      slot_t *q = &sl[i];
      if (!q->r) continue;
      pthread_mutex_lock(&sv->mu);
      srv_hist_add(&sv->met.per_token, now - q->t_last, srv_lat_bounds);
      pthread_mutex_unlock(&sv->mu);
      q->t_last = now;
      bool cut = false;
      emit(sv, q, &ev[k], q->r->logprobs ? logprob_row(e, i, q, pen, V) : NULL, V, now, &cut);
      if (cut) tn_engine_cancel(e, i);
    }
    /* requests whose choices all ended leave their slots */
    for (int i = 0; i < S; i++) {
      srv_req *r = sl[i].r;
      if (!r) continue;
      pthread_mutex_lock(&r->mu);
      const bool done = r->done;
      pthread_mutex_unlock(&r->mu);
      if (done) {
        release(e, sl, S, r);
        req_finished(sv, r);
      }
    }
  }
  free_grave(sv);
  tn_engine_free(e);
  free(sl);
  free(pen);
  /* the kernels' per-thread scratch buffers of this thread and of its OpenMP team (threads that
   * are not the main thread's: nothing else would free them) */
#pragma omp parallel
  {
    tn_tensor_scratch_release();
    tn_forward_thread_release();
    tn_sample_thread_release();
  }
  tn_tensor_scratch_release();
  tn_forward_thread_release();
  tn_sample_thread_release();
  return NULL;
}
