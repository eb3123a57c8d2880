"""How a worker connects to Temporal and how much it holds: :class:`WorkerOptions`."""

from __future__ import annotations

import attrs

__all__ = ["WorkerOptions"]


@attrs.frozen
class WorkerOptions:
    """How a worker connects and how much it holds.

    Attributes:
        target: The Temporal frontend, ``HOST:PORT``.
        namespace: The Temporal namespace.
        task_queue: The queue shared by every worker (and the clients).
        identity: The worker's name in Temporal; host name, PID and a random
            suffix by default.
        max_conversations: Live SDK conversations kept for their next turn.
        max_concurrent_turns: Turns played at once.
        heartbeat_interval: Seconds between heartbeats (progress) of a turn.
        idle_timeout: Seconds after which an unused live conversation is dropped.
        shutdown_grace: Seconds running turns get to finish when the worker
            stops; the rest are handed to other workers.
        sticky_workflow_timeout: Seconds a workflow task waits for the worker
            that has its workflow cached before any worker replays it. Part of
            the recovery time after a worker dies: Temporal's default is 10 s.
    """

    target: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "agy-trio"
    identity: str | None = None
    max_conversations: int = 32
    max_concurrent_turns: int = 100
    heartbeat_interval: float = 0.2
    idle_timeout: float = 600.0
    shutdown_grace: float = 10.0
    sticky_workflow_timeout: float = 1.0
