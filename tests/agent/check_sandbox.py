#!/usr/bin/python3
"""check_sandbox.py - the python tool's sandbox contains what it must, through
`tunic tool run python` exactly as an episode calls it: an infinite loop (wall-clock timeout),
a fork bomb (RLIMIT_NPROC, then the process group is killed), a memory bomb (RLIMIT_AS), a
socket to 127.0.0.1 (a listening socket here sees no connection), writing outside its
directory (the file does not appear), 100 MB of output (cut at the cap). Each comes back as
{"ok": false, "error": ...} with exit status 0, no process of the sandbox is left, the temp
directory is gone, and a normal call right after works. Run twice: with the network
namespace (the default here) and with TN_SANDBOX_NET=seccomp (the fallback)."""
import glob
import json
import os
import socket
import subprocess
import sys
import time

TUNIC = os.environ["TUNIC"]
fails = []


def run(code, timeout=5, env=None, cap=None):
    argv = [TUNIC, "tool", "run", "python", "--args", json.dumps({"code": code}), "--timeout", str(timeout)]
    if cap:
        argv += ["--output-cap", str(cap)]
    t0 = time.time()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    dt = time.time() - t0
    if p.returncode != 0:
        fails.append(("exit status", code[:60], p.returncode, p.stderr))
        return {"ok": False, "error": ""}, dt
    return json.loads(p.stdout), dt


def leftovers():
    # processes still running our sandboxed programs (zombies awaiting init are dead already)
    out = subprocess.run(["ps", "-eo", "stat,args"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if "main.py" in l and not l.startswith("Z")]


srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
srv.setblocking(False)
port = srv.getsockname()[1]
outside = f"/tmp/tunic_sandbox_escape_{os.getpid()}"

for mode in ("default", "seccomp"):
    env = dict(os.environ)
    if mode == "seccomp":
        env["TN_SANDBOX_NET"] = "seccomp"
    before = set(glob.glob("/tmp/tunic-py-*"))
    cases = [
        ("infinite loop", "while True:\n    pass\n", 2, "timed out"),
        ("fork bomb", "import os\nwhile True:\n    os.fork()\n", 10, None),
        ("memory bomb", "a = []\nwhile True:\n    a.append(bytearray(50 * 2**20))\n", 10, "MemoryError"),
        ("socket", f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')\n", 10, None),
        ("write outside", f"open({outside!r}, 'w').write('x')\nprint('wrote')\n", 10, "Permission"),
        ("100 MB output", "import sys\nfor i in range(100):\n    sys.stdout.write('x' * 2**20)\n", 20, "output over"),
    ]
    for name, code, t, needle in cases:
        r, dt = run(code, t, env)
        if r.get("ok"):
            fails.append((mode, name, "ok", r))
        elif needle and needle not in r.get("error", ""):
            fails.append((mode, name, "error lacks " + needle, r.get("error", "")[:300]))
        if dt > t + 5:
            fails.append((mode, name, f"took {dt:.1f} s"))
        if name == "100 MB output" and len(r.get("output", "")) > 16384:
            fails.append((mode, name, "output kept beyond the cap", len(r.get("output", ""))))
        print(f"{mode:8s} {name:14s} contained in {dt:5.2f} s: {r.get('error', '').splitlines()[-1][:90] if r.get('error') else ''}")
    try:
        c, _ = srv.accept()
        fails.append((mode, "a connection reached 127.0.0.1"))
        c.close()
    except BlockingIOError:
        pass
    if os.path.exists(outside):
        fails.append((mode, "a file was written outside the sandbox"))
        os.unlink(outside)
    time.sleep(0.2)
    if leftovers():
        fails.append((mode, "sandbox processes left", leftovers()[:5]))
    new = set(glob.glob("/tmp/tunic-py-*")) - before
    if new:
        fails.append((mode, "temp directories left", sorted(new)[:3]))
    # the caller goes on: a normal program right after, with files in its own directory
    r, _ = run("open('f.txt', 'w').write('42')\nprint(open('f.txt').read(), end='')\n", 10, env)
    if r != {"ok": True, "content": "42", "ms": r.get("ms")}:
        fails.append((mode, "normal call after", r))
    # the environment is cleared; the directory is fresh
    r, _ = run("import os\nprint(sorted(os.environ), os.listdir('.'))\n", 10, env)
    if not r.get("ok") or "['HOME', 'LANG', 'PATH', 'TMPDIR'] ['main.py']" not in r.get("content", ""):
        fails.append((mode, "environment / directory", r))
    # an exception is a tool error with its traceback
    r, _ = run("raise ValueError('boom')\n", 10, env)
    if r.get("ok") or "ValueError: boom" not in r.get("error", ""):
        fails.append((mode, "exception", r))

for f in fails:
    print("FAIL", f)
sys.exit(1 if fails else 0)
