/* jinja_int.h - what the parser (jinja_parse.c) and the evaluator (jinja_eval.c, jinja_value.c, jinja_builtins.c) share: the
 * arena, the AST node and the parsed template. Not for: use outside src/template. */
#ifndef TN_JINJA_INT_H
#define TN_JINJA_INT_H
#include "template/jinja.h"

#define JN_MAX_PARSE_DEPTH 200

typedef struct jn_block { struct jn_block *next; size_t cap, used; _Alignas(16) char data[]; } jn_block;
typedef struct { jn_block *head; size_t total, limit; } jn_arena;
void *jn_arena_alloc(jn_arena *a, size_t n); /* zeroed; NULL when out of memory or over the limit */
void jn_arena_free(jn_arena *a);

enum {
  N_TEXT, N_OUTPUT, N_IF, N_FOR, N_SET, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK, N_GENERATION, N_BREAK, N_CONTINUE,
  N_COMMENT,
  N_INT, N_FLOAT, N_STR, N_IDENT, N_LIST, N_TUPLE, N_DICT, N_BIN, N_UNARY, N_COND, N_MEMBER, N_SLICE, N_CALL,
  N_FILTER, N_TEST, N_KWARG, N_SPREAD, N_KWSPREAD
};
enum { OP_AND = 256, OP_OR, OP_NOT, OP_IN, OP_NOTIN, OP_EQ, OP_NE, OP_LE, OP_GE, OP_FLOORDIV, OP_POW };

/* One AST node. Field use per kind:
 *  TEXT s,sn | OUTPUT a | IF a=test v=body w=else | FOR a=target b=iterable c=filter v=body w=else
 *  SET a=target b=value|NULL v=block body | MACRO s=name v=params w=body
 *  CALLBLOCK a=call v=caller params w=body | FILTERBLOCK a=filter v=body | GENERATION v=body
 *  INT i | FLOAT f | STR s,sn | IDENT s | LIST/TUPLE v | DICT v=keys w=values | BIN op a b
 *  UNARY op a | COND a=test b=then c=else|NULL | MEMBER a=object b=key i=computed | SLICE a b c
 *  CALL a=callee v=args | FILTER a=operand s=name v=args i=has parens | TEST a s=name i=negated v=args
 *  KWARG s=name a=value | SPREAD a | KWSPREAD a */
typedef struct jnode jnode;
struct jnode {
  int k, line, op, nv, nw;
  const char *s; size_t sn;
  int64_t i; double f;
  jnode *a, *b, *c;
  jnode **v, **w;
};

struct tn_jinja {
  jn_arena arena;
  char *name;
  jnode **body; int n_body;
  bool has_generation;
};

#endif
