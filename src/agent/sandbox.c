/* sandbox.c - the `python` tool: code run by /usr/bin/python3 -I in a child process with
 * rlimits (CPU, address space, processes, file size, open files), no network (its own network
 * namespace; seccomp denying non-unix sockets where namespaces are not allowed), writes only
 * in a fresh temporary directory (Landlock, when the kernel has it), a cleared environment, a
 * wall-clock timeout (its process group is killed) and an output cap. As root the child drops
 * to nobody (65534) first. docs/agentic.md lists the limits and what is not contained.
 * Not for: the toolset plumbing (tool.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "agent/tool.h"
#include "agent/tool_int.h"

#define NOBODY 65534
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

static int g_mode; /* 1 netns, 2 seccomp */
static int g_landlock_abi;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Probe in a throwaway child whether a network namespace can be made (after dropping to
 * nobody when root, as the sandbox does). */
static void probe(void) {
  const char *force = getenv("TN_SANDBOX_NET");
  g_landlock_abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (g_landlock_abi < 0) g_landlock_abi = 0;
  if (force && !strcmp(force, "seccomp")) { g_mode = 2; return; }
  pid_t pid = fork();
  if (pid == 0) {
    if (getuid() == 0) { if (unshare(CLONE_NEWNET) == 0) _exit(0); _exit(1); }
    _exit(unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0 ? 0 : 1);
  }
  int status = 1;
  if (pid > 0) waitpid(pid, &status, 0);
  g_mode = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 1 : 2;
}

const char *tn_python_sandbox_mode(void) {
  pthread_once(&g_once, probe);
  return g_mode == 1 ? "netns" : "seccomp";
}

/* seccomp: socket() of any family but AF_UNIX fails with EACCES, io_uring_setup with ENOSYS
 * (it can make sockets too); every other syscall is allowed. */
static int install_seccomp(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),       /* 0 */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),                   /* 1 */
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),                           /* 2 */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),         /* 3 */
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),                         /* 4: x32 ABI */
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),                           /* 5 */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),                /* 6 */
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),                         /* 7 */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 4),                        /* 8 -> 9 or 13 */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),    /* 9 */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 1, 0),                            /* 10 -> 12 or 11 */
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),                         /* 11 */
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                                  /* 12 */
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                                  /* 13 */
  };
  struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* Landlock: no file may be written, made or removed outside DIR (reading stays allowed). */
static int install_landlock(int dirfd) {
  if (g_landlock_abi < 1) return 0;
  __u64 w = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
            LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
            LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
            LANDLOCK_ACCESS_FS_MAKE_SYM;
  if (g_landlock_abi >= 2) w |= LANDLOCK_ACCESS_FS_REFER;
  if (g_landlock_abi >= 3) w |= LANDLOCK_ACCESS_FS_TRUNCATE;
  struct landlock_ruleset_attr ra = {.handled_access_fs = w};
  int rs = (int)syscall(SYS_landlock_create_ruleset, &ra, sizeof ra, 0);
  if (rs < 0) return -1;
  struct landlock_path_beneath_attr pb = {.allowed_access = w, .parent_fd = dirfd};
  int dn = open("/dev/null", O_PATH | O_CLOEXEC);
  struct landlock_path_beneath_attr pn = {.allowed_access = LANDLOCK_ACCESS_FS_WRITE_FILE, .parent_fd = dn};
  if (syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0) return -1;
  if (dn >= 0) syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pn, 0);
  int r = (int)syscall(SYS_landlock_restrict_self, rs, 0);
  close(rs);
  if (dn >= 0) close(dn);
  return r;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb; (void)flag; (void)f;
  remove(p);
  return 0;
}

/* Processes of UID now (RLIMIT_NPROC counts every process of the real uid). */
static long count_procs(uid_t uid) {
  DIR *d = opendir("/proc");
  long n = 0;
  if (!d) return 0;
  struct dirent *e;
  char path[300];
  struct stat st;
  while ((e = readdir(d)))
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9') {
      snprintf(path, sizeof path, "/proc/%s", e->d_name);
      if (stat(path, &st) == 0 && st.st_uid == uid) n++;
    }
  closedir(d);
  return n;
}

static const char *signame(int s) {
  switch (s) {
    case SIGKILL: return "SIGKILL";
    case SIGXCPU: return "SIGXCPU: CPU time limit";
    case SIGXFSZ: return "SIGXFSZ: file size limit";
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGSYS: return "SIGSYS: a forbidden system call";
    default: return "a signal";
  }
}

tn_status tn_python_run(const tn_tool_opts *o, const char *code, double timeout_s, tn_tool_result *r) {
  pthread_once(&g_once, probe);
  int mode = g_mode;
  char dir[] = "/tmp/tunic-py-XXXXXX";
  if (!mkdtemp(dir)) return tn_error(TN_ERR_IO, "python tool: cannot make a temporary directory: %s", strerror(errno));
  bool root = geteuid() == 0;
  tn_status st = TN_OK;
  char *script = tn_path_join(dir, "main.py");
  int devnull = -1, dirfd = -1, pp[2] = {-1, -1};
  char *buf = NULL;
  if (!script) { st = TN_ERR_NOMEM; goto done; }
  { /* a scratch file in a directory of our own: no fsync, no rename needed */
    int fd = open(script, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    size_t n = strlen(code), off = 0;
    while (fd >= 0 && off < n) {
      ssize_t w = write(fd, code + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      off += (size_t)w;
    }
    if (fd < 0 || off < n || close(fd) != 0) {
      st = tn_error(TN_ERR_IO, "python tool: cannot write %s: %s", script, strerror(errno));
      if (fd >= 0 && off < n) close(fd);
      goto done;
    }
  }
  if (root && chown(dir, NOBODY, NOBODY) != 0) { st = tn_error(TN_ERR_IO, "python tool: chown %s: %s", dir, strerror(errno)); goto done; }
  devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (devnull < 0 || dirfd < 0 || pipe2(pp, O_CLOEXEC) != 0) { st = tn_error(TN_ERR_IO, "python tool: %s", strerror(errno)); goto done; }
  size_t cap = o->output_cap ? o->output_cap : 16384;
  buf = malloc(cap + 2);
  if (!buf) { st = TN_ERR_NOMEM; goto done; }
  double t = timeout_s > 0 ? timeout_s : o->timeout_s > 0 ? o->timeout_s : 10;
  rlim_t cpu = (rlim_t)(o->python_cpu_s > 0 ? o->python_cpu_s : t) + 1;
  rlim_t nproc = (rlim_t)(o->python_nproc > 0 ? o->python_nproc : 16);
  if (!root) nproc += (rlim_t)count_procs(getuid());
  struct rlimit lim[5] = {
      {cpu, cpu + 1},
      {(rlim_t)(o->python_mem_mb ? o->python_mem_mb : 1024) << 20, (rlim_t)(o->python_mem_mb ? o->python_mem_mb : 1024) << 20},
      {nproc, nproc},
      {(rlim_t)(o->python_fsize_mb ? o->python_fsize_mb : 16) << 20, (rlim_t)(o->python_fsize_mb ? o->python_fsize_mb : 16) << 20},
      {(rlim_t)(o->python_nofile > 0 ? o->python_nofile : 64), (rlim_t)(o->python_nofile > 0 ? o->python_nofile : 64)},
  };
  int res[5] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE};
  const char *py = o->python ? o->python : "/usr/bin/python3";
  char *argv[] = {(char *)"python3", (char *)"-I", (char *)"-u", (char *)"-B", (char *)"main.py", NULL};
  char home[64], tmp[64];
  snprintf(home, sizeof home, "HOME=%s", dir);
  snprintf(tmp, sizeof tmp, "TMPDIR=%s", dir);
  char *envp[] = {(char *)"PATH=/usr/bin:/bin", home, tmp, (char *)"LANG=C.UTF-8", NULL};
  double t0 = tn_now();
  pid_t pid = fork();
  if (pid < 0) { st = tn_error(TN_ERR_IO, "python tool: fork failed: %s", strerror(errno)); goto done; }
  if (pid == 0) {
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    dup2(devnull, 0);
    dup2(pp[1], 1);
    dup2(pp[1], 2);
    int m = mode;
    if (root) {
      if (m == 1 && unshare(CLONE_NEWNET) != 0) m = 2;
      if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
        dprintf(2, "sandbox: cannot drop to uid %d\n", NOBODY);
        _exit(126);
      }
    } else if (m == 1 && unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
      m = 2;
    }
    for (int i = 0; i < 5; i++)
      if (setrlimit(res[i], &lim[i]) != 0) { dprintf(2, "sandbox: setrlimit %d failed\n", res[i]); _exit(126); }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { dprintf(2, "sandbox: no_new_privs failed\n"); _exit(126); }
    if (install_landlock(dirfd) != 0) { dprintf(2, "sandbox: landlock failed\n"); _exit(126); }
    if (m == 2 && install_seccomp() != 0) { dprintf(2, "sandbox: seccomp failed\n"); _exit(126); }
    if (fchdir(dirfd) != 0) _exit(126);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    execve(py, argv, envp);
    dprintf(2, "sandbox: cannot run %s\n", py);
    _exit(127);
  }
  setpgid(pid, pid);
  close(pp[1]);
  pp[1] = -1;
  size_t len = 0;
  bool over = false, timed_out = false, exited = false, eof = false;
  int status = 0;
  double deadline = t0 + t;
  fcntl(pp[0], F_SETFL, O_NONBLOCK);
  char sink[65536];
  while (!exited || !eof) {
    if (!eof) {
      double left = deadline - tn_now();
      struct pollfd pf = {pp[0], POLLIN, 0};
      int wait_ms = exited ? 20 : (int)(left * 1000) < 50 ? ((int)(left * 1000) > 0 ? (int)(left * 1000) : 0) : 50;
      int pr = poll(&pf, 1, wait_ms);
      if (pr > 0) {
        for (;;) {
          ssize_t n = len <= cap ? read(pp[0], buf + len, cap + 1 - len) : read(pp[0], sink, sizeof sink);
          if (n > 0) {
            if (len <= cap) len += (size_t)n;
            if (len > cap && !over) { over = true; kill(-pid, SIGKILL); }
            continue;
          }
          if (n == 0) eof = true;
          break;
        }
      } else if (pr == 0 && exited) {
        eof = true; /* a leftover holds the pipe: stop reading */
      }
    }
    if (!exited) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) { exited = true; kill(-pid, SIGKILL); }
      else if (tn_now() >= deadline && !timed_out) { timed_out = true; kill(-pid, SIGKILL); }
      else if (eof) { waitpid(pid, &status, 0); exited = true; kill(-pid, SIGKILL); }
    }
  }
  /* whatever is left of its process group (a fork bomb's children forking while they are
   * killed): kill again until the group is gone, for at most ~50 ms */
  for (int i = 0; i < 50 && kill(-pid, SIGKILL) == 0; i++) usleep(1000);
  r->ms = (tn_now() - t0) * 1000;
  if (len > cap) len = cap;
  buf[len] = 0;
  r->content = tn_strndup(buf, len);
  char why[200];
  why[0] = 0;
  if (over) snprintf(why, sizeof why, "output over %zu bytes (the program was stopped)", cap);
  else if (timed_out) snprintf(why, sizeof why, "timed out after %g s (the program was stopped)", t);
  else if (WIFSIGNALED(status)) snprintf(why, sizeof why, "killed by %s (signal %d)", signame(WTERMSIG(status)), WTERMSIG(status));
  else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(status));
  if (!why[0]) {
    r->ok = true;
  } else {
    r->ok = false;
    /* the error: the reason, then the output's last 1500 bytes (a traceback ends there) */
    size_t tail = len > 1500 ? 1500 : len;
    size_t n = strlen(why) + tail + 8;
    r->error = malloc(n);
    if (r->error) snprintf(r->error, n, "%s%s%.*s", why, tail ? ":\n" : "", (int)tail, buf + len - tail);
  }
  if (!r->content || (!r->ok && !r->error)) st = TN_ERR_NOMEM;
done:
  if (pp[0] >= 0) close(pp[0]);
  if (pp[1] >= 0) close(pp[1]);
  if (devnull >= 0) close(devnull);
  if (dirfd >= 0) close(dirfd);
  free(buf);
  free(script);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return st;
}
