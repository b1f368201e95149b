"""`.caffemodel` files: binary NetParameter messages, read and written as real Caffe does.

Loading matches layers by name (layers missing from the file keep their values, layers
not in the net are ignored), checks the blob count and every shape, accepts the legacy
num/channels/height/width form (1-padded at the front) and prefers `double_data`.
Writing gives each layer its full LayerParameter plus `blobs` with `shape` and packed data
(Caffe's Net::ToProto).
"""
import numpy as np
from google.protobuf.message import DecodeError

from ..errors import SeqgenError
from ..proto import caffe_pb2
from .atomic import atomic_write_bytes


def blob_to_proto(array, proto=None):
    proto = proto if proto is not None else caffe_pb2.BlobProto()
    proto.shape.dim.extend(int(d) for d in array.shape)
    proto.data.extend(np.asarray(array, np.float32).ravel().tolist())
    return proto


def blob_shape(proto):
    """The shape a BlobProto declares: legacy 4-D when any legacy field is set, else `shape`."""
    if proto.HasField("num") or proto.HasField("channels") or proto.HasField("height") \
            or proto.HasField("width"):
        return (proto.num, proto.channels, proto.height, proto.width)
    return tuple(proto.shape.dim)


def blob_from_proto(proto):
    """The values of a BlobProto as a flat float32 array (double_data takes precedence)."""
    if len(proto.double_data):
        with np.errstate(over="ignore"):  # beyond float32: inf (load_weights refuses it)
            return np.asarray(proto.double_data, np.float64).astype(np.float32)
    return np.asarray(proto.data, np.float32)


def _shape_fits(declared, target, legacy):
    if legacy:
        padded = (1,) * (4 - len(target)) + tuple(target) if len(target) <= 4 else None
        return padded == tuple(declared)
    return tuple(declared) == tuple(target)


def read_message(path, message, what):
    """Parse a binary protobuf file into `message`; `what` names the kind in errors."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SeqgenError(f"{path}: cannot read {what} ({e.strerror})") from None
    if not raw:
        raise SeqgenError(f"{path}: the {what} is empty")
    try:
        message.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError) as e:
        other = _other_caffe_kind(raw, message)
        if other:
            raise SeqgenError(f"{path}: not a {what} but {other}") from None
        raise SeqgenError(f"{path}: not a valid {what}: the file is truncated or of another "
                          f"kind{_kind_hint(raw)} ({e})") from None
    return message


def _parses_as(raw, message):
    try:
        message.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError):
        return None
    return message


def _other_caffe_kind(raw, expected):
    """'a .solverstate ...' / 'a .caffemodel ...' when a file that failed to parse as
    `expected` is the other kind of Caffe file, else None."""
    if not isinstance(expected, caffe_pb2.SolverState):
        state = _parses_as(raw, caffe_pb2.SolverState())
        if state is not None and state.HasField("iter") and len(state.history):
            model = f"; its weights are in {state.learned_net}" if state.learned_net else ""
            return f"a .solverstate (a training state: give it to --resume{model})"
    if not isinstance(expected, caffe_pb2.NetParameter):
        net = _parses_as(raw, caffe_pb2.NetParameter())
        if net is not None and (len(net.layer) or len(net.layers)):
            return "a .caffemodel (weights: give it to --weights)"
    return None


def _kind_hint(raw):
    """What a file that failed to parse as binary protobuf seems to be instead."""
    if raw.startswith(b"\x89HDF"):
        return "; it is an HDF5 file (seqgen reads binary .caffemodel weights, not HDF5 ones)"
    if raw.startswith(b"PK"):
        return "; it is a zip archive (an .npz?)"
    try:
        text = raw[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if all(c.isprintable() or c in "\n\r\t" for c in text):
        return "; it is a text file (a .prototxt? weights are the binary .caffemodel)"
    return ""


def read_net_binary(path):
    """Parse a binary NetParameter file with errors a user can act on."""
    param = read_message(path, caffe_pb2.NetParameter(), ".caffemodel (binary NetParameter)")
    if not len(param.layer) and not len(param.layers):
        raise SeqgenError(f"{path}: not a .caffemodel: it holds no layers (is it a "
                          ".solverstate or another file?)")
    return param


def _file_layers(param):
    """(name, [BlobProto]) for every layer in the file, new-style and V1 alike."""
    for lp in param.layer:
        yield lp.name, list(lp.blobs)
    for lp in param.layers:
        yield lp.name, list(lp.blobs)


def _blob_name(net, layer_name, index):
    """' (W_xc)': the parameter blob's name, for layers that name them."""
    names = net.layer(layer_name).param_names
    return f" ({names[index]})" if index < len(names) else ""


def load_weights(net, path):
    """Copy parameter blobs from a .caffemodel into `net`, matching layers by name."""
    param = read_net_binary(path)
    matched = 0
    copies = []  # every blob is checked before any is written: no half-loaded net
    for name, protos in _file_layers(param):
        if name not in net.params:
            continue
        targets = net.params[name]
        if len(protos) != len(targets):
            raise SeqgenError(f"{path}: layer '{name}' has {len(protos)} parameter blobs in the "
                              f"file but {len(targets)} in the net")
        for i, (proto, blob) in enumerate(zip(protos, targets)):
            legacy = blob_shape(proto) != tuple(proto.shape.dim)
            declared = blob_shape(proto)
            if not _shape_fits(declared, blob.shape, legacy):
                raise SeqgenError(f"{path}: layer '{name}' blob {i}{_blob_name(net, name, i)}: "
                                  f"the file has shape {tuple(declared)}, the net needs "
                                  f"{blob.shape}")
            values = blob_from_proto(proto)
            if values.size != blob.count:
                raise SeqgenError(f"{path}: layer '{name}' blob {i}{_blob_name(net, name, i)}: "
                                  f"the file holds {values.size} values for shape "
                                  f"{tuple(declared)}")
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise SeqgenError(f"{path}: layer '{name}' blob {i}{_blob_name(net, name, i)}: "
                                  f"holds {bad.size} non-finite value(s) ({values[bad[0]]} at "
                                  f"index {int(bad[0])}); the weights were saved from a "
                                  "diverged run")
            copies.append((blob, values))
        matched += 1
    if net.params and not matched:
        raise SeqgenError(f"{path}: no layer name in the file matches a layer of the net "
                          f"(net layers with weights: {', '.join(net.params)})")
    for blob, values in copies:
        blob.data[...] = values.reshape(blob.shape)
    return matched


def net_to_proto(net):
    param = caffe_pb2.NetParameter(name=net.name)
    for layer in net.layers:
        if layer.type == "Split" and layer.name not in {lp.name for lp in net.param.layer}:
            continue  # inserted by the Net, not part of the user's net
        lp = param.layer.add()
        lp.CopyFrom(layer.param)
        del lp.blobs[:]
        lp.phase = net.phase
        if layer.is_loss and not len(lp.loss_weight):
            lp.loss_weight.append(1.0)
        for blob in layer.blobs:
            blob_to_proto(blob.data, lp.blobs.add())
    return param


def save_weights(net, path):
    atomic_write_bytes(path, net_to_proto(net).SerializeToString())
