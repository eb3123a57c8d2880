"""Workers: the turns of conversation workflows, played on an agy_trio runtime.

A worker is a Trio program. Its agents live in an ordinary agy_trio runtime
(``agy-trio worker`` opens one on the Antigravity backend, exactly as
``agy-trio run`` does); the Temporal worker runs on an asyncio host thread
beside it (:class:`~agy_trio.adapters.aio_host.AioHost`), and each turn
activity crosses into Trio once, for the whole turn
(:meth:`~agy_trio.adapters.aio_host.AioHost.call_trio`).

The worker has two halves on the two sides of that line, each knowing the
other only through :mod:`~agy_trio.adapters.temporal.crossing`:
:class:`~agy_trio.adapters.temporal.temporal_side.TemporalSide` (asyncio: the
client, the workers, the activities, every workflow call) and
:class:`~agy_trio.adapters.temporal.turn_player.TurnPlayer` (Trio: the live
SDK conversations and their turns). :class:`TurnService` holds both.

Nothing but Temporal is shared between workers, so a conversation moves to
any worker on any machine. While a turn runs, what it has shown so far
travels in the activity's heartbeat details (several times a second, never
written to the workflow's history); the client reads them from the
workflow's description.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from agy_trio.adapters.aio_host import AioHost, AsyncioHost
from agy_trio.adapters.temporal.crossing import ToolCallNotRepeated
from agy_trio.adapters.temporal.messages import worker_queue
from agy_trio.adapters.temporal.options import WorkerOptions
from agy_trio.adapters.temporal.temporal_side import TemporalSide
from agy_trio.adapters.temporal.turn_player import QUOTA_FRESH, TurnPlayer
from agy_trio.core.quota import key_fingerprint
from agy_trio.errors import ConfigError

if TYPE_CHECKING:
    from agy_trio.core.runtime import Runtime
    from agy_trio.core.settings import AgentConfig

__all__ = [
    "QUOTA_FRESH",
    "ToolCallNotRepeated",
    "TurnService",
    "WorkerOptions",
    "claim_scratch_dir",
    "serve_worker",
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_scratch_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """A folder of this worker process's own for the SDK's files; clear those of dead workers.

    A worker killed with SIGKILL cannot remove the files its harnesses wrote
    (HOME, conversation databases); the next worker started on the machine
    with the same HOME does, here. Folders of live workers are left alone.

    Args:
        root: Where worker folders live; ``$XDG_CACHE_HOME/agy-trio/workers``
            (``~/.cache/agy-trio/workers``) by default.

    Returns:
        A new, empty folder named after this process.
    """
    if root is None:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(cache) / "agy-trio" / "workers"
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    for child in base.iterdir():
        _, _, rest = child.name.partition("pid-")
        pid_text = rest.split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(child, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"pid-{os.getpid()}-", dir=base))


class TurnService:
    """One worker: its Temporal half and its Trio half, and who it is.

    The arguments are :class:`TurnPlayer`'s (``host`` is where the Temporal
    half runs); the worker's identity and queue are made here.

    Attributes:
        identity: The worker's name in Temporal.
        own_queue: The queue of this worker alone.
        player: The Trio half (live conversations, turns).
        temporal: The asyncio half (client, workers, activities).
    """

    def __init__(
        self, rt: Runtime, agent_defaults: AgentConfig, options: WorkerOptions, host: AsyncioHost
    ) -> None:
        self.identity = options.identity or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        )
        self.own_queue = worker_queue(options.task_queue, self.identity)
        endpoint_key = agent_defaults.api_key or agent_defaults.base_url or ""
        quota_key = key_fingerprint(endpoint_key) if endpoint_key else ""
        # Each half sees the other only through its protocol in crossing.py;
        # the Temporal side meets its player when it connects (serve_worker).
        self.temporal = TemporalSide(options, self.identity, self.own_queue, quota_key, host)
        self.player = TurnPlayer(rt, agent_defaults, options, self.own_queue, host, self.temporal)

    @property
    def held(self) -> list[str]:
        """Conversation ids whose live SDK conversation this worker holds."""
        return self.player.held

    @property
    def turns_played(self) -> int:
        """Turns this worker played to their end."""
        return self.player.turns_played

    @property
    def conversations_built(self) -> int:
        """SDK conversations this worker built (fresh, or replayed from a transcript)."""
        return self.player.conversations_built


async def serve_worker(
    rt: Runtime,
    agent_defaults: AgentConfig,
    options: WorkerOptions,
    *,
    host: AsyncioHost | None = None,
    stop: trio.Event | None = None,
    task_status: trio.TaskStatus[TurnService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve turns of conversation workflows on ``rt`` until ``stop`` is set (or cancelled).

    The Temporal client and workers run on an asyncio host; turns cross into
    Trio to run on ``rt``. When ``stop`` is set the worker leaves gracefully:
    the conversations it holds are released to other workers, it stops taking
    turns, and running turns get ``options.shutdown_grace`` seconds to finish
    before they are handed to another worker. Cancelling it is the hard stop:
    running turns are handed over at once.

    Args:
        rt: The runtime the agents live in.
        agent_defaults: The endpoint every agent uses on this worker.
        options: Connection and capacity.
        host: Where the Temporal worker's asyncio code runs: a dedicated
            :class:`~agy_trio.adapters.aio_host.AioHost` thread by default, or a
            :class:`~agy_trio.adapters.guest.GuestHost` when this Trio run is a
            guest of an asyncio loop (see docs/scale-out.md for which is faster).
        stop: Set it to make the worker leave gracefully.
        task_status: Started with the :class:`TurnService` once polling.

    Raises:
        ConfigError: An option is invalid.
    """
    if options.max_conversations < 1 or options.max_concurrent_turns < 1:
        raise ConfigError("max_conversations and max_concurrent_turns must be >= 1")
    if host is None:
        host = AioHost("agy-trio-temporal-worker", cancel_grace=options.shutdown_grace + 5.0)
    service = TurnService(rt, agent_defaults, options, host)
    # Turns run in this nursery (the host's calls into Trio): it stays open
    # while the worker drains, so a graceful stop lets them finish.
    async with trio.open_nursery() as nursery:
        await host.start(nursery)
        try:
            await host.run(service.temporal.connect, service.player)
            nursery.start_soon(service.player.evict_idle)
            task_status.started(service)
            async with trio.open_nursery() as waiting:

                async def until_the_workers_stop() -> None:
                    await host.run(service.temporal.wait_stopped)
                    waiting.cancel_scope.cancel()

                waiting.start_soon(until_the_workers_stop)
                if stop is not None:
                    await stop.wait()
                    waiting.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(options.shutdown_grace + 5.0):
                    held = service.player.held_workflows
                    with contextlib.suppress(Exception):
                        await host.run(service.temporal.drain, held)
                nursery.cancel_scope.cancel()
                await host.aclose(options.shutdown_grace)
