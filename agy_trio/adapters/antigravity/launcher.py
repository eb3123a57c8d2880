"""Giving an SDK conversation its harness without blocking the loop, and taking it back.

Left to itself, the SDK's ``LocalConnectionStrategy`` (local_connection.py)
starts one ``localharness`` process per agent:

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
   spec: a place on one of the backend's pooled processes
   (:mod:`~agy_trio.adapters.antigravity.pool`), started in a worker thread
   if need be (the loop stays free);
3. the conversation's WebSocket is opened on that harness's port, as the SDK's
   ``_connect_websocket`` would (each conversation is a WebSocket of its own),
   finding another harness if this one turns out to be dying.

The SDK gets a :class:`ConversationProcess` rather than the process: what the
SDK does to "its" process (kill it when a start-up step fails, close its
stdin and wait for it at shutdown, drain its stderr with a thread) must touch
only its own conversation when the process serves others too. At the end,
:func:`detach_process` takes that view away from the SDK's shutdown, and the
launcher's :meth:`~HarnessLauncher.retire_async`, :meth:`~HarnessLauncher.kill`
and :meth:`~HarnessLauncher.release_async` give the conversation's place back
off the loop. Everything the rest of the backend does to a harness goes
through the launcher of the conversation on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from agy_trio.adapters.antigravity.harness_spec import (
    Harness,
    HarnessSpec,
    SdkFacts,
    harness_spec,
    sdk_facts,
)
from agy_trio.adapters.antigravity.process_view import (
    ConversationProcess,
    EmptyStderr,
    detach_process,
    skip_empty_stderr_readers,
)

if TYPE_CHECKING:
    from agy_trio.adapters.antigravity.pool import HarnessLease, HarnessPool

__all__ = [
    "HARNESS_PATH_ENV",
    "ConversationProcess",
    "EmptyStderr",
    "Harness",
    "HarnessLauncher",
    "HarnessSpec",
    "SdkFacts",
    "current_launcher",
    "detach_process",
    "harness_spec",
    "install_launcher",
    "sdk_facts",
    "skip_empty_stderr_readers",
]

log = logging.getLogger("agy_trio.antigravity.harness")

HARNESS_PATH_ENV = "ANTIGRAVITY_HARNESS_PATH"
"""The SDK's variable naming the harness binary (local_connection.py:769).

Found in an agent's ``env``, it spares the SDK its per-start search of the
installed files; :func:`install_launcher` removes it again before the harness
starts, so the harness's environment is what it would have been.
"""


# Connecting to a harness's WebSocket: attempts, and the pause before the first retry
# (doubled each time: about 3 s in all, the SDK's own budget).
_CONNECT_ATTEMPTS = 6
_CONNECT_BACKOFF = 0.05


class HarnessLauncher:
    """The harness side of one SDK conversation: its place on a pooled harness.

    Installed on the SDK's connection strategy by :func:`install_launcher`
    while :data:`current_launcher` names it, it stands in for the SDK's
    spawn: :meth:`open_harness` decides which harness the conversation gets
    (a place on one of the :class:`~agy_trio.adapters.antigravity.pool.HarnessPool`'s
    processes), and :meth:`connect` opens the conversation's WebSocket on it.
    The SDK gets a :class:`ConversationProcess` in place of the process.

    One launcher serves one conversation for its whole life: while it is
    *held* (:meth:`holding`, around a reopen of the SDK session), closing the
    SDK session keeps the place, so that the conversation comes back on the
    same harness, unless that harness died meanwhile.

    Args:
        pool: The backend's harness processes.
        owner: The conversation's owner key (``<backend tag>/<agent id>``), for logs.
    """

    def __init__(self, pool: HarnessPool, owner: str) -> None:
        self.pool = pool
        self.owner = owner
        self.lease: HarnessLease | None = None
        self._holds = 0
        self._socket: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening = False
        self._permit: Any = None  # the opening permits of the harness one is held of

    async def connect(
        self, strategy: Any, *, use_interactions_api: bool = False
    ) -> tuple[ConversationProcess, Any, str]:
        """Stand in for the strategy's ``_spawn_harness_and_connect_ws``.

        Returns:
            What the SDK's method returns: the conversation's view of the
            process, its WebSocket and its URL.
        """
        import websockets

        spec = harness_spec(
            strategy, self.pool.prefix, self.pool.facts, use_interactions_api=use_interactions_api
        )
        ws_url, error = "", None
        for attempt in range(_CONNECT_ATTEMPTS):
            harness = await self.open_harness(spec)
            await self._take_opening_permit()
            # Where the harness listens (the SDK tries "localhost" first, which
            # costs a getaddrinfo in a worker thread per conversation).
            ws_url = f"ws://127.0.0.1:{harness.port}/"
            try:
                # As the SDK connects, minus what a loopback socket to our own
                # child needs not: a proxy (looking one up reads the whole
                # environment) and compression (the harness offers none).
                ws = await websockets.connect(
                    ws_url,
                    additional_headers={"x-goog-api-key": harness.api_key},
                    max_size=None,
                    proxy=None,
                    compression=None,
                )
            except (OSError, websockets.WebSocketException) as exc:
                # A harness seen dying on its WebSockets may not have an exit
                # status yet: after a pause, open_harness sees it gone and
                # finds another (a new one if need be).
                error = exc
                await asyncio.sleep(_CONNECT_BACKOFF * 2**attempt)
                continue
            self._socket, self._loop = ws, asyncio.get_running_loop()
            return ConversationProcess(harness.process, self._abort), ws, ws_url
        raise RuntimeError(
            f"Failed to connect to WebSocket at {ws_url} after {_CONNECT_ATTEMPTS} attempts: "
            f"{error}"
        ) from error

    async def open_harness(self, spec: HarnessSpec) -> Harness:
        """The harness for a conversation with process settings ``spec``.

        The place this launcher holds, if its harness still runs and serves
        such conversations; else a new place from the pool (the old one, on a
        dead harness, is given back).
        """
        lease = self.lease
        if lease is not None:
            if lease.alive and lease.entry.key == spec.key:
                await asyncio.sleep(0)
                return lease.harness
            self.lease = None
            await self.pool.release(lease, grace=None)
        self.lease = await self.pool.lease(spec)
        return self.lease.harness

    @contextlib.asynccontextmanager
    async def opening(self) -> AsyncIterator[None]:
        """Around the SDK's start-up of the conversation (its ``__aenter__``).

        From the moment :meth:`connect` has chosen the harness until the block
        ends (the SDK has its answer to the conversation's configuration), the
        conversation holds one of the harness's
        :data:`~agy_trio.adapters.antigravity.pool.OPENING_LIMIT` permits to
        open a conversation.
        """
        self._opening = True
        try:
            yield
        finally:
            self._opening = False
            self._give_opening_permit()

    async def _take_opening_permit(self) -> None:
        lease = self.lease
        if not self._opening or lease is None or self._permit is lease.entry.opening:
            return
        self._give_opening_permit()
        await lease.entry.opening.async_acquire()
        self._permit = lease.entry.opening

    def _give_opening_permit(self) -> None:
        permit, self._permit = self._permit, None
        if permit is not None:
            permit.async_release()

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Keep this conversation's place on its harness while its SDK session is reopened.

        Inside, :meth:`retire_async` keeps the place; if the block ends with
        the conversation closed and not connected again, the place is then
        given back.
        """
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if self._holds == 0 and self.lease is not None and self._socket is None:
                await self.retire_async(self.pool.shutdown_grace)

    def _abort(self) -> None:
        """Cut this conversation's WebSocket now (any thread)."""
        ws, loop = self._socket, self._loop
        transport = getattr(ws, "transport", None)
        if transport is None or loop is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            transport.abort()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to cut
                loop.call_soon_threadsafe(transport.abort)

    # -- the end of the conversation's hold on its harness

    def kill(self) -> None:
        """Cut this conversation off its harness now; any thread.

        Its WebSocket is aborted, and its harness is killed if it carries no
        other conversation (and the place is not held for a reopen). Does not
        reap: :meth:`release_async` does.
        """
        self._abort()
        lease = self.lease
        if lease is not None and self._holds == 0:
            self.pool.kill_if_alone(lease)

    async def release_async(self) -> list[int]:
        """Give this conversation's place back now; a harness left unused is killed and reaped.

        Returns:
            The PIDs that had to be killed.
        """
        lease, self.lease, self._socket = self.lease, None, None
        if lease is None:
            await asyncio.sleep(0)
            return []
        return await self.pool.release(lease, grace=None)

    async def retire_async(
        self, grace: float, threads: Iterable[threading.Thread] = (), *, keep_warm: bool = False
    ) -> list[int]:
        """The conversation's SDK session is closed: give its place back, gently.

        A harness left without conversations gets ``grace`` seconds to exit on
        its own after end-of-file on its stdin, then is killed; one that
        carries other conversations goes on. While the launcher is held
        (:meth:`holding`), the place is kept. ``threads`` are the SDK's stderr
        readers of the conversation, which end at once (their stream is empty).
        ``keep_warm``: the conversation hibernates; a harness it leaves empty
        may be kept running for the next wake (see :meth:`HarnessPool.release`).

        Returns:
            The PIDs that had to be killed.
        """
        self._socket = None
        for thread in threads:
            thread.join(timeout=0)  # already over: its stream was empty
        lease = self.lease
        if lease is None or self._holds:
            await asyncio.sleep(0)
            return []
        self.lease = None
        return await self.pool.release(lease, grace=grace, keep_warm=keep_warm)


current_launcher: contextvars.ContextVar[HarnessLauncher | None] = contextvars.ContextVar(
    "agy_trio_harness_launcher", default=None
)
"""The launcher for the SDK agent being started in the current asyncio task."""

# What the SDK strategy must offer for the launcher to stand in for its spawn.
_STRATEGY_ATTRIBUTES = ("_spawn_harness_and_connect_ws", "_binary_path", "_save_dir", "_env")


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
    ) -> tuple[ConversationProcess, Any, str]:
        return await launcher.connect(strategy, use_interactions_api=use_interactions_api)

    strategy._spawn_harness_and_connect_ws = spawn_harness_and_connect_ws
    return True
