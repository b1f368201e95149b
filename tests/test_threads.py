"""seqgen.threads: the one thread budget reaches numba and every loaded BLAS, and small nets
or few streams never split."""
import os

import numba
from threadpoolctl import threadpool_info

from seqgen import threads


def blas_threads():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_set_threads_reaches_blas_and_numba():
    before = threads.count(), numba.get_num_threads(), blas_threads()
    try:
        threads.set_threads(1)
        assert threads.count() == 1 and numba.get_num_threads() == 1
        assert set(blas_threads().values()) == {1}
        threads.set_threads(2)
        want = min(2, numba.config.NUMBA_NUM_THREADS)
        assert threads.count() == want and numba.get_num_threads() == want
        assert set(blas_threads().values()) == {want}
        threads.set_threads(10 ** 6)  # never more than numba's pool (the machine's cores)
        assert threads.count() == numba.config.NUMBA_NUM_THREADS
    finally:
        threads.set_threads(before[0])
        numba.set_num_threads(before[1])


def test_stream_parts_only_split_many_streams_with_a_budget(monkeypatch):
    monkeypatch.setattr(threads, "_threads", 1)
    assert threads.stream_parts(64) == 1
    monkeypatch.setattr(threads, "_threads", 2)
    assert threads.stream_parts(threads.PARALLEL_MIN_STREAMS - 1) == 1
    assert threads.stream_parts(64) == min(2, numba.get_num_threads())


def test_numba_workers_sleep_between_regions_with_a_budget(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(threads, "_threads", 1)
    threads._quiet_waits()
    assert "OMP_WAIT_POLICY" not in os.environ  # one thread: nothing to ask
    monkeypatch.setattr(threads, "_threads", 2)
    threads._quiet_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice stays
    threads._quiet_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
