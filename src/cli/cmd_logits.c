/* cmd_logits.c - `tunic logits`: f32 logits of every position of a batch of token
 * sequences, for checking a conversion against another framework (and for tests).
 * --step K feeds the tokens K at a time through the KV cache instead of one call. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "model/model.h"
#include "model/lora.h"
#include "train/lora.h"
#include "train/train.h"

static tn_status write_npy(FILE *f, void *ctx);

typedef struct { int B, T, V; const float *data; } npy_ctx;

static tn_status write_npy(FILE *f, void *ctx) {
  npy_ctx *n = ctx;
  char hdr[128];
  int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d), }", n->B, n->T, n->V);
  int total = 10 + hl + 1;
  int pad = (64 - total % 64) % 64;
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  uint16_t len = (uint16_t)(hl + pad + 1);
  fwrite(&len, 2, 1, f);
  fwrite(hdr, 1, hl, f);
  for (int i = 0; i < pad; i++) fputc(' ', f);
  fputc('\n', f);
  fwrite(n->data, sizeof(float), (size_t)n->B * n->T * n->V, f);
  return TN_OK;
}

typedef struct { int B, V; const int *lens; float **logits; } json_ctx;
static tn_status write_json(FILE *f, void *ctx) {
  json_ctx *j = ctx;
  fputs("{\"logits\": [", f);
  for (int b = 0; b < j->B; b++) {
    fputs(b ? ",\n[" : "\n[", f);
    for (int t = 0; t < j->lens[b]; t++) {
      fputs(t ? ",[" : "[", f);
      const float *r = j->logits[b] + (size_t)t * j->V;
      for (int v = 0; v < j->V; v++) { /* JSON has no NaN or Inf: those logits are null */
        if (v) fputc(',', f);
        if (isfinite(r[v])) fprintf(f, "%.9g", r[v]);
        else fputs("null", f);
      }
      fputc(']', f);
    }
    fputc(']', f);
  }
  fputs("]}\n", f);
  return TN_OK;
}

/* Training-mode forward over all sequences, mean next-token loss, backward. */
static tn_status loss_and_grads(tn_model *m, int B, int **seqs, const int *lens, int total, const char *grads_out,
                                 tn_lora_set *lora, const char *lora_grads_out) {
  const int V = m->cfg.V;
  int Tmax = 0;
  for (int b = 0; b < B; b++) Tmax = lens[b] > Tmax ? lens[b] : Tmax;
  tn_state *st;
  TN_TRY(tn_state_create(&st, m, B, Tmax, total, true));
  int *tok = malloc(sizeof(int) * total), *pos = malloc(sizeof(int) * total), *seq = malloc(sizeof(int) * total);
  int *tgt = malloc(sizeof(int) * total), count = 0, n = 0;
  float *logits = malloc(sizeof(float) * (size_t)total * V), *dl = malloc(sizeof(float) * (size_t)total * V);
  float *lrow = malloc(sizeof(float) * total), *wrow = malloc(sizeof(float) * total);
  if (!tok || !pos || !seq || !tgt || !logits || !dl || !lrow || !wrow) {
    free(tok); free(pos); free(seq); free(tgt); free(logits); free(dl); free(lrow); free(wrow);
    tn_state_free(st);
    return tn_error(TN_ERR_NOMEM, "logits: out of memory for %d rows x %d logits", total, V);
  }
  for (int b = 0; b < B; b++)
    for (int t = 0; t < lens[b]; t++, n++) {
      tok[n] = seqs[b][t]; pos[n] = t; seq[n] = b;
      tgt[n] = t + 1 < lens[b] ? seqs[b][t + 1] : -1;
      count += tgt[n] >= 0;
    }
  tn_status s = tn_forward(m, st, total, tok, pos, seq, logits, NULL, total);
  if (s == TN_OK && count == 0) s = tn_error(TN_ERR_ARG, "--loss needs a sequence of at least 2 tokens");
  if (s == TN_OK) {
    tn_xent_forward(lrow, logits, tgt, total, V);
    double sum = 0;
    for (int i = 0; i < total; i++) { sum += lrow[i]; wrow[i] = 1.0f / count; }
    printf("loss %.9g tokens %d\n", sum / count, count);
    if (grads_out || lora_grads_out) {
      tn_grads g = {0};
      tn_bwd bw;
      if (grads_out) s = tn_grads_create(&g, m);
      if (s == TN_OK && lora_grads_out) { /* LoRA A/B (only those when --grads is absent) */
        s = tn_lora_alloc_grads(lora);
        tn_lora_zero_grads(lora);
      }
      if (s == TN_OK) s = tn_bwd_create(&bw, m, st);
      if (s == TN_OK) {
        tn_xent_backward(dl, logits, tgt, wrow, total, V);
        s = tn_backward(m, st, &bw, grads_out ? &g : NULL, dl, logits, total, tok, pos, seq);
        /* every gradient under its HF name */
        if (s == TN_OK && grads_out) s = tn_weights_save_file(&m->cfg, &g.g, grads_out, TN_ST_F32);
        if (s == TN_OK && lora_grads_out) s = tn_lora_save_grads(lora, lora_grads_out);
        tn_bwd_free(&bw);
      }
      if (grads_out) tn_grads_free(&g);
    }
  }
  free(tok); free(pos); free(seq); free(tgt); free(logits); free(dl); free(lrow); free(wrow);
  tn_state_free(st);
  return s;
}

int tn_cmd_logits(int argc, char **argv) {
  tn_cli_model mo;
  tn_cli_model_default(&mo);
  const char *ids = NULL, *out = NULL;
  int step = 0;
  bool loss = false, force = false;
  const char *grads_out = NULL, *lora_grads_out = NULL;
  const tn_flag own[] = {
    {"ids", 's', &ids, "token ids: 1,2,3;4,5 (sequences separated by ';')"},
    {"out", 's', &out, "output file: .json, or .npy (equal lengths)"},
    {"step", 'i', &step, "feed K tokens at a time through the KV cache (default: all at once)"},
    {"loss", 'b', &loss, "print the mean next-token cross-entropy over all positions"},
    {"force", 'b', &force, "overwrite --out even when it is not a logits file tunic wrote"},
    {"grads", 's', &grads_out, "write d(mean loss)/d(parameter) of every weight to this .safetensors"},
    {"lora-grads", 's', &lora_grads_out, "write d(mean loss)/d(lora_A, lora_B) under PEFT names (needs --adapter)"},
  };
  tn_flag flags[TN_CM_MAX_ROWS + sizeof own / sizeof own[0]];
  int nf = tn_cli_model_rows(flags, &mo, TN_CM_MODEL | TN_CM_ADAPTER | TN_CM_BASE_DTYPE | TN_CM_HEAD_DTYPE);
  tn_cli_opt(flags, nf, "adapter")->help = "PEFT LoRA adapter directory applied on top of the model";
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) flags[nf++] = own[i];
  int r = tn_cli_parse(argc, argv, flags, nf, "--model DIR --ids 1,2,3 --out FILE");
  if (r) return r > 0 ? 0 : 2;
  if (!mo.model || !ids || !out) { fprintf(stderr, "tunic logits: --model, --ids and --out are required\n"); return 2; }
  static const char *const magic[] = {"{\"logits\":", "\x93NUMPY", NULL};
  tn_status os = tn_cli_out_file("out", out, magic, force);
  if (os != TN_OK) return tn_cli_fail("logits", os);
  int **seqs, *lens;
  int B = tn_cli_parse_ids(ids, &seqs, &lens);
  if (B < 0) return tn_cli_fail("logits", TN_ERR_ARG);
  bool npy = strlen(out) > 4 && !strcmp(out + strlen(out) - 4, ".npy");
  int Tmax = 0, total = 0, code = 0;
  for (int b = 0; b < B; b++) { Tmax = lens[b] > Tmax ? lens[b] : Tmax; total += lens[b]; }
  if (npy)
    for (int b = 0; b < B; b++)
      if (lens[b] != Tmax) { fprintf(stderr, "tunic logits: .npy output needs sequences of equal length\n"); code = 2; }
  if (lora_grads_out && !mo.adapter) { fprintf(stderr, "tunic logits: --lora-grads needs --adapter\n"); code = 2; }
  tn_cli_loaded L = {0};
  tn_status s = code ? TN_OK : tn_cli_model_load("logits", &mo, 0, &L);
  if (code || s != TN_OK) { /* error paths free what they hold (clean under LeakSanitizer) */
    for (int b = 0; b < B; b++) free(seqs[b]);
    free(seqs);
    free(lens);
    return code ? code : tn_cli_fail("logits", s);
  }
  tn_model *m = L.model;
  tn_lora_set *lora = NULL; /* the active adapter (--lora-grads) */
  for (int i = 0; i < L.n_loras; i++)
    if (tn_lora_is_active(L.loras[i])) lora = L.loras[i];
  const int V = m->cfg.V;
  if (loss || grads_out || lora_grads_out) {
    s = loss_and_grads(m, B, seqs, lens, total, grads_out, lora, lora_grads_out);
    if (s != TN_OK) return tn_cli_fail("logits", s);
  }
  int K = step > 0 ? step : Tmax;
  tn_state *st;
  s = tn_state_create(&st, m, B, Tmax, B * K, false);
  if (s != TN_OK) return tn_cli_fail("logits", s);
  float **lg = calloc(B, sizeof(float *));
  for (int b = 0; lg && b < B; b++)
    if (!(lg[b] = malloc(sizeof(float) * (size_t)lens[b] * V))) s = TN_ERR_NOMEM;
  int *tok = malloc(sizeof(int) * B * K), *pos = malloc(sizeof(int) * B * K), *seq = malloc(sizeof(int) * B * K);
  float *chunk = malloc(sizeof(float) * (size_t)B * K * V);
  if (!lg || s != TN_OK || !tok || !pos || !seq || !chunk)
    s = tn_error(TN_ERR_NOMEM, "logits: out of memory for %d sequences of up to %d tokens x %d logits", B, Tmax, V);
  for (int t0 = 0; t0 < Tmax && s == TN_OK; t0 += K) {
    int n = 0;
    for (int b = 0; b < B; b++)
      for (int t = t0; t < t0 + K && t < lens[b]; t++, n++) { tok[n] = seqs[b][t]; pos[n] = t; seq[n] = b; }
    s = tn_forward(m, st, n, tok, pos, seq, chunk, NULL, n);
    for (int i = 0; i < n && s == TN_OK; i++) memcpy(lg[seq[i]] + (size_t)pos[i] * V, chunk + (size_t)i * V, sizeof(float) * V);
  }
  if (s == TN_OK) {
    if (npy) {
      float *all = malloc(sizeof(float) * (size_t)B * Tmax * V);
      if (!all) s = tn_error(TN_ERR_NOMEM, "logits: out of memory for the (%d, %d, %d) array", B, Tmax, V);
      for (int b = 0; all && b < B; b++) memcpy(all + (size_t)b * Tmax * V, lg[b], sizeof(float) * (size_t)Tmax * V);
      npy_ctx c = {B, Tmax, V, all};
      if (all) s = tn_write_atomic_cb(out, write_npy, &c);
      free(all);
    } else {
      json_ctx c = {B, V, lens, lg};
      s = tn_write_atomic_cb(out, write_json, &c);
    }
  }
  free(tok); free(pos); free(seq); free(chunk);
  for (int b = 0; b < B; b++) { if (lg) free(lg[b]); free(seqs[b]); }
  free(lg); free(seqs); free(lens);
  tn_state_free(st);
  tn_cli_loaded_free(&L);
  return s == TN_OK ? 0 : tn_cli_fail("logits", s);
}
