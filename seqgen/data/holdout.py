"""Held-out testing of a sequence net: the TEST-phase loss on the tail of the sequence that
training never sees (Caffe's test_interval / test_iter, or --holdout STEPS)."""
import numpy as np

from ..errors import SeqgenError
from ..generation.generate import output_name
from .feeder import SequenceFeeder


def holdout_plan(param, holdout, T, length, source, log):
    """(training chunks, held-out chunks, chunks per test) of a sequence of `length` steps
    in chunks of T; the held-out tail is --holdout STEPS, or test_iter chunks when the
    solver asks for tests (test_interval, test_iter) and no --holdout is given."""
    chunks = length // T
    test_iter = param.test_iter[0] if len(param.test_iter) else 0
    if holdout is None:
        if not (param.test_interval and test_iter):
            return chunks, 0, 0
        if chunks < test_iter + 1:
            log(f"Note: the solver asks for tests (test_interval {param.test_interval}, "
                f"test_iter {test_iter}), but {source} has {length} steps, {chunks} chunk(s) of "
                f"{T}: nothing left to hold out; testing is off (use a longer --data)")
            return chunks, 0, 0
        return chunks - test_iter, test_iter, test_iter
    if holdout <= 0 or holdout % T:
        raise SeqgenError(f"--holdout {holdout}: must be a positive multiple of the net's "
                          f"chunk length {T}")
    held = holdout // T
    if chunks - held < 1:
        raise SeqgenError(f"--holdout {holdout}: {source} has {length} steps ({chunks} chunk(s) "
                          f"of {T}); at least one chunk must remain for training")
    if test_iter > held:
        raise SeqgenError(f"test_iter {test_iter} asks for more chunks than --holdout {holdout} "
                          f"holds out ({held} of {T} steps)")
    return chunks - held, held, test_iter or held


class HeldOutTest:
    """The solver's tester for sequence data: the TEST-phase loss on a held-out tail.

    The TEST net (weights shared with the training net) runs over the whole sequence in
    chunks of T, fed as in training (teacher-forced in the training input mode), its state
    carried from chunk to chunk; the losses of the `test_chunks` chunks after the first
    `train_chunks` (the held-out part) are averaged. The loss is the TEST net's own loss
    output when it has one and a label input, else Caffe's EuclideanLoss of the net's
    prediction against the sequence: sum((y - x)^2) / (2 T).
    """

    def __init__(self, net, sequence, mode, T, train_chunks, test_chunks):
        self.net, self.T = net, T
        self.train_chunks, self.test_chunks = train_chunks, test_chunks
        n = (train_chunks + test_chunks) * T
        self.feeder = SequenceFeeder(net, np.asarray(sequence[:n], np.float32), mode,
                                     need_label=False)
        weights = net.blob_loss_weights
        self.loss_outputs = [o for o in net.outputs if weights.get(o)] \
            if self.feeder.label else []
        self.prediction = None if self.loss_outputs else output_name(net)

    def __call__(self, solver):
        net = self.net
        saved = net.get_state()
        net.reset_state()
        total, weighted = 0.0, []
        try:
            for k in range(self.train_chunks + self.test_chunks):
                self.feeder.write(k)
                outputs = net.forward()
                if k < self.train_chunks:
                    continue
                if self.loss_outputs:
                    weighted.append([float(np.asarray(outputs[o]).ravel()[0])
                                     for o in self.loss_outputs])
                else:
                    total += self._euclidean(outputs, k)
        finally:
            net.set_state(saved)
        if self.loss_outputs:
            means = np.mean(np.array(weighted), axis=0)
            return [(o, float(v), net.blob_loss_weights[o])
                    for o, v in zip(self.loss_outputs, means)]
        return [("loss", total / self.test_chunks, 0.0)]

    def _euclidean(self, outputs, k):
        """Caffe's EuclideanLoss of chunk k's prediction, in float64."""
        T = self.T
        y = np.asarray(outputs[self.prediction], np.float64).reshape(T, -1)
        x = self.feeder.sequence[k * T:(k + 1) * T].astype(np.float64).reshape(T, -1)
        return float(np.sum((y - x) ** 2)) / (2 * T)


def summed_test_loss(results):
    """One number for test_loss.csv: the weighted sum of the loss outputs, else the first."""
    weighted = [(v, w) for _, v, w in results if w]
    if weighted:
        return sum(v * w for v, w in weighted)
    return results[0][1] if results else float("nan")
