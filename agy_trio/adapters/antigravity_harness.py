"""Starting, tracking and stopping the SDK's ``localharness`` processes.

Every SDK ``Agent`` runs its own harness process (a 131 MB Go binary). Left to
itself the SDK:

* starts it with *blocking* calls on the asyncio loop (``Popen`` and a
  ``read()`` of the harness's first answer), freezing every other agent on that
  loop for ~80 ms per start;
* leaks it when the start-up is cancelled (its clean-up only catches
  ``Exception``, and ``asyncio.CancelledError`` is not one);
* leaves it running when Python dies while something else still holds the
  harness's stdin open (the harness only exits on end-of-file).

It also blocks the loop at shutdown (``Popen.wait`` for up to 180 s, then a
``join`` of its stderr reader) and scans ``importlib.metadata`` on every start
(the harness binary's path and the SDK's version).

This module fixes all of it. :class:`HarnessRegistry` remembers every process
it started, per owner, so an owner's processes can be killed and reaped at any
time (a cancelled start, an agent shut down, the backend closing), and stops
them gracefully off the loop (:meth:`HarnessRegistry.retire_async`, with
:func:`detach_process` taking the process away from the SDK's blocking wait).
:class:`HarnessLauncher` replaces the SDK's blocking spawn with one that runs
in a worker thread (the loop stays free) and registers the process the moment
it exists. :func:`sdk_facts` looks up the binary and the version once, in a
worker thread. On Linux the harness is started through ``setpriv --pdeathsig
KILL``, so the kernel kills it when the thread that started it dies, which
includes any crash of the Python process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import os
import platform
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "HARNESS_OWNER_ENV",
    "HARNESS_PATH_ENV",
    "HarnessLauncher",
    "HarnessRegistry",
    "SdkFacts",
    "current_launcher",
    "detach_process",
    "host_executor",
    "install_launcher",
    "pdeathsig_prefix",
    "prestart_threads",
    "sdk_facts",
    "sweep_orphans",
]

log = logging.getLogger("agy_trio.antigravity.harness")

HARNESS_OWNER_ENV = "AGY_TRIO_HARNESS_OWNER"
"""Environment variable naming the backend and agent a harness belongs to.

It is visible in ``ps e`` output and lets a sweep find harnesses started by a
path this module did not control.
"""

HARNESS_PATH_ENV = "ANTIGRAVITY_HARNESS_PATH"
"""The SDK's variable naming the harness binary (local_connection.py:769).

Found in an agent's ``env``, it spares the SDK its per-start search of the
installed files; :func:`install_launcher` removes it again before the harness
starts, so the harness's environment is what it would have been.
"""

# How long a harness may take to write its first answer (port and key) on
# stdout before its start counts as failed.
_HANDSHAKE_TIMEOUT = 60.0


@attrs.frozen
class SdkFacts:
    """What the SDK looks up in ``importlib.metadata`` on every start, looked up once.

    Attributes:
        binary_path: The ``localharness`` binary the SDK would start (None if
            it cannot be found: the SDK then looks, and fails, by itself).
        version: The SDK's version, sent to the harness.
    """

    binary_path: str | None
    version: str


def sdk_facts() -> SdkFacts:
    """Look up the harness binary and the SDK version the way the SDK does (blocking).

    The SDK does this on the asyncio loop for every agent it starts
    (local_connection.py:968 and :1499): a scan of the package's installed
    files that takes milliseconds. A backend calls this once, in a worker
    thread, when it starts. The binary's path honours ``ANTIGRAVITY_HARNESS_PATH``
    in the environment at that moment.
    """
    from google.antigravity.connections.local import local_connection

    try:
        path: str | None = local_connection._get_default_binary_path({})
    except Exception as exc:  # e.g. FileNotFoundError: let the SDK report it per agent
        log.debug("the harness binary was not found ahead of time: %s", exc)
        path = None
    return SdkFacts(binary_path=path, version=local_connection._get_sdk_version())


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
        killed = 0
        for process in processes:
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    process.kill()
                    killed += 1
        return killed

    def release(self, owner: str, *, timeout: float = 5.0) -> list[int]:
        """Kill what is left of ``owner``'s harnesses, reap them and forget the owner.

        Blocking (it waits for the processes to exit): call it from a worker thread.

        Returns:
            The PIDs that were still running and had to be killed.
        """
        with self._lock:
            processes = self._by_owner.pop(owner, [])
            self._abandoned.discard(owner)
        leftovers: list[int] = []
        for process in processes:
            if process.poll() is None:
                leftovers.append(process.pid)
                with contextlib.suppress(OSError):
                    process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                process.wait(timeout=timeout)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()
        if leftovers:
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
        late: list[int] = []
        for process in processes:
            if process.poll() is None:
                late.append(process.pid)
                with contextlib.suppress(OSError):
                    process.kill()
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


class HarnessLauncher:
    """Starts the harness of one SDK agent without blocking the asyncio loop.

    Installed on the SDK's connection strategy by :func:`install_launcher`
    while :data:`current_launcher` names it.

    Args:
        registry: Where the started process is recorded.
        owner: The key the process is recorded under.
        prefix: Command prefix (see :func:`pdeathsig_prefix`).
        facts: The SDK version and harness binary looked up ahead of time
            (see :func:`sdk_facts`); None to ask the SDK on every start.
    """

    def __init__(
        self,
        registry: HarnessRegistry,
        owner: str,
        prefix: Sequence[str],
        facts: SdkFacts | None = None,
    ) -> None:
        self.registry = registry
        self.owner = owner
        self.prefix = tuple(prefix)
        self.facts = facts

    async def start(
        self, argv: Sequence[str], env: Mapping[str, str] | None, payload: bytes
    ) -> tuple[subprocess.Popen[bytes], bytes]:
        """Start the harness, send it ``payload`` and return it with its first answer.

        If the caller is cancelled, the process is killed (as soon as it exists,
        should the worker thread not have started it yet) before the
        cancellation propagates, so a cancelled start-up leaves nothing behind.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self.registry.executor, self._start_blocking, list(argv), env, payload
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.registry.abandon(self.owner)
            self.registry.kill(self.owner)
            # The worker thread returns promptly now: its read sees end-of-file.
            # Then reap, so that the process is gone, not merely dying, when the
            # cancellation reaches the caller.
            with contextlib.suppress(BaseException):
                await future
            with contextlib.suppress(BaseException):
                await self.registry.release_async(self.owner)
            raise

    def _start_blocking(
        self, argv: list[str], env: Mapping[str, str] | None, payload: bytes
    ) -> tuple[subprocess.Popen[bytes], bytes]:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
        )
        if not self.registry.register(self.owner, process):
            process.kill()
        assert process.stdin is not None
        assert process.stdout is not None
        # A harness that never answers would block this thread forever.
        timer = threading.Timer(_HANDSHAKE_TIMEOUT, _kill_quietly, (process,))
        timer.daemon = True
        timer.start()
        try:
            try:
                process.stdin.write(struct.pack("<I", len(payload)) + payload)
                process.stdin.flush()
            except OSError as exc:
                raise RuntimeError(f"Failed to send the harness its configuration: {exc}") from exc
            raw_length = process.stdout.read(4)
            if len(raw_length) < 4:
                raise RuntimeError(
                    f"Failed to read length from stdout. Stderr: {_drain_stderr(process)}"
                )
            (length,) = struct.unpack("<I", raw_length)
            answer = process.stdout.read(length)
            if len(answer) < length:
                raise RuntimeError(
                    f"The harness stopped during start-up. Stderr: {_drain_stderr(process)}"
                )
        finally:
            timer.cancel()
        return process, answer


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


def _kill_quietly(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        process.kill()


def _drain_stderr(process: subprocess.Popen[bytes]) -> str:
    _kill_quietly(process)
    if process.stderr is None:
        return ""
    with contextlib.suppress(OSError, ValueError):
        return process.stderr.read().decode("utf-8", errors="replace")
    return ""


current_launcher: contextvars.ContextVar[HarnessLauncher | None] = contextvars.ContextVar(
    "agy_trio_harness_launcher", default=None
)
"""The launcher for the SDK agent being started in the current asyncio task."""

# What the SDK strategy must offer for the launcher to stand in for its spawn.
_STRATEGY_ATTRIBUTES = ("_spawn_harness_and_connect_ws", "_connect_websocket", "_binary_path")


def install_launcher(strategy: Any) -> bool:
    """Make ``strategy`` start its harness through :data:`current_launcher`.

    The SDK's ``LocalConnectionStrategy`` starts the harness in
    ``_spawn_harness_and_connect_ws``; this replaces that method on the one
    strategy instance (nothing global changes) with an equivalent that does the
    blocking part in a worker thread. The SDK version is pinned, and the
    replacement is only installed when the strategy has the attributes it
    relies on; otherwise the SDK's own spawn runs (blocking, but tracked by a
    sweep instead).

    Returns:
        Whether the launcher was installed.
    """
    launcher = current_launcher.get()
    if launcher is None or not all(hasattr(strategy, name) for name in _STRATEGY_ATTRIBUTES):
        return False
    env = getattr(strategy, "_env", None)
    if isinstance(env, dict) and HARNESS_PATH_ENV in env:
        # Put there only to spare the SDK its search (see sdk_agent_config):
        # the harness itself gets the environment it would have had.
        strategy._env = {k: v for k, v in env.items() if k != HARNESS_PATH_ENV}

    async def spawn_harness_and_connect_ws(
        *, use_interactions_api: bool = False
    ) -> tuple[subprocess.Popen[bytes], Any, str]:
        return await _spawn(strategy, launcher, use_interactions_api=use_interactions_api)

    strategy._spawn_harness_and_connect_ws = spawn_harness_and_connect_ws
    return True


async def _spawn(
    strategy: Any, launcher: HarnessLauncher, *, use_interactions_api: bool
) -> tuple[subprocess.Popen[bytes], Any, str]:
    """The SDK's harness start-up (local_connection.py:1476-1529), minus the blocking."""
    from google.antigravity.connections.local import local_connection
    from google.antigravity.proto import localharness_pb2

    facts = launcher.facts
    client_info = localharness_pb2.ClientInfo(
        language="python",
        version=facts.version if facts is not None else local_connection._get_sdk_version(),
        language_version=platform.python_version(),
        os=platform.system().lower(),
        os_version=platform.release(),
    )
    env_map = {str(k): str(v) for k, v in strategy._env.items()} if strategy._env else {}
    input_config = localharness_pb2.InputConfig(
        storage_directory=strategy._save_dir or "",
        client_info=client_info,
        env=env_map,
    )
    if use_interactions_api:
        input_config.use_interactions_api = True
    merged_env = {**os.environ, **env_map} if strategy._env is not None else None
    argv = [*launcher.prefix, strategy._binary_path]
    process, answer = await launcher.start(argv, merged_env, input_config.SerializeToString())
    output_config = localharness_pb2.OutputConfig()
    output_config.ParseFromString(answer)
    connect: Callable[..., Any] = strategy._connect_websocket
    ws, ws_url = await connect(output_config.port, output_config.api_key, process)
    return process, ws, ws_url


def detach_process(connection: Any) -> tuple[subprocess.Popen[bytes], threading.Thread | None]:
    """Take the harness process away from an SDK ``LocalConnection`` before its ``disconnect``.

    The SDK's ``disconnect`` (local_connection.py:571-630) closes the
    WebSocket, then the harness's stdin, then waits for the process with a
    blocking ``Popen.wait`` (up to 180 s) and joins its stderr reader, all on
    the asyncio loop. Without the process it does only the first part, which
    is asynchronous; the caller then does the rest, in the same order, off the
    loop (:meth:`HarnessRegistry.retire_async`). Only this one connection
    object changes.

    Returns:
        The process and the SDK's stderr reader thread.

    Raises:
        LookupError: The connection is not the SDK version this was written
            for (no process to take); the caller leaves the SDK alone then.
    """
    process = getattr(connection, "_process", None)
    if not isinstance(process, subprocess.Popen) or not hasattr(connection, "_stderr_thread"):
        raise LookupError("not a LocalConnection with a harness process")
    thread = connection._stderr_thread
    connection._process = None
    return process, thread if isinstance(thread, threading.Thread) else None


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
