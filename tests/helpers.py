"""Shared test helpers: golden file paths, the float32 comparison rule, random nets."""
import re
import shutil
from pathlib import Path

import numpy as np

from seqgen.app.cli import main
from seqgen.solver.callbacks import Callback

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).parents[1]

# float32 layers: Caffe and seqgen sum in different orders, so values agree to a few ulps
# of the largest magnitude in the array, not of each element. rtol 1e-5 per element plus an
# absolute floor of 1e-6 x the array's scale covers that with 10x margin (measured worst:
# about 1e-6 of scale).
RTOL = 1e-5
ATOL_SCALE = 1e-6


def assert_close(ours, ref, what="", rtol=RTOL, atol_scale=ATOL_SCALE):
    ref = np.asarray(ref, np.float64)
    ours = np.asarray(ours, np.float64).reshape(ref.shape)
    scale = max(1.0, float(np.abs(ref).max(initial=0)))
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol_scale * scale, err_msg=what)


def run(capsys, *argv):
    """`seqgen ARGV...` in this process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


#: the note a command that works on the latest run gives first (runs/pick.py), also before
#: an error: it says which run the error is about
LATEST_RUN_NOTE = re.compile(r"Using .+ \(latest run\)")


def one_line(capsys, *argv, code=2):
    """The one stderr line of `seqgen ARGV` failing with `code` (no traceback), after the
    "Using RUN (latest run)" note when no run was named."""
    got, out, err = run(capsys, *argv)
    assert got == code, (out, err)
    lines = err.strip().splitlines()
    if len(lines) == 2 and LATEST_RUN_NOTE.fullmatch(lines[0]):
        lines = lines[1:]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def solver_file(folder, net, settings, extra="", name=None):
    """A solver file for the shipped net NET, copied next to it: `net`, the `settings`
    lines, `snapshot_prefix: "NET"`, then `extra`; named NET_solver.prototxt by default."""
    shutil.copy(ROOT / "prototxt" / f"{net}.prototxt", folder / f"{net}.prototxt")
    path = folder / (name or f"{net}_solver.prototxt")
    path.write_text(f'net: "{net}.prototxt"\n{settings}snapshot_prefix: "{net}"\n{extra}')
    return path


class Hooks(Callback):
    """A solver callback made of functions: Hooks(before_forward=f, after_iteration=g)."""

    def __init__(self, before_forward=None, after_iteration=None):
        self.functions = {"before_forward": before_forward, "after_iteration": after_iteration}

    def before_forward(self, solver):
        if self.functions["before_forward"] is not None:
            self.functions["before_forward"](solver)

    def after_iteration(self, solver, loss):
        if self.functions["after_iteration"] is not None:
            self.functions["after_iteration"](solver, loss)


def random_net(text, seed=0, std=0.5):
    """A TEST net built from prototxt text, every parameter drawn from N(0, std) (seeded)."""
    from seqgen.io.prototxt import parse_net_text  # lazy: most tests never build a net here
    from seqgen.net import TEST, Net

    net = Net(parse_net_text(text), TEST)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.normal(0, std, blob.shape)
    return net


def lstm_problem(rng, cont, I, H, dtype):
    """An LSTM kernel's inputs, weights, carried state and top diffs, drawn from `rng`, for
    (T, N) clip markers `cont`: what the kernel path tests feed every path."""
    T, N = cont.shape
    G = 4 * H
    p = dict(x=rng.standard_normal((T, N, I)), W_x=0.4 * rng.standard_normal((G, I)),
             W_h=0.4 * rng.standard_normal((G, H)), b=0.2 * rng.standard_normal(G),
             h0=0.5 * rng.standard_normal((N, H)), c0=0.5 * rng.standard_normal((N, H)),
             cont=cont, top=rng.standard_normal((T, N, H)),
             dhT=rng.standard_normal((N, H)), dcT=rng.standard_normal((N, H)))
    return {k: np.ascontiguousarray(v, dtype) for k, v in p.items()}


def layer_factory(text, phase=0, options=None):
    """() -> a fresh layer built from LayerParameter text (phase 0 is TRAIN)."""
    from google.protobuf import text_format  # lazy: most tests never build a layer here

    from seqgen.proto import caffe_pb2  # lazy: as above
    from seqgen.registry import layer_class  # lazy: as above

    lp = text_format.Parse(text, caffe_pb2.LayerParameter())
    cls = layer_class(lp.type)
    return lambda: cls(lp, phase, options)


def run_layer(text, arrays, n_tops=1, phase=0, dtype=np.float64, options=None,
              in_place=False):
    """Set up one layer on bottoms holding `arrays` and run its forward; returns (layer,
    bottom blobs, top blobs). `in_place`: the first top is the first bottom."""
    from seqgen.blob import Blob  # lazy: as layer_factory

    layer = layer_factory(text, phase, options)()
    bottom = []
    for a in arrays:
        a = np.asarray(a, dtype)
        b = Blob(a.shape, dtype)
        b.data[...] = a
        bottom.append(b)
    top = [Blob((0,), dtype) for _ in range(n_tops)]
    if in_place:
        top[0] = bottom[0]
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    return layer, bottom, top
