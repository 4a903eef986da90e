#!/usr/bin/env python3
"""check_textmetrics.py - reference-free rows of `tunic eval --completions`: text metrics (words,
tokens with a byte tokenizer = UTF-8 bytes, distinct-1/2 over each bucket, mean type-token
ratio, refusal rate) recomputed here independently, per category from --categorize rules
(first matching category in file order, else "other"); rows with a reference are still scored;
--classifier with a tiny random model names a category for every row (or "other", counted);
a bad rules file is an error naming file and line."""
import json, os, random, shutil, string, subprocess, sys
tunic = os.environ["TUNIC"]
work = sys.argv[1]
shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
rng = random.Random(5)
vocab = ["the", "sea", "cat", "Sea,", "runs", "(fast)", "code", "poem", "I'm", "sorry", "answer", "42.", "x"]
prompts = ["Write a poem about {}", "Write a python function for {}", "How many {} are there?", "Tell me about {}"]
rows = []
for i in range(30):
    comp = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12)))
    if i % 7 == 3: comp = "I'm sorry, I cannot do that. " + comp
    r = {"id": i, "prompt": rng.choice(prompts).format(rng.choice(["cats", "sums"])), "completion": comp}
    if i % 10 == 0: r["answer"] = "42"
    rows.append(r)
rules = "math: [how many, sum]\ncode: [python, function]\ncreative: [poem, story]\n"
open(os.path.join(work, "kw.yaml"), "w").write(rules)
cats = [("math", ["how many", "sum"]), ("code", ["python", "function"]), ("creative", ["poem", "story"])]
def cat_of(p):
    for n, kws in cats:
        if any(k in p.lower() for k in kws): return n
    return "other"
inp = os.path.join(work, "c.jsonl")
with open(inp, "w") as f:
    for r in rows: f.write(json.dumps(r) + "\n")
model = os.path.join(work, "model")
subprocess.run([tunic, "init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", model, "--seed", "2"],
               check=True, capture_output=True)
out = os.path.join(work, "r.jsonl")
subprocess.run([tunic, "eval", "--completions", inp, "--out", out, "--categorize", os.path.join(work, "kw.yaml"),
                "--tokenizer", model, "--force"], check=True, stdout=subprocess.DEVNULL)
summ = json.load(open(os.path.join(work, "r.summary.json")))
REF = ["i'm sorry", "i am sorry", "i cannot", "i can't", "i can not", "as an ai", "i'm unable", "i am unable", "i won't",
       "i will not", "cannot help with", "not able to help", "i must decline"]
def words(s):
    out = []
    for w in s.split():
        w = w.strip(string.punctuation).lower()
        if w: out.append(w)
    return out
def metrics(comps):
    uni, bi, nu, nb, ttr, refs, nw, nt = set(), set(), 0, 0, 0.0, 0, 0, 0
    for c in comps:
        w = words(c)
        uni.update(w); nu += len(w)
        bg = list(zip(w, w[1:])); bi.update(bg); nb += len(bg)
        ttr += len(set(w)) / len(w) if w else 0
        refs += any(p in c.lower() for p in REF)
        nw += len(w); nt += len(c.encode())
    n = len(comps)
    return {"n": n, "mean_words": nw / n, "mean_tokens": nt / n, "distinct_1": len(uni) / nu if nu else 0,
            "distinct_2": len(bi) / nb if nb else 0, "type_token_ratio": ttr / n, "refusal_rate": refs / n}
def close(a, b):
    for k in b:
        assert abs(a[k] - b[k]) < 1e-9, (k, a[k], b[k])
close(summ["text"], metrics([r["completion"] for r in rows]))
for c in {cat_of(r["prompt"]) for r in rows}:
    close(summ["text"]["categories"][c], metrics([r["completion"] for r in rows if cat_of(r["prompt"]) == c]))
res = [json.loads(l) for l in open(out)]
assert [r["category"] for r in res] == [cat_of(r["prompt"]) for r in rows]
assert summ["reference_free"] == 27 and summ["n"] == 3          # 3 rows with a reference are scored
assert all(("correct" in r) == (rows[i].get("answer") is not None) for i, r in enumerate(res))
# a model as classifier
p = subprocess.run([tunic, "eval", "--completions", inp, "--out", os.path.join(work, "r2.jsonl"), "--classifier", model,
                    "--categories", "math,code,creative"], check=True, capture_output=True, text=True)
res2 = [json.loads(l) for l in open(os.path.join(work, "r2.jsonl"))]
assert all(r["category"] in ("math", "code", "creative", "other") and r.get("category_assigned") for r in res2)
nfail = int(p.stdout.split("prompts it named no category")[0].split()[-1])
assert nfail == sum(r["category"] == "other" for r in res2), p.stdout
print("text metrics match the Python reference; classifier (tiny random model) named %d of 30, %d counted as other"
      % (30 - nfail, nfail))
open(os.path.join(work, "bad.yaml"), "w").write("math: [sum]\ncode: python\n")
p = subprocess.run([tunic, "eval", "--completions", inp, "--out", os.path.join(work, "r3.jsonl"), "--categorize",
                    os.path.join(work, "bad.yaml")], capture_output=True, text=True)
assert p.returncode != 0 and "bad.yaml:2" in p.stderr, p.stderr
# the same on a model (tunic eval --model): rows without a reference are generated and get text
# metrics only, rows with one are scored as always; --categorize buckets both; the figures are
# recomputed here from the results file's completions
data = os.path.join(work, "d.jsonl")
with open(data, "w") as f:
    for r in rows: f.write(json.dumps({k: v for k, v in r.items() if k != "completion"}) + "\n")
out4 = os.path.join(work, "r4.jsonl")
p = subprocess.run([tunic, "eval", "--model", model, "--data", data, "--out", out4, "--categorize",
                    os.path.join(work, "kw.yaml"), "--max-new-tokens", "12", "--quiet"], check=True, capture_output=True, text=True)
assert "examples without a reference: text metrics only" in p.stdout, p.stdout
s4 = json.load(open(os.path.join(work, "r4.summary.json")))
res4 = [json.loads(l) for l in open(out4)]
assert [r["category"] for r in res4] == [cat_of(r["prompt"]) for r in rows]
assert s4["reference_free"] == 27 and s4["n"] == 3, (s4["reference_free"], s4["n"])
assert all(("correct" in r) == (rows[i].get("answer") is not None) for i, r in enumerate(res4))
assert all((r["expected_answer"] is None) == (rows[i].get("answer") is None) for i, r in enumerate(res4))
comps4 = [r["completion"] for r in res4]
m4 = metrics(comps4)
m4.pop("mean_tokens")  # tokens generated (the stop token excluded), not bytes of the decoded text
close(s4["text"], m4)
want_tok = sum(r["tokens"] - (r["finish_reason"] == "stop") for r in res4) / len(res4)
assert abs(s4["text"]["mean_tokens"] - want_tok) < 1e-9, (s4["text"]["mean_tokens"], want_tok)
for c in {cat_of(r["prompt"]) for r in rows}:
    mc = metrics([comps4[i] for i, r in enumerate(rows) if cat_of(r["prompt"]) == c]); mc.pop("mean_tokens")
    close(s4["text"]["categories"][c], mc)
print("eval on a model: 27 reference-free prompts with text metrics matching the Python reference, 3 scored")
