"""How many threads a chapter uses, and how it starts worker processes.

Two things go wrong when chapters run beside each other (two notebook tests, a test and a book build, two
readers on one machine) or start workers from inside a Jupyter kernel:

- **Oversubscription.** torch (OpenMP) and NumPy's BLAS each start one thread per core. Two kernels on two cores
  then run four spinning OpenMP teams on two cores, and a step that takes 13 s alone takes 600 s: OpenMP threads
  busy-wait for each other, so a descheduled thread stalls its whole team. :func:`set_threads` gives each process
  its own count (``RRG_THREADS``, e.g. ``RRG_THREADS=1`` for each of two parallel CI workers).
- **fork() in a threaded process.** A kernel has threads (ZMQ I/O, heartbeat, OpenMP, BLAS); ``fork`` copies
  only the calling thread, so a lock held by another thread at that moment stays locked forever in the child.
  :func:`process_pool` starts workers with ``spawn``: each child is a fresh interpreter, single-threaded until
  it imports something, with one thread per pool. (``spawn``, not ``forkserver``: a spawned worker is a child
  of the caller, so the caller's CPU-time and peak-memory accounting, e.g. ``RUSAGE_CHILDREN``, includes it.)

``load_profile`` calls :func:`set_threads`, so every chapter sets its own count in its first cells.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor

__all__ = ["THREADS_ENV", "available_cpus", "set_threads", "thread_counts", "mp_context", "process_pool"]

THREADS_ENV = "RRG_THREADS"

# Variables read by the thread pools when they start (in this process, before import, or in a child process).
_POOL_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which ``taskset`` and CPU sets restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _requested(n: int | None) -> int | None:
    if n is not None:
        if int(n) < 1:
            raise ValueError(f"set_threads: n must be >= 1, got {n}")
        return int(n)
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_ENV}={raw!r} is not a whole number of threads") from None
    if value < 1:
        raise ValueError(f"{THREADS_ENV}={raw!r}: need at least 1 thread")
    return value


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads for torch's intra-op pool and for BLAS/OpenMP (``n=None``: ``$RRG_THREADS``).

    With neither ``n`` nor ``RRG_THREADS``, nothing changes (torch's own default: one thread per physical core)
    and the count in effect is returned. Otherwise the pools already loaded are resized (torch, and through
    threadpoolctl NumPy's OpenBLAS, MKL and OpenMP), and the pools' environment variables are set, so that a
    library imported later and every child process (DataLoader workers, :func:`process_pool`) start at ``n``.
    torch is not imported for this: a NumPy-only worker stays light.

    Returns the number of threads in effect (torch's, when torch is loaded).
    """
    want = _requested(n)
    if want is None:
        import torch

        return torch.get_num_threads()
    for var in _POOL_ENV:
        os.environ[var] = str(want)
    os.environ[THREADS_ENV] = str(want)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(want)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=want)
    return torch.get_num_threads() if torch is not None else want


def thread_counts() -> dict[str, int]:
    """Threads each pool would use now, for a chapter's log: ``{"torch": 2, "blas": 2, "openmp": 2}``."""
    import torch

    counts = {"torch": torch.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return counts
    for pool in threadpool_info():
        counts[pool["user_api"]] = max(counts.get(pool["user_api"], 0), pool["num_threads"])
    return counts


def mp_context(method: str | None = None):
    """A multiprocessing context that never forks the calling process: ``spawn`` (or ``method="forkserver"``).

    ``"fork"`` is refused, since a kernel is always multi-threaded. Like every non-fork start, a script that uses
    it needs the ``if __name__ == "__main__":`` guard (notebooks and ``python -c`` do not).
    """
    if method == "fork":
        raise ValueError("fork is unsafe in a multi-threaded process (every Jupyter kernel); use spawn or forkserver")
    return mp.get_context(method or "spawn")


def process_pool(workers: int, threads_per_worker: int = 1, method: str | None = None) -> ProcessPoolExecutor:
    """``ProcessPoolExecutor(workers)`` whose workers start clean (:func:`mp_context`) with few threads each.

    ``workers`` processes × ``threads_per_worker`` threads should not exceed :func:`available_cpus`; one thread
    each is right for the world's generators, which are NumPy code on small arrays.
    Functions and arguments are pickled, so they must be importable (module level), not defined in a notebook.
    """
    if workers < 1:
        raise ValueError(f"process_pool: workers must be >= 1, got {workers}")
    return ProcessPoolExecutor(workers, mp_context=mp_context(method), initializer=set_threads,
                               initargs=(threads_per_worker,))
