/* textmetrics.c - reference-free metrics of completions, per category: length in words (and
 * tokens when the caller counts them), distinct-1/2 over the bucket (distinct n-grams / all
 * n-grams, Li et al. 2016), mean type-token ratio per completion, the rate of refusal phrases;
 * and the keyword categoriser (`--categorize keywords.yaml`: category -> list of keywords,
 * the first category with a keyword in the prompt, case-insensitive; else "other").
 * Not for: scoring against a reference (extract.c) or a model as classifier (src/improve). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <cjson/cJSON.h>
#include "eval/eval.h"

/* ---- a set of 64-bit hashes (open addressing, 0 = empty) ---- */

static bool hs_add(tn_hashset *h, uint64_t x) {
  if (!x) x = 1;
  if (2 * (h->n + 1) > h->cap) {
    size_t cap = h->cap ? 2 * h->cap : 1024;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t) return false;
    for (size_t i = 0; i < h->cap; i++)
      if (h->v[i])
        for (size_t j = h->v[i] & (cap - 1);; j = (j + 1) & (cap - 1))
          if (!t[j]) { t[j] = h->v[i]; break; }
    free(h->v);
    h->v = t;
    h->cap = cap;
  }
  for (size_t j = x & (h->cap - 1);; j = (j + 1) & (h->cap - 1)) {
    if (h->v[j] == x) return true;
    if (!h->v[j]) { h->v[j] = x; h->n++; return true; }
  }
}

static uint64_t fnv(const char *s, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
  return h;
}

/* ---- refusals ---- */

static const char *const REFUSALS[] = {"i'm sorry", "i am sorry", "i cannot", "i can't", "i can not", "as an ai",
                                       "i'm unable", "i am unable", "i won't", "i will not", "cannot help with",
                                       "not able to help", "i must decline", NULL};

bool tn_is_refusal(const char *s) {
  size_t n = strlen(s);
  char *low = malloc(n + 1);
  if (!low) return false;
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 && (unsigned char)s[i + 2] == 0x99) {
      low[w++] = '\''; /* U+2019 right single quote */
      i += 2;
    } else {
      low[w++] = (char)tolower((unsigned char)s[i]);
    }
  }
  low[w] = 0;
  bool hit = false;
  for (int i = 0; REFUSALS[i] && !hit; i++) hit = strstr(low, REFUSALS[i]) != NULL;
  free(low);
  return hit;
}

/* ---- buckets ---- */

static tn_text_bucket *bucket(tn_text_agg *a, const char *cat) {
  if (!cat || !*cat) return NULL;
  for (int i = 0; i < a->ncats; i++)
    if (!strncmp(a->cats[i].name, cat, sizeof a->cats[i].name - 1)) return &a->cats[i];
  if (a->ncats == a->cap) {
    int cap = a->cap ? 2 * a->cap : 8;
    tn_text_bucket *nc = realloc(a->cats, sizeof *nc * cap);
    if (!nc) return NULL;
    a->cats = nc;
    a->cap = cap;
  }
  tn_text_bucket *b = &a->cats[a->ncats++];
  memset(b, 0, sizeof *b);
  snprintf(b->name, sizeof b->name, "%s", cat);
  return b;
}

void tn_text_agg_init(tn_text_agg *a) {
  memset(a, 0, sizeof *a);
  snprintf(a->all.name, sizeof a->all.name, "all");
}

static void bucket_free(tn_text_bucket *b) {
  free(b->uni.v);
  free(b->bi.v);
}

void tn_text_agg_free(tn_text_agg *a) {
  bucket_free(&a->all);
  for (int i = 0; i < a->ncats; i++) bucket_free(&a->cats[i]);
  free(a->cats);
  memset(a, 0, sizeof *a);
}

/* Words: maximal runs of non-space bytes, lower-cased, with surrounding ASCII punctuation cut. */
static tn_status bucket_add(tn_text_bucket *b, const char *s, int tokens, tn_text_stats *st) {
  b->n++;
  b->tokens += tokens;
  int words = 0;
  uint64_t prev = 0;
  tn_hashset types = {0};
  for (const char *p = s; *p;) {
    while (*p && isspace((unsigned char)*p)) p++;
    if (!*p) break;
    const char *e = p;
    while (*e && !isspace((unsigned char)*e)) e++;
    const char *ws = p, *we = e;
    while (ws < we && ispunct((unsigned char)*ws)) ws++;
    while (we > ws && ispunct((unsigned char)we[-1])) we--;
    p = e;
    if (ws == we) continue;
    char buf[256];
    size_t n = (size_t)(we - ws) < sizeof buf ? (size_t)(we - ws) : sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (char)tolower((unsigned char)ws[i]);
    uint64_t h = fnv(buf, n, 14695981039346656037ull);
    if (!hs_add(&b->uni, h) || !hs_add(&types, h)) { free(types.v); return tn_error(TN_ERR_NOMEM, "out of memory"); }
    b->uni_total++;
    if (words > 0) {
      if (!hs_add(&b->bi, prev * 31 + h * 1099511628211ull + 7)) { free(types.v); return tn_error(TN_ERR_NOMEM, "out of memory"); }
      b->bi_total++;
    }
    prev = h;
    words++;
  }
  double ttr = words ? (double)types.n / words : 0;
  free(types.v);
  bool ref = tn_is_refusal(s);
  b->words += words;
  b->ttr += ttr;
  b->refusals += ref;
  if (st) { st->words = words; st->ttr = ttr; st->refusal = ref; }
  return TN_OK;
}

tn_status tn_text_agg_add(tn_text_agg *a, const char *category, const char *completion, int tokens, tn_text_stats *st) {
  TN_TRY(bucket_add(&a->all, completion, tokens, st));
  tn_text_bucket *b = bucket(a, category);
  if (category && *category && !b) return tn_error(TN_ERR_NOMEM, "out of memory");
  return b ? bucket_add(b, completion, tokens, NULL) : TN_OK;
}

static cJSON *bucket_json(const tn_text_bucket *b, bool tokens) {
  cJSON *o = cJSON_CreateObject();
  double n = b->n ? (double)b->n : 1;
  cJSON_AddNumberToObject(o, "n", (double)b->n);
  cJSON_AddNumberToObject(o, "mean_words", b->words / n);
  if (tokens) cJSON_AddNumberToObject(o, "mean_tokens", b->tokens / n);
  cJSON_AddNumberToObject(o, "distinct_1", b->uni_total ? (double)b->uni.n / b->uni_total : 0);
  cJSON_AddNumberToObject(o, "distinct_2", b->bi_total ? (double)b->bi.n / b->bi_total : 0);
  cJSON_AddNumberToObject(o, "type_token_ratio", b->ttr / n);
  cJSON_AddNumberToObject(o, "refusal_rate", b->refusals / n);
  return o;
}

cJSON *tn_text_agg_to_json(const tn_text_agg *a, bool tokens) {
  cJSON *o = bucket_json(&a->all, tokens);
  cJSON *c = cJSON_AddObjectToObject(o, "categories");
  for (int i = 0; i < a->ncats; i++) cJSON_AddItemToObject(c, a->cats[i].name, bucket_json(&a->cats[i], tokens));
  return o;
}

static void print_b(const tn_text_bucket *b, bool tokens, FILE *f) {
  double n = b->n ? (double)b->n : 1;
  fprintf(f, "%-20s %7lld %8.1f ", b->name, (long long)b->n, b->words / n);
  if (tokens) fprintf(f, "%8.1f ", b->tokens / n);
  else fprintf(f, "%8s ", "-");
  fprintf(f, "%8.3f %8.3f %8.3f %8.1f%%\n", b->uni_total ? (double)b->uni.n / b->uni_total : 0,
          b->bi_total ? (double)b->bi.n / b->bi_total : 0, b->ttr / n, 100 * b->refusals / n);
}

void tn_text_agg_print(const tn_text_agg *a, bool tokens, FILE *f) {
  fprintf(f, "%-20s %7s %8s %8s %8s %8s %8s %9s\n", "category", "n", "words", "tokens", "dist-1", "dist-2", "TTR", "refusals");
  print_b(&a->all, tokens, f);
  for (int i = 0; i < a->ncats; i++) print_b(&a->cats[i], tokens, f);
}

/* ---- keyword categoriser ---- */

struct tn_categorizer {
  int n;
  char **names;
  char ***kw; /* per category: lower-cased keywords, NULL-terminated */
};

void tn_categorizer_free(tn_categorizer *c) {
  if (!c) return;
  for (int i = 0; i < c->n; i++) {
    for (char **k = c->kw[i]; k && *k; k++) free(*k);
    free(c->kw[i]);
    free(c->names[i]);
  }
  free(c->kw);
  free(c->names);
  free(c);
}

int tn_categorizer_count(const tn_categorizer *c) { return c ? c->n : 0; }
const char *tn_categorizer_name(const tn_categorizer *c, int i) { return c && i >= 0 && i < c->n ? c->names[i] : NULL; }

tn_status tn_categorizer_load(const char *path, tn_categorizer **out) {
  *out = NULL;
  char *text = NULL;
  size_t len;
  TN_TRY(tn_read_file(path, &text, &len));
  yaml_parser_t p;
  yaml_document_t doc;
  yaml_parser_initialize(&p);
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  tn_status s = TN_OK;
  if (!yaml_parser_load(&p, &doc)) {
    s = tn_error(TN_ERR_FORMAT, "%s:%zu: YAML: %s", path, p.problem_mark.line + 1, p.problem ? p.problem : "parse error");
    yaml_parser_delete(&p);
    free(text);
    return s;
  }
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  tn_categorizer *c = calloc(1, sizeof *c);
  if (!c) s = tn_error(TN_ERR_NOMEM, "out of memory");
  else if (!root || root->type != YAML_MAPPING_NODE)
    s = tn_error(TN_ERR_FORMAT, "%s: expected a mapping: category: [keyword, ...]", path);
  int np = s == TN_OK ? (int)(root->data.mapping.pairs.top - root->data.mapping.pairs.start) : 0;
  if (s == TN_OK && np == 0) s = tn_error(TN_ERR_FORMAT, "%s: no categories", path);
  if (s == TN_OK) {
    c->names = calloc((size_t)np, sizeof *c->names);
    c->kw = calloc((size_t)np, sizeof *c->kw);
    if (!c->names || !c->kw) s = tn_error(TN_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < np && s == TN_OK; i++) {
    yaml_node_pair_t *pr = &root->data.mapping.pairs.start[i];
    yaml_node_t *k = yaml_document_get_node(&doc, pr->key), *v = yaml_document_get_node(&doc, pr->value);
    size_t line = k ? k->start_mark.line + 1 : 0;
    if (!k || k->type != YAML_SCALAR_NODE || !v || v->type != YAML_SEQUENCE_NODE) {
      s = tn_error(TN_ERR_FORMAT, "%s:%zu: each category needs a list of keywords (math: [sum, \"how many\"])", path, line);
      break;
    }
    c->names[i] = tn_strdup((const char *)k->data.scalar.value);
    int nk = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    c->kw[i] = calloc((size_t)nk + 1, sizeof **c->kw);
    c->n = i + 1;
    if (!c->names[i] || !c->kw[i]) { s = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
    for (int j = 0; j < nk; j++) {
      yaml_node_t *it = yaml_document_get_node(&doc, v->data.sequence.items.start[j]);
      if (!it || it->type != YAML_SCALAR_NODE || !it->data.scalar.length) {
        s = tn_error(TN_ERR_FORMAT, "%s:%zu: category '%s': keyword %d is not a non-empty string", path,
                     it ? it->start_mark.line + 1 : line, c->names[i], j + 1);
        break;
      }
      char *kw = tn_strdup((const char *)it->data.scalar.value);
      if (!kw) { s = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
      for (char *q = kw; *q; q++) *q = (char)tolower((unsigned char)*q);
      c->kw[i][j] = kw;
    }
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&p);
  free(text);
  if (s != TN_OK) { tn_categorizer_free(c); return s; }
  *out = c;
  return TN_OK;
}

const char *tn_categorize(const tn_categorizer *c, const char *prompt) {
  size_t n = strlen(prompt);
  char *low = malloc(n + 1);
  if (!low) return "other";
  for (size_t i = 0; i <= n; i++) low[i] = (char)tolower((unsigned char)prompt[i]);
  const char *hit = "other";
  for (int i = 0; i < c->n && !strcmp(hit, "other"); i++)
    for (char **k = c->kw[i]; *k; k++)
      if (strstr(low, *k)) { hit = c->names[i]; break; }
  free(low);
  return hit;
}
