/* cli.c - flag parsing shared by the subcommands. */
#include "cli/cli.h"
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tunic/obs.h"

static void print_usage(FILE *f, const char *cmd, const tn_flag *flags, int n, const char *usage) {
  fprintf(f, "usage: tunic %s %s\n\noptions:\n", cmd, usage ? usage : "[options]");
  for (int i = 0; i < n; i++) {
    const char *t = flags[i].type == 'b' ? "" : flags[i].type == 's' ? " STR" : flags[i].type == 'f' ? " X" : " N";
    fprintf(f, "  --%s%s%*s%s\n", flags[i].name, t, (int)(24 - strlen(flags[i].name) - strlen(t)) > 1 ? (int)(24 - strlen(flags[i].name) - strlen(t)) : 1, "", flags[i].help ? flags[i].help : "");
  }
}

int tn_cli_parse(int argc, char **argv, const tn_flag *flags, int nflags, const char *usage) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { print_usage(stdout, argv[0], flags, nflags, usage); return 1; }
    if (strncmp(a, "--", 2) != 0) {
      fprintf(stderr, "tunic %s: unexpected argument '%s'\n", argv[0], a);
      return -1;
    }
    a += 2;
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    const tn_flag *f = NULL;
    for (int j = 0; j < nflags; j++)
      if (strlen(flags[j].name) == len && !strncmp(flags[j].name, a, len)) f = &flags[j];
    if (!f) {
      fprintf(stderr, "tunic %s: unknown option '--%.*s' (see tunic %s --help)\n", argv[0], (int)len, a, argv[0]);
      return -1;
    }
    if (f->type == 'b') {
      if (eq) *(bool *)f->dst = !(strcmp(eq + 1, "0") == 0 || strcmp(eq + 1, "false") == 0);
      else *(bool *)f->dst = true;
      continue;
    }
    const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!v) { fprintf(stderr, "tunic %s: option --%s needs a value\n", argv[0], f->name); return -1; }
    char *end = NULL;
    errno = 0;
    switch (f->type) {
    case 's': *(const char **)f->dst = v; break;
    case 'i': {
      long x = strtol(v, &end, 10);
      if (errno || *end || end == v || x < INT32_MIN || x > INT32_MAX) goto bad;
      *(int *)f->dst = (int)x;
      break;
    }
    case 'u': {
      unsigned long long x = strtoull(v, &end, 10);
      if (errno || *end || end == v) goto bad;
      *(uint64_t *)f->dst = x;
      break;
    }
    case 'f': {
      double x = strtod(v, &end);
      if (errno || *end || end == v) goto bad;
      *(float *)f->dst = (float)x;
      break;
    }
    }
    continue;
  bad:
    fprintf(stderr, "tunic %s: option --%s: '%s' is not a valid %s\n", argv[0], f->name, v,
            f->type == 'f' ? "number" : "integer");
    return -1;
  }
  return 0;
}

int tn_cli_fail(const char *cmd, tn_status s) {
  fprintf(stderr, "tunic %s: error: %s\n", cmd, tn_last_error()[0] ? tn_last_error() : tn_status_name(s));
  return s == TN_ERR_ARG ? 2 : 1;
}

int tn_cli_parse_ids(const char *s, int ***seqs, int **lens) {
  int nseq = 1;
  for (const char *c = s; *c; c++) nseq += *c == ';';
  int **out = calloc(nseq, sizeof *out);
  int *ln = calloc(nseq, sizeof *ln);
  const char *c = s;
  for (int k = 0; k < nseq; k++) {
    const char *e = strchr(c, ';');
    if (!e) e = c + strlen(c);
    int cap = 1;
    for (const char *p = c; p < e; p++) cap += *p == ',';
    out[k] = malloc(sizeof(int) * cap);
    while (c < e) {
      char *end;
      errno = 0;
      long x = strtol(c, &end, 10);
      if (end == c || errno || x < 0 || x > INT32_MAX) goto bad;
      out[k][ln[k]++] = (int)x;
      c = end;
      while (c < e && (*c == ' ')) c++;
      if (c < e && *c == ',') c++;
      else if (c < e) goto bad;
    }
    if (ln[k] == 0) goto bad;
    c = *e ? e + 1 : e;
  }
  *seqs = out;
  *lens = ln;
  return nseq;
bad:
  for (int k = 0; k < nseq; k++) free(out[k]);
  free(out);
  free(ln);
  tn_error(TN_ERR_ARG, "bad token id list '%s' (expected e.g. 1,2,3;4,5)", s);
  return -1;
}

int tn_cli_parse_config(int argc, char **argv, const tn_flag *flags, int nflags, const char *usage,
                        struct tn_runcfg **out) {
  *out = NULL;
  tn_opt *opts = calloc(nflags > 0 ? nflags : 1, sizeof *opts);
  if (!opts) { fprintf(stderr, "tunic %s: out of memory\n", argv[0]); return -1; }
  for (int i = 0; i < nflags; i++)
    opts[i] = (tn_opt){flags[i].name, flags[i].type, flags[i].dst, flags[i].help};
  tn_runcfg *rc = tn_runcfg_new(opts, nflags); /* copies the table */
  free(opts);
  if (!rc) { fprintf(stderr, "tunic %s: out of memory\n", argv[0]); return -1; }
  bool help = false;
  tn_status s = tn_runcfg_parse(rc, argc, argv, usage, &help);
  if (s != TN_OK || help) {
    if (s != TN_OK) fprintf(stderr, "tunic %s: error: %s\n", argv[0], tn_last_error());
    tn_runcfg_free(rc);
    return s != TN_OK ? -1 : 1;
  }
  char title[96];
  snprintf(title, sizeof title, "tunic %s: config", argv[0]);
  tn_runcfg_print(rc, stderr, title);
  *out = rc;
  return 0;
}
