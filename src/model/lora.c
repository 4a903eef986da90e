/* lora.c - LoRA adapter sets in PEFT's format: target matching (PEFT's rules, PCRE2
 * for regexes), creation with PEFT's init, one flat parameter buffer per set,
 * attach/detach, dropout control, adapter_config.json + adapter_model.safetensors
 * save/load with validation, and merging into W.
 * The matmul side (y += scale * B A dropout(x) and its backward) is in
 * src/tensor/linear.c. Not for: gradients and optimizer rows (src/train/lora_grads.c),
 * trainers, checkpoints of runs. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include "base/json.h"
#include "model/lora.h"

static const char *kind_names[TN_LORA_NKINDS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
const char *tn_lora_kind_name(int kind) {
  return kind >= 0 && kind < TN_LORA_NKINDS ? kind_names[kind] : "?";
}

void tn_lora_opts_default(tn_lora_opts *o) {
  memset(o, 0, sizeof *o);
  o->rank = 8;
  o->alpha = 16.0f;
  o->dropout = 0.0f;
  o->targets = NULL;
  o->name = "default";
}

static tn_mat *kind_mat(tn_layer *y, int k) {
  switch (k) {
  case TN_LORA_Q: return &y->wq;
  case TN_LORA_K: return &y->wk;
  case TN_LORA_V: return &y->wv;
  case TN_LORA_O: return &y->wo;
  case TN_LORA_GATE: return &y->gate;
  case TN_LORA_UP: return &y->up;
  default: return &y->down;
  }
}

static void module_name(char *dst, size_t cap, int layer, int kind) {
  snprintf(dst, cap, "model.layers.%d.%s.%s", layer, kind <= TN_LORA_O ? "self_attn" : "mlp", kind_names[kind]);
}

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* ---------------------------------------------------------------------------------
 * Target matching, PEFT's check_target_module_exists: a string is a regex that must
 * match the whole module name; a list matches a name equal to an entry or ending in
 * "." + entry; layers_to_transform then restricts to those layer indices. */
typedef struct {
  bool all_linear;
  pcre2_code *re;           /* regex targets */
  char **names;             /* list targets (nnames) */
  int nnames;
  pcre2_code *ex_re;        /* exclude_modules as a regex */
  char **ex;                /* exclude_modules as a list (nex) */
  int nex;
  int *layers;              /* layers_to_transform (nlayers), NULL: all */
  int nlayers;
  /* rank_pattern / alpha_pattern: "(^|.*\.)KEY$" matched from the start, first wins */
  pcre2_code **pr, **pa;
  int *pr_val, npr, npa;
  float *pa_val;
} matcher;

static void matcher_free(matcher *mt) {
  pcre2_code_free(mt->re);
  pcre2_code_free(mt->ex_re);
  for (int i = 0; i < mt->nnames; i++) free(mt->names[i]);
  for (int i = 0; i < mt->nex; i++) free(mt->ex[i]);
  for (int i = 0; i < mt->npr; i++) pcre2_code_free(mt->pr[i]);
  for (int i = 0; i < mt->npa; i++) pcre2_code_free(mt->pa[i]);
  free(mt->names); free(mt->ex); free(mt->layers);
  free(mt->pr); free(mt->pa); free(mt->pr_val); free(mt->pa_val);
  memset(mt, 0, sizeof *mt);
}

/* bad patterns: TN_ERR_ARG for options, TN_ERR_FORMAT for files (what names the source) */
static tn_status compile_re(pcre2_code **out, const char *pat, const char *what, tn_status bad) {
  int err;
  PCRE2_SIZE off;
  *out = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
  if (!*out) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(err, msg, sizeof msg);
    return tn_error(bad, "%s: bad regular expression '%s' at offset %zu: %s", what, pat, (size_t)off,
                    (const char *)msg);
  }
  return TN_OK;
}

/* fullmatch (anchored at both ends) or match (anchored at the start only) */
static bool re_match(const pcre2_code *re, const char *s, bool full) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
  if (!md) return false;
  int rc = pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, PCRE2_ANCHORED | (full ? PCRE2_ENDANCHORED : 0), md, NULL);
  pcre2_match_data_free(md);
  return rc >= 0;
}

static bool list_match(char **names, int n, const char *key) {
  size_t kl = strlen(key);
  for (int i = 0; i < n; i++) {
    size_t nl = strlen(names[i]);
    if (!strcmp(key, names[i])) return true;
    if (kl > nl && key[kl - nl - 1] == '.' && !strcmp(key + kl - nl, names[i])) return true;
  }
  return false;
}

static bool matcher_hit(const matcher *mt, const char *key, int layer) {
  bool hit = mt->all_linear || (mt->re ? re_match(mt->re, key, true) : list_match(mt->names, mt->nnames, key));
  if (!hit) return false;
  if (mt->ex_re && re_match(mt->ex_re, key, true)) return false;
  if (mt->nex && list_match(mt->ex, mt->nex, key)) return false;
  if (mt->layers) {
    bool in = false;
    for (int i = 0; i < mt->nlayers; i++) in |= mt->layers[i] == layer;
    if (!in) return false;
  }
  return true;
}

static bool is_regex_text(const char *s) { return strpbrk(s, "\\^$*+?()[]{}|") != NULL; }

/* Split "a, b,c" into trimmed non-empty names. */
static tn_status split_names(const char *s, char ***out, int *n, const char *what) {
  *out = NULL;
  *n = 0;
  char **v = calloc(strlen(s) / 2 + 2, sizeof *v);
  if (!v) return tn_error(TN_ERR_NOMEM, "out of memory");
  int k = 0;
  const char *p = s;
  while (*p) {
    const char *e = strchr(p, ',');
    if (!e) e = p + strlen(p);
    const char *a = p, *b = e;
    while (a < b && (*a == ' ' || *a == '\t')) a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
    if (b > a) {
      v[k] = malloc(b - a + 1);
      if (!v[k]) {
        for (int i = 0; i < k; i++) free(v[i]);
        free(v);
        return tn_error(TN_ERR_NOMEM, "out of memory");
      }
      memcpy(v[k], a, b - a);
      v[k][b - a] = 0;
      k++;
    }
    p = *e ? e + 1 : e;
  }
  if (!k) { free(v); return tn_error(TN_ERR_ARG, "%s: no module names in '%s'", what, s); }
  *out = v;
  *n = k;
  return TN_OK;
}

/* ---------------------------------------------------------------------------------
 * Sets: allocation of the flat buffers for a list of (layer, kind, r) modules. */
static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

static tn_status set_new(tn_model *m, const char *name, int n, tn_lora_set **out) {
  tn_lora_set *s = calloc(1, sizeof *s);
  if (!s) return tn_error(TN_ERR_NOMEM, "out of memory");
  s->model = m;
  snprintf(s->name, sizeof s->name, "%s", name && *name ? name : "default");
  s->mods = calloc(n > 0 ? n : 1, sizeof *s->mods);
  if (!s->mods) { free(s); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  s->n = n;
  *out = s;
  return TN_OK;
}

/* mods[i].layer/kind/lora.r/alpha set: fill names, mats, scales and carve flat. */
static tn_status set_carve(tn_lora_set *s) {
  size_t total = 0;
  for (int i = 0; i < s->n; i++) {
    tn_lora_module *md = &s->mods[i];
    md->mat = kind_mat(&s->model->w.layers[md->layer], md->kind);
    module_name(md->name, sizeof md->name, md->layer, md->kind);
    snprintf(md->name_a, sizeof md->name_a, "base_model.model.%s.lora_A.weight", md->name);
    snprintf(md->name_b, sizeof md->name_b, "base_model.model.%s.lora_B.weight", md->name);
    const int r = md->lora.r;
    md->lora.scale = s->rslora ? md->alpha / sqrtf((float)r) : md->alpha / (float)r;
    md->lora.enabled = true;
    md->lora.dropout = s->dropout;
    total += round16((size_t)r * md->mat->in) + round16((size_t)md->mat->out * r);
  }
  s->n_floats = total;
  s->flat = tn_alloc((total ? total : 1) * sizeof(float));
  const int L = s->model->cfg.L;
  s->at = malloc(sizeof(int) * (size_t)L * TN_LORA_NKINDS);
  if (!s->flat || !s->at) return TN_ERR_NOMEM;
  for (int i = 0; i < L * TN_LORA_NKINDS; i++) s->at[i] = -1;
  for (int i = 0; i < s->n; i++) s->at[s->mods[i].layer * TN_LORA_NKINDS + s->mods[i].kind] = i;
  size_t off = 0;
  for (int i = 0; i < s->n; i++) {
    tn_lora_module *md = &s->mods[i];
    md->lora.A = s->flat + off;  // (r, in)
    off += round16((size_t)md->lora.r * md->mat->in);
    md->lora.B = s->flat + off;  // (out, r)
    off += round16((size_t)md->mat->out * md->lora.r);
  }
  return TN_OK;
}


void tn_lora_free(tn_lora_set *s) {
  if (!s) return;
  tn_lora_deactivate(s);
  tn_free(s->flat);
  tn_free(s->gflat);
  free(s->params);
  free(s->mods);
  free(s->targets_json);
  free(s->layers_json);
  free(s->exclude_json);
  free(s->base_model);
  free(s->at);
  free(s);
}

/* ---------------------------------------------------------------------------------
 * Several adapters in one forward call (lora.h): each slot of a state may name a set; the rows of
 * a call are grouped by set, and each projection adds each group's delta to its rows (gathered
 * into a buffer when they are not contiguous). */
typedef struct tn_lora_rows {
  int S, nset;               /* slots; slots with a set */
  tn_lora_set **slot;        /* (S) */
  int ng;                    /* this call's groups */
  tn_lora_set **gset;        /* (S) a group's set */
  int *g0;                   /* (S + 1) group g's rows are rows[g0[g] .. g0[g+1]) (ascending) */
  int *rows;                 /* (Nmax) */
  float *xb, *yb;            /* (Nmax, widest projection) gathered rows, when not contiguous */
  size_t bcap;               /* floats of each of xb, yb */
} tn_lora_rows;

void tn_state_adapters_free(tn_state *st) {
  tn_lora_rows *r = st->ad;
  if (!r) return;
  free(r->slot); free(r->gset); free(r->g0); free(r->rows); tn_free(r->xb); tn_free(r->yb);
  free(r);
  st->ad = NULL;
}

tn_status tn_state_set_adapter(tn_state *st, int slot, tn_lora_set *set) {
  if (slot < 0 || slot >= st->S) return tn_error(TN_ERR_ARG, "state: slot %d out of range (%d slots)", slot, st->S);
  if (st->train && set) return tn_error(TN_ERR_ARG, "state: per-slot adapters are for inference states");
  if (set && set->merged) return tn_error(TN_ERR_ARG, "adapter '%s' is merged into the weights", set->name);
  if (!st->ad) {
    if (!set) return TN_OK;
    tn_lora_rows *r = calloc(1, sizeof *r);
    if (r) {
      r->S = st->S;
      r->slot = calloc((size_t)st->S, sizeof *r->slot);
      r->gset = calloc((size_t)st->S, sizeof *r->gset);
      r->g0 = calloc((size_t)st->S + 1, sizeof *r->g0);
      r->rows = calloc((size_t)st->Nmax, sizeof *r->rows);
    }
    st->ad = r;
    if (!r || !r->slot || !r->gset || !r->g0 || !r->rows) {
      tn_state_adapters_free(st);
      return tn_error(TN_ERR_NOMEM, "out of memory for per-slot adapters");
    }
  }
  tn_lora_rows *r = st->ad;
  if (set) { /* gather buffers for the widest projection, allocated here: a forward cannot fail */
    const tn_config *c = &set->model->cfg;
    size_t w = (size_t)c->C;
    if ((size_t)c->H * c->D > w) w = (size_t)c->H * c->D;
    if ((size_t)c->F > w) w = (size_t)c->F;
    const size_t need = (size_t)st->Nmax * w;
    if (need > r->bcap) {
      tn_free(r->xb); tn_free(r->yb);
      r->xb = tn_alloc(need * sizeof(float));
      r->yb = tn_alloc(need * sizeof(float));
      r->bcap = r->xb && r->yb ? need : 0;
      if (!r->bcap) return tn_error(TN_ERR_NOMEM, "out of memory for per-slot adapters (%zu MB)", need * 8 >> 20);
    }
  }
  r->nset += (set != NULL) - (r->slot[slot] != NULL);
  r->slot[slot] = set;
  return TN_OK;
}

tn_lora_set *tn_state_adapter(const tn_state *st, int slot) {
  return st->ad && slot >= 0 && slot < st->S ? st->ad->slot[slot] : NULL;
}

bool tn_lora_rows_plan(tn_state *st, int N, const int *seq) {
  tn_lora_rows *r = st->ad;
  r->ng = 0;
  if (r->nset == 0) return false;
  int n = 0;
  for (int i = 0; i < N; i++) { /* groups in order of first appearance; rows ascending within each */
    tn_lora_set *s = r->slot[seq[i]];
    if (!s) continue;
    int g = 0;
    while (g < r->ng && r->gset[g] != s) g++;
    if (g < r->ng) continue;
    r->gset[r->ng] = s;
    r->g0[r->ng++] = n;
    for (int k = i; k < N; k++)
      if (r->slot[seq[k]] == s) r->rows[n++] = k;
  }
  r->g0[r->ng] = n;
  return r->ng > 0;
}

void tn_lora_rows_apply(tn_state *st, int layer, int kind, float *y, const float *x, const tn_mat *W, int N) {
  tn_lora_rows *r = st->ad;
  (void)N;
  for (int g = 0; g < r->ng; g++) {
    const tn_lora_set *s = r->gset[g];
    const int mi = s->at[layer * TN_LORA_NKINDS + kind];
    if (mi < 0 || !s->mods[mi].lora.enabled) continue;
    const int *rows = r->rows + r->g0[g], n = r->g0[g + 1] - r->g0[g];
    tn_mat a = {.out = W->out, .in = W->in, .dtype = TN_F32, .lora = (tn_lora *)&s->mods[mi].lora};
    if (rows[n - 1] - rows[0] == n - 1) { /* contiguous: in place */
      tn_linear_lora(y + (size_t)rows[0] * W->out, x + (size_t)rows[0] * W->in, &a, n);
      continue;
    }
    for (int k = 0; k < n; k++) memcpy(r->xb + (size_t)k * W->in, x + (size_t)rows[k] * W->in, sizeof(float) * W->in);
    memset(r->yb, 0, sizeof(float) * (size_t)n * W->out);
    tn_linear_lora(r->yb, r->xb, &a, n);  // (n, out)
    for (int k = 0; k < n; k++) {
      float *yr = y + (size_t)rows[k] * W->out;
      const float *d = r->yb + (size_t)k * W->out;
      for (int o = 0; o < W->out; o++) yr[o] += d[o];
    }
  }
}

/* ---------------------------------------------------------------------------------
 * Creation. */
tn_status tn_lora_create(tn_model *m, const tn_lora_opts *o, tn_lora_set **out) {
  *out = NULL;
  if (o->rank <= 0) return tn_error(TN_ERR_ARG, "--lora-rank must be > 0 (got %d)", o->rank);
  if (!(o->dropout >= 0.0f && o->dropout < 1.0f))
    return tn_error(TN_ERR_ARG, "--lora-dropout must be in [0, 1) (got %g)", o->dropout);
  if (!isfinite(o->alpha) || o->alpha <= 0) return tn_error(TN_ERR_ARG, "--lora-alpha must be > 0 (got %g)", o->alpha);
  const char *targets = o->targets && *o->targets ? o->targets : "q_proj,k_proj,v_proj,o_proj";
  matcher mt = {0};
  tn_status st = TN_OK;
  bool regex = false;
  if (!strcmp(targets, "all-linear")) mt.all_linear = true;
  else if (is_regex_text(targets)) { regex = true; st = compile_re(&mt.re, targets, "--lora-targets", TN_ERR_ARG); }
  else st = split_names(targets, &mt.names, &mt.nnames, "--lora-targets");
  if (st != TN_OK) { matcher_free(&mt); return st; }
  const tn_config *c = &m->cfg;
  int n = 0;
  char key[96];
  for (int l = 0; l < c->L; l++)
    for (int k = 0; k < TN_LORA_NKINDS; k++) {
      module_name(key, sizeof key, l, k);
      n += matcher_hit(&mt, key, l);
    }
  /* every listed name must match something (PEFT raises when nothing matches) */
  for (int i = 0; i < mt.nnames && st == TN_OK; i++) {
    bool any = false;
    for (int l = 0; l < c->L && !any; l++)
      for (int k = 0; k < TN_LORA_NKINDS && !any; k++) {
        module_name(key, sizeof key, l, k);
        any = list_match(&mt.names[i], 1, key);
      }
    if (!any)
      st = tn_error(TN_ERR_ARG, "--lora-targets: '%s' matches no module (tunic adapts q_proj, k_proj, v_proj, o_proj, "
                                "gate_proj, up_proj, down_proj)", mt.names[i]);
  }
  if (st == TN_OK && n == 0) st = tn_error(TN_ERR_ARG, "--lora-targets: '%s' matches no module", targets);
  tn_lora_set *s = NULL;
  if (st == TN_OK) st = set_new(m, o->name, n, &s);
  if (st != TN_OK) { matcher_free(&mt); return st; }
  s->rank = o->rank;
  s->alpha = o->alpha;
  s->dropout = o->dropout;
  s->rslora = o->rslora;
  int i = 0;
  for (int l = 0; l < c->L; l++)
    for (int k = 0; k < TN_LORA_NKINDS; k++) {
      module_name(key, sizeof key, l, k);
      if (!matcher_hit(&mt, key, l)) continue;
      s->mods[i].layer = l;
      s->mods[i].kind = k;
      s->mods[i].lora.r = o->rank;
      s->mods[i].alpha = o->alpha;
      i++;
    }
  /* target_modules as adapter_config.json will hold it */
  cJSON *tj;
  if (mt.all_linear || regex) {
    tj = cJSON_CreateString(targets);
  } else {
    tj = cJSON_CreateArray();
    for (int j = 0; j < mt.nnames; j++) cJSON_AddItemToArray(tj, cJSON_CreateString(mt.names[j]));
  }
  s->targets_json = cJSON_PrintUnformatted(tj);
  cJSON_Delete(tj);
  matcher_free(&mt);
  st = set_carve(s);
  if (st != TN_OK) { tn_lora_free(s); return st; }
  /* PEFT's init: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0;
   * each module's dropout masks get their own seed */
  tn_rng rng;
  tn_rng_seed(&rng, o->seed);
  for (int j = 0; j < s->n; j++) {
    tn_lora_module *md = &s->mods[j];
    const float bound = 1.0f / sqrtf((float)md->mat->in);
    const size_t na = (size_t)md->lora.r * md->mat->in;
    for (size_t q = 0; q < na; q++) md->lora.A[q] = (2.0f * tn_rng_uniform(&rng) - 1.0f) * bound;
  }
  tn_lora_dropout_seed(s, o->seed);
  *out = s;
  return TN_OK;
}

tn_status tn_lora_attach(tn_model *m, const tn_lora_opts *o, tn_lora_set **out) {
  TN_TRY(tn_lora_create(m, o, out));
  tn_lora_activate(*out);
  return TN_OK;
}

/* ---------------------------------------------------------------------------------
 * Activation and modes. */
void tn_lora_activate(tn_lora_set *s) {
  tn_model *m = s->model;
  for (int l = 0; l < m->cfg.L; l++)
    for (int k = 0; k < TN_LORA_NKINDS; k++) kind_mat(&m->w.layers[l], k)->lora = NULL;
  if (s->merged) return;
  for (int i = 0; i < s->n; i++) s->mods[i].mat->lora = &s->mods[i].lora;
}

void tn_lora_deactivate(tn_lora_set *s) {
  for (int i = 0; i < s->n; i++)
    if (s->mods[i].mat && s->mods[i].mat->lora == &s->mods[i].lora) s->mods[i].mat->lora = NULL;
}

bool tn_lora_is_active(const tn_lora_set *s) {
  for (int i = 0; i < s->n; i++)
    if (s->mods[i].mat->lora != &s->mods[i].lora) return false;
  return s->n > 0;
}

void tn_lora_enable(tn_lora_set *s, bool on) {
  for (int i = 0; i < s->n; i++) s->mods[i].lora.enabled = on;
}

void tn_lora_dropout_seed(tn_lora_set *s, uint64_t seed) {
  for (int i = 0; i < s->n; i++) s->mods[i].lora.seed = mix64(seed ^ mix64(0x10AD0000ull + (uint64_t)i));
}

void tn_lora_train_mode(tn_lora_set *s, bool train, uint64_t counter) {
  for (int i = 0; i < s->n; i++) {
    s->mods[i].lora.train = train;
    s->mods[i].lora.counter = counter;
  }
}

/* ---------------------------------------------------------------------------------
 * Merge. */
tn_status tn_lora_merge(tn_lora_set *s) {
  if (s->merged) return tn_error(TN_ERR_ARG, "adapter '%s' is already merged", s->name);
  for (int i = 0; i < s->n; i++) {
    const tn_lora_module *md = &s->mods[i];
    if (md->mat->dtype != TN_F32 || !md->mat->w)
      return tn_error(TN_ERR_UNSUPPORTED, "merge: %s is stored as %s (merging needs f32 weights)", md->name,
                      tn_dtype_name(md->mat->dtype));
  }
  for (int i = 0; i < s->n; i++) {
    const tn_lora_module *md = &s->mods[i];
    const tn_lora *lo = &md->lora;
    // W (out, in) += scale * B (out, r) A (r, in)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, md->mat->out, md->mat->in, lo->r, lo->scale, lo->B, lo->r,
                lo->A, md->mat->in, 1.0f, md->mat->w, md->mat->in);
  }
  tn_lora_deactivate(s);
  s->merged = true;
  return TN_OK;
}

/* ---------------------------------------------------------------------------------
 * Saving (PEFT layout). */
tn_status tn_lora_entries(const tn_lora_set *s, const float *base, tn_st_entry **out) {
  tn_st_entry *e = calloc(2 * (size_t)(s->n > 0 ? s->n : 1), sizeof *e);
  if (!e) return tn_error(TN_ERR_NOMEM, "out of memory");
  for (int i = 0; i < s->n; i++) {
    const tn_lora_module *md = &s->mods[i];
    const int r = md->lora.r;
    e[2 * i] = (tn_st_entry){.name = md->name_a, .dtype = TN_ST_F32, .ndim = 2,
                             .shape = {r, md->mat->in}, .data = base + (md->lora.A - s->flat)};
    e[2 * i + 1] = (tn_st_entry){.name = md->name_b, .dtype = TN_ST_F32, .ndim = 2,
                                 .shape = {md->mat->out, r}, .data = base + (md->lora.B - s->flat)};
  }
  *out = e;
  return TN_OK;
}


/* A float as the shortest decimal that reads back to it (0.05f -> 0.05, not
 * 0.050000000745), as Python would have written the user's value. */
static double short_float(float f) {
  char buf[32];
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, (double)f);
    if (strtof(buf, NULL) == f) break;
  }
  return strtod(buf, NULL);
}

static cJSON *parse_or_null(const char *json) {
  cJSON *j = json ? cJSON_Parse(json) : NULL;
  return j ? j : cJSON_CreateNull();
}

static tn_status write_str(const char *path, const char *text) {
  return tn_write_file_atomic(path, text, strlen(text));
}

tn_status tn_lora_save(const tn_lora_set *s, const char *dir) {
  TN_TRY(tn_mkdirs(dir));
  tn_st_entry *e;
  TN_TRY(tn_lora_entries(s, s->flat, &e));
  char *wpath = tn_path_join(dir, "adapter_model.safetensors");
  tn_status st = tn_st_write(wpath, e, 2 * s->n, "{\"format\":\"pt\"}");
  free(wpath);
  free(e);
  if (st != TN_OK) return st;
  /* adapter_config.json with PEFT's LoraConfig fields, keys sorted as PEFT writes them */
  cJSON *j = cJSON_CreateObject();
  cJSON *ap = cJSON_CreateObject(), *rp = cJSON_CreateObject();
  for (int i = 0; i < s->n; i++) { /* modules that differ from r / lora_alpha (loaded with patterns) */
    const tn_lora_module *md = &s->mods[i];
    char key[128];
    snprintf(key, sizeof key, "layers\\.%d\\.%s\\.%s", md->layer, md->kind <= TN_LORA_O ? "self_attn" : "mlp",
             kind_names[md->kind]);
    if (md->lora.r != s->rank) cJSON_AddNumberToObject(rp, key, md->lora.r);
    if (md->alpha != s->alpha) cJSON_AddNumberToObject(ap, key, short_float(md->alpha));
  }
  cJSON_AddItemToObject(j, "alpha_pattern", ap);
  cJSON_AddNullToObject(j, "auto_mapping");
  if (s->base_model) cJSON_AddStringToObject(j, "base_model_name_or_path", s->base_model);
  else if (s->model->dir) cJSON_AddStringToObject(j, "base_model_name_or_path", s->model->dir);
  else cJSON_AddNullToObject(j, "base_model_name_or_path");
  cJSON_AddStringToObject(j, "bias", "none");
  cJSON_AddItemToObject(j, "exclude_modules", parse_or_null(s->exclude_json));
  cJSON_AddFalseToObject(j, "fan_in_fan_out");
  cJSON_AddTrueToObject(j, "inference_mode");
  cJSON_AddTrueToObject(j, "init_lora_weights");
  cJSON_AddNullToObject(j, "layer_replication");
  cJSON_AddNullToObject(j, "layers_pattern");
  cJSON_AddItemToObject(j, "layers_to_transform", parse_or_null(s->layers_json));
  cJSON_AddItemToObject(j, "loftq_config", cJSON_CreateObject());
  cJSON_AddNumberToObject(j, "lora_alpha", short_float(s->alpha));
  cJSON_AddFalseToObject(j, "lora_bias");
  cJSON_AddNumberToObject(j, "lora_dropout", short_float(s->dropout));
  cJSON_AddNullToObject(j, "megatron_config");
  cJSON_AddStringToObject(j, "megatron_core", "megatron.core");
  cJSON_AddNullToObject(j, "modules_to_save");
  cJSON_AddStringToObject(j, "peft_type", "LORA");
  cJSON_AddNumberToObject(j, "r", s->rank);
  cJSON_AddItemToObject(j, "rank_pattern", rp);
  cJSON_AddNullToObject(j, "revision");
  cJSON_AddItemToObject(j, "target_modules", parse_or_null(s->targets_json));
  cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
  cJSON_AddFalseToObject(j, "use_dora");
  cJSON_AddBoolToObject(j, "use_rslora", s->rslora);
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  if (!text) return tn_error(TN_ERR_NOMEM, "out of memory");
  size_t tl = strlen(text);
  char *withnl = malloc(tl + 2);
  if (!withnl) { free(text); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  memcpy(withnl, text, tl);
  withnl[tl] = '\n';
  withnl[tl + 1] = 0;
  free(text);
  char *cpath = tn_path_join(dir, "adapter_config.json");
  st = write_str(cpath, withnl);
  free(cpath);
  free(withnl);
  return st;
}

/* ---------------------------------------------------------------------------------
 * Loading an adapter made by PEFT (or tunic). */
static bool json_truthy(const cJSON *v) {
  if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return false;
  if (cJSON_IsArray(v) || cJSON_IsObject(v)) return cJSON_GetArraySize(v) > 0;
  if (cJSON_IsString(v)) return v->valuestring[0] != 0;
  if (cJSON_IsNumber(v)) return v->valuedouble != 0;
  return true;
}

/* names from a JSON list of strings; *is_str when it is a single string instead */
static tn_status json_names(const cJSON *v, const char *path, const char *field, matcher *mt, bool exclude) {
  if (!v || cJSON_IsNull(v)) return TN_OK;
  if (cJSON_IsString(v)) {
    if (!exclude && !strcmp(v->valuestring, "all-linear")) { mt->all_linear = true; return TN_OK; }
    char what[256];
    snprintf(what, sizeof what, "%s: %s", path, field);
    return compile_re(exclude ? &mt->ex_re : &mt->re, v->valuestring, what, TN_ERR_FORMAT);
  }
  if (!cJSON_IsArray(v)) return tn_error(TN_ERR_FORMAT, "%s: %s must be a list of names or a regex string", path, field);
  int n = cJSON_GetArraySize(v);
  char **names = calloc(n > 0 ? n : 1, sizeof *names);
  if (!names) return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  int k = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    if (!cJSON_IsString(it) || !(names[k] = tn_strdup(it->valuestring))) {
      const bool oom = cJSON_IsString(it);
      for (int i = 0; i < k; i++) free(names[i]);
      free(names);
      return oom ? tn_error(TN_ERR_NOMEM, "%s: out of memory", path)
                 : tn_error(TN_ERR_FORMAT, "%s: %s: every entry must be a string", path, field);
    }
    k++;
  }
  if (exclude) { mt->ex = names; mt->nex = k; }
  else { mt->names = names; mt->nnames = k; }
  return TN_OK;
}

static tn_status json_patterns(const cJSON *v, const char *path, const char *field, matcher *mt, bool rank) {
  if (!v || cJSON_IsNull(v)) return TN_OK;
  if (!cJSON_IsObject(v)) return tn_error(TN_ERR_FORMAT, "%s: %s must be an object", path, field);
  int n = cJSON_GetArraySize(v);
  pcre2_code **re = calloc(n > 0 ? n : 1, sizeof *re);
  int *ri = calloc(n > 0 ? n : 1, sizeof *ri);
  float *rf = calloc(n > 0 ? n : 1, sizeof *rf);
  if (rank) { mt->pr = re; mt->pr_val = ri; free(rf); }
  else { mt->pa = re; mt->pa_val = rf; free(ri); }
  if (!re || (rank ? !ri : !rf)) return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  const cJSON *it;
  cJSON_ArrayForEach(it, v) {
    if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || it->valuedouble > (rank ? 65536 : 1e30) ||
        (rank && it->valuedouble != floor(it->valuedouble)))
      return tn_error(TN_ERR_FORMAT, "%s: %s['%s'] must be a positive %s", path, field, it->string,
                      rank ? "integer (at most 65536)" : "number (at most 1e30)");
    size_t l = strlen(it->string) + 16;
    char *pat = malloc(l);
    if (!pat) return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
    snprintf(pat, l, "(^|.*\\.)%s$", it->string); /* PEFT's get_pattern_key, with re.match */
    char what[256];
    snprintf(what, sizeof what, "%s: %s", path, field);
    pcre2_code *c;
    tn_status st = compile_re(&c, pat, what, TN_ERR_FORMAT);
    free(pat);
    if (st != TN_OK) return st;
    if (rank) { mt->pr[mt->npr] = c; mt->pr_val[mt->npr++] = (int)it->valuedouble; }
    else { mt->pa[mt->npa] = c; mt->pa_val[mt->npa++] = (float)it->valuedouble; }
  }
  return TN_OK;
}

static tn_status convert_tensor(float *dst, const tn_st_tensor *t) {
  const unsigned char *src = t->data;
  switch (t->dtype) {
  case TN_ST_F32: memcpy(dst, src, t->numel * 4); return TN_OK;
  case TN_ST_BF16:
    for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, src + 2 * i, 2); dst[i] = tn_bf16_to_f32(h); }
    return TN_OK;
  case TN_ST_F16:
    for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, src + 2 * i, 2); dst[i] = tn_f16_to_f32(h); }
    return TN_OK;
  default:
    return tn_error(TN_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (tunic reads F32, BF16, F16)", t->file, t->name,
                    tn_st_dtype_name(t->dtype));
  }
}

/* Fields of LoraConfig that change the computation and that tunic does not implement. */
static tn_status refuse_unsupported(const cJSON *j, const char *path) {
  static const char *truthy_refused[] = {"use_dora", "lora_bias", "modules_to_save", "fan_in_fan_out",
                                         "layer_replication", "target_parameters", "trainable_token_indices",
                                         "use_qalora", "alora_invocation_tokens", "use_bdlora"};
  for (size_t i = 0; i < sizeof truthy_refused / sizeof *truthy_refused; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, truthy_refused[i]);
    if (json_truthy(v))
      return tn_error(TN_ERR_UNSUPPORTED, "%s: %s is set; tunic applies plain LoRA only and cannot honour it", path,
                      truthy_refused[i]);
  }
  const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "bias");
  if (b && !cJSON_IsNull(b) && !(cJSON_IsString(b) && !strcmp(b->valuestring, "none")))
    return tn_error(TN_ERR_UNSUPPORTED, "%s: bias is '%s'; tunic supports bias \"none\" only", path,
                    cJSON_IsString(b) ? b->valuestring : "?");
  const cJSON *lp = cJSON_GetObjectItemCaseSensitive(j, "layers_pattern");
  if (lp && !cJSON_IsNull(lp)) {
    bool ok = cJSON_IsString(lp) && !strcmp(lp->valuestring, "layers");
    if (cJSON_IsArray(lp)) {
      ok = true;
      const cJSON *it;
      cJSON_ArrayForEach(it, lp) ok &= cJSON_IsString(it) && !strcmp(it->valuestring, "layers");
    }
    if (!ok) return tn_error(TN_ERR_UNSUPPORTED, "%s: layers_pattern other than \"layers\" is not supported", path);
  }
  return TN_OK;
}

/* The config part of a load: fills s's settings and the matcher. */
static tn_status load_config(const char *path, tn_lora_set *s, matcher *mt) {
  char *text;
  size_t len;
  TN_TRY(tn_read_file(path, &text, &len));
  cJSON *j = cJSON_Parse(text);
  free(text);
  if (!j || !cJSON_IsObject(j)) { cJSON_Delete(j); return tn_error(TN_ERR_FORMAT, "%s: not a JSON object", path); }
  tn_status st = TN_OK;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
  if (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA"))
    st = tn_error(TN_ERR_UNSUPPORTED, "%s: peft_type is %s; tunic loads LORA adapters", path,
                  cJSON_IsString(v) ? v->valuestring : "missing");
  if (st == TN_OK) st = refuse_unsupported(j, path);
  if (st == TN_OK) st = tn_json_int32(j, path, "r", true, 1, 65536, 0, &s->rank);
  double alpha = 8.0, dropout = 0.0; /* LoraConfig's defaults */
  if (st == TN_OK) st = tn_json_num(j, path, "lora_alpha", false, -1e30, 1e30, 8.0, &alpha);
  if (st == TN_OK) st = tn_json_num(j, path, "lora_dropout", false, 0, 1, 0.0, &dropout);
  if (st == TN_OK && dropout >= 1) st = tn_error(TN_ERR_FORMAT, "%s: field 'lora_dropout' must be below 1 (got 1)", path);
  s->alpha = (float)alpha;
  s->dropout = (float)dropout;
  if (st == TN_OK) st = tn_json_bool(j, path, "use_rslora", false, false, &s->rslora);
  const char *bm = NULL;
  if (st == TN_OK) st = tn_json_str(j, path, "base_model_name_or_path", false, NULL, &bm);
  if (st == TN_OK && bm && !(s->base_model = tn_strdup(bm))) st = tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  if (st == TN_OK) {
    v = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (!v || cJSON_IsNull(v))
      st = tn_error(TN_ERR_UNSUPPORTED, "%s: target_modules is missing (PEFT's per-architecture default is not "
                                        "supported: list the modules)", path);
    else st = json_names(v, path, "target_modules", mt, false);
    if (st == TN_OK) s->targets_json = cJSON_PrintUnformatted(v);
  }
  if (st == TN_OK) {
    v = cJSON_GetObjectItemCaseSensitive(j, "exclude_modules");
    st = json_names(v, path, "exclude_modules", mt, true);
    if (st == TN_OK && v && !cJSON_IsNull(v)) s->exclude_json = cJSON_PrintUnformatted(v);
  }
  if (st == TN_OK) {
    v = cJSON_GetObjectItemCaseSensitive(j, "layers_to_transform");
    /* a layer index outside [0, 2^20] matches no layer: stored as -1 (the cast would overflow) */
#define LAYER_INDEX(x) (fabs(x) <= 1048576 ? (int)(x) : -1)
    if (cJSON_IsNumber(v)) {
      mt->layers = malloc(sizeof(int));
      if (!mt->layers) st = tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
      else {
        mt->layers[0] = LAYER_INDEX(v->valuedouble);
        mt->nlayers = 1;
      }
    } else if (cJSON_IsArray(v)) {
      mt->nlayers = cJSON_GetArraySize(v);
      mt->layers = malloc(sizeof(int) * (mt->nlayers + 1));
      if (!mt->layers) { mt->nlayers = 0; st = tn_error(TN_ERR_NOMEM, "%s: out of memory", path); }
      int k = 0;
      const cJSON *it;
      cJSON_ArrayForEach(it, v) {
        if (st != TN_OK) break;
        if (!cJSON_IsNumber(it)) { st = tn_error(TN_ERR_FORMAT, "%s: layers_to_transform must hold integers", path); break; }
        mt->layers[k++] = LAYER_INDEX(it->valuedouble);
      }
#undef LAYER_INDEX
    } else if (v && !cJSON_IsNull(v)) {
      st = tn_error(TN_ERR_FORMAT, "%s: layers_to_transform must be an integer or a list of integers", path);
    }
    if (st == TN_OK && mt->layers) s->layers_json = cJSON_PrintUnformatted(v);
  }
  if (st == TN_OK) st = json_patterns(cJSON_GetObjectItemCaseSensitive(j, "rank_pattern"), path, "rank_pattern", mt, true);
  if (st == TN_OK) st = json_patterns(cJSON_GetObjectItemCaseSensitive(j, "alpha_pattern"), path, "alpha_pattern", mt, false);
  cJSON_Delete(j);
  return st;
}

/* Parse "base_model.model.<module>.lora_{A,B}.weight" into a module index
 * (layer * 7 + kind) and which (0 = A, 1 = B); -1 when it is not one. */
static int parse_tensor_name(const char *name, const tn_config *c, int *which) {
  static const char pre[] = "base_model.model.";
  if (strncmp(name, pre, sizeof pre - 1)) return -1;
  const char *key = name + sizeof pre - 1;
  const char *suf = strstr(key, ".lora_");
  if (!suf) return -1;
  if (!strcmp(suf, ".lora_A.weight")) *which = 0;
  else if (!strcmp(suf, ".lora_B.weight")) *which = 1;
  else return -1;
  int layer, used = 0;
  if (sscanf(key, "model.layers.%d.%n", &layer, &used) != 1 || used == 0 || layer < 0 || layer >= c->L) return -1;
  char mod[96];
  for (int k = 0; k < TN_LORA_NKINDS; k++) {
    module_name(mod, sizeof mod, layer, k);
    if ((size_t)(suf - key) == strlen(mod) && !strncmp(key, mod, strlen(mod))) return layer * TN_LORA_NKINDS + k;
  }
  return -1;
}

tn_status tn_lora_load(tn_model *m, const char *dir, const char *name, tn_lora_set **out) {
  *out = NULL;
  const tn_config *c = &m->cfg;
  const int M = c->L * TN_LORA_NKINDS;
  char *cpath = tn_path_join(dir, "adapter_config.json");
  char *wpath = tn_path_join(dir, "adapter_model.safetensors");
  tn_lora_set *s = NULL;
  matcher mt = {0};
  tn_st_file f = {0};
  bool fopen_ok = false;
  const tn_st_tensor **ta = calloc(M, sizeof *ta), **tb = calloc(M, sizeof *tb);
  tn_status st = set_new(m, name, 0, &s);
  if (st == TN_OK && (!cpath || !wpath || !ta || !tb)) st = tn_error(TN_ERR_NOMEM, "%s: out of memory", dir);
  if (st == TN_OK && !tn_file_exists(cpath)) st = tn_error(TN_ERR_IO, "%s: no adapter_config.json (not a PEFT adapter directory)", dir);
  if (st == TN_OK) st = load_config(cpath, s, &mt);
  if (st == TN_OK && !tn_file_exists(wpath)) {
    char *bin = tn_path_join(dir, "adapter_model.bin");
    if (!bin) st = tn_error(TN_ERR_NOMEM, "%s: out of memory", dir);
    else if (tn_file_exists(bin))
      st = tn_error(TN_ERR_UNSUPPORTED, "%s: only adapter_model.bin (a pickle) is present; tunic reads "
                                        "adapter_model.safetensors", dir);
    else st = tn_error(TN_ERR_IO, "%s: adapter_model.safetensors is missing", dir);
    free(bin);
  }
  if (st == TN_OK) { st = tn_st_open(&f, wpath); fopen_ok = st == TN_OK; }
  /* every tensor must be the A or B of a targeted projection */
  for (int i = 0; st == TN_OK && i < f.n; i++) {
    const tn_st_tensor *t = &f.tensors[i];
    int which, idx = parse_tensor_name(t->name, c, &which);
    if (idx < 0) {
      st = tn_error(TN_ERR_UNSUPPORTED, "%s: tensor '%s' is not the lora_A/lora_B weight of a projection tunic adapts "
                                        "(model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj"
                                        " with N < %d)", wpath, t->name, c->L);
      break;
    }
    char key[96];
    module_name(key, sizeof key, idx / TN_LORA_NKINDS, idx % TN_LORA_NKINDS);
    if (!matcher_hit(&mt, key, idx / TN_LORA_NKINDS)) {
      st = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' belongs to module %s, which %s does not target", wpath, t->name,
                    key, cpath);
      break;
    }
    (which ? tb : ta)[idx] = t;
  }
  /* every targeted module must have both tensors */
  int n = 0;
  for (int idx = 0; st == TN_OK && idx < M; idx++) {
    char key[96];
    module_name(key, sizeof key, idx / TN_LORA_NKINDS, idx % TN_LORA_NKINDS);
    if (!matcher_hit(&mt, key, idx / TN_LORA_NKINDS)) continue;
    if (!ta[idx] || !tb[idx]) {
      st = tn_error(TN_ERR_FORMAT, "%s: tensor 'base_model.model.%s.lora_%c.weight' is missing (module targeted by %s)",
                    wpath, key, ta[idx] ? 'B' : 'A', cpath);
      break;
    }
    n++;
  }
  if (st == TN_OK && n == 0) st = tn_error(TN_ERR_FORMAT, "%s: the adapter targets no module of this model", dir);
  if (st == TN_OK) {
    free(s->mods);
    s->mods = calloc(n, sizeof *s->mods);
    s->n = n;
    if (!s->mods) st = tn_error(TN_ERR_NOMEM, "out of memory");
  }
  /* r and alpha per module (rank_pattern / alpha_pattern), shapes against the model */
  int k = 0;
  for (int idx = 0; st == TN_OK && idx < M; idx++) {
    if (!ta[idx]) continue;
    const int layer = idx / TN_LORA_NKINDS, kind = idx % TN_LORA_NKINDS;
    char key[96];
    module_name(key, sizeof key, layer, kind);
    tn_lora_module *md = &s->mods[k++];
    md->layer = layer;
    md->kind = kind;
    md->lora.r = s->rank;
    md->alpha = s->alpha;
    for (int p = 0; p < mt.npr; p++)
      if (re_match(mt.pr[p], key, false)) { md->lora.r = mt.pr_val[p]; break; }
    for (int p = 0; p < mt.npa; p++)
      if (re_match(mt.pa[p], key, false)) { md->alpha = mt.pa_val[p]; break; }
    const tn_mat *W = kind_mat(&m->w.layers[layer], kind);
    const tn_st_tensor *A = ta[idx], *B = tb[idx];
    const int r = md->lora.r;
    if (A->ndim != 2 || A->shape[0] != r || A->shape[1] != W->in)
      st = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' has shape [%s%lld, %lld] but the model and %s imply [%d, %d]",
                    wpath, A->name, A->ndim != 2 ? "ndim != 2: " : "", (long long)A->shape[0],
                    (long long)(A->ndim > 1 ? A->shape[1] : 0), cpath, r, W->in);
    else if (B->ndim != 2 || B->shape[0] != W->out || B->shape[1] != r)
      st = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' has shape [%s%lld, %lld] but the model and %s imply [%d, %d]",
                    wpath, B->name, B->ndim != 2 ? "ndim != 2: " : "", (long long)B->shape[0],
                    (long long)(B->ndim > 1 ? B->shape[1] : 0), cpath, W->out, r);
  }
  if (st == TN_OK) st = set_carve(s);
  for (int i = 0; st == TN_OK && i < s->n; i++) {
    const int idx = s->mods[i].layer * TN_LORA_NKINDS + s->mods[i].kind;
    st = convert_tensor(s->mods[i].lora.A, ta[idx]);
    if (st == TN_OK) st = convert_tensor(s->mods[i].lora.B, tb[idx]);
  }
  for (int i = 0; st == TN_OK && i < s->n; i++) {
    const tn_lora_module *md = &s->mods[i];
    size_t na = (size_t)md->lora.r * md->mat->in, nb = (size_t)md->mat->out * md->lora.r;
    for (size_t q = 0; q < na && st == TN_OK; q++)
      if (!isfinite(md->lora.A[q])) st = tn_error(TN_ERR_NUMERIC, "%s: tensor '%s' holds a non-finite value", wpath, md->name_a);
    for (size_t q = 0; q < nb && st == TN_OK; q++)
      if (!isfinite(md->lora.B[q])) st = tn_error(TN_ERR_NUMERIC, "%s: tensor '%s' holds a non-finite value", wpath, md->name_b);
  }
  if (st == TN_OK) tn_lora_dropout_seed(s, 0);
  if (fopen_ok) tn_st_close(&f);
  matcher_free(&mt);
  free(ta);
  free(tb);
  free(cpath);
  free(wpath);
  if (st != TN_OK) { tn_lora_free(s); return st; }
  *out = s;
  return TN_OK;
}

tn_status tn_lora_load_spec(tn_model *m, const char *spec, const char *use, tn_lora_set ***sets, int *n) {
  *sets = NULL;
  *n = 0;
  char *copy = tn_strdup(spec);
  int cap = 1;
  for (const char *c = spec; *c; c++) cap += *c == ',';
  tn_lora_set **out = calloc(cap, sizeof *out);
  if (!copy || !out) { free(copy); free(out); return tn_error(TN_ERR_NOMEM, "--adapter: out of memory"); }
  tn_status s = TN_OK;
  const bool named = strchr(spec, '=') != NULL;
  char *save = NULL;
  for (char *item = strtok_r(copy, ",", &save); item && s == TN_OK; item = strtok_r(NULL, ",", &save)) {
    const char *name = NULL, *dir = item;
    char *eq = strchr(item, '=');
    if (named) {
      if (!eq || eq == item || !eq[1]) {
        s = tn_error(TN_ERR_ARG, "--adapter '%s': expected DIR or NAME=DIR,NAME=DIR", spec);
        break;
      }
      *eq = 0;
      name = item;
      dir = eq + 1;
      for (int k = 0; k < *n; k++)
        if (!strcmp(out[k]->name, name)) s = tn_error(TN_ERR_ARG, "--adapter: the name '%s' is given twice", name);
    } else if (*n > 0) {
      s = tn_error(TN_ERR_ARG, "--adapter '%s': several adapters need names (NAME=DIR,NAME=DIR)", spec);
    }
    if (s == TN_OK) s = tn_lora_load(m, dir, name, &out[*n]);
    if (s == TN_OK) (*n)++;
  }
  free(copy);
  tn_lora_set *act = NULL;
  for (int k = 0; k < *n && s == TN_OK; k++)
    if (!use || !strcmp(out[k]->name, use)) { act = out[k]; break; }
  if (s == TN_OK && !act) {
    char names[512] = "";
    for (int k = 0; k < *n; k++) {
      size_t l = strlen(names);
      snprintf(names + l, sizeof names - l, "%s%s", k ? ", " : "", out[k]->name);
    }
    s = tn_error(TN_ERR_ARG, "--adapter-name '%s' is not among the adapters given (%s)", use ? use : "", names);
  }
  if (s != TN_OK) {
    tn_lora_sets_free(out, *n);
    *n = 0;
    return s;
  }
  tn_lora_activate(act);
  *sets = out;
  return TN_OK;
}

void tn_lora_sets_free(tn_lora_set **sets, int n) {
  for (int k = 0; k < n; k++) tn_lora_free(sets[k]);
  free(sets);
}

/* ---------------------------------------------------------------------------------
 * Stacking: PEFT's add_weighted_adapter(combination_type="cat") with weights 1. */
static tn_status dup_json(char **dst, const char *src) {
  *dst = NULL;
  if (src && !(*dst = tn_strdup(src))) return tn_error(TN_ERR_NOMEM, "out of memory");
  return TN_OK;
}

tn_status tn_lora_concat(const tn_lora_set *a, const tn_lora_set *b, const char *name, tn_lora_set **out) {
  *out = NULL;
  if (a->model != b->model) return tn_error(TN_ERR_ARG, "stacking adapters '%s' and '%s': loaded for different models", a->name, b->name);
  if (a->n != b->n) return tn_error(TN_ERR_ARG, "stacking adapters '%s' and '%s': they adapt %d and %d modules", a->name, b->name, a->n, b->n);
  for (int i = 0; i < a->n; i++)
    if (a->mods[i].layer != b->mods[i].layer || a->mods[i].kind != b->mods[i].kind)
      return tn_error(TN_ERR_ARG, "stacking adapters '%s' and '%s': module %d is %s in one and %s in the other", a->name,
                      b->name, i, a->mods[i].name, b->mods[i].name);
  tn_lora_set *s;
  TN_TRY(set_new(a->model, name, a->n, &s));
  s->rank = a->rank + b->rank;
  s->alpha = (float)s->rank; /* every module's scale is 1: the scales are folded into B */
  s->dropout = a->dropout;
  s->rslora = false;
  for (int i = 0; i < a->n; i++) {
    s->mods[i].layer = a->mods[i].layer;
    s->mods[i].kind = a->mods[i].kind;
    s->mods[i].lora.r = a->mods[i].lora.r + b->mods[i].lora.r;
    s->mods[i].alpha = (float)s->mods[i].lora.r;
  }
  tn_status st = set_carve(s);
  if (st == TN_OK) st = dup_json(&s->targets_json, a->targets_json);
  if (st == TN_OK) st = dup_json(&s->layers_json, a->layers_json);
  if (st == TN_OK) st = dup_json(&s->exclude_json, a->exclude_json);
  if (st == TN_OK) st = dup_json(&s->base_model, a->base_model);
  for (int i = 0; i < s->n && st == TN_OK; i++) {
    const tn_lora *la = &a->mods[i].lora, *lb = &b->mods[i].lora;
    tn_lora *l = &s->mods[i].lora;
    const int in = s->mods[i].mat->in, nout = s->mods[i].mat->out, R = l->r;
    memcpy(l->A, la->A, sizeof(float) * (size_t)la->r * in); /* A = [A_a; A_b] */
    memcpy(l->A + (size_t)la->r * in, lb->A, sizeof(float) * (size_t)lb->r * in);
    for (int o = 0; o < nout; o++) { /* B = [s_a B_a | s_b B_b] */
      for (int j = 0; j < la->r; j++) l->B[(size_t)o * R + j] = la->scale * la->B[(size_t)o * la->r + j];
      for (int j = 0; j < lb->r; j++) l->B[(size_t)o * R + la->r + j] = lb->scale * lb->B[(size_t)o * lb->r + j];
    }
  }
  if (st != TN_OK) { tn_lora_free(s); return st == TN_ERR_NOMEM ? tn_error(st, "out of memory") : st; }
  *out = s;
  return TN_OK;
}

tn_status tn_lora_stack_dirs(tn_model *m, const char *dir_a, const char *dir_b, const char *out_dir) {
  tn_lora_set *a = NULL, *b = NULL, *c = NULL;
  tn_status s = tn_lora_load(m, dir_a, "a", &a);
  if (s == TN_OK) s = tn_lora_load(m, dir_b, "b", &b);
  if (s == TN_OK) s = tn_lora_concat(a, b, "default", &c);
  if (s == TN_OK) s = tn_lora_save(c, out_dir);
  tn_lora_free(c);
  tn_lora_free(b);
  tn_lora_free(a);
  return s;
}
