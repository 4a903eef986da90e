/* cmd_generate.c - `tunic generate`: sample continuations of a text prompt
 * (--prompt, optionally through the chat template with --chat) or of token ids
 * (--ids), streaming text as it is produced; --json prints one result line per
 * sample. Stop strings (--stop) end a sample when its text contains them. The text
 * side (decoding as it goes, stop strings) is the library's tn_generate_text_ids. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"
#include "cli/cli.h"
#include "agent/agentic.h"
#include "generate/generate.h"
#include "tokenizer/tokenizer.h"
#include "model/lora.h"
#include "tunic/tokenizer.h"

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


/* without a tokenizer (--ids, no --json): each token as it comes */
static void print_token(void *ctx, int prompt, int sample, int token) {
  (void)ctx;
  printf("[%d.%d] %d\n", prompt, sample, token);
  fflush(stdout);
}

/* one prompt, one sample, text mode: the text as it comes */
static void print_text(void *user, int prompt, int sample, const char *piece, size_t len) {
  (void)user, (void)prompt, (void)sample;
  fwrite(piece, 1, len, stdout);
  fflush(stdout);
}

static void print_json(const tn_text_result *res, int B, int n, bool with_text) {
  static const char *fin[] = {"length", "stop", "stop"};
  for (int b = 0; b < B; b++)
    for (int j = 0; j < n; j++) {
      const tn_text_result *q = &res[(size_t)b * n + j];
      printf("{\"prompt\": %d, \"sample\": %d, \"ids\": [", b, j);
      for (int k = 0; k < q->n; k++) printf(k ? ", %d" : "%d", q->ids[k]);
      printf("], \"logprobs\": [");
      for (int k = 0; k < q->n; k++) { /* JSON has no NaN: a non-finite log-prob is null */
        if (k) fputs(", ", stdout);
        if (isfinite(q->logprobs[k])) printf("%.7g", q->logprobs[k]);
        else fputs("null", stdout);
      }
      printf("], \"finish_reason\": \"%s\"", fin[q->finish]);
      if (with_text) { printf(", \"text\": "); json_str(q->text); }
      printf("}\n");
    }
}

/* generate B prompts (all at once, or each alone with the RNG streams of the batch) into res
 * (B * n): text results with the tokenizer, token results without */
static tn_status run(const tn_model *m, const tn_tokenizer *tok, int **seqs, int *lens, int B, const tn_gen_opts *o,
                     const tn_text_opts *t, bool one, tn_text_result *res) {
  tn_status s = TN_OK;
  for (int b = 0; b < (one ? B : 1) && s == TN_OK; b++) {
    tn_gen_opts ob = *o;
    ob.first_prompt = one ? b : 0;
    const int nb = one ? 1 : B;
    const int *const *p = (const int *const *)(seqs + (one ? b : 0));
    tn_text_result *r = res + (size_t)(one ? b : 0) * o->n;
    if (tok) {
      s = tn_generate_text_ids(m, tok, p, lens + (one ? b : 0), nb, &ob, t, r);
      continue;
    }
    tn_gen_result *g = calloc((size_t)nb * o->n, sizeof *g);
    if (!g) return tn_error(TN_ERR_NOMEM, "out of memory");
    s = tn_generate(m, p, lens + (one ? b : 0), nb, &ob, g);
    for (int k = 0; s == TN_OK && k < nb * o->n; k++)
      r[k] = (tn_text_result){.ids = g[k].ids, .logprobs = g[k].logprobs, .n = g[k].n, .finish = g[k].finish};
    if (s != TN_OK) tn_gen_results_free(g, nb * o->n);
    free(g);
  }
  return s;
}

int tn_cmd_generate(int argc, char **argv) {
  const char *base_dtype = "auto", *head_dtype = "auto";
  const char *model_dir = NULL, *ids = NULL, *stop = NULL, *adapter = NULL, *adapter_name = NULL, *prompt = NULL,
             *system = NULL;
  const char *stop_str = NULL, *chat_format = "auto", *chat_template = NULL;
  bool json = false, one = false, chat = false;
  tn_gen_opts o;
  tn_gen_opts_default(&o);
  tn_agent_opts agent; /* --tools/--env/... with --chat: an episode (src/agent) */
  tn_agent_opts_default(&agent);
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
    {"chat-template", 's', &chat_template, "a .jinja chat template used instead of the model's (with --chat)"},
    {"stop", 's', &stop_str, "stop when the generated text contains this string"},
    {"ids", 's', &ids, "prompt token ids instead of text: 1,2,3;4,5 (one prompt per ';')"},
    {"max-new-tokens", 'i', &o.max_new_tokens, "tokens to generate per sample"},
    {"temperature", 'f', &o.temperature, "0 = greedy (default)"},
    {"top-k", 'i', &o.top_k, "keep the k most likely tokens (0 = off)"},
    {"top-p", 'f', &o.top_p, "nucleus sampling mass (1 = off)"},
    {"min-p", 'f', &o.min_p, "drop tokens below min_p * max prob (0 = off)"},
    {"repetition-penalty", 'f', &o.repetition_penalty, "HF repetition penalty (1 = off)"},
    {"frequency-penalty", 'f', &o.frequency_penalty, "OpenAI's: logit -= count * this over the generated tokens (-2..2, 0 = off)"},
    {"presence-penalty", 'f', &o.presence_penalty, "OpenAI's: logit -= this for each token already generated (-2..2, 0 = off)"},
    {"seed", 'u', &o.seed, "sampling seed"},
    {"n", 'i', &o.n, "samples per prompt"},
    {"stop-ids", 's', &stop, "stop token ids, comma separated (default: the model's eos ids)"},
    {"json", 'b', &json, "print one JSON line per sample (ids, logprobs, finish_reason)"},
    {"one-at-a-time", 'b', &one, "generate each prompt alone (for testing)"},
    TN_AGENT_FLAGS(agent),
  };
  int r = tn_cli_parse(argc, argv, flags, sizeof flags / sizeof flags[0], "--model DIR --ids 1,2,3 [options]");
  if (r) return r > 0 ? 0 : 2;
  if (!model_dir || (!ids == !prompt)) {
    fprintf(stderr, "tunic generate: --model and one of --prompt or --ids are required\n");
    return 2;
  }
  int **seqs = NULL, *lens = NULL, B = 0, *stop_ids = NULL, n_loras = 0, code = 2;
  tn_tokenizer *tok = NULL;
  tn_model *m = NULL;
  tn_lora_set **loras = NULL;
  tn_status s = TN_OK;
  /* an error after this point frees what was made (no leak under the sanitizers either) */
#define FAIL(c_) do { code = (c_); goto fail; } while (0)
  if (prompt || stop_str || !json) {
    s = tn_tokenizer_load(model_dir, &tok);
    if (s != TN_OK && prompt) FAIL(tn_cli_fail("generate", s));
    if (s != TN_OK) tok = NULL; /* ids only: print ids */
    if (tok && chat_template && (s = tn_tokenizer_set_chat_template(tok, chat_template)) != TN_OK)
      FAIL(tn_cli_fail("generate", s));
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
    if (s != TN_OK) FAIL(tn_cli_fail("generate", s));
    seqs = calloc(1, sizeof(int *));
    lens = malloc(sizeof(int));
    if (seqs) seqs[0] = malloc(sizeof(int) * (enc.n ? enc.n : 1));
    if (!seqs || !lens || !seqs[0]) {
      tn_encoding_free(&enc);
      FAIL(tn_cli_fail("generate", tn_error(TN_ERR_NOMEM, "out of memory")));
    }
    B = 1;
    for (size_t i = 0; i < enc.n; i++) seqs[0][i] = enc.ids[i];
    lens[0] = (int)enc.n;
    tn_encoding_free(&enc);
  } else {
    B = tn_cli_parse_ids(ids, &seqs, &lens);
    if (B < 0) { B = 0; FAIL(tn_cli_fail("generate", TN_ERR_ARG)); }
  }
  if (stop) {
    o.n_stop_ids = parse_id_list(stop, &stop_ids);
    if (o.n_stop_ids < 0) FAIL(tn_cli_fail("generate", TN_ERR_ARG));
    o.stop_ids = stop_ids;
  }
  tn_load_opts lo;
  tn_load_opts_default(&lo);
  s = tn_parse_base_dtype(base_dtype, &lo.base_dtype);
  if (s == TN_OK) s = tn_parse_head_dtype(head_dtype, &lo.head_dtype);
  if (s != TN_OK) FAIL(tn_cli_fail("generate", s));
  s = tn_model_load_opts(&m, model_dir, &lo);
  if (s != TN_OK) FAIL(tn_cli_fail("generate", s));
  if (adapter) {
    s = tn_lora_load_spec(m, adapter, adapter_name, &loras, &n_loras);
    if (s != TN_OK) FAIL(tn_cli_fail("generate", s));
  } else if (adapter_name) {
    fprintf(stderr, "tunic generate: --adapter-name needs --adapter\n");
    FAIL(2);
  }
  if (tn_agent_opts_active(&agent)) {
    if (!chat || !prompt) {
      fprintf(stderr, "tunic generate: --tools/--env/--env-cmd/--mcp need --chat and --prompt\n");
      FAIL(2);
    }
    s = tn_agent_chat(m, tok, &agent, prompt, system, &o, json);
    code = s == TN_OK ? 0 : tn_cli_fail("generate", s);
    goto fail;
  }
  const int slots = B * o.n;
  if (stop_str && !tok) {
    fprintf(stderr, "tunic generate: --stop needs the model's tokenizer\n");
    FAIL(2);
  }
  const bool stream = !json && prompt && slots == 1;
  tn_text_opts t;
  tn_text_opts_default(&t);
  const char *stops[1] = {stop_str};
  t.stop = stops;
  t.n_stop = stop_str != NULL;
  if (stream) t.on_text = print_text;
  if (!tok && !json) o.on_token = print_token;
  tn_text_result *res = calloc((size_t)slots, sizeof *res);
  s = res ? run(m, tok, seqs, lens, B, &o, &t, one, res) : tn_error(TN_ERR_NOMEM, "out of memory");
  /* a failed generation (e.g. NaN logits) prints nothing more and frees what it holds */
  code = s == TN_OK ? 0 : tn_cli_fail("generate", s);
  if (s == TN_OK && stream) putchar('\n');
  else if (s == TN_OK && !json && tok)
    for (int k = 0; k < slots; k++) printf("[prompt %d, sample %d]\n%s\n", k / o.n, k % o.n, res[k].text);
  if (s == TN_OK && json) print_json(res, B, o.n, tok != NULL);
  if (res) tn_text_results_free(res, slots);
  free(res);
fail:
  for (int b = 0; seqs && b < B; b++) free(seqs[b]);
  free(seqs);
  free(lens);
  free(stop_ids);
  tn_tokenizer_free(tok);
  tn_lora_sets_free(loras, n_loras);
  tn_model_free(m);
  return code;
#undef FAIL
}
