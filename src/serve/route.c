/* route.c - routing by prompt category for the model "auto" of `tunic serve --route route.yaml`:
 *
 *   default: base                 # where prompts no rule matches go (the base, or an adapter)
 *   classifier:                   # optional: scores each route's label (classify.c)
 *     adapter: router             # an adapter of the served base (--adapter router=DIR), or
 *     model: DIR                  # a separate small model with its tokenizer (neither: the base)
 *     prompt: "Request: {text}\nCategory:"   # {text}: the last user message / the prompt
 *     normalize: true             # mean log-prob per label token (default); false: the sum
 *     min_score: -3               # optional: a best score below it goes to the default
 *   routes:
 *     - category: math            # the name returned in x-tunic-route and counted in /metrics
 *       adapter: math             # an adapter loaded with --adapter math=DIR (or "base")
 *       keywords: [solve, equation, "+", integral]   # optional with a classifier
 *       label: " math"            # the classifier's continuation (default " " + category)
 *
 * A prompt's category is the route whose keywords occur most often in the last user message
 * (case-insensitive substring counts; ties go to the earlier route); when no keyword matches, the
 * classifier's choice (the label of highest log-probability), else the default.
 * Not for: the classifier's scoring (classify.c). */
#define TN_SERVE_INTERNAL
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "serve/serve.h"

static const char *scalar(yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool yaml_bool(const char *v, bool *out) {
  if (!strcmp(v, "true") || !strcmp(v, "yes")) return *out = true, true;
  if (!strcmp(v, "false") || !strcmp(v, "no")) return *out = false, true;
  return false;
}

/* route.yaml's `classifier:` mapping */
static tn_status load_classifier(tn_server *sv, yaml_document_t *doc, yaml_node_t *vn, const char *path, size_t line) {
  if (vn->type != YAML_MAPPING_NODE)
    return tn_error(TN_ERR_FORMAT, "%s:%zu: 'classifier' must be a mapping (adapter or model, prompt, normalize, min_score)", path, line);
  srv_classifier *c = sv->cls = calloc(1, sizeof *sv->cls);
  if (!c) return TN_ERR_NOMEM;
  pthread_mutex_init(&c->mu, NULL);
  c->normalize = true;
  for (yaml_node_pair_t *q = vn->data.mapping.pairs.start; q < vn->data.mapping.pairs.top; q++) {
    yaml_node_t *k2 = yaml_document_get_node(doc, q->key), *v2 = yaml_document_get_node(doc, q->value);
    const char *kk = scalar(k2), *vv = scalar(v2);
    const size_t l2 = k2->start_mark.line + 1;
    char *end = NULL;
    if (kk && vv && (!strcmp(kk, "adapter") || !strcmp(kk, "model") || !strcmp(kk, "prompt"))) {
      char **dst = !strcmp(kk, "adapter") ? &c->adapter : !strcmp(kk, "model") ? &c->model_dir : &c->prompt;
      free(*dst);
      if (!(*dst = strdup(vv))) return TN_ERR_NOMEM;
    } else if (kk && vv && !strcmp(kk, "normalize")) {
      if (!yaml_bool(vv, &c->normalize)) return tn_error(TN_ERR_FORMAT, "%s:%zu: 'normalize' must be true or false", path, l2);
    } else if (kk && vv && !strcmp(kk, "min_score")) {
      c->min_score = strtod(vv, &end);
      c->has_min = true;
      if (!*vv || *end || !isfinite(c->min_score))
        return tn_error(TN_ERR_FORMAT, "%s:%zu: 'min_score' must be a number (a log-probability), not '%s'", path, l2, vv);
    } else {
      return tn_error(TN_ERR_FORMAT, "%s:%zu: unknown or malformed classifier field '%s' (adapter, model, prompt, normalize, min_score)",
                      path, l2, kk ? kk : "?");
    }
  }
  if (c->adapter && c->model_dir)
    return tn_error(TN_ERR_FORMAT, "%s:%zu: the classifier is an adapter of the served model or a separate model, not both", path, line);
  if (c->prompt && !strstr(c->prompt, "{text}"))
    return tn_error(TN_ERR_FORMAT, "%s:%zu: the classifier's prompt must contain {text} (the request's text)", path, line);
  return TN_OK;
}

tn_status srv_route_load(tn_server *sv, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return tn_error(TN_ERR_IO, "%s: cannot open the route file", path);
  yaml_parser_t p;
  yaml_document_t doc;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_file(&p, f);
  tn_status s = TN_OK;
  if (!yaml_parser_load(&p, &doc)) {
    s = tn_error(TN_ERR_FORMAT, "%s:%zu: YAML error: %s", path, p.problem_mark.line + 1, p.problem ? p.problem : "?");
    yaml_parser_delete(&p);
    fclose(f);
    return s;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root || root->type != YAML_MAPPING_NODE) s = tn_error(TN_ERR_FORMAT, "%s: expected a mapping with 'routes' and 'default'", path);
  for (yaml_node_pair_t *kv = s == TN_OK ? root->data.mapping.pairs.start : NULL; kv && kv < root->data.mapping.pairs.top && s == TN_OK; kv++) {
    yaml_node_t *kn = yaml_document_get_node(&doc, kv->key), *vn = yaml_document_get_node(&doc, kv->value);
    const char *key = scalar(kn);
    const size_t line = kn ? kn->start_mark.line + 1 : 0;
    if (key && !strcmp(key, "default")) {
      if (!scalar(vn)) s = tn_error(TN_ERR_FORMAT, "%s:%zu: 'default' must name an adapter or 'base'", path, line);
      else sv->route_default = strdup(scalar(vn));
    } else if (key && !strcmp(key, "classifier") && !sv->cls) {
      s = load_classifier(sv, &doc, vn, path, line);
    } else if (key && !strcmp(key, "routes")) {
      if (vn->type != YAML_SEQUENCE_NODE) { s = tn_error(TN_ERR_FORMAT, "%s:%zu: 'routes' must be a list", path, line); break; }
      const int n = (int)(vn->data.sequence.items.top - vn->data.sequence.items.start);
      if (n > 31) { s = tn_error(TN_ERR_FORMAT, "%s:%zu: at most 31 routes", path, line); break; }
      sv->routes = calloc(n ? n : 1, sizeof *sv->routes);
      if (!sv->routes) { s = TN_ERR_NOMEM; break; }
      for (yaml_node_item_t *it = vn->data.sequence.items.start; it < vn->data.sequence.items.top && s == TN_OK; it++) {
        yaml_node_t *rn = yaml_document_get_node(&doc, *it);
        const size_t rl = rn->start_mark.line + 1;
        if (rn->type != YAML_MAPPING_NODE) { s = tn_error(TN_ERR_FORMAT, "%s:%zu: a route must be a mapping (category, adapter, keywords)", path, rl); break; }
        srv_route *r = &sv->routes[sv->n_routes++];
        for (yaml_node_pair_t *q = rn->data.mapping.pairs.start; q < rn->data.mapping.pairs.top && s == TN_OK; q++) {
          yaml_node_t *k2 = yaml_document_get_node(&doc, q->key), *v2 = yaml_document_get_node(&doc, q->value);
          const char *kk = scalar(k2);
          const size_t l2 = k2->start_mark.line + 1;
          if (kk && (!strcmp(kk, "category") || !strcmp(kk, "adapter") || !strcmp(kk, "label")) && scalar(v2)) {
            char **dst = !strcmp(kk, "category") ? &r->category : !strcmp(kk, "adapter") ? &r->adapter : &r->label;
            free(*dst);
            *dst = strdup(scalar(v2));
          } else if (kk && !strcmp(kk, "keywords") && v2->type == YAML_SEQUENCE_NODE) {
            const int nk = (int)(v2->data.sequence.items.top - v2->data.sequence.items.start);
            r->kw = calloc(nk ? nk : 1, sizeof *r->kw);
            if (!r->kw) { s = TN_ERR_NOMEM; break; }
            for (yaml_node_item_t *w = v2->data.sequence.items.start; w < v2->data.sequence.items.top; w++) {
              const char *ws = scalar(yaml_document_get_node(&doc, *w));
              if (!ws || !*ws) { s = tn_error(TN_ERR_FORMAT, "%s:%zu: keywords must be non-empty strings", path, l2); break; }
              char *low = strdup(ws);
              for (char *c = low; c && *c; c++) *c = (char)tolower((unsigned char)*c);
              r->kw[r->nkw++] = low;
            }
          } else {
            s = tn_error(TN_ERR_FORMAT, "%s:%zu: unknown or malformed route field '%s' (category: NAME, adapter: NAME, keywords: [...], "
                         "label: TEXT)", path, l2, kk ? kk : "?");
          }
        }
        if (s == TN_OK && (!r->category || !r->adapter))
          s = tn_error(TN_ERR_FORMAT, "%s:%zu: a route needs 'category' and 'adapter'", path, rl);
      }
    } else {
      s = tn_error(TN_ERR_FORMAT, "%s:%zu: unknown or repeated key '%s' (routes, default, classifier)", path, line, key ? key : "?");
    }
  }
  for (int i = 0; s == TN_OK && !sv->cls && i < sv->n_routes; i++)
    if (!sv->routes[i].nkw)
      s = tn_error(TN_ERR_FORMAT, "%s: route '%s' has no keywords and there is no classifier: it could never be chosen", path,
                   sv->routes[i].category);
  if (s == TN_OK && !sv->route_default) sv->route_default = strdup("base");
  if (s == TN_OK) s = srv_classifier_init(sv, path);
  yaml_document_delete(&doc);
  yaml_parser_delete(&p);
  fclose(f);
  return s;
}

static int count_in(const char *hay, const char *needle) {
  int n = 0;
  const size_t l = strlen(needle);
  for (const char *h = strstr(hay, needle); h; h = strstr(h + l, needle)) n++;
  return n;
}

int srv_route_pick(const tn_server *sv, const char *text, int *hits) {
  char *low = strdup(text ? text : "");
  for (char *c = low; c && *c; c++) *c = (char)tolower((unsigned char)*c);
  int best = sv->n_routes, best_n = 0;
  for (int i = 0; low && i < sv->n_routes; i++) {
    int n = 0;
    for (int k = 0; k < sv->routes[i].nkw; k++) n += count_in(low, sv->routes[i].kw[k]);
    if (n > best_n) best = i, best_n = n;
  }
  free(low);
  *hits = best_n;
  return best;
}

int srv_route_choose(tn_server *sv, const char *text, srv_req *r) {
  int hits = 0, k = srv_route_pick(sv, text, &hits), by = hits > 0 ? 0 : 2;
  double score = 0;
  if (!hits && sv->cls) {
    const double t0 = tn_now();
    if (srv_classify(sv, text, &k, &score) != TN_OK) return -1;
    by = 1;
    if (sv->cls->has_min && score < sv->cls->min_score) k = sv->n_routes, by = 2;
    pthread_mutex_lock(&sv->mu);
    sv->met.classify_seconds += tn_now() - t0;
    pthread_mutex_unlock(&sv->mu);
  }
  r->route = strdup(k < sv->n_routes ? sv->routes[k].category : "default");
  r->route_by = by == 0 ? "keywords" : by == 1 ? "classifier" : "default";
  r->route_score = score;
  pthread_mutex_lock(&sv->mu);
  sv->met.route_count[k < 31 ? k : 31]++;
  sv->met.route_by[by]++;
  pthread_mutex_unlock(&sv->mu);
  return k;
}

void srv_route_free(tn_server *sv) {
  for (int i = 0; i < sv->n_routes; i++) {
    free(sv->routes[i].category);
    free(sv->routes[i].adapter);
    for (int k = 0; k < sv->routes[i].nkw; k++) free(sv->routes[i].kw[k]);
    free(sv->routes[i].kw);
    free(sv->routes[i].label);
    free(sv->routes[i].lab_ids);
  }
  free(sv->routes);
  free(sv->route_default);
  srv_classifier_free(sv->cls);
  sv->cls = NULL;
}
