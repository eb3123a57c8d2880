"""What the benchmarks read off processes: memory, harness processes, threads.

RSS comes from ``/proc/self/statm`` (cheap enough to sample often); PSS, which
shares each page out among the processes mapping it, from psutil, for this
process and the SDK's harness processes (``localharness``) below it.
"""

from __future__ import annotations

import contextlib
import ctypes
import resource
import threading
from typing import Any

from benchmarks._common import Metric

HARNESS = "localharness"


def rss() -> int:
    """This process's resident set, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_mib() -> float:
    """This process's resident high-water mark, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc), so RSS shows what is held."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: RSS then includes the allocator's free pages
        return
    libc.malloc_trim(0)


def harnesses(pid: int | None = None, *, live_only: bool = False) -> list[Any]:
    """The harness processes below ``pid`` (default: this process), as psutil processes.

    ``live_only`` leaves out zombies (killed, not yet reaped by their parent).
    """
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.name() == HARNESS and not (
                live_only and child.status() == psutil.STATUS_ZOMBIE
            ):
                found.append(child)
    return found


def python_pss_mib() -> float:
    """PSS of this Python process, in MiB."""
    import psutil

    return float(psutil.Process().memory_full_info().pss) / 2**20


# The figures of :func:`pss_figures` that a comparison's table shows.
PSS_METRICS = [
    Metric("harness_pss_mib", "PSS of the harnesses", "MiB", digits=0),
    Metric("python_pss_mib", "PSS of the Python process", "MiB", digits=0),
    Metric("total_pss_mib", "total PSS", "MiB", digits=0),
]


def pss_figures() -> dict[str, float]:
    """PSS of this process and of its harness processes, in MiB, and how many harnesses."""
    import psutil

    harness = 0
    for process in harnesses():
        with contextlib.suppress(psutil.Error):
            harness += process.memory_full_info().pss
    python = psutil.Process().memory_full_info().pss
    return {
        "harness_pss_mib": harness / 2**20,
        "python_pss_mib": python / 2**20,
        "total_pss_mib": (harness + python) / 2**20,
        "harnesses": float(len(harnesses())),
    }


def thread_names() -> set[str]:
    """The names of the threads alive, but for Trio's idle worker threads (a cache, reused)."""
    return {t.name for t in threading.enumerate() if not t.name.startswith("Trio thread")}


class ThreadCount:
    """Counts the threads started while it is installed (measurement only)."""

    def __init__(self) -> None:
        self.started = 0
        self._original = threading.Thread.start

    def __enter__(self) -> ThreadCount:
        counter = self
        original = self._original

        def start(thread: threading.Thread) -> None:
            counter.started += 1
            original(thread)

        threading.Thread.start = start  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        threading.Thread.start = self._original  # type: ignore[method-assign]
