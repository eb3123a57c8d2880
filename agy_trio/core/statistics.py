"""Snapshots of a runtime's state and counters (``Runtime.statistics()``)."""

from __future__ import annotations

import attrs

__all__ = ["CommandStatistics", "RuntimeStatistics"]


@attrs.frozen
class CommandStatistics:
    """Counts and latency of one kind of command.

    Attributes:
        completed: Commands that returned a result.
        failed: Commands that raised (including timeouts and cancellations).
        total_seconds: Wall time spent in them, summed.
        max_seconds: The slowest one.
    """

    completed: int = 0
    failed: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0

    @property
    def mean_seconds(self) -> float:
        """Average wall time per command."""
        n = self.completed + self.failed
        return self.total_seconds / n if n else 0.0


@attrs.frozen
class RuntimeStatistics:
    """A snapshot of a runtime.

    Attributes:
        backend: The backend's name.
        agents: Live agents.
        in_flight: Commands running now.
        active_turns: Chat turns still producing (a turn outlives its ``chat`` command).
        queued: Commands waiting in the command channel.
        completed: Commands that succeeded so far.
        failed: Commands that failed so far.
        closed: Whether the runtime has stopped taking commands.
        commands: Per-command-name counts and latency.
        turns: Chat turns started so far.
        quota_hits: Quota errors (HTTP 429) seen so far.
        stream_events: Stream events delivered to readers of responses so far.
    """

    backend: str
    agents: int
    in_flight: int
    active_turns: int
    queued: int
    completed: int
    failed: int
    closed: bool
    commands: dict[str, CommandStatistics]
    turns: int = 0
    quota_hits: int = 0
    stream_events: int = 0
