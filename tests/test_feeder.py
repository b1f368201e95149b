"""SequenceFeeder: chunks, clip markers and data inputs as the fork's lstm_sequence driver
feeds them (seqgen/data/feeder.py), checked on the 960-step sequence and lstm_long (T = 320)."""
from pathlib import Path

import numpy as np
import pytest

from seqgen.data.feeder import SequenceFeeder
from seqgen.data.sequence import default_data_spec
from seqgen.data.sources import sinusoid
from seqgen.errors import SeqgenError
from seqgen.net import TRAIN, Net

ROOT = Path(__file__).parents[1]
LONG = ROOT / "prototxt" / "lstm_long.prototxt"
SHORT = ROOT / "prototxt" / "lstm_short.prototxt"
T = 320


@pytest.fixture(scope="module")
def long_net():
    return Net(str(LONG), TRAIN)


@pytest.fixture(scope="module")
def seq():
    s = sinusoid(960)
    assert s.shape[0] == 960
    return np.asarray(s, np.float32).reshape(-1)


def test_chunking(long_net, seq):
    feeder = SequenceFeeder(long_net, seq, "previous", "sinusoid:960")
    assert feeder.T == T
    assert feeder.chunks == 3


def test_clip_pattern(long_net, seq):
    feeder = SequenceFeeder(long_net, seq, "previous", "sinusoid:960")
    clips = [np.asarray(feeder.chunk(k)[1]).reshape(-1) for k in range(3)]
    for k, clip in enumerate(clips):
        assert clip.shape == (T,)
        assert np.all(clip[1:] == 1), k
    assert clips[0][0] == 0  # the pass over the sequence restarts the state
    assert clips[1][0] == 1 and clips[2][0] == 1  # later chunks continue it


def test_labels_are_the_sequence_slices(long_net, seq):
    feeder = SequenceFeeder(long_net, seq, "previous", "sinusoid:960")
    for k in range(3):
        label = np.asarray(feeder.chunk(k)[2]).reshape(-1)
        assert label.tobytes() == seq[k * T:(k + 1) * T].tobytes(), k


def test_previous_mode_shifts_across_chunk_boundaries(long_net, seq):
    feeder = SequenceFeeder(long_net, seq, "previous", "sinusoid:960")
    data = [np.asarray(feeder.chunk(k)[0]).reshape(-1) for k in range(3)]
    assert data[0][0] == 0
    assert data[0][1] == seq[0]
    assert data[1][0] == seq[319]
    assert data[2][0] == seq[639]
    for k in range(3):
        for t in (0, 1, 100, 319):
            i = k * T + t
            expected = seq[i - 1] if i > 0 else 0.0
            assert data[k][t] == expected, (k, t)
    whole = np.concatenate(data)
    assert whole[1:].tobytes() == seq[:-1].tobytes()


def test_zero_mode_data_is_zero(long_net, seq):
    feeder = SequenceFeeder(long_net, seq, "zero", "sinusoid:960")
    for k in range(3):
        data, clip, label = feeder.chunk(k)
        assert not np.any(np.asarray(data))
        assert np.asarray(label).reshape(-1).tobytes() == seq[k * T:(k + 1) * T].tobytes()


def test_hook_writes_blobs_and_cycles(seq):
    net = Net(str(LONG), TRAIN)
    feeder = SequenceFeeder(net, seq, "previous", "sinusoid:960")
    seen = []
    for _ in range(4):
        feeder(None)
        seen.append((net.blobs["data"].data.reshape(-1).copy(),
                     net.blobs["clip"].data.reshape(-1).copy(),
                     net.blobs["label"].data.reshape(-1).copy()))
    assert [s[1][0] for s in seen] == [0, 1, 1, 0]  # chunk 0, 1, 2, then 0 again
    assert seen[1][0][0] == seq[319]
    assert seen[2][2].tobytes() == seq[640:960].tobytes()
    assert seen[3][2].tobytes() == seq[:320].tobytes()
    assert feeder.passes == 4


def test_leftover_steps_are_dropped(long_net, seq):
    feeder = SequenceFeeder(long_net, seq[:700], "previous", "seven hundred")
    assert feeder.chunks == 2
    assert len(feeder.sequence) == 640


def test_sequence_shorter_than_one_chunk(long_net, seq):
    with pytest.raises(SeqgenError) as e:
        SequenceFeeder(long_net, seq[:100], "previous", "my_short_data.csv")
    msg = str(e.value)
    assert "my_short_data.csv" in msg
    assert "100" in msg and "320" in msg


def test_wrong_number_of_columns(long_net, seq):
    two = np.stack([seq, seq], axis=1)
    with pytest.raises(SeqgenError) as e:
        SequenceFeeder(long_net, two, "previous", "two_columns.csv")
    assert "two_columns.csv" in str(e.value)


def test_unknown_mode(long_net, seq):
    with pytest.raises(SeqgenError):
        SequenceFeeder(long_net, seq, "teacher", "sinusoid:960")


def test_default_data_specs():
    assert default_data_spec(str(LONG)) == "sinusoid:960"
    assert default_data_spec(str(SHORT)) == "sinusoid:320"
    assert default_data_spec(str(ROOT / "prototxt" / "deep_lstm_long.prototxt")) == "sinusoid:960"


def test_default_data_spec_directive_and_fallback(tmp_path):
    net = tmp_path / "mine.prototxt"
    net.write_text("# seqgen: sequence_length 640\nname: 'x'\n")
    assert default_data_spec(str(net)) == "sinusoid:640"
    plain = tmp_path / "plain.prototxt"
    plain.write_text("name: 'x'\n")
    assert default_data_spec(str(plain)) == "sinusoid:320"
    # the fork's long configuration is known by name even without the comment
    named = tmp_path / "lstm_long.prototxt"
    named.write_text("name: 'x'\n")
    assert default_data_spec(str(named)) == "sinusoid:960"


def test_feedback_schedule_state_follows_its_draws():
    """The schedule reads its generator's state once between draws (it is gathered every
    iteration before the first snapshot), and a draw or set_state is seen at once."""
    from types import SimpleNamespace

    from seqgen.data.feedback import FeedbackSchedule
    from seqgen.net import TEST

    feeder = SequenceFeeder(Net(str(SHORT), TRAIN), sinusoid(320), "previous")
    schedule = FeedbackSchedule(feeder, Net(str(SHORT), TEST), total=100, seed=3)
    before = schedule.get_state()
    assert before["rng"] == schedule.rng.bit_generator.state
    assert schedule.get_state()["rng"] is before["rng"]  # not read again
    solver = SimpleNamespace(iter=20, param=SimpleNamespace(iter_size=1))
    schedule.update(solver)  # a refresh: draws which steps take the predictions
    after = schedule.get_state()
    assert after["rng"] == schedule.rng.bit_generator.state != before["rng"]
    schedule.set_state(before)
    assert schedule.get_state()["rng"] == before["rng"] == schedule.rng.bit_generator.state
