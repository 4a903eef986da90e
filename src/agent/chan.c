/* chan.c - JSON-lines channel to a child process (chan.h): fork/exec of /bin/sh -c, a reader
 * thread matching responses to waiting requests by id, timeouts, child death, garbage lines.
 * Not for: what the messages mean (env.c, mcp.c). */
#define _GNU_SOURCE
#include "agent/chan.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct pending {
  long id;
  const char *method;
  bool done;
  tn_status st;
  cJSON *result;
  char *err;
  struct pending *next;
} pending;

struct tn_chan {
  pid_t pid;
  int in_fd, out_fd, err_fd, wake[2];
  bool jsonrpc;
  char *what;
  pthread_t reader;
  bool reader_started;
  pthread_mutex_t mu, wmu;
  pthread_cond_t cv;
  pending *head;
  long next_id;
  bool dead;
  char *dead_msg;
};

/* The last ~600 bytes of the child's stderr, one line ("" when none). */
static void stderr_tail(tn_chan *c, char *buf, size_t cap) {
  buf[0] = 0;
  off_t end = lseek(c->err_fd, 0, SEEK_END);
  if (end <= 0) return;
  size_t want = cap - 16 < 600 ? cap - 16 : 600;
  off_t from = end > (off_t)want ? end - (off_t)want : 0;
  ssize_t n = pread(c->err_fd, buf + 10, (size_t)(end - from), from);
  if (n <= 0) return;
  memcpy(buf, "; stderr: ", 10);
  buf[10 + n] = 0;
  for (char *p = buf + 10; *p; p++) if (*p == '\n' || *p == '\r') *p = (p[1] ? ' ' : 0);
}

static void finish(pending *p, tn_status st, cJSON *result, const char *err) {
  p->done = true;
  p->st = st;
  p->result = result;
  p->err = err ? strdup(err) : NULL;
}

static pending *take(tn_chan *c, long id) {
  for (pending **pp = &c->head; *pp; pp = &(*pp)->next)
    if ((*pp)->id == id && !(*pp)->done) return *pp;
  return NULL;
}

static void reply_unknown(tn_chan *c, const cJSON *id) {
  /* a request from the child (MCP servers may ping): answer ping, refuse the rest */
  cJSON *o = cJSON_CreateObject();
  if (!o) return;
  if (c->jsonrpc) cJSON_AddStringToObject(o, "jsonrpc", "2.0");
  cJSON_AddItemToObject(o, "id", cJSON_Duplicate(id, 1));
  cJSON_AddItemToObject(o, "result", cJSON_CreateObject());
  char *t = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!t) return;
  pthread_mutex_lock(&c->wmu);
  size_t n = strlen(t);
  t[n] = 0;
  (void)!send(c->in_fd, t, n, MSG_NOSIGNAL);
  (void)!send(c->in_fd, "\n", 1, MSG_NOSIGNAL);
  pthread_mutex_unlock(&c->wmu);
  cJSON_free(t);
}

static void handle_line(tn_chan *c, char *line, size_t n) {
  while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
  char *s = line;
  while (*s == ' ' || *s == '\t') s++;
  if (!*s) return;
  cJSON *o = cJSON_ParseWithLength(s, n - (size_t)(s - line));
  pthread_mutex_lock(&c->mu);
  if (!o || !cJSON_IsObject(o)) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s wrote a line that is not a JSON object: %.200s", c->what, s);
    long id = -1;
    const char *q = strstr(s, "\"id\"");
    if (q) { q += 4; while (*q == ' ' || *q == ':') q++; if (*q >= '0' && *q <= '9') id = strtol(q, NULL, 10); }
    pending *p = id >= 0 ? take(c, id) : NULL;
    if (!p) { /* the oldest request in flight (the list is newest first) */
      for (pending *x = c->head; x; x = x->next) if (!x->done) p = x;
    }
    if (p) finish(p, TN_ERR_IO, NULL, msg);
    else tn_warn("%s", msg);
    cJSON_Delete(o);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return;
  }
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
  const cJSON *method = cJSON_GetObjectItemCaseSensitive(o, "method");
  if (cJSON_IsString(method)) { /* a request or notification from the child */
    pthread_mutex_unlock(&c->mu);
    if (id && !cJSON_IsNull(id)) reply_unknown(c, id);
    cJSON_Delete(o);
    return;
  }
  pending *p = cJSON_IsNumber(id) ? take(c, (long)id->valuedouble) : NULL;
  if (!p) {
    tn_log(TN_LOG_DEBUG, "%s: response to no request in flight (late, or an unknown id): %.200s", c->what, s);
  } else {
    cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    cJSON *res = cJSON_DetachItemFromObjectCaseSensitive(o, "result");
    char msg[600];
    if (err && !cJSON_IsNull(err)) {
      const cJSON *m = cJSON_IsObject(err) ? cJSON_GetObjectItemCaseSensitive(err, "message") : err;
      char *t = cJSON_IsString(m) ? NULL : cJSON_PrintUnformatted(err);
      snprintf(msg, sizeof msg, "%s answered %s with an error: %.400s", c->what, p->method, t ? t : m->valuestring);
      cJSON_free(t);
      cJSON_Delete(res);
      finish(p, TN_ERR_IO, NULL, msg);
    } else if (!res) {
      snprintf(msg, sizeof msg, "%s answered %s with neither \"result\" nor \"error\": %.200s", c->what, p->method, s);
      finish(p, TN_ERR_IO, NULL, msg);
    } else {
      finish(p, TN_OK, res, NULL);
    }
    pthread_cond_broadcast(&c->cv);
  }
  pthread_mutex_unlock(&c->mu);
  cJSON_Delete(o);
}

static void *reader_main(void *arg) {
  tn_chan *c = arg;
  size_t cap = 1 << 16, len = 0, max = (size_t)64 << 20;
  char *buf = malloc(cap);
  bool overlong = false;
  while (buf) {
    struct pollfd pf[2] = {{c->out_fd, POLLIN, 0}, {c->wake[0], POLLIN, 0}};
    if (poll(pf, 2, -1) < 0) { if (errno == EINTR) continue; break; }
    if (pf[1].revents) break;
    if (len + 4096 + 1 > cap) {
      if (cap >= max) { overlong = true; len = 0; } /* drop a line over 64 MB */
      else { char *nb = realloc(buf, cap * 2); if (!nb) break; buf = nb; cap *= 2; }
    }
    ssize_t n = read(c->out_fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t start = 0;
    len += (size_t)n;
    for (size_t i = len - (size_t)n; i < len; i++) {
      if (buf[i] != '\n') continue;
      buf[i] = 0;
      if (!overlong) handle_line(c, buf + start, i - start);
      overlong = false;
      start = i + 1;
    }
    memmove(buf, buf + start, len - start);
    len -= start;
  }
  free(buf);
  /* EOF: the child closed its stdout (exited, most likely); peek at its status without
   * reaping it (tn_chan_free reaps) */
  siginfo_t si;
  memset(&si, 0, sizeof si);
  for (int i = 0; i < 50; i++) {
    if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == c->pid) break;
    usleep(10000);
  }
  char msg[900], tail[700];
  stderr_tail(c, tail, sizeof tail);
  if (si.si_pid == c->pid && si.si_code == CLD_EXITED)
    snprintf(msg, sizeof msg, "%s exited (status %d)%s", c->what, si.si_status, tail);
  else if (si.si_pid == c->pid)
    snprintf(msg, sizeof msg, "%s was killed by signal %d%s", c->what, si.si_status, tail);
  else
    snprintf(msg, sizeof msg, "%s closed its stdout%s", c->what, tail);
  pthread_mutex_lock(&c->mu);
  c->dead = true;
  c->dead_msg = strdup(msg);
  for (pending *p = c->head; p; p = p->next) if (!p->done) finish(p, TN_ERR_IO, NULL, msg);
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

tn_status tn_chan_start(tn_chan **out, const char *cmd, const char *cwd, const char *what, bool jsonrpc) {
  *out = NULL;
  if (!cmd || !*cmd) return tn_error(TN_ERR_ARG, "%s: empty command", what);
  tn_chan *c = calloc(1, sizeof *c);
  if (!c) return TN_ERR_NOMEM;
  c->in_fd = c->out_fd = c->err_fd = c->wake[0] = c->wake[1] = -1;
  c->pid = -1;
  c->jsonrpc = jsonrpc;
  c->what = strdup(what);
  c->next_id = 1;
  pthread_mutex_init(&c->mu, NULL);
  pthread_mutex_init(&c->wmu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  int sv[2] = {-1, -1}, op[2] = {-1, -1};
  char errpath[] = "/tmp/tunic-stderr-XXXXXX";
  if (!c->what || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || pipe2(op, O_CLOEXEC) || pipe2(c->wake, O_CLOEXEC) ||
      (c->err_fd = mkostemp(errpath, O_CLOEXEC)) < 0) {
    tn_status st = tn_error(TN_ERR_IO, "%s: cannot set up pipes: %s", what, strerror(errno));
    if (sv[0] >= 0) { close(sv[0]); close(sv[1]); }
    if (op[0] >= 0) { close(op[0]); close(op[1]); }
    tn_chan_free(c);
    return st;
  }
  unlink(errpath);
  shutdown(sv[0], SHUT_RD);
  pid_t pid = fork();
  if (pid < 0) {
    tn_status st = tn_error(TN_ERR_IO, "%s: fork failed: %s", what, strerror(errno));
    close(sv[0]); close(sv[1]); close(op[0]); close(op[1]);
    tn_chan_free(c);
    return st;
  }
  if (pid == 0) {
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    dup2(sv[1], 0);
    dup2(op[1], 1);
    dup2(c->err_fd, 2);
    if (cwd && chdir(cwd) != 0) { dprintf(2, "cannot enter %s: %s\n", cwd, strerror(errno)); _exit(127); }
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  setpgid(pid, pid);
  c->pid = pid;
  close(sv[1]);
  close(op[1]);
  c->in_fd = sv[0];
  c->out_fd = op[0];
  if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
    tn_chan_free(c);
    return tn_error(TN_ERR_IO, "%s: cannot start the reader thread", what);
  }
  c->reader_started = true;
  *out = c;
  return TN_OK;
}

static tn_status send_obj(tn_chan *c, cJSON *o) {
  char *t = cJSON_PrintUnformatted(o);
  if (!t) return tn_error(TN_ERR_NOMEM, "%s: cannot encode a request", c->what);
  size_t n = strlen(t);
  pthread_mutex_lock(&c->wmu);
  tn_status st = TN_OK;
  const char *p = t;
  size_t left = n;
  int nl = 0;
  while (st == TN_OK && (left || !nl)) {
    if (!left) { p = "\n"; left = 1; nl = 1; }
    ssize_t w = send(c->in_fd, p, left, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) st = tn_error(TN_ERR_IO, "%s: cannot write to it: %s", c->what, strerror(errno));
    else { p += w; left -= (size_t)w; }
    if (!left && nl) break;
  }
  pthread_mutex_unlock(&c->wmu);
  cJSON_free(t);
  return st;
}

static cJSON *message(tn_chan *c, long id, const char *method, const cJSON *params) {
  cJSON *o = cJSON_CreateObject();
  long before = tn_alloc_failures();
  if (!o) return NULL;
  if (c->jsonrpc) cJSON_AddStringToObject(o, "jsonrpc", "2.0");
  if (id > 0) cJSON_AddNumberToObject(o, "id", (double)id);
  cJSON_AddStringToObject(o, "method", method);
  if (params) cJSON_AddItemToObject(o, "params", cJSON_Duplicate(params, 1));
  if (tn_alloc_failures() != before) { cJSON_Delete(o); return NULL; }
  return o;
}

tn_status tn_chan_notify(tn_chan *c, const char *method, const cJSON *params) {
  cJSON *o = message(c, 0, method, params);
  if (!o) return tn_error(TN_ERR_NOMEM, "%s: out of memory", c->what);
  tn_status st = send_obj(c, o);
  cJSON_Delete(o);
  return st;
}

bool tn_chan_alive(tn_chan *c) {
  pthread_mutex_lock(&c->mu);
  bool a = !c->dead;
  pthread_mutex_unlock(&c->mu);
  return a;
}

tn_status tn_chan_request(tn_chan *c, const char *method, const cJSON *params, double timeout_s, cJSON **result) {
  *result = NULL;
  pending *p = calloc(1, sizeof *p);
  if (!p) return TN_ERR_NOMEM;
  p->method = method;
  pthread_mutex_lock(&c->mu);
  if (c->dead) {
    tn_status st = tn_error(TN_ERR_IO, "%s", c->dead_msg ? c->dead_msg : "the child process is gone");
    pthread_mutex_unlock(&c->mu);
    free(p);
    return st;
  }
  p->id = c->next_id++;
  p->next = c->head;
  c->head = p;
  pthread_mutex_unlock(&c->mu);
  cJSON *o = message(c, p->id, method, params);
  tn_status st = o ? send_obj(c, o) : tn_error(TN_ERR_NOMEM, "%s: out of memory", c->what);
  cJSON_Delete(o);
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  if (st == TN_ERR_IO) { /* the child is gone (EPIPE): wait a little for the reader to say why */
    struct timespec w = dl;
    w.tv_nsec += 500000000L;
    if (w.tv_nsec >= 1000000000L) { w.tv_sec++; w.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&c->mu);
    while (!c->dead && pthread_cond_timedwait(&c->cv, &c->mu, &w) != ETIMEDOUT) {}
    if (c->dead && c->dead_msg) st = tn_error(TN_ERR_IO, "%s", c->dead_msg);
    pthread_mutex_unlock(&c->mu);
  }
  double t = timeout_s > 0 ? timeout_s : 30;
  dl.tv_sec += (time_t)t;
  dl.tv_nsec += (long)((t - (double)(time_t)t) * 1e9);
  if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
  pthread_mutex_lock(&c->mu);
  while (st == TN_OK && !p->done) {
    if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT && !p->done) {
      st = tn_error(TN_ERR_LIMIT, "%s did not answer %s (id %ld) within %g s", c->what, method, p->id, t);
      break;
    }
  }
  if (st == TN_OK) {
    st = p->st;
    if (st != TN_OK) tn_error(st, "%s", p->err ? p->err : "request failed");
    else *result = p->result;
  } else {
    cJSON_Delete(p->result);
  }
  for (pending **pp = &c->head; *pp; pp = &(*pp)->next)
    if (*pp == p) { *pp = p->next; break; }
  pthread_mutex_unlock(&c->mu);
  if (st == TN_ERR_LIMIT && c->jsonrpc) { /* MCP: tell the server to stop working on it */
    cJSON *cp = cJSON_CreateObject();
    if (cp && cJSON_AddNumberToObject(cp, "requestId", (double)p->id) && cJSON_AddStringToObject(cp, "reason", "timeout")) {
      char keep[1024];
      snprintf(keep, sizeof keep, "%s", tn_last_error());
      tn_chan_notify(c, "notifications/cancelled", cp);
      tn_error(TN_ERR_LIMIT, "%s", keep);
    }
    cJSON_Delete(cp);
  }
  free(p->err);
  free(p);
  return st;
}

void tn_chan_free(tn_chan *c) {
  if (!c) return;
  if (c->in_fd >= 0) { close(c->in_fd); c->in_fd = -1; }
  if (c->pid > 0) {
    int status;
    pid_t w = 0;
    for (int i = 0; i < 100 && (w = waitpid(c->pid, &status, WNOHANG)) == 0; i++) usleep(10000);
    if (w == 0) {
      kill(-c->pid, SIGTERM);
      for (int i = 0; i < 50 && (w = waitpid(c->pid, &status, WNOHANG)) == 0; i++) usleep(10000);
      if (w == 0) { kill(-c->pid, SIGKILL); waitpid(c->pid, &status, 0); }
    }
    kill(-c->pid, SIGKILL); /* anything it left behind in its group */
  }
  if (c->reader_started) {
    (void)!write(c->wake[1], "x", 1);
    pthread_join(c->reader, NULL);
  }
  if (c->pid > 0) waitpid(c->pid, NULL, WNOHANG);
  if (c->out_fd >= 0) close(c->out_fd);
  if (c->err_fd >= 0) close(c->err_fd);
  if (c->wake[0] >= 0) { close(c->wake[0]); close(c->wake[1]); }
  for (pending *p = c->head, *n; p; p = n) { n = p->next; cJSON_Delete(p->result); free(p->err); free(p); }
  pthread_mutex_destroy(&c->mu);
  pthread_mutex_destroy(&c->wmu);
  pthread_cond_destroy(&c->cv);
  free(c->dead_msg);
  free(c->what);
  free(c);
}
