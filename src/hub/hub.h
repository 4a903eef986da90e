/* hub.h - the Hugging Face Hub cache: `tunic pull ORG/NAME[@REV]` (download into the cache)
 * and ORG/NAME[@REV] resolved to a snapshot folder (cache only, no network), in the layout
 * huggingface_hub uses, so both tools share one cache:
 *   $HF_HUB_CACHE (else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 *   ~/.cache/huggingface/hub) / models--ORG--NAME (datasets--ORG--NAME) /
 *     blobs/ETAG            file contents, named by the Hub's etag (sha256 for LFS files,
 *                           the git blob sha1 otherwise); ETAG.incomplete while downloading
 *     snapshots/COMMIT/PATH relative symlinks into blobs/
 *     refs/REVISION         the commit a branch or tag named (no newline)
 * Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (else $HF_HOME/token),
 * HF_HUB_OFFLINE=1 (no network: the cache only).
 * Not for: uploading, the Hub's search API, anything but the files tunic reads. */
#ifndef TN_HUB_H
#define TN_HUB_H
#include <stdbool.h>
#include "base/base.h"

typedef struct {
  const char *endpoint;   /* NULL: $HF_ENDPOINT or https://huggingface.co */
  const char *token;      /* NULL: $HF_TOKEN, else the file $HF_HOME/token */
  const char *cache_dir;  /* NULL: from the environment (above) */
  bool dataset;           /* a dataset repository (its .json/.jsonl files) */
  bool all_files;         /* every file of the repository, not only those tunic reads */
  bool progress;          /* progress bars on stderr */
  bool quiet;             /* no per-file lines */
} tn_hub_opts;

/* The cache root (malloc'd). */
char *tn_hub_cache_dir(const char *override);
/* Whether SPEC reads as ORG/NAME[@REV] and is not an existing path. */
bool tn_hub_is_repo_id(const char *spec);
/* SPEC = ORG/NAME[@REV] -> the cached snapshot folder (malloc'd); no network. */
tn_status tn_hub_local(const char *spec, const tn_hub_opts *o, char **snapshot_dir);
/* Download what is missing of SPEC into the cache (resumable; sizes, and the content against the
 * etag: sha256 for LFS files, the git blob sha1 for others) and
 * return the snapshot folder. With HF_HUB_OFFLINE set: tn_hub_local. */
tn_status tn_hub_pull(const char *spec, const tn_hub_opts *o, char **snapshot_dir);
/* Whether tunic reads this repository file (model repos: config, safetensors and index,
 * tokenizer files, chat template, generation config, PEFT adapter; datasets: .json/.jsonl). */
bool tn_hub_wanted(const char *path, bool dataset);
/* The one data file of a dataset snapshot folder that a trainer reads (malloc'd path): SUB is a
 * path inside the repository ("main/train.jsonl") or a split name ("train", "test": a path
 * component, or a file name starting with it: train.jsonl, train-00000-of-00001.json); without
 * SUB the only .json/.jsonl file, else the only one of split "train". Several or none: an
 * error listing the files. */
tn_status tn_hub_data_file(const char *snapshot, const char *sub, char **path);
#endif
