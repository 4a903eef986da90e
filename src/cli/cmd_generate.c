/* cmd_generate.c - `tunic generate`: sample continuations of prompts given as
 * token ids (--ids) and stream them; --json prints one result line per sample. */
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "generate/generate.h"
#include "train/lora.h"

typedef struct { bool json; } gen_ctx;

static void on_token(void *ctx, int prompt, int sample, int token) {
  gen_ctx *g = ctx;
  if (g->json) return;
  printf("[%d.%d] %d\n", prompt, sample, token);
  fflush(stdout);
}

static int parse_id_list(const char *s, int **out) {
  int **seqs, *lens;
  int k = tn_cli_parse_ids(s, &seqs, &lens);
  if (k != 1) return -1;
  *out = seqs[0];
  int n = lens[0];
  free(seqs);
  free(lens);
  return n;
}

int tn_cmd_generate(int argc, char **argv) {
  const char *model_dir = NULL, *ids = NULL, *stop = NULL, *adapter = NULL;
  bool json = false, one = false;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  tn_flag flags[] = {
    {"model", 's', &model_dir, "model directory (HF layout)"},
    {"adapter", 's', &adapter, "PEFT LoRA adapter directory applied on top of the model"},
    {"ids", 's', &ids, "prompt token ids: 1,2,3;4,5 (one prompt per ';')"},
    {"max-new-tokens", 'i', &o.max_new_tokens, "tokens to generate per sample (default 64)"},
    {"temperature", 'f', &o.temperature, "0 = greedy (default)"},
    {"top-k", 'i', &o.top_k, "keep the k most likely tokens (0 = off)"},
    {"top-p", 'f', &o.top_p, "nucleus sampling mass (1 = off)"},
    {"min-p", 'f', &o.min_p, "drop tokens below min_p * max prob (0 = off)"},
    {"repetition-penalty", 'f', &o.repetition_penalty, "HF repetition penalty (1 = off)"},
    {"seed", 'u', &o.seed, "sampling seed (default 0)"},
    {"n", 'i', &o.n, "samples per prompt (default 1)"},
    {"stop-ids", 's', &stop, "stop token ids, comma separated (default: the model's eos ids)"},
    {"json", 'b', &json, "print one JSON line per sample (ids, logprobs, finish_reason)"},
    {"one-at-a-time", 'b', &one, "generate each prompt alone (for testing)"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--model DIR --ids 1,2,3 [options]");
  if (r) return r > 0 ? 0 : 2;
  if (!model_dir || !ids) { fprintf(stderr, "tunic generate: --model and --ids are required\n"); return 2; }
  if (o.n <= 0 || o.max_new_tokens <= 0 || o.top_k < 0 || !(o.top_p > 0 && o.top_p <= 1) || o.min_p < 0 ||
      !(o.repetition_penalty > 0) || o.temperature < 0) {
    fprintf(stderr, "tunic generate: invalid sampling option (need n, max-new-tokens > 0, 0 < top-p <= 1, "
                    "repetition-penalty > 0, temperature >= 0)\n");
    return 2;
  }
  int **seqs, *lens;
  int B = tn_cli_parse_ids(ids, &seqs, &lens);
  if (B < 0) return tn_cli_fail("generate", TN_ERR_ARG);
  int *stop_ids = NULL;
  if (stop) {
    o.n_stop_ids = parse_id_list(stop, &stop_ids);
    if (o.n_stop_ids < 0) return tn_cli_fail("generate", TN_ERR_ARG);
    o.stop_ids = stop_ids;
  }
  tn_model *m;
  tn_status s = tn_model_load(&m, model_dir);
  if (s != TN_OK) return tn_cli_fail("generate", s);
  tn_lora_set *lora = NULL;
  if (adapter) {
    s = tn_lora_load(m, adapter, NULL, &lora);
    if (s != TN_OK) return tn_cli_fail("generate", s);
    tn_lora_activate(lora);
  }
  gen_ctx g = {json};
  o.on_token = on_token;
  o.ctx = &g;
  tn_gen_result *res = calloc((size_t)B * o.n, sizeof *res);
  if (one) {
    for (int b = 0; b < B && s == TN_OK; b++) {
      const int *p = seqs[b];
      tn_gen_opts ob = o;
      ob.first_prompt = b; /* same RNG streams as in the batch */
      s = tn_generate(m, &p, &lens[b], 1, &ob, res + (size_t)b * o.n);
    }
  } else {
    s = tn_generate(m, (const int *const *)seqs, lens, B, &o, res);
  }
  if (s != TN_OK) return tn_cli_fail("generate", s);
  static const char *fin[] = {"length", "stop", "stop"};
  if (json) {
    for (int b = 0; b < B; b++)
      for (int j = 0; j < o.n; j++) {
        tn_gen_result *q = &res[(size_t)b * o.n + j];
        printf("{\"prompt\": %d, \"sample\": %d, \"ids\": [", b, j);
        for (int k = 0; k < q->n; k++) printf(k ? ", %d" : "%d", q->ids[k]);
        printf("], \"logprobs\": [");
        for (int k = 0; k < q->n; k++) printf(k ? ", %.7g" : "%.7g", q->logprobs[k]);
        printf("], \"finish_reason\": \"%s\"}\n", fin[q->finish]);
      }
  }
  tn_gen_results_free(res, B * o.n);
  free(res);
  for (int b = 0; b < B; b++) free(seqs[b]);
  free(seqs);
  free(lens);
  free(stop_ids);
  tn_lora_free(lora);
  tn_model_free(m);
  return 0;
}
