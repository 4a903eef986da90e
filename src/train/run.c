/* run.c - the run directory shared by the trainers (see run.h): example stream,
 * resume, manifest/metrics/progress, the optimizer update with the NaN stop,
 * checkpoints and the final weights. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train/run.h"

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

tn_status tn_run_resume(tn_run *r, long *step0, long *data_pos) {
  char *ck, *sj;
  *step0 = 0;
  *data_pos = 0;
  r->resumed = true;
  if (tn_ckpt_latest(r->out, &ck, step0) != TN_OK) { /* killed before its first checkpoint */
    tn_error_clear();
    printf("no checkpoint in %s/checkpoints: starting from step 0\n", r->out);
    *step0 = 0;
    return tn_metrics_truncate_after(r->out, 0);
  }
  tn_status s = tn_ckpt_load(ck, r->tr ? r->weights_file : tn_tparams_weights_file(r->tp), r->tr ? r->tr : &r->tp->tr,
                             &r->tp->opt, &sj);
  if (s == TN_OK) {
    cJSON *j = cJSON_Parse(sj);
    cJSON *dp = cJSON_GetObjectItem(j, "data_pos");
    if (!cJSON_IsNumber(dp)) s = tn_error(TN_ERR_FORMAT, "%s/trainer_state.json: missing data_pos", ck);
    else *data_pos = (long)dp->valuedouble;
    cJSON_Delete(j);
    free(sj);
    if (s == TN_OK) printf("resumed from %s (step %ld)\n", ck, *step0);
  }
  free(ck);
  if (s == TN_OK) s = tn_metrics_truncate_after(r->out, *step0);
  r->step0 = *step0;
  return s;
}

tn_status tn_run_start(tn_run *r, const tn_manifest_info *mi) {
  if (!r->resumed) TN_TRY(tn_run_check_fresh(r->out));
  TN_TRY(tn_manifest_write(r->out, mi, NULL));
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

tn_status tn_run_update(tn_run *r, long step, float max_grad_norm, double *gnorm, float *lr) {
  const tn_trainable *tr = r->tr ? r->tr : &r->tp->tr;
  tn_status s = tn_params_grad_norm(tr->rows, tr->n, gnorm);
  if (s != TN_OK) return tn_error_prefix(s, "step %ld: stopping (the last checkpoint is kept)", step + 1);
  *lr = tn_lr_at(&r->tp->sched, step);
  tn_adamw_step(&r->tp->opt, *lr, tn_clip_coef(*gnorm, max_grad_norm));
  return TN_OK;
}

static tn_status ckpt_extra(const char *dir, void *ctx) {
  tn_run *r = ctx;
  return tn_tparams_save(r->tp, r->m, r->model_dir, dir, TN_ST_F32);
}

tn_status tn_run_checkpoint(tn_run *r, long step, long data_pos) {
  const long f0 = tn_alloc_failures();
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "step", (double)step);
  cJSON_AddNumberToObject(j, "data_pos", (double)data_pos);
  cJSON_AddNumberToObject(j, "seed", (double)r->seed);
  cJSON_AddNumberToObject(j, "train_examples", r->n_train);
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
