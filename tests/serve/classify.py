"""The classifier of the "auto" route (issue 18): `tunic serve --route route.yaml` with
`classifier: {adapter: router, ...}` picks the route whose label has the highest (length-normalised)
log-probability after the classification prompt.

What it checks:
1. A tiny classifier model trained by the test itself (`tunic init --tokenizer bytes`, 40 steps of
   full `tunic sft`, about 1 s, on a generated dataset of two kinds of requests - arithmetic
   questions and creative-writing requests - each followed by its label), named by `model: DIR`,
   routes held-out requests of both kinds to their category (x-tunic-route, tunic_route,
   tunic_route_by "classifier", the score in x-tunic-route-score and tunic_route_score).
2. The score and the ranking against an independent recomputation: `tunic tokenize` of the filled
   prompt (special tokens) and of each label (none), `tunic logits` of prompt + label, numpy's
   log-softmax, the mean over the label's tokens: the server's route is the argmax and its score
   the recomputed one (1e-4).
3. Keyword rules decide first when one matches (tunic_route_by "keywords"); /metrics counts the
   decisions (tunic_route_decisions_total{by}) and tunic_route_total{category}.
4. An adapter of the served base as the classifier (`adapter: router`, a LoRA from 3 `tunic sft`
   steps) with `normalize: false`: the server's route and score = the argmax and the summed
   log-probs of `tunic logits --adapter` + numpy (1e-4). (A LoRA on the tiny Qwen3-vocabulary base
   does not learn the two kinds in a few steps - the byte-vocabulary model does - so for the
   adapter the check is the ranking itself.)
5. Bad route files: both adapter and model, a prompt without {text}, an unknown field, a
   classifier adapter that is not loaded, routes without keywords and no classifier - each a
   clear error naming the file, exit non-zero.
What it is not: the keyword-only routing (limits.py, client.mjs).
"""
import json
import os
import random
import subprocess

import numpy as np

from serve_common import TUNIC, Server, tiny_base, check, finish, ok_run, workdir
from common import run  # noqa: E402  (tests/e2e, on the path through serve_common)

d = workdir("serve-cls")
model = tiny_base(d, seed=5)
PROMPT = "Request: {text}\nCategory:"
rng = random.Random(7)
things = ["the sea", "a dragon", "autumn", "a lost key", "the moon", "a city at night", "an old friend", "winter",
          "a robot", "the forest", "a storm", "a lighthouse", "spring rain", "a cat", "the desert", "a train"]
forms = ["Write a poem about {}", "Tell a short story about {}", "Write an essay on {}", "Compose a song about {}"]


def math_q():
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    return rng.choice([f"What is {a} plus {b}?", f"Compute {a} times {b}", f"How much is {a} minus {b}?",
                       f"Calculate {a} divided by {b}"])


def write_q():
    return rng.choice(forms).format(rng.choice(things))


data = os.path.join(d, "router.jsonl")
with open(data, "w") as f:
    for i in range(48):
        q, lab = (math_q(), " math") if i % 2 == 0 else (write_q(), " writing")
        f.write(json.dumps({"prompt": PROMPT.replace("{text}", q), "completion": lab}) + "\n")
clsm = os.path.join(d, "clsm")
ok_run(["init", "--arch", "qwen3", "--size", "tiny", "--tokenizer", "bytes", "--seed", 5, "--out", clsm],
       "a tiny byte-vocabulary model for the classifier")
ok_run(["sft", "--model", clsm, "--data", data, "--steps", 40, "--batch-size", 8, "--lr", 0.01, "--seed", 1,
        "--out", os.path.join(d, "clsrun")], "the classifier: 40 steps of full SFT", timeout=300)
clsm = os.path.join(d, "clsrun", "model")  # the trained model (config, tokenizer, model.safetensors)
ok_run(["sft", "--model", model, "--data", data, "--lora-rank", 8, "--lora-targets", "all-linear", "--steps", 3,
        "--batch-size", 8, "--lr", 0.05, "--seed", 1, "--out", os.path.join(d, "run")],
       "a router adapter on the served base: 3 LoRA SFT steps", timeout=300)
router = os.path.join(d, "run", "adapter")


def route_file(name, cls, keywords=True):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write("default: base\nclassifier:\n" + "".join(f"  {k}: {v}\n" for k, v in cls.items()))
        f.write("routes:\n  - category: math\n    adapter: router\n")
        if keywords:
            f.write("    keywords: [integral]\n")
        f.write("  - category: writing\n    adapter: base\n")
    return p


def tok_ids(mdir, text, special):
    p = subprocess.run([TUNIC, "tokenize", "--model", mdir, "--ids"] + ([] if special else ["--no-special"]),
                       input=text, capture_output=True, text=True, check=True)
    return [int(x) for x in p.stdout.split()]


def recompute(mdir, text, extra, normalize=True):
    """{category: score} from tunic logits of model mdir (+ extra args: the adapter) and numpy"""
    pid = tok_ids(mdir, PROMPT.replace("{text}", text), True)
    out = {}
    for cat in ("math", "writing"):
        lid = tok_ids(mdir, " " + cat, False)
        npy = os.path.join(d, "l.npy")
        ok_run(["logits", "--model", mdir, *extra, "--ids", ",".join(map(str, pid + lid)), "--out", npy, "--force"],
               f"tunic logits of prompt + ' {cat}'")
        lg = np.load(npy)[0].astype(np.float64)
        lp = 0.0
        for t, tid in enumerate(lid):
            row = lg[len(pid) - 1 + t]
            lp += row[tid] - (row.max() + np.log(np.exp(row - row.max()).sum()))
        out[cat] = lp / len(lid) if normalize else lp
    return out


def ask(sv, text):
    st, h, j, _ = sv.request("POST", "/v1/chat/completions", {"model": "auto", "max_tokens": 1,
                                                              "messages": [{"role": "user", "content": text}]})
    return st, h, j


held = [("math", "What is 17 plus 26?"), ("math", "Compute 8 times 41"), ("math", "How much is 90 minus 13?"),
        ("writing", "Write a poem about a mountain"), ("writing", "Tell a short story about a ship"),
        ("writing", "Compose a song about the river")]
sv = Server(d, model, "--adapter", f"router={router}", "--route",
            route_file("route.yaml", {"model": clsm, "prompt": json.dumps(PROMPT)}), "--slots", 2)
right, scores = 0, {}
for cat, text in held:
    st, h, j = ask(sv, text)
    ok = st == 200 and h.get("x-tunic-route") == cat and j.get("tunic_route") == cat and j.get("tunic_route_by") == "classifier"
    ok = ok and abs(float(h.get("x-tunic-route-score", "nan")) - j.get("tunic_route_score", 0)) < 1e-5
    right += ok
    scores[text] = (h.get("x-tunic-route"), j.get("tunic_route_score"))
check(right == len(held), f"held-out requests routed to their category by the trained classifier: {right}/{len(held)} "
      f"(header, field, score in both)")
for cat, text in (held[0], held[3]):
    ref = recompute(clsm, text, [])
    best = max(ref, key=ref.get)
    got, sc = scores[text]
    check(got == best and sc is not None and abs(sc - ref[best]) < 1e-4,
          f"'{text}': the server's route {got} ({sc}) = the argmax of tunic logits + numpy {ref}")
st, h, j = ask(sv, "solve the integral of a poem")
check(st == 200 and h.get("x-tunic-route") == "math" and j.get("tunic_route_by") == "keywords" and "x-tunic-route-score" not in h,
      "a keyword match decides before the classifier (tunic_route_by keywords, no score)")
m = sv.metrics()
check(m.get('tunic_route_decisions_total{by="classifier"}') == len(held) and m.get('tunic_route_decisions_total{by="keywords"}') == 1,
      "/metrics counts the decisions by classifier and by keywords")
check(m.get('tunic_route_total{category="math",adapter="router"}') == 4, "/metrics counts the routes (3 + 1 math)")
check(sv.stop() == 0, "SIGTERM, exit 0")

# an adapter of the served base as the classifier, the sum instead of the mean
sv = Server(d, model, "--adapter", f"router={router}", "--route",
            route_file("route2.yaml", {"adapter": "router", "prompt": json.dumps(PROMPT), "normalize": "false"}),
            "--slots", 2, name="serve2")
for text in (held[1][1], held[4][1]):
    st, h, j = ask(sv, text)
    ref = recompute(model, text, ["--adapter", router], normalize=False)
    best = max(ref, key=ref.get)
    check(st == 200 and j.get("tunic_route") == best and abs(j.get("tunic_route_score", 0) - ref[best]) < 1e-4,
          f"adapter: router, normalize false: route {j.get('tunic_route')} ({j.get('tunic_route_score')}) = the argmax of "
          f"the summed log-probs of tunic logits --adapter + numpy {ref}")
check(sv.stop() == 0, "SIGTERM, exit 0")

# bad route files
bad = {
    "both.yaml": ({"adapter": "router", "model": clsm}, True, "not both"),
    "notext.yaml": ({"adapter": "router", "prompt": json.dumps("Category:")}, True, "{text}"),
    "field.yaml": ({"adapter": "router", "temperature": 1}, True, "temperature"),
    "unloaded.yaml": ({"adapter": "nosuch"}, True, "nosuch"),
}
for name, (cls, kw, want) in bad.items():
    p = run(["serve", "--model", model, "--adapter", f"router={router}", "--route", route_file(name, cls, kw), "--port", 0],
            timeout=60)
    check(p.returncode not in (0, None) and p.returncode > 0 and name in p.stderr and want in p.stderr,
          f"{name}: refused naming the file and '{want}' ({p.stderr.strip()[-160:]})")
nok = os.path.join(d, "nokw.yaml")
with open(nok, "w") as f:
    f.write("default: base\nroutes:\n  - category: math\n    adapter: base\n")
p = run(["serve", "--model", model, "--route", nok, "--port", 0], timeout=60)
check(p.returncode > 0 and "nokw.yaml" in p.stderr and "keywords" in p.stderr,
      f"a route without keywords and no classifier: refused ({p.stderr.strip()[-120:]})")
finish()
