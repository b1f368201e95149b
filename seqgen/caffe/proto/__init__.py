"""`caffe.proto`: pycaffe's package of the generated `caffe_pb2` (seqgen's, which holds
BVLC's messages and the caffe-lstm fork's lstm_param), importable as
`caffe.proto.caffe_pb2` too."""
import sys

from ...proto import caffe_pb2

sys.modules[__name__ + ".caffe_pb2"] = caffe_pb2

__all__ = ["caffe_pb2"]
