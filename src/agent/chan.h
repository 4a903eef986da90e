/* chan.h - a child process spoken to in JSON lines (one request per line, responses matched
 * by id, in any order, many in flight): the transport of --env-cmd environments and of MCP
 * servers over stdio. A reader thread dispatches responses; a request times out on its own;
 * a child that exits (EOF on its stdout) fails every request in flight and later ones; a line
 * that is not JSON fails the request it names (an "id": N found in it) or else the oldest one
 * in flight. Internal to src/agent. Not for: the protocols' meaning (env.c, mcp.c). */
#ifndef TN_AGENT_CHAN_H
#define TN_AGENT_CHAN_H
#include <stdbool.h>
#include <cjson/cJSON.h>
#include "base/base.h"

typedef struct tn_chan tn_chan;

/* Start `/bin/sh -c CMD` (in CWD when not NULL) with its stdin and stdout as the channel and
 * its stderr kept in an unlinked temp file (its tail goes into error messages). WHAT names it
 * in messages ("environment", "MCP server"). JSONRPC: add "jsonrpc":"2.0" to what is sent. */
tn_status tn_chan_start(tn_chan **c, const char *cmd, const char *cwd, const char *what, bool jsonrpc);
/* Send {"id", "method", "params"} (params borrowed, may be NULL) and wait up to timeout_s for
 * the response. TN_OK: *result = a new copy of its "result". Otherwise *result = NULL and:
 * TN_ERR_LIMIT on a timeout, TN_ERR_IO for a dead child, an "error" response, a garbage line,
 * TN_ERR_NOMEM. The message names WHAT, the method and the reason. */
tn_status tn_chan_request(tn_chan *c, const char *method, const cJSON *params, double timeout_s, cJSON **result);
/* A notification (no id, no response). */
tn_status tn_chan_notify(tn_chan *c, const char *method, const cJSON *params);
bool tn_chan_alive(tn_chan *c);
/* Close the child's stdin, wait up to 1 s, then SIGTERM, then SIGKILL its process group. */
void tn_chan_free(tn_chan *c);

#endif
