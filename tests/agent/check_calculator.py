#!/usr/bin/python3
"""check_calculator.py - `tunic tool run calculator` against Python's exact arithmetic
(fractions.Fraction, Python ints): 150 random expressions over big integers and decimals with
+ - * / % ^, parentheses and unary minus, each result compared exactly (an integer or a
terminating decimal) or to 20 decimals (a non-terminating quotient, rounded half away from
zero); then the errors (division by zero, modulo by zero, syntax, too large, bad arguments)
come back as {"ok": false} with exit status 0, and bad usage exits non-zero."""
import json
import os
import random
import subprocess
import sys
from decimal import Decimal, ROUND_HALF_UP, localcontext
from fractions import Fraction

TUNIC = os.environ["TUNIC"]
fails = []


def run(expr):
    p = subprocess.run([TUNIC, "tool", "run", "calculator", "--args", json.dumps({"expression": expr})],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (expr, p.returncode, p.stderr)
    return json.loads(p.stdout)


def fmt(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    d = v.denominator
    for f in (2, 5):
        while d % f == 0:
            d //= f
    with localcontext() as ctx:
        ctx.prec = 20000
        x = Decimal(v.numerator) / Decimal(v.denominator)
        if d == 1:  # terminating: exact
            s = format(x, "f")
        else:
            s = format(x.quantize(Decimal(1).scaleb(-20), rounding=ROUND_HALF_UP), "f").rstrip("0").rstrip(".")
    if s == "-0":
        s = "0"
    return s


rng = random.Random(16)


def num():
    k = rng.random()
    if k < 0.4:
        return str(rng.randint(0, 10 ** rng.randint(1, 30)))
    if k < 0.7:
        return f"{rng.randint(0, 9999)}.{rng.randint(0, 999):03d}"
    return str(rng.randint(0, 50))


def gen(depth=0):
    if depth > 3 or rng.random() < 0.3:
        return num()
    op = rng.choice(["+", "-", "*", "/", "%", "^", "neg", "paren"])
    if op == "neg":
        return "-" + gen(depth + 1)
    if op == "paren":
        return "(" + gen(depth + 1) + ")"
    if op == "^":
        return "(" + gen(depth + 1) + ")^" + str(rng.randint(0, 4))
    return gen(depth + 1) + " " + op + " " + gen(depth + 1)


def ref(expr):
    # the same grammar, evaluated with Fractions: ^ -> ** (right assoc, binds tighter than unary -)
    py = expr.replace("^", "**")
    def F(tok):
        return f"Fraction('{tok}')"
    import re
    py = re.sub(r"\d+(\.\d+)?", lambda m: F(m.group(0)), py)
    # Python's % on Fractions is floored like ours; ** with an int exponent is exact
    py = re.sub(r"\*\*Fraction\('(\d+)'\)", r"**\1", py)
    return eval(py, {"Fraction": Fraction})


n_ok = 0
for i in range(150):
    e = gen()
    try:
        want = ref(e)
    except ZeroDivisionError:
        r = run(e)
        if r["ok"] or "by zero" not in r["error"]:
            fails.append((e, r, "want a division by zero error"))
        continue
    if abs(want.numerator) > 10 ** 9000 or want.denominator > 10 ** 9000:
        continue
    r = run(e)
    if not r["ok"] or r["content"] != fmt(want):
        fails.append((e, r, fmt(want)))
    else:
        n_ok += 1

# hand cases: precedence, associativity, big numbers, decimals
cases = {
    "2+3*4": "14", "(2+3)*4": "20", "2^3^2": "512", "-2^2": "-4", "(-2)^2": "4", "2^-2": "0.25",
    "7 % 3": "1", "-7 % 3": "2", "7 % -3": "-2", "7.5 % 2": "1.5", "10/4": "2.5", "1/3": "0.33333333333333333333",
    "2/3": "0.66666666666666666667", "-2/3": "-0.66666666666666666667", "0.1+0.2": "0.3", "1e3 + 1": "1001",
    "2^100": str(2 ** 100), "123456789012345678901234567890 * 987654321098765432109876543210":
    str(123456789012345678901234567890 * 987654321098765432109876543210), "  4 ** 2 ": "16", "--3": "3",
    "3 - -3": "6", "1.50 * 2": "3", "0.000001 * 3": "0.000003",
}
for e, want in cases.items():
    r = run(e)
    if not r["ok"] or r["content"] != want:
        fails.append((e, r, want))
errors = {"1/0": "division by zero", "5 % 0": "modulo by zero", "2 +": "syntax error", "(1+2": "expected ')'",
          "2 ^ 0.5": "exponent must be an integer", "10^100000": "too large", "9^9^9": "too large", "abc": "syntax error",
          "1 2": "unexpected", "0^-1": "division by zero", "(" * 300 + "1" + ")" * 300: "nested too deeply"}
for e, needle in errors.items():
    r = run(e)
    if r["ok"] or needle not in r["error"]:
        fails.append((e[:40], r, needle))
# bad arguments are tool errors too; bad usage is an exit status
p = subprocess.run([TUNIC, "tool", "run", "calculator", "--args", '{"expr": "1"}'], capture_output=True, text=True)
if p.returncode != 0 or json.loads(p.stdout)["ok"] or "expression" not in json.loads(p.stdout)["error"]:
    fails.append(("missing argument", p.stdout, p.stderr))
for argv in (["tool", "run", "calculator", "--args", "[1]"], ["tool", "run"], ["tool", "run", "nosuch"], ["tool", "frob"],
             ["tool", "run", "calculator", "--timeout", "-1"]):
    p = subprocess.run([TUNIC] + argv, capture_output=True, text=True)
    if p.returncode == 0 or p.returncode >= 128 or not p.stderr:
        fails.append((argv, p.returncode, p.stderr))

for f in fails:
    print("FAIL", f)
print(f"calculator: {n_ok} random expressions exact, {len(cases)} hand cases, {len(errors)} errors; {len(fails)} failures")
sys.exit(1 if fails else 0)
