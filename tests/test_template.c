/* test_template.c - the Jinja interpreter construct by construct (expected strings written out
 * by hand from Python jinja2 semantics, as transformers renders), errors that name the template
 * line, hostile templates that must end in a clean error, {% generation %} spans, assistant
 * spans by prefixes, and tool-call parsing in each format. The byte-for-byte comparison with
 * @huggingface/jinja is test_template_ref. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "template/template.h"

/* render TPL with VARS (JSON text or NULL); returns the status, *out the text (or NULL) */
static tn_status render(const char *tpl, const char *vars, char **out) {
  *out = NULL;
  tn_jinja *t;
  tn_status s = tn_jinja_parse(tpl, "t.jinja", &t);
  if (s != TN_OK) return s;
  cJSON *v = vars ? cJSON_Parse(vars) : NULL;
  if (vars) assert_non_null(v);
  tn_jinja_result r;
  tn_jinja_limits lim = {.max_output = 1 << 20, .max_memory = 64 << 20, .max_steps = 2000000};
  s = tn_jinja_render(t, v, &lim, &r);
  if (s == TN_OK) *out = r.text;
  free(r.gen);
  cJSON_Delete(v);
  tn_jinja_free(t);
  return s;
}
static void expect(const char *tpl, const char *vars, const char *want) {
  char *got;
  tn_status s = render(tpl, vars, &got);
  if (s != TN_OK) fprintf(stderr, "template %s failed: %s\n", tpl, tn_last_error());
  assert_int_equal(s, TN_OK);
  if (strcmp(got, want)) fprintf(stderr, "template %s\n  want [%s]\n  got  [%s]\n", tpl, want, got);
  assert_string_equal(got, want);
  free(got);
}
/* must fail with an error containing each of the NULL-terminated fragments */
static void expect_error(const char *tpl, const char *vars, ...) {
  char *got;
  tn_status s = render(tpl, vars, &got);
  if (s == TN_OK) fprintf(stderr, "template %s rendered [%s], expected an error\n", tpl, got);
  assert_int_not_equal(s, TN_OK);
  va_list ap;
  va_start(ap, vars);
  for (const char *frag; (frag = va_arg(ap, const char *));) {
    if (!strstr(tn_last_error(), frag)) fprintf(stderr, "error [%s] lacks [%s]\n", tn_last_error(), frag);
    assert_non_null(strstr(tn_last_error(), frag));
  }
  va_end(ap);
}

static void t_expressions(void **st) {
  (void)st;
  expect("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}", NULL,
         "7 9 3 -4 2 3.5 1024");
  expect("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 0.000025 * 1 }} {{ 100000000000000000.0 }} {{ 0.0001 }} {{ 10 / 4 }}", NULL, "1.0 0.30000000000000004 2.5e-05 1e+17 0.0001 2.5");
  expect("{{ 'a' ~ 1 ~ none ~ true }} {{ 'x' + 'y' }} {{ 'ab' * 2 }}", NULL, "a1NoneTrue xy abab");
  expect("{{ true }} {{ none }} {{ [1, 'a', none] }} {{ {'k': 'v', 'n': 1.5} }} {{ (1,) }}", NULL,
         "True None [1, 'a', None] {'k': 'v', 'n': 1.5} (1,)");
  expect("{{ x }}|{{ x.y.z }}|{{ d.missing }}|{{ l[5] }}", "{\"d\": {}, \"l\": [1]}", "|||");
  expect("{{ 'yes' if a else 'no' }} {{ 'x' if false }}|{{ a and 'both' }} {{ b or 'fallback' }}", "{\"a\": 1, \"b\": 0}",
         "yes |both fallback");
  expect("{{ not a }} {{ not not a }} {{ a is not none }} {{ 1 < 2 < 3 }}", "{\"a\": []}", "True False True True");
  expect("{{ 'b' in 'abc' }} {{ 'k' in d }} {{ 2 not in [1, 2] }} {{ [1, [2]] == [1, [2]] }} {{ 1 == 1.0 }}",
         "{\"d\": {\"k\": 1}}", "True True False True True");
  expect("{{ 'abcdef'[1:4] }} {{ 'abcdef'[::-2] }} {{ 'abc'[-1] }} {{ [1,2,3,4][-3:-1] }} {{ '日本語'[1] }} {{ '日本語'|length }}",
         NULL, "bcd fdb c [2, 3] 本 3");
  expect("{{ \"it's\" }} {{ 'say \"hi\"' }} {{ 'tab\\there' }} {{ '\\u00e9\\x41' }} {{ 'a' 'b' }}", NULL,
         "it's say \"hi\" tab\there éA ab");
}

static void t_strings_and_filters(void **st) {
  (void)st;
  expect("[{{ '  a  '.strip() }}][{{ 'xxaxx'.strip('x') }}][{{ '\\n\\na\\n'.lstrip('\\n') }}][{{ 'a  '.rstrip() }}]", NULL,
         "[a][a][a\n][a]");
  expect("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a=b=c'.split('=', 1) }} {{ 'ab'.startswith(('x', 'a')) }}",
         NULL, "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b=c'] True");
  expect("{{ 'Hello'.upper() }} {{ 'Hello'|lower }} {{ 'hello world'|title }} {{ 'hELLO'|capitalize }} {{ 'éa'|upper }}",
         NULL, "HELLO hello Hello World Hello ÉA");
  expect("{{ 'aaa'.replace('a', 'b', 2) }} {{ 'x'|replace('x', 'yy') }} {{ 'abc'.find('c') }} {{ ', '.join(['a', 'b']) }}",
         NULL, "bba yy 2 a, b");
  expect("{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ [3, 1]|sort(reverse=true) }} {{ [1, 2, 1]|unique|list }}",
         NULL, "[1, 2, 3] ['A', 'b', 'c'] [3, 1] [1, 2]");
  expect("{{ l|first }} {{ l|last }} {{ l|length }} {{ l|join('-') }} {{ l|reverse|list }} {{ l|sum }} {{ l|max }}",
         "{\"l\": [4, 5, 6]}", "4 6 3 4-5-6 [6, 5, 4] 15 6");
  expect("{{ m|map(attribute='r')|join }} {{ m|selectattr('r', 'equalto', 'u')|list|length }} "
         "{{ m|rejectattr('r', 'equalto', 'u')|map(attribute='r')|list }} {{ m|selectattr('x')|list|length }} "
         "{{ m|selectattr('x', 'undefined')|list|length }} {{ ['a', 'B']|map('upper')|list }}",
         "{\"m\": [{\"r\": \"u\"}, {\"r\": \"a\", \"x\": 1}, {\"r\": \"u\"}]}", "uau 2 ['a'] 1 2 ['A', 'B']");
  expect("{{ u|default('d') }} {{ ''|default('e', true) }} {{ 0|default('z') }} {{ none|default('n') }}", NULL, "d e 0 None");
  expect("{{ ' x '|trim }} {{ '1'|int + 1 }} {{ 'x'|int(7) }} {{ '2.5'|float }} {{ -3|abs }} {{ 2.567|round(1) }} {{ 5|string }}",
         NULL, "x 2 7 2.5 3 2.6 5");
  expect("{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}", NULL, "a\n  b\n\n  c|  a\n  b");
  expect("{{ d|items|list }} {{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('b') }} {{ d.get('z', 0) }}",
         "{\"d\": {\"b\": 1, \"a\": 2}}", "[('b', 1), ('a', 2)] [('b', 1), ('a', 2)] ['b', 'a'] [1, 2] 1 0");
  expect("{{ d|dictsort }}", "{\"d\": {\"b\": 1, \"a\": 2}}", "[('a', 2), ('b', 1)]");
}

static void t_tojson(void **st) {
  (void)st;
  const char *v = "{\"x\": {\"b\": [1, 2.5, true, null], \"a\": \"é\\\"\\n\"}}";
  expect("{{ x|tojson }}", v, "{\"b\": [1, 2.5, true, null], \"a\": \"é\\\"\\n\"}");
  expect("{{ x|tojson(indent=2) }}", v, "{\n  \"b\": [\n    1,\n    2.5,\n    true,\n    null\n  ],\n  \"a\": \"é\\\"\\n\"\n}");
  expect("{{ x|tojson(sort_keys=true) }}", v, "{\"a\": \"é\\\"\\n\", \"b\": [1, 2.5, true, null]}");
  expect("{{ x|tojson(ensure_ascii=true) }}", v, "{\"b\": [1, 2.5, true, null], \"a\": \"\\u00e9\\\"\\n\"}");
  expect("{{ x|tojson(separators=(',', ':')) }}", v, "{\"b\":[1,2.5,true,null],\"a\":\"é\\\"\\n\"}");
  expect("{{ '🎉'|tojson(ensure_ascii=true) }} {{ []|tojson(indent=2) }} {{ {}|tojson }}", NULL, "\"\\ud83c\\udf89\" [] {}");
}

static void t_statements(void **st) {
  (void)st;
  expect("{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}"
         "{{ loop.length }}{{ loop.previtem|default('-') }}{{ loop.nextitem|default('-') }};{% endfor %}",
         "{\"l\": [\"a\", \"b\"]}", "102TrueFalse2-b;211FalseTrue2a-;");
  expect("{% for x in [] %}x{% else %}empty{% endfor %}{% for x in [1,2,3] if x != 2 %}{{ x }}{% endfor %}", NULL, "empty13");
  expect("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}{{ v }}{% endfor %}{% for c in 'ab' %}{{ c }}.{% endfor %}", NULL,
         "a1b2a.b.");
  expect("{% for i in range(10) %}{% if i == 1 %}{% continue %}{% elif i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}",
         NULL, "023");
  expect("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", NULL, "1");
  expect("{% set ns = namespace(n=0, l=[]) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", NULL, "6");
  expect("{% set a, b = 'xy', 2 %}{{ a }}{{ b }}{% set blk %}in {{ a }}{% endset %}[{{ blk }}]", NULL, "xy2[in xy]");
  expect("{% if a %}A{% elif b %}B{% else %}C{% endif %}{% if not a and not b %}D{% endif %}", "{\"b\": 1}", "B");
  expect("{% macro m(a, b='d', c=none) %}{{ a }}{{ b }}{{ c }}{{ varargs }}{{ kwargs }}{% endmacro %}"
         "{{ m(1) }}|{{ m(1, 2, 3, 4) }}|{{ m(a=5, z=6) }}", NULL,
         "1dNone(){}|123(4,){}|5dNone(){'z': 6}");
  expect("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}", NULL, "321");
  expect("{% macro box(t) %}[{{ t }}:{{ caller('x') }}]{% endmacro %}{% call(v) box('T') %}got {{ v }}{% endcall %}", NULL,
         "[T:got x]");
  expect("{% filter upper %}ab{{ 'c' }}{% endfilter %}{# a comment #}!", NULL, "ABC!");
  expect("{{ raise_exception is defined }} {{ strftime_now is defined }}", NULL, "True True");
}

static void t_whitespace(void **st) {
  (void)st;
  /* trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it goes */
  expect("a\n  {% if true %}\n  b\n  {% endif %}\nc\n", NULL, "a\n  b\nc");
  expect("a  {{- ' b ' -}}  c", NULL, "a b c");
  expect("a\n{%- if true -%}\n  b  \n{%- endif %}\nc", NULL, "abc");
  expect("{{ 'x' }}\n{{ 'y' }}\n", NULL, "x\ny");
  expect("x {#- c -#} y", NULL, "xy");
}

static void t_globals(void **st) {
  (void)st;
  setenv("TN_DATE", "2026-03-14", 1);
  expect("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %B %A') }}", NULL, "14 Mar 2026|2026-03-14 March Saturday");
  setenv("TN_DATE", "2026-13-01", 1);
  expect_error("\n{{ strftime_now('%Y') }}", NULL, "t.jinja:2:", "TN_DATE", NULL);
  unsetenv("TN_DATE");
  expect_error("line1\n{{ raise_exception('roles must alternate') }}", NULL, "t.jinja:2:", "roles must alternate", NULL);
  expect("{{ range(3)|list }} {{ range(1, 7, 3)|list }} {{ range(3, 0, -1)|list }} {{ dict(a=1) }}", NULL,
         "[0, 1, 2] [1, 4] [3, 2, 1] {'a': 1}");
}

static void t_errors_name_the_line(void **st) {
  (void)st;
  expect_error("ok\n\n{% if x %}\nno end", NULL, "t.jinja:3:", "'if' not closed", "endif", NULL);
  expect_error("a\n{{ x | nosuchfilter }}", NULL, "t.jinja:2:", "unknown filter 'nosuchfilter'", NULL);
  expect_error("a\nb\n{{ 1 + }}", NULL, "t.jinja:3:", NULL);
  expect_error("{% for x in 5 %}{% endfor %}", NULL, "t.jinja:1:", "not iterable", NULL);
  expect_error("\n\n\n{{ 'a' ~ x is nosuchtest }}", NULL, "t.jinja:4:", "unknown test", NULL);
  expect_error("{{ 1 / 0 }}", NULL, "division by zero", NULL);
  expect_error("{{ 'unterminated }}", NULL, "unterminated string", NULL);
  expect_error("{% include 'x' %}", NULL, "not supported", NULL);
  expect_error("{% endfor %}", NULL, "stray end tag", NULL);
  expect_error("{{ none + 'a' }}", NULL, "cannot add", NULL);
  expect_error("\n{{ m.content + 'x' }}", "{\"m\": {}}", "t.jinja:2:", "missing", NULL);
  expect_error("{% set x.y = 1 %}", "{\"x\": {}}", "namespace", NULL);
  expect_error("{{ undefined_fn() }}", NULL, "'undefined_fn' is undefined", NULL);
}

static void t_hostile(void **st) {
  (void)st;
  /* deep nesting in the parser */
  size_t n = 100000;
  char *deep = malloc(2 * n + 16);
  strcpy(deep, "{{ ");
  memset(deep + 3, '(', n);
  strcpy(deep + 3 + n, "1 }}");
  expect_error(deep, NULL, "nests deeper", NULL);
  memset(deep, 0, 2 * n + 16);
  for (size_t i = 0; i < 5000; i++) strcat(deep, "{% if 1 %}");
  expect_error(deep, NULL, "nests deeper", NULL);
  strcpy(deep, "{{ ");
  for (size_t i = 0; i < 20000; i++) strcat(deep + 3 + i * 4 - (i ? 0 : 0), "not ");
  strcat(deep, "1 }}");
  expect_error(deep, NULL, "nests deeper", NULL);
  free(deep);
  /* unbounded recursion, huge loops, exploding strings */
  expect_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, "nest", NULL);
  expect_error("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", NULL, NULL);
  expect_error("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
               NULL, NULL);
  expect_error("{{ range(1000000000)|length }}", NULL, "too long", NULL);
  /* work inside filters counts too: a quadratic unique over 50000 items, big strings searched in a loop */
  expect("{{ range(100000)|reverse|sort|first }} {{ [3, 1, 2, 1]|sort(reverse=true) }} {{ [[2, 'b'], [1, 'a'], [2, 'a']]|sort(attribute=0)|map('last')|join }}",
         NULL, "0 [3, 2, 1, 1] aba");
  expect_error("{{ range(50000)|unique|length }}", NULL, "steps", NULL);
  expect_error("{% set s = 'x' * 500000 %}{% for i in range(100000) %}{{ 'y' in s }}{% endfor %}", NULL, "steps", NULL);
  expect_error("{{ [1, 'a']|sort }}", NULL, "cannot compare", NULL);
  expect_error("{% set l = range(200000)|map(attribute='x')|list %}{% for i in range(100000) %}{{ l|join }}{% endfor %}",
               NULL, "steps", NULL);
  expect("[{{ 888888888 * '' }}]", NULL, "[]"); /* the fuzzer's timeout: an empty string repeated 888888888 times */
  expect_error("{{ 'x' * 100000000000 }}", NULL, "exceeds", NULL);
  expect_error("{% for i in range(20000) %}{% for j in range(20000) %}{% endfor %}{% endfor %}", NULL, "steps", NULL);
  /* invalid UTF-8 in strings (found by the fuzzer: stray continuation bytes counted and walked
   * differently overflowed a list); an invalid byte is one code point */
  expect("{{ 'a\x9a\x9a\xff" "b'|list|length }} {{ 'a\x9a\xff" "b'[::-1]|length }} {{ '\x9a\x9a'[1:]|length }} "
         "{{ '\xf0\x9f'|length }} {{ 'x\xff'|select|list|length }} {{ '\x9a'|reverse|length }}", NULL,
         "5 4 1 2 2 1");
  /* malformed text: unterminated tags and stray bytes end in errors, not crashes */
  const char *bad[] = {"{{", "{%", "{#", "{{ x", "{% if", "{% for %}", "{{ [1, 2 }}", "{{ {'a' 1} }}", "{{ a.  }}", "{% set %}",
                       "{% macro %}", "{% call x %}", "{{ 'a' | }}", "{{ \x01 }}", "{{ x[] }}", "{{ x[1:2:3:4] }}", "{% else %}",
                       "{% for x in y %}{% endif %}", "{{ 1 if }}", "{{ f(a=1, 2) }}", NULL};
  for (int i = 0; bad[i]; i++) {
    char *got;
    tn_status s = render(bad[i], NULL, &got);
    if (s == TN_OK) fprintf(stderr, "[%s] rendered [%s]\n", bad[i], got);
    assert_int_not_equal(s, TN_OK);
    assert_non_null(strstr(tn_last_error(), "t.jinja"));
  }
}

static void t_generation_spans(void **st) {
  (void)st;
  tn_jinja *t;
  const char *tpl = "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<end>"
                    "{% endgeneration %}{% else %}{{ m.content }}<end>{% endif %}{{ '\\n' }}{% endfor %}";
  assert_int_equal(tn_jinja_parse(tpl, "g", &t), TN_OK);
  assert_true(tn_jinja_has_generation(t));
  cJSON *v = cJSON_Parse("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": "
                         "\"yo\"}, {\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}");
  tn_jinja_result r;
  assert_int_equal(tn_jinja_render(t, v, NULL, &r), TN_OK);
  assert_string_equal(r.text, "<user>hi<end>\n<assistant>yo<end>\n<user>q<end>\n<assistant>a<end>\n");
  assert_int_equal(r.n_gen, 2);
  assert_int_equal(r.gen[0].start, strlen("<user>hi<end>\n<assistant>"));
  assert_memory_equal(r.text + r.gen[0].start, "yo<end>", r.gen[0].end - r.gen[0].start);
  assert_memory_equal(r.text + r.gen[1].start, "a<end>", r.gen[1].end - r.gen[1].start);
  tn_jinja_result_free(&r);
  /* the same through tn_chat_render_req: spans come from the generation blocks */
  tn_chat_req q = {.messages = cJSON_GetObjectItem(v, "messages"), .template_text = tpl, .spans = true};
  tn_chat_out o;
  assert_int_equal(tn_chat_render_req(NULL, &q, &o), TN_OK);
  assert_int_equal(o.n_spans, 2);
  assert_memory_equal(o.text + o.spans[1].start, "a<end>", 6);
  tn_chat_out_free(&o);
  /* without generation blocks: spans by prefixes (header excluded, end marker included) */
  const char *plain = "{% for m in messages %}<{{ m.role }}>{{ m.content }}<end>\n{% endfor %}"
                      "{% if add_generation_prompt %}<assistant>{% endif %}";
  q.template_text = plain;
  assert_int_equal(tn_chat_render_req(NULL, &q, &o), TN_OK);
  assert_int_equal(o.n_spans, 2);
  assert_int_equal(o.spans[0].start, strlen("<user>hi<end>\n<assistant>"));
  assert_int_equal(o.spans[0].end - o.spans[0].start, strlen("yo<end>"));
  tn_chat_out_free(&o);
  /* not prefix-preserving and no end-of-turn marker: a clear error */
  q.template_text = "{% for m in messages %}{{ m.content }}{{ '|' if not loop.last }}{% endfor %}{{ messages|length }}";
  assert_int_not_equal(tn_chat_render_req(NULL, &q, &o), TN_OK);
  assert_non_null(strstr(tn_last_error(), "not prefix-preserving"));
  assert_non_null(strstr(tn_last_error(), "generation"));
  cJSON_Delete(v);
  tn_jinja_free(t);
}

static void expect_calls(const char *text, tn_tool_format f, tn_tool_format want_f, int n, const char *name0, const char *args0,
                         int n_err, const char *content) {
  tn_tool_calls tc;
  assert_int_equal(tn_tool_calls_parse(text, strlen(text), f, &tc), TN_OK);
  if ((int)tc.n != n || (int)tc.n_errors != n_err)
    fprintf(stderr, "[%s]: %zu calls, %zu errors (%s)\n", text, tc.n, tc.n_errors, tc.n && tc.calls[0].error ? tc.calls[0].error : "");
  assert_int_equal(tc.n, n);
  assert_int_equal(tc.n_errors, n_err);
  if (n) assert_int_equal(tc.format, want_f);
  if (name0) { assert_string_equal(tc.calls[0].name, name0); assert_string_equal(tc.calls[0].arguments, args0); }
  if (content) assert_string_equal(tc.content, content);
  tn_tool_calls_free(&tc);
}

static void t_tool_calls(void **st) {
  (void)st;
  expect_calls("Sure.\n<tool_call>\n{\"name\": \"calc\", \"arguments\": {\"expr\": \"2+2\"}}\n</tool_call>", TN_TOOLS_AUTO,
               TN_TOOLS_HERMES, 1, "calc", "{\"expr\":\"2+2\"}", 0, "Sure.");
  expect_calls("<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>",
               TN_TOOLS_AUTO, TN_TOOLS_HERMES, 2, "a", "{}", 0, "");
  expect_calls("<tool_call>{\"name\": \"a\", \"arguments\": {</tool_call>", TN_TOOLS_AUTO, TN_TOOLS_HERMES, 1, NULL, NULL, 1, NULL);
  expect_calls("<tool_call>{\"arguments\": {}}</tool_call>", TN_TOOLS_AUTO, TN_TOOLS_HERMES, 1, NULL, NULL, 1, NULL);
  expect_calls("<tool_call>{\"name\": \"a\"", TN_TOOLS_AUTO, TN_TOOLS_HERMES, 1, NULL, NULL, 1, NULL);
  expect_calls("{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", TN_TOOLS_AUTO, TN_TOOLS_LLAMA3, 1,
               "get_weather", "{\"city\":\"Paris\"}", 0, "");
  expect_calls("<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"k\": [1]}}<|eom_id|>",
               TN_TOOLS_AUTO, TN_TOOLS_LLAMA3, 2, "a", "{}", 0, "");
  expect_calls("[TOOL_CALLS][{\"name\": \"calc\", \"arguments\": {\"expr\": \"1\"}, \"id\": \"abcdefghi\"}]</s>", TN_TOOLS_AUTO,
               TN_TOOLS_MISTRAL, 1, "calc", "{\"expr\":\"1\"}", 0, "");
  expect_calls("[TOOL_CALLS]calc[ARGS]{\"expr\": \"1\"}", TN_TOOLS_AUTO, TN_TOOLS_MISTRAL, 1, "calc", "{\"expr\":\"1\"}", 0, "");
  expect_calls("[TOOL_CALLS][]", TN_TOOLS_AUTO, TN_TOOLS_MISTRAL, 1, NULL, NULL, 1, NULL);
  expect_calls("Let me look.\n```tool_code\nget_weather(city='Paris', days=2, metric=True)\n```", TN_TOOLS_AUTO, TN_TOOLS_GEMMA, 1,
               "get_weather", "{\"city\":\"Paris\",\"days\":2,\"metric\":true}", 0, "Let me look.");
  expect_calls("```tool_code\nnot a call\n```", TN_TOOLS_AUTO, TN_TOOLS_GEMMA, 1, NULL, NULL, 1, NULL);
  expect_calls("<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json"
               "<|message|>{\"city\": \"Oslo\"}<|call|>",
               TN_TOOLS_AUTO, TN_TOOLS_HARMONY, 1, "get_weather", "{\"city\":\"Oslo\"}", 0, NULL);
  expect_calls("<|start|>assistant to=functions.f<|channel|>commentary json<|message|>{oops<|call|>", TN_TOOLS_AUTO,
               TN_TOOLS_HARMONY, 1, NULL, NULL, 1, NULL);
  expect_calls("Just text, no call.", TN_TOOLS_AUTO, TN_TOOLS_AUTO, 0, NULL, NULL, 0, "Just text, no call.");
  tn_tool_format f;
  assert_int_equal(tn_tool_format_parse("mistral", &f), TN_OK);
  assert_int_equal(f, TN_TOOLS_MISTRAL);
  assert_int_not_equal(tn_tool_format_parse("nope", &f), TN_OK);
  assert_int_equal(tn_tool_format_of_template("... <tool_call> ..."), TN_TOOLS_HERMES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(t_expressions),         cmocka_unit_test(t_strings_and_filters), cmocka_unit_test(t_tojson),
      cmocka_unit_test(t_statements),          cmocka_unit_test(t_whitespace),          cmocka_unit_test(t_globals),
      cmocka_unit_test(t_errors_name_the_line), cmocka_unit_test(t_hostile),            cmocka_unit_test(t_generation_spans),
      cmocka_unit_test(t_tool_calls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
