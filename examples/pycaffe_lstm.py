"""A pycaffe LSTM notebook as a script: learn a sine wave with BVLC's LSTM layer, training in
a Python loop, then run a one-step deploy net free-running. It is plain pycaffe; seqgen runs
it unchanged with

    seqgen pycaffe examples/pycaffe_lstm.py [OUT_FOLDER]

(the prototxt, solver and weights files go into OUT_FOLDER, default ./pycaffe_lstm).
"""
import os
import sys

import caffe
import numpy as np
from caffe import layers as L
from caffe.proto import caffe_pb2

out = sys.argv[1] if len(sys.argv) > 1 else "pycaffe_lstm"
os.makedirs(out, exist_ok=True)
T, N, H = 40, 4, 16          # steps per chunk, streams, LSTM units
caffe.set_mode_cpu()
caffe.set_random_seed(1)


def lstm_net(steps, streams, train):
    """Input x (the previous value) and cont (0 where a sequence starts) -> LSTM -> the
    next value; with a EuclideanLoss against `label` for training."""
    n = caffe.NetSpec()
    if train:
        n.x, n.cont, n.label = L.Input(shape=[dict(dim=[steps, streams, 1]),
                                              dict(dim=[steps, streams]),
                                              dict(dim=[steps, streams, 1])], ntop=3)
    else:
        n.x, n.cont = L.Input(shape=[dict(dim=[steps, streams, 1]),
                                     dict(dim=[steps, streams])], ntop=2)
    n.lstm1 = L.LSTM(n.x, n.cont, recurrent_param=dict(
        num_output=H, weight_filler=dict(type="uniform", min=-0.1, max=0.1),
        bias_filler=dict(type="constant", value=0)))
    n.ip1 = L.InnerProduct(n.lstm1, num_output=1, axis=2,
                           weight_filler=dict(type="gaussian", std=0.1))
    if train:
        n.loss = L.EuclideanLoss(n.ip1, n.label)
    return n.to_proto()


train_path = os.path.join(out, "lstm_train.prototxt")
deploy_path = os.path.join(out, "lstm_deploy.prototxt")
with open(train_path, "w") as f:
    f.write(str(lstm_net(T, N, train=True)))
with open(deploy_path, "w") as f:
    f.write(str(lstm_net(1, 1, train=False)))

s = caffe_pb2.SolverParameter()
s.net = train_path
s.type = "Adam"
s.base_lr = 0.01
s.lr_policy = "fixed"
s.max_iter = 1000
s.clip_gradients = 1.0
s.snapshot_prefix = os.path.join(out, "lstm")
solver_path = os.path.join(out, "lstm_solver.prototxt")
with open(solver_path, "w") as f:
    f.write(str(s))

# Each stream is a sine wave with its own phase; chunks of T steps follow each other, so
# cont is 0 only at the very first step and the LSTM carries its state across chunks.
period = 25.0
wave = lambda t: np.sin(2 * np.pi * t / period)  # noqa: E731
phases = np.arange(N)[None, :] * 7.0
solver = caffe.get_solver(solver_path)
net = solver.net
losses = []
for it in range(300):
    t = it * T + np.arange(T)[:, None] + phases
    net.blobs["x"].data[:, :, 0] = wave(t - 1)
    net.blobs["label"].data[:, :, 0] = wave(t)
    net.blobs["cont"].data[...] = 1
    if it == 0:
        net.blobs["cont"].data[0] = 0
    solver.step(1)
    losses.append(float(net.blobs["loss"].data))
    if it % 100 == 0:
        print(f"iteration {solver.iter}: loss {losses[-1]:.5f}")
print(f"iteration {solver.iter}: loss {losses[-1]:.5f}")
weights = os.path.join(out, "lstm.caffemodel")
net.save(weights)

# Deploy: one step per forward call; cont = 0 at the first step starts a sequence, cont = 1
# carries the LSTM's state into the next call. Prime with the true wave, then feed the
# net's own prediction back (free-running).
deploy = caffe.Net(deploy_path, weights, caffe.TEST)
prime, free = 30, 50
value, predicted = 0.0, []
for k in range(prime + free):
    deploy.blobs["cont"].data[...] = 0 if k == 0 else 1
    deploy.blobs["x"].data[...] = wave(k - 1) if k < prime else value
    value = float(deploy.forward()["ip1"][0, 0, 0])
    if k >= prime:
        predicted.append(value)
truth = wave(np.arange(prime, prime + free))
error = float(np.sqrt(np.mean((np.array(predicted) - truth) ** 2)))
print(f"first loss {losses[0]:.5f}, last loss {losses[-1]:.5f}")
print(f"free-running RMS error over {free} steps: {error:.4f} (the wave's RMS: 0.7071)")
