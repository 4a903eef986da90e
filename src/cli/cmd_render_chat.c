/* cmd_render_chat.c - `tunic render-chat --model DIR --messages FILE.json [--tools FILE.json]
 * [--add-generation-prompt] [--var NAME=JSON ...] [--ids] [--spans] [--chat-template FILE.jinja]`:
 * render a conversation with the model's own chat template and print the text (or its token
 * ids, or the assistant spans as JSON). `--parse-tool-calls FILE` instead reads tool calls
 * out of generated text and prints them as an assistant message (JSON). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "template/template.h"
#include "base/json.h"

static cJSON *read_json(const char *path, const char *what) {
  char *t;
  size_t n;
  if (tn_read_file(path, &t, &n) != TN_OK) { fprintf(stderr, "tunic render-chat: %s: %s\n", what, tn_last_error()); return NULL; }
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithOpts(t, &end, 0);
  if (!j) {
    size_t line = 1;
    for (const char *p = t; end && p < end; p++) line += *p == '\n';
    fprintf(stderr, "tunic render-chat: %s: not valid JSON (line %zu)\n", path, line);
  }
  free(t);
  return j;
}

int tn_cmd_render_chat(int argc, char **argv) {
  const char *model = NULL, *messages = NULL, *tools = NULL, *tpl = NULL, *parse = NULL, *tfmt = "auto";
  bool gen = false, ids = false, spans = false;
  /* --var NAME=JSON may repeat: taken out before the flag table */
  cJSON *vars = cJSON_CreateObject();
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  int nr = 0, rc = 0;
  if (!vars || !rest) {
    cJSON_Delete(vars);
    free(rest);
    return tn_cli_fail("render-chat", tn_error(TN_ERR_NOMEM, "out of memory"));
  }
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--var") && i + 1 < argc) {
      const char *kv = argv[++i], *eq = strchr(kv, '=');
      cJSON *v = eq ? cJSON_Parse(eq + 1) : NULL;
      if (!eq || eq == kv || !v) {
        fprintf(stderr, "tunic render-chat: --var %s: expected NAME=JSON (e.g. enable_thinking=false)\n", kv);
        cJSON_Delete(v);
        rc = 2;
        break;
      }
      char *name = strndup(kv, (size_t)(eq - kv));
      if (!name || (cJSON_DeleteItemFromObject(vars, name), !cJSON_AddItemToObject(vars, name, v))) {
        cJSON_Delete(v); /* not in vars: a failed add leaves the item to the caller */
        free(name);
        fprintf(stderr, "tunic render-chat: out of memory\n");
        rc = 1;
        break;
      }
      free(name);
    } else {
      rest[nr++] = argv[i];
    }
  }
  const char *var_help = NULL; /* --var is taken out above; this row only documents it */
  tn_flag flags[] = {
      {"model", 's', &model, "model directory (its tokenizer_config.json / chat_template.jinja)"},
      {"var", 's', &var_help, "NAME=JSON: a template variable, repeatable (enable_thinking=false, documents=[...])"},
      {"messages", 's', &messages, "JSON file: an array of messages (or an object with \"messages\", \"tools\")"},
      {"tools", 's', &tools, "JSON file: an array of tool schemas"},
      {"add-generation-prompt", 'b', &gen, "end with the assistant header"},
      {"ids", 'b', &ids, "print token ids instead of text"},
      {"spans", 'b', &spans, "print the assistant spans as JSON (byte offsets) after the text"},
      {"chat-template", 's', &tpl, "a .jinja file to use instead of the model's template"},
      {"parse-tool-calls", 's', &parse, "read tool calls from this text file (generated text) and print them"},
      {"tool-format", 's', &tfmt, "auto|hermes|llama3|mistral|gemma|harmony (with --parse-tool-calls)"},
  };
  const char *usage = "--model DIR --messages FILE.json [--tools FILE.json] [--add-generation-prompt] "
                      "[--var NAME=JSON ...] [--ids] [--spans] [--chat-template FILE.jinja] | --parse-tool-calls FILE";
  if (!rc) {
    int r = tn_cli_parse(nr, rest, flags, (int)(sizeof flags / sizeof *flags), usage);
    if (r) rc = r > 0 ? -1 : 2;
  }
  free(rest);
  if (rc) { cJSON_Delete(vars); return rc < 0 ? 0 : rc; }

  if (parse) {
    tn_tool_format f;
    char *t;
    size_t n;
    tn_status s = tn_tool_format_parse(tfmt, &f);
    if (s == TN_OK) s = tn_read_file(parse, &t, &n);
    if (s != TN_OK) { cJSON_Delete(vars); return tn_cli_fail("render-chat", s); }
    tn_tool_calls tc;
    s = tn_tool_calls_parse(t, n, f, &tc);
    free(t);
    if (s != TN_OK) { cJSON_Delete(vars); return tn_cli_fail("render-chat", s); }
    cJSON *m = tn_tool_calls_to_message(&tc);
    cJSON_AddStringToObject(m, "format", tn_tool_format_name(tc.format));
    char *out = cJSON_PrintUnformatted(m);
    printf("%s\n", out);
    free(out);
    cJSON_Delete(m);
    int bad = tc.n_errors > 0;
    tn_tool_calls_free(&tc);
    cJSON_Delete(vars);
    return bad ? 1 : 0;
  }
  if (!messages || (!model && !tpl)) {
    fprintf(stderr, "tunic render-chat: --messages and --model (or --chat-template) are required\n");
    cJSON_Delete(vars);
    return 2;
  }
  cJSON *msgs = read_json(messages, "--messages"), *tl = NULL, *doc = msgs;
  char *tpl_text = NULL;
  tn_tokenizer *tok = NULL;
  tn_status s = TN_OK;
  if (!msgs) rc = 2;
  if (!rc && cJSON_IsObject(msgs)) { /* {"messages": [...], "tools": [...], ...} */
    cJSON *m = tn_json_field_mut(msgs, "messages");
    if (!cJSON_IsArray(m)) { fprintf(stderr, "tunic render-chat: %s: no \"messages\" array\n", messages); rc = 2; }
    cJSON *t = tn_json_field_mut(msgs, "tools");
    if (cJSON_IsArray(t)) tl = cJSON_Duplicate(t, 1);
    msgs = m;
  }
  if (!rc && tools) {
    cJSON_Delete(tl);
    tl = read_json(tools, "--tools");
    if (!tl) rc = 2;
    else if (!cJSON_IsArray(tl)) { fprintf(stderr, "tunic render-chat: %s: tools must be a JSON array\n", tools); rc = 2; }
  }
  if (!rc && tpl) {
    size_t n;
    s = tn_read_file(tpl, &tpl_text, &n);
  }
  if (!rc && s == TN_OK && model) s = tn_tokenizer_load(model, &tok);
  if (!rc && s == TN_OK) {
    tn_chat_req q = {.messages = msgs, .tools = tl, .vars = vars, .add_generation_prompt = gen,
                     .template_text = tpl_text, .template_name = tpl, .spans = spans};
    tn_chat_out out;
    s = tn_chat_render_req(tok, &q, &out);
    if (s == TN_OK && ids) {
      if (!tok) { fprintf(stderr, "tunic render-chat: --ids needs --model\n"); rc = 2; }
      else {
        tn_encoding enc = {0};
        s = tn_chat_out_encode(tok, &out, &enc);
        for (size_t i = 0; s == TN_OK && i < enc.n; i++) printf("%s%d", i ? " " : "", enc.ids[i]);
        if (s == TN_OK) printf("\n");
        if (s == TN_OK && spans) { /* the assistant mask, one 0/1 per token */
          for (size_t i = 0; i < enc.n; i++) printf("%s%d", i ? " " : "", enc.mask[i]);
          printf("\n");
        }
        tn_encoding_free(&enc);
      }
    } else if (s == TN_OK) {
      fwrite(out.text, 1, out.len, stdout);
      if (spans) {
        printf("\n[");
        for (size_t i = 0; i < out.n_spans; i++) printf("%s[%zu, %zu]", i ? ", " : "", out.spans[i].start, out.spans[i].end);
        printf("]\n");
      }
    }
    if (s == TN_OK) tn_chat_out_free(&out);
  }
  if (!rc && s != TN_OK) rc = tn_cli_fail("render-chat", s);
  free(tpl_text);
  tn_tokenizer_free(tok);
  cJSON_Delete(doc);
  cJSON_Delete(tl);
  cJSON_Delete(vars);
  return rc;
}
