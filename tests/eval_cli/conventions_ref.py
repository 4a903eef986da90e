#!/usr/bin/env python3
"""conventions_ref.py - independent reference for tests/test_conventions.c: reads the case
table from the C file and recomputes every GSM8K / MATH case with Python's `re` running
lm-evaluation-harness's gsm8k patterns and a Python transcription of Hendrycks' MATH
normaliser (last_boxed_only_string, strip_string, is_equiv). Exit 1 on any mismatch."""
import re, sys

src = open(sys.argv[1]).read()
CSTR = r'"((?:[^"\\]|\\.)*)"'
row = re.compile(r'\{' + CSTR + r', (STRICT|FLEX|GMATCH|BOXED|STRIP|EQUIV), ' + CSTR + r', (?:NULL|' + CSTR + r'), ' + CSTR + r'\}')
def unc(s):
    return None if s is None else s.encode().decode('unicode_escape')

def strict(t):
    m = re.findall(r"#### (\-?[0-9\.\,]+)", t)
    return m[0] if m else ""
def flex(t):
    m = re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", t)
    if not m: return ""
    m = m[-1]
    return [x for x in m if x][0]
def gmatch(p, r):
    for s in [",", "\\$", "(?s).*#### ", "\\.$"]:
        p = re.sub(s, "", p); r = re.sub(s, "", r)
    return p.lower() == r.lower()

def last_boxed(s):
    idx = s.rfind("\\boxed")
    if idx >= 0 and s[idx:].startswith("\\boxed "):
        return s[idx:].split("$")[0][len("\\boxed "):]
    if idx < 0:
        idx = s.rfind("\\fbox")
        if idx < 0: return ""
    i, depth, right = idx, 0, None
    while i < len(s):
        if s[i] == "{": depth += 1
        if s[i] == "}":
            depth -= 1
            if depth == 0: right = i; break
        i += 1
    if right is None: return ""
    b = s[idx:right + 1]
    return b[b.index("{") + 1:-1]

def _fix_fracs(string):
    substrs = string.split("\\frac"); new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr[0] == "{": new_str += substr
        else:
            assert len(substr) >= 2
            a, b = substr[0], substr[1]
            if b != "{":
                new_str += "{" + a + "}{" + b + "}" + substr[2:]
            else:
                new_str += "{" + a + "}" + b + substr[2:]
    return new_str
def _fix_a_slash_b(string):
    if len(string.split("/")) != 2: return string
    a, b = string.split("/")
    try:
        a, b = int(a), int(b)
        assert string == "{}/{}".format(a, b)
        return "\\frac{" + str(a) + "}{" + str(b) + "}"
    except Exception:
        return string
def _remove_right_units(string):
    if "\\text{ " in string:
        splits = string.split("\\text{ "); assert len(splits) == 2
        return splits[0]
    return string
def _fix_sqrt(string):
    if "\\sqrt" not in string: return string
    splits = string.split("\\sqrt"); new_string = splits[0]
    for split in splits[1:]:
        if split and split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string
def strip_string(string):
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if len(string) == 0: return string
    if string[0] == ".": string = "0" + string
    if len(string.split("=")) == 2 and len(string.split("=")[0]) <= 2:
        string = string.split("=")[1]
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    if string == "0.5": string = "\\frac{1}{2}"
    return _fix_a_slash_b(string)
def num(s):
    m = re.fullmatch(r"\\frac\{(\d+(?:\.\d+)?)\}\{(\d+(?:\.\d+)?)\}", s)
    if m: return float(m.group(1)) / float(m.group(2))
    try: return float(s)
    except ValueError: return None
def equiv(a, b):
    try:
        x, y = strip_string(a), strip_string(b)
    except Exception:
        return a == b
    if x == y: return True
    u, v = num(x), num(y)
    return u is not None and v is not None and abs(u - v) <= max(1e-9, 1e-6 * max(abs(u), abs(v)))

n = bad = 0
for m in row.finditer(src):
    rule, k, a, b, want = m.group(1), m.group(2), unc(m.group(3)), unc(m.group(4)), unc(m.group(5))
    if k == "STRICT": got = strict(a)
    elif k == "FLEX": got = flex(a)
    elif k == "GMATCH": got = "1" if gmatch(a, b) else "0"
    elif k == "BOXED": got = last_boxed(a)
    elif k == "STRIP":
        try: got = strip_string(a)
        except Exception: got = "<fail>"
    else: got = "1" if equiv(a, b) else "0"
    n += 1
    if got != want:
        bad += 1
        print("MISMATCH [%s] %r %r: python %r, table %r" % (rule, a, b, got, want))
print("%d cases checked against the Python reference, %d mismatches" % (n, bad))
sys.exit(1 if bad or n < 40 else 0)
