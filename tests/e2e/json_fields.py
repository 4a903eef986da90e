#!/usr/bin/python3
"""Issue 14, "the JSON field helpers ... with errors that name the field path": a field of the
wrong type in each JSON reader fails cleanly (exit 1 or 2, no signal) with a message naming the
file and the field:
  - config.json: hidden_size as a string, rope_scaling as a number, eos_token_id as a string;
  - an SFT dataset line whose "completion" is a number, whose message "content" is a number, whose
    "tools" is a string; a preference line whose "tools" is an object;
  - adapter_config.json: r as a string, lora_alpha as a list;
  - --resume: trainer_state.json's seed as a string and step as a string (checksums updated, so
    the file is read, not refused as corrupted), checksums.json's bytes as a string."""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, copy_model, expect_error, finish, init_model, jsonl, ok_run, workdir

W = workdir("jsonfields")
GOOD = init_model(os.path.join(W, "good"), seed=4)
n_case = 0


def config_variant(name, **fields):
    global n_case
    n_case += 1
    d = copy_model(GOOD, os.path.join(W, f"{n_case:02d}-{name}"))
    p = os.path.join(d, "config.json")
    c = json.load(open(p))
    c.update(fields)
    json.dump(c, open(p, "w"))
    return d


for name, fields, must in [
        ("hidden-str", {"hidden_size": "64"}, ["config.json", "hidden_size"]),
        ("rope-num", {"rope_scaling": 3}, ["config.json", "rope_scaling"]),
        ("eos-str", {"eos_token_id": "2"}, ["config.json", "eos_token_id"])]:
    d = config_variant(name, **fields)
    expect_error(["generate", "--model", d, "--ids", "1,2,3", "--max-new-tokens", "2"], f"config.json {name}", must)

# an SFT dataset line of the wrong types
data = os.path.join(W, "bad_completion.jsonl")
jsonl(data, [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": 5}])
expect_error(["sft", "--model", GOOD, "--data", data, "--out", os.path.join(W, "run_c"), "--steps", "1"],
             "dataset completion as a number", ["bad_completion.jsonl:2", "completion"])
data = os.path.join(W, "bad_content.jsonl")
jsonl(data, [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": 5}]}])
expect_error(["sft", "--model", GOOD, "--data", data, "--out", os.path.join(W, "run_m"), "--steps", "1"],
             "dataset message content as a number", ["bad_content.jsonl:1", "content"])

data = os.path.join(W, "bad_tools.jsonl")
jsonl(data, [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "tools": "calculator"}])
expect_error(["sft", "--model", GOOD, "--data", data, "--out", os.path.join(W, "run_t"), "--steps", "1"],
             "dataset tools as a string", ["bad_tools.jsonl:1", "tools"])
data = os.path.join(W, "bad_pref_tools.jsonl")
jsonl(data, [{"prompt": "q", "chosen": "a", "rejected": "b", "tools": {"name": "x"}}])
expect_error(["dpo", "--model", GOOD, "--data", data, "--out", os.path.join(W, "run_p"), "--steps", "1"],
             "preference tools as an object", ["bad_pref_tools.jsonl:1", "tools"])

# adapter_config.json
good_data = os.path.join(W, "sft.jsonl")
jsonl(good_data, [{"prompt": f"q{i}", "completion": f" a{i}"} for i in range(8)])
run_dir = os.path.join(W, "run")
ok_run(["sft", "--model", GOOD, "--data", good_data, "--out", run_dir, "--steps", "2", "--batch-size", "2",
        "--lora-rank", "4", "--save-every", "1", "--eval-split", "0"], "a LoRA run with checkpoints")
for name, field, value in [("r-str", "r", "8"), ("alpha-list", "lora_alpha", [16])]:
    ad = os.path.join(W, f"adapter-{name}")
    copy_model(os.path.join(run_dir, "adapter"), ad)
    p = os.path.join(ad, "adapter_config.json")
    c = json.load(open(p))
    c[field] = value
    json.dump(c, open(p, "w"))
    expect_error(["generate", "--model", GOOD, "--adapter", ad, "--ids", "1,2", "--max-new-tokens", "2"],
                 f"adapter_config.json {name}", ["adapter_config.json", field])


# --resume: the run's state of the wrong types
def resume_case(name, edit):
    d = os.path.join(W, f"resume-{name}")
    copy_model(run_dir, d)
    ck = os.path.join(d, "checkpoints")
    for step in os.listdir(ck):
        edit(os.path.join(ck, step))
    return d


def state_edit(field, value):
    def edit(ck):
        p = os.path.join(ck, "trainer_state.json")
        s = json.load(open(p))
        s[field] = value
        raw = json.dumps(s).encode()
        open(p, "wb").write(raw)
        cp = os.path.join(ck, "checksums.json")
        if os.path.exists(cp):  # the file stays consistent with its checksum: read, not refused as corrupted
            c = json.load(open(cp))
            c["files"]["trainer_state.json"] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
            json.dump(c, open(cp, "w"))
    return edit


def checksum_edit(ck):
    cp = os.path.join(ck, "checksums.json")
    c = json.load(open(cp))
    c["files"]["trainer_state.json"]["bytes"] = "12"
    json.dump(c, open(cp, "w"))


for name, edit, must in [("seed-str", state_edit("seed", "1"), ["trainer_state.json", "seed"]),
                         ("step-str", state_edit("step", "2"), ["trainer_state.json", "step"]),
                         ("bytes-str", checksum_edit, ["checksums.json", "files.trainer_state.json", "bytes"])]:
    d = resume_case(name, edit)
    expect_error(["sft", "--model", GOOD, "--data", good_data, "--out", d, "--steps", "3", "--batch-size", "2",
                  "--lora-rank", "4", "--save-every", "1", "--eval-split", "0", "--resume"], f"--resume with {name}", must)
finish()
