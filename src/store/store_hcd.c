/* store_hcd.c - POST /api/ungar/high-card-duel/generate and `tunic store games high-card-duel`:
 * plays games of high-card duel with src/agent/hcd (the agentic RL environment's game) and
 * stores each as a trace. Not for: the game's rules (src/agent/hcd.c). */
#include "store/store.h"

tn_status tn_store_hcd_generate(tn_store *s, const cJSON *req, cJSON **out, tn_store_res *r) {
  *out = NULL;
  r->code = 501;
  return tn_error(TN_ERR_UNSUPPORTED, "high-card duel: the game is not built in yet");
}
