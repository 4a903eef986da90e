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
/* Print "tunic CMD: error: <last error>" and return the exit code for a status. */
int tn_cli_fail(const char *cmd, tn_status s);
/* Parse "1,2,3;4,5" into sequences. Returns number of sequences, -1 on error. */
int tn_cli_parse_ids(const char *s, int ***seqs, int **lens);
#endif
