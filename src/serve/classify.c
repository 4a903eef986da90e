/* classify.c - the classifier of the "auto" model (route.yaml's `classifier:`): a small model, an
 * adapter of the served base, or the base itself scores each route's label as a continuation of a
 * classification prompt, and the category is the label with the highest log-probability
 * (log P(label tokens | prompt), the sum over the label's tokens, divided by their number when
 * `normalize` is on - the default). Nothing is parsed from generated text, so any output of the
 * model maps to exactly one category.
 * The prompt ("{text}" replaced by the request's last user message or prompt) is encoded with the
 * tokenizer's special tokens, each label without; the label tokens follow the prompt's tokens as
 * encoded separately (what `tunic logits` of the concatenated ids computes). One forward runs the
 * prompt in slot 0; a second runs every label's tokens but the last in its own slot reading the
 * prompt's cache in place (tn_state_share_prefix), so the prompt is computed once.
 * A prompt longer than the classifier's context keeps its last tokens.
 * It runs on the HTTP thread of the request (one at a time, under the classifier's mutex; the
 * thread's kernel scratch is released after each classification) on its own state: the model's weights are read-only and an adapter is applied per slot
 * (tn_state_set_adapter), so the scheduler's forward calls are not disturbed.
 * Not for: the keyword rules and the route file (route.c). */
#define TN_SERVE_INTERNAL
#include <math.h>
#include <string.h>
#include "model/lora.h"
#include "serve/serve.h"
#include "tensor/tensor.h"

#define CLS_T 512 /* tokens per slot at most */

tn_status srv_classifier_init(tn_server *sv, const char *path) {
  srv_classifier *c = sv->cls;
  if (!c) return TN_OK;
  if (!c->prompt && !(c->prompt = strdup("Classify the request into one category.\nRequest: {text}\nCategory:")))
    return TN_ERR_NOMEM;
  if (c->model_dir) {
    tn_load_opts lo;
    tn_load_opts_default(&lo);
    TN_TRY(tn_model_load_opts(&c->m, c->model_dir, &lo));
    TN_TRY(tn_tokenizer_load(c->model_dir, &c->tok));
  } else {
    c->m = sv->m;
    c->tok = sv->tok;
  }
  int total = 0;
  for (int i = 0; i < sv->n_routes; i++) {
    srv_route *r = &sv->routes[i];
    if (!r->label) {
      const size_t n = strlen(r->category) + 2;
      if (!(r->label = malloc(n))) return TN_ERR_NOMEM;
      snprintf(r->label, n, " %s", r->category);
    }
    tn_encoding enc = {0};
    TN_TRY(tn_tokenizer_encode(c->tok, r->label, strlen(r->label), false, &enc));
    r->lab_n = (int)enc.n;
    r->lab_ids = malloc(sizeof(int) * (enc.n ? enc.n : 1));
    for (size_t k = 0; r->lab_ids && k < enc.n; k++) r->lab_ids[k] = enc.ids[k];
    tn_encoding_free(&enc);
    if (!r->lab_ids) return TN_ERR_NOMEM;
    if (r->lab_n == 0) return tn_error(TN_ERR_FORMAT, "%s: the label of route '%s' encodes to no tokens", path, r->category);
    for (int j = 0; j < i; j++)
      if (sv->routes[j].lab_n == r->lab_n && !memcmp(sv->routes[j].lab_ids, r->lab_ids, sizeof(int) * r->lab_n))
        return tn_error(TN_ERR_FORMAT, "%s: routes '%s' and '%s' have the same label tokens: the classifier cannot tell them apart",
                        path, sv->routes[j].category, r->category);
    total += r->lab_n;
  }
  if (sv->n_routes < 2) return tn_error(TN_ERR_FORMAT, "%s: a classifier needs at least 2 routes to choose from", path);
  c->T = c->m->cfg.max_pos < CLS_T ? c->m->cfg.max_pos : CLS_T;
  int maxlab = 0;
  for (int i = 0; i < sv->n_routes; i++) maxlab = sv->routes[i].lab_n > maxlab ? sv->routes[i].lab_n : maxlab;
  if (maxlab + 8 > c->T) return tn_error(TN_ERR_FORMAT, "%s: the labels are too long for the classifier's context (%d tokens)", path, c->T);
  const int nmax = c->T > total ? c->T : total;
  return tn_state_create(&c->st, c->m, 1 + sv->n_routes, c->T, nmax, false);
}

void srv_classifier_free(srv_classifier *c) {
  if (!c) return;
  tn_state_free(c->st);
  if (c->model_dir) {
    tn_model_free(c->m);
    tn_tokenizer_free(c->tok);
  }
  pthread_mutex_destroy(&c->mu); /* initialised with the struct (route.c) */
  free(c->adapter); free(c->model_dir); free(c->prompt);
  free(c);
}

/* the classification prompt with {text} replaced (every occurrence) */
static char *fill(const char *tpl, const char *text) {
  srv_buf b = {0};
  for (const char *p = tpl;;) {
    const char *q = strstr(p, "{text}");
    if (!q) { srv_buf_add(&b, p, strlen(p)); break; }
    srv_buf_add(&b, p, (size_t)(q - p));
    srv_buf_add(&b, text, strlen(text));
    p = q + 6;
  }
  return b.p;
}

/* log_softmax(row)[t] in double */
static double logp(const float *row, int V, int t) {
  double mx = -INFINITY, z = 0;
  for (int v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
  for (int v = 0; v < V; v++) z += exp(row[v] - mx);
  return row[t] - mx - log(z);
}

/* the scores of every route's label (c->mu held); sc (n_routes) */
static tn_status score_labels(tn_server *sv, srv_classifier *c, tn_lora_set *ad, const int *ids, int P, double *sc) {
  const tn_model *m = c->m;
  const int V = m->cfg.V, R = sv->n_routes;
  tn_state *st = c->st;
  int *tok = malloc(sizeof(int) * st->Nmax), *pos = malloc(sizeof(int) * st->Nmax), *seq = malloc(sizeof(int) * st->Nmax);
  int *orow = malloc(sizeof(int) * st->Nmax);
  float *lg = malloc(sizeof(float) * (size_t)st->Nmax * V);
  tn_status s = tok && pos && seq && orow && lg ? TN_OK : tn_error(TN_ERR_NOMEM, "route classifier: out of memory");
  for (int j = 0; j <= R && s == TN_OK; j++) {
    st->len[j] = 0;
    st->pfx_len[j] = 0;
    s = tn_state_set_adapter(st, j, ad);
  }
  if (s == TN_OK) { /* the prompt in slot 0: its last row predicts every label's first token */
    for (int i = 0; i < P; i++) tok[i] = ids[i], pos[i] = i, seq[i] = 0;
    orow[0] = P - 1;
    s = tn_forward(m, st, P, tok, pos, seq, lg, orow, 1);
  }
  for (int k = 0; k < R && s == TN_OK; k++) sc[k] = logp(lg, V, sv->routes[k].lab_ids[0]);
  int N = 0;
  for (int k = 0; k < R && s == TN_OK; k++) { /* each label but its last token, after the shared prompt */
    const srv_route *r = &sv->routes[k];
    if (r->lab_n > 1) tn_state_share_prefix(m, st, 1 + k, 0, P);
    for (int t = 0; t + 1 < r->lab_n; t++, N++) tok[N] = r->lab_ids[t], pos[N] = P + t, seq[N] = 1 + k;
  }
  if (s == TN_OK && N > 0) s = tn_forward(m, st, N, tok, pos, seq, lg, NULL, N);
  N = 0;
  for (int k = 0; k < R && s == TN_OK; k++) {
    const srv_route *r = &sv->routes[k];
    for (int t = 1; t < r->lab_n; t++, N++) sc[k] += logp(lg + (size_t)N * V, V, r->lab_ids[t]);
    if (c->normalize) sc[k] /= r->lab_n;
  }
  for (int j = 0; j <= R; j++) tn_state_set_adapter(st, j, NULL);
  free(tok); free(pos); free(seq); free(orow); free(lg);
  return s;
}

tn_status srv_classify(tn_server *sv, const char *text, int *best, double *score) {
  srv_classifier *c = sv->cls;
  srv_adapter *ad = NULL;
  if (c->adapter && !(ad = srv_adapter_get(sv, c->adapter)))
    return tn_error(TN_ERR_ARG, "the route classifier's adapter '%s' is not loaded", c->adapter);
  char *prompt = fill(c->prompt, text ? text : "");
  tn_encoding enc = {0};
  tn_status s = prompt ? tn_tokenizer_encode(c->tok, prompt, strlen(prompt), true, &enc) : TN_ERR_NOMEM;
  free(prompt);
  double *sc = malloc(sizeof(double) * sv->n_routes);
  if (s == TN_OK && (!sc || enc.n == 0)) s = tn_error(sc ? TN_ERR_ARG : TN_ERR_NOMEM, "route classifier: an empty prompt");
  if (s == TN_OK) {
    int maxlab = 0;
    for (int i = 0; i < sv->n_routes; i++) maxlab = sv->routes[i].lab_n > maxlab ? sv->routes[i].lab_n : maxlab;
    const int keep = c->T - maxlab; /* a long prompt keeps its last tokens */
    const int P = (int)enc.n < keep ? (int)enc.n : keep;
    int *ids = malloc(sizeof(int) * (size_t)P);
    if (!ids) s = TN_ERR_NOMEM;
    for (int i = 0; ids && i < P; i++) ids[i] = enc.ids[enc.n - P + i];
    if (ids) {
      pthread_mutex_lock(&c->mu);
      s = score_labels(sv, c, ad ? ad->set : NULL, ids, P, sc);
      /* the kernels' per-thread scratch of this connection thread and of its OpenMP team: the
       * thread ends with its connection, and nothing else would free them */
#pragma omp parallel
      {
        tn_tensor_scratch_release();
        tn_forward_thread_release();
      }
      tn_tensor_scratch_release();
      tn_forward_thread_release();
      pthread_mutex_unlock(&c->mu);
    }
    free(ids);
  }
  if (s == TN_OK) {
    int b = 0;
    for (int k = 1; k < sv->n_routes; k++) if (sc[k] > sc[b]) b = k;
    *best = b;
    *score = sc[b];
  }
  free(sc);
  tn_encoding_free(&enc);
  srv_adapter_unref(sv, ad);
  return s;
}
