/* test_recompute.c - activation recomputation (tn_state_opts.recompute, `tunic sft
 * --recompute`) and the chunked LM head + cross-entropy (tn_head_xent):
 * - for every family (llama, qwen2, qwen3, gemma3 with soft-caps, sliding window and
 *   sandwich norms), full fine-tuning and LoRA with dropout, two packed sequences of
 *   different lengths and masked targets: the loss and every gradient with recompute
 *   are BIT-identical to those without (the recomputed activations are the same code
 *   on the same input), and the state keeps far fewer floats;
 * - the chunked head (chunks of 5 rows, so chunk edges fall inside sequences and a
 *   chunk holds only masked rows) gives the loss rows and gradients of the full-logits
 *   path (tn_forward logits + tn_xent_forward_backward + tn_backward) to 1e-6 relative
 *   to the largest gradient (only the summation order of the head's weight gradient
 *   over chunks differs);
 * - `tunic sft --recompute` trains to the same final weights as without (bitwise). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "model/model.h"
#include "train/lora.h"
#include "train/train.h"

static char g_tmp[256];

enum { NSEQ = 2 };
static const int seq_len[NSEQ] = {21, 9}; /* 21 >= RUN_MIN (16): the chunked attention path too */

typedef struct {
  float *loss;    // (N)
  float *grad;    // flat trainable gradients
  size_t ngrad;
  size_t state_floats;
} result;

static tn_model *make_model(const char *arch, const char *override) {
  char dir[512];
  snprintf(dir, sizeof dir, "%s/%s", g_tmp, arch);
  tn_init_opts o = {.arch = arch, .size = "tiny", .dtype = "f32", .vocab = 96, .shards = 1, .seed = 7,
                    .override_json = override};
  assert_int_equal(tn_model_init_dir(dir, &o), TN_OK);
  tn_model *m;
  if (tn_model_load(&m, dir) != TN_OK) fail_msg("%s", tn_last_error());
  return m;
}

/* one training forward + backward: recompute on/off, head chunked (R rows) or full logits */
static result run(tn_model *m, bool lora, bool recompute, bool chunked) {
  const int V = m->cfg.V;
  int N = 0;
  for (int s = 0; s < NSEQ; s++) N += seq_len[s];
  int *tok = malloc(sizeof(int) * N), *pos = malloc(sizeof(int) * N), *seq = malloc(sizeof(int) * N);
  int *tgt = malloc(sizeof(int) * N);
  float *w = malloc(sizeof(float) * N);
  int i = 0, ntgt = 0;
  for (int s = 0; s < NSEQ; s++)
    for (int t = 0; t < seq_len[s]; t++, i++) {
      tok[i] = 3 + (s * 37 + t * 11) % (V - 3);
      pos[i] = t;
      seq[i] = s;
      /* masked: the prompt part (t < 4) and the last row of each sequence */
      tgt[i] = t >= 4 && t + 1 < seq_len[s] ? 3 + (s * 37 + (t + 1) * 11) % (V - 3) : -1;
      ntgt += tgt[i] >= 0;
    }
  for (int k = 0; k < N; k++) w[k] = 1.0f / ntgt;
  tn_tparams_opts po;
  tn_tparams_opts_default(&po);
  po.lora_rank = lora ? 4 : 0;
  po.lora_alpha = 8;
  po.lora_dropout = lora ? 0.25f : 0.0f;
  po.seed = 3;
  tn_tparams tp;
  assert_int_equal(tn_tparams_init(&tp, m, &po), TN_OK);
  if (lora) { /* B != 0 so every path of the adapter matters */
    for (size_t k = 0; k < tp.lora->n_floats; k++) tp.lora->flat[k] += 0.01f * (float)((int)((k * 7919) % 13) - 6);
    tn_lora_train_mode(tp.lora, true, 5);
  }
  tn_state *st;
  tn_state_opts so = {.recompute = recompute};
  assert_int_equal(tn_state_create_opts(&st, m, NSEQ, 24, N, true, &so), TN_OK);
  tn_bwd bw;
  assert_int_equal(tn_bwd_create(&bw, m, st), TN_OK);
  result r = {.loss = calloc(N, sizeof(float)), .state_floats = st->buf_floats};
  tn_tparams_zero_grad(&tp);
  if (chunked) {
    tn_settings_set_head_chunk_rows(5); /* TN_HEAD_CHUNK_ROWS=5 */
    tn_head h;
    assert_int_equal(tn_head_create(&h, m, st), TN_OK);
    tn_settings_set_head_chunk_rows(0);
    assert_int_equal(h.R, 5);
    assert_int_equal(tn_forward(m, st, N, tok, pos, seq, NULL, NULL, 0), TN_OK);
    assert_int_equal(tn_head_xent(m, st, &h, &bw, tn_tparams_grads(&tp), tgt, w, N, r.loss), TN_OK);
    assert_int_equal(tn_backward_body(m, st, &bw, tn_tparams_grads(&tp), N, tok, pos, seq), TN_OK);
    tn_head_free(&h);
  } else {
    float *lg = malloc(sizeof(float) * (size_t)N * V), *dl = malloc(sizeof(float) * (size_t)N * V);
    assert_int_equal(tn_forward(m, st, N, tok, pos, seq, lg, NULL, N), TN_OK);
    tn_xent_forward_backward(r.loss, dl, lg, tgt, w, N, V);
    assert_int_equal(tn_backward(m, st, &bw, tn_tparams_grads(&tp), dl, lg, N, tok, pos, seq), TN_OK);
    free(lg);
    free(dl);
  }
  r.ngrad = tp.tr.ngrad;
  r.grad = malloc(sizeof(float) * r.ngrad);
  memcpy(r.grad, tp.tr.grad, sizeof(float) * r.ngrad);
  tn_bwd_free(&bw);
  tn_state_free(st);
  tn_tparams_free(&tp);
  free(tok); free(pos); free(seq); free(tgt); free(w);
  return r;
}

static void result_free(result *r) {
  free(r->loss);
  free(r->grad);
}

static void check_family(const char *arch, const char *override) {
  tn_model *m = make_model(arch, override);
  const int N = seq_len[0] + seq_len[1];
  for (int lora = 0; lora < 2; lora++) {
    result full = run(m, lora, false, false), ch = run(m, lora, false, true), rc = run(m, lora, true, true);
    assert_int_equal(full.ngrad, rc.ngrad);
    /* recompute: bitwise the same as keeping the activations */
    assert_memory_equal(ch.loss, rc.loss, sizeof(float) * N);
    assert_memory_equal(ch.grad, rc.grad, sizeof(float) * rc.ngrad);
    /* at least the (N, F) gate, up and act(gate)*up of every layer but one are gone */
    if ((size_t)(ch.state_floats - rc.state_floats) < (size_t)(m->cfg.L - 1) * 3 * N * m->cfg.F)
      fail_msg("%s: state %zu floats with recompute, %zu without", arch, rc.state_floats, ch.state_floats);
    /* chunked head vs full logits */
    double gmax = 0, dmax = 0, lsum = 0;
    for (int i = 0; i < N; i++) {
      if (!(full.loss[i] >= 0)) fail_msg("%s lora=%d: loss row %d is %g", arch, lora, i, full.loss[i]);
      assert_float_equal(full.loss[i], ch.loss[i], 1e-6 * (1 + fabs(full.loss[i])));
      lsum += full.loss[i];
    }
    assert_true(lsum > 0);
    for (size_t k = 0; k < full.ngrad; k++) {
      gmax = fmax(gmax, fabs(full.grad[k]));
      dmax = fmax(dmax, fabs(full.grad[k] - ch.grad[k]));
    }
    assert_true(gmax > 0);
    if (dmax > 1e-6 * gmax) fail_msg("%s lora=%d: chunked head grads differ by %g (max |g| %g)", arch, lora, dmax, gmax);
    result_free(&full);
    result_free(&ch);
    result_free(&rc);
  }
  tn_model_free(m);
}

static void test_llama(void **s) { (void)s; check_family("llama", NULL); }
static void test_qwen2(void **s) { (void)s; check_family("qwen2", NULL); }
static void test_qwen3(void **s) { (void)s; check_family("qwen3", NULL); }
static void test_gemma3(void **s) {
  (void)s;
  check_family("gemma3_text", "{\"final_logit_softcapping\": 3.0, \"attn_logit_softcapping\": 5.0}");
}

/* tunic sft --recompute: same final weights, bit for bit */
static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc(*n ? *n : 1);
  if (fread(b, 1, *n, f) != *n) *n = 0;
  fclose(f);
  return b;
}

static void test_sft_cli(void **s) {
  (void)s;
  const char *tunic = getenv("TUNIC");
  if (!tunic) skip();
  char cmd[4096], data[512];
  snprintf(data, sizeof data, "%s/data.jsonl", g_tmp);
  FILE *f = fopen(data, "w");
  for (int i = 0; i < 12; i++) fprintf(f, "{\"prompt\": \"q%d: what is %d+%d?\", \"completion\": \" %d\"}\n", i, i, i, 2 * i);
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s init --arch qwen3 --size tiny --tokenizer bytes --seed 2 --out %s/sm > /dev/null", tunic, g_tmp);
  assert_int_equal(system(cmd), 0);
  for (int r = 0; r < 2; r++) {
    snprintf(cmd, sizeof cmd,
             "%s sft --model %s/sm --tokenizer %s/sm --data %s --out %s/run%d --steps 3 --batch-size 4 --lr 1e-3 "
             "--eval-split 0 %s > %s/sft%d.log 2>&1",
             tunic, g_tmp, g_tmp, data, g_tmp, r, r ? "--recompute" : "", g_tmp, r);
    if (system(cmd) != 0) {
      snprintf(cmd, sizeof cmd, "cat %s/sft%d.log", g_tmp, r);
      (void)!system(cmd);
      fail_msg("tunic sft failed");
    }
  }
  char p0[512], p1[512];
  snprintf(p0, sizeof p0, "%s/run0/model/model.safetensors", g_tmp);
  snprintf(p1, sizeof p1, "%s/run1/model/model.safetensors", g_tmp);
  size_t n0 = 0, n1 = 0;
  char *a = slurp(p0, &n0), *b = slurp(p1, &n1);
  assert_non_null(a);
  assert_non_null(b);
  assert_true(n0 > 1000);
  assert_int_equal(n0, n1);
  assert_memory_equal(a, b, n0);
  free(a);
  free(b);
}

int main(void) {
  snprintf(g_tmp, sizeof g_tmp, "/tmp/tn_recompute_%d", (int)getpid());
  tn_mkdirs(g_tmp);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_llama), cmocka_unit_test(test_qwen2), cmocka_unit_test(test_qwen3),
    cmocka_unit_test(test_gemma3), cmocka_unit_test(test_sft_cli),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
  (void)!system(cmd);
  return rc;
}
