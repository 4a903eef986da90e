"""A Hugging Face Hub stand-in on loopback (127.0.0.1 only) for tests/hub/pull.py.

What it is for: serving repositories (folders of files) the way the Hub's HTTP API does, so
`tunic pull` can be tested without the real Hub:
  GET  /api/{models,datasets}/ORG/NAME/revision/REV   {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD/GET /[datasets/]ORG/NAME/resolve/REV/PATH      small files: 200, ETag = git blob sha1;
       LFS files (*.safetensors, *.jsonl): 302 to /cdn/SHA256 (absolute URL) with X-Linked-Etag
       (sha256), X-Linked-Size and X-Repo-Commit; a renamed repo answers 307 with a relative
       Location; a private repo answers 401 without "Authorization: Bearer <token>"
  GET  /cdn/SHA256                                    the bytes, with Range support
Faults (from the repo spec): "cut": the first GET of an LFS file sends half its bytes and closes
the connection; "corrupt": a file's bytes differ from its advertised sha256 (LFS) or git sha1.
Every request is appended to a log (method, path, Range, Authorization present) for the test.
What it is not: a faithful copy of the Hub's every header, or a server for anything but tests.
Run: hub_server.py SPEC.json PORTFILE LOGFILE (SPEC lists repos; the port is written when ready).
"""
import hashlib
import http.server
import json
import os
import sys
import threading


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path):
    return path.endswith(".safetensors") or path.endswith(".jsonl")


class Repo:
    def __init__(self, spec):
        self.id = spec["id"]
        self.kind = spec.get("kind", "models")
        self.commit = spec["commit"]
        self.refs = spec.get("refs", {"main": self.commit})
        self.token = spec.get("token")
        self.renamed_from = spec.get("renamed_from")
        self.cut = set(spec.get("cut", []))
        self.corrupt = set(spec.get("corrupt", []))
        self.files = {}
        root = spec["dir"]
        for dp, _, fns in os.walk(root):
            for fn in fns:
                full = os.path.join(dp, fn)
                rel = os.path.relpath(full, root)
                with open(full, "rb") as f:
                    self.files[rel] = f.read()


REPOS = {}
BLOBS = {}   # sha256 -> (bytes to serve, repo, path)
CUT_DONE = set()
LOG = None
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def log(self):
        with LOCK, open(LOG, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path, "range": self.headers.get("Range"),
                                "auth": self.headers.get("Authorization") is not None}) + "\n")

    def send(self, code, body=b"", headers=(), head=False, length=None):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def find(self, kind, parts):
        """parts after the kind prefix: ORG, NAME, ..."""
        if len(parts) < 2:
            return None, None
        rid = parts[0] + "/" + parts[1]
        for r in REPOS.values():
            if r.kind == kind and (r.id == rid or r.renamed_from == rid):
                return r, rid
        return None, rid

    def authorized(self, r):
        return r.token is None or self.headers.get("Authorization") == "Bearer " + r.token

    def do_HEAD(self):
        self.handle_req(head=True)

    def do_GET(self):
        self.handle_req(head=False)

    def handle_req(self, head):
        self.log()
        path = self.path.split("?")[0]
        parts = [p for p in path.split("/") if p]
        from urllib.parse import unquote
        parts = [unquote(p) for p in parts]
        if parts[:1] == ["cdn"] and len(parts) == 2:
            return self.cdn(parts[1], head)
        if parts[:1] == ["api"] and len(parts) >= 6 and parts[4] == "revision":
            r, rid = self.find(parts[1], parts[2:4])
            if r is not None and r.id != rid:  # renamed: a relative redirect to the new name
                return self.send(307, b"", [("Location", "/api/%s/%s/%s" % (parts[1], r.id, "/".join(parts[4:])))], head)
            if r is None:
                return self.send(404, b'{"error":"Repository not found"}', [("X-Error-Code", "RepoNotFound")], head)
            if not self.authorized(r):
                return self.send(401, b'{"error":"Invalid credentials"}', [("X-Error-Code", "RepoNotFound")], head)
            rev = "/".join(parts[5:])
            sha = r.refs.get(rev, rev if rev == r.commit else None)
            if sha is None:
                return self.send(404, b'{"error":"Revision not found"}', [("X-Error-Code", "RevisionNotFound")], head)
            body = json.dumps({"id": r.id, "sha": sha, "siblings": [{"rfilename": k} for k in sorted(r.files)]}).encode()
            return self.send(200, body, [("Content-Type", "application/json")], head)
        kind = "models"
        if parts[:1] == ["datasets"]:
            kind, parts = "datasets", parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve":
            r, rid = self.find(kind, parts[:2])
            if r is None:
                return self.send(404, b"not found", [("X-Error-Code", "RepoNotFound")], head)
            if not self.authorized(r):
                return self.send(401, b"unauthorized", [("X-Error-Code", "RepoNotFound")], head)
            if rid != r.id:   # renamed: a relative redirect to the new name
                loc = "/" + ("datasets/" if kind == "datasets" else "") + r.id + "/" + "/".join(self.path.split("/")[3 + (kind == "datasets"):])
                return self.send(307, b"", [("Location", loc)], head)
            rev, fpath = parts[3], "/".join(parts[4:])
            sha = r.refs.get(rev, rev if rev == r.commit else None)
            if sha is None or fpath not in r.files:
                return self.send(404, b"entry not found", [("X-Error-Code", "EntryNotFound")], head)
            data = r.files[fpath]
            if is_lfs(fpath):
                digest = hashlib.sha256(data).hexdigest()
                served = data
                if fpath in r.corrupt:
                    served = bytes([data[0] ^ 0xFF]) + data[1:]
                BLOBS[digest] = (served, r, fpath)
                host = "http://127.0.0.1:%d" % self.server.server_address[1]
                return self.send(302, b"", [("Location", host + "/cdn/" + digest), ("X-Repo-Commit", sha),
                                            ("X-Linked-Etag", '"%s"' % digest), ("X-Linked-Size", str(len(data))),
                                            ("ETag", '"%s"' % git_sha1(b"lfs pointer " + digest.encode()))], head)
            etag = git_sha1(data)
            if fpath in r.corrupt:
                data = data[:-1] + bytes([data[-1] ^ 1])
            return self.send(200, data, [("ETag", '"%s"' % etag), ("X-Repo-Commit", sha)], head)
        return self.send(404, b"no route", [], head)

    def cdn(self, digest, head):
        if digest not in BLOBS:
            return self.send(404, b"no such blob", [], head)
        data, r, fpath = BLOBS[digest]
        rng = self.headers.get("Range")
        start = 0
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[6:-1])
            if start >= len(data):
                return self.send(416, b"", [], head)
        body = data[start:]
        code = 206 if rng else 200
        hdrs = [("ETag", '"%s"' % digest)]
        if rng:
            hdrs.append(("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data))))
        if head:
            return self.send(code, b"", hdrs, True, length=len(body))
        if fpath in r.cut and (r.id, fpath) not in CUT_DONE:
            CUT_DONE.add((r.id, fpath))
            self.send_response(code)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send(code, body, hdrs, False)


def main():
    global LOG
    spec_path, port_file, LOG = sys.argv[1:4]
    with open(spec_path) as f:
        for s in json.load(f):
            REPOS[s["kind"] + ":" + s["id"] if "kind" in s else "models:" + s["id"]] = Repo(s)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
