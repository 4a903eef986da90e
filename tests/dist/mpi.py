"""Shared setup of the MPI tests (tests/dist/*.py): skip (exit 77) when there is no mpirun or tunic
was built without MPI; the environment and loopback-only Open MPI options every launch uses; a
runner for one process or `mpirun -np N`; relative L2 distance of two safetensors weight files."""
import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from common import TUNIC, st_tensors  # noqa: E402

import numpy as np  # noqa: E402

MPIRUN = shutil.which("mpirun")
if not MPIRUN or "libmpi" not in subprocess.run(["ldd", TUNIC], capture_output=True, text=True).stdout:
    print("skipped: no mpirun, or tunic built without MPI")
    sys.exit(77)

ENV = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive", TN_PROGRESS="plain",
           OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_rmaps_base_oversubscribe="1")
LOOPBACK = ["--oversubscribe", "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo",
            "--mca", "oob_tcp_if_include", "lo", "-x", "OMP_NUM_THREADS=1", "-x", "TN_PROGRESS"]


def tunic(args, ranks, timeout=180, popen=False, env=None):
    """tunic ARGS on one process, or under `mpirun -np RANKS` on loopback."""
    e = dict(ENV, **(env or {}))
    cmd = ([TUNIC] if ranks == 1 else [MPIRUN, "-np", str(ranks)] + LOOPBACK + [TUNIC]) + [str(a) for a in args]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)


def weights(path):
    out = {}
    for k, (dt, shape, raw) in st_tensors(path).items():
        out[k] = np.frombuffer(raw, dtype={"F32": np.float32, "F16": np.float16}[dt]).astype(np.float64)
    return out


def rel_l2(a, b):
    """||w_a - w_b|| / ||w_a|| over every tensor of two weight files."""
    wa, wb = weights(a), weights(b)
    num = sum(float(((wa[k] - wb[k]) ** 2).sum()) for k in wa)
    return math.sqrt(num / sum(float((wa[k] ** 2).sum()) for k in wa))
