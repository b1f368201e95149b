"""Layer registry: Caffe's `type` string -> layer class (Caffe's LayerRegistry)."""
from .errors import SeqgenError

LAYERS = {}

#: BVLC Caffe's layer types that only make sense on images, with what each does: a net
#: using one is refused by name rather than as an unknown type (they are no typo, and no
#: later version of seqgen will run them).
IMAGE_LAYERS = {
    "Convolution": "2-D convolution",
    "Crop": "crops a blob to another's spatial size",
    "Data": "reads images from LMDB/LevelDB",
    "Deconvolution": "transposed 2-D convolution",
    "Im2col": "unfolds image patches into columns",
    "ImageData": "reads image files",
    "LRN": "local response normalization across channels or a window",
    "MVN": "normalizes each image channel over its pixels",
    "MemoryData": "serves images from memory",
    "Pooling": "2-D pooling",
    "SPP": "spatial pyramid pooling",
    "WindowData": "reads image windows for detection",
}


def register(type_name):
    """Class decorator that makes a layer constructible from prototxt `type: "<type_name>"`."""

    def deco(cls):
        LAYERS[type_name] = cls
        cls.type = type_name
        return cls

    return deco


def layer_class(type_name, layer_name="?"):
    """The class registered for `type_name`; an image layer or an unknown type is refused in
    one line naming the layer."""
    from . import layers  # noqa: F401  lazy: importing the package registers every layer

    try:
        return LAYERS[type_name]
    except KeyError:
        if type_name in IMAGE_LAYERS:
            raise SeqgenError(
                f"layer '{layer_name}': {type_name} is an image layer "
                f"({IMAGE_LAYERS[type_name]}); seqgen runs recurrent nets and has no image layers"
            ) from None
        known = ", ".join(sorted(LAYERS))
        raise SeqgenError(
            f"layer '{layer_name}': unknown layer type '{type_name}' (supported: {known})"
        ) from None
