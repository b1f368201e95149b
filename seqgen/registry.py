"""Layer registry: Caffe's `type` string -> layer class (Caffe's LayerRegistry)."""
from .errors import SeqgenError

LAYERS = {}


def register(type_name):
    """Class decorator that makes a layer constructible from prototxt `type: "<type_name>"`."""

    def deco(cls):
        LAYERS[type_name] = cls
        cls.type = type_name
        return cls

    return deco


def layer_class(type_name, layer_name="?"):
    from . import layers  # noqa: F401  lazy: importing the package registers every layer

    try:
        return LAYERS[type_name]
    except KeyError:
        known = ", ".join(sorted(LAYERS))
        raise SeqgenError(
            f"layer '{layer_name}': unknown layer type '{type_name}' (supported: {known})"
        ) from None
