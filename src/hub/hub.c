/* hub.c - the Hugging Face Hub client and cache (see hub.h): repo info
 * (GET /api/{models,datasets}/REPO/revision/REV), per-file metadata (HEAD .../resolve/COMMIT/PATH
 * without following redirects: X-Repo-Commit, X-Linked-Etag / ETag, X-Linked-Size /
 * Content-Length), downloads into blobs/ETAG.incomplete resumed with a Range request, checked
 * (size; the sha256 or git blob sha1 the etag is) and renamed, snapshot symlinks and refs/.
 * Not for: choosing what a command loads (the CLI resolves ORG/NAME through tn_hub_local). */
#include "hub/hub.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "obs/obs.h"
#include "base/json.h"

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...) {
  va_list a, b;
  va_start(a, fmt);
  va_copy(b, a);
  int n = vsnprintf(NULL, 0, fmt, a);
  va_end(a);
  char *s = malloc((size_t)n + 1);
  if (s) vsnprintf(s, (size_t)n + 1, fmt, b);
  va_end(b);
  return s;
}

char *tn_hub_cache_dir(const char *override) {
  if (override && *override) return tn_strdup(override);
  const char *e = getenv("HF_HUB_CACHE");
  if (e && *e) return tn_strdup(e);
  if ((e = getenv("HF_HOME")) && *e) return tn_path_join(e, "hub");
  if ((e = getenv("XDG_CACHE_HOME")) && *e) return xprintf("%s/huggingface/hub", e);
  e = getenv("HOME");
  return xprintf("%s/.cache/huggingface/hub", e && *e ? e : ".");
}

static bool env_true(const char *name) {
  const char *e = getenv(name);
  return e && (!strcmp(e, "1") || !strcasecmp(e, "true") || !strcasecmp(e, "yes") || !strcasecmp(e, "on"));
}

static bool name_ok(const char *s, size_t n) {
  if (n == 0 || n > 96 || s[0] == '.' || s[0] == '-') return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') return false;
  for (size_t i = 0; i + 1 < n; i++)
    if (s[i] == '.' && s[i + 1] == '.') return false;
  return true;
}

/* ORG/NAME[@REV] -> repo "ORG/NAME" and rev (default "main"); false when SPEC is not one */
static bool parse_spec(const char *spec, char *repo, size_t nrepo, char *rev, size_t nrev) {
  const char *at = strchr(spec, '@'), *end = at ? at : spec + strlen(spec);
  const char *slash = memchr(spec, '/', (size_t)(end - spec));
  if (!slash || memchr(slash + 1, '/', (size_t)(end - slash - 1))) return false;
  if (!name_ok(spec, (size_t)(slash - spec)) || !name_ok(slash + 1, (size_t)(end - slash - 1))) return false;
  if ((size_t)(end - spec) >= nrepo) return false;
  snprintf(repo, nrepo, "%.*s", (int)(end - spec), spec);
  const char *r = at ? at + 1 : "main";
  if (!*r || strlen(r) >= nrev || strstr(r, "..") || r[0] == '/') return false;
  snprintf(rev, nrev, "%s", r);
  return true;
}

bool tn_hub_is_repo_id(const char *spec) {
  char repo[256], rev[256];
  struct stat st;
  return spec && stat(spec, &st) != 0 && parse_spec(spec, repo, sizeof repo, rev, sizeof rev);
}

static bool is_commit(const char *s) {
  if (strlen(s) != 40) return false;
  for (int i = 0; i < 40; i++)
    if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return false;
  return true;
}

static bool is_sha256(const char *s) {
  if (strlen(s) != 64) return false;
  for (int i = 0; i < 64; i++)
    if (!isxdigit((unsigned char)s[i])) return false;
  return true;
}

/* CACHE/models--ORG--NAME */
static char *repo_dir(const char *cache, const char *repo, bool dataset) {
  char *d = xprintf("%s/%s--%s", cache, dataset ? "datasets" : "models", repo);
  char *s = d + strlen(cache) + 1;
  char *slash = strchr(s, '/');
  if (slash) { /* ORG/NAME -> ORG--NAME */
    size_t tail = strlen(slash + 1);
    d = realloc(d, strlen(d) + 2);
    s = d + strlen(cache) + 1;
    slash = strchr(s, '/');
    memmove(slash + 2, slash + 1, tail + 1);
    slash[0] = '-';
    slash[1] = '-';
  }
  return d;
}

static const char *kind(bool dataset) { return dataset ? "dataset" : "model"; }

tn_status tn_hub_local(const char *spec, const tn_hub_opts *o, char **snapshot_dir) {
  *snapshot_dir = NULL;
  tn_hub_opts def = {0};
  if (!o) o = &def;
  char repo[256], rev[256];
  if (!parse_spec(spec, repo, sizeof repo, rev, sizeof rev))
    return tn_error(TN_ERR_ARG, "'%s' is neither a folder nor a Hub repository id ORG/NAME[@REVISION]", spec);
  char *cache = tn_hub_cache_dir(o->cache_dir), *rd = repo_dir(cache, repo, o->dataset);
  char commit[300] = "";
  tn_status s = TN_OK;
  if (is_commit(rev)) snprintf(commit, sizeof commit, "%s", rev);
  else {
    char *ref = xprintf("%s/refs/%s", rd, rev), *txt = NULL;
    size_t n = 0;
    if (!tn_file_exists(ref) || tn_read_file(ref, &txt, &n) != TN_OK) {
      tn_error_clear();
      s = tn_error(TN_ERR_IO, "%s %s@%s is not in the Hugging Face cache %s (run `tunic pull %s%s`, or pass --download)",
                   kind(o->dataset), repo, rev, cache, o->dataset ? "--dataset " : "", spec);
    } else {
      while (n && isspace((unsigned char)txt[n - 1])) txt[--n] = 0;
      if (!is_commit(txt)) s = tn_error(TN_ERR_FORMAT, "%s: not a commit hash", ref);
      else snprintf(commit, sizeof commit, "%s", txt);
    }
    free(txt);
    free(ref);
  }
  if (s == TN_OK) {
    char *snap = xprintf("%s/snapshots/%s", rd, commit);
    struct stat st;
    if (stat(snap, &st) != 0 || !S_ISDIR(st.st_mode)) {
      s = tn_error(TN_ERR_IO, "%s %s@%s: snapshot %s is not in the cache (run `tunic pull %s%s`)", kind(o->dataset), repo,
                   rev, snap, o->dataset ? "--dataset " : "", spec);
      free(snap);
    } else *snapshot_dir = snap;
  }
  free(rd);
  free(cache);
  return s;
}

bool tn_hub_wanted(const char *path, bool dataset) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base);
  if (dataset) return (n > 5 && !strcmp(base + n - 5, ".json")) || (n > 6 && !strcmp(base + n - 6, ".jsonl"));
  if (base != path) return false; /* model files live at the top */
  static const char *names[] = {"config.json", "generation_config.json", "model.safetensors.index.json",
                                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                "chat_template.jinja", "chat_template.json", "adapter_config.json"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(base, names[i])) return true;
  return n > 12 && !strcmp(base + n - 12, ".safetensors");
}

/* ---------------- git blob sha1 (the etag of files not in LFS) ---------------- */

typedef struct {
  uint32_t h[5];
  uint8_t buf[64];
  uint64_t n;
} sha1_ctx;

static uint32_t rol(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
    else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
    else { f = b ^ c ^ d; k = 0xCA62C1D6; }
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d; d = c; c = rol(b, 30); b = a; a = t;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

static void sha1_update(sha1_ctx *c, const void *data, size_t n) {
  const uint8_t *p = data;
  while (n) {
    size_t off = c->n % 64, k = 64 - off < n ? 64 - off : n;
    memcpy(c->buf + off, p, k);
    c->n += k; p += k; n -= k;
    if (c->n % 64 == 0) sha1_block(c->h, c->buf);
  }
}

/* the git object id of a file's content: sha1("blob LEN\0" + content), hex */
static tn_status git_blob_sha1(const char *path, char hex[41]) {
  FILE *f = fopen(path, "rb");
  if (!f) return tn_error(TN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  sha1_ctx c = {{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0}, {0}, 0};
  char hdr[32];
  int hn = snprintf(hdr, sizeof hdr, "blob %ld", len);
  sha1_update(&c, hdr, (size_t)hn + 1); /* with the NUL */
  uint8_t buf[1 << 16];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0) sha1_update(&c, buf, k);
  fclose(f);
  uint64_t bits = c.n * 8;
  uint8_t pad = 0x80, zero = 0;
  sha1_update(&c, &pad, 1);
  while (c.n % 64 != 56) sha1_update(&c, &zero, 1);
  uint8_t lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha1_update(&c, lenb, 8);
  for (int i = 0; i < 5; i++) snprintf(hex + 8 * i, 9, "%08x", c.h[i]);
  return TN_OK;
}

/* ---------------- HTTP ---------------- */

typedef struct {
  char *buf;
  size_t n;
} membuf;

static size_t mem_write(char *p, size_t sz, size_t nm, void *ctx) {
  membuf *b = ctx;
  size_t k = sz * nm;
  if (b->n + k > (64u << 20)) return 0; /* API answers are small */
  char *nb = realloc(b->buf, b->n + k + 1);
  if (!nb) return 0;
  memcpy(nb + b->n, p, k);
  b->n += k;
  nb[b->n] = 0;
  b->buf = nb;
  return k;
}

typedef struct {
  char etag[160], linked_etag[160], commit[64], location[2048];
  long long size, linked_size;
} headers_t;

static void hval(const char *line, size_t n, const char *name, char *out, size_t nout) {
  size_t k = strlen(name);
  if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':') return;
  const char *v = line + k + 1;
  size_t m = n - k - 1;
  while (m && (*v == ' ' || *v == '\t')) { v++; m--; }
  while (m && (v[m - 1] == '\r' || v[m - 1] == '\n' || v[m - 1] == ' ')) m--;
  snprintf(out, nout, "%.*s", (int)m, v);
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ctx) {
  headers_t *h = ctx;
  size_t n = sz * nm;
  char num[32] = "";
  if (n >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after a redirect): start over */
    memset(h, 0, sizeof *h);
    h->size = h->linked_size = -1;
    return n;
  }
  hval(p, n, "ETag", h->etag, sizeof h->etag);
  hval(p, n, "X-Linked-Etag", h->linked_etag, sizeof h->linked_etag);
  hval(p, n, "X-Repo-Commit", h->commit, sizeof h->commit);
  hval(p, n, "Location", h->location, sizeof h->location);
  hval(p, n, "Content-Length", num, sizeof num);
  if (num[0]) h->size = atoll(num);
  num[0] = 0;
  hval(p, n, "X-Linked-Size", num, sizeof num);
  if (num[0]) h->linked_size = atoll(num);
  return n;
}

typedef struct {
  const char *endpoint, *token;
  bool progress;
} hub_ctx;

static CURL *easy(const hub_ctx *c, const char *url, struct curl_slist **hdrs) {
  CURL *h = curl_easy_init();
  if (!h) return NULL;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "tunic/" TN_VERSION);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer fails after 60 s */
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  *hdrs = curl_slist_append(NULL, "Accept-Encoding: identity");
  if (c->token && *c->token) {
    char *a = xprintf("Authorization: Bearer %s", c->token);
    *hdrs = curl_slist_append(*hdrs, a);
    free(a);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
  return h;
}

static tn_status http_status(long code, const char *what, const hub_ctx *c) {
  if (code == 401 || code == 403)
    return tn_error(TN_ERR_IO, "%s: HTTP %ld: %s (a gated or private repository: set HF_TOKEN to a token with access)",
                    what, code, c->token && *c->token ? "the token was refused" : "authentication required");
  if (code == 404) return tn_error(TN_ERR_IO, "%s: HTTP 404: not found (check the repository id and revision)", what);
  return tn_error(TN_ERR_IO, "%s: HTTP %ld", what, code);
}

/* URL-escape a path, keeping '/' (PATH may hold folders) */
static char *escape_path(const char *p, bool keep_slash) {
  char *o = malloc(strlen(p) * 3 + 1), *w = o;
  for (; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (isalnum(ch) || strchr("-._~", ch) || (keep_slash && ch == '/')) *w++ = (char)ch;
    else w += sprintf(w, "%%%02X", ch);
  }
  *w = 0;
  return o;
}

static tn_status repo_info(const hub_ctx *c, const char *repo, const char *rev, bool dataset, cJSON **out) {
  char *erev = escape_path(rev, false);
  char *url = xprintf("%s/api/%s/%s/revision/%s", c->endpoint, dataset ? "datasets" : "models", repo, erev);
  free(erev);
  struct curl_slist *hd = NULL;
  membuf b = {0};
  CURL *h = easy(c, url, &hd);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, mem_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  tn_status s = TN_OK;
  char what[600];
  snprintf(what, sizeof what, "%s %s@%s (%s)", kind(dataset), repo, rev, url);
  if (rc != CURLE_OK) s = tn_error(TN_ERR_IO, "%s: %s", what, curl_easy_strerror(rc));
  else if (code != 200) s = http_status(code, what, c);
  else {
    *out = cJSON_Parse(b.buf ? b.buf : "");
    cJSON *sha = tn_json_field_mut(*out, "sha");
    if (!cJSON_IsObject(*out) || !cJSON_IsString(sha) || !is_commit(sha->valuestring) ||
        !cJSON_IsArray(tn_json_field(*out, "siblings"))) {
      cJSON_Delete(*out);
      *out = NULL;
      s = tn_error(TN_ERR_FORMAT, "%s: the answer has no commit \"sha\" and \"siblings\" list", what);
    }
  }
  free(b.buf);
  curl_slist_free_all(hd);
  curl_easy_cleanup(h);
  free(url);
  return s;
}

typedef struct {
  char etag[160], commit[64];
  char *url; /* where the bytes are (the redirect's target, or the resolve URL) */
  long long size;
} file_meta;

static void norm_etag(const char *in, char *out, size_t n) {
  if (!strncmp(in, "W/", 2)) in += 2;
  size_t k = strlen(in);
  if (k >= 2 && in[0] == '"' && in[k - 1] == '"') { in++; k -= 2; }
  snprintf(out, n, "%.*s", (int)k, in);
}

static tn_status file_head(const hub_ctx *c, const char *repo, const char *commit, const char *path, bool dataset,
                           file_meta *m) {
  char *epath = escape_path(path, true);
  char *url = xprintf("%s/%s%s/resolve/%s/%s", c->endpoint, dataset ? "datasets/" : "", repo, commit, epath);
  free(epath);
  tn_status s = TN_OK;
  for (int hop = 0; hop < 8; hop++) { /* relative redirects (a renamed repo) are followed; a CDN's is not */
    headers_t hd;
    memset(&hd, 0, sizeof hd);
    hd.size = hd.linked_size = -1;
    struct curl_slist *hl = NULL;
    CURL *h = easy(c, url, &hl);
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hd);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) { s = tn_error(TN_ERR_IO, "%s: %s", url, curl_easy_strerror(rc)); break; }
    if (code >= 300 && code < 400 && hd.location[0] == '/' && !hd.linked_etag[0]) {
      char *nu = xprintf("%s%s", c->endpoint, hd.location);
      free(url);
      url = nu;
      continue;
    }
    if (code != 200 && !(code >= 300 && code < 400)) { s = http_status(code, url, c); break; }
    norm_etag(hd.linked_etag[0] ? hd.linked_etag : hd.etag, m->etag, sizeof m->etag);
    snprintf(m->commit, sizeof m->commit, "%s", hd.commit);
    m->size = hd.linked_size >= 0 ? hd.linked_size : hd.size;
    if (!m->etag[0] || strchr(m->etag, '/') || strstr(m->etag, "..")) {
      s = tn_error(TN_ERR_FORMAT, "%s: the Hub sent no usable ETag", url);
      break;
    }
    if (m->size < 0) { s = tn_error(TN_ERR_FORMAT, "%s: the Hub sent no size", url); break; }
    if (code >= 300) {
      if (hd.location[0] == '/') m->url = xprintf("%s%s", c->endpoint, hd.location);
      else m->url = tn_strdup(hd.location);
      free(url);
    } else m->url = url;
    return TN_OK;
  }
  if (s == TN_OK) s = tn_error(TN_ERR_IO, "%s: too many redirects", url);
  free(url);
  return s;
}

typedef struct {
  const char *name;
  long long base, total, shown;
  double last;
  bool on;
} progress_t;

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ut, curl_off_t un) {
  progress_t *p = ctx;
  if (!p->on) return 0;
  double t = tn_now();
  long long now = p->base + (long long)dlnow;
  if ((t - p->last < 0.2 && dlnow < dltotal) || now == p->shown) return 0;
  p->last = t;
  p->shown = now;
  int pct = p->total > 0 ? (int)(100.0 * now / p->total) : 0;
  int bars = pct * 30 / 100;
  fprintf(stderr, "\r  %-32.32s [%.*s%*s] %3d%% %8.1f/%.1f MB", p->name, bars, "##############################",
          30 - bars, "", pct, now / 1e6, p->total / 1e6);
  return 0;
}

static tn_status download(const hub_ctx *c, const file_meta *m, const char *inc, const char *path) {
  struct stat st;
  long long have = stat(inc, &st) == 0 ? (long long)st.st_size : 0;
  if (have > m->size) { unlink(inc); have = 0; }
  if (have == m->size && have > 0) return TN_OK;
  FILE *f = fopen(inc, have ? "ab" : "wb");
  if (!f) return tn_error(TN_ERR_IO, "%s: cannot open: %s", inc, strerror(errno));
  struct curl_slist *hl = NULL;
  CURL *h = easy(c, m->url, &hl);
  char range[64];
  if (have) {
    snprintf(range, sizeof range, "%lld-", have);
    curl_easy_setopt(h, CURLOPT_RANGE, range);
  }
  progress_t pr = {.name = path, .base = have, .total = m->size, .shown = -1, .on = c->progress};
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwrite);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &pr);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  if (pr.on) fputc('\n', stderr);
  bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
  fclose(f);
  if (rc == CURLE_OK && have && code == 200) { /* the server ignored the range: it sent the whole file again */
    return tn_error(TN_ERR_IO, "%s: the server did not resume at byte %lld (HTTP 200 to a Range request); "
                    "remove %s and pull again", m->url, have, inc);
  }
  if (rc != CURLE_OK)
    return tn_error(TN_ERR_IO, "%s: %s: %s (the partial file %s is kept; pull again to resume)", path, m->url,
                    curl_easy_strerror(rc), inc);
  if (code != 200 && code != 206) return http_status(code, m->url, c);
  if (!ok) return tn_error(TN_ERR_IO, "%s: write failed: %s", inc, strerror(errno));
  return TN_OK;
}

/* ../ once per folder of PATH, then ../../blobs/ETAG */
static char *link_target(const char *path, const char *etag) {
  int depth = 0;
  for (const char *p = path; *p; p++) depth += *p == '/';
  size_t n = (size_t)depth * 3 + strlen(etag) + 16;
  char *t = malloc(n), *w = t;
  for (int i = 0; i < depth; i++) w += sprintf(w, "../");
  sprintf(w, "../../blobs/%s", etag);
  return t;
}

static tn_status mkdirs_for(const char *file) {
  char *d = tn_strdup(file), *sl = strrchr(d, '/');
  tn_status s = TN_OK;
  if (sl) { *sl = 0; s = tn_mkdirs(d); }
  free(d);
  return s;
}

/* CACHE/.locks/REPO_FOLDER/ETAG.lock held with flock while a blob is written: the lock file
 * huggingface_hub takes (filelock uses flock on Unix), so the two tools never write one blob at once */
static int lock_blob(const char *rd, const char *etag) {
  const char *slash = strrchr(rd, '/');
  char *lock = xprintf("%.*s/.locks/%s/%s.lock", (int)(slash - rd), rd, slash + 1, etag);
  int fd = -1;
  if (mkdirs_for(lock) == TN_OK) fd = open(lock, O_RDWR | O_CREAT, 0644);
  tn_error_clear();
  if (fd >= 0 && flock(fd, LOCK_EX) != 0) { close(fd); fd = -1; }
  free(lock);
  return fd; /* -1: no lock (read-only cache root, ...): go on without */
}

static tn_status fetch_file(const hub_ctx *c, const char *rd, const char *repo, const char *commit, const char *path,
                            bool dataset, bool quiet) {
  file_meta m = {0};
  TN_TRY(file_head(c, repo, commit, path, dataset, &m));
  tn_status s = TN_OK;
  const int lock = lock_blob(rd, m.etag);
  if (m.commit[0] && strcmp(m.commit, commit))
    s = tn_error(TN_ERR_FORMAT, "%s: X-Repo-Commit %s differs from the revision's commit %s", path, m.commit, commit);
  char *blob = xprintf("%s/blobs/%s", rd, m.etag), *inc = xprintf("%s.incomplete", blob);
  char *snap = xprintf("%s/snapshots/%s/%s", rd, commit, path);
  struct stat st;
  const bool cached = s == TN_OK && stat(blob, &st) == 0 && (long long)st.st_size == m.size;
  if (s == TN_OK && !cached) {
    if (!quiet) fprintf(stderr, "tunic pull: %s (%.1f MB)\n", path, m.size / 1e6);
    s = mkdirs_for(blob);
    if (s == TN_OK) s = download(c, &m, inc, path);
    if (s == TN_OK && stat(inc, &st) == 0 && (long long)st.st_size != m.size) {
      s = tn_error(TN_ERR_IO, "%s: downloaded %lld bytes, the Hub said %lld (the partial file is kept; pull again to resume)",
                   path, (long long)st.st_size, m.size);
    }
    if (s == TN_OK && is_sha256(m.etag)) { /* LFS files: the etag is the content's sha256 */
      char hex[65];
      uint64_t nb = 0;
      s = tn_sha256_file(inc, hex, &nb);
      if (s == TN_OK && strcasecmp(hex, m.etag)) {
        unlink(inc);
        s = tn_error(TN_ERR_FORMAT, "%s: sha256 %s does not match the Hub's %s (download removed; pull again)", path, hex,
                     m.etag);
      }
    }
    if (s == TN_OK && is_commit(m.etag)) { /* other files: the etag is the git blob sha1 */
      char hex[41];
      s = git_blob_sha1(inc, hex);
      if (s == TN_OK && strcmp(hex, m.etag)) {
        unlink(inc);
        s = tn_error(TN_ERR_FORMAT, "%s: git blob sha1 %s does not match the Hub's etag %s (download removed; pull again)",
                     path, hex, m.etag);
      }
    }
    if (s == TN_OK && rename(inc, blob) != 0) s = tn_error(TN_ERR_IO, "%s: rename: %s", blob, strerror(errno));
    if (s == TN_OK) s = tn_fsync_path(blob);
  } else if (s == TN_OK && !quiet) fprintf(stderr, "tunic pull: %s (cached)\n", path);
  if (s == TN_OK) s = mkdirs_for(snap);
  if (s == TN_OK) {
    char *target = link_target(path, m.etag);
    char cur[4096];
    ssize_t k = readlink(snap, cur, sizeof cur - 1);
    if (k >= 0) cur[k] = 0;
    if (k < 0 || strcmp(cur, target)) {
      unlink(snap);
      if (symlink(target, snap) != 0) s = tn_error(TN_ERR_IO, "%s: symlink: %s", snap, strerror(errno));
    }
    free(target);
  }
  if (lock >= 0) close(lock); /* releases the flock */
  free(blob);
  free(inc);
  free(snap);
  free(m.url);
  return s;
}

static char *read_token(void) {
  const char *e = getenv("HF_TOKEN");
  if (e && *e) return tn_strdup(e);
  const char *home = getenv("HF_HOME");
  char *path = home && *home ? tn_path_join(home, "token") : NULL;
  if (!path) {
    const char *h = getenv("HOME");
    path = xprintf("%s/.cache/huggingface/token", h ? h : ".");
  }
  char *t = NULL;
  size_t n = 0;
  if (tn_file_exists(path) && tn_read_file(path, &t, &n) == TN_OK)
    while (n && isspace((unsigned char)t[n - 1])) t[--n] = 0;
  tn_error_clear();
  free(path);
  return t;
}

tn_status tn_hub_pull(const char *spec, const tn_hub_opts *o, char **snapshot_dir) {
  *snapshot_dir = NULL;
  tn_hub_opts def = {0};
  if (!o) o = &def;
  if (env_true("HF_HUB_OFFLINE")) {
    tn_status s = tn_hub_local(spec, o, snapshot_dir);
    return s == TN_OK ? s : tn_error_prefix(s, "HF_HUB_OFFLINE is set (no network)");
  }
  char repo[256], rev[256];
  if (!parse_spec(spec, repo, sizeof repo, rev, sizeof rev))
    return tn_error(TN_ERR_ARG, "'%s' is not a Hub repository id ORG/NAME[@REVISION]", spec);
  const char *ep = o->endpoint ? o->endpoint : getenv("HF_ENDPOINT");
  char *endpoint = tn_strdup(ep && *ep ? ep : "https://huggingface.co");
  for (size_t n = strlen(endpoint); n && endpoint[n - 1] == '/';) endpoint[--n] = 0;
  char *token = o->token ? tn_strdup(o->token) : read_token();
  hub_ctx c = {.endpoint = endpoint, .token = token, .progress = o->progress};
  curl_global_init(CURL_GLOBAL_DEFAULT);
  cJSON *info = NULL;
  char *cache = tn_hub_cache_dir(o->cache_dir), *rd = repo_dir(cache, repo, o->dataset);
  tn_status s = repo_info(&c, repo, rev, o->dataset, &info);
  int nfiles = 0;
  if (s == TN_OK) {
    const char *commit = tn_json_field(info, "sha")->valuestring;
    cJSON *sib;
    cJSON_ArrayForEach(sib, tn_json_field(info, "siblings")) {
      cJSON *fn = tn_json_field_mut(sib, "rfilename");
      if (!cJSON_IsString(fn)) continue;
      const char *p = fn->valuestring;
      if (!*p || p[0] == '/' || strstr(p, "..") || (!o->all_files && !tn_hub_wanted(p, o->dataset))) continue;
      s = fetch_file(&c, rd, repo, commit, p, o->dataset, o->quiet);
      if (s != TN_OK) break;
      nfiles++;
    }
    if (s == TN_OK && nfiles == 0)
      s = tn_error(TN_ERR_FORMAT, "%s %s@%s has no files tunic reads (%s)", kind(o->dataset), repo, rev,
                   o->dataset ? ".json/.jsonl" : "config.json, *.safetensors, tokenizer files");
    if (s == TN_OK && strcmp(rev, commit)) { /* refs/REV names the commit */
      char *ref = xprintf("%s/refs/%s", rd, rev);
      s = mkdirs_for(ref);
      if (s == TN_OK) s = tn_write_file_atomic(ref, commit, strlen(commit));
      free(ref);
    }
    if (s == TN_OK) *snapshot_dir = xprintf("%s/snapshots/%s", rd, commit);
  }
  cJSON_Delete(info);
  free(rd);
  free(cache);
  free(endpoint);
  free(token);
  return s;
}

/* ---------------- the data file of a dataset snapshot ---------------- */

typedef struct { char **v; int n, cap; } pathlist;

static int plist_add(pathlist *l, const char *p) {
  if (l->n == l->cap) {
    int c = l->cap ? 2 * l->cap : 16;
    char **v = realloc(l->v, sizeof *v * c);
    if (!v) return -1;
    l->v = v;
    l->cap = c;
  }
  if (!(l->v[l->n] = strdup(p))) return -1;
  l->n++;
  return 0;
}

/* every .json/.jsonl file under dir (relative paths), metadata files left out */
static int collect_data(const char *root, const char *rel, pathlist *l, int depth) {
  char *dir = rel[0] ? xprintf("%s/%s", root, rel) : strdup(root);
  if (!dir) return -1;
  DIR *d = opendir(dir);
  free(dir);
  if (!d) return 0;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char *r = rel[0] ? xprintf("%s/%s", rel, e->d_name) : strdup(e->d_name);
    char *full = r ? xprintf("%s/%s", root, r) : NULL;
    struct stat st;
    if (!r || !full) rc = -1;
    else if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) { if (depth < 8) rc = collect_data(root, r, l, depth + 1); }
    else if (tn_hub_wanted(r, true) && strncmp(e->d_name, "dataset_info", 12) && strcmp(e->d_name, "dataset_dict.json") &&
             strcmp(e->d_name, "state.json"))
      rc = plist_add(l, r);
    free(r);
    free(full);
  }
  closedir(d);
  return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* whether rel path p belongs to split `sp`: a path component equal to it, or a file name that
 * starts with it followed by '.', '-' or '_' (train.jsonl, train-00000-of-00001.json) */
static bool in_split(const char *p, const char *sp) {
  size_t k = strlen(sp);
  for (const char *c = p; *c;) {
    const char *e = strchr(c, '/');
    size_t n = e ? (size_t)(e - c) : strlen(c);
    if ((n == k || (n > k && strchr(".-_", c[k]))) && !strncmp(c, sp, k)) return true;
    if (!e) break;
    c = e + 1;
  }
  return false;
}

tn_status tn_hub_data_file(const char *snapshot, const char *sub, char **path) {
  *path = NULL;
  if (sub && *sub) {
    char *p = xprintf("%s/%s", snapshot, sub);
    struct stat st;
    if (!p) return tn_error(TN_ERR_NOMEM, "out of memory");
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) { *path = p; return TN_OK; }
    free(p);
  }
  pathlist l = {0};
  if (collect_data(snapshot, "", &l, 0) != 0) {
    for (int i = 0; i < l.n; i++) free(l.v[i]);
    free(l.v);
    return tn_error(TN_ERR_NOMEM, "out of memory listing %s", snapshot);
  }
  qsort(l.v, l.n, sizeof *l.v, cmp_str);
  const char *want = sub && *sub ? sub : (l.n > 1 ? "train" : NULL);
  int hit = -1, nhit = 0;
  for (int i = 0; i < l.n; i++)
    if (!want || in_split(l.v[i], want)) { if (nhit++ == 0) hit = i; }
  tn_status s = TN_OK;
  if (nhit == 1) {
    if (!(*path = xprintf("%s/%s", snapshot, l.v[hit]))) s = tn_error(TN_ERR_NOMEM, "out of memory");
  } else {
    char list[1024] = "";
    size_t o = 0;
    for (int i = 0; i < l.n && o + 8 < sizeof list; i++)
      o += snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", l.v[i]);
    if (o >= sizeof list) strcpy(list + sizeof list - 5, "...");
    if (l.n == 0) s = tn_error(TN_ERR_IO, "dataset snapshot %s holds no .json/.jsonl file", snapshot);
    else if (nhit == 0)
      s = tn_error(TN_ERR_IO, "dataset snapshot %s: no file of split or path '%s' among: %s", snapshot, want, list);
    else
      s = tn_error(TN_ERR_ARG, "dataset snapshot %s: %d files match %s%s%s; name one with ORG/NAME:PATH (files: %s)",
                   snapshot, nhit, want ? "split '" : "", want ? want : "", want ? "'" : "", list);
  }
  for (int i = 0; i < l.n; i++) free(l.v[i]);
  free(l.v);
  return s;
}
