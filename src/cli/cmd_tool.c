/* cmd_tool.c - `tunic tool run NAME --args JSON [--timeout S] [--mcp CMD]`: run one tool call
 * exactly as an agentic episode would and print its result as JSON ({"ok": true, "content":
 * ...} or {"ok": false, "error": ...}); exit 0 when the tool ran, even if it failed as a tool.
 * `tunic tool list [--tools NAMES] [--mcp CMD]` prints the tool schemas the model would see.
 * Not for: running episodes (the trainers, eval, generate --chat). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "agent/tool.h"
#include "cli/cli.h"

static int usage(FILE *f) {
  fprintf(f, "usage: tunic tool run NAME --args JSON [--timeout S] [--output-cap BYTES] [--mcp CMD]...\n"
             "       tunic tool list [--tools calculator,python] [--mcp CMD]...\n"
             "  run   run one call of tool NAME (calculator, python, or a tool of an MCP server) and print\n"
             "        {\"ok\": true, \"content\": ...} or {\"ok\": false, \"error\": ...}; exit 0 when the tool ran\n"
             "  list  print the tools' OpenAI schemas\n"
             "  --mcp CMD  start an MCP server over stdio (may repeat)\n");
  return f == stdout ? 0 : 2;
}

static tn_status add_mcps(tn_toolset *ts, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *v = NULL;
    if (!strcmp(argv[i], "--mcp") && i + 1 < argc) v = argv[++i];
    else if (!strncmp(argv[i], "--mcp=", 6)) v = argv[i] + 6;
    if (v) TN_TRY(tn_toolset_add_mcp(ts, v));
  }
  return TN_OK;
}

/* argv without the --mcp options (they repeat; the flag table takes each option once) */
static int strip_mcp(int argc, char **argv, char **out) {
  int n = 0;
  for (int i = 0; i < argc; i++) {
    if (i > 0 && !strcmp(argv[i], "--mcp") && i + 1 < argc) { i++; continue; }
    if (i > 0 && !strncmp(argv[i], "--mcp=", 6)) continue;
    out[n++] = argv[i];
  }
  return n;
}

int tn_cmd_tool(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return usage(argc < 2 ? stderr : stdout);
  bool run = !strcmp(argv[1], "run"), list = !strcmp(argv[1], "list");
  if (!run && !list) { fprintf(stderr, "tunic tool: unknown subcommand '%s' (known: run, list)\n", argv[1]); return 2; }
  const char *name = NULL;
  int first = 1;
  if (run) {
    if (argc < 3 || argv[2][0] == '-') {
      if (argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) return usage(stdout);
      fprintf(stderr, "tunic tool run: the tool NAME is required (tunic tool run calculator --args '{\"expression\": \"2+2\"}')\n");
      return 2;
    }
    name = argv[2];
    first = 2;
  }
  char **sub = calloc((size_t)argc + 1, sizeof *sub);
  if (!sub) return tn_cli_fail("tool", TN_ERR_NOMEM);
  int nsub = strip_mcp(argc - first, argv + first, sub);
  sub[0] = run ? "tool run" : "tool list";
  const char *args = "{}", *tools = NULL;
  double timeout = 10;
  int cap = 16384;
  tn_flag flags[] = {
    {"args", 's', &args, "the call's arguments, a JSON object"},
    {"timeout", 'd', &timeout, "seconds the call may take"},
    {"output-cap", 'i', &cap, "bytes of output kept; more is a tool error"},
    {"tools", 's', &tools, "built-in tools to list, comma-separated (list; run: the tool NAME)"},
  };
  int rc = tn_cli_parse(nsub, sub, flags, sizeof flags / sizeof flags[0], run ? "NAME --args JSON [--mcp CMD]..." : "[--tools NAMES] [--mcp CMD]...");
  free(sub);
  if (rc) return rc > 0 ? 0 : 2;
  tn_tool_opts o;
  tn_tool_opts_default(&o);
  o.timeout_s = timeout;
  o.output_cap = (size_t)cap;
  tn_toolset *ts = NULL;
  const char *builtin = run ? ((!strcmp(name, "calculator") || !strcmp(name, "python")) ? name : "") : tools;
  tn_status st = tn_toolset_create(&ts, builtin, &o);
  if (st == TN_OK) st = add_mcps(ts, argc, argv);
  if (st != TN_OK) { tn_toolset_free(ts); return tn_cli_fail(run ? "tool run" : "tool list", st); }
  if (list) {
    char *t = cJSON_Print(tn_toolset_schemas(ts));
    if (t) puts(t);
    cJSON_free(t);
    tn_toolset_free(ts);
    return t ? 0 : tn_cli_fail("tool list", TN_ERR_NOMEM);
  }
  if (!tn_toolset_has(ts, name)) {
    fprintf(stderr, "tunic tool run: no tool '%s' (built in: calculator, python; others come from --mcp CMD)\n", name);
    tn_toolset_free(ts);
    return 2;
  }
  cJSON *a = cJSON_Parse(args);
  bool obj = cJSON_IsObject(a);
  cJSON_Delete(a);
  if (!obj) {
    fprintf(stderr, "tunic tool run: --args must be a JSON object (got '%s')\n", args);
    tn_toolset_free(ts);
    return 2;
  }
  tn_tool_result r;
  st = tn_toolset_call(ts, name, args, timeout, &r);
  if (st != TN_OK) { tn_tool_result_free(&r); tn_toolset_free(ts); return tn_cli_fail("tool run", st); }
  cJSON *j = tn_tool_result_json(&r);
  char *t = j ? cJSON_PrintUnformatted(j) : NULL;
  if (t) puts(t);
  cJSON_free(t);
  cJSON_Delete(j);
  tn_tool_result_free(&r);
  tn_toolset_free(ts);
  return t ? 0 : tn_cli_fail("tool run", TN_ERR_NOMEM);
}
