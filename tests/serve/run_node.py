"""Runs one node test of `tunic serve` (tests/serve/client.mjs or page.mjs) against a live server.

What it is for: the Python side makes the tiny Qwen3 model and LoRA adapter (serve_common.py),
starts `tunic serve` on 127.0.0.1 with a free port (the adapter as "lora", a route file for
"auto"), runs `node SCRIPT` with TN_SERVE_URL / TN_SERVE_ADAPTER / TN_OUT set, stops the server
with SIGTERM and passes node's exit code on (77 = skipped: npm packages or chromium missing).
What it is not: the checks themselves (they are in the .mjs files).
"""
import os
import subprocess
import sys

from serve_common import SRC, Server, tiny_models, workdir

script, out = sys.argv[1], sys.argv[2]
npm = os.path.join(SRC, ".cache", "npm", "node_modules")
need = ["openai"] if script.endswith("client.mjs") else ["puppeteer-core"]
for p in need:
    if not os.path.isfile(os.path.join(npm, p, "package.json")):
        print(f"skip: npm package {p} missing (scripts/test-setup.sh)")
        sys.exit(77)
os.makedirs(out, exist_ok=True)
d = workdir("serve-node")
model, adapter = tiny_models(d)
route = os.path.join(d, "route.yaml")
with open(route, "w") as f:
    f.write("default: base\nroutes:\n  - category: math\n    adapter: lora\n    keywords: [\"+\", sum, equation]\n")
sv = Server(d, model, "--adapter", f"lora={adapter}", "--route", route, "--slots", 4)
env = dict(os.environ, TN_SERVE_URL=f"http://127.0.0.1:{sv.port}", TN_SERVE_ADAPTER=adapter, TN_OUT=out, TN_NPM=npm)
try:
    rc = subprocess.run(["node", script], env=env, timeout=400).returncode
finally:
    src = sv.stop()
    print(open(sv.logpath).read()[-1500:] if rc else "")
print(f"node exit {rc}, server exit {src}")
sys.exit(rc if rc else (0 if src == 0 else 1))
