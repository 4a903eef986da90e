/* cmd_store.c - `tunic store ...`: the trace and dataset store from the command line, on the
 * same database file as `tunic serve --store` (src/store, docs/store.md):
 *   tunic store traces import FILE.jsonl [--source S]    tunic store traces list [filters]
 *   tunic store traces show ID
 *   tunic store datasets build --name N --version V [filters] [--limit N] [--strategy S] [--seed S]
 *   tunic store datasets export KEY [--format F] [--out FILE]    datasets list | show KEY
 *   tunic store games high-card-duel --count N --seed S
 *   tunic store runs register --run-dir DIR [--dataset KEY] [--eval-before F --eval-after F]
 *   tunic store runs list | show ID | report ID
 * Every command takes --store PATH (default $TUNIC_STORE, else ./tunic_store.db). Results are JSON
 * on stdout. Not for: the rules (src/store/store.c) - this file parses argv and prints. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "store/store.h"
#include "base/json.h"

static const char *usage_text =
    "traces import FILE.jsonl [--source S] | traces list [--source S --game G --since T --limit N --cursor C] |\n"
    "  traces show ID | datasets build --name N --version V [--source S --game G --since T --until T --min-score X]\n"
    "  [--limit N] [--strategy latest|random|top_score] [--seed S] | datasets export KEY [--format tunix_sft|messages|\n"
    "  prompt_completion|dpo] [--out FILE] | datasets list | datasets show KEY |\n"
    "  games high-card-duel --count N --seed S [--no-persist] | runs register --run-dir DIR [--dataset KEY]\n"
    "  [--eval-before F --eval-after F] | runs list | runs show ID | runs report ID      (all: [--store PATH])";

static int print_json(cJSON *o) {
  char *t = o ? cJSON_Print(o) : NULL;
  cJSON_Delete(o);
  if (!t) { fprintf(stderr, "tunic store: out of memory\n"); return 1; }
  puts(t);
  cJSON_free(t);
  return 0;
}

static int fail_res(const char *what, tn_status s, const tn_store_res *r) {
  fprintf(stderr, "tunic store %s: error%s%d: %s\n", what, r->code ? " " : "", r->code,
          tn_last_error()[0] ? tn_last_error() : tn_status_name(s));
  return r->code == 400 || r->code == 404 || r->code == 409 || s == TN_ERR_ARG ? 2 : 1;
}

/* JSONL traces into the store, 1000 per transaction; errors name FILE:LINE */
static int import_traces(tn_store *st, const char *path, const char *source) {
  char *text = NULL;
  size_t len;
  tn_status s = tn_read_file(path, &text, &len);
  if (s != TN_OK) return tn_cli_fail("store", s);
  long total = 0, lineno = 0, lines[1000];
  cJSON *batch = cJSON_CreateArray();
  int code = 0;
  char *p = text;
  while (code == 0 && batch) {
    char *e = p ? strchr(p, '\n') : NULL;
    bool last = !p || !*p;
    if (!last) {
      if (e) *e = 0;
      lineno++;
      char *q = p;
      while (*q == ' ' || *q == '\t' || *q == '\r') q++;
      if (*q) {
        cJSON *j = cJSON_Parse(p);
        if (!j) { fprintf(stderr, "tunic store traces import: %s:%ld: not valid JSON\n", path, lineno); code = 2; break; }
        if (source && cJSON_IsObject(j) && !tn_json_field(j, "source"))
          cJSON_AddStringToObject(j, "source", source);
        lines[cJSON_GetArraySize(batch)] = lineno;
        cJSON_AddItemToArray(batch, j);
      }
      p = e ? e + 1 : NULL;
    }
    if (cJSON_GetArraySize(batch) == 1000 || (last && cJSON_GetArraySize(batch) > 0)) {
      cJSON *ids = NULL;
      tn_store_res r = {0};
      s = tn_store_traces_add(st, batch, &ids, &r);
      if (s != TN_OK) {
        int i = -1;
        const char *m = tn_last_error();
        if (sscanf(m, "traces[%d]", &i) == 1 && i >= 0 && i < 1000) {
          const char *rest = strchr(m, ']');
          fprintf(stderr, "tunic store traces import: %s:%ld%s\n", path, lines[i], rest ? rest + 1 : m);
        } else {
          fprintf(stderr, "tunic store traces import: %s: %s\n", path, m);
        }
        code = 2;
      }
      total += cJSON_GetArraySize(ids);
      cJSON_Delete(ids);
      cJSON_Delete(batch);
      batch = cJSON_CreateArray();
    }
    if (last) break;
  }
  cJSON_Delete(batch);
  free(text);
  if (code == 0) printf("{\"imported\": %ld, \"store\": \"%s\"}\n", total, tn_store_path(st));
  return code;
}

/* an option among argv[first..] (--NAME or --NAME=...) */
static bool given(int argc, char **argv, int first, const char *opt) {
  for (int i = first; i < argc; i++)
    if (!strncmp(argv[i], opt, strlen(opt))) return true;
  return false;
}

int tn_cmd_store(int argc, char **argv) {
  if (argc < 3 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf("usage: tunic store %s\n", usage_text);
    return argc < 2 ? 2 : 0;
  }
  const char *group = argv[1], *action = argv[2], *pos = NULL;
  int first = 3;
  if (argc > 3 && strncmp(argv[3], "--", 2)) { pos = argv[3]; first = 4; }
  char name[64];
  snprintf(name, sizeof name, "store %s %s", group, action);
  const char *store_path = tn_store_default_path(), *source = NULL, *game = NULL, *since = NULL, *until = NULL,
             *cursor = NULL, *dname = NULL, *dver = NULL, *strategy = NULL, *format = "tunix_sft", *out = NULL,
             *run_dir = NULL, *dataset = NULL, *eb = NULL, *ea = NULL, *id = NULL;
  int limit = 0, count = 100;
  uint64_t seed = 0;
  double min_score = 0;
  bool no_persist = false;
  tn_flag flags[] = {
    {"store", 's', &store_path, "database file (default $TUNIC_STORE, else tunic_store.db)"},
    {"source", 's', &source, "traces: the source (import: for lines without one)"},
    {"game", 's', &game, "traces: the game"},
    {"since", 's', &since, "traces created at or after this ISO-8601 UTC time"},
    {"until", 's', &until, "traces created at or before this time"},
    {"min-score", 'd', &min_score, "traces scored at least this"},
    {"limit", 'i', &limit, "list: page size; build: at most this many traces (0: all)"},
    {"cursor", 's', &cursor, "list: the next_cursor of the previous page"},
    {"name", 's', &dname, "datasets build: dataset_name"},
    {"version", 's', &dver, "datasets build: dataset_version"},
    {"strategy", 's', &strategy, "datasets build: latest | random | top_score (default latest)"},
    {"seed", 'u', &seed, "random selection / games: the seed"},
    {"format", 's', &format, "datasets export: tunix_sft | messages | prompt_completion | dpo"},
    {"out", 's', &out, "datasets export: the file (default: stdout)"},
    {"count", 'i', &count, "games: how many"},
    {"no-persist", 'b', &no_persist, "games: print the games, store nothing"},
    {"run-dir", 's', &run_dir, "runs register: the run directory"},
    {"dataset", 's', &dataset, "runs register: the dataset key it trained on (default: from its manifest)"},
    {"eval-before", 's', &eb, "runs register: eval results before training"},
    {"eval-after", 's', &ea, "runs register: eval results after training"},
    {"id", 's', &id, "runs register: the run id (default: the manifest's)"},
  };
  const int nf = sizeof flags / sizeof flags[0];
  char **sub = calloc((size_t)(argc - first + 2), sizeof *sub);
  if (!sub) return 1;
  sub[0] = name;
  for (int i = first; i < argc; i++) sub[i - first + 1] = argv[i];
  int pr = tn_cli_parse(argc - first + 1, sub, flags, nf, usage_text);
  free(sub);
  if (pr) return pr > 0 ? 0 : 2;
  const bool seed_given = given(argc, argv, first, "--seed"), min_given = given(argc, argv, first, "--min-score");
  tn_store *st = NULL;
  tn_status s = tn_store_open(&st, store_path, NULL);
  if (s != TN_OK) return tn_cli_fail("store", s);
  tn_store_res r = {0};
  cJSON *o = NULL;
  int code = -1;
  const char *need_pos = NULL;
  if (!strcmp(group, "traces") && !strcmp(action, "import")) {
    if (!pos) need_pos = "FILE.jsonl";
    else code = import_traces(st, pos, source);
  } else if (!strcmp(group, "traces") && !strcmp(action, "list")) {
    tn_store_trace_query q = {.source = source, .game = game, .since = since, .until = until, .limit = limit,
                              .has_min_score = min_given, .min_score = min_score};
    if (cursor) {
      char *e;
      errno = 0;
      q.before_id = strtoll(cursor, &e, 10);
      if (errno || *e || q.before_id < 1) { fprintf(stderr, "tunic %s: --cursor: expected a next_cursor value\n", name); code = 2; }
    }
    if (code < 0) s = tn_store_traces_list(st, &q, &o, &r);
  } else if (!strcmp(group, "traces") && !strcmp(action, "show")) {
    char *e = NULL;
    long long tid = pos ? strtoll(pos, &e, 10) : 0;
    if (!pos || *e || tid < 1) need_pos = "ID (a positive integer)";
    else s = tn_store_trace_get(st, tid, &o, &r);
  } else if (!strcmp(group, "datasets") && !strcmp(action, "build")) {
    cJSON *req = cJSON_CreateObject(), *f = cJSON_AddObjectToObject(req, "filters");
    if (dname) cJSON_AddStringToObject(req, "dataset_name", dname);
    if (dver) cJSON_AddStringToObject(req, "dataset_version", dver);
    if (source) cJSON_AddStringToObject(f, "source", source);
    if (game) cJSON_AddStringToObject(f, "game", game);
    if (since) cJSON_AddStringToObject(f, "since", since);
    if (until) cJSON_AddStringToObject(f, "until", until);
    if (min_given) cJSON_AddNumberToObject(f, "min_score", min_score);
    if (limit) cJSON_AddNumberToObject(req, "limit", limit);
    if (strategy) cJSON_AddStringToObject(req, "selection_strategy", strategy);
    if (seed_given) cJSON_AddNumberToObject(req, "seed", (double)seed);
    s = tn_store_dataset_build(st, req, &o, &r);
    cJSON_Delete(req);
  } else if (!strcmp(group, "datasets") && !strcmp(action, "export")) {
    if (!pos) need_pos = "KEY";
    else if (out) {
      s = tn_store_dataset_export_file(st, pos, format, out, &o, &r);
      if (s == TN_OK) {
        cJSON *m = o;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "exported", out);
        cJSON_AddStringToObject(o, "format", format);
        cJSON_AddItemToObject(o, "build_id", cJSON_Duplicate(tn_json_field(m, "build_id"), true));
        cJSON_AddItemToObject(o, "sha256", cJSON_Duplicate(tn_json_field(tn_json_field(m, "sha256"), format), true));
        cJSON_Delete(m);
      }
    } else {
      char *text = NULL;
      size_t len;
      s = tn_store_dataset_export(st, pos, format, &text, &len, &r);
      if (s == TN_OK) { fwrite(text, 1, len, stdout); code = 0; }
      free(text);
    }
  } else if (!strcmp(group, "datasets") && !strcmp(action, "list")) {
    s = tn_store_datasets_list(st, &o, &r);
  } else if (!strcmp(group, "datasets") && !strcmp(action, "show")) {
    if (!pos) need_pos = "KEY";
    else s = tn_store_dataset_get(st, pos, &o, &r);
  } else if (!strcmp(group, "games") && !strcmp(action, "high-card-duel")) {
    cJSON *req = cJSON_CreateObject();
    cJSON_AddNumberToObject(req, "count", count);
    cJSON_AddNumberToObject(req, "seed", (double)seed);
    cJSON_AddBoolToObject(req, "persist", !no_persist);
    s = tn_store_hcd_generate(st, req, &o, &r);
    cJSON_Delete(req);
  } else if (!strcmp(group, "runs") && !strcmp(action, "register")) {
    cJSON *req = cJSON_CreateObject();
    if (run_dir) cJSON_AddStringToObject(req, "run_dir", run_dir);
    if (dataset) cJSON_AddStringToObject(req, "dataset", dataset);
    if (eb) cJSON_AddStringToObject(req, "eval_before", eb);
    if (ea) cJSON_AddStringToObject(req, "eval_after", ea);
    if (id) cJSON_AddStringToObject(req, "id", id);
    s = tn_store_run_register(st, req, &o, &r);
    cJSON_Delete(req);
  } else if (!strcmp(group, "runs") && !strcmp(action, "list")) {
    s = tn_store_runs_list(st, &o, &r);
  } else if (!strcmp(group, "runs") && !strcmp(action, "show")) {
    if (!pos) need_pos = "ID";
    else s = tn_store_run_get(st, pos, false, &o, &r);
  } else if (!strcmp(group, "runs") && !strcmp(action, "report")) {
    char *md = NULL;
    if (!pos) need_pos = "ID";
    else if ((s = tn_store_run_report(st, pos, &md, &r)) == TN_OK) { fputs(md, stdout); code = 0; }
    free(md);
  } else {
    fprintf(stderr, "tunic store: unknown command '%s %s'\nusage: tunic store %s\n", group, action, usage_text);
    code = 2;
  }
  if (need_pos) { fprintf(stderr, "tunic %s: needs %s\n", name, need_pos); code = 2; }
  if (code < 0) code = s == TN_OK ? print_json(o) : (cJSON_Delete(o), fail_res(name + 6, s, &r));
  else cJSON_Delete(o);
  tn_store_close(st);
  return code;
}
