"""Data sets as published (issue 21): small hand-written files in each schema, rows shaped as the
real data sets have them, read by sft / dpo / grpo / eval; and run configs in TRL's style.

Each published file is checked against the same examples written by hand (here, in Python) in
tunic's native forms: training on both gives the same losses bit for bit (same seed), eval gives
the same prompts and references. So a wrong conversion (prompt/completion split, the #### or
\\boxed{} reference, roles, the implicit prompt of UltraFeedback) fails. Also: the schema is
reported, .json arrays read as JSONL, --field-map, and errors name FILE:LINE and the schema.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from common import check, finish, init_model, jsonl, read_metrics, run, workdir  # noqa: E402

W = workdir("published")
M = os.path.join(W, "m")
init_model(M, seed=5)   # byte tokenizer with a Gemma-style chat template


def path(name):
    return os.path.join(W, name)


def write_json(name, rows):
    with open(path(name), "w") as f:
        json.dump(rows, f, indent=2)
    return path(name)


def train(cmd, data, tag, *extra):
    out = path("run_" + tag)
    p = run([cmd, "--model", M, "--data", data, "--out", out, "--steps", 2, "--batch-size", 2, "--seed", 1,
             "--lr", 1e-3, *extra], timeout=300)
    if p.returncode != 0:
        print(p.stderr[-800:])
        return None, p
    return [(r.get("loss"), r.get("grad_norm")) for r in read_metrics(out) if "loss" in r], p


def same_training(cmd, published, native, tag, schema, *extra, pub_only=()):
    a, pa = train(cmd, published, tag + "_pub", *extra, *pub_only)
    b, _ = train(cmd, native, tag + "_nat", *extra)
    check(a is not None and a == b and len(a) == 2,
          f"{cmd} on {tag} == the hand-converted native file (losses {a} vs {b})")
    check(f"schema {schema}" in pa.stderr, f"{tag}: the loader reports schema {schema}")


# ---- rows as the data sets publish them
GSM = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
               "in April and May.\n#### 72"},
    {"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
     "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"},
    {"question": "A shop sold 1200 pens on Monday and 34 on Tuesday. How many pens in all?",
     "answer": "1200 + 34 = <<1200+34=1234>>1234\n#### 1,234"},
    {"question": "Tom has 3 apples and eats one. How many are left?", "answer": "3 - 1 = <<3-1=2>>2\n#### 2"},
]
GSM_REF = ["72", "10", "1234", "2"]
MATH = [
    {"problem": "If $x + 2 = 5$, what is $x$?", "level": "Level 1", "type": "Algebra",
     "solution": "Subtracting 2 from both sides gives $x = \\boxed{3}$."},
    {"problem": "What is $\\frac{1}{4} + \\frac{1}{4}$?", "level": "Level 1", "type": "Prealgebra",
     "solution": "We have $\\frac{1}{4}+\\frac{1}{4} = \\frac{2}{4} = \\boxed{\\frac{1}{2}}$."},
    {"problem": "Compute $2^{10}$.", "level": "Level 2", "type": "Algebra",
     "solution": "$2^{10} = \\boxed{1024}$."},
    {"problem": "Simplify $\\sqrt{16}$.", "level": "Level 1", "type": "Algebra",
     "solution": "Since $4^2 = 16$, $\\sqrt{16} = \\boxed{4}$."},
]
MATH_REF = ["3", "\\frac{1}{2}", "1024", "4"]
ALPACA = [
    {"instruction": "Give three tips for staying healthy.", "input": "",
     "output": "1. Eat a balanced diet.\n2. Exercise regularly.\n3. Sleep well.",
     "text": "Below is an instruction that describes a task. ..."},
    {"instruction": "Translate the sentence into French.", "input": "The cat sleeps.", "output": "Le chat dort.",
     "text": "Below is an instruction that describes a task, paired with an input ..."},
    {"instruction": "Name a primary color.", "input": "", "output": "Red.", "text": "..."},
]
SHAREGPT = [
    {"id": "abc_0", "conversations": [{"from": "human", "value": "Hi, who are you?"},
                                      {"from": "gpt", "value": "I am a helpful assistant."},
                                      {"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4."}]},
    {"id": "abc_1", "conversations": [{"from": "system", "value": "Answer briefly."},
                                      {"from": "human", "value": "Capital of France?"}, {"from": "gpt", "value": "Paris."}]},
]
OPENTHOUGHTS = [
    {"system": "Your role as an assistant involves thoroughly exploring questions.",
     "conversations": [{"from": "user", "value": "Return the sum of 3 and 4."},
                       {"from": "assistant", "value": "<|begin_of_thought|>3+4=7<|end_of_thought|> The answer is 7."}]},
    {"system": "Your role as an assistant involves thoroughly exploring questions.",
     "conversations": [{"from": "user", "value": "Is 9 prime?"},
                       {"from": "assistant", "value": "<|begin_of_thought|>9=3*3<|end_of_thought|> No."}]},
]
PAIRS = [("What is 2+2?", "4", "5"), ("Name a fruit.", "An apple.", "A car."),
         ("Say hi.", "Hi!", "Goodbye."), ("Color of the sky?", "Blue.", "Green.")]


def conv(p, a):
    return [{"content": p, "role": "user"}, {"content": a, "role": "assistant"}]


ULTRA = [{"prompt": p, "prompt_id": "%064x" % i, "chosen": conv(p, c), "rejected": conv(p, r), "messages": conv(p, c),
          "score_chosen": 8.0, "score_rejected": 4.5} for i, (p, c, r) in enumerate(PAIRS)]
ARGILLA = [{"source": "evol_instruct", "instruction": p, "chosen_response": c, "chosen_rating": 5,
            "chosen_model": "gpt-4", "rejected_response": r, "rejected_rating": 2, "rejected_model": "llama"}
           for p, c, r in PAIRS]
TRL_CONV = [{"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]} for p, c, r in PAIRS]


def msgs(*turns):
    return [{"role": r, "content": c} for r, c in turns]


# ---- SFT: each published schema == its native form
gsm = jsonl(path("gsm8k.jsonl"), GSM)
gsm_nat = jsonl(path("gsm8k_native.jsonl"), [{"prompt": r["question"], "completion": r["answer"]} for r in GSM])
same_training("sft", gsm, gsm_nat, "gsm8k", "gsm8k")
same_training("sft", write_json("gsm8k.json", GSM), gsm_nat, "gsm8k-json-array", "gsm8k")
same_training("sft", jsonl(path("math.jsonl"), MATH),
              jsonl(path("math_native.jsonl"), [{"prompt": r["problem"], "completion": r["solution"]} for r in MATH]),
              "math", "math")
same_training("sft", jsonl(path("alpaca.jsonl"), ALPACA),
              jsonl(path("alpaca_native.jsonl"),
                    [{"prompt": r["instruction"] + ("\n\n" + r["input"] if r["input"] else ""), "completion": r["output"]}
                     for r in ALPACA]), "alpaca", "alpaca")
ROLE = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}
same_training("sft", jsonl(path("sharegpt.jsonl"), SHAREGPT),
              jsonl(path("sharegpt_native.jsonl"),
                    [{"messages": [{"role": ROLE[t["from"]], "content": t["value"]} for t in r["conversations"]]}
                     for r in SHAREGPT]), "sharegpt", "sharegpt")
same_training("sft", write_json("openthoughts.json", OPENTHOUGHTS),
              jsonl(path("openthoughts_native.jsonl"),
                    [{"messages": [{"role": "system", "content": r["system"]}] +
                      [{"role": ROLE[t["from"]], "content": t["value"]} for t in r["conversations"]]}
                     for r in OPENTHOUGHTS]), "openthoughts", "sharegpt")
same_training("sft", jsonl(path("ultra_sft.jsonl"), ULTRA),
              jsonl(path("ultra_sft_native.jsonl"), [{"messages": r["chosen"]} for r in ULTRA]),
              "ultrafeedback-sft", "ultrafeedback")
custom = jsonl(path("custom.jsonl"), [{"q": r["question"], "sol": r["answer"], "id": i} for i, r in enumerate(GSM)])
same_training("sft", custom, gsm_nat, "field-map", "prompt-completion", pub_only=("--field-map", "prompt=q,completion=sol"))

# ---- DPO: UltraFeedback == TRL's implicit prompt; Argilla == TRL's standard strings (with --chat)
same_training("dpo", jsonl(path("ultra.jsonl"), ULTRA),
              jsonl(path("ultra_native.jsonl"), [{"chosen": r["chosen"], "rejected": r["rejected"]} for r in ULTRA]),
              "ultrafeedback", "ultrafeedback")
same_training("dpo", jsonl(path("argilla.jsonl"), ARGILLA),
              jsonl(path("argilla_native.jsonl"), [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]),
              "argilla-dpo", "argilla-dpo", "--chat")
ORCA = [{"system": "You are an AI assistant." if i % 2 else "", "question": p, "chosen": c, "rejected": r}
        for i, (p, c, r) in enumerate(PAIRS)]
same_training("dpo", jsonl(path("orca.jsonl"), ORCA),
              jsonl(path("orca_native.jsonl"),
                    [{"prompt": ([{"role": "system", "content": o["system"]}] if o["system"] else []) +
                      [{"role": "user", "content": o["question"]}], "chosen": [{"role": "assistant", "content": o["chosen"]}],
                      "rejected": [{"role": "assistant", "content": o["rejected"]}]} for o in ORCA]),
              "orca-dpo", "orca-dpo", "--chat")
same_training("dpo", write_json("trl_conv.json", TRL_CONV), jsonl(path("ultra_native2.jsonl"),
              [{"chosen": conv(p, c), "rejected": conv(p, r)} for p, c, r in PAIRS]),
              "trl-conversational", "trl-preference-conversational")


# ---- eval (prompts): the same prompts and the references after #### / in \boxed{}
def eval_rows(data, tag, *extra):
    out = path("eval_" + tag + ".jsonl")
    p = run(["eval", "--model", M, "--data", data, "--out", out, "--max-new-tokens", 2, "--quiet", "--force", *extra])
    if p.returncode != 0:
        print(p.stderr[-600:])
        return None, p
    with open(out) as f:
        return [json.loads(l) for l in f if l.strip()], p


def strip(rows):
    return [(r["prompt"], r["expected_answer"], r["completion"]) for r in rows] if rows else None


a, pa = eval_rows(gsm, "gsm")
b, _ = eval_rows(jsonl(path("gsm_prompts.jsonl"), [{"prompt": r["question"], "answer": x} for r, x in zip(GSM, GSM_REF)]), "gsm_nat")
check(a and [r["expected_answer"] for r in a] == GSM_REF, "eval gsm8k: references after #### (commas dropped): %s"
      % ([r["expected_answer"] for r in a] if a else pa.stderr[-200:]))
check(strip(a) == strip(b), "eval gsm8k == the native prompt/answer file (prompts, references, completions)")
a, pa = eval_rows(write_json("math.json", MATH), "math")
check(a and [r["expected_answer"] for r in a] == MATH_REF, "eval math: references from \\boxed{} (nested braces): %s"
      % ([r["expected_answer"] for r in a] if a else pa.stderr[-200:]))
a, pa = eval_rows(jsonl(path("sharegpt_eval.jsonl"), SHAREGPT[1:]), "sharegpt")
b, _ = eval_rows(jsonl(path("sharegpt_eval_nat.jsonl"),
                       [{"messages": msgs(("system", "Answer briefly."), ("user", "Capital of France?")), "answer": "Paris."}]),
                 "sharegpt_nat")
check(a is not None and strip(a) == strip(b), "eval sharegpt: prompt = the turns before the last reply, reference = that reply")

# ---- GRPO reads GSM8K as published (a .json array), answer reward against the #### number
g = path("grpo_gsm")
p = run(["grpo", "--model", M, "--data", path("gsm8k.json"), "--out", g, "--steps", 1, "--batch-size", 2,
         "--num-generations", 2, "--max-tokens-to-generate", 4, "--reward", "answer", "--seed", 1], timeout=300)
check(p.returncode == 0 and "schema gsm8k" in p.stderr, "grpo on gsm8k.json (answer reward) runs (%s)" % p.stderr[-300:])

# ---- errors: FILE:LINE and the schema expected
def err(args, what, *must):
    p = run(args)
    msg = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    check(p.returncode != 0 and all(m in p.stderr for m in must), f"{what}: {msg[-220:]}")


bad = jsonl(path("bad_gsm.jsonl"), GSM[:2] + [{"question": "q?", "answer": "no final line"}])
err(["eval", "--model", M, "--data", bad, "--out", path("x.jsonl"), "--quiet", "--force"],
    "gsm8k row without ####", "bad_gsm.jsonl:3", "####")
bad = jsonl(path("bad_share.jsonl"), SHAREGPT[:1] + [{"conversations": [{"from": "robot", "value": "x"}]}])
err(["sft", "--model", M, "--data", bad, "--out", path("r1")], "sharegpt with an unknown speaker", "bad_share.jsonl:2", "sharegpt", "robot")
err(["dpo", "--model", M, "--data", gsm, "--out", path("r2")], "gsm8k given to dpo", "gsm8k.jsonl:1", "gsm8k",
    '"chosen" and "rejected"')
bad = jsonl(path("mixed.jsonl"), GSM[:2] + ALPACA[:1])
err(["sft", "--model", M, "--data", bad, "--out", path("r3")], "alpaca row in a gsm8k file", "mixed.jsonl:3", "alpaca", "gsm8k")
with open(path("bad_array.json"), "w") as f:
    f.write('[\n  {"question": "a?", "answer": "#### 1"},\n  {"question": "b?", "answer": "#### 2"},\n  7\n]\n')
err(["sft", "--model", M, "--data", path("bad_array.json"), "--out", path("r4")], "a .json array with a non-object",
    "bad_array.json:4", "expected a JSON object")
err(["sft", "--model", M, "--data", custom, "--out", path("r5"), "--field-map", "prompt=question,completion=sol"],
    "--field-map naming an absent field", "custom.jsonl:1", '"question"')
err(["sft", "--model", M, "--data", jsonl(path("unknown.jsonl"), [{"query": "a", "reply": "b"}]), "--out", path("r6")],
    "no known schema", "unknown.jsonl:1", "--field-map", "gsm8k")

# ---- run configs in TRL's style run as written (aliases), same result as tunic's names
yaml = path("sft_tiny.yaml")
with open(yaml, "w") as f:
    f.write(f"""# SFT on GSM8K, written for TRL's SFTTrainer / transformers' TrainingArguments
model_name_or_path: {M}
dataset_name: {gsm}
output_dir: {path("trl_yaml")}
learning_rate: 1.0e-3
lr_scheduler_type: linear
warmup_steps: 1
num_train_epochs: 3
max_steps: 2
per_device_train_batch_size: 2
gradient_accumulation_steps: 1
max_seq_length: 256
weight_decay: 0.01
adam_beta2: 0.99
seed: 1
lora_r: 4
lora_alpha: 8
lora_target_modules: q_proj,v_proj
logging_steps: 1
bf16: false
report_to: none
""")
p = run(["sft", "--config", yaml], timeout=300)
check(p.returncode == 0, "a TRL-style sft_tiny.yaml runs as written (%s)" % p.stderr[-300:])
check("'bf16' (a TRL/transformers option) has no effect" in p.stderr, "options without effect are named in a warning")
p2 = run(["sft", "--model", M, "--data", gsm, "--out", path("tunic_flags"), "--lr", 1e-3, "--schedule", "linear",
          "--warmup-steps", 1, "--epochs", 3, "--steps", 2, "--batch-size", 2, "--max-seq-len", 256,
          "--weight-decay", 0.01, "--beta2", 0.99, "--seed", 1, "--lora-rank", 4, "--lora-alpha", 8,
          "--lora-targets", "q_proj,v_proj"], timeout=300)
if p.returncode == 0 and p2.returncode == 0:
    a = [(r["loss"], r["grad_norm"]) for r in read_metrics(path("trl_yaml")) if "loss" in r]
    b = [(r["loss"], r["grad_norm"]) for r in read_metrics(path("tunic_flags")) if "loss" in r]
    check(a == b and len(a) == 2, f"TRL names == tunic's flags: same losses ({a} vs {b})")
    cfg = json.load(open(os.path.join(path("trl_yaml"), "run_manifest.json")))["config"]
    check(cfg["lr"] == 1e-3 and cfg["steps"] == 2 and cfg["lora-rank"] == 4 and cfg["batch-size"] == 2,
          "the manifest records the aliased values under tunic's names")
gy = path("grpo.yaml")
with open(gy, "w") as f:
    f.write(f"model_name_or_path: {M}\ntrain_file: {gsm}\noutput_dir: {path('grpo_yaml')}\nlearning_rate: 5.0e-6\n"
            f"num_generations: 2\nmax_prompt_length: 200\nmax_completion_length: 3\nmax_steps: 1\n"
            f"per_device_train_batch_size: 2\nreward: answer\n")
p = run(["grpo", "--config", gy], timeout=300)
check(p.returncode == 0 and "max-tokens-to-generate" in p.stdout, "a TRL-style GRPO config (num_generations, max_completion_length) runs")
if p.returncode == 0:
    cfg = json.load(open(os.path.join(path("grpo_yaml"), "run_manifest.json")))["config"]
    check(cfg["max-tokens-to-generate"] == 3 and cfg["num-generations"] == 2 and cfg["max-prompt-length"] == 200
          and abs(cfg["lr"] - 5e-6) < 1e-12, "GRPO aliases land on tunic's options (%s)" % {k: cfg[k] for k in ("lr", "max-tokens-to-generate")})
with open(path("typo.yaml"), "w") as f:
    f.write(f"model_name_or_path: {M}\nlearning_rat: 1.0e-3\n")
err(["sft", "--config", path("typo.yaml")], "an unknown key is still an error", "typo.yaml:2", "learning_rat")
finish()
