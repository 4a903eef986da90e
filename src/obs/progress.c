/* progress.c - training progress on stderr: a bar redrawn in place on a terminal, plain
 * periodic lines otherwise (logs, CI), both with step/total, loss, lr, tokens/s and ETA.
 * Not for: metrics files (metrics.c) - this is for people watching, not for programs. */
#include "obs/obs.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct tn_progress {
  FILE *out;
  int mode;
  int64_t total;
  char label[48];
  double interval;   /* plain mode: seconds between lines */
  double t0;         /* time of the first update */
  int64_t step0;     /* step of the first update */
  bool started;
  double last_draw;
  int64_t last_printed_step;
  bool bar_visible;
  /* last values, for finish */
  int64_t step;
  double loss, lr, tok_s;
  char extra[160];
};

void tn_format_duration(double s, char *buf, size_t n) {
  if (!isfinite(s) || s < 0) { snprintf(buf, n, "?"); return; }
  long t = (long)(s + 0.5);
  if (t < 60) snprintf(buf, n, "%lds", t);
  else if (t < 3600) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
  else if (t < 86400) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else snprintf(buf, n, "%ldd%02ldh", t / 86400, (t % 86400) / 3600);
}

/* 3e-4 style for small numbers, %.4g otherwise */
static void fmt_lr(double v, char *buf, size_t n) {
  if (v != 0 && fabs(v) < 1e-2) {
    char t[32];
    snprintf(t, sizeof t, "%.2e", v); /* "3.00e-04" */
    char *e = strchr(t, 'e');
    char mant[16];
    size_t ml = (size_t)(e - t);
    memcpy(mant, t, ml);
    mant[ml] = 0;
    char *dot = strchr(mant, '.');
    if (dot) {
      char *z = mant + strlen(mant) - 1;
      while (z > dot && *z == '0') *z-- = 0;
      if (z == dot) *z = 0;
    }
    int ex = atoi(e + 1);
    snprintf(buf, n, "%se%d", mant, ex);
  } else snprintf(buf, n, "%.4g", v);
}

tn_progress *tn_progress_new(FILE *out, int64_t total, const char *label, int mode) {
  tn_progress *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->out = out ? out : stderr;
  p->total = total;
  if (label) snprintf(p->label, sizeof p->label, "%s", label);
  p->interval = 10.0;
  p->last_printed_step = -1;
  p->loss = p->lr = p->tok_s = NAN;
  if (mode == TN_PROGRESS_AUTO) {
    const char *env = getenv("TN_PROGRESS");
    const char *term = getenv("TERM");
    if (env && !strcmp(env, "bar")) mode = TN_PROGRESS_BAR;
    else if (env && !strcmp(env, "plain")) mode = TN_PROGRESS_PLAIN;
    else if (env && !strcmp(env, "off")) mode = TN_PROGRESS_OFF;
    else if (isatty(fileno(p->out)) && !(term && !strcmp(term, "dumb"))) mode = TN_PROGRESS_BAR;
    else mode = TN_PROGRESS_PLAIN;
  }
  p->mode = mode;
  return p;
}

void tn_progress_set_interval(tn_progress *p, double seconds) {
  if (p) p->interval = seconds;
}

/* "loss 1.234 lr 3e-4 4321 tok/s eta 1m20s extra" into BUF */
static void fields(const tn_progress *p, double now, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = 0;
#define ADD(...) do { if (k < n) k += (size_t)snprintf(buf + k, n - k, __VA_ARGS__); } while (0)
  if (!isnan(p->loss)) ADD(" loss %.4g", p->loss);
  if (!isnan(p->lr)) {
    char lr[32];
    fmt_lr(p->lr, lr, sizeof lr);
    ADD(" lr %s", lr);
  }
  if (!isnan(p->tok_s)) ADD(" %.0f tok/s", p->tok_s);
  if (p->extra[0]) ADD(" %s", p->extra);
  if (p->total > 0) {
    char d[32];
    int64_t done = p->step - p->step0;
    if (p->step >= p->total) {
      tn_format_duration(now - p->t0, d, sizeof d);
      ADD(" elapsed %s", d);
    } else if (done > 0 && now > p->t0) {
      tn_format_duration((double)(p->total - p->step) * (now - p->t0) / (double)done, d, sizeof d);
      ADD(" eta %s", d);
    }
  }
#undef ADD
}

static void draw_plain(tn_progress *p, double now) {
  char f[320];
  fields(p, now, f, sizeof f);
  if (p->label[0]) fprintf(p->out, "%s: ", p->label);
  if (p->total > 0) fprintf(p->out, "step %lld/%lld%s\n", (long long)p->step, (long long)p->total, f);
  else fprintf(p->out, "step %lld%s\n", (long long)p->step, f);
  fflush(p->out);
  p->last_printed_step = p->step;
  p->last_draw = now;
}

static int term_width(FILE *f) {
  struct winsize ws;
  if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

static void draw_bar(tn_progress *p, double now) {
  char f[320], head[96];
  fields(p, now, f, sizeof f);
  double frac = p->total > 0 ? (double)p->step / (double)p->total : 0;
  if (frac > 1) frac = 1;
  if (p->total > 0)
    snprintf(head, sizeof head, "%s%s%lld/%lld %3d%%", p->label, p->label[0] ? " " : "", (long long)p->step,
             (long long)p->total, (int)(frac * 100));
  else snprintf(head, sizeof head, "%s%sstep %lld", p->label, p->label[0] ? " " : "", (long long)p->step);
  int width = term_width(p->out);
  int room = width - (int)strlen(head) - (int)strlen(f) - 4;
  int bw = room > 40 ? 40 : room;
  fputs("\r", p->out);
  fputs(head, p->out);
  if (p->total > 0 && bw >= 10) {
    int fill = (int)(frac * bw + 0.5);
    fputs(" [", p->out);
    for (int i = 0; i < bw; i++) fputc(i < fill ? '#' : '.', p->out);
    fputc(']', p->out);
  }
  /* cut the fields to the terminal so the line never wraps (wrapping breaks \r redraw) */
  int left = width - 1 - (int)strlen(head) - (p->total > 0 && bw >= 10 ? bw + 3 : 0);
  if (left > 0) fprintf(p->out, "%.*s", left, f);
  fputs("\033[K", p->out);
  fflush(p->out);
  p->bar_visible = true;
  p->last_draw = now;
}

void tn_progress_update(tn_progress *p, int64_t step, double loss, double lr, double tok_s, const char *extra) {
  if (!p || p->mode == TN_PROGRESS_OFF) return;
  double now = tn_now();
  if (!p->started) {
    p->started = true;
    p->t0 = now;
    p->step0 = step;
    p->last_draw = -1e9;
  }
  p->step = step;
  p->loss = loss;
  p->lr = lr;
  p->tok_s = tok_s;
  snprintf(p->extra, sizeof p->extra, "%s", extra ? extra : "");
  bool first = step == p->step0, last = p->total > 0 && step >= p->total;
  if (p->mode == TN_PROGRESS_PLAIN) {
    if (first || last || now - p->last_draw >= p->interval) draw_plain(p, now);
  } else {
    if (first || last || now - p->last_draw >= 0.1) draw_bar(p, now);
  }
}

void tn_progress_clear(tn_progress *p) {
  if (!p || p->mode != TN_PROGRESS_BAR || !p->bar_visible) return;
  fputs("\r\033[K", p->out);
  fflush(p->out);
  p->bar_visible = false;
}

void tn_progress_finish(tn_progress *p) {
  if (!p) return;
  if (p->started && p->mode != TN_PROGRESS_OFF) {
    double now = tn_now();
    if (p->mode == TN_PROGRESS_PLAIN) {
      if (p->last_printed_step != p->step) draw_plain(p, now);
    } else {
      draw_bar(p, now);
      fputc('\n', p->out);
      fflush(p->out);
    }
  }
  free(p);
}
