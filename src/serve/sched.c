/* sched.c - the scheduler of `tunic serve`: the one thread that owns the model, its KV cache
 * (one tn_state of --slots slots) and the active adapter. HTTP threads queue requests
 * (srv_submit); each step the scheduler admits queued requests into free slots, picks one
 * adapter group, feeds every slot of that group its pending tokens (a decode row, or a chunk of
 * a prompt's prefill) in ONE tn_forward call, samples each finished row with that request's own
 * options and RNG, and hands the text to the request (under its mutex) for the HTTP thread to
 * stream. Requests join and leave between steps (continuous batching); a cancelled request
 * (client gone, timeout, stop) leaves its slot at the next step.
 * Adapters: tn_forward applies the adapter attached to the model's matrices (tn_lora_activate),
 * one per call, so rows of different adapters cannot share a forward: groups take turns of
 * --quantum steps, round-robin over the adapters that have live slots (fair, no starvation).
 * The n samples of a prompt share its prefill (tn_state_share_prefix).
 * Not for: HTTP or JSON (server.c, api.c). */
#define TN_SERVE_INTERNAL
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include "generate/generate.h"
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

static void free_grave(tn_server *sv, const tn_lora_set *active) {
  pthread_mutex_lock(&sv->mu);
  for (int i = 0; i < n_grave; i++) {
    srv_adapter *a = grave[i];
    tn_lora_free(a->set); /* deactivates it first when attached */
    free(a->path);
    free(a);
  }
  n_grave = 0;
  pthread_mutex_unlock(&sv->mu);
  (void)active;
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

/* ---- slots ---- */
typedef struct {
  srv_req *r;                /* NULL: free */
  int c;                     /* choice index */
  int *hist; int nhist, cap; /* prompt + generated tokens */
  int fed;                   /* tokens of hist already in the cache */
  int leader;                /* >= 0: a follower waiting for that slot's prefill (n > 1) */
  tn_rng rng;
  double t_last;             /* time of the last token (per-token latency) */
} slot_t;

static bool is_eos(const tn_model *m, const tn_tokenizer *tok, int t) {
  for (int k = 0; k < m->cfg.n_eos; k++)
    if (m->cfg.eos_ids[k] == t) return true;
  return tok && tn_tokenizer_eos_id(tok) == t;
}

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

/* one sampled token for slot s: text, stop checks, streaming; returns true when the choice ended */
static bool emit(tn_server *sv, slot_t *s, int t, float lp, const float *row0, int V, double now) {
  srv_req *r = s->r;
  srv_choice *c = &r->ch[s->c];
  bool ended = false;
  pthread_mutex_lock(&r->mu);
  if (!r->t_first) r->t_first = now;
  c->ntok++;
  if (s->nhist < s->cap) s->hist[s->nhist++] = t;
  const char *p = NULL;
  size_t l = 0;
  const bool eos = is_eos(sv->m, sv->tok, t);
  if (!eos && tn_detok_stream_push(c->ds, t, &p, &l) == TN_OK && l) srv_buf_add(&c->text, p, l);
  if (c->lp) cJSON_AddItemToArray(c->lp, lp_entry(sv, row0, V, r->temperature, t, lp, r->top_logprobs));
  int fin = -1;
  const char *st = find_stop(r, c->text.p);
  if (eos) fin = TN_FINISH_STOP_ID;
  else if (st) { c->text.n = (size_t)(st - c->text.p); c->text.p[c->text.n] = 0; fin = TN_FINISH_STOP_FN; }
  else if (c->ntok >= r->max_tokens || s->nhist >= s->cap) fin = TN_FINISH_LENGTH;
  if (fin < 0 && r->stream) {
    size_t upto = safe_len(r, c);
    if (upto > c->sent) srv_stream_delta(sv, r, c, c->text.p + c->sent, upto - c->sent, false);
  }
  if (fin >= 0) {
    if (fin == TN_FINISH_LENGTH && tn_detok_stream_flush(c->ds, &p, &l) == TN_OK && l) srv_buf_add(&c->text, p, l);
    finish_choice(sv, r, c, fin);
    ended = true;
  }
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return ended;
}

/* every slot of request r is free again (its cache is overwritten by the next occupant) */
static void release(slot_t *sl, int S, const srv_req *r) {
  for (int i = 0; i < S; i++)
    if (sl[i].r == r) {
      sl[i].r = NULL;
      sl[i].nhist = sl[i].fed = 0;
      sl[i].leader = -1;
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

void *srv_sched_main(void *arg) {
  tn_server *sv = arg;
  tn_model *m = sv->m;
  const int S = sv->o.slots, T = sv->o.ctx, V = m->cfg.V;
  const int Nmax = S > 256 ? S : 256; /* decode rows + prefill chunk per step */
  tn_state *st = NULL;
  slot_t *sl = calloc((size_t)S, sizeof *sl);
  int *tok = malloc(sizeof(int) * Nmax), *pos = malloc(sizeof(int) * Nmax), *seq = malloc(sizeof(int) * Nmax);
  int *orow = malloc(sizeof(int) * Nmax), *oslot = malloc(sizeof(int) * Nmax);
  float *logits = malloc(sizeof(float) * (size_t)S * V), *row = malloc(sizeof(float) * V),
        *row0 = malloc(sizeof(float) * V);
  tn_status s = tn_state_create(&st, m, S, T, Nmax, false);
  if (s != TN_OK || !sl || !tok || !pos || !seq || !orow || !oslot || !logits || !row || !row0) {
    tn_warn("tunic serve: the scheduler cannot start: %s", s != TN_OK ? tn_last_error() : "out of memory");
    pthread_mutex_lock(&sv->mu);
    sv->stopping = sv->stop_now = true;
    pthread_mutex_unlock(&sv->mu);
  }
  for (int i = 0; i < S && sl; i++) sl[i].leader = -1;
  srv_adapter *cur = NULL;   /* the adapter group whose turn it is */
  int turn = 0;              /* steps it has had */
  tn_lora_set *active = NULL;
  for (;;) {
    double now = tn_now();
    /* 1. admit queued requests (FIFO: the head waits for enough free slots), drop the dead */
    pthread_mutex_lock(&sv->mu);
    if (sv->stopping && sv->stop_at && now > sv->stop_at) sv->stop_now = true;
    const bool stop_now = sv->stop_now;
    int nfree = 0, nlive = 0;
    for (int i = 0; sl && i < S; i++) nfree += !sl[i].r, nlive += !!sl[i].r;
    while (sv->nq > 0) {
      srv_req *r = sv->queue[0];
      bool dead;
      pthread_mutex_lock(&r->mu);
      dead = r->cancelled || stop_now;
      const bool late = !dead && now > r->deadline;
      pthread_mutex_unlock(&r->mu);
      if (!dead && !late && r->n_ch > nfree) break;
      memmove(sv->queue, sv->queue + 1, sizeof *sv->queue * --sv->nq);
      sv->running++;
      if (dead || late) {
        pthread_mutex_unlock(&sv->mu);
        if (late) r->timed_out = true;
        abort_req(sv, r, late ? "the request timed out waiting for a free slot" : stop_now ? "the server is stopping" : NULL,
                  late ? 504 : 503);
        req_finished(sv, r);
        pthread_mutex_lock(&sv->mu);
        continue;
      }
      /* its choices into free slots: the first sample of each prompt prefills, the others follow */
      int leader = -1, k = 0;
      for (int i = 0; i < S && k < r->n_ch; i++) {
        if (sl[i].r) continue;
        srv_choice *c = &r->ch[k];
        slot_t *q = &sl[i];
        const int plen = r->plens[c->prompt];
        q->cap = plen + r->max_tokens;
        int *h = realloc(q->hist, sizeof(int) * q->cap);
        if (!h) break;
        q->hist = h;
        memcpy(q->hist, r->prompts[c->prompt], sizeof(int) * plen);
        q->nhist = plen;
        q->fed = 0;
        q->r = r;
        q->c = k;
        const int j = k % r->n;
        if (j == 0) leader = i;
        q->leader = j == 0 ? -1 : leader;
        const uint64_t seed = r->has_seed ? r->seed : (uint64_t)(now * 1e9) ^ ((uint64_t)sv->next_id++ << 40);
        tn_rng_seed(&q->rng, seed ^ (0x9E3779B97F4A7C15ULL * (uint64_t)(c->prompt + 1)) ^ ((uint64_t)j << 32));
        q->t_last = now;
        st->pfx_len[i] = 0; /* a fresh sequence in a reused slot */
        st->len[i] = 0;
        nfree--, nlive++, k++;
      }
    }
    if (nlive == 0) {
      /* idle: free unloaded adapters, leave when stopping, else wait */
      pthread_mutex_unlock(&sv->mu);
      if (active) { tn_lora_deactivate(active); active = NULL; }
      free_grave(sv, NULL);
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
    /* 2. cancelled (client gone), timed out or stopping: the slot is free at once */
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
      release(sl, S, r);
      req_finished(sv, r);
    }
    /* 3. whose turn: the current adapter group for --quantum steps, then the next one that has
     * live slots (round-robin in slot order) */
    srv_adapter *grp = NULL;
    bool cur_live = false;
    for (int i = 0; i < S; i++) cur_live = cur_live || (sl[i].r && sl[i].r->ad == cur);
    if (cur && cur_live && turn < sv->o.quantum) grp = cur;
    else {
      int start = 0;
      for (int i = 0; i < S; i++) if (sl[i].r && sl[i].r->ad == cur) start = i + 1;
      for (int k = 0; k < S && !grp; k++) {
        slot_t *q = &sl[(start + k) % S];
        if (q->r) grp = q->r->ad;
      }
      turn = 0;
    }
    if (!grp) continue;
    cur = grp;
    turn++;
    if (grp->set != active) {
      if (active) tn_lora_deactivate(active);
      if (grp->set) tn_lora_activate(grp->set);
      active = grp->set;
    }
    /* 4. rows: a decode row per generating slot of the group first, then prefill chunks */
    int N = 0, nout = 0;
    for (int pass = 0; pass < 2; pass++)
      for (int i = 0; i < S && N < Nmax; i++) {
        slot_t *q = &sl[i];
        if (!q->r || q->r->ad != grp || q->leader >= 0 || q->fed >= q->nhist) continue;
        const int want = q->nhist - q->fed;
        if ((pass == 0) != (want == 1)) continue;
        const int take = want < Nmax - N ? want : Nmax - N;
        for (int t = 0; t < take; t++) {
          tok[N] = q->hist[q->fed + t];
          pos[N] = q->fed + t;
          seq[N++] = i;
        }
        q->fed += take;
        if (q->fed == q->nhist) { orow[nout] = N - 1; oslot[nout++] = i; }
      }
    if (N == 0) continue;
    s = tn_forward(m, st, N, tok, pos, seq, logits, orow, nout);
    now = tn_now();
    pthread_mutex_lock(&sv->mu);
    sv->met.steps++;
    sv->met.rows += N;
    srv_hist_add(&sv->met.batch, nout, srv_batch_bounds);
    pthread_mutex_unlock(&sv->mu);
    if (s != TN_OK) { /* fail the rows' requests, keep serving */
      const char *msg = tn_last_error();
      for (int k = 0; k < nout; k++) {
        srv_req *r = sl[oslot[k]].r;
        if (!r) continue;
        abort_req(sv, r, msg, 500);
        release(sl, S, r);
        req_finished(sv, r);
      }
      continue;
    }
    /* 5. sample each output row with its request's options; followers of a finished prefill
     * share the prompt's cache and sample their first token from the same logits */
    for (int k = 0; k < nout; k++) {
      const int i = oslot[k];
      if (!sl[i].r) continue;
      srv_req *r = sl[i].r;
      const float *lrow = logits + (size_t)k * V;
      for (int f = -1; f < S; f++) {
        const int si = f < 0 ? i : f;
        if (f >= 0 && !(sl[f].r == r && sl[f].leader == i)) continue;
        slot_t *q = &sl[si];
        if (f >= 0) {
          tn_state_share_prefix(m, st, f, i, r->plens[r->ch[q->c].prompt]);
          q->fed = q->nhist;
          q->leader = -1;
        }
        tn_gen_opts go;
        tn_gen_opts_default(&go);
        go.temperature = r->temperature;
        go.top_p = r->top_p;
        memcpy(row, lrow, sizeof(float) * V);
        if (r->logprobs) memcpy(row0, lrow, sizeof(float) * V);
        float lp = NAN;
        int t = tn_sample_token(row, V, &go, q->hist, q->nhist, &q->rng, &lp);
        if (t < 0) {
          abort_req(sv, r, "the model's logits are not finite (NaN or Inf)", 500);
          break;
        }
        if (q->nhist > r->plens[r->ch[q->c].prompt]) {
          pthread_mutex_lock(&sv->mu);
          srv_hist_add(&sv->met.per_token, now - q->t_last, srv_lat_bounds);
          pthread_mutex_unlock(&sv->mu);
        }
        q->t_last = now;
        emit(sv, q, t, lp, row0, V, now);
      }
      /* requests whose choices all ended leave their slots */
      pthread_mutex_lock(&r->mu);
      const bool done = r->done;
      pthread_mutex_unlock(&r->mu);
      if (done) {
        release(sl, S, r);
        req_finished(sv, r);
      }
    }
    /* single choices that ended while their request goes on (n > 1) stop being fed */
    for (int i = 0; i < S; i++)
      if (sl[i].r && sl[i].r->ch[sl[i].c].finish >= 0 && sl[i].leader < 0) sl[i].fed = sl[i].nhist;
  }
  if (active) tn_lora_deactivate(active);
  free_grave(sv, NULL);
  for (int i = 0; sl && i < S; i++) free(sl[i].hist);
  free(sl); free(tok); free(pos); free(seq); free(orow); free(oslot); free(logits); free(row); free(row0);
  tn_state_free(st);
  return NULL;
}
