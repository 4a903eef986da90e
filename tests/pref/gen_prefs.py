#!/usr/bin/python3
"""Synthetic preference data for the DPO tests and demos: concise vs verbose answers.

What it is for: the same prompt ("what is 3 plus 4?") answered concisely ("7.") and verbosely
(an apology, hedging and the answer buried in filler), written as TRL-style JSONL pairs
{"prompt", "chosen": concise, "rejected": verbose}, plus an SFT file that mixes both styles
(so a tiny model first learns to produce either), and a prompt file for generation.
Deterministic for a given --seed. What it is not: a benchmark of anything real.

Usage: gen_prefs.py --out DIR [--pairs 240] [--eval 40] [--seed 1] [--conversational]
Writes DIR/prefs_train.jsonl, DIR/prefs_eval.jsonl, DIR/sft_mix.jsonl, DIR/prompts_eval.txt
"""
import argparse
import json
import os
import random

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
OPS = [("plus", lambda a, b: a + b), ("times", lambda a, b: a * b), ("minus", lambda a, b: a - b)]
FILLERS = ["Sorry, let me think about this. ", "I apologize, this is hard. ", "Sorry again for the delay. ",
           "Well, I am not sure, sorry. "]
ENDS = [" I hope this helps, sorry.", " Sorry if this is wrong.", " Apologies for the long answer."]


def example(rng):
    a, b = rng.randrange(10), rng.randrange(10)
    name, f = OPS[rng.randrange(len(OPS))]
    prompt = f"what is {WORDS[a]} {name} {WORDS[b]}?"
    ans = str(f(a, b))
    concise = f"{ans}."
    verbose = "".join(rng.sample(FILLERS, 2)) + f"the answer is {ans}." + rng.choice(ENDS)
    return prompt, concise, verbose


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--pairs", type=int, default=240)
    ap.add_argument("--eval", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--conversational", action="store_true", help="prompt/chosen/rejected as message lists")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    seen, rows = set(), []
    while len(rows) < a.pairs + a.eval:
        p, c, v = example(rng)
        if p in seen:
            continue
        seen.add(p)
        rows.append((p, c, v))

    def pair(p, c, v):
        if a.conversational:
            return {"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": c}],
                    "rejected": [{"role": "assistant", "content": v}]}
        return {"prompt": p + "\n", "chosen": c, "rejected": v}

    for name, part in (("prefs_train.jsonl", rows[:a.pairs]), ("prefs_eval.jsonl", rows[a.pairs:])):
        with open(os.path.join(a.out, name), "w") as f:
            for r in part:
                f.write(json.dumps(pair(*r)) + "\n")
    with open(os.path.join(a.out, "sft_mix.jsonl"), "w") as f:  # both styles, half each
        for i, (p, c, v) in enumerate(rows[:a.pairs]):
            f.write(json.dumps({"prompt": p + "\n", "completion": c if i % 2 == 0 else v}) + "\n")
    with open(os.path.join(a.out, "prompts_eval.txt"), "w") as f:
        for p, _, _ in rows[a.pairs:]:
            f.write(p + "\n")


if __name__ == "__main__":
    main()
