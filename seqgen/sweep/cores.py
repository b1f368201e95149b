"""Cores shared between sweeps: a run takes as many of the machine's core slots as it has
threads before it trains, and waits while other runs hold them.

One sweep alone never oversubscribes (its workers share the cores, `engine.dask_client`),
but two sweeps started side by side would each start one worker a core. So each core has a
lock file in a folder every seqgen process of the user shares; a run holds `threads` of
them (flock, released by the kernel when the process dies, so a killed worker leaves no
stale slot) for its whole training. Slots are taken all at once or not at all, polling, so
runs needing different numbers of them never deadlock.
"""
import contextlib
import fcntl
import os
import tempfile
import time

#: where the slots live: SEQGEN_CORE_LOCKS, or a folder of the user's in the temp dir
LOCKS_VARIABLE = "SEQGEN_CORE_LOCKS"
POLL_SECONDS = 0.5


def lock_folder():
    """The folder of the machine's core slots (made if missing)."""
    folder = os.environ.get(LOCKS_VARIABLE) or os.path.join(
        tempfile.gettempdir(), f"seqgen-cores-{os.getuid()}")
    os.makedirs(folder, exist_ok=True)
    return folder


def _try_take(folder, cores, need):
    """Open files of `need` free slots, each locked, or [] if fewer are free."""
    held = []
    for slot in range(cores):
        f = open(os.path.join(folder, f"core-{slot}.lock"), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        held.append(f)
        if len(held) == need:
            return held
    for f in held:
        f.close()  # closing drops the lock
    return []


@contextlib.contextmanager
def core_slots(threads, log=print, cores=None, folder=None, sleep=time.sleep):
    """Hold `threads` of the machine's `cores` slots (os.cpu_count()) while the body runs;
    says in `log` when it has to wait for them, and how long it waited."""
    cores = cores or os.cpu_count() or 1
    need = max(1, min(int(threads), cores))
    folder = folder or lock_folder()
    held = _try_take(folder, cores, need)
    if not held:
        log(f"Waiting for {need} of this machine's {cores} core(s): other seqgen runs "
            f"hold them ({folder})")
        started = time.monotonic()
        while not held:
            sleep(POLL_SECONDS)
            held = _try_take(folder, cores, need)
        log(f"Got {need} core(s) after {time.monotonic() - started:.1f} s")
    try:
        yield need
    finally:
        for f in held:
            f.close()
