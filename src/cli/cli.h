/* cli.h - small shared helpers for the subcommands: flag parsing and error exit.
 * Flags are --name VALUE or --name=VALUE; booleans are --name. */
#ifndef TN_CLI_H
#define TN_CLI_H
#include <stdbool.h>
#include <stdio.h>
#include "base/base.h"
#include "train/opts.h"
#include "tunic/obs.h"
#include "model/model.h"
#include "tunic/tokenizer.h"

/* One option: name (without leading dashes), type ('s' string, 'i' int, 'f' float, 'd' double,
 * 'b' bool, 'u' uint64), dst (its value before parsing is the default), help. The same row as
 * the run config's (include/tunic/obs.h). Help texts give no literal default: the usage
 * appends "(default X)" from the value itself, unless the help describes the default in
 * words ("... (default: the model's)"). */
typedef tn_opt tn_flag;

/* Parse argv (argv[0] is the subcommand name). Positional arguments are refused.
 * Prints usage and returns 1 on --help (caller returns 0), -1 on error (message printed). */
/* ORG/NAME[@REV] -> the snapshot folder in the Hugging Face cache (downloaded first when
 * tn_cli_download, set by a --download anywhere on the command line); other values unchanged. */
extern bool tn_cli_download;
const char *tn_cli_resolve_repo(const char *spec, bool dataset, tn_status *st);
int tn_cli_parse(int argc, char **argv, const tn_flag *flags, int nflags, const char *usage);
/* tn_cli_parse plus `--config run.yaml` (YAML keys = flag names, '-' and '_' alike; flags
 * override the file; unknown keys / bad values are errors naming file, line, key, value, type),
 * and the resolved values printed to stderr. Same return codes as tn_cli_parse. On 0, *RC
 * holds the config: keep it alive while 's' values are used, pass tn_runcfg_json(*RC) to
 * tn_manifest_write, tn_runcfg_free at the end. See include/tunic/obs.h. */
struct tn_runcfg;
int tn_cli_parse_config(int argc, char **argv, const tn_flag *flags, int nflags, const char *usage,
                        struct tn_runcfg **rc);
/* "usage: tunic CMD USAGE" and one line per option: --name TYPE, help and the default (see
 * tn_flag). with_config: a --config FILE line first. */
void tn_cli_usage(FILE *f, const char *cmd, const char *usage, const tn_flag *flags, int nflags, bool with_config);
/* The row named NAME (NULL when none): a trainer renames or re-describes a shared row. */
tn_flag *tn_cli_opt(tn_flag *flags, int nflags, const char *name);

/* The agent options (src/agent/agentic.h, tn_agent_opts a) as flag rows, shared by grpo, eval, generate. */
#define TN_AGENT_FLAGS(a)                                                                                       \
  {"tools", 's', &(a).tools, "agentic: built-in tools listed to the model (calculator,python)"},               \
  {"env", 's', &(a).env, "agentic: environment (tools, math, high_card_duel, frozenlake; default tools)"},     \
  {"env-cmd", 's', &(a).env_cmd, "agentic: an environment process speaking JSON lines (docs/agentic.md)"},     \
  {"mcp", 's', &(a).mcp, "agentic: an MCP server command whose tools are listed to the model"},                \
  {"max-turns", 'i', &(a).max_turns, "agentic: model turns per episode"},                                       \
  {"max-episode-tokens", 'i', &(a).max_episode_tokens, "agentic: tokens after the prompt (model + tools)"},   \
  {"episode-timeout", 'f', &(a).episode_timeout, "agentic: seconds per episode (0 = none)"},                 \
  {"tool-timeout", 'f', &(a).tool_timeout, "agentic: seconds per environment step / tool call"},              \
  {"finish-tool", 's', &(a).finish_tool, "agentic: a tool whose call ends the episode"}

/* ---- the trainers' commands (sft, dpo, distill, grpo) ----
 * Their table: the shared options' first section (train/opts.h; those in HAS), the trainer's
 * own rows, the shared second section. out needs room for TN_TRAIN_OPTS_MAX_ROWS + nown rows.
 * Returns the row count. */
int tn_cli_train_rows(tn_flag *out, tn_train_opts *t, unsigned has, const tn_flag *own, int nown);
/* Parse --config YAML + flags into the table's fields (--help: the usage, exit code 0), print
 * "CMD configuration" (each value and where it came from) to stdout, then run(opts, the
 * resolved config as JSON text for the manifest, argc, argv). Returns the exit code. */
typedef tn_status (*tn_cli_run_fn)(const void *opts, const char *config_json, int argc, char **argv);
int tn_cli_train(int argc, char **argv, const char *usage, const tn_flag *flags, int nflags, tn_cli_run_fn run,
                 const void *opts);
/* ---- the inference commands' model options (generate, eval, logits, merge, export, serve) ----
 * Declared once (src/cli/model_opts.c): the rows, their help, and one loader, so every command
 * reads --model/--adapter/... the same way and fails with the same messages. */
typedef struct {
  const char *model, *adapter, *adapter_name, *tokenizer, *chat_template;
  const char *base_dtype; /* NULL: auto (merge/export: what the adapter's run manifest says, else auto) */
  const char *head_dtype; /* "auto" */
} tn_cli_model;
enum { /* which rows a command offers */
  TN_CM_MODEL = 1 << 0, TN_CM_ADAPTER = 1 << 1, TN_CM_ADAPTER_NAME = 1 << 2, TN_CM_TOKENIZER = 1 << 3,
  TN_CM_BASE_DTYPE = 1 << 4, TN_CM_HEAD_DTYPE = 1 << 5, TN_CM_CHAT_TEMPLATE = 1 << 6,
};
#define TN_CM_MAX_ROWS 7
void tn_cli_model_default(tn_cli_model *mo);
/* The rows of HAS (TN_CM_*) into out, in a fixed order; returns the count. A command re-describes a
 * row with tn_cli_opt. */
int tn_cli_model_rows(tn_flag *out, tn_cli_model *mo, unsigned has);
/* What tn_cli_model_load loads (TN_CL_*): the tokenizer (required, or tried: NULL when missing),
 * or the merge path (merge, export: f32 head, the base dtype from the adapter's run manifest
 * when --base-dtype is not given, widened to f32, the one adapter merged in). */
enum { TN_CL_TOKENIZER = 1 << 0, TN_CL_TOKENIZER_TRY = 1 << 1, TN_CL_MERGE = 1 << 2 };
typedef struct {
  tn_model *model;
  tn_tokenizer *tok;          /* --tokenizer, else the model directory's (NULL when not asked for) */
  struct tn_lora_set **loras; /* --adapter's sets, the --adapter-name one active (not with TN_CL_MERGE) */
  int n_loras;
  tn_merge_info merge;        /* TN_CL_MERGE: what was merged */
} tn_cli_loaded;
/* --base-dtype / --head-dtype into lo (tn_load_opts_default first). */
tn_status tn_cli_load_opts(const tn_cli_model *mo, tn_load_opts *lo);
/* Load the model, then the tokenizer (+ --chat-template), then the adapters; CMD names the command
 * in notes. On error everything loaded is freed and *out zeroed. */
tn_status tn_cli_model_load(const char *cmd, const tn_cli_model *mo, unsigned how, tn_cli_loaded *out);
void tn_cli_loaded_free(tn_cli_loaded *l);
/* `tunic grpo` (ppo false) and `tunic ppo` (the same table with PPO's rows): cmd_grpo.c */
int tn_cli_rl(int argc, char **argv, bool ppo);
/* The range rule of numeric option F of command CMD (src/cli/optrules.c, one rule per option name,
 * a few qualified by command): TN_ERR_ARG naming the option, its value and ORIGIN ("--x" or
 * "FILE:LINE") when the value is outside it; TN_ERR_INTERNAL for a numeric option with no rule.
 * Strings and bools pass. tn_cli_parse and the --config paths call it for every value given. */
tn_status tn_cli_check_opt(const char *cmd, const tn_flag *f, const char *origin);
/* The rule in words: "in (0, 1] (1 = off)". */
void tn_cli_rule_text(const char *cmd, const char *name, char *buf, size_t n);
/* ---- output paths of the commands that are not trainers (the trainers' run directories are
 * checked by the run layer). Nothing another program (or the user) wrote is overwritten
 * without --force; a command's own earlier output is (re-running it replaces its files). ----
 * --out DIR: absent, empty, or holding only entries whose names match one of the fnmatch
 * patterns OWN (NULL-terminated: the files this command writes). Else TN_ERR_ARG naming the
 * directory and a foreign entry, unless FORCE. A path that is a file is always an error.
 * OPT names the option in messages ("out"). */
tn_status tn_cli_out_dir(const char *opt, const char *path, const char *const *own, bool force);
/* --out FILE: absent, empty, or a file that starts with one of the byte strings MAGIC
 * (NULL-terminated: this command's own formats). Else TN_ERR_ARG naming the file, unless FORCE.
 * A path that is a directory is always an error. */
tn_status tn_cli_out_file(const char *opt, const char *path, const char *const *magic, bool force);
/* The files of a model directory tunic writes (init, merge): config, weights, tokenizer files. */
extern const char *const tn_cli_model_files[];
/* config["base-dtype"] of the run that wrote the adapter in directory ADAPTER (its
 * run_manifest.json, or up to two levels above), a malloc'd string; *where: the manifest's path
 * (malloc'd). NULL when there is none. (merge, export) */
char *tn_cli_trained_base_dtype(const char *adapter, char **where);
/* Print "tunic CMD: error: <last error>" and return the exit code for a status. */
int tn_cli_fail(const char *cmd, tn_status s);
/* Every value of a repeatable string option --NAME ("--NAME X" or "--NAME=X"), each split on
 * commas, into *out (malloc'd strings in a malloc'd array; free both). Returns the count. */
int tn_cli_collect(int argc, char **argv, const char *name, char ***out);
/* Parse "1,2,3;4,5" into sequences. Returns number of sequences, -1 on error. */
int tn_cli_parse_ids(const char *s, int ***seqs, int **lens);
#endif
