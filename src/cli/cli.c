/* cli.c - flag parsing shared by the subcommands: tn_cli_parse, --config YAML, the usage text
 * (defaults printed from the values), the trainers' common command flow, and the --out checks
 * of the commands that are not trainers (no foreign file overwritten without --force).
 * Each numeric value given is checked against its range rule (optrules.c).
 * Not for: the YAML loader and typed values (src/obs/runcfg.c), the trainers' shared
 * options themselves (src/train/opts.c). */
#include "cli/cli.h"
#include "store/store.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hub/hub.h"
#include "tunic/obs.h"
#include "base/json.h"

static bool wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
  return false;
}

/* The default of an option as text, from its current value ("" when there is none to show:
 * an unset string, a false bool). Numbers: the shortest text that reads back to the value,
 * exponent without leading zeros (1e-6, not 1e-06). */
static void default_text(const tn_flag *f, char *buf, size_t n) {
  buf[0] = 0;
  switch (f->type) {
  case 's': {
    const char *v = *(const char *const *)f->dst;
    if (v && *v) snprintf(buf, n, "%s", v);
    return;
  }
  case 'b': if (*(const bool *)f->dst) snprintf(buf, n, "true"); return;
  case 'i': snprintf(buf, n, "%d", *(const int *)f->dst); return;
  case 'u': snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)f->dst); return;
  case 'f': case 'd': {
    const double x = f->type == 'f' ? (double)*(const float *)f->dst : *(const double *)f->dst;
    for (int p = 6; p <= 17; p++) {
      snprintf(buf, n, "%.*g", p, x);
      if (f->type == 'f' ? (float)strtod(buf, NULL) == (float)x : strtod(buf, NULL) == x) break;
    }
    char *e = strchr(buf, 'e');
    if (e) { /* e-06 -> e-6, e+07 -> e7 */
      char *d = e + 1, *m = e + 1;
      if (*m == '+') m++;
      else if (*m == '-') d = ++m;
      while (*m == '0' && m[1]) m++;
      memmove(d, m, strlen(m) + 1);
    }
    return;
  }
  }
}

void tn_cli_usage(FILE *f, const char *cmd, const char *usage, const tn_flag *flags, int nflags, bool with_config) {
  fprintf(f, "usage: tunic %s %s\n\noptions:\n", cmd, usage ? usage : "[options]");
  char col[96];
  int w = with_config ? (int)strlen("--config FILE") : 0;
  for (int i = 0; i < nflags; i++) {
    const char t = flags[i].type;
    const int len = (int)strlen(flags[i].name) + 2 + (t == 'b' ? 0 : t == 's' ? 4 : 2);
    if (len > w) w = len;
  }
  if (w > 30) w = 30;
  if (with_config)
    fprintf(f, "  %-*s  YAML run config (keys = the option names; flags override it)\n", w, "--config FILE");
  for (int i = 0; i < nflags; i++) {
    const tn_flag *o = &flags[i];
    if (with_config && !strcmp(o->name, "config")) continue;
    const char *t = o->type == 'b' ? "" : o->type == 's' ? " STR" : (o->type == 'f' || o->type == 'd') ? " X" : " N";
    snprintf(col, sizeof col, "--%s%s", o->name, t);
    const char *help = o->help ? o->help : "";
    fprintf(f, "  %-*s  %s", w, col, help);
    char dv[64];
    default_text(o, dv, sizeof dv);
    if (dv[0] && !strstr(help, "(default")) fprintf(f, "%s(default %s)", help[0] ? " " : "", dv);
    fputc('\n', f);
  }
}

tn_flag *tn_cli_opt(tn_flag *flags, int nflags, const char *name) {
  for (int i = 0; i < nflags; i++)
    if (!strcmp(flags[i].name, name)) return &flags[i];
  return NULL;
}

bool tn_cli_download = false; /* --download (stripped from argv by main.c) */
/* resolved snapshot folders, kept for the life of the command (the options point at them) */
static char *resolved[32];
static int n_resolved;

const char *tn_cli_resolve_repo(const char *spec, bool dataset, tn_status *st) {
  *st = TN_OK;
  if (!spec || !tn_hub_is_repo_id(spec)) return spec;
  tn_hub_opts o = {.dataset = dataset, .progress = isatty(2)};
  char *dir = NULL;
  *st = tn_cli_download ? tn_hub_pull(spec, &o, &dir) : tn_hub_local(spec, &o, &dir);
  if (dir && n_resolved < 32) resolved[n_resolved++] = dir;
  return dir;
}

static const char *keep(char *p) {
  if (p && n_resolved < 32) resolved[n_resolved++] = p;
  return p;
}

/* --data ORG/NAME[@REV][:SUB]: the dataset snapshot's data file (tn_hub_data_file); a value that
 * is an existing path, or does not read as a repository id, is returned as it is */
static tn_status resolve_data(const char **v) {
  const char *spec = *v;
  struct stat sb;
  if (!spec || stat(spec, &sb) == 0) return TN_OK;
  size_t sl = strlen(spec);
  const char *colon = strchr(spec, ':');
  if (!colon && ((sl > 5 && !strcmp(spec + sl - 5, ".json")) || (sl > 6 && !strcmp(spec + sl - 6, ".jsonl"))))
    return TN_OK; /* a data file's name: the loader says it is missing */
  char *repo = colon ? strndup(spec, colon - spec) : strdup(spec);
  if (!repo) return tn_error(TN_ERR_NOMEM, "out of memory");
  tn_status st = TN_OK;
  if (tn_hub_is_repo_id(repo)) {
    const char *dir = tn_cli_resolve_repo(repo, true, &st);
    char *file = NULL;
    if (st == TN_OK) st = tn_hub_data_file(dir, colon ? colon + 1 : NULL, &file);
    if (st == TN_OK) *v = keep(file);
    else free(file);
  }
  free(repo);
  return st;
}

/* --adapter SPEC[,SPEC...] with SPEC = DIR | NAME=DIR, any DIR given as ORG/NAME[@REV] */
static tn_status resolve_adapters(const char **v) {
  if (!*v || !strchr(*v, '/')) return TN_OK;
  size_t cap = strlen(*v) + 1, len = 0;
  char *out = malloc(cap), *copy = strdup(*v);
  if (!out || !copy) { free(out); free(copy); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  out[0] = 0;
  tn_status st = TN_OK;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok && st == TN_OK; tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    const char *spec = eq ? eq + 1 : tok;
    const char *dir = tn_cli_resolve_repo(spec, false, &st);
    if (st != TN_OK) { st = tn_error_prefix(st, "--adapter %s: no such folder; as a Hub repository id", spec); break; }
    size_t need = len + strlen(tok) + strlen(dir) + 3;
    if (need > cap) {
      char *o2 = realloc(out, need * 2);
      if (!o2) { st = tn_error(TN_ERR_NOMEM, "out of memory"); break; }
      out = o2;
      cap = need * 2;
    }
    len += snprintf(out + len, cap - len, "%s%.*s%s", len ? "," : "", eq ? (int)(eq - tok + 1) : 0, tok, dir);
  }
  free(copy);
  if (st == TN_OK) *v = keep(out);
  else free(out);
  return st;
}

/* ORG/NAME[@REV] given for a model folder: the cached snapshot (tunic pull / --download);
 * for a data file: the dataset snapshot's file; for adapters: each adapter's snapshot */
static tn_status resolve_models(const tn_flag *flags, int nflags) {
  static const char *names[] = {"model", "teacher", "student", "tokenizer", "ref-model"};
  static const char *data_names[] = {"data", "eval-data", "prompts"};
  for (int i = 0; i < nflags; i++) {
    if (flags[i].type != 's') continue;
    const char **v = (const char **)flags[i].dst;
    for (size_t k = 0; k < sizeof data_names / sizeof data_names[0]; k++)
      if (!strcmp(flags[i].name, data_names[k]) && *v) {
        tn_status st = resolve_data(v);
        if (st != TN_OK) return tn_error_prefix(st, "--%s %s", flags[i].name, *v);
      }
    if (!strcmp(flags[i].name, "adapter")) TN_TRY(resolve_adapters(v));
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
      if (strcmp(flags[i].name, names[k])) continue;
      tn_status st;
      const char *dir = tn_cli_resolve_repo(*v, false, &st);
      if (st != TN_OK) return tn_error_prefix(st, "--%s %s: no such folder; as a Hub repository id", flags[i].name, *v);
      *v = dir;
    }
  }
  return TN_OK;
}

int tn_cli_parse(int argc, char **argv, const tn_flag *flags, int nflags, const char *usage) {
  /* before any value is parsed: the usage shows the defaults */
  if (wants_help(argc, argv)) { tn_cli_usage(stdout, argv[0], usage, flags, nflags, false); return 1; }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0) {
      fprintf(stderr, "tunic %s: unexpected argument '%s'\n", argv[0], a);
      return -1;
    }
    a += 2;
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    const tn_flag *f = NULL;
    for (int j = 0; j < nflags; j++)
      if (strlen(flags[j].name) == len && !strncmp(flags[j].name, a, len)) f = &flags[j];
    if (!f) {
      fprintf(stderr, "tunic %s: unknown option '--%.*s' (see tunic %s --help)\n", argv[0], (int)len, a, argv[0]);
      return -1;
    }
    if (f->type == 'b') {
      if (eq) *(bool *)f->dst = !(strcmp(eq + 1, "0") == 0 || strcmp(eq + 1, "false") == 0);
      else *(bool *)f->dst = true;
      continue;
    }
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!v) { fprintf(stderr, "tunic %s: option --%s needs a value\n", argv[0], f->name); return -1; }
    char *end = NULL;
    errno = 0;
    switch (f->type) {
    case 's': *(const char **)f->dst = v; break;
    case 'i': {
      long x = strtol(v, &end, 10);
      if (errno || *end || end == v || x < INT32_MIN || x > INT32_MAX) goto bad;
      *(int *)f->dst = (int)x;
      break;
    }
    case 'u': {
      if (strchr(v, '-')) goto bad; /* strtoull would wrap "-5" around */
      unsigned long long x = strtoull(v, &end, 10);
      if (errno || *end || end == v) goto bad;
      *(uint64_t *)f->dst = x;
      break;
    }
    case 'f': case 'd': {
      double x = strtod(v, &end);
      if (errno || *end || end == v) goto bad;
      if (f->type == 'f') *(float *)f->dst = (float)x;
      else *(double *)f->dst = x;
      break;
    }
    }
    if (tn_cli_check_opt(argv[0], f, "--") != TN_OK) {
      fprintf(stderr, "tunic %s: error: %s\n", argv[0], tn_last_error());
      return -1;
    }
    continue;
  bad:
    fprintf(stderr, "tunic %s: option --%s: '%s' is not a valid %s\n", argv[0], f->name, v,
            f->type == 'f' || f->type == 'd' ? "number" : "integer");
    return -1;
  }
  if (resolve_models(flags, nflags) != TN_OK) {
    fprintf(stderr, "tunic %s: error: %s\n", argv[0], tn_last_error());
    return -1;
  }
  return 0;
}

tn_status tn_cli_out_dir(const char *opt, const char *path, const char *const *own, bool force) {
  struct stat sb;
  if (stat(path, &sb) != 0) return TN_OK; /* created by the command */
  if (!S_ISDIR(sb.st_mode)) return tn_error(TN_ERR_ARG, "--%s %s: exists and is not a directory", opt, path);
  if (force) return TN_OK;
  DIR *d = opendir(path);
  if (!d) return tn_error(TN_ERR_IO, "--%s %s: cannot read the directory: %s", opt, path, strerror(errno));
  tn_status s = TN_OK;
  for (struct dirent *e; s == TN_OK && (e = readdir(d)) != NULL;) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    bool mine = false;
    for (int i = 0; own[i] && !mine; i++) mine = fnmatch(own[i], e->d_name, 0) == 0;
    if (!mine)
      s = tn_error(TN_ERR_ARG, "--%s %s: the directory holds '%s', which this command does not write: refusing to "
                   "write into a directory with other files (choose another directory, or --force)", opt, path, e->d_name);
  }
  closedir(d);
  return s;
}

const char *const tn_cli_model_files[] = {
  "config.json", "generation_config.json", "model.safetensors", "model-*-of-*.safetensors",
  "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
  "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json", NULL};

tn_status tn_cli_out_file(const char *opt, const char *path, const char *const *magic, bool force) {
  struct stat sb;
  if (stat(path, &sb) != 0) return TN_OK;
  if (S_ISDIR(sb.st_mode)) return tn_error(TN_ERR_ARG, "--%s %s: is a directory (a file name is expected)", opt, path);
  if (force || sb.st_size == 0) return TN_OK;
  char head[16] = {0};
  FILE *f = fopen(path, "rb");
  size_t n = f ? fread(head, 1, sizeof head, f) : 0;
  if (f) fclose(f);
  for (int i = 0; magic[i]; i++)
    if (n >= strlen(magic[i]) && !memcmp(head, magic[i], strlen(magic[i]))) return TN_OK;
  return tn_error(TN_ERR_ARG, "--%s %s: the file exists and is not an output of this command: refusing to overwrite "
                  "it (choose another name, or --force)", opt, path);
}

int tn_cli_fail(const char *cmd, tn_status s) {
  fprintf(stderr, "tunic %s: error: %s\n", cmd, tn_last_error()[0] ? tn_last_error() : tn_status_name(s));
  return s == TN_ERR_ARG ? 2 : 1;
}

int tn_cli_collect(int argc, char **argv, const char *name, char ***out) {
  const size_t nl = strlen(name);
  int n = 0, cap = 0;
  char **v = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = NULL;
    if (strncmp(a, "--", 2) || strncmp(a + 2, name, nl)) continue;
    if (!a[2 + nl] && i + 1 < argc) val = argv[++i];
    else if (a[2 + nl] == '=') val = a + 3 + nl;
    if (!val) continue;
    char *copy = tn_strdup(val), *save = NULL;
    if (!copy) goto oom;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      if (n == cap) {
        char **nv = realloc(v, sizeof *v * (size_t)(cap ? 2 * cap : 4));
        if (!nv) { free(copy); goto oom; }
        v = nv;
        cap = cap ? 2 * cap : 4;
      }
      if (!(v[n] = tn_strdup(t))) { free(copy); goto oom; }
      n++;
    }
    free(copy);
  }
  *out = v;
  return n;
oom:
  for (int k = 0; k < n; k++) free(v[k]);
  free(v);
  *out = NULL;
  tn_error(TN_ERR_NOMEM, "out of memory collecting --%s values", name);
  return -1;
}

int tn_cli_parse_ids(const char *s, int ***seqs, int **lens) {
  int nseq = 1;
  for (const char *c = s; *c; c++) nseq += *c == ';';
  int **out = calloc(nseq, sizeof *out);
  int *ln = calloc(nseq, sizeof *ln);
  const char *c = s;
  if (!out || !ln) {
    free(out);
    free(ln);
    tn_error(TN_ERR_NOMEM, "out of memory for %d token id lists", nseq);
    return -1;
  }
  for (int k = 0; k < nseq; k++) {
    const char *e = strchr(c, ';');
    if (!e) e = c + strlen(c);
    int cap = 1;
    for (const char *p = c; p < e; p++) cap += *p == ',';
    out[k] = malloc(sizeof(int) * cap);
    if (!out[k]) {
      for (int j = 0; j < k; j++) free(out[j]);
      free(out);
      free(ln);
      tn_error(TN_ERR_NOMEM, "out of memory for a token id list of %d ids", cap);
      return -1;
    }
    while (c < e) {
      char *end;
      errno = 0;
      long x = strtol(c, &end, 10);
      if (end == c || errno || x < 0 || x > INT32_MAX) goto bad;
      out[k][ln[k]++] = (int)x;
      c = end;
      while (c < e && (*c == ' ')) c++;
      if (c < e && *c == ',') c++;
      else if (c < e) goto bad;
    }
    if (ln[k] == 0) goto bad;
    c = *e ? e + 1 : e;
  }
  *seqs = out;
  *lens = ln;
  return nseq;
bad:
  for (int k = 0; k < nseq; k++) free(out[k]);
  free(out);
  free(ln);
  tn_error(TN_ERR_ARG, "bad token id list '%s' (expected e.g. 1,2,3;4,5)", s);
  return -1;
}

/* The range rule (optrules.c) of every numeric option given in the file or as a flag. */
static tn_status check_given(const char *cmd, const tn_flag *flags, int nflags, const tn_runcfg *rc) {
  for (int i = 0; i < nflags; i++) {
    const char *origin = tn_runcfg_origin(rc, flags[i].name);
    if (origin && strcmp(origin, "default")) TN_TRY(tn_cli_check_opt(cmd, &flags[i], origin));
  }
  return TN_OK;
}

int tn_cli_parse_config(int argc, char **argv, const tn_flag *flags, int nflags, const char *usage,
                        struct tn_runcfg **out) {
  *out = NULL;
  if (wants_help(argc, argv)) { tn_cli_usage(stdout, argv[0], usage, flags, nflags, true); return 1; }
  tn_runcfg *rc = tn_runcfg_new(flags, nflags); /* copies the table */
  if (!rc) { fprintf(stderr, "tunic %s: out of memory\n", argv[0]); return -1; }
  tn_status s = tn_runcfg_parse(rc, argc, argv, usage, NULL);
  if (s == TN_OK) s = check_given(argv[0], flags, nflags, rc);
  if (s == TN_OK) s = resolve_models(flags, nflags);
  if (s != TN_OK) {
    fprintf(stderr, "tunic %s: error: %s\n", argv[0], tn_last_error());
    tn_runcfg_free(rc);
    return -1;
  }
  char title[96];
  snprintf(title, sizeof title, "tunic %s: config", argv[0]);
  tn_runcfg_print(rc, stderr, title);
  *out = rc;
  return 0;
}

int tn_cli_train_rows(tn_flag *out, tn_train_opts *t, unsigned has, const tn_flag *own, int nown) {
  int n = tn_train_opts_rows(t, has, 0, out);
  for (int i = 0; i < nown; i++) out[n++] = own[i];
  return n + tn_train_opts_rows(t, has, 1, out + n);
}

/* --data store:KEY[:FORMAT]: the dataset KEY of the store ($TUNIC_STORE, else ./tunic_store.db)
 * exported (sha256 checked) to STORE.exports/KEY-BUILD.FORMAT.jsonl, which the trainer reads like
 * any file; FORMAT by default tunix_sft (dpo for `tunic dpo`, prompt_completion for grpo). *INFO:
 * what the run manifest records as "store_dataset" (key, build id, format, sha256, store). */
static tn_status resolve_store_data(const char *cmd, const char **data, cJSON **info) {
  *info = NULL;
  if (!*data || strncmp(*data, "store:", 6)) return TN_OK;
  char key[200];
  snprintf(key, sizeof key, "%s", *data + 6);
  const char *format = !strcmp(cmd, "dpo") ? "dpo" : !strcmp(cmd, "grpo") ? "prompt_completion" : "tunix_sft";
  char *colon = strchr(key, ':');
  if (colon) { *colon = 0; format = colon + 1; }
  const char *path = tn_store_default_path();
  tn_store *st = NULL;
  TN_TRY(tn_store_open(&st, path, NULL));
  tn_store_res r = {0};
  cJSON *ds = NULL;
  tn_status s = tn_store_dataset_get(st, key, &ds, &r);
  const cJSON *m = tn_json_field(ds, "manifest");
  const cJSON *bid = tn_json_field(m, "build_id");
  char dir[4096], *file = NULL;
  snprintf(dir, sizeof dir, "%s.exports", path);
  if (s == TN_OK && !cJSON_IsString(bid)) s = tn_error(TN_ERR_FORMAT, "dataset %s: its manifest has no build_id", key);
  if (s == TN_OK) s = tn_mkdirs(dir);
  if (s == TN_OK) {
    char name[400];
    snprintf(name, sizeof name, "%s-%s.%s.jsonl", key, bid->valuestring, format);
    if (!(file = tn_path_join(dir, name))) s = TN_ERR_NOMEM;
  }
  if (s == TN_OK) s = tn_store_dataset_export_file(st, key, format, file, NULL, &r);
  if (s == TN_OK) {
    cJSON *o = cJSON_CreateObject();
    if (!o) s = tn_error(TN_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "build_id", bid->valuestring);
    cJSON_AddStringToObject(o, "format", format);
    cJSON_AddItemToObject(o, "sha256", cJSON_Duplicate(tn_json_field(
                                           tn_json_field(m, "sha256"), format), true));
    cJSON_AddStringToObject(o, "store", path);
    cJSON_AddStringToObject(o, "export", file);
    *info = o;
    if (n_resolved < 16) resolved[n_resolved++] = file, file = NULL;
    *data = resolved[n_resolved - 1];
    fprintf(stderr, "tunic %s: --data store:%s: dataset %s build %s (%s) -> %s\n", cmd, key, key, bid->valuestring,
            format, *data);
  }
  if (s != TN_OK) s = tn_error_prefix(s, "--data store:%s (store %s)", key, path);
  free(file);
  cJSON_Delete(ds);
  tn_store_close(st);
  return s;
}

int tn_cli_train(int argc, char **argv, const char *usage, const tn_flag *flags, int nflags, tn_cli_run_fn run,
                 const void *opts) {
  const char *cmd = argv[0];
  if (wants_help(argc, argv)) { tn_cli_usage(stdout, cmd, usage, flags, nflags, true); return 0; }
  tn_runcfg *rc = tn_runcfg_new(flags, nflags);
  if (!rc) return tn_cli_fail(cmd, tn_error(TN_ERR_NOMEM, "out of memory"));
  tn_status s = tn_runcfg_parse(rc, argc, argv, usage, NULL);
  if (s == TN_OK) s = check_given(cmd, flags, nflags, rc);
  if (s == TN_OK) s = resolve_models(flags, nflags);
  cJSON *store_ds = NULL;
  tn_train_opts *to = (tn_train_opts *)opts; /* every trainer's options start with the shared block */
  if (s == TN_OK) s = resolve_store_data(cmd, &to->data, &store_ds);
  if (s == TN_OK) {
    char title[96];
    snprintf(title, sizeof title, "%s configuration", cmd);
    tn_runcfg_print(rc, stdout, title);
    cJSON *cfg = tn_runcfg_json(rc);
    char *cfg_text = cfg ? cJSON_PrintUnformatted(cfg) : NULL;
    cJSON_Delete(cfg);
    s = cfg_text ? run(opts, cfg_text, argc, argv) : tn_error(TN_ERR_NOMEM, "out of memory");
    free(cfg_text);
    /* the dataset key and build id in the run manifest (tunic store runs register reads them) */
    char *mp = store_ds && to->out ? tn_path_join(to->out, "run_manifest.json") : NULL;
    if (mp && tn_file_exists(mp)) {
      tn_status ms = tn_manifest_set(to->out, "store_dataset", store_ds);
      store_ds = NULL;
      if (s == TN_OK) s = ms;
    }
    free(mp);
  }
  cJSON_Delete(store_ds);
  int code = s == TN_OK ? 0 : tn_cli_fail(cmd, s);
  tn_runcfg_free(rc);
  return code;
}
