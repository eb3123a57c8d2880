"""The SDK's ``localharness`` processes: tracked, stopped gently, killed when need be.

Every harness process a backend starts is recorded in its
:class:`HarnessRegistry` under an *owner*: the name of the pooled process
(``<backend tag>/harness-<n>``, see :mod:`~agy_trio.adapters.antigravity.pool`).
Whatever happens to that owner (a cancelled start, its last conversation
gone, the backend closing) its processes can be killed
and reaped at once, from any thread, or stopped the way the harness likes it
(end-of-file on stdin, a grace, then a kill) in a worker thread so that no
asyncio loop waits (:meth:`HarnessRegistry.retire_async`).

Three more guards keep a harness from outliving Python:

* On Linux the harness is started through ``setpriv --pdeathsig KILL``
  (:func:`pdeathsig_prefix`): the kernel kills it when the thread that started
  it exits, which includes any crash of the Python process. The threads that
  start harnesses therefore live as long as the registry.
* Each harness carries :data:`HARNESS_OWNER_ENV` in its environment, so that
  :func:`sweep_orphans` can find one the registry never saw.
* The registry's :meth:`~HarnessRegistry.close` kills and reaps whatever is left.

How a process is started (without blocking the loop) and handed to the SDK is
:mod:`agy_trio.adapters.antigravity.launcher`'s part.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable

__all__ = [
    "HARNESS_OWNER_ENV",
    "HarnessRegistry",
    "host_executor",
    "pdeathsig_prefix",
    "prestart_threads",
    "sweep_orphans",
]

log = logging.getLogger("agy_trio.antigravity.harness")

HARNESS_OWNER_ENV = "AGY_TRIO_HARNESS_OWNER"
"""Environment variable naming the backend and pooled process a harness is (``<tag>/harness-<n>``).

It is visible in ``ps e`` output and lets a sweep find harnesses started by a
path this module did not control.
"""


@functools.cache
def pdeathsig_prefix() -> tuple[str, ...]:
    """The command prefix that makes the kernel kill the harness with its parent thread.

    ``setpriv --pdeathsig KILL`` (util-linux) sets ``PR_SET_PDEATHSIG`` and
    then execs the harness, so the harness keeps its PID. Where ``setpriv``
    is missing (macOS, minimal images) the prefix is empty and the harness
    relies on noticing end-of-file on its stdin, which it does when Python
    exits and nothing else holds the pipe.
    """
    if not sys.platform.startswith("linux"):
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    try:
        probe = subprocess.run(
            [setpriv, "--pdeathsig", "KILL", "--", "true"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    if probe.returncode != 0:
        return ()
    return (setpriv, "--pdeathsig", "KILL", "--")


class HarnessRegistry:
    """Every harness process one backend started, by owner; thread-safe.

    Args:
        spawn_threads: Worker threads for the blocking part of a start (and
            for waiting on a harness at shutdown). They live as long as the
            registry, which matters on Linux: the kernel kills a harness when
            the *thread* that started it exits. :meth:`prestart` starts them
            all ahead of time, so that no asyncio loop ever pays for a
            ``Thread.start()`` when it hands work over.
    """

    def __init__(self, spawn_threads: int = 16) -> None:
        self._lock = threading.Lock()
        self._by_owner: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._abandoned: set[str] = set()
        # Owners whose harnesses were killed on purpose (kill()): what release()
        # then finds still running is not a leftover worth a warning.
        self._killed: set[str] = set()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=spawn_threads, thread_name_prefix="agy-trio-harness-start"
        )
        self._spawn_threads = spawn_threads
        self._closed = False
        self.started = 0

    def prestart(self, timeout: float = 10.0) -> None:
        """Start every worker thread now (blocking; call it from a worker thread).

        ``ThreadPoolExecutor`` starts a thread on the first submissions that
        find none idle, inside ``submit``: on an asyncio loop, that is a
        ``Thread.start()`` (and a wait for the new thread to run) blocking
        every agent of the loop. Holding each worker at a barrier until all
        exist makes every submission here start one.
        """
        prestart_threads(self._executor, self._spawn_threads, timeout)

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        """Where blocking process work (start-up handshakes, reaping) runs."""
        return self._executor

    def register(self, owner: str, process: subprocess.Popen[bytes]) -> bool:
        """Remember ``process`` as ``owner``'s.

        Returns:
            False if ``owner`` was abandoned meanwhile: the caller must kill the process.
        """
        with self._lock:
            self._by_owner.setdefault(owner, []).append(process)
            self.started += 1
            return owner not in self._abandoned and not self._closed

    def abandon(self, owner: str) -> None:
        """Mark ``owner``'s start-up as given up: a process registered later is killed at once."""
        with self._lock:
            self._abandoned.add(owner)

    def pids(self, owner: str | None = None) -> list[int]:
        """PIDs of the live harnesses of ``owner`` (or of every owner)."""
        with self._lock:
            groups = [self._by_owner.get(owner, [])] if owner else list(self._by_owner.values())
            return [p.pid for group in groups for p in group if p.poll() is None]

    def owners(self) -> list[str]:
        """Owners that still have a process on record."""
        with self._lock:
            return list(self._by_owner)

    def kill(self, owner: str) -> int:
        """Send SIGKILL to every live harness of ``owner`` (does not reap); any thread.

        Returns:
            How many processes were signalled.
        """
        with self._lock:
            processes = list(self._by_owner.get(owner, []))
            if processes:
                self._killed.add(owner)
        return len(_kill_live(processes))

    def release(self, owner: str, *, timeout: float = 5.0) -> list[int]:
        """Kill what is left of ``owner``'s harnesses, reap them and forget the owner.

        Blocking (it waits for the processes to exit): call it from a worker thread.

        Returns:
            The PIDs that were still running and had to be killed.
        """
        with self._lock:
            processes = self._by_owner.pop(owner, [])
            self._abandoned.discard(owner)
            killed_on_purpose = owner in self._killed
            self._killed.discard(owner)
        leftovers = _kill_live(processes)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                process.wait(timeout=timeout)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()
        if leftovers and not killed_on_purpose:
            log.warning("killed leftover harness process(es) of %s: %s", owner, leftovers)
        return leftovers

    def retire(
        self, owner: str, grace: float, threads: Iterable[threading.Thread] = ()
    ) -> list[int]:
        """Let ``owner``'s harnesses exit on their own, then kill, reap and forget them.

        Each harness's stdin is closed (the harness exits on end-of-file) and
        it gets ``grace`` seconds to exit; whatever is left is then killed.
        ``threads`` (the SDK's stderr readers) are joined before the pipes
        close. Blocking: call it from a worker thread (see :meth:`retire_async`).

        Returns:
            The PIDs that did not exit within the grace and had to be killed.
        """
        with self._lock:
            processes = list(self._by_owner.get(owner, []))
        for process in processes:
            if process.stdin is not None:
                with contextlib.suppress(OSError, ValueError):
                    process.stdin.close()
        deadline = time.monotonic() + grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        late = _kill_live(processes)
        for thread in threads:
            thread.join(timeout=1.0)
        leftovers = self.release(owner)  # reaps; also kills one registered meanwhile
        return late + [pid for pid in leftovers if pid not in late]

    async def retire_async(
        self, owner: str, grace: float, threads: Iterable[threading.Thread] = ()
    ) -> list[int]:
        """:meth:`retire` without blocking the calling asyncio loop."""
        loop = asyncio.get_running_loop()
        threads = list(threads)
        try:
            return await loop.run_in_executor(self._executor, self.retire, owner, grace, threads)
        except RuntimeError:  # the executor is shut down: kill now, then reap here
            self.kill(owner)
            return self.release(owner)

    async def release_async(self, owner: str) -> list[int]:
        """:meth:`release` without blocking the calling asyncio loop."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self.release, owner)
        except RuntimeError:  # the executor is shut down: do it here, it is quick after a kill
            return self.release(owner)

    def close(self) -> list[int]:
        """Kill and reap every harness left, then stop the worker threads (blocking).

        Returns:
            The PIDs that had to be killed.
        """
        with self._lock:
            self._closed = True
        leftovers: list[int] = []
        for owner in self.owners():
            leftovers.extend(self.release(owner))
        self._executor.shutdown(wait=True, cancel_futures=True)
        return leftovers


def _kill_live(processes: Iterable[subprocess.Popen[bytes]]) -> list[int]:
    """Send SIGKILL to those of ``processes`` still running; return their PIDs."""
    killed: list[int] = []
    for process in processes:
        if process.poll() is None:
            killed.append(process.pid)
            with contextlib.suppress(OSError):
                process.kill()
    return killed


def prestart_threads(
    executor: concurrent.futures.ThreadPoolExecutor, count: int, timeout: float = 10.0
) -> None:
    """Make ``executor`` start ``count`` worker threads now (blocking).

    ``ThreadPoolExecutor`` starts a thread inside ``submit`` whenever no worker
    is idle; holding each submitted job at a barrier until all have started
    makes every submission here start one, and later submissions (up to
    ``count`` at once) find an idle worker.
    """
    barrier = threading.Barrier(count + 1)
    futures = [executor.submit(barrier.wait, timeout) for _ in range(count)]
    try:
        barrier.wait(timeout)
    except threading.BrokenBarrierError:
        log.debug("not every worker thread started within %.0f s", timeout)
    concurrent.futures.wait(futures, timeout)


def host_executor(name: str, threads: int = 4) -> concurrent.futures.ThreadPoolExecutor:
    """A default executor for an asyncio host loop, its threads already started (blocking).

    The loop's own default executor starts its threads lazily, on the loop:
    asyncio's ``getaddrinfo`` (every WebSocket connection the SDK opens to a
    harness, by host name) would then pay for a ``Thread.start()`` there.
    """
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=threads, thread_name_prefix=f"{name}-worker"
    )
    prestart_threads(executor, threads)
    return executor


def sweep_orphans(owner_prefix: str) -> list[int]:
    """Kill child harnesses whose :data:`HARNESS_OWNER_ENV` starts with ``owner_prefix``.

    A last resort for harnesses the registry never saw (started by the SDK's
    own spawn). Needs ``psutil``; without it, returns an empty list.

    Returns:
        The PIDs killed.
    """
    try:
        import psutil  # an optional dependency
    except ImportError:
        return []
    killed: list[int] = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() != "localharness":
                continue
            owner = child.environ().get(HARNESS_OWNER_ENV, "")
            if owner.startswith(owner_prefix):
                child.kill()
                killed.append(child.pid)
        except (psutil.Error, OSError):
            continue
    return killed
