/* cli.h - small shared helpers for the subcommands: flag parsing and error exit.
 * Flags are --name VALUE or --name=VALUE; booleans are --name. */
#ifndef TN_CLI_H
#define TN_CLI_H
#include <stdbool.h>
#include "base/base.h"

typedef struct {
  const char *name;   /* without leading dashes */
  char type;          /* 's' string, 'i' int, 'f' float, 'b' bool, 'u' uint64 */
  void *dst;
  const char *help;
} tn_flag;

/* Parse argv (argv[0] is the subcommand name). Positional arguments are refused.
 * Prints usage and returns 1 on --help (caller returns 0), -1 on error (message printed). */
int tn_cli_parse(int argc, char **argv, const tn_flag *flags, int nflags, const char *usage);
/* tn_cli_parse plus `--config run.yaml` (YAML keys = flag names, '-' and '_' alike; flags
 * override the file; unknown keys / bad values are errors naming file, line, key, value, type),
 * and the resolved values printed to stderr. Same return codes as tn_cli_parse. On 0, *RC
 * holds the config: keep it alive while 's' values are used, pass tn_runcfg_json(*RC) to
 * tn_manifest_write, tn_runcfg_free at the end. See include/tunic/obs.h. */
struct tn_runcfg;
int tn_cli_parse_config(int argc, char **argv, const tn_flag *flags, int nflags, const char *usage,
                        struct tn_runcfg **rc);
/* Print "tunic CMD: error: <last error>" and return the exit code for a status. */
int tn_cli_fail(const char *cmd, tn_status s);
/* Parse "1,2,3;4,5" into sequences. Returns number of sequences, -1 on error. */
int tn_cli_parse_ids(const char *s, int ***seqs, int **lens);
#endif
