"""Reading Caffe text-format nets (.prototxt) and solvers.

Public functions:

* ``read_net(path)`` / ``parse_net_text(text, name)`` -> ``caffe_pb2.NetParameter``.
  V1-style ``layers { }`` nets are refused; the deprecated top-level ``input:`` +
  ``input_shape`` / ``input_dim`` declarations are turned into ``Input`` layers.
* ``read_solver(path)`` / ``parse_solver_text(text, name, base_dir)`` ->
  ``caffe_pb2.SolverParameter``.  Relative net file names are resolved against the
  solver file's folder, and the legacy ``solver_type`` enum is turned into ``type``.
* ``filter_net(net_param, phase, level=None, stages=())`` -> the net restricted to the
  layers whose include / exclude rules accept the given state (Caffe's FilterNet).
* ``state_meets_rule(state, rule)`` and ``upgrade_net_input(net_param, name)`` are the
  building blocks, exposed for the binary (.caffemodel) reader and the solver.
* ``read_net_located(path)`` -> (net, name, ``layer_lines(text)``): the line of every
  layer's block, so that the Net can say where a layer it refuses is written.

A solver file read as a net is recognised (it sets solver fields such as ``net`` or
``base_lr``): a mistake in it is reported as the solver's mistake.

Every problem is reported as a :class:`~seqgen.errors.SeqgenError` whose message starts
with ``"<file>:<line>:<col>: "`` when a position is known, else ``"<file>: "``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Union

from google.protobuf import text_format

from ..errors import SeqgenError
from ..proto import caffe_pb2
from .reading import read_bytes

__all__ = [
    "read_net",
    "read_solver",
    "parse_net_text",
    "parse_solver_text",
    "filter_net",
    "state_meets_rule",
    "upgrade_net_input",
    "layer_lines",
    "read_net_located",
]

PathLike = Union[str, "os.PathLike[str]"]

V1_MESSAGE = (
    "V1-style 'layers { }' blocks are not supported; rename them to 'layer { }' with "
    "string types (Caffe's upgrade_net_proto_text tool does this)"
)

# Legacy SolverParameter.solver_type enum value -> the string used in `type`.
_SOLVER_TYPE_NAMES = {
    caffe_pb2.SolverParameter.SGD: "SGD",
    caffe_pb2.SolverParameter.NESTEROV: "Nesterov",
    caffe_pb2.SolverParameter.ADAGRAD: "AdaGrad",
    caffe_pb2.SolverParameter.RMSPROP: "RMSProp",
    caffe_pb2.SolverParameter.ADADELTA: "AdaDelta",
    caffe_pb2.SolverParameter.ADAM: "Adam",
}

# "3:7 : what" -- the location prefix protobuf puts in front of its ParseError text.
_LOCATION_PREFIX = re.compile(r"^\d+(?::\d+)? : ")
# 'Message type "caffe.NetParameter" has no field named "base_lr".'
_UNKNOWN_FIELD = re.compile(r'has no field named "([A-Za-z_][A-Za-z0-9_]*)"')
_SOLVER_FIELDS = frozenset(caffe_pb2.SolverParameter.DESCRIPTOR.fields_by_name)


# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------


def _where(name: str, line: int | None = None, col: int | None = None) -> str:
    if line is None:
        return f"{name}: "
    if col is None:
        return f"{name}:{line}: "
    return f"{name}:{line}:{col}: "


def _read_text(path: PathLike) -> tuple[str, str]:
    """Return (display name, decoded text) of a text file, or raise SeqgenError."""
    name = os.fspath(path)
    data = read_bytes(name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SeqgenError(
            f"{_where(name, line, col)}not UTF-8 text (is this a binary file, such as a "
            f".caffemodel or .solverstate, rather than a text .prototxt?)"
        ) from None
    if text.startswith("\ufeff"):  # tolerate a UTF-8 byte-order mark
        text = text[1:]
    return name, text


def _drop_quoted_line(what: str, text: str, line: int | None) -> str:
    """Remove the copy of the whole source line protobuf puts in front of some messages
    ("'  dim: \"two\" }': Couldn't parse integer: \"two\""); file:line:col already says where."""
    if not what.startswith("'"):
        return what
    lines = text.splitlines()
    candidates = [""]
    if line is not None and 1 <= line <= len(lines):
        candidates.append(lines[line - 1])
    for quoted in candidates:
        prefix = f"'{quoted}': "
        if what.startswith(prefix) and len(what) > len(prefix):
            return what[len(prefix):]
    return what


def _find_token(text: str, word: str) -> tuple[int, int] | None:
    """1-based (line, col) of the first identifier `word` outside strings and comments."""
    pattern = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
    for lineno, line in enumerate(text.splitlines(), start=1):
        i, n = 0, len(line)
        while i < n:
            ch = line[i]
            if ch == "#":
                break
            if ch in "\"'":
                # skip a quoted string (backslash escapes a character)
                j = i + 1
                while j < n and line[j] != ch:
                    j += 2 if line[j] == "\\" else 1
                i = j + 1
                continue
            m = pattern.match(line, i)
            if m:
                # an identifier glued to a preceding digit/dot is part of a number (1e5)
                glued = i > 0 and (line[i - 1].isalnum() or line[i - 1] in "._")
                if m.group(0) == word and not glued:
                    return lineno, i + 1
                i = m.end()
                continue
            i += 1
    return None


def _parse_text(text: str, message, name: str, v1_check: bool = False):
    """Parse `text` into `message` (strictly), turning ParseError into SeqgenError."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line, col = exc.GetLine(), exc.GetColumn()
        if v1_check:
            # An old net often fails to parse first (unknown enum type names and the
            # like); explain the real problem if a 'layers' block precedes the error.
            pos = _find_token(text, "layers")
            if pos is not None and (line is None or pos <= (line, col or 0)):
                raise SeqgenError(_where(name, *pos) + V1_MESSAGE) from None
        what = _LOCATION_PREFIX.sub("", str(exc), count=1)
        what = _drop_quoted_line(what, text, line) or "cannot parse the text"
        err = SeqgenError(_where(name, line, col) + what)
        err.position = (line or 0, col or 0)
        m = _UNKNOWN_FIELD.search(what)
        err.unknown_field = m.group(1) if m else None
        raise err from None
    missing = message.FindInitializationErrors()
    if missing:
        raise SeqgenError(f"{name}: required field(s) not set: {', '.join(missing)}")
    return message


# ---------------------------------------------------------------------------------------
# Nets
# ---------------------------------------------------------------------------------------


def upgrade_net_input(net_param: caffe_pb2.NetParameter, name: str = "<net>") -> None:
    """Replace the deprecated top-level `input` declarations by `Input` layers, in place.

    Each input blob gets its own ``Input`` layer (named after the blob) with one
    ``input_param.shape``, placed before all other layers in declaration order.  The
    shape comes from the matching ``input_shape``, or from four ``input_dim`` values
    (num, channels, height, width).  ``input``, ``input_shape`` and ``input_dim`` are
    cleared afterwards.  Inconsistent counts raise SeqgenError.
    """
    inputs = list(net_param.input)
    shapes = list(net_param.input_shape)
    dims = list(net_param.input_dim)
    if not inputs:
        if shapes or dims:
            field = "input_shape" if shapes else "input_dim"
            raise SeqgenError(f"{name}: '{field}' is given but no 'input' blob names")
        return
    if shapes and dims:
        raise SeqgenError(
            f"{name}: give the shapes of the 'input' blobs with either 'input_shape' or "
            f"'input_dim', not both"
        )
    if shapes:
        if len(shapes) != len(inputs):
            raise SeqgenError(
                f"{name}: {len(inputs)} 'input' blob(s) but {len(shapes)} 'input_shape' "
                f"entries; give one input_shape per input"
            )
        blob_shapes = [list(s.dim) for s in shapes]
    elif dims:
        if len(dims) != 4 * len(inputs):
            raise SeqgenError(
                f"{name}: {len(inputs)} 'input' blob(s) but {len(dims)} 'input_dim' "
                f"values; give four (num, channels, height, width) per input"
            )
        blob_shapes = [dims[4 * i : 4 * i + 4] for i in range(len(inputs))]
    else:
        raise SeqgenError(
            f"{name}: 'input' blob(s) {', '.join(repr(b) for b in inputs)} have no shape; "
            f"add one 'input_shape {{ dim: ... }}' per input (or use an Input layer)"
        )

    new_layers = []
    for blob, dims_of_blob in zip(inputs, blob_shapes):
        layer = caffe_pb2.LayerParameter(name=blob, type="Input", top=[blob])
        layer.input_param.shape.add().dim.extend(dims_of_blob)
        new_layers.append(layer)
    old_layers = list(net_param.layer)
    del net_param.layer[:]
    net_param.layer.extend(new_layers + old_layers)
    net_param.ClearField("input")
    net_param.ClearField("input_shape")
    net_param.ClearField("input_dim")


def _check_net(net_param: caffe_pb2.NetParameter, text: str, name: str) -> None:
    """Refuse V1 nets and upgrade deprecated inputs of a freshly parsed net."""
    if len(net_param.layers):
        pos = _find_token(text, "layers")
        raise SeqgenError(_where(name, *(pos or (None, None))) + V1_MESSAGE)
    upgrade_net_input(net_param, name)


def parse_net_text(text: str, name: str = "<string>") -> caffe_pb2.NetParameter:
    """Parse a text-format NetParameter; `name` is used in error messages.

    When the text does not parse as a net because it sets a solver field (``net``,
    ``base_lr``, ...), it is a solver file: if it does not parse as a solver either and
    gets further that way, the solver's own error is the one raised (a typo in a solver
    should be reported as such, not as "NetParameter has no field named net"); if it is
    a valid solver, the net error says so.
    """
    try:
        net = _parse_text(text, caffe_pb2.NetParameter(), name, v1_check=True)
    except SeqgenError as net_error:
        if getattr(net_error, "unknown_field", None) not in _SOLVER_FIELDS:
            raise
        try:
            parse_solver_text(text, name)
        except SeqgenError as solver_error:
            further = getattr(solver_error, "position", None)
            if further is None or further > net_error.position:
                raise solver_error from None
            raise
        raise SeqgenError(
            _where(name, *net_error.position) + f"this is a solver file, not a net definition "
            f"(it sets '{net_error.unknown_field}', which nets do not have)") from None
    _check_net(net, text, name)
    return net


def read_net(path: PathLike) -> caffe_pb2.NetParameter:
    """Read a text-format net definition (.prototxt) from `path`."""
    name, text = _read_text(path)
    return parse_net_text(text, name)


_TOKENS = re.compile(
    r"""(?P<skip>\#[^\n]*|\s+)"""
    r"""|(?P<str>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)"""
    r"""|(?P<word>[A-Za-z_][A-Za-z0-9_.]*)"""
    r"""|(?P<open>[{<])|(?P<close>[}>])"""
    r"""|(?P<other>.)""",
    re.S,
)


def layer_lines(text: str) -> dict:
    """{layer name: 1-based line of its ``layer {`` block} for the top-level layers of a
    net's text, plus {blob: line} for deprecated top-level ``input: "blob"`` declarations
    (they become Input layers named after the blob). Best effort, for error messages:
    the first block of a name wins, and unparseable text simply gives fewer entries."""
    lines = {}
    depth = 0
    line = 1
    block_line = None  # line of the top-level 'layer' block being read
    expect = None  # the word whose value comes next: ('layer'|'name'|'input', line)
    for m in _TOKENS.finditer(text):
        kind, tok = m.lastgroup, m.group()
        here = line
        line += tok.count("\n")
        if kind == "skip":
            continue
        if kind == "word":
            if depth == 0 and tok in ("layer", "input"):
                expect = (tok, here)
            elif depth == 1 and block_line is not None and tok == "name":
                expect = ("name", here)
            else:
                expect = None
            continue
        if kind == "open":
            if depth == 0:
                block_line = expect[1] if expect and expect[0] == "layer" else None
            depth += 1
            expect = None
            continue
        if kind == "close":
            depth = max(0, depth - 1)
            if depth == 0:
                block_line = None
            expect = None
            continue
        if kind == "str" and expect and expect[0] in ("name", "input"):
            value = tok[1:-1] if len(tok) >= 2 and tok[-1] == tok[0] else tok[1:]
            where = block_line if expect[0] == "name" else expect[1]
            lines.setdefault(value, where)
            expect = None
            continue
        if tok != ":":
            expect = None
    return lines


def read_net_located(path: PathLike):
    """(NetParameter, display name, {layer name: line}) of a net file, for messages that
    point at the layer at fault."""
    name, text = _read_text(path)
    return parse_net_text(text, name), name, layer_lines(text)


# ---------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------


def _resolve(path: str, base_dir: str) -> str:
    """Resolve a relative file name from a solver file.

    The solver's folder is tried first.  Caffe itself resolves against the working
    directory (BVLC examples say e.g. ``net: "examples/mnist/lenet.prototxt"`` and are run
    from the Caffe root), so that is the fallback when only it names an existing file.
    """
    if not path or os.path.isabs(path):
        return path
    candidate = os.path.normpath(os.path.join(base_dir, path))
    if not os.path.exists(candidate) and os.path.exists(path):
        return os.path.abspath(path)
    return candidate


def parse_solver_text(
    text: str, name: str = "<string>", base_dir: PathLike | None = None
) -> caffe_pb2.SolverParameter:
    """Parse a text-format SolverParameter.

    If `base_dir` is given, relative ``net``, ``train_net`` and ``test_net`` file names
    are resolved against it.  Inline nets (``net_param`` etc.) get the same checks as
    net files.  A legacy ``solver_type`` is converted into ``type`` and cleared.
    """
    solver = _parse_text(text, caffe_pb2.SolverParameter(), name, v1_check=True)

    # Inline nets: refuse V1 layers, upgrade deprecated inputs.
    inline = []
    if solver.HasField("net_param"):
        inline.append(solver.net_param)
    if solver.HasField("train_net_param"):
        inline.append(solver.train_net_param)
    inline.extend(solver.test_net_param)
    for net in inline:
        _check_net(net, text, name)

    # Legacy solver_type enum -> type string.
    if solver.HasField("solver_type"):
        legacy = _SOLVER_TYPE_NAMES[solver.solver_type]
        if solver.HasField("type") and solver.type != legacy:
            pos = _find_token(text, "solver_type")
            raise SeqgenError(
                _where(name, *(pos or (None, None)))
                + f"both 'type: \"{solver.type}\"' and the deprecated 'solver_type: "
                f"{caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)}' are "
                f"given and they disagree; remove solver_type"
            )
        solver.type = legacy
        solver.ClearField("solver_type")

    if base_dir is not None:
        base = os.fspath(base_dir)
        for field in ("net", "train_net"):
            if solver.HasField(field):
                setattr(solver, field, _resolve(getattr(solver, field), base))
        resolved = [_resolve(p, base) for p in solver.test_net]
        del solver.test_net[:]
        solver.test_net.extend(resolved)
    return solver


def read_solver(path: PathLike) -> caffe_pb2.SolverParameter:
    """Read a text-format solver; net file names are made relative to its folder."""
    name, text = _read_text(path)
    return parse_solver_text(text, name, base_dir=os.path.dirname(name) or ".")


# ---------------------------------------------------------------------------------------
# Phase / level / stage filtering
# ---------------------------------------------------------------------------------------


def _phase_value(phase) -> int:
    if isinstance(phase, str):
        key = phase.strip().upper()
        if key in ("TRAIN", "TEST"):
            return caffe_pb2.Phase.Value(key)
    elif phase in (caffe_pb2.TRAIN, caffe_pb2.TEST) and not isinstance(phase, bool):
        return int(phase)
    raise SeqgenError(f"phase must be TRAIN or TEST, not {phase!r}")


def state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """Whether `state` satisfies every condition that `rule` sets (Caffe's StateMeetsRule)."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    have = set(state.stage)
    if any(stage not in have for stage in rule.stage):
        return False
    if any(stage in have for stage in rule.not_stage):
        return False
    return True


def solver_net_state(net_param: caffe_pb2.NetParameter, phase,
                     override: caffe_pb2.NetState | None = None) -> caffe_pb2.NetState:
    """The NetState Caffe's Solver builds a net in (InitTrainNet / InitTestNets): `phase`,
    then the net's own `state` merged over it, then the solver's train_state / test_state.

    Protobuf's MergeFrom: a field set later wins and stages add up. So a net file's
    `state { phase: TEST }` overrides the solver's TRAIN, and its level is kept unless the
    solver's state sets one -- Caffe's precedence, reproduced on purpose."""
    state = caffe_pb2.NetState(phase=_phase_value(phase))
    state.MergeFrom(net_param.state)
    if override is not None:
        state.MergeFrom(override)
    return state


def filter_net(
    net_param: caffe_pb2.NetParameter,
    phase,
    level: int | None = None,
    stages: Iterable[str] = (),
) -> caffe_pb2.NetParameter:
    """Copy of `net_param` keeping only the layers selected for the given state.

    The state starts from ``net_param.state`` (if any); `phase` (``caffe_pb2.TRAIN`` /
    ``caffe_pb2.TEST``, or the strings) replaces its phase, `level` replaces its level
    when not None, and `stages` are added to its stages.  A layer with include rules is
    kept if any of them is met; otherwise it is kept unless an exclude rule is met.  A
    layer with both kinds of rule is an error (as in Caffe).  The returned net's
    ``state`` field holds the state used.
    """
    state = caffe_pb2.NetState()
    if net_param.HasField("state"):
        state.CopyFrom(net_param.state)
    state.phase = _phase_value(phase)
    if level is not None:
        state.level = int(level)
    if isinstance(stages, str):
        stages = [stages]
    for stage in stages:
        if stage not in state.stage:
            state.stage.append(stage)

    out = caffe_pb2.NetParameter()
    out.CopyFrom(net_param)
    del out.layer[:]
    out.state.CopyFrom(state)
    for layer in net_param.layer:
        if len(layer.include) and len(layer.exclude):
            err = SeqgenError(
                f"layer '{layer.name}': give either include or exclude rules, not both"
            )
            err.layer_name = layer.name  # lets the Net point at the layer's line
            raise err
        if len(layer.include):
            keep = any(state_meets_rule(state, r) for r in layer.include)
        else:
            keep = not any(state_meets_rule(state, r) for r in layer.exclude)
        if keep:
            out.layer.add().CopyFrom(layer)
    return out
