#!/usr/bin/python3
"""check_mcp.py - tunic's MCP client against a real MCP server built with the official SDK
(tests/agent/mcp_server.mjs, @modelcontextprotocol/sdk from .cache/npm): `tunic tool list
--mcp` shows the server's tools as OpenAI function schemas (name, description, the SDK's JSON
schema of the zod shape); `tunic tool run` calls them (add, echo with unicode, content[] text
joined, isError as a tool error, the SDK's argument validation error, a call past --timeout);
a server that is not one (exits, speaks garbage) is a clear non-zero exit. Skips (77) without
node or the SDK."""
import json
import os
import shutil
import subprocess
import sys

TUNIC, SRC = os.environ["TUNIC"], os.environ["TN_SRC"]
if not shutil.which("node") or not os.path.exists(os.path.join(SRC, ".cache/npm/node_modules/@modelcontextprotocol/sdk/package.json")):
    print("skip: node or @modelcontextprotocol/sdk missing (scripts/test-setup.d/mcp.sh)")
    sys.exit(77)
SERVER = f"node {SRC}/tests/agent/mcp_server.mjs {SRC}"
fails = []


def tunic(*argv, timeout=60):
    return subprocess.run([TUNIC, *argv], capture_output=True, text=True, timeout=timeout)


p = tunic("tool", "list", "--mcp", SERVER, "--tools", "calculator")
tools = json.loads(p.stdout) if p.returncode == 0 else []
names = [t["function"]["name"] for t in tools]
if names != ["calculator", "add", "echo", "fail", "slow", "two_parts"]:
    fails.append(("tool list", names, p.stderr))
add = next((t for t in tools if t["function"]["name"] == "add"), {})
params = add.get("function", {}).get("parameters", {})
if add.get("type") != "function" or add["function"].get("description") != "Add two numbers" or \
        params.get("properties") != {"a": {"type": "number"}, "b": {"type": "number"}} or sorted(params.get("required", [])) != ["a", "b"]:
    fails.append(("add schema", add))


def call(name, args, *extra):
    p = tunic("tool", "run", name, "--args", json.dumps(args), "--mcp", SERVER, *extra)
    if p.returncode != 0:
        fails.append(("exit status", name, p.returncode, p.stderr))
        return {}
    r = json.loads(p.stdout)
    r.pop("ms", None)
    return r


checks = [
    (("add", {"a": 1234, "b": 5678}), {"ok": True, "content": "6912"}),
    (("add", {"a": 0.5, "b": -2}), {"ok": True, "content": "-1.5"}),
    (("echo", {"text": "h\u00e9llo \u4e16\u754c \"quoted\"\nline"}), {"ok": True, "content": "h\u00e9llo \u4e16\u754c \"quoted\"\nline"}),
    (("two_parts", {}), {"ok": True, "content": "first\nsecond"}),
    (("fail", {}), {"ok": False, "error": "this tool always fails"}),
]
for (name, args), want in checks:
    got = call(name, args)
    if got != want:
        fails.append((name, args, got, want))
r = call("add", {"a": "x", "b": 1})
if r.get("ok") is not False or "Invalid arguments" not in r.get("error", ""):
    fails.append(("validation error", r))
r = call("slow", {"ms": 5000}, "--timeout", "0.5")
if r.get("ok") is not False or "did not answer tools/call" not in r.get("error", ""):
    fails.append(("timeout", r))
r = call("slow", {"ms": 10}, "--timeout", "5")
if r != {"ok": True, "content": "done"}:
    fails.append(("slow within the timeout", r))
# not an MCP server: a clear error naming it, exit status non-zero, no crash
for bad, needle in (("exit 3", "exited (status 3)"), ("echo garbage; sleep 5", "not a JSON object"),
                    ("cat >/dev/null", "did not answer initialize")):
    p = tunic("tool", "list", "--mcp", bad, "--timeout", "1")
    if p.returncode in (0,) or p.returncode >= 128 or needle not in p.stderr:
        fails.append(("bad server", bad, p.returncode, p.stderr))

for f in fails:
    print("FAIL", f)
print(f"mcp: {len(checks) + 3} calls, {len(fails)} failures")
sys.exit(1 if fails else 0)
