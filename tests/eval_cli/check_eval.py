#!/usr/bin/python3
"""check_eval.py - `tunic eval` end to end on a tiny random model with the byte tokenizer.

Independent checks (nothing here is copied from tunic's output as an expected value):
- the prompt is rendered in Python (the byte tokenizer's Gemma-style chat template with the
  default system prompt) and its length is compared with `prompt_tokens`;
- the completions are regenerated with `tunic generate --ids` on those Python-rendered ids
  (same sampling options, stop ids = eos ids + <end_of_turn>), decoded in Python, and must
  equal the completions in the results file;
- `correct` is re-derived for plain numeric answers; summary accuracy, partial accuracy,
  format rate, per-category and error counts are recomputed from the results lines;
- pass@k of each line and of the summary against 1 - C(n-c, k) / C(n, k) (math.comb);
- determinism: same seed -> byte-identical results, whatever the batch size; another seed
  -> different completions;
- the end-of-turn token stops generation even when generation_config lacks it;
- bad inputs give a non-zero exit and a message naming the file / line.
Usage: check_eval.py WORKDIR   (env TUNIC = the tunic binary)
"""
import json, math, os, re, shutil, subprocess, sys

TUNIC = os.environ["TUNIC"]
W = sys.argv[1]
SYSTEM = ("You are given a problem. Think about the problem and provide your working out. Place it between "
          "<reasoning> and </reasoning>. Then, provide your final answer between <answer> and </answer>.")
BOS, EOS, SOT, EOT = 257, 258, 259, 260
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def run(args, ok=True):
    p = subprocess.run([TUNIC] + args, capture_output=True, text=True)
    if ok and p.returncode != 0:
        print(p.stdout, p.stderr)
        raise SystemExit(f"tunic {' '.join(args)} failed with {p.returncode}")
    return p


def render(prompt):
    """The byte tokenizer's chat template, system prompt folded into the user turn."""
    text = f"user\n{SYSTEM}\n\n{prompt.strip()}"
    return [BOS, SOT] + list(text.encode()) + [EOT] + list(b"\n") + [SOT] + list(b"model\n")


def decode(ids):
    """Byte ids -> text; special tokens skipped; invalid UTF-8 -> U+FFFD; NUL bytes dropped."""
    b = bytes(i for i in ids if i < 256)
    return b.decode("utf-8", errors="replace").replace("\x00", "")


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def num(s):
    """A plain decimal number (no grouping, no sign tricks), else None."""
    return float(s) if isinstance(s, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", s) else None


shutil.rmtree(W, ignore_errors=True)
os.makedirs(W)
model = os.path.join(W, "m")
run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", model, "--seed", "3"])

# ---- eval data: string and number ids, "answer" or "expected_answer", categories or none
examples = []
prompts = ["What is 3 + 4?", "Tom has 2 apples and buys 5 more. How many?", "Compute 9 - 1.", "What is 2 * 3?",
           "Half of 18?", "Add 1 and 1.", "What is 10 - 3?", "What is 4 + 5?", "7 minus 2?", "Three times three?",
           "What is 12 / 4?", "Sum of 0 and 6?"]
answers = ["7", "7", "8", "6", "9", "2", "7", "9", "5", "9", "3", "6"]
cats = ["add", "add", "sub", None, "div", "add", "sub", "add", "sub", "mul", "div", None]
for i, (p, a, c) in enumerate(zip(prompts, answers, cats)):
    ex = {"id": f"q{i}" if i % 3 else i * 10, "prompt": p}
    ex["answer" if i % 2 else "expected_answer"] = a if i % 4 else int(a)
    if c:
        ex["category"] = c
    examples.append(ex)
data = os.path.join(W, "eval.jsonl")
with open(data, "w") as f:
    for ex in examples:
        f.write(json.dumps(ex) + "\n")
N = len(examples)
MAXT = 16


def check_results(res, summary, n):
    check(len(res) == N, f"{len(res)} result lines, want {N}")
    fields = ["id", "category", "prompt", "prompt_tokens", "expected_answer", "completion", "tokens", "finish_reason",
              "extracted", "method", "correct", "partial", "credit", "format_ok", "error"]
    tot = {"n": 0, "correct": 0, "partial": 0, "format_ok": 0, "credit": 0.0}
    errs = {"no_answer": 0, "wrong_number": 0, "invalid_format": 0}
    percat = {}
    for ex, r in zip(examples, res):
        for k in fields:
            check(k in r, f"field {k} missing in {r.get('id')}")
        check(r["id"] == ex["id"], f"id {r['id']} != {ex['id']}")
        check(r["category"] == ex.get("category"), f"{r['id']}: category {r['category']}")
        check(r["prompt"] == ex["prompt"], f"{r['id']}: prompt")
        check(r["prompt_tokens"] == len(render(ex["prompt"])), f"{r['id']}: prompt_tokens {r['prompt_tokens']} vs "
              f"python-rendered {len(render(ex['prompt']))}")
        ref = str(ex.get("answer", ex.get("expected_answer")))
        check(r["expected_answer"] == ref, f"{r['id']}: expected_answer {r['expected_answer']} vs {ref}")
        samples = r["samples"] if n > 1 else [r]
        if n > 1:
            check(len(samples) == n and r["n_samples"] == n, f"{r['id']}: {len(samples)} samples")
            for k in ["completion", "extracted", "correct", "partial", "format_ok", "error", "credit", "tokens"]:
                check(samples[0][k] == r[k], f"{r['id']}: top-level {k} is not sample 0's")
            c = sum(1 for s in samples if s["correct"])
            check(r["num_correct"] == c, f"{r['id']}: num_correct {r['num_correct']} vs {c}")
            for k, v in r["pass_at_k"].items():
                k = int(k)
                want = 1.0 if n - c < k else 1 - math.comb(n - c, k) / math.comb(n, k)
                check(abs(v - want) < 1e-12, f"{r['id']}: pass@{k} {v} vs {want}")
        for s in samples:
            check(s["finish_reason"] in ("stop", "length"), "finish_reason")
            check(0 < s["tokens"] <= MAXT, f"tokens {s['tokens']}")
            if s["finish_reason"] == "length":
                check(s["tokens"] == MAXT, "length finish before max tokens")
            check((s["error"] == "correct") == bool(s["correct"]), f"{r['id']}: error {s['error']} vs correct")
            check(not s["correct"] or s["partial"], "correct but not partial")
            if s["method"] == "none":
                check(s["extracted"] == "" and s["error"] == "no_answer", "method none with an answer")
            x = num(s["extracted"])
            if x is not None:
                check(bool(s["correct"]) == (x == float(ref)), f"{r['id']}: '{s['extracted']}' vs {ref}: correct={s['correct']}")
            fmt_expect = "<reasoning>" in s["completion"] and "<answer>" in s["completion"]
            if s["format_ok"]:
                check(fmt_expect, "format_ok without tags")
            tot["n"] += 1
            tot["correct"] += bool(s["correct"])
            tot["partial"] += bool(s["partial"])
            tot["format_ok"] += bool(s["format_ok"])
            tot["credit"] += s["credit"]
            if s["error"] != "correct":
                errs[s["error"]] += 1
            if ex.get("category"):
                pc = percat.setdefault(ex["category"], [0, 0])
                pc[0] += 1
                pc[1] += bool(s["correct"])
    check(summary["n"] == tot["n"], f"summary n {summary['n']} vs {tot['n']}")
    check(summary["examples"] == N, "summary examples")
    for k, key in [("correct", "accuracy"), ("partial", "partial_accuracy"), ("format_ok", "format_rate"),
                   ("credit", "mean_credit")]:
        want = tot[k] / tot["n"]
        check(abs(summary[key] - want) < 1e-12, f"summary {key} {summary[key]} vs recomputed {want}")
    check(summary["errors"] == errs, f"summary errors {summary['errors']} vs {errs}")
    check(set(summary["categories"]) == set(percat), f"categories {list(summary['categories'])}")
    for c, (cn, cc) in percat.items():
        sc = summary["categories"].get(c, {})
        check(sc.get("n") == cn and abs(sc.get("accuracy", -1) - cc / cn) < 1e-12, f"category {c}: {sc} vs {cn},{cc}")
    if n > 1:
        for k, v in summary["pass_at_k"].items():
            k = int(k)
            want = sum(r["pass_at_k"][str(k)] for r in res) / N
            check(abs(v - want) < 1e-12, f"summary pass@{k} {v} vs {want}")
        want_ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k < n] + [n]
        check(sorted(int(k) for k in summary["pass_at_k"]) == want_ks, f"pass@k keys {list(summary['pass_at_k'])}")
    gen = sum(s["tokens"] for r in res for s in (r["samples"] if n > 1 else [r]))
    check(summary["generated_tokens"] == gen, f"generated_tokens {summary['generated_tokens']} vs {gen}")
    return tot


def regenerate(model_dir, res, n, extra, stop_ids):
    """Completions of `tunic generate` on the Python-rendered prompts, decoded in Python."""
    ids = ";".join(",".join(map(str, render(ex["prompt"]))) for ex in examples)
    p = run(["generate", "--model", model_dir, "--ids", ids, "--max-new-tokens", str(MAXT), "--n", str(n), "--json",
             "--stop-ids", ",".join(map(str, stop_ids))] + extra)
    out = {}
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            out[(j["prompt"], j["sample"])] = j
    bad = compared = 0
    ended = {}
    for i, r in enumerate(res):
        samples = r["samples"] if n > 1 else [r]
        for s_i, s in enumerate(samples):
            g = out[(i, s_i)]
            gids = g["ids"][:-1] if g["finish_reason"] == "stop" else g["ids"]
            if g["finish_reason"] == "stop":
                ended[g["ids"][-1]] = ended.get(g["ids"][-1], 0) + 1
            compared += 1
            if decode(gids) != s["completion"] or len(g["ids"]) != s["tokens"]:
                bad += 1
    check(compared == N * n and len(out) == N * n, f"regenerate: compared {compared} of {N * n} samples")
    return bad, ended


# ---- 1. greedy (default)
r1 = os.path.join(W, "greedy.jsonl")
p = run(["eval", "--model", model, "--data", data, "--out", r1, "--max-new-tokens", str(MAXT), "--quiet"])
check("accuracy" in p.stdout and "tokens/s" in p.stdout, "summary table printed")
res = load_jsonl(r1)
summ = json.load(open(os.path.join(W, "greedy.summary.json")))
check_results(res, summ, 1)
check(summ["config"]["stop_ids"] == [EOS, EOT], f"stop ids {summ['config']['stop_ids']}")
bad, _ = regenerate(model, res, 1, [], [EOS, EOT])
check(bad == 0, f"greedy: {bad} completions differ from tunic generate on python-rendered prompts")

# ---- 2. sampled, n = 8: pass@k
NS = 16
r2 = os.path.join(W, "sampled.jsonl")
samp = ["--n", str(NS), "--temperature", "1.5", "--seed", "11"]
run(["eval", "--model", model, "--data", data, "--out", r2, "--max-new-tokens", str(MAXT), "--quiet"] + samp)
res2 = load_jsonl(r2)
summ2 = json.load(open(os.path.join(W, "sampled.summary.json")))
tot = check_results(res2, summ2, NS)
print(f"sampled: {tot['correct']} of {tot['n']} samples correct, pass@k {summ2['pass_at_k']}")
if tot["correct"] == 0:
    print("warning: no correct sample: the pass@k check is trivial with this model/seed")
bad, _ = regenerate(model, res2, NS, ["--temperature", "1.5", "--seed", "11"], [EOS, EOT])
check(bad == 0, f"sampled: {bad} completions differ from tunic generate")

# ---- 3. determinism: same seed, other batch sizes -> identical file; other seed -> different
for bs in ["1", "5"]:
    r3 = os.path.join(W, f"sampled_bs{bs}.jsonl")
    run(["eval", "--model", model, "--data", data, "--out", r3, "--max-new-tokens", str(MAXT), "--quiet",
         "--batch-size", bs] + samp)
    check(open(r3).read() == open(r2).read(), f"batch size {bs}: results differ with the same seed")
r4 = os.path.join(W, "sampled_seed12.jsonl")
run(["eval", "--model", model, "--data", data, "--out", r4, "--max-new-tokens", str(MAXT), "--quiet",
     "--n", str(NS), "--temperature", "1.5", "--seed", "12"])
check(open(r4).read() != open(r2).read(), "another seed gives the same results")

# ---- 4. end of turn: a model whose generation_config only has <eos> still stops at <end_of_turn>
m2 = os.path.join(W, "m_eos_only")
shutil.copytree(model, m2)
for name in ["config.json", "generation_config.json"]:
    path = os.path.join(m2, name)
    if os.path.exists(path):
        j = json.load(open(path))
        j["eos_token_id"] = EOS
        json.dump(j, open(path, "w"))
r5 = os.path.join(W, "eot.jsonl")
hot = ["--n", str(NS), "--temperature", "4", "--seed", "5"]
run(["eval", "--model", m2, "--data", data, "--out", r5, "--max-new-tokens", str(MAXT), "--quiet"] + hot)
summ5 = json.load(open(os.path.join(W, "eot.summary.json")))
check(summ5["config"]["stop_ids"] == [EOS, EOT], f"eos-only model: stop ids {summ5['config']['stop_ids']}")
res5 = load_jsonl(r5)
bad, ended = regenerate(m2, res5, NS, ["--temperature", "4", "--seed", "5"], [EOS, EOT])
check(bad == 0, f"eos-only model: {bad} completions differ from generate with stop ids 258,260")
print(f"samples ended by stop id: {ended}")
if not ended.get(EOT):
    print("warning: no sample hit <end_of_turn>: the stop check is weak with this seed")
run(["eval", "--model", m2, "--data", data, "--out", os.path.join(W, "nochat.jsonl"), "--max-new-tokens", "4",
     "--quiet", "--no-chat"])
summ6 = json.load(open(os.path.join(W, "nochat.summary.json")))
check(summ6["config"]["stop_ids"] == [EOS], f"--no-chat: stop ids {summ6['config']['stop_ids']}")

# ---- 5. --limit and --no-system-prompt
run(["eval", "--model", model, "--data", data, "--out", os.path.join(W, "lim.jsonl"), "--max-new-tokens", "4",
     "--quiet", "--limit", "3", "--no-system-prompt"])
lim = load_jsonl(os.path.join(W, "lim.jsonl"))
check(len(lim) == 3, f"--limit 3: {len(lim)} lines")
want = len([BOS, SOT] + list(f"user\n{examples[0]['prompt']}".encode()) + [EOT, 10, SOT] + list(b"model\n"))
check(lim[0]["prompt_tokens"] == want, f"--no-system-prompt: prompt_tokens {lim[0]['prompt_tokens']} vs {want}")

# ---- 6. errors
def expect_error(args, needle, what):
    p = run(args, ok=False)
    check(p.returncode != 0, f"{what}: exit status 0")
    check(needle in p.stderr, f"{what}: stderr lacks '{needle}': {p.stderr.strip()}")


bad1 = os.path.join(W, "noref.jsonl")
with open(bad1, "w") as f:
    f.write(json.dumps({"id": "a", "prompt": "x", "answer": "1"}) + "\n" + json.dumps({"id": "b", "prompt": "y", "answer": [1]}) + "\n")
# (a row without a reference is reference-free: text metrics only, tests/eval_cli/check_textmetrics.py)
expect_error(["eval", "--model", model, "--data", bad1, "--out", os.path.join(W, "x.jsonl")], "example 2", "answer of the wrong type")
bad2 = os.path.join(W, "dup.jsonl")
with open(bad2, "w") as f:
    f.write(json.dumps({"id": "a", "prompt": "x", "answer": "1"}) + "\n" + json.dumps({"id": "a", "prompt": "y", "answer": 2}) + "\n")
expect_error(["eval", "--model", model, "--data", bad2, "--out", os.path.join(W, "x.jsonl")], "duplicate id 'a'", "duplicate id")
bad3 = os.path.join(W, "garbage.jsonl")
with open(bad3, "w") as f:
    f.write(json.dumps({"id": "a", "prompt": "x", "answer": "1"}) + "\n{not json\n")
expect_error(["eval", "--model", model, "--data", bad3, "--out", os.path.join(W, "x.jsonl")], "garbage.jsonl:2", "bad JSON line")
expect_error(["eval", "--model", model, "--data", os.path.join(W, "missing.jsonl")], "missing.jsonl", "missing data file")
expect_error(["eval", "--model", os.path.join(W, "nomodel"), "--data", data], "nomodel", "missing model")
expect_error(["eval", "--model", model, "--data", data, "--n", "0"], "--n 0 is out of range", "n = 0")
check(not os.path.exists(os.path.join(W, "x.jsonl")), "a failed eval left a results file")

print(f"{len(failures)} failed" if failures else "all eval checks passed")
sys.exit(1 if failures else 0)
