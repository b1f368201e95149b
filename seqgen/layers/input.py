"""`Input`: tops whose data the user (or the training driver) writes; forward does nothing,
so values written there persist across iterations, as in pycaffe."""
from ..registry import register
from .base import Layer


@register("Input")
class InputLayer(Layer):
    num_bottoms = 0
    runs_forward = False
    is_input = True

    def layer_setup(self, bottom, top):
        shapes = list(self.param.input_param.shape)
        if len(shapes) not in (0, 1, len(top)):
            raise self.error(f"input_param has {len(shapes)} shapes for {len(top)} tops "
                             "(give one shape for all tops or one per top)")
        for i, blob in enumerate(top):
            if shapes:
                dims = list(shapes[0 if len(shapes) == 1 else i].dim)
                if any(d < 0 for d in dims):
                    raise self.error(f"top '{self.top_name(i)}' has a negative dimension {dims}")
                blob.reshape(self.check_size(dims, f"top '{self.top_name(i)}'"))

    def reshape(self, bottom, top):
        pass  # shapes are whatever the user set last

    def forward(self, bottom, top):
        pass
