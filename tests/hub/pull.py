"""tunic pull against a Hub stand-in on loopback (tests/hub/hub_server.py), the cache checked
with an independent reader of huggingface_hub's layout rules (tests/hub/hf_cache_check.py).

Covers: repo info and the file list (only the files tunic reads), resolve with LFS redirects
and a renamed repo's relative redirect, ETags (sha256 / git sha1 blob names, both checked against the content), a 401 without a
token and success with HF_TOKEN, a download cut in the middle and resumed with a Range
request, a file whose sha256 does not match, HF_HUB_OFFLINE (no request at all), refs/ for a
tag, a second pull served from the cache, `--model ORG/NAME` resolved through the cache (and
refused, without network, before a pull), --download, and `tunic pull --dataset`.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
sys.path.insert(0, os.path.dirname(__file__))
import fcntl  # noqa: E402
import hashlib  # noqa: E402
from common import TUNIC, check, finish, init_model, run, workdir  # noqa: E402
import hf_cache_check as hc  # noqa: E402

W = workdir("hub")
C1 = "1" * 8 + "abcdef0123456789abcdef0123456789"[:32]
C1 = (C1 + "0" * 40)[:40]
C2 = "2" * 40
C3 = "3" * 40
C4 = "4" * 40

# ---- repositories the stand-in serves
model = os.path.join(W, "src_model")
init_model(model, seed=3)
for extra, text in (("README.md", "# tiny\n"), ("pytorch_model.bin", "not read by tunic\n")):
    with open(os.path.join(model, extra), "w") as f:
        f.write(text)
ds = os.path.join(W, "src_ds")
os.makedirs(os.path.join(ds, "data"))
with open(os.path.join(ds, "data", "train.jsonl"), "w") as f:
    for i in range(50):
        f.write(json.dumps({"question": "What is %d + %d?" % (i, i), "answer": "%d + %d = %d\n#### %d" % (i, i, 2 * i, 2 * i)}) + "\n")
with open(os.path.join(ds, "data", "test.json"), "w") as f:
    json.dump([{"question": "What is 1 + 2?", "answer": "#### 3"}], f)
with open(os.path.join(ds, "README.md"), "w") as f:
    f.write("---\nlicense: mit\n---\n")
# an adapter repository: a PEFT LoRA adapter trained for one step on the local copy of the data
local_data = os.path.join(W, "local_train.jsonl")
shutil.copy(os.path.join(ds, "data", "train.jsonl"), local_data)
ad_run = os.path.join(W, "ad_run")
r = run(["sft", "--model", model, "--data", local_data, "--lora-rank", "4", "--steps", "1", "--batch-size", "2",
         "--out", ad_run])
check(r.returncode == 0, "a LoRA adapter to publish (%s)" % r.stderr.strip()[-200:])
C5 = "5" * 40
spec = [
    {"id": "acme/tiny", "commit": C1, "refs": {"main": C1, "v1": C1}, "dir": model, "cut": ["model.safetensors"],
     "renamed_from": "oldacme/tiny"},
    {"id": "acme/private", "commit": C2, "dir": model, "token": "s3cret"},
    {"id": "acme/broken", "commit": C3, "dir": model, "corrupt": ["model.safetensors"]},
    {"id": "acme/broken2", "commit": C3, "dir": model, "corrupt": ["config.json"]},
    {"id": "acme/gsm", "kind": "datasets", "commit": C4, "dir": ds},
    {"id": "acme/tiny-lora", "commit": C5, "dir": os.path.join(ad_run, "adapter")},
]
for s in spec:
    s.setdefault("kind", "models")
with open(os.path.join(W, "spec.json"), "w") as f:
    json.dump(spec, f)
port_file, log = os.path.join(W, "port"), os.path.join(W, "requests.log")
open(log, "w").close()
srv = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "hub_server.py"),
                        os.path.join(W, "spec.json"), port_file, log])
try:
    for _ in range(200):
        if os.path.exists(port_file):
            break
        time.sleep(0.05)
    port = int(open(port_file).read())
    cache = os.path.join(W, "cache")
    ENV = {"HF_ENDPOINT": "http://127.0.0.1:%d" % port, "HF_HUB_CACHE": cache, "HF_TOKEN": "", "HF_HOME": W,
           "HF_HUB_OFFLINE": ""}

    def requests():
        with open(log) as f:
            return [json.loads(l) for l in f if l.strip()]

    def pull(*args, env=None):
        e = dict(ENV)
        e.update(env or {})
        return run(["pull", *args], env=e, timeout=60)

    WANTED = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    WANTED = {f for f in os.listdir(model) if f in WANTED or f in ("generation_config.json", "special_tokens_map.json")}

    # ---- nothing cached, no network: offline pull and --model ORG/NAME both refuse without a request
    p = pull("acme/tiny", env={"HF_HUB_OFFLINE": "1"})
    check(p.returncode != 0 and "HF_HUB_OFFLINE" in p.stderr and "not in the Hugging Face cache" in p.stderr,
          "HF_HUB_OFFLINE=1 with an empty cache: a clear error (%s)" % p.stderr.strip()[-160:])
    g = run(["generate", "--model", "acme/tiny", "--ids", "1,2,3", "--max-new-tokens", "4"], env=ENV)
    check(g.returncode != 0 and "tunic pull acme/tiny" in g.stderr, "--model acme/tiny before a pull: says to pull (%s)" % g.stderr.strip()[-160:])
    check(requests() == [], "no request made before `tunic pull` (%d)" % len(requests()))

    # ---- a download cut in the middle, then resumed
    p = pull("acme/tiny", "--progress")
    blobs = os.path.join(cache, "models--acme--tiny", "blobs")
    inc = [f for f in os.listdir(blobs) if f.endswith(".incomplete")] if os.path.isdir(blobs) else []
    size = os.path.getsize(os.path.join(model, "model.safetensors"))
    part = os.path.getsize(os.path.join(blobs, inc[0])) if inc else -1
    check(p.returncode != 0 and "pull again to resume" in p.stderr, "cut download fails and says it can resume (%s)" % p.stderr.strip()[-200:])
    check(len(inc) == 1 and 0 < part < size, "the partial file is kept as blobs/ETAG.incomplete (%d of %d bytes)" % (part, size))
    n0 = len(requests())
    p = pull("acme/tiny", "--progress")
    check(p.returncode == 0, "second pull completes (rc %d: %s)" % (p.returncode, p.stderr.strip()[-200:]))
    rng = [r for r in requests()[n0:] if r["path"].startswith("/cdn/") and r["method"] == "GET"]
    check(any(r["range"] == "bytes=%d-" % part for r in rng), "resumed with Range: bytes=%d- (%s)" % (part, [r["range"] for r in rng]))
    check("%" in p.stderr and "MB" in p.stderr, "a progress bar is drawn with --progress")
    snap = p.stdout.strip()
    check(snap == os.path.join(cache, "models--acme--tiny", "snapshots", C1), "prints the snapshot folder (%s)" % snap)
    try:
        commit, files = hc.read_snapshot(cache, "model", "acme/tiny", "main")
        check(commit == C1, "refs/main names the commit")
        check(set(files) == WANTED, "only the files tunic reads (%s; README.md and pytorch_model.bin skipped)" % sorted(files))
        check(all(files[k] == open(os.path.join(model, k), "rb").read() for k in files), "every file's bytes equal the repository's")
        big = os.path.realpath(os.path.join(snap, "model.safetensors"))
        check(len(os.path.basename(big)) == 64, "the LFS file's blob is named by its sha256")
    except Exception as e:  # noqa: BLE001
        check(False, "the cache follows huggingface_hub's layout: %s" % e)

    # ---- --model ORG/NAME resolves through the cache (no request), same output as the folder
    n0 = len(requests())
    a = run(["generate", "--model", "acme/tiny", "--ids", "1,2,3", "--max-new-tokens", "5", "--json"], env=ENV)
    b = run(["generate", "--model", model, "--ids", "1,2,3", "--max-new-tokens", "5", "--json"], env=ENV)
    check(a.returncode == 0 and a.stdout == b.stdout and a.stdout, "generate --model acme/tiny == the source folder (%s)" % a.stderr.strip()[-160:])
    a = run(["generate", "--model", "acme/tiny@" + C1, "--ids", "1,2,3", "--max-new-tokens", "5", "--json"], env=ENV)
    check(a.returncode == 0 and a.stdout == b.stdout, "--model acme/tiny@COMMIT resolves too")
    check(len(requests()) == n0, "resolving through the cache made no request")

    # ---- a tag, a cached second pull, offline mode with a cache
    n0 = len(requests())
    p = pull("acme/tiny@v1")
    check(p.returncode == 0 and "(cached)" in p.stderr, "pull acme/tiny@v1: files come from the cache")
    check(not any(r["path"].startswith("/cdn/") for r in requests()[n0:]), "no file bytes downloaded again")
    check(open(os.path.join(cache, "models--acme--tiny", "refs", "v1")).read() == C1, "refs/v1 holds the commit, no newline")
    n0 = len(requests())
    p = pull("acme/tiny", env={"HF_HUB_OFFLINE": "1"})
    check(p.returncode == 0 and p.stdout.strip() == snap and len(requests()) == n0, "HF_HUB_OFFLINE=1 with a cache: the snapshot, no request")

    # ---- a renamed repo: relative redirects
    p = pull("oldacme/tiny")
    check(p.returncode == 0, "a renamed repo is followed through relative redirects (%s)" % p.stderr.strip()[-160:])

    # ---- a private repo: 401 without a token, fine with HF_TOKEN (and --download on --model)
    p = pull("acme/private")
    check(p.returncode != 0 and "401" in p.stderr and "HF_TOKEN" in p.stderr, "401 without a token names HF_TOKEN (%s)" % p.stderr.strip()[-160:])
    n0 = len(requests())
    g = run(["generate", "--model", "acme/private", "--download", "--ids", "1,2,3", "--max-new-tokens", "5", "--json"],
            env=dict(ENV, HF_TOKEN="s3cret"))
    check(g.returncode == 0 and g.stdout == b.stdout, "generate --model acme/private --download with HF_TOKEN (%s)" % g.stderr.strip()[-160:])
    check(all(r["auth"] for r in requests()[n0:] if not r["path"].startswith("/cdn/")), "the token is sent to the Hub")

    # ---- a file whose sha256 does not match
    p = pull("acme/broken")
    check(p.returncode != 0 and "sha256" in p.stderr and "does not match" in p.stderr, "a corrupted file is refused (%s)" % p.stderr.strip()[-160:])
    bb = os.path.join(cache, "models--acme--broken", "blobs")
    check(not any(len(f) == 64 or f.endswith(".incomplete") for f in os.listdir(bb)), "nothing of the bad file is kept")
    check(not os.path.exists(os.path.join(cache, "models--acme--broken", "refs", "main")), "no ref for a failed pull")

    big = os.path.join(cache, ".locks", "models--acme--tiny", hashlib.sha256(open(os.path.join(model, "model.safetensors"), "rb").read()).hexdigest() + ".lock")
    check(os.path.exists(big), "the blob's lock file is huggingface_hub's: .locks/models--acme--tiny/SHA256.lock")

    p = pull("acme/broken2")
    check(p.returncode != 0 and "git blob sha1" in p.stderr and "does not match" in p.stderr,
          "a small (non-LFS) file whose git sha1 differs from its ETag is refused (%s)" % p.stderr.strip()[-160:])

    # ---- a dataset repository, while another process (huggingface_hub's filelock, here fcntl.flock)
    # holds the lock of one of its blobs: tunic waits for it
    sha = hashlib.sha256(open(os.path.join(ds, "data", "train.jsonl"), "rb").read()).hexdigest()
    lk = os.path.join(cache, ".locks", "datasets--acme--gsm", sha + ".lock")
    os.makedirs(os.path.dirname(lk), exist_ok=True)
    fd = os.open(lk, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    e = dict(os.environ, **ENV)
    bg = subprocess.Popen([TUNIC, "pull", "--dataset", "acme/gsm"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    check(bg.poll() is None, "pull waits while another process holds the blob's lock")
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    bg.communicate(timeout=60)
    check(bg.returncode == 0, "and completes once it is released")
    p = pull("--dataset", "acme/gsm")
    check(p.returncode == 0 and p.stdout.strip().endswith("datasets--acme--gsm/snapshots/" + C4), "pull --dataset acme/gsm (%s)" % p.stderr.strip()[-160:])
    try:
        _, files = hc.read_snapshot(cache, "dataset", "acme/gsm")
        check(set(files) == {"data/train.jsonl", "data/test.json"}, "dataset: its .json/.jsonl files, in subfolders (%s)" % sorted(files))
    except Exception as e:  # noqa: BLE001
        check(False, "the dataset cache follows the layout: %s" % e)
    # ---- --data ORG/NAME[:SPLIT|:PATH] and --adapter ORG/NAME resolved through the cache
    def manifest_data(out):
        with open(os.path.join(out, "run_manifest.json")) as f:
            return [d["path"] for d in json.load(f)["data"]]
    snap = os.path.join(cache, "datasets--acme--gsm", "snapshots", C4)
    for i, (spec, want) in enumerate((("acme/gsm", "data/train.jsonl"), ("acme/gsm:train", "data/train.jsonl"),
                                      ("acme/gsm@" + C4 + ":data/train.jsonl", "data/train.jsonl"))):
        out = os.path.join(W, "sft_hubdata%d" % i)
        r = run(["sft", "--model", "acme/tiny", "--data", spec, "--steps", "1", "--batch-size", "2", "--out", out], env=ENV)
        check(r.returncode == 0 and manifest_data(out)[:1] == [os.path.join(snap, want)],
              "--data %s reads the snapshot's %s (%s)" % (spec, want, r.stderr.strip()[-200:] if r.returncode else
                                                           manifest_data(out)))
    r = run(["sft", "--model", "acme/tiny", "--data", "acme/gsm:validation", "--steps", "1", "--out",
             os.path.join(W, "sft_nosplit")], env=ENV)
    check(r.returncode != 0 and "validation" in r.stderr and "data/test.json" in r.stderr and "data/train.jsonl" in r.stderr,
          "--data with a split the dataset lacks: an error listing its files (%s)" % r.stderr.strip()[-240:])
    r = run(["sft", "--model", "acme/tiny", "--data", "acme/absent", "--steps", "1", "--out", os.path.join(W, "sft_absent")], env=ENV)
    check(r.returncode != 0 and "acme/absent" in r.stderr and not os.path.exists(os.path.join(W, "sft_absent")),
          "--data of a dataset not in the cache: refused before anything is written (%s)" % r.stderr.strip()[-200:])
    p = pull("acme/tiny-lora")
    check(p.returncode == 0, "pull an adapter repository (%s)" % p.stderr.strip()[-160:])
    gen = ["generate", "--ids", "1,2,3", "--max-new-tokens", "6", "--json"]
    a = run(gen + ["--model", "acme/tiny", "--adapter", "acme/tiny-lora"], env=ENV)
    b = run(gen + ["--model", model, "--adapter", os.path.join(ad_run, "adapter")], env=ENV)
    c = run(gen + ["--model", "acme/tiny", "--adapter", "x=" + os.path.join(ad_run, "adapter") + ",m=acme/tiny-lora",
                   "--adapter-name", "m"], env=ENV)
    base = run(gen + ["--model", model], env=ENV)
    check(base.returncode == 0 and base.stdout != b.stdout, "the adapter changes the log-probs (else the check below proves nothing)")
    check(a.returncode == 0 and a.stdout == b.stdout and c.returncode == 0 and c.stdout == b.stdout,
          "--adapter ORG/NAME (alone and as NAME=ORG/NAME in a list) = the adapter folder (%s)" %
          (a.stderr + c.stderr).strip()[-240:])
    p = pull("not a repo")
    check(p.returncode == 2 and "ORG/NAME" in p.stderr, "a malformed id is refused")
finally:
    srv.terminate()
    srv.wait()
shutil.rmtree(W, ignore_errors=True)
finish()
