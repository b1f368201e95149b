"""pycaffe's `caffe.io` conversions between numpy arrays and Caffe's BlobProto, BlobProtoVector
and Datum messages. The image helpers (Transformer, load_image, resize_image, oversample)
are not provided: seqgen runs sequence nets and has no image stack."""
import numpy as np

from ..errors import SeqgenError
from ..proto import caffe_pb2

_IMAGES = ("Transformer", "load_image", "resize_image", "oversample")


def blobproto_to_array(blob, return_diff=False):
    """The blob's data (or diff) as a float64 array of its shape: the legacy num, channels,
    height, width when any of them is set, else `shape.dim`."""
    data = np.array(blob.diff if return_diff else blob.data)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(tuple(blob.shape.dim))


def array_to_blobproto(arr, diff=None):
    """A BlobProto of the array's shape and values (and `diff`, which must have its shape)."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(np.asarray(diff).astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """A serialized BlobProtoVector of the arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


#: the name older pycaffe releases spelled it with
arraylist_to_blobprotovecor_str = arraylist_to_blobprotovector_str


def blobprotovector_str_to_arraylist(serialized):
    """The arrays of a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(serialized)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum of a 3-D array (channels, height, width): uint8 arrays as bytes in `data`,
    anything else as `float_data`."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    """The Datum's values as a (channels, height, width) array: uint8 from `data`, else
    float64 from `float_data` (the label is `datum.label`)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape)
    return np.array(datum.float_data).astype(float).reshape(shape)


def __getattr__(name):
    if name in _IMAGES:
        raise SeqgenError(f"caffe.io.{name} is for images, which seqgen does not handle "
                          "(it runs sequence nets); prepare the arrays with numpy instead")
    raise AttributeError(f"module 'caffe.io' has no attribute '{name}'")
