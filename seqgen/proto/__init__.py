"""Protocol-buffer schema of Caffe's file formats (BVLC fields plus caffe-lstm's lstm_param).

`caffe_pb2` is generated from caffe.proto by protoc 3.21 and works with protobuf 3.20 up to 7.x,
on both the pure-Python and the upb backend.  Regenerate with
``cd seqgen/proto && protoc --python_out=. caffe.proto``.
"""

from . import caffe_pb2

__all__ = ["caffe_pb2"]
