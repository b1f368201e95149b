"""The shipped language-model solvers against the schedules they reproduce, stated here from
their published sources (not from seqgen's files)."""
from pathlib import Path

from seqgen.data.text import Corpus, Streams
from seqgen.io.prototxt import read_solver
from seqgen.solver.schedules import learning_rate

ROOT = Path(__file__).parents[1]


def tf_small_config_rate(epoch):
    """TensorFlow's PTB tutorial, SmallConfig: learning_rate 1.0, max_epoch 4, lr_decay 0.5;
    epoch i (from 0) trains at 1.0 * 0.5 ** max(i + 1 - max_epoch, 0)."""
    return 1.0 * 0.5 ** max(epoch + 1 - 4, 0)


def test_ptb_small_solver_is_the_tutorials_schedule():
    sp = read_solver(str(ROOT / "prototxt" / "ptb_small_solver.prototxt"))
    corpus = Corpus("words:" + str(ROOT / "examples/data/ptb/ptb.valid.txt"),
                    val=str(ROOT / "examples/data/ptb/ptb.test.first_half.txt"),
                    test=str(ROOT / "examples/data/ptb/ptb.test.second_half.txt"))
    epoch = Streams(corpus.train, 20, 20, "train").chunks  # the net's N = T = 20
    assert sp.max_iter == 13 * epoch  # max_max_epoch 13
    step = 0
    for it in range(sp.max_iter):
        rate, step = learning_rate(sp, it, step)
        assert float(rate) == tf_small_config_rate(it // epoch), it
    assert sp.clip_gradients == 5 and sp.type == "SGD" and sp.momentum == 0
