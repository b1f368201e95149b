"""`Python`: a layer written in Python by the user, as pycaffe's PythonLayer runs it.

python_param { module layer param_str } names a module, imported from sys.path and, when
not found there, from the folder of the net file, the working folder and the running
script's folder, and a class in it. As layer_factory.cpp and python_layer.hpp: the class
is called with the LayerParameter (or with nothing, if it takes no argument: a plain class
need not derive from caffe.Layer), gets `param_str` and `phase` (0 TRAIN, 1 TEST), then
`setup(bottom, top)` once, `reshape(bottom, top)` before every forward (as Caffe's
Layer::Forward does), `forward(bottom, top)` and `backward(top, propagate_down, bottom)`.
Its `self.blobs` are this layer's parameters; `self.blobs.add_blob(*shape)` adds one. An
exception in the user's code is raised again as a PythonLayerError (a RuntimeError, as
pycaffe raises): a line naming the layer, then the user's own traceback.
"""
import importlib
import inspect
import os
import sys
import traceback

from ..blob import Blob
from ..errors import SeqgenRuntimeError
from ..registry import register
from .base import Layer


class PythonLayerError(SeqgenRuntimeError, RuntimeError):
    """User code in a Python layer raised: its traceback under the layer's name."""


class LayerBlobs(list):
    """A Python layer's parameter blobs: a list with pycaffe's `add_blob(*shape)`."""

    def add_blob(self, *shape):
        self.append(Blob(shape))
        return self[-1]


def _import(layer, module):
    """The user's module: from sys.path, else from the net's, working and script folders
    (added to the end of sys.path, so the module's own imports find its neighbours)."""
    first = module.split(".")[0]
    what = f"import of module '{module}'"
    try:
        return layer.call_user(importlib.import_module, module, what=what, missing=first)
    except ModuleNotFoundError:
        pass
    script = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else None
    folders = [f for f in (layer.options.get("net_dir"), os.getcwd(), script) if f]
    for folder in folders:
        if folder not in sys.path:
            sys.path.append(folder)
    try:
        return layer.call_user(importlib.import_module, module, what=what, missing=first)
    except ModuleNotFoundError:
        raise layer.error(f"python_param.module '{module}' not found on sys.path nor in "
                          f"{', '.join(dict.fromkeys(folders))}") from None


def _instantiate(layer, cls, param):
    """cls(param) as Caffe calls it, or cls() for a class whose constructor takes nothing."""
    try:
        inspect.signature(cls).bind(param)
        args = (param,)
    except (TypeError, ValueError):
        args = ()
    return layer.call_user(cls, *args, what=f"{cls.__module__}.{cls.__qualname__}()")


@register("Python")
class PythonLayer(Layer):
    reads_options = ("net_dir",)

    def __init__(self, param, phase, options=None):
        super().__init__(param, phase, options)
        self.blobs = LayerBlobs()
        self.user = "?"
        self._reshaped = False

    def _load(self):
        """Import the module and construct the user's object (Caffe does this in its layer
        factory; here in setup, so that errors get the net file's line)."""
        p = self.param.python_param
        if not p.module or not p.layer:
            raise self.error("python_param needs both module and layer")
        mod = _import(self, p.module)
        cls = getattr(mod, p.layer, None)
        if cls is None:
            raise self.error(f"module '{p.module}' ({getattr(mod, '__file__', '?')}) has no "
                             f"'{p.layer}'")
        self.user = f"{p.module}.{p.layer}"
        self.impl = _instantiate(self, cls, self.param)
        try:
            self.impl.blobs = self.blobs
        except AttributeError:  # a base class whose blobs cannot be replaced: use its own
            self.blobs = self.impl.blobs

    def call_user(self, fn, *args, what, missing=None):
        """fn(*args); an exception raised in it becomes a PythonLayerError carrying the
        user's traceback (without this frame and importlib's). `missing`: the module whose
        ModuleNotFoundError passes through (the import looks elsewhere next)."""
        try:
            return fn(*args)
        except ModuleNotFoundError as e:
            if missing is not None and e.name == missing:
                raise
            raise self._user_error(e, what) from None
        except Exception as e:  # noqa: BLE001 (any error in user code, shown as it is)
            raise self._user_error(e, what) from None

    def _user_error(self, e, what):
        tbe = traceback.TracebackException.from_exception(e)
        frames = list(tbe.stack)[1:]  # drop call_user's own frame
        tbe.stack = traceback.StackSummary.from_list(
            [f for f in frames if not f.filename.startswith("<frozen importlib")])
        head = f"layer '{self.name}' (Python): {what} raised {type(e).__name__}"
        return PythonLayerError(head + "\n" + "".join(tbe.format()).rstrip())

    def _method(self, name, *args):
        fn = getattr(self.impl, name, None)
        if fn is None:
            raise self.error(f"class {self.user} has no {name}() method")
        return self.call_user(fn, *args, what=f"{self.user}.{name}")

    def layer_setup(self, bottom, top):
        self._load()
        self.impl.param_str = self.param.python_param.param_str
        self.impl.phase = int(self.phase)
        self._method("setup", bottom, top)
        self.param_names = tuple(f"blob{i}" for i in range(len(self.blobs)))

    def reshape(self, bottom, top):
        self._method("reshape", bottom, top)
        self._reshaped = True

    def forward(self, bottom, top):
        # Caffe's Layer::Forward calls Reshape before every Forward, and Python layers rely
        # on it (data layers load the next batch in reshape); the Net reshapes only when an
        # input changed shape, so the user's reshape runs here when the Net's did not
        if not self._reshaped:
            self._method("reshape", bottom, top)
        self._reshaped = False
        self._method("forward", bottom, top)

    def backward(self, top, propagate_down, bottom):
        self._method("backward", top, list(propagate_down), bottom)
