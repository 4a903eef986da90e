"""An independent reader of the Hugging Face cache layout, written from huggingface_hub's
documented rules (its "Manage the cache" guide and hf_hub_download's docstring), for tests/hub.

What it is for: given a cache root, a repo type and id and a revision, check that
  - the repo folder is "{models|datasets}--" + repo_id with "/" replaced by "--";
  - refs/REVISION holds a 40-hex commit hash (no newline), or REVISION is the commit;
  - snapshots/COMMIT/ holds each file as a *relative* symlink to ../../blobs/ETAG (one more
    ../ per subfolder) that resolves inside the repo's blobs/;
  - each blob is named by its etag: sha256 of the content (64 hex, LFS files) or the git
    blob sha1 ("blob LEN\\0" + content; 40 hex, other files); no *.incomplete is left.
Returns {path in the snapshot: bytes}. What it is not: huggingface_hub itself (not packaged
in Debian), or a checker of anything but the layout.
"""
import hashlib
import os
import re


class LayoutError(Exception):
    pass


def repo_folder(cache, repo_type, repo_id):
    return os.path.join(cache, "%ss--%s" % (repo_type, repo_id.replace("/", "--")))


def read_snapshot(cache, repo_type, repo_id, revision="main"):
    root = repo_folder(cache, repo_type, repo_id)
    if not os.path.isdir(root):
        raise LayoutError("no repo folder " + root)
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        commit = revision
    else:
        with open(os.path.join(root, "refs", revision), "rb") as f:
            raw = f.read()
        commit = raw.decode()
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise LayoutError("refs/%s is not a bare commit hash: %r" % (revision, raw))
    snap = os.path.join(root, "snapshots", commit)
    blobs = os.path.realpath(os.path.join(root, "blobs"))
    out = {}
    for dp, dns, fns in os.walk(snap):
        for fn in fns:
            p = os.path.join(dp, fn)
            rel = os.path.relpath(p, snap)
            if not os.path.islink(p):
                raise LayoutError(rel + " is not a symlink")
            target = os.readlink(p)
            if os.path.isabs(target):
                raise LayoutError(rel + " links to an absolute path " + target)
            depth = rel.count("/")
            if target != "../" * depth + "../../blobs/" + os.path.basename(target):
                raise LayoutError(rel + " -> " + target + " is not ../../blobs/ETAG")
            real = os.path.realpath(p)
            if os.path.dirname(real) != blobs:
                raise LayoutError(rel + " resolves outside blobs/: " + real)
            with open(real, "rb") as f:
                data = f.read()
            etag = os.path.basename(real)
            if len(etag) == 64:
                ok = hashlib.sha256(data).hexdigest() == etag
            elif len(etag) == 40:
                ok = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == etag
            else:
                raise LayoutError(rel + ": blob name %s is neither a sha256 nor a git sha1" % etag)
            if not ok:
                raise LayoutError(rel + ": content does not hash to its blob name " + etag)
            out[rel] = data
    for fn in os.listdir(blobs):
        if fn.endswith(".incomplete"):
            raise LayoutError("partial download left: blobs/" + fn)
    return commit, out
