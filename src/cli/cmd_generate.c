/* cmd_generate.c - `tunic generate`: sample continuations of a text prompt
 * (--prompt, optionally through the chat template with --chat) or of token ids
 * (--ids), streaming text as it is produced; --json prints one result line per
 * sample. Stop strings (--stop) end a sample when its text contains them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "generate/generate.h"
#include "train/lora.h"
#include "tokenizer/tokenizer.h"
#include "tunic/tokenizer.h"

typedef struct {
  bool json, stream;           /* stream: one prompt, one sample, text mode */
  tn_tokenizer *tok;
  tn_detok_stream **ds;        /* (slots) */
  char **text;                 /* (slots) accumulated text */
  size_t *len;
  int n;
  const char *stop;
} gen_ctx;

static void on_token(void *ctx, int prompt, int sample, int token) {
  gen_ctx *g = ctx;
  if (!g->tok) {
    if (!g->json) { printf("[%d.%d] %d\n", prompt, sample, token); fflush(stdout); }
    return;
  }
  int k = prompt * g->n + sample;
  const char *t;
  size_t l;
  if (tn_detok_stream_push(g->ds[k], token, &t, &l) != TN_OK || l == 0) return;
  g->text[k] = realloc(g->text[k], g->len[k] + l + 1);
  memcpy(g->text[k] + g->len[k], t, l);
  g->len[k] += l;
  g->text[k][g->len[k]] = 0;
  if (g->stream && !g->stop) { fwrite(t, 1, l, stdout); fflush(stdout); }
}

static bool stop_fn(void *ctx, int prompt, int sample, const int *ids, int n) {
  gen_ctx *g = ctx;
  (void)ids; (void)n;
  int k = prompt * g->n + sample;
  return g->text[k] && strstr(g->text[k], g->stop) != NULL;
}

/* S as a JSON string: invalid UTF-8 (a sample cut inside a character) replaced by U+FFFD */
static void json_str(const char *text) {
  char *valid = tn_utf8_valid_dup(text ? text : ""), *s = valid;
  putchar('"');
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c == '\n') fputs("\\n", stdout);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
  free(valid);
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
  const char *base_dtype = "auto", *head_dtype = "auto";
  const char *model_dir = NULL, *ids = NULL, *stop = NULL, *adapter = NULL, *adapter_name = NULL, *prompt = NULL,
             *system = NULL;
  const char *stop_str = NULL, *chat_format = "auto";
  bool json = false, one = false, chat = false;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  tn_flag flags[] = {
    {"model", 's', &model_dir, "model directory (HF layout)"},
    {"adapter", 's', &adapter, "PEFT LoRA adapter: DIR, or several by name: NAME=DIR,NAME=DIR"},
    {"adapter-name", 's', &adapter_name, "which named adapter is active (default: the first)"},
    {"base-dtype", 's', &base_dtype, "storage of the frozen projections: f32 | bf16 | nf4 | auto (default: f32, nf4 for bitsandbytes 4-bit checkpoints)"},
    {"head-dtype", 's', &head_dtype, "embedding and LM head: f32 | bf16 | auto (default: f32, or under a bf16/nf4 base bf16 except a bitsandbytes checkpoint follows its bnb_4bit_compute_dtype; bf16 = faster)"},
    {"prompt", 's', &prompt, "prompt text (tokenized with the model's tokenizer)"},
    {"chat", 'b', &chat, "render --prompt as a user turn of the chat template, with the generation prompt"},
    {"system", 's', &system, "system prompt (with --chat)"},
    {"chat-format", 's', &chat_format, "auto | gemma | chatml | llama3"},
    {"stop", 's', &stop_str, "stop when the generated text contains this string"},
    {"ids", 's', &ids, "prompt token ids instead of text: 1,2,3;4,5 (one prompt per ';')"},
    {"max-new-tokens", 'i', &o.max_new_tokens, "tokens to generate per sample"},
    {"temperature", 'f', &o.temperature, "0 = greedy (default)"},
    {"top-k", 'i', &o.top_k, "keep the k most likely tokens (0 = off)"},
    {"top-p", 'f', &o.top_p, "nucleus sampling mass (1 = off)"},
    {"min-p", 'f', &o.min_p, "drop tokens below min_p * max prob (0 = off)"},
    {"repetition-penalty", 'f', &o.repetition_penalty, "HF repetition penalty (1 = off)"},
    {"seed", 'u', &o.seed, "sampling seed"},
    {"n", 'i', &o.n, "samples per prompt"},
    {"stop-ids", 's', &stop, "stop token ids, comma separated (default: the model's eos ids)"},
    {"json", 'b', &json, "print one JSON line per sample (ids, logprobs, finish_reason)"},
    {"one-at-a-time", 'b', &one, "generate each prompt alone (for testing)"},
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--model DIR --ids 1,2,3 [options]");
  if (r) return r > 0 ? 0 : 2;
  if (!model_dir || (!ids == !prompt)) {
    fprintf(stderr, "tunic generate: --model and one of --prompt or --ids are required\n");
    return 2;
  }
  int **seqs, *lens, B;
  tn_tokenizer *tok = NULL;
  tn_status s = TN_OK;
  if (prompt || stop_str || !json) {
    s = tn_tokenizer_load(model_dir, &tok);
    if (s != TN_OK && prompt) return tn_cli_fail("generate", s);
    if (s != TN_OK) tok = NULL; /* ids only: print ids */
  }
  if (prompt) {
    tn_encoding enc = {0};
    if (chat) {
      tn_chat_msg msgs[2];
      int nm = 0;
      if (system) msgs[nm++] = (tn_chat_msg){"system", system, NULL};
      msgs[nm++] = (tn_chat_msg){"user", prompt, NULL};
      tn_chat_opts co = {.add_generation_prompt = true, .enable_thinking = -1};
      s = tn_chat_format_parse(chat_format, &co.format);
      if (s == TN_OK) s = tn_chat_encode(tok, msgs, nm, &co, &enc);
    } else {
      s = tn_tokenizer_encode(tok, prompt, strlen(prompt), true, &enc);
    }
    if (s != TN_OK) return tn_cli_fail("generate", s);
    B = 1;
    seqs = malloc(sizeof(int *));
    lens = malloc(sizeof(int));
    seqs[0] = malloc(sizeof(int) * (enc.n ? enc.n : 1));
    for (size_t i = 0; i < enc.n; i++) seqs[0][i] = enc.ids[i];
    lens[0] = (int)enc.n;
    tn_encoding_free(&enc);
  } else {
    B = tn_cli_parse_ids(ids, &seqs, &lens);
    if (B < 0) return tn_cli_fail("generate", TN_ERR_ARG);
  }
  int *stop_ids = NULL;
  if (stop) {
    o.n_stop_ids = parse_id_list(stop, &stop_ids);
    if (o.n_stop_ids < 0) return tn_cli_fail("generate", TN_ERR_ARG);
    o.stop_ids = stop_ids;
  }
  tn_model *m;
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  s = tn_parse_base_dtype(base_dtype, &lo.base_dtype);
  if (s == TN_OK) s = tn_parse_head_dtype(head_dtype, &lo.head_dtype);
  if (s != TN_OK) return tn_cli_fail("generate", s);
  s = tn_model_load_opts(&m, model_dir, &lo);
  if (s != TN_OK) return tn_cli_fail("generate", s);
  tn_lora_set **loras = NULL;
  int n_loras = 0;
  if (adapter) {
    s = tn_lora_load_spec(m, adapter, adapter_name, &loras, &n_loras);
    if (s != TN_OK) return tn_cli_fail("generate", s);
  } else if (adapter_name) {
    fprintf(stderr, "tunic generate: --adapter-name needs --adapter\n");
    return 2;
  }
  const int slots = B * o.n;
  gen_ctx g = {.json = json, .stream = !json && prompt && slots == 1, .tok = tok, .n = o.n, .stop = stop_str};
  if (tok) {
    g.ds = calloc(slots, sizeof *g.ds);
    g.text = calloc(slots, sizeof *g.text);
    g.len = calloc(slots, sizeof *g.len);
    for (int k = 0; k < slots && s == TN_OK; k++) s = tn_detok_stream_new(tok, true, &g.ds[k]);
    if (s != TN_OK) return tn_cli_fail("generate", s);
  }
  if (stop_str && !tok) { fprintf(stderr, "tunic generate: --stop needs the model's tokenizer\n"); return 2; }
  if (stop_str) o.stop_fn = stop_fn;
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
  /* a failed generation (e.g. NaN logits) prints nothing and frees what it holds */
  const int code = s == TN_OK ? 0 : tn_cli_fail("generate", s);
  static const char *fin[] = {"length", "stop", "stop"};
  if (s == TN_OK && tok && stop_str) /* cut each text at its stop string */
    for (int k = 0; k < slots; k++) {
      char *c = g.text[k] ? strstr(g.text[k], stop_str) : NULL;
      if (c) *c = 0;
    }
  if (s == TN_OK && g.stream) {
    if (stop_str && g.text[0]) fputs(g.text[0], stdout);
    putchar('\n');
  } else if (s == TN_OK && !json && tok) {
    for (int k = 0; k < slots; k++) printf("[prompt %d, sample %d]\n%s\n", k / o.n, k % o.n, g.text[k] ? g.text[k] : "");
  }
  if (json && s == TN_OK) {
    for (int b = 0; b < B; b++)
      for (int j = 0; j < o.n; j++) {
        tn_gen_result *q = &res[(size_t)b * o.n + j];
        printf("{\"prompt\": %d, \"sample\": %d, \"ids\": [", b, j);
        for (int k = 0; k < q->n; k++) printf(k ? ", %d" : "%d", q->ids[k]);
        printf("], \"logprobs\": [");
        for (int k = 0; k < q->n; k++) { /* JSON has no NaN: a non-finite log-prob is null */
          if (k) fputs(", ", stdout);
          if (isfinite(q->logprobs[k])) printf("%.7g", q->logprobs[k]);
          else fputs("null", stdout);
        }
        printf("], \"finish_reason\": \"%s\"", fin[q->finish]);
        if (tok) { printf(", \"text\": "); json_str(g.text[b * o.n + j]); }
        printf("}\n");
      }
  }
  tn_gen_results_free(res, B * o.n);
  free(res);
  for (int b = 0; b < B; b++) free(seqs[b]);
  free(seqs);
  free(lens);
  free(stop_ids);
  if (tok) {
    for (int k = 0; k < slots; k++) { tn_detok_stream_free(g.ds[k]); free(g.text[k]); }
    free(g.ds); free(g.text); free(g.len);
    tn_tokenizer_free(tok);
  }
  tn_lora_sets_free(loras, n_loras);
  tn_model_free(m);
  return code;
}
