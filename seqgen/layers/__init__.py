"""Every layer module registers itself on import (one file per layer, as in Caffe)."""
from . import euclidean_loss, inner_product, input, lstm, silence, split  # noqa: F401
