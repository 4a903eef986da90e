#!/usr/bin/env python3
"""check_judge.py - `tunic judge` end to end:
- reward-library judge: scores equal the reward formulas recomputed here (answer: 1 when the
  extracted answer equals the reference; format_exact: the Tunix regex via Python `re`), and
  --reward-cmd through the same library; every line records who/what judged it;
- model judge on a tiny random model: every line has judge.type "model", its verdict, and
  parsed == (score is not null); the parse rate printed equals the count in the file;
- human judge under tmux: a screen per sample, one key per score, quit and resume."""
import json, os, re, shutil, subprocess, sys, time

tunic = os.environ["TUNIC"]
work = sys.argv[1]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
def run(args, **kw):
    return subprocess.run([tunic] + args, check=True, capture_output=True, text=True, **kw)

rows = []
for i, (comp, ans) in enumerate([
        ("<reasoning>2+2</reasoning><answer>4</answer>", "4"),
        ("<reasoning>x</reasoning><answer>5</answer>", "6"),
        ("so the answer is 12", "12"),
        ("no idea", "3")]):
    rows.append({"id": "r%d" % i, "prompt": "q%d" % i, "completion": comp, "answer": ans})
data = os.path.join(work, "in.jsonl")
with open(data, "w") as f:
    for r in rows: f.write(json.dumps(r) + "\n")

# 1. reward library
out = os.path.join(work, "reward.jsonl")
run(["judge", "--data", data, "--out", out, "--judge", "answer:1,format_exact:0.5"])
fmt = re.compile(r"^[\s]{0,}<reasoning>.+?</reasoning>.*?<answer>(.+?)</answer>[\s]{0,}$", re.M | re.S)
want_answer = [1, 0, 1, 0]
for r, w in zip(map(json.loads, open(out)), want_answer):
    f = 1.0 if fmt.search(r["completion"]) else 0.0
    assert r["judge"]["type"] == "reward" and r["judge"]["spec"] == "answer:1,format_exact:0.5", r
    assert r["judge"]["terms"] == {"answer": w, "format_exact": f}, r
    assert abs(r["score"] - (w + 0.5 * f)) < 1e-6, r
# --reward-cmd through the library (cmd:1 added)
out2 = os.path.join(work, "cmd.jsonl")
run(["judge", "--data", data, "--out", out2, "--judge", "", "--reward-cmd", "while read l; do echo 0.25; done"])
for r in map(json.loads, open(out2)):
    assert r["score"] == 0.25 and r["judge"]["reward_cmd"].startswith("while"), r

# 2. a tiny model as judge
model = os.path.join(work, "model")
run(["init", "--arch", "llama", "--size", "tiny", "--tokenizer", "bytes", "--out", model, "--seed", "3"])
out3 = os.path.join(work, "model.jsonl")
p = run(["judge", "--data", data, "--out", out3, "--judge-model", model, "--max-new-tokens", "16"])
res = [json.loads(l) for l in open(out3)]
assert len(res) == 4
parsed = 0
for r in res:
    assert r["judge"]["type"] == "model" and r["judge"]["model"] == model and "verdict" in r["judge"], r
    assert r["judge"]["parsed"] == (r["score"] is not None), r
    parsed += r["judge"]["parsed"]
m = re.search(r"(\d+) unparseable verdicts \(parse rate ([\d.]+)%\)", p.stdout)
assert m and int(m.group(1)) == 4 - parsed, p.stdout
print("model judge (tiny random model): parse rate %s%%" % m.group(2))

# 3. the human judge under tmux
if not shutil.which("tmux"):
    print("tmux missing: human judge not tested"); sys.exit(0)
hout = os.path.join(work, "human.jsonl")
sess = "tnjudge%d" % os.getpid()
sock = ["-L", sess]
nstart = [0]
def screen():
    return subprocess.run(["tmux"] + sock + ["capture-pane", "-p", "-t", sess], capture_output=True, text=True).stdout
def wait_for(text, t=20):
    end = time.time() + t
    while time.time() < end:
        if text in screen(): return
        time.sleep(0.1)
    raise SystemExit("tmux: '%s' never appeared; screen:\n%s" % (text, screen()))
def start():
    global sess, sock
    nstart[0] += 1   # a fresh tmux server each time: the killed one may still be going away
    sess = "tnjudge%d_%d" % (os.getpid(), nstart[0])
    sock = ["-L", sess]
    cmd = "%s judge --human --who tester --data %s --out %s; echo JUDGE-EXIT $?; sleep 60" % (tunic, data, hout)
    subprocess.run(["tmux"] + sock + ["new-session", "-d", "-s", sess, "-x", "160", "-y", "50", cmd], check=True)
def keys(k):
    subprocess.run(["tmux"] + sock + ["send-keys", "-t", sess, k], check=True)
def stop():
    subprocess.run(["tmux"] + sock + ["kill-server"], capture_output=True)
try:
    start()
    wait_for("sample 1 of 4")
    assert "<answer>4</answer>" in screen()
    keys("7")
    wait_for("sample 2 of 4")
    keys("x")            # not a score key: ignored
    time.sleep(0.2)
    assert "sample 2 of 4" in screen()
    keys("s")            # skip
    wait_for("sample 3 of 4")
    keys("q")
    wait_for("JUDGE-EXIT 0")
    stop()
    got = [json.loads(l) for l in open(hout)]
    assert [(r["id"], r["score"]) for r in got] == [("r0", 7)], got
    assert got[0]["judge"]["type"] == "human" and got[0]["judge"]["who"] == "tester" and got[0]["judge"]["key"] == "7"
    start()              # resume: r0 is not asked again, r1 (skipped) is
    wait_for("sample 2 of 4 (id r1), 1 judged so far")
    keys("3"); wait_for("sample 3 of 4")
    keys("0"); wait_for("sample 4 of 4")
    keys("9"); wait_for("JUDGE-EXIT 0")
    assert "4 of 4 judged" in screen()
finally:
    stop()
got = [json.loads(l) for l in open(hout)]
assert [(r["id"], r["score"]) for r in got] == [("r0", 7), ("r1", 3), ("r2", 0), ("r3", 9)], got
print("human judge under tmux: 4 scores over two sessions (quit + resume), skip and bad keys handled")
