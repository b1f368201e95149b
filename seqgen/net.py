"""Net: layers from the registry wired by blob name, run forward and backward (Caffe's Net).

The Net knows nothing of any particular layer type: it resolves `type` through the
registry, inserts Split layers where one blob feeds several layers (named as Caffe names
them), works out which layers need a backward pass (Caffe's Net::Init rules for
loss_weight, propagate_down and force_backward), and keeps the learnable parameters (with
their lr_mult / decay_mult, shared by `param { name }`) for the solver.

The public surface is pycaffe's: `blobs`, `params`, `layers`, `inputs`, `outputs`,
`forward(**inputs)`, `backward(**top_diffs)`, `reshape()`, `save()`, `copy_from()`, plus
`get_state()` / `set_state()` / `reset_state()` for the recurrent state that layers carry
from one forward call to the next.
"""
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from . import batches, fusion
from .blob import Blob, BlobVec
from .errors import SeqgenError
from .io import hdf5_weights
from .io.prototxt import _phase_value, filter_net, read_net_located, solver_net_state
from .io.weights import load_weights, save_weights
from .layers import base as layer_base
from .proto import caffe_pb2
from .registry import layer_class

TRAIN = caffe_pb2.TRAIN
TEST = caffe_pb2.TEST


@dataclass
class LearnableParam:
    """One parameter blob the solver updates, with its multipliers from `param { }`."""
    blob: Blob
    lr_mult: float
    decay_mult: float
    name: str  # "<layer>/<index>" for messages


def _is_phase(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, str) and value.strip().upper() in ("TRAIN", "TEST")


def _constructor_args(args, weights, phase):
    """(weights, phase) from pycaffe's positional forms: Net(net, phase),
    Net(net, weights, phase), and Net(net, phase, weights=...)."""
    if len(args) > 2:
        raise TypeError("Net(net, [weights], [phase]) takes at most three positional "
                        f"arguments ({1 + len(args)} given)")
    pos_weights = pos_phase = None
    if len(args) == 2:
        pos_weights, pos_phase = args
    elif len(args) == 1:
        if _is_phase(args[0]):
            pos_phase = args[0]
        else:
            pos_weights = args[0]
    if pos_weights is not None and weights is not None:
        raise TypeError("Net() got the weights twice (positionally and as weights=)")
    if pos_phase is not None and phase is not None:
        raise TypeError("Net() got the phase twice (positionally and as phase=)")
    weights = weights if weights is not None else pos_weights
    phase = phase if phase is not None else pos_phase
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise SeqgenError(f"weights must be the path of a .caffemodel file, not {weights!r}")
    return weights, _phase_value(TEST if phase is None else phase)


def _insert_splits(layers):
    """Caffe's InsertSplits: every top used by more than one bottom (or by a bottom and as
    an explicit loss) goes through a Split layer, one top per use. Names follow Caffe:
    layer "<blob>_<producer>_<top index>_split", tops "..._split_<k>"."""
    last_top = {}  # blob name -> (layer index, top index) of its latest producer
    uses = {}  # (layer index, top index) -> number of uses
    loss_of = {}  # (layer index, top index) -> explicit loss_weight
    source = {}  # (layer index, bottom index) -> (layer index, top index)
    for i, lp in enumerate(layers):
        for j, b in enumerate(lp.bottom):
            if b in last_top:  # a missing producer is reported by the Net
                source[(i, j)] = last_top[b]
                uses[last_top[b]] = uses.get(last_top[b], 0) + 1
        for j, t in enumerate(lp.top):
            last_top[t] = (i, j)
        for j in range(min(len(lp.loss_weight), len(lp.top))):
            key = last_top[lp.top[j]]
            loss_of[key] = lp.loss_weight[j]
            if lp.loss_weight[j]:
                uses[key] = uses.get(key, 0) + 1
    if all(n <= 1 for n in uses.values()):
        return list(layers)
    out = []
    next_split = {}  # (layer index, top index) -> next split top to hand out
    for i, lp in enumerate(layers):
        renamed = [(j, source[(i, j)]) for j in range(len(lp.bottom))
                   if uses.get(source.get((i, j)), 0) > 1]
        splits = [j for j in range(len(lp.top)) if uses.get((i, j), 0) > 1]
        if renamed or any(loss_of.get((i, j)) for j in splits):
            lp = caffe_pb2.LayerParameter.FromString(lp.SerializeToString())
        for j, src in renamed:
            k = next_split.get(src, 0)
            next_split[src] = k + 1
            lp.bottom[j] = f"{lp.bottom[j]}_{layers[src[0]].name}_{src[1]}_split_{k}"
        out.append(lp)
        for j in splits:
            blob, producer = lp.top[j], layers[i].name
            split = caffe_pb2.LayerParameter(name=f"{blob}_{producer}_{j}_split", type="Split")
            split.bottom.append(blob)
            weight = loss_of.get((i, j), 0)
            for k in range(uses[(i, j)]):
                split.top.append(f"{blob}_{producer}_{j}_split_{k}")
                if weight:
                    split.loss_weight.append(weight if k == 0 else 0)
            if weight:
                # the loss moves to the Split's first top (Caffe clears the layer's
                # loss_weight; an explicit 0 keeps a loss layer from taking its default 1)
                lp.loss_weight[j] = 0
                next_split[(i, j)] = 1
            out.append(split)
    return out


class Net:
    """A network built for one phase.

    Net(prototxt, weights=None, phase=TEST) and pycaffe's Net(prototxt, phase) and
    Net(prototxt, weights, phase) forms; `prototxt` may also be a NetParameter. `options`
    is handed to every layer (e.g. {"fork_compat": True}; {"fusion": False} turns off the
    rewrites of `seqgen.fusion`); `level` and `stages` select
    layers as Caffe's NetState does. `state` (a NetState, as the solver's train_state and
    test_state) replaces `level` and `stages`: the net is built in the state Caffe's Solver
    would use (`phase`, the net's own `state` merged over it, then `state`).
    """

    def __init__(self, net, *args, weights=None, phase=None, options=None, level=0,
                 stages=(), state=None):
        weights, phase = _constructor_args(args, weights, phase)
        self.options = dict(options or {})
        self._lines = {}  # layer name -> line in the net file, for messages
        if isinstance(net, caffe_pb2.NetParameter):
            self.source = "<NetParameter>"
            param = net
        elif isinstance(net, (str, os.PathLike)):
            self.source = str(net)
            param, _, self._lines = read_net_located(net)
            # layers that read files (HDF5Data) also look beside the net file
            self.options.setdefault("net_dir", os.path.dirname(os.path.abspath(self.source)))
        else:
            raise SeqgenError(f"the net must be a .prototxt file name or a NetParameter, "
                              f"not {type(net).__name__}")
        if state is not None:
            merged = solver_net_state(param, phase, state)
            phase, level, stages = merged.phase, merged.level, list(merged.stage)
        self.phase = phase
        try:
            self.param = filter_net(param, phase, level, stages)
        except SeqgenError as e:
            raise SeqgenError(f"{self._at(getattr(e, 'layer_name', None))}{e}") from None
        self.name = self.param.name
        if not len(self.param.layer):
            dropped = len(param.layer)
            raise SeqgenError(
                f"{self.source}: the net has no layers" + (
                    f" for phase {caffe_pb2.Phase.Name(phase)} (include/exclude rules leave "
                    f"out all {dropped})" if dropped else ""))
        self._build()
        if weights is not None:
            self.copy_from(weights)

    # -- construction ----------------------------------------------------------------------
    def _at(self, layer_name):
        """'<file>:<line>: ' of a layer's block in the net file, or '<file>: '."""
        line = self._lines.get(layer_name)
        return f"{self.source}:{line}: " if line else f"{self.source}: "

    def _check_tops(self, lp, bottoms, tops, before):
        """After a layer's reshape: no top too large, no in-place blob changed shape."""
        for name, blob in zip(lp.top, tops):
            if blob.count > layer_base.MAX_BLOB_COUNT:
                raise SeqgenError(f"{self._at(lp.name)}layer '{lp.name}' ({lp.type}): top "
                                  f"'{name}' of shape {blob.shape} holds {blob.count} values, "
                                  f"more than a blob may hold ({layer_base.MAX_BLOB_COUNT})")
        for name, shape in before.items():
            blob = self.blobs[name]
            if blob.shape != shape:
                raise SeqgenError(
                    f"{self._at(lp.name)}layer '{lp.name}' ({lp.type}) cannot work in place: "
                    f"it would change blob '{name}' from shape {shape} to {blob.shape}; give "
                    "its top another name")

    def _setup_layer(self, layer, lp, bottoms, tops):
        self._checked(lp, bottoms, tops, layer.setup, layer.reshape)

    def _checked(self, lp, bottoms, tops, *steps):
        """Run a layer's setup/reshape steps; errors get the layer's file:line, and an
        in-place top may not change its shape."""
        in_place = {t: self.blobs[t].shape for t in lp.top if t in lp.bottom}
        try:
            for step in steps:
                step(bottoms, tops)
        except SeqgenError as e:
            # the same exception, its message prefixed: its type (a Python layer's
            # RuntimeError, a runtime failure's exit code) stays
            e.args = (f"{self._at(lp.name)}{e}",) + e.args[1:]
            raise e from None
        except MemoryError as e:
            raise SeqgenError(f"{self._at(lp.name)}layer '{lp.name}' ({lp.type}): not enough "
                              f"memory for its blobs ({e})") from None
        self._check_tops(lp, bottoms, tops, in_place)

    def _build(self):
        self.blobs = OrderedDict()
        self.layers = []
        self.layer_names = []
        self._bottoms, self._tops = [], []
        self.inputs = []
        self.params = OrderedDict()
        self.learnable_params = []
        self._reshaped_shares = []  # (blob, owner) shared with share_mode PERMISSIVE
        self._loss_weights = []  # per layer: list of (top blob, weight)
        self.blob_loss_weights = OrderedDict()
        owners = {}  # shared param name -> (LearnableParam, layer name, explicit lr/decay)
        produced_by = {}
        seen_names = set()
        available = []  # blobs produced and not (yet) consumed: the outputs, as in Caffe
        for lp in _insert_splits(list(self.param.layer)):
            if lp.name in seen_names:
                raise SeqgenError(f"{self.source}: two layers are named '{lp.name}' (layer "
                                  "names must be unique: weights are matched by name)")
            seen_names.add(lp.name)
            try:
                cls = layer_class(lp.type, lp.name)
            except SeqgenError as e:
                raise SeqgenError(f"{self._at(lp.name)}{e}") from None
            if cls.is_loss and not lp.top:
                lp = caffe_pb2.LayerParameter.FromString(lp.SerializeToString())
                lp.top.append(lp.name)  # Caffe's AutoTopBlobs for loss layers
            layer = cls(lp, self.phase, self.options)
            bottoms = self._wire_bottoms(lp, available)
            tops = self._wire_tops(lp, produced_by, available)
            if cls.is_input:
                self.inputs.extend(lp.top)
            self._setup_layer(layer, lp, bottoms, tops)
            layer.blobs = BlobVec(layer.blobs)  # pycaffe's BlobVec (add_blob)
            self._share_params(layer, lp, owners)
            self.layers.append(layer)
            self.layer_names.append(lp.name)
            self._bottoms.append(bottoms)
            self._tops.append(tops)
            self.params[lp.name] = layer.blobs
            weights = list(lp.loss_weight)
            if not weights and cls.is_loss:
                weights = [1.0]
            self._loss_weights.append([(tops[i], np.float32(w)) for i, w in enumerate(weights)
                                       if w and i < len(tops)])
            for i, t in enumerate(lp.top):
                self.blob_loss_weights[t] = float(weights[i]) if i < len(weights) else 0.0
        self.outputs = sorted(available)  # Caffe lists its outputs from a std::set
        self._plan_backward()
        # rewrites that fuse layers (seqgen.fusion): every match, applied or refused
        self.fusion_notes = fusion.apply(self)
        self.fusions = [f for f in self.fusion_notes if f.applied]
        self.params = OrderedDict((k, v) for k, v in self.params.items() if v)
        self._forward_plan = [(layer, b, t) for layer, b, t in
                              zip(self.layers, self._bottoms, self._tops) if layer.runs_forward]
        self._loss_tops = [pair for pairs in self._loss_weights for pair in pairs]
        self._seeded = [None] * len(self._loss_tops)  # the diff arrays seeded with weights
        self._seed_loss_diffs()
        self._input_shapes = None
        self._reshape_each = any(layer.reshapes_every_forward for layer in self.layers)
        # the layers that may carry state (the others keep Layer's `get_state: None`)
        self._carriers = [(name, layer) for name, layer in zip(self.layer_names, self.layers)
                          if type(layer).get_state is not layer_base.Layer.get_state]

    def _wire_bottoms(self, lp, available):
        """The layer's bottom blobs, each made by an earlier layer; a blob consumed here is
        no longer one of the net's outputs."""
        bottoms = []
        for b in lp.bottom:
            if b not in self.blobs:
                raise SeqgenError(f"{self._at(lp.name)}layer '{lp.name}' ({lp.type}) needs "
                                  f"bottom '{b}', which no earlier layer produces")
            bottoms.append(self.blobs[b])
            if b in available:
                available.remove(b)
        return bottoms

    def _wire_tops(self, lp, produced_by, available):
        """The layer's top blobs, new unless in place; each is an output until consumed."""
        if len(set(lp.top)) != len(lp.top):
            twice = next(t for t in lp.top if list(lp.top).count(t) > 1)
            raise SeqgenError(f"{self._at(lp.name)}layer '{lp.name}' ({lp.type}) lists top "
                              f"'{twice}' more than once")
        tops = []
        for t in lp.top:
            if t in self.blobs and t not in lp.bottom:
                raise SeqgenError(f"{self._at(lp.name)}layer '{lp.name}' ({lp.type}) "
                                  f"produces top '{t}', which layer '{produced_by[t]}' "
                                  "already produces (only in-place tops may reuse a name)")
            self.blobs.setdefault(t, Blob())
            produced_by[t] = lp.name
            tops.append(self.blobs[t])
            if t not in available:
                available.append(t)
        return tops

    def _share_params(self, layer, lp, owners):
        """Caffe's AppendParam: a named parameter seen before is the same blob."""
        specs = list(lp.param)
        if len(specs) > len(layer.blobs):
            raise SeqgenError(f"{self._at(lp.name)}layer '{lp.name}' has {len(specs)} param specs "
                              f"but only {len(layer.blobs)} parameter blobs")
        for i, blob in enumerate(layer.blobs):
            spec = specs[i] if i < len(specs) else caffe_pb2.ParamSpec()
            if spec.name and spec.name in owners:
                owner, owner_layer, explicit = owners[spec.name]
                permissive = spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE
                fits = owner.blob.count == blob.count if permissive else \
                    owner.blob.shape == blob.shape
                if not fits:
                    raise SeqgenError(
                        f"{self._at(lp.name)}layer '{lp.name}' shares parameter "
                        f"'{spec.name}' with layer '{owner_layer}', but the shapes differ: "
                        f"{blob.shape} vs "
                        f"{owner.blob.shape}" + (" (share_mode PERMISSIVE needs equal counts)"
                                                 if permissive else ""))
                for field in ("lr_mult", "decay_mult"):
                    if spec.HasField(field):
                        if field in explicit and getattr(owner, field) != getattr(spec, field):
                            raise SeqgenError(
                                f"{self._at(lp.name)}shared parameter '{spec.name}' has "
                                f"{field} {getattr(owner, field):g} in layer '{owner_layer}' but "
                                f"{getattr(spec, field):g} in layer '{lp.name}'")
                        setattr(owner, field, getattr(spec, field))
                        explicit.add(field)
                if owner.blob.shape != blob.shape:  # PERMISSIVE: same numbers, own shape
                    self._reshaped_shares.append((blob, owner.blob))
                    self._point_at(blob, owner.blob)
                else:
                    layer.blobs[i] = owner.blob
                continue
            learnable = LearnableParam(blob, spec.lr_mult, spec.decay_mult, f"{lp.name}/{i}")
            if spec.name:
                owners[spec.name] = (learnable, lp.name,
                                     {f for f in ("lr_mult", "decay_mult") if spec.HasField(f)})
            self.learnable_params.append(learnable)

    def _plan_backward(self):
        """Which layers run backward and to which bottoms: Caffe's Net::Init bookkeeping.

        Forward over the layers: a layer needs backward when a bottom blob does or one of
        its parameters has lr_mult != 0; `propagate_down` (once per bottom) overrides the
        per-bottom choice. Backward over the layers: layers that do not reach a loss, and
        layers all of whose tops are cut off by propagate_down, are skipped. force_backward
        then makes every layer propagate to every bottom that accepts a gradient.
        """
        force = self.param.force_backward
        blob_need = {}
        self._need_backward, self._propagate = [], []
        for layer in self.layers:
            lp = layer.param
            explicit = list(lp.propagate_down)
            if explicit and len(explicit) != len(lp.bottom):
                raise SeqgenError(f"{self._at(lp.name)}layer '{lp.name}' gives propagate_down "
                                  f"{len(explicit)} times for {len(lp.bottom)} bottom(s); give "
                                  "it once per bottom or not at all")
            need = any(blob_need.get(b, False) for b in lp.bottom)
            prop = [bool(explicit[i]) if explicit else blob_need.get(b, False)
                    for i, b in enumerate(lp.bottom)]
            specs = list(lp.param)
            need |= any((specs[i].lr_mult if i < len(specs) else 1.0) != 0
                        for i in range(len(layer.blobs)))
            if need:
                for t in lp.top:
                    blob_need[t] = True
            self._need_backward.append(need)
            self._propagate.append(prop)
        under_loss, skip = set(), set()
        for idx in range(len(self.layers) - 1, -1, -1):
            lp = self.layers[idx].param
            prop = self._propagate[idx]
            contributes = bool(self._loss_weights[idx]) or any(t in under_loss for t in lp.top)
            if self._need_backward[idx] and all(t in skip for t in lp.top):
                self._need_backward[idx] = False
                prop[:] = [False] * len(prop)
            if not contributes:
                self._need_backward[idx] = False
            for i, b in enumerate(lp.bottom):
                if contributes:
                    under_loss.add(b)
                else:
                    prop[i] = False
                if not prop[i]:
                    skip.add(b)
        for idx, layer in enumerate(self.layers):
            if force:
                self._need_backward[idx] = True
                self._propagate[idx] = [p or i not in layer.no_grad_bottoms
                                        for i, p in enumerate(self._propagate[idx])]
            # a layer is never asked for a gradient it cannot give (cont markers, labels)
            self._propagate[idx] = [p and i not in layer.no_grad_bottoms
                                    for i, p in enumerate(self._propagate[idx])]
        self._backward_plan = [i for i in range(len(self.layers) - 1, -1, -1)
                               if self._need_backward[i]]

    # -- pycaffe's views of the net ----------------------------------------------------------
    @property
    def layer_dict(self):
        return OrderedDict(zip(self.layer_names, self.layers))

    @property
    def bottom_names(self):
        return OrderedDict((n, list(l.param.bottom))
                           for n, l in zip(self.layer_names, self.layers))

    @property
    def top_names(self):
        return OrderedDict((n, list(l.param.top)) for n, l in zip(self.layer_names, self.layers))

    # pycaffe's underscored views (what its pycaffe.py builds the named ones from)
    @property
    def _layer_names(self):
        return list(self.layer_names)

    @property
    def _blob_names(self):
        return list(self.blobs)

    @property
    def _blobs(self):
        return list(self.blobs.values())

    @property
    def _inputs(self):
        """Indices of the input blobs in `_blob_names`."""
        names = list(self.blobs)
        return [names.index(n) for n in self.inputs]

    @property
    def _outputs(self):
        """Indices of the output blobs in `_blob_names`."""
        names = list(self.blobs)
        return [names.index(n) for n in self.outputs]

    @property
    def _blob_loss_weights(self):
        return [self.blob_loss_weights.get(n, 0.0) for n in self.blobs]

    def _top_ids(self, i):
        names = list(self.blobs)
        return [names.index(t) for t in self.layers[self._index(i, 0, "_top_ids")].param.top]

    def _bottom_ids(self, i):
        names = list(self.blobs)
        return [names.index(b)
                for b in self.layers[self._index(i, 0, "_bottom_ids")].param.bottom]

    def forward_all(self, blobs=None, **kwargs):
        """pycaffe's forward_all: forward over arrays longer than the batch, batch by batch
        along axis 0; returns {blob: all rows}."""
        return batches.forward_all(self, blobs, **kwargs)

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """pycaffe's forward_backward_all: ({blob: rows}, {blob: diff rows})."""
        return batches.forward_backward_all(self, blobs, diffs, **kwargs)

    def _batch(self, arrays):
        return batches.batches(self, arrays)

    def set_input_arrays(self, data, labels):
        """pycaffe's set_input_arrays feeds a MemoryData layer, which needs images."""
        raise SeqgenError("set_input_arrays may only be called if the first layer is a "
                          "MemoryDataLayer, an image layer seqgen does not provide; write "
                          "into an Input layer's blobs instead (net.blobs[name].data[...] = x)")

    def layer_needs_backward(self, name):
        """Whether backward() runs this layer (Caffe logs it as 'needs backward computation')."""
        return self._need_backward[self._layer_index(name)]

    def _layer_index(self, name):
        try:
            return self.layer_names.index(name)
        except ValueError:
            raise SeqgenError(f"no layer named '{name}' in this net") from None

    def __repr__(self):
        return (f"<seqgen.Net '{self.name}' ({caffe_pb2.Phase.Name(self.phase)}) from "
                f"{self.source}: {len(self.layers)} layers, inputs {self.inputs}, "
                f"outputs {self.outputs}>")

    # -- running ---------------------------------------------------------------------------
    def _set_inputs(self, inputs):
        for name, value in inputs.items():
            if name not in self.inputs:
                raise SeqgenError(f"'{name}' is not an input of this net "
                                  f"(inputs: {', '.join(self.inputs) or 'none'})")
            try:
                value = np.asarray(value, np.float32)
            except (TypeError, ValueError) as e:
                raise SeqgenError(f"input '{name}': not an array of numbers ({e})") from None
            blob = self.blobs[name]
            if value.shape != blob.shape:
                if value.size > layer_base.MAX_BLOB_COUNT:
                    raise SeqgenError(f"input '{name}': {value.size} values are more than a "
                                      f"blob may hold ({layer_base.MAX_BLOB_COUNT})")
                if value.size == blob.count and value.ndim < blob.data.ndim:
                    value = value.reshape(blob.shape)
                else:
                    blob.reshape(value.shape)
            blob.data[...] = value

    def reshape(self):
        """Propagate input shapes through every layer (after writing new input shapes)."""
        for layer, bottom, top in zip(self.layers, self._bottoms, self._tops):
            self._checked(layer.param, bottom, top, layer.reshape)
        self._input_shapes = tuple(self.blobs[name].data.shape for name in self.inputs)

    def _index(self, which, default, what):
        """A layer index from pycaffe's int form or seqgen's layer name (None: default)."""
        if which is None:
            return default
        if isinstance(which, (int, np.integer)) and not isinstance(which, bool):
            if not 0 <= which < len(self.layers):
                raise SeqgenError(f"{what}: layer index {which} is out of range (the net has "
                                  f"{len(self.layers)} layers, 0 to {len(self.layers) - 1})")
            return int(which)
        return self._layer_index(which)

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """pycaffe's net.forward: keyword arguments are written into input blobs (resized
        if needed), then layers `start` to `end` run (names; default all).

        Returns {blob name: data array} for the outputs, or with `end` for the tops of
        layer `end` (pycaffe's rule), plus the blobs named in `blobs`. The arrays are the
        blobs' own, as pycaffe's: copy what you keep.
        """
        blobs = list(blobs or [])
        last = self._index(end, len(self.layers) - 1, "forward(end=...)")
        first = self._index(start, 0, "forward(start=...)")
        names = self.top_names[self.layer_names[last]] if end is not None else self.outputs
        self._set_inputs(inputs)
        self._forward(first, last)
        return OrderedDict((name, self._blob(name).data)
                           for name in dict.fromkeys(list(names) + blobs))

    def _blob(self, name):
        try:
            return self.blobs[name]
        except KeyError:
            raise SeqgenError(f"no blob named '{name}' in this net") from None

    def reshape_if_changed(self):
        """reshape() when an input changed shape since the last one: reshape is idempotent
        for unchanged inputs (Caffe calls it every time; here it was a third of the Python
        cost of a step)."""
        if tuple(self.blobs[name].data.shape for name in self.inputs) != self._input_shapes:
            self.reshape()

    def _forward(self, start=None, end=None):
        """pycaffe's net._forward(start, end) (Caffe's ForwardFromTo): run layers `start`
        to `end` inclusive (indices, or names; default all); returns the weighted loss."""
        self.reshape_if_changed()
        lo = self._index(start, 0, "_forward")
        hi = self._index(end, len(self.layers) - 1, "_forward")
        if self._reshape_each:
            # a top's shape depends on values (Filter): reshape every layer (Split's aliases
            # too) just before its forward, in Caffe's order
            loss_tops = self._forward_reshaping(lo, hi)
        elif start is None and end is None:
            loss_tops = self._loss_tops
            for layer, bottom, top in self._forward_plan:
                layer.forward(bottom, top)
        else:
            span = range(lo, hi + 1)
            loss_tops = [pair for i in span for pair in self._loss_weights[i]]
            # a forward over part of the net runs unfused (it may start after an Embed)
            fusion.hold(self.fusions, lo > 0 or hi < len(self.layers) - 1)
            try:
                for i in span:
                    if self.layers[i].runs_forward:
                        self.layers[i].forward(self._bottoms[i], self._tops[i])
            finally:
                fusion.hold(self.fusions, False)
        loss = np.float32(0)
        for blob, w in loss_tops:
            data = blob.data
            # (one value, as a loss layer's top: its float32 sum is itself)
            loss += w * (np.float32(data.reshape(-1)[0]) if data.size == 1
                         else data.sum(dtype=np.float32))
        return loss

    def _forward_reshaping(self, lo, hi):
        """Layers lo..hi, each reshaped then run; returns their (loss top, weight) pairs."""
        for i in range(lo, hi + 1):
            layer, bottom, top = self.layers[i], self._bottoms[i], self._tops[i]
            self._checked(layer.param, bottom, top, layer.reshape)
            if layer.runs_forward:
                layer.forward(bottom, top)
        return [pair for i in range(lo, hi + 1) for pair in self._loss_weights[i]]

    def backward(self, diffs=None, start=None, end=None, **top_diffs):
        """pycaffe's net.backward: keyword arguments are diffs for output blobs (e.g.
        `net.backward(h=dh)` for a net without a loss), written before the pass; then
        layers `start` down to `end` run (names; default all).

        Returns {blob name: diff array} for the inputs, or with `end` for the bottoms of
        layer `end` (pycaffe's rule), plus the blobs named in `diffs`. A loss top's diff
        is its loss_weight, set once when the net is built (Caffe's SetLossWeights), so a
        diff written there by hand stays. Parameter diffs accumulate until
        `clear_param_diffs()` (the solver clears them every iteration).
        """
        diffs = list(diffs or [])
        first = self._index(start, len(self.layers) - 1, "backward(start=...)")
        last = self._index(end, 0, "backward(end=...)")
        names = self.bottom_names[self.layer_names[last]] if end is not None else self.inputs
        self._backward(first, last, top_diffs)
        return OrderedDict((name, self._blob(name).diff)
                           for name in dict.fromkeys(list(names) + diffs))

    def _seed_loss_diffs(self):
        """Caffe's SetLossWeights: a loss top's diff holds its loss_weight, written at
        setup and left alone afterwards (a user may change it). seqgen writes it again
        only when the blob got new arrays (a reshape to another shape, a float64 check)."""
        for k, (blob, w) in enumerate(self._loss_tops):
            if self._seeded[k] is not blob.diff:
                blob.diff[...] = w
                self._seeded[k] = blob.diff

    def _backward(self, start=None, end=None, top_diffs=None):
        """pycaffe's net._backward(start, end) (Caffe's BackwardFromTo): run the layers
        from `start` down to `end` inclusive (indices, or names; default all), after
        writing `top_diffs` (output name -> diff)."""
        self._seed_loss_diffs()
        if top_diffs:
            self._set_top_diffs(top_diffs)
        if start is None and end is None:
            plan = self._backward_plan
        else:
            hi = self._index(start, len(self.layers) - 1, "_backward")
            lo = self._index(end, 0, "_backward")
            plan = [i for i in self._backward_plan if lo <= i <= hi]
        for idx in plan:
            self.layers[idx].backward(self._tops[idx], self._propagate[idx], self._bottoms[idx])

    def _set_top_diffs(self, top_diffs):
        """Write diffs given for output blobs (reshaped to the blob when the size fits)."""
        for name, value in top_diffs.items():
            if name not in self.outputs:
                raise SeqgenError(f"backward: '{name}' is not an output of this net "
                                  f"(outputs: {', '.join(self.outputs) or 'none'})")
            blob = self.blobs[name]
            value = np.asarray(value, np.float32)
            if value.shape != blob.shape:
                if value.size != blob.count:
                    raise SeqgenError(f"backward: the diff for '{name}' has shape {value.shape}, "
                                      f"but the blob has shape {blob.shape}")
                value = value.reshape(blob.shape)
            blob.diff[...] = value

    def forward_backward(self):
        """One forward and backward pass; returns the weighted loss (float)."""
        loss = self._forward()
        self._backward()
        return float(loss)

    def pack_params(self):
        """Move every learnable parameter into one contiguous data and one diff buffer
        (blob arrays become views), so the solver updates all of them in a few array
        operations. Call before other nets share these weights."""
        if getattr(self, "flat_data", None) is not None:
            return
        total = sum(p.blob.count for p in self.learnable_params)
        self.flat_data = np.empty(total, np.float32)
        self.flat_diff = np.zeros(total, np.float32)
        offset = 0
        for p in self.learnable_params:
            blob, n = p.blob, p.blob.count
            self.flat_data[offset:offset + n] = blob.data.ravel()
            blob.set_arrays(self.flat_data[offset:offset + n].reshape(blob.shape),
                            self.flat_diff[offset:offset + n].reshape(blob.shape))
            offset += n
        for blob, owner in self._reshaped_shares:
            self._point_at(blob, owner)

    @staticmethod
    def _point_at(blob, owner):
        blob.set_arrays(owner.data.reshape(blob.shape), owner.diff.reshape(blob.shape))

    def clear_param_diffs(self):
        if getattr(self, "flat_diff", None) is not None:
            self.flat_diff.fill(0)
            return
        for p in self.learnable_params:
            p.blob.diff[...] = 0

    # -- recurrent state -------------------------------------------------------------------
    def reset_state(self):
        """Forget the state every recurrent layer carries between forward calls."""
        for layer in self.layers:
            layer.reset_state()

    def get_state(self):
        """{layer name: state} for every layer that carries state (copies)."""
        return {name: s for name, layer in self._carriers if (s := layer.get_state()) is not None}

    def set_state(self, states):
        """Restore states from get_state(); layers not named keep theirs."""
        if not isinstance(states, Mapping):
            raise SeqgenError(f"set_state: expected {{layer name: state}} as get_state() "
                              f"returns, not {type(states).__name__}")
        carrying = {name for name, layer in zip(self.layer_names, self.layers)
                    if layer.get_state() is not None}
        unknown = [name for name in states if name not in carrying]
        if unknown:
            raise SeqgenError(f"set_state: no layer with recurrent state named "
                              f"{', '.join(repr(n) for n in unknown)} (layers with state: "
                              f"{', '.join(sorted(carrying)) or 'none'})")
        for name, layer in zip(self.layer_names, self.layers):
            if name in states:
                layer.set_state(states[name])

    def layer(self, name):
        return self.layers[self._layer_index(name)]

    def share_weights(self, other):
        """Use the parameter arrays of `other` (a net built from the same layers), as Caffe's
        ShareTrainedLayersWith does for the test net."""
        for name, blobs in self.params.items():
            if name in other.params:
                for mine, theirs in zip(blobs, other.params[name]):
                    mine.share_data(theirs)

    share_with = share_weights  # pycaffe's name

    # -- weights files ---------------------------------------------------------------------
    def copy_from(self, path):
        """Load a .caffemodel: layers matched by name, every blob shape checked."""
        load_weights(self, os.fspath(path))

    def save(self, path):
        """Write the parameters as a .caffemodel (binary NetParameter, as Caffe's)."""
        save_weights(self, os.fspath(path))

    def save_hdf5(self, path, write_diff=False):
        """Write the parameters as HDF5, as Caffe's Net::ToHDF5 (needs h5py)."""
        hdf5_weights.save_hdf5(self, os.fspath(path), write_diff)

    def load_hdf5(self, path):
        """Load parameters saved by save_hdf5 (Caffe's CopyTrainedLayersFromHDF5)."""
        hdf5_weights.load_hdf5(self, os.fspath(path))
