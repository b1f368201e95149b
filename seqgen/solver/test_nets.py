"""Caffe's InitTestNets: which TEST nets a solver has, in Caffe's numbering, each with the
NetState it is built in and its own test_iter; and Caffe's CHECKs on their counts."""
from dataclasses import dataclass

from ..errors import SeqgenError
from ..proto import caffe_pb2


@dataclass
class SolverTestNet:
    """Test net #index: where its NetParameter comes from, its test_state, its test_iter."""
    index: int
    source: str | caffe_pb2.NetParameter  # a file name or an inline NetParameter
    state: caffe_pb2.NetState
    iters: int


def _counts(p):
    """(test_net_param + test_net count, whether a generic net/net_param exists, number of
    test nets) as InitTestNets counts them."""
    explicit = len(p.test_net_param) + len(p.test_net)
    generic = p.HasField("net_param") or bool(p.net)
    # a generic net gives one test net per test_iter left over after the explicit ones
    return explicit, generic, (len(p.test_iter) if generic else explicit)


def check_test_net_counts(p, where="solver"):
    """Caffe's CHECKs in InitTestNets, as one-line errors naming the solver."""
    if p.HasField("net_param") and p.net:
        raise SeqgenError(f"{where}: give net or net_param, not both")
    explicit, generic, count = _counts(p)
    if (len(p.test_iter) < explicit) if generic else (len(p.test_iter) != explicit):
        raise SeqgenError(
            f"{where}: {len(p.test_iter)} test_iter for {explicit} test net(s) "
            "(test_net / test_net_param); Caffe needs one test_iter for each test net")
    if len(p.test_state) and len(p.test_state) != count:
        raise SeqgenError(
            f"{where}: {len(p.test_state)} test_state for {count} test net(s) (one per "
            "test_iter); give one test_state per test net, or none")
    if count and p.test_interval <= 0:
        raise SeqgenError(f"{where}: test_iter asks for {count} test net(s) but test_interval "
                          "is not set; give test_interval > 0 (Caffe requires it)")


def list_test_nets(p, generic_source):
    """The test nets in Caffe's order: test_net_param, then test_net files, then the
    generic net (`generic_source`: its file name or NetParameter) once per remaining
    test_iter. Call check_test_net_counts first."""
    sources = list(p.test_net_param) + list(p.test_net)
    explicit, generic, count = _counts(p)
    if generic:
        sources += [generic_source] * (count - explicit)
    return [SolverTestNet(i, source,
                          p.test_state[i] if len(p.test_state) else caffe_pb2.NetState(),
                          int(p.test_iter[i]))
            for i, source in enumerate(sources)]
