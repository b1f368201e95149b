"""pycaffe's NetSpec: write a net in Python (`L.LSTM(...)`, `P.Eltwise.PROD`) and get its
NetParameter, with the layer and blob names pycaffe's `net_spec.py` gives.

Naming, as pycaffe does it: a top assigned to a NetSpec attribute takes that name, and its
layer takes the name of its first top; any other top is named after its layer type and a
count (`InnerProduct1`, `InnerProduct2`, ...), counted in the order `to_proto` meets them;
an `in_place=True` layer writes its bottom and takes its own name as any other layer does,
from its first top (the attribute's name, or `Type<k>`). Keyword arguments go into the
layer type's own `*_param` when that message has the field, else into LayerParameter
itself (`name`, `include`, `loss_weight`, `propagate_down`, ...); a keyword ending in
`param` goes to LayerParameter as is (`param=[dict(lr_mult=1)]`, `recurrent_param=dict(...)`).
"""
from collections import Counter, OrderedDict

from ..errors import SeqgenError
from ..proto import caffe_pb2


def param_name_dict():
    """Layer type -> the stem of its `*_param` field, from the message type names
    (InnerProductParameter -> inner_product_param), as pycaffe works it out."""
    layer = caffe_pb2.LayerParameter.DESCRIPTOR
    found = {}
    for field in layer.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            found[field.message_type.name[:-len("Parameter")]] = field.name[:-len("_param")]
    # BVLC's LSTM and RNN read recurrent_param (there is no LSTMParameter in BVLC's proto,
    # so pycaffe could not set their fields); the caffe-lstm fork's Lstm reads lstm_param.
    found.update(LSTM="recurrent", RNN="recurrent", Lstm="lstm")
    return found


_PARAM_NAMES = param_name_dict()


def _is_repeated(message, name):
    return hasattr(getattr(message, name), "extend")  # (pycaffe's test; any protobuf)


def _scalar(message, name, value):
    """An enum field also takes its value's name (`operation="PROD"`), as prototxt does."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.enum_type is not None and isinstance(value, str):
        if value not in field.enum_type.values_by_name:
            known = ", ".join(field.enum_type.values_by_name)
            raise SeqgenError(f"{name}: no value '{value}' (known: {known})")
        return field.enum_type.values_by_name[value].number
    return value


def assign_proto(proto, name, val):
    """Set field `name` of message `proto` from a Python value, as pycaffe does: a list
    fills a repeated field (a list of dicts adds one message each), a dict fills a
    message, a single value given to a repeated field becomes a one-element list."""
    if name not in proto.DESCRIPTOR.fields_by_name:
        raise SeqgenError(f"{proto.DESCRIPTOR.name} has no field '{name}'")
    if _is_repeated(proto, name) and not isinstance(val, (list, tuple)):
        val = [val]
    try:
        if isinstance(val, (list, tuple)):
            field = getattr(proto, name)
            for item in val:
                if isinstance(item, dict):
                    added = field.add()
                    for k, v in item.items():
                        assign_proto(added, k, v)
                else:
                    field.append(_scalar(proto, name, item))
        elif isinstance(val, dict):
            for k, v in val.items():
                assign_proto(getattr(proto, name), k, v)
        else:
            setattr(proto, name, _scalar(proto, name, val))
    except (TypeError, ValueError, AttributeError) as e:
        raise SeqgenError(f"{proto.DESCRIPTOR.name}.{name} = {val!r}: {e}") from None


def to_proto(*tops):
    """A NetParameter with every layer needed to compute `tops` (names made up)."""
    layers = OrderedDict()
    autonames = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class Top:
    """One output blob of a layer (`fn`), the `n`-th of its tops."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)

    def __repr__(self):
        return f"<Top {self.n} of {self.fn.type_name}>"


class Function:
    """A layer: its type, its bottoms (Tops) and its keyword parameters. `ntop` (default
    1) and `in_place` are taken out of the parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, top in enumerate(inputs):
            if not isinstance(top, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is "
                                f"{type(top).__name__})")
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names, autonames):
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _assign(self, layer, key, value):
        """A keyword into the type's own *_param when it has that field, else into the
        LayerParameter (pycaffe tries the first and falls back on the second)."""
        where = f"{self.type_name} '{layer.name}'"
        stem = _PARAM_NAMES.get(self.type_name)
        try:
            if not key.endswith("param") and stem is not None and \
                    key in getattr(layer, stem + "_param").DESCRIPTOR.fields_by_name:
                assign_proto(getattr(layer, stem + "_param"), key, value)
            elif key in layer.DESCRIPTOR.fields_by_name:
                assign_proto(layer, key, value)
            else:
                own = f"{stem}_param or " if stem else ""
                raise SeqgenError(f"no field '{key}' in {own}LayerParameter")
        except SeqgenError as e:
            raise SeqgenError(f"NetSpec layer {where}: {e}") from None

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottoms = []
        for top in self.inputs:
            top._to_proto(layers, names, autonames)
            bottoms.append(layers[top.fn].top[top.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name)
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._get_top_name(top, names, autonames) for top in self.tops)
        layer.name = self._get_name(names, autonames)
        for key, value in self.params.items():
            self._assign(layer, key, value)
        layers[self] = layer


class NetSpec:
    """Tops assigned as attributes (`n.lstm1 = L.LSTM(...)`) or items take those names;
    `to_proto()` gives the NetParameter of every layer they need, in assignment order."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"NetSpec has no top '{name}'") from None

    def __setitem__(self, key, value):
        self.tops[key] = value

    def __getitem__(self, key):
        return self.tops[key]

    def __delitem__(self, key):
        del self.tops[key]

    def keys(self):
        return list(self.tops)

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        names = {v: k for k, v in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """`L.Type(*bottoms, **params)`: a Top (one top), a tuple of Tops (`ntop` > 1), or the
    layer itself (`ntop=0`)."""

    def __getattr__(self, type_name):
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def layer_fn(*args, **kwargs):
            fn = Function(type_name, args, kwargs)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops

        return layer_fn


class Parameters:
    """`P.Eltwise.PROD`: the enum values of caffe_pb2's `<Name>Parameter` messages."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        message = getattr(caffe_pb2, name + "Parameter", None)
        if message is None:
            raise AttributeError(f"caffe_pb2 has no message {name}Parameter")
        return _EnumValues(message)


class _EnumValues:
    def __init__(self, message):
        self._message = message

    def __getattr__(self, value):
        return getattr(self._message, value)


layers = Layers()
params = Parameters()
