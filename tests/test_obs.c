/* test_obs.c - the observability layer: CRC32C (hardware vs table vs published check values),
 * SHA-256 against Python's hashlib, TensorBoard event files read back by an independent Python
 * reader (tests/obs/tfevents.py: own bitwise CRC32C and protobuf decoding), metrics.jsonl,
 * the Chrome trace, files surviving SIGKILL, run_manifest.json and the progress output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>
#include "obs/obs.h"

static char *mktmp(void) {
  char *d = strdup("/tmp/tn_obs_XXXXXX");
  assert_non_null(mkdtemp(d));
  return d;
}
static void rmtree(char *d) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  assert_int_equal(system(cmd), 0);
  free(d);
}
static const char *src_dir(void) {
  const char *s = getenv("TN_SRC");
  assert_non_null(s);
  return s;
}
/* Run a shell command, return its stdout (malloc'd) and exit status. */
static char *run_cmd(const char *cmd, int *status) {
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  size_t k;
  while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
    n += k;
    if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
  }
  buf[n] = 0;
  int st = pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return buf;
}
/* The single events.out.tfevents.* file in DIR. */
static char *find_events(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  char *found = NULL;
  int count = 0;
  while ((e = readdir(d))) {
    if (!strncmp(e->d_name, "events.out.tfevents.", 20)) {
      found = tn_path_join(dir, e->d_name);
      count++;
    }
  }
  closedir(d);
  assert_int_equal(count, 1);
  return found;
}
static void check_tfevents(const char *path, const char *expect_json_path) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/obs/tfevents.py '%s' --expect '%s' 2>&1", src_dir(), path,
           expect_json_path);
  int st;
  char *out = run_cmd(cmd, &st);
  if (st != 0) fprintf(stderr, "tfevents.py: %s\n", out);
  assert_int_equal(st, 0);
  free(out);
  /* the same file through Google's protobuf runtime (skipped if python3-protobuf is missing) */
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/obs/tfevents_pb.py '%s' '%s' 2>&1", src_dir(), path,
           expect_json_path);
  out = run_cmd(cmd, &st);
  if (st == 77) printf("%s", out);
  else {
    if (st != 0) fprintf(stderr, "tfevents_pb.py: %s\n", out);
    assert_int_equal(st, 0);
  }
  free(out);
}
/* Write the expected scalars [[step, tag, value], ...] as JSON (NaN -> null, inf -> "inf"). */
static void write_expect(const char *path, int n, const int64_t *steps, const char *const *tags, const float *vals) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputc('[', f);
  for (int i = 0; i < n; i++) {
    fprintf(f, "%s[%lld,", i ? "," : "", (long long)steps[i]);
    tn_json_write_string(f, tags[i]);
    if (isnan(vals[i])) fputs(",null]", f);
    else if (isinf(vals[i])) fprintf(f, ",\"%s\"]", vals[i] > 0 ? "inf" : "-inf");
    else fprintf(f, ",%.9g]", (double)vals[i]);
  }
  fputs("]\n", f);
  fclose(f);
}

/* ---------------- CRC32C ---------------- */

static void test_crc32c(void **state) {
  (void)state;
  /* published check values: "123456789" (CRC catalogue), RFC 3720 B.4 vectors */
  assert_int_equal(tn_crc32c_sw(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(tn_crc32c(0, "123456789", 9), 0xE3069283u);
  uint8_t z[32] = {0}, ff[32], inc[32];
  memset(ff, 0xff, 32);
  for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
  assert_int_equal(tn_crc32c_sw(0, z, 32), 0x8A9136AAu);
  assert_int_equal(tn_crc32c_hw(0, z, 32), 0x8A9136AAu);
  assert_int_equal(tn_crc32c_hw(0, ff, 32), 0x62A8AB43u);
  assert_int_equal(tn_crc32c_hw(0, inc, 32), 0x46DD794Eu);
  assert_int_equal(tn_crc32c(0, "", 0), 0u);
  /* hardware == table on every length and alignment, and chaining works */
  uint8_t buf[300];
  tn_rng r;
  tn_rng_seed(&r, 7);
  for (int i = 0; i < 300; i++) buf[i] = (uint8_t)tn_rng_u64(&r);
  for (int off = 0; off < 8; off++)
    for (int n = 0; n + off <= 300; n += 7) {
      uint32_t a = tn_crc32c_sw(0, buf + off, n), b = tn_crc32c_hw(0, buf + off, n);
      assert_int_equal(a, b);
      int h = n / 3;
      assert_int_equal(tn_crc32c_hw(tn_crc32c_hw(0, buf + off, h), buf + off + h, n - h), a);
    }
  printf("crc32c: hardware path %s\n", tn_crc32c_has_hw() ? "SSE4.2" : "absent (table only)");
}

/* ---------------- SHA-256 vs hashlib ---------------- */

static void test_sha256_hw_vs_sw(void **state) {
  (void)state;
  enum { NB = 37 };
  uint8_t *buf = malloc(64 * NB + 8);
  tn_rng r;
  tn_rng_seed(&r, 11);
  for (int i = 0; i < 64 * NB + 8; i++) buf[i] = (uint8_t)tn_rng_u64(&r);
  for (int trial = 0; trial < 20; trial++) {
    uint32_t a[8], b[8];
    for (int i = 0; i < 8; i++) a[i] = b[i] = (uint32_t)tn_rng_u64(&r); /* any state, not only the IV */
    int nb = 1 + trial % NB, off = trial % 8;                      /* unaligned input too */
    tn_sha256_blocks_sw(a, buf + off, nb);
    tn_sha256_blocks_hw(b, buf + off, nb);
    assert_memory_equal(a, b, sizeof a);
  }
  free(buf);
  printf("sha256: hardware path %s\n", tn_sha256_has_hw() ? "SHA extensions" : "absent (portable only)");
}

static void test_sha256_hashlib(void **state) {
  (void)state;
  char *dir = mktmp();
  size_t sizes[] = {0, 1, 3, 55, 56, 63, 64, 65, 119, 128, 1000, (1 << 20) + 3, 3 * (1 << 20) + 17};
  int ns = (int)(sizeof sizes / sizeof sizes[0]);
  tn_rng r;
  tn_rng_seed(&r, 42);
  char cmd[4096];
  int k = snprintf(cmd, sizeof cmd,
                   "/usr/bin/python3 -c 'import hashlib,sys\nfor p in sys.argv[1:]: print(hashlib.sha256(open(p,\"rb\").read()).hexdigest())'");
  char hex[ns][65];
  for (int i = 0; i < ns; i++) {
    uint8_t *d = malloc(sizes[i] + 1);
    for (size_t j = 0; j < sizes[i]; j++) d[j] = i == 2 ? (uint8_t)"abc"[j] : (uint8_t)tn_rng_u64(&r);
    char name[64];
    snprintf(name, sizeof name, "f%d", i);
    char *p = tn_path_join(dir, name);
    assert_int_equal(tn_write_file_atomic(p, d, sizes[i]), TN_OK);
    uint64_t bytes = 0;
    assert_int_equal(tn_sha256_file(p, hex[i], &bytes), TN_OK);
    assert_int_equal(bytes, sizes[i]);
    /* streaming in odd pieces gives the same digest as one call */
    tn_sha256_ctx c;
    tn_sha256_init(&c);
    for (size_t j = 0; j < sizes[i];) {
      size_t piece = 1 + (j * 7919) % 97;
      if (piece > sizes[i] - j) piece = sizes[i] - j;
      tn_sha256_update(&c, d + j, piece);
      j += piece;
    }
    uint8_t dig[32];
    char h2[65];
    tn_sha256_final(&c, dig);
    tn_sha256_hex(dig, h2);
    assert_string_equal(h2, hex[i]);
    k += snprintf(cmd + k, sizeof cmd - k, " '%s'", p);
    free(p);
    free(d);
  }
  int st;
  char *out = run_cmd(cmd, &st);
  assert_int_equal(st, 0);
  char *line = out;
  for (int i = 0; i < ns; i++) {
    char *nl = strchr(line, '\n');
    assert_non_null(nl);
    *nl = 0;
    assert_string_equal(line, hex[i]);
    line = nl + 1;
  }
  /* FIPS 180-2 appendix B.1 "abc" */
  assert_string_equal(hex[2], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  free(out);
  rmtree(dir);
}

/* ---------------- TensorBoard ---------------- */

static void test_tensorboard(void **state) {
  (void)state;
  char *dir = mktmp();
  char *sub = tn_path_join(dir, "tb/run1"); /* created by tn_tb_open */
  tn_tb *tb = NULL;
  assert_int_equal(tn_tb_open(&tb, sub), TN_OK);
  const char *p = tn_tb_path(tb);
  assert_non_null(strstr(p, "/events.out.tfevents."));
  char long_tag[300];
  memset(long_tag, 'x', sizeof long_tag - 1);
  memcpy(long_tag, "long/", 5);
  long_tag[sizeof long_tag - 1] = 0; /* 299 bytes: a 2-byte length varint */
  enum { N = 20 };
  int64_t steps[N];
  const char *tags[N];
  float vals[N];
  int n = 0;
#define PUT(S, T, V) (steps[n] = (S), tags[n] = (T), vals[n] = (V), n++)
  PUT(0, "loss", 2.5f);
  PUT(1, "loss", 1.25f);
  PUT(1, "train/lr", 3e-4f);
  PUT(2, "loss", NAN);
  PUT(3, "loss", INFINITY);
  PUT(4, "loss", -INFINITY);
  PUT(5, "grad_norm", -0.0f);
  PUT(6, "tiny", 1e-38f);
  PUT(6, "zero", 0.0f);
  PUT(1000000, "big step", 123456.789f);
  PUT(-3, "negative step", 7.0f);
  PUT(INT64_C(5000000000), "step>2^32", 1.0f);
  PUT(7, long_tag, 0.1f);
  PUT(8, "ünïcode/λ", 42.0f);
  for (int i = 0; i < n; i++) assert_int_equal(tn_tb_scalar(tb, tags[i], steps[i], vals[i]), TN_OK);
  /* several values in one event */
  const char *mt[3] = {"a", "b", "c"};
  float mv[3] = {1, 2, 3};
  assert_int_equal(tn_tb_scalars(tb, 9, 3, mt, mv), TN_OK);
  for (int i = 0; i < 3; i++) PUT(9, mt[i], mv[i]);
#undef PUT
  assert_int_equal(tn_tb_flush(tb), TN_OK);
  char *path = strdup(p);
  char *exp = tn_path_join(dir, "expect.json");
  write_expect(exp, n, steps, tags, vals);
  check_tfevents(path, exp); /* readable while still open (flushed) */
  tn_tb_close(tb);
  check_tfevents(path, exp);
  /* corrupting one byte of data must be caught by the reader's CRC check */
  FILE *f = fopen(path, "r+b");
  fseek(f, -6, SEEK_END);
  int c = fgetc(f);
  fseek(f, -6, SEEK_END);
  fputc(c ^ 0x40, f);
  fclose(f);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/obs/tfevents.py '%s' 2>&1", src_dir(), path);
  int st;
  char *out = run_cmd(cmd, &st);
  assert_int_not_equal(st, 0);
  assert_non_null(strstr(out, "CRC"));
  free(out);
  /* a second writer in the same directory does not clobber the first */
  tn_tb *tb2 = NULL;
  assert_int_equal(tn_tb_open(&tb2, sub), TN_OK);
  assert_string_not_equal(tn_tb_path(tb2), path);
  tn_tb_close(tb2);
  free(path);
  free(exp);
  free(sub);
  rmtree(dir);
}

/* ---------------- metrics.jsonl ---------------- */

static cJSON *read_lines(const char *path, int *n) {
  char *text;
  size_t len;
  assert_int_equal(tn_read_file(path, &text, &len), TN_OK);
  assert_true(len == 0 || text[len - 1] == '\n'); /* only whole lines */
  cJSON *arr = cJSON_CreateArray();
  *n = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *j = cJSON_Parse(line);
    if (!j) fprintf(stderr, "bad JSON line: %s\n", line);
    assert_non_null(j);
    cJSON_AddItemToArray(arr, j);
    (*n)++;
  }
  free(text);
  return arr;
}

/* A resumed run marks its restart step with a SessionLog START event (TensorBoard
 * then drops the old file's events from that step on). */
static void test_session_start(void **state) {
  (void)state;
  char *dir = mktmp();
  tn_tb *tb = NULL;
  assert_int_equal(tn_tb_open(&tb, dir), TN_OK);
  char *path = strdup(tn_tb_path(tb));
  assert_int_equal(tn_tb_scalar(tb, "loss", 3, 1.5f), TN_OK);
  assert_int_equal(tn_tb_session_start(tb, 4), TN_OK);
  assert_int_equal(tn_tb_scalar(tb, "loss", 4, 1.0f), TN_OK);
  tn_tb_close(tb);
  int64_t steps[2] = {3, 4};
  const char *tags[2] = {"loss", "loss"};
  float vals[2] = {1.5f, 1.0f};
  char *exp = tn_path_join(dir, "expect.json");
  write_expect(exp, 2, steps, tags, vals);
  check_tfevents(path, exp);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/obs/tfevents_pb.py '%s' '%s' --starts 4 2>&1", src_dir(), path,
           exp);
  int st;
  char *out = run_cmd(cmd, &st);
  if (st != 77) {
    if (st != 0) fprintf(stderr, "tfevents_pb.py: %s\n", out);
    assert_int_equal(st, 0);
  }
  free(out);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/obs/tfevents_pb.py '%s' '%s' --starts 5 2>&1", src_dir(), path,
           exp);
  out = run_cmd(cmd, &st);
  if (st != 77) assert_int_equal(st, 1); /* the check can fail: a wrong step is caught */
  free(out);
  free(exp);
  free(path);
  rmtree(dir);
}

static void test_metrics(void **state) {
  (void)state;
  char *dir = mktmp();
  tn_metrics *m = NULL;
  assert_int_equal(tn_metrics_open(&m, dir), TN_OK);
  const char *keys[4] = {"loss", "lr", "tok_s", "weird \"key\"\n"};
  double v0[4] = {2.0625, 3e-4, 4321, 1.0 / 3.0};
  double v1[4] = {NAN, INFINITY, -INFINITY, 1e300};
  assert_int_equal(tn_metrics_log(m, 1, 4, keys, v0), TN_OK);
  assert_int_equal(tn_metrics_log(m, 2, 4, keys, v1), TN_OK);
  tn_metrics_begin(m, 3);
  tn_metrics_add(m, "eval_loss", 1.5);
  tn_metrics_add_str(m, "split", "eval\t\"x\"");
  tn_metrics_add_str(m, "none", NULL);
  assert_int_equal(tn_metrics_commit(m), TN_OK);
  /* the file is complete on disk before close */
  char *path = tn_path_join(dir, "metrics.jsonl");
  int n;
  cJSON *lines = read_lines(path, &n);
  assert_int_equal(n, 3);
  cJSON *l0 = cJSON_GetArrayItem(lines, 0), *l1 = cJSON_GetArrayItem(lines, 1), *l2 = cJSON_GetArrayItem(lines, 2);
  assert_int_equal(cJSON_GetObjectItem(l0, "step")->valuedouble, 1);
  for (int i = 0; i < 4; i++) {
    cJSON *it = cJSON_GetObjectItemCaseSensitive(l0, keys[i]);
    assert_non_null(it);
    assert_true(it->valuedouble == v0[i]); /* exact round trip */
  }
  for (int i = 0; i < 3; i++) assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(l1, keys[i])));
  assert_true(cJSON_GetObjectItemCaseSensitive(l1, keys[3])->valuedouble == 1e300);
  assert_string_equal(cJSON_GetObjectItem(l2, "split")->valuestring, "eval\t\"x\"");
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(l2, "none")));
  assert_true(cJSON_GetObjectItem(l2, "eval_loss")->valuedouble == 1.5);
  cJSON_Delete(lines);
  assert_int_equal(tn_metrics_close(m), TN_OK);
  /* the TensorBoard mirror: every numeric field, as float, strings left out */
  int64_t steps[9] = {1, 1, 1, 1, 2, 2, 2, 2, 3};
  const char *tags[9] = {keys[0], keys[1], keys[2], keys[3], keys[0], keys[1], keys[2], keys[3], "eval_loss"};
  float vals[9];
  for (int i = 0; i < 4; i++) vals[i] = (float)v0[i], vals[4 + i] = (float)v1[i];
  vals[8] = 1.5f;
  char *exp = tn_path_join(dir, "expect.json");
  write_expect(exp, 9, steps, tags, vals);
  char *ev = find_events(dir);
  check_tfevents(ev, exp);
  /* resume: lines after step 1 are dropped */
  assert_int_equal(tn_metrics_truncate_after(dir, 1), TN_OK);
  lines = read_lines(path, &n);
  assert_int_equal(n, 1);
  cJSON_Delete(lines);
  assert_int_equal(tn_metrics_open_jsonl(&m, dir), TN_OK);
  assert_int_equal(tn_metrics_log(m, 2, 1, keys, v0), TN_OK);
  assert_int_equal(tn_metrics_close(m), TN_OK);
  lines = read_lines(path, &n);
  assert_int_equal(n, 2);
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(lines, 1), "step")->valueint, 2);
  cJSON_Delete(lines);
  /* NULL handles are no-ops */
  assert_int_equal(tn_metrics_log(NULL, 1, 4, keys, v0), TN_OK);
  assert_int_equal(tn_tb_scalar(NULL, "x", 1, 1), TN_OK);
  free(ev);
  free(exp);
  free(path);
  rmtree(dir);
}

/* ---------------- trace ---------------- */

static void check_trace_json(const char *path, bool add_bracket, int want_x) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c 'import json,sys\n"
           "t=open(sys.argv[1]).read()\n"
           "t=t+\"]\" if sys.argv[2]==\"1\" else t\n"
           "ev=json.loads(t)\n"
           "x=[e for e in ev if e[\"ph\"]==\"X\"]\n"
           "assert all(isinstance(e[\"ts\"],float) and e[\"dur\"]>=0 and \"pid\" in e and \"tid\" in e for e in x)\n"
           "print(len(x))' '%s' %d",
           path, add_bracket);
  int st;
  char *out = run_cmd(cmd, &st);
  if (st) fprintf(stderr, "%s\n", out);
  assert_int_equal(st, 0);
  assert_int_equal(atoi(out), want_x);
  free(out);
}

static void busy(double s) {
  double t = tn_now();
  while (tn_now() - t < s) {}
}

static void test_trace(void **state) {
  (void)state;
  char *dir = mktmp();
  char *path = tn_path_join(dir, "sub/trace.json");
  tn_trace *t = NULL;
  assert_int_equal(tn_trace_open(&t, path), TN_OK);
  tn_trace_begin(t, "step");
  tn_trace_begin(t, "rollout \"quoted\"");
  busy(0.002);
  tn_trace_end(t);
  tn_trace_begin(t, "update");
  busy(0.001);
  tn_trace_end(t);
  tn_trace_end(t);
  double a = tn_now();
  busy(0.001);
  tn_trace_span(t, "manual", a, tn_now());
  tn_trace_counter(t, "loss", 1.5);
  tn_trace_end(t); /* unbalanced end: ignored */
  assert_int_equal(tn_trace_close(t), TN_OK);
  check_trace_json(path, false, 4);
  /* nesting and durations, read back with cJSON */
  char *text;
  assert_int_equal(tn_read_file(path, &text, NULL), TN_OK);
  cJSON *ev = cJSON_Parse(text);
  free(text);
  assert_non_null(ev);
  double ts[4], dur[4];
  const char *names[4] = {"rollout \"quoted\"", "update", "step", "manual"};
  int k = 0;
  cJSON *e;
  cJSON_ArrayForEach(e, ev) {
    if (strcmp(cJSON_GetObjectItem(e, "ph")->valuestring, "X")) continue;
    assert_string_equal(cJSON_GetObjectItem(e, "name")->valuestring, names[k]);
    ts[k] = cJSON_GetObjectItem(e, "ts")->valuedouble;
    dur[k] = cJSON_GetObjectItem(e, "dur")->valuedouble;
    assert_int_equal(cJSON_GetObjectItem(e, "pid")->valueint, getpid());
    k++;
  }
  assert_true(dur[0] >= 2000 && dur[1] >= 1000 && dur[3] >= 1000);
  assert_true(ts[2] <= ts[0] && ts[0] + dur[0] <= ts[1] && ts[1] + dur[1] <= ts[2] + dur[2] + 1e-3);
  cJSON_Delete(ev);
  free(path);
  rmtree(dir);
}

/* ---------------- SIGKILL: what was logged survives ---------------- */

static void test_killed_run(void **state) {
  (void)state;
  char *dir = mktmp();
  char *tpath = tn_path_join(dir, "trace.json");
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    tn_metrics *m = NULL;
    tn_trace *t = NULL;
    if (tn_metrics_open(&m, dir) != TN_OK || tn_trace_open(&t, tpath) != TN_OK) _exit(3);
    for (int s = 1; s <= 5; s++) {
      tn_trace_begin(t, "step");
      const char *k[2] = {"loss", "lr"};
      double v[2] = {1.0 / s, 1e-3};
      tn_metrics_log(m, s, 2, k, v);
      tn_trace_end(t);
    }
    if (write(fds[1], "x", 1) != 1) _exit(4);
    for (;;) pause(); /* killed here: nothing closed */
  }
  char c;
  assert_int_equal(read(fds[0], &c, 1), 1);
  kill(pid, SIGKILL);
  int st;
  waitpid(pid, &st, 0);
  assert_true(WIFSIGNALED(st));
  close(fds[0]);
  close(fds[1]);
  char *mp = tn_path_join(dir, "metrics.jsonl");
  int n;
  cJSON *lines = read_lines(mp, &n);
  assert_int_equal(n, 5);
  cJSON_Delete(lines);
  int64_t steps[10];
  const char *tags[10];
  float vals[10];
  for (int s = 1; s <= 5; s++) {
    steps[2 * s - 2] = steps[2 * s - 1] = s;
    tags[2 * s - 2] = "loss", tags[2 * s - 1] = "lr";
    vals[2 * s - 2] = (float)(1.0 / s), vals[2 * s - 1] = 1e-3f;
  }
  char *exp = tn_path_join(dir, "expect.json");
  write_expect(exp, 10, steps, tags, vals);
  char *ev = find_events(dir);
  check_tfevents(ev, exp);
  check_trace_json(tpath, true, 5); /* the unterminated array + "]" is valid JSON */
  free(ev);
  free(exp);
  free(mp);
  free(tpath);
  rmtree(dir);
}

/* ---------------- manifest ---------------- */

static void test_manifest(void **state) {
  (void)state;
  char *dir = mktmp();
  char *model = tn_path_join(dir, "model");
  assert_int_equal(tn_mkdirs(model), TN_OK);
  char *mcfg = tn_path_join(model, "config.json");
  const char *cfgtext = "{\"model_type\": \"llama\", \"hidden_size\": 64}\n";
  assert_int_equal(tn_write_file_atomic(mcfg, cfgtext, strlen(cfgtext)), TN_OK);
  char *data = tn_path_join(dir, "train.jsonl");
  const char *dtext = "{\"text\": \"hello\"}\n{\"text\": \"world\"}\n";
  assert_int_equal(tn_write_file_atomic(data, dtext, strlen(dtext)), TN_OK);
  char *run = tn_path_join(dir, "runs/a");
  cJSON *cfg = cJSON_Parse("{\"lr\": 0.0003, \"lora_rank\": 16, \"model\": \"m\"}");
  tn_manifest_file models[1] = {{"model", model}};
  tn_manifest_file dfiles[1] = {{"train", data}};
  char *argv[3] = {"sft", "--lr", "3e-4"};
  cJSON *extra = cJSON_Parse("{\"status\": \"running\"}");
  tn_manifest_info info = {.command = "sft", .config = cfg, .seed = 1234, .models = models, .nmodels = 1,
                           .data = dfiles, .ndata = 1, .argc = 3, .argv = argv, .extra = extra};
  char id[64];
  assert_int_equal(tn_manifest_write(run, &info, id), TN_OK);
  char *mpath = tn_path_join(run, "run_manifest.json");
  char *text;
  assert_int_equal(tn_read_file(mpath, &text, NULL), TN_OK);
  cJSON *j = cJSON_Parse(text);
  free(text);
  assert_non_null(j);
  assert_string_equal(cJSON_GetObjectItem(j, "run_id")->valuestring, id);
  assert_int_equal(strlen(id), 22); /* yyyymmdd-HHMMSS-xxxxxx */
  const char *t = cJSON_GetObjectItem(j, "start_time")->valuestring;
  assert_int_equal(strlen(t), 20);
  assert_true(t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[16] == ':' && t[19] == 'Z');
  assert_string_equal(cJSON_GetObjectItem(j, "command")->valuestring, "sft");
  assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "running");
  char ver[64];
  snprintf(ver, sizeof ver, "%s (%s)", cJSON_GetObjectItem(j, "tunic_version")->valuestring,
           cJSON_GetObjectItem(j, "git_commit")->valuestring);
  assert_string_equal(ver, tn_version());
  assert_int_equal(cJSON_GetObjectItem(j, "seed")->valuedouble, 1234);
  assert_true(cJSON_Compare(cJSON_GetObjectItem(j, "config"), cfg, 1));
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "argv")), 3);
  char host[256];
  gethostname(host, sizeof host);
  assert_string_equal(cJSON_GetObjectItem(j, "host")->valuestring, host);
  cJSON *m0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "models"), 0);
  cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0);
  assert_string_equal(cJSON_GetObjectItem(d0, "path")->valuestring, data);
  assert_int_equal(cJSON_GetObjectItem(d0, "bytes")->valuedouble, strlen(dtext));
  /* hashes against hashlib */
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c 'import hashlib,sys\nfor p in sys.argv[1:]: print(hashlib.sha256(open(p,\"rb\").read()).hexdigest())' '%s' '%s'",
           mcfg, data);
  int st;
  char *out = run_cmd(cmd, &st);
  assert_int_equal(st, 0);
  char want[2][65];
  assert_int_equal(sscanf(out, "%64s %64s", want[0], want[1]), 2);
  free(out);
  assert_string_equal(cJSON_GetObjectItem(m0, "config_sha256")->valuestring, want[0]);
  assert_string_equal(cJSON_GetObjectItem(d0, "sha256")->valuestring, want[1]);
  cJSON_Delete(j);
  /* update a field atomically; no temporary files left behind */
  assert_int_equal(tn_manifest_set(run, "status", cJSON_CreateString("completed")), TN_OK);
  assert_int_equal(tn_read_file(mpath, &text, NULL), TN_OK);
  j = cJSON_Parse(text);
  free(text);
  assert_string_equal(cJSON_GetObjectItem(j, "status")->valuestring, "completed");
  assert_string_equal(cJSON_GetObjectItem(j, "run_id")->valuestring, id);
  cJSON_Delete(j);
  DIR *dd = opendir(run);
  struct dirent *de;
  int files = 0;
  while ((de = readdir(dd)))
    if (de->d_name[0] != '.') files++;
  closedir(dd);
  assert_int_equal(files, 1);
  /* config given as JSON text; a missing data file is an error naming it */
  info.config = NULL;
  info.config_json = "{\"a\": 1}";
  dfiles[0].path = "/nonexistent/data.jsonl";
  assert_int_not_equal(tn_manifest_write(run, &info, NULL), TN_OK);
  assert_non_null(strstr(tn_last_error(), "/nonexistent/data.jsonl"));
  info.ndata = 0;
  info.config_json = "{not json";
  assert_int_equal(tn_manifest_write(run, &info, NULL), TN_ERR_FORMAT);
  cJSON_Delete(cfg);
  cJSON_Delete(extra);
  free(mpath);
  free(run);
  free(data);
  free(mcfg);
  free(model);
  rmtree(dir);
}

/* ---------------- progress ---------------- */

static void test_progress(void **state) {
  (void)state;
  char buf[32];
  tn_format_duration(80, buf, sizeof buf);
  assert_string_equal(buf, "1m20s");
  tn_format_duration(45.2, buf, sizeof buf);
  assert_string_equal(buf, "45s");
  tn_format_duration(2 * 3600 + 3 * 60 + 5, buf, sizeof buf);
  assert_string_equal(buf, "2h03m");
  tn_format_duration(NAN, buf, sizeof buf);
  assert_string_equal(buf, "?");

  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  tn_progress *p = tn_progress_new(f, 4, NULL, TN_PROGRESS_PLAIN);
  tn_progress_set_interval(p, 0); /* a line every update */
  tn_progress_update(p, 1, 1.234, 3e-4, 4321.4, NULL);
  busy(0.01);
  tn_progress_update(p, 2, 1.1, 2.5e-4, 4000, "reward 0.5");
  tn_progress_update(p, 4, 0.9, 0.01, NAN, NULL);
  tn_progress_finish(p);
  fclose(f);
  /* line 1: no ETA yet (no rate); line 2: an ETA; last: elapsed */
  char *l1 = text, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
  assert_memory_equal(l1, "step 1/4 loss 1.234 lr 3e-4 4321 tok/s\n", strlen("step 1/4 loss 1.234 lr 3e-4 4321 tok/s\n"));
  assert_memory_equal(l2, "step 2/4 loss 1.1 lr 2.5e-4 4000 tok/s reward 0.5 eta ", strlen("step 2/4 loss 1.1 lr 2.5e-4 4000 tok/s reward 0.5 eta "));
  assert_memory_equal(l3, "step 4/4 loss 0.9 lr 0.01 elapsed ", strlen("step 4/4 loss 0.9 lr 0.01 elapsed "));
  assert_null(strchr(l3, '\n') + 1 < text + len ? strchr(strchr(l3, '\n') + 1, '\n') : NULL); /* finish adds nothing */
  free(text);

  /* plain mode with a long interval prints the first and the last step only */
  f = open_memstream(&text, &len);
  p = tn_progress_new(f, 100, "sft", TN_PROGRESS_PLAIN);
  for (int s = 1; s <= 100; s++) tn_progress_update(p, s, 1.0, NAN, NAN, NULL);
  tn_progress_finish(p);
  fclose(f);
  int lines = 0;
  for (char *c = text; *c; c++) lines += *c == '\n';
  assert_int_equal(lines, 2);
  assert_memory_equal(text, "sft: step 1/100 loss 1\n", strlen("sft: step 1/100 loss 1\n"));
  free(text);

  /* bar mode: redrawn in place with \r, ends with a newline */
  f = open_memstream(&text, &len);
  p = tn_progress_new(f, 10, "grpo", TN_PROGRESS_BAR);
  tn_progress_update(p, 1, 2.0, 1e-3, 100, NULL);
  tn_progress_update(p, 10, 1.0, 1e-3, 100, NULL);
  tn_progress_finish(p);
  fclose(f);
  assert_true(text[0] == '\r');
  assert_non_null(strstr(text, "grpo 10/10 100% ["));
  assert_non_null(strstr(text, "##########]"));
  assert_true(text[len - 1] == '\n');
  free(text);

  /* off: nothing */
  f = open_memstream(&text, &len);
  p = tn_progress_new(f, 10, NULL, TN_PROGRESS_OFF);
  tn_progress_update(p, 1, 2.0, 1e-3, 100, NULL);
  tn_progress_finish(p);
  fclose(f);
  assert_int_equal(len, 0);
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c),     cmocka_unit_test(test_sha256_hashlib), cmocka_unit_test(test_sha256_hw_vs_sw), cmocka_unit_test(test_tensorboard),
      cmocka_unit_test(test_session_start), cmocka_unit_test(test_metrics),    cmocka_unit_test(test_trace),          cmocka_unit_test(test_killed_run),
      cmocka_unit_test(test_manifest),   cmocka_unit_test(test_progress),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
