/* runcfg.c - a command's options from a YAML run config and the command line: the command
 * declares its options once (name, type, destination, help); `--config run.yaml` loads a
 * mapping of key: value pairs (nested mappings flattened with dots, sequences comma-joined),
 * every --flag overrides the file; unknown keys and badly typed values are errors naming the
 * file, line, key, value and expected type. The resolved values are printed and returned as a
 * cJSON object for run_manifest.json.
 * Not for: general YAML documents (lists of mappings, anchors) - see rl/ for rubric files. */
#include "obs/obs.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

typedef struct {
  tn_opt o;
  bool set;          /* a value was given (file or flag) */
  char *value;       /* the string given, owned by the string pool */
  char origin[160];  /* "default", "--name", "FILE:LINE" */
  union { const char *s; int i; float f; bool b; uint64_t u; double d; } def;
} rc_opt;

struct tn_runcfg {
  rc_opt *v;
  int n;
  char **pool; /* every string handed out: kept until free so 's' pointers stay valid */
  int npool, cappool;
  const char *config_path; /* last --config, in the pool */
};

/* ---------------- helpers ---------------- */

static char *pool_dup(tn_runcfg *rc, const char *s) {
  if (rc->npool == rc->cappool) {
    int cap = rc->cappool ? rc->cappool * 2 : 16;
    char **np = realloc(rc->pool, sizeof *np * cap);
    if (!np) return NULL;
    rc->pool = np;
    rc->cappool = cap;
  }
  char *d = tn_strdup(s);
  if (d) rc->pool[rc->npool++] = d;
  return d;
}

/* names match with '-' and '_' alike */
static bool name_eq(const char *a, size_t alen, const char *b) {
  size_t i = 0;
  for (; i < alen && b[i]; i++) {
    char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
    if (x != y) return false;
  }
  return i == alen && b[i] == 0;
}

/* TRL / transformers / Tunix names of common options (a run config written for those tools runs
 * as written); an alias counts only where the command has its option */
static const char *const ALIASES[][2] = {
  {"learning_rate", "lr"}, {"num_train_epochs", "epochs"}, {"num_epochs", "epochs"},
  {"per_device_train_batch_size", "batch-size"}, {"train_batch_size", "batch-size"},
  {"gradient_accumulation_steps", "grad-accum"}, {"max_steps", "steps"}, {"num_batches", "steps"},
  {"model_name_or_path", "model"}, {"model_name", "model"}, {"model_path", "model"},
  {"tokenizer_name_or_path", "tokenizer"}, {"tokenizer_name", "tokenizer"},
  {"output_dir", "out"}, {"dataset_name", "data"}, {"train_file", "data"}, {"dataset_path", "data"}, {"data_path", "data"},
  {"train_data", "data"}, {"eval_file", "eval-data"}, {"validation_file", "eval-data"},
  {"lr_scheduler_type", "schedule"}, {"adam_beta1", "beta1"}, {"adam_beta2", "beta2"},
  {"adam_epsilon", "adam-eps"}, {"save_steps", "save-every"}, {"save_interval_steps", "save-every"},
  {"eval_steps", "eval-every"}, {"eval_every_n_steps", "eval-every"}, {"save_total_limit", "keep-last"},
  {"max_to_keep", "keep-last"}, {"lora_r", "lora-rank"}, {"lora_target_modules", "lora-targets"},
  {"target_modules", "lora-targets"}, {"use_rslora", "rslora"}, {"max_seq_length", "max-seq-len"},
  {"max_length", "max-seq-len"}, {"max_completion_length", "max-tokens-to-generate"},
  {"total_generation_steps", "max-tokens-to-generate"}, {"max_new_tokens", "max-tokens-to-generate"},
  {"gradient_checkpointing", "recompute"}, {"ref_model_name_or_path", "ref-model"},
  {"teacher_model_name_or_path", "teacher"}, {"loss_type", "loss"},
};

/* TRL / transformers options with no tunic counterpart that change nothing tunic computes (or
 * that it always does): accepted in a run config with a warning, so such files run as written */
static const char *const IGNORED[] = {
  "logging_steps", "logging_strategy", "logging_dir", "logging_first_step", "report_to", "run_name",
  "bf16", "fp16", "tf32", "push_to_hub", "hub_model_id", "hub_strategy", "overwrite_output_dir", "do_train",
  "do_eval", "eval_strategy", "evaluation_strategy", "save_strategy", "dataloader_num_workers",
  "remove_unused_columns", "use_peft", "torch_dtype", "attn_implementation", "trust_remote_code",
  "per_device_eval_batch_size", "optim", "packing", "dataset_text_field", "use_liger_kernel",
  "ddp_find_unused_parameters", "gradient_checkpointing_kwargs", "log_level", "disable_tqdm",
  "save_only_model", "load_best_model_at_end", "use_vllm", "vllm_mode", "log_completions",
  "lora_task_type", "task_type", "bias", "dataset_num_proc",
};

static rc_opt *find_opt(tn_runcfg *rc, const char *name, size_t len) {
  for (int i = 0; i < rc->n; i++)
    if (name_eq(name, len, rc->v[i].o.name)) return &rc->v[i];
  for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++)
    if (name_eq(name, len, ALIASES[a][0])) {
      for (int i = 0; i < rc->n; i++)
        if (name_eq(ALIASES[a][1], strlen(ALIASES[a][1]), rc->v[i].o.name)) return &rc->v[i];
    }
  return NULL;
}

static bool ignored_key(const char *key) {
  for (size_t i = 0; i < sizeof IGNORED / sizeof IGNORED[0]; i++)
    if (name_eq(key, strlen(key), IGNORED[i])) return true;
  return false;
}

static int edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 63 || lb > 63) return 99;
  int d[64][64];
  for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
  for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
  for (size_t i = 1; i <= la; i++)
    for (size_t j = 1; j <= lb; j++) {
      char x = a[i - 1] == '-' ? '_' : a[i - 1], y = b[j - 1] == '-' ? '_' : b[j - 1];
      int c = d[i - 1][j - 1] + (x != y);
      if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
      d[i][j] = c;
    }
  return d[la][lb];
}

/* " (did you mean 'lora_rank'?)" or "" */
static void suggest(const tn_runcfg *rc, const char *key, char *buf, size_t n) {
  buf[0] = 0;
  int best = 3;
  const char *bn = NULL;
  for (int i = 0; i < rc->n; i++) {
    int d = edit_distance(key, rc->v[i].o.name);
    if (d < best) { best = d; bn = rc->v[i].o.name; }
  }
  if (bn) snprintf(buf, n, " (did you mean '%s'?)", bn);
}

static const char *type_name(char t) {
  switch (t) {
  case 's': return "string";
  case 'i': return "integer";
  case 'u': return "unsigned integer";
  case 'f': case 'd': return "number";
  case 'b': return "bool (true/false)";
  default: return "?";
  }
}

/* Parse S as option type T into *OUT (a union of the rc_opt kind). */
static bool parse_typed(char t, const char *s, void *out) {
  char *end = NULL;
  errno = 0;
  if (t == 's') { *(const char **)out = s; return true; }
  while (*s == ' ') s++;
  switch (t) {
  case 'i': {
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < INT32_MIN || x > INT32_MAX) return false;
    *(int *)out = (int)x;
    return true;
  }
  case 'u': {
    if (*s == '-') return false;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end) return false;
    *(uint64_t *)out = x;
    return true;
  }
  case 'f': case 'd': {
    double x = strtod(s, &end);
    if (errno == ERANGE && isinf(x)) return false;
    if (end == s || *end) return false;
    if (t == 'f') {
      if (isfinite(x) && fabs(x) > 3.4028234663852886e38) return false;
      *(float *)out = (float)x;
    } else *(double *)out = x;
    return true;
  }
  case 'b': {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
      if (!strcasecmp(s, yes[i])) { *(bool *)out = true; return true; }
      if (!strcasecmp(s, no[i])) { *(bool *)out = false; return true; }
    }
    return false;
  }
  }
  return false;
}

/* ---------------- lifetime ---------------- */

tn_runcfg *tn_runcfg_new(const tn_opt *opts, int nopts) {
  tn_runcfg *rc = calloc(1, sizeof *rc);
  if (!rc) return NULL;
  rc->v = calloc(nopts > 0 ? nopts : 1, sizeof *rc->v);
  if (!rc->v) { free(rc); return NULL; }
  rc->n = nopts;
  for (int i = 0; i < nopts; i++) {
    rc_opt *r = &rc->v[i];
    r->o = opts[i];
    snprintf(r->origin, sizeof r->origin, "default");
    switch (r->o.type) {
    case 's': r->def.s = *(const char **)r->o.dst; break;
    case 'i': r->def.i = *(int *)r->o.dst; break;
    case 'f': r->def.f = *(float *)r->o.dst; break;
    case 'b': r->def.b = *(bool *)r->o.dst; break;
    case 'u': r->def.u = *(uint64_t *)r->o.dst; break;
    case 'd': r->def.d = *(double *)r->o.dst; break;
    }
  }
  return rc;
}

void tn_runcfg_free(tn_runcfg *rc) {
  if (!rc) return;
  for (int i = 0; i < rc->npool; i++) free(rc->pool[i]);
  free(rc->pool);
  free(rc->v);
  free(rc);
}

/* ---------------- setting values ---------------- */

tn_status tn_runcfg_set(tn_runcfg *rc, const char *name, const char *value, const char *origin) {
  rc_opt *r = find_opt(rc, name, strlen(name));
  if (!r) {
    char sug[96];
    suggest(rc, name, sug, sizeof sug);
    return tn_error(TN_ERR_ARG, "%s: unknown option '%s'%s", origin ? origin : "?", name, sug);
  }
  if (!value) return TN_OK; /* null keeps the default */
  char tmp[16];
  if (!parse_typed(r->o.type, value, tmp))
    return tn_error(TN_ERR_ARG, "%s: %s: '%s' is not a valid %s", origin ? origin : "?", name, value,
                    type_name(r->o.type));
  char *v = pool_dup(rc, value);
  if (!v) return tn_error(TN_ERR_NOMEM, "out of memory");
  r->value = v;
  r->set = true;
  snprintf(r->origin, sizeof r->origin, "%s", origin ? origin : "?");
  return TN_OK;
}

tn_status tn_runcfg_apply(tn_runcfg *rc) {
  for (int i = 0; i < rc->n; i++) {
    rc_opt *r = &rc->v[i];
    if (!r->set) continue;
    if (!parse_typed(r->o.type, r->value, r->o.dst)) /* checked in set: cannot happen */
      return tn_error(TN_ERR_INTERNAL, "%s: %s: '%s' is not a valid %s", r->origin, r->o.name, r->value,
                      type_name(r->o.type));
  }
  return TN_OK;
}

const char *tn_runcfg_origin(const tn_runcfg *rc, const char *name) {
  rc_opt *r = find_opt((tn_runcfg *)rc, name, strlen(name));
  return r ? r->origin : NULL;
}

/* ---------------- YAML ---------------- */

typedef struct {
  char *buf;
  size_t n, cap;
} sbuf;
static bool sb_add(sbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (!nb) return false;
    b->buf = nb;
    b->cap = cap;
  }
  memcpy(b->buf + b->n, s, n);
  b->n += n;
  b->buf[b->n] = 0;
  return true;
}

static bool is_null_scalar(const yaml_event_t *e) {
  if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const char *v = (const char *)e->data.scalar.value;
  return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

tn_status tn_runcfg_read_yaml(const char *path, int (*fn)(const char *key, const char *value, int line, void *ctx),
                              void *ctx) {
  FILE *f = fopen(path, "rb");
  if (!f) return tn_error(TN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) { fclose(f); return tn_error(TN_ERR_NOMEM, "%s: yaml init failed", path); }
  yaml_parser_set_input_file(&p, f);
  tn_status st = TN_OK;
  /* prefix stack: prefix.buf holds "a.b." for the mappings we are inside; lens[d] its length at depth d */
  sbuf prefix = {0}, seq = {0};
  size_t lens[64];
  int depth = 0;         /* mapping depth (1 = top-level mapping) */
  bool want_key = false; /* inside a mapping, expecting a key */
  char *key = NULL;      /* current key (awaiting its value) */
  int key_line = 0;
  bool in_seq = false, seq_has = false;
  bool done = false, seen_doc = false;
  while (!done && st == TN_OK) {
    yaml_event_t e;
    if (!yaml_parser_parse(&p, &e)) {
      st = tn_error(TN_ERR_FORMAT, "%s:%zu: YAML error: %s%s%s", path, p.problem_mark.line + 1,
                    p.problem ? p.problem : "syntax error", p.context ? " " : "", p.context ? p.context : "");
      break;
    }
    int line = (int)e.start_mark.line + 1;
    switch (e.type) {
    case YAML_STREAM_END_EVENT: done = true; break;
    case YAML_DOCUMENT_START_EVENT:
      if (seen_doc) st = tn_error(TN_ERR_FORMAT, "%s:%d: only one YAML document is supported", path, line);
      seen_doc = true;
      break;
    case YAML_ALIAS_EVENT:
      st = tn_error(TN_ERR_UNSUPPORTED, "%s:%d: YAML aliases are not supported in a run config", path, line);
      break;
    case YAML_MAPPING_START_EVENT:
      if (depth > 0 && want_key) { st = tn_error(TN_ERR_UNSUPPORTED, "%s:%d: complex (non-scalar) keys are not supported", path, line); break; }
      if (in_seq) { st = tn_error(TN_ERR_UNSUPPORTED, "%s:%d: %s: a list of mappings is not supported (use flat values)", path, line, key); break; }
      if (depth == 0) {
        depth = 1;
        lens[0] = 0;
        want_key = true;
        break;
      }
      if (depth >= 63) { st = tn_error(TN_ERR_LIMIT, "%s:%d: mappings nested too deep", path, line); break; }
      /* nested mapping: KEY becomes a prefix */
      lens[depth] = prefix.n;
      if (!sb_add(&prefix, key + lens[depth], strlen(key) - lens[depth]) || !sb_add(&prefix, ".", 1)) st = tn_error(TN_ERR_NOMEM, "out of memory");
      free(key);
      key = NULL;
      depth++;
      want_key = true;
      break;
    case YAML_MAPPING_END_EVENT:
      depth--;
      if (depth >= 1) {
        prefix.n = lens[depth];
        if (prefix.buf) prefix.buf[prefix.n] = 0;
      }
      want_key = depth >= 1;
      break;
    case YAML_SEQUENCE_START_EVENT:
      if (depth == 0) { st = tn_error(TN_ERR_FORMAT, "%s:%d: a run config must be a mapping of key: value, not a list", path, line); break; }
      if (want_key) { st = tn_error(TN_ERR_UNSUPPORTED, "%s:%d: complex (non-scalar) keys are not supported", path, line); break; }
      if (in_seq) { st = tn_error(TN_ERR_UNSUPPORTED, "%s:%d: %s: nested lists are not supported", path, line, key); break; }
      in_seq = true;
      seq_has = false;
      seq.n = 0;
      if (!sb_add(&seq, "", 0)) st = tn_error(TN_ERR_NOMEM, "out of memory");
      break;
    case YAML_SEQUENCE_END_EVENT:
      in_seq = false;
      if (fn(key, seq.buf, key_line, ctx)) done = true;
      free(key);
      key = NULL;
      want_key = true;
      break;
    case YAML_SCALAR_EVENT: {
      const char *v = (const char *)e.data.scalar.value;
      if (depth == 0) {
        if (!is_null_scalar(&e)) st = tn_error(TN_ERR_FORMAT, "%s:%d: a run config must be a mapping of key: value", path, line);
        break;
      }
      if (in_seq) {
        if ((seq_has && !sb_add(&seq, ",", 1)) || !sb_add(&seq, v, e.data.scalar.length)) st = tn_error(TN_ERR_NOMEM, "out of memory");
        seq_has = true;
        break;
      }
      if (want_key) {
        size_t kl = prefix.n + e.data.scalar.length;
        key = malloc(kl + 1);
        if (!key) { st = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
        memcpy(key, prefix.buf ? prefix.buf : "", prefix.n);
        memcpy(key + prefix.n, v, e.data.scalar.length);
        key[kl] = 0;
        key_line = line;
        want_key = false;
      } else {
        if (fn(key, is_null_scalar(&e) ? NULL : v, key_line, ctx)) done = true;
        free(key);
        key = NULL;
        want_key = true;
      }
      break;
    }
    default: break;
    }
    yaml_event_delete(&e);
  }
  free(key);
  free(prefix.buf);
  free(seq.buf);
  yaml_parser_delete(&p);
  fclose(f);
  return st;
}

typedef struct {
  tn_runcfg *rc;
  const char *path;
  tn_status st;
} load_ctx;

static int load_one(const char *key, const char *value, int line, void *vctx) {
  load_ctx *c = vctx;
  char origin[160];
  snprintf(origin, sizeof origin, "%s:%d", c->path, line);
  rc_opt *r = find_opt(c->rc, key, strlen(key));
  if (!r && ignored_key(key)) {
    tn_warn("%s: '%s' (a TRL/transformers option) has no effect in tunic; ignored", origin, key);
    return 0;
  }
  if (!r) {
    char sug[96];
    suggest(c->rc, key, sug, sizeof sug);
    c->st = tn_error(TN_ERR_ARG, "%s: unknown key '%s'%s", origin, key, sug);
    return 1;
  }
  /* the same key twice in one file is almost always a mistake */
  size_t pl = strlen(c->path);
  if (r->set && !strncmp(r->origin, c->path, pl) && r->origin[pl] == ':') {
    c->st = tn_error(TN_ERR_ARG, "%s: key '%s' given twice (first at %s)", origin, key, r->origin);
    return 1;
  }
  c->st = tn_runcfg_set(c->rc, key, value, origin);
  return c->st != TN_OK;
}

tn_status tn_runcfg_load_file(tn_runcfg *rc, const char *path) {
  load_ctx c = {rc, path, TN_OK};
  TN_TRY(tn_runcfg_read_yaml(path, load_one, &c));
  return c.st;
}

/* ---------------- argv ---------------- */

void tn_runcfg_usage(const tn_runcfg *rc, FILE *f, const char *cmd, const char *usage) {
  fprintf(f, "usage: tunic %s %s\n\noptions:\n", cmd, usage ? usage : "[options]");
  fprintf(f, "  --config FILE           YAML run config (same names as the options; flags override it)\n");
  for (int i = 0; i < rc->n; i++) {
    const tn_opt *o = &rc->v[i].o;
    if (!strcmp(o->name, "config")) continue;
    const char *t = o->type == 'b' ? "" : o->type == 's' ? " STR" : (o->type == 'f' || o->type == 'd') ? " X" : " N";
    int pad = 24 - (int)strlen(o->name) - (int)strlen(t);
    fprintf(f, "  --%s%s%*s%s", o->name, t, pad > 1 ? pad : 1, "", o->help ? o->help : "");
    char dv[64] = "";
    switch (o->type) {
    case 's': if (rc->v[i].def.s) snprintf(dv, sizeof dv, "%s", rc->v[i].def.s); break;
    case 'i': snprintf(dv, sizeof dv, "%d", rc->v[i].def.i); break;
    case 'f': snprintf(dv, sizeof dv, "%g", rc->v[i].def.f); break;
    case 'd': snprintf(dv, sizeof dv, "%g", rc->v[i].def.d); break;
    case 'u': snprintf(dv, sizeof dv, "%llu", (unsigned long long)rc->v[i].def.u); break;
    case 'b': if (rc->v[i].def.b) snprintf(dv, sizeof dv, "true"); break;
    }
    if (dv[0]) fprintf(f, " (default %s)", dv);
    fputc('\n', f);
  }
}

tn_status tn_runcfg_parse(tn_runcfg *rc, int argc, char **argv, const char *usage, bool *help) {
  const char *cmd = argc > 0 && argv[0] ? argv[0] : "?";
  if (help) *help = false;
  /* pass 1: --help, and the config file(s) - loaded first so that flags win whatever the order */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      tn_runcfg_usage(rc, stdout, cmd, usage);
      if (help) *help = true;
      return TN_OK;
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *path = NULL;
    if (!strcmp(argv[i], "--config")) {
      if (i + 1 >= argc) return tn_error(TN_ERR_ARG, "option --config needs a file");
      path = argv[++i];
    } else if (!strncmp(argv[i], "--config=", 9)) path = argv[i] + 9;
    else if (!strncmp(argv[i], "--", 2) && !strchr(argv[i], '=')) {
      /* skip the value of a non-bool flag so "--out --config" style values are not misread */
      rc_opt *r = find_opt(rc, argv[i] + 2, strlen(argv[i] + 2));
      if (r && r->o.type != 'b') i++;
      continue;
    } else continue;
    TN_TRY(tn_runcfg_load_file(rc, path));
    rc->config_path = pool_dup(rc, path);
    rc_opt *co = find_opt(rc, "config", 6);
    if (co && co->o.type == 's') TN_TRY(tn_runcfg_set(rc, "config", path, "--config"));
  }
  /* pass 2: flags override */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) return tn_error(TN_ERR_ARG, "unexpected argument '%s' (see tunic %s --help)", a, cmd);
    a += 2;
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    if (name_eq(a, len, "config")) {
      if (!eq) i++;
      continue;
    }
    rc_opt *r = find_opt(rc, a, len);
    if (!r) {
      char name[128], sug[96];
      snprintf(name, sizeof name, "%.*s", (int)len, a);
      suggest(rc, name, sug, sizeof sug);
      return tn_error(TN_ERR_ARG, "unknown option '--%s'%s (see tunic %s --help)", name, sug, cmd);
    }
    char origin[160];
    snprintf(origin, sizeof origin, "--%s", r->o.name);
    const char *v;
    if (r->o.type == 'b') v = eq ? eq + 1 : "true";
    else {
      v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) return tn_error(TN_ERR_ARG, "option --%s needs a value", r->o.name);
    }
    TN_TRY(tn_runcfg_set(rc, r->o.name, v, origin)); /* message: "--lr: lr: 'x' is not ..." */
  }
  return tn_runcfg_apply(rc);
}

/* ---------------- output ---------------- */

/* shortest decimal that reads back to the same float */
static double float_for_json(float x) {
  char b[32];
  for (int p = 6; p <= 9; p++) {
    snprintf(b, sizeof b, "%.*g", p, (double)x);
    if ((float)strtod(b, NULL) == x) break;
  }
  return strtod(b, NULL);
}

static cJSON *opt_json(const rc_opt *r) {
  const void *d = r->o.dst;
  switch (r->o.type) {
  case 's': return *(const char *const *)d ? cJSON_CreateString(*(const char *const *)d) : cJSON_CreateNull();
  case 'i': return cJSON_CreateNumber(*(const int *)d);
  case 'f': return isfinite(*(const float *)d) ? cJSON_CreateNumber(float_for_json(*(const float *)d)) : cJSON_CreateNull();
  case 'd': return isfinite(*(const double *)d) ? cJSON_CreateNumber(*(const double *)d) : cJSON_CreateNull();
  case 'b': return cJSON_CreateBool(*(const bool *)d);
  case 'u': {
    uint64_t u = *(const uint64_t *)d;
    if (u < (1ull << 53)) return cJSON_CreateNumber((double)u);
    char b[32];
    snprintf(b, sizeof b, "%llu", (unsigned long long)u);
    return cJSON_CreateString(b);
  }
  }
  return cJSON_CreateNull();
}

cJSON *tn_runcfg_json(const tn_runcfg *rc) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  bool has_config = false;
  for (int i = 0; i < rc->n; i++) {
    cJSON_AddItemToObject(o, rc->v[i].o.name, opt_json(&rc->v[i]));
    if (name_eq("config", 6, rc->v[i].o.name)) has_config = true;
  }
  if (!has_config) {
    if (rc->config_path) cJSON_AddStringToObject(o, "config", rc->config_path);
    else cJSON_AddNullToObject(o, "config");
  }
  return o;
}

void tn_runcfg_print(const tn_runcfg *rc, FILE *f, const char *title) {
  if (title) fprintf(f, "%s\n", title);
  int w = 0;
  for (int i = 0; i < rc->n; i++)
    if ((int)strlen(rc->v[i].o.name) > w) w = (int)strlen(rc->v[i].o.name);
  if (rc->config_path && !find_opt((tn_runcfg *)rc, "config", 6))
    fprintf(f, "  %-*s = %s\n", w, "config", rc->config_path);
  for (int i = 0; i < rc->n; i++) {
    const rc_opt *r = &rc->v[i];
    char v[256];
    char num[32];
    switch (r->o.type) {
    case 's': snprintf(v, sizeof v, "%s", *(const char *const *)r->o.dst ? *(const char *const *)r->o.dst : "(none)"); break;
    case 'i': snprintf(v, sizeof v, "%d", *(const int *)r->o.dst); break;
    case 'f': snprintf(v, sizeof v, "%s", tn_json_number(num, float_for_json(*(const float *)r->o.dst))); break;
    case 'd': snprintf(v, sizeof v, "%s", tn_json_number(num, *(const double *)r->o.dst)); break;
    case 'b': snprintf(v, sizeof v, "%s", *(const bool *)r->o.dst ? "true" : "false"); break;
    case 'u': snprintf(v, sizeof v, "%llu", (unsigned long long)*(const uint64_t *)r->o.dst); break;
    default: v[0] = 0;
    }
    fprintf(f, "  %-*s = %-16s (%s)\n", w, r->o.name, v, r->origin);
  }
}
