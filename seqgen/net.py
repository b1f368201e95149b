"""Net: layers from the registry wired by blob name, run forward and backward (Caffe's Net).

The Net knows nothing of any particular layer type: it resolves `type` through the
registry, inserts Split layers where one blob feeds several layers, works out which
layers need a backward pass, and keeps the learnable parameters (with their lr_mult /
decay_mult, shared by `param { name }`) for the solver.
"""
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .blob import Blob
from .errors import SeqgenError
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


def _insert_splits(layers):
    """Give every consumer of a multiply-used blob its own copy via a Split layer."""
    consumers = {}
    producer = {}
    for li, lp in enumerate(layers):
        for bi, b in enumerate(lp.bottom):
            consumers.setdefault((producer.get(b), b), []).append((li, bi))
        for t in lp.top:
            producer[t] = li
    out = []
    renames = {}  # (layer index, bottom index) -> new bottom name
    for key, users in consumers.items():
        if len(users) > 1:
            for k, (li, bi) in enumerate(users):
                renames[(li, bi)] = f"{key[1]}_{layers[li].name}_{bi}_split_{k}"
    split_after = {}
    for key, users in consumers.items():
        if len(users) > 1:
            split = caffe_pb2.LayerParameter(name=f"{key[1]}_split", type="Split")
            split.bottom.append(key[1])
            split.top.extend(renames[u] for u in users)
            split_after.setdefault(key[0], []).append(split)
    out.extend(split_after.get(None, []))
    for li, lp in enumerate(layers):
        lp = caffe_pb2.LayerParameter.FromString(lp.SerializeToString()) if any(
            (li, bi) in renames for bi in range(len(lp.bottom))) else lp
        for bi in range(len(lp.bottom)):
            if (li, bi) in renames:
                lp.bottom[bi] = renames[(li, bi)]
        out.append(lp)
        out.extend(split_after.get(li, []))
    return out


class Net:
    """A network built for one phase. `options` is handed to every layer (e.g. fork_compat)."""

    def __init__(self, net, weights=None, phase=TEST, options=None, level=0, stages=()):
        from .prototxt import filter_net, read_net

        if isinstance(weights, int) and not isinstance(weights, bool):
            weights, phase = None, weights  # pycaffe's Net(prototxt, phase) form
        if isinstance(net, caffe_pb2.NetParameter):
            self.source = "<NetParameter>"
            param = net
        else:
            self.source = str(net)
            param = read_net(net)
        self.phase = phase
        self.options = dict(options or {})
        self.param = filter_net(param, phase, level, stages)
        self.name = self.param.name
        self._build()
        if weights is not None:
            self.copy_from(weights)

    # -- construction ----------------------------------------------------------------------
    def _build(self):
        self.blobs = OrderedDict()
        self.layers = []
        self.layer_names = []
        self._bottoms, self._tops = [], []
        self.inputs = []
        self.params = OrderedDict()
        self.learnable_params = []
        self._loss_weights = []  # per layer: list of (top blob, weight)
        owners = {}  # shared param name -> (blob, layer name)
        produced_by = {}
        seen_names = set()
        for lp in _insert_splits(list(self.param.layer)):
            if lp.name in seen_names:
                raise SeqgenError(f"{self.source}: two layers are named '{lp.name}'")
            seen_names.add(lp.name)
            try:
                cls = layer_class(lp.type, lp.name)
            except SeqgenError as e:
                raise SeqgenError(f"{self.source}: {e}") from None
            if cls.is_loss and not lp.top:
                lp = caffe_pb2.LayerParameter.FromString(lp.SerializeToString())
                lp.top.append(lp.name)  # Caffe's AutoTopBlobs for loss layers
            layer = cls(lp, self.phase, self.options)
            bottoms = []
            for b in lp.bottom:
                if b not in self.blobs:
                    raise SeqgenError(f"{self.source}: layer '{lp.name}' ({lp.type}) needs bottom "
                                      f"'{b}', which no earlier layer produces")
                bottoms.append(self.blobs[b])
            tops = []
            for t in lp.top:
                if t in self.blobs and t not in lp.bottom:
                    raise SeqgenError(f"{self.source}: layer '{lp.name}' ({lp.type}) produces "
                                      f"top '{t}', which layer '{produced_by[t]}' already "
                                      "produces (only in-place tops may reuse a name)")
                self.blobs.setdefault(t, Blob())
                produced_by[t] = lp.name
                tops.append(self.blobs[t])
            if lp.type == "Input":
                self.inputs.extend(lp.top)
            try:
                layer.setup(bottoms, tops)
                layer.reshape(bottoms, tops)
            except SeqgenError as e:
                raise SeqgenError(f"{self.source}: {e}") from None
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
        consumed = {b for lp in self.layers for b in lp.param.bottom}
        self.outputs = [n for n in self.blobs if n not in consumed]
        self._plan_backward()
        self.params = OrderedDict((k, v) for k, v in self.params.items() if v)
        self._forward_plan = [(layer, b, t) for layer, b, t in
                              zip(self.layers, self._bottoms, self._tops) if layer.runs_forward]
        self._loss_tops = [pair for pairs in self._loss_weights for pair in pairs]
        self._input_shapes = None

    def _share_params(self, layer, lp, owners):
        specs = list(lp.param)
        if len(specs) > len(layer.blobs):
            raise SeqgenError(f"{self.source}: layer '{lp.name}' has {len(specs)} param specs "
                              f"but only {len(layer.blobs)} parameter blobs")
        for i, blob in enumerate(layer.blobs):
            spec = specs[i] if i < len(specs) else caffe_pb2.ParamSpec()
            if spec.name and spec.name in owners:
                owner, owner_layer = owners[spec.name]
                if owner.shape != blob.shape:
                    raise SeqgenError(
                        f"{self.source}: layer '{lp.name}' shares parameter '{spec.name}' with "
                        f"layer '{owner_layer}', but the shapes differ: {blob.shape} vs {owner.shape}")
                layer.blobs[i] = owner
                continue
            if spec.name:
                owners[spec.name] = (blob, lp.name)
            self.learnable_params.append(
                LearnableParam(blob, spec.lr_mult, spec.decay_mult, f"{lp.name}/{i}"))

    def _plan_backward(self):
        """Which layers run backward and to which bottoms (Caffe's Net::Init bookkeeping)."""
        force = self.param.force_backward
        lr_of = {id(p.blob): p.lr_mult for p in self.learnable_params}
        need = {}  # blob name -> needs gradient
        self._need_backward = []
        self._propagate = []
        for layer, lp in zip(self.layers, (layer.param for layer in self.layers)):
            explicit = list(lp.propagate_down)
            prop = []
            for i, b in enumerate(lp.bottom):
                allowed = i not in layer.no_grad_bottoms
                want = need.get(b, False) or (force and allowed)
                if explicit and i < len(explicit):
                    want = want and explicit[i]
                prop.append(bool(want and allowed))
            has_params = any(lr_of.get(id(b), 0) != 0 for b in layer.blobs)
            nb = any(prop) or has_params or (force and bool(lp.bottom))
            for t in lp.top:
                need[t] = nb
            self._need_backward.append(nb)
            self._propagate.append(prop)
        # prune layers whose tops never reach a loss (Caffe's layer_contributes_loss)
        reaches_loss = set()
        for idx in range(len(self.layers) - 1, -1, -1):
            lp = self.layers[idx].param
            contributes = bool(self._loss_weights[idx]) or any(t in reaches_loss for t in lp.top)
            if contributes:
                reaches_loss.update(lp.bottom)
            elif not force:
                self._need_backward[idx] = False
                self._propagate[idx] = [False] * len(lp.bottom)
        self._backward_plan = [i for i in range(len(self.layers) - 1, -1, -1)
                               if self._need_backward[i]]

    # -- running ---------------------------------------------------------------------------
    def _set_inputs(self, inputs):
        for name, value in inputs.items():
            if name not in self.inputs:
                raise SeqgenError(f"'{name}' is not an input of this net "
                                  f"(inputs: {', '.join(self.inputs) or 'none'})")
            value = np.asarray(value, np.float32)
            blob = self.blobs[name]
            if value.shape != blob.shape:
                if value.size == blob.count and value.ndim < blob.data.ndim:
                    value = value.reshape(blob.shape)
                else:
                    blob.reshape(value.shape)
            blob.data[...] = value

    def reshape(self):
        """Propagate input shapes through every layer (after writing new input shapes)."""
        for layer, bottom, top in zip(self.layers, self._bottoms, self._tops):
            layer.reshape(bottom, top)
        self._input_shapes = tuple(self.blobs[name].data.shape for name in self.inputs)

    def forward(self, **inputs):
        """Run the net; keyword arguments are written into input blobs (resized if needed).
        Returns {output blob name: data array}, as pycaffe does."""
        self._set_inputs(inputs)
        self._forward()
        return {name: self.blobs[name].data for name in self.outputs}

    def _forward(self):
        # Reshape is idempotent for unchanged inputs, so skip it when no input changed shape
        # (Caffe calls it every time; here it was a third of the Python cost of a step).
        key = tuple(self.blobs[name].data.shape for name in self.inputs)
        if key != self._input_shapes:
            self.reshape()
            self._input_shapes = key
        for layer, bottom, top in self._forward_plan:
            layer.forward(bottom, top)
        loss = np.float32(0)
        for blob, w in self._loss_tops:
            loss += w * blob.data.sum(dtype=np.float32)
        return loss

    def backward(self):
        for blob, w in self._loss_tops:
            blob.diff[...] = w
        for idx in self._backward_plan:
            self.layers[idx].backward(self._tops[idx], self._propagate[idx], self._bottoms[idx])

    def forward_backward(self):
        """One forward and backward pass; returns the weighted loss (float)."""
        loss = self._forward()
        self.backward()
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
            blob.data = self.flat_data[offset:offset + n].reshape(blob.shape)
            blob.diff = self.flat_diff[offset:offset + n].reshape(blob.shape)
            offset += n

    def clear_param_diffs(self):
        if getattr(self, "flat_diff", None) is not None:
            self.flat_diff.fill(0)
            return
        for p in self.learnable_params:
            p.blob.diff[...] = 0

    # -- recurrent state -------------------------------------------------------------------
    def reset_state(self):
        for layer in self.layers:
            layer.reset_state()

    def get_state(self):
        return {name: s for name, layer in zip(self.layer_names, self.layers)
                if (s := layer.get_state()) is not None}

    def set_state(self, states):
        for name, layer in zip(self.layer_names, self.layers):
            if name in states:
                layer.set_state(states[name])

    def layer(self, name):
        try:
            return self.layers[self.layer_names.index(name)]
        except ValueError:
            raise SeqgenError(f"no layer named '{name}' in this net") from None

    def share_weights(self, other):
        """Use the parameter arrays of `other` (a net built from the same layers), as Caffe's
        ShareTrainedLayersWith does for the test net."""
        for name, blobs in self.params.items():
            if name in other.params:
                for mine, theirs in zip(blobs, other.params[name]):
                    mine.share_data(theirs)

    # -- weights files ---------------------------------------------------------------------
    def copy_from(self, path):
        from .weights import load_weights
        load_weights(self, path)

    def save(self, path):
        from .weights import save_weights
        save_weights(self, path)
