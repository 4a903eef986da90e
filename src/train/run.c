/* run.c - the one trainer driver and the run directory shared by the trainers (see
 * run.h): example stream, --out checks, resume (verified, validated, falling back to an
 * earlier checkpoint), manifest/metrics/progress, the optimizer update with the NaN stop,
 * checkpoints and the final weights. Not for: what a step computes (each trainer). */
#define _XOPEN_SOURCE 700
#include <cjson/cJSON.h>
#include "base/json.h"
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "obs/obs.h"
#include "train/run.h"

static const tn_comm *g_comm;
void tn_train_set_comm(const tn_comm *c) { g_comm = c && c->size > 1 ? c : NULL; }
const tn_comm *tn_train_comm(void) { return g_comm; }
int tn_train_world(void) { return g_comm ? g_comm->size : 1; }

tn_status tn_stream_init(tn_stream *s, int n, uint64_t seed) {
  s->n = n;
  s->seed = seed;
  s->epoch = -1;
  s->perm = malloc(sizeof(int) * (n > 0 ? n : 1));
  return s->perm ? TN_OK : tn_error(TN_ERR_NOMEM, "stream of %d items", n);
}

int tn_stream_at(tn_stream *s, long pos) {
  long e = pos / s->n;
  if (e != s->epoch) {
    tn_permutation(s->perm, s->n, s->seed * 1000003ULL + (uint64_t)e);
    s->epoch = e;
  }
  return s->perm[pos % s->n];
}

void tn_stream_free(tn_stream *s) {
  free(s->perm);
  memset(s, 0, sizeof *s);
}

tn_status tn_run_check_fresh(const char *out) {
  char *ck = tn_path_join(out, "checkpoints"), *mj = tn_path_join(out, "metrics.jsonl");
  if (!ck || !mj) { free(ck); free(mj); return tn_error(TN_ERR_NOMEM, "%s: out of memory", out); }
  bool used = tn_file_exists(ck) || tn_file_exists(mj);
  free(ck);
  free(mj);
  if (used)
    return tn_error(TN_ERR_ARG, "%s already holds a run (checkpoints/ or metrics.jsonl): pass --resume to continue it, "
                                "or choose a new --out", out);
  return TN_OK;
}

tn_status tn_run_check_out(const char *out, bool *created) {
  *created = false;
  if (!out || !*out) return TN_OK; /* the trainer says --out is required */
  struct stat st;
  if (stat(out, &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return tn_error(TN_ERR_ARG, "--out %s exists and is not a directory", out);
    DIR *d = opendir(out);
    if (!d) return tn_error(TN_ERR_IO, "--out %s: cannot read the directory: %s", out, strerror(errno));
    char other[256] = "";
    bool run = false;
    struct dirent *de;
    while ((de = readdir(d))) {
      if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
      const char *tmp = strstr(de->d_name, ".tmp.");
      if (tmp && tmp[5] && strspn(tmp + 5, "0123456789") == strlen(tmp + 5)) continue; /* an atomic write's leftover */
      if (!strcmp(de->d_name, "run_manifest.json")) run = true;
      else if (!other[0]) snprintf(other, sizeof other, "%s", de->d_name);
    }
    closedir(d);
    if (other[0] && !run)
      return tn_error(TN_ERR_ARG, "--out %s holds files that are not a tunic run (e.g. '%s', and no run_manifest.json): "
                                  "choose a new or empty directory", out, other);
    if (access(out, W_OK | X_OK) != 0) return tn_error(TN_ERR_IO, "--out %s: not writable: %s", out, strerror(errno));
    return TN_OK;
  }
  if (errno != ENOENT) return tn_error(TN_ERR_IO, "--out %s: %s", out, strerror(errno));
  char *parent = tn_strdup(out);
  if (!parent) return tn_error(TN_ERR_NOMEM, "--out %s: out of memory", out);
  char *slash = strrchr(parent, '/');
  while (slash && slash > parent && slash[1] == 0) { *slash = 0; slash = strrchr(parent, '/'); } /* trailing '/' */
  if (!slash) strcpy(parent, ".");
  else if (slash == parent) parent[1] = 0;
  else *slash = 0;
  tn_status s = TN_OK;
  if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
    s = tn_error(TN_ERR_IO, "--out %s: its parent directory %s does not exist", out, parent);
  else if (mkdir(out, 0755) != 0)
    s = tn_error(TN_ERR_IO, "--out %s: cannot create the run directory in %s: %s", out, parent, strerror(errno));
  else *created = true;
  free(parent);
  return s;
}

/* an integer-valued JSON number in [lo, hi] */
static bool json_long(const cJSON *j, const char *key, double lo, double hi, long *out) {
  const cJSON *v = tn_json_field(j, key);
  if (!cJSON_IsNumber(v)) return false;
  const double d = v->valuedouble;
  if (!(d >= lo && d <= hi) || d != floor(d)) return false;
  *out = (long)d;
  return true;
}

/* trainer_state.json of checkpoint ck (its directory says `step`) against this run.
 * TN_ERR_FORMAT: the file is damaged (an earlier checkpoint may do); TN_ERR_ARG: it
 * belongs to another run (other seed or data: refused). */
static tn_status check_state(const tn_run *r, const char *ck, long step, const char *sj, long *data_pos) {
  cJSON *j = cJSON_Parse(sj);
  tn_status s = TN_OK;
  long v = 0;
  const double big = 9007199254740992.0; /* 2^53: exact in a JSON number */
  char where[4400];
  snprintf(where, sizeof where, "%s/trainer_state.json", ck);
  if (!cJSON_IsObject(j)) s = tn_error(TN_ERR_FORMAT, "%s: not a JSON object", where);
  /* each field's type first: a wrong one is named (the file is damaged: an earlier checkpoint may do) */
  static const char *const nums[] = {"step", "data_pos", "train_examples", "seed"};
  double num;
  const char *str;
  for (size_t i = 0; s == TN_OK && i < sizeof nums / sizeof *nums; i++)
    s = tn_json_num(j, where, nums[i], i == 0, 0, 1.8446744073709552e19, 0, &num);
  if (s == TN_OK) s = tn_json_str(j, where, "data_sha256", false, NULL, &str);
  if (s != TN_OK) ;
  else if (!json_long(j, "step", 0, big, &v) || v != step)
    s = tn_error(TN_ERR_FORMAT, "%s/trainer_state.json: 'step' is not %ld (the checkpoint's step)", ck, step);
  else if (cJSON_HasObjectItem(j, "data_pos")) {
    if (json_long(j, "data_pos", 0, big, data_pos) && r->per_step > 0 && step > 0 && *data_pos != step * r->per_step &&
        *data_pos % step == 0) /* a run of another global batch (batch x grad_accum x ranks): refused, not skipped */
      s = tn_error(TN_ERR_ARG, "%s was written by a run of %ld items per step (batch-size x grad-accum x ranks), this "
                               "run takes %ld (on %d rank(s)): resume with the same global batch, e.g. the per-rank "
                               "batch scaled by the change in ranks", ck, *data_pos / step, r->per_step, r->world);
    else if (!json_long(j, "data_pos", 0, big, data_pos) || (r->per_step > 0 && *data_pos != step * r->per_step))
      s = tn_error(TN_ERR_FORMAT, "%s/trainer_state.json: 'data_pos' is not %ld (step %ld x %ld items per step)", ck,
                   step * r->per_step, step, r->per_step);
  } else *data_pos = step * r->per_step; /* written before data_pos was recorded (GRPO) */
  const cJSON *seed = tn_json_field(j, "seed"); /* written as a double: compared as one */
  if (s == TN_OK && seed && (!cJSON_IsNumber(seed) || seed->valuedouble != (double)r->seed))
    s = tn_error(TN_ERR_ARG, "%s was written by a run with another seed (this run: --seed %llu); resume with the run's own options",
                 ck, (unsigned long long)r->seed);
  if (s == TN_OK && cJSON_HasObjectItem(j, "train_examples") &&
      (!json_long(j, "train_examples", 0, big, &v) || v != r->n_train))
    s = tn_error(TN_ERR_ARG, "%s was written by a run over %s training items, this run has %d: different --data "
                             "(or data options); resume with the run's own data", ck,
                 cJSON_IsNumber(tn_json_field(j, "train_examples")) ? "other" : "an unknown number of", r->n_train);
  const cJSON *ds = tn_json_field(j, "data_sha256");
  if (s == TN_OK && ds && r->data_sha[0] && (!cJSON_IsString(ds) || strcmp(ds->valuestring, r->data_sha) != 0))
    s = tn_error(TN_ERR_ARG, "%s was written by a run over other training data (sha256 of --data %s differs): resume "
                             "with the run's own --data", ck, r->data_path);
  cJSON_Delete(j);
  return s;
}

tn_status tn_run_resume(tn_run *r, long *step0, long *data_pos) {
  *step0 = 0;
  *data_pos = 0;
  r->resumed = true;
  long *steps = NULL;
  const int n = tn_ckpt_list(r->out, &steps);
  if (n == 0) { /* killed before its first checkpoint */
    free(steps);
    printf("no checkpoint in %s/checkpoints: starting from step 0\n", r->out);
    return r->rank == 0 ? tn_metrics_truncate_after(r->out, 0) : TN_OK;
  }
  tn_status s = TN_ERR_IO;
  char ck[4200], why[512] = "";
  for (int i = n - 1; i >= 0; i--) {
    snprintf(ck, sizeof ck, "%s/checkpoints/step_%ld", r->out, steps[i]);
    char *sj = NULL;
    s = tn_ckpt_verify(ck);
    if (s == TN_OK)
      s = tn_ckpt_load(ck, r->tr ? r->weights_file : tn_tparams_weights_file(r->tp), r->tr ? r->tr : &r->tp->tr,
                       &r->tp->opt, &sj);
    if (s == TN_OK) s = check_state(r, ck, steps[i], sj, data_pos);
    if (s == TN_OK && r->ckpt_state) s = r->ckpt_state(r->ckpt_ctx, ck, true);
    free(sj);
    if (s == TN_OK) { *step0 = steps[i]; break; }
    if (s == TN_ERR_ARG || s == TN_ERR_NOMEM) break; /* another run's checkpoint: refused, not skipped */
    snprintf(why, sizeof why, "%s", tn_last_error());
    if (r->rank == 0) /* every rank falls back alike; one says so */
      tn_warn("checkpoint %s is damaged and is skipped: %s%s", ck, why, i > 0 ? "; trying the one before" : "");
  }
  free(steps);
  if (s == TN_ERR_IO || s == TN_ERR_FORMAT)
    return tn_error(TN_ERR_FORMAT, "%s/checkpoints: no checkpoint loads (the oldest: %s); start a new run or remove "
                                   "--resume", r->out, why);
  if (s != TN_OK) return s;
  printf("resumed from %s (step %ld)\n", ck, *step0);
  r->step0 = *step0;
  return r->rank == 0 ? tn_metrics_truncate_after(r->out, *step0) : TN_OK;
}

tn_status tn_run_start(tn_run *r, const tn_manifest_info *mi) {
  r->t_start = tn_now();
  if (r->rank > 0) return TN_OK; /* rank 0 alone writes the run directory */
  if (!r->resumed) TN_TRY(tn_run_check_fresh(r->out));
  TN_TRY(tn_manifest_write(r->out, mi, NULL));
  if (r->comm && r->comm->manifest_json) {
    cJSON *d = cJSON_Parse(r->comm->manifest_json);
    if (d) TN_TRY(tn_manifest_set(r->out, "distributed", d));
  }
  TN_TRY(tn_metrics_open(&r->metrics, r->out));
  if (r->step0 > 0) TN_TRY(tn_metrics_resumed(r->metrics, r->step0 + 1));
  r->prog = tn_progress_new(NULL, r->steps, r->label, TN_PROGRESS_AUTO);
  if (!r->prog) return tn_error(TN_ERR_NOMEM, "out of memory");
  r->t_start = tn_now();
  return TN_OK;
}

tn_status tn_run_nonfinite(long step, double loss) {
  return tn_error(TN_ERR_NUMERIC, "step %ld: the loss is %s; stopping (the last checkpoint is kept)", step + 1,
                  isnan(loss) ? "NaN" : "infinite");
}

/* the sum over ranks of every trainable row's gradient: the flat buffer in buckets, then
 * any row of r->tr outside it (distillation's projections) */
static tn_status sum_grads(tn_run *r, const tn_trainable *tr) {
  const tn_comm *c = r->comm;
  float *flat = r->tp->tr.grad;
  const size_t nflat = r->tp->tr.ngrad, bucket = (size_t)1 << 22; /* 16 MB: few calls, bounded MPI buffers */
  for (size_t i = 0; i < nflat; i += bucket) TN_TRY(c->sum_f32(c, flat + i, nflat - i < bucket ? nflat - i : bucket));
  for (int i = 0; i < tr->n; i++) {
    float *g = tr->rows[i].grad;
    if (g >= flat && g < flat + nflat) continue;
    TN_TRY(c->sum_f32(c, g, tr->rows[i].n));
  }
  return TN_OK;
}

tn_status tn_run_sum(tn_run *r, double *v, int n) {
  return r->comm && n > 0 ? r->comm->sum_f64(r->comm, v, (size_t)n) : TN_OK;
}

/* ---- ZeRO-1: the AdamW state sharded by rows, balanced by element count ---- */
static tn_status zero_setup(tn_run *r) {
  tn_adamw *full = &r->tp->opt;
  const int n = full->nparams, N = r->world;
  r->zown = malloc(sizeof(int) * (n > 0 ? n : 1));
  if (!r->zown) return tn_error(TN_ERR_NOMEM, "ZeRO-1 row owners");
  r->zlo = r->zhi = 0;
  for (int i = 0; i < n; i++) { /* row i goes to the rank whose 1/N share holds its middle element */
    const double mid = (double)full->offset[i] + 0.5 * (double)full->params[i].n;
    int k = (int)(mid * N / (full->total > 0 ? (double)full->total : 1.0));
    r->zown[i] = k < N ? k : N - 1;
    if (i > 0 && r->zown[i] < r->zown[i - 1]) r->zown[i] = r->zown[i - 1];
    if (r->zown[i] < r->rank) r->zlo = i + 1;
    if (r->zown[i] <= r->rank) r->zhi = i + 1;
  }
  if (r->zhi < r->zlo) r->zhi = r->zlo;
  TN_TRY(tn_adamw_init(&r->zopt, full->params + r->zlo, r->zhi - r->zlo, &full->cfg));
  const size_t o0 = full->offset[r->zlo];
  memcpy(r->zopt.m, full->m + o0, sizeof(float) * r->zopt.total); /* resumed state (zeros when fresh) */
  memcpy(r->zopt.v, full->v + o0, sizeof(float) * r->zopt.total);
  r->zopt.step = full->step;
  tn_free(full->m); tn_free(full->v); /* the point: 1/N of the moments per rank */
  full->m = full->v = NULL;
  return TN_OK;
}

/* the full optimizer state in r->tp->opt on every rank (for a checkpoint; zero_release frees it again) */
static tn_status zero_gather(tn_run *r) {
  tn_adamw *full = &r->tp->opt;
  const tn_comm *c = r->comm;
  full->m = tn_alloc(sizeof(float) * (full->total ? full->total : 1));
  full->v = tn_alloc(sizeof(float) * (full->total ? full->total : 1));
  if (!full->m || !full->v) return tn_error(TN_ERR_NOMEM, "ZeRO-1: gathering %zu optimizer floats", full->total);
  memcpy(full->m + full->offset[r->zlo], r->zopt.m, sizeof(float) * r->zopt.total);
  memcpy(full->v + full->offset[r->zlo], r->zopt.v, sizeof(float) * r->zopt.total);
  full->step = r->zopt.step;
  for (int i = 0; i < full->nparams; i++) {
    TN_TRY(c->bcast_f32(c, full->m + full->offset[i], full->params[i].n, r->zown[i]));
    TN_TRY(c->bcast_f32(c, full->v + full->offset[i], full->params[i].n, r->zown[i]));
  }
  return TN_OK;
}

static void zero_release(tn_run *r) {
  tn_free(r->tp->opt.m); tn_free(r->tp->opt.v);
  r->tp->opt.m = r->tp->opt.v = NULL;
}

static void zero_free(tn_run *r) {
  if (!r->zown) return;
  tn_adamw_free(&r->zopt);
  free(r->zown);
  r->zown = NULL;
}

tn_status tn_run_update(tn_run *r, long step, float max_grad_norm, double *gnorm, float *lr) {
  const tn_trainable *tr = r->tr ? r->tr : &r->tp->tr;
  if (r->comm) {
    tn_status s = sum_grads(r, tr);
    if (s != TN_OK) return tn_error_prefix(s, "step %ld: summing the gradients over %d ranks", step + 1, r->world);
  }
  tn_status s = tn_params_grad_norm(tr->rows, tr->n, gnorm);
  if (s != TN_OK) return tn_error_prefix(s, "step %ld: stopping (the last checkpoint is kept)", step + 1);
  *lr = tn_lr_at(&r->tp->sched, step);
  if (!r->zown) {
    tn_adamw_step(&r->tp->opt, *lr, tn_clip_coef(*gnorm, max_grad_norm));
    return TN_OK;
  }
  /* ZeRO-1: every rank has the summed gradients (so the norm and clip are global); it
   * updates its rows, then each row's new weights come from its owner */
  tn_adamw_step(&r->zopt, *lr, tn_clip_coef(*gnorm, max_grad_norm));
  r->tp->opt.step = r->zopt.step;
  for (int i = 0; i < tr->n; i++) {
    s = r->comm->bcast_f32(r->comm, tr->rows[i].param, tr->rows[i].n, r->zown[i]);
    if (s != TN_OK) return tn_error_prefix(s, "step %ld: ZeRO-1 weights from rank %d", step + 1, r->zown[i]);
  }
  return TN_OK;
}

static tn_status ckpt_write(tn_run *r, long step, long data_pos);
static tn_status ckpt_extra(const char *dir, void *ctx) {
  tn_run *r = ctx;
  TN_TRY(tn_tparams_save(r->tp, r->m, r->model_dir, dir, TN_ST_F32));
  return r->ckpt_state ? r->ckpt_state(r->ckpt_ctx, dir, false) : TN_OK;
}

tn_status tn_run_checkpoint(tn_run *r, long step, long data_pos) {
  if (r->zown) { /* the full optimizer state, so that the run resumes on any number of ranks */
    tn_status s = zero_gather(r);
    if (s == TN_OK && r->rank == 0) s = ckpt_write(r, step, data_pos);
    zero_release(r);
    return s;
  }
  return r->rank == 0 ? ckpt_write(r, step, data_pos) : TN_OK; /* every rank holds the same state */
}

static tn_status ckpt_write(tn_run *r, long step, long data_pos) {
  const long f0 = tn_alloc_failures(); /* cJSON drops an item silently when out of memory */
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "step", (double)step);
  cJSON_AddNumberToObject(j, "data_pos", (double)data_pos);
  cJSON_AddNumberToObject(j, "seed", (double)r->seed);
  cJSON_AddNumberToObject(j, "train_examples", r->n_train);
  if (r->data_sha[0]) cJSON_AddStringToObject(j, "data_sha256", r->data_sha);
  char *sj = cJSON_Print(j);
  cJSON_Delete(j);
  if (!sj || tn_alloc_failures() != f0) {
    free(sj);
    return tn_error(TN_ERR_NOMEM, "%s: out of memory writing checkpoint %ld", r->out, step);
  }
  tn_ckpt_save_opts co = {.run_dir = r->out, .step = step, .weights_file = r->tr ? r->weights_file : NULL,
                          .tr = r->tr ? r->tr : &r->tp->tr,
                          .opt = &r->tp->opt, .state_json = sj, .keep_last = r->keep_last, .extra = ckpt_extra,
                          .extra_ctx = r};
  tn_status s = tn_ckpt_save(&co);
  free(sj);
  return s;
}

tn_status tn_run_finish(tn_run *r) {
  if (r->prog) { tn_progress_finish(r->prog); r->prog = NULL; }
  if (r->rank > 0) return TN_OK;
  char *dir = tn_path_join(r->out, r->tp->lora ? "adapter" : "model");
  if (!dir) return tn_error(TN_ERR_NOMEM, "%s: out of memory", r->out);
  tn_status s = tn_tparams_save(r->tp, r->m, r->model_dir, dir, r->m->cfg.dtype);
  if (s == TN_OK) printf("saved %s\n", dir);
  free(dir);
  if (s == TN_OK) s = tn_manifest_set(r->out, "status", cJSON_CreateString("completed"));
  return s;
}

void tn_run_close(tn_run *r) {
  tn_metrics_close(r->metrics);
  r->metrics = NULL;
  if (r->prog) tn_progress_finish(r->prog);
  r->prog = NULL;
}

int tn_run_next(tn_run *r) {
  if (r->world <= 1) return tn_stream_at(&r->stream, r->data_pos++);
  const long c = r->taken++, mb = r->micro > 0 ? r->micro : r->per_step / r->world;
  return tn_stream_at(&r->stream, r->step_pos + (c / mb * r->world + r->rank) * mb + c % mb);
}

tn_status tn_train_drive(tn_trainer *t, const tn_train_opts *o, const tn_run_info *ri) {
  tn_run r = {.out = o->out, .keep_last = o->keep_last, .seed = o->seed, .comm = g_comm,
              .rank = g_comm ? g_comm->rank : 0, .world = g_comm ? g_comm->size : 1};
  tn_manifest_info mi = {0};
  bool created = false;
  tn_status s = TN_OK;
  if (r.rank == 0) s = tn_run_check_out(o->out, &created); /* before any work */
  if (s == TN_OK && r.rank == 0 && o->out && !o->resume) s = tn_run_check_fresh(o->out);
  if (s == TN_OK) s = t->setup(t->ctx, &r, &mi);
  if (s == TN_OK && r.world > 1) { /* the global step: world shards of each micro-batch */
    if (r.micro <= 0) r.micro = (int)r.per_step;
    r.per_step *= r.world;
  }
  if (s == TN_OK && r.data_path) s = tn_sha256_file(r.data_path, r.data_sha, NULL);
  if (s == TN_OK) s = tn_stream_init(&r.stream, r.n_train, o->seed);
  long step0 = 0;
  if (s == TN_OK && o->resume) s = tn_run_resume(&r, &step0, &r.data_pos);
  if (s == TN_OK && r.comm && r.comm->zero == 1) s = zero_setup(&r);
  if (s == TN_OK) {
    mi.seed = o->seed;
    if (ri) { mi.config_json = ri->config_json; mi.argc = ri->argc; mi.argv = ri->argv; }
    s = tn_run_start(&r, &mi);
  }
  for (long step = step0; s == TN_OK && step < r.steps; step++) {
    const double t0 = tn_now();
    tn_step_out so = {0};
    r.step_pos = r.data_pos;
    r.taken = 0;
    if ((s = t->step(t->ctx, &r, step, &so)) != TN_OK) break;
    if (r.world > 1) r.data_pos = r.step_pos + r.per_step;
    if (!isfinite(so.loss)) { s = tn_run_nonfinite(step, so.loss); break; }
    tn_step_info si = {.step = step, .loss = so.loss, .tokens = so.tokens};
    if ((s = tn_run_update(&r, step, o->max_grad_norm, &si.gnorm, &si.lr)) != TN_OK) break;
    si.dt = tn_now() - t0;
    const bool last = step + 1 == r.steps;
    if (t->eval && r.has_eval && o->eval_every > 0 && ((step + 1) % o->eval_every == 0 || last)) {
      if ((s = t->eval(t->ctx, &r, step)) != TN_OK) break;
      si.evaluated = true;
    }
    tn_metrics_begin(r.metrics, step + 1);
    if (t->metrics) t->metrics(t->ctx, &r, &si, r.metrics);
    tn_metrics_add(r.metrics, "elapsed_s", tn_now() - r.t_start);
    if (r.comm && r.comm->comm_s) tn_metrics_add(r.metrics, "comm_s", *r.comm->comm_s); /* rank 0's, so far */
    s = tn_metrics_commit(r.metrics);
    tn_progress_update(r.prog, step + 1, so.loss, si.lr, so.tokens / si.dt, so.extra[0] ? so.extra : NULL);
    if (s == TN_OK && t->after) s = t->after(t->ctx, &r, &si);
    if (s == TN_OK && ((o->save_every > 0 && (step + 1) % o->save_every == 0) || last))
      s = tn_run_checkpoint(&r, step + 1, r.data_pos);
  }
  if (s == TN_OK && t->finish) s = t->finish(t->ctx, &r);
  if (s == TN_OK) s = tn_run_finish(&r);
  tn_run_close(&r);
  zero_free(&r);
  tn_stream_free(&r.stream);
  if (t->teardown) t->teardown(t->ctx);
  if (s != TN_OK && created) rmdir(o->out); /* a run that failed before writing anything leaves no directory */
  return s;
}

void tn_run_describe(tn_run *r, const tn_train_opts *o, const char *label, tn_model *m, tn_tparams *tp, int n_train,
                     bool has_eval, long per_step, int micro) {
  r->label = label;
  r->model_dir = o->model;
  r->m = m;
  r->tp = tp;
  r->n_train = n_train;
  r->per_step = per_step;
  r->micro = micro; /* several ranks: each takes its shard of every global micro-batch */
  r->data_path = o->data;
  r->steps = o->steps;
  r->has_eval = has_eval;
}
