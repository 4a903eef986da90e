/* manifest.c - RUN_DIR/run_manifest.json: what a run was (id, start time, tunic version and
 * commit, host, command line, full resolved config, seed, model config hashes, dataset hashes),
 * written atomically so a reader never sees half a file.
 * Not for: metrics or checkpoints (their own files). */
#include "obs/obs.h"
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef TN_VERSION
#define TN_VERSION "unknown"
#endif
#ifndef TN_GIT_COMMIT
#define TN_GIT_COMMIT "unknown"
#endif

void tn_iso8601_utc(char *buf, size_t n) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void make_run_id(char *buf, size_t n) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_sec;
  x += 0x9e3779b97f4a7c15ull; /* splitmix64 finaliser */
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  snprintf(buf, n, "%s-%06x", stamp, (unsigned)(x & 0xffffff));
}

/* The config.json that describes a model: DIR/config.json, or PATH itself if it is a file. */
static char *model_config_path(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return tn_path_join(path, "config.json");
  return tn_strdup(path);
}

static tn_status add_models(cJSON *root, const tn_manifest_info *info) {
  cJSON *arr = cJSON_AddArrayToObject(root, "models");
  for (int i = 0; i < info->nmodels; i++) {
    const tn_manifest_file *mf = &info->models[i];
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
      cJSON_Delete(o);
      return tn_error(TN_ERR_NOMEM, "run manifest: out of memory");
    }
    cJSON_AddStringToObject(o, "role", mf->role ? mf->role : "model");
    cJSON_AddStringToObject(o, "path", mf->path);
    char *cfg = model_config_path(mf->path);
    char hex[65];
    tn_status s = tn_sha256_file(cfg, hex, NULL);
    if (s != TN_OK) {
      free(cfg);
      return tn_error_prefix(s, "run manifest: model '%s'", mf->path);
    }
    cJSON_AddStringToObject(o, "config", cfg);
    cJSON_AddStringToObject(o, "config_sha256", hex);
    free(cfg);
  }
  return TN_OK;
}

static tn_status add_data(cJSON *root, const tn_manifest_info *info) {
  cJSON *arr = cJSON_AddArrayToObject(root, "data");
  for (int i = 0; i < info->ndata; i++) {
    const tn_manifest_file *df = &info->data[i];
    char hex[65];
    uint64_t bytes = 0;
    tn_status s = tn_sha256_file(df->path, hex, &bytes);
    if (s != TN_OK) return tn_error_prefix(s, "run manifest: data file");
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
      cJSON_Delete(o);
      return tn_error(TN_ERR_NOMEM, "run manifest: out of memory");
    }
    cJSON_AddStringToObject(o, "role", df->role ? df->role : "train");
    cJSON_AddStringToObject(o, "path", df->path);
    cJSON_AddStringToObject(o, "sha256", hex);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
  }
  return TN_OK;
}

static tn_status write_json(const char *path, const cJSON *root) {
  char *text = tn_json_print_valid(root, true); /* argv / YAML strings may hold invalid UTF-8 */
  if (!text) return tn_error(TN_ERR_NOMEM, "%s: out of memory printing JSON", path);
  size_t n = strlen(text);
  char *buf = malloc(n + 2);
  if (!buf) { free(text); return tn_error(TN_ERR_NOMEM, "out of memory"); }
  memcpy(buf, text, n);
  buf[n++] = '\n';
  free(text);
  tn_status s = tn_write_file_atomic(path, buf, n);
  free(buf);
  return s;
}

tn_status tn_manifest_write(const char *run_dir, const tn_manifest_info *info, char *run_id_out) {
  TN_TRY(tn_mkdirs(run_dir));
  const long f0 = tn_alloc_failures(); /* cJSON drops what it cannot allocate: checked before writing */
  cJSON *root = cJSON_CreateObject();
  if (!root) return tn_error(TN_ERR_NOMEM, "%s: out of memory", run_dir);
  char id[64], now[32], host[256] = "";
  if (info->run_id) snprintf(id, sizeof id, "%s", info->run_id);
  else make_run_id(id, sizeof id);
  tn_iso8601_utc(now, sizeof now);
  if (gethostname(host, sizeof host - 1) != 0) strcpy(host, "unknown");
  cJSON_AddStringToObject(root, "run_id", id);
  if (info->command) cJSON_AddStringToObject(root, "command", info->command);
  cJSON_AddStringToObject(root, "start_time", now);
  cJSON_AddStringToObject(root, "tunic_version", TN_VERSION);
  cJSON_AddStringToObject(root, "git_commit", TN_GIT_COMMIT);
  cJSON_AddStringToObject(root, "host", host);
  cJSON_AddNumberToObject(root, "pid", (double)getpid());
  cJSON_AddNumberToObject(root, "threads", (double)tn_num_threads());
  char set[512]; /* the process-wide switches and ISA level the run used (docs/env.md) */
  if (tn_settings_format(set, sizeof set) < (int)sizeof set) {
    cJSON *sj = cJSON_Parse(set);
    if (sj) cJSON_AddItemToObject(root, "settings", sj);
  }
  cJSON *argv = cJSON_AddArrayToObject(root, "argv");
  for (int i = 0; i < info->argc; i++) {
    cJSON *a = cJSON_CreateString(info->argv[i]);
    if (!cJSON_AddItemToArray(argv, a)) cJSON_Delete(a);
  }
  /* seeds above 2^53 do not fit a JSON number exactly: write those as strings */
  if (info->seed < (1ull << 53)) cJSON_AddNumberToObject(root, "seed", (double)info->seed);
  else {
    char sb[32];
    snprintf(sb, sizeof sb, "%llu", (unsigned long long)info->seed);
    cJSON_AddStringToObject(root, "seed", sb);
  }
  cJSON *cfg = NULL;
  if (info->config) cfg = cJSON_Duplicate(info->config, 1);
  else if (info->config_json) {
    cfg = cJSON_Parse(info->config_json);
    if (!cfg) {
      cJSON_Delete(root);
      if (tn_alloc_failures() != f0) return tn_error(TN_ERR_NOMEM, "run manifest: out of memory");
      return tn_error(TN_ERR_FORMAT, "run manifest: config_json is not valid JSON");
    }
  } else cfg = cJSON_CreateObject();
  if (!cJSON_AddItemToObject(root, "config", cfg)) cJSON_Delete(cfg);
  tn_status s = add_models(root, info);
  if (s == TN_OK) s = add_data(root, info);
  if (s == TN_OK && info->extra) {
    for (const cJSON *it = info->extra->child; it; it = it->next) {
      if (!it->string) continue;
      cJSON_DeleteItemFromObjectCaseSensitive(root, it->string);
      cJSON *dup = cJSON_Duplicate(it, 1);
      if (!cJSON_AddItemToObject(root, it->string, dup)) cJSON_Delete(dup);
    }
  }
  if (s == TN_OK && tn_alloc_failures() != f0) s = tn_error(TN_ERR_NOMEM, "%s: out of memory building the run manifest", run_dir);
  if (s == TN_OK) {
    char *path = tn_path_join(run_dir, "run_manifest.json");
    s = write_json(path, root);
    free(path);
  }
  cJSON_Delete(root);
  if (s == TN_OK && run_id_out) snprintf(run_id_out, 64, "%s", id);
  return s;
}

tn_status tn_manifest_set(const char *run_dir, const char *key, cJSON *value) {
  const long f0 = tn_alloc_failures();
  char *path = tn_path_join(run_dir, "run_manifest.json");
  char *text = NULL;
  tn_status s = value ? tn_read_file(path, &text, NULL) : tn_error(TN_ERR_NOMEM, "%s: out of memory", run_dir);
  if (s != TN_OK) { cJSON_Delete(value); free(path); return s; }
  cJSON *root = cJSON_Parse(text);
  free(text);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    cJSON_Delete(value);
    s = tn_alloc_failures() != f0 ? tn_error(TN_ERR_NOMEM, "%s: out of memory", path)
                                  : tn_error(TN_ERR_FORMAT, "%s: not a JSON object", path);
    free(path);
    return s;
  }
  if (cJSON_GetObjectItemCaseSensitive(root, key)) cJSON_ReplaceItemInObjectCaseSensitive(root, key, value);
  else if (!cJSON_AddItemToObject(root, key, value)) cJSON_Delete(value);
  s = tn_alloc_failures() != f0 ? tn_error(TN_ERR_NOMEM, "%s: out of memory", path) : write_json(path, root);
  cJSON_Delete(root);
  free(path);
  return s;
}
