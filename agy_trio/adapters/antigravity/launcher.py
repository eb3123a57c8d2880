"""Giving an SDK conversation its harness without blocking the loop, and taking it back.

Left to itself, the SDK's ``LocalConnectionStrategy`` (local_connection.py)
starts each agent's ``localharness``:

* with *blocking* calls on the asyncio loop (``Popen`` and a ``read()`` of the
  harness's first answer), freezing every other agent on that loop for ~80 ms
  per start;
* after a scan of ``importlib.metadata`` for the binary and the SDK version;
* leaking the process when the start-up is cancelled (its clean-up only catches
  ``Exception``, and ``asyncio.CancelledError`` is not one).

At the end it waits for the process with a blocking ``Popen.wait`` (up to
180 s) and a ``join`` of its stderr reader, again on the loop.

:func:`install_launcher` replaces the strategy's start-up, on one strategy
instance, with :meth:`HarnessLauncher.connect`, which works in three steps:

1. :func:`harness_spec` reads the settings that belong to the *process* off
   the strategy: binary, environment, storage directory, and the
   ``InputConfig`` handshake;
2. :meth:`HarnessLauncher.open_harness` provides a running harness for that
   spec: it starts one in a worker thread (the loop stays free) and records it
   in the :class:`~agy_trio.adapters.antigravity.harness.HarnessRegistry`
   under the launcher's owner the moment it exists;
3. the SDK's own ``_connect_websocket`` opens the conversation's WebSocket on
   that harness (each conversation is its own WebSocket to the harness's port).

At the end, :func:`detach_process` takes the process away from the SDK's
blocking shutdown, and the launcher's :meth:`~HarnessLauncher.retire_async`,
:meth:`~HarnessLauncher.kill` and :meth:`~HarnessLauncher.release_async` stop
it off the loop. Everything the rest of the backend does to a harness goes
through the launcher of the conversation on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import platform
import struct
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from agy_trio.adapters.antigravity.harness import HARNESS_OWNER_ENV, HarnessRegistry

__all__ = [
    "HARNESS_PATH_ENV",
    "Harness",
    "HarnessLauncher",
    "HarnessSpec",
    "SdkFacts",
    "current_launcher",
    "detach_process",
    "harness_spec",
    "install_launcher",
    "sdk_facts",
]

log = logging.getLogger("agy_trio.antigravity.harness")

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


@attrs.frozen
class HarnessSpec:
    """What a harness process is started with: the settings of the process, not of a conversation.

    Attributes:
        argv: The command: the parent-death prefix, then the binary.
        env: The process's whole environment (None: Python's own).
        settings_env: The variables the SDK config set (also sent in the handshake).
        storage_directory: Where the harness keeps every conversation's database.
        payload: The serialised ``InputConfig`` written to the harness's stdin.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] | None = attrs.field(eq=False)
    settings_env: Mapping[str, str] = attrs.field(eq=False)
    storage_directory: str
    payload: bytes = attrs.field(eq=False)

    @property
    def key(self) -> tuple[object, ...]:
        """What two conversations must agree on to be served by one harness process.

        The binary, the storage directory and the environment the config set,
        without :data:`~agy_trio.adapters.antigravity.harness.HARNESS_OWNER_ENV`
        (a tag of whoever started the process, not a setting).
        """
        env = tuple(sorted((k, v) for k, v in self.settings_env.items() if k != HARNESS_OWNER_ENV))
        return (self.argv[-1], self.storage_directory, env)


def harness_spec(
    strategy: Any,
    prefix: Sequence[str],
    facts: SdkFacts | None,
    *,
    use_interactions_api: bool = False,
) -> HarnessSpec:
    """Read a harness's process settings off an SDK ``LocalConnectionStrategy``.

    What the SDK's start-up computes before it spawns (local_connection.py:1476-1500).
    """
    from google.antigravity.connections.local import local_connection
    from google.antigravity.proto import localharness_pb2

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
    return HarnessSpec(
        argv=(*prefix, strategy._binary_path),
        env={**os.environ, **env_map} if strategy._env is not None else None,
        settings_env=env_map,
        storage_directory=strategy._save_dir or "",
        payload=input_config.SerializeToString(),
    )


@attrs.frozen
class Harness:
    """A running harness process and what a conversation needs to connect to it.

    Attributes:
        process: The process.
        port: The port of its WebSocket server.
        api_key: The token its WebSocket server expects.
    """

    process: subprocess.Popen[bytes] = attrs.field(eq=False)
    port: int
    api_key: str = attrs.field(repr=False)


class HarnessLauncher:
    """The harness of one SDK conversation: started without blocking the loop, stopped likewise.

    Installed on the SDK's connection strategy by :func:`install_launcher`
    while :data:`current_launcher` names it. Every process it starts is
    recorded in ``registry`` under ``owner``; its :meth:`kill`,
    :meth:`release_async` and :meth:`retire_async` act on those processes only.

    Args:
        registry: Where the started process is recorded.
        owner: The key the process is recorded under.
        prefix: Command prefix (see
            :func:`~agy_trio.adapters.antigravity.harness.pdeathsig_prefix`).
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

    async def connect(
        self, strategy: Any, *, use_interactions_api: bool = False
    ) -> tuple[subprocess.Popen[bytes], Any, str]:
        """Stand in for the strategy's ``_spawn_harness_and_connect_ws``.

        Returns:
            What the SDK's method returns: the process, the conversation's
            WebSocket and its URL.
        """
        spec = harness_spec(
            strategy, self.prefix, self.facts, use_interactions_api=use_interactions_api
        )
        harness = await self.open_harness(spec)
        connect: Callable[..., Any] = strategy._connect_websocket
        ws, ws_url = await connect(harness.port, harness.api_key, harness.process)
        return harness.process, ws, ws_url

    async def open_harness(self, spec: HarnessSpec) -> Harness:
        """A running harness for ``spec``: a new process, recorded under this launcher's owner."""
        from google.antigravity.proto import localharness_pb2

        process, answer = await self.start(spec.argv, spec.env, spec.payload)
        output_config = localharness_pb2.OutputConfig()
        output_config.ParseFromString(answer)
        return Harness(process, output_config.port, output_config.api_key)

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

    # -- the end of the conversation's hold on its harness

    def kill(self) -> None:
        """Kill this launcher's harness now (does not reap); any thread."""
        self.registry.kill(self.owner)

    async def release_async(self) -> list[int]:
        """Kill what is left of this launcher's harness and reap it, off the loop.

        Returns:
            The PIDs that were still running.
        """
        return await self.registry.release_async(self.owner)

    async def retire_async(
        self, grace: float, threads: Iterable[threading.Thread] = ()
    ) -> list[int]:
        """Let this launcher's harness exit on its own within ``grace`` s, off the loop.

        See :meth:`~agy_trio.adapters.antigravity.harness.HarnessRegistry.retire`.

        Returns:
            The PIDs that had to be killed.
        """
        return await self.registry.retire_async(self.owner, grace, threads)


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
    strategy instance (nothing global changes) with the launcher's
    :meth:`~HarnessLauncher.connect`. The SDK version is pinned, and the
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
        return await launcher.connect(strategy, use_interactions_api=use_interactions_api)

    strategy._spawn_harness_and_connect_ws = spawn_harness_and_connect_ws
    return True


def detach_process(connection: Any) -> tuple[subprocess.Popen[bytes], threading.Thread | None]:
    """Take the harness process away from an SDK ``LocalConnection`` before its ``disconnect``.

    The SDK's ``disconnect`` (local_connection.py:571-630) closes the
    WebSocket, then the harness's stdin, then waits for the process with a
    blocking ``Popen.wait`` (up to 180 s) and joins its stderr reader, all on
    the asyncio loop. Without the process it does only the first part, which
    is asynchronous; the caller then does the rest, in the same order, off the
    loop (:meth:`HarnessLauncher.retire_async`). Only this one connection
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
