"""Running a sweep's tasks on Dask distributed: a LocalCluster of worker processes (one
thread each by default), or a running cluster (`--scheduler` / DASK_SCHEDULER_ADDRESS); one
task per run with its own key, results gathered as they finish with a progress line."""
import contextlib
import os
import signal
import time

from ..errors import SeqgenError
from ..extras import install_hint
from .runner import run_one

#: worker deaths one task may see before Dask gives up on it (KilledWorker)
ALLOWED_FAILURES = 3
PROGRESS_SECONDS = 30.0  # a progress line at least this often while runs go on


@contextlib.contextmanager
def dask_client(workers=None, scheduler=None, log=print, threads=None):
    """A distributed Client: on the cluster at `scheduler` (or DASK_SCHEDULER_ADDRESS),
    else on a LocalCluster of `workers` processes (default: one per core), each run in them
    with `threads` threads (default: an equal share of the cores)."""
    try:
        import dask  # lazy: needs the [sweep] extra
        from distributed import Client, LocalCluster  # lazy: needs the [sweep] extra
    except ImportError:
        raise SeqgenError("seqgen sweep needs Dask distributed: "
                          + install_hint("sweep")) from None
    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        if address:
            try:
                client = Client(address, timeout="20s")
            except OSError as e:
                raise SeqgenError(f"cannot reach the Dask scheduler at {address} ({e})") \
                    from None
            log(f"Dask cluster at {address}: {len(client.scheduler_info()['workers'])} "
                "worker(s)")
            with client:
                yield client
            return
        n = workers or os.cpu_count() or 1
        # each worker process gets an equal share of the cores (BLAS and numba threads
        # included), so n workers never oversubscribe, unless the threads are given (then
        # the core slots, sweep.cores, keep runs from oversubscribing); the workers inherit
        # the environment
        share = str(threads or max(1, (os.cpu_count() or 1) // n))
        with _environment({var: share for var in THREAD_VARIABLES}), \
                LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                             host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            log(f"Local Dask cluster: {n} worker process(es), {share} thread(s) each")
            try:
                yield client
            except KeyboardInterrupt:
                _kill_workers(client)
                raise


THREAD_VARIABLES = ("SEQGEN_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


@contextlib.contextmanager
def _environment(values):
    """os.environ with `values` while the cluster lives (its workers, restarted ones too,
    inherit them), then as it was: numba refuses to compile once NUMBA_NUM_THREADS differs
    from the value its threads were launched with, so a changed one must not outlive it."""
    saved = {var: os.environ.get(var) for var in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _kill_workers(client):
    """Stop this machine's workers at once (SIGKILL): a run in a worker thread cannot be
    interrupted, and a killed run resumes from its newest snapshot next time."""
    try:
        pids = client.run(os.getpid)
    except Exception:  # noqa: BLE001 - the cluster is going anyway
        return
    for pid in pids.values():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _lost(spec, error):
    """The result of a run whose task did not return one."""
    return {"run": spec.name, "status": "lost", "error": error}


def _result(future, spec):
    try:
        from distributed import KilledWorker  # lazy: needs the [sweep] extra
        try:
            return future.result()
        except KilledWorker:
            return _lost(spec, f"its worker died {ALLOWED_FAILURES} times while it ran")
    except Exception as e:  # noqa: BLE001 - a bug in one run must not lose the others
        return _lost(spec, f"{type(e).__name__}: {e}".splitlines()[0])


def _eta(started, done, left, running):
    if not done or not left:
        return "ETA --" if left else "ETA 0s"
    seconds = (time.monotonic() - started) / done * left
    return f"ETA {int(seconds // 60)}m{int(seconds % 60):02d}s"


def progress_line(results, total, running, started, done_now):
    """`sweep: D/N done, R running, F failed, ETA ...` (the ETA from this session's rate)."""
    bad = sum(r["status"] != "ok" for r in results.values())
    left = total - len(results)
    return (f"sweep: {len(results)}/{total} done, {running} running, {bad} failed or "
            f"diverged, {_eta(started, done_now, left, running)}")


def run_tasks(client, specs, results, total, log=print):
    """Submit every spec (key run-NAME, never merged with another) and gather the results
    into `results` {name: result} as they finish, logging progress and each outcome."""
    from distributed import wait  # lazy: needs the [sweep] extra

    futures = {client.submit(run_one, spec, key=f"run-{spec.name}", pure=False): spec
               for spec in specs}
    pending, started, done_now = set(futures), time.monotonic(), 0
    while pending:
        try:
            done, pending = wait(pending, timeout=PROGRESS_SECONDS,
                                 return_when="FIRST_COMPLETED")
        except TimeoutError:
            done = set()
        for future in done:
            spec = futures[future]
            result = results[spec.name] = _result(future, spec)
            done_now += 1
            log(f"{spec.name}: {outcome(result)}")
        threads = client.nthreads()  # a worker holds more tasks than it runs at once
        running = sum(min(len(keys), threads.get(w, 1))
                      for w, keys in client.processing().items())
        log(progress_line(results, total, running, started, done_now))


def outcome(result):
    """One line: what a run came to."""
    if result["status"] != "ok":
        return f"{result['status']}: {result.get('error')}"
    scores = [f"{k} {result[k]:.4g}" for k in ("final_loss", "mse", "perplexity")
              if result.get(k) is not None]
    resumed = f", resumed from iteration {result['resumed_from']}" \
        if result.get("resumed_from") else ""
    return f"ok, {', '.join(scores)} in {result.get('wall_seconds')} s{resumed}"
