/* jinja_rt.h - the evaluator's shared runtime (internal to jinja_value.c, jinja_eval.c and
 * jinja_builtins.c): the value representation, scopes, the render state, the step limit, and
 * the helpers each of those files uses from the others (prefixed jx_).
 * Not for: anything outside src/template's Jinja evaluator (the public side is jinja.h). */
#ifndef TN_TEMPLATE_JINJA_RT_H
#define TN_TEMPLATE_JINJA_RT_H
#include "template/jinja_int.h"
#include <stdint.h>
#include <string.h>

/* ---- values ---- */
enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_NS, V_FUNC };
typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct {
  uint8_t t, tup; /* tup: a tuple (list printed with parentheses) */
  union {
    bool b; int64_t i; double f;
    struct { const char *p; size_t n; } s;
    jlist *l; jdict *d; jfunc *fn;
  };
} jv;
struct jlist { size_t n; jv *v; };
struct jdict { size_t n, cap; const char **kp; size_t *kn; jv *v; };
typedef struct env env;
enum { F_BUILTIN, F_METHOD, F_MACRO, F_CALLER };
struct jfunc { int kind; const char *name; jv self; const jnode *node; env *closure; };
struct env { env *parent; size_t n, cap; const char **names; jv *vals; };

static const jv UNDEF = {.t = V_UNDEF};
static const jv NONE = {.t = V_NONE};

typedef struct {
  const tn_jinja *t;
  jn_arena a;
  char *out; size_t len, cap;
  tn_jinja_limits lim;
  uint64_t steps;
  int depth;
  int capture;
  int ctl;                 /* 1 break, 2 continue */
  tn_jinja_span *gen; size_t n_gen, cap_gen;
  char err[600];
  int err_line;
  bool failed;
} R;
typedef struct { jv *pos; int np; const char **kn; jv *kv; int nk; } args_t;

#define STEP(r, line)                                                                                               \
  do {                                                                                                              \
    if (++(r)->steps > (r)->lim.max_steps)                                                                          \
      return jx_rerr(r, line, "the render took more than %llu steps (a runaway loop?)",                             \
                  (unsigned long long)(r)->lim.max_steps);                                                          \
  } while (0)

typedef struct { char *s; size_t n, cap; } sb;
typedef struct { int indent; bool ascii, sort; const char *isep, *ksep; } jopts;

extern const char *jx_vt_name[];
int jx_rerr(R *r, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void *jx_ralloc(R *r, size_t n, int line);
int jx_charge(R *r, uint64_t k, int line);
int jx_str_new(R *r, const char *p, size_t n, jv *out, int line);
int jx_list_new(R *r, size_t n, jv *out, int line);
int jx_dict_new(R *r, jv *out, int t, int line);
jv *jx_dict_get(const jdict *d, const char *k, size_t kn);
int jx_dict_set(R *r, jdict *d, const char *k, size_t kn, jv v, int line);
int jx_func_new(R *r, int kind, const char *name, jv self, const jnode *node, env *cl, jv *out, int line);
env *jx_env_new(R *r, env *parent, int line);
int jx_env_set(R *r, env *e, const char *name, jv v, int line);
bool jx_env_get(env *e, const char *name, jv *out);
int jx_emit(R *r, const char *p, size_t n, int line);
int jx_sb_put(R *r, sb *b, const char *p, size_t n, int line);
int jx_sb_done(R *r, sb *b, jv *out, int line);
size_t jx_u8_next(const char *s, size_t n, size_t i, int32_t *cp);
size_t jx_u8_len(const char *s, size_t n);
size_t jx_u8_offset(const char *s, size_t n, size_t cp_index);
bool jx_py_space(int32_t c);
int jx_put_str(R *r, sb *b, jv v, int line, int depth);
int jx_to_str(R *r, jv v, jv *out, int line);
int jx_put_json(R *r, sb *b, jv v, const jopts *o, int depth, int line);
bool jx_truthy(jv v);
bool jx_py_eq(jv a, jv b);
int jx_py_cmp(jv a, jv b, bool *bad, bool fold);
const jv *jx_arg(const args_t *a, int i, const char *name);
int jx_iter_items(R *r, jv v, jv *out, int line);
int jx_get_member(R *r, jv obj, jv key, int line, jv *out);
int jx_binop(R *r, int op, jv a, jv b, int line, jv *out);
int jx_strftime_now(R *r, jv fmt, int line, jv *out);
int jx_call_builtin(R *r, jfunc *f, const args_t *a, int line, jv *out);
int jx_call_method(R *r, jfunc *f, const args_t *a, int line, jv *out);
const char *jx_method_name(jv self, const char *name, size_t n);
int jx_apply_test(R *r, jv v, const char *t, const args_t *a, int line, bool *res);
int jx_apply_filter(R *r, jv v, const char *f, const args_t *a, env *e, int line, jv *out);

static inline jv jx_mk_bool(bool b) { jv v = {.t = V_BOOL}; v.b = b; return v; }
static inline jv jx_mk_int(int64_t i) { jv v = {.t = V_INT}; v.i = i; return v; }
static inline jv jx_mk_float(double f) { jv v = {.t = V_FLOAT}; v.f = f; return v; }
static inline jv jx_mk_str(const char *p, size_t n) { jv v = {.t = V_STR}; v.s.p = p; v.s.n = n; return v; }
static inline jv jx_cstr(const char *s) { return jx_mk_str(s, strlen(s)); }
static inline int jx_sb_puts(R *r, sb *b, const char *s, int line) { return jx_sb_put(r, b, s, strlen(s), line); }
static inline bool jx_is_num(jv v) { return v.t == V_INT || v.t == V_FLOAT || v.t == V_BOOL; }
static inline double jx_num(jv v) { return v.t == V_FLOAT ? v.f : v.t == V_INT ? (double)v.i : (double)v.b; }
static inline bool jx_sveq(jv s, const char *lit) { return s.t == V_STR && s.s.n == strlen(lit) && !memcmp(s.s.p, lit, s.s.n); }
#endif
