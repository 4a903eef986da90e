/* tool_int.h - what the toolset pieces share inside src/agent (tool.c, sandbox.c, mcp.c).
 * Not for: other folders (tool.h is the interface). */
#ifndef TN_AGENT_TOOL_INT_H
#define TN_AGENT_TOOL_INT_H
#include "agent/tool.h"
#include "agent/chan.h"

/* Run CODE in the python sandbox, filling r (ok / content / error). TN_OK unless tunic itself
 * failed (no temp dir, fork failed, out of memory). */
tn_status tn_python_run(const tn_tool_opts *o, const char *code, double timeout_s, tn_tool_result *r);

/* An MCP server: initialize, tools/list into *tools (a new array of OpenAI tool schemas). */
typedef struct tn_mcp tn_mcp;
tn_status tn_mcp_start(tn_mcp **m, const char *cmd, double timeout_s, cJSON **tools);
tn_status tn_mcp_call(tn_mcp *m, const char *name, const cJSON *args, double timeout_s, tn_tool_result *r);
void tn_mcp_free(tn_mcp *m);

#endif
