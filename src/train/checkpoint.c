/* checkpoint.c - training checkpoints that survive a kill at any moment:
 * written into a temporary folder (each file fsync'd by the atomic writers),
 * renamed into place, the parent fsync'd; the last K kept. Also the trainable
 * set of a full fine-tune. Format described in train.h. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "base/json.h"
#include "obs/obs.h"
#include "train/train.h"

tn_status tn_trainable_full(tn_trainable *tr, const tn_model *m, tn_grads *grads) {
  memset(tr, 0, sizeof *tr);
  tn_weight_entry *wt, *gt;
  int n, n2;
  tn_weights w = m->w;
  TN_TRY(tn_weight_table(&m->cfg, &w, &wt, &n));
  tn_status s = tn_weight_table(&m->cfg, &grads->g, &gt, &n2);
  if (s != TN_OK) { free(wt); return s; }
  tr->rows = calloc(n, sizeof(tn_param));
  if (!tr->rows) { free(wt); free(gt); return tn_error(TN_ERR_NOMEM, "out of memory (trainable rows)"); }
  tr->n = n;
  for (int i = 0; i < n; i++) {
    tr->rows[i].name = tn_strdup(wt[i].name);
    if (!tr->rows[i].name) { free(wt); free(gt); tn_trainable_free(tr); return tn_error(TN_ERR_NOMEM, "out of memory (trainable rows)"); }
    tr->rows[i].param = *wt[i].ptr;
    tr->rows[i].grad = *gt[i].ptr;
    tr->rows[i].n = wt[i].numel;
    tr->rows[i].decay = tn_param_decays(wt[i].name, wt[i].ndim);
  }
  tr->n = n;
  tr->grad = grads->flat;
  tr->ngrad = grads->n;
  free(wt);
  free(gt);
  return TN_OK;
}

void tn_trainable_free(tn_trainable *tr) {
  for (int i = 0; i < tr->n; i++) free((void *)tr->rows[i].name);
  free(tr->rows);
  memset(tr, 0, sizeof *tr);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb; (void)flag; (void)f;
  return remove(p);
}
static void rm_rf(const char *path) { nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* rename with the injected faults of the tests (base.h) */
static int ck_rename(const char *from, const char *to) {
  int err = tn_io_fault(TN_IO_RENAME, to);
  if (err) { errno = err; return -1; }
  return rename(from, to);
}

/* sizes and sha256 of every file under root/rel (recursively) into files, keyed by path */
static tn_status add_sums(cJSON *files, const char *root, const char *rel) {
  char dir[4400];
  snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
  DIR *d = opendir(dir);
  if (!d) return tn_error(TN_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
  tn_status s = TN_OK;
  struct dirent *de;
  while (s == TN_OK && (de = readdir(d))) {
    if (de->d_name[0] == '.' || !strcmp(de->d_name, "checksums.json")) continue; /* '.': temporaries */
    char name[4400], path[8900];
    snprintf(name, sizeof name, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
    snprintf(path, sizeof path, "%s/%s", root, name);
    struct stat st;
    if (stat(path, &st) != 0) s = tn_error(TN_ERR_IO, "%s: %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode)) s = add_sums(files, root, name);
    else {
      char hex[65];
      uint64_t bytes = 0;
      s = tn_sha256_file(path, hex, &bytes);
      cJSON *o = cJSON_AddObjectToObject(files, name);
      cJSON_AddNumberToObject(o, "bytes", (double)bytes);
      cJSON_AddStringToObject(o, "sha256", hex);
    }
  }
  closedir(d);
  return s;
}

static tn_status write_checksums(const char *dir) {
  const long f0 = tn_alloc_failures(); /* cJSON drops items silently when out of memory */
  cJSON *j = cJSON_CreateObject(), *files = cJSON_AddObjectToObject(j, "files");
  tn_status s = add_sums(files, dir, "");
  if (s == TN_OK && tn_alloc_failures() != f0) s = tn_error(TN_ERR_NOMEM, "%s: out of memory listing the checksums", dir);
  char *text = s == TN_OK ? cJSON_Print(j) : NULL;
  cJSON_Delete(j);
  if (s != TN_OK) return s;
  if (!text) return tn_error(TN_ERR_NOMEM, "checksums.json");
  char *path = tn_path_join(dir, "checksums.json");
  s = tn_write_file_atomic(path, text, strlen(text));
  free(path);
  free(text);
  return s;
}

tn_status tn_ckpt_verify(const char *dir) {
  char *path = tn_path_join(dir, "checksums.json"), *text = NULL;
  if (!tn_file_exists(path)) { free(path); return TN_OK; }
  tn_status s = tn_read_file(path, &text, NULL);
  cJSON *j = s == TN_OK ? cJSON_Parse(text) : NULL;
  const cJSON *files = NULL;
  if (s == TN_OK && !j) s = tn_error(TN_ERR_FORMAT, "%s: not JSON", path);
  if (s == TN_OK) s = tn_json_kind(j, path, "files", cJSON_Object, true, &files);
  const cJSON *f, *list = s == TN_OK ? files : NULL;
  cJSON_ArrayForEach(f, list) {
    char where[4400];
    snprintf(where, sizeof where, "%s: files.%s", path, f->string ? f->string : "");
    double bd = 0;
    const char *hs = NULL;
    if (cJSON_IsObject(f)) s = tn_json_num(f, where, "bytes", true, 0, 9007199254740992.0, 0, &bd);
    if (s == TN_OK && cJSON_IsObject(f)) s = tn_json_str(f, where, "sha256", true, NULL, &hs);
    if (s != TN_OK) break;
    const cJSON *b = tn_json_field(f, "bytes"), *h = tn_json_field(f, "sha256");
    if (!f->string || strstr(f->string, "..") || f->string[0] == '/' || !cJSON_IsNumber(b) || !cJSON_IsString(h)) {
      s = tn_error(TN_ERR_FORMAT, "%s: entry '%s' is not {\"bytes\": N, \"sha256\": HEX} of a file in the folder", path,
                   f->string ? f->string : "");
      break;
    }
    char *fp = tn_path_join(dir, f->string), hex[65];
    uint64_t bytes = 0;
    struct stat st;
    if (stat(fp, &st) != 0) s = tn_error(TN_ERR_FORMAT, "%s: missing (listed in checksums.json)", fp);
    else if ((double)st.st_size != b->valuedouble)
      s = tn_error(TN_ERR_FORMAT, "%s: %lld bytes, checksums.json says %.0f (truncated or changed)", fp,
                   (long long)st.st_size, b->valuedouble);
    else if ((s = tn_sha256_file(fp, hex, &bytes)) == TN_OK && strcmp(hex, h->valuestring) != 0)
      s = tn_error(TN_ERR_FORMAT, "%s: contents differ from its sha256 in checksums.json (corrupted)", fp);
    free(fp);
    if (s != TN_OK) break;
  }
  cJSON_Delete(j);
  free(text);
  free(path);
  return s;
}

static tn_status write_optimizer(const char *path, const tn_trainable *tr, const tn_adamw *opt) {
  int n = tr->n;
  tn_st_entry *e = calloc(2 * n + 1, sizeof *e);
  char **names = calloc(2 * n + 1, sizeof(char *));
  bool oom = !e || !names;
  for (int i = 0; i < n && !oom; i++) {
    float *m, *v;
    size_t k = tn_adamw_row_state(opt, i, &m, &v);
    for (int j = 0; j < 2; j++) {
      size_t len = strlen(tr->rows[i].name) + 16;
      names[2 * i + j] = malloc(len);
      if (!names[2 * i + j]) { oom = true; break; }
      snprintf(names[2 * i + j], len, "%s.%s", tr->rows[i].name, j ? "exp_avg_sq" : "exp_avg");
      e[2 * i + j] = (tn_st_entry){.name = names[2 * i + j], .dtype = TN_ST_F32, .ndim = 1, .shape = {(int64_t)k},
                                   .data = j ? v : m};
    }
  }
  int64_t step = opt->step;
  if (!oom) e[2 * n] = (tn_st_entry){.name = "step", .dtype = TN_ST_I64, .ndim = 0, .data = &step};
  tn_status s = oom ? tn_error(TN_ERR_NOMEM, "%s: out of memory", path) : tn_st_write(path, e, 2 * n + 1, NULL);
  for (int i = 0; names && i < 2 * n; i++) free(names[i]);
  free(names);
  free(e);
  return s;
}

static tn_status write_weights(const char *path, const tn_trainable *tr) {
  tn_st_entry *e = calloc(tr->n + 1, sizeof *e);
  if (!e) return tn_error(TN_ERR_NOMEM, "%s: out of memory", path);
  for (int i = 0; i < tr->n; i++)
    e[i] = (tn_st_entry){.name = tr->rows[i].name, .dtype = TN_ST_F32, .ndim = 1, .shape = {(int64_t)tr->rows[i].n},
                         .data = tr->rows[i].param};
  tn_status s = tn_st_write(path, e, tr->n, "{\"format\":\"pt\"}");
  free(e);
  return s;
}

/* step numbers of RUN/checkpoints/step_N, sorted ascending */
static int list_steps(const char *ckdir, long **out) {
  DIR *d = opendir(ckdir);
  *out = NULL;
  if (!d) return 0;
  int n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    char *end;
    if (strncmp(de->d_name, "step_", 5) != 0) continue;
    long st = strtol(de->d_name + 5, &end, 10);
    if (*end || end == de->d_name + 5) continue;
    if (n == cap) {
      long *nw = realloc(*out, sizeof(long) * (cap ? cap * 2 : 16));
      if (!nw) { closedir(d); free(*out); *out = NULL; return -1; } /* out of memory */
      *out = nw;
      cap = cap ? cap * 2 : 16;
    }
    (*out)[n++] = st;
  }
  closedir(d);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && (*out)[j - 1] > (*out)[j]; j--) { long t = (*out)[j]; (*out)[j] = (*out)[j - 1]; (*out)[j - 1] = t; }
  return n;
}

/* hidden .step_* folders (temporary, replaced or being deleted) left by a killed run */
static void remove_stale(const char *ckdir) {
  DIR *d = opendir(ckdir);
  if (!d) return;
  struct dirent *de;
  char path[4400];
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, ".step_", 6) != 0) continue;
    snprintf(path, sizeof path, "%s/%s", ckdir, de->d_name);
    rm_rf(path);
  }
  closedir(d);
}

tn_status tn_ckpt_write_state(const char *dir, const char *weights_file, const tn_trainable *tr, const tn_adamw *opt,
                              const char *state_json) {
  char path[4300];
  tn_status s = TN_OK;
  if (weights_file) { snprintf(path, sizeof path, "%s/%s", dir, weights_file); s = write_weights(path, tr); }
  if (s == TN_OK) { snprintf(path, sizeof path, "%s/optimizer.safetensors", dir); s = write_optimizer(path, tr, opt); }
  if (s == TN_OK) {
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    s = tn_write_file_atomic(path, state_json, strlen(state_json));
  }
  return s;
}

static tn_status ckpt_save(const tn_ckpt_save_opts *o, const char *ckdir) {
  char tmp[4200], fin[4200];
  TN_TRY(tn_mkdirs(ckdir));
  snprintf(tmp, sizeof tmp, "%s/.step_%ld.tmp-%d", ckdir, o->step, (int)getpid());
  snprintf(fin, sizeof fin, "%s/step_%ld", ckdir, o->step);
  rm_rf(tmp);
  tn_status s = tn_mkdirs(tmp);
  if (s == TN_OK) s = tn_ckpt_write_state(tmp, o->weights_file, o->tr, o->opt, o->state_json);
  if (s == TN_OK && o->extra) s = o->extra(tmp, o->extra_ctx);
  if (s == TN_OK) s = write_checksums(tmp);
  if (s == TN_OK) s = tn_fsync_path(tmp);
  if (s == TN_OK) {
    char old[4300];
    snprintf(old, sizeof old, "%s/.step_%ld.old-%d", ckdir, o->step, (int)getpid());
    bool had = tn_file_exists(fin);
    if (had && ck_rename(fin, old) != 0) s = tn_error(TN_ERR_IO, "%s: cannot replace: %s", fin, strerror(errno));
    if (s == TN_OK && ck_rename(tmp, fin) != 0) {
      s = tn_error(TN_ERR_IO, "%s: cannot rename into place: %s", fin, strerror(errno));
      if (had && rename(old, fin) != 0) tn_warn("%s: could not be put back from %s", fin, old);
    }
    if (s == TN_OK) s = tn_fsync_path(ckdir);
    if (s == TN_OK && had) rm_rf(old);
  }
  if (s != TN_OK) rm_rf(tmp);
  return s;
}

tn_status tn_ckpt_save(const tn_ckpt_save_opts *o) {
  char ckdir[4096], path[4300];
  snprintf(ckdir, sizeof ckdir, "%s/checkpoints", o->run_dir);
  tn_io_fault_scope(true);
  tn_status s = ckpt_save(o, ckdir);
  if (s != TN_OK) {
    tn_io_fault_scope(false);
    return tn_error_prefix(s, "checkpoint %s/step_%ld (step %ld) failed; the checkpoints before it are kept", ckdir, o->step,
                           o->step);
  }
  if (o->keep_last > 0) {
    long *steps;
    int n = list_steps(ckdir, &steps);
    if (n < 0) s = tn_error(TN_ERR_NOMEM, "%s: out of memory listing the checkpoints", ckdir);
    for (int i = 0; i + o->keep_last < n; i++) {
      /* rename first, so that a kill during the deletion never leaves a partial step_N */
      char gone[4300];
      snprintf(path, sizeof path, "%s/step_%ld", ckdir, steps[i]);
      snprintf(gone, sizeof gone, "%s/.step_%ld.del-%d", ckdir, steps[i], (int)getpid());
      if (ck_rename(path, gone) == 0) rm_rf(gone);
      else tn_warn("%s: the old checkpoint could not be removed: %s", path, strerror(errno));
    }
    free(steps);
  }
  tn_io_fault_scope(false);
  remove_stale(ckdir);
  return s;
}

int tn_ckpt_list(const char *run_dir, long **steps) {
  char ckdir[4096];
  snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
  remove_stale(ckdir); /* leftovers of a killed save or delete: a resumed run may never save again */
  return list_steps(ckdir, steps);
}

tn_status tn_ckpt_load(const char *dir, const char *weights_file, tn_trainable *tr, tn_adamw *opt, char **state_json) {
  char path[4300];
  tn_st_file f;
  snprintf(path, sizeof path, "%s/%s", dir, weights_file);
  TN_TRY(tn_st_open(&f, path));
  tn_status s = TN_OK;
  for (int i = 0; i < tr->n && s == TN_OK; i++) {
    const tn_st_tensor *t = tn_st_find(&f, tr->rows[i].name);
    if (!t) s = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' is missing", path, tr->rows[i].name);
    else if (t->dtype != TN_ST_F32 || t->numel != tr->rows[i].n)
      s = tn_error(TN_ERR_FORMAT, "%s: tensor '%s' has %zu elements of %s, expected %zu F32", path, t->name, t->numel,
                   tn_st_dtype_name(t->dtype), tr->rows[i].n);
    else memcpy(tr->rows[i].param, t->data, t->nbytes);
  }
  tn_st_close(&f);
  if (s != TN_OK) return s;
  snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
  TN_TRY(tn_st_open(&f, path));
  float *m = calloc(opt->total + 1, sizeof(float)), *v = calloc(opt->total + 1, sizeof(float));
  if (!m || !v) s = tn_error(TN_ERR_NOMEM, "%s: out of memory (%zu optimizer values)", path, opt->total);
  for (int i = 0; i < tr->n && s == TN_OK; i++) {
    for (int j = 0; j < 2 && s == TN_OK; j++) {
      char nm[512];
      snprintf(nm, sizeof nm, "%s.%s", tr->rows[i].name, j ? "exp_avg_sq" : "exp_avg");
      const tn_st_tensor *t = tn_st_find(&f, nm);
      if (!t || t->dtype != TN_ST_F32 || t->numel != tr->rows[i].n)
        s = tn_error(TN_ERR_FORMAT, "%s: optimizer state '%s' is missing or has the wrong size", path, nm);
      else memcpy((j ? v : m) + opt->offset[i], t->data, t->nbytes);
    }
  }
  const tn_st_tensor *st = tn_st_find(&f, "step");
  int64_t step = 0;
  if (s == TN_OK && (!st || st->dtype != TN_ST_I64 || st->numel != 1)) s = tn_error(TN_ERR_FORMAT, "%s: 'step' is missing", path);
  if (s == TN_OK) memcpy(&step, st->data, 8);
  tn_st_close(&f);
  if (s == TN_OK) s = tn_adamw_load_state(opt, m, v, opt->total, (long)step);
  free(m);
  free(v);
  if (s != TN_OK) return s;
  snprintf(path, sizeof path, "%s/trainer_state.json", dir);
  return tn_read_file(path, state_json, NULL);
}
