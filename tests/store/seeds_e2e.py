#!/usr/bin/python3
"""Issue 19: the seeds' sequence end to end on the CLI and one store file - generate 100 games of
high-card duel (seed 42) -> build hcd_baseline-v1 -> export tunix_sft -> `tunic sft --data
store:hcd_baseline-v1` on a tiny model -> eval before/after -> register the run -> the report.
Checks what each step hands the next (counts, the export's sha256 = the manifest's, the run
manifest's dataset key + build id, the registered run's metrics and report), that a tunix_sft
row with final_answer trains exactly like the same row with the answer written into "prompts"
(same losses), and that the same seed gives the same games in a second store.
With --ui: then serves the store (`tunic serve --store` on loopback) and runs the page test in
headless Chromium (ui.mjs, puppeteer-core), screenshots in $TN_BUILD/store_ui/.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from common import BUILD, SRC, check, finish, init_model, ok_run, run, workdir  # noqa: E402

W = workdir("store")
DB = os.path.join(W, "store.db")
ENV = {"TUNIC_STORE": DB}


def st(args, what, **kw):
    p = run(["store"] + args, env=ENV, cwd=W, **kw)
    check(p.returncode == 0, f"{what} (exit {p.returncode}) {p.stderr.strip()[-300:] if p.returncode else ''}")
    return p


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


# 1. 100 games
g = json.loads(st(["games", "high-card-duel", "--count", 100, "--seed", 42], "store games high-card-duel").stdout)
check(len(g["ids"]) == 100, "100 games stored as traces")
tr = json.loads(st(["traces", "list", "--source", "ungar", "--game", "high_card_duel", "--limit", 1000], "traces list").stdout)
check(len(tr["traces"]) == 100 and all(t["game"] == "high_card_duel" and "outcome" in t for t in tr["traces"]),
      "the traces: source ungar, game high_card_duel, with an outcome")
# same seed, same games, in another store
p = run(["store", "games", "high-card-duel", "--count", 100, "--seed", 42, "--no-persist"], env={"TUNIC_STORE": os.path.join(W, "other.db")}, cwd=W)
g2 = json.loads(p.stdout)
stored = sorted(tr["traces"], key=lambda t: t["id"])
check([t["messages"] for t in g2["traces"]] == [t["messages"] for t in stored] and g2["total_chips"] == g["total_chips"],
      "same seed, same games (a second generation of seed 42 equals the stored one)")

# 2. build hcd_baseline-v1
m = json.loads(st(["datasets", "build", "--name", "hcd_baseline", "--version", "v1", "--source", "ungar", "--game", "high_card_duel",
                   "--limit", 100, "--strategy", "latest"], "datasets build hcd_baseline-v1").stdout)
check(m["key"] == "hcd_baseline-v1" and m["counts"]["traces"] == 100 and len(m["trace_ids"]) == 100, "manifest: 100 traces")
again = run(["store", "datasets", "build", "--name", "hcd_baseline", "--version", "v1", "--source", "ungar", "--limit", 50], env=ENV, cwd=W)
check(again.returncode == 2 and "409" in again.stderr and "immutable" in again.stderr, "a different build of hcd_baseline-v1 is refused (409)")

# 3. export tunix_sft
exp = os.path.join(W, "hcd_sft.jsonl")
e = json.loads(st(["datasets", "export", "hcd_baseline-v1", "--format", "tunix_sft", "--out", exp], "datasets export tunix_sft").stdout)
rows = read_jsonl(exp)
sha = hashlib.sha256(open(exp, "rb").read()).hexdigest()
check(sha == m["sha256"]["tunix_sft"] == m["export_sha256"] == e["sha256"], "the export's sha256 is the manifest's")
check(len(rows) == 100 and all(set(r) == {"id", "prompts", "final_answer", "metadata"} for r in rows), "100 tunix_sft rows: id, prompts, final_answer, metadata")
check(all(r["prompts"].startswith("<start_of_turn>user\n") and r["prompts"].endswith("<end_of_turn>\n<start_of_turn>model\n")
          and r["final_answer"] in ("bet", "fold") for r in rows), "prompts in Gemma turns ending with the open model turn; answers bet/fold")

# 4. sft on store:hcd_baseline-v1
model = os.path.join(W, "tiny")
init_model(model, seed=3)
runs = os.path.join(W, "run")
p = run(["sft", "--model", model, "--data", "store:hcd_baseline-v1", "--out", runs, "--steps", 40, "--batch-size", 8,
         "--lr", "3e-3", "--seed", 1, "--chat-format", "gemma"], env=ENV, cwd=W, timeout=600)
check(p.returncode == 0, f"tunic sft --data store:hcd_baseline-v1 {p.stderr[-400:] if p.returncode else ''}")
man = json.load(open(os.path.join(runs, "run_manifest.json")))
check(man.get("store_dataset", {}).get("key") == "hcd_baseline-v1" and man["store_dataset"]["build_id"] == m["build_id"],
      "the run manifest records the dataset key and build id")
check(man["data"][0]["sha256"] == m["sha256"]["tunix_sft"], "the run trained on the export the manifest names (sha256)")
losses = [json.loads(l)["loss"] for l in open(os.path.join(runs, "metrics.jsonl"))]
check(len(losses) == 40 and sum(losses[-5:]) < sum(losses[:5]), f"the loss falls ({losses[0]:.3f} -> {losses[-1]:.3f})")

# final_answer == the answer written into prompts (the reader's two tunix forms train alike)
alt = os.path.join(W, "hcd_sft_inline.jsonl")
with open(alt, "w") as f:
    for r in rows:
        f.write(json.dumps({"id": r["id"], "prompts": r["prompts"] + r["final_answer"] + "<end_of_turn>\n", "metadata": r["metadata"]}) + "\n")
la, lb = [], []
for data, out, acc in ((exp, "eqa", la), (alt, "eqb", lb)):
    ok_run(["sft", "--model", model, "--data", data, "--out", os.path.join(W, out), "--steps", 3, "--batch-size", 4, "--seed", 5],
           f"sft on {os.path.basename(data)}", timeout=300)
    acc += [json.loads(l)["loss"] for l in open(os.path.join(W, out, "metrics.jsonl"))]
check(la == lb and len(la) == 3, f"final_answer trains exactly as the answer inside prompts (losses {la} vs {lb})")

# 5. eval before / after on 40 held-out games (seed 7): the expected move of the scripted player
ev = os.path.join(W, "eval.jsonl")
held = json.loads(run(["store", "games", "high-card-duel", "--count", 40, "--seed", 7, "--no-persist"], env=ENV, cwd=W).stdout)
with open(ev, "w") as f:
    for i, t in enumerate(held["traces"]):
        f.write(json.dumps({"id": f"g{i}", "messages": t["messages"][:-1], "answer": t["messages"][-1]["content"]}) + "\n")
evargs = ["--data", ev, "--max-new-tokens", 4, "--chat-format", "gemma", "--no-system-prompt", "--quiet", "--force"]
ok_run(["eval", "--model", model, "--out", os.path.join(runs, "eval_before.jsonl"), *evargs], "eval before", timeout=300)
ok_run(["eval", "--model", os.path.join(runs, "model"), "--out", os.path.join(runs, "eval_after.jsonl"), *evargs], "eval after", timeout=300)

# 6. register the run, 7. the report
reg = json.loads(st(["runs", "register", "--run-dir", runs], "runs register").stdout)
check(reg["dataset"]["key"] == "hcd_baseline-v1" and reg["dataset"]["build_id"] == m["build_id"], "the registered run names its dataset and build")
check(reg.get("eval_before", "").endswith("eval_before.jsonl") and reg.get("eval_after", "").endswith("eval_after.jsonl"), "its eval files are found")
rep = st(["runs", "report", reg["id"]], "runs report").stdout
check("McNemar" in rep or "mcnemar" in rep.lower(), "the before/after report (McNemar)")
acc = lambda p: json.load(open(p.replace(".jsonl", ".summary.json")))  # noqa: E731
try:
    b, a = acc(os.path.join(runs, "eval_before.jsonl")), acc(os.path.join(runs, "eval_after.jsonl"))
    print(f"eval summary before: {json.dumps(b)[:200]}\neval summary after: {json.dumps(a)[:200]}")
except (OSError, ValueError) as ex:
    print("no eval summaries:", ex)
print(rep[:1500])

if "--ui" in sys.argv:
    sys.path.insert(0, os.path.join(SRC, "tests", "serve"))
    from serve_common import Server  # noqa: E402
    outdir = os.path.join(BUILD, "store_ui")
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    want = {"run_id": reg["id"], "dataset": "hcd_baseline-v1", "build_id": m["build_id"],
            "loss": [[json.loads(l)["step"], json.loads(l)["loss"]] for l in open(os.path.join(runs, "metrics.jsonl"))]}
    json.dump(want, open(os.path.join(W, "expect.json"), "w"))
    srv = Server(W, model, "--store", DB, "--quiet")
    try:
        p = subprocess.run(["node", os.path.join(SRC, "tests", "store", "ui.mjs"), f"http://127.0.0.1:{srv.port}",
                            os.path.join(W, "expect.json"), outdir], capture_output=True, text=True, timeout=300)
        print(p.stdout, p.stderr[-2000:])
        if p.returncode == 77:
            sys.exit(77)
        check(p.returncode == 0, "the page test in headless Chromium")
        check(len([f for f in os.listdir(outdir) if f.endswith(".png")]) >= 6, f"screenshots in {outdir}")
    finally:
        srv.stop()
shutil.rmtree(W, ignore_errors=True) if "--keep" not in sys.argv else print("kept", W)
finish()
