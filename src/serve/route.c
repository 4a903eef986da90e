/* route.c - routing by prompt category for the model "auto" of `tunic serve --route route.yaml`:
 *
 *   default: base                 # where prompts no rule matches go (the base, or an adapter)
 *   routes:
 *     - category: math            # the name returned in x-tunic-route and counted in /metrics
 *       adapter: math             # an adapter loaded with --adapter math=DIR (or "base")
 *       keywords: [solve, equation, "+", integral]
 *
 * A prompt's category is the route whose keywords occur most often in the last user message
 * (case-insensitive substring counts; ties go to the earlier route); none: the default.
 * Not for: a learned classifier (a classifier model or adapter naming the category is not
 * built; the keyword rules are the whole classifier here). */
#define TN_SERVE_INTERNAL
#include <ctype.h>
#include <string.h>
#include <yaml.h>
#include "serve/serve.h"

static const char *scalar(yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
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
          if (kk && (!strcmp(kk, "category") || !strcmp(kk, "adapter")) && scalar(v2)) {
            char **dst = !strcmp(kk, "category") ? &r->category : &r->adapter;
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
            s = tn_error(TN_ERR_FORMAT, "%s:%zu: unknown or malformed route field '%s' (category: NAME, adapter: NAME, keywords: [...])",
                         path, l2, kk ? kk : "?");
          }
        }
        if (s == TN_OK && (!r->category || !r->adapter || !r->nkw))
          s = tn_error(TN_ERR_FORMAT, "%s:%zu: a route needs 'category', 'adapter' and a non-empty 'keywords' list", path, rl);
      }
    } else {
      s = tn_error(TN_ERR_FORMAT, "%s:%zu: unknown key '%s' (routes, default)", path, line, key ? key : "?");
    }
  }
  if (s == TN_OK && !sv->route_default) sv->route_default = strdup("base");
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

int srv_route_pick(const tn_server *sv, const char *text) {
  char *low = strdup(text ? text : "");
  for (char *c = low; c && *c; c++) *c = (char)tolower((unsigned char)*c);
  int best = sv->n_routes, best_n = 0;
  for (int i = 0; low && i < sv->n_routes; i++) {
    int n = 0;
    for (int k = 0; k < sv->routes[i].nkw; k++) n += count_in(low, sv->routes[i].kw[k]);
    if (n > best_n) best = i, best_n = n;
  }
  free(low);
  return best;
}
