"""What every agent of one :class:`AntigravityBackend` shares: :class:`BackendContext`.

The backend builds one context when it starts and gives it to each agent it
creates; the agents' parts (their SDK conversation, its recovery, their turns)
read their settings from it and reach the harness processes through it, never
through the backend object itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from agy_trio.adapters.antigravity.hibernation_stats import HibernationStats
from agy_trio.adapters.antigravity.launcher import HarnessLauncher
from agy_trio.adapters.antigravity.pool import HarnessPool
from agy_trio.adapters.antigravity.retry import RetryPolicy
from agy_trio.adapters.antigravity.transient import ConnectionRetry
from agy_trio.core.validation import (
    attrs_validator,
    instance_of,
    optional,
    positive_int,
    positive_number,
)

_seconds = attrs_validator(positive_number)
# Checked here, not when the first turn builds its stream: a bad size must
# fail the backend's construction, not every chat.
_count = attrs_validator(positive_int)

__all__ = ["AgentSettings", "BackendContext", "Counters"]


class Counters:
    """Event counters of one backend, safe to bump from any host thread.

    Attributes:
        reopens: SDK sessions reopened after a fatal error or a clear.
        retries: Turns retried under the :class:`RetryPolicy`.
        reconnects: Model requests asked again after a connection failure
            (see :class:`~agy_trio.adapters.antigravity.transient.ConnectionRetry`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reopens = 0
        self.retries = 0
        self.reconnects = 0

    def count(self, counter: str) -> None:
        """Add one to ``counter`` (``"reopens"``, ``"retries"`` or ``"reconnects"``)."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)


@attrs.frozen
class AgentSettings:
    """The options of an :class:`AntigravityBackend` that its agents follow, checked once.

    Attributes:
        retry: The retry policy, or None.
        connection_retry: Retrying requests that did not get through, or None.
        shutdown_grace: Seconds a harness gets to exit on its own before it is killed.
        cancel_grace: Seconds a cancelled turn gets to wind down before its task is cancelled.
        unreachable_timeout: Seconds into an attempt after which a connection
            failure the harness reported ends it (see
            :mod:`~agy_trio.adapters.antigravity.reachability`).
        stream_high_water: Events buffered per turn before the SDK side waits.
        stream_batch_max: Most events handed to Trio at once.
        hibernate_after: Seconds without a turn after which an agent
            hibernates (see :mod:`~agy_trio.adapters.antigravity.hibernation`);
            None: never.

    Raises:
        ConfigError: An option is invalid (the field is named).
    """

    retry: RetryPolicy | None = attrs.field(
        validator=attrs_validator(optional(instance_of(RetryPolicy)))
    )
    connection_retry: ConnectionRetry | None = attrs.field(
        validator=attrs_validator(optional(instance_of(ConnectionRetry)))
    )
    shutdown_grace: float = attrs.field(validator=_seconds)
    cancel_grace: float = attrs.field(validator=_seconds)
    unreachable_timeout: float = attrs.field(validator=_seconds)
    stream_high_water: int = attrs.field(validator=_count)
    stream_batch_max: int = attrs.field(validator=_count)
    hibernate_after: float | None = attrs.field(
        default=None, kw_only=True, validator=attrs_validator(optional(positive_number))
    )


@attrs.frozen
class BackendContext:
    """The settings and shared machinery of one backend, as its agents see them.

    Attributes:
        pool: The harness processes, shared by the agents; it also holds the
            backend's tag, its registry of processes, the harness command
            prefix and the SDK facts.
        root: The backend's temporary folder (default folders live under it).
        settings: The backend's options its agents follow.
        counters: Reopens and retries so far.
        hibernation: Hibernations and wakes so far.
        forget: Called in Trio with an agent that ended, to drop it from the backend.
    """

    pool: HarnessPool
    root: Path
    settings: AgentSettings
    counters: Counters
    forget: Callable[[Any], None]
    hibernation: HibernationStats = attrs.field(factory=HibernationStats)

    def owner(self, agent_id: str) -> str:
        """The key of the agent ``agent_id``'s conversation (``<tag>/<agent id>``), for logs."""
        return f"{self.pool.tag}/{agent_id}"

    def launcher(self, owner: str) -> HarnessLauncher:
        """The launcher that gives the conversation of ``owner`` its place on a pooled harness.

        Each conversation has one launcher for its whole life, reopens included.
        """
        return HarnessLauncher(self.pool, owner)
