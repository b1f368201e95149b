"""Taking trained nets elsewhere: ONNX graphs (one step, or a whole sequence), a PyTorch
state dict in safetensors format, and back from it to a .caffemodel.

Nothing here imports onnx, onnxruntime or safetensors at module level: they are extras
(`onnx`, `torch`: see seqgen.extras), imported by the functions that need them.
"""
