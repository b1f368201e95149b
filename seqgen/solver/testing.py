"""Caffe's Solver::Test for a TEST net that reads its own data (or is fed by a function)."""
import numpy as np


class NetTester:
    """Caffe's Solver::Test for one TEST net: `iters` forward passes, each output element
    averaged over them. `before_forward(net)`, if given, writes the inputs of each pass;
    without it the net's own data layers read the data."""

    def __init__(self, net, iters, before_forward=None):
        self.net, self.iters, self.before_forward = net, iters, before_forward

    def __call__(self, solver):
        sums, names = None, []
        for _ in range(self.iters):
            if self.before_forward is not None:
                self.before_forward(self.net)
            outputs = self.net.forward()
            values = [np.asarray(v, np.float64).ravel() for v in outputs.values()]
            if sums is None:
                names = [n for n, v in zip(outputs, values) for _ in range(v.size)]
                sums = np.concatenate(values) if values else np.zeros(0)
            else:
                sums += np.concatenate(values)
        if sums is None:
            return []
        means = sums / max(1, self.iters)
        weights = self.net.blob_loss_weights
        return [(n, float(v), float(weights.get(n, 0.0))) for n, v in zip(names, means)]


def weighted_loss(results):
    """Caffe's "Test loss" (with test_compute_loss): the mean test outputs times their loss
    weights, summed (Caffe sums the net's loss per pass; the same when every loss is an
    output)."""
    return sum(value * weight for _, value, weight in results)
