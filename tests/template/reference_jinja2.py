"""reference_jinja2.py - reference renderings from Python jinja2 (Debian python3-jinja2) set up
the way transformers' apply_chat_template sets it up: ImmutableSandboxedEnvironment with
trim_blocks and lstrip_blocks, the loopcontrols extension, a {% generation %} tag that renders its
body, tojson = json.dumps(ensure_ascii=False, indent, separators, sort_keys), raise_exception and
strftime_now globals.  Usage: python3 reference_jinja2.py SRCROOT OUTDIR
Reads OUTDIR/cases.jsonl (written by reference.mjs: the same variables and templates) and the
python-only cases of tests/template/python_cases.json; writes OUTDIR/cases_py.jsonl with
{template, vars, text|error} per rendering. Exits 77 (skip) when jinja2 or the node output is missing."""
import json, os, sys
from datetime import datetime

try:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError:
    print("reference_jinja2.py: python3-jinja2 missing", file=sys.stderr)
    sys.exit(77)

root, out = sys.argv[1], sys.argv[2]
cases_path = os.path.join(out, "cases.jsonl")
if not os.path.exists(cases_path):
    sys.exit(77)


class Generation(Extension):
    """{% generation %}...{% endgeneration %}: renders the body unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def strftime_now(fmt):
    return datetime(2026, 3, 14, 0, 0).strftime(fmt)   # TN_DATE=2026-03-14 on the tunic side


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[Generation, jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

records = [json.loads(l) for l in open(cases_path, encoding="utf-8")]
templates = {}
py = json.load(open(os.path.join(root, "tests/template/python_cases.json"), encoding="utf-8"))
for i, c in enumerate(py):
    name = "py%02d" % i
    with open(os.path.join(out, "tpl_%s.jinja" % name), "w", encoding="utf-8") as f:
        f.write(c["template"])
    records.append({"template": name, "conv": i, "vars": c.get("vars", {})})

lines, n_text, n_err = [], 0, 0
for r in records:
    name = r["template"]
    if name not in templates:
        templates[name] = env.from_string(open(os.path.join(out, "tpl_%s.jinja" % name), encoding="utf-8").read())
    rec = {"template": name, "conv": r["conv"], "vars": r["vars"]}
    try:
        rec["text"] = templates[name].render(**r["vars"])
        n_text += 1
    except Exception as e:  # noqa: BLE001 - any template error is a reference error
        rec["error"] = "%s: %s" % (type(e).__name__, e)
        n_err += 1
    lines.append(json.dumps(rec, ensure_ascii=False))
with open(os.path.join(out, "cases_py.jsonl"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
print("reference_jinja2.py: jinja2 %s, %d renderings, %d errors" % (jinja2.__version__, n_text, n_err))
