"""Digests of a run folder's record files with times and paths left out, so that a run
made today can be compared with one recorded by an earlier seqgen (tests/test_run_compat.py)."""
import hashlib
import json
import os

import numpy as np

# run.json keys that hold times or file system paths: they differ between machines
_RUN_SKIP = {"train_seconds", "net", "solver", "weights", "solverstate", "data_abs",
             "resumed_from"}


def sha(data):
    return hashlib.sha256(data).hexdigest()


def file_digest(path):
    with open(path, "rb") as f:
        return sha(f.read())


def run_json_digest(folder):
    with open(os.path.join(folder, "run.json")) as f:
        info = json.load(f)
    kept = {k: v for k, v in info.items() if k not in _RUN_SKIP}
    if isinstance(kept.get("data"), str) and os.path.isabs(kept["data"]):
        kept["data"] = os.path.basename(kept["data"])
    return sha(json.dumps(kept, sort_keys=True).encode())


def sidecar_digest(path):
    """The sidecar's meta (paths reduced to file names) and every array's bytes."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"][()]))
        arrays = {key: z[name] for key, name in meta["arrays"].items()}
    run = (meta.get("extra") or {}).get("run")
    if run and isinstance(run.get("data"), str) and os.path.isabs(run["data"]):
        run["data"] = os.path.basename(run["data"])
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()
