/* cmd_ppo.c - `tunic ppo`: PPO with a value head on the policy (GAE, value clipping, entropy
 * bonus, KL in the rewards or the loss): grpo's option table plus PPO's rows (cmd_grpo.c),
 * advantage_estimator gae -> tn_ppo_run. Not for: the algorithm (src/rl/grpo.c, value_head.c). */
#include "cli/cli.h"

int tn_cmd_ppo(int argc, char **argv) { return tn_cli_rl(argc, argv, true); }
