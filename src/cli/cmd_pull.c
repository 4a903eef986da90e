/* cmd_pull.c - `tunic pull ORG/NAME[@REV]` (and `--dataset`): download a Hub repository's files
 * tunic reads into the Hugging Face cache (src/hub/hub.c) and print the snapshot folder.
 * Not for: the protocol and the cache layout (src/hub/); ORG/NAME given for --model (cli.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "hub/hub.h"

int tn_cmd_pull(int argc, char **argv) {
  bool dataset = false, all = false, quiet = false, progress = false, no_progress = false;
  const char *cache = NULL, *endpoint = NULL, *spec = NULL;
  tn_flag flags[] = {
    {"dataset", 'b', &dataset, "a dataset repository (its .json/.jsonl files)"},
    {"all", 'b', &all, "every file of the repository, not only those tunic reads"},
    {"cache-dir", 's', &cache, "cache root (default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)"},
    {"endpoint", 's', &endpoint, "Hub URL (default $HF_ENDPOINT, else https://huggingface.co)"},
    {"progress", 'b', &progress, "progress bars even when stderr is not a terminal"},
    {"no-progress", 'b', &no_progress, "no progress bars"},
    {"quiet", 'b', &quiet, "print only the snapshot folder"},
  };
  const int nf = sizeof flags / sizeof flags[0];
  const char *usage = "ORG/NAME[@REVISION] [options]   (token: $HF_TOKEN; no network: HF_HUB_OFFLINE=1)";
  /* the repository id is the one positional argument */
  char **rest = malloc(sizeof(char *) * (argc + 1));
  if (!rest) return tn_cli_fail("pull", tn_error(TN_ERR_NOMEM, "out of memory"));
  int nr = 0;
  for (int i = 0; i < argc; i++) {
    if (i > 0 && argv[i][0] != '-' && !spec) { spec = argv[i]; continue; }
    rest[nr++] = argv[i];
    const tn_flag *f = NULL;
    for (int j = 0; i > 0 && j < nf; j++)
      if (!strcmp(argv[i] + 2, flags[j].name)) f = &flags[j];
    if (f && f->type != 'b' && i + 1 < argc) rest[nr++] = argv[++i];
  }
  rest[nr] = NULL;
  int r = tn_cli_parse(nr, rest, flags, nf, usage);
  free(rest);
  if (r) return r > 0 ? 0 : 2;
  if (!spec) {
    fprintf(stderr, "tunic pull: needs a repository id ORG/NAME[@REVISION] (see tunic pull --help)\n");
    return 2;
  }
  tn_hub_opts o = {.endpoint = endpoint, .cache_dir = cache, .dataset = dataset, .all_files = all, .quiet = quiet,
                   .progress = !no_progress && !quiet && (progress || isatty(2))};
  char *dir = NULL;
  tn_status s = tn_hub_pull(spec, &o, &dir);
  if (s != TN_OK) return tn_cli_fail("pull", s);
  printf("%s\n", dir);
  free(dir);
  return 0;
}
