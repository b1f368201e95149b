"""The grid of a sweep: KEYs (a solver field, or LAYER.FIELD of the net), their typed
values, the combinations and the names that say a run's settings.

A KEY is a scalar field of the SolverParameter (`base_lr`, `momentum`, `max_iter`, ...), or
`LAYER.FIELD` for a layer named LAYER: FIELD is looked up in whichever of the layer's
parameter messages it has set (`lstm_param`, `recurrent_param`, `inner_product_param`, ...),
and may go deeper (`lstm1.weight_filler.std`) or name the message (`ip1.inner_product_param.
num_output`). A KEY may also be one of `seqgen train`'s options that shape a run
(TRAIN_OPTION_KEYS: the feedback schedule's feedback_share, feedback_ramp, feedback_refresh;
sequences in input mode previous only). Values are checked against the field's type (and
the option's range) before anything runs.
"""
import itertools
import re
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor

from ..data import plan_options
from ..errors import SeqgenError

#: solver fields a sweep owns itself (the seed is --seeds; the files are the run folder's)
OWN_SOLVER_FIELDS = {"random_seed": "give --seeds instead",
                     "net": "the run folder holds the net", "train_net": "the run folder "
                     "holds the net", "snapshot_prefix": "snapshots belong to the run folder"}


#: train options a KEY may name (TrainOptions field -> its Option, as the data plans declare
#: them); a run passes them to train
TRAIN_OPTION_KEYS = {o.field: o for o in plan_options() if o.sweep}


@dataclass(frozen=True)
class Key:
    """A KEY resolved against a solver and its net: where the field is, and its type; or
    a train option (`option`, with field None)."""
    text: str
    layer: str  # None for a solver field
    path: tuple  # field names from the solver, or from the layer, to the scalar field
    field: FieldDescriptor
    option: str = None  # a TRAIN_OPTION_KEYS name

    def convert(self, raw):
        """`raw` (CLI text or JSON) as this KEY's value; ValueError saying what it must be."""
        if self.option is None:
            return CONVERTERS[self.field.cpp_type](self.field, raw)
        option = TRAIN_OPTION_KEYS[self.option]
        value = _number(raw, option.type)
        want = option.problem(value) if option.problem else None
        if want:
            raise ValueError(want)
        return value

    def target(self, solver, net):
        """The message holding the field in (copies of) `solver` / `net`."""
        msg = solver if self.layer is None else next(
            layer for layer in net.layer if layer.name == self.layer)
        for name in self.path[:-1]:
            msg = getattr(msg, name)
        return msg

    def apply(self, solver, net, value):
        if self.option is not None:  # (not in the files: the run gets it as a train option)
            return
        try:
            setattr(self.target(solver, net), self.path[-1], value)
        except (ValueError, TypeError) as e:  # protobuf's range checks
            raise SeqgenError(f"{self.text}: {value} is out of range ({e})") from None


def _scalar(text, msg, names):
    """The field path `names` below `msg`, ending in a scalar field; SeqgenError if not."""
    for i, name in enumerate(names):
        field = msg.DESCRIPTOR.fields_by_name.get(name)
        if field is None:
            raise SeqgenError(f"{text}: {msg.DESCRIPTOR.name} has no field '{name}'")
        if isinstance(field.default_value, list):  # repeated (every protobuf version)
            raise SeqgenError(f"{text}: '{name}' is a repeated field; a sweep sets single "
                              "values only")
        if i < len(names) - 1:
            if field.type != FieldDescriptor.TYPE_MESSAGE:
                raise SeqgenError(f"{text}: '{name}' is not a message, it has no fields")
            msg = getattr(msg, name)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            raise SeqgenError(f"{text}: '{name}' is a message; name one of its fields "
                              f"({', '.join(sorted(field.message_type.fields_by_name))})")
    return field


def _layer_path(text, layer, names):
    """`names` as a path from the layer: direct, or inside the one *_param it has set."""
    if names[0] in layer.DESCRIPTOR.fields_by_name:
        return tuple(names)
    have = [f.name for f, _ in layer.ListFields()
            if f.name.endswith("_param") and f.type == FieldDescriptor.TYPE_MESSAGE
            and names[0] in f.message_type.fields_by_name]
    if not have:
        params = [f.name for f, _ in layer.ListFields() if f.name.endswith("_param")]
        raise SeqgenError(f"{text}: layer '{layer.name}' ({layer.type}) has no field "
                          f"'{names[0]}' in {' or '.join(params) or 'its parameters'}")
    if len(have) > 1:
        raise SeqgenError(f"{text}: '{names[0]}' is in {' and '.join(have)} of layer "
                          f"'{layer.name}'; name one, e.g. {layer.name}.{have[0]}.{names[0]}")
    return (have[0],) + tuple(names)


def resolve_key(text, solver, net):
    """The Key for KEY `text` in this solver and net; SeqgenError saying what is accepted."""
    names = text.split(".")
    if not all(names):
        raise SeqgenError(f"'{text}': a KEY is a solver field (base_lr) or LAYER.FIELD "
                          "(lstm1.num_output)")
    if len(names) == 1:
        if text in TRAIN_OPTION_KEYS:
            return Key(text, None, (), None, option=text)
        if text in OWN_SOLVER_FIELDS:
            raise SeqgenError(f"{text}: not a sweep KEY ({OWN_SOLVER_FIELDS[text]})")
        if text not in solver.DESCRIPTOR.fields_by_name:
            raise SeqgenError(f"{text}: the solver has no field '{text}' (a KEY is a solver "
                              "field such as base_lr, LAYER.FIELD such as lstm1.num_output, "
                              f"or one of {', '.join(TRAIN_OPTION_KEYS)})")
        return Key(text, None, (text,), _scalar(text, solver, names))
    layers = [layer for layer in net.layer if layer.name == names[0]]
    if not layers:
        raise SeqgenError(f"{text}: the net has no layer '{names[0]}' (its layers: "
                          f"{', '.join(layer.name for layer in net.layer)})")
    path = _layer_path(text, layers[0], names[1:])
    return Key(text, names[0], path, _scalar(text, layers[0], list(path)))


_INTS = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64,
         FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_UINT64}


def _number(raw, kind):
    """`raw` as a float or an int; ValueError saying which was wanted."""
    want = "a whole number" if kind is int else "a number"
    try:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            raise ValueError
        value = kind(raw.strip()) if isinstance(raw, str) else kind(raw)
        if kind is int and not isinstance(raw, str) and float(raw) != value:
            raise ValueError
    except ValueError:
        raise ValueError(want) from None
    return value


def _enum(field, raw):
    names = [v.name for v in field.enum_type.values]
    if raw not in names:
        raise ValueError(f"one of {', '.join(names)}")
    return raw


def _bool(field, raw):
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in ("true", "false"):
        return str(raw).lower() == "true"
    raise ValueError("true or false")


def _string(field, raw):
    if not isinstance(raw, str):
        raise ValueError("a string")
    return raw


#: protobuf's cpp type -> how a value (CLI text or JSON) becomes a field value
CONVERTERS = {FieldDescriptor.CPPTYPE_FLOAT: lambda f, r: _number(r, float),
              FieldDescriptor.CPPTYPE_DOUBLE: lambda f, r: _number(r, float),
              FieldDescriptor.CPPTYPE_BOOL: _bool,
              FieldDescriptor.CPPTYPE_ENUM: _enum,
              FieldDescriptor.CPPTYPE_STRING: _string,
              **{t: (lambda f, r: _number(r, int)) for t in _INTS}}


def typed_values(key, raws):
    """The values of `key`'s grid, each checked against the field's type (and range)."""
    if not raws:
        raise SeqgenError(f"{key.text}: the grid is empty; give one value or more")
    values = []
    for raw in raws:
        try:
            value = key.convert(raw)
        except ValueError as e:
            raise SeqgenError(f"{key.text}: '{raw}' is not a valid value ({key.text} is "
                              f"{e})") from None
        if value in values:
            raise SeqgenError(f"{key.text}: {raw} is given twice")
        values.append(value)
    return values


def split_set(text):
    """`KEY=V1,V2,...` (a --set) as (KEY, [texts])."""
    key, eq, rest = text.partition("=")
    if not eq or not key.strip():
        raise SeqgenError(f"--set {text}: expected KEY=V1,V2,... (e.g. base_lr=1e-4,3e-4)")
    values = [v.strip() for v in rest.split(",") if v.strip()]
    return key.strip(), values


def combinations(grid):
    """Every combination of a {Key: values} grid, as [(Key, value), ...] in the keys' order."""
    keys = list(grid)
    return [list(zip(keys, values)) for values in itertools.product(*grid.values())]


def value_text(value):
    """A value as a run folder's name shows it: short, exact, safe in a file name."""
    text = repr(value) if isinstance(value, float) else str(value).lower() \
        if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def run_name(config, mode, settings, seed):
    """`config[-mode][-key=value...]-seedN`: a run folder's name says its settings."""
    parts = [config] + ([mode] if mode else [])
    parts += [f"{key.text}={value_text(value)}" for key, value in settings]
    return "-".join(parts + [f"seed{seed}"])
