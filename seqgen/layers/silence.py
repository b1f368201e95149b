"""`Silence`: swallows bottoms nobody else uses (so they are not net outputs)."""
from ..registry import register
from .base import Layer


@register("Silence")
class SilenceLayer(Layer):
    # Caffe's Silence takes no tops (ExactNumTopBlobs 0); seqgen never refused one (the top
    # stays an empty blob) and still does not, so no count is declared
    num_tops = None
    runs_forward = False

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for blob, down in zip(bottom, propagate_down):
            if down:
                blob.diff[...] = 0
