"""What a backend hands the runtime for one turn: :class:`TurnStream`, its events in batches.

:class:`~agy_trio.core.streaming.ChatResponse` reads one; every backend's
session produces them. Also importable from :mod:`agy_trio.core.streaming`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from agy_trio.core import events as chat_events

__all__ = ["TurnStream"]


class TurnStream(Protocol):
    """The events of one turn, delivered to Trio in batches.

    Batching is what keeps streaming cheap across the thread boundary: the
    producer wakes Trio once per batch, not once per chunk, and stops producing
    when the consumer falls behind (backpressure).
    """

    async def receive_batch(self) -> Sequence[chat_events.ChatEvent]:
        """Wait for the next non-empty batch of events.

        Raises:
            trio.EndOfChannel: The turn is over and every event was delivered.
            AgyError: The turn failed; the subclass says how.
        """

    @property
    def usage(self) -> chat_events.Usage | None:
        """The turn's token usage from its final event, once it ended normally; else None."""

    def add_done_callback(self, callback: Callable[[BaseException | None], object]) -> None:
        """Call ``callback(error)`` in the Trio thread once the turn produced its last event.

        ``error`` is what ended the turn, or None if it ended normally. A callback
        added after the end runs soon, never synchronously inside this call.
        """

    async def cancel(self) -> None:
        """Stop the turn at the backend (its asyncio task and the SDK's own cancel).

        Idempotent; returns once the backend has stopped producing.
        """

    def release(self) -> None:
        """Stop applying backpressure: the turn runs to its end, its events kept for later.

        The runtime calls it when nobody reads the turn any more (its response was
        abandoned or is being cancelled, or the agent was given its next
        message), so an unread turn never holds the agent. Never raises; any thread.
        """
